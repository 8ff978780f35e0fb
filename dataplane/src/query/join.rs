//! Equi-joins across namespaces (inner and left) on field = field or field = key, using an index on
//! the joined field when there is one, else a hash join; never a per-row scan.
//!
//! Semantics (also in API.md, "Aggregation and joins: semantics"):
//! - The left side is the queried namespace's documents, already filtered by the conditions that
//!   name only them; `on.left` is a dotted path of their values. The right side is
//!   `join.namespace` as of the same moment `at`; `on.right` is a dotted path of its values, or
//!   `_key` for its keys.
//! - Values match when equal as scalars: strings, booleans, and numbers by value (`1` meets
//!   `1.0`). `null`, a missing field, arrays and objects never match. Against `_key`, a string
//!   matches the key it spells and an integer the key of its decimal digits (`42` meets `"42"`).
//! - For each left document in order, one row per matching right document in key order; a left
//!   join adds one row with no right document where nothing matched, an inner join drops it.
//! - Plans, cheapest first: `_key` reads each distinct left value's key directly; a ready value
//!   index on the right field is probed with the distinct left values in batches (`Probe::In`),
//!   each candidate rechecked; otherwise one pass over the right namespace's snapshot builds a
//!   hash table of the right documents whose value some left document holds.
//! - Memory is bounded by [`JoinLimits`]: right documents held, and bytes of right documents in
//!   the rows returned; past either the join stops with [`JoinError::TooLarge`].

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use super::aggregate::values::{ValueKey, approx_bytes};
use super::filter::field;
use crate::error::StoreError;
use crate::indexes::{IndexKind, IndexStatus, Probe};
use crate::names;
use crate::store::{Document, Fetched, Store};
use crate::wal::WalError;

/// `{"namespace": "users", "on": {"left": "user_id", "right": "id"}, "kind": "inner"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Join {
    /// The namespace joined in (its fields are named `<namespace>:<path>` in filters).
    pub namespace: String,
    /// The equality joined on.
    pub on: JoinOn,
    /// Inner (default) or left.
    #[serde(default)]
    pub kind: JoinKind,
}

/// `left` is a field of the queried namespace, `right` one of the joined namespace; `right` may
/// be `_key` to join on the joined namespace's keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinOn {
    /// Field of the queried namespace.
    pub left: String,
    /// Field (or `_key`) of the joined namespace.
    pub right: String,
}

/// Inner drops rows without a match; left keeps them with the joined side null.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinKind {
    /// Only rows with a match.
    #[default]
    Inner,
    /// Every row, the joined side null where nothing matched.
    Left,
}

/// The right field naming the joined namespace's keys.
pub const KEY_FIELD: &str = "_key";
/// Default most documents of the joined namespace one join holds.
pub const DEFAULT_MAX_JOIN_RIGHT_DOCS: usize = 100_000;
/// Default most bytes of joined documents in one join's rows (an estimate).
pub const DEFAULT_MAX_JOIN_BYTES: usize = 64 * 1024 * 1024;
/// Distinct left values per index probe, so one probe stays small.
const PROBE_BATCH: usize = 1024;
/// Bytes counted per joined document for its key, version and row, on top of its value.
const DOC_OVERHEAD_BYTES: usize = 96;

/// How much one join may hold in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinLimits {
    /// Most distinct documents of the joined namespace held (matches only: the hash join keeps
    /// just the right documents some left document points at).
    pub max_right_docs: usize,
    /// Most bytes of joined documents in the rows returned (a document in several rows counts
    /// each time).
    pub max_bytes: usize,
}

impl Default for JoinLimits {
    fn default() -> Self {
        JoinLimits {
            max_right_docs: DEFAULT_MAX_JOIN_RIGHT_DOCS,
            max_bytes: DEFAULT_MAX_JOIN_BYTES,
        }
    }
}

/// Why a join was refused or stopped.
#[derive(Debug, Error)]
pub enum JoinError {
    /// The join is malformed (a client error: 400).
    #[error("{0}")]
    Invalid(String),
    /// The join went past one of its limits (422).
    #[error(
        "the join holds more than {limit} {what}; filter the queried namespace further or join fewer documents"
    )]
    TooLarge {
        /// The limit.
        limit: usize,
        /// What was counted, naming the limit.
        what: &'static str,
    },
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

const RIGHT_DOCS: &str = "documents of the joined namespace (the limit max_right_docs)";
const BYTES: &str = "bytes of joined documents (the limit max_bytes)";

/// One joined row: the index of the left document in the slice given, and the joined document
/// (None only in a left join with no match).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinedRow {
    /// Position of the left document in the slice given to [`run`].
    pub left: usize,
    /// The joined document.
    pub right: Option<Document>,
}

/// How a join found its right documents, for EXPLAIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinMethod {
    /// No left document holds a value that can match: nothing was read.
    Nothing,
    /// Read by key, one read per distinct left value.
    Key,
    /// Probed the named ready value index with batches of distinct left values.
    Index(String),
    /// Scanned the joined namespace once into a hash table.
    Hash,
}

/// What a join did, for EXPLAIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinPlan {
    /// The method used.
    pub method: JoinMethod,
    /// Right documents read (every live one for a hash join, candidates for an index).
    pub right_read: usize,
    /// Distinct right documents that matched.
    pub right_matched: usize,
}

impl Join {
    /// An inner join of `namespace` on `left` (a field of the queried namespace) = `right` (a
    /// field of `namespace`, or `_key`): what the roadmap's `Query::join("orders", "user_id",
    /// "users", "id")` builds for the query of `orders`.
    pub fn new(
        namespace: impl Into<String>,
        left: impl Into<String>,
        right: impl Into<String>,
    ) -> Join {
        Join {
            namespace: namespace.into(),
            on: JoinOn {
                left: left.into(),
                right: right.into(),
            },
            kind: JoinKind::Inner,
        }
    }

    /// The same join as a left join: rows without a match are kept.
    pub fn left_join(mut self) -> Join {
        self.kind = JoinKind::Left;
        self
    }

    /// Refuses what cannot be evaluated, with a message a client can act on.
    pub fn validate(&self) -> Result<(), JoinError> {
        names::validate_namespace(&self.namespace)
            .map_err(|e| JoinError::Invalid(format!("join: {e}")))?;
        if !is_path(&self.on.left) {
            return Err(JoinError::Invalid(format!(
                "join: on.left {:?} is not a dotted path of the queried documents such as \"user_id\"",
                self.on.left
            )));
        }
        if self.on.right != KEY_FIELD && !is_path(&self.on.right) {
            return Err(JoinError::Invalid(format!(
                "join: on.right {:?} is neither \"_key\" nor a dotted path of {:?}'s documents",
                self.on.right, self.namespace
            )));
        }
        Ok(())
    }
}

fn is_path(f: &str) -> bool {
    !f.is_empty() && f.split('.').all(|p| !p.is_empty())
}

/// Joins `left` (values of the queried namespace) with `join.namespace` as of `at` (now when
/// None); see the module doc.
pub fn run(
    store: &Store,
    left: &[Value],
    join: &Join,
    at: Option<i64>,
    limits: &JoinLimits,
) -> Result<Vec<JoinedRow>, JoinError> {
    run_planned(store, left, join, at, limits, None).map(|(rows, _)| rows)
}

/// A condition on the joined documents, checked as they are found.
pub type RightFilter<'f> = &'f dyn Fn(&Value) -> bool;

/// [`run`], also telling how the right documents were found. Right documents failing `keep` are
/// treated as absent from the joined namespace: neither held nor counted against the limits.
/// For an inner join whose filter requires a condition naming only the joined side, passing that
/// condition gives the same rows with less memory; for a left join it turns rows whose match
/// fails it into rows without a match, which only the caller can know to be equivalent.
pub fn run_planned(
    store: &Store,
    left: &[Value],
    join: &Join,
    at: Option<i64>,
    limits: &JoinLimits,
    keep: Option<RightFilter<'_>>,
) -> Result<(Vec<JoinedRow>, JoinPlan), JoinError> {
    join.validate()?;
    let by_key = join.on.right == KEY_FIELD;
    let keys: Vec<Option<ValueKey>> = left
        .iter()
        .map(|v| {
            let k = ValueKey::scalar(field(v, &join.on.left));
            if by_key { k.and_then(key_text) } else { k }
        })
        .collect();
    // One representative value per distinct key: what an index is probed with.
    let mut wanted: HashMap<&ValueKey, &Value> = HashMap::new();
    for (key, value) in keys.iter().zip(left) {
        if let (Some(k), Some(v)) = (key, field(value, &join.on.left)) {
            wanted.entry(k).or_insert(v);
        }
    }
    let mut right = Matches::new(limits, keep);
    let method = if wanted.is_empty() {
        JoinMethod::Nothing
    } else if by_key {
        key_join(store, &join.namespace, &wanted, at, &mut right)?;
        JoinMethod::Key
    } else if let Some(name) = index_join(store, join, &wanted, at, &mut right)? {
        JoinMethod::Index(name)
    } else {
        right = Matches::new(limits, keep);
        hash_join(store, join, &wanted, at, &mut right)?;
        JoinMethod::Hash
    };
    let plan = JoinPlan {
        method,
        right_read: right.read,
        right_matched: right.held,
    };
    Ok((right.rows(&keys, join.kind)?, plan))
}

/// A join value as the key it names: strings as they are, integers in decimal.
fn key_text(k: ValueKey<'_>) -> Option<ValueKey<'_>> {
    match k {
        ValueKey::Str(_) => Some(k),
        ValueKey::Int(i) => Some(ValueKey::Str(Cow::Owned(i.to_string()))),
        _ => None,
    }
}

/// The right documents found so far, by the value they matched on, within the limits.
struct Matches<'a> {
    limits: &'a JoinLimits,
    keep: Option<RightFilter<'a>>,
    by_value: HashMap<ValueKey<'static>, Vec<Document>>,
    held: usize,
    bytes: usize,
    read: usize,
}

impl<'a> Matches<'a> {
    fn new(limits: &'a JoinLimits, keep: Option<RightFilter<'a>>) -> Self {
        Matches {
            limits,
            keep,
            by_value: HashMap::new(),
            held: 0,
            bytes: 0,
            read: 0,
        }
    }

    fn add(&mut self, value: ValueKey<'static>, doc: Document) -> Result<(), JoinError> {
        if self.keep.is_some_and(|keep| !keep(&doc.value)) {
            return Ok(());
        }
        self.held += 1;
        if self.held > self.limits.max_right_docs {
            return Err(JoinError::TooLarge {
                limit: self.limits.max_right_docs,
                what: RIGHT_DOCS,
            });
        }
        self.bytes += doc_bytes(&doc);
        if self.bytes > self.limits.max_bytes {
            return Err(JoinError::TooLarge {
                limit: self.limits.max_bytes,
                what: BYTES,
            });
        }
        self.by_value.entry(value).or_default().push(doc);
        Ok(())
    }

    /// The joined rows, each left document's matches in key order.
    fn rows(
        mut self,
        keys: &[Option<ValueKey>],
        kind: JoinKind,
    ) -> Result<Vec<JoinedRow>, JoinError> {
        for docs in self.by_value.values_mut() {
            docs.sort_by(|a, b| a.key.cmp(&b.key));
        }
        let mut rows = Vec::with_capacity(keys.len());
        let mut bytes = 0usize;
        for (i, key) in keys.iter().enumerate() {
            match key.as_ref().and_then(|k| self.by_value.get(k)) {
                Some(docs) => {
                    for doc in docs {
                        bytes += doc_bytes(doc);
                        if bytes > self.limits.max_bytes {
                            return Err(JoinError::TooLarge {
                                limit: self.limits.max_bytes,
                                what: BYTES,
                            });
                        }
                        rows.push(JoinedRow {
                            left: i,
                            right: Some(doc.clone()),
                        });
                    }
                }
                None if kind == JoinKind::Left => rows.push(JoinedRow {
                    left: i,
                    right: None,
                }),
                None => {}
            }
        }
        Ok(rows)
    }
}

fn doc_bytes(doc: &Document) -> usize {
    DOC_OVERHEAD_BYTES + doc.key.len() + approx_bytes(&doc.value)
}

/// Reads the key of each distinct left value directly.
fn key_join(
    store: &Store,
    namespace: &str,
    wanted: &HashMap<&ValueKey<'_>, &Value>,
    at: Option<i64>,
    right: &mut Matches<'_>,
) -> Result<(), JoinError> {
    let mut keys: Vec<&str> = wanted
        .keys()
        .filter_map(|k| match k {
            ValueKey::Str(s) => Some(s.as_ref()),
            _ => None,
        })
        .collect();
    keys.sort_unstable();
    for key in keys {
        // A value that is no valid key names no document.
        if names::validate_key(key).is_err() {
            continue;
        }
        right.read += 1;
        if let Some(doc) = read(store, namespace, key, at)? {
            right.add(ValueKey::Str(Cow::Owned(key.to_string())), doc)?;
        }
    }
    Ok(())
}

/// Probes a ready value index on the right field; None when there is none (or it stopped being
/// ready part way), for the caller to hash-join instead.
fn index_join(
    store: &Store,
    join: &Join,
    wanted: &HashMap<&ValueKey<'_>, &Value>,
    at: Option<i64>,
    right: &mut Matches<'_>,
) -> Result<Option<String>, JoinError> {
    let Some(index) = store.indexes(&join.namespace).into_iter().find(|i| {
        i.def.kind == IndexKind::Value
            && i.def.field == join.on.right
            && i.status == IndexStatus::Ready
    }) else {
        return Ok(None);
    };
    let name = index.def.name;
    let mut values: Vec<(&ValueKey, &Value)> = wanted.iter().map(|(k, v)| (*k, *v)).collect();
    values.sort_by(|a, b| super::aggregate::values::total_order(a.1, b.1));
    let mut seen: HashSet<String> = HashSet::new();
    for batch in values.chunks(PROBE_BATCH) {
        let probe = Probe::In(batch.iter().map(|(_, v)| (*v).clone()).collect());
        let budget = right
            .limits
            .max_right_docs
            .saturating_sub(right.held)
            .saturating_add(1);
        let Some(keys) = store.index_lookup(&join.namespace, &name, &probe, at, budget)? else {
            return Ok(None);
        };
        // A full answer may have been cut at the budget: refuse rather than miss matches.
        if keys.len() >= budget {
            return Err(JoinError::TooLarge {
                limit: right.limits.max_right_docs,
                what: RIGHT_DOCS,
            });
        }
        for key in keys {
            if !seen.insert(key.clone()) {
                continue;
            }
            right.read += 1;
            let Some(doc) = read(store, &join.namespace, &key, at)? else {
                continue;
            };
            // Index answers are candidates: keep the document only if its value matches exactly
            // as the hash join would.
            if let Some(k) = matched(&doc, join, wanted) {
                right.add(k, doc)?;
            }
        }
    }
    Ok(Some(name))
}

/// One pass over the right namespace as of `at`, keeping the documents some left value names.
fn hash_join(
    store: &Store,
    join: &Join,
    wanted: &HashMap<&ValueKey<'_>, &Value>,
    at: Option<i64>,
    right: &mut Matches<'_>,
) -> Result<(), JoinError> {
    for (key, version) in store.snapshot(&join.namespace, at) {
        right.read += 1;
        let fetched = store.fetch(version, None)?;
        let Some(doc) = document(&join.namespace, key, fetched)? else {
            continue;
        };
        if let Some(k) = matched(&doc, join, wanted) {
            right.add(k, doc)?;
        }
    }
    Ok(())
}

/// The value a right document matched on, if some left value names it (owned only then).
fn matched(
    doc: &Document,
    join: &Join,
    wanted: &HashMap<&ValueKey<'_>, &Value>,
) -> Option<ValueKey<'static>> {
    ValueKey::scalar(field(&doc.value, &join.on.right))
        .filter(|k| wanted.contains_key(k))
        .map(ValueKey::into_owned)
}

/// A key's live document as of `at` (now when None).
fn read(
    store: &Store,
    namespace: &str,
    key: &str,
    at: Option<i64>,
) -> Result<Option<Document>, JoinError> {
    let fetched = match at {
        None => store.get(namespace, key)?,
        Some(t) => store.get_at(namespace, key, t)?,
    };
    match fetched {
        Some(f) => document(namespace, key.to_string(), f),
        None => Ok(None),
    }
}

/// Parses a fetched version; None for a delete.
fn document(namespace: &str, key: String, f: Fetched) -> Result<Option<Document>, JoinError> {
    let Some(text) = f.value else {
        return Ok(None);
    };
    // Values were checked as JSON when written, so this is damage, reported as a log error.
    let value = serde_json::from_str(&text).map_err(|e| {
        StoreError::Wal(WalError::Io {
            context: format!("reading {namespace}/{key}: the stored value is not JSON"),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    })?;
    Ok(Some(Document {
        key,
        version: f.version,
        timestamp_micros: f.timestamp_micros,
        value,
    }))
}

#[cfg(test)]
mod tests;
