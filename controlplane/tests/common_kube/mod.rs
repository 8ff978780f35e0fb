//! Helpers for the control plane's tests against the real API server of `scripts/testenv.sh`:
//! kubectl, the committed CRDs, the real `koru-operator` binary as a child process, and pods
//! marked ready through the API (the test control plane has no kubelet). Adapted from
//! `operator/tests/common/mod.rs`.

// Each test binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

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

/// `kubectl` output (trimmed), or None when it fails (e.g. the object does not exist).
pub fn get(kubeconfig: &str, args: &[&str]) -> Option<String> {
    let (ok, out) = kubectl(kubeconfig, args, "");
    ok.then(|| out.trim().to_string())
}

/// A jsonpath of one object in `ns`, or None when the object does not exist.
pub fn field(kubeconfig: &str, ns: &str, object: &str, jsonpath: &str) -> Option<String> {
    get(
        kubeconfig,
        &[
            "get",
            object,
            "-n",
            ns,
            "-o",
            &format!("jsonpath={jsonpath}"),
        ],
    )
}

/// Installs the committed CRDs (server-side apply) and waits until the API server serves them.
pub fn install_crds(kubeconfig: &str) {
    let crds = std::fs::read_to_string(root().join("charts/koru-operator/crds/koru-crds.yaml"))
        .expect("reading the committed CRDs");
    let (ok, out) = kubectl(
        kubeconfig,
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &crds,
    );
    assert!(ok, "{out}");
    let (ok, out) = kubectl(
        kubeconfig,
        &[
            "wait",
            "--for=condition=Established",
            "crd/koruclusters.koru.dev",
            "crd/korubackups.koru.dev",
            "--timeout=60s",
        ],
        "",
    );
    assert!(ok, "{out}");
}

/// A name no other test (nor an earlier run) uses: `<stem>-<8 hex digits>`.
pub fn unique(stem: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{stem}-{}", &id[..8])
}

/// Deletes a namespace when dropped, so a failed test leaves nothing behind either.
pub struct NamespaceGuard {
    /// The kubeconfig to delete it through.
    pub kubeconfig: String,
    /// The namespace.
    pub name: String,
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        kubectl(
            &self.kubeconfig,
            &[
                "delete",
                "namespace",
                &self.name,
                "--ignore-not-found",
                "--wait=false",
            ],
            "",
        );
    }
}

/// The `koru-operator` binary beside this test's target directory, built when missing or older
/// than the operator's sources (a controlplane-only `cargo test` does not build it).
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
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .args(["build", "-p", "koru-operator", "--bin", "koru-operator"])
            .current_dir(root())
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

/// The real operator as a child process, killed when dropped.
pub struct Operator(pub Child);

impl Operator {
    /// Starts `koru-operator` against `kubeconfig`, watching only `namespace` (tests running side
    /// by side each have their own operator), with a metrics port of its own.
    pub fn start(kubeconfig: &str, namespace: &str) -> Operator {
        Operator(
            Command::new(operator_binary())
                .args([
                    "--metrics-addr",
                    "127.0.0.1:0",
                    "--watch-namespace",
                    namespace,
                ])
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
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `check` every 200 ms until it returns Some or `secs` pass.
pub async fn eventually<T, F>(secs: u64, what: &str, mut check: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Option<T>>,
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
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Marks every existing pod of a cluster Running and Ready through the API, as a kubelet would
/// (no kubelet runs in the test control plane); returns how many are ready.
pub fn mark_pods_ready(kubeconfig: &str, ns: &str, cluster: &str) -> usize {
    let names = get(
        kubeconfig,
        &[
            "get",
            "pods",
            "-n",
            ns,
            "-l",
            &format!("app.kubernetes.io/instance={cluster}"),
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{\" \"}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
        ],
    )
    .unwrap_or_default();
    let mut marked = 0;
    for line in names.lines() {
        let mut parts = line.split_whitespace();
        let Some(pod) = parts.next() else { continue };
        if parts.next() == Some("True") {
            marked += 1;
            continue;
        }
        let status = r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
        let (ok, _) = kubectl(
            kubeconfig,
            &[
                "patch",
                "pod",
                pod,
                "-n",
                ns,
                "--subresource=status",
                "--type=merge",
                "-p",
                status,
            ],
            "",
        );
        if ok {
            marked += 1;
        }
    }
    marked
}
