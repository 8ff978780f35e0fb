//! `koru_cluster`: a cluster of the organization. Tier, replicas and the allow list change in place; a new name
//! or region replaces the cluster (the API cannot change them). Create, update and delete wait
//! for the control plane's operation, so a created cluster is Running when apply returns.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    AttributeConstraint, AttributeType, Block, Description, NestedBlock, Schema,
};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::{attribute, known};
use crate::client::{ApiError, Cluster, CreateCluster, Tier, UpdateCluster};
use crate::diagnostics::{api_error, check_attribute, error, root_error};
use crate::provider::{Connection, Shared};
use crate::rules;

/// How long create, update and delete wait when `timeouts` does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Attempts at sending a create whose connection broke (the idempotency key makes repeats safe).
const CREATE_ATTEMPTS: usize = 3;

/// The `timeouts` block: how long each step may wait, as `"10m"`, `"1h30m"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// Waiting for a new cluster to run.
    pub create: Value<String>,
    /// Waiting for a tier or replica change.
    pub update: Value<String>,
    /// Waiting for the cluster to be removed.
    pub delete: Value<String>,
}

/// A `koru_cluster` as configured, planned and stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Cluster id.
    pub id: Value<String>,
    /// Name, unique in the organization.
    pub name: Value<String>,
    /// Tier; the organization's plan when not set.
    pub tier: Value<String>,
    /// Region label; `local` when not set.
    pub region: Value<String>,
    /// Replicas; 1 when not set.
    pub replicas: Value<i64>,
    /// CIDRs allowed to reach the cluster through the gateway; empty (the default) allows all.
    pub allowed_cidrs: Value<Vec<Value<String>>>,
    /// A global database's regions (the first is the primary); a single-region cluster when
    /// not set. Changing them replaces the cluster.
    pub regions: Value<Vec<Value<String>>>,
    /// Each region's endpoint by region name.
    pub region_endpoints: Value<HashMap<String, Value<String>>>,
    /// The tier's storage per cluster, e.g. `100GB`.
    pub storage: Value<String>,
    /// The data plane's URL.
    pub endpoint: Value<String>,
    /// The cluster's phase: Pending, Provisioning, Running, Degraded, Failed or Deleting.
    pub status: Value<String>,
    /// How long each step may wait.
    pub timeouts: Value<Timeouts>,
}

impl ClusterState {
    /// The state of `cluster` as the API shows it, keeping the configured `timeouts`.
    pub fn from_api(cluster: &Cluster, timeouts: Value<Timeouts>) -> ClusterState {
        ClusterState {
            id: Value::Value(cluster.id.clone()),
            name: Value::Value(cluster.name.clone()),
            tier: Value::Value(cluster.tier.clone()),
            region: Value::Value(cluster.region.clone()),
            replicas: Value::Value(i64::from(cluster.replicas)),
            allowed_cidrs: super::cidrs_value(&cluster.allowed_cidrs),
            regions: super::regions_value(cluster),
            region_endpoints: super::region_endpoints_value(cluster),
            storage: Value::Value(rules::storage_label(cluster.max_storage_bytes)),
            endpoint: cluster.endpoint.clone().into(),
            status: Value::Value(cluster.phase.clone()),
            timeouts,
        }
    }
}

/// What a new configuration means for an existing cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterChange {
    /// Attributes whose change replaces the cluster.
    pub replace: Vec<&'static str>,
    /// What changes in place, as far as known at plan time.
    pub patch: UpdateCluster,
    /// Whether an in-place attribute is unknown until apply (it may change).
    pub unknown: bool,
}

impl ClusterChange {
    /// Whether the cluster itself changes (not only how long Terraform waits).
    pub fn changes_cluster(&self) -> bool {
        !self.replace.is_empty() || !self.patch.is_empty() || self.unknown
    }
}

/// Compares the prior state with the proposed one (configuration merged over the prior state
/// by Terraform). Pure, so every case is unit-tested.
pub fn plan_change(prior: &ClusterState, proposed: &ClusterState) -> ClusterChange {
    let mut change = ClusterChange::default();
    // The API can change neither name nor region; an unknown one may differ, so it replaces too.
    if proposed.name != prior.name {
        change.replace.push("name");
    }
    if proposed.region != prior.region {
        change.replace.push("region");
    }
    if proposed.regions != prior.regions {
        change.replace.push("regions");
    }
    match &proposed.tier {
        Value::Value(tier) if proposed.tier != prior.tier => change.patch.tier = Some(tier.clone()),
        Value::Unknown => change.unknown = true,
        _ => {}
    }
    match &proposed.replicas {
        Value::Value(r) if proposed.replicas != prior.replicas => {
            change.patch.replicas = Some(u32::try_from(*r).unwrap_or(u32::MAX));
        }
        Value::Unknown => change.unknown = true,
        _ => {}
    }
    if proposed.allowed_cidrs != prior.allowed_cidrs {
        match super::known_cidrs(&proposed.allowed_cidrs) {
            Some(cidrs) => change.patch.allowed_cidrs = Some(cidrs),
            // Unset in the configuration: the API's list stays (Optional + Computed).
            None if proposed.allowed_cidrs.is_null() => {}
            None => change.unknown = true,
        }
    }
    change
}

/// The storage of a planned tier: known from the tier table when the tier is.
fn planned_storage(tier: &Value<String>, tiers: &[Tier]) -> Value<String> {
    match known(tier).and_then(|t| tiers.iter().find(|x| &x.name == t)) {
        Some(t) => Value::Value(rules::storage_label(t.max_storage_bytes)),
        None => Value::Unknown,
    }
}

/// The deadline of a step: now plus the configured timeout, or the default.
fn deadline(timeout: Option<&String>) -> Instant {
    let wait = timeout
        .and_then(|t| rules::parse_duration(t).ok())
        .unwrap_or(DEFAULT_TIMEOUT);
    Instant::now() + wait
}

/// One step's configured timeout, when set.
fn timeout(timeouts: &Value<Timeouts>, pick: fn(&Timeouts) -> &Value<String>) -> Option<&String> {
    known(timeouts).and_then(|t| known(pick(t)))
}

/// The `koru_cluster` resource.
pub struct ClusterResource {
    shared: Shared,
}

impl ClusterResource {
    /// The resource, calling the API through `shared` once the provider is configured.
    pub fn new(shared: Shared) -> ClusterResource {
        ClusterResource { shared }
    }

    /// Checks the tier and replicas against the tiers the API serves, at plan time.
    async fn check_tier(
        &self,
        diags: &mut Diagnostics,
        conn: &Connection,
        planned: &ClusterState,
    ) -> Option<Vec<Tier>> {
        let tiers = match conn.client.tiers().await {
            Ok(tiers) => tiers,
            Err(e) => {
                api_error(diags, "Cannot read the tiers", &e);
                return None;
            }
        };
        if let Some(name) = known(&planned.tier) {
            match rules::find_tier(name, &tiers) {
                Ok(tier) => {
                    if let Some(replicas) = known(&planned.replicas) {
                        check_attribute(
                            diags,
                            AttributePath::new("replicas"),
                            "Too many replicas for the tier",
                            rules::check_replicas_in_tier(*replicas, tier),
                        );
                    }
                }
                Err(message) => error(diags, "Invalid tier", message, AttributePath::new("tier")),
            }
        }
        Some(tiers)
    }

    /// Reads the cluster back after a change; `None` (with an error) when that fails.
    async fn read_back(
        &self,
        diags: &mut Diagnostics,
        conn: &Connection,
        id: &str,
        timeouts: Value<Timeouts>,
    ) -> Option<ClusterState> {
        match conn.client.cluster(&conn.org, id).await {
            Ok(cluster) => Some(ClusterState::from_api(&cluster, timeouts)),
            Err(e) => {
                api_error(diags, format!("Cannot read cluster {id}"), &e);
                None
            }
        }
    }

    /// Sends the create, repeating it with the same idempotency key when the connection broke.
    async fn send_create(
        &self,
        conn: &Connection,
        request: &CreateCluster,
    ) -> Result<(Cluster, crate::client::Operation), ApiError> {
        let key = uuid::Uuid::new_v4().to_string();
        let mut attempt = 1;
        loop {
            match conn.client.create_cluster(&conn.org, request, &key).await {
                Ok(created) => return Ok((created.cluster, created.operation)),
                Err(ApiError::Transport { .. }) if attempt < CREATE_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[async_trait]
impl Resource for ClusterResource {
    type State<'a> = ClusterState;
    type PrivateState<'a> = ();
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        use AttributeConstraint::{Computed, Optional, OptionalComputed, Required};
        use AttributeType::{Number, String};
        let attributes = HashMap::from([
            ("id".into(), attribute(String, Computed, "Cluster id.")),
            (
                "name".into(),
                attribute(
                    String,
                    Required,
                    "Name, unique in the organization: 1 to 40 lower-case letters, digits and dashes, starting with a letter. Changing it replaces the cluster.",
                ),
            ),
            (
                "tier".into(),
                attribute(
                    String,
                    OptionalComputed,
                    "Tier (free, pro, enterprise; see data source koru_tiers), at most the organization's plan; the plan's tier when not set. Changes in place.",
                ),
            ),
            (
                "region".into(),
                attribute(
                    String,
                    OptionalComputed,
                    "Region label; `local` when not set. Changing it replaces the cluster.",
                ),
            ),
            (
                "replicas".into(),
                attribute(
                    Number,
                    OptionalComputed,
                    "Replicas: 1, 3, 5 or 7, within the tier's limit; 1 when not set. Changes in place.",
                ),
            ),
            (
                "allowed_cidrs".into(),
                attribute(
                    AttributeType::List(Box::new(String)),
                    OptionalComputed,
                    "IPv4/IPv6 CIDRs allowed to reach the cluster through the gateway, e.g. [\"203.0.113.0/24\", \"2001:db8::/32\", \"198.51.100.7/32\"] (at most 100, each written with its prefix length); every address when empty or not set. Set [] to open a restricted cluster again. Changes in place.",
                ),
            ),
            (
                "regions".into(),
                attribute(
                    AttributeType::List(Box::new(String)),
                    Optional,
                    "A global database: two or more regions (e.g. [\"us-east\", \"eu-west\"]; GET /api/v1/regions lists them), each running the cluster and taking writes; the first is the primary and sets `region` and `endpoint`. Pro and enterprise tiers. A single-region cluster when not set. Changing it replaces the cluster.",
                ),
            ),
            (
                "region_endpoints".into(),
                attribute(
                    AttributeType::Map(Box::new(String)),
                    Computed,
                    "Each region's data-plane URL, by region name (empty for a single-region cluster).",
                ),
            ),
            (
                "storage".into(),
                attribute(
                    String,
                    Computed,
                    "Storage per cluster, fixed by the tier (e.g. `100GB`).",
                ),
            ),
            (
                "endpoint".into(),
                attribute(String, Computed, "URL of the cluster's data plane."),
            ),
            (
                "status".into(),
                attribute(
                    String,
                    Computed,
                    "Phase: Pending, Provisioning, Running, Degraded, Failed or Deleting.",
                ),
            ),
        ]);
        let timeouts = Block {
            attributes: HashMap::from([
                (
                    "create".into(),
                    attribute(
                        String,
                        Optional,
                        "How long a create may wait for the cluster to run (default 20m).",
                    ),
                ),
                (
                    "update".into(),
                    attribute(
                        String,
                        Optional,
                        "How long a tier or replica change may take (default 20m).",
                    ),
                ),
                (
                    "delete".into(),
                    attribute(
                        String,
                        Optional,
                        "How long a delete may take (default 20m).",
                    ),
                ),
            ]),
            description: Description::plain(
                "How long each step may wait, e.g. \"10m\" or \"1h30m\".",
            ),
            ..Default::default()
        };
        Some(Schema {
            version: 1,
            block: Block {
                attributes,
                blocks: HashMap::from([("timeouts".into(), NestedBlock::Group(timeouts))]),
                description: Description::plain(
                    "A KoruDelta cluster. Create, update and delete wait until the control plane's operation has finished.",
                ),
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: ClusterState) -> Option<()> {
        if let Some(name) = known(&config.name) {
            check_attribute(
                diags,
                AttributePath::new("name"),
                "Invalid cluster name",
                rules::check_cluster_name(name),
            );
        }
        if let Some(region) = known(&config.region) {
            check_attribute(
                diags,
                AttributePath::new("region"),
                "Invalid region",
                rules::check_region(region),
            );
        }
        if let Some(replicas) = known(&config.replicas) {
            check_attribute(
                diags,
                AttributePath::new("replicas"),
                "Invalid replicas",
                rules::check_replicas(*replicas),
            );
        }
        if let Some(cidrs) = super::known_cidrs(&config.allowed_cidrs) {
            check_attribute(
                diags,
                AttributePath::new("allowed_cidrs"),
                "Invalid allow list",
                rules::check_allowed_cidrs(&cidrs),
            );
        }
        if let Some(t) = known(&config.timeouts) {
            for (step, value) in [
                ("create", &t.create),
                ("update", &t.update),
                ("delete", &t.delete),
            ] {
                if let Some(text) = known(value) {
                    check_attribute(
                        diags,
                        AttributePath::new("timeouts").attribute(step),
                        "Invalid timeout",
                        rules::parse_duration(text).map(drop),
                    );
                }
            }
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: ClusterState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<(ClusterState, ())> {
        let conn = self.shared.connection(diags)?;
        let Some(id) = known(&state.id) else {
            return Some((state, ()));
        };
        match conn.client.cluster(&conn.org, id).await {
            Ok(cluster) => Some((ClusterState::from_api(&cluster, state.timeouts), ())),
            // Deleted outside Terraform: forget it, so the next plan creates it again.
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                api_error(diags, format!("Cannot read cluster {id}"), &e);
                Some((state, ()))
            }
        }
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed: ClusterState,
        _config: ClusterState,
        _meta: ValueEmpty,
    ) -> Option<(ClusterState, ())> {
        let conn = self.shared.connection(diags)?;
        let tiers = self.check_tier(diags, &conn, &proposed).await?;
        let unset_is_unknown = |v: Value<String>| if v.is_null() { Value::Unknown } else { v };
        let planned = ClusterState {
            id: Value::Unknown,
            storage: planned_storage(&proposed.tier, &tiers),
            endpoint: Value::Unknown,
            status: Value::Unknown,
            region_endpoints: Value::Unknown,
            regions: proposed.regions,
            // Defaults the API picks.
            tier: unset_is_unknown(proposed.tier),
            region: unset_is_unknown(proposed.region),
            replicas: if proposed.replicas.is_null() {
                Value::Unknown
            } else {
                proposed.replicas
            },
            // Not set: the API allows everyone.
            allowed_cidrs: if proposed.allowed_cidrs.is_null() {
                super::cidrs_value(&[])
            } else {
                proposed.allowed_cidrs
            },
            name: proposed.name,
            timeouts: proposed.timeouts,
        };
        Some((planned, ()))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: ClusterState,
        proposed: ClusterState,
        config: ClusterState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<(ClusterState, (), Vec<AttributePath>)> {
        let change = plan_change(&prior, &proposed);
        if !change.changes_cluster() {
            return Some((proposed, (), vec![]));
        }
        let conn = self.shared.connection(diags)?;
        let tiers = self.check_tier(diags, &conn, &proposed).await?;
        let mut planned = proposed;
        planned.status = Value::Unknown;
        if planned.tier != prior.tier {
            planned.storage = planned_storage(&planned.tier, &tiers);
        }
        if !change.replace.is_empty() {
            // Terraform plans the replacement as a create; here everything the API assigns is new.
            planned.id = Value::Unknown;
            planned.endpoint = Value::Unknown;
            planned.region_endpoints = Value::Unknown;
            // An unset region is the first of `regions`, which may be new.
            if config.region.is_null() {
                planned.region = Value::Unknown;
            }
        }
        let replace = change
            .replace
            .iter()
            .map(|a| AttributePath::new(*a))
            .collect();
        Some((planned, (), replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: ClusterState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<()> {
        Some(())
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: ClusterState,
        _config: ClusterState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<(ClusterState, ())> {
        let conn = self.shared.connection(diags)?;
        let deadline = deadline(timeout(&planned.timeouts, |t| &t.create));
        let request = CreateCluster {
            name: known(&planned.name)?.clone(),
            tier: known(&planned.tier).cloned(),
            region: known(&planned.region).cloned(),
            replicas: known(&planned.replicas).map(|r| u32::try_from(*r).unwrap_or(u32::MAX)),
            allowed_cidrs: super::known_cidrs(&planned.allowed_cidrs),
            regions: super::known_cidrs(&planned.regions),
        };
        let (cluster, operation) = match self.send_create(&conn, &request).await {
            Ok(created) => created,
            Err(e) => {
                let mut detail = e.to_string();
                if e.status() == Some(409) {
                    detail.push_str(&format!(
                        "\nTo manage the existing cluster, import it: terraform import <address> {}",
                        request.name
                    ));
                }
                root_error(
                    diags,
                    format!("Cannot create cluster {:?}", request.name),
                    detail,
                );
                return None;
            }
        };
        if let Err(e) = conn.client.wait_operation(&operation.id, deadline).await {
            // It exists: recorded (and so tainted) it is replaced or destroyed by the next apply.
            api_error(
                diags,
                format!("Cluster {:?} did not become ready", request.name),
                &e,
            );
            let state = self
                .read_back(diags, &conn, &cluster.id, planned.timeouts.clone())
                .await;
            return Some((
                state.unwrap_or_else(|| ClusterState::from_api(&cluster, planned.timeouts)),
                (),
            ));
        }
        let state = self
            .read_back(diags, &conn, &cluster.id, planned.timeouts.clone())
            .await;
        Some((
            state.unwrap_or_else(|| ClusterState::from_api(&cluster, planned.timeouts)),
            (),
        ))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: ClusterState,
        planned: ClusterState,
        _config: ClusterState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<(ClusterState, ())> {
        let conn = self.shared.connection(diags)?;
        let id = known(&prior.id)?.clone();
        let change = plan_change(&prior, &planned);
        if change.patch.is_empty() {
            // Only the timeouts changed: nothing to ask of the API.
            return Some((planned, ()));
        }
        let deadline = deadline(timeout(&planned.timeouts, |t| &t.update));
        let applied = match conn
            .client
            .update_cluster(&conn.org, &id, &change.patch, deadline)
            .await
        {
            Ok(started) => {
                conn.client
                    .wait_operation(&started.operation.id, deadline)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = applied {
            api_error(diags, format!("Cannot change cluster {id}"), &e);
            // What the API recorded, so the state says what was (or was not) changed.
            let state = self.read_back(diags, &conn, &id, planned.timeouts).await;
            return Some((state.unwrap_or(prior), ()));
        }
        let state = self.read_back(diags, &conn, &id, planned.timeouts).await?;
        Some((state, ()))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: ClusterState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<()> {
        let conn = self.shared.connection(diags)?;
        let id = known(&prior.id)?;
        let deadline = deadline(timeout(&prior.timeouts, |t| &t.delete));
        let result = match conn.client.delete_cluster(&conn.org, id, deadline).await {
            Ok(op) => conn.client.wait_operation(&op.id, deadline).await.map(drop),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Some(()),
            Err(e) => {
                api_error(diags, format!("Cannot delete cluster {id}"), &e);
                None
            }
        }
    }

    async fn import<'a>(&self, diags: &mut Diagnostics, id: String) -> Option<(ClusterState, ())> {
        let conn = self.shared.connection(diags)?;
        match conn.client.cluster(&conn.org, &id).await {
            Ok(cluster) => Some((
                ClusterState::from_api(&cluster, Value::Value(Timeouts::default())),
                (),
            )),
            Err(e) => {
                api_error(
                    diags,
                    format!(
                        "Cannot import cluster {id:?} of organization {:?}",
                        conn.org
                    ),
                    &e,
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> ClusterState {
        ClusterState {
            id: Value::Value("c1".into()),
            name: Value::Value("orders".into()),
            tier: Value::Value("free".into()),
            region: Value::Value("local".into()),
            replicas: Value::Value(1),
            allowed_cidrs: Value::Value(vec![]),
            regions: Value::Null,
            region_endpoints: Value::Value(HashMap::new()),
            storage: Value::Value("1GB".into()),
            endpoint: Value::Value("http://127.0.0.1:9000".into()),
            status: Value::Value("Running".into()),
            timeouts: Value::Value(Timeouts::default()),
        }
    }

    #[test]
    fn an_unchanged_configuration_plans_nothing() {
        let prior = running();
        let change = plan_change(&prior, &prior.clone());
        assert_eq!(change, ClusterChange::default());
        assert!(!change.changes_cluster());
        // New timeouts only change how long Terraform waits.
        let mut proposed = prior.clone();
        proposed.timeouts = Value::Value(Timeouts {
            create: Value::Value("5m".into()),
            ..Timeouts::default()
        });
        assert!(!plan_change(&prior, &proposed).changes_cluster());
    }

    #[test]
    fn tier_and_replicas_change_in_place() {
        let prior = running();
        let mut proposed = prior.clone();
        proposed.tier = Value::Value("pro".into());
        proposed.replicas = Value::Value(3);
        let change = plan_change(&prior, &proposed);
        assert!(change.replace.is_empty(), "{change:?}");
        assert_eq!(
            change.patch,
            UpdateCluster {
                tier: Some("pro".into()),
                replicas: Some(3),
                allowed_cidrs: None,
            }
        );
        let mut unknown = prior.clone();
        unknown.tier = Value::Unknown;
        let change = plan_change(&prior, &unknown);
        assert!(change.unknown && change.patch.is_empty() && change.changes_cluster());
    }

    #[test]
    fn the_allow_list_changes_in_place() {
        let prior = running();
        let mut proposed = prior.clone();
        proposed.allowed_cidrs = crate::resources::cidrs_value(&["10.0.0.0/8".into()]);
        let change = plan_change(&prior, &proposed);
        assert!(change.replace.is_empty(), "{change:?}");
        assert_eq!(
            change.patch.allowed_cidrs,
            Some(vec!["10.0.0.0/8".to_string()])
        );
        // Unset keeps what the API has; an unknown entry is a change known only at apply.
        proposed.allowed_cidrs = Value::Null;
        assert!(!plan_change(&prior, &proposed).changes_cluster());
        proposed.allowed_cidrs = Value::Value(vec![Value::Unknown]);
        let change = plan_change(&prior, &proposed);
        assert!(change.unknown && change.patch.is_empty());
    }

    #[test]
    fn new_regions_replace_the_cluster() {
        let prior = running();
        let mut proposed = prior.clone();
        proposed.regions = Value::Value(vec![
            Value::Value("us-east".into()),
            Value::Value("eu-west".into()),
        ]);
        assert_eq!(plan_change(&prior, &proposed).replace, ["regions"]);
    }

    #[test]
    fn name_and_region_replace_the_cluster() {
        let prior = running();
        let mut proposed = prior.clone();
        proposed.region = Value::Value("eu-west-1".into());
        assert_eq!(plan_change(&prior, &proposed).replace, ["region"]);
        proposed.name = Value::Unknown;
        assert_eq!(plan_change(&prior, &proposed).replace, ["name", "region"]);
    }

    #[test]
    fn storage_is_planned_from_the_tier_table() {
        let tiers = vec![Tier {
            name: "pro".into(),
            max_storage_bytes: 100_000_000_000,
            max_ops_per_sec: 10_000,
            max_clusters: 10,
            max_replicas: 5,
            backup_retention_days: 7,
            sso: false,
        }];
        assert_eq!(
            planned_storage(&Value::Value("pro".into()), &tiers),
            Value::Value("100GB".to_string())
        );
        assert_eq!(planned_storage(&Value::Unknown, &tiers), Value::Unknown);
        assert_eq!(
            planned_storage(&Value::Value("gold".into()), &tiers),
            Value::Unknown
        );
    }

    #[test]
    fn the_api_cluster_maps_onto_the_state() {
        let cluster = Cluster {
            id: "c1".into(),
            org_id: "o1".into(),
            name: "orders".into(),
            tier: "free".into(),
            region: "local".into(),
            replicas: 1,
            version: "0.1.0".into(),
            phase: "Running".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            message: None,
            max_storage_bytes: 1_000_000_000,
            max_ops_per_sec: 100,
            created_at: 0,
            allowed_cidrs: vec![],
            regions: vec![],
        };
        assert_eq!(
            ClusterState::from_api(&cluster, Value::Value(Timeouts::default())),
            running()
        );
        let pending = Cluster {
            endpoint: None,
            phase: "Pending".into(),
            ..cluster
        };
        let state = ClusterState::from_api(&pending, Value::Null);
        assert!(state.endpoint.is_null() && state.status == Value::Value("Pending".to_string()));
    }

    #[test]
    fn deadlines_follow_the_timeouts() {
        let soon = deadline(Some(&"1s".to_string()));
        assert!(soon <= Instant::now() + Duration::from_secs(1));
        let default = deadline(None);
        assert!(default > Instant::now() + DEFAULT_TIMEOUT - Duration::from_secs(5));
    }
}
