//! kubectl against the real test API server: the kubeconfig, objects, the committed CRDs,
//! namespaces of one test each, and pods marked ready through the API.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::root;

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

/// Applies YAML, failing the test with kubectl's message when refused.
pub fn apply(kubeconfig: &str, ns: &str, yaml: &str) {
    let (ok, out) = kubectl(kubeconfig, &["apply", "-n", ns, "-f", "-"], yaml);
    assert!(ok, "kubectl apply refused:\n{yaml}\n{out}");
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
    wait_for_crds(kubeconfig);
}

/// Waits (at most 60 s) until the API server serves both CRDs, KoruCluster and KoruBackup.
pub fn wait_for_crds(kubeconfig: &str) {
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
