//! The monitoring documents — varz, connz, routez, leafz, subsz, accountz, accstatz,
//! statsz — with nats-server's JSON field names and types. Each is a read of the world;
//! `http.rs` serves them, `$SYS` requests answer with them, `metrics.rs` renders
//! Prometheus text.

mod accounts;
mod connz;
pub mod format;
pub mod http;
mod links;
pub mod metrics;
pub mod probe;
mod varz;

pub use accounts::{accountz, accstatz, subsz};
pub use connz::{connz_query, record_closed, ConnzQuery};
pub use format::{rfc3339, rss_bytes};
pub use links::{leafz, routez};
pub use varz::{server_header, statsz, subscriptions_total, totals, varz};

#[cfg(test)]
mod tests {
    use super::format::go_duration;
    use std::time::Duration;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_secs(36)), "36s");
        assert_eq!(go_duration(Duration::from_secs(62)), "1m2s");
        assert_eq!(go_duration(Duration::from_secs(3605)), "1h0m5s");
        assert_eq!(go_duration(Duration::from_micros(273)), "273µs");
        assert_eq!(go_duration(Duration::from_nanos(13_234_098)), "13.234098ms");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }
}
