//! The resolved model's types: what every renderer reads.

use crate::topology::{FlowKind, NodeKind};
use std::collections::BTreeSet;

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

/// The server binary a server runs: the image decides.
pub fn binary(s: &Server) -> &'static str {
    if s.image.starts_with("canopy-server") {
        "canopy-server"
    } else {
        "nats-server"
    }
}
