//! A leaf as a member of a zone.
//!
//! [`ZoneLeaf`] serves `LeafService`: fenced writes from leaf routers, the
//! leaf phase of query plans for mixers (restricted to the ranges the mixer
//! assigned it), and range export/copy for moves. Its agent keeps the leaf
//! in step with the zone table: heartbeats with load to every assigner
//! member, the zone's schemas mirrored into the leaf, and data of ranges
//! that moved away dropped after a grace period.
//!
//! Field hints: the leaf keeps the fingerprints of its series' field values
//! (`danaus-index`), adds those of every series a write or a copy creates,
//! rebuilds them after a drop, and pushes the changes to the zone index
//! server as they happen (and a keepalive every second).
//!
//! Fencing: a write carries the table version the router routed by. Each
//! series is accepted only if this leaf holds its range and the range has
//! not changed since that version ([`ZoneTable::check_write`]). Writes hold
//! a read lock of `fence` from that check until they are durable;
//! [`ZoneLeaf::applied_version`] takes the write lock, so the version a
//! heartbeat reports covers every write that was checked against an older
//! table. The assigner starts a range's history copy only after every
//! source reported the version in which the new replica joined: later
//! writes reached the new replica too, earlier ones are in the copy.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use danaus_assigner::{LeafLoad, RangeLoad, ReplicaState, TableWatcher, ZoneTable};
use danaus_leaf::Leaf;
use danaus_model::SeriesWrite;
use danaus_model::{validate, MetricSchema, TargetSchema};
use danaus_proto::convert;
use danaus_proto::v1 as pb;
use danaus_query::{run_leaf_stage, Cancel, ExecCtx, FetchPlan, LeafSource, PhaseOutput, QueryLimits, Table};
use pb::leaf_service_client::LeafServiceClient;
use rustc_hash::FxHashSet;
use tokio::sync::{mpsc, Notify, RwLock};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::grpc::{add_series_errors, series_write_owned, series_writes, with_conversion_errors};
use crate::status::leaf_status;
use crate::tenant::{tenant, TENANT_HEADER};

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct ZoneLeafStats {
    /// Series refused because the router's range map was stale or wrong.
    pub wrong_replica: AtomicU64,
    /// Leaf phases run for mixers.
    pub stages: AtomicU64,
    /// Leaf phases refused because the leaf does not hold a range asked.
    pub stages_refused: AtomicU64,
    /// Ranges copied in.
    pub copies: AtomicU64,
    /// Series exported to other leaves.
    pub exported_series: AtomicU64,
    /// Ranges whose data was dropped.
    pub drops: AtomicU64,
    /// Hint pushes to the index server that failed.
    pub hint_push_failures: AtomicU64,
}

/// How long an index server prunes by a push when it does not say: the
/// default of `danaus-index`.
fn default_hints_fresh() -> Duration {
    danaus_index::IndexConfig::default().fresh_for
}

/// The latest push the index server acknowledged.
#[derive(Debug, Clone, Copy)]
struct HintsAck {
    /// The hint generation it carried.
    generation: u64,
    /// Until when the server may prune this leaf by what it holds.
    lease_end: tokio::time::Instant,
}

/// The leaf's field hints and what the index server has not seen yet.
#[derive(Default)]
struct Hints {
    fps: HashSet<u64>,
    unsent: Vec<u64>,
    /// The next push must carry everything.
    full: bool,
    /// Bumped whenever fingerprints are added.
    generation: u64,
    /// Series created since the index server last acknowledged a push
    /// ([`series_key`] → the generation their hints need): a later write
    /// of one must not be acknowledged before the write that created it
    /// could be (the zone index may hold that push back for the root
    /// index; `danaus_index::root`).
    recent: HashMap<u64, u64>,
}

/// A series' identity in [`Hints::recent`]: tenant, schema and metric
/// names, and field values in field-name order (a write may send them in
/// any order). A collision only makes a write wait longer.
fn series_key(tenant: &str, w: &SeriesWrite) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tenant.hash(&mut h);
    w.target_schema.hash(&mut h);
    w.metric.hash(&mut h);
    for fields in [&w.target_fields, &w.metric_fields] {
        let mut f: Vec<&(String, danaus_model::FieldValue)> = fields.iter().collect();
        f.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        f.len().hash(&mut h);
        f.hash(&mut h);
    }
    h.finish()
}

/// How the leaf's agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// How often range loads are recomputed (a scan of the index).
    pub load_every: Duration,
    /// How long data of a range that moved away is kept (queries routed
    /// by an older table may still read it).
    pub drop_grace: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(1),
            load_every: Duration::from_secs(10),
            drop_grace: Duration::from_secs(60),
        }
    }
}

/// A leaf serving its zone.
pub struct ZoneLeaf {
    name: String,
    addr: String,
    leaf: Leaf,
    table: TableWatcher,
    fence: RwLock<()>,
    hints: parking_lot::Mutex<Hints>,
    hints_changed: Notify,
    /// What the index server acknowledged, and until when it may prune
    /// by it.
    hints_acked: tokio::sync::watch::Sender<HintsAck>,
    /// Whether the last push failed (set until one succeeds).
    hints_failing: std::sync::atomic::AtomicBool,
    /// Whether a pusher runs (`run_hints`).
    hints_on: std::sync::atomic::AtomicBool,
    /// Counters.
    pub stats: Arc<ZoneLeafStats>,
}

impl std::fmt::Debug for ZoneLeaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneLeaf").field("name", &self.name).field("addr", &self.addr).finish()
    }
}

type Bounds = (Vec<u8>, Option<Vec<u8>>);

fn bounds(r: &pb::TargetRange) -> Bounds {
    (r.start.clone(), (!r.end.is_empty()).then(|| r.end.clone()))
}

/// Whether `[a, b)` lies inside ranges this leaf holds ready.
fn covered(table: &ZoneTable, leaf: &str, (a, b): &Bounds) -> bool {
    let mut at = a.clone();
    loop {
        let Some(r) = table.range_for(&at) else { return false };
        if r.replica(leaf).is_none_or(|x| x.state != ReplicaState::Ready) {
            return false;
        }
        match (&r.end, b) {
            (None, _) => return true,
            (Some(e), Some(b)) if e >= b => return true,
            (Some(e), _) => at = e.clone(),
        }
    }
}

impl ZoneLeaf {
    /// Serves `leaf` as `name`, reachable at `addr`, following `table`.
    pub fn new(name: impl Into<String>, addr: impl Into<String>, leaf: Leaf, table: TableWatcher) -> Arc<Self> {
        let name: String = name.into();
        // Collection-aggregation buckets of a range this leaf is still
        // copying in (joining, or lagging behind) stay open: the copy may
        // bring deltas they lack.
        let (t, me) = (table.clone(), name.clone());
        leaf.set_bucket_hold(Arc::new(move |target: &[u8]| {
            let table = t.current();
            table.range_for(target).and_then(|r| r.replica(&me)).is_some_and(|x| x.state != ReplicaState::Ready)
        }));
        Arc::new(Self {
            name,
            addr: addr.into(),
            leaf,
            table,
            fence: RwLock::new(()),
            hints: parking_lot::Mutex::new(Hints { full: true, ..Hints::default() }),
            hints_changed: Notify::new(),
            // A set pushed by this leaf's previous run may still be fresh.
            hints_acked: tokio::sync::watch::Sender::new(HintsAck {
                generation: 0,
                lease_end: tokio::time::Instant::now() + default_hints_fresh(),
            }),
            hints_failing: std::sync::atomic::AtomicBool::new(false),
            hints_on: std::sync::atomic::AtomicBool::new(false),
            stats: Arc::default(),
        })
    }

    /// The leaf's name in the zone.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The gRPC service.
    pub fn service(self: &Arc<Self>) -> danaus_proto::servers::LeafServer<LeafSvc> {
        pb::leaf_service_server::LeafServiceServer::new(LeafSvc(self.clone()))
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20)
    }

    /// The table version every finished and future write is checked
    /// against (waits for writes checked against older versions).
    pub async fn applied_version(&self) -> u64 {
        let _all = self.fence.write().await;
        self.table.current().version
    }

    /// Adds the hints of the series of `batch` at `created`.
    /// Queues the fingerprints of new series for the index server; returns
    /// the hint generation the batch must wait for: the one holding the
    /// new series' fingerprints (already queued ones count too: the push
    /// carrying them may not be acknowledged yet), and that of any series
    /// of the batch created by an earlier write still waiting for its push.
    fn add_hints<S: Borrow<SeriesWrite>>(&self, tenant: &str, batch: &[S], created: &[usize]) -> Option<u64> {
        let pending = self.pending_hints(tenant, batch);
        if created.is_empty() {
            return pending;
        }
        // A target's new series come together: its fields are
        // fingerprinted once per run of them.
        let mut new = Vec::new();
        let mut last: Option<&SeriesWrite> = None;
        for &i in created {
            if let Some(w) = batch.get(i).map(Borrow::borrow) {
                danaus_index::metric_fingerprints(tenant, &w.target_schema, &w.metric, &w.metric_fields, &mut new);
                if !last.is_some_and(|l| l.same_target(w)) {
                    danaus_index::target_fingerprints(tenant, &w.target_schema, &w.target_fields, &mut new);
                }
                last = Some(w);
            }
        }
        new.sort_unstable();
        new.dedup();
        let mut h = self.hints.lock();
        let before = h.unsent.len();
        for f in new {
            if h.fps.insert(f) {
                h.unsent.push(f);
            }
        }
        let grew = h.unsent.len() > before;
        if grew {
            h.generation += 1;
        }
        let g = h.generation;
        for &i in created {
            if let Some(w) = batch.get(i).map(Borrow::borrow) {
                h.recent.insert(series_key(tenant, w), g);
            }
        }
        drop(h);
        if grew {
            self.hints_changed.notify_one();
        }
        Some(pending.map_or(g, |p| p.max(g)))
    }

    /// The latest hint generation a series of `batch` was created at, if
    /// its push is not acknowledged yet.
    fn pending_hints<S: Borrow<SeriesWrite>>(&self, tenant: &str, batch: &[S]) -> Option<u64> {
        if self.hints.lock().recent.is_empty() {
            return None;
        }
        // The batch's own new series may match an older entry (a series
        // dropped and made again): waiting for it too is harmless.
        let keys: Vec<u64> = batch.iter().map(|w| series_key(tenant, w.borrow())).collect();
        let h = self.hints.lock();
        keys.iter().filter_map(|k| h.recent.get(k).copied()).max()
    }

    /// Waits until series of hint generation `g` cannot be pruned away
    /// from queries: the index server acknowledged a push holding them, or
    /// the lease of the latest token it gave us ran out (after which it
    /// prunes this leaf by no push: every push we send, even one still in
    /// the network, carries a token at least that old; see
    /// `danaus_index::server`). Without this, a query right after an
    /// acknowledged write or a range copy would be told, by an index that
    /// never got the new series' hints, that this leaf holds nothing it
    /// wants — and call its answer complete. Waits at most the lease (3 s
    /// by default) when the index server is unreachable.
    async fn hints_sent(&self, g: Option<u64>) {
        // While pushes fail, every write waits: a retried write finds the
        // series it creates already there, and must not be acknowledged
        // sooner than the write that created them.
        let g = match g {
            Some(g) => g,
            None if self.hints_failing.load(Ordering::Acquire) => self.hints.lock().generation,
            None => return,
        };
        if !self.hints_on.load(Ordering::Acquire) {
            return;
        }
        let mut rx = self.hints_acked.subscribe();
        loop {
            let HintsAck { generation, lease_end } = *rx.borrow_and_update();
            if generation >= g || tokio::time::Instant::now() >= lease_end {
                return;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = tokio::time::sleep_until(lease_end) => {}
            }
        }
    }

    /// Recomputes every hint from the leaf's series (at start, after drops).
    fn rebuild_hints(&self) {
        let mut fps = HashSet::new();
        for s in self.leaf.select_range(b"", None) {
            danaus_index::series_fingerprints(
                &s.key.tenant,
                &s.key.target_schema,
                &s.target_fields,
                &s.key.metric,
                &s.metric_fields,
                &mut fps,
            );
        }
        let mut h = self.hints.lock();
        h.fps = fps;
        h.unsent.clear();
        h.full = true;
        drop(h);
        self.hints_changed.notify_one();
    }

    /// Pushes hints to the index server at `index` until the process ends.
    pub async fn run_hints(self: Arc<Self>, index: String) {
        let epoch =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        self.rebuild_hints();
        let channel = match danaus_proto::channels::endpoint(&index) {
            Ok(e) => e.connect_lazy(),
            Err(e) => {
                tracing::error!(index = %index, "bad index server address: {e}");
                return;
            }
        };
        let mut client =
            pb::index_service_client::IndexServiceClient::new(channel).max_encoding_message_size(256 << 20);
        self.hints_on.store(true, Ordering::Release);
        let mut seq = 0u64;
        // The server's latest lease token: what our next push carries.
        let mut token: Option<pb::HintsLease> = None;
        loop {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.hints_changed.notified()).await;
            // Let a burst of new series gather into one push.
            tokio::time::sleep(Duration::from_millis(10)).await;
            let (full, added, generation) = {
                let mut h = self.hints.lock();
                if h.full {
                    h.full = false;
                    h.unsent.clear();
                    (true, h.fps.iter().copied().collect::<Vec<_>>(), h.generation)
                } else {
                    (false, std::mem::take(&mut h.unsent), h.generation)
                }
            };
            seq += 1;
            let lease = token;
            let mut req = Request::new(pb::HintsPush {
                leaf: self.name.clone(),
                epoch,
                full,
                added,
                removed: Vec::new(),
                seq,
                lease,
                valid_ms: 0,
            });
            req.set_timeout(Duration::from_secs(5));
            match client.push(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    // The server prunes by a push until `fresh` after it
                    // issued the token the push carries; we got the token
                    // later than that, so our lease, counted from now,
                    // ends after the server's (plus 1 % for clock rates).
                    let fresh = match r.fresh_for_ms {
                        0 => default_hints_fresh(),
                        ms => Duration::from_millis(ms),
                    };
                    let lease_end = tokio::time::Instant::now() + fresh + fresh / 100;
                    let new_server = lease.as_ref().map(|t| t.server) != r.lease.as_ref().map(|t| t.server);
                    token = r.lease;
                    if new_server {
                        // What we pushed prunes nothing without a token of
                        // this server: push again at once with it.
                        self.hints_changed.notify_one();
                    }
                    if r.need_full {
                        // The server holds no set of this run: it prunes
                        // nothing by one until the full push lands.
                        self.hints.lock().full = true;
                        self.hints_acked.send_modify(|a| a.lease_end = a.lease_end.max(lease_end));
                        continue;
                    }
                    self.hints_failing.store(false, Ordering::Release);
                    self.hints.lock().recent.retain(|_, g| *g > generation);
                    self.hints_acked.send_modify(|a| {
                        a.generation = a.generation.max(generation);
                        a.lease_end = a.lease_end.max(lease_end);
                    });
                }
                Err(s) => {
                    self.stats.hint_push_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(index = %index, "hints push: {}", s.message());
                    self.hints_failing.store(true, Ordering::Release);
                    // Resend everything once the server answers again;
                    // meanwhile every write waits (`hints_sent`), so the
                    // series awaiting a push need no list.
                    let mut h = self.hints.lock();
                    h.full = true;
                    h.recent.clear();
                }
            }
        }
    }

    /// Mirrors the table's schemas now when the leaf lacks one the table
    /// has: a router or mixer may use a schema before the agent's mirror
    /// has caught up (or with fields added since).
    ///
    /// The caller planned with its own view of the table, which may be
    /// newer than this leaf's: a schema applied a moment ago (the apply
    /// answered once the router's view held it) can be missing here. So
    /// when this leaf's table lacks the schema too, it first catches up
    /// with the zone's latest committed table (a confirmation sent now,
    /// at most 2 s) before the read goes on — and only then is an unknown
    /// schema unknown. Reads of schemas that exist pay nothing.
    async fn ensure_schemas(&self, tenant: &str, target: &str, metric: &str) {
        let have = |table: &ZoneTable| {
            let stored = table.metric_schema(tenant, metric).map_or(0, |m| m.fields.len());
            self.leaf.target_schema(tenant, target).is_some()
                && self.leaf.metric_schema(tenant, metric).is_some_and(|m| m.fields.len() >= stored)
        };
        let in_table = |table: &ZoneTable| {
            table.target_schema(tenant, target).is_some() && table.metric_schema(tenant, metric).is_some()
        };
        let mut table = self.table.current();
        if have(&table) {
            return;
        }
        if !in_table(&table) {
            if let Err(e) = self.table.confirm_since(Instant::now(), u64::MAX, Duration::from_secs(2)).await {
                tracing::debug!("catching up with the zone table for schema {target:?}/{metric:?}: {e}");
            }
            table = self.table.current();
        }
        if table.target_schema(tenant, target).is_some() || table.metric_schema(tenant, metric).is_some() {
            self.mirror_schemas(&table).await;
        }
    }

    /// Applies the table's schemas the leaf lacks.
    async fn mirror_schemas(&self, table: &ZoneTable) {
        for (tenant, s) in &table.schemas {
            for t in s.targets.values() {
                if self.leaf.target_schema(tenant, &t.name).as_deref() != Some(t) {
                    if let Err(e) = self.leaf.apply_target_schema(tenant, t.clone()).await {
                        tracing::warn!(tenant, schema = %t.name, "mirroring a target schema: {e}");
                    }
                }
            }
            for m in s.metrics.values() {
                if self.leaf.metric_schema(tenant, &m.name).as_deref() != Some(m) {
                    if let Err(e) = self.leaf.apply_metric_schema(tenant, m.clone()).await {
                        tracing::warn!(tenant, schema = %m.name, "mirroring a metric schema: {e}");
                    }
                }
            }
        }
    }

    /// Ranges of the table this leaf does not hold (ready or joining).
    fn foreign_ranges(&self, table: &ZoneTable) -> Vec<Bounds> {
        table
            .ranges
            .values()
            .filter(|r| r.replica(&self.name).is_none())
            .map(|r| (r.start.clone(), r.end.clone()))
            .collect()
    }

    async fn load(&self, table: &ZoneTable, samples_per_sec: f64) -> LeafLoad {
        let held: Vec<(u64, Bounds)> =
            table.ranges_of(&self.name).map(|(r, _)| (r.id, (r.start.clone(), r.end.clone()))).collect();
        let bounds: Vec<Bounds> = held.iter().map(|(_, b)| b.clone()).collect();
        let stats = self.leaf.range_stats(&bounds);
        let mem = self.leaf.memory_usage();
        LeafLoad {
            series: mem.series as u64,
            samples_per_sec,
            memory_bytes: mem.chunk_bytes as u64,
            table_version: 0,
            ranges: held
                .iter()
                .zip(stats)
                .map(|((id, _), (series, median))| RangeLoad { range: *id, series, median_target: median })
                .collect(),
        }
    }

    /// Runs until the process ends: heartbeats to `assigners`, schema
    /// mirroring, and dropping ranges that moved away.
    pub async fn run_agent(self: Arc<Self>, assigners: Vec<String>, cfg: AgentConfig) {
        let mut clients: Vec<(String, Option<AssignerClient>)> = assigners.into_iter().map(|a| (a, None)).collect();
        let mut load = LeafLoad::default();
        let mut last_load: Option<(Instant, u64)> = None;
        let mut pending_drops: HashMap<Bounds, Instant> = HashMap::new();
        // Foreign ranges already dropped: a drop scans the whole index, and
        // nothing refills a range the fence keeps out (a restart, which may
        // replay dropped points, starts with this empty).
        let mut dropped: HashSet<Bounds> = HashSet::new();
        let mut mirrored = 0u64;
        loop {
            let table = self.table.current();
            // Schemas change rarely: compare them only when the table did.
            if table.version > mirrored {
                self.mirror_schemas(&table).await;
                mirrored = table.version;
            }
            let now = Instant::now();
            if last_load.is_none_or(|(at, _)| now.duration_since(at) >= cfg.load_every) {
                let accepted = self.leaf.stats().points_accepted.load(Ordering::Relaxed);
                let rate = match last_load {
                    Some((at, before)) => {
                        accepted.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64().max(1e-3)
                    }
                    None => 0.0,
                };
                load = self.load(&table, rate).await;
                last_load = Some((now, accepted));
            }
            load.table_version = self.applied_version().await;
            let load_json = serde_json::to_vec(&load).unwrap_or_default();
            for (addr, client) in clients.iter_mut() {
                if client.is_none() {
                    if let Ok(e) = danaus_proto::channels::endpoint(addr) {
                        *client = Some(pb::assigner_service_client::AssignerServiceClient::new(e.connect_lazy()));
                    }
                }
                if let Some(c) = client.as_mut() {
                    let mut req = Request::new(pb::LeafHeartbeat {
                        leaf: self.name.clone(),
                        addr: self.addr.clone(),
                        load_json: load_json.clone(),
                    });
                    req.set_timeout(cfg.heartbeat.max(Duration::from_millis(500)));
                    if let Err(s) = c.heartbeat(req).await {
                        tracing::debug!(assigner = %addr, "heartbeat: {}", s.message());
                    }
                }
            }
            // Drop what moved away, once the grace period passed — unless
            // this leaf holds nothing at all (a renamed leaf must not wipe
            // its data on the strength of a name).
            let holds_any = table.ranges_of(&self.name).next().is_some();
            if table.version > 0 && holds_any {
                let foreign = self.foreign_ranges(&table);
                pending_drops.retain(|b, _| foreign.contains(b));
                dropped.retain(|b| foreign.contains(b));
                for b in foreign {
                    if dropped.contains(&b) {
                        continue;
                    }
                    let since = *pending_drops.entry(b.clone()).or_insert(now);
                    if now.duration_since(since) >= cfg.drop_grace {
                        match self.leaf.drop_range(&b.0, b.1.as_deref()).await {
                            Ok(n) => {
                                if n > 0 {
                                    self.stats.drops.fetch_add(1, Ordering::Relaxed);
                                    self.rebuild_hints();
                                    tracing::info!(series = n, "dropped a range that moved to other leaves");
                                }
                                pending_drops.remove(&b);
                                dropped.insert(b);
                            }
                            Err(e) => tracing::warn!("dropping a range that moved away: {e}"),
                        }
                    }
                }
            }
            tokio::time::sleep(cfg.heartbeat).await;
        }
    }

    /// `LeafService.Write`: wire series, converted, then
    /// [`write_series`](Self::write_series).
    pub async fn write(&self, tenant: &str, req: pb::LeafWriteRequest) -> Result<pb::WriteResponse, Status> {
        let (batch, positions, errors) = series_writes(req.series);
        let r = self.write_series(tenant, req.table_version, &batch).await?;
        Ok(with_conversion_errors(r, &positions, errors))
    }

    /// A router's write of `series`, routed by zone table `table_version`:
    /// fenced against range moves, refused per series where this leaf does
    /// not hold the series' range at that version (`WrongReplica`), and
    /// acknowledged once durable and, for series it creates, once their
    /// field hints are pushed (or their lease ran out). Errors index into
    /// `series`. The series may be borrowed: routers in this process hand
    /// over what they hold for retries.
    pub async fn write_series<S: Borrow<SeriesWrite> + Sync>(
        &self,
        tenant: &str,
        table_version: u64,
        series: &[S],
    ) -> Result<pb::WriteResponse, Status> {
        let _fence = self.fence.read().await;
        let mut table = self.table.current();
        if table.version < table_version {
            // The router saw a newer table: catch up before judging. A leaf
            // that cannot would judge by schemas and ranges the router has
            // seen change: the router retries (or another replica takes it).
            table = self
                .table
                .wait_for(table_version, Duration::from_secs(2))
                .await
                .map_err(|e| Status::unavailable(format!("leaf {} cannot judge this write yet: {e}", self.name)))?;
        }
        let mut batch: Vec<&SeriesWrite> = Vec::with_capacity(series.len());
        let mut positions = Vec::with_capacity(series.len());
        let mut errors = Vec::new();
        let mut schema_missing = false;
        // The previous series, whether it was routed by its target alone,
        // and the refusal for its routing target, if any.
        let mut last: Option<(&SeriesWrite, bool, Option<String>)> = None;
        let mut metrics = table.metric_lookup(tenant);
        // Metrics whose schema this leaf's mirror was checked for, by the
        // address and length of their names (a write shares a few copies;
        // the batch is borrowed throughout, so no address is reused).
        let mut mirrored: FxHashSet<(usize, usize)> = FxHashSet::default();
        for (i, w) in series.iter().enumerate() {
            let w: &SeriesWrite = w.borrow();
            // Series of one target come together (a scrape, a host): the
            // fence check is done once per run of them, and the schema
            // check once per metric. A metric decides the routing target
            // only when its collection drops target fields.
            let ms = metrics.get(&w.metric);
            let by_target = ms.is_some_and(|m| m.collection.as_ref().is_none_or(|c| c.drop_fields.is_empty()));
            let (same_target, same_metric) =
                last.as_ref().map_or((false, false), |(p, _, _)| (p.same_target(w), p.metric == w.metric));
            let same_route = same_target && (same_metric || (by_target && last.as_ref().is_some_and(|l| l.1)));
            // A schema the mirror lacks, or has with fewer fields (the
            // router writes with fields added since), is mirrored first.
            if !same_metric
                && ms.is_some_and(|ms| {
                    mirrored.insert((w.metric.as_ptr() as usize, w.metric.len()))
                        && self.leaf.metric_schema(tenant, &w.metric).is_none_or(|m| m.fields.len() < ms.fields.len())
                })
            {
                schema_missing = true;
            }
            if !same_route {
                let mut refusal = None;
                if let Some(ts) = table.target_schema(tenant, &w.target_schema) {
                    if let Ok(target) = validate::routing_target(tenant, ts, ms, &w.target_fields) {
                        if let Err(f) = table.check_write(&self.name, &target, table_version) {
                            refusal = Some(format!(
                                "leaf {} does not take this series at table version {table_version}: {f:?}; refresh the range map",
                                self.name
                            ));
                        }
                    }
                    if self.leaf.target_schema(tenant, &w.target_schema).is_none() {
                        schema_missing = true;
                    }
                }
                last = Some((w, by_target, refusal));
            } else if let Some(l) = &mut last {
                l.0 = w;
                l.1 = by_target;
            }
            if let Some((_, _, Some(refusal))) = &last {
                self.stats.wrong_replica.fetch_add(1, Ordering::Relaxed);
                errors.push(pb::SeriesError {
                    index: i as u32,
                    series: format!("{}::{}", w.target_schema, w.metric),
                    message: refusal.clone(),
                    rejected_points: (0..w.points.len() as u32).collect(),
                    code: pb::SeriesErrorCode::WrongReplica as i32,
                });
                continue;
            }
            batch.push(w);
            positions.push(i);
        }
        if schema_missing {
            // The mirror has not caught up with a schema the router used.
            self.mirror_schemas(&table).await;
        }
        let result = self.leaf.write(tenant, &batch).await.map_err(leaf_status)?;
        let g = self.add_hints(tenant, &batch, &result.created);
        self.hints_sent(g).await;
        add_series_errors(&mut errors, result.errors, &positions);
        Ok(pb::WriteResponse { accepted_points: result.accepted_points, errors })
    }

    /// Streams the series of a range from this leaf, a tenant at a time.
    async fn export(&self, range: Bounds, tx: mpsc::Sender<Result<pb::ExportBatch, Status>>) -> Result<(), Status> {
        const BATCH_POINTS: usize = 65_536;
        let selected = self.leaf.select_range(&range.0, range.1.as_deref());
        let mut out: Option<ExportParts> = None;
        let mut points_in_batch = 0usize;
        for s in &selected {
            let tenant = s.key.tenant.clone();
            if out.as_ref().is_some_and(|o| o.0 != tenant || points_in_batch >= BATCH_POINTS) {
                if let Some(o) = out.take() {
                    send_export(&tx, o).await?;
                }
                points_in_batch = 0;
            }
            let o = out.get_or_insert_with(|| (tenant.clone(), Vec::new(), BTreeMap::new(), BTreeMap::new()));
            if let Some(t) = self.leaf.target_schema(&tenant, &s.key.target_schema) {
                o.2.insert(t.name.clone(), (*t).clone());
            }
            if let Some(m) = self.leaf.metric_schema(&tenant, &s.key.metric) {
                o.3.insert(m.name.clone(), (*m).clone());
            }
            let points = self.leaf.points(s, i64::MIN, i64::MAX).await.map_err(leaf_status)?;
            points_in_batch += points.len() + 1;
            o.1.push(pb::Series {
                target_schema: s.key.target_schema.clone(),
                target_fields: convert::field_map_to(s.target_fields.iter()),
                metric: s.key.metric.clone(),
                metric_fields: convert::field_map_to(s.metric_fields.iter()),
                points: points.iter().map(convert::point_to).collect(),
            });
            self.stats.exported_series.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(o) = out.take() {
            send_export(&tx, o).await?;
        }
        // Then the deltas of buckets still open, a batch per tenant (their
        // schemas went with the series above).
        let mut open: BTreeMap<String, Vec<pb::OpenBuckets>> = BTreeMap::new();
        for (i, deltas) in self.leaf.open_deltas(&selected) {
            let s = &selected[i];
            open.entry(s.key.tenant.clone()).or_default().push(pb::OpenBuckets {
                output: Some(pb::Series {
                    target_schema: s.key.target_schema.clone(),
                    target_fields: convert::field_map_to(s.target_fields.iter()),
                    metric: s.key.metric.clone(),
                    metric_fields: convert::field_map_to(s.metric_fields.iter()),
                    points: Vec::new(),
                }),
                deltas: deltas
                    .iter()
                    .map(|d| pb::OpenDelta {
                        input_key: d.input_key.clone(),
                        bucket_start: d.bucket.0,
                        bucket_end: d.bucket.1,
                        closes_at: d.closes_at,
                        point: Some(convert::point_to(&d.point)),
                    })
                    .collect(),
            });
        }
        for (tenant, buckets) in open {
            let batch = pb::ExportBatch {
                tenant,
                target_schemas_json: b"[]".to_vec(),
                metric_schemas_json: b"[]".to_vec(),
                series: Vec::new(),
                open: buckets,
            };
            tx.send(Ok(batch)).await.map_err(|_| Status::cancelled("the copying leaf went away"))?;
        }
        Ok(())
    }

    /// Copies a range from the first source that gives all of it.
    async fn copy_range(&self, range: Bounds, sources: &[String]) -> Result<pb::CopyRangeReply, Status> {
        let mut last_err = String::from("no sources given");
        for src in sources {
            match self.copy_from(&range, src).await {
                Ok(r) => {
                    self.stats.copies.fetch_add(1, Ordering::Relaxed);
                    return Ok(r);
                }
                Err(e) => {
                    tracing::warn!(source = %src, "range copy: {e}");
                    last_err = format!("from {src}: {e}");
                }
            }
        }
        Err(Status::unavailable(format!("copying the range failed; last error {last_err}")))
    }

    async fn copy_from(&self, range: &Bounds, src: &str) -> Result<pb::CopyRangeReply, String> {
        let channel = danaus_proto::channels::endpoint(src)?.connect().await.map_err(|e| format!("connect: {e}"))?;
        let mut client = LeafServiceClient::new(channel).max_decoding_message_size(256 << 20);
        let req = pb::ExportRequest {
            range: Some(pb::TargetRange { start: range.0.clone(), end: range.1.clone().unwrap_or_default() }),
        };
        let mut stream = client.export(req).await.map_err(|s| s.message().to_owned())?.into_inner();
        let mut reply = pb::CopyRangeReply::default();
        // The hint generation of the last imported series that were new here.
        let mut hints = None;
        while let Some(mut b) = stream.message().await.map_err(|s| s.message().to_owned())? {
            let targets: Vec<TargetSchema> =
                serde_json::from_slice(&b.target_schemas_json).map_err(|e| e.to_string())?;
            let metrics: Vec<MetricSchema> =
                serde_json::from_slice(&b.metric_schemas_json).map_err(|e| e.to_string())?;
            for t in targets {
                self.leaf.apply_target_schema(&b.tenant, t).await.map_err(|e| e.to_string())?;
            }
            for m in metrics {
                self.leaf.apply_metric_schema(&b.tenant, m).await.map_err(|e| e.to_string())?;
            }
            let batch: Vec<SeriesWrite> = std::mem::take(&mut b.series)
                .into_iter()
                .map(series_write_owned)
                .collect::<Result<_, _>>()
                .map_err(|e| e.0 .0)?;
            let r = self.leaf.import(&b.tenant, &batch).await.map_err(|e| e.to_string())?;
            if let Some(g) = self.add_hints(&b.tenant, &batch, &r.created) {
                hints = hints.max(Some(g));
            }
            if let Some(e) = r.errors.first() {
                // Replicas disagree (a conflict) or the data is invalid:
                // the copy must not silently lose points.
                return Err(format!("importing series {}: {}", e.series, e.message));
            }
            reply.series += batch.len() as u64;
            reply.points += r.accepted_points;
            for o in b.open {
                let output =
                    series_write_owned(o.output.ok_or("open buckets without their series")?).map_err(|e| e.0 .0)?;
                let deltas = o
                    .deltas
                    .iter()
                    .map(|d| {
                        let p = d.point.as_ref().ok_or_else(|| "an open delta without its point".to_owned())?;
                        Ok(danaus_leaf::OpenDelta {
                            bucket: (d.bucket_start, d.bucket_end),
                            closes_at: d.closes_at,
                            input_key: d.input_key.clone(),
                            point: convert::point(p, 0).map_err(|e| e.0)?,
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                self.leaf.import_open(&b.tenant, &output, &deltas).await.map_err(|e| e.to_string())?;
            }
        }
        // The range becomes readable here once the copy reports success:
        // not before the index server can no longer prune its series away.
        self.hints_sent(hints).await;
        Ok(reply)
    }

    /// Refuses (and counts) a phase or read over a range this leaf does not
    /// hold ready.
    fn check_ready(&self, ranges: &[Bounds]) -> Result<(), Status> {
        let table = self.table.current();
        if let Some(r) = ranges.iter().find(|r| !covered(&table, &self.name, r)) {
            self.stats.stages_refused.fetch_add(1, Ordering::Relaxed);
            return Err(Status::failed_precondition(format!(
                "leaf {} does not hold range [{}, {}) ready at table version {}",
                self.name,
                danaus_assigner::table::escape(&r.0),
                r.1.as_deref().map_or_else(|| "∞".to_owned(), danaus_assigner::table::escape),
                table.version
            )));
        }
        Ok(())
    }

    async fn run_stage(&self, tenant: String, req: pb::LeafStageRequest) -> Result<Vec<pb::LeafStageReply>, Status> {
        let fp: FetchPlan = rmp_serde::from_slice(&req.plan)
            .map_err(|e| Status::invalid_argument(format!("undecodable leaf plan: {e}")))?;
        let ranges: Vec<Bounds> = req.ranges.iter().map(bounds).collect();
        let limits = QueryLimits { max_series: req.max_series, max_points: req.max_points };
        let deadline = (req.timeout_ms > 0).then(|| std::time::Instant::now() + Duration::from_millis(req.timeout_ms));
        let o = self.run_stage_local(tenant, &fp, ranges, limits, deadline).await?;
        let mut out = Vec::with_capacity(o.tables.len() + 2);
        let enc = |e: rmp_serde::encode::Error| Status::internal(format!("encoding a leaf phase's output: {e}"));
        for t in &o.tables {
            out.push(pb::LeafStageReply {
                item: Some(pb::leaf_stage_reply::Item::Table(rmp_serde::to_vec(t).map_err(enc)?)),
            });
        }
        if let Some(p) = o.partial {
            out.push(pb::LeafStageReply {
                item: Some(pb::leaf_stage_reply::Item::Partial(rmp_serde::to_vec(&p).map_err(enc)?)),
            });
        }
        out.push(pb::LeafStageReply {
            item: Some(pb::leaf_stage_reply::Item::Done(pb::StageDone {
                series_touched: o.series,
                points_touched: o.points,
            })),
        });
        Ok(out)
    }

    /// Runs a leaf phase of `tenant`'s plan `fp` over `ranges` (which this
    /// leaf must hold ready): what `LeafService.RunStage` answers, without
    /// encoding it. A mixer in the same process calls this directly.
    pub async fn run_stage_local(
        &self,
        tenant: String,
        fp: &FetchPlan,
        ranges: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        limits: QueryLimits,
        deadline: Option<std::time::Instant>,
    ) -> Result<StageOutput, Status> {
        self.stats.stages.fetch_add(1, Ordering::Relaxed);
        self.check_ready(&ranges)?;
        self.ensure_schemas(&tenant, &fp.fetch.target, &fp.fetch.metric).await;
        let source = LeafSource::new(self.name.clone(), self.leaf.clone()).with_ranges(Arc::new(ranges));
        let ctx = ExecCtx::new(tenant, limits, Cancel::new(), deadline);
        let mut tables: Vec<Table> = Vec::new();
        let mut emit = |t: Table| -> danaus_query::Result<()> {
            tables.push(t);
            Ok(())
        };
        let partial = run_leaf_stage(&source, fp, &ctx, &mut emit).await.map_err(|e| stage_status(&e))?;
        Ok(StageOutput { tables, partial, series: ctx.series_touched(), points: ctx.points_touched() })
    }
}

/// A leaf phase's output.
#[derive(Debug)]
pub struct StageOutput {
    /// Finished series.
    pub tables: Vec<Table>,
    /// Partial aggregates, when the phase ends in one.
    pub partial: Option<PhaseOutput>,
    /// Series read.
    pub series: u64,
    /// Points read.
    pub points: u64,
}

/// A leaf phase's error as a status the mixer maps back.
pub fn stage_status(e: &danaus_query::Error) -> Status {
    use danaus_query::Error as E;
    match e {
        E::Limit { .. } => Status::resource_exhausted(e.to_string()),
        E::Cancelled(_) => Status::deadline_exceeded(e.to_string()),
        E::NotFound(_) => Status::not_found(e.to_string()),
        E::Source { unavailable: true, .. } => Status::unavailable(e.to_string()),
        E::Invalid { .. } | E::Eval(_) => Status::invalid_argument(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

type AssignerClient = pb::assigner_service_client::AssignerServiceClient<tonic::transport::Channel>;

type ExportParts = (String, Vec<pb::Series>, BTreeMap<String, TargetSchema>, BTreeMap<String, MetricSchema>);

async fn send_export(tx: &mpsc::Sender<Result<pb::ExportBatch, Status>>, o: ExportParts) -> Result<(), Status> {
    let (tenant, series, targets, metrics) = o;
    let enc = |e: serde_json::Error| Status::internal(format!("encoding schemas: {e}"));
    let batch = pb::ExportBatch {
        tenant,
        target_schemas_json: serde_json::to_vec(&targets.into_values().collect::<Vec<_>>()).map_err(enc)?,
        metric_schemas_json: serde_json::to_vec(&metrics.into_values().collect::<Vec<_>>()).map_err(enc)?,
        series,
        open: Vec::new(),
    };
    tx.send(Ok(batch)).await.map_err(|_| Status::cancelled("the copying leaf went away"))
}

/// `LeafService` over a [`ZoneLeaf`].
#[derive(Clone)]
pub struct LeafSvc(Arc<ZoneLeaf>);

#[tonic::async_trait]
impl pb::leaf_service_server::LeafService for LeafSvc {
    async fn write(&self, req: Request<pb::LeafWriteRequest>) -> Result<Response<pb::WriteResponse>, Status> {
        let tenant = tenant(&req)?;
        Ok(Response::new(self.0.write(&tenant, req.into_inner()).await?))
    }

    type RunStageStream = ReceiverStream<Result<pb::LeafStageReply, Status>>;

    async fn run_stage(&self, req: Request<pb::LeafStageRequest>) -> Result<Response<Self::RunStageStream>, Status> {
        let tenant = tenant(&req)?;
        let replies = self.0.run_stage(tenant, req.into_inner()).await?;
        let (tx, rx) = mpsc::channel(replies.len().max(1));
        for r in replies {
            // The channel holds them all.
            let _ = tx.try_send(Ok(r));
        }
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type ExportStream = ReceiverStream<Result<pb::ExportBatch, Status>>;

    async fn export(&self, req: Request<pb::ExportRequest>) -> Result<Response<Self::ExportStream>, Status> {
        let range = req.into_inner().range.ok_or_else(|| Status::invalid_argument("export needs a range"))?;
        let (tx, rx) = mpsc::channel(2);
        let me = self.0.clone();
        tokio::spawn(async move {
            // Wait for writes checked against older tables (see the module docs).
            drop(me.fence.write().await);
            if let Err(s) = me.export(bounds(&range), tx.clone()).await {
                let _ = tx.send(Err(s)).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn copy_range(&self, req: Request<pb::CopyRangeRequest>) -> Result<Response<pb::CopyRangeReply>, Status> {
        let r = req.into_inner();
        let range = r.range.ok_or_else(|| Status::invalid_argument("copy needs a range"))?;
        Ok(Response::new(self.0.copy_range(bounds(&range), &r.sources).await?))
    }

    type ReadStream = ReceiverStream<Result<pb::ReadResponse, Status>>;

    async fn read(&self, req: Request<pb::LeafReadRequest>) -> Result<Response<Self::ReadStream>, Status> {
        let tenant = tenant(&req)?;
        let r = req.into_inner();
        let rr = crate::grpc::read_request(r.read.unwrap_or_default())?;
        let ranges: Vec<Bounds> = r.ranges.iter().map(bounds).collect();
        self.0.check_ready(&ranges)?;
        self.0.ensure_schemas(&tenant, &rr.target_schema, &rr.metric).await;
        let selected: Vec<_> = self
            .0
            .leaf
            .select(&tenant, &rr)
            .map_err(leaf_status)?
            .into_iter()
            .filter(|s| {
                let t = s.key.target_string().0;
                ranges.iter().any(|(a, b)| t >= *a && b.as_ref().is_none_or(|b| t < *b))
            })
            .collect();
        let span = tracing::info_span!("rpc", method = "LeafService/Read", tenant);
        Ok(Response::new(crate::grpc::stream_read(self.0.leaf.clone(), selected, &rr, None, span)))
    }
}

/// Sets the tenant header on a request.
pub fn with_tenant<T>(req: &mut Request<T>, tenant: &str) -> Result<(), Status> {
    let v = tenant
        .parse()
        .map_err(|_| Status::invalid_argument(format!("tenant {tenant:?} is not a valid header value")))?;
    req.metadata_mut().insert(TENANT_HEADER, v);
    Ok(())
}
