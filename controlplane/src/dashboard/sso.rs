//! Single sign-on in the browser: "log in with SSO" by organization (through the SP's
//! `/saml/{org}/login`), the landing of the assertion consumer service in the dashboard's
//! cookies, an organization's SSO settings and verified domains (owner; enterprise plan), and
//! the link of a member's own account to the organization's IdP.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::session::{self, CookiePolicy, Flash, SignedIn, safe_next, with_cookies};
use super::view::{self, Layout, OrgContext};
use super::{PageError, PageResult, render};
use crate::auth::Role;
use crate::error::Error;
use crate::sso::domains::{self, Domain};
use crate::sso::{self, SpUrls, SsoLogin, SsoSettings};
use crate::state::AppState;
use crate::tiers;

/// The "log in with SSO" form.
#[derive(Debug, Deserialize)]
pub struct SsoStart {
    org: String,
    #[serde(default)]
    next: Option<String>,
}

/// `GET /login/sso?org=<slug>`: starts an SP-initiated login at the organization's IdP, coming
/// back to `next` (or the organization's clusters).
pub async fn start(Query(q): Query<SsoStart>) -> PageResult {
    let slug = q.org.trim().to_lowercase();
    let valid = (1..=64).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Enter your organization's short name, as in its dashboard address (/orgs/<name>/…).",
        ));
    }
    let back = q
        .next
        .as_deref()
        .and_then(safe_next)
        .filter(|n| *n != "/")
        .map(str::to_string)
        .unwrap_or_else(|| format!("/orgs/{slug}/clusters"));
    let relay: String = form_urlencoded::byte_serialize(back.as_bytes()).collect();
    Ok(Redirect::to(&format!("/saml/{slug}/login?relay_state={relay}")).into_response())
}

/// Where a verified SSO login lands in a browser: the session in the dashboard's cookies, and a
/// redirect to the path the login started from.
pub fn landing(state: &AppState, login: &SsoLogin) -> Response {
    let policy = CookiePolicy::for_public_url(&state.public_url);
    let to = login
        .relay_state
        .as_deref()
        .and_then(safe_next)
        .unwrap_or("/");
    let mut cookies = session::signed_in_cookies(&policy, &login.tokens);
    cookies.push(policy.removal(crate::http::sso::BINDING_COOKIE));
    if login.linked {
        cookies.push(Flash::cookie(
            &policy,
            false,
            "Your account is linked to the organization's identity provider.",
        ));
    }
    with_cookies(Redirect::to(to).into_response(), cookies)
}

#[derive(Template)]
#[template(path = "sso.html")]
struct SsoPage {
    layout: Layout,
    action: String,
    available: bool,
    sp: SpUrls,
    configured: Option<String>,
    metadata: String,
    default_role: String,
    roles: Vec<&'static str>,
    sso_required: bool,
    error: Option<String>,
    owner: bool,
    domains: Vec<Domain>,
    can_link: bool,
}

/// The settings form.
#[derive(Debug, Default, Deserialize)]
pub struct SettingsForm {
    idp_metadata_xml: String,
    default_role: String,
    /// A checkbox: present when checked.
    #[serde(default)]
    sso_required: Option<String>,
}

async fn page(
    state: &AppState,
    ctx: OrgContext,
    status: StatusCode,
    form: Option<SettingsForm>,
    error: Option<String>,
) -> PageResult {
    let owner = ctx.access.role == Role::Owner;
    let org = &ctx.access.org;
    let current = match sso::config(&state.db, org, &state.public_url).await {
        Ok(c) => Some(c),
        Err(sso::SsoError::NotConfigured(_)) => None,
        Err(e) => return Err(Error::from(e).into()),
    };
    let stored = match &current {
        Some(_) => sso::load(&state.db, &org.id).await.map_err(Error::from)?,
        None => None,
    };
    let (metadata, default_role, sso_required) = match (&form, &stored, &current) {
        (Some(f), _, _) => (
            f.idp_metadata_xml.clone(),
            f.default_role.clone(),
            f.sso_required.is_some(),
        ),
        (None, Some(s), Some(c)) => (
            s.idp_metadata_xml.clone(),
            s.default_role.as_str().to_string(),
            c.sso_required,
        ),
        _ => (String::new(), "member".to_string(), false),
    };
    let roles = [Role::Viewer, Role::Member, Role::Admin]
        .into_iter()
        .map(Role::as_str)
        .collect();
    let domains = if owner {
        domains::list(&state.db, &org.id)
            .await
            .map_err(Error::from)?
    } else {
        Vec::new()
    };
    let can_link = current.is_some();
    let page = SsoPage {
        action: format!("/orgs/{}/sso", org.slug),
        available: tiers::tier(org.tier).sso,
        sp: SpUrls::new(&state.public_url, &org.slug),
        configured: current.map(|c| {
            format!(
                "Configured with the identity provider {}, last changed {}.",
                c.idp_entity_id,
                view::time_ms(c.updated_at)
            )
        }),
        metadata,
        default_role,
        roles,
        sso_required,
        error,
        owner,
        domains,
        can_link,
        layout: ctx.layout,
    };
    Ok(render(status, &page))
}

/// `GET /orgs/{org}/sso`.
pub async fn settings(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "Single sign-on", "sso").await?;
    page(&state, ctx, StatusCode::OK, None, None).await
}

/// `POST /orgs/{org}/sso`: configures SAML SSO (admin, enterprise), as `PUT …/sso` does.
pub async fn configure(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
    Form(form): Form<SettingsForm>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "Single sign-on", "sso").await?;
    ctx.access.require(Role::Owner)?;
    let result = match Role::parse(&form.default_role) {
        Some(default_role) => {
            let settings = SsoSettings {
                idp_metadata_xml: form.idp_metadata_xml.clone(),
                default_role,
                sso_required: form.sso_required.is_some(),
            };
            sso::configure(
                &state.db,
                &ctx.access.org,
                ctx.access.role,
                &settings,
                &state.public_url,
            )
            .await
            .map_err(Error::from)
        }
        None => Err(Error::BadRequest(format!(
            "there is no role {:?}",
            form.default_role
        ))),
    };
    match result {
        Ok(_) => {
            let flash = Flash::cookie(
                &user.visitor.policy,
                false,
                "Single sign-on is configured. Try it: log out and log in with SSO.",
            );
            let to = format!("/orgs/{}/sso", ctx.slug());
            Ok(with_cookies(Redirect::to(&to).into_response(), vec![flash]))
        }
        Err(e @ (Error::Database(_) | Error::Internal(_))) => Err(e.into()),
        Err(e) => {
            let status = e.status_and_code().0;
            let error = Some(view::sentence(&e.to_string()));
            page(&state, ctx, status, Some(form), error).await
        }
    }
}

/// The domain forms: add, check and remove.
#[derive(Debug, Deserialize)]
pub struct DomainForm {
    domain: String,
}

/// What a domain form does.
#[derive(Debug, Clone, Copy)]
enum DomainAction {
    Add,
    Verify,
    Remove,
}

async fn domain_action(
    state: &AppState,
    user: &SignedIn,
    org: &str,
    form: &DomainForm,
    action: DomainAction,
) -> PageResult {
    let ctx = OrgContext::load(state, user, org, "Single sign-on", "sso").await?;
    ctx.access.require(Role::Owner)?;
    let org_id = &ctx.access.org.id;
    let result = match action {
        DomainAction::Add => domains::add(&state.db, org_id, &form.domain)
            .await
            .map(|d| {
                format!(
                    "Added {}. Create the TXT record {} with the value {}, then check it.",
                    d.domain, d.txt_name, d.txt_value
                )
            }),
        DomainAction::Verify => {
            domains::verify_by_dns(&state.db, &state.sso.dns, org_id, &form.domain)
                .await
                .map(|d| format!("{} is verified.", d.domain))
        }
        DomainAction::Remove => domains::remove(&state.db, org_id, &form.domain)
            .await
            .map(|()| format!("Removed {}.", form.domain.trim())),
    };
    let (error, text) = match result {
        Ok(text) => (false, text),
        Err(e) => match Error::from(e) {
            e @ (Error::Database(_) | Error::Internal(_)) => return Err(e.into()),
            e => (true, view::sentence(&e.to_string())),
        },
    };
    let flash = Flash::cookie(&user.visitor.policy, error, &text);
    let to = format!("/orgs/{}/sso", ctx.slug());
    Ok(with_cookies(Redirect::to(&to).into_response(), vec![flash]))
}

/// `POST /orgs/{org}/sso/domains`: adds an email domain (owner).
pub async fn add_domain(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
    Form(form): Form<DomainForm>,
) -> PageResult {
    domain_action(&state, &user, &org, &form, DomainAction::Add).await
}

/// `POST /orgs/{org}/sso/domains/verify`: checks a domain's TXT record (owner).
pub async fn verify_domain(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
    Form(form): Form<DomainForm>,
) -> PageResult {
    domain_action(&state, &user, &org, &form, DomainAction::Verify).await
}

/// `POST /orgs/{org}/sso/domains/remove`: removes a domain (owner).
pub async fn remove_domain(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
    Form(form): Form<DomainForm>,
) -> PageResult {
    domain_action(&state, &user, &org, &form, DomainAction::Remove).await
}

/// `POST /orgs/{org}/sso/link`: sends the signed-in member to the IdP to link their account (a
/// form with the CSRF token, so no other site can start a link in their name).
pub async fn link(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
    extensions: axum::http::Extensions,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "Single sign-on", "sso").await?;
    let started = crate::http::sso::start_link_for(
        &state,
        &ctx.access,
        &user.claims.sub,
        crate::http::client_ip(&extensions),
    )
    .await?;
    let cookie = crate::http::sso::binding_cookie(&user.visitor.policy, &started.binding);
    Ok(with_cookies(
        Redirect::to(&started.redirect_url).into_response(),
        vec![cookie],
    ))
}
