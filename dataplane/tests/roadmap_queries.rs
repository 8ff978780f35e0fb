//! The roadmap's query-engine snippets (KoruDelta v2.2: joins, the aggregation pipeline,
//! secondary indexes, full-text search), run as written against the embedded store, with the
//! answers they must give.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use std::sync::Arc;
use std::time::Duration;

use koru_dataplane::indexes::IndexType;
use koru_dataplane::metrics::Metrics;
use koru_dataplane::query::{Aggregation, Filter, Query};
use koru_dataplane::{Store, StoreConfig, WriteOp};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error>;

fn open(dir: &std::path::Path) -> Store {
    let metrics = Arc::new(Metrics::default());
    Store::open(StoreConfig::new(dir), Arc::clone(&metrics.store))
        .unwrap()
        .0
}

async fn put(db: &Store, namespace: &str, key: &str, value: Value) {
    let raw = serde_json::value::to_raw_value(&value).unwrap();
    db.write(vec![WriteOp::put(namespace, key, raw)])
        .await
        .unwrap();
}

fn keys(answer: &koru_dataplane::query::QueryAnswer) -> Vec<String> {
    let body = serde_json::to_value(answer).unwrap();
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_roadmaps_index_snippet_finds_a_user_by_email() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path());
    put(&db, "users", "alice", json!({"email": "alice@example.com"})).await;
    put(&db, "users", "bob", json!({"email": "bob@example.com"})).await;
    put(&db, "orders", "o1", json!({"status": "open"})).await;

    // Create index
    db.create_index("users", "email", IndexType::Unique).await?;
    db.create_index("orders", "status", IndexType::NonUnique)
        .await?;

    // Query uses index automatically
    let user = db
        .get_by_index("users", "email", "alice@example.com")
        .await?;

    assert_eq!(user.len(), 1);
    assert_eq!(user[0].key, "alice");
    assert_eq!(user[0].value["email"], "alice@example.com");
    Ok(())
}

#[tokio::test]
async fn the_roadmaps_join_snippet_finds_the_orders_of_premium_users() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path());
    put(&db, "users", "u1", json!({"id": "u1", "status": "premium"})).await;
    put(&db, "users", "u2", json!({"id": "u2", "status": "free"})).await;
    put(&db, "orders", "o1", json!({"user_id": "u1", "amount": 250})).await;
    put(&db, "orders", "o2", json!({"user_id": "u1", "amount": 50})).await;
    put(&db, "orders", "o3", json!({"user_id": "u2", "amount": 500})).await;

    // Cross-namespace lookups
    let query = Query::new()
        .join("orders", "user_id", "users", "id")
        .filter(Filter::eq("users:status", "premium"))
        .filter(Filter::gt("orders:amount", 100));

    let answer = db.query("orders", query).await?;
    assert_eq!(
        keys(&answer),
        ["o1"],
        "only o1 is a premium user's order over 100"
    );
    Ok(())
}

#[tokio::test]
async fn the_roadmaps_aggregation_snippet_totals_sales_by_region() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path());
    for (key, region, amount, discount, timestamp) in [
        ("s1", "eu", 100, 0.1, "2026-01-01"),
        ("s2", "eu", 300, 0.3, "2026-03-01"),
        ("s3", "us", 50, 0.0, "2026-02-01"),
    ] {
        let sale = json!({"region": region, "amount": amount, "discount": discount,
                          "timestamp": timestamp});
        put(&db, "sales", key, sale).await;
    }

    let results = db
        .query(
            "sales",
            Query::new()
                .group_by("region")
                .aggregate(
                    Aggregation::pipeline()
                        .sum("amount")
                        .avg("discount")
                        .count()
                        .min("timestamp")
                        .max("timestamp"),
                )
                .sort_by("sum_amount", false),
        )
        .await?;

    let groups = serde_json::to_value(results.groups.unwrap())?;
    assert_eq!(groups[0]["region"], "eu", "largest sum first: {groups}");
    assert_eq!(groups[0]["sum_amount"], 400);
    assert!((groups[0]["avg_discount"].as_f64().unwrap() - 0.2).abs() < 1e-9);
    assert_eq!(groups[0]["count"], 2);
    assert_eq!(groups[0]["min_timestamp"], "2026-01-01");
    assert_eq!(groups[0]["max_timestamp"], "2026-03-01");
    assert_eq!(groups[1]["region"], "us");
    assert_eq!(groups[1]["sum_amount"], 50);
    Ok(())
}

#[tokio::test]
async fn the_roadmaps_text_search_snippet_ranks_by_relevance() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path());
    put(
        &db,
        "docs",
        "d1",
        json!({"content": "a database tuned for performance"}),
    )
    .await;
    put(
        &db,
        "docs",
        "d2",
        json!({"content": "a slow database with poor performance"}),
    )
    .await;
    put(
        &db,
        "docs",
        "d3",
        json!({"content": "database performance, database performance"}),
    )
    .await;
    put(&db, "docs", "d4", json!({"content": "gardening"})).await;
    db.create_index("docs", "content", IndexType::Text).await?;
    // The text index is built in the background; it answers once it has caught up.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !db.text_catch_up("docs", "content", Duration::from_secs(1)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the text index never caught up"
        );
    }

    // Index text fields
    let query = Query::new()
        .text_search("content", "database +performance -slow")
        .sort_by("_relevance", false);

    let answer = db.query("docs", query).await?;
    assert_eq!(
        keys(&answer),
        ["d3", "d1"],
        "most relevant first, d2 excluded by -slow"
    );
    Ok(())
}
