//! Routes: the full mesh between the servers of one cluster. Each server accepts
//! routes on its cluster port and dials the routes its config names (retrying
//! forever) and the peers its peers gossip (once). Interest crosses as
//! `RS+ <account> <subject> [<queue> <weight>]` / `RS-`, messages as `RMSG`/`HMSG` with
//! the account first. One hop: nothing that arrives over a route is sent to another.
//!
//! Interop with nats-server is the minimal form of facts doc §4.4: no route pooling
//! (our INFO has no `route_pool_size`, so the official server uses one connection and
//! names the account in every op), no compression, no leaf-origin extensions.

use crate::conn::{Conn, Kind, Peer};
use crate::session::Start;
use crate::world::routes::{info_line, own_client_urls};
use crate::world::World;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Delay between attempts on a configured route, as nats-server's default.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Bind the cluster port and start dialling configured routes.
pub async fn start(world: Arc<World>) -> anyhow::Result<()> {
    let Some(c) = world.options.cluster.as_ref() else {
        return Ok(());
    };
    if let Some(t) = &c.tls {
        // Every route peer presents a certificate the CA signed, verify or not, as
        // nats-server requires of cluster TLS.
        let mut accept = t.clone();
        accept.verify = true;
        let server = crate::tls::ServerTls::from_options(&accept)?;
        let _ = world.cluster.server_tls.set(Arc::new(server));
        let _ = world
            .cluster
            .client_tls
            .set(crate::tls::client_config(Some(t))?);
    }
    if let Some(port) = c.port {
        let host = c.host.clone().unwrap_or_else(|| world.options.host.clone());
        let port = if port == -1 { 0 } else { port };
        let port =
            u16::try_from(port).map_err(|_| anyhow::anyhow!("invalid cluster port {port}"))?;
        let listener = crate::listen::bind(&host, port)
            .await
            .map_err(|e| anyhow::anyhow!("Error listening on router port: {port} - {e}"))?;
        let addr = listener.local_addr()?;
        world.cluster.port.store(addr.port(), Ordering::Relaxed);
        tracing::info!("Cluster name is {}", world.cluster.name);
        tracing::info!("Listening for route connections on {addr}");
        tokio::spawn(accept_loop(world.clone(), listener));
    }
    for url in c.routes.clone() {
        tokio::spawn(solicit(world.clone(), url, true));
    }
    if let Some(mut rx) = world.cluster.discovered_rx.lock().take() {
        let world = world.clone();
        tokio::spawn(async move {
            while let Some(url) = rx.recv().await {
                tokio::spawn(solicit(world.clone(), url, false));
            }
        });
    }
    Ok(())
}

async fn accept_loop(world: Arc<World>, listener: TcpListener) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, addr)) => { tokio::spawn(serve(world.clone(), stream, addr)); }
                Err(e) => {
                    tracing::error!("Error accepting route connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = world.shutdown.cancelled() => return,
        }
    }
}

fn new_conn(world: &World, addr: SocketAddr) -> Arc<Conn> {
    world.new_conn(addr, Kind::route())
}

/// Our INFO on a route.
fn route_info(world: &World) -> serde_json::Value {
    let info = world.info();
    let c = world.options.cluster.as_ref();
    let host = c
        .and_then(|c| c.host.clone())
        .unwrap_or_else(|| world.options.host.clone());
    let mut v = serde_json::json!({
        "server_id": world.server_id,
        "server_name": info.server_name,
        "version": info.version,
        "proto": 3,
        "go": info.go,
        "host": host,
        "port": world.cluster.port.load(Ordering::Relaxed),
        "headers": true,
        "auth_required": c.and_then(|c| c.authorization.as_ref()).is_some(),
        "max_payload": info.max_payload,
        "cluster": world.cluster.name,
    });
    if let Some(t) = world.cluster.server_tls.get() {
        v["tls_required"] = serde_json::json!(true);
        v["tls_verify"] = serde_json::json!(t.verify);
    }
    if !c.is_some_and(|c| c.no_advertise) {
        v["connect_urls"] = serde_json::json!(own_client_urls(world));
    }
    let leaf = world.leaf_urls();
    if !leaf.is_empty() {
        v["leafnode_urls"] = serde_json::json!(leaf);
    }
    v
}

/// Accepted route: INFO first, then the peer's CONNECT and INFO.
async fn serve(world: Arc<World>, stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let conn = new_conn(&world, addr);
    tracing::debug!("{addr} - rid:{} - Route connection created", conn.cid);
    let Some(t) = world.cluster.server_tls.get().cloned() else {
        conn.send(&info_line(&route_info(&world)));
        let (rd, wr) = stream.into_split();
        run(world, conn, rd, wr, None).await;
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
            conn.send(&info_line(&route_info(&world)));
            let (rd, wr) = tokio::io::split(s);
            run(world, conn, rd, wr, None).await;
        }
        Ok(Err(e)) => tracing::error!("{addr} - rid:{} - TLS route handshake error: {e}", conn.cid),
        Err(_) => tracing::error!("{addr} - rid:{} - TLS route handshake timeout", conn.cid),
    }
}

/// Dial `url` until a route stands, and again whenever it falls (configured routes);
/// gossiped routes are tried once.
pub async fn solicit(world: Arc<World>, url: String, configured: bool) {
    if !world.cluster.dialling.lock().insert(url.clone()) {
        return;
    }
    let mut known_id: Option<String> = None;
    let mut attempts = 0u32;
    let mut stood = false;
    let retries = world
        .options
        .cluster
        .as_ref()
        .and_then(|c| c.connect_retries)
        .unwrap_or(0)
        .max(0) as u32;
    loop {
        if world.shutdown.is_cancelled() {
            break;
        }
        // A route to this peer already stands (maybe dialled by the peer): wait.
        if known_id
            .as_deref()
            .is_some_and(|id| world.cluster.connected_to(id))
        {
            tokio::select! {
                _ = tokio::time::sleep(RECONNECT_DELAY) => continue,
                _ = world.shutdown.cancelled() => break,
            }
        }
        attempts += 1;
        match connect_once(&world, &url, configured, &mut known_id).await {
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
                if configured && world.options.dial_error_reported(attempts as u64, stood) {
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
            _ = world.shutdown.cancelled() => break,
        }
    }
    world.cluster.dialling.lock().remove(&url);
}

enum Stop {
    SelfRoute,
    Retry(String),
}

async fn connect_once(
    world: &Arc<World>,
    url: &str,
    configured: bool,
    known_id: &mut Option<String>,
) -> Result<(), Stop> {
    let t = crate::dial::target_with_port(url, 6222)
        .ok_or_else(|| Stop::Retry(format!("invalid route URL {url:?}")))?;
    let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&t.host_port))
        .await
        .map_err(|_| Stop::Retry("dial timeout".into()))?
        .map_err(|e| Stop::Retry(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let addr = stream.peer_addr().map_err(|e| Stop::Retry(e.to_string()))?;
    let Some(config) = world.cluster.client_tls.get().cloned() else {
        return handshake(world, stream, addr, &t, configured, known_id).await;
    };
    let name = crate::dial::server_name(&t.host_port).map_err(|e| Stop::Retry(e.to_string()))?;
    let timeout = world
        .cluster
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
    if let Some(server_tls) = world.cluster.server_tls.get() {
        if let Err(why) = server_tls.check_pins(tls.get_ref().1.peer_certificates()) {
            // A security refusal, not a routine retry: said at error level.
            tracing::error!("{addr} - rid:? - TLS route handshake error: {why}");
            return Err(Stop::Retry(format!("TLS route handshake error: {why}")));
        }
    }
    handshake(world, tls, addr, &t, configured, known_id).await
}

/// The dialling side, on a plain or TLS stream: read the peer's INFO, send CONNECT,
/// our INFO and a PING, then serve the route.
async fn handshake<S>(
    world: &Arc<World>,
    mut stream: S,
    addr: SocketAddr,
    t: &crate::dial::Target,
    configured: bool,
    known_id: &mut Option<String>,
) -> Result<(), Stop>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let line = tokio::time::timeout(Duration::from_secs(2), crate::dial::read_line(&mut stream))
        .await
        .map_err(|_| Stop::Retry("no INFO from the route".into()))?
        .map_err(|e| Stop::Retry(e.to_string()))?;
    let info: serde_json::Value = line
        .strip_prefix("INFO ")
        .and_then(|j| serde_json::from_str(j.trim()).ok())
        .ok_or_else(|| Stop::Retry("the peer did not start with INFO".into()))?;
    let peer_id = info["server_id"].as_str().unwrap_or_default().to_string();
    *known_id = Some(peer_id.clone());
    if peer_id == world.server_id {
        return Err(Stop::SelfRoute);
    }
    if world.cluster.connected_to(&peer_id) {
        return Ok(());
    }
    let conn = new_conn(world, addr);
    let mut connect = serde_json::json!({
        "echo": true,
        "verbose": false,
        "pedantic": false,
        "tls_required": world.cluster.client_tls.get().is_some(),
        "headers": true,
        "name": world.server_id,
        "cluster": world.cluster.name,
    });
    if let Some(u) = &t.user {
        connect["user"] = serde_json::json!(u);
    }
    if let Some(p) = &t.pass {
        connect["pass"] = serde_json::json!(p);
    }
    let mut hello = format!("CONNECT {connect}\r\n").into_bytes();
    hello.extend_from_slice(&info_line(&route_info(world)));
    hello.extend_from_slice(b"PING\r\n");
    conn.send(&hello);
    let peer = Peer::from_info(&info, addr, true, configured);
    let (rd, wr) = tokio::io::split(stream);
    run(world.clone(), conn, rd, wr, Some(peer)).await;
    Ok(())
}

/// Serve a route; `peer` when this server dialled it (the peer's INFO came first).
async fn run<R, W>(world: Arc<World>, conn: Arc<Conn>, rd: R, wr: W, peer: Option<Peer>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (addr, cid) = (conn.addr, conn.cid);
    let start = Box::new(Start {
        connected: peer.is_some(),
        peer,
        ..Start::default()
    });
    crate::session::run::<crate::session::RouteOps, _, _>(world, conn.clone(), rd, wr, start).await;
    tracing::info!(
        "{addr} - rid:{cid} - Route connection closed: {}",
        conn.close_reason().unwrap_or("Client Closed")
    );
}
