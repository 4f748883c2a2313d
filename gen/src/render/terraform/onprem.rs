//! The root module of an on-prem or edge site: its servers on existing hosts, which
//! the vendored `onprem` module reaches over SSH.

use super::hcl::{a, e, q, qs, Hcl, V};
use super::site::{header, inside_prose, scheme, End, Root};
use crate::model::netplan::{local_host, Joint};
use crate::model::{binary, Model, Server, Site};
use crate::render::layout::psk_path;
use crate::render::template::render as render_template;
use crate::topology::NodeKind;
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write;

pub(super) fn root(m: &Model, site: &Site, servers: &[&Server], links: &[End]) -> Result<Root> {
    Ok(Root {
        main: main_tf(m, site),
        variables: variables_tf(site, servers),
        outputs: outputs_tf(m, servers),
        tfvars: tfvars(servers),
        readme: readme(site, servers, links)?,
    })
}

fn main_tf(m: &Model, site: &Site) -> String {
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
    h.finish()
}

fn variables_tf(site: &Site, servers: &[&Server]) -> String {
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
        a("description", qs("Local path of the static server binary to install (images/build-image.sh builds canopy-server).")),
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
    v.finish()
}

fn outputs_tf(m: &Model, servers: &[&Server]) -> String {
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
    o.finish()
}

fn tfvars(servers: &[&Server]) -> String {
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
    t
}

#[derive(Serialize)]
struct VpnCtx {
    link: String,
    peer: String,
    peer_provider: &'static str,
    peer_dir: String,
    psk: String,
    peer_asn: u32,
    inside: String,
    mine: u8,
    peer_cidr: String,
}

/// README.md, from templates/terraform/onprem-README.md.tera.
fn readme(site: &Site, servers: &[&Server], links: &[End]) -> Result<String> {
    let hubs = servers.iter().filter(|s| s.kind == NodeKind::Hub).count();
    let vpns: Vec<VpnCtx> = links
        .iter()
        .filter(|l| l.joint == Joint::Vpn)
        .map(|l| VpnCtx {
            link: l.link.name.clone(),
            peer: l.peer.name.clone(),
            peer_provider: l.peer.provider.as_str(),
            peer_dir: format!("../../{}/{}", l.peer.provider.as_str(), l.peer.name),
            psk: psk_path(&l.link.name),
            peer_asn: l.peer.asn,
            inside: inside_prose(l.index),
            mine: 3 - local_host(l.peer.provider, site.provider),
            peer_cidr: l.peer.cidr.map(|c| c.to_string()).unwrap_or_default(),
        })
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("name", &site.name);
    ctx.insert("provider", site.provider.as_str());
    ctx.insert("asn", &site.asn);
    ctx.insert(
        "cidr",
        &site
            .cidr
            .map(|c| c.to_string())
            .unwrap_or_else(|| "this site's networks".into()),
    );
    ctx.insert("servers", &servers.len());
    ctx.insert("hubs", &hubs);
    ctx.insert("leaves", &(servers.len() - hubs));
    ctx.insert(
        "server_list",
        &servers
            .iter()
            .map(|s| format!("`{}`", s.name))
            .collect::<Vec<_>>()
            .join(", "),
    );
    ctx.insert("vpns", &vpns);
    render_template("terraform/onprem-README.md", &ctx)
}
