//! GCP: a VPC network with one subnetwork, Compute Engine instances, an HA VPN
//! gateway with a Cloud Router for VPN links and VPC network peering to other GCP
//! sites.

use super::cloud::Cloud;
use super::hcl::{a, e, output, q, qs, variable, Hcl, V};
use super::site::End;
use crate::model::netplan::local_host;
use crate::model::{Model, Provider, Site};
use std::fmt::Write;

pub(super) struct Gcp;

impl Cloud for Gcp {
    fn module(&self) -> &'static str {
        "gcp"
    }

    fn provider(&self, h: &mut Hcl, _m: &Model, _site: &Site, region: &str) {
        h.open("provider \"google\"");
        h.attrs(vec![
            a("project", e("var.project")),
            a("region", qs(region)),
        ]);
        h.close();
    }

    fn network_inputs(&self, cidr: &str, region: &str) -> Vec<(String, V)> {
        vec![a("subnet_cidr", qs(cidr)), a("region", qs(region))]
    }

    fn existing_network(&self) -> (&'static str, &'static str) {
        ("existing_network", "var.existing_network")
    }

    fn asn_input(&self) -> &'static str {
        "router_asn"
    }

    fn size_variable(&self) -> (&'static str, &'static str) {
        ("machine_type", "\"e2-standard-2\"")
    }

    fn vpn_peer_input(&self, link: &str) -> (String, V) {
        a(
            "peer_ips",
            e(format!("lookup(var.vpn_peer_ips, {}, [])", q(link))),
        )
    }

    fn vpn_extra_inputs(&self, site: &Site, l: &End) -> Vec<(String, V)> {
        vec![a(
            "local_host",
            e(local_host(site.provider, l.peer.provider).to_string()),
        )]
    }

    fn peerings_input(&self) -> &'static str {
        "network_peerings"
    }

    fn peering_inputs(&self, _site: &Site, l: &End) -> Vec<(String, V)> {
        let pc = l.peer.cidr.map(|c| c.to_string()).unwrap_or_default();
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
    }

    fn first_variables(&self, vars: &mut String) {
        variable(
            vars,
            "project",
            "The GCP project to build the site in.",
            "string",
            None,
            None,
        );
    }

    fn network_variables(&self, vars: &mut String, _region: &str) {
        variable(vars, "existing_network", "Deploy into this network and subnetwork (self links) instead of creating them; the subnetwork must be the site's CIDR.", "object({\n    network    = string\n    subnetwork = string\n  })", Some("null"), None);
    }

    fn vpn_peer_ips(&self) -> (&'static str, &'static str) {
        (
            "The peer gateway's public addresses of each VPN link (see README: known once the peer site is applied).",
            "map(list(string))",
        )
    }

    fn peering_variables(&self, vars: &mut String) {
        variable(
            vars,
            "peer_networks",
            "The peer site's network self link of each peering (its network output).",
            "map(string)",
            Some("{}"),
            None,
        );
    }

    fn network_output(&self, outs: &mut String) {
        output(
            outs,
            "network",
            "The site's network.",
            e("module.site.network"),
        );
    }

    fn lb_outputs(&self, outs: &mut String) {
        output(
            outs,
            "leaf_lb_addresses",
            "Each leaf load balancer's address, by cluster.",
            e("module.site.leaf_lb_addresses"),
        );
    }

    fn vpn_output(&self) -> (&'static str, &'static str) {
        (
            "vpn_gateway_addresses",
            "The HA VPN gateway's two addresses, for the peer sites.",
        )
    }

    fn peering_outputs(&self, _outs: &mut String, _site: &Site, _peerings: &[&End]) {}

    fn tfvars_head(&self, t: &mut String) {
        let _ = writeln!(t, "project = \"my-gcp-project\"\n");
    }

    fn example_peer_ips(&self, l: &End) -> &'static str {
        if l.peer.provider == Provider::Aws {
            "[\"203.0.113.10\", \"203.0.113.11\"]"
        } else {
            "[\"203.0.113.10\"]"
        }
    }
}
