//! The HTTP API under `/api/v1`: the router, the JSON body extractor, and the OpenAPI document.

pub mod accounts;
pub mod audit;
pub mod clusters;
pub mod device;
pub mod gateway;
pub mod meta;
pub mod orgs;
pub mod principal;
pub mod sso;
pub mod tokens;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::routing::{delete, get, post};
use serde::de::DeserializeOwned;
use utoipa::OpenApi;

use crate::error::Error;
use crate::state::AppState;

/// The whole API, and the dashboard's pages at `/`, as a router, so tests call it without a socket.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        .route("/metrics", get(crate::metrics::serve))
        .route("/api/openapi.json", get(meta::openapi))
        .route("/api/v1/tiers", get(meta::tiers))
        .route("/api/v1/regions", get(meta::regions))
        .route("/api/v1/signup", post(accounts::signup))
        .route("/api/v1/login", post(accounts::login))
        .route("/api/v1/token/refresh", post(accounts::refresh))
        .route("/api/v1/logout", post(accounts::logout))
        .route("/api/v1/me", get(accounts::me))
        .route("/api/v1/device/code", post(device::code))
        .route("/api/v1/device/token", post(device::token))
        .route("/api/v1/invitations/accept", post(orgs::accept_invitation))
        .route(
            "/api/v1/orgs/{org}",
            get(orgs::get_org).patch(orgs::set_plan),
        )
        .route(
            "/api/v1/orgs/{org}/members",
            get(orgs::list_members).post(orgs::invite),
        )
        .route(
            "/api/v1/orgs/{org}/members/{user}",
            axum::routing::patch(orgs::set_member_role).delete(orgs::remove_member),
        )
        .route(
            "/api/v1/orgs/{org}/invitations",
            get(orgs::list_invitations).post(orgs::invite),
        )
        .route(
            "/api/v1/orgs/{org}/tokens",
            get(tokens::list).post(tokens::create),
        )
        .route("/api/v1/orgs/{org}/tokens/{id}", delete(tokens::revoke))
        .route(
            "/api/v1/orgs/{org}/clusters",
            get(clusters::list).post(clusters::create),
        )
        .route(
            "/api/v1/orgs/{org}/clusters/{id}",
            get(clusters::get)
                .patch(clusters::update)
                .delete(clusters::delete),
        )
        .route(
            "/api/v1/orgs/{org}/clusters/{id}/data-tokens",
            get(clusters::list_data_tokens).post(clusters::data_token),
        )
        .route(
            "/api/v1/orgs/{org}/clusters/{id}/data-tokens/{token}",
            delete(clusters::revoke_data_token),
        )
        .route(
            "/api/v1/clusters/{id}/revocations",
            get(clusters::revocations),
        )
        .route(
            "/api/v1/orgs/{org}/clusters/{id}/backups",
            get(clusters::list_backups).post(clusters::create_backup),
        )
        .route(
            "/api/v1/orgs/{org}/clusters/{id}/backups/verify",
            post(clusters::verify_backup),
        )
        .route(
            "/api/v1/orgs/{org}/clusters/{id}/restore",
            post(clusters::restore),
        )
        .route(
            "/api/v1/orgs/{org}/clusters/{id}/suspend",
            post(clusters::suspend),
        )
        .route(
            "/api/v1/orgs/{org}/clusters/{id}/resume",
            post(clusters::resume),
        )
        .route("/api/v1/orgs/{org}/clusters/{id}/slo", get(clusters::slo))
        .route(koru_gateway_api::SYNC_PATH, post(gateway::sync))
        .route(
            "/internal/v1/gateway/clusters/{id}/wake",
            post(gateway::wake),
        )
        .route("/api/v1/operations/{id}", get(clusters::operation))
        .route(
            "/api/v1/orgs/{org}/sso",
            get(sso::get_config).put(sso::put_config),
        )
        .route(
            "/api/v1/orgs/{org}/sso/domains",
            get(sso::list_domains).post(sso::add_domain),
        )
        .route(
            "/api/v1/orgs/{org}/sso/domains/{domain}",
            delete(sso::remove_domain),
        )
        .route(
            "/api/v1/orgs/{org}/sso/domains/{domain}/verify",
            post(sso::verify_domain),
        )
        .route("/api/v1/orgs/{org}/sso/link", post(sso::start_link))
        .route("/saml/{org}/metadata", get(sso::metadata))
        .route("/saml/{org}/login", get(sso::login))
        .route("/saml/{org}/acs", post(sso::acs))
        .route("/api/v1/orgs/{org}/usage", get(clusters::usage))
        .route("/api/v1/orgs/{org}/audit", get(audit::list))
        .route("/api/v1/orgs/{org}/audit/export", get(audit::export))
        .route("/api/v1/orgs/{org}/audit/verify", get(audit::verify))
        .route("/api/v1/audit/public-key", get(audit::public_key))
        .merge(crate::dashboard::routes(state.clone()))
        .fallback(crate::dashboard::fallback)
        // Last, so it wraps every route above: request ids and the audit log.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::audit::middleware::record,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::observe,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// The client's address, when the server was started with connection info.
pub fn client_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|axum::extract::ConnectInfo(addr)| addr.ip())
}

/// A JSON body whose rejections are our `{"error": ...}` 400s instead of axum's plain text.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(e) => Err(Error::BadRequest(match e {
                JsonRejection::MissingJsonContentType(_) => {
                    "send the body as JSON with Content-Type: application/json".to_string()
                }
                other => other.body_text(),
            })),
        }
    }
}

/// A JSON body that is read with the request but parsed only when the handler asks, after it
/// has resolved the organization and the object of the path: a malformed body sent to another
/// tenant's path then gets the same 404 as a well-formed one, not a 400 that confirms the path.
pub struct LateJson<T> {
    bytes: axum::body::Bytes,
    json_type: bool,
    _body: std::marker::PhantomData<fn() -> T>,
}

impl<S, T> FromRequest<S> for LateJson<T>
where
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| {
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            });
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| Error::BadRequest(e.body_text()))?;
        Ok(LateJson {
            bytes,
            json_type,
            _body: std::marker::PhantomData,
        })
    }
}

impl<T: DeserializeOwned> LateJson<T> {
    /// Parses the body, with the same 400s as [`Json`].
    pub fn parse(self) -> Result<T, Error> {
        if !self.json_type {
            return Err(Error::BadRequest(
                "send the body as JSON with Content-Type: application/json".into(),
            ));
        }
        axum::Json::<T>::from_bytes(&self.bytes)
            .map(|axum::Json(v)| v)
            .map_err(|e| Error::BadRequest(e.body_text()))
    }
}

/// A query string whose rejections are our `{"error": ...}` 400s instead of axum's plain text.
pub struct Query<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| Error::BadRequest(e.body_text()))
    }
}

/// The OpenAPI 3 document of the API, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(title = "KoruDelta Cloud API", description = "The control plane of KoruDelta Cloud. \
        Paths under `/api/v1/orgs/{org}` resolve the organization (id first, then slug), the \
        caller's role and the path's object before reading the body: another tenant's path is 404 \
        whatever the body. A suspended organization answers its members 403 \
        `organization_suspended`."),
    paths(
        meta::tiers,
        meta::regions,
        accounts::signup,
        accounts::login,
        accounts::refresh,
        accounts::logout,
        accounts::me,
        device::code,
        device::token,
        orgs::get_org,
        orgs::set_plan,
        orgs::list_members,
        orgs::set_member_role,
        orgs::remove_member,
        orgs::list_invitations,
        orgs::invite,
        orgs::accept_invitation,
        tokens::list,
        tokens::create,
        tokens::revoke,
        audit::list,
        audit::export,
        audit::verify,
        audit::public_key,
        clusters::list,
        clusters::create,
        clusters::get,
        clusters::update,
        clusters::delete,
        clusters::data_token,
        clusters::list_data_tokens,
        clusters::revoke_data_token,
        clusters::revocations,
        clusters::create_backup,
        clusters::list_backups,
        clusters::verify_backup,
        clusters::restore,
        clusters::suspend,
        clusters::resume,
        clusters::slo,
        clusters::operation,
        sso::get_config,
        sso::put_config,
        sso::list_domains,
        sso::add_domain,
        sso::verify_domain,
        sso::remove_domain,
        sso::start_link,
        sso::metadata,
        sso::login,
        sso::acs,
        clusters::usage,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// The OpenAPI document as committed in `controlplane/openapi.json`: pretty JSON with a final
/// newline (`tests/openapi.rs` fails when the two differ).
pub fn openapi_json() -> Result<String, serde_json::Error> {
    let mut json = serde_json::to_string_pretty(&ApiDoc::openapi())?;
    json.push('\n');
    Ok(json)
}

/// Declares the bearer scheme every authenticated operation uses.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
