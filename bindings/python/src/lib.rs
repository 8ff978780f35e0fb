//! `korudelta._native`: the Python extension module, a thin layer over
//! [`koru_dataplane::db::BlockingDb`]. It never stores anything itself.
//!
//! Everything crosses as JSON text: values go in as the caller's `json.dumps` output and answers
//! come back as the HTTP API's body for the same call, so the pure-Python layer (`korudelta`)
//! reads embedded answers and server answers with one code path. Every call releases the GIL
//! for the database work and the serialization, so other Python threads run meanwhile.

use std::path::PathBuf;

use koru_dataplane::db::{BatchFound, BatchKey, BatchWrite, BlockingDb, DbError};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use serde::Serialize;

pyo3::create_exception!(
    _native,
    NativeError,
    PyException,
    "A database call failed; `args` is `(code, message)` with the HTTP API's error code."
);

/// The Python exception for a failed call, carrying the same code the HTTP API would send.
fn db_error(e: DbError) -> PyErr {
    NativeError::new_err((e.code(), e.to_string()))
}

/// A caller's argument that is not what the call takes (same code as the HTTP API's).
fn bad(code: &'static str, message: String) -> PyErr {
    NativeError::new_err((code, message))
}

/// Why a call failed before or after the database: kept apart from [`DbError`] so the closure
/// run without the GIL returns one plain type.
enum CallError {
    Db(DbError),
    Other(&'static str, String),
}

impl From<DbError> for CallError {
    fn from(e: DbError) -> Self {
        CallError::Db(e)
    }
}

impl From<CallError> for PyErr {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Db(e) => db_error(e),
            CallError::Other(code, message) => bad(code, message),
        }
    }
}

/// The answer's JSON text (the HTTP API's body shape).
fn to_json<T: Serialize>(answer: &T) -> Result<String, CallError> {
    serde_json::to_string(answer).map_err(|e| CallError::Other("internal", e.to_string()))
}

/// `POST /api/v1/batch/get`'s answer.
#[derive(Serialize)]
struct BatchGetBody {
    results: Vec<BatchFound>,
}

/// `GET /api/v1/namespaces`'s answer.
#[derive(Serialize)]
struct NamespacesBody {
    namespaces: Vec<String>,
}

/// An open embedded database (`korudelta.Database` wraps it). `close()` ends it for every
/// caller, reads included, and releases the directory once calls in flight end
/// (`BlockingDb::close`).
#[pyclass(frozen, module = "korudelta._native")]
struct Database {
    db: BlockingDb,
}

impl Database {
    /// A handle for one call (a clone shares the store; a closed one answers `shutting_down`).
    fn handle(&self) -> PyResult<BlockingDb> {
        Ok(self.db.clone())
    }
}

#[pymethods]
impl Database {
    /// Opens (or creates) the database in the directory `path`, replaying its log.
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Database> {
        let db = py
            .detach(|| BlockingDb::open_path(path))
            .map_err(db_error)?;
        Ok(Database { db })
    }

    /// Writes `value` (JSON text); answers the `PUT` body's JSON.
    #[pyo3(signature = (namespace, key, value, if_match = None))]
    fn put(
        &self,
        py: Python<'_>,
        namespace: String,
        key: String,
        value: String,
        if_match: Option<String>,
    ) -> PyResult<String> {
        let db = self.handle()?;
        let answer = py.detach(|| -> Result<String, CallError> {
            to_json(&db.put(&namespace, &key, &value, if_match.as_deref())?)
        })?;
        Ok(answer)
    }

    /// Writes a delete version; answers the `DELETE` body's JSON.
    #[pyo3(signature = (namespace, key, if_match = None))]
    fn delete(
        &self,
        py: Python<'_>,
        namespace: String,
        key: String,
        if_match: Option<String>,
    ) -> PyResult<String> {
        let db = self.handle()?;
        let answer = py.detach(|| -> Result<String, CallError> {
            to_json(&db.delete(&namespace, &key, if_match.as_deref())?)
        })?;
        Ok(answer)
    }

    /// The key's latest version as the `GET` body's JSON.
    fn get(&self, py: Python<'_>, namespace: String, key: String) -> PyResult<String> {
        let db = self.handle()?;
        let answer =
            py.detach(|| -> Result<String, CallError> { to_json(&db.get(&namespace, &key)?) })?;
        Ok(answer)
    }

    /// The version current at `at` (RFC 3339) as the `GET .../at/{at}` body's JSON.
    fn get_at(
        &self,
        py: Python<'_>,
        namespace: String,
        key: String,
        at: String,
    ) -> PyResult<String> {
        let db = self.handle()?;
        let answer = py.detach(|| -> Result<String, CallError> {
            to_json(&db.get_at(&namespace, &key, &at)?)
        })?;
        Ok(answer)
    }

    /// A page of the key's versions as the history body's JSON.
    #[pyo3(signature = (namespace, key, cursor = None, limit = None))]
    fn history(
        &self,
        py: Python<'_>,
        namespace: String,
        key: String,
        cursor: Option<String>,
        limit: Option<usize>,
    ) -> PyResult<String> {
        let db = self.handle()?;
        let answer = py.detach(|| -> Result<String, CallError> {
            to_json(&db.history(&namespace, &key, cursor.as_deref(), limit)?)
        })?;
        Ok(answer)
    }

    /// Answers a query body (JSON text) with the `POST /{ns}/query` answer's JSON.
    fn query(&self, py: Python<'_>, namespace: String, query: String) -> PyResult<String> {
        let db = self.handle()?;
        let answer = py.detach(|| db.query(&namespace, &query));
        answer.map_err(db_error)
    }

    /// Writes a JSON array of `{"namespace", "key", "value"}` / `{..., "delete": true}` as one
    /// record; answers the `POST /batch` body's JSON.
    fn batch_put(&self, py: Python<'_>, writes: String) -> PyResult<String> {
        let db = self.handle()?;
        let answer = py.detach(|| -> Result<String, CallError> {
            let batch = BatchWrite::parse_list(&writes)?;
            to_json(&db.batch_put(batch)?)
        })?;
        Ok(answer)
    }

    /// Reads a JSON array of `{"namespace", "key", "at"?}`; answers the `POST /batch/get`
    /// body's JSON.
    fn batch_get(&self, py: Python<'_>, keys: String) -> PyResult<String> {
        let db = self.handle()?;
        let answer = py.detach(|| -> Result<String, CallError> {
            let keys = BatchKey::parse_list(&keys)?;
            let results = db.batch_get(keys)?;
            to_json(&BatchGetBody { results })
        })?;
        Ok(answer)
    }

    /// Committed records after LSN `since` as the change feed body's JSON.
    #[pyo3(signature = (since = 0, limit = None))]
    fn changes(&self, py: Python<'_>, since: u64, limit: Option<usize>) -> PyResult<String> {
        let db = self.handle()?;
        let answer =
            py.detach(|| -> Result<String, CallError> { to_json(&db.changes(since, limit)?) })?;
        Ok(answer)
    }

    /// A page of live keys as the keys body's JSON.
    #[pyo3(signature = (namespace, prefix = String::new(), cursor = None, limit = None))]
    fn keys(
        &self,
        py: Python<'_>,
        namespace: String,
        prefix: String,
        cursor: Option<String>,
        limit: Option<usize>,
    ) -> PyResult<String> {
        let db = self.handle()?;
        let answer = py.detach(|| -> Result<String, CallError> {
            to_json(&db.keys(&namespace, &prefix, cursor.as_deref(), limit)?)
        })?;
        Ok(answer)
    }

    /// Namespaces with a live key as the namespaces body's JSON.
    fn namespaces(&self, py: Python<'_>) -> PyResult<String> {
        let db = self.handle()?;
        let answer = py.detach(|| -> Result<String, CallError> {
            to_json(&NamespacesBody {
                namespaces: db.namespaces()?,
            })
        })?;
        Ok(answer)
    }

    /// Writes and fsyncs what is queued and stops the store; later calls fail `shutting_down`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let db = self.db.clone();
        py.detach(move || db.close());
        Ok(())
    }
}

/// The module `korudelta._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Database>()?;
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    Ok(())
}
