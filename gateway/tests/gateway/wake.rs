//! Scale to zero without errors, in routes-file mode: a request for a suspended cluster is held
//! until the routes file says it runs (its member started meanwhile), then answered; past the
//! deadline it gets 503 `waking` with Retry-After; a cluster the table calls unavailable gets a
//! short hold for a fresher table (it may have just started), then 503.

use std::time::{Duration, Instant};

use koru_gateway_api::RouteState;
use koru_testkit::DataPlane;

use crate::support::{Gateway, error_code, http, route, write_routes};

#[tokio::test]
async fn a_request_for_a_suspended_cluster_is_held_until_it_runs_then_answered() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.json");
    let mut asleep = route("sleepy", &[]);
    asleep.state = RouteState::Suspended;
    write_routes(&routes, vec![asleep]);
    let gw = Gateway::start(&routes, &["--wake-deadline", "30s"]);
    let url = format!("{}/api/v1/users/first", gw.cluster("sleepy"));
    let start = Instant::now();
    let held = tokio::spawn({
        let url = url.clone();
        async move {
            http()
                .put(url)
                .json(&serde_json::json!({"value": "held"}))
                .send()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!held.is_finished(), "the request is held, not refused");
    // The cluster wakes: its member starts, then the table says it runs.
    let data = dir.path().join("data");
    let member = tokio::task::spawn_blocking(move || DataPlane::start(&data, &[]))
        .await
        .unwrap();
    write_routes(&routes, vec![route("sleepy", &[&member.url])]);
    let answer = held.await.unwrap();
    let waited = start.elapsed();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    let read = http().get(&url).send().await.unwrap();
    assert_eq!(read.status(), 200);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("koru_gateway_wake_duration_seconds_count{cluster=\"c-sleepy\"} 1"),
        "{metrics}"
    );
    eprintln!("held request answered after {waited:?}");
}

#[tokio::test]
async fn past_the_wake_deadline_a_held_request_gets_503_waking_and_unavailable_ones_soon() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.json");
    let mut asleep = route("sleepy", &[]);
    asleep.state = RouteState::Suspended;
    let mut waking = route("waking", &[]);
    waking.state = RouteState::Waking;
    let mut broken = route("broken", &[]);
    broken.state = RouteState::Unavailable;
    write_routes(&routes, vec![asleep, waking, broken]);
    let gw = Gateway::start(&routes, &["--wake-deadline", "1s"]);
    for name in ["sleepy", "waking"] {
        let start = Instant::now();
        let answer = http()
            .get(format!("{}/api/v1/status", gw.cluster(name)))
            .send()
            .await
            .unwrap();
        let waited = start.elapsed();
        assert_eq!(answer.headers()["retry-after"], "5");
        assert_eq!(error_code(answer).await, (503, "waking".into()), "{name}");
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
    }
    let start = Instant::now();
    let answer = http()
        .get(format!("{}/api/v1/status", gw.cluster("broken")))
        .send()
        .await
        .unwrap();
    // Held no longer than the wake deadline (1 s here; 3 s at most otherwise).
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    assert!(answer.headers().contains_key("retry-after"));
    assert_eq!(error_code(answer).await, (503, "unavailable".into()));
}

#[tokio::test]
async fn a_cluster_that_starts_just_after_the_last_sync_is_served_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let member = DataPlane::start(&data, &[]);
    let routes = dir.path().join("routes.json");
    // The table still says the cluster is being created, while clients already use it.
    let mut starting = route("fresh", &[&member.url]);
    starting.state = RouteState::Unavailable;
    write_routes(&routes, vec![starting]);
    let gw = Gateway::start(&routes, &[]);
    let url = format!("{}/api/v1/status", gw.cluster("fresh"));
    let asked = tokio::spawn(async move { http().get(url).send().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    write_routes(&routes, vec![route("fresh", &[&member.url])]);
    let answer = asked.await.unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
}

#[tokio::test]
async fn a_cluster_suspended_since_the_last_sync_is_woken_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut member = DataPlane::start(&data, &[]);
    let routes = dir.path().join("routes.json");
    write_routes(&routes, vec![route("dozy", &[&member.url])]);
    let gw = Gateway::start(&routes, &["--wake-deadline", "30s"]);
    let url = format!("{}/api/v1/users/alice", gw.cluster("dozy"));
    let put = http()
        .put(&url)
        .json(&serde_json::json!({"value": "Alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    // The member stops (the cluster is being suspended) while this replica's table and health
    // still say it runs: the next request reaches no member.
    member.process.kill();
    let asked = tokio::spawn({
        let url = url.clone();
        async move { http().get(url).send().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut asleep = route("dozy", &[]);
    asleep.state = RouteState::Suspended;
    write_routes(&routes, vec![asleep]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!asked.is_finished(), "the request is held, not refused");
    // It wakes on the same data.
    let member = tokio::task::spawn_blocking(move || DataPlane::start(&data, &[]))
        .await
        .unwrap();
    write_routes(&routes, vec![route("dozy", &[&member.url])]);
    let answer = asked.await.unwrap();
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        (status.as_u16(), &body["value"]),
        (200, &serde_json::json!("Alice")),
        "{body}"
    );
}
