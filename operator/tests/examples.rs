//! Every manifest under `examples/` applied with the real kubectl to the real API server, with a
//! real `koru-operator` watching: each makes the objects and status its comments promise.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use common::start_operator;
use koru_testkit::{
    eventually, field, fresh_namespace, install_crds, kubeconfig, kubectl, mark_pods_ready,
};

/// Applies `examples/<file>` into `ns` the way its header comment tells users to.
fn apply_example(k: &str, ns: &str, file: &str) {
    let path = format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let (ok, out) = kubectl(k, &["apply", "-n", ns, "-f", &path], "");
    assert!(ok, "kubectl apply -f examples/{file}: {out}");
}

#[test]
fn every_example_is_listed_here() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "backup.yaml",
            "cluster-minimal.yaml",
            "cluster-production.yaml",
            "global-database.yaml"
        ],
        "a new example needs a test in this file"
    );
}

#[test]
fn the_minimal_cluster_runs_one_pod() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "example-minimal";
    fresh_namespace(&k, ns);
    let mut operator = start_operator(&k, ns);
    apply_example(&k, ns, "cluster-minimal.yaml");
    eventually(&mut operator, 120, "hello Running with 1 replica", || {
        mark_pods_ready(&k, ns, "hello");
        field(
            &k,
            ns,
            "kc/hello",
            "{.status.phase}/{.status.readyReplicas}",
        )
        .filter(|s| s == "Running/1")
    });
    assert_eq!(
        field(&k, ns, "statefulset/hello", "{.spec.replicas}").as_deref(),
        Some("1")
    );
    assert_eq!(
        field(&k, ns, "pdb/hello", "{.metadata.name}"),
        None,
        "one pod has no disruption budget"
    );
    assert_eq!(
        field(&k, ns, "kc/hello", "{.status.endpoint}").as_deref(),
        Some("http://hello.example-minimal.svc:7878")
    );
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}

#[test]
fn the_production_cluster_and_its_backup() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "example-production";
    fresh_namespace(&k, ns);
    let mut operator = start_operator(&k, ns);
    apply_example(&k, ns, "cluster-production.yaml");
    eventually(&mut operator, 60, "the orders StatefulSet", || {
        field(&k, ns, "statefulset/orders", "{.spec.replicas}").filter(|r| r == "3")
    });
    let config = field(
        &k,
        ns,
        "configmap/orders-config",
        "{.data.KORU_FSYNC} {.data.KORU_MAX_OPS_PER_SEC} {.data.KORU_MAX_STORED_BYTES} {.data.KORU_AUTH_PUBLIC_KEY} {.data.KORU_CLUSTER_ID}",
    );
    assert_eq!(
        config.as_deref(),
        // Applied by hand, with no spec.auth.clusterId: tokens are for `<namespace>/<name>`.
        Some("always 10000 107374182400 /etc/koru/auth/public.pem example-production/orders")
    );
    let backups = field(
        &k,
        ns,
        "configmap/orders-config",
        "{.data.KORU_BACKUP_STORE}|{.data.KORU_BACKUP_SCHEDULE}|{.data.KORU_BACKUP_RETENTION}|{.data.KORU_ARCHIVE_TIMEOUT}|{.data.KORU_VERIFY_SCHEDULE}",
    );
    assert_eq!(
        backups.as_deref(),
        Some("s3://koru-backups/orders|0 3 * * *|7d|30s|0 4 * * *")
    );
    let pod = field(
        &k,
        ns,
        "statefulset/orders",
        "{.spec.template.spec.volumes[0].secret.secretName} {.spec.template.spec.containers[0].resources.requests.cpu} {.spec.template.spec.containers[0].resources.limits.memory} {.spec.volumeClaimTemplates[0].spec.resources.requests.storage} {.spec.persistentVolumeClaimRetentionPolicy.whenDeleted}",
    );
    assert_eq!(pod.as_deref(), Some("orders-token-key 2 4Gi 100Gi Retain"));
    assert_eq!(
        field(&k, ns, "pdb/orders", "{.spec.maxUnavailable}").as_deref(),
        Some("1")
    );
    eventually(&mut operator, 120, "orders Running with 3 replicas", || {
        mark_pods_ready(&k, ns, "orders");
        field(
            &k,
            ns,
            "kc/orders",
            "{.status.phase}/{.status.readyReplicas}",
        )
        .filter(|s| s == "Running/3")
    });
    // Drills are scheduled and none has run (no data plane answers here).
    assert_eq!(
        field(
            &k,
            ns,
            "kc/orders",
            "{.status.conditions[?(@.type==\"BackupVerified\")].status}/{.status.conditions[?(@.type==\"BackupVerified\")].reason}",
        )
        .as_deref(),
        Some("Unknown/NoDrillYet")
    );

    apply_example(&k, ns, "backup.yaml");
    assert_eq!(
        field(
            &k,
            ns,
            "korubackup/orders-before-migration",
            "{.spec.cluster}"
        )
        .as_deref(),
        Some("orders")
    );
    // Its data plane would answer at the client Service, which this test process cannot reach:
    // the backup runs and retries (the deadline is 10 minutes).
    let retrying = eventually(&mut operator, 60, "the backup retrying", || {
        field(
            &k,
            ns,
            "korubackup/orders-before-migration",
            "{.status.phase}: {.status.message}",
        )
        .filter(|s| s.starts_with("Running: attempt"))
    });
    assert!(
        retrying.contains("http://orders.example-production.svc:7878 cannot be reached"),
        "{retrying}"
    );
    assert!(
        field(&k, ns, "secret/orders-admin", "{.data.token}").is_some(),
        "the cluster got its admin token"
    );
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}

#[test]
fn the_global_database_runs_three_regions_sharing_one_secret() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "example-global";
    fresh_namespace(&k, ns);
    let mut operator = start_operator(&k, ns);
    apply_example(&k, ns, "global-database.yaml");
    let regions = [
        ("us-east", "eu-west", "ap-south"),
        ("eu-west", "us-east", "ap-south"),
        ("ap-south", "us-east", "eu-west"),
    ];
    for (region, a, b) in regions {
        let cluster = format!("orders-{region}");
        eventually(
            &mut operator,
            60,
            &format!("the {cluster} StatefulSet"),
            || {
                field(
                    &k,
                    ns,
                    &format!("statefulset/{cluster}"),
                    "{.spec.replicas}",
                )
                .filter(|r| r == "3")
            },
        );
        let settings = field(
            &k,
            ns,
            &format!("configmap/{cluster}-config"),
            "{.data.KORU_REGION}|{.data.KORU_REGION_PEERS}|{.data.KORU_REGION_TOKEN_FILE}",
        );
        assert_eq!(
            settings,
            Some(format!(
                "{region}|{a}=https://orders.{a}.db.example.com,{b}=https://orders.{b}.db.example.com|/etc/koru/region/token"
            ))
        );
        let secret = field(
            &k,
            ns,
            &format!("statefulset/{cluster}"),
            "{.spec.template.spec.volumes[?(@.name==\"region-token\")].secret.secretName}",
        );
        assert_eq!(secret.as_deref(), Some("orders-replication"));
    }
    for (region, _, _) in regions {
        let cluster = format!("orders-{region}");
        eventually(&mut operator, 120, &format!("{cluster} Running"), || {
            mark_pods_ready(&k, ns, &cluster);
            field(&k, ns, &format!("kc/{cluster}"), "{.status.phase}").filter(|p| p == "Running")
        });
        // No data plane answers here: the streams are not known yet.
        assert_eq!(
            field(
                &k,
                ns,
                &format!("kc/{cluster}"),
                "{.status.conditions[?(@.type==\"RegionsHealthy\")].status}/{.status.conditions[?(@.type==\"RegionsHealthy\")].reason}",
            )
            .as_deref(),
            Some("Unknown/NotYetChecked")
        );
    }
    kubectl(&k, &["delete", "namespace", ns, "--wait=false"], "");
}
