//! What a peer that does not play by the rules gets, on canopy-server and the official
//! nats-server alike: the same error and the same close, and nothing it can read or
//! break that it should not. (Issue #14 grows this suite.)

mod support;
use std::io::{Read, Write};
use std::net::TcpStream;
use support::{free_port, http_get, Footprint, Impl, Server, TempDir};

#[test]
fn ping_before_connect_is_an_authorization_violation_when_auth_is_required() {
    for kind in Impl::all() {
        let mut s = Server::start(kind, "authorization { user: u, password: p }");
        let before = Footprint::of(&s);
        for op in [&b"PING\r\n"[..], b"PONG\r\n", b"SUB foo 1\r\n"] {
            let mut c = s.raw();
            c.send(op);
            assert_eq!(
                c.expect_closed(),
                "-ERR 'Authorization Violation'\r\n",
                "{kind:?} {}",
                String::from_utf8_lossy(op)
            );
        }
        before.assert_bounded(&mut s, 4, 32, "ops before CONNECT");
        // Without auth a PING before CONNECT is answered.
        let open = Server::start(kind, "");
        let mut c = open.raw();
        c.send(b"PING\r\n");
        c.expect(b"PONG\r\n");
    }
}

#[test]
fn monitoring_serves_plain_json_whatever_the_callback_parameter() {
    for kind in Impl::all() {
        let http = free_port();
        let mut s = Server::start(kind, &format!("http: \"127.0.0.1:{http}\""));
        let before = Footprint::of(&s);
        for path in [
            "/varz",
            "/connz",
            "/subsz",
            "/leafz",
            "/routez",
            "/accountz",
        ] {
            let (status, ctype, body) = http_get(http, &format!("{path}?callback=alert"));
            assert_eq!(status, 200, "{kind:?} {path}: {body}");
            assert!(
                ctype.starts_with("application/json"),
                "{kind:?} {path}: {ctype}"
            );
            assert!(
                body.trim_start().starts_with('{'),
                "{kind:?} {path}: {body}"
            );
        }
        before.assert_bounded(&mut s, 4, 32, "callback queries");
    }
}

#[test]
fn a_leaf_remote_without_a_url_is_refused_at_start_and_by_check() {
    let dir = TempDir::new("hostile");
    let conf = dir.0.join("r.conf");
    std::fs::write(
        &conf,
        "leafnodes {\n  remotes: [ { account: \"$G\" } ]\n}\n",
    )
    .unwrap();
    for args in [&["-t", "-c"][..], &["-c"][..]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_canopy-server"))
            .args(args)
            .arg(&conf)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(
            text.contains("r.conf:2:14: error: leafnode remote has no URL to dial"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn credentials_in_remote_and_route_urls_stay_out_of_the_logs() {
    for kind in Impl::all() {
        let (dead_leaf, dead_route, cluster) = (free_port(), free_port(), free_port());
        let mut s = Server::start(
            kind,
            &format!(
                "debug: true\ntrace: true\n\
                 leafnodes {{ reconnect: \"1s\", remotes: [ {{ url: \"nats-leaf://leafuser:l3afS3cret@127.0.0.1:{dead_leaf}\" }} ] }}\n\
                 cluster {{ name: c, listen: \"127.0.0.1:{cluster}\", routes: [ \"nats-route://routeuser:r0uteS3cret@127.0.0.1:{dead_route}\" ] }}"
            ),
        );
        // Let both dial (and fail) a few times.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !(s.log().contains(&dead_leaf.to_string())
            && s.log().contains(&dead_route.to_string()))
        {
            assert!(
                std::time::Instant::now() < until,
                "{kind:?}: no dial was logged: {}",
                s.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let before = Footprint::of(&s);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let log = s.log();
        for secret in ["l3afS3cret", "r0uteS3cret"] {
            assert!(!log.contains(secret), "{kind:?} logged {secret}: {log}");
        }
        // debug: true, and the debug lines are there: the redaction was put to the test.
        assert!(log.contains("[DBG]"), "{kind:?}: no debug lines: {log}");
        // Failed dials leave nothing behind.
        before.assert_bounded(&mut s, 4, 32, "failing dials");
    }
}

/// An unauthenticated leaf that sends one LS+ (and an LMSG) with a subject of 8,000
/// tokens, then leaves: the hub stays up and keeps serving. (Before, the trie walked a
/// level per token and the drop on disconnect overflowed the stack.)
#[test]
fn a_leaf_that_sends_a_subject_of_thousands_of_tokens_does_not_bring_the_hub_down() {
    let deep = vec!["t"; 8_000].join(".");
    for kind in Impl::all() {
        let lp = free_port();
        let mut s = Server::start(
            kind,
            &format!("max_control_line: 65536\nleafnodes {{ listen: \"127.0.0.1:{lp}\" }}"),
        );
        let before = Footprint::of(&s);
        let mut leaf = TcpStream::connect(("127.0.0.1", lp)).unwrap();
        leaf.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut info = [0u8; 4096];
        let _ = leaf.read(&mut info);
        let frames = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"name\":\"evil\",\"headers\":true}}\r\n\
             LS+ {deep}\r\nLS+ {deep} q 1\r\nLMSG {deep} 2\r\nhi\r\nPING\r\n"
        );
        leaf.write_all(frames.as_bytes()).unwrap();
        let mut sink = [0u8; 65536];
        let _ = leaf.read(&mut sink);
        drop(leaf);
        std::thread::sleep(std::time::Duration::from_millis(300));
        // Still serving clients.
        let mut c = s.raw();
        c.send(b"CONNECT {\"verbose\":false}\r\nSUB ok 1\r\nPUB ok 2\r\nhi\r\n");
        c.expect(b"MSG ok 1 2\r\nhi\r\n");
        drop(c);
        before.assert_bounded(&mut s, 4, 64, "an 8,000-token subject");
    }
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// 300 idle sockets on the monitoring port: monitoring still answers, clients still
/// connect, idle sockets are closed after the header timeout, and Canopy holds at
/// most its cap of monitoring connections (nats-server has no cap; its count is shown).
#[test]
fn a_crowd_of_idle_monitoring_sockets_starves_nothing() {
    for kind in Impl::all() {
        let http = free_port();
        let s = Server::start(kind, &format!("http: \"127.0.0.1:{http}\""));
        let before = fd_count(s.pid());
        let crowd: Vec<TcpStream> = (0..300)
            .map(|_| TcpStream::connect(("127.0.0.1", http)).unwrap())
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let during = fd_count(s.pid());
        let start = std::time::Instant::now();
        let (status, _, body) = http_get(http, "/varz");
        assert_eq!(status, 200, "{kind:?}: {body}");
        let waited = start.elapsed();
        assert!(
            waited < std::time::Duration::from_secs(10),
            "{kind:?}: /varz took {waited:?}"
        );
        let mut c = s.raw();
        c.send(b"CONNECT {\"verbose\":false}\r\n");
        c.sync();
        if kind == Impl::Canopy {
            assert!(
                during < before + 160,
                "{kind:?}: {before} fds before, {during} with the crowd"
            );
            // The idle ones are closed by the server.
            let mut one = crowd.into_iter().next().unwrap();
            one.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let mut b = [0u8; 1];
            assert_eq!(one.read(&mut b).unwrap_or(0), 0, "an idle socket was kept");
        }
        eprintln!("{kind:?}: fds {before} before, {during} with 300 idle monitoring sockets; /varz in {waited:?}");
        drop(c);
        if kind == Impl::Canopy {
            // Once the crowd is gone the server is back where it started.
            std::thread::sleep(std::time::Duration::from_millis(200));
            assert!(
                fd_count(s.pid()) <= before + 4,
                "{kind:?}: {} fds after",
                fd_count(s.pid())
            );
        }
    }
}

/// `allowed_connection_types` holds for every kind: a user limited to STANDARD who
/// dials the leaf port is refused, and one limited to LEAFNODE cannot connect as a
/// client.
#[test]
fn allowed_connection_types_are_enforced_on_client_and_leaf_ports() {
    for kind in Impl::all() {
        let lp = free_port();
        let mut s = Server::start(
            kind,
            &format!(
                "authorization {{ users: [\n\
                   {{ user: std, password: s, allowed_connection_types: [\"STANDARD\"] }}\n\
                   {{ user: lf, password: l, allowed_connection_types: [\"leafnode\"] }}\n\
                 ] }}\n\
                 leafnodes {{ listen: \"127.0.0.1:{lp}\" }}"
            ),
        );
        let before = Footprint::of(&s);
        let client = |user: &str, pass: &str| {
            let mut c = s.raw();
            c.send(format!("CONNECT {{\"verbose\":false,\"user\":\"{user}\",\"pass\":\"{pass}\"}}\r\nPING\r\n").as_bytes());
            c
        };
        client("std", "s").expect(b"PONG\r\n");
        assert_eq!(
            client("lf", "l").expect_closed(),
            "-ERR 'Authorization Violation'\r\n",
            "{kind:?}: a LEAFNODE-only user connected as a client"
        );
        let leaf = |user: &str, pass: &str| {
            let mut c = support::Raw::connect(lp);
            c.send(format!("CONNECT {{\"verbose\":false,\"name\":\"l1\",\"headers\":true,\"user\":\"{user}\",\"pass\":\"{pass}\"}}\r\n").as_bytes());
            c
        };
        let got = leaf("std", "s").expect_closed();
        assert!(
            got.contains("-ERR 'Authorization Violation'"),
            "{kind:?}: a STANDARD-only user dialled the leaf port: {got:?}"
        );
        let mut ok = leaf("lf", "l");
        let rest = ok.drain(std::time::Duration::from_millis(500));
        assert!(!ok.closed && !rest.contains("-ERR"), "{kind:?}: {rest:?}");
        drop(ok);
        before.assert_bounded(&mut s, 4, 32, "refused connection types");
    }
}

/// A leaf that logs in as a user of `authorization {}` carries that user's
/// permissions: interest it may not subscribe to is not served, and a message it may
/// not publish closes the link with nats-server's -ERR.
#[test]
fn a_leaf_logged_in_as_a_restricted_user_gets_and_sends_only_what_it_may() {
    for kind in Impl::all() {
        let lp = free_port();
        let mut s = Server::start(
            kind,
            &format!(
                "authorization {{ users: [\n\
                   {{ user: lf, password: l, permissions: {{ publish: \"allowed.>\", subscribe: \"allowed.>\" }} }}\n\
                   {{ user: admin, password: a }}\n\
                 ] }}\n\
                 leafnodes {{ listen: \"127.0.0.1:{lp}\" }}"
            ),
        );
        let before = Footprint::of(&s);
        let mut admin = s.raw();
        admin.send(b"CONNECT {\"verbose\":false,\"user\":\"admin\",\"pass\":\"a\"}\r\nSUB > 1\r\n");
        admin.sync();
        let mut leaf = support::Raw::connect(lp);
        leaf.send(b"CONNECT {\"verbose\":false,\"name\":\"l1\",\"headers\":true,\"user\":\"lf\",\"pass\":\"l\"}\r\nLS+ secret.>\r\nLS+ allowed.>\r\nPING\r\n");
        let first = leaf.drain(std::time::Duration::from_millis(700));
        assert!(!first.contains("-ERR"), "{kind:?}: {first:?}");
        admin.send(b"PUB secret.x 2\r\nhi\r\nPUB allowed.x 2\r\nok\r\n");
        admin.sync();
        let got = leaf.drain(std::time::Duration::from_millis(700));
        assert!(
            got.contains("LMSG allowed.x 2\r\nok\r\n"),
            "{kind:?}: {got:?}"
        );
        assert!(
            !got.contains("secret.x"),
            "{kind:?}: the leaf got what it may not subscribe to: {got:?}"
        );
        leaf.send(b"LMSG secret.y 2\r\nhi\r\n");
        assert_eq!(
            leaf.expect_closed(),
            "-ERR 'Permissions Violation for Publish to \"secret.y\"'\r\n",
            "{kind:?}"
        );
        let seen = admin.drain(std::time::Duration::from_millis(300));
        assert!(!seen.contains("secret.y"), "{kind:?}: {seen:?}");
        drop((admin, leaf));
        before.assert_bounded(&mut s, 4, 32, "a restricted leaf");
    }
}

fn sign(kp: &nkeys::KeyPair, nonce: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kp.sign(nonce.as_bytes()).unwrap())
}

/// `leafnodes { authorization { nkey } }`: every leaf connection's INFO carries its own
/// nonce, and only a signature of that nonce by that key binds the account. No
/// credentials, a replayed signature (of another connection's nonce) or another key's
/// signature get nats-server's `Authorization Violation` and a close.
#[test]
fn leaf_nkey_authorization_checks_a_signature_of_this_connections_nonce() {
    let leaf_key = nkeys::KeyPair::new_user();
    let stranger = nkeys::KeyPair::new_user();
    for kind in Impl::all() {
        let lp = free_port();
        let mut s = Server::start(
            kind,
            &format!(
                "accounts {{ A {{ users: [ {{ user: a, password: a }} ] }} }}\n\
                 leafnodes {{ listen: \"127.0.0.1:{lp}\", authorization {{ nkey: {}, account: A }} }}",
                leaf_key.public_key()
            ),
        );
        let before = Footprint::of(&s);
        let connect = |nkey: &str, sig: &str| {
            format!("CONNECT {{\"verbose\":false,\"name\":\"l1\",\"headers\":true,\"nkey\":\"{nkey}\",\"sig\":\"{sig}\"}}\r\nPING\r\n")
        };

        let mut bare = support::Raw::connect(lp);
        bare.send(b"CONNECT {\"verbose\":false,\"name\":\"l1\",\"headers\":true}\r\nPING\r\n");
        assert_eq!(
            bare.expect_closed(),
            "-ERR 'Authorization Violation'\r\n",
            "{kind:?}: a leaf without credentials"
        );

        let first = support::Raw::connect(lp);
        let mut second = support::Raw::connect(lp);
        assert_ne!(first.nonce(), second.nonce(), "{kind:?}: nonces repeat");
        let replay = sign(&leaf_key, &first.nonce());
        second.send(connect(&leaf_key.public_key(), &replay).as_bytes());
        assert_eq!(
            second.expect_closed(),
            "-ERR 'Authorization Violation'\r\n",
            "{kind:?}: a signature of another connection's nonce was accepted"
        );
        drop(first);

        let mut forged = support::Raw::connect(lp);
        let sig = sign(&stranger, &forged.nonce());
        forged.send(connect(&leaf_key.public_key(), &sig).as_bytes());
        assert_eq!(
            forged.expect_closed(),
            "-ERR 'Authorization Violation'\r\n",
            "{kind:?}: another key's signature was accepted"
        );

        // The right key over this connection's nonce binds account A: a client of A
        // reaches the leaf's interest.
        let mut leaf = support::Raw::connect(lp);
        let sig = sign(&leaf_key, &leaf.nonce());
        leaf.send(connect(&leaf_key.public_key(), &sig).as_bytes());
        leaf.send(b"LS+ to.leaf\r\nPING\r\n");
        let hello = leaf.drain(std::time::Duration::from_millis(500));
        assert!(
            !leaf.closed && !hello.contains("-ERR"),
            "{kind:?}: {hello:?}"
        );
        let mut client = s.raw();
        client.send(
            b"CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"a\"}\r\nPUB to.leaf 2\r\nhi\r\n",
        );
        client.sync();
        let got = leaf.drain(std::time::Duration::from_millis(500));
        assert!(
            got.contains("LMSG to.leaf 2\r\nhi\r\n"),
            "{kind:?}: {got:?}"
        );
        drop((leaf, client));
        before.assert_bounded(&mut s, 4, 32, "leaf nkey attempts");
    }
}

/// A remote with `nkey: <seed>` signs the hub's nonce: a Canopy leaf joins an
/// nkey-guarded hub of either kind, and one with the wrong seed is refused.
#[test]
fn a_leaf_remote_with_an_nkey_seed_joins_an_nkey_guarded_hub() {
    let leaf_key = nkeys::KeyPair::new_user();
    let stranger = nkeys::KeyPair::new_user();
    for hub_kind in Impl::all() {
        let lp = free_port();
        let hub_http = free_port();
        let hub = Server::start(
            hub_kind,
            &format!(
                "http: \"127.0.0.1:{hub_http}\"\nleafnodes {{ listen: \"127.0.0.1:{lp}\", authorization {{ nkey: {} }} }}",
                leaf_key.public_key()
            ),
        );
        // The stranger first: the hub counts a leaf once it has logged in (the leaf
        // counts its link while it dials), so the hub is the one to ask, and it must
        // not still be counting an earlier leaf.
        for (seed, joins) in [
            (stranger.seed().unwrap(), false),
            (leaf_key.seed().unwrap(), true),
        ] {
            let leaf = Server::start(
                Impl::Canopy,
                &format!(
                    "leafnodes {{ reconnect: \"250ms\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{lp}\", nkey: \"{seed}\" }} ] }}"
                ),
            );
            let mut joined = false;
            let until = std::time::Instant::now() + std::time::Duration::from_secs(4);
            while std::time::Instant::now() < until && !joined {
                joined = support::http_json(hub_http, "/leafz")["leafnodes"].as_u64() == Some(1);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            assert_eq!(
                joined,
                joins,
                "hub {hub_kind:?}, seed for {}",
                if joins {
                    "the right key"
                } else {
                    "another key"
                }
            );
            if !joins {
                // It dialled and was turned away, not merely slow.
                let logs = format!("{}{}", hub.log(), leaf.log());
                assert!(
                    logs.contains("Authorization Violation")
                        || logs.contains("authentication error"),
                    "hub {hub_kind:?}: no refusal logged:\n{logs}"
                );
            }
        }
    }
}

/// `max_subscriptions` holds for a leaf's interest as for a client's: past it, each LS+
/// gets nats-server's -ERR, is not served, and the link stays. (Route interest is the
/// sum of a peer's clients, each limited on its own server: neither server caps it.)
#[test]
fn a_leaf_past_max_subscriptions_gets_the_error_and_no_more_interest() {
    for kind in Impl::all() {
        let lp = free_port();
        let mut s = Server::start(
            kind,
            &format!("max_subscriptions: 3\nleafnodes {{ listen: \"127.0.0.1:{lp}\" }}"),
        );
        let before = Footprint::of(&s);
        let mut leaf = support::Raw::connect(lp);
        let mut frames =
            String::from("CONNECT {\"verbose\":false,\"name\":\"l1\",\"headers\":true}\r\n");
        for i in 0..2000 {
            frames.push_str(&format!("LS+ s.{i}\r\n"));
        }
        leaf.send(frames.as_bytes());
        let got = leaf.drain(std::time::Duration::from_millis(1000));
        assert_eq!(
            got.matches("-ERR 'maximum subscriptions exceeded'\r\n")
                .count(),
            1997,
            "{kind:?}: {}",
            &got[..got.len().min(300)]
        );
        let mut c = s.raw();
        c.send(b"CONNECT {\"verbose\":false}\r\n");
        for i in 0..6 {
            c.send(format!("PUB s.{i} 1\r\nx\r\n").as_bytes());
        }
        c.sync();
        let got = leaf.drain(std::time::Duration::from_millis(500));
        assert!(!leaf.closed, "{kind:?}: the link was closed");
        assert_eq!(got.matches("LMSG s.").count(), 3, "{kind:?}: {got:?}");
        drop((leaf, c));
        before.assert_bounded(&mut s, 4, 32, "2,000 LS+ past max_subscriptions");
    }
}

/// `leafnodes { min_version }`: a leaf that names an older version, or none, is
/// turned away after CONNECT with nats-server's -ERR; a newer one is served.
#[test]
fn a_leaf_older_than_min_version_is_turned_away() {
    for kind in Impl::all() {
        let lp = free_port();
        let mut s = Server::start(
            kind,
            &format!("leafnodes {{ listen: \"127.0.0.1:{lp}\", min_version: \"2.10.0\" }}"),
        );
        let before = Footprint::of(&s);
        for version in [Some("2.9.9"), None] {
            let mut leaf = support::Raw::connect(lp);
            let v = version
                .map(|v| format!(",\"version\":\"{v}\""))
                .unwrap_or_default();
            leaf.send(
                format!(
                    "CONNECT {{\"verbose\":false,\"name\":\"l1\",\"headers\":true{v}}}\r\nPING\r\n"
                )
                .as_bytes(),
            );
            let got = leaf.expect_closed();
            assert!(
                got.contains(
                    "-ERR 'connection rejected since minimum version required is \"2.10.0\"'\r\n"
                ),
                "{kind:?} {version:?}: {got:?}"
            );
        }
        let mut leaf = support::Raw::connect(lp);
        leaf.send(b"CONNECT {\"verbose\":false,\"name\":\"l1\",\"headers\":true,\"version\":\"2.11.0\"}\r\nPING\r\n");
        let got = leaf.drain(std::time::Duration::from_millis(500));
        assert!(!leaf.closed && !got.contains("-ERR"), "{kind:?}: {got:?}");
        drop(leaf);
        before.assert_bounded(&mut s, 4, 32, "old leaves");
    }
}

/// A leaf that never sends CONNECT is closed after `leafnodes { authorization {
/// timeout } }` with nats-server's -ERR, not after the server-wide timeout.
#[test]
fn a_silent_leaf_is_closed_after_the_leafnode_authorization_timeout() {
    for kind in Impl::all() {
        let lp = free_port();
        let mut s = Server::start(
            kind,
            &format!(
                "authorization {{ user: c, password: c, timeout: 30 }}\n\
                 leafnodes {{ listen: \"127.0.0.1:{lp}\", authorization {{ user: l, password: l, timeout: 1 }} }}"
            ),
        );
        let before = Footprint::of(&s);
        let started = std::time::Instant::now();
        let mut leaf = support::Raw::connect(lp);
        let got = leaf.expect_closed();
        let waited = started.elapsed();
        assert!(
            got.contains("-ERR 'Authentication Timeout'"),
            "{kind:?}: {got:?}"
        );
        assert!(
            waited >= std::time::Duration::from_millis(800)
                && waited < std::time::Duration::from_secs(4),
            "{kind:?}: closed after {waited:?}"
        );
        before.assert_bounded(&mut s, 4, 32, "a silent leaf");
    }
}
