//! Replicated clusters of real `koru-dataplane` processes on loopback, for the Raft tests.
//!
//! Members get fixed ports (picked free before start, so each member's `--peers` can name the
//! others): one for the API and one for the member routes (`--peer-listen`) and run with `KORU_FAULT_INJECTION=1`, so a test can cut links between them
//! (`POST /raft/faults`): an in-process fault-injecting transport, since network namespaces
//! need privileges CI may not have.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Server;

/// A cluster of `n` members with ids 1..=n.
pub struct Cluster {
    /// Holds every member's data directory.
    pub dir: tempfile::TempDir,
    ports: BTreeMap<u64, u16>,
    peer_ports: BTreeMap<u64, u16>,
    /// The running members by id (a killed one is absent until restarted).
    pub members: BTreeMap<u64, Server>,
    peers: String,
    extra: Vec<String>,
}

/// A free loopback port (released before the member binds it), taken below the kernel's
/// ephemeral range (32768 and up on Linux) where outgoing connections get theirs: a port freed
/// there can be taken by some client's connection before the member binds it. Unique within
/// this process.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = std::process::id() % 10_000;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let port = 20_000 + ((base + n) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Cluster {
    /// Starts `n` members and returns once each accepts connections.
    pub fn start(n: u64) -> Cluster {
        Cluster::start_some(n, n)
    }

    /// Names `total` members in every member's `--peers` but starts only the first `running`
    /// (the others join later through a membership change).
    pub fn start_some(total: u64, running: u64) -> Cluster {
        Cluster::start_with(total, running, &[])
    }

    /// [`Cluster::start_some`] with extra arguments for every member.
    pub fn start_with(total: u64, running: u64, extra: &[&str]) -> Cluster {
        let n = total;
        let ports: BTreeMap<u64, u16> = (1..=n).map(|id| (id, free_port())).collect();
        let peer_ports: BTreeMap<u64, u16> = (1..=n).map(|id| (id, free_port())).collect();
        let peers = peer_ports
            .iter()
            .map(|(id, port)| format!("{id}=127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            dir: tempfile::tempdir().expect("a temporary directory"),
            ports,
            peer_ports,
            members: BTreeMap::new(),
            peers,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for id in 1..=running {
            cluster.restart(id);
        }
        cluster
    }

    /// Starts member `id` (again) on its data directory and port.
    pub fn restart(&mut self, id: u64) {
        let data = self.dir.path().join(format!("member-{id}"));
        let listen = format!("127.0.0.1:{}", self.ports[&id]);
        let id_text = id.to_string();
        let peer_listen = format!("127.0.0.1:{}", self.peer_ports[&id]);
        let mut args = vec![
            "--node-id",
            id_text.as_str(),
            "--peers",
            self.peers.as_str(),
            "--peer-listen",
            peer_listen.as_str(),
        ];
        args.extend(self.extra.iter().map(String::as_str));
        let env = [("KORU_FAULT_INJECTION".to_string(), "1".to_string())];
        let server = Server::try_start_at(&data, &listen, &args, &env).unwrap_or_else(|e| {
            panic!(
                "member {id} exited with {} instead of starting; stderr:\n{}",
                e.status, e.stderr
            )
        });
        self.members.insert(id, server);
    }

    /// Stops member `id` with SIGTERM, as Kubernetes does, and waits for it to exit.
    pub fn stop(&mut self, id: u64) {
        if let Some(mut server) = self.members.remove(&id) {
            server.term();
        }
    }

    /// Kills member `id` with SIGKILL.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut server) = self.members.remove(&id) {
            server.kill();
        }
    }

    /// Base URL of member `id` (whether or not it runs).
    pub fn url(&self, id: u64) -> String {
        format!("http://127.0.0.1:{}", self.ports[&id])
    }

    /// Base URL of member `id`'s peer listener (the member routes, `/raft/*`).
    pub fn peer_url(&self, id: u64) -> String {
        format!("http://127.0.0.1:{}", self.peer_ports[&id])
    }

    /// The ids of the running members.
    pub fn running(&self) -> Vec<u64> {
        self.members.keys().copied().collect()
    }

    /// Member `id`'s `/raft/status`, or None if it does not answer.
    pub async fn status(&self, http: &reqwest::Client, id: u64) -> Option<Value> {
        let resp = http
            .get(format!("{}/raft/status", self.peer_url(id)))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    /// Waits until one of `among` says it leads and every other member of `among` follows it;
    /// returns the leader's id. Panics after `timeout`, with what each member said.
    pub async fn leader_among(
        &self,
        http: &reqwest::Client,
        among: &[u64],
        timeout: Duration,
    ) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let mut said = BTreeMap::new();
            for &id in among {
                said.insert(id, self.status(http, id).await);
            }
            let leaders: Vec<u64> = said
                .iter()
                .filter(|(_, s)| s.as_ref().is_some_and(|s| s["role"] == "leader"))
                .map(|(id, _)| *id)
                .collect();
            if let [leader] = leaders[..] {
                let agreed = said
                    .values()
                    .all(|s| s.as_ref().is_some_and(|s| s["leader"] == leader));
                if agreed {
                    return leader;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader among {among:?} within {timeout:?}: {said:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a leader all running members agree on, and that counts every running member
    /// among its voters (the group is formed, or has taken them in).
    pub async fn leader(&self, http: &reqwest::Client) -> u64 {
        let running = self.running();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let leader = self
                .leader_among(http, &running, Duration::from_secs(20))
                .await;
            let voters: Vec<u64> = self
                .status(http, leader)
                .await
                .and_then(|s| s["members"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter(|m| m["voter"] == true)
                .filter_map(|m| m["id"].as_u64())
                .collect();
            if running.iter().all(|id| voters.contains(id)) {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "members {running:?} are not all voters: {voters:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Cuts member `id` off from `others` in both directions (empty heals it).
    pub async fn block(&self, http: &reqwest::Client, id: u64, others: &[u64]) {
        let resp = http
            .post(format!("{}/raft/faults", self.peer_url(id)))
            .json(&serde_json::json!({ "blocked": others }))
            .send()
            .await
            .expect("POST /raft/faults");
        assert_eq!(resp.status(), 204, "{:?}", resp.text().await);
    }

    /// Every record in member `id`'s change feed (LSN, time, operations), read linearizably.
    pub async fn changes(&self, http: &reqwest::Client, id: u64) -> Vec<Value> {
        changes_at(http, &self.url(id)).await
    }

    /// Asks member `via` to make `ids` the voters (with their addresses, or by id alone when
    /// `by_id`: every member's --peers lists them all); returns the resulting status.
    pub async fn set_members(
        &self,
        http: &reqwest::Client,
        via: u64,
        ids: &[u64],
        by_id: bool,
    ) -> Value {
        let members: BTreeMap<String, String> = ids
            .iter()
            .map(|id| (id.to_string(), format!("127.0.0.1:{}", self.peer_ports[id])))
            .collect();
        let body = if by_id {
            serde_json::json!({ "voters": ids })
        } else {
            serde_json::json!({ "members": members })
        };
        let resp = http
            .post(format!("{}/raft/membership", self.peer_url(via)))
            .timeout(Duration::from_secs(150))
            .json(&body)
            .send()
            .await
            .expect("POST /raft/membership");
        let status = resp.status();
        let body: Value = resp.json().await.expect("a membership body");
        assert_eq!(status, 200, "membership change to {ids:?}: {body}");
        body
    }

    /// Every member's stderr, for failure messages.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|(id, s)| format!("--- member {id} ---\n{}", s.stderr()))
            .collect()
    }
}

/// Every record in the change feed of the server at `url` (LSN, time, operations).
pub async fn changes_at(http: &reqwest::Client, url: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut since = 0u64;
    loop {
        let body: Value = http
            .get(format!("{url}/api/v1/changes?since={since}&limit=1000"))
            .send()
            .await
            .expect("GET changes")
            .json()
            .await
            .expect("a changes body");
        let page = body["changes"]
            .as_array()
            .unwrap_or_else(|| panic!("no changes in {body}"))
            .clone();
        if page.is_empty() {
            return out;
        }
        since = body["next_since"].as_u64().expect("next_since");
        out.extend(page);
    }
}
