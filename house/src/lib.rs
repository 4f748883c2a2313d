//! House rules, read from the source itself.
//!
//! - **Floors.** docs/ARCHITECTURE.md lists each crate's modules by floor. A module may
//!   use modules on its own floor or below, never above, and no set of modules may
//!   import each other in a circle. [`imports`] reads every `crate::…`, `super::…` and
//!   child-module path in a file (comments, strings and `#[cfg(test)]` modules left
//!   out); [`check_floors`] judges them.
//! - **Sizes.** [`functions`] finds every `fn` with the lines its body spans, so a test
//!   can hold files and functions to a size a reader takes in.
//!
//! - **Tools.** [`tools`] finds the outside tools tests need, for build scripts: a test
//!   whose tool is missing is ignored with a reason, and a required one fails the build.
//!
//! No parser crate: the rules need paths and braces, and a small scanner that blanks
//! comments and literals (keeping line numbers) gives both.

#![forbid(unsafe_code)]

pub mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Blank out comments, string/char literals and `#[cfg(test)] mod … { … }` bodies,
/// keeping every newline, so line numbers and brace structure stay true.
pub fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == b'/' && next == Some(b'/') {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'/' && next == Some(b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if c == b'r' && (next == Some(b'"') || next == Some(b'#')) && !ident_before(b, i) {
            // Raw string r"…" / r#"…"#: find the hashes, then the matching end.
            let mut j = i + 1;
            while j < b.len() && b[j] == b'#' {
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let hashes = j - i - 1;
            let mut k = j + 1;
            loop {
                if k >= b.len() {
                    break;
                }
                if b[k] == b'"'
                    && b[k + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|h| **h == b'#')
                        .count()
                        == hashes
                {
                    k += 1 + hashes;
                    break;
                }
                k += 1;
            }
            for &x in &b[i..k.min(b.len())] {
                blank(&mut out, x);
            }
            i = k;
        } else if c == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): only the first is blanked.
            let end = if next == Some(b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|x| *x == b'\'')
                    .map(|p| i + 2 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                // Multi-byte UTF-8 char literal: up to 4 bytes then a quote.
                (i + 2..(i + 6).min(b.len()))
                    .find(|&k| b[k] == b'\'' && next.is_some_and(|n| n >= 0x80))
            };
            match end {
                Some(e) => {
                    for &x in &b[i..=e] {
                        blank(&mut out, x);
                    }
                    i = e + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    blank_test_modules(&text)
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// `#[cfg(test)]` followed by `mod name { … }`: the body is blanked (unit tests may
/// reach anywhere).
fn blank_test_modules(text: &str) -> String {
    let mut out = text.as_bytes().to_vec();
    let mut from = 0;
    while let Some(p) = text[from..].find("#[cfg(test)]") {
        let start = from + p;
        let after = &text[start + 12..];
        let trimmed = after.trim_start();
        let is_mod = trimmed.starts_with("mod ") || trimmed.starts_with("pub mod ");
        from = start + 12;
        if !is_mod {
            continue;
        }
        let Some(open) = after.find('{').map(|o| start + 12 + o) else {
            continue;
        };
        if let Some(close) = matching_brace(text.as_bytes(), open) {
            for x in &mut out[start..=close] {
                if *x != b'\n' {
                    *x = b' ';
                }
            }
            from = close;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The index of the `}` that closes the `{` at `open` (in stripped text).
pub fn matching_brace(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// One module file of a crate: `conn` for src/conn.rs or src/conn/mod.rs, `conn::leaf`
/// for src/conn/leaf.rs. The crate roots (lib.rs, main.rs) have no name and are exempt.
#[derive(Clone, Debug)]
pub struct ModuleFile {
    pub name: String,
    pub path: PathBuf,
}

pub fn module_files(src: &Path) -> Vec<ModuleFile> {
    let mut out = Vec::new();
    walk(src, &mut |p| {
        if p.extension().is_some_and(|e| e == "rs") {
            let rel = p.strip_prefix(src).unwrap_or(p);
            let mut parts: Vec<String> = rel
                .iter()
                .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            let name = parts.join("::");
            if name != "lib" && name != "main" && !name.starts_with("bin::") {
                out.push(ModuleFile {
                    name,
                    path: p.to_path_buf(),
                });
            }
        }
    });
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Every file under `dir`, in a stable order.
pub fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, f);
        } else {
            f(&p);
        }
    }
}

/// An import found in a file: the module it names, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    pub to: String,
    pub line: usize,
}

/// The modules `module` (in file text `src`) imports, resolved against `modules` (the
/// crate's module names): every `crate::a::b…` and `super::…` path, and in `use`
/// declarations paths that start with one of the module's own children.
pub fn imports(module: &str, src: &str, modules: &BTreeSet<String>) -> Vec<Import> {
    let text = strip(src);
    let b = text.as_bytes();
    let mut out = Vec::new();
    let line_of = |pos: usize| text[..pos].matches('\n').count() + 1;
    let mut i = 0;
    while i < b.len() {
        let at_word = !ident_before(b, i) && (i == 0 || b[i - 1] != b':');
        let rest = &text[i..];
        let (base, skip) = if at_word && rest.starts_with("crate::") {
            (Some(Vec::new()), 7)
        } else if at_word && rest.starts_with("super::") {
            let mut base: Vec<&str> = module.split("::").collect();
            let mut k = 0;
            while text[i + k..].starts_with("super::") {
                base.pop();
                k += 7;
            }
            // A mod.rs's `super` is its parent; a file's `super` is its directory's module.
            (Some(base.into_iter().map(String::from).collect()), k)
        } else if at_word && rest.starts_with("use ") {
            // `use child::…` in a module that has that child.
            let after = rest[4..].trim_start();
            let first: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let child = format!("{module}::{first}");
            if !first.is_empty()
                && modules.contains(&child)
                && after[first.len()..].starts_with("::")
            {
                let base = module.split("::").map(String::from).collect::<Vec<_>>();
                (Some(base), 4 + (rest[4..].len() - after.len()))
            } else {
                (None, 0)
            }
        } else {
            (None, 0)
        };
        let Some(base) = base else {
            i += 1;
            continue;
        };
        let line = line_of(i);
        let (paths, used) = path_tree(&text[i + skip..]);
        for p in paths {
            let mut full = base.clone();
            full.extend(p);
            if let Some(to) = resolve(&full, modules) {
                if to != module && !out.iter().any(|x: &Import| x.to == to && x.line == line) {
                    out.push(Import { to, line });
                }
            }
        }
        i += skip + used.max(1);
    }
    out
}

/// Parse `a::b::{c, d::{e, f}}` (after a `crate::`) into its leaf paths. Returns the
/// paths and how many bytes were read.
fn path_tree(s: &str) -> (Vec<Vec<String>>, usize) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut prefix: Vec<String> = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'{' {
            let Some(close) = matching_brace(b, i) else {
                return (vec![prefix], i);
            };
            let mut out = Vec::new();
            for part in split_top(&s[i + 1..close]) {
                let (subs, _) = path_tree(part);
                for sub in subs {
                    let mut p = prefix.clone();
                    p.extend(sub);
                    out.push(p);
                }
            }
            return (out, close + 1);
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if start == i {
            return (vec![prefix], i);
        }
        let seg = &s[start..i];
        if seg != "self" {
            prefix.push(seg.to_string());
        }
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// Split on commas not inside braces.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (k, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// The longest prefix of `path` that names a module of the crate.
fn resolve(path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|name| modules.contains(name))
}

/// The floors table of one crate in docs/ARCHITECTURE.md: the lines after a heading
/// `### Floors: `<dir>`` that form a table `| floor | `mod` `mod` | … |`.
pub fn floors(architecture: &str, dir: &str) -> Result<BTreeMap<String, u32>, String> {
    let heading = format!("### Floors: `{dir}`");
    let mut lines = architecture.lines().skip_while(|l| l.trim() != heading);
    if lines.next().is_none() {
        return Err(format!("docs/ARCHITECTURE.md has no heading {heading:?}"));
    }
    let mut map = BTreeMap::new();
    let mut in_table = false;
    for l in lines {
        let l = l.trim();
        if !l.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        in_table = true;
        let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
        let Some(Ok(floor)) = cells.first().map(|c| c.parse::<u32>()) else {
            continue;
        };
        let names = cells.get(1).copied().unwrap_or_default();
        for m in names.split('`').skip(1).step_by(2) {
            if map.insert(m.to_string(), floor).is_some() {
                return Err(format!("module `{m}` is on two floors in the {dir} table"));
            }
        }
    }
    if map.is_empty() {
        return Err(format!("the {dir} floors table under {heading:?} is empty"));
    }
    Ok(map)
}

/// Judge one crate: every module on a floor, every listed module real, no import
/// upward, no circle. Returns the findings, each naming file and line.
pub fn check_floors(src: &Path, floors: &BTreeMap<String, u32>) -> Vec<String> {
    let files = module_files(src);
    let names: BTreeSet<String> = files.iter().map(|f| f.name.clone()).collect();
    let mut findings = Vec::new();
    for f in &files {
        if !floors.contains_key(&f.name) {
            findings.push(format!(
                "{}: module `{}` is on no floor of docs/ARCHITECTURE.md",
                f.path.display(),
                f.name
            ));
        }
    }
    for m in floors.keys() {
        if !names.contains(m) {
            findings.push(format!(
                "docs/ARCHITECTURE.md lists `{m}` on a floor of {}, but there is no such module",
                src.display()
            ));
        }
    }
    let mut edges: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(&f.path).unwrap_or_default();
        for imp in imports(&f.name, &text, &names) {
            let at = format!("{}:{}", f.path.display(), imp.line);
            if let (Some(a), Some(b)) = (floors.get(&f.name), floors.get(&imp.to)) {
                if b > a {
                    findings.push(format!(
                        "{at}: `{}` (floor {a}) imports `{}` (floor {b}), which is above it",
                        f.name, imp.to
                    ));
                }
            }
            edges.entry(f.name.clone()).or_default().push((imp.to, at));
        }
    }
    // A module and its own submodules are one unit (a mod.rs re-exports its children,
    // which use their parent's types): their mutual imports are not circles. Siblings
    // and strangers that import each other are.
    let edges: Edges = edges
        .into_iter()
        .map(|(from, list)| {
            let kept = list
                .into_iter()
                .filter(|(to, _)| !family(&from, to))
                .collect();
            (from, kept)
        })
        .collect();
    for cycle in circles(&edges) {
        let text: Vec<String> = cycle
            .iter()
            .map(|(from, to, at)| format!("{at}: `{from}` imports `{to}`"))
            .collect();
        findings.push(format!("a circle of imports:\n    {}", text.join("\n    ")));
    }
    findings
}

/// Whether one module is inside the other (`conn` and `conn::writer`).
fn family(a: &str, b: &str) -> bool {
    a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

type Edges = BTreeMap<String, Vec<(String, String)>>;

/// The strongly connected groups of two or more modules (Tarjan), each given as the
/// import edges that stay inside it.
fn circles(edges: &Edges) -> Vec<Vec<(String, String, String)>> {
    struct T<'a> {
        edges: &'a Edges,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        groups: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for (w, _) in t.edges.get(v).map(Vec::as_slice).unwrap_or_default() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(lw));
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut group = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                group.push(w);
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                t.groups.push(group);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        groups: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.groups
        .into_iter()
        .map(|g| {
            let set: BTreeSet<&str> = g.iter().copied().collect();
            let mut inside = Vec::new();
            for from in &g {
                for (to, at) in edges.get(*from).map(Vec::as_slice).unwrap_or_default() {
                    if set.contains(to.as_str()) {
                        inside.push((from.to_string(), to.clone(), at.clone()));
                    }
                }
            }
            inside.sort();
            inside
        })
        .collect()
}

/// A function and the lines it spans, from `fn` to its closing brace.
#[derive(Clone, Debug)]
pub struct Function {
    pub name: String,
    pub line: usize,
    pub lines: usize,
}

/// Every `fn` with a body in `src`, nested ones included.
pub fn functions(src: &str) -> Vec<Function> {
    let text = strip(src);
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = text[i..].find("fn ") {
        let at = i + p;
        i = at + 3;
        if ident_before(b, at) {
            continue;
        }
        let name: String = text[at + 3..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        // The body opens at the first `{` before any `;` (a declaration has none).
        let rest = &text[at..];
        let (Some(open), semi) = (rest.find('{'), rest.find(';')) else {
            continue;
        };
        if semi.is_some_and(|s| s < open) {
            continue;
        }
        if let Some(close) = matching_brace(b, at + open) {
            let line = text[..at].matches('\n').count() + 1;
            let end = text[..close].matches('\n').count() + 1;
            out.push(Function {
                name,
                line,
                lines: end - line + 1,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mods(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn grouped_crate_paths_resolve_to_the_deepest_module() {
        let m = mods(&["conn", "conn::client", "server", "route"]);
        let src = "use crate::{conn::{client::Client, Conn}, server::Shared};\nfn f() { crate::route::start(); }\n";
        let got = imports("account", src, &m);
        let to: Vec<_> = got.iter().map(|i| (i.to.as_str(), i.line)).collect();
        assert_eq!(
            to,
            vec![
                ("conn::client", 1),
                ("conn", 1),
                ("server", 1),
                ("route", 2)
            ]
        );
    }

    #[test]
    fn super_paths_and_child_uses_count_and_comments_do_not() {
        let m = mods(&["config", "config::options", "config::cluster"]);
        let src = "// crate::config::options in a comment\nlet s = \"crate::config::options\";\nuse super::options::parse_listen;\n";
        let got = imports("config::cluster", src, &m);
        assert_eq!(
            got,
            vec![Import {
                to: "config::options".into(),
                line: 3
            }]
        );
        let parent = "pub use options::Options;\nuse cluster::Cluster;\n";
        let got = imports("config", parent, &m);
        assert_eq!(got.len(), 2, "{got:?}");
    }

    #[test]
    fn unit_test_modules_are_exempt() {
        let m = mods(&["a", "b"]);
        let src = "fn x() {}\n#[cfg(test)]\nmod tests {\n    use crate::b::Thing;\n}\n";
        assert!(imports("a", src, &m).is_empty());
    }

    #[test]
    fn an_upward_import_and_a_circle_are_both_named_with_file_and_line() {
        let dir = std::env::temp_dir().join(format!("house-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/low.rs"), "use crate::high::X;\n").unwrap();
        std::fs::write(dir.join("src/high.rs"), "use crate::low::Y;\n").unwrap();
        std::fs::write(dir.join("src/a.rs"), "\nuse crate::b::Y;\n").unwrap();
        std::fs::write(dir.join("src/b.rs"), "use crate::a::Y;\n").unwrap();
        let floors: BTreeMap<String, u32> = [("low", 1), ("high", 2), ("a", 3), ("b", 3)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let found = check_floors(&dir.join("src"), &floors);
        let all = found.join("\n");
        assert!(
            all.contains("low.rs:1: `low` (floor 1) imports `high` (floor 2)"),
            "{all}"
        );
        assert!(all.contains("a.rs:2: `a` imports `b`"), "{all}");
        assert!(all.contains("b.rs:1: `b` imports `a`"), "{all}");
        // A module and its children may use each other; that is no circle.
        std::fs::create_dir_all(dir.join("src/p")).unwrap();
        std::fs::write(dir.join("src/p/mod.rs"), "use c::Z;\n").unwrap();
        std::fs::write(dir.join("src/p/c.rs"), "use super::W;\n").unwrap();
        let mut floors = floors;
        floors.insert("p".into(), 4);
        floors.insert("p::c".into(), 4);
        let found = check_floors(&dir.join("src"), &floors).join("\n");
        assert!(!found.contains("`p"), "{found}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn functions_span_to_their_closing_brace() {
        let src = "fn a() {\n    let s = \"}\";\n    '}';\n}\nfn decl();\npub async fn b<'a>(x: &'a str) -> u8 {\n    1\n}\n";
        let f = functions(src);
        let got: Vec<_> = f
            .iter()
            .map(|f| (f.name.as_str(), f.line, f.lines))
            .collect();
        assert_eq!(got, vec![("a", 1, 4), ("b", 6, 3)]);
    }

    #[test]
    fn floors_come_from_the_markdown_table() {
        let md = "x\n### Floors: `server/src`\n\n| floor | modules | what |\n|---|---|---|\n| 1 | `subject` `nkey` | text |\n| 2 | `conn` | x |\n\nafter\n| 9 | `not` | x |\n";
        let f = floors(md, "server/src").unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f["conn"], 2);
    }
}
