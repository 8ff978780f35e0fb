//! The conformance vectors (`bindings/conformance/*.json`) against the Rust library
//! (`koru_dataplane::db::BlockingDb`) and the HTTP server (a real `koru-dataplane` child): the
//! reference runner every binding's runner mirrors. Each vector runs on a fresh database.

mod common;

use std::path::PathBuf;

use koru_dataplane::db::{BatchKey, BatchWrite, BlockingDb, DbError};
use serde_json::{Map, Value, json};

use common::Server;

/// Where the vectors live.
fn vectors() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bindings/conformance");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("bindings/conformance exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 8,
        "expected the conformance vectors in {dir:?}"
    );
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable vector");
            let vector: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            (p.display().to_string(), vector)
        })
        .collect()
}

/// One way into the database: runs an op and gives its canonical result or its error code.
trait Runner {
    fn call(&mut self, step: &Value) -> Result<Value, String>;
}

/// Runs every step of `vector`, panicking with the file, step and what differed.
fn run_vector(file: &str, vector: &Value, runner: &mut dyn Runner) {
    let mut saved = Map::new();
    let steps = vector["steps"].as_array().expect("steps");
    for (i, raw) in steps.iter().enumerate() {
        let step = substitute(raw, &saved);
        let at = format!("{file}: step {i} ({})", step["op"]);
        let outcome = runner.call(&step);
        match (&outcome, step.get("expect_error")) {
            (Err(code), Some(expected)) => {
                assert_eq!(Some(code.as_str()), expected.as_str(), "{at}: error code")
            }
            (Ok(result), Some(expected)) => {
                panic!("{at}: expected error {expected}, got {result}")
            }
            (Err(code), None) => panic!("{at}: failed with {code}"),
            (Ok(result), None) => {
                if let Some(expected) = step.get("expect")
                    && let Err(why) = matches(expected, Some(result), "$")
                {
                    panic!("{at}: {why}\n  expected {expected}\n  got      {result}");
                }
                if let Some(name) = step.get("save").and_then(Value::as_str) {
                    saved.insert(name.to_string(), result.clone());
                }
            }
        }
    }
}

/// Replaces every `"$name.field.path"` string with the saved value it names.
fn substitute(value: &Value, saved: &Map<String, Value>) -> Value {
    match value {
        Value::String(s) if s.starts_with('$') && s != "$any" => {
            let mut parts = s[1..].split('.');
            let name = parts.next().unwrap_or_default();
            let mut found = saved
                .get(name)
                .unwrap_or_else(|| panic!("{s}: nothing saved as {name:?}"));
            for part in parts {
                found = match part.parse::<usize>() {
                    Ok(i) => &found[i],
                    Err(_) => &found[part],
                };
            }
            found.clone()
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, saved)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, saved)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The vectors' matching rule: objects by subset, arrays element by element, numbers as numbers,
/// an expected `null` also matching an absent key, `"$any"` matching anything present.
fn matches(expected: &Value, actual: Option<&Value>, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::String(s), Some(_)) if s == "$any" => Ok(()),
        (Value::String(s), None) if s == "$any" => Err(format!("{path}: missing")),
        (Value::Null, None | Some(Value::Null)) => Ok(()),
        (_, None) => Err(format!("{path}: missing")),
        (Value::Object(want), Some(Value::Object(got))) => {
            for (k, v) in want {
                matches(v, got.get(k), &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(want), Some(Value::Array(got))) => {
            if want.len() != got.len() {
                return Err(format!(
                    "{path}: {} elements, expected {}",
                    got.len(),
                    want.len()
                ));
            }
            for (i, (w, g)) in want.iter().zip(got).enumerate() {
                matches(w, Some(g), &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(w), Some(Value::Number(g))) if w.as_f64() == g.as_f64() => Ok(()),
        (w, Some(g)) if w == g => Ok(()),
        (w, Some(g)) => Err(format!("{path}: {g} is not {w}")),
    }
}

fn text<'a>(step: &'a Value, field: &str) -> &'a str {
    step[field].as_str().unwrap_or_default()
}

fn opt_text<'a>(step: &'a Value, field: &str) -> Option<&'a str> {
    step.get(field).and_then(Value::as_str)
}

fn opt_usize(step: &Value, field: &str) -> Option<usize> {
    step.get(field).and_then(Value::as_u64).map(|n| n as usize)
}

/// The library, as the bindings use it.
struct Embedded {
    db: BlockingDb,
    _dir: tempfile::TempDir,
}

impl Embedded {
    fn new() -> Embedded {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = BlockingDb::open_path(dir.path()).expect("open");
        Embedded { db, _dir: dir }
    }

    fn run(&self, step: &Value) -> Result<Value, DbError> {
        let (ns, key) = (text(step, "namespace"), text(step, "key"));
        let value = |v: &Value| v.to_string();
        Ok(match text(step, "op") {
            "put" => canonical(&self.db.put(
                ns,
                key,
                &value(&step["value"]),
                opt_text(step, "if_match"),
            )?),
            "delete" => canonical(&self.db.delete(ns, key, opt_text(step, "if_match"))?),
            "get" => canonical(&self.db.get(ns, key)?),
            "get_at" => canonical(&self.db.get_at(ns, key, text(step, "at"))?),
            "history" => canonical(&self.db.history(
                ns,
                key,
                opt_text(step, "cursor"),
                opt_usize(step, "limit"),
            )?),
            "query" => serde_json::from_str(&self.db.query(ns, &step["query"].to_string())?)
                .expect("the answer is JSON"),
            "batch_put" => {
                let writes = BatchWrite::parse_list(&step["writes"].to_string())?;
                canonical(&self.db.batch_put(writes)?)
            }
            "batch_get" => {
                let keys = BatchKey::parse_list(&step["keys"].to_string())?;
                json!({ "results": canonical(&self.db.batch_get(keys)?) })
            }
            "changes" => canonical(&self.db.changes(
                step.get("since").and_then(Value::as_u64).unwrap_or(0),
                opt_usize(step, "limit"),
            )?),
            "keys" => canonical(&self.db.keys(
                ns,
                opt_text(step, "prefix").unwrap_or(""),
                opt_text(step, "cursor"),
                opt_usize(step, "limit"),
            )?),
            "namespaces" => json!({ "namespaces": self.db.namespaces()? }),
            other => panic!("unknown op {other}"),
        })
    }
}

impl Runner for Embedded {
    fn call(&mut self, step: &Value) -> Result<Value, String> {
        self.run(step).map_err(|e| e.code().to_string())
    }
}

/// An answer as the vectors' canonical JSON (the answer types serialize to the HTTP shapes).
fn canonical<T: serde::Serialize>(answer: &T) -> Value {
    serde_json::to_value(answer).expect("answers serialize")
}

/// The HTTP API, through a real server process.
struct Http {
    server: Server,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Http {
    fn new() -> Http {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Server::start(dir.path(), &[]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Http {
            server,
            client: common::client(),
            runtime,
            _dir: dir,
        }
    }

    fn path(segment: &str) -> String {
        url::form_urlencoded::byte_serialize(segment.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    }

    async fn send(&self, step: &Value) -> Result<Value, String> {
        let (ns, key) = (
            Self::path(text(step, "namespace")),
            Self::path(text(step, "key")),
        );
        let base = format!("{}/api/v1", self.server.url);
        let kv = format!("{base}/{ns}/{key}");
        let c = &self.client;
        let if_match = |r: reqwest::RequestBuilder| match opt_text(step, "if_match") {
            Some(v) => r.header("if-match", v),
            None => r,
        };
        let mut params: Vec<(&str, String)> = Vec::new();
        for name in ["cursor", "limit", "prefix", "since"] {
            match step.get(name) {
                Some(Value::String(s)) => params.push((name, s.clone())),
                Some(Value::Number(n)) => params.push((name, n.to_string())),
                _ => {}
            }
        }
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        let request = match text(step, "op") {
            "put" => if_match(c.put(&kv).json(&json!({ "value": step["value"] }))),
            "delete" => if_match(c.delete(&kv)),
            "get" => c.get(&kv),
            "get_at" => c.get(format!("{kv}/at/{}", Self::path(text(step, "at")))),
            "history" => c.get(format!("{kv}/history?{query}")),
            "query" => c.post(format!("{base}/{ns}/query")).json(&step["query"]),
            "batch_put" => c
                .post(format!("{base}/batch"))
                .json(&json!({ "writes": step["writes"] })),
            "batch_get" => c
                .post(format!("{base}/batch/get"))
                .json(&json!({ "keys": step["keys"] })),
            "changes" => c.get(format!("{base}/changes?{query}")),
            "keys" => c.get(format!("{base}/{ns}/keys?{query}")),
            "namespaces" => c.get(format!("{base}/namespaces")),
            other => panic!("unknown op {other}"),
        };
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(body["error"]["code"].as_str().unwrap_or("?").to_string());
        }
        Ok(body)
    }
}

impl Runner for Http {
    fn call(&mut self, step: &Value) -> Result<Value, String> {
        self.runtime.block_on(self.send(step))
    }
}

#[test]
fn vectors_against_the_library() {
    for (file, vector) in vectors() {
        run_vector(&file, &vector, &mut Embedded::new());
    }
}

#[test]
fn vectors_against_the_http_server() {
    for (file, vector) in vectors() {
        run_vector(&file, &vector, &mut Http::new());
    }
}

#[test]
fn the_matcher_can_fail() {
    assert!(matches(&json!({"a": 1}), Some(&json!({"a": 2})), "$").is_err());
    assert!(matches(&json!({"a": 1}), Some(&json!({})), "$").is_err());
    assert!(matches(&json!([1]), Some(&json!([1, 2])), "$").is_err());
    assert!(matches(&json!({"a": null}), Some(&json!({})), "$").is_ok());
    assert!(matches(&json!({"a": 30}), Some(&json!({"a": 30.0, "b": 1})), "$").is_ok());
    assert!(matches(&json!({"a": "$any"}), Some(&json!({})), "$").is_err());
}

/// The async form is the blocking one on the runtime's blocking pool: same answers, same codes.
#[tokio::test]
async fn the_async_form_answers_like_the_blocking_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = koru_dataplane::Db::start_with_path(dir.path())
        .await
        .expect("open");
    let first = db
        .put("users", "alice", r#"{"name": "Alice", "age": 30}"#, None)
        .await
        .expect("put");
    db.put("users", "alice", r#"{"age": 31}"#, Some(&first.version_id))
        .await
        .expect("compare-and-set over the version read");
    let stale = db
        .put("users", "alice", "1", Some(&first.version_id))
        .await
        .expect_err("the version moved on");
    assert_eq!(stale.code(), "version_mismatch");
    let now = db.get("users", "alice").await.expect("get");
    assert_eq!(
        now.value.get(),
        r#"{"age": 31}"#,
        "values come back byte for byte"
    );
    let then = db
        .get_at("users", "alice", &first.timestamp)
        .await
        .expect("get_at");
    assert_eq!(then.version_id, first.version_id);
    let history = db
        .history("users", "alice", None, None)
        .await
        .expect("history");
    assert_eq!(history.versions.len(), 2);
    let answer = db
        .query(
            "users",
            r#"{"filter": {"field": "age", "op": "gt", "value": 30}}"#,
        )
        .await
        .expect("query");
    let answer: Value = serde_json::from_str(&answer).expect("JSON answer");
    assert_eq!(answer["total"], 1);
    let missing = db.get("users", "bob").await.expect_err("absent");
    assert_eq!(missing.code(), "not_found");
    db.close().await;
    let closed = db.put("users", "x", "1", None).await.expect_err("closed");
    assert_eq!(closed.code(), "shutting_down");
}

/// `close` on any clone ends the database for all of them, reads included, and releases the data
/// directory at once, so the same process can open it again while old clones still exist.
#[test]
fn close_ends_every_clone_and_releases_the_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = BlockingDb::open_path(dir.path()).expect("open");
    let clone = db.clone();
    db.put("n", "k", "1", None).expect("put");
    let busy = BlockingDb::open_path(dir.path()).err().map(|e| e.code());
    assert_eq!(busy, Some("locked"), "one store per directory");
    clone.close();
    assert_eq!(db.get("n", "k").unwrap_err().code(), "shutting_down");
    assert_eq!(db.namespaces().unwrap_err().code(), "shutting_down");
    assert_eq!(
        db.put("n", "k", "2", None).unwrap_err().code(),
        "shutting_down"
    );
    let again = BlockingDb::open_path(dir.path()).expect("the directory is free again");
    assert_eq!(again.get("n", "k").expect("kept").value.get(), "1");
}
