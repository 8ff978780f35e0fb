//! The web dashboard: server-rendered pages (askama templates in `dashboard/templates`) over the
//! same services the JSON API calls, mounted at `/` by [`crate::http::app`].
//!
//! Each handler authenticates through the session cookies ([`session`]), resolves the
//! organization of the path with the same membership rules as the API (another tenant's is "not
//! found"), makes one call into the service layer (`clusters`, `backups`, `restores`,
//! `api_tokens`, …) and renders a page, or redirects after a change (post/redirect/get) with a
//! flash message. Forms work without JavaScript; `dashboard/static/app.js` only adds copy
//! buttons, live status and busy buttons. A failed form is shown again with the error inline and
//! the status the API would have answered, so the audit log reads the same for both doors.
//!
//! It is a module of the control plane rather than a crate of its own: a crate would have to
//! depend on `koru-controlplane` for its services and types, and then the `koru-controlplane`
//! binary could not serve it (a package cycle), or it would have to redefine those types behind
//! a trait. Its non-Rust parts (templates, CSS, JavaScript, browser tests) live in `dashboard/`.

mod assets;
mod audit;
mod auth;
pub mod chart;
mod clusters;
mod connect;
mod device;
pub mod explorer;
mod members;
mod orgs;
pub mod session;
pub mod sso;
mod tokens;
pub mod view;

use askama::Template;
use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::Error;
use crate::state::AppState;

/// The dashboard's routes; its pages behind the session middleware, its static files not.
pub fn routes(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(orgs::home))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/signup", get(auth::signup_page).post(auth::signup))
        .route("/logout", post(auth::logout))
        .route("/login/sso", get(sso::start))
        .route("/orgs/{org}/sso", get(sso::settings).post(sso::configure))
        .route("/orgs/{org}/sso/domains", post(sso::add_domain))
        .route("/orgs/{org}/sso/domains/verify", post(sso::verify_domain))
        .route("/orgs/{org}/sso/domains/remove", post(sso::remove_domain))
        .route("/orgs/{org}/sso/link", post(sso::link))
        .route(
            "/orgs/{org}/clusters",
            get(clusters::list).post(clusters::create),
        )
        .route("/orgs/{org}/clusters/new", get(clusters::new))
        .route("/orgs/{org}/clusters/{id}", get(clusters::detail))
        .route(
            "/orgs/{org}/clusters/{id}/data-tokens",
            post(clusters::data_token),
        )
        .route("/orgs/{org}/clusters/{id}/backups", post(clusters::backup))
        .route("/orgs/{org}/clusters/{id}/restore", post(clusters::restore))
        .route("/orgs/{org}/clusters/{id}/settings", post(clusters::update))
        .route("/orgs/{org}/clusters/{id}/delete", post(clusters::delete))
        .route("/orgs/{org}/clusters/{id}/suspend", post(clusters::suspend))
        .route("/orgs/{org}/clusters/{id}/resume", post(clusters::resume))
        .route("/orgs/{org}/tokens", get(tokens::list).post(tokens::create))
        .route("/orgs/{org}/tokens/{id}/revoke", post(tokens::revoke))
        .route("/orgs/{org}/plan", get(orgs::plan).post(orgs::set_plan))
        .route(
            "/orgs/{org}/members",
            get(members::list).post(members::invite),
        )
        .route("/orgs/{org}/members/{user}/role", post(members::set_role))
        .route("/orgs/{org}/members/{user}/remove", post(members::remove))
        .route("/orgs/{org}/audit", get(audit::list))
        .route("/device", get(device::enter))
        .route("/device/{code}", get(device::link))
        .route("/device/approve", post(device::approve))
        .route("/device/deny", post(device::deny))
        .route("/invitations/accept", post(members::accept))
        .route("/invitations/{token}", get(members::show))
        .merge(explorer::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            session::middleware,
        ));
    Router::new()
        .merge(pages)
        .route("/static/{file}", get(assets::serve))
}

/// Any other path: a page saying so to a browser, the API's JSON error to everything else (and
/// under `/api/`).
pub async fn fallback(req: axum::extract::Request) -> Response {
    let browser = req
        .headers()
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if browser && !req.uri().path().starts_with("/api/") {
        return PageError::new(
            StatusCode::NOT_FOUND,
            "There is no page at this address. It may have moved, or the link may be mistyped.",
        )
        .into_response();
    }
    crate::http::meta::not_found().await.into_response()
}

/// Headers of every page: never cached (they carry tokens and CSRF values), no framing, no
/// script or style from anywhere but here.
const PAGE_HEADERS: [(HeaderName, &str); 5] = [
    (CONTENT_TYPE, "text/html; charset=utf-8"),
    (CACHE_CONTROL, "no-store"),
    (
        HeaderName::from_static("content-security-policy"),
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (HeaderName::from_static("x-content-type-options"), "nosniff"),
    (HeaderName::from_static("referrer-policy"), "same-origin"),
];

/// Renders a page with `status`.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => {
            let mut response = (status, body).into_response();
            for (name, value) in PAGE_HEADERS {
                response
                    .headers_mut()
                    .insert(name, HeaderValue::from_static(value));
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering a dashboard page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; it has been logged",
            )
                .into_response()
        }
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: view::Layout,
    status: u16,
    heading: &'static str,
    message: String,
}

/// A page that could not be shown, as an error page with its status.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    /// An error page saying `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
        }
    }

    /// What the page says.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<Error> for PageError {
    /// The API's status; internal details are logged, never shown.
    fn from(e: Error) -> PageError {
        let (status, _) = e.status_and_code();
        let message = match &e {
            Error::Database(_) | Error::Internal(_) => {
                tracing::error!(error = %e, "dashboard request failed");
                "Something went wrong on our side; it has been logged. Please try again.".into()
            }
            other => view::sentence(&other.to_string()),
        };
        PageError { status, message }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let heading = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::PAYMENT_REQUIRED => "Upgrade needed",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        render(
            self.status,
            &ErrorPage {
                layout: view::Layout::bare(heading),
                status: self.status.as_u16(),
                heading,
                message: self.message,
            },
        )
    }
}

/// Results of dashboard handlers.
pub type PageResult = Result<Response, PageError>;
