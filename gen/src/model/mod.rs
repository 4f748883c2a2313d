//! The validated, resolved topology: every server with its name, site, listen
//! addresses and ports, the accounts it serves, the routes it dials and the leaf
//! remotes it solicits (with the address each remote dials: directly on its own site,
//! or through the linksim service that stands for a site link), and the address plan
//! ([`netplan`]). Renderers are pure functions of this model.
//!
//! [`build`] checks everything a topology can get wrong and reports it all at once,
//! each finding with its place in the file and what to do. It runs in phases, one
//! submodule each, every phase reading only what the earlier ones resolved.
//!
//! Imports among the submodules run one way, lowest first: `types`; `check`;
//! `netplan`; `defaults`, `sites`, `accounts` and `lint`; `links` (reads `sites`);
//! `servers` (`sites`, `netplan`); `upstreams` (`sites`, `links`); this module.

mod accounts;
mod check;
mod defaults;
mod links;
mod lint;
pub mod netplan;
mod servers;
mod sites;
mod types;
mod upstreams;

pub use check::duration_ok;
pub use lint::{lint, Warnings};
pub use types::*;

use crate::diag::Diagnostic;
use crate::topology::{self, Topology};

/// Resolve and check a parsed topology. All errors are reported together.
pub fn build(t: &Topology) -> Result<Model, Vec<Diagnostic>> {
    let mut c = check::Ctx::default();
    let d = defaults::build(&mut c, t);
    let sites = sites::build(&mut c, t);
    let (mut links, pairs) = links::build(&mut c, t, &sites);
    let accounts = accounts::build(&mut c, t);
    let nodes: Vec<&topology::Node> = t.hubs.iter().chain(t.leaves.iter()).collect();
    let servers::Placed {
        clusters,
        mut servers,
        ..
    } = servers::build(&mut c, &nodes, &sites, &d.image);
    servers::routes(&clusters, &mut servers);
    servers::check_local_ports(&mut c, &nodes, &sites, &servers);
    servers::serve_accounts(&mut c, &nodes, &accounts, &mut servers);
    upstreams::resolve(
        &mut c,
        &nodes,
        upstreams::Upstreams {
            image: &d.image,
            sites: &sites,
            pairs: &pairs,
            account_names: accounts.iter().map(|a| a.name.clone()).collect(),
            clusters: &clusters,
            servers: &mut servers,
            links: &mut links,
        },
    );
    servers::cert_names(&mut servers, &links);

    if !c.d.is_empty() {
        return Err(c.d);
    }
    Ok(Model {
        name: d.name,
        image: d.image,
        tls: d.tls,
        ping_interval: d.ping_interval,
        leaf_auth: d.leaf_auth,
        sites,
        links,
        accounts,
        clusters,
        servers,
    })
}
