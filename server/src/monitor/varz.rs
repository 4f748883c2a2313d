//! `/varz`, `/statsz` and the `server` header of `$SYS` answers.
use super::format::{cores, rfc3339, rss_bytes, uptime};
use super::links::leaf_count;
use crate::world::World;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

/// Messages and bytes in and out, over live and closed connections.
pub struct Totals {
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
}

pub fn totals(world: &World) -> Totals {
    let c = &world.stats.closed;
    let mut t = Totals {
        in_msgs: c.in_msgs.load(Ordering::Relaxed),
        in_bytes: c.in_bytes.load(Ordering::Relaxed),
        out_msgs: c.out_msgs.load(Ordering::Relaxed),
        out_bytes: c.out_bytes.load(Ordering::Relaxed),
    };
    let routes = crate::world::routes::route_conns(world);
    for conn in world.conn_list().iter().chain(routes.iter()) {
        t.in_msgs += conn.stats.in_msgs.load(Ordering::Relaxed);
        t.in_bytes += conn.stats.in_bytes.load(Ordering::Relaxed);
        t.out_msgs += conn.stats.out_msgs.load(Ordering::Relaxed);
        t.out_bytes += conn.stats.out_bytes.load(Ordering::Relaxed);
    }
    t
}

pub fn subscriptions_total(world: &World) -> u64 {
    world
        .accounts
        .read()
        .values()
        .map(|a| a.sublist.count())
        .sum()
}

/// `sha256:<hex>` of the config file, as nats-server reports it.
fn config_digest(world: &World) -> String {
    use sha2::{Digest, Sha256};
    world
        .options
        .config_file
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .map(|b| format!("sha256:{:x}", Sha256::digest(b)))
        .unwrap_or_default()
}

pub fn varz(world: &World) -> Value {
    let o = &world.options;
    let info = world.info();
    let t = totals(world);
    let now = SystemTime::now();
    json!({
        "server_id": world.server_id,
        "server_name": info.server_name,
        "version": info.version,
        "proto": info.proto,
        "git_commit": info.git_commit,
        "go": info.go,
        "host": o.host,
        "port": info.port,
        "auth_required": info.auth_required,
        "tls_required": info.tls_required,
        "tls_verify": info.tls_verify,
        "max_connections": o.max_connections,
        "ping_interval": o.ping_interval.as_nanos() as u64,
        "ping_max": o.ping_max,
        "http_host": o.http.as_ref().and_then(|h| h.host.clone()).unwrap_or_else(|| o.host.clone()),
        "http_port": o.http.as_ref().map(|h| h.port).unwrap_or(0),
        "http_base_path": o.http_base_path.clone().unwrap_or_default(),
        "tags": o.server_tags,
        "metadata": o.server_metadata.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "https_port": o.https.as_ref().map(|h| h.port).unwrap_or(0),
        "auth_timeout": world.auth().timeout.as_secs_f64(),
        "max_control_line": o.max_control_line,
        "max_payload": o.max_payload,
        "max_pending": o.max_pending,
        "cluster": varz_cluster(world),
        "connect_urls": info.connect_urls,
        "gateway": {},
        "leaf": varz_leaf(world),
        "mqtt": {},
        "websocket": {},
        "jetstream": {},
        "tls_timeout": world.tls().map(|t| t.timeout.as_secs_f64()).unwrap_or(2.0),
        "write_deadline": o.write_deadline.as_nanos() as u64,
        "start": rfc3339(world.started),
        "now": rfc3339(now),
        "uptime": uptime(world.started),
        "mem": rss_bytes(),
        "cores": cores(),
        "gomaxprocs": cores(),
        "cpu": 0,
        "connections": world.conn_count(),
        "total_connections": world.stats.total_connections.load(Ordering::Relaxed),
        "routes": crate::world::routes::counts(world).0,
        "remotes": crate::world::routes::counts(world).1,
                "leafnodes": leaf_count(world),
        "in_msgs": t.in_msgs,
        "out_msgs": t.out_msgs,
        "in_bytes": t.in_bytes,
        "out_bytes": t.out_bytes,
        // Only clients exist so far: client traffic is all traffic.
        "in_client_msgs": t.in_msgs,
        "out_client_msgs": t.out_msgs,
        "in_client_bytes": t.in_bytes,
        "out_client_bytes": t.out_bytes,
        "stalled_clients": world.stats.stalls.load(Ordering::Relaxed),
        "config_load_time": rfc3339(world.started),
        "config_digest": config_digest(world),
        "disk_io_wait_stats": {"waiters": 0, "waits": 0, "wait_time": 0, "max_wait_time": 0},
        // The official server's JetStream feature switches: none is on here.
        "feature_flags": {"js_ack_fc_v2": false, "js_api_reply_v2": false, "js_raft_delete_range": false, "js_snapshot_sources": false},
        "slow_consumers": world.stats.slow_consumers.load(Ordering::Relaxed),
        "stale_connections": world.stats.stale_connections.load(Ordering::Relaxed),
        "subscriptions": subscriptions_total(world),
                "system_account": world.system_account,
        "http_req_stats": world.http_req_stats.lock().clone(),
        "slow_consumer_stats": {
            "clients": world.stats.slow_consumer_clients.load(Ordering::Relaxed),
            "routes": world.stats.slow_consumer_routes.load(Ordering::Relaxed),
            "gateways": 0,
            "leafs": world.stats.slow_consumer_leafs.load(Ordering::Relaxed),
        },
        "stale_connection_stats": {"clients": world.stats.stale_connections.load(Ordering::Relaxed), "routes": 0, "gateways": 0, "leafs": 0},
    })
}

/// `/varz` `leaf`: the leafnode listener, as nats-server shows it.
fn varz_leaf(world: &World) -> Value {
    let Some(l) = world.options.leafnodes.as_ref() else {
        return json!({});
    };
    let mut v = json!({});
    if l.port.is_some() {
        v = json!({
            "host": l.host.clone().unwrap_or_else(|| world.options.host.clone()),
            "port": world.leaf_port.load(Ordering::Relaxed),
            "auth_timeout": l.authorization.as_ref().and_then(|a| a.timeout).unwrap_or(Duration::from_secs(2)).as_secs_f64(),
            "tls_timeout": world.leaf_tls.as_ref().map_or(2.0, |t| t.timeout.as_secs_f64()),
        });
    }
    if !l.remotes.is_empty() {
        v["remotes"] = json!(l
            .remotes
            .iter()
            .map(|r| {
                // Host and port only: a URL's credentials never reach monitoring.
                let urls: Vec<String> = r
                    .urls
                    .iter()
                    .filter_map(|u| crate::dial::target_with_port(u, 7422).map(|t| t.host_port))
                    .collect();
                json!({"local_account": r.account.clone().unwrap_or_else(|| "$G".into()), "urls": urls})
            })
            .collect::<Vec<_>>());
    }
    v
}

/// `/varz` `cluster`: {} without a cluster, as nats-server.
pub fn varz_cluster(world: &World) -> serde_json::Value {
    let Some(c) = world.options.cluster.as_ref() else {
        return serde_json::json!({});
    };
    let mut v = serde_json::json!({
        "name": world.cluster.name,
        "addr": c.host.clone().unwrap_or_else(|| world.options.host.clone()),
        "cluster_port": world.cluster.port.load(Ordering::Relaxed),
        "auth_timeout": c.authorization.as_ref().and_then(|a| a.timeout).unwrap_or(Duration::from_secs(2)).as_secs_f64(),
        "tls_timeout": world.cluster.server_tls.get().map_or(2.0, |t| t.timeout.as_secs_f64()),
        "pool_size": -1,
    });
    if !c.routes.is_empty() {
        v["urls"] = serde_json::json!(c
            .routes
            .iter()
            .filter_map(|u| crate::dial::target_with_port(u, 6222).map(|t| t.host_port))
            .collect::<Vec<_>>());
    }
    if let Some(t) = world.cluster.server_tls.get() {
        v["tls_required"] = serde_json::json!(true);
        v["tls_verify"] = serde_json::json!(t.verify);
    }
    v
}

/// The `server` object that heads every `$SYS` response.
pub fn server_header(world: &World, seq: u64) -> Value {
    let info = world.info();
    json!({
        "name": info.server_name,
        "host": world.options.host,
        "id": world.server_id,
        "ver": info.version,
        "jetstream": false,
        "flags": 0,
        "seq": seq,
        "time": rfc3339(SystemTime::now()),
    })
}

pub fn statsz(world: &World) -> Value {
    let t = totals(world);
    json!({
        "start": rfc3339(world.started),
        "mem": rss_bytes(),
        "cores": cores(),
        "cpu": 0,
        "connections": world.conn_count(),
        "total_connections": world.stats.total_connections.load(Ordering::Relaxed),
        "active_accounts": world.accounts.read().values().filter(|a| a.sublist.count() > 0).count(),
        "subscriptions": subscriptions_total(world),
        "sent": {"msgs": t.out_msgs, "bytes": t.out_bytes},
        "received": {"msgs": t.in_msgs, "bytes": t.in_bytes},
        "slow_consumers": world.stats.slow_consumers.load(Ordering::Relaxed),
        "active_servers": 1,
    })
}
