//! The native half of the `koru-delta` npm package: [`NativeDb`] wraps
//! `koru_dataplane::db::BlockingDb`, and every call runs as an N-API async work item on the libuv
//! thread pool, so the event loop never waits for the disk. Values and answers cross as JSON text
//! (the TypeScript layer parses them); failures resolve to a [`NativeError`] carrying the HTTP
//! API's error code, which the TypeScript layer turns into a `KoruDeltaError`.

mod call;

use koru_dataplane::db::BlockingDb;
use napi::bindgen_prelude::AsyncTask;
use napi_derive::napi;

use call::{Call, Op, Open};

pub use call::NativeError;

/// Opens (or creates) the database in `path` on the thread pool; resolves to a [`NativeDb`] or a
/// [`NativeError`].
#[napi]
pub fn open(path: String) -> AsyncTask<Open> {
    AsyncTask::new(Open { path })
}

/// One open embedded database; its methods resolve to the answer's JSON text or a
/// [`NativeError`].
#[napi]
pub struct NativeDb {
    /// Closing it (`BlockingDb::close`) ends it for every call and releases the data directory
    /// once calls in flight end, so the same process can open it again.
    db: BlockingDb,
}

impl NativeDb {
    /// Wraps an open database.
    pub fn new(db: BlockingDb) -> Self {
        NativeDb { db }
    }

    fn call(&self, op: Op) -> AsyncTask<Call> {
        AsyncTask::new(Call {
            db: self.db.clone(),
            op: Some(op),
        })
    }
}

#[napi]
impl NativeDb {
    /// Writes `value` (JSON text); with `if_match`, only over that version.
    #[napi]
    pub fn put(
        &self,
        namespace: String,
        key: String,
        value: String,
        if_match: Option<String>,
    ) -> AsyncTask<Call> {
        self.call(Op::Put {
            namespace,
            key,
            value,
            if_match,
        })
    }

    /// Writes a delete version; with `if_match`, only over that version.
    #[napi]
    pub fn delete(
        &self,
        namespace: String,
        key: String,
        if_match: Option<String>,
    ) -> AsyncTask<Call> {
        self.call(Op::Delete {
            namespace,
            key,
            if_match,
        })
    }

    /// The key's latest version.
    #[napi]
    pub fn get(&self, namespace: String, key: String) -> AsyncTask<Call> {
        self.call(Op::Get { namespace, key })
    }

    /// The version current at `at` (RFC 3339).
    #[napi]
    pub fn get_at(&self, namespace: String, key: String, at: String) -> AsyncTask<Call> {
        self.call(Op::GetAt { namespace, key, at })
    }

    /// A page of the key's versions, oldest first.
    #[napi]
    pub fn history(
        &self,
        namespace: String,
        key: String,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> AsyncTask<Call> {
        self.call(Op::History {
            namespace,
            key,
            cursor,
            limit,
        })
    }

    /// Answers a query body (JSON text, the HTTP API's query body).
    #[napi]
    pub fn query(&self, namespace: String, query: String) -> AsyncTask<Call> {
        self.call(Op::Query { namespace, query })
    }

    /// Writes a batch given as the JSON text of the HTTP API's `writes` array.
    #[napi]
    pub fn batch_put(&self, writes: String) -> AsyncTask<Call> {
        self.call(Op::BatchPut { writes })
    }

    /// Reads a batch given as the JSON text of the HTTP API's `keys` array.
    #[napi]
    pub fn batch_get(&self, keys: String) -> AsyncTask<Call> {
        self.call(Op::BatchGet { keys })
    }

    /// The change feed after LSN `since`.
    #[napi]
    pub fn changes(&self, since: i64, limit: Option<u32>) -> AsyncTask<Call> {
        self.call(Op::Changes { since, limit })
    }

    /// A page of live keys.
    #[napi]
    pub fn keys(
        &self,
        namespace: String,
        prefix: Option<String>,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> AsyncTask<Call> {
        self.call(Op::Keys {
            namespace,
            prefix,
            cursor,
            limit,
        })
    }

    /// Namespaces with at least one live key.
    #[napi]
    pub fn namespaces(&self) -> AsyncTask<Call> {
        self.call(Op::Namespaces)
    }

    /// Flushes and fsyncs what is queued and stops the store; later calls fail with
    /// `shutting_down`.
    #[napi]
    pub fn close(&self) -> AsyncTask<Call> {
        self.call(Op::Close)
    }
}
