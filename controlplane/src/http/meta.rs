//! Health, readiness, the tier table and the OpenAPI document.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa::OpenApi;

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::tiers::{TIERS, Tier};

/// 200 while the process runs.
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the database answers.
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str> {
    sqlx::query("SELECT 1").execute(&state.db).await?;
    Ok("ready")
}

/// The regions a global database may span (`regions` of a new cluster).
#[utoipa::path(get, path = "/api/v1/regions", responses((status = 200, body = Vec<String>)))]
pub async fn regions() -> axum::Json<Vec<String>> {
    axum::Json(
        crate::regions::CATALOGUE
            .iter()
            .map(|r| r.to_string())
            .collect(),
    )
}

/// The tiers and their limits.
#[utoipa::path(get, path = "/api/v1/tiers", responses((status = 200, body = Vec<Tier>)))]
pub async fn tiers() -> axum::Json<Vec<Tier>> {
    axum::Json(TIERS.to_vec())
}

/// The OpenAPI 3 document.
pub async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(super::ApiDoc::openapi())
}

/// Any other path.
pub async fn not_found() -> (StatusCode, Error) {
    (
        StatusCode::NOT_FOUND,
        Error::NotFound("no such endpoint".into()),
    )
}
