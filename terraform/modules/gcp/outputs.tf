output "network" {
  description = "The site's network (peer GCP sites need its self link to peer)."
  value       = local.network
}

output "private_ips" {
  description = "The private address of each server."
  value       = { for n, i in google_compute_instance.server : n => i.network_interface[0].network_ip }
}

output "instance_ids" {
  description = "The instance of each server."
  value       = { for n, i in google_compute_instance.server : n => i.instance_id }
}

output "service_accounts" {
  description = "The service account of each server (the firewall rules target these)."
  value       = { for n, s in google_service_account.server : n => s.email }
}

output "leaf_lb_addresses" {
  description = "Each leaf load balancer's address, by cluster: point its <cluster>-lb name at an external one."
  value       = { for c, r in google_compute_forwarding_rule.leaf : c => r.ip_address }
}

output "vpn_gateway_addresses" {
  description = "The HA VPN gateway's two addresses: a peer's gateways point at these."
  value       = length(var.vpn_links) > 0 ? [for i in google_compute_ha_vpn_gateway.this[0].vpn_interfaces : i.ip_address] : []
}
