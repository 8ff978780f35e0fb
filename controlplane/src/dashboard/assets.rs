//! The dashboard's static files (`dashboard/static`), compiled into the binary and served with a
//! version in their URL, so they can be cached for long and still change with a release.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use sha2::Digest;

/// Every static file: name, content type, bytes.
const FILES: [(&str, &str, &str); 3] = [
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../../dashboard/static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../dashboard/static/app.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../../dashboard/static/favicon.svg"),
    ),
];

static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hash = sha2::Sha256::new();
    for (_, _, body) in FILES {
        hash.update(body.as_bytes());
    }
    hex::encode(&hash.finalize()[..6])
});

/// A short hash of every static file, put in their URLs (`?v=`).
pub fn version() -> &'static str {
    VERSION.as_str()
}

/// `GET /static/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (CONTENT_TYPE, *content_type),
                (CACHE_CONTROL, "public, max-age=86400"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
