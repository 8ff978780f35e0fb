//! The CRDs: the committed YAML equals the generated one, and the real API server (testenv) accepts
//! them and enforces their validation rules, seen through the real `kubectl`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use std::path::{Path, PathBuf};

use koru_testkit::{kubeconfig, kubectl, wait_for_crds};

fn committed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/koru-operator/crds/koru-crds.yaml")
}

#[test]
fn the_committed_crd_yaml_matches_the_types() {
    let generated = koru_crd::crds_yaml().expect("render CRDs");
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
    let autoscaled = cluster("auto", 1, "1Gi", "fast")
        + "    autoscale:\n      thresholdPercent: 80\n      maxSize: 2Gi\n  suspended: true\n  resources:\n    cpu: 500m\n    autoscale:\n      minCpu: 250m\n      maxCpu: \"2\"\n      minMemory: 256Mi\n      maxMemory: 1Gi\n";
    let (ok, out) = kubectl(&k, &["apply", "-f", "-"], &autoscaled);
    assert!(ok, "a suspended, autoscaled cluster was refused: {out}");
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
        (
            cluster("ceil", 1, "10Gi", "fast") + "    autoscale:\n      maxSize: 5Gi\n",
            "maxSize must be at least storage.size",
        ),
        (
            cluster("full", 1, "1Gi", "fast")
                + "    autoscale:\n      thresholdPercent: 100\n      maxSize: 2Gi\n",
            "should be less than or equal to 99",
        ),
        (
            cluster("bounds", 1, "1Gi", "fast")
                + "  resources:\n    autoscale:\n      minCpu: \"2\"\n      maxCpu: 500m\n      minMemory: 256Mi\n      maxMemory: 1Gi\n",
            "minCpu must not exceed maxCpu",
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

/// A one-replica cluster in `crd-backups` with the given lines under `spec.backup` (and
/// whatever else `extra` adds under `spec`).
fn backed_up(name: &str, backup: &str, extra: &str) -> String {
    let backup: String = backup.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: koru.dev/v1alpha1\nkind: KoruCluster\nmetadata:\n  name: {name}\n  namespace: crd-backups\nspec:\n  version: \"0.1.0\"\n  replicas: 1\n  storage:\n    size: 1Gi\n  backup:\n{backup}{extra}"
    )
}

/// A `bootstrap.fromBackup` restoring from `source`.
fn restored_from(source: &str) -> String {
    format!("  bootstrap:\n    fromBackup:\n      source: {source}\n")
}

#[test]
fn the_api_server_checks_backup_schedules_timeouts_and_timelines() {
    let Some(k) = kubeconfig() else { return };
    let crds = std::fs::read_to_string(committed_path()).unwrap();
    let (ok, out) = kubectl(&k, &["apply", "--server-side", "-f", "-"], &crds);
    assert!(ok, "applying the CRDs failed: {out}");
    wait_for_crds(&k);
    kubectl(&k, &["create", "namespace", "crd-backups"], "");
    let dry_run = |manifest: &str| kubectl(&k, &["apply", "--dry-run=server", "-f", "-"], manifest);

    // What the data plane's schedule parser accepts (five fields, ranges, steps after `*` or a
    // range, names in any case, L/W/#/?, aliases), the API server accepts.
    for schedule in [
        "0 3 * * *",
        "*/15 * * * *",
        "0 0-23/6 * * *",
        "5,35 9-17 * * MON-FRI",
        "0 4 1 jan,Jul *",
        "30 2 L * ?",
        "0 1 15W * *",
        "0 1 LW * *",
        "0 1 ? * 5L",
        "0 1 ? * mon#2",
        "0 0 * * 7",
        "  0   3 * * *  ",
        "@hourly",
        "@DAILY",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
    ] {
        let manifest = backed_up(
            "cron",
            &format!(
                "destination: file:///b\nschedule: \"{schedule}\"\nverifySchedule: \"{schedule}\"\nretentionDays: 7\narchiveTimeout: 30s"
            ),
            "",
        );
        let (ok, out) = dry_run(&manifest);
        assert!(ok, "the schedule {schedule:?} was refused: {out}");
    }
    // What it refuses (a data plane would stop at start and its pods crash-loop), the API
    // server refuses first, saying what a schedule looks like.
    for schedule in [
        "0 3 * *",
        "0 0 3 * * *",
        "61 * * * *",
        "0 24 * * *",
        "0 0 32 * *",
        "0 0 * 13 *",
        "0 0 * * 8",
        "5/15 * * * *",
        "*/0 * * * *",
        "* * * * MON#6",
        "every day",
        "@midnight",
        "@reboot",
        "",
    ] {
        for field in ["schedule", "verifySchedule"] {
            let manifest = backed_up(
                "cron",
                &format!("destination: file:///b\n{field}: \"{schedule}\""),
                "",
            );
            let (ok, out) = dry_run(&manifest);
            assert!(
                !ok && out.contains(&format!("spec.backup.{field}"))
                    && out.contains("must be a five-field cron expression in UTC"),
                "{field} {schedule:?} was not refused as a bad cron expression: {out}"
            );
        }
    }
    for timeout in ["1s", "60s", "90", "5m", "1h", "2d"] {
        let manifest = backed_up(
            "timeout",
            &format!("destination: file:///b\narchiveTimeout: \"{timeout}\""),
            "",
        );
        let (ok, out) = dry_run(&manifest);
        assert!(ok, "archiveTimeout {timeout:?} was refused: {out}");
    }
    for timeout in ["0s", "500ms", "1w", "-5s", "5 m", "soon", ""] {
        let manifest = backed_up(
            "timeout",
            &format!("destination: file:///b\narchiveTimeout: \"{timeout}\""),
            "",
        );
        let (ok, out) = dry_run(&manifest);
        assert!(
            !ok && out.contains("archiveTimeout must be a whole number of seconds"),
            "archiveTimeout {timeout:?} was not refused: {out}"
        );
    }

    // A restored cluster archives somewhere new: the store it was restored from holds another
    // history, whose segments its own would clash with.
    for (destination, source) in [
        ("s3://backups/orders", "s3://backups/orders"),
        ("s3://backups/orders/", "s3://backups/orders"),
        ("s3://backups/orders", "s3://backups/orders//"),
        ("file:///var/backups/a", "file:///var/backups/a/"),
    ] {
        let manifest = backed_up(
            "restored",
            &format!("destination: {destination}"),
            &restored_from(source),
        );
        let (ok, out) = dry_run(&manifest);
        assert!(
            !ok && out.contains("spec.backup.destination")
                && out.contains("backup.destination must differ from bootstrap.fromBackup.source")
                && out.contains("archive it to a new prefix"),
            "archiving {destination} after restoring from {source} was allowed: {out}"
        );
    }
    for (destination, extra) in [
        (
            "s3://backups/orders-2",
            restored_from("s3://backups/orders"),
        ),
        (
            "s3://backups/orders/restored",
            restored_from("s3://backups/orders"),
        ),
        ("s3://other/orders", restored_from("s3://backups/orders")),
        // No restore, or a bootstrap without one: nothing to compare.
        ("s3://backups/orders", String::new()),
        ("s3://backups/orders", "  bootstrap: {}\n".to_string()),
    ] {
        let manifest = backed_up("restored", &format!("destination: {destination}"), &extra);
        let (ok, out) = dry_run(&manifest);
        assert!(ok, "a new prefix {destination} was refused: {out}");
    }
    let restore_only = format!(
        "apiVersion: koru.dev/v1alpha1\nkind: KoruCluster\nmetadata:\n  name: copy\n  namespace: crd-backups\nspec:\n  version: \"0.1.0\"\n  replicas: 1\n  storage:\n    size: 1Gi\n{}",
        restored_from("s3://backups/orders")
    );
    let (ok, out) = dry_run(&restore_only);
    assert!(ok, "a restore without archiving was refused: {out}");
    kubectl(
        &k,
        &["delete", "namespace", "crd-backups", "--wait=false"],
        "",
    );
}

/// A one-replica cluster in `crd-regions` as region `name` with the given peer lines (each
/// `- name: …` item, indented under `peers:`).
fn regional(cluster: &str, name: &str, peers: &[(&str, &str)]) -> String {
    let peers: String = peers
        .iter()
        .map(|(n, e)| format!("    - name: {n}\n      endpoint: {e}\n"))
        .collect();
    format!(
        "apiVersion: koru.dev/v1alpha1\nkind: KoruCluster\nmetadata:\n  name: {cluster}\n  namespace: crd-regions\nspec:\n  version: \"0.1.0\"\n  replicas: 1\n  storage:\n    size: 1Gi\n  region:\n    name: {name}\n    credentialsSecret: replication\n    peers:\n{peers}"
    )
}

#[test]
fn the_api_server_checks_region_names_and_peers() {
    let Some(k) = kubeconfig() else { return };
    let crds = std::fs::read_to_string(committed_path()).unwrap();
    let (ok, out) = kubectl(&k, &["apply", "--server-side", "-f", "-"], &crds);
    assert!(ok, "applying the CRDs failed: {out}");
    wait_for_crds(&k);
    kubectl(&k, &["create", "namespace", "crd-regions"], "");
    let eu = ("eu-west", "https://eu-west.db.example.com");
    let ap = ("ap-south", "http://ap-south.koru.svc:7878/");

    let (ok, out) = kubectl(
        &k,
        &["apply", "-f", "-"],
        &regional("us", "us-east", &[eu, ap]),
    );
    assert!(ok, "a region with two peers was refused: {out}");
    let wide = koru_testkit::get(&k, &["get", "kc", "us", "-n", "crd-regions", "-o", "wide"]);
    let wide = wide.unwrap_or_default();
    assert!(
        wide.contains("REGION") && wide.contains("us-east"),
        "{wide}"
    );
    let alone = regional("first", "us-east", &[]).replace("    peers:\n", "");
    let (ok, out) = kubectl(&k, &["apply", "--dry-run=server", "-f", "-"], &alone);
    assert!(
        ok,
        "the first region of a global database (no peers) was refused: {out}"
    );

    // What the data plane would refuse at start (and crash-loop on), the API server refuses.
    for (manifest, message) in [
        (
            regional(
                "us",
                "us-east",
                &[eu, ("us-east", "https://self.example.com")],
            ),
            "a region cannot be its own peer",
        ),
        (
            regional(
                "us",
                "us-east",
                &[eu, ("eu-west", "https://other.example.com")],
            ),
            "each peer region may be named only once",
        ),
        (regional("us", "US-East", &[eu]), "spec.region.name"),
        (regional("us", &"a".repeat(33), &[eu]), "spec.region.name"),
        (
            regional("us", "us-east", &[("eu_west", eu.1)]),
            "spec.region.peers[0].name",
        ),
        (
            regional("us", "us-east", &[("eu-west", "ftp://eu-west.example.com")]),
            "spec.region.peers[0].endpoint",
        ),
        (
            regional(
                "us",
                "us-east",
                &[("eu-west", "https://a.example.com,b=https://b")],
            ),
            "spec.region.peers[0].endpoint",
        ),
        (regional("us", "us-west", &[eu]), "region.name is immutable"),
    ] {
        let (ok, out) = kubectl(&k, &["apply", "-f", "-"], &manifest);
        assert!(
            !ok && out.contains(message),
            "expected a refusal saying {message:?}, got: {out}"
        );
    }
    let no_secret =
        regional("nosecret", "us-east", &[eu]).replace("    credentialsSecret: replication\n", "");
    let (ok, out) = kubectl(&k, &["apply", "--dry-run=server", "-f", "-"], &no_secret);
    assert!(!ok && out.contains("credentialsSecret"), "{out}");
    // Peers change freely (each change rolls the pods).
    let (ok, out) = kubectl(&k, &["apply", "-f", "-"], &regional("us", "us-east", &[ap]));
    assert!(ok, "changing the peers was refused: {out}");
    kubectl(
        &k,
        &["delete", "namespace", "crd-regions", "--wait=false"],
        "",
    );
}

#[test]
fn the_api_server_accepts_every_desired_object() {
    use koru_crd::{KoruCluster, KoruClusterSpec, Storage};
    let Some(k) = kubeconfig() else { return };
    kubectl(&k, &["create", "namespace", "desired-test"], "");
    let mut kc = KoruCluster::new(
        "orders",
        KoruClusterSpec {
            version: "0.1.0".into(),
            image: None,
            replicas: 3,
            resources: Some(koru_crd::Resources {
                cpu: Some("500m".into()),
                memory: Some("1Gi".into()),
                autoscale: None,
            }),
            storage: Storage {
                size: "10Gi".into(),
                storage_class_name: Some("fast".into()),
                reclaim_policy: Some(koru_crd::ReclaimPolicy::Delete),
                autoscale: None,
            },
            durability: None,
            limits: None,
            auth: None,
            // Backups and a restore at start-up, so the init container is checked too.
            backup: Some(koru_crd::BackupSettings {
                destination: "s3://backups/orders".into(),
                credentials_secret: Some("orders-s3".into()),
                schedule: Some("0 3 * * *".into()),
                retention_days: Some(7),
                archive_timeout: Some("30s".into()),
                verify_schedule: Some("0 4 * * *".into()),
            }),
            bootstrap: Some(koru_crd::Bootstrap {
                from_backup: Some(koru_crd::FromBackup {
                    source: "s3://backups/old-orders".into(),
                    backup_id: None,
                    target_time: Some("2026-11-26T05:00:00Z".into()),
                }),
            }),
            paused: false,
            suspended: false,
            // A region, so its volume and settings are checked too.
            region: Some(koru_crd::RegionSpec {
                name: "us-east".into(),
                peers: vec![koru_crd::RegionPeer {
                    name: "eu-west".into(),
                    endpoint: "https://eu-west.db.example.com".into(),
                }],
                credentials_secret: "global-replication".into(),
            }),
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
