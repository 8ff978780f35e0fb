//! Single sign-on in the dashboard: the settings page (enterprise only) and a browser logged in
//! through a real SAML exchange with the test IdP, landing in session cookies.

use axum::body::Body;
use axum::http::{Request, StatusCode};

use super::common::{Api, backends};
use super::saml_idp::harness::{IDP_ENTITY, percent_encode, request_id};
use super::saml_idp::{Idp, encode};
use super::{Browser, HOST};

#[tokio::test]
async fn sso_is_set_up_on_its_page_and_logs_a_browser_in() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut owner = Browser::new(&api);
        let slug = owner.sign_up("ada@corp.example", "Corp", "pro").await;
        let settings = format!("/orgs/{slug}/sso");
        let page = owner.get(&settings).await;
        assert!(page.body.contains("part of the enterprise plan"), "[{b}]");
        let idp = Idp::new(IDP_ENTITY);
        let metadata = idp.metadata();
        let page = owner
            .post(
                &settings,
                &[("idp_metadata_xml", &metadata), ("default_role", "member")],
            )
            .await;
        assert_eq!(page.status, StatusCode::PAYMENT_REQUIRED, "[{b}]");

        sqlx::query("UPDATE organizations SET tier = 'enterprise' WHERE slug = $1")
            .bind(&slug)
            .execute(&api.state.db)
            .await
            .unwrap();
        let page = owner.get(&settings).await;
        assert!(
            page.body
                .contains(&format!("http://{HOST}/saml/{slug}/acs")),
            "[{b}] our ACS URL, for the IdP"
        );
        let page = owner
            .post(
                &settings,
                &[
                    ("idp_metadata_xml", "<not metadata/>"),
                    ("default_role", "member"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}]");
        assert!(page.body.contains("class=\"form-error\""), "[{b}] inline");
        let page = owner
            .post(
                &settings,
                &[("idp_metadata_xml", &metadata), ("default_role", "member")],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        let page = owner.get(&settings).await;
        assert!(
            page.body.contains(&format!(
                "Configured with the identity provider {IDP_ENTITY}"
            )),
            "[{b}]"
        );
        // The owner adds the domain; staff verifies it (the DNS check has its own test).
        let page = owner
            .post(
                &format!("{settings}/domains"),
                &[("domain", "corp.example")],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        let page = owner.get(&settings).await;
        assert!(
            page.body.contains("_koru-challenge.corp.example"),
            "[{b}] the TXT record to publish"
        );
        koru_controlplane::sso::domains::verify_by_staff(
            &api.state.db,
            &slug,
            "corp.example",
            "tests",
        )
        .await
        .unwrap();

        // A new person logs in with SSO: login page → our SP → the IdP → our ACS → the dashboard.
        let mut browser = Browser::new(&api);
        let page = browser.get(&format!("/login/sso?org={slug}")).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}]");
        assert_eq!(
            page.location(),
            format!("/saml/{slug}/login?relay_state=%2Forgs%2F{slug}%2Fclusters"),
            "[{b}]"
        );
        let to_idp = browser.get(page.location()).await;
        assert_eq!(to_idp.status, StatusCode::FOUND, "[{b}] {}", to_idp.body);
        let acs = format!("http://{HOST}/saml/{slug}/acs");
        let assertion = idp.assertion_for(
            &format!("http://{HOST}/saml/{slug}/metadata"),
            &acs,
            &request_id(to_idp.location()),
            "new.person@corp.example",
        );
        let response = idp.response_with_signed_assertion(&assertion, &acs);
        // The IdP's page posts the form from its own origin, as browsers do.
        let req = Request::builder()
            .method("POST")
            .uri(format!("/saml/{slug}/acs"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/html,application/xhtml+xml")
            .header("origin", "https://idp.test");
        let body = format!("SAMLResponse={}", percent_encode(&encode(&response)));
        let page = browser.send(req, Body::from(body)).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        assert_eq!(page.location(), format!("/orgs/{slug}/clusters"), "[{b}]");
        assert!(page.set_cookie("koru_session").is_some(), "[{b}]");
        let page = browser.get(&format!("/orgs/{slug}/clusters")).await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] signed in through SSO");
        assert!(page.body.contains("new.person@corp.example"), "[{b}]");

        // The SSO session is scoped to the organization: another one of theirs refuses it.
        let (_, other_org, _) = api.signup("other@other.example", "Other").await;
        let user_id: String =
            sqlx::query_scalar("SELECT id FROM users WHERE email = 'new.person@corp.example'")
                .fetch_one(&api.state.db)
                .await
                .unwrap();
        sqlx::query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, 'member', 0)")
            .bind(&other_org)
            .bind(&user_id)
            .execute(&api.state.db)
            .await
            .unwrap();
        let page = browser.get(&format!("/orgs/{other_org}/clusters")).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "[{b}] {}", page.body);
        assert!(page.body.contains("single sign-on"), "[{b}]");

        // Once the organization leaves the enterprise plan, the session ends at once.
        sqlx::query("UPDATE organizations SET tier = 'pro' WHERE slug = $1")
            .bind(&slug)
            .execute(&api.state.db)
            .await
            .unwrap();
        let page = browser.get(&format!("/orgs/{slug}/clusters")).await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "[{b}] to the login page"
        );
        assert!(page.location().starts_with("/login"), "[{b}]");
    }
}
