//! The validated, resolved topology: every server with its name, site, listen
//! addresses and ports, the accounts it serves, the routes it dials and the leaf
//! remotes it solicits (with the address each remote dials: directly on its own site,
//! or through the linksim service that stands for a site link). Renderers are pure
//! functions of this model.
//!
//! [`build`] checks everything a topology can get wrong and reports it all at once,
//! each finding with its place in the file and what to do.

use crate::diag::Diagnostic;
use crate::topology::{self, FlowKind, NodeKind, Spanned, Str, StrList, Topology};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

pub const DEFAULT_IMAGE: &str = "canopy-server:dev";
pub const SYSTEM_ACCOUNT: &str = "SYS";
pub const SYSTEM_USER: &str = "sys";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Aws,
    Gcp,
    Onprem,
    Edge,
    /// Processes on this host, on 127.0.0.1 (tests, laptops).
    Local,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Gcp => "gcp",
            Provider::Onprem => "onprem",
            Provider::Edge => "edge",
            Provider::Local => "local",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafAuth {
    /// Leaf links authenticate with client certificates (`verify_and_map`).
    Mtls,
    /// Leaf links authenticate with a generated user and password.
    Password,
}

#[derive(Debug, Clone)]
pub struct Site {
    pub name: String,
    pub provider: Provider,
    pub region: Option<String>,
    pub cidr: Option<ipnet::IpNet>,
    /// Who may reach client ports on a cloud site (default: the site's own CIDR).
    pub client_cidrs: Vec<ipnet::IpNet>,
    /// Who may reach monitoring ports on a cloud site (default: the site's own CIDR).
    pub admin_cidrs: Vec<ipnet::IpNet>,
    /// The site's BGP ASN on its VPNs (default: 64512 + its place among the sites).
    pub asn: u32,
}

impl Site {
    /// Sites whose infrastructure Terraform builds (a VPC and instances).
    pub fn is_cloud(&self) -> bool {
        matches!(self.provider, Provider::Aws | Provider::Gcp)
    }
}

/// One port a linksim service listens on, and where it forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub listen: u16,
    pub server: String,
    pub port: u16,
}

#[derive(Debug, Clone)]
pub struct Link {
    pub name: String,
    /// The compose service (and DNS name) that carries traffic across this link.
    pub service: String,
    pub sites: [String; 2],
    pub vpn: String,
    pub latency: Option<String>,
    pub jitter: Option<String>,
    pub bandwidth: Option<String>,
    pub forwards: Vec<Forward>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Flow {
    pub kind: FlowKind,
    pub subject: String,
}

#[derive(Debug, Clone)]
pub struct Import {
    pub kind: FlowKind,
    pub subject: String,
    pub account: String,
    pub to: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub users: Vec<User>,
    pub exports: Vec<Flow>,
    pub imports: Vec<Import>,
    pub mappings: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct JetStream {
    pub domain: Option<String>,
    pub max_memory: Option<String>,
    pub max_file: Option<String>,
}

/// A hub cluster (1..n servers joined by routes) or a single leaf server.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub kind: NodeKind,
    pub site: String,
    pub servers: Vec<String>,
}

/// One address a remote dials, and the hub server behind it.
#[derive(Debug, Clone)]
pub struct Dial {
    pub host: String,
    pub port: u16,
    pub server: String,
}

#[derive(Debug, Clone)]
pub struct Remote {
    pub hub: String,
    pub local_account: String,
    pub hub_account: String,
    /// The user the hub knows this link by: a certificate's CN (mtls) or a user name.
    pub identity: String,
    pub dials: Vec<Dial>,
    /// The link the remote crosses, if its hub is on another site.
    pub link: Option<String>,
    pub deny_imports: Vec<String>,
    pub deny_exports: Vec<String>,
    pub compression: Option<String>,
}

/// A user a hub server accepts on its leafnode port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LeafUser {
    pub identity: String,
    pub account: String,
    pub from: String,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub name: String,
    /// The container image that runs it (the topology's default unless the node names one).
    pub image: String,
    pub cluster: String,
    pub kind: NodeKind,
    pub site: String,
    /// Where the server listens: 127.0.0.1 on a local site, else every interface of
    /// its own container or host.
    pub listen: String,
    /// The name peers on its own site dial.
    pub host: String,
    pub client_port: u16,
    pub http_port: u16,
    pub leaf_port: Option<u16>,
    pub cluster_port: Option<u16>,
    /// Peer addresses (host, port) in its cluster.
    pub routes: Vec<(String, u16)>,
    pub accounts: Vec<String>,
    pub jetstream: Option<JetStream>,
    pub remotes: Vec<Remote>,
    pub leaf_users: Vec<LeafUser>,
    /// Every DNS name its certificate must carry.
    pub dns_names: BTreeSet<String>,
    /// A load balancer in front of the leafnode port: "internal" or "external".
    pub leaf_lb: Option<String>,
}

impl Server {
    /// What the server is, as generated files describe it.
    pub fn role(&self) -> String {
        match (self.kind, self.remotes.is_empty()) {
            (NodeKind::Hub, true) => format!("hub cluster \"{}\"", self.cluster),
            (NodeKind::Hub, false) => {
                format!("regional hub cluster \"{}\" (also a leaf)", self.cluster)
            }
            (NodeKind::Leaf, _) => "leaf".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub image: String,
    pub tls: bool,
    /// How often servers PING their peers; a link is stale after 3 unanswered.
    pub ping_interval: Option<String>,
    pub leaf_auth: LeafAuth,
    pub sites: Vec<Site>,
    pub links: Vec<Link>,
    pub accounts: Vec<Account>,
    pub clusters: Vec<Cluster>,
    pub servers: Vec<Server>,
}

impl Model {
    pub fn server(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.name == name)
    }
    pub fn site(&self, name: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.name == name)
    }
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name == name)
    }
    /// Every user name with its account, the system user included.
    pub fn users(&self) -> Vec<(String, String)> {
        let mut out = vec![(SYSTEM_USER.to_string(), SYSTEM_ACCOUNT.to_string())];
        for a in &self.accounts {
            for u in &a.users {
                out.push((u.name.clone(), a.name.clone()));
            }
        }
        out
    }
}

/// Findings that are legal but risky (`canopy lint`), with where they point.
pub type Warnings = Vec<Diagnostic>;

struct Ctx {
    d: Vec<Diagnostic>,
}

impl Ctx {
    fn err(&mut self, d: Diagnostic) {
        self.d.push(d);
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

/// DNS-safe: lower-case letters, digits and dashes (server and site names become
/// container names and certificate SANs).
fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && !s.ends_with('-')
}

fn check_dns_name(c: &mut Ctx, what: &str, n: &Str) {
    if !is_dns_name(&n.value) {
        c.err(
            Diagnostic::error(format!("invalid {what} name \"{}\"", n.value), n.span.clone())
                .label("not a DNS label")
                .help("use lower-case letters, digits and dashes (it becomes a host name and a certificate name)"),
        );
    }
}

fn valid_subject(s: &str, wildcards: bool) -> bool {
    canopy_server::subject::valid(s.as_bytes(), wildcards)
}

fn check_subjects(c: &mut Ctx, list: Option<&StrList>, what: &str) -> Vec<String> {
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

fn invalid_subject(s: &Str, what: &str) -> Diagnostic {
    Diagnostic::error(format!("invalid subject \"{}\" in {what}", s.value), s.span.clone())
        .label("not a NATS subject")
        .help("tokens are separated by single dots, with no spaces; `*` matches one token and `>` the rest (last token only)")
}

/// The help line of an unknown name: the names that are defined.
fn defined<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.map(|n| format!("\"{n}\"")).collect();
    if quoted.is_empty() {
        return "none is defined".into();
    }
    format!("defined: {}", quoted.join(", "))
}

fn size_ok(s: &str) -> bool {
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

fn bandwidth_ok(s: &str) -> bool {
    let num = s
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    num > 0
        && s[..num].parse::<f64>().is_ok_and(|v| v > 0.0)
        && matches!(&s[num..], "kbit" | "mbit" | "gbit")
}

const COMPRESSION: &[&str] = &[
    "off",
    "accept",
    "s2_fast",
    "s2_better",
    "s2_best",
    "s2_auto",
];

/// Resolve and check a parsed topology. All errors are reported together.
pub fn build(t: &Topology) -> Result<Model, Vec<Diagnostic>> {
    let mut c = Ctx { d: Vec::new() };

    // ---- defaults ----
    let name = t.name.as_ref().map_or("canopy".to_string(), |n| {
        check_dns_name(&mut c, "topology", n);
        n.value.clone()
    });
    let image = t
        .defaults
        .image
        .as_ref()
        .map_or(DEFAULT_IMAGE.to_string(), |i| i.value.clone());
    let tls = t.defaults.tls.as_ref().is_none_or(|b| b.value);
    let ping_interval = t.defaults.ping_interval.as_ref().and_then(|p| {
        if duration_ok(&p.value) && p.value != "0s" {
            Some(p.value.clone())
        } else {
            c.err(
                Diagnostic::error(format!("invalid ping_interval \"{}\"", p.value), p.span.clone())
                    .label("not a duration")
                    .help("write a number and a unit, e.g. \"20s\": a leaf link is declared stale after 3 unanswered PINGs"),
            );
            None
        }
    });
    let leaf_auth = match &t.defaults.leaf_auth {
        None if tls => LeafAuth::Mtls,
        None => LeafAuth::Password,
        Some(a) => match a.value.as_str() {
            "mtls" if !tls => {
                c.err(
                    Diagnostic::error("leaf_auth = \"mtls\" needs TLS", a.span.clone())
                        .label("client certificates need TLS")
                        .help("set `tls = true` in `defaults`, or use leaf_auth = \"password\""),
                );
                LeafAuth::Password
            }
            "mtls" => LeafAuth::Mtls,
            "password" => LeafAuth::Password,
            other => {
                c.err(
                    Diagnostic::error(format!("unknown leaf_auth \"{other}\""), a.span.clone())
                        .label("expected \"mtls\" or \"password\"")
                        .help("mtls: leaf links present client certificates; password: a generated user and password"),
                );
                LeafAuth::Mtls
            }
        },
    };

    // ---- sites ----
    let mut sites: Vec<Site> = Vec::new();
    for s in &t.sites {
        check_dns_name(&mut c, "site", &s.name);
        if sites.iter().any(|x| x.name == s.name.value) {
            c.err(duplicate("site", &s.name));
            continue;
        }
        let provider = match s
            .provider
            .as_ref()
            .map(|p| (p.value.as_str(), p.span.clone()))
        {
            Some(("aws", _)) => Provider::Aws,
            Some(("gcp", _)) => Provider::Gcp,
            Some(("onprem", _)) => Provider::Onprem,
            Some(("edge", _)) => Provider::Edge,
            Some(("local", _)) => Provider::Local,
            Some((other, span)) => {
                c.err(
                    Diagnostic::error(format!("unknown provider \"{other}\""), span)
                        .label("not a provider Canopy deploys to")
                        .help("provider is one of: aws, gcp, onprem, edge, local"),
                );
                Provider::Local
            }
            None => {
                c.err(missing(
                    "provider",
                    &s.name,
                    "site",
                    "provider = \"onprem\"",
                ));
                Provider::Local
            }
        };
        let cidr = s
            .cidr
            .as_ref()
            .and_then(|x| match x.value.parse::<ipnet::IpNet>() {
                Ok(n) => Some(n),
                Err(_) => {
                    c.err(
                        Diagnostic::error(format!("invalid CIDR \"{}\"", x.value), x.span.clone())
                            .label("not an address/prefix")
                            .help("for example: cidr = \"10.20.0.0/16\""),
                    );
                    None
                }
            });
        let cloud = matches!(provider, Provider::Aws | Provider::Gcp);
        if cloud && s.cidr.is_none() {
            c.err(
                Diagnostic::error(
                    format!("site \"{}\" has no `cidr`", s.name.value,),
                    s.name.span.clone(),
                )
                .label(format!(
                    "an {} site's network needs an address range",
                    provider.as_str()
                ))
                .help("for example: cidr = \"10.20.0.0/16\" (a /18 or larger)"),
            );
        }
        if cloud && s.region.is_none() {
            c.err(missing(
                "region",
                &s.name,
                "site",
                "region = \"eu-central-1\"",
            ));
        }
        if let (true, Some(n), Some(x)) = (cloud, cidr, &s.cidr) {
            if n.prefix_len() > 18 || !matches!(n, ipnet::IpNet::V4(_)) {
                c.err(
                    Diagnostic::error(
                        format!("cidr \"{}\" is too small for a cloud network", x.value),
                        x.span.clone(),
                    )
                    .label("Terraform splits it into subnets per zone")
                    .help("give an IPv4 /18 or larger, e.g. \"10.20.0.0/16\""),
                );
            }
        }
        let cidr_list = |c: &mut Ctx, l: &Option<StrList>| -> Vec<ipnet::IpNet> {
            let mut out = Vec::new();
            for x in l.iter().flat_map(|l| l.value.iter()) {
                match x.value.parse::<ipnet::IpNet>() {
                    Ok(ipnet::IpNet::V4(n)) if n.prefix_len() == 0 => c.err(
                        Diagnostic::error(
                            "the whole internet is not a client range",
                            x.span.clone(),
                        )
                        .label("0.0.0.0/0")
                        .help("name the networks clients and admins come from"),
                    ),
                    Ok(n) => out.push(n),
                    Err(_) => c.err(
                        Diagnostic::error(format!("invalid CIDR \"{}\"", x.value), x.span.clone())
                            .label("not an address/prefix")
                            .help("for example: \"10.20.0.0/16\""),
                    ),
                }
            }
            out
        };
        let mut client_cidrs = cidr_list(&mut c, &s.client_cidrs);
        let mut admin_cidrs = cidr_list(&mut c, &s.admin_cidrs);
        if s.client_cidrs.is_none() {
            client_cidrs.extend(cidr);
        }
        if s.admin_cidrs.is_none() {
            admin_cidrs.extend(cidr);
        }
        let asn = match &s.asn {
            Some(a) if !(64512..=65534).contains(&a.value) => {
                c.err(
                    Diagnostic::error(
                        format!("asn {} is not a private ASN", a.value),
                        a.span.clone(),
                    )
                    .label("VPN gateways take a private 16-bit ASN")
                    .help("use 64512-65534"),
                );
                64512
            }
            Some(a) => a.value as u32,
            None => 64512 + sites.len() as u32,
        };
        if let Some(other) = sites.iter().find(|o| o.asn == asn) {
            c.err(
                Diagnostic::error(
                    format!(
                        "site \"{}\" has the ASN of site \"{}\" ({asn})",
                        s.name.value, other.name
                    ),
                    s.asn
                        .as_ref()
                        .map_or(s.name.span.clone(), |a| a.span.clone()),
                )
                .label("BGP peers need different ASNs")
                .help("give each site its own `asn` in 64512-65534"),
            );
        }
        sites.push(Site {
            name: s.name.value.clone(),
            provider,
            region: s.region.as_ref().map(|r| r.value.clone()),
            cidr,
            client_cidrs,
            admin_cidrs,
            asn,
        });
    }
    let site_named = |n: &str| sites.iter().find(|s| s.name == n);

    // ---- links ----
    let mut links: Vec<Link> = Vec::new();
    let mut link_pairs: HashMap<(String, String), usize> = HashMap::new();
    for l in &t.links {
        check_dns_name(&mut c, "link", &l.name);
        if links.iter().any(|x| x.name == l.name.value) {
            c.err(duplicate("link", &l.name));
            continue;
        }
        let Some(ends) = &l.sites else {
            c.err(missing(
                "sites",
                &l.name,
                "link",
                "sites = [\"edge-1\", \"central\"]",
            ));
            continue;
        };
        if ends.value.len() != 2 {
            c.err(
                Diagnostic::error("a link joins exactly two sites", ends.span.clone())
                    .label(format!("{} sites given", ends.value.len()))
                    .help("write one `link` block for each pair of sites"),
            );
            continue;
        }
        let mut ok = true;
        for e in &ends.value {
            match site_named(&e.value) {
                None => {
                    c.err(unknown("site", e, sites.iter().map(|s| s.name.as_str())));
                    ok = false;
                }
                Some(s) if s.provider == Provider::Local => {
                    c.err(
                        Diagnostic::error(
                            format!("site \"{}\" is local and cannot be joined by a link", e.value),
                            e.span.clone(),
                        )
                        .label("local sites are processes on this host")
                        .help("give the site a provider (aws, gcp, onprem, edge) to simulate a link to it"),
                    );
                    ok = false;
                }
                Some(_) => {}
            }
        }
        if !ok {
            continue;
        }
        let (a, b) = (ends.value[0].value.clone(), ends.value[1].value.clone());
        if a == b {
            c.err(
                Diagnostic::error("a link must join two different sites", ends.span.clone())
                    .label(format!("both ends are \"{a}\""))
                    .help("servers on one site reach each other directly"),
            );
            continue;
        }
        // Terraform builds IPsec links that touch a cloud site; both ends then
        // route each other's CIDR.
        if let Some(v) = l.vpn.as_ref().filter(|v| v.value == "ipsec") {
            let ends = [site_named(&a), site_named(&b)];
            if ends.iter().flatten().any(|s| s.is_cloud()) {
                for s in ends.iter().flatten().filter(|s| s.cidr.is_none()) {
                    c.err(
                        Diagnostic::error(
                            format!(
                                "ipsec link \"{}\" needs a cidr on site \"{}\"",
                                l.name.value, s.name
                            ),
                            v.span.clone(),
                        )
                        .label("each end of the VPN announces and routes its site's CIDR")
                        .help(format!(
                            "give site \"{}\" a cidr, e.g. cidr = \"192.168.0.0/20\"",
                            s.name
                        )),
                    );
                }
            }
        }
        let key = if a < b {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        if link_pairs.contains_key(&key) {
            c.err(
                Diagnostic::error(
                    format!("sites \"{a}\" and \"{b}\" are already joined by another link"),
                    ends.span.clone(),
                )
                .label("second link between the same sites")
                .help("one link stands for one VPN between two sites; remove one"),
            );
            continue;
        }
        if let (Some(x), Some(y)) = (
            site_named(&a).and_then(|s| s.cidr),
            site_named(&b).and_then(|s| s.cidr),
        ) {
            if x.contains(&y.network()) || y.contains(&x.network()) {
                c.err(
                    Diagnostic::error(
                        format!("sites \"{a}\" ({x}) and \"{b}\" ({y}) overlap"),
                        ends.span.clone(),
                    )
                    .label("a VPN cannot route between overlapping networks")
                    .help("give each site its own address range"),
                );
            }
        }
        for (v, what) in [(&l.latency, "latency"), (&l.jitter, "jitter")] {
            if let Some(v) = v {
                if !duration_ok(&v.value) {
                    c.err(
                        Diagnostic::error(
                            format!("invalid {what} \"{}\"", v.value),
                            v.span.clone(),
                        )
                        .label("not a duration")
                        .help("write a number and a unit: \"20ms\", \"1.5s\", \"250us\""),
                    );
                }
            }
        }
        if let Some(bw) = &l.bandwidth {
            if !bandwidth_ok(&bw.value) {
                c.err(
                    Diagnostic::error(
                        format!("invalid bandwidth \"{}\"", bw.value),
                        bw.span.clone(),
                    )
                    .label("not a rate")
                    .help("write a number and a unit: \"512kbit\", \"10mbit\", \"1gbit\""),
                );
            }
        }
        link_pairs.insert(key, links.len());
        links.push(Link {
            name: l.name.value.clone(),
            service: format!("link-{}", l.name.value),
            sites: [a, b],
            vpn: l.vpn.as_ref().map_or("vpn".into(), |v| v.value.clone()),
            latency: l.latency.as_ref().map(|v| v.value.clone()),
            jitter: l.jitter.as_ref().map(|v| v.value.clone()),
            bandwidth: l.bandwidth.as_ref().map(|v| v.value.clone()),
            forwards: Vec::new(),
        });
    }

    // ---- accounts ----
    let mut accounts: Vec<Account> = Vec::new();
    let mut user_owner: HashMap<String, String> = HashMap::new();
    for a in &t.accounts {
        if !is_name(&a.name.value) {
            c.err(
                Diagnostic::error(
                    format!("invalid account name \"{}\"", a.name.value),
                    a.name.span.clone(),
                )
                .label("not an account name")
                .help("use letters, digits, `-` and `_`"),
            );
        } else if a.name.value == SYSTEM_ACCOUNT || a.name.value == "$G" {
            c.err(
                Diagnostic::error(format!("account name \"{}\" is reserved", a.name.value), a.name.span.clone())
                    .label("Canopy defines this account itself")
                    .help("every generated server has a system account `SYS` with user `sys`; pick another name"),
            );
        }
        if accounts.iter().any(|x| x.name == a.name.value) {
            c.err(duplicate("account", &a.name));
            continue;
        }
        let mut users = Vec::new();
        for u in &a.users {
            if !is_name(&u.name.value) {
                c.err(
                    Diagnostic::error(
                        format!("invalid user name \"{}\"", u.name.value),
                        u.name.span.clone(),
                    )
                    .label("not a user name")
                    .help("use letters, digits, `-` and `_`"),
                );
            }
            if u.name.value == SYSTEM_USER {
                c.err(
                    Diagnostic::error("user name \"sys\" is reserved", u.name.span.clone())
                        .label("the system account's user")
                        .help("pick another name"),
                );
            }
            if let Some(owner) = user_owner.get(&u.name.value) {
                c.err(
                    Diagnostic::error(
                        format!(
                            "user \"{}\" is already defined in account \"{owner}\"",
                            u.name.value
                        ),
                        u.name.span.clone(),
                    )
                    .label("second definition")
                    .help(
                        "user names are global in a NATS server: each user belongs to one account",
                    ),
                );
                continue;
            }
            user_owner.insert(u.name.value.clone(), a.name.value.clone());
            users.push(User {
                name: u.name.value.clone(),
                publish: check_subjects(&mut c, u.publish.as_ref(), "publish"),
                subscribe: check_subjects(&mut c, u.subscribe.as_ref(), "subscribe"),
            });
        }
        let mut exports = Vec::new();
        for e in &a.exports {
            if valid_subject(&e.subject.value, true) {
                exports.push(Flow {
                    kind: e.kind,
                    subject: e.subject.value.clone(),
                });
            } else {
                c.err(invalid_subject(&e.subject, "an export"));
            }
        }
        let mut mappings = Vec::new();
        for (from, to) in &a.mappings {
            if !valid_subject(&from.value, true) {
                c.err(invalid_subject(from, "a mapping"));
                continue;
            }
            if let Some(d) = check_mapping_destination(&from.value, to) {
                c.err(d);
                continue;
            }
            mappings.push((from.value.clone(), to.value.clone()));
        }
        accounts.push(Account {
            name: a.name.value.clone(),
            users,
            exports,
            imports: Vec::new(),
            mappings,
        });
    }
    // Imports, once every account's exports are known.
    for a in &t.accounts {
        let mut imports = Vec::new();
        for i in &a.imports {
            if !valid_subject(&i.subject.value, true) {
                c.err(invalid_subject(&i.subject, "an import"));
                continue;
            }
            let Some(from) = &i.account else {
                c.err(
                    Diagnostic::error(
                        "`import` needs the `account` it imports from",
                        i.span.clone(),
                    )
                    .label("no account given")
                    .help("for example: account = \"CORE\""),
                );
                continue;
            };
            if from.value == a.name.value {
                c.err(
                    Diagnostic::error("an account cannot import from itself", from.span.clone())
                        .label("same account")
                        .help("an account already sees its own subjects"),
                );
                continue;
            }
            let Some(exporter) = accounts.iter().find(|x| x.name == from.value) else {
                c.err(unknown(
                    "account",
                    from,
                    accounts.iter().map(|x| x.name.as_str()),
                ));
                continue;
            };
            let exported = exporter.exports.iter().any(|e| {
                e.kind == i.kind && canopy_server::subject::is_subset(&i.subject.value, &e.subject)
            });
            if !exported {
                let list: Vec<String> = exporter
                    .exports
                    .iter()
                    .map(|e| format!("{} \"{}\"", e.kind.as_str(), e.subject))
                    .collect();
                c.err(
                    Diagnostic::error(
                        format!(
                            "account \"{}\" exports no {} matching \"{}\"",
                            from.value,
                            i.kind.as_str(),
                            i.subject.value
                        ),
                        i.subject.span.clone(),
                    )
                    .label("nothing to import")
                    .help(if list.is_empty() {
                        format!(
                            "add `export {{ {} = \"{}\" }}` to account \"{}\"",
                            i.kind.as_str(),
                            i.subject.value,
                            from.value
                        )
                    } else {
                        format!("account \"{}\" exports: {}", from.value, list.join(", "))
                    }),
                );
                continue;
            }
            if let Some(to) = &i.to {
                if !valid_subject(&to.value, true) {
                    c.err(invalid_subject(to, "an import's `to`"));
                    continue;
                }
            }
            imports.push(Import {
                kind: i.kind,
                subject: i.subject.value.clone(),
                account: from.value.clone(),
                to: i.to.as_ref().map(|x| x.value.clone()),
            });
        }
        if let Some(acc) = accounts.iter_mut().find(|x| x.name == a.name.value) {
            acc.imports = imports;
        }
    }

    // ---- hubs and leaves: clusters and their servers ----
    let mut clusters: Vec<Cluster> = Vec::new();
    let mut servers: Vec<Server> = Vec::new();
    let mut server_names: BTreeSet<String> = BTreeSet::new();
    let nodes: Vec<&topology::Node> = t.hubs.iter().chain(t.leaves.iter()).collect();
    let mut domains: HashMap<String, String> = HashMap::new();
    for n in &nodes {
        check_dns_name(&mut c, n.kind.as_str(), &n.name);
        if clusters.iter().any(|x| x.name == n.name.value) {
            c.err(duplicate("hub or leaf", &n.name));
            continue;
        }
        let Some(site_name) = &n.site else {
            c.err(missing(
                "site",
                &n.name,
                n.kind.as_str(),
                "site = \"central\"",
            ));
            continue;
        };
        let Some(site) = site_named(&site_name.value) else {
            c.err(unknown(
                "site",
                site_name,
                sites.iter().map(|s| s.name.as_str()),
            ));
            continue;
        };
        let size = match &n.size {
            None => 1,
            Some(s) if (1..=15).contains(&s.value) => s.value as usize,
            Some(s) => {
                c.err(
                    Diagnostic::error(
                        format!("hub size {} is out of range", s.value),
                        s.span.clone(),
                    )
                    .label("expected 1 to 15 servers")
                    .help("a hub cluster is a full mesh of routes; use 3 or 5 for redundancy"),
                );
                1
            }
        };
        let port = |c: &mut Ctx, p: &Option<Spanned<u64>>, default: u16| -> u16 {
            match p {
                None => default,
                Some(p) if (1..=65535).contains(&p.value) => p.value as u16,
                Some(p) => {
                    c.err(
                        Diagnostic::error(
                            format!("port {} is out of range", p.value),
                            p.span.clone(),
                        )
                        .label("expected 1 to 65535")
                        .help(
                            "the NATS defaults are client 4222, cluster 6222, leaf 7422, http 8222",
                        ),
                    );
                    default
                }
            }
        };
        let client_port = port(&mut c, &n.client_port, 4222);
        let http_port = port(&mut c, &n.http_port, 8222);
        let leaf_port = (n.kind == NodeKind::Hub).then(|| port(&mut c, &n.leaf_port, 7422));
        let cluster_port =
            (n.kind == NodeKind::Hub && size > 1).then(|| port(&mut c, &n.cluster_port, 6222));
        // Two ports of one server.
        let mut mine: Vec<(u16, &str, Range<usize>)> = vec![
            (client_port, "client_port", span_or(&n.client_port, &n.name)),
            (http_port, "http_port", span_or(&n.http_port, &n.name)),
        ];
        if let Some(p) = leaf_port {
            mine.push((p, "leaf_port", span_or(&n.leaf_port, &n.name)));
        }
        if let Some(p) = cluster_port {
            mine.push((p, "cluster_port", span_or(&n.cluster_port, &n.name)));
        }
        for i in 0..mine.len() {
            for j in 0..i {
                if mine[i].0 == mine[j].0 {
                    c.err(
                        Diagnostic::error(
                            format!("{} and {} are both {}", mine[j].1, mine[i].1, mine[i].0),
                            mine[i].2.clone(),
                        )
                        .label("port already used by this server")
                        .help("give each listener its own port"),
                    );
                }
            }
        }
        let jetstream = n.jetstream.as_ref().map(|j| {
            for (v, what) in [(&j.max_memory, "max_memory"), (&j.max_file, "max_file")] {
                if let Some(v) = v {
                    if !size_ok(&v.value) {
                        c.err(
                            Diagnostic::error(format!("invalid {what} \"{}\"", v.value), v.span.clone())
                                .label("not a size")
                                .help("write a number and a unit: \"512MB\", \"10GB\""),
                        );
                    }
                }
            }
            if let Some(d) = &j.domain {
                if !is_name(&d.value) {
                    c.err(
                        Diagnostic::error(format!("invalid JetStream domain \"{}\"", d.value), d.span.clone())
                            .label("not a domain name")
                            .help("use letters, digits, `-` and `_`"),
                    );
                } else if let Some(other) = domains.get(&d.value) {
                    c.err(
                        Diagnostic::error(
                            format!("JetStream domain \"{}\" is already used by \"{other}\"", d.value),
                            d.span.clone(),
                        )
                        .label("second use")
                        .help("each hub cluster and leaf needs its own domain, or JetStream requests reach the wrong one"),
                    );
                } else {
                    domains.insert(d.value.clone(), n.name.value.clone());
                }
            }
            JetStream {
                domain: j.domain.as_ref().map(|d| d.value.clone()),
                max_memory: j.max_memory.as_ref().map(|d| d.value.clone()),
                max_file: j.max_file.as_ref().map(|d| d.value.clone()),
            }
        });
        let names: Vec<String> = if size == 1 {
            vec![n.name.value.clone()]
        } else {
            (1..=size)
                .map(|i| format!("{}-{i}", n.name.value))
                .collect()
        };
        let leaf_lb = n.leaf_lb.as_ref().and_then(|l| {
            if !matches!(l.value.as_str(), "internal" | "external") {
                c.err(
                    Diagnostic::error(format!("unknown leaf_lb \"{}\"", l.value), l.span.clone())
                        .label("not a load balancer kind")
                        .help(
                            "leaf_lb is \"internal\" (private addresses) or \"external\" (public)",
                        ),
                );
                None
            } else if !site.is_cloud() {
                c.err(
                    Diagnostic::error(
                        format!(
                            "leaf_lb on {} site \"{}\"",
                            site.provider.as_str(),
                            site.name
                        ),
                        l.span.clone(),
                    )
                    .label("Canopy builds load balancers on aws and gcp sites")
                    .help("remove leaf_lb, or put your own balancer in front of the hubs"),
                );
                None
            } else if leaf_port.is_none() {
                None
            } else {
                Some(l.value.clone())
            }
        });
        let local = site.provider == Provider::Local;
        for sname in &names {
            if server_names.contains(sname) {
                c.err(
                    Diagnostic::error(format!("server name \"{sname}\" is taken"), n.name.span.clone())
                        .label(format!("this {} names a server \"{sname}\"", n.kind.as_str()))
                        .help("server names must be unique: a hub cluster \"x\" of size n names its servers x-1 .. x-n"),
                );
                continue;
            }
            server_names.insert(sname.clone());
            servers.push(Server {
                name: sname.clone(),
                image: n.image.as_ref().map_or(image.clone(), |i| i.value.clone()),
                cluster: n.name.value.clone(),
                kind: n.kind,
                site: site.name.clone(),
                listen: if local { "127.0.0.1" } else { "0.0.0.0" }.into(),
                host: if local {
                    "127.0.0.1".into()
                } else {
                    sname.clone()
                },
                client_port,
                http_port,
                leaf_port,
                cluster_port,
                routes: Vec::new(),
                accounts: Vec::new(),
                jetstream: jetstream.clone(),
                remotes: Vec::new(),
                leaf_users: Vec::new(),
                dns_names: BTreeSet::new(),
                leaf_lb: leaf_lb.clone(),
            });
        }
        clusters.push(Cluster {
            name: n.name.value.clone(),
            kind: n.kind,
            site: site.name.clone(),
            servers: names,
        });
    }

    // Routes: a full mesh within each hub cluster.
    for cl in &clusters {
        let peers: Vec<(String, u16)> = cl
            .servers
            .iter()
            .filter_map(|s| servers.iter().find(|x| &x.name == s))
            .filter_map(|s| s.cluster_port.map(|p| (s.host.clone(), p)))
            .collect();
        for s in servers.iter_mut().filter(|s| s.cluster == cl.name) {
            let me = (s.host.clone(), s.cluster_port.unwrap_or(0));
            s.routes = peers.iter().filter(|p| **p != me).cloned().collect();
        }
    }

    // Port clashes on one host: every server on a local site shares 127.0.0.1.
    let mut taken: BTreeMap<u16, (String, &'static str)> = BTreeMap::new();
    for n in &nodes {
        let Some(site) = n.site.as_ref().and_then(|s| site_named(&s.value)) else {
            continue;
        };
        if site.provider != Provider::Local {
            continue;
        }
        for s in servers.iter().filter(|s| s.cluster == n.name.value) {
            let listeners = [
                (Some(s.client_port), "client_port", &n.client_port),
                (Some(s.http_port), "http_port", &n.http_port),
                (s.leaf_port, "leaf_port", &n.leaf_port),
                (s.cluster_port, "cluster_port", &n.cluster_port),
            ];
            for (p, what, src) in listeners {
                let Some(p) = p else { continue };
                if let Some((other, other_what)) = taken.get(&p) {
                    if other != &s.name {
                        c.err(
                            Diagnostic::error(
                                format!("port {p} on 127.0.0.1 is already the {other_what} of \"{other}\""),
                                span_or(src, &n.name),
                            )
                            .label(format!("{what} of \"{}\"", s.name))
                            .help("servers on local sites share one host: give each a distinct port (hub clusters of size n need n distinct ports, so use size 1 on local sites)"),
                        );
                    }
                } else {
                    taken.insert(p, (s.name.clone(), what));
                }
            }
        }
    }

    // ---- accounts each server serves ----
    let account_names: Vec<String> = accounts.iter().map(|a| a.name.clone()).collect();
    for n in &nodes {
        let mut served: BTreeSet<String> = BTreeSet::new();
        match &n.accounts {
            Some(list) => {
                for a in &list.value {
                    if account_names.contains(&a.value) {
                        served.insert(a.value.clone());
                    } else {
                        c.err(unknown(
                            "account",
                            a,
                            account_names.iter().map(String::as_str),
                        ));
                    }
                }
            }
            None if n.kind == NodeKind::Hub => served.extend(account_names.iter().cloned()),
            None => {}
        }
        for u in &n.upstreams {
            if let Some(a) = &u.account {
                if account_names.contains(&a.value) {
                    served.insert(a.value.clone());
                }
            }
        }
        // An account's imports need the exporting account on the same server.
        loop {
            let extra: Vec<String> = served
                .iter()
                .filter_map(|a| accounts.iter().find(|x| &x.name == a))
                .flat_map(|a| a.imports.iter().map(|i| i.account.clone()))
                .filter(|a| !served.contains(a))
                .collect();
            if extra.is_empty() {
                break;
            }
            served.extend(extra);
        }
        for s in servers.iter_mut().filter(|s| s.cluster == n.name.value) {
            // Keep the topology's order of accounts, so output follows the file.
            s.accounts = account_names
                .iter()
                .filter(|a| served.contains(*a))
                .cloned()
                .collect();
        }
    }

    // ---- upstreams: leaf remotes, link forwards, and the loop check ----
    let mut forward_next: HashMap<usize, u16> = HashMap::new();
    let mut forward_of: HashMap<(usize, String), u16> = HashMap::new();
    let mut uf = UnionFind::default();
    for n in &nodes {
        let Some(my_cluster) = clusters.iter().find(|x| x.name == n.name.value).cloned() else {
            continue;
        };
        let mut seen_pairs: BTreeSet<(String, String, String)> = BTreeSet::new();
        for u in &n.upstreams {
            let Some(hub) = clusters.iter().find(|x| x.name == u.hub.value).cloned() else {
                c.err(unknown(
                    "hub",
                    &u.hub,
                    clusters
                        .iter()
                        .filter(|x| x.kind == NodeKind::Hub)
                        .map(|x| x.name.as_str()),
                ));
                continue;
            };
            if hub.kind != NodeKind::Hub {
                c.err(
                    Diagnostic::error(
                        format!("\"{}\" is a leaf, not a hub", u.hub.value),
                        u.hub.span.clone(),
                    )
                    .label("leaves do not accept leaf connections")
                    .help(format!(
                        "declare it as `hub \"{}\"` to make it a regional hub",
                        u.hub.value
                    )),
                );
                continue;
            }
            if hub.name == my_cluster.name {
                c.err(
                    Diagnostic::error("a hub cannot be an upstream of itself", u.hub.span.clone())
                        .label("same cluster")
                        .help("name another hub cluster"),
                );
                continue;
            }
            let Some(local) = &u.account else {
                c.err(
                    Diagnostic::error(
                        format!("upstream \"{}\" needs the local `account` it carries", u.hub.value),
                        u.span.clone(),
                    )
                    .label("no account given")
                    .help("for example: account = \"APP\" (and hub_account = \"...\" if the hub calls it otherwise)"),
                );
                continue;
            };
            if !account_names.contains(&local.value) {
                c.err(unknown(
                    "account",
                    local,
                    account_names.iter().map(String::as_str),
                ));
                continue;
            }
            let hub_account = u.hub_account.as_ref().unwrap_or(local);
            if !account_names.contains(&hub_account.value) {
                c.err(unknown(
                    "account",
                    hub_account,
                    account_names.iter().map(String::as_str),
                ));
                continue;
            }
            let hub_serves = servers
                .iter()
                .find(|s| s.cluster == hub.name)
                .is_some_and(|s| s.accounts.contains(&hub_account.value));
            if !hub_serves {
                c.err(
                    Diagnostic::error(
                        format!(
                            "account \"{}\" is bound on {} \"{}\" but hub \"{}\" does not serve it",
                            hub_account.value,
                            n.kind.as_str(),
                            n.name.value,
                            hub.name
                        ),
                        hub_account.span.clone(),
                    )
                    .label("bound on one side only")
                    .help(format!(
                        "add \"{}\" to the `accounts` of hub \"{}\"",
                        hub_account.value, hub.name
                    )),
                );
                continue;
            }
            let key = (
                hub.name.clone(),
                local.value.clone(),
                hub_account.value.clone(),
            );
            if !seen_pairs.insert(key) {
                c.err(
                    Diagnostic::error("this upstream is declared twice", u.span.clone())
                        .label("same hub and accounts as an earlier upstream")
                        .help("remove one"),
                );
                continue;
            }
            // The loop check: interest flows both ways over a leaf link, so the
            // links of one account must form a forest of (cluster, account) nodes.
            let a = (my_cluster.name.clone(), local.value.clone());
            let b = (hub.name.clone(), hub_account.value.clone());
            if !uf.union(a, b) {
                c.err(
                    Diagnostic::error(
                        format!(
                            "leaf links form a loop in account \"{}\": {} \"{}\" already reaches hub \"{}\" through other links",
                            hub_account.value, n.kind.as_str(), n.name.value, hub.name
                        ),
                        u.span.clone(),
                    )
                    .label("this link closes the loop")
                    .help("both nats-server and canopy-server detect such a loop ($LDS) and refuse the link: `-ERR 'Loop detected for leafnode account=...'`, retried every 30s. Make the links a tree (each regional hub a leaf of exactly one parent), join regions with gateways, or carry each link in its own account with explicit imports and exports"),
                );
                continue;
            }
            let mut deny = |l: Option<&StrList>, what: &str| check_subjects(&mut c, l, what);
            let deny_imports = deny(u.deny_imports.as_ref(), "deny_imports");
            let deny_exports = deny(u.deny_exports.as_ref(), "deny_exports");
            if let Some(x) = &u.compression {
                if !COMPRESSION.contains(&x.value.as_str()) {
                    c.err(
                        Diagnostic::error(
                            format!("unknown compression \"{}\"", x.value),
                            x.span.clone(),
                        )
                        .label("not a compression mode")
                        .help(format!("one of: {}", COMPRESSION.join(", "))),
                    );
                } else if x.value != "off"
                    && n.image
                        .as_ref()
                        .map_or(image.as_str(), |i| i.value.as_str())
                        .starts_with("canopy-server")
                {
                    c.err(
                        Diagnostic::error(
                            format!("canopy-server does not serve compression \"{}\"", x.value),
                            x.span.clone(),
                        )
                        .label("S2 is not served yet")
                        .help("write compression = \"off\" (canopy-server refuses other modes at start), or run this server on the official nats-server image"),
                    );
                }
            }
            // How this site reaches the hub's site.
            let my_site = site_named(&my_cluster.site).map(|s| s.provider);
            let hub_site = site_named(&hub.site).map(|s| s.provider);
            let link_idx = if my_cluster.site == hub.site
                || (my_site == Some(Provider::Local) && hub_site == Some(Provider::Local))
            {
                None
            } else {
                let key = if my_cluster.site < hub.site {
                    (my_cluster.site.clone(), hub.site.clone())
                } else {
                    (hub.site.clone(), my_cluster.site.clone())
                };
                match link_pairs.get(&key) {
                    Some(i) => Some(*i),
                    None => {
                        c.err(
                            Diagnostic::error(
                                format!(
                                    "no link joins site \"{}\" to site \"{}\" (hub \"{}\")",
                                    my_cluster.site, hub.site, hub.name
                                ),
                                u.hub.span.clone(),
                            )
                            .label("this upstream crosses sites")
                            .help(format!(
                                "add `link \"{}-{}\" {{ sites = [\"{}\", \"{}\"] }}` for the VPN between them",
                                my_cluster.site, hub.site, my_cluster.site, hub.site
                            )),
                        );
                        continue;
                    }
                }
            };
            let mut dials = Vec::new();
            for hs in &hub.servers {
                let Some(h) = servers.iter().find(|x| &x.name == hs) else {
                    continue;
                };
                let lp = h.leaf_port.unwrap_or(7422);
                match link_idx {
                    None => dials.push(Dial {
                        host: h.host.clone(),
                        port: lp,
                        server: h.name.clone(),
                    }),
                    Some(li) => {
                        let listen = *forward_of.entry((li, h.name.clone())).or_insert_with(|| {
                            let next = forward_next.entry(li).or_insert(7422);
                            let p = *next;
                            *next += 1;
                            links[li].forwards.push(Forward {
                                listen: p,
                                server: h.name.clone(),
                                port: lp,
                            });
                            p
                        });
                        dials.push(Dial {
                            host: links[li].service.clone(),
                            port: listen,
                            server: h.name.clone(),
                        });
                    }
                }
            }
            for me in my_cluster.servers.iter() {
                let identity = format!("{me}.{}.{}.{}", local.value, hub.name, hub_account.value);
                if let Some(s) = servers.iter_mut().find(|s| &s.name == me) {
                    s.remotes.push(Remote {
                        hub: hub.name.clone(),
                        local_account: local.value.clone(),
                        hub_account: hub_account.value.clone(),
                        identity: identity.clone(),
                        dials: dials.clone(),
                        link: link_idx.map(|i| links[i].name.clone()),
                        deny_imports: deny_imports.clone(),
                        deny_exports: deny_exports.clone(),
                        compression: u.compression.as_ref().map(|x| x.value.clone()),
                    });
                }
                for h in servers.iter_mut().filter(|s| s.cluster == hub.name) {
                    h.leaf_users.push(LeafUser {
                        identity: identity.clone(),
                        account: hub_account.value.clone(),
                        from: me.clone(),
                    });
                }
            }
        }
    }

    // Certificate names: the server's own, and every link service that forwards to it.
    for s in servers.iter_mut() {
        s.dns_names.insert(s.name.clone());
        s.dns_names.insert("localhost".into());
        if s.leaf_lb.is_some() {
            s.dns_names
                .insert(crate::render::terraform::lb_name(&s.cluster));
        }
        for l in &links {
            if l.forwards.iter().any(|f| f.server == s.name) {
                s.dns_names.insert(l.service.clone());
            }
        }
    }

    if !c.d.is_empty() {
        return Err(c.d);
    }
    Ok(Model {
        name,
        image,
        tls,
        ping_interval,
        leaf_auth,
        sites,
        links,
        accounts,
        clusters,
        servers,
    })
}

/// Check a mapping destination: a subject whose `$N` / `{{wildcard(N)}}` references
/// name wildcards the source has.
fn check_mapping_destination(from: &str, to: &Str) -> Option<Diagnostic> {
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

fn span_or(p: &Option<Spanned<u64>>, name: &Str) -> Range<usize> {
    p.as_ref().map_or(name.span.clone(), |p| p.span.clone())
}

fn duplicate(what: &str, n: &Str) -> Diagnostic {
    Diagnostic::error(format!("duplicate {what} \"{}\"", n.value), n.span.clone())
        .label("defined again here")
        .help("names must be unique; rename or merge the two blocks")
}

fn missing(attr: &str, n: &Str, kind: &str, example: &str) -> Diagnostic {
    Diagnostic::error(
        format!("{kind} \"{}\" has no `{attr}`", n.value),
        n.span.clone(),
    )
    .label(format!("`{attr}` is required"))
    .help(format!("for example: {example}"))
}

fn unknown<'a>(what: &str, n: &Str, names: impl Iterator<Item = &'a str>) -> Diagnostic {
    Diagnostic::error(format!("unknown {what} \"{}\"", n.value), n.span.clone())
        .label(format!("no {what} has this name"))
        .help(defined(names))
}

#[derive(Default)]
struct UnionFind {
    parent: HashMap<(String, String), (String, String)>,
}

impl UnionFind {
    fn find(&mut self, x: (String, String)) -> (String, String) {
        let mut cur = x;
        loop {
            let p = self
                .parent
                .get(&cur)
                .cloned()
                .unwrap_or_else(|| cur.clone());
            if p == cur {
                return cur;
            }
            cur = p;
        }
    }
    /// Join two nodes; false if they were already joined (the new edge closes a loop).
    fn union(&mut self, a: (String, String), b: (String, String)) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        self.parent.insert(ra, rb);
        true
    }
}

/// Risky but legal choices (`canopy lint`).
pub fn lint(t: &Topology, m: &Model) -> Warnings {
    let mut w = Vec::new();
    if !m.tls {
        let span = t.defaults.tls.as_ref().map_or(0..0, |b| b.span.clone());
        for l in &m.links {
            w.push(
                Diagnostic::warning(
                    format!("no TLS across site link \"{}\" ({})", l.name, l.vpn),
                    span.clone(),
                )
                .label("TLS is off for every listener")
                .help("leaf traffic crosses the link in clear text unless the VPN encrypts it; set `tls = true`"),
            );
        }
    }
    if m.leaf_auth == LeafAuth::Password {
        let span = t
            .defaults
            .leaf_auth
            .as_ref()
            .map_or(0..0, |b| b.span.clone());
        w.push(
            Diagnostic::warning("leaf links authenticate with passwords", span)
                .label("each leaf's .conf carries its link password in the remote URL")
                .help("with TLS on, leaf_auth = \"mtls\" keeps every secret out of the configs"),
        );
    }
    for n in t.hubs.iter().chain(t.leaves.iter()) {
        for u in &n.upstreams {
            if u.deny_exports.as_ref().is_none_or(|l| l.value.is_empty()) {
                w.push(
                    Diagnostic::warning(
                        format!(
                            "{} \"{}\" exports every subject of account \"{}\" to hub \"{}\"",
                            n.kind.as_str(),
                            n.name.value,
                            u.account.as_ref().map_or("?", |a| a.value.as_str()),
                            u.hub.value
                        ),
                        u.span.clone(),
                    )
                    .label("no deny rules on this link")
                    .help("add deny_exports (and deny_imports) for subjects that must stay on the site, e.g. [\"local.>\"]"),
                );
            }
            let hub_size = m
                .clusters
                .iter()
                .find(|c| c.name == u.hub.value)
                .map_or(0, |c| c.servers.len());
            if hub_size == 1 {
                w.push(
                    Diagnostic::warning(
                        format!("upstream \"{}\" has a single hub URL", u.hub.value),
                        u.hub.span.clone(),
                    )
                    .label("nothing to fail over to")
                    .help("give the hub cluster `size = 3` so the leaf can fail over"),
                );
            }
        }
    }
    w
}
