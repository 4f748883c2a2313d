//! Files and functions a reader can take in: no source file over 800 lines and no
//! function over 150, in every crate, tests and benches included — except the few
//! listed here, each with its reason.

use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 150;

/// (file, function or "" for the file itself, why it may be longer).
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn excepted(file: &str, item: &str) -> bool {
    EXCEPTIONS.iter().any(|(f, i, _)| *f == file && *i == item)
}

#[test]
fn no_file_over_800_lines_and_no_function_over_150() {
    let root = root();
    let mut findings = Vec::new();
    for dir in ["server", "gen", "linksim", "e2e", "house"] {
        canopy_house::walk(&root.join(dir), &mut |p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned();
            if p.extension().is_none_or(|e| e != "rs") || rel.contains("/target/") {
                return;
            }
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let lines = text.lines().count();
            if lines > MAX_FILE_LINES && !excepted(&rel, "") {
                findings.push(format!("{rel}: {lines} lines (at most {MAX_FILE_LINES})"));
            }
            for f in canopy_house::functions(&text) {
                if f.lines > MAX_FN_LINES && !excepted(&rel, &f.name) {
                    findings.push(format!(
                        "{rel}:{}: fn {} is {} lines (at most {MAX_FN_LINES})",
                        f.line, f.name, f.lines
                    ));
                }
            }
        });
    }
    for (file, item, _) in EXCEPTIONS {
        assert!(
            root.join(file).exists(),
            "the exception for {file} {item} is stale"
        );
    }
    assert!(findings.is_empty(), "{}", findings.join("\n"));
}
