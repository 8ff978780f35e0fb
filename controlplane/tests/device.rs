//! Device authorization (`POST /api/v1/device/code`, `/device`, `POST /api/v1/device/token`)
//! over the real router, SQLite and PostgreSQL: the whole flow, and the attacks each check
//! stops: polling with another's code, replay, approval without a session or without the
//! CSRF token, expired codes, guessing user codes, polling too fast.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;
mod saml_idp;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Api, backends};
use http_body_util::BodyExt;
use koru_controlplane::device::USER_CODE_TRIES_BURST;
use saml_idp::harness::{IDP_ENTITY, configure, enterprise_org, percent_encode, send};
use saml_idp::{Idp, encode};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A CSRF cookie value of the shape the dashboard issues (43 base64url characters).
const CSRF: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";

/// A page of the dashboard: status, `Location` and body.
struct Page {
    status: StatusCode,
    location: String,
    body: String,
}

/// Sends a dashboard request with the session cookie of `access` (if any) and the CSRF cookie.
async fn page(
    api: &Api,
    method: &str,
    path: &str,
    access: Option<&str>,
    form: Option<&str>,
) -> Page {
    let mut cookies = format!("koru_csrf={CSRF}");
    if let Some(a) = access {
        cookies.push_str(&format!("; koru_session={a}"));
    }
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:8080")
        .header("cookie", cookies);
    let req = match form {
        Some(f) => req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(f.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let response = koru_controlplane::http::app(api.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Page {
        status,
        location,
        body: String::from_utf8_lossy(&bytes).into(),
    }
}

/// Starts a flow; returns the answer.
async fn start(api: &Api) -> Value {
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/device/code",
            None,
            Some(json!({"client_name": "koru CLI on test"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Lets the next poll of every code count, as if its interval had passed.
async fn interval_passes(api: &Api) {
    sqlx::query("UPDATE device_codes SET last_polled_at = NULL")
        .execute(&api.state.db)
        .await
        .unwrap();
}

/// One poll after the interval; returns status and body.
async fn poll(api: &Api, device_code: &str) -> (StatusCode, Value) {
    interval_passes(api).await;
    api.call(
        "POST",
        "/api/v1/device/token",
        None,
        Some(json!({"device_code": device_code})),
    )
    .await
}

fn code_of(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

async fn approve(api: &Api, access: Option<&str>, user_code: &str) -> Page {
    page(
        api,
        "POST",
        "/device/approve",
        access,
        Some(&format!("csrf={CSRF}&user_code={user_code}")),
    )
    .await
}

#[tokio::test]
async fn a_terminal_gets_the_approvers_session_once() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let (alice, _, _) = api.signup("alice@example.com", "Alice Co").await;
        let flow = start(&api).await;
        let user_code = flow["user_code"].as_str().unwrap();
        let device_code = flow["device_code"].as_str().unwrap();
        assert_eq!(flow["interval"], 5);
        assert_eq!(flow["expires_in"], 600);
        assert_eq!(flow["verification_uri"], "http://127.0.0.1:8080/device");
        assert_eq!(
            flow["verification_uri_complete"],
            format!("http://127.0.0.1:8080/device/{user_code}")
        );
        // Only hashes are stored.
        let stored: Vec<(String, String)> =
            sqlx::query_as("SELECT device_code_hash, user_code_hash FROM device_codes")
                .fetch_all(&api.state.db)
                .await
                .unwrap();
        assert_eq!(stored.len(), 1);
        assert!(stored[0].0 != device_code && stored[0].1 != user_code);
        assert!(!stored[0].0.contains(device_code) && !stored[0].1.contains(user_code));

        let (status, body) = poll(&api, device_code).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(code_of(&body), "authorization_pending", "{body}");

        let shown = page(
            &api,
            "GET",
            &format!("/device/{user_code}"),
            Some(&alice),
            None,
        )
        .await;
        assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
        assert!(shown.body.contains(user_code) && shown.body.contains("koru CLI on test"));
        // Typed in lower case without the dash through the form works too.
        let typed = user_code.replace('-', "").to_lowercase();
        let shown = page(
            &api,
            "GET",
            &format!("/device?user_code={typed}"),
            Some(&alice),
            None,
        )
        .await;
        assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);

        let done = approve(&api, Some(&alice), user_code).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        assert!(done.body.contains("Approved"), "{}", done.body);

        let (status, tokens) = poll(&api, device_code).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        let access = tokens["access_token"].as_str().unwrap();
        assert!(tokens["refresh_token"].as_str().unwrap().starts_with("kr_"));
        let (status, me) = api.call("GET", "/api/v1/me", Some(access), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["user"]["email"], "alice@example.com");
        assert!(
            me.get("session_organization").is_none(),
            "a password session's scope"
        );

        // Replay: the session is handed out once, and the user code is decided once.
        let (status, body) = poll(&api, device_code).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(code_of(&body), "invalid_grant", "{body}");
        let again = approve(&api, Some(&alice), user_code).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.body);

        // Audit events: the approval by Alice and the poll that handed out her session.
        let actions: Vec<(String, Option<String>, String)> = sqlx::query_as(
            "SELECT action, actor, outcome FROM audit_events WHERE action LIKE '%device%' ORDER BY seq",
        )
        .fetch_all(&api.state.db)
        .await
        .unwrap();
        assert!(
            actions
                .iter()
                .any(|(a, actor, o)| a == "POST /device/approve"
                    && actor.as_deref().is_some_and(|x| x.starts_with("user:"))
                    && o == "success"),
            "{actions:?}"
        );
        assert!(
            actions
                .iter()
                .any(|(a, actor, o)| a == "POST /api/v1/device/token"
                    && actor.is_some()
                    && o == "success"),
            "{actions:?}"
        );
    }
}

#[tokio::test]
async fn polling_with_another_persons_codes_gets_nothing() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let (alice, _, _) = api.signup("alice@example.com", "Alice Co").await;
        let mallory_flow = start(&api).await;
        let alice_flow = start(&api).await;
        let alice_user_code = alice_flow["user_code"].as_str().unwrap();
        assert_eq!(
            approve(&api, Some(&alice), alice_user_code).await.status,
            StatusCode::OK
        );
        // Mallory's own code was not approved by Alice's approval.
        let (_, body) = poll(&api, mallory_flow["device_code"].as_str().unwrap()).await;
        assert_eq!(code_of(&body), "authorization_pending", "{body}");
        // The user code Mallory saw on Alice's screen is no device code, in any spelling.
        for guess in [
            alice_user_code.to_string(),
            alice_user_code.replace('-', ""),
            alice_user_code.to_lowercase(),
        ] {
            let (status, body) = poll(&api, &guess).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(code_of(&body), "invalid_grant", "{guess}: {body}");
        }
        // Nor is a device code off by one character, or the stored hash itself.
        let real = alice_flow["device_code"].as_str().unwrap();
        let mut tampered = real.to_string();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        let (_, body) = poll(&api, &tampered).await;
        assert_eq!(code_of(&body), "invalid_grant", "{body}");
        let (hash,): (String,) =
            sqlx::query_as("SELECT device_code_hash FROM device_codes WHERE status = 'approved'")
                .fetch_one(&api.state.db)
                .await
                .unwrap();
        let (_, body) = poll(&api, &hash).await;
        assert_eq!(code_of(&body), "invalid_grant", "{body}");
        // Alice's terminal still gets her session.
        let (status, _) = poll(&api, real).await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn approval_needs_a_session_and_the_csrf_token() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let (alice, _, _) = api.signup("alice@example.com", "Alice Co").await;
        let flow = start(&api).await;
        let user_code = flow["user_code"].as_str().unwrap();
        let device_code = flow["device_code"].as_str().unwrap();

        let anonymous = approve(&api, None, user_code).await;
        assert!(anonymous.status.is_redirection(), "{}", anonymous.status);
        assert_eq!(anonymous.location, "/login");
        let shown = page(&api, "GET", &format!("/device/{user_code}"), None, None).await;
        assert_eq!(shown.location, format!("/login?next=/device/{user_code}"));
        // A forged or revoked session is no session.
        let forged = approve(&api, Some("eyJhbGciOiJub25lIn0.e30."), user_code).await;
        assert!(forged.status.is_redirection(), "{}", forged.status);
        // A cross-site form (no CSRF field) with Alice's cookies changes nothing.
        let csrf_less = page(
            &api,
            "POST",
            "/device/approve",
            Some(&alice),
            Some(&format!("user_code={user_code}")),
        )
        .await;
        assert_eq!(csrf_less.status, StatusCode::FORBIDDEN);
        // And the API's bearer token is no dashboard session either.
        let (status, _) = api
            .call_raw(
                "POST",
                "/device/approve",
                Some(&alice),
                Some("application/x-www-form-urlencoded"),
                &format!("csrf={CSRF}&user_code={user_code}"),
            )
            .await;
        assert_ne!(status, StatusCode::OK);

        let (_, body) = poll(&api, device_code).await;
        assert_eq!(code_of(&body), "authorization_pending", "{body}");
        // Denied by its owner: the terminal learns it, and nothing more can happen to it.
        let denied = page(
            &api,
            "POST",
            "/device/deny",
            Some(&alice),
            Some(&format!("csrf={CSRF}&user_code={user_code}")),
        )
        .await;
        assert_eq!(denied.status, StatusCode::OK, "{}", denied.body);
        let (_, body) = poll(&api, device_code).await;
        assert_eq!(code_of(&body), "access_denied", "{body}");
        assert_eq!(
            approve(&api, Some(&alice), user_code).await.status,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn expired_codes_can_be_neither_approved_nor_redeemed() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let (alice, _, _) = api.signup("alice@example.com", "Alice Co").await;
        let flow = start(&api).await;
        let user_code = flow["user_code"].as_str().unwrap();
        let device_code = flow["device_code"].as_str().unwrap();
        let expire = || async {
            sqlx::query("UPDATE device_codes SET expires_at = created_at - 1")
                .execute(&api.state.db)
                .await
                .unwrap();
        };
        expire().await;
        let shown = page(
            &api,
            "GET",
            &format!("/device/{user_code}"),
            Some(&alice),
            None,
        )
        .await;
        assert_eq!(shown.status, StatusCode::NOT_FOUND, "{}", shown.body);
        assert_eq!(
            approve(&api, Some(&alice), user_code).await.status,
            StatusCode::NOT_FOUND
        );
        let (_, body) = poll(&api, device_code).await;
        assert_eq!(code_of(&body), "expired_token", "{body}");

        // Approved in time but redeemed too late: still nothing.
        let flow = start(&api).await;
        assert_eq!(
            approve(&api, Some(&alice), flow["user_code"].as_str().unwrap())
                .await
                .status,
            StatusCode::OK
        );
        expire().await;
        let (_, body) = poll(&api, flow["device_code"].as_str().unwrap()).await;
        assert_eq!(code_of(&body), "expired_token", "{body}");
    }
}

#[tokio::test]
async fn guessing_user_codes_is_cut_off() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let (mallory, _, _) = api.signup("mallory@example.com", "Mallory Co").await;
        let flow = start(&api).await;
        let user_code = flow["user_code"].as_str().unwrap();
        for i in 0..USER_CODE_TRIES_BURST {
            // Well-formed codes that are not the real one.
            let guess = if user_code == "BBBB-BBBB" {
                "CCCC-CCCC"
            } else {
                "BBBB-BBBB"
            };
            let path = if i % 2 == 0 {
                format!("/device/{guess}")
            } else {
                format!("/device?user_code={guess}")
            };
            let miss = page(&api, "GET", &path, Some(&mallory), None).await;
            assert_eq!(miss.status, StatusCode::NOT_FOUND, "{}", miss.body);
        }
        // The right code, once the guesses are spent, is refused too: look-ups, not misses,
        // are what is limited, so a hit cannot be told from a miss.
        let hit = page(
            &api,
            "GET",
            &format!("/device/{user_code}"),
            Some(&mallory),
            None,
        )
        .await;
        assert_eq!(hit.status, StatusCode::TOO_MANY_REQUESTS, "{}", hit.body);
        assert!(!hit.body.contains("koru CLI on test"));
        let approval = approve(&api, Some(&mallory), user_code).await;
        assert_eq!(approval.status, StatusCode::TOO_MANY_REQUESTS);
        let (_, body) = poll(&api, flow["device_code"].as_str().unwrap()).await;
        assert_eq!(code_of(&body), "authorization_pending", "{body}");
    }
}

#[tokio::test]
async fn polling_too_fast_slows_the_terminal_down() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let flow = start(&api).await;
        let device_code = flow["device_code"].as_str().unwrap();
        let body = json!({"device_code": device_code});
        let (_, first) = api
            .call("POST", "/api/v1/device/token", None, Some(body.clone()))
            .await;
        assert_eq!(code_of(&first), "authorization_pending");
        let (status, second) = api
            .call("POST", "/api/v1/device/token", None, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(code_of(&second), "slow_down", "{second}");
        assert_eq!(second["error"]["interval"], 10);
        let (_, third) = api
            .call("POST", "/api/v1/device/token", None, Some(body))
            .await;
        assert_eq!(third["error"]["interval"], 15, "{third}");
        // A bad request is refused plainly.
        let (status, bad) = api
            .call(
                "POST",
                "/api/v1/device/code",
                None,
                Some(json!({"organization": "no/slashes"})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        let (status, sso) = api
            .call(
                "POST",
                "/api/v1/device/code",
                None,
                Some(json!({"organization": "Acme"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let code = sso["user_code"].as_str().unwrap();
        assert_eq!(
            sso["verification_uri_complete"],
            format!("http://127.0.0.1:8080/login/sso?org=acme&next=/device/{code}")
        );
    }
}

#[tokio::test]
async fn an_sso_sessions_scope_carries_over_to_the_terminal() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let org = enterprise_org(&api, "owner@corp.example", "Corp").await;
        let idp = Idp::new(IDP_ENTITY);
        let (status, body) = configure(&api, &org, &idp.metadata(), "member", false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, me) = api.call("GET", "/api/v1/me", Some(&org.owner), None).await;
        let user_id = me["user"]["id"].as_str().unwrap();
        // A session SSO opened: scoped to the organization.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let (scoped, _) = api
            .state
            .sessions
            .issue(user_id, Some(&org.id), now)
            .unwrap();
        let flow = start(&api).await;
        let done = approve(&api, Some(&scoped), flow["user_code"].as_str().unwrap()).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        let (status, tokens) = poll(&api, flow["device_code"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        let (_, me) = api
            .call("GET", "/api/v1/me", tokens["access_token"].as_str(), None)
            .await;
        assert_eq!(
            me["session_organization"],
            org.id.as_str(),
            "never wider than the approval"
        );
        // The refreshed session keeps the scope.
        let (status, refreshed) = api
            .call(
                "POST",
                "/api/v1/token/refresh",
                None,
                Some(json!({"refresh_token": tokens["refresh_token"]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, me) = api
            .call(
                "GET",
                "/api/v1/me",
                refreshed["access_token"].as_str(),
                None,
            )
            .await;
        assert_eq!(me["session_organization"], org.id.as_str());
    }
}

/// The value of cookie `name` set by a response.
fn set_cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
        .map(str::to_string)
}

#[tokio::test]
async fn the_complete_link_signs_in_through_sso_and_lands_on_the_approval() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let org = enterprise_org(&api, "owner@corp.example", "Corp").await;
        let idp = Idp::new(IDP_ENTITY);
        configure(&api, &org, &idp.metadata(), "member", false).await;
        koru_controlplane::sso::domains::verify_by_staff(
            &api.state.db,
            &org.id,
            "corp.example",
            "ops",
        )
        .await
        .unwrap();
        // The terminal asks to sign in through the organization's SSO.
        let (status, flow) = api
            .call(
                "POST",
                "/api/v1/device/code",
                None,
                Some(json!({"client_name": "koru CLI", "organization": org.slug})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {flow}");
        let user_code = flow["user_code"].as_str().unwrap();
        let complete = flow["verification_uri_complete"].as_str().unwrap();
        let path = complete.strip_prefix("http://127.0.0.1:8080").unwrap();
        // The browser follows it: the dashboard's SSO start, the IdP, the ACS, the approval page.
        let start = Request::get(path).body(Body::empty()).unwrap();
        let (status, headers, _) = send(&api, start).await;
        assert!(status.is_redirection(), "[{b}] {status}");
        let saml_login = headers["location"].to_str().unwrap().to_string();
        assert!(
            saml_login.starts_with(&format!("/saml/{}/login", org.slug)),
            "{saml_login}"
        );
        let (status, headers, body) =
            send(&api, Request::get(&saml_login).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::FOUND, "[{b}] {body}");
        let binding = set_cookie(&headers, "koru_saml").unwrap();
        let to_idp = headers["location"].to_str().unwrap();
        let request_id = saml_idp::harness::request_id(to_idp);
        let assertion = idp.assertion_for(
            &org.entity_id,
            &org.acs_url,
            &request_id,
            "owner@corp.example",
        );
        let response = idp.response_with_signed_assertion(&assertion, &org.acs_url);
        let acs = Request::post(format!("/saml/{}/acs", org.slug))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/html")
            .header("cookie", format!("koru_saml={binding}"))
            .body(Body::from(format!(
                "SAMLResponse={}",
                percent_encode(&encode(&response))
            )))
            .unwrap();
        let (status, headers, body) = send(&api, acs).await;
        assert!(status.is_redirection(), "[{b}] {status} {body}");
        assert_eq!(headers["location"], format!("/device/{user_code}").as_str());
        let session = set_cookie(&headers, "koru_session").unwrap();
        // Approved with the SSO session the ACS opened.
        let shown = page(
            &api,
            "GET",
            &format!("/device/{user_code}"),
            Some(&session),
            None,
        )
        .await;
        assert_eq!(shown.status, StatusCode::OK, "[{b}] {}", shown.body);
        assert!(
            shown.body.contains(&org.slug),
            "the organization asked for is shown"
        );
        assert_eq!(
            approve(&api, Some(&session), user_code).await.status,
            StatusCode::OK
        );
        let (status, tokens) = poll(&api, flow["device_code"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK, "[{b}] {tokens}");
        let (_, me) = api
            .call("GET", "/api/v1/me", tokens["access_token"].as_str(), None)
            .await;
        assert_eq!(me["user"]["email"], "owner@corp.example");
        assert_eq!(me["session_organization"], org.id.as_str());
    }
}
