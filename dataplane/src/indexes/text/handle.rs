//! One text index on disk: opening it (or deciding it must be rebuilt), its progress, and
//! searching it as of a moment.

use std::ops::Bound;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, QueryParser, RangeQuery};
use tantivy::schema::Value as _;
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

use super::TextError;
use super::directory::UnsyncedDirectory;
use super::schema::{self, Fields, LIVE_UNTIL};
use crate::indexes::{IndexDef, IndexStatus};
use crate::store::{LogReader, VersionId};

/// Version of what we keep in a text index (schema and payload); another version is rebuilt.
pub(crate) const FORMAT: u32 = 1;

/// What each commit of a text index records (tantivy's commit payload, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Payload {
    /// [`FORMAT`].
    pub format: u32,
    /// Every record up to this LSN is indexed.
    pub lsn: u64,
    /// Commit time (µs) of the record at `lsn` (0 for none): a log that holds another record
    /// there (restored or replaced) is another history, and the index is rebuilt.
    pub micros: i64,
    /// The field indexed (a redefinition over another field rebuilds).
    pub field: String,
    /// Documents live now (versions not closed by a later one).
    pub live: u64,
}

/// Where an index stands, shared between the indexer (writes it) and searchers (read it).
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    /// Building, ready or failed.
    pub status: IndexStatus,
    /// LSN of the last commit searchers see.
    pub lsn: u64,
    /// Live documents at that commit.
    pub live: u64,
    /// Documents added since the store opened (a full rebuild adds every version again).
    pub added: u64,
    /// Whether opening found nothing usable and started from an empty index.
    pub rebuilt: bool,
}

/// An open text index: its definition, its tantivy index and a reader reloaded on each commit.
pub(crate) struct TextIndex {
    /// The definition.
    pub def: IndexDef,
    /// The definition's version in the indexes namespace (a new version means a redefinition).
    pub def_version: VersionId,
    /// `<data_dir>/text/<ns>/<name>`.
    pub dir: PathBuf,
    /// The tantivy index.
    pub index: Index,
    /// Reloaded by the indexer after each commit (manual policy: no watcher thread).
    pub reader: IndexReader,
    /// The schema's fields.
    pub fields: Fields,
    /// Progress, for status and waiting.
    pub progress: Mutex<Progress>,
    /// Signalled after each commit.
    pub committed: Condvar,
    /// Callers waiting for a commit: the indexer commits at once instead of at its interval.
    pub waiters: AtomicUsize,
}

/// A document a search found, before its highlight.
#[derive(Debug, Clone)]
pub(crate) struct RawHit {
    /// The key.
    pub key: String,
    /// The version matched (the one current at the moment searched).
    pub vid: VersionId,
    /// BM25 score.
    pub score: f32,
}

impl TextIndex {
    /// Opens the index in `dir`, or creates it empty when it is missing, unreadable, of another
    /// format or field, or of another history than the log's (the log is the truth). Returns
    /// the index and the payload it resumes from.
    pub fn open(
        def: IndexDef,
        def_version: VersionId,
        dir: PathBuf,
        log: &LogReader,
    ) -> Result<(TextIndex, Payload), TextError> {
        let (schema, fields) = schema::schema();
        let (target_lsn, _) = log.last_applied();
        let existing = match open_existing(&dir, &def, log) {
            Ok(found) => found,
            Err(reason) => {
                tracing::warn!(namespace = %def.namespace, index = %def.name, %reason,
                    "text index unusable; rebuilding it from the log");
                None
            }
        };
        let (index, payload, rebuilt) = match existing {
            Some((index, payload)) => (index, payload, false),
            None => {
                remove_dir(&dir)?;
                std::fs::create_dir_all(&dir).map_err(TextError::io(&dir))?;
                let index = Index::create(
                    UnsyncedDirectory::open(&dir)?,
                    schema,
                    tantivy::IndexSettings::default(),
                )?;
                let payload = Payload {
                    format: FORMAT,
                    lsn: 0,
                    micros: 0,
                    field: def.field.clone(),
                    live: 0,
                };
                (index, payload, true)
            }
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let status = if rebuilt && payload.lsn < target_lsn {
            IndexStatus::Building {
                indexed: payload.lsn,
                total: target_lsn,
            }
        } else {
            IndexStatus::Ready
        };
        let progress = Progress {
            status,
            lsn: payload.lsn,
            live: payload.live,
            added: 0,
            rebuilt,
        };
        let index = TextIndex {
            def,
            def_version,
            dir,
            index,
            reader,
            fields,
            progress: Mutex::new(progress),
            committed: Condvar::new(),
            waiters: AtomicUsize::new(0),
        };
        Ok((index, payload))
    }

    /// Waits until a commit covers `lsn` (true) or `deadline` passes (false).
    pub fn wait_for(&self, lsn: u64, deadline: Instant) -> bool {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut p = self.progress.lock();
        while p.lsn < lsn && !matches!(p.status, IndexStatus::Failed { .. }) {
            if self.committed.wait_until(&mut p, deadline).timed_out() {
                break;
            }
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        p.lsn >= lsn
    }

    /// The documents matching `query` among the versions current at `at` (now when None), best
    /// first, at most `limit`; with a snippet generator when highlights are asked for.
    pub fn search(
        &self,
        query: &str,
        at: Option<i64>,
        limit: usize,
        highlight: bool,
    ) -> Result<(Vec<RawHit>, usize, Option<SnippetGenerator>), TextError> {
        let searcher = self.reader.searcher();
        let mut parser = QueryParser::for_index(&self.index, vec![self.fields.text]);
        // Only our rewrite of `word*` produces regular expressions: users' `/` are spaces by then.
        parser.allow_regexes();
        let parsed = parser
            .parse_query(&schema::rewrite_query(query))
            .map_err(|e| TextError::Query(e.to_string()))?;
        // The moment's filter scores nothing, so relevance is the text query's BM25 alone.
        let live_then: Box<dyn Query> = match at {
            // Now is the moment after every commit: only versions no later one has closed.
            None => Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_i64(self.fields.until, LIVE_UNTIL)),
                Bound::Unbounded,
            )),
            Some(at) => Box::new(BooleanQuery::new(vec![
                (
                    Occur::Must,
                    Box::new(RangeQuery::new(
                        Bound::Unbounded,
                        Bound::Included(Term::from_field_i64(self.fields.from, at)),
                    )) as Box<dyn Query>,
                ),
                (
                    Occur::Must,
                    Box::new(RangeQuery::new(
                        Bound::Excluded(Term::from_field_i64(self.fields.until, at)),
                        Bound::Unbounded,
                    )),
                ),
            ])),
        };
        let full = BooleanQuery::new(vec![
            (Occur::Must, parsed.box_clone()),
            (Occur::Must, Box::new(ConstScoreQuery::new(live_then, 0.0))),
        ]);
        let limit = limit.min(searcher.num_docs() as usize);
        if limit == 0 {
            let total = searcher.search(&full, &Count)?;
            return Ok((Vec::new(), total, None));
        }
        // Counting rides along the top-k pass: callers answer a total without reading every hit.
        let (top, total) =
            searcher.search(&full, &(TopDocs::with_limit(limit).order_by_score(), Count))?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            hits.push(self.hit(&searcher, address, score)?);
        }
        let snippets = if highlight {
            Some(SnippetGenerator::create(
                &searcher,
                &*parsed,
                self.fields.text,
            )?)
        } else {
            None
        };
        Ok((hits, total, snippets))
    }

    fn hit(
        &self,
        searcher: &tantivy::Searcher,
        address: DocAddress,
        score: f32,
    ) -> Result<RawHit, TextError> {
        let doc: TantivyDocument = searcher.doc(address)?;
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let key = text(self.fields.key);
        let vid = text(self.fields.vid).and_then(|v| v.parse::<VersionId>().ok());
        match (key, vid) {
            (Some(key), Some(vid)) => Ok(RawHit { key, vid, score }),
            _ => Err(TextError::Corrupt(
                "a document lacks its key or version".into(),
            )),
        }
    }
}

/// The index in `dir` with the payload of its last commit, when it can be resumed; Err says why
/// it cannot (it is rebuilt), Ok(None) when there is none.
fn open_existing(
    dir: &Path,
    def: &IndexDef,
    log: &LogReader,
) -> Result<Option<(Index, Payload)>, String> {
    if !dir.join("meta.json").exists() {
        return Ok(None);
    }
    let index = UnsyncedDirectory::open(dir)
        .and_then(Index::open)
        .map_err(|e| e.to_string())?;
    if index.schema() != schema::schema().0 {
        return Err("its schema is not this version's".into());
    }
    let metas = index.load_metas().map_err(|e| e.to_string())?;
    let payload: Payload = metas
        .payload
        .as_deref()
        .ok_or("it has no commit payload")
        .and_then(|p| serde_json::from_str(p).map_err(|_| "its commit payload is unreadable"))?;
    if payload.format != FORMAT {
        return Err(format!("its format is {}, not {FORMAT}", payload.format));
    }
    if payload.field != def.field {
        return Err(format!("it indexes field {:?}", payload.field));
    }
    if payload.lsn > 0 {
        let record = log
            .changes_page(payload.lsn - 1, 1, 1)
            .map_err(|e| e.to_string())?;
        match record.first() {
            Some(r) if r.lsn == payload.lsn && r.timestamp_micros == payload.micros => {}
            Some(r) if r.lsn == payload.lsn => {
                return Err(format!(
                    "the log's record {} is not the one it indexed (another history)",
                    r.lsn
                ));
            }
            _ => return Err(format!("it is ahead of the log (LSN {})", payload.lsn)),
        }
    }
    // Checksums find missing, truncated or damaged segment files before we resume on them.
    // Tantivy panics (instead of failing) on a file shorter than its footer: a damaged file too.
    let checked =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| index.validate_checksum()))
            .map_err(|_| "a file is shorter than its footer".to_string())?;
    let damaged = checked.map_err(|e| e.to_string())?;
    if !damaged.is_empty() {
        return Err(format!("{} of its files are damaged", damaged.len()));
    }
    index.reader().map_err(|e| e.to_string())?;
    Ok(Some((index, payload)))
}

/// Removes a directory and what it holds, if it exists.
pub(crate) fn remove_dir(dir: &Path) -> Result<(), TextError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(TextError::io(dir)(e)),
        _ => Ok(()),
    }
}
