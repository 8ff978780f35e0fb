//! Every answer the gateway gives itself (rather than a member's), mapped once to a status and the
//! `{"error": {"code", "message"}}` body the data plane also uses.

use std::time::Duration;

use bytes::Bytes;

use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};

use crate::body::{Body, full};

/// Why the gateway answered a request itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// No route table has been loaded yet (just started, control plane not reached yet).
    #[error("the gateway has no route table yet; retry shortly")]
    NotReady,
    /// No cluster matches the host or path.
    #[error(
        "no cluster is reachable at this host or path (route by host `<cluster>.<org>.<domain>` or path `/c/<org>/<cluster>/...`)"
    )]
    UnknownCluster,
    /// A route the gateway never forwards (`/raft/*`, `/admin/*`, `/metrics`).
    #[error("not found")]
    ForbiddenRoute,
    /// The client address is not in the cluster's allow list.
    #[error("your address {0} is not in this cluster's allow list")]
    AddressNotAllowed(String),
    /// The body is larger than the tier allows.
    #[error("the request body is larger than this cluster's limit of {0} bytes")]
    TooLarge(u64),
    /// The body could not be read from the client.
    #[error("cannot read the request body: {0}")]
    BadBody(String),
    /// No token, or one that does not verify.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token for another cluster.
    #[error("the token is for cluster {0:?}, not this one")]
    WrongCluster(String),
    /// The token's id was revoked.
    #[error("the token has been revoked")]
    Revoked,
    /// This replica's share of the cluster's ops/s is spent.
    #[error("this cluster's operations-per-second limit is reached; retry after {0:?}")]
    RateLimited(Duration),
    /// The cluster did not wake within the deadline.
    #[error("the cluster is waking up and was not ready within {0:?}; retry shortly")]
    Waking(Duration),
    /// The cluster cannot serve now (being created, failed...).
    #[error("the cluster is not available right now; retry later")]
    Unavailable,
    /// A member failed while it had the request (it may have been applied).
    #[error("no member of the cluster answered: {0}")]
    Upstream(String),
    /// No member took the request (no connection, or no leader): it was applied nowhere, so it
    /// may be sent again once the table or the members' health changes.
    #[error("no member of the cluster answered: {0}")]
    Unreachable(String),
}

/// How long clients are told to wait before retrying a cluster that is waking or unavailable.
const RETRY_AFTER_WAKING: Duration = Duration::from_secs(5);

impl GatewayError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::UnknownCluster | GatewayError::ForbiddenRoute => StatusCode::NOT_FOUND,
            GatewayError::AddressNotAllowed(_) | GatewayError::WrongCluster(_) => {
                StatusCode::FORBIDDEN
            }
            GatewayError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::BadBody(_) => StatusCode::BAD_REQUEST,
            GatewayError::Unauthorized(_) | GatewayError::Revoked => StatusCode::UNAUTHORIZED,
            GatewayError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::Waking(_) | GatewayError::Unavailable | GatewayError::NotReady => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            GatewayError::Upstream(_) | GatewayError::Unreachable(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The machine-readable code of the body.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::NotReady => "not_ready",
            GatewayError::UnknownCluster => "cluster_not_found",
            GatewayError::ForbiddenRoute => "not_found",
            GatewayError::AddressNotAllowed(_) => "address_not_allowed",
            GatewayError::TooLarge(_) => "payload_too_large",
            GatewayError::BadBody(_) => "bad_request",
            GatewayError::Unauthorized(_) => "unauthorized",
            GatewayError::WrongCluster(_) => "wrong_cluster",
            GatewayError::Revoked => "token_revoked",
            GatewayError::RateLimited(_) => "rate_limited",
            GatewayError::Waking(_) => "waking",
            GatewayError::Unavailable => "unavailable",
            GatewayError::Upstream(_) | GatewayError::Unreachable(_) => "bad_gateway",
        }
    }

    /// The `reason` label of the refused-requests metric, for refusals at the edge.
    pub fn refusal_reason(&self) -> Option<&'static str> {
        Some(match self {
            GatewayError::AddressNotAllowed(_) => "allow_list",
            GatewayError::TooLarge(_) => "too_large",
            GatewayError::Unauthorized(_) | GatewayError::WrongCluster(_) => "token",
            GatewayError::Revoked => "revoked",
            GatewayError::RateLimited(_) => "rate_limit",
            GatewayError::ForbiddenRoute => "forbidden_route",
            _ => return None,
        })
    }

    /// `Retry-After` seconds, for the answers that have one.
    fn retry_after(&self) -> Option<u64> {
        match self {
            GatewayError::RateLimited(wait) => Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            GatewayError::NotReady => Some(1),
            GatewayError::Waking(_) | GatewayError::Unavailable => {
                Some(RETRY_AFTER_WAKING.as_secs())
            }
            _ => None,
        }
    }

    /// The response: status, JSON body, `Retry-After` where it applies.
    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({"error": {"code": self.code(), "message": self.to_string()}});
        let mut response = Response::new(full(Bytes::from(body.to_string())));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(secs) = self.retry_after() {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A JSON error body's `code`, if `bytes` is one (a member's 503 says whether it has a leader).
pub fn error_code(bytes: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    value["error"]["code"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_their_status_code_and_retry_after() {
        let r = GatewayError::RateLimited(Duration::from_millis(300)).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[RETRY_AFTER], "1");
        let r = GatewayError::Waking(Duration::from_secs(30)).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[RETRY_AFTER], "5");
        let r = GatewayError::ForbiddenRoute.into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(!r.headers().contains_key(RETRY_AFTER));
        assert_eq!(
            error_code(br#"{"error":{"code":"no_leader","message":"m"}}"#).as_deref(),
            Some("no_leader")
        );
        assert_eq!(error_code(b"nope"), None);
    }
}
