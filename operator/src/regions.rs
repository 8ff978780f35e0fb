//! A cluster as one region of a global database (`spec.region`): its replication secret checked
//! before any pod mounts it, and its peer regions' streams read from its data plane
//! (`GET /admin/v1/regions`) at most about once a refresh interval
//! (`--region-status-interval-secs`, 30 s by default) while it serves. A data plane that does
//! not answer leaves `status.regions` as it was and never fails a reconcile.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};

use crate::admin::{self, AdminClient, RegionStatus, secret_token};
use koru_crd::KoruCluster;

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

/// The streams the cluster's data plane reports now; None when it cannot be asked (no admin
/// token yet) or does not answer.
pub async fn read(client: &Client, admin: &AdminClient, kc: &KoruCluster) -> Option<RegionStatus> {
    let ns = kc.namespace()?;
    let endpoint = admin::endpoint(kc)?;
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
