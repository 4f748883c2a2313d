//! Typed reading of a parsed [`Map`]: take each known key (with its aliases, in any
//! case, as the official server does), convert its value, and report every key left
//! over as `unknown field`, with the real option where the mistake is a known one.

use super::error::{Diagnostic, Diagnostics};
use super::value::{Entry, Map, Node, Pos, Value};
use std::time::Duration;

/// The keys of one block, being taken one by one.
pub struct Fields<'a> {
    /// How the block is named in messages: `cluster`, `leafnodes remote`, `tls`...
    block: &'static str,
    entries: Vec<(&'a Entry, String, bool)>,
    pub pos: Pos,
}

impl<'a> Fields<'a> {
    pub fn new(block: &'static str, map: &'a Map, pos: &Pos) -> Self {
        Fields {
            block,
            entries: map
                .entries
                .iter()
                .map(|e| (e, e.key.to_ascii_lowercase(), false))
                .collect(),
            pos: pos.clone(),
        }
    }

    /// Read a node that must be a map as a block of fields.
    pub fn of(block: &'static str, node: &'a Node, d: &mut Diagnostics) -> Option<Self> {
        match &node.value {
            Value::Map(m) => Some(Fields::new(block, m, &node.pos)),
            other => {
                d.push(Diagnostic::error(
                    &node.pos,
                    format!("expected a map for {block}, found {}", other.kind()),
                ));
                None
            }
        }
    }

    pub fn block(&self) -> &'static str {
        self.block
    }

    /// The last entry under any of `names` (lower case); every such entry counts as known.
    pub fn take(&mut self, names: &[&str]) -> Option<&'a Entry> {
        let mut found = None;
        for (entry, lower, seen) in self.entries.iter_mut() {
            if names.contains(&lower.as_str()) {
                *seen = true;
                found = Some(*entry);
            }
        }
        found
    }

    pub fn take_node(&mut self, names: &[&str]) -> Option<&'a Node> {
        self.take(names).map(|e| &e.value)
    }

    pub fn has(&self, names: &[&str]) -> bool {
        self.entries
            .iter()
            .any(|(_, k, _)| names.contains(&k.as_str()))
    }

    /// Report the keys nobody took. `hint` maps a known mistake to its fix.
    pub fn finish(self, d: &mut Diagnostics, hint: impl Fn(&str) -> Option<String>) {
        for (entry, lower, seen) in self.entries {
            if seen || entry.used_as_variable {
                continue;
            }
            let mut diag = Diagnostic::error(
                &entry.key_pos,
                format!("unknown field \"{}\" in {}", entry.key, self.block),
            );
            if let Some(help) = hint(&lower) {
                diag = diag.with_help(help);
            }
            d.push(diag);
        }
    }

    /// Take an option Canopy reads but does not serve, and refuse it: a server that
    /// silently ignored what its operator wrote would be worse than one that will not
    /// start. `why` says what it would have done, or what to write instead.
    pub fn refuse(&mut self, names: &[&str], why: &str, d: &mut Diagnostics) -> bool {
        match self.take(names) {
            Some(e) => {
                d.push(unsupported(e, why));
                true
            }
            None => false,
        }
    }

    /// Take an option and refuse it when its value asks for something Canopy does
    /// not serve (`asks`); at its default (`false`, `0`, `off`) it asks for nothing
    /// and is accepted.
    pub fn refuse_when(
        &mut self,
        names: &[&str],
        asks: impl Fn(&Value) -> bool,
        why: &str,
        d: &mut Diagnostics,
    ) -> Option<&'a Entry> {
        let e = self.take(names)?;
        if asks(&e.value.value) {
            d.push(unsupported(e, why));
        }
        Some(e)
    }

    // Typed shorthands: take and convert in one step.

    pub fn bool(&mut self, names: &[&str], d: &mut Diagnostics) -> Option<bool> {
        self.take(names).and_then(|e| boolean(e, d))
    }
    pub fn int(&mut self, names: &[&str], d: &mut Diagnostics) -> Option<i64> {
        self.take(names).and_then(|e| int(e, d))
    }
    pub fn size(&mut self, names: &[&str], d: &mut Diagnostics) -> Option<i64> {
        self.take(names).and_then(|e| size(e, d))
    }
    pub fn string(&mut self, names: &[&str], d: &mut Diagnostics) -> Option<String> {
        self.take(names).and_then(|e| string(e, d))
    }
    pub fn strings(&mut self, names: &[&str], d: &mut Diagnostics) -> Option<Vec<String>> {
        self.take(names).and_then(|e| strings(e, d))
    }
    pub fn duration(&mut self, names: &[&str], d: &mut Diagnostics) -> Option<Duration> {
        self.take(names).and_then(|e| duration(e, d))
    }
    /// Seconds as a number (int or float) or as a duration string.
    pub fn seconds(&mut self, names: &[&str], d: &mut Diagnostics) -> Option<Duration> {
        self.take(names).and_then(|e| seconds(e, d))
    }
}

/// The words of every refusal of an option that parses but is not served; tests and
/// the differential corpus recognise refusals by them.
pub const NOT_SUPPORTED: &str = "is not supported by canopy-server";

/// A value that asks for something: `true`, a number other than 0, a non-empty string
/// or list, any map.
pub fn asks_for_something(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => true,
    }
}

/// The refusal of an option Canopy does not serve, naming it.
pub fn unsupported(e: &Entry, why: &str) -> Diagnostic {
    Diagnostic::error(&e.key_pos, format!("\"{}\" {NOT_SUPPORTED}", e.key)).with_help(why)
}

fn mismatch(e: &Entry, want: &str) -> Diagnostic {
    Diagnostic::error(
        &e.value.pos,
        format!(
            "expected {want} for \"{}\", found {}",
            e.key,
            e.value.value.kind()
        ),
    )
}

pub fn boolean(e: &Entry, d: &mut Diagnostics) -> Option<bool> {
    match e.value.value {
        Value::Bool(b) => Some(b),
        _ => {
            d.push(mismatch(e, "a boolean").with_help("write true or false (unquoted)"));
            None
        }
    }
}

pub fn int(e: &Entry, d: &mut Diagnostics) -> Option<i64> {
    match e.value.value {
        Value::Int(i) => Some(i),
        Value::Str(ref s) if s.ends_with(|c: char| c.is_ascii_alphabetic()) => {
            d.push(mismatch(e, "an integer").with_help(
                "size suffixes are k, m, g, t (decimal) and kb/ki, mb/mi, gb/gi, tb/ti (binary), unquoted",
            ));
            None
        }
        _ => {
            d.push(mismatch(e, "an integer"));
            None
        }
    }
}

pub fn string(e: &Entry, d: &mut Diagnostics) -> Option<String> {
    match &e.value.value {
        Value::Str(s) => Some(s.clone()),
        _ => {
            d.push(mismatch(e, "a string").with_help("quote the value to make it a string"));
            None
        }
    }
}

/// A string, or an array of strings.
pub fn strings(e: &Entry, d: &mut Diagnostics) -> Option<Vec<String>> {
    node_strings(&e.value, &e.key, d)
}

pub fn node_strings(node: &Node, key: &str, d: &mut Diagnostics) -> Option<Vec<String>> {
    match &node.value {
        Value::Str(s) => Some(vec![s.clone()]),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match &item.value {
                    Value::Str(s) => out.push(s.clone()),
                    other => {
                        d.push(Diagnostic::error(
                            &item.pos,
                            format!("expected strings in \"{key}\", found {}", other.kind()),
                        ));
                        return None;
                    }
                }
            }
            Some(out)
        }
        other => {
            d.push(Diagnostic::error(
                &node.pos,
                format!(
                    "expected a string or an array of strings for \"{key}\", found {}",
                    other.kind()
                ),
            ));
            None
        }
    }
}

/// A Go-style duration string. A bare number is taken as seconds with the official
/// server's warning (which makes `-t` fail).
pub fn duration(e: &Entry, d: &mut Diagnostics) -> Option<Duration> {
    match &e.value.value {
        Value::Str(s) => match parse_go_duration(s) {
            Ok(dur) => Some(dur),
            Err(why) => {
                d.push(
                    Diagnostic::error(
                        &e.value.pos,
                        format!("invalid duration \"{s}\" for \"{}\": {why}", e.key),
                    )
                    .with_help("durations look like \"500ms\", \"10s\", \"1m30s\" or \"2h\""),
                );
                None
            }
        },
        Value::Int(n) => {
            d.push(
                Diagnostic::warning(
                    &e.key_pos,
                    format!(
                        "invalid use of field \"{}\": {} should be converted to a duration",
                        e.key, e.key
                    ),
                )
                .with_help(format!("write {}: \"{n}s\"", e.key)),
            );
            Some(Duration::from_secs((*n).max(0) as u64))
        }
        Value::Float(_) => {
            d.push(
                Diagnostic::warning(
                    &e.key_pos,
                    format!(
                        "invalid use of field \"{}\": {} should be converted to a duration",
                        e.key, e.key
                    ),
                )
                .with_help(format!("write {}: \"<n>s\" as a quoted duration", e.key)),
            );
            d.push(mismatch(e, "a duration"));
            None
        }
        _ => {
            d.push(mismatch(e, "a duration"));
            None
        }
    }
}

/// Seconds given as an integer, a float, or a duration string (auth and TLS timeouts).
pub fn seconds(e: &Entry, d: &mut Diagnostics) -> Option<Duration> {
    let secs = match &e.value.value {
        Value::Int(n) => *n as f64,
        Value::Float(f) => *f,
        Value::Str(s) => match parse_go_duration(s) {
            Ok(dur) => return Some(dur),
            Err(why) => {
                d.push(Diagnostic::error(
                    &e.value.pos,
                    format!("invalid duration \"{s}\" for \"{}\": {why}", e.key),
                ));
                return None;
            }
        },
        _ => {
            d.push(mismatch(e, "a number of seconds or a duration"));
            return None;
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        d.push(Diagnostic::error(
            &e.value.pos,
            format!("\"{}\" must be a positive number of seconds", e.key),
        ));
        return None;
    }
    Some(Duration::from_secs_f64(secs.min(1e12)))
}

/// Go's `time.ParseDuration`: `[-+]?(\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)` repeated, or `0`.
/// Negative durations are clamped to zero (the server treats them as "unset").
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(format!("expected a number at \"{rest}\""));
        }
        let value: f64 = num.parse().map_err(|_| format!("bad number \"{num}\""))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let nanos_per = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("missing unit in duration \"{s}\"")),
            other => return Err(format!("unknown unit \"{other}\"")),
        };
        total += value * nanos_per;
        rest = &rest[unit_len..];
    }
    if total > 9.2e18 {
        return Err("duration out of range".into());
    }
    if neg {
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_nanos(total as u64))
}

/// A block whose keys Canopy checks but does not use (OCSP, auth callout, JetStream
/// tuning...): every key must be one of `known`; values are not interpreted.
pub fn known_keys(block: &'static str, node: &Node, known: &[&[&str]], d: &mut Diagnostics) {
    if let Some(mut f) = Fields::of(block, node, d) {
        for keys in known {
            f.take(keys);
        }
        f.finish(d, |_| None);
    }
}

/// A size: an integer with an optional suffix, or the same written as a string (`"1G"`).
pub fn size(e: &Entry, d: &mut Diagnostics) -> Option<i64> {
    if let Value::Str(s) = &e.value.value {
        if let Ok(Value::Int(n)) = super::lex::number_or_string(s, &e.value.pos) {
            return Some(n);
        }
    }
    int(e, d)
}

/// Array entries that must each be a map (users, remotes, exports...).
pub fn maps<'a>(e: &'a Entry, what: &'static str, d: &mut Diagnostics) -> Vec<Fields<'a>> {
    let items: Vec<&Node> = match &e.value.value {
        Value::Array(items) => items.iter().collect(),
        Value::Map(_) => vec![&e.value],
        other => {
            d.push(Diagnostic::error(
                &e.value.pos,
                format!(
                    "expected an array of maps for \"{}\", found {}",
                    e.key,
                    other.kind()
                ),
            ));
            return Vec::new();
        }
    };
    items
        .into_iter()
        .filter_map(|n| Fields::of(what, n, d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_go() {
        assert_eq!(parse_go_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_go_duration("1h2m3.5s").unwrap(),
            Duration::from_millis(3_723_500)
        );
        assert_eq!(parse_go_duration("1µs").unwrap(), Duration::from_micros(1));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("1d").is_err());
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("10 s").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("s").is_err());
    }
}
