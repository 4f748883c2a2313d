//! The address plan: every address and name a bundle uses that is decided before
//! anything runs. Cloud servers and internal leaf load balancers get fixed private
//! addresses (so every site's configs and `/etc/hosts` entries are known before
//! anything is applied), each hub cluster's balancer a name, each link a way of
//! joining its two sites (and its BGP inside /30s), and each container server and
//! linksim API its port on the compose host. Renderers read the plan here instead of
//! asking one another.

use super::types::{Link, Model, Provider, Site};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Availability zones (AWS) or zones (GCP) a cloud site spreads its servers over.
pub const ZONES: usize = 2;

/// `cidrsubnet(net, newbits, index)` as Terraform computes it.
fn cidrsubnet(net: ipnet::Ipv4Net, newbits: u8, index: u32) -> Option<ipnet::Ipv4Net> {
    let prefix = net.prefix_len() + newbits;
    let size = 1u64 << (32 - u32::from(prefix));
    let base = u64::from(u32::from(net.network())) + u64::from(index) * size;
    ipnet::Ipv4Net::new(Ipv4Addr::from(u32::try_from(base).ok()?), prefix).ok()
}

/// `cidrhost(net, host)`.
fn cidrhost(net: ipnet::Ipv4Net, host: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + host)
}

/// The fixed private address of each server on a cloud site, and the zone (subnet)
/// index it is placed in. AWS sites: private subnet `i % ZONES` is
/// `cidrsubnet(vpc, 3, i % ZONES)`, as the module carves it; GCP sites: one
/// subnetwork, the site's CIDR. Hosts start at .10 (both clouds reserve the first few).
pub fn private_ips(m: &Model) -> BTreeMap<String, (Ipv4Addr, usize)> {
    let mut out = BTreeMap::new();
    for site in m.sites.iter().filter(|s| s.is_cloud()) {
        let Some(ipnet::IpNet::V4(net)) = site.cidr else {
            continue;
        };
        let mut names: Vec<&str> = m
            .servers
            .iter()
            .filter(|s| s.site == site.name)
            .map(|s| s.name.as_str())
            .collect();
        names.sort_unstable();
        for (i, n) in names.iter().enumerate() {
            let zone = i % ZONES;
            let ip = match site.provider {
                Provider::Aws => match cidrsubnet(net, 3, zone as u32) {
                    Some(sub) => cidrhost(sub, 10 + (i / ZONES) as u32),
                    None => continue,
                },
                _ => cidrhost(net, 10 + i as u32),
            };
            out.insert(n.to_string(), (ip, zone));
        }
    }
    out
}

/// The name a hub cluster's leaf load balancer answers to (its hubs' certificates
/// carry it; leaves on other sites dial it first).
pub fn lb_name(cluster: &str) -> String {
    format!("{cluster}-lb")
}

/// A hub cluster's leaf load balancer on its site.
pub struct LeafLb {
    pub cluster: String,
    /// "internal" or "external".
    pub scheme: String,
    pub port: u16,
    /// Planned private addresses (internal ones only).
    pub ips: Vec<Ipv4Addr>,
}

/// The leaf load balancers of a site, one per hub cluster that asks for one.
pub fn leaf_lbs(m: &Model, site: &Site) -> Vec<LeafLb> {
    let planned = lb_ips(m);
    m.clusters
        .iter()
        .filter(|c| c.site == site.name)
        .filter_map(|c| {
            let s = m.server(c.servers.first()?)?;
            Some(LeafLb {
                cluster: c.name.clone(),
                scheme: s.leaf_lb.clone()?,
                port: s.leaf_port?,
                ips: planned.get(&c.name).cloned().unwrap_or_default(),
            })
        })
        .collect()
}

/// The fixed private addresses of each internal leaf load balancer, by cluster: host
/// .5 of each zone's private subnet (AWS, one per zone) or of the subnetwork (GCP).
/// External balancers get public addresses from the cloud, so none are planned.
pub fn lb_ips(m: &Model) -> BTreeMap<String, Vec<Ipv4Addr>> {
    let mut out = BTreeMap::new();
    for cl in &m.clusters {
        let Some(first) = cl.servers.first().and_then(|n| m.server(n)) else {
            continue;
        };
        if first.leaf_lb.as_deref() != Some("internal") {
            continue;
        }
        let Some(site) = m.site(&cl.site) else {
            continue;
        };
        let Some(ipnet::IpNet::V4(net)) = site.cidr else {
            continue;
        };
        let ips = match site.provider {
            Provider::Aws => (0..ZONES as u32)
                .filter_map(|z| cidrsubnet(net, 3, z).map(|sub| cidrhost(sub, 5)))
                .collect(),
            _ => vec![cidrhost(net, 5)],
        };
        out.insert(cl.name.clone(), ips);
    }
    out
}

/// Every name whose address is known before anything is applied: cloud servers and
/// internal leaf load balancers. Each payload's `hosts` file carries them.
pub fn known_hosts(m: &Model) -> Vec<(Ipv4Addr, String)> {
    let mut v: Vec<(Ipv4Addr, String)> = private_ips(m)
        .into_iter()
        .map(|(n, (ip, _))| (ip, n))
        .collect();
    for (cluster, ips) in lb_ips(m) {
        if let Some(ip) = ips.first() {
            v.push((*ip, lb_name(&cluster)));
        }
    }
    v
}

// ---- site-to-site connections ---------------------------------------------------

/// How Terraform joins the two ends of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joint {
    /// IPsec with BGP: different clouds, or a cloud and an on-prem router.
    Vpn,
    /// Inter-region VPC peering between two AWS sites.
    AwsPeering,
    /// VPC network peering between two GCP sites.
    GcpPeering,
}

/// What Terraform builds for a link: only `vpn = "ipsec"` links with a cloud end.
pub fn joint(m: &Model, link: &Link) -> Option<Joint> {
    if link.vpn != "ipsec" {
        return None;
    }
    let a = m.site(&link.sites[0])?;
    let b = m.site(&link.sites[1])?;
    match (a.provider, b.provider) {
        (Provider::Aws, Provider::Aws) => Some(Joint::AwsPeering),
        (Provider::Gcp, Provider::Gcp) => Some(Joint::GcpPeering),
        _ if a.is_cloud() || b.is_cloud() => Some(Joint::Vpn),
        _ => None,
    }
}

/// The two BGP inside /30s of the `index`th link (169.254.100.0/22 and up, clear of
/// the ranges AWS reserves).
pub fn inside_cidrs(index: usize) -> [ipnet::Ipv4Net; 2] {
    let base = u32::from(Ipv4Addr::new(169, 254, 100, 0)) + (index as u32) * 8;
    [0, 4].map(|o| ipnet::Ipv4Net::new(Ipv4Addr::from(base + o), 30).expect("a /30"))
}

/// This end's host number in each inside /30: AWS always takes .1, so its peer .2;
/// between GCP and on-prem, GCP takes .1.
pub fn local_host(me: Provider, peer: Provider) -> u8 {
    match (me, peer) {
        (Provider::Aws, _) => 1,
        (_, Provider::Aws) => 2,
        (Provider::Gcp, _) => 1,
        _ => 2,
    }
}

/// The links whose VPN needs a pre-shared key in `secrets/`.
pub fn vpn_links(m: &Model) -> Vec<String> {
    m.links
        .iter()
        .filter(|l| joint(m, l) == Some(Joint::Vpn))
        .map(|l| l.name.clone())
        .collect()
}

/// The ports each server is published on at 127.0.0.1 in the compose bundle, in
/// topology order: container servers get 4222+i and 8222+i; servers on local sites
/// run on the host and keep their own ports.
pub fn host_ports(m: &Model) -> Vec<(u16, u16)> {
    let mut i = 0u16;
    m.servers
        .iter()
        .map(|s| {
            if on_host(m, &s.site) {
                (s.client_port, s.http_port)
            } else {
                i += 1;
                (4221 + i, 8221 + i)
            }
        })
        .collect()
}

/// Whether servers of a site run as processes on this host (local sites) rather
/// than in containers.
pub fn on_host(m: &Model, site: &str) -> bool {
    m.site(site).is_some_and(|x| x.provider == Provider::Local)
}

/// Where link `i`'s API is published on the host.
pub fn link_api_port(i: usize) -> u16 {
    9100 + i as u16
}
