//! The controller: watches KoruClusters and the objects they own, applies their desired objects
//! with server-side apply, grows their volumes, and reports status, conditions and events.
//!
//! No finalizer: everything a cluster creates is owned by it and removed by Kubernetes' garbage
//! collector (volumes per `storage.reclaimPolicy`), so deleting a cluster can never hang on us.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::admin::{self, AdminClient, SecretError};
use crate::autoscale::{self, History, inplace};
use crate::config::AutoscaleConfig;
use crate::desired::{
    ApiAccess, Desired, DesiredError, claim_template_size, desired_with, set_claim_template_size,
    set_resources,
};
use crate::metrics::Metrics;
use crate::names;
use crate::recovery::{self, Checks};
use crate::regions::{self, CredentialsError};
use crate::replication;
use crate::resize::{self, Growth};
use crate::status::{
    CREDENTIALS_INVALID_EVENT, Notice, Observed, StatefulSetState, apply_backup_report,
    apply_regions_report, credentials_invalid, next_status, notices, serving,
};
use crate::upgrade;
use koru_crd::{KoruCluster, KoruClusterStatus};

/// The field manager of every object the operator applies.
pub const FIELD_MANAGER: &str = "koru-operator";

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster's objects could not be built.
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// The API server refused a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A storage growth step failed.
    #[error(transparent)]
    Resize(#[from] resize::ResizeError),
    /// The cluster's admin token Secret could not be made ready.
    #[error(transparent)]
    AdminSecret(#[from] SecretError),
    /// The replication secret of a regional cluster could not be read.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

impl Error {
    /// Whether the failure came from the API server being unreachable or unable to answer
    /// rather than from the cluster, so a long backoff would only delay recovery.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kube(e)
            | Error::Resize(resize::ResizeError::Kube(e))
            | Error::AdminSecret(SecretError::Kube(e))
            | Error::Credentials(CredentialsError::Kube(e)) => transient(e),
            _ => false,
        }
    }
}

/// Whether a Kubernetes API failure is the API server's (no connection, 5xx, 429) rather than
/// the request's.
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// What the controllers need besides the API client and the metrics.
#[derive(Clone)]
pub struct Settings {
    /// The one namespace whose resources are reconciled, or None for all.
    pub namespace: Option<String>,
    /// How long a KoruBackup may keep retrying before it fails.
    pub backup_deadline: Duration,
    /// How often a cluster with backups is reconciled and its data plane asked for its window
    /// and last restore drill.
    pub backup_status_interval: Duration,
    /// The client of the data planes' admin APIs.
    pub admin: AdminClient,
    /// How autoscaling runs.
    pub autoscale: AutoscaleConfig,
    /// Who may reach a cluster's API port.
    pub api_access: ApiAccess,
    /// How often a regional cluster is reconciled and its peer regions' streams read.
    pub region_status_interval: Duration,
}

/// What reconciles share.
pub struct Context {
    client: Client,
    /// Where each reconcile's outcome and duration are recorded.
    metrics: Arc<Metrics>,
    /// One recorder for the process, so repeated events are folded into a series.
    recorder: Recorder,
    /// Consecutive failed reconciles per cluster (`namespace/name`), for the retry backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The data planes' admin APIs, for the recoverable window and the restore drills.
    admin: AdminClient,
    /// How often a cluster with backups is reconciled.
    recovery_every: Duration,
    /// When each cluster's recoverable window was last read.
    recovery_checks: Checks,
    /// How autoscaling runs.
    autoscale: AutoscaleConfig,
    /// When each autoscaled cluster's members were last sampled.
    autoscale_checks: Checks,
    /// The autoscaled clusters' load samples.
    history: History,
    /// Who may reach a cluster's API port.
    api_access: ApiAccess,
    /// How often a regional cluster is reconciled.
    region_every: Duration,
    /// When each regional cluster's streams were last read.
    region_checks: Checks,
}

/// First retry delay after a failed reconcile; it doubles with each further failure.
const RETRY_FIRST: Duration = Duration::from_secs(2);
/// Longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(300);
/// Longest retry delay after a failure that says nothing about the cluster (the API server was
/// unreachable, restarting or overloaded): once it is back, every cluster converges within it.
const RETRY_TRANSIENT_MAX: Duration = Duration::from_secs(8);

/// The delay before retrying a cluster that failed `failures` times in a row.
pub fn retry_delay(failures: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(RETRY_MAX)
}

/// The key of a cluster in the failure counts and the autoscalers' records: `namespace/name`.
pub fn key(kc: &KoruCluster) -> String {
    format!("{}/{}", kc.namespace().unwrap_or_default(), kc.name_any())
}

/// Only the objects this operator labelled are watched, which keeps the caches small.
const OWNED: &str = "app.kubernetes.io/managed-by=koru-operator";

/// Runs the controllers over the KoruClusters and KoruBackups of `settings.namespace` (None: of
/// all namespaces) until `shutdown` resolves (then lets running reconciles finish), recording
/// every cluster reconcile in `metrics` inside a span naming the cluster.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = settings.namespace.as_deref();
    let shutdown = shutdown.shared();
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let backups = crate::backup::run(
        client.clone(),
        scoped(&client, ns),
        settings.admin.clone(),
        recorder.clone(),
        settings.backup_deadline,
        shutdown.clone(),
    );
    let clusters = scoped::<KoruCluster>(&client, ns);
    let owned = || watcher::Config::default().labels(OWNED);
    let context = Arc::new(Context {
        recorder,
        client: client.clone(),
        metrics,
        failures: Mutex::default(),
        admin: settings.admin.clone(),
        recovery_every: settings.backup_status_interval,
        recovery_checks: Checks::new(settings.backup_status_interval),
        autoscale_checks: Checks::new(settings.autoscale.interval),
        autoscale: settings.autoscale.clone(),
        history: History::default(),
        api_access: settings.api_access.clone(),
        region_every: settings.region_status_interval,
        region_checks: Checks::new(settings.region_status_interval),
    });
    let clusters = Controller::new(clusters, watcher::Config::default())
        .owns(scoped::<StatefulSet>(&client, ns), owned())
        .owns(scoped::<Service>(&client, ns), owned())
        .owns(scoped::<ConfigMap>(&client, ns), owned())
        .owns(scoped::<PodDisruptionBudget>(&client, ns), owned())
        .graceful_shutdown_on(shutdown)
        .run(
            |kc, ctx: Arc<Context>| {
                let span = tracing::info_span!(
                    "reconcile",
                    cluster = %kc.name_any(),
                    namespace = %kc.namespace().unwrap_or_default(),
                );
                let metrics = ctx.metrics.clone();
                async move { metrics.time_reconcile(reconcile(kc, ctx)).await }.instrument(span)
            },
            error_policy,
            context,
        )
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(cluster = %object.name, "reconciled"),
                Err(e) => tracing::warn!(error = %e, "reconcile failed"),
            }
        });
    futures::join!(clusters, backups);
}

/// The objects of the watched namespace, or of all.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Applies `object` (server-side apply, our field manager, taking over conflicting fields) and
/// returns it as stored.
async fn apply<K>(api: &Api<K>, name: &str, object: &K) -> Result<K, kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
}

/// Brings one cluster's objects to their desired state and records what is observed; a failure
/// is also published as a Warning event on the cluster.
async fn reconcile(kc: Arc<KoruCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let result = reconcile_cluster(&kc, &ctx).await;
    if result.is_ok() {
        ctx.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&key(&kc));
    }
    if let Err(e) = &result {
        let notice = Notice {
            warning: true,
            reason: "ReconcileFailed",
            note: e.to_string(),
        };
        publish(&ctx, &kc, &notice).await;
    }
    result
}

async fn reconcile_cluster(kc: &KoruCluster, ctx: &Context) -> Result<Action, Error> {
    let ns = kc.namespace().ok_or(DesiredError::Missing("namespace"))?;
    let name = kc.name_any();
    let client = &ctx.client;
    if kc.spec.paused {
        let mut status = kc.status.clone().unwrap_or_default();
        status.phase = Some("Paused".into());
        update_status(ctx, kc, status).await?;
        return Ok(Action::await_change());
    }
    if let Some(conflict) = names::find_conflict(client, kc).await? {
        // Applying with force would take the other cluster's object over.
        let status = names::conflict_status(kc, &conflict, &now());
        update_status(ctx, kc, status).await?;
        let notice = Notice {
            warning: true,
            reason: "NameConflict",
            note: conflict,
        };
        publish(ctx, kc, &notice).await;
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    let mut d = desired_with(kc, &ctx.api_access)?;
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), &ns);
    let existing = statefulsets.get_opt(&name).await?;
    if existing
        .as_ref()
        .is_some_and(|s| s.metadata.deletion_timestamp.is_some())
    {
        // Being replaced for a storage growth: the new one is made once the old one is gone.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    if kc.spec.suspended {
        return reconcile_suspended(ctx, kc, d, existing).await;
    }
    match regions::check_credentials(client, kc).await {
        Ok(()) => {}
        // Nothing is applied: a pod made or replaced now would never start without the Secret.
        // The Secret is not watched, so it is looked for again soon.
        Err(e) if e.is_users() => {
            let why = e.to_string();
            let status =
                credentials_invalid(kc.status.as_ref(), &why, kc.metadata.generation, &now());
            update_status(ctx, kc, status).await?;
            let notice = Notice {
                warning: true,
                reason: CREDENTIALS_INVALID_EVENT,
                note: why,
            };
            publish(ctx, kc, &notice).await;
            return Ok(Action::requeue(CREDENTIALS_RETRY));
        }
        Err(e) => return Err(e.into()),
    }
    let mut observed = Observed::default();
    let live_size = existing.as_ref().and_then(claim_template_size);
    if existing.is_some() && autoscaled(kc) && ctx.autoscale_checks.due(&key(kc)) {
        let e = autoscale::evaluate::evaluate(
            client,
            &ctx.admin,
            &ctx.history,
            &ctx.autoscale.policy,
            kc,
            live_size.as_deref(),
            &now(),
        )
        .await;
        for notice in &e.notices {
            publish(ctx, kc, notice).await;
        }
        if let Some(r) = &e.resources
            && let (Some(cpu), Some(memory)) = (&r.cpu, &r.memory)
        {
            set_resources(&mut d.statefulset, cpu, memory);
        }
        observed.storage = e.storage;
        observed.at_ceiling = e.at_ceiling;
        observed.resources = e.resources;
    }
    // The spec's size, or the size storage autoscaling grew the volumes to when larger.
    let wanted = match observed.storage.as_ref().and_then(|s| s.size.clone()) {
        Some(grown) if autoscale::bytes(&grown) > autoscale::bytes(&kc.spec.storage.size) => grown,
        _ => kc
            .status
            .as_ref()
            .and_then(|s| s.storage.as_ref())
            .and_then(|s| s.size.clone())
            .filter(|g| autoscale::bytes(g) > autoscale::bytes(&kc.spec.storage.size))
            .unwrap_or_else(|| kc.spec.storage.size.clone()),
    };
    if let Some(sts) = &existing {
        match resize::grow(client, kc, &wanted, sts, &mut d.statefulset).await? {
            Growth::None => {}
            Growth::Blocked(why) => observed.storage_blocked = Some(why),
            Growth::Started => {
                observed.storage_growing = true;
                observed.statefulset = Some(StatefulSetState::default());
                let status = next_status(kc, &observed, &now());
                update_status(ctx, kc, status).await?;
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
        }
    }
    // Before the pods that mount it; created once and never rewritten.
    admin::ensure_secret(client, kc).await?;
    apply(
        &Api::<ConfigMap>::namespaced(client.clone(), &ns),
        &format!("{name}-config"),
        &d.config,
    )
    .await?;
    let services = Api::<Service>::namespaced(client.clone(), &ns);
    apply(&services, &format!("{name}-peers"), &d.headless).await?;
    apply(&services, &name, &d.client).await?;
    apply(
        &Api::<NetworkPolicy>::namespaced(client.clone(), &ns),
        &name,
        &d.network_policy,
    )
    .await?;
    // Pods are added before the group takes them in, and removed only once it let them go.
    let current = existing.as_ref().and_then(|s| s.spec.replicas);
    let ready_now = existing
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let group = if ready_now > 0 || current.is_some_and(|c| c > kc.spec.replicas) {
        membership_view(ctx, kc).await
    } else {
        None
    };
    let plan = replication::plan(
        kc.spec.replicas,
        group.as_ref().map(|g| g.voters()).as_deref(),
        current,
    );
    d.statefulset.spec.replicas = Some(plan.statefulset_replicas);
    let sts = apply(&statefulsets, &name, &d.statefulset).await?;
    // Scaled down to one replica: a budget would block every voluntary eviction.
    apply_budget(client, &ns, &name, d.pdb.as_ref()).await?;
    observed.statefulset = Some(statefulset_state(&sts));
    // Autoscaled CPU and memory reach the running pods in place before any pod is picked for
    // replacement, so a resized pod is not rolled for the change of template.
    let requests = observed
        .resources
        .as_ref()
        .and_then(autoscale::requests_of)
        .or_else(|| autoscale::current_requests(kc));
    if let Some(want) = requests {
        let outcome = inplace::resize_pods(client, &sts, want).await?;
        for (pod, why) in &outcome.refused {
            let notice = Notice {
                warning: true,
                reason: "InPlaceResizeRefused",
                note: format!("{pod} cannot be resized in place ({why}); it is replaced instead"),
            };
            publish(ctx, kc, &notice).await;
        }
        if let Some(pod) = &outcome.replaced {
            let notice = Notice {
                warning: true,
                reason: "InPlaceResizeInfeasible",
                note: format!("{pod}'s node cannot fit the new size; the pod was replaced"),
            };
            publish(ctx, kc, &notice).await;
        }
    }
    let leader = group
        .as_ref()
        .and_then(|g| g.leader)
        .map(|id| format!("{name}-{id}"))
        .or_else(|| {
            kc.status
                .as_ref()
                .and_then(|s| s.replication.as_ref())
                .and_then(|r| r.leader.clone())
        });
    let replacing = upgrade::next_pod(client, &sts, leader.as_deref()).await?;
    if let Some(pod) = &replacing {
        if Some(pod) == leader.as_ref() && kc.spec.replicas > 1 {
            hand_over(ctx, kc, pod).await;
        }
        upgrade::replace(client, &sts, pod).await?;
    }
    let now = now();
    let mut status = next_status(kc, &observed, &now);
    names::resolved(&mut status);
    if let Some(view) = &group {
        status.replication = Some(replication::status(&name, view));
    }
    let rolling = sts
        .status
        .as_ref()
        .is_some_and(|s| s.current_revision.is_some() && s.current_revision != s.update_revision);
    if replacing.is_some() || rolling {
        // Pods are being replaced one by one: look again soon for the next.
        update_status(ctx, kc, status).await?;
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    if let Some(voters) = &plan.change_to {
        // The pods (on a scale-up) are asked for and the status written first; the group then
        // takes members in or lets them go, and the next reconcile sizes the StatefulSet to it.
        update_status(ctx, kc, status).await?;
        let next = match change_membership(ctx, kc, voters).await {
            Some(_) => Duration::from_secs(1),
            None => MEMBERSHIP_RETRY,
        };
        return Ok(Action::requeue(next));
    }
    if let Some(region) = &kc.spec.region
        && serving(Some(&status))
        && ctx.region_checks.due(&key(kc))
        && let Some(report) = regions::read(
            client,
            &ctx.admin,
            kc,
            group.as_ref().and_then(|g| g.leader),
        )
        .await
    {
        apply_regions_report(&mut status, region, &report, kc.metadata.generation, &now);
    }
    // Autoscaled clusters are sampled every interval, regional ones' streams read every one.
    let autoscale_every = if autoscaled(kc) {
        ctx.autoscale.interval
    } else {
        Duration::MAX
    };
    let region_every = if kc.spec.region.is_some() {
        ctx.region_every
    } else {
        Duration::MAX
    };
    let sample_every = autoscale_every.min(region_every);
    if kc.spec.backup.is_none() {
        update_status(ctx, kc, status).await?;
        // A replicated cluster's status shows its leader and members' health: keep it fresh.
        let every = if kc.spec.replicas > 1 {
            REPLICATION_EVERY
        } else {
            Duration::from_secs(300)
        };
        return Ok(Action::requeue(every.min(sample_every)));
    }
    if serving(Some(&status))
        && ctx.recovery_checks.due(&key(kc))
        && let Some(report) = recovery::read(client, &ctx.admin, kc).await
    {
        apply_backup_report(
            &mut status,
            &report.listing,
            report.archive_lag_seconds,
            kc.metadata.generation,
            &now,
        );
    }
    update_status(ctx, kc, status).await?;
    Ok(Action::requeue(ctx.recovery_every.min(sample_every)))
}

/// Whether the cluster has storage or compute autoscaling.
fn autoscaled(kc: &KoruCluster) -> bool {
    kc.spec.storage.autoscale.is_some()
        || kc
            .spec
            .resources
            .as_ref()
            .is_some_and(|r| r.autoscale.is_some())
}

/// Applies the cluster's disruption budget, or deletes it when it should have none.
async fn apply_budget(
    client: &Client,
    ns: &str,
    name: &str,
    pdb: Option<&PodDisruptionBudget>,
) -> Result<(), kube::Error> {
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns);
    match pdb {
        Some(pdb) => apply(&pdbs, name, pdb).await.map(|_| ()),
        None => match pdbs.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        },
    }
}

/// A suspended cluster: its objects stay, its StatefulSet goes to zero pods (volumes and the Raft
/// group's membership kept, for the pods to find again), its budget goes; nothing asks its data
/// plane (no membership change, no backup status, no sampling), so no alarm rises from a
/// cluster that is down on purpose.
async fn reconcile_suspended(
    ctx: &Context,
    kc: &KoruCluster,
    mut d: Desired,
    existing: Option<StatefulSet>,
) -> Result<Action, Error> {
    let ns = kc.namespace().ok_or(DesiredError::Missing("namespace"))?;
    let name = kc.name_any();
    let client = &ctx.client;
    // A claim template cannot change; a growth waits for the pods to return.
    if let Some(size) = existing.as_ref().and_then(claim_template_size) {
        set_claim_template_size(&mut d.statefulset, &size);
    }
    admin::ensure_secret(client, kc).await?;
    apply(
        &Api::<ConfigMap>::namespaced(client.clone(), &ns),
        &format!("{name}-config"),
        &d.config,
    )
    .await?;
    let services = Api::<Service>::namespaced(client.clone(), &ns);
    apply(&services, &format!("{name}-peers"), &d.headless).await?;
    apply(&services, &name, &d.client).await?;
    apply(
        &Api::<NetworkPolicy>::namespaced(client.clone(), &ns),
        &name,
        &d.network_policy,
    )
    .await?;
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), &ns);
    let sts = apply(&statefulsets, &name, &d.statefulset).await?;
    apply_budget(client, &ns, &name, None).await?;
    // Its next pods start afresh: old CPU counters would read as a burst.
    ctx.history.forget(&key(kc));
    let observed = Observed {
        statefulset: Some(statefulset_state(&sts)),
        ..Observed::default()
    };
    let mut status = next_status(kc, &observed, &now());
    names::resolved(&mut status);
    update_status(ctx, kc, status).await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// How often a replicated cluster is reconciled to refresh `status.replication`.
const REPLICATION_EVERY: Duration = Duration::from_secs(15);

/// How soon a regional cluster whose replication secret is missing or empty looks for it again.
const CREDENTIALS_RETRY: Duration = Duration::from_secs(15);

/// How soon a cluster whose membership change is still due is reconciled again.
const MEMBERSHIP_RETRY: Duration = Duration::from_secs(10);

/// The cluster's Raft group as its members report it; None when they cannot be asked.
async fn membership_view(ctx: &Context, kc: &KoruCluster) -> Option<admin::GroupView> {
    let endpoint = admin::endpoint(kc)?;
    let token = admin::token(&ctx.client, &kc.namespace()?, &kc.name_any())
        .await
        .ok()
        .flatten()?;
    match replication::read(&ctx.admin, &endpoint, &token).await {
        Ok(view) => Some(view),
        Err(e) => {
            tracing::info!(error = %e, "cannot read the cluster's Raft group");
            None
        }
    }
}

/// Asks the leader (`pod`) to hand leadership over before it is replaced, so the group does not
/// wait out an election timeout; publishes the outcome. The pod is replaced either way.
async fn hand_over(ctx: &Context, kc: &KoruCluster, pod: &str) {
    let Some(endpoint) = admin::endpoint(kc) else {
        return;
    };
    let Some(token) = admin::token(
        &ctx.client,
        &kc.namespace().unwrap_or_default(),
        &kc.name_any(),
    )
    .await
    .ok()
    .flatten() else {
        return;
    };
    let notice = match ctx.admin.step_down(&endpoint, &token).await {
        Ok(view) => Notice {
            warning: false,
            reason: "LeaderHandedOver",
            note: format!(
                "{pod} handed leadership to {} before being replaced",
                view.leader.map_or_else(
                    || "another member".to_owned(),
                    |id| format!("{}-{id}", kc.name_any())
                )
            ),
        },
        Err(e) => Notice {
            warning: true,
            reason: "LeaderHandOverFailed",
            note: format!(
                "{pod} could not hand leadership over before being replaced (the group elects a new leader instead): {e}"
            ),
        },
    };
    publish(ctx, kc, &notice).await;
}

/// Asks the cluster's Raft group to make `voters` its voting members; publishes the outcome.
async fn change_membership(
    ctx: &Context,
    kc: &KoruCluster,
    voters: &[u64],
) -> Option<admin::GroupView> {
    let endpoint = admin::endpoint(kc)?;
    let token = admin::token(&ctx.client, &kc.namespace()?, &kc.name_any())
        .await
        .ok()
        .flatten()?;
    let pods: Vec<String> = voters
        .iter()
        .map(|v| format!("{}-{v}", kc.name_any()))
        .collect();
    match ctx.admin.set_voters(&endpoint, &token, voters).await {
        Ok(view) => {
            let notice = Notice {
                warning: false,
                reason: "MembershipChanged",
                note: format!("the Raft group's voters are now {}", pods.join(", ")),
            };
            publish(ctx, kc, &notice).await;
            Some(view)
        }
        Err(e) => {
            let notice = Notice {
                warning: true,
                reason: "MembershipChangePending",
                note: format!("cannot yet make {} the voters: {e}", pods.join(", ")),
            };
            publish(ctx, kc, &notice).await;
            None
        }
    }
}

/// What the status needs from a StatefulSet.
fn statefulset_state(sts: &StatefulSet) -> StatefulSetState {
    let status = sts.status.clone().unwrap_or_default();
    let want = sts.spec.replicas.unwrap_or(1);
    // Until the StatefulSet controller has seen the new template, its counts are the old one's:
    // no pod runs the new template yet.
    let observed = status.observed_generation >= sts.metadata.generation;
    StatefulSetState {
        replicas: status.replicas,
        ready: status.ready_replicas.unwrap_or(0),
        updated: if observed {
            status.updated_replicas.unwrap_or(0)
        } else {
            0
        },
        rolled_out: observed
            && status.current_revision.is_some()
            && status.current_revision == status.update_revision
            && status.updated_replicas.unwrap_or(0) == want,
    }
}

/// The current time as Kubernetes writes it in conditions.
fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Writes `new` when it differs from the cluster's status, and publishes the events the change
/// is worth; an unchanged cluster costs no write.
async fn update_status(
    ctx: &Context,
    kc: &KoruCluster,
    new: KoruClusterStatus,
) -> Result<(), kube::Error> {
    let old = kc.status.clone().unwrap_or_default();
    if new == old {
        return Ok(());
    }
    let api =
        Api::<KoruCluster>::namespaced(ctx.client.clone(), &kc.namespace().unwrap_or_default());
    let mut patch = serde_json::json!({ "status": new });
    // The recoverable window is also written right after a backup, so an unchanged one is left
    // out (a reconcile holding an older copy must not put it back), and a dropped one removed.
    if new.backup == old.backup {
        if let Some(status) = patch["status"].as_object_mut() {
            status.remove("backup");
        }
    } else if new.backup.is_none() {
        patch["status"]["backup"] = serde_json::Value::Null;
    }
    // A merge patch keeps a field it does not name: a region left (spec.region removed) is
    // removed explicitly.
    if new.regions.is_none() && old.regions.is_some() {
        patch["status"]["regions"] = serde_json::Value::Null;
    }
    api.patch_status(
        &kc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    for notice in notices(&old, &new) {
        publish(ctx, kc, &notice).await;
    }
    Ok(())
}

/// Publishes an event on the cluster; a refused event is logged, never fails the reconcile.
async fn publish(ctx: &Context, kc: &KoruCluster, notice: &Notice) {
    let event = Event {
        type_: if notice.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: notice.reason.into(),
        note: Some(notice.note.clone()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &kc.object_ref(&())).await {
        tracing::warn!(cluster = %kc.name_any(), error = %e, "cannot publish an event");
    }
}

/// Retries failed reconciles with a pause, so one broken cluster does not spin.
/// Retries a failed cluster after a delay that doubles with each failure in a row (2 s up to
/// 5 min); other clusters are reconciled meanwhile.
fn error_policy(kc: Arc<KoruCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    let mut failures = ctx
        .failures
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let count = failures.entry(key(&kc)).or_insert(0);
    *count = count.saturating_add(1);
    let delay = if error.is_transient() {
        retry_delay(*count).min(RETRY_TRANSIENT_MAX)
    } else {
        retry_delay(*count)
    };
    tracing::warn!(%error, failures = *count, retry_in_secs = delay.as_secs(), "will retry");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        let delays: Vec<u64> = (1..=10).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }

    #[test]
    fn an_unreachable_or_failing_api_server_is_transient_and_a_refusal_is_not() {
        let status = |code| {
            Error::Kube(kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            })))
        };
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(422).is_transient());
        assert!(!status(403).is_transient());
        let unreachable = Error::AdminSecret(SecretError::Kube(kube::Error::Service(
            "connection refused".into(),
        )));
        assert!(unreachable.is_transient());
        assert!(!Error::AdminSecret(SecretError::NoToken("s".into())).is_transient());
    }
}
