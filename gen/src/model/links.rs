//! Site links: the VPN between two sites, and how compose simulates it.

use super::check::{bandwidth_ok, check_dns_name, duplicate, duration_ok, missing, unknown, Ctx};
use super::sites::named;
use super::types::{Link, Provider, Site};
use crate::diag::Diagnostic;
use crate::topology::{self, Topology};
use std::collections::HashMap;

/// The link joining each pair of sites (a [`pair`]), by its place in the links.
pub(super) type Pairs = HashMap<(String, String), usize>;

/// Two sites in the order [`Pairs`] keys them by.
pub(super) fn pair(a: &str, b: &str) -> (String, String) {
    if a < b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

pub(super) fn build(c: &mut Ctx, t: &Topology, sites: &[Site]) -> (Vec<Link>, Pairs) {
    let mut links: Vec<Link> = Vec::new();
    let mut pairs: Pairs = HashMap::new();
    for l in &t.links {
        check_dns_name(c, "link", &l.name);
        if links.iter().any(|x| x.name == l.name.value) {
            c.err(duplicate("link", &l.name));
            continue;
        }
        let Some((a, b, ends)) = ends(c, l, sites) else {
            continue;
        };
        check_ipsec_cidrs(c, l, sites, &a, &b);
        let key = pair(&a, &b);
        if pairs.contains_key(&key) {
            c.err(
                Diagnostic::error(
                    format!("sites \"{a}\" and \"{b}\" are already joined by another link"),
                    ends.span.clone(),
                )
                .label("second link between the same sites")
                .help("one link stands for one VPN between two sites; remove one"),
            );
            continue;
        }
        if let (Some(x), Some(y)) = (
            named(sites, &a).and_then(|s| s.cidr),
            named(sites, &b).and_then(|s| s.cidr),
        ) {
            if x.contains(&y.network()) || y.contains(&x.network()) {
                c.err(
                    Diagnostic::error(
                        format!("sites \"{a}\" ({x}) and \"{b}\" ({y}) overlap"),
                        ends.span.clone(),
                    )
                    .label("a VPN cannot route between overlapping networks")
                    .help("give each site its own address range"),
                );
            }
        }
        check_shaping(c, l);
        pairs.insert(key, links.len());
        links.push(Link {
            name: l.name.value.clone(),
            service: format!("link-{}", l.name.value),
            sites: [a, b],
            vpn: l.vpn.as_ref().map_or("vpn".into(), |v| v.value.clone()),
            latency: l.latency.as_ref().map(|v| v.value.clone()),
            jitter: l.jitter.as_ref().map(|v| v.value.clone()),
            bandwidth: l.bandwidth.as_ref().map(|v| v.value.clone()),
            forwards: Vec::new(),
        });
    }
    (links, pairs)
}

/// The two sites a link joins: known, not local, and different.
fn ends<'t>(
    c: &mut Ctx,
    l: &'t topology::Link,
    sites: &[Site],
) -> Option<(String, String, &'t topology::StrList)> {
    let Some(ends) = &l.sites else {
        c.err(missing(
            "sites",
            &l.name,
            "link",
            "sites = [\"edge-1\", \"central\"]",
        ));
        return None;
    };
    if ends.value.len() != 2 {
        c.err(
            Diagnostic::error("a link joins exactly two sites", ends.span.clone())
                .label(format!("{} sites given", ends.value.len()))
                .help("write one `link` block for each pair of sites"),
        );
        return None;
    }
    let mut ok = true;
    for e in &ends.value {
        match named(sites, &e.value) {
            None => {
                c.err(unknown("site", e, sites.iter().map(|s| s.name.as_str())));
                ok = false;
            }
            Some(s) if s.provider == Provider::Local => {
                c.err(
                    Diagnostic::error(
                        format!("site \"{}\" is local and cannot be joined by a link", e.value),
                        e.span.clone(),
                    )
                    .label("local sites are processes on this host")
                    .help("give the site a provider (aws, gcp, onprem, edge) to simulate a link to it"),
                );
                ok = false;
            }
            Some(_) => {}
        }
    }
    if !ok {
        return None;
    }
    let (a, b) = (ends.value[0].value.clone(), ends.value[1].value.clone());
    if a == b {
        c.err(
            Diagnostic::error("a link must join two different sites", ends.span.clone())
                .label(format!("both ends are \"{a}\""))
                .help("servers on one site reach each other directly"),
        );
        return None;
    }
    Some((a, b, ends))
}

/// Terraform builds IPsec links that touch a cloud site; both ends then route each
/// other's CIDR.
fn check_ipsec_cidrs(c: &mut Ctx, l: &topology::Link, sites: &[Site], a: &str, b: &str) {
    if let Some(v) = l.vpn.as_ref().filter(|v| v.value == "ipsec") {
        let ends = [named(sites, a), named(sites, b)];
        if ends.iter().flatten().any(|s| s.is_cloud()) {
            for s in ends.iter().flatten().filter(|s| s.cidr.is_none()) {
                c.err(
                    Diagnostic::error(
                        format!(
                            "ipsec link \"{}\" needs a cidr on site \"{}\"",
                            l.name.value, s.name
                        ),
                        v.span.clone(),
                    )
                    .label("each end of the VPN announces and routes its site's CIDR")
                    .help(format!(
                        "give site \"{}\" a cidr, e.g. cidr = \"192.168.0.0/20\"",
                        s.name
                    )),
                );
            }
        }
    }
}

/// The link's latency, jitter and bandwidth, as linksim takes them.
fn check_shaping(c: &mut Ctx, l: &topology::Link) {
    for (v, what) in [(&l.latency, "latency"), (&l.jitter, "jitter")] {
        if let Some(v) = v {
            if !duration_ok(&v.value) {
                c.err(
                    Diagnostic::error(format!("invalid {what} \"{}\"", v.value), v.span.clone())
                        .label("not a duration")
                        .help("write a number and a unit: \"20ms\", \"1.5s\", \"250us\""),
                );
            }
        }
    }
    if let Some(bw) = &l.bandwidth {
        if !bandwidth_ok(&bw.value) {
            c.err(
                Diagnostic::error(
                    format!("invalid bandwidth \"{}\"", bw.value),
                    bw.span.clone(),
                )
                .label("not a rate")
                .help("write a number and a unit: \"512kbit\", \"10mbit\", \"1gbit\""),
            );
        }
    }
}
