//! `$SYS` requests for the system account: `$SYS.REQ.SERVER.PING[.STATSZ|.VARZ|.CONNZ|
//! .SUBSZ|.ACCOUNTZ|.ROUTEZ|.LEAFZ|.GATEWAYZ|.IDZ|.HEALTHZ]` (every server answers) and `$SYS.REQ.SERVER.<id>.<ENDPOINT>` (only
//! the named one), answered as nats-server answers them: `{"server": {...}, "data": {...}}`
//! (STATSZ answers `{"server": {...}, "statsz": {...}}`).

use crate::monitor;
use crate::world::World;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// The response for a request subject, or `None` when it is not one we serve.
pub fn respond(world: &World, subject: &str, body: &[u8]) -> Option<Vec<u8>> {
    let rest = subject.strip_prefix("$SYS.REQ.SERVER.")?;
    let endpoint = if rest == "PING" {
        "STATSZ"
    } else if let Some(e) = rest.strip_prefix("PING.") {
        e
    } else {
        let (id, e) = rest.split_once('.')?;
        if id != world.server_id {
            return None;
        }
        e
    };
    let opts: Value = serde_json::from_slice(body).unwrap_or(json!({}));
    let usize_opt = |k: &str, d: usize| {
        opts.get(k)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .unwrap_or(d)
    };
    let data = match endpoint {
        "STATSZ" => {
            let seq = SEQ.fetch_add(1, Ordering::Relaxed) + 1;
            return serde_json::to_vec(&json!({"server": monitor::server_header(world, seq), "statsz": monitor::statsz(world)})).ok();
        }
        "VARZ" => monitor::varz(world),
        "CONNZ" => monitor::connz_query(
            world,
            &monitor::ConnzQuery {
                sort: "cid".into(),
                limit: usize_opt("limit", 1024).min(1024),
                offset: usize_opt("offset", 0),
                subs: opts
                    .get("subscriptions")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    .then_some(false),
                state: "open".into(),
                auth: false,
                cid: None,
            },
        ),
        // IDZ answers bare, without the `server`/`data` envelope, as nats-server does.
        "IDZ" => {
            return serde_json::to_vec(&json!({
                "host": world.options.host,
                "id": world.server_id,
                "name": world.info().server_name,
            }))
            .ok()
        }
        "HEALTHZ" => json!({"status": "ok"}),
        "SUBSZ" => {
            let mut params = std::collections::HashMap::new();
            for key in ["subscriptions", "test", "account", "offset", "limit"] {
                if let Some(v) = opts.get(key) {
                    let name = match key {
                        "subscriptions" => "subs",
                        "account" => "acc",
                        other => other,
                    };
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    params.insert(name.to_string(), text);
                }
            }
            monitor::subsz(world, &params).unwrap_or_else(|e| json!({"error": e}))
        }
        "ACCOUNTZ" => monitor::accountz(world, opts.get("account").and_then(Value::as_str))
            .unwrap_or_else(|e| json!({"error": e})),
        "ROUTEZ" => monitor::routez(
            world,
            opts.get("subscriptions")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        ),
        "LEAFZ" => monitor::leafz(
            world,
            opts.get("subscriptions")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            opts.get("account").and_then(Value::as_str),
        ),
        "GATEWAYZ" => {
            json!({"server_id": world.server_id, "now": monitor::rfc3339(std::time::SystemTime::now()),
                             "outbound_gateways": {}, "inbound_gateways": {}})
        }
        _ => return None,
    };
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) + 1;
    serde_json::to_vec(&json!({"server": monitor::server_header(world, seq), "data": data})).ok()
}
