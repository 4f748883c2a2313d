# Multi-region, loop-free (seed: "Multi-Region Mesh Topology"). The seed's triangle
# of regional hubs linked in one account is a loop that both servers refuse; here the
# US hub is the root and the EU and APAC regional hubs are its leaves, so every
# message crosses each link at most once. Each region keeps its own leaves and
# JetStream domain; `local.>` never leaves a region.
name = "global"

site "us" {
  provider = "aws"
  region   = "us-east-1"
  cidr     = "10.1.0.0/16"
  # Applications in the US VPC and an office network; operators on a VPN range.
  client_cidrs = ["10.1.0.0/16", "172.16.0.0/16"]
  admin_cidrs  = ["10.255.0.0/24"]
}
site "eu" {
  provider = "aws"
  region   = "eu-west-1"
  cidr     = "10.2.0.0/16"
}
site "apac" {
  provider = "gcp"
  region   = "asia-southeast1"
  cidr     = "10.3.0.0/16"
}

link "us-eu" {
  sites   = ["eu", "us"]
  vpn     = "ipsec"
  latency = "80ms"
  jitter  = "5ms"
}
link "us-apac" {
  sites   = ["apac", "us"]
  vpn     = "ipsec"
  latency = "150ms"
  jitter  = "10ms"
}

account "APP" {
  user "app" {}
}

hub "us-hub" {
  site = "us"
  size = 3
  # The regional hubs dial the US hubs through an internal load balancer ("us-hub-lb").
  leaf_lb = "internal"
  jetstream { domain = "us" }
}

hub "eu-hub" {
  site = "eu"
  size = 3
  jetstream { domain = "eu" }
  upstream "us-hub" {
    account      = "APP"
    deny_imports = ["local.>"]
    deny_exports = ["local.>"]
  }
}

hub "apac-hub" {
  site = "apac"
  size = 3
  jetstream { domain = "apac" }
  upstream "us-hub" {
    account      = "APP"
    deny_imports = ["local.>"]
    deny_exports = ["local.>"]
  }
}

leaf "us-leaf-1" {
  site = "us"
  upstream "us-hub" {
    account = "APP"
  }
}
leaf "eu-leaf-1" {
  site = "eu"
  upstream "eu-hub" {
    account = "APP"
  }
}
leaf "apac-leaf-1" {
  site = "apac"
  upstream "apac-hub" {
    account = "APP"
  }
}
