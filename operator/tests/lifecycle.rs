//! A cluster's life after creation, with a real `koru-operator` against the real API server:
//! scaling, ordered rolling upgrades, pausing, volume reclaim policy and storage growth. Each test
//! has its own namespace and its own operator watching only it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use common::{cluster_yaml, event_reasons, patch_spec, start_operator};
use koru_testkit::{
    Operator, apply, eventually, field, fresh_namespace, get, install_crds, kubeconfig, kubectl,
    mark_pods_ready,
};

/// Marks pods ready until the cluster reports `expected` for phase/readyReplicas/currentVersion.
fn settle(k: &str, ns: &str, name: &str, operator: &mut Operator, expected: &str) {
    eventually(operator, 120, expected, || {
        mark_pods_ready(k, ns, name);
        let got = field(
            k,
            ns,
            &format!("kc/{name}"),
            "{.status.phase}/{.status.readyReplicas}/{.status.currentVersion}",
        )?;
        (got == expected).then_some(())
    });
}

#[test]
fn scale_upgrade_and_pause() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "lifecycle-scale";
    fresh_namespace(&k, ns);
    let mut operator = start_operator(&k, ns);
    apply(
        &k,
        ns,
        &cluster_yaml(
            "ledger",
            "  version: \"0.1.0\"\n  replicas: 3\n  storage:\n    size: 1Gi\n",
        ),
    );
    settle(&k, ns, "ledger", &mut operator, "Running/3/0.1.0");
    // The operator removes pods only once the cluster's Raft group has let them go, so a real
    // member stands in for the group (see `tests/replication.rs` for membership itself).
    let scratch = tempfile::tempdir().unwrap();
    let _member = common::single_member(&mut operator, &k, ns, "ledger", scratch.path());

    // Scale up: two more pods, a wider budget.
    patch_spec(&k, ns, "ledger", r#"{"replicas":5}"#);
    settle(&k, ns, "ledger", &mut operator, "Running/5/0.1.0");
    assert_eq!(
        field(&k, ns, "pdb/ledger", "{.spec.maxUnavailable}").as_deref(),
        Some("2")
    );
    assert!(event_reasons(&k, ns, "ledger").contains("ScalingStarted"));

    // Rolling upgrade: the StatefulSet replaces the highest ordinal first and waits for it to be
    // ready before touching the next, so while ledger-4 is not ready the others keep 0.1.0.
    patch_spec(&k, ns, "ledger", r#"{"version":"0.2.0"}"#);
    let image = |pod: &str| field(&k, ns, &format!("pod/{pod}"), "{.spec.containers[0].image}");
    eventually(&mut operator, 60, "ledger-4 on the new image", || {
        image("ledger-4").filter(|i| i.ends_with(":0.2.0"))
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    for i in 0..4 {
        assert_eq!(
            image(&format!("ledger-{i}")).as_deref(),
            Some("ghcr.io/koru/koru-dataplane:0.1.0"),
            "ledger-{i} was replaced before ledger-4 was ready"
        );
    }
    let upgrading = field(
        &k,
        ns,
        "kc/ledger",
        "{.status.phase}/{.status.currentVersion}",
    );
    assert_eq!(upgrading.as_deref(), Some("Upgrading/0.1.0"));
    settle(&k, ns, "ledger", &mut operator, "Running/5/0.2.0");
    for i in 0..5 {
        assert_eq!(
            image(&format!("ledger-{i}")).as_deref(),
            Some("ghcr.io/koru/koru-dataplane:0.2.0")
        );
    }
    assert!(event_reasons(&k, ns, "ledger").contains("UpgradeStarted"));

    // Scale down to one: no budget (it would block every eviction); volumes kept.
    patch_spec(&k, ns, "ledger", r#"{"replicas":1}"#);
    settle(&k, ns, "ledger", &mut operator, "Running/1/0.2.0");
    eventually(&mut operator, 30, "the budget to go", || {
        field(&k, ns, "pdb/ledger", "{.metadata.name}")
            .is_none()
            .then_some(())
    });
    let claims = get(&k, &["get", "pvc", "-n", ns, "-o", "name"]).unwrap();
    assert!(
        claims.contains("data-ledger-4"),
        "Retain keeps volumes on scale-down: {claims}"
    );

    // Paused: spec changes wait.
    patch_spec(&k, ns, "ledger", r#"{"paused":true,"replicas":3}"#);
    eventually(&mut operator, 30, "a Paused phase", || {
        field(&k, ns, "kc/ledger", "{.status.phase}").filter(|p| p == "Paused")
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        field(&k, ns, "statefulset/ledger", "{.spec.replicas}").as_deref(),
        Some("1"),
        "a paused cluster's objects are left alone"
    );
    patch_spec(&k, ns, "ledger", r#"{"paused":false}"#);
    settle(&k, ns, "ledger", &mut operator, "Running/3/0.2.0");
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}

#[test]
fn reclaim_policy_delete_removes_volumes_on_scale_down_and_deletion() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "lifecycle-reclaim";
    fresh_namespace(&k, ns);
    let mut operator = start_operator(&k, ns);
    apply(
        &k,
        ns,
        &cluster_yaml(
            "scratch",
            "  version: \"0.1.0\"\n  replicas: 3\n  storage:\n    size: 1Gi\n    reclaimPolicy: Delete\n",
        ),
    );
    settle(&k, ns, "scratch", &mut operator, "Running/3/0.1.0");
    let scratch_dir = tempfile::tempdir().unwrap();
    let _member = common::single_member(&mut operator, &k, ns, "scratch", scratch_dir.path());
    let claims = || get(&k, &["get", "pvc", "-n", ns, "-o", "name"]).unwrap_or_default();
    assert_eq!(claims().lines().count(), 3, "{}", claims());
    patch_spec(&k, ns, "scratch", r#"{"replicas":1}"#);
    settle(&k, ns, "scratch", &mut operator, "Running/1/0.1.0");
    eventually(&mut operator, 60, "the scaled-away volumes to go", || {
        (claims().trim() == "persistentvolumeclaim/data-scratch-0").then_some(())
    });
    let (ok, out) = kubectl(
        &k,
        &["delete", "kc", "scratch", "-n", ns, "--timeout=60s"],
        "",
    );
    assert!(ok, "{out}");
    eventually(&mut operator, 90, "the last volume to go", || {
        claims().trim().is_empty().then_some(())
    });
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}

#[test]
fn a_suspended_cluster_has_no_pods_keeps_every_volume_and_resumes() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "lifecycle-suspend";
    fresh_namespace(&k, ns);
    let mut operator = start_operator(&k, ns);
    // Delete, as hosted clusters have it: a scale to zero must still keep the volumes.
    apply(
        &k,
        ns,
        &cluster_yaml(
            "idle",
            "  version: \"0.1.0\"\n  replicas: 3\n  storage:\n    size: 1Gi\n    reclaimPolicy: Delete\n",
        ),
    );
    settle(&k, ns, "idle", &mut operator, "Running/3/0.1.0");
    let claims = || get(&k, &["get", "pvc", "-n", ns, "-o", "name"]).unwrap_or_default();
    let before = claims();
    assert_eq!(before.lines().count(), 3, "{before}");
    patch_spec(&k, ns, "idle", r#"{"suspended":true}"#);
    eventually(&mut operator, 60, "Suspended with no pods", || {
        let pods = get(&k, &["get", "pods", "-n", ns, "-o", "name"]).unwrap_or_default();
        let phase = field(&k, ns, "kc/idle", "{.status.phase}")?;
        (phase == "Suspended" && pods.trim().is_empty()).then_some(())
    });
    assert_eq!(
        field(&k, ns, "statefulset/idle", "{.spec.replicas}").as_deref(),
        Some("0")
    );
    assert_eq!(
        field(
            &k,
            ns,
            "statefulset/idle",
            "{.spec.persistentVolumeClaimRetentionPolicy.whenScaled}"
        )
        .as_deref(),
        Some("Retain")
    );
    assert!(
        get(&k, &["get", "pdb", "idle", "-n", ns]).is_none(),
        "no budget"
    );
    assert_eq!(
        field(
            &k,
            ns,
            "kc/idle",
            "{.status.conditions[?(@.type==\"Degraded\")].status}"
        )
        .as_deref(),
        Some("False")
    );
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(claims(), before, "every volume kept");
    assert!(event_reasons(&k, ns, "idle").contains("ClusterSuspended"));

    patch_spec(&k, ns, "idle", r#"{"suspended":false}"#);
    settle(&k, ns, "idle", &mut operator, "Running/3/0.1.0");
    assert_eq!(claims(), before, "the same volumes");
    assert_eq!(
        field(&k, ns, "pdb/idle", "{.spec.maxUnavailable}").as_deref(),
        Some("1"),
        "the budget is back"
    );
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}

/// A cluster-scoped StorageClass for one test, with or without volume expansion.
fn storage_class(k: &str, name: &str, expandable: bool) {
    kubectl(
        k,
        &["delete", "storageclass", name, "--ignore-not-found"],
        "",
    );
    let yaml = format!(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: {name}\nprovisioner: kubernetes.io/no-provisioner\nvolumeBindingMode: Immediate\nallowVolumeExpansion: {expandable}\n"
    );
    apply(k, "default", &yaml);
}

/// A pre-made volume of `class` that the PersistentVolume controller can bind a claim to.
fn volume(k: &str, name: &str, class: &str) {
    kubectl(k, &["delete", "pv", name, "--ignore-not-found"], "");
    let yaml = format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {name}\nspec:\n  capacity:\n    storage: 10Gi\n  accessModes: [ReadWriteOnce]\n  storageClassName: {class}\n  persistentVolumeReclaimPolicy: Retain\n  hostPath:\n    path: /tmp/{name}\n"
    );
    apply(k, "default", &yaml);
}

#[test]
fn storage_grows_where_the_class_allows_it() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "lifecycle-storage";
    fresh_namespace(&k, ns);
    storage_class(&k, "koru-test-expandable", true);
    storage_class(&k, "koru-test-fixed", false);
    volume(&k, "koru-test-grow-0", "koru-test-expandable");
    volume(&k, "koru-test-fixed-0", "koru-test-fixed");
    let mut operator = start_operator(&k, ns);
    for (name, class) in [
        ("grow", "koru-test-expandable"),
        ("fixed", "koru-test-fixed"),
    ] {
        apply(
            &k,
            ns,
            &cluster_yaml(
                name,
                &format!(
                    "  version: \"0.1.0\"\n  replicas: 1\n  storage:\n    size: 1Gi\n    storageClassName: {class}\n"
                ),
            ),
        );
    }
    for name in ["grow", "fixed"] {
        settle(&k, ns, name, &mut operator, "Running/1/0.1.0");
        eventually(&mut operator, 60, "the claim to bind", || {
            field(&k, ns, &format!("pvc/data-{name}-0"), "{.status.phase}").filter(|p| p == "Bound")
        });
    }
    let pod_uid = field(&k, ns, "pod/grow-0", "{.metadata.uid}").unwrap();
    let sts_uid = field(&k, ns, "statefulset/grow", "{.metadata.uid}").unwrap();
    patch_spec(&k, ns, "grow", r#"{"storage":{"size":"2Gi"}}"#);
    patch_spec(&k, ns, "fixed", r#"{"storage":{"size":"2Gi"}}"#);

    eventually(&mut operator, 60, "the claim to ask for 2Gi", || {
        field(
            &k,
            ns,
            "pvc/data-grow-0",
            "{.spec.resources.requests.storage}",
        )
        .filter(|s| s == "2Gi")
    });
    let template = eventually(
        &mut operator,
        60,
        "a StatefulSet with a 2Gi template",
        || {
            field(
                &k,
                ns,
                "statefulset/grow",
                "{.metadata.uid} {.spec.volumeClaimTemplates[0].spec.resources.requests.storage}",
            )
            .filter(|t| t.ends_with(" 2Gi"))
        },
    );
    assert!(
        !template.starts_with(&sts_uid),
        "the StatefulSet was replaced"
    );
    assert_eq!(
        field(&k, ns, "pod/grow-0", "{.metadata.uid}").as_deref(),
        Some(pod_uid.as_str()),
        "the pod kept running through the replacement"
    );
    settle(&k, ns, "grow", &mut operator, "Running/1/0.1.0");
    assert!(event_reasons(&k, ns, "grow").contains("StorageGrowthStarted"));

    let degraded = eventually(&mut operator, 60, "a Degraded condition on fixed", || {
        field(
            &k,
            ns,
            "kc/fixed",
            "{.status.conditions[?(@.type==\"Degraded\")].reason}: {.status.conditions[?(@.type==\"Degraded\")].message}",
        )
        .filter(|d| d.starts_with("StorageGrowthBlocked"))
    });
    assert!(
        degraded.contains("koru-test-fixed does not allow volume expansion"),
        "{degraded}"
    );
    assert_eq!(
        field(
            &k,
            ns,
            "statefulset/fixed",
            "{.spec.volumeClaimTemplates[0].spec.resources.requests.storage}"
        )
        .as_deref(),
        Some("1Gi")
    );
    assert_eq!(
        field(
            &k,
            ns,
            "pvc/data-fixed-0",
            "{.spec.resources.requests.storage}"
        )
        .as_deref(),
        Some("1Gi")
    );
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
    for object in [
        "pv/koru-test-grow-0",
        "pv/koru-test-fixed-0",
        "storageclass/koru-test-expandable",
        "storageclass/koru-test-fixed",
    ] {
        kubectl(&k, &["delete", object, "--wait=false"], "");
    }
}

#[test]
fn a_failing_cluster_backs_off_without_stalling_the_others() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "lifecycle-failure";
    fresh_namespace(&k, ns);
    // Room for the namespace's own kube-root-ca.crt and one cluster's ConfigMap: the second
    // cluster's ConfigMap is refused by the API server, so its reconcile fails.
    let quota = "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: configmaps\nspec:\n  hard:\n    count/configmaps: \"2\"\n";
    apply(&k, ns, quota);
    eventually_quota_counted(&k, ns);
    let mut operator = start_operator(&k, ns);
    let spec = "  version: \"0.1.0\"\n  replicas: 1\n  storage:\n    size: 1Gi\n";
    apply(&k, ns, &cluster_yaml("first", spec));
    settle(&k, ns, "first", &mut operator, "Running/1/0.1.0");
    apply(&k, ns, &cluster_yaml("second", spec));
    let warning = eventually(&mut operator, 60, "a ReconcileFailed event", || {
        get(
            &k,
            &[
                "get",
                "events",
                "-n",
                ns,
                "--field-selector",
                "involvedObject.name=second,reason=ReconcileFailed",
                "-o",
                "jsonpath={.items[0].type}: {.items[0].message}",
            ],
        )
        .filter(|m| !m.is_empty())
    });
    assert!(
        warning.starts_with("Warning") && warning.contains("exceeded quota"),
        "{warning}"
    );
    // The other cluster is still served: scaling it works while `second` keeps failing.
    patch_spec(&k, ns, "first", r#"{"replicas":3}"#);
    settle(&k, ns, "first", &mut operator, "Running/3/0.1.0");
    assert_eq!(
        field(&k, ns, "statefulset/second", "{.metadata.name}"),
        None
    );
    // Once the quota allows it, the retry succeeds.
    apply(&k, ns, &quota.replace("\"2\"", "\"10\""));
    settle(&k, ns, "second", &mut operator, "Running/1/0.1.0");
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}

/// Waits until the quota controller has counted the namespace's ConfigMaps, so the quota bites.
fn eventually_quota_counted(k: &str, ns: &str) {
    for _ in 0..150 {
        if field(
            k,
            ns,
            "resourcequota/configmaps",
            "{.status.used.count/configmaps}",
        )
        .is_some_and(|u| !u.is_empty())
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("the quota controller never counted the namespace's ConfigMaps");
}
