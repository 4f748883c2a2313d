//! Properties of the config lexer and parser: no input panics, nesting is bounded
//! with a clear error, and what a well-formed file says is what the parser reads.

use canopy_server::config::parse::{parse_str, Env, MAX_DEPTH};
use canopy_server::config::{load_str, Value};
use proptest::prelude::*;

struct NoEnv;
impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

/// A value the generator can write and the parser must read back unchanged.
#[derive(Clone, Debug)]
enum Gen {
    Int(i64),
    Bool(bool),
    Str(String),
    Array(Vec<Gen>),
    Map(Vec<(String, Gen)>),
}

fn gen() -> impl Strategy<Value = Gen> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Gen::Int),
        any::<bool>().prop_map(Gen::Bool),
        "[a-zA-Z0-9 _.:/$*>\\-\\\\\"\t]{0,12}".prop_map(Gen::Str),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Gen::Array),
            prop::collection::vec(("[a-z][a-z0-9_]{0,8}", inner), 0..5).prop_map(Gen::Map),
        ]
    })
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write(g: &Gen, out: &mut String, style: usize) {
    match g {
        Gen::Int(i) => out.push_str(&i.to_string()),
        Gen::Bool(b) => {
            out.push_str(["true", "no", "On", "FALSE"][style % 2 * 2 + usize::from(!*b)])
        }
        Gen::Str(s) => out.push_str(&quote(s)),
        Gen::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                out.push_str(if style.is_multiple_of(2) { " " } else { "\n  " });
                write(item, out, style + i);
                // Commas, or newlines alone: both separate elements.
                out.push_str(if style.is_multiple_of(2) { ", " } else { "\n" });
            }
            out.push(']');
        }
        Gen::Map(entries) => {
            out.push_str("{\n");
            write_entries(entries, out, style);
            out.push('}');
        }
    }
}

fn write_entries(entries: &[(String, Gen)], out: &mut String, style: usize) {
    for (i, (k, v)) in entries.iter().enumerate() {
        let sep = [": ", " = ", " ", ":"][(style + i) % 4];
        let sep = if sep == " " && !matches!(v, Gen::Map(_)) {
            ": "
        } else {
            sep
        };
        out.push_str(k);
        out.push_str(sep);
        write(v, out, style + i);
        out.push_str(["\n", "; # note\n", ",\n", " // note\n"][(style + i) % 4]);
    }
}

fn same(g: &Gen, v: &Value) -> bool {
    match (g, v) {
        (Gen::Int(a), Value::Int(b)) => a == b,
        (Gen::Bool(a), Value::Bool(b)) => a == b,
        (Gen::Str(a), Value::Str(b)) => a == b,
        (Gen::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, &y.value))
        }
        (Gen::Map(a), Value::Map(b)) => {
            // Repeated keys: the last one wins, as in the official server.
            let mut keys: Vec<&String> = a.iter().map(|(k, _)| k).collect();
            keys.dedup();
            b.entries.len() == a.len()
                && a.iter().all(|(k, x)| {
                    let last = a
                        .iter()
                        .rev()
                        .find(|(k2, _)| k2 == k)
                        .map(|(_, v)| v)
                        .unwrap_or(x);
                    b.get(k).is_some_and(|e| same(last, &e.value.value))
                })
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = load_str(&text, "prop.conf", &NoEnv);
    }

    #[test]
    fn arbitrary_grammar_soup_never_panics(text in "[{}\\[\\]:=,;#/\"'()$a-z0-9 \n\t.\\\\-]{0,300}") {
        let _ = load_str(&text, "prop.conf", &NoEnv);
    }

    #[test]
    fn written_values_read_back_the_same(entries in prop::collection::vec(("[a-z][a-z0-9_]{0,8}", gen()), 1..6), style in 0usize..4) {
        let mut text = String::new();
        write_entries(&entries, &mut text, style);
        let map = parse_str(&text, "prop.conf", &NoEnv).map_err(|e| TestCaseError::fail(format!("{e}\n---\n{text}")))?;
        prop_assert!(same(&Gen::Map(entries.clone()), &Value::Map(map)), "read back differs:\n{}", text);
    }
}

#[test]
fn deep_nesting_is_a_clear_error_not_a_stack_overflow() {
    let n = 100_000;
    let maps = format!(
        "server_metadata {{ {} b: 1 {} }}",
        "a { ".repeat(n),
        " }".repeat(n)
    );
    let arrays = format!("server_tags: {} 1 {}", "[ ".repeat(n), " ]".repeat(n));
    for text in [maps, arrays] {
        let err = parse_str(&text, "deep.conf", &NoEnv).expect_err("must refuse");
        assert!(
            err.to_string()
                .contains(&format!("deeper than {MAX_DEPTH}")),
            "{err}"
        );
        assert!(err.to_string().contains("(deep.conf:1:"), "{err}");
    }
    // Nesting within the bound parses.
    let text = format!("x {{ {} b: 1 {} }}", "a { ".repeat(100), " }".repeat(100));
    parse_str(&text, "ok.conf", &NoEnv).expect("100 levels parse");
}
