//! Clusters: the rules for creating, changing and deleting them (names, tiers, quotas), their
//! records, and the asynchronous operations that drive the provisioner.
//!
//! A change is recorded as an operation and carried out by a background task, so requests return
//! at once. One operation at a time per cluster: a second one gets 423 with the running one's id.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, AssertSqlSafe, Row, Transaction};
use utoipa::ToSchema;

use crate::db::{new_id, now_ms};
use crate::error::{Error, Result};
use crate::operations::{self, Operation, OperationKind};
use crate::orgs::Organization;
use crate::pagination::{After, bounds};
use crate::provisioner::{ClusterSpec, RestoreSource};
use crate::state::AppState;
use crate::tiers::{self, TierName};

/// The data-plane version new clusters run.
pub const DEFAULT_VERSION: &str = "0.1.0";
/// The region of clusters that name none.
pub const DEFAULT_REGION: &str = "local";

/// A cluster as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Cluster {
    /// Cluster id.
    pub id: String,
    /// Owning organization id.
    pub org_id: String,
    /// Name, unique in the organization.
    pub name: String,
    /// Its tier (limits).
    pub tier: TierName,
    /// Region label.
    pub region: String,
    /// Replicas.
    pub replicas: u32,
    /// Data-plane version.
    pub version: String,
    /// Pending, Provisioning, Running, Degraded, Suspended, Failed or Deleting.
    pub phase: String,
    /// Whether it is to be scaled to zero (suspended, or on its way there); the first request
    /// through the gateway, or `POST …/resume`, wakes it.
    pub suspended: bool,
    /// Where the data plane is reached, once known.
    pub endpoint: Option<String>,
    /// Why it is not running, when it is not.
    pub message: Option<String>,
    /// Storage quota, bytes (the tier's).
    pub max_storage_bytes: u64,
    /// Operations per second (the tier's).
    pub max_ops_per_sec: u64,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
    /// The backups it was restored from, for a cluster created by a restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<RestoreSource>,
    /// CIDRs whose clients may reach it through the gateway, normalised; empty allows everyone.
    pub allowed_cidrs: Vec<String>,
    /// Since when (ms since the epoch) its storage has been at the tier's ceiling: it cannot grow
    /// further, so writes will soon be refused. Absent while it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_at_ceiling_since: Option<i64>,
    /// A global database's regions in order, each with its endpoint and stream links (the
    /// first is `region` and `endpoint`); empty for a single-region cluster.
    pub regions: Vec<crate::regions::ClusterRegion>,
}

/// What every cluster query selects, in [`cluster`]'s terms: the cluster, and its
/// organization's plan and custom limits (which set the cluster's effective limits).
const SELECT_CLUSTERS: &str = "SELECT c.id, c.org_id, c.name, c.tier, c.region, c.replicas, c.version, c.phase, \
     c.endpoint, c.message, c.suspended, c.created_at, c.updated_at, c.restore_cluster_id, c.restore_backup_id, \
     c.restore_target_time, c.allowed_cidrs, c.storage_at_ceiling_since, o.tier AS org_tier, o.limit_max_storage_bytes, o.limit_max_ops_per_sec, \
     o.limit_max_clusters, o.limit_max_replicas, o.limit_backup_retention_days \
     FROM clusters c JOIN organizations o ON o.id = c.org_id";

fn parse_tier(name: &str) -> Result<TierName> {
    TierName::parse(name).ok_or_else(|| Error::Internal(format!("unknown tier {name:?} stored")))
}

fn cluster(row: &AnyRow) -> Result<Cluster> {
    let tier = parse_tier(&row.try_get::<String, _>("tier")?)?;
    let plan = parse_tier(&row.try_get::<String, _>("org_tier")?)?;
    let limits = tiers::effective(plan, tier, &crate::orgs::custom_limits(row)?);
    let replicas: i64 = row.try_get("replicas")?;
    Ok(Cluster {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        tier,
        region: row.try_get("region")?,
        replicas: u32::try_from(replicas).unwrap_or(1),
        version: row.try_get("version")?,
        phase: row.try_get("phase")?,
        suspended: row.try_get::<i64, _>("suspended")? != 0,
        endpoint: row.try_get("endpoint")?,
        message: row.try_get("message")?,
        max_storage_bytes: limits.max_storage_bytes,
        max_ops_per_sec: limits.max_ops_per_sec,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        restored_from: row
            .try_get::<Option<String>, _>("restore_cluster_id")?
            .map(|cluster_id| -> Result<RestoreSource> {
                Ok(RestoreSource {
                    cluster_id,
                    backup_id: row.try_get("restore_backup_id")?,
                    target_time: row.try_get("restore_target_time")?,
                })
            })
            .transpose()?,
        allowed_cidrs: crate::allow_lists::from_column(
            &row.try_get::<String, _>("allowed_cidrs")?,
        )?,
        storage_at_ceiling_since: row.try_get("storage_at_ceiling_since")?,
        regions: Vec::new(),
    })
}

/// A cluster read from `row`, with its regions.
async fn cluster_with_regions(db: &AnyPool, row: &AnyRow) -> Result<Cluster> {
    let mut c = cluster(row)?;
    c.regions = crate::regions::of(db, &c.id).await?;
    Ok(c)
}

/// The clusters read from `rows`, with their regions.
async fn clusters_with_regions(db: &AnyPool, rows: &[AnyRow]) -> Result<Vec<Cluster>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(cluster_with_regions(db, row).await?);
    }
    Ok(out)
}

/// `POST /api/v1/orgs/{org}/clusters`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct CreateCluster {
    /// Name: a lower-case DNS label of at most 40 characters, starting with a letter.
    pub name: String,
    /// Tier; the organization's when absent. At most the organization's.
    #[serde(default)]
    pub tier: Option<TierName>,
    /// Region label; `local` when absent. Ignored when `regions` is given.
    #[serde(default)]
    pub region: Option<String>,
    /// A global database: two or more regions from the catalogue (`GET /api/v1/regions`), the
    /// first being the primary; pro and enterprise tiers only, up to the tier's `max_regions`.
    #[serde(default)]
    pub regions: Option<Vec<String>>,
    /// Replicas: 1, 3, 5 or 7 (a Raft group needs a majority), within the tier.
    #[serde(default)]
    pub replicas: Option<u32>,
    /// IPv4/IPv6 CIDRs (or single addresses) allowed to reach the cluster through the gateway, at
    /// most 100; empty or absent allows every address.
    #[serde(default)]
    pub allowed_cidrs: Option<Vec<String>>,
}

/// `PATCH /api/v1/orgs/{org}/clusters/{id}`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct UpdateCluster {
    /// New tier.
    #[serde(default)]
    pub tier: Option<TierName>,
    /// New replica count.
    #[serde(default)]
    pub replicas: Option<u32>,
    /// New allow list, replacing the old one (`[]` allows every address again); unchanged when
    /// absent.
    #[serde(default)]
    pub allowed_cidrs: Option<Vec<String>>,
}

/// Checks a cluster name: it names Kubernetes objects and DNS records.
pub fn check_name(name: &str) -> Result<()> {
    let ok = (1..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(Error::BadRequest(format!(
            "cluster name {name:?} must be 1 to 40 lower-case letters, digits and dashes, starting with a letter and not ending with a dash"
        )));
    }
    // Another cluster's objects carry these suffixes (`orders-peers` is `orders`'s Service).
    let reserved = koru_crd::RESERVED_NAME_SUFFIXES;
    if let Some(suffix) = reserved.iter().find(|s| name.ends_with(*s)) {
        return Err(Error::BadRequest(format!(
            "cluster name {name:?} must not end in {suffix:?}: names ending in {} are kept for the objects of other clusters",
            reserved.join(", ")
        )));
    }
    Ok(())
}

/// Checks a region label.
pub fn check_region(region: &str) -> Result<()> {
    if (1..=32).contains(&region.len())
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "region {region:?} must be 1 to 32 lower-case letters, digits and dashes"
        )))
    }
}

/// Checks a replica count: odd, so a Raft group always has a majority.
pub fn check_replicas(replicas: u32) -> Result<()> {
    if matches!(replicas, 1 | 3 | 5 | 7) {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "replicas must be 1, 3, 5 or 7, not {replicas}"
        )))
    }
}

/// The URL of cluster `cluster_id`'s signed revoked-token list under the control plane's URL.
pub fn revocations_url(public_url: &str, cluster_id: &str) -> String {
    format!(
        "{}/api/v1/clusters/{cluster_id}/revocations",
        public_url.trim_end_matches('/')
    )
}

/// The provisioner's view of a cluster whose tokens are verified with `token_public_key_pem`.
pub fn spec(
    state: &AppState,
    org: &Organization,
    c: &Cluster,
    token_public_key_pem: String,
) -> ClusterSpec {
    let limits = org.limits(c.tier);
    ClusterSpec {
        id: c.id.clone(),
        name: c.name.clone(),
        org_id: org.id.clone(),
        org_slug: org.slug.clone(),
        version: c.version.clone(),
        replicas: c.replicas,
        storage_bytes: limits.max_storage_bytes,
        max_ops_per_sec: limits.max_ops_per_sec,
        max_stored_bytes: limits.max_storage_bytes,
        token_public_key_pem,
        revocations_url: Some(revocations_url(&state.public_url, &c.id)),
        backup_retention_days: limits.backup_retention_days,
        restore: c.restored_from.clone(),
        suspended: c.suspended,
        regions: c.regions.iter().map(|r| r.name.clone()).collect(),
        region: None,
    }
}

/// Every cluster of every organization, oldest first (the gateway's route table), without their
/// regions (the gateway routes to a global database's primary region).
pub async fn all(db: &AnyPool) -> Result<Vec<Cluster>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "{SELECT_CLUSTERS} ORDER BY c.created_at, c.id"
    )))
    .fetch_all(db)
    .await?;
    rows.iter().map(cluster).collect()
}

/// A cluster by id, whatever its organization (internal callers: the gateway, the idle check).
pub async fn by_id(db: &AnyPool, id: &str) -> Result<Cluster> {
    let row = sqlx::query(AssertSqlSafe(format!("{SELECT_CLUSTERS} WHERE c.id = $1")))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no cluster {id:?}")))?;
    cluster_with_regions(db, &row).await
}

/// The clusters of an organization, oldest first.
pub async fn list(db: &AnyPool, org_id: &str) -> Result<Vec<Cluster>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "{SELECT_CLUSTERS} WHERE c.org_id = $1 ORDER BY c.created_at, c.id"
    )))
    .bind(org_id)
    .fetch_all(db)
    .await?;
    clusters_with_regions(db, &rows).await
}

/// [`list`] inside a transaction (one that holds the organization's [`crate::orgs::lock`]),
/// without their regions.
pub async fn list_in(tx: &mut Transaction<'_, Any>, org_id: &str) -> Result<Vec<Cluster>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "{SELECT_CLUSTERS} WHERE c.org_id = $1 ORDER BY c.created_at, c.id"
    )))
    .bind(org_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(cluster).collect()
}

/// One page of an organization's clusters, oldest first (`limit + 1` fetched: see
/// [`crate::pagination::Page::from_fetched`]).
pub async fn page(
    db: &AnyPool,
    org_id: &str,
    after: &Option<After>,
    limit: u32,
) -> Result<Vec<Cluster>> {
    let (t, id) = bounds(after);
    let rows = sqlx::query(AssertSqlSafe(format!(
        "{SELECT_CLUSTERS} WHERE c.org_id = $1 AND (c.created_at > $2 OR (c.created_at = $2 AND c.id > $3)) \
         ORDER BY c.created_at, c.id LIMIT $4"
    )))
    .bind(org_id)
    .bind(t)
    .bind(id)
    .bind(i64::from(limit) + 1)
    .fetch_all(db)
    .await?;
    clusters_with_regions(db, &rows).await
}

/// A cluster of an organization by id or name; another organization's is "not found".
pub async fn get(db: &AnyPool, org_id: &str, id_or_name: &str) -> Result<Cluster> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "{SELECT_CLUSTERS} WHERE c.org_id = $1 AND (c.id = $2 OR c.name = $2)"
    )))
    .bind(org_id)
    .bind(id_or_name)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| Error::NotFound(format!("no cluster {id_or_name:?}")))?;
    cluster_with_regions(db, &row).await
}

/// Records a new cluster after checking its name, tier and the organization's quota, and starts
/// the operation that provisions it: empty, or from `restore` (checked by the caller). The quota
/// is counted and the cluster inserted in one transaction under the organization's
/// [`crate::orgs::lock`], so concurrent creates cannot all pass the same count.
pub async fn create(
    state: &AppState,
    org: &Organization,
    req: &CreateCluster,
    restore: Option<RestoreSource>,
    idempotency_key: Option<&str>,
) -> Result<(Cluster, Operation)> {
    check_name(&req.name)?;
    let regions = req.regions.clone().unwrap_or_default();
    if !regions.is_empty() {
        crate::regions::check(&regions)?;
        crate::regions::check_names(&req.name, &regions)?;
        if restore.is_some() {
            return Err(Error::BadRequest(
                "a restore makes a single-region cluster; leave `regions` out".into(),
            ));
        }
    }
    let region = match regions.first() {
        Some(primary) => primary.clone(),
        None => req
            .region
            .clone()
            .unwrap_or_else(|| DEFAULT_REGION.to_string()),
    };
    check_region(&region)?;
    let replicas = req.replicas.unwrap_or(1);
    check_replicas(replicas)?;
    let allowed_cidrs =
        crate::allow_lists::normalize(req.allowed_cidrs.as_deref().unwrap_or_default())?;
    let mut tx = state.db.begin().await?;
    // The organization as of the lock: its plan, custom limits and suspension may have changed.
    let org = &crate::orgs::lock(&mut tx, &org.id).await?;
    org.check_active()?;
    let tier = req.tier.unwrap_or(org.tier);
    tiers::check_tier(org.tier, tier)?;
    let existing = sqlx::query("SELECT COUNT(*) AS n FROM clusters WHERE org_id = $1")
        .bind(&org.id)
        .fetch_one(&mut *tx)
        .await?
        .try_get::<i64, _>("n")?;
    let existing = u32::try_from(existing).unwrap_or(u32::MAX);
    tiers::check_cluster(&org.limits(org.tier), existing, 0)
        .map_err(|e| Error::QuotaExceeded(e.to_string()))?;
    let limits = org.limits(tier);
    tiers::check_cluster(&limits, 0, replicas).map_err(|e| Error::QuotaExceeded(e.to_string()))?;
    tiers::check_regions(&limits, regions.len())?;
    let now = now_ms();
    let c = Cluster {
        id: new_id(),
        org_id: org.id.clone(),
        name: req.name.clone(),
        tier,
        region,
        replicas,
        version: DEFAULT_VERSION.into(),
        phase: "Pending".into(),
        suspended: false,
        endpoint: None,
        message: None,
        max_storage_bytes: limits.max_storage_bytes,
        max_ops_per_sec: limits.max_ops_per_sec,
        created_at: now,
        updated_at: now,
        restored_from: restore,
        allowed_cidrs,
        storage_at_ceiling_since: None,
        regions: regions
            .iter()
            .map(|name| crate::regions::ClusterRegion {
                name: name.clone(),
                endpoint: None,
                phase: None,
                status: None,
            })
            .collect(),
    };
    let restore = c.restored_from.as_ref();
    sqlx::query(
        "INSERT INTO clusters (id, org_id, name, tier, region, replicas, version, phase, created_at, updated_at, \
         restore_cluster_id, restore_backup_id, restore_target_time, allowed_cidrs) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&c.id)
    .bind(&c.org_id)
    .bind(&c.name)
    .bind(tier.as_str())
    .bind(&c.region)
    .bind(i64::from(replicas))
    .bind(&c.version)
    .bind(&c.phase)
    .bind(now)
    .bind(now)
    .bind(restore.map(|r| r.cluster_id.as_str()))
    .bind(restore.and_then(|r| r.backup_id.as_deref()))
    .bind(restore.and_then(|r| r.target_time.as_deref()))
    .bind(crate::allow_lists::to_column(&c.allowed_cidrs))
    .execute(&mut *tx)
    .await
    .map_err(|e| Error::unique(e, format!("a cluster named {:?} already exists in this organization", c.name)))?;
    crate::regions::insert(&mut tx, &c.id, &regions).await?;
    let op = operations::start(
        &mut tx,
        &org.id,
        &c.id,
        if restore.is_some() {
            OperationKind::Restore
        } else {
            OperationKind::Create
        },
        idempotency_key,
    )
    .await?;
    tx.commit().await?;
    carry_out(state, org, &op);
    Ok((c, op))
}

/// Changes a cluster's tier, replicas or allow list (checked against the plan and the tier) and
/// starts the operation that applies it.
pub async fn update(
    state: &AppState,
    org: &Organization,
    id: &str,
    req: &UpdateCluster,
) -> Result<(Cluster, Operation)> {
    let mut c = get(&state.db, &org.id, id).await?;
    if let Some(tier) = req.tier {
        tiers::check_tier(org.tier, tier)?;
        c.tier = tier;
    }
    if let Some(replicas) = req.replicas {
        check_replicas(replicas)?;
        c.replicas = replicas;
    }
    if let Some(cidrs) = &req.allowed_cidrs {
        c.allowed_cidrs = crate::allow_lists::normalize(cidrs)?;
    }
    tiers::check_cluster(&org.limits(c.tier), 0, c.replicas)
        .map_err(|e| Error::QuotaExceeded(e.to_string()))?;
    tiers::check_regions(&org.limits(c.tier), c.regions.len())?;
    let mut tx = state.db.begin().await?;
    let op = operations::start(&mut tx, &org.id, &c.id, OperationKind::Update, None).await?;
    sqlx::query(
        "UPDATE clusters SET tier = $1, replicas = $2, allowed_cidrs = $3, updated_at = $4 WHERE id = $5",
    )
        .bind(c.tier.as_str())
        .bind(i64::from(c.replicas))
        .bind(crate::allow_lists::to_column(&c.allowed_cidrs))
        .bind(now_ms())
        .bind(&c.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    carry_out(state, org, &op);
    let c = get(&state.db, &org.id, &c.id).await?;
    Ok((c, op))
}

/// Starts deleting a cluster; the record goes when the provisioner has removed it.
pub async fn delete(state: &AppState, org: &Organization, id: &str) -> Result<Operation> {
    let c = get(&state.db, &org.id, id).await?;
    let mut tx = state.db.begin().await?;
    let op = operations::start(&mut tx, &org.id, &c.id, OperationKind::Delete, None).await?;
    sqlx::query("UPDATE clusters SET phase = 'Deleting', updated_at = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(&c.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    carry_out(state, org, &op);
    Ok(op)
}

/// Carries out `op` on its cluster in the background (the operation runner).
pub(crate) fn carry_out(state: &AppState, org: &Organization, op: &Operation) {
    let (task_state, org, task_op) = (state.clone(), org.clone(), op.clone());
    operations::runner::spawn(state.clone(), op.clone(), async move {
        provisioner_view(&task_state, &org, &task_op).await
    });
}

/// The provisioner's view of the cluster `op` acts on, read when the operation runs.
async fn provisioner_view(
    state: &AppState,
    org: &Organization,
    op: &Operation,
) -> Result<ClusterSpec> {
    let cluster = get(&state.db, &org.id, &op.cluster_id).await?;
    // A cluster gets its own token key when it is first provisioned; one from before per-cluster
    // keys gets it at its next change (the apply hands the data plane the new public key).
    let key = match op.kind {
        OperationKind::Delete => {
            crate::cluster_keys::signing_key(&state.db, &state.dataplane_key, &cluster.id).await?
        }
        _ => crate::cluster_keys::ensure(&state.db, &cluster.id).await?,
    };
    Ok(spec(state, org, &cluster, key.public_pem))
}

/// Runs again the operations a stopped control plane left running.
pub async fn resume_operations(state: &AppState) -> Result<usize> {
    let mut resumed = 0;
    for op in operations::running(&state.db).await? {
        match crate::orgs::find(&state.db, &op.org_id).await? {
            Some(org) => {
                carry_out(state, &org, &op);
                resumed += 1;
            }
            None => {
                operations::finish(&state.db, &op.id, Some("the organization no longer exists"))
                    .await?
            }
        }
    }
    Ok(resumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_regions_replicas_and_tiers_are_checked() {
        for good in ["a", "orders", "orders-2", &"a".repeat(40)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "9lives",
            "Orders",
            "orders-",
            "or_ders",
            &"a".repeat(41),
            "orders-peers",
            "orders-config",
            "orders-admin",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        let e = check_name("orders-peers").unwrap_err().to_string();
        assert!(e.contains("must not end in \"-peers\""), "{e}");
        assert!(check_name("peers").is_ok() && check_name("orders-peer").is_ok());
        assert!(check_region("eu-west-1").is_ok() && check_region("EU").is_err());
        assert!(
            check_replicas(3).is_ok() && check_replicas(2).is_err() && check_replicas(9).is_err()
        );
    }
}
