//! The server's state, below every layer that acts on it: options, ids, counters,
//! accounts, swappable auth and TLS, the connection table, the route table, and the
//! closed-connection ring. Nothing here calls upward; the layers above (sessions,
//! links, monitoring, reload, the server) read and change it.

mod leafs;
pub mod routes;

pub use routes::RouteTable;

use crate::account::Account;
use crate::auth::Auth;
use crate::config::Options;
use crate::conn::{Conn, Kind, Liveness, ServerStats};
use crate::protocol::client::Limits;
use crate::protocol::info::Info;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The protocol level Canopy speaks, as the official release it matches; clients
/// gate features on it. `canopy-server --version` tells Canopy's own version.
pub const NATS_VERSION: &str = "2.15.1";

/// Applied to every (re)loaded config: the command line's values win over the file's.
pub type Overrides = Box<dyn Fn(&mut Options) + Send + Sync>;

pub struct World {
    /// The options the server started with; reload swaps only what it can (auth, accounts, TLS).
    pub options: Arc<Options>,
    pub server_id: String,
    pub accounts: RwLock<HashMap<String, Arc<Account>>>,
    auth: RwLock<Arc<Auth>>,
    /// Bumped by every reload: connections re-check their binding when it moves.
    pub auth_generation: AtomicU64,
    pub stats: Arc<ServerStats>,
    /// Clients and leaf links by cid (routes are in `cluster`).
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_cid: AtomicU64,
    info: RwLock<Info>,
    pub limits: Limits,
    pub liveness: Liveness,
    /// Cancelled to stop accepting (lame duck), then `shutdown` to stop everything.
    pub accepting: CancellationToken,
    pub shutdown: CancellationToken,
    tls: RwLock<Option<Arc<crate::tls::ServerTls>>>,
    pub overrides: Option<Overrides>,
    pub started: std::time::SystemTime,
    /// Credential checks (bcrypt is slow on purpose) run at most this many at once,
    /// so unauthenticated peers cannot take every blocking thread.
    pub auth_permits: Arc<tokio::sync::Semaphore>,
    pub http_req_stats: Mutex<HashMap<String, u64>>,
    /// TLS for accepted leaf links (`leafnodes { tls {} }`).
    pub leaf_tls: Option<Arc<crate::tls::ServerTls>>,
    /// The leafnode listener's port (0 = none).
    pub leaf_port: std::sync::atomic::AtomicU64,
    /// The most recently closed connections, as `/connz?state=closed` shows them.
    pub closed: Mutex<std::collections::VecDeque<serde_json::Value>>,
    /// The account whose users may ask `$SYS.REQ.*` (`system_account`, or `$SYS`).
    pub system_account: Option<String>,
    /// Routes to the other servers of the cluster.
    pub cluster: RouteTable,
    /// `no_fast_producer_stall` (reloadable): drop messages to a consumer that is
    /// behind instead of holding its producer back.
    pub no_fast_producer_stall: std::sync::atomic::AtomicBool,
}

impl World {
    /// Set the `connect_urls` clients are given; true if they changed. With
    /// `cluster { no_advertise: true }` clients are given none.
    pub fn set_connect_urls(&self, urls: Vec<String>) -> bool {
        let no_advertise = self
            .options
            .cluster
            .as_ref()
            .is_some_and(|c| c.no_advertise);
        let urls = if no_advertise { Vec::new() } else { urls };
        let mut info = self.info.write();
        if info.connect_urls == urls {
            return false;
        }
        info.connect_urls = urls;
        true
    }

    pub fn auth(&self) -> Arc<Auth> {
        self.auth.read().clone()
    }

    pub fn tls(&self) -> Option<Arc<crate::tls::ServerTls>> {
        self.tls.read().clone()
    }

    /// The INFO a new client gets (before its client_id and nonce are filled in).
    pub fn info(&self) -> Info {
        self.info.read().clone()
    }

    /// Swap in what a reload may change.
    pub fn replace_security(&self, auth: Auth, tls: Option<crate::tls::ServerTls>) {
        let tls = tls.map(Arc::new);
        {
            let mut info = self.info.write();
            info.auth_required = auth.required || tls.as_ref().is_some_and(|t| t.verify);
            info.tls_verify = tls.as_ref().is_some_and(|t| t.verify);
        }
        *self.auth.write() = Arc::new(auth);
        if tls.is_some() {
            *self.tls.write() = tls;
        }
        self.auth_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// A new connection of `kind` from `addr`: its cid, and its pending bound (a link
    /// carries every account, so it may hold more before it is cut).
    pub fn new_conn(&self, addr: std::net::SocketAddr, kind: Kind) -> Arc<Conn> {
        let cid = self.next_cid.fetch_add(1, Ordering::Relaxed) + 1;
        let max_pending = self.options.max_pending as usize;
        let max_pending = match kind {
            Kind::Client => max_pending,
            _ => crate::conn::link_max_pending(max_pending),
        };
        Arc::new(Conn::new(cid, addr, max_pending, self.stats.clone(), kind))
    }

    /// Enter a client or leaf link in the connection table; false when a client
    /// would pass `max_connections` (links are not counted against it).
    pub fn admit(&self, conn: &Arc<Conn>) -> bool {
        let mut conns = self.conns.lock();
        if !conn.is_leaf() && conns.len() as i64 >= self.options.max_connections {
            return false;
        }
        conns.insert(conn.cid, conn.clone());
        true
    }

    /// Take a connection out of the table.
    pub fn forget(&self, cid: u64) {
        self.conns.lock().remove(&cid);
    }

    /// Every connection in the table.
    pub fn conn_list(&self) -> Vec<Arc<Conn>> {
        self.conns.lock().values().cloned().collect()
    }

    /// How many connections the table holds (`/varz` `connections`).
    pub fn conn_count(&self) -> usize {
        self.conns.lock().len()
    }
}

impl World {
    /// The world of a server whose client listener is at `client_addr`.
    pub fn new(
        options: Options,
        client_addr: std::net::SocketAddr,
        overrides: Option<Overrides>,
    ) -> anyhow::Result<Arc<World>> {
        let tls = options
            .tls
            .as_ref()
            .map(crate::tls::ServerTls::from_options)
            .transpose()?;
        let leaf_tls = options
            .leafnodes
            .as_ref()
            .and_then(|l| l.tls.as_ref())
            .map(crate::tls::ServerTls::from_options)
            .transpose()?
            .map(Arc::new);
        let mut accounts = crate::account::build_accounts(&options);
        let system_account = (!options.no_system_account).then(|| {
            options
                .system_account
                .clone()
                .unwrap_or_else(|| "$SYS".into())
        });
        if let Some(sys) = &system_account {
            accounts
                .entry(sys.clone())
                .or_insert_with(|| Arc::new(crate::account::Account::new(sys)));
        }
        let auth = Auth::new(&options, &accounts);
        let server_id = crate::nkey::random_server_id();
        let cluster = RouteTable::new(
            options.cluster.as_ref().and_then(|c| c.name.clone()),
            server_id.clone(),
        );
        for a in accounts.values() {
            let _ = a.routes.set(cluster.routes.clone());
        }
        // With client_advertise, clients are told that address, as nats-server tells them.
        let (host, port) = advertised_host_port(
            options.client_advertise.as_deref(),
            &options.host,
            client_addr.port(),
        );
        let info = Info {
            server_id: server_id.clone(),
            server_name: options
                .server_name
                .clone()
                .unwrap_or_else(|| server_id.clone()),
            version: NATS_VERSION.into(),
            proto: 1,
            git_commit: String::new(),
            go: format!("canopy-server {} (rust)", env!("CARGO_PKG_VERSION")),
            host,
            port,
            headers: !options.no_header_support,
            auth_required: auth.required || tls.as_ref().is_some_and(|t| t.verify),
            tls_required: tls.is_some() && !options.allow_non_tls,
            tls_available: tls.is_some() && options.allow_non_tls,
            tls_verify: tls.as_ref().is_some_and(|t| t.verify),
            max_payload: options.max_payload,
            ..Default::default()
        };
        let limits = Limits {
            max_control_line: options.max_control_line.max(1) as usize,
            max_payload: options.max_payload.max(0) as usize,
        };
        let liveness = Liveness {
            first_ping: Duration::from_secs(2).min(options.ping_interval),
            ping_interval: options.ping_interval.max(Duration::from_millis(10)),
            ping_max: options.ping_max.max(0) as u32,
            write_deadline: options.write_deadline.max(Duration::from_millis(1)),
        };
        let no_fast_producer_stall = options.no_fast_producer_stall;
        Ok(Arc::new(World {
            tls: RwLock::new(tls.map(Arc::new)),
            options: Arc::new(options),
            server_id,
            accounts: RwLock::new(accounts),
            auth: RwLock::new(Arc::new(auth)),
            auth_generation: AtomicU64::new(0),
            stats: Arc::new(ServerStats::default()),
            conns: Mutex::new(HashMap::new()),
            next_cid: AtomicU64::new(0),
            info: RwLock::new(info),
            limits,
            liveness,
            accepting: CancellationToken::new(),
            shutdown: CancellationToken::new(),
            overrides,
            started: std::time::SystemTime::now(),
            http_req_stats: Mutex::new(HashMap::new()),
            leaf_port: std::sync::atomic::AtomicU64::new(0),
            leaf_tls,
            closed: Mutex::new(std::collections::VecDeque::new()),
            auth_permits: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
                    * 2,
            )),
            system_account,
            cluster,
            no_fast_producer_stall: std::sync::atomic::AtomicBool::new(no_fast_producer_stall),
        }))
    }
}

/// The host and port an `advertise` value (`host`, `host:port`, `[v6]:port`) names, else
/// the listener's own.
pub fn advertised_host_port(advertise: Option<&str>, host: &str, port: u16) -> (String, u16) {
    let Some(a) = advertise.map(str::trim).filter(|a| !a.is_empty()) else {
        return (host.to_string(), port);
    };
    let a = a.split_once("://").map_or(a, |(_, rest)| rest);
    match a.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.parse::<u16>().is_ok() => (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p.parse().unwrap_or(port),
        ),
        _ => (
            a.trim_start_matches('[').trim_end_matches(']').to_string(),
            port,
        ),
    }
}
