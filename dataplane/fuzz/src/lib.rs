//! Checks shared by the fuzz targets and by `dataplane/tests/fuzz_smoke.rs`; each panics on a bug.
//!
//! [`check_record`] feeds bytes to the log record decoder: it may refuse them, never panic, and what
//! it accepts must encode back to the same bytes. [`Api::check`] sends bytes as the body of one of
//! the write and query routes through the real router: the answer must never be a 5xx and must be
//! JSON, and whatever a write accepted must be readable back through the read routes.
//!
//! [`Queries::check`] parses bytes as a v2 query body: a parse never panics, what parses serializes
//! back to the same query, and running it over a small store answers or refuses as a client
//! error, never as a server failure.
//!
//! The smoke test includes this file as a module (`#[path]`), so it uses only crates that the
//! data plane's tests can use too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use koru_dataplane::http::{AppState, app};
use koru_dataplane::metrics::Metrics;
use koru_dataplane::wal::record::{self, DecodeError, FRAME_HEADER_LEN, OpRef};
use koru_dataplane::{FsyncMode, Store, StoreConfig};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;
use tower::ServiceExt;

/// Decodes `data` as a log record, and again with its checksum made valid so the fuzzer reaches
/// the structure checks behind the CRC; panics if either decode breaks a decoder invariant.
pub fn check_record(data: &[u8]) {
    check_decode(data);
    if let Some(fixed) = with_valid_checksum(data) {
        check_decode(&fixed);
    }
}

/// `data` with the frame's CRC field set to the CRC of the body it claims, if the body fits.
pub fn with_valid_checksum(data: &[u8]) -> Option<Vec<u8>> {
    let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let end = FRAME_HEADER_LEN.checked_add(len)?;
    let body = data.get(FRAME_HEADER_LEN..end)?;
    let mut fixed = data.to_vec();
    fixed[4..8].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    Some(fixed)
}

/// One decode: errors must describe the input truthfully, and a decoded record must re-encode to
/// exactly the bytes it came from, with every value offset pointing at its value.
fn check_decode(data: &[u8]) {
    let rec = match record::decode(data) {
        Ok(rec) => rec,
        Err(DecodeError::Truncated { needed, available }) => {
            assert_eq!(available, data.len(), "Truncated reports the wrong length");
            assert!(needed > available, "Truncated but {needed} <= {available}");
            return;
        }
        Err(DecodeError::Checksum { stored, computed }) => {
            assert_ne!(stored, computed, "checksum error for matching checksums");
            return;
        }
        Err(DecodeError::Malformed(_)) => return,
    };
    assert!(
        rec.encoded_len <= data.len(),
        "record longer than its input"
    );
    let ops: Vec<OpRef<'_>> = rec.ops.iter().map(|o| o.op).collect();
    let mut encoded = Vec::new();
    let mut offsets = Vec::new();
    record::encode_with(
        &mut encoded,
        rec.lsn,
        rec.timestamp_micros,
        rec.meta,
        &ops,
        &mut offsets,
    );
    assert_eq!(
        encoded,
        data[..rec.encoded_len],
        "re-encoding a decoded record gives different bytes"
    );
    let decoded_offsets: Vec<u32> = rec.ops.iter().map(|o| o.value_offset as u32).collect();
    assert_eq!(offsets, decoded_offsets, "value offsets differ");
    for o in &rec.ops {
        assert_eq!(
            &data[o.value_offset..o.value_offset + o.op.value.len()],
            o.op.value,
            "a value offset does not point at the value"
        );
    }
    // A torn write leaves a prefix: no strict prefix of a record may decode.
    assert!(
        record::decode(&data[..rec.encoded_len - 1]).is_err(),
        "a record missing its last byte still decodes"
    );
}

/// The routes whose bodies are fuzzed: the first input byte picks one, the rest is the body.
pub const ROUTES: [(&str, &str); 5] = [
    ("PUT", "/api/v1/fz/k"),
    ("POST", "/api/v1/batch"),
    ("POST", "/api/v1/batch/get"),
    ("POST", "/api/v1/fz/query"),
    ("POST", "/api/v1/views"),
];

/// Inputs one store serves before it is replaced, so histories and namespaces stay small and a
/// long run does not slow down as the store fills.
const INPUTS_PER_STORE: usize = 5_000;

/// A store in a temporary directory and the router over it.
struct Generation {
    router: Router,
    store: Store,
    inputs: usize,
    _dir: tempfile::TempDir,
}

impl Generation {
    fn new() -> Generation {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let mut config = StoreConfig::new(dir.path());
        // Durability is not under test here; fsyncs would only slow the fuzzer down.
        config.fsync = FsyncMode::Off;
        let metrics = Arc::new(Metrics::default());
        let (store, _) =
            Store::open(config, Arc::clone(&metrics.store)).expect("opening a fresh store");
        let router = app(AppState::new(store.clone(), metrics, None, None));
        Generation {
            router,
            store,
            inputs: 0,
            _dir: dir,
        }
    }
}

/// The real router over a real store, driven on a current-thread runtime.
pub struct Api {
    runtime: tokio::runtime::Runtime,
    current: Mutex<Option<Generation>>,
}

impl Default for Api {
    fn default() -> Self {
        Api::new()
    }
}

/// A response, read to the end.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl Api {
    /// A fresh store and router.
    pub fn new() -> Api {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building a runtime");
        Api {
            runtime,
            current: Mutex::new(None),
        }
    }

    /// Sends `data[1..]` as the body of the route `data[0]` picks and checks the answer.
    pub fn check(&self, data: &[u8]) {
        if let Some((&route, body)) = data.split_first() {
            self.check_route(usize::from(route) % ROUTES.len(), body);
        }
    }

    /// Sends `body` to `ROUTES[route]`, checks the answer, and reads back whatever it wrote.
    pub fn check_route(&self, route: usize, body: &[u8]) {
        let (method, path) = ROUTES[route];
        self.with_router(|router| async move {
            let answer = send(&router, method, path, body.to_vec()).await;
            if answer.status.is_success() {
                read_back(&router, route, body, &answer).await;
            }
        });
    }

    /// Sends any request with the same checks, for tests to look at the store: (status, body).
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> (StatusCode, Vec<u8>) {
        self.with_router(|router| async move {
            let answer = send(&router, method, path, body.to_vec()).await;
            (answer.status, answer.body)
        })
    }

    /// Runs `f` on the current router, replacing the store first when it has served enough inputs.
    fn with_router<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce(Router) -> Fut,
        Fut: Future<Output = T>,
    {
        let router = {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            if current
                .as_ref()
                .is_some_and(|g| g.inputs >= INPUTS_PER_STORE)
                && let Some(old) = current.take()
            {
                old.store.close();
            }
            let generation = current.get_or_insert_with(Generation::new);
            generation.inputs += 1;
            generation.router.clone()
        };
        self.runtime.block_on(f(router))
    }
}

/// Sends one request and checks the answer is not a 5xx and is JSON.
async fn send(router: &Router, method: &str, path: &str, body: Vec<u8>) -> Answer {
    let shown = String::from_utf8_lossy(&body)
        .chars()
        .take(2000)
        .collect::<String>();
    let request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("a method"))
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("a request");
    let response = router
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e: std::convert::Infallible| match e {});
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("reading the response body")
        .to_vec();
    let text = String::from_utf8_lossy(&body);
    assert!(
        !status.is_server_error(),
        "{method} {path} answered {status}: {text}\nrequest body: {shown}"
    );
    if status != StatusCode::NO_CONTENT {
        assert!(
            content_type.starts_with("application/json"),
            "{method} {path} answered {status} with content type {content_type:?}"
        );
        // Syntax only: a stored value may hold numbers too large for f64, which is still JSON.
        assert!(
            serde_json::from_slice::<IgnoredAny>(&body).is_ok(),
            "{method} {path} answered {status} with a body that is not JSON: {text}\n\
             request body: {shown}"
        );
    }
    Answer { status, body }
}

/// Percent-encodes a path segment (names may hold `/`, `?`, `%` and any other character).
fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a batch write answers, as far as the read-back needs it.
#[derive(Deserialize)]
struct BatchAnswer {
    lsn: u64,
    results: Vec<BatchResult>,
}

#[derive(Deserialize)]
struct BatchResult {
    namespace: String,
    key: String,
    version_id: String,
}

/// What the change feed answers; values stay raw so no number is out of range.
#[derive(Deserialize)]
struct ChangesAnswer {
    changes: Vec<ChangeEntry>,
}

#[derive(Deserialize)]
struct ChangeEntry {
    ops: Vec<ChangeOp>,
}

#[derive(Deserialize)]
struct ChangeOp {
    op: String,
    version_id: String,
    /// None only when the field is missing: a JSON null is `Some("null")`.
    #[serde(default, deserialize_with = "present")]
    value: Option<Box<RawValue>>,
}

/// Deserializes a field that is there, null included, as Some.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// A key's history, values raw.
#[derive(Deserialize)]
struct HistoryAnswer {
    versions: Vec<HistoryVersion>,
}

#[derive(Deserialize)]
struct HistoryVersion {
    value: Box<RawValue>,
    version_id: String,
}

/// A created view's name, as sent.
#[derive(Deserialize)]
struct ViewName {
    name: String,
}

/// Most keys of one batch whose reads are checked, to keep each input fast.
const READ_BACK_KEYS: usize = 8;

/// After a successful write, every read route over what was written must answer without a 5xx.
async fn read_back(router: &Router, route: usize, body: &[u8], answer: &Answer) {
    let empty = || b"{}".to_vec();
    match route {
        0 => {
            let history = send(router, "GET", "/api/v1/fz/k/history", Vec::new()).await;
            send(router, "GET", "/api/v1/fz/k", Vec::new()).await;
            send(router, "POST", "/api/v1/fz/query", empty()).await;
            // The change feed must carry the value that was written, not a stand-in.
            if let Ok(h) = serde_json::from_slice::<HistoryAnswer>(&history.body)
                && let Some(last) = h.versions.last()
            {
                let lsn = last.version_id.split('.').next().unwrap_or("0");
                let since = lsn.parse::<u64>().unwrap_or(1).saturating_sub(1);
                check_change(router, since, &last.version_id, last.value.get()).await;
            }
        }
        1 => {
            let Ok(batch) = serde_json::from_slice::<BatchAnswer>(&answer.body) else {
                panic!(
                    "batch answer without lsn/results: {}",
                    String::from_utf8_lossy(&answer.body)
                );
            };
            for r in batch.results.iter().take(READ_BACK_KEYS) {
                let key = format!("/api/v1/{}/{}", segment(&r.namespace), segment(&r.key));
                send(router, "GET", &key, Vec::new()).await;
                let history = send(router, "GET", &format!("{key}/history"), Vec::new()).await;
                let query = format!("/api/v1/{}/query", segment(&r.namespace));
                send(router, "POST", &query, empty()).await;
                let written = serde_json::from_slice::<HistoryAnswer>(&history.body)
                    .ok()
                    .and_then(|h| {
                        h.versions
                            .into_iter()
                            .find(|v| v.version_id == r.version_id)
                    });
                if let Some(v) = written {
                    let since = batch.lsn.saturating_sub(1);
                    check_change(router, since, &r.version_id, v.value.get()).await;
                }
            }
        }
        4 => {
            let Ok(view) = serde_json::from_slice::<ViewName>(body) else {
                panic!("a view was created from a body without a name");
            };
            let path = format!("/api/v1/views/{}", segment(&view.name));
            send(router, "GET", &path, Vec::new()).await;
            send(router, "GET", "/api/v1/views", Vec::new()).await;
            send(router, "POST", &format!("{path}/refresh"), Vec::new()).await;
            send(router, "GET", &path, Vec::new()).await;
        }
        _ => {}
    }
}

/// The change feed entry for `version` must hold the same JSON text the history shows.
async fn check_change(router: &Router, since: u64, version: &str, value: &str) {
    let path = format!("/api/v1/changes?since={since}&limit=1");
    let answer = send(router, "GET", &path, Vec::new()).await;
    let changes: ChangesAnswer = serde_json::from_slice(&answer.body).unwrap_or_else(|e| {
        panic!(
            "change feed answer does not parse ({e}): {}",
            String::from_utf8_lossy(&answer.body)
        )
    });
    let op = changes
        .changes
        .iter()
        .flat_map(|c| &c.ops)
        .find(|op| op.version_id == version)
        .unwrap_or_else(|| panic!("version {version} is missing from the change feed"));
    if op.op == "put" {
        let fed = op.value.as_ref().map_or("<missing>", |v| v.get());
        assert!(
            same_json(fed, value),
            "the change feed carries {fed} for version {version}, which holds {value}"
        );
    }
}

/// Whether two JSON texts are the same value, numbers compared exactly (serde_json's own float
/// parser may be one ULP off, so it cannot be the judge of whether a number survived).
pub fn same_json(a: &str, b: &str) -> bool {
    canonical(a, 0) == canonical(b, 0)
}

/// A JSON value with numbers parsed exactly, for comparison.
#[derive(Debug, PartialEq)]
enum Canonical {
    /// Integers, and floats with an integral value small enough to be exact.
    Integer(i128),
    /// The bits of the correctly rounded f64 of any other number.
    Float(u64),
    Array(Vec<Canonical>),
    Object(BTreeMap<String, Canonical>),
    /// Strings, booleans and null.
    Scalar(Value),
    /// What the above cannot hold (too deep, or not readable): compared as text without spaces.
    Text(String),
}

/// Parses `text` into a [`Canonical`], recursing through raw values so no number is re-parsed lossily.
fn canonical(text: &str, depth: usize) -> Canonical {
    let text = text.trim();
    let as_text = || Canonical::Text(text.split_whitespace().collect());
    if depth > 64 {
        return as_text();
    }
    match text.as_bytes().first() {
        Some(b'[') => match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(items) => Canonical::Array(
                items
                    .iter()
                    .map(|v| canonical(v.get(), depth + 1))
                    .collect(),
            ),
            Err(_) => as_text(),
        },
        Some(b'{') => match serde_json::from_str::<BTreeMap<String, &RawValue>>(text) {
            Ok(fields) => Canonical::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v.get(), depth + 1)))
                    .collect(),
            ),
            Err(_) => as_text(),
        },
        Some(b'-' | b'0'..=b'9') => {
            let integer = !text.contains(['.', 'e', 'E']);
            match (
                integer.then(|| text.parse::<i128>().ok()).flatten(),
                text.parse::<f64>(),
            ) {
                (Some(i), _) => Canonical::Integer(i),
                // JSON numbers are numbers: 100, 1e2 and 100.0 are one value, and so are 0 and -0.0.
                (None, Ok(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    Canonical::Integer(f as i128)
                }
                (None, Ok(f)) => Canonical::Float(f.to_bits()),
                (None, Err(_)) => as_text(),
            }
        }
        _ => serde_json::from_str::<Value>(text).map_or_else(|_| as_text(), Canonical::Scalar),
    }
}

/// A small store of documents for [`Queries::check`] to run parsed queries over.
pub struct Queries {
    store: Store,
    _dir: tempfile::TempDir,
}

impl Default for Queries {
    fn default() -> Self {
        Queries::new()
    }
}

impl Queries {
    /// A store holding a few documents in namespace `fz` (and `users`, for joins).
    pub fn new() -> Queries {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let mut config = StoreConfig::new(dir.path());
        config.fsync = FsyncMode::Off;
        // Small budgets, so the limits' refusals are reached too.
        config.query.max_scan = 8;
        config.query.max_groups = 3;
        config.query.max_result_bytes = 4096;
        let metrics = Arc::new(Metrics::default());
        let (store, _) =
            Store::open(config, Arc::clone(&metrics.store)).expect("opening a fresh store");
        let docs = [
            (
                "fz",
                "a",
                r#"{"age":30,"name":"alice","tags":["x"],"user_id":"u1"}"#,
            ),
            (
                "fz",
                "b",
                r#"{"age":2.5,"name":"bob","nested":{"k":null},"user_id":"u2"}"#,
            ),
            ("fz", "c", r#"{"age":"old","status":true}"#),
            ("fz", "d", r#"[1,2,3]"#),
            ("users", "u1", r#"{"id":"u1","status":"premium"}"#),
        ];
        let ops = docs
            .iter()
            .map(|(ns, key, value)| {
                let raw = RawValue::from_string((*value).to_string()).expect("valid JSON");
                koru_dataplane::WriteOp::put(*ns, *key, raw)
            })
            .collect();
        store.write_blocking(ops).expect("seeding the store");
        Queries { store, _dir: dir }
    }

    /// Parses `data` as a query body and checks the parse, the round trip and the run.
    pub fn check(&self, data: &[u8]) {
        use koru_dataplane::query::{Query, QueryError};
        let Ok(query) = serde_json::from_slice::<Query>(data) else {
            return;
        };
        let text = serde_json::to_string(&query).expect("a parsed query serializes");
        let again: Query = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("a serialized query does not parse back: {e}\n{text}"));
        assert_eq!(again, query, "a query changes through a round trip: {text}");
        let query = query.from_kdelta();
        match self.store.query_blocking("fz", &query) {
            Ok(answer) => {
                let body = serde_json::to_vec(&answer).expect("an answer serializes");
                assert!(
                    serde_json::from_slice::<IgnoredAny>(&body).is_ok(),
                    "an answer is not JSON"
                );
            }
            Err(
                QueryError::Invalid(_)
                | QueryError::NoPlan(_)
                | QueryError::NoTextIndex(_)
                | QueryError::Unsupported(_)
                | QueryError::LimitExceeded { .. },
            ) => {}
            Err(e) => panic!("query {text} failed as the server's fault: {e:?}"),
        }
    }
}
