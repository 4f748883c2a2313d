//! What each kind of connection keeps: a client nothing more; a leaf link its side
//! (hub or spoke), its filters and the interest it was told about; a route its peer
//! and the interest it was told about. One `Conn` type serves all three, as
//! nats-server's client struct does with its per-kind parts.

use super::Conn;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub enum Kind {
    Client,
    Leaf(LeafLink),
    Route(RouteLink),
}

impl Kind {
    /// An accepted leaf link (this server is the hub).
    pub fn accepted_leaf() -> Kind {
        Kind::Leaf(LeafLink::new(false, LeafFilters::default()))
    }

    /// A leaf link this server dialled (a `remotes` entry), with its filters.
    pub fn spoke(filters: LeafFilters) -> Kind {
        Kind::Leaf(LeafLink::new(true, filters))
    }

    pub fn route() -> Kind {
        Kind::Route(RouteLink {
            sent: Mutex::new(HashMap::new()),
            peer: Mutex::new(None),
        })
    }
}

/// A leafnode link: messages go out as LMSG, interest as LS+/LS-.
pub struct LeafLink {
    /// This server dialled the link: it is the spoke.
    pub spoke: bool,
    /// A dialled link's `deny_imports` / `deny_exports` (empty on accepted links).
    pub filters: LeafFilters,
    /// The remote server's name (CONNECT `name`, or the hub's INFO name).
    pub name: Mutex<Option<String>>,
    /// The hub said this link closes a loop: wait before dialling again.
    pub loop_detected: AtomicBool,
    /// How many local subscriptions back each (subject, queue) this link has been
    /// told about, so LS+ goes out on the first and LS- on the last.
    sent: Mutex<HashMap<InterestKey, u32>>,
}

impl LeafLink {
    fn new(spoke: bool, filters: LeafFilters) -> LeafLink {
        LeafLink {
            spoke,
            filters,
            name: Mutex::new(None),
            loop_detected: AtomicBool::new(false),
            sent: Mutex::new(HashMap::new()),
        }
    }
}

/// A route to another server of the cluster: RS+/RS- and RMSG, every op naming its
/// account.
pub struct RouteLink {
    /// What each (account, subject, queue) this route has been told about counts, so
    /// RS+ goes out on the first and RS- on the last.
    sent: Mutex<HashMap<RouteInterestKey, u32>>,
    /// The peer, once its INFO arrived.
    pub peer: Mutex<Option<Peer>>,
}

/// A dialled leaf link's subject filters.
#[derive(Debug, Default)]
pub struct LeafFilters {
    /// Subjects this server will not receive from the hub.
    pub deny_imports: Vec<String>,
    /// Subjects this server will not send to the hub.
    pub deny_exports: Vec<String>,
}

/// The established routes, shared by every account (they announce interest on them).
pub type Routes = Arc<RwLock<Vec<Arc<Conn>>>>;

/// An account, a subject and, for queue subscriptions, the queue name.
pub type RouteInterestKey = (Box<str>, Box<str>, Option<Box<str>>);

/// A subject and, for queue subscriptions, the queue name.
pub type InterestKey = (Box<str>, Option<Box<str>>);

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

impl Peer {
    /// The peer a route INFO describes, reached at `addr`.
    pub fn from_info(
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
            connect_urls: string_list(&info["connect_urls"]),
            info: info.clone(),
        }
    }
}

/// A JSON array of strings (anything else in it skipped).
pub fn string_list(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
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

impl Conn {
    /// A leaf link, accepted or dialled.
    pub fn is_leaf(&self) -> bool {
        matches!(self.kind, Kind::Leaf(_))
    }

    /// A leaf link this server dialled: it is the spoke.
    pub fn is_spoke(&self) -> bool {
        matches!(&self.kind, Kind::Leaf(l) if l.spoke)
    }

    pub fn is_route(&self) -> bool {
        matches!(self.kind, Kind::Route(_))
    }

    pub fn leaf_link(&self) -> Option<&LeafLink> {
        match &self.kind {
            Kind::Leaf(l) => Some(l),
            _ => None,
        }
    }

    pub fn route_link(&self) -> Option<&RouteLink> {
        match &self.kind {
            Kind::Route(r) => Some(r),
            _ => None,
        }
    }

    /// Tell this route that local interest in (account, subject, queue) grew or
    /// shrank: `RS+ <acc> <subject> [<queue> <weight>]` / `RS- <acc> <subject> [<queue>]`.
    pub fn route_interest(&self, account: &str, subject: &str, queue: Option<&str>, delta: i32) {
        let key = (
            Box::<str>::from(account),
            Box::<str>::from(subject),
            queue.map(Box::<str>::from),
        );
        let Some(link) = self.route_link() else {
            return;
        };
        let (before, after) = count_interest(&mut link.sent.lock(), key, delta);
        if let Some(l) = interest_op("RS", Some(account), subject, queue, before, after) {
            self.send(l.as_bytes());
        }
    }

    /// Tell this leaf link that local interest in (subject, queue) grew or shrank.
    pub fn leaf_interest(&self, subject: &str, queue: Option<&str>, delta: i32) {
        let Some(link) = self.leaf_link() else {
            return;
        };
        // `deny_imports`: this server does not want those subjects, so it never asks.
        if link
            .filters
            .deny_imports
            .iter()
            .any(|d| crate::subject::is_subset(subject, d))
        {
            return;
        }
        let key = (Box::<str>::from(subject), queue.map(Box::<str>::from));
        let (before, after) = count_interest(&mut link.sent.lock(), key, delta);
        if let Some(l) = interest_op("LS", None, subject, queue, before, after) {
            self.send(l.as_bytes());
        }
    }
}

impl Conn {
    /// A route's peer, once its INFO arrived (a copy).
    pub fn route_peer(&self) -> Option<Peer> {
        self.route_link().and_then(|r| r.peer.lock().clone())
    }

    /// Whether a route's peer is known yet (no copy taken).
    pub fn has_route_peer(&self) -> bool {
        self.route_link().is_some_and(|r| r.peer.lock().is_some())
    }

    pub fn set_route_peer(&self, peer: Peer) {
        if let Some(r) = self.route_link() {
            *r.peer.lock() = Some(peer);
        }
    }

    /// A route's peer sent new client URLs.
    pub fn set_peer_urls(&self, urls: Vec<String>) {
        if let Some(r) = self.route_link() {
            if let Some(p) = r.peer.lock().as_mut() {
                p.connect_urls = urls;
            }
        }
    }
}
