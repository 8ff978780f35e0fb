//! The work items: each [`Call`] runs one `BlockingDb` method on a libuv pool thread and hands
//! back the answer's JSON text (the HTTP API's body shape) or the error's code and message.

use koru_dataplane::db::{BatchFound, BatchKey, BatchWrite, BlockingDb, DbError};
use napi::bindgen_prelude::{Either, Env, Result, Task};
use napi_derive::napi;
use serde::Serialize;

use crate::NativeDb;

/// A failed call: the HTTP API's error code (`not_found`, `version_mismatch`, ...) and message.
#[napi(object)]
pub struct NativeError {
    /// The stable machine-readable code.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

impl From<DbError> for NativeError {
    fn from(e: DbError) -> Self {
        NativeError {
            code: e.code().to_string(),
            message: e.to_string(),
        }
    }
}

/// A failure the binding itself finds in its arguments (JSON the TypeScript layer built).
fn bad(code: &str, message: impl Into<String>) -> NativeError {
    NativeError {
        code: code.to_string(),
        message: message.into(),
    }
}

/// One database operation with its arguments, owned so it can move to a pool thread.
pub enum Op {
    /// `BlockingDb::put`.
    Put {
        namespace: String,
        key: String,
        value: String,
        if_match: Option<String>,
    },
    /// `BlockingDb::delete`.
    Delete {
        namespace: String,
        key: String,
        if_match: Option<String>,
    },
    /// `BlockingDb::get`.
    Get { namespace: String, key: String },
    /// `BlockingDb::get_at`.
    GetAt {
        namespace: String,
        key: String,
        at: String,
    },
    /// `BlockingDb::history`.
    History {
        namespace: String,
        key: String,
        cursor: Option<String>,
        limit: Option<u32>,
    },
    /// `BlockingDb::query`.
    Query { namespace: String, query: String },
    /// `BlockingDb::batch_put` over the JSON text of the writes.
    BatchPut { writes: String },
    /// `BlockingDb::batch_get` over the JSON text of the keys.
    BatchGet { keys: String },
    /// `BlockingDb::changes`.
    Changes { since: i64, limit: Option<u32> },
    /// `BlockingDb::keys`.
    Keys {
        namespace: String,
        prefix: Option<String>,
        cursor: Option<String>,
        limit: Option<u32>,
    },
    /// `BlockingDb::namespaces`.
    Namespaces,
    /// `BlockingDb::close`.
    Close,
}

/// What a call resolves to in JavaScript: the answer's JSON text, or the failure.
pub type Outcome = Either<String, NativeError>;

/// One operation on one database, run on the libuv pool.
pub struct Call {
    /// The database (a clone shares the store; a closed one answers `shutting_down`).
    pub db: BlockingDb,
    /// Taken by `compute`, which runs once.
    pub op: Option<Op>,
}

impl Task for Call {
    type Output = std::result::Result<String, NativeError>;
    type JsValue = Outcome;

    fn compute(&mut self) -> Result<Self::Output> {
        let Some(op) = self.op.take() else {
            return Ok(Err(bad("internal", "a call ran twice")));
        };
        Ok(run(&self.db, op))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(match output {
            Ok(json) => Either::A(json),
            Err(e) => Either::B(e),
        })
    }
}

/// Opening a database: replays its log on the pool.
pub struct Open {
    /// The data directory.
    pub path: String,
}

impl Task for Open {
    type Output = std::result::Result<BlockingDb, NativeError>;
    type JsValue = Either<NativeDb, NativeError>;

    fn compute(&mut self) -> Result<Self::Output> {
        Ok(BlockingDb::open_path(&self.path).map_err(NativeError::from))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(match output {
            Ok(db) => Either::A(NativeDb::new(db)),
            Err(e) => Either::B(e),
        })
    }
}

fn run(db: &BlockingDb, op: Op) -> std::result::Result<String, NativeError> {
    match op {
        Op::Put {
            namespace,
            key,
            value,
            if_match,
        } => json(db.put(&namespace, &key, &value, if_match.as_deref())),
        Op::Delete {
            namespace,
            key,
            if_match,
        } => json(db.delete(&namespace, &key, if_match.as_deref())),
        Op::Get { namespace, key } => json(db.get(&namespace, &key)),
        Op::GetAt { namespace, key, at } => json(db.get_at(&namespace, &key, &at)),
        Op::History {
            namespace,
            key,
            cursor,
            limit,
        } => json(db.history(
            &namespace,
            &key,
            cursor.as_deref(),
            limit.map(|l| l as usize),
        )),
        Op::Query { namespace, query } => Ok(db.query(&namespace, &query)?),
        Op::BatchPut { writes } => json(db.batch_put(batch_writes(&writes)?)),
        Op::BatchGet { keys } => {
            let keys = BatchKey::parse_list(&keys)?;
            found_answer(&db.batch_get(keys)?)
        }
        Op::Changes { since, limit } => {
            let since =
                u64::try_from(since).map_err(|_| bad("bad_request", "since must be 0 or more"))?;
            json(db.changes(since, limit.map(|l| l as usize)))
        }
        Op::Keys {
            namespace,
            prefix,
            cursor,
            limit,
        } => json(db.keys(
            &namespace,
            prefix.as_deref().unwrap_or(""),
            cursor.as_deref(),
            limit.map(|l| l as usize),
        )),
        Op::Namespaces => to_text(&serde_json::json!({ "namespaces": db.namespaces()? })),
        Op::Close => {
            db.close();
            Ok("null".into())
        }
    }
}

/// The writes of a batch from the JSON text of the HTTP API's `writes` array.
fn batch_writes(text: &str) -> std::result::Result<Vec<BatchWrite>, NativeError> {
    Ok(BatchWrite::parse_list(text)?)
}

/// `POST /api/v1/batch/get`'s answer.
fn found_answer(found: &[BatchFound]) -> std::result::Result<String, NativeError> {
    to_text(&serde_json::json!({ "results": found }))
}

fn json<T: Serialize>(
    answer: std::result::Result<T, DbError>,
) -> std::result::Result<String, NativeError> {
    to_text(&answer?)
}

fn to_text<T: Serialize + ?Sized>(answer: &T) -> std::result::Result<String, NativeError> {
    serde_json::to_string(answer).map_err(|e| bad("internal", e.to_string()))
}
