//! Logging in, signing up (with the choice of plan) and logging out, through the control plane's
//! own accounts and sessions: the same rate limits, password rules and generic login errors as
//! `POST /api/v1/login`.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::session::{self, Flash, SignedIn, Visitor, safe_next, with_cookies};
use super::view::{self, Layout};
use super::{PageResult, render};
use crate::accounts::{self, BAD_LOGIN, LoginRequest, SignupRequest};
use crate::audit::AuditSlot;
use crate::audit::middleware::attempted_email;
use crate::error::Error;
use crate::http::client_ip;
use crate::state::AppState;
use crate::tiers::{self, TierName};

/// Where a login goes back to.
#[derive(Debug, Default, Deserialize)]
pub struct Next {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    email: String,
    next: String,
    error: Option<String>,
    /// Whether the SSO form is unfolded (after an SSO-only organization refused a password).
    sso_open: bool,
}

/// `GET /login`.
pub async fn login_page(visitor: Visitor, Query(q): Query<Next>) -> Response {
    let next = q.next.as_deref().and_then(safe_next).unwrap_or("/");
    if visitor.user.is_some() {
        return Redirect::to(next).into_response();
    }
    render(
        StatusCode::OK,
        &LoginPage {
            layout: Layout::anonymous("Log in", &visitor),
            email: String::new(),
            next: next.to_string(),
            error: None,
            sso_open: false,
        },
    )
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`: checks the password and opens a session in cookies.
pub async fn login(
    State(state): State<AppState>,
    visitor: Visitor,
    extensions: Extensions,
    Form(form): Form<LoginForm>,
) -> Response {
    AuditSlot::note_actor(&extensions, attempted_email(&form.email));
    let next = form
        .next
        .as_deref()
        .and_then(safe_next)
        .unwrap_or("/")
        .to_string();
    let again = |status: StatusCode, error: String| {
        render(
            status,
            &LoginPage {
                layout: Layout::anonymous("Log in", &visitor),
                email: form.email.clone(),
                next: next.clone(),
                error: Some(error),
                sso_open: status == StatusCode::FORBIDDEN,
            },
        )
    };
    if let Err(secs) = state
        .login_limiter
        .check(&form.email, client_ip(&extensions))
    {
        let mut response = again(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many attempts. Try again in {secs} s."),
        );
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
        return response;
    }
    let request = LoginRequest {
        email: form.email.clone(),
        password: form.password.clone(),
    };
    match accounts::login(&state.db, &state.sessions, &request).await {
        Ok((user, tokens)) => {
            AuditSlot::note_actor(&extensions, format!("user:{}", user.id));
            with_cookies(
                Redirect::to(&next).into_response(),
                session::signed_in_cookies(&visitor.policy, &tokens),
            )
        }
        // Never more than the API says: no hint of which accounts exist.
        Err(Error::Unauthorized(_)) => again(StatusCode::UNAUTHORIZED, view::sentence(BAD_LOGIN)),
        Err(e @ Error::Forbidden(_)) => {
            again(StatusCode::FORBIDDEN, view::sentence(&e.to_string()))
        }
        Err(e) => super::PageError::from(e).into_response(),
    }
}

/// A plan on the sign-up page.
struct PlanChoice {
    name: &'static str,
    title: &'static str,
    price: &'static str,
    storage: String,
    ops: String,
    clusters: String,
    retention: String,
    sso: bool,
}

/// The plans as the sign-up and plan pages show them, from the tier table.
fn plans() -> Vec<PlanChoice> {
    tiers::TIERS
        .iter()
        .map(|t| PlanChoice {
            name: t.name.as_str(),
            title: match t.name {
                TierName::Free => "Free",
                TierName::Pro => "Pro",
                TierName::Enterprise => "Enterprise",
            },
            price: match t.name {
                TierName::Free => "Try it out",
                TierName::Pro => "For production",
                TierName::Enterprise => "Contact us",
            },
            storage: view::bytes(t.max_storage_bytes),
            ops: view::number(t.max_ops_per_sec),
            clusters: view::number(u64::from(t.max_clusters)),
            retention: format!(
                "{} day{}",
                t.backup_retention_days,
                if t.backup_retention_days == 1 {
                    ""
                } else {
                    "s"
                }
            ),
            sso: t.sso,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    layout: Layout,
    plans: Vec<PlanChoice>,
    email: String,
    organization: String,
    tier: String,
    error: Option<String>,
    enterprise: bool,
    next: String,
}

/// The plan pre-selected on the sign-up page (`?plan=pro` from a pricing link), and where to go
/// afterwards (an invitation link).
#[derive(Debug, Default, Deserialize)]
pub struct PlanQuery {
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

/// `GET /signup`.
pub async fn signup_page(visitor: Visitor, Query(q): Query<PlanQuery>) -> Response {
    if visitor.user.is_some() {
        return Redirect::to("/").into_response();
    }
    let tier = q
        .plan
        .filter(|p| TierName::parse(p).is_some())
        .unwrap_or_else(|| "free".into());
    render(
        StatusCode::OK,
        &SignupPage {
            layout: Layout::anonymous("Sign up", &visitor),
            plans: plans(),
            email: String::new(),
            organization: String::new(),
            enterprise: tier == "enterprise",
            tier,
            error: None,
            next: q
                .next
                .as_deref()
                .and_then(safe_next)
                .unwrap_or("")
                .to_string(),
        },
    )
}

/// The sign-up form.
#[derive(Debug, Deserialize)]
pub struct SignupForm {
    email: String,
    password: String,
    organization: String,
    tier: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /signup`: creates the account and its organization on the chosen plan, and logs in.
/// Enterprise is arranged with sales, so choosing it shows how to reach them instead.
pub async fn signup(
    State(state): State<AppState>,
    visitor: Visitor,
    extensions: Extensions,
    Form(form): Form<SignupForm>,
) -> Response {
    AuditSlot::note_actor(&extensions, attempted_email(&form.email));
    let tier = TierName::parse(&form.tier);
    let next = form.next.as_deref().and_then(safe_next).map(str::to_string);
    let again = |status: StatusCode, error: Option<String>| {
        render(
            status,
            &SignupPage {
                layout: Layout::anonymous("Sign up", &visitor),
                plans: plans(),
                email: form.email.clone(),
                organization: form.organization.clone(),
                tier: tier.unwrap_or(TierName::Free).as_str().to_string(),
                enterprise: tier == Some(TierName::Enterprise),
                error,
                next: next.clone().unwrap_or_default(),
            },
        )
    };
    let Some(tier) = tier else {
        return again(
            StatusCode::BAD_REQUEST,
            Some("Choose a plan: free, pro or enterprise.".into()),
        );
    };
    if tier == TierName::Enterprise {
        // Not an error of the visitor's: the page explains how enterprise plans start.
        return again(StatusCode::PAYMENT_REQUIRED, None);
    }
    let request = SignupRequest {
        email: form.email.clone(),
        password: form.password.clone(),
        organization: form.organization.clone(),
        tier: Some(tier),
    };
    match accounts::signup(&state.db, &state.sessions, &request).await {
        Ok(created) => {
            AuditSlot::note_actor(&extensions, format!("user:{}", created.user.id));
            AuditSlot::note_org(&extensions, created.organization.id.clone());
            let mut cookies = session::signed_in_cookies(&visitor.policy, &created.tokens);
            cookies.push(Flash::cookie(
                &visitor.policy,
                false,
                &format!(
                    "Welcome to KoruDelta Cloud. {} is on the {} plan: create your first cluster.",
                    created.organization.name,
                    tier.as_str()
                ),
            ));
            let to = next
                .clone()
                .unwrap_or_else(|| format!("/orgs/{}/clusters", created.organization.slug));
            with_cookies(Redirect::to(&to).into_response(), cookies)
        }
        Err(e @ (Error::BadRequest(_) | Error::Conflict(_) | Error::PaymentRequired(_))) => {
            let (status, _) = e.status_and_code();
            again(status, Some(view::sentence(&e.to_string())))
        }
        Err(e) => super::PageError::from(e).into_response(),
    }
}

/// `POST /logout`: ends the session (access and refresh tokens) and clears the cookies.
pub async fn logout(
    State(state): State<AppState>,
    user: SignedIn,
    headers: HeaderMap,
) -> PageResult {
    let policy = user.visitor.policy;
    let refresh = policy.read(&headers, session::REFRESH);
    match accounts::logout(&state.db, &user.claims, refresh.as_deref()).await {
        // A second logout of the same session (another tab) has nothing left to end.
        Ok(()) | Err(Error::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let mut cookies = session::signed_out_cookies(&policy);
    cookies.push(Flash::cookie(&policy, false, "You are logged out."));
    Ok(with_cookies(
        Redirect::to("/login").into_response(),
        cookies,
    ))
}
