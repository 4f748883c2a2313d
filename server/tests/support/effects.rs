//! Helpers the option_effects tests share: read the INFO a listener sends, watch a
//! connection the server should close on its own timeout, sign in, and wait.
#![allow(dead_code)]

use crate::support::{Impl, Raw, Server};
use serde_json::Value;
use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Connect to `host:port` and read the INFO line the server sends first.
pub fn info_at(host: &str, port: u16) -> (TcpStream, Value) {
    let mut s = TcpStream::connect((host, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match s.read(&mut b) {
            Ok(1) => line.push(b[0]),
            other => panic!(
                "no INFO from {host}:{port} ({other:?}): {:?}",
                String::from_utf8_lossy(&line)
            ),
        }
    }
    let text = String::from_utf8_lossy(&line).into_owned();
    let json = text
        .strip_prefix("INFO ")
        .and_then(|j| serde_json::from_str(j.trim()).ok())
        .unwrap_or_else(|| panic!("not an INFO line: {text:?}"));
    (s, json)
}

/// The INFO a fresh client of `s` gets.
pub fn client_info(s: &Server) -> Value {
    let r = s.raw();
    serde_json::from_str(r.info.trim_start_matches("INFO ").trim()).unwrap()
}

/// Read from `s`, answering nothing, until the peer closes it or `within` has passed:
/// what arrived, and when the close came (None: still open).
pub fn watch_close(s: &mut TcpStream, within: Duration) -> (String, Option<Duration>) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.saturating_sub(start.elapsed());
        if left.is_zero() {
            return (String::from_utf8_lossy(&got).into_owned(), None);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => {
                return (
                    String::from_utf8_lossy(&got).into_owned(),
                    Some(start.elapsed()),
                )
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                return (
                    String::from_utf8_lossy(&got).into_owned(),
                    Some(start.elapsed()),
                )
            }
        }
    }
}

/// A connection that gets `timeout_secs` to do its part (TLS handshake, CONNECT)
/// and does nothing: still open a second and a half after the 2 s default would have
/// closed it — so the option was read — and closed within a few seconds of its own
/// timeout. Returns what the server sent before closing.
pub fn closes_after_its_own_timeout(
    kind: Impl,
    s: &mut TcpStream,
    timeout_secs: u64,
    what: &str,
) -> String {
    let (early, closed) = watch_close(s, Duration::from_millis(3500));
    assert!(
        closed.is_none(),
        "{kind:?}: {what} with timeout {timeout_secs}s was closed after {closed:?} (the 2 s default?); got {early:?}"
    );
    let (late, closed) = watch_close(s, Duration::from_secs(timeout_secs + 4));
    assert!(
        closed.is_some(),
        "{kind:?}: {what} still open 4 s after its {timeout_secs} s timeout; got {early:?}{late:?}"
    );
    format!("{early}{late}")
}

/// Sign in to `s` (as `user`, whose password is its name, or with no credentials)
/// and check the server answers a PING with no error.
pub fn login(s: &Server, user: Option<&str>) -> Raw {
    let mut c = s.raw();
    let creds = user
        .map(|u| format!(",\"user\":\"{u}\",\"pass\":\"{u}\""))
        .unwrap_or_default();
    c.send(format!("CONNECT {{\"verbose\":false,\"headers\":true{creds}}}\r\n").as_bytes());
    assert_eq!(c.sync(), "", "{:?} login {user:?}", s.kind);
    c
}

/// The strings of the array `key` of an INFO (none when the key is absent).
pub fn urls(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Poll `ok` every 100 ms until it holds (true), or give up after `within` (false,
/// saying so on stderr).
pub fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("gave up waiting for {what} after {within:?}");
    false
}
