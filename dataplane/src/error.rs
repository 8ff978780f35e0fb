//! The store's error type: what can go wrong with a request or with the data directory.

use std::path::PathBuf;

use thiserror::Error;

use crate::indexes::def::UniqueViolation;
use crate::names::NameError;
use crate::wal::WalError;

/// Everything the store can refuse or fail with.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A namespace or key breaks the naming rules.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// A request is malformed in a way the caller can fix.
    #[error("{0}")]
    InvalidRequest(String),
    /// A value is JSON that could not be read back (number out of range, lone surrogate, too deep).
    #[error("value is not storable JSON: {0}")]
    InvalidValue(String),
    /// A value exceeds the configured size limit.
    #[error("value is {size} bytes, more than the limit of {limit} bytes")]
    ValueTooLarge {
        /// Size of the refused value.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A batch has more operations than allowed.
    #[error("batch has {count} operations, more than the limit of {limit}")]
    BatchTooLarge {
        /// Operations in the refused batch.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Writing would take the log past the storage quota.
    #[error("storage quota exceeded: {used} of {limit} bytes used")]
    QuotaExceeded {
        /// Bytes stored now.
        used: u64,
        /// The quota.
        limit: u64,
    },
    /// A write to the log failed earlier; the store refuses writes until restarted, since what
    /// reached the disk is unknown.
    #[error("the store is read-only after a failed log write; restart the server to recover")]
    ReadOnly,
    /// A guarded write found keys in its guarded range written after the LSN it was planned at;
    /// nothing was written.
    #[error(
        "keys starting with {prefix:?} in namespace {namespace:?} were written after LSN {since_lsn}"
    )]
    Conflict {
        /// The guarded namespace.
        namespace: String,
        /// The guarded key prefix ("" for the whole namespace).
        prefix: String,
        /// The LSN the write was planned at.
        since_lsn: u64,
    },
    /// A write would give a second live key the value a unique index already holds; nothing
    /// was written.
    #[error(transparent)]
    UniqueViolation(#[from] UniqueViolation),
    /// No index of that name is defined on the namespace.
    #[error("namespace {namespace:?} has no index {name:?}")]
    NoSuchIndex {
        /// The namespace.
        namespace: String,
        /// The index asked for.
        name: String,
    },
    /// An index of that name is already defined on the namespace.
    #[error("namespace {namespace:?} already has an index {name:?}")]
    IndexExists {
        /// The namespace.
        namespace: String,
        /// The index's name.
        name: String,
    },
    /// The store is shutting down.
    #[error("the store is shutting down")]
    Closed,
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another process")]
    Locked(PathBuf),
    /// The log could not be read or written.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A full-text index could not be read (its files; the log is intact and rebuilds it).
    #[error("text index: {0}")]
    TextIndex(String),
    /// A CRDT operation or state was refused.
    #[error(transparent)]
    Crdt(#[from] crate::crdt::CrdtError),
}

impl StoreError {
    /// The stable machine-readable code the HTTP API and the embedded [`crate::db::Db`] report.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::InvalidName(_) => "invalid_name",
            StoreError::InvalidRequest(_) => "bad_request",
            StoreError::InvalidValue(_) => "invalid_value",
            StoreError::ValueTooLarge { .. } => "value_too_large",
            StoreError::BatchTooLarge { .. } => "batch_too_large",
            StoreError::QuotaExceeded { .. } => "storage_quota_exceeded",
            StoreError::Conflict { .. } => "conflict",
            StoreError::UniqueViolation(_) => "unique_violation",
            StoreError::IndexExists { .. } => "already_exists",
            StoreError::NoSuchIndex { .. } => "not_found",
            StoreError::ReadOnly => "read_only",
            StoreError::Closed => "shutting_down",
            // Only opening a store can meet it: an embedded caller can close the other handle.
            StoreError::Locked(_) => "locked",
            StoreError::Wal(_) | StoreError::TextIndex(_) => "internal",
            StoreError::Crdt(e) => e.code(),
        }
    }
}
