//! What a KoruCluster's objects should look like: plain functions from the spec to Kubernetes
//! objects, with no I/O, so every decision is unit-tested and the controller only applies them.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, HTTPGetAction, KeyToPath, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, Secret, SecretVolumeSource, SecurityContext, Service, ServiceSpec,
    Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

use crate::autoscale::compute::{cpu_quantity, memory_quantity};
use koru_crd::{KoruCluster, ReclaimPolicy};

pub use network::{ApiAccess, ApiClient};

/// Image repository used when the spec names none.
pub const DEFAULT_IMAGE: &str = "ghcr.io/koru/koru-dataplane";
/// The data plane's HTTP port.
pub const HTTP_PORT: i32 = 7878;
/// The data plane's peer port (`--peer-listen`): the member routes, which only the cluster's
/// own pods may reach (see [`network`]).
pub const PEER_PORT: i32 = 7879;
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
/// Where the admin token is mounted.
pub const ADMIN_DIR: &str = "/etc/koru/admin";
/// The key of the admin token in the `<cluster>-admin` Secret, and its file name in [`ADMIN_DIR`].
pub const ADMIN_TOKEN_KEY: &str = "token";
/// Name of the volume holding the admin token.
const ADMIN_VOLUME: &str = "admin-token";
/// Mode of the mounted tokens (admin, replication): readable by the pod's group (`fsGroup`) only.
const ADMIN_TOKEN_MODE: i32 = 0o440;
/// Where the shared replication secret of a global database is mounted (`spec.region`).
pub const REGION_DIR: &str = "/etc/koru/region";
/// The key of the replication secret in `spec.region.credentialsSecret`, and its file name in
/// [`REGION_DIR`].
pub const REGION_TOKEN_KEY: &str = "token";
/// Name of the volume holding the replication secret.
const REGION_VOLUME: &str = "region-token";
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
    /// Who reaches the pods on which port.
    pub network_policy: k8s_openapi::api::networking::v1::NetworkPolicy,
}

/// The name of the Secret holding a cluster's admin token: `<cluster>-admin`.
pub fn admin_secret_name(cluster: &str) -> String {
    format!("{cluster}-admin")
}

/// The Secret holding a cluster's admin token, which the data plane accepts as an admin-scope
/// bearer token (`--admin-token-file`) and the operator presents to take backups. The operator
/// creates it once, with a random `token`, and never rewrites it: the data plane reads the file at
/// start, so a rotation (delete the Secret) takes effect at the pods' next restart.
pub fn admin_secret(kc: &KoruCluster, token: &str) -> Result<Secret, DesiredError> {
    let id = identity(kc)?;
    Ok(Secret {
        metadata: id.meta(admin_secret_name(&id.name)),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            ADMIN_TOKEN_KEY.to_string(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    })
}

/// Builds every object of a cluster from its spec, its API port open to anyone (see
/// [`desired_with`]).
pub fn desired(kc: &KoruCluster) -> Result<Desired, DesiredError> {
    desired_with(kc, &ApiAccess::default())
}

/// Builds every object of a cluster from its spec (and the sizes autoscaling chose, in its
/// status), its API port reachable as `access` says.
pub fn desired_with(kc: &KoruCluster, access: &ApiAccess) -> Result<Desired, DesiredError> {
    let id = identity(kc)?;
    let config = config_map(kc, &id);
    let mut statefulset = statefulset(kc, &id);
    // The data plane reads its configuration only at start: a changed digest on the pod template
    // makes the StatefulSet roll the pods (one at a time) onto the new settings.
    if let Some(template) = statefulset.spec.template.metadata.as_mut() {
        template
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(CONFIG_HASH_ANNOTATION.into(), config_digest(&config));
    }
    Ok(Desired {
        config,
        headless: service(&id, format!("{}-peers", id.name), true),
        client: service(&id, id.name.clone(), false),
        statefulset,
        // A suspended cluster has no pods, and a budget must not stand in the way of that.
        pdb: if kc.spec.suspended {
            None
        } else {
            pdb(kc, &id)
        },
        network_policy: network::policy(&id, access),
    })
}

/// The label the StatefulSet controller puts on each pod with its ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// Annotation on the pod template holding [`config_digest`] of the cluster's ConfigMap.
pub const CONFIG_HASH_ANNOTATION: &str = "koru.dev/config-hash";

/// The ConfigMap key listing the cluster's members. It is left out of [`config_digest`]: the
/// membership changes through Raft (the operator asks the data plane), never by restarting pods.
pub const PEERS_KEY: &str = "KORU_PEERS";

/// The member ids of a cluster of `replicas` pods: its ordinals, `0,1,…`.
pub fn member_ids(replicas: i32) -> String {
    (0..replicas.max(1))
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// SHA-256 (hex) of a ConfigMap's data but [`PEERS_KEY`], stable across releases (keys in order).
pub fn config_digest(config: &ConfigMap) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (key, value) in config
        .data
        .iter()
        .flatten()
        .filter(|(k, _)| *k != PEERS_KEY)
    {
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The data plane's configuration as `KORU_*` environment variables.
fn config_map(kc: &KoruCluster, id: &Identity) -> ConfigMap {
    let spec = &kc.spec;
    let mut data = BTreeMap::from([
        // Every cluster is a Raft group, a one-replica cluster one of a single member, so
        // scaling is always a membership change. Members are the pods' ordinals, reached
        // through the headless Service.
        (PEERS_KEY.to_string(), member_ids(spec.replicas)),
        (
            "KORU_PEER_TEMPLATE".to_string(),
            format!(
                "{name}-{{id}}.{name}-peers.{ns}.svc:{PEER_PORT}",
                name = id.name,
                ns = id.namespace
            ),
        ),
        ("KORU_DATA_DIR".to_string(), DATA_DIR.to_string()),
        ("KORU_LISTEN".to_string(), format!("0.0.0.0:{HTTP_PORT}")),
        // Members talk to each other on a port of their own, which the client Service never
        // routes to.
        (
            "KORU_PEER_LISTEN".to_string(),
            format!("0.0.0.0:{PEER_PORT}"),
        ),
        ("KORU_LOG_FORMAT".to_string(), "json".to_string()),
        (
            "KORU_ADMIN_TOKEN_FILE".to_string(),
            format!("{ADMIN_DIR}/{ADMIN_TOKEN_KEY}"),
        ),
    ]);
    if let Some(auth) = &spec.auth {
        // Tokens name the cluster they are for, so one cluster's token opens no other.
        data.insert("KORU_CLUSTER_ID".into(), cluster_id(auth, id));
        if let Some(url) = &auth.revocations_url {
            data.insert("KORU_REVOCATIONS_URL".into(), url.clone());
        }
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
        // Every pod that writes takes the scheduled base backups, prunes after each, and runs
        // the restore drills; the data plane refuses a bad value at start, so the CRD checks
        // them first.
        let settings = [
            ("KORU_ARCHIVE_TIMEOUT", backup.archive_timeout.clone()),
            ("KORU_BACKUP_SCHEDULE", backup.schedule.clone()),
            (
                "KORU_BACKUP_RETENTION",
                backup.retention_days.map(|days| format!("{days}d")),
            ),
            ("KORU_VERIFY_SCHEDULE", backup.verify_schedule.clone()),
        ];
        for (name, value) in settings {
            if let Some(value) = value {
                data.insert(name.into(), value.trim().to_string());
            }
        }
    }
    if let Some(region) = &spec.region {
        // In the ConfigMap, so they are in its digest: new peers roll the pods like any other
        // setting (the data plane reads them only at start).
        data.insert("KORU_REGION".into(), region.name.clone());
        // Left out for a region of one: the data plane refuses an empty peer.
        if !region.peers.is_empty() {
            data.insert("KORU_REGION_PEERS".into(), region_peers(region));
        }
        data.insert(
            "KORU_REGION_TOKEN_FILE".into(),
            format!("{REGION_DIR}/{REGION_TOKEN_KEY}"),
        );
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

/// `--region-peer` as one comma-separated `NAME=URL` list, in the spec's order.
pub fn region_peers(region: &koru_crd::RegionSpec) -> String {
    region
        .peers
        .iter()
        .map(|p| format!("{}={}", p.name, p.endpoint.trim_end_matches('/')))
        .collect::<Vec<_>>()
        .join(",")
}

/// The cluster id tokens must name: the control plane's (`spec.auth.clusterId`), or
/// `<namespace>/<name>` for a cluster applied by hand, unique in the Kubernetes cluster.
fn cluster_id(auth: &koru_crd::Auth, id: &Identity) -> String {
    auth.cluster_id
        .clone()
        .unwrap_or_else(|| format!("{}/{}", id.namespace, id.name))
}

fn service(id: &Identity, name: String, headless: bool) -> Service {
    Service {
        metadata: id.meta(name),
        spec: Some(ServiceSpec {
            cluster_ip: headless.then(|| "None".to_string()),
            // Peers must find each other before they are ready, or a new Raft group never forms.
            publish_not_ready_addresses: headless.then_some(true),
            selector: Some(id.selector()),
            ports: Some(network::service_ports(headless)),
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
    if let Some(r) = crate::autoscale::current_requests(kc) {
        // Autoscaled: what the operator chose (in the status), within the bounds.
        quantities.insert("cpu".to_string(), Quantity(cpu_quantity(r.cpu_milli)));
        quantities.insert(
            "memory".to_string(),
            Quantity(memory_quantity(r.memory_bytes)),
        );
    } else if let Some(r) = &spec.resources {
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
    // The admin token, for the operator's calls to the admin API (backups).
    mounts.push(VolumeMount {
        name: ADMIN_VOLUME.into(),
        mount_path: ADMIN_DIR.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    });
    volumes.push(Volume {
        name: ADMIN_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(admin_secret_name(&id.name)),
            items: Some(vec![KeyToPath {
                key: ADMIN_TOKEN_KEY.into(),
                path: ADMIN_TOKEN_KEY.into(),
                ..KeyToPath::default()
            }]),
            default_mode: Some(ADMIN_TOKEN_MODE),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    });
    if let Some(region) = &spec.region {
        // The replication secret every region shares: presented to the peers and accepted from
        // them. Read at start, like the admin token, so a rotation reaches the pods as they
        // restart.
        mounts.push(VolumeMount {
            name: REGION_VOLUME.into(),
            mount_path: REGION_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        volumes.push(Volume {
            name: REGION_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(region.credentials_secret.clone()),
                items: Some(vec![KeyToPath {
                    key: REGION_TOKEN_KEY.into(),
                    path: REGION_TOKEN_KEY.into(),
                    ..KeyToPath::default()
                }]),
                default_mode: Some(ADMIN_TOKEN_MODE),
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
        env: Some(vec![
            EnvVar {
                name: "KORU_LOG".into(),
                value: Some("info".into()),
                ..EnvVar::default()
            },
            // The member id is the pod's ordinal.
            EnvVar {
                name: "KORU_NODE_ID".into(),
                value_from: Some(k8s_openapi::api::core::v1::EnvVarSource {
                    field_ref: Some(k8s_openapi::api::core::v1::ObjectFieldSelector {
                        field_path: format!("metadata.labels['{POD_INDEX_LABEL}']"),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..EnvVar::default()
            },
        ]),
        ports: Some(network::container_ports()),
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
                    Quantity(storage_size(kc)),
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
            // Suspended: no pods; the volumes stay (and so does the Raft group's membership,
            // which the pods find again on their volumes when the cluster wakes).
            replicas: Some(if spec.suspended { 0 } else { spec.replicas }),
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
                    volumes: Some(volumes),
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
            // The operator replaces the pods itself, one at a time, each ready before the next,
            // followers first and the Raft leader last (see `upgrade`).
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                rolling_update: None,
            }),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
}

/// The size of a new volume: the spec's, or the size storage autoscaling grew the volumes to when
/// larger, as the spec's string when it is the spec's.
fn storage_size(kc: &KoruCluster) -> String {
    let spec = &kc.spec.storage.size;
    let grown = crate::autoscale::storage_size(kc, None);
    match crate::autoscale::bytes(spec) {
        Some(bytes) if bytes >= grown => spec.clone(),
        _ => memory_quantity(grown),
    }
}

/// Sets the data plane container's requests and limits (autoscaling chose new ones).
pub fn set_resources(sts: &mut StatefulSet, cpu: &str, memory: &str) {
    let quantities = BTreeMap::from([
        ("cpu".to_string(), Quantity(cpu.into())),
        ("memory".to_string(), Quantity(memory.into())),
    ]);
    if let Some(spec) = sts.spec.template.spec.as_mut() {
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            c.resources = Some(ResourceRequirements {
                requests: Some(quantities.clone()),
                limits: Some(quantities.clone()),
                ..ResourceRequirements::default()
            });
        }
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
        // Suspension scales to zero pods: with `Delete` that would delete every volume.
        when_scaled: Some(if kc.spec.suspended { "Retain" } else { policy }.into()),
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

mod network;

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod region_tests;
