variable "name" {
  description = "Prefix of every resource name: the topology and site, e.g. \"hybrid-gcp\"."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name))
    error_message = "name must be 2-32 lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "region" {
  description = "Region of the site."
  type        = string
}

variable "subnet_cidr" {
  description = "CIDR of the site's subnetwork (the topology's site cidr)."
  type        = string

  validation {
    condition     = can(cidrnetmask(var.subnet_cidr))
    error_message = "subnet_cidr must be an IPv4 CIDR."
  }
}

variable "existing_network" {
  description = "Use this network and subnetwork (self links) instead of creating them; the subnetwork needs Private Google Access."
  type = object({
    network    = string
    subnetwork = string
  })
  default = null
}

variable "zone_count" {
  description = "Zones to spread servers over (round robin, in name order)."
  type        = number
  default     = 2

  validation {
    condition     = var.zone_count >= 1 && var.zone_count <= 4
    error_message = "zone_count must be between 1 and 4."
  }
}

variable "servers" {
  description = "The site's servers by name: what runs, where it listens (ports of 0 are closed), its fixed private address and zone, and the hubs it dials (leafnode port and the CIDR they live in)."
  type = map(object({
    binary       = string
    cluster      = string
    machine_type = string
    private_ip   = string
    zone_index   = number
    client_port  = number
    monitor_port = number
    cluster_port = number
    leaf_port    = number
    jetstream_gb = number
    upstreams = list(object({
      port = number
      cidr = string
    }))
  }))

  validation {
    condition     = length(var.servers) > 0
    error_message = "Give at least one server."
  }

  validation {
    condition     = alltrue([for s in values(var.servers) : contains(["canopy-server", "nats-server"], s.binary)])
    error_message = "binary must be canopy-server or nats-server."
  }

  validation {
    condition     = alltrue([for s in values(var.servers) : alltrue([for p in [s.client_port, s.monitor_port, s.cluster_port, s.leaf_port] : p >= 0 && p < 65536])])
    error_message = "Ports must be between 0 (closed) and 65535."
  }

  validation {
    condition     = alltrue([for s in values(var.servers) : s.jetstream_gb >= 0 && s.jetstream_gb <= 65536])
    error_message = "jetstream_gb must be between 0 (no disk) and 65536."
  }
}

variable "client_cidrs" {
  description = "Who may reach the client port."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.client_cidrs : can(cidrnetmask(c))])
    error_message = "client_cidrs must be IPv4 CIDRs."
  }
}

variable "admin_cidrs" {
  description = "Who may reach the monitoring port."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrnetmask(c))])
    error_message = "admin_cidrs must be IPv4 CIDRs."
  }
}

variable "leaf_cidrs" {
  description = "Who may reach the leafnode port: the sites whose leaves dial this site's hubs, over their VPN or peering."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.leaf_cidrs : can(cidrnetmask(c))])
    error_message = "leaf_cidrs must be IPv4 CIDRs."
  }
}

variable "leaf_lbs" {
  description = "Passthrough network load balancers in front of hub clusters' leafnode port, by cluster: \"internal\" at private_ips[0] (the topology's <cluster>-lb name) or \"external\" (a fixed public address, reachable from leaf_public_cidrs)."
  type = map(object({
    scheme      = string
    port        = number
    private_ips = list(string)
  }))
  default = {}

  validation {
    condition     = alltrue([for lb in values(var.leaf_lbs) : contains(["internal", "external"], lb.scheme)])
    error_message = "A leaf load balancer's scheme is internal or external."
  }
}

variable "leaf_public_cidrs" {
  description = "Public addresses of leaves that dial through an external leaf load balancer."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.leaf_public_cidrs : can(cidrnetmask(c)) && c != "0.0.0.0/0"])
    error_message = "leaf_public_cidrs must be IPv4 CIDRs, and not the whole internet."
  }
}

variable "payload_dir" {
  description = "The bundle's deploy/ directory: one payload (config, certificates, key, systemd unit, install.sh) per server, stored in Secret Manager."
  type        = string
}

variable "server_binary" {
  description = "Local path of the statically linked linux/amd64 server binary (canopy-server, or nats-server for servers on the official image); uploaded to a private bucket."
  type        = string
}

variable "image" {
  description = "Boot image; it must run cloud-init and carry the gcloud CLI (Ubuntu's GCE images do)."
  type        = string
  default     = "ubuntu-os-cloud/ubuntu-2404-lts-amd64"
}

variable "router_asn" {
  description = "BGP ASN of the site's Cloud Router."
  type        = number
  default     = 64512

  validation {
    condition     = var.router_asn >= 64512 && var.router_asn <= 65534
    error_message = "router_asn must be a private 16-bit ASN (64512-65534)."
  }
}

variable "vpn_links" {
  description = "Site-to-site HA VPNs by link name. Tunnels are made once peer_ips (the peer's gateway addresses, known after the peer site is applied) are set. local_host is this side's host number in each inside /30."
  type = map(object({
    peer_ips     = list(string)
    peer_asn     = number
    peer_cidrs   = list(string)
    inside_cidrs = list(string)
    local_host   = number
  }))
  default = {}

  validation {
    condition     = alltrue([for v in values(var.vpn_links) : length(v.peer_ips) <= 2 && length(v.inside_cidrs) == 2 && contains([1, 2], v.local_host)])
    error_message = "A VPN link has at most two peer addresses, two inside /30s, and local_host 1 or 2."
  }
}

variable "vpn_psks" {
  description = "The pre-shared key of each VPN link, by link name (the bundle's secrets/vpn-<link>.psk)."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "network_peerings" {
  description = "Peerings with other GCP sites by link name: the peer network's self link, once it exists."
  type = map(object({
    peer_network = string
    peer_cidr    = string
  }))
  default = {}
}

variable "labels" {
  description = "Labels for every resource that takes them."
  type        = map(string)
  default     = {}
}

variable "extra_hosts" {
  description = "Addresses of servers outside the cloud sites (on-prem, edge), by name, added to each server's /etc/hosts."
  type        = map(string)
  default     = {}
}
