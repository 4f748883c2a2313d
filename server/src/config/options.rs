//! The typed server options, read from the top-level map with the official server's
//! key names, aliases and defaults.

use super::accounts::{self, Account, Mapping};
use super::auth::{self, AuthBlock, Authorization};
use super::cluster::{self, Cluster};
use super::decode::{self, asks_for_something as asks, Fields};
use super::error::{Diagnostic, Diagnostics};
use super::jetstream::{self, JetStream};
use super::leafnode::{self, LeafNodes};
use super::net::{parse_listen, write_timeout_policy};
use super::tls::{self, TlsOptions};
use super::unserved;
use super::value::{Map, Node, Pos, Value};
use std::path::Path;
use std::time::Duration;

pub const DEFAULT_PORT: i64 = 4222;
pub const DEFAULT_HOST: &str = "0.0.0.0";
pub const DEFAULT_MAX_CONTROL_LINE: i64 = 4096;
pub const DEFAULT_MAX_PAYLOAD: i64 = 1024 * 1024;
pub const MAX_PAYLOAD_LIMIT: i64 = 8 * 1024 * 1024;
pub const DEFAULT_MAX_PENDING: i64 = 64 * 1024 * 1024;
pub const DEFAULT_MAX_CONNECTIONS: i64 = 64 * 1024;
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(120);
pub const DEFAULT_PING_MAX: i64 = 2;
pub const DEFAULT_WRITE_DEADLINE: Duration = Duration::from_secs(10);
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_LAME_DUCK_DURATION: Duration = Duration::from_secs(120);
pub const DEFAULT_LAME_DUCK_GRACE: Duration = Duration::from_secs(10);
pub const MIN_LAME_DUCK_DURATION: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_CLOSED_CLIENTS: i64 = 10_000;

/// An HTTP monitoring listener: `http: "host:port"`, `http: 8222` or `http_port: 8222`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpListen {
    pub host: Option<String>,
    pub port: i64,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub config_file: Option<std::path::PathBuf>,
    pub server_name: Option<String>,
    pub host: String,
    pub port: i64,
    pub client_advertise: Option<String>,

    pub debug: bool,
    pub trace: bool,
    pub logtime: bool,
    pub logtime_utc: bool,
    pub log_file: Option<String>,
    pub log_size_limit: Option<i64>,
    pub log_max_num: Option<i64>,
    pub pid_file: Option<String>,
    pub ports_file_dir: Option<String>,

    pub http: Option<HttpListen>,
    pub https: Option<HttpListen>,
    pub http_base_path: Option<String>,

    pub max_control_line: i64,
    pub max_payload: i64,
    pub max_pending: i64,
    pub max_connections: i64,
    pub max_subscriptions: i64,
    pub max_sub_tokens: i64,
    pub max_closed_clients: i64,
    pub ping_interval: Duration,
    pub ping_max: i64,
    pub write_deadline: Duration,
    pub lame_duck_duration: Duration,
    pub lame_duck_grace_period: Duration,
    pub no_header_support: bool,
    pub no_fast_producer_stall: bool,
    pub connect_error_reports: Option<i64>,
    pub reconnect_error_reports: Option<i64>,

    pub tls: Option<TlsOptions>,
    pub allow_non_tls: bool,
    pub authorization: Option<Authorization>,
    pub accounts: Vec<Account>,
    pub system_account: Option<String>,
    pub no_system_account: bool,
    pub no_auth_user: Option<String>,
    pub mappings: Vec<Mapping>,

    pub cluster: Option<Cluster>,
    pub leafnodes: Option<LeafNodes>,
    pub jetstream: Option<JetStream>,
    pub store_dir: Option<String>,

    pub server_tags: Vec<String>,
    pub server_metadata: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config_file: None,
            server_name: None,
            host: DEFAULT_HOST.into(),
            port: DEFAULT_PORT,
            client_advertise: None,
            debug: false,
            trace: false,
            logtime: true,
            logtime_utc: false,
            log_file: None,
            log_size_limit: None,
            log_max_num: None,
            pid_file: None,
            ports_file_dir: None,
            http: None,
            https: None,
            http_base_path: None,
            max_control_line: DEFAULT_MAX_CONTROL_LINE,
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_pending: DEFAULT_MAX_PENDING,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_subscriptions: 0,
            max_sub_tokens: 0,
            max_closed_clients: DEFAULT_MAX_CLOSED_CLIENTS,
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_max: DEFAULT_PING_MAX,
            write_deadline: DEFAULT_WRITE_DEADLINE,
            lame_duck_duration: DEFAULT_LAME_DUCK_DURATION,
            lame_duck_grace_period: DEFAULT_LAME_DUCK_GRACE,
            no_header_support: false,
            no_fast_producer_stall: false,
            connect_error_reports: None,
            reconnect_error_reports: None,
            tls: None,
            allow_non_tls: false,
            authorization: None,
            accounts: Vec::new(),
            system_account: None,
            no_system_account: false,
            no_auth_user: None,
            mappings: Vec::new(),
            cluster: None,
            leafnodes: None,
            jetstream: None,
            store_dir: None,
            server_tags: Vec::new(),
            server_metadata: Vec::new(),
        }
    }
}

fn top_level_hint(key: &str) -> Option<String> {
    Some(match key {
        "remotes" => "remotes go inside leafnodes { remotes: [ ... ] }".into(),
        "routes" => "routes go inside cluster { routes: [ ... ] }".into(),
        "users" => "users go inside authorization { users: [ ... ] } or an account".into(),
        "user" | "password" | "token" => "credentials go inside authorization { }".into(),
        "leafnode" => "the block is leafnodes { } (or leaf { })".into(),
        "clusters" => "the block is cluster { }".into(),
        "account_mappings" => "the key is mappings { } (top level, or inside an account)".into(),
        "reconnect_buffer_size" => {
            "the server has no reconnect buffer (that is a client-library option): remove it".into()
        }
        "monitor" | "monitoring" => "use http_port: 8222 or http: \"host:8222\"".into(),
        "log" => "the key is logfile (or log_file)".into(),
        _ => return None,
    })
}

impl Options {
    /// Read typed options from a parsed top-level map. `base` is the directory that
    /// relative certificate paths are taken from (the official server uses the
    /// process's working directory).
    pub fn from_map(map: &Map, pos: &Pos, base: &Path, d: &mut Diagnostics) -> Options {
        let mut o = Options::default();
        let mut f = Fields::new("the top level", map, pos);

        o.read_identity(&mut f, pos, d);
        o.read_logging(&mut f, d);
        o.read_monitoring(&mut f, d);
        o.read_limits(&mut f, d);
        o.read_security(&mut f, base, d);
        o.read_blocks(&mut f, base, d);
        unserved::parse_unserved(&mut f, base, d);
        f.finish(d, top_level_hint);
        o.check(pos, d);
        o
    }

    /// The client listener (`listen`, `port`, `host`), the URL it is advertised as, and
    /// the server's name.
    fn read_identity(&mut self, f: &mut Fields, pos: &Pos, d: &mut Diagnostics) {
        if let Some(e) = f.take(&["listen"]) {
            if let Some((h, p)) = parse_listen(e, d) {
                if let Some(h) = h {
                    self.host = h;
                }
                self.port = p;
            }
        }
        if let Some(p) = f.int(&["port"], d) {
            self.port = p;
        }
        if let Some(h) = f.string(&["host", "net"], d) {
            self.host = h;
        }
        self.client_advertise = f.string(&["client_advertise"], d);
        self.server_name = f.string(&["server_name"], d);
        if let Some(name) = &self.server_name {
            if name.contains(char::is_whitespace) {
                d.push(Diagnostic::error(
                    pos,
                    format!("server_name \"{name}\" cannot contain spaces"),
                ));
            }
        }
    }

    /// Logging and tracing, and the files the server writes (pid, ports); the Go
    /// profiler's keys are refused.
    fn read_logging(&mut self, f: &mut Fields, d: &mut Diagnostics) {
        self.debug = f.bool(&["debug"], d).unwrap_or(self.debug);
        self.trace = f.bool(&["trace"], d).unwrap_or(self.trace);
        f.refuse_when(
            &["trace_verbose"],
            decode::asks_for_something,
            "the system account's own traffic is not traced; write trace: true",
            d,
        );
        f.refuse_when(
            &["trace_headers"],
            asks,
            "-V traces protocol lines; message headers and payloads are never traced",
            d,
        );
        f.refuse_when(
            &["max_traced_msg_len"],
            asks,
            "-V never traces payloads, so there is nothing to cut",
            d,
        );
        self.logtime = f.bool(&["logtime"], d).unwrap_or(self.logtime);
        self.logtime_utc = f.bool(&["logtime_utc"], d).unwrap_or(false);
        self.log_file = f.string(&["logfile", "log_file"], d);
        self.log_size_limit = f.int(&["logfile_size_limit", "log_size_limit"], d);
        self.log_max_num = f.int(&["logfile_max_num", "log_max_num"], d);
        f.refuse_when(
            &["syslog"],
            asks,
            "logs go to stderr or the logfile; let systemd-journald or the container runtime collect them",
            d,
        );
        f.refuse_when(
            &["remote_syslog"],
            asks,
            "logs go to stderr or the logfile; ship them from there",
            d,
        );
        self.pid_file = f.string(&["pidfile", "pid_file"], d);
        self.ports_file_dir = f.string(&["ports_file_dir"], d);
        for keys in [&["prof_port"][..], &["prof_block_rate"]] {
            f.refuse_when(
                keys,
                asks,
                "there is no Go profiler to serve; profile canopy-server with perf",
                d,
            );
        }
    }

    /// The HTTP(S) monitoring listeners and the path their pages are served under.
    fn read_monitoring(&mut self, f: &mut Fields, d: &mut Diagnostics) {
        if let Some(e) = f.take(&["http"]) {
            self.http = parse_listen(e, d).map(|(host, port)| HttpListen { host, port });
        }
        if let Some(p) = f.int(&["http_port", "monitor_port"], d) {
            self.http = Some(HttpListen {
                host: self.http.take().and_then(|h| h.host),
                port: p,
            });
        }
        if let Some(e) = f.take(&["https"]) {
            self.https = parse_listen(e, d).map(|(host, port)| HttpListen { host, port });
        }
        if let Some(p) = f.int(&["https_port"], d) {
            self.https = Some(HttpListen {
                host: self.https.take().and_then(|h| h.host),
                port: p,
            });
        }
        if let Some(e) = f.take(&["http_base_path"]) {
            self.http_base_path = decode::string(e, d);
            // Pages are routed under it: a segment the router would read as a pattern
            // (`:name`, `*rest`, `{x}`) cannot be served as written.
            if self.http_base_path.as_deref().is_some_and(|p| {
                p.split('/').any(|seg| {
                    seg.starts_with(':') || seg.starts_with('*') || seg.contains(['{', '}'])
                })
            }) {
                d.push(
                    decode::unsupported(e, "monitoring pages are served under a literal path")
                        .with_help("write a plain path such as /nats"),
                );
            }
        }
    }

    /// Connection limits, pings, write deadlines, lame duck and dial error reports.
    fn read_limits(&mut self, f: &mut Fields, d: &mut Diagnostics) {
        self.max_control_line = f
            .int(&["max_control_line"], d)
            .unwrap_or(self.max_control_line);
        self.max_payload = f.int(&["max_payload"], d).unwrap_or(self.max_payload);
        self.max_pending = f.int(&["max_pending"], d).unwrap_or(self.max_pending);
        self.max_connections = f
            .int(&["max_connections", "max_conn"], d)
            .unwrap_or(self.max_connections);
        self.max_subscriptions = f.int(&["max_subscriptions", "max_subs"], d).unwrap_or(0);
        self.max_sub_tokens = f
            .int(&["max_sub_tokens", "max_subscription_tokens"], d)
            .unwrap_or(0);
        self.max_closed_clients = f
            .int(&["max_closed_clients"], d)
            .unwrap_or(self.max_closed_clients);
        self.ping_interval = f
            .duration(&["ping_interval"], d)
            .unwrap_or(self.ping_interval);
        self.ping_max = f.int(&["ping_max"], d).unwrap_or(self.ping_max);
        self.write_deadline = f
            .duration(&["write_deadline"], d)
            .unwrap_or(self.write_deadline);
        if let Some(e) = f.take(&["write_timeout"]) {
            if write_timeout_policy(e, d).is_some_and(|p| p == "retry") {
                d.push(decode::unsupported(
                    e,
                    "a client past write_deadline is closed as a slow consumer (write_timeout: close)",
                ));
            }
        }
        if let Some(e) = f.take(&["lame_duck_duration"]) {
            if let Some(dur) = decode::duration(e, d) {
                if dur < MIN_LAME_DUCK_DURATION {
                    d.push(
                        Diagnostic::error(
                            &e.key_pos,
                            format!(
                                "invalid lame_duck_duration of {}, minimum is 30 seconds",
                                fmt_duration(dur)
                            ),
                        )
                        .with_help("lame_duck_duration: \"30s\" or more"),
                    );
                }
                self.lame_duck_duration = dur;
            }
        }
        self.lame_duck_grace_period = f
            .duration(&["lame_duck_grace_period"], d)
            .unwrap_or(self.lame_duck_grace_period);
        self.no_header_support = f.bool(&["no_header_support"], d).unwrap_or(false);
        f.refuse_when(
            &["disable_sublist_cache", "no_sublist_cache"],
            asks,
            "each connection keeps a bounded cache of match results; there is no shared cache to turn off",
            d,
        );
        self.no_fast_producer_stall = f.bool(&["no_fast_producer_stall"], d).unwrap_or(false);
        self.connect_error_reports = f.int(&["connect_error_reports"], d);
        self.reconnect_error_reports = f.int(&["reconnect_error_reports"], d);
    }

    /// TLS, authorization, accounts, the system account and subject mappings.
    fn read_security(&mut self, f: &mut Fields, base: &Path, d: &mut Diagnostics) {
        if let Some(e) = f.take(&["tls"]) {
            self.tls = tls::parse_tls(&e.value, base, tls::TlsContext::Endpoint, d);
        }
        self.allow_non_tls = f.bool(&["allow_non_tls"], d).unwrap_or(false);
        if let Some(e) = f.take(&["authorization"]) {
            self.authorization = auth::parse_authorization(&e.value, AuthBlock::TopLevel, d);
        }
        if let Some(e) = f.take(&["accounts"]) {
            self.accounts = accounts::parse_accounts(&e.value, d);
        }
        self.system_account = f.string(&["system_account", "system"], d);
        self.no_system_account = f
            .bool(&["no_system_account", "no_system", "no_sys_acc"], d)
            .unwrap_or(false);
        self.no_auth_user = f.string(&["no_auth_user"], d);
        if let Some(e) = f.take(&["mappings", "maps"]) {
            self.mappings = accounts::parse_mappings(&e.value, d);
        }
    }

    /// The link blocks (`cluster`, `leafnodes`), JetStream, and the server's tags and
    /// metadata.
    fn read_blocks(&mut self, f: &mut Fields, base: &Path, d: &mut Diagnostics) {
        if let Some(e) = f.take(&["cluster"]) {
            self.cluster = cluster::parse_cluster(&e.value, base, d);
        }
        if let Some(e) = f.take(&["leafnodes", "leaf"]) {
            self.leafnodes = leafnode::parse_leafnodes(&e.value, base, d);
        }
        if let Some(e) = f.take(&["jetstream"]) {
            self.jetstream = jetstream::parse_jetstream(&e.value, d);
        }
        self.store_dir = f.string(&["store_dir", "storedir"], d);
        self.server_tags = f.strings(&["server_tags"], d).unwrap_or_default();
        if let Some(e) = f.take(&["server_metadata"]) {
            self.server_metadata = string_map(&e.value, "server_metadata", d);
        }
    }

    /// Whether the `attempt`-th failed dial in a row (a route or a leaf remote) is
    /// reported at error level, as nats-server reports it: the first, then every
    /// `connect_error_reports`-th (default 3600) while the link never stood, or every
    /// `reconnect_error_reports`-th (default 1) once it had. The rest go to debug.
    pub fn dial_error_reported(&self, attempt: u64, stood_before: bool) -> bool {
        let every = if stood_before {
            self.reconnect_error_reports.unwrap_or(1)
        } else {
            self.connect_error_reports.unwrap_or(3600)
        }
        .max(1) as u64;
        attempt == 1 || attempt.is_multiple_of(every)
    }

    /// Cross-field rules the official server applies while loading (and so in `-t`).
    fn check(&self, pos: &Pos, d: &mut Diagnostics) {
        self.check_users(d);
        accounts::check_imports(&self.accounts, d);
        // The official server keeps max_payload in an int32.
        if self.max_payload > i32::MAX as i64 {
            d.push(
                Diagnostic::error(
                    pos,
                    format!("max_payload value is too big: {}", self.max_payload),
                )
                .with_help("max_payload must stay under 2GB; 8MB is the recommended ceiling"),
            );
        }
    }

    /// A user name (or nkey) may be defined once across `authorization` and all accounts.
    fn check_users(&self, d: &mut Diagnostics) {
        let all = self
            .authorization
            .iter()
            .flat_map(|a| a.users.iter())
            .chain(self.accounts.iter().flat_map(|a| a.users.iter()));
        let mut seen: Vec<(&str, Option<&str>)> = Vec::new();
        for u in all {
            let Some(name) = u.user.as_deref().or(u.nkey.as_deref()) else {
                continue;
            };
            if let Some((_, first_acc)) = seen.iter().find(|(n, _)| *n == name) {
                let pos = u.pos.clone().unwrap_or_else(|| Pos {
                    file: "".into(),
                    line: 0,
                    col: 0,
                });
                let where_first = first_acc
                    .map(|a| format!(" (first defined in account {a})"))
                    .unwrap_or_default();
                d.push(
                    Diagnostic::error(
                        &pos,
                        format!("Duplicate user \"{name}\" detected{where_first}"),
                    )
                    .with_help("each user name may appear once in the whole configuration"),
                );
            } else {
                seen.push((name, u.account.as_deref()));
            }
        }
    }

    /// Rules the official server applies only when it starts (they pass `-t`):
    /// references between blocks, and limits that contradict each other.
    pub fn check_startup(&self) -> Result<(), Diagnostics> {
        let mut d = Diagnostics::default();
        if self.max_payload > self.max_pending {
            d.push(
                Diagnostic::file(format!(
                    "max_payload ({}) cannot be higher than max_pending ({})",
                    self.max_payload, self.max_pending
                ))
                .with_help("raise max_pending or lower max_payload"),
            );
        }
        let account_exists =
            |name: &str| name == "$G" || self.accounts.iter().any(|a| a.name == name);
        if let Some(sys) = &self.system_account {
            if !account_exists(sys) && sys != "$SYS" {
                d.push(
                    Diagnostic::file(format!(
                        "error resolving system account: account \"{sys}\" missing"
                    ))
                    .with_help("define it under accounts { } or remove system_account"),
                );
            }
        }
        if let Some(user) = &self.no_auth_user {
            let known = self
                .authorization
                .iter()
                .flat_map(|a| a.users.iter())
                .chain(self.accounts.iter().flat_map(|a| a.users.iter()))
                .any(|u| {
                    u.user.as_deref() == Some(user.as_str())
                        || u.nkey.as_deref() == Some(user.as_str())
                });
            if !known {
                d.push(
                    Diagnostic::file(format!(
                        "no_auth_user: \"{user}\" present, but users/nkeys are not defined"
                    ))
                    .with_help("name a user defined in authorization { users } or in an account"),
                );
            }
        }
        if self.https.is_some() && self.tls.is_none() {
            d.push(
                Diagnostic::file("Can't start monitoring: TLS cert and key required for HTTPS")
                    .with_help(
                        "add a top-level tls { cert_file, key_file } block, or use http_port",
                    ),
            );
        }
        let compressions = self
            .cluster
            .iter()
            .filter_map(|c| c.compression.as_ref().map(|x| (x, c.pos.as_ref())))
            .chain(
                self.leafnodes
                    .iter()
                    .filter_map(|l| l.compression.as_ref().map(|x| (x, l.pos.as_ref()))),
            )
            .chain(
                self.leafnodes
                    .iter()
                    .flat_map(|l| l.remotes.iter())
                    .filter_map(|r| r.compression.as_ref().map(|x| (x, r.pos.as_ref()))),
            );
        for (c, pos) in compressions {
            if let Err(e) = c.check(pos) {
                d.push(e);
            }
        }
        if d.has_errors() {
            Err(d)
        } else {
            Ok(())
        }
    }
}

fn string_map(node: &Node, what: &str, d: &mut Diagnostics) -> Vec<(String, String)> {
    let Value::Map(m) = &node.value else {
        d.push(Diagnostic::error(
            &node.pos,
            format!(
                "expected a map of strings for {what}, found {}",
                node.value.kind()
            ),
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in &m.entries {
        if let Some(v) = decode::string(e, d) {
            out.push((e.key.clone(), v));
        }
    }
    out
}

/// Go's duration formatting for the common cases (`1s`, `1m30s`, `500ms`).
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    let frac = d.subsec_millis();
    let secs = if frac > 0 {
        format!("{s}.{:03}", frac).trim_end_matches('0').to_string()
    } else {
        s.to_string()
    };
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}
