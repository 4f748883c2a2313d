# Basic hub + leaf (seed: "Basic Leaf Node Configuration"): a three-server hub
# cluster in the data center and one leaf in a region that attaches to it.
name = "basic"

site "central" {
  provider = "onprem"
  region   = "dc1"
  cidr     = "10.10.0.0/16"
}

site "us-west" {
  provider = "edge"
  region   = "us-west"
  cidr     = "10.20.0.0/16"
}

link "us-west" {
  sites   = ["us-west", "central"]
  vpn     = "wireguard"
  latency = "20ms"
}

account "APP" {
  user "app" {}
}

hub "hub" {
  site = "central"
  size = 3
}

leaf "leaf-us-west" {
  site = "us-west"

  upstream "hub" {
    account = "APP"
  }
}
