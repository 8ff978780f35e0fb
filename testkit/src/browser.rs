//! The dashboard's browser journeys (`dashboard/tests/browser/journeys.cjs`, playwright-core in
//! Debian's headless Chromium) run from a test, with a deadline.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::root;

/// What a run of the journeys printed, and how it ended.
#[derive(Debug)]
pub struct JourneyRun {
    /// Whether the driver exited 0.
    pub success: bool,
    /// Whether the deadline killed it.
    pub timed_out: bool,
    /// Its standard output (one line per step).
    pub stdout: String,
    /// Its standard error (the failed step).
    pub stderr: String,
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

/// Runs the journeys with `env` added (at least `KORU_URL` and `KORU_SCREENSHOTS`), killing them
/// after `timeout`. None (after saying so loudly) when node or Chromium is missing outside CI;
/// under `CI=true` a missing one fails the test.
pub fn run_browser_journeys(env: &[(&str, &str)], timeout: Duration) -> Option<JourneyRun> {
    let (node, chromium, node_modules) = match tools() {
        Ok(t) => t,
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the browser journeys cannot run: {why}"
            );
            eprintln!("\n!!! SKIPPING the dashboard's browser journeys: {why} !!!\n");
            return None;
        }
    };
    let mut driver = Command::new(node);
    driver
        .arg(root().join("dashboard/tests/browser/journeys.cjs"))
        .env("NODE_PATH", &node_modules)
        .env("KORU_CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        driver.env(name, value);
    }
    let mut driver = driver.spawn().expect("starting node");
    let mut stdout = driver.stdout.take().expect("the driver's stdout");
    let mut stderr = driver.stderr.take().expect("the driver's stderr");
    let reader = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let pid = driver.id();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return false;
            }
        }
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        true
    });
    let mut out = String::new();
    let _ = stdout.read_to_string(&mut out);
    let status = driver.wait().expect("waiting for the driver");
    Some(JourneyRun {
        success: status.success(),
        timed_out: watchdog.join().unwrap_or(false),
        stdout: out,
        stderr: reader.join().unwrap_or_default(),
    })
}
