//! The client protocol parser. It looks for a whole op in the read buffer — control
//! line and, for PUB/HPUB, payload and CRLF — and only then returns it, as slices of
//! that buffer: a partial read allocates nothing and applies nothing.

use memchr::memchr;

#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    Connect(&'a [u8]),
    Pub {
        subject: &'a [u8],
        reply: Option<&'a [u8]>,
        payload: &'a [u8],
    },
    /// `message` is the header block followed by the payload; `header_len` splits them.
    HPub {
        subject: &'a [u8],
        reply: Option<&'a [u8]>,
        header_len: usize,
        message: &'a [u8],
    },
    Sub {
        subject: &'a [u8],
        queue: Option<&'a [u8]>,
        sid: &'a [u8],
    },
    Unsub {
        sid: &'a [u8],
        max: Option<u64>,
    },
    Ping,
    Pong,
    /// INFO, +OK and -ERR from a client are read and ignored, as the official server does.
    Ignored,
}

/// How a bad op is answered, exactly as the official server answers it.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum ParseError {
    /// `-ERR 'Unknown Protocol Operation'`, then close.
    UnknownOp,
    /// `-ERR 'maximum control line exceeded'`, then close.
    ControlLineTooLong,
    /// `-ERR 'Maximum Payload Violation'`, then close.
    MaxPayload,
    /// Closed without an `-ERR` (bad sizes, wrong argument counts): the reason is logged.
    Silent(&'static str),
}

impl ParseError {
    /// The `-ERR` line to send before closing, if any.
    pub fn err_line(&self) -> Option<&'static [u8]> {
        match self {
            ParseError::UnknownOp => Some(b"-ERR 'Unknown Protocol Operation'\r\n"),
            ParseError::ControlLineTooLong => Some(b"-ERR 'maximum control line exceeded'\r\n"),
            ParseError::MaxPayload => Some(b"-ERR 'Maximum Payload Violation'\r\n"),
            ParseError::Silent(_) => None,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::UnknownOp => "Unknown Protocol Operation",
            ParseError::ControlLineTooLong => "maximum control line exceeded",
            ParseError::MaxPayload => "Maximum Payload Violation",
            ParseError::Silent(why) => why,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_control_line: usize,
    pub max_payload: usize,
}

fn is_space(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

/// Up to `N` whitespace-separated arguments; `None` if there are more.
fn split_args<const N: usize>(line: &[u8]) -> Option<([&[u8]; N], usize)> {
    let mut out: [&[u8]; N] = [&[]; N];
    let mut n = 0;
    for arg in line.split(is_space).filter(|a| !a.is_empty()) {
        if n == N {
            return None;
        }
        out[n] = arg;
        n += 1;
    }
    Some((out, n))
}

fn parse_size(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0usize, |acc, d| {
        acc.checked_mul(10)?.checked_add((d - b'0') as usize)
    })
}

fn op_is(name: &[u8], want: &[u8]) -> bool {
    name.eq_ignore_ascii_case(want)
}

/// Parse one op from the front of `buf`: `Ok(None)` when more bytes are needed,
/// else the op and how many bytes it used.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<Option<(Op<'a>, usize)>, ParseError> {
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
    if line.len() > limits.max_control_line {
        return Err(ParseError::ControlLineTooLong);
    }
    let after = nl + 1;
    // Leading whitespace before the op name is tolerated.
    let start = line.iter().position(|b| !is_space(b)).unwrap_or(line.len());
    let line = &line[start..];
    let name_end = line.iter().position(is_space).unwrap_or(line.len());
    let (name, rest) = line.split_at(name_end);
    // An op that takes arguments, with nothing after its name (not even a space), is
    // not an op nats-server knows: `-ERR 'Unknown Protocol Operation'`. With a space,
    // wrong arguments close the connection silently, as its processSub and
    // processPub errors do.
    let takes_args = [&b"PUB"[..], b"HPUB", b"SUB", b"UNSUB"]
        .iter()
        .any(|op| op_is(name, op));
    if takes_args && rest.is_empty() {
        return Err(ParseError::UnknownOp);
    }

    if op_is(name, b"PUB") {
        let (args, n) =
            split_args::<3>(rest).ok_or(ParseError::Silent("processPub Parse Error"))?;
        let (subject, reply, size) = match n {
            2 => (args[0], None, args[1]),
            3 => (args[0], Some(args[1]), args[2]),
            _ => return Err(ParseError::Silent("processPub Parse Error")),
        };
        let size = parse_size(size).ok_or(ParseError::Silent("processPub Bad or Missing Size"))?;
        if size > limits.max_payload {
            return Err(ParseError::MaxPayload);
        }
        let Some(payload) = payload_at(buf, after, size)? else {
            return Ok(None);
        };
        return Ok(Some((
            Op::Pub {
                subject,
                reply,
                payload,
            },
            after + size + 2,
        )));
    }
    if op_is(name, b"HPUB") {
        let (args, n) =
            split_args::<4>(rest).ok_or(ParseError::Silent("processHeaderPub Parse Error"))?;
        let (subject, reply, hdr, total) = match n {
            3 => (args[0], None, args[1], args[2]),
            4 => (args[0], Some(args[1]), args[2], args[3]),
            _ => return Err(ParseError::Silent("processHeaderPub Parse Error")),
        };
        let hdr = parse_size(hdr).ok_or(ParseError::Silent(
            "processHeaderPub Bad or Missing Header Size",
        ))?;
        let total = parse_size(total).ok_or(ParseError::Silent(
            "processHeaderPub Bad or Missing Total Size",
        ))?;
        if hdr > total {
            return Err(ParseError::Silent("Header Size larger then TotalSize"));
        }
        if total > limits.max_payload {
            return Err(ParseError::MaxPayload);
        }
        let Some(message) = payload_at(buf, after, total)? else {
            return Ok(None);
        };
        return Ok(Some((
            Op::HPub {
                subject,
                reply,
                header_len: hdr,
                message,
            },
            after + total + 2,
        )));
    }
    if op_is(name, b"SUB") {
        let (args, n) =
            split_args::<3>(rest).ok_or(ParseError::Silent("processSub Parse Error"))?;
        let op = match n {
            2 => Op::Sub {
                subject: args[0],
                queue: None,
                sid: args[1],
            },
            3 => Op::Sub {
                subject: args[0],
                queue: Some(args[1]),
                sid: args[2],
            },
            _ => return Err(ParseError::Silent("processSub Parse Error")),
        };
        return Ok(Some((op, after)));
    }
    if op_is(name, b"UNSUB") {
        let (args, n) =
            split_args::<2>(rest).ok_or(ParseError::Silent("processUnsub Parse Error"))?;
        let op = match n {
            1 => Op::Unsub {
                sid: args[0],
                max: None,
            },
            // A max that is not a number unsubscribes at once, as in nats-server
            // (its parseSize gives -1, and a max below 1 means now).
            2 => Op::Unsub {
                sid: args[0],
                max: parse_size(args[1]).map(|m| m as u64),
            },
            _ => return Err(ParseError::Silent("processUnsub Parse Error")),
        };
        return Ok(Some((op, after)));
    }
    if op_is(name, b"PING") && rest.iter().all(is_space) {
        return Ok(Some((Op::Ping, after)));
    }
    if op_is(name, b"PONG") && rest.iter().all(is_space) {
        return Ok(Some((Op::Pong, after)));
    }
    if op_is(name, b"CONNECT") {
        let json = trim(rest);
        return Ok(Some((Op::Connect(json), after)));
    }
    if op_is(name, b"INFO") || op_is(name, b"+OK") || op_is(name, b"-ERR") {
        return Ok(Some((Op::Ignored, after)));
    }
    Err(ParseError::UnknownOp)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !is_space(b)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !is_space(b))
        .map(|i| i + 1)
        .unwrap_or(start);
    &s[start..end]
}

/// The payload of `size` bytes at `at`, which must be followed by CRLF.
fn payload_at(buf: &[u8], at: usize, size: usize) -> Result<Option<&[u8]>, ParseError> {
    let end = at + size;
    // Judge each terminator byte as soon as it arrives: a bare `\n` after the payload
    // is refused at once rather than waited on.
    match buf.get(end) {
        None => return Ok(None),
        Some(b'\r') => {}
        Some(_) => return Err(ParseError::UnknownOp),
    }
    match buf.get(end + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some(&buf[at..end])),
        Some(_) => Err(ParseError::UnknownOp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_control_line: 4096,
        max_payload: 1024,
    };

    fn one(s: &[u8]) -> Result<Option<(Op<'_>, usize)>, ParseError> {
        parse(s, &L)
    }

    #[test]
    fn ops_are_case_insensitive_and_tolerate_spacing() {
        assert_eq!(one(b"PiNg\r\n"), Ok(Some((Op::Ping, 6))));
        assert_eq!(one(b"ping\n"), Ok(Some((Op::Ping, 5))));
        let (op, n) = one(b"pub   foo\t 5 \r\nhello\r\n").unwrap().unwrap();
        assert_eq!(
            op,
            Op::Pub {
                subject: b"foo",
                reply: None,
                payload: b"hello"
            }
        );
        assert_eq!(n, 22);
        let (op, _) = one(b"SUB foo q 1\r\n").unwrap().unwrap();
        assert_eq!(
            op,
            Op::Sub {
                subject: b"foo",
                queue: Some(b"q"),
                sid: b"1"
            }
        );
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        assert_eq!(one(b"PUB foo 5\r\nhel"), Ok(None));
        assert_eq!(one(b"PUB foo 5\r\nhello"), Ok(None));
        assert_eq!(one(b"SUB foo"), Ok(None));
    }

    #[test]
    fn bad_input_gets_the_official_answer() {
        assert_eq!(one(b"FOO bar\r\n"), Err(ParseError::UnknownOp));
        assert_eq!(one(b"MSG foo 1 1\r\nx\r\n"), Err(ParseError::UnknownOp));
        assert_eq!(one(b"SUB\r\n"), Err(ParseError::UnknownOp));
        assert_eq!(one(b"PUB foo 5\r\nhello\n"), Err(ParseError::UnknownOp));
        assert_eq!(one(b"PUB foo 5\r\nhelloXY"), Err(ParseError::UnknownOp));
        assert_eq!(one(b"PUB foo 2000\r\n"), Err(ParseError::MaxPayload));
        assert!(matches!(
            one(b"PUB foo abc\r\n"),
            Err(ParseError::Silent(_))
        ));
        assert!(matches!(
            one(b"PUB a b c 1\r\n"),
            Err(ParseError::Silent(_))
        ));
        assert!(matches!(
            one(b"HPUB foo 10 5\r\n"),
            Err(ParseError::Silent(_))
        ));
        let long = vec![b'A'; 5000];
        assert_eq!(one(&long), Err(ParseError::ControlLineTooLong));
    }

    #[test]
    fn argument_errors_close_as_nats_server_closes() {
        // No space after the name: not an op at all.
        for op in [&b"PUB\r\n"[..], b"HPUB\r\n", b"SUB\r\n", b"UNSUB\r\n"] {
            assert_eq!(one(op), Err(ParseError::UnknownOp), "{op:?}");
        }
        // Wrong argument counts: a silent close.
        for op in [
            &b"SUB foo\r\n"[..],
            b"SUB a b c d\r\n",
            b"UNSUB 1 2 3\r\n",
            b"PUB \r\n",
        ] {
            assert!(matches!(one(op), Err(ParseError::Silent(_))), "{op:?}");
        }
        // A max that is not a number unsubscribes now.
        for op in [&b"UNSUB 1 abc\r\n"[..], b"UNSUB 1 -5\r\n"] {
            let (op, _) = one(op).unwrap().unwrap();
            assert_eq!(
                op,
                Op::Unsub {
                    sid: b"1",
                    max: None
                }
            );
        }
    }

    #[test]
    fn hpub_splits_headers_from_payload() {
        let (op, _) = one(b"HPUB foo r 18 23\r\nNATS/1.0\r\nA: b\r\n\r\nhello\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            op,
            Op::HPub {
                subject: b"foo",
                reply: Some(b"r"),
                header_len: 18,
                message: b"NATS/1.0\r\nA: b\r\n\r\nhello"
            }
        );
    }
}
