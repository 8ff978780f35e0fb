//! Live changes over the real router and a real data plane: the latest changes with their keys,
//! the namespace filter, the server-sent events stream following writes made after it opened
//! (escaped), roles, and another tenant's cluster.

use std::time::Duration;

use axum::body::Body;
use axum::http::header::COOKIE;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use super::super::common::{Api, backends};
use super::super::{Browser, HOST};
use super::{explored, joined};

/// Opens `path` as `browser` and answers the status, content type and the body to read on.
async fn open_stream(api: &Api, browser: &Browser<'_>, path: &str) -> (StatusCode, String, Body) {
    let cookies = browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let req = Request::builder()
        .uri(path)
        .header("host", HOST)
        .header("accept", "text/event-stream")
        .header(COOKIE, cookies)
        .body(Body::empty())
        .unwrap();
    let response = koru_controlplane::http::app(api.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (response.status(), content_type, response.into_body())
}

/// Reads `body` until what arrived contains `needle` (then answers all of it), or fails after
/// `wait`.
async fn read_until(body: &mut Body, needle: &str, wait: Duration) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + wait;
    while !seen.contains(needle) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in the stream within {wait:?}: {seen}"));
        let Some(frame) = frame else {
            panic!("the stream ended before {needle:?}: {seen}");
        };
        if let Ok(data) = frame.unwrap().into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    seen
}

#[tokio::test]
async fn the_live_feed_lists_filters_and_streams_changes() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ex = explored(&api, "ada@example.com", "Acme").await;
        ex.put_as(&api, "ada@example.com", "app", "first-key", json!({"n": 1}))
            .await;
        ex.put_as(&api, "ada@example.com", "other", "elsewhere", json!(2))
            .await;
        let live = format!("{}/live", ex.base);

        let page = ex.browser.get(&live).await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        assert!(page.body.contains("id=\"live-table\""), "[{b}]");
        assert!(page.body.contains("class=\"live-row\""), "[{b}]");
        assert!(page.body.contains(">first-key</a>"), "[{b}] {}", page.body);
        assert!(page.body.contains(">elsewhere</a>"), "[{b}]");
        assert!(
            page.body
                .contains(&format!("href=\"{}/ns/app/key?key=first-key\"", ex.base)),
            "[{b}] rows link to the key page"
        );
        assert!(
            page.body.find(">elsewhere</a>") < page.body.find(">first-key</a>"),
            "[{b}] newest first"
        );
        assert!(page.body.contains("id=\"live-refresh\""), "[{b}]");
        assert!(page.body.contains("data-events=\""), "[{b}]");

        let page = ex.browser.get(&format!("{live}?ns=app")).await;
        assert_eq!(page.status, StatusCode::OK, "[{b}]");
        assert!(page.body.contains(">first-key</a>"), "[{b}]");
        assert!(!page.body.contains(">elsewhere</a>"), "[{b}] filtered out");
        assert!(
            page.body.contains("value=\"app\""),
            "[{b}] the filter stays filled"
        );

        // The stream follows writes made after it opened, of the chosen namespace only, and a
        // value's markup arrives escaped.
        let (status, content_type, mut body) =
            open_stream(&api, &ex.browser, &format!("{live}/events?ns=app")).await;
        assert_eq!(status, StatusCode::OK, "[{b}]");
        assert!(
            content_type.starts_with("text/event-stream"),
            "[{b}] {content_type}"
        );
        ex.put_as(&api, "ada@example.com", "other", "ignored-key", json!(3))
            .await;
        ex.put_as(
            &api,
            "ada@example.com",
            "app",
            "streamed-key",
            json!({"html": "<script>alert(1)</script><img src=x onerror=alert(2)>"}),
        )
        .await;
        let seen = read_until(&mut body, "streamed-key", Duration::from_secs(20)).await;
        assert!(seen.contains("event: change"), "[{b}] {seen}");
        assert!(seen.contains("class=\"live-row\""), "[{b}] {seen}");
        assert!(seen.contains("&#60;script&#62;"), "[{b}] {seen}");
        assert!(!seen.contains("<script"), "[{b}] {seen}");
        assert!(!seen.contains("<img"), "[{b}] {seen}");
        assert!(
            !seen.contains("ignored-key"),
            "[{b}] another namespace: {seen}"
        );
        assert!(
            !seen.contains("first-key"),
            "[{b}] only changes after it opened: {seen}"
        );
        drop(body);

        // Resuming from an LSN sends what came after it.
        let (_, _, mut body) =
            open_stream(&api, &ex.browser, &format!("{live}/events?since=0")).await;
        let seen = read_until(&mut body, "streamed-key", Duration::from_secs(20)).await;
        assert!(
            seen.contains("first-key") && seen.contains("elsewhere"),
            "[{b}] {seen}"
        );
        drop(body);

        // A viewer sees the feed; nobody outside the organization does.
        let mut viewer = joined(&api, &mut ex.browser, &ex.slug, "vic@example.com", "viewer").await;
        let page = viewer.get(&live).await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        assert!(page.body.contains(">streamed-key</a>"), "[{b}]");
        assert!(
            !page.body.contains("/rewind\""),
            "[{b}] no rewind tab for a viewer"
        );
        let (status, _, _) = open_stream(&api, &viewer, &format!("{live}/events")).await;
        assert_eq!(status, StatusCode::OK, "[{b}]");

        let mut eve = Browser::new(&api);
        let eve_slug = eve.sign_up("eve@example.com", "Evil", "pro").await;
        let page = eve.get(&live).await;
        assert_eq!(
            page.status,
            StatusCode::NOT_FOUND,
            "[{b}] another organization"
        );
        let theirs = format!("/orgs/{eve_slug}/clusters/{}/data/live", ex.id);
        let page = eve.get(&theirs).await;
        assert_eq!(
            page.status,
            StatusCode::NOT_FOUND,
            "[{b}] another tenant's cluster"
        );
        let (status, _, _) = open_stream(&api, &eve, &format!("{theirs}/events")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "[{b}]");
        let (status, _, _) =
            open_stream(&api, &Browser::new(&api), &format!("{live}/events")).await;
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "[{b}] no session: to the login page"
        );
    }
}
