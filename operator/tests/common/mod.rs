//! Helpers for the operator's tests against the real API server started by `scripts/testenv.sh`.

// Each test binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// The testenv kubeconfig, or None (after saying so) outside CI when none is running.
pub fn kubeconfig() -> Option<String> {
    match std::env::var("KUBECONFIG") {
        Ok(k) if Path::new(&k).is_file() => Some(k),
        _ => {
            let message = "no KUBECONFIG: start the test control plane with `eval \"$(scripts/testenv.sh up)\"` (make test does)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
            eprintln!("\n!!! SKIPPING the API server test: {message} !!!\n");
            None
        }
    }
}

/// Runs kubectl with `stdin`; returns (success, stdout + stderr).
pub fn kubectl(kubeconfig: &str, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("writing to kubectl");
    let out = child.wait_with_output().expect("kubectl output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
