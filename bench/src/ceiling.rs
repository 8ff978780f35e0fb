//! The "ceiling" server: bare axum doing only what every PUT must (route, read the body, parse the
//! JSON with serde_json, answer a small JSON) and every GET must (route, look the key up, answer
//! its value in the versioned shape), so the real server's rates can be read as a share of what
//! the framework allows on this machine.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use clap::Args;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::BenchError;
use crate::load::loopback_target;

/// Arguments of `koru-bench ceiling`.
#[derive(Debug, Clone, Args)]
pub struct CeilingArgs {
    /// Loopback address to serve on; port 0 picks a free port, printed on stdout.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Keys `k0`… the GET route holds (as `koru-bench http --keys`); others answer 404.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Approximate size of each held value's JSON text (as `koru-bench http --value-bytes`).
    #[arg(long, default_value_t = 32)]
    pub value_bytes: usize,
}

/// The PUT body, parsed the way the real server parses it (the value kept as raw JSON text).
#[derive(Deserialize)]
struct PutBody {
    #[allow(dead_code)] // Parsed for its cost; the ceiling stores nothing.
    value: Box<RawValue>,
}

/// What the handlers share: a version counter, so PUT answers differ like the real server's,
/// and the values GET answers, filled at start-up and never changed (no lock, as a bare floor).
struct Ceiling {
    counter: AtomicU64,
    /// Key → (value JSON text, version id), shaped like what `koru-bench http` preloads.
    values: HashMap<String, (Box<str>, Box<str>)>,
}

impl Ceiling {
    /// `keys` values of about `value_bytes` bytes, as the load generator writes them.
    fn new(keys: u64, value_bytes: usize) -> Self {
        let pad = "x".repeat(value_bytes.saturating_sub(30).max(1));
        let values = (0..keys)
            .map(|k| {
                let value = format!("{{\"n\":{k},\"pad\":\"{pad}\"}}").into_boxed_str();
                // A batch preload puts 1,000 keys per record: the data plane's ids look alike.
                let version = format!("{}.{}", k / 1000 + 1, k % 1000).into_boxed_str();
                (format!("k{k}"), (value, version))
            })
            .collect();
        Ceiling {
            counter: AtomicU64::new(0),
            values,
        }
    }
}

/// Answers a JSON body with the right content type.
fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `PUT /api/v1/{ns}/{key}`: parse and answer, as small as a handler can be.
async fn put_value(
    State(ceiling): State<Arc<Ceiling>>,
    Path((_namespace, _key)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match serde_json::from_slice::<PutBody>(&body) {
        Ok(_) => {
            let n = ceiling.counter.fetch_add(1, Ordering::Relaxed);
            json(
                StatusCode::OK,
                format!(
                    "{{\"version_id\":\"{n}.0\",\"timestamp\":\"2026-01-01T00:00:00.000000Z\",\"previous_version\":null}}"
                ),
            )
        }
        Err(e) => json(
            StatusCode::BAD_REQUEST,
            format!(
                "{{\"error\":{{\"code\":\"bad_request\",\"message\":{:?}}}}}",
                e.to_string()
            ),
        ),
    }
}

/// `GET /api/v1/{ns}/{key}`: the key's value in the data plane's answer shape (value, version id,
/// timestamp, previous version, and the version as `ETag`), the framework's floor for a point read.
async fn get_value(
    State(ceiling): State<Arc<Ceiling>>,
    Path((_namespace, key)): Path<(String, String)>,
) -> Response {
    let Some((value, version)) = ceiling.values.get(&key) else {
        return json(
            StatusCode::NOT_FOUND,
            "{\"error\":{\"code\":\"not_found\",\"message\":\"no such key\"}}".to_string(),
        );
    };
    let mut body = String::with_capacity(value.len() + 128);
    body.push_str("{\"value\":");
    body.push_str(value);
    body.push_str(",\"version_id\":\"");
    body.push_str(version);
    body.push_str("\",\"timestamp\":\"2026-01-01T00:00:00.000000Z\",\"previous_version\":null}");
    (
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::ETAG, format!("\"{version}\"")),
        ],
        body,
    )
        .into_response()
}

/// Runs `koru-bench ceiling` until the process is killed.
pub fn run(args: CeilingArgs) -> Result<(), BenchError> {
    loopback_target(&format!("http://{}", args.listen))?;
    // The same runtime the real server uses (one worker per core), so the comparison is fair.
    let runtime = tokio::runtime::Runtime::new().map_err(BenchError::io("starting the runtime"))?;
    let ceiling = Arc::new(Ceiling::new(args.keys, args.value_bytes));
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(BenchError::io(format!("binding {}", args.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(BenchError::io("reading the bound address"))?;
        // The URL on stdout is how the bench script finds a server started on port 0.
        println!("koru-bench ceiling listening on http://{addr}");
        let app = Router::new()
            .route("/api/v1/{namespace}/{key}", put(put_value).get(get_value))
            .with_state(ceiling);
        axum::serve(listener, app)
            .await
            .map_err(BenchError::io("serving HTTP"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_values_are_the_preloads_shape_and_size() {
        let ceiling = Ceiling::new(2001, 32);
        assert_eq!(ceiling.values.len(), 2001);
        let (value, version) = &ceiling.values["k2000"];
        let parsed: serde_json::Value = serde_json::from_str(value).unwrap();
        assert_eq!(parsed["n"], 2000);
        assert_eq!(&**version, "3.0");
        // The load generator's values: {"n":<n>,"pad":"..."} of about --value-bytes.
        assert!((20..=40).contains(&value.len()), "{value}");
    }
}
