# Hybrid cloud (seed: "Hybrid Cloud Topology"): the hub stays in the on-premises data
# center; an AWS leaf (over Direct Connect) and a GCP leaf (over an IPsec HA VPN that
# Terraform builds to the data center's router) serve cloud applications and keep
# their own JetStream domains.
name = "hybrid"

site "dc" {
  provider = "onprem"
  region   = "frankfurt"
  cidr     = "192.168.0.0/20"
}
site "aws" {
  provider = "aws"
  region   = "eu-central-1"
  cidr     = "10.50.0.0/16"
}
site "gcp" {
  provider = "gcp"
  region   = "europe-west3"
  cidr     = "10.60.0.0/16"
}

link "dc-aws" {
  sites     = ["aws", "dc"]
  vpn       = "direct-connect"
  latency   = "4ms"
  bandwidth = "1gbit"
}
link "dc-gcp" {
  sites     = ["gcp", "dc"]
  vpn       = "ipsec"
  latency   = "6ms"
  bandwidth = "1gbit"
}

account "APP" {
  user "legacy" {}
  user "cloud" {}
}

hub "onprem-hub" {
  site = "dc"
  size = 2
}

leaf "aws-leaf" {
  site = "aws"
  jetstream {
    domain     = "aws"
    max_memory = "1GB"
    max_file   = "50GB"
  }
  upstream "onprem-hub" {
    account      = "APP"
    deny_exports = ["aws.local.>"]
  }
}

leaf "gcp-leaf" {
  site = "gcp"
  jetstream {
    domain     = "gcp"
    max_memory = "1GB"
    max_file   = "50GB"
  }
  upstream "onprem-hub" {
    account      = "APP"
    deny_exports = ["gcp.local.>"]
  }
}
