//! The API's error responses: every failure becomes `{"error": {"code", "message"}}` with the right
//! status, mapped in one place.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::auth::AuthError;
use crate::error::StoreError;
use crate::query::{Limit, QueryError};
use crate::raft::ReplicaError;
use crate::rewind::RewindError;

/// An error on its way to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// Seconds to wait before retrying, for 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 for a request the client must fix.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404 for something that does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = koru_dataplane_api::ErrorBody::new(self.code, self.message);
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match e {
            StoreError::InvalidName(_)
            | StoreError::InvalidRequest(_)
            | StoreError::InvalidValue(_) => StatusCode::BAD_REQUEST,
            StoreError::ValueTooLarge { .. } | StoreError::BatchTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            StoreError::QuotaExceeded { .. } => StatusCode::INSUFFICIENT_STORAGE,
            StoreError::Crdt(crate::crdt::CrdtError::Malformed(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            StoreError::Crdt(
                crate::crdt::CrdtError::BadOperation(_) | crate::crdt::CrdtError::InvalidValue(_),
            ) => StatusCode::BAD_REQUEST,
            StoreError::Crdt(
                crate::crdt::CrdtError::TypeMismatch { .. } | crate::crdt::CrdtError::NotACrdt,
            )
            | StoreError::Conflict { .. }
            | StoreError::UniqueViolation(_)
            | StoreError::IndexExists { .. } => StatusCode::CONFLICT,
            StoreError::NoSuchIndex { .. } => StatusCode::NOT_FOUND,
            StoreError::ReadOnly | StoreError::Closed => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Locked(_) | StoreError::Wal(_) | StoreError::TextIndex(_) => {
                // Paths and OS errors stay in the server log.
                tracing::error!(error = %e, "storage error while serving a request");
                return Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal storage error; see the server log",
                );
            }
        };
        Self::new(status, e.code(), e.to_string())
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        use crate::db::DbError;
        let status = match e {
            DbError::Store(e) => return e.into(),
            DbError::Query(e) => return e.into(),
            DbError::NotFound { .. } => StatusCode::NOT_FOUND,
            DbError::VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
            DbError::BadRequest(_) | DbError::MalformedJson(_) => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e.code(), e.to_string())
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let status = match e {
            QueryError::Invalid(_)
            | QueryError::NoPlan(_)
            | QueryError::NoTextIndex(_)
            | QueryError::Unsupported(_) => StatusCode::BAD_REQUEST,
            QueryError::LimitExceeded {
                limit: Limit::ResultBytes,
                ..
            } => StatusCode::PAYLOAD_TOO_LARGE,
            QueryError::LimitExceeded { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            QueryError::Unreadable(_) | QueryError::Interrupted => {
                tracing::error!(error = %e, "a query failed");
                return Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the query failed; see the server log",
                );
            }
            QueryError::Store(e) => return e.into(),
        };
        Self::new(status, e.code(), e.to_string())
    }
}

impl From<ReplicaError> for ApiError {
    fn from(e: ReplicaError) -> Self {
        let message = e.to_string();
        let unavailable = |code| Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message.clone());
        match e {
            ReplicaError::NoLeader => {
                let mut e = unavailable("no_leader");
                e.retry_after = Some(1);
                e
            }
            ReplicaError::Refused(_) => Self::bad_request(message),
            ReplicaError::Unknown(_) => unavailable("outcome_unknown"),
            ReplicaError::Stopped(_) | ReplicaError::Setup(_) => unavailable("unavailable"),
            ReplicaError::CatchingUp { .. } => {
                let mut e = unavailable("catching_up");
                e.retry_after = Some(1);
                e
            }
            ReplicaError::HoldingVote => unavailable("rejoining"),
            ReplicaError::ForeignAddress(_) => {
                Self::new(StatusCode::BAD_REQUEST, "foreign_member_address", message)
            }
            ReplicaError::LeaderRefused { status, body } => leader_refusal(status, &body),
            ReplicaError::UniqueViolation(_) => {
                Self::new(StatusCode::CONFLICT, "unique_violation", message)
            }
        }
    }
}

/// The leader's refusal of a forwarded write as this member's answer: the same status, code
/// and message (and a retry hint for a rate limit).
fn leader_refusal(status: u16, body: &str) -> ApiError {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| Some(v.get("error")?.get("message")?.as_str()?.to_owned()))
        .unwrap_or_else(|| body.to_owned());
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let code = match status {
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::INSUFFICIENT_STORAGE => "storage_quota_exceeded",
        _ => "refused",
    };
    let mut e = ApiError::new(status, code, message);
    if status == StatusCode::TOO_MANY_REQUESTS {
        e.retry_after = Some(1);
    }
    e
}

impl From<RewindError> for ApiError {
    fn from(e: RewindError) -> Self {
        let message = e.to_string();
        match e {
            RewindError::Store(e) => e.into(),
            RewindError::Replica(e) => e.into(),
            RewindError::InvalidRequest(_) => Self::bad_request(message),
            RewindError::UnknownNamespace(_) => Self::not_found(message),
            RewindError::TooLarge { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "rewind_too_large", message)
            }
            RewindError::Stale { .. } | RewindError::Contended { .. } => {
                Self::new(StatusCode::CONFLICT, "rewind_conflict", message)
            }
            RewindError::Internal => {
                tracing::error!(error = %message, "rewind failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the rewind failed; see the server log",
                )
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let message = e.to_string();
        match e {
            AuthError::Missing | AuthError::Invalid(_) => {
                Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
            }
            AuthError::WrongCluster(_) | AuthError::Forbidden { .. } => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
        }
    }
}

/// A JSON request body whose failures are API errors (415 not declared JSON, 400 malformed, 413
/// too large).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Parsing is where a body becomes a write, so the type is checked here as well as in the
        // API's middleware: a route added without that middleware stays covered.
        super::media::check(req.headers(), true)?;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "request body is larger than the server accepts",
                    )
                } else {
                    ApiError::bad_request(format!("could not read the request body: {e}"))
                }
            })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("malformed JSON body: {e}"),
            )
        })
    }
}

/// Path parameters whose failures are API errors.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::bad_request(format!("invalid path: {e}")))
    }
}

/// Query-string parameters whose failures are API errors.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
    }
}
