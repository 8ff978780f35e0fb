//! The reference: the same documents in SQLite (rusqlite, in this process, WAL mode) with the
//! equivalent indexes and an FTS5 table, and the same queries in SQL.

use std::path::Path;
use std::time::Instant;

use rusqlite::{Connection, params};
use serde_json::{Value, json};

use super::data::{self, Sizes};
use crate::error::BenchError;

/// Rows inserted per transaction while loading.
const LOAD_TXN_ROWS: u64 = 50_000;

/// The FTS5 form of `database +performance -slow`: FTS5 has no optional terms beside required
/// ones, and an optional term only ranks, so the matches are the same.
pub const FTS_QUERY: &str = "performance NOT slow";

/// The aggregation of the benchmark in SQL.
const GROUP_SQL: &str = "SELECT region, SUM(amount), AVG(discount), COUNT(*) FROM sales GROUP BY region ORDER BY region";

/// The join on the customers' keys and on their indexed `id` field.
pub const JOIN_ON_KEY_SQL: &str = "SELECT o.key, o.doc, c.doc FROM orders o JOIN customers c ON c.key = o.user_id WHERE c.status = 'premium'";
/// See [`JOIN_ON_KEY_SQL`].
pub const JOIN_ON_ID_SQL: &str = "SELECT o.key, o.doc, c.doc FROM orders o JOIN customers c ON c.id = o.user_id WHERE c.status = 'premium'";

/// A SQLite error with what was being done.
fn sql(context: &str) -> impl FnOnce(rusqlite::Error) -> BenchError + '_ {
    move |e| BenchError::Target(format!("SQLite, {context}: {e}"))
}

/// The reference database.
pub struct Reference {
    conn: Connection,
}

impl Reference {
    /// Creates the database in `dir` with the schema, indexes and FTS5 table, then loads the
    /// documents; returns it and the load time in seconds.
    pub fn load(dir: &Path, sizes: Sizes) -> Result<(Reference, f64), BenchError> {
        let path = dir.join("reference.sqlite");
        let conn = Connection::open(&path).map_err(sql("opening the database"))?;
        // WAL with synchronous=NORMAL is SQLite's usual fast durable setting (a commit survives
        // a process crash; the last ones may be lost on power loss), as our interval fsync. A
        // 256 MiB page cache keeps the working set in memory, as our store does.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA cache_size = -262144;
             PRAGMA temp_store = MEMORY;
             CREATE TABLE users (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
                 email TEXT NOT NULL UNIQUE, status TEXT, region TEXT, cohort INTEGER,
                 cohort_copy INTEGER, bio TEXT, doc TEXT NOT NULL);
             CREATE INDEX users_cohort ON users (cohort);
             CREATE VIRTUAL TABLE users_fts USING fts5 (bio, content = 'users', content_rowid = 'id');
             CREATE TABLE sales (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, region TEXT,
                 amount INTEGER, discount REAL, doc TEXT NOT NULL);
             CREATE TABLE customers (key TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, status TEXT,
                 doc TEXT NOT NULL);
             CREATE TABLE orders (key TEXT PRIMARY KEY, user_id TEXT, amount INTEGER,
                 doc TEXT NOT NULL);",
        )
        .map_err(sql("creating the schema"))?;
        let started = Instant::now();
        let mut reference = Reference { conn };
        reference.insert(sizes.users, |tx, i| {
            let u = data::user(i);
            tx.prepare_cached(
                "INSERT INTO users (id, key, email, status, region, cohort, cohort_copy, bio, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                i as i64,
                u.key,
                u.email,
                u.status,
                u.region,
                u.cohort as i64,
                u.cohort_copy as i64,
                u.bio,
                data::json(&u)
            ])?;
            tx.prepare_cached("INSERT INTO users_fts (rowid, bio) VALUES (?1, ?2)")?
                .execute(params![i as i64, u.bio])?;
            Ok(())
        })?;
        reference.insert(sizes.sales, |tx, i| {
            let s = data::sale(i);
            tx.prepare_cached(
                "INSERT INTO sales (id, key, region, amount, discount, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![i as i64, s.key, s.region, s.amount as i64, s.discount, data::json(&s)])?;
            Ok(())
        })?;
        reference.insert(sizes.customers, |tx, i| {
            let c = data::customer(i);
            tx.prepare_cached(
                "INSERT INTO customers (key, id, status, doc) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![c.key, c.id, c.status, data::json(&c)])?;
            Ok(())
        })?;
        reference.insert(sizes.orders, |tx, i| {
            let o = data::order(i, sizes.customers);
            tx.prepare_cached(
                "INSERT INTO orders (key, user_id, amount, doc) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![o.key, o.user_id, o.amount as i64, data::json(&o)])?;
            Ok(())
        })?;
        reference
            .conn
            .execute_batch("ANALYZE;")
            .map_err(sql("analyzing"))?;
        Ok((reference, started.elapsed().as_secs_f64()))
    }

    /// Inserts rows `0..count` with `row`, in transactions of [`LOAD_TXN_ROWS`].
    fn insert(
        &mut self,
        count: u64,
        row: impl Fn(&rusqlite::Transaction<'_>, u64) -> rusqlite::Result<()>,
    ) -> Result<(), BenchError> {
        let mut first = 0;
        while first < count {
            let tx = self.conn.transaction().map_err(sql("loading"))?;
            for i in first..(first + LOAD_TXN_ROWS).min(count) {
                row(&tx, i).map_err(sql("loading"))?;
            }
            tx.commit().map_err(sql("committing the load"))?;
            first += LOAD_TXN_ROWS;
        }
        Ok(())
    }

    /// The user with this email, parsed as a document (what `get_by_index` answers): its key.
    pub fn user_by_email(&self, email: &str) -> Result<Option<String>, BenchError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, doc FROM users WHERE email = ?1")
            .map_err(sql("point lookup"))?;
        let mut rows = stmt.query(params![email]).map_err(sql("point lookup"))?;
        let Some(row) = rows.next().map_err(sql("point lookup"))? else {
            return Ok(None);
        };
        let key: String = row.get(0).map_err(sql("point lookup"))?;
        let doc: String = row.get(1).map_err(sql("point lookup"))?;
        // The same work as the store's lookup, which hands back parsed documents.
        let _parsed: Value = serde_json::from_str(&doc).map_err(|source| BenchError::Json {
            context: "a SQLite document".into(),
            source,
        })?;
        Ok(Some(key))
    }

    /// Keys of the users whose `field` (`cohort` or `cohort_copy`) equals `value`, with their
    /// documents read.
    pub fn users_in_cohort(&self, field: &str, value: u64) -> Result<Vec<String>, BenchError> {
        let query = match field {
            "cohort" => "SELECT key, doc FROM users WHERE cohort = ?1",
            _ => "SELECT key, doc FROM users WHERE cohort_copy = ?1",
        };
        self.keys_of(query, params![value as i64])
    }

    /// The rows of a query whose first column is a key and the others text, read in full.
    fn keys_of(&self, query: &str, args: impl rusqlite::Params) -> Result<Vec<String>, BenchError> {
        let mut stmt = self.conn.prepare_cached(query).map_err(sql(query))?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(args).map_err(sql(query))?;
        let mut keys = Vec::new();
        while let Some(row) = rows.next().map_err(sql(query))? {
            keys.push(row.get::<_, String>(0).map_err(sql(query))?);
            for c in 1..columns {
                let _text: String = row.get(c).map_err(sql(query))?;
            }
        }
        Ok(keys)
    }

    /// The aggregation: one object per region, shaped like KoruDelta's groups.
    pub fn groups(&self) -> Result<Vec<Value>, BenchError> {
        let mut stmt = self
            .conn
            .prepare_cached(GROUP_SQL)
            .map_err(sql("group by"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(json!({
                    "region": r.get::<_, String>(0)?,
                    "sum_amount": r.get::<_, i64>(1)?,
                    "avg_discount": r.get::<_, f64>(2)?,
                    "count": r.get::<_, i64>(3)?,
                }))
            })
            .map_err(sql("group by"))?;
        rows.collect::<Result<_, _>>().map_err(sql("group by"))
    }

    /// The keys of the joined rows (`JOIN_ON_KEY_SQL` or `JOIN_ON_ID_SQL`).
    pub fn join(&self, query: &str) -> Result<Vec<String>, BenchError> {
        self.keys_of(query, [])
    }

    /// The ten best matches of the text query, with their documents.
    pub fn text_search(&self) -> Result<Vec<String>, BenchError> {
        self.keys_of(
            "SELECT u.key, u.doc FROM users_fts JOIN users u ON u.id = users_fts.rowid
             WHERE users_fts MATCH ?1 ORDER BY rank LIMIT 10",
            params![FTS_QUERY],
        )
    }

    /// How many users match the text query.
    pub fn text_matches(&self) -> Result<u64, BenchError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM users_fts WHERE users_fts MATCH ?1",
                params![FTS_QUERY],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(sql("counting text matches"))
    }
}
