//! [`RaftGroup`]: one member of a replicated state machine, as its users
//! see it.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use danaus_storage::KvStore;
use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, LogId, RaftMetrics, ServerState, SnapshotPolicy};
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::log_store::KvLogStore;
use crate::network::{propose_local, GrpcNetwork, ProposeOutcome, RaftServer};
use crate::state_machine::{Applied, SmStore, StateMachine};
use crate::{danaus_proto_request, Command, NodeId, Raft};

/// How a member runs.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// The group's name: messages and stored keys are addressed by it.
    pub group: String,
    /// This member's id.
    pub id: NodeId,
    /// Leader heartbeat period.
    pub heartbeat: Duration,
    /// Election timeout: a follower that hears no leader for at least this
    /// long starts an election (members are staggered above it by id, see
    /// `election_window`).
    pub election_timeout: Duration,
    /// Take a snapshot (and purge the log below it) every this many entries.
    pub snapshot_every: u64,
    /// How long [`RaftGroup::propose`] keeps trying to reach a leader.
    pub propose_timeout: Duration,
}

impl GroupConfig {
    /// Defaults for member `id` of `group`: 100 ms heartbeats, elections
    /// after 500 ms of silence and more (staggered by id), a snapshot
    /// every 1000 entries.
    pub fn new(group: impl Into<String>, id: NodeId) -> Self {
        Self {
            group: group.into(),
            id,
            heartbeat: Duration::from_millis(100),
            election_timeout: Duration::from_millis(500),
            snapshot_every: 1000,
            propose_timeout: Duration::from_secs(10),
        }
    }
}

/// One member of a Raft group replicating the state machine `S`.
pub struct RaftGroup<S: StateMachine> {
    cfg: GroupConfig,
    raft: Raft,
    applied: Arc<RwLock<Applied<S>>>,
    changes: watch::Receiver<u64>,
    net: GrpcNetwork,
    server: RaftServer,
    _s: PhantomData<S>,
}

impl<S: StateMachine> std::fmt::Debug for RaftGroup<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftGroup").field("group", &self.cfg.group).field("id", &self.cfg.id).finish()
    }
}

/// The window member `id` draws its election timeout from, in ms.
///
/// Groups run standard Raft (one leader per term), where candidates that
/// time out together split the vote, and openraft draws a member's
/// timeout only once and checks it on its ticks (1.5 heartbeats): members
/// whose timeouts fell on the same tick would split every election again,
/// for ever (the simulation found three stuck so). So members are ranked
/// by id: each draws from its own window, two ticks after the previous
/// rank's, and after a split vote the lowest rank alive asks alone first.
fn election_window(id: NodeId, heartbeat_ms: u64, timeout_ms: u64) -> (u64, u64) {
    let tick = (heartbeat_ms * 3 / 2).max(1);
    let min = timeout_ms + (id % 5) * 2 * tick;
    (min, min + tick)
}

/// Who leads the group, as a member knows it.
enum Leader {
    Me,
    At(String),
    Unknown,
}

impl<S: StateMachine> RaftGroup<S> {
    /// Starts member `cfg.id` of `cfg.group` on `kv`, restoring what it
    /// stored before, and routes the group's messages from `server` to it.
    /// A new group also needs [`initialize`](Self::initialize).
    pub async fn start(cfg: GroupConfig, kv: Arc<dyn KvStore>, server: &RaftServer) -> Result<Self> {
        if cfg.group.is_empty() || cfg.group.contains('\0') {
            return Err(Error::Rejected(format!(
                "bad raft group name {:?}: it must be non-empty, without NUL",
                cfg.group
            )));
        }
        let log = KvLogStore::open(kv, &cfg.group).await?;
        let (sm, changes) = SmStore::<S>::open(log.clone(), &cfg.group).await?;
        let applied = sm.applied.clone();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        let config = openraft::Config {
            cluster_name: cfg.group.clone(),
            heartbeat_interval: ms(cfg.heartbeat),
            election_timeout_min: election_window(cfg.id, ms(cfg.heartbeat), ms(cfg.election_timeout)).0,
            election_timeout_max: election_window(cfg.id, ms(cfg.heartbeat), ms(cfg.election_timeout)).1,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::Rejected(format!("raft group {:?}: {e}", cfg.group)))?;
        let net = GrpcNetwork::new(&cfg.group);
        let raft = Raft::new(cfg.id, Arc::new(config), net.clone(), log, sm)
            .await
            .map_err(|e| Error::Stopped { group: cfg.group.clone(), reason: e.to_string() })?;
        server.register(&cfg.group, raft.clone());
        Ok(Self { cfg, raft, applied, changes, net, server: server.clone(), _s: PhantomData })
    }

    /// Makes `members` the group's first membership. Call it on every
    /// member with the same set; once the group is initialized it does
    /// nothing.
    pub async fn initialize(&self, members: BTreeMap<NodeId, BasicNode>) -> Result<()> {
        // A member that restarts with a log already has a membership: asking
        // again would only make openraft log a refusal.
        let known = {
            let m = self.raft.metrics();
            let m = m.borrow();
            m.membership_config.membership().voter_ids().next().is_some()
        };
        if known {
            return Ok(());
        }
        match self.raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(Error::Stopped { group: self.cfg.group.clone(), reason: e.to_string() }),
        }
    }

    /// Proposes `cmd` and waits until it is committed and applied here or
    /// on the leader, returning the state machine's reply. A follower
    /// forwards to the leader; while no leader is known it retries with
    /// backoff for `propose_timeout`. Delivery is at least once: after an
    /// ambiguous failure (the leader died after appending) the retry may
    /// apply the command a second time, so commands should be idempotent.
    pub async fn propose(&self, cmd: &S::Command) -> Result<S::Reply> {
        let cmd = Command(serde_json::to_string(cmd).map_err(|e| Error::Rejected(format!("encoding {cmd:?}: {e}")))?);
        let deadline = tokio::time::Instant::now() + self.cfg.propose_timeout;
        let mut backoff = Duration::from_millis(20);
        loop {
            let attempt = async {
                match self.leader_addr() {
                    Leader::Me | Leader::Unknown => propose_local(&self.raft, cmd.clone()).await,
                    Leader::At(addr) => self.propose_remote(&addr, &cmd).await,
                }
            };
            // A leader cut off from its quorum waits for a commit that
            // cannot come; the deadline bounds that wait too.
            let outcome =
                match tokio::time::timeout(deadline.saturating_duration_since(tokio::time::Instant::now()), attempt)
                    .await
                {
                    Ok(o) => o,
                    Err(_) => {
                        return Err(Error::NoLeader {
                            group: self.cfg.group.clone(),
                            reason: format!(
                            "not committed within {:?} (a quorum is unreachable; the command may still commit later)",
                            self.cfg.propose_timeout
                        ),
                        })
                    }
                };
            let why = match outcome {
                ProposeOutcome::Applied(reply) => {
                    let r: std::result::Result<Option<S::Reply>, String> = serde_json::from_str(&reply.0)
                        .map_err(|e| Error::Rejected(format!("undecodable reply {:?}: {e}", reply.0)))?;
                    return match r {
                        Ok(Some(r)) => Ok(r),
                        Ok(None) => Err(Error::Rejected("internal: a command entry applied without a reply".into())),
                        Err(m) => Err(Error::Rejected(m)),
                    };
                }
                ProposeOutcome::NotLeader(_) => "no leader elected".to_owned(),
                ProposeOutcome::Failed(m) => m,
            };
            if tokio::time::Instant::now() + backoff > deadline {
                return Err(Error::NoLeader { group: self.cfg.group.clone(), reason: why });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    async fn propose_remote(&self, addr: &str, cmd: &Command) -> ProposeOutcome {
        let mut client = match self.net.client(addr) {
            Ok(c) => c,
            Err(m) => return ProposeOutcome::Failed(m),
        };
        let req = match danaus_proto_request(&self.cfg.group, cmd) {
            Ok(r) => r,
            Err(m) => return ProposeOutcome::Failed(m),
        };
        let mut req = tonic::Request::new(req);
        req.set_timeout(self.cfg.propose_timeout);
        match client.propose(req).await {
            Ok(r) => serde_json::from_slice(&r.into_inner().payload)
                .unwrap_or_else(|e| ProposeOutcome::Failed(format!("undecodable propose reply: {e}"))),
            Err(s) => ProposeOutcome::Failed(format!("forwarding to the leader at {addr}: {}", s.message())),
        }
    }

    fn leader_addr(&self) -> Leader {
        let m = self.raft.metrics();
        let m = m.borrow();
        match m.current_leader {
            Some(l) if l == self.cfg.id => Leader::Me,
            Some(l) => match m.membership_config.membership().get_node(&l) {
                Some(n) => Leader::At(n.addr.clone()),
                None => Leader::Unknown,
            },
            None => Leader::Unknown,
        }
    }

    /// Reads the local state machine (it may trail the leader by entries
    /// not yet applied here).
    pub fn read<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        f(&self.applied.read().state)
    }

    /// A linearizable read: confirms with a quorum that this member leads,
    /// waits until its state machine applied everything committed before
    /// the call, and reads it. Fails on a member that does not lead, or
    /// when no quorum answers within `timeout`.
    pub async fn read_linearizable<R>(&self, timeout: Duration, f: impl FnOnce(&S) -> R) -> Result<R> {
        let no_leader = |reason: String| Error::NoLeader { group: self.cfg.group.clone(), reason };
        match tokio::time::timeout(timeout, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => Ok(self.read(f)),
            Ok(Err(e)) => Err(no_leader(e.to_string())),
            Err(_) => Err(no_leader(format!("leadership not confirmed by a quorum within {timeout:?}"))),
        }
    }

    /// Reads the local state machine together with the id of the last
    /// entry applied to it (`None` before the first), as one snapshot:
    /// what a checker compares across members.
    pub fn read_applied<R>(&self, f: impl FnOnce(Option<LogId<NodeId>>, &S) -> R) -> R {
        let a = self.applied.read();
        f(a.last_applied, &a.state)
    }

    /// The index of the last applied entry; changes on every apply.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// The leader this member knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this member leads.
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.cfg.id)
    }

    /// Raft's metrics (term, leader, log indexes, membership).
    pub fn metrics(&self) -> RaftMetrics<NodeId, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// Waits until some member leads, for at most `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId> {
        let mut rx = self.raft.metrics();
        let wait = async {
            loop {
                if let Some(l) = rx.borrow().current_leader {
                    return Ok(l);
                }
                if rx.changed().await.is_err() {
                    return Err(Error::Stopped { group: self.cfg.group.clone(), reason: "raft stopped".into() });
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or_else(|_| {
            Err(Error::NoLeader { group: self.cfg.group.clone(), reason: format!("none elected within {timeout:?}") })
        })
    }

    /// The openraft handle (membership changes, triggers).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Stops this member.
    pub async fn shutdown(&self) {
        self.server.unregister(&self.cfg.group);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(group = %self.cfg.group, "raft shutdown: {e}");
        }
    }
}
