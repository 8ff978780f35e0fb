//! SAML single sign-on over the real router, a real database (SQLite and PostgreSQL) and real
//! XML signatures by a test IdP: configuration, SP metadata, SP-initiated login, the ACS with
//! just-in-time membership, "SSO required", and every attack the ACS must refuse.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;
mod saml_idp;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{Duration, Utc};
use common::{Api, backends};
use saml_idp::harness::{
    IDP_ENTITY, Org, configure, enterprise_org, message, percent_encode, post_acs, send,
    start_login, valid_assertion, verify_domain,
};
use saml_idp::{AssertionSpec, Idp, ResponseSpec, new_id};
use serde_json::json;

#[tokio::test]
async fn configuration_is_enterprise_only_and_needs_a_signing_certificate() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let idp = Idp::new(IDP_ENTITY);
        let body = json!({"idp_metadata_xml": idp.metadata(), "default_role": "member", "sso_required": false});

        // Free and pro organizations: 402.
        let (free, free_org, _) = api.signup("free@a.example", "Free Org").await;
        let (status, e) = api
            .call(
                "PUT",
                &format!("/api/v1/orgs/{free_org}/sso"),
                Some(&free),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "[{b}] {e}");
        assert_eq!(e["error"]["code"], "upgrade_required");
        let (pro, pro_org, _) = api.signup("pro@a.example", "Pro Org").await;
        sqlx::query("UPDATE organizations SET tier = 'pro' WHERE id = $1")
            .bind(&pro_org)
            .execute(&api.state.db)
            .await
            .unwrap();
        let (status, _) = api
            .call(
                "PUT",
                &format!("/api/v1/orgs/{pro_org}/sso"),
                Some(&pro),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "[{b}] pro");

        let org = enterprise_org(&api, "owner@corp.example", "Corp").await;
        let (status, _) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{}/sso", org.id),
                Some(&org.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "[{b}] not configured yet");
        for path in ["metadata", "login"] {
            let req = Request::get(format!("/saml/{}/{path}", org.slug))
                .body(Body::empty())
                .unwrap();
            let (status, _, _) = send(&api, req).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "[{b}] {path} before configuration"
            );
        }
        let (status, _) = post_acs(&api, &org.slug, "<x/>").await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "[{b}] acs before configuration"
        );

        // Metadata the ACS could not check signatures with is refused.
        let (status, e) = configure(
            &api,
            &org,
            &idp.metadata_without_signing_certificate(),
            "member",
            false,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {e}");
        assert!(message(&e).contains("no signing certificate"), "[{b}] {e}");
        let dtd = idp.metadata().replacen(
            "<md:EntityDescriptor",
            "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><md:EntityDescriptor",
            1,
        );
        let (status, e) = configure(&api, &org, &dtd, "member", false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {e}");
        assert!(message(&e).contains("DTD"), "[{b}] {e}");
        let (status, e) = configure(&api, &org, "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"x\"/>", "member", false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {e}");
        assert!(message(&e).contains("IDPSSODescriptor"), "[{b}] {e}");
        let bad_cert = idp
            .metadata()
            .replace(&idp.cert_b64(), "bm90IGEgY2VydGlmaWNhdGU=");
        let (status, e) = configure(&api, &org, &bad_cert, "member", false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {e}");
        assert!(message(&e).contains("X.509"), "[{b}] {e}");
        let (status, e) = configure(&api, &org, &idp.metadata(), "owner", false).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "[{b}] default role owner: {e}"
        );

        let (status, config) = configure(&api, &org, &idp.metadata(), "member", false).await;
        assert_eq!(status, StatusCode::OK, "[{b}] {config}");
        assert_eq!(config["idp_entity_id"], IDP_ENTITY);
        assert_eq!(config["idp_sso_url"], idp.sso_url);
        assert_eq!(config["sp"]["entity_id"], org.entity_id);
        assert_eq!(config["sp"]["acs_url"], org.acs_url);
        assert_eq!(config["idp_certificates"].as_array().unwrap().len(), 1);
        let (status, got) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{}/sso", org.slug),
                Some(&org.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {got}");
        assert_eq!(got["default_role"], "member");
        assert_eq!(got["sso_required"], false);

        // SP metadata for the IdP.
        let req = Request::get(format!("/saml/{}/metadata", org.slug))
            .body(Body::empty())
            .unwrap();
        let (status, headers, xml) = send(&api, req).await;
        assert_eq!(status, StatusCode::OK, "[{b}]");
        assert_eq!(headers["content-type"], "application/samlmetadata+xml");
        let xml = xml.as_str().unwrap();
        assert!(
            xml.contains(&format!("entityID=\"{}\"", org.entity_id)),
            "[{b}] {xml}"
        );
        assert!(
            xml.contains(&format!("Location=\"{}\"", org.acs_url)),
            "[{b}] {xml}"
        );

        // The endpoints are in the OpenAPI document.
        let (_, doc) = api.call("GET", "/api/openapi.json", None, None).await;
        for path in [
            "/api/v1/orgs/{org}/sso",
            "/saml/{org}/metadata",
            "/saml/{org}/login",
            "/saml/{org}/acs",
        ] {
            assert!(
                doc["paths"][path].is_object(),
                "[{b}] {path} in the OpenAPI document"
            );
        }

        // RelayState must stay on this site.
        let req = Request::get(format!(
            "/saml/{}/login?relay_state=https%3A%2F%2Fevil.example%2F",
            org.slug
        ))
        .body(Body::empty())
        .unwrap();
        let (status, _, e) = send(&api, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {e}");
    }
}

#[tokio::test]
async fn sso_login_creates_members_just_in_time_and_can_be_required() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let idp = Idp::new(IDP_ENTITY);
        let org = enterprise_org(&api, "owner@corp.example", "Corp").await;
        let (status, e) = configure(&api, &org, &idp.metadata(), "viewer", false).await;
        assert_eq!(status, StatusCode::OK, "[{b}] {e}");
        verify_domain(&api, &org, "corp.example").await;

        // A new user: created without a password, a viewer.
        let a = valid_assertion(&api, &org, &idp, "New.Person@Corp.Example").await;
        let (status, login) = post_acs(
            &api,
            &org.slug,
            &idp.response_with_signed_assertion(&a, &org.acs_url),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {login}");
        assert_eq!(login["user"]["email"], "new.person@corp.example");
        assert_eq!(login["created"], true);
        assert_eq!(
            login["relay_state"], "/clusters",
            "[{b}] the RelayState stored with the request"
        );
        assert_eq!(login["token_type"], "Bearer");
        assert!(login["refresh_token"].is_string());
        let token = login["access_token"].as_str().unwrap();
        let (status, me) = api.call("GET", "/api/v1/me", Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "[{b}] {me}");
        assert_eq!(me["organizations"][0]["id"], org.id.as_str());
        assert_eq!(me["organizations"][0]["role"], "viewer");

        // A second login (a new assertion) finds the same member; a signed response works too.
        let a = valid_assertion(&api, &org, &idp, "new.person@corp.example").await;
        let response = ResponseSpec {
            id: new_id(),
            destination: org.acs_url.clone(),
            in_response_to: a.in_response_to.clone(),
        };
        let signed_response = idp.response_xml(&response, &idp.assertion_xml(&a, false), true);
        let (status, again) = post_acs(&api, &org.slug, &signed_response).await;
        assert_eq!(status, StatusCode::OK, "[{b}] {again}");
        assert_eq!(again["created"], false);
        assert_eq!(again["user"]["id"], login["user"]["id"]);
        // Both signed.
        let a = valid_assertion(&api, &org, &idp, "new.person@corp.example").await;
        let response = ResponseSpec {
            id: new_id(),
            destination: org.acs_url.clone(),
            in_response_to: a.in_response_to.clone(),
        };
        let (status, both) = post_acs(
            &api,
            &org.slug,
            &idp.response_xml(&response, &idp.signed_assertion(&a), true),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {both}");

        // An existing member with a password (invited) signs in with SSO too.
        let (ada, _, _) = api.signup("ada@corp.example", "Ada's own").await;
        let (status, invitation) = api
            .call(
                "POST",
                &format!("/api/v1/orgs/{}/invitations", org.id),
                Some(&org.owner),
                Some(json!({"email": "ada@corp.example", "role": "member"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {invitation}");
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/invitations/accept",
                Some(&ada),
                Some(json!({"token": invitation["token"]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}]");
        let a = valid_assertion(&api, &org, &idp, "ada@corp.example").await;
        let (status, ada_sso) = post_acs(
            &api,
            &org.slug,
            &idp.response_with_signed_assertion(&a, &org.acs_url),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {ada_sso}");
        assert_eq!(ada_sso["created"], false);
        let password = json!({"email": "ada@corp.example", "password": "correct horse battery"});
        let (status, _) = api
            .call("POST", "/api/v1/login", None, Some(password.clone()))
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "[{b}] password login before SSO is required"
        );

        // An account outside the verified domains is not taken over by this organization's IdP.
        api.signup("outsider@elsewhere.example", "Elsewhere").await;
        let a = valid_assertion(&api, &org, &idp, "outsider@elsewhere.example").await;
        let (status, e) = post_acs(
            &api,
            &org.slug,
            &idp.response_with_signed_assertion(&a, &org.acs_url),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}] {e}");
        assert!(message(&e).contains("verified domains"), "[{b}] {e}");

        // SSO required: password login of members is refused, pointing at the SSO login.
        let (status, config) = configure(&api, &org, &idp.metadata(), "viewer", true).await;
        assert_eq!(status, StatusCode::OK, "[{b}] {config}");
        assert_eq!(config["sso_required"], true);
        let (status, e) = api
            .call("POST", "/api/v1/login", None, Some(password))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}] {e}");
        assert!(
            message(&e).contains(&format!("/saml/{}/login", org.slug)),
            "[{b}] {e}"
        );
        // SSO still works.
        let a = valid_assertion(&api, &org, &idp, "ada@corp.example").await;
        let (status, e) = post_acs(
            &api,
            &org.slug,
            &idp.response_with_signed_assertion(&a, &org.acs_url),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {e}");
    }
}

/// Wraps `inner` (raw XML) into the response right after its Issuer.
fn insert_after_response_issuer(response: &str, inner: &str) -> String {
    let marker = "</saml:Issuer>";
    let at = response.find(marker).unwrap() + marker.len();
    format!("{}{inner}{}", &response[..at], &response[at..])
}

#[tokio::test]
async fn the_acs_refuses_forged_wrapped_stale_and_misdirected_responses() {
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
        verify_domain(&api, &org, "corp.example").await;
        let users_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&api.state.db)
            .await
            .unwrap();

        // Each case gets a fresh, valid request; `make` turns a valid assertion into the response.
        type Make = Box<dyn Fn(&Idp, &Org, AssertionSpec) -> String>;
        let cases: Vec<(&str, StatusCode, &str, Make)> = vec![
            (
                "unsigned response and assertion",
                StatusCode::UNAUTHORIZED,
                "neither",
                Box::new(|idp, org, a| {
                    let r = ResponseSpec {
                        id: new_id(),
                        destination: org.acs_url.clone(),
                        in_response_to: a.in_response_to.clone(),
                    };
                    idp.response_xml(&r, &idp.assertion_xml(&a, false), false)
                }),
            ),
            (
                "signed by another key",
                StatusCode::UNAUTHORIZED,
                "signature",
                Box::new(|_, org, a| {
                    let mallory = Idp::new(IDP_ENTITY);
                    mallory.response_with_signed_assertion(&a, &org.acs_url)
                }),
            ),
            (
                "signed content changed afterwards",
                StatusCode::UNAUTHORIZED,
                "signature",
                Box::new(|idp, org, a| {
                    idp.response_with_signed_assertion(&a, &org.acs_url)
                        .replace("victim@corp.example", "admin@corp.example")
                }),
            ),
            (
                "forged assertion before the signed one",
                StatusCode::UNAUTHORIZED,
                "more than one Assertion",
                Box::new(|idp, org, a| {
                    let forged = AssertionSpec {
                        id: new_id(),
                        name_id: "admin@corp.example".into(),
                        ..a.clone()
                    };
                    let response = idp.response_with_signed_assertion(&a, &org.acs_url);
                    response.replacen(
                        "<saml:Assertion ",
                        &format!("{}<saml:Assertion ", idp.assertion_xml(&forged, false)),
                        1,
                    )
                }),
            ),
            (
                "forged assertion beside the signed one",
                StatusCode::UNAUTHORIZED,
                "more than one Assertion",
                Box::new(|idp, org, a| {
                    let forged = AssertionSpec {
                        id: new_id(),
                        name_id: "admin@corp.example".into(),
                        ..a.clone()
                    };
                    let response = idp.response_with_signed_assertion(&a, &org.acs_url);
                    response.replace(
                        "</samlp:Response>",
                        &format!("{}</samlp:Response>", idp.assertion_xml(&forged, false)),
                    )
                }),
            ),
            (
                "signed assertion moved into Extensions, forged one consumed",
                StatusCode::UNAUTHORIZED,
                "Assertion",
                Box::new(|idp, org, a| {
                    let forged = AssertionSpec {
                        id: new_id(),
                        name_id: "admin@corp.example".into(),
                        ..a.clone()
                    };
                    let r = ResponseSpec {
                        id: new_id(),
                        destination: org.acs_url.clone(),
                        in_response_to: a.in_response_to.clone(),
                    };
                    let response = idp.response_xml(&r, &idp.assertion_xml(&forged, false), false);
                    insert_after_response_issuer(
                        &response,
                        &format!(
                            "<samlp:Extensions>{}</samlp:Extensions>",
                            idp.signed_assertion(&a)
                        ),
                    )
                }),
            ),
            (
                "signed assertion moved into the forged one's ds:Object",
                StatusCode::UNAUTHORIZED,
                "Assertion",
                Box::new(|idp, org, a| {
                    let forged = AssertionSpec {
                        id: new_id(),
                        name_id: "admin@corp.example".into(),
                        ..a.clone()
                    };
                    let object = format!(
                        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:Object>{}</ds:Object></ds:Signature>",
                        idp.signed_assertion(&a)
                    );
                    let forged_xml = idp.assertion_xml(&forged, false).replacen(
                        "<saml:Subject>",
                        &format!("{object}<saml:Subject>"),
                        1,
                    );
                    let r = ResponseSpec {
                        id: new_id(),
                        destination: org.acs_url.clone(),
                        in_response_to: a.in_response_to.clone(),
                    };
                    idp.response_xml(&r, &forged_xml, false)
                }),
            ),
            (
                "forged assertion with the signed one's ID",
                StatusCode::UNAUTHORIZED,
                "",
                Box::new(|idp, org, a| {
                    let forged = AssertionSpec {
                        name_id: "admin@corp.example".into(),
                        ..a.clone()
                    };
                    let response = idp.response_with_signed_assertion(&a, &org.acs_url);
                    insert_after_response_issuer(&response, &idp.assertion_xml(&forged, false))
                }),
            ),
            (
                "signed response re-wrapped in a forged response",
                StatusCode::UNAUTHORIZED,
                "",
                Box::new(|idp, org, a| {
                    let r = ResponseSpec {
                        id: new_id(),
                        destination: org.acs_url.clone(),
                        in_response_to: a.in_response_to.clone(),
                    };
                    let genuine = idp.response_xml(&r, &idp.assertion_xml(&a, false), true);
                    let forged = AssertionSpec {
                        id: new_id(),
                        name_id: "admin@corp.example".into(),
                        ..a.clone()
                    };
                    let outer = ResponseSpec { id: new_id(), ..r };
                    let response =
                        idp.response_xml(&outer, &idp.assertion_xml(&forged, false), false);
                    insert_after_response_issuer(
                        &response,
                        &format!("<samlp:Extensions>{genuine}</samlp:Extensions>"),
                    )
                }),
            ),
            (
                "comment inside the NameID",
                StatusCode::UNAUTHORIZED,
                "comment",
                Box::new(|idp, org, a| {
                    let a = AssertionSpec {
                        name_id: "admin@corp.example.evil.example".into(),
                        ..a
                    };
                    idp.response_with_signed_assertion(&a, &org.acs_url)
                        .replace(
                            "admin@corp.example.evil.example",
                            "admin@corp.example<!---->.evil.example",
                        )
                }),
            ),
            (
                "external entity",
                StatusCode::BAD_REQUEST,
                "DTD",
                Box::new(|idp, org, a| {
                    let response = idp.response_with_signed_assertion(&a, &org.acs_url);
                    format!(
                        "<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>{}",
                        response.replace("victim@corp.example", "&xxe;")
                    )
                }),
            ),
            (
                "wrong audience",
                StatusCode::UNAUTHORIZED,
                "audience",
                Box::new(|idp, org, a| {
                    let a = AssertionSpec {
                        audience: Some("https://other-sp.example/metadata".into()),
                        ..a
                    };
                    idp.response_with_signed_assertion(&a, &org.acs_url)
                }),
            ),
            (
                "missing audience",
                StatusCode::UNAUTHORIZED,
                "AudienceRestriction",
                Box::new(|idp, org, a| {
                    let a = AssertionSpec {
                        audience: None,
                        ..a
                    };
                    idp.response_with_signed_assertion(&a, &org.acs_url)
                }),
            ),
            (
                "wrong recipient",
                StatusCode::UNAUTHORIZED,
                "Recipient",
                Box::new(|idp, org, a| {
                    let a = AssertionSpec {
                        recipient: "https://other-sp.example/acs".into(),
                        ..a
                    };
                    idp.response_with_signed_assertion(&a, &org.acs_url)
                }),
            ),
            (
                "wrong destination",
                StatusCode::UNAUTHORIZED,
                "Destination",
                Box::new(|idp, _, a| {
                    idp.response_with_signed_assertion(&a, "https://other-sp.example/acs")
                }),
            ),
            (
                "expired",
                StatusCode::UNAUTHORIZED,
                "expired",
                Box::new(|idp, org, a| {
                    let a = AssertionSpec {
                        not_on_or_after: Utc::now() - Duration::minutes(5),
                        ..a
                    };
                    idp.response_with_signed_assertion(&a, &org.acs_url)
                }),
            ),
            (
                "issued long ago",
                StatusCode::UNAUTHORIZED,
                "expired",
                Box::new(|idp, org, a| {
                    let a = AssertionSpec {
                        issue_instant: Utc::now() - Duration::minutes(30),
                        ..a
                    };
                    idp.response_with_signed_assertion(&a, &org.acs_url)
                }),
            ),
            (
                "not yet valid",
                StatusCode::UNAUTHORIZED,
                "not yet valid",
                Box::new(|idp, org, a| {
                    let a = AssertionSpec {
                        not_before: Utc::now() + Duration::minutes(10),
                        ..a
                    };
                    idp.response_with_signed_assertion(&a, &org.acs_url)
                }),
            ),
            (
                "unknown InResponseTo",
                StatusCode::UNAUTHORIZED,
                "InResponseTo",
                Box::new(|idp, org, a| {
                    let a = AssertionSpec {
                        in_response_to: "_0123456789abcdef0123456789abcdef".into(),
                        ..a
                    };
                    idp.response_with_signed_assertion(&a, &org.acs_url)
                }),
            ),
            (
                "no InResponseTo (IdP-initiated)",
                StatusCode::UNAUTHORIZED,
                "InResponseTo",
                Box::new(|idp, org, a| {
                    idp.response_with_signed_assertion(&a, &org.acs_url)
                        .replace(&format!("InResponseTo=\"{}\"", a.in_response_to), "")
                }),
            ),
            (
                "wrong issuer",
                StatusCode::UNAUTHORIZED,
                "issued by",
                Box::new(|idp, org, a| {
                    let a = AssertionSpec {
                        issuer: "https://evil.example/idp".into(),
                        ..a
                    };
                    idp.response_with_signed_assertion(&a, &org.acs_url)
                }),
            ),
        ];
        for (name, want_status, needle, make) in cases {
            let a = valid_assertion(&api, &org, &idp, "victim@corp.example").await;
            let xml = make(&idp, &org, a);
            let (status, e) = post_acs(&api, &org.slug, &xml).await;
            assert_eq!(status, want_status, "[{b}] {name}: {e}");
            assert!(
                message(&e).to_lowercase().contains(&needle.to_lowercase()),
                "[{b}] {name}: {e}"
            );
        }
        let users_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&api.state.db)
            .await
            .unwrap();
        assert_eq!(
            users_before, users_after,
            "[{b}] no rejected response created an account"
        );

        // The request a rejected response answered is still outstanding; a valid response then
        // works once, and never again: replaying the response, or its assertion ID in a response
        // to a new request, is refused.
        let a = valid_assertion(&api, &org, &idp, "victim@corp.example").await;
        let valid = idp.response_with_signed_assertion(&a, &org.acs_url);
        let (status, e) = post_acs(&api, &org.slug, &valid).await;
        assert_eq!(status, StatusCode::OK, "[{b}] {e}");
        let (status, e) = post_acs(&api, &org.slug, &valid).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "[{b}] replayed response: {e}"
        );
        assert!(message(&e).contains("already used"), "[{b}] {e}");
        let fresh = valid_assertion(&api, &org, &idp, "victim@corp.example").await;
        let same_id = AssertionSpec {
            id: a.id.clone(),
            ..fresh
        };
        let (status, e) = post_acs(
            &api,
            &org.slug,
            &idp.response_with_signed_assertion(&same_id, &org.acs_url),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "[{b}] replayed assertion ID: {e}"
        );
        assert!(message(&e).contains("already used"), "[{b}] {e}");
        // A used request ID cannot be answered again either.
        let reuse = AssertionSpec {
            id: new_id(),
            ..a.clone()
        };
        let (status, e) = post_acs(
            &api,
            &org.slug,
            &idp.response_with_signed_assertion(&reuse, &org.acs_url),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "[{b}] used request: {e}");
        assert!(message(&e).contains("InResponseTo"), "[{b}] {e}");
        // Garbage is a 400, not a 500.
        for junk in ["not base64!", ""] {
            let req = Request::post(format!("/saml/{}/acs", org.slug))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!("SAMLResponse={}", percent_encode(junk))))
                .unwrap();
            let (status, _, e) = send(&api, req).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {junk:?}: {e}");
        }
    }
}

#[tokio::test]
async fn an_assertion_for_one_organization_is_refused_by_another() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        // Both organizations trust the same IdP.
        let idp = Idp::new(IDP_ENTITY);
        let org_a = enterprise_org(&api, "owner@a.example", "Org A").await;
        let org_b = enterprise_org(&api, "owner@b.example", "Org B").await;
        for org in [&org_a, &org_b] {
            assert_eq!(
                configure(&api, org, &idp.metadata(), "member", false)
                    .await
                    .0,
                StatusCode::OK
            );
        }
        verify_domain(&api, &org_a, "a.example").await;

        // A's valid response posted to B's ACS.
        let a = valid_assertion(&api, &org_a, &idp, "someone@a.example").await;
        let for_a = idp.response_with_signed_assertion(&a, &org_a.acs_url);
        let (status, e) = post_acs(&api, &org_b.slug, &for_a).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "[{b}] {e}");
        // Addressed to B in every field, but answering A's request.
        let request_of_a = start_login(&api, &org_a, &idp).await;
        let to_b = idp.assertion_for(
            &org_b.entity_id,
            &org_b.acs_url,
            &request_of_a,
            "someone@a.example",
        );
        let (status, e) = post_acs(
            &api,
            &org_b.slug,
            &idp.response_with_signed_assertion(&to_b, &org_b.acs_url),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "[{b}] {e}");
        assert!(message(&e).contains("InResponseTo"), "[{b}] {e}");
        // A's response still works at A: the refusals used nothing up.
        let (status, e) = post_acs(&api, &org_a.slug, &for_a).await;
        assert_eq!(status, StatusCode::OK, "[{b}] {e}");
    }
}
