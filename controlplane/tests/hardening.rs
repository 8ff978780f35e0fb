//! Tenant-boundary hardening (issue 14, finding 5), each an attack over the real router and a
//! real database (SQLite and PostgreSQL): slugs shaped like ids, tokens minting longer-lived
//! tokens, racing cluster creates past the quota, and bodies that leak another tenant's paths.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Api, backends};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The id of the signed-in user.
async fn user_id(api: &Api, token: &str) -> String {
    let (status, me) = api.call("GET", "/api/v1/me", Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    me["user"]["id"].as_str().unwrap().to_string()
}

/// Records a cluster straight in the database (no data plane): an object of `org_id` to aim at.
async fn insert_cluster(api: &Api, org_id: &str, name: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO clusters (id, org_id, name, tier, region, replicas, version, phase, created_at, updated_at) \
         VALUES ($1, $2, $3, 'free', 'local', 1, '0.1.0', 'Running', 1, 1)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(name)
    .execute(&api.state.db)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn a_slug_never_shadows_another_organizations_id() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (alice, org_a, _) = api.signup("alice@example.com", "Alpha").await;

        // Bob names his organization after Alpha's id, so its slug would be Alpha's id.
        let (status, body) = api
            .call(
                "POST",
                "/api/v1/signup",
                None,
                Some(json!({"email": "bob@example.com", "password": "correct horse battery", "organization": org_a})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("shaped like an organization id"),
            "[{b}] {body}"
        );
        // The simple (undashed) form of a UUID is refused too.
        let simple = org_a.replace('-', "");
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/signup",
                None,
                Some(json!({"email": "bob@example.com", "password": "correct horse battery", "organization": simple})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}]");

        // A row written before the rule (or by hand) with Alpha's id as its slug never wins: the
        // id resolves first, for Alpha's owner, for its owner, and in the audit log.
        let (bob, org_b, _) = api.signup("bob@example.com", "Bravo").await;
        sqlx::query("UPDATE organizations SET slug = $1 WHERE id = $2")
            .bind(&org_a)
            .bind(&org_b)
            .execute(&api.state.db)
            .await
            .unwrap();
        let (status, org) = api
            .call("GET", &format!("/api/v1/orgs/{org_a}"), Some(&alice), None)
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {org}");
        assert_eq!(org["id"], org_a.as_str(), "[{b}]");
        let (status, body) = api
            .call("GET", &format!("/api/v1/orgs/{org_a}"), Some(&bob), None)
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "[{b}] Bravo's owner reached {body}"
        );
        // And the dashboard's page for that reference is Alpha's too, for Alice.
        let found = koru_controlplane::orgs::find(&api.state.db, &org_a)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, org_a, "[{b}]");
    }
}

#[tokio::test]
async fn a_token_mints_only_tokens_that_expire_no_later_than_itself() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (owner, org, _) = api.signup("owner@example.com", "Acme").await;
        let tokens = format!("/api/v1/orgs/{org}/tokens");
        let (status, ten_days) = api
            .call(
                "POST",
                &tokens,
                Some(&owner),
                Some(json!({"name": "ci", "role": "admin", "expires_in_days": 10})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {ten_days}");
        let ten_days = ten_days["token"].as_str().unwrap().to_string();

        // Never expiring, or expiring after it: refused, saying how long is allowed.
        for asked in [json!(null), json!(10), json!(3650)] {
            let (status, body) = api
                .call(
                    "POST",
                    &tokens,
                    Some(&ten_days),
                    Some(json!({"name": "forever", "role": "member", "expires_in_days": asked})),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {asked}: {body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("expires_in_days to at most 9"),
                "[{b}] {body}"
            );
        }
        // Within its life: allowed.
        let (status, child) = api
            .call(
                "POST",
                &tokens,
                Some(&ten_days),
                Some(json!({"name": "child", "role": "member", "expires_in_days": 9})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {child}");

        // A token that expires within a day can mint nothing.
        let (_, short) = api
            .call(
                "POST",
                &tokens,
                Some(&owner),
                Some(json!({"name": "short", "role": "admin", "expires_in_days": 1})),
            )
            .await;
        let short = short["token"].as_str().unwrap().to_string();
        let (status, body) = api
            .call(
                "POST",
                &tokens,
                Some(&short),
                Some(json!({"name": "x", "role": "member", "expires_in_days": 1})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {body}");

        // A token without expiry, and a user's session, may still create tokens without one.
        let (_, forever) = api
            .call(
                "POST",
                &tokens,
                Some(&owner),
                Some(json!({"name": "forever", "role": "admin"})),
            )
            .await;
        let forever = forever["token"].as_str().unwrap().to_string();
        let (status, body) = api
            .call(
                "POST",
                &tokens,
                Some(&forever),
                Some(json!({"name": "y", "role": "member"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_pass_the_cluster_quota_together() {
    const CREATES: usize = 12;
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        // The free plan allows one cluster.
        let (owner, org, _) = api.signup("racer@example.com", "Racers").await;
        let mut set = tokio::task::JoinSet::new();
        for i in 0..CREATES {
            let state = api.state.clone();
            let path = format!("/api/v1/orgs/{org}/clusters");
            let owner = owner.clone();
            set.spawn(async move {
                let req = Request::builder()
                    .method("POST")
                    .uri(path)
                    .header("authorization", format!("Bearer {owner}"))
                    .header("content-type", "application/json")
                    .body(Body::from(json!({"name": format!("c{i}")}).to_string()))
                    .unwrap();
                let response = koru_controlplane::http::app(state)
                    .oneshot(req)
                    .await
                    .unwrap();
                response.status()
            });
        }
        let mut statuses = Vec::new();
        while let Some(status) = set.join_next().await {
            statuses.push(status.unwrap());
        }
        let created = statuses
            .iter()
            .filter(|s| **s == StatusCode::ACCEPTED)
            .count();
        assert_eq!(
            created, 1,
            "[{b}] {created} of {CREATES} concurrent creates passed a quota of 1: {statuses:?}"
        );
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::ACCEPTED || *s == StatusCode::FORBIDDEN),
            "[{b}] {statuses:?}"
        );
        let n: i64 = sqlx::Row::get(
            &sqlx::query("SELECT COUNT(*) AS n FROM clusters WHERE org_id = $1")
                .bind(&org)
                .fetch_one(&api.state.db)
                .await
                .unwrap(),
            "n",
        );
        assert_eq!(n, 1, "[{b}] clusters recorded");
    }
}

#[tokio::test]
async fn another_tenants_paths_answer_the_same_404_whatever_the_body() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (alice, org_a, _) = api.signup("alice@example.com", "Alpha").await;
        let (bob, org_b, _) = api.signup("bob@example.com", "Bravo").await;
        let bob_id = user_id(&api, &bob).await;
        let bravo_cluster = insert_cluster(&api, &org_b, "orders").await;

        let a = format!("/api/v1/orgs/{org_a}");
        let o = format!("/api/v1/orgs/{org_b}");
        let c = format!("{o}/clusters/{bravo_cluster}");
        // Every route with {org} that takes a body, on Bravo's paths; and Alpha's own
        // organization with Bravo's member and cluster.
        let routes: Vec<(&str, String, Value)> = vec![
            ("PATCH", o.clone(), json!({"tier": "pro"})),
            (
                "POST",
                format!("{o}/members"),
                json!({"email": "x@example.com", "role": "member"}),
            ),
            (
                "POST",
                format!("{o}/invitations"),
                json!({"email": "x@example.com", "role": "member"}),
            ),
            (
                "PATCH",
                format!("{o}/members/{bob_id}"),
                json!({"role": "member"}),
            ),
            (
                "POST",
                format!("{o}/tokens"),
                json!({"name": "t", "role": "member"}),
            ),
            ("POST", format!("{o}/clusters"), json!({"name": "c1"})),
            ("PATCH", c.clone(), json!({"replicas": 1})),
            ("POST", format!("{c}/data-tokens"), json!({"scope": "read"})),
            ("POST", format!("{c}/restore"), json!({"name": "r1"})),
            (
                "PUT",
                format!("{o}/sso"),
                json!({"idp_metadata_xml": "<x/>", "default_role": "member"}),
            ),
            (
                "PATCH",
                format!("{a}/members/{bob_id}"),
                json!({"role": "member"}),
            ),
            (
                "PATCH",
                format!("{a}/clusters/{bravo_cluster}"),
                json!({"replicas": 1}),
            ),
            (
                "POST",
                format!("{a}/clusters/{bravo_cluster}/data-tokens"),
                json!({"scope": "read"}),
            ),
            (
                "POST",
                format!("{a}/clusters/{bravo_cluster}/restore"),
                json!({"name": "r1"}),
            ),
        ];
        for (method, path, good) in &routes {
            let good = good.to_string();
            let mut answers = Vec::new();
            for (content_type, body) in [
                (Some("application/json"), good.as_str()),
                (Some("application/json"), "{not json"),
                (Some("application/json"), r#"{"unexpected": true}"#),
                (Some("text/plain"), good.as_str()),
                (None, ""),
            ] {
                let (status, answer) = api
                    .call_raw(method, path, Some(&alice), content_type, body)
                    .await;
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "[{b}] {method} {path} with {content_type:?} {body:?}: {answer}"
                );
                answers.push(answer);
            }
            assert!(
                answers.windows(2).all(|w| w[0] == w[1]),
                "[{b}] {method} {path}: the answers differ by body: {answers:?}"
            );
        }
        // The owner's own malformed bodies still get a clear 400.
        let (status, body) = api
            .call_raw(
                "POST",
                &format!("{a}/tokens"),
                Some(&alice),
                Some("application/json"),
                "{not json",
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {body}");
        let (status, body) = api
            .call_raw(
                "POST",
                &format!("{a}/tokens"),
                Some(&alice),
                Some("text/plain"),
                "{}",
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Content-Type: application/json"),
            "[{b}] {body}"
        );
    }
}

#[test]
fn the_login_limiters_email_map_is_bounded_and_still_limits() {
    use koru_controlplane::state::{LOGINS_PER_EMAIL_PER_MINUTE, LoginLimiter, MAX_TRACKED_EMAILS};
    let limiter = LoginLimiter::new();
    // An attacker cycling through distinct addresses (from addresses the per-IP limit does not
    // see, e.g. behind the proxy) cannot grow the map past its bound.
    for i in 0..(MAX_TRACKED_EMAILS + 50_000) {
        let _ = limiter.check(&format!("spray-{i}@example.com"), None);
    }
    assert!(
        limiter.tracked_emails() <= MAX_TRACKED_EMAILS,
        "{} per-email entries, more than {MAX_TRACKED_EMAILS}",
        limiter.tracked_emails()
    );
    // Limiting still works per address, whatever the case or spacing.
    let fresh = LoginLimiter::new();
    for _ in 0..LOGINS_PER_EMAIL_PER_MINUTE {
        assert!(fresh.check(" Victim@Example.com", None).is_ok());
    }
    assert!(fresh.check("victim@example.com", None).is_err());
    assert!(fresh.check("someone-else@example.com", None).is_ok());
}
