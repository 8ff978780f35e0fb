//! SAML single sign-on: an organization's IdP configuration under `/api/v1`, and the SP endpoints
//! under `/saml/{org}` (metadata, SP-initiated login, assertion consumer service).

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::LateJson;
use super::principal::{OrgAccess, Principal};
use crate::auth::Role;
use crate::error::{Error, Result};
use crate::sso::{self, SpUrls, SsoConfig, SsoLogin, SsoSettings};
use crate::state::AppState;

/// The SSO configuration of an organization (admin).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/sso", params(("org" = String, Path, description = "id or slug")),
    responses((status = 200, body = SsoConfig), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn get_config(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
) -> Result<axum::Json<SsoConfig>> {
    let access = OrgAccess::resolve(&state, &principal, &org).await?;
    access.require(Role::Admin)?;
    Ok(axum::Json(
        sso::config(&state.db, &access.org, &state.public_url).await?,
    ))
}

/// Configures SAML SSO from the IdP's metadata (admin; enterprise tier).
#[utoipa::path(put, path = "/api/v1/orgs/{org}/sso", params(("org" = String, Path, description = "id or slug")),
    request_body = SsoSettings,
    responses((status = 200, body = SsoConfig), (status = 400), (status = 402), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn put_config(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
    body: LateJson<SsoSettings>,
) -> Result<axum::Json<SsoConfig>> {
    let access = OrgAccess::resolve(&state, &principal, &org).await?;
    access.require(Role::Admin)?;
    let settings = body.parse()?;
    let config = sso::configure(
        &state.db,
        &access.org,
        access.role,
        &settings,
        &state.public_url,
    )
    .await?;
    Ok(axum::Json(config))
}

/// Our SP metadata for an organization's IdP.
#[utoipa::path(get, path = "/saml/{org}/metadata", params(("org" = String, Path, description = "id or slug")),
    responses((status = 200, description = "SAML SP metadata", content_type = "application/samlmetadata+xml"), (status = 404)))]
pub async fn metadata(State(state): State<AppState>, Path(org): Path<String>) -> Result<Response> {
    let (org, _) = sso::configured_org(&state.db, &org).await?;
    let xml = sso::sp::metadata_xml(&SpUrls::new(&state.public_url, &org.slug))?;
    Ok((
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        xml,
    )
        .into_response())
}

/// Parameters of an SP-initiated login.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LoginParams {
    /// Where to go after login: a path on this site, at most 80 bytes.
    pub relay_state: Option<String>,
}

/// Starts an SSO login: redirects the browser to the organization's IdP with an AuthnRequest.
#[utoipa::path(get, path = "/saml/{org}/login", params(("org" = String, Path, description = "id or slug"), LoginParams),
    responses((status = 302, description = "to the IdP"), (status = 400), (status = 404)))]
pub async fn login(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Query(params): Query<LoginParams>,
) -> Result<Response> {
    let url = sso::start_login(
        &state.db,
        &state.public_url,
        &org,
        params.relay_state.as_deref(),
    )
    .await?;
    let location = HeaderValue::from_str(&url)
        .map_err(|_| Error::Internal("the IdP redirect URL is not a header value".into()))?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response())
}

/// The form the IdP posts to the assertion consumer service.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AcsForm {
    /// The base64 SAML Response.
    #[serde(rename = "SAMLResponse")]
    pub saml_response: String,
    /// The RelayState the login was started with (the stored one is returned, not this).
    #[serde(rename = "RelayState")]
    pub relay_state: Option<String>,
}

/// The assertion consumer service: verifies the IdP's response and opens a session. A browser
/// (one that accepts `text/html`, as the IdP's auto-submitted form does) gets the session in the
/// dashboard's cookies and a redirect to the login's RelayState; other clients get the tokens.
#[utoipa::path(post, path = "/saml/{org}/acs", params(("org" = String, Path, description = "id or slug")),
    request_body(content = AcsForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = SsoLogin), (status = 303, description = "a browser: session cookies, and a redirect to the RelayState"),
        (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn acs(
    State(state): State<AppState>,
    Path(org): Path<String>,
    extensions: axum::http::Extensions,
    headers: axum::http::HeaderMap,
    form: std::result::Result<Form<AcsForm>, FormRejection>,
) -> Result<Response> {
    let Form(form) = form.map_err(|e| {
        Error::BadRequest(format!(
            "send SAMLResponse as an x-www-form-urlencoded field: {}",
            e.body_text()
        ))
    })?;
    let login = sso::complete_login(
        &state.db,
        &state.sessions,
        &state.public_url,
        &org,
        &form.saml_response,
    )
    .await?;
    crate::audit::middleware::AuditSlot::note_actor(&extensions, format!("user:{}", login.user.id));
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if browser {
        return Ok(crate::dashboard::sso::landing(&state, &login));
    }
    Ok(axum::Json(login).into_response())
}
