//! The background indexer: follows the index definitions and the change feed, and keeps each
//! text index's documents (one per version, with the moments it was live) committed to disk.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tantivy::{IndexWriter, TantivyDocument, Term, doc};

use super::handle::{FORMAT, Payload, TextIndex, remove_dir};
use super::schema::{self, LIVE_UNTIL};
use super::{Registry, TextError};
use crate::indexes::def::INDEXES_NAMESPACE;
use crate::indexes::{IndexDef, IndexKind, IndexStatus};
use crate::store::{Change, LogReader, VersionId};

/// How often an idle indexer looks for new records and definitions.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Least time between two commits of a caught-up index while writes keep arriving: a write is
/// searchable at most about this plus [`POLL_INTERVAL`] plus one commit after it is acknowledged.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(100);
/// How often an index being built from the log commits (so a crash resumes, not restarts).
const BUILD_COMMIT_INTERVAL: Duration = Duration::from_secs(2);
/// Operations applied between two commits at most while building: bounds the memory of what
/// waits for the commit, and how much a crash makes the indexer redo.
const BUILD_COMMIT_OPS: usize = 20_000;
/// Records read from the change feed at a time.
const PAGE_RECORDS: usize = 2_000;
/// Bytes of log read from the change feed at a time.
const PAGE_BYTES: usize = 16 * 1024 * 1024;
/// Memory of one index's writer (tantivy's minimum is 15 MB).
const WRITER_HEAP_BYTES: usize = 32 * 1024 * 1024;

/// A version whose document is not added yet: it is still live, so a later version in the same
/// commit closes it in memory instead of deleting and re-adding it.
struct OpenDoc {
    vid: VersionId,
    from: i64,
    text: String,
}

/// The indexer's side of one index: its writer and what it holds back until the next commit.
struct Writer {
    idx: Arc<TextIndex>,
    writer: IndexWriter,
    /// Records up to this LSN are applied (committed or pending).
    lsn: u64,
    /// Commit time of the record at `lsn`.
    micros: i64,
    /// Live documents once pending work is committed.
    live: u64,
    /// LSN up to which the index counts as building (the store's at the time it started).
    building_until: Option<u64>,
    open: HashMap<String, OpenDoc>,
    added: u64,
    /// Operations applied since the last commit.
    pending_ops: usize,
    dirty: bool,
    last_commit: Instant,
}

/// The indexer thread's state.
pub(crate) struct Indexer {
    pub root: PathBuf,
    pub log: LogReader,
    pub registry: Arc<Registry>,
    writers: HashMap<String, Writer>,
    cleaned: bool,
}

impl Indexer {
    /// An indexer of the text indexes under `root`.
    pub fn new(root: PathBuf, log: LogReader, registry: Arc<Registry>) -> Indexer {
        Indexer {
            root,
            log,
            registry,
            writers: HashMap::new(),
            cleaned: false,
        }
    }

    /// Runs until `stop` says so (or its sender is dropped), then commits what is pending.
    pub fn run(mut self, stop: Receiver<()>) {
        loop {
            let busy = self.tick();
            let wait = if busy { Duration::ZERO } else { POLL_INTERVAL };
            match stop.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let keys: Vec<String> = self.writers.keys().cloned().collect();
        for key in keys {
            self.commit_or_fail(&key);
        }
    }

    /// One round: picks up definition changes, applies a page of records to each index and
    /// commits where due. True when an index is still behind the log.
    fn tick(&mut self) -> bool {
        self.sync_definitions();
        let (applied, _) = self.log.last_applied();
        let mut busy = false;
        let keys: Vec<String> = self.writers.keys().cloned().collect();
        for key in keys {
            let Some(w) = self.writers.get_mut(&key) else {
                continue;
            };
            if w.lsn < applied {
                match w.apply_page(&self.log) {
                    Ok(more) => busy |= more,
                    Err(e) => {
                        self.fail(&key, e);
                        continue;
                    }
                }
            }
            let Some(w) = self.writers.get(&key) else {
                continue;
            };
            // Under steady writes an index is never quite caught up: only a build waits longer.
            let interval = if w.building_until.is_some() {
                BUILD_COMMIT_INTERVAL
            } else {
                COMMIT_INTERVAL
            };
            let due = w.pending_ops >= BUILD_COMMIT_OPS
                || w.idx.waiters.load(Ordering::SeqCst) > 0
                || w.last_commit.elapsed() >= interval;
            if w.dirty && due {
                self.commit_or_fail(&key);
            }
        }
        busy
    }

    /// Opens indexes whose definitions appeared, and drops (and deletes) those whose
    /// definitions were deleted or changed.
    fn sync_definitions(&mut self) {
        let mut wanted: HashMap<String, (IndexDef, VersionId)> = HashMap::new();
        for (key, version) in self.log.snapshot(INDEXES_NAMESPACE) {
            if let Some(w) = self.writers.get(&key)
                && w.idx.def_version == version.id()
            {
                wanted.insert(key, (w.idx.def.clone(), version.id()));
                continue;
            }
            let def = match self.log.value(version) {
                Ok(Some(json)) => serde_json::from_str::<IndexDef>(&json).ok(),
                _ => None,
            };
            if let Some(def) = def.filter(|d| is_text_def(d, &key)) {
                wanted.insert(key, (def, version.id()));
            }
        }
        let stale: Vec<String> = self
            .writers
            .iter()
            .filter(|(key, w)| {
                wanted
                    .get(*key)
                    .is_none_or(|(_, v)| *v != w.idx.def_version)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some(w) = self.writers.remove(&key) {
                self.registry.remove(&key);
                let dir = w.idx.dir.clone();
                drop(w);
                if let Err(e) = remove_dir(&dir) {
                    tracing::warn!(index = %key, error = %e, "could not remove a dropped text index");
                }
            }
        }
        for (key, (def, version)) in wanted.clone() {
            if self.writers.contains_key(&key) || self.registry.failed_at(&key) == Some(version) {
                continue;
            }
            match self.open_writer(def, version) {
                Ok(w) => {
                    self.registry.insert(&key, Arc::clone(&w.idx));
                    self.writers.insert(key, w);
                }
                Err(e) => {
                    tracing::error!(index = %key, error = %e, "text index could not be opened");
                    self.registry.set_failed(&key, version, e.to_string());
                }
            }
        }
        self.registry.forget_failed_except(&wanted);
        if !self.cleaned {
            self.cleaned = true;
            self.remove_orphans();
        }
    }

    fn open_writer(&self, def: IndexDef, version: VersionId) -> Result<Writer, TextError> {
        let dir = self.root.join(&def.namespace).join(&def.name);
        let (applied, _) = self.log.last_applied();
        let (idx, payload) = TextIndex::open(def, version, dir, &self.log)?;
        let rebuilt = idx.progress.lock().rebuilt;
        tracing::info!(
            namespace = %idx.def.namespace, index = %idx.def.name, field = %idx.def.field,
            from_lsn = payload.lsn, to_lsn = applied, rebuilt,
            "text index opened; catching up from the log"
        );
        let writer = idx.index.writer_with_num_threads(1, WRITER_HEAP_BYTES)?;
        Ok(Writer {
            writer,
            lsn: payload.lsn,
            micros: payload.micros,
            live: payload.live,
            building_until: (rebuilt && payload.lsn < applied).then_some(applied),
            open: HashMap::new(),
            added: 0,
            pending_ops: 0,
            dirty: false,
            // A resumed index commits its catch-up at once; a building one after a while.
            last_commit: Instant::now(),
            idx: Arc::new(idx),
        })
    }

    /// Deletes directories under the root that no text index owns (their definitions were
    /// deleted while the store was closed).
    fn remove_orphans(&self) {
        let owned: HashSet<PathBuf> = self.writers.values().map(|w| w.idx.dir.clone()).collect();
        let Ok(namespaces) = std::fs::read_dir(&self.root) else {
            return;
        };
        for ns in namespaces.flatten() {
            let Ok(names) = std::fs::read_dir(ns.path()) else {
                continue;
            };
            for name in names.flatten() {
                let path = name.path();
                if !owned.contains(&path) {
                    tracing::info!(dir = %path.display(), "removing a text index whose definition is gone");
                    if let Err(e) = remove_dir(&path) {
                        tracing::warn!(dir = %path.display(), error = %e, "could not remove it");
                    }
                }
            }
        }
    }

    fn commit_or_fail(&mut self, key: &str) {
        let Some(w) = self.writers.get_mut(key) else {
            return;
        };
        if !w.dirty {
            return;
        }
        if let Err(e) = w.commit() {
            self.fail(key, e);
        }
    }

    /// Stops maintaining an index after an error; queries stop using it until a restart.
    fn fail(&mut self, key: &str, e: TextError) {
        tracing::error!(index = %key, error = %e, "text index failed; it is rebuilt on restart");
        if let Some(w) = self.writers.remove(key) {
            self.registry.remove(key);
            self.registry
                .set_failed(key, w.idx.def_version, e.to_string());
        }
    }
}

impl Writer {
    /// Applies the next page of the change feed; true when more records follow.
    fn apply_page(&mut self, log: &LogReader) -> Result<bool, TextError> {
        let page = log.changes_page(self.lsn, PAGE_RECORDS, PAGE_BYTES)?;
        let mut more = page.len() >= PAGE_RECORDS;
        for change in &page {
            self.apply(change, log)?;
            self.lsn = change.lsn;
            self.micros = change.timestamp_micros;
            self.dirty = true;
            self.pending_ops += change.ops.len();
            if self.pending_ops >= BUILD_COMMIT_OPS {
                // Commit before reading on; the rest of the page is read again after it.
                more = true;
                break;
            }
        }
        // A full page means more records wait; otherwise the next poll finds new ones.
        Ok(more)
    }

    /// Applies one record: each operation on the indexed namespace closes the key's previous
    /// version (its document gets the record's time as `until`) and opens the new one.
    fn apply(&mut self, change: &Change, log: &LogReader) -> Result<(), TextError> {
        let idx = Arc::clone(&self.idx);
        let def = &idx.def;
        let at = change.timestamp_micros;
        for (i, op) in change.ops.iter().enumerate() {
            if op.namespace != def.namespace {
                continue;
            }
            let vid = VersionId {
                lsn: change.lsn,
                op: i as u32,
            };
            if let Some(prev) = self.open.remove(&op.key) {
                self.add(&op.key, prev.vid, prev.from, at, &prev.text)?;
            } else if let Some(prev) = log.version_before(&def.namespace, &op.key, vid)
                && let Some(text) = log.value(prev)?.and_then(|json| text_of(&json, &def.field))
            {
                // Its document was committed as live: replace it by one that ends now.
                let term = Term::from_field_text(self.idx.fields.vid, &schema::vid_text(prev.id()));
                self.writer.delete_term(term);
                self.live = self.live.saturating_sub(1);
                self.add(&op.key, prev.id(), prev.timestamp_micros, at, &text)?;
            }
            if let Some(text) = op.value.as_deref().and_then(|v| text_of(v, &def.field)) {
                self.open.insert(
                    op.key.clone(),
                    OpenDoc {
                        vid,
                        from: at,
                        text,
                    },
                );
            }
        }
        Ok(())
    }

    /// Adds a version's document; one that was never current (a later version at the same
    /// microsecond) is left out, as no moment sees it.
    fn add(
        &mut self,
        key: &str,
        vid: VersionId,
        from: i64,
        until: i64,
        text: &str,
    ) -> Result<(), TextError> {
        if until <= from {
            return Ok(());
        }
        let f = self.idx.fields;
        let doc: TantivyDocument = doc!(
            f.key => key,
            f.vid => schema::vid_text(vid),
            f.from => from,
            f.until => until,
            f.text => text,
        );
        self.writer.add_document(doc)?;
        self.added += 1;
        Ok(())
    }

    /// Adds the still-open versions as live, commits with the LSN reached, and shows the commit
    /// to searchers.
    fn commit(&mut self) -> Result<(), TextError> {
        let open: Vec<(String, OpenDoc)> = self.open.drain().collect();
        for (key, d) in open {
            self.add(&key, d.vid, d.from, LIVE_UNTIL, &d.text)?;
            self.live += 1;
        }
        let payload = Payload {
            format: FORMAT,
            lsn: self.lsn,
            micros: self.micros,
            field: self.idx.def.field.clone(),
            live: self.live,
        };
        let payload =
            serde_json::to_string(&payload).map_err(|e| TextError::Corrupt(e.to_string()))?;
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.idx.reader.reload()?;
        self.dirty = false;
        self.pending_ops = 0;
        self.last_commit = Instant::now();
        let mut p = self.idx.progress.lock();
        p.lsn = self.lsn;
        p.live = self.live;
        p.added = self.added;
        p.status = match self.building_until {
            Some(total) if self.lsn < total => IndexStatus::Building {
                indexed: self.lsn,
                total,
            },
            _ => {
                self.building_until = None;
                IndexStatus::Ready
            }
        };
        drop(p);
        self.idx.committed.notify_all();
        Ok(())
    }
}

/// Whether a definition stored under `key` is a usable text index.
fn is_text_def(def: &IndexDef, key: &str) -> bool {
    // "." and ".." pass the name rules but would name directories above the index's own.
    def.kind == IndexKind::Text
        && def.key() == key
        && def.validate().is_ok()
        && ![".", ".."].contains(&def.name.as_str())
        && ![".", ".."].contains(&def.namespace.as_str())
}

/// The text of a JSON value's field (values that are not JSON have none).
fn text_of(json: &str, field: &str) -> Option<String> {
    // A CRDT state is indexed as the plain JSON reads answer.
    let rendered = crate::crdt::is_crdt(json)
        .then(|| crate::crdt::render(json).ok())
        .flatten();
    let value: serde_json::Value =
        serde_json::from_str(rendered.as_deref().unwrap_or(json)).ok()?;
    schema::text_of(&value, field)
}
