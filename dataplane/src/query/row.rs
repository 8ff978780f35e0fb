//! Result rows, as queries, views and index lookups answer them: key, exact stored value,
//! version; a query's rows may add relevance, a highlight and the joined document.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::error::QueryError;
use crate::store::{Document, Fetched};

/// One result row; the value goes out as the exact stored text, the parsed form is for filtering.
#[derive(Debug, serde::Serialize)]
pub struct Row {
    /// The key.
    pub key: String,
    /// The stored JSON text.
    pub value: Box<RawValue>,
    /// The version read.
    pub version_id: String,
    /// Its commit time, RFC 3339.
    pub timestamp: String,
    /// The value parsed, for filtering and sorting; not sent.
    #[serde(skip)]
    pub parsed: Value,
}

impl Row {
    /// The row of `key` at the version `fetched`, whose value's text and parsed form are given.
    pub fn of(
        key: String,
        fetched: &Fetched,
        text: String,
        parsed: Value,
    ) -> Result<Row, QueryError> {
        let value = RawValue::from_string(text).map_err(|_| QueryError::Unreadable(key.clone()))?;
        Ok(Row {
            key,
            value,
            version_id: fetched.version.to_string(),
            timestamp: crate::clock::rfc3339(fetched.timestamp_micros),
            parsed,
        })
    }
}

/// One row of a query's `results`.
#[derive(Debug)]
pub struct ResultRow {
    /// The document.
    pub row: Row,
    /// Text-search relevance (BM25), in text searches.
    pub relevance: Option<f32>,
    /// The searched field with matches in `<b>…</b>`, when asked for.
    pub highlight: Option<String>,
    /// In a join: the joined namespace and its document (None: a left join found none).
    pub joined: Option<(String, Option<Document>)>,
}

impl ResultRow {
    /// Bytes this row takes in an answer, roughly (the budgets' unit).
    pub fn bytes(&self) -> usize {
        let joined = self
            .joined
            .as_ref()
            .and_then(|(_, d)| d.as_ref())
            .map_or(0, |d| approx_json_len(&d.value) + 96);
        self.row.value.get().len() + self.row.key.len() + 96 + joined
    }
}

/// About how many bytes a value takes as JSON text, without writing it (budgets count every row,
/// so serializing each joined document to measure it would cost as much as answering).
fn approx_json_len(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 12,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|i| approx_json_len(i) + 1).sum::<usize>(),
        Value::Object(map) => {
            2 + map
                .iter()
                .map(|(k, v)| k.len() + 4 + approx_json_len(v))
                .sum::<usize>()
        }
    }
}

impl Serialize for ResultRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("key", &self.row.key)?;
        map.serialize_entry("value", &self.row.value)?;
        map.serialize_entry("version_id", &self.row.version_id)?;
        map.serialize_entry("timestamp", &self.row.timestamp)?;
        if let Some(r) = self.relevance {
            map.serialize_entry(super::spec::RELEVANCE, &r)?;
        }
        if let Some(h) = &self.highlight {
            map.serialize_entry("highlight", h)?;
        }
        if let Some((namespace, doc)) = &self.joined {
            let joined = doc.as_ref().map(|d| {
                serde_json::json!({
                    "namespace": namespace,
                    "key": d.key,
                    "value": d.value,
                    "version_id": d.version.to_string(),
                    "timestamp": crate::clock::rfc3339(d.timestamp_micros),
                })
            });
            map.serialize_entry("joined", &joined)?;
        }
        map.end()
    }
}
