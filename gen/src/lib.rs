//! canopy-gen: one topology file in, a deployable bundle out (configs, PKI, compose,
//! Terraform, diagram). It is not a server: every `.conf` it writes is checked with
//! the same config reader `canopy-server` runs ([`canopy_server::config`]).
//!
//! The topology language and the renderers are issue #6; what is here today is the
//! check every generated file will go through.

use canopy_server::config::{self, Diagnostics};
use std::path::Path;

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
