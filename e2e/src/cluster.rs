//! KoruClusters on real pods: applying manifests, waiting on their status, their pods and leader,
//! and the client Service's address as this host reaches it (its ClusterIP, through kube-proxy).

use koru_testkit::{get, kubectl, wait_until};
use serde_json::Value;

/// `kubectl apply -n namespace` of `yaml`.
pub fn apply(kubeconfig: &str, namespace: &str, yaml: &str) {
    let (ok, out) = kubectl(kubeconfig, &["apply", "-n", namespace, "-f", "-"], yaml);
    assert!(ok, "kubectl apply failed: {out}\n{yaml}");
}

/// The KoruCluster `name` as JSON, or Null when it cannot be read.
fn cluster(kubeconfig: &str, namespace: &str, name: &str) -> Value {
    get(
        kubeconfig,
        &["get", "korucluster", name, "-n", namespace, "-o", "json"],
    )
    .and_then(|s| serde_json::from_str(&s).ok())
    .unwrap_or(Value::Null)
}

/// The field at JSON `pointer` (e.g. `/status/phase`) of the KoruCluster.
pub fn cluster_field(kubeconfig: &str, namespace: &str, name: &str, pointer: &str) -> Value {
    cluster(kubeconfig, namespace, name)
        .pointer(pointer)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until the KoruCluster is Running with `replicas` ready pods, the version `version`, and
/// (with several replicas) a leader and `replicas` healthy voters; returns its status.
pub fn wait_cluster(
    kubeconfig: &str,
    namespace: &str,
    name: &str,
    replicas: u64,
    version: &str,
    secs: u64,
) -> Value {
    let what =
        format!("KoruCluster {namespace}/{name} Running with {replicas} ready voters on {version}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let object = cluster(kubeconfig, namespace, name);
        let status = object["status"].clone();
        let members = status["replication"]["members"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let healthy_voters = members
            .iter()
            .filter(|m| m["voter"] == true && m["healthy"] != false)
            .count() as u64;
        // A status written before the operator saw the latest spec says nothing about it.
        if status["observedGeneration"] == object["metadata"]["generation"]
            && status["phase"] == "Running"
            && status["readyReplicas"].as_u64() == Some(replicas)
            && status["currentVersion"] == version
            // A single member reports no replication status.
            && (replicas == 1
                || (status["replication"]["leader"].is_string()
                    && members.len() as u64 == replicas
                    && healthy_voters == replicas))
            && pod_names(kubeconfig, namespace, name).len() as u64 == replicas
        {
            return status;
        }
        if std::time::Instant::now() >= deadline {
            let pods = get(kubeconfig, &["get", "pods", "-n", namespace, "-o", "wide"]);
            let events = get(
                kubeconfig,
                &["get", "events", "-n", namespace, "--sort-by=.lastTimestamp"],
            );
            panic!(
                "timed out after {secs} s waiting for {what}; status: {status:#}\npods:\n{}\nevents:\n{}\noperator logs:\n{}",
                pods.unwrap_or_default(),
                events.unwrap_or_default(),
                operator_logs(kubeconfig)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// A KoruCluster `name` on version 0.1.0 whose tokens are checked with the key of the Secret
/// `token-key` ([`crate::TokenKey::secret`]), with `spec` lines (indented two spaces) for the rest.
pub fn cluster_yaml(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: koru.dev/v1alpha1\nkind: KoruCluster\nmetadata:\n  name: {name}\nspec:\n  version: \"0.1.0\"\n  auth:\n    publicKeySecret:\n      name: token-key\n      key: public.pem\n{spec}"
    )
}

/// `kubectl patch` of the KoruCluster's spec with the JSON object `spec` (a merge patch).
pub fn patch_cluster(kubeconfig: &str, namespace: &str, name: &str, spec: &str) {
    let (ok, out) = kubectl(
        kubeconfig,
        &[
            "patch",
            "korucluster",
            name,
            "-n",
            namespace,
            "--type",
            "merge",
            "-p",
            &format!("{{\"spec\": {spec}}}"),
        ],
        "",
    );
    assert!(ok, "patching {namespace}/{name} with {spec}: {out}");
}

/// The pod leading the cluster's Raft group, as the status names it.
pub fn leader_pod(kubeconfig: &str, namespace: &str, name: &str) -> String {
    cluster_field(kubeconfig, namespace, name, "/status/replication/leader")
        .as_str()
        .unwrap_or_else(|| panic!("KoruCluster {namespace}/{name} names no leader"))
        .to_string()
}

/// The names of the cluster's pods.
pub fn pod_names(kubeconfig: &str, namespace: &str, name: &str) -> Vec<String> {
    let selector = format!("app.kubernetes.io/instance={name}");
    let mut names: Vec<String> = get(
        kubeconfig,
        &[
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            &selector,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    )
    .unwrap_or_default()
    .split_whitespace()
    .map(str::to_string)
    .collect();
    names.sort();
    names
}

/// The UID of a pod, None when there is none of that name.
pub fn pod_uid(kubeconfig: &str, namespace: &str, pod: &str) -> Option<String> {
    get(
        kubeconfig,
        &[
            "get",
            "pod",
            pod,
            "-n",
            namespace,
            "-o",
            "jsonpath={.metadata.uid}",
        ],
    )
    .filter(|uid| !uid.is_empty())
}

/// Waits until the pod `pod` is a new one (not `old_uid`) and Ready.
pub fn wait_pod_replaced(kubeconfig: &str, namespace: &str, pod: &str, old_uid: &str, secs: u64) {
    wait_until(secs, &format!("pod {pod} to be replaced and Ready"), || {
        let ready = get(
            kubeconfig,
            &[
                "get",
                "pod",
                pod,
                "-n",
                namespace,
                "-o",
                "jsonpath={.metadata.uid} {.status.conditions[?(@.type==\"Ready\")].status}",
            ],
        )
        .unwrap_or_default();
        matches!(ready.split_once(' '), Some((uid, "True")) if uid != old_uid)
    });
}

/// `kubectl delete pod` without waiting for it to go.
pub fn delete_pod(kubeconfig: &str, namespace: &str, pod: &str) {
    let (ok, out) = kubectl(
        kubeconfig,
        &["delete", "pod", pod, "-n", namespace, "--wait=false"],
        "",
    );
    assert!(ok, "deleting pod {pod}: {out}");
}

/// Waits until the cluster has exactly the pods `expected`.
pub fn wait_pods_gone(
    kubeconfig: &str,
    namespace: &str,
    name: &str,
    expected: &[String],
    secs: u64,
) {
    wait_until(
        secs,
        &format!("the pods of {name} to be {expected:?}"),
        || pod_names(kubeconfig, namespace, name) == expected,
    );
}

/// `http://<ClusterIP>:7878` of the cluster's client Service, once it takes connections: this
/// host reaches Service VIPs through kube-proxy's rules, as a pod would (kube-proxy programs a
/// Service's endpoints a moment after its pods turn ready, and refuses connections until then).
pub fn client_url(kubeconfig: &str, namespace: &str, name: &str) -> String {
    let ip = get(
        kubeconfig,
        &[
            "get",
            "service",
            name,
            "-n",
            namespace,
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    )
    .unwrap_or_else(|| panic!("no Service {namespace}/{name}"));
    let address: std::net::SocketAddr = format!("{ip}:7878")
        .parse()
        .unwrap_or_else(|e| panic!("Service {namespace}/{name} has no address ({ip}): {e}"));
    wait_until(
        60,
        &format!("Service {namespace}/{name} to take connections"),
        || {
            std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2))
                .is_ok()
        },
    );
    format!("http://{address}")
}

/// The last lines of every operator pod's log, for failure messages.
pub fn operator_logs(kubeconfig: &str) -> String {
    let pods = get(
        kubeconfig,
        &[
            "get",
            "pods",
            "-A",
            "-l",
            "app.kubernetes.io/name=koru-operator",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace} {.metadata.name}{\"\\n\"}{end}",
        ],
    )
    .unwrap_or_default();
    let mut logs = String::new();
    for line in pods.lines() {
        if let Some((ns, pod)) = line.split_once(' ') {
            let (_, out) = kubectl(kubeconfig, &["logs", "-n", ns, pod, "--tail=40"], "");
            logs.push_str(&format!("--- {ns}/{pod}\n{out}\n"));
        }
    }
    logs
}
