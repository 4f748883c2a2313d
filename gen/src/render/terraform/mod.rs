//! `terraform/`: one root module per site, `terraform/<provider>/<site>/`, calling the
//! vendored module for its provider (`terraform/modules/{aws,gcp,onprem}`) with values
//! from the topology, plus `terraform.tfvars.example`, a commented `backend.tf`, outputs
//! for every endpoint and a README with what is created and the order to apply sites in.
//!
//! Cloud servers get the fixed private addresses of the address plan
//! ([`crate::model::netplan`]), so every site's configs and `/etc/hosts` entries are
//! known before anything is applied. Links with `vpn = "ipsec"` that touch a cloud site
//! become site-to-site connections: IPsec with BGP between different providers (or a
//! cloud and an on-prem router), VPC or network peering between two sites of one cloud.
//!
//! The parts, lowest first: `hcl` writes HCL aligned the way `terraform fmt` does;
//! [`firewall`] says what a cloud site opens; `site` holds what every root reads;
//! `cloud` writes a cloud site's root around a `Cloud`, of which `aws` and `gcp` are
//! the two; `onprem` writes the root of an on-prem or edge site; this module picks.

mod aws;
mod cloud;
pub mod firewall;
mod gcp;
mod hcl;
mod onprem;
mod site;

use crate::bundle::{Bundle, PUBLIC};
use crate::model::netplan::private_ips;
use crate::model::{Model, Provider, Server, Site};
use anyhow::Result;
use std::collections::BTreeMap;

macro_rules! module_files {
    ($name:literal, $($file:literal),+) => {
        &[$(($file, include_str!(concat!("../../../../terraform/modules/", $name, "/", $file)))),+]
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
        let links = site::ends(m, site);
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
            Provider::Aws => cloud::root(&aws::Aws, m, site, &servers, &links, &ips)?,
            Provider::Gcp => cloud::root(&gcp::Gcp, m, site, &servers, &links, &ips)?,
            _ => onprem::root(m, site, &servers, &links)?,
        };
        bundle.add(format!("{d}/main.tf"), r.main, PUBLIC);
        bundle.add(format!("{d}/variables.tf"), r.variables, PUBLIC);
        bundle.add(format!("{d}/outputs.tf"), r.outputs, PUBLIC);
        bundle.add(format!("{d}/terraform.tfvars.example"), r.tfvars, PUBLIC);
        bundle.add(format!("{d}/backend.tf"), site::backend(m, site), PUBLIC);
        bundle.add(format!("{d}/README.md"), r.readme, PUBLIC);
    }
    for (module, files) in used {
        for (name, body) in files {
            bundle.add(format!("terraform/modules/{module}/{name}"), *body, PUBLIC);
        }
    }
    Ok(())
}
