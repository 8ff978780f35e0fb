//! Browser access (`--cors-allow-origin`), through the real `koru-dataplane` process: an allowed
//! origin's preflight is answered before the token check (a browser never sends credentials on
//! one), its requests carry the CORS headers a fetch client needs (ETag, Retry-After, Link
//! exposed); any other origin, or a server without the flag, gets no CORS header at all.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use common::{Server, client};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use reqwest::{Method, StatusCode};

const PAGE: &str = "http://app.example:8080";

async fn preflight(url: &str, origin: &str) -> reqwest::Response {
    client()
        .request(Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "authorization,content-type,if-match",
        )
        .send()
        .await
        .unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
}

#[tokio::test]
async fn allowed_origins_get_preflights_and_exposed_headers_others_get_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Token auth on: a preflight carries no credentials and must still be answered.
    let key = SigningKey::from_bytes(&[7; 32])
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let key_path = dir.path().join("public.pem");
    std::fs::write(&key_path, key).unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--auth-public-key",
            key_path.to_str().unwrap(),
            "--cluster-id",
            "c-1",
            "--cors-allow-origin",
            PAGE,
            "--cors-allow-origin",
            "https://other.example",
        ],
    );
    let url = server.api("/users/alice");

    let answer = preflight(&url, PAGE).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        header(&answer, "access-control-allow-origin").as_deref(),
        Some(PAGE)
    );
    let methods = header(&answer, "access-control-allow-methods").unwrap();
    assert!(
        methods.contains("put") && methods.contains("delete"),
        "{methods}"
    );
    let headers = header(&answer, "access-control-allow-headers").unwrap();
    for name in ["authorization", "content-type", "if-match"] {
        assert!(headers.contains(name), "{name} not allowed: {headers}");
    }
    assert_eq!(
        header(&answer, "access-control-max-age").as_deref(),
        Some("600")
    );
    let second = preflight(&url, "https://other.example").await;
    assert_eq!(
        header(&second, "access-control-allow-origin").as_deref(),
        Some("https://other.example")
    );

    // The real request (refused here for want of a token) still tells the page what it may read.
    let refused = client()
        .get(&url)
        .header("origin", PAGE)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&refused, "access-control-allow-origin").as_deref(),
        Some(PAGE)
    );
    let exposed = header(&refused, "access-control-expose-headers").unwrap();
    for name in ["etag", "retry-after", "link"] {
        assert!(exposed.contains(name), "{name} not exposed: {exposed}");
    }

    // Another site's page gets no CORS header, so its browser refuses to hand it the answer.
    let stranger = preflight(&url, "http://evil.example").await;
    assert_eq!(header(&stranger, "access-control-allow-origin"), None);
    let stranger = client()
        .get(&url)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&stranger, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn any_origin_and_no_flag() {
    let dir = tempfile::tempdir().unwrap();
    let open = Server::start(&dir.path().join("any"), &["--cors-allow-origin", "*"]);
    let put = client()
        .put(open.api("/users/alice"))
        .header("origin", "http://anywhere.example")
        .header("content-type", "application/json")
        .body(r#"{"value": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    assert_eq!(
        header(&put, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert!(header(&put, "etag").is_some());

    let closed = Server::start(&dir.path().join("none"), &[]);
    let answer = preflight(&closed.api("/users/alice"), PAGE).await;
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
    let get = client()
        .get(closed.api("/users/alice"))
        .header("origin", PAGE)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&get, "access-control-allow-origin"), None);
}

#[test]
fn origins_must_be_bare_origins() {
    use koru_dataplane::http::cors::Origin;
    for good in ["*", "http://127.0.0.1:5173", "https://app.example.com"] {
        assert_eq!(good.parse::<Origin>().unwrap().to_string(), good);
    }
    for bad in [
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://user@app.example.com",
        "file:///tmp",
        "",
    ] {
        let e = bad.parse::<Origin>().unwrap_err();
        assert!(e.contains("--cors-allow-origin"), "{bad}: {e}");
    }
    let exit = Server::try_start(
        tempfile::tempdir().unwrap().path(),
        &["--cors-allow-origin", "https://x.example/path"],
    );
    assert!(exit.is_err(), "a bad origin must stop the server at start");
}
