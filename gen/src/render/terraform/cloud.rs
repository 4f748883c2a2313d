//! The root module of a cloud site, whatever the cloud: a network, one instance per
//! server at its planned address, leaf load balancers, VPN links and peerings. What
//! differs between clouds is a [`Cloud`], one a file (`aws.rs`, `gcp.rs`), with its
//! README prose in `templates/terraform/<cloud>-README.md.tera`.

use super::firewall::{leaf_cidrs, openings, upstream_servers, upstreams};
use super::hcl::{a, e, hcl_list, list, output, q, qs, variable, Hcl, V};
use super::site::{header, inside_prose, jetstream_gb, scheme, tf_name, End, Root};
use crate::model::netplan::{
    inside_cidrs, lb_name, leaf_lbs, local_host, private_ips, Joint, LeafLb, ZONES,
};
use crate::model::{binary, Model, Server, Site};
use crate::render::layout::psk_path;
use crate::render::template::render as render_template;
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::Ipv4Addr;

/// What one cloud's root module has of its own: the names its module and provider
/// give to the same things, the inputs and variables only it has.
pub(super) trait Cloud {
    /// The vendored module the site calls (`terraform/modules/<module>`), which also
    /// names its README template.
    fn module(&self) -> &'static str;
    /// The `provider` block at the top of main.tf.
    fn provider(&self, h: &mut Hcl, m: &Model, site: &Site, region: &str);
    /// The module inputs that place the network: its CIDR, and its zones or region.
    fn network_inputs(&self, cidr: &str, region: &str) -> Vec<(String, V)>;
    /// The module input, and the variable, naming an existing network to deploy into.
    fn existing_network(&self) -> (&'static str, &'static str);
    /// The module input that takes the site's BGP ASN.
    fn asn_input(&self) -> &'static str;
    /// The variable that sizes every instance, and its default.
    fn size_variable(&self) -> (&'static str, &'static str);
    /// The first input of a VPN link: the peer gateway's address(es).
    fn vpn_peer_input(&self, link: &str) -> (String, V);
    /// The inputs of a VPN link after the shared ones.
    fn vpn_extra_inputs(&self, site: &Site, l: &End) -> Vec<(String, V)>;
    /// The module input that takes the peerings.
    fn peerings_input(&self) -> &'static str;
    /// One peering's inputs.
    fn peering_inputs(&self, site: &Site, l: &End) -> Vec<(String, V)>;
    /// Variables before `server_binary`.
    fn first_variables(&self, vars: &mut String);
    /// Variables of the network: its zones, an existing one to deploy into.
    fn network_variables(&self, vars: &mut String, region: &str);
    /// `vpn_peer_ips`: its description and type.
    fn vpn_peer_ips(&self) -> (&'static str, &'static str);
    /// The variables the peerings read.
    fn peering_variables(&self, vars: &mut String);
    /// The network's output.
    fn network_output(&self, outs: &mut String);
    /// The leaf load balancers' outputs.
    fn lb_outputs(&self, outs: &mut String);
    /// The VPN gateway's output, the one the peer sites read.
    fn vpn_output(&self) -> (&'static str, &'static str);
    /// What the other end of each peering reads.
    fn peering_outputs(&self, outs: &mut String, site: &Site, peerings: &[&End]);
    /// Lines of terraform.tfvars.example before `server_binary`.
    fn tfvars_head(&self, t: &mut String);
    /// An example value of a link's `vpn_peer_ips`.
    fn example_peer_ips(&self, l: &End) -> &'static str;
}

/// A cloud site's root module.
struct CloudSite<'a> {
    m: &'a Model,
    site: &'a Site,
    servers: &'a [&'a Server],
    vpns: Vec<&'a End<'a>>,
    peerings: Vec<&'a End<'a>>,
    lbs: Vec<LeafLb>,
    external_lb: bool,
    region: String,
}

pub(super) fn root(
    cloud: &dyn Cloud,
    m: &Model,
    site: &Site,
    servers: &[&Server],
    links: &[End],
    ips: &BTreeMap<String, (Ipv4Addr, usize)>,
) -> Result<Root> {
    let lbs = leaf_lbs(m, site);
    let r = CloudSite {
        m,
        site,
        servers,
        vpns: links.iter().filter(|l| l.joint == Joint::Vpn).collect(),
        peerings: links.iter().filter(|l| l.joint != Joint::Vpn).collect(),
        external_lb: lbs.iter().any(|lb| lb.scheme == "external"),
        lbs,
        region: site.region.clone().unwrap_or_default(),
    };
    Ok(Root {
        main: r.main_tf(cloud, ips),
        variables: r.variables_tf(cloud),
        outputs: r.outputs_tf(cloud),
        tfvars: r.tfvars(cloud),
        readme: r.readme(cloud)?,
    })
}

impl CloudSite<'_> {
    fn main_tf(&self, cloud: &dyn Cloud, ips: &BTreeMap<String, (Ipv4Addr, usize)>) -> String {
        let (m, site) = (self.m, self.site);
        let cidr = site.cidr.map(|c| c.to_string()).unwrap_or_default();
        let mut h = Hcl::default();
        h.out.push_str(&header(
            m,
            site,
            &format!("its network and {} server(s)", self.servers.len()),
        ));
        cloud.provider(&mut h, m, site, &self.region);
        h.line("");
        h.open("module \"site\"");
        h.attrs(vec![a(
            "source",
            qs(&format!("../../modules/{}", cloud.module())),
        )]);
        h.line("");
        let mut attrs = vec![a("name", qs(&tf_name(m, site)))];
        attrs.extend(cloud.network_inputs(&cidr, &self.region));
        let (existing_input, existing_var) = cloud.existing_network();
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
            a(existing_input, e(existing_var)),
            a(cloud.asn_input(), e(site.asn.to_string())),
            a("extra_hosts", e("var.extra_hosts")),
        ]);
        if self.external_lb {
            attrs.push(a("leaf_public_cidrs", e("var.leaf_public_cidrs")));
        }
        h.attrs(attrs);
        let lb_attrs: Vec<(String, V)> = self
            .lbs
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
        h.attrs(vec![a("servers", self.servers_input(cloud, ips))]);
        if !self.vpns.is_empty() {
            h.line("");
            h.attrs(vec![a("vpn_links", self.vpn_links_input(cloud))]);
            let k: Vec<(String, V)> = self
                .vpns
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
        if !self.peerings.is_empty() {
            h.line("");
            let v = self
                .peerings
                .iter()
                .map(|l| a(&q(&l.link.name), V::Obj(cloud.peering_inputs(site, l))))
                .collect();
            h.attrs(vec![a(cloud.peerings_input(), V::Obj(v))]);
        }
        h.close();
        h.finish()
    }

    fn servers_input(&self, cloud: &dyn Cloud, ips: &BTreeMap<String, (Ipv4Addr, usize)>) -> V {
        let (size_var, _) = cloud.size_variable();
        let mut srv = Vec::new();
        for s in self.servers {
            let (ip, zone) = ips
                .get(&s.name)
                .copied()
                .unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
            let ups: Vec<String> = upstreams(self.m, s)
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
        V::Obj(srv)
    }

    fn vpn_links_input(&self, cloud: &dyn Cloud) -> V {
        let mut v = Vec::new();
        for l in &self.vpns {
            let peer_cidrs: Vec<String> = l.peer.cidr.iter().map(|c| q(&c.to_string())).collect();
            let inside = inside_cidrs(l.index);
            let mut f = vec![cloud.vpn_peer_input(&l.link.name)];
            f.push(a("peer_asn", e(l.peer.asn.to_string())));
            f.push(a("peer_cidrs", list(peer_cidrs)));
            f.push(a(
                "inside_cidrs",
                list(inside.iter().map(|c| q(&c.to_string()))),
            ));
            f.extend(cloud.vpn_extra_inputs(self.site, l));
            v.push(a(&q(&l.link.name), V::Obj(f)));
        }
        V::Obj(v)
    }

    fn variables_tf(&self, cloud: &dyn Cloud) -> String {
        let mut vars = String::new();
        cloud.first_variables(&mut vars);
        variable(
            &mut vars,
            "server_binary",
            &format!(
                "Local path of the static linux/amd64 {} binary the servers run (the topology's image decides).",
                self.servers.first().map_or("canopy-server", |s| binary(s))
            ),
            "string",
            None,
            Some((
                "fileexists(var.server_binary)".into(),
                "server_binary must name an existing file.".into(),
            )),
        );
        let (size_var, size_default) = cloud.size_variable();
        variable(
            &mut vars,
            size_var,
            "Size of every server's instance.",
            "string",
            Some(size_default),
            None,
        );
        cloud.network_variables(&mut vars, &self.region);
        variable(
            &mut vars,
            "extra_hosts",
            "Addresses of servers on on-prem and edge sites, by server name, for /etc/hosts (cloud servers' addresses are already known).",
            "map(string)",
            Some("{}"),
            None,
        );
        if self.external_lb {
            variable(
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
        if !self.vpns.is_empty() {
            let names: Vec<String> = self.vpns.iter().map(|l| q(&l.link.name)).collect();
            let (desc, ty) = cloud.vpn_peer_ips();
            variable(
                &mut vars,
                "vpn_peer_ips",
                desc,
                ty,
                Some("{}"),
                Some((
                    format!(
                        "alltrue([for k in keys(var.vpn_peer_ips) : contains([{}], k)])",
                        names.join(", ")
                    ),
                    format!(
                        "vpn_peer_ips takes these links: {}.",
                        self.vpns
                            .iter()
                            .map(|l| l.link.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            );
        }
        if !self.peerings.is_empty() {
            cloud.peering_variables(&mut vars);
        }
        vars
    }

    fn outputs_tf(&self, cloud: &dyn Cloud) -> String {
        let mut outs = String::new();
        let per_server = |port: &dyn Fn(&Server) -> Option<u16>, sch: &str| {
            V::Obj(
                self.servers
                    .iter()
                    .filter_map(|s| {
                        let p = port(s)?;
                        Some(a(&q(&s.name), qs(&format!("{sch}://{}:{p}", s.name))))
                    })
                    .collect(),
            )
        };
        output(
            &mut outs,
            "client_urls",
            "The client URL of each server (names resolve inside the topology's sites).",
            per_server(&|s| Some(s.client_port), scheme(self.m)),
        );
        output(
            &mut outs,
            "monitoring_urls",
            "The monitoring endpoint of each server.",
            per_server(&|s| Some(s.http_port), "http"),
        );
        if self.servers.iter().any(|s| s.leaf_port.is_some()) {
            output(
                &mut outs,
                "leafnode_urls",
                "Where leaves dial this site's hubs.",
                per_server(&|s| s.leaf_port, "nats-leaf"),
            );
        }
        output(
            &mut outs,
            "private_ips",
            "The private address of each server (put on-prem hosts' files or DNS in step).",
            e("module.site.private_ips"),
        );
        cloud.network_output(&mut outs);
        if !self.lbs.is_empty() {
            cloud.lb_outputs(&mut outs);
        }
        if !self.vpns.is_empty() {
            let (name, desc) = cloud.vpn_output();
            output(&mut outs, name, desc, e(format!("module.site.{name}")));
        }
        cloud.peering_outputs(&mut outs, self.site, &self.peerings);
        outs
    }

    fn tfvars(&self, cloud: &dyn Cloud) -> String {
        let m = self.m;
        let mut t = String::new();
        let _ = writeln!(t, "# Copy to terraform.tfvars and fill in.");
        cloud.tfvars_head(&mut t);
        let bin = self.servers.first().map_or("canopy-server", |s| binary(s));
        let _ = writeln!(
            t,
            "# A static linux/amd64 {bin}: images/build-image.sh builds canopy-server under"
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
                self.servers
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
        if self.external_lb {
            let _ = writeln!(t, "\nleaf_public_cidrs = [\"198.51.100.0/24\"]");
        }
        if !self.vpns.is_empty() {
            let _ = writeln!(
                t,
                "\n# Filled in after the peer sites are applied (README, \"Order\")."
            );
            let _ = writeln!(t, "vpn_peer_ips = {{");
            let w = self
                .vpns
                .iter()
                .map(|l| l.link.name.len() + 2)
                .max()
                .unwrap_or(0);
            for l in &self.vpns {
                let v = cloud.example_peer_ips(l);
                let _ = writeln!(t, "  {:<w$} = {v}", q(&l.link.name));
            }
            let _ = writeln!(t, "}}");
        }
        t
    }

    /// README.md, from templates/terraform/<cloud>-README.md.tera.
    fn readme(&self, cloud: &dyn Cloud) -> Result<String> {
        let (m, site) = (self.m, self.site);
        let ips = private_ips(m);
        let servers: Vec<ServerRow> = self
            .servers
            .iter()
            .map(|s| {
                let gb = jetstream_gb(s);
                ServerRow {
                    name: s.name.clone(),
                    role: s.role(),
                    binary: binary(s),
                    address: ips
                        .get(&s.name)
                        .map(|x| x.0.to_string())
                        .unwrap_or_default(),
                    volume: if gb > 0 {
                        format!("{gb} GB")
                    } else {
                        "none".into()
                    },
                }
            })
            .collect();
        let openings: Vec<OpeningRow> = openings(m, site)
            .into_iter()
            .map(|o| OpeningRow {
                server: o.server,
                port: o.port,
                what: o.what,
                from: o.from.join(", "),
            })
            .collect();
        let lbs: Vec<LbRow> = self
            .lbs
            .iter()
            .map(|lb| LbRow {
                scheme: lb.scheme.clone(),
                name: lb_name(&lb.cluster),
                cluster: lb.cluster.clone(),
                port: lb.port,
                ips: lb
                    .ips
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                external: lb.scheme == "external",
            })
            .collect();
        let link = |l: &&End| LinkRow {
            link: l.link.name.clone(),
            peer: l.peer.name.clone(),
            peer_provider: l.peer.provider.as_str(),
            peer_dir: format!("../../{}/{}", l.peer.provider.as_str(), l.peer.name),
            peer_asn: l.peer.asn,
            peer_cidr: l.peer.cidr.map(|c| c.to_string()).unwrap_or_default(),
            peer_host: 3 - local_host(site.provider, l.peer.provider),
            inside: inside_prose(l.index),
            psk: psk_path(&l.link.name),
            requester: l.link.sites[0] == site.name,
        };
        let mut ctx = tera::Context::new();
        ctx.insert("name", &site.name);
        ctx.insert("provider", site.provider.as_str());
        ctx.insert("region", site.region.as_deref().unwrap_or(""));
        ctx.insert(
            "cidr",
            &site.cidr.map(|c| c.to_string()).unwrap_or_default(),
        );
        ctx.insert("asn", &site.asn);
        ctx.insert("vpn_output", cloud.vpn_output().0);
        ctx.insert("zones", &ZONES);
        ctx.insert("servers", &servers);
        ctx.insert("openings", &openings);
        ctx.insert("lbs", &lbs);
        ctx.insert("vpns", &self.vpns.iter().map(link).collect::<Vec<_>>());
        ctx.insert(
            "peerings",
            &self.peerings.iter().map(link).collect::<Vec<_>>(),
        );
        render_template(&format!("terraform/{}-README.md", cloud.module()), &ctx)
    }
}

#[derive(Serialize)]
struct ServerRow {
    name: String,
    role: String,
    binary: &'static str,
    address: String,
    volume: String,
}

#[derive(Serialize)]
struct OpeningRow {
    server: String,
    port: u16,
    what: &'static str,
    from: String,
}

#[derive(Serialize)]
struct LbRow {
    scheme: String,
    name: String,
    cluster: String,
    port: u16,
    /// Its planned addresses, `a, b` (none for an external one).
    ips: String,
    external: bool,
}

/// A VPN link or peering seen from this site.
#[derive(Serialize)]
struct LinkRow {
    link: String,
    peer: String,
    peer_provider: &'static str,
    peer_dir: String,
    peer_asn: u32,
    peer_cidr: String,
    /// The peer's host number in each inside /30.
    peer_host: u8,
    inside: String,
    psk: String,
    /// This site requests the peering (it is the link's first site).
    requester: bool,
}
