//! The approval page of device authorization (`koru login --sso`): a signed-in person enters or
//! follows the user code their terminal shows, sees what asked, and approves or denies it.
//! Every look-up of a code counts against [`crate::device::DeviceLimiter`], so codes cannot be
//! guessed from here.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{Extensions, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::session::SignedIn;
use super::view::{self, Layout};
use super::{PageError, PageResult, render};
use crate::audit::AuditSlot;
use crate::device::{self, Decision, Pending};
use crate::error::Error;
use crate::http::client_ip;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    layout: Layout,
    /// The request to decide, once a valid code was entered.
    pending: Option<PendingView>,
    /// What became of the decision, when one was made.
    done: Option<String>,
    error: Option<String>,
    typed: String,
}

/// A pending request as shown.
struct PendingView {
    user_code: String,
    client_name: String,
    organization: Option<String>,
    client_ip: Option<String>,
    created: String,
}

impl From<Pending> for PendingView {
    fn from(p: Pending) -> PendingView {
        PendingView {
            user_code: p.user_code,
            client_name: p.client_name,
            organization: p.organization,
            client_ip: p.client_ip,
            created: view::time_ms(p.created_at),
        }
    }
}

/// The code typed into the form of `GET /device`.
#[derive(Debug, Default, Deserialize)]
pub struct Typed {
    #[serde(default)]
    user_code: Option<String>,
}

async fn page(state: &AppState, user: &SignedIn) -> Result<Layout, PageError> {
    let mut layout = Layout::anonymous("Sign in a terminal", &user.visitor);
    layout.email = Some(
        crate::accounts::user(&state.db, &user.claims.sub)
            .await?
            .email,
    );
    Ok(layout)
}

fn limited(secs: u64, layout: Layout, typed: String) -> Response {
    let mut response = render(
        StatusCode::TOO_MANY_REQUESTS,
        &DevicePage {
            layout,
            pending: None,
            done: None,
            error: Some(format!(
                "Too many codes tried. Wait {secs} s, then enter the code again."
            )),
            typed,
        },
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs));
    response
}

async fn show(
    state: &AppState,
    user: &SignedIn,
    extensions: &Extensions,
    typed: &str,
) -> PageResult {
    let layout = page(state, user).await?;
    if let Err(secs) = state
        .sso
        .device_limiter
        .check_lookup(&user.claims.sub, client_ip(extensions))
    {
        return Ok(limited(secs, layout, typed.to_string()));
    }
    let (status, pending, error) = match device::pending(&state.db, typed).await {
        Ok(p) => (StatusCode::OK, Some(p.into()), None),
        Err(e @ (Error::Database(_) | Error::Internal(_))) => return Err(e.into()),
        Err(e) => (
            e.status_and_code().0,
            None,
            Some(view::sentence(&e.to_string())),
        ),
    };
    Ok(render(
        status,
        &DevicePage {
            layout,
            pending,
            done: None,
            error,
            typed: typed.to_string(),
        },
    ))
}

/// `GET /device`: the form to enter a code, or (with `?user_code=`) the request it names.
pub async fn enter(
    State(state): State<AppState>,
    user: SignedIn,
    extensions: Extensions,
    Query(q): Query<Typed>,
) -> PageResult {
    match q
        .user_code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        Some(typed) => show(&state, &user, &extensions, typed).await,
        None => Ok(render(
            StatusCode::OK,
            &DevicePage {
                layout: page(&state, &user).await?,
                pending: None,
                done: None,
                error: None,
                typed: String::new(),
            },
        )),
    }
}

/// `GET /device/{code}`: the request a verification link names.
pub async fn link(
    State(state): State<AppState>,
    user: SignedIn,
    extensions: Extensions,
    Path(code): Path<String>,
) -> PageResult {
    show(&state, &user, &extensions, &code).await
}

/// The approve and deny forms.
#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    user_code: String,
}

async fn decide(
    state: &AppState,
    user: &SignedIn,
    extensions: &Extensions,
    form: &DecisionForm,
    decision: Decision,
) -> PageResult {
    let layout = page(state, user).await?;
    if let Err(secs) = state
        .sso
        .device_limiter
        .check_lookup(&user.claims.sub, client_ip(extensions))
    {
        return Ok(limited(secs, layout, form.user_code.clone()));
    }
    if let Some(org) = &user.claims.org {
        AuditSlot::note_org(extensions, org.clone());
    }
    match device::decide(&state.db, &form.user_code, &user.claims, decision).await {
        Ok(()) => Ok(render(
            StatusCode::OK,
            &DevicePage {
                layout,
                pending: None,
                done: Some(match decision {
                    Decision::Approve => {
                        "Approved. Go back to your terminal: it signs in within a few seconds."
                            .into()
                    }
                    Decision::Deny => {
                        "Denied. The terminal that asked was told so and got no access.".into()
                    }
                }),
                error: None,
                typed: String::new(),
            },
        )),
        Err(e @ (Error::Database(_) | Error::Internal(_))) => Err(PageError::from(e)),
        Err(e) => Ok(render(
            e.status_and_code().0,
            &DevicePage {
                layout,
                pending: None,
                done: None,
                error: Some(view::sentence(&e.to_string())),
                typed: form.user_code.clone(),
            },
        )),
    }
}

/// `POST /device/approve`: the terminal gets a session with this session's scope.
pub async fn approve(
    State(state): State<AppState>,
    user: SignedIn,
    extensions: Extensions,
    Form(form): Form<DecisionForm>,
) -> Response {
    decide(&state, &user, &extensions, &form, Decision::Approve)
        .await
        .into_response()
}

/// `POST /device/deny`: the terminal is told `access_denied`.
pub async fn deny(
    State(state): State<AppState>,
    user: SignedIn,
    extensions: Extensions,
    Form(form): Form<DecisionForm>,
) -> Response {
    decide(&state, &user, &extensions, &form, Decision::Deny)
        .await
        .into_response()
}
