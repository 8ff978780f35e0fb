//! Provisioning: making a cluster exist somewhere. Two implementations behind one type: the local
//! provisioner (the embedded default) runs `koru-dataplane` child processes; the Kubernetes
//! provisioner writes `KoruCluster` objects for the operator.

pub mod kubernetes;
pub mod local;

use serde::{Deserialize, Serialize};

/// Everything a provisioner needs to run a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSpec {
    /// The cluster's id (also the data plane's cluster id that tokens name).
    pub id: String,
    /// The cluster's name, unique in its organization.
    pub name: String,
    /// The owning organization's id.
    pub org_id: String,
    /// The owning organization's slug (names the Kubernetes namespace).
    pub org_slug: String,
    /// Data-plane version.
    pub version: String,
    /// Number of replicas.
    pub replicas: u32,
    /// Volume size, bytes.
    pub storage_bytes: u64,
    /// Operations per second the data plane allows (the tier's limit).
    pub max_ops_per_sec: u64,
    /// Stored bytes the data plane allows (the tier's limit).
    pub max_stored_bytes: u64,
    /// PEM public key data-plane tokens are verified with (the cluster's own key's).
    pub token_public_key_pem: String,
    /// Where the data plane polls its signed revoked-token list, if anywhere. Specs written
    /// before revocation existed read as None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocations_url: Option<String>,
    /// How many days of base backups the data plane keeps (the tier's). Specs written before
    /// backups existed read as 0, which keeps every backup.
    #[serde(default)]
    pub backup_retention_days: u32,
    /// What a new cluster starts from: another cluster's backups as of a moment, or nothing.
    /// Only read when the cluster is first created; later applies leave its data alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSource>,
    /// Scaled to zero: no process (local) or no pods (Kubernetes), data and volumes kept. Specs
    /// written before scale-to-zero read as false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    /// A global database's regions, in order (the first is the primary); empty for a
    /// single-region cluster. The provisioner runs one data plane (group) per region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Set on the spec of one region of a global database, as the provisioner derives it from
    /// `regions`: which region it is and its peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionPlacement>,
}

/// One region of a global database: its name and the peers whose writes it applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionPlacement {
    /// This region's name.
    pub name: String,
    /// Every other region: name and API base URL.
    pub peers: Vec<(String, String)>,
}

impl ClusterSpec {
    /// Whether this is a global database (several regions).
    pub fn is_global(&self) -> bool {
        self.regions.len() > 1
    }

    /// The name of what a provisioner runs for this spec: the cluster's id, or
    /// `<id>.<region>` for one region of a global database.
    pub fn unit_id(&self) -> String {
        match &self.region {
            Some(r) => format!("{}.{}", self.id, r.name),
            None => self.id.clone(),
        }
    }

    /// The phase an operation on this spec waits for: Suspended or Running.
    pub fn target_phase(&self) -> &'static str {
        if self.suspended {
            "Suspended"
        } else {
            "Running"
        }
    }
}

/// A new cluster's starting data: another cluster's archive, restored to a point in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RestoreSource {
    /// The cluster whose backups are restored (same organization).
    pub cluster_id: String,
    /// The base backup to start from; the archive's segments alone when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// Keep writes committed at or before this moment (RFC 3339); everything archived when
    /// absent (or the backup's end, with `backup_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_time: Option<String>,
}

/// What a provisioner reports about a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Pending, Provisioning, Running, Degraded, Suspended, Failed, or Deleted.
    pub phase: String,
    /// Replicas passing readiness.
    pub ready_replicas: u32,
    /// Where clients reach the data plane, once known.
    pub endpoint: Option<String>,
    /// Why it is not running, when it is not.
    pub message: Option<String>,
    /// Each region of a global database (empty for a single-region cluster).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionState>,
}

/// What a provisioner reports about one region of a global database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionState {
    /// The region.
    pub name: String,
    /// Its phase.
    pub phase: String,
    /// Where it is reached, once known.
    pub endpoint: Option<String>,
    /// The streams it follows from its peers, when known.
    pub links: Option<Vec<crate::regions::RegionLink>>,
}

/// The phase of a global database from its regions' phases: Running when every region runs,
/// Failed when one failed, else the first region's phase that is not Running.
pub fn global_phase(regions: &[RegionState]) -> String {
    if regions.iter().any(|r| r.phase == "Failed") {
        return "Failed".into();
    }
    regions
        .iter()
        .find(|r| r.phase != "Running")
        .map_or_else(|| "Running".into(), |r| r.phase.clone())
}

/// Why a provisioner failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The cluster is unknown to the provisioner.
    #[error("cluster {0} is not provisioned")]
    NotFound(String),
    /// Files or processes of the local provisioner.
    #[error("local provisioner: {0}")]
    Local(String),
    /// The Kubernetes API refused or failed.
    #[error("Kubernetes: {0}")]
    Kubernetes(String),
}

/// The provisioner in use.
pub enum Provisioner {
    /// Child processes on this machine.
    Local(local::LocalProvisioner),
    /// KoruCluster objects for the operator.
    Kubernetes(kubernetes::KubeProvisioner),
}

impl Provisioner {
    /// Creates the cluster or brings it to `spec` (idempotent).
    pub async fn apply(&self, spec: &ClusterSpec) -> Result<(), ProvisionError> {
        match self {
            Provisioner::Local(p) => p.apply(spec).await,
            Provisioner::Kubernetes(p) => p.apply(spec).await,
        }
    }

    /// Removes the cluster and its data (idempotent: an unknown cluster is not an error).
    pub async fn delete(&self, spec: &ClusterSpec) -> Result<(), ProvisionError> {
        match self {
            Provisioner::Local(p) => p.delete(spec).await,
            Provisioner::Kubernetes(p) => p.delete(spec).await,
        }
    }

    /// The base URL of each member of `cluster` (of organization `org_slug`) that a gateway
    /// forwards to: the local data plane's endpoint, or each pod's stable DNS name on Kubernetes.
    pub fn members(&self, org_slug: &str, cluster: &crate::clusters::Cluster) -> Vec<String> {
        match self {
            Provisioner::Local(_) => cluster.endpoint.iter().cloned().collect(),
            Provisioner::Kubernetes(p) => p.members(org_slug, cluster),
        }
    }

    /// The cluster's current state.
    pub async fn state(&self, spec: &ClusterSpec) -> Result<ClusterState, ProvisionError> {
        match self {
            Provisioner::Local(p) => p.state(spec).await,
            Provisioner::Kubernetes(p) => p.state(spec).await,
        }
    }
}
