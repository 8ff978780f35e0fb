//! Device authorization for terminals (`koru login --sso`): asking for a code pair and polling
//! for the session. The approval itself is a dashboard page (`/device`), behind its session
//! cookies and CSRF checks.

use axum::extract::State;
use axum::http::Extensions;

use super::{Json, client_ip};
use crate::accounts::Tokens;
use crate::audit::AuditSlot;
use crate::device::{self, CodeRequest, CodeResponse, TokenRequest};
use crate::error::{Error, Result};
use crate::state::AppState;

/// Starts a device authorization: the terminal shows `user_code` and `verification_uri`
/// (or opens `verification_uri_complete`) and polls `POST /api/v1/device/token` every
/// `interval` seconds. Codes expire after 10 minutes. Rate-limited per client address.
#[utoipa::path(post, path = "/api/v1/device/code", request_body = CodeRequest,
    responses((status = 200, body = CodeResponse), (status = 400), (status = 429)))]
pub async fn code(
    State(state): State<AppState>,
    extensions: Extensions,
    Json(req): Json<CodeRequest>,
) -> Result<axum::Json<CodeResponse>> {
    let ip = client_ip(&extensions);
    state
        .sso
        .device_limiter
        .check_code(ip)
        .map_err(Error::RateLimited)?;
    Ok(axum::Json(
        device::start(&state.db, &state.public_url, &req, ip).await?,
    ))
}

/// Polls a device authorization: the session tokens once a signed-in person approved the code
/// (handed out once), else 400 with the code `authorization_pending`, `slow_down` (polled
/// before the interval; `interval` in the error is the new one), `expired_token`,
/// `access_denied` or `invalid_grant` (unknown or already used device code). Also limited to
/// 120 polls a minute per client address (429).
#[utoipa::path(post, path = "/api/v1/device/token", request_body = TokenRequest,
    responses((status = 200, body = Tokens), (status = 400), (status = 429)))]
pub async fn token(
    State(state): State<AppState>,
    extensions: Extensions,
    Json(req): Json<TokenRequest>,
) -> Result<axum::Json<Tokens>> {
    state
        .sso
        .device_limiter
        .check_poll(client_ip(&extensions))
        .map_err(Error::RateLimited)?;
    let (user_id, tokens) = device::poll(&state.db, &state.sessions, &req.device_code).await?;
    AuditSlot::note_actor(&extensions, format!("user:{user_id}"));
    Ok(axum::Json(tokens))
}
