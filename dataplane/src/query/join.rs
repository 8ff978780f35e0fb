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
