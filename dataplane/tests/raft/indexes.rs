//! Value indexes on a replicated cluster: every member answers the same lookups (now and as of
//! a moment), and unique writers racing through different members see exactly one win, since
//! each member decides the unique check alike as it applies the entry.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::client;
use crate::common::cluster::Cluster;
use crate::support::{get_json, post_json};

/// The keys member `url` finds under `index` = `value`, as of `at` when given.
async fn by(
    http: &reqwest::Client,
    url: &str,
    index: &str,
    value: &str,
    at: Option<&str>,
) -> Vec<String> {
    let mut lookup = format!("{url}/api/v1/users/by/{index}/{value}");
    if let Some(at) = at {
        lookup = format!("{lookup}?at={at}");
    }
    let body = get_json(http, lookup).await;
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_answer_lookups_alike_and_one_of_racing_unique_writers_wins() {
    let cluster = Cluster::start(3);
    let http = client();
    let leader = cluster.leader(&http).await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let mut first = None;
    for i in 0..30u64 {
        let body = json!({"value": {"city": format!("c{}", i % 3), "email": format!("u{i}@")}});
        let resp = http
            .put(format!("{}/api/v1/users/u{i}", cluster.url(1 + i % 3)))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let written: Value = resp.json().await.unwrap();
        first.get_or_insert(written["timestamp"].as_str().unwrap().to_string());
    }
    // Defined through a follower (forwarded to the leader), built on every member.
    let (status, body) = post_json(
        &http,
        format!("{}/api/v1/users/indexes", cluster.url(follower)),
        Some(json!({"field": "email", "unique": true})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = post_json(
        &http,
        format!("{}/api/v1/users/indexes", cluster.url(leader)),
        Some(json!({"field": "city"})),
    )
    .await;
    assert_eq!(status, 201);
    for id in 1..=3 {
        for _ in 0..200 {
            let list = get_json(&http, format!("{}/api/v1/users/indexes", cluster.url(id))).await;
            let list = list["indexes"].as_array().unwrap().clone();
            if list.len() == 2 && list.iter().all(|i| i["status"] == "ready") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Racing writers of one email through every member: exactly one wins.
    let racers: Vec<_> = (0..18u64)
        .map(|i| {
            let http = http.clone();
            let url = format!("{}/api/v1/users/r{i}", cluster.url(1 + i % 3));
            tokio::spawn(async move {
                let resp = http
                    .put(url)
                    .json(&json!({"value": {"city": "c9", "email": "race@"}}))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                (status, resp.text().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for r in racers {
        answers.push(r.await.unwrap());
    }
    assert_eq!(
        answers.iter().filter(|(s, _)| *s == 200).count(),
        1,
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|(s, body)| *s == 200 || (*s == 409 && body.contains("unique_violation"))),
        "{answers:?}"
    );
    // A taken email is refused through a follower too.
    let resp = http
        .put(format!("{}/api/v1/users/late", cluster.url(follower)))
        .json(&json!({"value": {"email": "u3@"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let moved = http
        .put(format!("{}/api/v1/users/u1", cluster.url(leader)))
        .json(&json!({"value": {"city": "c2", "email": "u1@"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    let moved: Value = moved.json().await.unwrap();
    let then = first.unwrap();
    let now = moved["timestamp"].as_str().unwrap().to_string();
    let mut answers = Vec::new();
    for id in 1..=3 {
        let url = cluster.url(id);
        let mut seen = Vec::new();
        for v in ["c0", "c1", "c2", "c9"] {
            seen.push(by(&http, &url, "city", v, None).await);
            seen.push(by(&http, &url, "city", v, Some(&then)).await);
            seen.push(by(&http, &url, "city", v, Some(&now)).await);
        }
        seen.push(by(&http, &url, "email", "race@", None).await);
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
    assert_eq!(answers[0].last().unwrap().len(), 1);
    assert_eq!(answers[0][1], ["u0"], "c0 at the first write");
    assert!(answers[0][6].contains(&"u1".to_string()), "u1 moved to c2");
}
