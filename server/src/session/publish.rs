//! The publish path: a message published in an account goes to the subscribers that
//! match (from a per-session cache), one frame per link naming the queue groups picked
//! for it, then across accounts (service imports, stream importers, reply paths).

use super::Session;
use crate::account::Account;
use crate::conn::{Conn, Delivered, Subscription};
use crate::subject;
use crate::sublist::Match;
use smallvec::SmallVec;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// How many subjects a connection remembers the matches of.
const MATCH_CACHE_SIZE: usize = 1024;
/// Accounts with a match cache on one connection (routes carry many).
const MAX_CACHED_ACCOUNTS: usize = 64;

/// Match results for one account, valid while its sublist generation holds.
pub(super) struct MatchCache {
    account: Arc<Account>,
    generation: u64,
    /// Fx-hashed: subjects are short and this is hit once per message (SipHash's
    /// flood resistance buys nothing here; the cache is per connection and bounded).
    by_subject: rustc_hash::FxHashMap<Box<[u8]>, Arc<Match<Subscription>>>,
}
/// Links a message goes to, each with the queue groups it was picked for.
type LinkTargets<'a> = SmallVec<[(Arc<Conn>, SmallVec<[&'a str; 4]>); 4]>;

impl Session {
    fn next_member(&mut self) -> usize {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x as usize
    }

    /// The matches for `subj` in the client's own account, from the cache when the
    /// sublist has not changed since.
    fn local_matches(&mut self, account: &Arc<Account>, subj: &[u8]) -> Arc<Match<Subscription>> {
        let i = match self
            .caches
            .iter()
            .position(|c| Arc::ptr_eq(&c.account, account))
        {
            Some(i) => i,
            None => {
                if self.caches.len() >= MAX_CACHED_ACCOUNTS {
                    self.caches.clear();
                }
                self.caches.push(MatchCache {
                    account: account.clone(),
                    generation: 0,
                    by_subject: Default::default(),
                });
                self.caches.len() - 1
            }
        };
        let cache = &mut self.caches[i];
        let generation = account.sublist.generation();
        if generation != cache.generation {
            cache.by_subject.clear();
            cache.generation = generation;
        }
        if let Some(m) = cache.by_subject.get(subj) {
            return m.clone();
        }
        let m = Arc::new(match std::str::from_utf8(subj) {
            Ok(s) if subject::within_token_bound(s.as_bytes()) => account.sublist.matches(s),
            _ => Match::default(),
        });
        if cache.by_subject.len() >= MATCH_CACHE_SIZE {
            cache.by_subject.clear();
        }
        cache.by_subject.insert(subj.into(), m.clone());
        m
    }

    /// An account this connection has published in, without taking the accounts lock
    /// (a route names the account in every message).
    pub(super) fn cached_account(&self, name: &[u8]) -> Option<Arc<Account>> {
        self.caches
            .iter()
            .find(|c| c.account.name.as_bytes() == name)
            .map(|c| c.account.clone())
    }

    /// Deliver a message published in `account`: mappings first, then reply routes of
    /// service imports, local subscribers, services this account imports, and accounts
    /// that import this stream. Returns whether anyone could answer (for no-responders).
    pub(super) fn publish(
        &mut self,
        account: &Arc<Account>,
        subj: &[u8],
        reply: Option<&[u8]>,
        header_len: usize,
        message: &[u8],
        depth: usize,
    ) -> bool {
        self.publish_in(account, subj, reply, header_len, message, depth, None)
    }

    /// `eligible`: for messages from a leaf link, the queue groups (space-separated)
    /// the sender picked this server for; `None` from clients (every group).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn publish_in(
        &mut self,
        account: &Arc<Account>,
        subj: &[u8],
        reply: Option<&[u8]>,
        header_len: usize,
        message: &[u8],
        depth: usize,
        eligible: Option<&[u8]>,
    ) -> bool {
        // Imports may chain through accounts; a cycle of them stops here.
        if depth > 4 {
            return false;
        }
        let mapped;
        // The publisher's own account was mapped before its permissions were checked.
        let subj = match (
            depth == 0 || account.mappings.is_empty(),
            std::str::from_utf8(subj),
        ) {
            (false, Ok(s)) => match crate::mapping::map_subject(&account.mappings, s) {
                Some(m) => {
                    mapped = m;
                    mapped.as_bytes()
                }
                None => subj,
            },
            _ => subj,
        };
        let imports = account.crosses_accounts();
        if imports {
            if let Ok(s) = std::str::from_utf8(subj) {
                if s.starts_with("_R_.") {
                    if let Some((requester, original)) = account.take_response_route(s) {
                        return self.publish(
                            &requester,
                            original.as_bytes(),
                            None,
                            header_len,
                            message,
                            depth + 1,
                        );
                    }
                }
            }
        }
        let mut answered = false;
        if subj.starts_with(b"$SYS.REQ.")
            && self.world.system_account.as_deref() == Some(account.name.as_str())
        {
            if let (Some(r), Ok(s)) = (reply, std::str::from_utf8(subj)) {
                if let Some(response) = crate::sys::respond(&self.world, s, &message[header_len..])
                {
                    answered = true;
                    let r = r.to_vec();
                    // The server answers, not the requester: echo settings do not apply.
                    let before = self.server_origin;
                    self.server_origin = true;
                    self.publish(account, &r, None, 0, &response, depth + 1);
                    self.server_origin = before;
                }
            }
        }
        let matched = if depth == 0 {
            self.local_matches(account, subj)
        } else {
            Arc::new(
                std::str::from_utf8(subj)
                    .ok()
                    .filter(|s| subject::within_token_bound(s.as_bytes()))
                    .map(|s| account.sublist.matches(s))
                    .unwrap_or_default(),
            )
        };
        answered |= self.deliver_matches(
            account, &matched, subj, reply, header_len, message, eligible,
        );
        if !imports {
            return answered;
        }
        answered | self.cross_accounts(account, subj, reply, header_len, message, depth)
    }

    /// Deliver to what matched in `account`: local subscribers directly, and one frame
    /// per leaf link and route naming the queue groups picked for it. Returns whether
    /// anyone took it.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn deliver_matches(
        &mut self,
        account: &Arc<Account>,
        matched: &Match<Subscription>,
        subj: &[u8],
        reply: Option<&[u8]>,
        header_len: usize,
        message: &[u8],
        eligible: Option<&[u8]>,
    ) -> bool {
        let mut answered = false;

        let echo = self.server_origin || self.conn.echo.load(Ordering::Relaxed);
        let me = self.conn.cid;
        // One frame per link and message, naming the queue groups picked for it; inline
        // storage keeps the publish path free of allocations.
        let mut leaf_targets: LinkTargets<'_> = SmallVec::new();
        let mut route_targets: LinkTargets<'_> = SmallVec::new();
        for sub in &matched.plain {
            if !echo && sub.conn.cid == me {
                continue;
            }
            if sub.conn.is_route() {
                // One hop: what came over a route goes to local clients and leafs only.
                if !self.from_route && !route_targets.iter().any(|(c, _)| c.cid == sub.conn.cid) {
                    route_targets.push((sub.conn.clone(), SmallVec::new()));
                }
                continue;
            }
            if sub.conn.is_leaf() {
                // Each server of a cluster sends up its own link to the hub: a message
                // that came over a route is never sent up a spoke link.
                if sub.denies(subj) || (self.from_route && sub.conn.is_spoke()) {
                    continue;
                }
                // One frame per leaf link, however many of its subscriptions match.
                if !leaf_targets.iter().any(|(c, _)| c.cid == sub.conn.cid) {
                    leaf_targets.push((sub.conn.clone(), SmallVec::new()));
                }
                continue;
            }
            answered |= self.deliver_to(account, sub, subj, reply, header_len, message);
        }
        for group in &matched.queues {
            if let (Some(list), Some(first)) = (eligible, group.first()) {
                let name = first.queue.as_deref().unwrap_or("");
                if !list.split(|b| *b == b' ').any(|q| q == name.as_bytes()) {
                    continue;
                }
            } else if eligible.is_none() && (self.from_leaf || self.from_route) {
                continue;
            }
            // One member per group, from a random start (a shared rotating counter
            // can starve members when several groups match); skip members that
            // cannot take it (our own when echo is off).
            let n = group.len();
            let start = self.next_member();
            for i in 0..n {
                let sub = &group[(start + i) % n];
                if !echo && sub.conn.cid == me {
                    continue;
                }
                if sub.conn.is_route() {
                    if self.from_route {
                        continue;
                    }
                    let q = sub.queue.as_deref().unwrap_or("");
                    match route_targets
                        .iter_mut()
                        .find(|(c, _)| c.cid == sub.conn.cid)
                    {
                        Some((_, qs)) => qs.push(q),
                        None => route_targets.push((sub.conn.clone(), smallvec::smallvec![q])),
                    }
                    answered = true;
                    break;
                }
                if sub.conn.is_leaf() {
                    if sub.denies(subj) || (self.from_route && sub.conn.is_spoke()) {
                        continue;
                    }
                    let q = sub.queue.as_deref().unwrap_or("");
                    match leaf_targets.iter_mut().find(|(c, _)| c.cid == sub.conn.cid) {
                        Some((_, qs)) => qs.push(q),
                        None => leaf_targets.push((sub.conn.clone(), smallvec::smallvec![q])),
                    }
                    answered = true;
                    break;
                }
                if self.deliver_to(account, sub, subj, reply, header_len, message) {
                    answered = true;
                    break;
                }
            }
        }
        for (conn, queues) in leaf_targets {
            if self.admits(&conn) && conn.deliver_leaf(subj, reply, &queues, header_len, message) {
                answered = true;
                self.note_behind(&conn);
                if conn.mark_for_flush() {
                    self.touched.push(conn);
                }
            }
        }
        for (conn, queues) in route_targets {
            if self.admits(&conn)
                && conn.deliver_route(&account.name, subj, reply, &queues, header_len, message)
            {
                answered = true;
                self.note_behind(&conn);
                if conn.mark_for_flush() {
                    self.touched.push(conn);
                }
            }
        }
        answered
    }

    /// Across accounts: services this account imports (with a fresh reply subject and
    /// the way back remembered), then accounts that import this stream.
    fn cross_accounts(
        &mut self,
        account: &Arc<Account>,
        subj: &[u8],
        reply: Option<&[u8]>,
        header_len: usize,
        message: &[u8],
        depth: usize,
    ) -> bool {
        let mut answered = false;
        let Ok(s) = std::str::from_utf8(subj) else {
            return answered;
        };
        for si in account
            .service_imports
            .get()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if !subject::matches(si.local.as_bytes(), s.as_bytes()) {
                continue;
            }
            let target_subject = if si.local == si.subject || si.subject.contains(['*', '>']) {
                crate::account::translate(&si.local, &si.subject, s)
            } else {
                si.subject.clone()
            };
            // The requester's reply subject is not valid in the exporting account:
            // give the service a fresh `_R_.` subject and remember the way back.
            let new_reply = reply.and_then(|r| std::str::from_utf8(r).ok()).map(|r| {
                let fresh = crate::account::response_subject();
                si.target.add_response_route(
                    fresh.clone(),
                    crate::account::ReplyPath {
                        account: account.clone(),
                        reply: r.to_string(),
                        singleton: si.response == crate::config::accounts::ResponseType::Singleton,
                        expires: crate::account::response_ttl(),
                    },
                );
                fresh
            });
            let target = si.target.clone();
            answered |= self.publish(
                &target,
                target_subject.as_bytes(),
                new_reply.as_deref().map(str::as_bytes),
                header_len,
                message,
                depth + 1,
            );
        }
        for imp in account
            .stream_importers
            .get()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if subject::matches(imp.subject.as_bytes(), s.as_bytes()) {
                let seen_as = crate::account::imported_subject(imp, s);
                let importer = imp.importer.clone();
                answered |= self.publish(
                    &importer,
                    seen_as.as_bytes(),
                    reply,
                    header_len,
                    message,
                    depth + 1,
                );
            }
        }
        answered
    }

    /// Returns whether the message was taken.
    fn deliver_to(
        &mut self,
        account: &Arc<Account>,
        sub: &Arc<Subscription>,
        subj: &[u8],
        reply: Option<&[u8]>,
        hl: usize,
        msg: &[u8],
    ) -> bool {
        if !self.admits(&sub.conn) {
            return false;
        }
        let taken = match sub.conn.deliver(sub, subj, reply, hl, msg) {
            Delivered::Yes => true,
            Delivered::Last => {
                self.expired.push((account.clone(), sub.clone()));
                true
            }
            Delivered::No => false,
        };
        if taken {
            self.note_behind(&sub.conn);
            if sub.conn.mark_for_flush() {
                self.touched.push(sub.conn.clone());
            }
        }
        taken
    }

    /// The `NATS/1.0 503` status a requester gets when nobody listens.
    pub(super) fn no_responders(&mut self, subj: &[u8], reply: &[u8]) {
        let Ok(reply_str) = std::str::from_utf8(reply) else {
            return;
        };
        let mine: Vec<Arc<Subscription>> = self
            .conn
            .subs
            .lock()
            .values()
            .filter(|s| subject::matches(s.subject.as_bytes(), reply_str.as_bytes()))
            .cloned()
            .collect();
        let mut hdr = b"NATS/1.0 503\r\nNats-Subject: ".to_vec();
        hdr.extend_from_slice(subj);
        hdr.extend_from_slice(b"\r\n\r\n");
        let Some(account) = self.binding.as_ref().map(|b| b.account.clone()) else {
            return;
        };
        for sub in mine {
            self.deliver_to(&account, &sub, reply, None, hdr.len(), &hdr);
        }
    }
}
