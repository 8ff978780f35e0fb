//! The control plane's errors, and their one mapping to `{"error": {"code", "message"}}` responses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Everything that can go wrong in a request, by what the client should understand of it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or a field is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// No or bad credentials. The message never says which accounts exist.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but the role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// Staff have suspended the organization; its members' requests for it are refused.
    #[error("{0}")]
    Suspended(String),
    /// A tier limit stops this; the message names the limit.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The tier does not include this feature (402: upgrade to get it).
    #[error("{0}")]
    PaymentRequired(String),
    /// Nothing of that name is visible to the caller (also for other tenants' objects).
    #[error("{0}")]
    NotFound(String),
    /// A unique name is taken or the state does not allow this.
    #[error("{0}")]
    Conflict(String),
    /// Another operation on the same object is running; carries its id.
    #[error("operation {0} is running on this cluster; retry when it has finished")]
    Locked(String),
    /// Too many attempts; retry after the given seconds.
    #[error("too many attempts; retry in {0} s")]
    RateLimited(u64),
    /// Something the request needs (a cluster's data plane, its store) is unreachable for now.
    #[error("{0}")]
    Unavailable(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Something else broke inside; logged, never shown.
    #[error("internal: {0}")]
    Internal(String),
    /// A device-authorization poll that yields no session (yet); its code is the RFC 8628 one.
    #[error("{0}")]
    Grant(GrantError),
}

/// Why a device-authorization poll (`POST /api/v1/device/token`) gave no session: 400 with
/// the RFC 8628 error as the code, so a terminal branches on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Nobody has approved or denied the code yet; poll again after the interval.
    #[error("waiting for the code to be approved in the dashboard")]
    AuthorizationPending,
    /// Polled before the interval passed; the new interval in seconds.
    #[error("polling too fast; wait {0} s between polls")]
    SlowDown(i64),
    /// The code pair expired before it was used.
    #[error("the code has expired; start again")]
    ExpiredToken,
    /// The person denied the request.
    #[error("the request was denied in the dashboard")]
    AccessDenied,
    /// The device code is unknown or its session was already handed out.
    #[error("unknown or already used device code")]
    InvalidGrant,
}

impl GrantError {
    /// The RFC 8628 error code.
    pub fn code(&self) -> &'static str {
        match self {
            GrantError::AuthorizationPending => "authorization_pending",
            GrantError::SlowDown(_) => "slow_down",
            GrantError::ExpiredToken => "expired_token",
            GrantError::AccessDenied => "access_denied",
            GrantError::InvalidGrant => "invalid_grant",
        }
    }
}

/// Results of the control plane's services.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// HTTP status and stable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::Suspended(_) => (StatusCode::FORBIDDEN, "organization_suspended"),
            Error::QuotaExceeded(_) => (StatusCode::FORBIDDEN, "quota_exceeded"),
            Error::PaymentRequired(_) => (StatusCode::PAYMENT_REQUIRED, "upgrade_required"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Error::Locked(_) => (StatusCode::LOCKED, "operation_in_progress"),
            Error::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Error::Database(_) | Error::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            Error::Grant(g) => (StatusCode::BAD_REQUEST, g.code()),
        }
    }

    /// Maps a unique-constraint violation to `Conflict(message)`, anything else to `Database`.
    pub fn unique(e: sqlx::Error, message: impl Into<String>) -> Error {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => Error::Conflict(message.into()),
            _ => Error::Database(e),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            Error::Database(e) => {
                tracing::error!(error = %e, "database error");
                "internal error; it has been logged".to_string()
            }
            Error::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                "internal error; it has been logged".to_string()
            }
            other => other.to_string(),
        };
        let mut body = serde_json::json!({ "error": { "code": code, "message": message } });
        if let Error::Locked(id) = &self {
            body["error"]["operation_id"] = serde_json::Value::String(id.clone());
        }
        if let Error::Grant(GrantError::SlowDown(interval)) = &self {
            body["error"]["interval"] = serde_json::Value::from(*interval);
        }
        let mut response = (status, axum::Json(body)).into_response();
        if let Error::RateLimited(secs) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
