//! Base backups: a consistent point of the running log (everything up to an LSN, archived) recorded
//! as a manifest, and the listing of those manifests.

use std::time::Duration;

use bytes::Bytes;

use super::layout::{self, Manifest, PlanError, SegmentMeta, Target};
use super::{ArchiveStatus, BackupError, BackupStore};

/// How long `POST /admin/backups` waits for the archive to catch up before giving up.
pub const DEFAULT_BACKUP_WAIT: Duration = Duration::from_secs(120);

/// Takes a base backup: seals the active segment, waits until every segment up to it is archived,
/// and writes `base/<id>/manifest.json`. The backup covers every write acknowledged before the call.
pub async fn create(status: &ArchiveStatus, wait: Duration) -> Result<Manifest, BackupError> {
    let lsn = status.seal().await?;
    status.wait_archived(lsn, wait).await?;
    let backup = &status.store;
    let sidecars = read_sidecars(backup).await?;
    let segments = layout::plan_restore(&sidecars, Target::Lsn(lsn)).map_err(|e| match e {
        PlanError::Missing(key) => BackupError::Missing {
            key: backup.describe(&key),
        },
    })?;
    let now = chrono::Utc::now();
    let id = format!("{}-{lsn:012}", now.format("%Y%m%dT%H%M%S%6fZ"));
    let manifest = Manifest::new(id, crate::clock::rfc3339(now.timestamp_micros()), segments);
    let key = layout::manifest_key(&manifest.id);
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Io {
        context: "encoding a manifest".into(),
        source: std::io::Error::other(e),
    })?;
    backup.put(&key, Bytes::from(json)).await?;
    tracing::info!(id = %manifest.id, last_lsn = manifest.last_lsn, segments = manifest.segments.len(), "base backup taken");
    Ok(manifest)
}

/// Every base backup in the store, oldest first.
pub async fn list(backup: &BackupStore) -> Result<Vec<Manifest>, BackupError> {
    let mut out = Vec::new();
    for key in backup.list("base").await? {
        if key.ends_with("/manifest.json") {
            out.push(read_json::<Manifest>(backup, &key).await?);
        }
    }
    out.sort_by(|a, b| (a.last_lsn, &a.id).cmp(&(b.last_lsn, &b.id)));
    Ok(out)
}

/// Reads base backup `id`'s manifest.
pub async fn manifest(backup: &BackupStore, id: &str) -> Result<Manifest, BackupError> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(BackupError::NoSuchBackup(id.to_string()));
    }
    match read_json::<Manifest>(backup, &layout::manifest_key(id)).await {
        Err(BackupError::Missing { .. }) => Err(BackupError::NoSuchBackup(id.to_string())),
        other => other,
    }
}

/// Every segment sidecar in the store. A segment whose bytes are there without a sidecar is an
/// upload in progress and is not listed.
pub async fn read_sidecars(backup: &BackupStore) -> Result<Vec<SegmentMeta>, BackupError> {
    let mut out = Vec::new();
    for key in backup.list("wal").await? {
        let Some(seq) = key
            .strip_prefix("wal/")
            .and_then(layout::parse_sidecar_name)
        else {
            continue;
        };
        let meta: SegmentMeta = read_json(backup, &key).await?;
        if meta.seq != seq {
            return Err(BackupError::Corrupt {
                key: backup.describe(&key),
                reason: format!("sidecar describes segment {}", meta.seq),
            });
        }
        out.push(meta);
    }
    Ok(out)
}

/// Reads and parses a JSON object, naming it in any error.
async fn read_json<T: serde::de::DeserializeOwned>(
    backup: &BackupStore,
    key: &str,
) -> Result<T, BackupError> {
    let bytes = backup.get(key).await?;
    serde_json::from_slice(&bytes).map_err(|e| BackupError::Corrupt {
        key: backup.describe(key),
        reason: format!("not a valid document: {e}"),
    })
}
