//! Global databases in the dashboard over the real router and database: the create form offers
//! regions to pro organizations only, and the cluster page lists each region with its endpoint
//! and phase.

use axum::http::StatusCode;

use super::Browser;
use super::cluster_forms::{cluster_id, settle};
use super::common::{Api, backends};

#[tokio::test]
async fn a_pro_organization_creates_a_global_database_and_sees_its_regions() {
    // The page of a running cluster asks its data plane for backups, over reqwest with rustls,
    // whose crypto provider the binary installs at start-up.
    let _ = rustls::crypto::ring::default_provider().install_default();
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut free = Browser::new(&api);
        let free_slug = free.sign_up("fay@example.com", "Freebies", "free").await;
        let page = free.get(&format!("/orgs/{free_slug}/clusters/new")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            !page.body.contains("id=\"regions\""),
            "[{b}] free offers no regions"
        );

        let mut ada = Browser::new(&api);
        let slug = ada.sign_up("ada@example.com", "Acme", "pro").await;
        let page = ada.get(&format!("/orgs/{slug}/clusters/new")).await;
        assert!(page.body.contains("id=\"regions\""), "[{b}] {}", page.body);
        assert!(
            page.body.contains("eu-west"),
            "[{b}] the catalogue is listed"
        );

        // A region outside the catalogue is refused inline, on the form.
        let page = ada
            .post(
                &format!("/orgs/{slug}/clusters"),
                &[
                    ("name", "orders"),
                    ("tier", "pro"),
                    ("replicas", "1"),
                    ("regions", "us-east, mars"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}] {}", page.body);
        assert!(page.body.contains("Unknown region"), "[{b}] {}", page.body);

        let page = ada
            .post(
                &format!("/orgs/{slug}/clusters"),
                &[
                    ("name", "orders"),
                    ("tier", "pro"),
                    ("replicas", "1"),
                    ("regions", "us-east, eu-west"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        let id = cluster_id(&api, "orders").await;
        assert_eq!(settle(&api, &id).await.as_deref(), Some("Running"), "[{b}]");
        let page = ada.get(&format!("/orgs/{slug}/clusters/orders")).await;
        assert_eq!(page.status, StatusCode::OK);
        for region in ["us-east", "eu-west"] {
            let row = page
                .body
                .split(&format!("id=\"region-{region}\""))
                .nth(1)
                .unwrap_or_else(|| panic!("[{b}] no {region} row: {}", page.body));
            let row = row.split("</tr>").next().unwrap();
            assert!(row.contains("Running"), "[{b}] {row}");
            assert!(row.contains("http://127.0.0.1:"), "[{b}] {row}");
        }
        let page = ada
            .post(
                &format!("/orgs/{slug}/clusters/orders/delete"),
                &[("confirm", "orders")],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        assert_eq!(
            settle(&api, &id).await,
            None,
            "[{b}] every region is deleted"
        );
    }
}
