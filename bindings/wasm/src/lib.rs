//! KoruDelta in the browser: the embedded store (`koru_dataplane::db::BlockingDb`) compiled to
//! WebAssembly, on a memory volume, with the Node binding's method names.
//!
//! Values cross as JSON: a JS value is `JSON.stringify`'d in and answers are `JSON.parse`'d out,
//! so numbers and strings keep exactly what the store holds. Errors are JS `Error`s with a
//! `.code`, the HTTP API's error code. The store commits inline (no threads in the browser), so
//! every call finishes before it returns; `startWithPath` still answers a Promise, as in Node.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use js_sys::{JSON, Promise, Reflect};
use koru_dataplane::db::{BatchKey, BatchWrite, BlockingDb, DbError, Options};
use koru_dataplane::wal::storage::MemoryStorage;
use serde::Serialize;
use wasm_bindgen::prelude::*;

thread_local! {
    /// One memory volume per path for the page's life: opening a path again after `close`
    /// finds what was written (a restart), as a directory would.
    static VOLUMES: RefCell<HashMap<String, MemoryStorage>> = RefCell::new(HashMap::new());
}

/// A JS `Error` carrying `code`.
fn js_error(code: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    // Setting a property on a fresh Error object cannot fail.
    let _ = Reflect::set(&err, &"code".into(), &code.into());
    err.into()
}

fn db_error(e: DbError) -> JsValue {
    js_error(e.code(), &e.to_string())
}

/// JSON text of a JS value (`bad_request` for what JSON cannot hold, such as `undefined`).
fn to_json(value: &JsValue, what: &str) -> Result<String, JsValue> {
    JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| js_error("bad_request", &format!("{what} is not JSON-serializable")))
}

/// A JS value of an answer, through its JSON text.
fn to_js(answer: &impl Serialize) -> Result<JsValue, JsValue> {
    let text = serde_json::to_string(answer).map_err(|e| js_error("internal", &e.to_string()))?;
    parse(&text)
}

fn parse(text: &str) -> Result<JsValue, JsValue> {
    JSON::parse(text).map_err(|_| js_error("internal", "the store answered text that is not JSON"))
}

/// A version read by `get` or `getAt`: `.value()` is the value, the other fields its version.
#[wasm_bindgen]
pub struct Entry {
    inner: koru_dataplane::db::Entry,
}

#[wasm_bindgen]
impl Entry {
    /// The value, as a JS value.
    pub fn value(&self) -> Result<JsValue, JsValue> {
        parse(self.inner.value.get())
    }

    /// The version's id (`"<lsn>.<op>"`).
    #[wasm_bindgen(getter, js_name = versionId)]
    pub fn version_id(&self) -> JsValue {
        self.field("version_id")
    }

    /// Commit time, RFC 3339 UTC with microseconds.
    #[wasm_bindgen(getter)]
    pub fn timestamp(&self) -> JsValue {
        self.field("timestamp")
    }

    /// The version this one superseded, or null.
    #[wasm_bindgen(getter, js_name = previousVersion)]
    pub fn previous_version(&self) -> JsValue {
        self.field("previous_version")
    }

    /// The HTTP API's body for this read: `{value, version_id, timestamp, previous_version}`.
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner)
    }

    fn field(&self, name: &str) -> JsValue {
        self.to_json()
            .ok()
            .and_then(|o| Reflect::get(&o, &name.into()).ok())
            .unwrap_or(JsValue::NULL)
    }
}

/// The embedded database on a memory volume.
#[wasm_bindgen]
pub struct KoruDelta {
    /// Closing it (`BlockingDb::close`) drops the store, which releases its volume's lock, so the
    /// path can be opened again at once (JS frees the wrapper only when it is collected).
    db: BlockingDb,
}

#[wasm_bindgen]
impl KoruDelta {
    /// The database (a closed one answers `shutting_down`).
    fn db(&self) -> Result<&BlockingDb, JsValue> {
        Ok(&self.db)
    }

    /// Opens (or creates) the database named `path` (a Promise, as in Node).
    #[wasm_bindgen(js_name = startWithPath)]
    pub fn start_with_path(path: String) -> Promise {
        match KoruDelta::open(path) {
            Ok(db) => Promise::resolve(&JsValue::from(db)),
            Err(e) => Promise::reject(&e),
        }
    }

    /// Opens (or creates) the database named `path`, synchronously.
    pub fn open(path: String) -> Result<KoruDelta, JsValue> {
        let volume = VOLUMES.with(|v| v.borrow_mut().entry(path.clone()).or_default().clone());
        let options = Options::new(path).storage(Arc::new(volume));
        let db = BlockingDb::open(options).map_err(db_error)?;
        Ok(KoruDelta { db })
    }

    /// Writes `value` as the key's new version; with `ifMatch`, only if that is still the latest.
    pub fn put(
        &self,
        namespace: &str,
        key: &str,
        value: JsValue,
        if_match: Option<String>,
    ) -> Result<JsValue, JsValue> {
        let json = to_json(&value, "the value")?;
        let written = self
            .db()?
            .put(namespace, key, &json, if_match.as_deref())
            .map_err(db_error)?;
        to_js(&written)
    }

    /// Writes a delete version.
    pub fn delete(
        &self,
        namespace: &str,
        key: &str,
        if_match: Option<String>,
    ) -> Result<JsValue, JsValue> {
        let written = self
            .db()?
            .delete(namespace, key, if_match.as_deref())
            .map_err(db_error)?;
        to_js(&written)
    }

    /// The latest version; `not_found` when absent or deleted.
    pub fn get(&self, namespace: &str, key: &str) -> Result<Entry, JsValue> {
        let inner = self.db()?.get(namespace, key).map_err(db_error)?;
        Ok(Entry { inner })
    }

    /// The version current at `at` (RFC 3339).
    #[wasm_bindgen(js_name = getAt)]
    pub fn get_at(&self, namespace: &str, key: &str, at: &str) -> Result<Entry, JsValue> {
        let inner = self.db()?.get_at(namespace, key, at).map_err(db_error)?;
        Ok(Entry { inner })
    }

    /// A page of the key's versions: `{versions, next_cursor}`.
    pub fn history(
        &self,
        namespace: &str,
        key: &str,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> Result<JsValue, JsValue> {
        let page = self
            .db()?
            .history(namespace, key, cursor.as_deref(), limit.map(|l| l as usize))
            .map_err(db_error)?;
        to_js(&page)
    }

    /// Answers a query (the HTTP API's query body, as an object or JSON text).
    pub fn query(&self, namespace: &str, query: JsValue) -> Result<JsValue, JsValue> {
        let text = match query.as_string() {
            Some(text) => text,
            None => to_json(&query, "the query")?,
        };
        let answer = self.db()?.query(namespace, &text).map_err(db_error)?;
        parse(&answer)
    }

    /// Writes many keys atomically: `[{namespace, key, value} | {namespace, key, delete: true}]`.
    #[wasm_bindgen(js_name = batchPut)]
    pub fn batch_put(&self, writes: JsValue) -> Result<JsValue, JsValue> {
        let text = to_json(&writes, "the writes")?;
        let writes = BatchWrite::parse_list(&text).map_err(db_error)?;
        let written = self.db()?.batch_put(writes).map_err(db_error)?;
        to_js(&written)
    }

    /// Reads many keys, each now or as of its own `at`: `{results: [{namespace, key, found, ...}]}`.
    #[wasm_bindgen(js_name = batchGet)]
    pub fn batch_get(&self, keys: JsValue) -> Result<JsValue, JsValue> {
        let text = to_json(&keys, "the keys")?;
        let keys = BatchKey::parse_list(&text).map_err(db_error)?;
        let results = self.db()?.batch_get(keys).map_err(db_error)?;
        to_js(&serde_json::json!({ "results": results }))
    }

    /// Committed changes after LSN `since`: `{changes, next_since, last_lsn}`.
    pub fn changes(&self, since: Option<f64>, limit: Option<u32>) -> Result<JsValue, JsValue> {
        let since = since.unwrap_or(0.0);
        if !(since >= 0.0 && since.fract() == 0.0) {
            return Err(js_error("bad_request", "since must be a whole number >= 0"));
        }
        let page = self
            .db()?
            .changes(since as u64, limit.map(|l| l as usize))
            .map_err(db_error)?;
        to_js(&page)
    }

    /// A page of live keys: `{keys, next_cursor}`.
    pub fn keys(
        &self,
        namespace: &str,
        prefix: Option<String>,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> Result<JsValue, JsValue> {
        let page = self
            .db()?
            .keys(
                namespace,
                prefix.as_deref().unwrap_or(""),
                cursor.as_deref(),
                limit.map(|l| l as usize),
            )
            .map_err(db_error)?;
        to_js(&page)
    }

    /// Namespaces with at least one live key.
    pub fn namespaces(&self) -> Result<JsValue, JsValue> {
        to_js(&self.db()?.namespaces().map_err(db_error)?)
    }

    /// Closes the database; its volume keeps the data for a later `startWithPath` of the path.
    pub fn close(&self) {
        self.db.close();
    }

    /// Forgets the volume of `path`: a later `startWithPath(path)` starts empty (a database open
    /// on it keeps its data until closed).
    #[wasm_bindgen(js_name = destroy)]
    pub fn destroy(path: &str) {
        VOLUMES.with(|v| v.borrow_mut().remove(path));
    }
}
