//! `canopy-server`: run a NATS-compatible server from a nats-server config file,
//! or check one with `-t`.

use canopy_server::cli::{normalize_args, Cli};
use canopy_server::config;
use canopy_server::log::{self, LogConfig};
use clap::Parser;
use sha2::{Digest, Sha256};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse_from(normalize_args(std::env::args_os()));
    if cli.version {
        println!("canopy-server: v{}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if cli.check_config {
        return check(&cli);
    }
    if let Some(url) = &cli.healthz {
        return match canopy_server::probe::healthz(url, std::time::Duration::from_secs(2)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("canopy-server: {url}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(command) = &cli.signal {
        return match canopy_server::signal::send(command, &cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("canopy-server: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let mut loaded = match &cli.config {
        Some(path) => match config::load(path) {
            Ok(l) => Some(l),
            Err(diags) => {
                eprintln!("canopy-server: {diags}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let mut options = loaded
        .as_mut()
        .map(|l| std::mem::take(&mut l.options))
        .unwrap_or_default();
    cli.apply(&mut options);
    let log_cfg = LogConfig {
        debug: options.debug,
        trace: options.trace,
        logtime: options.logtime,
        utc: options.logtime_utc,
        file: options.log_file.clone(),
        size_limit: options.log_size_limit.unwrap_or(0).max(0) as u64,
        max_num: options.log_max_num.unwrap_or(0).max(0) as usize,
    };
    if let Err(e) = log::init(&log_cfg) {
        eprintln!("canopy-server: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(l) = &loaded {
        for w in l.warnings.iter() {
            tracing::warn!("{w}");
        }
    }
    if let Err(diags) = options.check_startup() {
        log::fatal(diags);
    }
    let overrides: canopy_server::server::Overrides = Box::new(move |o| cli.apply(o));
    match canopy_server::server::run(options, Some(overrides)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => log::fatal(format!("{e:#}")),
    }
}

/// `-t`: load the file (opening every certificate it names), report every error and
/// warning with its place, exit 0 only when there are none — as `nats-server -t` does.
fn check(cli: &Cli) -> ExitCode {
    let Some(path) = &cli.config else {
        eprintln!("canopy-server: -t needs a configuration file: canopy-server -t -c FILE");
        return ExitCode::FAILURE;
    };
    match config::load(path) {
        Ok(loaded) if loaded.warnings.is_empty() => {
            let digest = std::fs::read(path)
                .map(|b| format!("{:x}", Sha256::digest(b)))
                .unwrap_or_default();
            eprintln!(
                "canopy-server: configuration file {} is valid (sha256:{digest})",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Ok(loaded) => {
            eprintln!("canopy-server: {}", loaded.warnings);
            eprintln!(
                "canopy-server: warnings are errors under -t (the server itself would start)"
            );
            ExitCode::FAILURE
        }
        Err(diags) => {
            eprintln!("canopy-server: {diags}");
            ExitCode::FAILURE
        }
    }
}
