//! Polling until something holds, with a deadline that fails the test.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long to sleep between two checks.
const POLL: Duration = Duration::from_millis(200);

/// Polls `check` every 200 ms until it returns Some or `secs` pass (then the test fails).
pub(crate) fn poll<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Polls `check` every 200 ms until it holds or `secs` pass.
pub fn wait_until(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    poll(secs, what, || check().then_some(()));
}

/// Polls the async `check` every 200 ms until it returns Some or `secs` pass.
pub async fn eventually_async<T, F>(secs: u64, what: &str, mut check: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
