//! `canopy lint`: choices that are legal but risky.

use super::types::{LeafAuth, Model};
use crate::diag::Diagnostic;
use crate::topology::Topology;

/// Findings that are legal but risky (`canopy lint`), with where they point.
pub type Warnings = Vec<Diagnostic>;

/// Risky but legal choices (`canopy lint`).
pub fn lint(t: &Topology, m: &Model) -> Warnings {
    let mut w = Vec::new();
    if !m.tls {
        let span = t.defaults.tls.as_ref().map_or(0..0, |b| b.span.clone());
        for l in &m.links {
            w.push(
                Diagnostic::warning(
                    format!("no TLS across site link \"{}\" ({})", l.name, l.vpn),
                    span.clone(),
                )
                .label("TLS is off for every listener")
                .help("leaf traffic crosses the link in clear text unless the VPN encrypts it; set `tls = true`"),
            );
        }
    }
    if m.leaf_auth == LeafAuth::Password {
        let span = t
            .defaults
            .leaf_auth
            .as_ref()
            .map_or(0..0, |b| b.span.clone());
        w.push(
            Diagnostic::warning("leaf links authenticate with passwords", span)
                .label("each leaf's .conf carries its link password in the remote URL")
                .help("with TLS on, leaf_auth = \"mtls\" keeps every secret out of the configs"),
        );
    }
    for n in t.hubs.iter().chain(t.leaves.iter()) {
        for u in &n.upstreams {
            if u.deny_exports.as_ref().is_none_or(|l| l.value.is_empty()) {
                w.push(
                    Diagnostic::warning(
                        format!(
                            "{} \"{}\" exports every subject of account \"{}\" to hub \"{}\"",
                            n.kind.as_str(),
                            n.name.value,
                            u.account.as_ref().map_or("?", |a| a.value.as_str()),
                            u.hub.value
                        ),
                        u.span.clone(),
                    )
                    .label("no deny rules on this link")
                    .help("add deny_exports (and deny_imports) for subjects that must stay on the site, e.g. [\"local.>\"]"),
                );
            }
            let hub_size = m
                .clusters
                .iter()
                .find(|c| c.name == u.hub.value)
                .map_or(0, |c| c.servers.len());
            if hub_size == 1 {
                w.push(
                    Diagnostic::warning(
                        format!("upstream \"{}\" has a single hub URL", u.hub.value),
                        u.hub.span.clone(),
                    )
                    .label("nothing to fail over to")
                    .help("give the hub cluster `size = 3` so the leaf can fail over"),
                );
            }
        }
    }
    w
}
