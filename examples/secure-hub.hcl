# Secure hub with accounts and TLS (seed: "Secure Leaf Node Topologies"): every
# listener speaks TLS with certificates from one generated CA, leaves authenticate
# with client certificates, and each team's traffic stays in its own account.
name = "secure"

defaults {
  tls       = true
  leaf_auth = "mtls"
}

site "central" {
  provider = "onprem"
  cidr     = "10.10.0.0/16"
}

site "us-west" {
  provider = "edge"
  cidr     = "10.20.0.0/16"
}

site "eu-west" {
  provider = "edge"
  cidr     = "10.30.0.0/16"
}

link "us-west" {
  sites   = ["us-west", "central"]
  vpn     = "ipsec"
  latency = "25ms"
}

link "eu-west" {
  sites   = ["eu-west", "central"]
  vpn     = "ipsec"
  latency = "40ms"
}

account "US_WEST" {
  user "us_west_app" {}
}

account "EU_WEST" {
  user "eu_west_app" {}
}

hub "hub" {
  site = "central"
  size = 3
}

leaf "leaf-us-west" {
  site = "us-west"
  upstream "hub" {
    account      = "US_WEST"
    deny_exports = ["local.>"]
    deny_imports = ["local.>"]
  }
}

leaf "leaf-eu-west" {
  site = "eu-west"
  upstream "hub" {
    account      = "EU_WEST"
    deny_exports = ["local.>"]
    deny_imports = ["local.>"]
  }
}
