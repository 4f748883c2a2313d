output "hosts" {
  description = "The host each server was installed on."
  value       = { for name, s in var.servers : name => s.address }
}

output "installed" {
  description = "The install run for each server (changes when its payload or binary does)."
  value       = { for name, r in null_resource.server : name => r.id }
}
