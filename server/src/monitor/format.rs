//! How monitoring writes times, durations and process facts, as nats-server does.
use std::time::{Duration, SystemTime};

/// RFC 3339 with nanoseconds, UTC, as Go prints `time.Time` in JSON.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Go's `Duration.String()` shape for the ranges monitoring shows: `36s`, `1m2s`,
/// `1h0m5s`, `13.234ms`, `273µs`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return trim(format!("{:.3}", nanos as f64 / 1e3)) + "µs";
    }
    if nanos < 1_000_000_000 {
        return trim(format!("{:.6}", nanos as f64 / 1e6)) + "ms";
    }
    let secs = d.as_secs();
    let frac = d.subsec_nanos();
    let s = if frac == 0 {
        format!("{}", secs % 60)
    } else {
        trim(format!("{}.{:09}", secs % 60, frac))
    };
    match (secs / 3600, (secs / 60) % 60) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Whole-second uptime, as `/varz` shows it (`36s`, `1h2m3s`).
pub fn uptime(since: SystemTime) -> String {
    let d = SystemTime::now().duration_since(since).unwrap_or_default();
    go_duration(Duration::from_secs(d.as_secs()))
}

pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

pub(super) fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
