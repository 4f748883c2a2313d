//! Subject and queue-name grammar: dot-separated non-empty tokens without whitespace;
//! `*` and `>` are wildcards only as whole tokens, and `>` only last.

/// The most tokens a subject may have wherever it enters (client SUB, leaf LS+/LS-,
/// route RS+/RS-, messages): the subscription trie is walked a level per token, so
/// this bounds its depth whatever max_control_line allows. nats-server has no such
/// bound; Canopy refuses deeper subjects on purpose.
pub const MAX_TOKENS: usize = 1024;

/// Whether `s` has at most [`MAX_TOKENS`] tokens.
pub fn within_token_bound(s: &[u8]) -> bool {
    s.iter().filter(|b| **b == b'.').count() < MAX_TOKENS
}

/// Valid as a subscription subject (wildcards allowed).
pub fn is_valid_subscription(s: &[u8]) -> bool {
    valid(s, true)
}

/// Valid as a publish subject (no wildcards).
pub fn is_valid_publish(s: &[u8]) -> bool {
    valid(s, false)
}

pub fn valid(s: &[u8], wildcards: bool) -> bool {
    if s.is_empty() {
        return false;
    }
    let mut tokens = s.split(|b| *b == b'.').peekable();
    while let Some(t) = tokens.next() {
        if t.is_empty() || t.iter().any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
            return false;
        }
        match t {
            b">" if !wildcards || tokens.peek().is_some() => return false,
            b"*" if !wildcards => return false,
            _ => {}
        }
    }
    true
}

/// A queue group name: one token, no whitespace.
pub fn is_valid_queue(q: &[u8]) -> bool {
    !q.is_empty() && !q.iter().any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Whether `subject` (a literal) is matched by `pattern` (which may hold wildcards).
pub fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    let mut p = pattern.split(|b| *b == b'.');
    let mut s = subject.split(|b| *b == b'.');
    loop {
        match (p.next(), s.next()) {
            (Some(b">"), Some(_)) => return true,
            (Some(b"*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some subject is matched by both patterns.
pub fn intersects(a: &str, b: &str) -> bool {
    let a: Vec<&str> = a.split('.').collect();
    let b: Vec<&str> = b.split('.').collect();
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            (Some(&">"), Some(_)) | (Some(_), Some(&">")) => return true,
            (Some(&"*"), Some(_)) | (Some(_), Some(&"*")) => {}
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
    true
}

/// Whether every subject matched by `sub` is matched by `of` (wildcards in `sub`
/// stand for the sets they match).
pub fn is_subset(sub: &str, of: &str) -> bool {
    let s: Vec<&str> = sub.split('.').collect();
    let o: Vec<&str> = of.split('.').collect();
    for (i, ot) in o.iter().enumerate() {
        if *ot == ">" {
            return s.len() > i;
        }
        let Some(st) = s.get(i) else { return false };
        match (*ot, *st) {
            ("*", ">") => return false,
            ("*", _) => {}
            (_, "*" | ">") => return false,
            (a, b) if a != b => return false,
            _ => {}
        }
    }
    s.len() == o.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_whole_tokens_only() {
        assert!(is_valid_subscription(b"foo.*.>"));
        assert!(is_valid_subscription(b"foo.b*r"));
        assert!(is_valid_publish(b"foo.b>r"));
        assert!(!is_valid_subscription(b"foo..bar"));
        assert!(!is_valid_subscription(b"foo.>.bar"));
        assert!(!is_valid_publish(b"foo.*"));
        assert!(!is_valid_subscription(b""));
        assert!(!is_valid_subscription(b"."));
    }

    #[test]
    fn overlapping_patterns_intersect() {
        assert!(intersects("foo.>", "foo.secret"));
        assert!(intersects("*.secret", "foo.*"));
        assert!(intersects(">", "a"));
        assert!(!intersects("foo.*", "bar.*"));
        assert!(!intersects("foo.*", "foo.a.b"));
        assert!(!intersects("a", "a.b"));
    }

    #[test]
    fn pattern_matching_follows_nats_rules() {
        assert!(matches(b"foo.*", b"foo.bar"));
        assert!(!matches(b"foo.*", b"foo.bar.baz"));
        assert!(matches(b"foo.>", b"foo.bar.baz"));
        assert!(!matches(b"foo.>", b"foo"));
        assert!(matches(b">", b"anything.at.all"));
        assert!(matches(b"a.b", b"a.b"));
        assert!(!matches(b"a.b", b"a.c"));
    }
}
