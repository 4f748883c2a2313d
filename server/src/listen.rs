//! Binding the server's listeners, with the words nats-server uses when that fails
//! (`listen tcp 127.0.0.1:4222: bind: address already in use`): launch helpers and
//! scripts match on them.

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

    #[tokio::test]
    async fn a_host_that_is_no_address_is_reported_as_a_failed_lookup() {
        let err = bind("256.1.1.1", 4222).await.unwrap_err();
        assert_eq!(err, "listen tcp: lookup 256.1.1.1: no such host");
    }
}
