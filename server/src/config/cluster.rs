//! `cluster { }`: the route listener, the seed routes and how they are dialled.

use super::auth::{self, AuthBlock, Authorization, Permissions};
use super::decode::{self, Fields};
use super::error::{Diagnostic, Diagnostics};
use super::options::{parse_listen, Compression};
use super::tls::{self, TlsOptions};
use super::value::{Node, Pos};
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub pos: Option<Pos>,
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<i64>,
    pub authorization: Option<Authorization>,
    pub routes: Vec<String>,
    pub tls: Option<TlsOptions>,
    pub advertise: Option<String>,
    pub no_advertise: bool,
    pub connect_retries: Option<i64>,
    pub connect_backoff: bool,
    pub permissions: Option<Permissions>,
    pub pool_size: Option<i64>,
    pub accounts: Vec<String>,
    pub compression: Option<Compression>,
    pub ping_interval: Option<Duration>,
    pub ping_max: Option<i64>,
    pub write_deadline: Option<Duration>,
    pub write_timeout: Option<String>,
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
        if let Some(routes) = decode::strings(e, d) {
            for (i, r) in routes.iter().enumerate() {
                if let Err(why) = super::options::check_url(r) {
                    d.push(Diagnostic::error(
                        &e.value.pos,
                        format!("error parsing route url \"{r}\": {why}"),
                    ));
                }
                if routes[..i].contains(r) {
                    d.push(
                        Diagnostic::error(
                            &e.value.pos,
                            format!("Duplicate route entry detected: {r}"),
                        )
                        .with_help("list each route URL once"),
                    );
                }
            }
            c.routes = routes;
        }
    }
    if let Some(e) = f.take(&["tls"]) {
        c.tls = tls::parse_tls(&e.value, base, tls::TlsContext::Link, d);
    }
    c.advertise = f.string(&["cluster_advertise", "advertise"], d);
    c.no_advertise = f.bool(&["no_advertise"], d).unwrap_or(false);
    c.connect_retries = f.int(&["connect_retries"], d);
    c.connect_backoff = f.bool(&["connect_backoff"], d).unwrap_or(false);
    if let Some(e) = f.take(&["permissions"]) {
        c.permissions = auth::parse_permissions(&e.value, d);
        if c.permissions
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
    c.pool_size = f.int(&["pool_size"], d);
    c.accounts = f.strings(&["accounts"], d).unwrap_or_default();
    if let Some(e) = f.take(&["compression"]) {
        c.compression = Compression::parse(e, d);
    }
    c.ping_interval = f.duration(&["ping_interval"], d);
    c.ping_max = f.int(&["ping_max"], d);
    c.write_deadline = f.duration(&["write_deadline"], d);
    c.write_timeout = f.string(&["write_timeout"], d);
    f.finish(d, |k| match k {
        "user" | "password" => {
            Some("route credentials go in cluster { authorization { user, password } }".into())
        }
        "route" => Some("the key is routes: [ ... ]".into()),
        _ => None,
    });
    Some(c)
}
