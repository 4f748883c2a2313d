//! Sites: where servers run (provider, region, network) and who may reach them.

use super::check::{check_dns_name, duplicate, missing, Ctx};
use super::types::{Provider, Site};
use crate::diag::Diagnostic;
use crate::topology::{self, StrList, Topology};

/// The site of this name.
pub(super) fn named<'a>(sites: &'a [Site], n: &str) -> Option<&'a Site> {
    sites.iter().find(|s| s.name == n)
}

pub(super) fn build(c: &mut Ctx, t: &Topology) -> Vec<Site> {
    let mut sites: Vec<Site> = Vec::new();
    for s in &t.sites {
        check_dns_name(c, "site", &s.name);
        if sites.iter().any(|x| x.name == s.name.value) {
            c.err(duplicate("site", &s.name));
            continue;
        }
        let site = site(c, s, &sites);
        sites.push(site);
    }
    sites
}

fn site(c: &mut Ctx, s: &topology::Site, earlier: &[Site]) -> Site {
    let provider = provider(c, s);
    let cidr = network(c, s, provider);
    let mut client_cidrs = cidr_list(c, &s.client_cidrs);
    let mut admin_cidrs = cidr_list(c, &s.admin_cidrs);
    if s.client_cidrs.is_none() {
        client_cidrs.extend(cidr);
    }
    if s.admin_cidrs.is_none() {
        admin_cidrs.extend(cidr);
    }
    Site {
        name: s.name.value.clone(),
        provider,
        region: s.region.as_ref().map(|r| r.value.clone()),
        cidr,
        client_cidrs,
        admin_cidrs,
        asn: asn(c, s, earlier),
    }
}

fn provider(c: &mut Ctx, s: &topology::Site) -> Provider {
    match s
        .provider
        .as_ref()
        .map(|p| (p.value.as_str(), p.span.clone()))
    {
        Some(("aws", _)) => Provider::Aws,
        Some(("gcp", _)) => Provider::Gcp,
        Some(("onprem", _)) => Provider::Onprem,
        Some(("edge", _)) => Provider::Edge,
        Some(("local", _)) => Provider::Local,
        Some((other, span)) => {
            c.err(
                Diagnostic::error(format!("unknown provider \"{other}\""), span)
                    .label("not a provider Canopy deploys to")
                    .help("provider is one of: aws, gcp, onprem, edge, local"),
            );
            Provider::Local
        }
        None => {
            c.err(missing(
                "provider",
                &s.name,
                "site",
                "provider = \"onprem\"",
            ));
            Provider::Local
        }
    }
}

/// The site's CIDR; a cloud site must have one, large enough, and a region.
fn network(c: &mut Ctx, s: &topology::Site, provider: Provider) -> Option<ipnet::IpNet> {
    let cidr = s
        .cidr
        .as_ref()
        .and_then(|x| match x.value.parse::<ipnet::IpNet>() {
            Ok(n) => Some(n),
            Err(_) => {
                c.err(
                    Diagnostic::error(format!("invalid CIDR \"{}\"", x.value), x.span.clone())
                        .label("not an address/prefix")
                        .help("for example: cidr = \"10.20.0.0/16\""),
                );
                None
            }
        });
    let cloud = matches!(provider, Provider::Aws | Provider::Gcp);
    if cloud && s.cidr.is_none() {
        c.err(
            Diagnostic::error(
                format!("site \"{}\" has no `cidr`", s.name.value,),
                s.name.span.clone(),
            )
            .label(format!(
                "an {} site's network needs an address range",
                provider.as_str()
            ))
            .help("for example: cidr = \"10.20.0.0/16\" (a /18 or larger)"),
        );
    }
    if cloud && s.region.is_none() {
        c.err(missing(
            "region",
            &s.name,
            "site",
            "region = \"eu-central-1\"",
        ));
    }
    if let (true, Some(n), Some(x)) = (cloud, cidr, &s.cidr) {
        if n.prefix_len() > 18 || !matches!(n, ipnet::IpNet::V4(_)) {
            c.err(
                Diagnostic::error(
                    format!("cidr \"{}\" is too small for a cloud network", x.value),
                    x.span.clone(),
                )
                .label("Terraform splits it into subnets per zone")
                .help("give an IPv4 /18 or larger, e.g. \"10.20.0.0/16\""),
            );
        }
    }
    cidr
}

fn cidr_list(c: &mut Ctx, l: &Option<StrList>) -> Vec<ipnet::IpNet> {
    let mut out = Vec::new();
    for x in l.iter().flat_map(|l| l.value.iter()) {
        match x.value.parse::<ipnet::IpNet>() {
            Ok(ipnet::IpNet::V4(n)) if n.prefix_len() == 0 => c.err(
                Diagnostic::error("the whole internet is not a client range", x.span.clone())
                    .label("0.0.0.0/0")
                    .help("name the networks clients and admins come from"),
            ),
            Ok(n) => out.push(n),
            Err(_) => c.err(
                Diagnostic::error(format!("invalid CIDR \"{}\"", x.value), x.span.clone())
                    .label("not an address/prefix")
                    .help("for example: \"10.20.0.0/16\""),
            ),
        }
    }
    out
}

/// The site's BGP ASN: given, or 64512 + its place among the sites; one per site.
fn asn(c: &mut Ctx, s: &topology::Site, earlier: &[Site]) -> u32 {
    let asn = match &s.asn {
        Some(a) if !(64512..=65534).contains(&a.value) => {
            c.err(
                Diagnostic::error(
                    format!("asn {} is not a private ASN", a.value),
                    a.span.clone(),
                )
                .label("VPN gateways take a private 16-bit ASN")
                .help("use 64512-65534"),
            );
            64512
        }
        Some(a) => a.value as u32,
        None => 64512 + earlier.len() as u32,
    };
    if let Some(other) = earlier.iter().find(|o| o.asn == asn) {
        c.err(
            Diagnostic::error(
                format!(
                    "site \"{}\" has the ASN of site \"{}\" ({asn})",
                    s.name.value, other.name
                ),
                s.asn
                    .as_ref()
                    .map_or(s.name.span.clone(), |a| a.span.clone()),
            )
            .label("BGP peers need different ASNs")
            .help("give each site its own `asn` in 64512-65534"),
        );
    }
    asn
}
