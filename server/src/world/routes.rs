//! The route table: established routes by peer, the URLs being dialled, gossiped URLs
//! waiting for the dialler, and the cluster's TLS. The route layer dials and accepts;
//! sessions register what they learn here.

use super::World;
use crate::conn::{Conn, Peer, Routes};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Cluster state of one server.
pub struct RouteTable {
    pub name: String,
    /// The name came from the config (an unnamed cluster takes any peer's name).
    pub named: bool,
    pub routes: Routes,
    /// Established routes by the peer's server_id.
    pub by_id: Mutex<HashMap<String, Arc<Conn>>>,
    /// URLs being dialled, so gossip does not start a second dialler.
    pub dialling: Mutex<HashSet<String>>,
    pub port: std::sync::atomic::AtomicU16,
    /// Gossiped route URLs to dial (a task outside the route readers dials them, so
    /// a reader's future does not contain the dialler that contains readers).
    pub discovered: tokio::sync::mpsc::UnboundedSender<String>,
    pub discovered_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<String>>>,
    /// `cluster { tls {} }`: routes start with the TLS handshake (before INFO), both
    /// ends present certificates.
    pub server_tls: std::sync::OnceLock<Arc<crate::tls::ServerTls>>,
    pub client_tls: std::sync::OnceLock<Arc<rustls::ClientConfig>>,
}

impl RouteTable {
    /// `name` from the config, else `fallback` (the server id).
    pub fn new(name: Option<String>, fallback: String) -> RouteTable {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        RouteTable {
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
    pub fn name_conflicts(&self, theirs: &str) -> bool {
        self.named && theirs != self.name
    }

    pub fn connected_to(&self, server_id: &str) -> bool {
        self.by_id.lock().contains_key(server_id)
    }
}

/// Make `conn` the route to `peer`. A second route to the same server is resolved
/// the same way on both ends: the one dialled by the server with the lower id stays.
pub fn register(world: &World, conn: &Arc<Conn>, peer: Peer) -> Result<(), &'static str> {
    let c = &world.cluster;
    let mut by_id = c.by_id.lock();
    if let Some(existing) = by_id.get(&peer.server_id).cloned() {
        if existing.cid != conn.cid {
            let existing_ours = existing.route_peer().is_some_and(|p| p.solicited);
            let lower_dials = world.server_id < peer.server_id;
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
    conn.set_route_peer(peer);
    c.routes.write().push(conn.clone());
    Ok(())
}

/// Forget a closed route.
pub fn unregister(world: &World, conn: &Arc<Conn>) {
    let c = &world.cluster;
    c.routes.write().retain(|r| r.cid != conn.cid);
    let mut by_id = c.by_id.lock();
    let id = conn.route_peer().map(|p| p.server_id);
    if let Some(id) = id {
        if by_id.get(&id).is_some_and(|r| r.cid == conn.cid) {
            by_id.remove(&id);
        }
    }
    drop(by_id);
    push_connect_urls(world);
}

/// Tell a new route every interest this server holds that did not come over a route.
pub fn send_snapshot(world: &World, conn: &Arc<Conn>) {
    let accounts: Vec<Arc<crate::account::Account>> =
        world.accounts.read().values().cloned().collect();
    for account in accounts {
        let mut counts: HashMap<(Box<str>, Option<Box<str>>), i32> = HashMap::new();
        for s in account.sublist.all() {
            if s.conn.is_route() || s.conn.is_spoke() {
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
pub fn gossip(world: &World, conn: &Arc<Conn>, peer: &Peer) {
    let mut info = peer.info.clone();
    info["ip"] = serde_json::json!(format!("nats-route://{}:{}/", peer.host, peer.port));
    let line = info_line(&info);
    for r in world
        .cluster
        .routes
        .read()
        .iter()
        .filter(|r| r.cid != conn.cid)
    {
        r.send(&line);
    }
}

/// The client URLs of this server and its peers, given to clients in INFO.
pub fn push_connect_urls(world: &World) {
    let mut urls = own_client_urls(world);
    for r in world.cluster.routes.read().iter() {
        if let Some(p) = r.route_peer() {
            for u in &p.connect_urls {
                if !urls.contains(u) {
                    urls.push(u.clone());
                }
            }
        }
    }
    let changed = world.set_connect_urls(if urls.len() > 1 { urls } else { Vec::new() });
    if !changed {
        return;
    }
    let info = world.info();
    let line = match serde_json::to_string(&info) {
        Ok(j) => format!("INFO {j}\r\n"),
        Err(_) => return,
    };
    for c in world.conn_list() {
        if c.info_aware.load(Ordering::Relaxed) && !c.is_leaf() && !c.is_route() {
            c.send(line.as_bytes());
        }
    }
}

/// This server's client URL as other servers gossip it to clients.
pub fn own_client_urls(world: &World) -> Vec<String> {
    if let Some(a) = &world.options.client_advertise {
        return vec![a.clone()];
    }
    let port = world.info().port;
    crate::listen::advertised_hosts(&world.options.host)
        .into_iter()
        .map(|h| format!("{h}:{port}"))
        .collect()
}

/// An INFO line carrying `v`.
pub fn info_line(v: &serde_json::Value) -> Vec<u8> {
    let mut b = b"INFO ".to_vec();
    b.extend_from_slice(v.to_string().as_bytes());
    b.extend_from_slice(b" \r\n");
    b
}

/// Route connections, and the distinct servers they reach (`/varz` `routes`, `remotes`).
pub fn counts(world: &World) -> (usize, usize) {
    let n = world.cluster.routes.read().len();
    (n, world.cluster.by_id.lock().len())
}

/// The live routes.
pub fn route_conns(world: &World) -> Vec<Arc<Conn>> {
    world.cluster.routes.read().clone()
}
