//! What the gen tests share: the examples and their bundles, the files under a
//! directory, the vendored modules, HCL helpers, and the external tools (terraform with
//! a mirrored provider) some tests run where they are installed. Each test file uses a
//! part of it.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hcl"))
        .collect();
    v.sort();
    v
}

pub fn modules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform/modules")
}

pub const MODULES: [&str; 3] = ["aws", "gcp", "onprem"];

pub fn module_file(module: &str, file: &str) -> String {
    std::fs::read_to_string(modules_dir().join(module).join(file)).unwrap_or_default()
}

/// Every (path, text) of files under `terraform/` of an example's bundle.
pub fn tf_files(example: &Path) -> BTreeMap<String, String> {
    let l = canopy_gen::load(example).unwrap_or_else(|e| panic!("{e}"));
    let b = canopy_gen::build_bundle(&l.model, &Default::default(), &Default::default()).unwrap();
    b.files
        .iter()
        .filter(|(p, _)| p.starts_with("terraform"))
        .map(|(p, (bytes, _))| {
            (
                p.to_string_lossy().into_owned(),
                String::from_utf8(bytes.clone()).unwrap(),
            )
        })
        .collect()
}

pub fn idents_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

pub fn parse(path: &str, text: &str) -> hcl_edit::structure::Body {
    hcl_edit::parser::parse_body(text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn declared(text: &str, kind: &str) -> BTreeSet<String> {
    parse(kind, text)
        .blocks()
        .filter(|b| b.ident.as_str() == kind)
        .filter_map(|b| b.labels.first().map(|l| l.as_str().to_string()))
        .collect()
}

/// (kind, type, name) of every resource and data block.
pub fn blocks2(text: &str) -> BTreeSet<(String, String, String)> {
    parse("main.tf", text)
        .blocks()
        .filter(|b| matches!(b.ident.as_str(), "resource" | "data") && b.labels.len() == 2)
        .map(|b| {
            (
                b.ident.as_str().to_string(),
                b.labels[0].as_str().to_string(),
                b.labels[1].as_str().to_string(),
            )
        })
        .collect()
}

/// A root module of a bundle: (dir, module it calls).
pub fn roots(files: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut v: BTreeSet<(String, String)> = BTreeSet::new();
    for p in files.keys() {
        let parts: Vec<&str> = p.split('/').collect();
        if parts.len() == 4 && parts[3] == "main.tf" && parts[1] != "modules" {
            let main = &files[p];
            let body = parse(p, main);
            let m = body
                .blocks()
                .find(|b| b.ident.as_str() == "module")
                .expect("module block");
            let source = m
                .body
                .get_attribute("source")
                .map(|a| a.value.to_string())
                .unwrap_or_default();
            let module = source
                .trim()
                .trim_matches('"')
                .trim_start_matches("../../modules/")
                .to_string();
            v.insert((format!("{}/{}/{}", parts[0], parts[1], parts[2]), module));
        }
    }
    v.into_iter().collect()
}

/// Every example's bundle written under `root`: (name, model, bundle directory).
pub fn generated(root: &Path) -> Vec<(String, canopy_gen::model::Model, PathBuf)> {
    examples()
        .into_iter()
        .map(|ex| {
            let name = ex.file_stem().unwrap().to_string_lossy().into_owned();
            let l = canopy_gen::load(&ex).unwrap_or_else(|e| panic!("{e}"));
            let out = root.join(&name);
            canopy_gen::generate(&l.model, &out, &Default::default()).unwrap();
            (name, l.model, out)
        })
        .collect()
}

pub use canopy_house::tools::required;

/// Every file under `dir` (hidden ones and `.git` included): relative path → bytes.
pub fn read_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Whether `program --version-ish` runs; if not, say loudly what goes untested.
pub fn tool(program: &str, version_arg: &str, skipped: &str) -> bool {
    let ok = std::process::Command::new(program)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        // Tests that need a tool are ignored where the build found none; here it
        // vanished after the build, or a part of a test needs it.
        assert!(
            !required(program),
            "CANOPY_REQUIRE names {program}, which is not installed"
        );
        eprintln!("!!! SKIPPING {skipped}: {program} is not installed !!!");
    }
    ok
}

/// terraform with the pinned hashicorp/aws from a local filesystem mirror
/// (CANOPY_TF_MIRROR, default /opt/tf-plugins): the real provider schema, offline.
pub struct AwsTerraform {
    _dir: tempfile::TempDir,
    rc: PathBuf,
}

impl AwsTerraform {
    /// None (after a loud skip naming `what`) without terraform or the mirrored provider.
    pub fn find(what: &str) -> Option<AwsTerraform> {
        if !tool("terraform", "version", what) {
            return None;
        }
        let mirror = std::env::var("CANOPY_TF_MIRROR").unwrap_or_else(|_| "/opt/tf-plugins".into());
        let version = pinned("aws", "aws");
        let provider = Path::new(&mirror).join(format!(
            "registry.terraform.io/hashicorp/aws/{version}/linux_amd64"
        ));
        if !provider.is_dir() {
            assert!(
                !required("terraform"),
                "CANOPY_REQUIRE names terraform, but hashicorp/aws {version} is not in the mirror {mirror}"
            );
            eprintln!(
                "!!! SKIPPING {what}: hashicorp/aws {version} is not in the mirror {mirror} !!!"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let rc = dir.path().join("terraformrc");
        std::fs::write(
            &rc,
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{mirror}\"\n    include = [\"registry.terraform.io/hashicorp/aws\"]\n  }}\n}}\n"
            ),
        )
        .unwrap();
        Some(AwsTerraform { _dir: dir, rc })
    }

    /// Run terraform in `dir`; it must succeed. Its stdout.
    pub fn run(&self, dir: &Path, args: &[String]) -> Vec<u8> {
        let run = std::process::Command::new("terraform")
            .args(args)
            .current_dir(dir)
            .env("TF_CLI_CONFIG_FILE", &self.rc)
            .env("TF_IN_AUTOMATION", "1")
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}: terraform {}:\n{}{}",
            dir.display(),
            args.join(" "),
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        run.stdout
    }

    pub fn init(&self, dir: &Path) {
        self.run(
            dir,
            &args(&["init", "-backend=false", "-input=false", "-no-color"]),
        );
    }
}

pub fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The AWS root modules of a bundle.
pub fn aws_sites(bundle: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(bundle.join("terraform/aws"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The pinned version of a provider in a module's versions.tf.
pub fn pinned(module: &str, provider: &str) -> String {
    let text = module_file(module, "versions.tf");
    let at = text.find(&format!("{provider} = {{")).unwrap();
    let rest = &text[at..];
    let v = rest.find("version").unwrap();
    rest[v..].split('"').nth(1).unwrap().to_string()
}
