//! `terraform/`: one root module per site, `terraform/<provider>/<site>/`, calling the
//! vendored module for its provider (`terraform/modules/{aws,gcp,onprem}`) with values
//! from the topology, plus `terraform.tfvars.example`, a commented `backend.tf`, outputs
//! for every endpoint and a README with what is created and the order to apply sites in.
//!
//! Cloud servers get fixed private addresses, planned here, so every site's configs and
//! `/etc/hosts` entries are known before anything is applied. Links with
//! `vpn = "ipsec"` that touch a cloud site become site-to-site connections: IPsec with
//! BGP between different providers (or a cloud and an on-prem router), VPC or network
//! peering between two sites of one cloud.
//!
//! HCL is written by [`Hcl`], which aligns attributes the way `terraform fmt` does.

use crate::bundle::{Bundle, PUBLIC};
pub use crate::model::binary;
use crate::model::netplan::local_host;
pub use crate::model::netplan::{
    inside_cidrs, joint, known_hosts, lb_ips, lb_name, leaf_lbs, private_ips, vpn_links, Joint,
    LeafLb, ZONES,
};
use crate::model::{Model, Provider, Server, Site};
use crate::topology::NodeKind;
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

macro_rules! module_files {
    ($name:literal, $($file:literal),+) => {
        &[$(($file, include_str!(concat!("../../../terraform/modules/", $name, "/", $file)))),+]
    };
}

const MODULE_AWS: &[(&str, &str)] = module_files!(
    "aws",
    "main.tf",
    "variables.tf",
    "outputs.tf",
    "versions.tf",
    "cloud-init.sh.tftpl",
    "README.md"
);
const MODULE_GCP: &[(&str, &str)] = module_files!(
    "gcp",
    "main.tf",
    "variables.tf",
    "outputs.tf",
    "versions.tf",
    "cloud-init.sh.tftpl",
    "README.md"
);
const MODULE_ONPREM: &[(&str, &str)] = module_files!(
    "onprem",
    "main.tf",
    "variables.tf",
    "outputs.tf",
    "versions.tf",
    "README.md"
);

/// The vendored module a provider's sites call, and its files.
pub fn module_of(p: Provider) -> Option<(&'static str, &'static [(&'static str, &'static str)])> {
    match p {
        Provider::Aws => Some(("aws", MODULE_AWS)),
        Provider::Gcp => Some(("gcp", MODULE_GCP)),
        Provider::Onprem | Provider::Edge => Some(("onprem", MODULE_ONPREM)),
        Provider::Local => None,
    }
}

/// The directory of a site's root module.
pub fn site_dir(site: &Site) -> String {
    format!("terraform/{}/{}", site.provider.as_str(), site.name)
}

/// A link's inside /30s for a README: `a`, `b`.
fn inside_prose(index: usize) -> String {
    inside_cidrs(index)
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A link seen from one of its sites.
struct End<'a> {
    link: &'a crate::model::Link,
    index: usize,
    joint: Joint,
    peer: &'a Site,
}

fn ends<'a>(m: &'a Model, site: &Site) -> Vec<End<'a>> {
    m.links
        .iter()
        .enumerate()
        .filter_map(|(index, link)| {
            let joint = joint(m, link)?;
            let peer = if link.sites[0] == site.name {
                &link.sites[1]
            } else if link.sites[1] == site.name {
                &link.sites[0]
            } else {
                return None;
            };
            Some(End {
                link,
                index,
                joint,
                peer: m.site(peer)?,
            })
        })
        .collect()
}

pub fn psk_path(link: &str) -> String {
    format!("secrets/vpn-{link}.psk")
}

// ---- an HCL writer that lays out as `terraform fmt` does -------------------------

/// A value: a one-line expression, or a nested object/map written over lines.
#[derive(Clone)]
enum V {
    Expr(String),
    Obj(Vec<(String, V)>),
}

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn e(s: impl Into<String>) -> V {
    V::Expr(s.into())
}

fn qs(s: &str) -> V {
    V::Expr(q(s))
}

/// `[a, b]` from already-written items.
fn hcl_list<I: IntoIterator<Item = String>>(items: I) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(", "))
}

fn list<I: IntoIterator<Item = String>>(items: I) -> V {
    V::Expr(hcl_list(items))
}

#[derive(Default)]
struct Hcl {
    out: String,
    indent: usize,
}

impl Hcl {
    fn line(&mut self, s: &str) {
        if s.is_empty() {
            self.out.push('\n');
        } else {
            let _ = writeln!(self.out, "{:width$}{s}", "", width = self.indent);
        }
    }

    fn open(&mut self, header: &str) {
        self.line(&format!("{header} {{"));
        self.indent += 2;
    }

    fn close(&mut self) {
        self.indent -= 2;
        self.line("}");
    }

    /// Attributes: runs of one-line values align their `=`; a multi-line value stands
    /// alone (`key = {`) and ends the run, as `terraform fmt` does.
    fn attrs(&mut self, attrs: Vec<(String, V)>) {
        let one_line = |v: &V| matches!(v, V::Expr(x) if !x.contains('\n'));
        let mut i = 0;
        while i < attrs.len() {
            let mut j = i;
            while j < attrs.len() && one_line(&attrs[j].1) {
                j += 1;
            }
            // A run of one-line values, or a single multi-line one.
            let (end, width) = if j == i {
                (i + 1, 0)
            } else {
                (
                    j,
                    attrs[i..j].iter().map(|(k, _)| k.len()).max().unwrap_or(0),
                )
            };
            for (k, v) in &attrs[i..end] {
                match v {
                    V::Expr(x) => self.line(&format!("{k:<width$} = {x}")),
                    V::Obj(fields) => {
                        self.line(&format!("{k:<width$} = {{"));
                        self.indent += 2;
                        self.attrs(fields.clone());
                        self.indent -= 2;
                        self.line("}");
                    }
                }
            }
            i = end;
        }
    }

    fn finish(self) -> String {
        let mut s = self.out;
        while s.ends_with("\n\n") {
            s.pop();
        }
        s
    }
}

fn a(k: &str, v: V) -> (String, V) {
    (k.to_string(), v)
}

// ---- per-site facts -------------------------------------------------------------

/// The JetStream volume size in GB: the store's `max_file` with a fifth to spare, at
/// least 10; 20 when no limit is set.
fn jetstream_gb(s: &Server) -> u64 {
    let Some(js) = &s.jetstream else { return 0 };
    let Some(max) = js.max_file.as_deref() else {
        return 20;
    };
    let t = max.trim().to_ascii_uppercase();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: u64 = digits.parse().unwrap_or(0);
    let unit = t[digits.len()..].trim().trim_end_matches('B');
    let gb = match unit {
        "T" => n * 1024,
        "G" => n,
        "M" => n.div_ceil(1024),
        "K" | "" => 1,
        _ => 20,
    };
    (gb + gb.div_ceil(5)).max(10)
}

/// Hub servers (by name) a server's remotes dial.
fn upstream_servers<'a>(m: &'a Model, s: &Server) -> Vec<&'a Server> {
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
fn upstreams(m: &Model, s: &Server) -> BTreeSet<(u16, String)> {
    upstream_servers(m, s)
        .into_iter()
        .filter_map(|h| {
            let cidr = m.site(&h.site)?.cidr?;
            Some((h.leaf_port?, cidr.to_string()))
        })
        .collect()
}

/// CIDRs of the sites whose servers dial hubs on `site`.
fn leaf_cidrs(m: &Model, site: &Site) -> BTreeSet<String> {
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

// ---- rendering ------------------------------------------------------------------

pub fn render(m: &Model, bundle: &mut Bundle) -> Result<()> {
    let ips = private_ips(m);
    let mut used: BTreeMap<&str, &[(&str, &str)]> = BTreeMap::new();
    for site in &m.sites {
        let Some((module, files)) = module_of(site.provider) else {
            continue;
        };
        let servers: Vec<&Server> = {
            let mut v: Vec<&Server> = m.servers.iter().filter(|s| s.site == site.name).collect();
            v.sort_by(|a, b| a.name.cmp(&b.name));
            v
        };
        let links = ends(m, site);
        // A cloud site is built even with no server (a VPN hub for others); an
        // on-prem site is only its servers.
        if servers.is_empty() && (links.is_empty() || !site.is_cloud()) {
            continue;
        }
        used.insert(module, files);
        let d = site_dir(site);
        let versions = files
            .iter()
            .find(|(f, _)| *f == "versions.tf")
            .map_or("", |(_, t)| t);
        bundle.add(format!("{d}/versions.tf"), versions, PUBLIC);
        let r = match site.provider {
            Provider::Aws | Provider::Gcp => cloud_root(m, site, &servers, &links, &ips),
            _ => onprem_root(m, site, &servers, &links),
        };
        bundle.add(format!("{d}/main.tf"), r.main, PUBLIC);
        bundle.add(format!("{d}/variables.tf"), r.variables, PUBLIC);
        bundle.add(format!("{d}/outputs.tf"), r.outputs, PUBLIC);
        bundle.add(format!("{d}/terraform.tfvars.example"), r.tfvars, PUBLIC);
        bundle.add(format!("{d}/backend.tf"), backend(m, site), PUBLIC);
        bundle.add(format!("{d}/README.md"), r.readme, PUBLIC);
    }
    for (module, files) in used {
        for (name, body) in files {
            bundle.add(format!("terraform/modules/{module}/{name}"), *body, PUBLIC);
        }
    }
    Ok(())
}

struct Root {
    main: String,
    variables: String,
    outputs: String,
    tfvars: String,
    readme: String,
}

fn backend(m: &Model, site: &Site) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "# Keep this site's state remotely, encrypted: it holds the site's secrets (the payload"
    );
    let _ = writeln!(
        b,
        "# and VPN keys). Uncomment and fill in one backend, then `terraform init -migrate-state`."
    );
    let _ = writeln!(b, "# terraform {{");
    match site.provider {
        Provider::Gcp => {
            let _ = writeln!(b, "#   backend \"gcs\" {{");
            let _ = writeln!(b, "#     bucket = \"my-terraform-state\"");
            let _ = writeln!(b, "#     prefix = \"canopy/{}/{}\"", m.name, site.name);
        }
        _ => {
            let _ = writeln!(b, "#   backend \"s3\" {{");
            let _ = writeln!(b, "#     bucket  = \"my-terraform-state\"");
            let _ = writeln!(
                b,
                "#     key     = \"canopy/{}/{}.tfstate\"",
                m.name, site.name
            );
            let _ = writeln!(
                b,
                "#     region  = \"{}\"",
                site.region
                    .as_deref()
                    .filter(|_| site.provider == Provider::Aws)
                    .unwrap_or("eu-central-1")
            );
            let _ = writeln!(b, "#     encrypt = true");
        }
    }
    let _ = writeln!(b, "#   }}");
    let _ = writeln!(b, "# }}");
    b
}

fn header(m: &Model, site: &Site, what: &str) -> String {
    format!(
        "# Site \"{}\" of topology \"{}\" ({}): {what}.\n# Generated by canopy; edit terraform.tfvars, not this file.\n",
        site.name,
        m.name,
        site.provider.as_str()
    )
}

fn tf_name(m: &Model, site: &Site) -> String {
    let mut n = format!("{}-{}", m.name, site.name)
        .to_ascii_lowercase()
        .replace('_', "-");
    n.truncate(32);
    n.trim_end_matches('-').to_string()
}

fn scheme(m: &Model) -> &'static str {
    if m.tls {
        "tls"
    } else {
        "nats"
    }
}

fn cloud_root(
    m: &Model,
    site: &Site,
    servers: &[&Server],
    links: &[End],
    ips: &BTreeMap<String, (Ipv4Addr, usize)>,
) -> Root {
    let aws = site.provider == Provider::Aws;
    let module = if aws { "aws" } else { "gcp" };
    let region = site.region.clone().unwrap_or_default();
    let cidr = site.cidr.map(|c| c.to_string()).unwrap_or_default();
    let vpns: Vec<&End> = links.iter().filter(|l| l.joint == Joint::Vpn).collect();
    let peerings: Vec<&End> = links.iter().filter(|l| l.joint != Joint::Vpn).collect();
    let lbs = leaf_lbs(m, site);
    let external_lb = lbs.iter().any(|lb| lb.scheme == "external");
    let size_var = if aws { "instance_type" } else { "machine_type" };

    // main.tf
    let mut h = Hcl::default();
    h.out.push_str(&header(
        m,
        site,
        &format!("its network and {} server(s)", servers.len()),
    ));
    h.open(&format!(
        "provider \"{}\"",
        if aws { "aws" } else { "google" }
    ));
    let mut p = vec![];
    if !aws {
        p.push(a("project", e("var.project")));
    }
    p.push(a("region", qs(&region)));
    h.attrs(p);
    if aws {
        h.line("");
        h.open("default_tags");
        h.attrs(vec![a(
            "tags",
            e(format!(
                "{{ \"canopy:topology\" = {}, \"canopy:site\" = {} }}",
                q(&m.name),
                q(&site.name)
            )),
        )]);
        h.close();
    }
    h.close();
    h.line("");
    h.open("module \"site\"");
    h.attrs(vec![a("source", qs(&format!("../../modules/{module}")))]);
    h.line("");
    let mut attrs = vec![
        a("name", qs(&tf_name(m, site))),
        a(if aws { "vpc_cidr" } else { "subnet_cidr" }, qs(&cidr)),
    ];
    if aws {
        attrs.push(a("availability_zones", e("var.availability_zones")));
    } else {
        attrs.push(a("region", qs(&region)));
    }
    attrs.extend([
        a(
            "client_cidrs",
            list(site.client_cidrs.iter().map(|c| q(&c.to_string()))),
        ),
        a(
            "admin_cidrs",
            list(site.admin_cidrs.iter().map(|c| q(&c.to_string()))),
        ),
        a("leaf_cidrs", list(leaf_cidrs(m, site).iter().map(|c| q(c)))),
        a("payload_dir", qs("${path.module}/../../../deploy")),
        a("server_binary", e("var.server_binary")),
        a(
            if aws {
                "existing_vpc"
            } else {
                "existing_network"
            },
            e(if aws {
                "var.existing_vpc"
            } else {
                "var.existing_network"
            }),
        ),
        a(
            if aws { "amazon_side_asn" } else { "router_asn" },
            e(site.asn.to_string()),
        ),
        a("extra_hosts", e("var.extra_hosts")),
    ]);
    if external_lb {
        attrs.push(a("leaf_public_cidrs", e("var.leaf_public_cidrs")));
    }
    h.attrs(attrs);
    let lb_attrs: Vec<(String, V)> = lbs
        .iter()
        .map(|lb| {
            a(
                &q(&lb.cluster),
                e(format!(
                    "{{ scheme = {}, port = {}, private_ips = {} }}",
                    q(&lb.scheme),
                    lb.port,
                    hcl_list(lb.ips.iter().map(|i| q(&i.to_string())))
                )),
            )
        })
        .collect();
    if !lb_attrs.is_empty() {
        h.line("");
        h.attrs(vec![a("leaf_lbs", V::Obj(lb_attrs))]);
    }
    h.line("");
    let mut srv = Vec::new();
    for s in servers {
        let (ip, zone) = ips
            .get(&s.name)
            .copied()
            .unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
        let ups: Vec<String> = upstreams(m, s)
            .into_iter()
            .map(|(p, c)| format!("{{ port = {p}, cidr = {} }}", q(&c)))
            .collect();
        let f = vec![
            a("binary", qs(binary(s))),
            a("cluster", qs(&s.cluster)),
            a(size_var, e(format!("var.{size_var}"))),
            a("private_ip", qs(&ip.to_string())),
            a("zone_index", e(zone.to_string())),
            a("client_port", e(s.client_port.to_string())),
            a("monitor_port", e(s.http_port.to_string())),
            a("cluster_port", e(s.cluster_port.unwrap_or(0).to_string())),
            a("leaf_port", e(s.leaf_port.unwrap_or(0).to_string())),
            a("jetstream_gb", e(jetstream_gb(s).to_string())),
            a("upstreams", list(ups)),
        ];
        srv.push(a(&q(&s.name), V::Obj(f)));
    }
    h.attrs(vec![a("servers", V::Obj(srv))]);
    if !vpns.is_empty() {
        h.line("");
        let mut v = Vec::new();
        for l in &vpns {
            let peer_cidrs: Vec<String> = l.peer.cidr.iter().map(|c| q(&c.to_string())).collect();
            let inside = inside_cidrs(l.index);
            let mut f = vec![];
            if aws {
                f.push(a(
                    "peer_ip",
                    e(format!(
                        "lookup(var.vpn_peer_ips, {}, \"\")",
                        q(&l.link.name)
                    )),
                ));
            } else {
                f.push(a(
                    "peer_ips",
                    e(format!("lookup(var.vpn_peer_ips, {}, [])", q(&l.link.name))),
                ));
            }
            f.push(a("peer_asn", e(l.peer.asn.to_string())));
            f.push(a("peer_cidrs", list(peer_cidrs)));
            f.push(a(
                "inside_cidrs",
                list(inside.iter().map(|c| q(&c.to_string()))),
            ));
            if !aws {
                f.push(a(
                    "local_host",
                    e(local_host(site.provider, l.peer.provider).to_string()),
                ));
            }
            v.push(a(&q(&l.link.name), V::Obj(f)));
        }
        h.attrs(vec![a("vpn_links", V::Obj(v))]);
        let k: Vec<(String, V)> = vpns
            .iter()
            .map(|l| {
                a(
                    &q(&l.link.name),
                    e(format!(
                        "trimspace(file(\"${{path.module}}/../../../{}\"))",
                        psk_path(&l.link.name)
                    )),
                )
            })
            .collect();
        h.attrs(vec![a("vpn_psks", V::Obj(k))]);
    }
    if !peerings.is_empty() {
        h.line("");
        let mut v = Vec::new();
        for l in &peerings {
            let pc = l.peer.cidr.map(|c| c.to_string()).unwrap_or_default();
            let f = if aws {
                let requester = l.link.sites[0] == site.name;
                vec![
                    a("role", qs(if requester { "requester" } else { "accepter" })),
                    a(
                        "peer_region",
                        qs(l.peer.region.as_deref().unwrap_or_default()),
                    ),
                    a("peer_cidr", qs(&pc)),
                    a(
                        "peer_vpc_id",
                        e(format!(
                            "lookup(var.peer_vpc_ids, {}, \"\")",
                            q(&l.link.name)
                        )),
                    ),
                    a(
                        "peering_id",
                        e(format!(
                            "lookup(var.peering_ids, {}, \"\")",
                            q(&l.link.name)
                        )),
                    ),
                ]
            } else {
                vec![
                    a(
                        "peer_network",
                        e(format!(
                            "lookup(var.peer_networks, {}, \"\")",
                            q(&l.link.name)
                        )),
                    ),
                    a("peer_cidr", qs(&pc)),
                ]
            };
            v.push(a(&q(&l.link.name), V::Obj(f)));
        }
        h.attrs(vec![a(
            if aws {
                "vpc_peerings"
            } else {
                "network_peerings"
            },
            V::Obj(v),
        )]);
    }
    h.close();
    let main = h.finish();

    // variables.tf
    let mut vars = String::new();
    let var = |vars: &mut String,
               name: &str,
               desc: &str,
               ty: &str,
               default: Option<&str>,
               validation: Option<(String, String)>| {
        let mut h = Hcl::default();
        h.open(&format!("variable {}", q(name)));
        let mut at = vec![a("description", qs(desc)), a("type", e(ty))];
        if let Some(d) = default {
            at.push(a("default", e(d)));
        }
        h.attrs(at);
        if let Some((cond, msg)) = validation {
            h.line("");
            h.open("validation");
            h.attrs(vec![a("condition", e(cond)), a("error_message", qs(&msg))]);
            h.close();
        }
        h.close();
        if !vars.is_empty() {
            vars.push('\n');
        }
        vars.push_str(&h.finish());
    };
    if !aws {
        var(
            &mut vars,
            "project",
            "The GCP project to build the site in.",
            "string",
            None,
            None,
        );
    }
    var(
        &mut vars,
        "server_binary",
        &format!(
            "Local path of the static linux/amd64 {} binary the servers run (the topology's image decides).",
            servers.first().map_or("canopy-server", |s| binary(s))
        ),
        "string",
        None,
        Some((
            "fileexists(var.server_binary)".into(),
            "server_binary must name an existing file.".into(),
        )),
    );
    var(
        &mut vars,
        size_var,
        "Size of every server's instance.",
        "string",
        Some(if aws {
            "\"t3.medium\""
        } else {
            "\"e2-standard-2\""
        }),
        None,
    );
    if aws {
        var(
            &mut vars,
            "availability_zones",
            &format!("The {ZONES} availability zones servers spread over, in order (a server's zone_index picks one)."),
            "list(string)",
            Some(&format!(
                "[{}]",
                (0..ZONES)
                    .map(|i| q(&format!("{region}{}", (b'a' + i as u8) as char)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some((
                format!("length(var.availability_zones) == {ZONES}"),
                format!("Give {ZONES} availability zones: the servers' addresses are planned in {ZONES} subnets."),
            )),
        );
        var(&mut vars, "existing_vpc", "Deploy into this VPC instead of creating one (see the module's README); its private subnets must hold the servers' addresses.", "object({\n    vpc_id             = string\n    private_subnet_ids = list(string)\n    public_subnet_ids  = list(string)\n    route_table_ids    = list(string)\n  })", Some("null"), None);
    } else {
        var(&mut vars, "existing_network", "Deploy into this network and subnetwork (self links) instead of creating them; the subnetwork must be the site's CIDR.", "object({\n    network    = string\n    subnetwork = string\n  })", Some("null"), None);
    }
    var(
        &mut vars,
        "extra_hosts",
        "Addresses of servers on on-prem and edge sites, by server name, for /etc/hosts (cloud servers' addresses are already known).",
        "map(string)",
        Some("{}"),
        None,
    );
    if external_lb {
        var(
            &mut vars,
            "leaf_public_cidrs",
            "Public addresses of leaves that dial the external leaf load balancer.",
            "list(string)",
            None,
            Some((
                "length(var.leaf_public_cidrs) > 0".into(),
                "Name where leaves dial the external load balancer from.".into(),
            )),
        );
    }
    if !vpns.is_empty() {
        let names: Vec<String> = vpns.iter().map(|l| q(&l.link.name)).collect();
        var(
            &mut vars,
            "vpn_peer_ips",
            if aws {
                "The peer gateway's public address of each VPN link (see README: known once the peer site is applied)."
            } else {
                "The peer gateway's public addresses of each VPN link (see README: known once the peer site is applied)."
            },
            if aws {
                "map(string)"
            } else {
                "map(list(string))"
            },
            Some("{}"),
            Some((
                format!(
                    "alltrue([for k in keys(var.vpn_peer_ips) : contains([{}], k)])",
                    names.join(", ")
                ),
                format!(
                    "vpn_peer_ips takes these links: {}.",
                    vpns.iter()
                        .map(|l| l.link.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        );
    }
    if !peerings.is_empty() {
        if aws {
            var(
                &mut vars,
                "peer_vpc_ids",
                "The peer site's VPC of each peering this site requests (its vpc_id output).",
                "map(string)",
                Some("{}"),
                None,
            );
            var(&mut vars, "peering_ids", "The peering id of each peering this site accepts (the requesting site's vpc_peering_ids output).", "map(string)", Some("{}"), None);
        } else {
            var(
                &mut vars,
                "peer_networks",
                "The peer site's network self link of each peering (its network output).",
                "map(string)",
                Some("{}"),
                None,
            );
        }
    }

    // outputs.tf
    let mut outs = String::new();
    let out = |outs: &mut String, name: &str, desc: &str, value: V| {
        let mut h = Hcl::default();
        h.open(&format!("output {}", q(name)));
        h.attrs(vec![a("description", qs(desc)), a("value", value)]);
        h.close();
        if !outs.is_empty() {
            outs.push('\n');
        }
        outs.push_str(&h.finish());
    };
    let per_server = |port: &dyn Fn(&Server) -> Option<u16>, sch: &str| {
        V::Obj(
            servers
                .iter()
                .filter_map(|s| {
                    let p = port(s)?;
                    Some(a(&q(&s.name), qs(&format!("{sch}://{}:{p}", s.name))))
                })
                .collect(),
        )
    };
    out(
        &mut outs,
        "client_urls",
        "The client URL of each server (names resolve inside the topology's sites).",
        per_server(&|s| Some(s.client_port), scheme(m)),
    );
    out(
        &mut outs,
        "monitoring_urls",
        "The monitoring endpoint of each server.",
        per_server(&|s| Some(s.http_port), "http"),
    );
    if servers.iter().any(|s| s.leaf_port.is_some()) {
        out(
            &mut outs,
            "leafnode_urls",
            "Where leaves dial this site's hubs.",
            per_server(&|s| s.leaf_port, "nats-leaf"),
        );
    }
    out(
        &mut outs,
        "private_ips",
        "The private address of each server (put on-prem hosts' files or DNS in step).",
        e("module.site.private_ips"),
    );
    if aws {
        out(
            &mut outs,
            "vpc_id",
            "The site's VPC.",
            e("module.site.vpc_id"),
        );
    } else {
        out(
            &mut outs,
            "network",
            "The site's network.",
            e("module.site.network"),
        );
    }
    if !lbs.is_empty() {
        if aws {
            out(
                &mut outs,
                "leaf_lb_dns_names",
                "Each leaf load balancer's DNS name, by cluster.",
                e("module.site.leaf_lb_dns_names"),
            );
            out(&mut outs, "leaf_lb_public_ips", "Each external leaf load balancer's public addresses: point its <cluster>-lb name at them.", e("module.site.leaf_lb_public_ips"));
        } else {
            out(
                &mut outs,
                "leaf_lb_addresses",
                "Each leaf load balancer's address, by cluster.",
                e("module.site.leaf_lb_addresses"),
            );
        }
    }
    if !vpns.is_empty() {
        if aws {
            out(
                &mut outs,
                "vpn_tunnel_addresses",
                "Each VPN link's two AWS tunnel endpoints, for the peer site.",
                e("module.site.vpn_tunnel_addresses"),
            );
        } else {
            out(
                &mut outs,
                "vpn_gateway_addresses",
                "The HA VPN gateway's two addresses, for the peer sites.",
                e("module.site.vpn_gateway_addresses"),
            );
        }
    }
    if aws && peerings.iter().any(|l| l.link.sites[0] == site.name) {
        out(
            &mut outs,
            "vpc_peering_ids",
            "Peerings this site requested, for the accepting site.",
            e("module.site.vpc_peering_ids"),
        );
    }

    // terraform.tfvars.example
    let mut t = String::new();
    let _ = writeln!(t, "# Copy to terraform.tfvars and fill in.");
    if !aws {
        let _ = writeln!(t, "project = \"my-gcp-project\"\n");
    }
    let bin = servers.first().map_or("canopy-server", |s| binary(s));
    let _ = writeln!(
        t,
        "# A static linux/amd64 {bin}: compose/build-image.sh builds canopy-server under"
    );
    let _ = writeln!(
        t,
        "# target/static; nats-server is in the official release tarball."
    );
    let _ = writeln!(t, "server_binary = \"../../../bin/{bin}\"");
    let onprem_names: Vec<&str> = m
        .servers
        .iter()
        .filter(|s| m.site(&s.site).is_some_and(|x| !x.is_cloud()))
        .filter(|s| {
            servers
                .iter()
                .any(|me| upstream_servers(m, me).iter().any(|h| h.name == s.name))
        })
        .map(|s| s.name.as_str())
        .collect();
    if !onprem_names.is_empty() {
        let _ = writeln!(
            t,
            "\n# Hosts on other sites this site's servers dial by name."
        );
        let _ = writeln!(t, "extra_hosts = {{");
        let w = onprem_names.iter().map(|n| n.len() + 2).max().unwrap_or(0);
        for (i, n) in onprem_names.iter().enumerate() {
            let _ = writeln!(t, "  {:<w$} = \"192.0.2.{}\"", q(n), 10 + i);
        }
        let _ = writeln!(t, "}}");
    }
    if external_lb {
        let _ = writeln!(t, "\nleaf_public_cidrs = [\"198.51.100.0/24\"]");
    }
    if !vpns.is_empty() {
        let _ = writeln!(
            t,
            "\n# Filled in after the peer sites are applied (README, \"Order\")."
        );
        let _ = writeln!(t, "vpn_peer_ips = {{");
        let w = vpns
            .iter()
            .map(|l| l.link.name.len() + 2)
            .max()
            .unwrap_or(0);
        for l in &vpns {
            let v = if aws {
                "\"203.0.113.10\"".to_string()
            } else if l.peer.provider == Provider::Aws {
                "[\"203.0.113.10\", \"203.0.113.11\"]".to_string()
            } else {
                "[\"203.0.113.10\"]".to_string()
            };
            let _ = writeln!(t, "  {:<w$} = {v}", q(&l.link.name));
        }
        let _ = writeln!(t, "}}");
    }

    // README.md
    let readme = cloud_readme(m, site, servers, &vpns, &peerings, &lbs);
    Root {
        main,
        variables: vars,
        outputs: outs,
        tfvars: t,
        readme,
    }
}

fn cloud_readme(
    m: &Model,
    site: &Site,
    servers: &[&Server],
    vpns: &[&End],
    peerings: &[&End],
    lbs: &[LeafLb],
) -> String {
    let aws = site.provider == Provider::Aws;
    let mut r = String::new();
    let _ = writeln!(
        r,
        "# Site `{}` ({}, {})\n",
        site.name,
        site.provider.as_str(),
        site.region.as_deref().unwrap_or("")
    );
    let _ = writeln!(r, "## What `terraform apply` creates\n");
    if aws {
        let _ = writeln!(r, "- A VPC `{}` with a private and a public subnet in each of {ZONES} availability zones, a NAT gateway, an S3 gateway endpoint and flow logs (or your VPC, with `existing_vpc`).", site.cidr.map(|c| c.to_string()).unwrap_or_default());
    } else {
        let _ = writeln!(r, "- A VPC network with one subnetwork `{}` (Private Google Access, flow logs), or yours with `existing_network`. Instances have no public address and no route to the internet: they reach Google APIs only.", site.cidr.map(|c| c.to_string()).unwrap_or_default());
    }
    let _ = writeln!(
        r,
        "- One instance per server, at a fixed private address:\n"
    );
    let ips = private_ips(m);
    let _ = writeln!(r, "  | server | role | runs | address | JetStream volume |");
    let _ = writeln!(r, "  |---|---|---|---|---|");
    for s in servers {
        let gb = jetstream_gb(s);
        let _ = writeln!(
            r,
            "  | `{}` | {} | {} | {} | {} |",
            s.name,
            s.role(),
            binary(s),
            ips.get(&s.name)
                .map(|x| x.0.to_string())
                .unwrap_or_default(),
            if gb > 0 {
                format!("{gb} GB")
            } else {
                "none".into()
            }
        );
    }
    let _ = writeln!(r);
    let _ = writeln!(
        r,
        "- {} that open only these ports:\n",
        if aws {
            "Security groups (one per server)"
        } else {
            "Firewall rules (targeting each server's service account; all other egress denied)"
        }
    );
    let _ = writeln!(r, "  | server | port | what | from |");
    let _ = writeln!(r, "  |---|---|---|---|");
    for o in openings(m, site) {
        let _ = writeln!(
            r,
            "  | `{}` | {} | {} | {} |",
            o.server,
            o.port,
            o.what,
            o.from.join(", ")
        );
    }
    let _ = writeln!(r);
    let _ = writeln!(
        r,
        "  Out: HTTPS to the provider's APIs, and each upstream hub's leafnode port."
    );
    let _ = writeln!(r, "- {} holding each server's payload (`deploy/<server>/`: config, certificates, key, unit, install.sh), readable only by that server's {}; the server binary in a private bucket. User-data names these; it holds no secret.", if aws { "Secrets Manager secrets (KMS-encrypted)" } else { "Secret Manager secrets" }, if aws { "instance role" } else { "service account" });
    for lb in lbs {
        let at = if lb.ips.is_empty() {
            "at fixed public addresses (outputs); point the name at them in your DNS".to_string()
        } else {
            format!(
                "at {}",
                lb.ips
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let external = lb.scheme == "external";
        let _ = writeln!(r, "- An {} network load balancer `{}` for cluster `{}`'s leafnode port {}, {at} (TCP passthrough: TLS ends at the hubs, whose certificates carry the name; leaves on other sites dial it first{}).", lb.scheme, lb_name(&lb.cluster), lb.cluster, lb.port, if external { ", unless a Terraform-built VPN or peering routes them to the hubs" } else { "" });
    }
    for l in vpns {
        let _ = writeln!(
            r,
            "- Link `{}` to `{}` ({}): {}, BGP ASN {} here and {} there, inside /30s {}.",
            l.link.name,
            l.peer.name,
            l.peer.provider.as_str(),
            if aws {
                "a VPN gateway, a customer gateway and an IPsec connection (two tunnels)"
            } else {
                "an HA VPN gateway, a Cloud Router, an external VPN gateway and two tunnels with BGP peers"
            },
            site.asn,
            l.peer.asn,
            inside_prose(l.index)
        );
    }
    for l in peerings {
        let _ = writeln!(
            r,
            "- Link `{}` to `{}`: {} peering (both sites in one cloud need no VPN).",
            l.link.name,
            l.peer.name,
            if aws {
                "inter-region VPC"
            } else {
                "VPC network"
            }
        );
    }
    let _ = writeln!(r, "\n## Apply\n");
    let _ = writeln!(r, "```sh\ncp terraform.tfvars.example terraform.tfvars   # then fill it in\nterraform init && terraform apply\n```\n");
    let _ = writeln!(r, "## Order\n");
    let _ = writeln!(r, "Apply sites whose servers are hubs before sites whose leaves dial them; leaves retry until their hubs answer, so the order only shortens the wait.");
    for l in vpns {
        let peer_dir = format!("../../{}/{}", l.peer.provider.as_str(), l.peer.name);
        let psk = psk_path(&l.link.name);
        match (site.provider, l.peer.provider) {
            (Provider::Aws, Provider::Gcp) => {
                let _ = writeln!(r, "\nLink `{}` (VPN to GCP):\n1. Apply `{peer_dir}` first; its `vpn_gateway_addresses[0]` goes here as `vpn_peer_ips[\"{}\"]`.\n2. Apply this site; its `vpn_tunnel_addresses[\"{}\"]` goes to `{peer_dir}` as `vpn_peer_ips`.\n3. Apply `{peer_dir}` again: its tunnels come up and BGP exchanges routes.", l.link.name, l.link.name, l.link.name);
            }
            (Provider::Gcp, Provider::Aws) => {
                let _ = writeln!(r, "\nLink `{}` (VPN to AWS):\n1. Apply this site; its `vpn_gateway_addresses[0]` goes to `{peer_dir}` as `vpn_peer_ips[\"{}\"]`.\n2. Apply `{peer_dir}`; its `vpn_tunnel_addresses[\"{}\"]` (two addresses) go here as `vpn_peer_ips`.\n3. Apply this site again: the tunnels come up and BGP exchanges routes.", l.link.name, l.link.name, l.link.name);
            }
            (_, _) => {
                let _ = writeln!(r, "\nLink `{}` (VPN to the {} router of `{}`):\n1. Set `vpn_peer_ips[\"{}\"]` to the router's public address and apply.\n2. Configure the router from this site's outputs ({}): IKEv2, AES-256, SHA2-256, DH group 14, pre-shared key in `{psk}`, BGP ASN {} (this site {}), its inside addresses the .{} of each /30: {}; announce `{}`.", l.link.name, l.peer.provider.as_str(), l.peer.name, l.link.name, if aws { "`vpn_tunnel_addresses`" } else { "`vpn_gateway_addresses`" }, l.peer.asn, site.asn, 3 - local_host(site.provider, l.peer.provider), inside_prose(l.index), l.peer.cidr.map(|c| c.to_string()).unwrap_or_default());
            }
        }
    }
    for l in peerings {
        let peer_dir = format!("../../{}/{}", l.peer.provider.as_str(), l.peer.name);
        if aws {
            if l.link.sites[0] == site.name {
                let _ = writeln!(r, "\nLink `{}` (peering, this site requests):\n1. Apply `{peer_dir}`; its `vpc_id` goes here as `peer_vpc_ids[\"{}\"]`.\n2. Apply this site; its `vpc_peering_ids[\"{}\"]` goes to `{peer_dir}` as `peering_ids`.\n3. Apply `{peer_dir}` again to accept.", l.link.name, l.link.name, l.link.name);
            } else {
                let _ = writeln!(r, "\nLink `{}` (peering, this site accepts):\n1. Apply this site; its `vpc_id` goes to `{peer_dir}` as `peer_vpc_ids[\"{}\"]`.\n2. Apply `{peer_dir}`; its `vpc_peering_ids[\"{}\"]` goes here as `peering_ids`.\n3. Apply this site again to accept.", l.link.name, l.link.name, l.link.name);
            }
        } else {
            let _ = writeln!(r, "\nLink `{}` (peering): apply both sites, then give each the other's `network` output as `peer_networks[\"{}\"]` and apply both again.", l.link.name, l.link.name);
        }
    }
    let _ = writeln!(r, "\n## Names\n\nServers dial each other by name and their certificates carry those names. Cloud servers' addresses are fixed, and every payload's `hosts` file maps them; give on-prem and edge servers' addresses in `extra_hosts`.");
    r
}

fn onprem_root(m: &Model, site: &Site, servers: &[&Server], links: &[End]) -> Root {
    let mut h = Hcl::default();
    h.out
        .push_str(&header(m, site, "its servers on existing hosts"));
    h.open("module \"site\"");
    h.attrs(vec![a("source", qs("../../modules/onprem"))]);
    h.line("");
    h.attrs(vec![
        a("servers", e("var.servers")),
        a("payload_dir", qs("${path.module}/../../../deploy")),
        a("server_binary", e("var.server_binary")),
        a("ssh_private_key_path", e("var.ssh_private_key_path")),
    ]);
    h.close();
    let main = h.finish();

    let names: Vec<String> = servers.iter().map(|s| q(&s.name)).collect();
    let mut v = Hcl::default();
    v.open("variable \"servers\"");
    v.attrs(vec![
        a(
            "description",
            qs(&format!(
                "The host of each server of site {}: its address and SSH user.",
                site.name
            )),
        ),
        a(
            "type",
            e("map(object({\n    address  = string\n    ssh_user = string\n  }))"),
        ),
    ]);
    v.line("");
    v.open("validation");
    v.attrs(vec![
        a(
            "condition",
            e(format!(
                "toset(keys(var.servers)) == toset([{}])",
                names.join(", ")
            )),
        ),
        a(
            "error_message",
            qs(&format!(
                "Give a host for exactly these servers: {}.",
                servers
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ),
    ]);
    v.close();
    v.close();
    v.line("");
    v.open("variable \"server_binary\"");
    v.attrs(vec![
        a("description", qs("Local path of the static server binary to install (compose/build-image.sh builds canopy-server).")),
        a("type", e("string")),
    ]);
    v.close();
    v.line("");
    v.open("variable \"ssh_private_key_path\"");
    v.attrs(vec![
        a("description", qs("Private key that reaches the hosts.")),
        a("type", e("string")),
        a("default", qs("~/.ssh/id_ed25519")),
    ]);
    v.close();
    let variables = v.finish();

    let mut o = Hcl::default();
    // Quotes inside an interpolation are not escaped.
    let url = |s: &Server, p: u16, sch: &str| {
        e(format!(
            "\"{sch}://${{module.site.hosts[\"{}\"]}}:{p}\"",
            s.name
        ))
    };
    for (name, desc, f) in [
        ("client_urls", "The client endpoint of each server.", 0),
        (
            "monitoring_urls",
            "The monitoring endpoint of each server.",
            1,
        ),
        (
            "leafnode_urls",
            "Where leaves on other sites dial this site's hubs.",
            2,
        ),
    ] {
        let fields: Vec<(String, V)> = servers
            .iter()
            .filter_map(|s| {
                let (p, sch) = match f {
                    0 => (s.client_port, scheme(m)),
                    1 => (s.http_port, "http"),
                    _ => (s.leaf_port?, "nats-leaf"),
                };
                Some(a(&q(&s.name), url(s, p, sch)))
            })
            .collect();
        if fields.is_empty() {
            continue;
        }
        o.open(&format!("output {}", q(name)));
        o.attrs(vec![a("description", qs(desc)), a("value", V::Obj(fields))]);
        o.close();
        o.line("");
    }
    let outputs = o.finish();

    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Copy to terraform.tfvars and give each server its host."
    );
    let bin = servers.first().map_or("canopy-server", |s| binary(s));
    let _ = writeln!(t, "server_binary = \"../../../bin/{bin}\"");
    let _ = writeln!(t);
    let _ = writeln!(t, "servers = {{");
    let width = servers.iter().map(|s| s.name.len() + 2).max().unwrap_or(0);
    for (i, s) in servers.iter().enumerate() {
        let _ = writeln!(
            t,
            "  {:<width$} = {{ address = \"192.0.2.{}\", ssh_user = \"admin\" }}",
            q(&s.name),
            10 + i
        );
    }
    let _ = writeln!(t, "}}");

    let hubs = servers.iter().filter(|s| s.kind == NodeKind::Hub).count();
    let mut r = String::new();
    let _ = writeln!(r, "# Site `{}` ({})\n", site.name, site.provider.as_str());
    let _ = writeln!(
        r,
        "Installs {} server(s) ({} hub, {} leaf) on existing hosts over SSH, each from its",
        servers.len(),
        hubs,
        servers.len() - hubs
    );
    let _ = writeln!(r, "payload in `deploy/<server>/`: config, certificates, systemd unit `canopy-<server>.service`.\n");
    let _ = writeln!(r, "```sh\ncp terraform.tfvars.example terraform.tfvars   # give each server its host\nterraform init && terraform apply\n```\n");
    let _ = writeln!(
        r,
        "Servers: {}.\n",
        servers
            .iter()
            .map(|s| format!("`{}`", s.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(r, "Apply sites whose servers are hubs before sites whose leaves dial them; leaves retry until");
    let _ = writeln!(
        r,
        "their hubs answer, so the order only shortens the wait. Every server name must resolve to"
    );
    let _ = writeln!(r, "its host: cloud servers' fixed addresses are in each payload's `hosts` file, which install.sh");
    let _ = writeln!(
        r,
        "adds to /etc/hosts; on-prem and edge names are your DNS's."
    );
    for l in links.iter().filter(|l| l.joint == Joint::Vpn) {
        let mine = 3 - local_host(l.peer.provider, site.provider);
        let _ = writeln!(
            r,
            "\n## VPN `{}` to `{}` ({})\n",
            l.link.name,
            l.peer.name,
            l.peer.provider.as_str()
        );
        let _ = writeln!(
            r,
            "Your router is the other end of the IPsec connection that `../../{}/{}` builds:",
            l.peer.provider.as_str(),
            l.peer.name
        );
        let _ = writeln!(
            r,
            "- its public address goes there as `vpn_peer_ips[\"{}\"]`;",
            l.link.name
        );
        let _ = writeln!(
            r,
            "- tunnels to the addresses that site outputs, IKEv2, AES-256, SHA2-256, DH group 14;"
        );
        let _ = writeln!(r, "- pre-shared key: `{}`;", psk_path(&l.link.name));
        let _ = writeln!(
            r,
            "- BGP: this site ASN {}, peer ASN {}; inside /30s {}, this end .{mine} of each;",
            site.asn,
            l.peer.asn,
            inside_prose(l.index)
        );
        let _ = writeln!(
            r,
            "- announce `{}`; the peer announces `{}`.",
            site.cidr
                .map(|c| c.to_string())
                .unwrap_or_else(|| "this site's networks".into()),
            l.peer.cidr.map(|c| c.to_string()).unwrap_or_default()
        );
    }
    Root {
        main,
        variables,
        outputs,
        tfvars: t,
        readme: r,
    }
}
