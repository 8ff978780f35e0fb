//! The KoruDelta operator: the custom resources and the controller that reconciles them.

#![warn(missing_docs)]

pub mod admin;
pub mod backup;
pub mod config;
pub mod controller;
pub mod crd;
pub mod desired;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod quantity;
pub mod recovery;
pub mod replication;
pub mod resize;
pub mod status;
pub mod telemetry;
pub mod upgrade;

use kube::CustomResourceExt;

/// Both CRDs as one multi-document YAML, as committed under `charts/koru-operator/crds/`.
pub fn crds_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    for crd in [crd::KoruCluster::crd(), crd::KoruBackup::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}
