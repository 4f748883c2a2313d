//! `/metrics` in the Prometheus text format, so no exporter sidecar is needed.
//! Server totals come from the same numbers as `/varz`; the leaf-node families carry
//! the names the seed article's PromQL uses (`nats_leafnodes_*`), so its queries and
//! alerts work unchanged.

use super::{subscriptions_total, totals};
use crate::world::World;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

fn family(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

pub fn render(world: &World) -> String {
    let mut out = String::with_capacity(4096);
    server_families(&mut out, world);
    leaf_families(&mut out, world);
    out
}

/// The server's totals, as `/varz` counts them.
fn server_families(out: &mut String, world: &World) {
    let t = totals(world);
    let conns = world.conn_count();
    let uptime = SystemTime::now()
        .duration_since(world.started)
        .unwrap_or_default()
        .as_secs_f64();
    family(
        out,
        "nats_server_connections",
        "gauge",
        "Client connections open now.",
        conns,
    );
    family(
        out,
        "nats_server_connections_total",
        "counter",
        "Client connections accepted since start.",
        world.stats.total_connections.load(Ordering::Relaxed),
    );
    family(
        out,
        "nats_server_in_msgs_total",
        "counter",
        "Messages received from clients.",
        t.in_msgs,
    );
    family(
        out,
        "nats_server_in_bytes_total",
        "counter",
        "Payload bytes received from clients.",
        t.in_bytes,
    );
    family(
        out,
        "nats_server_out_msgs_total",
        "counter",
        "Messages delivered to subscribers.",
        t.out_msgs,
    );
    family(
        out,
        "nats_server_out_bytes_total",
        "counter",
        "Payload bytes delivered to subscribers.",
        t.out_bytes,
    );
    family(
        out,
        "nats_server_slow_consumers_total",
        "counter",
        "Connections closed as slow consumers.",
        world.stats.slow_consumers.load(Ordering::Relaxed),
    );
    family(
        out,
        "nats_server_stalled_clients_total",
        "counter",
        "Times a producer was held back while a consumer it fed drained.",
        world.stats.stalls.load(Ordering::Relaxed),
    );
    family(
        out,
        "nats_server_stale_connections_total",
        "counter",
        "Connections closed for unanswered PINGs.",
        world.stats.stale_connections.load(Ordering::Relaxed),
    );
    family(
        out,
        "nats_server_subscriptions",
        "gauge",
        "Subscriptions in all accounts.",
        subscriptions_total(world),
    );
    family(
        out,
        "nats_server_routes",
        "gauge",
        "Route connections.",
        crate::world::routes::counts(world).0,
    );
    family(
        out,
        "nats_server_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        format!("{uptime:.3}"),
    );
    family(
        out,
        "nats_server_mem_bytes",
        "gauge",
        "Resident memory of the server process.",
        super::rss_bytes(),
    );
}

/// The leaf links: how many, and per link its traffic and round-trip time.
fn leaf_families(out: &mut String, world: &World) {
    let leafs: Vec<std::sync::Arc<crate::conn::Conn>> = world
        .conn_list()
        .into_iter()
        .filter(|c| c.is_leaf())
        .collect();
    family(
        out,
        "nats_leafnodes_connections",
        "gauge",
        "Leaf node connections open now.",
        leafs.len(),
    );
    // Per leaf link, with the names the seed article's PromQL uses.
    type Pick = fn(&crate::conn::Conn) -> String;
    let per_leaf: [(&str, &str, &str, Pick); 6] = [
        (
            "nats_leafnodes_sent_msgs",
            "counter",
            "Messages sent over a leaf connection.",
            |c| c.stats.out_msgs.load(Ordering::Relaxed).to_string(),
        ),
        (
            "nats_leafnodes_recv_msgs",
            "counter",
            "Messages received over a leaf connection.",
            |c| c.stats.in_msgs.load(Ordering::Relaxed).to_string(),
        ),
        (
            "nats_leafnodes_sent_bytes",
            "counter",
            "Bytes sent over a leaf connection.",
            |c| c.stats.out_bytes.load(Ordering::Relaxed).to_string(),
        ),
        (
            "nats_leafnodes_recv_bytes",
            "counter",
            "Bytes received over a leaf connection.",
            |c| c.stats.in_bytes.load(Ordering::Relaxed).to_string(),
        ),
        (
            "nats_leafnodes_rtt_seconds",
            "gauge",
            "Round-trip time of a leaf connection.",
            |c| format!("{:.9}", c.rtt_nanos.load(Ordering::Relaxed) as f64 / 1e9),
        ),
        // Not counted yet: always 0.
        (
            "nats_leafnodes_reconnects",
            "counter",
            "Reconnects of a leaf remote.",
            |_| "0".into(),
        ),
    ];
    for (name, kind, help, pick) in per_leaf {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for c in &leafs {
            let leaf = c
                .leaf_link()
                .and_then(|l| l.name.lock().clone())
                .unwrap_or_default();
            let account = c.account_name().unwrap_or_default().to_string();
            let _ = writeln!(
                out,
                "{name}{{leaf=\"{}\",account=\"{}\",remote=\"{}\"}} {}",
                escape(&leaf),
                escape(&account),
                c.addr,
                pick(c)
            );
        }
    }
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
