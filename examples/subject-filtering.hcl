# Subject filtering (seed: "Subject Filtering Configuration"): edge devices live in
# their own account and see only sensor data, edge commands and critical alerts
# imported from the core account; the edge leaf's deny rules keep diagnostics local.
name = "filtering"

site "central" {
  provider = "onprem"
  cidr     = "10.0.0.0/16"
}
site "plant" {
  provider = "edge"
  cidr     = "10.200.0.0/24"
}
link "plant" {
  sites   = ["plant", "central"]
  vpn     = "ipsec"
  latency = "15ms"
}

account "EDGE_SENSORS" {
  user "edge_app" {}
  export { stream = "sensors.>" }
  export { stream = "commands.edge.>" }
  import {
    stream  = "alerts.critical.>"
    account = "CORE"
  }
}

account "CORE" {
  user "core_app" {}
  export { stream = "alerts.>" }
  import {
    stream  = "sensors.>"
    account = "EDGE_SENSORS"
  }
}

hub "hub" {
  site = "central"
  size = 3
}

leaf "plant-leaf" {
  site = "plant"
  upstream "hub" {
    account      = "EDGE_SENSORS"
    deny_exports = ["diagnostics.>", "local.>"]
    deny_imports = ["diagnostics.>"]
  }
}
