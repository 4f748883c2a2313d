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
}

impl Permissions {
    pub fn compile(p: &cfg::Permissions) -> Permissions {
        Permissions {
            publish: Rules::compile(p.publish.as_ref()),
            subscribe: Rules::compile(p.subscribe.as_ref()),
        }
    }

    pub fn can_publish(&self, subj: &[u8]) -> bool {
        self.publish.permits_literal(subj)
    }

    pub fn can_subscribe(&self, subj: &str, queue: Option<&str>) -> bool {
        self.subscribe.permits_interest(subj, queue)
    }
}
