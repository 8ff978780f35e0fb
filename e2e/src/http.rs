//! The data plane's key API as the journeys call it: a JSON value put and read with a token.

use serde_json::{Value, json};

/// `PUT {url}/api/v1/{path}` of `{"value": value}` with `token`; fails the test unless it is
/// acknowledged.
pub async fn put_value(http: &reqwest::Client, url: &str, path: &str, token: &str, value: Value) {
    let response = http
        .put(format!("{url}/api/v1/{path}"))
        .bearer_auth(token)
        .json(&json!({ "value": value }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {path}: {e}"));
    let status = response.status();
    assert!(
        status.is_success(),
        "PUT {path}: {status} {}",
        response.text().await.unwrap_or_default()
    );
}

/// `GET {url}/api/v1/{path}` with `token`: the status and the JSON answer (Null if none).
pub async fn get_value(http: &reqwest::Client, url: &str, path: &str, token: &str) -> (u16, Value) {
    let response = http
        .get(format!("{url}/api/v1/{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
