//! A read-only view of the store (its in-memory index and log files) for background readers.
//!
//! Background threads such as the text indexer hold this instead of a [`Store`](super::Store):
//! a `Store` clone would keep the store open (and its directory locked) after the last user
//! handle is dropped, while this view holds neither the commit thread nor the lock.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;

use super::changes::{self, Change};
use super::index::{Index, Version, VersionId};
use crate::error::StoreError;
use crate::wal::{SegmentFiles, WalError, io_err};

/// Shared handles on the index and the log files; clones share them.
#[derive(Clone)]
pub(crate) struct LogReader {
    pub(super) index: Arc<RwLock<Index>>,
    pub(super) files: Arc<SegmentFiles>,
}

// Without text indexes and rewinds (the browser build) some readers have no caller.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
impl LogReader {
    /// LSN and commit time (µs) of the last record applied.
    pub(crate) fn last_applied(&self) -> (u64, i64) {
        let index = self.index.read();
        (index.applied_lsn(), index.last_timestamp_micros())
    }

    /// Committed records after `since` in LSN order (see [`Store::changes_page`](super::Store::changes_page)).
    pub(crate) fn changes_page(
        &self,
        since: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let upto = self.index.read().applied_lsn();
        let start = self.files.seek(since + 1);
        let page = changes::Page { limit, max_bytes };
        changes::read(&self.files.list(), start, since, upto, page)
    }

    /// The LSN of the last record committed before `micros` (0 when none was): the change feed
    /// after it starts at the first record committed at or after `micros`. A binary search of
    /// the seek points' times, then a scan of less than one seek interval of log.
    pub(crate) fn lsn_before_time(&self, micros: i64) -> Result<u64, StoreError> {
        let upto = self.index.read().applied_lsn();
        let start = self
            .files
            .seek_time(micros)
            .and_then(|lsn| self.files.seek(lsn));
        let first = changes::first_at_or_after(&self.files.list(), start, upto, micros)?;
        Ok(first.map_or(upto, |lsn| lsn.saturating_sub(1).min(upto)))
    }

    /// Each live key of a namespace with its latest version.
    pub(crate) fn snapshot(&self, namespace: &str) -> Vec<(String, Version)> {
        self.index.read().snapshot(namespace, None)
    }

    /// The version of a key written just before `id` (None when `id` is its first).
    pub(crate) fn version_before(
        &self,
        namespace: &str,
        key: &str,
        id: VersionId,
    ) -> Option<Version> {
        let index = self.index.read();
        let versions = index.history(namespace, key)?;
        let n = versions.partition_point(|v| v.id() < id);
        n.checked_sub(1).map(|p| versions[p])
    }

    /// The version `id` of a key, if the index holds it.
    pub(crate) fn version(&self, namespace: &str, key: &str, id: VersionId) -> Option<Version> {
        let index = self.index.read();
        let versions = index.history(namespace, key)?;
        let n = versions.partition_point(|v| v.id() < id);
        versions.get(n).filter(|v| v.id() == id).copied()
    }

    /// A version's value's JSON text as reads answer it (a CRDT state rendered as plain JSON);
    /// None for a delete.
    pub(crate) fn value(&self, v: Version) -> Result<Option<String>, StoreError> {
        match self.raw_value(v)? {
            Some(text) => Ok(Some(crate::crdt::as_read(text)?)),
            None => Ok(None),
        }
    }

    /// A version's value's JSON text exactly as stored (a CRDT's whole state); None for a delete.
    pub(crate) fn raw_value(&self, v: Version) -> Result<Option<String>, StoreError> {
        read_value(&self.files, v)
    }
}

/// An answer read without waiting for a disk, or word that it would have had to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoWait<T> {
    /// The answer, from memory or the page cache.
    Ready(T),
    /// Some of it is only on disk: read it again where blocking is fine.
    WouldBlock,
}

/// Where a version's value lies: (segment, offset, length).
fn place(v: Version) -> (u64, u64, usize) {
    (
        u64::from(v.seq),
        u64::from(v.value_offset),
        v.value_len as usize,
    )
}

/// A version's value's JSON text exactly as stored; None for a delete.
pub(super) fn read_value(files: &SegmentFiles, v: Version) -> Result<Option<String>, StoreError> {
    if v.is_tombstone() {
        return Ok(None);
    }
    let (seq, offset, len) = place(v);
    let bytes = files
        .read_at(seq, offset, len)
        .map_err(io_err(format!("reading a value from segment {seq}")))?;
    text(v, bytes).map(Some)
}

/// [`read_value`] only when the value's bytes are in memory or the page cache.
pub(super) fn read_value_nowait(
    files: &SegmentFiles,
    v: Version,
) -> Result<NoWait<Option<String>>, StoreError> {
    if v.is_tombstone() {
        return Ok(NoWait::Ready(None));
    }
    let (seq, offset, len) = place(v);
    match files.read_at_nowait(seq, offset, len) {
        Ok(bytes) => text(v, bytes).map(|t| NoWait::Ready(Some(t))),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(NoWait::WouldBlock),
        Err(e) => Err(io_err(format!("reading a value from segment {seq}"))(e).into()),
    }
}

/// A value's bytes as text: they passed the record checksum when written or replayed, so
/// anything but UTF-8 is a bug.
fn text(v: Version, bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|_| {
        StoreError::Wal(WalError::Corrupt {
            segment: PathBuf::from(crate::wal::segment::file_name(u64::from(v.seq))),
            offset: u64::from(v.value_offset),
            reason: "value is not UTF-8".into(),
        })
    })
}
