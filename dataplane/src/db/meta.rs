//! Authors in the embedded API: a handle that writes as someone, and the reads that show who
//! wrote each version (the HTTP API's `?meta=true`).

use super::{BlockingDb, ChangesPage, DbError, Entry, HistoryPage, WriteMeta};
use crate::store::check_author;

impl BlockingDb {
    /// A handle on the same store whose writes are recorded as `author`'s (at most 128 bytes, no
    /// control characters; empty: unknown). Other handles keep their own author.
    pub fn with_author(&self, author: &str) -> Result<BlockingDb, DbError> {
        let author = check_author(author).map_err(|e| DbError::BadRequest(e.to_string()))?;
        Ok(BlockingDb {
            author,
            ..self.clone()
        })
    }

    /// The author this handle writes as.
    pub fn author(&self) -> Option<&str> {
        self.author.as_deref()
    }

    /// The meta of a client's write through this handle.
    pub(super) fn meta(&self) -> WriteMeta {
        WriteMeta::by(self.author.clone())
    }

    /// [`BlockingDb::get`] with the version's `author` (when known) and `op`.
    pub fn get_meta(&self, namespace: &str, key: &str) -> Result<Entry, DbError> {
        self.get_with(namespace, key, true)
    }

    /// [`BlockingDb::get_at`] with the version's `author` (when known) and `op`.
    pub fn get_at_meta(&self, namespace: &str, key: &str, at: &str) -> Result<Entry, DbError> {
        self.get_at_with(namespace, key, at, true)
    }

    /// [`BlockingDb::history`] with each version's `author` (when known) and `op`.
    pub fn history_meta(
        &self,
        namespace: &str,
        key: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<HistoryPage, DbError> {
        self.history_with(namespace, key, cursor, limit, true)
    }

    /// [`BlockingDb::changes`] with each record's `author` (when known) and `cause`.
    pub fn changes_meta(&self, since: u64, limit: Option<usize>) -> Result<ChangesPage, DbError> {
        self.changes_with(since, limit, true)
    }
}

#[cfg(test)]
mod tests {
    use koru_dataplane_api::data::{Cause, VersionOp};

    use super::*;

    #[test]
    fn writes_through_an_authored_handle_are_read_back_with_their_author() {
        let dir = tempfile::tempdir().unwrap();
        let db = BlockingDb::open_path(dir.path()).unwrap();
        db.put("users", "ada", "1", None).unwrap();
        let ada = db.with_author("ada@example.com").unwrap();
        ada.put("users", "ada", "2", None).unwrap();
        ada.patch("users", "c", r#"{"op":"increment","by":1}"#, None)
            .unwrap();
        ada.delete("users", "ada", None).unwrap();
        assert!(db.with_author(&"x".repeat(129)).is_err());
        assert!(db.with_author("a\nb").is_err());

        let plain = db.history("users", "ada", None, None).unwrap();
        assert!(
            plain
                .versions
                .iter()
                .all(|e| e.author.is_none() && e.op.is_none())
        );
        let page = db.history_meta("users", "ada", None, None).unwrap();
        let seen: Vec<(Option<&str>, Option<VersionOp>)> = page
            .versions
            .iter()
            .map(|e| (e.author.as_deref(), e.op))
            .collect();
        assert_eq!(
            seen,
            [
                (None, Some(VersionOp::Put)),
                (Some("ada@example.com"), Some(VersionOp::Put)),
                (Some("ada@example.com"), Some(VersionOp::Delete)),
            ]
        );
        let c = db.get_meta("users", "c").unwrap();
        assert_eq!(c.op, Some(VersionOp::Merge));
        let changes = db.changes_meta(0, None).unwrap();
        let causes: Vec<Option<Cause>> = changes.changes.iter().map(|c| c.cause).collect();
        assert_eq!(
            causes,
            [
                Some(Cause::Write),
                Some(Cause::Write),
                Some(Cause::Merge),
                Some(Cause::Write)
            ]
        );
        assert_eq!(changes.changes[0].author, None);
        assert_eq!(
            changes.changes[1].author.as_deref(),
            Some("ada@example.com")
        );
    }
}
