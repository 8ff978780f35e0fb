//! The audit log in the database: appending to both chains, and reading events back by filter
//! and page.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, AssertSqlSafe, Row};

use super::chain::{ChainKind, GENESIS_HASH, Record, link_hash};
use super::{Filter, Link, OrgEvent, StoredEvent};
use crate::error::{Error, Result};

/// How often an append is retried when another replica took the same seq first.
const APPEND_ATTEMPTS: u32 = 50;

/// Serializes this process's appends, so they never race each other for a seq; the unique seqs
/// in the database (and a retry) keep several replicas correct.
static APPEND_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Appends that failed (the change they record had already happened), for alerting.
static APPEND_FAILURES: AtomicU64 = AtomicU64::new(0);

/// How many appends have failed since the process started.
pub fn append_failures() -> u64 {
    APPEND_FAILURES.load(Ordering::Relaxed)
}

/// Counts a failed append; the caller logs it.
pub(crate) fn count_append_failure() {
    APPEND_FAILURES.fetch_add(1, Ordering::Relaxed);
}

/// The columns every event query selects, in [`event`]'s order.
const COLUMNS: &str = "seq, id, occurred_at, actor, org_id, source_ip, action, target, outcome, request_id, \
                       prev_hash, hash, org_seq, org_prev_hash, org_hash";

fn event(row: &AnyRow) -> Result<StoredEvent> {
    let org_seq: Option<i64> = row.try_get("org_seq")?;
    let org_prev_hash: Option<String> = row.try_get("org_prev_hash")?;
    let org_hash: Option<String> = row.try_get("org_hash")?;
    let org = match (org_seq, org_prev_hash, org_hash) {
        (Some(seq), Some(prev_hash), Some(hash)) => Some(Link {
            seq,
            prev_hash,
            hash,
        }),
        _ => None,
    };
    Ok(StoredEvent {
        record: Record {
            id: row.try_get("id")?,
            time: row.try_get("occurred_at")?,
            actor: row.try_get("actor")?,
            org_id: row.try_get("org_id")?,
            source_ip: row.try_get("source_ip")?,
            action: row.try_get("action")?,
            target: row.try_get("target")?,
            outcome: row.try_get("outcome")?,
            request_id: row.try_get("request_id")?,
        },
        global: Link {
            seq: row.try_get("seq")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        },
        org,
    })
}

/// Appends `record` to the global chain and, when it names an organization, to that
/// organization's chain. Retries when another replica appended first.
pub async fn append(db: &AnyPool, record: &Record) -> Result<StoredEvent> {
    let _serial = APPEND_LOCK.lock().await;
    append_unserialized(db, record).await
}

/// [`append`] without this process's lock: what a replica's append amounts to from another
/// replica's point of view. Correct under any concurrency, but retries when appends collide.
pub async fn append_unserialized(db: &AnyPool, record: &Record) -> Result<StoredEvent> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_append(db, record).await {
            Ok(event) => return Ok(event),
            Err(sqlx::Error::Database(e))
                if e.is_unique_violation() && attempt < APPEND_ATTEMPTS =>
            {
                // Another replica took this seq; back off a little, with jitter, and re-read the head.
                let jitter = u64::from(rand::random::<u8>() % 20);
                tokio::time::sleep(Duration::from_millis(1 + jitter)).await;
            }
            Err(e) => return Err(Error::Database(e)),
        }
    }
}

async fn try_append(
    db: &AnyPool,
    record: &Record,
) -> std::result::Result<StoredEvent, sqlx::Error> {
    let mut tx = db.begin().await?;
    let head = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    let (seq, prev_hash) = match head {
        Some(row) => (
            row.try_get::<i64, _>("seq")? + 1,
            row.try_get::<String, _>("hash")?,
        ),
        None => (1, GENESIS_HASH.to_string()),
    };
    let global = Link {
        seq,
        hash: link_hash(ChainKind::Global, seq, &prev_hash, record),
        prev_hash,
    };
    let org = match &record.org_id {
        Some(org_id) => {
            let head = sqlx::query(
                "SELECT org_seq, org_hash FROM audit_events WHERE org_id = $1 ORDER BY org_seq DESC LIMIT 1",
            )
            .bind(org_id)
            .fetch_optional(&mut *tx)
            .await?;
            let (seq, prev_hash) = match head {
                Some(row) => (
                    row.try_get::<i64, _>("org_seq")? + 1,
                    row.try_get::<String, _>("org_hash")?,
                ),
                None => (1, GENESIS_HASH.to_string()),
            };
            Some(Link {
                seq,
                hash: link_hash(ChainKind::Org, seq, &prev_hash, record),
                prev_hash,
            })
        }
        None => None,
    };
    sqlx::query(
        "INSERT INTO audit_events (seq, id, occurred_at, actor, org_id, source_ip, action, target, outcome, \
         request_id, prev_hash, hash, org_seq, org_prev_hash, org_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(global.seq)
    .bind(&record.id)
    .bind(record.time)
    .bind(&record.actor)
    .bind(&record.org_id)
    .bind(&record.source_ip)
    .bind(&record.action)
    .bind(&record.target)
    .bind(&record.outcome)
    .bind(&record.request_id)
    .bind(&global.prev_hash)
    .bind(&global.hash)
    .bind(org.as_ref().map(|l| l.seq))
    .bind(org.as_ref().map(|l| l.prev_hash.clone()))
    .bind(org.as_ref().map(|l| l.hash.clone()))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StoredEvent {
        record: record.clone(),
        global,
        org,
    })
}

/// A value bound to a filter's placeholder.
enum Bind {
    Text(String),
    Int(i64),
}

/// The `AND ...` conditions of `filter`, numbered from `$first`, and their values. Only constant
/// fragments go into the SQL; every value is bound.
fn conditions(filter: &Filter, first: usize) -> (String, Vec<Bind>) {
    let mut sql = String::new();
    let mut binds = Vec::new();
    let mut add = |fragment: &str, bind: Bind| {
        sql.push_str(&format!(" AND {fragment} ${}", first + binds.len()));
        binds.push(bind);
    };
    if let Some(action) = &filter.action {
        add("action =", Bind::Text(action.clone()));
    }
    if let Some(actor) = &filter.actor {
        add("actor =", Bind::Text(actor.clone()));
    }
    match filter.outcome.as_deref() {
        None => {}
        Some("failure") => add("outcome LIKE", Bind::Text("failure:%".into())),
        Some(exact) => add("outcome =", Bind::Text(exact.to_string())),
    }
    if let Some(since) = filter.since {
        add("occurred_at >=", Bind::Int(since));
    }
    if let Some(until) = filter.until {
        add("occurred_at <", Bind::Int(until));
    }
    (sql, binds)
}

fn bind_all<'q>(
    mut query: Query<'q, Any, AnyArguments>,
    binds: Vec<Bind>,
) -> Query<'q, Any, AnyArguments> {
    for bind in binds {
        query = match bind {
            Bind::Text(s) => query.bind(s),
            Bind::Int(i) => query.bind(i),
        };
    }
    query
}

/// Which way a page runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Newest first: events with a seq below the cursor.
    Older,
    /// Oldest first: events with a seq above the cursor.
    Newer,
}

/// A page of one organization's events matching `filter`, beside `cursor` (an org seq) in
/// `direction`.
pub async fn org_events(
    db: &AnyPool,
    org_id: &str,
    filter: &Filter,
    cursor: Option<i64>,
    direction: Direction,
    limit: u32,
) -> Result<Vec<OrgEvent>> {
    let (mut sql, mut binds) = (
        format!("SELECT {COLUMNS} FROM audit_events WHERE org_id = $1"),
        vec![],
    );
    let (conds, filter_binds) = conditions(filter, 2);
    sql.push_str(&conds);
    binds.extend(filter_binds);
    let next = 2 + binds.len();
    match (direction, cursor) {
        (Direction::Older, Some(c)) => {
            sql.push_str(&format!(" AND org_seq < ${next}"));
            binds.push(Bind::Int(c));
        }
        (Direction::Newer, Some(c)) => {
            sql.push_str(&format!(" AND org_seq > ${next}"));
            binds.push(Bind::Int(c));
        }
        (_, None) => {}
    }
    sql.push_str(match direction {
        Direction::Older => " ORDER BY org_seq DESC",
        Direction::Newer => " ORDER BY org_seq ASC",
    });
    sql.push_str(&format!(" LIMIT ${}", 2 + binds.len()));
    binds.push(Bind::Int(i64::from(limit)));
    let query = bind_all(
        sqlx::query(AssertSqlSafe(sql)).bind(org_id.to_string()),
        binds,
    );
    let rows = query.fetch_all(db).await?;
    rows.iter()
        .map(|row| event(row)?.into_org_event())
        .collect()
}

/// A page of all events matching `filter` (every organization and none), oldest first, after
/// global seq `after`.
pub async fn global_events(
    db: &AnyPool,
    filter: &Filter,
    after: i64,
    limit: u32,
) -> Result<Vec<StoredEvent>> {
    let mut sql = format!("SELECT {COLUMNS} FROM audit_events WHERE seq > $1");
    let (conds, mut binds) = conditions(filter, 2);
    sql.push_str(&conds);
    sql.push_str(&format!(" ORDER BY seq ASC LIMIT ${}", 2 + binds.len()));
    binds.push(Bind::Int(i64::from(limit)));
    let rows = bind_all(sqlx::query(AssertSqlSafe(sql)).bind(after), binds)
        .fetch_all(db)
        .await?;
    rows.iter().map(event).collect()
}

/// The newest link of the global chain, if any event exists.
pub async fn global_head(db: &AnyPool) -> Result<Option<Link>> {
    let row =
        sqlx::query("SELECT seq, prev_hash, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(db)
            .await?;
    row.map(|r| {
        Ok(Link {
            seq: r.try_get("seq")?,
            prev_hash: r.try_get("prev_hash")?,
            hash: r.try_get("hash")?,
        })
    })
    .transpose()
}

/// The newest link of an organization's chain, if it has events.
pub async fn org_head(db: &AnyPool, org_id: &str) -> Result<Option<Link>> {
    let row = sqlx::query(
        "SELECT org_seq, org_prev_hash, org_hash FROM audit_events WHERE org_id = $1 ORDER BY org_seq DESC LIMIT 1",
    )
    .bind(org_id)
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        Ok(Link {
            seq: r.try_get("org_seq")?,
            prev_hash: r.try_get("org_prev_hash")?,
            hash: r.try_get("org_hash")?,
        })
    })
    .transpose()
}

/// The newest link of every organization chain whose head has no digest yet.
pub async fn unsigned_org_heads(db: &AnyPool) -> Result<Vec<(String, Link)>> {
    let rows = sqlx::query(
        "SELECT e.org_id, e.org_seq, e.org_prev_hash, e.org_hash FROM audit_events e \
         JOIN (SELECT org_id, MAX(org_seq) AS head FROM audit_events WHERE org_id IS NOT NULL GROUP BY org_id) h \
           ON e.org_id = h.org_id AND e.org_seq = h.head \
         WHERE NOT EXISTS (SELECT 1 FROM audit_digests d WHERE d.scope = e.org_id AND d.seq = e.org_seq)",
    )
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("org_id")?,
                Link {
                    seq: r.try_get("org_seq")?,
                    prev_hash: r.try_get("org_prev_hash")?,
                    hash: r.try_get("org_hash")?,
                },
            ))
        })
        .collect()
}
