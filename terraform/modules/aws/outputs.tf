output "vpc_id" {
  description = "The site's VPC (peer AWS sites need it to request a peering)."
  value       = local.vpc_id
}

output "private_ips" {
  description = "The private address of each server."
  value       = { for n, i in aws_instance.server : n => i.private_ip }
}

output "instance_ids" {
  description = "The instance of each server."
  value       = { for n, i in aws_instance.server : n => i.id }
}

output "security_group_ids" {
  description = "The security group of each server."
  value       = { for n, g in aws_security_group.server : n => g.id }
}

output "leaf_lb_dns_names" {
  description = "Each leaf load balancer's DNS name, by cluster."
  value       = { for c, lb in aws_lb.leaf : c => lb.dns_name }
}

output "leaf_lb_public_ips" {
  description = "Each external leaf load balancer's public addresses, by cluster: point its <cluster>-lb name at them."
  value       = { for c, lb in var.leaf_lbs : c => [for i in range(local.az_count) : aws_eip.lb["${c}/${i}"].public_ip] if lb.scheme == "external" }
}

output "vpn_tunnel_addresses" {
  description = "Each VPN link's two AWS tunnel endpoints: the peer's gateway dials these."
  value       = { for k, c in aws_vpn_connection.peer : k => [c.tunnel1_address, c.tunnel2_address] }
}

output "vpc_peering_ids" {
  description = "Peerings this site requested, by link: the accepting site needs the id."
  value       = { for k, p in aws_vpc_peering_connection.peer : k => p.id }
}

output "kms_key_arn" {
  description = "The key that encrypts the site's secrets, volumes, bucket and flow logs."
  value       = aws_kms_key.this.arn
}
