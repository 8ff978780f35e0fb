//! Restore: rebuild a data directory from the archive as of an LSN or a moment.
//!
//! Segments are downloaded into a hidden sibling directory, every object's SHA-256 and every
//! record's CRC are checked, the last segment is cut right after the target record, the result is
//! replayed once more through the log reader, and only then is the directory renamed into place: a
//! failed restore leaves no directory that looks like a data directory. The data directory is
//! written through the [`Storage`] seam, so the power-loss simulation can cut a restore anywhere.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::base;
use super::layout::{self, PlanError, SegmentMeta, Target};
use super::{BackupError, BackupStore, BackupUrl, io_err};
use crate::wal::record;
use crate::wal::segment::{self, HEADER_LEN};
use crate::wal::storage::{FileStorage, OpenMode, Storage};

/// What to restore.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The backup store.
    pub from: BackupUrl,
    /// Base backup to start from; without one, all archived segments are candidates.
    pub backup: Option<String>,
    /// Where to stop ([`Target::End`] with a backup means the backup's own end).
    pub target: Target,
    /// The data directory to create; it must not exist or be empty.
    pub data_dir: PathBuf,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreReport {
    /// Segments written.
    pub segments: usize,
    /// Records kept.
    pub records: u64,
    /// Versions (operations) kept.
    pub versions: u64,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// LSN of the last record kept (0 when none).
    pub last_lsn: u64,
    /// Commit time (µs) of the last record kept (0 when none).
    pub last_time_micros: i64,
    /// Commit time (µs) of the newest record in the archive candidates; a time target after it
    /// cannot be honoured fully, since newer writes were never archived.
    pub archive_end_micros: i64,
    /// Wall time taken.
    pub elapsed: Duration,
}

/// Runs a restore onto the file system; see the module documentation for the guarantees.
pub async fn restore(req: &RestoreRequest) -> Result<RestoreReport, BackupError> {
    restore_on(Arc::new(FileStorage), req).await
}

/// [`restore`] onto any [`Storage`].
pub async fn restore_on(
    storage: Arc<dyn Storage>,
    req: &RestoreRequest,
) -> Result<RestoreReport, BackupError> {
    let started = Instant::now();
    check_target_dir(&*storage, &req.data_dir)?;
    let backup = BackupStore::open(&req.from, false)?;
    let (candidates, target) = candidates(&backup, req).await?;
    let plan = layout::plan_restore(&candidates, target).map_err(|e| match e {
        PlanError::Missing(key) => BackupError::Missing {
            key: backup.describe(&key),
        },
    })?;
    let archive_end_micros = candidates
        .iter()
        .map(|m| m.last_time_micros)
        .max()
        .unwrap_or(0);
    let tmp = temp_dir_for(&*storage, &req.data_dir)?;
    let result = fill(&storage, &backup, &plan, target, &tmp).await;
    let mut report = match result {
        Ok(report) => report,
        Err(e) => {
            let _ = storage.remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = publish(&*storage, &tmp, &req.data_dir) {
        let _ = storage.remove_dir_all(&tmp);
        return Err(e);
    }
    report.archive_end_micros = archive_end_micros;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The segments a restore may use, and the effective target.
async fn candidates(
    backup: &BackupStore,
    req: &RestoreRequest,
) -> Result<(Vec<SegmentMeta>, Target), BackupError> {
    let sidecars = base::read_sidecars(backup).await?;
    let Some(id) = &req.backup else {
        return Ok((sidecars, req.target));
    };
    let manifest = base::manifest(backup, id).await?;
    let target = match req.target {
        Target::End => Target::Lsn(manifest.last_lsn),
        t => t,
    };
    let last_seq = manifest.segments.last().map_or(0, |s| s.seq);
    for m in &manifest.segments {
        if let Some(s) = sidecars.iter().find(|s| s.seq == m.seq)
            && s.sha256 != m.sha256
        {
            return Err(BackupError::Corrupt {
                key: backup.describe(&layout::sidecar_key(m.seq)),
                reason: format!(
                    "checksum {} differs from base backup {id}'s manifest ({})",
                    s.sha256, m.sha256
                ),
            });
        }
    }
    let mut out = manifest.segments.clone();
    out.extend(sidecars.into_iter().filter(|s| s.seq > last_seq));
    Ok((out, target))
}

/// Refuses a data directory that exists and holds anything.
fn check_target_dir(storage: &dyn Storage, dir: &Path) -> Result<(), BackupError> {
    match storage.list_dir(dir) {
        Ok(entries) => {
            if !entries.is_empty() {
                return Err(BackupError::DataDir {
                    path: dir.to_path_buf(),
                    reason: "is not empty; restore only into a new or empty directory".into(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("reading {}", dir.display()))(e)),
    }
}

/// A fresh hidden directory beside `data_dir` (same file system, so the final rename is atomic).
fn temp_dir_for(storage: &dyn Storage, data_dir: &Path) -> Result<PathBuf, BackupError> {
    let name = data_dir
        .file_name()
        .ok_or_else(|| BackupError::DataDir {
            path: data_dir.to_path_buf(),
            reason: "has no directory name".into(),
        })?
        .to_string_lossy()
        .into_owned();
    let parent = match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    storage
        .create_dir_all(&parent)
        .map_err(io_err(format!("creating {}", parent.display())))?;
    let tmp = parent.join(format!(".{name}.restore-{}", std::process::id()));
    if storage.list_dir(&tmp).is_ok() {
        storage
            .remove_dir_all(&tmp)
            .map_err(io_err(format!("removing {}", tmp.display())))?;
    }
    // `wal` must be durable inside the directory the rename publishes, or a power loss after
    // the restore could leave the data directory without its log (the power-loss simulation
    // found this for the store's own start-up).
    storage
        .create_dir_all_durable(&tmp.join("wal"))
        .map_err(io_err(format!("creating {}", tmp.display())))?;
    Ok(tmp)
}

/// Downloads, verifies and writes the planned segments into `tmp/wal`, cutting the last one.
async fn fill(
    storage: &Arc<dyn Storage>,
    backup: &BackupStore,
    plan: &[SegmentMeta],
    target: Target,
    tmp: &Path,
) -> Result<RestoreReport, BackupError> {
    let wal = tmp.join("wal");
    let mut report = RestoreReport {
        segments: 0,
        records: 0,
        versions: 0,
        downloaded_bytes: 0,
        last_lsn: 0,
        last_time_micros: 0,
        archive_end_micros: 0,
        elapsed: Duration::ZERO,
    };
    for meta in plan {
        let key = layout::segment_key(meta.seq);
        let bytes = backup.get(&key).await?;
        report.downloaded_bytes += bytes.len() as u64;
        let name = backup.describe(&key);
        let keep = tokio::task::spawn_blocking({
            let meta = meta.clone();
            move || verify_and_cut(&meta, &bytes, target).map(|(end, stats)| (bytes, end, stats))
        })
        .await
        .map_err(|e| BackupError::Io {
            context: "verifying a segment".into(),
            source: std::io::Error::other(e),
        })?;
        let (bytes, end, (records, versions, last_lsn, last_time)) =
            keep.map_err(|reason| BackupError::Corrupt { key: name, reason })?;
        let path = wal.join(segment::file_name(meta.seq));
        write_synced(&**storage, &path, &bytes[..end])?;
        report.segments += 1;
        report.records += records;
        report.versions += versions;
        report.last_lsn = last_lsn;
        report.last_time_micros = last_time;
    }
    storage
        .sync_dir(&wal)
        .map_err(io_err(format!("syncing {}", wal.display())))?;
    // The log reader's own checks over the finished directory: what the server will see.
    let (wal_check, storage) = (wal.clone(), Arc::clone(storage));
    let replayed = tokio::task::spawn_blocking(move || {
        let mut n = 0u64;
        crate::wal::Wal::open_on(
            storage,
            &wal_check,
            crate::store::MAX_SEGMENT_SIZE,
            |_, _| n += 1,
        )
        .map(|_| n)
    })
    .await
    .map_err(|e| BackupError::Io {
        context: "replaying the restored log".into(),
        source: std::io::Error::other(e),
    })?
    .map_err(|e| BackupError::Corrupt {
        key: wal.display().to_string(),
        reason: e.to_string(),
    })?;
    if replayed != report.records {
        return Err(BackupError::Corrupt {
            key: wal.display().to_string(),
            reason: format!(
                "replay found {replayed} records, {} were written",
                report.records
            ),
        });
    }
    Ok(report)
}

/// (records, versions, last LSN, last time) kept from one segment.
type Kept = (u64, u64, u64, i64);

/// Checks a downloaded segment against its sidecar and every record's CRC, and returns how many
/// bytes to keep: up to the end of the last record inside `target`.
fn verify_and_cut(
    meta: &SegmentMeta,
    bytes: &[u8],
    target: Target,
) -> Result<(usize, Kept), String> {
    if bytes.len() as u64 != meta.size {
        return Err(format!(
            "size {} differs from the sidecar's {}",
            bytes.len(),
            meta.size
        ));
    }
    let sha = layout::sha256_hex(bytes);
    if sha != meta.sha256 {
        return Err(format!(
            "sha256 {sha} differs from the recorded {}",
            meta.sha256
        ));
    }
    let scanned = layout::scan_segment(meta.seq, bytes)?;
    if (scanned.first_lsn, scanned.last_lsn) != (meta.first_lsn, meta.last_lsn) {
        return Err("LSN range differs from the sidecar".into());
    }
    let version = crate::wal::segment::decode_header(bytes)?.version;
    let mut pos = HEADER_LEN;
    let mut kept: Kept = (0, 0, 0, 0);
    while pos < bytes.len() {
        let rec = record::decode_version(&bytes[pos..], version)
            .map_err(|e| format!("offset {pos}: {e}"))?;
        if !target.includes(rec.lsn, rec.timestamp_micros) {
            break;
        }
        kept.0 += 1;
        kept.1 += rec.ops.len() as u64;
        kept.2 = rec.lsn;
        kept.3 = rec.timestamp_micros;
        pos += rec.encoded_len;
    }
    Ok((pos, kept))
}

/// Writes a file and fsyncs it.
fn write_synced(storage: &dyn Storage, path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let file = storage
        .open(path, OpenMode::CreateTruncate)
        .map_err(io_err(format!("creating {}", path.display())))?;
    file.append(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_err(format!("writing {}", path.display())))
}

/// Moves the finished directory into place (replacing an empty one) and makes the rename durable.
fn publish(storage: &dyn Storage, tmp: &Path, data_dir: &Path) -> Result<(), BackupError> {
    if storage.list_dir(data_dir).is_ok() {
        storage.remove_dir(data_dir).map_err(io_err(format!(
            "removing the empty directory {}",
            data_dir.display()
        )))?;
    }
    storage.rename(tmp, data_dir).map_err(io_err(format!(
        "renaming {} to {}",
        tmp.display(),
        data_dir.display()
    )))?;
    let parent = match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    storage
        .sync_dir(parent)
        .map_err(io_err(format!("syncing {}", parent.display())))
}

/// The one-line JSON summary `koru-dataplane restore` prints on success.
pub fn summary(req: &RestoreRequest, r: &RestoreReport) -> String {
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let beyond_archive = matches!(req.target, Target::TimeMicros(t) if t > r.archive_end_micros);
    serde_json::json!({
        "restored": req.data_dir.display().to_string(),
        "segments": r.segments,
        "records": r.records,
        "versions": r.versions,
        "last_lsn": r.last_lsn,
        "last_time": crate::clock::format_commit_micros(r.last_time_micros),
        "target_after_newest_archived_write": beyond_archive,
        "downloaded_bytes": r.downloaded_bytes,
        "elapsed_seconds": secs,
        "versions_per_second": r.versions as f64 / secs,
        "megabytes_per_second": r.downloaded_bytes as f64 / 1e6 / secs,
    })
    .to_string()
}
