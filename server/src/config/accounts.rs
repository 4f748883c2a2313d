//! `accounts { }`, their exports and imports, and subject `mappings` (top level or per account).

use super::auth::{self, Permissions, User};
use super::decode::{self, Fields};
use super::error::{Diagnostic, Diagnostics};
use super::jetstream::{self, AccountJetStream};
use super::value::{Map, Node, Pos, Value};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportKind {
    Stream,
    Service,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseType {
    Singleton,
    Stream,
    Chunked,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Export {
    pub pos: Pos,
    pub kind: ExportKind,
    pub subject: String,
    /// Importers allowed; empty means public.
    pub accounts: Vec<String>,
    pub response_type: ResponseType,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Import {
    pub pos: Pos,
    pub kind: ExportKind,
    pub account: String,
    pub subject: String,
    /// Stream imports: prepend this token sequence.
    pub prefix: Option<String>,
    /// Remap to this subject (services: the local subject clients publish to).
    pub to: Option<String>,
    pub share: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MappingDest {
    pub subject: String,
    /// Percent, 0–100.
    pub weight: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    pub pos: Pos,
    pub source: String,
    pub destinations: Vec<MappingDest>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    pub pos: Pos,
    pub name: String,
    pub users: Vec<User>,
    pub exports: Vec<Export>,
    pub imports: Vec<Import>,
    pub mappings: Vec<Mapping>,
    pub jetstream: Option<AccountJetStream>,
    pub default_permissions: Option<Permissions>,
}

pub fn parse_accounts(node: &Node, d: &mut Diagnostics) -> Vec<Account> {
    let map = match &node.value {
        Value::Map(m) => m,
        // `accounts: [A, B]` declares empty accounts.
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match &item.value {
                    Value::Str(name) => out.push(Account::empty(name, &item.pos)),
                    other => d.push(Diagnostic::error(
                        &item.pos,
                        format!("expected an account name, found {}", other.kind()),
                    )),
                }
            }
            return out;
        }
        other => {
            d.push(Diagnostic::error(
                &node.pos,
                format!("expected a map of accounts, found {}", other.kind()),
            ));
            return Vec::new();
        }
    };
    let mut out: Vec<Account> = Vec::new();
    for entry in map.entries.iter().filter(|e| !e.used_as_variable) {
        if out.iter().any(|a| a.name == entry.key) {
            d.push(Diagnostic::error(
                &entry.key_pos,
                format!("duplicate account \"{}\"", entry.key),
            ));
            continue;
        }
        if let Some(acc) = parse_account(&entry.key, &entry.key_pos, &entry.value, d) {
            out.push(acc);
        }
    }
    out
}

impl Account {
    pub fn empty(name: &str, pos: &Pos) -> Account {
        Account {
            pos: pos.clone(),
            name: name.to_string(),
            users: Vec::new(),
            exports: Vec::new(),
            imports: Vec::new(),
            mappings: Vec::new(),
            jetstream: None,
            default_permissions: None,
        }
    }
}

fn parse_account(name: &str, pos: &Pos, node: &Node, d: &mut Diagnostics) -> Option<Account> {
    let mut acc = Account::empty(name, pos);
    let mut f = Fields::of("account", node, d)?;
    if let Some(e) = f.take(&["users"]) {
        acc.users = auth::parse_users(e, false, d);
        for u in &mut acc.users {
            u.account = Some(name.to_string());
        }
    }
    if let Some(e) = f.refuse_when(
        &["nkey"],
        decode::asks_for_something,
        "account nkeys name accounts in JWT/operator mode, which is not served",
        d,
    ) {
        decode::string(e, d);
    }
    if let Some(e) = f.take(&["exports"]) {
        for mut x in decode::maps(e, "export", d) {
            if let Some(exp) = parse_export(&mut x, d) {
                acc.exports.push(exp);
            }
            x.finish(d, |_| None);
        }
    }
    if let Some(e) = f.take(&["imports"]) {
        for mut x in decode::maps(e, "import", d) {
            if let Some(imp) = parse_import(&mut x, d) {
                acc.imports.push(imp);
            }
            x.finish(d, |_| None);
        }
    }
    if let Some(e) = f.take(&["mappings", "maps"]) {
        acc.mappings = parse_mappings(&e.value, d);
    }
    if let Some(e) = f.take(&["jetstream"]) {
        acc.jetstream = jetstream::parse_account_jetstream(&e.value, d);
    }
    if let Some(e) = f.take(&["default_permissions"]) {
        acc.default_permissions = auth::parse_permissions(&e.value, d);
    }
    if let Some(e) = f.take(&["limits"]) {
        if let Some(mut l) = Fields::of("account limits", &e.value, d) {
            // -1 is nats-server's "no limit", as is leaving a limit out.
            let limited = |v: &Value| !matches!(v, Value::Int(n) if *n < 0);
            for keys in [
                &["max_connections", "max_conn"][..],
                &["max_subscriptions", "max_subs"],
                &["max_payload", "max_pay"],
                &["max_leafnodes", "max_leafs"],
            ] {
                l.refuse_when(
                    keys,
                    limited,
                    "per-account limits are not enforced; the server-wide max_connections, max_subscriptions and max_payload are",
                    d,
                );
            }
            l.finish(d, |_| None);
        }
    }
    if let Some(e) = f.take(&["msg_trace", "trace_dest"]) {
        if matches!(e.value.value, Value::Map(_)) {
            decode::known_keys(
                "account msg_trace",
                &e.value,
                &[&["dest"], &["sampling"]],
                d,
            );
        }
        d.push(decode::unsupported(e, "message tracing is not served"));
    }
    f.finish(d, |k| match k {
        "max_connections" | "max_conn" | "max_subscriptions" | "max_subs" | "max_payload"
        | "max_pay" | "max_leafnodes" | "max_leafs" => Some(format!(
            "account limits go in a limits {{ {k}: ... }} block inside the account"
        )),
        "user" | "password" => {
            Some("account users go in a users: [ {user: ..., password: ...} ] list".into())
        }
        _ => None,
    });
    Some(acc)
}

fn parse_export(x: &mut Fields, d: &mut Diagnostics) -> Option<Export> {
    let stream = x.string(&["stream"], d);
    let service = x.string(&["service"], d);
    let (kind, subject) = match (stream, service) {
        (Some(s), None) => (ExportKind::Stream, s),
        (None, Some(s)) => (ExportKind::Service, s),
        (Some(_), Some(_)) => {
            d.push(Diagnostic::error(
                &x.pos,
                "an export is either a stream or a service, not both",
            ));
            return None;
        }
        (None, None) => {
            d.push(Diagnostic::error(
                &x.pos,
                "an export needs \"stream\" or \"service\"",
            ));
            return None;
        }
    };
    check_subject(&subject, &x.pos, true, d);
    let accounts = x.strings(&["accounts"], d).unwrap_or_default();
    let mut response_type = ResponseType::Singleton;
    if let Some(e) = x.take(&["response_type", "response"]) {
        if let Some(s) = decode::string(e, d) {
            response_type = match s.to_ascii_lowercase().as_str() {
                "single" | "singleton" => ResponseType::Singleton,
                "stream" => ResponseType::Stream,
                "chunk" | "chunked" => ResponseType::Chunked,
                _ => {
                    d.push(
                        Diagnostic::error(&e.value.pos, format!("unknown response type \"{s}\""))
                            .with_help("use singleton, stream or chunked"),
                    );
                    ResponseType::Singleton
                }
            };
            if kind == ExportKind::Stream {
                d.push(Diagnostic::error(
                    &e.key_pos,
                    "response types are for service exports only",
                ));
            }
        }
    }
    if let Some(e) = x.refuse_when(
        &["response_threshold", "threshold", "response_max_time"],
        |_| true,
        "responses may come for as long as the importer's reply route lives (2 minutes)",
        d,
    ) {
        decode::duration(e, d);
    }
    x.refuse_when(
        &["latency"],
        |_| true,
        "service latency is not measured or published",
        d,
    );
    x.refuse_when(
        &["allow_trace"],
        decode::asks_for_something,
        "message tracing is not served",
        d,
    );
    x.refuse_when(
        &["account_token_position"],
        |_| true,
        "imports are not held to the importer's name at a token of the export; list the importing accounts in the export instead",
        d,
    );
    Some(Export {
        pos: x.pos.clone(),
        kind,
        subject,
        accounts,
        response_type,
    })
}

fn parse_import(x: &mut Fields, d: &mut Diagnostics) -> Option<Import> {
    let stream = x.take(&["stream"]);
    let service = x.take(&["service"]);
    let (kind, src) = match (stream, service) {
        (Some(s), None) => (ExportKind::Stream, s),
        (None, Some(s)) => (ExportKind::Service, s),
        (Some(_), Some(_)) => {
            d.push(Diagnostic::error(
                &x.pos,
                "an import is either a stream or a service, not both",
            ));
            return None;
        }
        (None, None) => {
            d.push(Diagnostic::error(
                &x.pos,
                "an import needs \"stream\" or \"service\"",
            ));
            return None;
        }
    };
    let mut s = Fields::of("import source", &src.value, d)?;
    let account = s.string(&["account"], d);
    let subject = s.string(&["subject"], d);
    s.finish(d, |_| None);
    let prefix = x.string(&["prefix"], d);
    let to = x.string(&["to"], d);
    let share = x
        .refuse_when(
            &["share"],
            decode::asks_for_something,
            "service latency is not measured or shared",
            d,
        )
        .and_then(|e| decode::boolean(e, d))
        .unwrap_or(false);
    x.refuse_when(
        &["allow_trace"],
        decode::asks_for_something,
        "message tracing is not served",
        d,
    );
    let (Some(account), Some(subject)) = (account, subject) else {
        d.push(Diagnostic::error(
            &src.value.pos,
            "an import source needs both \"account\" and \"subject\"",
        ));
        return None;
    };
    if kind == ExportKind::Service && prefix.is_some() {
        d.push(Diagnostic::error(
            &x.pos,
            "service imports take \"to\", not \"prefix\"",
        ));
    }
    check_subject(&subject, &src.value.pos, true, d);
    Some(Import {
        pos: x.pos.clone(),
        kind,
        account,
        subject,
        prefix,
        to,
        share,
    })
}

/// Every import names a defined account and a subject that account exports, of the
/// same kind, to everyone or to the importer by name.
pub fn check_imports(accounts: &[Account], d: &mut Diagnostics) {
    for acc in accounts {
        for imp in &acc.imports {
            let kind = match imp.kind {
                ExportKind::Stream => "stream",
                ExportKind::Service => "service",
            };
            let Some(src) = accounts.iter().find(|a| a.name == imp.account) else {
                d.push(
                    Diagnostic::error(
                        &imp.pos,
                        format!("\"{}\" account not defined for {kind} import", imp.account),
                    )
                    .with_help(format!(
                        "define account {} under accounts {{ }}",
                        imp.account
                    )),
                );
                continue;
            };
            let allowed = src.exports.iter().any(|x| {
                x.kind == imp.kind
                    && subject_is_subset(&imp.subject, &x.subject)
                    && (x.accounts.is_empty() || x.accounts.contains(&acc.name))
            });
            if !allowed {
                d.push(
                    Diagnostic::error(
                        &imp.pos,
                        format!("Error adding {kind} import \"{}\": {kind} import not authorized", imp.subject),
                    )
                    .with_help(format!(
                        "account {} must export {{ {kind}: \"{}\" }} (publicly, or with accounts: [{}])",
                        src.name, imp.subject, acc.name
                    )),
                );
            }
        }
    }
}

pub use crate::subject::is_subset as subject_is_subset;

/// A subject: dot-separated non-empty tokens without whitespace; `*` and `>` only as
/// whole tokens, and `>` only last.
pub fn subject_is_valid(s: &str, wildcards: bool) -> bool {
    if s.is_empty() {
        return false;
    }
    let mut tokens = s.split('.').peekable();
    while let Some(t) = tokens.next() {
        if t.is_empty() || t.bytes().any(|b| b.is_ascii_whitespace()) {
            return false;
        }
        if t == ">" && (tokens.peek().is_some() || !wildcards) {
            return false;
        }
        if t == "*" && !wildcards {
            return false;
        }
    }
    true
}

fn check_subject(s: &str, pos: &Pos, wildcards: bool, d: &mut Diagnostics) {
    if !subject_is_valid(s, wildcards) {
        d.push(
            Diagnostic::error(pos, format!("invalid subject \"{s}\"")).with_help(
                "subjects are dot-separated tokens; `*` and `>` stand alone, `>` only last",
            ),
        );
    }
}

pub fn parse_mappings(node: &Node, d: &mut Diagnostics) -> Vec<Mapping> {
    let map: &Map = match &node.value {
        Value::Map(m) => m,
        other => {
            d.push(Diagnostic::error(
                &node.pos,
                format!("expected a map of subject mappings, found {}", other.kind()),
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for e in map.entries.iter().filter(|e| !e.used_as_variable) {
        let mut m = Mapping {
            pos: e.key_pos.clone(),
            source: e.key.clone(),
            destinations: Vec::new(),
        };
        check_subject(&m.source, &e.key_pos, true, d);
        match &e.value.value {
            Value::Str(dest) => m.destinations.push(MappingDest {
                subject: dest.clone(),
                weight: 100.0,
            }),
            Value::Map(_) => {
                if let Some(mut f) = Fields::of("mapping destination", &e.value, d) {
                    if let Some(dest) = parse_destination(&mut f, d) {
                        m.destinations.push(dest);
                    }
                    f.finish(d, |_| None);
                }
            }
            Value::Array(items) => {
                for item in items {
                    if let Some(mut f) = Fields::of("mapping destination", item, d) {
                        if let Some(dest) = parse_destination(&mut f, d) {
                            m.destinations.push(dest);
                        }
                        f.finish(d, |_| None);
                    }
                }
            }
            other => d.push(Diagnostic::error(
                &e.value.pos,
                format!(
                    "expected a subject or weighted destinations for mapping \"{}\", found {}",
                    e.key,
                    other.kind()
                ),
            )),
        }
        let total: f64 = m.destinations.iter().map(|x| x.weight).sum();
        let weighted = m.destinations.len() > 1 || matches!(e.value.value, Value::Array(_));
        if weighted && total > 100.0 {
            d.push(Diagnostic::error(
                &e.key_pos,
                format!(
                    "mapping \"{}\": weights add up to {total}%, more than 100%",
                    e.key
                ),
            ));
        }
        for dest in &m.destinations {
            if let Err(why) = check_transform(&m.source, &dest.subject) {
                d.push(
                    Diagnostic::error(&e.key_pos, format!("invalid mapping destination: {why}"))
                        .with_help("{{wildcard(N)}} counts the source's `*` tokens from 1"),
                );
            }
        }
        out.push(m);
    }
    out
}

fn parse_destination(f: &mut Fields, d: &mut Diagnostics) -> Option<MappingDest> {
    let subject = f.string(&["destination", "dest"], d);
    let mut weight = 100.0;
    if let Some(e) = f.take(&["weight"]) {
        let parsed = match &e.value.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(x) => Some(*x),
            Value::Str(s) => s.trim_end_matches('%').parse::<f64>().ok(),
            _ => None,
        };
        match parsed {
            Some(w) if (0.0..=100.0).contains(&w) => weight = w,
            _ => d.push(Diagnostic::error(
                &e.value.pos,
                "mapping weight must be between 0 and 100 (e.g. 50%)",
            )),
        }
    }
    if let Some(e) = f.refuse_when(
        &["cluster"],
        |_| true,
        "mapping destinations are not chosen by cluster: every destination applies everywhere",
        d,
    ) {
        decode::string(e, d);
    }
    let Some(subject) = subject else {
        d.push(Diagnostic::error(
            &f.pos,
            "a weighted mapping entry needs \"destination\"",
        ));
        return None;
    };
    Some(MappingDest { subject, weight })
}

/// Check a destination's `{{function(args)}}` and legacy `$N` references against
/// the source's wildcards.
fn check_transform(source: &str, dest: &str) -> Result<(), String> {
    let wildcards = source.split('.').filter(|t| *t == "*").count();
    let check_index = |n: usize, raw: &str| {
        if n == 0 || n > wildcards {
            Err(format!("wildcard index out of range in {raw}"))
        } else {
            Ok(())
        }
    };
    for token in dest.split('.') {
        if let Some(num) = token.strip_prefix('$') {
            if let Ok(n) = num.parse::<usize>() {
                check_index(n, token)?;
            }
        }
    }
    let mut rest = dest;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unterminated \"{{{{\" in {dest}"))?;
        let call = after[..end].trim();
        let raw = format!("{{{{{call}}}}}");
        let open = call
            .find('(')
            .ok_or_else(|| format!("expected a function call in {raw}"))?;
        if !call.ends_with(')') {
            return Err(format!("expected a function call in {raw}"));
        }
        let func = call[..open].trim().to_ascii_lowercase();
        let args: Vec<&str> = call[open + 1..call.len() - 1]
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        let index = |i: usize| -> Result<usize, String> {
            args.get(i)
                .and_then(|a| a.parse::<usize>().ok())
                .ok_or_else(|| format!("bad argument in {raw}"))
        };
        match func.as_str() {
            "wildcard" => check_index(index(0)?, &raw)?,
            "partition" => {
                index(0)?;
                for i in 1..args.len() {
                    check_index(index(i)?, &raw)?;
                }
            }
            "split" | "splitfromleft" | "splitfromright" | "slicefromleft" | "slicefromright" => {
                check_index(index(0)?, &raw)?;
                if args.len() != 2 {
                    return Err(format!("{func} takes two arguments in {raw}"));
                }
            }
            "left" | "right" => {
                check_index(index(0)?, &raw)?;
            }
            _ => return Err(format!("unknown function \"{func}\" in {raw}")),
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_nats_grammar() {
        assert!(subject_is_valid("foo.bar", false));
        assert!(subject_is_valid("foo.*.>", true));
        assert!(subject_is_valid("foo.b*r", false));
        assert!(!subject_is_valid("foo..bar", true));
        assert!(!subject_is_valid("foo.>.bar", true));
        assert!(!subject_is_valid("foo.*", false));
        assert!(!subject_is_valid("foo bar", true));
        assert!(!subject_is_valid("", true));
    }

    #[test]
    fn import_subjects_must_fall_inside_the_export() {
        assert!(subject_is_subset("events.a", "events.>"));
        assert!(subject_is_subset("events.>", "events.>"));
        assert!(subject_is_subset("events.*", ">"));
        assert!(subject_is_subset("a.b", "a.*"));
        assert!(!subject_is_subset("a.>", "a.*"));
        assert!(!subject_is_subset("events", "events.>"));
        assert!(!subject_is_subset("api.secret", "api.public"));
    }

    #[test]
    fn transform_indexes_are_checked_against_source_wildcards() {
        assert!(check_transform("orders.*", "orders.{{wildcard(1)}}.v2").is_ok());
        assert!(check_transform("orders.*", "orders.{{wildcard(2)}}").is_err());
        assert!(check_transform("a.*.*", "b.$2.$1").is_ok());
        assert!(check_transform("a.*", "b.$2").is_err());
        assert!(check_transform("a.*", "b.{{partition(10,1)}}").is_ok());
        assert!(check_transform("a.*", "b.{{bogus(1)}}").is_err());
    }
}
