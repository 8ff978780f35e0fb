//! A steady write load through the client Service while pods come and go, and the check that no
//! acknowledged write was lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What one write attempt got.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Its key's number (`k-<n>`, value `{"n": n}`).
    pub n: u64,
    /// When it was sent, from the writer's start.
    pub at: Duration,
    /// None when acknowledged (2xx), else what went wrong.
    pub error: Option<String>,
}

/// Every attempt of a [`Writer`], in order.
#[derive(Debug, Default)]
pub struct WriteLog {
    /// The attempts.
    pub attempts: Vec<Attempt>,
}

impl WriteLog {
    /// The numbers of the acknowledged writes.
    pub fn acknowledged(&self) -> Vec<u64> {
        self.attempts
            .iter()
            .filter(|a| a.error.is_none())
            .map(|a| a.n)
            .collect()
    }

    /// The failed attempts.
    pub fn failed(&self) -> Vec<&Attempt> {
        self.attempts.iter().filter(|a| a.error.is_some()).collect()
    }

    /// The longest time between a failed attempt's start and the next acknowledged one's: how long
    /// writers saw errors at a stretch.
    pub fn longest_outage(&self) -> Duration {
        let mut longest = Duration::ZERO;
        let mut since: Option<Duration> = None;
        for a in &self.attempts {
            match (&a.error, since) {
                (Some(_), None) => since = Some(a.at),
                (None, Some(start)) => {
                    longest = longest.max(a.at - start);
                    since = None;
                }
                _ => {}
            }
        }
        longest
    }

    /// Checks through `url` that every acknowledged write reads back with its value.
    pub async fn assert_all_present(&self, url: &str, token: &str, namespace: &str) {
        let http = reqwest::Client::new();
        for n in self.acknowledged() {
            let key_url = format!("{url}/api/v1/{namespace}/k-{n}");
            let mut last = String::new();
            let mut found = false;
            // A read may meet an election right after a failover; the value must appear.
            for _ in 0..50 {
                match http.get(&key_url).bearer_auth(token).send().await {
                    Ok(r) if r.status().is_success() => {
                        let body: Value = r.json().await.expect("a JSON answer");
                        assert_eq!(
                            body["value"]["n"], n,
                            "acknowledged write k-{n} reads back as {body}"
                        );
                        found = true;
                        break;
                    }
                    Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
                        panic!(
                            "acknowledged write k-{n} is lost: {}",
                            r.text().await.unwrap_or_default()
                        )
                    }
                    Ok(r) => {
                        last = format!("{} {}", r.status(), r.text().await.unwrap_or_default())
                    }
                    Err(e) => last = e.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(found, "acknowledged write k-{n} could not be read: {last}");
        }
    }
}

/// Writes `k-0`, `k-1`, ... one after another through a URL until stopped.
pub struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<WriteLog>,
}

impl Writer {
    /// Starts writing into `namespace` at `url` with `token`, numbering from `first`.
    pub fn start(url: &str, token: &str, namespace: &str, first: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let base = format!("{url}/api/v1/{namespace}");
        let token = token.to_string();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("an HTTP client");
            let started = Instant::now();
            let mut log = WriteLog::default();
            let mut n = first;
            while !flag.load(Ordering::Relaxed) {
                let at = started.elapsed();
                let result = http
                    .put(format!("{base}/k-{n}"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({ "value": { "n": n } }))
                    .send()
                    .await;
                let error = match result {
                    Ok(r) if r.status().is_success() => None,
                    Ok(r) => Some(format!(
                        "{} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => Some(e.to_string()),
                };
                if error.is_some() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                log.attempts.push(Attempt { n, at, error });
                n += 1;
            }
            log
        });
        Writer { stop, task }
    }

    /// Stops after the write in flight and returns the log.
    pub async fn stop(self) -> WriteLog {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the writer task")
    }
}
