//! linksim: a userspace TCP forwarder that stands for the VPN link between two site
//! networks. Each forward listens on a port and relays to a target; every byte
//! crossing the link is delayed by the link's latency (± jitter, order kept), paced
//! by its bandwidth, held while the link is partitioned (like a dropped tunnel: no
//! error, the bytes just stop), and cut on a reset. The link's shape changes live.
//!
//! It exists because the machines we test on have no netem; it is not a general
//! traffic shaper (per-chunk delays, no packet loss model).

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub mod api;

/// What the link does to traffic. Durations in milliseconds on the wire (API, file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// One-way delay.
    #[serde(default, with = "millis")]
    pub latency: Duration,
    /// Each chunk's delay varies by up to ± this much (order is kept).
    #[serde(default, with = "millis")]
    pub jitter: Duration,
    /// Bits per second each direction of each connection may carry; None = unlimited.
    #[serde(default)]
    pub bandwidth_bps: Option<u64>,
    /// Bytes stop both ways (held, not lost) until healed; new connections wait.
    #[serde(default)]
    pub partitioned: bool,
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        if !(0.0..=3_600_000.0).contains(&ms) {
            return Err(serde::de::Error::custom("milliseconds out of range"));
        }
        Ok(Duration::from_secs_f64(ms / 1000.0))
    }
}

/// One listening port and where it relays to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forward {
    pub listen: SocketAddr,
    /// `host:port`, resolved at each connection (container names work).
    pub target: String,
}

/// A link's whole configuration (the `--config` file, as JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub shape: Shape,
    #[serde(default)]
    pub forwards: Vec<Forward>,
}

/// Parse `20ms`, `1.5s`, `250us`, `0`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let secs = match unit {
        "us" | "µs" => v / 1e6,
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Parse `512kbit`, `10mbit`, `1gbit` into bits per second.
pub fn parse_bandwidth(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let mul = match unit {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => return None,
    };
    let bps = v * mul;
    (bps >= 1.0 && bps.is_finite()).then_some(bps as u64)
}

/// Parse `LISTEN=HOST:PORT` where LISTEN is a port (all interfaces) or an address.
pub fn parse_forward(s: &str) -> Option<Forward> {
    let (listen, target) = s.split_once('=')?;
    let listen: SocketAddr = match listen.parse::<u16>() {
        Ok(p) => SocketAddr::from(([0, 0, 0, 0], p)),
        Err(_) => listen.parse().ok()?,
    };
    if !target.contains(':') || target.is_empty() {
        return None;
    }
    Some(Forward {
        listen,
        target: target.to_string(),
    })
}

/// Counters the API reports.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub connections: u64,
    pub open: u64,
    pub bytes: u64,
    pub resets: u64,
}

/// A running link: its shape (changed live) and its connections.
pub struct Link {
    pub name: String,
    shape: watch::Sender<Shape>,
    /// Bumped by a reset: connections of an older epoch close.
    epoch: watch::Sender<u64>,
    connections: AtomicU64,
    open: AtomicU64,
    bytes: AtomicU64,
    resets: AtomicU64,
    /// Bound addresses of the forwards (port 0 in config → the real one here).
    pub bound: RwLock<Vec<(SocketAddr, String)>>,
}

impl Link {
    pub fn shape(&self) -> Shape {
        self.shape.borrow().clone()
    }

    pub fn set_shape(&self, s: Shape) {
        // send_replace: the value changes even while no connection is watching.
        self.shape.send_replace(s);
    }

    pub fn partition(&self) {
        self.shape.send_modify(|s| s.partitioned = true);
    }

    pub fn heal(&self) {
        self.shape.send_modify(|s| s.partitioned = false);
    }

    /// Cut every open connection (the peers see a reset); new ones are accepted.
    pub fn reset(&self) {
        self.resets.fetch_add(1, Ordering::Relaxed);
        self.epoch.send_modify(|e| *e += 1);
    }

    pub fn stats(&self) -> Stats {
        Stats {
            connections: self.connections.load(Ordering::Relaxed),
            open: self.open.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            resets: self.resets.load(Ordering::Relaxed),
        }
    }
}

/// Bind every forward and start relaying.
pub async fn start(config: Config) -> anyhow::Result<Arc<Link>> {
    let (shape, _) = watch::channel(config.shape.clone());
    let (epoch, _) = watch::channel(0u64);
    let link = Arc::new(Link {
        name: config.name.clone(),
        shape,
        epoch,
        connections: AtomicU64::new(0),
        open: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        resets: AtomicU64::new(0),
        bound: RwLock::new(Vec::new()),
    });
    for f in &config.forwards {
        let listener = TcpListener::bind(f.listen)
            .await
            .map_err(|e| anyhow::anyhow!("listening on {}: {e}", f.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(link = %link.name, "forwarding {addr} → {}", f.target);
        link.bound.write().push((addr, f.target.clone()));
        tokio::spawn(accept_loop(link.clone(), listener, f.target.clone()));
    }
    Ok(link)
}

async fn accept_loop(link: Arc<Link>, listener: TcpListener, target: String) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                let _ = client.set_nodelay(true);
                tokio::spawn(relay(link.clone(), client, target.clone()));
            }
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Wait while the link is partitioned.
async fn until_healed(shape: &mut watch::Receiver<Shape>) {
    while shape.borrow().partitioned {
        if shape.changed().await.is_err() {
            return;
        }
    }
}

async fn relay(link: Arc<Link>, client: TcpStream, target: String) {
    link.connections.fetch_add(1, Ordering::Relaxed);
    let mut shape = link.shape.subscribe();
    let mut epoch = link.epoch.subscribe();
    let born = *epoch.borrow();
    // A partitioned link does not answer: the dialler's connection just hangs.
    tokio::select! {
        _ = until_healed(&mut shape) => {}
        _ = epoch.wait_for(|e| *e != born) => { reset_close(client); return; }
    }
    let server = match TcpStream::connect(&target).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(link = %link.name, "connecting to {target}: {e}");
            reset_close(client);
            return;
        }
    };
    let _ = server.set_nodelay(true);
    link.open.fetch_add(1, Ordering::Relaxed);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(link.clone(), cr, sw);
    let down = pump(link.clone(), sr, cw);
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = epoch.wait_for(|e| *e != born) => {}
    }
    link.open.fetch_sub(1, Ordering::Relaxed);
}

/// Close with RST (linger 0), as a cut tunnel looks to the peer.
#[allow(deprecated)] // linger 0 never blocks: it discards and resets at once
fn reset_close(s: TcpStream) {
    let _ = s.set_linger(Some(Duration::ZERO));
    drop(s);
}

/// One direction: read chunks, stamp them, deliver each at its time, paced.
async fn pump(
    link: Arc<Link>,
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mut wr: tokio::net::tcp::OwnedWriteHalf,
) {
    // Bounded: a slow or partitioned link pushes back on the sender (memory stays bounded).
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let reader = {
        let link = link.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut last_due = Instant::now();
            loop {
                let n = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let s = link.shape();
                let jitter = if s.jitter.is_zero() {
                    Duration::ZERO
                } else {
                    s.jitter.mul_f64(rand::random::<f64>())
                };
                let delay = if rand::random::<bool>() {
                    s.latency + jitter
                } else {
                    s.latency.saturating_sub(jitter)
                };
                // Order is kept: never due before the previous chunk.
                let due = (Instant::now() + delay).max(last_due);
                last_due = due;
                if tx.send((due, buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
        }
    };
    let writer = async move {
        let mut shape = link.shape.subscribe();
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            until_healed(&mut shape).await;
            if let Some(bps) = link.shape().bandwidth_bps {
                let secs = (chunk.len() as f64 * 8.0) / bps as f64;
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            }
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
            link.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        let _ = wr.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_like_the_topology_writes_them() {
        assert_eq!(parse_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_duration("20 ms"), None);
        assert_eq!(parse_bandwidth("10mbit"), Some(10_000_000));
        assert_eq!(parse_bandwidth("512kbit"), Some(512_000));
        assert_eq!(parse_bandwidth("10mb"), None);
        let f = parse_forward("7422=hub-1:7422").unwrap();
        assert_eq!(f.listen, "0.0.0.0:7422".parse().unwrap());
        assert_eq!(f.target, "hub-1:7422");
        assert!(parse_forward("7422").is_none());
        assert!(parse_forward("x=hub").is_none());
    }
}
