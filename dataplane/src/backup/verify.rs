//! Restore drills: the newest base backup is restored into a scratch directory beside the data
//! directory, opened as a store, and checked against its manifest; then the scratch copy is
//! removed. A backup nobody has restored is a hope, not a backup: the result is kept for
//! `GET /admin/backups` (the operator's `BackupVerified` condition) and counted in
//! `koru_backup_verifications_total{result}` and `koru_backup_verified_timestamp_seconds`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::layout::VERIFICATION_KEY;
use super::restore::{RestoreRequest, restore};
use super::schedule::{BackupResultLabels, Schedule};
use super::{ArchiveStatus, Target, base};
use crate::metrics::StoreMetrics;
use crate::store::{FsyncMode, Store, StoreConfig};

/// Scratch directories of concurrent drills in one process get distinct names.
static DRILLS: AtomicU64 = AtomicU64::new(0);

pub use koru_dataplane_api::backup::Verification;

/// Restores the newest base backup into a scratch directory inside [`ArchiveStatus::drill_dir`],
/// opens it, and checks that it reaches the manifest's last LSN. Never fails: a failure is the
/// result.
pub async fn drill(status: &ArchiveStatus) -> Verification {
    let scratch_parent = status.drill_dir();
    let started = Instant::now();
    let mut v = Verification {
        at: String::new(),
        backup_id: None,
        ok: false,
        message: String::new(),
        last_lsn: 0,
        versions: 0,
        seconds: 0.0,
    };
    let scratch = scratch_parent.join(format!(
        ".koru-verify-{}-{}",
        std::process::id(),
        DRILLS.fetch_add(1, Ordering::Relaxed)
    ));
    match check(status, &scratch, &mut v).await {
        Ok(message) => {
            v.ok = true;
            v.message = message;
        }
        Err(message) => v.message = message,
    }
    if let Err(e) = std::fs::remove_dir_all(&scratch)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %scratch.display(), error = %e, "cannot remove a restore drill's scratch copy");
    }
    v.seconds = started.elapsed().as_secs_f64();
    v.at = crate::clock::now_rfc3339();
    let result = if v.ok { "ok" } else { "error" };
    status
        .metrics
        .verifications
        .get_or_create(&BackupResultLabels { result })
        .inc();
    if v.ok {
        status
            .metrics
            .verified_timestamp
            .set(chrono::Utc::now().timestamp());
        tracing::info!(backup = ?v.backup_id, last_lsn = v.last_lsn, versions = v.versions, seconds = v.seconds, "restore drill passed");
    } else {
        tracing::error!(backup = ?v.backup_id, message = %v.message, "restore drill failed");
    }
    status.set_verification(v.clone());
    // Kept in the store too, so a restart (or anyone reading the archive) still sees it.
    match serde_json::to_vec_pretty(&v) {
        Ok(json) => {
            if let Err(e) = status.store.put(VERIFICATION_KEY, Bytes::from(json)).await {
                tracing::warn!(error = %e, "cannot record the restore drill's outcome in the backup store");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot encode the restore drill's outcome"),
    }
    v
}

/// Loads the outcome of the last drill recorded in the backup store (by this process or an
/// earlier one) unless a drill already ran, so `GET /admin/backups` and the verified-time metric
/// survive a restart. A missing or unreadable record is not an error: the next drill rewrites it.
pub async fn load_last(status: &ArchiveStatus) {
    let bytes = match status.store.get_opt(VERIFICATION_KEY).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the last restore drill's outcome");
            return;
        }
    };
    let v: Verification = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(key = VERIFICATION_KEY, error = %e, "ignoring an unreadable restore drill record");
            return;
        }
    };
    if status.verification().is_some() {
        return;
    }
    if v.ok
        && let Ok(at) = crate::clock::parse_micros(&v.at)
    {
        status
            .metrics
            .verified_timestamp
            .set(at.div_euclid(1_000_000));
    }
    status.set_verification(v);
}

async fn check(
    status: &ArchiveStatus,
    scratch: &std::path::Path,
    v: &mut Verification,
) -> Result<String, String> {
    let backups = base::list(&status.store)
        .await
        .map_err(|e| format!("listing base backups: {e}"))?;
    let Some(newest) = backups.last() else {
        return Err("there is no base backup to restore yet".into());
    };
    v.backup_id = Some(newest.id.clone());
    let report = restore(&RestoreRequest {
        from: status.store.url().clone(),
        backup: Some(newest.id.clone()),
        target: Target::End,
        data_dir: scratch.to_path_buf(),
    })
    .await
    .map_err(|e| format!("restoring base backup {}: {e}", newest.id))?;
    let dir = scratch.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || {
        let mut config = StoreConfig::new(dir);
        config.fsync = FsyncMode::Off;
        let (store, _) = Store::open(config, Arc::new(StoreMetrics::default()))?;
        let stats = store.stats();
        store.close();
        Ok::<_, crate::StoreError>(stats)
    })
    .await
    .map_err(|e| format!("the drill's open task failed: {e}"))?
    .map_err(|e| format!("the restored copy of {} does not open: {e}", newest.id))?;
    v.last_lsn = opened.applied_lsn;
    v.versions = opened.versions;
    if opened.applied_lsn != newest.last_lsn || report.versions != opened.versions {
        return Err(format!(
            "the restored copy of {} reaches LSN {} with {} versions; the manifest says LSN {} and \
             the restore replayed {} versions",
            newest.id, opened.applied_lsn, opened.versions, newest.last_lsn, report.versions
        ));
    }
    Ok(format!(
        "base backup {} restored, opened and checked: LSN {}, {} versions, {} bytes downloaded",
        newest.id, opened.applied_lsn, opened.versions, report.downloaded_bytes
    ))
}

/// Starts the background task running a drill at every tick of `schedule`.
pub fn start(status: Arc<ArchiveStatus>, schedule: Schedule) {
    tokio::spawn(async move {
        loop {
            let now = chrono::Utc::now();
            let Some(next) = schedule.next_after(now) else {
                tracing::warn!(%schedule, "restore drill schedule has no further ticks; drills stop");
                return;
            };
            tokio::time::sleep((next - now).to_std().unwrap_or(Duration::ZERO)).await;
            // On a replicated cluster the leader drills the cluster's archive.
            if status.uploads() {
                drill(&status).await;
            }
        }
    });
}
