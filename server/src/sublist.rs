//! The subscription trie (literal tokens, `*`, `>`) with a generation counter that
//! lets each connection keep its own cache of match results — the hot path of every
//! publish. Matching takes a read lock; subscribe and unsubscribe take the write lock
//! and bump the generation, which invalidates every cached result at once.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Anything that can be stored in the sublist: it must expose its subject and queue.
pub trait Interest: Send + Sync {
    fn subject(&self) -> &str;
    fn queue(&self) -> Option<&str>;
}

/// What a subject matched: plain subscribers, and each queue group's members.
pub struct Match<S> {
    pub plain: Vec<Arc<S>>,
    pub queues: Vec<Vec<Arc<S>>>,
}

impl<S> Match<S> {
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queues.is_empty()
    }
}

impl<S> Default for Match<S> {
    fn default() -> Self {
        Match {
            plain: Vec::new(),
            queues: Vec::new(),
        }
    }
}

struct Node<S> {
    literal: HashMap<Box<str>, Node<S>>,
    star: Option<Box<Node<S>>>,
    rest: Option<Box<Node<S>>>,
    plain: Vec<Arc<S>>,
    queues: HashMap<Box<str>, Vec<Arc<S>>>,
}

impl<S> Default for Node<S> {
    fn default() -> Self {
        Node {
            literal: HashMap::new(),
            star: None,
            rest: None,
            plain: Vec::new(),
            queues: HashMap::new(),
        }
    }
}

impl<S> Node<S> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.star.is_none()
            && self.rest.is_none()
            && self.plain.is_empty()
            && self.queues.is_empty()
    }

    fn collect<'a>(&'a self, out: &mut Match<S>, queue_index: &mut HashMap<&'a str, usize>) {
        out.plain.extend(self.plain.iter().cloned());
        for (name, members) in &self.queues {
            // The same queue name may be matched at several nodes (`foo.*` and `foo.>`):
            // members across them form one group, which delivers once.
            let idx = *queue_index.entry(name).or_insert_with(|| {
                out.queues.push(Vec::new());
                out.queues.len() - 1
            });
            out.queues[idx].extend(members.iter().cloned());
        }
    }
}

pub struct Sublist<S> {
    root: RwLock<Node<S>>,
    generation: AtomicU64,
    count: AtomicU64,
    inserts: AtomicU64,
    removes: AtomicU64,
    matches: AtomicU64,
}

impl<S> Default for Sublist<S> {
    fn default() -> Self {
        Sublist {
            root: RwLock::new(Node::default()),
            generation: AtomicU64::new(1),
            count: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            removes: AtomicU64::new(0),
            matches: AtomicU64::new(0),
        }
    }
}

impl<S: Interest> Sublist<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes whenever the set of subscriptions changes; caches compare against it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Every subscription, in no particular order (for interest snapshots).
    pub fn all(&self) -> Vec<Arc<S>> {
        fn walk<S>(n: &Node<S>, out: &mut Vec<Arc<S>>) {
            out.extend(n.plain.iter().cloned());
            for members in n.queues.values() {
                out.extend(members.iter().cloned());
            }
            for child in n.literal.values() {
                walk(child, out);
            }
            if let Some(c) = &n.star {
                walk(c, out);
            }
            if let Some(c) = &n.rest {
                walk(c, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.root.read(), &mut out);
        out
    }

    pub fn stats(&self) -> (u64, u64, u64) {
        (
            self.inserts.load(Ordering::Relaxed),
            self.removes.load(Ordering::Relaxed),
            self.matches.load(Ordering::Relaxed),
        )
    }

    pub fn insert(&self, sub: Arc<S>) {
        let mut root = self.root.write();
        let mut node = &mut *root;
        for token in sub.subject().split('.') {
            node = match token {
                "*" => node.star.get_or_insert_with(Default::default),
                ">" => node.rest.get_or_insert_with(Default::default),
                t => node.literal.entry(t.into()).or_default(),
            };
        }
        match sub.queue() {
            Some(q) => node.queues.entry(q.into()).or_default().push(sub),
            None => node.plain.push(sub),
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inserts.fetch_add(1, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Remove this exact subscription; returns whether it was present.
    pub fn remove(&self, sub: &Arc<S>) -> bool {
        let mut root = self.root.write();
        let tokens: Vec<&str> = sub.subject().split('.').collect();
        let removed = remove_at(&mut root, &tokens, sub);
        if removed {
            self.count.fetch_sub(1, Ordering::Relaxed);
            self.removes.fetch_add(1, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        removed
    }

    /// Every subscription whose subject matches the literal `subject`.
    pub fn matches(&self, subject: &str) -> Match<S> {
        self.matches.fetch_add(1, Ordering::Relaxed);
        let mut out = Match::default();
        let mut queue_index = HashMap::new();
        let root = self.root.read();
        let tokens: Vec<&str> = subject.split('.').collect();
        match_level(&root, &tokens, &mut out, &mut queue_index);
        out
    }
}

fn match_level<'a, S>(
    node: &'a Node<S>,
    tokens: &[&str],
    out: &mut Match<S>,
    qi: &mut HashMap<&'a str, usize>,
) {
    let Some((first, rest)) = tokens.split_first() else {
        node.collect(out, qi);
        return;
    };
    if let Some(fwc) = &node.rest {
        fwc.collect(out, qi);
    }
    if let Some(pwc) = &node.star {
        match_level(pwc, rest, out, qi);
    }
    if let Some(lit) = node.literal.get(*first) {
        match_level(lit, rest, out, qi);
    }
}

fn remove_at<S: Interest>(node: &mut Node<S>, tokens: &[&str], sub: &Arc<S>) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return match sub.queue() {
            Some(q) => {
                let Some(members) = node.queues.get_mut(q) else {
                    return false;
                };
                let before = members.len();
                members.retain(|m| !Arc::ptr_eq(m, sub));
                let removed = members.len() != before;
                if members.is_empty() {
                    node.queues.remove(q);
                }
                removed
            }
            None => {
                let before = node.plain.len();
                node.plain.retain(|m| !Arc::ptr_eq(m, sub));
                node.plain.len() != before
            }
        };
    };
    // Prune emptied branches so churn on unique subjects (inboxes) does not leak.
    match *first {
        "*" => {
            let Some(child) = node.star.as_mut() else {
                return false;
            };
            let removed = remove_at(child, rest, sub);
            if child.is_empty() {
                node.star = None;
            }
            removed
        }
        ">" => {
            let Some(child) = node.rest.as_mut() else {
                return false;
            };
            let removed = remove_at(child, rest, sub);
            if child.is_empty() {
                node.rest = None;
            }
            removed
        }
        t => {
            let Some(child) = node.literal.get_mut(t) else {
                return false;
            };
            let removed = remove_at(child, rest, sub);
            if child.is_empty() {
                node.literal.remove(t);
            }
            removed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct S {
        subject: String,
        queue: Option<String>,
        id: u32,
    }
    impl Interest for S {
        fn subject(&self) -> &str {
            &self.subject
        }
        fn queue(&self) -> Option<&str> {
            self.queue.as_deref()
        }
    }
    fn sub(subject: &str, queue: Option<&str>, id: u32) -> Arc<S> {
        Arc::new(S {
            subject: subject.into(),
            queue: queue.map(Into::into),
            id,
        })
    }
    fn ids(m: &Match<S>) -> Vec<u32> {
        let mut v: Vec<u32> = m.plain.iter().map(|s| s.id).collect();
        v.sort();
        v
    }

    #[test]
    fn literal_star_and_rest_match_like_nats() {
        let sl = Sublist::new();
        sl.insert(sub("foo.bar", None, 1));
        sl.insert(sub("foo.*", None, 2));
        sl.insert(sub("foo.>", None, 3));
        sl.insert(sub(">", None, 4));
        sl.insert(sub("*.bar", None, 5));
        sl.insert(sub("foo", None, 6));
        assert_eq!(ids(&sl.matches("foo.bar")), vec![1, 2, 3, 4, 5]);
        assert_eq!(ids(&sl.matches("foo.bar.baz")), vec![3, 4]);
        assert_eq!(ids(&sl.matches("foo")), vec![4, 6]);
        assert_eq!(ids(&sl.matches("other")), vec![4]);
    }

    #[test]
    fn queue_members_across_wildcards_form_one_group() {
        let sl = Sublist::new();
        sl.insert(sub("foo.*", Some("q"), 1));
        sl.insert(sub("foo.>", Some("q"), 2));
        sl.insert(sub("foo.bar", Some("r"), 3));
        let m = sl.matches("foo.bar");
        assert!(m.plain.is_empty());
        let mut sizes: Vec<usize> = m.queues.iter().map(Vec::len).collect();
        sizes.sort();
        assert_eq!(sizes, vec![1, 2]);
    }

    #[test]
    fn removal_prunes_and_bumps_generation() {
        let sl = Sublist::new();
        let a = sub("_INBOX.abc.1", None, 1);
        sl.insert(a.clone());
        let g = sl.generation();
        assert!(sl.remove(&a));
        assert!(!sl.remove(&a));
        assert!(sl.generation() > g);
        assert_eq!(sl.count(), 0);
        assert!(sl.root.read().is_empty(), "emptied branches are pruned");
    }
}
