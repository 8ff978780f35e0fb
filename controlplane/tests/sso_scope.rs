//! Who an organization's SSO may sign in, and where the session works (issue 14, findings 1, 4
//! and the login rate limit), over the real router, SQLite and PostgreSQL, and real XML
//! signatures by the test IdP: the takeover attack, pre-claiming, the scope of SSO sessions,
//! downgrade, the link flow, owner-only configuration, the browser binding of a login and the
//! limits of `/saml/{org}/login`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;
mod saml_idp;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use common::{Api, backends};
use koru_controlplane::sso::domains;
use koru_controlplane::sso::limiter::SamlLoginLimiter;
use koru_controlplane::state::SsoState;
use saml_idp::harness::{
    IDP_ENTITY, Org, configure, enterprise_org, message, percent_encode, post_acs,
    request_id as request_id_of, send, valid_assertion,
};
use saml_idp::{Idp, encode};
use serde_json::{Value, json};

/// Invites `email` (signed in as `token`) into `org` with `role`, and accepts.
async fn join(api: &Api, org: &Org, token: &str, email: &str, role: &str) {
    let (status, invitation) = api
        .call(
            "POST",
            &format!("/api/v1/orgs/{}/invitations", org.id),
            Some(&org.owner),
            Some(json!({"email": email, "role": role})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invitation}");
    let (status, e) = api
        .call(
            "POST",
            "/api/v1/invitations/accept",
            Some(token),
            Some(json!({"token": invitation["token"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
}

/// An SSO login of `email` at `org` through `idp` (API client): status and body.
async fn sso_login(api: &Api, org: &Org, idp: &Idp, email: &str) -> (StatusCode, Value) {
    let a = valid_assertion(api, org, idp, email).await;
    post_acs(
        api,
        &org.slug,
        &idp.response_with_signed_assertion(&a, &org.acs_url),
    )
    .await
}

async fn user_count(api: &Api, email: &str) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(&api.state.db)
        .await
        .unwrap()
        .get::<i64, _>("n")
}

#[tokio::test]
async fn another_organizations_idp_cannot_take_over_accounts_and_its_sessions_stay_home() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        // The victim owns organization B.
        let (victim, org_b, _) = api.signup("victim@victim.example", "Victim Org").await;
        // Organization A (enterprise) configures an IdP its owner controls.
        let attacker = Idp::new(IDP_ENTITY);
        let org_a = enterprise_org(&api, "boss@corp-a.example", "Corp A").await;
        let (status, e) = configure(&api, &org_a, &attacker.metadata(), "member", false).await;
        assert_eq!(status, StatusCode::OK, "[{b}] {e}");
        join(&api, &org_a, &victim, "victim@victim.example", "member").await;

        // The attack: A's IdP asserts the victim, who is a member of A. Refused and audited.
        let (status, e) = sso_login(&api, &org_a, &attacker, "victim@victim.example").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}] {e}");
        assert!(message(&e).contains("verified domains"), "[{b}] {e}");
        let actor: String = sqlx::query_scalar(
            "SELECT actor FROM audit_events WHERE action = 'POST /saml/{org}/acs' ORDER BY seq DESC LIMIT 1",
        )
        .fetch_one(&api.state.db)
        .await
        .unwrap();
        assert_eq!(actor, "email:victim@victim.example", "[{b}]");

        // Pre-claiming: no account is made for an address outside A's verified domains.
        let (status, e) = sso_login(&api, &org_a, &attacker, "later@elsewhere.example").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}] {e}");
        assert_eq!(
            user_count(&api, "later@elsewhere.example").await,
            0,
            "[{b}]"
        );

        // A verified domain: its people sign in, in A only.
        domains::verify_by_staff(&api.state.db, &org_a.slug, "corp-a.example", "ops")
            .await
            .unwrap();
        let (dual, org_c, _) = api.signup("dual@corp-a.example", "Dual's own").await;
        join(&api, &org_a, &dual, "dual@corp-a.example", "member").await;
        let (status, login) = sso_login(&api, &org_a, &attacker, "dual@corp-a.example").await;
        assert_eq!(status, StatusCode::OK, "[{b}] {login}");
        assert_eq!(login["organization_id"], org_a.id.as_str(), "[{b}]");
        let token = login["access_token"].as_str().unwrap().to_string();
        let (status, _) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{}", org_a.id),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] its own organization");
        let (status, e) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{org_c}/clusters"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}] {e}");
        assert!(message(&e).contains("single sign-on"), "[{b}] {e}");
        let (status, e) = api
            .call("GET", &format!("/api/v1/orgs/{org_b}"), Some(&token), None)
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "[{b}] not a member of B: {e}"
        );
        let (status, me) = api.call("GET", "/api/v1/me", Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "[{b}] {me}");
        assert_eq!(me["session_organization"], org_a.id.as_str(), "[{b}] {me}");
        // A refreshed session keeps the scope.
        let (status, fresh) = api
            .call(
                "POST",
                "/api/v1/token/refresh",
                None,
                Some(json!({"refresh_token": login["refresh_token"]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {fresh}");
        let refreshed = fresh["access_token"].as_str().unwrap();
        let (status, _) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{org_c}"),
                Some(refreshed),
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "[{b}] refreshed, still scoped"
        );
        // A member in the verified domain who was not yet a member joins A; a new address there
        // gets an account.
        let (status, new) = sso_login(&api, &org_a, &attacker, "fresh@corp-a.example").await;
        assert_eq!(status, StatusCode::OK, "[{b}] {new}");
        assert_eq!(new["created"], true, "[{b}]");

        // Downgrade: SSO stops at once, for new logins and for open sessions.
        let a = valid_assertion(&api, &org_a, &attacker, "dual@corp-a.example").await;
        sqlx::query("UPDATE organizations SET tier = 'pro' WHERE id = $1")
            .bind(&org_a.id)
            .execute(&api.state.db)
            .await
            .unwrap();
        let (status, e) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{}", org_a.id),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "[{b}] {e}");
        assert!(message(&e).contains("no longer on a tier"), "[{b}] {e}");
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/token/refresh",
                None,
                Some(json!({"refresh_token": fresh["refresh_token"]})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "[{b}] refresh after downgrade"
        );
        let (status, e) = post_acs(
            &api,
            &org_a.slug,
            &attacker.response_with_signed_assertion(&a, &org_a.acs_url),
        )
        .await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "[{b}] {e}");
        let req = Request::get(format!("/saml/{}/login", org_a.slug))
            .body(Body::empty())
            .unwrap();
        let (status, _, _) = send(&api, req).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "[{b}] login start");
        // A password session is not scoped and is unaffected.
        let (status, _) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{}", org_a.id),
                Some(&dual),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}]");
    }
}

#[tokio::test]
async fn only_an_owner_configures_sso_and_new_members_default_to_member() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let idp = Idp::new(IDP_ENTITY);
        let org = enterprise_org(&api, "owner@corp.example", "Corp").await;
        let (admin, _, _) = api.signup("admin@corp.example", "Admin's own").await;
        join(&api, &org, &admin, "admin@corp.example", "admin").await;
        let body = json!({"idp_metadata_xml": idp.metadata()});
        let path = format!("/api/v1/orgs/{}/sso", org.id);
        let (status, e) = api
            .call("PUT", &path, Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}] an admin: {e}");
        assert!(message(&e).contains("only an owner"), "[{b}] {e}");
        let (status, created) = api
            .call(
                "POST",
                &format!("/api/v1/orgs/{}/tokens", org.id),
                Some(&org.owner),
                Some(json!({"name": "ci", "role": "admin"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {created}");
        let api_token = created["token"].as_str().unwrap();
        let (status, e) = api
            .call("PUT", &path, Some(api_token), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}] an API token: {e}");
        let (status, e) = api
            .call(
                "POST",
                &format!("/api/v1/orgs/{}/sso/domains", org.id),
                Some(&admin),
                Some(json!({"domain": "corp.example"})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "[{b}] domains are the owner's: {e}"
        );

        // The owner: default_role omitted is member; owner never; admin when named.
        let (status, config) = api
            .call("PUT", &path, Some(&org.owner), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {config}");
        assert_eq!(config["default_role"], "member", "[{b}]");
        let (status, _) = configure(&api, &org, &idp.metadata(), "owner", false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}]");
        let (status, config) = configure(&api, &org, &idp.metadata(), "admin", false).await;
        assert_eq!(status, StatusCode::OK, "[{b}] {config}");
        assert_eq!(config["default_role"], "admin", "[{b}]");
    }
}

#[tokio::test]
async fn a_member_links_their_own_account_and_nobody_elses() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let idp = Idp::new(IDP_ENTITY);
        let org = enterprise_org(&api, "owner@corp.example", "Corp").await;
        assert_eq!(
            configure(&api, &org, &idp.metadata(), "member", false)
                .await
                .0,
            StatusCode::OK
        );
        let (lin, _, _) = api.signup("lin@personal.example", "Lin's own").await;
        join(&api, &org, &lin, "lin@personal.example", "member").await;
        // Without a link, the IdP cannot sign Lin in (personal.example is not A's).
        let (status, _) = sso_login(&api, &org, &idp, "lin@personal.example").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}]");

        // Lin starts the link flow with her own session; the IdP answers with its identity of her.
        let (status, started) = api
            .call(
                "POST",
                &format!("/api/v1/orgs/{}/sso/link", org.id),
                Some(&lin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {started}");
        let url = started["redirect_url"].as_str().unwrap();
        let request_id = request_id_of(url);
        let a = idp.assertion_for(
            &org.entity_id,
            &org.acs_url,
            &request_id,
            "lin.w@idp-users.example",
        );
        let (status, linked) = post_acs(
            &api,
            &org.slug,
            &idp.response_with_signed_assertion(&a, &org.acs_url),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {linked}");
        assert_eq!(linked["linked"], true, "[{b}]");
        assert_eq!(linked["user"]["email"], "lin@personal.example", "[{b}]");
        // From now on that identity signs Lin in, scoped to the organization.
        let (status, again) = sso_login(&api, &org, &idp, "lin.w@idp-users.example").await;
        assert_eq!(status, StatusCode::OK, "[{b}] {again}");
        assert_eq!(again["user"]["email"], "lin@personal.example", "[{b}]");
        assert_eq!(again["linked"], false, "[{b}]");

        // Another member cannot take the identity over, and API tokens cannot link.
        let (mo, _, _) = api.signup("mo@personal.example", "Mo's own").await;
        join(&api, &org, &mo, "mo@personal.example", "member").await;
        let (_, started) = api
            .call(
                "POST",
                &format!("/api/v1/orgs/{}/sso/link", org.id),
                Some(&mo),
                None,
            )
            .await;
        let request_id = request_id_of(started["redirect_url"].as_str().unwrap());
        let a = idp.assertion_for(
            &org.entity_id,
            &org.acs_url,
            &request_id,
            "lin.w@idp-users.example",
        );
        let (status, e) = post_acs(
            &api,
            &org.slug,
            &idp.response_with_signed_assertion(&a, &org.acs_url),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}] {e}");
        assert!(message(&e).contains("already linked"), "[{b}] {e}");
        let (status, _) = api
            .call(
                "POST",
                &format!("/api/v1/orgs/{}/sso/link", org.id),
                None,
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "[{b}] signed-in users only"
        );
        // Lin leaves: the link no longer signs her in.
        let lin_id = linked["user"]["id"].as_str().unwrap();
        let (status, _) = api
            .call(
                "DELETE",
                &format!("/api/v1/orgs/{}/members/{lin_id}", org.id),
                Some(&org.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "[{b}]");
        let (status, _) = sso_login(&api, &org, &idp, "lin.w@idp-users.example").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}]");
    }
}

/// Starts a login from `ip`; returns the status, the request ID and the binding cookie.
async fn start_from(api: &Api, org: &Org, ip: [u8; 4]) -> (StatusCode, Option<(String, String)>) {
    let mut req = Request::get(format!("/saml/{}/login", org.slug))
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
    let (status, headers, _) = send(api, req).await;
    if status != StatusCode::FOUND {
        return (status, None);
    }
    let cookie = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("koru_saml="))
        .expect("the binding cookie");
    let value = cookie["koru_saml=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let id = request_id_of(headers["location"].to_str().unwrap());
    (status, Some((id, value)))
}

/// Posts a response to the ACS as a browser would, with `cookie` as the binding cookie.
async fn browser_acs(api: &Api, org: &Org, response: &str, cookie: Option<&str>) -> StatusCode {
    let mut req = Request::post(format!("/saml/{}/acs", org.slug))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html");
    if let Some(c) = cookie {
        req = req.header("cookie", format!("koru_saml={c}"));
    }
    let body = format!("SAMLResponse={}", percent_encode(&encode(response)));
    let (status, _, _) = send(api, req.body(Body::from(body)).unwrap()).await;
    status
}

#[tokio::test]
async fn a_browser_login_needs_the_cookie_of_the_login_it_started() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let idp = Idp::new(IDP_ENTITY);
        let org = enterprise_org(&api, "owner@corp.example", "Corp").await;
        configure(&api, &org, &idp.metadata(), "member", false).await;
        domains::verify_by_staff(&api.state.db, &org.id, "corp.example", "ops")
            .await
            .unwrap();
        // The attacker's own login, answered by the IdP, posted from the victim's browser.
        let (_, attacker) = start_from(&api, &org, [192, 0, 2, 1]).await;
        let (attacker_id, attacker_cookie) = attacker.unwrap();
        let (_, victim) = start_from(&api, &org, [192, 0, 2, 2]).await;
        let (_, victim_cookie) = victim.unwrap();
        let a = idp.assertion_for(
            &org.entity_id,
            &org.acs_url,
            &attacker_id,
            "attacker@corp.example",
        );
        let response = idp.response_with_signed_assertion(&a, &org.acs_url);
        assert_eq!(
            browser_acs(&api, &org, &response, None).await,
            StatusCode::UNAUTHORIZED,
            "[{b}] no cookie"
        );
        assert_eq!(
            browser_acs(&api, &org, &response, Some(&victim_cookie)).await,
            StatusCode::UNAUTHORIZED,
            "[{b}] another login's cookie"
        );
        assert_eq!(
            browser_acs(&api, &org, &response, Some(&attacker_cookie)).await,
            StatusCode::SEE_OTHER,
            "[{b}] the browser that started it"
        );
    }
}

#[tokio::test]
async fn login_starts_are_limited_per_address_and_per_organization() {
    for backend in backends().await {
        let mut api = Api::new(&backend).await;
        let b = api.backend;
        api.state.sso = Arc::new(SsoState {
            login_limiter: SamlLoginLimiter::with_limits(3, 5),
            ..Default::default()
        });
        let idp = Idp::new(IDP_ENTITY);
        let org = enterprise_org(&api, "owner@corp.example", "Corp").await;
        configure(&api, &org, &idp.metadata(), "member", false).await;
        for _ in 0..3 {
            assert_eq!(
                start_from(&api, &org, [192, 0, 2, 1]).await.0,
                StatusCode::FOUND,
                "[{b}]"
            );
        }
        assert_eq!(
            start_from(&api, &org, [192, 0, 2, 1]).await.0,
            StatusCode::TOO_MANY_REQUESTS,
            "[{b}] per address"
        );
        assert_eq!(
            start_from(&api, &org, [192, 0, 2, 2]).await.0,
            StatusCode::FOUND,
            "[{b}]"
        );
        assert_eq!(
            start_from(&api, &org, [192, 0, 2, 3]).await.0,
            StatusCode::FOUND,
            "[{b}]"
        );
        assert_eq!(
            start_from(&api, &org, [192, 0, 2, 4]).await.0,
            StatusCode::TOO_MANY_REQUESTS,
            "[{b}] per organization"
        );
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM saml_requests")
            .fetch_one(&api.state.db)
            .await
            .unwrap();
        assert_eq!(rows, 5, "[{b}] refused starts write nothing");
    }
}
