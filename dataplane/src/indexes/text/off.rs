//! Text indexes in a build without tantivy (the `text` feature off, as in the browser): the
//! definitions are stored like any other, but nothing is indexed and searches say why.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::StoreError;
use crate::indexes::{IndexStatus, TextHit};
use crate::store::LogReader;

/// Why text search is refused in this build.
pub const UNAVAILABLE: &str =
    "text indexes are not in this build (it was built without tantivy, as for the browser)";

/// Why a text index could not be used: in this build, always because there are none.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// No text indexes in this build.
    #[error("{UNAVAILABLE}")]
    Unavailable,
}

impl From<TextError> for StoreError {
    fn from(e: TextError) -> StoreError {
        StoreError::InvalidRequest(e.to_string())
    }
}

/// Counters of one text index (never produced in this build).
#[derive(Debug, Clone, PartialEq)]
pub struct TextStats {
    /// Building, ready or failed.
    pub status: IndexStatus,
    /// LSN of the last commit searches see.
    pub indexed_lsn: u64,
    /// Live documents at that commit.
    pub live: u64,
    /// Documents added since the store was opened.
    pub added_since_open: u64,
    /// Whether opening rebuilt the index.
    pub rebuilt_on_open: bool,
}

/// The store's text indexes: none.
pub(crate) struct TextIndexes;

impl TextIndexes {
    /// Nothing to start: the same as [`TextIndexes::unavailable`].
    pub(crate) fn start(_root: PathBuf, log: LogReader) -> Result<TextIndexes, StoreError> {
        Ok(TextIndexes::unavailable(log))
    }

    /// No indexer.
    pub(crate) fn unavailable(_log: LogReader) -> TextIndexes {
        TextIndexes
    }

    /// Always false.
    pub(crate) fn available(&self) -> bool {
        false
    }

    /// Nothing to stop.
    pub(crate) fn stop(&self) {}

    /// Refused with the reason.
    pub(crate) fn search(
        &self,
        _namespace: &str,
        _name: &str,
        _query: &str,
        _at: Option<i64>,
        _limit: usize,
        _highlight: bool,
    ) -> Result<Option<(Vec<TextHit>, usize)>, TextError> {
        Err(TextError::Unavailable)
    }

    /// None: the store reports defined text indexes as failed with the reason.
    pub(crate) fn status(&self, _namespace: &str, _name: &str) -> Option<(IndexStatus, u64)> {
        None
    }

    /// None.
    pub(crate) fn stats(&self, _namespace: &str, _name: &str) -> Option<TextStats> {
        None
    }

    /// False: nothing is ever indexed.
    pub(crate) fn wait(
        &self,
        _namespace: &str,
        _name: &str,
        _lsn: u64,
        _timeout: Duration,
    ) -> bool {
        false
    }

    /// None.
    pub(crate) fn indexed_lsn(&self, _namespace: &str, _name: &str) -> Option<u64> {
        None
    }
}
