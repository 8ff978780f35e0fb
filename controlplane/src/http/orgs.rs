//! An organization, its members and its invitations.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::ToSchema;

use super::principal::{OrgAccess, Principal};
use super::{Json, LateJson};
use crate::accounts;
use crate::auth::Role;
use crate::error::Result;
use crate::orgs::{self, Invitation, Member, Organization};
use crate::pagination::Page;
use crate::state::AppState;

/// An organization the caller belongs to.
#[utoipa::path(get, path = "/api/v1/orgs/{org}", params(("org" = String, Path, description = "id or slug")),
    responses((status = 200, body = Organization), (status = 404)), security(("bearer" = [])))]
pub async fn get_org(access: OrgAccess) -> Result<axum::Json<Organization>> {
    Ok(axum::Json(access.org))
}

/// A plan change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PlanChange {
    /// The new plan: free or pro.
    pub tier: crate::tiers::TierName,
}

/// Changes the organization's plan (owner).
#[utoipa::path(patch, path = "/api/v1/orgs/{org}", params(("org" = String, Path)), request_body = PlanChange,
    responses((status = 200, body = Organization), (status = 402), (status = 403)), security(("bearer" = [])))]
pub async fn set_plan(
    State(state): State<AppState>,
    access: OrgAccess,
    body: LateJson<PlanChange>,
) -> Result<axum::Json<Organization>> {
    access.require(Role::Owner)?;
    let change = body.parse()?;
    Ok(axum::Json(
        orgs::set_tier(&state.db, &access.org, change.tier).await?,
    ))
}

/// The members of an organization.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/members", params(("org" = String, Path), crate::pagination::PageQuery),
    responses((status = 200, body = Page<Member>), (status = 404)), security(("bearer" = [])))]
pub async fn list_members(
    State(state): State<AppState>,
    access: OrgAccess,
    super::Query(query): super::Query<crate::pagination::PageQuery>,
) -> Result<axum::Json<Page<Member>>> {
    let (limit, after) = query.parse()?;
    let items = orgs::members(&state.db, &access.org.id, &after, limit).await?;
    Ok(axum::Json(Page::from_fetched(items, limit, |m| {
        (m.joined_at, m.user_id.clone())
    })))
}

/// A role change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleChange {
    /// The new role.
    pub role: Role,
}

/// Changes a member's role (admin; owners for the owner role).
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/members/{user}", params(("org" = String, Path), ("user" = String, Path)),
    request_body = RoleChange, responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn set_member_role(
    State(state): State<AppState>,
    access: OrgAccess,
    Path((_org, user)): Path<(String, String)>,
    body: LateJson<RoleChange>,
) -> Result<StatusCode> {
    access.require(Role::Admin)?;
    // Someone outside the organization is "not found" whatever the body says.
    if orgs::role_of(&state.db, &access.org.id, &user)
        .await?
        .is_none()
    {
        return Err(crate::error::Error::NotFound("no such member".into()));
    }
    let change = body.parse()?;
    orgs::set_role(&state.db, &access.org.id, access.role, &user, change.role).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a member (admin; owners for owners; members may remove themselves).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/members/{user}", params(("org" = String, Path), ("user" = String, Path)),
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn remove_member(
    State(state): State<AppState>,
    principal: Principal,
    access: OrgAccess,
    Path((_org, user)): Path<(String, String)>,
) -> Result<StatusCode> {
    if principal.user_id().ok() != Some(user.as_str()) {
        access.require(Role::Admin)?;
    }
    orgs::remove_member(&state.db, &access.org.id, access.role, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The invitations of an organization (admin).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/invitations", params(("org" = String, Path), crate::pagination::PageQuery),
    responses((status = 200, body = Page<Invitation>)), security(("bearer" = [])))]
pub async fn list_invitations(
    State(state): State<AppState>,
    access: OrgAccess,
    super::Query(query): super::Query<crate::pagination::PageQuery>,
) -> Result<axum::Json<Page<Invitation>>> {
    access.require(Role::Admin)?;
    let (limit, after) = query.parse()?;
    let items = orgs::invitations(&state.db, &access.org.id, &after, limit).await?;
    Ok(axum::Json(Page::from_fetched(items, limit, |i| {
        (i.created_at, i.id.clone())
    })))
}

/// An invitation to send.
#[derive(Debug, Deserialize, ToSchema)]
pub struct InviteRequest {
    /// Who to invite.
    pub email: String,
    /// Their role, at most the inviter's.
    pub role: Role,
}

/// Invites someone (admin); the response carries the secret token once.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/invitations", params(("org" = String, Path)),
    request_body = InviteRequest, responses((status = 201, body = Invitation), (status = 403)), security(("bearer" = [])))]
pub async fn invite(
    State(state): State<AppState>,
    principal: Principal,
    access: OrgAccess,
    body: LateJson<InviteRequest>,
) -> Result<impl IntoResponse> {
    access.require(Role::Admin)?;
    let req = body.parse()?;
    let invitation = orgs::invite(
        &state.db,
        &access.org.id,
        access.role,
        &principal.actor(),
        &req.email,
        req.role,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(invitation)))
}

/// An invitation token.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AcceptRequest {
    /// The token from the invitation.
    pub token: String,
}

/// Joins the organization of an invitation addressed to the logged-in user's email.
#[utoipa::path(post, path = "/api/v1/invitations/accept", request_body = AcceptRequest,
    responses((status = 200, body = Organization), (status = 404)), security(("bearer" = [])))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    principal: Principal,
    extensions: axum::http::Extensions,
    Json(req): Json<AcceptRequest>,
) -> Result<axum::Json<Organization>> {
    let user = accounts::user(&state.db, principal.user_id()?).await?;
    let joined = orgs::accept(&state.db, &req.token, &user.id, &user.email).await?;
    // The path names no organization; the audit log files the event under the one joined.
    crate::audit::AuditSlot::note_org(&extensions, joined.id.clone());
    Ok(axum::Json(joined))
}
