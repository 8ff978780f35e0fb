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

/// The operator as a child process, killed when dropped.
pub struct Operator(pub std::process::Child);

impl Operator {
    /// Starts `koru-operator` against `kubeconfig`, watching only `namespace` (so tests running
    /// side by side each have their own operator) with a metrics port of its own.
    pub fn start(kubeconfig: &str, namespace: &str) -> Operator {
        Operator(
            Command::new(env!("CARGO_BIN_EXE_koru-operator"))
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        operator.assert_running();
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `kubectl` output (trimmed), or None when it fails (e.g. the object does not exist).
pub fn get(kubeconfig: &str, args: &[&str]) -> Option<String> {
    let (ok, out) = kubectl(kubeconfig, args, "");
    ok.then(|| out.trim().to_string())
}

/// A jsonpath of one object, or None when the object does not exist.
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

/// Applies YAML, failing the test with kubectl's message when refused.
pub fn apply(kubeconfig: &str, ns: &str, yaml: &str) {
    let (ok, out) = kubectl(kubeconfig, &["apply", "-n", ns, "-f", "-"], yaml);
    assert!(ok, "kubectl apply refused:\n{yaml}\n{out}");
}

/// Installs the committed CRDs and waits until the API server serves them.
pub fn install_crds(kubeconfig: &str) {
    let crds = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/koru-operator/crds/koru-crds.yaml"
    ))
    .expect("reading the committed CRDs");
    let (ok, out) = kubectl(
        kubeconfig,
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &crds,
    );
    assert!(ok, "{out}");
    for crd in ["crd/koruclusters.koru.dev", "crd/korubackups.koru.dev"] {
        let (ok, out) = kubectl(
            kubeconfig,
            &["wait", "--for=condition=Established", crd, "--timeout=60s"],
            "",
        );
        assert!(ok, "{out}");
    }
}

/// Creates a fresh namespace for one test (deleting what an earlier run left behind).
pub fn fresh_namespace(kubeconfig: &str, ns: &str) {
    kubectl(
        kubeconfig,
        &["delete", "namespace", ns, "--wait=true", "--timeout=120s"],
        "",
    );
    let (ok, out) = kubectl(kubeconfig, &["create", "namespace", ns], "");
    assert!(ok, "{out}");
}

/// A KoruCluster manifest with the given spec lines (indented by the caller under `spec:`).
pub fn cluster_yaml(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: koru.dev/v1alpha1\nkind: KoruCluster\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

/// Marks every existing pod of a cluster Running and Ready through the API, as a kubelet would
/// (no kubelet runs in the test control plane); returns how many it marked.
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
