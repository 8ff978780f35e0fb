//! Backups and point-in-time recovery: sealed log segments are shipped to object storage as they
//! are sealed, base backups record consistent points, and `restore` rebuilds a data directory.
//!
//! [`store`] wraps the object store, [`layout`] holds the archive's keys, documents and the pure
//! decisions, [`archiver`] is the background uploader, [`base`] takes and lists base backups,
//! [`schedule`] takes them on a cron schedule and applies retention, [`restore`] rebuilds a
//! data directory, and [`verify`] runs restore drills. The layout is documented in `dataplane/FORMAT.md`.

pub mod archiver;
pub mod base;
pub mod layout;
pub mod restore;
pub mod schedule;
pub mod store;
pub mod verify;

use std::path::PathBuf;

use thiserror::Error;

pub use archiver::{ArchiveStatus, Archiver, DEFAULT_ARCHIVE_TIMEOUT};
pub use layout::{Manifest, SegmentMeta, Target};
pub use schedule::Schedule;
pub use store::{BackupStore, BackupUrl};

/// Why a backup, archive or restore step failed.
#[derive(Debug, Error)]
pub enum BackupError {
    /// The `--backup-store` / `--from` URL is not one we understand.
    #[error("invalid backup store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object store refused or failed a request.
    #[error("object store error on {key}: {source}")]
    Store {
        /// The object key (or prefix) involved.
        key: String,
        /// The underlying error.
        source: object_store::Error,
    },
    /// An object the archive should hold is not there.
    #[error("object {key} is missing from the backup store")]
    Missing {
        /// Its key.
        key: String,
    },
    /// An object is there but its contents are wrong.
    #[error("object {key} is corrupt: {reason}")]
    Corrupt {
        /// Its key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The archive already holds a different segment under the same key (another history wrote
    /// to this store); it is never overwritten.
    #[error(
        "object {key} already exists with different contents (sha256 {existing}); refusing to overwrite"
    )]
    Conflict {
        /// Its key.
        key: String,
        /// The checksum of what is stored.
        existing: String,
    },
    /// No base backup with this id.
    #[error("no base backup {0:?} in the backup store")]
    NoSuchBackup(String),
    /// The restore target directory is unusable.
    #[error("data directory {path} {reason}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Local file I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The archiver is not running (no `--backup-store`) or stopped.
    #[error("archiving is not configured (start the server with --backup-store)")]
    NotConfigured,
    /// Waiting for the archive to catch up took too long (the store is probably down).
    #[error("timed out waiting for the archive to reach LSN {lsn}: {last_error}")]
    Timeout {
        /// The LSN waited for.
        lsn: u64,
        /// The archiver's last error, if any.
        last_error: String,
    },
    /// The store could not seal its active segment.
    #[error(transparent)]
    Log(#[from] crate::error::StoreError),
}

impl From<koru_dataplane_api::BackupUrlError> for BackupError {
    fn from(e: koru_dataplane_api::BackupUrlError) -> Self {
        BackupError::InvalidUrl {
            url: e.url,
            reason: e.reason,
        }
    }
}

/// Wraps an `io::Error` with context.
pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let context = context.into();
    move |source| BackupError::Io { context, source }
}
