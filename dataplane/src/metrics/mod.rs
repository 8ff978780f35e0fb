//! Prometheus metrics: one registry for the process, with handles for the store and the HTTP layer.
//!
//! [`StoreMetrics`] is all the embedded store needs; the process registry and the HTTP, Raft and
//! usage figures are the server's.

#[cfg(feature = "server")]
mod server;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
#[cfg(feature = "server")]
pub use server::*;

/// Metrics the store updates as it writes.
#[derive(Debug)]
pub struct StoreMetrics {
    /// Bytes in all log segments.
    pub log_bytes: Gauge,
    /// Bytes appended to the log since start.
    pub log_appended_bytes: Counter,
    /// Time each fsync of the log took.
    pub fsync_seconds: Histogram,
    /// Requests written by each group commit.
    pub commit_group_size: Histogram,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            log_bytes: Gauge::default(),
            log_appended_bytes: Counter::default(),
            fsync_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            commit_group_size: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
        }
    }
}
