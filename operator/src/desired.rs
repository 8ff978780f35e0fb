//! What a KoruCluster's objects should look like: plain functions from the spec to Kubernetes
//! objects, with no I/O, so every decision is unit-tested and the controller only applies them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy,
    StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, EnvVar, HTTPGetAction, KeyToPath, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec,
    Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

use crate::crd::{KoruCluster, ReclaimPolicy};

/// Image repository used when the spec names none.
pub const DEFAULT_IMAGE: &str = "ghcr.io/koru/koru-dataplane";
/// The data plane's HTTP port.
pub const HTTP_PORT: i32 = 7878;
/// Where each pod's volume is mounted.
pub const VOLUME_DIR: &str = "/var/lib/koru";
/// The data plane's data directory: a subdirectory of the volume, so a new volume's `lost+found`
/// is not in the way and a restore can move a finished directory into place.
pub const DATA_DIR: &str = "/var/lib/koru/data";
/// Where the token verification key is mounted.
pub const AUTH_DIR: &str = "/etc/koru/auth";
/// File name of the mounted verification key.
const AUTH_KEY_FILE: &str = "public.pem";
/// Name of the volume holding the verification key.
const AUTH_VOLUME: &str = "auth-key";
/// Name of the volume claim template.
const DATA_VOLUME: &str = "data";
/// Seconds a pod gets to drain, flush and fsync on SIGTERM.
const TERMINATION_GRACE_SECONDS: i64 = 60;

/// Why a cluster's objects cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DesiredError {
    /// The object has no name or namespace (the API server always sets both).
    #[error("the KoruCluster has no {0}")]
    Missing(&'static str),
}

/// Names and labels shared by all of a cluster's objects.
struct Identity {
    name: String,
    namespace: String,
    labels: BTreeMap<String, String>,
    owner: OwnerReference,
}

fn identity(kc: &KoruCluster) -> Result<Identity, DesiredError> {
    let name = kc
        .metadata
        .name
        .clone()
        .ok_or(DesiredError::Missing("name"))?;
    let namespace = kc
        .metadata
        .namespace
        .clone()
        .ok_or(DesiredError::Missing("namespace"))?;
    let owner = kc
        .controller_owner_ref(&())
        .ok_or(DesiredError::Missing("uid"))?;
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "koru-dataplane".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), name.clone()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "koru-operator".to_string(),
        ),
    ]);
    Ok(Identity {
        name,
        namespace,
        labels,
        owner,
    })
}

impl Identity {
    fn meta(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels.clone()),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    /// Labels that select this cluster's pods (stable across upgrades, so selectors never change).
    fn selector(&self) -> BTreeMap<String, String> {
        self.labels
            .iter()
            .filter(|(k, _)| k.as_str() != "app.kubernetes.io/managed-by")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Every object a cluster owns, in the order they are applied.
pub struct Desired {
    /// Data-plane settings, mounted into the pods as environment.
    pub config: ConfigMap,
    /// Headless Service giving each pod a stable DNS name (Raft peers).
    pub headless: Service,
    /// Client Service: the cluster's endpoint.
    pub client: Service,
    /// The pods and their volumes.
    pub statefulset: StatefulSet,
    /// At most a minority of pods down at once (multi-replica clusters only).
    pub pdb: Option<PodDisruptionBudget>,
}

/// Builds every object of a cluster from its spec.
pub fn desired(kc: &KoruCluster) -> Result<Desired, DesiredError> {
    let id = identity(kc)?;
    Ok(Desired {
        config: config_map(kc, &id),
        headless: service(&id, format!("{}-peers", id.name), true),
        client: service(&id, id.name.clone(), false),
        statefulset: statefulset(kc, &id),
        pdb: pdb(kc, &id),
    })
}

/// The data plane's configuration as `KORU_*` environment variables.
fn config_map(kc: &KoruCluster, id: &Identity) -> ConfigMap {
    let spec = &kc.spec;
    let mut data = BTreeMap::from([
        ("KORU_DATA_DIR".to_string(), DATA_DIR.to_string()),
        ("KORU_LISTEN".to_string(), format!("0.0.0.0:{HTTP_PORT}")),
        ("KORU_LOG_FORMAT".to_string(), "json".to_string()),
    ]);
    if spec.auth.is_some() {
        // Tokens name the cluster they are for, so one cluster's token opens no other.
        data.insert("KORU_CLUSTER_ID".into(), id.name.clone());
        data.insert(
            "KORU_AUTH_PUBLIC_KEY".into(),
            format!("{AUTH_DIR}/{AUTH_KEY_FILE}"),
        );
    }
    if let Some(d) = &spec.durability {
        data.insert("KORU_FSYNC".into(), d.fsync.clone());
    }
    if let Some(backup) = &spec.backup {
        // Every sealed log segment is archived there, for backups and point-in-time restores.
        data.insert("KORU_BACKUP_STORE".into(), backup.destination.clone());
    }
    if let Some(limits) = &spec.limits {
        if let Some(ops) = limits.max_ops_per_sec {
            data.insert("KORU_MAX_OPS_PER_SEC".into(), ops.to_string());
        }
        if let Some(bytes) = limits.max_stored_bytes {
            data.insert("KORU_MAX_STORED_BYTES".into(), bytes.to_string());
        }
    }
    ConfigMap {
        metadata: id.meta(format!("{}-config", id.name)),
        data: Some(data),
        ..ConfigMap::default()
    }
}

fn service(id: &Identity, name: String, headless: bool) -> Service {
    Service {
        metadata: id.meta(name),
        spec: Some(ServiceSpec {
            cluster_ip: headless.then(|| "None".to_string()),
            // Peers must find each other before they are ready, or a new Raft group never forms.
            publish_not_ready_addresses: headless.then_some(true),
            selector: Some(id.selector()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: HTTP_PORT,
                target_port: Some(IntOrString::Int(HTTP_PORT)),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(HTTP_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn statefulset(kc: &KoruCluster, id: &Identity) -> StatefulSet {
    let spec = &kc.spec;
    let image = format!(
        "{}:{}",
        spec.image.as_deref().unwrap_or(DEFAULT_IMAGE),
        spec.version
    );
    let mut quantities = BTreeMap::new();
    if let Some(r) = &spec.resources {
        if let Some(cpu) = &r.cpu {
            quantities.insert("cpu".to_string(), Quantity(cpu.clone()));
        }
        if let Some(memory) = &r.memory {
            quantities.insert("memory".to_string(), Quantity(memory.clone()));
        }
    }
    let resources = (!quantities.is_empty()).then(|| ResourceRequirements {
        requests: Some(quantities.clone()),
        limits: Some(quantities),
        ..ResourceRequirements::default()
    });
    let data_mount = VolumeMount {
        name: DATA_VOLUME.into(),
        mount_path: VOLUME_DIR.into(),
        ..VolumeMount::default()
    };
    let mut mounts = vec![data_mount.clone()];
    // Object store credentials (AWS_* variables) for archiving and restoring.
    let credentials = spec
        .backup
        .as_ref()
        .and_then(|b| b.credentials_secret.clone())
        .map(|name| k8s_openapi::api::core::v1::EnvFromSource {
            secret_ref: Some(k8s_openapi::api::core::v1::SecretEnvSource {
                name,
                optional: Some(false),
            }),
            ..Default::default()
        });
    let mut volumes = Vec::new();
    if let Some(auth) = &spec.auth {
        mounts.push(VolumeMount {
            name: AUTH_VOLUME.into(),
            mount_path: AUTH_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        volumes.push(Volume {
            name: AUTH_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(auth.public_key_secret.name.clone()),
                items: Some(vec![KeyToPath {
                    key: auth.public_key_secret.key.clone(),
                    path: AUTH_KEY_FILE.into(),
                    ..KeyToPath::default()
                }]),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    let container = Container {
        name: "dataplane".into(),
        image: Some(image),
        env_from: Some(
            std::iter::once(k8s_openapi::api::core::v1::EnvFromSource {
                config_map_ref: Some(k8s_openapi::api::core::v1::ConfigMapEnvSource {
                    name: format!("{}-config", id.name),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .chain(credentials.clone())
            .collect(),
        ),
        env: Some(vec![EnvVar {
            name: "KORU_LOG".into(),
            value: Some("info".into()),
            ..EnvVar::default()
        }]),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: HTTP_PORT,
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(probe("/readyz", 5, 3)),
        liveness_probe: Some(probe("/healthz", 10, 6)),
        resources,
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.into()),
            labels: Some(id.selector()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(spec.storage.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    StatefulSet {
        metadata: id.meta(id.name.clone()),
        spec: StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(format!("{}-peers", id.name)),
            selector: LabelSelector {
                match_labels: Some(id.selector()),
                ..LabelSelector::default()
            },
            // Pods start together so a multi-replica group can elect; upgrades still roll one by one.
            pod_management_policy: Some("Parallel".into()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(id.selector()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    init_containers: restore_container(kc, &container, data_mount, credentials)
                        .map(|c| vec![c]),
                    containers: vec![container],
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        fs_group: Some(65532),
                        ..PodSecurityContext::default()
                    }),
                    affinity: Some(anti_affinity(id)),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![claim]),
            persistent_volume_claim_retention_policy: Some(retention(kc)),
            // One pod at a time, highest ordinal first, each ready before the next.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(0),
                    ..RollingUpdateStatefulSetStrategy::default()
                }),
            }),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
}

/// With `bootstrap.fromBackup`, an init container that restores the backup into a new volume
/// before the data plane starts; at later pod starts the volume holds data and it does nothing.
fn restore_container(
    kc: &KoruCluster,
    dataplane: &Container,
    data_mount: VolumeMount,
    credentials: Option<k8s_openapi::api::core::v1::EnvFromSource>,
) -> Option<Container> {
    let from = kc.spec.bootstrap.as_ref()?.from_backup.as_ref()?;
    let mut args = vec![
        "restore".to_string(),
        "--from".into(),
        from.source.clone(),
        "--data-dir".into(),
        DATA_DIR.into(),
        "--skip-existing".into(),
    ];
    if let Some(id) = &from.backup_id {
        args.extend(["--backup".into(), id.clone()]);
    }
    if let Some(t) = &from.target_time {
        args.extend(["--target-time".into(), t.clone()]);
    }
    Some(Container {
        name: "restore".into(),
        image: dataplane.image.clone(),
        args: Some(args),
        env_from: credentials.map(|c| vec![c]),
        volume_mounts: Some(vec![data_mount]),
        resources: dataplane.resources.clone(),
        security_context: dataplane.security_context.clone(),
        ..Container::default()
    })
}

/// Volumes follow `storage.reclaimPolicy`: kept by default on scale-down and cluster deletion.
fn retention(kc: &KoruCluster) -> StatefulSetPersistentVolumeClaimRetentionPolicy {
    let policy = match kc.spec.storage.reclaim_policy.unwrap_or_default() {
        ReclaimPolicy::Retain => "Retain",
        ReclaimPolicy::Delete => "Delete",
    };
    StatefulSetPersistentVolumeClaimRetentionPolicy {
        when_deleted: Some(policy.into()),
        when_scaled: Some(policy.into()),
    }
}

/// The storage size in the StatefulSet's claim template, as the API server holds it.
pub fn claim_template_size(sts: &StatefulSet) -> Option<String> {
    let claims = sts.spec.volume_claim_templates.as_ref()?;
    let claim = claims
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(DATA_VOLUME))?;
    let requests = claim.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?;
    requests.get("storage").map(|q| q.0.clone())
}

/// Sets the storage size of a desired StatefulSet's claim template (which Kubernetes never lets
/// change in place, so a pending growth keeps the old one until the StatefulSet is replaced).
pub fn set_claim_template_size(sts: &mut StatefulSet, size: &str) {
    let claims = sts.spec.volume_claim_templates.iter_mut().flatten();
    for claim in claims.filter(|c| c.metadata.name.as_deref() == Some(DATA_VOLUME)) {
        let requests = claim
            .spec
            .get_or_insert_with(Default::default)
            .resources
            .get_or_insert_with(Default::default)
            .requests
            .get_or_insert_with(Default::default);
        requests.insert("storage".into(), Quantity(size.into()));
    }
}

/// The labels on every pod and volume of a cluster, as a label selector string.
pub fn selector_string(kc: &KoruCluster) -> Result<String, DesiredError> {
    let id = identity(kc)?;
    Ok(id
        .selector()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(","))
}

/// Prefer one pod per node so a node failure takes down at most one replica.
fn anti_affinity(id: &Identity) -> k8s_openapi::api::core::v1::Affinity {
    use k8s_openapi::api::core::v1::{
        Affinity, PodAffinityTerm, PodAntiAffinity, WeightedPodAffinityTerm,
    };
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(id.selector()),
                            ..LabelSelector::default()
                        }),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

/// A budget that keeps a majority up: at most `(replicas - 1) / 2` pods disrupted at once.
fn pdb(kc: &KoruCluster, id: &Identity) -> Option<PodDisruptionBudget> {
    let replicas = kc.spec.replicas;
    (replicas > 1).then(|| PodDisruptionBudget {
        metadata: id.meta(id.name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int((replicas - 1) / 2)),
            selector: Some(LabelSelector {
                match_labels: Some(id.selector()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Durability, KoruClusterSpec, Limits, Storage};

    fn cluster(replicas: i32) -> KoruCluster {
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
    fn backups_archive_with_credentials_and_a_bootstrap_restores_first() {
        let mut kc = cluster(3);
        kc.spec.backup = Some(crate::crd::BackupSettings {
            destination: "s3://backups/orders".into(),
            credentials_secret: Some("orders-s3".into()),
            schedule: None,
            retention_days: None,
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

        kc.spec.bootstrap = Some(crate::crd::Bootstrap {
            from_backup: Some(crate::crd::FromBackup {
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
    fn auth_mounts_the_key_secret_and_names_the_cluster() {
        let mut kc = cluster(1);
        kc.spec.auth = Some(crate::crd::Auth {
            public_key_secret: crate::crd::SecretKeyRef {
                name: "orders-token-key".into(),
                key: "public.pem".into(),
            },
        });
        let d = desired(&kc).unwrap();
        let data = d.config.data.unwrap();
        assert_eq!(data["KORU_CLUSTER_ID"], "orders");
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
}
