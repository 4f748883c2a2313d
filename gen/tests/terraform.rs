//! Terraform in every example's bundle: every .tf parses (hcl-edit), is laid out as
//! `terraform fmt` leaves it (aligned `=`, two-space indents), references only
//! declared variables, supplies every module input, and reads only real outputs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hcl"))
        .collect();
    v.sort();
    v
}

/// Every (path, text) of .tf files under `terraform/` of an example's bundle.
fn tf_files(example: &Path) -> BTreeMap<String, String> {
    let l = canopy_gen::load(example).unwrap_or_else(|e| panic!("{e}"));
    let b = canopy_gen::build_bundle(&l.model, &Default::default(), &Default::default()).unwrap();
    b.files
        .iter()
        .filter(|(p, _)| p.starts_with("terraform") && p.extension().is_some_and(|e| e == "tf"))
        .map(|(p, (bytes, _))| {
            (
                p.to_string_lossy().into_owned(),
                String::from_utf8(bytes.clone()).unwrap(),
            )
        })
        .collect()
}

/// terraform fmt's layout, the parts we rely on: two-space indents, and the `=` of
/// consecutive one-line attributes at one indent aligned.
fn layout_problems(path: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run: Vec<(usize, usize, usize)> = Vec::new(); // (line, indent, eq column)
    let flush = |run: &mut Vec<(usize, usize, usize)>, out: &mut Vec<String>| {
        if let Some(first) = run.first() {
            if run.iter().any(|r| r.2 != first.2) {
                out.push(format!(
                    "{path}:{}: unaligned `=` in {} lines",
                    first.0,
                    run.len()
                ));
            }
        }
        run.clear();
    };
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim_start();
        if !t.is_empty() && !t.starts_with('#') && indent % 2 != 0 {
            out.push(format!("{path}:{}: indent of {indent}", i + 1));
        }
        let is_attr = {
            let key_end = t
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '"'))
                .unwrap_or(0);
            key_end > 0 && t[key_end..].trim_start().starts_with("= ")
                || t[key_end..].trim_start().starts_with("=\n")
        };
        // A multi-line value ends the run: its closing line is not an attribute.
        let one_line = is_attr && !t.ends_with('{') && !t.ends_with('[') && !t.ends_with('(');
        if is_attr {
            let eq = line.find(" = ").map(|c| c + 1).unwrap_or(0);
            if run.last().is_some_and(|r| r.1 != indent) {
                flush(&mut run, &mut out);
            }
            run.push((i + 1, indent, eq));
            if !one_line {
                flush(&mut run, &mut out);
            }
        } else {
            flush(&mut run, &mut out);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn idents_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        rest = &rest[i + prefix.len()..];
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

fn declared(text: &str, kind: &str) -> BTreeSet<String> {
    let body = hcl_edit::parser::parse_body(text).unwrap();
    body.blocks()
        .filter(|b| b.ident.as_str() == kind)
        .filter_map(|b| b.labels.first().map(|l| l.as_str().to_string()))
        .collect()
}

#[test]
fn every_tf_file_parses_and_is_laid_out_as_terraform_fmt_leaves_it() {
    let mut n = 0;
    for ex in examples() {
        for (path, text) in tf_files(&ex) {
            hcl_edit::parser::parse_body(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            let problems = layout_problems(&path, &text);
            assert!(problems.is_empty(), "{problems:#?}\n{text}");
            n += 1;
        }
    }
    assert!(n > 0, "no Terraform was generated");
    // The hand-written module is held to the same layout.
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform/modules/onprem");
    for e in std::fs::read_dir(module).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "tf") {
            let text = std::fs::read_to_string(&p).unwrap();
            hcl_edit::parser::parse_body(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let problems = layout_problems(&p.display().to_string(), &text);
            assert!(problems.is_empty(), "{problems:#?}");
        }
    }
}

#[test]
fn the_layout_check_catches_unaligned_attributes() {
    let bad = "resource \"x\" \"y\" {\n  a = 1\n  long_name = 2\n}\n";
    assert_eq!(layout_problems("t.tf", bad).len(), 1);
    let good = "resource \"x\" \"y\" {\n  a         = 1\n  long_name = 2\n}\n";
    assert!(layout_problems("t.tf", good).is_empty());
}

#[test]
fn root_modules_declare_what_they_use_and_supply_every_module_input() {
    let module_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform/modules/onprem");
    let module_vars_text = std::fs::read_to_string(module_dir.join("variables.tf")).unwrap();
    let module_outputs = declared(
        &std::fs::read_to_string(module_dir.join("outputs.tf")).unwrap(),
        "output",
    );
    // Module inputs without a default must be supplied.
    let body = hcl_edit::parser::parse_body(&module_vars_text).unwrap();
    let mut required = BTreeSet::new();
    let mut all_inputs = BTreeSet::new();
    for b in body.blocks().filter(|b| b.ident.as_str() == "variable") {
        let name = b.labels[0].as_str().to_string();
        all_inputs.insert(name.clone());
        if !b.body.has_attribute("default") {
            required.insert(name);
        }
    }
    let mut sites = 0;
    for ex in examples() {
        let files = tf_files(&ex);
        let roots: BTreeSet<String> = files
            .keys()
            .filter(|p| p.starts_with("terraform/onprem/"))
            .map(|p| p.rsplit_once('/').unwrap().0.to_string())
            .collect();
        for root in roots {
            sites += 1;
            let get = |f: &str| {
                files
                    .get(&format!("{root}/{f}"))
                    .cloned()
                    .unwrap_or_default()
            };
            let vars = declared(&get("variables.tf"), "variable");
            let used: BTreeSet<String> = ["main.tf", "outputs.tf"]
                .iter()
                .flat_map(|f| idents_after(&get(f), "var."))
                .collect();
            assert!(
                used.is_subset(&vars),
                "{root}: uses {used:?}, declares {vars:?}"
            );
            // Module inputs: the attributes of `module "site"`.
            let main = hcl_edit::parser::parse_body(&get("main.tf")).unwrap();
            let m = main
                .blocks()
                .find(|b| b.ident.as_str() == "module")
                .expect("module block");
            let given: BTreeSet<String> = m
                .body
                .attributes()
                .map(|a| a.key.as_str().to_string())
                .filter(|k| k != "source")
                .collect();
            assert!(
                required.is_subset(&given),
                "{root}: missing inputs {:?}",
                required.difference(&given)
            );
            assert!(
                given.is_subset(&all_inputs),
                "{root}: unknown inputs {:?}",
                given.difference(&all_inputs)
            );
            let read = idents_after(&get("outputs.tf"), "module.site.");
            assert!(
                read.is_subset(&module_outputs),
                "{root}: reads {read:?}, module has {module_outputs:?}"
            );
        }
    }
    assert!(
        sites >= 5,
        "on-prem and edge sites of the examples get root modules ({sites})"
    );
}

#[test]
fn checkov_passes_on_every_bundle() {
    let found = std::process::Command::new("checkov")
        .arg("--version")
        .output();
    if !found.is_ok_and(|o| o.status.success()) {
        eprintln!("!!! SKIPPING: checkov is not installed (pip install checkov; .ci/run does) !!!");
        return;
    }
    let allow = Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform/checkov.yaml");
    for ex in examples() {
        let l = canopy_gen::load(&ex).unwrap_or_else(|e| panic!("{e}"));
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("bundle");
        canopy_gen::generate(&l.model, &out, &Default::default()).unwrap();
        if !out.join("terraform").exists() {
            continue;
        }
        let run = std::process::Command::new("checkov")
            .args([
                "-d",
                "terraform",
                "--framework",
                "terraform",
                "--quiet",
                "--compact",
                "--config-file",
            ])
            .arg(&allow)
            .env("BC_SKIP_MAPPING", "TRUE")
            .current_dir(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}: checkov failed:\n{}{}",
            ex.display(),
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
    }
}
