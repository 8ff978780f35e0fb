//! The Kubernetes provisioner: writes each cluster as a `KoruCluster` (with its token Secret) in a
//! namespace per organization, for the operator to run, and reads the operator's status back.
//!
//! With a backup destination configured, every cluster archives to its own prefix there
//! (`<destination>/<org id>/<cluster id>`), and a restored cluster's KoruCluster carries
//! `bootstrap.fromBackup` naming its source's prefix and target time; the operator runs the restore.
//!
//! Everything is server-side applied under the field manager `koru-controlplane`, so applying an
//! unchanged spec writes nothing and a changed one (replicas, limits) updates only our fields. What
//! the objects look like is decided by the pure functions of [`desired`].

pub mod desired;
pub mod regions;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use koru_crd::{KoruBackup, KoruBackupStatus, KoruCluster};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use desired::KubeProvisionerConfig;

use self::desired::{FIELD_MANAGER, LABEL_CLUSTER_ID, LABEL_ORG_ID, SpecError};
use super::{ClusterSpec, ClusterState, ProvisionError};

/// Provisions clusters as KoruCluster objects through the Kubernetes API.
#[derive(Clone)]
pub struct KubeProvisioner {
    client: Client,
    config: KubeProvisionerConfig,
}

impl From<SpecError> for ProvisionError {
    fn from(e: SpecError) -> Self {
        ProvisionError::Kubernetes(format!("cannot provision: {e}"))
    }
}

/// The API server's message for a failed call (its Status message when it answered).
fn kube_error(what: &str, e: kube::Error) -> ProvisionError {
    match e {
        kube::Error::Api(status) => {
            ProvisionError::Kubernetes(format!("{what}: {} ({})", status.message, status.code))
        }
        other => ProvisionError::Kubernetes(format!("{what}: {other}")),
    }
}

impl KubeProvisioner {
    /// A provisioner talking to the API server through `client`.
    pub fn new(client: Client, config: KubeProvisionerConfig) -> Self {
        KubeProvisioner { client, config }
    }

    /// A provisioner using the in-cluster configuration or the current kubeconfig.
    pub async fn connect(config: KubeProvisionerConfig) -> Result<Self, ProvisionError> {
        let client = Client::try_default()
            .await
            .map_err(|e| kube_error("connecting to the API server", e))?;
        Ok(Self::new(client, config))
    }

    /// The namespace the cluster of `spec` lives in.
    pub fn namespace_of(&self, spec: &ClusterSpec) -> Result<String, ProvisionError> {
        Ok(desired::namespace_name(
            &self.config.namespace_prefix,
            &spec.org_slug,
            &spec.org_id,
        )?)
    }

    /// Creates the cluster or brings it to `spec`: the organization's namespace (on first use),
    /// the token Secret and the KoruCluster, each server-side applied. A global database is one
    /// KoruCluster per region sharing a replication Secret ([`regions`]).
    pub async fn apply(&self, spec: &ClusterSpec) -> Result<(), ProvisionError> {
        if !spec.is_global() {
            return self.apply_one(spec).await;
        }
        let ns = self.namespace_of(spec)?;
        let units = regions::region_specs(&ns, spec);
        for unit in &units {
            desired::koru_cluster_manifest(&ns, unit, &self.config)?;
        }
        self.ensure_namespace(&ns, spec).await?;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        let name = regions::replication_secret_name(&spec.id);
        // Generated once: every region presents and accepts it for the database's life.
        if get_opt(&secrets, &name).await?.is_none() {
            let token = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            apply(
                &secrets,
                &name,
                &regions::replication_secret(&ns, spec, &token),
            )
            .await?;
        }
        for unit in &units {
            self.apply_one(unit).await?;
        }
        Ok(())
    }

    /// [`KubeProvisioner::apply`] of one KoruCluster.
    async fn apply_one(&self, spec: &ClusterSpec) -> Result<(), ProvisionError> {
        let ns = self.namespace_of(spec)?;
        // Build everything first, so an invalid spec writes nothing.
        let cluster = desired::koru_cluster_manifest(&ns, spec, &self.config)?;
        let secret = desired::token_secret(&ns, spec);
        self.ensure_namespace(&ns, spec).await?;

        let clusters: Api<KoruCluster> = Api::namespaced(self.client.clone(), &ns);
        if let Some(existing) = get_opt(&clusters, &spec.name).await? {
            // The same name may still hold a deleted cluster on its way out, or another cluster;
            // taking it over would hand that cluster's volumes to this one.
            if !desired::belongs_to(existing.metadata.labels.as_ref(), spec) {
                return Err(ProvisionError::Kubernetes(format!(
                    "KoruCluster {ns}/{} exists and belongs to another cluster (label {LABEL_CLUSTER_ID} is not {})",
                    spec.name, spec.id
                )));
            }
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        apply(&secrets, &desired::token_secret_name(&spec.name), &secret).await?;
        if let Some((source_ns, source_name)) = &self.config.backup_credentials {
            let source: Api<Secret> = Api::namespaced(self.client.clone(), source_ns);
            let credentials = get_opt(&source, source_name).await?.ok_or_else(|| {
                ProvisionError::Kubernetes(format!(
                    "the backup credentials Secret {source_ns}/{source_name} does not exist"
                ))
            })?;
            let copy = desired::backup_credentials_secret(&ns, spec, &credentials);
            apply(&secrets, desired::BACKUP_CREDENTIALS_SECRET, &copy).await?;
        }
        apply(&clusters, &spec.name, &cluster).await
    }

    /// Each member's URL for the gateway (pods by their stable DNS names); none when the
    /// organization's namespace cannot be named.
    pub fn members(&self, org_slug: &str, cluster: &crate::clusters::Cluster) -> Vec<String> {
        desired::namespace_name(&self.config.namespace_prefix, org_slug, &cluster.org_id)
            .map(|ns| desired::member_urls(&ns, &cluster.name, cluster.replicas))
            .unwrap_or_default()
    }

    /// Removes the cluster: its KoruCluster (the operator's objects and, with `reclaimPolicy:
    /// Delete`, the volumes follow through the garbage collector), its KoruBackups and its token
    /// Secret. Unknown objects are not an error. The namespace stays: other clusters of the
    /// organization may live there. A global database loses every region and its replication
    /// Secret.
    pub async fn delete(&self, spec: &ClusterSpec) -> Result<(), ProvisionError> {
        if !spec.is_global() {
            return self.delete_one(spec).await;
        }
        let ns = self.namespace_of(spec)?;
        for unit in regions::region_specs(&ns, spec) {
            self.delete_one(&unit).await?;
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        delete_if_ours(&secrets, &regions::replication_secret_name(&spec.id), spec).await
    }

    /// [`KubeProvisioner::delete`] of one KoruCluster.
    async fn delete_one(&self, spec: &ClusterSpec) -> Result<(), ProvisionError> {
        let ns = self.namespace_of(spec)?;
        let clusters: Api<KoruCluster> = Api::namespaced(self.client.clone(), &ns);
        delete_if_ours(&clusters, &spec.name, spec).await?;

        let backups: Api<KoruBackup> = Api::namespaced(self.client.clone(), &ns);
        let selector = format!("{LABEL_CLUSTER_ID}={}", spec.id);
        let list = match backups.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list,
            // No namespace yet: nothing was ever provisioned.
            Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(()),
            Err(e) => return Err(kube_error("listing KoruBackups", e)),
        };
        for backup in list {
            if let Some(name) = backup.metadata.name.as_deref() {
                delete_if_ours(&backups, name, spec).await?;
            }
        }

        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        delete_if_ours(&secrets, &desired::token_secret_name(&spec.name), spec).await
    }

    /// The cluster's state as the operator reports it; NotFound when no KoruCluster of this
    /// cluster exists. A global database's is its regions': the primary's endpoint, every
    /// region's phase and stream links.
    pub async fn state(&self, spec: &ClusterSpec) -> Result<ClusterState, ProvisionError> {
        if !spec.is_global() {
            return Ok(desired::observed_state(&self.koru_cluster(spec).await?));
        }
        let ns = self.namespace_of(spec)?;
        let mut seen = Vec::new();
        for unit in regions::region_specs(&ns, spec) {
            let kc = self.koru_cluster(&unit).await?;
            let name = unit.region.map(|r| r.name).unwrap_or_default();
            seen.push((
                regions::region_state(&name, &kc),
                desired::observed_state(&kc),
            ));
        }
        let region_states: Vec<_> = seen.iter().map(|(r, _)| r.clone()).collect();
        Ok(ClusterState {
            phase: super::global_phase(&region_states),
            ready_replicas: seen.iter().map(|(_, s)| s.ready_replicas).sum(),
            endpoint: seen.first().and_then(|(_, s)| s.endpoint.clone()),
            message: seen
                .iter()
                .find_map(|(r, s)| s.message.as_ref().map(|m| format!("{}: {m}", r.name))),
            regions: region_states,
        })
    }

    /// The KoruCluster of `spec`; NotFound when none of this cluster exists.
    async fn koru_cluster(&self, spec: &ClusterSpec) -> Result<KoruCluster, ProvisionError> {
        let ns = self.namespace_of(spec)?;
        let clusters: Api<KoruCluster> = Api::namespaced(self.client.clone(), &ns);
        match get_opt(&clusters, &spec.name).await? {
            Some(kc) if desired::belongs_to(kc.metadata.labels.as_ref(), spec) => Ok(kc),
            _ => Err(ProvisionError::NotFound(spec.id.clone())),
        }
    }

    /// Whether the operator reports the cluster's storage at its tier's ceiling (`None`: it
    /// says nothing about it).
    pub async fn storage_at_ceiling(
        &self,
        spec: &ClusterSpec,
    ) -> Result<Option<bool>, ProvisionError> {
        let ns = self.namespace_of(spec)?;
        let clusters: Api<KoruCluster> = Api::namespaced(self.client.clone(), &ns);
        match get_opt(&clusters, &spec.name).await? {
            Some(kc) if desired::belongs_to(kc.metadata.labels.as_ref(), spec) => {
                Ok(desired::storage_at_ceiling(&kc))
            }
            _ => Err(ProvisionError::NotFound(spec.id.clone())),
        }
    }

    /// Requests an on-demand backup of the cluster as a KoruBackup named `backup_name`
    /// (idempotent: applying the same name again changes nothing; its spec is immutable).
    pub async fn backup(
        &self,
        spec: &ClusterSpec,
        backup_name: &str,
    ) -> Result<(), ProvisionError> {
        let ns = self.namespace_of(spec)?;
        let backup = desired::koru_backup(&ns, spec, backup_name)?;
        let backups: Api<KoruBackup> = Api::namespaced(self.client.clone(), &ns);
        apply(&backups, backup_name, &backup).await
    }

    /// The status of the KoruBackup `backup_name` of the cluster (empty until the operator has
    /// looked at it); NotFound when there is none.
    pub async fn backup_state(
        &self,
        spec: &ClusterSpec,
        backup_name: &str,
    ) -> Result<KoruBackupStatus, ProvisionError> {
        let ns = self.namespace_of(spec)?;
        let backups: Api<KoruBackup> = Api::namespaced(self.client.clone(), &ns);
        match get_opt(&backups, backup_name).await? {
            Some(b) if desired::belongs_to(b.metadata.labels.as_ref(), spec) => {
                Ok(b.status.unwrap_or_default())
            }
            _ => Err(ProvisionError::NotFound(format!(
                "{} (backup {backup_name})",
                spec.id
            ))),
        }
    }

    /// Creates the organization's namespace on first use; refuses one that exists but is not
    /// labelled as this organization's, so a cluster never lands among another tenant's objects.
    async fn ensure_namespace(&self, ns: &str, spec: &ClusterSpec) -> Result<(), ProvisionError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        match get_opt(&namespaces, ns).await? {
            Some(existing) => {
                let owner = existing
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_ORG_ID));
                if owner != Some(&spec.org_id) {
                    return Err(ProvisionError::Kubernetes(format!(
                        "namespace {ns} exists and is not organization {}'s (label {LABEL_ORG_ID} is {owner:?})",
                        spec.org_id
                    )));
                }
                Ok(())
            }
            None => apply(&namespaces, ns, &desired::namespace(ns, spec)).await,
        }
    }
}

/// Server-side applies `object` as `name`, taking over fields other managers set (the control
/// plane is the source of truth for the spec).
async fn apply<K, O>(api: &Api<K>, name: &str, object: &O) -> Result<(), ProvisionError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    O: Serialize + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map(|_| ())
    .map_err(|e| kube_error(&format!("applying {} {name}", K::kind(&())), e))
}

/// Reads `name`, None when it (or its namespace) does not exist.
async fn get_opt<K>(api: &Api<K>, name: &str) -> Result<Option<K>, ProvisionError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .map_err(|e| kube_error(&format!("reading {} {name}", K::kind(&())), e))
}

/// Deletes `name` when it carries the cluster's id; the uid precondition makes sure the object
/// deleted is the one checked, not one re-created under the same name meanwhile.
async fn delete_if_ours<K>(
    api: &Api<K>,
    name: &str,
    spec: &ClusterSpec,
) -> Result<(), ProvisionError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(object) = get_opt(api, name).await? else {
        return Ok(());
    };
    let meta = object.meta();
    if !desired::belongs_to(meta.labels.as_ref(), spec) {
        return Ok(());
    }
    let params = DeleteParams::background().preconditions(Preconditions {
        uid: meta.uid.clone(),
        resource_version: None,
    });
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        // Gone meanwhile, or replaced by another object (the uid precondition failed).
        Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => Ok(()),
        Err(e) => Err(kube_error(&format!("deleting {} {name}", K::kind(&())), e)),
    }
}
