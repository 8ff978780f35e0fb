//! The data plane under test: a `koru-dataplane` child process, loaded through the batch API, and
//! the calls the figures make to it (index creation and status, queries, one PUT).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use koru_testkit::{Process, ProcessSpec, StartError};
use serde_json::{Value, json};

use crate::error::BenchError;

/// Writes per batch request while loading (the server takes up to 10,000).
pub const LOAD_BATCH: u64 = 5_000;
/// Batch requests in flight while loading: one per core keeps the server busy.
const LOAD_IN_FLIGHT: u64 = 2;
/// How long a server may take to print its URL.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long indexes may take to become ready after the load.
const READY_LIMIT: Duration = Duration::from_secs(600);

/// A running server and a client for it.
pub struct Server {
    /// The child; killed when dropped.
    process: Process,
    http: reqwest::Client,
}

/// A JSON answer, or `<status>: <body>` / the transport error.
pub type Answer = Result<Value, String>;

impl Server {
    /// Starts `koru-dataplane` on a free loopback port with its data under `dir`.
    pub fn start(binary: &Path, dir: &Path) -> Result<Server, BenchError> {
        let log = dir.join("server.log");
        let spec = ProcessSpec::dataplane(binary)
            .name("koru-dataplane (query benchmark)")
            .clear_koru_env()
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .env("KORU_LOG", "warn")
            .start_timeout(START_LIMIT)
            .log_file(&log);
        let process = Process::try_start(spec).map_err(|e| match e {
            StartError::Exited(exited) => BenchError::Target(format!(
                "koru-dataplane exited before it was ready ({}): {}",
                exited.status, exited.stderr
            )),
            other => BenchError::Target(other.to_string()),
        })?;
        // reqwest is built with rustls but no provider; plain http still wants one named.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| BenchError::Target(format!("building the HTTP client: {e}")))?;
        Ok(Server { process, http })
    }

    /// The base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        self.process.url()
    }

    /// The server's resident memory, bytes (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_bytes(&self) -> Option<u64> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.process.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Sends a request with an optional JSON body; the answer's JSON on 2xx.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.url()));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {}", text.trim()));
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| format!("{status} with a body that is not JSON: {e}"))
    }

    /// `POST /api/v1/{ns}/query`.
    pub async fn query(&self, namespace: &str, body: &Value) -> Answer {
        self.call(
            reqwest::Method::POST,
            &format!("/api/v1/{namespace}/query"),
            Some(body),
        )
        .await
    }

    /// `POST /api/v1/{ns}/indexes` with `def`.
    pub async fn create_index(&self, namespace: &str, def: Value) -> Answer {
        self.call(
            reqwest::Method::POST,
            &format!("/api/v1/{namespace}/indexes"),
            Some(&def),
        )
        .await
    }

    /// Waits until every index of `namespace` is ready; the reason when one failed, when the
    /// list cannot be read, or when the wait runs out.
    pub async fn wait_ready(&self, namespace: &str) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let list = self
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/{namespace}/indexes"),
                    None,
                )
                .await?;
            let indexes = list["indexes"].as_array().cloned().unwrap_or_default();
            let mut pending = None;
            for index in &indexes {
                // The status is `{"state": "ready"}` (the contract's IndexStatus) or a bare string.
                let status = &index["status"];
                let state = status["state"].as_str().or(status.as_str()).unwrap_or("");
                match state {
                    "ready" => {}
                    "failed" => return Err(format!("index {} failed: {status}", index["name"])),
                    _ => pending = Some(index["name"].to_string()),
                }
            }
            let Some(name) = pending else {
                return Ok(());
            };
            if started.elapsed() > READY_LIMIT {
                return Err(format!("index {name} was not ready within {READY_LIMIT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// One PUT; its answer (with the commit `timestamp`).
    pub async fn put(&self, namespace: &str, key: &str, value: Value) -> Answer {
        let body = json!({ "value": value });
        self.call(
            reqwest::Method::PUT,
            &format!("/api/v1/{namespace}/{key}"),
            Some(&body),
        )
        .await
    }

    /// Writes documents `range` of a namespace through `POST /api/v1/batch`, [`LOAD_BATCH`] a
    /// request, [`LOAD_IN_FLIGHT`] requests at a time; `doc(i)` gives key and JSON text.
    pub async fn load(
        self: &Arc<Self>,
        namespace: &str,
        range: std::ops::Range<u64>,
        doc: fn(u64, u64) -> (String, String),
        param: u64,
    ) -> Result<(), BenchError> {
        let next = Arc::new(AtomicU64::new(range.start));
        let mut tasks = Vec::new();
        for _ in 0..LOAD_IN_FLIGHT {
            let (server, next, namespace) =
                (Arc::clone(self), Arc::clone(&next), namespace.to_string());
            let end = range.end;
            tasks.push(tokio::spawn(async move {
                loop {
                    let first = next.fetch_add(LOAD_BATCH, Ordering::SeqCst);
                    if first >= end {
                        return Ok(());
                    }
                    let body =
                        batch_body(&namespace, first..(first + LOAD_BATCH).min(end), doc, param);
                    let response = server
                        .http
                        .post(format!("{}/api/v1/batch", server.url()))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| BenchError::Target(format!("loading {namespace}: {e}")))?;
                    let status = response.status();
                    if !status.is_success() {
                        let text = response.text().await.unwrap_or_default();
                        return Err(BenchError::Target(format!(
                            "loading {namespace} from {first}: {status}: {text}"
                        )));
                    }
                }
            }));
        }
        for task in tasks {
            task.await
                .map_err(|e| BenchError::Target(format!("load task failed: {e}")))??;
        }
        Ok(())
    }
}

/// A batch body writing documents `range` of `namespace`.
fn batch_body(
    namespace: &str,
    range: std::ops::Range<u64>,
    doc: fn(u64, u64) -> (String, String),
    param: u64,
) -> String {
    let mut body = String::with_capacity(256 * (range.end - range.start) as usize + 16);
    body.push_str("{\"writes\":[");
    for (n, i) in range.enumerate() {
        if n > 0 {
            body.push(',');
        }
        let (key, value) = doc(i, param);
        body.push_str(&format!(
            "{{\"namespace\":\"{namespace}\",\"key\":\"{key}\",\"value\":{value}}}"
        ));
    }
    body.push_str("]}");
    body
}
