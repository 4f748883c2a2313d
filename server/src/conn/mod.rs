//! The connection core shared by every kind: an outbound buffer that publishers
//! append frames to, a writer task that coalesces whatever is pending into one write,
//! flow control (a consumer that falls behind holds its producers back, bounded),
//! slow-consumer detection (max_pending, write_deadline), and the PING timer.

pub mod client;
pub mod leaf;

use crate::account::Account;
use crate::sublist::Interest;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
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
    /// A leafnode link (accepted): messages go out as LMSG, interest as LS+/LS-.
    pub is_leaf: AtomicBool,
    /// Leaf links: how many local subscriptions back each (subject, queue) this link
    /// has been told about, so LS+ goes out on the first and LS- on the last.
    pub leaf_sent: Mutex<HashMap<InterestKey, u32>>,
    /// Leaf links: the remote server's name (CONNECT `name`, or the hub's INFO name).
    pub leaf_name: Mutex<Option<String>>,
    /// A leaf link this server dialled (a `remotes` entry): it is the spoke.
    pub is_spoke: AtomicBool,
    /// A dialled link's `deny_imports` / `deny_exports`.
    pub leaf_filters: OnceLock<LeafFilters>,
    /// The hub said this link closes a loop: wait before dialling again.
    pub loop_detected: AtomicBool,
    /// A route to another server of the cluster: RS+/RS- and RMSG, every op naming
    /// its account.
    pub is_route: AtomicBool,
    /// Routes: what each (account, subject, queue) this route has been told about
    /// counts, so RS+ goes out on the first and RS- on the last.
    pub route_sent: Mutex<HashMap<RouteInterestKey, u32>>,
    /// Routes: the peer, once its INFO arrived.
    pub route_peer: Mutex<Option<crate::route::Peer>>,
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
    /// The account CONNECT bound this connection to; set once.
    account: OnceLock<Arc<Account>>,
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

/// A dialled leaf link's subject filters.
#[derive(Debug, Default)]
pub struct LeafFilters {
    /// Subjects this server will not receive from the hub.
    pub deny_imports: Vec<String>,
    /// Subjects this server will not send to the hub.
    pub deny_exports: Vec<String>,
}

/// An account, a subject and, for queue subscriptions, the queue name.
pub type RouteInterestKey = (Box<str>, Box<str>, Option<Box<str>>);

/// A subject and, for queue subscriptions, the queue name.
pub type InterestKey = (Box<str>, Option<Box<str>>);

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

/// Count one change of interest under `key` (the entry goes at zero); returns the
/// count before and after.
fn count_interest<K: std::hash::Hash + Eq + Clone>(
    sent: &mut HashMap<K, u32>,
    key: K,
    delta: i32,
) -> (u32, u32) {
    let count = sent.entry(key.clone()).or_insert(0);
    let before = *count;
    *count = if delta >= 0 {
        before + delta as u32
    } else {
        before.saturating_sub(delta.unsigned_abs())
    };
    let after = *count;
    if after == 0 {
        sent.remove(&key);
    }
    (before, after)
}

/// The `LS±`/`RS±` line that tells a link interest went from `before` to `after`:
/// `+` on the first, `-` on the last, and for a queue `+` with its weight (its member
/// count) on every change.
fn interest_op(
    kind: &str,
    account: Option<&str>,
    subject: &str,
    queue: Option<&str>,
    before: u32,
    after: u32,
) -> Option<String> {
    let acc = account.map(|a| format!("{a} ")).unwrap_or_default();
    match (queue, before, after) {
        (None, 0, a) if a > 0 => Some(format!("{kind}+ {acc}{subject}\r\n")),
        (None, b, 0) if b > 0 => Some(format!("{kind}- {acc}{subject}\r\n")),
        (Some(q), b, 0) if b > 0 => Some(format!("{kind}- {acc}{subject} {q}\r\n")),
        (Some(q), b, a) if a > 0 && a != b => Some(format!("{kind}+ {acc}{subject} {q} {a}\r\n")),
        _ => None,
    }
}

/// The tail every message frame shares: ` [<header size> ]<size>\r\n<body>\r\n`.
fn push_sizes_and_body(b: &mut Vec<u8>, header_len: Option<usize>, body: &[u8]) {
    b.push(b' ');
    if let Some(h) = header_len {
        push_num(b, h);
        b.push(b' ');
    }
    push_num(b, body.len());
    b.extend_from_slice(b"\r\n");
    b.extend_from_slice(body);
    b.extend_from_slice(b"\r\n");
}

/// Append a decimal number without allocating.
fn push_num(buf: &mut Vec<u8>, n: usize) {
    let mut b = itoa::Buffer::new();
    buf.extend_from_slice(b.format(n).as_bytes());
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
            echo: AtomicBool::new(true),
            info_aware: AtomicBool::new(false),
            is_leaf: AtomicBool::new(false),
            leaf_sent: Mutex::new(HashMap::new()),
            leaf_name: Mutex::new(None),
            is_spoke: AtomicBool::new(false),
            leaf_filters: OnceLock::new(),
            loop_detected: AtomicBool::new(false),
            is_route: AtomicBool::new(false),
            route_sent: Mutex::new(HashMap::new()),
            route_peer: Mutex::new(None),
            headers: AtomicBool::new(false),
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

    pub fn leaf(&self) -> bool {
        self.is_leaf.load(Ordering::Relaxed)
    }

    pub fn spoke(&self) -> bool {
        self.is_spoke.load(Ordering::Relaxed)
    }

    pub fn route(&self) -> bool {
        self.is_route.load(Ordering::Relaxed)
    }

    /// Tell this route that local interest in (account, subject, queue) grew or
    /// shrank: `RS+ <acc> <subject> [<queue> <weight>]` / `RS- <acc> <subject> [<queue>]`.
    pub fn route_interest(&self, account: &str, subject: &str, queue: Option<&str>, delta: i32) {
        let key = (
            Box::<str>::from(account),
            Box::<str>::from(subject),
            queue.map(Box::<str>::from),
        );
        let (before, after) = count_interest(&mut self.route_sent.lock(), key, delta);
        if let Some(l) = interest_op("RS", Some(account), subject, queue, before, after) {
            self.send(l.as_bytes());
        }
    }

    /// Tell this leaf link that local interest in (subject, queue) grew or shrank.
    pub fn leaf_interest(&self, subject: &str, queue: Option<&str>, delta: i32) {
        // `deny_imports`: this server does not want those subjects, so it never asks.
        if let Some(f) = self.leaf_filters.get() {
            if f.deny_imports
                .iter()
                .any(|d| crate::subject::is_subset(subject, d))
            {
                return;
            }
        }
        let key = (Box::<str>::from(subject), queue.map(Box::<str>::from));
        let (before, after) = count_interest(&mut self.leaf_sent.lock(), key, delta);
        if let Some(l) = interest_op("LS", None, subject, queue, before, after) {
            self.send(l.as_bytes());
        }
    }

    /// Append one LMSG/HMSG frame for a leaf link: once per message, naming the queue
    /// groups it was picked for (`| q1 q2` or `+ reply q1 q2`).
    pub fn deliver_leaf(
        &self,
        subject: &[u8],
        reply: Option<&[u8]>,
        queues: &[&str],
        header_len: usize,
        message: &[u8],
    ) -> bool {
        self.deliver_link(None, subject, reply, queues, header_len, message)
    }

    /// Append one RMSG/HMSG frame for a route: as for a leaf link, with the account
    /// after the op.
    pub fn deliver_route(
        &self,
        account: &str,
        subject: &[u8],
        reply: Option<&[u8]>,
        queues: &[&str],
        header_len: usize,
        message: &[u8],
    ) -> bool {
        self.deliver_link(Some(account), subject, reply, queues, header_len, message)
    }

    fn deliver_link(
        &self,
        account: Option<&str>,
        subject: &[u8],
        reply: Option<&[u8]>,
        queues: &[&str],
        header_len: usize,
        message: &[u8],
    ) -> bool {
        let with_headers = header_len > 0 && self.headers.load(Ordering::Relaxed);
        let body = if header_len > 0 && !with_headers {
            &message[header_len..]
        } else {
            message
        };
        let mut out = self.out.lock();
        if out.closed {
            return false;
        }
        let b = &mut out.buf;
        match (with_headers, account) {
            (true, _) => b.extend_from_slice(b"HMSG "),
            (false, None) => b.extend_from_slice(b"LMSG "),
            (false, Some(_)) => b.extend_from_slice(b"RMSG "),
        }
        if let Some(a) = account {
            b.extend_from_slice(a.as_bytes());
            b.push(b' ');
        }
        b.extend_from_slice(subject);
        match (reply, queues.is_empty()) {
            (Some(r), true) => {
                b.push(b' ');
                b.extend_from_slice(r);
            }
            (Some(r), false) => {
                b.extend_from_slice(b" + ");
                b.extend_from_slice(r);
            }
            (None, false) => b.extend_from_slice(b" |"),
            (None, true) => {}
        }
        for q in queues {
            b.push(b' ');
            b.extend_from_slice(q.as_bytes());
        }
        push_sizes_and_body(b, with_headers.then_some(header_len), body);
        if !self.check_pending(&mut out) {
            // A link that cannot keep up is closed like a client (and redialled by its
            // leaf): memory stays bounded.
            return false;
        }
        drop(out);
        self.stats.out_msgs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .out_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        true
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
        let by_kind = if self.route() {
            &s.slow_consumer_routes
        } else if self.leaf() {
            &s.slow_consumer_leafs
        } else {
            &s.slow_consumer_clients
        };
        by_kind.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes queued for this connection and not yet written to its socket.
    pub fn pending_bytes(&self) -> usize {
        let out = self.out.lock();
        out.buf.len() + out.in_flight
    }

    pub fn recheck_auth(&self) {
        self.recheck.notify_one();
    }

    pub fn account(&self) -> Option<&Arc<Account>> {
        self.account.get()
    }

    pub fn bind_account(&self, account: Arc<Account>) {
        let _ = self.account.set(account);
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

    /// Append a MSG (or HMSG) frame for `sub`. No allocation: the frame is written
    /// straight into the outbound buffer.
    pub fn deliver(
        &self,
        sub: &Subscription,
        subject: &[u8],
        reply: Option<&[u8]>,
        header_len: usize,
        message: &[u8],
    ) -> Delivered {
        // Every delivery counts, so `UNSUB <sid> <max>` after some have arrived
        // allows only the rest, as in nats-server.
        if sub.denies(subject) {
            return Delivered::No;
        }
        let max = sub.max.load(Ordering::Relaxed);
        let n = sub.delivered.fetch_add(1, Ordering::AcqRel) + 1;
        if max > 0 && n > max {
            return Delivered::No;
        }
        let last = max > 0 && n == max;
        let with_headers = header_len > 0 && self.headers.load(Ordering::Relaxed);
        let body = if header_len > 0 && !with_headers {
            &message[header_len..]
        } else {
            message
        };
        let mut out = self.out.lock();
        if out.closed {
            return Delivered::No;
        }
        let b = &mut out.buf;
        b.extend_from_slice(if with_headers { b"HMSG " } else { b"MSG " });
        b.extend_from_slice(subject);
        b.push(b' ');
        b.extend_from_slice(&sub.sid);
        if let Some(r) = reply {
            b.push(b' ');
            b.extend_from_slice(r);
        }
        push_sizes_and_body(b, with_headers.then_some(header_len), body);
        if !self.check_pending(&mut out) {
            // Never let a reader that cannot keep up grow memory: drop and close.
            return Delivered::No;
        }
        drop(out);
        if let Some(r) = reply {
            if self.grants_on.load(Ordering::Relaxed) {
                self.grant_reply(r);
            }
        }
        self.stats.out_msgs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .out_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        if last {
            Delivered::Last
        } else {
            Delivered::Yes
        }
    }
}

/// Timing of the keepalive, from the options.
#[derive(Clone, Copy)]
pub struct Liveness {
    pub first_ping: Duration,
    pub ping_interval: Duration,
    pub ping_max: u32,
    pub write_deadline: Duration,
}

/// The writer task: wait for a wake-up, swap the pending bytes out under the lock,
/// write them in one call, and keep the spare buffer for next time. Also sends PINGs
/// on a fixed schedule — traffic does not postpone them — and closes a connection
/// that leaves more than `ping_max` unanswered.
pub async fn writer<W: tokio::io::AsyncWrite + Unpin>(conn: Arc<Conn>, mut w: W, live: Liveness) {
    let mut spare: Vec<u8> = Vec::new();
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + live.first_ping,
        live.ping_interval,
    );
    loop {
        let mut draining = false;
        tokio::select! {
            _ = conn.wake.notified() => {}
            _ = conn.closing.cancelled() => draining = true,
            _ = ping.tick() => {
                let outstanding = conn.pings_out.fetch_add(1, Ordering::AcqRel) + 1;
                if outstanding > live.ping_max {
                    conn.server_stats.stale_connections.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("{} - cid:{} - Stale Client Connection - Closing", conn.addr, conn.cid);
                    {
                        let mut out = conn.out.lock();
                        out.buf.extend_from_slice(b"-ERR 'Stale Connection'\r\n");
                    }
                    conn.close("Stale Connection");
                    draining = true;
                } else {
                    let mut out = conn.out.lock();
                    if !out.closed {
                        out.buf.extend_from_slice(b"PING\r\n");
                        conn.rtt_start.store(unix_nanos(std::time::SystemTime::now()), Ordering::Release);
                    }
                }
            }
        }
        {
            let mut out = conn.out.lock();
            std::mem::swap(&mut out.buf, &mut spare);
            out.in_flight = spare.len();
        }
        if !spare.is_empty() {
            if let Err(reason) = write_out(&conn, &mut w, &spare, live.write_deadline).await {
                conn.close(reason);
                break;
            }
            // Keep the buffer while traffic is heavy (regrowing it costs copies);
            // give it back once writes are small again, so idle connections stay small.
            let written = spare.len();
            spare.clear();
            if spare.capacity() > 64 * 1024 && written < spare.capacity() / 8 {
                spare = Vec::new();
            }
        }
        if draining || conn.closing.is_cancelled() {
            // One last swap: anything queued just before close (a final -ERR).
            let rest = std::mem::take(&mut conn.out.lock().buf);
            if !rest.is_empty() {
                let _ = tokio::time::timeout(live.write_deadline, w.write_all(&rest)).await;
            }
            break;
        }
    }
    // Bounded: a TLS close_notify to a peer that stopped reading must not hold the
    // task (and the socket) forever.
    let _ = tokio::time::timeout(live.write_deadline, w.shutdown()).await;
}

/// Write `bytes` as the socket takes them, counting each part off the connection's
/// pending bytes, so a consumer that is reading drains its producers' wait as it goes.
/// A write that makes no progress for `write_deadline` is a slow consumer.
async fn write_out<W: tokio::io::AsyncWrite + Unpin>(
    conn: &Conn,
    w: &mut W,
    bytes: &[u8],
    write_deadline: Duration,
) -> Result<(), &'static str> {
    conn.last_progress
        .store(unix_nanos(std::time::SystemTime::now()), Ordering::Relaxed);
    let result = write_parts(conn, w, bytes, write_deadline).await;
    conn.last_progress.store(0, Ordering::Relaxed);
    result
}

async fn write_parts<W: tokio::io::AsyncWrite + Unpin>(
    conn: &Conn,
    w: &mut W,
    bytes: &[u8],
    write_deadline: Duration,
) -> Result<(), &'static str> {
    let mut done = 0;
    while done < bytes.len() {
        let n = match tokio::time::timeout(write_deadline, w.write(&bytes[done..])).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err("Write Error"),
            Ok(Ok(n)) => n,
            Err(_) => return Err(write_deadline_exceeded(conn, write_deadline)),
        };
        done += n;
        conn.last_progress
            .store(unix_nanos(std::time::SystemTime::now()), Ordering::Relaxed);
        let drained = {
            let mut out = conn.out.lock();
            out.in_flight = bytes.len() - done;
            let pending = out.buf.len() + out.in_flight;
            // Cleared under the lock: a producer that pushes it past the mark again
            // right after sets it again.
            let drained = conn.behind.load(Ordering::Relaxed) && pending <= conn.stall_mark / 2;
            if drained {
                conn.behind.store(false, Ordering::Release);
            }
            drained
        };
        if drained {
            conn.drained.notify_waiters();
        }
    }
    // TLS: what the session still holds goes out too, within the same deadline.
    match tokio::time::timeout(write_deadline, w.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("Write Error"),
        Err(_) => Err(write_deadline_exceeded(conn, write_deadline)),
    }
}

/// A write (or TLS flush) made no progress for `write_deadline`: count and log the
/// slow consumer, and give the close reason.
fn write_deadline_exceeded(conn: &Conn, write_deadline: Duration) -> &'static str {
    conn.count_slow_consumer();
    tracing::info!(
        "{} - cid:{} - Slow Consumer Detected: WriteDeadline of {:?} exceeded with {} total bytes",
        conn.addr,
        conn.cid,
        write_deadline,
        conn.pending_bytes()
    );
    "Slow Consumer (Write Deadline)"
}
