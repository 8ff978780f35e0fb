//! A cluster as one region of a global database (`spec.region`): its replication secret checked
//! before any pod mounts it, and its peer regions' streams read from its data plane
//! (`GET /admin/v1/regions`) at most about once a refresh interval
//! (`--region-status-interval-secs`, 30 s by default) while it serves. A data plane that does
//! not answer leaves `status.regions` as it was and never fails a reconcile. The streams run on
//! the member leading the cluster's Raft group, so that member is asked.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};

use crate::admin::{self, AdminClient, RegionStatus, secret_token};
use crate::desired::HTTP_PORT;
use koru_crd::{ADMIN_ENDPOINT_ANNOTATION, KoruCluster};

/// Default of how often a regional cluster is reconciled, and so how often its streams are read.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(30);

/// Why a regional cluster's replication secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The API server refused a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// No Secret of that name in the cluster's namespace.
    #[error(
        "spec.region.credentialsSecret {0} does not exist; create it with a `token` key holding the replication secret every region of the global database shares"
    )]
    Missing(String),
    /// The Secret holds no usable token.
    #[error(
        "Secret {0} (spec.region.credentialsSecret) has no `token` key; add the replication secret every region of the global database shares"
    )]
    NoToken(String),
}

impl CredentialsError {
    /// Whether the cluster's owner must fix the Secret (rather than the API server failing).
    pub fn is_users(&self) -> bool {
        !matches!(self, CredentialsError::Kube(_))
    }
}

/// Checks that `spec.region.credentialsSecret` exists and holds a `token`, before pods that
/// mount it are made or replaced (a missing Secret keeps a new pod from ever starting). Ok
/// without `spec.region`.
pub async fn check_credentials(client: &Client, kc: &KoruCluster) -> Result<(), CredentialsError> {
    let Some(region) = &kc.spec.region else {
        return Ok(());
    };
    let ns = kc.namespace().unwrap_or_default();
    let name = &region.credentials_secret;
    let secret = Api::<Secret>::namespaced(client.clone(), &ns)
        .get_opt(name)
        .await?
        .ok_or_else(|| CredentialsError::Missing(name.clone()))?;
    match secret_token(&secret) {
        Some(_) => Ok(()),
        None => Err(CredentialsError::NoToken(name.clone())),
    }
}

/// Where to ask for the streams: the member leading the cluster's Raft group, which runs them
/// (at its pod's address under the headless Service), when it is known and the cluster has more
/// than one member; else the admin endpoint (always, when the `koru.dev/admin-endpoint`
/// annotation names one).
pub fn endpoint(kc: &KoruCluster, leader: Option<u64>) -> Option<String> {
    let annotated = kc
        .annotations()
        .get(ADMIN_ENDPOINT_ANNOTATION)
        .is_some_and(|url| !url.trim().is_empty());
    match leader {
        Some(id) if !annotated && kc.spec.replicas > 1 => {
            let name = kc.metadata.name.as_ref()?;
            let ns = kc.metadata.namespace.as_ref()?;
            Some(format!(
                "http://{name}-{id}.{name}-peers.{ns}.svc:{HTTP_PORT}"
            ))
        }
        _ => admin::endpoint(kc),
    }
}

/// The streams the cluster's data plane reports now, asked of the group's `leader` when known
/// (see [`endpoint`]); None when it cannot be asked (no admin token yet) or does not answer.
pub async fn read(
    client: &Client,
    admin: &AdminClient,
    kc: &KoruCluster,
    leader: Option<u64>,
) -> Option<RegionStatus> {
    let ns = kc.namespace()?;
    let endpoint = endpoint(kc, leader)?;
    let token = match admin::token(client, &ns, &kc.name_any()).await {
        Ok(Some(token)) => token,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the admin token");
            return None;
        }
    };
    match admin.regions(&endpoint, &token).await {
        Ok(report) => Some(report),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the peer regions' streams; keeping the last status");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::desired::tests::cluster;

    #[test]
    fn the_streams_are_read_from_the_leader_unless_an_endpoint_is_named() {
        assert_eq!(
            endpoint(&cluster(3), Some(2)).as_deref(),
            Some("http://orders-2.orders-peers.team-a.svc:7878")
        );
        assert_eq!(
            endpoint(&cluster(3), None).as_deref(),
            Some("http://orders.team-a.svc:7878"),
            "no leader known: the client Service"
        );
        assert_eq!(
            endpoint(&cluster(1), Some(0)).as_deref(),
            Some("http://orders.team-a.svc:7878"),
            "one member: the client Service reaches it"
        );
        let mut annotated = cluster(3);
        annotated.annotations_mut().insert(
            ADMIN_ENDPOINT_ANNOTATION.into(),
            "http://127.0.0.1:9000/".into(),
        );
        assert_eq!(
            endpoint(&annotated, Some(2)).as_deref(),
            Some("http://127.0.0.1:9000")
        );
    }
}
