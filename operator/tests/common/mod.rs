//! The operator tests' own helpers; those shared with the control plane's tests are in
//! `koru-testkit`.

// Each test binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::path::Path;

use koru_testkit::Operator;

/// Starts this crate's `koru-operator` against `kubeconfig`, watching only `namespace`.
pub fn start_operator(kubeconfig: &str, namespace: &str) -> Operator {
    Operator::start_with(
        Path::new(env!("CARGO_BIN_EXE_koru-operator")),
        kubeconfig,
        namespace,
    )
}

/// [`start_operator`] with more command-line arguments.
pub fn start_operator_with(kubeconfig: &str, namespace: &str, args: &[&str]) -> Operator {
    Operator::start_with_args(
        Path::new(env!("CARGO_BIN_EXE_koru-operator")),
        kubeconfig,
        namespace,
        args,
    )
}

/// A KoruCluster manifest with the given spec lines (indented by the caller under `spec:`).
pub fn cluster_yaml(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: koru.dev/v1alpha1\nkind: KoruCluster\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

/// The admin token in the cluster's `<cluster>-admin` Secret, decoded.
pub fn admin_token(k: &str, ns: &str, cluster: &str) -> Option<String> {
    koru_testkit::get(
        k,
        &[
            "get",
            "secret",
            &format!("{cluster}-admin"),
            "-n",
            ns,
            "-o",
            "go-template={{.data.token | base64decode}}",
        ],
    )
    .filter(|t| !t.is_empty())
}

/// The admin token in the cluster's `<cluster>-admin` Secret, once the operator has made it.
pub fn wait_admin_token(operator: &mut Operator, k: &str, ns: &str, cluster: &str) -> String {
    koru_testkit::eventually(operator, 60, "the cluster's admin token", || {
        admin_token(k, ns, cluster)
    })
}

/// Merge-patches a KoruCluster's spec with the JSON `spec`.
pub fn patch_spec(k: &str, ns: &str, name: &str, spec: &str) {
    let (ok, out) = koru_testkit::kubectl(
        k,
        &[
            "patch",
            "kc",
            name,
            "-n",
            ns,
            "--type=merge",
            "-p",
            &format!("{{\"spec\":{spec}}}"),
        ],
        "",
    );
    assert!(ok, "{out}");
}

/// Points the cluster's `koru.dev/admin-endpoint` annotation at `url`.
pub fn annotate_endpoint(k: &str, ns: &str, cluster: &str, url: &str) {
    let (ok, out) = koru_testkit::kubectl(
        k,
        &[
            "annotate",
            "kc",
            cluster,
            "-n",
            ns,
            "--overwrite",
            &format!("koru.dev/admin-endpoint={url}"),
        ],
        "",
    );
    assert!(ok, "{out}");
}

/// A real data plane standing for a cluster's Raft group of one member (there is no kubelet
/// here to run the pods): member 0 with the cluster's admin token, reached through the
/// `koru.dev/admin-endpoint` annotation, so the operator can ask the group about membership.
pub fn single_member(
    operator: &mut Operator,
    k: &str,
    ns: &str,
    cluster: &str,
    dir: &Path,
) -> koru_testkit::DataPlane {
    let token = wait_admin_token(operator, k, ns, cluster);
    std::fs::create_dir_all(dir).expect("a directory for the data plane");
    let token_file = dir.join(format!("{cluster}-token"));
    std::fs::write(&token_file, token).expect("writing the token file");
    let token_file = token_file.display().to_string();
    // The member routes' own listener, which its peers list names.
    let peer = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let data = koru_testkit::DataPlane::start(
        &dir.join(format!("{cluster}-data")),
        &[
            "--node-id",
            "0",
            "--peers",
            &format!("0={peer}"),
            "--peer-listen",
            &peer,
            "--admin-token-file",
            &token_file,
        ],
    );
    annotate_endpoint(k, ns, cluster, &data.url);
    data
}

/// The reasons of the events on a cluster.
pub fn event_reasons(k: &str, ns: &str, name: &str) -> String {
    koru_testkit::get(
        k,
        &[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &format!("involvedObject.name={name},involvedObject.kind=KoruCluster"),
            "-o",
            "jsonpath={.items[*].reason}",
        ],
    )
    .unwrap_or_default()
}
