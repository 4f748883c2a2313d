//! Details that launch helpers, scripts and client libraries' test harnesses rely on
//! when they treat the server as a black box: start-up failures worded and exited as
//! nats-server words and exits them, argument errors closed as it closes them, and
//! monitoring queries answered as it answers them. Each test runs against
//! canopy-server and the official nats-server with the same expectation.

mod support;
use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{free_port, http_get, http_json, Impl, Server, TempDir};

fn program(kind: Impl) -> &'static str {
    match kind {
        Impl::Canopy => env!("CARGO_BIN_EXE_canopy-server"),
        Impl::Official => "nats-server",
    }
}

/// Run the server with `args` until it exits (it must, within 10 s); its exit code
/// and everything it printed.
fn run_to_exit(kind: Impl, dir: &TempDir, args: &[&str]) -> (i32, String) {
    let mut child = Command::new(program(kind))
        .args(args)
        .current_dir(&dir.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start server");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            panic!("{kind:?} {args:?} kept running: it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    (status.code().unwrap_or(-1), text)
}

/// A start-up failure: exit code 1 and the words nats-server prints.
fn refuses(kind: Impl, dir: &TempDir, args: &[&str], words: &[&str]) {
    let (code, text) = run_to_exit(kind, dir, args);
    assert_eq!(code, 1, "{kind:?} {args:?}: exit code; printed: {text}");
    for w in words {
        assert!(text.contains(w), "{kind:?} {args:?}: no {w:?} in: {text}");
    }
}

#[test]
fn a_file_that_does_not_parse_is_a_parse_error_with_its_line() {
    for kind in Impl::all() {
        let dir = TempDir::new("dropin");
        std::fs::write(dir.0.join("port.conf"), "port: 4222\nfoo bar baz {\n").unwrap();
        refuses(kind, &dir, &["-c", "port.conf"], &["Parse error on line 2"]);
        refuses(
            kind,
            &dir,
            &["-t", "-c", "port.conf"],
            &["Parse error on line 2"],
        );
        std::fs::write(dir.0.join("open.conf"), "a = {\n").unwrap();
        refuses(kind, &dir, &["-c", "open.conf"], &["Parse error on line 2"]);
    }
}

#[test]
fn canopy_parse_errors_keep_their_file_line_and_column() {
    let dir = TempDir::new("dropin");
    std::fs::write(dir.0.join("port.conf"), "port: 4222\nfoo bar baz {\n").unwrap();
    let (_, text) = run_to_exit(Impl::Canopy, &dir, &["-t", "-c", "port.conf"]);
    assert!(
        text.contains("canopy-server: Parse error on line 2 (port.conf:2:9): "),
        "{text}"
    );
    assert!(text.contains("= help: "), "{text}");
}

#[test]
fn an_unknown_key_is_named_with_its_file_and_line() {
    for kind in Impl::all() {
        let dir = TempDir::new("dropin");
        std::fs::write(dir.0.join("k.conf"), "port: 4222\nbogus_key: 1\n").unwrap();
        refuses(
            kind,
            &dir,
            &["-c", "k.conf"],
            &["k.conf:2:", "unknown field \"bogus_key\""],
        );
    }
}

#[test]
fn a_missing_config_file_is_reported_as_nats_server_reports_it() {
    for kind in Impl::all() {
        let dir = TempDir::new("dropin");
        refuses(
            kind,
            &dir,
            &["-c", "nope.conf"],
            &["open nope.conf: no such file or directory"],
        );
    }
}

#[test]
fn a_client_port_in_use_is_reported_with_the_go_listen_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for kind in Impl::all() {
        let dir = TempDir::new("dropin");
        refuses(
            kind,
            &dir,
            &["-a", "127.0.0.1", "-p", &port],
            &[&format!(
                "[FTL] Error listening on port: 127.0.0.1:{port}, \"listen tcp 127.0.0.1:{port}: bind: address already in use\""
            )],
        );
    }
}

#[test]
fn leaf_cluster_and_monitor_ports_in_use_are_reported_as_nats_server_reports_them() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let in_use = format!("listen tcp 127.0.0.1:{port}: bind: address already in use");
    let cases = [
        (
            format!("leafnodes {{ listen: \"127.0.0.1:{port}\" }}"),
            format!("Error listening on leafnode port: {port} - {in_use}"),
        ),
        (
            format!("cluster {{ name: x, listen: \"127.0.0.1:{port}\" }}"),
            format!("Error listening on router port: {port} - {in_use}"),
        ),
        (
            format!("http: \"127.0.0.1:{port}\""),
            format!("Can't start monitoring: can't listen to the monitor port: {in_use}"),
        ),
    ];
    for kind in Impl::all() {
        for (conf, words) in &cases {
            let dir = TempDir::new("dropin");
            let client = free_port();
            std::fs::write(
                dir.0.join("s.conf"),
                format!("listen: \"127.0.0.1:{client}\"\n{conf}\n"),
            )
            .unwrap();
            refuses(kind, &dir, &["-c", "s.conf"], &[words]);
        }
    }
}

#[test]
fn an_address_that_is_not_this_hosts_is_refused_at_start() {
    // TEST-NET-3: documentation addresses no host here holds, so the bind fails,
    // sending nothing.
    let port = free_port().to_string();
    for kind in Impl::all() {
        let dir = TempDir::new("dropin");
        refuses(
            kind,
            &dir,
            &["-a", "203.0.113.7", "-p", &port],
            &[&format!(
                "Error listening on port: 203.0.113.7:{port}, \"listen tcp 203.0.113.7:{port}: bind: cannot assign requested address\""
            )],
        );
    }
}

#[test]
fn a_jetstream_store_dir_that_is_a_file_is_refused_at_start() {
    let port = free_port().to_string();
    for kind in Impl::all() {
        let dir = TempDir::new("dropin");
        std::fs::write(dir.0.join("afile"), "").unwrap();
        refuses(
            kind,
            &dir,
            &["-a", "127.0.0.1", "-p", &port, "-js", "-sd", "afile"],
            &["Can't start JetStream: storage directory is not a directory"],
        );
    }
}

fn each(test: impl Fn(&Server)) {
    for kind in Impl::all() {
        let s = Server::start(kind, "");
        eprintln!("-- against {kind:?}");
        test(&s);
    }
}

fn client(s: &Server, verbose: bool) -> support::Raw {
    let mut c = s.raw();
    c.send(format!("CONNECT {{\"verbose\":{verbose},\"echo\":true}}\r\n").as_bytes());
    c.sync();
    c
}

#[test]
fn unsub_with_a_max_that_is_not_a_number_unsubscribes_at_once() {
    each(|s| {
        let mut c = client(s, true);
        c.send(b"SUB foo 1\r\nUNSUB 1 abc\r\nPUB foo 2\r\nhi\r\n");
        // +OK for each op, no MSG: the subscription is gone, the connection stays.
        assert_eq!(c.sync(), "+OK\r\n+OK\r\n+OK\r\n");
        c.send(b"SUB bar 2\r\nUNSUB 2 -5\r\nPUB bar 2\r\nhi\r\n");
        assert_eq!(c.sync(), "+OK\r\n+OK\r\n+OK\r\n");
    });
}

#[test]
fn sub_and_unsub_with_wrong_argument_counts_close_silently() {
    each(|s| {
        for op in [
            &b"SUB a b c d\r\n"[..],
            b"SUB foo\r\n",
            b"UNSUB 1 2 3\r\n",
            b"PUB \r\n",
        ] {
            let mut c = client(s, false);
            c.send(op);
            assert_eq!(c.expect_closed(), "", "{}", String::from_utf8_lossy(op));
        }
    });
}

#[test]
fn an_op_that_needs_arguments_sent_bare_is_an_unknown_operation() {
    each(|s| {
        for op in [&b"PUB\r\n"[..], b"SUB\r\n", b"UNSUB\r\n"] {
            let mut c = client(s, false);
            c.send(op);
            assert_eq!(
                c.expect_closed(),
                "-ERR 'Unknown Protocol Operation'\r\n",
                "{}",
                String::from_utf8_lossy(op)
            );
        }
    });
}

#[test]
fn connz_and_accountz_queries_are_answered_as_nats_server_answers_them() {
    for kind in Impl::all() {
        let http = free_port();
        let s = Server::start(kind, &format!("http: \"127.0.0.1:{http}\""));
        let _c = client(&s, false);
        let page = |path: &str| http_json(http, path);
        // Out-of-range paging is clamped: the default limit, offset 0.
        let v = page("/connz?limit=-1");
        assert_eq!(
            (v["limit"].as_u64(), v["offset"].as_u64()),
            (Some(1024), Some(0)),
            "{kind:?}"
        );
        assert!(v["num_connections"].as_u64() >= Some(1), "{kind:?}: {v}");
        let v = page("/connz?offset=-5");
        assert_eq!(
            (v["limit"].as_u64(), v["offset"].as_u64()),
            (Some(1024), Some(0)),
            "{kind:?}"
        );
        // One connection by cid is a page of one.
        let v = page("/connz?cid=999999");
        assert_eq!(
            (v["limit"].as_u64(), v["num_connections"].as_u64()),
            (Some(1), Some(0)),
            "{kind:?}"
        );
        for (path, text) in [
            (
                "/connz?cid=abc",
                "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"abc\": invalid syntax",
            ),
            (
                "/connz?limit=abc",
                "Error decoding int for 'limit': strconv.Atoi: parsing \"abc\": invalid syntax",
            ),
            (
                "/connz?offset=x1",
                "Error decoding int for 'offset': strconv.Atoi: parsing \"x1\": invalid syntax",
            ),
            ("/accountz?acc=nope", "Account nope does not exist"),
        ] {
            let (status, _, body) = http_get(http, path);
            assert_eq!((status, body.trim()), (400, text), "{kind:?} {path}");
        }
        let v = page("/accountz?acc=$G");
        assert_eq!(v["account_detail"]["account_name"], "$G", "{kind:?}");
    }
}

/// `include` reads another file in place, relative to the including one: its
/// options hold (here max_payload, seen in INFO), on both servers.
#[test]
fn an_included_file_sets_options_as_if_written_in_place() {
    for kind in Impl::all() {
        let dir = TempDir::new("include");
        std::fs::write(dir.0.join("limits.inc"), "max_payload: 4096\n").unwrap();
        let port = free_port();
        std::fs::write(
            dir.0.join("main.conf"),
            format!("listen: 127.0.0.1:{port}\ninclude \"limits.inc\"\n"),
        )
        .unwrap();
        let mut child = Command::new(program(kind))
            .arg("-c")
            .arg(dir.0.join("main.conf"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let info = loop {
            if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let mut line = String::new();
                std::io::BufRead::read_line(&mut std::io::BufReader::new(s), &mut line).unwrap();
                break line;
            }
            assert!(std::time::Instant::now() < until, "{kind:?} did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let _ = child.kill();
        let _ = child.wait();
        assert!(info.contains("\"max_payload\":4096"), "{kind:?}: {info}");
    }
}
