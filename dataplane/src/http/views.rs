//! Named views: stored queries (any v2 query) answered as of their last refresh.
//!
//! A view's definition is a key in the internal namespace `_koru_views`. Refreshing writes the
//! definition again, and a query of the view reads the source namespace as of that version's
//! timestamp, so views are materialized by time travel instead of by copying data.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ApiPath, JsonBody};
use super::{ApiError, AppState, blocking, json};
use crate::names;
use crate::query::{Filter, FilterExpr, Query, QueryAnswer};
use crate::store::{Store, WriteOp};

/// Internal namespace holding view definitions.
const VIEWS_NAMESPACE: &str = "_koru_views";

/// A view definition, as stored and as created: a v1 `filter`, or a whole v2 `query` (both: they
/// must both hold). Definitions stored before v2 hold only `filter` and still load.
#[derive(Serialize, Deserialize)]
pub struct ViewDef {
    name: String,
    source: String,
    #[serde(default)]
    filter: Option<FilterExpr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<Query>,
    #[serde(default)]
    auto_refresh: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

/// Reads a view's definition and the time of its last refresh.
fn load(store: &Store, name: &str) -> Result<(ViewDef, i64), ApiError> {
    names::validate_key(name).map_err(crate::StoreError::from)?;
    let fetched = store
        .get(VIEWS_NAMESPACE, name)?
        .ok_or_else(|| ApiError::not_found(format!("view {name:?} not found")))?;
    let def = serde_json::from_str(fetched.value.as_deref().unwrap_or("null")).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "stored view definition could not be read",
        )
    })?;
    Ok((def, fetched.timestamp_micros))
}

/// [`load`] on the blocking pool (it reads the definition from the log).
async fn load_off(state: &AppState, name: &str) -> Result<(ViewDef, i64), ApiError> {
    let (store, name) = (state.store.clone(), name.to_string());
    blocking::read(move || load(&store, &name)).await
}

/// Writes a view definition as a new version.
async fn save(state: &AppState, def: &ViewDef) -> Result<(), ApiError> {
    let text = serde_json::to_string(def).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let value = json::raw(text)?;
    state
        .write(
            vec![WriteOp::put(VIEWS_NAMESPACE, def.name.clone(), value)],
            Default::default(),
        )
        .await?;
    Ok(())
}

/// `GET /api/v1/views`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    blocking::read(move || {
        let mut views = Vec::new();
        for (name, _) in store.snapshot(VIEWS_NAMESPACE, None) {
            let (def, refreshed) = load(&store, &name)?;
            views.push(serde_json::json!({
                "name": def.name,
                "source": def.source,
                "auto_refresh": def.auto_refresh,
                "description": def.description,
                "refreshed_at": json::timestamp(refreshed),
            }));
        }
        Ok(Json(serde_json::json!({ "views": views })))
    })
    .await
}

/// `POST /api/v1/views`: creates a view; 409 if the name is taken.
pub async fn create(
    State(state): State<AppState>,
    JsonBody(mut def): JsonBody<ViewDef>,
) -> Result<Json<Value>, ApiError> {
    def.filter = def
        .filter
        .map(|f| f.map_leaves(&Filter::from_kdelta_expression));
    names::validate_key(&def.name).map_err(crate::StoreError::from)?;
    names::validate_namespace(&def.source).map_err(crate::StoreError::from)?;
    if let Some(f) = &def.filter {
        f.validate().map_err(ApiError::bad_request)?;
    }
    if let Some(q) = &def.query {
        if q.at.is_some() {
            return Err(ApiError::bad_request(
                "a view answers as of its last refresh: its query cannot hold \"at\"",
            ));
        }
        q.validate(&def.source)?;
    }
    if state.store.is_live(VIEWS_NAMESPACE, &def.name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_exists",
            format!("view {:?} already exists", def.name),
        ));
    }
    save(&state, &def).await?;
    Ok(Json(serde_json::json!({ "created": true })))
}

/// `GET /api/v1/views/{name}`: the view's rows as of its last refresh (now, with auto_refresh).
pub async fn query(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueryAnswer>, ApiError> {
    let store = state.store.clone();
    blocking::read(move || {
        let (def, refreshed) = load(&store, &name)?;
        let mut query = def.query.unwrap_or_default();
        if let Some(f) = def.filter {
            query = query.filter(f);
        }
        if !def.auto_refresh {
            query.at = Some(json::timestamp(refreshed));
        }
        let mut body = store.query_blocking(&def.source, &query)?;
        // KoruDelta reports the view's name where a query reports the namespace.
        body.namespace = name;
        Ok(Json(body))
    })
    .await
}

/// `POST /api/v1/views/{name}/refresh`.
pub async fn refresh(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let (def, _) = load_off(&state, &name).await?;
    save(&state, &def).await?;
    Ok(Json(serde_json::json!({ "refreshed": true })))
}

/// `DELETE /api/v1/views/{name}`: 204.
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    load_off(&state, &name).await?;
    state
        .write(
            vec![WriteOp::delete(VIEWS_NAMESPACE, name)],
            Default::default(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
