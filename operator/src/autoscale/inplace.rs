//! Changing the CPU and memory of running pods in place, through each pod's `resize`
//! subresource, and keeping the StatefulSet's rollout bookkeeping right.
//!
//! The StatefulSet's template carries the same requests (so a new pod starts with them), which
//! gives it a new revision; its update strategy is `OnDelete` and the operator's upgrade path
//! replaces every pod not on the newest revision. A pod resized in place differs from the new
//! revision in nothing else, so the operator moves its `controller-revision-hash` label to that
//! revision — once it has checked, on the two ControllerRevisions, that their templates differ
//! only in container resources — and the pod is not replaced. Where the API server refuses the
//! resize (no in-place resize), the label stays and the ordinary path replaces the pod, one at a
//! time, leader last; where the kubelet finds the new size infeasible on its node, the pod is
//! replaced so the scheduler can place it elsewhere.

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::compute::{Requests, cpu_quantity, memory_quantity};
use super::{bytes, milli};
use crate::upgrade::REVISION_LABEL;

/// The data plane's container.
const CONTAINER: &str = "dataplane";

/// What happened to a cluster's pods.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Pods resized in place.
    pub resized: Vec<String>,
    /// Pods whose resize the API server refused (they roll instead), with its message.
    pub refused: Vec<(String, String)>,
    /// A pod replaced because its node cannot fit the new size.
    pub replaced: Option<String>,
}

/// Brings every pod of `sts` to `want` in place where it differs, moves resized pods onto the
/// StatefulSet's newest revision when that differs only in resources, and replaces (one) pod whose
/// resize the kubelet found infeasible.
pub async fn resize_pods(
    client: &Client,
    sts: &StatefulSet,
    want: Requests,
) -> Result<Outcome, kube::Error> {
    let ns = sts.namespace().unwrap_or_default();
    let pods_api = Api::<Pod>::namespaced(client.clone(), &ns);
    let selector = sts
        .spec
        .selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = pods_api
        .list(&ListParams::default().labels(&selector))
        .await?;
    let mut outcome = Outcome::default();
    let all_ready = pods.items.iter().all(ready);
    // The newest revision, once the StatefulSet controller has seen the newest template.
    let observed = sts
        .status
        .as_ref()
        .is_some_and(|s| s.observed_generation >= sts.metadata.generation);
    let update_revision = sts
        .status
        .as_ref()
        .and_then(|s| s.update_revision.clone())
        .filter(|_| observed);
    for pod in &pods.items {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.name_any();
        let has = pod_requests(pod);
        if has != Some(want) {
            let patch = resize_patch(want);
            match pods_api
                .patch_subresource(
                    "resize",
                    &name,
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(pod = %name, cpu = %cpu_quantity(want.cpu_milli), memory = %memory_quantity(want.memory_bytes), "resized in place");
                    outcome.resized.push(name.clone());
                }
                Err(kube::Error::Api(e)) if (400..500).contains(&e.code) => {
                    tracing::warn!(pod = %name, error = %e.message, "in-place resize refused; the pod rolls instead");
                    outcome.refused.push((name, e.message));
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        if infeasible(pod) && all_ready && outcome.replaced.is_none() {
            tracing::warn!(pod = %name, "the node cannot fit the new size; replacing the pod");
            pods_api.delete(&name, &DeleteParams::default()).await?;
            outcome.replaced = Some(name);
            continue;
        }
        let Some(revision) = &update_revision else {
            continue;
        };
        let on = pod.labels().get(REVISION_LABEL);
        if on.is_none_or(|r| r == revision) {
            continue;
        }
        if let Some(old) = on
            && only_resources_differ(client, &ns, old, revision).await?
        {
            let label = json!({"metadata": {"labels": {REVISION_LABEL: revision}}});
            pods_api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&label))
                .await?;
            tracing::info!(pod = %name, %revision, "resized in place: now on the newest revision");
        }
    }
    Ok(outcome)
}

/// The strategic merge patch of the `resize` subresource: requests and limits alike.
pub fn resize_patch(want: Requests) -> Value {
    let quantities = json!({
        "cpu": cpu_quantity(want.cpu_milli),
        "memory": memory_quantity(want.memory_bytes),
    });
    json!({"spec": {"containers": [{
        "name": CONTAINER,
        "resources": {"requests": quantities, "limits": quantities},
    }]}})
}

/// The data plane container's requests as the pod's spec holds them.
fn pod_requests(pod: &Pod) -> Option<Requests> {
    let container = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == CONTAINER)?;
    let requests = container.resources.as_ref()?.requests.as_ref()?;
    Some(Requests {
        cpu_milli: milli(&requests.get("cpu")?.0)?,
        memory_bytes: bytes(&requests.get("memory")?.0)?,
    })
}

/// Whether the pod is ready.
fn ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the kubelet reported the pod's resize infeasible on its node.
fn infeasible(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter().any(|c| {
                c.type_ == "PodResizePending"
                    && c.status == "True"
                    && c.reason.as_deref() == Some("Infeasible")
            })
        })
}

/// Whether the pod templates of two ControllerRevisions differ in container resources only.
async fn only_resources_differ(
    client: &Client,
    ns: &str,
    old: &str,
    new: &str,
) -> Result<bool, kube::Error> {
    let revisions = Api::<ControllerRevision>::namespaced(client.clone(), ns);
    let (Some(old), Some(new)) = (revisions.get_opt(old).await?, revisions.get_opt(new).await?)
    else {
        return Ok(false);
    };
    let template = |r: &ControllerRevision| without_resources(r.data.0.clone());
    Ok(!old.data.0.is_null() && template(&old) == template(&new))
}

/// A revision's data with every container's and init container's `resources` taken out.
pub fn without_resources(mut data: Value) -> Value {
    if let Some(spec) = data.pointer_mut("/spec/template/spec") {
        for list in ["containers", "initContainers"] {
            if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in containers {
                    if let Some(c) = c.as_object_mut() {
                        c.remove("resources");
                    }
                }
            }
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resize_patch_sets_requests_and_limits_of_the_data_plane() {
        let patch = resize_patch(Requests {
            cpu_milli: 750,
            memory_bytes: 768 << 20,
        });
        let c = &patch["spec"]["containers"][0];
        assert_eq!(c["name"], "dataplane");
        assert_eq!(c["resources"]["requests"]["cpu"], "750m");
        assert_eq!(c["resources"]["limits"]["memory"], "768Mi");
    }

    #[test]
    fn revisions_differing_in_resources_only_compare_equal() {
        let revision = |cpu: &str, image: &str| {
            json!({"spec": {"template": {"spec": {
                "containers": [{"name": "dataplane", "image": image, "resources": {"requests": {"cpu": cpu}}}],
                "initContainers": [{"name": "restore", "resources": {"requests": {"cpu": cpu}}}],
            }}, "$patch": "replace"}})
        };
        assert_eq!(
            without_resources(revision("1", "a")),
            without_resources(revision("2", "a"))
        );
        assert_ne!(
            without_resources(revision("1", "a")),
            without_resources(revision("1", "b"))
        );
    }
}
