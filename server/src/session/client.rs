//! Client connections: the accept side (INFO, the TLS upgrade in the order the config
//! asks for), CONNECT and auth, PUB/HPUB/SUB/UNSUB, verbose/pedantic/echo/no_responders,
//! permissions, and the re-check after a reload.

use super::{remove_sub, Closed, Session, Start};
use crate::auth::Binding;
use crate::conn::{Conn, Kind, Subscription};
use crate::protocol::client::Op;
use crate::protocol::info::Connect;
use crate::subject;
use crate::world::World;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpStream;

pub async fn serve(world: Arc<World>, stream: TcpStream, addr: SocketAddr) {
    world
        .stats
        .total_connections
        .fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let conn = world.new_conn(addr, Kind::Client);
    let cid = conn.cid;
    let mut info = world.info();
    info.client_id = cid;
    info.client_ip = addr.ip().to_string();
    if world.auth().uses_nonce() {
        info.nonce = crate::auth::Auth::new_nonce();
    }
    if !world.admit(&conn) {
        tracing::error!("{addr} - cid:{cid} - maximum connections exceeded");
        let (_, wr) = stream.into_split();
        let writer = tokio::spawn(crate::conn::writer(conn.clone(), wr, world.liveness));
        conn.send(&info.to_line());
        conn.send(b"-ERR 'maximum connections exceeded'\r\n");
        conn.close("Maximum Connections Exceeded");
        let _ = writer.await;
        return;
    }
    tracing::debug!("{addr} - cid:{cid} - Client connection created");
    match world.tls() {
        None => {
            let (rd, wr) = stream.into_split();
            conn.send(&info.to_line());
            run(
                world.clone(),
                conn.clone(),
                rd,
                wr,
                info.nonce.clone(),
                Vec::new(),
            )
            .await;
        }
        Some(tls) => match tls_upgrade(&world, &tls, stream, &info, &conn).await {
            Some(Upgraded::Tls(s, info_sent, identities)) => {
                let (rd, wr) = tokio::io::split(*s);
                if !info_sent {
                    conn.send(&info.to_line());
                }
                run(
                    world.clone(),
                    conn.clone(),
                    rd,
                    wr,
                    info.nonce.clone(),
                    identities,
                )
                .await;
            }
            Some(Upgraded::Plain(stream)) => {
                let (rd, wr) = stream.into_split();
                run(
                    world.clone(),
                    conn.clone(),
                    rd,
                    wr,
                    info.nonce.clone(),
                    Vec::new(),
                )
                .await;
            }
            None => world.forget(cid),
        },
    }
    tracing::debug!(
        "{addr} - cid:{cid} - Client connection closed: {}",
        conn.close_reason().unwrap_or("Client Closed")
    );
}

/// The session of a client, once its transport is settled. Not an `async fn` of its
/// own: the session's future is the whole task, with nothing of this call kept in it.
fn run<R, W>(
    world: Arc<World>,
    conn: Arc<Conn>,
    rd: R,
    wr: W,
    nonce: String,
    identities: Vec<String>,
) -> impl std::future::Future<Output = ()> + Send
where
    R: tokio::io::AsyncRead + Unpin + Send,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let start = Box::new(Start {
        nonce,
        identities,
        ..Start::default()
    });
    super::run::<super::ClientOps, _, _>(world, conn, rd, wr, start)
}

enum Upgraded {
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
    world: &World,
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
            Ok(Ok(1)) if world.options.allow_non_tls => return Some(Upgraded::Plain(stream)),
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

impl Session {
    fn ok(&self) {
        if self.connect.verbose {
            self.conn.send(b"+OK\r\n");
        }
    }

    /// After a reload: authenticate again with the CONNECT this client sent. A user
    /// that is gone (or moved to another account) is closed; new permissions apply,
    /// and subscriptions they no longer allow are removed with the usual -ERR.
    /// Check credentials against the current auth. bcrypt is slow on purpose: the
    /// check runs off the threads that move messages, a bounded number at once.
    async fn check_credentials(&self, creds: Connect) -> Option<Binding> {
        let _permit = self.world.auth_permits.clone().acquire_owned().await;
        let world = self.world.clone();
        let nonce = self.nonce.clone();
        let ids = self.identities.clone();
        tokio::task::spawn_blocking(move || {
            let auth = world.auth();
            auth.authenticate(&creds, &nonce, &ids)
                .filter(|b| auth.allows_connection_type(b.user.as_deref(), "STANDARD"))
        })
        .await
        .ok()
        .flatten()
    }

    pub(super) async fn recheck_binding(&mut self) -> Result<(), Closed> {
        self.auth_generation = self.world.auth_generation.load(Ordering::Acquire);
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
                    remove_sub(&fresh.account, &sub);
                }
            }
        }
        self.conn
            .set_allow_responses(fresh.permissions.as_ref().and_then(|p| p.responses));
        self.caches.clear();
        self.binding = Some(fresh);
        Ok(())
    }

    pub(super) async fn process(&mut self, op: Op<'_>) -> Result<(), Closed> {
        if !self.connected && !matches!(op, Op::Connect(_)) {
            // With auth, anything before CONNECT — a PING too — is an authorization
            // violation, as in nats-server. Without, a client may skip CONNECT: PING
            // and PONG are answered, and anything else binds it anonymously.
            let auth = self.world.auth();
            let anonymous = auth.anonymous().filter(|_| !auth.required);
            drop(auth);
            match anonymous {
                None => return self.fatal("Authorization Violation", "Authorization Violation"),
                Some(_) if matches!(op, Op::Ping | Op::Pong) => {}
                Some(b) => {
                    self.conn.bind_account(&b.account.name);
                    self.binding = Some(b);
                    self.connected = true;
                    self.auth_generation = self.world.auth_generation.load(Ordering::Acquire);
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
                if !self.connect.headers || self.world.options.no_header_support {
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
        let mut info = self.world.info();
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
            let generation = self.world.auth_generation.load(Ordering::Acquire);
            let binding = self.check_credentials(c.clone()).await;
            match binding {
                Some(b) => {
                    self.conn.bind_account(&b.account.name);
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
        *self.conn.meta.lock() = crate::conn::ClientMeta {
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
        let max_tokens = self.world.options.max_sub_tokens;
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
        let max_subs = self.world.options.max_subscriptions;
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
            let sub = Subscription::new(&self.conn, subj_str, queue_str, sid.into(), deny);
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
        if let (Some(sub), Some(b)) = (sub, &self.binding) {
            match max {
                Some(m) if m > 0 && sub.delivered.load(Ordering::Acquire) < m => {
                    sub.max.store(m, Ordering::Release)
                }
                _ => remove_sub(&b.account, &sub),
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
        self.conn.count_in(message.len());
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
        let answered = self.publish(&account, subj, reply, header_len, message, 0);
        if !answered {
            if let Some(r) = reply {
                if self.connect.no_responders && self.connect.headers {
                    self.no_responders(subj, r);
                }
            }
        }
        Ok(())
    }
}
