//! Who a request writes as, and the `?meta=true` flag of the reads that show it.
//!
//! With auth on, the author is the verified token's `sub` and `X-Koru-Author` is ignored: a
//! token holder must not be able to write under someone else's name. With auth off (development)
//! the header names the author, checked for length and control characters.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::ApiError;
use crate::auth::Grant;
pub use crate::store::authors::version_op;
use crate::store::{Cause, WriteMeta, check_author};
use koru_dataplane_api::data::AUTHOR_HEADER;

/// The author of a request's writes (None: unknown), set by the auth middleware.
#[derive(Debug, Clone, Default)]
pub struct Author(pub Option<Arc<str>>);

impl Author {
    /// The meta of a client's write by this author.
    pub fn write(&self) -> WriteMeta {
        WriteMeta::by(self.0.clone())
    }

    /// The meta of a write by this author for `cause`.
    pub fn because(&self, cause: Cause) -> WriteMeta {
        self.write().because(cause)
    }

    /// The author a request writes as: the token's `sub` when a token let it in, nobody for the
    /// admin and region tokens, and `X-Koru-Author` when auth is off (`grant` None).
    pub fn of(grant: Option<&Grant>, headers: &HeaderMap) -> Result<Author, ApiError> {
        match grant {
            Some(Grant::Token(claims)) if !claims.sub.is_empty() => {
                Ok(Author(Some(Arc::from(claims.sub.as_str()))))
            }
            Some(_) => Ok(Author(None)),
            None => from_header(headers),
        }
    }
}

impl Author {
    /// The author a member forwarding a caller's request names in `X-Koru-Author` (checked
    /// by the member, which authenticated the caller; an unreadable one is dropped).
    pub fn forwarded(headers: &HeaderMap) -> Author {
        from_header(headers).unwrap_or_default()
    }
}

/// The author `X-Koru-Author` names; 400 `invalid_author` when it is not UTF-8 text of at most
/// `MAX_AUTHOR_LEN` bytes without control characters.
fn from_header(headers: &HeaderMap) -> Result<Author, ApiError> {
    let Some(value) = headers.get(AUTHOR_HEADER) else {
        return Ok(Author(None));
    };
    let invalid = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_author", m);
    let text = std::str::from_utf8(value.as_bytes())
        .map_err(|_| invalid(format!("{AUTHOR_HEADER} is not UTF-8 text")))?;
    check_author(text)
        .map(Author)
        .map_err(|e| invalid(format!("{AUTHOR_HEADER}: {e}")))
}

impl<S: Send + Sync> FromRequestParts<S> for Author {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Author>()
            .cloned()
            .unwrap_or_default())
    }
}

/// The `meta` query flag of reads (`?meta=true`).
#[derive(Debug, Default, Deserialize)]
pub struct MetaParams {
    /// Add `author` and `op` (or `cause`) to what is returned.
    #[serde(default)]
    pub meta: bool,
}
