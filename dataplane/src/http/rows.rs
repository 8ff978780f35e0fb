//! Result rows, as queries, views and index lookups answer them: the query engine's [`Row`], built
//! here from a read with the API's error.

use serde_json::Value;

use super::ApiError;
pub use crate::query::Row;
use crate::store::Fetched;

impl Row {
    /// The row of `key` at the version `fetched`, whose value's text and parsed form are given.
    pub fn new(
        key: String,
        fetched: &Fetched,
        text: String,
        parsed: Value,
    ) -> Result<Row, ApiError> {
        Ok(Row::of(key, fetched, text, parsed)?)
    }
}
