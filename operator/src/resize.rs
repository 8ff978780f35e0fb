//! Growing a cluster's volumes. Kubernetes never changes a StatefulSet's claim template in place,
//! so growth resizes each volume claim, then replaces the StatefulSet without touching its pods
//! (deleted with the `Orphan` policy; the new one adopts them), with the template at the new size.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use kube::{Client, ResourceExt};

use crate::desired::{DesiredError, claim_template_size, selector_string, set_claim_template_size};
use crate::quantity;
use koru_crd::KoruCluster;

/// The annotation that marks the cluster's default StorageClass.
const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

/// Where a requested storage growth stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Growth {
    /// The spec asks for no more than the volumes have.
    None,
    /// The spec asks for more, but it cannot be done; the reason is for the Degraded condition.
    Blocked(String),
    /// Volumes were resized and the StatefulSet is being replaced.
    Started,
}

/// Why a growth step failed.
#[derive(Debug, thiserror::Error)]
pub enum ResizeError {
    /// The cluster is malformed.
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// The API server refused a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// Compares the wanted storage size (the spec's, or the size autoscaling chose when larger) with
/// the live StatefulSet's and, when it grew and the storage class allows it, resizes the claims
/// and starts replacing the StatefulSet. `desired` always leaves with the live template size,
/// since the template cannot be changed by an apply.
pub async fn grow(
    client: &Client,
    kc: &KoruCluster,
    wanted: &str,
    live: &StatefulSet,
    desired: &mut StatefulSet,
) -> Result<Growth, ResizeError> {
    let Some(current) = claim_template_size(live) else {
        return Ok(Growth::None);
    };
    set_claim_template_size(desired, &current);
    let grows = match (quantity::value(wanted), quantity::value(&current)) {
        (Some(w), Some(c)) => w > c,
        _ => false,
    };
    if !grows {
        return Ok(Growth::None);
    }
    let class = match &kc.spec.storage.storage_class_name {
        Some(name) => {
            Api::<StorageClass>::all(client.clone())
                .get_opt(name)
                .await?
        }
        None => default_class(client).await?,
    };
    let Some(class) = class else {
        return Ok(Growth::Blocked(format!(
            "cannot grow the volumes from {current} to {wanted}: no storage class found to check for volume expansion"
        )));
    };
    if class.allow_volume_expansion != Some(true) {
        return Ok(Growth::Blocked(format!(
            "storage class {} does not allow volume expansion: the volumes stay at {current}",
            class.name_any()
        )));
    }
    let ns = kc.namespace().ok_or(DesiredError::Missing("namespace"))?;
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns);
    let selector = selector_string(kc)?;
    let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": wanted}}}});
    for claim in claims
        .list(&ListParams::default().labels(&selector))
        .await?
    {
        let name = claim.name_any();
        let size = claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|q| quantity::value(&q.0));
        if size.is_some_and(|s| s >= quantity::value(wanted).unwrap_or(0.0)) {
            continue;
        }
        match claims
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => tracing::info!(claim = %name, size = %wanted, "volume claim resized"),
            // Refused (an unbound claim, a quota): say so in the status and keep serving.
            Err(kube::Error::Api(e)) if (400..500).contains(&e.code) => {
                return Ok(Growth::Blocked(format!(
                    "volume claim {name} cannot grow to {wanted}: {}",
                    e.message
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), &ns);
    let orphan = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteParams::default()
    };
    match statefulsets.delete(&live.name_any(), &orphan).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    tracing::info!(cluster = %kc.name_any(), from = %current, to = %wanted, "replacing the StatefulSet to grow its volumes");
    Ok(Growth::Started)
}

/// The StorageClass marked as default, if any.
async fn default_class(client: &Client) -> Result<Option<StorageClass>, kube::Error> {
    let classes = Api::<StorageClass>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(classes.items.into_iter().find(|c| {
        c.annotations()
            .get(DEFAULT_CLASS)
            .is_some_and(|v| v == "true")
    }))
}
