//! Routes: the full mesh between the servers of one cluster. Each server accepts
//! routes on its cluster port and dials the routes its config names (retrying
//! forever) and the peers its peers gossip (once). Interest crosses as
//! `RS+ <account> <subject> [<queue> <weight>]` / `RS-`, messages as `RMSG`/`HMSG` with
//! the account first. One hop: nothing that arrives over a route is sent to another.
//!
//! Interop with nats-server is the minimal form of facts doc §4.4: no route pooling
//! (our INFO has no `route_pool_size`, so the official server uses one connection and
//! names the account in every op), no compression, no leaf-origin extensions.

use crate::conn::client::{Client, Closed};
use crate::conn::{Conn, Subscription};
use crate::protocol::info::Connect;
use crate::protocol::leaf::LeafOp;
use crate::server::Shared;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The established routes, shared by every account (they announce interest on them).
pub type Routes = Arc<RwLock<Vec<Arc<Conn>>>>;

/// Delay between attempts on a configured route, as nats-server's default.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// The other end of a route, from its INFO.
#[derive(Clone, Debug)]
pub struct Peer {
    pub server_id: String,
    pub server_name: String,
    /// Where its cluster port is (advertised host, else the address it came from).
    pub host: String,
    pub port: u16,
    /// We dialled it.
    pub solicited: bool,
    /// Its URL is in our config (`cluster.routes`).
    pub configured: bool,
    pub connect_urls: Vec<String>,
    /// Its INFO as sent, forwarded to other peers so they find it (gossip).
    pub info: serde_json::Value,
}

/// Cluster state of one server.
pub struct Cluster {
    pub name: String,
    /// The name came from the config (an unnamed cluster takes any peer's name).
    named: bool,
    pub routes: Routes,
    /// Established routes by the peer's server_id.
    by_id: Mutex<HashMap<String, Arc<Conn>>>,
    /// URLs being dialled, so gossip does not start a second dialler.
    dialling: Mutex<HashSet<String>>,
    pub port: std::sync::atomic::AtomicU16,
    /// Gossiped route URLs to dial (a task outside the route readers dials them, so
    /// a reader's future does not contain the dialler that contains readers).
    discovered: tokio::sync::mpsc::UnboundedSender<String>,
    discovered_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<String>>>,
    /// `cluster { tls {} }`: routes start with the TLS handshake (before INFO), both
    /// ends present certificates.
    server_tls: std::sync::OnceLock<Arc<crate::tls::ServerTls>>,
    client_tls: std::sync::OnceLock<Arc<rustls::ClientConfig>>,
}

impl Cluster {
    /// `name` from the config, else `fallback` (the server id).
    pub fn new(name: Option<String>, fallback: String) -> Cluster {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Cluster {
            named: name.is_some(),
            name: name.unwrap_or(fallback),
            routes: Arc::new(RwLock::new(Vec::new())),
            by_id: Mutex::new(HashMap::new()),
            dialling: Mutex::new(HashSet::new()),
            port: std::sync::atomic::AtomicU16::new(0),
            discovered: tx,
            discovered_rx: Mutex::new(Some(rx)),
            server_tls: std::sync::OnceLock::new(),
            client_tls: std::sync::OnceLock::new(),
        }
    }

    /// A peer in a cluster of another name must not join ours.
    fn name_conflicts(&self, theirs: &str) -> bool {
        self.named && theirs != self.name
    }

    pub fn connected_to(&self, server_id: &str) -> bool {
        self.by_id.lock().contains_key(server_id)
    }
}

fn cluster(shared: &Shared) -> &Cluster {
    &shared.cluster
}

/// Bind the cluster port and start dialling configured routes.
pub async fn start(shared: Arc<Shared>) -> anyhow::Result<()> {
    let Some(c) = shared.options.cluster.as_ref() else {
        return Ok(());
    };
    if let Some(t) = &c.tls {
        // Every route peer presents a certificate the CA signed, verify or not, as
        // nats-server requires of cluster TLS.
        let mut accept = t.clone();
        accept.verify = true;
        let server = crate::tls::ServerTls::from_options(&accept)?;
        let _ = cluster(&shared).server_tls.set(Arc::new(server));
        let _ = cluster(&shared)
            .client_tls
            .set(crate::tls::client_config(Some(t))?);
    }
    if let Some(port) = c.port {
        let host = c
            .host
            .clone()
            .unwrap_or_else(|| shared.options.host.clone());
        let port = if port == -1 { 0 } else { port };
        let port =
            u16::try_from(port).map_err(|_| anyhow::anyhow!("invalid cluster port {port}"))?;
        let listener = crate::listen::bind(&host, port)
            .await
            .map_err(|e| anyhow::anyhow!("Error listening on router port: {port} - {e}"))?;
        let addr = listener.local_addr()?;
        cluster(&shared).port.store(addr.port(), Ordering::Relaxed);
        tracing::info!("Cluster name is {}", cluster(&shared).name);
        tracing::info!("Listening for route connections on {addr}");
        tokio::spawn(accept_loop(shared.clone(), listener));
    }
    for url in c.routes.clone() {
        tokio::spawn(solicit(shared.clone(), url, true));
    }
    if let Some(mut rx) = cluster(&shared).discovered_rx.lock().take() {
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Some(url) = rx.recv().await {
                tokio::spawn(solicit(shared.clone(), url, false));
            }
        });
    }
    Ok(())
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, addr)) => { tokio::spawn(serve(shared.clone(), stream, addr)); }
                Err(e) => {
                    tracing::error!("Error accepting route connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

fn new_conn(shared: &Shared, addr: SocketAddr) -> Arc<Conn> {
    let cid = shared.next_cid.fetch_add(1, Ordering::Relaxed) + 1;
    let conn = Arc::new(Conn::new(
        cid,
        addr,
        crate::conn::link_max_pending(shared.options.max_pending as usize),
        shared.stats.clone(),
    ));
    conn.is_route.store(true, Ordering::Relaxed);
    conn.echo.store(false, Ordering::Relaxed);
    conn.headers.store(true, Ordering::Relaxed);
    conn
}

/// Our INFO on a route.
fn route_info(shared: &Shared) -> serde_json::Value {
    let info = shared.info();
    let c = shared.options.cluster.as_ref();
    let host = c
        .and_then(|c| c.host.clone())
        .unwrap_or_else(|| shared.options.host.clone());
    let mut v = serde_json::json!({
        "server_id": shared.server_id,
        "server_name": info.server_name,
        "version": info.version,
        "proto": 3,
        "go": info.go,
        "host": host,
        "port": cluster(shared).port.load(Ordering::Relaxed),
        "headers": true,
        "auth_required": c.and_then(|c| c.authorization.as_ref()).is_some(),
        "max_payload": info.max_payload,
        "cluster": cluster(shared).name,
    });
    if let Some(t) = cluster(shared).server_tls.get() {
        v["tls_required"] = serde_json::json!(true);
        v["tls_verify"] = serde_json::json!(t.verify);
    }
    if !c.is_some_and(|c| c.no_advertise) {
        v["connect_urls"] = serde_json::json!(own_client_urls(shared));
    }
    let leaf = shared.leaf_urls();
    if !leaf.is_empty() {
        v["leafnode_urls"] = serde_json::json!(leaf);
    }
    v
}

fn info_line(v: &serde_json::Value) -> Vec<u8> {
    let mut b = b"INFO ".to_vec();
    b.extend_from_slice(v.to_string().as_bytes());
    b.extend_from_slice(b" \r\n");
    b
}

/// This server's client URL as other servers gossip it to clients.
fn own_client_urls(shared: &Shared) -> Vec<String> {
    if let Some(a) = &shared.options.client_advertise {
        return vec![a.clone()];
    }
    let port = shared.info().port;
    crate::listen::advertised_hosts(&shared.options.host)
        .into_iter()
        .map(|h| format!("{h}:{port}"))
        .collect()
}

/// Accepted route: INFO first, then the peer's CONNECT and INFO.
async fn serve(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let conn = new_conn(&shared, addr);
    tracing::debug!("{addr} - rid:{} - Route connection created", conn.cid);
    let Some(t) = cluster(&shared).server_tls.get().cloned() else {
        conn.send(&info_line(&route_info(&shared)));
        let (rd, wr) = stream.into_split();
        run(shared, conn, rd, wr, None).await;
        return;
    };
    // Routes speak TLS from the first byte, as nats-server's do.
    let acceptor = tokio_rustls::TlsAcceptor::from(t.config.clone());
    match tokio::time::timeout(t.timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => {
            if let Err(why) = t.check_pins(s.get_ref().1.peer_certificates()) {
                tracing::error!(
                    "{addr} - rid:{} - TLS route handshake error: {why}",
                    conn.cid
                );
                return;
            }
            conn.send(&info_line(&route_info(&shared)));
            let (rd, wr) = tokio::io::split(s);
            run(shared, conn, rd, wr, None).await;
        }
        Ok(Err(e)) => tracing::error!("{addr} - rid:{} - TLS route handshake error: {e}", conn.cid),
        Err(_) => tracing::error!("{addr} - rid:{} - TLS route handshake timeout", conn.cid),
    }
}

/// Dial `url` until a route stands, and again whenever it falls (configured routes);
/// gossiped routes are tried once.
pub async fn solicit(shared: Arc<Shared>, url: String, configured: bool) {
    if !cluster(&shared).dialling.lock().insert(url.clone()) {
        return;
    }
    let mut known_id: Option<String> = None;
    let mut attempts = 0u32;
    let mut stood = false;
    let retries = shared
        .options
        .cluster
        .as_ref()
        .and_then(|c| c.connect_retries)
        .unwrap_or(0)
        .max(0) as u32;
    loop {
        if shared.shutdown.is_cancelled() {
            break;
        }
        // A route to this peer already stands (maybe dialled by the peer): wait.
        if known_id
            .as_deref()
            .is_some_and(|id| cluster(&shared).connected_to(id))
        {
            tokio::select! {
                _ = tokio::time::sleep(RECONNECT_DELAY) => continue,
                _ = shared.shutdown.cancelled() => break,
            }
        }
        attempts += 1;
        match connect_once(&shared, &url, configured, &mut known_id).await {
            Ok(()) => (attempts, stood) = (0, true),
            Err(Stop::SelfRoute) => {
                tracing::debug!(
                    "Detected route to self, ignoring {}",
                    crate::log::redact_url(&url)
                );
                break;
            }
            Err(Stop::Retry(e)) => {
                let text = format!(
                    "Error trying to connect to route (attempt {attempts}): {}: {}",
                    crate::log::redact_url(&url),
                    crate::log::redact_in(&e.to_string(), &url)
                );
                // Only routes this server was told to dial are reported; a gossiped
                // one that fails is the peer's business.
                if configured && shared.options.dial_error_reported(attempts as u64, stood) {
                    tracing::error!("{text}");
                } else {
                    tracing::debug!("{text}");
                }
                if !configured && attempts > retries {
                    break;
                }
            }
        }
        if !configured && known_id.is_some() && attempts == 0 {
            // A gossiped route that stood and fell is not redialled (nats-server).
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT_DELAY) => {}
            _ = shared.shutdown.cancelled() => break,
        }
    }
    cluster(&shared).dialling.lock().remove(&url);
}

enum Stop {
    SelfRoute,
    Retry(String),
}

async fn connect_once(
    shared: &Arc<Shared>,
    url: &str,
    configured: bool,
    known_id: &mut Option<String>,
) -> Result<(), Stop> {
    let t = crate::leafnode::target_with_port(url, 6222)
        .ok_or_else(|| Stop::Retry(format!("invalid route URL {url:?}")))?;
    let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&t.host_port))
        .await
        .map_err(|_| Stop::Retry("dial timeout".into()))?
        .map_err(|e| Stop::Retry(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let addr = stream.peer_addr().map_err(|e| Stop::Retry(e.to_string()))?;
    let Some(config) = cluster(shared).client_tls.get().cloned() else {
        return handshake(shared, stream, addr, &t, configured, known_id).await;
    };
    let host = t
        .host_port
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(&t.host_port)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let name = rustls_pki_types::ServerName::try_from(host)
        .map_err(|e| Stop::Retry(format!("bad TLS server name: {e}")))?;
    let timeout = cluster(shared)
        .server_tls
        .get()
        .map_or(Duration::from_secs(2), |t| t.timeout);
    let connector = tokio_rustls::TlsConnector::from(config);
    let tls = match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(Stop::Retry(format!(
                "TLS route handshake error (this server rejected the peer, or the peer rejected this server): {e}"
            )))
        }
        Err(_) => return Err(Stop::Retry("TLS route handshake timeout".into())),
    };
    // pinned_certs hold on the routes this server dials as on those it accepts.
    if let Some(server_tls) = cluster(shared).server_tls.get() {
        if let Err(why) = server_tls.check_pins(tls.get_ref().1.peer_certificates()) {
            // A security refusal, not a routine retry: said at error level.
            tracing::error!("{addr} - rid:? - TLS route handshake error: {why}");
            return Err(Stop::Retry(format!("TLS route handshake error: {why}")));
        }
    }
    handshake(shared, tls, addr, &t, configured, known_id).await
}

/// The dialling side, on a plain or TLS stream: read the peer's INFO, send CONNECT,
/// our INFO and a PING, then serve the route.
async fn handshake<S>(
    shared: &Arc<Shared>,
    mut stream: S,
    addr: SocketAddr,
    t: &crate::leafnode::Target,
    configured: bool,
    known_id: &mut Option<String>,
) -> Result<(), Stop>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let line = tokio::time::timeout(
        Duration::from_secs(2),
        crate::leafnode::read_line(&mut stream),
    )
    .await
    .map_err(|_| Stop::Retry("no INFO from the route".into()))?
    .map_err(|e| Stop::Retry(e.to_string()))?;
    let info: serde_json::Value = line
        .strip_prefix("INFO ")
        .and_then(|j| serde_json::from_str(j.trim()).ok())
        .ok_or_else(|| Stop::Retry("the peer did not start with INFO".into()))?;
    let peer_id = info["server_id"].as_str().unwrap_or_default().to_string();
    *known_id = Some(peer_id.clone());
    if peer_id == shared.server_id {
        return Err(Stop::SelfRoute);
    }
    if cluster(shared).connected_to(&peer_id) {
        return Ok(());
    }
    let conn = new_conn(shared, addr);
    let mut connect = serde_json::json!({
        "echo": true,
        "verbose": false,
        "pedantic": false,
        "tls_required": cluster(shared).client_tls.get().is_some(),
        "headers": true,
        "name": shared.server_id,
        "cluster": cluster(shared).name,
    });
    if let Some(u) = &t.user {
        connect["user"] = serde_json::json!(u);
    }
    if let Some(p) = &t.pass {
        connect["pass"] = serde_json::json!(p);
    }
    let mut hello = format!("CONNECT {connect}\r\n").into_bytes();
    hello.extend_from_slice(&info_line(&route_info(shared)));
    hello.extend_from_slice(b"PING\r\n");
    conn.send(&hello);
    let peer = peer_from(&info, addr, true, configured);
    let (rd, wr) = tokio::io::split(stream);
    run(shared.clone(), conn, rd, wr, Some(peer)).await;
    Ok(())
}

fn peer_from(
    info: &serde_json::Value,
    addr: SocketAddr,
    solicited: bool,
    configured: bool,
) -> Peer {
    let host = match info["host"].as_str() {
        Some(h) if !h.is_empty() && h != "0.0.0.0" && h != "::" => h.to_string(),
        _ => addr.ip().to_string(),
    };
    Peer {
        server_id: info["server_id"].as_str().unwrap_or_default().to_string(),
        server_name: info["server_name"].as_str().unwrap_or_default().to_string(),
        host,
        port: info["port"].as_u64().unwrap_or(0) as u16,
        solicited,
        configured,
        connect_urls: info["connect_urls"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        info: info.clone(),
    }
}

/// Why a peer cannot be a route, or None.
fn refuse(shared: &Shared, peer: &Peer) -> Option<&'static str> {
    if peer.server_id == shared.server_id {
        return Some("Duplicate Route");
    }
    let theirs = peer.info["cluster"].as_str().unwrap_or_default();
    if !theirs.is_empty() && cluster(shared).name_conflicts(theirs) {
        return Some("Cluster Name Conflict");
    }
    None
}

/// Make `conn` the route to `peer`. A second route to the same server is resolved
/// the same way on both ends: the one dialled by the server with the lower id stays.
fn register(shared: &Shared, conn: &Arc<Conn>, peer: Peer) -> Result<(), &'static str> {
    let c = cluster(shared);
    let mut by_id = c.by_id.lock();
    if let Some(existing) = by_id.get(&peer.server_id).cloned() {
        if existing.cid != conn.cid {
            let existing_ours = existing
                .route_peer
                .lock()
                .as_ref()
                .is_some_and(|p| p.solicited);
            let lower_dials = shared.server_id < peer.server_id;
            let keep_new = peer.solicited != existing_ours && peer.solicited == lower_dials;
            if !keep_new {
                return Err("Duplicate Route");
            }
            existing.close("Duplicate Route");
            c.routes.write().retain(|r| r.cid != existing.cid);
        }
    }
    tracing::info!(
        "{} - rid:{} - Route connection to {} ({}) established",
        conn.addr,
        conn.cid,
        peer.server_name,
        peer.server_id
    );
    by_id.insert(peer.server_id.clone(), conn.clone());
    *conn.route_peer.lock() = Some(peer);
    c.routes.write().push(conn.clone());
    Ok(())
}

/// Forget a closed route.
pub fn unregister(shared: &Shared, conn: &Arc<Conn>) {
    let c = cluster(shared);
    c.routes.write().retain(|r| r.cid != conn.cid);
    let mut by_id = c.by_id.lock();
    let id = conn.route_peer.lock().as_ref().map(|p| p.server_id.clone());
    if let Some(id) = id {
        if by_id.get(&id).is_some_and(|r| r.cid == conn.cid) {
            by_id.remove(&id);
        }
    }
    drop(by_id);
    push_connect_urls(shared);
}

/// Tell a new route every interest this server holds that did not come over a route.
fn send_snapshot(shared: &Shared, conn: &Arc<Conn>) {
    let accounts: Vec<Arc<crate::account::Account>> =
        shared.accounts.read().values().cloned().collect();
    for account in accounts {
        let mut counts: HashMap<(Box<str>, Option<Box<str>>), i32> = HashMap::new();
        for s in account.sublist.all() {
            if s.conn.route() || s.conn.spoke() {
                continue;
            }
            *counts
                .entry((s.subject.clone(), s.queue.clone()))
                .or_insert(0) += 1;
        }
        for ((subject, queue), n) in counts {
            conn.route_interest(&account.name, &subject, queue.as_deref(), n);
        }
    }
}

/// Tell the other routes about a new peer, so each dials it (the mesh completes).
fn gossip(shared: &Shared, conn: &Arc<Conn>, peer: &Peer) {
    let mut info = peer.info.clone();
    info["ip"] = serde_json::json!(format!("nats-route://{}:{}/", peer.host, peer.port));
    let line = info_line(&info);
    for r in cluster(shared)
        .routes
        .read()
        .iter()
        .filter(|r| r.cid != conn.cid)
    {
        r.send(&line);
    }
}

/// The client URLs of this server and its peers, given to clients in INFO.
fn push_connect_urls(shared: &Shared) {
    let mut urls = own_client_urls(shared);
    for r in cluster(shared).routes.read().iter() {
        if let Some(p) = r.route_peer.lock().as_ref() {
            for u in &p.connect_urls {
                if !urls.contains(u) {
                    urls.push(u.clone());
                }
            }
        }
    }
    let changed = shared.set_connect_urls(if urls.len() > 1 { urls } else { Vec::new() });
    if !changed {
        return;
    }
    let info = shared.info();
    let line = match serde_json::to_string(&info) {
        Ok(j) => format!("INFO {j}\r\n"),
        Err(_) => return,
    };
    for c in shared.conns.lock().values() {
        if c.info_aware.load(Ordering::Relaxed) && !c.leaf() && !c.route() {
            c.send(line.as_bytes());
        }
    }
}

async fn run<R, W>(shared: Arc<Shared>, conn: Arc<Conn>, rd: R, wr: W, peer: Option<Peer>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (addr, cid) = (conn.addr, conn.cid);
    let writer = tokio::spawn(crate::conn::writer(conn.clone(), wr, shared.liveness));
    let mut client = Client::new(shared.clone(), conn.clone(), String::new(), Vec::new());
    client.from_route = true;
    let mut ok = true;
    if let Some(peer) = peer {
        // We dialled: the peer's INFO came first; our CONNECT is on its way.
        client.connected = true;
        ok = client.route_established(peer);
    }
    if ok {
        use futures_util::FutureExt;
        let timeout = shared
            .options
            .cluster
            .as_ref()
            .and_then(|c| c.authorization.as_ref())
            .and_then(|a| a.timeout)
            .unwrap_or(Duration::from_secs(2));
        let outcome = std::panic::AssertUnwindSafe(client.link_read_loop(rd, timeout))
            .catch_unwind()
            .await;
        if outcome.is_err() {
            tracing::error!("{addr} - rid:{cid} - internal error: route closed");
            conn.close("Internal Error");
        }
    }
    client.cleanup();
    let _ = writer.await;
    tracing::info!(
        "{addr} - rid:{cid} - Route connection closed: {}",
        conn.close_reason().unwrap_or("Client Closed")
    );
}

impl Client {
    /// The peer is known: check it, register the route, send our interest, gossip.
    fn route_established(&mut self, peer: Peer) -> bool {
        if let Some(why) = refuse(&self.shared, &peer) {
            tracing::error!(
                "{} - rid:{} - refusing route to {}: {why}",
                self.conn.addr,
                self.conn.cid,
                peer.server_id
            );
            self.conn.close(why);
            return false;
        }
        if let Err(why) = register(&self.shared, &self.conn, peer.clone()) {
            tracing::debug!("{} - rid:{} - {why}", self.conn.addr, self.conn.cid);
            self.conn.close(why);
            return false;
        }
        send_snapshot(&self.shared, &self.conn);
        gossip(&self.shared, &self.conn, &peer);
        push_connect_urls(&self.shared);
        true
    }

    pub(crate) async fn route_process(
        &mut self,
        op: LeafOp<'_>,
        account: Option<&[u8]>,
    ) -> Result<(), Closed> {
        let known = self.conn.route_peer.lock().is_some();
        if !self.connected && !matches!(op, LeafOp::Connect(_) | LeafOp::Ping | LeafOp::Pong) {
            self.err("Authorization Violation");
            self.conn.close("Authorization Violation");
            return Err(Closed);
        }
        match op {
            LeafOp::Connect(json) => self.route_connect(json).await,
            LeafOp::Info(json) => {
                let Ok(info) = serde_json::from_slice::<serde_json::Value>(json) else {
                    return Ok(());
                };
                let id = info["server_id"].as_str().unwrap_or_default().to_string();
                if !known {
                    // The accepted side learns who the peer is from its INFO.
                    let peer = peer_from(&info, self.conn.addr, false, false);
                    if !self.route_established(peer) {
                        return Err(Closed);
                    }
                    return Ok(());
                }
                let same = self
                    .conn
                    .route_peer
                    .lock()
                    .as_ref()
                    .is_some_and(|p| p.server_id == id);
                if same {
                    let urls: Vec<String> = info["connect_urls"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|u| u.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    if let Some(p) = self.conn.route_peer.lock().as_mut() {
                        p.connect_urls = urls;
                    }
                    push_connect_urls(&self.shared);
                } else if let Some(ip) = info["ip"].as_str() {
                    // Gossip: a server our peer knows. Dial it if we do not.
                    if id != self.shared.server_id && !cluster(&self.shared).connected_to(&id) {
                        let _ = cluster(&self.shared).discovered.send(ip.to_string());
                    }
                }
                Ok(())
            }
            LeafOp::Ping => {
                self.conn.ping_received();
                self.conn.send(b"PONG\r\n");
                Ok(())
            }
            LeafOp::Pong => {
                self.conn.pong_received();
                Ok(())
            }
            LeafOp::Ignored => Ok(()),
            LeafOp::Err(text) => {
                tracing::error!(
                    "{} - rid:{} - route sent -ERR {}",
                    self.conn.addr,
                    self.conn.cid,
                    String::from_utf8_lossy(text)
                );
                Ok(())
            }
            LeafOp::Sub { subject, queue, .. } => {
                self.route_sub(account.unwrap_or_default(), subject, queue);
                Ok(())
            }
            LeafOp::Unsub { subject, queue } => {
                let key = route_sid(account.unwrap_or_default(), subject, queue);
                if let Some((acc, sub)) = self.route_subs.remove(&key) {
                    self.conn.subs.lock().remove(&key);
                    if acc.sublist.remove(&sub) {
                        acc.interest_changed(&sub.subject, sub.queue.as_deref(), -1, &self.conn);
                    }
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
                let Some(acc) = self.route_account(account.unwrap_or_default()) else {
                    return Ok(());
                };
                self.conn.stats.in_msgs.fetch_add(1, Ordering::Relaxed);
                self.conn
                    .stats
                    .in_bytes
                    .fetch_add(message.len() as u64, Ordering::Relaxed);
                self.route_inner(&acc, subject, reply, header_len, message, 0, queues);
                Ok(())
            }
        }
    }

    /// The account a route op names: from this route's match caches when it has
    /// carried messages of that account before, so no lock is taken per message.
    fn route_account(&self, name: &[u8]) -> Option<Arc<crate::account::Account>> {
        if let Some(a) = self.cached_account(name) {
            return Some(a);
        }
        let name = std::str::from_utf8(name).ok()?;
        self.shared.accounts.read().get(name).cloned()
    }

    fn route_sub(&mut self, account: &[u8], subject: &[u8], queue: Option<&[u8]>) {
        let key = route_sid(account, subject, queue);
        if self.route_subs.contains_key(&key) {
            // A repeated RS+ for a queue only updates its weight.
            return;
        }
        let Some(acc) = self.route_account(account) else {
            return;
        };
        let (Ok(subj), Ok(q)) = (
            std::str::from_utf8(subject),
            queue.map(std::str::from_utf8).transpose(),
        ) else {
            return;
        };
        if !crate::subject::is_valid_subscription(subject) {
            return;
        }
        if !crate::subject::within_token_bound(subject) {
            tracing::error!(
                "{} - rid:{} - interest in a subject of more than {} tokens ignored",
                self.conn.addr,
                self.conn.cid,
                crate::subject::MAX_TOKENS
            );
            return;
        }
        let sub = Arc::new(Subscription {
            conn: self.conn.clone(),
            subject: subj.into(),
            queue: q.map(Into::into),
            sid: key.clone(),
            max: Default::default(),
            delivered: Default::default(),
            deny: None,
        });
        acc.sublist.insert(sub.clone());
        acc.interest_changed(subj, q, 1, &self.conn);
        // Also under the connection, for /routez's counts and lists.
        self.conn.subs.lock().insert(key.clone(), sub.clone());
        self.route_subs.insert(key, (acc, sub));
    }

    async fn route_connect(&mut self, json: &[u8]) -> Result<(), Closed> {
        let c: Connect = match serde_json::from_slice(json) {
            Ok(c) => c,
            Err(_) => {
                self.conn.close("Protocol Violation");
                return Err(Closed);
            }
        };
        if self.connected {
            return Ok(());
        }
        let auth = self
            .shared
            .options
            .cluster
            .as_ref()
            .and_then(|c| c.authorization.as_ref());
        if let Some(a) = auth {
            let user_ok = a.user.is_none() || a.user == c.user;
            // bcrypt behind the same bounded gate as client and leaf logins.
            let (want, given) = (a.password.clone(), c.pass.clone());
            let _permit = self.shared.auth_permits.clone().acquire_owned().await;
            let pass_ok = tokio::task::spawn_blocking(move || {
                crate::auth::password_matches(want.as_deref(), given.as_deref())
            })
            .await
            .unwrap_or(false);
            if !(user_ok && pass_ok) {
                tracing::error!(
                    "{} - rid:{} - route authentication error",
                    self.conn.addr,
                    self.conn.cid
                );
                self.err("Authorization Violation");
                self.conn.close("Authorization Violation");
                return Err(Closed);
            }
        }
        let theirs = serde_json::from_slice::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v["cluster"].as_str().map(str::to_string))
            .unwrap_or_default();
        let ours = &cluster(&self.shared).name;
        if cluster(&self.shared).name_conflicts(&theirs) {
            let text =
                format!("Rejecting connection, cluster name {theirs:?} does not match {ours:?}");
            tracing::error!("{} - rid:{} - {text}", self.conn.addr, self.conn.cid);
            self.err(&text);
            self.conn.close("Cluster Name Conflict");
            return Err(Closed);
        }
        self.connected = true;
        Ok(())
    }
}

/// How a route's interest is keyed: `<account> <subject>[ <queue>]`.
fn route_sid(account: &[u8], subject: &[u8], queue: Option<&[u8]>) -> Box<[u8]> {
    let mut k = Vec::with_capacity(account.len() + subject.len() + 16);
    k.extend_from_slice(account);
    k.push(b' ');
    k.extend_from_slice(subject);
    if let Some(q) = queue {
        k.push(b' ');
        k.extend_from_slice(q);
    }
    k.into()
}

/// `/routez` (and `$SYS.REQ.SERVER.PING.ROUTEZ`): one entry per route connection.
pub fn routez(shared: &Shared, subs: bool) -> serde_json::Value {
    use crate::monitor::{go_duration, rfc3339, uptime};
    let now = std::time::SystemTime::now();
    let mut routes: Vec<Arc<Conn>> = cluster(shared).routes.read().clone();
    routes.sort_by_key(|c| c.cid);
    let list: Vec<serde_json::Value> = routes
        .iter()
        .map(|c| {
            let peer = c.route_peer.lock().clone();
            let last = std::time::SystemTime::UNIX_EPOCH
                + Duration::from_nanos(c.last_activity.load(Ordering::Relaxed));
            let mut v = serde_json::json!({
                "rid": c.cid,
                "remote_id": peer.as_ref().map(|p| p.server_id.clone()).unwrap_or_default(),
                "remote_name": peer.as_ref().map(|p| p.server_name.clone()).unwrap_or_default(),
                "did_solicit": peer.as_ref().is_some_and(|p| p.solicited),
                "is_configured": peer.as_ref().is_some_and(|p| p.configured),
                "ip": c.addr.ip().to_string(),
                "port": c.addr.port(),
                "start": rfc3339(c.started),
                "last_activity": rfc3339(last),
                "rtt": go_duration(Duration::from_nanos(c.rtt_nanos.load(Ordering::Relaxed))),
                "uptime": uptime(c.started),
                "idle": go_duration(Duration::from_secs(now.duration_since(last).unwrap_or_default().as_secs())),
                "pending_size": c.pending_bytes(),
                "in_msgs": c.stats.in_msgs.load(Ordering::Relaxed),
                "out_msgs": c.stats.out_msgs.load(Ordering::Relaxed),
                "in_bytes": c.stats.in_bytes.load(Ordering::Relaxed),
                "out_bytes": c.stats.out_bytes.load(Ordering::Relaxed),
                "subscriptions": c.subs.lock().len(),
                "compression": "off",
            });
            if subs {
                let list: Vec<String> = c.subs.lock().values().map(|s| s.subject.to_string()).collect();
                v["subscriptions_list"] = serde_json::json!(list);
            }
            v
        })
        .collect();
    serde_json::json!({
        "server_id": shared.server_id,
        "server_name": shared.info().server_name,
        "now": rfc3339(now),
        "num_routes": list.len(),
        "routes": list,
    })
}

/// Route connections, and the distinct servers they reach (`/varz` `routes`, `remotes`).
pub fn counts(shared: &Shared) -> (usize, usize) {
    let n = cluster(shared).routes.read().len();
    (n, cluster(shared).by_id.lock().len())
}

/// Message counters of the live routes.
pub fn route_conns(shared: &Shared) -> Vec<Arc<Conn>> {
    cluster(shared).routes.read().clone()
}

/// `/varz` `cluster`: {} without a cluster, as nats-server.
pub fn varz_cluster(shared: &Shared) -> serde_json::Value {
    let Some(c) = shared.options.cluster.as_ref() else {
        return serde_json::json!({});
    };
    let mut v = serde_json::json!({
        "name": cluster(shared).name,
        "addr": c.host.clone().unwrap_or_else(|| shared.options.host.clone()),
        "cluster_port": cluster(shared).port.load(Ordering::Relaxed),
        "auth_timeout": c.authorization.as_ref().and_then(|a| a.timeout).unwrap_or(Duration::from_secs(2)).as_secs_f64(),
        "tls_timeout": cluster(shared).server_tls.get().map_or(2.0, |t| t.timeout.as_secs_f64()),
        "pool_size": -1,
    });
    if !c.routes.is_empty() {
        v["urls"] = serde_json::json!(c
            .routes
            .iter()
            .filter_map(|u| crate::leafnode::target_with_port(u, 6222).map(|t| t.host_port))
            .collect::<Vec<_>>());
    }
    if let Some(t) = cluster(shared).server_tls.get() {
        v["tls_required"] = serde_json::json!(true);
        v["tls_verify"] = serde_json::json!(t.verify);
    }
    v
}
