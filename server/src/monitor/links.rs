//! `/leafz` and `/routez`: the links, one entry each.
use super::connz::subject_list;
use super::format::{go_duration, rfc3339, uptime};
use crate::conn::Conn;
use crate::world::World;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// `/leafz`: every accepted leaf link (`subs=1` adds its interest, `acc=` filters).
pub fn leafz(world: &World, subs: bool, acc: Option<&str>) -> Value {
    let mut conns: Vec<Arc<Conn>> = world
        .conn_list()
        .into_iter()
        .filter(|c| c.is_leaf() && c.account_name().is_some())
        .collect();
    conns.sort_by_key(|c| c.cid);
    let leafs: Vec<Value> = conns
        .iter()
        .filter(|c| acc.is_none_or(|a| c.account_name() == Some(a)))
        .map(|c| {
            let mut v = json!({
                "id": c.cid,
                "name": c.leaf_link().and_then(|l| l.name.lock().clone()).unwrap_or_default(),
                "is_spoke": false,
                "account": c.account_name().unwrap_or_default().to_string(),
                "ip": c.addr.ip().to_string(),
                "port": c.addr.port(),
                "rtt": go_duration(Duration::from_nanos(c.rtt_nanos.load(Ordering::Relaxed))),
                "in_msgs": c.stats.in_msgs.load(Ordering::Relaxed),
                "out_msgs": c.stats.out_msgs.load(Ordering::Relaxed),
                "in_bytes": c.stats.in_bytes.load(Ordering::Relaxed),
                "out_bytes": c.stats.out_bytes.load(Ordering::Relaxed),
                "subscriptions": c.subs.lock().len(),
                "compression": "off",
            });
            if subs {
                v["subscriptions_list"] = json!(subject_list(c));
            }
            v
        })
        .collect();
    json!({"server_id": world.server_id, "now": rfc3339(SystemTime::now()), "leafnodes": leafs.len(), "leafs": leafs})
}

/// Leaf links that have logged in (bound an account): one that has only opened the
/// port is not a leafnode yet, as nats-server counts them.
pub fn leaf_count(world: &World) -> usize {
    world
        .conn_list()
        .iter()
        .filter(|c| c.is_leaf() && c.account_name().is_some())
        .count()
}

/// `/routez` (and `$SYS.REQ.SERVER.PING.ROUTEZ`): one entry per route connection.
pub fn routez(world: &World, subs: bool) -> serde_json::Value {
    let now = std::time::SystemTime::now();
    let mut routes: Vec<Arc<Conn>> = world.cluster.routes.read().clone();
    routes.sort_by_key(|c| c.cid);
    let list: Vec<serde_json::Value> = routes
        .iter()
        .map(|c| {
            let peer = c.route_peer();
            let last = std::time::SystemTime::UNIX_EPOCH
                + Duration::from_nanos(c.last_activity.load(Ordering::Relaxed));
            let mut v = serde_json::json!({
                "rid": c.cid,
                "remote_id": peer.as_ref().map(|p| p.server_id.clone()).unwrap_or_default(),
                "remote_name": peer.as_ref().map(|p| p.server_name.clone()).unwrap_or_default(),
                "did_solicit": peer.as_ref().is_some_and(|p| p.solicited),
                "is_configured": peer.as_ref().is_some_and(|p| p.configured),
                "ip": c.addr.ip().to_string(),
                "port": c.addr.port(),
                "start": rfc3339(c.started),
                "last_activity": rfc3339(last),
                "rtt": go_duration(Duration::from_nanos(c.rtt_nanos.load(Ordering::Relaxed))),
                "uptime": uptime(c.started),
                "idle": go_duration(Duration::from_secs(now.duration_since(last).unwrap_or_default().as_secs())),
                "pending_size": c.pending_bytes(),
                "in_msgs": c.stats.in_msgs.load(Ordering::Relaxed),
                "out_msgs": c.stats.out_msgs.load(Ordering::Relaxed),
                "in_bytes": c.stats.in_bytes.load(Ordering::Relaxed),
                "out_bytes": c.stats.out_bytes.load(Ordering::Relaxed),
                "subscriptions": c.subs.lock().len(),
                "compression": "off",
            });
            if subs {
                let list: Vec<String> = c.subs.lock().values().map(|s| s.subject.to_string()).collect();
                v["subscriptions_list"] = serde_json::json!(list);
            }
            v
        })
        .collect();
    serde_json::json!({
        "server_id": world.server_id,
        "server_name": world.info().server_name,
        "now": rfc3339(now),
        "num_routes": list.len(),
        "routes": list,
    })
}
