//! The range assigner as a service: `AssignerService` on every member of
//! the zone's Raft group, and the controller that runs on the leader.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use danaus_proto::v1 as pb;
use danaus_raft::RaftGroup;
use parking_lot::Mutex;
use pb::leaf_service_client::LeafServiceClient;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::plan::{next_step, LeafLoad, Policy, Step};
use crate::table::{RangeId, ZoneCommand, ZoneTable};

/// How the assigner runs.
#[derive(Debug, Clone)]
pub struct AssignerConfig {
    /// Replicas per range.
    pub replication: u32,
    /// The plan's tuning.
    pub policy: Policy,
    /// A leaf whose heartbeat is older than this is dead.
    pub dead_after: Duration,
    /// How often the controller looks at the table.
    pub tick: Duration,
    /// Longest a history copy may take.
    pub copy_timeout: Duration,
}

impl Default for AssignerConfig {
    fn default() -> Self {
        Self {
            replication: 3,
            policy: Policy::default(),
            dead_after: Duration::from_secs(10),
            tick: Duration::from_millis(500),
            copy_timeout: Duration::from_secs(600),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct AssignerStats {
    /// Steps carried out, by kind.
    pub adds: AtomicU64,
    /// Replicas promoted after a history copy.
    pub copies: AtomicU64,
    /// Replicas removed.
    pub removes: AtomicU64,
    /// Ranges split.
    pub splits: AtomicU64,
    /// Steps that failed (retried at a later tick).
    pub failures: AtomicU64,
}

struct Heartbeat {
    at: Instant,
    load: LeafLoad,
}

/// One member of the range assigner.
pub struct Assigner {
    group: Arc<RaftGroup<ZoneTable>>,
    cfg: AssignerConfig,
    heartbeats: Mutex<BTreeMap<String, Heartbeat>>,
    started: Instant,
    /// Counters.
    pub stats: AssignerStats,
}

impl std::fmt::Debug for Assigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assigner").field("group", &self.group).finish()
    }
}

fn raft_status(e: danaus_raft::Error) -> Status {
    match e {
        danaus_raft::Error::Rejected(m) => Status::invalid_argument(m),
        e => Status::unavailable(e.to_string()),
    }
}

impl Assigner {
    /// An assigner member over its Raft `group`.
    pub fn new(group: Arc<RaftGroup<ZoneTable>>, cfg: AssignerConfig) -> Arc<Self> {
        Arc::new(Self {
            group,
            cfg,
            heartbeats: Mutex::default(),
            started: Instant::now(),
            stats: AssignerStats::default(),
        })
    }

    /// The Raft group.
    pub fn group(&self) -> &Arc<RaftGroup<ZoneTable>> {
        &self.group
    }

    /// The gRPC service.
    pub fn service(self: &Arc<Self>) -> danaus_proto::servers::AssignerServer<Service> {
        pb::assigner_service_server::AssignerServiceServer::new(Service(self.clone()))
            .max_encoding_message_size(256 << 20)
    }

    /// Proposes `cmd`; the table version that includes it.
    pub async fn propose(&self, cmd: ZoneCommand) -> Result<u64, Status> {
        match self.group.propose(&cmd).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(m)) => Err(Status::invalid_argument(m)),
            Err(e) => Err(raft_status(e)),
        }
    }

    fn live(&self) -> (BTreeMap<String, LeafLoad>, BTreeSet<String>) {
        let now = Instant::now();
        let hb = self.heartbeats.lock();
        let loads = hb.iter().map(|(k, v)| (k.clone(), v.load.clone())).collect();
        let live =
            hb.iter().filter(|(_, v)| now.duration_since(v.at) < self.cfg.dead_after).map(|(k, _)| k.clone()).collect();
        (loads, live)
    }

    /// Runs the controller until the process ends: on the leader, one
    /// step of the plan per tick.
    pub async fn run_controller(self: Arc<Self>) {
        let mut initialised = false;
        loop {
            tokio::time::sleep(self.cfg.tick).await;
            if !self.group.is_leader() {
                continue;
            }
            if !initialised {
                let rf = self.group.read(|t| t.replication);
                let ok = rf == self.cfg.replication
                    || self.propose(ZoneCommand::Init { replication: self.cfg.replication }).await.is_ok();
                initialised = ok;
                continue;
            }
            // A member that just started may not have heard every leaf yet:
            // it waits until it has heard each leaf of the table, or for as
            // long as a leaf may stay silent.
            let table = self.group.read(|t| t.clone());
            let (loads, live) = self.live();
            let heard_all = !table.leaves.is_empty() && table.leaves.keys().all(|l| live.contains(l));
            if self.started.elapsed() < self.cfg.dead_after && !heard_all {
                continue;
            }
            let Some(step) = next_step(&table, &loads, &live, &self.cfg.policy) else { continue };
            tracing::info!(?step, version = table.version, "range assigner step");
            if let Err(e) = self.execute(&table, step.clone()).await {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(?step, "range assigner step failed: {e}");
            }
        }
    }

    async fn execute(&self, table: &ZoneTable, step: Step) -> Result<(), String> {
        let propose = |cmd| async move { self.propose(cmd).await.map_err(|s| s.message().to_owned()) };
        match step {
            Step::Add { range, leaf } => {
                propose(ZoneCommand::AddReplica { range, leaf }).await?;
                self.stats.adds.fetch_add(1, Ordering::Relaxed);
            }
            Step::Remove { range, leaf } => {
                propose(ZoneCommand::RemoveReplica { range, leaf }).await?;
                self.stats.removes.fetch_add(1, Ordering::Relaxed);
            }
            Step::Rejoin { range, leaf } => {
                propose(ZoneCommand::Rejoin { range, leaf }).await?;
            }
            Step::Split { range, at } => {
                propose(ZoneCommand::Split { range, at }).await?;
                self.stats.splits.fetch_add(1, Ordering::Relaxed);
            }
            Step::Copy { range, leaf, sources } => {
                self.copy(table, range, &leaf, &sources).await?;
                propose(ZoneCommand::PromoteReplica { range, leaf }).await?;
                self.stats.copies.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Copies a range's history into a joining replica. First every
    /// source must have applied the table in which the replica joined:
    /// from then on a source refuses writes routed without the joining
    /// replica, so everything it accepts later also reached the new one,
    /// and everything it accepted before is in the copy.
    async fn copy(&self, table: &ZoneTable, range: RangeId, leaf: &str, sources: &[String]) -> Result<(), String> {
        let r = table.range(range).ok_or_else(|| format!("range {range} is gone"))?;
        let deadline = Instant::now() + self.cfg.dead_after;
        loop {
            let (loads, _) = self.live();
            let behind: Vec<&String> =
                sources.iter().filter(|s| loads.get(*s).is_none_or(|l| l.table_version < r.changed_at)).collect();
            if behind.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "leaves {behind:?} have not applied table version {} yet; the copy of {} waits",
                    r.changed_at,
                    r.describe()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let addr_of = |l: &str| table.leaves.get(l).map(|e| e.addr.clone()).ok_or_else(|| format!("no leaf {l:?}"));
        let dest = addr_of(leaf)?;
        let sources = sources.iter().map(|s| addr_of(s)).collect::<Result<Vec<_>, _>>()?;
        let channel = danaus_proto::channels::endpoint(&dest)?
            .connect()
            .await
            .map_err(|e| format!("connecting to leaf {leaf} at {dest}: {e}"))?;
        let mut client = LeafServiceClient::new(channel);
        let mut req = Request::new(pb::CopyRangeRequest {
            range: Some(pb::TargetRange { start: r.start.clone(), end: r.end.clone().unwrap_or_default() }),
            sources,
        });
        req.set_timeout(self.cfg.copy_timeout);
        let reply = client
            .copy_range(req)
            .await
            .map_err(|s| format!("copy of {} into {leaf}: {}", r.describe(), s.message()))?;
        let reply = reply.into_inner();
        tracing::info!(range = %r.describe(), leaf, series = reply.series, points = reply.points, "history copied");
        Ok(())
    }
}

/// `AssignerService` over an [`Assigner`].
#[derive(Clone)]
pub struct Service(Arc<Assigner>);

fn table_update(t: &ZoneTable) -> Result<pb::ZoneTableUpdate, Status> {
    let table_json = serde_json::to_vec(t).map_err(|e| Status::internal(format!("encoding the zone table: {e}")))?;
    Ok(pb::ZoneTableUpdate { version: t.version, table_json })
}

#[tonic::async_trait]
impl pb::assigner_service_server::AssignerService for Service {
    type WatchStream = ReceiverStream<Result<pb::ZoneTableUpdate, Status>>;

    async fn watch(&self, req: Request<pb::WatchTableRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let min = req.into_inner().min_version;
        let group = self.0.group.clone();
        let mut changes = group.changes();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut sent = None;
            loop {
                let t = group.read(|t| (t.version >= min && Some(t.version) != sent).then(|| table_update(t)));
                if let Some(update) = t {
                    sent = update.as_ref().ok().map(|u| u.version);
                    if tx.send(update).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn heartbeat(&self, req: Request<pb::LeafHeartbeat>) -> Result<Response<pb::HeartbeatReply>, Status> {
        let hb = req.into_inner();
        if hb.leaf.is_empty() || hb.addr.is_empty() {
            return Err(Status::invalid_argument("a heartbeat needs the leaf's name and address"));
        }
        let load: LeafLoad = if hb.load_json.is_empty() {
            LeafLoad::default()
        } else {
            serde_json::from_slice(&hb.load_json)
                .map_err(|e| Status::invalid_argument(format!("bad load report: {e}")))?
        };
        tracing::debug!(leaf = %hb.leaf, table_version = load.table_version, "heartbeat");
        self.0.heartbeats.lock().insert(hb.leaf.clone(), Heartbeat { at: Instant::now(), load });
        let known = self.0.group.read(|t| t.leaves.get(&hb.leaf).map(|e| e.addr == hb.addr));
        if known != Some(true) && self.0.group.leader().is_some() {
            self.0.propose(ZoneCommand::RegisterLeaf { leaf: hb.leaf, addr: hb.addr }).await?;
        }
        Ok(Response::new(pb::HeartbeatReply { version: self.0.group.read(|t| t.version) }))
    }

    async fn propose(&self, req: Request<pb::ZoneProposal>) -> Result<Response<pb::ZoneProposalReply>, Status> {
        let cmd: ZoneCommand = serde_json::from_slice(&req.into_inner().command_json)
            .map_err(|e| Status::invalid_argument(format!("undecodable zone command: {e}")))?;
        let version = self.0.propose(cmd).await?;
        Ok(Response::new(pb::ZoneProposalReply { version }))
    }

    async fn latest_version(
        &self,
        _: Request<pb::LatestVersionRequest>,
    ) -> Result<Response<pb::LatestVersionReply>, Status> {
        let version = self
            .0
            .group
            .read_linearizable(Duration::from_secs(3), |t| t.version)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::LatestVersionReply { version }))
    }
}
