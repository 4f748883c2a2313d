//! Imports run one way: each crate's modules sit on the floors docs/ARCHITECTURE.md
//! lists, and no module uses one above it or closes a circle of imports.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    let house = Path::new(env!("CARGO_MANIFEST_DIR"));
    house.parent().unwrap_or(house).to_path_buf()
}

fn judge(dir: &str) {
    let architecture = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md"))
        .expect("docs/ARCHITECTURE.md is readable");
    let floors = canopy_house::floors(&architecture, dir).unwrap_or_else(|e| panic!("{e}"));
    let prefix = format!("{}/", root().display());
    let findings: Vec<String> = canopy_house::check_floors(&root().join(dir), &floors)
        .into_iter()
        .map(|f| f.replace(&prefix, ""))
        .collect();
    assert!(
        findings.is_empty(),
        "{} finding(s) in {dir}:\n{}",
        findings.len(),
        findings.join("\n")
    );
}

#[test]
fn server_modules_import_only_their_own_floor_or_below() {
    judge("server/src");
}

#[test]
fn gen_modules_import_only_their_own_floor_or_below() {
    judge("gen/src");
}
