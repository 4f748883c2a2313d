//! Leaf link ops, on either side of the link: CONNECT
//! with the leafnode authorization, the interest snapshot and LS+/LS- updates, loop
//! detection by `$LDS.` subjects, and LMSG/HMSG in both directions.

use super::{remove_sub, Closed, Session};
use crate::conn::{Conn, Subscription};
use crate::protocol::info::Connect;
use crate::protocol::leaf::LeafOp;
use crate::world::World;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Subjects links use for themselves (loop detection, gateway replies): never
/// subject to a user's permissions.
fn is_link_internal(subject: &[u8]) -> bool {
    subject.starts_with(b"$LDS.") || subject.starts_with(b"$GR.") || subject.starts_with(b"_GR_.")
}

/// The synthetic sid under which a leaf's interest is kept.
fn leaf_sid(subject: &[u8], queue: Option<&[u8]>) -> Box<[u8]> {
    let mut sid = subject.to_vec();
    if let Some(q) = queue {
        sid.push(b' ');
        sid.extend_from_slice(q);
    }
    sid.into()
}

impl Session {
    pub(super) async fn leaf_process(&mut self, op: LeafOp<'_>) -> Result<(), Closed> {
        if !self.connected
            && !matches!(
                op,
                LeafOp::Connect(_)
                    | LeafOp::Ping
                    | LeafOp::Pong
                    | LeafOp::Info(_)
                    | LeafOp::Ignored
            )
        {
            self.err("Authorization Violation");
            self.conn.close("Authorization Violation");
            return Err(Closed);
        }
        match op {
            LeafOp::Connect(json) => self.leaf_connect(json).await,
            LeafOp::Ping => {
                self.conn.ping_received();
                self.conn.send(b"PONG\r\n");
                Ok(())
            }
            LeafOp::Pong => {
                self.conn.pong_received();
                Ok(())
            }
            LeafOp::Ignored | LeafOp::Info(_) => Ok(()),
            LeafOp::Err(text) => {
                if text.windows(13).any(|w| w == b"Loop detected") {
                    if let Some(link) = self.conn.leaf_link() {
                        link.loop_detected.store(true, Ordering::Relaxed);
                    }
                }
                tracing::error!(
                    "{} - lid:{} - leafnode sent -ERR {}",
                    self.conn.addr,
                    self.conn.cid,
                    String::from_utf8_lossy(text)
                );
                Ok(())
            }
            LeafOp::Sub { subject, queue, .. } => self.leaf_sub(subject, queue),
            LeafOp::Unsub { subject, queue } => {
                let sid = leaf_sid(subject, queue);
                let sub = self.conn.subs.lock().get(&sid).cloned();
                if let (Some(sub), Some(b)) = (sub, &self.binding) {
                    remove_sub(&b.account, &sub);
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
                let Some(binding) = &self.binding else {
                    return Ok(());
                };
                // The user the leaf logged in as may publish only what its
                // permissions allow; anything else closes the link, as in nats-server.
                if let Some(p) = &binding.permissions {
                    if !p.can_publish(subject) && !is_link_internal(subject) {
                        let subj = String::from_utf8_lossy(subject).into_owned();
                        tracing::error!(
                            "{} - lid:{} - Publish Violation on \"{subj}\" - Check other side configuration",
                            self.conn.addr,
                            self.conn.cid
                        );
                        self.err(&format!("Permissions Violation for Publish to \"{subj}\""));
                        self.conn.close("Protocol Violation");
                        return Err(Closed);
                    }
                }
                if let Some(link) = self.conn.leaf_link() {
                    if link
                        .filters
                        .deny_imports
                        .iter()
                        .any(|d| crate::subject::matches(d.as_bytes(), subject))
                    {
                        return Ok(());
                    }
                }
                self.conn.count_in(message.len());
                let account = binding.account.clone();
                // The queue groups the sender named travel as a slice of the read buffer.
                self.publish_in(&account, subject, reply, header_len, message, 0, queues);
                Ok(())
            }
        }
    }

    fn leaf_sub(&mut self, subject: &[u8], queue: Option<&[u8]>) -> Result<(), Closed> {
        let Some(binding) = &self.binding else {
            return Ok(());
        };
        let (Ok(subj), Ok(q)) = (
            std::str::from_utf8(subject),
            queue.map(std::str::from_utf8).transpose(),
        ) else {
            return Ok(());
        };
        if subj == self.world.loop_subject() {
            let text = format!(
                "Loop detected for leafnode account={:?}. Delaying attempt to reconnect for 30s",
                binding.account.name
            );
            tracing::error!("{} - lid:{} - {text}", self.conn.addr, self.conn.cid);
            self.err(&text);
            self.conn.close("Loop Detected");
            return Err(Closed);
        }
        if !crate::subject::is_valid_subscription(subject) {
            return Ok(());
        }
        // Interest the leaf's user may not subscribe to is not served (nats-server
        // ignores it the same way, without an -ERR).
        if let Some(p) = &binding.permissions {
            if !p.can_subscribe(subj, q) && !is_link_internal(subject) {
                tracing::debug!(
                    "{} - lid:{} - leafnode interest in {subj:?} not permitted, ignored",
                    self.conn.addr,
                    self.conn.cid
                );
                return Ok(());
            }
        }
        if !crate::subject::within_token_bound(subject) {
            tracing::error!(
                "{} - lid:{} - interest in a subject of more than {} tokens ignored",
                self.conn.addr,
                self.conn.cid,
                crate::subject::MAX_TOKENS
            );
            return Ok(());
        }
        // `deny_exports` on a dialled link: interest in those subjects is not served;
        // a wildcard that overlaps them is, with those subjects filtered at delivery.
        let mut deny = None;
        if let Some(f) = self.conn.leaf_link().map(|l| &l.filters) {
            if f.deny_exports
                .iter()
                .any(|d| crate::subject::is_subset(subj, d))
            {
                return Ok(());
            }
            let overlap: Vec<String> = f
                .deny_exports
                .iter()
                .filter(|d| crate::subject::intersects(d, subj))
                .cloned()
                .collect();
            if !overlap.is_empty() {
                deny = Some(Arc::new(overlap));
            }
        }
        let sid = leaf_sid(subject, queue);
        let mut subs = self.conn.subs.lock();
        // A repeated LS+ for a queue only updates its weight: one member stands for the link.
        if subs.contains_key(&sid) {
            return Ok(());
        }
        // A link's interest counts against max_subscriptions as a client's does; the
        // link stays, as in nats-server.
        let max_subs = self.world.options.max_subscriptions;
        if max_subs > 0 && subs.len() as i64 >= max_subs {
            drop(subs);
            tracing::error!(
                "{} - lid:{} - maximum subscriptions exceeded",
                self.conn.addr,
                self.conn.cid
            );
            self.err("maximum subscriptions exceeded");
            return Ok(());
        }
        let sub = Subscription::new(&self.conn, subj, q, sid.clone(), deny);
        subs.insert(sid, sub.clone());
        drop(subs);
        binding.account.sublist.insert(sub);
        // Interest learned from one leaf is passed to the other leafs of the account.
        binding.account.interest_changed(subj, q, 1, &self.conn);
        Ok(())
    }

    async fn leaf_connect(&mut self, json: &[u8]) -> Result<(), Closed> {
        let c: Connect = match serde_json::from_slice(json) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "{} - lid:{} - invalid leafnode CONNECT: {e}",
                    self.conn.addr,
                    self.conn.cid
                );
                self.conn.close("Protocol Violation");
                return Err(Closed);
            }
        };
        if self.connected {
            return Ok(());
        }
        let world = self.world.clone();
        let creds = c.clone();
        let names = self.identities.clone();
        let nonce = self.nonce.clone();
        let _permit = self.world.auth_permits.clone().acquire_owned().await;
        let account =
            tokio::task::spawn_blocking(move || world.authenticate_leaf(&creds, &nonce, &names))
                .await
                .ok()
                .flatten();
        let Some((account, permissions)) = account else {
            tracing::error!(
                "{} - lid:{} - leafnode authentication error",
                self.conn.addr,
                self.conn.cid
            );
            self.err("Authorization Violation");
            self.conn.close("Authorization Violation");
            return Err(Closed);
        };
        if let Some(min) = self
            .world
            .options
            .leafnodes
            .as_ref()
            .and_then(|l| l.min_version.as_deref())
        {
            // A leaf older than leafnodes { min_version } (or that names no version) is
            // turned away after it logged in, in nats-server's words.
            let given = c
                .version
                .as_deref()
                .and_then(crate::config::leafnode::semver);
            if given.is_none_or(|v| Some(v) < crate::config::leafnode::semver(min)) {
                let text =
                    format!("connection rejected since minimum version required is \"{min}\"");
                tracing::error!(
                    "{} - lid:{} - {text} - Account:{}",
                    self.conn.addr,
                    self.conn.cid,
                    account.name
                );
                self.err(&text);
                self.conn.close("Minimum Version Required");
                return Err(Closed);
            }
        }
        self.conn.bind_account(&account.name);
        self.conn.headers.store(c.headers, Ordering::Relaxed);
        if let Some(link) = self.conn.leaf_link() {
            *link.name.lock() = c.name.clone();
        }
        {
            let mut meta = self.conn.meta.lock();
            meta.name = c.name.clone();
            meta.version = c.version.clone();
        }
        self.binding = Some(crate::auth::Binding {
            account: account.clone(),
            permissions,
            user: c.user.clone(),
        });
        self.connected = true;
        tracing::info!(
            "{} - lid:{} - Leafnode connection from {:?} bound to account {}",
            self.conn.addr,
            self.conn.cid,
            c.name.as_deref().unwrap_or("?"),
            account.name
        );
        let mut info = self.world.leaf_info(self.conn.cid, self.conn.addr);
        info.nonce = String::new();
        info.connect_info = true;
        info.remote_account = Some(account.name.clone());
        self.conn.send(&self.world.leaf_info_line(&info));
        // The interest snapshot: every subscription in the account on other links,
        // then our loop-detection subject. Registering first means no update is missed.
        send_interest_snapshot(&self.world, &self.conn, &account);
        Ok(())
    }
}

/// Register a leaf link with its account and tell it all current interest: every
/// subscription on other connections of the account — except, on a link this server
/// dialled, interest that itself came from a hub — then the loop-detection subject.
/// Registering first means no later change is missed.
pub fn send_interest_snapshot(
    world: &World,
    link: &Arc<Conn>,
    account: &Arc<crate::account::Account>,
) {
    account.leafs.write().push(link.clone());
    // From the account's sublist: clients, other leafs, and interest learned over
    // routes (route connections are not in the client registry).
    let mut counts: HashMap<crate::conn::InterestKey, i32> = HashMap::new();
    for s in account.sublist.all() {
        if s.conn.cid == link.cid || (link.is_spoke() && s.conn.is_spoke()) {
            continue;
        }
        // Interest a route brought from a leaf of a peer is the peer's to relay up a
        // spoke link, not ours: a spoke link hears only this server's own interest.
        if link.is_spoke() && s.conn.is_route() {
            continue;
        }
        *counts
            .entry((s.subject.clone(), s.queue.clone()))
            .or_insert(0) += 1;
    }
    for ((subject, queue), n) in counts {
        link.leaf_interest(&subject, queue.as_deref(), n);
    }
    link.send(format!("LS+ {}\r\n", world.loop_subject()).as_bytes());
}
