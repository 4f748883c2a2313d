//! External judges of every bundle, where they are installed: checkov (with a short,
//! reasoned allowlist) and `terraform validate` against the real AWS provider schema.

mod support;

use support::*;

#[test]
fn the_allowlist_gives_a_reason_for_every_skipped_check() {
    let text = std::fs::read_to_string(modules_dir().join("../checkov.yaml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut skipped = 0;
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim();
        if let Some(id) = t.strip_prefix("- ") {
            skipped += 1;
            // The comment block above this entry (possibly shared with the entries
            // right before it) names the check.
            let mut j = i;
            while j > 0 && lines[j - 1].trim().starts_with("- ") {
                j -= 1;
            }
            let mut reason = String::new();
            while j > 0 && lines[j - 1].trim().starts_with('#') {
                j -= 1;
                reason = format!("{} {reason}", lines[j]);
            }
            assert!(
                reason.contains(id) && reason.len() > 80,
                "{id} is skipped without a reason"
            );
        }
    }
    assert!(skipped <= 12, "the allowlist is meant to stay short");
}

#[test]
#[cfg_attr(
    not(have_checkov),
    ignore = "checkov is not installed: pip install checkov"
)]
fn checkov_passes_on_every_bundle() {
    if !tool(
        "checkov",
        "--version",
        "checkov (pip install checkov; .ci/run does)",
    ) {
        return;
    }
    let allow = modules_dir().join("../checkov.yaml");
    let mut checked = 0;
    let tmp = tempfile::tempdir().unwrap();
    for (name, model, out) in generated(tmp.path()) {
        if !out.join("terraform").exists() {
            continue;
        }
        let run = std::process::Command::new("checkov")
            .args([
                "-d",
                "terraform",
                "--framework",
                "terraform",
                "--compact",
                "--config-file",
            ])
            .arg(&allow)
            .env("BC_SKIP_MAPPING", "TRUE")
            .current_dir(&out)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{name}: checkov failed:\n{stdout}{}",
            String::from_utf8_lossy(&run.stderr)
        );
        // It looked at something: cloud bundles have hundreds of passing checks.
        let passed: usize = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Passed checks: "))
            .and_then(|l| l.split(',').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        if model.sites.iter().any(|s| s.is_cloud()) {
            assert!(passed > 100, "{name}: checkov passed only {passed}");
        }
        checked += 1;
    }
    assert!(checked >= 5);
}

/// `terraform validate` on every AWS root module of every example, with the provider
/// from a local filesystem mirror (CANOPY_TF_MIRROR, default /opt/tf-plugins): it
/// checks every argument name and type against the real provider schema. Needs a
/// terraform binary and the pinned hashicorp/aws in the mirror; skips loudly without.
#[test]
#[cfg_attr(not(have_terraform), ignore = "terraform is not installed")]
fn terraform_validate_accepts_every_aws_root_module_where_the_provider_is_mirrored() {
    let Some(tf) = AwsTerraform::find("terraform validate") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut validated = 0;
    for (_, _, out) in generated(tmp.path()) {
        for dir in aws_sites(&out) {
            tf.init(&dir);
            tf.run(&dir, &args(&["validate", "-no-color"]));
            validated += 1;
        }
    }
    assert!(validated >= 3, "validated {validated} AWS root modules");
}
