//! The zone mixer: per query, an engine over the replicas the zone table
//! names now.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use danaus_assigner::{ReplicaState, TableWatcher};
use danaus_model::{MetricSchema, TargetSchema};
use danaus_proto::channels::Channels;
use danaus_query::{Engine, Error, LeafPhase, QueryLimits, Result, ZoneSources};
use parking_lot::Mutex;
use tonic::transport::Channel;

use crate::remote::{RangeAsk, RemoteLeaf, Replica, DEFAULT_HEDGE_AFTER};

/// How the mixer runs.
#[derive(Debug, Clone)]
pub struct MixerConfig {
    /// The zone's name in completeness reports.
    pub zone: String,
    /// Ask other replicas when a leaf has not answered after this long.
    pub hedge_after: Duration,
    /// Avoid a leaf that failed for this long.
    pub suspect_for: Duration,
    /// Default per-query limits.
    pub limits: QueryLimits,
    /// The zone index server (host:port), for field-hints pruning.
    pub index: Option<String>,
    /// An answer is complete only if the zone table it was planned by was
    /// confirmed current by a read sent this long before the query began
    /// at most ([`danaus_assigner::READ_CONFIRM_WINDOW`]; routers wait as
    /// long before acknowledging writes a removed replica did not take).
    pub confirm_within: Duration,
}

impl Default for MixerConfig {
    fn default() -> Self {
        Self {
            zone: "zone".into(),
            hedge_after: DEFAULT_HEDGE_AFTER,
            suspect_for: Duration::from_secs(10),
            limits: QueryLimits::default(),
            index: None,
            confirm_within: danaus_assigner::READ_CONFIRM_WINDOW,
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct MixerStats {
    /// Leaf phases hedged on other replicas.
    pub hedges: AtomicU64,
    /// Hedges that answered first.
    pub hedges_won: AtomicU64,
    /// Queries planned.
    pub queries: AtomicU64,
    /// Leaf phases skipped because field hints showed the leaf holds no
    /// matching series.
    pub pruned: AtomicU64,
    /// Questions to the index server that failed (nothing was pruned).
    pub index_failures: AtomicU64,
}

/// State shared by a mixer and its remote leaves.
pub(crate) struct Shared {
    pub cfg: MixerConfig,
    table: TableWatcher,
    channels: Channels,
    suspects: Mutex<HashMap<String, Instant>>,
    pub stats: Arc<MixerStats>,
    /// Leaves in this process by address: their phases run by a call,
    /// not an RPC (no encoding of plans and tables).
    local: std::sync::RwLock<HashMap<String, Arc<danaus_node::zone_leaf::ZoneLeaf>>>,
}

impl Shared {
    pub(crate) fn local_leaf(&self, addr: &str) -> Option<Arc<danaus_node::zone_leaf::ZoneLeaf>> {
        self.local.read().unwrap_or_else(|p| p.into_inner()).get(addr).cloned()
    }

    pub(crate) fn client(
        &self,
        addr: &str,
    ) -> std::result::Result<danaus_proto::v1::leaf_service_client::LeafServiceClient<Channel>, String> {
        Ok(danaus_proto::v1::leaf_service_client::LeafServiceClient::new(self.channels.get(addr)?))
    }

    fn index_client(&self) -> Option<danaus_proto::v1::index_service_client::IndexServiceClient<Channel>> {
        let ch = self.channels.get(self.cfg.index.as_ref()?).ok()?;
        Some(danaus_proto::v1::index_service_client::IndexServiceClient::new(ch).max_encoding_message_size(64 << 20))
    }

    pub(crate) fn suspect(&self, leaf: &str) {
        self.suspects.lock().insert(leaf.to_owned(), Instant::now() + self.cfg.suspect_for);
    }

    /// The table to plan by now, and — when it was not confirmed current
    /// within the window — the time from which a confirmation must have
    /// been sent for a plan made now to count as current.
    pub(crate) fn plan_table(&self) -> (Arc<danaus_assigner::ZoneTable>, Option<tokio::time::Instant>) {
        match self.table.confirmed(self.cfg.confirm_within) {
            Ok(t) => (t, None),
            Err(_) => {
                let now = tokio::time::Instant::now();
                (self.table.current(), Some(now.checked_sub(self.cfg.confirm_within).unwrap_or(now)))
            }
        }
    }

    /// Waits (at most the window, or `deadline`) for a confirmation sent
    /// from `since` that a table of version `planned` was current.
    pub(crate) async fn confirm_plan(
        &self,
        since: tokio::time::Instant,
        planned: u64,
        deadline: Option<std::time::Instant>,
    ) -> std::result::Result<(), danaus_assigner::Unconfirmed> {
        let mut wait = self.cfg.confirm_within;
        if let Some(d) = deadline {
            wait = wait.min(d.saturating_duration_since(std::time::Instant::now()));
        }
        self.table.confirm_since(since, planned, wait).await
    }

    /// The ready replicas of `r` in the order to ask them: spread over
    /// queries by `turn`, healthy ones first.
    pub(crate) fn replicas(
        &self,
        table: &danaus_assigner::ZoneTable,
        r: &danaus_assigner::Range,
        turn: usize,
    ) -> Vec<Replica> {
        let mut replicas: Vec<Replica> = r
            .replicas
            .iter()
            .filter(|x| x.state == ReplicaState::Ready)
            .filter_map(|x| Some(Replica { leaf: x.leaf.clone(), addr: table.leaves.get(&x.leaf)?.addr.clone() }))
            .collect();
        if !replicas.is_empty() {
            let n = replicas.len();
            replicas.rotate_left((turn + r.id as usize) % n);
            replicas.sort_by_key(|x| self.is_suspect(&x.leaf));
        }
        replicas
    }

    fn is_suspect(&self, leaf: &str) -> bool {
        let mut s = self.suspects.lock();
        match s.get(leaf) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                s.remove(leaf);
                false
            }
            None => false,
        }
    }

    pub(crate) fn schemas(
        &self,
        tenant: &str,
        target: &str,
        metric: &str,
    ) -> Result<(Arc<TargetSchema>, Arc<MetricSchema>)> {
        let table = self.table.current();
        let t = table
            .target_schema(tenant, target)
            .ok_or_else(|| Error::NotFound(format!("unknown target schema {target:?} (tenant {tenant:?})")))?;
        let m = table
            .metric_schema(tenant, metric)
            .ok_or_else(|| Error::NotFound(format!("unknown metric {metric:?} (tenant {tenant:?})")))?;
        Ok((Arc::new(t.clone()), Arc::new(m.clone())))
    }
}

/// The zone mixer.
#[derive(Clone)]
pub struct ZoneMixer {
    shared: Arc<Shared>,
    turn: Arc<AtomicU64>,
}

impl std::fmt::Debug for ZoneMixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneMixer").field("zone", &self.shared.cfg.zone).finish()
    }
}

impl ZoneMixer {
    /// A mixer over the zone `table` describes.
    pub fn new(table: TableWatcher, cfg: MixerConfig) -> Self {
        table.keep_confirmed(cfg.confirm_within / 4);
        Self {
            shared: Arc::new(Shared {
                cfg,
                table,
                channels: Channels::default(),
                suspects: Mutex::default(),
                stats: Arc::default(),
                local: Default::default(),
            }),
            turn: Arc::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &Arc<MixerStats> {
        &self.shared.stats
    }

    /// Runs leaf phases on the leaf at `addr` in-process from now on.
    pub fn add_local_leaf(&self, addr: String, leaf: Arc<danaus_node::zone_leaf::ZoneLeaf>) {
        self.shared.local.write().unwrap_or_else(|p| p.into_inner()).insert(addr, leaf);
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn next_turn(&self) -> usize {
        self.turn.fetch_add(1, Ordering::Relaxed) as usize
    }

    /// An engine over one ready replica per range of the current table.
    /// Ranges without a ready replica make a source that reports itself
    /// missing; so does a table that cannot be confirmed current (a
    /// replica it names ready may have been demoted or moved away since,
    /// and miss acknowledged writes).
    pub fn engine(&self) -> Arc<Engine> {
        Arc::new(Engine::new(vec![self.zone_sources()], self.shared.cfg.limits))
    }

    /// The zone's sources for one query, as [`ZoneMixer::engine`] plans
    /// them (the zone stage a root mixer asks for runs over these).
    pub fn zone_sources(&self) -> ZoneSources {
        self.shared.stats.queries.fetch_add(1, Ordering::Relaxed);
        let (table, unconfirmed) = self.shared.plan_table();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed) as usize;
        let mut by_leaf: Vec<(String, Vec<RangeAsk>)> = Vec::new();
        let mut orphans = Vec::new();
        for r in table.ranges.values() {
            let replicas = self.shared.replicas(&table, r, turn);
            if replicas.is_empty() {
                orphans.push(r.describe());
                continue;
            }
            let ask = RangeAsk { bounds: (r.start.clone(), r.end.clone()), replicas };
            let leaf = ask.replicas[0].leaf.clone();
            match by_leaf.iter_mut().find(|(l, _)| *l == leaf) {
                Some((_, asks)) => asks.push(ask),
                None => by_leaf.push((leaf, vec![ask])),
            }
        }
        let pruner = self.shared.cfg.index.is_some().then(|| {
            Arc::new(Pruner {
                shared: self.shared.clone(),
                leaves: by_leaf.iter().map(|(l, _)| l.clone()).collect(),
                answers: Mutex::default(),
            })
        });
        let mut leaves: Vec<Arc<dyn LeafPhase>> = by_leaf
            .into_iter()
            .map(|(leaf, asks)| {
                Arc::new(RemoteLeaf::new(leaf, asks, self.shared.clone(), pruner.clone())) as Arc<dyn LeafPhase>
            })
            .collect();
        if !orphans.is_empty() {
            leaves.push(Arc::new(Unplaced { ranges: orphans, shared: self.shared.clone() }));
        }
        if let Some(since) = unconfirmed {
            leaves.push(Arc::new(Confirming { since, planned: table.version, shared: self.shared.clone() }));
        }
        ZoneSources { name: self.shared.cfg.zone.clone(), leaves }
    }

    /// The mixer's default per-query limits.
    pub fn limits(&self) -> QueryLimits {
        self.shared.cfg.limits
    }
}

/// Field-hints pruning for one query: asks the index server once per
/// fetch which of the query's leaves cannot hold a matching series.
pub(crate) struct Pruner {
    shared: Arc<Shared>,
    leaves: Vec<String>,
    /// One answer per fetch, asked once: the fetches of one query (one per
    /// metric, run concurrently) each wait only for their own.
    answers: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Vec<String>>>>>,
}

impl Pruner {
    /// Whether `leaf` can be skipped for `spec`.
    pub(crate) async fn skip(&self, tenant: &str, spec: &danaus_query::FetchSpec, leaf: &str) -> bool {
        let key = format!("{tenant}\0{}\0{}\0{:?}", spec.target, spec.metric, spec.matchers);
        let cell = self.answers.lock().entry(key).or_default().clone();
        let excluded = cell.get_or_init(|| self.ask(tenant, spec)).await;
        excluded.iter().any(|l| l == leaf)
    }

    async fn ask(&self, tenant: &str, spec: &danaus_query::FetchSpec) -> Vec<String> {
        let Ok((t, m)) = self.shared.schemas(tenant, &spec.target, &spec.metric) else { return Vec::new() };
        let req = danaus_index::requirement(tenant, &t, &m, &spec.matchers);
        let Some(mut client) = self.shared.index_client() else { return Vec::new() };
        let mut r = tonic::Request::new(danaus_proto::v1::ExcludeRequest {
            clauses: danaus_index::server::requirement_to(&req),
            leaves: self.leaves.clone(),
        });
        r.set_timeout(Duration::from_secs(1));
        match client.exclude(r).await {
            Ok(r) => r.into_inner().excluded,
            Err(s) => {
                self.shared.stats.index_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("index server: {}", s.message());
                Vec::new()
            }
        }
    }
}

/// Ranges no ready replica holds: reported missing in every answer.
struct Unplaced {
    ranges: Vec<String>,
    shared: Arc<Shared>,
}

impl LeafPhase for Unplaced {
    fn name(&self) -> &str {
        "unplaced-ranges"
    }

    fn schemas(&self, tenant: &str, target: &str, metric: &str) -> Result<(Arc<TargetSchema>, Arc<MetricSchema>)> {
        self.shared.schemas(tenant, target, metric)
    }

    fn run_phase<'a>(
        &'a self,
        _fp: &'a danaus_query::FetchPlan,
        _ctx: &'a danaus_query::ExecCtx,
        _emit: &'a mut (dyn FnMut(danaus_query::Table) -> Result<()> + Send),
    ) -> futures::future::BoxFuture<'a, Result<Vec<danaus_query::PhaseOutput>>> {
        Box::pin(async move {
            Err(Error::Source {
                source_name: "unplaced-ranges".into(),
                message: format!("no ready replica holds {}", self.ranges.join(", ")),
                unavailable: true,
            })
        })
    }
}

/// A plan made by a table that was not confirmed current when the query
/// began: it waits for a confirmation sent since then (less the window)
/// and, if none comes or the table had changed, reports the zone table as
/// missing, so the answer says it may be partial.
struct Confirming {
    since: tokio::time::Instant,
    planned: u64,
    shared: Arc<Shared>,
}

impl LeafPhase for Confirming {
    fn name(&self) -> &str {
        "zone-table"
    }

    fn schemas(&self, tenant: &str, target: &str, metric: &str) -> Result<(Arc<TargetSchema>, Arc<MetricSchema>)> {
        self.shared.schemas(tenant, target, metric)
    }

    fn run_phase<'a>(
        &'a self,
        _fp: &'a danaus_query::FetchPlan,
        ctx: &'a danaus_query::ExecCtx,
        _emit: &'a mut (dyn FnMut(danaus_query::Table) -> Result<()> + Send),
    ) -> futures::future::BoxFuture<'a, Result<Vec<danaus_query::PhaseOutput>>> {
        Box::pin(async move {
            self.shared.confirm_plan(self.since, self.planned, ctx.deadline).await.map_err(|e| Error::Source {
                source_name: "zone-table".into(),
                message: e.to_string(),
                unavailable: true,
            })?;
            Ok(Vec::new())
        })
    }
}
