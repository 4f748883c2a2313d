//! The writer task of every connection: coalesced writes, the PING schedule, and the
//! write deadline.

use super::{unix_nanos, Conn};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Timing of the keepalive, from the options.
#[derive(Clone, Copy)]
pub struct Liveness {
    pub first_ping: Duration,
    pub ping_interval: Duration,
    pub ping_max: u32,
    pub write_deadline: Duration,
}

/// The writer task: wait for a wake-up, swap the pending bytes out under the lock,
/// write them in one call, and keep the spare buffer for next time. Also sends PINGs
/// on a fixed schedule — traffic does not postpone them — and closes a connection
/// that leaves more than `ping_max` unanswered.
pub async fn writer<W: tokio::io::AsyncWrite + Unpin>(conn: Arc<Conn>, mut w: W, live: Liveness) {
    let mut spare: Vec<u8> = Vec::new();
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + live.first_ping,
        live.ping_interval,
    );
    loop {
        let mut draining = false;
        tokio::select! {
            _ = conn.wake.notified() => {}
            _ = conn.closing.cancelled() => draining = true,
            _ = ping.tick() => {
                let outstanding = conn.pings_out.fetch_add(1, Ordering::AcqRel) + 1;
                if outstanding > live.ping_max {
                    conn.server_stats.stale_connections.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("{} - cid:{} - Stale Client Connection - Closing", conn.addr, conn.cid);
                    {
                        let mut out = conn.out.lock();
                        out.buf.extend_from_slice(b"-ERR 'Stale Connection'\r\n");
                    }
                    conn.close("Stale Connection");
                    draining = true;
                } else {
                    let mut out = conn.out.lock();
                    if !out.closed {
                        out.buf.extend_from_slice(b"PING\r\n");
                        conn.rtt_start.store(unix_nanos(std::time::SystemTime::now()), Ordering::Release);
                    }
                }
            }
        }
        {
            let mut out = conn.out.lock();
            std::mem::swap(&mut out.buf, &mut spare);
            out.in_flight = spare.len();
        }
        if !spare.is_empty() {
            if let Err(reason) = write_out(&conn, &mut w, &spare, live.write_deadline).await {
                conn.close(reason);
                break;
            }
            // Keep the buffer while traffic is heavy (regrowing it costs copies);
            // give it back once writes are small again, so idle connections stay small.
            let written = spare.len();
            spare.clear();
            if spare.capacity() > 64 * 1024 && written < spare.capacity() / 8 {
                spare = Vec::new();
            }
        }
        if draining || conn.closing.is_cancelled() {
            // One last swap: anything queued just before close (a final -ERR).
            let rest = std::mem::take(&mut conn.out.lock().buf);
            if !rest.is_empty() {
                let _ = tokio::time::timeout(live.write_deadline, w.write_all(&rest)).await;
            }
            break;
        }
    }
    // Bounded: a TLS close_notify to a peer that stopped reading must not hold the
    // task (and the socket) forever.
    let _ = tokio::time::timeout(live.write_deadline, w.shutdown()).await;
}

/// Write `bytes` as the socket takes them, counting each part off the connection's
/// pending bytes, so a consumer that is reading drains its producers' wait as it goes.
/// A write that makes no progress for `write_deadline` is a slow consumer.
async fn write_out<W: tokio::io::AsyncWrite + Unpin>(
    conn: &Conn,
    w: &mut W,
    bytes: &[u8],
    write_deadline: Duration,
) -> Result<(), &'static str> {
    conn.last_progress
        .store(unix_nanos(std::time::SystemTime::now()), Ordering::Relaxed);
    let result = write_parts(conn, w, bytes, write_deadline).await;
    conn.last_progress.store(0, Ordering::Relaxed);
    result
}

async fn write_parts<W: tokio::io::AsyncWrite + Unpin>(
    conn: &Conn,
    w: &mut W,
    bytes: &[u8],
    write_deadline: Duration,
) -> Result<(), &'static str> {
    let mut done = 0;
    while done < bytes.len() {
        let n = match tokio::time::timeout(write_deadline, w.write(&bytes[done..])).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err("Write Error"),
            Ok(Ok(n)) => n,
            Err(_) => return Err(write_deadline_exceeded(conn, write_deadline)),
        };
        done += n;
        conn.last_progress
            .store(unix_nanos(std::time::SystemTime::now()), Ordering::Relaxed);
        let drained = {
            let mut out = conn.out.lock();
            out.in_flight = bytes.len() - done;
            let pending = out.buf.len() + out.in_flight;
            // Cleared under the lock: a producer that pushes it past the mark again
            // right after sets it again.
            let drained = conn.behind.load(Ordering::Relaxed) && pending <= conn.stall_mark / 2;
            if drained {
                conn.behind.store(false, Ordering::Release);
            }
            drained
        };
        if drained {
            conn.drained.notify_waiters();
        }
    }
    // TLS: what the session still holds goes out too, within the same deadline.
    match tokio::time::timeout(write_deadline, w.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("Write Error"),
        Err(_) => Err(write_deadline_exceeded(conn, write_deadline)),
    }
}

/// A write (or TLS flush) made no progress for `write_deadline`: count and log the
/// slow consumer, and give the close reason.
fn write_deadline_exceeded(conn: &Conn, write_deadline: Duration) -> &'static str {
    conn.count_slow_consumer();
    tracing::info!(
        "{} - cid:{} - Slow Consumer Detected: WriteDeadline of {:?} exceeded with {} total bytes",
        conn.addr,
        conn.cid,
        write_deadline,
        conn.pending_bytes()
    );
    "Slow Consumer (Write Deadline)"
}
