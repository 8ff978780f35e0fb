//! The controller as a real `koru-operator` child process against the real API server: a
//! KoruCluster gets its objects, conditions and events; re-reconciling it writes nothing; drift is
//! repaired; deleting it removes its objects and keeps its volumes.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use common::{cluster_yaml, start_operator};
use koru_testkit::{
    apply, eventually, field, fresh_namespace, get, install_crds, kubeconfig, kubectl,
    mark_pods_ready,
};

/// The resourceVersions of a cluster's objects, to tell whether anything was written.
fn versions(k: &str, ns: &str) -> Vec<(String, String)> {
    [
        "kc/orders",
        "configmap/orders-config",
        "service/orders-peers",
        "statefulset/orders",
        "pdb/orders",
    ]
    .iter()
    .map(|o| {
        let rv = field(k, ns, o, "{.metadata.resourceVersion}").unwrap_or_default();
        (o.to_string(), rv)
    })
    .collect()
}

#[test]
fn a_korucluster_gets_its_objects_conditions_and_events_and_loses_them_on_delete() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "controller-test";
    fresh_namespace(&k, ns);
    let mut operator = start_operator(&k, ns);
    apply(
        &k,
        ns,
        &cluster_yaml(
            "orders",
            "  version: \"0.1.0\"\n  replicas: 3\n  storage:\n    size: 1Gi\n  durability:\n    fsync: always\n",
        ),
    );

    let replicas = eventually(&mut operator, 60, "the StatefulSet", || {
        field(&k, ns, "statefulset/orders", "{.spec.replicas}")
    });
    assert_eq!(replicas, "3");
    for object in [
        "service/orders",
        "service/orders-peers",
        "configmap/orders-config",
        "pdb/orders",
        "statefulset/orders",
    ] {
        let owner = field(
            &k,
            ns,
            object,
            "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].controller}",
        );
        assert_eq!(owner.as_deref(), Some("KoruCluster/true"), "{object}");
        let manager = field(&k, ns, object, "{.metadata.managedFields[0].manager}");
        assert_eq!(manager.as_deref(), Some("koru-operator"), "{object}");
    }
    assert_eq!(
        field(&k, ns, "configmap/orders-config", "{.data.KORU_FSYNC}").as_deref(),
        Some("always")
    );
    assert_eq!(
        field(&k, ns, "pdb/orders", "{.spec.maxUnavailable}").as_deref(),
        Some("1")
    );
    let provisioning = eventually(&mut operator, 30, "a Provisioning status", || {
        field(
            &k,
            ns,
            "kc/orders",
            "{.status.phase} {.status.conditions[?(@.type==\"Ready\")].status}",
        )
        .filter(|p| p.starts_with("Provisioning"))
    });
    assert_eq!(provisioning, "Provisioning False", "no pod is ready yet");

    // No kubelet runs here: the StatefulSet controller creates the pods, and the test marks them
    // ready through the API the way a kubelet would.
    eventually(
        &mut operator,
        90,
        "a Running cluster with 3 ready replicas",
        || {
            mark_pods_ready(&k, ns, "orders");
            let out = field(
                &k,
                ns,
                "kc/orders",
                "{.status.phase}/{.status.readyReplicas}/{.status.endpoint}/{.status.currentVersion}",
            )?;
            (out == format!("Running/3/http://orders.{ns}.svc:7878/0.1.0")).then_some(())
        },
    );
    for (condition, expected) in [
        ("Ready", "True/QuorumReady"),
        ("Progressing", "False/Stable"),
        ("Degraded", "False/AsExpected"),
    ] {
        let got = field(
            &k,
            ns,
            "kc/orders",
            &format!(
                "{{.status.conditions[?(@.type==\"{condition}\")].status}}/{{.status.conditions[?(@.type==\"{condition}\")].reason}}"
            ),
        );
        assert_eq!(got.as_deref(), Some(expected), "condition {condition}");
    }
    let reasons = eventually(&mut operator, 30, "a ClusterReady event", || {
        get(
            &k,
            &[
                "get",
                "events",
                "-n",
                ns,
                "--field-selector",
                "involvedObject.name=orders,involvedObject.kind=KoruCluster",
                "-o",
                "jsonpath={.items[*].reason}",
            ],
        )
        .filter(|r| r.contains("ClusterReady"))
    });
    assert!(!reasons.contains("ReconcileFailed"), "events: {reasons}");
    let printed = get(&k, &["get", "kc", "orders", "-n", ns]).unwrap();
    assert!(
        printed.contains("Running") && printed.contains("0.1.0"),
        "{printed}"
    );

    // Idempotency: deleting the client Service makes the operator reconcile the whole cluster
    // again; it puts the Service back and writes nothing else.
    let before = versions(&k, ns);
    let (ok, out) = kubectl(&k, &["delete", "service", "orders", "-n", ns], "");
    assert!(ok, "{out}");
    eventually(&mut operator, 30, "the client Service to come back", || {
        field(&k, ns, "service/orders", "{.metadata.uid}")
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        versions(&k, ns),
        before,
        "a reconcile of an unchanged cluster wrote to its objects"
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
    assert!(ok, "deletion must not hang: {out}");
    eventually(
        &mut operator,
        90,
        "garbage collection of the StatefulSet and Services",
        || {
            let left = get(
                &k,
                &[
                    "get",
                    "statefulsets,services,configmaps,pdb",
                    "-n",
                    ns,
                    "-l",
                    "app.kubernetes.io/instance=orders",
                    "-o",
                    "name",
                ],
            )?;
            left.is_empty().then_some(())
        },
    );
    let claims = get(&k, &["get", "pvc", "-n", ns, "-o", "name"]).unwrap();
    for i in 0..3 {
        assert!(
            claims.contains(&format!("persistentvolumeclaim/data-orders-{i}")),
            "the default reclaimPolicy Retain keeps volumes after deletion: {claims}"
        );
    }
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}
