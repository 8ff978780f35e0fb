//! Operational endpoints: liveness, readiness, and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;

/// `GET /healthz`: the process is serving.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 while writes are accepted, 503 once the store is read-only.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let stats = state.store.stats();
    let read_only = state.store.is_read_only();
    let status = if read_only {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = json!({
        "status": if read_only { "read_only" } else { "ready" },
        "read_only": read_only,
        "last_lsn": stats.applied_lsn,
    });
    (status, Json(body))
}

/// `GET /metrics`: Prometheus/OpenMetrics text.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let stats = state.store.stats();
    let m = &state.metrics;
    m.keys.set(stats.live_keys as i64);
    m.versions.set(stats.versions as i64);
    m.last_lsn.set(stats.applied_lsn as i64);
    m.read_only.set(i64::from(state.store.is_read_only()));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}
