//! The controller as a real `koru-operator` child process against the real API server: a
//! KoruCluster gets its objects, its status follows the pods, and deleting it removes them.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{kubeconfig, kubectl};

/// The operator process, killed when dropped.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Operator {
    /// Fails the test at once when the operator has exited, instead of at a later timeout.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.0.try_wait() {
            panic!("koru-operator exited with {status}; its log is above");
        }
    }
}

/// Polls `check` every 200 ms until it returns Some or `secs` pass, while the operator runs.
fn eventually<T>(
    operator: &mut Operator,
    secs: u64,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        operator.assert_running();
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kubectl get` with a jsonpath, or None when the object does not exist.
fn get(k: &str, args: &[&str]) -> Option<String> {
    let (ok, out) = kubectl(k, args, "");
    ok.then(|| out.trim().to_string())
}

#[test]
fn a_korucluster_gets_its_objects_and_status_and_loses_them_on_delete() {
    let Some(k) = kubeconfig() else { return };
    let crds = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/koru-operator/crds/koru-crds.yaml"
    ))
    .unwrap();
    let (ok, out) = kubectl(&k, &["apply", "--server-side", "-f", "-"], &crds);
    assert!(ok, "{out}");
    kubectl(
        &k,
        &[
            "wait",
            "--for=condition=Established",
            "crd/koruclusters.koru.dev",
            "--timeout=60s",
        ],
        "",
    );
    let ns = "controller-test";
    kubectl(&k, &["create", "namespace", ns], "");
    let mut operator = Operator(
        Command::new(env!("CARGO_BIN_EXE_koru-operator"))
            .env("KUBECONFIG", &k)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting koru-operator"),
    );
    let manifest = format!(
        "apiVersion: koru.dev/v1alpha1\nkind: KoruCluster\nmetadata:\n  name: orders\n  namespace: {ns}\nspec:\n  version: \"0.1.0\"\n  replicas: 3\n  storage:\n    size: 1Gi\n  durability:\n    fsync: always\n"
    );
    let (ok, out) = kubectl(&k, &["apply", "-f", "-"], &manifest);
    assert!(ok, "{out}");

    let replicas = eventually(&mut operator, 60, "the StatefulSet", || {
        get(
            &k,
            &[
                "get",
                "statefulset",
                "orders",
                "-n",
                ns,
                "-o",
                "jsonpath={.spec.replicas}",
            ],
        )
    });
    assert_eq!(replicas, "3");
    for (kind, name) in [
        ("service", "orders"),
        ("service", "orders-peers"),
        ("configmap", "orders-config"),
        ("pdb", "orders"),
    ] {
        let owner = get(
            &k,
            &[
                "get",
                kind,
                name,
                "-n",
                ns,
                "-o",
                "jsonpath={.metadata.ownerReferences[0].kind}",
            ],
        );
        assert_eq!(owner.as_deref(), Some("KoruCluster"), "{kind}/{name}");
    }
    let fsync = get(
        &k,
        &[
            "get",
            "configmap",
            "orders-config",
            "-n",
            ns,
            "-o",
            "jsonpath={.data.KORU_FSYNC}",
        ],
    );
    assert_eq!(fsync.as_deref(), Some("always"));
    let phase = eventually(&mut operator, 30, "a Provisioning status", || {
        get(
            &k,
            &[
                "get",
                "kc",
                "orders",
                "-n",
                ns,
                "-o",
                "jsonpath={.status.phase}",
            ],
        )
        .filter(|p| !p.is_empty())
    });
    assert_eq!(phase, "Provisioning", "no pod is ready yet");

    // No kubelet runs here: the StatefulSet controller creates the pods, and the test marks them
    // ready through the API the way a kubelet would.
    for i in 0..3 {
        let pod = format!("orders-{i}");
        eventually(&mut operator, 60, "the pods", || {
            get(&k, &["get", "pod", &pod, "-n", ns, "-o", "name"])
        });
        let now = "2026-01-01T00:00:00Z";
        let status = format!(
            "{{\"status\":{{\"phase\":\"Running\",\"conditions\":[{{\"type\":\"Ready\",\"status\":\"True\",\"lastTransitionTime\":\"{now}\"}}]}}}}"
        );
        let (ok, out) = kubectl(
            &k,
            &[
                "patch",
                "pod",
                &pod,
                "-n",
                ns,
                "--subresource=status",
                "--type=merge",
                "-p",
                &status,
            ],
            "",
        );
        assert!(ok, "{out}");
    }
    eventually(
        &mut operator,
        90,
        "a Running cluster with 3 ready replicas",
        || {
            let out = get(
                &k,
                &[
                    "get",
                    "kc",
                    "orders",
                    "-n",
                    ns,
                    "-o",
                    "jsonpath={.status.phase}/{.status.readyReplicas}/{.status.endpoint}",
                ],
            )?;
            (out == format!("Running/3/http://orders.{ns}.svc:7878")).then_some(())
        },
    );

    let (ok, out) = kubectl(
        &k,
        &[
            "delete",
            "kc",
            "orders",
            "-n",
            ns,
            "--wait=true",
            "--timeout=60s",
        ],
        "",
    );
    assert!(ok, "{out}");
    eventually(
        &mut operator,
        90,
        "garbage collection of the StatefulSet",
        || {
            get(
                &k,
                &["get", "statefulset", "orders", "-n", ns, "-o", "name"],
            )
            .is_none()
            .then_some(())
        },
    );
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}
