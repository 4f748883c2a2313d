//! `/subsz`, `/accountz` and `/accstatz`.
use super::connz::{flag, sub_detail};
use super::format::rfc3339;
use crate::conn::Conn;
use crate::world::World;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

/// `/subsz`: sublist statistics and, with `subs=1`, the subscriptions (`test=` filters
/// those a subject would reach; `acc=` one account).
pub fn subsz(
    world: &World,
    p: &std::collections::HashMap<String, String>,
) -> Result<Value, String> {
    let accounts = world.accounts.read();
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
    let conns: Vec<Arc<Conn>> = world.conn_list();
    for c in &conns {
        let account = c.account_name().unwrap_or_default().to_string();
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
        "server_id": world.server_id,
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
pub fn accountz(world: &World, acc: Option<&str>) -> Result<Value, String> {
    let now = rfc3339(SystemTime::now());
    let accounts = world.accounts.read();
    let Some(name) = acc else {
        let mut names: Vec<&String> = accounts.keys().collect();
        names.sort();
        return Ok(
            json!({"server_id": world.server_id, "now": now, "system_account": world.system_account, "accounts": names}),
        );
    };
    let Some(a) = accounts.get(name) else {
        return Err(format!("Account {name} does not exist"));
    };
    let conns = world
        .conn_list()
        .iter()
        .filter(|c| c.account_name() == Some(name))
        .count();
    let cfg = world.options.accounts.iter().find(|x| x.name == name);
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
        "server_id": world.server_id,
        "now": now,
        "system_account": world.system_account,
        "account_detail": {
            "account_name": name,
            "name_tag": name,
            "update_time": rfc3339(world.started),
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
pub fn accstatz(world: &World, unused: bool) -> Value {
    let conns: Vec<Arc<Conn>> = world.conn_list();
    let accounts = world.accounts.read();
    let mut names: Vec<&String> = accounts.keys().collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let mine: Vec<&Arc<Conn>> = conns
            .iter()
            .filter(|c| c.account_name() == Some(name.as_str()))
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
    json!({"server_id": world.server_id, "now": rfc3339(SystemTime::now()), "account_statz": out})
}
