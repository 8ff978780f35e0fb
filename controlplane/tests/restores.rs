//! Point-in-time restores end to end over the real router and a real database (SQLite and
//! PostgreSQL), with the local provisioner running real `koru-dataplane` processes: a cluster's
//! backups are restored into a new cluster as of a moment, which holds exactly the data of that
//! moment, archives to a store of its own, and leaves its source untouched.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{Api, backends, http};
use serde_json::{Value, json};

/// A cluster's endpoint and a write-scope data token for it.
async fn connect(api: &Api, owner: &str, clusters: &str, id: &str) -> (String, String) {
    let (_, cluster) = api
        .call("GET", &format!("{clusters}/{id}"), Some(owner), None)
        .await;
    let endpoint = cluster["endpoint"]
        .as_str()
        .unwrap_or_else(|| panic!("no endpoint: {cluster}"))
        .to_string();
    let (status, token) = api
        .call(
            "POST",
            &format!("{clusters}/{id}/data-tokens"),
            Some(owner),
            Some(json!({"scope": "write"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    (endpoint, token["token"].as_str().unwrap().to_string())
}

/// The value of `ledger/<key>` on a cluster, None when absent.
async fn value(endpoint: &str, token: &str, key: &str) -> Option<Value> {
    common::data_value(endpoint, token, "ledger", key).await
}

async fn put(endpoint: &str, token: &str, key: &str, v: Value) {
    let response = http()
        .put(format!("{endpoint}/api/v1/ledger/{key}"))
        .bearer_auth(token)
        .json(&json!({ "value": v }))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "PUT {key}: {}",
        response.status()
    );
}

async fn delete(endpoint: &str, token: &str, key: &str) {
    let response = http()
        .delete(format!("{endpoint}/api/v1/ledger/{key}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "DELETE {key}: {}",
        response.status()
    );
}

#[tokio::test]
async fn a_cluster_is_restored_into_a_new_cluster_as_of_a_moment() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (owner, org, _) = api.signup("dev@pitr.example", "Pitr Co").await;
        let (other, other_org, _) = api.signup("dev@elsewhere.example", "Elsewhere").await;
        let org_path = format!("/api/v1/orgs/{org}");
        let (status, e) = api
            .call(
                "PATCH",
                &org_path,
                Some(&owner),
                Some(json!({"tier": "pro"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {e}");
        let clusters = format!("{org_path}/clusters");
        let (status, created) = api
            .call(
                "POST",
                &clusters,
                Some(&owner),
                Some(json!({"name": "ledger", "allowed_cidrs": ["198.51.100.0/24"]})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {created}");
        let source = created["cluster"]["id"].as_str().unwrap().to_string();
        let op = api
            .wait_operation(&owner, created["operation"]["id"].as_str().unwrap())
            .await;
        assert_eq!(op["status"], "succeeded", "[{b}] {op}");
        let (endpoint, token) = connect(&api, &owner, &clusters, &source).await;

        // The state to get back, then the mistakes made after it.
        put(&endpoint, &token, "k0", json!("v0")).await;
        put(&endpoint, &token, "k1", json!("v1")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let moment = chrono::Utc::now();
        tokio::time::sleep(Duration::from_millis(50)).await;
        put(&endpoint, &token, "k1", json!("overwritten")).await;
        put(&endpoint, &token, "k2", json!("new")).await;
        delete(&endpoint, &token, "k0").await;
        // A backup archives everything written so far.
        let (status, backup) = api
            .call(
                "POST",
                &format!("{clusters}/{source}/backups"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {backup}");
        let (status, listed) = api
            .call(
                "GET",
                &format!("{clusters}/{source}/backups"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {listed}");

        let restore = format!("{clusters}/{source}/restore");
        let target = moment.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        // Restores that cannot work are refused at once, naming the reason.
        for (body, want, says) in [
            (
                json!({"name": "x", "target_time": "yesterday"}),
                StatusCode::BAD_REQUEST,
                "RFC 3339",
            ),
            (
                json!({"name": "x", "target_time": "2999-01-01T00:00:00Z"}),
                StatusCode::BAD_REQUEST,
                "in the future",
            ),
            (
                json!({"name": "x", "target_time": "2020-01-01T00:00:00Z"}),
                StatusCode::BAD_REQUEST,
                "before",
            ),
            (
                json!({"name": "x", "backup_id": "nope"}),
                StatusCode::BAD_REQUEST,
                "no backup",
            ),
            (
                json!({"name": "Bad_Name", "target_time": target}),
                StatusCode::BAD_REQUEST,
                "cluster name",
            ),
            (
                json!({"name": "ledger", "target_time": target}),
                StatusCode::CONFLICT,
                "already exists",
            ),
            (
                json!({"target_time": target}),
                StatusCode::BAD_REQUEST,
                "name",
            ),
        ] {
            let (status, e) = api
                .call("POST", &restore, Some(&owner), Some(body.clone()))
                .await;
            assert_eq!(status, want, "[{b}] {body}: {e}");
            let message = e["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(says), "[{b}] {body}: {e}");
        }
        // A viewer may not restore, and another organization sees no such cluster.
        let (_, viewer) = api
            .call(
                "POST",
                &format!("{org_path}/tokens"),
                Some(&owner),
                Some(json!({"name": "v", "role": "viewer"})),
            )
            .await;
        let viewer = viewer["token"].as_str().unwrap().to_string();
        let body = json!({"name": "sneaky", "target_time": target});
        let (status, e) = api
            .call("POST", &restore, Some(&viewer), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}] viewer: {e}");
        let (status, e) = api
            .call("POST", &restore, Some(&other), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "[{b}] other org: {e}");
        let (status, e) = api
            .call(
                "POST",
                &format!("/api/v1/orgs/{other_org}/clusters/{source}/restore"),
                Some(&other),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "[{b}] other org's path: {e}");

        // Restore as of the moment: an asynchronous operation of kind restore, idempotent by key.
        let body = json!({"name": "ledger-before", "target_time": target});
        let headers = [("idempotency-key", "restore-1")];
        let (status, restored) = api
            .call_with_headers("POST", &restore, Some(&owner), Some(body.clone()), &headers)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {restored}");
        assert_eq!(restored["operation"]["kind"], "restore", "[{b}] {restored}");
        assert_eq!(
            restored["cluster"]["restored_from"]["cluster_id"],
            source.as_str()
        );
        assert_eq!(
            restored["cluster"]["tier"], "pro",
            "[{b}] the source's tier"
        );
        assert_eq!(
            restored["cluster"]["allowed_cidrs"],
            json!(["198.51.100.0/24"]),
            "[{b}] the source's allow list"
        );
        let (status, again) = api
            .call_with_headers("POST", &restore, Some(&owner), Some(body), &headers)
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {again}");
        assert_eq!(again["cluster"]["id"], restored["cluster"]["id"]);
        let op = api
            .wait_operation(&owner, restored["operation"]["id"].as_str().unwrap())
            .await;
        assert_eq!(op["status"], "succeeded", "[{b}] {op}");
        let before = restored["cluster"]["id"].as_str().unwrap().to_string();
        let (status, shown) = api
            .call("GET", &format!("{clusters}/{before}"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(shown["phase"], "Running", "[{b}] {shown}");
        assert_eq!(
            shown["restored_from"]["target_time"],
            target.as_str(),
            "[{b}] {shown}"
        );

        // Exactly the data of that moment.
        let (before_endpoint, before_token) = connect(&api, &owner, &clusters, &before).await;
        assert_ne!(before_endpoint, endpoint);
        assert_eq!(
            value(&before_endpoint, &before_token, "k0").await,
            Some(json!("v0")),
            "[{b}]"
        );
        assert_eq!(
            value(&before_endpoint, &before_token, "k1").await,
            Some(json!("v1")),
            "[{b}]"
        );
        assert_eq!(
            value(&before_endpoint, &before_token, "k2").await,
            None,
            "[{b}]"
        );
        // The source is untouched.
        assert_eq!(
            value(&endpoint, &token, "k1").await,
            Some(json!("overwritten")),
            "[{b}]"
        );
        assert_eq!(value(&endpoint, &token, "k0").await, None, "[{b}]");

        // The restored cluster writes a history of its own, archived to its own store: its
        // backups are its own, not its source's.
        put(
            &before_endpoint,
            &before_token,
            "k3",
            json!("after the restore"),
        )
        .await;
        let (status, own) = api
            .call(
                "POST",
                &format!("{clusters}/{before}/backups"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {own}");
        let (_, own_list) = api
            .call(
                "GET",
                &format!("{clusters}/{before}/backups"),
                Some(&owner),
                None,
            )
            .await;
        let ids: Vec<&str> = own_list["backups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [own["id"].as_str().unwrap()], "[{b}] {own_list}");
        let (_, source_list) = api
            .call(
                "GET",
                &format!("{clusters}/{source}/backups"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(
            source_list["backups"], listed["backups"],
            "[{b}] the source's are unchanged"
        );

        // Without a target, everything archived comes back.
        let (status, latest) = api
            .call(
                "POST",
                &restore,
                Some(&owner),
                Some(json!({"name": "ledger-latest"})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {latest}");
        let op = api
            .wait_operation(&owner, latest["operation"]["id"].as_str().unwrap())
            .await;
        assert_eq!(op["status"], "succeeded", "[{b}] {op}");
        let latest = latest["cluster"]["id"].as_str().unwrap().to_string();
        let (latest_endpoint, latest_token) = connect(&api, &owner, &clusters, &latest).await;
        assert_eq!(
            value(&latest_endpoint, &latest_token, "k1").await,
            Some(json!("overwritten"))
        );
        assert_eq!(
            value(&latest_endpoint, &latest_token, "k2").await,
            Some(json!("new"))
        );
        assert_eq!(value(&latest_endpoint, &latest_token, "k0").await, None);

        for id in [&source, &before, &latest] {
            let (_, op) = api
                .call("DELETE", &format!("{clusters}/{id}"), Some(&owner), None)
                .await;
            let op = api.wait_operation(&owner, op["id"].as_str().unwrap()).await;
            assert_eq!(op["status"], "succeeded", "[{b}] {op}");
        }
    }
}
