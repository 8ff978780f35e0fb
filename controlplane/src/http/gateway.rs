//! The internal API the gateway calls (`koru-gateway-api`): sync and wake, authenticated with the
//! shared gateway secret. Not part of the public OpenAPI document. Wakes are audited; successful
//! syncs are not (see [`crate::audit::middleware::record`]).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use koru_gateway_api::{RouteTable, SyncRequest, WakeResponse};

use crate::error::Result;
use crate::state::AppState;

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<()> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    crate::gateway::authorize(&state.gateway, header)
}

/// `POST /internal/v1/gateway/sync`: records the replica's activity, answers the route table.
pub async fn sync(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: super::LateJson<SyncRequest>,
) -> Result<axum::Json<RouteTable>> {
    authorize(&state, &headers)?;
    let req = body.parse()?;
    Ok(axum::Json(crate::gateway::sync(&state, &req).await?))
}

/// `POST /internal/v1/gateway/clusters/{id}/wake`: starts or joins the cluster's resume; audited
/// in the cluster's organization with the actor `gateway`.
pub async fn wake(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Path(id): Path<String>,
) -> Result<axum::Json<WakeResponse>> {
    authorize(&state, &headers)?;
    crate::audit::AuditSlot::note_actor(&extensions, "gateway");
    let cluster = crate::clusters::by_id(&state.db, &id).await?;
    crate::audit::AuditSlot::note_org(&extensions, cluster.org_id);
    let state_now = crate::lifecycle::wake(&state, &id).await?;
    Ok(axum::Json(WakeResponse { state: state_now }))
}
