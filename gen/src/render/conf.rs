//! `conf/<server>.conf`: one nats-server config per server, from
//! templates/server.conf.tera. Every file passes `nats-server -t` and
//! `canopy-server -t` (a test runs both on every example).

use super::layout::conf_path;
use super::template::render as render_template;
use crate::bundle::{Bundle, Secrets, PRIVATE, PUBLIC};
use crate::model::netplan::{joint, lb_name};
use crate::model::{Account, LeafAuth, Model, Remote, Server, SYSTEM_ACCOUNT, SYSTEM_USER};
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
struct UserCtx {
    name: String,
    bcrypt: String,
    publish: Vec<String>,
    subscribe: Vec<String>,
}

#[derive(Serialize)]
struct FlowCtx {
    kind: &'static str,
    subject: String,
}

#[derive(Serialize)]
struct ImportCtx {
    kind: &'static str,
    account: String,
    subject: String,
    to: Option<String>,
}

#[derive(Serialize)]
struct AccountCtx {
    name: String,
    users: Vec<UserCtx>,
    exports: Vec<FlowCtx>,
    imports: Vec<ImportCtx>,
    mappings: Vec<(String, String)>,
}

#[derive(Serialize)]
struct LeafUserCtx {
    user: String,
    bcrypt: Option<String>,
    account: String,
    from: String,
}

#[derive(Serialize)]
struct RemoteCtx {
    hub: String,
    local_account: String,
    hub_account: String,
    identity: String,
    link: Option<String>,
    urls: Vec<String>,
    deny_imports: Vec<String>,
    deny_exports: Vec<String>,
    compression: Option<String>,
}

#[derive(Serialize)]
struct ServerCtx<'a> {
    name: &'a str,
    site: &'a str,
    cluster: &'a str,
    listen: &'a str,
    client_port: u16,
    http_port: u16,
    leaf_port: Option<u16>,
    cluster_port: Option<u16>,
    routes: &'a [(String, u16)],
    remotes: bool,
    jetstream: Option<JsCtx<'a>>,
}

#[derive(Serialize)]
struct JsCtx<'a> {
    domain: Option<&'a str>,
    max_memory: Option<&'a str>,
    max_file: Option<&'a str>,
}

#[derive(Serialize)]
struct SiteCtx<'a> {
    provider: &'static str,
    region: Option<&'a str>,
}

/// The leaf-link user name the hub knows a remote by.
pub fn leaf_user(auth: LeafAuth, identity: &str) -> String {
    match auth {
        LeafAuth::Mtls => format!("CN={identity}"),
        LeafAuth::Password => identity.to_string(),
    }
}

pub fn render(m: &Model, secrets: &Secrets, bundle: &mut Bundle) -> Result<()> {
    for s in &m.servers {
        let (text, secret_inside) = render_one(m, s, secrets, Addressing::Links)?;
        // A config that carries a link password is as private as the password.
        bundle.add(
            conf_path(&s.name),
            text,
            if secret_inside { PRIVATE } else { PUBLIC },
        );
    }
    Ok(())
}

/// Every server's config as it runs on a host ([`Addressing::Direct`]), by server:
/// the text, and whether it carries a secret. The deploy payloads carry them.
pub fn render_hosts(m: &Model, secrets: &Secrets) -> Result<BTreeMap<String, (String, bool)>> {
    m.servers
        .iter()
        .map(|s| {
            Ok((
                s.name.clone(),
                render_one(m, s, secrets, Addressing::Direct)?,
            ))
        })
        .collect()
}

fn hash_of(secrets: &Secrets, name: &str) -> String {
    secrets
        .get(name)
        .map(|s| s.bcrypt.clone())
        .unwrap_or_default()
}

/// How a leaf remote reaches a hub on another site.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// Through the link's linksim service (compose bundles).
    Links,
    /// Straight to each hub server by name, across the real VPN (hosts, Terraform).
    Direct,
}

/// One server's config text, and whether it carries a secret.
pub fn render_one(
    m: &Model,
    s: &Server,
    secrets: &Secrets,
    addressing: Addressing,
) -> Result<(String, bool)> {
    let mut accounts = vec![AccountCtx {
        name: SYSTEM_ACCOUNT.into(),
        users: vec![UserCtx {
            name: SYSTEM_USER.into(),
            bcrypt: hash_of(secrets, SYSTEM_USER),
            publish: Vec::new(),
            subscribe: Vec::new(),
        }],
        exports: Vec::new(),
        imports: Vec::new(),
        mappings: Vec::new(),
    }];
    for name in &s.accounts {
        let Some(a) = m.account(name) else { continue };
        accounts.push(account_ctx(a, secrets));
    }
    let leaf_users: Vec<LeafUserCtx> = s
        .leaf_users
        .iter()
        .map(|u| LeafUserCtx {
            user: leaf_user(m.leaf_auth, &u.identity),
            bcrypt: (m.leaf_auth == LeafAuth::Password).then(|| hash_of(secrets, &u.identity)),
            account: u.account.clone(),
            from: u.from.clone(),
        })
        .collect();
    let mut secret_inside = false;
    let remotes: Vec<RemoteCtx> = s
        .remotes
        .iter()
        .map(|r| {
            let userinfo = match m.leaf_auth {
                LeafAuth::Mtls => String::new(),
                LeafAuth::Password => {
                    secret_inside = true;
                    let pw = secrets
                        .get(&r.identity)
                        .map(|x| x.password.clone())
                        .unwrap_or_default();
                    format!("{}:{pw}@", r.identity)
                }
            };
            RemoteCtx {
                hub: r.hub.clone(),
                local_account: r.local_account.clone(),
                hub_account: r.hub_account.clone(),
                identity: r.identity.clone(),
                link: r.link.clone().filter(|_| addressing == Addressing::Links),
                urls: urls(m, s, r, addressing, &userinfo),
                deny_imports: r.deny_imports.clone(),
                deny_exports: r.deny_exports.clone(),
                compression: r.compression.clone(),
            }
        })
        .collect();
    let site = m.site(&s.site);
    let role = s.role();
    let mut ctx = tera::Context::new();
    ctx.insert("topology", &m.name);
    ctx.insert("role", &role);
    ctx.insert("tls", &m.tls);
    ctx.insert("ping_interval", &m.ping_interval);
    ctx.insert("mtls", &(m.leaf_auth == LeafAuth::Mtls));
    ctx.insert(
        "site",
        &SiteCtx {
            provider: site.map_or("local", |x| x.provider.as_str()),
            region: site.and_then(|x| x.region.as_deref()),
        },
    );
    ctx.insert("s", &server_ctx(s));
    ctx.insert("accounts", &accounts);
    ctx.insert("leaf_users", &leaf_users);
    ctx.insert("remotes", &remotes);
    let mut text = render_template("server.conf", &ctx)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok((text, secret_inside))
}

fn account_ctx(a: &Account, secrets: &Secrets) -> AccountCtx {
    AccountCtx {
        name: a.name.clone(),
        users: a
            .users
            .iter()
            .map(|u| UserCtx {
                name: u.name.clone(),
                bcrypt: hash_of(secrets, &u.name),
                publish: u.publish.clone(),
                subscribe: u.subscribe.clone(),
            })
            .collect(),
        exports: a
            .exports
            .iter()
            .map(|e| FlowCtx {
                kind: e.kind.as_str(),
                subject: e.subject.clone(),
            })
            .collect(),
        imports: a
            .imports
            .iter()
            .map(|i| ImportCtx {
                kind: i.kind.as_str(),
                account: i.account.clone(),
                subject: i.subject.clone(),
                to: i.to.clone(),
            })
            .collect(),
        mappings: a.mappings.clone(),
    }
}

/// The URLs a remote dials, in order.
fn urls(m: &Model, s: &Server, r: &Remote, addressing: Addressing, userinfo: &str) -> Vec<String> {
    let mut urls: Vec<String> = r
        .dials
        .iter()
        .map(|d| match (addressing, m.server(&d.server)) {
            (Addressing::Direct, Some(h)) => format!(
                "nats-leaf://{userinfo}{}:{}",
                h.host,
                h.leaf_port.unwrap_or(7422)
            ),
            _ => format!("nats-leaf://{userinfo}{}:{}", d.host, d.port),
        })
        .collect();
    // A hub cluster behind a leaf load balancer is dialled there first
    // from other sites: an internal one from anywhere, an external one
    // across links Terraform does not route (the internet). Its
    // servers' own names stay as fallbacks.
    let hub = r.dials.first().and_then(|d| m.server(&d.server));
    if let (Addressing::Direct, Some(h)) = (addressing, hub) {
        let routed = r
            .link
            .as_ref()
            .and_then(|l| m.links.iter().find(|x| &x.name == l))
            .is_some_and(|l| joint(m, l).is_some());
        let via_lb = match h.leaf_lb.as_deref() {
            Some("internal") => true,
            Some(_) => !routed,
            None => false,
        };
        if via_lb && h.site != s.site {
            urls.insert(
                0,
                format!(
                    "nats-leaf://{userinfo}{}:{}",
                    lb_name(&h.cluster),
                    h.leaf_port.unwrap_or(7422)
                ),
            );
        }
    }
    urls
}

fn server_ctx(s: &Server) -> ServerCtx<'_> {
    ServerCtx {
        name: &s.name,
        site: &s.site,
        cluster: &s.cluster,
        listen: &s.listen,
        client_port: s.client_port,
        http_port: s.http_port,
        leaf_port: s.leaf_port,
        cluster_port: s.cluster_port,
        routes: &s.routes,
        remotes: !s.remotes.is_empty(),
        jetstream: s.jetstream.as_ref().map(|j| JsCtx {
            domain: j.domain.as_deref(),
            max_memory: j.max_memory.as_deref(),
            max_file: j.max_file.as_deref(),
        }),
    }
}
