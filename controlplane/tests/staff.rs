//! Staff administration: the real `koru-controlplane admin` binary, run as a child process
//! against the same database (SQLite and PostgreSQL) as a control plane's router, with each
//! change checked through the API and the audit log.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::process::Command;

use axum::http::StatusCode;
use common::{Api, backends};
use serde_json::{Value, json};

/// Runs `koru-controlplane admin <args>` as `staff:ops-ada` on `url`; returns (success, stdout, stderr).
fn admin(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_koru-controlplane"))
        .arg("admin")
        .args(args)
        .env("KORU_DATABASE_URL", url)
        .env("KORU_STAFF", "ops-ada")
        .env("KORU_LOG", "warn")
        .output()
        .expect("running koru-controlplane admin");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Records a cluster straight in the database (no data plane), to count against a quota.
async fn insert_cluster(api: &Api, org_id: &str, name: &str, tier: &str) {
    sqlx::query(
        "INSERT INTO clusters (id, org_id, name, tier, region, replicas, version, phase, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'local', 1, '0.1.0', 'Running', 1, 1)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(org_id)
    .bind(name)
    .bind(tier)
    .execute(&api.state.db)
    .await
    .unwrap();
}

/// The organization's audit events by staff, oldest first.
async fn staff_events(api: &Api, token: &str, org: &str) -> Vec<Value> {
    let (status, page) = api
        .call(
            "GET",
            &format!("/api/v1/orgs/{org}/audit?actor=staff:ops-ada"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut events = page["events"].as_array().cloned().unwrap_or_default();
    events.reverse();
    events
}

#[tokio::test]
async fn staff_set_tiers_and_limits_and_suspend_through_the_admin_command() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let url = &backend.url;
        let (owner, org, _) = api.signup("owner@example.com", "Big Co").await;
        let (outsider, _, _) = api.signup("outsider@example.com", "Elsewhere").await;
        let path = format!("/api/v1/orgs/{org}");

        // Enterprise is set by staff only.
        let (ok, out, err) = admin(url, &["set-tier", "big-co", "enterprise"]);
        assert!(ok, "[{b}] set-tier: {out} {err}");
        assert!(out.contains("staff:ops-ada"), "[{b}] {out}");
        let (status, got) = api.call("GET", &path, Some(&owner), None).await;
        assert_eq!(
            (status, got["tier"].as_str()),
            (StatusCode::OK, Some("enterprise")),
            "[{b}] {got}"
        );

        // Custom limits show on the organization and hold in the quota check.
        let (ok, out, err) = admin(
            url,
            &[
                "set-limits",
                &org,
                "--max-clusters",
                "1",
                "--max-storage-bytes",
                "5000000000000",
            ],
        );
        assert!(ok, "[{b}] set-limits: {out} {err}");
        let (_, got) = api.call("GET", &path, Some(&owner), None).await;
        assert_eq!(
            got["custom_limits"],
            json!({"max_clusters": 1, "max_storage_bytes": 5_000_000_000_000u64}),
            "[{b}] {got}"
        );
        insert_cluster(&api, &org, "first", "enterprise").await;
        let (status, body) = api
            .call(
                "POST",
                &format!("{path}/clusters"),
                Some(&owner),
                Some(json!({"name": "second"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}] {body}");
        assert_eq!(body["error"]["code"], "quota_exceeded", "[{b}] {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("allows 1 cluster(s)"),
            "[{b}] the custom limit, not the enterprise tier's 100: {body}"
        );
        let (status, clusters) = api
            .call("GET", &format!("{path}/clusters"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {clusters}");
        assert_eq!(
            clusters["items"][0]["max_storage_bytes"], 5_000_000_000_000u64,
            "[{b}] {clusters}"
        );

        // Refused changes are explained, change nothing, and are audited too.
        let (ok, _, err) = admin(url, &["set-limits", &org, "--max-replicas", "9"]);
        assert!(
            !ok && err.contains("max replicas must be 1 to 7"),
            "[{b}] {err}"
        );
        let (ok, _, err) = admin(url, &["set-tier", &org, "free"]);
        assert!(
            !ok && err.contains("cluster first is on the enterprise tier"),
            "[{b}] {err}"
        );
        let (ok, _, err) = admin(url, &["set-tier", "no-such-org", "pro"]);
        assert!(!ok && err.contains("no organization"), "[{b}] {err}");
        let (ok, _, err) = admin(url, &["suspend", &org, "--reason", "  "]);
        assert!(!ok && err.contains("reason"), "[{b}] {err}");

        // Suspended: members are refused with a clear code, outsiders still see nothing.
        let (ok, out, err) = admin(url, &["suspend", &org, "--reason", "unpaid invoice"]);
        assert!(ok, "[{b}] suspend: {out} {err}");
        for (method, p, body) in [
            ("GET", path.clone(), None),
            ("GET", format!("{path}/clusters"), None),
            (
                "POST",
                format!("{path}/clusters"),
                Some(json!({"name": "third"})),
            ),
            (
                "POST",
                format!("{path}/tokens"),
                Some(json!({"name": "t", "role": "member"})),
            ),
        ] {
            let (status, answer) = api.call(method, &p, Some(&owner), body).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "[{b}] {method} {p}: {answer}"
            );
            assert_eq!(
                answer["error"]["code"], "organization_suspended",
                "[{b}] {answer}"
            );
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("unpaid invoice"),
                "[{b}] {answer}"
            );
        }
        let (status, _) = api.call("GET", &path, Some(&outsider), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "[{b}]");
        let (_, me) = api.call("GET", "/api/v1/me", Some(&owner), None).await;
        assert_eq!(
            me["organizations"][0]["suspension"]["reason"], "unpaid invoice",
            "[{b}] {me}"
        );

        // list-orgs shows it all.
        let (ok, out, err) = admin(url, &["list-orgs", "--json"]);
        assert!(ok, "[{b}] list-orgs: {err}");
        let listed: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let big = listed
            .iter()
            .find(|o| o["id"] == org.as_str())
            .expect("listed");
        assert_eq!(
            (
                big["tier"].as_str(),
                big["clusters"].as_i64(),
                big["members"].as_i64()
            ),
            (Some("enterprise"), Some(1), Some(1)),
            "[{b}] {big}"
        );
        assert_eq!(big["suspension"]["reason"], "unpaid invoice", "[{b}] {big}");
        assert_eq!(listed.len(), 2, "[{b}] {out}");
        let (ok, table, _) = admin(url, &["list-orgs"]);
        assert!(
            ok && table.contains("big-co") && table.contains("suspended (unpaid invoice)"),
            "[{b}] {table}"
        );

        let (ok, out, err) = admin(url, &["unsuspend", "big-co"]);
        assert!(ok, "[{b}] unsuspend: {out} {err}");
        let (status, _) = api.call("GET", &path, Some(&owner), None).await;
        assert_eq!(status, StatusCode::OK, "[{b}]");

        // Every staff action is in the organization's chain, as the staff member, with what it set.
        let events = staff_events(&api, &owner, &org).await;
        let seen: Vec<(String, String)> = events
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_string(),
                    e["outcome"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let expected = [
            ("admin set-tier", "success"),
            ("admin set-limits", "success"),
            ("admin set-limits", "failure:400"),
            ("admin set-tier", "failure:403"),
            ("admin suspend", "failure:400"),
            ("admin suspend", "success"),
            ("admin unsuspend", "success"),
        ];
        assert_eq!(
            seen,
            expected
                .iter()
                .map(|(a, o)| (a.to_string(), o.to_string()))
                .collect::<Vec<_>>(),
            "[{b}] {events:?}"
        );
        assert!(
            events[0]["target"]
                .as_str()
                .unwrap()
                .contains("tier=enterprise"),
            "[{b}] {}",
            events[0]
        );
        assert!(
            events[5]["target"]
                .as_str()
                .unwrap()
                .contains("unpaid invoice"),
            "[{b}] {}",
            events[5]
        );

        // ...and the global chain, which the audit tool finds intact with both writers in it.
        let out = Command::new(env!("CARGO_BIN_EXE_koru-controlplane"))
            .args(["audit", "verify", "--database-url", url])
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "[{b}] audit verify: {report}");
        let global: i64 = sqlx::Row::get(
            &sqlx::query("SELECT COUNT(*) AS n FROM audit_events WHERE actor = 'staff:ops-ada'")
                .fetch_one(&api.state.db)
                .await
                .unwrap(),
            "n",
        );
        assert_eq!(
            global, 8,
            "[{b}] the unknown organization's attempt is in the global chain only"
        );
    }
}

#[tokio::test]
async fn custom_limits_are_for_enterprise_and_staff_must_say_who_they_are() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (_, org, _) = api.signup("owner@example.com", "Small Co").await;
        let (ok, _, err) = admin(&backend.url, &["set-limits", &org, "--max-clusters", "50"]);
        assert!(
            !ok && err.contains("custom limits are for enterprise"),
            "[{b}] {err}"
        );
        // Without a staff name nothing runs.
        let out = Command::new(env!("CARGO_BIN_EXE_koru-controlplane"))
            .args(["admin", "suspend", &org, "--reason", "x"])
            .env("KORU_DATABASE_URL", &backend.url)
            .env_remove("KORU_STAFF")
            .output()
            .unwrap();
        assert!(!out.status.success(), "[{b}]");
        let suspended: Option<i64> = sqlx::Row::get(
            &sqlx::query("SELECT suspended_at FROM organizations WHERE id = $1")
                .bind(&org)
                .fetch_one(&api.state.db)
                .await
                .unwrap(),
            "suspended_at",
        );
        assert_eq!(suspended, None, "[{b}]");
    }
}

#[tokio::test]
async fn staff_verify_a_domain_for_one_organization_only_through_the_admin_command() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let url = &backend.url;
        let (owner, org, _) = api.signup("owner@corp.example", "Corp").await;
        let (_, other, _) = api.signup("owner@other.example", "Other").await;

        let (ok, out, err) = admin(url, &["verify-domain", &org, "Corp.Example"]);
        assert!(ok, "[{b}] verify-domain: {out} {err}");
        assert!(
            out.contains("corp.example") && out.contains("staff:ops-ada"),
            "[{b}] {out}"
        );
        let (status, domains) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{org}/sso/domains"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {domains}");
        assert_eq!(domains[0]["domain"], "corp.example", "[{b}] {domains}");
        assert_eq!(domains[0]["verified"], true, "[{b}] {domains}");
        assert_eq!(
            domains[0]["verified_by"], "staff:ops-ada",
            "[{b}] {domains}"
        );

        // A domain another organization verified is refused, and the refusal is audited too.
        let (ok, _, err) = admin(url, &["verify-domain", &other, "corp.example"]);
        assert!(!ok && err.contains("corp.example"), "[{b}] {err}");
        let outcomes: Vec<(String, String)> = sqlx::query_as(
            "SELECT org_id, outcome FROM audit_events WHERE action = 'admin verify-domain'",
        )
        .fetch_all(&api.state.db)
        .await
        .unwrap();
        assert_eq!(outcomes.len(), 2, "[{b}] {outcomes:?}");
        assert!(
            outcomes.contains(&(org.clone(), "success".into()))
                && outcomes.iter().any(|(o, r)| o == &other && r != "success"),
            "[{b}] {outcomes:?}"
        );
    }
}
