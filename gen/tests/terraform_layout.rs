//! Terraform in every example's bundle: every .tf parses (hcl-edit) and is laid out
//! as `terraform fmt` leaves it (aligned `=`, two-space indents); where terraform is
//! installed, `terraform fmt -check` has the last word.

mod support;

use support::*;

/// terraform fmt's layout, the parts we rely on: two-space indents, the `=` of
/// consecutive one-line attributes at one indent aligned, and a multi-line value
/// standing alone as `key = {` (terraform 1.11 confirmed these rules here).
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
        if line.ends_with(' ') {
            out.push(format!("{path}:{}: trailing space", i + 1));
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
        if is_attr && !one_line {
            flush(&mut run, &mut out);
            if t.contains("  =") {
                out.push(format!(
                    "{path}:{}: a multi-line value is not aligned",
                    i + 1
                ));
            }
        } else if is_attr {
            let eq = line.find(" = ").map(|c| c + 1).unwrap_or(0);
            if run.last().is_some_and(|r| r.1 != indent) {
                flush(&mut run, &mut out);
            }
            run.push((i + 1, indent, eq));
        } else {
            flush(&mut run, &mut out);
        }
    }
    flush(&mut run, &mut out);
    if text.contains("\n\n\n") {
        out.push(format!("{path}: two blank lines in a row"));
    }
    if !text.ends_with('\n') || text.ends_with("\n\n") {
        out.push(format!("{path}: must end with exactly one newline"));
    }
    out
}

#[test]
fn every_tf_file_parses_and_is_laid_out_as_terraform_fmt_leaves_it() {
    let mut n = 0;
    for ex in examples() {
        for (path, text) in tf_files(&ex) {
            if !path.ends_with(".tf") {
                continue;
            }
            parse(&path, &text);
            let problems = layout_problems(&path, &text);
            assert!(problems.is_empty(), "{problems:#?}\n{text}");
            n += 1;
        }
    }
    assert!(n > 0, "no Terraform was generated");
    // The hand-written modules are held to the same layout.
    for m in MODULES {
        for e in std::fs::read_dir(modules_dir().join(m)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|e| e == "tf") {
                let text = std::fs::read_to_string(&p).unwrap();
                parse(&p.display().to_string(), &text);
                let problems = layout_problems(&p.display().to_string(), &text);
                assert!(problems.is_empty(), "{problems:#?}");
                n += 1;
            }
        }
    }
    assert!(n > 60, "only {n} .tf files checked");
}

#[test]
fn the_layout_check_catches_unaligned_attributes() {
    let bad = "resource \"x\" \"y\" {\n  a = 1\n  long_name = 2\n}\n";
    assert_eq!(layout_problems("t.tf", bad).len(), 1);
    let good = "resource \"x\" \"y\" {\n  a         = 1\n  long_name = 2\n}\n";
    assert!(layout_problems("t.tf", good).is_empty());
    // A multi-line value stands alone: not aligned with the attributes before it.
    let bad = "variable \"v\" {\n  description = \"d\"\n  type        = map(object({\n    a = string\n  }))\n}\n";
    assert_eq!(layout_problems("t.tf", bad).len(), 1);
    let good = "variable \"v\" {\n  description = \"d\"\n  type = map(object({\n    a = string\n  }))\n}\n";
    assert!(layout_problems("t.tf", good).is_empty());
}

/// Where a terraform binary exists, `terraform fmt -check` has the last word on every
/// bundle's layout (without one, the layout checker above stands in).
#[test]
#[cfg_attr(
    not(have_terraform),
    ignore = "terraform is not installed (the layout checker above stands in)"
)]
fn terraform_fmt_accepts_every_bundle_where_terraform_exists() {
    if !tool(
        "terraform",
        "version",
        "terraform fmt -check (the layout checker ran instead)",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (name, _, out) in generated(tmp.path()) {
        if !out.join("terraform").exists() {
            continue;
        }
        let run = std::process::Command::new("terraform")
            .args(["fmt", "-check", "-recursive", "-diff", "terraform"])
            .current_dir(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{name}: terraform fmt would change:\n{}",
            String::from_utf8_lossy(&run.stdout)
        );
    }
}
