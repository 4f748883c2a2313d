//! linksim without Docker: an echo server behind a link, measured through it.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn link_to(
    target: std::net::SocketAddr,
    shape: linksim::Shape,
) -> (std::sync::Arc<linksim::Link>, std::net::SocketAddr) {
    let link = linksim::start(linksim::Config {
        name: "test".into(),
        shape,
        forwards: vec![linksim::Forward {
            listen: "127.0.0.1:0".parse().unwrap(),
            target: target.to_string(),
        }],
    })
    .await
    .unwrap();
    let addr = link.bound.read()[0].0;
    (link, addr)
}

async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Duration {
    let start = Instant::now();
    s.write_all(msg).await.unwrap();
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(got, msg);
    start.elapsed()
}

#[tokio::test]
async fn latency_applies_each_way_within_tolerance() {
    let echo = echo_server().await;
    let (_link, addr) = link_to(
        echo,
        linksim::Shape {
            latency: Duration::from_millis(40),
            ..Default::default()
        },
    )
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut s, b"warm").await;
    let mut rtts = Vec::new();
    for _ in 0..5 {
        rtts.push(round_trip(&mut s, b"ping").await);
    }
    rtts.sort();
    let median = rtts[2];
    // 40 ms each way: the round trip is 80 ms, plus scheduling.
    assert!(median >= Duration::from_millis(78), "median RTT {median:?}");
    assert!(median < Duration::from_millis(160), "median RTT {median:?}");
}

#[tokio::test]
async fn jitter_never_reorders_bytes() {
    let echo = echo_server().await;
    let (_link, addr) = link_to(
        echo,
        linksim::Shape {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(9),
            ..Default::default()
        },
    )
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = s.split();
    let sent: Vec<u8> = (0..200u32).flat_map(|i| i.to_be_bytes()).collect();
    let writer = async {
        for chunk in sent.chunks(4) {
            w.write_all(chunk).await.unwrap();
            tokio::time::sleep(Duration::from_micros(300)).await;
        }
    };
    let mut got = vec![0u8; sent.len()];
    let reader = r.read_exact(&mut got);
    let (_, read) = tokio::join!(writer, reader);
    read.unwrap();
    assert_eq!(got, sent, "bytes arrive in the order sent");
}

#[tokio::test]
async fn a_partition_holds_bytes_and_a_heal_delivers_them() {
    let echo = echo_server().await;
    let (link, addr) = link_to(echo, linksim::Shape::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut s, b"before").await;
    link.partition();
    s.write_all(b"during").await.unwrap();
    let mut buf = [0u8; 6];
    let waited = tokio::time::timeout(Duration::from_millis(500), s.read_exact(&mut buf)).await;
    assert!(waited.is_err(), "nothing crosses a partitioned link");
    // A new connection hangs too: no error, no data.
    let mut fresh = TcpStream::connect(addr).await.unwrap();
    fresh.write_all(b"new").await.unwrap();
    let mut b3 = [0u8; 3];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), fresh.read_exact(&mut b3))
            .await
            .is_err()
    );
    link.heal();
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"during");
    tokio::time::timeout(Duration::from_secs(2), fresh.read_exact(&mut b3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b3, b"new");
}

#[tokio::test]
async fn bandwidth_caps_throughput() {
    let echo = echo_server().await;
    let (_link, addr) = link_to(
        echo,
        linksim::Shape {
            bandwidth_bps: Some(2_000_000),
            ..Default::default()
        },
    )
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let payload = vec![7u8; 250_000]; // 2 Mbit each way at 2 Mbit/s: about 1 s
    let start = Instant::now();
    let (mut r, mut w) = s.split();
    let writer = w.write_all(&payload);
    let mut got = vec![0u8; payload.len()];
    let reader = r.read_exact(&mut got);
    let (a, b) = tokio::join!(writer, reader);
    a.unwrap();
    b.unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "2 Mbit at 2 Mbit/s took {took:?}"
    );
    assert!(took < Duration::from_secs(6), "took {took:?}");
}

#[tokio::test]
async fn a_reset_cuts_open_connections_and_new_ones_work() {
    let echo = echo_server().await;
    let (link, addr) = link_to(echo, linksim::Shape::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut s, b"x").await;
    link.reset();
    let mut buf = [0u8; 1];
    let r = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(r, Ok(0) | Err(_)),
        "the old connection ends: {r:?}"
    );
    let mut again = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut again, b"y").await;
    assert_eq!(link.stats().resets, 1);
}

#[tokio::test]
async fn the_http_api_partitions_heals_and_reshapes_live() {
    let echo = echo_server().await;
    let (link, addr) = link_to(echo, linksim::Shape::default()).await;
    let api = linksim::api::serve(link.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let post = |path: &'static str, body: &'static str| async move {
        let mut s = TcpStream::connect(api).await.unwrap();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let r = post("/partition", "").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(link.shape().partitioned);
    let r = post("/heal", "").await;
    assert!(r.contains("\"partitioned\":false"), "{r}");
    let r = post("/shape", "{\"latency\":30,\"bandwidth_bps\":1000000}").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(link.shape().latency, Duration::from_millis(30));
    assert_eq!(link.shape().bandwidth_bps, Some(1_000_000));
    let r = post("/shape", "{\"latency\":-5}").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let mut s = TcpStream::connect(addr).await.unwrap();
    let rtt = round_trip(&mut s, b"z").await;
    assert!(rtt >= Duration::from_millis(58), "30 ms each way: {rtt:?}");
}
