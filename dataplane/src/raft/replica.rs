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
use super::{Applied, Command, NodeId, Peers, Request, TypeConfig};
use crate::store::{Committed, Store, WriteOp};

mod peers;

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

/// [`Replica::vote_hold`]: the member votes.
const VOTES_FREE: u64 = 0;
/// [`Replica::vote_hold`]: the member holds its vote until a leader reaches it.
const VOTES_HELD_UNTIL_HEARD: u64 = u64::MAX;

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
    /// Whether this member refuses to vote: [`VOTES_FREE`], [`VOTES_HELD_UNTIL_HEARD`], or the
    /// log index it must hold first (see [`Replica::votes_held`]).
    vote_hold: AtomicU64,
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
        let log = LogStore::open(&raft_dir, config.log_fsync)
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
        let config = Config {
            cluster_name: "koru".into(),
            heartbeat_interval: 100,
            election_timeout_min: 500,
            election_timeout_max: LEASE.as_millis() as u64,
            // Every member snapshots on its own; the entries a snapshot covers (but the last
            // tenth, for followers only slightly behind) are then dropped from its log.
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_entries),
            max_in_snapshot_log_to_keep: config.snapshot_entries / 10,
            purge_batch_size: (config.snapshot_entries / 10).max(1),
            ..Config::default()
        }
        .validate()
        .map_err(|e| ReplicaError::Setup(e.to_string()))?;
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
            vote_hold: AtomicU64::new(match rejoining {
                Some(_) => VOTES_HELD_UNTIL_HEARD,
                None => VOTES_FREE,
            }),
            public_addr: Mutex::new(None),
            leader_public: Mutex::new(None),
        });
        if first {
            tokio::spawn(Arc::clone(&replica).form(pending_base));
        }
        Ok(replica)
    }

    /// The first member's part in forming the group: the base, then the other peers (see
    /// [`Replica::start`]). Resumes after a restart; writes are refused until the base is in.
    async fn form(self: Arc<Self>, base: Option<(u64, i64)>) {
        let mut wait = Duration::from_millis(50);
        loop {
            match self.form_step(base).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "forming the cluster; retrying"),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
        self.forming.store(false, Ordering::SeqCst);
        tracing::info!("the cluster is formed");
    }

    /// One attempt: Ok(true) once formed, Ok(false) to wait (not leader yet).
    async fn form_step(&self, base: Option<(u64, i64)>) -> Result<bool, ReplicaError> {
        let metrics = self.raft.metrics().borrow().clone();
        let voters: Vec<NodeId> = metrics.membership_config.membership().voter_ids().collect();
        if voters.is_empty() {
            // The initial membership is not in effect yet.
            return Ok(false);
        }
        if voters != [self.id] {
            // Already formed (or formed by an earlier run).
            return Ok(true);
        }
        if metrics.current_leader != Some(self.id) {
            return Ok(false);
        }
        // Proposed once, even for an empty store: a member holding other records then refuses
        // at once.
        if self.forming.load(Ordering::SeqCst) {
            let (lsn, last_micros) = base.unwrap_or((0, 0));
            let request = super::Request::Base(super::Base {
                lsn,
                last_micros,
                source: self.peers.0[&self.id].clone(),
            });
            self.propose(request).await?;
            tracing::info!(records = lsn, "the cluster's base is this member's records");
            self.forming.store(false, Ordering::SeqCst);
        }
        if self.peers.0.len() == 1 {
            return Ok(true);
        }
        // Every peer joins as a learner; those that catch up within FORM_WAIT become voters
        // together, and the rest are left to a later membership change (the operator's).
        let known: Vec<NodeId> = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect();
        for (id, addr) in self.peers.0.iter().filter(|(id, _)| **id != self.id) {
            if !known.contains(id) {
                self.raft
                    .add_learner(*id, BasicNode::new(addr), false)
                    .await
                    .map_err(membership_error)?;
            }
        }
        let deadline = Instant::now() + FORM_WAIT;
        let ready = loop {
            let m = self.raft.metrics().borrow().clone();
            let last = m.last_log_index.unwrap_or(0);
            let caught_up: BTreeMap<NodeId, String> = self
                .peers
                .0
                .iter()
                .filter(|(id, _)| {
                    **id == self.id
                        || m.replication
                            .as_ref()
                            .and_then(|r| r.get(id).copied().flatten())
                            .is_some_and(|l| l.index + CATCH_UP_SLACK >= last)
                })
                .map(|(id, a)| (*id, a.clone()))
                .collect();
            if caught_up.len() == self.peers.0.len() || Instant::now() >= deadline {
                break caught_up;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if ready.len() == 1 {
            return Ok(false);
        }
        self.change_members(ready).await?;
        Ok(true)
    }

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
    ) -> Option<Result<(u16, bytes::Bytes), ReplicaError>> {
        let leader = self.other_leader()?;
        Some(
            self.network
                .forward(leader, path, body, MEMBERSHIP_TIMEOUT)
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
        // What the leader had committed when it first reached this member covers everything
        // the member could have acknowledged before it lost its data directory.
        let _ = self.vote_hold.compare_exchange(
            VOTES_HELD_UNTIL_HEARD,
            commit,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// Whether this member refuses to vote: it came back without a log into a formed group and
    /// its log does not yet reach what the leader had committed when it first heard from it.
    /// Its vote would otherwise let a member that lacks acknowledged writes lead (a wiped
    /// voter is a lost copy). Held votes cost availability only while the member catches up.
    pub fn votes_held(&self) -> bool {
        let hold = self.vote_hold.load(Ordering::SeqCst);
        if hold == VOTES_FREE || hold == VOTES_HELD_UNTIL_HEARD {
            return hold != VOTES_FREE;
        }
        if self.raft.metrics().borrow().last_log_index.unwrap_or(0) < hold {
            return true;
        }
        if self.vote_hold.swap(VOTES_FREE, Ordering::SeqCst) != VOTES_FREE {
            tracing::info!(
                index = hold,
                "caught up with the group: this member votes again"
            );
        }
        false
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

    /// Writes `ops` as one record through Raft, from any member.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<Committed, ReplicaError> {
        let cmd = Command::new(&ops, crate::clock::now_micros());
        self.write_command(cmd)
            .await?
            .into_committed()
            .map_err(ReplicaError::Refused)
    }

    /// Commits `cmd` through Raft from any member (forwarded to the leader from a follower);
    /// what applying it produced.
    async fn write_command(&self, cmd: Command) -> Result<Applied, ReplicaError> {
        let deadline = Instant::now() + LEADER_WAIT;
        let applied = loop {
            let leader = self.leader().await?;
            if leader == self.id {
                let Some(_proposal) = self.begin_proposal() else {
                    if Instant::now() >= deadline {
                        return Err(ReplicaError::NoLeader);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                break self.propose_write(cmd).await?;
            }
            match self
                .network
                .call::<_, ForwardReply>(leader, "/raft/write", &cmd, FORWARD_TIMEOUT)
                .await
            {
                Ok(ForwardReply::Applied(applied)) => break applied,
                // It was not the leader when the write arrived, so nothing was proposed.
                Ok(ForwardReply::NotLeader) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(ForwardReply::Failed { unknown, message }) => {
                    return Err(if unknown {
                        ReplicaError::Unknown(message)
                    } else {
                        ReplicaError::NoLeader
                    });
                }
                // Never delivered: safe to try again once a leader is known.
                Err(CallError::Unreachable(_)) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // The leader's rate limit or quota turned it away before proposing it.
                Err(CallError::Status(status @ (429 | 507), body)) => {
                    return Err(ReplicaError::LeaderRefused { status, body });
                }
                Err(e) => return Err(ReplicaError::Unknown(e.to_string())),
            }
        };
        Ok(applied)
    }

    /// Proposes the write `cmd` on this member, which believes it leads, together with the
    /// writes that arrive meanwhile (see [`batch_writes`]).
    pub async fn propose_write(&self, cmd: Command) -> Result<Applied, ReplicaError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writes
            .send((cmd, reply))
            .map_err(|_| ReplicaError::Stopped("the write batcher stopped".into()))?;
        answer
            .await
            .map_err(|_| ReplicaError::Stopped("the write batcher stopped".into()))?
    }

    /// Proposes `cmd` on this member, which believes it leads.
    pub async fn propose(&self, cmd: Request) -> Result<Applied, ReplicaError> {
        propose_on(&self.raft, cmd).await
    }
}

/// Proposes queued writes in batches, each entry taking every write queued while earlier ones
/// were being committed (group commit), so concurrent writes share one Raft log append, one
/// replication round and one fsync per member instead of one each. Up to [`WRITES_IN_FLIGHT`]
/// entries are in flight at once.
async fn batch_writes(
    raft: Raft<TypeConfig>,
    mut queued: tokio::sync::mpsc::UnboundedReceiver<QueuedWrite>,
) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(WRITES_IN_FLIGHT));
    while let Some(first) = queued.recv().await {
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut bytes = first.0.size();
        let mut batch = vec![first];
        while batch.len() < BATCH_WRITES && bytes < BATCH_BYTES {
            let Ok(next) = queued.try_recv() else { break };
            bytes += next.0.size();
            batch.push(next);
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            propose_batch(&raft, batch).await;
            drop(permit);
        });
    }
}

/// Proposes `batch` as one entry and answers each of its writers.
async fn propose_batch(raft: &Raft<TypeConfig>, batch: Vec<QueuedWrite>) {
    let (mut cmds, replies): (Vec<Command>, Vec<_>) = batch.into_iter().unzip();
    let request = if cmds.len() == 1 {
        Request::Write(cmds.remove(0))
    } else {
        Request::Writes(cmds)
    };
    let answers = match propose_on(raft, request).await {
        Ok(Applied::Batch(answers)) if answers.len() == replies.len() => {
            answers.into_iter().map(Ok).collect()
        }
        Ok(Applied::Batch(answers)) => {
            let e = ReplicaError::Stopped(format!(
                "{} writes were proposed but {} applied",
                replies.len(),
                answers.len()
            ));
            vec![Err(e); replies.len()]
        }
        Ok(applied) => vec![Ok(applied)],
        Err(e) => vec![Err(e); replies.len()],
    };
    for (reply, answer) in replies.into_iter().zip(answers) {
        // The writer may have given up waiting; nothing to tell then.
        let _ = reply.send(answer);
    }
}

/// Proposes `cmd` through `raft`, whose member believes it leads.
async fn propose_on(raft: &Raft<TypeConfig>, cmd: Request) -> Result<Applied, ReplicaError> {
    let Ok(written) = tokio::time::timeout(QUORUM_TIMEOUT, raft.client_write(cmd)).await else {
        return Err(ReplicaError::Unknown(format!(
            "no majority committed it within {} s",
            QUORUM_TIMEOUT.as_secs()
        )));
    };
    match written {
        Ok(resp) => Ok(resp.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Err(ReplicaError::Unknown(format!(
                "leadership moved to {:?} while the write was in flight",
                f.leader_id
            )))
        }
        Err(RaftError::APIError(e)) => Err(ReplicaError::Refused(e.to_string())),
        Err(RaftError::Fatal(e)) => Err(ReplicaError::Stopped(e.to_string())),
    }
}

impl Replica {
    /// The answer to a forwarded write.
    pub async fn forwarded_write(&self, cmd: Command) -> ForwardReply {
        if self.raft.metrics().borrow().current_leader != Some(self.id) {
            return ForwardReply::NotLeader;
        }
        let Some(_proposal) = self.begin_proposal() else {
            return ForwardReply::NotLeader;
        };
        match self.propose_write(cmd).await {
            Ok(applied) => ForwardReply::Applied(applied),
            Err(e) => ForwardReply::Failed {
                unknown: matches!(e, ReplicaError::Unknown(_)),
                message: e.to_string(),
            },
        }
    }

    /// The leader's read index: the log index a linearizable read must see applied.
    pub async fn read_index(&self) -> Result<u64, ReplicaError> {
        let Ok(read) = tokio::time::timeout(QUORUM_TIMEOUT, self.raft.get_read_log_id()).await
        else {
            return Err(ReplicaError::NoLeader);
        };
        match read {
            Ok((read, _)) => Ok(read.map_or(0, |l| l.index)),
            Err(RaftError::APIError(_)) => Err(ReplicaError::NoLeader),
            Err(RaftError::Fatal(e)) => Err(ReplicaError::Stopped(e.to_string())),
        }
    }

    /// Waits until this member's store reflects every write acknowledged before the call
    /// (linearizable), or, with `max_staleness`, every write the leader had committed at most
    /// that long ago as seen by this member.
    pub async fn read_barrier(&self, max_staleness: Option<Duration>) -> Result<(), ReplicaError> {
        let index = match max_staleness {
            Some(bound) => match self.recent_commit(bound) {
                Some(index) => index,
                None => self.linearizable_index().await?,
            },
            None => self.linearizable_index().await?,
        };
        self.raft
            .wait(Some(FORWARD_TIMEOUT))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map_err(|e| ReplicaError::Stopped(e.to_string()))?;
        self.store_caught_up(FORWARD_TIMEOUT).await
    }

    /// Waits until the store holds the records of any snapshot this member installed: until
    /// then openraft counts entries as applied that the store is still copying.
    async fn store_caught_up(&self, limit: Duration) -> Result<(), ReplicaError> {
        let deadline = Instant::now() + limit;
        loop {
            let target = self.catch_up.load(Ordering::SeqCst);
            let (held, _) = self.store.last_applied();
            if held >= target {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ReplicaError::CatchingUp { held, target });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The commit index this member heard from its leader within `bound`, if it did; the
    /// leader itself always qualifies with its own commit index.
    fn recent_commit(&self, bound: Duration) -> Option<u64> {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader == Some(self.id) {
            return metrics
                .millis_since_quorum_ack
                .filter(|&ms| Duration::from_millis(ms) <= bound)
                .map(|_| metrics.last_applied.map_or(0, |l| l.index));
        }
        let heard = (*self.heard.lock())?;
        (heard.at.elapsed() <= bound).then_some(heard.leader_commit)
    }

    async fn linearizable_index(&self) -> Result<u64, ReplicaError> {
        loop {
            let leader = self.leader().await?;
            if leader == self.id {
                return self.read_index().await;
            }
            match self
                .network
                .call::<_, Option<u64>>(leader, "/raft/read-index", &(), FORWARD_TIMEOUT)
                .await
            {
                Ok(Some(index)) => return Ok(index),
                Ok(None) | Err(CallError::Unreachable(_)) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    return Err(ReplicaError::Stopped(format!(
                        "asking the leader for a read index: {e}"
                    )));
                }
            }
        }
    }

    /// This member's view of the cluster.
    pub fn status(&self) -> ReplicaStatus {
        let m = self.raft.metrics().borrow().clone();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let last = m.last_log_index.unwrap_or(0);
        let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
        let members = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| {
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id))
                    .map(|l| l.map_or(0, |l| l.index));
                MemberStatus {
                    id: *id,
                    addr: self.address_of(*id).unwrap_or_else(|| node.addr.clone()),
                    voter: voters.contains(id),
                    matched_index: matched,
                    lag: matched.map(|i| last.saturating_sub(i)),
                }
            })
            .collect();
        ReplicaStatus {
            id: self.id,
            role: role.to_owned(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: last,
            applied_index: m.last_applied.map_or(0, |l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            votes_held: self.votes_held(),
            public_addr: self.public_addr.lock().clone(),
            members,
        }
    }

    /// Whether this member is a healthy part of the group: it knows a leader it can follow.
    pub fn is_ready(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.running_state.is_ok()
            && m.current_leader.is_some()
            && self.store.last_applied().0 >= self.catch_up.load(Ordering::SeqCst)
    }

    /// Makes `members` the cluster's voters (id → address), from any member: new members are
    /// first added as learners and caught up, then the voter set is replaced in one joint
    /// consensus change, so a majority of both the old and the new set agrees at every step.
    pub async fn change_members(
        &self,
        members: BTreeMap<NodeId, String>,
    ) -> Result<ReplicaStatus, ReplicaError> {
        if members.is_empty() {
            return Err(ReplicaError::Refused(
                "a cluster needs at least one member".into(),
            ));
        }
        self.check_addresses(&members)?;
        let leader = self.leader().await?;
        if leader != self.id {
            return self
                .network
                .call(
                    leader,
                    "/raft/membership",
                    &MembersBody {
                        members,
                        voters: Vec::new(),
                    },
                    MEMBERSHIP_TIMEOUT,
                )
                .await
                .map_err(|e| ReplicaError::Unknown(format!("forwarding to the leader: {e}")));
        }
        let known: Vec<NodeId> = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect();
        for (id, addr) in &members {
            if !known.contains(id) {
                tracing::info!(id, %addr, "adding a learner");
                let added = tokio::time::timeout(
                    MEMBERSHIP_TIMEOUT,
                    self.raft.add_learner(*id, BasicNode::new(addr), true),
                )
                .await
                .map_err(|_| {
                    ReplicaError::Unknown(format!("member {id} did not catch up in time"))
                })?;
                added.map_err(membership_error)?;
            }
        }
        let voters: std::collections::BTreeSet<NodeId> = members.keys().copied().collect();
        let current: Vec<NodeId> = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        for id in voters.iter().filter(|id| !current.contains(id)) {
            self.caught_up(*id).await?;
        }
        tracing::info!(?voters, "changing the voters");
        tokio::time::timeout(
            MEMBERSHIP_TIMEOUT,
            self.raft.change_membership(voters, false),
        )
        .await
        .map_err(|_| ReplicaError::Unknown("the membership change did not commit in time".into()))?
        .map_err(membership_error)?;
        Ok(self.status())
    }

    /// The peer address of member `id`: from --peers or --peer-template (see
    /// [`Directory`](super::directory::Directory)).
    pub fn address_of(&self, id: NodeId) -> Option<String> {
        self.network.directory().address(id)
    }

    /// Waits until member `id` holds the leader's log (within [`CATCH_UP_SLACK`] entries), so it
    /// votes only once it can: a member that cannot be reached is never made a voter.
    async fn caught_up(&self, id: NodeId) -> Result<(), ReplicaError> {
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        loop {
            let m = self.raft.metrics().borrow().clone();
            let last = m.last_log_index.unwrap_or(0);
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).copied().flatten())
                .map(|l| l.index);
            if matched.is_some_and(|i| i + CATCH_UP_SLACK >= last) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ReplicaError::Unknown(format!(
                    "member {id} has not caught up with the leader (it holds {}, the leader {last}); is it running?",
                    matched.map_or_else(|| "nothing".to_string(), |i| format!("up to entry {i}"))
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether calls from member `from` are refused (an injected partition).
    pub fn is_blocked(&self, from: NodeId) -> bool {
        self.blocked.read().contains(&from)
    }

    /// Counts a write proposal in, unless this member is forming the group or handing
    /// leadership over (then None). A hand-over waits until none is left: the count goes up
    /// before the flags are read, and the hand-over sets its flag before reading the count, so
    /// no proposal slips past both.
    fn begin_proposal(&self) -> Option<Proposal<'_>> {
        self.proposing.fetch_add(1, Ordering::SeqCst);
        let proposal = Proposal(&self.proposing);
        (!self.forming.load(Ordering::SeqCst) && !self.stepping_down.load(Ordering::SeqCst))
            .then_some(proposal)
    }

    /// Hands leadership to the most caught-up other voter, so this member can be restarted
    /// without an election timeout's worth of unavailability and without the group electing a
    /// member that is about to go away too. openraft 0.9 has no transfer, so this one:
    ///
    /// 1. stops proposing (writes wait, then go to the next leader) and lets what is in flight
    ///    commit;
    /// 2. waits for a voter that holds its whole log;
    /// 3. goes silent towards every other member for the followers' lease, so they stop
    ///    honouring it;
    /// 4. asks the chosen voter to stand at once (`POST /raft/elect`): with the longest log and
    ///    the others' leases over, it wins before any follower's own election timer fires.
    ///
    /// Answers with the status once another member leads; on failure this member carries on
    /// leading (or a normal election follows).
    pub async fn step_down(&self) -> Result<ReplicaStatus, ReplicaError> {
        let m = self.raft.metrics().borrow().clone();
        if m.current_leader != Some(self.id) {
            return Err(ReplicaError::Refused("this member does not lead".into()));
        }
        let others: Vec<NodeId> = m
            .membership_config
            .membership()
            .voter_ids()
            .filter(|id| *id != self.id)
            .collect();
        if others.is_empty() {
            return Err(ReplicaError::Refused(
                "no other voter to hand leadership to".into(),
            ));
        }
        if self.stepping_down.swap(true, Ordering::SeqCst) {
            return Err(ReplicaError::Refused(
                "a hand-over is already under way".into(),
            ));
        }
        // The hand-over cuts links the way an injected partition does; those come back after.
        let injected = self.blocked.read().clone();
        let result = self.hand_over(&others).await;
        *self.blocked.write() = injected;
        self.stepping_down.store(false, Ordering::SeqCst);
        result
    }

    async fn hand_over(&self, others: &[NodeId]) -> Result<ReplicaStatus, ReplicaError> {
        let deadline = Instant::now() + HANDOVER_TIMEOUT;
        // Voters holding the whole log. A member that is down still shows the index it last
        // matched, so each is asked in turn until one stands.
        let candidates = loop {
            let m = self.raft.metrics().borrow().clone();
            let last = m.last_log_index.unwrap_or(0);
            let applied = m.last_applied.map_or(0, |l| l.index);
            let caught_up: Vec<NodeId> = others
                .iter()
                .copied()
                .filter(|id| {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(id).copied().flatten())
                        .is_some_and(|l| l.index == last)
                })
                .collect();
            let idle = self.proposing.load(Ordering::SeqCst) == 0;
            if !caught_up.is_empty() && applied == last && idle {
                break caught_up;
            }
            if Instant::now() >= deadline {
                return Err(ReplicaError::Stopped(
                    "no other voter caught up with the leader's log in time".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        tracing::info!(to = ?candidates, "handing leadership over");
        self.blocked.write().extend(others.iter().copied());
        tokio::time::sleep(LEASE + Duration::from_millis(100)).await;
        let mut stood = None;
        for &target in &candidates {
            self.blocked.write().remove(&target);
            match self
                .network
                .call::<_, ()>(target, "/raft/elect", &(), FORWARD_TIMEOUT)
                .await
            {
                Ok(()) => {
                    stood = Some(target);
                    break;
                }
                Err(e) => {
                    tracing::info!(member = target, error = %e, "a member could not stand; trying the next");
                    self.blocked.write().insert(target);
                }
            }
        }
        self.blocked.write().retain(|id| !others.contains(id));
        let Some(target) = stood else {
            return Err(ReplicaError::Stopped(format!(
                "none of the caught-up members {candidates:?} could stand"
            )));
        };
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            if leader.is_some_and(|l| l != self.id) {
                tracing::info!(to = ?leader, "handed leadership over");
                return Ok(self.status());
            }
            if Instant::now() >= deadline {
                return Err(ReplicaError::Stopped(format!(
                    "member {target} did not take leadership over in time"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Starts an election on this member at once (the second half of [`Replica::step_down`]).
    pub async fn elect(&self) -> Result<(), ReplicaError> {
        self.raft
            .trigger()
            .elect()
            .await
            .map_err(|e| ReplicaError::Stopped(e.to_string()))
    }

    /// Replaces the injected partition: this member neither reaches nor answers `members`.
    /// Refused unless the process runs with `KORU_FAULT_INJECTION=1`.
    pub fn set_blocked(
        &self,
        members: impl IntoIterator<Item = NodeId>,
    ) -> Result<(), ReplicaError> {
        if !self.faults_enabled {
            return Err(ReplicaError::Refused(
                "fault injection is off (start the member with KORU_FAULT_INJECTION=1)".into(),
            ));
        }
        *self.blocked.write() = members.into_iter().collect();
        tracing::warn!(blocked = ?*self.blocked.read(), "injected partition changed");
        Ok(())
    }

    /// Stops the Raft node.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

impl crate::rewind::GuardedWrite for Replica {
    async fn write_guarded(
        &self,
        ops: Vec<WriteOp>,
        guard: crate::store::RangeGuard,
    ) -> Result<Committed, crate::rewind::RewindError> {
        let mut cmd = Command::new(&ops, crate::clock::now_micros());
        cmd.guard = Some(guard.clone());
        match self.write_command(cmd).await? {
            Applied::Conflict => Err(crate::rewind::RewindError::Store(
                crate::StoreError::Conflict {
                    namespace: guard.namespace,
                    prefix: guard.prefix,
                    since_lsn: guard.since_lsn,
                },
            )),
            applied => applied
                .into_committed()
                .map_err(|m| ReplicaError::Refused(m).into()),
        }
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

/// Maps a failed membership step.
fn membership_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ReplicaError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            ReplicaError::Unknown("leadership moved during the membership change; retry".into())
        }
        RaftError::APIError(e) => ReplicaError::Refused(e.to_string()),
        RaftError::Fatal(e) => ReplicaError::Stopped(e.to_string()),
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
