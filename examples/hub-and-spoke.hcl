# Hub-and-spoke (seed: "Hub-and-Spoke Topology"): four edge locations collect sensor
# data locally (with JetStream for hub outages) and forward it to a central hub.
name = "spoke"

site "central" {
  provider = "onprem"
  cidr     = "10.0.0.0/16"
}

account "SENSORS" {
  user "collector" {}
  user "sensor" {
    publish   = ["sensors.>"]
    subscribe = ["commands.>", "_INBOX.>"]
  }
}

hub "central" {
  site = "central"
  size = 3
  jetstream {
    domain     = "central"
    max_memory = "1GB"
    max_file   = "20GB"
  }
}

site "edge-1" {
  provider = "edge"
  cidr     = "10.101.0.0/24"
}
link "edge-1" {
  sites     = ["edge-1", "central"]
  vpn       = "lte"
  latency   = "60ms"
  jitter    = "10ms"
  bandwidth = "10mbit"
}
leaf "edge-1" {
  site = "edge-1"
  jetstream {
    domain     = "edge-1"
    max_memory = "256MB"
    max_file   = "1GB"
  }
  upstream "central" {
    account      = "SENSORS"
    deny_exports = ["local.>"]
  }
}

site "edge-2" {
  provider = "edge"
  cidr     = "10.102.0.0/24"
}
link "edge-2" {
  sites     = ["edge-2", "central"]
  vpn       = "lte"
  latency   = "60ms"
  jitter    = "10ms"
  bandwidth = "10mbit"
}
leaf "edge-2" {
  site = "edge-2"
  jetstream {
    domain     = "edge-2"
    max_memory = "256MB"
    max_file   = "1GB"
  }
  upstream "central" {
    account      = "SENSORS"
    deny_exports = ["local.>"]
  }
}

site "edge-3" {
  provider = "edge"
  cidr     = "10.103.0.0/24"
}
link "edge-3" {
  sites     = ["edge-3", "central"]
  vpn       = "satellite"
  latency   = "300ms"
  jitter    = "40ms"
  bandwidth = "2mbit"
}
leaf "edge-3" {
  site = "edge-3"
  jetstream {
    domain     = "edge-3"
    max_memory = "256MB"
    max_file   = "1GB"
  }
  upstream "central" {
    account      = "SENSORS"
    deny_exports = ["local.>"]
  }
}

site "edge-4" {
  provider = "edge"
  cidr     = "10.104.0.0/24"
}
link "edge-4" {
  sites     = ["edge-4", "central"]
  vpn       = "wireguard"
  latency   = "30ms"
  bandwidth = "50mbit"
}
leaf "edge-4" {
  site = "edge-4"
  jetstream {
    domain     = "edge-4"
    max_memory = "256MB"
    max_file   = "1GB"
  }
  upstream "central" {
    account      = "SENSORS"
    deny_exports = ["local.>"]
  }
}
