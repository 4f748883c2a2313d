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
fn uptime(since: SystemTime) -> String {
    let d = SystemTime::now().duration_since(since).unwrap_or_default();
    go_duration(Duration::from_secs(d.as_secs()))
}

fn rss_bytes() -> u64 {
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
    for conn in shared.conns.lock().values() {
        t.in_msgs += conn.stats.in_msgs.load(Ordering::Relaxed);
        t.in_bytes += conn.stats.in_bytes.load(Ordering::Relaxed);
        t.out_msgs += conn.stats.out_msgs.load(Ordering::Relaxed);
        t.out_bytes += conn.stats.out_bytes.load(Ordering::Relaxed);
    }
    t
}

fn subscriptions(shared: &Shared) -> u64 {
    shared
        .accounts
        .read()
        .values()
        .map(|a| a.sublist.count())
        .sum()
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
        "https_port": o.https.as_ref().map(|h| h.port).unwrap_or(0),
        "auth_timeout": shared.auth().timeout.as_secs_f64(),
        "max_control_line": o.max_control_line,
        "max_payload": o.max_payload,
        "max_pending": o.max_pending,
        "cluster": {},
        "gateway": {},
        "leaf": {},
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
        "routes": 0,
        "remotes": 0,
        "leafnodes": 0,
        "in_msgs": t.in_msgs,
        "out_msgs": t.out_msgs,
        "in_bytes": t.in_bytes,
        "out_bytes": t.out_bytes,
        "slow_consumers": shared.stats.slow_consumers.load(Ordering::Relaxed),
        "stale_connections": shared.stats.stale_connections.load(Ordering::Relaxed),
        "subscriptions": subscriptions(shared),
        "system_account": shared.system_account,
        "slow_consumer_stats": {"clients": shared.stats.slow_consumers.load(Ordering::Relaxed), "routes": 0, "gateways": 0, "leafs": 0},
        "stale_connection_stats": {"clients": shared.stats.stale_connections.load(Ordering::Relaxed), "routes": 0, "gateways": 0, "leafs": 0},
    })
}

fn conn_json(c: &Arc<Conn>, now: SystemTime, subs_list: bool) -> Value {
    let meta = c.meta.lock().clone();
    let last =
        SystemTime::UNIX_EPOCH + Duration::from_nanos(c.last_activity.load(Ordering::Relaxed));
    let mut v = json!({
        "cid": c.cid,
        "kind": "Client",
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
    });
    let obj = v.as_object_mut().expect("json object");
    for (k, val) in [
        ("name", meta.name),
        ("lang", meta.lang),
        ("version", meta.version),
    ] {
        if let Some(val) = val {
            obj.insert(k.into(), json!(val));
        }
    }
    if subs_list {
        let list: Vec<String> = c
            .subs
            .lock()
            .values()
            .map(|s| s.subject.to_string())
            .collect();
        obj.insert("subscriptions_list".into(), json!(list));
    }
    v
}

/// `connz` with `offset`/`limit` (default 1024), sorted by cid; optionally with subscriptions.
pub fn connz(shared: &Shared, offset: usize, limit: usize, subs: bool) -> Value {
    let mut conns: Vec<Arc<Conn>> = shared.conns.lock().values().cloned().collect();
    conns.sort_by_key(|c| c.cid);
    let now = SystemTime::now();
    let total = conns.len();
    let page: Vec<Value> = conns
        .iter()
        .skip(offset)
        .take(limit)
        .map(|c| conn_json(c, now, subs))
        .collect();
    json!({
        "server_id": shared.server_id,
        "now": rfc3339(now),
        "num_connections": page.len(),
        "total": total,
        "offset": offset,
        "limit": limit,
        "connections": page,
    })
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
        "subscriptions": subscriptions(shared),
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
