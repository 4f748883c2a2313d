//! canopy-gen: one topology file in, a deployable bundle out — server configs, a
//! PKI, secrets, a docker-compose bundle, per-host deploy payloads, Terraform root
//! modules and a diagram. It is not a server: every `.conf` it writes is meant to pass
//! both `nats-server -t` and canopy-server's own config reader ([`check_conf`]).
//!
//! The pipeline: [`topology::parse`] (HCL, with places) → [`model::build`] (resolved
//! and checked, all findings at once) → the renderers in [`render`] → a
//! [`bundle::Bundle`] in memory → written atomically.

pub mod bundle;
pub mod compose_cli;
pub mod diag;
pub mod model;
pub mod render;
pub mod topology;

use anyhow::{Context, Result};
use canopy_server::config::{self, Diagnostics};
use diag::{Report, Source};
use std::path::Path;

/// A topology file, read and checked.
pub struct Loaded {
    pub source: Source,
    pub topology: topology::Topology,
    pub model: model::Model,
}

/// Read and check topology text; `path` is the name diagnostics use.
pub fn load_str(path: &str, text: &str) -> Result<Loaded, Report> {
    let source = Source {
        path: path.to_string(),
        text: text.to_string(),
    };
    let fail = |diagnostics| Report {
        source: source.clone(),
        diagnostics,
    };
    let topology = topology::parse(text).map_err(fail)?;
    let model = model::build(&topology).map_err(fail)?;
    Ok(Loaded {
        source,
        topology,
        model,
    })
}

/// Why a topology could not be loaded: the file, or what is in it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("{0}")]
    Invalid(Report),
}

pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|err| LoadError::Io {
        path: path.display().to_string(),
        err,
    })?;
    load_str(&path.display().to_string(), &text).map_err(LoadError::Invalid)
}

#[derive(Debug, Default, Clone)]
pub struct GenOptions {
    /// Re-issue every server and client certificate (the CA is kept).
    pub rotate_certs: bool,
    /// Write into a directory that holds no bundle, or over files gen did not write
    /// (nothing gen did not write is ever deleted).
    pub force: bool,
}

/// The whole bundle for a model, reusing the PKI and secrets in `existing`.
pub fn build_bundle(
    m: &model::Model,
    existing: &bundle::Existing,
    opts: &GenOptions,
) -> Result<bundle::Bundle> {
    let mut b = bundle::Bundle::default();
    let mut names: Vec<String> = m.users().into_iter().map(|(u, _)| u).collect();
    if m.leaf_auth == model::LeafAuth::Password {
        for s in &m.servers {
            names.extend(s.remotes.iter().map(|r| r.identity.clone()));
        }
    }
    let secrets = render::secrets::render(&names, existing, &mut b);
    render::secrets::vpn_keys(&model::netplan::vpn_links(m), existing, &mut b);
    let pki_opts = render::pki::Options {
        rotate: opts.rotate_certs,
        ..Default::default()
    };
    render::pki::render(m, existing, &pki_opts, &mut b)?;
    render::conf::render(m, &secrets, &mut b)?;
    render::compose::render(m, &mut b)?;
    render::diagram::render(m, &mut b)?;
    let host_confs = render::conf::render_hosts(m, &secrets)?;
    render::payload::render(m, &host_confs, &mut b)?;
    render::terraform::render(m, &mut b)?;
    b.add_gitignores();
    Ok(b)
}

/// Generate the bundle for `m` into `out`, keeping the PKI and secrets already there
/// and every file gen did not write.
pub fn generate(m: &model::Model, out: &Path, opts: &GenOptions) -> Result<bundle::Bundle> {
    let existing = bundle::Existing::read(out)
        .with_context(|| format!("reading the existing bundle in {}", out.display()))?;
    let b = build_bundle(m, &existing, opts)?;
    b.write(out, opts.force)?;
    Ok(b)
}

/// Check one server config exactly as `canopy-server -t` would: errors and warnings
/// both fail, because a generated bundle must start without either.
pub fn check_conf(path: &Path) -> Result<(), Diagnostics> {
    let loaded = config::load(path)?;
    if loaded.warnings.is_empty() {
        Ok(())
    } else {
        Err(loaded.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_pass_the_server_check() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "conf") {
                check_conf(&path).unwrap_or_else(|d| panic!("{}: {d}", path.display()));
                n += 1;
            }
        }
        assert!(n > 0, "no example configs found in {}", dir.display());
    }

    #[test]
    fn a_seed_article_mistake_is_refused_with_the_fix() {
        let dir = std::env::temp_dir().join(format!("canopy-gen-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("leaf.conf");
        std::fs::write(&path, "leafnodes {\n  remotes: [ { url: \"nats-leaf://hub:7422\", reconnect_interval: \"5s\" } ]\n}\n").unwrap();
        let err = check_conf(&path).unwrap_err().to_string();
        assert!(err.contains("leaf.conf:2:"), "{err}");
        assert!(
            err.contains("unknown field \"reconnect_interval\""),
            "{err}"
        );
        assert!(err.contains("leafnodes { } block"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
