variable "servers" {
  description = "The servers of this site, by name: the host each runs on and the user to reach it over SSH."
  type = map(object({
    address  = string
    ssh_user = string
  }))

  validation {
    condition     = length(var.servers) > 0
    error_message = "Give at least one server."
  }

  validation {
    condition     = alltrue([for s in values(var.servers) : length(trimspace(s.address)) > 0 && length(trimspace(s.ssh_user)) > 0])
    error_message = "Every server needs an address and an ssh_user."
  }
}

variable "payload_dir" {
  description = "The bundle's deploy/ directory: one payload (config, certificates, systemd unit, install.sh) per server."
  type        = string
}

variable "server_binary" {
  description = "Local path of the statically linked server binary to install (canopy-server, or nats-server for servers that run the official image)."
  type        = string
}

variable "ssh_private_key_path" {
  description = "Private key used to reach the hosts."
  type        = string
  default     = "~/.ssh/id_ed25519"
}

variable "ssh_port" {
  description = "SSH port of the hosts."
  type        = number
  default     = 22

  validation {
    condition     = var.ssh_port > 0 && var.ssh_port < 65536
    error_message = "ssh_port must be a TCP port."
  }
}
