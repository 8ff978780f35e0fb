//! Replacing pods onto a new pod template, leader last. The StatefulSet's update strategy is
//! `OnDelete`: the operator picks each pod to replace, one at a time, each only once every pod is
//! ready again; followers go first (highest ordinal first) and the pod that leads the cluster's
//! Raft group goes last, so a rolling upgrade costs one election, not one per pod.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};

/// The label the StatefulSet controller puts on each pod with its template revision.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// What the operator knows of one pod, for [`next_to_replace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    /// Its name (`<cluster>-<ordinal>`).
    pub name: String,
    /// Its ordinal.
    pub ordinal: u32,
    /// Whether it runs the StatefulSet's current template.
    pub updated: bool,
    /// Whether it is ready and not being deleted.
    pub ready: bool,
}

/// The pod to replace next, if any: none while any pod is missing, not ready or going away (the
/// last replacement is still settling); else the outdated follower with the highest ordinal,
/// and the leader (`leader`, a pod name) only when it is the last outdated pod.
pub fn next_to_replace(pods: &[PodState], replicas: u32, leader: Option<&str>) -> Option<String> {
    if pods.len() < replicas as usize || pods.iter().any(|p| !p.ready) {
        return None;
    }
    let mut outdated: Vec<&PodState> = pods.iter().filter(|p| !p.updated).collect();
    // Followers first, highest ordinal first; the leader last.
    outdated.sort_by_key(|p| {
        (
            Some(p.name.as_str()) == leader,
            std::cmp::Reverse(p.ordinal),
        )
    });
    outdated.first().map(|p| p.name.clone())
}

/// The next outdated pod of `sts` to replace (see [`next_to_replace`]), if one may go now.
pub async fn next_pod(
    client: &Client,
    sts: &StatefulSet,
    leader: Option<&str>,
) -> Result<Option<String>, kube::Error> {
    let Some(status) = &sts.status else {
        return Ok(None);
    };
    let Some(revision) = &status.update_revision else {
        return Ok(None);
    };
    let ns = sts.namespace().unwrap_or_default();
    let name = sts.name_any();
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let selector = sts
        .spec
        .selector
        .match_labels
        .as_ref()
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let listed = pods.list(&ListParams::default().labels(&selector)).await?;
    let states: Vec<PodState> = listed
        .items
        .iter()
        .filter_map(|pod| {
            let pod_name = pod.name_any();
            let ordinal = pod_name.strip_prefix(&format!("{name}-"))?.parse().ok()?;
            let ready = pod.metadata.deletion_timestamp.is_none()
                && pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            Some(PodState {
                updated: pod.labels().get(REVISION_LABEL) == Some(revision),
                name: pod_name,
                ordinal,
                ready,
            })
        })
        .collect();
    let replicas = sts.spec.replicas.unwrap_or(1).max(0) as u32;
    Ok(next_to_replace(&states, replicas, leader))
}

/// Deletes `pod` of `sts`, which the StatefulSet controller recreates on the new template.
pub async fn replace(client: &Client, sts: &StatefulSet, pod: &str) -> Result<(), kube::Error> {
    let ns = sts.namespace().unwrap_or_default();
    tracing::info!(%pod, "replacing a pod onto the new template");
    Api::<Pod>::namespaced(client.clone(), &ns)
        .delete(pod, &DeleteParams::default())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ordinal: u32, updated: bool, ready: bool) -> PodState {
        PodState {
            name: format!("db-{ordinal}"),
            ordinal,
            updated,
            ready,
        }
    }

    #[test]
    fn followers_go_first_highest_ordinal_first_and_the_leader_last() {
        let all_old = [
            pod(0, false, true),
            pod(1, false, true),
            pod(2, false, true),
        ];
        assert_eq!(
            next_to_replace(&all_old, 3, Some("db-2")).as_deref(),
            Some("db-1")
        );
        assert_eq!(next_to_replace(&all_old, 3, None).as_deref(), Some("db-2"));
        let leader_left = [pod(0, true, true), pod(1, false, true), pod(2, true, true)];
        assert_eq!(
            next_to_replace(&leader_left, 3, Some("db-1")).as_deref(),
            Some("db-1")
        );
        let done = [pod(0, true, true), pod(1, true, true)];
        assert_eq!(next_to_replace(&done, 2, Some("db-0")), None);
    }

    #[test]
    fn nothing_is_replaced_while_a_pod_is_missing_or_not_ready() {
        let settling = [
            pod(0, false, true),
            pod(1, true, false),
            pod(2, false, true),
        ];
        assert_eq!(next_to_replace(&settling, 3, None), None);
        let missing = [pod(0, false, true), pod(2, false, true)];
        assert_eq!(next_to_replace(&missing, 3, None), None);
    }
}
