//! Compatibility with the real `kdelta` CLI of the published koru-delta 3.0.1: every remote command
//! (`kdelta --url ...`) run against a real `koru-dataplane` process.
//!
//! The binary comes from `scripts/install-kdelta.sh` (run by `make test`); its path is in
//! `KORU_KDELTA`. Without it the tests fail under `CI=true` and are skipped, loudly, elsewhere.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::path::Path;

use common::Server;
use koru_testkit::{kdelta_binary, run_kdelta};

/// Runs `kdelta --url <server> <args>` and returns (success, stdout + stderr).
fn run(kdelta: &Path, server: &Server, args: &[&str]) -> (bool, String) {
    run_kdelta(kdelta, &server.url, args)
}

/// Runs a command that must succeed and returns its output.
fn ok(kdelta: &Path, server: &Server, args: &[&str]) -> String {
    let (success, text) = run(kdelta, server, args);
    assert!(success, "kdelta {args:?} failed:\n{text}");
    text
}

#[test]
fn every_remote_kdelta_command_works_against_the_data_plane() {
    let Some(k) = kdelta_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);

    let set = ok(
        &k,
        &server,
        &["set", "users/alice", r#"{"name":"Alice","age":30}"#],
    );
    assert!(
        set.contains("Stored: users/alice") && set.contains("Version: 1.0"),
        "{set}"
    );
    ok(
        &k,
        &server,
        &["set", "users/alice", r#"{"name":"Alice","age":31}"#],
    );
    ok(
        &k,
        &server,
        &["set", "users/bob", r#"{"name":"Bob","age":17}"#],
    );

    let get = ok(&k, &server, &["get", "users/alice"]);
    assert!(get.contains("\"age\": 31"), "{get}");
    let (found, missing) = run(&k, &server, &["get", "users/nobody"]);
    assert!(!found && missing.contains("not found"), "{missing}");

    let log = ok(&k, &server, &["log", "users/alice"]);
    assert!(
        log.contains("2 versions total")
            && log.contains("\"age\": 30")
            && log.contains("Version: 1.0"),
        "{log}"
    );
    let diff = ok(&k, &server, &["diff", "users/alice"]);
    assert!(
        diff.contains("\"age\": 30") && diff.contains("\"age\": 31"),
        "{diff}"
    );

    let namespaces = ok(&k, &server, &["list"]);
    assert!(namespaces.contains("users"), "{namespaces}");
    let keys = ok(&k, &server, &["list", "users"]);
    assert!(
        keys.contains("users/alice") && keys.contains("users/bob"),
        "{keys}"
    );
    let status = ok(&k, &server, &["status"]);
    assert!(
        status.contains("Keys: 2")
            && status.contains("Versions: 3")
            && status.contains("Namespaces: 1"),
        "{status}"
    );

    let adults = ok(&k, &server, &["query", "users", "--filter", "age > 18"]);
    assert!(
        adults.contains("(1 records)") && adults.contains("alice") && !adults.contains("bob"),
        "{adults}"
    );
    let youngest = ok(
        &k,
        &server,
        &["query", "users", "--sort", "age", "--limit", "1"],
    );
    assert!(
        youngest.contains("(1 records)") && youngest.contains("bob"),
        "{youngest}"
    );

    ok(
        &k,
        &server,
        &["view", "create", "adults", "users", "--filter", "age >= 18"],
    );
    let views = ok(&k, &server, &["view", "list"]);
    assert!(views.contains("adults"), "{views}");
    ok(
        &k,
        &server,
        &["set", "users/carol", r#"{"name":"Carol","age":40}"#],
    );
    let before = ok(&k, &server, &["view", "query", "adults"]);
    assert!(
        before.contains("(1 records)"),
        "a view answers as of its last refresh: {before}"
    );
    ok(&k, &server, &["view", "refresh", "adults"]);
    let after = ok(&k, &server, &["view", "query", "adults"]);
    assert!(
        after.contains("(2 records)") && after.contains("carol"),
        "{after}"
    );
    ok(&k, &server, &["view", "delete", "adults"]);
    let (_, gone) = run(&k, &server, &["view", "query", "adults"]);
    assert!(!gone.contains("records)"), "{gone}");
}

/// A hosted cluster has token auth on; kdelta cannot send a bearer token, but it sends a URL's
/// user and password as Basic auth, and the data plane takes the password as the token.
#[test]
fn kdelta_reaches_a_cluster_with_token_auth_through_the_url() {
    use ed25519_dalek::SigningKey;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use koru_dataplane::auth::{Claims, Scope};

    let Some(k) = kdelta_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let signing = SigningKey::from_bytes(&[5; 32]);
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let key_path = dir.path().join("public.pem");
    std::fs::write(&key_path, public).unwrap();
    let signer =
        EncodingKey::from_ed_pem(signing.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |scope| {
        let claims = Claims {
            sub: "kdelta".into(),
            cluster: "c-1".into(),
            scope,
            exp: now + 600,
            iat: now,
            aud: koru_dataplane::auth::audience("c-1"),
            jti: "test-token".into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &signer).unwrap()
    };
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--auth-public-key",
            key_path.to_str().unwrap(),
            "--cluster-id",
            "c-1",
        ],
    );
    let with = |t: &str| {
        server
            .url
            .replacen("http://", &format!("http://token:{t}@"), 1)
    };

    let (success, text) = run_kdelta(&k, &server.url, &["set", "users/alice", "1"]);
    assert!(!success, "no token must be refused: {text}");
    let (success, text) = run_kdelta(&k, &with(&token(Scope::Read)), &["set", "users/alice", "1"]);
    assert!(!success, "a read token must not write: {text}");
    let (success, text) = run_kdelta(
        &k,
        &with(&token(Scope::Write)),
        &["set", "users/alice", "1"],
    );
    assert!(success && text.contains("Stored: users/alice"), "{text}");
    let (success, text) = run_kdelta(&k, &with(&token(Scope::Read)), &["get", "users/alice"]);
    assert!(success && text.contains('1'), "{text}");
}
