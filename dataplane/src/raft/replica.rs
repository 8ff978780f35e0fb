//! The replicated member the API talks to: writes go through Raft (forwarded to the leader from a
//! follower), reads wait for a read index so they are linearizable unless the client accepts
//! bounded staleness.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use parking_lot::Mutex;
use serde::Serialize;
use thiserror::Error;

use super::log::LogStore;
use super::network::{Blocked, CallError, Network};
use super::state::StateMachine;
use super::vote_hold::VoteHold;
use super::{Applied, Command, NodeId, Peers, Request, TypeConfig};
use crate::store::{Committed, Store, WriteOp};

mod formation;
mod handover;
mod membership;
mod peers;
mod reads;
mod writes;

use writes::batch_writes;

/// How long a request waits for a leader (an election in progress) before giving up.
const LEADER_WAIT: Duration = Duration::from_secs(5);
/// How long a forwarded write or read index may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a leader waits for a majority to commit a write or confirm a read index; past it
/// the leader is probably cut off from the majority.
const QUORUM_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the first member waits for its peers to catch up before it forms the group with
/// those that have (the others join by a later membership change).
const FORM_WAIT: Duration = Duration::from_secs(5);
/// How long a new member may take to catch up before it is made a voter.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Entries a new member may still lack when it is made a voter.
const CATCH_UP_SLACK: u64 = 100;
/// How long adding a member (catching it up) and changing the voters may take.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(120);

/// How long followers honour a leader they last heard from (openraft's lease: the longest
/// election timeout); a hand-over waits this out before the chosen member stands.
const LEASE: Duration = Duration::from_millis(1000);
/// How long a hand-over may take before the leader gives up and carries on leading.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(10);

/// Most writes proposed as one entry.
const BATCH_WRITES: usize = 512;
/// Write entries proposed but not yet committed, at most. One is fastest with openraft 0.9,
/// whose core appends and fsyncs each proposal before taking the next: a second entry in flight
/// only splits the batch (`koru-bench raft`: 3,506 PUTs/s with two, 4,776 with one).
const WRITES_IN_FLIGHT: usize = 1;
/// Most bytes of writes (roughly) proposed as one entry.
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// A write waiting for the batcher, and where its answer goes.
type QueuedWrite = (
    Command,
    tokio::sync::oneshot::Sender<Result<Applied, ReplicaError>>,
);

/// Why a replicated write or read failed.
#[derive(Debug, Clone, Error)]
pub enum ReplicaError {
    /// No leader is known (an election is under way, or this member is cut off from a majority).
    #[error(
        "no leader is reachable from this member right now (election under way or no majority); retry shortly"
    )]
    NoLeader,
    /// The store's checks refused the write (the same on every member).
    #[error("{0}")]
    Refused(String),
    /// The write reached a leader but its outcome is unknown (leadership changed or the
    /// connection broke before the reply): it may or may not be applied.
    #[error("the write's outcome is unknown (it may have been applied): {0}")]
    Unknown(String),
    /// This member is shutting down or its Raft task stopped.
    #[error("this member's replication stopped: {0}")]
    Stopped(String),
    /// Starting replication failed.
    #[error("cannot start replication: {0}")]
    Setup(String),
    /// This member installed a snapshot and is still copying its records.
    #[error(
        "this member is still copying the cluster's records (it holds up to LSN {held} of {target}); retry shortly or read from another member"
    )]
    CatchingUp {
        /// The last LSN it holds.
        held: u64,
        /// The LSN it is copying up to.
        target: u64,
    },
    /// This member came back with an empty data directory into a formed group and has not
    /// been caught up yet: it does not vote (see [`Replica::votes_held`]).
    #[error(
        "this member lost its data directory and is being caught up by the leader; it does not vote until then"
    )]
    HoldingVote,
    /// A membership request named an address that is not where that member is configured to
    /// be (`--peers`, `--peer-template`): nothing was sent there.
    #[error("{0}")]
    ForeignAddress(String),
    /// The write would give a second live key a value of a unique index; nothing was written.
    #[error(transparent)]
    UniqueViolation(crate::indexes::def::UniqueViolation),
    /// The leader refused a forwarded write before proposing it (its rate limit or the storage
    /// quota): its status and error body, passed on to the client.
    #[error("the leader refused the write ({status}): {body}")]
    LeaderRefused {
        /// The leader's HTTP status.
        status: u16,
        /// The leader's error body.
        body: String,
    },
}

/// What a follower last heard from its leader, for bounded-staleness reads.
#[derive(Debug, Clone, Copy)]
struct Heard {
    at: Instant,
    leader_commit: u64,
}

/// A member of a replicated cluster.
pub struct Replica {
    id: NodeId,
    raft: Raft<TypeConfig>,
    peers: Peers,
    network: Network,
    store: Store,
    heard: Mutex<Option<Heard>>,
    blocked: Blocked,
    faults_enabled: bool,
    /// The first member has not proposed the base yet: writes wait.
    forming: AtomicBool,
    /// Followers redirect writes to the leader instead of forwarding them.
    redirect_writes: AtomicBool,
    /// The LSN the store is being caught up to after a snapshot was installed (0: none); reads
    /// wait for it.
    catch_up: Arc<AtomicU64>,
    /// Writes on their way to [`batch_writes`].
    writes: tokio::sync::mpsc::UnboundedSender<QueuedWrite>,
    /// This leader is handing leadership over: writes wait for the next leader.
    stepping_down: AtomicBool,
    /// Write proposals under way on this member (see [`Replica::begin_proposal`]).
    proposing: AtomicUsize,
    /// Whether this member refuses to vote (see [`Replica::votes_held`]).
    vote_hold: VoteHold,
    /// Where clients reach this member (`host:port` of its API), told to followers that
    /// redirect writes here.
    public_addr: Mutex<Option<String>>,
    /// The leader's client address as last learned: (leader id, term, address).
    leader_public: Mutex<Option<(NodeId, u64, String)>>,
}

/// One write proposal under way; counted out when dropped.
struct Proposal<'a>(&'a AtomicUsize);

impl Drop for Proposal<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub use koru_dataplane_api::raft::{MemberStatus, ReplicaStatus};

/// The Raft settings of every member (heartbeats, election timeouts within the [`LEASE`], and
/// a snapshot every `snapshot_entries` applied entries); the simulated cluster runs them too.
pub fn raft_config(snapshot_entries: u64) -> Result<Config, ReplicaError> {
    Config {
        cluster_name: "koru".into(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: LEASE.as_millis() as u64,
        // Every member snapshots on its own; the entries a snapshot covers (but the last
        // tenth, for followers only slightly behind) are then dropped from its log.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_entries),
        max_in_snapshot_log_to_keep: snapshot_entries / 10,
        purge_batch_size: (snapshot_entries / 10).max(1),
        ..Config::default()
    }
    .validate()
    .map_err(|e| ReplicaError::Setup(e.to_string()))
}

/// Whether member `id` may change its group's membership: only while it is a voter of its
/// own latest membership. A leader that has just removed itself leads on for a while, and
/// openraft 0.9 panics if it is asked to change the membership then, which stops that member's
/// Raft for good (found by `tests/raft_sim.rs`).
pub fn may_change_membership(raft: &Raft<TypeConfig>, id: NodeId) -> bool {
    raft.metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .any(|voter| voter == id)
}

impl Replica {
    /// Starts this member's Raft node over `store` (Raft state in `<data_dir>/raft`).
    ///
    /// A new group is formed by its lowest id alone: it initialises a group of itself, becomes
    /// its leader, proposes the [`Base`](super::Base) when its store already holds records, and
    /// only then adds the other `peers`. Nothing can be written before the base, and no member
    /// that lacks it can lead.
    pub async fn start(
        store: Store,
        config: &crate::config::ReplicationConfig,
        data_dir: &Path,
        token: Option<String>,
    ) -> Result<Arc<Replica>, ReplicaError> {
        let (id, peers, template) = (
            config.node_id,
            config.peers.clone(),
            config.template.clone(),
        );
        if !peers.0.contains_key(&id) {
            return Err(ReplicaError::Setup(format!(
                "--node-id {id} is not among --peers {peers}"
            )));
        }
        let raft_dir = data_dir.join("raft");
        let log = LogStore::open(
            Arc::clone(&store.config().storage),
            &raft_dir,
            config.log_fsync,
        )
        .map_err(|e| ReplicaError::Setup(format!("opening the Raft log: {e}")))?;
        let blocked = Blocked::default();
        let directory = super::directory::Directory::new(peers.clone(), template);
        let network = Network::new(id, token, Arc::clone(&blocked), directory);
        let catch_up = Arc::new(AtomicU64::new(0));
        let state = StateMachine::open(
            store.clone(),
            log.clone(),
            network.clone(),
            &raft_dir,
            Arc::clone(&catch_up),
        )
        .map_err(ReplicaError::Setup)?;
        let pending_base = state.pending_base();
        let config = raft_config(config.snapshot_entries)?;
        let raft = Raft::new(id, Arc::new(config), network.clone(), log, state)
            .await
            .map_err(|e| ReplicaError::Setup(e.to_string()))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ReplicaError::Setup(e.to_string()))?;
        let first = peers.0.keys().next() == Some(&id);
        // A member without a log or a vote whose peers already form a group is new to it, or
        // its data directory was replaced and it forgot what it acknowledged and whom it voted
        // for; it must not help elect a leader that lacks those entries.
        let rejoining = match initialized {
            true => None,
            false => network.formed_peer(&peers).await,
        };
        if let Some(peer) = rejoining {
            tracing::warn!(
                peer,
                "a peer already belongs to the formed group: waiting for its leader to catch this \
                 member up, without voting until then"
            );
        }
        if !initialized && first {
            if let Some(peer) = rejoining {
                // The group exists and this member is still in it: its data directory was
                // replaced. A group of its own would be a second database under the same name.
                tracing::warn!(
                    peer,
                    "a peer already belongs to the formed group: not forming a new group"
                );
            } else {
                let me = BTreeMap::from([(id, BasicNode::new(&peers.0[&id]))]);
                // Refused if this member already received entries from an elected leader.
                if let Err(e) = raft.initialize(me).await {
                    tracing::info!(error = %e, "not initialising the Raft group");
                }
            }
        }
        let (writes, queued) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(batch_writes(raft.clone(), queued));
        tracing::info!(id, %peers, "replication started");
        let replica = Arc::new(Replica {
            id,
            raft,
            peers,
            network,
            store,
            heard: Mutex::new(None),
            blocked,
            faults_enabled: std::env::var("KORU_FAULT_INJECTION").is_ok_and(|v| v == "1"),
            forming: AtomicBool::new(first),
            catch_up,
            writes,
            stepping_down: AtomicBool::new(false),
            proposing: AtomicUsize::new(0),
            redirect_writes: AtomicBool::new(false),
            vote_hold: VoteHold::new(rejoining.is_some()),
            public_addr: Mutex::new(None),
            leader_public: Mutex::new(None),
        });
        if first {
            tokio::spawn(Arc::clone(&replica).form(pending_base));
        }
        Ok(replica)
    }
}

impl Replica {
    /// Makes followers answer writes with a redirect to the leader (`--follower-writes redirect`).
    pub fn set_redirect_writes(&self, redirect: bool) {
        self.redirect_writes.store(redirect, Ordering::SeqCst);
    }

    /// Where to send a client's write instead of taking it: the leader's client address, when
    /// writes are redirected and another member leads (and told this member where clients
    /// reach it).
    pub async fn redirect_target(&self) -> Option<String> {
        if !self.redirect_writes.load(Ordering::SeqCst) {
            return None;
        }
        self.leader_public_addr().await
    }

    /// The leader's id when it is another member (None when this member leads or no leader is
    /// known): where leader-only admin requests are forwarded.
    pub fn other_leader(&self) -> Option<NodeId> {
        let leader = self.raft.metrics().borrow().current_leader?;
        (leader != self.id).then_some(leader)
    }

    /// Sends a leader-only admin request (`POST path`, with `body` if any), which the caller
    /// has authorized, on to the leader's peer listener with the member credential; None when
    /// this member leads (or no leader is known) and should answer.
    pub async fn forward_admin(
        &self,
        path: &str,
        body: Option<Vec<u8>>,
        author: Option<&str>,
    ) -> Option<Result<(u16, bytes::Bytes), ReplicaError>> {
        let leader = self.other_leader()?;
        Some(
            self.network
                .forward(leader, path, body, author, MEMBERSHIP_TIMEOUT)
                .await
                .map_err(|e| ReplicaError::Stopped(format!("forwarding to the leader: {e}"))),
        )
    }

    /// The openraft node, for the RPC handlers.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Notes an AppendEntries from the leader (for bounded-staleness reads, and to release a
    /// held vote).
    pub fn heard_from_leader(&self, leader_commit: Option<u64>) {
        let commit = leader_commit.unwrap_or(0);
        *self.heard.lock() = Some(Heard {
            at: Instant::now(),
            leader_commit: commit,
        });
        self.vote_hold.heard_from_leader(commit);
    }

    /// Whether this member refuses to vote: it came back without a log into a formed group and
    /// its log does not yet reach what the leader had committed when it first heard from it.
    /// Its vote would otherwise let a member that lacks acknowledged writes lead (a wiped
    /// voter is a lost copy). Held votes cost availability only while the member catches up.
    pub fn votes_held(&self) -> bool {
        let last = self.raft.metrics().borrow().last_log_index.unwrap_or(0);
        self.vote_hold.held(last)
    }

    /// The leader's id, waiting up to [`LEADER_WAIT`] for one to be elected.
    async fn leader(&self) -> Result<NodeId, ReplicaError> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            if let Some(leader) = leader {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                return Err(ReplicaError::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the Raft node.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

impl crate::backup::archiver::Role for Replica {
    fn uploads(&self) -> bool {
        !self.forming.load(Ordering::SeqCst)
            && self.raft.metrics().borrow().current_leader == Some(self.id)
    }

    fn seal(&self) -> futures::future::BoxFuture<'_, Result<u64, crate::backup::BackupError>> {
        Box::pin(async move {
            self.propose(Request::Seal).await.map_err(|e| {
                crate::backup::BackupError::Log(crate::StoreError::InvalidRequest(format!(
                    "sealing through the cluster's log: {e}"
                )))
            })?;
            // Applied here before the proposal returns: everything before the seal is sealed.
            Ok(self.store.last_applied().0)
        })
    }
}

/// The body of `POST /raft/membership`: the voters wanted, either with their addresses or as
/// ids whose addresses the members know (see [`Replica::address_of`]).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct MembersBody {
    /// Every voter of the new configuration, id → address.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub members: BTreeMap<NodeId, String>,
    /// Or every voter by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voters: Vec<NodeId>,
}

/// The answer to a forwarded write (`/raft/write`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub enum ForwardReply {
    /// Committed and applied on the leader.
    Applied(Applied),
    /// The receiver was not the leader; nothing was proposed.
    NotLeader,
    /// It failed; `unknown` when it may still be applied.
    Failed {
        /// Whether the outcome is unknown rather than a plain failure.
        unknown: bool,
        /// What went wrong.
        message: String,
    },
}
