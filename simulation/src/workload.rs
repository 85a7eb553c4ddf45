//! Clients of the simulated cluster: writers that record every
//! acknowledgement, readers that check what they read against the model.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use danaus_client::Client;
use danaus_proto::v1 as pb;
use madsim::rand::{seq::SliceRandom, thread_rng, Rng};
use madsim::time::{sleep, timeout, Instant};
use parking_lot::Mutex;

use crate::cluster::zone_name;
use crate::model::{host, value_of, State, SERIES, STEP, T_BASE};

/// The tenant the workload uses.
pub const TENANT: &str = "sim";
/// Target schema and metric of the workload.
pub const TARGET: &str = "Host";
/// The metric.
pub const METRIC: &str = "/sim/value";

/// What every client task shares.
#[derive(Clone)]
pub struct Ctx {
    /// The model.
    pub state: Arc<Mutex<State>>,
    /// Every zone's routers (`http://host:port`), by zone.
    pub routers: Vec<Vec<String>>,
    /// Every zone's mixer, by zone.
    pub mixers: Vec<String>,
    /// The root mixer (queries over every zone).
    pub root: String,
    /// The config service's members.
    pub config: Vec<String>,
    /// Set when the workload should stop.
    pub stop: Arc<AtomicBool>,
    /// Start of the run, for trace times.
    pub start: Instant,
    /// By zone: whether the metric has gained the field `shard` there
    /// ([`grow_schema`]); writers then sometimes give it (as "", which
    /// leaves every series' key as it was) and readers match on it.
    pub grown: Arc<Vec<AtomicBool>>,
}

impl Ctx {
    /// Records a trace event now.
    pub fn event(&self, what: &str) {
        self.state.lock().event(self.start.elapsed(), what);
    }

    /// The zone owning series `i` (its location).
    pub fn zone_of(&self, i: usize) -> usize {
        i % self.mixers.len()
    }

    /// Whether series `i`'s metric has gained `shard` in its zone.
    fn grown(&self, i: usize) -> bool {
        self.grown.get(self.zone_of(i)).is_some_and(|g| g.load(Ordering::Relaxed))
    }

    async fn connect(&self, addr: &str) -> Option<Client> {
        match timeout(Duration::from_secs(2), Client::connect(addr, Some(TENANT))).await {
            Ok(Ok(c)) => Some(c),
            _ => None,
        }
    }

    /// A client of a router picked at random: a router forwards what
    /// another zone owns.
    async fn any_router(&self) -> Option<Client> {
        let addr = self.routers.choose(&mut thread_rng())?.choose(&mut thread_rng())?.clone();
        self.connect(&addr).await
    }
}

fn s(v: &str) -> pb::FieldValue {
    pb::FieldValue { value: Some(pb::field_value::Value::StringValue(v.into())) }
}

/// Creates the workload's schemas in every zone, retrying until each
/// zone's router answers.
pub async fn apply_schemas(ctx: Ctx) {
    let target = pb::TargetSchema {
        name: TARGET.into(),
        fields: vec![
            pb::FieldDef { name: "zone".into(), r#type: pb::FieldType::String as i32, added: false },
            pb::FieldDef { name: "host".into(), r#type: pb::FieldType::String as i32, added: false },
        ],
        location_field: "zone".into(),
    };
    let metric = pb::MetricSchema {
        name: METRIC.into(),
        fields: vec![],
        value_type: Some(pb::ValueType { elements: vec![pb::ScalarType::Double as i32], tuple: false }),
        kind: pb::MetricKind::Gauge as i32,
        unit: String::new(),
        description: String::new(),
        collection: None,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    for (z, routers) in ctx.routers.iter().enumerate() {
        let Some(router) = routers.first() else { continue };
        loop {
            if Instant::now() > deadline {
                ctx.state.lock().violation(format!("schemas could not be applied in {} within 120 s", zone_name(z)));
                return;
            }
            if let Some(c) = ctx.connect(router).await {
                let req = pb::ApplySchemasRequest { targets: vec![target.clone()], metrics: vec![metric.clone()] };
                if let Ok(Ok(_)) = timeout(Duration::from_secs(3), c.schema().apply(req)).await {
                    ctx.event(&format!("schemas applied in {}", zone_name(z)));
                    break;
                }
            }
            sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Writes every zone into the configuration (any config member, retried
/// until one takes it), so the root mixer knows where to ask.
pub async fn apply_zones(ctx: Ctx, zones: Vec<danaus_config::Object>) {
    let req = pb::ApplyConfigRequest {
        objects_json: serde_json::to_vec(&zones).unwrap_or_default(),
        author: "simulation".into(),
        message: "the zones".into(),
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for addr in &ctx.config {
            if let Some(c) = ctx.connect(addr).await {
                if let Ok(Ok(_)) = timeout(Duration::from_secs(3), c.config().apply(req.clone())).await {
                    ctx.event("zones written into the configuration");
                    return;
                }
            }
        }
        if Instant::now() > deadline {
            ctx.state.lock().violation("the zones could not be written into the configuration within 120 s".into());
            return;
        }
        sleep(Duration::from_millis(200)).await;
    }
}

/// Partway through the run, adds the field `shard` to the metric in
/// every zone (retrying until each zone's router takes it): the series
/// stored so far keep their keys, and writes that give `shard = ""` are
/// of the same series.
pub async fn grow_schema(ctx: Ctx) {
    sleep(Duration::from_millis(thread_rng().gen_range(1_000..30_000))).await;
    let metric = pb::MetricSchema {
        name: METRIC.into(),
        fields: vec![pb::FieldDef { name: "shard".into(), r#type: pb::FieldType::String as i32, added: false }],
        value_type: Some(pb::ValueType { elements: vec![pb::ScalarType::Double as i32], tuple: false }),
        kind: pb::MetricKind::Gauge as i32,
        unit: String::new(),
        description: String::new(),
        collection: None,
    };
    for (z, routers) in ctx.routers.iter().enumerate() {
        while !ctx.stop.load(Ordering::Relaxed) {
            let Some(router) = routers.choose(&mut thread_rng()) else { break };
            if let Some(c) = ctx.connect(router).await {
                let req = pb::ApplySchemasRequest { targets: vec![], metrics: vec![metric.clone()] };
                if let Ok(Ok(_)) = timeout(Duration::from_secs(3), c.schema().apply(req)).await {
                    ctx.event(&format!("metric gained the field shard in {}", zone_name(z)));
                    if let Some(g) = ctx.grown.get(z) {
                        g.store(true, Ordering::Relaxed);
                    }
                    break;
                }
            }
            sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A batch: series index → times.
type Batch = Vec<(usize, Vec<i64>)>;

fn request(ctx: &Ctx, batch: &Batch) -> pb::WriteRequest {
    let zones = ctx.mixers.len();
    pb::WriteRequest {
        series: batch
            .iter()
            .map(|(i, times)| pb::Series {
                target_schema: TARGET.into(),
                target_fields: HashMap::from([
                    ("zone".into(), s(&zone_name(*i % zones))),
                    ("host".into(), s(&host(*i))),
                ]),
                metric: METRIC.into(),
                metric_fields: if ctx.grown(*i) && thread_rng().gen_bool(0.5) {
                    HashMap::from([("shard".into(), s(""))])
                } else {
                    HashMap::new()
                },
                points: times
                    .iter()
                    .map(|&t| pb::Point {
                        start_time: None,
                        end_time: t,
                        value: Some(pb::Value { value: Some(pb::value::Value::DoubleValue(value_of(*i, t))) }),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Writes batches of new points (and sometimes sends the last batch again,
/// as a client retrying would) until told to stop.
pub async fn writer(ctx: Ctx, id: usize) {
    let mut client = None;
    let mut last: Option<Batch> = None;
    while !ctx.stop.load(Ordering::Relaxed) {
        if client.is_none() {
            client = ctx.any_router().await;
            if client.is_none() {
                sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        let resend = last.is_some() && thread_rng().gen_bool(0.15);
        let batch: Batch = match (&last, resend) {
            (Some(b), true) => b.clone(),
            _ => {
                let mut series: Vec<usize> = (0..SERIES).collect();
                series.shuffle(&mut thread_rng());
                series.truncate(thread_rng().gen_range(1..5));
                let mut st = ctx.state.lock();
                series
                    .into_iter()
                    .map(|i| {
                        let mut times = Vec::new();
                        // Sometimes fill a hole left earlier: an out-of-order
                        // write, well inside the leaf's 10-minute window.
                        let head = st.next[i];
                        st.holes[i].retain(|&h| head - h < 300 * STEP);
                        if !st.holes[i].is_empty() && thread_rng().gen_bool(0.3) {
                            let k = thread_rng().gen_range(0..st.holes[i].len());
                            times.push(st.holes[i].swap_remove(k));
                        }
                        for _ in 0..thread_rng().gen_range(1..6) {
                            // Leave a hole now and then.
                            if thread_rng().gen_bool(0.1) {
                                let h = st.next[i];
                                st.holes[i].push(h);
                                st.next[i] += STEP;
                            }
                            times.push(st.next[i]);
                            st.next[i] += STEP;
                        }
                        (i, times)
                    })
                    .collect()
            }
        };
        {
            // Attempted before sent: a read may see a point before its ack.
            let mut st = ctx.state.lock();
            for (i, times) in &batch {
                st.attempted[*i].extend(times.iter().copied());
            }
        }
        let req = request(&ctx, &batch);
        let points: usize = batch.iter().map(|(_, t)| t.len()).sum();
        let Some(c) = &client else { continue };
        match timeout(Duration::from_secs(3), c.ingest().write(req)).await {
            Ok(Ok(resp)) => {
                let resp = resp.into_inner();
                let mut st = ctx.state.lock();
                let refused: BTreeSet<usize> = resp.errors.iter().map(|e| e.index as usize).collect();
                for e in &resp.errors {
                    st.violation(format!("writer {id}: the node refused series {}: {}", e.series, e.message));
                }
                for (pos, (i, times)) in batch.iter().enumerate() {
                    if !refused.contains(&pos) {
                        st.acked[*i].extend(times.iter().copied());
                    }
                }
                let now = ctx.start.elapsed();
                st.event(now, &format!("writer {id}: {points} points acked (resend: {resend})"));
            }
            Ok(Err(status)) => {
                let mut st = ctx.state.lock();
                st.failed_writes += 1;
                let now = ctx.start.elapsed();
                st.event(now, &format!("writer {id}: write failed: {:?}", status.code()));
                client = None;
            }
            Err(_) => {
                let mut st = ctx.state.lock();
                st.failed_writes += 1;
                let now = ctx.start.elapsed();
                st.event(now, &format!("writer {id}: write timed out"));
                client = None;
            }
        }
        last = Some(batch);
        sleep(Duration::from_millis(thread_rng().gen_range(20..200))).await;
    }
}

fn double(v: Option<&pb::Value>) -> f64 {
    match v.and_then(|v| v.value.as_ref()) {
        Some(pb::value::Value::DoubleValue(d)) => *d,
        _ => f64::NAN,
    }
}

/// Raw points of series `i` through ReadService.
pub async fn read_raw(c: &Client, i: usize) -> Result<Vec<(i64, f64)>, String> {
    read_range(c, i, (T_BASE, i64::MAX / 2), false).await
}

/// Raw points of series `i` in `range` through ReadService; with
/// `unsharded`, matching `shard == ""` too (every series has it once the
/// metric gained the field).
pub async fn read_range(c: &Client, i: usize, range: (i64, i64), unsharded: bool) -> Result<Vec<(i64, f64)>, String> {
    let mut matchers = vec![pb::Matcher { field: "host".into(), op: pb::MatchOp::Eq as i32, value: host(i) }];
    if unsharded {
        matchers.push(pb::Matcher { field: "shard".into(), op: pb::MatchOp::Eq as i32, value: String::new() });
    }
    let req = pb::ReadRequest {
        target_schema: TARGET.into(),
        metric: METRIC.into(),
        matchers,
        start_time: range.0,
        end_time: range.1,
    };
    let mut st = c.read().read(req).await.map_err(|e| format!("{:?}", e.code()))?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = st.message().await.map_err(|e| format!("{:?}", e.code()))? {
        for s in m.series {
            out.extend(s.points.iter().map(|p| (p.end_time, double(p.value.as_ref()))));
        }
    }
    Ok(out)
}

/// A query's answer: its series as (fields, points), and whether it was
/// complete.
pub type Answer = (Vec<(Vec<String>, Vec<(i64, f64)>)>, bool);

/// Runs `query` over the workload's whole time range: the batches'
/// series as (fields, points), and whether the answer was complete.
pub async fn query(c: &Client, query: &str) -> Result<Answer, String> {
    let req = pb::QueryRequest {
        query: query.into(),
        start_time: T_BASE - 3600 * STEP,
        end_time: T_BASE + 2 * 3600 * STEP,
        step: 60 * STEP,
        ..Default::default()
    };
    let mut st = c.query().query(req).await.map_err(|e| format!("{:?}: {}", e.code(), e.message()))?.into_inner();
    let (mut out, mut complete) = (Vec::new(), None);
    while let Some(m) = st.message().await.map_err(|e| format!("{:?}: {}", e.code(), e.message()))? {
        match m.item {
            Some(pb::query_response::Item::Batch(b)) => {
                for s in b.series {
                    let fields = s
                        .fields
                        .iter()
                        .map(|f| match &f.value {
                            Some(pb::field_value::Value::StringValue(v)) => v.clone(),
                            other => format!("{other:?}"),
                        })
                        .collect();
                    let points = s
                        .points
                        .iter()
                        .map(|p| {
                            let v = match p.value.as_ref().and_then(|v| v.value.as_ref()) {
                                Some(pb::value::Value::Int64Value(i)) => *i as f64,
                                _ => double(p.value.as_ref()),
                            };
                            (p.end_time, v)
                        })
                        .collect();
                    out.push((fields, points));
                }
            }
            Some(pb::query_response::Item::Completeness(c)) => complete = Some(c.complete),
            None => {}
        }
    }
    match complete {
        Some(c) => Ok((out, c)),
        None => Err("no completeness report".into()),
    }
}

/// Points of series `i` through QueryService (a raw fetch).
pub async fn query_raw(c: &Client, i: usize, unsharded: bool) -> Result<(Vec<(i64, f64)>, bool), String> {
    let shard = if unsharded { " && shard == \"\"" } else { "" };
    let (series, complete) =
        query(c, &format!("fetch {TARGET}::{METRIC} | filter host == \"{}\"{shard}", host(i))).await?;
    Ok((series.into_iter().flat_map(|(_, p)| p).collect(), complete))
}

/// Reads series at random through the mixer of the zone owning them
/// while the writers write, checking each read. A query marked partial
/// need not hold every acknowledged point, but what it holds must be
/// right; a raw read has no such mark, so it must be whole or fail.
pub async fn reader(ctx: Ctx) {
    // One client per zone mixer, and the root mixer's last.
    let mut clients: Vec<Option<Client>> = vec![None; ctx.mixers.len() + 1];
    while !ctx.stop.load(Ordering::Relaxed) {
        let i = thread_rng().gen_range(0..SERIES);
        // A third of the queries go through the root mixer, which must say
        // when its answer misses a zone just as a zone mixer must when it
        // misses a leaf.
        let via_root = thread_rng().gen_bool(0.33);
        let z = if via_root { ctx.mixers.len() } else { ctx.zone_of(i) };
        if clients[z].is_none() {
            let addr = if via_root { &ctx.root } else { &ctx.mixers[z] };
            clients[z] = ctx.connect(addr).await;
        }
        if let Some(c) = &clients[z] {
            let (acked_before, head) = {
                let st = ctx.state.lock();
                (st.acked[i].clone(), st.next[i])
            };
            // A whole-series read, or a slice of it (which may cut chunks).
            let range = if thread_rng().gen_bool(0.5) {
                (T_BASE, i64::MAX / 2)
            } else {
                let span = (head - T_BASE) / STEP + 1;
                let a = T_BASE + thread_rng().gen_range(0..span) * STEP;
                (a, a + thread_rng().gen_range(0..60) * STEP)
            };
            let via_query = via_root || thread_rng().gen_bool(0.5);
            let unsharded = ctx.grown(i) && thread_rng().gen_bool(0.5);
            let got = if via_query {
                timeout(Duration::from_secs(3), query_raw(c, i, unsharded)).await.map(|r| {
                    r.map(|(p, complete)| {
                        (p.into_iter().filter(|(t, _)| *t >= range.0 && *t <= range.1).collect::<Vec<_>>(), complete)
                    })
                })
            } else {
                timeout(Duration::from_secs(3), read_range(c, i, range, unsharded)).await.map(|r| r.map(|p| (p, true)))
            };
            let via = match (via_root, via_query, unsharded) {
                (true, _, false) => "root query",
                (true, _, true) => "root query shard==\"\"",
                (false, true, false) => "query",
                (false, true, true) => "query shard==\"\"",
                (false, false, false) => "read",
                (false, false, true) => "read shard==\"\"",
            };
            match got {
                Ok(Ok((points, complete))) => {
                    let mut st = ctx.state.lock();
                    let must_hold = if complete { acked_before } else { Default::default() };
                    st.check_range(via, i, &must_hold, range, &points);
                    let now = ctx.start.elapsed();
                    let partial = if complete { "" } else { " (partial)" };
                    st.event(now, &format!("{via} {}: {} points{partial}", host(i), points.len()));
                }
                Ok(Err(e)) => {
                    ctx.event(&format!("{via} {} failed: {e}", host(i)));
                    clients[z] = None;
                }
                Err(_) => {
                    ctx.event(&format!("{via} {} timed out", host(i)));
                    clients[z] = None;
                }
            }
        }
        sleep(Duration::from_millis(thread_rng().gen_range(100..600))).await;
    }
}

/// A client of zone `z`'s mixer once it answers reads, or `None` after
/// `deadline` (a violation: every host is up again).
async fn healed_mixer(ctx: &Ctx, z: usize, deadline: Instant) -> Option<Client> {
    loop {
        if let Some(c) = ctx.connect(&ctx.mixers[z]).await {
            let probe = (0..SERIES).find(|&i| ctx.zone_of(i) == z).unwrap_or(0);
            if timeout(Duration::from_secs(3), read_raw(&c, probe)).await.is_ok_and(|r| r.is_ok()) {
                return Some(c);
            }
        }
        if Instant::now() > deadline {
            ctx.state.lock().violation(format!("the mixer of {} did not answer after healing", zone_name(z)));
            return None;
        }
        sleep(Duration::from_millis(500)).await;
    }
}

/// Checks a `group_by [host], sum` of `count(1h)` answered by `who` after
/// healing: complete, and for every series `mine` selects between its
/// acknowledged and written points; no series `mine` rejects.
fn check_counts(ctx: &Ctx, who: &str, answer: Result<Answer, String>, mine: impl Fn(usize) -> bool) {
    let (series, complete) = match answer {
        Ok(a) => a,
        Err(e) => return ctx.state.lock().violation(format!("the count query of {who} failed: {e}")),
    };
    let mut st = ctx.state.lock();
    st.checked_reads += 1;
    if !complete {
        st.violation(format!("the count query of {who} is marked incomplete with every node up"));
    }
    for i in (0..SERIES).filter(|&i| mine(i)) {
        let got: f64 =
            series.iter().filter(|(f, _)| f.first() == Some(&host(i))).flat_map(|(_, p)| p).map(|p| p.1).sum();
        let (acked, written) = (st.acked[i].len(), st.attempted[i].len());
        if (got as usize) < acked || got as usize > written {
            st.violation(format!(
                "{who}'s count query says {} has {got} points; {acked} were acknowledged, {written} written",
                host(i)
            ));
        }
    }
    let foreign = series.iter().filter(|(f, _)| (0..SERIES).all(|i| !mine(i) || f.first() != Some(&host(i)))).count();
    if foreign > 0 {
        st.violation(format!("the count query of {who} returned {foreign} series it does not hold"));
    }
}

/// Whether a read's error is one a client should retry.
fn is_transient(e: &str) -> bool {
    e.contains("Unavailable") || e.contains("DeadlineExceeded")
}

/// Runs `f` again, every half second, while `retry` holds of its result
/// and `deadline` has not passed; returns the last result.
async fn until_settled<T, F, Fut>(deadline: Instant, mut f: F, retry: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    loop {
        let r = f().await;
        if !retry(&r) || Instant::now() > deadline {
            return r;
        }
        sleep(Duration::from_millis(500)).await;
    }
}

/// After healing: every series read both ways through its zone's mixer
/// must hold exactly the acknowledged points (plus, possibly,
/// unacknowledged ones that were written), and a per-host count through
/// the query engine must agree.
pub async fn final_check(ctx: Ctx) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut clients = Vec::new();
    for z in 0..ctx.mixers.len() {
        match healed_mixer(&ctx, z, deadline).await {
            Some(c) => clients.push(c),
            None => return,
        }
    }
    // Replicas may differ in points of writes that failed part-way (never
    // acknowledged), and a read and a query may pick different replicas:
    // each must hold every acknowledged point and nothing unwritten; a
    // count must lie between the two.
    for i in 0..SERIES {
        let client = &clients[ctx.zone_of(i)];
        let acked = ctx.state.lock().acked[i].clone();
        // Healing may end just before this check: a zone whose assigners
        // are still electing answers raw reads UNAVAILABLE (and queries
        // incomplete) until its table is confirmed again. That is the
        // documented, retryable answer; only one lasting past the deadline
        // is a violation.
        let read = until_settled(deadline, || read_raw(client, i), |r| matches!(r, Err(e) if is_transient(e))).await;
        match read {
            Ok(points) => ctx.state.lock().check_read("final read", i, &acked, &points),
            Err(e) => ctx.state.lock().violation(format!("final read of {} failed: {e}", host(i))),
        }
        let answer = until_settled(
            deadline,
            || query_raw(client, i, ctx.grown(i)),
            |r| matches!(r, Ok((_, false))) || matches!(r, Err(e) if is_transient(e)),
        )
        .await;
        match answer {
            Ok((points, complete)) => {
                let mut st = ctx.state.lock();
                st.check_read("final query", i, &acked, &points);
                if !complete {
                    st.violation(format!("final query of {} is marked incomplete with every node up", host(i)));
                }
            }
            Err(e) => ctx.state.lock().violation(format!("final query of {} failed: {e}", host(i))),
        }
    }
    // Each zone's aggregation agrees with the model for its series, and
    // the root's over every zone with the model for all of them.
    let q = format!("fetch {TARGET}::{METRIC} | every 1h | align count(1h) | group_by [host], sum");
    for (z, client) in clients.iter().enumerate() {
        let answer = until_settled(
            deadline,
            || query(client, &q),
            |r| matches!(r, Ok((_, false))) || matches!(r, Err(e) if is_transient(e)),
        )
        .await;
        check_counts(&ctx, &zone_name(z), answer, |i| ctx.zone_of(i) == z);
    }
    let Some(root) = ctx.connect(&ctx.root).await else {
        ctx.state.lock().violation("the root mixer did not answer after healing".into());
        return;
    };
    // The root learns the zones from the configuration: until then (or
    // while it cannot reach a zone) its answers fail or say they miss one.
    let answer = until_settled(
        deadline,
        || query(&root, &q),
        |r| matches!(r, Ok((_, false))) || matches!(r, Err(e) if is_transient(e) || e.contains("NotFound")),
    )
    .await;
    check_counts(&ctx, "the root mixer", answer, |_| true);
    ctx.event("final check done");
}
