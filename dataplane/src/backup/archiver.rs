//! Continuous archiving: a background task uploads every sealed segment, in log order, as soon as
//! the commit thread seals it, and forces a seal when the active segment's oldest write is older
//! than the archive timeout, so the recovery point is bounded.
//!
//! The task never blocks commits: the commit thread only publishes counters and wakes it. While the
//! store is down uploads are retried with backoff and the lag grows; nothing is skipped, because a
//! restore needs every segment from the first.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use super::layout::{self, SegmentMeta};
use super::{BackupError, BackupStore};
use crate::clock::rfc3339;
use crate::store::{SealState, Store};
use crate::wal::segment;

/// Default `--archive-timeout`: the longest a write waits in the active segment before it is sealed.
pub const DEFAULT_ARCHIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// First retry delay after a failed upload; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest delay between upload attempts while the store is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest the task sleeps between checks of the archive timeout.
const MAX_TICK: Duration = Duration::from_secs(1);

/// Metrics of the archiver, registered with the process registry.
#[derive(Debug, Default)]
pub struct ArchiveMetrics {
    /// Age in seconds of the oldest write not yet archived (0 when everything is archived).
    pub lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Segments uploaded (or found already archived) since start.
    pub archived_segments: Counter,
    /// Bytes of segments uploaded since start.
    pub archived_bytes: Counter,
    /// Failed upload attempts since start.
    pub errors: Counter,
    /// Base backups attempted since start (on demand and scheduled), by result.
    pub base_backups: Family<super::schedule::BackupResultLabels, Counter>,
    /// Restore drills run since start, by result.
    pub verifications: Family<super::schedule::BackupResultLabels, Counter>,
    /// When the last restore drill passed (seconds since the epoch; 0 before one has).
    pub verified_timestamp: Gauge,
}

/// Who seals segments and uploads them. A single node does both itself; in a replicated
/// cluster only the leader uploads, and seals are entries in the log so that every member's
/// segments hold the same records and archive to the same objects.
pub trait Role: Send + Sync {
    /// Whether this process uploads now.
    fn uploads(&self) -> bool;
    /// Seals the active segment (where every member seals it); returns the last LSN sealed.
    fn seal(&self) -> futures::future::BoxFuture<'_, Result<u64, BackupError>>;
}

/// What the archiver has done, for `/readyz`, `/metrics` and base backups.
pub struct ArchiveStatus {
    seals: Arc<SealState>,
    state: Mutex<StatusInner>,
    archived_lsn: watch::Sender<u64>,
    /// The metrics it updates.
    pub metrics: Arc<ArchiveMetrics>,
    /// Where it archives to.
    pub store: BackupStore,
    /// The `--backup-retention` window applied after every base backup, if any.
    pub retention: Option<Duration>,
    /// The last restore drill's outcome.
    verification: Mutex<Option<super::verify::Verification>>,
    /// Where restore drills make their scratch copies.
    drill_dir: Mutex<std::path::PathBuf>,
    /// The replicated cluster's say in sealing and uploading; None on a single node. Fixed
    /// at start: a member must never act as a single node, not even in its first tick.
    role: Option<Arc<dyn Role>>,
    /// The store, for sealing on a single node.
    local: Store,
}

impl std::fmt::Debug for ArchiveStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveStatus")
            .field("store", &self.store.url().to_string())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct StatusInner {
    last_archived_seq: u64,
    last_archived_lsn: u64,
    last_archived_time_micros: i64,
    last_error: Option<(String, i64)>,
}

pub use koru_dataplane_api::ready::ArchiveReport;

impl ArchiveStatus {
    /// Age in seconds of the oldest write not in the archive.
    pub fn lag_seconds(&self) -> f64 {
        let pending = self.seals.sealed_first_write.lock().values().min().copied();
        let active = self.seals.active_first_write_micros.load(Ordering::SeqCst);
        let oldest = match (pending, active) {
            (Some(p), a) if a > 0 => p.min(a),
            (Some(p), _) => p,
            (None, a) if a > 0 => a,
            _ => return 0.0,
        };
        ((crate::clock::now_micros() - oldest) as f64 / 1e6).max(0.0)
    }

    /// The last restore drill's outcome, if one ran since start.
    pub fn verification(&self) -> Option<super::verify::Verification> {
        self.verification.lock().clone()
    }

    /// Where restore drills make their scratch copies (the system's temporary directory until
    /// the server sets the data directory's parent).
    pub fn drill_dir(&self) -> std::path::PathBuf {
        self.drill_dir.lock().clone()
    }

    /// Sets where restore drills make their scratch copies.
    pub fn set_drill_dir(&self, dir: std::path::PathBuf) {
        *self.drill_dir.lock() = dir;
    }

    /// Whether this process uploads, takes scheduled backups and runs drills now (always on a
    /// single node; only the leader of a replicated cluster).
    pub fn uploads(&self) -> bool {
        self.role.as_ref().is_none_or(|r| r.uploads())
    }

    /// Seals the active segment; returns the last LSN sealed.
    pub async fn seal(&self) -> Result<u64, BackupError> {
        match &self.role {
            Some(role) => role.seal().await,
            None => Ok(self.local.roll().await?),
        }
    }

    /// Records a restore drill's outcome.
    pub fn set_verification(&self, v: super::verify::Verification) {
        *self.verification.lock() = Some(v);
    }

    /// LSN of the newest archived record.
    pub fn last_archived_lsn(&self) -> u64 {
        self.state.lock().last_archived_lsn
    }

    /// A snapshot for `/readyz`.
    pub fn report(&self) -> ArchiveReport {
        let state = self.state.lock();
        let sealed = self.seals.last_sealed_seq.load(Ordering::SeqCst);
        ArchiveReport {
            store: self.store.url().to_string(),
            lag_seconds: self.lag_seconds(),
            last_archived_segment: state.last_archived_seq,
            last_archived_lsn: state.last_archived_lsn,
            last_archived_time: (state.last_archived_time_micros > 0)
                .then(|| rfc3339(state.last_archived_time_micros)),
            pending_segments: sealed.saturating_sub(state.last_archived_seq),
            last_error: state.last_error.as_ref().map(|(e, _)| e.clone()),
            last_error_at: state.last_error.as_ref().map(|&(_, at)| rfc3339(at)),
        }
    }

    /// The last upload error, if the last attempt failed.
    pub fn last_error(&self) -> Option<String> {
        self.state
            .lock()
            .last_error
            .as_ref()
            .map(|(e, _)| e.clone())
    }

    /// Waits until every record up to `lsn` is archived, or `timeout` passes.
    pub async fn wait_archived(&self, lsn: u64, timeout: Duration) -> Result<(), BackupError> {
        let mut rx = self.archived_lsn.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|&a| a >= lsn)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(BackupError::Timeout {
                lsn,
                last_error: self
                    .last_error()
                    .unwrap_or_else(|| "no error reported".into()),
            }),
        }
    }

    fn archived(&self, meta: &SegmentMeta) {
        self.seals.sealed_first_write.lock().remove(&meta.seq);
        let mut state = self.state.lock();
        state.last_archived_seq = meta.seq;
        state.last_archived_lsn = meta.last_lsn;
        state.last_archived_time_micros = meta.last_time_micros;
        state.last_error = None;
        drop(state);
        self.archived_lsn.send_replace(meta.last_lsn);
        self.metrics.archived_segments.inc();
    }

    fn failed(&self, error: &BackupError) {
        self.metrics.errors.inc();
        self.state.lock().last_error = Some((error.to_string(), crate::clock::now_micros()));
    }
}

/// The background uploader.
pub struct Archiver {
    store: Store,
    status: Arc<ArchiveStatus>,
    timeout: Duration,
}

impl Archiver {
    /// Starts archiving `store`'s sealed segments to `backup` on the current Tokio runtime.
    pub fn start(
        store: Store,
        backup: BackupStore,
        timeout: Duration,
        metrics: Arc<ArchiveMetrics>,
        retention: Option<Duration>,
        role: Option<Arc<dyn Role>>,
    ) -> Arc<ArchiveStatus> {
        let status = Arc::new(ArchiveStatus {
            seals: store.seals(),
            state: Mutex::new(StatusInner::default()),
            archived_lsn: watch::Sender::new(0),
            metrics,
            store: backup,
            retention,
            verification: Mutex::new(None),
            drill_dir: Mutex::new(std::env::temp_dir()),
            role,
            local: store.clone(),
        });
        let archiver = Archiver {
            store,
            status: Arc::clone(&status),
            timeout,
        };
        tokio::spawn(archiver.run());
        status
    }

    async fn run(self) {
        let seals = self.store.seals();
        let tick = (self.timeout / 4).clamp(Duration::from_millis(10), MAX_TICK);
        let mut next = 1;
        let mut backoff = FIRST_BACKOFF;
        loop {
            // Registered before reading the counters, so a seal in between still wakes us.
            let notified = seals.notify.notified();
            let sealed = seals.last_sealed_seq.load(Ordering::SeqCst);
            let mut failed = false;
            while next <= sealed && self.status.uploads() {
                match self.archive_one(next).await {
                    Ok(meta) => {
                        self.status.archived(&meta);
                        next += 1;
                        backoff = FIRST_BACKOFF;
                    }
                    Err(e) => {
                        tracing::warn!(segment = next, error = %e, retry_in_ms = backoff.as_millis() as u64, "archiving a log segment failed; will retry");
                        self.status.failed(&e);
                        failed = true;
                        break;
                    }
                }
            }
            self.status
                .metrics
                .lag_seconds
                .set(self.status.lag_seconds());
            if self.status.uploads() {
                self.seal_if_due(&seals).await;
            }
            let wait = if failed {
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            } else {
                tick
            };
            let _ = tokio::time::timeout(wait, notified).await;
        }
    }

    /// Seals the active segment when its oldest write is older than the archive timeout.
    async fn seal_if_due(&self, seals: &SealState) {
        let first = seals.active_first_write_micros.load(Ordering::SeqCst);
        if first == 0 {
            return;
        }
        let age = crate::clock::now_micros() - first;
        if age >= self.timeout.as_micros() as i64 {
            match self.status.seal().await {
                Ok(_) => {}
                // Already reported once by the store when it turned read-only.
                Err(BackupError::Log(
                    crate::error::StoreError::ReadOnly | crate::error::StoreError::Closed,
                )) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "sealing the active segment for the archive timeout failed");
                }
            }
        }
    }

    /// Uploads segment `seq` (bytes, then sidecar) unless the archive already holds it.
    async fn archive_one(&self, seq: u64) -> Result<SegmentMeta, BackupError> {
        let path = self.store.wal_dir().join(segment::file_name(seq));
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(super::io_err(format!("reading {}", path.display())))?;
        let bytes = Bytes::from(bytes);
        let scan = bytes.clone();
        // Hashing and checking 64 MiB takes a while: off the async workers.
        let meta = tokio::task::spawn_blocking(move || layout::scan_segment(seq, &scan))
            .await
            .map_err(|e| BackupError::Io {
                context: "checking a sealed segment".into(),
                source: std::io::Error::other(e),
            })?
            .map_err(|reason| BackupError::Corrupt {
                key: path.display().to_string(),
                reason,
            })?;
        let backup = &self.status.store;
        let sidecar_key = layout::sidecar_key(seq);
        if let Some(existing) = backup.get_opt(&sidecar_key).await? {
            let existing: SegmentMeta =
                serde_json::from_slice(&existing).map_err(|e| BackupError::Corrupt {
                    key: backup.describe(&sidecar_key),
                    reason: e.to_string(),
                })?;
            if existing.sha256 == meta.sha256 {
                return Ok(meta);
            }
            return Err(BackupError::Conflict {
                key: backup.describe(&layout::segment_key(seq)),
                existing: existing.sha256,
            });
        }
        let size = bytes.len() as u64;
        // Bytes first, sidecar second: a sidecar always describes a complete object.
        backup.put(&layout::segment_key(seq), bytes).await?;
        let sidecar = serde_json::to_vec_pretty(&meta).map_err(|e| BackupError::Io {
            context: "encoding a sidecar".into(),
            source: std::io::Error::other(e),
        })?;
        backup.put(&sidecar_key, Bytes::from(sidecar)).await?;
        self.status.metrics.archived_bytes.inc_by(size);
        tracing::debug!(
            segment = seq,
            last_lsn = meta.last_lsn,
            bytes = size,
            "log segment archived"
        );
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::metrics::StoreMetrics;
    use crate::store::{StoreConfig, WriteOp};

    /// A follower of a replicated cluster: it never uploads, and counts the seals asked of it.
    #[derive(Default)]
    struct Follower {
        seals: AtomicUsize,
    }

    impl Role for Follower {
        fn uploads(&self) -> bool {
            false
        }

        fn seal(&self) -> futures::future::BoxFuture<'_, Result<u64, BackupError>> {
            self.seals.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(0) })
        }
    }

    /// Starts an archiver with a 1 ms archive timeout over a store holding one record, waits a
    /// few ticks, and answers the store's segment starts and how many seals the role saw.
    async fn segments_after_ticks(role: Option<Arc<Follower>>) -> (Vec<u64>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(
            StoreConfig::new(dir.path().join("data")),
            Arc::new(StoreMetrics::default()),
        )
        .unwrap();
        let value = serde_json::value::RawValue::from_string("1".into()).unwrap();
        store
            .write(vec![WriteOp::put("ns", "k", value)])
            .await
            .unwrap();
        let url = format!("file://{}", dir.path().join("archive").display());
        let status = Archiver::start(
            store.clone(),
            BackupStore::open(&url.parse().unwrap(), true).unwrap(),
            Duration::from_millis(1),
            Arc::new(ArchiveMetrics::default()),
            None,
            role.clone().map(|r| r as Arc<dyn Role>),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let segments = store.segment_starts(0, u64::MAX);
        drop(status);
        store.close();
        (segments, role.map_or(0, |r| r.seals.load(Ordering::SeqCst)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_single_node_seals_its_old_active_segment_itself() {
        let (segments, _) = segments_after_ticks(None).await;
        assert_eq!(segments, vec![1, 2], "the record's segment is sealed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_members_archiver_never_seals_on_its_own_even_in_its_first_tick() {
        // A follower that sealed by itself would cut its segments where the leader's are not,
        // and its copies of the leader's sealed segments would differ.
        let (segments, seals) = segments_after_ticks(Some(Arc::default())).await;
        assert_eq!(segments, vec![1], "nothing sealed");
        assert_eq!(seals, 0, "a follower's archiver asks for no seal");
    }
}
