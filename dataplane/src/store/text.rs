//! The store's full-text indexes (tantivy): searching them, now or as of a moment, and their status.
//!
//! CONTRACT STUB (issue 18): the signatures are fixed; the bodies are the full-text helper's.

use super::Store;
use crate::error::StoreError;
use crate::indexes::{IndexStatus, TextHit};

impl Store {
    /// Documents of a namespace matching `query` (tantivy syntax: words, `+must`, `-not`,
    /// `"phrases"`, `prefix*`) in text index `name` as of `at` (now when None), best first, at
    /// most `limit`; None when `name` is not a ready text index of the namespace.
    pub fn text_search(
        &self,
        namespace: &str,
        name: &str,
        query: &str,
        at: Option<i64>,
        limit: usize,
        highlight: bool,
    ) -> Result<Option<Vec<TextHit>>, StoreError> {
        let _ = (namespace, name, query, at, limit, highlight);
        Ok(None)
    }

    /// A text index's status and live document count, for [`Store::indexes`].
    pub fn text_status(&self, namespace: &str, name: &str) -> Option<(IndexStatus, u64)> {
        let _ = (namespace, name);
        None
    }
}
