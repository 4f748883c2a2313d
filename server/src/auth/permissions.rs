//! Publish and subscribe permissions: allow lists (absent = everything) and deny
//! lists (deny wins), matched with NATS wildcards.

use crate::config::auth as cfg;
use crate::subject;

#[derive(Debug, Default)]
pub struct Rules {
    allow: Option<Vec<(String, Option<String>)>>,
    deny: Vec<(String, Option<String>)>,
}

/// `"subject"` or `"subject queue"` (queue-specific subscribe permission).
fn entry(s: &str) -> (String, Option<String>) {
    match s.split_once(' ') {
        Some((subj, q)) => (subj.to_string(), Some(q.trim().to_string())),
        None => (s.to_string(), None),
    }
}

impl Rules {
    fn compile(p: Option<&cfg::SubjectPermission>) -> Rules {
        match p {
            None => Rules::default(),
            Some(p) => Rules {
                allow: (!p.allow.is_empty()).then(|| p.allow.iter().map(|s| entry(s)).collect()),
                deny: p.deny.iter().map(|s| entry(s)).collect(),
            },
        }
    }

    /// For publishing: the literal subject is matched by a rule.
    fn permits_literal(&self, subj: &[u8]) -> bool {
        let hit = |rules: &[(String, Option<String>)]| {
            rules
                .iter()
                .any(|(p, _)| subject::matches(p.as_bytes(), subj))
        };
        self.allow.as_deref().is_none_or(hit) && !hit(&self.deny)
    }

    /// For subscribing: the whole subscription falls inside an allow rule, and no deny
    /// rule covers it.
    fn permits_interest(&self, subj: &str, queue: Option<&str>) -> bool {
        let hit = |rules: &[(String, Option<String>)]| {
            rules.iter().any(|(p, q)| {
                subject::is_subset(subj, p) && q.as_deref().is_none_or(|q| Some(q) == queue)
            })
        };
        self.allow.as_deref().is_none_or(hit) && !hit(&self.deny)
    }
}

#[derive(Debug, Default)]
pub struct Permissions {
    pub publish: Rules,
    pub subscribe: Rules,
    /// `allow_responses`: how many replies to each received request, for how long.
    pub responses: Option<(u64, std::time::Duration)>,
}

impl Permissions {
    pub fn compile(p: &cfg::Permissions) -> Permissions {
        let mut publish = Rules::compile(p.publish.as_ref());
        let responses = p
            .allow_responses
            .as_ref()
            .map(|r| (r.max.max(1) as u64, r.expires));
        // A responder with no publish rules may publish replies and nothing else.
        if responses.is_some() && publish.allow.is_none() {
            publish.allow = Some(Vec::new());
        }
        Permissions {
            publish,
            subscribe: Rules::compile(p.subscribe.as_ref()),
            responses,
        }
    }

    pub fn can_publish(&self, subj: &[u8]) -> bool {
        self.publish.permits_literal(subj)
    }

    /// Deny rules a permitted (wildcard) subscription still overlaps: its messages on
    /// those subjects must be filtered out at delivery.
    pub fn overlapping_denies(&self, subj: &str) -> Vec<String> {
        self.subscribe
            .deny
            .iter()
            .filter(|(d, _)| subject::intersects(d, subj))
            .map(|(d, _)| d.clone())
            .collect()
    }

    pub fn can_subscribe(&self, subj: &str, queue: Option<&str>) -> bool {
        self.subscribe.permits_interest(subj, queue)
    }
}
