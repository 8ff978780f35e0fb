//! Unit tests of the desired objects.

use super::*;
use koru_crd::{Durability, KoruClusterSpec, Limits, Storage};

/// A cluster `orders` in `team-a` with every optional part of the spec but region, backup and
/// auth: the fixture the operator's unit tests share.
pub(crate) fn cluster(replicas: i32) -> KoruCluster {
    let mut kc = KoruCluster::new(
        "orders",
        KoruClusterSpec {
            version: "0.1.0".into(),
            image: None,
            replicas,
            resources: None,
            storage: Storage {
                size: "10Gi".into(),
                storage_class_name: Some("fast".into()),
                reclaim_policy: None,
                autoscale: None,
            },
            durability: Some(Durability {
                fsync: "always".into(),
            }),
            limits: Some(Limits {
                max_ops_per_sec: Some(100),
                max_stored_bytes: Some(1 << 30),
            }),
            auth: None,
            backup: None,
            bootstrap: None,
            paused: false,
            suspended: false,
            region: None,
        },
    );
    kc.metadata.namespace = Some("team-a".into());
    kc.metadata.uid = Some("uid-1".into());
    kc
}

#[test]
fn every_object_is_owned_named_and_labelled() {
    let d = desired(&cluster(3)).unwrap();
    let metas = [
        &d.config.metadata,
        &d.headless.metadata,
        &d.client.metadata,
        &d.statefulset.metadata,
        &d.pdb.as_ref().unwrap().metadata,
    ];
    for meta in metas {
        assert_eq!(meta.namespace.as_deref(), Some("team-a"));
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("KoruCluster", "uid-1", Some(true))
        );
    }
    assert_eq!(d.headless.metadata.name.as_deref(), Some("orders-peers"));
    assert_eq!(
        d.headless.spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("None")
    );
    assert_eq!(d.client.metadata.name.as_deref(), Some("orders"));
}

#[test]
fn the_statefulset_follows_the_spec() {
    let d = desired(&cluster(3)).unwrap();
    let spec = d.statefulset.spec;
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.service_name.as_deref(), Some("orders-peers"));
    let pod = spec.template.spec.unwrap();
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("ghcr.io/koru/koru-dataplane:0.1.0")
    );
    assert_eq!(
        c.readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        c.liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/healthz")
    );
    assert_eq!(
        c.security_context
            .as_ref()
            .unwrap()
            .read_only_root_filesystem,
        Some(true)
    );
    let claim = &spec.volume_claim_templates.unwrap()[0];
    let claim_spec = claim.spec.as_ref().unwrap();
    assert_eq!(claim_spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        claim_spec
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"],
        Quantity("10Gi".into())
    );
}

#[test]
fn volumes_are_kept_unless_the_policy_says_delete() {
    let kept = desired(&cluster(3)).unwrap().statefulset.spec;
    let policy = kept.persistent_volume_claim_retention_policy.unwrap();
    assert_eq!(
        (
            policy.when_deleted.as_deref(),
            policy.when_scaled.as_deref()
        ),
        (Some("Retain"), Some("Retain"))
    );
    let mut kc = cluster(3);
    kc.spec.storage.reclaim_policy = Some(ReclaimPolicy::Delete);
    let policy = desired(&kc)
        .unwrap()
        .statefulset
        .spec
        .persistent_volume_claim_retention_policy
        .unwrap();
    assert_eq!(
        (
            policy.when_deleted.as_deref(),
            policy.when_scaled.as_deref()
        ),
        (Some("Delete"), Some("Delete"))
    );
}

#[test]
fn the_claim_template_size_can_be_read_and_held_back() {
    let mut sts = desired(&cluster(1)).unwrap().statefulset;
    assert_eq!(claim_template_size(&sts).as_deref(), Some("10Gi"));
    set_claim_template_size(&mut sts, "5Gi");
    assert_eq!(claim_template_size(&sts).as_deref(), Some("5Gi"));
    assert_eq!(
        selector_string(&cluster(1)).unwrap(),
        "app.kubernetes.io/instance=orders,app.kubernetes.io/name=koru-dataplane"
    );
}

#[test]
fn the_config_carries_durability_and_tier_limits() {
    let data = desired(&cluster(1)).unwrap().config.data.unwrap();
    assert_eq!(data["KORU_FSYNC"], "always");
    assert_eq!(data["KORU_MAX_OPS_PER_SEC"], "100");
    assert_eq!(data["KORU_MAX_STORED_BYTES"], (1u64 << 30).to_string());
    assert!(
        !data.contains_key("KORU_CLUSTER_ID"),
        "the data plane refuses a cluster id without a key"
    );
}

#[test]
fn a_configuration_change_rolls_the_pods_and_nothing_else_does() {
    let digest = |kc: &KoruCluster| {
        let d = desired(kc).unwrap();
        let template = d.statefulset.spec.template.metadata.unwrap();
        let annotation = template.annotations.unwrap()[CONFIG_HASH_ANNOTATION].clone();
        assert_eq!(annotation, config_digest(&d.config));
        annotation
    };
    let base = cluster(1);
    let same = digest(&base);
    assert_eq!(same.len(), 64);
    assert_eq!(digest(&base), same, "stable for the same spec");
    let mut scaled = cluster(3);
    scaled.spec.version = base.spec.version.clone();
    assert_eq!(digest(&scaled), same, "replicas are not configuration");
    let mut faster = cluster(1);
    faster.spec.limits.as_mut().unwrap().max_ops_per_sec = Some(10_000);
    assert_ne!(
        digest(&faster),
        same,
        "a new tier's limits restart the data plane"
    );
}

#[test]
fn backups_archive_with_credentials_and_a_bootstrap_restores_first() {
    let mut kc = cluster(3);
    kc.spec.backup = Some(koru_crd::BackupSettings {
        destination: "s3://backups/orders".into(),
        credentials_secret: Some("orders-s3".into()),
        schedule: None,
        retention_days: None,
        archive_timeout: None,
        verify_schedule: None,
    });
    let d = desired(&kc).unwrap();
    assert_eq!(
        d.config.data.unwrap()["KORU_BACKUP_STORE"],
        "s3://backups/orders"
    );
    let pod = d.statefulset.spec.template.spec.unwrap();
    assert!(pod.init_containers.is_none(), "no bootstrap, no restore");
    let from = &pod.containers[0].env_from.as_ref().unwrap()[1];
    assert_eq!(from.secret_ref.as_ref().unwrap().name, "orders-s3");
    assert_eq!(
        pod.containers[0].volume_mounts.as_ref().unwrap()[0].mount_path,
        "/var/lib/koru"
    );

    kc.spec.bootstrap = Some(koru_crd::Bootstrap {
        from_backup: Some(koru_crd::FromBackup {
            source: "s3://backups/old".into(),
            backup_id: Some("b1".into()),
            target_time: Some("2026-11-26T05:00:00Z".into()),
        }),
    });
    let pod = desired(&kc)
        .unwrap()
        .statefulset
        .spec
        .template
        .spec
        .unwrap();
    let restore = &pod.init_containers.unwrap()[0];
    assert_eq!(
        restore.args.as_ref().unwrap().join(" "),
        "restore --from s3://backups/old --data-dir /var/lib/koru/data --skip-existing \
         --backup b1 --target-time 2026-11-26T05:00:00Z"
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert_eq!(restore.image, pod.containers[0].image);
    assert_eq!(
        restore.env_from.as_ref().unwrap()[0]
            .secret_ref
            .as_ref()
            .unwrap()
            .name,
        "orders-s3"
    );
    assert_eq!(
        restore
            .security_context
            .as_ref()
            .unwrap()
            .read_only_root_filesystem,
        Some(true)
    );
}

#[test]
fn backup_schedules_retention_and_drills_reach_the_data_plane() {
    let mut kc = cluster(3);
    let backup_keys = |kc: &KoruCluster| -> Vec<(String, String)> {
        desired(kc)
            .unwrap()
            .config
            .data
            .unwrap()
            .into_iter()
            .filter(|(k, _)| {
                k.starts_with("KORU_BACKUP")
                    || k == "KORU_ARCHIVE_TIMEOUT"
                    || k == "KORU_VERIFY_SCHEDULE"
            })
            .collect()
    };
    assert!(
        backup_keys(&kc).is_empty(),
        "no backups, no backup settings"
    );

    // Archiving only: the data plane's defaults (60 s timeout, no schedule, keep everything).
    kc.spec.backup = Some(koru_crd::BackupSettings {
        destination: "s3://backups/orders".into(),
        credentials_secret: None,
        schedule: None,
        retention_days: None,
        archive_timeout: None,
        verify_schedule: None,
    });
    assert_eq!(
        backup_keys(&kc),
        [("KORU_BACKUP_STORE".into(), "s3://backups/orders".into())]
    );

    let backup = kc.spec.backup.as_mut().unwrap();
    backup.schedule = Some("0 3 * * *".into());
    backup.retention_days = Some(7);
    backup.archive_timeout = Some("30s".into());
    backup.verify_schedule = Some(" @daily ".into());
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        backup_keys(&kc),
        pairs(&[
            ("KORU_ARCHIVE_TIMEOUT", "30s"),
            ("KORU_BACKUP_RETENTION", "7d"),
            ("KORU_BACKUP_SCHEDULE", "0 3 * * *"),
            ("KORU_BACKUP_STORE", "s3://backups/orders"),
            ("KORU_VERIFY_SCHEDULE", "@daily"),
        ])
    );
    // Every pod reads them: the one ConfigMap is the first source of the container's env.
    let pod = desired(&kc)
        .unwrap()
        .statefulset
        .spec
        .template
        .spec
        .unwrap();
    let from = &pod.containers[0].env_from.as_ref().unwrap()[0];
    assert_eq!(from.config_map_ref.as_ref().unwrap().name, "orders-config");
}

#[test]
fn auth_mounts_the_key_secret_and_names_the_cluster() {
    let mut kc = cluster(1);
    kc.spec.auth = Some(koru_crd::Auth {
        public_key_secret: koru_crd::SecretKeyRef {
            name: "orders-token-key".into(),
            key: "public.pem".into(),
        },
        cluster_id: None,
        revocations_url: None,
    });
    let d = desired(&kc).unwrap();
    let data = d.config.data.unwrap();
    // Applied by hand: the namespace makes the id unique, so `orders` of another namespace
    // (another tenant) never shares it.
    let ns = kc.metadata.namespace.clone().unwrap();
    assert_eq!(data["KORU_CLUSTER_ID"], format!("{ns}/orders"));
    assert!(!data.contains_key("KORU_REVOCATIONS_URL"));
    assert_eq!(data["KORU_AUTH_PUBLIC_KEY"], "/etc/koru/auth/public.pem");
    let pod = d.statefulset.spec.template.spec.unwrap();
    let secret = pod.volumes.unwrap()[0].secret.clone().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("orders-token-key"));
    let mounts = pod.containers[0].volume_mounts.clone().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m.mount_path == "/etc/koru/auth" && m.read_only == Some(true))
    );
}

#[test]
fn the_control_planes_cluster_id_and_revocation_list_reach_the_data_plane() {
    let mut kc = cluster(1);
    kc.spec.auth = Some(koru_crd::Auth {
        public_key_secret: koru_crd::SecretKeyRef {
            name: "orders-token-key".into(),
            key: "public.pem".into(),
        },
        cluster_id: Some("0b5f6d3e-cluster-uuid".into()),
        revocations_url: Some("https://cloud.example/api/v1/clusters/0b5f/revocations".into()),
    });
    let data = desired(&kc).unwrap().config.data.unwrap();
    assert_eq!(data["KORU_CLUSTER_ID"], "0b5f6d3e-cluster-uuid");
    assert_eq!(
        data["KORU_REVOCATIONS_URL"],
        "https://cloud.example/api/v1/clusters/0b5f/revocations"
    );
}

#[test]
fn the_disruption_budget_keeps_a_majority() {
    assert!(
        desired(&cluster(1)).unwrap().pdb.is_none(),
        "a single pod has no majority to protect"
    );
    for (replicas, unavailable) in [(3, 1), (5, 2), (7, 3)] {
        let pdb = desired(&cluster(replicas)).unwrap().pdb.unwrap();
        assert_eq!(
            pdb.spec.unwrap().max_unavailable,
            Some(IntOrString::Int(unavailable))
        );
    }
}

#[test]
fn a_cluster_without_a_namespace_is_an_error_not_a_panic() {
    let mut kc = cluster(1);
    kc.metadata.namespace = None;
    assert_eq!(desired(&kc).err(), Some(DesiredError::Missing("namespace")));
}

#[test]
fn every_cluster_mounts_its_admin_token_read_only_and_names_the_file() {
    let mut kc = cluster(3);
    kc.spec.auth = Some(koru_crd::Auth {
        public_key_secret: koru_crd::SecretKeyRef {
            name: "orders-token-key".into(),
            key: "public.pem".into(),
        },
        cluster_id: None,
        revocations_url: None,
    });
    for kc in [cluster(1), kc] {
        let d = desired(&kc).unwrap();
        assert_eq!(
            d.config.data.unwrap()["KORU_ADMIN_TOKEN_FILE"],
            "/etc/koru/admin/token"
        );
        let pod = d.statefulset.spec.template.spec.unwrap();
        let volumes = pod.volumes.unwrap();
        let admin = volumes.iter().find(|v| v.name == "admin-token").unwrap();
        let secret = admin.secret.as_ref().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("orders-admin"));
        assert_eq!(secret.items.as_ref().unwrap()[0].key, "token");
        assert_eq!(secret.default_mode, Some(0o440));
        let mounts = pod.containers[0].volume_mounts.clone().unwrap();
        let mount = mounts.iter().find(|m| m.name == "admin-token").unwrap();
        assert_eq!(
            (mount.mount_path.as_str(), mount.read_only),
            ("/etc/koru/admin", Some(true))
        );
        if kc.spec.auth.is_some() {
            assert_eq!(volumes[0].name, "auth-key", "the key volume stays first");
        }
    }
}

#[test]
fn the_admin_secret_is_owned_and_holds_the_token() {
    let secret = admin_secret(&cluster(1), "c0ffee").unwrap();
    assert_eq!(secret.metadata.name.as_deref(), Some("orders-admin"));
    assert_eq!(secret.metadata.namespace.as_deref(), Some("team-a"));
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("KoruCluster", "uid-1")
    );
    assert_eq!(
        secret.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
        "koru-operator"
    );
    assert_eq!(secret.data.unwrap()["token"].0, b"c0ffee");
    let mut kc = cluster(1);
    kc.metadata.uid = None;
    assert_eq!(
        admin_secret(&kc, "t").err(),
        Some(DesiredError::Missing("uid"))
    );
}

#[test]
fn the_peer_port_is_exposed_to_the_clusters_own_pods_only() {
    let d = desired(&cluster(3)).unwrap();
    let ports = |svc: &Service| -> Vec<(String, i32)> {
        svc.spec
            .as_ref()
            .unwrap()
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap(), p.port))
            .collect()
    };
    assert_eq!(
        ports(&d.client),
        [("http".to_string(), HTTP_PORT)],
        "the client Service never routes to the peer port"
    );
    assert_eq!(
        ports(&d.headless),
        [
            ("http".to_string(), HTTP_PORT),
            ("peer".to_string(), PEER_PORT)
        ]
    );
    let pod = d.statefulset.spec.template.spec.unwrap();
    let container_ports: Vec<i32> = pod.containers[0]
        .ports
        .iter()
        .flatten()
        .map(|p| p.container_port)
        .collect();
    assert_eq!(container_ports, [HTTP_PORT, PEER_PORT]);
    let data = d.config.data.unwrap();
    assert_eq!(data["KORU_PEER_LISTEN"], format!("0.0.0.0:{PEER_PORT}"));
    assert_eq!(
        data["KORU_PEER_TEMPLATE"],
        format!("orders-{{id}}.orders-peers.team-a.svc:{PEER_PORT}"),
        "members reach each other on the peer port"
    );

    let policy = d.network_policy;
    assert_eq!(policy.metadata.name.as_deref(), Some("orders"));
    assert_eq!(
        policy.metadata.owner_references.unwrap()[0].uid,
        "uid-1",
        "owned, so it goes with the cluster"
    );
    let spec = policy.spec.unwrap();
    let own = spec.pod_selector.unwrap().match_labels.unwrap();
    assert_eq!(own["app.kubernetes.io/instance"], "orders");
    assert_eq!(spec.policy_types.unwrap(), ["Ingress"]);
    let rules = spec.ingress.unwrap();
    let port_of = |r: &k8s_openapi::api::networking::v1::NetworkPolicyIngressRule| {
        let ports = r.ports.as_ref().unwrap();
        assert_eq!(ports.len(), 1);
        match ports[0].port {
            Some(IntOrString::Int(n)) => n,
            ref other => panic!("port {other:?}"),
        }
    };
    assert_eq!(
        rules.len(),
        2,
        "the client port and the peer port, nothing else"
    );
    let client = rules.iter().find(|r| port_of(r) == HTTP_PORT).unwrap();
    assert!(
        client.from.is_none(),
        "the client port stays open as before"
    );
    let peer = rules.iter().find(|r| port_of(r) == PEER_PORT).unwrap();
    let from = peer.from.as_ref().unwrap();
    assert_eq!(from.len(), 1);
    assert!(from[0].namespace_selector.is_none() && from[0].ip_block.is_none());
    assert_eq!(
        from[0].pod_selector.as_ref().unwrap().match_labels.as_ref(),
        Some(&own),
        "only this cluster's pods (in its namespace) reach the peer port"
    );
}

#[test]
fn a_restricted_api_port_admits_only_own_pods_and_the_named_clients() {
    let kc = cluster(3);
    let access = ApiAccess {
        restricted: true,
        clients: vec![
            ApiClient {
                namespace: Some("koru-system".into()),
                labels: BTreeMap::from([(
                    "app.kubernetes.io/name".to_string(),
                    "koru-gateway".to_string(),
                )]),
            },
            ApiClient {
                namespace: None,
                labels: BTreeMap::from([(
                    "app.kubernetes.io/name".to_string(),
                    "koru-operator".to_string(),
                )]),
            },
        ],
    };
    let spec = desired_with(&kc, &access)
        .unwrap()
        .network_policy
        .spec
        .unwrap();
    let own = spec.pod_selector.unwrap().match_labels.unwrap();
    let rules = spec.ingress.unwrap();
    let api = rules
        .iter()
        .find(|r| r.ports.as_ref().unwrap()[0].port == Some(IntOrString::Int(HTTP_PORT)))
        .unwrap();
    let from = api.from.as_ref().expect("restricted");
    assert_eq!(from.len(), 3, "own pods, the gateway, the operator");
    assert_eq!(
        from[0].pod_selector.as_ref().unwrap().match_labels,
        Some(own)
    );
    assert!(
        from[0].namespace_selector.is_none(),
        "own pods: this namespace"
    );
    let gateway = &from[1];
    assert_eq!(
        gateway
            .pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["app.kubernetes.io/name"],
        "koru-gateway"
    );
    assert_eq!(
        gateway
            .namespace_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["kubernetes.io/metadata.name"],
        "koru-system"
    );
    let anywhere = from[2].namespace_selector.as_ref().unwrap();
    assert_eq!(anywhere, &LabelSelector::default(), "any namespace");
    let peer = rules
        .iter()
        .find(|r| r.ports.as_ref().unwrap()[0].port == Some(IntOrString::Int(PEER_PORT)))
        .unwrap();
    assert_eq!(
        peer.from.as_ref().unwrap().len(),
        1,
        "the peer port: own pods only"
    );
    // Open: anyone reaches the API port, as before.
    let open = desired_with(&kc, &ApiAccess::default()).unwrap();
    let rules = open.network_policy.spec.unwrap().ingress.unwrap();
    assert!(rules[0].from.is_none());
}

#[test]
fn a_suspended_cluster_has_no_pods_and_no_budget_but_keeps_its_volumes() {
    let mut kc = cluster(3);
    kc.spec.suspended = true;
    // Hosted clusters delete their volumes with them, and on scale-down; never on suspension.
    kc.spec.storage.reclaim_policy = Some(ReclaimPolicy::Delete);
    let d = desired(&kc).unwrap();
    assert_eq!(d.statefulset.spec.replicas, Some(0));
    assert!(d.pdb.is_none(), "a budget must not block the scale to zero");
    assert_eq!(
        d.statefulset
            .spec
            .persistent_volume_claim_retention_policy
            .unwrap()
            .when_scaled
            .as_deref(),
        Some("Retain")
    );
    assert_eq!(
        d.config.data.unwrap()[PEERS_KEY],
        "0,1,2",
        "the members stay what they were"
    );
}

#[test]
fn autoscaled_sizes_come_from_the_status_within_the_bounds() {
    let mut kc = cluster(1);
    kc.spec.resources = Some(koru_crd::Resources {
        cpu: Some("100m".into()),
        memory: None,
        autoscale: Some(koru_crd::ComputeAutoscale {
            min_cpu: "250m".into(),
            max_cpu: "2".into(),
            min_memory: "256Mi".into(),
            max_memory: "1Gi".into(),
        }),
    });
    let resources = |kc: &KoruCluster| {
        let sts = desired(kc).unwrap().statefulset;
        let c = sts.spec.template.spec.unwrap().containers[0].clone();
        let r = c.resources.unwrap();
        assert_eq!(r.requests, r.limits, "limits equal requests");
        let q = r.requests.unwrap();
        (q["cpu"].0.clone(), q["memory"].0.clone())
    };
    assert_eq!(
        resources(&kc),
        ("250m".into(), "256Mi".into()),
        "the spec's cpu raised to minCpu"
    );
    kc.status = Some(koru_crd::KoruClusterStatus {
        resources: Some(koru_crd::ResourcesStatus {
            cpu: Some("850m".into()),
            memory: Some("512Mi".into()),
            last_change_time: None,
        }),
        storage: Some(koru_crd::StorageStatus {
            size: Some("15Gi".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(resources(&kc), ("850m".into(), "512Mi".into()));
    let sts = desired(&kc).unwrap().statefulset;
    assert_eq!(
        claim_template_size(&sts).as_deref(),
        Some("15Gi"),
        "the grown size"
    );
    kc.spec.storage.size = "20Gi".into();
    let sts = desired(&kc).unwrap().statefulset;
    assert_eq!(
        claim_template_size(&sts).as_deref(),
        Some("20Gi"),
        "the spec's when larger"
    );
}
