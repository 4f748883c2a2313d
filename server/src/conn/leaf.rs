//! Accepted leafnode links (the hub side): the INFO an official leaf requires, CONNECT
//! with the leafnode authorization, the interest snapshot and LS+/LS- updates, loop
//! detection by `$LDS.` subjects, and LMSG/HMSG in both directions.

use super::client::{remove_sub, Client, Closed};
use super::{Conn, Subscription};
use crate::protocol::info::{Connect, Info};
use crate::protocol::leaf::{parse, parse_route, LeafOp};
use crate::server::Shared;
use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The subject this server subscribes to on every leaf link: seeing it come back as
/// interest from a leaf means the links form a loop.
pub fn loop_subject(shared: &Shared) -> String {
    // 22 characters, stable for this server's life, like nats-server's.
    format!("$LDS.{}", &shared.server_id[shared.server_id.len() - 22..])
}

fn leaf_info(shared: &Shared, cid: u64, addr: SocketAddr) -> Info {
    let mut info = shared.info();
    info.proto = 1;
    info.client_id = cid;
    info.client_ip = addr.ip().to_string();
    let port = shared.leaf_port.load(Ordering::Relaxed) as u16;
    let l = shared.options.leafnodes.as_ref();
    let advertise = l.and_then(|l| l.advertise.as_deref());
    // The leafnode listener's own host (client_advertise is for clients only).
    let host = l
        .and_then(|l| l.host.clone())
        .unwrap_or_else(|| shared.options.host.clone());
    (info.host, info.port) = crate::server::advertised_host_port(advertise, &host, port);
    info.auth_required = shared.leaf_auth_required();
    info.tls_required = false;
    info.tls_available = false;
    info.tls_verify = false;
    // Every leaf connection gets its own nonce, as clients do: a signature of it
    // proves the leaf's nkey now, and cannot be replayed on another connection.
    info.nonce = crate::auth::Auth::new_nonce();
    info
}

pub async fn serve(shared: Arc<Shared>, mut stream: TcpStream, addr: SocketAddr) {
    use tokio::io::AsyncWriteExt;
    let cid = shared.next_cid.fetch_add(1, Ordering::Relaxed) + 1;
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(Conn::new(
        cid,
        addr,
        super::link_max_pending(shared.options.max_pending as usize),
        shared.stats.clone(),
    ));
    conn.is_leaf.store(true, Ordering::Relaxed);
    // A message never goes back over the link it came from.
    conn.echo.store(false, Ordering::Relaxed);
    conn.headers.store(true, Ordering::Relaxed);
    let tls = shared.leaf_tls.clone();
    let mut info = leaf_info(&shared, cid, addr);
    if let Some(t) = &tls {
        info.tls_required = true;
        info.tls_verify = t.verify;
        info.auth_required |= t.verify;
    }
    // An official leaf treats an INFO without client_id or leafnode_urls as the wrong port.
    let mut line = serde_json::to_value(&info).unwrap_or_default();
    line["leafnode_urls"] = serde_json::json!(shared.leaf_urls());
    let mut bytes = b"INFO ".to_vec();
    bytes.extend_from_slice(line.to_string().as_bytes());
    bytes.extend_from_slice(b" \r\n");
    tracing::info!("{addr} - lid:{cid} - Leafnode connection created");
    match tls {
        None => {
            conn.send(&bytes);
            let (rd, wr) = stream.into_split();
            run(shared, conn, rd, wr, info.nonce, Vec::new()).await;
        }
        Some(t) => {
            // INFO in plain text, then the leaf starts TLS — or, with handshake_first
            // on both ends, TLS straight away and INFO inside it.
            let tls_first = t.handshake_first == crate::config::tls::HandshakeFirst::On;
            if tls_first {
                conn.send(&bytes);
            } else if stream.write_all(&bytes).await.is_err() {
                return;
            }
            let acceptor = tokio_rustls::TlsAcceptor::from(t.config.clone());
            match tokio::time::timeout(t.timeout, acceptor.accept(stream)).await {
                Ok(Ok(s)) => {
                    if let Err(why) = t.check_pins(s.get_ref().1.peer_certificates()) {
                        tracing::error!("{addr} - lid:{cid} - TLS leafnode handshake error: {why}");
                        return;
                    }
                    let identities = crate::tls::cert_identities(s.get_ref().1.peer_certificates());
                    let (rd, wr) = tokio::io::split(s);
                    run(shared, conn, rd, wr, info.nonce, identities).await;
                }
                Ok(Err(e)) => {
                    tracing::error!("{addr} - lid:{cid} - TLS leafnode handshake error: {e}")
                }
                Err(_) => tracing::error!("{addr} - lid:{cid} - TLS leafnode handshake timeout"),
            }
        }
    }
}

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
    let (addr, cid) = (conn.addr, conn.cid);
    shared.conns.lock().insert(cid, conn.clone());
    let writer = tokio::spawn(super::writer(conn.clone(), wr, shared.liveness));
    let mut client = Client::new(shared.clone(), conn.clone(), nonce, Vec::new());
    client.from_leaf = true;
    client.identities = identities;
    // leafnodes { authorization { timeout } } when given, else the server's.
    let timeout = shared
        .options
        .leafnodes
        .as_ref()
        .and_then(|l| l.authorization.as_ref())
        .and_then(|a| a.timeout)
        .unwrap_or_else(|| shared.auth().timeout);
    let outcome = std::panic::AssertUnwindSafe(client.link_read_loop(rd, timeout))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        tracing::error!("{addr} - lid:{cid} - internal error: leafnode connection closed");
        conn.close("Internal Error");
    }
    client.cleanup();
    let _ = writer.await;
    tracing::info!(
        "{addr} - lid:{cid} - Leafnode connection closed: {}",
        conn.close_reason().unwrap_or("Client Closed")
    );
}

/// Subjects links use for themselves (loop detection, gateway replies): never
/// subject to a user's permissions.
fn is_link_internal(subject: &[u8]) -> bool {
    subject.starts_with(b"$LDS.") || subject.starts_with(b"$GR.") || subject.starts_with(b"_GR_.")
}

/// The synthetic sid under which a leaf's interest is kept.
fn leaf_sid(subject: &[u8], queue: Option<&[u8]>) -> Box<[u8]> {
    let mut sid = subject.to_vec();
    if let Some(q) = queue {
        sid.push(b' ');
        sid.extend_from_slice(q);
    }
    sid.into()
}

impl Client {
    /// The read loop of a leaf link or a route (`from_route`): the same framing, each
    /// op handed to its protocol. A peer that does not CONNECT within `auth_timeout`
    /// is closed.
    pub(crate) async fn link_read_loop<R: tokio::io::AsyncRead + Unpin>(
        &mut self,
        mut rd: R,
        auth_timeout: std::time::Duration,
    ) {
        let mut buf = BytesMut::with_capacity(4096);
        let limits = self.shared.limits;
        let tag = if self.from_route { "rid" } else { "lid" };
        let auth_deadline = tokio::time::sleep(auth_timeout);
        tokio::pin!(auth_deadline);
        loop {
            buf.reserve(64 * 1024);
            tokio::select! {
                r = rd.read_buf(&mut buf) => match r {
                    Ok(0) => { self.conn.close("Client Closed"); return; }
                    Ok(_) => {}
                    Err(e) => {
                        // A TLS alert from the peer (it refused our certificate, say)
                        // arrives as a read error: say what it was.
                        tracing::error!("{} - {tag}:{} - read error: {e}", self.conn.addr, self.conn.cid);
                        self.conn.close("Read Error");
                        return;
                    }
                },
                _ = self.conn.closing.cancelled() => return,
                _ = &mut auth_deadline, if !self.connected => {
                    self.err("Authentication Timeout");
                    self.conn.close("Authentication Timeout");
                    return;
                }
            }
            let mut pos = 0;
            let mut stop = false;
            self.stall_left = super::client::STALL_BUDGET;
            loop {
                let parsed = if self.from_route {
                    parse_route(&buf[pos..], &limits)
                } else {
                    parse(&buf[pos..], &limits).map(|o| o.map(|(op, n)| (op, None, n)))
                };
                match parsed {
                    Ok(Some((op, account, n))) => {
                        let r = if self.from_route {
                            self.route_process(op, account).await
                        } else {
                            self.leaf_process(op).await
                        };
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
            if stop {
                return;
            }
        }
    }

    async fn leaf_process(&mut self, op: LeafOp<'_>) -> Result<(), Closed> {
        if !self.connected
            && !matches!(
                op,
                LeafOp::Connect(_)
                    | LeafOp::Ping
                    | LeafOp::Pong
                    | LeafOp::Info(_)
                    | LeafOp::Ignored
            )
        {
            self.err("Authorization Violation");
            self.conn.close("Authorization Violation");
            return Err(Closed);
        }
        match op {
            LeafOp::Connect(json) => self.leaf_connect(json).await,
            LeafOp::Ping => {
                self.conn.ping_received();
                self.conn.send(b"PONG\r\n");
                Ok(())
            }
            LeafOp::Pong => {
                self.conn.pong_received();
                Ok(())
            }
            LeafOp::Ignored | LeafOp::Info(_) => Ok(()),
            LeafOp::Err(text) => {
                if text.windows(13).any(|w| w == b"Loop detected") {
                    self.conn.loop_detected.store(true, Ordering::Relaxed);
                }
                tracing::error!(
                    "{} - lid:{} - leafnode sent -ERR {}",
                    self.conn.addr,
                    self.conn.cid,
                    String::from_utf8_lossy(text)
                );
                Ok(())
            }
            LeafOp::Sub { subject, queue, .. } => self.leaf_sub(subject, queue),
            LeafOp::Unsub { subject, queue } => {
                let sid = leaf_sid(subject, queue);
                let sub = self.conn.subs.lock().get(&sid).cloned();
                if let Some(sub) = sub {
                    remove_sub(&sub);
                }
                Ok(())
            }
            LeafOp::Msg {
                subject,
                reply,
                queues,
                header_len,
                message,
            } => {
                let Some(binding) = &self.binding else {
                    return Ok(());
                };
                // The user the leaf logged in as may publish only what its
                // permissions allow; anything else closes the link, as in nats-server.
                if let Some(p) = &binding.permissions {
                    if !p.can_publish(subject) && !is_link_internal(subject) {
                        let subj = String::from_utf8_lossy(subject).into_owned();
                        tracing::error!(
                            "{} - lid:{} - Publish Violation on \"{subj}\" - Check other side configuration",
                            self.conn.addr,
                            self.conn.cid
                        );
                        self.err(&format!("Permissions Violation for Publish to \"{subj}\""));
                        self.conn.close("Protocol Violation");
                        return Err(Closed);
                    }
                }
                if let Some(f) = self.conn.leaf_filters.get() {
                    if f.deny_imports
                        .iter()
                        .any(|d| crate::subject::matches(d.as_bytes(), subject))
                    {
                        return Ok(());
                    }
                }
                self.conn.stats.in_msgs.fetch_add(1, Ordering::Relaxed);
                self.conn
                    .stats
                    .in_bytes
                    .fetch_add(message.len() as u64, Ordering::Relaxed);
                let account = binding.account.clone();
                // The queue groups the sender named travel as a slice of the read buffer.
                self.route_inner(&account, subject, reply, header_len, message, 0, queues);
                Ok(())
            }
        }
    }

    fn leaf_sub(&mut self, subject: &[u8], queue: Option<&[u8]>) -> Result<(), Closed> {
        let Some(binding) = &self.binding else {
            return Ok(());
        };
        let (Ok(subj), Ok(q)) = (
            std::str::from_utf8(subject),
            queue.map(std::str::from_utf8).transpose(),
        ) else {
            return Ok(());
        };
        if subj == loop_subject(&self.shared) {
            let text = format!(
                "Loop detected for leafnode account={:?}. Delaying attempt to reconnect for 30s",
                binding.account.name
            );
            tracing::error!("{} - lid:{} - {text}", self.conn.addr, self.conn.cid);
            self.err(&text);
            self.conn.close("Loop Detected");
            return Err(Closed);
        }
        if !crate::subject::is_valid_subscription(subject) {
            return Ok(());
        }
        // Interest the leaf's user may not subscribe to is not served (nats-server
        // ignores it the same way, without an -ERR).
        if let Some(p) = &binding.permissions {
            if !p.can_subscribe(subj, q) && !is_link_internal(subject) {
                tracing::debug!(
                    "{} - lid:{} - leafnode interest in {subj:?} not permitted, ignored",
                    self.conn.addr,
                    self.conn.cid
                );
                return Ok(());
            }
        }
        if !crate::subject::within_token_bound(subject) {
            tracing::error!(
                "{} - lid:{} - interest in a subject of more than {} tokens ignored",
                self.conn.addr,
                self.conn.cid,
                crate::subject::MAX_TOKENS
            );
            return Ok(());
        }
        // `deny_exports` on a dialled link: interest in those subjects is not served;
        // a wildcard that overlaps them is, with those subjects filtered at delivery.
        let mut deny = None;
        if let Some(f) = self.conn.leaf_filters.get() {
            if f.deny_exports
                .iter()
                .any(|d| crate::subject::is_subset(subj, d))
            {
                return Ok(());
            }
            let overlap: Vec<String> = f
                .deny_exports
                .iter()
                .filter(|d| crate::subject::intersects(d, subj))
                .cloned()
                .collect();
            if !overlap.is_empty() {
                deny = Some(Arc::new(overlap));
            }
        }
        let sid = leaf_sid(subject, queue);
        let mut subs = self.conn.subs.lock();
        // A repeated LS+ for a queue only updates its weight: one member stands for the link.
        if subs.contains_key(&sid) {
            return Ok(());
        }
        // A link's interest counts against max_subscriptions as a client's does; the
        // link stays, as in nats-server.
        let max_subs = self.shared.options.max_subscriptions;
        if max_subs > 0 && subs.len() as i64 >= max_subs {
            drop(subs);
            tracing::error!(
                "{} - lid:{} - maximum subscriptions exceeded",
                self.conn.addr,
                self.conn.cid
            );
            self.err("maximum subscriptions exceeded");
            return Ok(());
        }
        let sub = Arc::new(Subscription {
            conn: self.conn.clone(),
            subject: subj.into(),
            queue: q.map(Into::into),
            sid: sid.clone(),
            max: Default::default(),
            delivered: Default::default(),
            deny,
        });
        subs.insert(sid, sub.clone());
        drop(subs);
        binding.account.sublist.insert(sub);
        // Interest learned from one leaf is passed to the other leafs of the account.
        binding.account.interest_changed(subj, q, 1, &self.conn);
        Ok(())
    }

    async fn leaf_connect(&mut self, json: &[u8]) -> Result<(), Closed> {
        let c: Connect = match serde_json::from_slice(json) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "{} - lid:{} - invalid leafnode CONNECT: {e}",
                    self.conn.addr,
                    self.conn.cid
                );
                self.conn.close("Protocol Violation");
                return Err(Closed);
            }
        };
        if self.connected {
            return Ok(());
        }
        let shared = self.shared.clone();
        let creds = c.clone();
        let names = self.identities.clone();
        let nonce = self.nonce.clone();
        let _permit = self.shared.auth_permits.clone().acquire_owned().await;
        let account =
            tokio::task::spawn_blocking(move || shared.authenticate_leaf(&creds, &nonce, &names))
                .await
                .ok()
                .flatten();
        let Some((account, permissions)) = account else {
            tracing::error!(
                "{} - lid:{} - leafnode authentication error",
                self.conn.addr,
                self.conn.cid
            );
            self.err("Authorization Violation");
            self.conn.close("Authorization Violation");
            return Err(Closed);
        };
        if let Some(min) = self
            .shared
            .options
            .leafnodes
            .as_ref()
            .and_then(|l| l.min_version.as_deref())
        {
            // A leaf older than leafnodes { min_version } (or that names no version) is
            // turned away after it logged in, in nats-server's words.
            let given = c
                .version
                .as_deref()
                .and_then(crate::config::leafnode::semver);
            if given.is_none_or(|v| Some(v) < crate::config::leafnode::semver(min)) {
                let text =
                    format!("connection rejected since minimum version required is \"{min}\"");
                tracing::error!(
                    "{} - lid:{} - {text} - Account:{}",
                    self.conn.addr,
                    self.conn.cid,
                    account.name
                );
                self.err(&text);
                self.conn.close("Minimum Version Required");
                return Err(Closed);
            }
        }
        self.conn.bind_account(account.clone());
        self.conn.headers.store(c.headers, Ordering::Relaxed);
        *self.conn.leaf_name.lock() = c.name.clone();
        {
            let mut meta = self.conn.meta.lock();
            meta.name = c.name.clone();
            meta.version = c.version.clone();
        }
        self.binding = Some(crate::auth::Binding {
            account: account.clone(),
            permissions,
            user: c.user.clone(),
        });
        self.connected = true;
        tracing::info!(
            "{} - lid:{} - Leafnode connection from {:?} bound to account {}",
            self.conn.addr,
            self.conn.cid,
            c.name.as_deref().unwrap_or("?"),
            account.name
        );
        let mut info = leaf_info(&self.shared, self.conn.cid, self.conn.addr);
        info.nonce = String::new();
        info.connect_info = true;
        info.remote_account = Some(account.name.clone());
        let mut v = serde_json::to_value(&info).unwrap_or_default();
        v["leafnode_urls"] = serde_json::json!(self.shared.leaf_urls());
        let mut line = b"INFO ".to_vec();
        line.extend_from_slice(v.to_string().as_bytes());
        line.extend_from_slice(b" \r\n");
        self.conn.send(&line);
        // The interest snapshot: every subscription in the account on other links,
        // then our loop-detection subject. Registering first means no update is missed.
        send_interest_snapshot(&self.shared, &self.conn, &account);
        Ok(())
    }
}

/// Register a leaf link with its account and tell it all current interest: every
/// subscription on other connections of the account — except, on a link this server
/// dialled, interest that itself came from a hub — then the loop-detection subject.
/// Registering first means no later change is missed.
pub fn send_interest_snapshot(
    shared: &Shared,
    link: &Arc<Conn>,
    account: &Arc<crate::account::Account>,
) {
    account.leafs.write().push(link.clone());
    // From the account's sublist: clients, other leafs, and interest learned over
    // routes (route connections are not in the client registry).
    let mut counts: HashMap<crate::conn::InterestKey, i32> = HashMap::new();
    for s in account.sublist.all() {
        if s.conn.cid == link.cid || (link.spoke() && s.conn.spoke()) {
            continue;
        }
        // Interest a route brought from a leaf of a peer is the peer's to relay up a
        // spoke link, not ours: a spoke link hears only this server's own interest.
        if link.spoke() && s.conn.route() {
            continue;
        }
        *counts
            .entry((s.subject.clone(), s.queue.clone()))
            .or_insert(0) += 1;
    }
    for ((subject, queue), n) in counts {
        link.leaf_interest(&subject, queue.as_deref(), n);
    }
    link.send(format!("LS+ {}\r\n", loop_subject(shared)).as_bytes());
}
