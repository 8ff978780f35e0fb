//! The local provisioner, the embedded default: every cluster is a `koru-dataplane` process on its
//! own loopback port with its own data directory, supervised and restarted on crash, and still
//! serving after the control plane restarts.
//!
//! - **Files.** `<data_dir>/clusters/<id>/` holds the spec, the token key, the port (chosen once,
//!   so the endpoint `http://127.0.0.1:<port>` never changes), the pid, the data plane's log and
//!   its data directory (`layout.rs`).
//! - **Processes.** One supervisor task per cluster (`supervisor.rs`) starts the data plane with
//!   `--fsync always`, token auth for the cluster's id, the tier's limits, and archiving to
//!   `<data_dir>/backups/<id>` with hourly base backups kept for the tier's retention, probes `/readyz`,
//!   and restarts it after an unexpected exit with a backoff of 0.5 s doubling to 30 s (reset after
//!   a minute of running). A cluster of any replica count is one process here: there is no
//!   replication yet, so `replicas` (and `version` and `storage_bytes`) only matter to the
//!   Kubernetes provisioner.
//! - **Control-plane restarts: adopt, don't restart.** Data planes run in their own process group
//!   with their output in a file, so stopping the control plane (Ctrl-C, SIGTERM, a crash, or
//!   dropping the provisioner) leaves them serving. [`LocalProvisioner::start`] finds each
//!   cluster's process by its pid file (or, failing that, by scanning `/proc` for its
//!   `--data-dir`) and adopts it when it runs exactly the command line the current spec asks for
//!   and answers `/healthz`; an adopted process is watched by polling `/proc` since it is not our
//!   child. A process with another command line, or one that stays silent for 10 s, is stopped and
//!   replaced; with no process, a new one starts on the recorded port. Adopting keeps clients
//!   connected through a control-plane upgrade; the data directory's lock makes a second process
//!   on the same cluster impossible in any case. A service manager that stops a whole cgroup
//!   (systemd's default `KillMode=control-group`, a container's stop) still takes the data planes
//!   down with the control plane; use `KillMode=process` to keep them, and they are started again
//!   on the same ports either way.
//! - **Restores.** A new cluster whose spec names a [`super::RestoreSource`] has its data
//!   directory filled by `koru-dataplane restore` from the source's store before the spec is
//!   written and its data plane first starts; it then archives to its own store, so its history
//!   after the restore point never mixes with the source's.
//! - **Scale to zero.** A spec with `suspended` stops the data plane (SIGTERM, as for a delete)
//!   and keeps its directory and port; the supervisor then waits, with no process, for a spec
//!   without it, and starts the data plane again. `state()` reports `Suspended`. The spec on disk
//!   carries the flag, so a control plane started later does not start (and stops, if one is
//!   found) a suspended cluster's data plane.
//! - **Deletion.** [`LocalProvisioner::delete`] stops the data plane (SIGTERM, 10 s, SIGKILL) and
//!   removes the directory; afterwards [`LocalProvisioner::state`] answers
//!   [`ProvisionError::NotFound`], as for any cluster it does not know.

mod global;
mod layout;
mod process;
mod status;
mod supervisor;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{ClusterSpec, ClusterState, ProvisionError};
use layout::{ClusterDir, io_error};
use status::{Observed, Process};
use supervisor::{Command, STOP_GRACE, Start, Supervisor, lock};

/// Runs clusters as supervised `koru-dataplane` processes on this machine.
pub struct LocalProvisioner {
    /// `<data_dir>/clusters`, absolute.
    clusters_dir: PathBuf,
    /// The `koru-dataplane` binary, absolute.
    bin: PathBuf,
    /// The clusters being supervised, by id.
    clusters: Mutex<HashMap<String, Handle>>,
    /// Serialises `apply` and `delete`, which are rare, so that two changes to one cluster never
    /// interleave their file writes and commands. `state` does not take it.
    changes: tokio::sync::Mutex<()>,
}

/// One supervised cluster.
struct Handle {
    /// The spec last applied.
    spec: ClusterSpec,
    /// Its loopback port.
    port: u16,
    /// What its supervisor observed.
    observed: Arc<Mutex<Observed>>,
    /// Commands to its supervisor.
    commands: mpsc::UnboundedSender<Command>,
    /// The supervisor task.
    task: JoinHandle<()>,
}

impl LocalProvisioner {
    /// Starts the provisioner on `data_dir`, bringing up every cluster found there: running data
    /// planes are adopted, others started. `dataplane_bin` is a path to `koru-dataplane`, or a bare
    /// name looked up in `PATH`. Must be called inside a tokio runtime.
    pub async fn start(
        data_dir: PathBuf,
        dataplane_bin: PathBuf,
    ) -> Result<LocalProvisioner, ProvisionError> {
        let bin = resolve_bin(&dataplane_bin)?;
        let clusters_dir = data_dir.join("clusters");
        layout::create_dir(&clusters_dir)?;
        // Absolute paths: they are compared with running data planes' command lines, which must
        // not depend on the control plane's working directory.
        let clusters_dir = clusters_dir
            .canonicalize()
            .map_err(|e| io_error("resolving", &clusters_dir, &e))?;
        let provisioner = LocalProvisioner {
            clusters_dir,
            bin,
            clusters: Mutex::new(HashMap::new()),
            changes: tokio::sync::Mutex::new(()),
        };
        let found = provisioner.found_clusters()?;
        let mut taken: HashSet<u16> = found.iter().filter_map(|(_, _, port)| *port).collect();
        for (dir, spec, port) in found {
            let port = match port {
                Some(port) => port,
                None => match dir.port_or_pick(&taken) {
                    Ok(port) => port,
                    Err(e) => {
                        tracing::error!(cluster = %spec.id, error = %e, "cannot give the cluster a port; not starting it");
                        continue;
                    }
                },
            };
            taken.insert(port);
            let start = initial_start(&dir);
            let handle = provisioner.supervise(dir, port, spec.clone(), start);
            lock(&provisioner.clusters).insert(spec.unit_id(), handle);
        }
        tracing::info!(
            clusters = lock(&provisioner.clusters).len(),
            dir = %provisioner.clusters_dir.display(),
            "local provisioner started"
        );
        Ok(provisioner)
    }

    /// Creates the cluster or brings it to `spec` (idempotent). A new cluster starts in the
    /// background (its state is Provisioning until ready); new limits or a new token key restart
    /// its data plane, which reads them only at start; an unchanged spec does nothing.
    /// A global database is one such data plane per region (`global.rs`).
    pub async fn apply(&self, spec: &ClusterSpec) -> Result<(), ProvisionError> {
        layout::validate_id(&spec.id)?;
        let _changes = self.changes.lock().await;
        if spec.is_global() {
            self.apply_global(spec).await
        } else {
            self.apply_unit(spec).await
        }
    }

    /// [`LocalProvisioner::apply`] for one data plane, named by [`ClusterSpec::unit_id`]; the
    /// caller holds `changes`.
    async fn apply_unit(&self, spec: &ClusterSpec) -> Result<(), ProvisionError> {
        let unit = spec.unit_id();
        layout::validate_id(&unit)?;
        let dir = ClusterDir::new(&self.clusters_dir, &unit);
        let existing = lock(&self.clusters)
            .get(&unit)
            .filter(|h| !h.task.is_finished())
            .map(|h| (h.spec.clone(), h.commands.clone()));
        if let Some((old, commands)) = existing {
            if old == *spec {
                return Ok(());
            }
            dir.write_spec(spec)?;
            if needs_restart(&old, spec) {
                commands
                    .send(Command::Restart(Box::new(spec.clone())))
                    .map_err(|_| {
                        ProvisionError::Local(format!(
                            "the supervisor of cluster {} has stopped",
                            spec.id
                        ))
                    })?;
            }
            if let Some(handle) = lock(&self.clusters).get_mut(&unit) {
                handle.spec = spec.clone();
            }
            return Ok(());
        }
        // A new cluster, or one whose supervisor is gone: (re)create its files and supervise it.
        let taken: HashSet<u16> = lock(&self.clusters)
            .iter()
            .filter(|(id, _)| **id != unit)
            .map(|(_, h)| h.port)
            .collect();
        if let Some(restore) = &spec.restore {
            // Before the spec is written: a failed restore leaves no cluster to bring up.
            layout::validate_id(&restore.cluster_id)?;
            let source = ClusterDir::new(&self.clusters_dir, &restore.cluster_id).backups();
            process::restore(&self.bin, &dir, &source, restore).await?;
        }
        let port = dir.create(spec, &taken)?;
        let start = initial_start(&dir);
        let handle = self.supervise(dir, port, spec.clone(), start);
        if let Some(old) = lock(&self.clusters).insert(unit.clone(), handle) {
            old.task.abort();
        }
        tracing::info!(cluster = %unit, port, "cluster applied");
        Ok(())
    }

    /// Stops the cluster's data plane (SIGTERM, up to 10 s to drain, then SIGKILL) and removes its
    /// directory, data included. An unknown cluster is not an error.
    /// A global database's regions all go, with their shared replication token.
    pub async fn delete(&self, spec: &ClusterSpec) -> Result<(), ProvisionError> {
        layout::validate_id(&spec.id)?;
        let _changes = self.changes.lock().await;
        if spec.is_global() {
            self.delete_global(spec).await
        } else {
            self.delete_unit(&spec.unit_id()).await
        }
    }

    /// [`LocalProvisioner::delete`] for one data plane; the caller holds `changes`.
    async fn delete_unit(&self, unit: &str) -> Result<(), ProvisionError> {
        layout::validate_id(unit)?;
        let dir = ClusterDir::new(&self.clusters_dir, unit);
        let handle = lock(&self.clusters).remove(unit);
        if let Some(handle) = handle {
            let (reply, stopped) = oneshot::channel();
            if handle.commands.send(Command::Stop(reply)).is_ok()
                && let Ok(Err(e)) = stopped.await
            {
                // The files stay, so a retried delete finds the process again through /proc.
                return Err(e);
            }
            let _ = handle.task.await;
        }
        // A process no supervisor knew of (its spec was unreadable at start) is stopped too, so
        // its files are never removed under it.
        for pid in process::find_serving(&dir) {
            process::terminate_pid(pid, STOP_GRACE, |p| process::serves(p, &dir)).await?;
        }
        dir.remove()?;
        tracing::info!(cluster = %unit, "cluster deleted");
        Ok(())
    }

    /// The cluster's current state, from what its supervisor last observed (no process is touched).
    /// [`ProvisionError::NotFound`] for a cluster never applied or deleted.
    /// A global database's state is its regions' (`global.rs`).
    pub async fn state(&self, spec: &ClusterSpec) -> Result<ClusterState, ProvisionError> {
        if spec.is_global() {
            self.state_global(spec)
        } else {
            self.state_unit(&spec.unit_id())
        }
    }

    /// [`LocalProvisioner::state`] of one data plane.
    fn state_unit(&self, unit: &str) -> Result<ClusterState, ProvisionError> {
        let clusters = lock(&self.clusters);
        let handle = clusters
            .get(unit)
            .ok_or_else(|| ProvisionError::NotFound(unit.to_string()))?;
        let endpoint = endpoint(handle.port);
        let observed = lock(&handle.observed).clone();
        if handle.task.is_finished() && observed.process != Process::Stopped {
            // Only a panic ends a supervisor that was not told to stop.
            return Ok(ClusterState {
                phase: "Failed".into(),
                ready_replicas: 0,
                endpoint: Some(endpoint),
                message: Some(
                    "the control plane stopped supervising this cluster after an internal error; \
                     applying it again resumes supervision"
                        .into(),
                ),
                regions: Vec::new(),
            });
        }
        Ok(status::cluster_state(&observed, &endpoint, Instant::now()))
    }

    /// Stops every cluster's data plane (SIGTERM, then SIGKILL after the grace) and its supervisor,
    /// keeping their files, so the next start brings them up again on the same ports (`dev`'s
    /// Ctrl-C). Returns the id and port of each cluster whose data plane was running or starting.
    /// Afterwards this provisioner knows no clusters.
    pub async fn stop_all(&self) -> Vec<(String, u16)> {
        let _changes = self.changes.lock().await;
        let handles: Vec<(String, Handle)> = lock(&self.clusters).drain().collect();
        let mut stopped = Vec::new();
        for (id, handle) in handles {
            let had_process = !matches!(
                lock(&handle.observed).process,
                Process::Suspended | Process::Stopped
            );
            let (reply, done) = oneshot::channel();
            if handle.commands.send(Command::Stop(reply)).is_ok() {
                match done.await {
                    Ok(Err(e)) => {
                        tracing::error!(cluster = %id, error = %e, "cannot stop the data plane")
                    }
                    _ if had_process => stopped.push((id, handle.port)),
                    _ => {}
                }
            }
            let _ = handle.task.await;
        }
        stopped
    }

    /// Stops supervising every cluster and leaves the data planes running, for a control-plane
    /// shutdown; the next [`LocalProvisioner::start`] adopts them. Afterwards this provisioner
    /// knows no clusters. Dropping the provisioner does the same without waiting.
    pub async fn shutdown(&self) {
        let _changes = self.changes.lock().await;
        let handles: Vec<Handle> = lock(&self.clusters).drain().map(|(_, h)| h).collect();
        for handle in &handles {
            let _ = handle.commands.send(Command::Detach);
        }
        for handle in handles {
            let _ = handle.task.await;
        }
    }

    /// The clusters on disk: each directory with a readable `spec.json` for its own id, with its
    /// recorded port if any. Directories without a spec are unfinished applies and are skipped, as
    /// are unreadable ones (logged): one damaged cluster must not keep the others down.
    fn found_clusters(
        &self,
    ) -> Result<Vec<(ClusterDir, ClusterSpec, Option<u16>)>, ProvisionError> {
        let entries = std::fs::read_dir(&self.clusters_dir)
            .map_err(|e| io_error("listing", &self.clusters_dir, &e))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("listing", &self.clusters_dir, &e))?;
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !entry.file_type().is_ok_and(|t| t.is_dir()) || layout::validate_id(&id).is_err() {
                continue;
            }
            let dir = ClusterDir::new(&self.clusters_dir, &id);
            let loaded = dir
                .read_spec()
                .and_then(|spec| Ok((spec, dir.read_port()?)));
            match loaded {
                Ok((Some(spec), port)) if spec.unit_id() == id => found.push((dir, spec, port)),
                Ok((Some(spec), _)) => tracing::error!(
                    dir = %dir.root().display(),
                    spec_id = %spec.id,
                    "spec.json names another cluster; not starting it"
                ),
                Ok((None, _)) => tracing::warn!(
                    dir = %dir.root().display(),
                    "no spec.json (an apply that did not finish); not starting it until applied again"
                ),
                Err(e) => tracing::error!(error = %e, "cannot read a cluster; not starting it"),
            }
        }
        Ok(found)
    }

    /// Starts the supervisor task of a cluster.
    fn supervise(&self, dir: ClusterDir, port: u16, spec: ClusterSpec, start: Start) -> Handle {
        let observed = Arc::new(Mutex::new(Observed::default()));
        let (commands, receiver) = mpsc::unbounded_channel();
        let supervisor = Supervisor {
            bin: self.bin.clone(),
            dir,
            port,
            spec: spec.clone(),
            observed: Arc::clone(&observed),
        };
        let task = tokio::spawn(supervisor.run(receiver, start));
        Handle {
            spec,
            port,
            observed,
            commands,
            task,
        }
    }
}

impl Drop for LocalProvisioner {
    /// Stops the supervisor tasks; their data planes keep running, to be adopted by the next start.
    fn drop(&mut self) {
        let clusters = self
            .clusters
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for handle in clusters.values() {
            handle.task.abort();
        }
    }
}

/// Where clients reach a cluster on `port`.
fn endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Whether going from `old` to `new` needs the data plane restarted: it reads its limits, its
/// backup retention, its token key and its revocation list URL only at start; suspending stops it
/// and resuming starts it. Name, version, replicas and volume size mean nothing to a local process.
fn needs_restart(old: &ClusterSpec, new: &ClusterSpec) -> bool {
    old.max_ops_per_sec != new.max_ops_per_sec
        || old.max_stored_bytes != new.max_stored_bytes
        || old.token_public_key_pem != new.token_public_key_pem
        || old.revocations_url != new.revocations_url
        || old.backup_retention_days != new.backup_retention_days
        || old.suspended != new.suspended
        || old.region != new.region
}

/// How a cluster found on disk (or re-applied without a supervisor) begins: adopt the process its
/// pid file names if that still serves it, else any process found serving it, else start one.
fn initial_start(dir: &ClusterDir) -> Start {
    if let Some(pid) = dir.read_pid().filter(|&pid| process::serves(pid, dir)) {
        return Start::Adopt(pid);
    }
    match process::find_serving(dir).first() {
        Some(&pid) => Start::Adopt(pid),
        None => Start::Spawn,
    }
}

/// The absolute path of the data-plane binary; a bare name is looked up in `PATH`.
fn resolve_bin(bin: &Path) -> Result<PathBuf, ProvisionError> {
    let found = if bin.components().count() == 1 && !bin.exists() {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(bin))
                .find(|path| path.is_file())
        })
    } else {
        Some(bin.to_path_buf())
    };
    let found = found.filter(|path| path.is_file()).ok_or_else(|| {
        ProvisionError::Local(format!(
            "data plane binary {} not found (build it with `cargo build -p koru-dataplane`)",
            bin.display()
        ))
    })?;
    found
        .canonicalize()
        .map_err(|e| io_error("resolving", &found, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn spec() -> ClusterSpec {
        ClusterSpec {
            id: "c1".into(),
            name: "orders".into(),
            org_id: "org-1".into(),
            org_slug: "acme".into(),
            version: "0.1.0".into(),
            replicas: 1,
            storage_bytes: 1 << 30,
            max_ops_per_sec: 100,
            max_stored_bytes: 1 << 30,
            token_public_key_pem: "key".into(),
            revocations_url: None,
            backup_retention_days: 7,
            restore: None,
            suspended: false,
            regions: Vec::new(),
            region: None,
        }
    }

    #[test]
    fn only_what_the_data_plane_reads_at_start_restarts_it() {
        let old = spec();
        let restart = |change: fn(&mut ClusterSpec)| {
            let mut new = spec();
            change(&mut new);
            needs_restart(&old, &new)
        };
        assert!(restart(|s| s.max_ops_per_sec = 10_000));
        assert!(restart(|s| s.max_stored_bytes = 1));
        assert!(restart(|s| s.token_public_key_pem = "other".into()));
        assert!(restart(|s| s.backup_retention_days = 30));
        assert!(restart(|s| s.suspended = true));
        assert!(!restart(|s| s.name = "renamed".into()));
        assert!(!restart(|s| s.replicas = 3));
        assert!(!restart(|s| s.version = "0.2.0".into()));
        assert!(!restart(|s| s.storage_bytes = 1 << 40));
    }

    #[test]
    fn a_missing_binary_is_named() {
        let e = resolve_bin(Path::new("/nonexistent/koru-dataplane")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/koru-dataplane"), "{e}");
        let e = resolve_bin(Path::new("no-such-binary-koru")).unwrap_err();
        assert!(e.to_string().contains("not found"), "{e}");
    }

    #[tokio::test]
    async fn an_unknown_cluster_is_not_found_and_deleting_it_is_fine() {
        let tmp = tempfile::tempdir().unwrap();
        // Any existing file stands in for the binary: nothing is started here.
        let bin = std::env::current_exe().unwrap();
        let provisioner = LocalProvisioner::start(tmp.path().into(), bin)
            .await
            .unwrap();
        let e = provisioner.state(&spec()).await.unwrap_err();
        assert!(
            matches!(e, ProvisionError::NotFound(ref id) if id == "c1"),
            "{e}"
        );
        provisioner.delete(&spec()).await.unwrap();
        let mut bad = spec();
        bad.id = "../escape".into();
        assert!(matches!(
            provisioner.apply(&bad).await,
            Err(ProvisionError::Local(_))
        ));
    }
}
