//! Message frames, written straight into a connection's outbound buffer: MSG/HMSG for
//! a subscription, LMSG/RMSG/HMSG for a link. Numbers are formatted with `itoa`;
//! nothing is allocated per message.

use super::{Conn, Delivered, Subscription};
use std::sync::atomic::Ordering;

/// The tail every message frame shares: ` [<header size> ]<size>\r\n<body>\r\n`.
fn push_sizes_and_body(b: &mut Vec<u8>, header_len: Option<usize>, body: &[u8]) {
    b.push(b' ');
    if let Some(h) = header_len {
        push_num(b, h);
        b.push(b' ');
    }
    push_num(b, body.len());
    b.extend_from_slice(b"\r\n");
    b.extend_from_slice(body);
    b.extend_from_slice(b"\r\n");
}

/// Append a decimal number without allocating.
fn push_num(buf: &mut Vec<u8>, n: usize) {
    let mut b = itoa::Buffer::new();
    buf.extend_from_slice(b.format(n).as_bytes());
}

impl Conn {
    /// Whether a message goes out with its headers (this connection takes them), and
    /// the bytes that go out: the whole message, or its body without the headers.
    #[inline]
    fn as_sent<'m>(&self, header_len: usize, message: &'m [u8]) -> (bool, &'m [u8]) {
        let with_headers = header_len > 0 && self.headers.load(Ordering::Relaxed);
        let body = if header_len > 0 && !with_headers {
            &message[header_len..]
        } else {
            message
        };
        (with_headers, body)
    }

    /// One message of `len` bytes went out on this connection.
    #[inline]
    fn count_out(&self, len: usize) {
        self.stats.out_msgs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .out_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
    }

    /// Append a MSG (or HMSG) frame for `sub`. No allocation: the frame is written
    /// straight into the outbound buffer.
    pub fn deliver(
        &self,
        sub: &Subscription,
        subject: &[u8],
        reply: Option<&[u8]>,
        header_len: usize,
        message: &[u8],
    ) -> Delivered {
        // Every delivery counts, so `UNSUB <sid> <max>` after some have arrived
        // allows only the rest, as in nats-server.
        if sub.denies(subject) {
            return Delivered::No;
        }
        let max = sub.max.load(Ordering::Relaxed);
        let n = sub.delivered.fetch_add(1, Ordering::AcqRel) + 1;
        if max > 0 && n > max {
            return Delivered::No;
        }
        let last = max > 0 && n == max;
        let (with_headers, body) = self.as_sent(header_len, message);
        let mut out = self.out.lock();
        if out.closed {
            return Delivered::No;
        }
        let b = &mut out.buf;
        b.extend_from_slice(if with_headers { b"HMSG " } else { b"MSG " });
        b.extend_from_slice(subject);
        b.push(b' ');
        b.extend_from_slice(&sub.sid);
        if let Some(r) = reply {
            b.push(b' ');
            b.extend_from_slice(r);
        }
        push_sizes_and_body(b, with_headers.then_some(header_len), body);
        if !self.check_pending(&mut out) {
            // Never let a reader that cannot keep up grow memory: drop and close.
            return Delivered::No;
        }
        drop(out);
        if let Some(r) = reply {
            if self.grants_on.load(Ordering::Relaxed) {
                self.grant_reply(r);
            }
        }
        self.count_out(body.len());
        if last {
            Delivered::Last
        } else {
            Delivered::Yes
        }
    }

    /// Append one LMSG/HMSG frame for a leaf link: once per message, naming the queue
    /// groups it was picked for (`| q1 q2` or `+ reply q1 q2`).
    pub fn deliver_leaf(
        &self,
        subject: &[u8],
        reply: Option<&[u8]>,
        queues: &[&str],
        header_len: usize,
        message: &[u8],
    ) -> bool {
        self.deliver_link(None, subject, reply, queues, header_len, message)
    }

    /// Append one RMSG/HMSG frame for a route: as for a leaf link, with the account
    /// after the op.
    pub fn deliver_route(
        &self,
        account: &str,
        subject: &[u8],
        reply: Option<&[u8]>,
        queues: &[&str],
        header_len: usize,
        message: &[u8],
    ) -> bool {
        self.deliver_link(Some(account), subject, reply, queues, header_len, message)
    }

    fn deliver_link(
        &self,
        account: Option<&str>,
        subject: &[u8],
        reply: Option<&[u8]>,
        queues: &[&str],
        header_len: usize,
        message: &[u8],
    ) -> bool {
        let (with_headers, body) = self.as_sent(header_len, message);
        let mut out = self.out.lock();
        if out.closed {
            return false;
        }
        let b = &mut out.buf;
        match (with_headers, account) {
            (true, _) => b.extend_from_slice(b"HMSG "),
            (false, None) => b.extend_from_slice(b"LMSG "),
            (false, Some(_)) => b.extend_from_slice(b"RMSG "),
        }
        if let Some(a) = account {
            b.extend_from_slice(a.as_bytes());
            b.push(b' ');
        }
        b.extend_from_slice(subject);
        match (reply, queues.is_empty()) {
            (Some(r), true) => {
                b.push(b' ');
                b.extend_from_slice(r);
            }
            (Some(r), false) => {
                b.extend_from_slice(b" + ");
                b.extend_from_slice(r);
            }
            (None, false) => b.extend_from_slice(b" |"),
            (None, true) => {}
        }
        for q in queues {
            b.push(b' ');
            b.extend_from_slice(q.as_bytes());
        }
        push_sizes_and_body(b, with_headers.then_some(header_len), body);
        if !self.check_pending(&mut out) {
            // A link that cannot keep up is closed like a client (and redialled by its
            // leaf): memory stays bounded.
            return false;
        }
        drop(out);
        self.count_out(body.len());
        true
    }
}
