//! The dashboard's journeys in a real headless Chromium (Debian's `chromium`, driven by
//! playwright-core from `dashboard/tests/browser/journeys.cjs`) against the real
//! `koru-controlplane dev` process: sign up, create a free cluster, see it running, use its
//! connection snippet, an API token created and revoked, the free quota, a backup restored into
//! a new cluster. Screenshots of each page go to `$CARGO_TARGET_DIR/dashboard-screenshots`.
//!
//! Without node or chromium the test fails under `CI=true` and is skipped loudly elsewhere.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use koru_testkit::{Process, ProcessSpec};

use super::common;

/// The longest the journeys may take; they take well under a minute.
const JOURNEY_TIMEOUT: Duration = Duration::from_secs(150);

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
                .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
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

/// A program on the PATH (or at an absolute path), if present.
fn find(program: &str) -> Option<PathBuf> {
    let path = Path::new(program);
    if path.is_absolute() {
        return path.exists().then(|| path.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where the screenshots go.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    target.join("dashboard-screenshots")
}

/// Node, Chromium and the driver's npm packages, or why not.
fn tools() -> Result<(PathBuf, PathBuf, String), String> {
    let chromium_name = std::env::var("KORU_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let chromium = find(&chromium_name).ok_or_else(|| {
        format!("no {chromium_name}: scripts/system-deps.sh installs Debian's chromium")
    })?;
    let node = find("node").ok_or("no node: install Debian's nodejs")?;
    let out = Command::new("bash")
        .arg(root().join("scripts/browser-test-deps.sh"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run scripts/browser-test-deps.sh: {e}"))?;
    if !out.status.success() {
        return Err("scripts/browser-test-deps.sh failed".into());
    }
    let node_modules = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((node, chromium, node_modules))
}

#[test]
fn the_journeys_work_in_a_real_chromium() {
    let (node, chromium, node_modules) = match tools() {
        Ok(t) => t,
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the browser test cannot run: {why}"
            );
            eprintln!("\n!!! SKIPPING the dashboard's browser journeys: {why} !!!\n");
            return;
        }
    };
    let server = Server::start();
    let shots = screenshot_dir();
    let _ = std::fs::remove_dir_all(&shots);
    let started = Instant::now();
    let mut driver = Command::new(node)
        .arg(root().join("dashboard/tests/browser/journeys.cjs"))
        .env("NODE_PATH", &node_modules)
        .env("KORU_URL", &server.url)
        .env("KORU_CHROMIUM", &chromium)
        .env("KORU_SCREENSHOTS", &shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting node");
    let (mut out, mut err) = (String::new(), String::new());
    let mut stdout = driver.stdout.take().unwrap();
    let mut stderr = driver.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let watchdog_pid = driver.id();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + JOURNEY_TIMEOUT;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            if !Path::new(&format!("/proc/{watchdog_pid}")).exists() {
                return false;
            }
        }
        let _ = Command::new("kill")
            .args(["-9", &watchdog_pid.to_string()])
            .status();
        true
    });
    let _ = stdout.read_to_string(&mut out);
    let status = driver.wait().unwrap();
    err.push_str(&reader.join().unwrap_or_default());
    let timed_out = watchdog.join().unwrap_or(false);
    println!("{out}");
    eprintln!("{err}");
    assert!(
        !timed_out,
        "the journeys took longer than {JOURNEY_TIMEOUT:?}"
    );
    assert!(status.success(), "the browser journeys failed: {err}");
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
