//! Per-cluster IP allow lists through the API, on SQLite and PostgreSQL: set at create, changed
//! with PATCH, checked and normalised, shown in GET, audited, handed to the gateway's route table
//! lookup, and out of reach of other tenants and of viewers.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use axum::http::StatusCode;
use common::{Api, backends};
use serde_json::{Value, json};

/// Waits for the operation of a create or update answer to finish.
async fn settle(api: &Api, token: &str, answer: &Value) {
    let op = api
        .wait_operation(token, answer["operation"]["id"].as_str().unwrap())
        .await;
    assert_eq!(op["status"], "succeeded", "{op}");
}

#[tokio::test]
async fn allow_lists_are_checked_stored_shown_changed_and_audited() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (owner, org, _) = api.signup("dev@allow.example", "Allow Co").await;
        let clusters = format!("/api/v1/orgs/{org}/clusters");

        // Refused lists name the offending entry and create nothing.
        let too_many: Vec<String> = (0..101).map(|i| format!("10.0.{i}.0/24")).collect();
        for (cidrs, says) in [
            (
                json!(["10.0.0.0/33"]),
                "\"10.0.0.0/33\" is not an IPv4 or IPv6 CIDR",
            ),
            (json!(["office"]), "\"office\" is not an IPv4 or IPv6 CIDR"),
            (json!(["10.1.2.3/8"]), "write the network \"10.0.0.0/8\""),
            (json!(["10.0.0.0/8", "10.0.0.0/8"]), "more than once"),
            (json!(too_many), "at most 100 entries, not 101"),
        ] {
            let (status, e) = api
                .call(
                    "POST",
                    &clusters,
                    Some(&owner),
                    Some(json!({"name": "guarded", "allowed_cidrs": cidrs})),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {cidrs}: {e}");
            let message = e["error"]["message"].as_str().unwrap();
            assert!(message.contains(says), "[{b}] {message}");
        }
        let (status, e) = api
            .call(
                "POST",
                &clusters,
                Some(&owner),
                Some(json!({"name": "guarded", "allowed_cidrs": "10.0.0.0/8"})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "[{b}] a string is not a list: {e}"
        );
        let (_, list) = api.call("GET", &clusters, Some(&owner), None).await;
        assert_eq!(list["items"], json!([]), "[{b}] nothing was created");

        // Accepted lists are normalised in the caller's order.
        let (status, created) = api
            .call(
                "POST",
                &clusters,
                Some(&owner),
                Some(json!({"name": "guarded", "allowed_cidrs": [" 203.0.113.7", "2001:DB8::/32", "10.0.0.0/8"]})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {created}");
        let normalised = json!(["203.0.113.7/32", "2001:db8::/32", "10.0.0.0/8"]);
        assert_eq!(created["cluster"]["allowed_cidrs"], normalised, "[{b}]");
        settle(&api, &owner, &created).await;
        let id = created["cluster"]["id"].as_str().unwrap().to_string();
        let (status, got) = api
            .call("GET", &format!("{clusters}/guarded"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got["allowed_cidrs"], normalised, "[{b}] {got}");
        // A free organization has one cluster: the open one is another organization's.
        let (other, other_org, _) = api.signup("dev@open.example", "Open Co").await;
        let (status, open) = api
            .call(
                "POST",
                &format!("/api/v1/orgs/{other_org}/clusters"),
                Some(&other),
                Some(json!({"name": "open"})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {open}");
        assert_eq!(
            open["cluster"]["allowed_cidrs"],
            json!([]),
            "[{b}] absent: everyone"
        );
        settle(&api, &other, &open).await;

        // PATCH replaces the list; a PATCH without it leaves it alone; [] opens the cluster again.
        let one = format!("{clusters}/{id}");
        let (status, changed) = api
            .call(
                "PATCH",
                &one,
                Some(&owner),
                Some(json!({"allowed_cidrs": ["192.0.2.0/24"]})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {changed}");
        assert_eq!(changed["cluster"]["allowed_cidrs"], json!(["192.0.2.0/24"]));
        settle(&api, &owner, &changed).await;
        let (status, e) = api
            .call(
                "PATCH",
                &one,
                Some(&owner),
                Some(json!({"allowed_cidrs": ["192.0.2.1/24"]})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {e}");
        let (status, same) = api
            .call("PATCH", &one, Some(&owner), Some(json!({"replicas": 1})))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {same}");
        assert_eq!(same["cluster"]["allowed_cidrs"], json!(["192.0.2.0/24"]));
        settle(&api, &owner, &same).await;

        // The gateway's lookup sees every cluster, the open one with an empty list.
        let lists = koru_controlplane::allow_lists::for_clusters(&api.state.db)
            .await
            .unwrap();
        assert_eq!(lists.len(), 2, "[{b}] {lists:?}");
        assert_eq!(lists[&id], vec!["192.0.2.0/24".to_string()]);
        let open_id = open["cluster"]["id"].as_str().unwrap();
        assert!(lists[open_id].is_empty(), "[{b}] {lists:?}");

        let (status, cleared) = api
            .call(
                "PATCH",
                &one,
                Some(&owner),
                Some(json!({"allowed_cidrs": []})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {cleared}");
        assert_eq!(cleared["cluster"]["allowed_cidrs"], json!([]));
        settle(&api, &owner, &cleared).await;

        // Every change, refused ones included, is in the organization's audit log.
        let (_, page) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{org}/audit?limit=100"),
                Some(&owner),
                None,
            )
            .await;
        let patches: Vec<&str> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "PATCH /api/v1/orgs/{org}/clusters/{id}")
            .map(|e| e["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(
            patches,
            ["success", "success", "failure:400", "success"],
            "[{b}] newest first: {page}"
        );
    }
}

#[tokio::test]
async fn other_tenants_and_viewers_cannot_read_or_change_an_allow_list() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (a_owner, a_org, _) = api.signup("owner@aa.example", "Allow A").await;
        let (b_owner, b_org, _) = api.signup("owner@ab.example", "Allow B").await;
        let a_clusters = format!("/api/v1/orgs/{a_org}/clusters");
        let (_, created) = api
            .call(
                "POST",
                &a_clusters,
                Some(&a_owner),
                Some(json!({"name": "vault", "allowed_cidrs": ["198.51.100.0/24"]})),
            )
            .await;
        settle(&api, &a_owner, &created).await;
        let id = created["cluster"]["id"].as_str().unwrap().to_string();
        let open_up = json!({"allowed_cidrs": []});
        for (method, path, body) in [
            ("GET", format!("{a_clusters}/{id}"), None),
            ("GET", format!("{a_clusters}/vault"), None),
            ("PATCH", format!("{a_clusters}/{id}"), Some(open_up.clone())),
            (
                "PATCH",
                format!("{a_clusters}/vault"),
                Some(open_up.clone()),
            ),
            // B's own organization path does not reach A's cluster either.
            ("GET", format!("/api/v1/orgs/{b_org}/clusters/{id}"), None),
            (
                "PATCH",
                format!("/api/v1/orgs/{b_org}/clusters/{id}"),
                Some(open_up.clone()),
            ),
        ] {
            let (status, e) = api.call(method, &path, Some(&b_owner), body).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "[{b}] B: {method} {path}: {e}"
            );
            assert!(!e.to_string().contains("198.51.100.0"), "[{b}] {e}");
        }
        let viewer = api.api_token(&a_owner, &a_org, "v", "viewer").await;
        let (status, seen) = api
            .call("GET", &format!("{a_clusters}/{id}"), Some(&viewer), None)
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] a viewer reads it: {seen}");
        assert_eq!(seen["allowed_cidrs"], json!(["198.51.100.0/24"]));
        let (status, e) = api
            .call(
                "PATCH",
                &format!("{a_clusters}/{id}"),
                Some(&viewer),
                Some(open_up),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "[{b}] a viewer cannot change it: {e}"
        );
        let (_, after) = api
            .call("GET", &format!("{a_clusters}/{id}"), Some(&a_owner), None)
            .await;
        assert_eq!(
            after["allowed_cidrs"],
            json!(["198.51.100.0/24"]),
            "[{b}] untouched"
        );
    }
}
