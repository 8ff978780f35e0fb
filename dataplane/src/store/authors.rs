//! Who wrote each record and why, kept beside the index's 32-byte versions.
//!
//! Authors are interned (each distinct name once) and records are listed in LSN order, so a
//! version's author is a binary search by its LSN. A record written by an unknown author for a
//! client's write (every format 1 record, and format 2 writes without an author) costs nothing:
//! only the others get an entry, of 16 bytes.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::wal::record::MetaRef;
pub use crate::wal::record::{Cause, MAX_AUTHOR_LEN};
use koru_dataplane_api::data::VersionOp;

/// Who a write is made by and why: what its record stores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WriteMeta {
    /// The author (a token's `sub`, `X-Koru-Author`, the embedded API's author); None when
    /// unknown.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "shared_text")]
    pub author: Option<Arc<str>>,
    /// Why it is written.
    #[serde(default, skip_serializing_if = "is_write")]
    pub cause: Cause,
}

/// (De)serializes an optional shared string as an optional string (serde's own impl for `Arc`
/// needs its `rc` feature, which would change every crate's serde).
mod shared_text {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the text, or nothing.
    pub fn serialize<S: Serializer>(v: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(text) => s.serialize_some(&**text),
            None => s.serialize_none(),
        }
    }

    /// Reads the text, or nothing.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<str>>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(Arc::from))
    }
}

/// Whether a cause is the default one (left out of serialized metas).
fn is_write(cause: &Cause) -> bool {
    *cause == Cause::Write
}

impl WriteMeta {
    /// A client's write by `author`.
    pub fn by(author: Option<Arc<str>>) -> WriteMeta {
        WriteMeta {
            author,
            cause: Cause::Write,
        }
    }

    /// The same author, for another cause.
    pub fn because(mut self, cause: Cause) -> WriteMeta {
        self.cause = cause;
        self
    }

    /// The same meta with its author cut to [`MAX_AUTHOR_LEN`] bytes (at a character boundary),
    /// as the log stores it: a token's `sub` is not checked for length where it enters.
    pub fn bounded(self) -> WriteMeta {
        match &self.author {
            Some(a) if a.len() > MAX_AUTHOR_LEN => WriteMeta {
                author: Some(Arc::from(crate::wal::record::truncate(a, MAX_AUTHOR_LEN))),
                cause: self.cause,
            },
            _ => self,
        }
    }

    /// The borrowed form the log encoder takes.
    pub fn as_ref(&self) -> MetaRef<'_> {
        MetaRef {
            cause: self.cause,
            author: self.author.as_deref(),
        }
    }

    /// The owned form of a decoded record's meta.
    pub fn from_ref(meta: MetaRef<'_>) -> WriteMeta {
        WriteMeta {
            author: meta.author.map(Arc::from),
            cause: meta.cause,
        }
    }
}

/// The operation a history shows for a version: rewinds and merges by their record's cause,
/// else put or delete.
pub fn version_op(cause: Cause, deleted: bool) -> VersionOp {
    match (cause, deleted) {
        (Cause::Rewind, _) => VersionOp::Rewind,
        (Cause::Merge, _) => VersionOp::Merge,
        (Cause::Write, true) => VersionOp::Delete,
        (Cause::Write, false) => VersionOp::Put,
    }
}

/// Why an author name cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorError {
    /// Longer than [`MAX_AUTHOR_LEN`] bytes.
    #[error("the author is {0} bytes long; at most {MAX_AUTHOR_LEN} are allowed")]
    TooLong(usize),
    /// Holds a control character (a line break would forge log lines and headers).
    #[error("the author holds a control character")]
    Control,
}

/// Checks an author name a client supplied; an empty one means "unknown" (None).
pub fn check_author(author: &str) -> Result<Option<Arc<str>>, AuthorError> {
    if author.len() > MAX_AUTHOR_LEN {
        return Err(AuthorError::TooLong(author.len()));
    }
    if author.chars().any(char::is_control) {
        return Err(AuthorError::Control);
    }
    Ok((!author.is_empty()).then(|| Arc::from(author)))
}

/// One record's meta as the table keeps it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    lsn: u64,
    /// Index into `names` plus one; 0 for unknown.
    author: u32,
    cause: Cause,
}

/// The interned authors and the per-record table.
#[derive(Debug, Default)]
pub struct Authors {
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
    /// In LSN order (records are applied in LSN order).
    records: Vec<Entry>,
}

impl Authors {
    /// Notes record `lsn`'s meta; records must come in LSN order.
    pub fn note(&mut self, lsn: u64, meta: MetaRef<'_>) {
        if meta.author.is_none() && meta.cause == Cause::Write {
            return;
        }
        let author = match meta.author {
            None => 0,
            Some(name) => match self.ids.get(name) {
                Some(&id) => id,
                None => {
                    let name: Arc<str> = Arc::from(name);
                    self.names.push(Arc::clone(&name));
                    let id = self.names.len() as u32;
                    self.ids.insert(name, id);
                    id
                }
            },
        };
        debug_assert!(self.records.last().is_none_or(|e| e.lsn < lsn));
        self.records.push(Entry {
            lsn,
            author,
            cause: meta.cause,
        });
    }

    /// Record `lsn`'s meta (unknown author and `write` when none was noted).
    pub fn get(&self, lsn: u64) -> WriteMeta {
        match self.records.binary_search_by_key(&lsn, |e| e.lsn) {
            Ok(i) => {
                let e = self.records[i];
                WriteMeta {
                    author: e
                        .author
                        .checked_sub(1)
                        .map(|i| Arc::clone(&self.names[i as usize])),
                    cause: e.cause,
                }
            }
            Err(_) => WriteMeta::default(),
        }
    }

    /// Bytes the table holds (about: the map's overhead is estimated).
    pub fn memory_bytes(&self) -> usize {
        self.records.capacity() * std::mem::size_of::<Entry>()
            + self.names.iter().map(|n| n.len() * 2 + 48).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authors_are_interned_and_found_by_lsn() {
        let mut t = Authors::default();
        t.note(1, MetaRef::default());
        t.note(
            2,
            MetaRef {
                cause: Cause::Write,
                author: Some("ada"),
            },
        );
        t.note(
            5,
            MetaRef {
                cause: Cause::Rewind,
                author: Some("ada"),
            },
        );
        t.note(
            7,
            MetaRef {
                cause: Cause::Merge,
                author: None,
            },
        );
        assert_eq!(t.records.len(), 3, "a plain unauthored write costs nothing");
        assert_eq!(t.names.len(), 1);
        assert_eq!(t.get(1), WriteMeta::default());
        assert_eq!(t.get(2).author.as_deref(), Some("ada"));
        assert_eq!(t.get(5).cause, Cause::Rewind);
        assert_eq!(t.get(7), WriteMeta::default().because(Cause::Merge));
        assert_eq!(t.get(9), WriteMeta::default());
        assert_eq!(std::mem::size_of::<Entry>(), 16);
    }

    #[test]
    fn client_authors_are_bounded_and_printable() {
        assert_eq!(check_author("").unwrap(), None);
        assert_eq!(
            check_author("ada@example.com").unwrap().as_deref(),
            Some("ada@example.com")
        );
        assert_eq!(check_author(&"é".repeat(64)).unwrap().unwrap().len(), 128);
        assert_eq!(
            check_author(&"x".repeat(129)),
            Err(AuthorError::TooLong(129))
        );
        assert_eq!(check_author("a\nb"), Err(AuthorError::Control));
        assert_eq!(check_author("a\u{7f}"), Err(AuthorError::Control));
    }
}
