//! `cluster { }`: the route listener, the seed routes and how they are dialled.

use super::auth::{self, AuthBlock, Authorization};
use super::decode::{self, Fields};
use super::error::{Diagnostic, Diagnostics};
use super::net::{self, parse_listen, Compression};
use super::tls::{self, TlsOptions};
use super::value::{Entry, Node, Pos, Value};
use std::path::Path;

#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub pos: Option<Pos>,
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<i64>,
    pub authorization: Option<Authorization>,
    pub routes: Vec<String>,
    pub tls: Option<TlsOptions>,
    pub no_advertise: bool,
    pub connect_retries: Option<i64>,
    /// Checked at start (mode names); only `off` is accepted.
    pub compression: Option<Compression>,
}

pub fn parse_cluster(node: &Node, base: &Path, d: &mut Diagnostics) -> Option<Cluster> {
    let mut f = Fields::of("cluster", node, d)?;
    let mut c = Cluster {
        pos: Some(node.pos.clone()),
        ..Default::default()
    };
    c.name = f.string(&["name"], d);
    if let Some(name) = &c.name {
        if name.contains(char::is_whitespace) {
            d.push(Diagnostic::error(
                &node.pos,
                format!("cluster name \"{name}\" cannot contain spaces"),
            ));
        }
    }
    if let Some(e) = f.take(&["listen"]) {
        if let Some((h, p)) = parse_listen(e, d) {
            c.host = h.or(c.host);
            c.port = Some(p);
        }
    }
    if let Some(p) = f.int(&["port"], d) {
        c.port = Some(p);
    }
    if let Some(h) = f.string(&["host", "net"], d) {
        c.host = Some(h);
    }
    if let Some(e) = f.take(&["authorization"]) {
        c.authorization = auth::parse_authorization(&e.value, AuthBlock::Cluster, d);
    }
    if let Some(e) = f.take(&["routes"]) {
        if let Some(routes) = read_routes(e, d) {
            c.routes = routes;
        }
    }
    if let Some(e) = f.take(&["tls"]) {
        c.tls = read_tls(e, base, d);
    }
    use decode::asks_for_something as asks;
    if let Some(e) = f.refuse_when(
        &["cluster_advertise", "advertise"],
        asks,
        "peers are told the address this server listens on; to keep it out of gossip, write no_advertise: true",
        d,
    ) {
        decode::string(e, d);
    }
    c.no_advertise = f.bool(&["no_advertise"], d).unwrap_or(false);
    c.connect_retries = f.int(&["connect_retries"], d);
    f.refuse_when(
        &["connect_backoff"],
        asks,
        "routes are redialled every second",
        d,
    );
    if let Some(e) = f.take(&["permissions"]) {
        refuse_permissions(e, d);
    }
    f.refuse_when(
        &["pool_size"],
        |v| !matches!(v, Value::Int(-1) | Value::Int(1)),
        "one route connection per peer carries every account (pool_size: -1 or 1)",
        d,
    );
    f.refuse_when(
        &["accounts"],
        asks,
        "routes are not pinned per account: one connection per peer carries every account",
        d,
    );
    if let Some(e) = f.take(&["compression"]) {
        c.compression = Compression::parse(e, d);
        if c.compression.as_ref().is_some_and(|m| !m.is_off()) {
            d.push(decode::unsupported(
                e,
                "S2 compression is not served yet: routes run uncompressed (write compression: off)",
            ));
        }
    }
    if let Some(e) = f.take(&["write_timeout"]) {
        if net::write_timeout_policy(e, d).is_some_and(|p| p == "retry") {
            d.push(decode::unsupported(
                e,
                "a route that misses write_deadline is closed (write_timeout: close), never retried",
            ));
        }
    }
    for keys in [&["ping_interval"][..], &["ping_max"], &["write_deadline"]] {
        f.refuse_when(
            keys,
            |_| true,
            "routes use the server's own ping_interval, ping_max and write_deadline; set them at the top level",
            d,
        );
    }
    f.finish(d, |k| match k {
        "user" | "password" => {
            Some("route credentials go in cluster { authorization { user, password } }".into())
        }
        "route" => Some("the key is routes: [ ... ]".into()),
        _ => None,
    });
    Some(c)
}

/// `routes`: URLs, each once.
fn read_routes(e: &Entry, d: &mut Diagnostics) -> Option<Vec<String>> {
    let routes = decode::strings(e, d)?;
    for (i, r) in routes.iter().enumerate() {
        if let Err(why) = net::check_url(r) {
            d.push(Diagnostic::error(
                &e.value.pos,
                format!("error parsing route url \"{r}\": {why}"),
            ));
        }
        if routes[..i].contains(r) {
            d.push(
                Diagnostic::error(&e.value.pos, format!("Duplicate route entry detected: {r}"))
                    .with_help("list each route URL once"),
            );
        }
    }
    Some(routes)
}

/// The routes' `tls { }`, which must name the CA that routes are verified against.
fn read_tls(e: &Entry, base: &Path, d: &mut Diagnostics) -> Option<TlsOptions> {
    let t = tls::parse_tls(&e.value, base, tls::TlsContext::Link, d);
    // Every route peer's certificate is verified (as nats-server verifies them),
    // against this CA: without one nats-server falls back to the system roots,
    // which would let any publicly certified host in as a route.
    if t.as_ref().is_some_and(|t| t.ca_file.is_none()) {
        d.push(
            Diagnostic::error(
                &e.key_pos,
                "cluster tls needs ca_file: routes verify every peer's certificate",
            )
            .with_help("name the CA that signs the cluster's certificates: ca_file: \"ca.pem\""),
        );
    }
    t
}

/// Route `permissions { import, export }`: checked as nats-server checks them, and refused.
fn refuse_permissions(e: &Entry, d: &mut Diagnostics) {
    d.push(decode::unsupported(
        e,
        "route import/export filters are not served: every subject crosses routes; split traffic into accounts instead",
    ));
    if auth::parse_permissions(&e.value, d)
        .as_ref()
        .is_some_and(|p| p.allow_responses.is_some())
    {
        d.push(
            Diagnostic::error(
                &e.key_pos,
                "Cluster permissions do not support dynamic responses",
            )
            .with_help("remove allow_responses from cluster permissions"),
        );
    }
}
