//! A key's page: its value, timeline, diff and as-of read for each role; edits by members only
//! (a viewer's POST is 403), compare-and-set conflicts shown and never overwritten, invalid
//! JSON refused, keys with spaces, slashes and other scripts, and the authors of versions.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::super::common::{Api, backends};
use super::keys::{between, link, unescape};
use super::{explored, joined};

/// The key page's path for `key` in `ns`, with more query pairs.
fn key_href(base: &str, ns: &str, key: &str, extra: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("key", key);
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    format!("{base}/ns/{ns}/key?{}", q.finish())
}

/// The `If-Match` version the page's edit form carries.
fn if_match(body: &str) -> String {
    between(body, "name=\"if_match\" value=\"", "\"").to_string()
}

/// The value box's JSON.
fn shown_value(body: &str, id: &str) -> Value {
    let text = unescape(between(body, &format!("id=\"{id}\">"), "</pre>"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn a_key_shows_its_value_timeline_diff_and_past_to_every_role() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ex = explored(&api, "ada@example.com", "Acme").await;
        let v1 = ex
            .put_as(
                &api,
                "ada@example.com",
                "users",
                "ada",
                json!({"name": "Ada", "address": {"city": "London", "zip": "N1"}}),
            )
            .await;
        let v2 = ex
            .put_as(
                &api,
                "ada@example.com",
                "users",
                "ada",
                json!({"name": "Ada", "address": {"city": "Paris", "zip": "N1"}, "vip": true}),
            )
            .await;
        let id1 = v1["version_id"].as_str().unwrap().to_string();
        let id2 = v2["version_id"].as_str().unwrap().to_string();
        let base = ex.base.clone();
        let page_href = key_href(&base, "users", "ada", &[]);

        let mut bob = joined(&api, &mut ex.browser, &ex.slug, "bob@example.com", "member").await;
        let mut cat = joined(&api, &mut ex.browser, &ex.slug, "cat@example.com", "viewer").await;
        for (who, browser, writes) in [
            ("owner", &mut ex.browser, true),
            ("member", &mut bob, true),
            ("viewer", &mut cat, false),
        ] {
            let page = browser.get(&page_href).await;
            assert_eq!(page.status, StatusCode::OK, "[{b}] {who}: {}", page.body);
            assert_eq!(
                shown_value(&page.body, "value"),
                json!({"name": "Ada", "address": {"city": "Paris", "zip": "N1"}, "vip": true}),
                "[{b}] {who}"
            );
            assert!(
                page.body
                    .contains("\n  &#34;address&#34;: {\n    &#34;city&#34;"),
                "[{b}] {who}: laid out: {}",
                page.body
            );
            assert_eq!(
                between(&page.body, "id=\"current-version\">", "<"),
                id2,
                "[{b}] {who}"
            );
            // Newest first, each with its id, operation and a diff with the previous one.
            let timeline = between(&page.body, "id=\"timeline\">", "</ol>");
            let first = timeline.find(&format!("data-version=\"{id2}\"")).unwrap();
            let second = timeline.find(&format!("data-version=\"{id1}\"")).unwrap();
            assert!(first < second, "[{b}] {who} newest first");
            assert_eq!(
                timeline.matches("class=\"badge op\">put<").count(),
                2,
                "[{b}] {who}"
            );
            assert_eq!(
                timeline.matches("class=\"diff-link\"").count(),
                1,
                "[{b}] {who}"
            );
            assert_eq!(
                page.body.contains("id=\"edit-form\""),
                writes,
                "[{b}] {who}"
            );
            assert_eq!(
                page.body.contains("id=\"delete-form\""),
                writes,
                "[{b}] {who}"
            );
            assert!(page.body.contains("id=\"as-of-form\""), "[{b}] {who}");
            assert!(page.body.contains("id=\"compare-form\""), "[{b}] {who}");

            // The diff of the two versions: the nested field that changed, and what was added.
            let diff_href = unescape(between(timeline, "class=\"diff-link\" href=\"", "\""));
            assert_eq!(
                diff_href,
                key_href(&base, "users", "ada", &[("from", &id1), ("to", &id2)]),
                "[{b}] {who}"
            );
            let page = browser.get(&diff_href).await;
            assert_eq!(page.status, StatusCode::OK, "[{b}] {who}");
            let diff = unescape(between(&page.body, "id=\"diff-lines\">", "</ul>"));
            assert!(
                diff.contains("<span class=\"diff-kind\">changed</span> <code class=\"diff-path\">/address/city</code> <del class=\"diff-old\">\"London\"</del> <ins class=\"diff-new\">\"Paris\"</ins>"),
                "[{b}] {who}: {diff}"
            );
            assert!(
                diff.contains("<span class=\"diff-kind\">added</span> <code class=\"diff-path\">/vip</code> <ins class=\"diff-new\">true</ins>"),
                "[{b}] {who}: {diff}"
            );
            assert!(
                !diff.contains("/zip") && !diff.contains("/name"),
                "[{b}] {who}: only what changed"
            );

            // Read as of the first version's moment, in RFC 3339 and as a browser's local input.
            let ts = v1["timestamp"].as_str().unwrap();
            let page = browser.get(&key_href_for(&page_href, &[("at", ts)])).await;
            assert_eq!(page.status, StatusCode::OK, "[{b}] {who}");
            assert_eq!(
                shown_value(&page.body, "as-of-value")["address"]["city"],
                "London",
                "[{b}] {who}"
            );
            assert_eq!(
                between(&page.body, "id=\"as-of-version\">", "<"),
                id1,
                "[{b}] {who}"
            );
            let page = browser
                .get(&key_href_for(&page_href, &[("at", "2001-01-01T00:00")]))
                .await;
            assert!(
                page.body.contains("id=\"as-of-note\""),
                "[{b}] {who}: before the key existed"
            );
            let page = browser
                .get(&key_href_for(&page_href, &[("at", "someday")]))
                .await;
            assert!(
                unescape(&page.body).contains("\"someday\" is not a moment"),
                "[{b}] {who}"
            );
        }

        // A viewer's write is refused and changes nothing.
        let page = cat
            .post(
                &format!("{}/ns/users/key", ex.base),
                &[
                    ("key", "ada"),
                    ("value", "{}"),
                    ("if_match", &id2),
                    ("action", "put"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "[{b}] {}", page.body);
        assert_eq!(
            ex.value(&api, "users", "ada").await.unwrap()["vip"],
            true,
            "[{b}]"
        );

        // A member's edit goes in with If-Match on the version shown, then back to the page.
        let page = bob.get(&page_href).await;
        let version = if_match(&page.body);
        assert_eq!(version, id2, "[{b}]");
        let page = bob
            .post(
                &format!("{}/ns/users/key", ex.base),
                &[
                    ("key", "ada"),
                    (
                        "value",
                        "{\"name\": \"Ada L.\", \"n\": 12345678901234567890123}",
                    ),
                    ("if_match", &version),
                    ("action", "put"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        assert_eq!(page.location(), page_href, "[{b}]");
        let page = bob.get(&page_href).await;
        assert!(page.body.contains("Saved ada: version"), "[{b}] the flash");
        assert!(
            page.body.contains("&#34;n&#34;: 12345678901234567890123"),
            "[{b}] the number's digits as typed"
        );

        // Deleted with If-Match: the page says so and the timeline shows the delete.
        let version = if_match(&page.body);
        let page = bob
            .post(
                &format!("{}/ns/users/key", ex.base),
                &[("key", "ada"), ("if_match", &version), ("action", "delete")],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        assert_eq!(ex.value(&api, "users", "ada").await, None, "[{b}]");
        let page = bob.get(&page_href).await;
        assert!(page.body.contains("id=\"no-value\""), "[{b}]");
        assert!(page.body.contains("class=\"badge op\">delete<"), "[{b}]");
        assert!(
            !page.body.contains("id=\"delete-form\""),
            "[{b}] nothing left to delete"
        );
    }
}

/// `href` with more query pairs.
fn key_href_for(href: &str, extra: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    format!("{href}&{}", q.finish())
}

#[tokio::test]
async fn two_editors_never_overwrite_each_other_and_bad_json_writes_nothing() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ex = explored(&api, "ada@example.com", "Acme").await;
        let base = ex.base.clone();
        let action = format!("{base}/ns/users/key");
        ex.put_as(
            &api,
            "ada@example.com",
            "users",
            "ada",
            json!({"plan": "free"}),
        )
        .await;
        let href = key_href(&base, "users", "ada", &[]);
        let mut bob = joined(&api, &mut ex.browser, &ex.slug, "bob@example.com", "member").await;

        // Both open the key at the same version.
        let ada_seen = if_match(&ex.browser.get(&href).await.body);
        let bob_seen = if_match(&bob.get(&href).await.body);
        assert_eq!(ada_seen, bob_seen, "[{b}]");

        let page = ex
            .browser
            .post(
                &action,
                &[
                    ("key", "ada"),
                    ("value", "{\"plan\": \"pro\"}"),
                    ("if_match", &ada_seen),
                    ("action", "put"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);

        // Bob's save meets Ada's version: shown to him, nothing written.
        let page = bob
            .post(
                &action,
                &[
                    ("key", "ada"),
                    ("value", "{\"plan\": \"enterprise\"}"),
                    ("if_match", &bob_seen),
                    ("action", "put"),
                ],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::PRECONDITION_FAILED,
            "[{b}] {}",
            page.body
        );
        assert!(page.body.contains("id=\"conflict\""), "[{b}]");
        assert_eq!(
            shown_value(&page.body, "conflict-value"),
            json!({"plan": "pro"}),
            "[{b}]"
        );
        assert!(
            unescape(between(&page.body, "id=\"edit-value\"", "</textarea>"))
                .contains("enterprise"),
            "[{b}] his edit is kept in the form"
        );
        let theirs = between(&page.body, "class=\"conflict-version\">", "<").to_string();
        assert_ne!(theirs, bob_seen, "[{b}]");
        assert_eq!(
            if_match(&page.body),
            theirs,
            "[{b}] saving again means replacing theirs"
        );
        assert_eq!(
            ex.value(&api, "users", "ada").await.unwrap(),
            json!({"plan": "pro"}),
            "[{b}]"
        );

        // A delete at the old version is refused the same way.
        let page = bob
            .post(
                &action,
                &[
                    ("key", "ada"),
                    ("if_match", &bob_seen),
                    ("action", "delete"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::PRECONDITION_FAILED, "[{b}]");
        assert!(ex.value(&api, "users", "ada").await.is_some(), "[{b}]");

        // Creating a key that someone created meanwhile is a conflict too.
        let page = bob
            .post(
                &action,
                &[
                    ("key", "ada"),
                    ("value", "1"),
                    ("if_match", ""),
                    ("action", "put"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::PRECONDITION_FAILED, "[{b}]");

        // Invalid JSON: refused inline, the text kept, nothing written.
        let page = bob
            .post(
                &action,
                &[
                    ("key", "ada"),
                    ("value", "{\"plan\": pro}"),
                    ("if_match", &theirs),
                    ("action", "put"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}] {}", page.body);
        assert!(
            between(&page.body, "id=\"edit-error\">", "<").starts_with("The value is not JSON"),
            "[{b}]"
        );
        assert!(
            unescape(&page.body).contains("{\"plan\": pro}</textarea>"),
            "[{b}]"
        );
        assert_eq!(
            ex.value(&api, "users", "ada").await.unwrap(),
            json!({"plan": "pro"}),
            "[{b}]"
        );

        // A value the data plane refuses shows its message.
        let page = bob
            .post(
                &action,
                &[
                    ("key", "ada"),
                    ("value", "1e400"),
                    ("if_match", &theirs),
                    ("action", "put"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}] {}", page.body);
        assert!(page.body.contains("id=\"edit-error\""), "[{b}]");
        assert_eq!(
            ex.value(&api, "users", "ada").await.unwrap(),
            json!({"plan": "pro"}),
            "[{b}]"
        );
    }
}

#[tokio::test]
async fn keys_with_spaces_slashes_and_any_script_round_trip() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ex = explored(&api, "ada@example.com", "Acme").await;
        let base = ex.base.clone();
        for key in ["a b/c", "ünïcødé/日本 ?&=#%", "100%"] {
            let page = ex
                .browser
                .post(
                    &format!("{base}/ns/odd/key"),
                    &[
                        ("key", key),
                        ("value", "{\"k\": 1}"),
                        ("if_match", ""),
                        ("action", "put"),
                    ],
                )
                .await;
            assert_eq!(
                page.status,
                StatusCode::SEE_OTHER,
                "[{b}] {key}: {}",
                page.body
            );
            assert_eq!(
                page.location(),
                key_href(&base, "odd", key, &[]),
                "[{b}] {key}"
            );
            assert_eq!(
                ex.value(&api, "odd", key).await,
                Some(json!({"k": 1})),
                "[{b}] {key}"
            );
            let page = ex.browser.get(page.location()).await;
            assert_eq!(page.status, StatusCode::OK, "[{b}] {key}");
            assert_eq!(
                unescape(between(&page.body, "id=\"key-name\">", "<")),
                key,
                "[{b}]"
            );
            assert_eq!(
                shown_value(&page.body, "value"),
                json!({"k": 1}),
                "[{b}] {key}"
            );
        }
        let page = ex.browser.get(&format!("{base}/ns/odd")).await;
        let body = unescape(&page.body);
        for key in ["a b/c", "ünïcødé/日本 ?&=#%", "100%"] {
            assert!(body.contains(&format!(">{key}</a>")), "[{b}] {key} listed");
        }
        // Its link opens it.
        let href = unescape(between(&page.body, "class=\"key-link\" href=\"", "\""));
        let page = ex.browser.get(&href).await;
        assert_eq!(page.status, StatusCode::OK, "[{b}]");
        assert_eq!(
            unescape(between(&page.body, "id=\"key-name\">", "<")),
            "100%",
            "[{b}] byte order"
        );
    }
}

#[tokio::test]
async fn a_long_history_pages_back_from_the_newest() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ex = explored(&api, "ada@example.com", "Acme").await;
        for i in 0..60 {
            ex.put_as(&api, "ada@example.com", "users", "busy", json!({"i": i}))
                .await;
        }
        let href = key_href(&ex.base, "users", "busy", &[]);
        let page = ex.browser.get(&href).await;
        assert!(page.body.contains("60 versions, newest first."), "[{b}]");
        let timeline = between(&page.body, "id=\"timeline\">", "</ol>");
        assert_eq!(timeline.matches("<li class=\"version").count(), 50, "[{b}]");
        assert!(
            unescape(timeline).contains("{\"i\":59}"),
            "[{b}] the newest"
        );
        assert!(
            !unescape(timeline).contains("{\"i\":9}"),
            "[{b}] not the oldest"
        );
        let older = link(&page.body, "older-versions").expect("a link to older versions");
        let page = ex.browser.get(&older).await;
        let timeline = unescape(between(&page.body, "id=\"timeline\">", "</ol>"));
        assert_eq!(timeline.matches("<li class=\"version").count(), 10, "[{b}]");
        assert!(
            timeline.contains("{\"i\":0}") && !timeline.contains("{\"i\":10}"),
            "[{b}]"
        );
        assert!(page.body.contains("id=\"newest-versions\""), "[{b}]");
    }
}

/// Needs the `authors` branch's data plane (`?meta=true` reads carry each version's author).
#[tokio::test]
async fn versions_name_their_authors() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ex = explored(&api, "ada@example.com", "Acme").await;
        ex.put_as(&api, "grace@example.com", "users", "ada", json!({"v": 1}))
            .await;
        ex.put_as(&api, "token:deploy", "users", "ada", json!({"v": 2}))
            .await;
        let href = key_href(&ex.base, "users", "ada", &[]);
        let page = ex.browser.get(&href).await;
        let version = if_match(&page.body);
        // A write from the dashboard is the signed-in user's.
        let page = ex
            .browser
            .post(
                &format!("{}/ns/users/key", ex.base),
                &[
                    ("key", "ada"),
                    ("value", "{\"v\": 3}"),
                    ("if_match", &version),
                    ("action", "put"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        let page = ex.browser.get(&href).await;
        assert_eq!(
            between(&page.body, "id=\"current-author\">", "<"),
            "ada@example.com",
            "[{b}]"
        );
        let timeline = between(&page.body, "id=\"timeline\">", "</ol>");
        let authors: Vec<&str> = timeline
            .split("<span class=\"author\">")
            .skip(1)
            .map(|rest| rest.split('<').next().unwrap())
            .collect();
        assert_eq!(
            authors,
            ["ada@example.com", "API token deploy", "grace@example.com"],
            "[{b}]"
        );
    }
}
