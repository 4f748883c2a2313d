//! Binding the server's listeners, with the words nats-server uses when that fails
//! (`listen tcp 127.0.0.1:4222: bind: address already in use`): launch helpers and
//! scripts match on them. And where a listener can be reached from elsewhere, for the
//! URLs the server gossips (`connect_urls`, `leafnode_urls`).

use tokio::net::TcpListener;

/// Bind `host:port`; on failure, the Go `net.Listen` text nats-server logs.
pub async fn bind(host: &str, port: u16) -> Result<TcpListener, String> {
    TcpListener::bind((host, port))
        .await
        .map_err(|e| go_listen_error(host, port, &e))
}

fn go_listen_error(host: &str, port: u16, e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let bind = |why: &str| format!("listen tcp {host}:{port}: bind: {why}");
    match e.kind() {
        ErrorKind::AddrInUse => bind("address already in use"),
        ErrorKind::AddrNotAvailable => bind("cannot assign requested address"),
        ErrorKind::PermissionDenied => bind("permission denied"),
        // Not an address, and it did not resolve.
        _ if host.parse::<std::net::IpAddr>().is_err() => {
            format!("listen tcp: lookup {host}: no such host")
        }
        _ => format!("listen tcp {host}:{port}: {e}"),
    }
}

/// The hosts a listener on `host` is reached at. A wildcard (`0.0.0.0`, `::`) listens
/// on every interface: as nats-server does, advertise each interface's address that is
/// not loopback or link-local (IPv4 only for `0.0.0.0`), so clients on other hosts get
/// URLs they can dial. Loopback only when there is nothing else.
pub fn advertised_hosts(host: &str) -> Vec<String> {
    let any_v6 = match host {
        "" | "0.0.0.0" => false,
        "::" | "[::]" => true,
        h => return vec![h.to_string()],
    };
    let mut hosts: Vec<String> = interface_ips()
        .into_iter()
        .filter(|ip| match ip {
            std::net::IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            std::net::IpAddr::V6(v6) => {
                any_v6 && !v6.is_loopback() && (v6.segments()[0] & 0xffc0) != 0xfe80
            }
        })
        .map(|ip| match ip {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    if hosts.is_empty() {
        hosts.push("127.0.0.1".to_string());
    }
    hosts
}

fn interface_ips() -> Vec<std::net::IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let sa = a.address?;
            if let Some(v4) = sa.as_sockaddr_in() {
                Some(std::net::IpAddr::V4(v4.ip()))
            } else {
                sa.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_reported_as_nats_server_reports_it() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = bind("127.0.0.1", port).await.unwrap_err();
        assert_eq!(
            err,
            format!("listen tcp 127.0.0.1:{port}: bind: address already in use")
        );
    }

    #[test]
    fn a_wildcard_listener_advertises_interface_addresses_not_loopback() {
        let hosts = advertised_hosts("0.0.0.0");
        let others: Vec<_> = interface_ips()
            .into_iter()
            .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
            .collect();
        if others.is_empty() {
            assert_eq!(hosts, ["127.0.0.1"]);
        } else {
            assert!(!hosts.iter().any(|h| h == "127.0.0.1"), "{hosts:?}");
            assert_eq!(hosts.len(), others.len(), "{hosts:?} {others:?}");
        }
        assert_eq!(advertised_hosts("10.1.2.3"), ["10.1.2.3"]);
    }

    #[tokio::test]
    async fn a_host_that_is_no_address_is_reported_as_a_failed_lookup() {
        let err = bind("256.1.1.1", 4222).await.unwrap_err();
        assert_eq!(err, "listen tcp: lookup 256.1.1.1: no such host");
    }
}
