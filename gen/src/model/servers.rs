//! Hubs and leaves: the clusters and their servers, with ports, listen addresses,
//! routes, the accounts each serves and the names its certificate carries.

use super::check::{check_dns_name, duplicate, is_name, missing, size_ok, span_or, unknown, Ctx};
use super::netplan::lb_name;
use super::sites::named;
use super::types::{Account, Cluster, JetStream, Link, Provider, Server, Site};
use crate::diag::Diagnostic;
use crate::topology::{self, NodeKind, Spanned};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

/// The clusters and servers, as they are resolved node by node.
#[derive(Default)]
pub(super) struct Placed {
    pub(super) clusters: Vec<Cluster>,
    pub(super) servers: Vec<Server>,
    server_names: BTreeSet<String>,
    /// JetStream domain → the node that uses it.
    domains: HashMap<String, String>,
}

/// A node's listeners.
struct Ports {
    client: u16,
    http: u16,
    leaf: Option<u16>,
    cluster: Option<u16>,
}

pub(super) fn build(c: &mut Ctx, nodes: &[&topology::Node], sites: &[Site], image: &str) -> Placed {
    let mut p = Placed::default();
    for n in nodes {
        p.node(c, n, sites, image);
    }
    p
}

impl Placed {
    fn node(&mut self, c: &mut Ctx, n: &topology::Node, sites: &[Site], image: &str) {
        check_dns_name(c, n.kind.as_str(), &n.name);
        if self.clusters.iter().any(|x| x.name == n.name.value) {
            c.err(duplicate("hub or leaf", &n.name));
            return;
        }
        let Some(site_name) = &n.site else {
            c.err(missing(
                "site",
                &n.name,
                n.kind.as_str(),
                "site = \"central\"",
            ));
            return;
        };
        let Some(site) = named(sites, &site_name.value) else {
            c.err(unknown(
                "site",
                site_name,
                sites.iter().map(|s| s.name.as_str()),
            ));
            return;
        };
        let size = size(c, n);
        let ports = ports(c, n, size);
        let jetstream = n
            .jetstream
            .as_ref()
            .map(|j| jetstream(c, n, j, &mut self.domains));
        let names: Vec<String> = if size == 1 {
            vec![n.name.value.clone()]
        } else {
            (1..=size)
                .map(|i| format!("{}-{i}", n.name.value))
                .collect()
        };
        let leaf_lb = n
            .leaf_lb
            .as_ref()
            .and_then(|l| leaf_lb(c, l, site, ports.leaf));
        let local = site.provider == Provider::Local;
        for sname in &names {
            if self.server_names.contains(sname) {
                c.err(
                    Diagnostic::error(format!("server name \"{sname}\" is taken"), n.name.span.clone())
                        .label(format!("this {} names a server \"{sname}\"", n.kind.as_str()))
                        .help("server names must be unique: a hub cluster \"x\" of size n names its servers x-1 .. x-n"),
                );
                continue;
            }
            self.server_names.insert(sname.clone());
            self.servers.push(Server {
                name: sname.clone(),
                image: n
                    .image
                    .as_ref()
                    .map_or(image.to_string(), |i| i.value.clone()),
                cluster: n.name.value.clone(),
                kind: n.kind,
                site: site.name.clone(),
                listen: if local { "127.0.0.1" } else { "0.0.0.0" }.into(),
                host: if local {
                    "127.0.0.1".into()
                } else {
                    sname.clone()
                },
                client_port: ports.client,
                http_port: ports.http,
                leaf_port: ports.leaf,
                cluster_port: ports.cluster,
                routes: Vec::new(),
                accounts: Vec::new(),
                jetstream: jetstream.clone(),
                remotes: Vec::new(),
                leaf_users: Vec::new(),
                dns_names: BTreeSet::new(),
                leaf_lb: leaf_lb.clone(),
            });
        }
        self.clusters.push(Cluster {
            name: n.name.value.clone(),
            kind: n.kind,
            site: site.name.clone(),
            servers: names,
        });
    }
}

/// How many servers a hub cluster has (a leaf is one).
fn size(c: &mut Ctx, n: &topology::Node) -> usize {
    match &n.size {
        None => 1,
        Some(s) if (1..=15).contains(&s.value) => s.value as usize,
        Some(s) => {
            c.err(
                Diagnostic::error(
                    format!("hub size {} is out of range", s.value),
                    s.span.clone(),
                )
                .label("expected 1 to 15 servers")
                .help("a hub cluster is a full mesh of routes; use 3 or 5 for redundancy"),
            );
            1
        }
    }
}

fn port(c: &mut Ctx, p: &Option<Spanned<u64>>, default: u16) -> u16 {
    match p {
        None => default,
        Some(p) if (1..=65535).contains(&p.value) => p.value as u16,
        Some(p) => {
            c.err(
                Diagnostic::error(format!("port {} is out of range", p.value), p.span.clone())
                    .label("expected 1 to 65535")
                    .help("the NATS defaults are client 4222, cluster 6222, leaf 7422, http 8222"),
            );
            default
        }
    }
}

/// The node's listeners: a leafnode port on hubs, a cluster port on hub clusters of
/// two or more; no two of one server on the same port.
fn ports(c: &mut Ctx, n: &topology::Node, size: usize) -> Ports {
    let client_port = port(c, &n.client_port, 4222);
    let http_port = port(c, &n.http_port, 8222);
    let leaf_port = (n.kind == NodeKind::Hub).then(|| port(c, &n.leaf_port, 7422));
    let cluster_port =
        (n.kind == NodeKind::Hub && size > 1).then(|| port(c, &n.cluster_port, 6222));
    // Two ports of one server.
    let mut mine: Vec<(u16, &str, Range<usize>)> = vec![
        (client_port, "client_port", span_or(&n.client_port, &n.name)),
        (http_port, "http_port", span_or(&n.http_port, &n.name)),
    ];
    if let Some(p) = leaf_port {
        mine.push((p, "leaf_port", span_or(&n.leaf_port, &n.name)));
    }
    if let Some(p) = cluster_port {
        mine.push((p, "cluster_port", span_or(&n.cluster_port, &n.name)));
    }
    for i in 0..mine.len() {
        for j in 0..i {
            if mine[i].0 == mine[j].0 {
                c.err(
                    Diagnostic::error(
                        format!("{} and {} are both {}", mine[j].1, mine[i].1, mine[i].0),
                        mine[i].2.clone(),
                    )
                    .label("port already used by this server")
                    .help("give each listener its own port"),
                );
            }
        }
    }
    Ports {
        client: client_port,
        http: http_port,
        leaf: leaf_port,
        cluster: cluster_port,
    }
}

/// The node's JetStream limits and domain (one domain a node).
fn jetstream(
    c: &mut Ctx,
    n: &topology::Node,
    j: &topology::JetStream,
    domains: &mut HashMap<String, String>,
) -> JetStream {
    for (v, what) in [(&j.max_memory, "max_memory"), (&j.max_file, "max_file")] {
        if let Some(v) = v {
            if !size_ok(&v.value) {
                c.err(
                    Diagnostic::error(format!("invalid {what} \"{}\"", v.value), v.span.clone())
                        .label("not a size")
                        .help("write a number and a unit: \"512MB\", \"10GB\""),
                );
            }
        }
    }
    if let Some(d) = &j.domain {
        if !is_name(&d.value) {
            c.err(
                Diagnostic::error(
                    format!("invalid JetStream domain \"{}\"", d.value),
                    d.span.clone(),
                )
                .label("not a domain name")
                .help("use letters, digits, `-` and `_`"),
            );
        } else if let Some(other) = domains.get(&d.value) {
            c.err(
                Diagnostic::error(
                    format!("JetStream domain \"{}\" is already used by \"{other}\"", d.value),
                    d.span.clone(),
                )
                .label("second use")
                .help("each hub cluster and leaf needs its own domain, or JetStream requests reach the wrong one"),
            );
        } else {
            domains.insert(d.value.clone(), n.name.value.clone());
        }
    }
    JetStream {
        domain: j.domain.as_ref().map(|d| d.value.clone()),
        max_memory: j.max_memory.as_ref().map(|d| d.value.clone()),
        max_file: j.max_file.as_ref().map(|d| d.value.clone()),
    }
}

/// A leaf load balancer in front of a hub cluster: Canopy builds them on cloud sites.
fn leaf_lb(c: &mut Ctx, l: &topology::Str, site: &Site, leaf_port: Option<u16>) -> Option<String> {
    if !matches!(l.value.as_str(), "internal" | "external") {
        c.err(
            Diagnostic::error(format!("unknown leaf_lb \"{}\"", l.value), l.span.clone())
                .label("not a load balancer kind")
                .help("leaf_lb is \"internal\" (private addresses) or \"external\" (public)"),
        );
        None
    } else if !site.is_cloud() {
        c.err(
            Diagnostic::error(
                format!(
                    "leaf_lb on {} site \"{}\"",
                    site.provider.as_str(),
                    site.name
                ),
                l.span.clone(),
            )
            .label("Canopy builds load balancers on aws and gcp sites")
            .help("remove leaf_lb, or put your own balancer in front of the hubs"),
        );
        None
    } else if leaf_port.is_none() {
        None
    } else {
        Some(l.value.clone())
    }
}

/// Routes: a full mesh within each hub cluster.
pub(super) fn routes(clusters: &[Cluster], servers: &mut [Server]) {
    for cl in clusters {
        let peers: Vec<(String, u16)> = cl
            .servers
            .iter()
            .filter_map(|s| servers.iter().find(|x| &x.name == s))
            .filter_map(|s| s.cluster_port.map(|p| (s.host.clone(), p)))
            .collect();
        for s in servers.iter_mut().filter(|s| s.cluster == cl.name) {
            let me = (s.host.clone(), s.cluster_port.unwrap_or(0));
            s.routes = peers.iter().filter(|p| **p != me).cloned().collect();
        }
    }
}

/// Port clashes on one host: every server on a local site shares 127.0.0.1.
pub(super) fn check_local_ports(
    c: &mut Ctx,
    nodes: &[&topology::Node],
    sites: &[Site],
    servers: &[Server],
) {
    let mut taken: BTreeMap<u16, (String, &'static str)> = BTreeMap::new();
    for n in nodes {
        let Some(site) = n.site.as_ref().and_then(|s| named(sites, &s.value)) else {
            continue;
        };
        if site.provider != Provider::Local {
            continue;
        }
        for s in servers.iter().filter(|s| s.cluster == n.name.value) {
            let listeners = [
                (Some(s.client_port), "client_port", &n.client_port),
                (Some(s.http_port), "http_port", &n.http_port),
                (s.leaf_port, "leaf_port", &n.leaf_port),
                (s.cluster_port, "cluster_port", &n.cluster_port),
            ];
            for (p, what, src) in listeners {
                let Some(p) = p else { continue };
                if let Some((other, other_what)) = taken.get(&p) {
                    if other != &s.name {
                        c.err(
                            Diagnostic::error(
                                format!("port {p} on 127.0.0.1 is already the {other_what} of \"{other}\""),
                                span_or(src, &n.name),
                            )
                            .label(format!("{what} of \"{}\"", s.name))
                            .help("servers on local sites share one host: give each a distinct port (hub clusters of size n need n distinct ports, so use size 1 on local sites)"),
                        );
                    }
                } else {
                    taken.insert(p, (s.name.clone(), what));
                }
            }
        }
    }
}

/// The accounts each server serves: those its node names (every account on a hub
/// that names none), those its upstreams carry, and those they import from.
pub(super) fn serve_accounts(
    c: &mut Ctx,
    nodes: &[&topology::Node],
    accounts: &[Account],
    servers: &mut [Server],
) {
    let account_names: Vec<String> = accounts.iter().map(|a| a.name.clone()).collect();
    for n in nodes {
        let mut served: BTreeSet<String> = BTreeSet::new();
        match &n.accounts {
            Some(list) => {
                for a in &list.value {
                    if account_names.contains(&a.value) {
                        served.insert(a.value.clone());
                    } else {
                        c.err(unknown(
                            "account",
                            a,
                            account_names.iter().map(String::as_str),
                        ));
                    }
                }
            }
            None if n.kind == NodeKind::Hub => served.extend(account_names.iter().cloned()),
            None => {}
        }
        for u in &n.upstreams {
            if let Some(a) = &u.account {
                if account_names.contains(&a.value) {
                    served.insert(a.value.clone());
                }
            }
        }
        // An account's imports need the exporting account on the same server.
        loop {
            let extra: Vec<String> = served
                .iter()
                .filter_map(|a| accounts.iter().find(|x| &x.name == a))
                .flat_map(|a| a.imports.iter().map(|i| i.account.clone()))
                .filter(|a| !served.contains(a))
                .collect();
            if extra.is_empty() {
                break;
            }
            served.extend(extra);
        }
        for s in servers.iter_mut().filter(|s| s.cluster == n.name.value) {
            // Keep the topology's order of accounts, so output follows the file.
            s.accounts = account_names
                .iter()
                .filter(|a| served.contains(*a))
                .cloned()
                .collect();
        }
    }
}

/// Certificate names: the server's own, and every link service that forwards to it.
pub(super) fn cert_names(servers: &mut [Server], links: &[Link]) {
    for s in servers.iter_mut() {
        s.dns_names.insert(s.name.clone());
        s.dns_names.insert("localhost".into());
        if s.leaf_lb.is_some() {
            s.dns_names.insert(lb_name(&s.cluster));
        }
        for l in links {
            if l.forwards.iter().any(|f| f.server == s.name) {
                s.dns_names.insert(l.service.clone());
            }
        }
    }
}
