//! The published `kdelta` CLI (koru-delta 3.0.1, installed by `scripts/install-kdelta.sh`), which
//! the compatibility tests run against our data plane, directly and through the gateway.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The kdelta binary (`KORU_KDELTA`, else its place under `~/.cache`), or None after saying so
/// loudly when it is missing; under `CI=true` a missing binary fails the test instead.
pub fn kdelta_binary() -> Option<PathBuf> {
    let path = std::env::var_os("KORU_KDELTA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/koru-delta-cloud/kdelta/bin/kdelta")
        });
    if path.is_file() {
        return Some(path);
    }
    let message = format!(
        "kdelta not found at {}: run scripts/install-kdelta.sh",
        path.display()
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("\n!!! SKIPPING the kdelta test: {message} !!!\n");
    None
}

/// Runs `kdelta --url <url> <args>`: (success, stdout + stderr).
pub fn run_kdelta(kdelta: &Path, url: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(kdelta)
        .arg("--url")
        .arg(url)
        .args(args)
        .env("NO_COLOR", "1")
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("running kdelta");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
