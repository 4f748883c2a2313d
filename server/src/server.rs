//! The server: accounts, auth, the client listener, the connection registry, and
//! shutdown on SIGINT/SIGTERM.

use crate::account::Account;
use crate::auth::Auth;
use crate::config::Options;
use crate::conn::{Conn, Liveness, ServerStats};
use crate::protocol::client::Limits;
use crate::protocol::info::Info;
use anyhow::Context;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The protocol level Canopy speaks, as the official release it matches; clients
/// gate features on it. `canopy-server --version` tells Canopy's own version.
pub const NATS_VERSION: &str = "2.15.1";

/// Applied to every (re)loaded config: the command line's values win over the file's.
pub type Overrides = Box<dyn Fn(&mut Options) + Send + Sync>;

pub struct Shared {
    /// The options the server started with; reload swaps only what it can (auth, accounts, TLS).
    pub options: Arc<Options>,
    pub server_id: String,
    pub accounts: RwLock<HashMap<String, Arc<Account>>>,
    auth: RwLock<Arc<Auth>>,
    /// Bumped by every reload: connections re-check their binding when it moves.
    pub auth_generation: AtomicU64,
    pub stats: Arc<ServerStats>,
    pub conns: Mutex<HashMap<u64, Arc<Conn>>>,
    pub next_cid: AtomicU64,
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
    /// The most recently closed connections, for `/connz?state=closed`.
    pub closed: Mutex<std::collections::VecDeque<serde_json::Value>>,
    /// The account whose users may ask `$SYS.REQ.*` (`system_account`, or `$SYS`).
    pub system_account: Option<String>,
    /// Routes to the other servers of the cluster.
    pub cluster: crate::route::Cluster,
    /// `no_fast_producer_stall` (reloadable): drop messages to a consumer that is
    /// behind instead of holding its producer back.
    pub no_fast_producer_stall: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// `leafnode_urls` for the INFO on leaf links: the advertised address, or ours.
    pub fn leaf_urls(&self) -> Vec<String> {
        let Some(l) = &self.options.leafnodes else {
            return Vec::new();
        };
        if l.no_advertise {
            return Vec::new();
        }
        let port = self.leaf_port.load(std::sync::atomic::Ordering::Relaxed);
        match &l.advertise {
            Some(a) => vec![a.clone()],
            None => {
                let host = l.host.clone().unwrap_or_else(|| self.options.host.clone());
                crate::listen::advertised_hosts(&host)
                    .into_iter()
                    .map(|h| format!("{h}:{port}"))
                    .collect()
            }
        }
    }

    pub fn leaf_auth_required(&self) -> bool {
        let l = self
            .options
            .leafnodes
            .as_ref()
            .and_then(|l| l.authorization.as_ref());
        l.is_some() || self.auth().required
    }

    /// The account a leaf's CONNECT binds to, and the permissions of the user it
    /// logged in as when that user comes from `authorization {}` or `accounts {}`
    /// (leafnode users carry none). With a leafnodes authorization: its nkey (a
    /// signature of this connection's `nonce`), users with accounts, or a single
    /// user/account; with `leafnodes { tls { verify_and_map: true } }` the leaf's
    /// verified certificate names the user (`cert_names`) and no password is asked.
    /// Without one, the main users, else `$G`. Blocking (bcrypt): run it off the async
    /// threads; no lock is held while a password is checked.
    pub fn authenticate_leaf(
        &self,
        c: &crate::protocol::info::Connect,
        nonce: &str,
        cert_names: &[String],
    ) -> Option<(Arc<Account>, Option<Arc<crate::auth::Permissions>>)> {
        let leafnodes = self.options.leafnodes.as_ref();
        if let Some(a) = leafnodes.and_then(|l| l.authorization.as_ref()) {
            let map_certs = leafnodes
                .and_then(|l| l.tls.as_ref())
                .is_some_and(|t| t.verify_and_map);
            let account = leaf_account(a, c, nonce, cert_names, map_certs)?;
            let found = self
                .accounts
                .read()
                .get(account.map(String::as_str).unwrap_or("$G"))
                .cloned();
            return found.map(|a| (a, None));
        }
        let auth = self.auth();
        auth.authenticate(c, nonce, cert_names)
            .filter(|b| auth.allows_connection_type(b.user.as_deref(), "LEAFNODE"))
            .map(|b| (b.account, b.permissions))
    }
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
}

/// A running server: where it listens, and how to stop it.
pub struct Handle {
    pub client_addr: std::net::SocketAddr,
    pub shared: Arc<Shared>,
}

impl Handle {
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }
}

fn build_shared(
    options: Options,
    client_addr: std::net::SocketAddr,
    overrides: Option<Overrides>,
) -> anyhow::Result<Arc<Shared>> {
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
    let cluster = crate::route::Cluster::new(
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
    Ok(Arc::new(Shared {
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

/// Bind the listeners and start serving on the current tokio runtime.
pub async fn start(options: Options) -> anyhow::Result<Handle> {
    start_with(options, None).await
}

pub async fn start_with(options: Options, overrides: Option<Overrides>) -> anyhow::Result<Handle> {
    // nats-server refuses a store directory that is a file when JetStream starts;
    // so does Canopy, though it does not run JetStream yet.
    if let Some(dir) = options
        .jetstream
        .as_ref()
        .filter(|j| j.enabled)
        .and_then(|j| j.store_dir.as_deref())
    {
        if std::path::Path::new(dir).exists() && !std::path::Path::new(dir).is_dir() {
            anyhow::bail!("Can't start JetStream: storage directory is not a directory");
        }
    }
    let port = if options.port == -1 { 0 } else { options.port };
    let port = u16::try_from(port).with_context(|| format!("invalid client port {port}"))?;
    let listener = crate::listen::bind(&options.host, port)
        .await
        .map_err(|e| {
            anyhow::anyhow!("Error listening on port: {}:{port}, \"{e}\"", options.host)
        })?;
    let client_addr = listener.local_addr()?;
    let shared = build_shared(options, client_addr, overrides)?;
    log_startup(&shared, client_addr);
    tokio::spawn(accept_loop(shared.clone(), listener));
    if let Some(l) = shared
        .options
        .leafnodes
        .as_ref()
        .filter(|l| l.port.is_some())
    {
        let host = l
            .host
            .clone()
            .unwrap_or_else(|| shared.options.host.clone());
        let port = l.port.unwrap_or(7422);
        let port = if port == -1 { 0 } else { port };
        let port = u16::try_from(port).with_context(|| format!("invalid leafnode port {port}"))?;
        let leaf_listener = crate::listen::bind(&host, port)
            .await
            .map_err(|e| anyhow::anyhow!("Error listening on leafnode port: {port} - {e}"))?;
        let addr = leaf_listener.local_addr()?;
        shared
            .leaf_port
            .store(addr.port() as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::info!("Listening for leafnode connections on {addr}");
        tokio::spawn(leaf_accept_loop(shared.clone(), leaf_listener));
    }
    if let Some(http) = &shared.options.http {
        let host = http
            .host
            .clone()
            .unwrap_or_else(|| shared.options.host.clone());
        crate::monitor::http::start(shared.clone(), &host, http.port).await?;
    }
    if let Some(https) = &shared.options.https {
        let host = https
            .host
            .clone()
            .unwrap_or_else(|| shared.options.host.clone());
        let tls = shared
            .tls()
            .ok_or_else(|| anyhow::anyhow!("https monitoring needs the server's tls {{}} block"))?;
        crate::monitor::http::start_https(shared.clone(), &host, https.port, tls).await?;
    }
    crate::route::start(shared.clone()).await?;
    crate::leafnode::start(shared.clone());
    tracing::info!("Server is ready");
    Ok(Handle {
        client_addr,
        shared,
    })
}

fn log_startup(shared: &Shared, addr: std::net::SocketAddr) {
    let o = &shared.options;
    tracing::info!("Starting canopy-server");
    tracing::info!(
        "  Version:  {} (NATS protocol {})",
        env!("CARGO_PKG_VERSION"),
        NATS_VERSION
    );
    tracing::info!("  Name:     {}", shared.info().server_name);
    tracing::info!("  ID:       {}", shared.server_id);
    if let Some(file) = &o.config_file {
        tracing::info!("Using configuration file: {}", file.display());
    }
    let mut not_yet = Vec::new();
    if o.jetstream.as_ref().is_some_and(|j| j.enabled) {
        not_yet.push("jetstream");
    }
    for name in not_yet {
        tracing::warn!(
            "Not serving \"{name}\" yet: this build of Canopy reads it but does not run it"
        );
    }
    tracing::info!("Listening for client connections on {addr}");
    if let Some(t) = shared.tls() {
        if o.allow_non_tls {
            tracing::info!("TLS available for client connections (allow_non_tls)");
        } else {
            tracing::info!("TLS required for client connections");
        }
        if t.verify {
            tracing::info!("Client certificates are required and verified");
            if o.allow_non_tls {
                tracing::warn!("allow_non_tls lets plain-text clients in without the client certificate that tls verify asks for");
            }
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut backoff = Duration::from_millis(5);
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, addr)) => {
                    backoff = Duration::from_millis(5);
                    tokio::spawn(crate::conn::client::serve(shared.clone(), stream, addr));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::error!("Error accepting client connection: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            },
            _ = shared.accepting.cancelled() => break,
            _ = shared.shutdown.cancelled() => break,
        }
    }
    drop(listener);
    shared.shutdown.cancelled().await;
    let conns: Vec<Arc<Conn>> = shared.conns.lock().values().cloned().collect();
    for c in conns {
        c.close("Server Shutdown");
    }
}

async fn leaf_accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, addr)) => { tokio::spawn(crate::conn::leaf::serve(shared.clone(), stream, addr)); }
                Err(e) => {
                    tracing::error!("Error accepting leafnode connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shared.shutdown.cancelled() => break,
        }
    }
}

/// Lame duck: stop accepting, tell clients (INFO with `ldm`) so they reconnect
/// elsewhere, wait the grace period, then close them spread over the rest of
/// `lame_duck_duration`, and stop.
pub async fn lame_duck(shared: Arc<Shared>) {
    let o = &shared.options;
    tracing::info!("Entering lame duck mode, stop accepting new clients");
    shared.accepting.cancel();
    let mut info = shared.info();
    info.ldm = true;
    let line = info.to_line();
    let conns: Vec<Arc<Conn>> = shared.conns.lock().values().cloned().collect();
    for c in conns
        .iter()
        .filter(|c| c.info_aware.load(std::sync::atomic::Ordering::Relaxed))
    {
        c.send(&line);
    }
    tokio::time::sleep(o.lame_duck_grace_period).await;
    let spread = o
        .lame_duck_duration
        .saturating_sub(o.lame_duck_grace_period);
    let step = if conns.is_empty() {
        Duration::ZERO
    } else {
        spread / conns.len() as u32
    };
    tracing::info!("Closing {} existing clients over {:?}", conns.len(), spread);
    for c in conns {
        c.close("Server Shutdown");
        tokio::time::sleep(step.min(Duration::from_secs(1))).await;
    }
    shared.shutdown.cancel();
}

/// Run until SIGINT or SIGTERM (or the end of lame duck mode), then close every
/// connection and return. SIGHUP reloads the config; SIGUSR2 enters lame duck mode.
pub fn run(options: Options, overrides: Option<Overrides>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let handle = start_with(options, overrides).await?;
        write_pid_and_ports(&handle)?;
        signals(handle.shared.clone()).await?;
        tracing::info!("Initiating Shutdown...");
        handle.shutdown();
        // Give writers a moment to send what is queued.
        tokio::time::sleep(Duration::from_millis(50)).await;
        remove_pid_and_ports(&handle);
        tracing::info!("Server Exiting..");
        Ok(())
    })
}

fn ports_file(h: &Handle) -> Option<std::path::PathBuf> {
    let dir = h.shared.options.ports_file_dir.as_ref()?;
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "canopy-server".into());
    Some(std::path::Path::new(dir).join(format!("{exe}_{}.ports", std::process::id())))
}

fn write_pid_and_ports(h: &Handle) -> anyhow::Result<()> {
    if let Some(pid_file) = &h.shared.options.pid_file {
        std::fs::write(pid_file, std::process::id().to_string())
            .with_context(|| format!("writing pid file {pid_file}"))?;
    }
    if let Some(path) = ports_file(h) {
        let json = serde_json::json!({ "nats": [format!("nats://{}", h.client_addr)] });
        std::fs::write(&path, json.to_string())
            .with_context(|| format!("writing ports file {}", path.display()))?;
    }
    Ok(())
}

fn remove_pid_and_ports(h: &Handle) {
    if let Some(pid_file) = &h.shared.options.pid_file {
        let _ = std::fs::remove_file(pid_file);
    }
    if let Some(path) = ports_file(h) {
        let _ = std::fs::remove_file(path);
    }
}

async fn signals(shared: Arc<Shared>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("Trapped \"terminated\" signal"); return Ok(()); }
            _ = int.recv() => { tracing::info!("Trapped \"interrupt\" signal"); return Ok(()); }
            _ = hup.recv() => {
                // Reading files and swapping tables blocks: never on an async worker.
                let s = shared.clone();
                match tokio::task::spawn_blocking(move || crate::reload::reload(&s)).await {
                    Ok(Ok(())) => tracing::info!("Reloaded server configuration"),
                    Ok(Err(e)) => tracing::error!("Failed to reload server configuration: {e:#}"),
                    Err(e) => tracing::error!("Failed to reload server configuration: {e}"),
                }
            }
            _ = usr2.recv() => {
                if !shared.accepting.is_cancelled() {
                    tokio::spawn(lame_duck(shared.clone()));
                }
            }
            _ = shared.shutdown.cancelled() => return Ok(()),
        }
    }
}

/// Which account a leafnodes `authorization {}` binds these credentials to (`Some(None)`
/// is `$G`), or `None` when they do not log in.
fn leaf_account<'a>(
    a: &'a crate::config::auth::Authorization,
    c: &crate::protocol::info::Connect,
    nonce: &str,
    cert_names: &[String],
    map_certs: bool,
) -> Option<Option<&'a String>> {
    use crate::auth::password_matches;
    if map_certs {
        let entry = a.users.iter().find(|x| {
            x.user.as_ref().is_some_and(|u| {
                cert_names
                    .iter()
                    .any(|n| crate::auth::cert_name_matches(n, u))
            })
        })?;
        return Some(entry.account.as_ref());
    }
    if let Some(key) = &a.nkey {
        let signed =
            c.nkey.as_ref() == Some(key) && crate::auth::nkey_signed(key, c.sig.as_deref(), nonce);
        return signed.then_some(a.account.as_ref());
    }
    if let Some(u) = c.user.as_ref() {
        if let Some(entry) = a.users.iter().find(|x| x.user.as_ref() == Some(u)) {
            return password_matches(entry.password.as_deref(), c.pass.as_deref())
                .then_some(entry.account.as_ref());
        }
    }
    if a.user.is_some() {
        let ok = a.user == c.user && password_matches(a.password.as_deref(), c.pass.as_deref());
        return ok.then_some(a.account.as_ref());
    }
    a.users.is_empty().then_some(a.account.as_ref())
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
