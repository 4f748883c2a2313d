//! Subject mappings (`mappings {}` at top level or per account): rewrite a published
//! subject before it is matched — literally, by wildcard token, or split by weight.

use crate::config::accounts::Mapping as MappingConfig;
use crate::subject;

/// One piece of a destination subject.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    /// The n-th (1-based) `*` token of the source.
    Wildcard(usize),
    /// `partition(n, tokens...)`: a stable bucket 0..n from the named wildcards.
    Partition(u32, Vec<usize>),
    /// `split(idx, delim)`: the wildcard split on `delim` into tokens.
    Split(usize, String),
    SplitFromLeft(usize, usize),
    SplitFromRight(usize, usize),
    SliceFromLeft(usize, usize),
    SliceFromRight(usize, usize),
    /// The tokens the source's `>` matched.
    Rest,
}

#[derive(Debug, Clone)]
struct Destination {
    /// Parts per destination token.
    tokens: Vec<Vec<Part>>,
    weight: f64,
}

#[derive(Debug, Clone)]
pub struct Mapping {
    source: String,
    /// Positions of the source's `*` tokens, in order.
    wildcard_positions: Vec<usize>,
    destinations: Vec<Destination>,
    weighted: bool,
    /// Where the source's `>` starts, if it has one.
    rest_position: Option<usize>,
}

fn parse_call(call: &str) -> Option<Part> {
    let open = call.find('(')?;
    let name = call[..open].trim().to_ascii_lowercase();
    let args: Vec<&str> = call[open + 1..call.strip_suffix(')')?.len()]
        .split(',')
        .map(str::trim)
        .collect();
    let n = |i: usize| args.get(i).and_then(|a| a.parse::<usize>().ok());
    Some(match name.as_str() {
        "wildcard" => Part::Wildcard(n(0)?),
        "partition" => Part::Partition(n(0)? as u32, (1..args.len()).filter_map(n).collect()),
        "split" => Part::Split(n(0)?, args.get(1)?.to_string()),
        "splitfromleft" => Part::SplitFromLeft(n(0)?, n(1)?),
        "splitfromright" => Part::SplitFromRight(n(0)?, n(1)?),
        "slicefromleft" => Part::SliceFromLeft(n(0)?, n(1)?),
        "slicefromright" => Part::SliceFromRight(n(0)?, n(1)?),
        _ => return None,
    })
}

fn parse_token(token: &str) -> Vec<Part> {
    if token == ">" {
        return vec![Part::Rest];
    }
    if let Some(n) = token
        .strip_prefix('$')
        .and_then(|d| d.parse::<usize>().ok())
    {
        return vec![Part::Wildcard(n)];
    }
    let mut parts = Vec::new();
    let mut rest = token;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Literal(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        match parse_call(after[..end].trim()) {
            Some(p) => parts.push(p),
            None => parts.push(Part::Literal(format!("{{{{{}}}}}", &after[..end]))),
        }
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.to_string()));
    }
    parts
}

fn fnv1a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c9dc5u32, |h, b| {
        (h ^ *b as u32).wrapping_mul(0x01000193)
    })
}

impl Mapping {
    pub fn compile(m: &MappingConfig) -> Mapping {
        let wildcard_positions = m
            .source
            .split('.')
            .enumerate()
            .filter(|(_, t)| *t == "*")
            .map(|(i, _)| i)
            .collect();
        let destinations = m
            .destinations
            .iter()
            .map(|d| Destination {
                tokens: d.subject.split('.').map(parse_token).collect(),
                weight: d.weight,
            })
            .collect();
        Mapping {
            source: m.source.clone(),
            wildcard_positions,
            destinations,
            weighted: m.destinations.len() > 1 || m.destinations.iter().any(|d| d.weight < 100.0),
            rest_position: m.source.split('.').position(|t| t == ">"),
        }
    }

    /// The mapped subject, or `None` when this mapping does not apply (no match, or
    /// the weights left this message unmapped).
    pub fn apply(&self, subj: &str) -> Option<String> {
        if !subject::matches(self.source.as_bytes(), subj.as_bytes()) {
            return None;
        }
        let dest = if self.weighted {
            let mut roll = rand::random::<f64>() * 100.0;
            self.destinations.iter().find(|d| {
                roll -= d.weight;
                roll < 0.0
            })?
        } else {
            self.destinations.first()?
        };
        let tokens: Vec<&str> = subj.split('.').collect();
        let wc = |n: usize| -> &str {
            n.checked_sub(1)
                .and_then(|i| self.wildcard_positions.get(i))
                .and_then(|&p| tokens.get(p))
                .copied()
                .unwrap_or("")
        };
        let mut out = String::with_capacity(subj.len() + 8);
        for (i, token) in dest.tokens.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            for part in token {
                match part {
                    Part::Literal(s) => out.push_str(s),
                    Part::Wildcard(n) => out.push_str(wc(*n)),
                    Part::Partition(buckets, idx) => {
                        let key: String = idx.iter().map(|&n| wc(n)).collect();
                        let b = if *buckets == 0 {
                            0
                        } else {
                            fnv1a(key.as_bytes()) % buckets
                        };
                        out.push_str(&b.to_string());
                    }
                    Part::Split(n, delim) => {
                        let pieces: Vec<&str> = wc(*n)
                            .split(delim.as_str())
                            .filter(|p| !p.is_empty())
                            .collect();
                        out.push_str(&pieces.join("."));
                    }
                    Part::SplitFromLeft(n, at) => {
                        let s = wc(*n).as_bytes();
                        out.push_str(&split_at_bytes(s, (*at).min(s.len())));
                    }
                    Part::SplitFromRight(n, at) => {
                        let s = wc(*n).as_bytes();
                        out.push_str(&split_at_bytes(s, s.len().saturating_sub(*at)));
                    }
                    Part::Rest => {
                        if let Some(p) = self.rest_position {
                            out.push_str(&tokens.get(p..).map(|t| t.join(".")).unwrap_or_default());
                        }
                    }
                    Part::SliceFromLeft(n, size) => {
                        let s = wc(*n).as_bytes();
                        let size = (*size).max(1);
                        let chunks: Vec<String> = s
                            .chunks(size)
                            .map(|c| String::from_utf8_lossy(c).into_owned())
                            .collect();
                        out.push_str(&chunks.join("."));
                    }
                    Part::SliceFromRight(n, size) => {
                        let s = wc(*n).as_bytes();
                        let size = (*size).max(1);
                        let first = s.len() % size;
                        let mut chunks = Vec::new();
                        if first > 0 {
                            chunks.push(String::from_utf8_lossy(&s[..first]).into_owned());
                        }
                        chunks.extend(
                            s[first..]
                                .chunks(size)
                                .map(|c| String::from_utf8_lossy(c).into_owned()),
                        );
                        out.push_str(&chunks.join("."));
                    }
                }
            }
        }
        Some(out)
    }
}

/// `abc` split at a byte offset into `a.bc` (subjects are bytes: a split inside a
/// multi-byte character keeps the bytes, lossily shown).
fn split_at_bytes(s: &[u8], at: usize) -> String {
    let (l, r) = s.split_at(at);
    [l, r]
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

/// The first mapping that applies, in config order.
pub fn map_subject(mappings: &[Mapping], subj: &str) -> Option<String> {
    mappings.iter().find_map(|m| m.apply(subj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::accounts::{Mapping as Cfg, MappingDest};

    fn m(source: &str, dests: &[(&str, f64)]) -> Mapping {
        Mapping::compile(&Cfg {
            pos: crate::config::Pos {
                file: "t".into(),
                line: 1,
                col: 1,
            },
            source: source.into(),
            destinations: dests
                .iter()
                .map(|(s, w)| MappingDest {
                    subject: s.to_string(),
                    weight: *w,
                })
                .collect(),
        })
    }

    #[test]
    fn literal_and_wildcard_mappings_rewrite_subjects() {
        assert_eq!(
            m("foo", &[("bar", 100.0)]).apply("foo").as_deref(),
            Some("bar")
        );
        assert_eq!(m("foo", &[("bar", 100.0)]).apply("foo.x"), None);
        let w = m(
            "orders.*.*",
            &[("o.{{wildcard(2)}}.{{wildcard(1)}}", 100.0)],
        );
        assert_eq!(w.apply("orders.eu.42").as_deref(), Some("o.42.eu"));
        assert_eq!(
            m("a.*.*", &[("b.$2.$1", 100.0)]).apply("a.x.y").as_deref(),
            Some("b.y.x")
        );
        assert_eq!(
            m("s.*", &[("t.{{split(1,-)}}", 100.0)])
                .apply("s.a-b-c")
                .as_deref(),
            Some("t.a.b.c")
        );
        assert_eq!(
            m("s.*", &[("t.{{slicefromleft(1,2)}}", 100.0)])
                .apply("s.abcde")
                .as_deref(),
            Some("t.ab.cd.e")
        );
        assert_eq!(
            m("foo.>", &[("bar.>", 100.0)]).apply("foo.a.b").as_deref(),
            Some("bar.a.b")
        );
        // A split inside a multi-byte character must not panic.
        assert!(m("s.*", &[("t.{{splitfromleft(1,1)}}", 100.0)])
            .apply("s.é")
            .is_some());
        assert!(m("s.*", &[("t.{{splitfromright(1,1)}}", 100.0)])
            .apply("s.é")
            .is_some());
        let p = m("p.*", &[("q.{{partition(4,1)}}", 100.0)]);
        let b = p.apply("p.customer-7").unwrap();
        assert_eq!(
            p.apply("p.customer-7").unwrap(),
            b,
            "partitioning is stable"
        );
        assert!(["q.0", "q.1", "q.2", "q.3"].contains(&b.as_str()));
    }

    #[test]
    fn weights_split_traffic_and_the_remainder_stays_unmapped() {
        let w = m("w", &[("w.a", 50.0), ("w.b", 30.0)]);
        let (mut a, mut b, mut none) = (0, 0, 0);
        for _ in 0..10_000 {
            match w.apply("w").as_deref() {
                Some("w.a") => a += 1,
                Some("w.b") => b += 1,
                None => none += 1,
                other => panic!("{other:?}"),
            }
        }
        assert!((4500..5500).contains(&a), "{a}");
        assert!((2500..3500).contains(&b), "{b}");
        assert!((1500..2500).contains(&none), "{none}");
    }
}
