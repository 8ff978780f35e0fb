//! `POST /api/v1/{ns}/query`: the v2 query (v1 bodies are v2 bodies), answered on the blocking
//! pool by the query engine.

use axum::Json;
use axum::extract::State;

use super::error::{ApiPath, JsonBody};
use super::{ApiError, AppState, blocking};
use crate::names;
use crate::query::{Query, QueryAnswer};

/// `POST /api/v1/{ns}/query`.
pub async fn query_namespace(
    State(state): State<AppState>,
    ApiPath(namespace): ApiPath<String>,
    JsonBody(query): JsonBody<Query>,
) -> Result<Json<QueryAnswer>, ApiError> {
    names::validate_namespace(&namespace).map_err(crate::StoreError::from)?;
    let query = query.from_kdelta();
    let store = state.store.clone();
    blocking::read(move || Ok(store.query_blocking(&namespace, &query)?))
        .await
        .map(Json)
}
