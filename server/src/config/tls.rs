//! `tls { }` blocks (top level, cluster, leafnodes, remotes, websocket, mqtt, gateway).
//! Certificate and key files are opened and checked at load time, as the official
//! server does in `-t`, so a bundle with a missing or mismatched key never starts.

use super::decode::{self, asks_for_something as asks, Fields};
use super::error::{Diagnostic, Diagnostics};
use super::value::{Entry, Node, Pos, Value};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How the TLS handshake is ordered relative to the INFO line.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum HandshakeFirst {
    /// INFO in plain text first, then TLS (the default).
    #[default]
    Off,
    /// TLS first, no plain INFO.
    On,
    /// Wait this long for a ClientHello, then fall back to INFO first.
    Fallback(Duration),
}

#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    pub pos: Option<Pos>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub verify: bool,
    pub verify_and_map: bool,
    pub insecure: bool,
    /// Handshake timeout (default 2 s).
    pub timeout: Option<Duration>,
    pub handshake_first: HandshakeFirst,
    /// SHA-256 fingerprints (lower-case hex) of the only peer certificates accepted.
    pub pinned_certs: Vec<String>,
    pub cipher_suites: Vec<String>,
    pub curve_preferences: Vec<String>,
    pub min_version: Option<String>,
    /// Parsed contents, loaded while reading the config.
    pub loaded: Option<LoadedTls>,
}

/// The certificate chain, key and CA roots a `tls {}` block names.
#[derive(Clone, Debug)]
pub struct LoadedTls {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Option<std::sync::Arc<PrivateKeyDer<'static>>>,
    pub roots: Vec<CertificateDer<'static>>,
}

const TLS_VERSIONS: &[&str] = &["1.0", "1.1", "1.2", "1.3"];

/// The TLS 1.2 `cipher_suites` Canopy serves (rustls with ring), by their Go names.
/// As in nats-server, the list picks the TLS 1.2 suites; TLS 1.3 suites are always on.
pub static TLS12_SUITES: [(&str, rustls::SupportedCipherSuite); 6] = {
    use rustls::crypto::ring::cipher_suite as cs;
    [
        (
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ]
};

/// TLS 1.3 suite names a list may hold: always on, whatever the list says.
const TLS13_SUITES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Suites nats-server accepts that rustls does not implement (CBC modes, static RSA key
/// exchange): refused by name rather than dropped from the list.
const GO_ONLY_CIPHER_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_RC4_128_SHA",
];

/// The `curve_preferences` Canopy serves, by their Go names, used in the order given.
pub static CURVES: [(&str, &dyn rustls::crypto::SupportedKxGroup); 3] = {
    use rustls::crypto::ring::kx_group;
    [
        ("X25519", kx_group::X25519),
        ("CurveP256", kx_group::SECP256R1),
        ("CurveP384", kx_group::SECP384R1),
    ]
};

const GO_ONLY_CURVES: &[&str] = &["CurveP521", "X25519MLKEM768"];

/// A list of names from `known`, in the order written (Go's aliases without the
/// `_SHA256` suffix are read as the full name). A name nats-server knows but rustls
/// cannot serve is refused, naming it; an unknown one is nats-server's error.
fn named_values(
    e: &Entry,
    what: &str,
    known: &[&str],
    go_only: &[&str],
    d: &mut Diagnostics,
) -> Vec<String> {
    let mut out = Vec::new();
    for name in decode::strings(e, d).unwrap_or_default() {
        let full = match name.as_str() {
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
                format!("{name}_SHA256")
            }
            _ => name.clone(),
        };
        if known.contains(&full.as_str()) {
            out.push(full);
        } else if go_only.contains(&full.as_str()) {
            d.push(
                Diagnostic::error(
                    &e.value.pos,
                    format!("{what} \"{name}\" {}", decode::NOT_SUPPORTED),
                )
                .with_help(format!("rustls offers: {}", known.join(", "))),
            );
        } else {
            d.push(
                Diagnostic::error(&e.value.pos, format!("unrecognized {what} {name}"))
                    .with_help(format!("known: {}", known.join(", "))),
            );
        }
    }
    out
}

/// Where a `tls {}` block sits; some keys make sense in only some places.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TlsContext {
    /// A listener: the top level, leafnodes, websocket, mqtt.
    Endpoint,
    /// A leafnode remote: the side that dials.
    Remote,
    /// Routes and gateways, where peers' URLs are known.
    Link,
    /// A remote's HTTP proxy.
    Proxy,
}

pub fn parse_tls(
    node: &Node,
    base: &Path,
    ctx: TlsContext,
    d: &mut Diagnostics,
) -> Option<TlsOptions> {
    let mut f = Fields::of("tls", node, d)?;
    let mut t = TlsOptions {
        pos: Some(node.pos.clone()),
        ..Default::default()
    };
    let path = |s: String| base.join(s);
    let cert_entry = f.take(&["cert_file"]);
    t.cert_file = cert_entry.and_then(|e| decode::string(e, d)).map(path);
    let key_entry = f.take(&["key_file"]);
    t.key_file = key_entry.and_then(|e| decode::string(e, d)).map(path);
    let ca_entry = f.take(&["ca_file"]);
    t.ca_file = ca_entry.and_then(|e| decode::string(e, d)).map(path);
    read_verification(&mut f, &mut t, ctx, d);
    read_handshake(&mut f, &mut t, ctx, d);
    read_pins_and_suites(&mut f, &mut t, &node.pos, d);
    refuse_unserved_keys(&mut f, d);
    let block_pos = f.pos.clone();
    f.finish(d, |_| None);
    t.loaded = Some(check_and_load(&t, &block_pos, cert_entry, ca_entry, d));
    Some(t)
}

/// Whose certificates are checked, and how: `verify`, `verify_and_map`, `insecure` and
/// the keys that make sense in only some places.
fn read_verification(f: &mut Fields, t: &mut TlsOptions, ctx: TlsContext, d: &mut Diagnostics) {
    t.verify = f.bool(&["verify"], d).unwrap_or(false);
    t.verify_and_map = f.bool(&["verify_and_map"], d).unwrap_or(false);
    if let Some(e) = f.take(&["verify_cert_and_check_known_urls"]) {
        let check_urls = decode::boolean(e, d).unwrap_or(false);
        if check_urls && ctx == TlsContext::Link {
            d.push(decode::unsupported(
                e,
                "an accepted route's certificate is verified against ca_file but not matched to the hosts in routes",
            ));
        }
        if ctx != TlsContext::Link {
            d.push(
                Diagnostic::error(
                    &e.key_pos,
                    "verify_cert_and_check_known_urls not supported in this context",
                )
                .with_help("it applies to cluster and gateway tls blocks only"),
            );
        }
    }
    if ctx == TlsContext::Proxy {
        for key in [
            "verify",
            "verify_and_map",
            "pinned_certs",
            "handshake_first",
            "first",
            "immediate",
            "ocsp_peer",
            "connection_rate_limit",
        ] {
            if let Some(e) = f.take(&[key]) {
                d.push(Diagnostic::error(
                    &e.key_pos,
                    format!("\"{key}\" is not supported for proxy TLS"),
                ));
            }
        }
    }
    f.refuse_when(
        &["allow_insecure_cipher_suites"],
        asks,
        "rustls implements no insecure cipher suite to allow",
        d,
    );
    if let Some(e) = f.take(&["insecure"]) {
        t.insecure = decode::boolean(e, d).unwrap_or(false);
        if t.insecure && ctx == TlsContext::Endpoint {
            d.push(decode::unsupported(
                e,
                "insecure skips checking the certificate of a peer this server dials (remotes, routes); a listener dials nobody",
            ));
        }
    }
    if ctx == TlsContext::Remote {
        for keys in [&["verify"][..], &["verify_and_map"]] {
            f.refuse_when(
                keys,
                asks,
                "a remote always verifies its hub (unless insecure); verify asks a listener to check its clients",
                d,
            );
        }
    }
    if ctx == TlsContext::Link {
        f.refuse_when(
            &["verify_and_map"],
            asks,
            "routes log in with cluster { authorization { user, password } }; certificates are verified, not mapped",
            d,
        );
    }
}

/// The handshake's `timeout`, and whether TLS comes before the INFO line.
fn read_handshake(f: &mut Fields, t: &mut TlsOptions, ctx: TlsContext, d: &mut Diagnostics) {
    t.timeout = f.seconds(&["timeout"], d);
    if ctx == TlsContext::Link {
        f.refuse_when(
            &["handshake_first", "first", "immediate"],
            |_| true,
            "routes always start TLS before INFO",
            d,
        );
    }
    if let Some(e) = f.take(&["handshake_first", "first", "immediate"]) {
        t.handshake_first = handshake_first(e, d);
    }
}

/// `handshake_first`: true, false, `auto` (a 50 ms fallback) or the fallback's duration.
fn handshake_first(e: &Entry, d: &mut Diagnostics) -> HandshakeFirst {
    match &e.value.value {
        Value::Bool(true) => HandshakeFirst::On,
        Value::Bool(false) => HandshakeFirst::Off,
        Value::Str(s)
            if s.eq_ignore_ascii_case("auto") || s.eq_ignore_ascii_case("auto_fallback") =>
        {
            HandshakeFirst::Fallback(Duration::from_millis(50))
        }
        Value::Str(s) => match decode::parse_go_duration(s) {
            Ok(dur) => HandshakeFirst::Fallback(dur),
            Err(why) => {
                d.push(
                    Diagnostic::error(
                        &e.value.pos,
                        format!("invalid handshake_first \"{s}\": {why}"),
                    )
                    .with_help("use true, false, auto, or a duration such as \"100ms\""),
                );
                HandshakeFirst::Off
            }
        },
        other => {
            d.push(Diagnostic::error(
                &e.value.pos,
                format!(
                    "expected true, false, auto or a duration for handshake_first, found {}",
                    other.kind()
                ),
            ));
            HandshakeFirst::Off
        }
    }
}

/// Certificate pins, the cipher suites and curves offered, and the lowest TLS version.
fn read_pins_and_suites(f: &mut Fields, t: &mut TlsOptions, pos: &Pos, d: &mut Diagnostics) {
    if let Some(pins) = f.strings(&["pinned_certs"], d) {
        for pin in pins {
            let ok = pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                d.push(
                    Diagnostic::error(
                        pos,
                        format!("pinned_certs entry \"{pin}\" is not a SHA-256 fingerprint"),
                    )
                    .with_help(
                        "give 64 hex characters: the SHA-256 of the certificate's DER bytes",
                    ),
                );
            }
            t.pinned_certs.push(pin.to_ascii_lowercase());
        }
    }
    if let Some(e) = f.take(&["cipher_suites"]) {
        let known: Vec<&str> = TLS12_SUITES
            .iter()
            .map(|(n, _)| *n)
            .chain(TLS13_SUITES)
            .collect();
        t.cipher_suites = named_values(e, "cipher", &known, GO_ONLY_CIPHER_SUITES, d);
    }
    if let Some(e) = f.take(&["curve_preferences"]) {
        let known: Vec<&str> = CURVES.iter().map(|(n, _)| *n).collect();
        t.curve_preferences = named_values(e, "curve preference", &known, GO_ONLY_CURVES, d);
    }
    if let Some(e) = f.take(&["min_version"]) {
        if let Some(v) = decode::string(e, d) {
            if !TLS_VERSIONS.contains(&v.as_str()) {
                d.push(
                    Diagnostic::error(&e.value.pos, format!("unknown TLS min_version \"{v}\""))
                        .with_help("use \"1.2\" or \"1.3\""),
                );
            }
            t.min_version = Some(v);
        }
    }
}

/// Keys nats-server serves and Canopy refuses: rate limits, SNI certificate lists, the
/// Windows certificate store, OCSP.
fn refuse_unserved_keys(f: &mut Fields, d: &mut Diagnostics) {
    if let Some(e) = f.refuse_when(
        &["connection_rate_limit"],
        asks,
        "TLS handshakes are not rate-limited; the server-wide max_connections bounds them",
        d,
    ) {
        decode::int(e, d);
    }
    if let Some(e) = f.take(&["certs", "certificates"]) {
        d.push(decode::unsupported(
            e,
            "one certificate per block is served (cert_file and key_file); no certificate is picked by SNI",
        ));
        for mut c in decode::maps(e, "tls certs entry", d) {
            let cert = c.string(&["cert_file"], d);
            let key = c.string(&["key_file"], d);
            match (cert, key) {
                (Some(_), Some(_)) => {}
                _ => d.push(Diagnostic::error(
                    &c.pos,
                    "a certs entry needs cert_file and key_file",
                )),
            }
            c.finish(d, |_| None);
        }
    }
    if let Some(e) = f.take(&["cert_store"]) {
        d.push(
            Diagnostic::error(
                &e.key_pos,
                "cert_store not compatible with current operating system",
            )
            .with_help(
                "cert_store reads the Windows certificate store; use cert_file and key_file",
            ),
        );
    }
    // The companions of cert_store: Windows certificate-store matching.
    for keys in [
        &["cert_match_by"][..],
        &["cert_match"],
        &["ca_certs_match"],
        &["cert_match_skip_invalid"],
    ] {
        f.refuse_when(
            keys,
            |_| true,
            "it matches certificates in the Windows certificate store; use cert_file and key_file",
            d,
        );
    }
    if let Some(e) = f.take(&["ocsp_peer"]) {
        let asked = match &e.value.value {
            Value::Map(_) => true,
            other => asks(other),
        };
        if asked {
            d.push(decode::unsupported(
                e,
                "peer certificates are not checked for revocation over OCSP",
            ));
        }
        if matches!(e.value.value, Value::Map(_)) {
            decode::known_keys(
                "tls ocsp_peer",
                &e.value,
                &[
                    &["verify"],
                    &["warn_only"],
                    &["unknown_is_good"],
                    &["allow_when_ca_unreachable"],
                    &["ca_timeout"],
                    &["allowed_clockskew"],
                    &["cache_ttl_when_next_update_unset"],
                ],
                d,
            );
        }
    }
}

/// A block names both files of its pair or neither; what it names is loaded now, so a
/// missing or mismatched file is an error at its key.
fn check_and_load(
    t: &TlsOptions,
    block_pos: &Pos,
    cert_entry: Option<&Entry>,
    ca_entry: Option<&Entry>,
    d: &mut Diagnostics,
) -> LoadedTls {
    match (&t.cert_file, &t.key_file) {
        (Some(_), None) => d.push(
            Diagnostic::error(block_pos, "missing 'key_file' in TLS configuration")
                .with_help("a tls block with cert_file needs the matching key_file"),
        ),
        (None, Some(_)) => d.push(
            Diagnostic::error(block_pos, "missing 'cert_file' in TLS configuration")
                .with_help("a tls block with key_file needs the matching cert_file"),
        ),
        _ => {}
    }
    let at = |e: Option<&Entry>| e.map(|e| e.key_pos.clone()).unwrap_or(block_pos.clone());
    let mut loaded = LoadedTls {
        chain: Vec::new(),
        key: None,
        roots: Vec::new(),
    };
    if let (Some(cert), Some(key)) = (&t.cert_file, &t.key_file) {
        match load_pair(cert, key) {
            Ok((chain, key)) => {
                loaded.chain = chain;
                loaded.key = Some(std::sync::Arc::new(key));
            }
            Err(why) => d.push(
                Diagnostic::error(&at(cert_entry), format!("error parsing X509 certificate/key pair: {why}"))
                    .with_help("check the paths (relative paths are taken from the working directory, as nats-server does) and that the key belongs to the certificate"),
            ),
        }
    }
    if let Some(ca) = &t.ca_file {
        match load_certs(ca) {
            Ok(roots) => loaded.roots = roots,
            Err(why) => d.push(
                Diagnostic::error(
                    &at(ca_entry),
                    format!("error parsing root certificate: {why}"),
                )
                .with_help("ca_file must name a PEM file holding at least one CERTIFICATE"),
            ),
        }
    }
    loaded
}
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM CERTIFICATE found", path.display()));
    }
    Ok(certs)
}

fn load_pair(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = load_certs(cert)?;
    let key_bytes = std::fs::read(key).map_err(|e| format!("open {}: {e}", key.display()))?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_bytes)
        .map_err(|e| format!("{}: no private key found ({e})", key.display()))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| format!("{}: unsupported private key: {e}", key.display()))?;
    let certified = rustls::sign::CertifiedKey::new(chain.clone(), signer);
    match certified.keys_match() {
        Ok(()) => Ok((chain, key_der)),
        Err(rustls::Error::InconsistentKeys(_)) => Err(format!(
            "private key {} does not match public key in {}",
            key.display(),
            cert.display()
        )),
        // Key types whose public key rustls cannot derive are taken on trust.
        Err(_) => Ok((chain, key_der)),
    }
}

/// Load what a `TlsOptions` built outside a config file names (the `--tls*` flags).
pub fn load_files(t: &TlsOptions) -> Result<LoadedTls, String> {
    let mut loaded = LoadedTls {
        chain: Vec::new(),
        key: None,
        roots: Vec::new(),
    };
    match (&t.cert_file, &t.key_file) {
        (Some(cert), Some(key)) => {
            let (chain, key) = load_pair(cert, key)
                .map_err(|e| format!("error parsing X509 certificate/key pair: {e}"))?;
            loaded.chain = chain;
            loaded.key = Some(std::sync::Arc::new(key));
        }
        (None, None) => {}
        _ => return Err("TLS needs both a certificate and a key (--tlscert and --tlskey)".into()),
    }
    if let Some(ca) = &t.ca_file {
        loaded.roots =
            load_certs(ca).map_err(|e| format!("error parsing root certificate: {e}"))?;
    }
    Ok(loaded)
}
