//! The embedded API of the roadmap's 3.4: `db.changes_since(last_backup_time)` and
//! `db.snapshot_at("2026-02-06T12:00:00Z")` on [`BlockingDb`] and [`Db`](crate::Db).

use super::{Cursor, Header, Line, PAGE_KEYS, Scope, SnapshotError};
use crate::db::{BlockingDb, ChangesPage, DbError};

impl From<SnapshotError> for DbError {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::Store(e) => DbError::Store(e),
            other => DbError::BadRequest(other.to_string()),
        }
    }
}

/// A database as of a moment, read a page of keys at a time as it is iterated: every key of
/// every user namespace live then, with its value as reads render it.
pub struct Snapshot {
    /// The moment and the last LSN at or before it.
    pub header: Header,
    cursor: Cursor,
    page: std::vec::IntoIter<Line>,
}

impl Snapshot {
    /// The next page of keys (None once all were read); reads the log, so it blocks.
    pub fn next_page(&mut self) -> Result<Option<Vec<Line>>, DbError> {
        let rest: Vec<Line> = self.page.by_ref().collect();
        if !rest.is_empty() {
            return Ok(Some(rest));
        }
        Ok(self.cursor.next_page(PAGE_KEYS)?)
    }
}

impl Iterator for Snapshot {
    type Item = Result<Line, DbError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(line) = self.page.next() {
                return Some(Ok(line));
            }
            match self.cursor.next_page(PAGE_KEYS) {
                Ok(Some(page)) => self.page = page.into_iter(),
                Ok(None) => return None,
                Err(e) => return Some(Err(e.into())),
            }
        }
    }
}

impl BlockingDb {
    /// The change feed from the first record committed at or after `at` (RFC 3339): one page of
    /// at most `limit` records (default 1,000); continue with [`BlockingDb::changes`] from
    /// `next_since`.
    pub fn changes_since_time(
        &self,
        at: &str,
        limit: Option<usize>,
    ) -> Result<ChangesPage, DbError> {
        let store = self.store()?;
        let since = super::since_for_time(&store, at)?;
        self.changes(since, limit)
    }

    /// The roadmap's `db.changes_since(last_backup_time)`: [`BlockingDb::changes_since_time`]
    /// with the default page size.
    pub fn changes_since(&self, at: &str) -> Result<ChangesPage, DbError> {
        self.changes_since_time(at, None)
    }

    /// The database as of `at` (RFC 3339; a past moment, not before the first record), read
    /// lazily: iterate it for each live key's line, or take [`Snapshot::next_page`]s.
    pub fn snapshot_at(&self, at: &str) -> Result<Snapshot, DbError> {
        self.snapshot_scoped(Some(at), &Scope::default())
    }

    /// A snapshot of `scope` as of `at` (now when None).
    pub fn snapshot_scoped(&self, at: Option<&str>, scope: &Scope) -> Result<Snapshot, DbError> {
        let store = self.store()?;
        let (header, _) = super::moment(&store, at, crate::clock::now_micros())?;
        let cursor = Cursor::new(store, header.lsn, scope)?;
        Ok(Snapshot {
            header,
            cursor,
            page: Vec::new().into_iter(),
        })
    }
}

#[cfg(feature = "server")]
impl crate::Db {
    /// See [`BlockingDb::changes_since_time`].
    pub async fn changes_since_time(
        &self,
        at: &str,
        limit: Option<usize>,
    ) -> Result<ChangesPage, DbError> {
        let (db, at) = (self.blocking().clone(), at.to_string());
        run(move || db.changes_since_time(&at, limit)).await
    }

    /// See [`BlockingDb::changes_since`].
    pub async fn changes_since(&self, at: &str) -> Result<ChangesPage, DbError> {
        self.changes_since_time(at, None).await
    }

    /// See [`BlockingDb::snapshot_at`]; iterating the snapshot reads the log, so do it where
    /// blocking is allowed (`spawn_blocking`).
    pub async fn snapshot_at(&self, at: &str) -> Result<Snapshot, DbError> {
        let (db, at) = (self.blocking().clone(), at.to_string());
        run(move || db.snapshot_at(&at)).await
    }
}

/// Runs `f` on the blocking pool.
#[cfg(feature = "server")]
async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DbError> + Send + 'static,
) -> Result<T, DbError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| DbError::Store(crate::StoreError::Closed))?
}
