//! The operator's HTTP server: `/healthz` (liveness), `/readyz` (readiness) and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::{CONTENT_TYPE, Metrics};

/// Why the HTTP server could not run.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("the metrics server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// What the probes report; shared by the server and the rest of the process.
#[derive(Debug)]
pub struct Health {
    ready: AtomicBool,
    live: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            ready: AtomicBool::new(false),
            live: AtomicBool::new(true),
        }
    }
}

impl Health {
    /// Marks the process ready (it has reached the API server) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Marks the controller (or lease loop) as stopped, which fails liveness.
    pub fn set_stopped(&self) {
        self.live.store(false, Ordering::Release);
    }
}

/// The state every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// What the probes report.
    pub health: Arc<Health>,
}

/// The router, without a socket, so tests can call it directly.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Binds `addr`; port 0 picks a free port, which [`TcpListener::local_addr`] then tells.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serves [`app`] on `listener` until the process ends.
pub async fn serve(listener: TcpListener, state: AppState) -> Result<(), HttpError> {
    axum::serve(listener, app(state)).await?;
    Ok(())
}

/// `GET /healthz`: 200 while the controller (or the wait for the Lease) is running.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.health.live.load(Ordering::Acquire) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "stopped\n")
    }
}

/// `GET /readyz`: 200 once the API server answered; leader or not.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.health.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not connected to Kubernetes\n",
        )
    }
}

/// `GET /metrics`: OpenMetrics text.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    async fn call(state: &AppState, path: &str) -> (StatusCode, String, String) {
        let response = app(state.clone())
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn probes_follow_the_health_and_metrics_are_openmetrics() {
        let state = AppState {
            metrics: Arc::new(Metrics::default()),
            health: Arc::new(Health::default()),
        };
        assert_eq!(call(&state, "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            call(&state, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.health.set_ready(true);
        assert_eq!(call(&state, "/readyz").await.0, StatusCode::OK);
        state.health.set_stopped();
        assert_eq!(
            call(&state, "/healthz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let (status, content_type, body) = call(&state, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, CONTENT_TYPE);
        assert!(body.contains("koru_operator_leader 0\n"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
    }
}
