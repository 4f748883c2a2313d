//! The monitoring documents — varz, connz, statsz — with nats-server's JSON field
//! names and types. They are served over `$SYS` requests today and are the bodies
//! the HTTP endpoints will serve (issue #5).

use crate::conn::Conn;
use crate::server::Shared;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// RFC 3339 with nanoseconds, UTC, as Go prints `time.Time` in JSON.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Go's `Duration.String()` shape for the ranges monitoring shows: `36s`, `1m2s`,
/// `1h0m5s`, `13.234ms`, `273µs`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return trim(format!("{:.3}", nanos as f64 / 1e3)) + "µs";
    }
    if nanos < 1_000_000_000 {
        return trim(format!("{:.6}", nanos as f64 / 1e6)) + "ms";
    }
    let secs = d.as_secs();
    let frac = d.subsec_nanos();
    let s = if frac == 0 {
        format!("{}", secs % 60)
    } else {
        trim(format!("{}.{:09}", secs % 60, frac))
    };
    match (secs / 3600, (secs / 60) % 60) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Whole-second uptime, as `/varz` shows it (`36s`, `1h2m3s`).
pub fn uptime(since: SystemTime) -> String {
    let d = SystemTime::now().duration_since(since).unwrap_or_default();
    go_duration(Duration::from_secs(d.as_secs()))
}

pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Messages and bytes in and out, over live and closed connections.
pub struct Totals {
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
}

pub fn totals(shared: &Shared) -> Totals {
    let c = &shared.stats.closed;
    let mut t = Totals {
        in_msgs: c.in_msgs.load(Ordering::Relaxed),
        in_bytes: c.in_bytes.load(Ordering::Relaxed),
        out_msgs: c.out_msgs.load(Ordering::Relaxed),
        out_bytes: c.out_bytes.load(Ordering::Relaxed),
    };
    let routes = crate::route::route_conns(shared);
    for conn in shared.conns.lock().values().chain(routes.iter()) {
        t.in_msgs += conn.stats.in_msgs.load(Ordering::Relaxed);
        t.in_bytes += conn.stats.in_bytes.load(Ordering::Relaxed);
        t.out_msgs += conn.stats.out_msgs.load(Ordering::Relaxed);
        t.out_bytes += conn.stats.out_bytes.load(Ordering::Relaxed);
    }
    t
}

pub fn subscriptions_total(shared: &Shared) -> u64 {
    shared
        .accounts
        .read()
        .values()
        .map(|a| a.sublist.count())
        .sum()
}

/// `sha256:<hex>` of the config file, as nats-server reports it.
fn config_digest(shared: &Shared) -> String {
    use sha2::{Digest, Sha256};
    shared
        .options
        .config_file
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .map(|b| format!("sha256:{:x}", Sha256::digest(b)))
        .unwrap_or_default()
}

pub fn varz(shared: &Shared) -> Value {
    let o = &shared.options;
    let info = shared.info();
    let t = totals(shared);
    let now = SystemTime::now();
    json!({
        "server_id": shared.server_id,
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
        "auth_timeout": shared.auth().timeout.as_secs_f64(),
        "max_control_line": o.max_control_line,
        "max_payload": o.max_payload,
        "max_pending": o.max_pending,
        "cluster": crate::route::varz_cluster(shared),
        "connect_urls": info.connect_urls,
        "gateway": {},
        "leaf": varz_leaf(shared),
        "mqtt": {},
        "websocket": {},
        "jetstream": {},
        "tls_timeout": shared.tls().map(|t| t.timeout.as_secs_f64()).unwrap_or(2.0),
        "write_deadline": o.write_deadline.as_nanos() as u64,
        "start": rfc3339(shared.started),
        "now": rfc3339(now),
        "uptime": uptime(shared.started),
        "mem": rss_bytes(),
        "cores": cores(),
        "gomaxprocs": cores(),
        "cpu": 0,
        "connections": shared.conns.lock().len(),
        "total_connections": shared.stats.total_connections.load(Ordering::Relaxed),
        "routes": crate::route::counts(shared).0,
        "remotes": crate::route::counts(shared).1,
                "leafnodes": leaf_count(shared),
        "in_msgs": t.in_msgs,
        "out_msgs": t.out_msgs,
        "in_bytes": t.in_bytes,
        "out_bytes": t.out_bytes,
        // Only clients exist so far: client traffic is all traffic.
        "in_client_msgs": t.in_msgs,
        "out_client_msgs": t.out_msgs,
        "in_client_bytes": t.in_bytes,
        "out_client_bytes": t.out_bytes,
        "stalled_clients": shared.stats.stalls.load(Ordering::Relaxed),
        "config_load_time": rfc3339(shared.started),
        "config_digest": config_digest(shared),
        "disk_io_wait_stats": {"waiters": 0, "waits": 0, "wait_time": 0, "max_wait_time": 0},
        // The official server's JetStream feature switches: none is on here.
        "feature_flags": {"js_ack_fc_v2": false, "js_api_reply_v2": false, "js_raft_delete_range": false, "js_snapshot_sources": false},
        "slow_consumers": shared.stats.slow_consumers.load(Ordering::Relaxed),
        "stale_connections": shared.stats.stale_connections.load(Ordering::Relaxed),
        "subscriptions": subscriptions_total(shared),
                "system_account": shared.system_account,
        "http_req_stats": shared.http_req_stats.lock().clone(),
        "slow_consumer_stats": {
            "clients": shared.stats.slow_consumer_clients.load(Ordering::Relaxed),
            "routes": shared.stats.slow_consumer_routes.load(Ordering::Relaxed),
            "gateways": 0,
            "leafs": shared.stats.slow_consumer_leafs.load(Ordering::Relaxed),
        },
        "stale_connection_stats": {"clients": shared.stats.stale_connections.load(Ordering::Relaxed), "routes": 0, "gateways": 0, "leafs": 0},
    })
}

/// `/varz` `leaf`: the leafnode listener, as nats-server shows it.
fn varz_leaf(shared: &Shared) -> Value {
    let Some(l) = shared.options.leafnodes.as_ref() else {
        return json!({});
    };
    let mut v = json!({});
    if l.port.is_some() {
        v = json!({
            "host": l.host.clone().unwrap_or_else(|| shared.options.host.clone()),
            "port": shared.leaf_port.load(Ordering::Relaxed),
            "auth_timeout": l.authorization.as_ref().and_then(|a| a.timeout).unwrap_or(Duration::from_secs(2)).as_secs_f64(),
            "tls_timeout": shared.leaf_tls.as_ref().map_or(2.0, |t| t.timeout.as_secs_f64()),
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
                    .filter_map(|u| crate::leafnode::target_with_port(u, 7422).map(|t| t.host_port))
                    .collect();
                json!({"local_account": r.account.clone().unwrap_or_else(|| "$G".into()), "urls": urls})
            })
            .collect::<Vec<_>>());
    }
    v
}

fn conn_json(c: &Arc<Conn>, now: SystemTime) -> Value {
    let meta = c.meta.lock().clone();
    let last =
        SystemTime::UNIX_EPOCH + Duration::from_nanos(c.last_activity.load(Ordering::Relaxed));
    let mut v = json!({
        "cid": c.cid,
        "kind": if c.leaf() { "Leafnode" } else { "Client" },
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
fn subject_list(c: &Conn) -> Vec<String> {
    c.subs
        .lock()
        .values()
        .map(|s| s.subject.to_string())
        .collect()
}

/// One subscription as `subscriptions_list_detail` and `/subsz` show it.
fn sub_detail(s: &crate::conn::Subscription, cid: u64) -> Value {
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

/// The `server` object that heads every `$SYS` response.
pub fn server_header(shared: &Shared, seq: u64) -> Value {
    let info = shared.info();
    json!({
        "name": info.server_name,
        "host": shared.options.host,
        "id": shared.server_id,
        "ver": info.version,
        "jetstream": false,
        "flags": 0,
        "seq": seq,
        "time": rfc3339(SystemTime::now()),
    })
}

pub fn statsz(shared: &Shared) -> Value {
    let t = totals(shared);
    json!({
        "start": rfc3339(shared.started),
        "mem": rss_bytes(),
        "cores": cores(),
        "cpu": 0,
        "connections": shared.conns.lock().len(),
        "total_connections": shared.stats.total_connections.load(Ordering::Relaxed),
        "active_accounts": shared.accounts.read().values().filter(|a| a.sublist.count() > 0).count(),
        "subscriptions": subscriptions_total(shared),
        "sent": {"msgs": t.out_msgs, "bytes": t.out_bytes},
        "received": {"msgs": t.in_msgs, "bytes": t.in_bytes},
        "slow_consumers": shared.stats.slow_consumers.load(Ordering::Relaxed),
        "active_servers": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_secs(36)), "36s");
        assert_eq!(go_duration(Duration::from_secs(62)), "1m2s");
        assert_eq!(go_duration(Duration::from_secs(3605)), "1h0m5s");
        assert_eq!(go_duration(Duration::from_micros(273)), "273µs");
        assert_eq!(go_duration(Duration::from_nanos(13_234_098)), "13.234098ms");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }
}

pub mod http;
pub mod metrics;
pub mod probe;

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

fn flag(p: &std::collections::HashMap<String, String>, k: &str) -> bool {
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
        if let Some(a) = c.account() {
            obj.insert("account".into(), json!(a.name));
            obj.insert("name_tag".into(), json!(a.name));
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
pub fn connz_query(shared: &Shared, q: &ConnzQuery) -> Value {
    let now = SystemTime::now();
    let mut all: Vec<Value> = Vec::new();
    if q.state != "closed" {
        let mut conns: Vec<Arc<Conn>> = shared.conns.lock().values().cloned().collect();
        conns.sort_by_key(|c| c.cid);
        all.extend(conns.iter().map(|c| conn_snapshot(c, now, q.subs, q.auth)));
    }
    if q.state != "open" {
        all.extend(shared.closed.lock().iter().cloned());
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
        "server_id": shared.server_id,
        "now": rfc3339(now),
        "num_connections": page.len(),
        "total": total,
        "offset": q.offset,
        "limit": limit,
        "connections": page,
    })
}

/// Remember a closed connection for `/connz?state=closed` (bounded by max_closed_clients).
pub fn record_closed(shared: &Shared, c: &Arc<Conn>) {
    let max = shared.options.max_closed_clients.max(0) as usize;
    if max == 0 {
        return;
    }
    let now = SystemTime::now();
    let mut v = conn_snapshot(c, now, None, true);
    v["stop"] = json!(rfc3339(now));
    v["reason"] = json!(c.close_reason().unwrap_or("Client Closed"));
    let mut closed = shared.closed.lock();
    if closed.len() >= max {
        closed.pop_front();
    }
    closed.push_back(v);
}

/// `/leafz`: every accepted leaf link (`subs=1` adds its interest, `acc=` filters).
pub fn leafz(shared: &Shared, subs: bool, acc: Option<&str>) -> Value {
    let mut conns: Vec<Arc<Conn>> = shared
        .conns
        .lock()
        .values()
        .filter(|c| c.leaf() && c.account().is_some())
        .cloned()
        .collect();
    conns.sort_by_key(|c| c.cid);
    let leafs: Vec<Value> = conns
        .iter()
        .filter(|c| acc.is_none_or(|a| c.account().is_some_and(|x| x.name == a)))
        .map(|c| {
            let mut v = json!({
                "id": c.cid,
                "name": c.leaf_name.lock().clone().unwrap_or_default(),
                "is_spoke": false,
                "account": c.account().map(|a| a.name.clone()).unwrap_or_default(),
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
    json!({"server_id": shared.server_id, "now": rfc3339(SystemTime::now()), "leafnodes": leafs.len(), "leafs": leafs})
}

/// Leaf links that have logged in (bound an account): one that has only opened the
/// port is not a leafnode yet, as nats-server counts them.
pub fn leaf_count(shared: &Shared) -> usize {
    shared
        .conns
        .lock()
        .values()
        .filter(|c| c.leaf() && c.account().is_some())
        .count()
}

/// `/subsz`: sublist statistics and, with `subs=1`, the subscriptions (`test=` filters
/// those a subject would reach; `acc=` one account).
pub fn subsz(
    shared: &Shared,
    p: &std::collections::HashMap<String, String>,
) -> Result<Value, String> {
    let accounts = shared.accounts.read();
    let (mut inserts, mut removes, mut matches, mut count) = (0, 0, 0, 0);
    for a in accounts.values() {
        let (i, r, m) = a.sublist.stats();
        inserts += i;
        removes += r;
        matches += m;
        count += a.sublist.count();
    }
    drop(accounts);
    let offset: usize = p
        .get("offset")
        .map(|v| {
            v.parse()
                .map_err(|_| format!("Error decoding offset for {v}"))
        })
        .transpose()?
        .unwrap_or(0);
    let limit: usize = p
        .get("limit")
        .map(|v| {
            v.parse()
                .map_err(|_| format!("Error decoding limit for {v}"))
        })
        .transpose()?
        .unwrap_or(1024);
    let test = p.get("test").cloned();
    if let Some(t) = &test {
        if !crate::subject::is_valid_publish(t.as_bytes()) {
            return Err(format!(
                "Invalid test subject, must be valid publish subject: {t}"
            ));
        }
    }
    let acc = p.get("acc").cloned();
    let mut list: Vec<Value> = Vec::new();
    let mut fanouts: Vec<usize> = Vec::new();
    let conns: Vec<Arc<Conn>> = shared.conns.lock().values().cloned().collect();
    for c in &conns {
        let account = c.account().map(|a| a.name.clone()).unwrap_or_default();
        if acc.as_ref().is_some_and(|a| *a != account) {
            continue;
        }
        for s in c.subs.lock().values() {
            if test
                .as_ref()
                .is_some_and(|t| !crate::subject::matches(s.subject.as_bytes(), t.as_bytes()))
            {
                continue;
            }
            let mut d = sub_detail(s, c.cid);
            d["account"] = json!(account);
            d["account_tag"] = json!(account);
            list.push(d);
        }
        fanouts.push(c.subs.lock().len());
    }
    let total = list.len();
    let mut v = json!({
        "server_id": shared.server_id,
        "now": rfc3339(SystemTime::now()),
        "num_subscriptions": count,
        "num_cache": 0,
        "num_inserts": inserts,
        "num_removes": removes,
        "num_matches": matches,
        "cache_hit_rate": 0.0,
        "max_fanout": fanouts.iter().max().copied().unwrap_or(0),
        "avg_fanout": if fanouts.is_empty() { 0.0 } else { fanouts.iter().sum::<usize>() as f64 / fanouts.len() as f64 },
        "total": total,
        "offset": offset,
        "limit": limit,
    });
    if flag(p, "subs") || test.is_some() {
        v["subscriptions_list"] = json!(list
            .into_iter()
            .skip(offset)
            .take(limit)
            .collect::<Vec<_>>());
    }
    Ok(v)
}

/// `/accountz`: the account names, or one account's detail with `acc=` (an account
/// that does not exist is a bad request, as in nats-server).
pub fn accountz(shared: &Shared, acc: Option<&str>) -> Result<Value, String> {
    let now = rfc3339(SystemTime::now());
    let accounts = shared.accounts.read();
    let Some(name) = acc else {
        let mut names: Vec<&String> = accounts.keys().collect();
        names.sort();
        return Ok(
            json!({"server_id": shared.server_id, "now": now, "system_account": shared.system_account, "accounts": names}),
        );
    };
    let Some(a) = accounts.get(name) else {
        return Err(format!("Account {name} does not exist"));
    };
    let conns = shared
        .conns
        .lock()
        .values()
        .filter(|c| c.account().is_some_and(|x| x.name == name))
        .count();
    let cfg = shared.options.accounts.iter().find(|x| x.name == name);
    let exports: Vec<Value> = cfg
        .map(|c| {
            c.exports
                .iter()
                .map(|e| match e.kind {
                    crate::config::accounts::ExportKind::Stream => {
                        json!({"subject": e.subject, "type": "stream"})
                    }
                    crate::config::accounts::ExportKind::Service => json!({
                        "subject": e.subject,
                        "type": "service",
                        "response_type": format!("{:?}", e.response_type),
                    }),
                })
                .collect()
        })
        .unwrap_or_default();
    let imports: Vec<Value> = cfg
        .map(|c| {
            c.imports
                .iter()
                .map(|i| {
                    let kind = match i.kind {
                        crate::config::accounts::ExportKind::Stream => "stream",
                        crate::config::accounts::ExportKind::Service => "service",
                    };
                                        let local = match (&i.prefix, &i.to) {
                        (Some(p), _) => format!("{p}.{}", i.subject),
                        (None, Some(t)) => t.clone(),
                        (None, None) => i.subject.clone(),
                    };
                    json!({"subject": i.subject, "account": i.account, "to": i.to.clone().or(i.prefix.clone()).unwrap_or_default(),
                           "local_subject": local,
                           "type": kind, "invalid": false, "share": i.share, "tracking": false})
                })
                .collect()
        })
        .unwrap_or_default();
    let (inserts, removes, matches) = a.sublist.stats();
    Ok(json!({
        "server_id": shared.server_id,
        "now": now,
        "system_account": shared.system_account,
        "account_detail": {
            "account_name": name,
            "name_tag": name,
            "update_time": rfc3339(shared.started),
            "expired": false,
            "complete": true,
            "jetstream_enabled": false,
            "leafnode_connections": 0,
            "client_connections": conns,
            "subscriptions": a.sublist.count(),
            "exports": exports,
            "imports": imports,
            "sublist_stats": {"num_subscriptions": a.sublist.count(), "num_cache": 0, "num_inserts": inserts,
                              "num_removes": removes, "num_matches": matches, "cache_hit_rate": 0.0,
                              "max_fanout": 0, "avg_fanout": 0.0},
        }
    }))
}

/// `/accstatz`: per-account connection and message counts.
pub fn accstatz(shared: &Shared, unused: bool) -> Value {
    let conns: Vec<Arc<Conn>> = shared.conns.lock().values().cloned().collect();
    let accounts = shared.accounts.read();
    let mut names: Vec<&String> = accounts.keys().collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let mine: Vec<&Arc<Conn>> = conns
            .iter()
            .filter(|c| c.account().is_some_and(|a| &a.name == name))
            .collect();
        if mine.is_empty() && !unused {
            continue;
        }
        let sum = |f: fn(&Conn) -> u64| mine.iter().map(|c| f(c)).sum::<u64>();
        let zero = json!({"msgs": 0, "bytes": 0});
        out.push(json!({
            "acc": name,
            "name": name,
            "conns": mine.len(),
            "leafnodes": 0,
            "total_conns": mine.len(),
            "num_subscriptions": accounts.get(name).map(|a| a.sublist.count()).unwrap_or(0),
            "sent": {"msgs": sum(|c| c.stats.out_msgs.load(Ordering::Relaxed)), "bytes": sum(|c| c.stats.out_bytes.load(Ordering::Relaxed)),
                     "gateways": zero, "routes": zero, "leafs": zero},
            "received": {"msgs": sum(|c| c.stats.in_msgs.load(Ordering::Relaxed)), "bytes": sum(|c| c.stats.in_bytes.load(Ordering::Relaxed)),
                         "gateways": zero, "routes": zero, "leafs": zero},
            "slow_consumers": 0,
        }));
    }
    json!({"server_id": shared.server_id, "now": rfc3339(SystemTime::now()), "account_statz": out})
}
