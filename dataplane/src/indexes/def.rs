//! What an index is: its definition as stored in the log, its status, and the probes it answers.

use std::ops::Bound;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names;

/// Internal namespace holding index definitions, one key per index: `<namespace>/<name>`.
pub const INDEXES_NAMESPACE: &str = "_koru_indexes";

/// Longest index name, in bytes.
pub const MAX_INDEX_NAME_LEN: usize = 128;

/// What an index holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// Scalar values of the field: equality, `in`, ranges, prefixes; optionally unique.
    #[default]
    Value,
    /// Full-text (tantivy) over the field's text.
    Text,
}

/// The roadmap's way of naming an index's kind: `create_index("users", "email", IndexType::Unique)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexType {
    /// A value index refusing a second live key with the same value.
    Unique,
    /// A value index.
    NonUnique,
    /// A full-text index.
    Text,
}

/// An index definition, as created and as stored (the value of its key in [`INDEXES_NAMESPACE`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDef {
    /// The namespace indexed.
    pub namespace: String,
    /// The index's name (the field's path unless given).
    pub name: String,
    /// Dotted path to the indexed field.
    pub field: String,
    /// Value or text.
    #[serde(default)]
    pub kind: IndexKind,
    /// Refuse a second live key with the same value (value indexes only).
    #[serde(default)]
    pub unique: bool,
}

impl IndexDef {
    /// A definition named after its field, as the roadmap's `create_index` makes it.
    pub fn new(namespace: &str, field: &str, kind: IndexType) -> IndexDef {
        IndexDef {
            namespace: namespace.to_string(),
            name: field.to_string(),
            field: field.to_string(),
            kind: match kind {
                IndexType::Text => IndexKind::Text,
                IndexType::Unique | IndexType::NonUnique => IndexKind::Value,
            },
            unique: kind == IndexType::Unique,
        }
    }

    /// The definition's key in [`INDEXES_NAMESPACE`].
    pub fn key(&self) -> String {
        def_key(&self.namespace, &self.name)
    }

    /// Refuses what cannot be indexed, with a message a client can act on.
    pub fn validate(&self) -> Result<(), String> {
        names::validate_namespace(&self.namespace).map_err(|e| e.to_string())?;
        validate_name(&self.name)?;
        if self.field.is_empty()
            || self.field.len() > names::MAX_KEY_LEN
            || self.field.split('.').any(str::is_empty)
        {
            return Err(format!(
                "field {:?} is not a dotted path such as \"address.city\"",
                self.field
            ));
        }
        if self.unique && self.kind == IndexKind::Text {
            return Err("a text index cannot be unique".into());
        }
        Ok(())
    }
}

/// The key in [`INDEXES_NAMESPACE`] of index `name` over `namespace`.
pub fn def_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Checks an index name: 1–128 bytes of `A-Z a-z 0-9 _ - .`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_INDEX_NAME_LEN {
        return Err(format!(
            "index name {name:?} must be 1 to {MAX_INDEX_NAME_LEN} bytes long"
        ));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        Some(c) => Err(format!(
            "index name {name:?}: character {c:?} is not allowed (use A-Z a-z 0-9 _ - .)"
        )),
        None => Ok(()),
    }
}

/// Where an index stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum IndexStatus {
    /// Being built from the existing history; not used by queries yet.
    Building {
        /// Versions indexed so far.
        indexed: u64,
        /// Versions to index in all.
        total: u64,
    },
    /// Complete and maintained with every write; queries use it.
    Ready,
    /// Could not be built (the reason says why); queries do not use it.
    Failed {
        /// Why.
        reason: String,
    },
}

/// An index with its status and the counts the planner estimates by.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexInfo {
    /// The definition.
    pub def: IndexDef,
    /// Building, ready or failed.
    pub status: IndexStatus,
    /// Commit time (µs) of the definition's version: the index exists from then on.
    pub created_micros: i64,
    /// Live entries now (keys whose current value has the field, for value indexes; documents,
    /// for text indexes).
    pub entries: u64,
    /// Distinct live values now (value indexes; 0 for text).
    pub distinct_values: u64,
}

/// What a value index is asked for. Candidates only: numbers compare by value (1 and 1.0 meet),
/// so callers recheck the documents they fetch against the exact filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// Values equal to this scalar.
    Eq(Value),
    /// Values equal to any of these scalars.
    In(Vec<Value>),
    /// Values of the bounds' kind (numbers, strings or booleans) within the bounds.
    Range {
        /// Lower bound.
        lower: Bound<Value>,
        /// Upper bound.
        upper: Bound<Value>,
    },
    /// Strings starting with this.
    Prefix(String),
}

/// A write refused by a unique index, as the store, the Raft apply and a member's answer all
/// report it: nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error(
    "unique index {index:?} of namespace {namespace:?} already holds {value} (key {existing:?}); nothing was written"
)]
pub struct UniqueViolation {
    /// The namespace written.
    pub namespace: String,
    /// The unique index.
    pub index: String,
    /// The value, as JSON text.
    pub value: String,
    /// The live key holding it.
    pub existing: String,
}

/// One document a text search found.
#[derive(Debug, Clone, PartialEq)]
pub struct TextHit {
    /// The document's key.
    pub key: String,
    /// Its relevance (BM25; larger is better).
    pub score: f32,
    /// The field's text with matched terms in `<b>…</b>`, when asked for.
    pub highlight: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_checked_and_named_after_their_field() {
        let def = IndexDef::new("users", "email", IndexType::Unique);
        assert_eq!(def.key(), "users/email");
        assert!(def.unique && def.kind == IndexKind::Value);
        assert!(def.validate().is_ok());
        let bad = |f: fn(&mut IndexDef)| {
            let mut d = IndexDef::new("users", "email", IndexType::NonUnique);
            f(&mut d);
            d.validate().unwrap_err()
        };
        assert!(bad(|d| d.field = "a..b".into()).contains("dotted path"));
        assert!(bad(|d| d.name = "a/b".into()).contains("'/'"));
        assert!(bad(|d| d.namespace = "_koru_x".into()).contains("reserved"));
        assert!(
            bad(|d| {
                d.kind = IndexKind::Text;
                d.unique = true;
            })
            .contains("cannot be unique")
        );
    }
}
