//! Pure: a global database on Kubernetes. Each region is its own KoruCluster in the
//! organization's namespace: the primary (first) region keeps the cluster's name, so the gateway
//! and every single-region rule still find it; another region is `<name>-<region>`. Each carries
//! `spec.region` with every other region as a peer (at its Service's URL) and the one replication
//! Secret they share, `<cluster id>-replication` (key `token`), generated once.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use koru_crd::{KoruCluster, RegionPeer, RegionSpec};

use super::desired::{DATAPLANE_HTTP_PORT, cluster_labels};
use crate::provisioner::{ClusterSpec, RegionPlacement, RegionState};

/// Key of the replication secret in its Secret (the operator's contract).
pub const REPLICATION_TOKEN_KEY: &str = "token";

/// The name of the Secret holding a global database's replication secret.
pub fn replication_secret_name(cluster_id: &str) -> String {
    format!("{cluster_id}-replication")
}

/// The KoruCluster name of region `region` (at `index` in the spec's order) of cluster `name`.
pub fn region_cluster_name(name: &str, region: &str, index: usize) -> String {
    if index == 0 {
        name.to_string()
    } else {
        format!("{name}-{region}")
    }
}

/// One spec per region of a global database in `namespace`, each named as its KoruCluster and
/// placed with every other region as a peer.
pub fn region_specs(namespace: &str, spec: &ClusterSpec) -> Vec<ClusterSpec> {
    let urls: Vec<(String, String)> = spec
        .regions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let name = region_cluster_name(&spec.name, r, i);
            (
                r.clone(),
                format!("http://{name}.{namespace}.svc:{DATAPLANE_HTTP_PORT}"),
            )
        })
        .collect();
    spec.regions
        .iter()
        .enumerate()
        .map(|(i, r)| ClusterSpec {
            name: region_cluster_name(&spec.name, r, i),
            region: Some(RegionPlacement {
                name: r.clone(),
                peers: urls.iter().filter(|(n, _)| n != r).cloned().collect(),
            }),
            ..spec.clone()
        })
        .collect()
}

/// The KoruCluster's `spec.region` for a region's spec.
pub fn region_spec(spec: &ClusterSpec) -> Option<RegionSpec> {
    spec.region.as_ref().map(|r| RegionSpec {
        name: r.name.clone(),
        peers: r
            .peers
            .iter()
            .map(|(name, endpoint)| RegionPeer {
                name: name.clone(),
                endpoint: endpoint.clone(),
            })
            .collect(),
        credentials_secret: replication_secret_name(&spec.id),
    })
}

/// The replication Secret of a global database holding `token`.
pub fn replication_secret(namespace: &str, spec: &ClusterSpec, token: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(replication_secret_name(&spec.id)),
            namespace: Some(namespace.to_string()),
            labels: Some(cluster_labels(spec)),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([(
            REPLICATION_TOKEN_KEY.to_string(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// What one region's KoruCluster reports: its phase, endpoint and stream links.
pub fn region_state(region: &str, kc: &KoruCluster) -> RegionState {
    let seen = super::desired::observed_state(kc);
    let links = kc
        .status
        .as_ref()
        .and_then(|s| s.regions.as_ref())
        .map(|r| {
            r.links
                .iter()
                .map(|l| crate::regions::RegionLink {
                    peer: l.name.clone(),
                    state: l.state.clone(),
                    lag_seconds: l.lag_seconds,
                    last_error: l.last_error.clone(),
                })
                .collect()
        });
    RegionState {
        name: region.to_string(),
        phase: seen.phase,
        endpoint: seen.endpoint,
        links,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_keeps_the_name_and_each_region_peers_with_the_others() {
        let spec = ClusterSpec {
            regions: vec!["us-east".into(), "eu-west".into()],
            ..super::super::desired::tests::spec()
        };
        let units = region_specs("koru-acme", &spec);
        assert_eq!(units[0].name, "orders");
        assert_eq!(units[1].name, "orders-eu-west");
        let eu = region_spec(&units[1]).unwrap();
        assert_eq!(eu.name, "eu-west");
        assert_eq!(eu.peers.len(), 1);
        assert_eq!(eu.peers[0].name, "us-east");
        assert_eq!(eu.peers[0].endpoint, "http://orders.koru-acme.svc:7878");
        assert_eq!(eu.credentials_secret, format!("{}-replication", spec.id));
        let secret = replication_secret("koru-acme", &spec, "s3cret");
        assert_eq!(
            secret.data.unwrap()[REPLICATION_TOKEN_KEY].0,
            b"s3cret".to_vec()
        );
    }
}
