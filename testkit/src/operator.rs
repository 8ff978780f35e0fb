//! The real `koru-operator` binary as a child process of a test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::SystemTime;

use crate::root;
use crate::wait::poll;

/// The operator as a child process, killed when dropped.
pub struct Operator(pub Child);

impl Operator {
    /// Starts the operator `binary` against `kubeconfig`, watching only `namespace` (so tests
    /// running side by side each have their own operator) with a metrics port of its own.
    pub fn start_with(binary: &Path, kubeconfig: &str, namespace: &str) -> Operator {
        Operator::start_with_args(binary, kubeconfig, namespace, &[])
    }

    /// [`Operator::start_with`] with more command-line arguments.
    pub fn start_with_args(
        binary: &Path,
        kubeconfig: &str,
        namespace: &str,
        args: &[&str],
    ) -> Operator {
        Operator(
            Command::new(binary)
                .args([
                    "--metrics-addr",
                    "127.0.0.1:0",
                    "--watch-namespace",
                    namespace,
                ])
                .args(args)
                .env("KUBECONFIG", kubeconfig)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("starting koru-operator"),
        )
    }

    /// Fails the test at once when the operator has exited, instead of at a later timeout.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.0.try_wait() {
            panic!("koru-operator exited with {status}; its log is above");
        }
    }

    /// Kills the process at once (SIGKILL), as a crash or an evicted pod would.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Peak resident memory of the process in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))
            .expect("reading the operator's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc status")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 200 ms until it returns Some or `secs` pass, while the operator runs.
pub fn eventually<T>(
    operator: &mut Operator,
    secs: u64,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    poll(secs, what, || {
        let found = check();
        if found.is_none() {
            operator.assert_running();
        }
        found
    })
}

/// The `koru-operator` binary beside the running test's target directory, built when missing or
/// older than the operator's sources (for tests of other crates: a `cargo test -p` of those does
/// not build it; the operator's own tests use `CARGO_BIN_EXE_koru-operator`).
pub fn operator_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    // <target>/debug/deps/<test> -> <target>/debug/koru-operator
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps")
        .join("koru-operator");
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if built.is_none_or(|b| newest_source(&root().join("operator")) > b) {
        let status = crate::cargo()
            .args(["build", "-p", "koru-operator", "--bin", "koru-operator"])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building koru-operator failed");
    }
    assert!(bin.is_file(), "no koru-operator at {}", bin.display());
    bin
}

/// The newest modification time of the operator's sources and manifest.
fn newest_source(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut stack = vec![dir.join("src"), dir.join("Cargo.toml")];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(modified) = meta.modified() {
            newest = newest.max(modified);
        }
    }
    newest
}
