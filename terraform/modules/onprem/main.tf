# One server per existing host: copy its payload over SSH and run install.sh, which
# installs the config and certificates under /etc/canopy/bundle and starts the
# systemd unit. A changed payload or binary re-runs the install.
resource "null_resource" "server" {
  for_each = var.servers

  triggers = {
    payload = sha256(join(",", [for f in sort(fileset("${var.payload_dir}/${each.key}", "**")) : filesha256("${var.payload_dir}/${each.key}/${f}")]))
    binary  = filesha256(var.server_binary)
    host    = each.value.address
  }

  connection {
    type        = "ssh"
    host        = each.value.address
    user        = each.value.ssh_user
    port        = var.ssh_port
    private_key = file(pathexpand(var.ssh_private_key_path))
  }

  provisioner "remote-exec" {
    inline = ["mkdir -p /tmp/canopy-${each.key}"]
  }

  provisioner "file" {
    source      = "${var.payload_dir}/${each.key}/"
    destination = "/tmp/canopy-${each.key}"
  }

  provisioner "file" {
    source      = var.server_binary
    destination = "/tmp/canopy-${each.key}/server-binary"
  }

  provisioner "remote-exec" {
    inline = [
      "chmod 0755 /tmp/canopy-${each.key}/server-binary",
      "sudo CANOPY_SERVER_BIN=/tmp/canopy-${each.key}/server-binary sh /tmp/canopy-${each.key}/install.sh",
      "rm -rf /tmp/canopy-${each.key}",
    ]
  }
}
