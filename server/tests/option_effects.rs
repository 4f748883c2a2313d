//! Options nats-server users write have their effect, on canopy-server and nats-server
//! alike: the same config given to both, and the same outcome a user would check.

mod support;
use serde_json::Value;
use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::pki::{Pki, Port};
use support::{free_port, http_json, Impl, Raw, Server, TempDir};

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

/// Connect to `host:port` and read the INFO line the server sends first.
fn info_at(host: &str, port: u16) -> (TcpStream, Value) {
    let mut s = TcpStream::connect((host, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match s.read(&mut b) {
            Ok(1) => line.push(b[0]),
            other => panic!(
                "no INFO from {host}:{port} ({other:?}): {:?}",
                String::from_utf8_lossy(&line)
            ),
        }
    }
    let text = String::from_utf8_lossy(&line).into_owned();
    let json = text
        .strip_prefix("INFO ")
        .and_then(|j| serde_json::from_str(j.trim()).ok())
        .unwrap_or_else(|| panic!("not an INFO line: {text:?}"));
    (s, json)
}

/// The INFO a fresh client of `s` gets.
fn client_info(s: &Server) -> Value {
    let r = s.raw();
    serde_json::from_str(r.info.trim_start_matches("INFO ").trim()).unwrap()
}

/// Read from `s`, answering nothing, until the peer closes it or `within` has passed:
/// what arrived, and when the close came (None: still open).
fn watch_close(s: &mut TcpStream, within: Duration) -> (String, Option<Duration>) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.saturating_sub(start.elapsed());
        if left.is_zero() {
            return (String::from_utf8_lossy(&got).into_owned(), None);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => {
                return (
                    String::from_utf8_lossy(&got).into_owned(),
                    Some(start.elapsed()),
                )
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                return (
                    String::from_utf8_lossy(&got).into_owned(),
                    Some(start.elapsed()),
                )
            }
        }
    }
}

/// A connection that gets `timeout_secs` to do its part (TLS handshake, CONNECT)
/// and does nothing: still open a second and a half after the 2 s default would have
/// closed it — so the option was read — and closed within a few seconds of its own
/// timeout. Returns what the server sent before closing.
fn closes_after_its_own_timeout(
    kind: Impl,
    s: &mut TcpStream,
    timeout_secs: u64,
    what: &str,
) -> String {
    let (early, closed) = watch_close(s, Duration::from_millis(3500));
    assert!(
        closed.is_none(),
        "{kind:?}: {what} with timeout {timeout_secs}s was closed after {closed:?} (the 2 s default?); got {early:?}"
    );
    let (late, closed) = watch_close(s, Duration::from_secs(timeout_secs + 4));
    assert!(
        closed.is_some(),
        "{kind:?}: {what} still open 4 s after its {timeout_secs} s timeout; got {early:?}{late:?}"
    );
    format!("{early}{late}")
}

fn login(s: &Server, user: Option<&str>) -> Raw {
    let mut c = s.raw();
    let creds = user
        .map(|u| format!(",\"user\":\"{u}\",\"pass\":\"{u}\""))
        .unwrap_or_default();
    c.send(format!("CONNECT {{\"verbose\":false,\"headers\":true{creds}}}\r\n").as_bytes());
    assert_eq!(c.sync(), "", "{:?} login {user:?}", s.kind);
    c
}

fn urls(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("gave up waiting for {what} after {within:?}");
    false
}

fn leafnodes_at(http: u16) -> i64 {
    http_json(http, "/varz")["leafnodes"].as_i64().unwrap_or(-1)
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

/// A cluster member `name` on `cluster_port`, routing to the member on `seed` when
/// given; `top` and `cluster` add options at the top level and inside cluster {}.
fn member(
    kind: Impl,
    name: &str,
    cluster_port: u16,
    seed: Option<u16>,
    top: &str,
    cluster: &str,
) -> Server {
    let routes = seed
        .map(|p| format!("routes: [\"nats-route://127.0.0.1:{p}\"]"))
        .unwrap_or_default();
    Server::start(
        kind,
        &format!(
            "server_name: {name}\n{top}\ncluster {{\n name: c\n listen: \"127.0.0.1:{cluster_port}\"\n {routes}\n {cluster}\n}}"
        ),
    )
}

/// Wait until a message published on `b` reaches a subscriber on `a`: the route is up.
fn route_up(a: &Server, b: &Server) {
    let mut sub = login(a, None);
    sub.send(b"SUB route.probe 1\r\n");
    sub.sync();
    let mut publ = login(b, None);
    support::wait_for_flow(&mut publ, &mut sub, "route.probe", support::FLOW);
}

/// `client_advertise` is the client URL a server gossips to its cluster: clients of
/// the other member are given it in `connect_urls`, never the real listen address.
#[test]
fn client_advertise_is_the_url_other_members_give_their_clients() {
    for kind in Impl::all() {
        let (ca, cb) = (free_port(), free_port());
        let a = member(
            kind,
            "a",
            ca,
            None,
            "client_advertise: \"advertised.example:4999\"",
            "",
        );
        let b = member(kind, "b", cb, Some(ca), "", "");
        let mut last = Value::Null;
        let seen = wait_until("the advertised URL", support::FLOW, || {
            last = client_info(&b);
            urls(&last, "connect_urls").contains(&"advertised.example:4999".to_string())
        });
        assert!(
            seen,
            "{kind:?}: B's clients are not told A's advertised URL: {last}"
        );
        assert!(
            !urls(&last, "connect_urls").contains(&format!("127.0.0.1:{}", a.port)),
            "{kind:?}: B's clients are told A's real address: {last}"
        );
    }
}

/// nats-server also names the advertised host and port in the INFO its own clients
/// get (`"host":"advertised.example","port":4999`).
#[test]
fn client_advertise_is_the_host_and_port_in_the_servers_own_info() {
    // The oracle first: what is asserted is what nats-server does.
    for kind in Impl::all().into_iter().rev() {
        let s = Server::start(kind, "client_advertise: \"advertised.example:4999\"");
        let info = client_info(&s);
        assert_eq!(
            (info["host"].as_str(), info["port"].as_u64()),
            (Some("advertised.example"), Some(4999)),
            "{kind:?}: {info}"
        );
    }
}

/// cluster `no_advertise: true` on A: once the route is up, B's clients are not given
/// A's client URL (without it they are — the control).
#[test]
fn cluster_no_advertise_keeps_a_members_url_from_the_other_members_clients() {
    for kind in Impl::all() {
        // Control: without no_advertise, B's clients learn A's URL.
        let (ca, cb) = (free_port(), free_port());
        let a = member(kind, "a", ca, None, "", "");
        let b = member(kind, "b", cb, Some(ca), "", "");
        let a_url = format!("127.0.0.1:{}", a.port);
        let mut last = Value::Null;
        assert!(
            wait_until("A's URL at B", support::FLOW, || {
                last = client_info(&b);
                urls(&last, "connect_urls").contains(&a_url)
            }),
            "{kind:?} control: {last}"
        );
        drop((a, b));

        let (ca, cb) = (free_port(), free_port());
        let a = member(kind, "a", ca, None, "", "no_advertise: true");
        let b = member(kind, "b", cb, Some(ca), "", "");
        route_up(&a, &b);
        std::thread::sleep(Duration::from_millis(300));
        let info = client_info(&b);
        assert!(
            !urls(&info, "connect_urls").contains(&format!("127.0.0.1:{}", a.port)),
            "{kind:?}: B's clients are told A's URL: {info}"
        );
    }
}

/// nats-server gives the clients of a `no_advertise` member no `connect_urls` at all.
#[test]
fn cluster_no_advertise_gives_the_members_own_clients_no_connect_urls() {
    // The oracle first: what is asserted is what nats-server does.
    for kind in Impl::all().into_iter().rev() {
        let (ca, cb) = (free_port(), free_port());
        let a = member(kind, "a", ca, None, "", "no_advertise: true");
        let b = member(kind, "b", cb, Some(ca), "", "");
        route_up(&a, &b);
        std::thread::sleep(Duration::from_millis(300));
        let info = client_info(&a);
        assert!(
            urls(&info, "connect_urls").is_empty(),
            "{kind:?}: A's clients get connect_urls: {info}"
        );
    }
}

/// cluster `authorization { user, password, timeout }`: a route connection that never
/// sends CONNECT gets `-ERR 'Authentication Timeout'` and is closed after the timeout
/// (1 s: within 4 s; 4 s: still open at 3.5 s, closed by 8 s); a route with the wrong
/// password is an Authorization Violation.
#[test]
fn cluster_authorization_timeout_closes_a_route_that_never_sends_connect() {
    for kind in Impl::all() {
        for timeout in [1u64, 4] {
            let cp = free_port();
            let s = Server::start(
                kind,
                &format!(
                    "cluster {{ name: opt, listen: \"127.0.0.1:{cp}\"\n authorization {{ user: ru, password: rp, timeout: {timeout} }} }}"
                ),
            );
            let (mut r, info) = info_at("127.0.0.1", cp);
            assert_eq!(info["auth_required"], true, "{kind:?}: {info}");
            let got = if timeout == 1 {
                let (got, closed) = watch_close(&mut r, Duration::from_secs(4));
                assert!(closed.is_some(), "{kind:?}: route open after 4 s: {got:?}");
                got
            } else {
                closes_after_its_own_timeout(kind, &mut r, timeout, "a silent route")
            };
            assert!(
                got.ends_with("-ERR 'Authentication Timeout'\r\n"),
                "{kind:?} timeout {timeout}: {got:?}"
            );
            // nats-server logs `Router connection closed: Authentication Timeout`,
            // Canopy `Route connection closed: Authentication Timeout`.
            assert!(
                wait_until("the close in the log", Duration::from_secs(2), || s
                    .log()
                    .contains("connection closed: Authentication Timeout")),
                "{kind:?}: {}",
                s.log()
            );
            let (mut r, _) = info_at("127.0.0.1", cp);
            use std::io::Write;
            r.write_all(
                b"CONNECT {\"verbose\":false,\"user\":\"ru\",\"pass\":\"wrong\"}\r\nPING\r\n",
            )
            .unwrap();
            let (got, closed) = watch_close(&mut r, Duration::from_secs(3));
            assert!(closed.is_some(), "{kind:?}: {got:?}");
            assert!(
                got.ends_with("-ERR 'Authorization Violation'\r\n"),
                "{kind:?}: wrong route password: {got:?}"
            );
        }
    }
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
