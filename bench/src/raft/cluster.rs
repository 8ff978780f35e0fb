//! The servers of the replication benchmark: `koru-dataplane` processes started through the test
//! kit's process harness, alone or as a cluster with fixed ports, and the calls the benchmark makes
//! to them (`/raft/status`, one PUT).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use koru_testkit::{Process, ProcessSpec, StartError};
use serde::Deserialize;

use super::{
    CATCH_UP_LIMIT, LEADER_LIMIT, MEMBERS, POLL, START_LIMIT, STATUS_TIMEOUT, WRITE_TIMEOUT,
};
use crate::error::BenchError;

/// A free loopback port (released before the server binds it, so members can name each other).
pub(crate) fn free_port() -> Result<u16, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(BenchError::io("finding a free port on 127.0.0.1"))
}

/// The end of a server's log, for error messages.
pub(crate) fn log_tail(stderr: &str, path: &Path) -> String {
    let tail = &stderr[stderr.floor_char_boundary(stderr.len().saturating_sub(2000))..];
    format!("end of {}:\n{tail}", path.display())
}

/// Starts `koru-dataplane` with its data in `dir/data` and its logs appended to `dir/log`,
/// listening on `port`; returns once it prints its URL. The process is SIGKILLed and reaped
/// when dropped, so no run (finished, failed or interrupted) leaves a server behind.
pub(crate) async fn start_server(
    binary: &Path,
    dir: &Path,
    port: u16,
    extra: &[String],
) -> Result<Process, BenchError> {
    std::fs::create_dir_all(dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
    let log_path = dir.join("log");
    // The server reads its settings from KORU_* variables too; only these arguments may count.
    let spec = ProcessSpec::dataplane(binary)
        .name(format!("koru-dataplane on port {port}"))
        .clear_koru_env()
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .env("KORU_LOG", "warn")
        .start_timeout(START_LIMIT)
        .log_file(&log_path);
    // Waiting for the ready line blocks; the steady load must keep running meanwhile.
    let started = tokio::task::spawn_blocking(move || Process::try_start(spec))
        .await
        .map_err(|e| BenchError::Target(format!("starting koru-dataplane on port {port}: {e}")))?;
    started.map_err(|e| match e {
        StartError::Exited(exited) => BenchError::Target(format!(
            "koru-dataplane on port {port} exited before it was ready ({}); {}",
            exited.status,
            log_tail(&exited.stderr, &log_path)
        )),
        StartError::TimedOut { stderr, .. } => BenchError::Target(format!(
            "koru-dataplane on port {port} was not ready within {START_LIMIT:?}; {}",
            log_tail(&stderr, &log_path)
        )),
        other => BenchError::Target(other.to_string()),
    })
}

/// The part of `/raft/status` this benchmark reads.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Status {
    pub(super) role: String,
    pub(super) leader: Option<u64>,
    pub(super) applied_index: u64,
}

/// An HTTP client for status calls and the failover writes; no connection is kept, so a killed
/// member's stale connection never costs a restarted one a failed write.
pub(super) fn client() -> Result<reqwest::Client, BenchError> {
    // reqwest is built with rustls but no provider; plain http still wants one named.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(1))
        .timeout(WRITE_TIMEOUT)
        .build()
        .map_err(|e| BenchError::Target(format!("building the HTTP client: {e}")))
}

/// A member's `/raft/status`, or None if it does not answer.
pub(super) async fn status(http: &reqwest::Client, url: &str) -> Option<Status> {
    let resp = http
        .get(format!("{url}/raft/status"))
        .timeout(STATUS_TIMEOUT)
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// One PUT; Err with the reason when it is not acknowledged.
pub(super) async fn put(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    n: u64,
) -> Result<(), String> {
    let resp = http
        .put(format!("{url}/api/v1/failover/{key}"))
        .header("content-type", "application/json")
        .body(format!("{{\"value\":{{\"n\":{n}}}}}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(resp.status().to_string())
    }
}

/// A replicated cluster of `koru-dataplane` processes with fixed ports and ids 1..=MEMBERS.
pub(super) struct Cluster {
    binary: PathBuf,
    dir: PathBuf,
    /// The members' `--fsync`.
    fsync: String,
    ports: BTreeMap<u64, u16>,
    /// Each member's `--peer-listen` port.
    peer_ports: BTreeMap<u64, u16>,
    peers: String,
    /// The running members (a killed one is absent until restarted); dropping kills them.
    pub(super) members: BTreeMap<u64, Process>,
}

impl Cluster {
    /// Starts every member; members wait for each other, so they start together.
    pub(super) async fn start(
        binary: &Path,
        dir: PathBuf,
        fsync: &str,
    ) -> Result<Cluster, BenchError> {
        let (mut ports, mut peer_ports) = (BTreeMap::new(), BTreeMap::new());
        for id in 1..=MEMBERS {
            ports.insert(id, free_port()?);
            peer_ports.insert(id, free_port()?);
        }
        let peers = peer_ports
            .iter()
            .map(|(id, port)| format!("{id}=127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            binary: binary.to_path_buf(),
            dir,
            fsync: fsync.into(),
            ports,
            peer_ports,
            peers,
            members: BTreeMap::new(),
        };
        for id in 1..=MEMBERS {
            cluster.restart(id).await?;
        }
        Ok(cluster)
    }

    /// Starts member `id` (again), on its data directory and port with the same arguments.
    pub(super) async fn restart(&mut self, id: u64) -> Result<(), BenchError> {
        let args = [
            "--node-id".to_string(),
            id.to_string(),
            "--peers".to_string(),
            self.peers.clone(),
            "--peer-listen".to_string(),
            format!("127.0.0.1:{}", self.peer_ports[&id]),
            "--fsync".to_string(),
            self.fsync.clone(),
        ];
        let dir = self.dir.join(format!("member-{id}"));
        let proc = start_server(&self.binary, &dir, self.ports[&id], &args).await?;
        self.members.insert(id, proc);
        Ok(())
    }

    pub(super) fn url(&self, id: u64) -> String {
        format!("http://127.0.0.1:{}", self.ports[&id])
    }

    /// Member `id`'s peer listener, where `/raft/*` is served.
    pub(super) fn peer_url(&self, id: u64) -> String {
        format!("http://127.0.0.1:{}", self.peer_ports[&id])
    }

    pub(super) fn running(&self) -> Vec<u64> {
        self.members.keys().copied().collect()
    }

    /// Waits until one running member leads and every running member follows it.
    pub(super) async fn leader(&self, http: &reqwest::Client) -> Result<u64, BenchError> {
        let deadline = Instant::now() + LEADER_LIMIT;
        loop {
            let mut said = BTreeMap::new();
            for id in self.running() {
                said.insert(id, status(http, &self.peer_url(id)).await);
            }
            let leaders: Vec<u64> = said
                .iter()
                .filter(|(_, s)| s.as_ref().is_some_and(|s| s.role == "leader"))
                .map(|(id, _)| *id)
                .collect();
            if let [leader] = leaders[..]
                && said
                    .values()
                    .all(|s| s.as_ref().is_some_and(|s| s.leader == Some(leader)))
            {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Target(format!(
                    "the members agreed on no leader within {LEADER_LIMIT:?}; they said {said:?}"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until member `id` follows the leader and has applied what the leader had applied
    /// just before.
    pub(super) async fn caught_up(
        &self,
        http: &reqwest::Client,
        id: u64,
    ) -> Result<(), BenchError> {
        let deadline = Instant::now() + CATCH_UP_LIMIT;
        loop {
            let leader = self.leader(http).await?;
            let (lead, member) = (
                status(http, &self.peer_url(leader)).await,
                status(http, &self.peer_url(id)).await,
            );
            if let (Some(lead), Some(member)) = (&lead, &member)
                && leader != id
                && member.role == "follower"
                && member.leader == Some(leader)
                && member.applied_index >= lead.applied_index
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Target(format!(
                    "member {id} did not catch up with leader {leader} within {CATCH_UP_LIMIT:?}: \
                     leader {lead:?}, member {member:?}"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The server binary: `given` (`--server`), or `koru-dataplane` beside this executable (Cargo
/// builds both into the same directory).
pub(crate) fn server_binary(given: Option<&Path>) -> Result<PathBuf, BenchError> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .map_err(BenchError::io("finding this executable"))?
            .with_file_name("koru-dataplane"),
    };
    if !path.is_file() {
        return Err(BenchError::Usage(format!(
            "no koru-dataplane binary at {}: build it (cargo build -p koru-dataplane --bin \
             koru-dataplane, with the same profile and target directory) or pass --server",
            path.display()
        )));
    }
    Ok(path)
}

/// Creates the scratch directory (`given`, else `koru-bench-<bench>-<pid>` in the system's
/// temporary directory); refuses one holding anything, since it is removed afterwards.
pub(crate) fn work_dir(given: Option<&Path>, bench: &str) -> Result<PathBuf, BenchError> {
    let dir = given.map(Path::to_path_buf).unwrap_or_else(|| {
        std::env::temp_dir().join(format!("koru-bench-{bench}-{}", std::process::id()))
    });
    if let Ok(mut entries) = std::fs::read_dir(&dir)
        && entries.next().is_some()
    {
        return Err(BenchError::Usage(format!(
            "--work-dir {} is not empty; give an empty or new directory (it is removed afterwards)",
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// Completes on SIGINT or SIGTERM, so the servers' guards run instead of the process dying.
pub(crate) async fn interrupted() -> BenchError {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    BenchError::Target("interrupted".into())
}
