//! The embedded database as a library: [`Db`] (async) and [`BlockingDb`] (plain threads) over one
//! [`Store`], with no HTTP types. The language bindings (`bindings/`) wrap the blocking form and
//! the conformance suite (`bindings/conformance`) runs against both; its answers mirror the HTTP
//! API's bodies field for field, and its errors carry the same codes ([`DbError::code`]).
//!
//! Values cross this API as JSON text: they are stored and returned byte for byte, so a binding
//! converts them with its own language's JSON reader and numbers never change precision here.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::metrics::StoreMetrics;
use crate::patch::{PATCH_ATTEMPTS, patch_conflict, plan_patch};
use crate::query::{Query, QueryError};
use crate::store::{Committed, Fetched, VersionId, WriteMeta};

mod meta;
use crate::{FsyncMode, Store, StoreConfig, StoreError, WriteOp, clock, names};

/// Most versions one history page or keys listing returns (the HTTP API's bound too).
pub const MAX_PAGE_LIMIT: usize = 100_000;
/// Most records one change-feed page returns (the HTTP API's bound too).
pub const MAX_CHANGES: usize = 10_000;

/// Why a [`Db`] call failed; [`DbError::code`] is the HTTP API's error code for the same failure.
#[derive(Debug, Error)]
pub enum DbError {
    /// The store refused or failed the operation.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The query engine refused or failed the query.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The key never existed or its latest version is a delete.
    #[error("key {key:?} not found in namespace {namespace:?}")]
    NotFound {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
    },
    /// A compare-and-set found the key at another version; nothing was written.
    #[error(
        "key {key:?} in namespace {namespace:?} is not at version {expected} (latest: {latest}); \
         nothing was written"
    )]
    VersionMismatch {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
        /// The version the caller expected.
        expected: String,
        /// The key's latest version, or `none`.
        latest: String,
    },
    /// An argument the caller can fix (a bad timestamp, cursor, limit or query body).
    #[error("{0}")]
    BadRequest(String),
    /// A value or query body is not JSON.
    #[error("not JSON: {0}")]
    MalformedJson(String),
}

impl DbError {
    /// A compare-and-set of `op` over `expected` that found the key at `latest` instead.
    pub fn mismatch(op: &WriteOp, expected: VersionId, latest: Option<VersionId>) -> DbError {
        DbError::VersionMismatch {
            namespace: op.namespace.clone(),
            key: op.key.clone(),
            expected: expected.to_string(),
            latest: latest.map_or_else(|| "none".into(), |v| v.to_string()),
        }
    }

    /// The stable machine-readable code, as the HTTP API's `{"error": {"code"}}` names it.
    pub fn code(&self) -> &'static str {
        match self {
            DbError::Store(e) => e.code(),
            DbError::Query(e) => e.code(),
            DbError::NotFound { .. } => "not_found",
            DbError::VersionMismatch { .. } => "version_mismatch",
            DbError::BadRequest(_) => "bad_request",
            DbError::MalformedJson(_) => "malformed_json",
        }
    }
}

/// The answer to a write of one key (what `PUT` and `DELETE` return), one version of a key
/// (what `GET`, `get_at` and a history entry return; `author` and `op` from the `_meta` reads),
/// and the change feed's records: the HTTP API's bodies.
pub use koru_dataplane_api::data::{Change, ChangeKind, ChangeOp, Entry, Written};

/// A page of the change feed (`closed_time` is always absent here).
pub type ChangesPage = koru_dataplane_api::data::Changes;

/// A page of a key's history, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryPage {
    /// The versions.
    pub versions: Vec<Entry>,
    /// The last version's id when more follow: pass it back as `cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A page of live keys in byte order.
#[derive(Debug, Clone, Serialize)]
pub struct KeysPage {
    /// The keys.
    pub keys: Vec<String>,
    /// The last key when more follow: pass it back as `cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One write of a batch ([`BatchWrite::parse_list`] reads the HTTP API's batch items).
#[derive(Debug, Clone)]
pub enum BatchWrite {
    /// Writes `value` (JSON text) as the key's new version.
    Put {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
        /// The value's JSON text.
        value: String,
    },
    /// Writes a delete version.
    Delete {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
    },
}

/// One result of a batch write, in the batch's order.
#[derive(Debug, Clone, Serialize)]
pub struct BatchResult {
    /// The namespace.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// The new version's id.
    pub version_id: String,
    /// The version it superseded.
    pub previous_version: Option<String>,
}

/// The answer to a batch write: one record, so one LSN and one commit time.
#[derive(Debug, Clone, Serialize)]
pub struct BatchWritten {
    /// The record's LSN.
    pub lsn: u64,
    /// Its commit time.
    pub timestamp: String,
    /// Per write, in order.
    pub results: Vec<BatchResult>,
}

/// One read of a batch read: a key, now or as of a moment (the HTTP API's batch-read item).
#[derive(Debug, Clone, Deserialize)]
pub struct BatchKey {
    /// The namespace.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// RFC 3339 moment to read as of; None for the latest version.
    #[serde(default)]
    pub at: Option<String>,
}

/// One answer of a batch read: `entry` is None when the key is absent (then or now). Serializes
/// as the HTTP API's batch-read result, the entry's fields beside `found`.
#[derive(Debug, Clone, Serialize)]
pub struct BatchFound {
    /// The namespace.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// Whether the key had a live version (`entry` is Some).
    pub found: bool,
    /// The version read.
    #[serde(flatten)]
    pub entry: Option<Entry>,
}

/// How a database is opened: a directory and the store's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The store's settings (directory, fsync mode, limits).
    pub store: StoreConfig,
    /// The region CRDT counter and set entries are written under (`local` by default).
    pub region: String,
}

impl Options {
    /// Defaults for everything but the directory.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Options {
            store: StoreConfig::new(path),
            region: crate::crdt::LOCAL_REGION.to_owned(),
        }
    }

    /// Names the region this database's CRDT operations are made in.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Sets the durability mode.
    pub fn fsync(mut self, fsync: FsyncMode) -> Self {
        self.store.fsync = fsync;
        self
    }

    /// Keeps the database on `storage` instead of files (a memory volume: the browser, tests).
    pub fn storage(mut self, storage: Arc<dyn crate::wal::storage::Storage>) -> Self {
        self.store.storage = storage;
        self
    }
}

/// The embedded database, blocking form: every call runs on the caller's thread and needs no
/// async runtime. Clones share the store; it closes when the last clone is dropped or when any
/// clone calls [`BlockingDb::close`].
#[derive(Clone)]
pub struct BlockingDb {
    /// None once closed. A call holds its own clone of the store while it runs, so closing
    /// never pulls the store from under it, and the store (with its directory lock) goes when the
    /// last such call ends: the same process can open the directory again at once.
    handle: Arc<parking_lot::RwLock<Option<Store>>>,
    /// The region CRDT operations are made in.
    region: Arc<str>,
    /// Who this handle's writes are recorded as (see [`BlockingDb::with_author`]).
    author: Option<Arc<str>>,
}

impl BlockingDb {
    /// Opens (or creates) the database in `options.store.data_dir`, replaying its log.
    pub fn open(options: Options) -> Result<BlockingDb, DbError> {
        let (store, _) = Store::open(options.store, Arc::new(StoreMetrics::default()))?;
        Ok(BlockingDb {
            handle: Arc::new(parking_lot::RwLock::new(Some(store))),
            region: options.region.into(),
            author: None,
        })
    }

    /// Opens (or creates) the database at `path` with the default settings.
    pub fn open_path(path: impl Into<PathBuf>) -> Result<BlockingDb, DbError> {
        Self::open(Options::new(path))
    }

    /// The store underneath, for what this facade does not wrap (indexes, views); `shutting_down`
    /// once closed.
    pub fn store(&self) -> Result<Store, DbError> {
        self.handle
            .read()
            .clone()
            .ok_or(DbError::Store(StoreError::Closed))
    }

    /// The async form over the same store.
    #[cfg(feature = "server")]
    pub fn into_async(self) -> Db {
        Db { inner: self }
    }

    /// Writes `value` (JSON text) as the key's new version; with `if_match`, only if that is still
    /// the key's latest version. A value holding CRDT literals (`{"$counter": 1}`, see
    /// [`crate::crdt`]) is stored as the CRDT it describes.
    pub fn put(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
        if_match: Option<&str>,
    ) -> Result<Written, DbError> {
        let op = WriteOp::user_put(namespace, key, raw(value)?, &self.region)?;
        let committed = self.write_one(op, if_match)?;
        Ok(written(&committed))
    }

    /// Applies CRDT operations (JSON text: one operation or an array, applied atomically; see
    /// [`crate::crdt::Operation`]) to the key's state, creating it when absent. With `if_match`,
    /// only over that version; without, tried again when another write comes between.
    pub fn patch(
        &self,
        namespace: &str,
        key: &str,
        ops: &str,
        if_match: Option<&str>,
    ) -> Result<Written, DbError> {
        let store = self.store()?;
        let ops = crate::crdt::parse_ops(ops).map_err(StoreError::from)?;
        let expected = if_match
            .map(|m| version_id(m.trim_matches('"'), "if_match"))
            .transpose()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let plan = plan_patch(&store, namespace, key, &ops, &self.region, expected)?;
            let meta = self.meta().because(crate::store::Cause::Merge);
            match store.write_guarded_blocking_with(vec![plan.op], plan.guard, meta) {
                Err(StoreError::Conflict { .. })
                    if expected.is_none() && attempt < PATCH_ATTEMPTS =>
                {
                    continue;
                }
                Err(StoreError::Conflict { .. }) => {
                    return Err(patch_conflict(&store, namespace, key, expected, plan.read));
                }
                other => return Ok(written(&other?)),
            }
        }
    }

    /// Writes a delete version; `not_found` when the key is not live.
    pub fn delete(
        &self,
        namespace: &str,
        key: &str,
        if_match: Option<&str>,
    ) -> Result<Written, DbError> {
        let store = self.store()?;
        check_names(namespace, key)?;
        if !store.is_live(namespace, key) {
            return Err(not_found(namespace, key));
        }
        let committed = self.write_one(WriteOp::delete(namespace, key), if_match)?;
        Ok(written(&committed))
    }

    fn write_one(&self, op: WriteOp, if_match: Option<&str>) -> Result<Committed, DbError> {
        let store = self.store()?;
        names::validate_namespace(&op.namespace).map_err(StoreError::from)?;
        let Some(expected) = if_match else {
            return Ok(store.write_blocking_with(vec![op], self.meta())?);
        };
        let expected = version_id(expected.trim_matches('"'), "if_match")?;
        let guard = store
            .guard_if_latest(&op, expected)
            .map_err(|latest| DbError::mismatch(&op, expected, latest))?;
        match store.write_guarded_blocking_with(vec![op.clone()], guard, self.meta()) {
            Err(StoreError::Conflict { .. }) => Err(DbError::mismatch(
                &op,
                expected,
                store.latest_version(&op.namespace, &op.key),
            )),
            other => Ok(other?),
        }
    }

    /// The key's latest version; `not_found` when it never existed or was deleted.
    pub fn get(&self, namespace: &str, key: &str) -> Result<Entry, DbError> {
        self.get_with(namespace, key, false)
    }

    /// [`BlockingDb::get`], with `author` and `op` when `meta`.
    fn get_with(&self, namespace: &str, key: &str, meta: bool) -> Result<Entry, DbError> {
        let store = self.store()?;
        check_names(namespace, key)?;
        let found = store.get(namespace, key)?;
        found
            .map(|f| entry(f, meta))
            .transpose()?
            .ok_or_else(|| not_found(namespace, key))
    }

    /// The version current at `at` (RFC 3339); `not_found` when absent or deleted then.
    pub fn get_at(&self, namespace: &str, key: &str, at: &str) -> Result<Entry, DbError> {
        self.get_at_with(namespace, key, at, false)
    }

    /// [`BlockingDb::get_at`], with `author` and `op` when `meta`.
    fn get_at_with(
        &self,
        namespace: &str,
        key: &str,
        at: &str,
        meta: bool,
    ) -> Result<Entry, DbError> {
        let store = self.store()?;
        check_names(namespace, key)?;
        let found = store.get_at(namespace, key, timestamp(at)?)?;
        found
            .map(|f| entry(f, meta))
            .transpose()?
            .ok_or_else(|| not_found(namespace, key))
    }

    /// A page of the key's versions after `cursor` (oldest first, deletes included), at most
    /// `limit` of them and the store's read budget; `not_found` when the key never existed.
    pub fn history(
        &self,
        namespace: &str,
        key: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<HistoryPage, DbError> {
        self.history_with(namespace, key, cursor, limit, false)
    }

    /// [`BlockingDb::history`], with `author` and `op` when `meta`.
    fn history_with(
        &self,
        namespace: &str,
        key: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
        meta: bool,
    ) -> Result<HistoryPage, DbError> {
        let store = self.store()?;
        check_names(namespace, key)?;
        let after = cursor.map(|c| version_id(c, "cursor")).transpose()?;
        let limit = page_limit(limit, usize::MAX)?;
        let budget = store.config().max_read_bytes;
        let page = store
            .history_page(namespace, key, after, limit, budget)?
            .ok_or_else(|| not_found(namespace, key))?;
        let next_cursor = page
            .more
            .then(|| page.versions.last().map(|f| f.version.to_string()))
            .flatten();
        let versions = page
            .versions
            .into_iter()
            .map(|f| entry(f, meta))
            .collect::<Result<_, _>>()?;
        Ok(HistoryPage {
            versions,
            next_cursor,
        })
    }

    /// Answers a query body (JSON text, the HTTP API's `POST /{ns}/query` body) with the HTTP
    /// answer's JSON text: `{"results", "total", "namespace"}` or `{"groups", ...}`.
    pub fn query(&self, namespace: &str, query: &str) -> Result<String, DbError> {
        let store = self.store()?;
        names::validate_namespace(namespace).map_err(StoreError::from)?;
        let query: Query = serde_json::from_str(query)
            .map_err(|e| DbError::MalformedJson(format!("query: {e}")))?;
        let answer = store.query_blocking(namespace, &query.from_kdelta())?;
        serde_json::to_string(&answer).map_err(|e| DbError::BadRequest(e.to_string()))
    }

    /// Writes every entry as one log record: all become durable or none does, and one bad entry
    /// refuses the whole batch.
    pub fn batch_put(&self, writes: Vec<BatchWrite>) -> Result<BatchWritten, DbError> {
        let store = self.store()?;
        if writes.is_empty() {
            return Err(DbError::BadRequest(
                "a batch needs at least one write".into(),
            ));
        }
        let mut ops = Vec::with_capacity(writes.len());
        for w in writes {
            ops.push(match w {
                BatchWrite::Put {
                    namespace,
                    key,
                    value,
                } => {
                    names::validate_namespace(&namespace).map_err(StoreError::from)?;
                    WriteOp::user_put(namespace, key, raw(&value)?, &self.region)?
                }
                BatchWrite::Delete { namespace, key } => {
                    names::validate_namespace(&namespace).map_err(StoreError::from)?;
                    WriteOp::delete(namespace, key)
                }
            });
        }
        let keys: Vec<(String, String)> = ops
            .iter()
            .map(|op| (op.namespace.clone(), op.key.clone()))
            .collect();
        let committed = store.write_blocking_with(ops, self.meta())?;
        let results = keys
            .into_iter()
            .zip(&committed.versions)
            .map(|((namespace, key), (version, previous))| BatchResult {
                namespace,
                key,
                version_id: version.to_string(),
                previous_version: previous.map(|p| p.to_string()),
            })
            .collect();
        Ok(BatchWritten {
            lsn: committed.lsn,
            timestamp: clock::rfc3339(committed.timestamp_micros),
            results,
        })
    }

    /// Reads many keys, each now or as of its own moment; absent keys come back without an entry.
    pub fn batch_get(&self, keys: Vec<BatchKey>) -> Result<Vec<BatchFound>, DbError> {
        let store = self.store()?;
        let limit = store.config().max_batch_ops;
        if keys.len() > limit {
            return Err(StoreError::BatchTooLarge {
                count: keys.len(),
                limit,
            }
            .into());
        }
        let mut found = Vec::with_capacity(keys.len());
        for k in keys {
            check_names(&k.namespace, &k.key)?;
            let fetched = match &k.at {
                Some(at) => store.get_at(&k.namespace, &k.key, timestamp(at)?)?,
                None => store.get(&k.namespace, &k.key)?,
            };
            let entry = fetched.map(|f| entry(f, false)).transpose()?;
            found.push(BatchFound {
                found: entry.is_some(),
                entry,
                namespace: k.namespace,
                key: k.key,
            });
        }
        Ok(found)
    }

    /// Committed records after LSN `since`, at most `limit` (default 1,000) and the read budget.
    pub fn changes(&self, since: u64, limit: Option<usize>) -> Result<ChangesPage, DbError> {
        self.changes_with(since, limit, false)
    }

    /// [`BlockingDb::changes`], with each record's `author` and `cause` when `meta`.
    fn changes_with(
        &self,
        since: u64,
        limit: Option<usize>,
        meta: bool,
    ) -> Result<ChangesPage, DbError> {
        let store = self.store()?;
        let limit = limit.unwrap_or(1000);
        if !(1..=MAX_CHANGES).contains(&limit) {
            return Err(DbError::BadRequest(format!(
                "limit must be between 1 and {MAX_CHANGES}"
            )));
        }
        let budget = store.config().max_read_bytes;
        let records = store.changes_page(since, limit, budget)?;
        let next_since = records.last().map_or(since, |c| c.lsn);
        // As reads answer them: a CRDT's state rendered as plain JSON.
        let changes = records
            .into_iter()
            .map(|c| c.into_answer(meta, rendered))
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok(ChangesPage {
            changes,
            next_since,
            last_lsn: store.stats().applied_lsn,
            closed_time: None,
        })
    }

    /// A page of live keys starting with `prefix`, after `cursor`, at most `limit` (default
    /// 10,000).
    pub fn keys(
        &self,
        namespace: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<KeysPage, DbError> {
        let store = self.store()?;
        names::validate_namespace(namespace).map_err(StoreError::from)?;
        let limit = page_limit(limit, 10_000)?;
        let (keys, next_cursor) = store.keys(namespace, prefix, cursor, limit);
        Ok(KeysPage { keys, next_cursor })
    }

    /// Namespaces with at least one live key, sorted.
    pub fn namespaces(&self) -> Result<Vec<String>, DbError> {
        Ok(self.store()?.namespaces())
    }

    /// Writes and fsyncs everything queued, then stops the store's threads; later calls fail
    /// with `shutting_down`, reads included.
    pub fn close(&self) {
        let taken = self.handle.write().take();
        if let Some(store) = taken {
            store.close();
        }
    }
}

/// The embedded database, async form (the roadmap's `KoruDelta::start_with_path("./data").await`):
/// writes wait for their commit without blocking the runtime; reads and queries run on the
/// runtime's blocking pool.
#[cfg(feature = "server")]
#[derive(Clone)]
pub struct Db {
    inner: BlockingDb,
}

#[cfg(feature = "server")]
impl Db {
    /// Opens (or creates) the database at `path` with the default settings.
    pub async fn start_with_path(path: impl Into<PathBuf>) -> Result<Db, DbError> {
        Self::open(Options::new(path)).await
    }

    /// Opens (or creates) the database with `options`.
    pub async fn open(options: Options) -> Result<Db, DbError> {
        blocking(move || BlockingDb::open(options))
            .await
            .map(BlockingDb::into_async)
    }

    /// The blocking form over the same store.
    pub fn blocking(&self) -> &BlockingDb {
        &self.inner
    }

    /// See [`BlockingDb::put`].
    pub async fn put(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
        if_match: Option<&str>,
    ) -> Result<Written, DbError> {
        let (db, ns, k, v) = (self.inner.clone(), s(namespace), s(key), s(value));
        let m = if_match.map(s);
        blocking(move || db.put(&ns, &k, &v, m.as_deref())).await
    }

    /// See [`BlockingDb::patch`].
    pub async fn patch(
        &self,
        namespace: &str,
        key: &str,
        ops: &str,
        if_match: Option<&str>,
    ) -> Result<Written, DbError> {
        let (db, ns, k, o) = (self.inner.clone(), s(namespace), s(key), s(ops));
        let m = if_match.map(s);
        blocking(move || db.patch(&ns, &k, &o, m.as_deref())).await
    }

    /// See [`BlockingDb::delete`].
    pub async fn delete(
        &self,
        namespace: &str,
        key: &str,
        if_match: Option<&str>,
    ) -> Result<Written, DbError> {
        let (db, ns, k, m) = (self.inner.clone(), s(namespace), s(key), if_match.map(s));
        blocking(move || db.delete(&ns, &k, m.as_deref())).await
    }

    /// See [`BlockingDb::get`].
    pub async fn get(&self, namespace: &str, key: &str) -> Result<Entry, DbError> {
        let (db, ns, k) = (self.inner.clone(), s(namespace), s(key));
        blocking(move || db.get(&ns, &k)).await
    }

    /// See [`BlockingDb::get_at`].
    pub async fn get_at(&self, namespace: &str, key: &str, at: &str) -> Result<Entry, DbError> {
        let (db, ns, k, at) = (self.inner.clone(), s(namespace), s(key), s(at));
        blocking(move || db.get_at(&ns, &k, &at)).await
    }

    /// See [`BlockingDb::history`].
    pub async fn history(
        &self,
        namespace: &str,
        key: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<HistoryPage, DbError> {
        let (db, ns, k, c) = (self.inner.clone(), s(namespace), s(key), cursor.map(s));
        blocking(move || db.history(&ns, &k, c.as_deref(), limit)).await
    }

    /// See [`BlockingDb::query`].
    pub async fn query(&self, namespace: &str, query: &str) -> Result<String, DbError> {
        let (db, ns, q) = (self.inner.clone(), s(namespace), s(query));
        blocking(move || db.query(&ns, &q)).await
    }

    /// See [`BlockingDb::batch_put`].
    pub async fn batch_put(&self, writes: Vec<BatchWrite>) -> Result<BatchWritten, DbError> {
        let db = self.inner.clone();
        blocking(move || db.batch_put(writes)).await
    }

    /// See [`BlockingDb::batch_get`].
    pub async fn batch_get(&self, keys: Vec<BatchKey>) -> Result<Vec<BatchFound>, DbError> {
        let db = self.inner.clone();
        blocking(move || db.batch_get(keys)).await
    }

    /// See [`BlockingDb::changes`].
    pub async fn changes(&self, since: u64, limit: Option<usize>) -> Result<ChangesPage, DbError> {
        let db = self.inner.clone();
        blocking(move || db.changes(since, limit)).await
    }

    /// See [`BlockingDb::keys`].
    pub async fn keys(
        &self,
        namespace: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<KeysPage, DbError> {
        let (db, ns, p, c) = (self.inner.clone(), s(namespace), s(prefix), cursor.map(s));
        blocking(move || db.keys(&ns, &p, c.as_deref(), limit)).await
    }

    /// See [`BlockingDb::namespaces`].
    pub fn namespaces(&self) -> Result<Vec<String>, DbError> {
        self.inner.namespaces()
    }

    /// See [`BlockingDb::close`].
    pub async fn close(&self) {
        let db = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || db.close()).await;
    }
}

/// Runs `f` on the runtime's blocking pool: the store's reads are positional file reads and its
/// writes wait for the commit thread.
#[cfg(feature = "server")]
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DbError> + Send + 'static,
) -> Result<T, DbError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| DbError::Store(StoreError::Closed))?
}

#[cfg(feature = "server")]
fn s(text: &str) -> String {
    text.to_string()
}

pub(crate) fn check_names(namespace: &str, key: &str) -> Result<(), DbError> {
    names::validate_namespace(namespace).map_err(StoreError::from)?;
    names::validate_key(key).map_err(StoreError::from)?;
    Ok(())
}

fn not_found(namespace: &str, key: &str) -> DbError {
    DbError::NotFound {
        namespace: namespace.into(),
        key: key.into(),
    }
}

/// A caller's value: JSON text, kept byte for byte.
pub(crate) fn raw(value: &str) -> Result<Box<RawValue>, DbError> {
    RawValue::from_string(value.to_string()).map_err(|e| DbError::MalformedJson(e.to_string()))
}

/// A value read back from the log, which only ever holds JSON the store checked.
fn stored(value: String) -> Result<Box<RawValue>, DbError> {
    RawValue::from_string(value).map_err(|e| {
        DbError::Store(StoreError::InvalidValue(format!(
            "stored value unreadable: {e}"
        )))
    })
}

/// A value of the change feed as reads answer it: a CRDT state rendered, a plain value as stored.
fn rendered(value: String) -> Result<Box<RawValue>, DbError> {
    stored(crate::crdt::as_read(value).map_err(StoreError::from)?)
}

fn timestamp(at: &str) -> Result<i64, DbError> {
    clock::parse_micros(at).map_err(|e| DbError::BadRequest(format!("timestamp {at:?}: {e}")))
}

fn version_id(text: &str, what: &str) -> Result<VersionId, DbError> {
    text.parse::<VersionId>()
        .map_err(|e| DbError::BadRequest(format!("{what}: {e}")))
}

fn page_limit(limit: Option<usize>, default: usize) -> Result<usize, DbError> {
    match limit {
        None => Ok(default),
        Some(l) if (1..=MAX_PAGE_LIMIT).contains(&l) => Ok(l),
        Some(_) => Err(DbError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE_LIMIT}"
        ))),
    }
}

fn written(committed: &Committed) -> Written {
    let (version, previous) = committed.versions[0];
    Written {
        version_id: version.to_string(),
        timestamp: clock::rfc3339(committed.timestamp_micros),
        previous_version: previous.map(|p| p.to_string()),
    }
}

/// The entry of a version read, with its author (when known) and operation when `meta`.
fn entry(f: Fetched, meta: bool) -> Result<Entry, DbError> {
    let deleted = f.value.is_none();
    Ok(Entry {
        deleted,
        value: stored(f.value.unwrap_or_else(|| "null".into()))?,
        version_id: f.version.to_string(),
        timestamp: clock::rfc3339(f.timestamp_micros),
        previous_version: f.previous.map(|p| p.to_string()),
        author: f.meta.author.filter(|_| meta).map(|a| a.to_string()),
        op: meta.then(|| crate::store::authors::version_op(f.meta.cause, deleted)),
    })
}

/// A batch item as the HTTP API writes it, before it is known to be a put or a delete (the
/// server's batch route reads its body with it too, keeping the value without a copy).
#[derive(Deserialize)]
pub(crate) struct WireWrite {
    pub(crate) namespace: String,
    pub(crate) key: String,
    /// Present means a put, `null` included (a plain `Option` would read `null` as absent).
    #[serde(default, deserialize_with = "present")]
    pub(crate) value: Option<Box<RawValue>>,
    #[serde(default)]
    pub(crate) delete: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

impl BatchWrite {
    /// The writes of the JSON text of the HTTP API's `writes` array: `{"namespace", "key",
    /// "value"}` (a `null` value included) or `{"namespace", "key", "delete": true}`; an item that
    /// is neither is `bad_request`, as the server answers it.
    pub fn parse_list(json: &str) -> Result<Vec<BatchWrite>, DbError> {
        let items: Vec<WireWrite> = serde_json::from_str(json)
            .map_err(|e| DbError::MalformedJson(format!("writes: {e}")))?;
        items
            .into_iter()
            .enumerate()
            .map(|(i, w)| match (w.value, w.delete) {
                (Some(value), false) => Ok(BatchWrite::Put {
                    namespace: w.namespace,
                    key: w.key,
                    value: value.get().to_string(),
                }),
                (None, true) => Ok(BatchWrite::Delete {
                    namespace: w.namespace,
                    key: w.key,
                }),
                _ => Err(DbError::BadRequest(format!(
                    "writes[{i}]: give either a value or \"delete\": true"
                ))),
            })
            .collect()
    }
}

impl BatchKey {
    /// The reads of the JSON text of the HTTP API's `keys` array: `{"namespace", "key", "at"?}`.
    pub fn parse_list(json: &str) -> Result<Vec<BatchKey>, DbError> {
        serde_json::from_str(json).map_err(|e| DbError::MalformedJson(format!("keys: {e}")))
    }
}
