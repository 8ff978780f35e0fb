//! Backups on the wire: where they live (`BackupUrl`), the base-backup [`Manifest`] that
//! `POST /admin/backups` answers with, and the `GET /admin/backups` listing ([`BackupList`]).

mod url;

use serde::{Deserialize, Serialize};

pub use self::url::{BackupUrl, BackupUrlError};
use crate::rfc3339;

/// Version of the sidecar and manifest JSON documents (see `dataplane/FORMAT.md`, "Archive layout").
pub const ARCHIVE_FORMAT_VERSION: u32 = 1;

/// What the archive knows about one sealed segment: its sidecar document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// [`ARCHIVE_FORMAT_VERSION`].
    pub format_version: u32,
    /// Segment sequence number.
    pub seq: u64,
    /// LSN of its first record.
    pub first_lsn: u64,
    /// LSN of its last record.
    pub last_lsn: u64,
    /// Commit time (µs since the epoch) of its first record.
    pub first_time_micros: i64,
    /// Commit time (µs since the epoch) of its last record.
    pub last_time_micros: i64,
    /// File size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file, lowercase hex.
    pub sha256: String,
}

/// One base backup: a consistent point of the log, and the segments that reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`ARCHIVE_FORMAT_VERSION`].
    pub format_version: u32,
    /// Backup id (also its folder name under `base/`).
    pub id: String,
    /// When the backup was taken (RFC 3339).
    pub created: String,
    /// First LSN covered (1, or 0 for an empty log).
    pub first_lsn: u64,
    /// Last LSN covered: restoring this backup without a target stops here.
    pub last_lsn: u64,
    /// Commit time (µs) of the first record, 0 for an empty log.
    pub first_time_micros: i64,
    /// Commit time (µs) of the last record, 0 for an empty log.
    pub last_time_micros: i64,
    /// The segments, in log order, with their checksums.
    pub segments: Vec<SegmentMeta>,
}

impl Manifest {
    /// Builds the manifest of a backup whose segments are `segments` (in log order).
    pub fn new(id: String, created: String, segments: Vec<SegmentMeta>) -> Manifest {
        let first = segments.first();
        let last = segments.last();
        Manifest {
            format_version: ARCHIVE_FORMAT_VERSION,
            id,
            created,
            first_lsn: first.map_or(0, |s| s.first_lsn),
            last_lsn: last.map_or(0, |s| s.last_lsn),
            first_time_micros: first.map_or(0, |s| s.first_time_micros),
            last_time_micros: last.map_or(0, |s| s.last_time_micros),
            segments,
        }
    }

    /// The backup as `GET /admin/backups` lists it: commit times as RFC 3339 (none for an empty
    /// log) and the number of segments instead of their list.
    pub fn listed(&self) -> ListedBackup {
        ListedBackup {
            id: self.id.clone(),
            created: self.created.clone(),
            first_lsn: self.first_lsn,
            last_lsn: self.last_lsn,
            first_time: rfc3339::format_commit_micros(self.first_time_micros),
            last_time: rfc3339::format_commit_micros(self.last_time_micros),
            segments: self.segments.len(),
        }
    }
}

/// The part of a manifest a caller of `POST /admin/backups` reads: the segment list and format
/// version are the archive's business, so an answer without them is still understood.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ManifestSummary {
    /// Backup id.
    pub id: String,
    /// First LSN covered.
    pub first_lsn: u64,
    /// Last LSN covered.
    pub last_lsn: u64,
    /// Commit time (µs) of the first record, 0 for an empty log.
    pub first_time_micros: i64,
    /// Commit time (µs) of the last record, 0 for an empty log.
    pub last_time_micros: i64,
}

/// One base backup as `GET /admin/backups` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ListedBackup {
    /// Backup id.
    pub id: String,
    /// When it was taken (RFC 3339).
    pub created: String,
    /// First LSN covered (0 for an empty log).
    pub first_lsn: u64,
    /// Last LSN covered.
    pub last_lsn: u64,
    /// Commit time of the first write covered (RFC 3339); none for an empty log.
    #[serde(default)]
    pub first_time: Option<String>,
    /// Commit time of the last write covered (RFC 3339); none for an empty log.
    #[serde(default)]
    pub last_time: Option<String>,
    /// How many log segments it holds.
    pub segments: usize,
}

/// The span the archived log alone makes restorable, as `GET /admin/backups` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ArchivedSpan {
    /// LSN of the first archived write.
    pub first_lsn: u64,
    /// LSN of the last write the archive reaches.
    pub last_lsn: u64,
    /// Commit time of the first archived write (RFC 3339).
    pub first_time: String,
    /// Commit time of the last write the archive reaches (RFC 3339).
    pub last_time: String,
    /// How many segments the span holds.
    pub segments: usize,
}

/// The outcome of a restore drill (the newest base backup restored into a scratch directory and
/// checked against its manifest): `POST /admin/backups/verify` answers with it and
/// `GET /admin/backups` reports the last one. Fields a drill of an older data plane did not
/// write read as empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Verification {
    /// When the drill finished (RFC 3339).
    pub at: String,
    /// The base backup restored; none when there was none to restore.
    #[serde(default)]
    pub backup_id: Option<String>,
    /// Whether the restored copy opened and matched its manifest.
    pub ok: bool,
    /// What was checked, or what went wrong.
    #[serde(default)]
    pub message: String,
    /// LSN the restored copy reached.
    #[serde(default)]
    pub last_lsn: u64,
    /// Versions in the restored copy.
    #[serde(default)]
    pub versions: u64,
    /// Seconds the drill took.
    #[serde(default)]
    pub seconds: f64,
}

/// A `GET /admin/backups` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct BackupList {
    /// The base backups, oldest first.
    pub backups: Vec<ListedBackup>,
    /// What the archived log makes restorable; none before anything is archived, and from data
    /// planes older than this field.
    #[serde(default)]
    pub archive: Option<ArchivedSpan>,
    /// The last restore drill since the data plane started; none before one ran, and from data
    /// planes older than this field.
    #[serde(default)]
    pub verification: Option<Verification>,
}

impl BackupList {
    /// The answer's JSON as the data plane has always written it: keys in alphabetical order at
    /// every level (it was built as a `serde_json::Value`, whose maps sort their keys).
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(self)
    }
}

#[cfg(test)]
mod tests;
