//! The time slider over the real router and a real data plane: a namespace at a moment before a
//! write shows the old value and the next stop marks the change; stops, clamping, a bad moment;
//! a viewer sees it, another tenant does not, a suspended cluster says so.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use super::super::common::{Api, backends};
use super::super::{Browser, Page};
use super::{explored, joined};

/// The row of `key` on a slider page (from its `<tr` to its `</tr>`).
pub(super) fn row<'a>(body: &'a str, key: &str) -> &'a str {
    let start = body
        .find(&format!("data-key=\"{key}\""))
        .unwrap_or_else(|| panic!("no row {key} in {body}"));
    let rest = &body[start..];
    &rest[..rest.find("</tr>").unwrap_or(rest.len())]
}

/// The `href` of the element with id `id`, unescaped.
pub(super) fn href(body: &str, id: &str) -> String {
    let pattern = format!("id=\"{id}\" href=\"");
    let at = body
        .find(&pattern)
        .unwrap_or_else(|| panic!("no {id} in {body}"));
    let rest = &body[at + pattern.len()..];
    rest[..rest.find('"').unwrap()]
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&amp;", "&")
}

fn no_error(page: &Page) {
    assert!(!page.body.contains("id=\"slider-error\""), "{}", page.body);
}

#[tokio::test]
async fn the_slider_shows_a_namespace_as_it_stood_and_what_changed_at_each_stop() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ex = explored(&api, "ada@example.com", "Acme").await;
        let ada = "ada@example.com";
        ex.put_as(&api, ada, "users", "alice", json!({"plan": "free"}))
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = ex
            .put_as(&api, ada, "users", "bob", json!({"plan": "team"}))
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        ex.put_as(&api, ada, "users", "alice", json!({"plan": "pro"}))
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        ex.put_as(&api, ada, "other", "x", json!(1)).await;
        let slider = format!("{}/ns/users/slider", ex.base);

        // Now: the last stop of the namespace, where alice went from free to pro.
        let page = ex.browser.get(&slider).await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        no_error(&page);
        assert!(
            page.body
                .contains("type=\"range\" id=\"slider\" name=\"stop\" min=\"0\" max=\"2\""),
            "[{b}] one stop per commit of users: {}",
            page.body
        );
        let alice = row(&page.body, "alice");
        assert!(alice.contains("data-change=\"changed\""), "[{b}] {alice}");
        assert!(
            alice.contains("class=\"slider-old\"")
                && alice.contains("free")
                && alice.contains("pro"),
            "[{b}] old → new: {alice}"
        );
        assert!(
            row(&page.body, "bob").contains("data-change=\"same\""),
            "[{b}]"
        );
        assert!(page.body.contains("id=\"slider-prev\""), "[{b}]");
        assert!(
            !page.body.contains("id=\"slider-next\""),
            "[{b}] the last stop"
        );

        // Just before the third write (at the second's commit time): alice is still free, and
        // bob is what changed since the first stop.
        let at = second["timestamp"].as_str().unwrap();
        let page = ex
            .browser
            .get(&format!("{slider}?at={}", at.replace(':', "%3A")))
            .await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        let alice = row(&page.body, "alice");
        assert!(
            alice.contains("free") && !alice.contains("pro"),
            "[{b}] {alice}"
        );
        assert!(alice.contains("data-change=\"same\""), "[{b}]");
        assert!(
            row(&page.body, "bob").contains("data-change=\"added\""),
            "[{b}]"
        );
        // The next stop marks alice's change.
        let next = href(&page.body, "slider-next");
        let page = ex.browser.get(&next).await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {next}");
        let alice = row(&page.body, "alice");
        assert!(
            alice.contains("data-change=\"changed\"") && alice.contains("pro"),
            "[{b}] {alice}"
        );

        // The range's stops: the first shows only alice, free, with nothing to compare with.
        let page = ex.browser.get(&format!("{slider}?stop=0")).await;
        assert_eq!(page.status, StatusCode::OK, "[{b}]");
        assert!(row(&page.body, "alice").contains("free"), "[{b}]");
        assert!(!page.body.contains("data-key=\"bob\""), "[{b}]");
        assert!(page.body.contains("this is the first stop"), "[{b}]");
        assert!(
            page.body.contains("step=\"1\" value=\"0\""),
            "[{b}] {}",
            page.body
        );

        // Moments and stops out of range are clamped, with a note.
        let page = ex
            .browser
            .get(&format!("{slider}?at=2001-01-01T00%3A00%3A00Z"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "[{b}]");
        assert!(
            page.body.contains("id=\"slider-note\"")
                && page.body.contains("before the retained history"),
            "[{b}] {}",
            page.body
        );
        assert!(
            !page.body.contains("data-key=\"bob\""),
            "[{b}] the first stop"
        );
        let page = ex.browser.get(&format!("{slider}?stop=99")).await;
        assert!(page.body.contains("There are 3 stops"), "[{b}]");
        let page = ex
            .browser
            .get(&format!("{slider}?at=2999-01-01T00%3A00"))
            .await;
        assert!(page.body.contains("after the last change"), "[{b}]");
        assert!(row(&page.body, "alice").contains("pro"), "[{b}]");

        // A moment that is not one: 400, inline.
        for bad in ["yesterday", "2026-13-45T00%3A00"] {
            let page = ex.browser.get(&format!("{slider}?at={bad}")).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}] {bad}");
            assert!(
                page.body.contains("role=\"alert\" id=\"slider-error\""),
                "[{b}]"
            );
        }
        let page = ex.browser.get(&format!("{slider}?stop=-1")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}]");

        // A viewer sees it; another organization does not find it.
        let mut viewer = joined(&api, &mut ex.browser, &ex.slug, "vic@example.com", "viewer").await;
        let page = viewer.get(&slider).await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        assert!(row(&page.body, "alice").contains("pro"), "[{b}]");
        let mut admin = joined(&api, &mut ex.browser, &ex.slug, "al@example.com", "admin").await;
        let page = admin.get(&format!("{slider}?stop=1")).await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        assert!(
            row(&page.body, "bob").contains("data-change=\"added\""),
            "[{b}]"
        );
        let mut stranger = Browser::new(&api);
        stranger.sign_up("eve@example.com", "Eves", "free").await;
        let page = stranger.get(&slider).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "[{b}]");
        let page = stranger
            .get(&format!(
                "/orgs/eves/clusters/{}/data/ns/users/slider",
                ex.id
            ))
            .await;
        assert_eq!(
            page.status,
            StatusCode::NOT_FOUND,
            "[{b}] by id in one's own organization"
        );

        // A suspended cluster: the page says so.
        sqlx::query("UPDATE clusters SET suspended = 1, phase = 'Suspended' WHERE id = $1")
            .bind(&ex.id)
            .execute(&api.state.db)
            .await
            .unwrap();
        let page = ex.browser.get(&slider).await;
        assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "[{b}]");
        assert!(
            page.body.contains("id=\"data-unavailable\"") && page.body.contains("suspended"),
            "[{b}] {}",
            page.body
        );
    }
}
