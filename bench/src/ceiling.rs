//! The "ceiling" server: bare axum doing only what every PUT must (route, read the body, parse the
//! JSON with serde_json, answer a small JSON), so the real server's PUT rate can be read as a share
//! of what the framework allows on this machine.

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
}

/// The PUT body, parsed the way the real server parses it (the value kept as raw JSON text).
#[derive(Deserialize)]
struct PutBody {
    #[allow(dead_code)] // Parsed for its cost; the ceiling stores nothing.
    value: Box<RawValue>,
}

/// Hands out version numbers so answers differ like the real server's.
#[derive(Default)]
struct Counter(AtomicU64);

/// Answers a JSON body with the right content type.
fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `PUT /api/v1/{ns}/{key}`: parse and answer, as small as a handler can be.
async fn put_value(
    State(counter): State<Arc<Counter>>,
    Path((_namespace, _key)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match serde_json::from_slice::<PutBody>(&body) {
        Ok(_) => {
            let n = counter.0.fetch_add(1, Ordering::Relaxed);
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

/// `GET /api/v1/{ns}/{key}`: a fixed versioned value, the framework's floor for reads.
async fn get_value(Path((_namespace, _key)): Path<(String, String)>) -> Response {
    json(
        StatusCode::OK,
        "{\"value\":{\"n\":1,\"pad\":\"xx\"},\"version_id\":\"1.0\",\"timestamp\":\"2026-01-01T00:00:00.000000Z\",\"previous_version\":null}"
            .to_string(),
    )
}

/// Runs `koru-bench ceiling` until the process is killed.
pub fn run(args: CeilingArgs) -> Result<(), BenchError> {
    loopback_target(&format!("http://{}", args.listen))?;
    // The same runtime the real server uses (one worker per core), so the comparison is fair.
    let runtime = tokio::runtime::Runtime::new().map_err(BenchError::io("starting the runtime"))?;
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
            .with_state(Arc::new(Counter::default()));
        axum::serve(listener, app)
            .await
            .map_err(BenchError::io("serving HTTP"))
    })
}
