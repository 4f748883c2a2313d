//! What is particular to client connections: CONNECT and auth, PUB/HPUB/SUB/UNSUB,
//! verbose/pedantic/echo/no_responders, permissions, and the publish path itself.

use super::{Conn, Delivered, Subscription};
use crate::account::Account;
use crate::auth::Binding;
use crate::protocol::client::{parse, Op};
use crate::protocol::info::Connect;
use crate::server::Shared;
use crate::subject;
use crate::sublist::Match;
use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How many subjects a connection remembers the matches of.
const MATCH_CACHE_SIZE: usize = 1024;
/// Accounts with a match cache on one connection (routes carry many).
const MAX_CACHED_ACCOUNTS: usize = 64;

/// Match results for one account, valid while its sublist generation holds.
pub(super) struct MatchCache {
    account: Arc<Account>,
    generation: u64,
    /// Fx-hashed: subjects are short and this is hit once per message (SipHash's
    /// flood resistance buys nothing here; the cache is per connection and bounded).
    by_subject: rustc_hash::FxHashMap<Box<[u8]>, Arc<Match<Subscription>>>,
}
/// How long, in all, a producer may be held back per read while consumers it fed
/// drain (nats-server's `stallTotalAllowed`). After that it reads on, and a consumer
/// that is still behind fills to max_pending and is cut.
pub(super) const STALL_BUDGET: std::time::Duration = std::time::Duration::from_millis(10);
/// A producer held back this long in one read is logged (at most every 10 s).
const STALL_LOG_AFTER: std::time::Duration = std::time::Duration::from_millis(5);
const START_READ_BUFFER: usize = 512;
const MAX_READ_SIZE: usize = 256 * 1024;

pub async fn serve(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    let cid = shared.next_cid.fetch_add(1, Ordering::Relaxed) + 1;
    shared
        .stats
        .total_connections
        .fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(Conn::new(
        cid,
        addr,
        shared.options.max_pending as usize,
        shared.stats.clone(),
    ));
    let mut info = shared.info();
    info.client_id = cid;
    info.client_ip = addr.ip().to_string();
    if shared.auth().uses_nonce() {
        info.nonce = crate::auth::Auth::new_nonce();
    }
    let admitted = {
        let mut conns = shared.conns.lock();
        if conns.len() as i64 >= shared.options.max_connections {
            false
        } else {
            conns.insert(cid, conn.clone());
            true
        }
    };
    if !admitted {
        tracing::error!("{addr} - cid:{cid} - maximum connections exceeded");
        let (_, wr) = stream.into_split();
        let writer = tokio::spawn(super::writer(conn.clone(), wr, shared.liveness));
        conn.send(&info.to_line());
        conn.send(b"-ERR 'maximum connections exceeded'\r\n");
        conn.close("Maximum Connections Exceeded");
        let _ = writer.await;
        return;
    }
    tracing::debug!("{addr} - cid:{cid} - Client connection created");
    match shared.tls() {
        None => {
            let (rd, wr) = stream.into_split();
            conn.send(&info.to_line());
            run(shared.clone(), conn.clone(), rd, wr, info.nonce, Vec::new()).await;
        }
        Some(tls) => match tls_upgrade(&shared, &tls, stream, &info, &conn).await {
            Some(Upgraded::Tls(s, info_sent, identities)) => {
                let (rd, wr) = tokio::io::split(*s);
                if !info_sent {
                    conn.send(&info.to_line());
                }
                run(shared.clone(), conn.clone(), rd, wr, info.nonce, identities).await;
            }
            Some(Upgraded::Plain(stream)) => {
                let (rd, wr) = stream.into_split();
                run(shared.clone(), conn.clone(), rd, wr, info.nonce, Vec::new()).await;
            }
            None => {
                shared.conns.lock().remove(&cid);
            }
        },
    }
    tracing::debug!(
        "{addr} - cid:{cid} - Client connection closed: {}",
        conn.close_reason().unwrap_or("Client Closed")
    );
}

enum Upgraded {
    /// The TLS stream, and whether INFO was already sent inside it.
    /// The TLS stream, whether INFO was already sent inside it, and the names its
    /// client certificate maps to (for `verify_and_map`).
    Tls(
        Box<tokio_rustls::server::TlsStream<TcpStream>>,
        bool,
        Vec<String>,
    ),
    /// `allow_non_tls`: the client stayed in plain text (INFO already sent).
    Plain(TcpStream),
}

/// The TLS handshake, in the order the config asks for: INFO in plain text then TLS
/// (the default), TLS first (`handshake_first`), or wait briefly for a ClientHello and
/// fall back to INFO first. A client that answers INFO in plain text when TLS is
/// required gets the official `-ERR` and is closed.
async fn tls_upgrade(
    shared: &Shared,
    tls: &crate::tls::ServerTls,
    mut stream: TcpStream,
    info: &crate::protocol::info::Info,
    conn: &Conn,
) -> Option<Upgraded> {
    use crate::config::tls::HandshakeFirst;
    use tokio::io::AsyncWriteExt;
    let addr = conn.addr;
    let cid = conn.cid;
    let starts_tls = |b: u8| b == 0x16;
    let mut peek = [0u8; 1];
    let tls_first = match tls.handshake_first {
        HandshakeFirst::On => true,
        HandshakeFirst::Off => false,
        HandshakeFirst::Fallback(wait) => {
            matches!(tokio::time::timeout(wait, stream.peek(&mut peek)).await, Ok(Ok(1)) if starts_tls(peek[0]))
        }
    };
    if !tls_first {
        if stream.write_all(&info.to_line()).await.is_err() {
            return None;
        }
        match tokio::time::timeout(tls.timeout, stream.peek(&mut peek)).await {
            Ok(Ok(1)) if starts_tls(peek[0]) => {}
            Ok(Ok(1)) if shared.options.allow_non_tls => return Some(Upgraded::Plain(stream)),
            Ok(Ok(1)) => {
                tracing::error!("{addr} - cid:{cid} - Client attempted to connect without TLS: Secure Connection - TLS Required");
                let _ = stream
                    .write_all(b"-ERR 'Secure Connection - TLS Required'\r\n")
                    .await;
                let _ = stream.shutdown().await;
                conn.close("Secure Connection - TLS Required");
                return None;
            }
            _ => {
                tracing::error!("{addr} - cid:{cid} - TLS handshake timeout");
                conn.close("TLS Handshake Error");
                return None;
            }
        }
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
    let s = match tokio::time::timeout(tls.timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::error!("{addr} - cid:{cid} - TLS handshake error: {e}");
            conn.close("TLS Handshake Error");
            return None;
        }
        Err(_) => {
            tracing::error!("{addr} - cid:{cid} - TLS handshake timeout");
            conn.close("TLS Handshake Error");
            return None;
        }
    };
    if let Err(why) = tls.check_pins(s.get_ref().1.peer_certificates()) {
        tracing::error!("{addr} - cid:{cid} - TLS handshake error: {why}");
        conn.close("TLS Handshake Error");
        return None;
    }
    let identities = crate::tls::cert_identities(s.get_ref().1.peer_certificates());
    Some(Upgraded::Tls(Box::new(s), !tls_first, identities))
}

/// Serve one connection, whatever its transport, until it closes.
async fn run<R, W>(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    rd: R,
    wr: W,
    nonce: String,
    identities: Vec<String>,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let writer = tokio::spawn(super::writer(conn.clone(), wr, shared.liveness));
    let mut client = Client::new(shared, conn, nonce, identities);
    // Whatever happens in the read loop — even a bug that panics — the connection
    // leaves the registry and its subscriptions leave the sublist.
    let outcome = std::panic::AssertUnwindSafe(client.read_loop(rd))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        tracing::error!(
            "{} - cid:{} - internal error: connection closed",
            client.conn.addr,
            client.conn.cid
        );
        client.conn.close("Internal Error");
    }
    client.cleanup();
    let _ = writer.await;
}

pub(crate) struct Client {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: Arc<Conn>,
    pub(crate) binding: Option<Binding>,
    pub(super) connect: Connect,
    pub(crate) connected: bool,
    pub(super) sent_pong: bool,
    /// Match results by subject, one cache per account this connection publishes in
    /// (a client: its own; a route: each account its peer names).
    pub(super) caches: Vec<MatchCache>,
    /// Connections written to during this read batch: flushed once at its end.
    pub(super) touched: Vec<Arc<Conn>>,
    /// Subscriptions that reached their UNSUB max during this batch.
    pub(super) expired: Vec<Arc<Subscription>>,
    /// xorshift state for picking queue members.
    pub(super) rng: u64,
    /// This connection is a leaf link: no queue group is eligible unless named.
    pub(crate) from_leaf: bool,
    /// This connection is a route: one hop, so nothing it brings goes to another
    /// route; its messages span accounts, so matches are not cached.
    pub(crate) from_route: bool,
    /// Routes: the interest the peer announced, by `<account> <subject> [<queue>]`.
    pub(crate) route_subs: HashMap<Box<[u8]>, RouteSub>,
    /// Set while delivering something the server itself sends (a `$SYS` answer).
    pub(super) server_origin: bool,
    /// The CONNECT whose credentials were verified (a reload re-checks these).
    pub(super) authenticated: Option<Connect>,
    /// The nonce this connection's INFO carried, for nkey signatures.
    pub(super) nonce: String,
    /// The reload generation this connection's binding was checked against.
    pub(super) auth_generation: u64,
    /// Names the client certificate maps to (`verify_and_map`).
    pub(super) identities: Vec<String>,
    /// Consumers fed in this read that are behind: the read loop waits for them
    /// after the op that fed them.
    pub(super) behind: SmallVec<[Arc<Conn>; 2]>,
    /// What is left of this read's stall budget.
    pub(super) stall_left: std::time::Duration,
    /// When a stall was last logged.
    pub(super) stall_logged: Option<std::time::Instant>,
}

impl Client {
    pub(crate) fn new(
        shared: Arc<Shared>,
        conn: Arc<Conn>,
        nonce: String,
        identities: Vec<String>,
    ) -> Client {
        Client {
            shared,
            conn,
            binding: None,
            connect: Connect::default(),
            connected: false,
            sent_pong: false,
            caches: Vec::new(),
            touched: Vec::new(),
            expired: Vec::new(),
            rng: rand::random::<u64>() | 1,
            from_leaf: false,
            from_route: false,
            route_subs: HashMap::new(),
            server_origin: false,
            authenticated: None,
            nonce,
            auth_generation: 0,
            identities,
            behind: SmallVec::new(),
            stall_left: STALL_BUDGET,
            stall_logged: None,
        }
    }
}

/// Links a message goes to, each with the queue groups it was picked for.
type LinkTargets<'a> = SmallVec<[(Arc<Conn>, SmallVec<[&'a str; 4]>); 4]>;

/// Interest a route's peer announced: the account it is in, and its subscription.
pub(crate) type RouteSub = (Arc<Account>, Arc<Subscription>);

/// Stop reading: the connection is closing.
pub(crate) struct Closed;

impl Client {
    pub(crate) async fn read_loop<R: tokio::io::AsyncRead + Unpin>(&mut self, mut rd: R) {
        let mut buf = BytesMut::with_capacity(START_READ_BUFFER);
        // Reads start small (idle connections stay small) and double while they come
        // back full, up to 64 KiB, so a fast publisher is read in few system calls.
        let mut read_size = START_READ_BUFFER;
        let auth = self.shared.auth();
        let auth_required = auth.required;
        let auth_deadline = tokio::time::sleep(auth.timeout);
        drop(auth);
        tokio::pin!(auth_deadline);
        let limits = self.shared.limits;
        loop {
            buf.reserve(read_size);
            tokio::select! {
                r = rd.read_buf(&mut buf) => match r {
                    Ok(0) => { self.conn.close("Client Closed"); return; }
                    Ok(n) => {
                        if n >= read_size && read_size < MAX_READ_SIZE {
                            read_size *= 2;
                        } else if n < read_size / 4 && read_size > START_READ_BUFFER {
                            read_size /= 2;
                        }
                    }
                    Err(_) => { self.conn.close("Read Error"); return; }
                },
                _ = self.conn.closing.cancelled() => return,
                _ = self.conn.recheck.notified() => {}
                _ = &mut auth_deadline, if auth_required && !self.connected => {
                    tracing::error!("{} - cid:{} - Authentication Timeout", self.conn.addr, self.conn.cid);
                    self.conn.send(b"-ERR 'Authentication Timeout'\r\n");
                    self.conn.close("Authentication Timeout");
                    return;
                }
            }
            if self.connected
                && self.shared.auth_generation.load(Ordering::Acquire) != self.auth_generation
                && self.recheck_binding().await.is_err()
            {
                return;
            }
            let mut pos = 0;
            let mut stop = false;
            self.stall_left = STALL_BUDGET;
            loop {
                match parse(&buf[pos..], &limits) {
                    Ok(Some((op, n))) => {
                        if tracing::enabled!(tracing::Level::TRACE) {
                            self.trace_in(&buf[pos..pos + n]);
                        }
                        let r = self.process(op).await;
                        pos += n;
                        if r.is_err() {
                            stop = true;
                            break;
                        }
                        if !self.behind.is_empty() {
                            self.stall().await;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.protocol_error(e);
                        stop = true;
                        break;
                    }
                }
            }
            buf.advance(pos);
            self.end_batch();
            self.conn.last_activity.store(
                super::unix_nanos(std::time::SystemTime::now()),
                Ordering::Relaxed,
            );
            if stop {
                return;
            }
            if buf.is_empty() && buf.capacity() > 2 * MAX_READ_SIZE {
                buf = BytesMut::with_capacity(START_READ_BUFFER);
            }
        }
    }

    /// Flow control: flush what this read wrote so far, then wait, within what is
    /// left of the read's budget, for the consumers that are behind to drain. The
    /// peer is not read meanwhile, so TCP slows it down instead of a consumer being
    /// cut.
    pub(crate) async fn stall(&mut self) {
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
        self.shared.stats.stalls.fetch_add(1, Ordering::Relaxed);
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
            || !self.shared.no_fast_producer_stall.load(Ordering::Relaxed)
    }

    /// After delivering to `conn`: when it is behind, this read waits for it. Not
    /// for itself (its own reader is what would drain it), not for a consumer that
    /// stopped writing, and with `no_fast_producer_stall` not at all.
    #[inline]
    pub(super) fn note_behind(&mut self, conn: &Arc<Conn>) {
        if conn.wants_wait()
            && conn.cid != self.conn.cid
            && !self.shared.no_fast_producer_stall.load(Ordering::Relaxed)
            && !self.behind.iter().any(|c| c.cid == conn.cid)
        {
            self.behind.push(conn.clone());
        }
    }

    /// Flush every connection written to in this batch, once; retire expired subs.
    pub(crate) fn end_batch(&mut self) {
        for c in self.touched.drain(..) {
            c.flush();
        }
        for sub in self.expired.drain(..) {
            remove_sub(&sub);
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
    pub(crate) fn protocol_error(&self, e: crate::protocol::client::ParseError) {
        let link = self.conn.leaf() || self.conn.route();
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
                if self.conn.route() { "rid" } else { "lid" },
                self.conn.cid
            );
            self.conn.close("Protocol Violation");
            return;
        }
        let tag = if self.conn.leaf() { "lid" } else { "cid" };
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

    pub(crate) fn err(&self, text: &str) {
        let mut line = Vec::with_capacity(text.len() + 10);
        line.extend_from_slice(b"-ERR '");
        line.extend_from_slice(text.as_bytes());
        line.extend_from_slice(b"'\r\n");
        self.conn.send(&line);
    }

    fn ok(&self) {
        if self.connect.verbose {
            self.conn.send(b"+OK\r\n");
        }
    }

    fn fatal(&self, text: &str, reason: &'static str) -> Result<(), Closed> {
        self.err(text);
        self.conn.close(reason);
        Err(Closed)
    }

    /// After a reload: authenticate again with the CONNECT this client sent. A user
    /// that is gone (or moved to another account) is closed; new permissions apply,
    /// and subscriptions they no longer allow are removed with the usual -ERR.
    /// Check credentials against the current auth. bcrypt is slow on purpose: the
    /// check runs off the threads that move messages, a bounded number at once.
    async fn check_credentials(&self, creds: Connect) -> Option<Binding> {
        let _permit = self.shared.auth_permits.clone().acquire_owned().await;
        let shared = self.shared.clone();
        let nonce = self.nonce.clone();
        let ids = self.identities.clone();
        tokio::task::spawn_blocking(move || {
            let auth = shared.auth();
            auth.authenticate(&creds, &nonce, &ids)
                .filter(|b| auth.allows_connection_type(b.user.as_deref(), "STANDARD"))
        })
        .await
        .ok()
        .flatten()
    }

    async fn recheck_binding(&mut self) -> Result<(), Closed> {
        self.auth_generation = self.shared.auth_generation.load(Ordering::Acquire);
        let fresh = self
            .check_credentials(self.authenticated.clone().unwrap_or_default())
            .await;
        let Some(old) = self.binding.take() else {
            return Ok(());
        };
        let Some(fresh) = fresh.filter(|b| Arc::ptr_eq(&b.account, &old.account)) else {
            tracing::error!(
                "{} - cid:{} - authorization revoked by config reload",
                self.conn.addr,
                self.conn.cid
            );
            // Closed without an -ERR, as nats-server does on reload.
            self.conn.close("Authentication Failure");
            return Err(Closed);
        };
        if let Some(p) = &fresh.permissions {
            let subs: Vec<Arc<Subscription>> = self.conn.subs.lock().values().cloned().collect();
            for sub in subs {
                if !p.can_subscribe(&sub.subject, sub.queue.as_deref()) {
                    self.err(&format!(
                        "Permissions Violation for Subscription to \"{}\"",
                        sub.subject
                    ));
                    remove_sub(&sub);
                }
            }
        }
        self.conn
            .set_allow_responses(fresh.permissions.as_ref().and_then(|p| p.responses));
        self.caches.clear();
        self.binding = Some(fresh);
        Ok(())
    }

    async fn process(&mut self, op: Op<'_>) -> Result<(), Closed> {
        if !self.connected && !matches!(op, Op::Connect(_)) {
            // With auth, anything before CONNECT — a PING too — is an authorization
            // violation, as in nats-server. Without, a client may skip CONNECT: PING
            // and PONG are answered, and anything else binds it anonymously.
            let auth = self.shared.auth();
            let anonymous = auth.anonymous().filter(|_| !auth.required);
            drop(auth);
            match anonymous {
                None => return self.fatal("Authorization Violation", "Authorization Violation"),
                Some(_) if matches!(op, Op::Ping | Op::Pong) => {}
                Some(b) => {
                    self.conn.bind_account(b.account.clone());
                    self.binding = Some(b);
                    self.connected = true;
                    self.auth_generation = self.shared.auth_generation.load(Ordering::Acquire);
                }
            }
        }
        match op {
            Op::Connect(json) => self.on_connect(json).await,
            Op::Ping => {
                self.conn.ping_received();
                self.conn.send(b"PONG\r\n");
                if !self.sent_pong && self.connected && self.connect.protocol >= 1 {
                    self.sent_pong = true;
                    self.send_connect_info();
                }
                Ok(())
            }
            Op::Pong => {
                self.conn.pong_received();
                Ok(())
            }
            Op::Ignored => Ok(()),
            Op::Pub {
                subject,
                reply,
                payload,
            } => self.on_pub(subject, reply, 0, payload),
            Op::HPub {
                subject,
                reply,
                header_len,
                message,
            } => {
                if !self.connect.headers || self.shared.options.no_header_support {
                    tracing::error!(
                        "{} - cid:{} - message headers not supported",
                        self.conn.addr,
                        self.conn.cid
                    );
                    self.conn.close("Protocol Violation");
                    return Err(Closed);
                }
                self.on_pub(subject, reply, header_len, message)
            }
            Op::Sub {
                subject,
                queue,
                sid,
            } => self.on_sub(subject, queue, sid),
            Op::Unsub { sid, max } => self.on_unsub(sid, max),
        }
    }

    /// The async INFO protocol-1 clients get after their first PONG.
    fn send_connect_info(&self) {
        let mut info = self.shared.info();
        info.client_id = self.conn.cid;
        info.client_ip = self.conn.addr.ip().to_string();
        info.connect_info = true;
        info.remote_account = self.binding.as_ref().map(|b| b.account.name.clone());
        self.conn.send(&info.to_line());
    }

    async fn on_connect(&mut self, json: &[u8]) -> Result<(), Closed> {
        let c: Connect = match serde_json::from_slice(json) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "{} - cid:{} - invalid CONNECT: {e}",
                    self.conn.addr,
                    self.conn.cid
                );
                self.conn.close("Protocol Violation");
                return Err(Closed);
            }
        };
        if c.no_responders && !c.headers {
            return self.fatal(
                "no responders requires headers support",
                "Protocol Violation",
            );
        }
        if !self.connected {
            // Read the generation first: a reload during the (slow) check is re-checked.
            let generation = self.shared.auth_generation.load(Ordering::Acquire);
            let binding = self.check_credentials(c.clone()).await;
            match binding {
                Some(b) => {
                    self.conn.bind_account(b.account.clone());
                    self.binding = Some(b);
                    self.auth_generation = generation;
                    self.authenticated = Some(c.clone());
                }
                None => {
                    let user = c
                        .user
                        .as_deref()
                        .map(|u| format!(" - user {u:?}"))
                        .unwrap_or_default();
                    tracing::error!(
                        "{} - cid:{} - authentication error{user}",
                        self.conn.addr,
                        self.conn.cid
                    );
                    return self.fatal("Authorization Violation", "Authorization Violation");
                }
            }
            self.connected = true;
        }
        self.conn.set_allow_responses(
            self.binding
                .as_ref()
                .and_then(|b| b.permissions.as_ref())
                .and_then(|p| p.responses),
        );
        *self.conn.meta.lock() = super::ClientMeta {
            name: c.name.clone(),
            lang: c.lang.clone(),
            version: c.version.clone(),
            user: self.binding.as_ref().and_then(|b| b.user.clone()),
        };
        self.conn.echo.store(c.echo, Ordering::Relaxed);
        self.conn
            .info_aware
            .store(c.protocol >= 1, Ordering::Relaxed);
        self.conn.headers.store(c.headers, Ordering::Relaxed);
        self.connect = c;
        self.ok();
        Ok(())
    }

    fn on_sub(&mut self, subj: &[u8], queue: Option<&[u8]>, sid: &[u8]) -> Result<(), Closed> {
        let Some(binding) = &self.binding else {
            return Ok(());
        };
        let valid =
            subject::is_valid_subscription(subj) && queue.is_none_or(subject::is_valid_queue);
        let (Ok(subj_str), Ok(queue_str)) = (
            std::str::from_utf8(subj),
            queue.map(std::str::from_utf8).transpose(),
        ) else {
            self.err("Invalid Subject");
            return Ok(());
        };
        // A bound on tokens keeps the trie walk's depth bounded whatever max_control_line is.
        if !valid || !subject::within_token_bound(subj) {
            self.err("Invalid Subject");
            return Ok(());
        }
        let max_tokens = self.shared.options.max_sub_tokens;
        if max_tokens > 0 && subj.split(|b| *b == b'.').count() as i64 > max_tokens {
            tracing::error!(
                "{} - cid:{} - Subscription Violation Too Many Tokens - Subject \"{subj_str}\", SID {}",
                self.conn.addr,
                self.conn.cid,
                String::from_utf8_lossy(sid)
            );
            self.err(&format!(
                "Permissions Violation for Subscription to \"{subj_str}\", too many tokens"
            ));
            return Ok(());
        }
        if let Some(p) = &binding.permissions {
            if !p.can_subscribe(subj_str, queue_str) {
                let text = match queue_str {
                    Some(q) => format!("Permissions Violation for Subscription to \"{subj_str}\" using queue \"{q}\""),
                    None => format!("Permissions Violation for Subscription to \"{subj_str}\""),
                };
                tracing::error!("{} - cid:{} - {text}", self.conn.addr, self.conn.cid);
                self.err(&text);
                return Ok(());
            }
        }
        let max_subs = self.shared.options.max_subscriptions;
        {
            let mut subs = self.conn.subs.lock();
            if subs.contains_key(sid) {
                // A repeated sid is ignored: the first subscription stands.
                drop(subs);
                self.ok();
                return Ok(());
            }
            if max_subs > 0 && subs.len() as i64 >= max_subs {
                drop(subs);
                self.err("maximum subscriptions exceeded");
                return Ok(());
            }
            let deny = binding
                .permissions
                .as_ref()
                .map(|p| p.overlapping_denies(subj_str))
                .filter(|d| !d.is_empty())
                .map(Arc::new);
            let sub = Arc::new(Subscription {
                conn: self.conn.clone(),
                subject: subj_str.into(),
                queue: queue_str.map(Into::into),
                sid: sid.into(),
                max: Default::default(),
                delivered: Default::default(),
                deny,
            });
            subs.insert(sid.into(), sub.clone());
            binding.account.sublist.insert(sub);
            binding
                .account
                .interest_changed(subj_str, queue_str, 1, &self.conn);
        }
        self.ok();
        Ok(())
    }

    fn on_unsub(&mut self, sid: &[u8], max: Option<u64>) -> Result<(), Closed> {
        let sub = self.conn.subs.lock().get(sid).cloned();
        if let Some(sub) = sub {
            match max {
                Some(m) if m > 0 && sub.delivered.load(Ordering::Acquire) < m => {
                    sub.max.store(m, Ordering::Release)
                }
                _ => remove_sub(&sub),
            }
        }
        self.ok();
        Ok(())
    }

    fn on_pub(
        &mut self,
        subj: &[u8],
        reply: Option<&[u8]>,
        header_len: usize,
        message: &[u8],
    ) -> Result<(), Closed> {
        let Some(binding) = &self.binding else {
            return Ok(());
        };
        self.conn.stats.in_msgs.fetch_add(1, Ordering::Relaxed);
        self.conn
            .stats
            .in_bytes
            .fetch_add(message.len() as u64, Ordering::Relaxed);
        if self.connect.pedantic && !subject::is_valid_publish(subj) {
            self.err("Invalid Publish Subject");
            return Ok(());
        }
        // Mappings apply before permissions, as in nats-server: what is checked is
        // the subject the message will really travel on.
        let mapped;
        let subj = match (
            binding.account.mappings.is_empty(),
            std::str::from_utf8(subj),
        ) {
            (false, Ok(s)) => match crate::mapping::map_subject(&binding.account.mappings, s) {
                Some(m) => {
                    mapped = m;
                    mapped.as_bytes()
                }
                None => subj,
            },
            _ => subj,
        };
        if let Some(p) = &binding.permissions {
            if !p.can_publish(subj) && !self.conn.use_reply_grant(subj) {
                let text = format!(
                    "Permissions Violation for Publish to \"{}\"",
                    String::from_utf8_lossy(subj)
                );
                tracing::error!("{} - cid:{} - {text}", self.conn.addr, self.conn.cid);
                self.err(&text);
                return Ok(());
            }
        }
        // The official server acknowledges before it delivers (a verbose client that
        // subscribed to its own subject sees +OK, then the MSG).
        self.ok();
        let account = binding.account.clone();
        let answered = self.route(&account, subj, reply, header_len, message, 0);
        if !answered {
            if let Some(r) = reply {
                if self.connect.no_responders && self.connect.headers {
                    self.no_responders(subj, r);
                }
            }
        }
        Ok(())
    }

    fn next_member(&mut self) -> usize {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x as usize
    }

    /// The matches for `subj` in the client's own account, from the cache when the
    /// sublist has not changed since.
    fn local_matches(&mut self, account: &Arc<Account>, subj: &[u8]) -> Arc<Match<Subscription>> {
        let i = match self
            .caches
            .iter()
            .position(|c| Arc::ptr_eq(&c.account, account))
        {
            Some(i) => i,
            None => {
                if self.caches.len() >= MAX_CACHED_ACCOUNTS {
                    self.caches.clear();
                }
                self.caches.push(MatchCache {
                    account: account.clone(),
                    generation: 0,
                    by_subject: Default::default(),
                });
                self.caches.len() - 1
            }
        };
        let cache = &mut self.caches[i];
        let generation = account.sublist.generation();
        if generation != cache.generation {
            cache.by_subject.clear();
            cache.generation = generation;
        }
        if let Some(m) = cache.by_subject.get(subj) {
            return m.clone();
        }
        let m = Arc::new(match std::str::from_utf8(subj) {
            Ok(s) if subject::within_token_bound(s.as_bytes()) => account.sublist.matches(s),
            _ => Match::default(),
        });
        if cache.by_subject.len() >= MATCH_CACHE_SIZE {
            cache.by_subject.clear();
        }
        cache.by_subject.insert(subj.into(), m.clone());
        m
    }

    /// An account this connection has published in, without taking the accounts lock
    /// (a route names the account in every message).
    pub(crate) fn cached_account(&self, name: &[u8]) -> Option<Arc<Account>> {
        self.caches
            .iter()
            .find(|c| c.account.name.as_bytes() == name)
            .map(|c| c.account.clone())
    }

    /// Deliver a message published in `account`: mappings first, then reply routes of
    /// service imports, local subscribers, services this account imports, and accounts
    /// that import this stream. Returns whether anyone could answer (for no-responders).
    pub(crate) fn route(
        &mut self,
        account: &Arc<Account>,
        subj: &[u8],
        reply: Option<&[u8]>,
        header_len: usize,
        message: &[u8],
        depth: usize,
    ) -> bool {
        self.route_inner(account, subj, reply, header_len, message, depth, None)
    }

    /// `eligible`: for messages from a leaf link, the queue groups (space-separated)
    /// the sender picked this server for; `None` from clients (every group).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn route_inner(
        &mut self,
        account: &Arc<Account>,
        subj: &[u8],
        reply: Option<&[u8]>,
        header_len: usize,
        message: &[u8],
        depth: usize,
        eligible: Option<&[u8]>,
    ) -> bool {
        // Imports may chain through accounts; a cycle of them stops here.
        if depth > 4 {
            return false;
        }
        let mapped;
        // The publisher's own account was mapped before its permissions were checked.
        let subj = match (
            depth == 0 || account.mappings.is_empty(),
            std::str::from_utf8(subj),
        ) {
            (false, Ok(s)) => match crate::mapping::map_subject(&account.mappings, s) {
                Some(m) => {
                    mapped = m;
                    mapped.as_bytes()
                }
                None => subj,
            },
            _ => subj,
        };
        let imports = account.crosses_accounts();
        if imports {
            if let Ok(s) = std::str::from_utf8(subj) {
                if s.starts_with("_R_.") {
                    if let Some((requester, original)) = account.take_response_route(s) {
                        return self.route(
                            &requester,
                            original.as_bytes(),
                            None,
                            header_len,
                            message,
                            depth + 1,
                        );
                    }
                }
            }
        }
        let mut answered = false;
        if subj.starts_with(b"$SYS.REQ.")
            && self.shared.system_account.as_deref() == Some(account.name.as_str())
        {
            if let (Some(r), Ok(s)) = (reply, std::str::from_utf8(subj)) {
                if let Some(response) = crate::sys::respond(&self.shared, s, &message[header_len..])
                {
                    answered = true;
                    let r = r.to_vec();
                    // The server answers, not the requester: echo settings do not apply.
                    let before = self.server_origin;
                    self.server_origin = true;
                    self.route(account, &r, None, 0, &response, depth + 1);
                    self.server_origin = before;
                }
            }
        }
        let matched = if depth == 0 {
            self.local_matches(account, subj)
        } else {
            Arc::new(
                std::str::from_utf8(subj)
                    .ok()
                    .filter(|s| subject::within_token_bound(s.as_bytes()))
                    .map(|s| account.sublist.matches(s))
                    .unwrap_or_default(),
            )
        };
        let echo = self.server_origin || self.conn.echo.load(Ordering::Relaxed);
        let me = self.conn.cid;
        // One frame per link and message, naming the queue groups picked for it; inline
        // storage keeps the publish path free of allocations.
        let mut leaf_targets: LinkTargets<'_> = SmallVec::new();
        let mut route_targets: LinkTargets<'_> = SmallVec::new();
        for sub in &matched.plain {
            if !echo && sub.conn.cid == me {
                continue;
            }
            if sub.conn.route() {
                // One hop: what came over a route goes to local clients and leafs only.
                if !self.from_route && !route_targets.iter().any(|(c, _)| c.cid == sub.conn.cid) {
                    route_targets.push((sub.conn.clone(), SmallVec::new()));
                }
                continue;
            }
            if sub.conn.leaf() {
                // Each server of a cluster sends up its own link to the hub: a message
                // that came over a route is never sent up a spoke link.
                if sub.denies(subj) || (self.from_route && sub.conn.spoke()) {
                    continue;
                }
                // One frame per leaf link, however many of its subscriptions match.
                if !leaf_targets.iter().any(|(c, _)| c.cid == sub.conn.cid) {
                    leaf_targets.push((sub.conn.clone(), SmallVec::new()));
                }
                continue;
            }
            answered |= self.deliver_to(sub, subj, reply, header_len, message);
        }
        for group in &matched.queues {
            if let (Some(list), Some(first)) = (eligible, group.first()) {
                let name = first.queue.as_deref().unwrap_or("");
                if !list.split(|b| *b == b' ').any(|q| q == name.as_bytes()) {
                    continue;
                }
            } else if eligible.is_none() && (self.from_leaf || self.from_route) {
                continue;
            }
            // One member per group, from a random start (a shared rotating counter
            // can starve members when several groups match); skip members that
            // cannot take it (our own when echo is off).
            let n = group.len();
            let start = self.next_member();
            for i in 0..n {
                let sub = &group[(start + i) % n];
                if !echo && sub.conn.cid == me {
                    continue;
                }
                if sub.conn.route() {
                    if self.from_route {
                        continue;
                    }
                    let q = sub.queue.as_deref().unwrap_or("");
                    match route_targets
                        .iter_mut()
                        .find(|(c, _)| c.cid == sub.conn.cid)
                    {
                        Some((_, qs)) => qs.push(q),
                        None => route_targets.push((sub.conn.clone(), smallvec::smallvec![q])),
                    }
                    answered = true;
                    break;
                }
                if sub.conn.leaf() {
                    if sub.denies(subj) || (self.from_route && sub.conn.spoke()) {
                        continue;
                    }
                    let q = sub.queue.as_deref().unwrap_or("");
                    match leaf_targets.iter_mut().find(|(c, _)| c.cid == sub.conn.cid) {
                        Some((_, qs)) => qs.push(q),
                        None => leaf_targets.push((sub.conn.clone(), smallvec::smallvec![q])),
                    }
                    answered = true;
                    break;
                }
                if self.deliver_to(sub, subj, reply, header_len, message) {
                    answered = true;
                    break;
                }
            }
        }
        for (conn, queues) in leaf_targets {
            if self.admits(&conn) && conn.deliver_leaf(subj, reply, &queues, header_len, message) {
                answered = true;
                self.note_behind(&conn);
                if conn.mark_for_flush() {
                    self.touched.push(conn);
                }
            }
        }
        for (conn, queues) in route_targets {
            if self.admits(&conn)
                && conn.deliver_route(&account.name, subj, reply, &queues, header_len, message)
            {
                answered = true;
                self.note_behind(&conn);
                if conn.mark_for_flush() {
                    self.touched.push(conn);
                }
            }
        }
        if !imports {
            return answered;
        }
        let Ok(s) = std::str::from_utf8(subj) else {
            return answered;
        };
        for si in account
            .service_imports
            .get()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if !subject::matches(si.local.as_bytes(), s.as_bytes()) {
                continue;
            }
            let target_subject = if si.local == si.subject || si.subject.contains(['*', '>']) {
                crate::account::translate(&si.local, &si.subject, s)
            } else {
                si.subject.clone()
            };
            // The requester's reply subject is not valid in the exporting account:
            // give the service a fresh `_R_.` subject and remember the way back.
            let new_reply = reply.and_then(|r| std::str::from_utf8(r).ok()).map(|r| {
                let fresh = crate::account::response_subject();
                si.target.add_response_route(
                    fresh.clone(),
                    crate::account::ResponseRoute {
                        account: account.clone(),
                        reply: r.to_string(),
                        singleton: si.response == crate::config::accounts::ResponseType::Singleton,
                        expires: crate::account::response_ttl(),
                    },
                );
                fresh
            });
            let target = si.target.clone();
            answered |= self.route(
                &target,
                target_subject.as_bytes(),
                new_reply.as_deref().map(str::as_bytes),
                header_len,
                message,
                depth + 1,
            );
        }
        for imp in account
            .stream_importers
            .get()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if subject::matches(imp.subject.as_bytes(), s.as_bytes()) {
                let seen_as = crate::account::imported_subject(imp, s);
                let importer = imp.importer.clone();
                answered |= self.route(
                    &importer,
                    seen_as.as_bytes(),
                    reply,
                    header_len,
                    message,
                    depth + 1,
                );
            }
        }
        answered
    }

    /// Returns whether the message was taken.
    fn deliver_to(
        &mut self,
        sub: &Arc<Subscription>,
        subj: &[u8],
        reply: Option<&[u8]>,
        hl: usize,
        msg: &[u8],
    ) -> bool {
        if !self.admits(&sub.conn) {
            return false;
        }
        let taken = match sub.conn.deliver(sub, subj, reply, hl, msg) {
            Delivered::Yes => true,
            Delivered::Last => {
                self.expired.push(sub.clone());
                true
            }
            Delivered::No => false,
        };
        if taken {
            self.note_behind(&sub.conn);
            if sub.conn.mark_for_flush() {
                self.touched.push(sub.conn.clone());
            }
        }
        taken
    }

    /// The `NATS/1.0 503` status a requester gets when nobody listens.
    fn no_responders(&mut self, subj: &[u8], reply: &[u8]) {
        let Ok(reply_str) = std::str::from_utf8(reply) else {
            return;
        };
        let mine: Vec<Arc<Subscription>> = self
            .conn
            .subs
            .lock()
            .values()
            .filter(|s| subject::matches(s.subject.as_bytes(), reply_str.as_bytes()))
            .cloned()
            .collect();
        let mut hdr = b"NATS/1.0 503\r\nNats-Subject: ".to_vec();
        hdr.extend_from_slice(subj);
        hdr.extend_from_slice(b"\r\n\r\n");
        for sub in mine {
            self.deliver_to(&sub, reply, None, hdr.len(), &hdr);
        }
    }

    pub(crate) fn cleanup(&mut self) {
        self.end_batch();
        if self.from_route {
            crate::route::unregister(&self.shared, &self.conn);
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
            if self.conn.leaf() {
                b.account.leafs.write().retain(|l| l.cid != self.conn.cid);
            }
        }
        self.caches.clear();
        let closed = &self.shared.stats.closed;
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
            crate::monitor::record_closed(&self.shared, &self.conn);
        }
        self.shared.conns.lock().remove(&self.conn.cid);
    }
}

/// Take a subscription out of its account and its connection.
pub(super) fn remove_sub(sub: &Arc<Subscription>) {
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
    if let Some(acc) = sub.conn.account() {
        if acc.sublist.remove(sub) {
            acc.interest_changed(&sub.subject, sub.queue.as_deref(), -1, &sub.conn);
        }
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
