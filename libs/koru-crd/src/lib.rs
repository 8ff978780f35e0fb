//! The operator's custom resources, `KoruCluster` (a KoruDelta cluster) and `KoruBackup` (an
//! on-demand backup), with their condition names and the CRD YAML generated from them: the contract
//! between the operator, the control plane that writes these objects, and the chart.
//!
//! The schemas, validation rules included, are generated from these types; the YAML committed under
//! `charts/koru-operator/crds/` must equal what [`crds_yaml`] renders (`koru-operator crd` prints it;
//! a test in the operator checks it). Validation lives in the schema (ranges and CEL rules) so the
//! API server itself rejects bad specs.

#![warn(missing_docs)]

pub mod conditions;

use kube::{CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

/// API group of both resources.
pub const GROUP: &str = "koru.dev";

/// Annotation of a KoruCluster giving the base URL of its data plane's admin API (e.g.
/// `http://127.0.0.1:7878`), for an operator running outside the Kubernetes cluster, which cannot
/// reach Service addresses. Without it the operator calls the client Service,
/// `http://<name>.<namespace>.svc:7878`.
pub const ADMIN_ENDPOINT_ANNOTATION: &str = "koru.dev/admin-endpoint";

/// The suffixes the operator appends to a cluster's name for its other objects (`<name>-peers`,
/// `<name>-config`, `<name>-admin`): no cluster's name may end in one, so one cluster's objects
/// never take another's names (`orders-peers` vs the peers Service of `orders`).
pub const RESERVED_NAME_SUFFIXES: [&str; 3] = ["-peers", "-config", "-admin"];

/// The CEL rule refusing names that end in a [`RESERVED_NAME_SUFFIXES`] suffix.
fn reserved_suffix_rule() -> String {
    RESERVED_NAME_SUFFIXES
        .iter()
        .map(|s| format!("!self.metadata.name.endsWith('{s}')"))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// Desired state of a KoruDelta cluster.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "koru.dev",
    version = "v1alpha1",
    kind = "KoruCluster",
    namespaced,
    shortname = "kc",
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40").message("a KoruCluster's name must be a DNS label of at most 40 characters starting with a letter: it names the cluster's Services, pods and volumes"),
    validation = Rule::new(reserved_suffix_rule()).message("a KoruCluster's name must not end in -peers, -config or -admin: the operator names the cluster's other objects so"),
    status = "KoruClusterStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.endpoint"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Recoverable From","type":"string","priority":1,"jsonPath":".status.backup.firstRecoverableTime"}"#,
    printcolumn = r#"{"name":"Recoverable To","type":"string","priority":1,"jsonPath":".status.backup.lastRecoverableTime"}"#,
    printcolumn = r#"{"name":"Verified","type":"string","priority":1,"jsonPath":".status.backup.lastVerifiedTime"}"#,
    printcolumn = r#"{"name":"Region","type":"string","priority":1,"jsonPath":".spec.region.name"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.replicas == 1 || self.replicas % 2 == 1").message("replicas must be odd when more than 1 (a Raft group needs a majority)"))]
#[x_kube(validation = Rule::new(NEW_TIMELINE_RULE).message(NEW_TIMELINE_MESSAGE).field_path(".backup.destination"))]
pub struct KoruClusterSpec {
    /// Data-plane version to run (the image tag).
    pub version: String,
    /// Image repository; the tag is `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Number of data-plane pods, 1 to 7.
    #[schemars(range(min = 1, max = 7))]
    pub replicas: i32,
    /// CPU and memory for each pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The persistent volume of each pod.
    pub storage: Storage,
    /// How writes are made durable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<Durability>,
    /// Tier limits the data plane enforces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Token verification for the data-plane API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Continuous archiving and scheduled base backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSettings>,
    /// How a new cluster gets its first data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Bootstrap>,
    /// Stop reconciling this cluster (objects are left as they are).
    #[serde(default)]
    pub paused: bool,
    /// Scaled to zero: no pods, volumes kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    /// This cluster as one region of a global database: its region name and the peer regions
    /// whose writes it streams and applies (`--region`, `--region-peer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionSpec>,
}

/// A cluster's place in a global database (see the data plane's REGIONS.md). The rules are the
/// data plane's own checks of `--region` and `--region-peer` (which would stop it at start and
/// crash-loop its pods), made by the API server first.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.peers.all(p, p.name != self.name)").message("a region cannot be its own peer: no peer may have the region's name").field_path(".peers"))]
#[x_kube(validation = Rule::new("self.peers.all(p, self.peers.exists_one(q, q.name == p.name))").message("each peer region may be named only once").field_path(".peers"))]
pub struct RegionSpec {
    /// This region's name: 1-32 lowercase letters, digits and `-`. Immutable: every write,
    /// counter and clock of the region carries it.
    #[schemars(regex(pattern = r"^[a-z0-9-]{1,32}$"), length(min = 1, max = 32))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("region.name is immutable: the region's writes, counters and clocks carry it"))]
    pub name: String,
    /// The other regions of the global database.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub peers: Vec<RegionPeer>,
    /// Secret (in the cluster's namespace) whose `token` key is the replication secret every
    /// region of the global database shares: presented to the peers and accepted from them.
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: String,
}

/// Another region of a global database.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegionPeer {
    /// Its region name.
    #[schemars(regex(pattern = r"^[a-z0-9-]{1,32}$"), length(min = 1, max = 32))]
    pub name: String,
    /// Its data-plane API base URL, e.g. `https://eu-west.db.example.com` (no commas or spaces:
    /// the peers reach the data plane as one comma-separated list).
    #[schemars(regex(pattern = r"^https?://[^,\s]+$"), length(max = 2048))]
    pub endpoint: String,
}

/// A restored cluster archives into a store other than the one it was restored from: its log
/// starts a new history whose segments would clash with the source's (the data plane never
/// overwrites an archived segment with different bytes, so its archiving would stall for good).
/// URLs differing only in trailing slashes name the same store.
const NEW_TIMELINE_RULE: &str = "!has(self.backup) || !has(self.bootstrap) || !has(self.bootstrap.fromBackup) || self.backup.destination.find('^.*[^/]') != self.bootstrap.fromBackup.source.find('^.*[^/]')";
/// Why [`NEW_TIMELINE_RULE`] refused a spec, and what to do instead.
const NEW_TIMELINE_MESSAGE: &str = "backup.destination must differ from bootstrap.fromBackup.source: a restored cluster starts a new history, whose log segments would clash with those of the cluster it was restored from; archive it to a new prefix, e.g. s3://bucket/<this-cluster>";

/// CPU and memory requests (limits equal requests).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Resources {
    /// CPU, as a Kubernetes quantity (e.g. `500m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("cpu must be a positive quantity such as 500m or 2"))]
    pub cpu: Option<String>,
    /// Memory, as a Kubernetes quantity (e.g. `1Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("memory must be a positive quantity such as 512Mi or 4Gi"))]
    pub memory: Option<String>,
    /// Let the operator set CPU and memory from observed load within these bounds (in place,
    /// through the pods' `resize` subresource); `cpu` and `memory` are then the starting point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<ComputeAutoscale>,
}

/// Bounds within which the operator sets each pod's CPU and memory from observed load.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("quantity(self.minCpu).compareTo(quantity(self.maxCpu)) <= 0").message("autoscale.minCpu must not exceed maxCpu"))]
#[x_kube(validation = Rule::new("quantity(self.minMemory).compareTo(quantity(self.maxMemory)) <= 0").message("autoscale.minMemory must not exceed maxMemory"))]
pub struct ComputeAutoscale {
    /// The least CPU a pod is given (e.g. `250m`).
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("minCpu must be a positive quantity such as 250m"))]
    pub min_cpu: String,
    /// The most CPU a pod is given (e.g. `2`).
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("maxCpu must be a positive quantity such as 2"))]
    pub max_cpu: String,
    /// The least memory a pod is given (e.g. `256Mi`).
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("minMemory must be a positive quantity such as 256Mi"))]
    pub min_memory: String,
    /// The most memory a pod is given (e.g. `4Gi`).
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("maxMemory must be a positive quantity such as 4Gi"))]
    pub max_memory: String,
}

/// Growing the volumes by themselves as they fill.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageAutoscale {
    /// Grow once a member's volume is this full, in percent (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 99))]
    pub threshold_percent: Option<i32>,
    /// The ceiling: volumes never grow past it (the tier's limit).
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("maxSize must be a positive quantity such as 100Gi"))]
    pub max_size: String,
}

/// The persistent volume of each pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName)").message("storageClassName is immutable (it cannot be added or removed either)"))]
#[x_kube(validation = Rule::new("!has(self.autoscale) || quantity(self.autoscale.maxSize).compareTo(quantity(self.size)) >= 0").message("storage.autoscale.maxSize must be at least storage.size"))]
pub struct Storage {
    /// Volume size, a quantity such as `10Gi`; it may grow but never shrink.
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("storage size must be a positive quantity such as 10Gi"))]
    #[x_kube(validation = Rule::new("quantity(self).compareTo(quantity(oldSelf)) >= 0").message("storage size cannot shrink"))]
    pub size: String,
    /// Storage class; fixed once the cluster exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storageClassName is immutable"))]
    pub storage_class_name: Option<String>,
    /// What happens to the volumes when pods are scaled away or the cluster is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaim_policy: Option<ReclaimPolicy>,
    /// Grow the volumes by themselves past a fill threshold, up to a ceiling. The grown size is
    /// kept in `status.storage.size` (the spec stays what its writer set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<StorageAutoscale>,
}

/// The fate of a cluster's volumes once no pod uses them.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum ReclaimPolicy {
    /// Keep them (the default): data survives scale-down and deletion until removed by hand.
    #[default]
    Retain,
    /// Delete them with the pod on scale-down and with the cluster on deletion.
    Delete,
}

/// Durability of writes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Durability {
    /// `always`, `off`, or `interval=<ms>` (the data plane's `--fsync`).
    #[schemars(regex(pattern = r"^(always|off|interval(=[1-9][0-9]{0,4})?)$"))]
    pub fsync: String,
}

/// Limits from the cluster's tier.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Operations per second across all clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub max_ops_per_sec: Option<i64>,
    /// Storage quota in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1048576))]
    pub max_stored_bytes: Option<i64>,
}

/// Where the token verification key comes from, and which cluster id tokens must name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    /// Secret holding the PEM public key (Ed25519 or RSA).
    pub public_key_secret: SecretKeyRef,
    /// The cluster id data tokens must name (their `cluster` claim and `aud`): the control
    /// plane's id for the cluster. `<namespace>/<name>` when absent (clusters applied by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub cluster_id: Option<String>,
    /// URL of the cluster's signed revoked-token list, polled by every pod
    /// (`--revocations-url`); revoked tokens are not refused when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://.+"))]
    pub revocations_url: Option<String>,
}

/// A key of a Secret in the cluster's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}

/// Backup settings: every pod archives its sealed log segments to `destination` and, with a
/// `schedule`, takes base backups there (`KORU_BACKUP_*` in the pods' configuration).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSettings {
    /// Object store URL: `s3://bucket/prefix` or `file:///path`.
    #[schemars(regex(pattern = r"^(s3|file)://.+"))]
    pub destination: String,
    /// Secret with the object store credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// When to take base backups: a five-field cron expression in UTC (minute hour day-of-month
    /// month day-of-week, e.g. `0 3 * * *`) or `@hourly`, `@daily`, `@weekly`, `@monthly`,
    /// `@yearly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new(cron_rule()).message(CRON_MESSAGE))]
    pub schedule: Option<String>,
    /// Days every moment stays restorable: after each base backup, older ones are deleted except
    /// the newest before the window. Unset: all are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3650))]
    pub retention_days: Option<i32>,
    /// How long a write may wait in the active log segment before it is sealed and archived
    /// (`30s`, `5m`, `1h`; default `60s`): the longest stretch of writes losing every volume
    /// would lose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new(format!("self.matches('{ARCHIVE_TIMEOUT_PATTERN}')")).message("archiveTimeout must be a whole number of seconds, minutes, hours or days, such as 30s, 5m or 1h"))]
    pub archive_timeout: Option<String>,
    /// When to run restore drills (the newest base backup restored into a scratch directory
    /// beside the data and checked; the pod's volume needs room for one more copy meanwhile):
    /// a cron expression like `schedule`. The outcome is the `BackupVerified` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new(cron_rule()).message(CRON_MESSAGE))]
    pub verify_schedule: Option<String>,
}

/// What the data plane's `--archive-timeout` accepts, less milliseconds (a segment per write).
pub const ARCHIVE_TIMEOUT_PATTERN: &str = "^[1-9][0-9]{0,6}(s|m|h|d)?$";

/// The message of a refused cron expression.
const CRON_MESSAGE: &str = "must be a five-field cron expression in UTC (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, day of week 0-7 or SUN-SAT; e.g. \"0 3 * * *\" or \"*/15 * * * *\") or one of @hourly, @daily, @weekly, @monthly, @yearly";

/// A regular expression (RE2, as the API server's CEL runs it) for the cron expressions the data
/// plane's schedule parser accepts: five fields (no seconds, no year), each value in its range,
/// steps only after `*` or a range (`*/5`, `1-30/5`), names of months and weekdays in any case,
/// `L`, `W`, `#` and `?` where the parser allows them, or an alias. A data plane refuses a bad
/// schedule at start, which would crash-loop every pod, so the API server refuses it first. (A
/// pattern that never fires, such as 30 February, still passes here.)
pub fn cron_pattern() -> String {
    let step = "/[1-9][0-9]{0,3}";
    // A field: `*`, or a comma-separated list of `*/step`, `n`, `n-m` and `n-m/step`, plus
    // the field's own extras.
    let field = |value: &str, extra: &[&str]| {
        let mut items = vec![format!("[*]{step}"), format!("{value}(-{value}({step})?)?")];
        items.extend(extra.iter().map(|e| e.to_string()));
        let item = format!("({})", items.join("|"));
        format!("([*]|{item}(,{item})*)")
    };
    let minute = field("[0-5]?[0-9]", &[]);
    let hour = field("([01]?[0-9]|2[0-3])", &[]);
    let day = "(0?[1-9]|[12][0-9]|3[01])";
    // `?` means any; `L` the last day, `LW` the last weekday, `15W` the weekday nearest the 15th.
    let day_of_month = format!(
        "([?]|{})",
        field(day, &["[Ll][Ww]?", &format!("{day}[Ww]")])
    );
    let month = field(
        "(0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))",
        &[],
    );
    let weekday = "([0-7]|(?i:sun|mon|tue|wed|thu|fri|sat))";
    // `5L` the last Friday of the month, `1#2` its second Monday; a leading `+` ANDs the day
    // fields instead of ORing them.
    let day_of_week = format!(
        "[+]?([?]|{})",
        field(
            weekday,
            &[
                "[Ll]",
                &format!("{weekday}[Ll]"),
                &format!("{weekday}#[1-5]")
            ]
        )
    );
    format!(
        "^ *(@(?i:hourly|daily|weekly|monthly|yearly|annually)|{minute} +{hour} +{day_of_month} +{month} +{day_of_week}) *$"
    )
}

/// The CEL rule checking a cron expression against [`cron_pattern`].
fn cron_rule() -> String {
    format!("self.matches('{}')", cron_pattern())
}

/// How a new cluster is seeded.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    /// Restore from a backup instead of starting empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_backup: Option<FromBackup>,
}

/// A restore source, optionally to a point in time.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FromBackup {
    /// Object store URL the backups live in.
    pub source: String,
    /// A base backup id; the newest suitable one when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// Restore to this moment (RFC 3339); the end of the archive when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub target_time: Option<String>,
}

/// Observed state of a KoruCluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KoruClusterStatus {
    /// Pending, Provisioning, Running, Scaling, Upgrading, Resizing, Degraded, Paused,
    /// Suspending, Suspended or Resuming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Pods passing readiness.
    #[serde(default)]
    pub ready_replicas: i32,
    /// The client Service's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Version the pods run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// Generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing and Degraded, with backups BackupVerified, with storage autoscaling
    /// StorageAtCeiling, with a region RegionsHealthy, each with a reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// With `spec.backup`: what the backups make recoverable, as the data plane last reported it
    /// (checked about every minute while the cluster serves; kept as it was while unreachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<RecoveryStatus>,
    /// The cluster's Raft group as its members last reported it: the leader and each member's
    /// health (kept as it was while unreachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationStatus>,
    /// The volumes as the operator last saw them (with `storage.autoscale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageStatus>,
    /// The CPU and memory each pod is given (with `resources.autoscale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesStatus>,
    /// With `spec.region`: each peer region's stream as the data plane last reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<RegionsStatus>,
}

/// The streams from a cluster's peer regions.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegionsStatus {
    /// This cluster's region.
    pub region: String,
    /// One entry per peer region.
    #[serde(default)]
    pub links: Vec<RegionLinkStatus>,
    /// When the data plane last answered (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_time: Option<String>,
}

/// One peer region's stream.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegionLinkStatus {
    /// The peer's region name.
    pub name: String,
    /// connecting, streaming or failing.
    pub state: String,
    /// The peer's last LSN applied here.
    pub applied_lsn: i64,
    /// Seconds this region trails the peer, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// The last failure while failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A cluster's volumes as the operator last saw them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    /// The size the operator grew the volumes to (a quantity); the volumes' size is the larger of
    /// it and `spec.storage.size`. Unset until the first growth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// How full the fullest member's volume is, in percent, as its data plane last reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_percent: Option<i32>,
    /// When the operator last grew the volumes (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_growth_time: Option<String>,
}

/// The CPU and memory each of a cluster's pods is given.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesStatus {
    /// CPU request (and limit) of each pod, a quantity such as `500m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory request (and limit) of each pod, a quantity such as `512Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// When the operator last changed them (RFC 3339): the cool-down counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_time: Option<String>,
}

/// The leader and members of a cluster's Raft group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationStatus {
    /// The pod that leads, when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Every member, voters and members still catching up.
    #[serde(default)]
    pub members: Vec<MemberStatus>,
}

/// One member of a cluster's Raft group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Its pod.
    pub pod: String,
    /// Whether it votes (false while it catches up after a scale-up).
    pub voter: bool,
    /// Entries it trails the leader by, as the leader reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
    /// Whether it votes and keeps up with the leader; unset when only a follower answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
}

/// The recoverable window and recovery point of a cluster with backups.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryStatus {
    /// The earliest moment a restore can reach (RFC 3339): the first write of the oldest base
    /// backup holding data, or of the archived log when that is earlier. Unset until something
    /// holding data is archived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_recoverable_time: Option<String>,
    /// The latest moment a restore can reach (RFC 3339): the last write of the newest base
    /// backup holding data, or of the archived log when it reaches further (sealed segments are
    /// archived as they are sealed, so it usually does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_recoverable_time: Option<String>,
    /// Id of the newest base backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_id: Option<String>,
    /// The recovery point: seconds of writes not yet in the backup store (the age of the oldest
    /// write not archived, rounded up; 0 when everything is archived), which losing every
    /// volume now would lose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point_seconds: Option<i64>,
    /// When the last restore drill that passed finished (RFC 3339): the newest moment a backup
    /// of this cluster was known to restore. Kept while later drills fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_time: Option<String>,
}

/// One aspect of a cluster's state, in the shape of Kubernetes' own conditions.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Ready, Progressing, Degraded, BackupVerified, StorageAtCeiling or RegionsHealthy.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// A PascalCase word saying why.
    pub reason: String,
    /// A sentence for humans.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// Generation the condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// An on-demand base backup of one cluster, taken through its data plane's backup API.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "koru.dev",
    version = "v1alpha1",
    kind = "KoruBackup",
    namespaced,
    status = "KoruBackupStatus",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Backup","type":"string","jsonPath":".status.backupId"}"#,
    printcolumn = r#"{"name":"Restores To","type":"string","jsonPath":".status.lastTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("a KoruBackup's spec is immutable"))]
pub struct KoruBackupSpec {
    /// Name of the KoruCluster to back up (same namespace).
    #[schemars(length(min = 1, max = 63))]
    pub cluster: String,
}

/// Observed state of a KoruBackup.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KoruBackupStatus {
    /// Pending, Running, Completed, or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// When the backup started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Identifier of the base backup taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it is doing or waiting for (the last transient error while it retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Calls made to the data plane's backup API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// LSN of the first write the backup covers (0 for an empty log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_lsn: Option<i64>,
    /// LSN of the last write it covers: restoring it without a target stops here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_lsn: Option<i64>,
    /// Commit time of the first write it covers (RFC 3339); unset for an empty log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_time: Option<String>,
    /// Commit time of the last write it covers (RFC 3339); unset for an empty log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_time: Option<String>,
}

/// Both CRDs as one multi-document YAML, as committed under `charts/koru-operator/crds/`.
pub fn crds_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    for crd in [KoruCluster::crd(), KoruBackup::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_crds_render_with_the_reserved_name_rule() {
        let yaml = crds_yaml().unwrap();
        assert_eq!(yaml.matches("kind: CustomResourceDefinition").count(), 2);
        assert!(yaml.contains("name: koruclusters.koru.dev"), "{yaml}");
        assert!(yaml.contains("name: korubackups.koru.dev"), "{yaml}");
        for suffix in RESERVED_NAME_SUFFIXES {
            assert!(
                yaml.contains(&format!("!self.metadata.name.endsWith('{suffix}')")),
                "{suffix}"
            );
        }
    }
}
