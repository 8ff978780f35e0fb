//! The server's metrics: the process registry and the HTTP, Raft, archive and usage figures.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::StoreMetrics;

/// Labels of a finished HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route pattern, e.g. `/api/v1/{namespace}/{key}`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Response status code.
    pub status: u16,
}

/// Labels of a request latency observation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route pattern.
    pub route: String,
    /// HTTP method.
    pub method: String,
}

/// Labels naming a cluster member.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The member's id.
    pub peer: String,
}

/// Labels naming a Raft role.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    /// leader, follower, candidate, learner or shutdown.
    pub role: String,
}

/// Replication metrics (all zero on a single-node server), refreshed at each scrape.
#[derive(Debug, Default)]
pub struct RaftMetrics {
    /// Current Raft term.
    pub term: Gauge,
    /// 1 for this member's current role, 0 for the others.
    pub role: Family<RoleLabels, Gauge>,
    /// Index of the last entry in this member's log.
    pub last_log_index: Gauge,
    /// Index of the last entry applied to the store.
    pub applied_index: Gauge,
    /// Elections seen since start (term changes).
    pub elections: Counter,
    /// On the leader: entries each member is behind its log.
    pub replication_lag: Family<PeerLabels, Gauge>,
}

/// A latency histogram with buckets from 25 µs to about 3 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_025, 2.0, 18))
}

/// Every metric of the process, registered once.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Store-side handles.
    pub store: Arc<StoreMetrics>,
    /// HTTP requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// HTTP request latency by route and method.
    pub request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Live keys, refreshed at each scrape.
    pub keys: Gauge,
    /// Stored versions, refreshed at each scrape.
    pub versions: Gauge,
    /// LSN of the last committed record, refreshed at each scrape.
    pub last_lsn: Gauge,
    /// 1 while the store refuses writes after a failed log write.
    pub read_only: Gauge,
    /// Requests refused by the rate limit.
    pub rate_limited: Counter,
    /// Replication.
    pub raft: Arc<RaftMetrics>,
    /// Continuous-archiving handles (idle unless `--backup-store` is set).
    pub archive: Arc<crate::backup::archiver::ArchiveMetrics>,
    /// The volume and the process, refreshed at each scrape.
    pub usage: UsageMetrics,
    /// The region streams, by peer region.
    pub regions: RegionMetrics,
}

/// Labels of a region stream's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct RegionLabels {
    /// The peer region.
    pub peer: String,
}

/// The region streams' series.
#[derive(Debug, Default)]
pub struct RegionMetrics {
    /// How far this region's view of each peer trails the peer's clock.
    pub lag_seconds: Family<RegionLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Remote operations that changed something here, per peer.
    pub applied: Family<RegionLabels, Counter>,
    /// Failed stream rounds, per peer.
    pub errors: Family<RegionLabels, Counter>,
}

impl Metrics {
    /// Counts operations applied from `peer`.
    pub fn region_applied(&self, peer: &str, n: u64) {
        self.regions
            .applied
            .get_or_create(&RegionLabels { peer: peer.into() })
            .inc_by(n);
    }

    /// Counts a failed round of `peer`'s stream.
    pub fn region_errors(&self, peer: &str) {
        self.regions
            .errors
            .get_or_create(&RegionLabels { peer: peer.into() })
            .inc();
    }

    /// Sets `peer`'s lag.
    pub fn region_lag(&self, peer: &str, seconds: f64) {
        self.regions
            .lag_seconds
            .get_or_create(&RegionLabels { peer: peer.into() })
            .set(seconds);
    }
}

/// What the volume and the process use, refreshed at each scrape (see [`crate::usage`]): the
/// operator grows volumes and sets CPU and memory from them.
#[derive(Debug, Default)]
pub struct UsageMetrics {
    /// Bytes used on the data directory's file system.
    pub volume_used_bytes: Gauge,
    /// Size of that file system in bytes.
    pub volume_capacity_bytes: Gauge,
    /// CPU seconds (user and system) the process used since start.
    pub cpu_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    /// Resident memory of the process in bytes.
    pub resident_memory_bytes: Gauge,
}

impl UsageMetrics {
    /// Reads the volume holding `data_dir` and this process's usage into the gauges.
    pub fn refresh(&self, data_dir: &std::path::Path) {
        if let Some(v) = crate::usage::volume(data_dir) {
            self.volume_used_bytes
                .set(i64::try_from(v.used_bytes).unwrap_or(i64::MAX));
            self.volume_capacity_bytes
                .set(i64::try_from(v.capacity_bytes).unwrap_or(i64::MAX));
        }
        if let Some(p) = crate::usage::process() {
            // A counter only moves forward: add what was used since the last scrape.
            let delta = p.cpu_seconds - self.cpu_seconds.get();
            if delta > 0.0 {
                self.cpu_seconds.inc_by(delta);
            }
            self.resident_memory_bytes
                .set(i64::try_from(p.resident_bytes).unwrap_or(i64::MAX));
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("koru");
        let store = Arc::new(StoreMetrics::default());
        registry.register(
            "log_bytes",
            "Bytes in all write-ahead log segments",
            store.log_bytes.clone(),
        );
        registry.register(
            "log_appended_bytes",
            "Bytes appended to the log since start",
            store.log_appended_bytes.clone(),
        );
        registry.register(
            "fsync_duration_seconds",
            "Duration of log fsyncs",
            store.fsync_seconds.clone(),
        );
        registry.register(
            "commit_group_requests",
            "Write requests per group commit",
            store.commit_group_size.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let request_seconds =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            request_seconds.clone(),
        );
        let keys = Gauge::default();
        registry.register(
            "keys",
            "Live keys (latest version not a delete)",
            keys.clone(),
        );
        let versions = Gauge::default();
        registry.register(
            "versions",
            "Stored versions, deletes included",
            versions.clone(),
        );
        let last_lsn = Gauge::default();
        registry.register(
            "last_lsn",
            "LSN of the last committed record",
            last_lsn.clone(),
        );
        let read_only = Gauge::default();
        registry.register(
            "read_only",
            "1 while writes are refused after a failed log write",
            read_only.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited_requests",
            "Requests refused by the operations-per-second limit",
            rate_limited.clone(),
        );
        let archive = Arc::new(crate::backup::archiver::ArchiveMetrics::default());
        registry.register(
            "archive_lag_seconds",
            "Age of the oldest write not yet in the backup store (0 when all is archived)",
            archive.lag_seconds.clone(),
        );
        registry.register(
            "archived_segments",
            "Log segments archived to the backup store since start",
            archive.archived_segments.clone(),
        );
        registry.register(
            "archived_bytes",
            "Bytes of log segments uploaded to the backup store since start",
            archive.archived_bytes.clone(),
        );
        registry.register(
            "base_backups",
            "Base backups attempted since start (on demand and scheduled), by result",
            archive.base_backups.clone(),
        );
        registry.register(
            "backup_verifications",
            "Restore drills (newest base backup restored into a scratch directory and checked) since start, by result",
            archive.verifications.clone(),
        );
        registry.register(
            "backup_verified_timestamp_seconds",
            "When the last restore drill passed, seconds since the epoch (0 before one has)",
            archive.verified_timestamp.clone(),
        );
        registry.register(
            "archive_errors",
            "Failed attempts to archive a log segment since start",
            archive.errors.clone(),
        );
        let raft = Arc::new(RaftMetrics::default());
        registry.register("raft_term", "Current Raft term", raft.term.clone());
        registry.register(
            "raft_role",
            "1 for this member's current Raft role",
            raft.role.clone(),
        );
        registry.register(
            "raft_last_log_index",
            "Index of the last entry in this member's Raft log",
            raft.last_log_index.clone(),
        );
        registry.register(
            "raft_applied_index",
            "Index of the last Raft entry applied to the store",
            raft.applied_index.clone(),
        );
        registry.register(
            "raft_elections",
            "Raft elections (term changes) seen since start",
            raft.elections.clone(),
        );
        registry.register(
            "raft_replication_lag_entries",
            "On the leader: Raft entries each member is behind the leader's log",
            raft.replication_lag.clone(),
        );
        let usage = UsageMetrics::default();
        registry.register(
            "volume_used_bytes",
            "Bytes used on the file system holding the data directory",
            usage.volume_used_bytes.clone(),
        );
        registry.register(
            "volume_capacity_bytes",
            "Size in bytes of the file system holding the data directory",
            usage.volume_capacity_bytes.clone(),
        );
        registry.register(
            "process_cpu_seconds",
            "CPU seconds (user and system) the process used since start",
            usage.cpu_seconds.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the process in bytes",
            usage.resident_memory_bytes.clone(),
        );
        let regions = RegionMetrics::default();
        registry.register(
            "region_lag_seconds",
            "How far this region's view of a peer region trails the peer's clock",
            regions.lag_seconds.clone(),
        );
        registry.register(
            "region_applied_operations",
            "Operations applied from a peer region that changed something here",
            regions.applied.clone(),
        );
        registry.register(
            "region_stream_errors",
            "Failed rounds of a peer region's stream",
            regions.errors.clone(),
        );
        Metrics {
            regions,
            usage,
            raft,
            archive,
            registry,
            store,
            requests,
            request_seconds,
            keys,
            versions,
            last_lsn,
            read_only,
            rate_limited,
        }
    }
}

impl Metrics {
    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
