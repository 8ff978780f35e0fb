//! Result rows, as queries, views and index lookups answer them: key, exact stored value, version.

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{ApiError, json};
use crate::store::Fetched;

/// One result row; the value goes out as the exact stored text, the parsed form is for filtering.
#[derive(Serialize)]
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
    pub fn new(
        key: String,
        fetched: &Fetched,
        text: String,
        parsed: Value,
    ) -> Result<Row, ApiError> {
        Ok(Row {
            key,
            value: json::raw(text)?,
            version_id: fetched.version.to_string(),
            timestamp: json::timestamp(fetched.timestamp_micros),
            parsed,
        })
    }
}
