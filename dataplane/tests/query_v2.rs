//! The v2 query over HTTP, through the real router on a real store: filter trees, `in` and
//! `prefix`, multi-key sorts, EXPLAIN, the limits (413, 422, 400 `no_plan`), text search without
//! a text index, aggregation, views over a v2 query, and the embedded API answering the same body.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use koru_dataplane::http::{AppState, app};
use koru_dataplane::metrics::Metrics;
use koru_dataplane::query::{Filter, Query, QueryLimits};
use koru_dataplane::{Store, StoreConfig, WriteOp};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Api {
    router: axum::Router,
    store: Store,
    _dir: tempfile::TempDir,
}

impl Api {
    fn new(limits: QueryLimits) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path());
        config.query = limits;
        let metrics = Arc::new(Metrics::default());
        let (store, _) = Store::open(config, Arc::clone(&metrics.store)).unwrap();
        let router = app(AppState::new(store.clone(), metrics, None, None));
        Api {
            router,
            store,
            _dir: dir,
        }
    }

    async fn put(&self, ns: &str, key: &str, value: Value) {
        let raw = serde_json::value::to_raw_value(&value).unwrap();
        self.store
            .write(vec![WriteOp::put(ns, key, raw)])
            .await
            .unwrap();
    }

    async fn call(&self, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn query(&self, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, "/api/v1/users/query", body).await
    }
}

fn keys(answer: &Value) -> Vec<&str> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect()
}

async fn users(limits: QueryLimits) -> Api {
    let api = Api::new(limits);
    for (key, name, status, age) in [
        ("u1", "alice", "premium", 30),
        ("u2", "albert", "free", 25),
        ("u3", "bob", "premium", 41),
        ("u4", "carol", "free", 30),
    ] {
        api.put(
            "users",
            key,
            json!({"name": name, "status": status, "age": age}),
        )
        .await;
    }
    api
}

#[tokio::test]
async fn filter_trees_in_prefix_and_sorts_on_several_keys() {
    let api = users(QueryLimits::default()).await;
    let (status, body) = api
        .query(json!({
            "filter": {"or": [
                {"and": [{"field": "age", "op": "gte", "value": 26}, {"field": "age", "op": "lt", "value": 40}]},
                {"field": "name", "op": "prefix", "value": "al"}
            ]},
            "sort": [{"field": "age", "descending": true}, {"field": "name"}],
        }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(keys(&body), ["u1", "u4", "u2"]);
    assert_eq!(body["total"], 3);
    let (_, body) = api
        .query(json!({"filter": {"not": {"field": "status", "op": "in", "value": ["free"]}}}))
        .await;
    assert_eq!(keys(&body), ["u1", "u3"]);
    // The v1 body still answers the v1 shape.
    let (_, body) = api
        .query(json!({"filter": {"field": "age", "op": "eq", "value": 30}, "limit": 1}))
        .await;
    assert_eq!(keys(&body), ["u1"]);
    assert_eq!(body["total"], 2);
    assert!(body.get("plan").is_none());
    for bad in [
        json!({"filter": {"field": "age", "op": "in", "value": 3}}),
        json!({"filter": {"and": [], "or": []}}),
        json!({"having": {"field": "count", "op": "gt", "value": 1}}),
        json!({"join": {"namespace": "users", "on": {"left": "a", "right": "b"}}}),
    ] {
        let (status, body) = api.query(bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} answered {body}");
    }
}

#[tokio::test]
async fn explain_shows_the_plan_and_what_it_read() {
    let api = users(QueryLimits::default()).await;
    let (_, body) = api
        .query(
            json!({"filter": {"field": "status", "op": "eq", "value": "premium"}, "explain": true}),
        )
        .await;
    let plan = &body["plan"];
    assert_eq!(plan["access"], "scan", "no index is ready: {plan}");
    assert_eq!(plan["rows_scanned"], 4);
    assert_eq!(plan["rows_returned"], 2);
    assert!(!plan["rejected"].as_array().unwrap().is_empty(), "{plan}");
}

#[tokio::test]
async fn queries_past_their_budgets_answer_with_the_limit_and_what_to_do() {
    let small = QueryLimits {
        max_scan: 3,
        ..QueryLimits::default()
    };
    let api = users(small).await;
    let (status, body) = api
        .query(json!({"filter": {"field": "status", "op": "eq", "value": "free"}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "no_plan");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("create an index on status"), "{message}");

    let tight = QueryLimits {
        max_result_bytes: 1024,
        ..QueryLimits::default()
    };
    let api = users(tight).await;
    api.put("users", "zz", json!({"blob": "x".repeat(2000)}))
        .await;
    let (status, body) = api.query(json!({})).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "result_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--query-max-result-bytes")
    );
    let (status, _) = api.query(json!({"limit": 1})).await;
    assert_eq!(status, StatusCode::OK, "a limit brings it under");

    let few_groups = QueryLimits {
        max_groups: 1,
        ..QueryLimits::default()
    };
    let api = users(few_groups).await;
    let (status, body) = api
        .query(json!({"group_by": "status", "aggregate": {"count": {"count": "*"}}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "query_limit_exceeded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--query-max-groups")
    );
}

#[tokio::test]
async fn a_text_search_without_a_text_index_suggests_creating_one() {
    let api = users(QueryLimits::default()).await;
    let (status, body) = api
        .query(json!({"text_search": {"field": "name", "query": "alice"}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "no_text_index");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"kind\": \"text\"")
    );
}

#[tokio::test]
async fn aggregations_filter_groups_with_having_and_sort_by_outputs() {
    let api = users(QueryLimits::default()).await;
    let (status, body) = api
        .query(json!({
            "filter": {"field": "age", "op": "gt", "value": 0},
            "group_by": ["status"],
            "aggregate": {"count": {"count": "*"}, "sum_age": {"sum": "age"}},
            "having": {"field": "count", "op": "gte", "value": 2},
            "sort": {"field": "sum_age", "descending": true},
        }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["groups"],
        json!([
            {"status": "premium", "count": 2, "sum_age": 71},
            {"status": "free", "count": 2, "sum_age": 55},
        ])
    );
    assert_eq!(body["total"], 2);
}

#[tokio::test]
async fn views_hold_a_whole_v2_query_and_old_filter_views_still_work() {
    let api = users(QueryLimits::default()).await;
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/views",
            json!({"name": "young", "source": "users", "auto_refresh": true,
                   "query": {"filter": {"field": "age", "op": "lt", "value": 31},
                             "sort": {"field": "age", "descending": true}, "limit": 2}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = api
        .call(Method::GET, "/api/v1/views/young", Value::Null)
        .await;
    assert_eq!(body["namespace"], "young");
    assert_eq!(keys(&body), ["u1", "u4"]);
    assert_eq!(body["total"], 3);
    let (status, _) = api
        .call(
            Method::POST,
            "/api/v1/views",
            json!({"name": "old", "source": "users", "filter": {"field": "status", "op": "eq", "value": "free"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = api
        .call(Method::GET, "/api/v1/views/old", Value::Null)
        .await;
    assert_eq!(keys(&body), ["u2", "u4"]);
    let (status, _) = api
        .call(
            Method::POST,
            "/api/v1/views",
            json!({"name": "then", "source": "users", "query": {"at": "2026-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a view's moment is its refresh"
    );
}

#[tokio::test]
async fn the_embedded_api_answers_the_http_body() {
    let api = users(QueryLimits::default()).await;
    let query = Query::new()
        .filter(Filter::eq("status", "premium"))
        .filter(Filter::gt("users:age", 35))
        .sort_by("age", false)
        .limit(5);
    let answer = api.store.query("users", query.clone()).await.unwrap();
    let embedded = serde_json::to_value(&answer).unwrap();
    let (_, http) = api.query(serde_json::to_value(&query).unwrap()).await;
    assert_eq!(embedded, http);
    assert_eq!(keys(&http), ["u3"]);
    let before = api.store.query("users", Query::new().at(1)).await.unwrap();
    assert_eq!(before.total, 0, "nothing existed at the epoch");
}

#[tokio::test]
async fn joins_filter_both_sides_group_and_answer_as_of_a_moment() {
    let api = users(QueryLimits::default()).await;
    for (key, user, amount) in [
        ("o1", "u1", 150),
        ("o2", "u1", 50),
        ("o3", "u2", 500),
        ("o4", "u3", 120),
        ("o5", "nobody", 900),
    ] {
        api.put("orders", key, json!({"user_id": user, "amount": amount}))
            .await;
    }
    let order_keys = |body: &Value| -> Vec<String> {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["key"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/orders/query",
            json!({
                "join": {"namespace": "users", "on": {"left": "user_id", "right": "_key"}},
                "filter": {"and": [{"field": "users:status", "op": "eq", "value": "premium"},
                                   {"field": "orders:amount", "op": "gt", "value": 100}]},
                "explain": true,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(order_keys(&body), ["o1", "o4"]);
    assert_eq!(body["results"][0]["joined"]["key"], "u1");
    assert_eq!(body["results"][0]["joined"]["value"]["status"], "premium");
    assert_eq!(body["plan"]["join"]["namespace"], "users");

    let moment = api
        .store
        .query("orders", Query::new())
        .await
        .unwrap()
        .results
        .unwrap()[4]
        .row
        .timestamp
        .clone();
    api.put(
        "users",
        "u2",
        json!({"name": "albert", "status": "premium", "age": 25}),
    )
    .await;
    let premium = |at: Option<&str>| {
        let mut q = json!({
            "join": {"namespace": "users", "on": {"left": "user_id", "right": "_key"}},
            "group_by": "users:status",
            "aggregate": {"sum_amount": {"sum": "amount"}, "count": {"count": "*"}},
            "sort": {"field": "sum_amount", "descending": true},
        });
        if let Some(at) = at {
            q["at"] = json!(at);
        }
        api.call(Method::POST, "/api/v1/orders/query", q)
    };
    let (_, now) = premium(None).await;
    assert_eq!(
        now["groups"],
        json!([{"users:status": "premium", "sum_amount": 820, "count": 4}])
    );
    let (_, then) = premium(Some(&moment)).await;
    assert_eq!(
        then["groups"],
        json!([{"users:status": "free", "sum_amount": 500, "count": 1},
               {"users:status": "premium", "sum_amount": 320, "count": 3}]),
        "as of before u2 turned premium"
    );

    let (_, left) = api
        .call(
            Method::POST,
            "/api/v1/orders/query",
            json!({"join": {"namespace": "users", "on": {"left": "user_id", "right": "_key"}, "kind": "left"},
                   "filter": {"field": "amount", "op": "gte", "value": 900}}),
        )
        .await;
    assert_eq!(order_keys(&left), ["o5"]);
    assert_eq!(left["results"][0]["joined"], Value::Null);
}

#[tokio::test]
async fn text_search_rows_carry_relevance_and_highlights_and_a_filter_narrows_them() {
    use koru_dataplane::indexes::{IndexDef, IndexType};
    let api = Api::new(QueryLimits::default());
    for (key, bio, age) in [
        ("p1", "fast database with performance tuning", 30),
        ("p2", "a slow database", 40),
        ("p3", "database performance at scale", 50),
        ("p4", "gardening", 60),
    ] {
        api.put("people", key, json!({"bio": bio, "age": age}))
            .await;
    }
    let def = IndexDef::new("people", "bio", IndexType::Text);
    api.store
        .create_index_def(def)
        .await
        .expect("defining a text index");
    let search = json!({"text_search": {"field": "bio", "query": "database +performance -slow", "highlight": true},
                        "explain": true});
    // A write is searchable once the indexer commits it (a bounded delay).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let body = loop {
        let (status, body) = api
            .call(Method::POST, "/api/v1/people/query", search.clone())
            .await;
        if status == StatusCode::OK && body["total"] == 2 {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never searchable: {status} {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let mut found: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    found.sort_unstable();
    assert_eq!(found, ["p1", "p3"]);
    let first = &body["results"][0];
    assert!(
        first["_relevance"].as_f64().unwrap() >= body["results"][1]["_relevance"].as_f64().unwrap()
    );
    assert!(
        first["highlight"].as_str().unwrap().contains("<b>"),
        "{first}"
    );
    assert_eq!(body["plan"]["access"], "text");
    // Ranked by relevance alone with a limit: only the top hit is read, the total still counts both.
    let (_, top) = api
        .call(
            Method::POST,
            "/api/v1/people/query",
            json!({"text_search": {"field": "bio", "query": "database +performance -slow"},
                   "limit": 1, "explain": true}),
        )
        .await;
    assert_eq!(top["total"], 2, "{top}");
    assert_eq!(top["results"].as_array().unwrap().len(), 1, "{top}");
    assert_eq!(top["results"][0]["key"], first["key"], "{top}");
    assert_eq!(top["plan"]["top_k"], true, "{top}");
    assert_eq!(top["plan"]["text_matches"], 2, "{top}");
    let (_, narrowed) = api
        .call(
            Method::POST,
            "/api/v1/people/query",
            json!({"text_search": {"field": "bio", "query": "database"},
                   "filter": {"field": "age", "op": "gte", "value": 40},
                   "sort": {"field": "age"}}),
        )
        .await;
    let keys: Vec<&str> = narrowed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["p2", "p3"], "{narrowed}");
}
