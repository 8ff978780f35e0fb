//! SAML single sign-on: an organization's IdP configuration, verified domains and account links
//! under `/api/v1`, and the SP endpoints under `/saml/{org}` (metadata, SP-initiated login,
//! assertion consumer service).

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::LateJson;
use super::client_ip;
use super::principal::{OrgAccess, Principal, UserAccess};
use crate::auth::Role;
use crate::dashboard::session::CookiePolicy;
use crate::error::{Error, Result};
use crate::sso::domains::{self, AddDomain, Domain};
use crate::sso::{self, AcsCaller, LoginStart, SpUrls, SsoConfig, SsoLogin, SsoSettings};
use crate::state::AppState;

/// The cookie binding a SAML login to the browser that started it (`__Host-` on https).
pub const BINDING_COOKIE: &str = "koru_saml";

/// The binding cookie: the hash of the AuthnRequest ID, for the request's lifetime. SameSite=None
/// (the IdP's form posts it back cross-site) needs Secure, so on plain http (development, where
/// IdP and SP share a site) it is Lax.
pub fn binding_cookie(policy: &CookiePolicy, value: &str) -> cookie::Cookie<'static> {
    let mut c = policy.cookie(BINDING_COOKIE, value, sso::replay::REQUEST_TTL_MS / 1000);
    if policy.secure {
        c.set_same_site(cookie::SameSite::None);
    }
    c
}

/// An owner's access to the path's organization with a user session (API tokens cannot manage
/// SSO): both refusals are 403 `OwnerOnly`, and an API token's comes before the lookup.
pub struct Owner(pub OrgAccess);

impl FromRequestParts<AppState> for Owner {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Response> {
        let access = OrgAccess::extract(parts, state, |principal| {
            principal
                .user_id()
                .map(drop)
                .map_err(|_| Error::from(sso::SsoError::OwnerOnly))
        })
        .await?;
        if access.role != Role::Owner {
            return Err(Error::from(sso::SsoError::OwnerOnly).into_response());
        }
        Ok(Owner(access))
    }
}

/// A redirect to the IdP that also sets the login's binding cookie.
fn to_idp(state: &AppState, started: &sso::StartedLogin, status: StatusCode) -> Result<Response> {
    let location = HeaderValue::from_str(&started.redirect_url)
        .map_err(|_| Error::Internal("the IdP redirect URL is not a header value".into()))?;
    let policy = CookiePolicy::for_public_url(&state.public_url);
    let cookie = HeaderValue::from_str(&binding_cookie(&policy, &started.binding).to_string())
        .map_err(|_| Error::Internal("the binding cookie is not a header value".into()))?;
    Ok((
        status,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response())
}

/// The SSO configuration of an organization (admin).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/sso", params(("org" = String, Path, description = "id or slug")),
    responses((status = 200, body = SsoConfig), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn get_config(
    State(state): State<AppState>,
    access: OrgAccess,
) -> Result<axum::Json<SsoConfig>> {
    access.require(Role::Admin)?;
    Ok(axum::Json(
        sso::config(&state.db, &access.org, &state.public_url).await?,
    ))
}

/// Configures SAML SSO from the IdP's metadata (owner only, with a user session; enterprise tier).
#[utoipa::path(put, path = "/api/v1/orgs/{org}/sso", params(("org" = String, Path, description = "id or slug")),
    request_body = SsoSettings,
    responses((status = 200, body = SsoConfig), (status = 400), (status = 402), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn put_config(
    State(state): State<AppState>,
    Owner(access): Owner,
    body: LateJson<SsoSettings>,
) -> Result<axum::Json<SsoConfig>> {
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

/// Starts an SSO login: redirects the browser to the organization's IdP with an AuthnRequest, and
/// sets the cookie that binds the login to this browser. Rate-limited per client address and per
/// organization (429).
#[utoipa::path(get, path = "/saml/{org}/login", params(("org" = String, Path, description = "id or slug"), LoginParams),
    responses((status = 302, description = "to the IdP"), (status = 400), (status = 402), (status = 404), (status = 429)))]
pub async fn login(
    State(state): State<AppState>,
    Path(org): Path<String>,
    extensions: axum::http::Extensions,
    Query(params): Query<LoginParams>,
) -> Result<Response> {
    let ip = client_ip(&extensions);
    let started = sso::start_login(
        &state.db,
        &state.public_url,
        &org,
        LoginStart {
            relay_state: params.relay_state.as_deref(),
            link_user_id: None,
        },
        |org| {
            state
                .sso
                .login_limiter
                .check(&org.id, ip)
                .map_err(Error::RateLimited)
        },
    )
    .await?;
    to_idp(&state, &started, StatusCode::FOUND)
}

/// Starts the link flow: the signed-in user (a member) is sent to the organization's IdP, and
/// the identity it asserts is bound to their account, so that IdP can sign them in later (in this
/// organization only) even outside the verified domains.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct LinkStart {
    /// Where to send the browser (the IdP, with the AuthnRequest); the response also sets the
    /// login's binding cookie.
    pub redirect_url: String,
}

/// Starts linking the caller's account to the organization's IdP (a member's own session).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/sso/link", params(("org" = String, Path, description = "id or slug")),
    responses((status = 200, body = LinkStart), (status = 403), (status = 404), (status = 429)), security(("bearer" = [])))]
pub async fn start_link(
    State(state): State<AppState>,
    principal: Principal,
    UserAccess(access): UserAccess,
    extensions: axum::http::Extensions,
) -> Result<Response> {
    let user_id = principal.user_id()?.to_string();
    let started = start_link_for(&state, &access, &user_id, client_ip(&extensions)).await?;
    let mut response = to_idp(&state, &started, StatusCode::OK)?;
    response.headers_mut().remove(header::LOCATION);
    *response.body_mut() = axum::body::Body::from(
        serde_json::to_vec(&LinkStart {
            redirect_url: started.redirect_url,
        })
        .map_err(|e| Error::Internal(e.to_string()))?,
    );
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Starts a link flow of `user_id` in `access`'s organization (API and dashboard).
pub async fn start_link_for(
    state: &AppState,
    access: &OrgAccess,
    user_id: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<sso::StartedLogin> {
    let back = format!("/orgs/{}/sso", access.org.slug);
    Ok(sso::start_login(
        &state.db,
        &state.public_url,
        &access.org.id,
        LoginStart {
            relay_state: Some(&back),
            link_user_id: Some(user_id),
        },
        |org| {
            state
                .sso
                .login_limiter
                .check(&org.id, ip)
                .map_err(Error::RateLimited)
        },
    )
    .await?)
}

/// The verified and pending email domains of an organization (owner).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/sso/domains", params(("org" = String, Path, description = "id or slug")),
    responses((status = 200, body = [Domain]), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn list_domains(
    State(state): State<AppState>,
    Owner(access): Owner,
) -> Result<axum::Json<Vec<Domain>>> {
    Ok(axum::Json(domains::list(&state.db, &access.org.id).await?))
}

/// Adds an email domain (owner); the answer names the TXT record that proves ownership.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/sso/domains", params(("org" = String, Path, description = "id or slug")),
    request_body = AddDomain,
    responses((status = 201, body = Domain), (status = 400), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn add_domain(
    State(state): State<AppState>,
    Owner(access): Owner,
    body: LateJson<AddDomain>,
) -> Result<(StatusCode, axum::Json<Domain>)> {
    let req = body.parse()?;
    let domain = domains::add(&state.db, &access.org.id, &req.domain).await?;
    Ok((StatusCode::CREATED, axum::Json(domain)))
}

/// Looks up the domain's TXT record and marks the domain verified when it carries the value
/// (owner). 409 when another organization verified it.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/sso/domains/{domain}/verify",
    params(("org" = String, Path, description = "id or slug"), ("domain" = String, Path, description = "the domain")),
    responses((status = 200, body = Domain), (status = 400), (status = 403), (status = 404), (status = 409), (status = 503)),
    security(("bearer" = [])))]
pub async fn verify_domain(
    State(state): State<AppState>,
    Owner(access): Owner,
    Path((_org, domain)): Path<(String, String)>,
) -> Result<axum::Json<Domain>> {
    Ok(axum::Json(
        domains::verify_by_dns(&state.db, &state.sso.dns, &access.org.id, &domain).await?,
    ))
}

/// Removes an email domain (owner).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/sso/domains/{domain}",
    params(("org" = String, Path, description = "id or slug"), ("domain" = String, Path, description = "the domain")),
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn remove_domain(
    State(state): State<AppState>,
    Owner(access): Owner,
    Path((_org, domain)): Path<(String, String)>,
) -> Result<StatusCode> {
    domains::remove(&state.db, &access.org.id, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
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

/// The assertion consumer service: verifies the IdP's response and opens a session scoped to the
/// organization. A browser (one that accepts `text/html`, as the IdP's auto-submitted form does)
/// must bring the binding cookie `/saml/{org}/login` set, and gets the session in the dashboard's
/// cookies and a redirect to the login's RelayState; other clients get the tokens.
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
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let policy = CookiePolicy::for_public_url(&state.public_url);
    let cookie = policy.read(&headers, BINDING_COOKIE);
    let caller = if browser {
        AcsCaller::Browser(cookie.as_deref())
    } else {
        AcsCaller::Api
    };
    let login = sso::complete_login(
        &state.db,
        &state.sessions,
        &state.public_url,
        &org,
        &form.saml_response,
        caller,
    )
    .await
    .map_err(|(e, asserted)| {
        if let Some(email) = asserted {
            // The refusal is audited under the identity the IdP asserted.
            crate::audit::middleware::AuditSlot::note_actor(
                &extensions,
                crate::audit::middleware::attempted_email(&email),
            );
        }
        Error::from(e)
    })?;
    crate::audit::middleware::AuditSlot::note_actor(&extensions, format!("user:{}", login.user.id));
    if browser {
        return Ok(crate::dashboard::sso::landing(&state, &login));
    }
    Ok(axum::Json(login).into_response())
}
