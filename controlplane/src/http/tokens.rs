//! API tokens of an organization.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::LateJson;
use super::principal::{OrgAccess, Principal};
use crate::api_tokens::{self, ApiToken, CreateToken};
use crate::auth::Role;
use crate::error::Result;
use crate::pagination::Page;
use crate::state::AppState;

/// The organization's API tokens (admin), without secrets.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/tokens", params(("org" = String, Path), crate::pagination::PageQuery),
    responses((status = 200, body = Page<ApiToken>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    access: OrgAccess,
    super::Query(query): super::Query<crate::pagination::PageQuery>,
) -> Result<axum::Json<Page<ApiToken>>> {
    access.require(Role::Admin)?;
    let (limit, after) = query.parse()?;
    let items = api_tokens::list(&state.db, &access.org.id, &after, limit).await?;
    Ok(axum::Json(Page::from_fetched(items, limit, |t| {
        (t.created_at, t.id.clone())
    })))
}

/// Creates an API token (admin); the secret is in this response only. A token created with an
/// API token expires no later than that token (400 otherwise, naming the most days allowed).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/tokens", params(("org" = String, Path)),
    request_body = CreateToken, responses((status = 201, body = ApiToken),
        (status = 400, description = "invalid body, or an expiry later than the creating API token's"),
        (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    access: OrgAccess,
    body: LateJson<CreateToken>,
) -> Result<impl IntoResponse> {
    access.require(Role::Admin)?;
    let req = body.parse()?;
    let token = api_tokens::create(
        &state.db,
        &access.org.id,
        &principal.actor(),
        access.role,
        &req,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(token)))
}

/// Revokes an API token (admin).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/tokens/{id}", params(("org" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    access: OrgAccess,
    Path((_org, id)): Path<(String, String)>,
) -> Result<StatusCode> {
    access.require(Role::Admin)?;
    api_tokens::revoke(&state.db, &access.org.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
