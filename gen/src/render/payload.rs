//! `deploy/<server>/`: everything one host needs to run one server — its config, its
//! certificate and key (and its leaf links' client certificates), the CA, a systemd
//! unit and `install.sh`, which installs them under /etc/canopy/bundle and starts the
//! unit. The same payload serves every provider: on-prem Terraform copies it over SSH
//! and runs it.

use super::layout::{conf_path, server_files};
use super::template::render as render_template;
use crate::bundle::{Bundle, PRIVATE, PUBLIC};
use crate::model::netplan::known_hosts;
use crate::model::{binary, Model};
use anyhow::{Context, Result};
use std::collections::BTreeMap;

/// The payload directory of a server.
pub fn dir(server: &str) -> String {
    format!("deploy/{server}")
}

/// The systemd unit's name.
pub fn unit(server: &str) -> String {
    format!("canopy-{server}.service")
}

/// Each server's payload, around its host config from `host_confs` (by server: the
/// text, and whether it carries a secret; see `conf::render_hosts`).
pub fn render(
    m: &Model,
    host_confs: &BTreeMap<String, (String, bool)>,
    bundle: &mut Bundle,
) -> Result<()> {
    // Cloud servers have fixed addresses: every host learns their names.
    let hosts: String = known_hosts(m)
        .iter()
        .map(|(ip, name)| format!("{ip} {name}\n"))
        .collect();
    for s in &m.servers {
        let files = server_files(m, s);
        let d = dir(&s.name);
        // The host's config dials hubs on other sites directly (over the real VPN),
        // not through a linksim service; the rest is what its container would mount.
        let (conf, secret_inside) = host_confs
            .get(&s.name)
            .with_context(|| format!("no host config for {}", s.name))?;
        let conf_path = conf_path(&s.name);
        bundle.add(
            format!("{d}/{conf_path}"),
            conf.clone(),
            if *secret_inside { PRIVATE } else { PUBLIC },
        );
        for f in files.iter().filter(|f| **f != conf_path) {
            if let Some((bytes, mode)) = bundle.files.get(std::path::Path::new(f)).cloned() {
                bundle.add(format!("{d}/{f}"), bytes, mode);
            }
        }
        let (private, public): (Vec<String>, Vec<String>) = files
            .iter()
            .filter(|f| f.starts_with("pki/"))
            .cloned()
            .partition(|f| f.ends_with("-key.pem"));
        let role = s.role();
        let mut ctx = tera::Context::new();
        ctx.insert("server", &s.name);
        ctx.insert("role", &role);
        ctx.insert("binary", binary(s));
        ctx.insert("unit", &unit(&s.name));
        ctx.insert("public_files", &public);
        ctx.insert("private_files", &private);
        if !hosts.is_empty() {
            bundle.add(format!("{d}/hosts"), hosts.clone(), PUBLIC);
        }
        bundle.add(
            format!("{d}/install.sh"),
            render_template("install.sh", &ctx)?,
            0o755,
        );
        bundle.add(
            format!("{d}/{}", unit(&s.name)),
            render_template("unit.service", &ctx)?,
            0o644,
        );
    }
    Ok(())
}
