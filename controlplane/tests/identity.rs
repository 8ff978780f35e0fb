//! Identity over the real router and a real database (SQLite and PostgreSQL): sign-up, login,
//! sessions, API tokens, roles, invitations, tenant isolation and error bodies.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use axum::http::StatusCode;
use common::{Api, backends};
use serde_json::{Value, json};

#[tokio::test]
async fn signup_login_refresh_and_logout() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (access, org_id, refresh) = api.signup("Ada@Example.com", "Analytical Engines").await;
        let (status, me) = api.call("GET", "/api/v1/me", Some(&access), None).await;
        assert_eq!(status, StatusCode::OK, "[{b}] {me}");
        assert_eq!(me["user"]["email"], "ada@example.com");
        assert_eq!(me["organizations"][0]["id"], org_id.as_str());
        assert_eq!(me["organizations"][0]["role"], "owner");
        assert_eq!(me["organizations"][0]["slug"], "analytical-engines");
        assert_eq!(me["organizations"][0]["tier"], "free");

        // The same email cannot sign up twice.
        let (status, _) = api
            .call("POST", "/api/v1/signup", None, Some(json!({"email": "ada@example.com", "password": "another long one", "organization": "x"})))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "[{b}]");

        // Wrong password and unknown account fail identically.
        let (s1, wrong) = api
            .call(
                "POST",
                "/api/v1/login",
                None,
                Some(json!({"email": "ada@example.com", "password": "not the password"})),
            )
            .await;
        let (s2, unknown) = api
            .call(
                "POST",
                "/api/v1/login",
                None,
                Some(json!({"email": "nobody@example.com", "password": "not the password"})),
            )
            .await;
        assert_eq!(
            (s1, s2),
            (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED),
            "[{b}]"
        );
        assert_eq!(
            wrong, unknown,
            "[{b}] login errors must not reveal which accounts exist"
        );

        let (status, login) = api
            .call(
                "POST",
                "/api/v1/login",
                None,
                Some(json!({"email": "ADA@example.com", "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {login}");
        assert_eq!(login["token_type"], "Bearer");

        // Refresh rotates; the old refresh token then fails and takes its family down with it.
        let (status, rotated) = api
            .call(
                "POST",
                "/api/v1/token/refresh",
                None,
                Some(json!({"refresh_token": refresh})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {rotated}");
        let newer = rotated["refresh_token"].as_str().unwrap().to_string();
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/token/refresh",
                None,
                Some(json!({"refresh_token": refresh})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "[{b}] reuse of a rotated refresh token"
        );
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/token/refresh",
                None,
                Some(json!({"refresh_token": newer})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "[{b}] the family is revoked after reuse"
        );

        // Logout ends the access token at once, and its refresh token.
        let session = login["access_token"].as_str().unwrap();
        let session_refresh = login["refresh_token"].as_str().unwrap();
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/logout",
                Some(session),
                Some(json!({"refresh_token": session_refresh})),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "[{b}]");
        let (status, _) = api.call("GET", "/api/v1/me", Some(session), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "[{b}] a logged-out token");
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/token/refresh",
                None,
                Some(json!({"refresh_token": session_refresh})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "[{b}] a logged-out refresh token"
        );
        // The first session is unaffected.
        let (status, _) = api.call("GET", "/api/v1/me", Some(&access), None).await;
        assert_eq!(status, StatusCode::OK, "[{b}]");
    }
}

#[tokio::test]
async fn bad_input_gets_clear_json_errors() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        for (body, needle) in [
            (
                json!({"email": "not-an-email", "password": "long enough pass", "organization": "o"}),
                "not an email",
            ),
            (
                json!({"email": "a@example.com", "password": "short", "organization": "o"}),
                "at least 10",
            ),
            (
                json!({"email": "a@example.com", "password": "long enough pass", "organization": ""}),
                "organization name",
            ),
            (
                json!({"email": "a@example.com", "password": "long enough pass", "organization": "o", "tier": "enterprise"}),
                "sales",
            ),
            (
                json!({"email": "a@example.com", "password": "long enough pass", "organization": "o", "tier": "platinum"}),
                "unknown variant",
            ),
            (json!({"email": "a@example.com"}), "missing field"),
        ] {
            let (status, error) = api
                .call("POST", "/api/v1/signup", None, Some(body.clone()))
                .await;
            assert!(status.is_client_error(), "[{b}] {body}: {status}");
            let message = error["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "[{b}] {body}: {message}");
        }
        let (status, _) = api.call("GET", "/api/v1/nowhere", None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, e) = api.call("GET", "/api/v1/me", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");
        let (status, _) = api.call("GET", "/api/v1/me", Some("garbage"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // A token with `alg: none` is refused.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4IiwianRpIjoiaiIsImlhdCI6MSwiZXhwIjo5OTk5OTk5OTk5LCJhdWQiOiJrb3J1LWNvbnRyb2xwbGFuZSIsImlzcyI6ImtvcnUtY29udHJvbHBsYW5lIn0.";
        let (status, _) = api.call("GET", "/api/v1/me", Some(none), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "[{b}] alg none");
    }
}

#[tokio::test]
async fn login_attempts_are_rate_limited() {
    let backend = &backends().await[0];
    let api = Api::new(backend).await;
    api.signup("grace@example.com", "Navy").await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/login",
                None,
                Some(json!({"email": "grace@example.com", "password": "wrong password!"})),
            )
            .await;
        statuses.push(status);
    }
    assert_eq!(statuses[..5], [StatusCode::UNAUTHORIZED; 5]);
    assert_eq!(statuses[5..], [StatusCode::TOO_MANY_REQUESTS; 2]);
}

#[tokio::test]
async fn api_tokens_are_shown_once_scoped_and_revocable() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (owner, org, _) = api.signup("owner@a.example", "Org A").await;
        let path = format!("/api/v1/orgs/{org}/tokens");
        let (status, created) = api
            .call(
                "POST",
                &path,
                Some(&owner),
                Some(json!({"name": "terraform", "role": "member", "expires_in_days": 30})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {created}");
        let secret = created["token"].as_str().unwrap().to_string();
        assert!(secret.starts_with("koru_"));
        let (_, listed) = api.call("GET", &path, Some(&owner), None).await;
        assert_eq!(listed["items"].as_array().unwrap().len(), 1);
        assert!(
            listed["items"][0].get("token").is_none(),
            "[{b}] the secret is shown once only"
        );
        assert_eq!(listed["items"][0]["prefix"], &secret[..12]);

        // The token acts in its organization with its role, by id or slug.
        let (status, got) = api
            .call("GET", "/api/v1/orgs/org-a", Some(&secret), None)
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {got}");
        let (status, _) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{org}/members"),
                Some(&secret),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = api.call("GET", &path, Some(&secret), None).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "[{b}] a member token cannot manage tokens"
        );
        let (status, _) = api.call("GET", "/api/v1/me", Some(&secret), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}] /me is for people");
        let (status, _) = api
            .call(
                "POST",
                &path,
                Some(&owner),
                Some(json!({"name": "x", "role": "viewer", "expires_in_days": 0})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        let id = created["id"].as_str().unwrap();
        let (status, _) = api
            .call("DELETE", &format!("{path}/{id}"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = api
            .call("GET", "/api/v1/orgs/org-a", Some(&secret), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "[{b}] a revoked token");
    }
}

#[tokio::test]
async fn roles_and_invitations() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (owner, org, _) = api.signup("owner@b.example", "Org B").await;
        let (bob, _, _) = api.signup("bob@b.example", "Bob's own").await;
        let invitations = format!("/api/v1/orgs/{org}/invitations");
        let (status, invitation) = api
            .call(
                "POST",
                &invitations,
                Some(&owner),
                Some(json!({"email": "bob@b.example", "role": "viewer"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {invitation}");
        let secret = invitation["token"].as_str().unwrap();
        let (_, listed) = api.call("GET", &invitations, Some(&owner), None).await;
        assert!(listed["items"][0].get("token").is_none());

        // Someone else cannot use Bob's invitation.
        let (carol, _, _) = api.signup("carol@b.example", "Carol's").await;
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/invitations/accept",
                Some(&carol),
                Some(json!({"token": secret})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "[{b}] invitation for another email"
        );
        let (status, joined) = api
            .call(
                "POST",
                "/api/v1/invitations/accept",
                Some(&bob),
                Some(json!({"token": secret})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {joined}");
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/invitations/accept",
                Some(&bob),
                Some(json!({"token": secret})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "[{b}] an invitation works once"
        );

        // A viewer reads but cannot invite or create tokens.
        let (status, members) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{org}/members"),
                Some(&bob),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(members["items"].as_array().unwrap().len(), 2);
        let bob_id = members["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["email"] == "bob@b.example")
            .unwrap()["user_id"]
            .as_str()
            .unwrap()
            .to_string();
        let owner_id = members["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "owner")
            .unwrap()["user_id"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, _) = api
            .call(
                "POST",
                &invitations,
                Some(&bob),
                Some(json!({"email": "x@b.example", "role": "viewer"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}]");
        let (status, _) = api
            .call(
                "POST",
                &format!("/api/v1/orgs/{org}/tokens"),
                Some(&bob),
                Some(json!({"name": "t", "role": "viewer"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}]");

        // An admin cannot make owners or demote the owner; the last owner stays one.
        let member = format!("/api/v1/orgs/{org}/members/{bob_id}");
        let (status, _) = api
            .call(
                "PATCH",
                &member,
                Some(&owner),
                Some(json!({"role": "admin"})),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = api
            .call(
                "PATCH",
                &format!("/api/v1/orgs/{org}/members/{owner_id}"),
                Some(&bob),
                Some(json!({"role": "member"})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "[{b}] admin demoting an owner"
        );
        let (status, _) = api
            .call(
                "PATCH",
                &format!("/api/v1/orgs/{org}/members/{owner_id}"),
                Some(&owner),
                Some(json!({"role": "admin"})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "[{b}] the last owner");
        let (status, _) = api
            .call(
                "POST",
                &invitations,
                Some(&bob),
                Some(json!({"email": "y@b.example", "role": "owner"})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "[{b}] an admin inviting an owner"
        );
        // Members may leave.
        let (status, _) = api.call("DELETE", &member, Some(&bob), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = api
            .call("GET", &format!("/api/v1/orgs/{org}"), Some(&bob), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

/// Every organization endpoint, called by a user and an API token of another organization.
#[tokio::test]
async fn other_tenants_see_nothing() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (a_owner, a_org, _) = api.signup("owner@tenant-a.example", "Tenant A").await;
        let (b_owner, b_org, _) = api.signup("owner@tenant-b.example", "Tenant B").await;
        let b_token = api.api_token(&b_owner, &b_org, "b", "admin").await;
        let (_, a_token) = api
            .call(
                "POST",
                &format!("/api/v1/orgs/{a_org}/tokens"),
                Some(&a_owner),
                Some(json!({"name": "a", "role": "admin"})),
            )
            .await;
        let a_token_id = a_token["id"].as_str().unwrap().to_string();
        let (_, a_members) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{a_org}/members"),
                Some(&a_owner),
                None,
            )
            .await;
        let a_user = a_members["items"][0]["user_id"]
            .as_str()
            .unwrap()
            .to_string();
        let body = |v: Value| Some(v);
        for org_ref in [a_org.as_str(), "tenant-a"] {
            let calls: Vec<(&str, String, Option<Value>)> = vec![
                ("GET", format!("/api/v1/orgs/{org_ref}"), None),
                ("GET", format!("/api/v1/orgs/{org_ref}/members"), None),
                (
                    "PATCH",
                    format!("/api/v1/orgs/{org_ref}/members/{a_user}"),
                    body(json!({"role": "viewer"})),
                ),
                (
                    "DELETE",
                    format!("/api/v1/orgs/{org_ref}/members/{a_user}"),
                    None,
                ),
                ("GET", format!("/api/v1/orgs/{org_ref}/invitations"), None),
                (
                    "POST",
                    format!("/api/v1/orgs/{org_ref}/invitations"),
                    body(json!({"email": "e@x.example", "role": "viewer"})),
                ),
                ("GET", format!("/api/v1/orgs/{org_ref}/tokens"), None),
                (
                    "POST",
                    format!("/api/v1/orgs/{org_ref}/tokens"),
                    body(json!({"name": "n", "role": "viewer"})),
                ),
                (
                    "DELETE",
                    format!("/api/v1/orgs/{org_ref}/tokens/{a_token_id}"),
                    None,
                ),
            ];
            for (method, path, payload) in calls {
                for (who, token) in [("user", &b_owner), ("token", &b_token)] {
                    let (status, e) = api.call(method, &path, Some(token), payload.clone()).await;
                    assert_eq!(
                        status,
                        StatusCode::NOT_FOUND,
                        "[{b}] {who} of B: {method} {path}: {e}"
                    );
                }
            }
        }
        // And A's things are intact.
        let (_, members) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{a_org}/members"),
                Some(&a_owner),
                None,
            )
            .await;
        assert_eq!(members["items"][0]["role"], "owner");
        let (_, tokens) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{a_org}/tokens"),
                Some(&a_owner),
                None,
            )
            .await;
        assert!(tokens["items"][0]["revoked_at"].is_null());
    }
}

#[tokio::test]
async fn the_openapi_document_and_tiers_are_served() {
    let backend = &backends().await[0];
    let api = Api::new(backend).await;
    let (status, doc) = api.call("GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/signup",
        "/api/v1/orgs/{org}/tokens",
        "/api/v1/tiers",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    let (status, tiers) = api.call("GET", "/api/v1/tiers", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tiers[0]["name"], "free");
    assert_eq!(tiers[0]["max_ops_per_sec"], 100);
    assert_eq!(tiers[1]["max_storage_bytes"], 100_000_000_000u64);
    let (status, metrics) = api.call("GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(r#"koru_controlplane_http_requests_total{route="/api/v1/tiers",method="GET",status="200"} 1"#),
        "{metrics}"
    );
    let (status, _) = api.call("GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api.call("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn lists_are_paged_with_cursors() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (owner, org, _) = api.signup("pager@example.com", "Pager").await;
        let path = format!("/api/v1/orgs/{org}/tokens");
        for i in 0..5 {
            let (status, _) = api
                .call(
                    "POST",
                    &path,
                    Some(&owner),
                    Some(json!({"name": format!("t{i}"), "role": "viewer"})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}?limit=2&cursor={c}"),
                None => format!("{path}?limit=2"),
            };
            let (status, page) = api.call("GET", &url, Some(&owner), None).await;
            assert_eq!(status, StatusCode::OK, "[{b}] {page}");
            pages += 1;
            for t in page["items"].as_array().unwrap() {
                names.push(t["name"].as_str().unwrap().to_string());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(pages, 3, "[{b}]");
        assert_eq!(
            names,
            ["t0", "t1", "t2", "t3", "t4"],
            "[{b}] no duplicates, no gaps"
        );
        for bad in [
            "?limit=0",
            "?limit=9999",
            "?limit=abc",
            "?cursor=garbage!",
            "?colour=red",
        ] {
            let (status, e) = api
                .call("GET", &format!("{path}{bad}"), Some(&owner), None)
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {bad}: {e}");
        }
    }
}
