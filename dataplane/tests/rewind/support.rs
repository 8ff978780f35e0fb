//! Helpers of the rewind tests: a random workload with an oracle of what every key held when,
//! and the HTTP calls the tests make.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use koru_dataplane::auth::{Claims, Scope};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::Server;

/// Values with the formatting clients send, which must come back byte for byte: `1` and `1.0`
/// and the two spellings of the object are different texts, so a rewind between them is a change.
pub(crate) const VALUES: [&str; 10] = [
    "1",
    "1.0",
    "1e3",
    "\"a\"",
    "{\"n\": 1,  \"tags\":[\"x\"]}",
    "{\"n\":1,\"tags\":[\"x\"]}",
    "[1, 2]",
    "null",
    "true",
    "\"\\u00e9t\u{e9}\"",
];

/// Deterministic xorshift, so a failure replays.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// (namespace, key)
pub(crate) type Id = (String, String);

/// A change as (key, action, from, to), values as stored text.
pub(crate) type Expected = (String, String, Option<String>, Option<String>);

/// A change as (key, action, from, to), values parsed.
pub(crate) type Listed = (String, String, Option<Value>, Option<Value>);

/// One acknowledged write.
#[derive(Debug, Clone)]
pub(crate) struct Acked {
    pub(crate) id: Id,
    /// The JSON text sent; None for a delete.
    pub(crate) value: Option<String>,
    pub(crate) version: String,
    pub(crate) time: String,
}

/// A time as microseconds since the epoch.
pub(crate) fn micros(rfc3339: &str) -> i64 {
    crate::common::micros(rfc3339)
}

/// Each key's text as of `at` (all writes when None); absent keys map to None.
pub(crate) fn state(acked: &[Acked], at: Option<&str>) -> BTreeMap<Id, Option<String>> {
    let mut out = BTreeMap::new();
    for a in acked {
        if at.is_none_or(|t| micros(&a.time) <= micros(t)) {
            out.insert(a.id.clone(), a.value.clone());
        }
    }
    out
}

/// The changes a rewind of `namespace`/`prefix` to `at` must make, as (key, action, from, to).
pub(crate) fn expected_changes(
    acked: &[Acked],
    namespace: &str,
    prefix: &str,
    at: &str,
) -> (Vec<Expected>, usize) {
    let then = state(acked, Some(at));
    let now = state(acked, None);
    let mut changes = Vec::new();
    let mut unchanged = 0;
    for (id, now_text) in &now {
        if id.0 != namespace || !id.1.starts_with(prefix) {
            continue;
        }
        let then_text = then.get(id).cloned().flatten();
        let action = match (&then_text, now_text) {
            (None, None) => continue,
            (Some(a), Some(b)) if a == b => {
                unchanged += 1;
                continue;
            }
            (None, Some(_)) => "delete",
            (Some(_), None) => "recreate",
            (Some(_), Some(_)) => "restore",
        };
        changes.push((
            id.1.clone(),
            action.to_string(),
            now_text.clone(),
            then_text,
        ));
    }
    (changes, unchanged)
}

/// A listed change in the response as (key, action, from, to), values re-serialized for comparison.
pub(crate) fn listed(body: &Value) -> Vec<Listed> {
    body["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no changes in {body}"))
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
                (c["action"] != "recreate").then(|| c["from"].clone()),
                (c["action"] != "delete").then(|| c["to"].clone()),
            )
        })
        .collect()
}

/// The expected changes in the shape of [`listed`].
pub(crate) fn as_listed(changes: &[Expected]) -> Vec<Listed> {
    let parse = |t: &Option<String>| t.as_deref().map(|t| serde_json::from_str(t).unwrap());
    changes
        .iter()
        .map(|(k, a, f, t)| (k.clone(), a.clone(), parse(f), parse(t)))
        .collect()
}

pub(crate) async fn put(
    http: &reqwest::Client,
    server: &Server,
    ns: &str,
    key: &str,
    text: &str,
) -> Acked {
    let resp = http
        .put(server.api(&format!("/{ns}/{key}")))
        .header("content-type", "application/json")
        .body(format!("{{\"value\":{text}}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    Acked {
        id: (ns.into(), key.into()),
        value: Some(text.into()),
        version: body["version_id"].as_str().unwrap().into(),
        time: body["timestamp"].as_str().unwrap().into(),
    }
}

pub(crate) async fn delete(http: &reqwest::Client, server: &Server, ns: &str, key: &str) -> Acked {
    let resp = http
        .delete(server.api(&format!("/{ns}/{key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    Acked {
        id: (ns.into(), key.into()),
        value: None,
        version: body["version_id"].as_str().unwrap().into(),
        time: body["timestamp"].as_str().unwrap().into(),
    }
}

/// A random workload of puts and deletes over `app` and `audit`, keys under `user:` and `order:`.
pub(crate) async fn workload(
    http: &reqwest::Client,
    server: &Server,
    rng: &mut Rng,
    n: usize,
    acked: &mut Vec<Acked>,
) {
    for _ in 0..n {
        let ns = if rng.below(10) < 7 { "app" } else { "audit" };
        let prefix = if rng.below(2) == 0 { "user:" } else { "order:" };
        let key = format!("{prefix}{}", rng.below(8));
        let live = state(acked, None)
            .get(&(ns.to_string(), key.clone()))
            .is_some_and(Option::is_some);
        let a = if live && rng.below(4) == 0 {
            delete(http, server, ns, &key).await
        } else {
            put(http, server, ns, &key, VALUES[rng.below(10) as usize]).await
        };
        acked.push(a);
    }
}

/// The stored text of a key's latest value (the response embeds it verbatim), None on 404.
pub(crate) async fn current_text(
    http: &reqwest::Client,
    server: &Server,
    ns: &str,
    key: &str,
) -> Option<String> {
    let resp = http
        .get(server.api(&format!("/{ns}/{key}")))
        .send()
        .await
        .unwrap();
    if resp.status() == StatusCode::NOT_FOUND {
        return None;
    }
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.text().await.unwrap();
    let rest = body.strip_prefix("{\"value\":").expect("value comes first");
    let end = rest.rfind(",\"version_id\":").expect("version_id follows");
    Some(rest[..end].to_string())
}

pub(crate) async fn history(
    http: &reqwest::Client,
    server: &Server,
    ns: &str,
    key: &str,
) -> Vec<Value> {
    let resp = http
        .get(server.api(&format!("/{ns}/{key}/history")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["versions"].as_array().unwrap().clone()
}

pub(crate) async fn status(http: &reqwest::Client, server: &Server) -> Value {
    http.get(server.api("/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `POST /admin/rewind` with a body (and a bearer token); the status and the JSON body.
pub(crate) async fn rewind(
    http: &reqwest::Client,
    server: &Server,
    body: &Value,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = http
        .post(format!("{}/admin/rewind", server.url))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let resp = request.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub(crate) fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str, says: &str) {
    let (s, body) = got;
    assert_eq!(*s, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{message:?} should say {says:?}");
}

/// A token verification key in `dir` and a signer of tokens for cluster `c-1`.
pub(crate) fn signer(dir: &std::path::Path) -> (String, EncodingKey) {
    let signing = SigningKey::from_bytes(&[9; 32]);
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let private = signing.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key = dir.join("public.pem");
    std::fs::write(&key, public).unwrap();
    (
        key.display().to_string(),
        EncodingKey::from_ed_pem(private.as_bytes()).unwrap(),
    )
}

pub(crate) fn jwt(key: &EncodingKey, scope: Scope) -> String {
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
