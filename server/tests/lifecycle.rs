//! The server's life as operators drive it: reload on a signal, lame duck, graceful
//! stop, pid files.

mod support;
use std::process::Command;
use std::time::Duration;
use support::{Impl, Server};

fn signal(s: &Server, cmd: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_canopy-server"))
        .arg("--signal")
        .arg(format!("{cmd}={}", s.pid()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn login(s: &Server, user: &str, pass: &str) -> support::Raw {
    let mut c = s.raw();
    c.send(
        format!("CONNECT {{\"verbose\":false,\"user\":\"{user}\",\"pass\":\"{pass}\"}}\r\n")
            .as_bytes(),
    );
    c
}

#[test]
fn reload_applies_new_users_and_permissions_and_revokes_removed_users() {
    let before =
        "authorization { users: [ {user: alice, password: a}, {user: bob, password: b} ] }";
    let after = "authorization { users: [ {user: alice, password: a, permissions: {publish: {deny: [\"foo\"]}}}, {user: carol, password: c} ] }";
    for kind in Impl::all() {
        let s = Server::start(kind, before);
        let mut alice = login(&s, "alice", "a");
        assert_eq!(alice.sync(), "");
        let mut bob = login(&s, "bob", "b");
        assert_eq!(bob.sync(), "");
        s.rewrite_config(after);
        if kind == Impl::Canopy {
            signal(&s, "reload");
        } else {
            Command::new("nats-server")
                .args(["--signal", &format!("reload={}", s.pid())])
                .status()
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(500));
        // A user removed by a reload is disconnected without an -ERR, as nats-server does.
        assert_eq!(bob.expect_closed(), "", "{kind:?}: bob was removed");
        alice.send(b"PUB foo 1\r\nx\r\n");
        assert_eq!(
            alice.sync(),
            "-ERR 'Permissions Violation for Publish to \"foo\"'\r\n",
            "{kind:?}"
        );
        let mut carol = login(&s, "carol", "c");
        assert_eq!(carol.sync(), "", "{kind:?}: carol was added");
    }
}

#[test]
fn a_broken_config_on_reload_is_refused_and_the_server_keeps_running() {
    let mut s = Server::start(
        Impl::Canopy,
        "authorization { users: [ {user: alice, password: a} ] }",
    );
    let mut alice = login(&s, "alice", "a");
    assert_eq!(alice.sync(), "");
    s.rewrite_config("authorization { users: [ {user: alice, password: a} ] }\nbogus_key: 1");
    signal(&s, "reload");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        s.log().contains("Failed to reload server configuration"),
        "{}",
        s.log()
    );
    assert!(
        s.log().contains("unknown field \"bogus_key\""),
        "{}",
        s.log()
    );
    alice.send(b"SUB a 1\r\nPUB a 1\r\nk\r\n");
    assert_eq!(alice.sync(), "MSG a 1 1\r\nk\r\n");
    assert!(s.wait_exit(Duration::from_millis(10)).is_none());
}

#[test]
fn lame_duck_tells_clients_and_stops_accepting() {
    for kind in Impl::all() {
        let mut s = Server::start(
            kind,
            "lame_duck_duration: \"30s\"\nlame_duck_grace_period: \"1s\"",
        );
        let mut c = s.raw();
        // Only clients that take async INFO (protocol 1) are told.
        c.send(b"CONNECT {\"verbose\":false,\"protocol\":1}\r\n");
        c.sync();
        if kind == Impl::Canopy {
            signal(&s, "ldm");
        } else {
            Command::new("nats-server")
                .args(["--signal", &format!("ldm={}", s.pid())])
                .status()
                .unwrap();
        }
        let mut info = String::new();
        while !info.contains("\"ldm\":true") {
            info = c
                .read_line(Duration::from_secs(5))
                .expect("an INFO announcing lame duck mode");
            assert!(info.starts_with("INFO "), "{kind:?}: {info}");
        }
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", s.port)).is_err(),
            "{kind:?}: still accepting"
        );
        if kind == Impl::Canopy {
            assert!(
                s.wait_exit(Duration::from_secs(10)).is_some(),
                "the server stops after lame duck"
            );
            assert!(c.expect_closed().is_empty());
        }
    }
}

#[test]
fn sigterm_stops_the_server_cleanly_and_removes_its_pid_file() {
    let dir = support::TempDir::new("pid");
    let pid_file = dir.0.join("server.pid");
    let mut s = Server::start(
        Impl::Canopy,
        &format!(
            "pid_file: \"{}\"\nports_file_dir: \"{}\"",
            pid_file.display(),
            dir.0.display()
        ),
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        s.pid().to_string()
    );
    let ports: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".ports"))
        .collect();
    assert_eq!(ports.len(), 1, "one ports file");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ports[0].path()).unwrap()).unwrap();
    assert_eq!(json["nats"][0], format!("nats://127.0.0.1:{}", s.port));
    signal(&s, "term");
    let status = s
        .wait_exit(Duration::from_secs(5))
        .expect("exits on SIGTERM");
    assert!(status.success());
    assert!(s.log().contains("Server Exiting.."), "{}", s.log());
    assert!(!pid_file.exists(), "pid file removed on exit");
}

#[test]
fn a_port_in_use_is_fatal_with_the_official_log_shape() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_canopy-server"))
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.contains("[FTL] Error listening on port: 127.0.0.1:"),
        "{log}"
    );
    assert!(last.starts_with('['), "[PID] prefix: {log}");
}

#[test]
fn trace_logs_ops_to_the_log_file_and_never_the_password() {
    let dir = support::TempDir::new("log");
    let log = dir.0.join("server.log");
    let s = Server::start(
        Impl::Canopy,
        &format!(
            "logfile: \"{}\"\ntrace: true\nauthorization {{ user: u, password: hunter2 }}",
            log.display()
        ),
    );
    let mut c = s.raw();
    c.send(b"CONNECT {\"verbose\":false,\"user\":\"u\",\"pass\":\"hunter2\"}\r\nSUB foo 1\r\n");
    c.sync();
    std::thread::sleep(Duration::from_millis(200));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("[TRC]") && text.contains("<<- [SUB foo 1]"),
        "{text}"
    );
    assert!(text.contains("[INF] Server is ready"), "{text}");
    assert!(text.contains("\"pass\":\"[REDACTED]\""), "{text}");
    assert!(
        !text.contains("hunter2"),
        "the password leaked into the log: {text}"
    );
}

#[test]
fn port_minus_one_picks_a_free_port_and_the_ports_file_tells_which() {
    let dir = support::TempDir::new("ports");
    let mut child = Command::new(env!("CARGO_BIN_EXE_canopy-server"))
        .args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
        .arg(&dir.0)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut url = None;
    for _ in 0..100 {
        if let Some(e) = std::fs::read_dir(&dir.0)
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().ends_with(".ports"))
        {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(
                &std::fs::read_to_string(e.path()).unwrap_or_default(),
            ) {
                url = v["nats"][0].as_str().map(str::to_string);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = url.expect("a ports file");
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "listening on {url}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// `logfile_size_limit` rotates the log file as nats-server does: the backup is
/// named `<file>.<timestamp>`, the new file starts by naming it, and with
/// `logfile_max_num: 3` at most three files remain (the oldest are purged).
#[test]
fn the_log_file_rotates_past_its_size_limit_and_keeps_max_num_files() {
    for kind in Impl::all() {
        let dir = support::TempDir::new("rotate");
        let log = dir.0.join("n.log");
        let s = Server::start(
            kind,
            &format!(
                "logfile: \"{}\"\nlogfile_size_limit: 2KB\nlogfile_max_num: 3\ndebug: true",
                log.display()
            ),
        );
        for _ in 0..40 {
            let mut c = s.raw();
            c.send(b"CONNECT {\"verbose\":false}\r\n");
            c.sync();
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let mut files: Vec<String> = std::fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("n.log"))
            .collect();
        files.sort();
        assert_eq!(files.len(), 3, "{kind:?}: {files:?}");
        let backup = &files[1];
        assert!(
            backup.len() == "n.log.2026.12.04.03.06.17.862471583".len()
                && backup.starts_with("n.log.20"),
            "{kind:?}: {backup}"
        );
        let current = std::fs::read_to_string(&log).unwrap();
        assert!(
            current
                .lines()
                .next()
                .unwrap()
                .contains("[INF] Rotated log, backup saved as \""),
            "{kind:?}: {current}"
        );
        assert!(
            std::fs::read_dir(&dir.0).unwrap().all(|e| {
                use std::os::unix::fs::PermissionsExt;
                e.unwrap().metadata().unwrap().permissions().mode() & 0o007 == 0
            }),
            "{kind:?}: a log file is readable by others"
        );
    }
}

/// A remote that cannot be dialled is reported at error level on its first attempt
/// and then every `connect_error_reports`-th (default 3600), the rest at debug, on
/// both servers.
#[test]
fn connect_error_reports_sets_how_often_a_failing_remote_is_logged_as_an_error() {
    let dead = support::free_port();
    let errors = |log: &str| {
        log.lines()
            .filter(|l| l.contains("[ERR]") && l.contains("Error trying to connect as leafnode"))
            .count()
    };
    for kind in Impl::all() {
        let conf = |extra: &str| {
            format!("debug: true\n{extra}\nleafnodes {{ reconnect: \"100ms\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{dead}\" }} ] }}")
        };
        let quiet = Server::start(kind, &conf(""));
        let chatty = Server::start(kind, &conf("connect_error_reports: 2"));
        std::thread::sleep(Duration::from_millis(2500));
        let (q, c) = (quiet.log(), chatty.log());
        assert_eq!(errors(&q), 1, "{kind:?}, default reports:\n{q}");
        assert!(
            q.contains("[DBG]") && q.matches("Error trying to connect as leafnode").count() > 3,
            "{kind:?}: later attempts go to debug:\n{q}"
        );
        assert!(errors(&c) >= 4, "{kind:?}, every 2nd attempt:\n{c}");
    }
}

/// Once a remote's link has stood, a hub that goes away is reported at error level on
/// every `reconnect_error_reports`-th failed dial (default: each one), the rest at
/// debug, on both servers.
#[test]
fn reconnect_error_reports_sets_how_often_a_lost_hub_is_logged_as_an_error() {
    let errors = |log: &str| {
        log.lines()
            .filter(|l| l.contains("[ERR]") && l.contains("Error trying to connect as leafnode"))
            .count()
    };
    for kind in Impl::all() {
        let mut seen = Vec::new();
        for reports in ["", "reconnect_error_reports: 1000"] {
            let lp = support::free_port();
            let mut hub =
                Server::start(kind, &format!("leafnodes {{ listen: \"127.0.0.1:{lp}\" }}"));
            let leaf = Server::start(
                kind,
                &format!("debug: true\n{reports}\nleafnodes {{ reconnect: \"100ms\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{lp}\" }} ] }}"),
            );
            let until = std::time::Instant::now() + Duration::from_secs(5);
            while !leaf.log().contains("Leafnode connection created") {
                assert!(
                    std::time::Instant::now() < until,
                    "{kind:?}: no link:\n{}",
                    leaf.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(300));
            hub.kill();
            std::thread::sleep(Duration::from_millis(2500));
            let log = leaf.log();
            assert!(
                log.matches("Error trying to connect as leafnode").count() >= 4,
                "{kind:?} {reports:?}: too few redials to judge:\n{log}"
            );
            seen.push(errors(&log));
        }
        assert!(seen[0] >= 4, "{kind:?}, default: {} errors", seen[0]);
        assert_eq!(seen[1], 1, "{kind:?}, every 1000th: {} errors", seen[1]);
    }
}
