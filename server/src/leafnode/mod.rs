//! Leafnode remotes: this server dials its hubs (`leafnodes { remotes }`), fails over
//! across the URLs (its own and those the hub gossips), and reconnects forever with
//! back-off and jitter. Once linked, the link runs like an accepted one, as the spoke.

pub mod accept;

use crate::config::leafnode::Remote;
use crate::conn::{Kind, LeafFilters};
use crate::dial::{read_line, target, Target};
use crate::session::Start;
use crate::world::World;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// After a hub reports a loop, wait this long before trying again (as nats-server).
const LOOP_BACKOFF: Duration = Duration::from_secs(30);

pub fn start(world: Arc<World>) {
    let Some(l) = world.options.leafnodes.clone() else {
        return;
    };
    let delay = l.reconnect_delay.unwrap_or(Duration::from_secs(1));
    for (i, remote) in l.remotes.into_iter().enumerate() {
        if remote.disabled {
            continue;
        }
        tokio::spawn(solicit(world.clone(), remote, delay, i));
    }
}

async fn solicit(world: Arc<World>, remote: Remote, delay: Duration, index: usize) {
    let mut urls = remote.urls.clone();
    if !remote.no_randomize && urls.len() > 1 {
        let shift = rand::random::<u32>() as usize % urls.len();
        urls.rotate_left(shift);
    }
    // The config refuses a remote without URLs; a remote built some other way that
    // has none has nothing to dial.
    if urls.is_empty() {
        tracing::error!("Leafnode remote {index} has no URL: not dialling");
        return;
    }
    let mut attempt = 0usize;
    // Failed dials in a row, and whether the link ever stood: which errors are
    // reported at error level (connect_error_reports, reconnect_error_reports).
    let (mut failures, mut stood) = (0u64, false);
    loop {
        if world.shutdown.is_cancelled() {
            return;
        }
        let url = urls[attempt % urls.len()].clone();
        attempt += 1;
        let wait = match connect_once(&world, &remote, &url, &mut urls).await {
            Ok(outcome) => {
                (failures, stood) = (0, true);
                match outcome {
                    Outcome::LoopDetected => LOOP_BACKOFF,
                    Outcome::Closed => delay,
                }
            }
            Err(e) => {
                failures += 1;
                let text = format!(
                    "Error trying to connect as leafnode to remote server {} (attempt {failures}, remote {index}): {}",
                    crate::log::redact_url(&url),
                    crate::log::redact_in(&format!("{e:#}"), &url)
                );
                if world.options.dial_error_reported(failures, stood) {
                    tracing::error!("{text}");
                } else {
                    tracing::debug!("{text}");
                }
                delay
            }
        };
        // Jitter spreads a fleet of leafs reconnecting to the same hub.
        let jitter =
            Duration::from_millis(rand::random::<u64>() % (wait.as_millis() as u64 / 5 + 1));
        tokio::select! {
            _ = tokio::time::sleep(wait + jitter) => {}
            _ = world.shutdown.cancelled() => return,
        }
    }
}

enum Outcome {
    Closed,
    LoopDetected,
}

/// The hub's stream once its INFO is read: plain or TLS-first.
type HubStream = tokio_util::either::Either<TcpStream, TlsClient>;

/// Dial the hub at `t`, start TLS first when the remote's tls says so, and read its
/// INFO; a client port (or anything else that is not a leafnode port) is refused.
async fn dial_hub(
    world: &World,
    remote: &Remote,
    t: &Target,
) -> anyhow::Result<(HubStream, std::net::SocketAddr, serde_json::Value)> {
    use anyhow::{anyhow, Context};
    // The remote's dial_timeout, else the leafnodes block's, else 1 s (nats-server's).
    let dial = remote
        .dial_timeout
        .or_else(|| {
            world
                .options
                .leafnodes
                .as_ref()
                .and_then(|l| l.dial_timeout)
        })
        .unwrap_or(Duration::from_secs(1));
    let stream = tokio::time::timeout(dial, TcpStream::connect(&t.host_port))
        .await
        .map_err(|_| anyhow!("dial timeout"))?
        .context("dial")?;
    let _ = stream.set_nodelay(true);
    let addr = stream.peer_addr()?;
    // `handshake_first` in the remote's tls block: TLS from the first byte, the hub's
    // INFO inside it (the hub's leafnodes tls must say the same).
    let tls_first = remote
        .tls
        .as_ref()
        .is_some_and(|x| x.handshake_first == crate::config::tls::HandshakeFirst::On);
    let mut stream: HubStream = if tls_first {
        tokio_util::either::Either::Right(tls_connect(remote, t, stream).await?)
    } else {
        tokio_util::either::Either::Left(stream)
    };
    let first = remote.first_info_timeout.unwrap_or(Duration::from_secs(1));
    let line = tokio::time::timeout(first, read_line(&mut stream))
        .await
        .map_err(|_| anyhow!("no INFO from the hub within {first:?}"))??;
    let info: serde_json::Value = line
        .strip_prefix("INFO ")
        .and_then(|j| serde_json::from_str(j.trim()).ok())
        .ok_or_else(|| anyhow!("the hub did not start with INFO"))?;
    // A client port's INFO names the client's address (client_ip) and no leafnode
    // URLs; a leafnode port's has leafnode_urls, or neither with `no_advertise`.
    let client_port = info.get("client_ip").is_some() && info.get("leafnode_urls").is_none();
    if client_port || info["client_id"].as_u64().unwrap_or(0) == 0 {
        return Err(anyhow!(
            "attempted to connect to wrong port (not a leafnode port)"
        ));
    }
    Ok((stream, addr, info))
}

/// The hub's `leafnode_urls` join the URLs this remote fails over across.
fn learn_urls(remote: &Remote, t: &Target, info: &serde_json::Value, urls: &mut Vec<String>) {
    if remote.ignore_discovered_servers {
        return;
    }
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

/// The CONNECT this leaf sends: who it is, the local account, and its credentials
/// (the URL's user and password, or the remote's nkey signing the INFO's nonce).
fn connect_json(
    world: &World,
    remote: &Remote,
    t: &Target,
    info: &serde_json::Value,
    local: &str,
) -> anyhow::Result<serde_json::Value> {
    use anyhow::anyhow;
    let name = world.info().server_name;
    let mut connect = serde_json::json!({
        "version": crate::world::NATS_VERSION,
        "server_id": world.server_id,
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
    if let Some(seed) = &remote.nkey {
        // The leaf user's key signs the nonce of this connection's INFO.
        let key = nkeys::KeyPair::from_seed(seed).map_err(|e| anyhow!("remote nkey: {e}"))?;
        let nonce = info["nonce"].as_str().unwrap_or_default();
        let sig = key
            .sign(nonce.as_bytes())
            .map_err(|e| anyhow!("remote nkey: {e}"))?;
        use base64::Engine;
        connect["nkey"] = serde_json::json!(key.public_key());
        connect["sig"] =
            serde_json::json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig));
    }
    Ok(connect)
}

async fn connect_once(
    world: &Arc<World>,
    remote: &Remote,
    url: &str,
    urls: &mut Vec<String>,
) -> anyhow::Result<Outcome> {
    use anyhow::anyhow;
    let t = target(url).ok_or_else(|| anyhow!("bad url"))?;
    let (stream, addr, info) = dial_hub(world, remote, &t).await?;
    learn_urls(remote, &t, &info, urls);
    let local = remote.account.clone().unwrap_or_else(|| "$G".into());
    let account = world
        .accounts
        .read()
        .get(&local)
        .cloned()
        .ok_or_else(|| anyhow!("local account {local} is not defined"))?;
    let connect = connect_json(world, remote, &t, &info, &local)?;
    let conn = world.new_conn(
        addr,
        Kind::spoke(LeafFilters {
            deny_imports: remote.deny_imports.clone(),
            deny_exports: remote.deny_exports.clone(),
        }),
    );
    let cid = conn.cid;
    conn.headers
        .store(info["headers"].as_bool().unwrap_or(true), Ordering::Relaxed);
    if let Some(link) = conn.leaf_link() {
        *link.name.lock() = info["server_name"].as_str().map(str::to_string);
    }
    conn.bind_account(&account.name);
    world.admit(&conn);
    tracing::info!("{addr} - lid:{cid} - Leafnode connection created for account: {local}");
    let use_tls = remote.tls.is_some()
        || url.starts_with("tls://")
        || info["tls_required"].as_bool() == Some(true);
    // No INFO echo: sending CONNECT straight after the hub's INFO keeps the link
    // uncompressed with every official hub.
    let connect_line = format!("CONNECT {connect}\r\n");
    let mut stream = match stream {
        tokio_util::either::Either::Left(plain) if use_tls => {
            match tls_connect(remote, &t, plain).await {
                Ok(tls) => tokio_util::either::Either::Right(tls),
                Err(e) => {
                    world.forget(cid);
                    return Err(e);
                }
            }
        }
        other => other,
    };
    if let Err(e) = stream.write_all(connect_line.as_bytes()).await {
        // Never left in the connection table: the link did not start.
        world.forget(cid);
        return Err(e.into());
    }
    let (rd, wr) = tokio::io::split(stream);
    crate::session::send_interest_snapshot(world, &conn, &account);
    conn.send(b"PING\r\n");
    let start = Box::new(Start {
        connected: true,
        binding: Some(crate::auth::Binding {
            account,
            permissions: None,
            user: t.user.clone(),
        }),
        ..Start::default()
    });
    crate::session::run::<crate::session::LeafOps, _, _>(
        world.clone(),
        conn.clone(),
        rd,
        wr,
        start,
    )
    .await;
    let reason = conn.close_reason().unwrap_or("Client Closed");
    tracing::info!("{addr} - lid:{cid} - Leafnode connection closed: {reason}");
    let looped = conn
        .leaf_link()
        .is_some_and(|l| l.loop_detected.load(Ordering::Relaxed));
    Ok(if looped {
        Outcome::LoopDetected
    } else {
        Outcome::Closed
    })
}

/// The hub's first line (INFO), read byte by byte so nothing past it is consumed
/// before a TLS handshake.
type TlsClient = tokio_rustls::client::TlsStream<TcpStream>;

/// The TLS client handshake of a remote: the hub is verified against the remote's
/// ca_file and the URL's host name.
async fn tls_connect(remote: &Remote, t: &Target, stream: TcpStream) -> anyhow::Result<TlsClient> {
    use anyhow::anyhow;
    let config = crate::tls::client_config(remote.tls.as_ref())?;
    let name = crate::dial::server_name(&t.host_port)?;
    let timeout = remote
        .tls
        .as_ref()
        .and_then(|t| t.timeout)
        .unwrap_or(Duration::from_secs(2));
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
        Ok(Ok(s)) => {
            // pinned_certs hold on links this server dials too (nats-server checks only
            // the ones it accepts): a hub whose certificate is not pinned is not joined.
            let pins = remote.tls.as_ref().map_or(&[][..], |t| &t.pinned_certs[..]);
            crate::tls::check_pins(pins, s.get_ref().1.peer_certificates())
                .map_err(|why| anyhow!("TLS leafnode handshake error: {why}"))?;
            Ok(s)
        }
        Ok(Err(e)) => Err(anyhow!("TLS leafnode handshake error (this leaf rejected the hub, or the hub rejected this leaf): {e}")),
        Err(_) => Err(anyhow!("TLS leafnode handshake timeout")),
    }
}
