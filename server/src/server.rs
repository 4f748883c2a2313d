//! The server: listeners, connections, shutdown.

use crate::config::Options;

pub fn run(options: Options) -> anyhow::Result<()> {
    let _ = options;
    anyhow::bail!("not yet")
}
