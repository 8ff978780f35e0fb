//! The CRDs: the committed YAML equals the generated one, and the real API server (testenv) accepts
//! them and enforces their validation rules, seen through the real `kubectl`.

use std::path::{Path, PathBuf};

use koru_testkit::{kubeconfig, kubectl, wait_for_crds};

fn committed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/koru-operator/crds/koru-crds.yaml")
}

#[test]
fn the_committed_crd_yaml_matches_the_types() {
    let generated = koru_operator::crds_yaml().expect("render CRDs");
    let committed = std::fs::read_to_string(committed_path()).expect("read committed CRDs");
    assert!(
        generated == committed,
        "charts/koru-operator/crds/koru-crds.yaml is stale: run `koru-operator crd > charts/koru-operator/crds/koru-crds.yaml`"
    );
}

fn cluster(name: &str, replicas: i32, size: &str, class: &str) -> String {
    format!(
        "apiVersion: koru.dev/v1alpha1\nkind: KoruCluster\nmetadata:\n  name: {name}\n  namespace: crd-test\nspec:\n  version: \"0.1.0\"\n  replicas: {replicas}\n  storage:\n    size: {size}\n    storageClassName: {class}\n"
    )
}

#[test]
fn the_api_server_enforces_the_schema() {
    let Some(k) = kubeconfig() else { return };
    let crds = std::fs::read_to_string(committed_path()).unwrap();
    let (ok, out) = kubectl(&k, &["apply", "--server-side", "-f", "-"], &crds);
    assert!(ok, "applying the CRDs failed: {out}");
    wait_for_crds(&k);
    kubectl(&k, &["create", "namespace", "crd-test"], "");

    let (ok, out) = kubectl(
        &k,
        &["apply", "-f", "-"],
        &cluster("good", 3, "10Gi", "fast"),
    );
    assert!(ok, "a valid cluster was refused: {out}");
    let (ok, out) = kubectl(&k, &["get", "kc", "-n", "crd-test"], "");
    assert!(
        ok && [
            "NAME", "PHASE", "READY", "VERSION", "ENDPOINT", "AGE", "good"
        ]
        .iter()
        .all(|c| out.contains(c)),
        "{out}"
    );

    for (manifest, message) in [
        (cluster("even", 2, "10Gi", "fast"), "replicas must be odd"),
        (
            cluster("many", 9, "10Gi", "fast"),
            "should be less than or equal to 7",
        ),
        (
            cluster("none", 0, "10Gi", "fast"),
            "should be greater than or equal to 1",
        ),
        (cluster("tiny", 1, "lots", "fast"), "positive quantity"),
        (cluster("good", 3, "5Gi", "fast"), "cannot shrink"),
        (
            cluster("good", 3, "20Gi", "slow"),
            "storageClassName is immutable",
        ),
        (cluster("9lives", 1, "1Gi", "fast"), "must be a DNS label"),
        (
            cluster(&"a".repeat(41), 1, "1Gi", "fast"),
            "at most 40 characters",
        ),
        (
            cluster("cpu", 1, "1Gi", "fast") + "  resources:\n    cpu: lots\n",
            "cpu must be a positive quantity",
        ),
        (
            cluster("odd", 1, "1Gi", "fast") + "    reclaimPolicy: Recycle\n",
            "Unsupported value: \"Recycle\"",
        ),
    ] {
        let (ok, out) = kubectl(&k, &["apply", "-f", "-"], &manifest);
        assert!(
            !ok && out.contains(message),
            "expected a refusal saying {message:?}, got: {out}"
        );
    }
    let (ok, out) = kubectl(
        &k,
        &["apply", "-f", "-"],
        &cluster("good", 3, "20Gi", "fast"),
    );
    assert!(ok, "growing storage was refused: {out}");
    let unclassed = cluster("good", 3, "20Gi", "fast").replace("    storageClassName: fast\n", "");
    let (ok, out) = kubectl(&k, &["apply", "-f", "-"], &unclassed);
    assert!(
        !ok && out.contains("storageClassName is immutable"),
        "removing the class was allowed: {out}"
    );

    let backup = "apiVersion: koru.dev/v1alpha1\nkind: KoruBackup\nmetadata:\n  name: b1\n  namespace: crd-test\nspec:\n  cluster: good\n";
    let (ok, out) = kubectl(&k, &["apply", "-f", "-"], backup);
    assert!(ok, "{out}");
    let (ok, out) = kubectl(
        &k,
        &["apply", "-f", "-"],
        &backup.replace("cluster: good", "cluster: other"),
    );
    assert!(!ok && out.contains("immutable"), "{out}");
    kubectl(&k, &["delete", "namespace", "crd-test", "--wait=false"], "");
}

#[test]
fn the_api_server_accepts_every_desired_object() {
    use koru_operator::crd::{KoruCluster, KoruClusterSpec, Storage};
    let Some(k) = kubeconfig() else { return };
    kubectl(&k, &["create", "namespace", "desired-test"], "");
    let mut kc = KoruCluster::new(
        "orders",
        KoruClusterSpec {
            version: "0.1.0".into(),
            image: None,
            replicas: 3,
            resources: Some(koru_operator::crd::Resources {
                cpu: Some("500m".into()),
                memory: Some("1Gi".into()),
            }),
            storage: Storage {
                size: "10Gi".into(),
                storage_class_name: Some("fast".into()),
                reclaim_policy: Some(koru_operator::crd::ReclaimPolicy::Delete),
            },
            durability: None,
            limits: None,
            auth: None,
            // Backups and a restore at start-up, so the init container is checked too.
            backup: Some(koru_operator::crd::BackupSettings {
                destination: "s3://backups/orders".into(),
                credentials_secret: Some("orders-s3".into()),
                schedule: None,
                retention_days: Some(7),
            }),
            bootstrap: Some(koru_operator::crd::Bootstrap {
                from_backup: Some(koru_operator::crd::FromBackup {
                    source: "s3://backups/old-orders".into(),
                    backup_id: None,
                    target_time: Some("2026-11-26T05:00:00Z".into()),
                }),
            }),
            paused: false,
        },
    );
    kc.metadata.namespace = Some("desired-test".into());
    kc.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
    let d = koru_operator::desired::desired(&kc).expect("desired objects");
    let objects = [
        serde_json::to_value(&d.config).unwrap(),
        serde_json::to_value(&d.headless).unwrap(),
        serde_json::to_value(&d.client).unwrap(),
        serde_json::to_value(&d.statefulset).unwrap(),
        serde_json::to_value(d.pdb.as_ref().unwrap()).unwrap(),
        serde_json::to_value(koru_operator::desired::admin_secret(&kc, "t0k3n").unwrap()).unwrap(),
    ];
    for mut object in objects {
        // k8s-openapi leaves out apiVersion/kind on plain serialization of some types; set them.
        let (api_version, kind) = match object["metadata"]["name"].as_str() {
            _ if object.get("type").is_some() => ("v1", "Secret"),
            _ if object.get("data").is_some() => ("v1", "ConfigMap"),
            _ if object["spec"].get("serviceName").is_some() => ("apps/v1", "StatefulSet"),
            _ if object["spec"].get("maxUnavailable").is_some() => {
                ("policy/v1", "PodDisruptionBudget")
            }
            _ => ("v1", "Service"),
        };
        object["apiVersion"] = api_version.into();
        object["kind"] = kind.into();
        let (ok, out) = kubectl(
            &k,
            &["apply", "--server-side", "--dry-run=server", "-f", "-"],
            &object.to_string(),
        );
        assert!(ok, "the API server refused the desired {kind}: {out}");
    }
    kubectl(
        &k,
        &["delete", "namespace", "desired-test", "--wait=false"],
        "",
    );
}
