//! Config reload (SIGHUP or `--signal reload`): users, permissions, accounts and TLS
//! certificates change without a restart. Connections whose user is gone are closed
//! with `Authorization Violation`; others pick up new permissions on their next read.
//! Listener addresses and limits keep the values the server started with.

use crate::account::Account;
use crate::auth::Auth;
use crate::config;
use crate::world::World;
use anyhow::{anyhow, Context};
use std::sync::Arc;

pub fn reload(world: &World) -> anyhow::Result<()> {
    let path = world
        .options
        .config_file
        .as_ref()
        .ok_or_else(|| anyhow!("the server was started without a config file"))?;
    let loaded = config::load(path).map_err(|d| anyhow!("{d}"))?;
    for w in loaded.warnings.iter() {
        tracing::warn!("{w}");
    }
    let mut new = loaded.options;
    if let Some(apply) = &world.overrides {
        apply(&mut new);
    }
    new.check_startup().map_err(|d| anyhow!("{d}"))?;
    let old = &world.options;
    let fixed = [
        ("host", old.host != new.host),
        ("port", old.port != new.port),
        ("max_payload", old.max_payload != new.max_payload),
        (
            "max_control_line",
            old.max_control_line != new.max_control_line,
        ),
        (
            "cluster",
            old.cluster.as_ref().map(|c| &c.routes) != new.cluster.as_ref().map(|c| &c.routes),
        ),
    ];
    let routing = |o: &config::Options| {
        let per_account: Vec<_> = o
            .accounts
            .iter()
            .map(|a| (&a.name, &a.exports, &a.imports, &a.mappings))
            .collect();
        format!("{:?}{:?}", o.mappings, per_account)
    };
    if routing(old) != routing(&new) {
        tracing::warn!("Config reload: mappings, exports and imports are not reloadable yet; restart to apply them");
    }
    for (name, changed) in fixed {
        if changed {
            tracing::warn!(
                "Config reload: \"{name}\" changed but is not reloadable; restart to apply it"
            );
        }
    }
    let tls = new
        .tls
        .as_ref()
        .map(crate::tls::ServerTls::from_options)
        .transpose()
        .context("reloading TLS")?;
    if old.tls.is_some() != new.tls.is_some() {
        tracing::warn!(
            "Config reload: turning TLS on or off needs a restart; certificates are reloaded"
        );
    }
    // The write lock is taken only to add accounts the new config names, and only for
    // the insert: readers on the publish path never wait for the rest of the reload.
    let missing: Vec<&str> = {
        let accounts = world.accounts.read();
        new.accounts
            .iter()
            .map(|a| a.name.as_str())
            .filter(|n| !accounts.contains_key(*n))
            .collect()
    };
    if !missing.is_empty() {
        let created: Vec<Arc<Account>> = missing
            .iter()
            .map(|name| {
                let acc = Account::new(name);
                let _ = acc.routes.set(world.cluster.routes.clone());
                Arc::new(acc)
            })
            .collect();
        let mut accounts = world.accounts.write();
        for acc in created {
            accounts.entry(acc.name.clone()).or_insert(acc);
        }
    }
    let auth = Auth::new(&new, &world.accounts.read());
    world.replace_security(auth, tls);
    world.no_fast_producer_stall.store(
        new.no_fast_producer_stall,
        std::sync::atomic::Ordering::Relaxed,
    );
    // Wake every reader so it re-checks its binding now, not at its next message.
    let conns: Vec<_> = world.conn_list();
    for c in conns {
        c.recheck_auth();
    }
    Ok(())
}
