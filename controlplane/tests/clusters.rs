//! Clusters end to end over the real router and a real database (SQLite and PostgreSQL), with the
//! local provisioner running real `koru-dataplane` processes: create, follow the operation, write
//! and read data with an issued token, quotas per tier, locking, idempotency, deletion.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use axum::http::StatusCode;
use common::{Api, backends, http};
use serde_json::{Value, json};

#[tokio::test]
async fn a_cluster_is_created_used_with_an_issued_token_and_deleted() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (owner, org, _) = api.signup("dev@clusters.example", "Cluster Co").await;
        let clusters = format!("/api/v1/orgs/{org}/clusters");
        let (status, created) = api
            .call(
                "POST",
                &clusters,
                Some(&owner),
                Some(json!({"name": "orders"})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {created}");
        assert_eq!(created["cluster"]["tier"], "free");
        assert_eq!(created["cluster"]["max_ops_per_sec"], 100);
        let op = api
            .wait_operation(&owner, created["operation"]["id"].as_str().unwrap())
            .await;
        assert_eq!(op["status"], "succeeded", "[{b}] {op}");
        let (status, cluster) = api
            .call("GET", &format!("{clusters}/orders"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(cluster["phase"], "Running", "[{b}] {cluster}");
        let endpoint = cluster["endpoint"].as_str().unwrap().to_string();
        let id = cluster["id"].as_str().unwrap().to_string();
        // The detail carries connection help and a short-lived read token that works.
        assert_eq!(cluster["connection"]["endpoint"], endpoint.as_str());
        assert!(
            cluster["connection"]["curl"]
                .as_str()
                .unwrap()
                .contains(&endpoint)
        );
        assert_eq!(cluster["connection"]["data_token"]["scope"], "read");
        let kdelta = cluster["connection"]["kdelta"].as_str().unwrap();
        assert!(
            kdelta.contains(&endpoint.replacen("://", "://token:$KORU_TOKEN@", 1)),
            "[{b}] {kdelta}"
        );
        let read_token = cluster["connection"]["data_token"]["token"]
            .as_str()
            .unwrap()
            .to_string();

        // A data-plane token from the control plane opens the cluster; no token does not.
        let (status, token) = api
            .call(
                "POST",
                &format!("{clusters}/{id}/data-tokens"),
                Some(&owner),
                Some(json!({"scope": "write"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {token}");
        let token = token["token"].as_str().unwrap();
        let client = http();
        let url = format!("{endpoint}/api/v1/shop/cart-1");
        let put = client
            .put(&url)
            .bearer_auth(token)
            .json(&json!({"value": {"items": 3}}))
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "[{b}] PUT: {}", put.status());
        let got: Value = client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got["value"], json!({"items": 3}), "[{b}] {got}");
        let anonymous = client.get(&url).send().await.unwrap();
        assert_eq!(anonymous.status().as_u16(), 401);
        let read = client
            .get(&url)
            .bearer_auth(&read_token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            read.status().as_u16(),
            200,
            "[{b}] the detail's read token reads"
        );
        let write = client
            .put(&url)
            .bearer_auth(&read_token)
            .json(&json!({"value": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(write.status().as_u16(), 403, "[{b}] and cannot write");

        // A viewer's token reads but may not be issued with write scope.
        let (status, _) = api
            .call(
                "POST",
                &format!("{clusters}/{id}/data-tokens"),
                Some(&owner),
                Some(json!({"scope": "admin", "ttl_secs": 10})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] a 10 s token");

        // Delete: the operation removes the cluster and its process.
        let (status, op) = api
            .call("DELETE", &format!("{clusters}/{id}"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {op}");
        let op = api.wait_operation(&owner, op["id"].as_str().unwrap()).await;
        assert_eq!(op["status"], "succeeded", "[{b}] {op}");
        let (status, _) = api
            .call("GET", &format!("{clusters}/{id}"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            client.get(&url).bearer_auth(token).send().await.is_err(),
            "[{b}] the data plane is gone"
        );
    }
}

#[tokio::test]
async fn tier_limits_are_enforced_and_named() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (owner, org, _) = api.signup("quota@clusters.example", "Quota Co").await;
        let clusters = format!("/api/v1/orgs/{org}/clusters");
        let (status, e) = api
            .call(
                "POST",
                &clusters,
                Some(&owner),
                Some(json!({"name": "big", "tier": "pro"})),
            )
            .await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "[{b}] {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("needs the pro plan")
        );
        let (status, e) = api
            .call(
                "POST",
                &clusters,
                Some(&owner),
                Some(json!({"name": "wide", "replicas": 3})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}] {e}");
        assert_eq!(e["error"]["code"], "quota_exceeded");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("at most 1 replica(s)")
        );
        for (body, needle) in [
            (json!({"name": "Bad_Name"}), "lower-case"),
            (json!({"name": "ok", "replicas": 2}), "1, 3, 5 or 7"),
            (json!({"name": "ok", "region": "EU West"}), "region"),
        ] {
            let (status, e) = api
                .call("POST", &clusters, Some(&owner), Some(body.clone()))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {body}");
            assert!(
                e["error"]["message"].as_str().unwrap().contains(needle),
                "[{b}] {e}"
            );
        }

        // Idempotency: the same key returns the first result instead of a second cluster.
        let key = [("Idempotency-Key", "create-first-1")];
        let (status, first) = api
            .call_with_headers(
                "POST",
                &clusters,
                Some(&owner),
                Some(json!({"name": "first"})),
                &key,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {first}");
        let (status, again) = api
            .call_with_headers(
                "POST",
                &clusters,
                Some(&owner),
                Some(json!({"name": "first"})),
                &key,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {again}");
        assert_eq!(again["cluster"]["id"], first["cluster"]["id"]);
        assert_eq!(again["operation"]["id"], first["operation"]["id"]);

        // One operation at a time per cluster.
        let id = first["cluster"]["id"].as_str().unwrap();
        let (status, locked) = api
            .call("DELETE", &format!("{clusters}/{id}"), Some(&owner), None)
            .await;
        if first_still_running(&api, &owner, first["operation"]["id"].as_str().unwrap()).await {
            assert_eq!(status, StatusCode::LOCKED, "[{b}] {locked}");
            assert_eq!(locked["error"]["operation_id"], first["operation"]["id"]);
        }

        // The free plan has room for one cluster.
        let (status, e) = api
            .call(
                "POST",
                &clusters,
                Some(&owner),
                Some(json!({"name": "second"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}] {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("allows 1 cluster(s) per organization"),
            "[{b}] {e}"
        );
        let (status, e) = api
            .call(
                "POST",
                &clusters,
                Some(&owner),
                Some(json!({"name": "first"})),
            )
            .await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::CONFLICT,
            "[{b}] {e}"
        );
        api.wait_operation(&owner, first["operation"]["id"].as_str().unwrap())
            .await;
        let (status, op) = api
            .call("DELETE", &format!("{clusters}/{id}"), Some(&owner), None)
            .await;
        if status == StatusCode::ACCEPTED {
            api.wait_operation(&owner, op["id"].as_str().unwrap()).await;
        }
    }
}

async fn first_still_running(api: &Api, token: &str, op: &str) -> bool {
    let (_, op) = api
        .call(
            "GET",
            &format!("/api/v1/operations/{op}"),
            Some(token),
            None,
        )
        .await;
    op["status"] == "running"
}

#[tokio::test]
async fn plans_can_be_upgraded_and_a_downgrade_must_fit() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (owner, org, _) = api.signup("plan@clusters.example", "Plan Co").await;
        let org_path = format!("/api/v1/orgs/{org}");
        let (status, e) = api
            .call(
                "PATCH",
                &org_path,
                Some(&owner),
                Some(json!({"tier": "enterprise"})),
            )
            .await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "[{b}] {e}");
        let (status, upgraded) = api
            .call(
                "PATCH",
                &org_path,
                Some(&owner),
                Some(json!({"tier": "pro"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {upgraded}");
        assert_eq!(upgraded["tier"], "pro");
        let clusters = format!("{org_path}/clusters");
        let (status, created) = api
            .call(
                "POST",
                &clusters,
                Some(&owner),
                Some(json!({"name": "prod", "tier": "pro", "replicas": 3})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {created}");
        assert_eq!(created["cluster"]["max_ops_per_sec"], 10_000);
        let op = api
            .wait_operation(&owner, created["operation"]["id"].as_str().unwrap())
            .await;
        assert_eq!(op["status"], "succeeded", "[{b}] {op}");
        let (status, e) = api
            .call(
                "PATCH",
                &org_path,
                Some(&owner),
                Some(json!({"tier": "free"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}] {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("cluster prod is on the pro tier"),
            "[{b}] {e}"
        );
        // Tier changes of a cluster are applied by an operation.
        let id = created["cluster"]["id"].as_str().unwrap();
        let (status, changed) = api
            .call(
                "PATCH",
                &format!("{clusters}/{id}"),
                Some(&owner),
                Some(json!({"tier": "free", "replicas": 1})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {changed}");
        assert_eq!(changed["cluster"]["max_ops_per_sec"], 100);
        let op = api
            .wait_operation(&owner, changed["operation"]["id"].as_str().unwrap())
            .await;
        assert_eq!(op["status"], "succeeded", "[{b}] {op}");
        let (status, downgraded) = api
            .call(
                "PATCH",
                &org_path,
                Some(&owner),
                Some(json!({"tier": "free"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {downgraded}");
        let (status, op) = api
            .call("DELETE", &format!("{clusters}/{id}"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {op}");
        api.wait_operation(&owner, op["id"].as_str().unwrap()).await;
    }
}

#[tokio::test]
async fn usage_is_collected_from_a_real_data_plane() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (owner, org, _) = api.signup("usage@clusters.example", "Usage Co").await;
        let clusters = format!("/api/v1/orgs/{org}/clusters");
        let (_, created) = api
            .call(
                "POST",
                &clusters,
                Some(&owner),
                Some(json!({"name": "metered"})),
            )
            .await;
        let op = api
            .wait_operation(&owner, created["operation"]["id"].as_str().unwrap())
            .await;
        assert_eq!(op["status"], "succeeded", "[{b}] {op}");
        let id = created["cluster"]["id"].as_str().unwrap();
        let (_, c) = api
            .call("GET", &format!("{clusters}/{id}"), Some(&owner), None)
            .await;
        let endpoint = c["endpoint"].as_str().unwrap().to_string();
        let (_, token) = api
            .call(
                "POST",
                &format!("{clusters}/{id}/data-tokens"),
                Some(&owner),
                Some(json!({"scope": "write"})),
            )
            .await;
        let token = token["token"].as_str().unwrap().to_string();
        let client = http();
        for i in 0..20 {
            let r = client
                .put(format!("{endpoint}/api/v1/metered/k{i}"))
                .bearer_auth(&token)
                .json(&json!({"value": {"i": i, "pad": "x".repeat(100)}}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
        assert_eq!(
            koru_controlplane::usage::collect_once(&api.state)
                .await
                .unwrap(),
            1,
            "[{b}]"
        );
        let (status, usage) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{org}/usage"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {usage}");
        let point = &usage[0]["points"][0];
        assert!(
            point["stored_bytes"].as_i64().unwrap() > 20 * 100,
            "[{b}] {usage}"
        );
        assert_eq!(usage[0]["max_ops_per_sec"], 100);
        assert_eq!(usage[0]["name"], "metered");
        let (status, op) = api
            .call("DELETE", &format!("{clusters}/{id}"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let op = api.wait_operation(&owner, op["id"].as_str().unwrap()).await;
        assert_eq!(op["status"], "succeeded", "[{b}] {op}");
    }
}

/// Every cluster endpoint, called by a user and an API token of another organization, and by
/// roles too small for it.
#[tokio::test]
async fn other_tenants_and_small_roles_cannot_touch_clusters() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (a_owner, a_org, _) = api.signup("owner@ca.example", "Clusters A").await;
        let (b_owner, b_org, _) = api.signup("owner@cb.example", "Clusters B").await;
        let b_token = api.api_token(&b_owner, &b_org, "b", "admin").await;
        let a_clusters = format!("/api/v1/orgs/{a_org}/clusters");
        let (_, created) = api
            .call(
                "POST",
                &a_clusters,
                Some(&a_owner),
                Some(json!({"name": "secret"})),
            )
            .await;
        let id = created["cluster"]["id"].as_str().unwrap().to_string();
        let op_id = created["operation"]["id"].as_str().unwrap().to_string();
        api.wait_operation(&a_owner, &op_id).await;
        let calls: Vec<(&str, String, Option<Value>)> = vec![
            ("GET", a_clusters.clone(), None),
            (
                "POST",
                a_clusters.clone(),
                Some(json!({"name": "intruder"})),
            ),
            ("GET", format!("{a_clusters}/{id}"), None),
            ("GET", format!("{a_clusters}/secret"), None),
            (
                "PATCH",
                format!("{a_clusters}/{id}"),
                Some(json!({"replicas": 1})),
            ),
            ("DELETE", format!("{a_clusters}/{id}"), None),
            (
                "POST",
                format!("{a_clusters}/{id}/data-tokens"),
                Some(json!({"scope": "read"})),
            ),
            ("GET", format!("/api/v1/orgs/{a_org}/usage"), None),
            ("GET", format!("/api/v1/operations/{op_id}"), None),
            // B's own organization path cannot reach A's cluster either.
            ("GET", format!("/api/v1/orgs/{b_org}/clusters/{id}"), None),
            (
                "DELETE",
                format!("/api/v1/orgs/{b_org}/clusters/{id}"),
                None,
            ),
            (
                "POST",
                format!("/api/v1/orgs/{b_org}/clusters/{id}/data-tokens"),
                Some(json!({"scope": "read"})),
            ),
        ];
        for (method, path, payload) in &calls {
            for (who, token) in [("user", &b_owner), ("token", &b_token)] {
                let (status, e) = api.call(method, path, Some(token), payload.clone()).await;
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "[{b}] {who} of B: {method} {path}: {e}"
                );
            }
        }
        // Roles inside A: a viewer token reads and gets read data tokens only.
        let viewer = api.api_token(&a_owner, &a_org, "v", "viewer").await;
        let (status, _) = api
            .call("GET", &format!("{a_clusters}/{id}"), Some(&viewer), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        for (method, path, payload) in [
            ("POST", a_clusters.clone(), Some(json!({"name": "v"}))),
            (
                "PATCH",
                format!("{a_clusters}/{id}"),
                Some(json!({"replicas": 1})),
            ),
            ("DELETE", format!("{a_clusters}/{id}"), None),
            (
                "POST",
                format!("{a_clusters}/{id}/data-tokens"),
                Some(json!({"scope": "write"})),
            ),
        ] {
            let (status, e) = api.call(method, &path, Some(&viewer), payload).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "[{b}] viewer: {method} {path}: {e}"
            );
        }
        let (status, _) = api
            .call(
                "POST",
                &format!("{a_clusters}/{id}/data-tokens"),
                Some(&viewer),
                Some(json!({"scope": "read"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        // A's cluster is untouched.
        let (_, c) = api
            .call("GET", &format!("{a_clusters}/{id}"), Some(&a_owner), None)
            .await;
        assert_eq!(c["phase"], "Running", "[{b}] {c}");
        let (_, op) = api
            .call(
                "DELETE",
                &format!("{a_clusters}/{id}"),
                Some(&a_owner),
                None,
            )
            .await;
        api.wait_operation(&a_owner, op["id"].as_str().unwrap())
            .await;
    }
}

#[tokio::test]
async fn backups_are_taken_and_listed_through_the_data_plane() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (owner, org, _) = api.signup("dev@backups.example", "Backup Co").await;
        let (other, _, _) = api.signup("dev@elsewhere.example", "Elsewhere").await;
        let clusters = format!("/api/v1/orgs/{org}/clusters");
        let (status, created) = api
            .call(
                "POST",
                &clusters,
                Some(&owner),
                Some(json!({"name": "ledger"})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {created}");
        let id = created["cluster"]["id"].as_str().unwrap().to_string();
        let backups = format!("{clusters}/{id}/backups");
        // Before its data plane is ready the cluster has nothing to back up from.
        let (status, e) = api.call("POST", &backups, Some(&owner), None).await;
        assert_eq!(status, StatusCode::CONFLICT, "[{b}] {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains("Running"),
            "[{b}] {e}"
        );
        let op = api
            .wait_operation(&owner, created["operation"]["id"].as_str().unwrap())
            .await;
        assert_eq!(op["status"], "succeeded", "[{b}] {op}");
        let (_, cluster) = api
            .call("GET", &format!("{clusters}/{id}"), Some(&owner), None)
            .await;
        let endpoint = cluster["endpoint"].as_str().unwrap().to_string();

        // A few writes with a data token, timed by the same clock the data plane commits with.
        let (_, token) = api
            .call(
                "POST",
                &format!("{clusters}/{id}/data-tokens"),
                Some(&owner),
                Some(json!({"scope": "write"})),
            )
            .await;
        let token = token["token"].as_str().unwrap().to_string();
        let client = http();
        let mut last_write = chrono::Utc::now();
        for i in 0..3 {
            last_write = chrono::Utc::now();
            let put = client
                .put(format!("{endpoint}/api/v1/ledger/k{i}"))
                .bearer_auth(&token)
                .json(&json!({"value": i}))
                .send()
                .await
                .unwrap();
            assert!(put.status().is_success(), "[{b}] PUT: {}", put.status());
        }

        let (status, backup) = api.call("POST", &backups, Some(&owner), None).await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {backup}");
        let backup_id = backup["id"].as_str().unwrap().to_string();
        assert!(!backup_id.is_empty());
        assert!(backup["last_lsn"].as_u64().unwrap() >= 3, "[{b}] {backup}");

        let (status, listed) = api.call("GET", &backups, Some(&owner), None).await;
        assert_eq!(status, StatusCode::OK, "[{b}] {listed}");
        let ids: Vec<&str> = listed["backups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap())
            .collect();
        assert!(ids.contains(&backup_id.as_str()), "[{b}] {listed}");
        let time = |v: &Value| {
            chrono::DateTime::parse_from_rfc3339(
                v.as_str().unwrap_or_else(|| panic!("[{b}] {listed}")),
            )
            .unwrap()
            .with_timezone(&chrono::Utc)
        };
        let earliest = time(&listed["window"]["earliest"]);
        let latest = time(&listed["window"]["latest"]);
        assert_eq!(listed["verification"], Value::Null, "[{b}] no drill yet");
        // A restore drill on demand checks the newest backup; the listing then shows it.
        let (status, drill) = api
            .call("POST", &format!("{backups}/verify"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {drill}");
        assert_eq!(drill["ok"], true, "[{b}] {drill}");
        assert_eq!(drill["backup_id"], backup_id.as_str(), "[{b}] {drill}");
        let (_, relisted) = api.call("GET", &backups, Some(&owner), None).await;
        assert_eq!(relisted["verification"], drill, "[{b}] {relisted}");
        assert!(
            earliest <= latest && latest >= last_write,
            "[{b}] window {} does not reach the last write at {last_write}",
            listed["window"]
        );

        // A viewer lists but may not take backups; another organization sees no such cluster.
        let viewer = api.api_token(&owner, &org, "v", "viewer").await;
        let (status, _) = api.call("GET", &backups, Some(&viewer), None).await;
        assert_eq!(status, StatusCode::OK, "[{b}] viewer lists");
        let (status, e) = api.call("POST", &backups, Some(&viewer), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}] viewer takes: {e}");
        for method in ["GET", "POST"] {
            let (status, e) = api.call(method, &backups, Some(&other), None).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "[{b}] other org {method}: {e}"
            );
        }

        let (_, op) = api
            .call("DELETE", &format!("{clusters}/{id}"), Some(&owner), None)
            .await;
        let op = api.wait_operation(&owner, op["id"].as_str().unwrap()).await;
        assert_eq!(op["status"], "succeeded", "[{b}] {op}");
    }
}
