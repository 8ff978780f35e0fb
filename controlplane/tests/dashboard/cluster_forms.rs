//! The cluster page's settings and danger-zone forms over the real router and database: tier,
//! replica and allow-list changes with the API's refusals inline, deletion confirmed by name and kept for
//! admins, CSRF on both.

use std::time::Duration;

use axum::http::StatusCode;
use sqlx::Row;

use super::common::{Api, backends};
use super::explorer::joined;
use super::{Browser, HOST};

/// The text of the inline error `id` on `body`.
fn inline_error<'a>(body: &'a str, id: &str) -> &'a str {
    body.split(&format!("role=\"alert\" id=\"{id}\">"))
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("no {id} in the page: {body}"))
}

/// The id of the cluster named `name`.
pub(super) async fn cluster_id(api: &Api, name: &str) -> String {
    sqlx::query("SELECT id FROM clusters WHERE name = $1")
        .bind(name)
        .fetch_one(&api.state.db)
        .await
        .unwrap()
        .get("id")
}

/// Waits until no operation runs on the cluster; its phase then, or `None` once it is gone.
pub(super) async fn settle(api: &Api, id: &str) -> Option<String> {
    for _ in 0..600 {
        let running = sqlx::query(
            "SELECT COUNT(*) AS n FROM operations WHERE cluster_id = $1 AND status = 'running'",
        )
        .bind(id)
        .fetch_one(&api.state.db)
        .await
        .unwrap()
        .get::<i64, _>("n");
        if running == 0 {
            return sqlx::query("SELECT phase FROM clusters WHERE id = $1")
                .bind(id)
                .fetch_optional(&api.state.db)
                .await
                .unwrap()
                .map(|r| r.get("phase"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cluster {id} still has a running operation");
}

/// Creates a cluster through the form and waits until it runs; its id.
pub(super) async fn running_cluster(
    api: &Api,
    browser: &mut Browser<'_>,
    slug: &str,
    name: &str,
) -> String {
    // The page of a running cluster asks its data plane for backups, over reqwest with rustls,
    // whose crypto provider the binary installs at start-up.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let page = browser
        .post(
            &format!("/orgs/{slug}/clusters"),
            &[("name", name), ("tier", "free"), ("replicas", "1")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let id = cluster_id(api, name).await;
    assert_eq!(settle(api, &id).await.as_deref(), Some("Running"));
    id
}

#[tokio::test]
async fn a_clusters_tier_and_replicas_change_from_its_page() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ada = Browser::new(&api);
        let slug = ada.sign_up("ada@example.com", "Acme", "pro").await;
        let id = running_cluster(&api, &mut ada, &slug, "orders").await;
        let href = format!("/orgs/{slug}/clusters/orders");
        let settings = format!("{href}/settings");

        let page = ada.get(&href).await;
        assert!(page.body.contains("id=\"tier-limits\""), "[{b}]");
        assert!(
            page.body
                .contains("disabled>enterprise (needs the enterprise plan)</option>"),
            "[{b}] {}",
            page.body
        );
        assert!(!page.body.contains("data-live"), "[{b}] settled");

        // The API's refusals, inline, with its statuses; the form keeps what was chosen.
        for (tier, replicas, status, message) in [
            (
                "enterprise",
                "1",
                StatusCode::PAYMENT_REQUIRED,
                "needs the enterprise plan; this organization is on pro.",
            ),
            (
                "pro",
                "7",
                StatusCode::FORBIDDEN,
                "The pro tier allows at most 5 replica(s) per cluster; 7 requested.",
            ),
            (
                "free",
                "2",
                StatusCode::BAD_REQUEST,
                "Replicas must be 1, 3, 5 or 7, not 2.",
            ),
            (
                "free",
                "1",
                StatusCode::BAD_REQUEST,
                "Nothing to change: choose another tier, number of replicas or allow list.",
            ),
        ] {
            let page = ada
                .post(&settings, &[("tier", tier), ("replicas", replicas)])
                .await;
            assert_eq!(page.status, status, "[{b}] {tier} {replicas}");
            let error = inline_error(&page.body, "settings-error");
            assert!(error.contains(message), "[{b}] {error}");
            assert!(
                replicas == "2"
                    || page
                        .body
                        .contains(&format!("<option value=\"{replicas}\" selected>")),
                "[{b}] kept {replicas}"
            );
        }

        // Another operation on the cluster: 423, saying which.
        sqlx::query(
            "INSERT INTO operations (id, org_id, cluster_id, kind, status, created_at) \
             SELECT 'op-in-the-way', org_id, id, 'update', 'running', 0 FROM clusters WHERE id = $1",
        )
        .bind(&id)
        .execute(&api.state.db)
        .await
        .unwrap();
        let page = ada
            .post(&settings, &[("tier", "pro"), ("replicas", "3")])
            .await;
        assert_eq!(page.status, StatusCode::LOCKED, "[{b}]");
        assert_eq!(
            inline_error(&page.body, "settings-error"),
            "The update operation op-in-the-way is still running on this cluster; try again when it has finished.",
            "[{b}]"
        );
        assert!(
            page.body
                .contains("id=\"operation\">The update operation is running."),
            "[{b}] the page follows it"
        );
        sqlx::query("UPDATE operations SET status = 'succeeded' WHERE id = 'op-in-the-way'")
            .execute(&api.state.db)
            .await
            .unwrap();

        // Without the CSRF token nothing changes.
        let origin = format!("http://{HOST}");
        let page = ada
            .post_raw(&settings, &[("tier", "pro"), ("replicas", "3")], &origin)
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "[{b}]");

        let page = ada
            .post(&settings, &[("tier", "pro"), ("replicas", "3")])
            .await;
        assert_eq!(
            (page.status, page.location()),
            (StatusCode::SEE_OTHER, href.as_str()),
            "[{b}] {}",
            page.body
        );
        let page = ada.get(&href).await;
        assert!(
            page.body
                .contains("Cluster orders is changing to the pro tier with 3 replicas"),
            "[{b}] flash"
        );
        assert_eq!(settle(&api, &id).await.as_deref(), Some("Running"), "[{b}]");
        let row = sqlx::query("SELECT tier, replicas FROM clusters WHERE id = $1")
            .bind(&id)
            .fetch_one(&api.state.db)
            .await
            .unwrap();
        assert_eq!(
            (row.get::<String, _>("tier"), row.get::<i64, _>("replicas")),
            ("pro".to_string(), 3),
            "[{b}]"
        );
        let ops = sqlx::query(
            "SELECT kind, status FROM operations WHERE cluster_id = $1 AND kind = 'update' AND id <> 'op-in-the-way'",
        )
        .bind(&id)
        .fetch_all(&api.state.db)
        .await
        .unwrap();
        assert_eq!(ops.len(), 1, "[{b}] one update, and only the accepted one");
        assert_eq!(ops[0].get::<String, _>("status"), "succeeded", "[{b}]");
        let page = ada.get(&href).await;
        assert!(
            page.body.contains("<dt>Replicas</dt><dd>3</dd>"),
            "[{b}] {}",
            page.body
        );
    }
}

#[tokio::test]
async fn a_clusters_allow_list_changes_from_its_page() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ada = Browser::new(&api);
        let slug = ada.sign_up("ada@example.com", "Acme", "pro").await;
        let id = running_cluster(&api, &mut ada, &slug, "guarded").await;
        let href = format!("/orgs/{slug}/clusters/guarded");
        let settings = format!("{href}/settings");
        let page = ada.get(&href).await;
        assert!(
            page.body
                .contains("<dd id=\"allowed-cidrs\">every address</dd>"),
            "[{b}] {}",
            page.body
        );

        // A bad entry is refused inline, naming it, and the text typed is kept.
        let typed = "203.0.113.0/24\n10.1.2.3/8";
        let page = ada
            .post(
                &settings,
                &[
                    ("tier", "free"),
                    ("replicas", "1"),
                    ("allowed_cidrs", typed),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}]");
        let error = inline_error(&page.body, "settings-error");
        assert!(error.contains("write the network"), "[{b}] {error}");
        assert!(page.body.contains(typed), "[{b}] kept what was typed");

        // Lines, commas and spaces all separate entries; the list is stored normalised.
        let page = ada
            .post(
                &settings,
                &[
                    ("tier", "free"),
                    ("replicas", "1"),
                    (
                        "allowed_cidrs",
                        "203.0.113.0/24, 2001:DB8::/32\r\n198.51.100.7",
                    ),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        let page = ada.get(&href).await;
        assert!(
            page.body.contains("reachable from 3 networks"),
            "[{b}] flash: {}",
            page.body
        );
        assert_eq!(settle(&api, &id).await.as_deref(), Some("Running"), "[{b}]");
        let page = ada.get(&href).await;
        assert!(
            page.body.contains(
                "<dd id=\"allowed-cidrs\"><code>203.0.113.0/24</code>, <code>2001:db8::/32</code>, <code>198.51.100.7/32</code></dd>"
            ),
            "[{b}] {}",
            page.body
        );
        assert!(
            page.body
                .contains(">203.0.113.0/24\n2001:db8::/32\n198.51.100.7/32</textarea>"),
            "[{b}] the form shows the list"
        );

        // The same list again is nothing to change; an empty one opens the cluster again.
        let same = "203.0.113.0/24\n2001:db8::/32\n198.51.100.7/32";
        let page = ada
            .post(
                &settings,
                &[("tier", "free"), ("replicas", "1"), ("allowed_cidrs", same)],
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}]");
        let page = ada
            .post(
                &settings,
                &[("tier", "free"), ("replicas", "1"), ("allowed_cidrs", "")],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        assert_eq!(settle(&api, &id).await.as_deref(), Some("Running"), "[{b}]");
        let row = sqlx::query("SELECT allowed_cidrs FROM clusters WHERE id = $1")
            .bind(&id)
            .fetch_one(&api.state.db)
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("allowed_cidrs"), "[]", "[{b}]");
    }
}

#[tokio::test]
async fn deleting_a_cluster_needs_its_name_typed_and_an_admin() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ada = Browser::new(&api);
        let slug = ada.sign_up("ada@example.com", "Acme", "pro").await;
        let id = running_cluster(&api, &mut ada, &slug, "doomed").await;
        let href = format!("/orgs/{slug}/clusters/doomed");
        let delete = format!("{href}/delete");

        // Bob, a member, sees no danger zone and is refused as by the API.
        let mut bob = joined(&api, &mut ada, "acme", "bob@example.com", "member").await;
        let page = bob.get(&href).await;
        assert!(
            page.body.contains("id=\"settings\""),
            "[{b}] members change"
        );
        assert!(!page.body.contains("id=\"delete\""), "[{b}] but not delete");
        let page = bob.post(&delete, &[("confirm", "doomed")]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "[{b}]");
        assert_eq!(
            inline_error(&page.body, "delete-error"),
            "Your role member does not allow this; admin is required.",
            "[{b}]"
        );

        // The name must be typed, checked by the server.
        for typed in ["", "doomed-not", "orders"] {
            let page = ada.post(&delete, &[("confirm", typed)]).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}] {typed:?}");
            assert_eq!(
                inline_error(&page.body, "delete-error"),
                "Type the cluster name, doomed, to confirm; nothing was deleted.",
                "[{b}]"
            );
        }
        let page = ada.post(&delete, &[]).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "[{b}] no field at all"
        );
        let origin = format!("http://{HOST}");
        let page = ada
            .post_raw(&delete, &[("confirm", "doomed")], &origin)
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "[{b}] no CSRF token");
        assert_eq!(
            settle(&api, &id).await.as_deref(),
            Some("Running"),
            "[{b}] nothing refused was deleted"
        );

        let page = ada.post(&delete, &[("confirm", "doomed")]).await;
        assert_eq!(
            (page.status, page.location()),
            (StatusCode::SEE_OTHER, "/orgs/acme/clusters"),
            "[{b}] {}",
            page.body
        );
        let page = ada.get("/orgs/acme/clusters").await;
        assert!(
            page.body.contains(
                "Cluster doomed is being deleted with its data; it leaves this list when that is done."
            ),
            "[{b}] flash"
        );
        // Deleting, unless the local provisioner was already done.
        assert!(
            page.body.contains(">Deleting</span>") || !page.body.contains(&href),
            "[{b}] {}",
            page.body
        );
        assert_eq!(settle(&api, &id).await, None, "[{b}] the record is gone");
        let page = ada.get("/orgs/acme/clusters").await;
        assert!(!page.body.contains(&href), "[{b}]");
        assert_eq!(ada.get(&href).await.status, StatusCode::NOT_FOUND, "[{b}]");
        let status: String =
            sqlx::query("SELECT status FROM operations WHERE cluster_id = $1 AND kind = 'delete'")
                .bind(&id)
                .fetch_one(&api.state.db)
                .await
                .unwrap()
                .get("status");
        assert_eq!(status, "succeeded", "[{b}]");
    }
}

#[tokio::test]
async fn a_cluster_is_suspended_and_resumed_from_its_page_which_shows_its_slos() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ada = Browser::new(&api);
        let slug = ada.sign_up("ada@example.com", "Acme", "free").await;
        let id = running_cluster(&api, &mut ada, &slug, "orders").await;
        let href = format!("/orgs/{slug}/clusters/orders");
        let page = ada.get(&href).await;
        assert!(
            page.body.contains("id=\"slo\"") && page.body.contains("Last 30 days"),
            "[{b}]"
        );
        assert!(page.body.contains("no requests"), "[{b}] no traffic yet");
        assert!(page.body.contains("id=\"suspend-now\""), "[{b}]");
        assert!(!page.body.contains("id=\"resume\""), "[{b}]");
        // Without the form's CSRF token, nothing happens.
        let refused = ada.post_raw(&format!("{href}/suspend"), &[], HOST).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "[{b}]");

        let page = ada.post(&format!("{href}/suspend"), &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        assert_eq!(
            settle(&api, &id).await.as_deref(),
            Some("Suspended"),
            "[{b}]"
        );
        let page = ada.get(&href).await;
        assert!(
            page.body.contains("badge-muted\" id=\"phase\">Suspended<"),
            "[{b}] {}",
            page.body
        );
        assert!(page.body.contains("id=\"resume\""), "[{b}] a Resume button");
        assert!(
            page.body.contains("its recovery point is"),
            "[{b}] backups explain the pause"
        );
        let list = ada.get(&format!("/orgs/{slug}/clusters")).await;
        assert!(
            list.body.contains(">Suspended</span>"),
            "[{b}] {}",
            list.body
        );

        let page = ada.post(&format!("{href}/resume"), &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        assert_eq!(settle(&api, &id).await.as_deref(), Some("Running"), "[{b}]");
        let page = ada.get(&href).await;
        assert!(!page.body.contains("id=\"resume\""), "[{b}]");
        // Resuming a running cluster is refused with the reason, as a flash.
        let page = ada.post(&format!("{href}/resume"), &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}]");
        let page = ada.get(&href).await;
        assert!(page.body.contains("not suspended"), "[{b}] {}", page.body);
    }
}
