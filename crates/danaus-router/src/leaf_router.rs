//! The leaf router: series → range → replica leaves, quorum acks.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use danaus_assigner::{MetricLookup, RangeId, ReplicaState, TableWatcher, ZoneClient, ZoneCommand, ZoneTable};
use danaus_model::SeriesWrite;
use danaus_model::{validate, FieldValue, MetricSchema};
use danaus_proto::v1 as pb;
use rustc_hash::FxHashMap;
use tokio::time::Instant;
use tonic::Status;

use crate::lanes::Lanes;

/// How many replicas must store a write before it is acknowledged.
///
/// Reads go to one ready replica, so an acknowledged point must be on
/// every ready replica. With `Majority`, a write stored by a majority of
/// the ready replicas is acknowledged once the others have been demoted to
/// lagging in the zone table (after failing for `demote_after`): they are
/// not read again until the assigner has repaired them. A minority never
/// demotes a majority, so a router cut off from most leaves cannot. With
/// `All`, nothing is demoted: a write waits for every ready replica.
///
/// A mixer whose table is a little older may still read a replica that
/// was demoted or moved away; so once a range's read set has shrunk
/// (`Range::read_set_shrunk_at`), writes to it are acknowledged only
/// `read_confirm_window` after this router first saw that table — by then
/// no mixer calls an answer planned by the older table complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    /// A majority stores it; the rest store it or are demoted.
    Majority,
    /// Every ready replica stores it.
    All,
}

impl Quorum {
    /// Parses `majority` or `all`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "majority" => Ok(Quorum::Majority),
            "all" => Ok(Quorum::All),
            _ => Err(format!("unknown write quorum {s:?}: use majority or all")),
        }
    }
}

/// How the router writes.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Replicas that must store a write before it is acknowledged.
    pub quorum: Quorum,
    /// Give up on a write (UNAVAILABLE) after this long.
    pub deadline: Duration,
    /// Longest wait for one replica's answer.
    pub attempt_timeout: Duration,
    /// With `Majority`, demote a ready replica that has failed for this long.
    pub demote_after: Duration,
    /// How long after first seeing a range's read set shrink writes to it
    /// wait before they are acknowledged (at least the mixers' window).
    pub read_confirm_window: Duration,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            quorum: Quorum::Majority,
            deadline: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(2),
            demote_after: Duration::from_secs(1),
            read_confirm_window: danaus_assigner::READ_CONFIRM_WINDOW,
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RouterStats {
    /// Write requests.
    pub writes: AtomicU64,
    /// Series routed.
    pub series: AtomicU64,
    /// Sends to a replica that failed (unreachable, timed out).
    pub replica_failures: AtomicU64,
    /// Series a replica refused because the router's map was stale.
    pub stale_map: AtomicU64,
    /// Writes that did not reach quorum by the deadline.
    pub quorum_failures: AtomicU64,
    /// Writes held back after a range's read set shrank, until mixers
    /// could no longer plan by the older table.
    pub read_holds: AtomicU64,
    /// Replicas demoted to lagging because they missed acknowledged writes.
    pub demotions: AtomicU64,
}

/// Where one series stands (which leaves stored it is in [`Acks`]).
#[derive(Debug, Clone, Default)]
struct Pending {
    /// The first final error a replica gave, or one the router found.
    error: Option<pb::SeriesError>,
    /// Quorum reached (or refused before any replica was asked).
    done: bool,
    /// Why it is still pending, for the error at the deadline.
    why: String,
}

/// The leaves one write reaches, numbered in the order first met.
#[derive(Default)]
struct Leaves {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Leaves {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        id
    }
}

/// Which leaves stored (or finally answered) which series of one write:
/// a bitset over the series per leaf, so tracking costs nothing per series
/// beyond a bit per replica.
struct Acks {
    words: usize,
    by_leaf: Vec<Vec<u64>>,
}

impl Acks {
    fn new(series: usize) -> Self {
        Self { words: series.div_ceil(64), by_leaf: Vec::new() }
    }

    fn has(&self, leaf: u32, i: usize) -> bool {
        self.by_leaf.get(leaf as usize).is_some_and(|b| b[i / 64] >> (i % 64) & 1 == 1)
    }

    fn set(&mut self, leaf: u32, i: usize) {
        let leaf = leaf as usize;
        if self.by_leaf.len() <= leaf {
            self.by_leaf.resize_with(leaf + 1, || vec![0; self.words]);
        }
        self.by_leaf[leaf][i / 64] |= 1 << (i % 64);
    }
}

/// Routes writes to the replicas of their ranges.
pub struct LeafRouter {
    table: TableWatcher,
    zone: Arc<ZoneClient>,
    cfg: RouterConfig,
    lanes: Arc<Lanes>,
    /// Counters.
    pub stats: Arc<RouterStats>,
    /// Per range: the read-set shrink last seen and when it was first seen.
    read_holds: parking_lot::Mutex<HashMap<RangeId, (u64, Instant)>>,
}

impl std::fmt::Debug for LeafRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafRouter").field("cfg", &self.cfg).finish()
    }
}

fn series_error(index: usize, s: &SeriesWrite, message: String, code: pb::SeriesErrorCode) -> pb::SeriesError {
    pb::SeriesError {
        index: index as u32,
        series: format!("{}::{}", s.target_schema, s.metric),
        message,
        rejected_points: (0..s.points.len() as u32).collect(),
        code: code as i32,
    }
}

/// What one round decided for a series: its range's replicas (leaf ids of
/// the write's [`Leaves`]).
struct Route {
    range: RangeId,
    /// The range's `read_set_shrunk_at`.
    shrunk_at: u64,
    ready: Vec<u32>,
    joining: Vec<u32>,
    lagging: Vec<u32>,
}

impl Route {
    fn all(&self) -> impl Iterator<Item = u32> + '_ {
        self.ready.iter().chain(&self.joining).chain(&self.lagging).copied()
    }

    /// Series `i` is stored where reads may go and where a copy is under way.
    fn complete(&self, acks: &Acks, i: usize) -> bool {
        self.ready.iter().chain(&self.joining).all(|&l| acks.has(l, i))
    }
}

impl LeafRouter {
    /// A router following `table`, demoting replicas through `zone`.
    pub fn new(table: TableWatcher, zone: Arc<ZoneClient>, cfg: RouterConfig) -> Arc<Self> {
        let router = Arc::new(Self {
            table,
            zone,
            cfg,
            lanes: Arc::default(),
            stats: Arc::default(),
            read_holds: Default::default(),
        });
        // Note read-set shrinks as tables arrive, not when a write first
        // meets them: a range demoted an hour ago holds no write now.
        let (weak, mut rx) = (Arc::downgrade(&router), router.table.subscribe());
        tokio::spawn(async move {
            loop {
                let t = rx.borrow_and_update().clone();
                let Some(router) = weak.upgrade() else { return };
                let now = Instant::now();
                for r in t.ranges.values() {
                    router.read_hold(r.id, r.read_set_shrunk_at, now);
                }
                drop(router);
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        router
    }

    /// A series stored where its route needs it is done, unless its
    /// range's read set shrank too recently: then it waits (`held`).
    fn finish(&self, p: &mut Pending, route: &Route, now: Instant, held: &mut Option<Instant>) {
        match self.read_hold(route.range, route.shrunk_at, now) {
            Some(until) => {
                *held = (*held).max(Some(until));
                p.why = "stored, but mixers may not know yet that a replica which did not take it is no longer \
                         read; waiting for them"
                    .into();
            }
            None => p.done = true,
        }
    }

    /// Until when writes to `range`, whose read set last shrank at table
    /// version `shrunk_at`, wait before they are acknowledged; `None` once
    /// that is past. A shrink counts from when this router first saw it
    /// (for the table it starts with, from then: it may have been just
    /// before).
    fn read_hold(&self, range: RangeId, shrunk_at: u64, now: Instant) -> Option<Instant> {
        if shrunk_at == 0 {
            return None;
        }
        let mut holds = self.read_holds.lock();
        let seen = holds.entry(range).or_insert((shrunk_at, now));
        if shrunk_at > seen.0 {
            *seen = (shrunk_at, now);
        }
        let until = seen.1 + self.cfg.read_confirm_window;
        (until > now).then_some(until)
    }

    /// The zone table the router routes by.
    pub fn table(&self) -> &TableWatcher {
        &self.table
    }

    /// Sends writes for the leaf at `addr` to `leaf` by a direct call
    /// instead of `LeafService.Write`: for leaves in the router's own
    /// process (`danaus standalone`). Fencing, errors and acknowledgement
    /// are the RPC's; only the encoding and the socket go.
    pub fn add_local_leaf(&self, addr: impl Into<String>, leaf: Arc<danaus_node::zone_leaf::ZoneLeaf>) {
        self.lanes.add_local(addr.into(), leaf);
    }

    /// Writes `series` of `tenant`. Per-series problems (invalid data,
    /// unknown schemas, conflicts) are listed in the response; if some
    /// series did not reach its write quorum by the deadline, the whole
    /// call fails with UNAVAILABLE, and retrying it is safe (replicas
    /// recognise points they already hold).
    pub async fn write(&self, tenant: &str, series: Vec<SeriesWrite>) -> Result<pb::WriteResponse, Status> {
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        self.stats.series.fetch_add(series.len() as u64, Ordering::Relaxed);
        let series = Arc::new(series);
        let mut state = vec![Pending::default(); series.len()];
        let deadline = Instant::now() + self.cfg.deadline;
        self.rounds(tenant, &series, &mut state, deadline).await?;
        let stuck: Vec<(usize, &Pending)> = state.iter().enumerate().filter(|(_, p)| !p.done).collect();
        if !stuck.is_empty() {
            self.stats.quorum_failures.fetch_add(1, Ordering::Relaxed);
            let (i, p) = stuck[0];
            return Err(Status::unavailable(format!(
                "{} of {} series did not reach the write quorum within {:?}; the first, series {} ({}::{}): {}. Retrying the write is safe.",
                stuck.len(),
                series.len(),
                self.cfg.deadline,
                i,
                series[i].target_schema,
                series[i].metric,
                p.why
            )));
        }
        let mut accepted = 0u64;
        let mut errors = Vec::new();
        for (i, p) in state.into_iter().enumerate() {
            let rejected = p.error.as_ref().map_or(0, |e| e.rejected_points.len());
            accepted += series[i].points.len().saturating_sub(rejected) as u64;
            errors.extend(p.error);
        }
        Ok(pb::WriteResponse { accepted_points: accepted, errors })
    }

    /// Sends rounds of writes until every series is done or the deadline
    /// passes.
    async fn rounds(
        &self,
        tenant: &str,
        series: &Arc<Vec<SeriesWrite>>,
        state: &mut [Pending],
        deadline: Instant,
    ) -> Result<(), Status> {
        let mut backoff = Duration::from_millis(20);
        let mut leaves = Leaves::default();
        let mut acks = Acks::new(series.len());
        // When sends to a leaf first failed in this write.
        let mut failing_since: HashMap<u32, Instant> = HashMap::new();
        loop {
            let mut table = self.table.current();
            if table.ranges.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                table = self.table.wait_for(1, left).await.map_err(|e| Status::unavailable(e.to_string()))?;
            }
            // Route every open series and batch it per leaf. Series of one
            // target (a scrape, a host) share a route: computed once.
            let mut batches: Vec<Vec<usize>> = Vec::new();
            let mut routed: Vec<(usize, u32)> = Vec::new();
            let mut cache = RouteCache::new(&table, tenant);
            // Stored where it must be, but readers may not know yet that a
            // replica which did not take it is no longer read: until then.
            let mut held: Option<Instant> = None;
            let round_start = Instant::now();
            for (i, s) in series.iter().enumerate() {
                if state[i].done {
                    continue;
                }
                match cache.route(series, i, &mut leaves) {
                    Err((msg, code)) => {
                        state[i].error = Some(series_error(i, s, msg, code));
                        state[i].done = true;
                    }
                    Ok(None) => state[i].why = "no ready replica holds its range in the zone table".into(),
                    Ok(Some(r)) => {
                        let route = &cache.routes[r as usize];
                        if route.complete(&acks, i) {
                            self.finish(&mut state[i], route, round_start, &mut held);
                            continue;
                        }
                        for leaf in route.all() {
                            if !acks.has(leaf, i) {
                                let leaf = leaf as usize;
                                if batches.len() <= leaf {
                                    batches.resize_with(leaf + 1, Vec::new);
                                }
                                batches[leaf].push(i);
                            }
                        }
                        routed.push((i, r));
                    }
                }
            }
            if state.iter().all(|p| p.done) {
                return Ok(());
            }
            if let (Some(until), true) = (held, batches.iter().all(Vec::is_empty)) {
                // Nothing left to send: only the hold.
                self.stats.read_holds.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep_until(until.min(deadline)).await;
                if Instant::now() >= deadline {
                    return Ok(());
                }
                continue;
            }
            let sends = batches.into_iter().enumerate().filter(|(_, idx)| !idx.is_empty()).map(|(leaf, idx)| {
                let leaf = leaf as u32;
                let name = &leaves.names[leaf as usize];
                let addr = table.leaves.get(name).map(|e| e.addr.clone());
                let version = table.version;
                async move {
                    let r = match addr {
                        None => Err(format!("leaf {name} has no address in the zone table")),
                        Some(addr) => self.send(tenant, &addr, version, (series.clone(), idx.clone())).await,
                    };
                    (leaf, idx, r)
                }
            });
            let mut stale = false;
            let now = Instant::now();
            for (leaf, idx, r) in futures::future::join_all(sends).await {
                let name = &leaves.names[leaf as usize];
                match r {
                    Err(e) => {
                        self.stats.replica_failures.fetch_add(1, Ordering::Relaxed);
                        failing_since.entry(leaf).or_insert(now);
                        for &i in &idx {
                            state[i].why = format!("leaf {name}: {e}");
                        }
                    }
                    Ok(resp) => {
                        failing_since.remove(&leaf);
                        // Errors come sorted by position in the batch.
                        let mut errs = resp.errors.into_iter().peekable();
                        for (j, &i) in idx.iter().enumerate() {
                            // An error out of order (a leaf's bug) must not
                            // stall the rest into counting as stored.
                            while errs.peek().is_some_and(|e| (e.index as usize) < j) {
                                debug_assert!(false, "leaf {name} answered errors out of order");
                                errs.next();
                            }
                            let e = match errs.peek() {
                                Some(e) if e.index as usize == j => errs.next(),
                                _ => None,
                            };
                            match e {
                                None => acks.set(leaf, i),
                                Some(e) if e.code == pb::SeriesErrorCode::WrongReplica as i32 => {
                                    self.stats.stale_map.fetch_add(1, Ordering::Relaxed);
                                    stale = true;
                                    state[i].why = format!("leaf {name}: {}", e.message);
                                }
                                Some(e) if e.code == pb::SeriesErrorCode::NotFound as i32 => {
                                    // The table has the schema (else routing
                                    // refused it): the leaf's mirror lags.
                                    state[i].why = format!("leaf {name}: {}", e.message);
                                }
                                Some(mut e) => {
                                    e.index = i as u32;
                                    acks.set(leaf, i);
                                    state[i].error.get_or_insert(e);
                                }
                            }
                        }
                    }
                }
            }
            // Done where complete; demote ready replicas that keep failing
            // once a majority stored the write.
            let mut demote: BTreeSet<(RangeId, u32)> = BTreeSet::new();
            let now = Instant::now();
            for &(i, r) in &routed {
                let p = &mut state[i];
                let r = &cache.routes[r as usize];
                if r.complete(&acks, i) {
                    self.finish(p, r, now, &mut held);
                    continue;
                }
                if self.cfg.quorum != Quorum::Majority || !r.joining.iter().all(|&l| acks.has(l, i)) {
                    continue;
                }
                let stored = r.ready.iter().filter(|&&l| acks.has(l, i)).count();
                if stored < r.ready.len() / 2 + 1 {
                    continue;
                }
                let failing = |l: u32| {
                    failing_since.get(&l).is_some_and(|since| now.duration_since(*since) >= self.cfg.demote_after)
                };
                let mut missing = r.ready.iter().copied().filter(|&l| !acks.has(l, i));
                if missing.clone().all(failing) {
                    for l in missing.by_ref() {
                        demote.insert((r.range, l));
                    }
                }
            }
            if state.iter().all(|p| p.done) {
                return Ok(());
            }
            let mut newest = 0;
            for (range, leaf) in demote {
                let leaf = leaves.names[leaf as usize].clone();
                match self.zone.propose(&ZoneCommand::Demote { range, leaf: leaf.clone() }).await {
                    Ok(v) => {
                        self.stats.demotions.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(range, leaf = %leaf, "demoted an unreachable replica to lagging");
                        newest = newest.max(v);
                    }
                    Err(e) => {
                        tracing::warn!(range, leaf = %leaf, "could not demote an unreachable replica: {}", e.message())
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            if newest > 0 {
                // Route by the table with the demotions before going on.
                let _ = self.table.wait_for(newest, deadline - now).await;
                continue;
            }
            let pause = backoff.min(deadline - now);
            if stale {
                // Wait for the table the replicas know, briefly.
                let _ = self.table.wait_for(table.version + 1, pause.max(Duration::from_millis(200))).await;
            } else {
                tokio::time::sleep(pause).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
        }
    }

    async fn send(
        &self,
        tenant: &str,
        addr: &str,
        version: u64,
        part: (Arc<Vec<SeriesWrite>>, Vec<usize>),
    ) -> Result<pb::WriteResponse, String> {
        self.lanes.send(tenant, addr, version, part, self.cfg.attempt_timeout).await
    }
}

/// A series' route (an index into [`RouteCache::routes`]), `None` when no
/// ready replica holds its range, or why no replica can take it.
type Routed = Result<Option<u32>, (String, pb::SeriesErrorCode)>;

/// Routes of one round by target: series that name the same target schema,
/// metric and target fields go where the first of them went.
struct RouteCache<'a> {
    table: &'a ZoneTable,
    tenant: &'a str,
    metrics: MetricLookup<'a>,
    routes: Vec<Route>,
    /// The previous series' position and route: series of a target come
    /// together, so this is the usual hit.
    /// Whether it was routed by its target alone.
    last: Option<(usize, Routed, bool)>,
    /// Hash of a series' routing inputs → (series position, its route),
    /// checked for equality on a hit.
    seen: FxHashMap<u64, Vec<(usize, Routed)>>,
}

/// Whether `a` and `b` route alike whatever their metric's collection.
fn same_route_inputs(a: &SeriesWrite, b: &SeriesWrite) -> bool {
    a.metric == b.metric && a.same_target(b)
}

impl<'a> RouteCache<'a> {
    fn new(table: &'a ZoneTable, tenant: &'a str) -> RouteCache<'a> {
        RouteCache {
            table,
            tenant,
            metrics: table.metric_lookup(tenant),
            routes: Vec::new(),
            last: None,
            seen: FxHashMap::default(),
        }
    }

    fn route(&mut self, series: &'a [SeriesWrite], i: usize, leaves: &mut Leaves) -> Routed {
        let s = &series[i];
        // A metric decides the route only when its collection drops target
        // fields; otherwise the series of one target (a host's many
        // metrics) share the route.
        let metric = self.metrics.get(&s.metric);
        let by_target = metric.is_some_and(|m| m.collection.as_ref().is_none_or(|c| c.drop_fields.is_empty()));
        if let Some((j, r, last_by_target)) = &self.last {
            let p = &series[*j];
            if same_route_inputs(p, s) || (by_target && *last_by_target && r.is_ok() && p.same_target(s)) {
                return r.clone();
            }
        }
        let key = routing_hash(s);
        let hit = self.seen.get(&key).and_then(|v| v.iter().find(|(j, _)| same_route_inputs(&series[*j], s)));
        let r = match hit {
            Some((_, r)) => r.clone(),
            None => {
                let r = route(self.table, self.tenant, s, metric, leaves).map(|o| {
                    o.map(|route| {
                        self.routes.push(route);
                        (self.routes.len() - 1) as u32
                    })
                });
                self.seen.entry(key).or_default().push((i, r.clone()));
                r
            }
        };
        self.last = Some((i, r.clone(), by_target));
        r
    }
}

/// A hash of what decides a series' range (fields in the order given: a
/// different order only misses the cache).
fn routing_hash(s: &SeriesWrite) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    s.target_schema.hash(&mut h);
    s.metric.hash(&mut h);
    for (k, v) in s.target_fields.iter() {
        k.hash(&mut h);
        match v {
            FieldValue::String(x) => (1u8, x).hash(&mut h),
            FieldValue::Int64(x) => (2u8, x).hash(&mut h),
            FieldValue::Bool(x) => (3u8, x).hash(&mut h),
        }
    }
    h.finish()
}

/// The replicas of a series' range; `Err` for a series no replica could
/// take (unknown schema, malformed fields).
fn route(
    table: &ZoneTable,
    tenant: &str,
    s: &SeriesWrite,
    ms: Option<&MetricSchema>,
    leaves: &mut Leaves,
) -> Result<Option<Route>, (String, pb::SeriesErrorCode)> {
    let ts = table.target_schema(tenant, &s.target_schema).ok_or_else(|| {
        (
            format!("unknown target schema {:?}; apply it first (danausctl schema apply)", s.target_schema),
            pb::SeriesErrorCode::NotFound,
        )
    })?;
    let Some(ms) = ms else {
        return Err((
            format!("unknown metric schema {:?}; apply it first (danausctl schema apply)", s.metric),
            pb::SeriesErrorCode::NotFound,
        ));
    };
    let target = validate::routing_target(tenant, ts, Some(ms), &s.target_fields)
        .map_err(|e| (e.to_string(), pb::SeriesErrorCode::InvalidArgument))?;
    let Some(r) = table.range_for(&target) else { return Ok(None) };
    let mut route = Route {
        range: r.id,
        shrunk_at: r.read_set_shrunk_at,
        ready: Vec::new(),
        joining: Vec::new(),
        lagging: Vec::new(),
    };
    for rep in &r.replicas {
        let id = leaves.id(&rep.leaf);
        match rep.state {
            ReplicaState::Ready => route.ready.push(id),
            ReplicaState::Joining => route.joining.push(id),
            ReplicaState::Lagging => route.lagging.push(id),
        }
    }
    if route.ready.is_empty() {
        return Ok(None);
    }
    Ok(Some(route))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use danaus_assigner::{LeafEntry, Range, Replica, TenantSchemas};
    use danaus_model::{
        CollectionAggregation, FieldDef, FieldType, MetricKind, MetricSchema, ScalarType, TargetSchema, ValueType,
    };

    fn metric(name: &str, drop: &[&str]) -> MetricSchema {
        MetricSchema {
            name: name.into(),
            fields: vec![],
            value_type: ValueType::Scalar(ScalarType::Int64),
            kind: MetricKind::Delta,
            unit: "1".into(),
            description: String::new(),
            collection: (!drop.is_empty()).then(|| CollectionAggregation {
                drop_fields: drop.iter().map(|d| d.to_string()).collect(),
                period: 1_000_000_000,
                admission_window: 1_000_000_000,
            }),
        }
    }

    fn series(task: &str, metric: &str) -> SeriesWrite {
        SeriesWrite {
            target_schema: "Task".into(),
            target_fields: vec![
                ("cluster".into(), FieldValue::String("c".into())),
                ("task".into(), FieldValue::String(task.into())),
            ]
            .into(),
            metric: metric.into(),
            metric_fields: Arc::from([]),
            points: vec![],
        }
    }

    /// A host's series share its route, except where a metric's collection
    /// drops target fields: that series goes by its output target.
    #[test]
    fn series_of_a_target_share_a_route_unless_their_metric_drops_target_fields() {
        let ts = TargetSchema {
            name: "Task".into(),
            fields: vec![FieldDef::new("cluster", FieldType::String), FieldDef::new("task", FieldType::String)],
            location_field: "cluster".into(),
        };
        let mut schemas = TenantSchemas::default();
        schemas.targets.insert("Task".into(), ts.clone());
        for m in [metric("/a", &[]), metric("/b", &[]), metric("/sum", &["task"])] {
            schemas.metrics.insert(m.name.clone(), m);
        }
        // Split between the output target (task blanked) and task "t1".
        let blank = validate::encoded_target(
            "acme",
            &ts,
            &[("cluster".into(), FieldValue::String("c".into())), ("task".into(), FieldValue::String(String::new()))],
        )
        .unwrap();
        let split = validate::encoded_target(
            "acme",
            &ts,
            &[("cluster".into(), FieldValue::String("c".into())), ("task".into(), FieldValue::String("t1".into()))],
        )
        .unwrap();
        assert!(blank < split);
        let range = |id: RangeId, start: Vec<u8>, end: Option<Vec<u8>>, leaf: &str| Range {
            id,
            start,
            end,
            replicas: vec![Replica { leaf: leaf.into(), state: ReplicaState::Ready }],
            changed_at: 1,
            read_set_shrunk_at: 0,
        };
        let mut table = ZoneTable { version: 1, ..ZoneTable::default() };
        table.ranges.insert(Vec::new(), range(1, Vec::new(), Some(split.clone()), "low"));
        table.ranges.insert(split.clone(), range(2, split, None, "high"));
        for l in ["low", "high"] {
            table.leaves.insert(l.into(), LeafEntry { addr: format!("{l}:1"), accepting: true });
        }
        table.schemas.insert("acme".into(), schemas);

        let batch = vec![
            series("t1", "/a"),
            series("t1", "/sum"),
            series("t1", "/b"),
            series("t1", "/nope"),
            series("t1", "/a"),
        ];
        let mut cache = RouteCache::new(&table, "acme");
        let mut leaves = Leaves::default();
        let leaf_of = |r: Routed, cache: &RouteCache, leaves: &Leaves| {
            let route = &cache.routes[r.unwrap().unwrap() as usize];
            leaves.names[route.ready[0] as usize].clone()
        };
        let r = cache.route(&batch, 0, &mut leaves);
        assert_eq!(leaf_of(r, &cache, &leaves), "high");
        let r = cache.route(&batch, 1, &mut leaves);
        assert_eq!(leaf_of(r, &cache, &leaves), "low", "the dropping metric goes by its output target");
        let r = cache.route(&batch, 2, &mut leaves);
        assert_eq!(leaf_of(r, &cache, &leaves), "high");
        let r = cache.route(&batch, 3, &mut leaves);
        assert!(r.unwrap_err().0.contains("unknown metric schema \"/nope\""));
        let r = cache.route(&batch, 4, &mut leaves);
        assert_eq!(leaf_of(r, &cache, &leaves), "high");
        // "/a", "/sum", and "/b" after "/sum" routed afresh; the last "/a"
        // shares "/b"'s.
        assert_eq!(cache.routes.len(), 3);
    }
}
