//! Cross-site writes: a page on another site can make a browser send a `text/plain`, urlencoded or
//! multipart POST (no preflight) carrying cached Basic credentials. Through the real
//! `koru-dataplane` process, every body not declared JSON is refused with 415 and writes nothing,
//! while JSON bodies and body-less requests (what the kdelta CLI sends) still work.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use common::{Server, client};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use koru_dataplane::auth::{Claims, Scope};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A server with token auth on and a write-scope token for it.
fn server_and_token(dir: &std::path::Path) -> (Server, String) {
    let signing = SigningKey::from_bytes(&[9; 32]);
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let key_path = dir.join("public.pem");
    std::fs::write(&key_path, public).unwrap();
    let signer =
        EncodingKey::from_ed_pem(signing.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims {
        sub: "browser".into(),
        cluster: "c-1".into(),
        scope: Scope::Write,
        exp: now + 600,
        iat: now,
        aud: koru_dataplane::auth::audience("c-1"),
        jti: "test-token".into(),
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &signer).unwrap();
    let server = Server::start(
        &dir.join("data"),
        &[
            "--auth-public-key",
            key_path.to_str().unwrap(),
            "--cluster-id",
            "c-1",
        ],
    );
    (server, token)
}

/// Sends `body` as `content_type` (none when None) with the token as Basic credentials, as a
/// browser replays them; the status and JSON answer.
async fn send(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    token: &str,
    content_type: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = http.request(method, url).basic_auth("token", Some(token));
    if let Some(t) = content_type {
        request = request.header("content-type", t);
    }
    if let Some(b) = body {
        request = request.body(b.to_string());
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("answer");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn bodies_not_declared_json_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (server, token) = server_and_token(dir.path());
    let http = client();
    let batch = server.api("/batch");
    let put = server.api("/app/k");
    let batch_body = r#"{"writes":[{"namespace":"app","key":"k","value":1}]}"#;
    let put_body = r#"{"value":1}"#;
    let refused = [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ];
    for content_type in refused {
        for (method, url, body) in [
            (Method::POST, &batch, batch_body),
            (Method::PUT, &put, put_body),
        ] {
            let (status, answer) =
                send(&http, method.clone(), url, &token, content_type, Some(body)).await;
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{method} {url} as {content_type:?}: {answer}"
            );
            assert_eq!(
                answer["error"]["code"], "unsupported_media_type",
                "{answer}"
            );
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("application/json")),
                "{answer}"
            );
        }
    }
    // A body-carrying route that never parses its body is covered too.
    let (status, answer) = send(
        &http,
        Method::POST,
        &server.api("/views/v/refresh"),
        &token,
        Some("text/plain"),
        Some("x"),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");

    let (status, answer) = send(&http, Method::GET, &put, &token, None, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing was written: {answer}"
    );
    let (_, status_body) = send(
        &http,
        Method::GET,
        &server.api("/status"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(status_body["total_versions"], 0, "{status_body}");

    // JSON bodies work, with or without parameters; a body-less POST needs no type.
    let (status, answer) = send(
        &http,
        Method::PUT,
        &put,
        &token,
        Some("application/json; charset=utf-8"),
        Some(put_body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = send(
        &http,
        Method::POST,
        &batch,
        &token,
        Some("application/json"),
        Some(batch_body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let view = r#"{"name":"v","source":"app"}"#;
    let (status, answer) = send(
        &http,
        Method::POST,
        &server.api("/views"),
        &token,
        Some("application/json"),
        Some(view),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = send(
        &http,
        Method::POST,
        &server.api("/views/v/refresh"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn without_credentials_the_answer_is_still_401() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = server_and_token(dir.path());
    let response = client()
        .post(server.api("/batch"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
