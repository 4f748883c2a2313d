# One site on GCP: a VPC network and subnetwork (or existing ones), one instance per
# server with cloud-init, firewall rules that open only the topology's ports, the
# payload in Secret Manager and the binary in a private bucket (the metadata holds
# neither), JetStream disks, an optional leaf load balancer, and HA VPNs/peerings.

data "google_project" "this" {}

data "google_compute_zones" "available" {
  region = var.region
  status = "UP"
}

locals {
  labels     = merge({ "canopy-site" = var.name }, var.labels)
  create_net = var.existing_network == null
  network    = local.create_net ? google_compute_network.this[0].self_link : var.existing_network.network
  subnetwork = local.create_net ? google_compute_subnetwork.this[0].self_link : var.existing_network.subnetwork
  zones      = slice(sort(data.google_compute_zones.available.names), 0, var.zone_count)

  names = sort(keys(var.servers))
  # Resource names within GCP's 63 characters (with the longest suffix, 12): readable
  # when they fit, else cut and made unique by a hash.
  sname     = { for n in local.names : n => length("${var.name}-${n}") <= 45 ? "${var.name}-${n}" : "${substr("${var.name}-${n}", 0, 38)}-${substr(sha1(n), 0, 6)}" }
  cname     = { for c in distinct([for s in values(var.servers) : s.cluster]) : c => length("${var.name}-${c}") <= 45 ? "${var.name}-${c}" : "${substr("${var.name}-${c}", 0, 38)}-${substr(sha1(c), 0, 6)}" }
  zone_of   = { for n, s in var.servers : n => local.zones[s.zone_index % length(local.zones)] }
  jetstream = { for n, s in var.servers : n => s if s.jetstream_gb > 0 }
  cluster_rules = { for r in flatten([
    for n, s in var.servers : [
      for i, c in chunklist(sort([for m, t in var.servers : m if t.cluster == s.cluster && t.cluster_port > 0]), 10) : { server = n, chunk = i, members = c }
    ] if s.cluster_port > 0
  ]) : "${r.server}/${r.chunk}" => r }

  # Every file of every server's payload becomes one secret.
  payload = { for p in flatten([
    for n in local.names : [
      for f in sort(fileset("${var.payload_dir}/${n}", "**")) : { server = n, file = f }
    ]
  ]) : "${p.server}/${p.file}" => p }

  # Ingress, one rule per (server, port) with its sources.
  ingress = merge(
    { for n, s in var.servers : "${n}-client" => { server = n, kind = "client", port = s.client_port, ranges = var.client_cidrs, what = "NATS clients" } if s.client_port > 0 && length(var.client_cidrs) > 0 },
    { for n, s in var.servers : "${n}-monitor" => { server = n, kind = "monitor", port = s.monitor_port, ranges = var.admin_cidrs, what = "monitoring" } if s.monitor_port > 0 && length(var.admin_cidrs) > 0 },
    { for n, s in var.servers : "${n}-leaf" => { server = n, kind = "leaf", port = s.leaf_port, ranges = concat(var.leaf_cidrs, lookup(local.lb_extra, s.cluster, [])), what = "leaf nodes" } if s.leaf_port > 0 && length(concat(var.leaf_cidrs, lookup(local.lb_extra, s.cluster, []))) > 0 },
  )

  # Egress: Google APIs on 443 and each upstream hub; everything else is denied.
  egress = merge(
    { for n in local.names : "${n}-apis" => { server = n, kind = "apis", ports = ["443"], ranges = ["0.0.0.0/0"], what = "Google APIs" } },
    { for n, s in var.servers : "${n}-upstreams" => { server = n, kind = "upstreams", ports = distinct([for u in s.upstreams : tostring(u.port)]), ranges = distinct([for u in s.upstreams : u.cidr]), what = "upstream hubs" } if length(s.upstreams) > 0 },
  )

  # Leaf load balancers: their targets and zonal groups. Passthrough balancers keep
  # the leaf's address; their health checks come from Google's ranges.
  lb_targets = { for n, s in var.servers : n => s if contains(keys(var.leaf_lbs), s.cluster) && s.leaf_port > 0 }
  lb_groups = { for g in distinct(flatten([
    for n, s in local.lb_targets : { cluster = s.cluster, zone = local.zone_of[n] }
  ])) : "${g.cluster}/${g.zone}" => g }
  lb_extra = { for c, lb in var.leaf_lbs : c => concat(
    lb.scheme == "external" ? ["35.191.0.0/16", "209.85.152.0/22", "209.85.204.0/22"] : ["35.191.0.0/16", "130.211.0.0/22"],
    lb.scheme == "external" ? var.leaf_public_cidrs : [],
  ) }

  vpn      = { for k, v in var.vpn_links : k => v if length(v.peer_ips) > 0 }
  tunnels  = { for t in flatten([for k, v in local.vpn : [for i in range(2) : { key = "${k}-${i}", link = k, index = i }]]) : t.key => t }
  peerings = { for k, p in var.network_peerings : k => p if p.peer_network != "" }
}

# --- Network ----------------------------------------------------------------------

resource "google_compute_network" "this" {
  count                   = local.create_net ? 1 : 0
  name                    = var.name
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "this" {
  count                    = local.create_net ? 1 : 0
  name                     = var.name
  region                   = var.region
  network                  = google_compute_network.this[0].id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# --- The server binary, in a private bucket ----------------------------------------

resource "google_storage_bucket" "binary" {
  name                        = "${var.name}-bin-${substr(sha1(data.google_project.this.project_id), 0, 8)}"
  location                    = upper(var.region)
  force_destroy               = true
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = local.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }
}

# Named by its hash, so a new binary is a new object and replaces the instances.
resource "google_storage_bucket_object" "binary" {
  bucket = google_storage_bucket.binary.name
  name   = "server/${filesha256(var.server_binary)}"
  source = var.server_binary
}

# --- Identity: each server reads only its own secrets ------------------------------

resource "google_service_account" "server" {
  for_each     = var.servers
  account_id   = "cn-${substr(sha1("${var.name}/${each.key}"), 0, 20)}"
  display_name = "Canopy ${var.name} server ${each.key}"
}

resource "google_storage_bucket_iam_member" "server" {
  for_each = var.servers
  bucket   = google_storage_bucket.binary.name
  role     = "roles/storage.objectViewer"
  member   = "serviceAccount:${google_service_account.server[each.key].email}"
}

# --- The payload, in Secret Manager -----------------------------------------------

resource "google_secret_manager_secret" "payload" {
  for_each  = local.payload
  secret_id = "${var.name}-${replace(each.key, "/[/.]/", "-")}"
  labels    = local.labels

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

resource "google_secret_manager_secret_version" "payload" {
  for_each    = local.payload
  secret      = google_secret_manager_secret.payload[each.key].id
  secret_data = file("${var.payload_dir}/${each.key}")
}

resource "google_secret_manager_secret_iam_member" "payload" {
  for_each  = local.payload
  secret_id = google_secret_manager_secret.payload[each.key].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.server[each.value.server].email}"
}

# --- Firewall: exactly the topology's ports ----------------------------------------

resource "google_compute_firewall" "ingress" {
  for_each                = local.ingress
  name                    = "${local.sname[each.value.server]}-${each.value.kind}"
  description             = "${each.value.what} to ${each.value.server}"
  network                 = local.network
  direction               = "INGRESS"
  source_ranges           = each.value.ranges
  target_service_accounts = [google_service_account.server[each.value.server].email]

  allow {
    protocol = "tcp"
    ports    = [tostring(each.value.port)]
  }
}

# A rule takes at most 10 source service accounts: members come in chunks of 10.
resource "google_compute_firewall" "cluster" {
  for_each                = local.cluster_rules
  name                    = "${local.sname[each.value.server]}-cluster${each.value.chunk}"
  description             = "routes from members of cluster ${var.servers[each.value.server].cluster} to ${each.value.server}"
  network                 = local.network
  direction               = "INGRESS"
  source_service_accounts = [for m in each.value.members : google_service_account.server[m].email]
  target_service_accounts = [google_service_account.server[each.value.server].email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.servers[each.value.server].cluster_port)]
  }
}

resource "google_compute_firewall" "egress" {
  for_each                = local.egress
  name                    = "${local.sname[each.value.server]}-${each.value.kind}"
  description             = "${each.value.what} from ${each.value.server}"
  network                 = local.network
  direction               = "EGRESS"
  priority                = 1000
  destination_ranges      = each.value.ranges
  target_service_accounts = [google_service_account.server[each.value.server].email]

  allow {
    protocol = "tcp"
    ports    = each.value.ports
  }
}

resource "google_compute_firewall" "egress_cluster" {
  for_each                = { for n, s in var.servers : n => s if s.cluster_port > 0 }
  name                    = "${local.sname[each.key]}-cluster-out"
  description             = "routes from ${each.key} to members of cluster ${each.value.cluster}"
  network                 = local.network
  direction               = "EGRESS"
  priority                = 1000
  destination_ranges      = [var.subnet_cidr]
  target_service_accounts = [google_service_account.server[each.key].email]

  allow {
    protocol = "tcp"
    ports    = [tostring(each.value.cluster_port)]
  }
}

# A rule targets at most 10 service accounts: servers come in chunks of 10.
resource "google_compute_firewall" "egress_deny" {
  for_each                = { for i, c in chunklist(local.names, 10) : tostring(i) => c }
  name                    = "${var.name}-deny-egress-${each.key}"
  description             = "Servers of ${var.name} reach nothing they were not given"
  network                 = local.network
  direction               = "EGRESS"
  priority                = 65000
  destination_ranges      = ["0.0.0.0/0"]
  target_service_accounts = [for n in each.value : google_service_account.server[n].email]

  deny {
    protocol = "all"
  }
}

# --- Instances ---------------------------------------------------------------------

resource "google_compute_disk" "jetstream" {
  for_each = local.jetstream
  name     = "${local.sname[each.key]}-jetstream"
  zone     = local.zone_of[each.key]
  type     = "pd-balanced"
  size     = each.value.jetstream_gb
  labels   = local.labels
}

resource "google_compute_instance" "server" {
  for_each                  = var.servers
  name                      = local.sname[each.key]
  zone                      = local.zone_of[each.key]
  machine_type              = each.value.machine_type
  allow_stopping_for_update = true
  labels                    = local.labels

  boot_disk {
    initialize_params {
      image = var.image
      size  = 20
    }
  }

  network_interface {
    subnetwork = local.subnetwork
    network_ip = each.value.private_ip
  }

  dynamic "attached_disk" {
    for_each = contains(keys(local.jetstream), each.key) ? [google_compute_disk.jetstream[each.key].self_link] : []
    content {
      source      = attached_disk.value
      device_name = "jetstream"
    }
  }

  service_account {
    email  = google_service_account.server[each.key].email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    block-project-ssh-keys = "true"
    enable-oslogin         = "TRUE"
    user-data = templatefile("${path.module}/cloud-init.sh.tftpl", {
      server         = each.key
      project        = data.google_project.this.project_id
      bucket         = google_storage_bucket.binary.name
      binary_key     = google_storage_bucket_object.binary.name
      binary_sha256  = filesha256(var.server_binary)
      files          = join(" ", [for k, p in local.payload : "${google_secret_manager_secret.payload[k].secret_id}=${p.file}" if p.server == each.key])
      payload_sha256 = terraform_data.revision[each.key].output
      data_device    = contains(keys(local.jetstream), each.key) ? "/dev/disk/by-id/google-jetstream" : ""
      extra_hosts    = join("\n", [for n, ip in var.extra_hosts : "${ip} ${n}"])
    })
  }

  # Metadata changes apply in place and cloud-init runs once: a new binary or payload
  # replaces the instance (its JetStream disk stays and re-attaches).
  lifecycle {
    replace_triggered_by = [terraform_data.revision[each.key]]
  }

  # cloud-init reads the secrets and the bucket on first boot: everything on its path
  # exists before the instance does.
  depends_on = [
    google_secret_manager_secret_version.payload,
    google_secret_manager_secret_iam_member.payload,
    google_storage_bucket_iam_member.server,
    google_compute_firewall.egress,
    google_compute_firewall.egress_deny,
  ]
}

# What a server runs: its binary and its payload.
resource "terraform_data" "revision" {
  for_each = var.servers
  input    = sha256(join(",", concat([filesha256(var.server_binary)], [for k, p in local.payload : filesha256("${var.payload_dir}/${k}") if p.server == each.key])))
}

# --- Leaf load balancers (passthrough: TLS ends at the hubs) ----------------------

# External balancers get a fixed public address.
resource "google_compute_address" "lb" {
  for_each     = { for c, lb in var.leaf_lbs : c => lb if lb.scheme == "external" }
  name         = "${local.cname[each.key]}-lb"
  region       = var.region
  address_type = "EXTERNAL"
}

resource "google_compute_instance_group" "leaf" {
  for_each  = local.lb_groups
  name      = "${local.cname[each.value.cluster]}-${substr(sha1(each.value.zone), 0, 6)}"
  zone      = each.value.zone
  instances = [for n, s in local.lb_targets : google_compute_instance.server[n].self_link if s.cluster == each.value.cluster && local.zone_of[n] == each.value.zone]
}

resource "google_compute_region_health_check" "leaf" {
  for_each = var.leaf_lbs
  name     = "${local.cname[each.key]}-lb"
  region   = var.region

  tcp_health_check {
    port = each.value.port
  }
}

resource "google_compute_region_backend_service" "leaf" {
  for_each              = var.leaf_lbs
  name                  = "${local.cname[each.key]}-lb"
  region                = var.region
  protocol              = "TCP"
  load_balancing_scheme = upper(each.value.scheme)
  health_checks         = [google_compute_region_health_check.leaf[each.key].id]

  dynamic "backend" {
    for_each = { for k, g in google_compute_instance_group.leaf : k => g if local.lb_groups[k].cluster == each.key }
    content {
      group          = backend.value.self_link
      balancing_mode = "CONNECTION"
    }
  }
}

# Internal balancers sit at the address the topology planned (its `<cluster>-lb` name).
resource "google_compute_forwarding_rule" "leaf" {
  for_each              = var.leaf_lbs
  name                  = "${local.cname[each.key]}-lb"
  region                = var.region
  ip_protocol           = "TCP"
  ports                 = [tostring(each.value.port)]
  load_balancing_scheme = upper(each.value.scheme)
  ip_address            = each.value.scheme == "internal" ? each.value.private_ips[0] : google_compute_address.lb[each.key].address
  backend_service       = google_compute_region_backend_service.leaf[each.key].id
  network               = each.value.scheme == "internal" ? local.network : null
  subnetwork            = each.value.scheme == "internal" ? local.subnetwork : null
  labels                = local.labels
}

# --- Site-to-site: HA VPNs and network peerings ------------------------------------

resource "google_compute_ha_vpn_gateway" "this" {
  count   = length(var.vpn_links) > 0 ? 1 : 0
  name    = var.name
  region  = var.region
  network = local.network
}

resource "google_compute_router" "this" {
  count   = length(var.vpn_links) > 0 ? 1 : 0
  name    = var.name
  region  = var.region
  network = local.network

  bgp {
    asn = var.router_asn
  }
}

resource "google_compute_external_vpn_gateway" "peer" {
  for_each        = local.vpn
  name            = "${var.name}-${each.key}"
  redundancy_type = length(each.value.peer_ips) == 2 ? "TWO_IPS_REDUNDANCY" : "SINGLE_IP_INTERNALLY_REDUNDANT"
  labels          = local.labels

  dynamic "interface" {
    for_each = each.value.peer_ips
    content {
      id         = interface.key
      ip_address = interface.value
    }
  }
}

# Two tunnels a link: to a two-address peer (an AWS connection) both leave interface
# 0, whose address is the peer's customer gateway; to a one-address peer they leave
# both interfaces.
resource "google_compute_vpn_tunnel" "peer" {
  for_each                        = local.tunnels
  name                            = "${var.name}-${each.key}"
  region                          = var.region
  vpn_gateway                     = google_compute_ha_vpn_gateway.this[0].id
  vpn_gateway_interface           = length(local.vpn[each.value.link].peer_ips) == 2 ? 0 : each.value.index
  peer_external_gateway           = google_compute_external_vpn_gateway.peer[each.value.link].id
  peer_external_gateway_interface = length(local.vpn[each.value.link].peer_ips) == 2 ? each.value.index : 0
  shared_secret                   = var.vpn_psks[each.value.link]
  ike_version                     = 2
  router                          = google_compute_router.this[0].id
}

resource "google_compute_router_interface" "peer" {
  for_each   = local.tunnels
  name       = "${var.name}-${each.key}"
  region     = var.region
  router     = google_compute_router.this[0].name
  ip_range   = "${cidrhost(local.vpn[each.value.link].inside_cidrs[each.value.index], local.vpn[each.value.link].local_host)}/30"
  vpn_tunnel = google_compute_vpn_tunnel.peer[each.key].name
}

resource "google_compute_router_peer" "peer" {
  for_each        = local.tunnels
  name            = "${var.name}-${each.key}"
  region          = var.region
  router          = google_compute_router.this[0].name
  interface       = google_compute_router_interface.peer[each.key].name
  peer_asn        = local.vpn[each.value.link].peer_asn
  peer_ip_address = cidrhost(local.vpn[each.value.link].inside_cidrs[each.value.index], 3 - local.vpn[each.value.link].local_host)
}

resource "google_compute_network_peering" "peer" {
  for_each     = local.peerings
  name         = "${var.name}-${each.key}"
  network      = local.network
  peer_network = each.value.peer_network
}
