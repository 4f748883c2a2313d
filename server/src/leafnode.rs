//! Leafnode remotes: this server dials its hubs (`leafnodes { remotes }`), fails over
//! across the URLs (its own and those the hub gossips), and reconnects forever with
//! back-off and jitter. Once linked, the link runs like an accepted one, as the spoke.

use crate::config::leafnode::Remote;
use crate::conn::client::Client;
use crate::conn::{Conn, LeafFilters};
use crate::server::Shared;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// After a hub reports a loop, wait this long before trying again (as nats-server).
const LOOP_BACKOFF: Duration = Duration::from_secs(30);

struct Target {
    host_port: String,
    user: Option<String>,
    pass: Option<String>,
}

/// `nats-leaf://user:pass@host:port` → where to dial and which credentials to send.
fn target(url: &str) -> Option<Target> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, pass) = match userinfo.map(|u| {
        u.split_once(':')
            .map(|(a, b)| (a, Some(b)))
            .unwrap_or((u, None))
    }) {
        Some((u, p)) => (Some(u.to_string()), p.map(str::to_string)),
        None => (None, None),
    };
    let host_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:7422")
    };
    Some(Target {
        host_port,
        user,
        pass,
    })
}

pub fn start(shared: Arc<Shared>) {
    let Some(l) = shared.options.leafnodes.clone() else {
        return;
    };
    let delay = l.reconnect_delay.unwrap_or(Duration::from_secs(1));
    for (i, remote) in l.remotes.into_iter().enumerate() {
        if remote.disabled {
            continue;
        }
        tokio::spawn(solicit(shared.clone(), remote, delay, i));
    }
}

async fn solicit(shared: Arc<Shared>, remote: Remote, delay: Duration, index: usize) {
    let mut urls = remote.urls.clone();
    if !remote.no_randomize && urls.len() > 1 {
        let shift = rand::random::<u32>() as usize % urls.len();
        urls.rotate_left(shift);
    }
    let mut attempt = 0usize;
    loop {
        if shared.shutdown.is_cancelled() {
            return;
        }
        let url = urls[attempt % urls.len()].clone();
        attempt += 1;
        let wait = match connect_once(&shared, &remote, &url, &mut urls).await {
            Ok(Outcome::LoopDetected) => LOOP_BACKOFF,
            Ok(Outcome::Closed) => delay,
            Err(e) => {
                tracing::error!("Error trying to connect as leafnode to remote server {url} (remote {index}): {e}");
                delay
            }
        };
        // Jitter spreads a fleet of leafs reconnecting to the same hub.
        let jitter =
            Duration::from_millis(rand::random::<u64>() % (wait.as_millis() as u64 / 5 + 1));
        tokio::select! {
            _ = tokio::time::sleep(wait + jitter) => {}
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

enum Outcome {
    Closed,
    LoopDetected,
}

async fn connect_once(
    shared: &Arc<Shared>,
    remote: &Remote,
    url: &str,
    urls: &mut Vec<String>,
) -> anyhow::Result<Outcome> {
    use anyhow::{anyhow, Context};
    let t = target(url).ok_or_else(|| anyhow!("bad url"))?;
    let dial = remote.dial_timeout.unwrap_or(Duration::from_secs(2));
    let stream = tokio::time::timeout(dial, TcpStream::connect(&t.host_port))
        .await
        .map_err(|_| anyhow!("dial timeout"))?
        .context("dial")?;
    let _ = stream.set_nodelay(true);
    let addr = stream.peer_addr()?;
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = String::new();
    let first = remote.first_info_timeout.unwrap_or(Duration::from_secs(1));
    tokio::time::timeout(first, rd.read_line(&mut line))
        .await
        .map_err(|_| anyhow!("no INFO from the hub within {first:?}"))??;
    let info: serde_json::Value = line
        .strip_prefix("INFO ")
        .and_then(|j| serde_json::from_str(j.trim()).ok())
        .ok_or_else(|| anyhow!("the hub did not start with INFO"))?;
    if info.get("leafnode_urls").is_none() || info["client_id"].as_u64().unwrap_or(0) == 0 {
        return Err(anyhow!(
            "attempted to connect to wrong port (not a leafnode port)"
        ));
    }
    if info["tls_required"].as_bool() == Some(true) {
        return Err(anyhow!(
            "the hub requires TLS; TLS on leaf remotes is not served by this build yet"
        ));
    }
    if !remote.ignore_discovered_servers {
        for u in info["leafnode_urls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u.as_str())
        {
            let mut full = format!("nats-leaf://{u}");
            if let (Some(user), Some(pass)) = (&t.user, &t.pass) {
                full = format!("nats-leaf://{user}:{pass}@{u}");
            }
            if !urls
                .iter()
                .any(|x| target(x).is_some_and(|y| y.host_port == u))
            {
                urls.push(full);
            }
        }
    }
    let local = remote.account.clone().unwrap_or_else(|| "$G".into());
    let account = shared
        .accounts
        .read()
        .get(&local)
        .cloned()
        .ok_or_else(|| anyhow!("local account {local} is not defined"))?;
    let name = shared.info().server_name;
    let mut connect = serde_json::json!({
        "version": crate::server::NATS_VERSION,
        "server_id": shared.server_id,
        "name": name,
        "cluster": name,
        "headers": true,
        "remote_account": local,
        "protocol": 1,
    });
    if let Some(u) = &t.user {
        connect["user"] = serde_json::json!(u);
    }
    if let Some(p) = &t.pass {
        connect["pass"] = serde_json::json!(p);
    }
    // No INFO echo: sending CONNECT straight after the hub's INFO keeps the link
    // uncompressed with every official hub.
    wr.write_all(format!("CONNECT {connect}\r\n").as_bytes())
        .await?;

    let cid = shared.next_cid.fetch_add(1, Ordering::Relaxed) + 1;
    let conn = Arc::new(Conn::new(
        cid,
        addr,
        shared.options.max_pending as usize,
        shared.stats.clone(),
    ));
    conn.is_leaf.store(true, Ordering::Relaxed);
    conn.is_spoke.store(true, Ordering::Relaxed);
    conn.echo.store(false, Ordering::Relaxed);
    conn.headers
        .store(info["headers"].as_bool().unwrap_or(true), Ordering::Relaxed);
    *conn.leaf_name.lock() = info["server_name"].as_str().map(str::to_string);
    let _ = conn.leaf_filters.set(LeafFilters {
        deny_imports: remote.deny_imports.clone(),
        deny_exports: remote.deny_exports.clone(),
    });
    conn.bind_account(account.clone());
    shared.conns.lock().insert(cid, conn.clone());
    tracing::info!("{addr} - lid:{cid} - Leafnode connection created for account: {local}");
    let writer = tokio::spawn(crate::conn::writer(conn.clone(), wr, shared.liveness));
    crate::conn::leaf::send_interest_snapshot(shared, &conn, &account);
    conn.send(b"PING\r\n");
    let mut client = Client::new(shared.clone(), conn.clone(), String::new(), Vec::new());
    client.from_leaf = true;
    client.connected = true;
    client.binding = Some(crate::auth::Binding {
        account,
        permissions: None,
        user: t.user.clone(),
    });
    // Bytes the INFO read may have pulled in stay in the BufReader, which is the reader.
    client.leaf_read_loop(rd).await;
    client.cleanup();
    let _ = writer.await;
    let reason = conn.close_reason().unwrap_or("Client Closed");
    tracing::info!("{addr} - lid:{cid} - Leafnode connection closed: {reason}");
    Ok(if conn.loop_detected.load(Ordering::Relaxed) {
        Outcome::LoopDetected
    } else {
        Outcome::Closed
    })
}
