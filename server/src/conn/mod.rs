//! The connection core shared by every kind: an outbound buffer that publishers
//! append frames to, a writer task that coalesces whatever is pending into one write,
//! flow control (a consumer that falls behind holds its producers back, bounded),
//! slow-consumer detection (max_pending, write_deadline), and the PING timer.

mod frames;
mod kind;
mod writer;

pub use kind::{string_list, InterestKey, Kind, LeafFilters, Peer, Routes};
pub use writer::{writer, Liveness};

use crate::sublist::Interest;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Counters the server keeps across connections.
#[derive(Default)]
pub struct ServerStats {
    pub total_connections: AtomicU64,
    pub slow_consumers: AtomicU64,
    /// Slow consumers by kind, as `/varz` `slow_consumer_stats` splits them.
    pub slow_consumer_clients: AtomicU64,
    pub slow_consumer_routes: AtomicU64,
    pub slow_consumer_leafs: AtomicU64,
    /// Times a producer was held back because a consumer it fed was behind
    /// (`/varz` `stalled_clients`).
    pub stalls: AtomicU64,
    pub stale_connections: AtomicU64,
    /// Message counters of connections that have closed (live ones are summed on demand).
    pub closed: ConnStats,
}

#[derive(Default)]
pub struct ConnStats {
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_msgs: AtomicU64,
    pub out_bytes: AtomicU64,
}

struct Outbound {
    buf: Vec<u8>,
    /// Bytes the writer has taken out of `buf` and not yet handed to the socket:
    /// with `buf`, what this connection has pending (nats-server's `pb`).
    in_flight: usize,
    closed: bool,
}

/// A consumer is behind once its pending bytes pass three quarters of max_pending (as
/// in nats-server), but never more than this: a reader that keeps up drains far less,
/// and a lower mark keeps memory and latency down while producers wait.
const STALL_MARK_CAP: usize = 8 * 1024 * 1024;
/// The least a leaf link or a route may hold pending before it is cut (nats-server
/// cuts links only on write_deadline). A link carries every account's traffic, and
/// its far end holds its reader back while a consumer there drains: a small
/// max_pending must not cut the link meanwhile. Memory stays bounded all the same.
const LINK_MIN_PENDING: usize = 64 * 1024 * 1024;

/// The pending bytes a leaf link or a route may hold before it is cut.
pub fn link_max_pending(max_pending: usize) -> usize {
    max_pending.max(LINK_MIN_PENDING)
}

/// A consumer whose writer has got nothing through for this long has stopped reading:
/// nobody waits for it any more (it fills to max_pending and is cut) rather than
/// slowing every producer that feeds it — a whole route or leaf link — until then.
/// Long enough that a reader starved of CPU for a moment is not mistaken for one.
const STUCK_AFTER: Duration = Duration::from_secs(1);

pub struct Conn {
    pub cid: u64,
    pub addr: SocketAddr,
    out: Mutex<Outbound>,
    wake: Notify,
    /// Set while this connection sits in some reader's list of connections to flush.
    queued: AtomicBool,
    pub closing: CancellationToken,
    reason: Mutex<Option<&'static str>>,
    pub echo: AtomicBool,
    pub headers: AtomicBool,
    /// The client takes asynchronous INFO updates (CONNECT `protocol` >= 1).
    pub info_aware: AtomicBool,
    /// What this connection is: a client, a leaf link or a route, with what each
    /// kind of link keeps.
    pub kind: Kind,
    pub stats: ConnStats,
    pings_out: AtomicU32,
    max_pending: usize,
    /// Pending bytes above which this connection is behind: producers that feed it
    /// wait (bounded) before reading more. It is no longer behind at half of it.
    stall_mark: usize,
    /// Pending passed `stall_mark` and has not yet drained to half of it.
    behind: AtomicBool,
    /// Woken (all waiters) when a connection that was behind has drained.
    drained: Notify,
    /// While the writer is writing: Unix nanoseconds when it started or last got a
    /// part through (0 while it is idle). Producers tell a consumer that drains
    /// slowly from one that stopped.
    last_progress: AtomicU64,
    /// Times this connection, as a producer, was held back (`/connz` `stalls`).
    pub stalls: AtomicU64,
    server_stats: Arc<ServerStats>,
    /// This connection's subscriptions by sid (also in its account's sublist).
    pub subs: Mutex<HashMap<Box<[u8]>, Arc<Subscription>>>,
    /// The name of the account CONNECT bound this connection to; set once.
    account: OnceLock<Box<str>>,
    /// Wakes the reader to re-check its credentials after a config reload.
    pub recheck: Notify,
    pub started: std::time::SystemTime,
    /// Unix nanoseconds of the last read batch.
    pub last_activity: AtomicU64,
    /// What CONNECT said about the client, for monitoring.
    pub meta: Mutex<ClientMeta>,
    /// Round-trip time in nanoseconds (0 = not measured yet): from INFO to the
    /// client's first PING, then from each of our PINGs to its PONG.
    pub rtt_nanos: AtomicU64,
    rtt_start: AtomicU64,
    /// With `allow_responses`: reply subjects of requests delivered here, which this
    /// client may publish to (count left, deadline) even where publish is denied.
    responses: Mutex<Option<(u64, Duration)>>,
    /// `responses` is set: checked without the lock on every delivery with a reply.
    grants_on: AtomicBool,
    reply_grants: Mutex<HashMap<Box<[u8]>, ReplyGrant>>,
}

/// Replies left, and until when.
type ReplyGrant = (u64, std::time::Instant);

/// Bound on remembered reply grants per connection.
const MAX_REPLY_GRANTS: usize = 64 * 1024;

#[derive(Clone, Debug, Default)]
pub struct ClientMeta {
    pub name: Option<String>,
    pub lang: Option<String>,
    pub version: Option<String>,
    pub user: Option<String>,
}

pub fn unix_nanos(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub struct Subscription {
    pub conn: Arc<Conn>,
    pub subject: Box<str>,
    pub queue: Option<Box<str>>,
    pub sid: Box<[u8]>,
    /// Auto-unsubscribe after this many deliveries (0 = never).
    pub max: AtomicU64,
    pub delivered: AtomicU64,
    /// Subscribe-deny rules a wildcard subscription overlaps: matching messages are
    /// filtered at delivery (a user denied `a.secret` may subscribe to `a.>`).
    pub deny: Option<Arc<Vec<String>>>,
}

impl Subscription {
    /// A subscription of `conn`, with the subscribe-deny rules it overlaps (if any).
    pub fn new(
        conn: &Arc<Conn>,
        subject: &str,
        queue: Option<&str>,
        sid: Box<[u8]>,
        deny: Option<Arc<Vec<String>>>,
    ) -> Arc<Subscription> {
        Arc::new(Subscription {
            conn: conn.clone(),
            subject: subject.into(),
            queue: queue.map(Into::into),
            sid,
            max: Default::default(),
            delivered: Default::default(),
            deny,
        })
    }

    /// Whether a deny rule this subscription overlaps filters out `subject`.
    pub fn denies(&self, subject: &[u8]) -> bool {
        self.deny.as_ref().is_some_and(|d| {
            d.iter()
                .any(|p| crate::subject::matches(p.as_bytes(), subject))
        })
    }
}

impl Interest for Subscription {
    fn subject(&self) -> &str {
        &self.subject
    }
    fn queue(&self) -> Option<&str> {
        self.queue.as_deref()
    }
}

/// Outcome of delivering one message to one subscription.
pub enum Delivered {
    Yes,
    /// Delivered, and this was the last one its `UNSUB <sid> <max>` allowed.
    Last,
    No,
}

impl Conn {
    pub fn new(
        cid: u64,
        addr: SocketAddr,
        max_pending: usize,
        server_stats: Arc<ServerStats>,
        kind: Kind,
    ) -> Conn {
        Conn {
            cid,
            addr,
            out: Mutex::new(Outbound {
                buf: Vec::new(),
                in_flight: 0,
                closed: false,
            }),
            wake: Notify::new(),
            queued: AtomicBool::new(false),
            closing: CancellationToken::new(),
            reason: Mutex::new(None),
            // A link never sends a message back over itself, and carries headers.
            echo: AtomicBool::new(matches!(kind, Kind::Client)),
            info_aware: AtomicBool::new(false),
            headers: AtomicBool::new(!matches!(kind, Kind::Client)),
            kind,
            stats: ConnStats::default(),
            pings_out: AtomicU32::new(0),
            max_pending,
            stall_mark: (max_pending / 4 * 3).min(STALL_MARK_CAP),
            behind: AtomicBool::new(false),
            drained: Notify::new(),
            last_progress: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            server_stats,
            subs: Mutex::new(HashMap::new()),
            account: OnceLock::new(),
            recheck: Notify::new(),
            started: std::time::SystemTime::now(),
            last_activity: AtomicU64::new(unix_nanos(std::time::SystemTime::now())),
            meta: Mutex::new(ClientMeta::default()),
            rtt_nanos: AtomicU64::new(0),
            rtt_start: AtomicU64::new(unix_nanos(std::time::SystemTime::now())),
            responses: Mutex::new(None),
            grants_on: AtomicBool::new(false),
            reply_grants: Mutex::new(HashMap::new()),
        }
    }

    /// Turn reply grants on or off (the user's permissions' `allow_responses`).
    pub fn set_allow_responses(&self, setting: Option<(u64, Duration)>) {
        *self.responses.lock() = setting;
        self.grants_on.store(setting.is_some(), Ordering::Release);
        if setting.is_none() {
            self.reply_grants.lock().clear();
        }
    }

    /// Use one grant to publish on `subject`, if one is held.
    pub fn use_reply_grant(&self, subject: &[u8]) -> bool {
        let mut g = self.reply_grants.lock();
        let Some((left, deadline)) = g.get_mut(subject) else {
            return false;
        };
        if *deadline < std::time::Instant::now() {
            g.remove(subject);
            return false;
        }
        *left -= 1;
        if *left == 0 {
            g.remove(subject);
        }
        true
    }

    fn grant_reply(&self, reply: &[u8]) {
        let Some((max, ttl)) = *self.responses.lock() else {
            return;
        };
        let mut g = self.reply_grants.lock();
        if g.len() >= MAX_REPLY_GRANTS {
            let now = std::time::Instant::now();
            g.retain(|_, (_, d)| *d > now);
            if g.len() >= MAX_REPLY_GRANTS {
                return;
            }
        }
        g.insert(reply.into(), (max, std::time::Instant::now() + ttl));
    }

    /// After a frame was appended: mark the connection behind past its stall mark,
    /// and close it as a slow consumer past max_pending (false: it is closed).
    fn check_pending(&self, out: &mut Outbound) -> bool {
        let pending = out.buf.len() + out.in_flight;
        if pending > self.max_pending {
            self.slow_consumer(out);
            return false;
        }
        if pending > self.stall_mark && !self.behind.load(Ordering::Relaxed) {
            self.behind.store(true, Ordering::Release);
        }
        true
    }

    /// Whether this connection is past its stall mark.
    pub fn is_behind(&self) -> bool {
        self.behind.load(Ordering::Acquire)
    }

    /// Whether producers that feed this connection should wait for it: it is behind,
    /// and its writer is idle (about to be woken) or got something through lately.
    pub fn wants_wait(&self) -> bool {
        self.is_behind() && {
            let last = self.last_progress.load(Ordering::Relaxed);
            let now = unix_nanos(std::time::SystemTime::now());
            last == 0 || now.saturating_sub(last) < STUCK_AFTER.as_nanos() as u64
        }
    }

    /// Wait until this connection is no longer behind, it closes, or `budget` runs
    /// out (returns false then).
    pub async fn wait_drained(&self, budget: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + budget;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before the check, so a wake-up between the two is not lost.
            drained.as_mut().enable();
            if !self.is_behind() || self.closing.is_cancelled() {
                return true;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return !self.is_behind();
            }
        }
    }

    /// Pending bytes passed max_pending: drop them, close, count and log — once.
    fn slow_consumer(&self, out: &mut Outbound) {
        out.buf = Vec::new();
        out.closed = true;
        self.count_slow_consumer();
        tracing::info!(
            "{} - cid:{} - Slow Consumer Detected: MaxPending of {} Exceeded",
            self.addr,
            self.cid,
            self.max_pending
        );
        self.close_locked(out, "Slow Consumer (Pending Bytes)");
    }

    fn count_slow_consumer(&self) {
        let s = &self.server_stats;
        s.slow_consumers.fetch_add(1, Ordering::Relaxed);
        let by_kind = match self.kind {
            Kind::Route(_) => &s.slow_consumer_routes,
            Kind::Leaf(_) => &s.slow_consumer_leafs,
            Kind::Client => &s.slow_consumer_clients,
        };
        by_kind.fetch_add(1, Ordering::Relaxed);
    }

    /// One message of `len` bytes came in on this connection.
    #[inline]
    pub fn count_in(&self, len: usize) {
        self.stats.in_msgs.fetch_add(1, Ordering::Relaxed);
        self.stats.in_bytes.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// Bytes queued for this connection and not yet written to its socket.
    pub fn pending_bytes(&self) -> usize {
        let out = self.out.lock();
        out.buf.len() + out.in_flight
    }

    pub fn recheck_auth(&self) {
        self.recheck.notify_one();
    }

    /// The account this connection is bound to, once CONNECT bound it.
    pub fn account_name(&self) -> Option<&str> {
        self.account.get().map(|a| &**a)
    }

    pub fn bind_account(&self, name: &str) {
        let _ = self.account.set(name.into());
    }

    /// Queue raw protocol bytes (INFO, PONG, +OK, -ERR) and wake the writer.
    pub fn send(&self, bytes: &[u8]) {
        {
            let mut out = self.out.lock();
            if out.closed {
                return;
            }
            out.buf.extend_from_slice(bytes);
            // A peer that floods PINGs or refused ops and never reads is a slow
            // consumer too: its answers must not grow memory without bound.
            if !self.check_pending(&mut out) {
                return;
            }
        }
        self.wake.notify_one();
    }

    /// Mark for a flush at the end of the current read batch. Returns true the first
    /// time, so the caller keeps one handle per touched connection.
    pub fn mark_for_flush(&self) -> bool {
        !self.queued.swap(true, Ordering::AcqRel)
    }

    pub fn flush(&self) {
        self.queued.store(false, Ordering::Release);
        self.wake.notify_one();
    }

    /// Close: record the first reason, stop taking frames, and let the writer drain
    /// what is already queued (a final -ERR) before the socket shuts.
    pub fn close(&self, reason: &'static str) {
        self.close_locked(&mut self.out.lock(), reason);
    }

    /// `close` with the outbound lock already held.
    fn close_locked(&self, out: &mut Outbound, reason: &'static str) {
        {
            let mut r = self.reason.lock();
            if r.is_none() {
                *r = Some(reason);
            }
        }
        out.closed = true;
        self.closing.cancel();
        self.wake.notify_one();
        // Producers waiting for this connection to drain stop waiting.
        self.drained.notify_waiters();
    }

    pub fn close_reason(&self) -> Option<&'static str> {
        *self.reason.lock()
    }

    pub fn pong_received(&self) {
        self.pings_out.store(0, Ordering::Release);
        self.finish_rtt();
    }

    /// The client's PING: the first one closes the INFO-to-PING measurement.
    pub fn ping_received(&self) {
        if self.rtt_nanos.load(Ordering::Relaxed) == 0 {
            self.finish_rtt();
        }
    }

    fn finish_rtt(&self) {
        let start = self.rtt_start.swap(0, Ordering::AcqRel);
        if start != 0 {
            let now = unix_nanos(std::time::SystemTime::now());
            self.rtt_nanos
                .store(now.saturating_sub(start).max(1), Ordering::Relaxed);
        }
    }
}
