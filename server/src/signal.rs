//! `--signal CMD[=PID]`: control a running server the way `nats-server --signal` does.

use crate::cli::Cli;
use anyhow::{anyhow, bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn signal_for(cmd: &str) -> anyhow::Result<Signal> {
    Ok(match cmd {
        "ldm" => Signal::SIGUSR2,
        "stop" => Signal::SIGKILL,
        "quit" => Signal::SIGINT,
        "term" => Signal::SIGTERM,
        "reload" => Signal::SIGHUP,
        "reopen" => Signal::SIGUSR1,
        other => bail!("unknown signal \"{other}\": use ldm, stop, quit, term, reload or reopen"),
    })
}

/// The PID: given after `=`, or read from the pid file (`-P` or the config's `pid_file`).
fn target_pid(given: Option<&str>, cli: &Cli) -> anyhow::Result<i32> {
    if let Some(p) = given {
        return p
            .trim()
            .parse()
            .with_context(|| format!("invalid PID \"{p}\""));
    }
    let pid_file = match (&cli.pid, &cli.config) {
        (Some(p), _) => p.clone(),
        (None, Some(conf)) => crate::config::load(conf)
            .map_err(|d| anyhow!("{d}"))?
            .options
            .pid_file
            .ok_or_else(|| anyhow!("no PID given and {} has no pid_file", conf.display()))?,
        (None, None) => bail!("no PID given: use --signal CMD=PID, or -P PIDFILE"),
    };
    let text = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("reading pid file {pid_file}"))?;
    text.trim()
        .parse()
        .with_context(|| format!("pid file {pid_file} does not hold a PID"))
}

pub fn send(command: &str, cli: &Cli) -> anyhow::Result<()> {
    let (cmd, pid) = match command.split_once('=') {
        Some((c, p)) => (c, Some(p)),
        None => (command, None),
    };
    let sig = signal_for(cmd)?;
    let pid = target_pid(pid, cli)?;
    kill(Pid::from_raw(pid), sig).with_context(|| format!("signalling process {pid}"))?;
    Ok(())
}
