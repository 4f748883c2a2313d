//! The server: its listeners (clients, leaf links; routes start in `route`), start-up
//! and its log, signals, lame duck, pid and ports files.

use crate::config::Options;
use crate::conn::Conn;
use crate::world::World;
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub use crate::world::{Overrides, NATS_VERSION};

/// A running server: where it listens, and how to stop it.
pub struct Handle {
    pub client_addr: std::net::SocketAddr,
    pub world: Arc<World>,
}

impl Handle {
    pub fn shutdown(&self) {
        self.world.shutdown.cancel();
    }
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
    let world = World::new(options, client_addr, overrides)?;
    log_startup(&world, client_addr);
    tokio::spawn(accept_loop(world.clone(), listener));
    if let Some(l) = world
        .options
        .leafnodes
        .as_ref()
        .filter(|l| l.port.is_some())
    {
        let host = l.host.clone().unwrap_or_else(|| world.options.host.clone());
        let port = l.port.unwrap_or(7422);
        let port = if port == -1 { 0 } else { port };
        let port = u16::try_from(port).with_context(|| format!("invalid leafnode port {port}"))?;
        let leaf_listener = crate::listen::bind(&host, port)
            .await
            .map_err(|e| anyhow::anyhow!("Error listening on leafnode port: {port} - {e}"))?;
        let addr = leaf_listener.local_addr()?;
        world
            .leaf_port
            .store(addr.port() as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::info!("Listening for leafnode connections on {addr}");
        tokio::spawn(leaf_accept_loop(world.clone(), leaf_listener));
    }
    if let Some(http) = &world.options.http {
        let host = http
            .host
            .clone()
            .unwrap_or_else(|| world.options.host.clone());
        crate::monitor::http::start(world.clone(), &host, http.port).await?;
    }
    if let Some(https) = &world.options.https {
        let host = https
            .host
            .clone()
            .unwrap_or_else(|| world.options.host.clone());
        let tls = world
            .tls()
            .ok_or_else(|| anyhow::anyhow!("https monitoring needs the server's tls {{}} block"))?;
        crate::monitor::http::start_https(world.clone(), &host, https.port, tls).await?;
    }
    crate::route::start(world.clone()).await?;
    crate::leafnode::start(world.clone());
    tracing::info!("Server is ready");
    Ok(Handle { client_addr, world })
}

fn log_startup(world: &World, addr: std::net::SocketAddr) {
    let o = &world.options;
    tracing::info!("Starting canopy-server");
    tracing::info!(
        "  Version:  {} (NATS protocol {})",
        env!("CARGO_PKG_VERSION"),
        NATS_VERSION
    );
    tracing::info!("  Name:     {}", world.info().server_name);
    tracing::info!("  ID:       {}", world.server_id);
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
    if let Some(t) = world.tls() {
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

async fn accept_loop(world: Arc<World>, listener: TcpListener) {
    let mut backoff = Duration::from_millis(5);
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, addr)) => {
                    backoff = Duration::from_millis(5);
                    tokio::spawn(crate::session::serve(world.clone(), stream, addr));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::error!("Error accepting client connection: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            },
            _ = world.accepting.cancelled() => break,
            _ = world.shutdown.cancelled() => break,
        }
    }
    drop(listener);
    world.shutdown.cancelled().await;
    let conns: Vec<Arc<Conn>> = world.conn_list();
    for c in conns {
        c.close("Server Shutdown");
    }
}

async fn leaf_accept_loop(world: Arc<World>, listener: TcpListener) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, addr)) => { tokio::spawn(crate::leafnode::accept::serve(world.clone(), stream, addr)); }
                Err(e) => {
                    tracing::error!("Error accepting leafnode connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = world.shutdown.cancelled() => break,
        }
    }
}

/// Lame duck: stop accepting, tell clients (INFO with `ldm`) so they reconnect
/// elsewhere, wait the grace period, then close them spread over the rest of
/// `lame_duck_duration`, and stop.
pub async fn lame_duck(world: Arc<World>) {
    let o = &world.options;
    tracing::info!("Entering lame duck mode, stop accepting new clients");
    world.accepting.cancel();
    let mut info = world.info();
    info.ldm = true;
    let line = info.to_line();
    let conns: Vec<Arc<Conn>> = world.conn_list();
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
    world.shutdown.cancel();
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
        signals(handle.world.clone()).await?;
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
    let dir = h.world.options.ports_file_dir.as_ref()?;
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "canopy-server".into());
    Some(std::path::Path::new(dir).join(format!("{exe}_{}.ports", std::process::id())))
}

fn write_pid_and_ports(h: &Handle) -> anyhow::Result<()> {
    if let Some(pid_file) = &h.world.options.pid_file {
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
    if let Some(pid_file) = &h.world.options.pid_file {
        let _ = std::fs::remove_file(pid_file);
    }
    if let Some(path) = ports_file(h) {
        let _ = std::fs::remove_file(path);
    }
}

async fn signals(world: Arc<World>) -> anyhow::Result<()> {
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
                let s = world.clone();
                match tokio::task::spawn_blocking(move || crate::reload::reload(&s)).await {
                    Ok(Ok(())) => tracing::info!("Reloaded server configuration"),
                    Ok(Err(e)) => tracing::error!("Failed to reload server configuration: {e:#}"),
                    Err(e) => tracing::error!("Failed to reload server configuration: {e}"),
                }
            }
            _ = usr2.recv() => {
                if !world.accepting.is_cancelled() {
                    tokio::spawn(lame_duck(world.clone()));
                }
            }
            _ = world.shutdown.cancelled() => return Ok(()),
        }
    }
}
