//! Sign-up, login, token refresh, logout and the current user.

use axum::extract::State;
use axum::http::{Extensions, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::principal::Principal;
use super::{Json, client_ip};
use crate::accounts::{self, LoginRequest, SignupRequest, SignupResponse, Tokens, User};
use crate::audit::AuditSlot;
use crate::audit::middleware::attempted_email as audit_email;
use crate::error::{Error, Result};
use crate::orgs::{self, OrgWithRole};
use crate::state::AppState;

/// Creates an account and its organization, and logs in.
#[utoipa::path(post, path = "/api/v1/signup", request_body = SignupRequest,
    responses((status = 201, body = SignupResponse), (status = 400), (status = 409)))]
pub async fn signup(
    State(state): State<AppState>,
    extensions: Extensions,
    Json(req): Json<SignupRequest>,
) -> Result<impl IntoResponse> {
    AuditSlot::note_actor(&extensions, audit_email(&req.email));
    let created = accounts::signup(&state.db, &state.sessions, &req).await?;
    AuditSlot::note_actor(&extensions, format!("user:{}", created.user.id));
    AuditSlot::note_org(&extensions, created.organization.id.clone());
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// What login returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The user.
    pub user: User,
    /// Session tokens.
    #[serde(flatten)]
    pub tokens: Tokens,
}

/// Logs in with email and password (rate-limited per account and per address).
#[utoipa::path(post, path = "/api/v1/login", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401), (status = 429)))]
pub async fn login(
    State(state): State<AppState>,
    extensions: Extensions,
    Json(req): Json<LoginRequest>,
) -> Result<axum::Json<LoginResponse>> {
    AuditSlot::note_actor(&extensions, audit_email(&req.email));
    state
        .login_limiter
        .check(&req.email, client_ip(&extensions))
        .map_err(Error::RateLimited)?;
    let (user, tokens) = accounts::login(&state.db, &state.sessions, &req).await?;
    AuditSlot::note_actor(&extensions, format!("user:{}", user.id));
    Ok(axum::Json(LoginResponse { user, tokens }))
}

/// A refresh token.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The refresh token from login, sign-up or the last refresh.
    pub refresh_token: String,
}

/// Exchanges a refresh token for new tokens (the old one stops working).
#[utoipa::path(post, path = "/api/v1/token/refresh", request_body = RefreshRequest,
    responses((status = 200, body = Tokens), (status = 401)))]
pub async fn refresh(
    State(state): State<AppState>,
    extensions: Extensions,
    Json(req): Json<RefreshRequest>,
) -> Result<axum::Json<Tokens>> {
    let tokens = accounts::refresh(&state.db, &state.sessions, &req.refresh_token).await?;
    // The audit log names the user; the refresh token itself is never recorded.
    if let Ok(claims) = state.sessions.verify(&tokens.access_token) {
        AuditSlot::note_actor(&extensions, format!("user:{}", claims.sub));
    }
    Ok(axum::Json(tokens))
}

/// What logout takes.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LogoutRequest {
    /// The session's refresh token, to revoke it too.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// Ends the session: the access token and its refresh tokens stop working.
#[utoipa::path(post, path = "/api/v1/logout", request_body = LogoutRequest,
    responses((status = 204), (status = 401)), security(("bearer" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    principal: Principal,
    body: axum::body::Bytes,
) -> Result<StatusCode> {
    let Principal::User { claims } = &principal else {
        return Err(Error::BadRequest(
            "API tokens are revoked, not logged out".into(),
        ));
    };
    // The body is optional: an empty one logs out the access token only.
    let refresh = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<LogoutRequest>(&body)
            .map_err(|e| Error::BadRequest(format!("invalid logout body: {e}")))?
            .refresh_token
    };
    accounts::logout(&state.db, claims, refresh.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The current user and their organizations.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The user.
    pub user: User,
    /// Their organizations with their role in each.
    pub organizations: Vec<OrgWithRole>,
    /// The organization (id) this session is scoped to when single sign-on opened it: every
    /// other organization refuses the session (403). Absent for a password session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_organization: Option<String>,
}

/// The logged-in user and their organizations.
#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = Me), (status = 401)),
    security(("bearer" = [])))]
pub async fn me(State(state): State<AppState>, principal: Principal) -> Result<axum::Json<Me>> {
    let user_id = principal.user_id()?;
    let user = accounts::user(&state.db, user_id).await?;
    let organizations = orgs::of_user(&state.db, user_id).await?;
    let session_organization = match &principal {
        Principal::User { claims } => claims.org.clone(),
        Principal::Token { .. } => None,
    };
    Ok(axum::Json(Me {
        user,
        organizations,
        session_organization,
    }))
}
