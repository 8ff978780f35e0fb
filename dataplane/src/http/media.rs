//! The request media-type rule: bodies must be declared JSON.
//!
//! A browser sends `text/plain`, `application/x-www-form-urlencoded` and `multipart/form-data`
//! bodies (and bodies of no declared type) cross-site without asking the server first, with any
//! cached Basic credentials attached. Refusing every body that is not declared JSON means a page
//! on another site cannot write here; a request with no body (as the kdelta CLI sends to refresh
//! a view) needs no type.

use axum::body::HttpBody as _;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Whether a `Content-Type` value names JSON: `application/json` or `application/<x>+json`, any
/// parameters (such as `charset`) allowed.
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

/// Checks the declared type of a request; `has_body` says whether it carries bytes.
pub fn check(headers: &HeaderMap, has_body: bool) -> Result<(), ApiError> {
    match headers.get(header::CONTENT_TYPE) {
        None if !has_body => Ok(()),
        None => Err(unsupported(
            "a request body needs Content-Type: application/json",
        )),
        Some(value) => match value.to_str() {
            Ok(text) if is_json(text) => Ok(()),
            Ok(text) => Err(unsupported(&format!(
                "Content-Type {text:?} is not accepted; send the body as application/json"
            ))),
            Err(_) => Err(unsupported(
                "Content-Type is not text; send the body as application/json",
            )),
        },
    }
}

fn unsupported(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        message,
    )
}

/// Middleware: refuses requests whose body is not declared JSON before any handler runs, so
/// routes that ignore their body are covered too.
pub async fn require_json(request: Request, next: Next) -> Response {
    if let Err(e) = check_request(&request) {
        return e.into_response();
    }
    next.run(request).await
}

/// [`check`] of a request's headers and whether its body carries bytes.
pub fn check_request(request: &Request) -> Result<(), ApiError> {
    let has_body = request.body().size_hint().exact() != Some(0);
    check(request.headers(), has_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_types_pass_and_form_types_do_not() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for refused in [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/json+",
            "application/jsonp",
            "",
        ] {
            assert!(!is_json(refused), "{refused}");
        }
    }

    #[test]
    fn only_a_bodiless_request_may_omit_the_type() {
        let none = HeaderMap::new();
        assert!(check(&none, false).is_ok());
        let e = check(&none, true).unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(e.code, "unsupported_media_type");
        let mut plain = HeaderMap::new();
        plain.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(
            check(&plain, false).is_err(),
            "a form type is refused even empty"
        );
    }
}
