//! The firewall of a cloud site: what it opens, to whom, and the upstreams each
//! server dials out to.

use crate::model::{Model, Server, Site};
use std::collections::BTreeSet;

/// Hub servers (by name) a server's remotes dial.
pub(super) fn upstream_servers<'a>(m: &'a Model, s: &Server) -> Vec<&'a Server> {
    let mut out: Vec<&Server> = Vec::new();
    for r in &s.remotes {
        for d in &r.dials {
            if let Some(h) = m.server(&d.server) {
                if !out.iter().any(|x| x.name == h.name) {
                    out.push(h);
                }
            }
        }
    }
    out
}

/// The (leafnode port, CIDR) pairs a server dials out to.
pub(super) fn upstreams(m: &Model, s: &Server) -> BTreeSet<(u16, String)> {
    upstream_servers(m, s)
        .into_iter()
        .filter_map(|h| {
            let cidr = m.site(&h.site)?.cidr?;
            Some((h.leaf_port?, cidr.to_string()))
        })
        .collect()
}

/// CIDRs of the sites whose servers dial hubs on `site`.
pub(super) fn leaf_cidrs(m: &Model, site: &Site) -> BTreeSet<String> {
    m.servers
        .iter()
        .filter(|s| upstream_servers(m, s).iter().any(|h| h.site == site.name))
        .filter_map(|s| m.site(&s.site)?.cidr.map(|c| c.to_string()))
        .collect()
}

/// Every port the firewall of a cloud site opens to the world outside the server's
/// cluster, and to whom: the per-example tests assert on this.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Opening {
    pub server: String,
    pub port: u16,
    pub what: &'static str,
    pub from: Vec<String>,
}

/// What a cloud site's firewall must open: clients to client CIDRs, monitoring to
/// admin CIDRs, leafnode ports to the sites whose leaves dial them, routes to the
/// cluster's own members.
pub fn openings(m: &Model, site: &Site) -> Vec<Opening> {
    let leafs: Vec<String> = leaf_cidrs(m, site).into_iter().collect();
    let mut out = Vec::new();
    for s in m.servers.iter().filter(|s| s.site == site.name) {
        let cidrs = |v: &[ipnet::IpNet]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        out.push(Opening {
            server: s.name.clone(),
            port: s.client_port,
            what: "client",
            from: cidrs(&site.client_cidrs),
        });
        out.push(Opening {
            server: s.name.clone(),
            port: s.http_port,
            what: "monitoring",
            from: cidrs(&site.admin_cidrs),
        });
        if let Some(p) = s.leaf_port {
            if !leafs.is_empty() {
                out.push(Opening {
                    server: s.name.clone(),
                    port: p,
                    what: "leafnode",
                    from: leafs.clone(),
                });
            }
        }
        if let Some(p) = s.cluster_port {
            out.push(Opening {
                server: s.name.clone(),
                port: p,
                what: "cluster",
                from: vec![format!("cluster {}", s.cluster)],
            });
        }
    }
    out.retain(|o| !o.from.is_empty());
    out
}
