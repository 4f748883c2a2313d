//! `linksim`: run one simulated VPN link.
//!
//!   linksim --name edge-1 --latency 20ms --jitter 2ms --bandwidth 10mbit \
//!           --forward 7422=hub-1:7422 --forward 7423=hub-2:7422 --api 0.0.0.0:9000
//!   linksim --config link.json
//!
//! Then `curl -X POST localhost:9000/partition`, `/heal`, `/reset`, or
//! `curl -X POST localhost:9000/shape -d '{"latency":80}' -H 'content-type: application/json'`.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "linksim",
    version,
    about = "A userspace VPN link: latency, jitter, bandwidth, partition, reset"
)]
struct Cli {
    /// The link's name (logs, API)
    #[arg(long, default_value = "link")]
    name: String,
    /// One-way latency (20ms, 1.5s, 250us)
    #[arg(long)]
    latency: Option<String>,
    /// Latency varies by up to ± this much
    #[arg(long)]
    jitter: Option<String>,
    /// Per-connection, per-direction cap (512kbit, 10mbit, 1gbit)
    #[arg(long)]
    bandwidth: Option<String>,
    /// LISTEN=HOST:PORT, LISTEN a port (all interfaces) or an address; repeatable
    #[arg(long = "forward", value_name = "LISTEN=HOST:PORT")]
    forwards: Vec<String>,
    /// Where the HTTP API listens
    #[arg(long, value_name = "ADDR")]
    api: Option<std::net::SocketAddr>,
    /// A JSON file with name, shape and forwards (flags given too override it)
    #[arg(long)]
    config: Option<PathBuf>,
    /// Start partitioned
    #[arg(long)]
    partitioned: bool,
}

fn config(cli: &Cli) -> Result<linksim::Config, String> {
    let mut c = match &cli.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => linksim::Config::default(),
    };
    if cli.config.is_none() || cli.name != "link" {
        c.name = cli.name.clone();
    }
    if let Some(l) = &cli.latency {
        c.shape.latency = linksim::parse_duration(l)
            .ok_or(format!("--latency {l:?}: expected a duration like 20ms"))?;
    }
    if let Some(j) = &cli.jitter {
        c.shape.jitter = linksim::parse_duration(j)
            .ok_or(format!("--jitter {j:?}: expected a duration like 2ms"))?;
    }
    if let Some(b) = &cli.bandwidth {
        c.shape.bandwidth_bps = Some(
            linksim::parse_bandwidth(b)
                .ok_or(format!("--bandwidth {b:?}: expected a rate like 10mbit"))?,
        );
    }
    for f in &cli.forwards {
        c.forwards.push(
            linksim::parse_forward(f)
                .ok_or(format!("--forward {f:?}: expected LISTEN=HOST:PORT"))?,
        );
    }
    c.shape.partitioned |= cli.partitioned;
    if c.forwards.is_empty() {
        return Err("nothing to forward: give --forward LISTEN=HOST:PORT or a --config".into());
    }
    Ok(c)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cfg = match config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("linksim: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("linksim: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let link = match linksim::start(cfg).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("linksim: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(addr) = cli.api {
            match linksim::api::serve(link.clone(), addr).await {
                Ok(a) => tracing::info!("API on http://{a}"),
                Err(e) => {
                    eprintln!("linksim: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
        // A container's PID 1 must end on SIGTERM (docker stop), a terminal on Ctrl-C.
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("linksim: {e}");
                    return ExitCode::FAILURE;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        ExitCode::SUCCESS
    })
}
