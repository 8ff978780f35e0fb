//! The names a cluster's objects take, and the check that they are not another cluster's: a
//! cluster never applies over an object controlled by another KoruCluster (which server-side
//! apply with force would otherwise take over), and says so in a `NameConflict` condition.
//! Cluster names ending in a reserved suffix are refused up front (the CRD's CEL rules and the
//! control plane), so this guards clusters and objects made before that rule, or by hand.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;

use crate::desired::admin_secret_name;
use koru_crd::{Condition, GROUP, KoruCluster, KoruClusterStatus};

/// The condition type saying a cluster's objects' names are taken by another cluster.
pub const NAME_CONFLICT: &str = "NameConflict";

/// The KoruCluster other than the one of `uid` that controls the object of `meta`, if any.
pub fn foreign_controller(meta: &ObjectMeta, uid: &str) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| {
            o.controller == Some(true)
                && o.kind == "KoruCluster"
                && o.api_version.split('/').next() == Some(GROUP)
                && o.uid != uid
        })
        .map(|o| o.name.clone())
}

/// The first of `kc`'s objects whose name another KoruCluster's object already has, as a
/// sentence; None when every name is free or its own.
pub async fn find_conflict(
    client: &Client,
    kc: &KoruCluster,
) -> Result<Option<String>, kube::Error> {
    let (Some(ns), Some(uid)) = (kc.namespace(), kc.uid()) else {
        return Ok(None);
    };
    let name = kc.name_any();
    let owner = |meta: Option<ObjectMeta>| meta.and_then(|m| foreign_controller(&m, &uid));
    let checks = [
        (
            "Secret",
            admin_secret_name(&name),
            owner(meta::<Secret>(client, &ns, &admin_secret_name(&name)).await?),
        ),
        (
            "ConfigMap",
            format!("{name}-config"),
            owner(meta::<ConfigMap>(client, &ns, &format!("{name}-config")).await?),
        ),
        (
            "Service",
            format!("{name}-peers"),
            owner(meta::<Service>(client, &ns, &format!("{name}-peers")).await?),
        ),
        (
            "Service",
            name.clone(),
            owner(meta::<Service>(client, &ns, &name).await?),
        ),
        (
            "StatefulSet",
            name.clone(),
            owner(meta::<StatefulSet>(client, &ns, &name).await?),
        ),
        (
            "PodDisruptionBudget",
            name.clone(),
            owner(meta::<PodDisruptionBudget>(client, &ns, &name).await?),
        ),
        (
            "NetworkPolicy",
            name.clone(),
            owner(meta::<NetworkPolicy>(client, &ns, &name).await?),
        ),
    ];
    Ok(checks.into_iter().find_map(|(kind, object, other)| {
        other.map(|other| {
            format!(
                "{kind} {object} belongs to KoruCluster {other}; nothing of this cluster is applied \
                 until that name is free (rename this cluster: names ending in -peers, -config or \
                 -admin are reserved)"
            )
        })
    }))
}

/// The metadata of object `name` of kind `K` in `ns`, if it exists.
async fn meta<K>(client: &Client, ns: &str, name: &str) -> Result<Option<ObjectMeta>, kube::Error>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
        .map(|o| o.meta().clone()))
}

/// `kc`'s status with [`NAME_CONFLICT`] True saying `why`, and the phase `NameConflict`.
pub fn conflict_status(kc: &KoruCluster, why: &str, now: &str) -> KoruClusterStatus {
    let mut status = kc.status.clone().unwrap_or_default();
    status.phase = Some(NAME_CONFLICT.into());
    let since = status
        .conditions
        .iter()
        .find(|c| c.type_ == NAME_CONFLICT && c.status == "True")
        .map_or_else(|| now.to_string(), |c| c.last_transition_time.clone());
    status.conditions.retain(|c| c.type_ != NAME_CONFLICT);
    status.conditions.push(Condition {
        type_: NAME_CONFLICT.into(),
        status: "True".into(),
        reason: "OwnedByAnotherCluster".into(),
        message: why.into(),
        last_transition_time: since,
        observed_generation: kc.metadata.generation,
    });
    status
}

/// Drops a [`NAME_CONFLICT`] condition once the names are free again.
pub fn resolved(status: &mut KoruClusterStatus) {
    status.conditions.retain(|c| c.type_ != NAME_CONFLICT);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn owned_by(kind: &str, api_version: &str, uid: &str, controller: bool) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                api_version: api_version.into(),
                kind: kind.into(),
                name: "orders".into(),
                uid: uid.into(),
                controller: Some(controller),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn only_another_koruclusters_controller_reference_is_a_conflict() {
        let other = owned_by("KoruCluster", "koru.dev/v1alpha1", "uid-2", true);
        assert_eq!(
            foreign_controller(&other, "uid-1").as_deref(),
            Some("orders")
        );
        let own = owned_by("KoruCluster", "koru.dev/v1alpha1", "uid-1", true);
        assert_eq!(foreign_controller(&own, "uid-1"), None);
        for free in [
            ObjectMeta::default(),
            owned_by("KoruCluster", "koru.dev/v1alpha1", "uid-2", false),
            owned_by("Deployment", "apps/v1", "uid-2", true),
            owned_by("KoruCluster", "example.com/v1", "uid-2", true),
        ] {
            assert_eq!(foreign_controller(&free, "uid-1"), None, "{free:?}");
        }
    }
}
