//! Options nats-server users write have their effect, on canopy-server and nats-server
//! alike (see option_effects.rs): `leafnodes { }`, hub side and remote side, plain and
//! over TLS.

#[path = "support/effects.rs"]
mod effects;
mod support;
use effects::{closes_after_its_own_timeout, info_at, login, urls, wait_until};
use serde_json::Value;
use std::time::{Duration, Instant};
use support::pki::Pki;
use support::{free_port, http_json, Impl, Raw, Server};

/// The number of leafnode connections `/varz` reports on the monitoring port `http`.
fn leafnodes_at(http: u16) -> i64 {
    http_json(http, "/varz")["leafnodes"].as_i64().unwrap_or(-1)
}

// ---------------------------------------------------------------------------------
// Leafnodes, hub side
// ---------------------------------------------------------------------------------

fn leaf_info(kind: Impl, extra: &str) -> Value {
    let lp = free_port();
    let _s = Server::start(
        kind,
        &format!("leafnodes {{ listen: \"127.0.0.1:{lp}\"\n {extra} }}"),
    );
    info_at("127.0.0.1", lp).1
}

/// leafnodes `advertise` (and its alias `leafnode_advertise`) is the one URL in the
/// leaf INFO's `leafnode_urls`; `no_advertise: true` gives leafs no URL (nats-server
/// leaves the key out, Canopy sends `[]`); without either, the listen address.
#[test]
fn leafnode_advertise_names_the_leafnode_urls_and_no_advertise_names_none() {
    for kind in Impl::all() {
        let info = leaf_info(kind, "");
        let port = info["port"].as_u64().unwrap();
        assert_eq!(
            urls(&info, "leafnode_urls"),
            vec![format!("127.0.0.1:{port}")],
            "{kind:?} default: {info}"
        );
        let info = leaf_info(kind, "advertise: \"leaf.example:7999\"");
        assert_eq!(
            urls(&info, "leafnode_urls"),
            vec!["leaf.example:7999"],
            "{kind:?} advertise: {info}"
        );
        let info = leaf_info(kind, "leafnode_advertise: \"leaf2.example:7998\"");
        assert_eq!(
            urls(&info, "leafnode_urls"),
            vec!["leaf2.example:7998"],
            "{kind:?} leafnode_advertise: {info}"
        );
        let info = leaf_info(kind, "no_advertise: true");
        assert!(
            urls(&info, "leafnode_urls").is_empty(),
            "{kind:?} no_advertise: {info}"
        );
    }
}

/// nats-server also names the advertised host and port in the leaf INFO itself.
#[test]
fn leafnode_advertise_is_the_host_and_port_in_the_leaf_info() {
    // The oracle first: what is asserted is what nats-server does.
    for kind in Impl::all().into_iter().rev() {
        let info = leaf_info(kind, "advertise: \"leaf.example:7999\"");
        assert_eq!(
            (info["host"].as_str(), info["port"].as_u64()),
            (Some("leaf.example"), Some(7999)),
            "{kind:?}: {info}"
        );
    }
}

/// The single-user form `leafnodes { authorization { user, password, account } }`: a
/// leaf that signs in with them is bound to account A (its INFO says
/// `remote_account: A`, and A's traffic crosses both ways, B's does not); a wrong
/// password is an Authorization Violation.
#[test]
fn a_single_leafnode_user_binds_its_account_and_a_wrong_password_is_refused() {
    for kind in Impl::all() {
        let lp = free_port();
        let s = Server::start(
            kind,
            &format!(
                "accounts {{ A: {{ users: [ {{user: a, password: a}} ] }}, B: {{ users: [ {{user: b, password: b}} ] }} }}\nleafnodes {{ listen: \"127.0.0.1:{lp}\", authorization {{ user: u, password: p, account: A }} }}"
            ),
        );
        let mut bad = Raw::connect(lp);
        bad.send(b"CONNECT {\"verbose\":false,\"user\":\"u\",\"pass\":\"wrong\"}\r\nPING\r\n");
        assert_eq!(
            bad.expect_closed(),
            "-ERR 'Authorization Violation'\r\n",
            "{kind:?}"
        );

        let mut leaf = Raw::connect(lp);
        leaf.send(
            b"CONNECT {\"verbose\":false,\"user\":\"u\",\"pass\":\"p\",\"headers\":true}\r\n",
        );
        let hello = leaf.sync();
        assert!(
            hello.contains("\"remote_account\":\"A\""),
            "{kind:?}: {hello}"
        );
        leaf.send(b"LS+ down\r\n");
        leaf.sync();
        let mut a = login(&s, Some("a"));
        a.send(b"SUB up 1\r\n");
        a.sync();
        let mut b = login(&s, Some("b"));
        b.send(b"SUB up 1\r\n");
        b.sync();
        // Interest of A's subscriber reaches the leaf.
        assert!(
            wait_until("LS+ up", Duration::from_secs(5), || {
                hello.contains("LS+ up\r\n") || leaf.sync().contains("LS+ up\r\n")
            }),
            "{kind:?}: the leaf never heard of A's subscription"
        );
        b.send(b"PUB down 6\r\nfrom-b\r\n");
        b.sync();
        a.send(b"PUB down 6\r\nfrom-a\r\n");
        a.sync();
        let got = leaf.drain(Duration::from_millis(300));
        assert!(
            got.contains("LMSG down 6\r\nfrom-a\r\n"),
            "{kind:?}: {got:?}"
        );
        assert!(
            !got.contains("from-b"),
            "{kind:?}: B's message reached the leaf: {got:?}"
        );
        leaf.send(b"LMSG up 4\r\nleaf\r\n");
        leaf.sync();
        a.expect(b"MSG up 1 4\r\nleaf\r\n");
        assert_eq!(
            b.drain(Duration::from_millis(200)),
            "",
            "{kind:?}: B got the leaf's message"
        );
    }
}

// ---------------------------------------------------------------------------------
// Leafnodes, remote side
// ---------------------------------------------------------------------------------

/// A remote with `account: X` binds local account X to the link: X's traffic
/// crosses both ways; Y's, on the same leaf server, does not.
#[test]
fn a_remote_with_account_carries_that_local_accounts_traffic_only() {
    for kind in Impl::all() {
        let lp = free_port();
        let hub = Server::start(kind, &format!("leafnodes {{ listen: \"127.0.0.1:{lp}\" }}"));
        let leaf = Server::start(
            kind,
            &format!(
                "accounts {{ X: {{ users: [ {{user: x, password: x}} ] }}, Y: {{ users: [ {{user: y, password: y}} ] }} }}\nleafnodes {{ reconnect: \"250ms\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{lp}\", account: X }} ] }}"
            ),
        );
        let mut hub_sub = login(&hub, None);
        hub_sub.send(b"SUB up 1\r\n");
        hub_sub.sync();
        let mut x = login(&leaf, Some("x"));
        let mut y = login(&leaf, Some("y"));
        support::wait_for_flow(&mut x, &mut hub_sub, "up", support::FLOW);
        y.send(b"PUB up 6\r\nfrom-y\r\n");
        y.sync();
        x.send(b"PUB up 6\r\nfrom-x\r\n");
        x.sync();
        let until = Instant::now() + Duration::from_secs(5);
        let mut got = String::new();
        while !got.contains("from-x") && Instant::now() < until {
            got.push_str(&hub_sub.sync());
        }
        assert!(got.contains("from-x"), "{kind:?}: {got:?}");
        assert!(
            !got.contains("from-y"),
            "{kind:?}: Y's message crossed: {got:?}"
        );

        let mut xs = login(&leaf, Some("x"));
        xs.send(b"SUB down 1\r\n");
        xs.sync();
        let mut ys = login(&leaf, Some("y"));
        ys.send(b"SUB down 1\r\n");
        ys.sync();
        let mut hub_pub = login(&hub, None);
        support::wait_for_flow(&mut hub_pub, &mut xs, "down", support::FLOW);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            ys.sync(),
            "",
            "{kind:?}: the hub's message reached account Y"
        );
    }
}

/// A remote's `first_info_timeout`: pointed at a TCP listener that never sends INFO,
/// the leaf hangs up after that long (4 s here; the default is 1 s) and logs it.
#[test]
fn a_remote_gives_up_on_a_hub_that_sends_no_info_after_first_info_timeout() {
    for kind in Impl::all() {
        let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = mute.local_addr().unwrap().port();
        let leaf = Server::start(
            kind,
            &format!(
                "leafnodes {{ reconnect: \"30s\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{port}\", first_info_timeout: \"4s\" }} ] }}"
            ),
        );
        let (mut conn, _) = mute.accept().unwrap();
        let got = closes_after_its_own_timeout(kind, &mut conn, 4, "a leaf waiting for INFO");
        assert_eq!(got, "", "{kind:?}: the leaf spoke first");
        // The log lines differ, so each is checked as written: nats-server logs
        // `Leafnode connection closed: Read Error` for the dialled connection; Canopy
        // logs `Error trying to connect as leafnode to remote server nats-leaf://...
        // (remote 0): no INFO from the hub within 4s`.
        let want = match kind {
            Impl::Official => "Leafnode connection closed".to_string(),
            Impl::Canopy => "no INFO from the hub within 4s".to_string(),
        };
        assert!(
            wait_until("the give-up in the log", Duration::from_secs(2), || leaf
                .log()
                .contains(&want)),
            "{kind:?}: {}",
            leaf.log()
        );
    }
}

/// `ignore_discovered_servers: true`: a leaf does not dial the URLs a hub's INFO
/// gives it. Hub A advertises B's leafnode address; when A goes away, a leaf without
/// the option finds its way to B (the control), a leaf with it keeps trying A only.
#[test]
fn ignore_discovered_servers_keeps_a_leaf_to_its_configured_urls() {
    for kind in Impl::all() {
        for ignore in [false, true] {
            let (la, lb, ha, hb) = (free_port(), free_port(), free_port(), free_port());
            let _b = Server::start(
                kind,
                &format!(
                    "server_name: hb\nhttp_port: {hb}\nleafnodes {{ listen: \"127.0.0.1:{lb}\" }}"
                ),
            );
            let mut a = Server::start(
                kind,
                &format!(
                    "server_name: ha\nhttp_port: {ha}\nleafnodes {{ listen: \"127.0.0.1:{la}\", advertise: \"127.0.0.1:{lb}\" }}"
                ),
            );
            let leaf = Server::start(
                kind,
                &format!(
                    "server_name: edge\nleafnodes {{ reconnect: \"250ms\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{la}\", ignore_discovered_servers: {ignore} }} ] }}"
                ),
            );
            assert!(
                wait_until("the leaf at A", support::FLOW, || leafnodes_at(ha) == 1),
                "{kind:?}: the leaf never joined A: {}",
                leaf.log()
            );
            assert_eq!(leafnodes_at(hb), 0, "{kind:?}");
            a.kill();
            let at_b = if ignore {
                std::thread::sleep(Duration::from_secs(3));
                leafnodes_at(hb) == 1
            } else {
                wait_until("the leaf at B", Duration::from_secs(10), || {
                    leafnodes_at(hb) == 1
                })
            };
            assert_eq!(
                at_b,
                !ignore,
                "{kind:?} ignore_discovered_servers: {ignore}: leaf at B: {at_b}\n{}",
                leaf.log()
            );
        }
    }
}

/// A remote with `disabled: true` never dials: its hub sees no leaf, while the other
/// remote of the same server joins its hub.
#[test]
fn a_disabled_remote_never_dials_its_hub() {
    for kind in Impl::all() {
        let (la, lb, ha, hb) = (free_port(), free_port(), free_port(), free_port());
        let _a = Server::start(
            kind,
            &format!("http_port: {ha}\nleafnodes {{ listen: \"127.0.0.1:{la}\" }}"),
        );
        let _b = Server::start(
            kind,
            &format!("http_port: {hb}\nleafnodes {{ listen: \"127.0.0.1:{lb}\" }}"),
        );
        let leaf = Server::start(
            kind,
            &format!(
                "leafnodes {{ reconnect: \"250ms\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{la}\", disabled: true }}, {{ url: \"nats-leaf://127.0.0.1:{lb}\" }} ] }}"
            ),
        );
        assert!(
            wait_until("the enabled remote", support::FLOW, || leafnodes_at(hb)
                == 1),
            "{kind:?}: the enabled remote never joined: {}",
            leaf.log()
        );
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(leafnodes_at(ha), 0, "{kind:?}: the disabled remote dialled");
    }
}

// ---------------------------------------------------------------------------------
// Leafnodes over TLS
// ---------------------------------------------------------------------------------

/// A leaf of `kind` dialling `127.0.0.1:port` with `tls` as its remote's tls block.
fn tls_leaf(kind: Impl, port: u16, tls: &str) -> Server {
    Server::start(
        kind,
        &format!(
            "server_name: tls-edge\nleafnodes {{ reconnect: \"250ms\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{port}\"\n tls {{ {tls} }} }} ] }}"
        ),
    )
}

fn client_cert_tls(pki: &Pki) -> String {
    format!(
        "cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\"",
        pki.path("client.pem").display(),
        pki.path("client-key.pem").display(),
        pki.path("ca.pem").display()
    )
}

/// Whether a message published on the leaf reaches `sub` on the hub within `wait`.
fn leaf_joins(leaf: &Server, sub: &mut Raw, wait: Duration) -> bool {
    let mut publ = login(leaf, None);
    support::flows(&mut publ, sub, "up.x", wait).is_some()
}

/// leafnodes `tls { verify_and_map: true }`: the hub names the leaf's user by its
/// certificate — the e-mail SAN or the subject DN — and binds that user's account;
/// a certificate mapping to no listed user is refused.
#[test]
fn leafnodes_tls_verify_and_map_names_the_leaf_user_by_its_certificate() {
    let pki = Pki::new();
    for kind in Impl::all() {
        for (user, joins) in [
            ("app@example.com", true),
            ("CN=app,O=Acme", true),
            ("someone-else", false),
        ] {
            let lp = free_port();
            let hub = Server::start(
                kind,
                &format!(
                    "accounts {{ A: {{ users: [ {{user: a, password: a}} ] }} }}\nleafnodes {{ listen: \"127.0.0.1:{lp}\"\n{}\n authorization {{ users: [ {{user: \"{user}\", account: A}} ] }} }}",
                    pki.tls_block("verify_and_map: true")
                ),
            );
            let leaf = tls_leaf(kind, lp, &client_cert_tls(&pki));
            let mut sub = login(&hub, Some("a"));
            sub.send(b"SUB up.> 1\r\n");
            sub.sync();
            let wait = if joins {
                support::FLOW
            } else {
                Duration::from_secs(2)
            };
            assert_eq!(
                leaf_joins(&leaf, &mut sub, wait),
                joins,
                "{kind:?} user {user:?}:\nhub:\n{}\nleaf:\n{}",
                hub.log(),
                leaf.log()
            );
        }
    }
}

/// leafnodes `tls { pinned_certs: [...] }` on the hub: a leaf whose certificate's key
/// is pinned joins; one whose key is not is refused, though its CA is trusted.
#[test]
fn leafnodes_tls_pinned_certs_admit_only_a_leaf_whose_key_is_pinned() {
    let pki = Pki::new();
    for kind in Impl::all() {
        for (pin, joins) in [
            (pki.client_spki_sha256.clone(), true),
            (pki.server_spki_sha256.clone(), false),
        ] {
            let lp = free_port();
            let hub = Server::start(
                kind,
                &format!(
                    "leafnodes {{ listen: \"127.0.0.1:{lp}\"\n{} }}",
                    pki.tls_block(&format!("verify: true\n pinned_certs: [\"{pin}\"]"))
                ),
            );
            let leaf = tls_leaf(kind, lp, &client_cert_tls(&pki));
            let mut sub = login(&hub, None);
            sub.send(b"SUB up.> 1\r\n");
            sub.sync();
            let wait = if joins {
                support::FLOW
            } else {
                Duration::from_secs(2)
            };
            assert_eq!(
                leaf_joins(&leaf, &mut sub, wait),
                joins,
                "{kind:?} pin of the {} key:\nhub:\n{}\nleaf:\n{}",
                if joins { "leaf's" } else { "server's" },
                hub.log(),
                leaf.log()
            );
        }
    }
}

/// leafnodes `tls { timeout: 4 }`: a connection to the leafnode port that reads the
/// INFO and never starts the TLS handshake is closed after about 4 s.
#[test]
fn leafnodes_tls_timeout_closes_a_leaf_that_never_handshakes() {
    let pki = Pki::new();
    for kind in Impl::all() {
        let lp = free_port();
        let _hub = Server::start(
            kind,
            &format!(
                "leafnodes {{ listen: \"127.0.0.1:{lp}\"\n{} }}",
                pki.tls_block("timeout: 4")
            ),
        );
        let (mut conn, info) = info_at("127.0.0.1", lp);
        assert_eq!(info["tls_required"], true, "{kind:?}: {info}");
        closes_after_its_own_timeout(kind, &mut conn, 4, "a leaf that never handshakes");
    }
}

/// A remote's `tls { insecure: true }`: a leaf that trusts no CA still joins a TLS
/// hub; without it (trusting a CA that did not sign the hub) it does not.
#[test]
fn a_remote_with_tls_insecure_joins_a_hub_it_cannot_verify() {
    let pki = Pki::new();
    let stranger = Pki::new();
    for kind in Impl::all() {
        for (tls, joins) in [
            (
                format!("ca_file: \"{}\"", stranger.path("ca.pem").display()),
                false,
            ),
            ("insecure: true".to_string(), true),
        ] {
            let lp = free_port();
            let hub = Server::start(
                kind,
                &format!(
                    "leafnodes {{ listen: \"127.0.0.1:{lp}\"\n{} }}",
                    pki.tls_block("")
                ),
            );
            let leaf = tls_leaf(kind, lp, &tls);
            let mut sub = login(&hub, None);
            sub.send(b"SUB up.> 1\r\n");
            sub.sync();
            let wait = if joins {
                support::FLOW
            } else {
                Duration::from_secs(2)
            };
            assert_eq!(
                leaf_joins(&leaf, &mut sub, wait),
                joins,
                "{kind:?} remote tls {{ {tls} }}:\nhub:\n{}\nleaf:\n{}",
                hub.log(),
                leaf.log()
            );
        }
    }
}
