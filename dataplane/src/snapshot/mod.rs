//! Time over the whole database (roadmap 3.4): where the change feed of a moment starts, the
//! snapshot of every key as of a moment (read in pages, so nothing holds it all), and the lines
//! an import reads back. The line shapes are the NDJSON of `GET /api/v1/snapshot` (API.md).

mod embedded;
// Importing serves `POST /admin/v1/import` and seeds regions, both the server's.
#[cfg(feature = "server")]
pub mod import;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

pub use embedded::Snapshot;

use crate::clock;
use crate::error::StoreError;
use crate::names;
use crate::store::Store;

/// Keys one snapshot page reads (a page's values are read from the log at once).
pub const PAGE_KEYS: usize = 500;

/// Why a moment cannot be answered.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// The time is not RFC 3339.
    #[error("invalid time {text:?}: {reason} (use RFC 3339, e.g. 2026-01-31T12:00:00Z)")]
    BadTime {
        /// The text given.
        text: String,
        /// What the parser said.
        reason: String,
    },
    /// The moment has not happened yet, so its answer could still change.
    #[error("{at} is in the future (the server's time is {now}); ask about a past moment")]
    Future {
        /// The moment asked for.
        at: String,
        /// The server's time.
        now: String,
    },
    /// The log begins after the moment: the store holds no history before its first record.
    #[error(
        "{at} is before the first record in the log ({first}): the store holds no history \
         before it"
    )]
    BeforeHistory {
        /// The moment asked for.
        at: String,
        /// The first record's time.
        first: String,
    },
    /// The namespace asked for is internal and internal namespaces were not asked for.
    #[error(transparent)]
    Name(#[from] names::NameError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SnapshotError {
    /// The API's error code for it.
    pub fn code(&self) -> &'static str {
        match self {
            SnapshotError::BadTime { .. } | SnapshotError::Future { .. } => "invalid_time",
            SnapshotError::BeforeHistory { .. } => "before_history",
            SnapshotError::Name(_) => "invalid_name",
            SnapshotError::Store(_) => "store",
        }
    }
}

/// Parses an RFC 3339 time into microseconds since the epoch.
pub fn parse_time(text: &str) -> Result<i64, SnapshotError> {
    clock::parse_micros(text).map_err(|e| SnapshotError::BadTime {
        text: text.to_string(),
        reason: e.to_string(),
    })
}

/// The first line of a snapshot: the moment and the last LSN at or before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The moment, RFC 3339 UTC with microseconds.
    pub snapshot_at: String,
    /// The last record committed at or before it (0 when none was).
    pub lsn: u64,
}

/// One key of a snapshot as it was at the moment.
#[derive(Debug, Serialize, Deserialize)]
pub struct Line {
    /// The namespace.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// The version current at the moment.
    pub version_id: String,
    /// That version's commit time, RFC 3339.
    pub timestamp: String,
    /// Its value: as reads render it, or the stored text (a CRDT's whole state) when raw.
    pub value: Box<RawValue>,
}

/// What a snapshot covers.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// One namespace, or every one.
    pub namespace: Option<String>,
    /// CRDT values as stored instead of rendered.
    pub raw: bool,
    /// Internal (`_koru…`) namespaces too.
    pub internal: bool,
}

/// Resolves a moment (now when None) against the log: the header of its snapshot, with the
/// moment in microseconds.
pub fn moment(
    store: &Store,
    at: Option<&str>,
    now_micros: i64,
) -> Result<(Header, i64), SnapshotError> {
    let (micros, lsn) = match at {
        None => {
            let (lsn, last) = store.last_applied();
            (now_micros.max(last), lsn)
        }
        Some(text) => {
            let micros = parse_time(text)?;
            if micros > now_micros {
                return Err(SnapshotError::Future {
                    at: clock::rfc3339(micros),
                    now: clock::rfc3339(now_micros),
                });
            }
            if let Some(first) = store.first_timestamp_micros()
                && micros < first
            {
                return Err(SnapshotError::BeforeHistory {
                    at: clock::rfc3339(micros),
                    first: clock::rfc3339(first),
                });
            }
            (micros, store.lsn_before_time(micros.saturating_add(1))?)
        }
    };
    let header = Header {
        snapshot_at: clock::rfc3339(micros),
        lsn,
    };
    Ok((header, micros))
}

/// Where a snapshot read has got to; each [`Cursor::next_page`] reads one page of keys.
pub struct Cursor {
    store: Store,
    lsn: u64,
    raw: bool,
    namespaces: VecDeque<String>,
    after: Option<String>,
}

impl Cursor {
    /// A cursor over the keys live as of record `lsn` within `scope`.
    pub fn new(store: Store, lsn: u64, scope: &Scope) -> Result<Cursor, SnapshotError> {
        let namespaces = match &scope.namespace {
            Some(ns) if scope.internal => {
                names::validate_namespace_inner(ns)?;
                VecDeque::from([ns.clone()])
            }
            Some(ns) => {
                names::validate_namespace(ns)?;
                VecDeque::from([ns.clone()])
            }
            None => store
                .all_namespaces()
                .into_iter()
                .filter(|n| scope.internal || !n.starts_with(names::INTERNAL_PREFIX))
                .collect(),
        };
        Ok(Cursor {
            store,
            lsn,
            raw: scope.raw,
            namespaces,
            after: None,
        })
    }

    /// The next keys (at most about `limit`), with their values read; None once all were read.
    pub fn next_page(&mut self, limit: usize) -> Result<Option<Vec<Line>>, StoreError> {
        while let Some(ns) = self.namespaces.front() {
            let (keys, next) =
                self.store
                    .page_at_lsn(ns, self.after.as_deref(), limit.max(1), self.lsn);
            let namespace = ns.clone();
            match next {
                Some(cursor) => self.after = Some(cursor),
                None => {
                    self.namespaces.pop_front();
                    self.after = None;
                }
            }
            if keys.is_empty() {
                continue;
            }
            let mut lines = Vec::with_capacity(keys.len());
            for (key, v) in keys {
                let text = if self.raw {
                    self.store.raw_value(v)?
                } else {
                    self.store.fetch(v, None)?.value
                };
                // A version live at the moment always has a value.
                let Some(text) = text else { continue };
                let value = RawValue::from_string(text).map_err(|e| {
                    StoreError::InvalidValue(format!("stored value unreadable: {e}"))
                })?;
                lines.push(Line {
                    namespace: namespace.clone(),
                    key,
                    version_id: v.id().to_string(),
                    timestamp: clock::rfc3339(v.timestamp_micros),
                    value,
                });
            }
            return Ok(Some(lines));
        }
        Ok(None)
    }
}

/// The change feed's starting point for a moment: the LSN to pass as `since` so the feed starts
/// at the first record committed at or after `at`.
pub fn since_for_time(store: &Store, at: &str) -> Result<u64, SnapshotError> {
    let micros = parse_time(at)?;
    Ok(store.lsn_before_time(micros)?)
}

#[cfg(test)]
mod tests;
