//! The storage-ceiling warning with the local provisioner: a cluster storing 80 % of its tier's
//! storage shows in a banner on every page of its organization, and each transition (reached,
//! left) appends one audit event, not one per usage sample.

use std::time::Duration;

use axum::http::StatusCode;
use sqlx::Row;

use super::Browser;
use super::common::{Api, backends, http};

/// The organization's audit actions of the storage ceiling, oldest first.
async fn ceiling_events(api: &Api, org_id: &str) -> Vec<String> {
    sqlx::query("SELECT action FROM audit_events WHERE org_id = $1 AND actor = 'system:storage' ORDER BY seq")
        .bind(org_id)
        .fetch_all(&api.state.db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("action"))
        .collect()
}

/// Sets the organization's custom storage limit (staff do this through `koru-controlplane admin`;
/// custom limits apply to enterprise clusters of enterprise organizations, so both become that).
async fn set_storage_limit(api: &Api, org_id: &str, bytes: i64) {
    sqlx::query(
        "UPDATE organizations SET tier = 'enterprise', limit_max_storage_bytes = $1 WHERE id = $2",
    )
    .bind(bytes)
    .bind(org_id)
    .execute(&api.state.db)
    .await
    .unwrap();
    sqlx::query("UPDATE clusters SET tier = 'enterprise' WHERE org_id = $1")
        .bind(org_id)
        .execute(&api.state.db)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cluster_at_its_storage_ceiling_is_announced_once_per_transition() {
    // The page of a running cluster asks its data plane for backups over rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ada = Browser::new(&api);
        let slug = ada
            .sign_up("ada@ceiling.example", "Ceiling Co", "pro")
            .await;
        let page = ada
            .post(
                &format!("/orgs/{slug}/clusters"),
                &[("name", "full"), ("tier", "free"), ("replicas", "1")],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        let (id, org_id, endpoint) = {
            let mut found = None;
            for _ in 0..600 {
                let row = sqlx::query(
                    "SELECT id, org_id, phase, endpoint FROM clusters WHERE name = 'full'",
                )
                .fetch_one(&api.state.db)
                .await
                .unwrap();
                if row.get::<String, _>("phase") == "Running" {
                    found = Some((
                        row.get::<String, _>("id"),
                        row.get::<String, _>("org_id"),
                        row.get::<String, _>("endpoint"),
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            found.expect("the cluster runs")
        };
        let metrics = http()
            .get(format!("{endpoint}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let stored = koru_controlplane::usage::parse_metrics(&metrics).stored_bytes;
        assert!(stored > 0, "[{b}] the log has a header: {metrics}");

        // Below 80 %: nothing to say.
        set_storage_limit(&api, &org_id, stored * 2).await;
        koru_controlplane::usage::collect_once(&api.state)
            .await
            .unwrap();
        assert!(ceiling_events(&api, &org_id).await.is_empty(), "[{b}]");
        let page = ada.get(&format!("/orgs/{slug}/clusters")).await;
        assert!(
            !page.body.contains("id=\"storage-ceiling\""),
            "[{b}] no banner"
        );

        // At 80 % and more: one event however many samples, and a banner on the org's pages.
        set_storage_limit(&api, &org_id, stored).await;
        for _ in 0..3 {
            koru_controlplane::usage::collect_once(&api.state)
                .await
                .unwrap();
        }
        assert_eq!(
            ceiling_events(&api, &org_id).await,
            ["cluster storage-at-ceiling"],
            "[{b}]"
        );
        for path in [
            format!("/orgs/{slug}/clusters"),
            format!("/orgs/{slug}/members"),
            format!("/orgs/{slug}/clusters/full"),
        ] {
            let page = ada.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "[{b}] {path}");
            assert!(
                page.body.contains(&format!(
                    "Storage is at the tier's ceiling for <a href=\"/orgs/{slug}/clusters/full\">full</a>"
                )),
                "[{b}] banner on {path}: {}",
                page.body
            );
        }
        let since: Option<i64> =
            sqlx::query("SELECT storage_at_ceiling_since FROM clusters WHERE id = $1")
                .bind(&id)
                .fetch_one(&api.state.db)
                .await
                .unwrap()
                .get("storage_at_ceiling_since");
        assert!(since.is_some(), "[{b}] the API shows since when");
        // Another organization sees no banner about it.
        let mut bob = Browser::new(&api);
        let other = bob.sign_up("bob@ceiling.example", "Other Co", "free").await;
        let page = bob.get(&format!("/orgs/{other}/clusters")).await;
        assert!(
            !page.body.contains("id=\"storage-ceiling\""),
            "[{b}] only its own organization"
        );

        // Room again (a larger limit): one more event, and the banner goes.
        set_storage_limit(&api, &org_id, stored * 10).await;
        koru_controlplane::usage::collect_once(&api.state)
            .await
            .unwrap();
        koru_controlplane::usage::collect_once(&api.state)
            .await
            .unwrap();
        assert_eq!(
            ceiling_events(&api, &org_id).await,
            [
                "cluster storage-at-ceiling",
                "cluster storage-below-ceiling"
            ],
            "[{b}]"
        );
        let page = ada.get(&format!("/orgs/{slug}/clusters")).await;
        assert!(
            !page.body.contains("id=\"storage-ceiling\""),
            "[{b}] the banner is gone"
        );
    }
}
