//! The small values the blocks share: listen addresses, URLs, link compression
//! modes and the write-timeout policy. They sit below every block that reads them
//! (the top level, `cluster`, `leafnodes` and the unserved listeners).

use super::decode::{self, Fields};
use super::error::{Diagnostic, Diagnostics};
use super::value::{Entry, Pos, Value};

/// `"host:port"`, `":port"` or a bare port number.
pub fn parse_listen(e: &Entry, d: &mut Diagnostics) -> Option<(Option<String>, i64)> {
    match &e.value.value {
        Value::Int(p) => Some((None, *p)),
        Value::Str(s) => {
            let Some((host, port)) = s.rsplit_once(':') else {
                d.push(
                    Diagnostic::error(&e.value.pos, format!("could not parse address \"{s}\""))
                        .with_help(format!("write {}: \"host:port\" or a port number", e.key)),
                );
                return None;
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            match port.parse::<i64>() {
                Ok(p) => Some(((!host.is_empty()).then(|| host.to_string()), p)),
                Err(_) => {
                    d.push(
                        Diagnostic::error(&e.value.pos, format!("could not parse port \"{port}\""))
                            .with_help(format!("write {}: \"host:port\" or a port number", e.key)),
                    );
                    None
                }
            }
        }
        other => {
            d.push(Diagnostic::error(
                &e.value.pos,
                format!(
                    "expected \"host:port\" or a port for \"{}\", found {}",
                    e.key,
                    other.kind()
                ),
            ));
            None
        }
    }
}

/// `scheme://[user[:pass]@]host[:port][/path]` with a numeric port when one is given.
pub fn check_url(url: &str) -> Result<(), String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Err("missing scheme (e.g. nats://)".into());
    };
    let authority = rest.split('/').next().unwrap_or("");
    let hostport = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let port = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split_once(']')
            .map(|(_, p)| p.trim_start_matches(':'))
            .unwrap_or("")
    } else {
        hostport.rsplit_once(':').map(|(_, p)| p).unwrap_or("")
    };
    if !port.is_empty() && port.parse::<u16>().is_err() {
        return Err(format!("invalid port \"{port}\""));
    }
    if hostport.is_empty() {
        return Err("missing host".into());
    }
    Ok(())
}

/// Compression of route and leaf links, as written. Only `off` is served: any other
/// mode is refused where the block is read, and the mode is kept so that start-up
/// checks its name as nats-server does (`Options::check_startup`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compression {
    pub mode: String,
}

pub const COMPRESSION_MODES: &[&str] = &[
    "off",
    "accept",
    "s2_fast",
    "s2_better",
    "s2_best",
    "s2_auto",
    "s2_uncompressed",
];

impl Compression {
    /// Whether this asks for no compression at all, the only mode Canopy serves.
    pub fn is_off(&self) -> bool {
        matches!(self.mode.as_str(), "off" | "disabled" | "false" | "")
    }

    pub fn parse(e: &Entry, d: &mut Diagnostics) -> Option<Compression> {
        let mode = |m: &str| Compression {
            mode: m.to_string(),
        };
        match &e.value.value {
            Value::Bool(true) => Some(mode("s2_auto")),
            Value::Bool(false) => Some(mode("off")),
            Value::Str(s) => Some(mode(&s.to_ascii_lowercase())),
            Value::Map(_) => {
                let mut f = Fields::of("compression", &e.value, d)?;
                let m = f.string(&["mode"], d).unwrap_or_else(|| "s2_auto".into());
                let c = mode(&m.to_ascii_lowercase());
                if let Some(t) = f.take(&["rtt_thresholds", "thresholds", "rtts", "rtt"]) {
                    for s in decode::strings(t, d).unwrap_or_default() {
                        if let Err(why) = decode::parse_go_duration(&s) {
                            d.push(Diagnostic::error(
                                &t.value.pos,
                                format!("invalid rtt threshold \"{s}\": {why}"),
                            ));
                        }
                    }
                    // With any other mode the compression itself is refused.
                    if c.is_off() {
                        d.push(decode::unsupported(
                            t,
                            "rtt_thresholds pick an S2 level, and S2 is not served",
                        ));
                    }
                }
                f.finish(d, |_| None);
                Some(c)
            }
            other => {
                d.push(Diagnostic::error(
                    &e.value.pos,
                    format!(
                        "expected a mode, a boolean or a block for compression, found {}",
                        other.kind()
                    ),
                ));
                None
            }
        }
    }

    /// The official server accepts any string at config-check time and refuses an
    /// unknown mode only at startup; so do we.
    pub fn check(&self, pos: Option<&Pos>) -> Result<(), Diagnostic> {
        if COMPRESSION_MODES.contains(&self.mode.as_str()) {
            return Ok(());
        }
        let msg = format!("unsupported compression mode \"{}\"", self.mode);
        let help = "use off, accept, s2_fast, s2_better, s2_best or s2_auto";
        Err(match pos {
            Some(p) => Diagnostic::error(p, msg),
            None => Diagnostic::file(msg),
        }
        .with_help(help))
    }
}

/// `write_timeout`: nats-server's policy names, checked with its words.
pub fn write_timeout_policy(e: &Entry, d: &mut Diagnostics) -> Option<String> {
    let v = decode::string(e, d)?.to_ascii_lowercase();
    if !matches!(v.as_str(), "default" | "close" | "retry") {
        d.push(Diagnostic::error(
            &e.key_pos,
            "write_timeout must be 'default', 'close' or 'retry'",
        ));
        return None;
    }
    Some(v)
}
