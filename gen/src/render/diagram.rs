//! `topology.md`: a mermaid diagram in the style of the seed article (a subgraph per
//! site, hub clusters inside, dotted leaf links labelled with their accounts), and
//! tables of every endpoint, leaf link, account and site link. `canopy graph` prints
//! the diagram alone.

use super::template::render as render_template;
use crate::bundle::{Bundle, PUBLIC};
use crate::model::{netplan, Model};
use crate::topology::NodeKind;
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write;

pub const PATH: &str = "topology.md";

fn id(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The mermaid flowchart (without the fence).
pub fn mermaid(m: &Model) -> String {
    let mut out = String::from("flowchart TB\n");
    for site in &m.sites {
        let mut title = format!("{} ({}", site.name, site.provider.as_str());
        if let Some(r) = &site.region {
            let _ = write!(title, ", {r}");
        }
        if let Some(c) = &site.cidr {
            let _ = write!(title, ", {c}");
        }
        title.push(')');
        let _ = writeln!(out, "    subgraph site_{}[\"{title}\"]", id(&site.name));
        for c in m.clusters.iter().filter(|c| c.site == site.name) {
            match c.kind {
                NodeKind::Hub => {
                    let regional = m
                        .servers
                        .iter()
                        .any(|s| s.cluster == c.name && !s.remotes.is_empty());
                    let _ = writeln!(
                        out,
                        "        subgraph hub_{}[\"{}hub {}\"]",
                        id(&c.name),
                        if regional { "regional " } else { "" },
                        c.name
                    );
                    for s in &c.servers {
                        let _ = writeln!(out, "            {}[\"{}\"]", id(s), s);
                    }
                    if c.servers.len() > 1 {
                        // Routes: a full mesh, drawn as a ring to stay readable.
                        for w in c.servers.windows(2) {
                            let _ = writeln!(
                                out,
                                "            {} <-->|route| {}",
                                id(&w[0]),
                                id(&w[1])
                            );
                        }
                        if let (true, Some(first), Some(last)) =
                            (c.servers.len() > 2, c.servers.first(), c.servers.last())
                        {
                            let _ =
                                writeln!(out, "            {} <-->|route| {}", id(last), id(first));
                        }
                    }
                    let _ = writeln!(out, "        end");
                }
                NodeKind::Leaf => {
                    let _ = writeln!(out, "        {}([\"{} (leaf)\"])", id(&c.name), c.name);
                }
            }
        }
        let _ = writeln!(out, "    end");
    }
    for c in &m.clusters {
        let Some(first) = m.servers.iter().find(|s| s.cluster == c.name) else {
            continue;
        };
        let from = match c.kind {
            NodeKind::Hub => format!("hub_{}", id(&c.name)),
            NodeKind::Leaf => id(&c.name),
        };
        for r in &first.remotes {
            let mut label = if r.local_account == r.hub_account {
                r.local_account.clone()
            } else {
                format!("{} → {}", r.local_account, r.hub_account)
            };
            if let Some(l) = r
                .link
                .as_ref()
                .and_then(|l| m.links.iter().find(|x| &x.name == l))
            {
                let _ = write!(label, " via {}", l.vpn);
                if let Some(lat) = &l.latency {
                    let _ = write!(label, " {lat}");
                }
            }
            let _ = writeln!(out, "    {from} -.->|\"{label}\"| hub_{}", id(&r.hub));
        }
    }
    out
}

#[derive(Serialize)]
struct ServerRow {
    name: String,
    role: String,
    site: String,
    host: String,
    client_port: u16,
    http_port: u16,
    leaf_port: Option<u16>,
    cluster_port: Option<u16>,
    host_network: bool,
    host_client_port: u16,
    host_http_port: u16,
}

#[derive(Serialize)]
struct RemoteRow {
    from: String,
    hub: String,
    local_account: String,
    hub_account: String,
    dials: String,
    link: Option<String>,
    deny_imports: String,
    deny_exports: String,
}

#[derive(Serialize)]
struct AccountRow {
    name: String,
    users: String,
    exports: String,
    imports: String,
    mappings: String,
}

#[derive(Serialize)]
struct LinkRow {
    api: u16,
    name: String,
    sites: [String; 2],
    vpn: String,
    latency: String,
    jitter: String,
    bandwidth: String,
    forwards: String,
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "—".into()
    } else {
        v.iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn render(m: &Model, bundle: &mut Bundle) -> Result<()> {
    let servers: Vec<ServerRow> = m
        .servers
        .iter()
        .zip(netplan::host_ports(m))
        .map(|(s, (host_client_port, host_http_port))| ServerRow {
            name: s.name.clone(),
            role: match s.kind {
                NodeKind::Hub if s.remotes.is_empty() => format!("hub ({})", s.cluster),
                NodeKind::Hub => format!("regional hub ({})", s.cluster),
                NodeKind::Leaf => "leaf".into(),
            },
            site: s.site.clone(),
            host: s.host.clone(),
            client_port: s.client_port,
            http_port: s.http_port,
            leaf_port: s.leaf_port,
            cluster_port: s.cluster_port,
            host_network: netplan::on_host(m, &s.site),
            host_client_port,
            host_http_port,
        })
        .collect();
    let mut remotes = Vec::new();
    for s in &m.servers {
        for r in &s.remotes {
            remotes.push(RemoteRow {
                from: s.name.clone(),
                hub: r.hub.clone(),
                local_account: r.local_account.clone(),
                hub_account: r.hub_account.clone(),
                dials: r
                    .dials
                    .iter()
                    .map(|d| format!("{}:{}", d.host, d.port))
                    .collect::<Vec<_>>()
                    .join(", "),
                link: r.link.clone(),
                deny_imports: list(&r.deny_imports),
                deny_exports: list(&r.deny_exports),
            });
        }
    }
    let accounts: Vec<AccountRow> = m
        .accounts
        .iter()
        .map(|a| AccountRow {
            name: a.name.clone(),
            users: list(&a.users.iter().map(|u| u.name.clone()).collect::<Vec<_>>()),
            exports: list(
                &a.exports
                    .iter()
                    .map(|e| format!("{} {}", e.kind.as_str(), e.subject))
                    .collect::<Vec<_>>(),
            ),
            imports: list(
                &a.imports
                    .iter()
                    .map(|i| {
                        let mut s = format!("{} {} from {}", i.kind.as_str(), i.subject, i.account);
                        if let Some(to) = &i.to {
                            let _ = write!(s, " as {to}");
                        }
                        s
                    })
                    .collect::<Vec<_>>(),
            ),
            mappings: list(
                &a.mappings
                    .iter()
                    .map(|(f, t)| format!("{f} → {t}"))
                    .collect::<Vec<_>>(),
            ),
        })
        .collect();
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "—".into());
    let links: Vec<LinkRow> = m
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| LinkRow {
            api: netplan::link_api_port(i),
            name: l.name.clone(),
            sites: l.sites.clone(),
            vpn: l.vpn.clone(),
            latency: dash(&l.latency),
            jitter: dash(&l.jitter),
            bandwidth: dash(&l.bandwidth),
            forwards: if l.forwards.is_empty() {
                "—".into()
            } else {
                l.forwards
                    .iter()
                    .map(|f| format!("{}:{} → {}:{}", l.service, f.listen, f.server, f.port))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("topology", &m.name);
    ctx.insert("mermaid", mermaid(m).trim_end());
    ctx.insert("servers", &servers);
    ctx.insert("remotes", &remotes);
    ctx.insert("accounts", &accounts);
    ctx.insert("links", &links);
    let mut text = render_template("topology.md", &ctx)?;
    text.push('\n');
    bundle.add(PATH, text, PUBLIC);
    Ok(())
}
