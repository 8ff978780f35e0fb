//! Cross-origin access for browser clients (`--cors-allow-origin`): which pages may call the API
//! from another origin, answered by tower-http's `CorsLayer` outside every other layer, so a
//! preflight never meets the token check, the rate limit or the JSON-body rule.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::MAX_STALENESS_HEADER;

/// How long a browser may cache a preflight's answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// An allowed origin: `*` (any page), or `scheme://host[:port]` exactly as a browser sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

impl std::str::FromStr for Origin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "*" {
            return Ok(Origin(s.into()));
        }
        let bad = || {
            format!(
                "--cors-allow-origin {s:?} is not an origin: give `*` or scheme://host[:port] \
                 with no path, e.g. https://app.example.com"
            )
        };
        let url = url::Url::parse(s).map_err(|_| bad())?;
        let origin = url.origin();
        // An origin is exactly what ascii_serialization gives back: no path, user, query or
        // trailing slash, which a browser's Origin header never carries either.
        if !origin.is_tuple() || origin.ascii_serialization() != s {
            return Err(bad());
        }
        Ok(Origin(s.into()))
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The CORS layer for `origins`, or None when none is allowed (then no CORS header is ever sent
/// and browsers keep other sites' pages out, as before).
pub fn layer(origins: &[Origin]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o.0 == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(&o.0).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::PUT,
                Method::PATCH,
                Method::POST,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                HeaderName::from_static(MAX_STALENESS_HEADER),
            ])
            .expose_headers([
                header::ETAG,
                header::RETRY_AFTER,
                header::LINK,
                header::LOCATION,
            ])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}
