//! Rewind over the real router and a real data plane: the dry run's list of changes, applying
//! it with its digest (written, audited), a write after the dry run (conflict, nothing written),
//! a tampered digest, a key whose prefix catches other keys, bad input, roles and another
//! tenant's cluster.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::Row;

use super::super::common::{Api, backends};
use super::super::{Browser, Page};
use super::joined;
use super::{Explored, explored};

/// The text between `start` and the next `end` on `body`.
fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    body.split(start)
        .nth(1)
        .and_then(|rest| rest.split(end).next())
        .unwrap_or_else(|| panic!("no {start:?} in the page: {body}"))
}

/// The hidden field `name` of the confirmation form.
fn hidden<'a>(page: &'a Page, name: &str) -> &'a str {
    between(&page.body, &format!("name=\"{name}\" value=\""), "\"")
}

/// Posts the dry run of `fields` (the CSRF token added).
async fn plan(ex: &mut Explored<'_>, fields: &[(&str, &str)]) -> Page {
    let to = format!("{}/rewind/plan", ex.base);
    ex.browser.post(&to, fields).await
}

/// Posts the confirmation form of the dry-run page `page`, its digest replaced by `digest`.
async fn confirm(ex: &mut Explored<'_>, page: &Page, digest: Option<&str>) -> Page {
    let fields = [
        ("ns", hidden(page, "ns").to_string()),
        ("key", hidden(page, "key").to_string()),
        ("prefix", hidden(page, "prefix").to_string()),
        ("as_of", hidden(page, "as_of").to_string()),
        ("planned_lsn", hidden(page, "planned_lsn").to_string()),
        (
            "digest",
            digest.map_or_else(|| hidden(page, "digest").to_string(), str::to_string),
        ),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let to = format!("{}/rewind/apply", ex.base);
    ex.browser.post(&to, &fields).await
}

#[tokio::test]
async fn a_key_is_rewound_from_a_reviewed_dry_run_and_audited() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ex = explored(&api, "ada@example.com", "Acme").await;
        let first = ex
            .put_as(&api, "ada@example.com", "app", "order:1", json!({"v": 1}))
            .await;
        let t1 = first["timestamp"].as_str().unwrap().to_string();
        ex.put_as(&api, "ada@example.com", "app", "order:1", json!({"v": 2}))
            .await;

        let page = ex
            .browser
            .get(&format!("{}/rewind?ns=app&key=order:1", ex.base))
            .await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        assert!(page.body.contains("id=\"rewind-form\""), "[{b}]");
        assert!(page.body.contains("value=\"order:1\""), "[{b}] prefilled");

        // The dry run lists the change and writes nothing.
        let fields = [("ns", "app"), ("key", "order:1"), ("as_of", t1.as_str())];
        let dry = plan(&mut ex, &fields).await;
        assert_eq!(dry.status, StatusCode::OK, "[{b}] {}", dry.body);
        assert!(
            dry.body
                .contains("class=\"rewind-change\" data-key=\"order:1\" data-action=\"restore\""),
            "[{b}] {}",
            dry.body
        );
        assert!(dry.body.contains("id=\"rewind-confirm\""), "[{b}]");
        let digest = between(&dry.body, "id=\"rewind-digest\">", "<").to_string();
        assert_eq!(digest.len(), 64, "[{b}] {digest}");
        assert_eq!(
            ex.value(&api, "app", "order:1").await,
            Some(json!({"v": 2})),
            "[{b}]"
        );

        // A tampered digest applies nothing.
        let page = confirm(&mut ex, &dry, Some(&"0".repeat(64))).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}] {}", page.body);
        assert!(page.body.contains("id=\"rewind-error\""), "[{b}]");
        assert!(page.body.contains("digest differs"), "[{b}] {}", page.body);
        assert_eq!(
            ex.value(&api, "app", "order:1").await,
            Some(json!({"v": 2})),
            "[{b}]"
        );

        // A write after the dry run: the reviewed plan is stale, nothing is written.
        ex.put_as(&api, "bob@example.com", "app", "order:1", json!({"v": 3}))
            .await;
        let page = confirm(&mut ex, &dry, None).await;
        assert_eq!(page.status, StatusCode::CONFLICT, "[{b}] {}", page.body);
        assert!(
            page.body
                .contains("The data changed since your dry run; review again."),
            "[{b}] {}",
            page.body
        );
        assert_eq!(
            ex.value(&api, "app", "order:1").await,
            Some(json!({"v": 3})),
            "[{b}]"
        );

        // Reviewed again and confirmed: applied, audited with its digest, shown with a flash.
        let dry = plan(&mut ex, &fields).await;
        assert_eq!(dry.status, StatusCode::OK, "[{b}] {}", dry.body);
        let digest = between(&dry.body, "id=\"rewind-digest\">", "<").to_string();
        let planned_lsn = hidden(&dry, "planned_lsn").to_string();
        let done = confirm(&mut ex, &dry, None).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "[{b}] {}", done.body);
        assert_eq!(
            done.location(),
            format!("{}/ns/app/key?key=order%3A1", ex.base),
            "[{b}]"
        );
        assert_eq!(
            ex.value(&api, "app", "order:1").await,
            Some(json!({"v": 1})),
            "[{b}]"
        );
        let page = ex.browser.get(&format!("{}/live?ns=app", ex.base)).await;
        assert!(
            page.body.contains("went back to"),
            "[{b}] the flash: {}",
            page.body
        );
        let rows = sqlx::query("SELECT actor, target, outcome FROM audit_events WHERE action = $1")
            .bind("cluster.data.rewind")
            .fetch_all(&api.state.db)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "[{b}] one applied rewind");
        let target: String = rows[0].get("target");
        assert!(
            target.contains(&format!("digest={digest}")),
            "[{b}] {target}"
        );
        assert!(
            target.contains(&format!("planned_lsn={planned_lsn}")),
            "[{b}] {target}"
        );
        assert!(
            target.contains("namespace=app&key=order%3A1"),
            "[{b}] {target}"
        );
        assert!(target.contains("change_count=1"), "[{b}] {target}");
        assert!(
            rows[0].get::<String, _>("actor").starts_with("user:"),
            "[{b}]"
        );
        let requests: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE action LIKE '%/data/rewind/apply' AND outcome = 'success'",
        )
        .fetch_one(&api.state.db)
        .await
        .unwrap();
        assert_eq!(requests, 1, "[{b}] the request is in the log too");

        // A key whose prefix catches another key that would change is refused.
        ex.put_as(&api, "ada@example.com", "app", "order:10", json!({"x": 1}))
            .await;
        let page = plan(&mut ex, &fields).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}] {}", page.body);
        assert!(page.body.contains("order:10"), "[{b}] {}", page.body);
        assert!(!page.body.contains("id=\"rewind-confirm\""), "[{b}]");
        let page = plan(
            &mut ex,
            &[("ns", "app"), ("prefix", "order:1"), ("as_of", &t1)],
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        assert!(
            page.body
                .contains("data-key=\"order:10\" data-action=\"delete\""),
            "[{b}]"
        );

        // Bad input comes back inline with the data plane's message.
        for (ns, as_of, why) in [
            ("app", "yesterday", "bad moment"),
            ("app", "2999-01-01T00:00:00Z", "future moment"),
            ("", t1.as_str(), "empty namespace"),
        ] {
            let page = plan(&mut ex, &[("ns", ns), ("key", "order:1"), ("as_of", as_of)]).await;
            assert_eq!(
                page.status,
                StatusCode::BAD_REQUEST,
                "[{b}] {why}: {}",
                page.body
            );
            assert!(page.body.contains("id=\"rewind-error\""), "[{b}] {why}");
        }
        let page = plan(
            &mut ex,
            &[("ns", "app"), ("key", "a"), ("prefix", "b"), ("as_of", &t1)],
        )
        .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}] key and prefix");
        let page = ex
            .browser
            .post_raw(
                &format!("{}/rewind/plan", ex.base),
                &[("ns", "app"), ("key", "order:1"), ("as_of", &t1)],
                "http://127.0.0.1:8080",
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "[{b}] no CSRF token");
    }
}

#[tokio::test]
async fn only_admins_rewind_and_only_their_own_clusters() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ex = explored(&api, "ada@example.com", "Acme").await;
        let first = ex
            .put_as(&api, "ada@example.com", "app", "k", json!(1))
            .await;
        let t1 = first["timestamp"].as_str().unwrap().to_string();
        ex.put_as(&api, "ada@example.com", "app", "k", json!(2))
            .await;
        let rewind = format!("{}/rewind", ex.base);
        let page = ex.browser.get(&format!("{}/live", ex.base)).await;
        assert!(
            page.body.contains(&format!("href=\"{rewind}\"")),
            "[{b}] admins see the tab"
        );
        let dry = plan(&mut ex, &[("ns", "app"), ("key", "k"), ("as_of", &t1)]).await;
        assert_eq!(dry.status, StatusCode::OK, "[{b}] {}", dry.body);
        let fields = [
            ("ns", "app"),
            ("key", "k"),
            ("as_of", hidden(&dry, "as_of")),
            ("planned_lsn", hidden(&dry, "planned_lsn")),
            ("digest", hidden(&dry, "digest")),
        ];

        for role in ["member", "viewer"] {
            let email = format!("{role}@example.com");
            let mut who: Browser<'_> = joined(&api, &mut ex.browser, &ex.slug, &email, role).await;
            let page = who.get(&format!("{}/live", ex.base)).await;
            assert_eq!(page.status, StatusCode::OK, "[{b}] {role}");
            assert!(
                !page.body.contains(&format!("href=\"{rewind}\"")),
                "[{b}] {role}: no tab"
            );
            assert_eq!(
                who.get(&rewind).await.status,
                StatusCode::FORBIDDEN,
                "[{b}] {role}"
            );
            let page = who.post(&format!("{rewind}/plan"), &fields[..3]).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "[{b}] {role}");
            let page = who.post(&format!("{rewind}/apply"), &fields).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "[{b}] {role}");
        }
        assert_eq!(
            ex.value(&api, "app", "k").await,
            Some(json!(2)),
            "[{b}] nothing rewound"
        );

        let mut eve = Browser::new(&api);
        let eve_slug = eve.sign_up("eve@example.com", "Evil", "pro").await;
        assert_eq!(
            eve.get(&rewind).await.status,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        let theirs = format!("/orgs/{eve_slug}/clusters/{}/data/rewind", ex.id);
        assert_eq!(
            eve.get(&theirs).await.status,
            StatusCode::NOT_FOUND,
            "[{b}]"
        );
        let page = eve.post(&format!("{theirs}/apply"), &fields).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "[{b}]");
        assert_eq!(ex.value(&api, "app", "k").await, Some(json!(2)), "[{b}]");

        // The owner's confirmation still applies.
        let done = ex.browser.post(&format!("{rewind}/apply"), &fields).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "[{b}] {}", done.body);
        assert_eq!(ex.value(&api, "app", "k").await, Some(json!(1)), "[{b}]");
    }
}
