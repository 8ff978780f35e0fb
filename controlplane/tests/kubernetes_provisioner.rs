//! The Kubernetes provisioner against the real API server (testenv) and the real `koru-operator`
//! binary: a cluster becomes a namespace, a token Secret and a KoruCluster with the tier's limits;
//! the operator's status flows back through `state()` from Provisioning to Running; a new replica
//! count updates the KoruCluster; backups are requested as KoruBackups; delete removes what the
//! cluster had and leaves the namespace; what belongs to someone else is never touched; and a
//! global database is one KoruCluster per region sharing one replication Secret.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use base64::Engine;
use koru_controlplane::provisioner::kubernetes::{KubeProvisioner, KubeProvisionerConfig};
use koru_controlplane::provisioner::{ClusterSpec, ClusterState, ProvisionError};
use koru_testkit::{
    NamespaceGuard, Operator, eventually_async, field, install_crds, kubeconfig, kubectl,
    mark_pods_ready, operator_binary, unique,
};

const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";

/// A cluster of the organization `slug` with a tier's limits.
fn spec(slug: &str, name: &str) -> ClusterSpec {
    ClusterSpec {
        id: format!("cl-{}", unique("id")),
        name: name.to_string(),
        org_id: format!("org-{slug}"),
        org_slug: slug.to_string(),
        version: "0.1.0".to_string(),
        replicas: 1,
        storage_bytes: 1024 * 1024 * 1024,
        max_ops_per_sec: 1000,
        max_stored_bytes: 512 * 1024 * 1024,
        backup_retention_days: 1,
        restore: None,
        suspended: false,
        regions: Vec::new(),
        region: None,
        token_public_key_pem: PEM.to_string(),
        revocations_url: None,
    }
}

/// A client for the testenv API server, with the ring rustls provider the binaries install.
async fn provisioner(config: KubeProvisionerConfig) -> KubeProvisioner {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .expect("a client from KUBECONFIG");
    KubeProvisioner::new(client, config)
}

async fn state(p: &KubeProvisioner, spec: &ClusterSpec) -> ClusterState {
    p.state(spec).await.expect("state")
}

#[tokio::test]
async fn a_cluster_is_provisioned_run_by_the_operator_scaled_and_deleted() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let slug = unique("kprov");
    let p = provisioner(KubeProvisionerConfig::default()).await;
    let mut spec = spec(&slug, "orders");
    let ns = p.namespace_of(&spec).expect("a namespace name");
    assert_eq!(ns, format!("koru-{slug}"));
    let _guard = NamespaceGuard {
        kubeconfig: k.clone(),
        name: ns.clone(),
    };

    p.apply(&spec).await.expect("apply");

    // The organization's namespace, labelled with its id and manager.
    let labels = |object: &str| field(&k, &ns, object, "{.metadata.labels}").unwrap_or_default();
    let ns_labels = labels(&format!("namespace/{ns}"));
    assert!(
        ns_labels.contains(&format!("\"koru.dev/org-id\":\"{}\"", spec.org_id)),
        "{ns_labels}"
    );
    assert!(
        ns_labels.contains("\"app.kubernetes.io/managed-by\":\"koru-controlplane\""),
        "{ns_labels}"
    );
    // The token Secret with the public key.
    let key = field(&k, &ns, "secret/orders-token-key", "{.data.public\\.pem}")
        .expect("the token Secret");
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .expect("base64");
    assert_eq!(String::from_utf8(key).expect("utf-8"), PEM);
    assert!(labels("secret/orders-token-key").contains(&spec.id));
    // The KoruCluster with the tier's limits, the auth reference, durability and labels.
    let kc = |path: &str| field(&k, &ns, "koruclusters.koru.dev/orders", path).unwrap_or_default();
    assert_eq!(kc("{.spec.replicas}"), "1");
    assert_eq!(kc("{.spec.version}"), "0.1.0");
    assert_eq!(kc("{.spec.storage.size}"), "1073741824");
    assert_eq!(kc("{.spec.storage.reclaimPolicy}"), "Delete");
    assert_eq!(kc("{.spec.limits.maxOpsPerSec}"), "1000");
    assert_eq!(kc("{.spec.limits.maxStoredBytes}"), "536870912");
    assert_eq!(kc("{.spec.auth.publicKeySecret.name}"), "orders-token-key");
    assert_eq!(kc("{.spec.auth.publicKeySecret.key}"), "public.pem");
    assert_eq!(kc("{.spec.durability.fsync}"), "always");
    assert_eq!(kc("{.metadata.labels.koru\\.dev/cluster-id}"), spec.id);
    assert_eq!(kc("{.metadata.labels.koru\\.dev/org-id}"), spec.org_id);
    assert!(
        kc("{.metadata.managedFields[*].manager}").contains("koru-controlplane"),
        "{}",
        kc("{.metadata.managedFields}")
    );
    // No operator yet: the cluster waits.
    assert_eq!(
        state(&p, &spec).await,
        ClusterState {
            phase: "Pending".into(),
            ready_replicas: 0,
            endpoint: None,
            message: None,
            regions: Vec::new(),
        }
    );
    // Applying the same spec again writes nothing.
    let version = kc("{.metadata.resourceVersion}");
    p.apply(&spec).await.expect("second apply");
    assert_eq!(kc("{.metadata.resourceVersion}"), version);

    // The real operator picks it up: objects, then Provisioning while no pod is ready.
    let mut operator = Operator::start_with(&operator_binary(), &k, &ns);
    eventually_async(60, "the operator's StatefulSet and Services", || {
        operator.assert_running();
        let found = [
            "statefulset/orders",
            "service/orders",
            "service/orders-peers",
        ]
        .iter()
        .all(|o| field(&k, &ns, o, "{.metadata.name}").is_some());
        async move { found.then_some(()) }
    })
    .await;
    let provisioning = eventually_async(60, "state() to report Provisioning", || {
        operator.assert_running();
        let p = &p;
        let spec = &spec;
        async move { Some(state(p, spec).await).filter(|s| s.phase == "Provisioning") }
    })
    .await;
    assert_eq!(provisioning.ready_replicas, 0);
    let message = provisioning.message.expect("why it is not running");
    assert!(message.contains("waiting for pods"), "{message}");

    // A kubelet would mark the pod ready; then the cluster runs, with its endpoint.
    let running = eventually_async(60, "state() to report Running", || {
        operator.assert_running();
        mark_pods_ready(&k, &ns, "orders");
        let p = &p;
        let spec = &spec;
        async move { Some(state(p, spec).await).filter(|s| s.phase == "Running") }
    })
    .await;
    assert_eq!(
        running,
        ClusterState {
            phase: "Running".into(),
            ready_replicas: 1,
            endpoint: Some(format!("http://orders.{ns}.svc:7878")),
            message: None,
            regions: Vec::new(),
        }
    );

    // A bigger tier: three replicas and new limits re-apply the KoruCluster.
    spec.replicas = 3;
    spec.max_ops_per_sec = 5000;
    p.apply(&spec).await.expect("apply with 3 replicas");
    assert_eq!(kc("{.spec.replicas}"), "3");
    assert_eq!(kc("{.spec.limits.maxOpsPerSec}"), "5000");
    eventually_async(60, "the operator to scale the StatefulSet to 3", || {
        operator.assert_running();
        let replicas = field(&k, &ns, "statefulset/orders", "{.spec.replicas}");
        async move { (replicas.as_deref() == Some("3")).then_some(()) }
    })
    .await;
    let scaling = eventually_async(60, "state() to report Scaling", || {
        let p = &p;
        let spec = &spec;
        async move { Some(state(p, spec).await).filter(|s| s.phase == "Scaling") }
    })
    .await;
    let message = scaling.message.unwrap_or_default();
    assert!(message.contains("to 3 replicas"), "{message}");

    // An on-demand backup: the operator fails it at once, since hosted clusters have no backup
    // destination yet (issue 5), and says why.
    p.backup(&spec, "manual-1").await.expect("backup");
    assert_eq!(
        field(&k, &ns, "korubackups.koru.dev/manual-1", "{.spec.cluster}").as_deref(),
        Some("orders")
    );
    let failed = eventually_async(60, "the operator to check the backup", || {
        let p = &p;
        let spec = &spec;
        async move {
            p.backup_state(spec, "manual-1")
                .await
                .ok()
                .filter(|s| s.phase.is_some())
        }
    })
    .await;
    assert_eq!(failed.phase.as_deref(), Some("Failed"), "{failed:?}");
    assert!(
        failed
            .error
            .as_deref()
            .unwrap_or("")
            .contains("no spec.backup"),
        "{failed:?}"
    );

    // The StatefulSet controller made a volume claim per pod, which deletion must not leave.
    let pvcs = field(&k, &ns, "pvc", "{.items[*].metadata.name}").unwrap_or_default();
    assert!(pvcs.contains("data-orders-0"), "{pvcs}");

    // Delete removes the KoruCluster, its backups and its Secret; the namespace stays.
    p.delete(&spec).await.expect("delete");
    for object in [
        "koruclusters.koru.dev/orders",
        "korubackups.koru.dev/manual-1",
        "secret/orders-token-key",
    ] {
        eventually_async(30, &format!("{object} to go"), || {
            let gone = field(&k, &ns, object, "{.metadata.name}").is_none();
            async move { gone.then_some(()) }
        })
        .await;
    }
    assert!(field(&k, &ns, &format!("namespace/{ns}"), "{.metadata.name}").is_some());
    assert!(matches!(
        p.state(&spec).await,
        Err(ProvisionError::NotFound(id)) if id == spec.id
    ));
    // The garbage collector takes what the operator made, volumes included (reclaimPolicy Delete).
    eventually_async(
        60,
        "the StatefulSet and volume claims to be collected",
        || {
            let sts = field(&k, &ns, "statefulset/orders", "{.metadata.name}");
            let pvcs = field(&k, &ns, "pvc", "{.items[*].metadata.name}").unwrap_or_default();
            async move { (sts.is_none() && pvcs.is_empty()).then_some(()) }
        },
    )
    .await;
    // Deleting again is not an error.
    p.delete(&spec).await.expect("a second delete");
}

#[tokio::test]
async fn what_is_invalid_or_someone_elses_is_refused_with_a_clear_message() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let p = provisioner(KubeProvisionerConfig {
        namespace_prefix: "kt-".into(),
        image: Some("registry.example/koru-dataplane".into()),
        storage_class: Some("fast".into()),
        ..Default::default()
    })
    .await;

    // A name the operator would refuse is refused before anything is written.
    let slug = unique("kprov-bad");
    let bad = spec(&slug, "1-not-a-label");
    let err = p.apply(&bad).await.expect_err("an invalid name");
    assert!(
        matches!(&err, ProvisionError::Kubernetes(m) if m.contains("not a DNS label of at most 40 characters")),
        "{err}"
    );
    let (ok, _) = kubectl(&k, &["get", "namespace", &format!("kt-{slug}")], "");
    assert!(!ok, "an invalid spec created the namespace");

    // The configured image and storage class reach the KoruCluster; the API server's own
    // validation message comes back as the error (a quota below the CRD's 1 MiB minimum).
    let slug = unique("kprov-cfg");
    let ns = format!("kt-{slug}");
    let _guard = NamespaceGuard {
        kubeconfig: k.clone(),
        name: ns.clone(),
    };
    let mut good = spec(&slug, "inventory");
    p.apply(&good).await.expect("apply");
    let kc =
        |path: &str| field(&k, &ns, "koruclusters.koru.dev/inventory", path).unwrap_or_default();
    assert_eq!(kc("{.spec.image}"), "registry.example/koru-dataplane");
    assert_eq!(kc("{.spec.storage.storageClassName}"), "fast");
    good.max_stored_bytes = 1000;
    let err = p.apply(&good).await.expect_err("a quota below the minimum");
    assert!(
        matches!(&err, ProvisionError::Kubernetes(m) if m.contains("maxStoredBytes") && m.contains("1048576")),
        "{err}"
    );

    // Another cluster (another id) under the same name is neither taken over, read nor deleted.
    let other = ClusterSpec {
        id: "cl-someone-else".into(),
        ..spec(&slug, "inventory")
    };
    let err = p
        .apply(&other)
        .await
        .expect_err("a name held by another cluster");
    assert!(
        matches!(&err, ProvisionError::Kubernetes(m) if m.contains("belongs to another cluster")),
        "{err}"
    );
    assert!(matches!(
        p.state(&other).await,
        Err(ProvisionError::NotFound(_))
    ));
    p.delete(&other).await.expect("delete of another id");
    assert_eq!(kc("{.metadata.labels.koru\\.dev/cluster-id}"), good.id);
    assert!(field(&k, &ns, "secret/inventory-token-key", "{.metadata.name}").is_some());

    // An unknown cluster: NotFound from state, nothing from delete (its namespace does not exist).
    let unknown = spec(&unique("kprov-none"), "ghost");
    assert!(matches!(
        p.state(&unknown).await,
        Err(ProvisionError::NotFound(_))
    ));
    p.delete(&unknown)
        .await
        .expect("deleting an unknown cluster");

    // A namespace of the same name that is not this organization's is never used.
    let slug = unique("kprov-foreign");
    let foreign = format!("kt-{slug}");
    let _foreign_guard = NamespaceGuard {
        kubeconfig: k.clone(),
        name: foreign.clone(),
    };
    let (ok, out) = kubectl(&k, &["create", "namespace", &foreign], "");
    assert!(ok, "{out}");
    let err = p
        .apply(&spec(&slug, "orders"))
        .await
        .expect_err("a foreign namespace");
    assert!(
        matches!(&err, ProvisionError::Kubernetes(m) if m.contains("is not organization")),
        "{err}"
    );
    let (_, out) = kubectl(&k, &["get", "koruclusters.koru.dev", "-n", &foreign], "");
    assert!(!out.contains("orders"), "{out}");
}

#[tokio::test]
async fn clusters_archive_to_their_own_prefix_and_a_restore_starts_from_its_source() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    // The object store credentials live beside the control plane; each organization gets a copy.
    let home = unique("kprov-home");
    let _home_guard = NamespaceGuard {
        kubeconfig: k.clone(),
        name: home.clone(),
    };
    let (ok, out) = kubectl(&k, &["create", "namespace", &home], "");
    assert!(ok, "{out}");
    let (ok, out) = kubectl(
        &k,
        &[
            "-n",
            &home,
            "create",
            "secret",
            "generic",
            "s3",
            "--from-literal=AWS_ACCESS_KEY_ID=koru",
            "--from-literal=AWS_SECRET_ACCESS_KEY=secret",
        ],
        "",
    );
    assert!(ok, "{out}");
    let p = provisioner(KubeProvisionerConfig {
        backup_destination: Some("s3://backups/hosted/".into()),
        backup_credentials: Some((home.clone(), "s3".into())),
        ..Default::default()
    })
    .await;
    let slug = unique("kprov-pitr");
    let source = spec(&slug, "orders");
    let ns = p.namespace_of(&source).expect("a namespace name");
    let _guard = NamespaceGuard {
        kubeconfig: k.clone(),
        name: ns.clone(),
    };
    p.apply(&source).await.expect("apply");
    let kc = |name: &str, path: &str| {
        field(&k, &ns, &format!("koruclusters.koru.dev/{name}"), path).unwrap_or_default()
    };
    assert_eq!(
        kc("orders", "{.spec.backup.destination}"),
        format!("s3://backups/hosted/{}/{}", source.org_id, source.id)
    );
    assert_eq!(
        kc("orders", "{.spec.backup.credentialsSecret}"),
        "koru-backup-credentials"
    );
    assert_eq!(kc("orders", "{.spec.backup.schedule}"), "0 * * * *");
    assert_eq!(kc("orders", "{.spec.backup.retentionDays}"), "1");
    assert_eq!(kc("orders", "{.spec.backup.verifySchedule}"), "30 4 * * *");
    assert_eq!(kc("orders", "{.spec.bootstrap}"), "");
    let copied = field(
        &k,
        &ns,
        "secret/koru-backup-credentials",
        "{.data.AWS_ACCESS_KEY_ID}",
    )
    .expect("the copied credentials");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(copied)
            .unwrap(),
        b"koru"
    );

    // The restored cluster reads its source's prefix and archives to a prefix of its own.
    let restored = ClusterSpec {
        restore: Some(koru_controlplane::provisioner::RestoreSource {
            cluster_id: source.id.clone(),
            backup_id: None,
            target_time: Some("2026-11-26T10:00:00.000000Z".into()),
        }),
        ..spec(&slug, "orders-restored")
    };
    p.apply(&restored).await.expect("apply the restore");
    assert_eq!(
        kc("orders-restored", "{.spec.bootstrap.fromBackup.source}"),
        format!("s3://backups/hosted/{}/{}", source.org_id, source.id)
    );
    assert_eq!(
        kc("orders-restored", "{.spec.bootstrap.fromBackup.targetTime}"),
        "2026-11-26T10:00:00.000000Z"
    );
    assert_eq!(
        kc("orders-restored", "{.spec.backup.destination}"),
        format!("s3://backups/hosted/{}/{}", restored.org_id, restored.id)
    );

    // Without a destination there is nothing to restore from: refused before anything is written.
    let bare = provisioner(KubeProvisionerConfig::default()).await;
    let lost = ClusterSpec {
        restore: restored.restore.clone(),
        ..spec(&slug, "orders-nowhere")
    };
    let err = bare.apply(&lost).await.expect_err("no destination");
    assert!(
        matches!(&err, ProvisionError::Kubernetes(m) if m.contains("--backup-destination")),
        "{err}"
    );
    assert_eq!(kc("orders-nowhere", "{.metadata.name}"), "");
}

#[tokio::test]
async fn suspending_writes_spec_suspended_and_resuming_removes_it() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let slug = unique("ksleep");
    let p = provisioner(KubeProvisionerConfig::default()).await;
    let mut spec = spec(&slug, "orders");
    let ns = p.namespace_of(&spec).expect("a namespace name");
    let _guard = NamespaceGuard {
        kubeconfig: k.clone(),
        name: ns.clone(),
    };
    let kc = |path: &str| field(&k, &ns, "koruclusters.koru.dev/orders", path).unwrap_or_default();
    p.apply(&spec).await.expect("apply");
    assert_eq!(kc("{.spec.suspended}"), "");
    spec.suspended = true;
    p.apply(&spec).await.expect("suspend");
    assert_eq!(kc("{.spec.suspended}"), "true");
    assert_eq!(
        kc("{.spec.replicas}"),
        "1",
        "the replica count is kept for the resume"
    );
    spec.suspended = false;
    p.apply(&spec).await.expect("resume");
    assert_eq!(kc("{.spec.suspended}"), "", "the resume removes the field");
}

#[tokio::test]
async fn a_global_database_is_one_koru_cluster_per_region_sharing_one_secret() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let slug = unique("kglobal");
    let p = provisioner(KubeProvisionerConfig::default()).await;
    let spec = ClusterSpec {
        regions: vec!["us-east".into(), "eu-west".into()],
        ..spec(&slug, "orders")
    };
    let ns = p.namespace_of(&spec).expect("a namespace name");
    let _guard = NamespaceGuard {
        kubeconfig: k.clone(),
        name: ns.clone(),
    };
    p.apply(&spec).await.expect("apply");

    // The primary keeps the cluster's name; the other region is `<name>-<region>`; each names
    // the other as its peer at its Service and the one replication Secret.
    let kc = |name: &str, path: &str| {
        field(&k, &ns, &format!("koruclusters.koru.dev/{name}"), path).unwrap_or_default()
    };
    let secret = format!("{}-replication", spec.id);
    for (name, region, peer, peer_url) in [
        (
            "orders",
            "us-east",
            "eu-west",
            format!("http://orders-eu-west.{ns}.svc:7878"),
        ),
        (
            "orders-eu-west",
            "eu-west",
            "us-east",
            format!("http://orders.{ns}.svc:7878"),
        ),
    ] {
        assert_eq!(kc(name, "{.spec.region.name}"), region);
        assert_eq!(kc(name, "{.spec.region.peers[*].name}"), peer);
        assert_eq!(kc(name, "{.spec.region.peers[*].endpoint}"), peer_url);
        assert_eq!(kc(name, "{.spec.region.credentialsSecret}"), secret);
        assert_eq!(
            kc(name, "{.spec.auth.clusterId}"),
            spec.id,
            "tokens name the database"
        );
    }
    let token = field(&k, &ns, &format!("secret/{secret}"), "{.data.token}").expect("the Secret");
    assert!(token.len() >= 32, "{token}");

    // Applying again keeps the secret: every region keeps presenting and accepting it.
    p.apply(&spec).await.expect("apply again");
    assert_eq!(
        field(&k, &ns, &format!("secret/{secret}"), "{.data.token}").as_deref(),
        Some(token.as_str())
    );
    let seen = state(&p, &spec).await;
    assert_eq!(seen.phase, "Pending");
    assert_eq!(
        seen.regions
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["us-east", "eu-west"]
    );

    p.delete(&spec).await.expect("delete");
    let gone = |object: String| field(&k, &ns, &object, "{.metadata.name}").is_none();
    eventually_async(30, "every region and the Secret are gone", || async {
        (gone("koruclusters.koru.dev/orders".into())
            && gone("koruclusters.koru.dev/orders-eu-west".into())
            && gone(format!("secret/{secret}")))
        .then_some(())
    })
    .await;
}
