//! `/connz`: live connections and the ring of closed ones, with every query option.
use super::format::{go_duration, rfc3339, uptime};
use crate::conn::Conn;
use crate::world::World;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn conn_json(c: &Arc<Conn>, now: SystemTime) -> Value {
    let meta = c.meta.lock().clone();
    let last =
        SystemTime::UNIX_EPOCH + Duration::from_nanos(c.last_activity.load(Ordering::Relaxed));
    let mut v = json!({
        "cid": c.cid,
        "kind": if c.is_leaf() { "Leafnode" } else { "Client" },
        "type": "nats",
        "ip": c.addr.ip().to_string(),
        "port": c.addr.port(),
        "start": rfc3339(c.started),
        "last_activity": rfc3339(last),
        "uptime": uptime(c.started),
        "idle": go_duration(Duration::from_secs(now.duration_since(last).unwrap_or_default().as_secs())),
        "pending_bytes": c.pending_bytes(),
        "in_msgs": c.stats.in_msgs.load(Ordering::Relaxed),
        "out_msgs": c.stats.out_msgs.load(Ordering::Relaxed),
        "in_bytes": c.stats.in_bytes.load(Ordering::Relaxed),
        "out_bytes": c.stats.out_bytes.load(Ordering::Relaxed),
        "subscriptions": c.subs.lock().len(),
        "rtt": go_duration(Duration::from_nanos(c.rtt_nanos.load(Ordering::Relaxed))),
    });
    let obj = v.as_object_mut().expect("json object");
    // Times this connection was held back as a producer (omitted at 0, as nats-server does).
    let stalls = c.stalls.load(Ordering::Relaxed);
    if stalls > 0 {
        obj.insert("stalls".into(), json!(stalls));
    }
    for (k, val) in [
        ("name", meta.name),
        ("lang", meta.lang),
        ("version", meta.version),
    ] {
        if let Some(val) = val {
            obj.insert(k.into(), json!(val));
        }
    }
    v
}

/// The subjects a connection is subscribed to (`subscriptions_list`).
pub(super) fn subject_list(c: &Conn) -> Vec<String> {
    c.subs
        .lock()
        .values()
        .map(|s| s.subject.to_string())
        .collect()
}

/// One subscription as `subscriptions_list_detail` and `/subsz` show it.
pub(super) fn sub_detail(s: &crate::conn::Subscription, cid: u64) -> Value {
    let mut d = json!({
        "subject": s.subject.to_string(),
        "sid": String::from_utf8_lossy(&s.sid),
        "msgs": s.delivered.load(Ordering::Relaxed),
        "cid": cid,
    });
    if let Some(q) = &s.queue {
        d["qgroup"] = json!(q.to_string());
    }
    d
}

/// `/connz` options, as nats-server reads them from the query string.
pub struct ConnzQuery {
    pub sort: String,
    pub limit: usize,
    pub offset: usize,
    pub subs: Option<bool>,
    pub state: String,
    pub auth: bool,
    pub cid: Option<u64>,
}

const CONNZ_SORTS: &[&str] = &[
    "cid",
    "start",
    "subs",
    "pending",
    "msgs_to",
    "msgs_from",
    "bytes_to",
    "bytes_from",
    "last",
    "idle",
    "uptime",
    "stop",
    "reason",
    "rtt",
];

pub(super) fn flag(p: &std::collections::HashMap<String, String>, k: &str) -> bool {
    p.get(k)
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

impl ConnzQuery {
    pub fn from_params(
        p: &std::collections::HashMap<String, String>,
    ) -> Result<ConnzQuery, String> {
        let sort = p
            .get("sort")
            .cloned()
            .unwrap_or_else(|| "cid".into())
            .to_ascii_lowercase();
        if !CONNZ_SORTS.contains(&sort.as_str()) {
            return Err(format!("invalid sorting option: {sort}"));
        }
        let state = p
            .get("state")
            .cloned()
            .unwrap_or_else(|| "open".into())
            .to_ascii_lowercase();
        if !["open", "closed", "all", "any"].contains(&state.as_str()) {
            return Err(format!(
                "Error decoding state for {}",
                p.get("state").cloned().unwrap_or_default()
            ));
        }
        if (sort == "stop" || sort == "reason") && state == "open" {
            return Err(format!(
                "options sort={sort} is only valid for closed connections"
            ));
        }
        // As nats-server: a limit below 1 is the default, an offset below 0 is 0.
        let num = |k: &str, d: usize| -> Result<usize, String> {
            Ok(match query_number::<i64>(p, k, "int")? {
                Some(n) if n > 0 || (n == 0 && k == "offset") => n as usize,
                _ => d,
            })
        };
        let subs = match p.get("subs").map(String::as_str) {
            Some("detail") => Some(true),
            Some(v) if v == "1" || v.eq_ignore_ascii_case("true") => Some(false),
            _ => None,
        };
        Ok(ConnzQuery {
            sort,
            limit: num("limit", 1024)?,
            offset: num("offset", 0)?,
            subs,
            state,
            auth: flag(p, "auth"),
            cid: query_number::<u64>(p, "cid", "uint64")?.filter(|&c| c > 0),
        })
    }
}

/// A query parameter as nats-server decodes a number of Go type `go_type` (`int` by
/// `strconv.Atoi`, `uint64` by `strconv.ParseUint`), with its error text; absent or
/// empty is `None`.
fn query_number<T: std::str::FromStr>(
    p: &std::collections::HashMap<String, String>,
    k: &str,
    go_type: &str,
) -> Result<Option<T>, String> {
    let parser = if go_type == "int" {
        "strconv.Atoi"
    } else {
        "strconv.ParseUint"
    };
    match p.get(k).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            format!("Error decoding {go_type} for '{k}': {parser}: parsing \"{v}\": invalid syntax")
        }),
    }
}

/// A snapshot of a connection for `/connz`, also kept when it closes.
pub fn conn_snapshot(c: &Arc<Conn>, now: SystemTime, subs: Option<bool>, auth: bool) -> Value {
    let mut v = conn_json(c, now);
    let obj = v.as_object_mut().expect("json object");
    match subs {
        Some(false) => {
            obj.insert("subscriptions_list".into(), json!(subject_list(c)));
        }
        Some(true) => {
            let list: Vec<Value> = c
                .subs
                .lock()
                .values()
                .map(|s| sub_detail(s, c.cid))
                .collect();
            obj.insert("subscriptions_list_detail".into(), json!(list));
        }
        None => {}
    }
    if auth {
        if let Some(u) = c.meta.lock().user.clone() {
            obj.insert("authorized_user".into(), json!(u));
        }
        if let Some(a) = c.account_name() {
            obj.insert("account".into(), json!(a));
            obj.insert("name_tag".into(), json!(a));
        }
    }
    v
}

fn sort_key(v: &Value, sort: &str) -> (i128, String) {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0) as i128;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match sort {
        "cid" => (n("cid"), String::new()),
        "start" => (0, s("start")),
        "subs" => (-n("subscriptions"), String::new()),
        "pending" => (-n("pending_bytes"), String::new()),
        "msgs_to" => (-n("out_msgs"), String::new()),
        "msgs_from" => (-n("in_msgs"), String::new()),
        "bytes_to" => (-n("out_bytes"), String::new()),
        "bytes_from" => (-n("in_bytes"), String::new()),
        // Most recent activity first; idle and uptime longest first.
        "last" => (0, s("last_activity")),
        "idle" => (0, s("last_activity")),
        "uptime" => (0, s("start")),
        "stop" => (0, s("stop")),
        "reason" => (0, s("reason")),
        _ => (n("cid"), String::new()),
    }
}

/// `/connz` with every query option.
pub fn connz_query(world: &World, q: &ConnzQuery) -> Value {
    let now = SystemTime::now();
    let mut all: Vec<Value> = Vec::new();
    if q.state != "closed" {
        let mut conns: Vec<Arc<Conn>> = world.conn_list();
        conns.sort_by_key(|c| c.cid);
        all.extend(conns.iter().map(|c| conn_snapshot(c, now, q.subs, q.auth)));
    }
    if q.state != "open" {
        all.extend(world.closed.lock().iter().cloned());
    }
    // One connection asked for by cid: nats-server pages it with a limit of 1.
    let limit = if q.cid.is_some() { 1 } else { q.limit };
    if let Some(cid) = q.cid {
        all.retain(|c| c.get("cid").and_then(Value::as_u64) == Some(cid));
    }
    all.sort_by_key(|v| sort_key(v, &q.sort));
    if q.sort == "last" {
        all.reverse();
    }
    let total = all.len();
    let page: Vec<Value> = all.into_iter().skip(q.offset).take(limit).collect();
    json!({
        "server_id": world.server_id,
        "now": rfc3339(now),
        "num_connections": page.len(),
        "total": total,
        "offset": q.offset,
        "limit": limit,
        "connections": page,
    })
}

/// Remember a closed connection for `/connz?state=closed` (bounded by max_closed_clients).
pub fn record_closed(world: &World, c: &Arc<Conn>) {
    let max = world.options.max_closed_clients.max(0) as usize;
    if max == 0 {
        return;
    }
    let now = SystemTime::now();
    let mut v = conn_snapshot(c, now, None, true);
    v["stop"] = json!(rfc3339(now));
    v["reason"] = json!(c.close_reason().unwrap_or("Client Closed"));
    let mut closed = world.closed.lock();
    if closed.len() >= max {
        closed.pop_front();
    }
    closed.push_back(v);
}
