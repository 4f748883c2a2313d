//! No silent options. `option_table.tsv` lists every option the config reader takes
//! (its block, key and aliases) and how canopy-server serves it:
//! - `enforced`: the server does what the option says; the evidence is a test that
//!   sets it (`tests/file.rs::name` or `src/file.rs::name`);
//! - `refused`: `-t` and start-up refuse it, naming it (`"key" is not supported by
//!   canopy-server`, file:line:col); the evidence is a config that sets it, which the
//!   official nats-server accepts (so the refusal is Canopy's, on purpose);
//! - `rejected`: both servers refuse the sample, Canopy in nats-server's words;
//! - `within`: a key of a block that is refused as a whole (the evidence names it);
//! - `not-yet`: JetStream, the one subsystem read but not served yet; its blocks are
//!   accepted so generated bundles keep starting, and the start-up log names it.
//!
//! The walk below proves each row, and reads the config reader's sources to prove no
//! key is taken that the table does not list.

mod support;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Row {
    line: usize,
    block: String,
    key: String,
    aliases: Vec<String>,
    served: String,
    evidence: String,
    /// For `refused`/`rejected`: the words the error must hold (default: the key
    /// named as not supported).
    says: String,
    /// For `refused`: empty when nats-server accepts the sample, else why it cannot.
    oracle: String,
}

fn server_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn table() -> Vec<Row> {
    let text = std::fs::read_to_string(server_dir().join("tests/option_table.tsv")).unwrap();
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            let c: Vec<&str> = l.split('\t').collect();
            assert!(c.len() >= 5, "option_table.tsv:{}: {l:?}", i + 1);
            let col = |n: usize| c.get(n).map_or(String::new(), |s| s.replace("\\n", "\n"));
            Row {
                line: i + 1,
                block: col(0),
                key: col(1),
                aliases: col(2)
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(String::from)
                    .collect(),
                served: col(3),
                evidence: col(4),
                says: col(5),
                oracle: col(6),
            }
        })
        .collect()
}

/// Keys written as `&["key", "alias", ...]` in the config reader: the first name of
/// each. Lists of values that are not keys are named here with the reason.
fn keys_in_the_reader() -> BTreeMap<String, String> {
    const NOT_KEYS: &[(&str, &str)] = &[("off", "COMPRESSION_MODES: a value of compression")];
    let mut keys = BTreeMap::new();
    let dir = server_dir().join("src/config");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let src = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = src.as_bytes();
        let mut i = 0;
        while let Some(at) = src[i..].find("&[") {
            let mut j = i + at + 2;
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            if bytes.get(j) == Some(&b'"') {
                let end = src[j + 1..].find('"').map(|e| j + 1 + e).unwrap();
                let key = &src[j + 1..end];
                let is_key = !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if is_key && !NOT_KEYS.iter().any(|(k, _)| *k == key) {
                    let line = src[..j].matches('\n').count() + 1;
                    keys.entry(key.to_string())
                        .or_insert_with(|| format!("{name}:{line}"));
                }
            }
            i = j;
        }
    }
    keys
}

#[test]
fn every_key_the_config_reader_takes_is_in_the_table() {
    let rows = table();
    let mut listed = BTreeSet::new();
    for r in &rows {
        listed.insert(r.key.clone());
        listed.extend(r.aliases.iter().cloned());
    }
    let taken = keys_in_the_reader();
    assert!(
        taken.len() > 200,
        "the reader's keys were not found: {taken:?}"
    );
    let missing: Vec<String> = taken
        .iter()
        .filter(|(k, _)| !listed.contains(*k))
        .map(|(k, at)| format!("{k} (src/config/{at})"))
        .collect();
    assert!(
        missing.is_empty(),
        "keys the config reader takes that option_table.tsv does not list (enforce each with a test, or refuse it): {missing:?}"
    );
    // And no row for a key nobody reads any more (`include` is the lexer's).
    let stale: Vec<String> = rows
        .iter()
        .filter(|r| {
            r.key != "include"
                && !taken.contains_key(&r.key)
                && !r.aliases.iter().any(|a| taken.contains_key(a))
        })
        .map(|r| format!("option_table.tsv:{} {} {}", r.line, r.block, r.key))
        .collect();
    assert!(
        stale.is_empty(),
        "rows for keys the reader does not take: {stale:?}"
    );
}

#[test]
fn every_row_is_in_one_of_the_classes() {
    let bad: Vec<String> = table()
        .iter()
        .filter(|r| {
            !["enforced", "refused", "rejected", "within", "not-yet"].contains(&r.served.as_str())
        })
        .map(|r| {
            format!(
                "option_table.tsv:{} {} {}: {:?}",
                r.line, r.block, r.key, r.served
            )
        })
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
}

/// Whether `text` writes `key` as a config key: `key:`, `key {`, `key =` or `key "`,
/// with the key standing alone (not the tail of a longer name).
fn writes_key(text: &str, key: &str) -> bool {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = text[from..].find(key) {
        let start = from + at;
        let end = start + key.len();
        from = end;
        // After a `\n` or `\t` escape in a Rust string, or any non-name character.
        let escaped =
            start >= 2 && bytes[start - 2] == b'\\' && matches!(bytes[start - 1], b'n' | b't');
        let before_ok = start == 0
            || escaped
            || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let rest = text[end..].trim_start_matches(' ');
        let after_ok = rest.starts_with(':')
            || rest.starts_with('{')
            || rest.starts_with('=')
            || rest.starts_with("\\\"")
            || rest.starts_with('"');
        if before_ok && after_ok && end > start {
            return true;
        }
    }
    false
}

/// The names of the functions `body` calls (`name(`), so their bodies count too.
fn called(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = body.as_bytes();
    for (i, _) in body.match_indices('(') {
        let mut s = i;
        while s > 0 && (b[s - 1].is_ascii_alphanumeric() || b[s - 1] == b'_') {
            s -= 1;
        }
        if s < i {
            out.push(body[s..i].to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The body of `fn name(` in `src`, up to the next top-level item.
fn body_of<'a>(src: &'a str, name: &str) -> Option<&'a str> {
    let start = src.find(&format!("fn {name}("))?;
    let rest = &src[start..];
    let end = rest[1..]
        .find("\n#[")
        .into_iter()
        .chain(rest[1..].find("\nfn "))
        .chain(rest[1..].find("\n///"))
        .min()
        .map_or(rest.len(), |e| e + 1);
    Some(&rest[..end])
}

#[test]
fn every_enforced_option_names_a_test_that_sets_it() {
    let mut failures = Vec::new();
    // Every module of tests/support (mod.rs first): helpers the tests share.
    let mut support_files: Vec<PathBuf> = std::fs::read_dir(server_dir().join("tests/support"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    support_files.sort_by_key(|p| (!p.ends_with("mod.rs"), p.clone()));
    let support = support_files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    for r in table().iter().filter(|r| r.served == "enforced") {
        let Some((file, name)) = r.evidence.split_once("::") else {
            failures.push(format!(
                "option_table.tsv:{}: {:?} is not file::test",
                r.line, r.evidence
            ));
            continue;
        };
        let Ok(src) = std::fs::read_to_string(server_dir().join(file)) else {
            failures.push(format!("option_table.tsv:{}: no file {file}", r.line));
            continue;
        };
        let Some(body) = body_of(&src, name) else {
            failures.push(format!(
                "option_table.tsv:{}: no fn {name} in {file}",
                r.line
            ));
            continue;
        };
        let at_test = src[..src.find(&format!("fn {name}(")).unwrap()]
            .trim_end()
            .trim_end_matches("async")
            .trim_end()
            .lines()
            .rev()
            .take_while(|l| l.trim_start().starts_with("#[") || l.trim_start().starts_with("///"))
            .any(|l| l.contains("#[test]") || l.contains("#[tokio::test"));
        if !at_test {
            failures.push(format!(
                "option_table.tsv:{}: {file}::{name} is not a test",
                r.line
            ));
        }
        // The test writes the option as a config key (`key:`, `key {`), or a function it
        // calls does (one call deep, in its file or in tests/support).
        let names: Vec<&str> = std::iter::once(r.key.as_str())
            .chain(r.aliases.iter().map(String::as_str))
            .collect();
        let mut text = body.to_string();
        // Constants the test names (`const CONFIG: &str = ...`) hold its config too.
        for (at, _) in src.match_indices("\nconst ") {
            let decl = &src[at + 7..];
            let name: String = decl
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && body.contains(&name) {
                let end = decl.find(";\n").map_or(decl.len(), |e| e + 1);
                text.push_str(&decl[..end]);
            }
        }
        for callee in called(body) {
            for file_src in [src.as_str(), support.as_str()] {
                if let Some(b) = body_of(file_src, &callee) {
                    text.push_str(b);
                }
            }
        }
        if !names.iter().any(|k| writes_key(&text, k)) {
            failures.push(format!(
                "option_table.tsv:{}: {file}::{name} never writes {:?}",
                r.line, r.key
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn certs_dir() -> PathBuf {
    server_dir().join("tests/conf_corpus/certs")
}

fn check(program: &Path, dir: &Path, sample: &str, start: bool) -> (bool, String) {
    let conf = dir.join("sample.conf");
    let text = sample
        .replace("CERTS", &certs_dir().display().to_string())
        .replace("STORE", &dir.join("js").display().to_string());
    std::fs::write(&conf, format!("{text}\n")).unwrap();
    let mut cmd = Command::new(program);
    cmd.current_dir(dir);
    if start {
        cmd.args(["-c", "sample.conf"]);
    } else {
        cmd.args(["-t", "-c", "sample.conf"]);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.success(), text)
}

#[test]
fn every_refused_option_is_refused_by_name_at_check_and_at_start() {
    let canopy = PathBuf::from(env!("CARGO_BIN_EXE_canopy-server"));
    let oracle = support::official_available().then(|| PathBuf::from("nats-server"));
    if oracle.is_none() {
        eprintln!("!!! nats-server (the oracle) is NOT installed: refused samples are not checked to be options nats-server accepts. !!!");
    }
    let dir = support::TempDir::new("optable");
    let mut failures = Vec::new();
    let rows = table();
    for r in rows
        .iter()
        .filter(|r| r.served == "refused" || r.served == "rejected")
    {
        let want = if r.says.is_empty() {
            format!("\"{}\" is not supported by canopy-server", r.key)
        } else {
            r.says.clone()
        };
        let place = format!("option_table.tsv:{} {} {}", r.line, r.block, r.key);
        for start in [false, true] {
            let (ok, text) = check(&canopy, &dir.0, &r.evidence, start);
            let how = if start { "at start" } else { "by -t" };
            if ok || !text.contains(&want) || !text.contains("sample.conf:") {
                failures.push(format!(
                    "{place}: not refused {how} with {want:?} at a place:\n  {}",
                    text.trim()
                ));
            }
        }
        if let Some(bin) = &oracle {
            let (ok, text) = check(bin, &dir.0, &r.evidence, false);
            let should = r.served == "refused" && r.oracle.is_empty();
            if ok != should {
                failures.push(format!(
                    "{place}: nats-server {} the sample (expected it to {}): {}",
                    if ok { "accepts" } else { "refuses" },
                    if should { "accept" } else { "refuse" },
                    text.trim()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn keys_within_refused_blocks_name_a_refused_block() {
    let rows = table();
    let refused: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.served == "refused")
        .map(|r| {
            if r.block == "(top)" {
                r.key.clone()
            } else {
                format!("{}.{}", r.block, r.key)
            }
        })
        .collect();
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| r.served == "within" && !refused.contains(&r.evidence))
        .map(|r| {
            format!(
                "option_table.tsv:{} {} {} names {:?}",
                r.line, r.block, r.key, r.evidence
            )
        })
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
}

/// JetStream is the one subsystem accepted and not served: only its rows may say
/// `not-yet`, and a server given `jetstream {}` says so at start.
#[test]
fn only_jetstream_is_accepted_without_being_served_and_the_start_up_log_says_so() {
    let bad: Vec<String> = table()
        .iter()
        .filter(|r| r.served == "not-yet")
        .filter(|r| {
            !(r.block.starts_with("jetstream")
                || r.block.starts_with("accounts.<name>.jetstream")
                || r.key == "jetstream"
                || r.key == "store_dir")
        })
        .map(|r| format!("option_table.tsv:{} {} {}", r.line, r.block, r.key))
        .collect();
    assert!(bad.is_empty(), "not-yet rows outside JetStream: {bad:?}");
    let dir = support::TempDir::new("js");
    let s = support::Server::start(
        support::Impl::Canopy,
        &format!("jetstream {{ store_dir: \"{}\" }}", dir.0.display()),
    );
    assert!(
        s.log().contains("[WRN] Not serving \"jetstream\" yet"),
        "{}",
        s.log()
    );
}
