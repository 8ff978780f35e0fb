//! The condition types a `KoruCluster`'s status carries: the operator sets them, the control
//! plane reads them to tell a cluster's phase.

/// Condition type: a majority of replicas serve.
pub const READY: &str = "Ready";
/// Condition type: the cluster is moving towards its spec (creating, scaling, upgrading, resizing).
pub const PROGRESSING: &str = "Progressing";
/// Condition type: something is wrong that needs attention (replicas down, a blocked resize).
pub const DEGRADED: &str = "Degraded";
/// Condition type: the last restore drill of the cluster's backups passed (True), failed
/// (False), or none has run yet though drills are scheduled (Unknown). Only with `spec.backup`.
pub const BACKUP_VERIFIED: &str = "BackupVerified";
/// Condition type: with `storage.autoscale`, the volumes are past their fill threshold and at
/// `maxSize`, so they cannot grow any more (True); False while they can.
pub const STORAGE_AT_CEILING: &str = "StorageAtCeiling";
/// Condition type: with `spec.region`, every peer region's stream is following its peer (True),
/// or at least one is failing (False, its error in the message); Unknown until the data plane
/// first reported its streams.
pub const REGIONS_HEALTHY: &str = "RegionsHealthy";
