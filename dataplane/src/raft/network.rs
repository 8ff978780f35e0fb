//! The client side of the member-to-member RPCs: HTTP to the peer's `/raft/*` routes (served by
//! `http::raft` on its peer listener), JSON bodies but AppendEntries in MessagePack,
//! authenticated with the member credential when one is set. Every call goes to the address the
//! [`Directory`] gives the target member, never to an address a request or the Raft log names.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::Encoding;
use super::directory::Directory;
use super::{NodeId, TypeConfig};

/// The header naming the calling member, so a partitioned member can refuse it.
pub const MEMBER_HEADER: &str = "x-koru-member";

/// Members this one pretends it cannot reach, in either direction: injected network partitions
/// for tests (`POST /raft/faults`, only with `KORU_FAULT_INJECTION=1`).
pub type Blocked = Arc<RwLock<BTreeSet<NodeId>>>;

/// Opens connections to peers; one per target, reusing one HTTP client.
#[derive(Clone)]
pub struct Network {
    http: reqwest::Client,
    token: Option<String>,
    from: NodeId,
    blocked: Blocked,
    directory: Arc<Directory>,
}

impl Network {
    /// The id of the member that calls.
    pub fn id(&self) -> NodeId {
        self.from
    }

    /// Where the members are.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The client of member `from`, sending `token` (the member credential) to the members of
    /// `directory` only, never reaching those in `blocked`.
    pub fn new(
        from: NodeId,
        token: Option<String>,
        blocked: Blocked,
        directory: Directory,
    ) -> Network {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        Network {
            http,
            token,
            from,
            blocked,
            directory: Arc::new(directory),
        }
    }

    /// Member `target`'s configured address.
    fn address(&self, target: NodeId) -> Result<String, CallError> {
        self.directory.address(target).ok_or_else(|| {
            CallError::Unreachable(format!(
                "member {target} is not in --peers and there is no --peer-template"
            ))
        })
    }

    /// POSTs `body` to member `target` at `http://<its address><path>` as JSON and decodes the
    /// JSON reply.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        target: NodeId,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        self.call_as(Encoding::Json, target, path, body, timeout)
            .await
    }

    /// As [`call`](Self::call), in `encoding` both ways; a member that does not take it answers
    /// [`CallError::Status`] 415.
    pub async fn call_as<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        encoding: Encoding,
        target: NodeId,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let body = encoding
            .encode(body)
            .map_err(|e| CallError::Network(e.to_string()))?;
        let reply = self
            .post(target, path, encoding.content_type(), body, timeout)
            .await?;
        encoding
            .decode(&reply)
            .map_err(|e| CallError::Network(e.to_string()))
    }

    /// POSTs `body` of `content_type` to member `target`; the reply's body.
    async fn post(
        &self,
        target: NodeId,
        path: &str,
        content_type: &'static str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<bytes::Bytes, CallError> {
        let addr = self.address(target)?;
        if self.blocked.read().contains(&target) {
            // Like a dropped packet: the caller learns only after its timeout.
            tokio::time::sleep(timeout.min(Duration::from_millis(200))).await;
            return Err(CallError::Network(format!(
                "member {target} is partitioned away (injected fault)"
            )));
        }
        let mut req = self
            .http
            .post(format!("http://{addr}{path}"))
            .header(MEMBER_HEADER, self.from.to_string())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .timeout(timeout)
            .body(body);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                CallError::Unreachable(e.to_string())
            } else {
                CallError::Network(e.to_string())
            }
        })?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            if status == reqwest::StatusCode::SERVICE_UNAVAILABLE && text.contains(PARTITIONED_CODE)
            {
                // Turned away before anything ran, as if it had never arrived.
                return Err(CallError::Unreachable(text));
            }
            return Err(CallError::Status(status.as_u16(), text));
        }
        resp.bytes()
            .await
            .map_err(|e| CallError::Network(e.to_string()))
    }
}

impl Network {
    /// GETs `path` from member `target`'s peer listener and decodes the reply.
    pub async fn get<Resp: DeserializeOwned>(
        &self,
        target: NodeId,
        path: &str,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let addr = self.address(target)?;
        let mut req = self
            .http
            .get(format!("http://{addr}{path}"))
            .header(MEMBER_HEADER, self.from.to_string())
            .timeout(timeout);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(CallError::Status(status.as_u16(), text));
        }
        resp.json()
            .await
            .map_err(|e| CallError::Network(e.to_string()))
    }

    /// Where to copy records from: those of `given` (member addresses a log entry or snapshot
    /// names) that are configured member addresses, then every other configured member (each
    /// holds the cluster's records; an entry written before the peer listener named the old
    /// address).
    pub fn record_sources(&self, given: &[String]) -> Vec<String> {
        let mut sources: Vec<String> = given
            .iter()
            .filter(|a| self.directory.knows(a))
            .cloned()
            .collect();
        for other in self.directory.others(self.from) {
            if !sources.contains(&other) {
                sources.push(other);
            }
        }
        sources
    }

    /// The first of the other `peers` that answers `GET /raft/status` as a member of a formed
    /// group (it knows members), if any answers so within a second.
    pub async fn formed_peer(&self, peers: &super::Peers) -> Option<NodeId> {
        for (&id, addr) in peers.0.iter().filter(|(id, _)| **id != self.from) {
            let mut req = self
                .http
                .get(format!("http://{addr}/raft/status"))
                .header(MEMBER_HEADER, self.from.to_string())
                .timeout(Duration::from_secs(1));
            if let Some(token) = &self.token {
                req = req.bearer_auth(token);
            }
            let Ok(resp) = req.send().await else { continue };
            let Ok(status) = resp.json::<serde_json::Value>().await else {
                continue;
            };
            if status["members"].as_array().is_some_and(|m| !m.is_empty()) {
                return Some(id);
            }
        }
        None
    }

    /// Up to `limit` records after LSN `since` from the member at `addr` (`GET /raft/records`),
    /// checked against the SHA-256 it sends with them.
    pub async fn records(
        &self,
        addr: &str,
        since: u64,
        limit: usize,
    ) -> Result<RecordsPage, CallError> {
        if !self.directory.knows(addr) {
            return Err(CallError::Unreachable(format!(
                "{addr} is not a member's configured address; not asking it for records"
            )));
        }
        let mut req = self
            .http
            .get(format!(
                "http://{addr}/raft/records?since={since}&limit={limit}"
            ))
            .header(MEMBER_HEADER, self.from.to_string())
            .timeout(Duration::from_secs(60));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        let status = resp.status();
        let sent_sum = resp
            .headers()
            .get(RECORDS_SHA256_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .bytes()
            .await
            .map_err(|e| CallError::Network(e.to_string()))?;
        if !status.is_success() {
            return Err(CallError::Status(
                status.as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            ));
        }
        let sum = crate::backup::layout::sha256_hex(&body);
        if sent_sum.as_deref() != Some(sum.as_str()) {
            return Err(CallError::Network(format!(
                "records from {addr} fail their checksum (sent {sent_sum:?}, got {sum})"
            )));
        }
        serde_json::from_slice(&body).map_err(|e| CallError::Network(e.to_string()))
    }
}

impl Network {
    /// POSTs `body` (JSON; empty when None) to `path` on member `target`'s peer listener with
    /// the member credential (an admin request this member authorized, passed on to the
    /// leader); the status and body as they came.
    pub async fn forward(
        &self,
        target: NodeId,
        path: &str,
        body: Option<Vec<u8>>,
        author: Option<&str>,
        timeout: Duration,
    ) -> Result<(u16, bytes::Bytes), CallError> {
        let addr = self.address(target)?;
        let mut req = self
            .http
            .post(format!("http://{addr}{path}"))
            .header(MEMBER_HEADER, self.from.to_string())
            .timeout(timeout);
        // The author the forwarding member authenticated; the leader trusts it from a member.
        if let Some(value) =
            author.and_then(|a| reqwest::header::HeaderValue::from_bytes(a.as_bytes()).ok())
        {
            req = req.header(koru_dataplane_api::data::AUTHOR_HEADER, value);
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CallError::Network(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| CallError::Network(e.to_string()))?;
        Ok((status, body))
    }
}

/// A page of `GET /raft/records`: committed records, and where the sender's log segments start
/// among them.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RecordsPage {
    /// Records in LSN order.
    pub changes: Vec<crate::store::Change>,
    /// First LSNs of the sender's segments that start within the page.
    pub segment_starts: Vec<u64>,
    /// The `since` of the next page: the last LSN in this one (the request's `since` when it is
    /// empty). A page stops at its byte budget, so it may hold fewer records than asked for.
    #[serde(default)]
    pub next_since: u64,
}

/// The error code of a member that turns a peer away (an injected partition, or a hand-over
/// under way).
pub const PARTITIONED: &str = "partitioned";
const PARTITIONED_CODE: &str = "\"code\":\"partitioned\"";

/// The header carrying the SHA-256 (hex) of a `/raft/records` body.
pub const RECORDS_SHA256_HEADER: &str = "x-koru-sha256";

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Nothing listens there (the peer is down).
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// The connection broke or timed out, or the reply was not understood.
    #[error("network error: {0}")]
    Network(String),
    /// The peer answered with an error status.
    #[error("peer answered {0}: {1}")]
    Status(u16, String),
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Connection {
        // The membership's address is not used: calls go where the directory says.
        let _ = node;
        Connection {
            network: self.clone(),
            target,
            msgpack: true,
        }
    }
}

/// RPCs to one peer.
pub struct Connection {
    network: Network,
    target: NodeId,
    /// AppendEntries go as MessagePack; false once the peer answered 415 (a member of a version
    /// that takes JSON only), for the rest of this connection.
    msgpack: bool,
}

impl Connection {
    async fn rpc<Req, Resp, E>(
        &mut self,
        path: &str,
        body: &Req,
        option: &RPCOption,
        msgpack: bool,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let (target, ttl) = (self.target, option.hard_ttl());
        let encoding = if msgpack && self.msgpack {
            Encoding::MessagePack
        } else {
            Encoding::Json
        };
        let mut reply = self
            .network
            .call_as(encoding, target, path, body, ttl)
            .await;
        if encoding == Encoding::MessagePack && matches!(reply, Err(CallError::Status(415, _))) {
            tracing::info!(
                target,
                "member does not take MessagePack RPCs; sending it JSON"
            );
            self.msgpack = false;
            reply = self.network.call(target, path, body, ttl).await;
        }
        let reply: Result<Resp, RaftError<NodeId, E>> = reply.map_err(|e| match e {
            CallError::Unreachable(_) => RPCError::Unreachable(Unreachable::new(&e)),
            _ => RPCError::Network(NetworkError::new(&e)),
        })?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc("/raft/append", &rpc, &option, true).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc("/raft/snapshot", &rpc, &option, false).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc("/raft/vote", &rpc, &option, false).await
    }
}
