//! What the phases of [`build`](super::build) share: the list of findings, the checks
//! of names, subjects, sizes and durations, and the diagnostics of a name that is
//! missing, unknown or defined twice.

use crate::diag::Diagnostic;
use crate::topology::{Spanned, Str, StrList};
use std::ops::Range;

#[derive(Default)]
pub(super) struct Ctx {
    pub(super) d: Vec<Diagnostic>,
}

impl Ctx {
    pub(super) fn err(&mut self, d: Diagnostic) {
        self.d.push(d);
    }
}

pub(super) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

/// DNS-safe: lower-case letters, digits and dashes (server and site names become
/// container names and certificate SANs).
pub(super) fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && !s.ends_with('-')
}

pub(super) fn check_dns_name(c: &mut Ctx, what: &str, n: &Str) {
    if !is_dns_name(&n.value) {
        c.err(
            Diagnostic::error(format!("invalid {what} name \"{}\"", n.value), n.span.clone())
                .label("not a DNS label")
                .help("use lower-case letters, digits and dashes (it becomes a host name and a certificate name)"),
        );
    }
}

pub(super) fn valid_subject(s: &str, wildcards: bool) -> bool {
    canopy_server::subject::valid(s.as_bytes(), wildcards)
}

pub(super) fn check_subjects(c: &mut Ctx, list: Option<&StrList>, what: &str) -> Vec<String> {
    let Some(list) = list else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in &list.value {
        if valid_subject(&s.value, true) {
            out.push(s.value.clone());
        } else {
            c.err(invalid_subject(s, what));
        }
    }
    out
}

pub(super) fn invalid_subject(s: &Str, what: &str) -> Diagnostic {
    Diagnostic::error(format!("invalid subject \"{}\" in {what}", s.value), s.span.clone())
        .label("not a NATS subject")
        .help("tokens are separated by single dots, with no spaces; `*` matches one token and `>` the rest (last token only)")
}

/// The help line of an unknown name: the names that are defined.
pub(super) fn defined<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.map(|n| format!("\"{n}\"")).collect();
    if quoted.is_empty() {
        return "none is defined".into();
    }
    format!("defined: {}", quoted.join(", "))
}

pub(super) fn size_ok(s: &str) -> bool {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let unit = s[digits..].to_ascii_uppercase();
    matches!(
        unit.as_str(),
        "" | "K" | "KB" | "KIB" | "M" | "MB" | "MIB" | "G" | "GB" | "GIB" | "T" | "TB" | "TIB"
    )
}

/// A Go-style duration of one unit: `20ms`, `1.5s`, `250us`.
pub fn duration_ok(s: &str) -> bool {
    let num = s
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    num > 0 && s[..num].parse::<f64>().is_ok() && matches!(&s[num..], "us" | "ms" | "s" | "m")
}

pub(super) fn bandwidth_ok(s: &str) -> bool {
    let num = s
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    num > 0
        && s[..num].parse::<f64>().is_ok_and(|v| v > 0.0)
        && matches!(&s[num..], "kbit" | "mbit" | "gbit")
}

pub(super) const COMPRESSION: &[&str] = &[
    "off",
    "accept",
    "s2_fast",
    "s2_better",
    "s2_best",
    "s2_auto",
];

/// Check a mapping destination: a subject whose `$N` / `{{wildcard(N)}}` references
/// name wildcards the source has.
pub(super) fn check_mapping_destination(from: &str, to: &Str) -> Option<Diagnostic> {
    let wildcards = from.split('.').filter(|t| *t == "*").count();
    let mut plain = String::new();
    let mut refs = Vec::new();
    for tok in to.value.split('.') {
        if !plain.is_empty() {
            plain.push('.');
        }
        if let Some(n) = tok.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
            refs.push(n);
            plain.push('x');
        } else if let Some(inner) = tok
            .strip_prefix("{{")
            .and_then(|t| t.strip_suffix("}}"))
            .map(str::trim)
        {
            if let Some(n) = inner
                .strip_prefix("wildcard(")
                .and_then(|t| t.strip_suffix(')'))
                .and_then(|t| t.trim().parse::<usize>().ok())
            {
                refs.push(n);
            }
            plain.push('x');
        } else {
            plain.push_str(tok);
        }
    }
    if !valid_subject(&plain, true) {
        return Some(invalid_subject(to, "a mapping destination"));
    }
    if let Some(n) = refs.iter().find(|n| **n == 0 || **n > wildcards) {
        return Some(
            Diagnostic::error(
                format!("mapping destination refers to wildcard {n}, but \"{from}\" has {wildcards}"),
                to.span.clone(),
            )
            .label("no such wildcard")
            .help("$1 is the source's first `*`, $2 the second; `>` cannot be referenced, but a destination ending in `>` keeps the rest"),
        );
    }
    None
}

pub(super) fn span_or(p: &Option<Spanned<u64>>, name: &Str) -> Range<usize> {
    p.as_ref().map_or(name.span.clone(), |p| p.span.clone())
}

pub(super) fn duplicate(what: &str, n: &Str) -> Diagnostic {
    Diagnostic::error(format!("duplicate {what} \"{}\"", n.value), n.span.clone())
        .label("defined again here")
        .help("names must be unique; rename or merge the two blocks")
}

pub(super) fn missing(attr: &str, n: &Str, kind: &str, example: &str) -> Diagnostic {
    Diagnostic::error(
        format!("{kind} \"{}\" has no `{attr}`", n.value),
        n.span.clone(),
    )
    .label(format!("`{attr}` is required"))
    .help(format!("for example: {example}"))
}

pub(super) fn unknown<'a>(what: &str, n: &Str, names: impl Iterator<Item = &'a str>) -> Diagnostic {
    Diagnostic::error(format!("unknown {what} \"{}\"", n.value), n.span.clone())
        .label(format!("no {what} has this name"))
        .help(defined(names))
}
