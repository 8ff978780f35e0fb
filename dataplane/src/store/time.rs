//! The store's reads for time over the whole database: where a moment falls in the log and the
//! keys live as of a record, a page at a time (what `crate::snapshot` builds on).

use super::{Store, Version};
use crate::error::StoreError;

impl Store {
    /// The LSN of the last record committed before `micros` (0 when none was), so
    /// `changes_page(lsn_before_time(t), …)` starts at the first record committed at or after
    /// `t`. Never a scan of the whole log: a binary search of the seek points' commit times, then
    /// less than one seek interval of records.
    pub fn lsn_before_time(&self, micros: i64) -> Result<u64, StoreError> {
        self.reader().lsn_before_time(micros)
    }

    /// Every namespace that ever held a key, internal ones included, sorted.
    pub fn all_namespaces(&self) -> Vec<String> {
        self.inner.index.read().all_namespaces()
    }

    /// A page of the keys of a namespace live as of record `lsn` with their versions then, after
    /// `after`; the second value is the cursor of the next page, if any.
    pub fn page_at_lsn(
        &self,
        namespace: &str,
        after: Option<&str>,
        limit: usize,
        lsn: u64,
    ) -> (Vec<(String, Version)>, Option<String>) {
        self.inner
            .index
            .read()
            .page_at_lsn(namespace, after, limit, lsn)
    }

    /// A version's value exactly as stored (a CRDT's whole state, not its rendering); None for a
    /// delete.
    pub fn raw_value(&self, v: Version) -> Result<Option<String>, StoreError> {
        self.reader().raw_value(v)
    }
}
