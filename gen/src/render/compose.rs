//! `compose/docker-compose.yml`: one service per server, one network per site, a
//! linksim service on both networks of every link (the only path between sites),
//! each container mounting only its own config, certificate and key.
//! Written for both docker-compose 1.29 and Compose v2 (no `version:`).

use super::layout::server_files;
use super::template::render as render_template;
use crate::bundle::{Bundle, PUBLIC};
pub use crate::model::netplan::link_api_port;
use crate::model::{netplan, Model};
use anyhow::Result;
use serde::Serialize;

pub const PATH: &str = "compose/docker-compose.yml";
pub const LINKSIM_IMAGE: &str = "canopy-linksim:dev";
/// Port of linksim's HTTP API (partition, heal, latency) inside its container.
pub const LINKSIM_API_PORT: u16 = 9000;

#[derive(Serialize)]
pub struct ServiceCtx {
    pub name: String,
    pub image: String,
    /// The image is canopy-server's: it has `--healthz` for the healthcheck.
    pub canopy: bool,
    pub site: String,
    pub host_network: bool,
    pub client_port: u16,
    pub http_port: u16,
    pub host_client_port: u16,
    pub host_http_port: u16,
    pub mounts: Vec<String>,
    pub jetstream: bool,
    /// What this server dials first: each hub it is a leaf of (healthy, when its image
    /// has a healthcheck) and the link service in front of it (started).
    pub depends: Vec<DependsCtx>,
}

#[derive(Serialize)]
pub struct DependsCtx {
    pub service: String,
    pub condition: &'static str,
}

#[derive(Serialize)]
struct LinkCtx {
    /// linksim's API, published on 127.0.0.1 (9100, 9101, ... in topology order).
    api_port: u16,
    name: String,
    service: String,
    vpn: String,
    sites: [String; 2],
    command: Vec<String>,
}

/// Services with their published host ports: container servers get 4222+i and
/// 8222+i on 127.0.0.1, in topology order ([`netplan::host_ports`]).
pub fn services(m: &Model) -> Vec<ServiceCtx> {
    m.servers
        .iter()
        .zip(netplan::host_ports(m))
        .map(|(s, (hc, hh))| {
            let host_network = netplan::on_host(m, &s.site);
            ServiceCtx {
                name: s.name.clone(),
                image: s.image.clone(),
                canopy: s.image.starts_with("canopy-server"),
                site: s.site.clone(),
                host_network,
                client_port: s.client_port,
                http_port: s.http_port,
                host_client_port: hc,
                host_http_port: hh,
                mounts: server_files(m, s),
                jetstream: s.jetstream.is_some(),
                depends: depends(m, s),
            }
        })
        .collect()
}

/// The services a server's leaf remotes dial, in name order: a hub server must be
/// healthy (or, in an image without a healthcheck, started), a link service started.
fn depends(m: &Model, s: &crate::model::Server) -> Vec<DependsCtx> {
    let mut deps = std::collections::BTreeMap::new();
    let in_compose = |name: &str| m.servers.iter().find(|x| x.name == name);
    for d in s.remotes.iter().flat_map(|r| &r.dials) {
        if let Some(hub) = in_compose(&d.server).filter(|h| !netplan::on_host(m, &h.site)) {
            let healthy = hub.image.starts_with("canopy-server");
            deps.insert(
                hub.name.clone(),
                if healthy {
                    "service_healthy"
                } else {
                    "service_started"
                },
            );
        }
        if m.links.iter().any(|l| l.service == d.host) {
            deps.entry(d.host.clone()).or_insert("service_started");
        }
    }
    if netplan::on_host(m, &s.site) {
        deps.clear();
    }
    deps.into_iter()
        .map(|(service, condition)| DependsCtx { service, condition })
        .collect()
}

pub fn linksim_command(l: &crate::model::Link) -> Vec<String> {
    let mut c = vec!["--name".to_string(), l.name.clone()];
    for (flag, v) in [
        ("--latency", &l.latency),
        ("--jitter", &l.jitter),
        ("--bandwidth", &l.bandwidth),
    ] {
        if let Some(v) = v {
            c.push(flag.into());
            c.push(v.clone());
        }
    }
    for f in &l.forwards {
        c.push("--forward".into());
        c.push(format!("{}={}:{}", f.listen, f.server, f.port));
    }
    c.push("--api".into());
    c.push(format!("0.0.0.0:{LINKSIM_API_PORT}"));
    c
}

pub fn render(m: &Model, bundle: &mut Bundle) -> Result<()> {
    let services = services(m);
    let mut networks: Vec<String> = Vec::new();
    for s in services.iter().filter(|s| !s.host_network) {
        if !networks.contains(&s.site) {
            networks.push(s.site.clone());
        }
    }
    for l in &m.links {
        for site in &l.sites {
            if !networks.contains(site) {
                networks.push(site.clone());
            }
        }
    }
    let links: Vec<LinkCtx> = m
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| LinkCtx {
            api_port: link_api_port(i),
            name: l.name.clone(),
            service: l.service.clone(),
            vpn: l.vpn.clone(),
            sites: l.sites.clone(),
            command: linksim_command(l),
        })
        .collect();
    let volumes: Vec<&str> = services
        .iter()
        .filter(|s| s.jetstream)
        .map(|s| s.name.as_str())
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("topology", &m.name);
    ctx.insert("linksim_image", LINKSIM_IMAGE);
    ctx.insert("servers", &services);
    ctx.insert("links", &links);
    ctx.insert("networks", &networks);
    ctx.insert("volumes", &volumes);
    let mut text = render_template("docker-compose.yml", &ctx)?;
    text.push('\n');
    bundle.add(PATH, text, PUBLIC);
    Ok(())
}
