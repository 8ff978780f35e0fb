//! Equi-joins across namespaces (inner and left) on field = field or field = key, using an index on
//! the joined field when there is one, else a hash join; never a per-row scan.
//!
//! CONTRACT STUB (issue 18): the types' JSON shape is fixed; the evaluation is the
//! aggregate-and-join helper's.

use serde::{Deserialize, Serialize};

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

// ---------------------------------------------------------------------------------------------
// STUB (query-engine branch): the interface of QUERY_INTERFACES.md, answering "not built yet",
// so the engine's wiring builds here. On merge, keep the aggregate-join branch's version.
// ---------------------------------------------------------------------------------------------

use serde_json::Value;

use crate::error::StoreError;
use crate::store::{Document, Store};

/// One joined row: the index of the left document, and the joined document (None only in a
/// left join with no match).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinedRow {
    /// Index into the left documents given.
    pub left: usize,
    /// The joined document.
    pub right: Option<Document>,
}

/// Limits of one join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinLimits {
    /// Most documents of the joined namespace read.
    pub max_right_docs: usize,
    /// Most bytes of joined documents held.
    pub max_bytes: usize,
}

/// Why a join failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The join is malformed.
    #[error("{0}")]
    Invalid(String),
    /// A limit was reached.
    #[error("the join reads more than {limit} {what}")]
    TooLarge {
        /// The limit.
        limit: usize,
        /// What it counts.
        what: &'static str,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a join found its right documents, for EXPLAIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinMethod {
    /// Nothing was read.
    Nothing,
    /// Read by key.
    Key,
    /// Probed the named ready value index.
    Index(String),
    /// Scanned the joined namespace once into a hash table.
    Hash,
}

/// What a join did, for EXPLAIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinPlan {
    /// The method used.
    pub method: JoinMethod,
    /// Right documents read.
    pub right_read: usize,
    /// Distinct right documents that matched.
    pub right_matched: usize,
}

/// A condition on the joined documents, checked as they are found.
pub type RightFilter<'f> = &'f dyn Fn(&Value) -> bool;

/// Joins `left` with `join.namespace` as of `at` (see QUERY_INTERFACES.md).
pub fn run(
    store: &Store,
    left: &[Value],
    join: &Join,
    at: Option<i64>,
    limits: &JoinLimits,
) -> Result<Vec<JoinedRow>, JoinError> {
    run_planned(store, left, join, at, limits, None).map(|(rows, _)| rows)
}

/// [`run`], keeping only right documents passing `keep`, and saying how it went.
pub fn run_planned(
    store: &Store,
    left: &[Value],
    join: &Join,
    at: Option<i64>,
    limits: &JoinLimits,
    keep: Option<RightFilter<'_>>,
) -> Result<(Vec<JoinedRow>, JoinPlan), JoinError> {
    let _ = (store, left, at, limits, keep);
    Err(JoinError::Invalid(format!(
        "joins (here with {:?}) are not built in this build yet",
        join.namespace
    )))
}
