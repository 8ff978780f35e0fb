//! Reads that touch segment files run on tokio's blocking pool, so a slow disk or a long read never
//! stalls the async workers that serve every other request.

use axum::http::StatusCode;

use super::ApiError;

/// Runs `read` on the blocking pool and hands back its answer.
pub async fn read<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(read).await.map_err(|e| {
        tracing::error!(error = %e, "a blocking read panicked or was cancelled");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the read failed; see the server log",
        )
    })?
}
