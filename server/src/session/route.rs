//! Route ops: the peer's CONNECT (cluster authorization, cluster name) and INFO (who it
//! is, its client URLs, gossip of servers it knows), RS+/RS- with the account, and RMSG.
//! One hop: nothing that arrives over a route is sent to another.

use super::{Closed, Session};
use crate::conn::{Peer, Subscription};
use crate::protocol::info::Connect;
use crate::protocol::leaf::LeafOp;
use crate::world::{routes, World};
use std::sync::Arc;

/// Why a peer cannot be a route, or None.
fn refuse(world: &World, peer: &Peer) -> Option<&'static str> {
    if peer.server_id == world.server_id {
        return Some("Duplicate Route");
    }
    let theirs = peer.info["cluster"].as_str().unwrap_or_default();
    if !theirs.is_empty() && world.cluster.name_conflicts(theirs) {
        return Some("Cluster Name Conflict");
    }
    None
}

impl Session {
    /// The peer is known: check it, register the route, send our interest, gossip.
    pub(super) fn route_established(&mut self, peer: Peer) -> bool {
        if let Some(why) = refuse(&self.world, &peer) {
            tracing::error!(
                "{} - rid:{} - refusing route to {}: {why}",
                self.conn.addr,
                self.conn.cid,
                peer.server_id
            );
            self.conn.close(why);
            return false;
        }
        if let Err(why) = routes::register(&self.world, &self.conn, peer.clone()) {
            tracing::debug!("{} - rid:{} - {why}", self.conn.addr, self.conn.cid);
            self.conn.close(why);
            return false;
        }
        routes::send_snapshot(&self.world, &self.conn);
        routes::gossip(&self.world, &self.conn, &peer);
        routes::push_connect_urls(&self.world);
        true
    }

    pub(super) async fn route_process(
        &mut self,
        op: LeafOp<'_>,
        account: Option<&[u8]>,
    ) -> Result<(), Closed> {
        if !self.connected && !matches!(op, LeafOp::Connect(_) | LeafOp::Ping | LeafOp::Pong) {
            self.err("Authorization Violation");
            self.conn.close("Authorization Violation");
            return Err(Closed);
        }
        match op {
            LeafOp::Connect(json) => self.route_connect(json).await,
            LeafOp::Info(json) => {
                let Ok(info) = serde_json::from_slice::<serde_json::Value>(json) else {
                    return Ok(());
                };
                let id = info["server_id"].as_str().unwrap_or_default().to_string();
                if !self.conn.has_route_peer() {
                    // The accepted side learns who the peer is from its INFO.
                    let peer = Peer::from_info(&info, self.conn.addr, false, false);
                    if !self.route_established(peer) {
                        return Err(Closed);
                    }
                    return Ok(());
                }
                let same = self.conn.route_peer().is_some_and(|p| p.server_id == id);
                if same {
                    self.conn
                        .set_peer_urls(crate::conn::string_list(&info["connect_urls"]));
                    routes::push_connect_urls(&self.world);
                } else if let Some(ip) = info["ip"].as_str() {
                    // Gossip: a server our peer knows. Dial it if we do not.
                    if id != self.world.server_id && !self.world.cluster.connected_to(&id) {
                        let _ = self.world.cluster.discovered.send(ip.to_string());
                    }
                }
                Ok(())
            }
            LeafOp::Ping => {
                self.conn.ping_received();
                self.conn.send(b"PONG\r\n");
                Ok(())
            }
            LeafOp::Pong => {
                self.conn.pong_received();
                Ok(())
            }
            LeafOp::Ignored => Ok(()),
            LeafOp::Err(text) => {
                tracing::error!(
                    "{} - rid:{} - route sent -ERR {}",
                    self.conn.addr,
                    self.conn.cid,
                    String::from_utf8_lossy(text)
                );
                Ok(())
            }
            LeafOp::Sub { subject, queue, .. } => {
                self.route_sub(account.unwrap_or_default(), subject, queue);
                Ok(())
            }
            LeafOp::Unsub { subject, queue } => {
                let key = route_sid(account.unwrap_or_default(), subject, queue);
                if let Some((acc, sub)) = self.route_subs.remove(&key) {
                    self.conn.subs.lock().remove(&key);
                    if acc.sublist.remove(&sub) {
                        acc.interest_changed(&sub.subject, sub.queue.as_deref(), -1, &self.conn);
                    }
                }
                Ok(())
            }
            LeafOp::Msg {
                subject,
                reply,
                queues,
                header_len,
                message,
            } => {
                let Some(acc) = self.route_account(account.unwrap_or_default()) else {
                    return Ok(());
                };
                self.conn.count_in(message.len());
                self.publish_in(&acc, subject, reply, header_len, message, 0, queues);
                Ok(())
            }
        }
    }

    /// The account a route op names: from this route's match caches when it has
    /// carried messages of that account before, so no lock is taken per message.
    fn route_account(&self, name: &[u8]) -> Option<Arc<crate::account::Account>> {
        if let Some(a) = self.cached_account(name) {
            return Some(a);
        }
        let name = std::str::from_utf8(name).ok()?;
        self.world.accounts.read().get(name).cloned()
    }

    fn route_sub(&mut self, account: &[u8], subject: &[u8], queue: Option<&[u8]>) {
        let key = route_sid(account, subject, queue);
        if self.route_subs.contains_key(&key) {
            // A repeated RS+ for a queue only updates its weight.
            return;
        }
        let Some(acc) = self.route_account(account) else {
            return;
        };
        let (Ok(subj), Ok(q)) = (
            std::str::from_utf8(subject),
            queue.map(std::str::from_utf8).transpose(),
        ) else {
            return;
        };
        if !crate::subject::is_valid_subscription(subject) {
            return;
        }
        if !crate::subject::within_token_bound(subject) {
            tracing::error!(
                "{} - rid:{} - interest in a subject of more than {} tokens ignored",
                self.conn.addr,
                self.conn.cid,
                crate::subject::MAX_TOKENS
            );
            return;
        }
        let sub = Subscription::new(&self.conn, subj, q, key.clone(), None);
        acc.sublist.insert(sub.clone());
        acc.interest_changed(subj, q, 1, &self.conn);
        // Also under the connection, for /routez's counts and lists.
        self.conn.subs.lock().insert(key.clone(), sub.clone());
        self.route_subs.insert(key, (acc, sub));
    }

    async fn route_connect(&mut self, json: &[u8]) -> Result<(), Closed> {
        let c: Connect = match serde_json::from_slice(json) {
            Ok(c) => c,
            Err(_) => {
                self.conn.close("Protocol Violation");
                return Err(Closed);
            }
        };
        if self.connected {
            return Ok(());
        }
        let auth = self
            .world
            .options
            .cluster
            .as_ref()
            .and_then(|c| c.authorization.as_ref());
        if let Some(a) = auth {
            let user_ok = a.user.is_none() || a.user == c.user;
            // bcrypt behind the same bounded gate as client and leaf logins.
            let (want, given) = (a.password.clone(), c.pass.clone());
            let _permit = self.world.auth_permits.clone().acquire_owned().await;
            let pass_ok = tokio::task::spawn_blocking(move || {
                crate::auth::password_matches(want.as_deref(), given.as_deref())
            })
            .await
            .unwrap_or(false);
            if !(user_ok && pass_ok) {
                tracing::error!(
                    "{} - rid:{} - route authentication error",
                    self.conn.addr,
                    self.conn.cid
                );
                self.err("Authorization Violation");
                self.conn.close("Authorization Violation");
                return Err(Closed);
            }
        }
        let theirs = serde_json::from_slice::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v["cluster"].as_str().map(str::to_string))
            .unwrap_or_default();
        let ours = &self.world.cluster.name;
        if self.world.cluster.name_conflicts(&theirs) {
            let text =
                format!("Rejecting connection, cluster name {theirs:?} does not match {ours:?}");
            tracing::error!("{} - rid:{} - {text}", self.conn.addr, self.conn.cid);
            self.err(&text);
            self.conn.close("Cluster Name Conflict");
            return Err(Closed);
        }
        self.connected = true;
        Ok(())
    }
}

/// How a route's interest is keyed: `<account> <subject>[ <queue>]`.
fn route_sid(account: &[u8], subject: &[u8], queue: Option<&[u8]>) -> Box<[u8]> {
    let mut k = Vec::with_capacity(account.len() + subject.len() + 16);
    k.extend_from_slice(account);
    k.push(b' ');
    k.extend_from_slice(subject);
    if let Some(q) = queue {
        k.push(b' ');
        k.extend_from_slice(q);
    }
    k.into()
}
