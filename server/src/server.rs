//! The server: accounts, auth, the client listener, the connection registry, and
//! shutdown on SIGINT/SIGTERM.

use crate::account::{Account, GLOBAL};
use crate::auth::Auth;
use crate::config::Options;
use crate::conn::{Conn, Liveness, ServerStats};
use crate::protocol::client::Limits;
use crate::protocol::info::Info;
use anyhow::Context;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The protocol level Canopy speaks, as the official release it matches; clients
/// gate features on it. `canopy-server --version` tells Canopy's own version.
pub const NATS_VERSION: &str = "2.15.1";

pub struct Shared {
    pub options: Arc<Options>,
    pub server_id: String,
    pub accounts: HashMap<String, Arc<Account>>,
    pub auth: Auth,
    pub stats: Arc<ServerStats>,
    pub conns: Mutex<HashMap<u64, Arc<Conn>>>,
    pub next_cid: AtomicU64,
    pub info: Info,
    pub limits: Limits,
    pub liveness: Liveness,
    pub shutdown: CancellationToken,
    pub tls: Option<crate::tls::ServerTls>,
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
) -> anyhow::Result<Arc<Shared>> {
    let tls = options
        .tls
        .as_ref()
        .map(crate::tls::ServerTls::from_options)
        .transpose()?;
    let mut accounts = HashMap::new();
    accounts.insert(GLOBAL.to_string(), Arc::new(Account::new(GLOBAL)));
    for a in &options.accounts {
        accounts.insert(a.name.clone(), Arc::new(Account::new(&a.name)));
    }
    let auth = Auth::new(&options, &accounts);
    let server_id = crate::nkey::random_server_id();
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
        host: options.host.clone(),
        port: client_addr.port(),
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
    Ok(Arc::new(Shared {
        tls,
        options: Arc::new(options),
        server_id,
        accounts,
        auth,
        stats: Arc::new(ServerStats::default()),
        conns: Mutex::new(HashMap::new()),
        next_cid: AtomicU64::new(0),
        info,
        limits,
        liveness,
        shutdown: CancellationToken::new(),
    }))
}

/// Bind the listeners and start serving on the current tokio runtime.
pub async fn start(options: Options) -> anyhow::Result<Handle> {
    let port = if options.port == -1 { 0 } else { options.port };
    let port = u16::try_from(port).with_context(|| format!("invalid client port {port}"))?;
    let bind = format!("{}:{port}", options.host);
    let listener = TcpListener::bind(&bind)
        .await
        .with_context(|| format!("Error listening on port: {bind}"))?;
    let client_addr = listener.local_addr()?;
    let shared = build_shared(options, client_addr)?;
    log_startup(&shared, client_addr);
    tokio::spawn(accept_loop(shared.clone(), listener));
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
    tracing::info!("  Name:     {}", shared.info.server_name);
    tracing::info!("  ID:       {}", shared.server_id);
    if let Some(file) = &o.config_file {
        tracing::info!("Using configuration file: {}", file.display());
    }
    for u in &o.unserved {
        tracing::warn!("Not serving \"{}\" ({}): Canopy does not implement it yet; the block was checked and is ignored", u.name, u.pos);
    }
    let mut not_yet = Vec::new();
    if o.cluster.as_ref().is_some_and(|c| c.port.is_some()) {
        not_yet.push("cluster");
    }
    if o.leafnodes.is_some() {
        not_yet.push("leafnodes");
    }
    if o.jetstream.as_ref().is_some_and(|j| j.enabled) {
        not_yet.push("jetstream");
    }
    if o.http.is_some() || o.https.is_some() {
        not_yet.push("monitoring (http)");
    }
    if o.tls.as_ref().is_some_and(|t| t.verify_and_map) {
        not_yet.push("tls verify_and_map (certificate-to-user mapping: such clients are refused)");
    }
    if o.accounts
        .iter()
        .any(|a| !a.imports.is_empty() || !a.exports.is_empty())
    {
        not_yet.push("account exports/imports");
    }
    if !o.mappings.is_empty() || o.accounts.iter().any(|a| !a.mappings.is_empty()) {
        not_yet.push("mappings");
    }
    for name in not_yet {
        tracing::warn!(
            "Not serving \"{name}\" yet: this build of Canopy reads it but does not run it"
        );
    }
    tracing::info!("Listening for client connections on {addr}");
    if let Some(t) = &shared.tls {
        if o.allow_non_tls {
            tracing::info!("TLS available for client connections (allow_non_tls)");
        } else {
            tracing::info!("TLS required for client connections");
        }
        if t.verify {
            tracing::info!("Client certificates are required and verified");
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
            _ = shared.shutdown.cancelled() => break,
        }
    }
    let conns: Vec<Arc<Conn>> = shared.conns.lock().values().cloned().collect();
    for c in conns {
        c.close("Server Shutdown");
    }
}

/// Run until SIGINT or SIGTERM, then close every connection and return.
pub fn run(options: Options) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let handle = start(options).await?;
        write_pid_and_ports(&handle)?;
        wait_for_signal().await;
        tracing::info!("Initiating Shutdown...");
        handle.shutdown();
        // Give writers a moment to send what is queued.
        tokio::time::sleep(Duration::from_millis(50)).await;
        tracing::info!("Server Exiting..");
        Ok(())
    })
}

fn write_pid_and_ports(h: &Handle) -> anyhow::Result<()> {
    let o = &h.shared.options;
    if let Some(pid_file) = &o.pid_file {
        std::fs::write(pid_file, std::process::id().to_string())
            .with_context(|| format!("writing pid file {pid_file}"))?;
    }
    if let Some(dir) = &o.ports_file_dir {
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "canopy-server".into());
        let path = std::path::Path::new(dir).join(format!("{exe}_{}.ports", std::process::id()));
        let json = serde_json::json!({ "nats": [format!("nats://{}", h.client_addr)] });
        std::fs::write(&path, json.to_string())
            .with_context(|| format!("writing ports file {}", path.display()))?;
    }
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::debug!("Trapped \"terminated\" signal"),
        _ = int.recv() => tracing::debug!("Trapped \"interrupt\" signal"),
    }
}
