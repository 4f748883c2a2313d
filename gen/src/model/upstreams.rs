//! Upstreams: each leaf remote with the addresses it dials (directly on its own
//! site, or through a port of the linksim service that stands for a site link), the
//! leaf users hubs accept, and the loop check.

use super::check::{check_subjects, unknown, Ctx, COMPRESSION};
use super::links::{pair, Pairs};
use super::sites::named;
use super::types::{Cluster, Dial, Forward, LeafUser, Link, Provider, Remote, Server, Site};
use crate::diag::Diagnostic;
use crate::topology::{self, NodeKind, Str, StrList};
use std::collections::{BTreeSet, HashMap};

/// What the upstreams are resolved against, and the model parts they fill in.
pub(super) struct Upstreams<'a> {
    pub(super) image: &'a str,
    pub(super) sites: &'a [Site],
    pub(super) pairs: &'a Pairs,
    pub(super) account_names: Vec<String>,
    pub(super) clusters: &'a [Cluster],
    pub(super) servers: &'a mut [Server],
    pub(super) links: &'a mut [Link],
}

/// Where a link's linksim service listens for each hub server behind it.
#[derive(Default)]
struct Forwards {
    next: HashMap<usize, u16>,
    of: HashMap<(usize, String), u16>,
}

/// The accounts a link carries: its own on the leaf side, the hub's on the other.
struct Bound<'t> {
    local: &'t Str,
    hub: &'t Str,
}

pub(super) fn resolve(c: &mut Ctx, nodes: &[&topology::Node], mut up: Upstreams) {
    let mut forwards = Forwards::default();
    let mut uf = UnionFind::default();
    for n in nodes {
        let Some(my_cluster) = up.clusters.iter().find(|x| x.name == n.name.value).cloned() else {
            continue;
        };
        let mut seen_pairs: BTreeSet<(String, String, String)> = BTreeSet::new();
        for u in &n.upstreams {
            let Some(hub) = up.hub(c, u, &my_cluster) else {
                continue;
            };
            let Some(bound) = up.bound(c, n, u, &hub) else {
                continue;
            };
            let key = (
                hub.name.clone(),
                bound.local.value.clone(),
                bound.hub.value.clone(),
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
            let a = (my_cluster.name.clone(), bound.local.value.clone());
            let b = (hub.name.clone(), bound.hub.value.clone());
            if !uf.union(a, b) {
                c.err(
                    Diagnostic::error(
                        format!(
                            "leaf links form a loop in account \"{}\": {} \"{}\" already reaches hub \"{}\" through other links",
                            bound.hub.value, n.kind.as_str(), n.name.value, hub.name
                        ),
                        u.span.clone(),
                    )
                    .label("this link closes the loop")
                    .help("both nats-server and canopy-server detect such a loop ($LDS) and refuse the link: `-ERR 'Loop detected for leafnode account=...'`, retried every 30s. Make the links a tree (each regional hub a leaf of exactly one parent), join regions with gateways, or carry each link in its own account with explicit imports and exports"),
                );
                continue;
            }
            let mut deny = |l: Option<&StrList>, what: &str| check_subjects(c, l, what);
            let deny_imports = deny(u.deny_imports.as_ref(), "deny_imports");
            let deny_exports = deny(u.deny_exports.as_ref(), "deny_exports");
            check_compression(c, n, u, up.image);
            let Ok(link_idx) = up.link_to(c, u, &my_cluster, &hub) else {
                continue;
            };
            let dials = up.dials(&mut forwards, &hub, link_idx);
            let remote = Remote {
                hub: hub.name.clone(),
                local_account: bound.local.value.clone(),
                hub_account: bound.hub.value.clone(),
                // Each server of the cluster has its own: `attach` names it.
                identity: String::new(),
                dials,
                link: link_idx.map(|i| up.links[i].name.clone()),
                deny_imports,
                deny_exports,
                compression: u.compression.as_ref().map(|x| x.value.clone()),
            };
            up.attach(&my_cluster, remote);
        }
    }
}

impl Upstreams<'_> {
    /// The hub cluster an upstream names: a known hub, not the node's own cluster.
    fn hub(&self, c: &mut Ctx, u: &topology::Upstream, my_cluster: &Cluster) -> Option<Cluster> {
        let Some(hub) = self
            .clusters
            .iter()
            .find(|x| x.name == u.hub.value)
            .cloned()
        else {
            c.err(unknown(
                "hub",
                &u.hub,
                self.clusters
                    .iter()
                    .filter(|x| x.kind == NodeKind::Hub)
                    .map(|x| x.name.as_str()),
            ));
            return None;
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
            return None;
        }
        if hub.name == my_cluster.name {
            c.err(
                Diagnostic::error("a hub cannot be an upstream of itself", u.hub.span.clone())
                    .label("same cluster")
                    .help("name another hub cluster"),
            );
            return None;
        }
        Some(hub)
    }

    /// The accounts an upstream binds: known on both sides, and served by the hub.
    fn bound<'t>(
        &self,
        c: &mut Ctx,
        n: &topology::Node,
        u: &'t topology::Upstream,
        hub: &Cluster,
    ) -> Option<Bound<'t>> {
        let account_names = &self.account_names;
        let Some(local) = &u.account else {
            c.err(
                Diagnostic::error(
                    format!("upstream \"{}\" needs the local `account` it carries", u.hub.value),
                    u.span.clone(),
                )
                .label("no account given")
                .help("for example: account = \"APP\" (and hub_account = \"...\" if the hub calls it otherwise)"),
            );
            return None;
        };
        if !account_names.contains(&local.value) {
            c.err(unknown(
                "account",
                local,
                account_names.iter().map(String::as_str),
            ));
            return None;
        }
        let hub_account = u.hub_account.as_ref().unwrap_or(local);
        if !account_names.contains(&hub_account.value) {
            c.err(unknown(
                "account",
                hub_account,
                account_names.iter().map(String::as_str),
            ));
            return None;
        }
        let hub_serves = self
            .servers
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
            return None;
        }
        Some(Bound {
            local,
            hub: hub_account,
        })
    }

    /// How this site reaches the hub's site: directly (`None`), or across the link
    /// at this index. `Err` when no link joins them.
    fn link_to(
        &self,
        c: &mut Ctx,
        u: &topology::Upstream,
        my_cluster: &Cluster,
        hub: &Cluster,
    ) -> Result<Option<usize>, ()> {
        let my_site = named(self.sites, &my_cluster.site).map(|s| s.provider);
        let hub_site = named(self.sites, &hub.site).map(|s| s.provider);
        if my_cluster.site == hub.site
            || (my_site == Some(Provider::Local) && hub_site == Some(Provider::Local))
        {
            return Ok(None);
        }
        match self.pairs.get(&pair(&my_cluster.site, &hub.site)) {
            Some(i) => Ok(Some(*i)),
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
                Err(())
            }
        }
    }

    /// The address of each hub server: its own name on this site, else a port of the
    /// link's service, one per hub server behind the link (7422 and up).
    fn dials(
        &mut self,
        forwards: &mut Forwards,
        hub: &Cluster,
        link_idx: Option<usize>,
    ) -> Vec<Dial> {
        let mut dials = Vec::new();
        for hs in &hub.servers {
            let Some(h) = self.servers.iter().find(|x| &x.name == hs) else {
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
                    let links = &mut *self.links;
                    let listen = *forwards.of.entry((li, h.name.clone())).or_insert_with(|| {
                        let next = forwards.next.entry(li).or_insert(7422);
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
                        host: self.links[li].service.clone(),
                        port: listen,
                        server: h.name.clone(),
                    });
                }
            }
        }
        dials
    }

    /// The remote on every server of the cluster, each with its own identity, and
    /// the matching leaf user on every server of the hub.
    fn attach(&mut self, my_cluster: &Cluster, remote: Remote) {
        for me in my_cluster.servers.iter() {
            let identity = format!(
                "{me}.{}.{}.{}",
                remote.local_account, remote.hub, remote.hub_account
            );
            if let Some(s) = self.servers.iter_mut().find(|s| &s.name == me) {
                s.remotes.push(Remote {
                    identity: identity.clone(),
                    ..remote.clone()
                });
            }
            for h in self.servers.iter_mut().filter(|s| s.cluster == remote.hub) {
                h.leaf_users.push(LeafUser {
                    identity: identity.clone(),
                    account: remote.hub_account.clone(),
                    from: me.clone(),
                });
            }
        }
    }
}

/// A link's compression mode: one nats-server knows, and `off` on canopy-server.
fn check_compression(c: &mut Ctx, n: &topology::Node, u: &topology::Upstream, image: &str) {
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
                .map_or(image, |i| i.value.as_str())
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
