//! The dashboard's journeys in a real headless Chromium (Debian's `chromium`, driven by
//! playwright-core from `dashboard/tests/browser/journeys.cjs`) against the real
//! `koru-controlplane dev` process: sign up, create a free cluster, see it running, use its
//! connection snippet, an API token created and revoked, the free quota, a backup restored into
//! a new cluster. Screenshots of each page go to `$CARGO_TARGET_DIR/dashboard-screenshots`.
//!
//! Without node or chromium the test fails under `CI=true` and is skipped loudly elsewhere.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use koru_testkit::{Process, ProcessSpec, root, run_browser_journeys};

use super::common;

/// The longest the journeys may take; they take about a minute (the explorer's included), more on a
/// loaded CI machine.
const JOURNEY_TIMEOUT: Duration = Duration::from_secs(300);

/// The `koru-controlplane dev` process; SIGKILLed when dropped.
struct Server {
    process: Process,
    url: String,
    data_dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let data_dir = tempfile::tempdir().unwrap();
        let process = Process::start(
            ProcessSpec::controlplane(env!("CARGO_BIN_EXE_koru-controlplane"))
                .args([
                    "dev",
                    "--listen",
                    "127.0.0.1:0",
                    "--gateway-listen",
                    "127.0.0.1:0",
                    "--data-dir",
                ])
                .arg(data_dir.path())
                .env("KORU_DATAPLANE_BIN", common::dataplane_bin())
                .env("KORU_LOG", "warn"),
        );
        Server {
            url: process.url().to_string(),
            process,
            data_dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.process.kill();
        // Its clusters are data planes that outlive it by design; they go with the test.
        common::kill_dataplanes_under(self.data_dir.path());
    }
}

/// Where the screenshots go.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    target.join("dashboard-screenshots")
}

#[test]
fn the_journeys_work_in_a_real_chromium() {
    let server = Server::start();
    let shots = screenshot_dir();
    let _ = std::fs::remove_dir_all(&shots);
    let started = Instant::now();
    let Some(run) = run_browser_journeys(
        &[
            ("KORU_URL", &server.url),
            ("KORU_SCREENSHOTS", &shots.display().to_string()),
        ],
        JOURNEY_TIMEOUT,
    ) else {
        return;
    };
    println!("{}", run.stdout);
    eprintln!("{}", run.stderr);
    assert!(
        !run.timed_out,
        "the journeys took longer than {JOURNEY_TIMEOUT:?}"
    );
    assert!(run.success, "the browser journeys failed: {}", run.stderr);
    let taken = std::fs::read_dir(&shots)
        .map(|d| d.filter_map(Result::ok).count())
        .unwrap_or(0);
    assert!(taken >= 12, "{taken} screenshots in {}", shots.display());
    println!(
        "browser journeys: {:.1} s, {taken} screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
}
