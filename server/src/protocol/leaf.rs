//! The leafnode link protocol (accept side): LS+/LS- interest, LMSG/HMSG messages
//! with optional queue lists, plus PING/PONG/INFO/-ERR. Like the client parser, an op
//! is returned only when the whole frame is buffered, as slices of the buffer.

use super::client::{Limits, ParseError};
use memchr::memchr;

#[derive(Debug, PartialEq, Eq)]
pub enum LeafOp<'a> {
    Connect(&'a [u8]),
    Sub {
        subject: &'a [u8],
        queue: Option<&'a [u8]>,
        weight: u32,
    },
    Unsub {
        subject: &'a [u8],
        queue: Option<&'a [u8]>,
    },
    /// `queues` is the raw, space-separated list after `|` or after the reply of `+`.
    Msg {
        subject: &'a [u8],
        reply: Option<&'a [u8]>,
        queues: Option<&'a [u8]>,
        header_len: usize,
        message: &'a [u8],
    },
    Ping,
    Pong,
    Err(&'a [u8]),
    /// INFO on a route carries gossip (peers to dial, client URLs); on a leaf link it
    /// is ignored.
    Info(&'a [u8]),
    Ignored,
}

fn is_space(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

fn size(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0usize, |a, d| {
        a.checked_mul(10)?.checked_add((d - b'0') as usize)
    })
}

/// The byte range of `part` inside `whole` (both slices of one buffer).
fn span<'a>(whole: &'a [u8], first: &[u8], last: &[u8]) -> &'a [u8] {
    let start = first.as_ptr() as usize - whole.as_ptr() as usize;
    let end = last.as_ptr() as usize - whole.as_ptr() as usize + last.len();
    &whole[start..end]
}

/// A parsed op, the account a route op names, and the bytes it used.
pub type RouteParse<'a> = Result<Option<(LeafOp<'a>, Option<&'a [u8]>, usize)>, ParseError>;

pub fn parse<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Option<(LeafOp<'a>, usize)>, ParseError> {
    Ok(parse_as(buf, limits, false)?.map(|(op, _, n)| (op, n)))
}

/// The route protocol is the leaf protocol with the account first in every op:
/// `RS+ <acc> <subject> [<queue> <weight>]`, `RS- <acc> ...`, `RMSG <acc> ...`,
/// `HMSG <acc> ...`. Returns the op, its account, and the bytes it used.
pub fn parse_route<'a>(buf: &'a [u8], limits: &Limits) -> RouteParse<'a> {
    parse_as(buf, limits, true)
}

fn parse_as<'a>(buf: &'a [u8], limits: &Limits, route: bool) -> RouteParse<'a> {
    let window = &buf[..buf.len().min(limits.max_control_line + 2)];
    let Some(nl) = memchr(b'\n', window) else {
        if buf.len() > limits.max_control_line {
            return Err(ParseError::ControlLineTooLong);
        }
        return Ok(None);
    };
    let mut line = &buf[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    let after = nl + 1;
    let mut words = line.split(is_space).filter(|w| !w.is_empty());
    let Some(op) = words.next() else {
        return Err(ParseError::UnknownOp);
    };
    let upper = |w: &[u8], s: &[u8]| w.eq_ignore_ascii_case(s);
    if upper(op, b"PING") {
        return Ok(Some((LeafOp::Ping, None, after)));
    }
    if upper(op, b"PONG") {
        return Ok(Some((LeafOp::Pong, None, after)));
    }
    if upper(op, b"INFO") {
        let json = line.get(5..).unwrap_or_default();
        return Ok(Some((LeafOp::Info(json), None, after)));
    }
    if upper(op, b"+OK") || (route && (upper(op, b"A+") || upper(op, b"A-"))) {
        return Ok(Some((LeafOp::Ignored, None, after)));
    }
    if upper(op, b"-ERR") {
        let text = line.get(5..).unwrap_or_default();
        return Ok(Some((LeafOp::Err(text), None, after)));
    }
    if upper(op, b"CONNECT") {
        let json = line.get(8..).unwrap_or_default();
        return Ok(Some((LeafOp::Connect(json), None, after)));
    }
    // At most 16 arguments (a dozen queue names): no allocation per message.
    let mut store: [&[u8]; 16] = [&[]; 16];
    let mut n = 0;
    for w in words {
        if n == store.len() {
            return Err(ParseError::Silent("too many arguments"));
        }
        store[n] = w;
        n += 1;
    }
    let mut args = &store[..n];
    let (sub_op, unsub_op, msg_op): (&[u8], &[u8], &[u8]) = if route {
        (b"RS+", b"RS-", b"RMSG")
    } else {
        (b"LS+", b"LS-", b"LMSG")
    };
    let mut account = None;
    if route
        && (upper(op, sub_op) || upper(op, unsub_op) || upper(op, msg_op) || upper(op, b"HMSG"))
    {
        let (first, rest) = args
            .split_first()
            .ok_or(ParseError::Silent("route op without an account"))?;
        account = Some(*first);
        args = rest;
    }
    if upper(op, sub_op) {
        return sub(args, account, after);
    }
    if upper(op, unsub_op) {
        return unsub(args, account, after);
    }
    let headers = upper(op, b"HMSG");
    if upper(op, msg_op) || headers {
        return message(buf, line, args, headers, limits, account, after);
    }
    Err(ParseError::UnknownOp)
}

/// `LS+`/`RS+` arguments: `<subject> [<queue> [<weight>]]`.
#[inline]
fn sub<'a>(args: &[&'a [u8]], account: Option<&'a [u8]>, after: usize) -> RouteParse<'a> {
    match args {
        [s] => Ok(Some((
            LeafOp::Sub {
                subject: s,
                queue: None,
                weight: 0,
            },
            account,
            after,
        ))),
        [s, q, w] => {
            let weight = size(w).ok_or(ParseError::Silent("LS+ bad queue weight"))? as u32;
            Ok(Some((
                LeafOp::Sub {
                    subject: s,
                    queue: Some(q),
                    weight: weight.max(1),
                },
                account,
                after,
            )))
        }
        [s, q] => Ok(Some((
            LeafOp::Sub {
                subject: s,
                queue: Some(q),
                weight: 1,
            },
            account,
            after,
        ))),
        _ => Err(ParseError::Silent("LS+ parse error")),
    }
}

/// `LS-`/`RS-` arguments: `<subject> [<queue>]`.
#[inline]
fn unsub<'a>(args: &[&'a [u8]], account: Option<&'a [u8]>, after: usize) -> RouteParse<'a> {
    match args {
        [s] => Ok(Some((
            LeafOp::Unsub {
                subject: s,
                queue: None,
            },
            account,
            after,
        ))),
        [s, q] | [s, q, _] => Ok(Some((
            LeafOp::Unsub {
                subject: s,
                queue: Some(q),
            },
            account,
            after,
        ))),
        _ => Err(ParseError::Silent("LS- parse error")),
    }
}

/// `LMSG`/`RMSG`/`HMSG` arguments, `<subject> [reply | + reply q.. | '|' q..] [<hdr>] <size>`,
/// and the payload after the line: the whole message or nothing yet.
#[inline]
fn message<'a>(
    buf: &'a [u8],
    line: &'a [u8],
    args: &[&'a [u8]],
    headers: bool,
    limits: &Limits,
    account: Option<&'a [u8]>,
    after: usize,
) -> RouteParse<'a> {
    let n_sizes = if headers { 2 } else { 1 };
    if args.len() < 1 + n_sizes {
        return Err(ParseError::Silent("LMSG parse error"));
    }
    let (head, sizes) = args.split_at(args.len() - n_sizes);
    let subject = head[0];
    let (reply, queues) = match head.get(1) {
        None => (None, None),
        Some(&b"|") if head.len() > 2 => (None, Some(span(line, head[2], head[head.len() - 1]))),
        Some(&b"+") if head.len() > 3 => (
            Some(head[2]),
            Some(span(line, head[3], head[head.len() - 1])),
        ),
        Some(r) if head.len() == 2 => (Some(*r), None),
        _ => return Err(ParseError::Silent("LMSG parse error")),
    };
    let (header_len, total) = if headers {
        let h = size(sizes[0]).ok_or(ParseError::Silent("HMSG bad header size"))?;
        let t = size(sizes[1]).ok_or(ParseError::Silent("HMSG bad total size"))?;
        if h > t {
            return Err(ParseError::Silent("HMSG header larger than total"));
        }
        (h, t)
    } else {
        (
            0,
            size(sizes[0]).ok_or(ParseError::Silent("LMSG bad size"))?,
        )
    };
    if total > limits.max_payload {
        return Err(ParseError::MaxPayload);
    }
    let end = after + total;
    match (buf.get(end), buf.get(end + 1)) {
        (None, _) | (Some(b'\r'), None) => return Ok(None),
        (Some(b'\r'), Some(b'\n')) => {}
        _ => return Err(ParseError::UnknownOp),
    }
    let message = &buf[after..end];
    Ok(Some((
        LeafOp::Msg {
            subject,
            reply,
            queues,
            header_len,
            message,
        },
        account,
        end + 2,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    const L: Limits = Limits {
        max_control_line: 4096,
        max_payload: 1 << 20,
    };

    #[test]
    fn leaf_ops_parse_as_captured_from_nats_server() {
        let (op, _) = parse(b"LS+ bar q1 2\r\n", &L).unwrap().unwrap();
        assert_eq!(
            op,
            LeafOp::Sub {
                subject: b"bar",
                queue: Some(b"q1"),
                weight: 2
            }
        );
        let (op, _) = parse(b"LMSG leaf.x r.2 3\r\nabc\r\n", &L).unwrap().unwrap();
        assert_eq!(
            op,
            LeafOp::Msg {
                subject: b"leaf.x",
                reply: Some(b"r.2"),
                queues: None,
                header_len: 0,
                message: b"abc"
            }
        );
        let (op, _) = parse(b"LMSG lq | grp other 1\r\nq\r\n", &L)
            .unwrap()
            .unwrap();
        assert_eq!(
            op,
            LeafOp::Msg {
                subject: b"lq",
                reply: None,
                queues: Some(b"grp other"),
                header_len: 0,
                message: b"q"
            }
        );
        let (op, _) = parse(
            b"HMSG lq + _INBOX.x grp 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
            &L,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            op,
            LeafOp::Msg {
                subject: b"lq",
                reply: Some(b"_INBOX.x"),
                queues: Some(b"grp"),
                header_len: 12,
                message: b"NATS/1.0\r\n\r\nhi"
            }
        );
        assert_eq!(parse(b"LMSG a 3\r\nab", &L), Ok(None));
        assert_eq!(parse(b"PUB a 1\r\nx\r\n", &L), Err(ParseError::UnknownOp));
    }
}
