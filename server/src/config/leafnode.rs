//! `leafnodes { }`: the leaf listener (hub side) and the `remotes` a server dials (leaf side).

use super::auth::{self, AuthBlock, Authorization};
use super::decode::{self, Fields};
use super::error::{Diagnostic, Diagnostics};
use super::net::{self, parse_listen, Compression};
use super::tls::{self, TlsOptions};
use super::value::{Entry, Node, Pos};
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct LeafNodes {
    pub pos: Option<Pos>,
    pub host: Option<String>,
    pub port: Option<i64>,
    pub authorization: Option<Authorization>,
    pub remotes: Vec<Remote>,
    /// Delay between reconnect attempts, for every remote (default 1 s).
    pub reconnect_delay: Option<Duration>,
    pub dial_timeout: Option<Duration>,
    pub tls: Option<TlsOptions>,
    pub advertise: Option<String>,
    pub no_advertise: bool,
    pub min_version: Option<String>,
    /// Checked at start (mode names); only `off` is accepted.
    pub compression: Option<Compression>,
}

#[derive(Clone, Debug, Default)]
pub struct Remote {
    pub pos: Option<Pos>,
    pub urls: Vec<String>,
    /// The local account bound to this remote (default `$G`).
    pub account: Option<String>,
    pub nkey: Option<String>,
    pub tls: Option<TlsOptions>,
    pub deny_imports: Vec<String>,
    pub deny_exports: Vec<String>,
    pub no_randomize: bool,
    pub first_info_timeout: Option<Duration>,
    pub dial_timeout: Option<Duration>,
    pub ignore_discovered_servers: bool,
    pub disabled: bool,
    /// Checked at start (mode names); only `off` is accepted.
    pub compression: Option<Compression>,
}

/// The seed article's invented options, and where the real ones live.
fn remote_hint(key: &str) -> Option<String> {
    Some(match key {
        "reconnect_interval" | "reconnect_delay" => {
            "reconnect delay is not set per remote: put `reconnect: \"5s\"` in the leafnodes { } block (it applies to every remote)".into()
        }
        "reconnect" => "remotes always reconnect; to set the delay, put `reconnect: \"5s\"` in the leafnodes { } block".into(),
        "connect_timeout" => "there is no connect_timeout: use `dial_timeout` (TCP dial) or `first_info_timeout` (wait for the hub's INFO) in the remote, or `timeout` in its tls { } block".into(),
        "account_mappings" | "mappings" => "remotes cannot remap subjects: use `mappings { }` in the account (or at top level); they apply to all traffic of that account".into(),
        "reconnect_buffer_size" => "the server has no reconnect buffer (that is a client-library option): remove it".into(),
        "user" | "password" | "username" | "pass" => "put credentials in the URL (nats-leaf://user:pass@host:7422) or sign in with `nkey: \"SU...\"` (a user seed)".into(),
        "local_account" => "the key is `account` (alias `local`)".into(),
        "deny_import" | "deny_export" => return None,
        _ => return None,
    })
}

fn leafnodes_hint(key: &str) -> Option<String> {
    Some(match key {
        "reconnect_buffer_size" => "the server has no reconnect buffer (that is a client-library option): remove it; messages published while a leaf is disconnected are kept only in JetStream streams".into(),
        "connect_timeout" => "there is no connect_timeout: use `dial_timeout` here or in a remote".into(),
        "url" | "urls" => "URLs belong to a remote: remotes: [ { urls: [...] } ]".into(),
        _ => return None,
    })
}

const URL_SCHEMES: &[&str] = &["nats-leaf", "nats", "tls", "ws", "wss"];

pub fn parse_leafnodes(node: &Node, base: &Path, d: &mut Diagnostics) -> Option<LeafNodes> {
    let mut f = Fields::of("leafnodes", node, d)?;
    let mut l = LeafNodes {
        pos: Some(node.pos.clone()),
        ..Default::default()
    };
    if let Some(e) = f.take(&["listen"]) {
        if let Some((h, p)) = parse_listen(e, d) {
            l.host = h;
            l.port = Some(p);
        }
    }
    if let Some(p) = f.int(&["port"], d) {
        l.port = Some(p);
    }
    if let Some(h) = f.string(&["host", "net"], d) {
        l.host = Some(h);
    }
    if let Some(e) = f.take(&["authorization"]) {
        l.authorization = auth::parse_authorization(&e.value, AuthBlock::Leafnodes, d);
    }
    if let Some(e) = f.take(&["remotes"]) {
        for mut r in decode::maps(e, "leafnodes remote", d) {
            l.remotes.push(parse_remote(&mut r, base, d));
            r.finish(d, remote_hint);
        }
    }
    l.reconnect_delay = f.duration(&["reconnect", "reconnect_delay", "reconnect_interval"], d);
    l.dial_timeout = f.duration(&["dial_timeout"], d);
    if let Some(e) = f.take(&["tls"]) {
        l.tls = tls::parse_tls(&e.value, base, tls::TlsContext::Endpoint, d);
        refuse_handshake_fallback(l.tls.as_ref(), e, d);
    }
    l.advertise = f.string(&["leafnode_advertise", "advertise"], d);
    l.no_advertise = f.bool(&["no_advertise"], d).unwrap_or(false);
    if let Some(e) = f.take(&["min_version", "minimum_version"]) {
        l.min_version = decode::string(e, d);
        if let Some(v) = &l.min_version {
            match semver(v) {
                None => d.push(
                    Diagnostic::error(
                        &e.value.pos,
                        "invalid leafnode's minimum version: invalid semver",
                    )
                    .with_help("write a version such as \"2.10.0\""),
                ),
                Some(v) if v < (2, 8, 0) => d.push(Diagnostic::error(
                    &e.value.pos,
                    "the minimum version should be at least 2.8.0",
                )),
                Some(_) => {}
            }
        }
    }
    if let Some(e) = f.take(&["compression"]) {
        l.compression = refuse_compression(e, d);
    }
    refuse_isolation(&mut f, d);
    f.refuse_when(
        &["write_deadline"],
        |_| true,
        "leaf links use the server's own write_deadline; set it at the top level",
        d,
    );
    if let Some(e) = f.take(&["write_timeout"]) {
        if net::write_timeout_policy(e, d).is_some_and(|p| p == "retry") {
            d.push(decode::unsupported(
                e,
                "a leaf link that misses write_deadline is closed (write_timeout: close), never retried",
            ));
        }
    }
    f.finish(d, leafnodes_hint);
    Some(l)
}

fn parse_remote(f: &mut Fields, base: &Path, d: &mut Diagnostics) -> Remote {
    let mut r = Remote {
        pos: Some(f.pos.clone()),
        ..Default::default()
    };
    if let Some(e) = f.take(&["url", "urls"]) {
        r.urls = decode::strings(e, d).unwrap_or_default();
        for u in &r.urls {
            check_remote_url(u, e, d);
        }
    }
    if r.urls.is_empty() {
        // nats-server accepts this and the remote never connects; say so instead.
        d.push(
            Diagnostic::error(&f.pos, "leafnode remote has no URL to dial")
                .with_help("add `url: \"nats-leaf://HUB:7422\"` or `urls: [ ... ]` to the remote"),
        );
    }
    read_credentials(f, &mut r, d);
    if let Some(e) = f.take(&["tls"]) {
        r.tls = tls::parse_tls(&e.value, base, tls::TlsContext::Remote, d);
        refuse_handshake_fallback(r.tls.as_ref(), e, d);
    }
    f.refuse_when(
        &["hub"],
        decode::asks_for_something,
        "a remote always dials up to its hub; to make this server the hub, give it a leafnodes listener and let the other side dial",
        d,
    );
    r.deny_imports = f
        .strings(&["deny_imports", "deny_import"], d)
        .unwrap_or_default();
    r.deny_exports = f
        .strings(&["deny_exports", "deny_export"], d)
        .unwrap_or_default();
    r.no_randomize = f
        .bool(&["no_randomize", "dont_randomize"], d)
        .unwrap_or(false);
    r.first_info_timeout = f.duration(&["first_info_timeout"], d);
    r.dial_timeout = f.duration(&["dial_timeout"], d);
    if let Some(e) = f.take(&["compression"]) {
        r.compression = refuse_compression(e, d);
    }
    r.ignore_discovered_servers = f.bool(&["ignore_discovered_servers"], d).unwrap_or(false);
    r.disabled = f.bool(&["disabled"], d).unwrap_or(false);
    refuse_isolation(f, d);
    f.refuse_when(
        &[
            "ws_compression",
            "ws_compress",
            "websocket_compression",
            "websocket_compress",
        ],
        decode::asks_for_something,
        "remotes dial over TCP, not websocket",
        d,
    );
    f.refuse_when(
        &["ws_no_masking", "websocket_no_masking"],
        decode::asks_for_something,
        "remotes dial over TCP, not websocket",
        d,
    );
    f.refuse_when(
        &["request_isolation"],
        decode::asks_for_something,
        "requests from this leaf are not isolated from the hub's other leafs",
        d,
    );
    f.refuse_when(
        &["jetstream_cluster_migrate", "js_cluster_migrate"],
        decode::asks_for_something,
        "JetStream is not served",
        d,
    );
    if let Some(e) = f.take(&["proxy"]) {
        refuse_proxy(e, base, d);
    }
    r
}

/// One of a remote's URLs: a scheme Canopy dials, and a host and port it can read.
fn check_remote_url(u: &str, e: &Entry, d: &mut Diagnostics) {
    let scheme = u.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme {
        Some(s) if s == "ws" || s == "wss" => d.push(
            Diagnostic::error(
                &e.value.pos,
                format!(
                    "websocket leafnode remote \"{u}\" {}",
                    decode::NOT_SUPPORTED
                ),
            )
            .with_help("dial the hub's leafnode port: nats-leaf://HUB:7422 (tls:// for TLS)"),
        ),
        Some(s) if URL_SCHEMES.contains(&s.as_str()) => {
            if let Err(why) = net::check_url(u) {
                d.push(Diagnostic::error(
                    &e.value.pos,
                    format!("error parsing leafnode url \"{u}\": {why}"),
                ));
            }
        }
        Some(s) => d.push(
            Diagnostic::error(
                &e.value.pos,
                format!("unsupported URL scheme \"{s}\" in leafnode remote {u}"),
            )
            .with_help("use nats-leaf://, nats://, tls://, ws:// or wss://"),
        ),
        None => d.push(
            Diagnostic::error(
                &e.value.pos,
                format!("leafnode remote URL \"{u}\" has no scheme"),
            )
            .with_help(format!("write nats-leaf://{u}")),
        ),
    }
}

/// The local account the remote binds, and how it signs in: a user nkey seed (a
/// `.creds` file is refused).
fn read_credentials(f: &mut Fields, r: &mut Remote, d: &mut Diagnostics) {
    r.account = f.string(&["account", "local"], d);
    if f.has(&["credentials", "creds"]) && f.has(&["nkey", "seed"]) {
        d.push(Diagnostic::error(
            &f.pos,
            "a remote takes credentials or nkey, not both",
        ));
    }
    f.refuse(
        &["credentials", "creds"],
        "a .creds file carries a user JWT, and JWT/operator mode is not served; sign in with `nkey: \"SU...\"` (a user seed) or a user and password in the URL",
        d,
    );
    if let Some(e) = f.take(&["nkey", "seed"]) {
        r.nkey = decode::string(e, d);
        if let Some(seed) = &r.nkey {
            if nkeys::KeyPair::from_seed(seed).map_or(true, |k| !k.public_key().starts_with('U')) {
                d.push(
                    Diagnostic::error(&e.value.pos, "not a user nkey seed")
                        .with_help("a remote's nkey is the leaf user's seed (58 characters starting with SU); the hub's leafnodes authorization names its public key (U...)"),
                );
                r.nkey = None;
            }
        }
    }
}

/// A remote's `proxy { }`: checked as nats-server checks it, then refused.
fn refuse_proxy(e: &Entry, base: &Path, d: &mut Diagnostics) {
    if let Some(mut p) = Fields::of("remote proxy", &e.value, d) {
        let url = p.string(&["url"], d);
        let user = p.string(&["username"], d);
        let pass = p.string(&["password"], d);
        p.duration(&["timeout"], d);
        if let Some(t) = p.take(&["tls"]) {
            if !url.as_deref().is_some_and(|u| u.starts_with("https://")) {
                d.push(Diagnostic::error(
                    &t.key_pos,
                    "proxy TLS configuration requires an https proxy URL",
                ));
            }
            tls::parse_tls(&t.value, base, tls::TlsContext::Proxy, d);
        }
        if user.is_some() != pass.is_some() {
            d.push(Diagnostic::error(
                &p.pos,
                "proxy username and password must both be specified or both be empty",
            ));
        }
        p.finish(d, |_| None);
    }
    d.push(decode::unsupported(
        e,
        "remotes dial the hub directly, never through an HTTP proxy; open the route to the hub, or run nats-server for this leaf",
    ));
}
/// `major.minor.patch` (any `-pre` or `+build` suffix ignored), for
/// `leafnodes { min_version }` and a leaf's CONNECT version.
pub fn semver(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next()??;
    parts.next().is_none().then_some((major, minor, patch))
}

/// A compression setting, refused unless it is `off`: links negotiate no compression
/// with every peer until S2 is served.
fn refuse_compression(e: &Entry, d: &mut Diagnostics) -> Option<Compression> {
    let c = Compression::parse(e, d);
    if c.as_ref().is_some_and(|m| !m.is_off()) {
        d.push(decode::unsupported(
            e,
            "S2 compression is not served yet: leaf links run uncompressed (write compression: off)",
        ));
    }
    c
}

fn refuse_isolation(f: &mut Fields, d: &mut Diagnostics) {
    f.refuse_when(
        &["isolate_leafnode_interest", "isolate"],
        decode::asks_for_something,
        "interest learned from one leaf is passed to the account's other leafs",
        d,
    );
}

/// `handshake_first: auto` (or a duration) waits for a ClientHello and falls back to
/// INFO first; only the client port does that. Leaf links take true or false.
fn refuse_handshake_fallback(t: Option<&TlsOptions>, e: &Entry, d: &mut Diagnostics) {
    if t.is_some_and(|t| matches!(t.handshake_first, tls::HandshakeFirst::Fallback(_))) {
        d.push(
            Diagnostic::error(
                &e.key_pos,
                format!(
                    "handshake_first with a fallback on leaf links {}",
                    decode::NOT_SUPPORTED
                ),
            )
            .with_help("write handshake_first: true (TLS before INFO, both ends) or false"),
        );
    }
}
