//! Full-text indexes (tantivy), answerable as of any moment of the retained history.
//!
//! Each text index lives in `<data_dir>/text/<namespace>/<name>/` and holds one tantivy document
//! per version of a key whose field has text, with the moments it was live (`from` ≤ t <
//! `until`). A background thread (started by `Store::open`, stopped on close) follows the index
//! definitions and the change feed and commits with the last indexed LSN in tantivy's commit
//! payload; on open, an index that is missing, damaged, of another field or ahead of the log is
//! rebuilt from the log, one that is behind catches up from its payload's LSN, and one whose
//! definition is gone is deleted. See `dataplane/API.md` for the query syntax and delays.

mod directory;
mod handle;
mod indexer;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::error::StoreError;
use crate::indexes::def::def_key;
use crate::indexes::{IndexDef, IndexStatus, TextHit};
use crate::store::{LogReader, VersionId};
use handle::TextIndex;

pub use indexer::{COMMIT_INTERVAL, POLL_INTERVAL};

/// Why a text index could not be read, written or searched.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// Tantivy failed (I/O or a damaged index).
    #[error(transparent)]
    Tantivy(#[from] tantivy::TantivyError),
    /// A file operation on the index's directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The query does not parse (the caller's to fix).
    #[error("text query: {0}")]
    Query(String),
    /// The index holds something it should not.
    #[error("damaged text index: {0}")]
    Corrupt(String),
    /// Reading the log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store is not on files (memory, the browser): tantivy has nowhere to keep indexes.
    #[error("{UNAVAILABLE}")]
    Unavailable,
}

/// Why text search is refused on a store that is not on files.
pub const UNAVAILABLE: &str =
    "text indexes need a store on files; this store runs on memory storage";

impl TextError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TextError + '_ {
        move |source| TextError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<TextError> for StoreError {
    fn from(e: TextError) -> StoreError {
        match e {
            TextError::Query(q) => StoreError::InvalidRequest(q),
            TextError::Unavailable => StoreError::InvalidRequest(UNAVAILABLE.into()),
            TextError::Store(e) => e,
            other => StoreError::TextIndex(other.to_string()),
        }
    }
}

/// Counters of one text index, for tests and diagnostics.
#[derive(Debug, Clone, PartialEq)]
pub struct TextStats {
    /// Building, ready or failed.
    pub status: IndexStatus,
    /// LSN of the last commit searches see.
    pub indexed_lsn: u64,
    /// Live documents at that commit.
    pub live: u64,
    /// Documents added since the store was opened (a rebuild adds every version).
    pub added_since_open: u64,
    /// Whether opening found no usable index and rebuilt it from the log.
    pub rebuilt_on_open: bool,
}

/// The open text indexes, by definition key, shared by the indexer and searchers.
#[derive(Default)]
pub(crate) struct Registry {
    open: RwLock<HashMap<String, Arc<TextIndex>>>,
    failed: RwLock<HashMap<String, (VersionId, String)>>,
}

impl Registry {
    fn get(&self, key: &str) -> Option<Arc<TextIndex>> {
        self.open.read().get(key).cloned()
    }

    fn insert(&self, key: &str, idx: Arc<TextIndex>) {
        self.open.write().insert(key.to_string(), idx);
    }

    fn remove(&self, key: &str) {
        self.open.write().remove(key);
    }

    fn failed_at(&self, key: &str) -> Option<VersionId> {
        self.failed.read().get(key).map(|(v, _)| *v)
    }

    fn set_failed(&self, key: &str, version: VersionId, reason: String) {
        self.failed
            .write()
            .insert(key.to_string(), (version, reason));
    }

    /// Forgets failures of definitions since deleted or redefined (a new definition retries).
    fn forget_failed_except(&self, wanted: &HashMap<String, (IndexDef, VersionId)>) {
        self.failed
            .write()
            .retain(|key, (v, _)| wanted.get(key).is_some_and(|(_, w)| w == v));
    }
}

/// The store's text indexes and the thread maintaining them.
pub(crate) struct TextIndexes {
    /// False on a store without files: nothing is indexed and searches say why.
    available: bool,
    registry: Arc<Registry>,
    log: LogReader,
    stop: Mutex<Option<Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl TextIndexes {
    /// Starts the indexer over the indexes under `root` (`<data_dir>/text`).
    pub(crate) fn start(root: PathBuf, log: LogReader) -> Result<TextIndexes, StoreError> {
        let registry = Arc::new(Registry::default());
        let (stop, stopped) = mpsc::channel();
        let indexer = indexer::Indexer::new(root, log.clone(), Arc::clone(&registry));
        let thread = std::thread::Builder::new()
            .name("koru-text".into())
            .spawn(move || indexer.run(stopped))
            .map_err(crate::wal::io_err("starting the text indexer"))?;
        Ok(TextIndexes {
            available: true,
            registry,
            log,
            stop: Mutex::new(Some(stop)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// No indexer: every text index is reported failed and searches answer [`TextError::Unavailable`].
    pub(crate) fn unavailable(log: LogReader) -> TextIndexes {
        TextIndexes {
            available: false,
            registry: Arc::default(),
            log,
            stop: Mutex::new(None),
            thread: Mutex::new(None),
        }
    }

    /// Whether text indexes are maintained (false on a store not on files).
    pub(crate) fn available(&self) -> bool {
        self.available
    }

    /// Stops the indexer after it has committed what it holds (idempotent).
    pub(crate) fn stop(&self) {
        if let Some(stop) = self.stop.lock().take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }

    /// See [`Store::text_search_counted`](crate::store::Store::text_search_counted).
    pub(crate) fn search(
        &self,
        namespace: &str,
        name: &str,
        query: &str,
        at: Option<i64>,
        limit: usize,
        highlight: bool,
    ) -> Result<Option<(Vec<TextHit>, usize)>, TextError> {
        if !self.available {
            return Err(TextError::Unavailable);
        }
        let Some(idx) = self.registry.get(&def_key(namespace, name)) else {
            return Ok(None);
        };
        if idx.progress.lock().status != IndexStatus::Ready {
            return Ok(None);
        }
        let (raw, total, snippets) = idx.search(query, at, limit, highlight)?;
        let mut seen = std::collections::HashSet::with_capacity(raw.len());
        let mut hits = Vec::with_capacity(raw.len());
        for hit in raw {
            // One version per key is current at any moment; the set guards the contract anyway.
            if !seen.insert(hit.key.clone()) {
                continue;
            }
            let highlight = match &snippets {
                Some(generator) => Some(
                    self.text_of_version(&idx.def, &hit.key, hit.vid)?
                        .map(|text| generator.snippet(&text).to_html())
                        .unwrap_or_default(),
                ),
                None => None,
            };
            hits.push(TextHit {
                key: hit.key,
                score: hit.score,
                highlight,
            });
        }
        Ok(Some((hits, total)))
    }

    fn text_of_version(
        &self,
        def: &IndexDef,
        key: &str,
        vid: VersionId,
    ) -> Result<Option<String>, TextError> {
        let Some(v) = self.log.version(&def.namespace, key, vid) else {
            return Ok(None);
        };
        Ok(self.log.value(v)?.and_then(|json| {
            let value: serde_json::Value = serde_json::from_str(&json).ok()?;
            schema::text_of(&value, &def.field)
        }))
    }

    /// Status and live documents of an index the indexer has opened (or failed to).
    pub(crate) fn status(&self, namespace: &str, name: &str) -> Option<(IndexStatus, u64)> {
        let key = def_key(namespace, name);
        if let Some(idx) = self.registry.get(&key) {
            let p = idx.progress.lock();
            return Some((p.status.clone(), p.live));
        }
        let failed = self.registry.failed.read();
        let (_, reason) = failed.get(&key)?;
        Some((
            IndexStatus::Failed {
                reason: reason.clone(),
            },
            0,
        ))
    }

    /// Counters of an index the indexer has opened.
    pub(crate) fn stats(&self, namespace: &str, name: &str) -> Option<TextStats> {
        let idx = self.registry.get(&def_key(namespace, name))?;
        let p = idx.progress.lock();
        Some(TextStats {
            status: p.status.clone(),
            indexed_lsn: p.lsn,
            live: p.live,
            added_since_open: p.added,
            rebuilt_on_open: p.rebuilt,
        })
    }

    /// Waits until the index has committed everything up to `lsn`; false after `timeout`, or
    /// when it is not an index the indexer maintains.
    pub(crate) fn wait(&self, namespace: &str, name: &str, lsn: u64, timeout: Duration) -> bool {
        let Some(idx) = self.registry.get(&def_key(namespace, name)) else {
            return false;
        };
        idx.wait_for(lsn, Instant::now() + timeout)
    }

    /// LSN of the last commit of an index searches see.
    pub(crate) fn indexed_lsn(&self, namespace: &str, name: &str) -> Option<u64> {
        let idx = self.registry.get(&def_key(namespace, name))?;
        Some(idx.progress.lock().lsn)
    }
}

impl Drop for TextIndexes {
    fn drop(&mut self) {
        self.stop();
    }
}
