# Subject remapping (seed: "Leaf Node Subject Remapping"). The seed's per-remote
# `account_mappings` does not exist in nats-server; the real tool is the account's
# `mappings`, applied to everything published in the account on the leaf: local
# `events.>` and `metrics.>` reach the hub as `site-a.events.>` and `site-a.metrics.>`.
name = "remapping"

site "central" {
  provider = "onprem"
  cidr     = "10.0.0.0/16"
}
site "site-a" {
  provider = "edge"
  cidr     = "10.210.0.0/24"
}
link "site-a" {
  sites   = ["site-a", "central"]
  vpn     = "wireguard"
  latency = "20ms"
}

# The hub's view: one account for all sites.
account "APP" {
  user "hub_app" {}
}

# The site's own account: its mappings add the site prefix.
account "SITE_A" {
  user "site_app" {}
  mappings = {
    "events.>"  = "site-a.events.>"
    "metrics.>" = "site-a.metrics.>"
  }
}

hub "hub" {
  site     = "central"
  size     = 3
  accounts = ["APP"]
}

leaf "leaf-site-a" {
  site = "site-a"
  upstream "hub" {
    account     = "SITE_A"
    hub_account = "APP"
  }
}
