//! The one response body type: a member's streamed body or the gateway's own bytes, boxed.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

/// Every response body the gateway sends.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A body of bytes already in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}
