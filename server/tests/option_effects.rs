//! Options nats-server users write have their effect, on canopy-server and nats-server
//! alike: the same config given to both, and the same outcome a user would check.
//! This file: the top level, client TLS and permissions; `option_effects_cluster.rs`
//! and `option_effects_leaf.rs` hold the cluster and leafnode options.

#[path = "support/effects.rs"]
mod effects;
mod support;
use effects::{client_info, closes_after_its_own_timeout, info_at, login, wait_until, watch_close};
use serde_json::Value;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::pki::{Pki, Port};
use support::{free_port, http_json, Impl, Server, TempDir};

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// A server started from a config written in full (no `listen:` line added), with
/// extra environment: for `host`/`port` keys and for the time zone of log stamps.
struct Proc {
    child: Child,
    dir: TempDir,
}

impl Proc {
    /// Start `kind` with the config `make` writes for `n` free ports; ready when it
    /// logged "Server is ready" and every port answers on `host`. A port taken by a
    /// parallel test before the server bound it: try again on fresh ports.
    fn start(
        kind: Impl,
        host: &str,
        n: usize,
        env: &[(&str, &str)],
        make: impl Fn(&[u16]) -> String,
    ) -> (Proc, Vec<u16>) {
        for _ in 0..4 {
            let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
            let dir = TempDir::new("opt");
            let conf = dir.0.join("server.conf");
            std::fs::write(&conf, make(&ports)).unwrap();
            let program = match kind {
                Impl::Canopy => PathBuf::from(env!("CARGO_BIN_EXE_canopy-server")),
                Impl::Official => PathBuf::from("nats-server"),
            };
            let log = std::fs::File::create(dir.0.join("server.log")).unwrap();
            let mut cmd = Command::new(program);
            cmd.arg("-c").arg(&conf).stdout(Stdio::null()).stderr(log);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let child = cmd.spawn().expect("start server");
            let mut p = Proc { child, dir };
            let deadline = Instant::now() + Duration::from_secs(10);
            let up = |p: &Proc| {
                p.log().contains("Server is ready")
                    && ports
                        .iter()
                        .all(|port| TcpStream::connect((host, *port)).is_ok())
            };
            let mut exited = false;
            while !up(&p) {
                if let Ok(Some(_)) = p.child.try_wait() {
                    eprintln!("{kind:?} exited at start: {}", p.log());
                    exited = true;
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{kind:?} did not start: {}",
                    p.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            if !exited {
                return (p, ports);
            }
        }
        panic!("{kind:?} did not start after 4 attempts");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------
// Top level
// ---------------------------------------------------------------------------------

/// `host` and `port` as separate keys, at top level and inside cluster {} and
/// leafnodes {}: each listener is bound there (127.0.0.2, not 127.0.0.1) and its INFO
/// names that host and port.
#[test]
fn host_and_port_keys_bind_the_client_route_and_leafnode_listeners() {
    for kind in Impl::all() {
        let (p, ports) = Proc::start(kind, "127.0.0.2", 3, &[], |p| {
            format!(
                "host: 127.0.0.2\nport: {}\ncluster {{\n  name: hp\n  host: 127.0.0.2\n  port: {}\n}}\nleafnodes {{\n  host: 127.0.0.2\n  port: {}\n}}\n",
                p[0], p[1], p[2]
            )
        });
        for (port, listener) in ports.iter().zip(["client", "route", "leafnode"]) {
            let (_s, info) = info_at("127.0.0.2", *port);
            assert_eq!(
                (info["host"].as_str(), info["port"].as_u64()),
                (Some("127.0.0.2"), Some(*port as u64)),
                "{kind:?} {listener} INFO: {info}\n{}",
                p.log()
            );
            assert!(
                TcpStream::connect(("127.0.0.1", *port)).is_err(),
                "{kind:?}: the {listener} port also answers on 127.0.0.1"
            );
        }
    }
}

/// The stamp between the pid and the level of a log line, or None.
fn stamp(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?.split_once("] ")?.1;
    if rest.starts_with('[') {
        return None;
    }
    Some(rest.split_once(" [")?.0)
}

/// Minutes between a log stamp and the UTC clock now (positive: the stamp is ahead).
fn minutes_ahead_of_utc(kind: Impl, log: &str) -> i64 {
    let first = log.lines().next().unwrap_or_default();
    let at = stamp(first).unwrap_or_else(|| panic!("{kind:?}: no time stamp in {first:?}"));
    let t = chrono::NaiveDateTime::parse_from_str(at, "%Y/%m/%d %H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("{kind:?}: stamp {at:?}: {e}"));
    (t - chrono::Utc::now().naive_utc()).num_minutes()
}

/// `logtime: false` writes lines with no date or time: `[pid] [INF] ...`.
/// `logtime_utc: true` writes the stamp in UTC whatever the local zone (TZ is set to
/// Asia/Kolkata, UTC+5:30; without the option the stamp is local — the control).
#[test]
fn logtime_false_drops_the_stamp_and_logtime_utc_writes_it_in_utc() {
    let tz = [("TZ", "Asia/Kolkata")];
    for kind in Impl::all() {
        let (p, _) = Proc::start(kind, "127.0.0.1", 1, &tz, |p| {
            format!("listen: 127.0.0.1:{}\nlogtime: false\n", p[0])
        });
        let log = p.log();
        assert!(log.lines().count() > 3, "{kind:?}: {log}");
        for line in log.lines() {
            let (pid, rest) = line
                .strip_prefix('[')
                .and_then(|l| l.split_once("] "))
                .unwrap_or_else(|| panic!("{kind:?}: {line:?}"));
            assert!(
                pid.parse::<u32>().is_ok() && rest.starts_with("[INF] "),
                "{kind:?} logtime: false: {line:?}"
            );
        }

        let (local, _) = Proc::start(kind, "127.0.0.1", 1, &tz, |p| {
            format!("listen: 127.0.0.1:{}\n", p[0])
        });
        let ahead = minutes_ahead_of_utc(kind, &local.log());
        assert!(
            (ahead - 330).abs() <= 2,
            "{kind:?}: without logtime_utc the stamp is local (UTC+5:30): {ahead} min ahead of UTC\n{}",
            local.log()
        );

        let (utc, _) = Proc::start(kind, "127.0.0.1", 1, &tz, |p| {
            format!("listen: 127.0.0.1:{}\nlogtime_utc: true\n", p[0])
        });
        let ahead = minutes_ahead_of_utc(kind, &utc.log());
        assert!(
            ahead.abs() <= 2,
            "{kind:?} logtime_utc: true: the stamp is {ahead} min ahead of UTC\n{}",
            utc.log()
        );
    }
}

#[test]
fn max_closed_clients_bounds_the_closed_connections_connz_keeps() {
    for kind in Impl::all() {
        let http = free_port();
        let s = Server::start(kind, &format!("http_port: {http}\nmax_closed_clients: 2"));
        for i in 0..5 {
            let mut c = s.raw();
            c.send(format!("CONNECT {{\"verbose\":false,\"name\":\"c{i}\"}}\r\n").as_bytes());
            c.sync();
            drop(c);
            // One at a time, so the last two closed are c3 and c4.
            wait_until("the close to be recorded", Duration::from_secs(5), || {
                http_json(http, "/connz?state=closed")["connections"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|c| c["name"] == format!("c{i}")))
            });
        }
        let closed = http_json(http, "/connz?state=closed");
        let names: Vec<&str> = closed["connections"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names.len(), 2, "{kind:?}: {closed}");
        assert!(
            names.contains(&"c3") && names.contains(&"c4"),
            "{kind:?}: the two most recent are kept: {names:?}"
        );
        assert_eq!(closed["num_connections"], 2, "{kind:?}: {closed}");
        assert_eq!(closed["total"], 2, "{kind:?}: {closed}");
    }
}

/// `no_header_support: true`: the INFO says `headers: false` (true without it).
#[test]
fn no_header_support_announces_headers_false_in_info() {
    for kind in Impl::all() {
        let plain = Server::start(kind, "");
        assert_eq!(client_info(&plain)["headers"], true, "{kind:?} default");
        let s = Server::start(kind, "no_header_support: true");
        let info = client_info(&s);
        assert!(
            info.get("headers").is_none() || info["headers"] == false,
            "{kind:?}: {info}"
        );
    }
}

/// With `no_header_support: true`, HPUB is refused even from a client whose CONNECT
/// claims headers: nats-server closes the connection without a word (its log:
/// `message headers not supported`, then `Client connection closed: Protocol
/// Violation`) and delivers nothing.
#[test]
fn no_header_support_closes_a_client_that_publishes_headers_anyway() {
    // The oracle first: what is asserted is what nats-server does.
    for kind in Impl::all().into_iter().rev() {
        let s = Server::start(kind, "no_header_support: true");
        let mut sub = s.raw();
        sub.send(b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB a 1\r\n");
        assert_eq!(sub.sync(), "", "{kind:?}");
        let mut c = s.raw();
        c.send(b"CONNECT {\"verbose\":false,\"headers\":true}\r\n");
        assert_eq!(c.sync(), "", "{kind:?}");
        c.send(b"HPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
        let (got, closed) = watch_close(&mut c.stream, Duration::from_secs(5));
        assert!(
            closed.is_some(),
            "{kind:?}: the HPUB was taken; got {got:?}"
        );
        assert_eq!(got, "", "{kind:?}: the server wrote before closing");
        assert_eq!(sub.sync(), "", "{kind:?}: the HPUB was delivered");
        assert!(
            s.log().contains("message headers not supported"),
            "{kind:?}: {}",
            s.log()
        );
    }
}

/// `allow_non_tls: true` beside a tls block: INFO says TLS is available, not
/// required; a plain client is served, and so is a TLS client.
#[test]
fn allow_non_tls_serves_plain_clients_beside_tls_clients() {
    let pki = Pki::new();
    for kind in Impl::all() {
        let s = Server::start(kind, &format!("{}\nallow_non_tls: true", pki.tls_block("")));
        let mut c = s.raw();
        let info: Value = serde_json::from_str(c.info.trim_start_matches("INFO ").trim()).unwrap();
        assert_eq!(info["tls_available"], true, "{kind:?}: {info}");
        assert!(info["tls_required"] != true, "{kind:?}: {info}");
        c.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n");
        c.expect(b"PONG\r\n");
        assert_eq!(
            handshake(
                s.port,
                &pki,
                &[&rustls::version::TLS13, &rustls::version::TLS12]
            ),
            Ok("TLSv1_3".into()),
            "{kind:?}: a TLS client"
        );
    }
}

/// `no_system_account: true`: /varz names no system account (`$SYS` without it).
/// nats-server leaves the key out; Canopy writes `"system_account": null` — either
/// way no account is named.
#[test]
fn no_system_account_leaves_varz_without_a_system_account() {
    for kind in Impl::all() {
        let http = free_port();
        let _d = Server::start(kind, &format!("http_port: {http}"));
        assert_eq!(
            http_json(http, "/varz")["system_account"],
            "$SYS",
            "{kind:?} default"
        );
        drop(_d);
        let http = free_port();
        let _s = Server::start(kind, &format!("http_port: {http}\nno_system_account: true"));
        let varz = http_json(http, "/varz");
        let named = varz
            .get("system_account")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        assert_eq!(
            named,
            "",
            "{kind:?}: system_account is {:?}",
            varz.get("system_account")
        );
    }
}

// ---------------------------------------------------------------------------------
// Client TLS
// ---------------------------------------------------------------------------------

/// A client-port handshake offering only `versions`: the TLS version agreed.
fn handshake(
    port: u16,
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<String, String> {
    pki.handshake(Port::Client, port, versions, &[], &[])
        .map(|a| a.version)
}

/// top-level `tls { min_version: "1.3" }`: a TLS 1.2-only client is refused (and is
/// served without the option — the control); a TLS 1.3 client is served.
#[test]
fn tls_min_version_refuses_a_tls_1_2_client_and_serves_tls_1_3() {
    let pki = Pki::new();
    for kind in Impl::all() {
        let plain = Server::start(kind, &pki.tls_block(""));
        assert_eq!(
            handshake(plain.port, &pki, &[&rustls::version::TLS12]),
            Ok("TLSv1_2".into()),
            "{kind:?} control"
        );
        let s = Server::start(kind, &pki.tls_block("min_version: \"1.3\""));
        let old = handshake(s.port, &pki, &[&rustls::version::TLS12]);
        assert!(old.is_err(), "{kind:?}: TLS 1.2 was served: {old:?}");
        assert_eq!(
            handshake(s.port, &pki, &[&rustls::version::TLS13]),
            Ok("TLSv1_3".into()),
            "{kind:?}"
        );
    }
}

/// top-level `tls { timeout: 4 }`: a client of a TLS-required server that reads the
/// INFO and never starts the handshake is closed after about 4 s.
#[test]
fn tls_timeout_closes_a_client_that_never_handshakes() {
    let pki = Pki::new();
    for kind in Impl::all() {
        let s = Server::start(kind, &pki.tls_block("timeout: 4"));
        let (mut conn, info) = info_at("127.0.0.1", s.port);
        assert_eq!(info["tls_required"], true, "{kind:?}: {info}");
        closes_after_its_own_timeout(kind, &mut conn, 4, "a client that never handshakes");
    }
}

// ---------------------------------------------------------------------------------
// Permissions
// ---------------------------------------------------------------------------------

/// `allow_responses: { max: 2, expires: "1s" }`: a responder may publish two replies
/// to a request's reply subject, the third is a Permissions Violation; and a reply
/// sent after `expires` is refused too. Publishing elsewhere is refused throughout.
#[test]
fn allow_responses_lets_a_responder_reply_max_times_within_expires() {
    let config = r#"authorization { users: [
  {user: svc, password: svc, permissions: { subscribe: "req.>", allow_responses: { max: 2, expires: "1s" } } },
  {user: cli, password: cli}
] }"#;
    for kind in Impl::all() {
        let s = Server::start(kind, config);
        let mut svc = login(&s, Some("svc"));
        svc.send(b"SUB req.x 1\r\n");
        svc.sync();
        let mut cli = login(&s, Some("cli"));
        cli.send(b"SUB _INBOX.a 1\r\nSUB other 2\r\nPUB req.x _INBOX.a 1\r\nq\r\n");
        cli.sync();
        svc.expect(b"MSG req.x 1 _INBOX.a 1\r\nq\r\n");
        svc.send(b"PUB _INBOX.a 2\r\nr1\r\nPUB _INBOX.a 2\r\nr2\r\nPUB _INBOX.a 2\r\nr3\r\nPUB other 2\r\nzz\r\n");
        assert_eq!(
            svc.sync(),
            "-ERR 'Permissions Violation for Publish to \"_INBOX.a\"'\r\n-ERR 'Permissions Violation for Publish to \"other\"'\r\n",
            "{kind:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            cli.sync(),
            "MSG _INBOX.a 1 2\r\nr1\r\nMSG _INBOX.a 1 2\r\nr2\r\n",
            "{kind:?}: two replies, no more"
        );

        cli.send(b"SUB _INBOX.b 3\r\nPUB req.x _INBOX.b 1\r\nq\r\n");
        cli.sync();
        svc.expect(b"MSG req.x 1 _INBOX.b 1\r\nq\r\n");
        std::thread::sleep(Duration::from_millis(1500));
        svc.send(b"PUB _INBOX.b 4\r\nlate\r\n");
        assert_eq!(
            svc.sync(),
            "-ERR 'Permissions Violation for Publish to \"_INBOX.b\"'\r\n",
            "{kind:?}: a reply after expires"
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(cli.sync(), "", "{kind:?}: the late reply was delivered");
    }
}
