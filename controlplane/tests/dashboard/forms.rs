//! The dashboard's pages and forms over the real router: sessions in cookies, CSRF on every
//! POST, generic login errors, plans at sign-up, quota errors inline, API tokens shown once,
//! tenant isolation.

use axum::http::StatusCode;
use sqlx::Row;

use super::common::{Api, backends};
use super::{Browser, HOST};

#[tokio::test]
async fn pages_need_a_session_and_every_post_the_csrf_token() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut browser = Browser::new(&api);

        let page = browser.get("/orgs/acme/clusters").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(page.location(), "/login?next=/orgs/acme/clusters", "[{b}]");
        let csrf = page.set_cookie("koru_csrf").expect("a CSRF cookie");
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(csrf.contains(attr), "[{b}] {attr} in {csrf}");
        }
        assert!(!csrf.contains("Secure"), "[{b}] plain http: {csrf}");
        let page = browser.get("/login").await;
        assert_eq!(page.status, StatusCode::OK, "[{b}]");
        assert!(
            page.set_cookie("koru_csrf").is_none(),
            "[{b}] kept, not renewed"
        );
        assert!(
            page.headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        let token = browser.cookies["koru_csrf"].clone();
        assert!(
            page.body
                .contains(&format!("name=\"csrf\" value=\"{token}\"")),
            "[{b}] the form carries the token"
        );

        let signup = [
            ("email", "ada@example.com"),
            ("password", "correct horse battery"),
            ("organization", "Acme"),
            ("tier", "free"),
        ];
        let origin = format!("http://{HOST}");
        let page = browser.post_raw("/signup", &signup, &origin).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "[{b}] no token");
        assert!(page.body.contains("expired or came from another site"));
        let mut wrong = vec![("csrf", "x".repeat(43))];
        wrong.extend(signup.iter().map(|(k, v)| (*k, v.to_string())));
        let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = browser.post_raw("/signup", &wrong, &origin).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "[{b}] wrong token");
        let mut right = vec![("csrf", token.as_str())];
        right.extend_from_slice(&signup);
        let page = browser
            .post_raw("/signup", &right, "https://evil.example")
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "[{b}] another origin");
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/login",
                None,
                Some(serde_json::json!({"email": "ada@example.com", "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "[{b}] no account was made"
        );

        let slug = browser.sign_up("ada@example.com", "Acme", "free").await;
        assert_eq!(slug, "acme");
        for name in ["koru_session", "koru_refresh"] {
            assert!(browser.cookies.contains_key(name), "[{b}] {name}");
        }
        assert_ne!(
            browser.cookies["koru_csrf"], token,
            "[{b}] renewed at login"
        );
        let page = browser.get("/orgs/acme/clusters").await;
        assert_eq!(page.status, StatusCode::OK, "[{b}]");
        assert!(page.body.contains("No clusters yet"), "[{b}]");
        assert!(
            page.body.contains("Welcome to KoruDelta Cloud"),
            "[{b}] flash"
        );
        let page = browser.get("/orgs/acme/clusters").await;
        assert!(
            !page.body.contains("Welcome to"),
            "[{b}] a flash shows once"
        );

        // A form posted with the token of before the login is refused.
        let page = browser
            .post_raw("/logout", &[("csrf", &token)], &origin)
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "[{b}]");
    }
}

#[tokio::test]
async fn https_makes_cookies_secure_with_host_prefixed_names() {
    let backend = &backends().await[0];
    let mut api = Api::new(backend).await;
    api.state.public_url = "https://cloud.example.com".into();
    let mut browser = Browser::new(&api);
    let page = browser.get("/login").await;
    let csrf = page
        .set_cookie("__Host-koru_csrf")
        .expect("a __Host- cookie");
    assert!(
        csrf.contains("Secure") && csrf.contains("HttpOnly"),
        "{csrf}"
    );
    browser.sign_up("ada@example.com", "Acme", "pro").await;
    for name in ["__Host-koru_session", "__Host-koru_refresh"] {
        assert!(browser.cookies.contains_key(name), "{name}");
    }
    assert_eq!(browser.get("/orgs/acme/plan").await.status, StatusCode::OK);
}

#[tokio::test]
async fn login_errors_are_generic_and_logout_ends_the_session() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        api.signup("ada@example.com", "Acme").await;
        let mut browser = Browser::new(&api);
        browser.get("/login").await;
        let wrong = browser
            .post(
                "/login",
                &[
                    ("email", "ada@example.com"),
                    ("password", "not the password"),
                ],
            )
            .await;
        let unknown = browser
            .post(
                "/login",
                &[
                    ("email", "bob@example.com"),
                    ("password", "not the password"),
                ],
            )
            .await;
        assert_eq!(
            (wrong.status, unknown.status),
            (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED),
            "[{b}]"
        );
        let message = |body: &str| {
            body.split("role=\"alert\" id=\"login-error\">")
                .nth(1)
                .and_then(|rest| rest.split('<').next())
                .map(str::to_string)
        };
        assert_eq!(
            message(&wrong.body).as_deref(),
            Some("Wrong email or password.")
        );
        assert_eq!(message(&wrong.body), message(&unknown.body), "[{b}]");

        let page = browser
            .post(
                "/login",
                &[
                    ("email", "ADA@example.com"),
                    ("password", "correct horse battery"),
                    ("next", "/orgs/acme/tokens"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        assert_eq!(page.location(), "/orgs/acme/tokens", "[{b}]");
        let page = browser
            .post(
                "/login",
                &[
                    ("email", "ada@example.com"),
                    ("password", "correct horse battery"),
                    ("next", "//evil.example/x"),
                ],
            )
            .await;
        assert_eq!(page.location(), "/", "[{b}] no open redirect");

        // Only the refresh cookie left (the access token expired): the session is renewed.
        let before = browser.cookies.clone();
        browser.cookies.remove("koru_session");
        let page = browser.get("/orgs/acme/clusters").await;
        assert_eq!(page.status, StatusCode::OK, "[{b}]");
        assert!(page.set_cookie("koru_session").is_some(), "[{b}] renewed");
        assert_ne!(
            browser.cookies["koru_refresh"], before["koru_refresh"],
            "[{b}] rotated"
        );
        let stale = browser.cookies.clone();

        let page = browser.post("/logout", &[]).await;
        assert_eq!(
            (page.status, page.location()),
            (StatusCode::SEE_OTHER, "/login"),
            "[{b}]"
        );
        assert!(!browser.cookies.contains_key("koru_session"), "[{b}]");
        // The session's cookies, replayed, no longer open anything.
        let mut replay = Browser::new(&api);
        replay.cookies = stale;
        let page = replay.get("/orgs/acme/clusters").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
    }
}

#[tokio::test]
async fn sign_up_offers_the_plans_and_enterprise_is_arranged_with_sales() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut browser = Browser::new(&api);
        let page = browser.get("/signup").await;
        for plan in ["tier-free", "tier-pro", "tier-enterprise"] {
            assert!(page.body.contains(plan), "[{b}] {plan}");
        }
        let page = browser
            .post(
                "/signup",
                &[
                    ("email", "cto@example.com"),
                    ("password", "correct horse battery"),
                    ("organization", "Big Co"),
                    ("tier", "enterprise"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::PAYMENT_REQUIRED, "[{b}]");
        assert!(page.body.contains("set up with our sales team"), "[{b}]");
        assert!(
            page.body.contains("value=\"cto@example.com\""),
            "[{b}] kept"
        );
        let page = browser
            .post(
                "/signup",
                &[
                    ("email", "cto@example.com"),
                    ("password", "short"),
                    ("organization", "Big Co"),
                    ("tier", "pro"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}]");
        assert!(page.body.contains("class=\"form-error\""), "[{b}] inline");

        let slug = browser.sign_up("cto@example.com", "Big Co", "pro").await;
        let page = browser.get(&format!("/orgs/{slug}/plan")).await;
        assert!(
            page.body.contains("id=\"current-plan\">pro<"),
            "[{b}] {}",
            page.body
        );
    }
}

#[tokio::test]
async fn the_free_quota_shows_inline_and_tokens_are_shown_once() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut browser = Browser::new(&api);
        let slug = browser.sign_up("ada@example.com", "Acme", "free").await;
        let clusters = format!("/orgs/{slug}/clusters");
        let page = browser.get(&format!("{clusters}/new")).await;
        assert!(
            page.body.contains("1 of 1 cluster left on the free plan"),
            "[{b}]"
        );
        let create = |name: &'static str| {
            [
                ("name", name),
                ("tier", "free"),
                ("region", "local"),
                ("replicas", "1"),
            ]
        };
        let first = [
            ("name", "first"),
            ("tier", "free"),
            ("region", "local"),
            ("replicas", "1"),
            ("idempotency_key", "form-1"),
        ];
        let page = browser.post(&clusters, &first).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        assert_eq!(page.location(), format!("{clusters}/first"));
        // The same form sent again (a double click) leads to the same cluster, not a second one.
        let page = browser.post(&clusters, &first).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        assert_eq!(page.location(), format!("{clusters}/first"));
        let page = browser.post(&clusters, &create("second")).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "[{b}]");
        assert!(
            page.body.contains(
                "The free tier allows 1 cluster(s) per organization, and this organization has 1."
            ),
            "[{b}] {}",
            page.body
        );
        assert!(
            page.body.contains("value=\"second\""),
            "[{b}] the form is kept"
        );
        let page = browser.get(&format!("{clusters}/first")).await;
        assert_eq!(page.status, StatusCode::OK, "[{b}]");
        assert!(page.body.contains("No samples yet"), "[{b}]");

        // Usage samples (the collector's, a minute apart) become two charts against the limits.
        let row = sqlx::query("SELECT id, org_id FROM clusters WHERE name = 'first'")
            .fetch_one(&api.state.db)
            .await
            .unwrap();
        let (cluster_id, org_id): (String, String) = (row.get("id"), row.get("org_id"));
        let now = koru_controlplane::db::now_ms();
        for (i, (stored, requests)) in [(1_000_i64, 0_i64), (5_000, 3_000), (9_000, 4_200)]
            .into_iter()
            .enumerate()
        {
            let at = now - 120_000 + 60_000 * i as i64;
            sqlx::query(
                "INSERT INTO usage_samples (cluster_id, org_id, bucket, at, stored_bytes, requests_total) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&cluster_id)
            .bind(&org_id)
            .bind(at / 60_000)
            .bind(at)
            .bind(stored)
            .bind(requests)
            .execute(&api.state.db)
            .await
            .unwrap();
        }
        let page = browser.get(&format!("{clusters}/first")).await;
        assert_eq!(
            page.body.matches("<svg class=\"chart\"").count(),
            2,
            "[{b}]"
        );
        assert!(
            page.body.contains("peak 50/s, limit 100/s"),
            "[{b}] 3,000 requests in a minute, against the free tier's limit"
        );
        assert!(page.body.contains("peak 9 kB, limit 1 GB"), "[{b}]");

        let tokens = format!("/orgs/{slug}/tokens");
        let page = browser
            .post(
                &tokens,
                &[
                    ("name", "ci"),
                    ("role", "member"),
                    ("expires_in_days", "30"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::CREATED, "[{b}]");
        let secret = page
            .body
            .split("id=\"token-secret\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap()
            .to_string();
        assert!(secret.starts_with("koru_"), "[{b}] {secret}");
        let (status, _) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{slug}/clusters"),
                Some(&secret),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] the token works");
        let page = browser.get(&tokens).await;
        assert!(!page.body.contains(&secret), "[{b}] shown once");
        let (_, listed) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{slug}/tokens"),
                Some(&secret),
                None,
            )
            .await;
        assert!(
            listed["error"].is_object(),
            "[{b}] members do not list tokens"
        );
        let id = page
            .body
            .split("action=\"/orgs/acme/tokens/")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap()
            .to_string();
        let page = browser.post(&format!("{tokens}/{id}/revoke"), &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}]");
        let (status, _) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{slug}/clusters"),
                Some(&secret),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "[{b}] revoked");
        let page = browser.get(&tokens).await;
        assert!(page.body.contains("The token is revoked"), "[{b}] flash");
        assert!(page.body.contains("class=\"revoked\""), "[{b}]");

        // Its data plane must be up before the test ends, so that the harness stops it.
        let mut phase = String::new();
        for _ in 0..300 {
            phase = sqlx::query("SELECT phase FROM clusters WHERE id = $1")
                .bind(&cluster_id)
                .fetch_one(&api.state.db)
                .await
                .unwrap()
                .get("phase");
            if phase != "Pending" && phase != "Provisioning" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(phase, "Running", "[{b}]");
    }
}

#[tokio::test]
async fn another_tenants_pages_are_not_found_and_roles_are_enforced() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ada = Browser::new(&api);
        ada.sign_up("ada@example.com", "Acme", "pro").await;
        let mut bob = Browser::new(&api);
        bob.sign_up("bob@example.com", "Bobs", "free").await;
        for path in [
            "/orgs/acme/clusters",
            "/orgs/acme/tokens",
            "/orgs/acme/plan",
            "/orgs/acme/clusters/new",
        ] {
            let page = bob.get(path).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "[{b}] {path}");
        }
        let req = axum::http::Request::builder()
            .uri("/orgs/acme/no-such-page")
            .header("accept", "text/html");
        let page = bob.send(req, axum::body::Body::empty()).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "[{b}]");
        assert!(
            page.body.contains("There is no page at this address"),
            "[{b}]"
        );
        let (status, body) = api.call("GET", "/api/v1/no-such-thing", None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "[{b}] {body}");
        let page = bob.post("/orgs/acme/plan", &[("tier", "free")]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "[{b}]");
        let page = bob
            .post(
                "/orgs/acme/clusters",
                &[("name", "x"), ("tier", "free"), ("replicas", "1")],
            )
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "[{b}]");
        // The audit log records dashboard changes like API ones, under the organization.
        let (status, login) = api
            .call(
                "POST",
                "/api/v1/login",
                None,
                Some(serde_json::json!({"email": "ada@example.com", "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}]");
        let access = login["access_token"].as_str().unwrap().to_string();
        let (_, events) = api
            .call("GET", "/api/v1/orgs/acme/audit", Some(&access), None)
            .await;
        let actions: Vec<String> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["action"].as_str().unwrap(),
                    e["outcome"].as_str().unwrap()
                )
            })
            .collect();
        assert!(
            actions.contains(&"POST /orgs/{org}/plan failure:404".to_string()),
            "[{b}] {actions:?}"
        );
    }
}

/// The text between `start` and the next `end` in `body`.
fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    body.split(start)
        .nth(1)
        .and_then(|rest| rest.split(end).next())
        .unwrap_or_else(|| panic!("no {start:?} in the page"))
}

#[tokio::test]
async fn members_are_invited_switch_organizations_and_show_in_the_audit_log() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ada = Browser::new(&api);
        ada.sign_up("ada@example.com", "Acme", "pro").await;
        let mut bob = Browser::new(&api);
        bob.sign_up("bob@example.com", "Bobs", "free").await;
        let page = bob.get("/orgs/bobs/clusters").await;
        assert!(
            !page.body.contains("class=\"switcher\""),
            "[{b}] one organization"
        );

        let page = ada
            .post(
                "/orgs/acme/members",
                &[("email", "bob@example.com"), ("role", "member")],
            )
            .await;
        assert_eq!(page.status, StatusCode::CREATED, "[{b}] {}", page.body);
        let link = between(&page.body, "id=\"invite-link\">", "<").to_string();
        let token = link
            .strip_prefix("http://127.0.0.1:8080/invitations/")
            .unwrap_or_else(|| panic!("[{b}] link {link}"));
        assert!(token.starts_with("ki_"), "[{b}] {token}");
        let page = ada.get("/orgs/acme/members").await;
        assert!(!page.body.contains(token), "[{b}] the link is shown once");
        assert!(page.body.contains("pending until"), "[{b}]");

        let mut stranger = Browser::new(&api);
        let page = stranger.get(&format!("/invitations/{token}")).await;
        assert_eq!(
            page.location(),
            format!("/login?next=/invitations/{token}"),
            "[{b}] back to the invitation after logging in"
        );
        let page = bob.get(&format!("/invitations/{token}")).await;
        assert_eq!(page.status, StatusCode::OK, "[{b}]");
        let page = bob.post("/invitations/accept", &[("token", token)]).await;
        assert_eq!(
            (page.status, page.location()),
            (StatusCode::SEE_OTHER, "/orgs/acme/clusters"),
            "[{b}] {}",
            page.body
        );
        let page = bob.get("/orgs/acme/clusters").await;
        assert!(page.body.contains("Welcome to Acme."), "[{b}]");
        let used = bob.post("/invitations/accept", &[("token", token)]).await;
        assert_eq!(used.status, StatusCode::NOT_FOUND, "[{b}] used once");
        assert!(
            page.body.contains("class=\"switcher\""),
            "[{b}] two organizations"
        );
        assert!(page.body.contains("href=\"/orgs/bobs/clusters\""), "[{b}]");
        for admin_only in ["/orgs/acme/tokens", "/orgs/acme/audit"] {
            let page = bob.get(admin_only).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "[{b}] {admin_only}");
        }

        let page = ada.get("/orgs/acme/members").await;
        // The only role form is Bob's (nobody changes their own role).
        let bob_id = page
            .body
            .split("/role\"")
            .next()
            .and_then(|before| before.rsplit("/orgs/acme/members/").next())
            .unwrap()
            .to_string();
        let page = ada
            .post(
                &format!("/orgs/acme/members/{bob_id}/role"),
                &[("role", "admin")],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        assert_eq!(
            bob.get("/orgs/acme/tokens").await.status,
            StatusCode::OK,
            "[{b}]"
        );
        let page = bob
            .post(
                &format!("/orgs/acme/members/{bob_id}/role"),
                &[("role", "owner")],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::FORBIDDEN,
            "[{b}] admins make no owners"
        );
        assert!(page.body.contains("class=\"form-error\""), "[{b}] inline");
        let page = ada.get("/orgs/acme/members").await;
        let me = between(&page.body, "<span class=\"tag\">you</span>", "</tr>");
        let ada_remove = between(me, "action=\"", "\"").to_string();
        let page = ada.post(&ada_remove, &[]).await;
        assert_eq!(
            page.status,
            StatusCode::CONFLICT,
            "[{b}] the last owner stays"
        );
        assert!(page.body.contains("keeps at least one owner"), "[{b}]");

        let page = ada.get("/orgs/acme/audit").await;
        assert_eq!(page.status, StatusCode::OK, "[{b}]");
        for seen in [
            "POST /orgs/{org}/members",
            "POST /invitations/accept",
            "bob@example.com",
            "failure:409",
        ] {
            assert!(page.body.contains(seen), "[{b}] {seen}");
        }
        let page = ada.get("/orgs/acme/audit?outcome=failure&period=24h").await;
        assert!(page.body.contains("failure:409"), "[{b}]");
        assert!(!page.body.contains("badge badge-ok"), "[{b}] only failures");
        let page = ada.get("/orgs/acme/audit?verify=1").await;
        assert!(
            page.body.contains("The chain is intact"),
            "[{b}] {}",
            page.body
        );
        let page = ada.get("/orgs/acme/audit?before=soon").await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}]");
    }
}
