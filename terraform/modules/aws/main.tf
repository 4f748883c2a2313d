# One site on AWS: a VPC (or an existing one), one instance per server from its own
# launch template, security groups that open only the topology's ports, the payload
# in Secrets Manager and the binary in a private bucket (user-data holds neither),
# JetStream volumes, an optional leaf load balancer, and VPNs/peerings to other sites.

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_availability_zones" "pinned" {
  state = "available"

  filter {
    name   = "zone-name"
    values = var.availability_zones
  }
}

data "aws_ssm_parameter" "al2023" {
  count = var.ami_id == null ? 1 : 0
  name  = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

locals {
  tags       = merge({ "canopy:site" = var.name }, var.tags)
  create_vpc = var.existing_vpc == null
  azs        = sort(data.aws_availability_zones.pinned.names)
  az_count   = length(var.availability_zones)
  ami        = var.ami_id != null ? var.ami_id : nonsensitive(data.aws_ssm_parameter.al2023[0].value)

  vpc_id             = local.create_vpc ? aws_vpc.this[0].id : var.existing_vpc.vpc_id
  private_subnet_ids = local.create_vpc ? aws_subnet.private[*].id : var.existing_vpc.private_subnet_ids
  public_subnet_ids  = local.create_vpc ? aws_subnet.public[*].id : var.existing_vpc.public_subnet_ids
  route_table_ids    = local.create_vpc ? aws_route_table.private[*].id : var.existing_vpc.route_table_ids

  # Names within AWS limits: readable when they fit, else cut and made unique by a hash.
  role_name = { for n in keys(var.servers) : n => length("${var.name}-${n}") <= 64 ? "${var.name}-${n}" : "${substr("${var.name}-${n}", 0, 55)}-${substr(sha1(n), 0, 8)}" }
  lb_name   = { for c in keys(var.leaf_lbs) : c => length("${var.name}-${c}") <= 32 ? "${var.name}-${c}" : "${substr(var.name, 0, 23)}-${substr(sha1(c), 0, 8)}" }

  # Each server in the private subnet of its zone, at its fixed address.
  names     = sort(keys(var.servers))
  subnet_of = { for n, s in var.servers : n => local.private_subnet_ids[s.zone_index % length(local.private_subnet_ids)] }
  clusters  = toset([for s in values(var.servers) : s.cluster if s.cluster_port > 0])
  jetstream = { for n, s in var.servers : n => s if s.jetstream_gb > 0 }

  # Every file of every server's payload becomes one secret.
  payload = { for p in flatten([
    for n in local.names : [
      for f in sort(fileset("${var.payload_dir}/${n}", "**")) : { server = n, file = f }
    ]
  ]) : "${p.server}/${p.file}" => p }

  # Ingress, one rule per (server, port, source).
  ingress = { for r in flatten([
    for n, s in var.servers : concat(
      [for c in var.client_cidrs : { server = n, port = s.client_port, cidr = c, what = "NATS clients" } if s.client_port > 0],
      [for c in var.admin_cidrs : { server = n, port = s.monitor_port, cidr = c, what = "monitoring" } if s.monitor_port > 0],
      [for c in var.leaf_cidrs : { server = n, port = s.leaf_port, cidr = c, what = "leaf nodes of peer sites" } if s.leaf_port > 0],
    )
  ]) : "${r.server}/${r.port}/${r.cidr}" => r }

  # Egress: AWS APIs (Secrets Manager, S3, KMS) on 443, and each upstream hub.
  egress = merge(
    { for n in local.names : "${n}/443/0.0.0.0/0" => { server = n, port = 443, cidr = "0.0.0.0/0", what = "AWS APIs" } },
    { for r in flatten([
      for n, s in var.servers : [for u in s.upstreams : { server = n, port = u.port, cidr = u.cidr, what = "upstream hubs" }]
    ]) : "${r.server}/${r.port}/${r.cidr}" => r },
  )

  # Leaf load balancers: their targets, who may reach them, their public addresses.
  lb_targets = { for n, s in var.servers : n => s if contains(keys(var.leaf_lbs), s.cluster) && s.leaf_port > 0 }
  lb_ingress = { for r in flatten([
    for c, lb in var.leaf_lbs : [
      for cidr in concat(var.leaf_cidrs, lb.scheme == "external" ? var.leaf_public_cidrs : []) : { cluster = c, port = lb.port, cidr = cidr }
    ]
  ]) : "${r.cluster}/${r.cidr}" => r }
  lb_egress = { for e in distinct(flatten([
    for n, s in local.lb_targets : { cluster = s.cluster, port = s.leaf_port }
  ])) : "${e.cluster}/${e.port}" => e }
  lb_eips = { for e in flatten([
    for c, lb in var.leaf_lbs : [for i in range(local.az_count) : { cluster = c, zone = i }] if lb.scheme == "external"
  ]) : "${e.cluster}/${e.zone}" => e }

  vpn      = { for k, v in var.vpn_links : k => v if v.peer_ip != "" }
  requests = { for k, p in var.vpc_peerings : k => p if p.role == "requester" && p.peer_vpc_id != "" }
  accepts  = { for k, p in var.vpc_peerings : k => p if p.role == "accepter" && p.peering_id != "" }
}

# --- Encryption: one key for secrets, volumes, the bucket and flow logs. ---------

# A key policy's resource "*" is the key itself: the account administers it, and
# CloudWatch Logs may use it for this site's log groups only.
locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  kms_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "Account"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "FlowLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/canopy/${var.name}/*"
          }
        }
      },
    ]
  })
}

resource "aws_kms_key" "this" {
  description             = "Canopy site ${var.name}: secrets, volumes, binary bucket, flow logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = local.kms_policy
  tags                    = local.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/canopy-${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

# --- Network ----------------------------------------------------------------------

resource "aws_vpc" "this" {
  count                = local.create_vpc ? 1 : 0
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(local.tags, { Name = var.name })
}

# The default security group admits nothing.
resource "aws_default_security_group" "this" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = local.tags
}

resource "aws_subnet" "private" {
  count             = local.create_vpc ? local.az_count : 0
  vpc_id            = aws_vpc.this[0].id
  cidr_block        = cidrsubnet(var.vpc_cidr, 3, count.index)
  availability_zone = local.azs[count.index]
  tags              = merge(local.tags, { Name = "${var.name}-private-${local.azs[count.index]}" })
}

resource "aws_subnet" "public" {
  count                   = local.create_vpc ? local.az_count : 0
  vpc_id                  = aws_vpc.this[0].id
  cidr_block              = cidrsubnet(var.vpc_cidr, 3, 4 + count.index)
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false
  tags                    = merge(local.tags, { Name = "${var.name}-public-${local.azs[count.index]}" })
}

resource "aws_internet_gateway" "this" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = local.tags
}

resource "aws_eip" "nat" {
  count  = local.create_vpc ? 1 : 0
  domain = "vpc"
  tags   = local.tags
}

resource "aws_nat_gateway" "this" {
  count         = local.create_vpc ? 1 : 0
  allocation_id = aws_eip.nat[0].id
  subnet_id     = aws_subnet.public[0].id
  tags          = local.tags
  depends_on    = [aws_internet_gateway.this]
}

resource "aws_route_table" "public" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = merge(local.tags, { Name = "${var.name}-public" })
}

resource "aws_route" "public_internet" {
  count                  = local.create_vpc ? 1 : 0
  route_table_id         = aws_route_table.public[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public" {
  count          = local.create_vpc ? local.az_count : 0
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_route_table" "private" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = merge(local.tags, { Name = "${var.name}-private" })
}

resource "aws_route" "private_nat" {
  count                  = local.create_vpc ? 1 : 0
  route_table_id         = aws_route_table.private[0].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[0].id
}

resource "aws_route_table_association" "private" {
  count          = local.create_vpc ? local.az_count : 0
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[0].id
}

# The binary bucket is reached without the NAT gateway.
resource "aws_vpc_endpoint" "s3" {
  count             = local.create_vpc ? 1 : 0
  vpc_id            = aws_vpc.this[0].id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id
  tags              = local.tags
}

resource "aws_cloudwatch_log_group" "flow" {
  count             = local.create_vpc ? 1 : 0
  name              = "/canopy/${var.name}/vpc-flow"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

data "aws_iam_policy_document" "flow_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "flow" {
  count              = local.create_vpc ? 1 : 0
  name               = substr("${var.name}-vpc-flow", 0, 64)
  assume_role_policy = data.aws_iam_policy_document.flow_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "flow" {
  count = local.create_vpc ? 1 : 0

  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow[0].arn}:*"]
  }
}

resource "aws_iam_role_policy" "flow" {
  count  = local.create_vpc ? 1 : 0
  role   = aws_iam_role.flow[0].id
  policy = data.aws_iam_policy_document.flow[0].json
}

resource "aws_flow_log" "this" {
  count           = local.create_vpc ? 1 : 0
  vpc_id          = aws_vpc.this[0].id
  traffic_type    = "ALL"
  iam_role_arn    = aws_iam_role.flow[0].arn
  log_destination = aws_cloudwatch_log_group.flow[0].arn
  tags            = local.tags
}

# --- The server binary, in a private bucket ----------------------------------------

resource "aws_s3_bucket" "binary" {
  bucket_prefix = "${var.name}-bin-"
  force_destroy = true
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "binary" {
  bucket                  = aws_s3_bucket.binary.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "binary" {
  bucket = aws_s3_bucket.binary.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "binary" {
  bucket = aws_s3_bucket.binary.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "binary" {
  bucket = aws_s3_bucket.binary.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "binary" {
  bucket = aws_s3_bucket.binary.id

  rule {
    id     = "old-binaries"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }
  }
}

# Named by its hash, so a new binary is a new object and replaces the instances.
resource "aws_s3_object" "binary" {
  bucket      = aws_s3_bucket.binary.id
  key         = "server/${filesha256(var.server_binary)}"
  source      = var.server_binary
  source_hash = filemd5(var.server_binary)
  kms_key_id  = aws_kms_key.this.arn
  tags        = local.tags
  depends_on  = [aws_s3_bucket_server_side_encryption_configuration.binary]
}

# --- The payload, in Secrets Manager ----------------------------------------------

resource "aws_secretsmanager_secret" "payload" {
  for_each                = local.payload
  name                    = "canopy/${var.name}/${each.key}"
  description             = "Canopy ${var.name}: ${each.value.file} of server ${each.value.server}"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 0
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "payload" {
  for_each      = local.payload
  secret_id     = aws_secretsmanager_secret.payload[each.key].id
  secret_string = file("${var.payload_dir}/${each.key}")
}

# --- Identity: each server reads only its own secrets ------------------------------

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "server" {
  for_each           = var.servers
  name               = local.role_name[each.key]
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "server" {
  for_each = var.servers

  statement {
    sid       = "Payload"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [for k, p in local.payload : aws_secretsmanager_secret.payload[k].arn if p.server == each.key]
  }

  statement {
    sid       = "Binary"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.binary.arn}/${aws_s3_object.binary.key}"]
  }

  statement {
    sid       = "Decrypt"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_role_policy" "server" {
  for_each = var.servers
  role     = aws_iam_role.server[each.key].id
  policy   = data.aws_iam_policy_document.server[each.key].json
}

resource "aws_iam_instance_profile" "server" {
  for_each = var.servers
  name     = local.role_name[each.key]
  role     = aws_iam_role.server[each.key].name
  tags     = local.tags
}

# --- Security groups: exactly the topology's ports ---------------------------------

resource "aws_security_group" "server" {
  for_each    = var.servers
  name        = "${var.name}-${each.key}"
  description = "NATS server ${each.key}: the ports its topology opens"
  vpc_id      = local.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-${each.key}" })
}

# Membership of a cluster: its route port admits this group only.
resource "aws_security_group" "cluster" {
  for_each    = local.clusters
  name        = "${var.name}-cluster-${each.key}"
  description = "Members of NATS cluster ${each.key}"
  vpc_id      = local.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-cluster-${each.key}" })
}

resource "aws_vpc_security_group_ingress_rule" "server" {
  for_each          = local.ingress
  security_group_id = aws_security_group.server[each.value.server].id
  description       = "${each.value.what} to ${each.value.server}"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr
  tags              = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "cluster" {
  for_each                     = { for n, s in var.servers : n => s if s.cluster_port > 0 }
  security_group_id            = aws_security_group.server[each.key].id
  description                  = "routes from members of cluster ${each.value.cluster}"
  ip_protocol                  = "tcp"
  from_port                    = each.value.cluster_port
  to_port                      = each.value.cluster_port
  referenced_security_group_id = aws_security_group.cluster[each.value.cluster].id
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "cluster" {
  for_each                     = { for n, s in var.servers : n => s if s.cluster_port > 0 }
  security_group_id            = aws_security_group.server[each.key].id
  description                  = "routes to members of cluster ${each.value.cluster}"
  ip_protocol                  = "tcp"
  from_port                    = each.value.cluster_port
  to_port                      = each.value.cluster_port
  referenced_security_group_id = aws_security_group.cluster[each.value.cluster].id
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "server" {
  for_each          = local.egress
  security_group_id = aws_security_group.server[each.value.server].id
  description       = "${each.value.what} from ${each.value.server}"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr
  tags              = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "from_lb" {
  for_each                     = local.lb_targets
  security_group_id            = aws_security_group.server[each.key].id
  description                  = "leaf nodes through the load balancer to ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = each.value.leaf_port
  to_port                      = each.value.leaf_port
  referenced_security_group_id = aws_security_group.lb[each.value.cluster].id
  tags                         = local.tags
}

# --- Instances ---------------------------------------------------------------------

resource "aws_launch_template" "server" {
  for_each      = var.servers
  name          = "${var.name}-${each.key}"
  image_id      = local.ami
  instance_type = each.value.instance_type
  ebs_optimized = true

  user_data = base64encode(templatefile("${path.module}/cloud-init.sh.tftpl", {
    server         = each.key
    region         = data.aws_region.current.name
    bucket         = aws_s3_bucket.binary.id
    binary_key     = aws_s3_object.binary.key
    binary_sha256  = filesha256(var.server_binary)
    files          = join(" ", [for k, p in local.payload : "${aws_secretsmanager_secret.payload[k].name}=${p.file}" if p.server == each.key])
    payload_sha256 = sha256(join(",", [for k, p in local.payload : filesha256("${var.payload_dir}/${k}") if p.server == each.key]))
    data_device    = each.value.jetstream_gb > 0 ? "/dev/sdf" : ""
    extra_hosts    = join("\n", [for n, ip in var.extra_hosts : "${ip} ${n}"])
  }))

  vpc_security_group_ids = concat(
    [aws_security_group.server[each.key].id],
    each.value.cluster_port > 0 ? [aws_security_group.cluster[each.value.cluster].id] : [],
  )

  iam_instance_profile {
    arn = aws_iam_instance_profile.server[each.key].arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = 20
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = aws_kms_key.this.arn
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-${each.key}" })
  }

  tags = local.tags

  # A newer AMI waits for a deliberate replacement (set ami_id to move).
  lifecycle {
    ignore_changes = [image_id]
  }
}

resource "aws_instance" "server" {
  for_each             = var.servers
  subnet_id            = local.subnet_of[each.key]
  private_ip           = each.value.private_ip
  iam_instance_profile = aws_iam_instance_profile.server[each.key].name
  monitoring           = true
  ebs_optimized        = true

  launch_template {
    id      = aws_launch_template.server[each.key].id
    version = aws_launch_template.server[each.key].latest_version
  }

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
  }

  # As the launch template has it (an instance's own root settings win over it).
  root_block_device {
    volume_size = 20
    volume_type = "gp3"
    encrypted   = true
    kms_key_id  = aws_kms_key.this.arn
  }

  tags = merge(local.tags, { Name = "${var.name}-${each.key}" })

  # cloud-init reads the secrets and the bucket on first boot: everything on its path
  # exists before the instance does.
  depends_on = [
    aws_secretsmanager_secret_version.payload,
    aws_iam_role_policy.server,
    aws_route.private_nat,
    aws_route_table_association.private,
    aws_vpc_endpoint.s3,
    aws_vpc_security_group_egress_rule.server,
    aws_vpc_security_group_egress_rule.cluster,
  ]
}

# The volume's zone comes from the subnet, not the instance, so replacing an instance
# (a new binary or payload) keeps the volume and re-attaches it.
data "aws_subnet" "server" {
  for_each = local.jetstream
  id       = local.subnet_of[each.key]
}

resource "aws_ebs_volume" "jetstream" {
  for_each          = local.jetstream
  availability_zone = data.aws_subnet.server[each.key].availability_zone
  size              = each.value.jetstream_gb
  type              = "gp3"
  encrypted         = true
  kms_key_id        = aws_kms_key.this.arn
  tags              = merge(local.tags, { Name = "${var.name}-${each.key}-jetstream" })
}

resource "aws_volume_attachment" "jetstream" {
  for_each                       = local.jetstream
  device_name                    = "/dev/sdf"
  volume_id                      = aws_ebs_volume.jetstream[each.key].id
  instance_id                    = aws_instance.server[each.key].id
  stop_instance_before_detaching = true
}

# --- Leaf load balancers (TLS passes through to the hubs) --------------------------

resource "aws_security_group" "lb" {
  for_each    = var.leaf_lbs
  name        = "${var.name}-${each.key}-lb"
  description = "Leaf load balancer of cluster ${each.key}: its leafnode port from the sites that dial it"
  vpc_id      = local.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-${each.key}-lb" })
}

resource "aws_vpc_security_group_ingress_rule" "lb" {
  for_each          = local.lb_ingress
  security_group_id = aws_security_group.lb[each.value.cluster].id
  description       = "leaf nodes to the load balancer of ${each.value.cluster}"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "lb" {
  for_each          = local.lb_egress
  security_group_id = aws_security_group.lb[each.value.cluster].id
  description       = "the load balancer to the leafnode port of ${each.value.cluster}"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = local.create_vpc ? var.vpc_cidr : data.aws_vpc.existing[0].cidr_block
  tags              = local.tags
}

data "aws_vpc" "existing" {
  count = local.create_vpc ? 0 : 1
  id    = var.existing_vpc.vpc_id
}

# External balancers get fixed public addresses, one per zone.
resource "aws_eip" "lb" {
  for_each = local.lb_eips
  domain   = "vpc"
  tags     = merge(local.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_lb" "leaf" {
  for_each                         = var.leaf_lbs
  name                             = local.lb_name[each.key]
  load_balancer_type               = "network"
  internal                         = each.value.scheme == "internal"
  security_groups                  = [aws_security_group.lb[each.key].id]
  enable_deletion_protection       = var.deletion_protection
  enable_cross_zone_load_balancing = true
  tags                             = local.tags

  # Internal balancers sit at the addresses the topology planned (its `<cluster>-lb` name).
  dynamic "subnet_mapping" {
    for_each = range(local.az_count)
    content {
      subnet_id            = each.value.scheme == "internal" ? local.private_subnet_ids[subnet_mapping.value] : local.public_subnet_ids[subnet_mapping.value]
      private_ipv4_address = each.value.scheme == "internal" ? each.value.private_ips[subnet_mapping.value] : null
      allocation_id        = each.value.scheme == "external" ? aws_eip.lb["${each.key}/${subnet_mapping.value}"].id : null
    }
  }
}

resource "aws_lb_target_group" "leaf" {
  for_each    = var.leaf_lbs
  name        = local.lb_name[each.key]
  port        = each.value.port
  protocol    = "TCP"
  target_type = "instance"
  vpc_id      = local.vpc_id
  tags        = local.tags

  health_check {
    protocol = "TCP"
  }
}

resource "aws_lb_listener" "leaf" {
  for_each          = var.leaf_lbs
  load_balancer_arn = aws_lb.leaf[each.key].arn
  port              = each.value.port
  protocol          = "TCP"
  tags              = local.tags

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.leaf[each.key].arn
  }
}

resource "aws_lb_target_group_attachment" "leaf" {
  for_each         = local.lb_targets
  target_group_arn = aws_lb_target_group.leaf[each.value.cluster].arn
  target_id        = aws_instance.server[each.key].id
  port             = each.value.leaf_port
}

# --- Site-to-site: IPsec VPNs and VPC peerings -------------------------------------

resource "aws_vpn_gateway" "this" {
  count           = length(var.vpn_links) > 0 ? 1 : 0
  vpc_id          = local.vpc_id
  amazon_side_asn = var.amazon_side_asn
  tags            = merge(local.tags, { Name = var.name })
}

# Routes the peers announce over BGP reach the servers' subnets.
resource "aws_vpn_gateway_route_propagation" "this" {
  count          = length(var.vpn_links) > 0 ? length(local.route_table_ids) : 0
  vpn_gateway_id = aws_vpn_gateway.this[0].id
  route_table_id = local.route_table_ids[count.index]
}

resource "aws_customer_gateway" "peer" {
  for_each   = local.vpn
  bgp_asn    = each.value.peer_asn
  ip_address = each.value.peer_ip
  type       = "ipsec.1"
  tags       = merge(local.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_vpn_connection" "peer" {
  for_each                             = local.vpn
  vpn_gateway_id                       = aws_vpn_gateway.this[0].id
  customer_gateway_id                  = aws_customer_gateway.peer[each.key].id
  type                                 = "ipsec.1"
  static_routes_only                   = false
  tunnel1_inside_cidr                  = each.value.inside_cidrs[0]
  tunnel2_inside_cidr                  = each.value.inside_cidrs[1]
  tunnel1_preshared_key                = var.vpn_psks[each.key]
  tunnel2_preshared_key                = var.vpn_psks[each.key]
  tunnel1_ike_versions                 = ["ikev2"]
  tunnel2_ike_versions                 = ["ikev2"]
  tunnel1_phase1_encryption_algorithms = ["AES256"]
  tunnel2_phase1_encryption_algorithms = ["AES256"]
  tunnel1_phase2_encryption_algorithms = ["AES256"]
  tunnel2_phase2_encryption_algorithms = ["AES256"]
  tunnel1_phase1_integrity_algorithms  = ["SHA2-256"]
  tunnel2_phase1_integrity_algorithms  = ["SHA2-256"]
  tunnel1_phase2_integrity_algorithms  = ["SHA2-256"]
  tunnel2_phase2_integrity_algorithms  = ["SHA2-256"]
  tunnel1_phase1_dh_group_numbers      = [14]
  tunnel2_phase1_dh_group_numbers      = [14]
  tunnel1_phase2_dh_group_numbers      = [14]
  tunnel2_phase2_dh_group_numbers      = [14]
  tags                                 = merge(local.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_vpc_peering_connection" "peer" {
  for_each    = local.requests
  vpc_id      = local.vpc_id
  peer_vpc_id = each.value.peer_vpc_id
  peer_region = each.value.peer_region
  auto_accept = false
  tags        = merge(local.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_vpc_peering_connection_accepter" "peer" {
  for_each                  = local.accepts
  vpc_peering_connection_id = each.value.peering_id
  auto_accept               = true
  tags                      = merge(local.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_route" "peering" {
  for_each = { for p in flatten([
    for k, v in merge(local.requests, local.accepts) : [
      for i in range(length(local.route_table_ids)) : { key = "${k}/${i}", link = k, table = i, cidr = v.peer_cidr }
    ]
  ]) : p.key => p }
  route_table_id            = local.route_table_ids[each.value.table]
  destination_cidr_block    = each.value.cidr
  vpc_peering_connection_id = contains(keys(local.requests), each.value.link) ? aws_vpc_peering_connection.peer[each.value.link].id : local.accepts[each.value.link].peering_id
}
