//! The store's full-text indexes (tantivy): searching them, now or as of a moment, and their status.
//!
//! The indexes themselves, their indexer thread and their rebuild rules are in
//! [`crate::indexes::text`].

use std::time::Duration;

use super::Store;
use crate::error::StoreError;
use crate::indexes::def::{INDEXES_NAMESPACE, def_key};
use crate::indexes::text::TextStats;
use crate::indexes::{IndexDef, IndexKind, IndexStatus, TextHit};

impl Store {
    /// Documents of a namespace matching `query` (tantivy syntax: words, `+must`, `-not`,
    /// `"phrases"`, `prefix*`) in text index `name` as of `at` (now when None), best first, at
    /// most `limit`; None when `name` is not a ready text index of the namespace.
    ///
    /// Searches see the index's last commit: a write is searchable once the indexer has
    /// committed it (see [`crate::indexes::text::COMMIT_INTERVAL`]); `at` is exact for every
    /// moment up to that commit. [`Store::text_indexed_lsn`] tells how far that is.
    pub fn text_search(
        &self,
        namespace: &str,
        name: &str,
        query: &str,
        at: Option<i64>,
        limit: usize,
        highlight: bool,
    ) -> Result<Option<Vec<TextHit>>, StoreError> {
        Ok(self
            .text_search_counted(namespace, name, query, at, limit, highlight)?
            .map(|(hits, _)| hits))
    }

    /// [`Store::text_search`] with the number of documents matching in all (counted in the same
    /// pass), so a top-k answer can say how many there were without reading them.
    pub fn text_search_counted(
        &self,
        namespace: &str,
        name: &str,
        query: &str,
        at: Option<i64>,
        limit: usize,
        highlight: bool,
    ) -> Result<Option<(Vec<TextHit>, usize)>, StoreError> {
        Ok(self
            .text_indexes()
            .search(namespace, name, query, at, limit, highlight)?)
    }

    /// A text index's status and live document count, for [`Store::indexes`].
    pub fn text_status(&self, namespace: &str, name: &str) -> Option<(IndexStatus, u64)> {
        if let Some(found) = self.text_indexes().status(namespace, name) {
            return Some(found);
        }
        // Defined a moment ago: the indexer picks it up at its next poll.
        let def = self
            .get(INDEXES_NAMESPACE, &def_key(namespace, name))
            .ok()??;
        let def: IndexDef = serde_json::from_str(def.value.as_deref()?).ok()?;
        (def.kind == IndexKind::Text).then(|| {
            if !self.text_indexes().available() {
                let reason = crate::indexes::text::UNAVAILABLE.to_string();
                return (IndexStatus::Failed { reason }, 0);
            }
            let total = self.last_applied().0;
            (IndexStatus::Building { indexed: 0, total }, 0)
        })
    }

    /// Counters of a text index the indexer has opened (tests and diagnostics).
    pub fn text_stats(&self, namespace: &str, name: &str) -> Option<TextStats> {
        self.text_indexes().stats(namespace, name)
    }

    /// Makes every write acknowledged before the call searchable: the indexer commits at once
    /// for a waiting caller. False when that takes longer than `timeout` or `name` is not a
    /// text index being maintained. For read-your-writes searches; others need not wait.
    pub fn text_catch_up(&self, namespace: &str, name: &str, timeout: Duration) -> bool {
        let (lsn, _) = self.last_applied();
        self.text_indexes().wait(namespace, name, lsn, timeout)
    }

    /// LSN of the text index's last commit: writes up to it are searchable.
    pub fn text_indexed_lsn(&self, namespace: &str, name: &str) -> Option<u64> {
        self.text_indexes().indexed_lsn(namespace, name)
    }
}
