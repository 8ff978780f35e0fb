//! The versioned store: the write-ahead log plus the in-memory index, behind one handle.
//!
//! Writes go through the group-commit thread; reads consult the index and fetch values from the
//! log files with positional reads, so readers never wait for the disk to be flushed.

pub mod authors;
mod changes;
pub mod commit;
pub mod index;
mod keys;
pub mod pages;
mod reader;
mod secondary;
mod syncer;
mod text;
mod time;
mod unique;
mod writes;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use web_time::Instant;

use parking_lot::{Mutex, RwLock};
use serde_json::value::RawValue;
use tokio::sync::oneshot;

pub use authors::{AuthorError, Cause, WriteMeta, check_author};
pub use changes::{Change, ChangeOp};
pub use commit::{Committed, DEFAULT_FSYNC_INTERVAL, Fixed, RangeGuard, SealState};
pub use index::{IndexStats, RangeKey, Version, VersionId};
pub use pages::{DEFAULT_MAX_READ_BYTES, HistoryPage};
pub(crate) use reader::LogReader;
pub use reader::NoWait;
pub use secondary::pending_info;

use crate::error::StoreError;
use crate::indexes::text::TextIndexes;
use crate::metrics::StoreMetrics;
use crate::names;
use crate::wal::faults::Faults;
use crate::wal::record::{OpKind, OpRef};
use crate::wal::storage::{FileStorage, LockError, LockGuard, Storage};
use crate::wal::{SegmentFiles, Wal, io_err};
use commit::{CommitThread, Queue, Turn};
use index::Index;

/// Whether this target can start threads (wasm32-unknown-unknown cannot).
const THREADS: bool = !cfg!(target_family = "wasm");

/// Default size at which the active segment is sealed and a new one started.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * 1024 * 1024;
/// Largest allowed segment size (value offsets are 32-bit).
pub const MAX_SEGMENT_SIZE: u64 = 1 << 31;
/// Default largest value, in bytes of JSON text.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Default most operations in one batch.
pub const DEFAULT_MAX_BATCH_OPS: usize = 10_000;

/// When the log is fsynced relative to acknowledging a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncMode {
    /// Acknowledge only after fsync: no acknowledged write is ever lost.
    Always,
    /// Fsync at least this often: a power failure loses at most this window (a process crash nothing).
    Interval(Duration),
    /// Leave flushing to the operating system.
    Off,
}

impl Default for FsyncMode {
    fn default() -> Self {
        FsyncMode::Interval(DEFAULT_FSYNC_INTERVAL)
    }
}

impl FromStr for FsyncMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FsyncMode::Always),
            "off" => Ok(FsyncMode::Off),
            "interval" => Ok(FsyncMode::default()),
            _ => {
                let ms = s
                    .strip_prefix("interval=")
                    .and_then(|ms| ms.strip_suffix("ms").unwrap_or(ms).parse::<u64>().ok())
                    .filter(|&ms| (1..=60_000).contains(&ms))
                    .ok_or_else(|| {
                        format!(
                            "{s:?} is not a fsync mode: use always, off, or interval=<1..60000 ms>"
                        )
                    })?;
                Ok(FsyncMode::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

impl fmt::Display for FsyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncMode::Always => f.write_str("always"),
            FsyncMode::Interval(d) => write!(f, "interval={}", d.as_millis()),
            FsyncMode::Off => f.write_str("off"),
        }
    }
}

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory holding the lock file and the `wal/` folder.
    pub data_dir: PathBuf,
    /// Durability mode.
    pub fsync: FsyncMode,
    /// Segment roll size in bytes.
    pub segment_size: u64,
    /// Largest value in bytes.
    pub max_value_bytes: usize,
    /// Most operations per batch.
    pub max_batch_ops: usize,
    /// Storage quota: writes that would take the log past it are refused.
    pub max_stored_bytes: Option<u64>,
    /// Most bytes of values one paged read (a history page, a change-feed page) holds.
    pub max_read_bytes: usize,
    /// Failures to inject into log writes (tests only; None in production).
    pub faults: Option<Arc<Faults>>,
    /// Budgets of every query (`--query-max-*`).
    pub query: crate::query::QueryLimits,
    /// What the data directory lives on: the file system ([`FileStorage`], the default) or a
    /// [`MemoryStorage`](crate::wal::storage::MemoryStorage) volume (the browser, tests).
    pub storage: Arc<dyn Storage>,
    /// Commit on the writer's own thread instead of a commit thread (and build indexes inline):
    /// the mode for targets without threads (wasm), on by default there and off elsewhere.
    pub inline_commit: bool,
}

impl StoreConfig {
    /// Defaults for everything but the directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            fsync: FsyncMode::default(),
            segment_size: DEFAULT_SEGMENT_SIZE,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_batch_ops: DEFAULT_MAX_BATCH_OPS,
            max_stored_bytes: None,
            max_read_bytes: DEFAULT_MAX_READ_BYTES,
            faults: None,
            query: crate::query::QueryLimits::default(),
            storage: Arc::new(FileStorage),
            inline_commit: !THREADS,
        }
    }

    /// The same configuration on another storage.
    pub fn with_storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = storage;
        self
    }
}

/// One operation of a write request.
#[derive(Debug, Clone)]
pub struct WriteOp {
    /// Put or delete.
    pub kind: OpKind,
    /// Namespace.
    pub namespace: String,
    /// Key.
    pub key: String,
    /// The value's JSON text (the type guarantees it parses); None for deletes.
    pub value: Option<Box<RawValue>>,
}

impl WriteOp {
    /// A put of a JSON value.
    pub fn put(namespace: impl Into<String>, key: impl Into<String>, value: Box<RawValue>) -> Self {
        WriteOp {
            kind: OpKind::Put,
            namespace: namespace.into(),
            key: key.into(),
            value: Some(value),
        }
    }

    /// A put of a caller's value: a value holding CRDT literals is stored as the state they
    /// describe (its counter and set entries under `region`), and a top-level `$crdt` field is
    /// refused. Every user-facing write path (HTTP `PUT`, batch, the embedded API) builds its
    /// puts here; internal writes (replication, rewinds, merges) store states as they are.
    pub fn user_put(
        namespace: impl Into<String>,
        key: impl Into<String>,
        value: Box<RawValue>,
        region: &str,
    ) -> Result<Self, StoreError> {
        let hlc = crate::crdt::Hlc {
            micros: crate::clock::now_micros(),
            region: region.to_owned(),
        };
        let value = match crate::crdt::from_user(value.get(), &hlc)? {
            Some(state) => {
                RawValue::from_string(state).map_err(|e| StoreError::InvalidValue(e.to_string()))?
            }
            // Stored byte for byte, as before CRDTs.
            None => value,
        };
        Ok(Self::put(namespace, key, value))
    }

    /// A delete (tombstone).
    pub fn delete(namespace: impl Into<String>, key: impl Into<String>) -> Self {
        WriteOp {
            kind: OpKind::Delete,
            namespace: namespace.into(),
            key: key.into(),
            value: None,
        }
    }

    /// The borrowed form the log encoder takes.
    pub fn as_ref(&self) -> OpRef<'_> {
        OpRef {
            kind: self.kind,
            namespace: &self.namespace,
            key: &self.key,
            value: self.value.as_ref().map_or(&[][..], |v| v.get().as_bytes()),
        }
    }
}

/// A version read back, with its value's JSON text (None for a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The version's id.
    pub version: VersionId,
    /// Commit time, microseconds since the Unix epoch.
    pub timestamp_micros: i64,
    /// The version it superseded.
    pub previous: Option<VersionId>,
    /// The value's JSON text; None when this version is a delete.
    pub value: Option<String>,
    /// Who wrote it and why.
    pub meta: WriteMeta,
}

/// A live key's value, parsed, with the version it is: what index lookups and queries hand back.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The key.
    pub key: String,
    /// The version read.
    pub version: VersionId,
    /// That version's commit time, microseconds since the Unix epoch.
    pub timestamp_micros: i64,
    /// The value.
    pub value: serde_json::Value,
}

/// A handle on an open store; clones share it.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    config: StoreConfig,
    index: Arc<RwLock<Index>>,
    files: Arc<SegmentFiles>,
    queue: Arc<Queue>,
    read_only: Arc<AtomicBool>,
    metrics: Arc<StoreMetrics>,
    seals: Arc<SealState>,
    /// Commit times are kept above this (µs): raised past every other region's commit time
    /// applied here, so later local writes order after what this region has seen.
    clock_floor: Arc<std::sync::atomic::AtomicI64>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The committer in the single-threaded mode, run by whoever queues work.
    inline: Option<Mutex<(CommitThread, Turn)>>,
    /// The full-text indexes and their indexer thread (which reads the log, never writes).
    text: TextIndexes,
    /// Held for the store's life: the OS releases the flock when the process dies, however it dies.
    _lock: LockGuard,
}

/// What opening the store found, for the start-up log line.
#[derive(Debug, Clone, Copy)]
pub struct OpenReport {
    /// Records replayed.
    pub records: u64,
    /// Bytes of torn tail cut off.
    pub truncated_bytes: u64,
    /// Segments in the log.
    pub segments: usize,
    /// How long replay took.
    pub elapsed: Duration,
}

impl Store {
    /// Opens (or creates) the store in `config.data_dir`, replaying the log.
    pub fn open(
        config: StoreConfig,
        metrics: Arc<StoreMetrics>,
    ) -> Result<(Store, OpenReport), StoreError> {
        let started = Instant::now();
        if config.segment_size > MAX_SEGMENT_SIZE || config.segment_size < 4096 {
            return Err(StoreError::InvalidRequest(format!(
                "segment size must be between 4096 and {MAX_SEGMENT_SIZE} bytes"
            )));
        }
        let dir = &config.data_dir;
        let storage = Arc::clone(&config.storage);
        storage
            .create_dir_all_durable(dir)
            .map_err(io_err(format!("creating {}", dir.display())))?;
        let lock = lock_dir(&*storage, dir)?;
        let mut index = Index::default();
        let mut previous = Vec::new();
        let mut records = 0u64;
        // (segment, timestamp of its first record) for the newest segment seen in replay.
        let mut newest_first: Option<(u64, i64)> = None;
        let (mut wal, report) = Wal::open_on(
            storage,
            &dir.join("wal"),
            config.segment_size,
            |record, location| {
                if newest_first.is_none_or(|(seq, _)| seq != location.seq) {
                    newest_first = Some((location.seq, record.timestamp_micros));
                }
                previous.clear();
                index.apply(record, location.seq, location.record_offset, &mut previous);
                records += 1;
            },
        )?;
        wal.set_faults(config.faults.clone());
        metrics.log_bytes.set(wal.total_bytes() as i64);
        let pending_builds = index.values_mut().take_pending();
        let index = Arc::new(RwLock::new(index));
        let files = wal.files();
        // Indexes defined over older history are built before the store takes writes, so they
        // are ready (and unique checks fast) from the start; later definitions build in the
        // background.
        for job in pending_builds {
            crate::indexes::build::run(&index, &files, &job, None)?;
        }
        if !config.inline_commit {
            start_builder(&index, &files)?;
        }
        let queue = Arc::new(Queue::default());
        let read_only = Arc::new(AtomicBool::new(false));
        let seals = Arc::new(SealState::default());
        let (active_seq, _) = wal.position();
        seals
            .last_sealed_seq
            .store(active_seq - 1, Ordering::SeqCst);
        seals
            .last_sealed_lsn
            .store(wal.first_lsn_of_active() - 1, Ordering::SeqCst);
        if let Some((seq, ts)) = newest_first
            && seq == active_seq
        {
            seals.active_first_write_micros.store(ts, Ordering::SeqCst);
        }
        let clock_floor = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let thread = CommitThread {
            clock_floor: Arc::clone(&clock_floor),
            wal,
            index: Arc::clone(&index),
            queue: Arc::clone(&queue),
            fsync: config.fsync,
            max_stored_bytes: config.max_stored_bytes,
            read_only: Arc::clone(&read_only),
            metrics: Arc::clone(&metrics),
            next_lsn: report.next_lsn,
            last_timestamp_micros: report.last_timestamp_micros,
            seals: Arc::clone(&seals),
        };
        // Started first: if the commit thread cannot start, dropping this stops the indexer.
        let log = LogReader {
            index: Arc::clone(&index),
            files: Arc::clone(&files),
        };
        // Tantivy keeps its own files: text indexes run only where paths are real files.
        let text = if config.storage.is_os_files() {
            TextIndexes::start(config.data_dir.join("text"), log)?
        } else {
            TextIndexes::unavailable(log)
        };
        let (handle, inline) = if config.inline_commit {
            (None, Some(Mutex::new((thread, Turn::default()))))
        } else {
            let handle = std::thread::Builder::new()
                .name("koru-commit".into())
                .spawn(move || thread.run())
                .map_err(io_err("starting the commit thread"))?;
            (Some(handle), None)
        };
        let store = Store {
            inner: Arc::new(Inner {
                config,
                index,
                files,
                queue,
                read_only,
                metrics,
                seals,
                clock_floor,
                thread: Mutex::new(handle),
                inline,
                text,
                _lock: lock,
            }),
        };
        let open = OpenReport {
            records,
            truncated_bytes: report.truncated_bytes,
            segments: report.segments,
            elapsed: started.elapsed(),
        };
        Ok((store, open))
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Checks a write request against names and limits without queueing it.
    pub fn validate(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        let config = &self.inner.config;
        if ops.is_empty() {
            return Err(StoreError::InvalidRequest(
                "a write needs at least one operation".into(),
            ));
        }
        if ops.len() > config.max_batch_ops {
            return Err(StoreError::BatchTooLarge {
                count: ops.len(),
                limit: config.max_batch_ops,
            });
        }
        for op in ops {
            names::validate_namespace_inner(&op.namespace)?;
            names::validate_key(&op.key)?;
            let size = op.value.as_ref().map_or(0, |v| v.get().len());
            if size > config.max_value_bytes {
                return Err(StoreError::ValueTooLarge {
                    size,
                    limit: config.max_value_bytes,
                });
            }
            if (op.kind == OpKind::Put) != op.value.is_some() {
                return Err(StoreError::InvalidRequest(
                    "a put needs a value and a delete has none".into(),
                ));
            }
            if let Some(v) = &op.value {
                crate::json_check::check(v.get()).map_err(StoreError::InvalidValue)?;
            }
        }
        Ok(())
    }

    /// LSN and commit time (µs) of the last record applied, (0, 0) for an empty store.
    pub fn last_applied(&self) -> (u64, i64) {
        let index = self.inner.index.read();
        (index.applied_lsn(), index.last_timestamp_micros())
    }

    /// Keeps every later commit time above `micros` (the hybrid logical clock's receive step).
    pub fn raise_clock(&self, micros: i64) {
        self.inner.clock_floor.fetch_max(micros, Ordering::SeqCst);
    }

    /// The time a new write would take now, before the store's last commit time is applied:
    /// the wall clock, or just past the raised floor (what a Raft leader stamps entries with).
    pub fn clock_now(&self) -> i64 {
        crate::clock::now_micros().max(self.inner.clock_floor.load(Ordering::SeqCst) + 1)
    }

    /// A key's latest version (a delete included; None when never written) with its value
    /// exactly as stored, a CRDT's whole state unrendered (None for a delete): what a CRDT
    /// operation reads before its compare-and-set, and what a region's stream merges into.
    pub fn latest_raw(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(Version, Option<String>)>, StoreError> {
        let found = self.inner.index.read().latest(namespace, key);
        match found {
            Some((v, _)) => Ok(Some((v, self.reader().raw_value(v)?))),
            None => Ok(None),
        }
    }

    /// Every version of a key, oldest first, with its stored text (None for deletes).
    pub fn history_raw(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Vec<(Version, Option<String>)>, StoreError> {
        let versions: Vec<Version> = self
            .inner
            .index
            .read()
            .history(namespace, key)
            .map(<[Version]>::to_vec)
            .unwrap_or_default();
        let reader = self.reader();
        versions
            .into_iter()
            .map(|v| Ok((v, reader.raw_value(v)?)))
            .collect()
    }

    /// Whether a key of the guard's range has a version after its LSN and up to `upto`: the
    /// guard as a write at LSN `upto + 1` meets it, whatever came later.
    pub fn guard_broken_at(&self, guard: &RangeGuard, upto: u64) -> bool {
        self.inner.index.read().changed_between(
            &guard.namespace,
            &guard.prefix,
            guard.exact,
            guard.since_lsn,
            upto,
        )
    }

    /// The latest version of a key; None when it never existed or its latest version is a delete.
    pub fn get(&self, namespace: &str, key: &str) -> Result<Option<Fetched>, StoreError> {
        let found = self.inner.index.read().latest(namespace, key);
        self.fetch_live(found)
    }

    /// [`Store::get`] answered only when that needs no wait for a disk (the value in memory or
    /// the page cache), so an async worker can serve it at once; `WouldBlock` otherwise.
    pub fn get_nowait(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<NoWait<Option<Fetched>>, StoreError> {
        // One look at the index for the version and its author.
        let (v, previous, meta) = {
            let index = self.inner.index.read();
            match index.latest(namespace, key) {
                Some((v, previous)) if !v.is_tombstone() => (v, previous, index.meta(v.lsn)),
                _ => return Ok(NoWait::Ready(None)),
            }
        };
        let stored = match reader::read_value_nowait(&self.inner.files, v)? {
            NoWait::Ready(stored) => stored,
            NoWait::WouldBlock => return Ok(NoWait::WouldBlock),
        };
        let value = match stored {
            Some(text) => Some(crate::crdt::as_read(text)?),
            None => None,
        };
        Ok(NoWait::Ready(Some(Fetched {
            version: v.id(),
            timestamp_micros: v.timestamp_micros,
            previous,
            value,
            meta,
        })))
    }

    /// The id of a key's latest version, a delete included; None when it was never written.
    pub fn latest_version(&self, namespace: &str, key: &str) -> Option<VersionId> {
        let index = self.inner.index.read();
        index.latest(namespace, key).map(|(v, _)| v.id())
    }

    /// Whether a key's latest version is a value (not a delete), from the index alone.
    pub fn is_live(&self, namespace: &str, key: &str) -> bool {
        let index = self.inner.index.read();
        index
            .latest(namespace, key)
            .is_some_and(|(v, _)| !v.is_tombstone())
    }

    /// The version of a key current at `timestamp_micros`; None when absent or deleted then.
    pub fn get_at(
        &self,
        namespace: &str,
        key: &str,
        timestamp_micros: i64,
    ) -> Result<Option<Fetched>, StoreError> {
        let found = self.inner.index.read().at(namespace, key, timestamp_micros);
        self.fetch_live(found)
    }

    fn fetch_live(
        &self,
        found: Option<(Version, Option<VersionId>)>,
    ) -> Result<Option<Fetched>, StoreError> {
        match found {
            Some((v, previous)) if !v.is_tombstone() => Ok(Some(self.fetch(v, previous)?)),
            _ => Ok(None),
        }
    }

    /// Every version of a key, oldest first, deletes included; None when the key never existed.
    /// Unbounded: answers to clients go through [`Store::history_page`].
    pub fn history(&self, namespace: &str, key: &str) -> Result<Option<Vec<Fetched>>, StoreError> {
        Ok(self
            .history_page(namespace, key, None, usize::MAX, usize::MAX)?
            .map(|page| page.versions))
    }

    /// The versions of a key after `after` (oldest first, deletes included), at most `limit` of
    /// them and at most `max_bytes` of values (always at least one); None when the key never
    /// existed. Only the page's versions are copied out of the index and read from the log.
    pub fn history_page(
        &self,
        namespace: &str,
        key: &str,
        after: Option<VersionId>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Option<HistoryPage<Fetched>>, StoreError> {
        let page = match self.inner.index.read().history(namespace, key) {
            Some(all) => pages::history_page(all, after, limit, max_bytes),
            None => return Ok(None),
        };
        let mut versions = Vec::with_capacity(page.versions.len());
        let mut previous = page.previous;
        for v in page.versions {
            versions.push(self.fetch(v, previous)?);
            previous = Some(v.id());
        }
        Ok(Some(HistoryPage {
            versions,
            previous: page.previous,
            more: page.more,
        }))
    }

    /// Reads a version's value from the log.
    pub fn fetch(&self, v: Version, previous: Option<VersionId>) -> Result<Fetched, StoreError> {
        Ok(Fetched {
            version: v.id(),
            timestamp_micros: v.timestamp_micros,
            previous,
            value: self.reader().value(v)?,
            meta: self.meta(v.lsn),
        })
    }

    /// Who wrote record `lsn` and why (unknown and `write` for a record with neither noted).
    pub fn meta(&self, lsn: u64) -> WriteMeta {
        self.inner.index.read().meta(lsn)
    }

    /// Per user namespace with a live key, sorted: its live keys and versions.
    pub fn namespace_stats(&self) -> Vec<(String, u64, u64)> {
        self.inner.index.read().namespace_stats()
    }

    /// Commit time of the last record (None while the log is empty).
    pub fn last_timestamp_micros(&self) -> Option<i64> {
        let index = self.inner.index.read();
        (index.applied_lsn() > 0).then(|| index.last_timestamp_micros())
    }

    /// A read-only view of the index and log files for background threads.
    pub(crate) fn reader(&self) -> LogReader {
        LogReader {
            index: Arc::clone(&self.inner.index),
            files: Arc::clone(&self.inner.files),
        }
    }

    /// The full-text indexes.
    pub(crate) fn text_indexes(&self) -> &TextIndexes {
        &self.inner.text
    }

    /// Namespaces with at least one live key (internal ones hidden).
    pub fn namespaces(&self) -> Vec<String> {
        let mut names = self.inner.index.read().namespaces();
        names.retain(|n| !n.starts_with(names::INTERNAL_PREFIX));
        names
    }

    /// A page of live keys; the second value is the cursor for the next page, if any.
    pub fn keys(
        &self,
        namespace: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> (Vec<String>, Option<String>) {
        let (keys, more) = self
            .inner
            .index
            .read()
            .keys(namespace, prefix, cursor, limit);
        let next = if more { keys.last().cloned() } else { None };
        (keys, next)
    }

    /// How many keys of a namespace are live now, from the index alone (the planner's scan cost).
    pub fn live_keys(&self, namespace: &str) -> usize {
        self.inner.index.read().live_keys(namespace)
    }

    /// Each live key of a namespace with the version current at `at` (latest when None).
    pub fn snapshot(&self, namespace: &str, at: Option<i64>) -> Vec<(String, Version)> {
        self.inner.index.read().snapshot(namespace, at)
    }

    /// Every key of a namespace starting with `prefix` (deleted ones too) with its version current
    /// at `timestamp_micros` and its latest one, read in one consistent moment whose LSN is returned;
    /// None when the namespace never held a key.
    pub fn range_at(
        &self,
        namespace: &str,
        prefix: &str,
        timestamp_micros: i64,
    ) -> (u64, Option<Vec<RangeKey>>) {
        let index = self.inner.index.read();
        (
            index.applied_lsn(),
            index.range_at(namespace, prefix, timestamp_micros),
        )
    }

    /// Commit time of the first record in the log (None while it is empty): the store holds no
    /// history before it.
    pub fn first_timestamp_micros(&self) -> Option<i64> {
        self.inner.index.read().first_timestamp_micros()
    }

    /// Counts for status and metrics (internal namespaces included).
    pub fn stats(&self) -> IndexStats {
        self.inner.index.read().stats()
    }

    /// Whether writes are refused after a failed log write.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only.load(Ordering::SeqCst)
    }

    /// Bytes in the log.
    pub fn stored_bytes(&self) -> u64 {
        self.inner.metrics.log_bytes.get().max(0) as u64
    }

    /// Committed records after `since`, at most `limit` of them, in LSN order.
    pub fn changes_since(&self, since: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.changes_page(since, limit, usize::MAX)
    }

    /// Committed records after `since` in LSN order, at most `limit` of them and at most
    /// `max_bytes` of log (always at least one record when any follows `since`).
    pub fn changes_page(
        &self,
        since: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Change>, StoreError> {
        self.reader().changes_page(since, limit, max_bytes)
    }

    /// The first LSNs of the log segments that start after `since` and at or before `upto`: a
    /// member copying records seals its own segments at the same places.
    pub fn segment_starts(&self, since: u64, upto: u64) -> Vec<u64> {
        self.inner
            .files
            .list()
            .into_iter()
            .map(|f| f.first_lsn)
            .filter(|&lsn| lsn > since && lsn <= upto)
            .collect()
    }

    /// What the archiver watches: which segments are sealed and how old the active one's data is.
    pub fn seals(&self) -> Arc<SealState> {
        Arc::clone(&self.inner.seals)
    }

    /// Where the log lives: `<data-dir>/wal`.
    pub fn wal_dir(&self) -> PathBuf {
        self.inner.config.data_dir.join("wal")
    }

    /// Seals the active segment (when it holds records) after everything queued before is written;
    /// returns the LSN of the last record now in a sealed segment (0 for an empty log).
    pub async fn roll(&self) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .queue
            .request_roll(reply)
            .map_err(|_| StoreError::Closed)?;
        self.inner.drive_inline();
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Fsyncs the log once what is queued is written; returns the last LSN now durable.
    pub async fn sync(&self) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .queue
            .request_sync(reply)
            .map_err(|_| StoreError::Closed)?;
        self.inner.drive_inline();
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Stops the text indexer (after its last commit) and the commit thread after it has
    /// written and fsynced everything queued.
    pub fn close(&self) {
        self.inner.text.stop();
        self.inner.queue.close();
        self.inner.drive_inline();
        if let Some(handle) = self.inner.thread.lock().take() {
            let _ = handle.join();
        }
    }
}

impl Inner {
    /// In the single-threaded mode, commits what is queued (then builds any index defined by
    /// it) before returning; nothing otherwise.
    fn drive_inline(&self) {
        let Some(inline) = &self.inline else { return };
        let (committer, turn) = &mut *inline.lock();
        committer.run_inline(turn);
        let jobs = self.index.write().values_mut().take_pending();
        for job in jobs {
            if let Err(e) = crate::indexes::build::run(&self.index, &self.files, &job, None) {
                // Left building: lookups scan and unique checks stay exact; a restart builds it.
                tracing::error!(namespace = %job.namespace, error = %e, "building an index failed");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.text.stop();
        self.queue.close();
        self.drive_inline();
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
    }
}

/// Starts the thread that builds indexes defined over existing data, fed by the index itself.
/// It holds the index weakly and ends when the store is dropped (the sender goes with it).
fn start_builder(index: &Arc<RwLock<Index>>, files: &Arc<SegmentFiles>) -> Result<(), StoreError> {
    let (tx, rx) = std::sync::mpsc::channel::<crate::indexes::value::BuildJob>();
    index.write().values_mut().set_builder(tx);
    let (weak, files) = (Arc::downgrade(index), Arc::clone(files));
    // Tests slow builds down to watch them (only with fault injection on).
    let pause = std::env::var("KORU_FAULT_INJECTION")
        .is_ok_and(|v| v == "1")
        .then(|| {
            std::env::var("KORU_INDEX_BUILD_PAUSE_MS")
                .ok()?
                .parse()
                .ok()
        })
        .flatten()
        .map(Duration::from_millis);
    std::thread::Builder::new()
        .name("koru-index-build".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                let Some(index) = weak.upgrade() else { return };
                if let Err(e) = crate::indexes::build::run(&index, &files, &job, pause) {
                    // Left building: lookups scan and unique checks stay exact; a restart
                    // builds it again.
                    tracing::error!(namespace = %job.namespace, error = %e, "building an index failed");
                }
            }
        })
        .map_err(io_err("starting the index builder thread"))?;
    Ok(())
}

/// Takes the exclusive lock `dir/LOCK` (an flock on files), failing at once if another holds it.
fn lock_dir(storage: &dyn Storage, dir: &Path) -> Result<LockGuard, StoreError> {
    let path = dir.join("LOCK");
    match storage.lock(&path) {
        Ok(guard) => Ok(guard),
        Err(LockError::Held) => Err(StoreError::Locked(dir.to_path_buf())),
        Err(LockError::Io(e)) => Err(io_err(format!("locking {}", path.display()))(e).into()),
    }
}
