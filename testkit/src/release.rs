//! A rendered chart's release on the real test API server: its own namespace under the
//! `restricted` Pod Security Standard, its objects applied as helm would, and what its
//! ServiceAccount may do.

use crate::kubectl::{install_crds, kubectl};
use crate::wait::wait_until;

/// Deletes what an earlier run of a release left: its namespace (waiting until it is gone) and
/// its cluster-scoped RBAC, the ClusterRole and ClusterRoleBinding named `fullname`.
pub fn delete_release_leftovers(kubeconfig: &str, namespace: &str, fullname: &str) {
    kubectl(
        kubeconfig,
        &[
            "delete",
            "namespace",
            namespace,
            "--ignore-not-found",
            "--wait=true",
            "--timeout=120s",
        ],
        "",
    );
    kubectl(
        kubeconfig,
        &[
            "delete",
            &format!("clusterrole/{fullname}"),
            &format!("clusterrolebinding/{fullname}"),
            "--ignore-not-found",
        ],
        "",
    );
}

/// Creates `namespace` enforcing the `restricted` Pod Security Standard, so pods are created in
/// it only if their security settings meet it.
fn restricted_namespace(kubeconfig: &str, namespace: &str) {
    let manifest = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n  labels:\n    pod-security.kubernetes.io/enforce: restricted\n    pod-security.kubernetes.io/warn: restricted\n"
    );
    let (ok, out) = kubectl(kubeconfig, &["apply", "-f", "-"], &manifest);
    assert!(ok, "{out}");
}

/// Installs rendered chart output as `helm install` would on a clean slate: removes what an
/// earlier run of the release left ([`delete_release_leftovers`]), creates its namespace under
/// the `restricted` Pod Security Standard, installs the CRDs from `crds/` first and then applies
/// the templates; returns kubectl's output of the last (with any Pod Security warnings).
pub fn install_rendered(
    kubeconfig: &str,
    namespace: &str,
    fullname: &str,
    rendered: &str,
) -> String {
    delete_release_leftovers(kubeconfig, namespace, fullname);
    restricted_namespace(kubeconfig, namespace);
    install_crds(kubeconfig);
    apply_rendered(kubeconfig, rendered)
}

/// Applies rendered chart output server-side as helm's field manager; returns kubectl's output
/// (with any Pod Security warnings), failing the test when the API server refuses.
fn apply_rendered(kubeconfig: &str, rendered: &str) -> String {
    let (ok, out) = kubectl(
        kubeconfig,
        &["apply", "--server-side", "--field-manager=helm", "-f", "-"],
        rendered,
    );
    assert!(ok, "applying the rendered chart failed:\n{out}");
    out
}

/// Waits (at most 60 s) until `count` pods match `selector` in `namespace`: the Deployment
/// controller creates them only when the namespace admits them (without a scheduler they stay
/// Pending).
pub fn wait_for_pods(kubeconfig: &str, namespace: &str, selector: &str, count: usize) {
    wait_until(60, &format!("the Deployment's {count} pods"), || {
        let (ok, out) = kubectl(
            kubeconfig,
            &["get", "pods", "-n", namespace, "-l", selector, "-o", "name"],
            "",
        );
        ok && out.lines().filter(|l| l.starts_with("pod/")).count() == count
    });
}

/// `kubectl auth can-i` as the ServiceAccount `account` of `namespace`.
pub fn can_i_as(kubeconfig: &str, namespace: &str, account: &str, args: &[&str]) -> bool {
    let who = format!("--as=system:serviceaccount:{namespace}:{account}");
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    all.push(&who);
    let (ok, out) = kubectl(kubeconfig, &all, "");
    let answer = out
        .lines()
        .map(str::trim)
        .find(|l| *l == "yes" || *l == "no");
    match answer {
        Some("yes") if ok => true,
        Some("no") if !ok => false,
        _ => panic!("kubectl auth can-i {args:?} gave no answer:\n{out}"),
    }
}

/// Cleans up after a release's test: deletes its ClusterRole and ClusterRoleBinding `fullname`
/// (failing the test when they are not there), and its namespace, which takes the rest, without
/// waiting.
pub fn remove_release(kubeconfig: &str, namespace: &str, fullname: &str) {
    let (ok, out) = kubectl(
        kubeconfig,
        &[
            "delete",
            &format!("clusterrole/{fullname}"),
            &format!("clusterrolebinding/{fullname}"),
        ],
        "",
    );
    assert!(ok, "{out}");
    kubectl(
        kubeconfig,
        &["delete", "namespace", namespace, "--wait=false"],
        "",
    );
}

/// The objects (`kind/name`, sorted) of `kinds` (comma-separated) in `namespace` that match the
/// label `selector`; the test fails when kubectl does.
pub fn object_names(kubeconfig: &str, namespace: &str, kinds: &str, selector: &str) -> Vec<String> {
    let (ok, out) = kubectl(
        kubeconfig,
        &["get", kinds, "-n", namespace, "-l", selector, "-o", "name"],
        "",
    );
    assert!(ok, "{out}");
    let mut names: Vec<String> = out.lines().map(|l| l.trim().to_string()).collect();
    names.sort();
    names
}
