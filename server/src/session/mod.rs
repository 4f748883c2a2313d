//! A session is one connection's reader: the read loop every kind shares, each kind's
//! ops (`client.rs`, `leaf.rs`, `route.rs`), the one publish path (`publish.rs`), flow
//! control on the producer's side, and clean-up however the connection ends.

mod client;
mod leaf;
mod publish;
mod route;

pub use client::serve;
pub use leaf::send_interest_snapshot;

use crate::account::Account;
use crate::auth::Binding;
use crate::conn::{Conn, Peer, Subscription};
use crate::protocol::info::Connect;
use crate::world::World;
use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// How long, in all, a producer may be held back per read while consumers it fed
/// drain (nats-server's `stallTotalAllowed`). After that it reads on, and a consumer
/// that is still behind fills to max_pending and is cut.
const STALL_BUDGET: Duration = Duration::from_millis(10);
/// A producer held back this long in one read is logged (at most every 10 s).
const STALL_LOG_AFTER: Duration = Duration::from_millis(5);
/// Client reads start small (idle connections stay small) and double while they come
/// back full, up to this; links read in large blocks from the start.
const START_READ_BUFFER: usize = 512;
const MAX_READ_SIZE: usize = 256 * 1024;
const LINK_READ_SIZE: usize = 64 * 1024;

/// What a session starts with, beyond its connection. `run` takes it boxed: a task's
/// future then keeps only the pointer for the connection's whole life, not these fields.
#[derive(Default)]
pub struct Start {
    /// The nonce the INFO carried, for nkey signatures.
    pub nonce: String,
    /// Names a verified client certificate maps to.
    pub identities: Vec<String>,
    /// A dialled link is bound and connected from the start.
    pub binding: Option<Binding>,
    pub connected: bool,
    /// A dialled route: the peer whose INFO came first.
    pub peer: Option<Peer>,
}

/// Serve one connection of any kind, whatever its transport, until it closes: its
/// writer, its read loop, and — whatever happens in the read loop, even a bug that
/// panics — its clean-up: it leaves the tables and its interest leaves the sublists.
pub async fn run<K: Ops, R, W>(
    world: Arc<World>,
    conn: Arc<Conn>,
    rd: R,
    wr: W,
    mut start: Box<Start>,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let writer = tokio::spawn(crate::conn::writer(conn.clone(), wr, world.liveness));
    let peer = start.peer.take();
    let mut session = Session::new(world, conn, *start);
    // A dialled route: the peer's INFO came first; our CONNECT is on its way.
    let proceed = peer.is_none_or(|p| session.route_established(p));
    if proceed {
        let outcome = std::panic::AssertUnwindSafe(session.read_loop::<K, R>(rd))
            .catch_unwind()
            .await;
        if outcome.is_err() {
            let c = &session.conn;
            let what = if c.is_route() {
                "route closed"
            } else if c.is_leaf() {
                "leafnode connection closed"
            } else {
                "connection closed"
            };
            tracing::error!(
                "{} - {}:{} - internal error: {what}",
                c.addr,
                session.tag(),
                c.cid
            );
            c.close("Internal Error");
        }
    }
    session.cleanup();
    let _ = writer.await;
}

pub(crate) struct Session {
    world: Arc<World>,
    conn: Arc<Conn>,
    binding: Option<Binding>,
    connect: Connect,
    connected: bool,
    sent_pong: bool,
    /// Match results by subject, one cache per account this connection publishes in
    /// (a client: its own; a route: each account its peer names).
    caches: Vec<publish::MatchCache>,
    /// Connections written to during this read batch: flushed once at its end.
    touched: Vec<Arc<Conn>>,
    /// Subscriptions that reached their UNSUB max during this batch, with their account.
    expired: Vec<(Arc<Account>, Arc<Subscription>)>,
    /// xorshift state for picking queue members.
    rng: u64,
    /// This connection is a leaf link: no queue group is eligible unless named.
    from_leaf: bool,
    /// This connection is a route: one hop, so nothing it brings goes to another
    /// route; its messages span accounts, so matches are not cached.
    from_route: bool,
    /// Routes: the interest the peer announced, by `<account> <subject> [<queue>]`.
    route_subs: HashMap<Box<[u8]>, RouteSub>,
    /// Set while delivering something the server itself sends (a `$SYS` answer).
    server_origin: bool,
    /// The CONNECT whose credentials were verified (a reload re-checks these).
    authenticated: Option<Connect>,
    /// The nonce this connection's INFO carried, for nkey signatures.
    nonce: String,
    /// The reload generation this connection's binding was checked against.
    auth_generation: u64,
    /// Names the client certificate maps to (`verify_and_map`).
    identities: Vec<String>,
    /// Consumers fed in this read that are behind: the read loop waits for them
    /// after the op that fed them.
    behind: SmallVec<[Arc<Conn>; 2]>,
    /// What is left of this read's stall budget.
    stall_left: std::time::Duration,
    /// When a stall was last logged.
    stall_logged: Option<std::time::Instant>,
}

impl Session {
    fn new(world: Arc<World>, conn: Arc<Conn>, start: Start) -> Session {
        let (from_leaf, from_route) = (conn.is_leaf(), conn.is_route());
        Session {
            world,
            conn,
            binding: start.binding,
            connect: Connect::default(),
            connected: start.connected,
            sent_pong: false,
            caches: Vec::new(),
            touched: Vec::new(),
            expired: Vec::new(),
            rng: rand::random::<u64>() | 1,
            from_leaf,
            from_route,
            route_subs: HashMap::new(),
            server_origin: false,
            authenticated: None,
            nonce: start.nonce,
            auth_generation: 0,
            identities: start.identities,
            behind: SmallVec::new(),
            stall_left: STALL_BUDGET,
            stall_logged: None,
        }
    }
}

/// Interest a route's peer announced: the account it is in, and its subscription.
type RouteSub = (Arc<Account>, Arc<Subscription>);

/// Stop reading: the connection is closing.
pub(crate) struct Closed;

/// One kind of connection's side of the read loop: how it parses what it reads and
/// which handler takes each op. The loop is compiled once per kind, so a connection's
/// task holds only its own kind's state (a client does not carry a route's), and the
/// handler's future is awaited straight from the loop, as if written there.
pub(crate) trait Ops: Send + 'static {
    /// Every whole op at the start of `buf`, each handed to this kind's handler; flow
    /// control waits right after an op that fed a consumer that is behind. Returns how
    /// much was consumed and whether to stop.
    fn batch<'a>(
        s: &'a mut Session,
        buf: &'a [u8],
    ) -> impl Future<Output = (usize, bool)> + Send + 'a;
}

/// The body of `Ops::batch`, the same for every kind but its parser and handler
/// (written out per kind, so each handler's future is awaited in place).
macro_rules! batch {
    ($s:ident, $buf:ident, $traced:expr, |$b:ident, $limits:ident| $parse:expr, |$op:pat_param| $handle:expr) => {{
        let $limits = $s.world.limits;
        let mut pos = 0;
        loop {
            let $b = &$buf[pos..];
            match $parse {
                Ok(Some(($op, n))) => {
                    if $traced && tracing::enabled!(tracing::Level::TRACE) {
                        $s.trace_in(&$buf[pos..pos + n]);
                    }
                    let handled = $handle.await;
                    pos += n;
                    if handled.is_err() {
                        return (pos, true);
                    }
                    if !$s.behind.is_empty() {
                        $s.stall().await;
                    }
                }
                Ok(None) => return (pos, false),
                Err(e) => {
                    $s.protocol_error(e);
                    return (pos, true);
                }
            }
        }
    }};
}

/// Clients: the client protocol (`session/client.rs`).
pub(crate) struct ClientOps;
/// Leaf links, either side: LS±, LMSG (`session/leaf.rs`).
pub(crate) struct LeafOps;
/// Routes: RS±, RMSG with the account (`session/route.rs`).
pub(crate) struct RouteOps;

impl Ops for ClientOps {
    async fn batch<'a>(s: &'a mut Session, buf: &'a [u8]) -> (usize, bool) {
        batch!(
            s,
            buf,
            true,
            |b, limits| crate::protocol::client::parse(b, &limits),
            |op| s.process(op)
        )
    }
}

impl Ops for LeafOps {
    async fn batch<'a>(s: &'a mut Session, buf: &'a [u8]) -> (usize, bool) {
        batch!(
            s,
            buf,
            false,
            |b, limits| crate::protocol::leaf::parse(b, &limits),
            |op| s.leaf_process(op)
        )
    }
}

impl Ops for RouteOps {
    async fn batch<'a>(s: &'a mut Session, buf: &'a [u8]) -> (usize, bool) {
        batch!(
            s,
            buf,
            false,
            |b, limits| crate::protocol::leaf::parse_route(b, &limits)
                .map(|o| o.map(|(op, account, n)| ((op, account), n))),
            |(op, account)| s.route_process(op, account)
        )
    }
}

impl Session {
    fn serves_client(&self) -> bool {
        !self.from_leaf && !self.from_route
    }

    /// The log tag of this kind of connection.
    fn tag(&self) -> &'static str {
        match (self.from_leaf, self.from_route) {
            (true, _) => "lid",
            (_, true) => "rid",
            _ => "cid",
        }
    }

    /// How long a peer has to CONNECT, and whether it must: a client only when auth
    /// is required; a leaf link within the leafnode authorization's timeout (else the
    /// server's); a route within the cluster authorization's (else 2 s).
    fn auth_deadline(&self) -> (Duration, bool) {
        let o = &self.world.options;
        if self.from_route {
            let t = o.cluster.as_ref().and_then(|c| c.authorization.as_ref());
            return (
                t.and_then(|a| a.timeout).unwrap_or(Duration::from_secs(2)),
                true,
            );
        }
        let auth = self.world.auth();
        if self.from_leaf {
            let t = o.leafnodes.as_ref().and_then(|l| l.authorization.as_ref());
            return (t.and_then(|a| a.timeout).unwrap_or(auth.timeout), true);
        }
        (auth.timeout, auth.required)
    }

    async fn read_loop<K: Ops, R: tokio::io::AsyncRead + Unpin>(&mut self, mut rd: R) {
        let client = self.serves_client();
        let first = if client {
            START_READ_BUFFER
        } else {
            LINK_READ_SIZE
        };
        let mut buf = BytesMut::with_capacity(if client { first } else { 4096 });
        let mut read_size = first;
        let (timeout, must_connect) = self.auth_deadline();
        let auth_deadline = tokio::time::sleep(timeout);
        tokio::pin!(auth_deadline);
        loop {
            buf.reserve(read_size);
            tokio::select! {
                r = rd.read_buf(&mut buf) => match r {
                    Ok(0) => { self.conn.close("Client Closed"); return; }
                    Ok(n) if client => {
                        if n >= read_size && read_size < MAX_READ_SIZE {
                            read_size *= 2;
                        } else if n < read_size / 4 && read_size > START_READ_BUFFER {
                            read_size /= 2;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if !client {
                            // A TLS alert from the peer (it refused our certificate, say)
                            // arrives as a read error: say what it was.
                            tracing::error!("{} - {}:{} - read error: {e}", self.conn.addr, self.tag(), self.conn.cid);
                        }
                        self.conn.close("Read Error");
                        return;
                    }
                },
                _ = self.conn.closing.cancelled() => return,
                _ = self.conn.recheck.notified(), if client => {}
                _ = &mut auth_deadline, if must_connect && !self.connected => {
                    self.auth_timed_out();
                    return;
                }
            }
            if client
                && self.connected
                && self.world.auth_generation.load(Ordering::Acquire) != self.auth_generation
                && self.recheck_binding().await.is_err()
            {
                return;
            }
            self.stall_left = STALL_BUDGET;
            let (pos, stop) = K::batch(self, &buf).await;
            buf.advance(pos);
            self.end_batch();
            if client {
                self.conn.last_activity.store(
                    crate::conn::unix_nanos(std::time::SystemTime::now()),
                    Ordering::Relaxed,
                );
            }
            if stop {
                return;
            }
            if buf.is_empty() && buf.capacity() > 2 * MAX_READ_SIZE {
                buf = BytesMut::with_capacity(START_READ_BUFFER);
            }
        }
    }

    fn auth_timed_out(&self) {
        if self.serves_client() {
            tracing::error!(
                "{} - cid:{} - Authentication Timeout",
                self.conn.addr,
                self.conn.cid
            );
        }
        self.err("Authentication Timeout");
        self.conn.close("Authentication Timeout");
    }

    /// Flow control: flush what this read wrote so far, then wait, within what is
    /// left of the read's budget, for the consumers that are behind to drain. The
    /// peer is not read meanwhile, so TCP slows it down instead of a consumer being
    /// cut.
    async fn stall(&mut self) {
        let behind = std::mem::take(&mut self.behind);
        self.end_batch();
        if self.stall_left.is_zero() {
            return;
        }
        let start = std::time::Instant::now();
        for c in &behind {
            let left = self.stall_left.saturating_sub(start.elapsed());
            if left.is_zero() || !c.wait_drained(left).await {
                break;
            }
        }
        let waited = start.elapsed();
        self.stall_left = self.stall_left.saturating_sub(waited);
        self.conn.stalls.fetch_add(1, Ordering::Relaxed);
        self.world.stats.stalls.fetch_add(1, Ordering::Relaxed);
        let total = STALL_BUDGET.saturating_sub(self.stall_left);
        if total >= STALL_LOG_AFTER
            && self
                .stall_logged
                .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10))
        {
            self.stall_logged = Some(std::time::Instant::now());
            tracing::info!(
                "{} - cid:{} - Producer was stalled for a total of {:?}",
                self.conn.addr,
                self.conn.cid,
                total
            );
        }
    }

    /// Before delivering to `conn`: false when it is behind and
    /// `no_fast_producer_stall` drops messages to it rather than wait for it. As in
    /// nats-server that drops only what clients publish: what a leaf link or a route
    /// brings is queued (up to max_pending).
    #[inline]
    pub(super) fn admits(&self, conn: &Conn) -> bool {
        !conn.is_behind()
            || self.from_route
            || self.from_leaf
            || !self.world.no_fast_producer_stall.load(Ordering::Relaxed)
    }

    /// After delivering to `conn`: when it is behind, this read waits for it. Not
    /// for itself (its own reader is what would drain it), not for a consumer that
    /// stopped writing, and with `no_fast_producer_stall` not at all.
    #[inline]
    pub(super) fn note_behind(&mut self, conn: &Arc<Conn>) {
        if conn.wants_wait()
            && conn.cid != self.conn.cid
            && !self.world.no_fast_producer_stall.load(Ordering::Relaxed)
            && !self.behind.iter().any(|c| c.cid == conn.cid)
        {
            self.behind.push(conn.clone());
        }
    }

    /// Flush every connection written to in this batch, once; retire expired subs.
    fn end_batch(&mut self) {
        for c in self.touched.drain(..) {
            c.flush();
        }
        for (account, sub) in self.expired.drain(..) {
            remove_sub(&account, &sub);
        }
    }

    /// `-V`: each op as it arrives, in nats-server's trace shape, secrets redacted.
    fn trace_in(&self, frame: &[u8]) {
        let line_end = frame
            .iter()
            .position(|b| *b == b'\r' || *b == b'\n')
            .unwrap_or(frame.len());
        let line = String::from_utf8_lossy(&frame[..line_end]);
        let shown = match line.get(..7) {
            Some(op) if op.eq_ignore_ascii_case("CONNECT") => redact_connect(&line[7..]),
            _ => line.into_owned(),
        };
        tracing::trace!("{} - cid:{} - <<- [{shown}]", self.conn.addr, self.conn.cid);
    }

    /// A frame the parser refused: log it, send the official -ERR where there is one,
    /// and close (the same for client and leaf connections).
    fn protocol_error(&self, e: crate::protocol::client::ParseError) {
        let link = !self.serves_client();
        if link && !self.connected {
            // Before CONNECT, nats-server answers anything else on a leafnode or
            // cluster port as an unauthenticated peer.
            self.err("Authorization Violation");
            self.conn.close("Authorization Violation");
            return;
        }
        if link && e == crate::protocol::client::ParseError::UnknownOp {
            // An op a link does not speak (a client SUB, say): closed without -ERR.
            tracing::error!(
                "{} - {}:{} - unknown protocol operation on a link",
                self.conn.addr,
                if self.conn.is_route() { "rid" } else { "lid" },
                self.conn.cid
            );
            self.conn.close("Protocol Violation");
            return;
        }
        let tag = if self.conn.is_leaf() { "lid" } else { "cid" };
        tracing::error!(
            "{} - {tag}:{} - {}",
            self.conn.addr,
            self.conn.cid,
            e.reason()
        );
        if let Some(line) = e.err_line() {
            self.conn.send(line);
        }
        self.conn.close(match e {
            crate::protocol::client::ParseError::MaxPayload => "Maximum Payload Exceeded",
            _ => "Protocol Violation",
        });
    }

    fn err(&self, text: &str) {
        let mut line = Vec::with_capacity(text.len() + 10);
        line.extend_from_slice(b"-ERR '");
        line.extend_from_slice(text.as_bytes());
        line.extend_from_slice(b"'\r\n");
        self.conn.send(&line);
    }

    fn fatal(&self, text: &str, reason: &'static str) -> Result<(), Closed> {
        self.err(text);
        self.conn.close(reason);
        Err(Closed)
    }

    fn cleanup(&mut self) {
        self.end_batch();
        if self.from_route {
            crate::world::routes::unregister(&self.world, &self.conn);
            for (_, (account, sub)) in self.route_subs.drain() {
                if account.sublist.remove(&sub) {
                    account.interest_changed(&sub.subject, sub.queue.as_deref(), -1, &self.conn);
                }
            }
        }
        let subs: Vec<Arc<Subscription>> = self.conn.subs.lock().drain().map(|(_, s)| s).collect();
        if let Some(b) = &self.binding {
            for s in &subs {
                if b.account.sublist.remove(s) {
                    b.account
                        .interest_changed(&s.subject, s.queue.as_deref(), -1, &self.conn);
                }
            }
            if self.conn.is_leaf() {
                b.account.leafs.write().retain(|l| l.cid != self.conn.cid);
            }
        }
        self.caches.clear();
        let closed = &self.world.stats.closed;
        let st = &self.conn.stats;
        closed
            .in_msgs
            .fetch_add(st.in_msgs.load(Ordering::Relaxed), Ordering::Relaxed);
        closed
            .in_bytes
            .fetch_add(st.in_bytes.load(Ordering::Relaxed), Ordering::Relaxed);
        closed
            .out_msgs
            .fetch_add(st.out_msgs.load(Ordering::Relaxed), Ordering::Relaxed);
        closed
            .out_bytes
            .fetch_add(st.out_bytes.load(Ordering::Relaxed), Ordering::Relaxed);
        if !self.from_route {
            crate::monitor::record_closed(&self.world, &self.conn);
        }
        self.world.forget(self.conn.cid);
    }
}

/// Take a subscription out of its account and its connection.
pub(super) fn remove_sub(account: &Account, sub: &Arc<Subscription>) {
    {
        let mut subs = sub.conn.subs.lock();
        // The sid may already name a newer subscription: only remove this one.
        if subs
            .get(&sub.sid)
            .is_some_and(|owned| Arc::ptr_eq(owned, sub))
        {
            subs.remove(&sub.sid);
        }
    }
    if account.sublist.remove(sub) {
        account.interest_changed(&sub.subject, sub.queue.as_deref(), -1, &sub.conn);
    }
}

/// A CONNECT line for the trace log with every secret replaced.
fn redact_connect(json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(json.trim()) {
        Ok(serde_json::Value::Object(mut map)) => {
            for key in ["pass", "auth_token", "sig", "jwt"] {
                if let Some(v) = map.get_mut(key) {
                    *v = serde_json::Value::String("[REDACTED]".into());
                }
            }
            format!("CONNECT {}", serde_json::Value::Object(map))
        }
        // Unparsable: show nothing of it rather than risk a secret.
        _ => "CONNECT [unparsable, not shown]".into(),
    }
}
