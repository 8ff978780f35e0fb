//! Who is calling: a user with a session token or an organization's API token, from
//! `Authorization: Bearer`; and what they may do in the organization named in the path.
//!
//! Both are extractors, so a handler states what it needs in its signature. The principal is
//! verified once per request (the tenant extractor and the handler share it). The tenant,
//! [`OrgAccess`], is resolved from the path's `{org}` before the handler reads the body, reported
//! to the audit middleware (which then does not look the organization up again), and recorded as
//! `org_id` on the request's span.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::accounts;
use crate::api_tokens;
use crate::auth::Role;
use crate::auth::session::SessionClaims;
use crate::error::{Error, Result};
use crate::orgs::{self, Organization};
use crate::state::AppState;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A user with a session access token.
    User {
        /// The token's claims (user id in `sub`).
        claims: SessionClaims,
    },
    /// An API token, bound to one organization.
    Token {
        /// Token id.
        id: String,
        /// Its organization.
        org_id: String,
        /// Its role there.
        role: Role,
    },
}

impl Principal {
    /// The actor as the audit log names it: `user:<id>` or `token:<id>`.
    pub fn actor(&self) -> String {
        match self {
            Principal::User { claims } => format!("user:{}", claims.sub),
            Principal::Token { id, .. } => format!("token:{id}"),
        }
    }

    /// Who the data plane records as the author of writes made with a data-plane token issued
    /// to this principal: the user's email, or `token:<name>` for an API token (names are what
    /// people gave them; the id stays in the control plane's audit log and token list).
    pub async fn author(&self, db: &sqlx::AnyPool) -> Result<String> {
        match self {
            Principal::User { claims } => Ok(crate::accounts::user(db, &claims.sub).await?.email),
            Principal::Token { id, .. } => {
                let name: Option<String> =
                    sqlx::query_scalar("SELECT name FROM api_tokens WHERE id = $1")
                        .bind(id)
                        .fetch_optional(db)
                        .await?;
                Ok(format!("token:{}", name.unwrap_or_else(|| id.clone())))
            }
        }
    }

    /// The user id, for endpoints only people may use.
    pub fn user_id(&self) -> Result<&str> {
        match self {
            Principal::User { claims } => Ok(&claims.sub),
            Principal::Token { .. } => Err(Error::Forbidden(
                "this endpoint needs a user's session, not an API token".into(),
            )),
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        // One verification (and revocation lookup) per request, however many extractors ask.
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let principal = Principal::authenticate(parts, state).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

impl Principal {
    /// Verifies the bearer token of the request and reports the actor to the audit log.
    async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .ok_or_else(|| Error::Unauthorized("send Authorization: Bearer <token>".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .ok_or_else(|| {
                Error::Unauthorized("the Authorization header must be Bearer <token>".into())
            })?;
        if token.starts_with(api_tokens::PREFIX) {
            let (id, org_id, role) = api_tokens::authenticate(&state.db, token).await?;
            let principal = Principal::Token { id, org_id, role };
            crate::audit::AuditSlot::note_actor(&parts.extensions, principal.actor());
            return Ok(principal);
        }
        let claims = state.sessions.verify(token)?;
        if accounts::is_revoked(&state.db, &claims.jti).await? {
            return Err(Error::Unauthorized(
                "this session has ended; log in again".into(),
            ));
        }
        if let Some(org) = &claims.org {
            crate::sso::check_session_scope(&state.db, org).await?;
        }
        let principal = Principal::User { claims };
        crate::audit::AuditSlot::note_actor(&parts.extensions, principal.actor());
        Ok(principal)
    }
}

/// Refuses a session scoped by single sign-on to another organization than `org` (403: the
/// caller is a member, so the organization's existence is no secret to them).
pub fn check_scope(claims: &SessionClaims, org: &Organization) -> Result<()> {
    match &claims.org {
        Some(scope) if *scope != org.id => Err(Error::Forbidden(format!(
            "this session was opened by another organization's single sign-on and is valid only there; to work in {}, log in with its own single sign-on or your password",
            org.slug
        ))),
        _ => Ok(()),
    }
}

/// The organization of the path as the caller may see it, with the caller's role there.
#[derive(Debug, Clone)]
pub struct OrgAccess {
    /// The organization.
    pub org: Organization,
    /// The caller's role in it.
    pub role: Role,
}

impl OrgAccess {
    /// Resolves `{org}` (id or slug) for `principal`. An organization the caller does not belong
    /// to is "not found", never "forbidden", so other tenants' names do not leak; one that staff
    /// suspended is 403 `organization_suspended` for its members.
    pub async fn resolve(
        state: &AppState,
        principal: &Principal,
        org_ref: &str,
    ) -> Result<OrgAccess> {
        Self::resolve_then(state, principal, org_ref, |_| {}).await
    }

    /// [`OrgAccess::resolve`], telling `found` what the reference names (before the caller's
    /// access is checked: an outsider's refused attempt still names the organization).
    async fn resolve_then(
        state: &AppState,
        principal: &Principal,
        org_ref: &str,
        found: impl FnOnce(Option<&Organization>),
    ) -> Result<OrgAccess> {
        let not_found = || Error::NotFound(format!("no organization {org_ref:?}"));
        let org = orgs::find(&state.db, org_ref).await?;
        found(org.as_ref());
        let org = org.ok_or_else(not_found)?;
        let role = match principal {
            Principal::User { claims } => {
                let role = orgs::role_of(&state.db, &org.id, &claims.sub)
                    .await?
                    .ok_or_else(not_found)?;
                check_scope(claims, &org)?;
                role
            }
            Principal::Token { org_id, role, .. } if *org_id == org.id => *role,
            Principal::Token { .. } => return Err(not_found()),
        };
        // Only members learn that it is suspended; everyone else still gets "not found".
        org.check_active()?;
        Ok(OrgAccess { org, role })
    }

    /// Fails with 403 unless the caller's role is at least `need`.
    pub fn require(&self, need: Role) -> Result<()> {
        if self.role >= need {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "your role {} does not allow this; {} is required",
                self.role.as_str(),
                need.as_str()
            )))
        }
    }

    /// The extractor's work: the principal (401), the path (its rejection), `admit` on the
    /// principal (a route's own refusal, e.g. of API tokens), then the organization of `{org}` —
    /// in the order the handlers checked them by hand, and before the body is read.
    pub async fn extract(
        parts: &mut Parts,
        state: &AppState,
        admit: impl FnOnce(&Principal) -> Result<()>,
    ) -> std::result::Result<OrgAccess, Response> {
        let principal = Principal::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        admit(&principal).map_err(IntoResponse::into_response)?;
        let org_ref = params.get("org").ok_or_else(|| {
            Error::Internal("the organization extractor is on a route without {org}".into())
                .into_response()
        })?;
        let extensions = &parts.extensions;
        let access = Self::resolve_then(state, &principal, org_ref, |org| {
            crate::audit::AuditSlot::note_path_org(extensions, org.map(|o| o.id.clone()));
        })
        .await
        .map_err(IntoResponse::into_response)?;
        tracing::Span::current().record("org_id", access.org.id.as_str());
        Ok(access)
    }
}

/// Resolves the path's `{org}` for any caller of it (user session or API token).
impl FromRequestParts<AppState> for OrgAccess {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Response> {
        OrgAccess::extract(parts, state, |_| Ok(())).await
    }
}

/// The path's organization for a user's own session: an API token gets 403 before the
/// organization is looked up.
pub struct UserAccess(pub OrgAccess);

impl FromRequestParts<AppState> for UserAccess {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Response> {
        OrgAccess::extract(parts, state, |p| p.user_id().map(drop))
            .await
            .map(UserAccess)
    }
}
