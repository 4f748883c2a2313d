//! gen owns only what it wrote: a git repository, tfvars, Terraform state, `bin/`
//! and notes in the output directory survive every run; a directory that is not a
//! bundle is refused without `--force`; `-o .` works; private files are ignored by git.

mod support;

use canopy_gen::{model::Model, GenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::read_files as tree;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn load(name: &str) -> Model {
    match canopy_gen::load(&example(name)) {
        Ok(l) => l.model,
        Err(e) => panic!("{e}"),
    }
}

fn gen(m: &Model, out: &Path, force: bool) -> anyhow::Result<canopy_gen::bundle::Bundle> {
    let opts = GenOptions {
        force,
        ..Default::default()
    };
    canopy_gen::generate(m, out, &opts)
}

fn put(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn no_leftovers(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".canopy-staging") && !name.contains("canopy-new"),
            "a run left {name} behind in {}",
            dir.display()
        );
    }
}

#[test]
fn a_git_repository_as_the_output_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    put(&repo, ".git/HEAD", "ref: refs/heads/main\n");
    put(&repo, "README.md", "# our platform\n");
    put(&repo, ".gitignore", "target/\n");
    let topology = std::fs::read_to_string(example("hub-and-spoke.hcl")).unwrap();
    put(&repo, "topology.hcl", &topology);
    let before = tree(&repo);

    let refused = gen(&load("hub-and-spoke.hcl"), &repo, false).unwrap_err();
    let why = format!("{refused:#}");
    assert!(
        why.contains("holds no canopy bundle") && why.contains("--force"),
        "{why}"
    );
    assert_eq!(tree(&repo), before, "a refused run changes nothing");
    no_leftovers(&repo);

    let b = gen(&load("hub-and-spoke.hcl"), &repo, true).unwrap();
    let after = tree(&repo);
    for (path, bytes) in &before {
        assert_eq!(
            after.get(path),
            Some(bytes),
            "{path} is the user's and must stay"
        );
    }
    assert!(after.contains_key("conf/central-1.conf"));
    let manifest = std::fs::read_to_string(repo.join(".canopy-manifest")).unwrap();
    assert!(manifest.lines().any(|l| l == "conf/central-1.conf"));
    assert!(!manifest
        .lines()
        .any(|l| l == "README.md" || l == "topology.hcl" || l == ".gitignore"));
    assert_eq!(
        manifest.lines().filter(|l| !l.starts_with('#')).count(),
        b.files.len()
    );
    no_leftovers(&repo);
}

#[test]
fn a_rerun_keeps_tfvars_state_terraform_plugins_bin_and_notes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bundle");
    let m = load("hybrid-cloud.hcl");
    let b = gen(&m, &out, false).unwrap();
    let root = b
        .files
        .keys()
        .find(|p| p.starts_with("terraform") && p.extension().is_some_and(|e| e == "tf"))
        .and_then(|p| p.parent())
        .expect("a Terraform root")
        .to_string_lossy()
        .into_owned();
    let mine = [
        (
            format!("{root}/terraform.tfvars"),
            "region = \"us-west-2\"\n",
        ),
        (format!("{root}/terraform.tfstate"), "{\"version\": 4}\n"),
        (format!("{root}/.terraform/providers/p"), "plugin\n"),
        ("bin/canopy-server".to_string(), "\x7fELF...\n"),
        ("NOTES.md".to_string(), "ask ops about the VPN\n"),
        ("conf/local-override.txt".to_string(), "mine\n"),
    ];
    for (p, text) in &mine {
        put(&out, p, text);
    }
    // A file gen wrote and someone edited is gen's: a re-run restores it.
    std::fs::write(out.join("topology.md"), "edited\n").unwrap();
    let first = b;

    let second = gen(&m, &out, false).unwrap();
    let after = tree(&out);
    for (p, text) in &mine {
        assert_eq!(
            after.get(p).map(Vec::as_slice),
            Some(text.as_bytes()),
            "{p} must stay"
        );
    }
    assert_eq!(
        after.get("topology.md").map(Vec::as_slice),
        first.get("topology.md"),
        "gen's own file is rewritten"
    );
    assert_eq!(first.files.len(), second.files.len());
    no_leftovers(&out);
}

#[test]
fn files_the_topology_no_longer_needs_go_and_only_those() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bundle");
    gen(&load("hub-and-spoke.hcl"), &out, false).unwrap();
    assert!(out.join("conf/edge-4.conf").exists());
    put(&out, "conf/notes.txt", "mine\n");
    let b = gen(&load("basic-hub-leaf.hcl"), &out, false).unwrap();
    assert!(
        !out.join("conf/edge-4.conf").exists(),
        "a config the new topology does not have is removed"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("conf/notes.txt")).unwrap(),
        "mine\n"
    );
    let on_disk = tree(&out);
    for path in b.files.keys() {
        assert!(
            on_disk.contains_key(&*path.to_string_lossy()),
            "{}",
            path.display()
        );
    }
    let manifest = std::fs::read_to_string(out.join(".canopy-manifest")).unwrap();
    assert!(!manifest.contains("edge-4"));
}

#[test]
fn a_file_gen_did_not_write_is_overwritten_only_with_force() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bundle");
    gen(&load("basic-hub-leaf.hcl"), &out, false).unwrap();
    // hub-and-spoke writes conf/edge-4.conf; here it is someone else's file.
    put(&out, "conf/edge-4.conf", "# hand-written\n");
    let refused = gen(&load("hub-and-spoke.hcl"), &out, false).unwrap_err();
    let why = format!("{refused:#}");
    assert!(
        why.contains("conf/edge-4.conf") && why.contains("did not write"),
        "{why}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("conf/edge-4.conf")).unwrap(),
        "# hand-written\n"
    );
    gen(&load("hub-and-spoke.hcl"), &out, true).unwrap();
    let now = std::fs::read_to_string(out.join("conf/edge-4.conf")).unwrap();
    assert!(now.contains("leafnodes"), "{now}");
}

#[test]
fn dash_o_dot_generates_into_the_current_directory() {
    let tmp = tempfile::tempdir().unwrap();
    for run in 0..2 {
        let o = Command::new(env!("CARGO_BIN_EXE_canopy"))
            .args(["gen"])
            .arg(example("basic-hub-leaf.hcl"))
            .args(["-o", "."])
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "run {run}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(tmp.path().join(".canopy-manifest").exists());
    assert!(tmp.path().join("topology.md").exists());
    no_leftovers(tmp.path());
    no_leftovers(tmp.path().parent().unwrap());
}

#[test]
fn private_files_are_ignored_by_git_and_the_rest_can_be_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bundle");
    let b = gen(&load("hybrid-cloud.hcl"), &out, false).unwrap();
    let root = b
        .files
        .keys()
        .find(|p| p.starts_with("terraform") && p.extension().is_some_and(|e| e == "tf"))
        .and_then(|p| p.parent())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for p in [
        "terraform.tfstate",
        "terraform.tfstate.backup",
        "terraform.tfvars",
    ] {
        put(&out, &format!("{root}/{p}"), "{}\n");
    }
    put(&out, &format!("{root}/.terraform/providers/p"), "plugin\n");
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .args(args)
            .current_dir(&out)
            .output()
            .expect("git runs (it is on every machine this project builds on)");
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    git(&["init", "-q"]);
    let status = git(&[
        "status",
        "--porcelain",
        "--ignored",
        "--untracked-files=all",
    ]);
    let ignored: Vec<&str> = status
        .lines()
        .filter_map(|l| l.strip_prefix("!! "))
        .collect();
    let committable: Vec<&str> = status
        .lines()
        .filter_map(|l| l.strip_prefix("?? "))
        .collect();
    let is_ignored = |p: &str| {
        ignored
            .iter()
            .any(|i| p == *i || (i.ends_with('/') && p.starts_with(i)))
    };
    let mut private = 0;
    for (path, (_, mode)) in &b.files {
        let p = path.to_string_lossy();
        let on_disk = std::fs::metadata(out.join(path))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(on_disk, *mode, "{p}");
        if *mode == 0o600 && !p.ends_with(".gitignore") {
            private += 1;
            assert!(
                is_ignored(&p),
                "{p} holds a secret and must be ignored: {status}"
            );
        } else {
            assert!(
                committable.contains(&&*p),
                "{p} should be committable: {status}"
            );
        }
    }
    assert!(private > 0, "the bundle has private files");
    for p in [
        "terraform.tfstate",
        "terraform.tfstate.backup",
        "terraform.tfvars",
        ".terraform/providers/p",
    ] {
        assert!(is_ignored(&format!("{root}/{p}")), "{root}/{p}: {status}");
    }
    let secrets = std::fs::read_to_string(out.join("secrets/.gitignore")).unwrap();
    assert!(secrets.starts_with("# Written by canopy gen"), "{secrets}");
}
