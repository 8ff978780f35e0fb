//! Verified domains (issue 14, finding 1): an owner adds a domain, publishes the TXT record, and
//! the control plane looks it up at a real DNS server (dnsmasq on loopback); a domain verified by
//! one organization cannot be verified by another; staff verification is audited. SQLite and
//! PostgreSQL.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;
mod dnsmasq;
mod saml_idp;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{Api, backends};
use dnsmasq::Dnsmasq;
use koru_controlplane::sso::domains::{self, DnsConfig};
use koru_controlplane::state::SsoState;
use saml_idp::harness::{enterprise_org, message};
use serde_json::json;

#[tokio::test]
async fn an_owner_proves_a_domain_with_a_txt_record() {
    for backend in backends().await {
        let mut api = Api::new(&backend).await;
        let b = api.backend;
        let a = enterprise_org(&api, "owner@a.example", "Org A").await;
        let other = enterprise_org(&api, "owner@b.example", "Org B").await;
        let base = |org: &str| format!("/api/v1/orgs/{org}/sso/domains");

        let (status, e) = api
            .call(
                "POST",
                &base(&a.id),
                Some(&a.owner),
                Some(json!({"domain": "not a domain"})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {e}");
        let (status, added) = api
            .call(
                "POST",
                &base(&a.id),
                Some(&a.owner),
                Some(json!({"domain": "Corp.Example"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {added}");
        assert_eq!(added["domain"], "corp.example");
        assert_eq!(added["verified"], false);
        assert_eq!(added["txt_name"], "_koru-challenge.corp.example");
        let value = added["txt_value"].as_str().unwrap().to_string();
        assert!(
            value.starts_with("koru-verification=") && value.len() > 40,
            "[{b}] {value}"
        );
        let (_, b_added) = api
            .call(
                "POST",
                &base(&other.id),
                Some(&other.owner),
                Some(json!({"domain": "corp.example"})),
            )
            .await;
        let b_value = b_added["txt_value"].as_str().unwrap().to_string();
        assert_ne!(value, b_value, "[{b}] each organization has its own token");

        // The DNS: the record of A, and of B (which B could publish too, if it owned the zone).
        let Some(dns) = Dnsmasq::start(&[
            ("_koru-challenge.corp.example", "v=spf1 -all"),
            (
                "_koru-challenge.wrong.example",
                "koru-verification=not-this-one",
            ),
        ])
        .await
        else {
            continue;
        };
        api.state.sso = Arc::new(SsoState {
            dns: DnsConfig {
                resolver: Some(dns.addr),
            },
            ..Default::default()
        });
        let verify =
            |org: &str, domain: &str| format!("/api/v1/orgs/{org}/sso/domains/{domain}/verify");
        // Only another TXT value there: not proven.
        let (status, e) = api
            .call("POST", &verify(&a.id, "corp.example"), Some(&a.owner), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {e}");
        assert!(
            message(&e).contains(&value),
            "[{b}] says what to publish: {e}"
        );
        // No record at all (NXDOMAIN).
        api.call(
            "POST",
            &base(&a.id),
            Some(&a.owner),
            Some(json!({"domain": "nothing.example"})),
        )
        .await;
        let (status, e) = api
            .call(
                "POST",
                &verify(&a.id, "nothing.example"),
                Some(&a.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {e}");
        let (status, e) = api
            .call(
                "POST",
                &verify(&a.id, "unknown.example"),
                Some(&a.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "[{b}] not added: {e}");
        drop(dns);

        // The right record, beside others.
        let dns = Dnsmasq::start(&[
            ("_koru-challenge.corp.example", "v=spf1 -all"),
            ("_koru-challenge.corp.example", &value),
            ("_koru-challenge.corp.example", &b_value),
        ])
        .await
        .unwrap();
        api.state.sso = Arc::new(SsoState {
            dns: DnsConfig {
                resolver: Some(dns.addr),
            },
            ..Default::default()
        });
        let (status, verified) = api
            .call(
                "POST",
                &verify(&a.slug, "corp.example"),
                Some(&a.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {verified}");
        assert_eq!(verified["verified"], true);
        assert_eq!(verified["verified_by"], "dns");
        // B holds a valid record too, but the domain is A's now.
        let (status, e) = api
            .call(
                "POST",
                &verify(&other.id, "corp.example"),
                Some(&other.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "[{b}] {e}");
        let err = domains::verify_by_staff(&api.state.db, &other.id, "corp.example", "ops").await;
        assert!(err.is_err(), "[{b}] nor can staff give it to B");
        let (status, list) = api.call("GET", &base(&a.id), Some(&a.owner), None).await;
        assert_eq!(status, StatusCode::OK, "[{b}] {list}");
        assert_eq!(list.as_array().unwrap().len(), 2, "[{b}] {list}");

        // Removed by A, the domain is free for B.
        let (status, _) = api
            .call(
                "DELETE",
                &format!("{}/corp.example", base(&a.id)),
                Some(&a.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "[{b}]");
        let (status, e) = api
            .call(
                "POST",
                &verify(&other.id, "corp.example"),
                Some(&other.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {e}");
    }
}

#[tokio::test]
async fn staff_verification_is_audited() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let org = enterprise_org(&api, "owner@a.example", "Org A").await;
        let d = domains::verify_by_staff(&api.state.db, &org.slug, "Staff.Example", "alice")
            .await
            .unwrap();
        assert!(d.verified, "[{b}]");
        assert_eq!(d.verified_by.as_deref(), Some("staff:alice"));
        let (actor, target, outcome, org_id): (String, String, String, String) = sqlx::query_as(
            "SELECT actor, target, outcome, org_id FROM audit_events WHERE action = 'admin verify-domain'",
        )
        .fetch_one(&api.state.db)
        .await
        .unwrap();
        assert_eq!(
            (
                actor.as_str(),
                target.as_str(),
                outcome.as_str(),
                org_id.as_str()
            ),
            ("staff:alice", "staff.example", "success", org.id.as_str()),
            "[{b}]"
        );
        assert!(
            domains::verify_by_staff(&api.state.db, "no-such-org", "x.example", "alice")
                .await
                .is_err(),
            "[{b}]"
        );
    }
}
