//! The topology language: HCL read with hcl-edit (the parser of the hcl-rs project),
//! so every block, attribute and value keeps its place in the file for diagnostics.
//! This module only reads the file's shape — block and attribute names, value types —
//! into plain structs; what the values mean is checked in the model (`model::build`).
//! docs/topology.md is the reference for users.

use crate::diag::Diagnostic;
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{Block, Body, Structure};
use hcl_edit::Span;
use std::collections::HashSet;
use std::ops::Range;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Range<usize>,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Range<usize>) -> Self {
        Spanned { value, span }
    }
}

pub type Str = Spanned<String>;
pub type StrList = Spanned<Vec<Str>>;

#[derive(Debug, Default)]
pub struct Topology {
    pub name: Option<Str>,
    pub defaults: Defaults,
    pub sites: Vec<Site>,
    pub links: Vec<Link>,
    pub accounts: Vec<Account>,
    pub hubs: Vec<Node>,
    pub leaves: Vec<Node>,
}

#[derive(Debug, Default)]
pub struct Defaults {
    pub image: Option<Str>,
    pub tls: Option<Spanned<bool>>,
    pub leaf_auth: Option<Str>,
    pub ping_interval: Option<Str>,
}

#[derive(Debug)]
pub struct Site {
    pub name: Str,
    pub provider: Option<Str>,
    pub region: Option<Str>,
    pub cidr: Option<Str>,
    pub client_cidrs: Option<StrList>,
    pub admin_cidrs: Option<StrList>,
    pub asn: Option<Spanned<u64>>,
}

#[derive(Debug)]
pub struct Link {
    pub name: Str,
    pub sites: Option<StrList>,
    pub vpn: Option<Str>,
    pub latency: Option<Str>,
    pub jitter: Option<Str>,
    pub bandwidth: Option<Str>,
}

#[derive(Debug)]
pub struct Account {
    pub name: Str,
    pub users: Vec<User>,
    pub exports: Vec<Export>,
    pub imports: Vec<Import>,
    pub mappings: Vec<(Str, Str)>,
}

#[derive(Debug)]
pub struct User {
    pub name: Str,
    pub publish: Option<StrList>,
    pub subscribe: Option<StrList>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    Stream,
    Service,
}

impl FlowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::Stream => "stream",
            FlowKind::Service => "service",
        }
    }
}

#[derive(Debug)]
pub struct Export {
    pub kind: FlowKind,
    pub subject: Str,
}

#[derive(Debug)]
pub struct Import {
    pub kind: FlowKind,
    pub subject: Str,
    pub account: Option<Str>,
    pub to: Option<Str>,
    pub span: Range<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Hub,
    Leaf,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Hub => "hub",
            NodeKind::Leaf => "leaf",
        }
    }
}

/// A `hub` cluster or a `leaf` server.
#[derive(Debug)]
pub struct Node {
    pub kind: NodeKind,
    pub name: Str,
    pub site: Option<Str>,
    pub image: Option<Str>,
    pub size: Option<Spanned<u64>>,
    pub client_port: Option<Spanned<u64>>,
    pub http_port: Option<Spanned<u64>>,
    pub leaf_port: Option<Spanned<u64>>,
    pub cluster_port: Option<Spanned<u64>>,
    pub accounts: Option<StrList>,
    pub leaf_lb: Option<Str>,
    pub jetstream: Option<JetStream>,
    pub upstreams: Vec<Upstream>,
}

#[derive(Debug)]
pub struct JetStream {
    pub domain: Option<Str>,
    pub max_memory: Option<Str>,
    pub max_file: Option<Str>,
    pub span: Range<usize>,
}

/// One leaf link from a node up to a hub cluster, in one account.
#[derive(Debug)]
pub struct Upstream {
    pub hub: Str,
    pub account: Option<Str>,
    pub hub_account: Option<Str>,
    pub deny_imports: Option<StrList>,
    pub deny_exports: Option<StrList>,
    pub compression: Option<Str>,
    pub span: Range<usize>,
}

/// Parse a topology file. Syntax errors come back as one diagnostic at the place
/// hcl-edit stopped; shape errors (unknown blocks and attributes, wrong types) are
/// all collected.
pub fn parse(text: &str) -> Result<Topology, Vec<Diagnostic>> {
    let body = hcl_edit::parser::parse_body(text).map_err(|e| {
        let loc = e.location();
        let at = offset_of(text, loc.line(), loc.column());
        vec![Diagnostic::error(
            format!("syntax error: {}", e.message()),
            at..(at + 1).min(text.len()).max(at),
        )
        .label("here")
        .help("the topology file is HCL; see docs/topology.md")]
    })?;
    let mut r = Reader { d: Vec::new() };
    let t = r.topology(&body);
    if r.d.is_empty() {
        Ok(t)
    } else {
        Err(r.d)
    }
}

/// Byte offset of a 1-based line and column (in characters).
fn offset_of(text: &str, line: usize, col: usize) -> usize {
    let mut off = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return off
                + l.char_indices()
                    .nth(col.saturating_sub(1))
                    .map_or(l.len(), |(b, _)| b);
        }
        off += l.len();
    }
    text.len()
}

struct Reader {
    d: Vec<Diagnostic>,
}

fn span_of(s: &impl Span) -> Range<usize> {
    s.span().unwrap_or(0..0)
}

/// What a block may contain.
struct Shape {
    what: String,
    attrs: &'static [&'static str],
    blocks: &'static [&'static str],
}

impl Reader {
    fn topology(&mut self, body: &Body) -> Topology {
        let shape = Shape {
            what: "the top level".into(),
            attrs: &["name"],
            blocks: &["defaults", "site", "link", "account", "hub", "leaf"],
        };
        self.check_shape(body, &shape);
        let mut t = Topology {
            name: self.string(body, "name"),
            ..Topology::default()
        };
        let mut saw_defaults = false;
        for b in body.blocks() {
            match b.ident.as_str() {
                "defaults" => {
                    if saw_defaults {
                        self.d.push(
                            Diagnostic::error("duplicate `defaults` block", span_of(&b.ident))
                                .label("second `defaults` here")
                                .help("merge the two blocks into one"),
                        );
                    }
                    saw_defaults = true;
                    self.no_labels(b);
                    t.defaults = self.defaults(&b.body);
                }
                "site" => {
                    if let Some(name) = self.one_label(b) {
                        t.sites.push(self.site(name, &b.body));
                    }
                }
                "link" => {
                    if let Some(name) = self.one_label(b) {
                        t.links.push(self.link(name, &b.body));
                    }
                }
                "account" => {
                    if let Some(name) = self.one_label(b) {
                        t.accounts.push(self.account(name, &b.body));
                    }
                }
                "hub" => {
                    if let Some(name) = self.one_label(b) {
                        t.hubs.push(self.node(NodeKind::Hub, name, &b.body));
                    }
                }
                "leaf" => {
                    if let Some(name) = self.one_label(b) {
                        t.leaves.push(self.node(NodeKind::Leaf, name, &b.body));
                    }
                }
                _ => {}
            }
        }
        t
    }

    fn defaults(&mut self, body: &Body) -> Defaults {
        self.check_shape(
            body,
            &Shape {
                what: "`defaults`".into(),
                attrs: &["image", "tls", "leaf_auth", "ping_interval"],
                blocks: &[],
            },
        );
        Defaults {
            image: self.string(body, "image"),
            tls: self.boolean(body, "tls"),
            leaf_auth: self.string(body, "leaf_auth"),
            ping_interval: self.string(body, "ping_interval"),
        }
    }

    fn site(&mut self, name: Str, body: &Body) -> Site {
        self.check_shape(
            body,
            &Shape {
                what: format!("site \"{}\"", name.value),
                attrs: &[
                    "provider",
                    "region",
                    "cidr",
                    "client_cidrs",
                    "admin_cidrs",
                    "asn",
                ],
                blocks: &[],
            },
        );
        Site {
            provider: self.string(body, "provider"),
            region: self.string(body, "region"),
            cidr: self.string(body, "cidr"),
            client_cidrs: self.strings(body, "client_cidrs"),
            admin_cidrs: self.strings(body, "admin_cidrs"),
            asn: self.int(body, "asn"),
            name,
        }
    }

    fn link(&mut self, name: Str, body: &Body) -> Link {
        self.check_shape(
            body,
            &Shape {
                what: format!("link \"{}\"", name.value),
                attrs: &["sites", "vpn", "latency", "jitter", "bandwidth"],
                blocks: &[],
            },
        );
        Link {
            sites: self.strings(body, "sites"),
            vpn: self.string(body, "vpn"),
            latency: self.string(body, "latency"),
            jitter: self.string(body, "jitter"),
            bandwidth: self.string(body, "bandwidth"),
            name,
        }
    }

    fn account(&mut self, name: Str, body: &Body) -> Account {
        self.check_shape(
            body,
            &Shape {
                what: format!("account \"{}\"", name.value),
                attrs: &["mappings"],
                blocks: &["user", "export", "import"],
            },
        );
        let mut a = Account {
            users: Vec::new(),
            exports: Vec::new(),
            imports: Vec::new(),
            mappings: self.string_map(body, "mappings"),
            name,
        };
        for b in body.blocks() {
            match b.ident.as_str() {
                "user" => {
                    if let Some(user) = self.one_label(b) {
                        self.check_shape(
                            &b.body,
                            &Shape {
                                what: format!("user \"{}\"", user.value),
                                attrs: &["publish", "subscribe"],
                                blocks: &[],
                            },
                        );
                        a.users.push(User {
                            publish: self.strings(&b.body, "publish"),
                            subscribe: self.strings(&b.body, "subscribe"),
                            name: user,
                        });
                    }
                }
                "export" => {
                    self.no_labels(b);
                    self.check_shape(
                        &b.body,
                        &Shape {
                            what: "`export`".into(),
                            attrs: &["stream", "service"],
                            blocks: &[],
                        },
                    );
                    if let Some((kind, subject)) = self.flow(b) {
                        a.exports.push(Export { kind, subject });
                    }
                }
                "import" => {
                    self.no_labels(b);
                    self.check_shape(
                        &b.body,
                        &Shape {
                            what: "`import`".into(),
                            attrs: &["stream", "service", "account", "to"],
                            blocks: &[],
                        },
                    );
                    if let Some((kind, subject)) = self.flow(b) {
                        a.imports.push(Import {
                            kind,
                            subject,
                            account: self.string(&b.body, "account"),
                            to: self.string(&b.body, "to"),
                            span: span_of(&b.ident),
                        });
                    }
                }
                _ => {}
            }
        }
        a
    }

    /// `stream = "subject"` or `service = "subject"`, exactly one.
    fn flow(&mut self, b: &Block) -> Option<(FlowKind, Str)> {
        let stream = self.string(&b.body, "stream");
        let service = self.string(&b.body, "service");
        match (stream, service) {
            (Some(s), None) => Some((FlowKind::Stream, s)),
            (None, Some(s)) => Some((FlowKind::Service, s)),
            (Some(_), Some(s)) => {
                self.d.push(
                    Diagnostic::error(
                        format!("`{}` names both a stream and a service", b.ident.as_str()),
                        s.span,
                    )
                    .label("second subject here")
                    .help(format!("write one `{}` block for each", b.ident.as_str())),
                );
                None
            }
            (None, None) => {
                self.d.push(
                    Diagnostic::error(
                        format!("`{}` needs `stream` or `service`", b.ident.as_str()),
                        span_of(&b.ident),
                    )
                    .label("no subject given")
                    .help("for example: stream = \"sensors.>\""),
                );
                None
            }
        }
    }

    fn node(&mut self, kind: NodeKind, name: Str, body: &Body) -> Node {
        let attrs: &'static [&'static str] = match kind {
            NodeKind::Hub => &[
                "site",
                "image",
                "size",
                "client_port",
                "http_port",
                "leaf_port",
                "cluster_port",
                "accounts",
                "leaf_lb",
            ],
            NodeKind::Leaf => &["site", "image", "client_port", "http_port", "accounts"],
        };
        self.check_shape(
            body,
            &Shape {
                what: format!("{} \"{}\"", kind.as_str(), name.value),
                attrs,
                blocks: &["jetstream", "upstream"],
            },
        );
        let mut n = Node {
            kind,
            site: self.string(body, "site"),
            image: self.string(body, "image"),
            size: self.int(body, "size"),
            client_port: self.int(body, "client_port"),
            http_port: self.int(body, "http_port"),
            leaf_port: self.int(body, "leaf_port"),
            cluster_port: self.int(body, "cluster_port"),
            accounts: self.strings(body, "accounts"),
            leaf_lb: self.string(body, "leaf_lb"),
            jetstream: None,
            upstreams: Vec::new(),
            name,
        };
        for b in body.blocks() {
            match b.ident.as_str() {
                "jetstream" => {
                    self.no_labels(b);
                    self.check_shape(
                        &b.body,
                        &Shape {
                            what: "`jetstream`".into(),
                            attrs: &["domain", "max_memory", "max_file"],
                            blocks: &[],
                        },
                    );
                    if n.jetstream.is_some() {
                        self.d.push(
                            Diagnostic::error("duplicate `jetstream` block", span_of(&b.ident))
                                .label("second block here")
                                .help("merge the two blocks into one"),
                        );
                    }
                    n.jetstream = Some(JetStream {
                        domain: self.string(&b.body, "domain"),
                        max_memory: self.string(&b.body, "max_memory"),
                        max_file: self.string(&b.body, "max_file"),
                        span: span_of(&b.ident),
                    });
                }
                "upstream" => {
                    if let Some(hub) = self.one_label(b) {
                        self.check_shape(
                            &b.body,
                            &Shape {
                                what: format!("upstream \"{}\"", hub.value),
                                attrs: &[
                                    "account",
                                    "hub_account",
                                    "deny_imports",
                                    "deny_exports",
                                    "compression",
                                ],
                                blocks: &[],
                            },
                        );
                        n.upstreams.push(Upstream {
                            account: self.string(&b.body, "account"),
                            hub_account: self.string(&b.body, "hub_account"),
                            deny_imports: self.strings(&b.body, "deny_imports"),
                            deny_exports: self.strings(&b.body, "deny_exports"),
                            compression: self.string(&b.body, "compression"),
                            span: span_of(&b.ident),
                            hub,
                        });
                    }
                }
                _ => {}
            }
        }
        n
    }

    // ---- shape checks ----

    fn check_shape(&mut self, body: &Body, shape: &Shape) {
        let mut seen: HashSet<&str> = HashSet::new();
        for s in body.iter() {
            match s {
                Structure::Attribute(a) => {
                    let key = a.key.as_str();
                    if !shape.attrs.contains(&key) {
                        let mut d = Diagnostic::error(
                            format!("unknown attribute `{key}` in {}", shape.what),
                            span_of(&a.key),
                        )
                        .label("not an attribute of this block");
                        d = d.help(if shape.blocks.contains(&key) {
                            format!("`{key}` is a block: write `{key} {{ ... }}`")
                        } else {
                            expected(shape.attrs, "attributes")
                        });
                        self.d.push(d);
                    } else if !seen.insert(key) {
                        self.d.push(
                            Diagnostic::error(
                                format!("duplicate attribute `{key}`"),
                                span_of(&a.key),
                            )
                            .label("set a second time here")
                            .help("each attribute may be set once per block"),
                        );
                    }
                }
                Structure::Block(b) => {
                    let id = b.ident.as_str();
                    if !shape.blocks.contains(&id) {
                        let help = if shape.attrs.contains(&id) {
                            format!("`{id}` is an attribute: write `{id} = ...`")
                        } else {
                            expected(shape.blocks, "blocks")
                        };
                        self.d.push(
                            Diagnostic::error(
                                format!("unknown block `{id}` in {}", shape.what),
                                span_of(&b.ident),
                            )
                            .label("not expected here")
                            .help(help),
                        );
                    }
                }
            }
        }
    }

    fn one_label(&mut self, b: &Block) -> Option<Str> {
        match b.labels.as_slice() {
            [l] => Some(Spanned::new(l.as_str().to_string(), span_of(l))),
            [] => {
                let kind = b.ident.as_str();
                self.d.push(
                    Diagnostic::error(format!("`{kind}` block without a name"), span_of(&b.ident))
                        .label("a name is expected after this")
                        .help(format!("write `{kind} \"NAME\" {{ ... }}`")),
                );
                None
            }
            [_, extra, ..] => {
                self.d.push(
                    Diagnostic::error(
                        format!("`{}` block with more than one name", b.ident.as_str()),
                        span_of(extra),
                    )
                    .label("unexpected label")
                    .help("give the block exactly one name"),
                );
                None
            }
        }
    }

    fn no_labels(&mut self, b: &Block) {
        if let Some(l) = b.labels.first() {
            self.d.push(
                Diagnostic::error(
                    format!("`{}` block takes no name", b.ident.as_str()),
                    span_of(l),
                )
                .label("unexpected label")
                .help(format!("write `{} {{ ... }}`", b.ident.as_str())),
            );
        }
    }

    // ---- typed values ----

    fn literal<'b>(&mut self, body: &'b Body, key: &str) -> Option<&'b Expression> {
        let a = body.get_attribute(key)?;
        Some(&a.value)
    }

    fn type_error(&mut self, e: &Expression, key: &str, want: &str) {
        let got = match e {
            Expression::Null(_) => "null",
            Expression::Bool(_) => "a bool",
            Expression::Number(_) => "a number",
            Expression::String(_) => "a string",
            Expression::Array(_) => "a list",
            Expression::Object(_) => "an object",
            Expression::StringTemplate(_) | Expression::HeredocTemplate(_) => "a template",
            _ => "an expression",
        };
        let help = if got == "an expression" || got == "a template" {
            "values are literals: variables, functions and interpolation are not evaluated"
                .to_string()
        } else {
            format!("write {want}")
        };
        self.d.push(
            Diagnostic::error(format!("`{key}` must be {want}, found {got}"), span_of(e))
                .label(format!("expected {want}"))
                .help(help),
        );
    }

    fn string(&mut self, body: &Body, key: &str) -> Option<Str> {
        let e = self.literal(body, key)?;
        match e {
            Expression::String(s) => Some(Spanned::new(s.value().to_string(), span_of(e))),
            _ => {
                self.type_error(e, key, "a string");
                None
            }
        }
    }

    fn int(&mut self, body: &Body, key: &str) -> Option<Spanned<u64>> {
        let e = self.literal(body, key)?;
        match e {
            Expression::Number(n) => match n.value().as_u64() {
                Some(v) => Some(Spanned::new(v, span_of(e))),
                None => {
                    self.type_error(e, key, "a whole number");
                    None
                }
            },
            _ => {
                self.type_error(e, key, "a whole number");
                None
            }
        }
    }

    fn boolean(&mut self, body: &Body, key: &str) -> Option<Spanned<bool>> {
        let e = self.literal(body, key)?;
        match e {
            Expression::Bool(b) => Some(Spanned::new(*b.value(), span_of(e))),
            _ => {
                self.type_error(e, key, "true or false");
                None
            }
        }
    }

    fn strings(&mut self, body: &Body, key: &str) -> Option<StrList> {
        let e = self.literal(body, key)?;
        let Expression::Array(a) = e else {
            self.type_error(e, key, "a list of strings");
            return None;
        };
        let mut out = Vec::new();
        for item in a.iter() {
            match item {
                Expression::String(s) => {
                    out.push(Spanned::new(s.value().to_string(), span_of(item)))
                }
                _ => self.type_error(item, key, "a list of strings"),
            }
        }
        Some(Spanned::new(out, span_of(e)))
    }

    fn string_map(&mut self, body: &Body, key: &str) -> Vec<(Str, Str)> {
        let Some(e) = self.literal(body, key) else {
            return Vec::new();
        };
        let Expression::Object(o) = e else {
            self.type_error(e, key, "an object of strings");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in o.iter() {
            let k = match k {
                ObjectKey::Ident(i) => Spanned::new(i.as_str().to_string(), span_of(i)),
                ObjectKey::Expression(Expression::String(s)) => {
                    Spanned::new(s.value().to_string(), span_of(k))
                }
                ObjectKey::Expression(x) => {
                    self.type_error(x, key, "an object with string keys");
                    continue;
                }
            };
            match v.expr() {
                Expression::String(s) => {
                    out.push((k, Spanned::new(s.value().to_string(), span_of(v.expr()))))
                }
                x => self.type_error(x, key, "an object of strings"),
            }
        }
        out
    }
}

fn expected(names: &[&str], what: &str) -> String {
    if names.is_empty() {
        return format!("this block has no {what}");
    }
    let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    format!("{what} here: {}", list.join(", "))
}
