//! Flow control, run against canopy-server and the official nats-server alike: a
//! publisher that floods as fast as TCP allows never costs a subscriber that reads —
//! on one server, across a leaf link (both ways) and across a route — while a
//! subscriber that stops reading is still cut as a slow consumer, with the official
//! close reason, log line and counters, and the server's memory stays bounded.

mod support;
use std::io::{BufWriter, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{free_port, http_json, Impl, Server};

/// Small enough that every flood below is several times max_pending.
const MAX_PENDING: usize = 8 * 1024 * 1024;
/// Long enough that a stalled subscriber is cut by max_pending, not the deadline.
const LIMITS: &str = "max_pending: 8388608\nwrite_deadline: \"60s\"\n";

/// Where the publisher and the subscriber sit.
#[derive(Clone, Copy, Debug)]
enum Path {
    OneServer,
    /// Publisher on the leaf, subscriber on the hub.
    LeafToHub,
    /// Publisher on the hub, subscriber on the leaf.
    HubToLeaf,
    Route,
}

/// The servers of one path, kept alive while the flood runs.
struct Topology {
    servers: Vec<Server>,
    pub_port: u16,
    sub_port: u16,
}

fn topology(kind: Impl, path: Path) -> Topology {
    topology_with(kind, path, "")
}

/// As `topology`, with `sub_extra` in the config of the subscriber's server.
fn topology_with(kind: Impl, path: Path, sub_extra: &str) -> Topology {
    match path {
        Path::OneServer => {
            let s = Server::start(kind, &format!("{LIMITS}{sub_extra}\n"));
            let port = s.port;
            Topology {
                servers: vec![s],
                pub_port: port,
                sub_port: port,
            }
        }
        Path::LeafToHub | Path::HubToLeaf => {
            let lp = free_port();
            let hub = Server::start(
                kind,
                &format!("{LIMITS}leafnodes {{ listen: \"127.0.0.1:{lp}\" }}"),
            );
            let leaf = Server::start(
                kind,
                &format!(
                    "{LIMITS}leafnodes {{ remotes: [ {{ url: \"nats-leaf://127.0.0.1:{lp}\" }} ] }}"
                ),
            );
            let (pub_port, sub_port) = match path {
                Path::LeafToHub => (leaf.port, hub.port),
                _ => (hub.port, leaf.port),
            };
            Topology {
                servers: vec![hub, leaf],
                pub_port,
                sub_port,
            }
        }
        Path::Route => {
            let (pa, pb) = (free_port(), free_port());
            let a = Server::start(
                kind,
                &format!(
                    "{LIMITS}{sub_extra}\ncluster {{ name: flow, listen: \"127.0.0.1:{pa}\" }}"
                ),
            );
            let b = Server::start(
                kind,
                &format!(
                    "{LIMITS}cluster {{ name: flow, listen: \"127.0.0.1:{pb}\", routes: [\"nats-route://127.0.0.1:{pa}\"] }}"
                ),
            );
            let (pub_port, sub_port) = (b.port, a.port);
            Topology {
                servers: vec![a, b],
                pub_port,
                sub_port,
            }
        }
    }
}

fn connect(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\n")
        .unwrap();
    s
}

/// A subscription on `flood` that is in place everywhere: a probe published on the
/// publisher's server reaches it (the interest has crossed any link).
fn subscribe(t: &Topology) -> support::Raw {
    let mut sub = support::Raw::connect(t.sub_port);
    sub.send(b"CONNECT {\"verbose\":false,\"echo\":false}\r\nSUB flood 1\r\nSUB probe 2\r\n");
    sub.sync();
    let mut probe = support::Raw::connect(t.pub_port);
    probe.send(b"CONNECT {\"verbose\":false}\r\n");
    support::wait_for_flow(&mut probe, &mut sub, "probe", support::FLOW);
    sub
}

/// The flood's frames: `PUB flood <size>`, the payload starting with the message's
/// sequence number, zero-padded to 16 digits.
fn publish(port: u16, count: u64, size: usize) -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(move || {
        let mut s = connect(port);
        let start = Instant::now();
        {
            let mut w = BufWriter::with_capacity(64 * 1024, &mut s);
            let head = format!("PUB flood {size}\r\n");
            let filler = vec![b'x'; size - 16];
            for seq in 0..count {
                w.write_all(head.as_bytes()).unwrap();
                write!(w, "{seq:016}").unwrap();
                w.write_all(&filler).unwrap();
                w.write_all(b"\r\n").unwrap();
            }
            w.write_all(b"PING\r\n").unwrap();
            w.flush().unwrap();
        }
        // PONG: the server has read every frame.
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while support::find(&seen, b"PONG\r\n").is_none() {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "the publisher was closed");
            seen.extend_from_slice(&buf[..n]);
            if seen.len() > 8192 {
                seen.drain(..4096);
            }
        }
        start.elapsed()
    })
}

/// A decimal number at the start of `digits`, and where it ends.
fn number(digits: &[u8]) -> (u64, usize) {
    let mut n = 0u64;
    let mut i = 0;
    while i < digits.len() && digits[i].is_ascii_digit() {
        n = n * 10 + u64::from(digits[i] - b'0');
        i += 1;
    }
    (n, i)
}

/// Read `count` messages of `flood`, checking each arrives once and in order.
/// Returns how many arrived, and why reading stopped short. Written to be cheap even
/// unoptimised: the reader must not be what falls behind.
fn receive_in_order(s: &mut TcpStream, count: u64, size: usize) -> (u64, Option<String>) {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf: Vec<u8> = vec![0u8; 4 << 20];
    let (mut start, mut end) = (0usize, 0usize);
    let mut next = 0u64;
    while next < count {
        // Take every whole frame buffered.
        loop {
            let rest = &buf[start..end];
            let Some(eol) = memchr::memmem::find(rest, b"\r\n") else {
                break;
            };
            let line = &rest[..eol];
            if line.starts_with(b"MSG ") {
                // `MSG <subject> <sid> <size>`: the size is the last field.
                let last = memchr::memrchr(b' ', line).unwrap_or(0);
                let (len, _) = number(&line[last + 1..]);
                let len = len as usize;
                if rest.len() < eol + 2 + len + 2 {
                    break;
                }
                start += eol + 2 + len + 2;
                if !line.starts_with(b"MSG flood ") {
                    continue; // a late link probe
                }
                if len != size {
                    return (
                        next,
                        Some(format!("bad MSG line {:?}", String::from_utf8_lossy(line))),
                    );
                }
                let (seq, digits) = number(&rest[eol + 2..eol + 2 + 16]);
                if digits != 16 || seq != next {
                    return (next, Some(format!("expected message {next}, got {seq}")));
                }
                next += 1;
            } else {
                if line == b"PING" {
                    let _ = s.write_all(b"PONG\r\n");
                } else if line.starts_with(b"-ERR") {
                    return (next, Some(String::from_utf8_lossy(line).into_owned()));
                }
                start += eol + 2;
            }
        }
        if next >= count {
            break;
        }
        // Keep the partial frame, at the front.
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        if end == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match s.read(&mut buf[end..]) {
            Ok(0) => return (next, Some("the server closed the connection".into())),
            Ok(n) => end += n,
            Err(e) => return (next, Some(format!("read: {e}"))),
        }
    }
    (next, None)
}

/// nats-server holds back only client producers (`c.kind == CLIENT` in its
/// deliverMsg): a leaf link's or a route's reader is never slowed, so a subscriber
/// that reads slower than the link delivers is cut. Canopy holds back every producer.
/// True when that documented limit is what happened — the official server, a link
/// path, and a loss that is the subscriber cut as a slow consumer, in order up to the
/// cut (asserted) — reported loudly, not failed.
fn oracle_link_limit(
    kind: Impl,
    path: Path,
    got: u64,
    count: u64,
    why: Option<&str>,
    logs: &[String],
) -> bool {
    if kind != Impl::Official || matches!(path, Path::OneServer) || got == count {
        return false;
    }
    assert!(
        why == Some("the server closed the connection")
            && logs.iter().any(|l| l.contains("Slow Consumer Detected")),
        "{kind:?} {path:?}: {got} of {count}, not from a slow-consumer cut ({why:?}). Logs: {logs:?}"
    );
    eprintln!(
        "!!! nats-server {path:?} lost {} of {count} (its subscriber was cut): it does not hold back link producers",
        count - got
    );
    true
}

/// Flood `path` with `count` messages of `size` bytes (at least 4× max_pending in
/// all) and require every one at the subscriber, in order, on both servers.
/// The tests here run one at a time: each floods servers as fast as TCP allows, and on
/// a two-core machine several at once can starve a reading subscriber's thread for over
/// a second — a subscriber that gets nothing through for that long is treated as one
/// that stopped reading (and cut). The point here is what a *reading* subscriber gets.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn my_turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn flood_arrives_whole(path: Path, size: usize, count: u64) {
    // What the subscriber is sent: `MSG flood 1 <size>\r\n<payload>\r\n` each.
    let frame = format!("MSG flood 1 {size}\r\n").len() + size + 2;
    assert!(
        count as usize * frame >= 4 * MAX_PENDING,
        "the flood must exceed max_pending 4 times over"
    );
    for kind in Impl::all() {
        let t = topology(kind, path);
        let sub = subscribe(&t);
        let mut stream = sub.stream;
        let reader = std::thread::spawn(move || receive_in_order(&mut stream, count, size));
        let publisher = publish(t.pub_port, count, size);
        let took = publisher.join().expect("publisher");
        let (got, why) = reader.join().expect("subscriber");
        let logs: Vec<String> = t.servers.iter().map(|s| s.log()).collect();
        if oracle_link_limit(kind, path, got, count, why.as_deref(), &logs) {
            continue;
        }
        assert!(
            why.is_none() && got == count,
            "{kind:?} {path:?} {size} B: {got} of {count} arrived ({}); lost {}. Logs: {logs:?}",
            why.unwrap_or_default(),
            count - got
        );
        for log in &logs {
            assert!(
                !log.contains("Slow Consumer"),
                "{kind:?} {path:?}: a reading peer was cut: {log}"
            );
        }
        eprintln!("{kind:?} {path:?} {size} B: {count} of {count} in order, published in {took:?}");
    }
}

#[test]
fn one_server_flood_of_16_byte_messages_reaches_a_reading_subscriber_whole() {
    let _turn = my_turn();
    flood_arrives_whole(Path::OneServer, 16, 1_200_000);
}

#[test]
fn one_server_flood_of_16_kib_messages_reaches_a_reading_subscriber_whole() {
    let _turn = my_turn();
    flood_arrives_whole(Path::OneServer, 16 * 1024, 2_500);
}

#[test]
fn leaf_link_flood_of_16_byte_messages_reaches_the_hub_subscriber_whole() {
    let _turn = my_turn();
    flood_arrives_whole(Path::LeafToHub, 16, 1_200_000);
}

#[test]
fn leaf_link_flood_of_16_kib_messages_reaches_the_hub_subscriber_whole() {
    let _turn = my_turn();
    flood_arrives_whole(Path::LeafToHub, 16 * 1024, 2_500);
}

#[test]
fn leaf_link_flood_of_16_byte_messages_reaches_the_leaf_subscriber_whole() {
    let _turn = my_turn();
    flood_arrives_whole(Path::HubToLeaf, 16, 1_200_000);
}

#[test]
fn leaf_link_flood_of_16_kib_messages_reaches_the_leaf_subscriber_whole() {
    let _turn = my_turn();
    flood_arrives_whole(Path::HubToLeaf, 16 * 1024, 2_500);
}

#[test]
fn route_flood_of_16_byte_messages_reaches_a_reading_subscriber_whole() {
    let _turn = my_turn();
    flood_arrives_whole(Path::Route, 16, 1_200_000);
}

#[test]
fn route_flood_of_16_kib_messages_reaches_a_reading_subscriber_whole() {
    let _turn = my_turn();
    flood_arrives_whole(Path::Route, 16 * 1024, 2_500);
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One subscriber reads the flood, another stops reading: the stalled one is cut as
/// a slow consumer, exactly as nats-server cuts it, the reading one gets every
/// message, the publisher is held back only for a bounded time, and the server's
/// memory stays bounded while 64 MiB go by.
#[test]
fn a_subscriber_that_stops_reading_is_cut_while_a_reading_one_gets_everything() {
    let _turn = my_turn();
    stalled_subscriber_is_cut(Path::OneServer);
}

/// The same across a route: the stalled subscriber does not hold the route back for
/// long (Canopy stops waiting for a consumer that got nothing through for a second),
/// so the reading subscriber behind the same route still gets everything.
#[test]
fn a_subscriber_that_stops_reading_across_a_route_is_cut_while_a_reading_one_gets_everything() {
    let _turn = my_turn();
    stalled_subscriber_is_cut(Path::Route);
}

fn stalled_subscriber_is_cut(path: Path) {
    let (size, count) = (16 * 1024usize, 4_096u64);
    for kind in Impl::all() {
        let http = free_port();
        let t = topology_with(kind, path, &format!("http: \"127.0.0.1:{http}\""));
        let srv = &t.servers[0];
        let reading = subscribe(&t);
        // Subscribes, then never reads again.
        let mut stalled = support::Raw::connect(srv.port);
        stalled.send(b"CONNECT {\"verbose\":false}\r\nSUB flood 7\r\n");
        stalled.sync();
        let stalled_cid = http_json(http, "/connz")["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["cid"].as_u64().unwrap())
            .max()
            .unwrap();

        let baseline = rss_kib(srv.pid());
        let pid = srv.pid();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut peak = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    peak = peak.max(rss_kib(pid));
                    std::thread::sleep(Duration::from_millis(5));
                }
                peak
            })
        };
        let mut stream = reading.stream;
        let reader = std::thread::spawn(move || receive_in_order(&mut stream, count, size));
        let took = publish(t.pub_port, count, size).join().expect("publisher");
        let (got, why) = reader.join().expect("reading subscriber");
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let peak = sampler.join().unwrap();

        let logs: Vec<String> = t.servers.iter().map(|s| s.log()).collect();
        if oracle_link_limit(kind, path, got, count, why.as_deref(), &logs) {
            continue;
        }
        assert!(
            why.is_none() && got == count,
            "{kind:?}: the reading subscriber got {got} of {count}: {why:?}"
        );
        // The producer was held back, not stopped: nats-server needs about 18 s here, Canopy well under 1 s.
        assert!(
            took < Duration::from_secs(60),
            "{kind:?}: publishing took {took:?}"
        );
        // Whatever the stalled peer still finds buffered, the server has closed it,
        // with no -ERR (nats-server sends none for a slow consumer).
        let rest = stalled.drain(Duration::from_secs(2));
        assert!(!rest.contains("-ERR"), "{kind:?}: {rest}");
        let mut closed = stalled.closed;
        let until = Instant::now() + Duration::from_secs(10);
        while !closed && Instant::now() < until {
            stalled.drain(Duration::from_millis(500));
            closed = stalled.closed;
        }
        assert!(
            closed,
            "{kind:?}: the stalled subscriber is still connected"
        );

        let connz = http_json(http, "/connz?state=closed");
        let reasons: Vec<(u64, String)> = connz["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["cid"].as_u64().unwrap(),
                    c["reason"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        assert!(
            reasons
                .iter()
                .any(|(cid, r)| *cid == stalled_cid && r == "Slow Consumer (Pending Bytes)"),
            "{kind:?}: closed connections {reasons:?}"
        );
        let varz = http_json(http, "/varz");
        assert_eq!(varz["slow_consumers"], 1, "{kind:?}");
        assert_eq!(varz["slow_consumer_stats"]["clients"], 1, "{kind:?}");
        assert!(
            srv.log().contains(&format!(
                "Slow Consumer Detected: MaxPending of {MAX_PENDING} Exceeded"
            )),
            "{kind:?}: {}",
            srv.log()
        );
        // Bounded: the stalled peer's pending bytes, the socket buffers and the
        // server's own working set — not the 64 MiB that went by.
        let grew_mib = peak.saturating_sub(baseline) / 1024;
        assert!(
            grew_mib < 64,
            "{kind:?}: RSS grew by {grew_mib} MiB (from {baseline} KiB)"
        );
        eprintln!(
            "{kind:?} {path:?}: stalled subscriber cut, reading one got {count} in order; published in {took:?}; RSS +{grew_mib} MiB; stalled_clients {}",
            varz["stalled_clients"]
        );
    }
}

/// `no_fast_producer_stall: true`: the publisher is never held back; messages to a
/// subscriber that is behind are dropped instead, and it is not cut.
#[test]
fn no_fast_producer_stall_drops_to_a_stalled_subscriber_instead_of_holding_the_publisher() {
    let _turn = my_turn();
    for kind in Impl::all() {
        let http = free_port();
        let srv = Server::start(
            kind,
            &format!("{LIMITS}no_fast_producer_stall: true\nhttp: \"127.0.0.1:{http}\""),
        );
        drops_instead_of_stalling(kind, &srv, http);
    }
}

/// The same, with the option turned on by a config reload (SIGHUP).
#[test]
fn no_fast_producer_stall_takes_effect_on_reload() {
    let _turn = my_turn();
    for kind in Impl::all() {
        let http = free_port();
        let srv = Server::start(kind, &format!("{LIMITS}http: \"127.0.0.1:{http}\""));
        srv.rewrite_config(&format!(
            "{LIMITS}no_fast_producer_stall: true\nhttp: \"127.0.0.1:{http}\""
        ));
        let hup = std::process::Command::new("kill")
            .args(["-HUP", &srv.pid().to_string()])
            .status()
            .unwrap();
        assert!(hup.success());
        let until = Instant::now() + Duration::from_secs(5);
        while !srv.log().to_lowercase().contains("reloaded") {
            assert!(
                Instant::now() < until,
                "{kind:?} did not reload: {}",
                srv.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drops_instead_of_stalling(kind, &srv, http);
    }
}

fn drops_instead_of_stalling(kind: Impl, srv: &Server, http: u16) {
    let (size, count) = (16 * 1024usize, 4_096u64);
    let mut stalled = support::Raw::connect(srv.port);
    stalled.send(b"CONNECT {\"verbose\":false}\r\nSUB flood 7\r\n");
    stalled.sync();
    publish(srv.port, count, size).join().expect("publisher");
    let varz = http_json(http, "/varz");
    assert_eq!(
        varz["stalled_clients"], 0,
        "{kind:?}: the publisher was held back"
    );
    assert_eq!(
        varz["slow_consumers"], 0,
        "{kind:?}: the subscriber was cut"
    );
    // Still connected (it answers PING), and it got only part of the flood.
    let got = stalled.drain(Duration::from_millis(500)).len();
    assert!(!stalled.closed, "{kind:?}: the subscriber was closed");
    stalled.sync();
    let frame = format!("MSG flood 7 {size}\r\n").len() + size + 2;
    assert!(
        got < count as usize * frame,
        "{kind:?}: nothing was dropped ({got} bytes)"
    );
    eprintln!(
        "{kind:?}: no_fast_producer_stall: {} of {count} messages reached the stalled subscriber; not cut",
        got / frame
    );
}
