variable "name" {
  description = "Prefix of every resource name: the topology and site, e.g. \"hybrid-aws\"."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name))
    error_message = "name must be 2-32 lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "vpc_cidr" {
  description = "CIDR of the site's VPC (the topology's site cidr); its first /20s become one private and one public subnet per availability zone."
  type        = string

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 18
    error_message = "vpc_cidr must be an IPv4 CIDR of /18 or larger."
  }
}

variable "existing_vpc" {
  description = "Use this VPC and its private subnets instead of creating them; its route tables must reach the internet or VPC endpoints, and peer sites through their VPN or peering."
  type = object({
    vpc_id             = string
    private_subnet_ids = list(string)
    public_subnet_ids  = list(string)
    route_table_ids    = list(string)
  })
  default = null

  validation {
    condition     = var.existing_vpc == null || try(length(var.existing_vpc.private_subnet_ids) > 0, false)
    error_message = "An existing VPC needs at least one private subnet."
  }
}

variable "availability_zones" {
  description = "The availability zones to spread servers over, by name (a server's zone_index picks one); pinned, so a zone AWS adds later changes nothing."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 1 && length(var.availability_zones) <= 4
    error_message = "Give between one and four availability zones."
  }
}

variable "servers" {
  description = "The site's servers by name: what runs, where it listens (ports of 0 are closed), its fixed private address and zone, and the hubs it dials (leafnode port and the CIDR they live in)."
  type = map(object({
    binary        = string
    cluster       = string
    instance_type = string
    private_ip    = string
    zone_index    = number
    client_port   = number
    monitor_port  = number
    cluster_port  = number
    leaf_port     = number
    jetstream_gb  = number
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
    condition     = alltrue([for s in values(var.servers) : s.jetstream_gb >= 0 && s.jetstream_gb <= 16384])
    error_message = "jetstream_gb must be between 0 (no volume) and 16384."
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
  description = "Network load balancers in front of hub clusters' leafnode port, by cluster: \"internal\" at private_ips (one per zone, the topology's <cluster>-lb name) or \"external\" (fixed public addresses, reachable from leaf_public_cidrs)."
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
  description = "The bundle's deploy/ directory: one payload (config, certificates, key, systemd unit, install.sh) per server, stored in Secrets Manager."
  type        = string
}

variable "server_binary" {
  description = "Local path of the statically linked linux/amd64 server binary (canopy-server, or nats-server for servers on the official image); uploaded to a private bucket."
  type        = string
}

variable "ami_id" {
  description = "AMI for the servers; null picks the latest Amazon Linux 2023 (it has cloud-init and the AWS CLI the user-data needs)."
  type        = string
  default     = null
}

variable "amazon_side_asn" {
  description = "BGP ASN of the site's VPN gateway."
  type        = number
  default     = 64512

  validation {
    condition     = var.amazon_side_asn >= 64512 && var.amazon_side_asn <= 65534
    error_message = "amazon_side_asn must be a private 16-bit ASN (64512-65534)."
  }
}

variable "vpn_links" {
  description = "Site-to-site IPsec VPNs by link name. The connection is made once peer_ip (the peer's gateway address, known after the peer site is applied) is set."
  type = map(object({
    peer_ip      = string
    peer_asn     = number
    peer_cidrs   = list(string)
    inside_cidrs = list(string)
  }))
  default = {}
}

variable "vpn_psks" {
  description = "The pre-shared key of each VPN link, by link name (the bundle's secrets/vpn-<link>.psk)."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "vpc_peerings" {
  description = "Peerings with other AWS sites by link name. The requester side creates the peering once peer_vpc_id is known; the accepter side accepts it once peering_id is."
  type = map(object({
    role        = string
    peer_region = string
    peer_cidr   = string
    peer_vpc_id = string
    peering_id  = string
  }))
  default = {}

  validation {
    condition     = alltrue([for p in values(var.vpc_peerings) : contains(["requester", "accepter"], p.role)])
    error_message = "role must be requester or accepter."
  }
}

variable "log_retention_days" {
  description = "Days to keep VPC flow logs."
  type        = number
  default     = 365
}

variable "deletion_protection" {
  description = "Protect the leaf load balancer from deletion."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "extra_hosts" {
  description = "Addresses of servers outside the cloud sites (on-prem, edge), by name, added to each server's /etc/hosts."
  type        = map(string)
  default     = {}
}
