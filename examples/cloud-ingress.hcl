# Cloud ingress (seed: "Hybrid Cloud Topology", run the other way round): the hub
# cluster lives in AWS. Shops dial it over the internet through an external network
# load balancer (its addresses are fixed Elastic IPs; the name "cloud-hub-lb" is put
# in DNS); the data center joins over an IPsec VPN that Terraform builds to its router.
name = "ingress"

site "aws" {
  provider     = "aws"
  region       = "eu-central-1"
  cidr         = "10.70.0.0/16"
  client_cidrs = ["10.70.0.0/16"]
  admin_cidrs  = ["10.70.250.0/24"]
}
site "dc" {
  provider = "onprem"
  region   = "munich"
  cidr     = "192.168.16.0/20"
}
site "shop-1" {
  provider = "edge"
  cidr     = "10.201.0.0/24"
}

link "aws-dc" {
  sites   = ["aws", "dc"]
  vpn     = "ipsec"
  latency = "8ms"
}
link "aws-shop-1" {
  sites     = ["aws", "shop-1"]
  vpn       = "internet"
  latency   = "40ms"
  bandwidth = "50mbit"
}

account "APP" {
  user "app" {}
}

hub "cloud-hub" {
  site    = "aws"
  size    = 3
  leaf_lb = "external"
  jetstream {
    domain   = "cloud"
    max_file = "100GB"
  }
}

leaf "dc-leaf" {
  site = "dc"
  upstream "cloud-hub" {
    account      = "APP"
    deny_exports = ["dc.local.>"]
  }
}

leaf "shop-leaf" {
  site = "shop-1"
  upstream "cloud-hub" {
    account      = "APP"
    deny_exports = ["shop.local.>"]
  }
}
