//! AWS: a VPC over two availability zones, EC2 instances, a VPN gateway per VPN link
//! and inter-region VPC peering to other AWS sites.

use super::cloud::Cloud;
use super::hcl::{a, e, output, q, qs, variable, Hcl, V};
use super::site::End;
use crate::model::netplan::ZONES;
use crate::model::{Model, Site};

pub(super) struct Aws;

impl Cloud for Aws {
    fn module(&self) -> &'static str {
        "aws"
    }

    fn provider(&self, h: &mut Hcl, m: &Model, site: &Site, region: &str) {
        h.open("provider \"aws\"");
        h.attrs(vec![a("region", qs(region))]);
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
        h.close();
    }

    fn network_inputs(&self, cidr: &str, _region: &str) -> Vec<(String, V)> {
        vec![
            a("vpc_cidr", qs(cidr)),
            a("availability_zones", e("var.availability_zones")),
        ]
    }

    fn existing_network(&self) -> (&'static str, &'static str) {
        ("existing_vpc", "var.existing_vpc")
    }

    fn asn_input(&self) -> &'static str {
        "amazon_side_asn"
    }

    fn size_variable(&self) -> (&'static str, &'static str) {
        ("instance_type", "\"t3.medium\"")
    }

    fn vpn_peer_input(&self, link: &str) -> (String, V) {
        a(
            "peer_ip",
            e(format!("lookup(var.vpn_peer_ips, {}, \"\")", q(link))),
        )
    }

    fn vpn_extra_inputs(&self, _site: &Site, _l: &End) -> Vec<(String, V)> {
        Vec::new()
    }

    fn peerings_input(&self) -> &'static str {
        "vpc_peerings"
    }

    fn peering_inputs(&self, site: &Site, l: &End) -> Vec<(String, V)> {
        let pc = l.peer.cidr.map(|c| c.to_string()).unwrap_or_default();
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
    }

    fn first_variables(&self, _vars: &mut String) {}

    fn network_variables(&self, vars: &mut String, region: &str) {
        variable(
            vars,
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
        variable(vars, "existing_vpc", "Deploy into this VPC instead of creating one (see the module's README); its private subnets must hold the servers' addresses.", "object({\n    vpc_id             = string\n    private_subnet_ids = list(string)\n    public_subnet_ids  = list(string)\n    route_table_ids    = list(string)\n  })", Some("null"), None);
    }

    fn vpn_peer_ips(&self) -> (&'static str, &'static str) {
        (
            "The peer gateway's public address of each VPN link (see README: known once the peer site is applied).",
            "map(string)",
        )
    }

    fn peering_variables(&self, vars: &mut String) {
        variable(
            vars,
            "peer_vpc_ids",
            "The peer site's VPC of each peering this site requests (its vpc_id output).",
            "map(string)",
            Some("{}"),
            None,
        );
        variable(vars, "peering_ids", "The peering id of each peering this site accepts (the requesting site's vpc_peering_ids output).", "map(string)", Some("{}"), None);
    }

    fn network_output(&self, outs: &mut String) {
        output(outs, "vpc_id", "The site's VPC.", e("module.site.vpc_id"));
    }

    fn lb_outputs(&self, outs: &mut String) {
        output(
            outs,
            "leaf_lb_dns_names",
            "Each leaf load balancer's DNS name, by cluster.",
            e("module.site.leaf_lb_dns_names"),
        );
        output(outs, "leaf_lb_public_ips", "Each external leaf load balancer's public addresses: point its <cluster>-lb name at them.", e("module.site.leaf_lb_public_ips"));
    }

    fn vpn_output(&self) -> (&'static str, &'static str) {
        (
            "vpn_tunnel_addresses",
            "Each VPN link's two AWS tunnel endpoints, for the peer site.",
        )
    }

    fn peering_outputs(&self, outs: &mut String, site: &Site, peerings: &[&End]) {
        if peerings.iter().any(|l| l.link.sites[0] == site.name) {
            output(
                outs,
                "vpc_peering_ids",
                "Peerings this site requested, for the accepting site.",
                e("module.site.vpc_peering_ids"),
            );
        }
    }

    fn tfvars_head(&self, _t: &mut String) {}

    fn example_peer_ips(&self, _l: &End) -> &'static str {
        "\"203.0.113.10\""
    }
}
