//! `authorization { }`, users, nkeys and permissions — shared by the top level,
//! accounts, `cluster` and `leafnodes`.

use super::decode::{self, Fields};
use super::error::{Diagnostic, Diagnostics};
use super::value::{Entry, Node, Pos, Value};
use std::time::Duration;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SubjectPermission {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ResponsePermission {
    pub max: i64,
    pub expires: Duration,
}

impl Default for ResponsePermission {
    fn default() -> Self {
        ResponsePermission {
            max: 1,
            expires: Duration::from_secs(120),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Permissions {
    pub publish: Option<SubjectPermission>,
    pub subscribe: Option<SubjectPermission>,
    pub allow_responses: Option<ResponsePermission>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct User {
    pub pos: Option<Pos>,
    pub user: Option<String>,
    /// Plain text, or a bcrypt hash (`$2a$...`).
    pub password: Option<String>,
    pub nkey: Option<String>,
    pub permissions: Option<Permissions>,
    /// Set for users under `accounts { X { users } }` and leafnode users with `account:`.
    pub account: Option<String>,
    pub allowed_connection_types: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Authorization {
    pub pos: Option<Pos>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub nkey: Option<String>,
    /// Account of the single user (leafnodes block only).
    pub account: Option<String>,
    pub users: Vec<User>,
    pub timeout: Option<Duration>,
    pub default_permissions: Option<Permissions>,
}

/// Which flavour of authorization block is being read: they accept different keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AuthBlock {
    TopLevel,
    Cluster,
    Leafnodes,
    Websocket,
    Mqtt,
    Gateway,
}

impl AuthBlock {
    /// How the block is named in messages.
    fn name(self) -> &'static str {
        match self {
            AuthBlock::TopLevel => "authorization",
            AuthBlock::Cluster => "cluster authorization",
            AuthBlock::Leafnodes => "leafnodes authorization",
            AuthBlock::Websocket => "websocket authorization",
            AuthBlock::Mqtt => "mqtt authorization",
            AuthBlock::Gateway => "gateway authorization",
        }
    }
}

pub fn parse_authorization(
    node: &Node,
    kind: AuthBlock,
    d: &mut Diagnostics,
) -> Option<Authorization> {
    let mut f = Fields::of(kind.name(), node, d)?;
    let mut a = Authorization {
        pos: Some(node.pos.clone()),
        ..Default::default()
    };
    a.user = f.string(&["user", "username"], d);
    a.password = f.string(&["pass", "password"], d);
    let simple = matches!(kind, AuthBlock::Websocket | AuthBlock::Mqtt);
    let link = matches!(kind, AuthBlock::Cluster | AuthBlock::Gateway);
    let link_name = if kind == AuthBlock::Cluster {
        "Cluster"
    } else {
        "Gateway"
    };
    if kind != AuthBlock::Leafnodes {
        if let Some(e) = f.take(&["token"]) {
            a.token = decode::string(e, d);
            if link {
                d.push(
                    Diagnostic::error(
                        &e.key_pos,
                        format!("{link_name} authorization does not support tokens"),
                    )
                    .with_help("use user and password"),
                );
            }
        }
    }
    if let Some(e) = f.take(&["timeout"]) {
        a.timeout = auth_timeout(e, d);
    }
    if kind == AuthBlock::Leafnodes {
        if let Some(e) = f.take(&["nkey"]) {
            a.nkey = decode::string(e, d);
            if a.nkey.as_deref().is_some_and(|k| !valid_user_nkey(k)) {
                d.push(
                    Diagnostic::error(
                        &e.value.pos,
                        "Not a valid public nkey for leafnode authorization",
                    )
                    .with_help("the leaf user's public key: 56 characters starting with U"),
                );
            }
        }
        a.account = f.string(&["account"], d);
    }
    if !simple {
        refuse_proxy_required(&mut f, d);
        if let Some(e) = f.take(&["users"]) {
            if link {
                d.push(
                    Diagnostic::error(
                        &e.key_pos,
                        format!("{link_name} authorization does not allow multiple users"),
                    )
                    .with_help("give a single user and password"),
                );
            }
            a.users = parse_users(e, kind == AuthBlock::Leafnodes, d);
        }
    }
    if matches!(
        kind,
        AuthBlock::TopLevel | AuthBlock::Cluster | AuthBlock::Gateway
    ) {
        if let Some(e) = f.take(&["permissions", "default_permission", "default_permissions"]) {
            if kind == AuthBlock::Cluster {
                d.push(
                    Diagnostic::warning(
                        &e.key_pos,
                        "cluster authorization permissions are deprecated",
                    )
                    .with_help("move them to cluster { permissions { import, export } }"),
                );
                d.push(decode::unsupported(
                    e,
                    "route import/export filters are not served: every subject crosses routes; split traffic into accounts instead",
                ));
            }
            a.default_permissions = parse_permissions(&e.value, d);
        }
        if let Some(e) = f.take(&["auth_callout", "auth_hook"]) {
            refuse_callout(e, link, link_name, d);
        }
    }
    f.finish(d, |_| None);
    if a.token.is_some() && (a.user.is_some() || !a.users.is_empty()) {
        d.push(
            Diagnostic::error(
                &node.pos,
                "token and user/users cannot both be set in authorization",
            )
            .with_help("use either a token or users"),
        );
    }
    Some(a)
}

/// `auth_callout { }`: no link takes one; elsewhere it is checked and refused.
fn refuse_callout(e: &Entry, link: bool, link_name: &str, d: &mut Diagnostics) {
    if link {
        d.push(Diagnostic::error(
            &e.key_pos,
            format!("{link_name} authorization does not support callouts"),
        ));
    } else {
        d.push(decode::unsupported(
            e,
            "no authorization callout is ever made: define the users here, or run nats-server for callout accounts",
        ));
        decode::known_keys(
            "authorization callout",
            &e.value,
            &[
                &["issuer"],
                &["account", "acc"],
                &["auth_users", "users"],
                &["xkey", "key"],
                &["allowed_accounts"],
            ],
            d,
        );
    }
}

/// The auth timeout is seconds (number or duration string); over a minute is
/// almost always an unquoted duration typo, which the official server warns about.
fn auth_timeout(e: &Entry, d: &mut Diagnostics) -> Option<Duration> {
    let t = decode::seconds(e, d)?;
    if matches!(e.value.value, Value::Int(_) | Value::Float(_)) && t > Duration::from_secs(60) {
        d.push(
            Diagnostic::warning(
                &e.key_pos,
                format!(
                    "invalid use of field \"timeout\": timeout of {} seconds is high",
                    t.as_secs_f64()
                ),
            )
            .with_help("keep it under 60 seconds; write durations quoted, e.g. \"1m\""),
        );
    }
    Some(t)
}

/// The connection types `allowed_connection_types` may name, as nats-server knows them.
pub const CONNECTION_TYPES: [&str; 6] = [
    "STANDARD",
    "WEBSOCKET",
    "LEAFNODE",
    "MQTT",
    "MQTT_WS",
    "IN_PROCESS",
];

pub fn parse_users(e: &Entry, leaf: bool, d: &mut Diagnostics) -> Vec<User> {
    let mut users = Vec::new();
    let block = if leaf { "leafnodes user" } else { "user" };
    for mut f in decode::maps(e, block, d) {
        let mut u = User {
            pos: Some(f.pos.clone()),
            ..Default::default()
        };
        u.user = f.string(&["user", "username"], d);
        u.password = f.string(&["pass", "password"], d);
        if leaf {
            u.account = f.string(&["account"], d);
            refuse_proxy_required(&mut f, d);
        } else {
            u.nkey = f.string(&["nkey"], d);
            if let Some(p) = f.take(&["permissions", "permission", "authorization"]) {
                u.permissions = parse_permissions(&p.value, d);
            }
            if let Some(e) = f.take(&["allowed_connection_types", "connection_types", "clients"]) {
                u.allowed_connection_types = decode::strings(e, d)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| t.to_ascii_uppercase())
                    .collect();
                let invalid: Vec<&String> = u
                    .allowed_connection_types
                    .iter()
                    .filter(|t| !CONNECTION_TYPES.contains(&t.as_str()))
                    .collect();
                if !invalid.is_empty() {
                    // nats-server's words: `invalid connection types ["FOO"]`.
                    d.push(
                        Diagnostic::error(
                            &e.key_pos,
                            format!("invalid connection types {invalid:?}"),
                        )
                        .with_help(format!("known types: {}", CONNECTION_TYPES.join(", "))),
                    );
                }
            }
            refuse_proxy_required(&mut f, d);
        }
        if u.nkey.is_some() && (u.user.is_some() || u.password.is_some()) {
            d.push(
                Diagnostic::error(&f.pos, "Nkey users do not take usernames or passwords")
                    .with_help("give either nkey, or user and password"),
            );
        }
        if u.user.is_none() && u.nkey.is_none() {
            d.push(Diagnostic::error(
                &f.pos,
                "a user entry needs \"user\" or \"nkey\"",
            ));
        }
        if let Some(nkey) = &u.nkey {
            if !valid_user_nkey(nkey) {
                d.push(
                    Diagnostic::error(&f.pos, format!("not a valid public user nkey: \"{nkey}\""))
                        .with_help("user nkeys are 56 characters starting with U"),
                );
            }
        }
        f.finish(d, |_| None);
        users.push(u);
    }
    users
}

fn valid_user_nkey(k: &str) -> bool {
    k.len() == 56
        && k.starts_with('U')
        && k.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

pub fn parse_permissions(node: &Node, d: &mut Diagnostics) -> Option<Permissions> {
    let mut f = Fields::of("permissions", node, d)?;
    let mut p = Permissions::default();
    if let Some(e) = f.take(&["publish", "import", "pub"]) {
        p.publish = subject_permission(&e.value, &e.key, d);
    }
    if let Some(e) = f.take(&["subscribe", "export", "sub"]) {
        p.subscribe = subject_permission(&e.value, &e.key, d);
    }
    if let Some(e) = f.take(&["allow_responses", "publish_allow_responses"]) {
        p.allow_responses = match &e.value.value {
            Value::Bool(true) => Some(ResponsePermission::default()),
            Value::Bool(false) => None,
            Value::Map(_) => {
                let mut r = Fields::of("allow_responses", &e.value, d)?;
                let mut rp = ResponsePermission::default();
                if let Some(max) = r.int(&["max", "max_msgs", "max_messages", "max_responses"], d) {
                    rp.max = max;
                }
                if let Some(exp) = r.duration(&["expires", "expiration", "ttl"], d) {
                    rp.expires = exp;
                }
                r.finish(d, |_| None);
                Some(rp)
            }
            other => {
                d.push(Diagnostic::error(
                    &e.value.pos,
                    format!(
                        "expected true, false or {{max, expires}} for allow_responses, found {}",
                        other.kind()
                    ),
                ));
                None
            }
        };
    }
    f.finish(d, |k| match k {
        "allow" | "deny" => Some("allow/deny go inside publish { } or subscribe { }".into()),
        _ => None,
    });
    Some(p)
}

/// `"subj"`, `["a", "b"]` (allow lists), or `{allow: [...], deny: [...]}`.
fn subject_permission(node: &Node, key: &str, d: &mut Diagnostics) -> Option<SubjectPermission> {
    match &node.value {
        Value::Str(_) | Value::Array(_) => Some(SubjectPermission {
            allow: decode::node_strings(node, key, d)?,
            deny: Vec::new(),
        }),
        Value::Map(_) => {
            let mut f = Fields::of("permission", node, d)?;
            let sp = SubjectPermission {
                allow: f.strings(&["allow"], d).unwrap_or_default(),
                deny: f.strings(&["deny"], d).unwrap_or_default(),
            };
            f.finish(d, |_| None);
            Some(sp)
        }
        other => {
            d.push(Diagnostic::error(
                &node.pos,
                format!(
                    "expected a subject, a list or {{allow, deny}} for \"{key}\", found {}",
                    other.kind()
                ),
            ));
            None
        }
    }
}

/// `proxy_required: true` admits a user only through a trusted proxy, and trusted
/// proxies are not served: such a user would otherwise be let in directly.
fn refuse_proxy_required(f: &mut Fields, d: &mut Diagnostics) {
    f.refuse_when(
        &["proxy_required"],
        decode::asks_for_something,
        "trusted proxies are not served, so no user can be held to one",
        d,
    );
}
