//! Global databases on the local provisioner: each region is its own data plane (its own
//! directory `<id>.<region>`, port and supervisor) started with `--region`, a `--region-peer` for
//! every other region and `--region-token-file` naming one generated replication secret that all
//! of them share (`<id>.region-token`). Every region's port is chosen before any starts, so each
//! one's peers are known from its first start.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use super::layout::{self, ClusterDir, io_error};
use super::{LocalProvisioner, endpoint, lock};
use crate::provisioner::{
    ClusterSpec, ClusterState, ProvisionError, RegionPlacement, RegionState, global_phase,
};

impl LocalProvisioner {
    /// Applies every region of a global database; the caller holds `changes`.
    pub(super) async fn apply_global(&self, spec: &ClusterSpec) -> Result<(), ProvisionError> {
        let units = region_specs(spec, &[]);
        for unit in &units {
            layout::validate_id(&unit.unit_id())?;
        }
        let ours: HashSet<String> = units.iter().map(ClusterSpec::unit_id).collect();
        let mut taken: HashSet<u16> = lock(&self.clusters)
            .iter()
            .filter(|(id, _)| !ours.contains(*id))
            .map(|(_, h)| h.port)
            .collect();
        let mut peers = Vec::with_capacity(units.len());
        for (unit, name) in units.iter().zip(&spec.regions) {
            let dir = ClusterDir::new(&self.clusters_dir, &unit.unit_id());
            layout::create_dir(&dir.data())?;
            let port = dir.port_or_pick(&taken)?;
            taken.insert(port);
            peers.push((name.clone(), endpoint(port)));
        }
        if let Some(first) = units.first() {
            let dir = ClusterDir::new(&self.clusters_dir, &first.unit_id());
            ensure_token(&dir.region_token(&spec.id))?;
        }
        for unit in region_specs(spec, &peers) {
            self.apply_unit(&unit).await?;
        }
        Ok(())
    }

    /// Deletes every region of a global database and the shared token; the caller holds
    /// `changes`.
    pub(super) async fn delete_global(&self, spec: &ClusterSpec) -> Result<(), ProvisionError> {
        let units = region_specs(spec, &[]);
        for unit in &units {
            self.delete_unit(&unit.unit_id()).await?;
        }
        if let Some(first) = units.first() {
            let token =
                ClusterDir::new(&self.clusters_dir, &first.unit_id()).region_token(&spec.id);
            match std::fs::remove_file(&token) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("removing", &token, &e)),
            }
        }
        Ok(())
    }

    /// A global database's state: each region's, the phase of them all, the primary's endpoint.
    pub(super) fn state_global(&self, spec: &ClusterSpec) -> Result<ClusterState, ProvisionError> {
        let mut regions = Vec::new();
        let mut message = None;
        let mut ready = 0;
        for unit in region_specs(spec, &[]) {
            let seen = self.state_unit(&unit.unit_id())?;
            let name = unit.region.map(|r| r.name).unwrap_or_default();
            ready += seen.ready_replicas;
            if message.is_none() {
                message = seen.message.map(|m| format!("{name}: {m}"));
            }
            regions.push(RegionState {
                name,
                phase: seen.phase,
                endpoint: seen.endpoint,
                links: None,
            });
        }
        Ok(ClusterState {
            phase: global_phase(&regions),
            ready_replicas: ready,
            endpoint: regions.first().and_then(|r| r.endpoint.clone()),
            message,
            regions,
        })
    }
}

/// The spec of each region of `spec`, in order, with `peers` (name, URL of every region) giving
/// each its peers: all but itself.
fn region_specs(spec: &ClusterSpec, peers: &[(String, String)]) -> Vec<ClusterSpec> {
    spec.regions
        .iter()
        .map(|name| ClusterSpec {
            region: Some(RegionPlacement {
                name: name.clone(),
                peers: peers.iter().filter(|(n, _)| n != name).cloned().collect(),
            }),
            ..spec.clone()
        })
        .collect()
}

/// Creates the replication secret file (owner-only) unless it exists: it must stay the same for
/// the database's life, since every region presents and accepts it.
fn ensure_token(path: &std::path::Path) -> Result<(), ProvisionError> {
    if path.exists() {
        return Ok(());
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(token.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| io_error("writing", path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_region_peers_with_every_other() {
        let spec = ClusterSpec {
            regions: vec!["us-east".into(), "eu-west".into(), "ap-southeast".into()],
            ..crate::provisioner::local::tests::spec()
        };
        let peers: Vec<(String, String)> = spec
            .regions
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), format!("http://127.0.0.1:{}", 7000 + i)))
            .collect();
        let units = region_specs(&spec, &peers);
        assert_eq!(units.len(), 3);
        assert_eq!(units[1].unit_id(), "c1.eu-west");
        let eu = units[1].region.as_ref().unwrap();
        assert_eq!(
            eu.peers,
            vec![
                ("us-east".to_string(), "http://127.0.0.1:7000".to_string()),
                (
                    "ap-southeast".to_string(),
                    "http://127.0.0.1:7002".to_string()
                )
            ]
        );
    }
}
