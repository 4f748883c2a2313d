//! Command-line flags, named as nats-server names them so scripts and test harnesses
//! that start nats-server can start canopy-server unchanged.

use crate::config::Options;
use clap::{ArgAction, Parser};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Parser, Debug, Default)]
#[command(
    name = "canopy-server",
    about = "A NATS-compatible server for leaf-node topologies.\nFlags keep nats-server's names; values on the command line override the config file.",
    disable_version_flag = true
)]
pub struct Cli {
    /// Configuration file
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check the configuration file and exit (0 if valid, 1 otherwise; warnings count as errors)
    #[arg(short = 't', action = ArgAction::SetTrue)]
    pub check_config: bool,
    /// Client port (-1 picks a free port)
    #[arg(short = 'p', long = "port", allow_negative_numbers = true)]
    pub port: Option<i64>,
    /// Bind to host address
    #[arg(short = 'a', long = "addr", visible_alias = "net")]
    pub addr: Option<String>,
    /// Server name (default: the server's id)
    #[arg(short = 'n', long = "name", visible_alias = "server_name")]
    pub name: Option<String>,
    /// HTTP port for monitoring
    #[arg(short = 'm', long = "http_port")]
    pub http_port: Option<i64>,
    /// File to redirect log output to
    #[arg(short = 'l', long = "log")]
    pub log: Option<String>,
    /// File to store the process id
    #[arg(short = 'P', long = "pid")]
    pub pid: Option<String>,
    /// Directory to write a <exe>_<pid>.ports file with the listening ports
    #[arg(long = "ports_file_dir")]
    pub ports_file_dir: Option<String>,
    /// Enable debug logging
    #[arg(short = 'D', long = "debug", action = ArgAction::SetTrue)]
    pub debug: bool,
    /// Enable protocol trace logging
    #[arg(short = 'V', long = "trace", action = ArgAction::SetTrue)]
    pub trace: bool,
    /// User required for connections
    #[arg(long = "user")]
    pub user: Option<String>,
    /// Password required for connections
    #[arg(long = "pass")]
    pub pass: Option<String>,
    /// Authorization token required for connections
    #[arg(long = "auth")]
    pub auth: Option<String>,
    /// Enable TLS for client connections (needs --tlscert and --tlskey)
    #[arg(long = "tls", action = ArgAction::SetTrue)]
    pub tls: bool,
    /// Server certificate file
    #[arg(long = "tlscert", value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// Private key for the server certificate
    #[arg(long = "tlskey", value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
    /// Client certificate CA for verification
    #[arg(long = "tlscacert", value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// Enable TLS and verify client certificates
    #[arg(long = "tlsverify", action = ArgAction::SetTrue)]
    pub tlsverify: bool,
    /// Enable JetStream (accepted; Canopy does not serve JetStream yet and says so)
    #[arg(long = "jetstream", action = ArgAction::SetTrue)]
    pub jetstream: bool,
    /// JetStream store directory
    #[arg(long = "store_dir")]
    pub store_dir: Option<String>,
    /// Cluster URL for solicited routes
    #[arg(long = "cluster")]
    pub cluster: Option<String>,
    /// Cluster URL for solicited routes (alias of --cluster)
    #[arg(long = "cluster_listen")]
    pub cluster_listen: Option<String>,
    /// Cluster name
    #[arg(long = "cluster_name")]
    pub cluster_name: Option<String>,
    /// Routes to solicit and connect, comma separated
    #[arg(long = "routes")]
    pub routes: Option<String>,
    /// Do not advertise known cluster information to clients
    #[arg(long = "no_advertise", action = ArgAction::SetTrue)]
    pub no_advertise: bool,
    /// Send a signal to a running server: ldm, stop, quit, term, reload or reopen, optionally =PID
    /// (without a PID, the pid file from -P or the config file's pid_file is read)
    #[arg(long = "signal", value_name = "CMD[=PID]")]
    pub signal: Option<String>,
    /// Print the version and exit
    #[arg(short = 'v', long = "version", action = ArgAction::SetTrue)]
    pub version: bool,
    /// Probe a monitoring URL (http://HOST:PORT/healthz) and exit 0 if it answers 200:
    /// a container healthcheck for images with no shell or curl
    #[arg(long = "healthz", value_name = "URL")]
    pub healthz: Option<String>,
}

/// Long names nats-server accepts with a single dash (Go's flag package), and its
/// combined short flags; rewritten to what clap understands.
const SINGLE_DASH_LONG: &[(&str, &str)] = &[
    ("-js", "--jetstream"),
    ("-sd", "--store_dir"),
    ("-DV", "-D -V"),
    ("-VD", "-D -V"),
    ("-DVV", "-D -V"),
];

pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    for (i, arg) in args.into_iter().enumerate() {
        let Some(s) = arg.to_str().map(str::to_string) else {
            out.push(arg);
            continue;
        };
        if i == 0 {
            out.push(arg);
            continue;
        }
        if let Some((_, to)) = SINGLE_DASH_LONG.iter().find(|(from, _)| *from == s) {
            out.extend(to.split(' ').map(OsString::from));
            continue;
        }
        // Go accepts `-config x`, `-port=4222`: a single dash before a long name.
        if s.starts_with('-') && !s.starts_with("--") && s.len() > 2 {
            let name = s[1..].split('=').next().unwrap_or("");
            if name.len() > 1 && name.chars().all(|c| c.is_ascii_alphabetic() || c == '_') {
                out.push(OsString::from(format!("-{s}")));
                continue;
            }
        }
        out.push(arg);
    }
    out
}

impl Cli {
    /// Command-line values override the config file, as with nats-server.
    pub fn apply(&self, o: &mut Options) {
        if let Some(p) = self.port {
            o.port = p;
        }
        if let Some(a) = &self.addr {
            o.host = a.clone();
        }
        if let Some(n) = &self.name {
            o.server_name = Some(n.clone());
        }
        if let Some(m) = self.http_port {
            o.http = Some(crate::config::options::HttpListen {
                host: None,
                port: m,
            });
        }
        if let Some(l) = &self.log {
            o.log_file = Some(l.clone());
        }
        if let Some(p) = &self.pid {
            o.pid_file = Some(p.clone());
        }
        if let Some(d) = &self.ports_file_dir {
            o.ports_file_dir = Some(d.clone());
        }
        if self.tls
            || self.tlsverify
            || self.tlscert.is_some()
            || self.tlskey.is_some()
            || self.tlscacert.is_some()
        {
            let t = o.tls.get_or_insert_with(Default::default);
            let mut changed = false;
            for (field, flag) in [
                (&mut t.cert_file, &self.tlscert),
                (&mut t.key_file, &self.tlskey),
                (&mut t.ca_file, &self.tlscacert),
            ] {
                if let Some(path) = flag {
                    *field = Some(path.clone());
                    changed = true;
                }
            }
            t.verify |= self.tlsverify;
            if changed {
                // Files named on the command line are loaded when the server starts.
                t.loaded = None;
            }
        }
        o.debug |= self.debug;
        o.trace |= self.trace;
        if self.user.is_some() || self.pass.is_some() || self.auth.is_some() {
            let a = o.authorization.get_or_insert_with(Default::default);
            if let Some(u) = &self.user {
                a.user = Some(u.clone());
            }
            if let Some(p) = &self.pass {
                a.password = Some(p.clone());
            }
            if let Some(t) = &self.auth {
                a.token = Some(t.clone());
            }
        }
        if self.jetstream || self.store_dir.is_some() {
            let js = o
                .jetstream
                .get_or_insert_with(|| crate::config::jetstream::JetStream {
                    enabled: true,
                    ..Default::default()
                });
            js.enabled = true;
            if let Some(sd) = &self.store_dir {
                js.store_dir = Some(sd.clone());
            }
        }
        let cluster_url = self.cluster.as_ref().or(self.cluster_listen.as_ref());
        if cluster_url.is_some()
            || self.cluster_name.is_some()
            || self.routes.is_some()
            || self.no_advertise
        {
            let c = o.cluster.get_or_insert_with(Default::default);
            if let Some(url) = cluster_url {
                let hostport = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
                if let Some((h, p)) = hostport.rsplit_once(':') {
                    c.host = Some(h.to_string());
                    c.port = p.trim_end_matches('/').parse().ok();
                }
            }
            if let Some(n) = &self.cluster_name {
                c.name = Some(n.clone());
            }
            if let Some(r) = &self.routes {
                c.routes = r
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
            }
            c.no_advertise |= self.no_advertise;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let argv = std::iter::once("canopy-server")
            .chain(args.iter().copied())
            .map(OsString::from);
        Cli::try_parse_from(normalize_args(argv)).unwrap()
    }

    #[test]
    fn nats_server_flag_spellings_are_accepted() {
        let c = parse(&["-c", "x.conf", "-t"]);
        assert_eq!(c.config.as_deref(), Some(std::path::Path::new("x.conf")));
        assert!(c.check_config);
        let c = parse(&["-DV", "-p", "-1", "-js", "-sd", "/tmp/js"]);
        assert!(c.debug && c.trace && c.jetstream);
        assert_eq!(c.port, Some(-1));
        assert_eq!(c.store_dir.as_deref(), Some("/tmp/js"));
        let c = parse(&["-config", "y.conf", "--server_name", "n1", "-m", "8222"]);
        assert_eq!(c.config.as_deref(), Some(std::path::Path::new("y.conf")));
        assert_eq!(c.name.as_deref(), Some("n1"));
        assert_eq!(c.http_port, Some(8222));
    }

    #[test]
    fn command_line_overrides_config() {
        let mut o = Options::default();
        parse(&[
            "-p",
            "5222",
            "--user",
            "u",
            "--pass",
            "p",
            "--routes",
            "nats://a:1,nats://b:2",
        ])
        .apply(&mut o);
        assert_eq!(o.port, 5222);
        let a = o.authorization.unwrap();
        assert_eq!(
            (a.user.as_deref(), a.password.as_deref()),
            (Some("u"), Some("p"))
        );
        assert_eq!(o.cluster.unwrap().routes, vec!["nats://a:1", "nats://b:2"]);
    }
}
