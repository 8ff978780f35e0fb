//! The controller: watches KoruClusters (and the StatefulSets they own), applies their desired
//! objects with server-side apply, and reports status.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crd::{KoruCluster, KoruClusterStatus};
use crate::desired::{DesiredError, HTTP_PORT, desired};

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
}

/// What reconciles share.
pub struct Context {
    client: Client,
}

/// Runs the controller until the process is stopped.
pub async fn run(client: Client) {
    let clusters = Api::<KoruCluster>::all(client.clone());
    Controller::new(clusters, watcher::Config::default())
        .owns(
            Api::<StatefulSet>::all(client.clone()),
            watcher::Config::default(),
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, Arc::new(Context { client }))
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(cluster = %object.name, "reconciled"),
                Err(e) => tracing::warn!(error = %e, "reconcile failed"),
            }
        })
        .await;
}

/// Applies `object` (server-side apply, our field manager, taking over conflicting fields).
async fn apply<K>(api: &Api<K>, name: &str, object: &K) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await?;
    Ok(())
}

/// Brings one cluster's objects to their desired state and records what is observed.
async fn reconcile(kc: Arc<KoruCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = kc.namespace().ok_or(DesiredError::Missing("namespace"))?;
    let name = kc.name_any();
    let client = &ctx.client;
    if kc.spec.paused {
        update_status(client, &kc, |s| s.phase = Some("Paused".into())).await?;
        return Ok(Action::await_change());
    }
    let d = desired(&kc)?;
    apply(
        &Api::<ConfigMap>::namespaced(client.clone(), &ns),
        &format!("{name}-config"),
        &d.config,
    )
    .await?;
    let services = Api::<Service>::namespaced(client.clone(), &ns);
    apply(&services, &format!("{name}-peers"), &d.headless).await?;
    apply(&services, &name, &d.client).await?;
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), &ns);
    apply(&statefulsets, &name, &d.statefulset).await?;
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns);
    match &d.pdb {
        Some(pdb) => apply(&pdbs, &name, pdb).await?,
        // Scaled down to one replica: a budget would block every voluntary eviction.
        None => match pdbs.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        },
    }
    let ready = statefulsets
        .get_opt(&name)
        .await?
        .and_then(|s| s.status)
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let replicas = kc.spec.replicas;
    update_status(client, &kc, |s| {
        s.ready_replicas = ready;
        s.phase = Some(
            if ready >= replicas {
                "Running"
            } else {
                "Provisioning"
            }
            .into(),
        );
        s.endpoint = Some(format!("http://{name}.{ns}.svc:{HTTP_PORT}"));
        s.current_version = Some(kc.spec.version.clone());
        s.observed_generation = kc.metadata.generation;
    })
    .await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Writes the status when `change` alters it, so an unchanged cluster costs no write.
async fn update_status(
    client: &Client,
    kc: &KoruCluster,
    change: impl FnOnce(&mut KoruClusterStatus),
) -> Result<(), kube::Error> {
    let old = kc.status.clone().unwrap_or_default();
    let mut new = old.clone();
    change(&mut new);
    if new == old {
        return Ok(());
    }
    let api = Api::<KoruCluster>::namespaced(client.clone(), &kc.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "status": new });
    api.patch_status(
        &kc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Retries failed reconciles with a pause, so one broken cluster does not spin.
fn error_policy(_kc: Arc<KoruCluster>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "will retry");
    Action::requeue(Duration::from_secs(5))
}
