//! Helpers every topic uses: writes and reads through a member, concurrent writers that record
//! what was acknowledged, and waiting until one member holds exactly another's history.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::common::cluster::Cluster;

/// An acknowledged write: key, value, when its request was sent, when it was acknowledged.
pub type Acked = (String, u64, Instant, Instant);

/// PUTs `{"value": value}` through member `id`; the status, or None if no answer came.
pub async fn put(http: &reqwest::Client, cluster_url: &str, key: &str, value: u64) -> Option<u16> {
    let resp = http
        .put(format!("{cluster_url}/api/v1/acked/{key}"))
        .json(&json!({ "value": value }))
        .send()
        .await
        .ok()?;
    Some(resp.status().as_u16())
}

/// POSTs `body` (or nothing) to `url`; the status and the JSON answer.
pub async fn post_json(http: &reqwest::Client, url: String, body: Option<Value>) -> (u16, Value) {
    let mut req = http.post(url);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON body"))
}

/// GETs `url` and reads the JSON answer.
pub async fn get_json(http: &reqwest::Client, url: String) -> Value {
    http.get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("a JSON body")
}

/// Latest value of every key in a change feed.
pub fn state_of(feed: &[Value]) -> BTreeMap<String, Value> {
    let mut state = BTreeMap::new();
    for record in feed {
        for op in record["ops"].as_array().expect("ops") {
            let key = op["key"].as_str().expect("key").to_owned();
            state.insert(key, op.get("value").cloned().unwrap_or(Value::Null));
        }
    }
    state
}

/// Clients writing unique keys (`<prefix><client>-<n>`) round-robin through `urls` until `stop`;
/// every acknowledged write is recorded in `acked`.
pub fn spawn_writers(
    http: &reqwest::Client,
    urls: &[String],
    clients: u64,
    prefix: &'static str,
    acked: &Arc<Mutex<Vec<Acked>>>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|t| {
            let (http, urls, acked, stop) = (
                http.clone(),
                urls.to_vec(),
                Arc::clone(acked),
                Arc::clone(stop),
            );
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let key = format!("{prefix}{t}-{i}");
                    let url = &urls[((t + i) % urls.len() as u64) as usize];
                    let sent = Instant::now();
                    match put(&http, url, &key, i).await {
                        Some(200) => acked.lock().push((key, i, sent, Instant::now())),
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            })
        })
        .collect()
}

/// Waits until member `id` holds exactly member `reference`'s history.
pub async fn converges(cluster: &Cluster, http: &reqwest::Client, id: u64, reference: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for member in [id, reference] {
            let probe = get_json(
                http,
                format!("{}/api/v1/changes?since=0&limit=1", cluster.url(member)),
            )
            .await;
            assert!(
                probe.get("error").is_none(),
                "member {member}: {probe}\n{}",
                cluster.logs()
            );
        }
        let want = cluster.changes(http, reference).await;
        if cluster.changes(http, id).await == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "member {id} did not catch up with member {reference}:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
