//! A replicated cluster simulated in one process: 3 or 5 members, each a real openraft node with
//! the data plane's own Raft settings, Raft log (`raft::log`) and state machine (`raft::state`)
//! over a real store on a simulated disk ([`SimStorage`]), joined by a simulated network that a
//! seeded fault schedule partitions, slows, reorders and makes lose messages, while members
//! crash and restart, lose power (their store and Raft journal keep only what was fsynced, and a
//! seeded part of the rest), and their clocks jump. Time is tokio's paused clock, moved on a
//! millisecond per turn of the tasks: a run of 30 simulated seconds takes about a second.
//!
//! Client histories of reads, writes and compare-and-sets on one key are checked for
//! linearizability (stateright's checker, as `tests/raft` does for real processes); after the
//! faults heal, every member must hold the same history, containing every acknowledged write at
//! the LSN it was acknowledged with, with commit times that only go forward.
//!
//! The fault schedule, the workload and the network's choices come from the seed; the
//! interleaving does not entirely (openraft draws election timeouts from an unseeded generator),
//! so a failing seed usually, not always, fails again.
//! `KORU_SIM_SEED=<n>` runs one seed, `KORU_SIM_SEEDS=<n>` the first n (`make simulate`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use koru_dataplane::metrics::StoreMetrics;
use koru_dataplane::raft::directory::Directory;
use koru_dataplane::raft::log::LogStore;
use koru_dataplane::raft::network::{Blocked, Network};
use koru_dataplane::raft::replica::{may_change_membership, raft_config};
use koru_dataplane::raft::state::StateMachine;
use koru_dataplane::raft::vote_hold::VoteHold;
use koru_dataplane::raft::{Applied, Command, NodeId, Peers, Request, TypeConfig};
use koru_dataplane::store::{RangeGuard, WriteMeta};
use koru_dataplane::wal::record::OpKind;
use koru_dataplane::wal::storage::SimStorage;
use koru_dataplane::{FsyncMode, Store, StoreConfig, WriteOp};
use openraft::error::{
    ClientWriteError, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::value::RawValue;
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
use tokio::time::Instant;

use common::register::{CasRegister, Op, Ret};
use common::seeds::sim_seeds;

/// The namespace and key every client works on.
const NAMESPACE: &str = "sim";
const KEY: &str = "k";
/// Where each member's store lives on its simulated disk.
const STORE_DIR: &str = "/data";
/// A member's Raft journal on its simulated disk, beside the store as on a real member.
const RAFT_DIR: &str = "/data/raft";
/// How long faults are injected in one run (simulated).
const FAULT_TIME: Duration = Duration::from_secs(30);
/// How long a client waits for an answer before it counts the outcome as unknown.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the healed cluster may take to agree on one history.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Concurrent clients.
const CLIENTS: usize = 3;
/// Simulated time the clock moves on each driver step.
const STEP: Duration = Duration::from_millis(1);

#[test]
fn three_members_stay_linearizable_and_durable_under_seeded_faults() {
    check_seeds("raft simulation, 3 members", 3, 12);
}

#[test]
fn five_members_stay_linearizable_and_durable_under_seeded_faults() {
    check_seeds("raft simulation, 5 members", 5, 8);
}

/// What all seeds of one cluster size did.
#[derive(Debug, Default)]
struct Totals {
    seeds: u64,
    simulated: Duration,
    acked: u64,
    crashes: u64,
    power_losses: u64,
    wiped: u64,
    /// Runs whose healed group did not settle until every member was restarted.
    stalls: u64,
    partitions: u64,
    membership_changes: u64,
}

fn check_seeds(name: &str, members: usize, default: u64) {
    // The members' HTTP client (for snapshot copies, unused here) needs a TLS provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let started = std::time::Instant::now();
    let mut totals = Totals::default();
    let mut failures = Vec::new();
    for seed in sim_seeds(default) {
        totals.seeds += 1;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let run = runtime.block_on(async {
            let clock = tokio::spawn(drive_clock());
            let run = run_seed(seed, members, &mut totals).await;
            clock.abort();
            run
        });
        if let Err(e) = run {
            failures.push(format!("seed {seed}: {e}"));
            if failures.len() >= 3 {
                break;
            }
        }
    }
    eprintln!(
        "{name}: {} seeds clean of {}, {:.2} simulated hours, {} acknowledged writes, {} crashes \
         ({} with power loss, of the store and Raft log alike; {} back on an empty volume), \
         {} partitions, {} membership changes, {} liveness stalls, in {:.1?}",
        totals.seeds - failures.len() as u64,
        totals.seeds,
        totals.simulated.as_secs_f64() / 3600.0,
        totals.acked,
        totals.crashes,
        totals.power_losses,
        totals.wiped,
        totals.partitions,
        totals.membership_changes,
        totals.stalls,
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{name} failed (run one again with KORU_SIM_SEED=<seed>):\n{}",
        failures.join("\n")
    );
}

/// Moves the paused clock on by [`STEP`] each time the other ready tasks have had a turn, and
/// keeps the runtime from going idle (idle, tokio would jump the clock to the next timer). No
/// part of a member runs on a thread of its own here (the store commits inline, the Raft journal
/// fsyncs inline), so simulated time follows the tasks' turns, not the machine's speed.
async fn drive_clock() {
    loop {
        tokio::task::yield_now().await;
        tokio::time::advance(STEP).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The network

/// The simulated network: which members run, which pairs are cut apart, how often a message is
/// lost and how long one may take (each message draws its own delay, so they reorder).
#[derive(Clone)]
struct Net(Arc<Mutex<NetState>>);

struct NetState {
    rng: StdRng,
    /// The running members, with their vote holds (which their RPC handlers apply).
    up: BTreeMap<NodeId, (Raft<TypeConfig>, Arc<VoteHold>)>,
    /// Pairs (lower id first) that cannot reach each other.
    cut: BTreeSet<(NodeId, NodeId)>,
    loss: f64,
    max_delay: Duration,
}

impl Net {
    fn new(seed: u64) -> Net {
        Net(Arc::new(Mutex::new(NetState {
            rng: StdRng::seed_from_u64(seed ^ 0x006e_6574_776f_726b),
            up: BTreeMap::new(),
            cut: BTreeSet::new(),
            loss: 0.0,
            max_delay: Duration::from_millis(5),
        })))
    }

    /// The node `to`, if it runs and `from` can reach it.
    fn reach(&self, from: NodeId, to: NodeId) -> Option<(Raft<TypeConfig>, Arc<VoteHold>)> {
        let net = self.0.lock();
        if net.cut.contains(&(from.min(to), from.max(to))) {
            return None;
        }
        net.up.get(&to).cloned()
    }

    /// Whether the next message is lost, and how long it takes.
    fn roll(&self) -> (bool, Duration) {
        let mut net = self.0.lock();
        let (loss, max) = (net.loss, net.max_delay.as_millis() as u64);
        let lost = loss > 0.0 && net.rng.random_bool(loss);
        (lost, Duration::from_millis(net.rng.random_range(0..=max)))
    }

    fn heal(&self) {
        let mut net = self.0.lock();
        net.cut.clear();
        net.loss = 0.0;
        net.max_delay = Duration::from_millis(5);
    }

    /// Cuts every pair with one member in `side` and the other outside it.
    fn split(&self, side: &[NodeId], all: &[NodeId]) {
        let mut net = self.0.lock();
        for &a in side {
            for &b in all.iter().filter(|b| !side.contains(b)) {
                net.cut.insert((a.min(b), a.max(b)));
            }
        }
    }
}

/// Connections from one member.
struct Factory {
    net: Net,
    from: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for Factory {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Connection {
        Connection {
            net: self.net.clone(),
            from: self.from,
            to: target,
        }
    }
}

/// RPCs from one member to another through the simulated network.
struct Connection {
    net: Net,
    from: NodeId,
    to: NodeId,
}

fn network_error<E: std::error::Error>(
    why: &str,
) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    RPCError::Network(NetworkError::new(&io::Error::other(why.to_string())))
}

impl Connection {
    /// Carries one request there and its answer back, each leg delayed, maybe lost, and cut
    /// off by a partition that starts meanwhile.
    async fn carry<T, E, F>(
        &self,
        ttl: Duration,
        call: impl FnOnce(Raft<TypeConfig>, Arc<VoteHold>) -> F,
    ) -> Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        F: Future<Output = Result<Result<T, RaftError<NodeId, E>>, String>>,
        E: std::error::Error,
    {
        let (lost, delay) = self.net.roll();
        tokio::time::sleep(delay).await;
        let Some((raft, hold)) = self.net.reach(self.from, self.to) else {
            return Err(RPCError::Unreachable(Unreachable::new(&io::Error::other(
                "partitioned or down",
            ))));
        };
        if lost {
            return Err(network_error("request lost"));
        }
        let reply = tokio::time::timeout(ttl, call(raft, hold))
            .await
            .map_err(|_| network_error("timed out"))?
            // Refused by the member's handler (as HTTP 503): a network error to openraft.
            .map_err(|why| network_error(&why))?;
        let (lost, delay) = self.net.roll();
        tokio::time::sleep(delay).await;
        if lost || self.net.reach(self.to, self.from).is_none() {
            return Err(network_error("answer lost"));
        }
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        // As `http::raft::append` does: a successful append tells the vote hold.
        self.carry(option.hard_ttl(), |raft, hold| async move {
            let commit = rpc.leader_commit.map(|l| l.index);
            let reply = raft.append_entries(rpc).await;
            if reply.as_ref().is_ok_and(|r| r.is_success()) {
                hold.heard_from_leader(commit.unwrap_or(0));
            }
            Ok(reply)
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.carry(option.hard_ttl(), |raft, _| async move {
            Ok(raft.install_snapshot(rpc).await)
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        // As `http::raft::vote` does: a held vote is refused.
        self.carry(option.hard_ttl(), |raft, hold| async move {
            let last = raft.metrics().borrow().last_log_index.unwrap_or(0);
            if hold.held(last) {
                return Err("holding its vote until caught up".to_string());
            }
            Ok(raft.vote(rpc).await)
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// The members

/// One member: its store, Raft journal and snapshot record on a simulated disk.
struct Member {
    id: NodeId,
    disk: SimStorage,
    running: Option<(Raft<TypeConfig>, Store)>,
    /// How far its clock is off (µs), which a clock jump changes.
    skew_micros: i64,
}

/// The cluster and what every client and the fault schedule share.
struct Cluster {
    net: Net,
    peers: Peers,
    ids: Vec<NodeId>,
    members: Mutex<BTreeMap<NodeId, Member>>,
    /// The group has been initialised.
    formed: std::sync::atomic::AtomicBool,
}

impl Cluster {
    async fn start(size: usize, net: Net) -> Result<Cluster, String> {
        let ids: Vec<NodeId> = (1..=size as NodeId).collect();
        let peers: Peers = ids
            .iter()
            .map(|id| format!("{id}=127.0.0.1:{}", 1000 + id))
            .collect::<Vec<_>>()
            .join(",")
            .parse()
            .map_err(|e| format!("{e}"))?;
        let members = ids
            .iter()
            .map(|&id| {
                let member = Member {
                    id,
                    disk: SimStorage::new(),
                    running: None,
                    skew_micros: 0,
                };
                (id, member)
            })
            .collect();
        let cluster = Cluster {
            net,
            peers,
            ids,
            members: Mutex::new(members),
            formed: std::sync::atomic::AtomicBool::new(false),
        };
        for &id in &cluster.ids {
            cluster.boot(id).await?;
        }
        let first = cluster.raft(1).ok_or("member 1 did not start")?;
        let all = cluster
            .ids
            .iter()
            .map(|&id| (id, BasicNode::new(format!("127.0.0.1:{}", 1000 + id))))
            .collect::<BTreeMap<_, _>>();
        first
            .initialize(all)
            .await
            .map_err(|e| format!("initialising the group: {e}"))?;
        cluster
            .formed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(cluster)
    }

    /// Starts member `id` on what its disks hold.
    async fn boot(&self, id: NodeId) -> Result<(), String> {
        let disk = self.members.lock()[&id].disk.clone();
        let mut config = StoreConfig::new(STORE_DIR);
        config.storage = Arc::new(disk.clone());
        config.inline_commit = true;
        // The store fsyncs on its own schedule, the Raft log on every append (as members run).
        config.fsync = FsyncMode::Interval(Duration::from_millis(50));
        let (store, _) = Store::open(config, Arc::new(StoreMetrics::default()))
            .map_err(|e| format!("member {id}: opening its store: {e}"))?;
        // Inline: no thread of the journal's own, so simulated time never waits on a real one.
        let log = LogStore::open_inline(Arc::new(disk), std::path::Path::new(RAFT_DIR))
            .map_err(|e| format!("member {id}: opening its Raft log: {e}"))?;
        // Used only to copy a snapshot's records, which this simulation never builds.
        let network = Network::new(
            id,
            None,
            Blocked::default(),
            Directory::new(self.peers.clone(), None),
        );
        let state = StateMachine::open(
            store.clone(),
            log.clone(),
            network,
            std::path::Path::new(RAFT_DIR),
            Arc::new(AtomicU64::new(0)),
        )
        .map_err(|e| format!("member {id}: start-up refused: {e}"))?;
        let config = raft_config(u64::MAX / 4).map_err(|e| e.to_string())?;
        let factory = Factory {
            net: self.net.clone(),
            from: id,
        };
        let raft = Raft::new(id, Arc::new(config), factory, log, state)
            .await
            .map_err(|e| format!("member {id}: starting Raft: {e}"))?;
        // Back without a log into the formed group (its volume was replaced): as
        // `Replica::start` decides, it holds its vote until caught up.
        let rejoining = self.formed.load(std::sync::atomic::Ordering::SeqCst)
            && !raft.is_initialized().await.map_err(|e| e.to_string())?;
        let hold = Arc::new(VoteHold::new(rejoining));
        self.net.0.lock().up.insert(id, (raft.clone(), hold));
        self.members.lock().get_mut(&id).expect("a member").running = Some((raft, store));
        Ok(())
    }

    /// Stops member `id` at once; with `power_loss` its disk (store and Raft journal) keeps
    /// only what was fsynced and a seeded part of the rest: some, all or none of each file's
    /// later writes, the last perhaps cut or its sector torn into zeros or garbage.
    async fn crash(&self, id: NodeId, power_loss: Option<&mut StdRng>) {
        self.net.0.lock().up.remove(&id);
        let Some((raft, store)) = self
            .members
            .lock()
            .get_mut(&id)
            .and_then(|m| m.running.take())
        else {
            return;
        };
        let disk = self.members.lock()[&id].disk.clone();
        disk.power_off();
        let _ = tokio::time::timeout(Duration::from_secs(10), raft.shutdown()).await;
        drop(raft);
        drop(store);
        let survivor = match power_loss {
            Some(rng) => disk.power_loss(&mut |n| rng.random_range(0..n)),
            // A process crash: the page cache keeps every write.
            None => disk.power_loss(&mut |n| n - 1),
        };
        self.members.lock().get_mut(&id).expect("a member").disk = survivor;
    }

    /// What every member's Raft says, for a failure's message.
    fn describe(&self) -> String {
        let members = self.members.lock();
        members
            .values()
            .map(|m| match &m.running {
                Some((raft, store)) => {
                    let metrics = raft.metrics().borrow().clone();
                    format!(
                        "member {}: {:?} term {} leader {:?} last log {:?} applied {:?} store LSN {} \
                         voters {:?} vote {:?}",
                        m.id,
                        metrics.state,
                        metrics.current_term,
                        metrics.current_leader,
                        metrics.last_log_index,
                        metrics.last_applied,
                        store.last_applied().0,
                        metrics.membership_config.membership().get_joint_config(),
                        metrics.vote,
                    )
                }
                None => format!("member {}: down", m.id),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Replaces the volume of member `id`, which is down, with an empty one.
    fn wipe(&self, id: NodeId) {
        let mut members = self.members.lock();
        let member = members.get_mut(&id).expect("a member");
        member.disk = SimStorage::new();
    }

    /// Whether a member is down or still holds its vote: then the group has fewer whole copies
    /// than members, and losing another volume could lose acknowledged writes for good.
    fn short_of_copies(&self) -> bool {
        if !self.down().is_empty() {
            return true;
        }
        let net = self.net.0.lock();
        net.up.values().any(|(raft, hold)| {
            let last = raft.metrics().borrow().last_log_index.unwrap_or(0);
            hold.held(last)
        })
    }

    /// The running follower whose log reaches furthest.
    fn furthest_follower(&self) -> Option<NodeId> {
        self.running()
            .into_iter()
            .filter_map(|id| Some((id, self.raft(id)?.metrics().borrow().clone())))
            .filter(|(id, m)| m.current_leader.is_some_and(|l| l != *id))
            .max_by_key(|(_, m)| m.last_log_index)
            .map(|(id, _)| id)
    }

    fn raft(&self, id: NodeId) -> Option<Raft<TypeConfig>> {
        self.members.lock()[&id]
            .running
            .as_ref()
            .map(|(r, _)| r.clone())
    }

    fn handle(&self, id: NodeId) -> Option<(Raft<TypeConfig>, Store, i64)> {
        let members = self.members.lock();
        let m = &members[&id];
        m.running
            .as_ref()
            .map(|(r, s)| (r.clone(), s.clone(), m.skew_micros))
    }

    fn running(&self) -> Vec<NodeId> {
        self.members
            .lock()
            .values()
            .filter(|m| m.running.is_some())
            .map(|m| m.id)
            .collect()
    }

    fn down(&self) -> Vec<NodeId> {
        self.members
            .lock()
            .values()
            .filter(|m| m.running.is_none())
            .map(|m| m.id)
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The clients and the checker

/// One event of a history.
#[derive(Debug, Clone)]
enum Event {
    Invoke(Op),
    Return(Ret),
}

/// The history as it happened: per event the client thread (a client whose operation's outcome
/// is unknown carries on as a new thread) and the invocation or the return.
#[derive(Default)]
struct History {
    events: Vec<(usize, Event)>,
    /// Invocations (by position) that were never sent on: as if never made.
    cancelled: Vec<usize>,
    /// Writes and compare-and-sets whose outcome the client never learned: (position of the
    /// invocation, value).
    unknown: Vec<(usize, u64)>,
    /// Acknowledged writes: value → LSN.
    acked: BTreeMap<u64, u64>,
}

impl History {
    /// Records an invocation; returns its position.
    fn invoke(&mut self, thread: usize, op: Op) -> usize {
        self.events.push((thread, Event::Invoke(op)));
        self.events.len() - 1
    }
}

/// How a proposal ended.
enum Outcome {
    Applied(Applied),
    /// Refused before it was proposed (not the leader): as if never invoked.
    NotProposed,
    /// Anything else (why): it may still take effect.
    Unknown(String),
}

async fn propose(raft: &Raft<TypeConfig>, request: Request) -> Outcome {
    match tokio::time::timeout(CLIENT_TIMEOUT, raft.client_write(request)).await {
        Ok(Ok(answer)) => Outcome::Applied(answer.data),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Outcome::NotProposed,
        Ok(Err(e)) => Outcome::Unknown(e.to_string()),
        Err(_) => Outcome::Unknown(format!("no answer within {CLIENT_TIMEOUT:?}")),
    }
}

/// A linearizable read of the key at member `id`: its value (0 when unwritten) and the store's
/// last LSN then; None when the member could not confirm it leads.
async fn read(cluster: &Cluster, id: NodeId) -> Option<(u64, u64)> {
    let (raft, store, _) = cluster.handle(id)?;
    match tokio::time::timeout(CLIENT_TIMEOUT, raft.ensure_linearizable()).await {
        Ok(Ok(_)) => {}
        _ => return None,
    }
    let lsn = store.last_applied().0;
    let value = match store.get(NAMESPACE, KEY).ok()? {
        Some(fetched) => fetched.value?.parse().ok()?,
        None => 0,
    };
    Some((value, lsn))
}

/// The guard of a single write's command.
fn guard_of(request: &Request) -> Option<RangeGuard> {
    match request {
        Request::Write(command) => command.guard.clone(),
        _ => None,
    }
}

fn command(key: &str, value: u64, proposed_micros: i64, guard: Option<RangeGuard>) -> Command {
    let op = WriteOp {
        kind: OpKind::Put,
        namespace: NAMESPACE.into(),
        key: key.into(),
        value: Some(RawValue::from_string(value.to_string()).expect("a number is JSON")),
    };
    let mut command = Command::new(&[op], proposed_micros, WriteMeta::default());
    command.guard = guard;
    command
}

/// One client: operations one after another at random members until `until`.
async fn client(
    c: usize,
    seed: u64,
    cluster: Arc<Cluster>,
    history: Arc<Mutex<History>>,
    until: Instant,
    start: Instant,
) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(c as u64));
    let mut thread = c * 1_000_000;
    let mut written = 0u64;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..50))).await;
        let running = cluster.running();
        if running.is_empty() {
            continue;
        }
        let id = running[rng.random_range(0..running.len())];
        let choice = rng.random_range(0..10);
        if choice < 4 {
            let at = history.lock().invoke(thread, Op::Read);
            match read(&cluster, id).await {
                Some((value, _)) => history
                    .lock()
                    .events
                    .push((thread, Event::Return(Ret::ReadOk(value)))),
                // A read that was not answered changed nothing: it is left out.
                None => history.lock().cancelled.push(at),
            }
            continue;
        }
        written += 1;
        let value = (c as u64 + 1) * 1_000_000 + written;
        let Some((raft, _, skew)) = cluster.handle(id) else {
            continue;
        };
        let now = 1_800_000_000_000_000 + start.elapsed().as_micros() as i64 + skew;
        let (op, guard) = if choice < 7 {
            (Op::Write(value), None)
        } else {
            let Some((expected, lsn)) = read(&cluster, id).await else {
                continue;
            };
            let guard = RangeGuard {
                namespace: NAMESPACE.into(),
                prefix: KEY.into(),
                since_lsn: lsn,
                exact: true,
            };
            (Op::Cas(expected, value), Some(guard))
        };
        let at = history.lock().invoke(thread, op.clone());
        let mut request = Request::Write(command(KEY, value, now, guard));
        let batched = rng.random_bool(0.3);
        if batched {
            // As the leader batches writes that arrive together: one entry, a record each.
            let before = command("other", value, now, None);
            request = Request::Writes(vec![before, command(KEY, value, now, guard_of(&request))]);
        }
        let mut outcome = propose(&raft, request).await;
        if let (true, Outcome::Applied(Applied::Batch(answers))) = (batched, &outcome) {
            outcome = match answers.as_slice() {
                [_, ours] => Outcome::Applied(ours.clone()),
                _ => return Err(format!("a batch of two was answered {answers:?}")),
            };
        }
        let ret = match outcome {
            Outcome::Applied(Applied::Written { lsn, .. }) => {
                history.lock().acked.insert(value, lsn);
                match op {
                    Op::Cas(..) => Ret::CasOk,
                    _ => Ret::WriteOk,
                }
            }
            Outcome::Applied(Applied::Conflict) => match op {
                Op::Cas(..) => Ret::CasFailed,
                _ => return Err("a plain write was refused as a conflict".into()),
            },
            Outcome::Applied(other) => {
                return Err(format!("a write was answered {other:?}"));
            }
            Outcome::NotProposed => {
                history.lock().cancelled.push(at);
                continue;
            }
            Outcome::Unknown(_) => {
                // Never returns; the client carries on as another thread.
                history.lock().unknown.push((at, value));
                thread += 1;
                continue;
            }
        };
        history.lock().events.push((thread, Event::Return(ret)));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// One run

/// The fault schedule: one fault (or a heal) every few hundred milliseconds. Every step draws
/// the same numbers whatever the cluster's state, so the schedule is the seed's alone.
async fn faults(
    seed: u64,
    cluster: Arc<Cluster>,
    until: Instant,
    totals: &mut Totals,
) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6661_756c_7473);
    let ids = cluster.ids.clone();
    let majority = ids.len() / 2 + 1;
    while Instant::now() < until {
        let pause = Duration::from_millis(rng.random_range(100..800));
        let action = rng.random_range(0..11);
        // Which member, which side, which restarts, and the rest: drawn every step.
        let pick: u64 = rng.random();
        let mut order = ids.clone();
        order.sort_by_key(|_| rng.random::<u32>());
        let side = rng.random_range(1..majority);
        let loss = rng.random_range(0.0..0.3);
        let delay = Duration::from_millis(rng.random_range(0..150));
        let up_to_majority = rng.random_bool(0.2);
        let power = rng.random_bool(0.5);
        let wipe = rng.random_bool(0.2);
        let jump = rng.random_range(-10_000_000..10_000_000);
        tokio::time::sleep(pause).await;
        let nth = |list: &[NodeId]| list[(pick % list.len() as u64) as usize];
        match action {
            0 | 1 => cluster.net.heal(),
            2 => {
                // One member alone, or a minority and a majority.
                cluster.net.split(&order[..side], &ids);
                totals.partitions += 1;
            }
            3 => {
                let mut net = cluster.net.0.lock();
                net.loss = loss;
                net.max_delay = delay;
            }
            4 | 5 => {
                // Crash a member; now and then as many as a majority.
                let running = cluster.running();
                let limit = if up_to_majority {
                    majority
                } else {
                    majority - 1
                };
                // A volume is replaced only while every other member holds a whole copy and
                // they are a majority of the voters without it: its vote is held until a leader
                // reaches it, so with two voters the group could never elect one again (the
                // availability a held vote costs, by design).
                // In a joint membership each configuration needs its own majority, so the
                // smallest one counts (seed 26 wiped one of two voters in [{1, 3}, {1, 2, 3}]).
                let voters_now = leader(&cluster).map_or(0, |l| fewest_voters(&l));
                if wipe && voters_now >= 3 && !cluster.short_of_copies() {
                    // With KORU_SIM_TARGETED_WIPES=1, half the time the follower furthest
                    // ahead, the leader then cut off: the wiped copy may be the only other one
                    // of the newest writes, and the rest must not elect a member that lacks
                    // them (without the vote hold this finds lost writes within 30 seeds; it
                    // also leaves a group unable to elect a leader in 2 of 30, not diagnosed
                    // yet, so it is not on by default).
                    let target = if targeted_wipes() && pick & 1 == 1 {
                        cluster.furthest_follower()
                    } else {
                        None
                    };
                    let id = target.unwrap_or_else(|| nth(&running));
                    totals.crashes += 1;
                    totals.wiped += 1;
                    cluster.crash(id, None).await;
                    cluster.wipe(id);
                    if target.is_some()
                        && let Some(leader) = leader(&cluster)
                    {
                        let leader_id = leader.metrics().borrow().id;
                        cluster.net.split(&[leader_id], &ids);
                        totals.partitions += 1;
                    }
                } else if cluster.down().len() < limit && !running.is_empty() {
                    let id = nth(&running);
                    totals.crashes += 1;
                    if power {
                        totals.power_losses += 1;
                        let mut disk_rng = StdRng::seed_from_u64(pick);
                        cluster.crash(id, Some(&mut disk_rng)).await;
                    } else {
                        cluster.crash(id, None).await;
                    }
                }
            }
            6 | 7 => {
                // Each member that is down restarts with probability 3/4 (two bits of `pick`).
                for (i, id) in cluster.down().into_iter().enumerate() {
                    if (pick >> (2 * i)) & 3 != 0 {
                        cluster.boot(id).await?;
                    }
                }
            }
            8 => {
                // A clock jumps, either way, by up to ten seconds.
                cluster
                    .members
                    .lock()
                    .get_mut(&nth(&ids))
                    .expect("a member")
                    .skew_micros = jump;
            }
            9 => {
                // A voter leaves the group, or those who left come back.
                let Some(leader) = leader(&cluster) else {
                    continue;
                };
                let all: BTreeSet<NodeId> = ids.iter().copied().collect();
                let next = if voters(&leader) == all {
                    if cluster.short_of_copies() {
                        // Not while a member is down or holds its vote (see the crashes above).
                        continue;
                    }
                    let out = nth(&ids);
                    all.iter().copied().filter(|&id| id != out).collect()
                } else {
                    all
                };
                totals.membership_changes += 1;
                // Spawned: a change waits for a majority, which the faults may keep away.
                tokio::spawn(change_voters(leader, next));
            }
            _ => {
                // Elections out of turn: a member stands.
                if let Some(raft) = cluster.raft(nth(&ids)) {
                    let _ = raft.trigger().elect().await;
                }
            }
        }
    }
    Ok(())
}

async fn run_seed(seed: u64, size: usize, totals: &mut Totals) -> Result<(), String> {
    let net = Net::new(seed);
    let start = Instant::now();
    let cluster = Arc::new(Cluster::start(size, net).await?);
    let history = Arc::new(Mutex::new(History::default()));
    let until = start + FAULT_TIME;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(client(
                c,
                seed,
                Arc::clone(&cluster),
                Arc::clone(&history),
                until,
                start,
            ))
        })
        .collect();
    faults(seed, Arc::clone(&cluster), until, totals).await?;
    for c in clients {
        c.await.map_err(|e| format!("a client panicked: {e}"))??;
    }
    // Heal, restart everyone, and let the group agree.
    cluster.net.heal();
    for id in cluster.down() {
        cluster.boot(id).await?;
    }
    if let Err(stall) = settle(&cluster).await {
        // A liveness stall, not a safety failure: reported, then every member restarted (as
        // an operator would) so the safety checks still run on what the members hold.
        eprintln!("seed {seed}: STALLED, restarting every member: {stall}");
        totals.stalls += 1;
        for id in cluster.ids.clone() {
            cluster.crash(id, None).await;
        }
        for id in cluster.ids.clone() {
            cluster.boot(id).await?;
        }
        settle(&cluster)
            .await
            .map_err(|e| format!("still stalled after restarting every member: {e}"))?;
    }
    {
        let h = history.lock();
        totals.acked += h.acked.len() as u64;
        let written = check_histories(&cluster, &h)?;
        check_linearizable(&h, &written)?;
    }
    totals.simulated += start.elapsed();
    for id in cluster.ids.clone() {
        if let Some(raft) = cluster.raft(id) {
            let _ = raft.shutdown().await;
        }
    }
    Ok(())
}

/// Whether wipes aim at the follower furthest ahead (`KORU_SIM_TARGETED_WIPES=1`).
fn targeted_wipes() -> bool {
    std::env::var("KORU_SIM_TARGETED_WIPES").is_ok_and(|v| v == "1")
}

/// The running member that leads in the highest term as a voter (a member that left the
/// voters may still think it leads the group it left).
fn leader(cluster: &Cluster) -> Option<Raft<TypeConfig>> {
    cluster
        .running()
        .into_iter()
        .filter_map(|id| cluster.raft(id))
        .filter(|raft| {
            let m = raft.metrics().borrow().clone();
            m.current_leader == Some(m.id) && may_change_membership(raft, m.id)
        })
        .max_by_key(|raft| raft.metrics().borrow().current_term)
}

/// The voters of the membership `raft` knows.
fn voters(raft: &Raft<TypeConfig>) -> BTreeSet<NodeId> {
    raft.metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}

/// The voters of the smallest configuration in the membership (two while joint).
fn fewest_voters(raft: &Raft<TypeConfig>) -> usize {
    raft.metrics()
        .borrow()
        .membership_config
        .membership()
        .get_joint_config()
        .iter()
        .map(BTreeSet::len)
        .min()
        .unwrap_or(0)
}

/// Makes `next` the voters, adding any that are not members yet as learners first (caught up),
/// as `raft::replica::membership` does, with its check that the leader is still a voter; gives
/// up quietly when the faults stop it.
async fn change_voters(raft: Raft<TypeConfig>, next: BTreeSet<NodeId>) -> bool {
    let id = raft.metrics().borrow().id;
    if !may_change_membership(&raft, id) {
        return false;
    }
    let known: BTreeSet<NodeId> = raft
        .metrics()
        .borrow()
        .membership_config
        .nodes()
        .map(|(id, _)| *id)
        .collect();
    for &id in next.difference(&known) {
        let node = BasicNode::new(format!("127.0.0.1:{}", 1000 + id));
        let added = tokio::time::timeout(CLIENT_TIMEOUT, raft.add_learner(id, node, true)).await;
        if !matches!(added, Ok(Ok(_))) {
            return false;
        }
    }
    matches!(
        tokio::time::timeout(CLIENT_TIMEOUT, raft.change_membership(next, false)).await,
        Ok(Ok(_))
    )
}

/// Waits for a leader and for every member to apply all it committed (a last write through
/// the leader makes sure the current term has committed an entry).
async fn settle(cluster: &Cluster) -> Result<(), String> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut last_error = String::new();
    loop {
        if Instant::now() > deadline {
            return Err(format!(
                "the healed cluster did not settle within a minute (last write: {last_error}):\n{}",
                cluster.describe()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        for &id in &cluster.ids {
            if let Some(raft) = cluster.raft(id)
                && let Err(e) = &raft.metrics().borrow().running_state
            {
                return Err(format!("member {id}'s Raft stopped: {e}"));
            }
        }
        let Some(raft) = leader(cluster) else {
            continue;
        };
        let all: BTreeSet<NodeId> = cluster.ids.iter().copied().collect();
        if voters(&raft) != all && !change_voters(raft.clone(), all).await {
            last_error = "the members that left did not come back".into();
            continue;
        }
        let settled = WriteOp {
            kind: OpKind::Put,
            namespace: NAMESPACE.into(),
            key: "settled".into(),
            value: Some(RawValue::from_string("0".into()).expect("JSON")),
        };
        let final_write = Command::new(&[settled], 0, WriteMeta::default());
        match propose(&raft, Request::Write(final_write)).await {
            Outcome::Applied(_) => {}
            Outcome::NotProposed => continue,
            Outcome::Unknown(why) => {
                last_error = why;
                continue;
            }
        }
        let last = raft.metrics().borrow().last_applied.map(|l| l.index);
        // Followers learn of the commit with the next heartbeat.
        while Instant::now() < deadline {
            let all = cluster.ids.iter().all(|&id| {
                cluster
                    .raft(id)
                    .is_some_and(|r| r.metrics().borrow().last_applied.map(|l| l.index) >= last)
            });
            if all {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Checks the history against the register. A write whose outcome is unknown and whose value
/// the settled history lacks never took effect (a refused compare-and-set neither): it is left
/// out, which keeps the checker's search small; one that did stays open to the end.
fn check_linearizable(history: &History, written: &BTreeSet<u64>) -> Result<(), String> {
    let mut tester = LinearizabilityTester::new(CasRegister(0));
    let mut cancelled: BTreeSet<usize> = history.cancelled.iter().copied().collect();
    cancelled.extend(
        history
            .unknown
            .iter()
            .filter(|(_, value)| !written.contains(value))
            .map(|(at, _)| *at),
    );
    let kept = history
        .events
        .iter()
        .enumerate()
        .filter(|(at, _)| !cancelled.contains(at));
    for (_, (thread, event)) in kept {
        let done = match event {
            Event::Invoke(op) => tester.on_invoke(*thread, op.clone()),
            Event::Return(ret) => tester.on_return(*thread, ret.clone()),
        };
        done.map_err(|e| format!("an impossible history: {e}"))?;
    }
    if tester.serialized_history().is_none() {
        let events: Vec<String> = history
            .events
            .iter()
            .enumerate()
            .filter(|(at, _)| !cancelled.contains(at))
            .map(|(_, (thread, event))| format!("{thread}: {event:?}"))
            .collect();
        return Err(format!(
            "the history is not linearizable ({} events):\n{}",
            events.len(),
            events.join("\n")
        ));
    }
    Ok(())
}

/// A record as the checks compare them: LSN, commit time, the value it gave the key.
type Record = (u64, i64, Option<u64>);

/// Every member holds the same records; every acknowledged write is among them at its LSN;
/// commit times only go forward. Returns the values the key was given.
fn check_histories(cluster: &Cluster, history: &History) -> Result<BTreeSet<u64>, String> {
    let mut first: Option<(NodeId, Vec<Record>)> = None;
    for &id in &cluster.ids {
        let (_, store, _) = cluster
            .handle(id)
            .ok_or(format!("member {id} is not running"))?;
        let records: Vec<Record> = store
            .changes_since(0, usize::MAX)
            .map_err(|e| format!("member {id}: {e}"))?
            .into_iter()
            .map(|c| {
                let value = c
                    .ops
                    .iter()
                    .find(|op| op.namespace == NAMESPACE && op.key == KEY)
                    .and_then(|op| op.value.as_ref())
                    .and_then(|v| v.parse().ok());
                (c.lsn, c.timestamp_micros, value)
            })
            .collect();
        for pair in records.windows(2) {
            if pair[1].0 != pair[0].0 + 1 || pair[1].1 <= pair[0].1 {
                return Err(format!(
                    "member {id}: record {:?} follows {:?} (LSNs gap-free, times rising)",
                    pair[1], pair[0]
                ));
            }
        }
        for (value, lsn) in &history.acked {
            let held = records.iter().find(|r| r.0 == *lsn);
            if held.map(|r| r.2) != Some(Some(*value)) {
                return Err(format!(
                    "member {id}: the write of {value} acknowledged at LSN {lsn} is missing \
                     (found {held:?})"
                ));
            }
        }
        match &first {
            None => first = Some((id, records)),
            Some((other, theirs)) if *theirs != records => {
                return Err(format!(
                    "members {other} and {id} hold different histories ({} and {} records)",
                    theirs.len(),
                    records.len()
                ));
            }
            Some(_) => {}
        }
    }
    let records = first.map(|(_, records)| records).unwrap_or_default();
    Ok(records.into_iter().filter_map(|r| r.2).collect())
}
