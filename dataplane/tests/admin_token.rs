//! The static admin token (`--admin-token-file`) through the real `koru-dataplane` process: with
//! token auth on, the secret opens every route with admin scope beside the signed tokens, a wrong
//! one opens nothing, it never reaches the log, and a weak token file stops the server at start.

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

const SECRET: &str = "5f2b9c0d7e4a41a8b3c6d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4";

/// Writes the token verification key and the admin token file into `dir`; returns the key's
/// path, the token file's path and a signer of data-plane tokens.
fn credentials(dir: &std::path::Path) -> (String, String, EncodingKey) {
    let signing = SigningKey::from_bytes(&[7; 32]);
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let private = signing.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key = dir.join("public.pem");
    std::fs::write(&key, public).unwrap();
    let token = dir.join("admin-token");
    // As a Secret volume or `openssl rand -hex 32 > file` leaves it: with a trailing newline.
    std::fs::write(&token, format!("{SECRET}\n")).unwrap();
    (
        key.display().to_string(),
        token.display().to_string(),
        EncodingKey::from_ed_pem(private.as_bytes()).unwrap(),
    )
}

fn jwt(key: &EncodingKey, scope: Scope) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims {
        sub: "tester".into(),
        cluster: "c-1".into(),
        scope,
        exp: now + 3600,
        iat: now,
        aud: koru_dataplane::auth::audience("c-1"),
        jti: "test-token".into(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, key).unwrap()
}

/// Sends `method url` with an optional bearer token; returns the status and the JSON body.
async fn send(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = http.request(method.clone(), url);
    if method == Method::PUT {
        request = request
            .header("content-type", "application/json")
            .body(r#"{"value": 1}"#);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn the_admin_token_opens_admin_routes_beside_signed_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (key, token_file, signer) = credentials(dir.path());
    let store = format!("file://{}", dir.path().join("backups").display());
    let mut server = Server::start(
        &dir.path().join("data"),
        &[
            "--auth-public-key",
            &key,
            "--cluster-id",
            "c-1",
            "--admin-token-file",
            &token_file,
            "--backup-store",
            &store,
        ],
    );
    let http = client();
    let backups = format!("{}/admin/backups", server.url);
    let put = server.api("/ns/k");

    let (status, body) = send(&http, Method::POST, &backups, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let wrong = SECRET.replace('5', "6");
    let (status, body) = send(&http, Method::POST, &backups, Some(&wrong)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = send(&http, Method::POST, &backups, Some(&SECRET[..40])).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a prefix is not the secret"
    );
    let writer = jwt(&signer, Scope::Write);
    let (status, body) = send(&http, Method::POST, &backups, Some(&writer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // The admin token: writes, reads, a base backup and its listing.
    let (status, body) = send(&http, Method::PUT, &put, Some(SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(&http, Method::GET, &put, Some(SECRET)).await;
    assert_eq!((status, &body["value"]), (StatusCode::OK, &Value::from(1)));
    let (status, manifest) = send(&http, Method::POST, &backups, Some(SECRET)).await;
    assert_eq!(status, StatusCode::CREATED, "{manifest}");
    assert_eq!(manifest["last_lsn"], 1, "{manifest}");
    let (status, listed) = send(&http, Method::GET, &backups, Some(SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["backups"][0]["id"], manifest["id"], "{listed}");

    // Signed tokens work as before.
    let (status, _) = send(&http, Method::PUT, &put, Some(&writer)).await;
    assert_eq!(status, StatusCode::OK);
    let admin = jwt(&signer, Scope::Admin);
    let (status, _) = send(&http, Method::GET, &backups, Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);

    server.term();
    let logs = server.stderr();
    assert!(
        logs.contains("admin token grants admin scope"),
        "the start-up names the admin token file:\n{logs}"
    );
    assert!(
        !logs.contains(SECRET),
        "the secret reached the log:\n{logs}"
    );
}

#[tokio::test]
async fn without_token_auth_the_api_stays_open_and_a_weak_token_file_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (_, token_file, _) = credentials(dir.path());
    let server = Server::start(
        &dir.path().join("open"),
        &["--admin-token-file", &token_file],
    );
    let http = client();
    let (status, body) = send(&http, Method::PUT, &server.api("/ns/k"), None).await;
    assert_eq!(status, StatusCode::OK, "development mode is open: {body}");
    let url = format!("{}/admin/backups", server.url);
    let (status, body) = send(&http, Method::GET, &url, Some("anything")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::CONFLICT, &Value::from("backups_not_configured")),
        "let through to the handler: {body}"
    );

    let weak = dir.path().join("weak-token");
    std::fs::write(&weak, "hunter2\n").unwrap();
    let weak = weak.display().to_string();
    let exited = Server::try_start(&dir.path().join("weak"), &["--admin-token-file", &weak])
        .err()
        .expect("the server refuses a short admin token");
    assert!(!exited.status.success());
    assert!(
        exited.stderr.contains(&weak) && exited.stderr.contains("shorter than 32"),
        "{}",
        exited.stderr
    );
    let missing = dir.path().join("missing").display().to_string();
    let exited = Server::try_start(&dir.path().join("none"), &["--admin-token-file", &missing])
        .err()
        .expect("the server refuses a missing admin token file");
    assert!(exited.stderr.contains(&missing), "{}", exited.stderr);
}
