//! The query console over the real router and a real data plane: a filter (typed and built),
//! a group-by drawn as an SVG bar chart, a bad query's error inline, `at` a moment, EXPLAIN; a
//! viewer runs queries, another tenant does not find the page.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use super::super::Browser;
use super::super::common::{Api, backends};
use super::{explored, joined};

/// The console's URL for `fields`.
fn console(base: &str, fields: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    format!("{base}/query?{query}")
}

/// The keys of the result table's rows.
fn keys(body: &str) -> Vec<String> {
    body.split("<tr data-key=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

/// The inline error's code.
fn error_code(body: &str) -> &str {
    let start = body
        .find("id=\"query-error-code\">")
        .unwrap_or_else(|| panic!("no inline error in {body}"))
        + "id=\"query-error-code\">".len();
    &body[start..start + body[start..].find('<').unwrap()]
}

#[tokio::test]
async fn the_console_runs_filters_groups_text_moments_and_explain_with_errors_inline() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut ex = explored(&api, "ada@example.com", "Acme").await;
        let ada = "ada@example.com";
        let first = ex
            .put_as(
                &api,
                ada,
                "sales",
                "o1",
                json!({"status": "new", "amount": 10, "region": "eu", "tags": ["a"]}),
            )
            .await;
        ex.put_as(
            &api,
            ada,
            "sales",
            "o2",
            json!({"status": "paid", "amount": 5, "region": "us"}),
        )
        .await;
        ex.put_as(
            &api,
            ada,
            "sales",
            "o3",
            json!({"status": "paid", "amount": 7, "region": "us"}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        ex.put_as(
            &api,
            ada,
            "sales",
            "o1",
            json!({"status": "paid", "amount": 10, "region": "eu", "tags": ["a"]}),
        )
        .await;

        // The form alone: namespaces to choose from and the examples; nothing runs.
        let page = ex.browser.get(&format!("{}/query", ex.base)).await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        assert!(page.body.contains("<option value=\"sales\""), "[{b}]");
        assert!(
            page.body.contains("id=\"query-form\"") && !page.body.contains("id=\"query-table\""),
            "[{b}]"
        );
        for example in ["try-aggregation", "try-join", "try-text", "try-explain"] {
            assert!(
                page.body.contains(&format!("id=\"{example}\"")),
                "[{b}] {example}"
            );
        }

        // A filter, typed.
        let paid = json!({"filter": {"field": "status", "op": "eq", "value": "paid"}}).to_string();
        let page = ex
            .browser
            .get(&console(&ex.base, &[("ns", "sales"), ("q", &paid)]))
            .await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        assert_eq!(keys(&page.body), vec!["o1", "o2", "o3"], "[{b}]");
        for column in [
            "key",
            "version",
            "timestamp",
            "amount",
            "region",
            "status",
            "tags",
        ] {
            assert!(
                page.body
                    .contains(&format!("<th scope=\"col\">{column}</th>")),
                "[{b}] {column}"
            );
        }
        assert!(
            page.body.contains("class=\"cell-json\"><pre>"),
            "[{b}] arrays as formatted JSON"
        );
        assert!(page.body.contains("id=\"query-total\">3 in all"), "[{b}]");
        assert!(
            page.body.contains("No limit was given"),
            "[{b}] the limit it added"
        );

        // The same with the builder (no JavaScript: the server fills the body and runs it).
        let page = ex
            .browser
            .get(&console(
                &ex.base,
                &[
                    ("ns", "sales"),
                    ("q", ""),
                    ("field", "amount"),
                    ("op", "gte"),
                    ("value", "7"),
                    ("build", "1"),
                ],
            ))
            .await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        assert_eq!(keys(&page.body), vec!["o1", "o3"], "[{b}]");
        assert!(
            page.body.contains("&quot;gte&quot;") || page.body.contains("&#34;gte&#34;"),
            "[{b}] the textarea shows the body"
        );

        // Grouped: a table and a bar chart naming the groups.
        let grouped = json!({"group_by": "region", "aggregate": {"count": {"count": "*"}, "sum_amount": {"sum": "amount"}}}).to_string();
        let page = ex
            .browser
            .get(&console(&ex.base, &[("ns", "sales"), ("q", &grouped)]))
            .await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        assert!(
            page.body.contains("id=\"query-charts\""),
            "[{b}] {}",
            page.body
        );
        let svg = &page.body[page.body.find("<svg").expect("a chart")..];
        let svg = &svg[..svg.find("</svg>").unwrap()];
        assert!(svg.contains(">eu<") && svg.contains(">us<"), "[{b}] {svg}");
        assert!(
            svg.contains("<title id=\"query-chart-0-title\">count by region</title>"),
            "[{b}] {svg}"
        );
        assert!(
            page.body.contains("<th scope=\"col\">sum_amount</th>"),
            "[{b}]"
        );
        assert!(page.body.contains(">12<"), "[{b}] us sums to 12");

        // Errors: the data plane's (a bad operator), and the console's own (not JSON, a bad moment).
        let bad = json!({"filter": {"field": "status", "op": "like", "value": 1}}).to_string();
        let page = ex
            .browser
            .get(&console(&ex.base, &[("ns", "sales"), ("q", &bad)]))
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "[{b}]");
        assert_eq!(error_code(&page.body), "bad_request", "[{b}]");
        assert!(
            page.body.contains("role=\"alert\" id=\"query-error\""),
            "[{b}]"
        );
        let page = ex
            .browser
            .get(&console(&ex.base, &[("ns", "sales"), ("q", "{nope")]))
            .await;
        assert_eq!(
            (page.status, error_code(&page.body)),
            (StatusCode::BAD_REQUEST, "malformed_json"),
            "[{b}]"
        );
        let page = ex
            .browser
            .get(&console(&ex.base, &[("ns", "sales"), ("at", "soon")]))
            .await;
        assert_eq!(
            (page.status, error_code(&page.body)),
            (StatusCode::BAD_REQUEST, "invalid_time"),
            "[{b}]"
        );
        let text = json!({"text_search": {"field": "status", "query": "paid"}}).to_string();
        let page = ex
            .browser
            .get(&console(&ex.base, &[("ns", "sales"), ("q", &text)]))
            .await;
        assert_eq!(
            (page.status, error_code(&page.body)),
            (StatusCode::BAD_REQUEST, "no_text_index"),
            "[{b}] {}",
            page.body
        );

        // As of the first write's moment: only o1, still new.
        let at = first["timestamp"].as_str().unwrap();
        let page = ex
            .browser
            .get(&console(
                &ex.base,
                &[("ns", "sales"), ("q", ""), ("at", at)],
            ))
            .await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        assert_eq!(keys(&page.body), vec!["o1"], "[{b}]");
        let page = ex
            .browser
            .get(&console(
                &ex.base,
                &[("ns", "sales"), ("q", &paid), ("at", at)],
            ))
            .await;
        assert!(
            keys(&page.body).is_empty() && page.body.contains("id=\"query-empty\""),
            "[{b}] o1 was new then"
        );

        // EXPLAIN: the plan as formatted JSON.
        let explain =
            json!({"filter": {"field": "status", "op": "eq", "value": "paid"}, "explain": true})
                .to_string();
        let page = ex
            .browser
            .get(&console(&ex.base, &[("ns", "sales"), ("q", &explain)]))
            .await;
        assert_eq!(page.status, StatusCode::OK, "[{b}]");
        let plan_at = page.body.find("id=\"query-plan\">").expect("a plan");
        let plan = &page.body[plan_at..];
        let plan = &plan[..plan.find("</pre>").unwrap()];
        assert!(
            plan.contains("access") && plan.contains("scan") && plan.contains('\n'),
            "[{b}] {plan}"
        );

        // A viewer queries; another organization finds nothing.
        let mut viewer = joined(&api, &mut ex.browser, &ex.slug, "vic@example.com", "viewer").await;
        let page = viewer
            .get(&console(&ex.base, &[("ns", "sales"), ("q", &paid)]))
            .await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        assert_eq!(keys(&page.body), vec!["o1", "o2", "o3"], "[{b}]");
        let mut member = joined(&api, &mut ex.browser, &ex.slug, "mo@example.com", "member").await;
        let page = member
            .get(&console(&ex.base, &[("ns", "sales"), ("q", &grouped)]))
            .await;
        assert_eq!(page.status, StatusCode::OK, "[{b}] {}", page.body);
        assert!(page.body.contains("<svg"), "[{b}]");
        let mut stranger = Browser::new(&api);
        stranger.sign_up("eve@example.com", "Eves", "free").await;
        let page = stranger.get(&console(&ex.base, &[("ns", "sales")])).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "[{b}]");

        // A suspended cluster: the page says so.
        sqlx::query("UPDATE clusters SET suspended = 1, phase = 'Suspended' WHERE id = $1")
            .bind(&ex.id)
            .execute(&api.state.db)
            .await
            .unwrap();
        let page = ex.browser.get(&console(&ex.base, &[("ns", "sales")])).await;
        assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "[{b}]");
        assert!(
            page.body.contains("id=\"data-unavailable\"") && page.body.contains("suspended"),
            "[{b}]"
        );
    }
}
