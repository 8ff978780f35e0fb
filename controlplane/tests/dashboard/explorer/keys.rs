//! The namespaces and keys pages: each role sees them (only members get the new-key form),
//! another tenant's cluster is not found, prefix search and cursor paging over more keys than
//! a page holds, a bad namespace name is the data plane's 400 inline, a suspended cluster a 503.

use axum::http::StatusCode;
use koru_dataplane_api::auth::Scope;
use serde_json::json;

use super::super::Browser;
use super::super::common::{Api, backends};
use super::{Explored, explored, joined};

/// `text` as the page shows it, HTML entities undone (askama escapes quotes and ampersands).
pub(super) fn unescape(text: &str) -> String {
    text.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// The text between `start` and `end` in `body`.
pub(super) fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    body.split(start)
        .nth(1)
        .and_then(|rest| rest.split(end).next())
        .unwrap_or_else(|| panic!("no {start:?} in the page: {body}"))
}

/// The keys a keys page lists, in order.
fn listed(body: &str) -> Vec<String> {
    body.split("class=\"key-link\" href=\"")
        .skip(1)
        .map(|rest| unescape(between(rest, "\">", "</a>")))
        .collect()
}

/// The target of the link with element id `id`, if the page has it.
pub(super) fn link(body: &str, id: &str) -> Option<String> {
    let before = body.split(&format!("\" id=\"{id}\"")).next()?;
    if before.len() == body.len() {
        return None;
    }
    before.rsplit("href=\"").next().map(unescape)
}

/// Writes `n` keys `{prefix}{i:03}` into `ns` in one batch.
pub(super) async fn batch_put(api: &Api, ex: &Explored<'_>, ns: &str, prefix: &str, n: usize) {
    let token = ex.token(api, "ada@example.com", Scope::Write).await;
    let writes: Vec<_> = (0..n)
        .map(|i| json!({"namespace": ns, "key": format!("{prefix}{i:03}"), "value": {"i": i}}))
        .collect();
    // In batches within the free tier's 100 operations per second.
    for chunk in writes.chunks(40) {
        loop {
            let response = reqwest::Client::new()
                .post(format!("{}/api/v1/batch", ex.endpoint))
                .bearer_auth(&token)
                .json(&json!({ "writes": chunk }))
                .send()
                .await
                .unwrap();
            if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
            assert!(response.status().is_success(), "{}", response.status());
            break;
        }
    }
}

#[tokio::test]
async fn namespaces_show_to_every_role_and_only_members_create() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ex = explored(&api, "ada@example.com", "Acme").await;
        let base = ex.base.clone();

        // An empty cluster says how to write a first key, and the owner may create one here.
        let page = ex.browser.get(&base).await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        assert!(page.body.contains("id=\"first-key\""), "[{b}]");
        assert!(
            unescape(&page.body).contains("/api/v1/users/ada"),
            "[{b}] the snippet"
        );
        assert!(page.body.contains("id=\"new-key-form\""), "[{b}]");

        // Created from the namespaces page's form, namespace and all.
        let page = ex
            .browser
            .post(
                &format!("{base}/key"),
                &[
                    ("namespace", "users"),
                    ("key", "ada"),
                    ("value", "{\"name\": \"Ada\"}"),
                    ("if_match", ""),
                    ("action", "put"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "[{b}] {}", page.body);
        assert_eq!(
            page.location(),
            format!("{base}/ns/users/key?key=ada"),
            "[{b}]"
        );
        ex.put_as(
            &api,
            "bob@example.com",
            "users",
            "bob",
            json!({"name": "Bob"}),
        )
        .await;
        ex.put_as(
            &api,
            "bob@example.com",
            "users",
            "bob",
            json!({"name": "Robert"}),
        )
        .await;
        ex.put_as(&api, "ada@example.com", "carts", "c1", json!([1, 2]))
            .await;

        let mut bob = joined(&api, &mut ex.browser, &ex.slug, "bob@example.com", "member").await;
        let mut cat = joined(&api, &mut ex.browser, &ex.slug, "cat@example.com", "viewer").await;
        for (who, browser, writes) in [
            ("owner", &mut ex.browser, true),
            ("member", &mut bob, true),
            ("viewer", &mut cat, false),
        ] {
            let page = browser.get(&base).await;
            assert_eq!(page.status, StatusCode::OK, "[{b}] {who}: {}", page.body);
            assert!(!page.body.contains("id=\"first-key\""), "[{b}] {who}");
            assert!(
                page.body
                    .contains(&format!("href=\"{base}/ns/users\">users</a>")),
                "[{b}] {who}"
            );
            assert!(
                page.body
                    .contains(&format!("href=\"{base}/ns/carts\">carts</a>")),
                "[{b}] {who}"
            );
            assert_eq!(
                page.body.contains("id=\"new-key-form\""),
                writes,
                "[{b}] {who}"
            );
            // The counts, from a data plane that gives them (names only from an older one).
            if page.body.contains("class=\"ns-keys\"") {
                let users = between(&page.body, "ns/users\">users</a></th>", "</tr>");
                assert!(
                    users.contains(">2</td>"),
                    "[{b}] {who}: two live keys: {users}"
                );
                assert!(
                    users.contains(">3</td>"),
                    "[{b}] {who}: three versions: {users}"
                );
            }
            let page = browser.get(&format!("{base}/ns/users")).await;
            assert_eq!(page.status, StatusCode::OK, "[{b}] {who}");
            assert_eq!(listed(&page.body), ["ada", "bob"], "[{b}] {who}");
            assert!(
                page.body
                    .contains(&format!("href=\"{base}/ns/users/key?key=bob\"")),
                "[{b}] {who} links to the key"
            );
            assert_eq!(
                page.body.contains("id=\"new-key-form\""),
                writes,
                "[{b}] {who}"
            );
        }

        // Another organization's cluster is not found, by its own path or its id under theirs.
        let mut eve = Browser::new(&api);
        let evil = eve.sign_up("eve@example.com", "Evil", "pro").await;
        for path in [
            base.clone(),
            format!("{base}/ns/users"),
            format!("/orgs/{evil}/clusters/{}/data", ex.id),
            format!("/orgs/{evil}/clusters/{}/data/ns/users", ex.id),
        ] {
            let page = eve.get(&path).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "[{b}] {path}");
            assert!(!page.body.contains("Robert"), "[{b}] {path}");
        }

        // A name the data plane refuses is its 400, with its message.
        let page = ex.browser.get(&format!("{base}/ns/bad%20name")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}] {}", page.body);
        assert!(page.body.contains("id=\"data-error\""), "[{b}]");

        // A suspended cluster says so rather than failing.
        sqlx::query("UPDATE clusters SET phase = 'Suspended' WHERE id = $1")
            .bind(&ex.id)
            .execute(&api.state.db)
            .await
            .unwrap();
        let page = ex.browser.get(&base).await;
        assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "[{b}]");
        assert!(page.body.contains("is suspended"), "[{b}] {}", page.body);
    }
}

#[tokio::test]
async fn keys_page_through_a_cursor_and_search_by_prefix() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ex = explored(&api, "ada@example.com", "Acme").await;
        batch_put(&api, &ex, "users", "user:", 120).await;
        ex.put_as(&api, "ada@example.com", "users", "admin", json!(1))
            .await;
        let href = format!("{}/ns/users", ex.base);

        let mut seen = Vec::new();
        let mut next = Some(href.clone());
        let mut pages = 0;
        while let Some(path) = next {
            let page = ex.browser.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "[{b}] {path}");
            let keys = listed(&page.body);
            assert!(keys.len() <= 50, "[{b}] a page holds 50 keys");
            assert_eq!(
                page.body.contains("id=\"first-page\""),
                pages > 0,
                "[{b}] a link back to the first page after it"
            );
            seen.extend(keys);
            pages += 1;
            next = link(&page.body, "next-page");
            assert!(pages <= 3, "[{b}] three pages at most");
        }
        assert_eq!(pages, 3, "[{b}]");
        let mut expected = vec!["admin".to_string()];
        expected.extend((0..120).map(|i| format!("user:{i:03}")));
        assert_eq!(seen, expected, "[{b}] every key once, in order");

        let page = ex.browser.get(&format!("{href}?prefix=user%3A11")).await;
        assert_eq!(
            listed(&page.body),
            (110..120).map(|i| format!("user:{i}")).collect::<Vec<_>>(),
            "[{b}]"
        );
        assert!(!page.body.contains("id=\"next-page\""), "[{b}]");
        assert!(
            page.body.contains("value=\"user:11\""),
            "[{b}] the search box keeps it"
        );
        let page = ex.browser.get(&format!("{href}?prefix=nobody")).await;
        assert!(page.body.contains("id=\"no-keys\""), "[{b}]");
    }
}
