//! The leaf router: series → range → replica leaves, quorum acks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use danaus_assigner::{RangeId, ReplicaState, TableWatcher, ZoneClient, ZoneCommand, ZoneTable};
use danaus_model::validate;
use danaus_proto::convert;
use danaus_proto::v1 as pb;
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
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            quorum: Quorum::Majority,
            deadline: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(2),
            demote_after: Duration::from_secs(1),
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
    /// Replicas demoted to lagging because they missed acknowledged writes.
    pub demotions: AtomicU64,
}

/// Where one series stands.
#[derive(Debug, Clone, Default)]
struct Pending {
    /// Leaves that stored it (or answered it with a final per-series error).
    acks: BTreeSet<String>,
    /// The first final error a replica gave, or one the router found.
    error: Option<pb::SeriesError>,
    /// Quorum reached (or refused before any replica was asked).
    done: bool,
    /// Why it is still pending, for the error at the deadline.
    why: String,
    /// When sends to a leaf first failed.
    failing_since: BTreeMap<String, Instant>,
}

/// Routes writes to the replicas of their ranges.
pub struct LeafRouter {
    table: TableWatcher,
    zone: Arc<ZoneClient>,
    cfg: RouterConfig,
    lanes: Arc<Lanes>,
    /// Counters.
    pub stats: Arc<RouterStats>,
}

impl std::fmt::Debug for LeafRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafRouter").field("cfg", &self.cfg).finish()
    }
}

fn series_error(index: usize, s: &pb::Series, message: String, code: pb::SeriesErrorCode) -> pb::SeriesError {
    pb::SeriesError {
        index: index as u32,
        series: format!("{}::{}", s.target_schema, s.metric),
        message,
        rejected_points: (0..s.points.len() as u32).collect(),
        code: code as i32,
    }
}

/// What one round decided for a series: its range's replicas.
struct Route {
    range: RangeId,
    ready: Vec<String>,
    joining: Vec<String>,
    lagging: Vec<String>,
}

impl Route {
    fn all(&self) -> impl Iterator<Item = &String> {
        self.ready.iter().chain(&self.joining).chain(&self.lagging)
    }

    /// Stored where reads may go and where a copy is under way.
    fn complete(&self, acks: &BTreeSet<String>) -> bool {
        self.ready.iter().chain(&self.joining).all(|l| acks.contains(l))
    }
}

impl LeafRouter {
    /// A router following `table`, demoting replicas through `zone`.
    pub fn new(table: TableWatcher, zone: Arc<ZoneClient>, cfg: RouterConfig) -> Arc<Self> {
        Arc::new(Self { table, zone, cfg, lanes: Arc::default(), stats: Arc::default() })
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
    pub async fn write(&self, tenant: &str, series: Vec<pb::Series>) -> Result<pb::WriteResponse, Status> {
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        self.stats.series.fetch_add(series.len() as u64, Ordering::Relaxed);
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
        for (i, p) in state.iter().enumerate() {
            let rejected = p.error.as_ref().map_or(0, |e| e.rejected_points.len());
            accepted += series[i].points.len().saturating_sub(rejected) as u64;
            if let Some(e) = &p.error {
                errors.push(e.clone());
            }
        }
        Ok(pb::WriteResponse { accepted_points: accepted, errors })
    }

    /// Sends rounds of writes until every series is done or the deadline
    /// passes.
    async fn rounds(
        &self,
        tenant: &str,
        series: &[pb::Series],
        state: &mut [Pending],
        deadline: Instant,
    ) -> Result<(), Status> {
        let mut backoff = Duration::from_millis(20);
        loop {
            let mut table = self.table.current();
            if table.ranges.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                table = self.table.wait_for(1, left).await.map_err(|e| Status::unavailable(e.to_string()))?;
            }
            // Route every open series and batch it per leaf. Series of one
            // target (a scrape, a host) share a route: computed once.
            let mut batches: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            let mut routes: Vec<(usize, Arc<Route>)> = Vec::new();
            let mut cache = RouteCache::default();
            for (i, s) in series.iter().enumerate() {
                if state[i].done {
                    continue;
                }
                match cache.route(&table, tenant, series, i) {
                    Err((msg, code)) => {
                        state[i].error = Some(series_error(i, s, msg, code));
                        state[i].done = true;
                    }
                    Ok(None) => state[i].why = "no ready replica holds its range in the zone table".into(),
                    Ok(Some(r)) => {
                        if r.complete(&state[i].acks) {
                            state[i].done = true;
                            continue;
                        }
                        for leaf in r.all() {
                            if !state[i].acks.contains(leaf) {
                                // Look up before inserting: no name copied per series.
                                match batches.get_mut(leaf) {
                                    Some(b) => b.push(i),
                                    None => {
                                        batches.insert(leaf.clone(), vec![i]);
                                    }
                                }
                            }
                        }
                        routes.push((i, r));
                    }
                }
            }
            if state.iter().all(|p| p.done) {
                return Ok(());
            }
            let sends = batches.into_iter().map(|(leaf, idx)| {
                let addr = table.leaves.get(&leaf).map(|e| e.addr.clone());
                let req = pb::LeafWriteRequest {
                    table_version: table.version,
                    series: idx.iter().map(|&i| series[i].clone()).collect(),
                };
                async move {
                    let r = match addr {
                        None => Err(format!("leaf {leaf} has no address in the zone table")),
                        Some(addr) => self.send(tenant, &addr, req).await,
                    };
                    (leaf, idx, r)
                }
            });
            let mut stale = false;
            let now = Instant::now();
            for (leaf, idx, r) in futures::future::join_all(sends).await {
                match r {
                    Err(e) => {
                        self.stats.replica_failures.fetch_add(1, Ordering::Relaxed);
                        for &i in &idx {
                            state[i].why = format!("leaf {leaf}: {e}");
                            state[i].failing_since.entry(leaf.clone()).or_insert(now);
                        }
                    }
                    Ok(resp) => {
                        let mut errs: HashMap<u32, pb::SeriesError> = HashMap::new();
                        for e in resp.errors {
                            errs.insert(e.index, e);
                        }
                        for (j, &i) in idx.iter().enumerate() {
                            match errs.remove(&(j as u32)) {
                                None => {
                                    state[i].acks.insert(leaf.clone());
                                }
                                Some(e) if e.code == pb::SeriesErrorCode::WrongReplica as i32 => {
                                    self.stats.stale_map.fetch_add(1, Ordering::Relaxed);
                                    stale = true;
                                    state[i].why = format!("leaf {leaf}: {}", e.message);
                                }
                                Some(e) if e.code == pb::SeriesErrorCode::NotFound as i32 => {
                                    // The table has the schema (else routing
                                    // refused it): the leaf's mirror lags.
                                    state[i].why = format!("leaf {leaf}: {}", e.message);
                                }
                                Some(mut e) => {
                                    e.index = i as u32;
                                    state[i].acks.insert(leaf.clone());
                                    state[i].error.get_or_insert(e);
                                }
                            }
                        }
                    }
                }
            }
            // Done where complete; demote ready replicas that keep failing
            // once a majority stored the write.
            let mut demote: BTreeSet<(RangeId, String)> = BTreeSet::new();
            let now = Instant::now();
            for (i, r) in &routes {
                let p = &mut state[*i];
                let r = &**r;
                if r.complete(&p.acks) {
                    p.done = true;
                    continue;
                }
                if self.cfg.quorum != Quorum::Majority || !r.joining.iter().all(|l| p.acks.contains(l)) {
                    continue;
                }
                let stored = r.ready.iter().filter(|l| p.acks.contains(*l)).count();
                if stored < r.ready.len() / 2 + 1 {
                    continue;
                }
                let missing: Vec<&String> = r.ready.iter().filter(|l| !p.acks.contains(*l)).collect();
                let failing = |l: &String| {
                    p.failing_since.get(l).is_some_and(|since| now.duration_since(*since) >= self.cfg.demote_after)
                };
                if missing.iter().all(|l| failing(l)) {
                    for l in missing {
                        demote.insert((r.range, l.clone()));
                    }
                }
            }
            if state.iter().all(|p| p.done) {
                return Ok(());
            }
            let mut newest = 0;
            for (range, leaf) in demote {
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

    async fn send(&self, tenant: &str, addr: &str, req: pb::LeafWriteRequest) -> Result<pb::WriteResponse, String> {
        self.lanes.send(tenant, addr, req.table_version, req.series, self.cfg.attempt_timeout).await
    }
}

type Routed = Result<Option<Arc<Route>>, (String, pb::SeriesErrorCode)>;

/// Routes of one round by target: series that name the same target schema,
/// metric and target fields go where the first of them went.
#[derive(Default)]
struct RouteCache {
    /// Order-independent hash of a series' routing inputs → (series
    /// position, its route), checked for equality on a hit.
    seen: HashMap<u64, Vec<(usize, Routed)>>,
}

impl RouteCache {
    fn route(&mut self, table: &ZoneTable, tenant: &str, series: &[pb::Series], i: usize) -> Routed {
        let s = &series[i];
        let key = routing_hash(s);
        let same = |j: usize| {
            let o = &series[j];
            o.target_schema == s.target_schema && o.metric == s.metric && o.target_fields == s.target_fields
        };
        if let Some(hit) = self.seen.get(&key).and_then(|v| v.iter().find(|(j, _)| same(*j))) {
            return hit.1.clone();
        }
        let r = route(table, tenant, s).map(|o| o.map(Arc::new));
        self.seen.entry(key).or_default().push((i, r.clone()));
        r
    }
}

/// A hash of what decides a series' range, independent of the order of
/// its target fields' map.
fn routing_hash(s: &pb::Series) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let state = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    let one = |x: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
        let mut h = state.build_hasher();
        x(&mut h);
        h.finish()
    };
    let mut acc = one(&|h| {
        s.target_schema.hash(h);
        s.metric.hash(h);
    });
    for (k, v) in &s.target_fields {
        acc = acc.wrapping_add(one(&|h| {
            k.hash(h);
            match &v.value {
                Some(pb::field_value::Value::StringValue(x)) => (1u8, x).hash(h),
                Some(pb::field_value::Value::Int64Value(x)) => (2u8, x).hash(h),
                Some(pb::field_value::Value::BoolValue(x)) => (3u8, x).hash(h),
                None => 0u8.hash(h),
            }
        }));
    }
    acc
}

/// The replicas of a series' range; `Err` for a series no replica could
/// take (unknown schema, malformed fields).
fn route(table: &ZoneTable, tenant: &str, s: &pb::Series) -> Result<Option<Route>, (String, pb::SeriesErrorCode)> {
    let ts = table.target_schema(tenant, &s.target_schema).ok_or_else(|| {
        (
            format!("unknown target schema {:?}; apply it first (danausctl schema apply)", s.target_schema),
            pb::SeriesErrorCode::NotFound,
        )
    })?;
    let Some(ms) = table.metric_schema(tenant, &s.metric) else {
        return Err((
            format!("unknown metric schema {:?}; apply it first (danausctl schema apply)", s.metric),
            pb::SeriesErrorCode::NotFound,
        ));
    };
    let fields = convert::field_list(&s.target_fields).map_err(|e| (e.0, pb::SeriesErrorCode::InvalidArgument))?;
    let target = validate::routing_target(tenant, ts, Some(ms), &fields)
        .map_err(|e| (e.to_string(), pb::SeriesErrorCode::InvalidArgument))?;
    let Some(r) = table.range_for(&target) else { return Ok(None) };
    let mut route = Route { range: r.id, ready: Vec::new(), joining: Vec::new(), lagging: Vec::new() };
    for rep in &r.replicas {
        match rep.state {
            ReplicaState::Ready => route.ready.push(rep.leaf.clone()),
            ReplicaState::Joining => route.joining.push(rep.leaf.clone()),
            ReplicaState::Lagging => route.lagging.push(rep.leaf.clone()),
        }
    }
    if route.ready.is_empty() {
        return Ok(None);
    }
    Ok(Some(route))
}
