//! An account: its own subject space, its subject mappings, and the doors between
//! accounts — stream and service imports of what another account exports.

use crate::config::accounts::{ExportKind, ResponseType};
use crate::config::Options;
use crate::conn::Subscription;
use crate::mapping::Mapping;
use crate::sublist::Sublist;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub const GLOBAL: &str = "$G";

/// How long a service import's reply route lives when nobody answers.
const RESPONSE_TTL: Duration = Duration::from_secs(120);
/// Bound on pending reply routes per account: requests that never get an answer
/// must not grow memory without limit.
const MAX_RESPONSE_ROUTES: usize = 100_000;

/// Another account imports this account's stream `subject`.
pub struct StreamImporter {
    pub subject: String,
    pub importer: Arc<Account>,
    pub prefix: Option<String>,
    pub to: Option<String>,
}

/// This account imports a service: requests on `local` go to `target` on `subject`.
pub struct ServiceImport {
    pub local: String,
    pub target: Arc<Account>,
    pub subject: String,
    pub response: ResponseType,
}

/// Where a reply published on `_R_.xxx` in the exporting account goes back to.
pub struct ReplyPath {
    pub account: Arc<Account>,
    pub reply: String,
    pub singleton: bool,
    pub expires: Instant,
}

pub struct Account {
    pub name: String,
    pub sublist: Sublist<Subscription>,
    pub mappings: Vec<Mapping>,
    /// Filled once all accounts exist.
    pub stream_importers: OnceLock<Vec<StreamImporter>>,
    pub service_imports: OnceLock<Vec<ServiceImport>>,
    pub responses: Mutex<ResponseTable>,
    /// Whether any import touches this account (so the publish path must look).
    crosses: OnceLock<bool>,
    /// Leaf links bound to this account: they hear about its interest.
    pub leafs: parking_lot::RwLock<Vec<Arc<crate::conn::Conn>>>,
    /// The server's routes (world by every account): they hear about interest that
    /// did not itself come over a route. Set once the server exists.
    pub routes: OnceLock<crate::conn::Routes>,
}

impl Account {
    pub fn new(name: &str) -> Self {
        Self::with_mappings(name, Vec::new())
    }

    pub fn with_mappings(name: &str, mappings: Vec<Mapping>) -> Self {
        Account {
            name: name.to_string(),
            sublist: Sublist::new(),
            mappings,
            stream_importers: OnceLock::new(),
            service_imports: OnceLock::new(),
            responses: Mutex::new(ResponseTable::default()),
            crosses: OnceLock::new(),
            leafs: parking_lot::RwLock::new(Vec::new()),
            routes: OnceLock::new(),
        }
    }

    /// Interest in (subject, queue) grew or shrank by `delta` on connection `origin`:
    /// every other leaf link of this account is told.
    pub fn interest_changed(
        &self,
        subject: &str,
        queue: Option<&str>,
        delta: i32,
        origin: &crate::conn::Conn,
    ) {
        // Interest learned from a hub (over a link this server dialled) goes down to
        // accepted leafs, never up another dialled link: that keeps trees loop-free.
        // Interest from a route is a peer's: it relays that up its own spoke links.
        let from_spoke = origin.is_spoke() || origin.is_route();
        let leafs = self.leafs.read();
        for l in leafs
            .iter()
            .filter(|l| l.cid != origin.cid && !(from_spoke && l.is_spoke()))
        {
            l.leaf_interest(subject, queue, delta);
        }
        drop(leafs);
        // One hop: interest learned over a route is never passed to another route.
        // Interest from a hub (a spoke link) is not either: every server of a cluster
        // dials the hub itself and hears it there; relaying it would bring a server's
        // own interest back down another server's link (a false loop).
        if origin.is_route() || origin.is_spoke() {
            return;
        }
        if let Some(routes) = self.routes.get() {
            for r in routes.read().iter() {
                r.route_interest(&self.name, subject, queue, delta);
            }
        }
    }

    /// Whether messages in this account may cross to another: it has importers,
    /// imports services, or answers imported services. Computed once at start.
    pub fn crosses_accounts(&self) -> bool {
        self.crosses.get().copied().unwrap_or(false)
    }

    /// Remember where a reply on `reply` in this account must go.
    pub fn add_response_route(&self, reply: String, route: ReplyPath) {
        self.responses.lock().insert(reply, route);
    }

    /// The route for a reply subject, consumed if the service answers once.
    pub fn take_response_route(&self, reply: &str) -> Option<(Arc<Account>, String)> {
        self.responses.lock().take(reply)
    }
}

/// Reply routes with their expiry order: expired routes are dropped as new ones come
/// in (amortised O(1)), and when the table is full the oldest route gives way.
#[derive(Default)]
pub struct ResponseTable {
    routes: HashMap<String, ReplyPath>,
    order: std::collections::VecDeque<(Instant, String)>,
}

impl ResponseTable {
    fn insert(&mut self, reply: String, route: ReplyPath) {
        let now = Instant::now();
        // Drop expired routes from the front; when full, the oldest goes regardless.
        // (Answered routes leave `routes` at once and their `order` entry later.)
        while let Some((expires, _)) = self.order.front() {
            let full = self.order.len() >= MAX_RESPONSE_ROUTES;
            if *expires > now && !full {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.routes.remove(&old);
            }
        }
        self.order.push_back((route.expires, reply.clone()));
        self.routes.insert(reply, route);
    }

    fn take(&mut self, reply: &str) -> Option<(Arc<Account>, String)> {
        let route = self.routes.get(reply)?;
        if route.expires < Instant::now() {
            self.routes.remove(reply);
            return None;
        }
        let out = (route.account.clone(), route.reply.clone());
        if route.singleton {
            self.routes.remove(reply);
        }
        Some(out)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// Every account the options define, plus `$G`, with mappings compiled and imports wired.
pub fn build_accounts(o: &Options) -> HashMap<String, Arc<Account>> {
    let compile = |ms: &[crate::config::accounts::Mapping]| {
        ms.iter().map(Mapping::compile).collect::<Vec<_>>()
    };
    let mut accounts = HashMap::new();
    accounts.insert(
        GLOBAL.to_string(),
        Arc::new(Account::with_mappings(GLOBAL, compile(&o.mappings))),
    );
    for a in &o.accounts {
        accounts.insert(
            a.name.clone(),
            Arc::new(Account::with_mappings(&a.name, compile(&a.mappings))),
        );
    }
    let mut streams: HashMap<String, Vec<StreamImporter>> = HashMap::new();
    let mut services: HashMap<String, Vec<ServiceImport>> = HashMap::new();
    for a in &o.accounts {
        let Some(importer) = accounts.get(&a.name).cloned() else {
            continue;
        };
        for imp in &a.imports {
            let Some(exporter) = accounts.get(&imp.account).cloned() else {
                continue;
            };
            match imp.kind {
                ExportKind::Stream => {
                    streams
                        .entry(imp.account.clone())
                        .or_default()
                        .push(StreamImporter {
                            subject: imp.subject.clone(),
                            importer: importer.clone(),
                            prefix: imp.prefix.clone(),
                            to: imp.to.clone(),
                        })
                }
                ExportKind::Service => {
                    let response = o
                        .accounts
                        .iter()
                        .find(|x| x.name == imp.account)
                        .and_then(|x| {
                            x.exports.iter().find(|e| {
                                e.kind == ExportKind::Service
                                    && crate::subject::is_subset(&imp.subject, &e.subject)
                            })
                        })
                        .map(|e| e.response_type.clone())
                        .unwrap_or(ResponseType::Singleton);
                    services
                        .entry(a.name.clone())
                        .or_default()
                        .push(ServiceImport {
                            local: imp.to.clone().unwrap_or_else(|| imp.subject.clone()),
                            target: exporter,
                            subject: imp.subject.clone(),
                            response,
                        })
                }
            }
        }
    }
    let service_targets: Vec<String> = services
        .values()
        .flatten()
        .map(|si| si.target.name.clone())
        .collect();
    for (name, acc) in &accounts {
        let s = streams.remove(name).unwrap_or_default();
        let v = services.remove(name).unwrap_or_default();
        let _ = acc
            .crosses
            .set(!s.is_empty() || !v.is_empty() || service_targets.contains(name));
        let _ = acc.stream_importers.set(s);
        let _ = acc.service_imports.set(v);
    }
    accounts
}

/// The subject an importer sees for `subj`: `prefix.subj`, or `to` with the
/// export's wildcards carried over token by token.
pub fn imported_subject(imp: &StreamImporter, subj: &str) -> String {
    if let Some(p) = &imp.prefix {
        return format!("{p}.{subj}");
    }
    match &imp.to {
        Some(to) => translate(&imp.subject, to, subj),
        None => subj.to_string(),
    }
}

/// Map `subj` (matched by `from`) onto `to`: wildcard tokens of `to` take the
/// subject's tokens at the same wildcard positions of `from`.
pub fn translate(from: &str, to: &str, subj: &str) -> String {
    let tokens: Vec<&str> = subj.split('.').collect();
    let from_tokens: Vec<&str> = from.split('.').collect();
    let wild: Vec<&str> = from_tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == "*")
        .filter_map(|(i, _)| tokens.get(i).copied())
        .collect();
    let rest: Option<String> = from_tokens
        .iter()
        .position(|t| *t == ">")
        .map(|i| tokens[i.min(tokens.len())..].join("."));
    let mut next = wild.iter();
    to.split('.')
        .map(|t| match t {
            "*" => next.next().map(|s| s.to_string()).unwrap_or_default(),
            ">" => rest.clone().unwrap_or_default(),
            lit => lit.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A fresh reply subject for a service import's response route.
pub fn response_subject() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let bytes: [u8; 16] = rand::random();
    let token: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("_R_.{token}")
}

pub fn response_ttl() -> Instant {
    Instant::now() + RESPONSE_TTL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_import_subjects_take_prefix_or_to() {
        assert_eq!(translate("events.*", "ev.*", "events.x"), "ev.x");
        assert_eq!(translate("events.>", "in.>", "events.a.b"), "in.a.b");
        let imp = StreamImporter {
            subject: "e.>".into(),
            importer: Arc::new(Account::new("I")),
            prefix: Some("app".into()),
            to: None,
        };
        assert_eq!(imported_subject(&imp, "e.1"), "app.e.1");
    }
}
