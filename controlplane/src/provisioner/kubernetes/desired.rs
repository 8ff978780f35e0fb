//! Pure: what a cluster's namespace, token Secret, KoruCluster and KoruBackups should look like,
//! and what a KoruCluster's status means for the control plane. No I/O, so every rule is unit-tested.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use koru_crd::{
    Auth, BackupSettings, Bootstrap, Durability, FromBackup, KoruBackup, KoruBackupSpec,
    KoruCluster, KoruClusterSpec, Limits, ReclaimPolicy, SecretKeyRef, Storage,
};
use sha2::{Digest, Sha256};

use crate::provisioner::{ClusterSpec, ClusterState};

/// Field manager of every server-side apply by the control plane.
pub const FIELD_MANAGER: &str = "koru-controlplane";
/// Default prefix of the per-organization namespaces.
pub const DEFAULT_NAMESPACE_PREFIX: &str = "koru-";
/// Label naming the owning organization's id (on namespaces, Secrets, KoruClusters, KoruBackups).
pub const LABEL_ORG_ID: &str = "koru.dev/org-id";
/// Label naming the control plane's cluster id (on Secrets, KoruClusters, KoruBackups).
pub const LABEL_CLUSTER_ID: &str = "koru.dev/cluster-id";
/// The standard label saying who manages an object.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`] on everything the control plane creates.
pub const MANAGED_BY: &str = "koru-controlplane";
/// Key of the token verification key in the cluster's Secret.
pub const TOKEN_KEY: &str = "public.pem";
/// Durability of every hosted cluster: acknowledged writes are on disk.
pub const FSYNC: &str = "always";
/// Longest KoruCluster name the operator's CRD accepts (it names Services, pods and volumes).
pub const MAX_CLUSTER_NAME: usize = 40;
/// Longest namespace name (a DNS label).
pub const MAX_NAMESPACE: usize = 63;
/// Name of the copy of the backup store credentials in each organization's namespace.
pub const BACKUP_CREDENTIALS_SECRET: &str = "koru-backup-credentials";
/// When every hosted cluster takes a base backup: hourly, on the hour, so a restore replays at
/// most an hour of archived log on top of its base backup.
pub const BACKUP_SCHEDULE: &str = "0 * * * *";
/// When every hosted cluster runs a restore drill of its newest base backup: daily at 04:30 UTC,
/// between two hourly backups.
pub const VERIFY_SCHEDULE: &str = "30 4 * * *";
/// How soon a hosted cluster's writes reach its backup store: its log is sealed and archived at
/// least every 10 s while written, so a restore can reach to within seconds of now (the data
/// plane's own default, 60 s, suits self-managed clusters that pay for their requests).
pub const ARCHIVE_TIMEOUT: &str = "10s";
/// Hex digits of the org-id hash that ends a shortened namespace name.
const NAMESPACE_HASH_LEN: usize = 8;

/// Settings of the Kubernetes provisioner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeProvisionerConfig {
    /// Prefix of each organization's namespace: `<prefix><org slug>`.
    pub namespace_prefix: String,
    /// Data-plane image repository of every cluster; the operator's default when None.
    pub image: Option<String>,
    /// Storage class of the clusters' volumes; the Kubernetes default class when None.
    pub storage_class: Option<String>,
    /// Object store every cluster archives to (`s3://bucket/prefix`), each under
    /// `<org id>/<cluster id>`; no backups (and no restores) when None.
    pub backup_destination: Option<String>,
    /// The Secret (`namespace/name`) with the object store's credentials (`AWS_*` keys), copied into
    /// each organization's namespace as [`BACKUP_CREDENTIALS_SECRET`].
    pub backup_credentials: Option<(String, String)>,
}

impl Default for KubeProvisionerConfig {
    fn default() -> Self {
        KubeProvisionerConfig {
            namespace_prefix: DEFAULT_NAMESPACE_PREFIX.to_string(),
            image: None,
            storage_class: None,
            backup_destination: None,
            backup_credentials: None,
        }
    }
}

/// The backup store of cluster `cluster_id` of organization `org_id`: its own prefix under the
/// configured destination, so a cluster restored from another writes a new history of its own.
pub fn backup_store(destination: &str, org_id: &str, cluster_id: &str) -> String {
    format!(
        "{}/{org_id}/{cluster_id}",
        destination.trim_end_matches('/')
    )
}

/// A spec the Kubernetes objects cannot be made from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The cluster name breaks the operator's naming rule.
    #[error(
        "cluster name {0:?} is not a DNS label of at most 40 characters starting with a letter"
    )]
    ClusterName(String),
    /// The organization slug (with the prefix) cannot name a namespace.
    #[error("namespace {0:?} (prefix + organization slug) is not a valid DNS label")]
    Namespace(String),
    /// A backup name is not a DNS label.
    #[error("backup name {0:?} is not a DNS label of at most 63 characters")]
    BackupName(String),
    /// A number does not fit the CRD's integer type.
    #[error("{0} is too large for a KoruCluster")]
    TooLarge(&'static str),
    /// The KoruCluster could not be written as JSON.
    #[error("cannot encode the KoruCluster: {0}")]
    Encode(String),
    /// A restore was asked of a control plane that keeps no backups.
    #[error(
        "this control plane has no backup destination (--backup-destination), so it cannot restore"
    )]
    NoBackups,
}

/// Whether `s` is a DNS label (RFC 1123) of at most `max` characters; with `letter_first`, it must
/// also start with a letter.
pub fn is_dns_label(s: &str, max: usize, letter_first: bool) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    s.len() <= max
        && bytes.iter().all(inner)
        && (first.is_ascii_lowercase() || (!letter_first && first.is_ascii_digit()))
        && *last != b'-'
}

/// The namespace of an organization: `<prefix><slug>`. When that is longer than a DNS label, it is
/// cut and ended with `-` and a hash of the organization id, so it stays unique and stable.
pub fn namespace_name(prefix: &str, org_slug: &str, org_id: &str) -> Result<String, SpecError> {
    let full = format!("{prefix}{org_slug}");
    if full.len() <= MAX_NAMESPACE {
        return if is_dns_label(&full, MAX_NAMESPACE, false) {
            Ok(full)
        } else {
            Err(SpecError::Namespace(full))
        };
    }
    // The whole name must be valid before shortening, so a bad character is never cut away.
    if !is_dns_label(&full, usize::MAX, false) {
        return Err(SpecError::Namespace(full));
    }
    let hash = hex::encode(Sha256::digest(org_id.as_bytes()));
    let keep = MAX_NAMESPACE - NAMESPACE_HASH_LEN - 1;
    let head = full[..keep].trim_end_matches('-');
    Ok(format!("{head}-{}", &hash[..NAMESPACE_HASH_LEN]))
}

/// The Secret holding a cluster's token verification key.
pub fn token_secret_name(cluster_name: &str) -> String {
    format!("{cluster_name}-token-key")
}

/// Checks the cluster name against the operator's rule.
pub fn check_cluster_name(name: &str) -> Result<(), SpecError> {
    if is_dns_label(name, MAX_CLUSTER_NAME, true) {
        Ok(())
    } else {
        Err(SpecError::ClusterName(name.to_string()))
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn cluster_labels(spec: &ClusterSpec) -> BTreeMap<String, String> {
    labels(&[
        (LABEL_CLUSTER_ID, &spec.id),
        (LABEL_ORG_ID, &spec.org_id),
        (LABEL_MANAGED_BY, MANAGED_BY),
    ])
}

/// The organization's namespace object, labelled with its id.
pub fn namespace(name: &str, spec: &ClusterSpec) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels(&[
                (LABEL_ORG_ID, &spec.org_id),
                (LABEL_MANAGED_BY, MANAGED_BY),
            ])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The Secret with the cluster's token verification key: a public key, but the CRD references a
/// Secret, and a Secret keeps it beside the other per-cluster settings the data plane mounts.
pub fn token_secret(namespace: &str, spec: &ClusterSpec) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(token_secret_name(&spec.name)),
            namespace: Some(namespace.to_string()),
            labels: Some(cluster_labels(spec)),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([(
            TOKEN_KEY.to_string(),
            ByteString(spec.token_public_key_pem.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// The KoruCluster for `spec` in `namespace`.
///
/// Volumes are deleted with the cluster (`reclaimPolicy: Delete`): deleting a hosted cluster
/// removes its data, and a later cluster of the same name must never adopt the old volumes.
pub fn koru_cluster(
    namespace: &str,
    spec: &ClusterSpec,
    config: &KubeProvisionerConfig,
) -> Result<KoruCluster, SpecError> {
    check_cluster_name(&spec.name)?;
    let replicas = i32::try_from(spec.replicas).map_err(|_| SpecError::TooLarge("replicas"))?;
    let ops =
        i64::try_from(spec.max_ops_per_sec).map_err(|_| SpecError::TooLarge("max_ops_per_sec"))?;
    let stored = i64::try_from(spec.max_stored_bytes)
        .map_err(|_| SpecError::TooLarge("max_stored_bytes"))?;
    let mut kc = KoruCluster::new(
        &spec.name,
        KoruClusterSpec {
            version: spec.version.clone(),
            image: config.image.clone(),
            replicas,
            resources: None,
            // A plain count of bytes is a valid Kubernetes quantity.
            storage: Storage {
                size: spec.storage_bytes.to_string(),
                storage_class_name: config.storage_class.clone(),
                reclaim_policy: Some(ReclaimPolicy::Delete),
                autoscale: None,
            },
            durability: Some(Durability {
                fsync: FSYNC.to_string(),
            }),
            limits: Some(Limits {
                max_ops_per_sec: Some(ops),
                max_stored_bytes: Some(stored),
            }),
            auth: Some(Auth {
                public_key_secret: SecretKeyRef {
                    name: token_secret_name(&spec.name),
                    key: TOKEN_KEY.to_string(),
                },
                // Tokens name the control plane's id of the cluster, never its name: two
                // organizations may both have an `orders`.
                cluster_id: Some(spec.id.clone()),
                revocations_url: spec.revocations_url.clone(),
            }),
            backup: backup_settings(spec, config),
            bootstrap: bootstrap(spec, config)?,
            paused: false,
            suspended: false,
            region: super::regions::region_spec(spec),
        },
    );
    kc.metadata.namespace = Some(namespace.to_string());
    kc.metadata.labels = Some(cluster_labels(spec));
    Ok(kc)
}

/// The data plane's client port in every pod (the operator's `HTTP_PORT`).
pub const DATAPLANE_HTTP_PORT: u16 = 7878;

/// The KoruCluster as applied: [`koru_cluster`], with `spec.suspended: true` while the cluster is
/// scaled to zero (the operator keeps the volumes and runs no pods). Absent otherwise, so a
/// resume's apply removes the field this manager owns. Set on the JSON, so it does not depend on
/// the typed spec carrying the field.
pub fn koru_cluster_manifest(
    namespace: &str,
    spec: &ClusterSpec,
    config: &KubeProvisionerConfig,
) -> Result<serde_json::Value, SpecError> {
    let kc = koru_cluster(namespace, spec, config)?;
    let mut manifest = serde_json::to_value(&kc).map_err(|e| SpecError::Encode(e.to_string()))?;
    if let Some(fields) = manifest.get_mut("spec").and_then(|s| s.as_object_mut()) {
        if spec.suspended {
            fields.insert("suspended".into(), serde_json::Value::Bool(true));
        } else {
            fields.remove("suspended");
        }
    }
    Ok(manifest)
}

/// Each member's base URL, for the gateway: pod `<name>-<i>`'s stable DNS name under the
/// headless Service `<name>-peers` in `namespace`, on the client port.
pub fn member_urls(namespace: &str, name: &str, replicas: u32) -> Vec<String> {
    (0..replicas)
        .map(|i| format!("http://{name}-{i}.{name}-peers.{namespace}.svc:{DATAPLANE_HTTP_PORT}"))
        .collect()
}

/// Archiving to the cluster's own store with hourly base backups kept for the tier's retention
/// (a retention of 0 days, from a spec older than backups, keeps every backup) and a daily restore
/// drill; none without a configured destination.
fn backup_settings(spec: &ClusterSpec, config: &KubeProvisionerConfig) -> Option<BackupSettings> {
    let destination = config.backup_destination.as_deref()?;
    Some(BackupSettings {
        destination: backup_store(destination, &spec.org_id, &spec.id),
        credentials_secret: config
            .backup_credentials
            .as_ref()
            .map(|_| BACKUP_CREDENTIALS_SECRET.to_string()),
        schedule: Some(BACKUP_SCHEDULE.to_string()),
        retention_days: i32::try_from(spec.backup_retention_days)
            .ok()
            .filter(|&d| d > 0),
        archive_timeout: Some(ARCHIVE_TIMEOUT.to_string()),
        verify_schedule: Some(VERIFY_SCHEDULE.to_string()),
    })
}

/// A restored cluster starts from its source's store; others start empty.
fn bootstrap(
    spec: &ClusterSpec,
    config: &KubeProvisionerConfig,
) -> Result<Option<Bootstrap>, SpecError> {
    let Some(restore) = &spec.restore else {
        return Ok(None);
    };
    let destination = config
        .backup_destination
        .as_deref()
        .ok_or(SpecError::NoBackups)?;
    Ok(Some(Bootstrap {
        from_backup: Some(FromBackup {
            source: backup_store(destination, &spec.org_id, &restore.cluster_id),
            backup_id: restore.backup_id.clone(),
            target_time: restore.target_time.clone(),
        }),
    }))
}

/// The copy of the backup store credentials in an organization's namespace.
pub fn backup_credentials_secret(namespace: &str, spec: &ClusterSpec, source: &Secret) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(BACKUP_CREDENTIALS_SECRET.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels(&[
                (LABEL_ORG_ID, &spec.org_id),
                (LABEL_MANAGED_BY, MANAGED_BY),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_string()),
        data: source.data.clone(),
        ..Secret::default()
    }
}

/// A KoruBackup of the cluster, named `backup_name`.
pub fn koru_backup(
    namespace: &str,
    spec: &ClusterSpec,
    backup_name: &str,
) -> Result<KoruBackup, SpecError> {
    check_cluster_name(&spec.name)?;
    if !is_dns_label(backup_name, MAX_NAMESPACE, false) {
        return Err(SpecError::BackupName(backup_name.to_string()));
    }
    let mut backup = KoruBackup::new(
        backup_name,
        KoruBackupSpec {
            cluster: spec.name.clone(),
        },
    );
    backup.metadata.namespace = Some(namespace.to_string());
    backup.metadata.labels = Some(cluster_labels(spec));
    Ok(backup)
}

/// Whether an object's labels say it belongs to the cluster `spec` (and not to an earlier or other
/// cluster that had the same name).
pub fn belongs_to(labels: Option<&BTreeMap<String, String>>, spec: &ClusterSpec) -> bool {
    labels
        .and_then(|l| l.get(LABEL_CLUSTER_ID))
        .is_some_and(|id| id == &spec.id)
}

/// The condition type the operator sets (`True`) on a KoruCluster whose storage autoscaling has
/// reached the tier's ceiling.
pub const STORAGE_AT_CEILING: &str = koru_crd::conditions::STORAGE_AT_CEILING;

/// Whether the operator says the cluster's storage is at its ceiling: `None` while the status
/// carries no such condition (an operator that does not grow volumes, or has not looked yet).
pub fn storage_at_ceiling(kc: &KoruCluster) -> Option<bool> {
    kc.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == STORAGE_AT_CEILING)
        .map(|c| c.status == "True")
}

/// What the control plane reports of a KoruCluster: its phase (Pending until the operator has
/// written a status), ready replicas and endpoint, and, when it is not Running, why.
pub fn observed_state(kc: &KoruCluster) -> ClusterState {
    let status = kc.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or_else(|| "Pending".to_string());
    let condition = |type_: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True" && !c.message.is_empty())
            .map(|c| c.message.clone())
    };
    let message = if phase == "Running" {
        None
    } else {
        condition(koru_crd::conditions::DEGRADED)
            .or_else(|| condition(koru_crd::conditions::PROGRESSING))
    };
    ClusterState {
        phase,
        ready_replicas: u32::try_from(status.ready_replicas).unwrap_or(0),
        endpoint: status.endpoint,
        message,
        regions: Vec::new(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use koru_crd::{Condition, KoruClusterStatus};

    pub(in crate::provisioner::kubernetes) fn spec() -> ClusterSpec {
        ClusterSpec {
            id: "c-123".into(),
            name: "orders".into(),
            org_id: "o-9".into(),
            org_slug: "acme".into(),
            version: "0.1.0".into(),
            replicas: 3,
            storage_bytes: 10 * 1024 * 1024 * 1024,
            max_ops_per_sec: 500,
            max_stored_bytes: 1024 * 1024 * 1024,
            backup_retention_days: 1,
            restore: None,
            suspended: false,
            regions: Vec::new(),
            region: None,
            token_public_key_pem: "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n"
                .into(),
            revocations_url: None,
        }
    }

    #[test]
    fn a_suspended_cluster_says_so_and_members_are_pod_names() {
        let config = KubeProvisionerConfig::default();
        let mut s = spec();
        let running = koru_cluster_manifest("ns", &s, &config).unwrap();
        assert!(running["spec"].get("suspended").is_none(), "{running}");
        s.suspended = true;
        let suspended = koru_cluster_manifest("ns", &s, &config).unwrap();
        assert_eq!(suspended["spec"]["suspended"], serde_json::json!(true));
        assert_eq!(suspended["spec"]["replicas"], running["spec"]["replicas"]);
        assert_eq!(
            member_urls("koru-acme", "orders", 2),
            [
                "http://orders-0.orders-peers.koru-acme.svc:7878",
                "http://orders-1.orders-peers.koru-acme.svc:7878"
            ]
        );
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("a", 63, true));
        assert!(is_dns_label("a-1", 63, true));
        assert!(is_dns_label("1a", 63, false));
        assert!(!is_dns_label("1a", 63, true));
        assert!(!is_dns_label("", 63, false));
        assert!(!is_dns_label("a-", 63, false));
        assert!(!is_dns_label("-a", 63, false));
        assert!(!is_dns_label("A", 63, false));
        assert!(!is_dns_label("a.b", 63, false));
        assert!(!is_dns_label("a_b", 63, false));
        assert!(!is_dns_label(&"a".repeat(41), 40, true));
        assert!(is_dns_label(&"a".repeat(40), 40, true));
    }

    #[test]
    fn namespaces_are_prefix_and_slug_or_shortened_with_a_stable_hash() {
        assert_eq!(namespace_name("koru-", "acme", "o-1").unwrap(), "koru-acme");
        assert_eq!(namespace_name("", "acme", "o-1").unwrap(), "acme");
        let long = "a".repeat(70);
        let one = namespace_name("koru-", &long, "o-1").unwrap();
        assert_eq!(one.len(), 63);
        assert!(is_dns_label(&one, 63, false), "{one}");
        assert_eq!(
            one,
            namespace_name("koru-", &long, "o-1").unwrap(),
            "stable"
        );
        assert_ne!(
            one,
            namespace_name("koru-", &long, "o-2").unwrap(),
            "per org"
        );
        // A cut that would end in '-' is trimmed before the hash.
        let dashy = format!("{}-{}", "a".repeat(53), "b".repeat(20));
        let cut = namespace_name("koru-", &dashy, "o-1").unwrap();
        assert!(is_dns_label(&cut, 63, false), "{cut}");
        assert!(!cut.contains("--"), "{cut}");
        for bad in ["Acme", "ac_me", "", "acme-"] {
            assert!(
                matches!(
                    namespace_name("koru-", bad, "o"),
                    Err(SpecError::Namespace(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            namespace_name("koru-", &format!("{}_", "a".repeat(70)), "o"),
            Err(SpecError::Namespace(_))
        ));
    }

    #[test]
    fn the_cluster_carries_the_tier_limits_auth_and_labels() {
        let config = KubeProvisionerConfig::default();
        let kc = koru_cluster("koru-acme", &spec(), &config).unwrap();
        let json = serde_json::to_value(&kc).unwrap();
        assert_eq!(json["apiVersion"], "koru.dev/v1alpha1");
        assert_eq!(json["kind"], "KoruCluster");
        assert_eq!(json["metadata"]["name"], "orders");
        assert_eq!(json["metadata"]["namespace"], "koru-acme");
        let labels = &json["metadata"]["labels"];
        assert_eq!(labels[LABEL_CLUSTER_ID], "c-123");
        assert_eq!(labels[LABEL_ORG_ID], "o-9");
        assert_eq!(labels[LABEL_MANAGED_BY], "koru-controlplane");
        let s = &json["spec"];
        assert_eq!(s["version"], "0.1.0");
        assert_eq!(s["replicas"], 3);
        assert_eq!(s["storage"]["size"], "10737418240");
        assert_eq!(s["storage"]["reclaimPolicy"], "Delete");
        assert!(s["storage"].get("storageClassName").is_none());
        assert!(s.get("image").is_none());
        assert_eq!(s["limits"]["maxOpsPerSec"], 500);
        assert_eq!(s["limits"]["maxStoredBytes"], 1073741824);
        assert_eq!(s["auth"]["publicKeySecret"]["name"], "orders-token-key");
        assert_eq!(s["auth"]["publicKeySecret"]["key"], "public.pem");
        assert_eq!(s["auth"]["clusterId"], "c-123");
        assert!(s["auth"].get("revocationsUrl").is_none());
        assert_eq!(s["durability"]["fsync"], "always");
        // The control plane never writes the status: the operator owns it.
        assert!(json.get("status").is_none());

        let config = KubeProvisionerConfig {
            image: Some("registry.example/koru".into()),
            storage_class: Some("fast".into()),
            ..KubeProvisionerConfig::default()
        };
        let s =
            serde_json::to_value(koru_cluster("ns", &spec(), &config).unwrap()).unwrap()["spec"]
                .clone();
        assert_eq!(s["image"], "registry.example/koru");
        assert_eq!(s["storage"]["storageClassName"], "fast");
    }

    #[test]
    fn cluster_names_follow_the_operator_rule() {
        let config = KubeProvisionerConfig::default();
        for bad in ["1orders", "Orders", "orders-", &"a".repeat(41), ""] {
            let spec = ClusterSpec {
                name: bad.to_string(),
                ..spec()
            };
            let err = koru_cluster("ns", &spec, &config).unwrap_err();
            assert!(matches!(err, SpecError::ClusterName(_)), "{bad}");
            assert!(err.to_string().contains("at most 40 characters"));
        }
        let spec = ClusterSpec {
            max_ops_per_sec: u64::MAX,
            ..spec()
        };
        assert!(matches!(
            koru_cluster("ns", &spec, &config),
            Err(SpecError::TooLarge("max_ops_per_sec"))
        ));
    }

    #[test]
    fn the_secret_holds_the_public_key() {
        let secret = token_secret("koru-acme", &spec());
        assert_eq!(secret.metadata.name.as_deref(), Some("orders-token-key"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("koru-acme"));
        assert!(belongs_to(secret.metadata.labels.as_ref(), &spec()));
        let data = secret.data.unwrap();
        assert_eq!(data[TOKEN_KEY].0, spec().token_public_key_pem.as_bytes());
        let ns = namespace("koru-acme", &spec());
        let labels = ns.metadata.labels.unwrap();
        assert_eq!(labels[LABEL_ORG_ID], "o-9");
        assert_eq!(labels[LABEL_MANAGED_BY], MANAGED_BY);
    }

    #[test]
    fn backups_go_to_the_clusters_own_prefix_and_restores_read_the_sources() {
        let plain = koru_cluster("ns", &spec(), &KubeProvisionerConfig::default()).unwrap();
        assert_eq!((plain.spec.backup, plain.spec.bootstrap), (None, None));
        let config = KubeProvisionerConfig {
            backup_destination: Some("s3://b/hosted/".into()),
            ..KubeProvisionerConfig::default()
        };
        let kc = koru_cluster("ns", &spec(), &config).unwrap();
        let backup = kc.spec.backup.unwrap();
        assert_eq!(backup.destination, "s3://b/hosted/o-9/c-123");
        assert_eq!(backup.credentials_secret, None);
        assert_eq!(backup.retention_days, Some(1));
        assert_eq!(backup.verify_schedule.as_deref(), Some("30 4 * * *"));
        assert_eq!(backup.archive_timeout.as_deref(), Some("10s"));
        let mut restored = spec();
        restored.id = "c-456".into();
        restored.backup_retention_days = 0;
        restored.restore = Some(crate::provisioner::RestoreSource {
            cluster_id: "c-123".into(),
            backup_id: Some("b1".into()),
            target_time: Some("2026-11-26T10:00:00Z".into()),
        });
        let kc = koru_cluster("ns", &restored, &config).unwrap();
        assert_eq!(kc.spec.backup.unwrap().retention_days, None);
        let from = kc.spec.bootstrap.unwrap().from_backup.unwrap();
        assert_eq!(from.source, "s3://b/hosted/o-9/c-123");
        assert_eq!(from.backup_id.as_deref(), Some("b1"));
        assert_eq!(from.target_time.as_deref(), Some("2026-11-26T10:00:00Z"));
        let e = koru_cluster("ns", &restored, &KubeProvisionerConfig::default()).unwrap_err();
        assert_eq!(e, SpecError::NoBackups);
    }

    #[test]
    fn backups_name_their_cluster() {
        let backup = koru_backup("koru-acme", &spec(), "nightly-1").unwrap();
        assert_eq!(backup.spec.cluster, "orders");
        assert!(belongs_to(backup.metadata.labels.as_ref(), &spec()));
        assert!(matches!(
            koru_backup("koru-acme", &spec(), "Bad_Name"),
            Err(SpecError::BackupName(_))
        ));
    }

    #[test]
    fn belonging_is_by_cluster_id() {
        let other = ClusterSpec {
            id: "c-other".into(),
            ..spec()
        };
        let kc = koru_cluster("ns", &spec(), &KubeProvisionerConfig::default()).unwrap();
        assert!(belongs_to(kc.metadata.labels.as_ref(), &spec()));
        assert!(!belongs_to(kc.metadata.labels.as_ref(), &other));
        assert!(!belongs_to(None, &spec()));
    }

    fn condition(type_: &str, status: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "R".into(),
            message: message.into(),
            last_transition_time: "2026-01-01T00:00:00Z".into(),
            observed_generation: None,
        }
    }

    #[test]
    fn the_storage_ceiling_is_read_from_its_condition() {
        let mut kc = koru_cluster("ns", &spec(), &KubeProvisionerConfig::default()).unwrap();
        assert_eq!(storage_at_ceiling(&kc), None, "no status yet");
        kc.status = Some(KoruClusterStatus {
            conditions: vec![condition("Ready", "True", "3 of 3 ready")],
            ..KoruClusterStatus::default()
        });
        assert_eq!(storage_at_ceiling(&kc), None, "no such condition");
        for (status, at) in [("True", true), ("False", false), ("Unknown", false)] {
            kc.status = Some(KoruClusterStatus {
                conditions: vec![condition(
                    STORAGE_AT_CEILING,
                    status,
                    "volume 100Gi of 100Gi",
                )],
                ..KoruClusterStatus::default()
            });
            assert_eq!(storage_at_ceiling(&kc), Some(at), "{status}");
        }
    }

    #[test]
    fn the_state_reads_the_status() {
        let mut kc = koru_cluster("ns", &spec(), &KubeProvisionerConfig::default()).unwrap();
        assert_eq!(
            observed_state(&kc),
            ClusterState {
                phase: "Pending".into(),
                ready_replicas: 0,
                endpoint: None,
                message: None,
                regions: Vec::new(),
            }
        );
        kc.status = Some(KoruClusterStatus {
            phase: Some("Provisioning".into()),
            ready_replicas: 1,
            endpoint: Some("http://orders.ns.svc:7878".into()),
            conditions: vec![
                condition("Ready", "False", "1 of 3 ready"),
                condition("Progressing", "True", "waiting for pods: 1 of 3 ready"),
                condition("Degraded", "False", "nothing needs attention"),
            ],
            ..KoruClusterStatus::default()
        });
        let state = observed_state(&kc);
        assert_eq!(state.phase, "Provisioning");
        assert_eq!(state.ready_replicas, 1);
        assert_eq!(state.endpoint.as_deref(), Some("http://orders.ns.svc:7878"));
        assert_eq!(
            state.message.as_deref(),
            Some("waiting for pods: 1 of 3 ready")
        );

        // Degraded says more than Progressing.
        let status = kc.status.as_mut().unwrap();
        status.phase = Some("Degraded".into());
        status.conditions[2] = condition("Degraded", "True", "2 of 3 replicas not ready");
        assert_eq!(
            observed_state(&kc).message.as_deref(),
            Some("2 of 3 replicas not ready")
        );

        // Running has no message, whatever the conditions say.
        kc.status.as_mut().unwrap().phase = Some("Running".into());
        assert_eq!(observed_state(&kc).message, None);
    }
}
