//! `$SYS` requests for the system account: `$SYS.REQ.SERVER.PING[.STATSZ|.VARZ|.CONNZ|
//! .IDZ|.HEALTHZ]` (every server answers) and `$SYS.REQ.SERVER.<id>.<ENDPOINT>` (only
//! the named one), answered as nats-server answers them: `{"server": {...}, "data": {...}}`
//! (STATSZ answers `{"server": {...}, "statsz": {...}}`).

use crate::monitor;
use crate::server::Shared;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// The response for a request subject, or `None` when it is not one we serve.
pub fn respond(shared: &Shared, subject: &str, body: &[u8]) -> Option<Vec<u8>> {
    let rest = subject.strip_prefix("$SYS.REQ.SERVER.")?;
    let endpoint = if rest == "PING" {
        "STATSZ"
    } else if let Some(e) = rest.strip_prefix("PING.") {
        e
    } else {
        let (id, e) = rest.split_once('.')?;
        if id != shared.server_id {
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
            return serde_json::to_vec(&json!({"server": monitor::server_header(shared, seq), "statsz": monitor::statsz(shared)})).ok();
        }
        "VARZ" => monitor::varz(shared),
        "CONNZ" => monitor::connz(
            shared,
            usize_opt("offset", 0),
            usize_opt("limit", 1024).min(1024),
            opts.get("subscriptions")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        ),
        "IDZ" => json!({"server_id": shared.server_id, "server_name": shared.info().server_name}),
        "HEALTHZ" => json!({"status": "ok"}),
        _ => return None,
    };
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) + 1;
    serde_json::to_vec(&json!({"server": monitor::server_header(shared, seq), "data": data})).ok()
}
