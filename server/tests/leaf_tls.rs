//! TLS on leaf links, both directions, against the official server: the hub verifies
//! the leaf's client certificate, the leaf checks the hub's name against the URL host,
//! and a certificate from another CA is refused with nothing crossing.

mod support;
use std::time::Duration;
use support::pki::Pki;
use support::{Impl, Server};

/// A hub whose leafnode port verifies client certificates; `tls` adds options.
fn hub(kind: Impl, pki: &Pki, leaf_port: u16, tls: &str) -> Server {
    Server::start(
        kind,
        &format!(
            "accounts {{ APP: {{ users: [ {{user: app, password: app}} ] }} }}\nleafnodes {{ listen: \"127.0.0.1:{leaf_port}\"\n{}\n authorization {{ users: [ {{user: leaf, password: s3cret, account: APP}} ] }} }}",
            pki.tls_block(&format!("verify: true{tls}"))
        ),
    )
}

/// A leaf dialling `host:leaf_port` with the client certificate of `cert`, trusting
/// the CA of `ca`; `tls` adds options to the remote's tls block.
fn leaf(kind: Impl, host: &str, leaf_port: u16, cert: &Pki, ca: &Pki, tls: &str) -> Server {
    Server::start(
        kind,
        &format!(
            "server_name: tls-edge\nleafnodes {{ reconnect: \"250ms\", remotes: [ {{ url: \"nats-leaf://leaf:s3cret@{host}:{leaf_port}\"\n tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\"{tls} }} }} ] }}",
            cert.path("client.pem").display(),
            cert.path("client-key.pem").display(),
            ca.path("ca.pem").display()
        ),
    )
}

fn login(s: &Server, user: Option<&str>) -> support::Raw {
    let mut c = s.raw();
    let creds = user
        .map(|u| format!(",\"user\":\"{u}\",\"pass\":\"{u}\""))
        .unwrap_or_default();
    c.send(format!("CONNECT {{\"verbose\":false{creds}}}\r\n").as_bytes());
    assert_eq!(c.sync(), "");
    c
}

fn pairs() -> Vec<(Impl, Impl)> {
    if support::official_available() {
        vec![
            (Impl::Official, Impl::Canopy),
            (Impl::Canopy, Impl::Official),
            (Impl::Canopy, Impl::Canopy),
        ]
    } else {
        eprintln!("!!! nats-server (the oracle) is NOT installed: leaf TLS is tested Canopy ↔ Canopy only. !!!");
        vec![(Impl::Canopy, Impl::Canopy)]
    }
}

#[test]
fn leaf_links_run_over_mutual_tls_in_both_directions() {
    let pki = Pki::new();
    for (hub_kind, leaf_kind) in pairs() {
        let lp = support::free_port();
        let h = hub(hub_kind, &pki, lp, "");
        let l = leaf(leaf_kind, "127.0.0.1", lp, &pki, &pki, "");
        let mut sub = login(&h, Some("app"));
        sub.send(b"SUB up.> 1\r\n");
        sub.sync();
        let mut publ = login(&l, None);
        assert!(
            support::flows(&mut publ, &mut sub, "up.x", support::FLOW).is_some(),
            "{leaf_kind:?} leaf → {hub_kind:?} hub over TLS:\nhub log:\n{}\nleaf log:\n{}",
            h.log(),
            l.log()
        );
    }
}

#[test]
fn a_leaf_with_a_certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let stranger = Pki::new();
    for (hub_kind, leaf_kind) in pairs() {
        let lp = support::free_port();
        let h = hub(hub_kind, &pki, lp, "");
        // The leaf trusts the hub's CA but presents a certificate the hub's CA never signed.
        let l = leaf(leaf_kind, "127.0.0.1", lp, &stranger, &pki, "");
        let mut sub = login(&h, Some("app"));
        sub.send(b"SUB > 1\r\n");
        sub.sync();
        let mut publ = login(&l, None);
        assert!(
            support::flows(&mut publ, &mut sub, "up.x", Duration::from_secs(2)).is_none(),
            "{leaf_kind:?} leaf with a foreign certificate got through to {hub_kind:?} hub"
        );
        let logs = format!("{}\n{}", h.log(), l.log());
        assert!(
            logs.to_lowercase().contains("tls"),
            "a TLS error is logged: {logs}"
        );
    }
}

#[test]
fn leaf_links_with_handshake_first_come_up_in_both_directions() {
    // TLS before INFO, on the hub's leafnode port and in the remote: each pair of
    // (hub, leaf) implementations.
    for (hub_kind, leaf_kind) in pairs() {
        let pki = Pki::new();
        let lp = support::free_port();
        let h = hub(hub_kind, &pki, lp, "\n handshake_first: true");
        let l = leaf(
            leaf_kind,
            "localhost",
            lp,
            &pki,
            &pki,
            ", handshake_first: true",
        );
        let mut sub = login(&h, Some("app"));
        sub.send(b"SUB up.> 1\r\n");
        sub.sync();
        let mut publ = login(&l, None);
        assert!(
            support::flows(&mut publ, &mut sub, "up.x", support::FLOW).is_some(),
            "{hub_kind:?} hub, {leaf_kind:?} leaf, TLS first:\n{}\n{}",
            h.log(),
            l.log()
        );
    }
}

/// `pinned_certs` in a remote's tls block hold on the link the leaf dials: a Canopy
/// leaf joins a hub (of either kind) whose certificate is pinned, and not one whose
/// certificate is not, though its CA is trusted. (nats-server checks pins only on the
/// links it accepts; Canopy checks both ends.)
#[test]
fn a_leaf_remote_joins_only_a_hub_whose_certificate_is_pinned() {
    let pki = Pki::new();
    for hub_kind in Impl::all() {
        for (pin, joins) in [
            (pki.server_spki_sha256.clone(), true),
            (pki.client_spki_sha256.clone(), false),
        ] {
            let lp = support::free_port();
            let h = hub(hub_kind, &pki, lp, "");
            let l = leaf(
                Impl::Canopy,
                "127.0.0.1",
                lp,
                &pki,
                &pki,
                &format!(", pinned_certs: [\"{pin}\"]"),
            );
            let mut sub = login(&h, Some("app"));
            sub.send(b"SUB up.> 1\r\n");
            sub.sync();
            let mut publ = login(&l, None);
            let wait = if joins {
                support::FLOW
            } else {
                Duration::from_secs(2)
            };
            let flowed = support::flows(&mut publ, &mut sub, "up.x", wait).is_some();
            assert_eq!(
                flowed,
                joins,
                "{hub_kind:?} hub, pin {}:\nleaf log:\n{}",
                if joins {
                    "of the hub"
                } else {
                    "of another key"
                },
                l.log()
            );
            if !joins {
                assert!(l.log().contains("not in pinned_certs"), "{}", l.log());
            }
        }
    }
}
