//! A zone of real processes on loopback (`danaus dev-cluster`): three
//! range assigner members, leaves, a router and a mixer. Writes go through
//! the router, queries through the mixer; processes are killed with
//! SIGKILL while clients keep going.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use danaus_assigner::ReplicaState;
use danaus_client::Client;
use danaus_proto::v1 as pb;
use danaus_server::dev_cluster::{metric, DevCluster, DevClusterConfig};
use parking_lot::Mutex;

mod common;

const SEC: i64 = 1_000_000_000;

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}

fn s(v: &str) -> pb::FieldValue {
    pb::FieldValue { value: Some(pb::field_value::Value::StringValue(v.into())) }
}

async fn cluster(leaves: usize, tweak: impl FnOnce(&mut DevClusterConfig)) -> (tempfile::TempDir, DevCluster) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevClusterConfig::new(common::danaus_bin(), dir.path(), leaves);
    tweak(&mut cfg);
    let c = match DevCluster::start(cfg).await {
        Ok(c) => c,
        Err(e) => {
            common::dump_logs(dir.path());
            panic!("the dev cluster did not start: {e:#}");
        }
    };
    (dir, c)
}

async fn apply_schemas(router: &str) {
    let c = Client::connect(&format!("http://{router}"), None).await.unwrap();
    c.schema().apply(common::task_load_schemas()).await.unwrap();
}

/// The value written for task `task` at `t`: a pure function, so a reader
/// knows what must be there.
fn value(task: usize, t: i64) -> f64 {
    (task as f64) * 1000.0 + ((t / SEC) % 1000) as f64
}

fn series(task: usize, times: &[i64]) -> pb::Series {
    pb::Series {
        target_schema: "Task".into(),
        target_fields: HashMap::from([
            ("cluster".into(), s(&format!("c{}", task % 3))),
            ("task".into(), s(&format!("t{task:05}"))),
        ]),
        metric: "/load".into(),
        metric_fields: HashMap::new(),
        points: times
            .iter()
            .map(|&t| pb::Point {
                start_time: None,
                end_time: t,
                value: Some(pb::Value { value: Some(pb::value::Value::DoubleValue(value(task, t))) }),
            })
            .collect(),
    }
}

/// Acknowledged points: task → times.
type Acked = Arc<Mutex<BTreeMap<usize, Vec<i64>>>>;

/// Writes one point per task per round through the router until `stop`,
/// recording what was acknowledged. Failed writes (UNAVAILABLE) are
/// retried as a client would; they are never counted as acknowledged.
async fn writer(router: String, tasks: usize, t0: i64, stop: Arc<AtomicBool>, acked: Acked) -> u64 {
    let c = Client::connect(&format!("http://{router}"), None).await.unwrap();
    let mut round = 0i64;
    let mut failures = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let t = t0 + round * SEC;
        for chunk in (0..tasks).collect::<Vec<_>>().chunks(250) {
            let batch: Vec<pb::Series> = chunk.iter().map(|&i| series(i, &[t])).collect();
            loop {
                match c.ingest().write(pb::WriteRequest { series: batch.clone() }).await {
                    Ok(r) => {
                        let r = r.into_inner();
                        assert!(r.errors.is_empty(), "per-series errors: {:?}", &r.errors[..r.errors.len().min(3)]);
                        let mut a = acked.lock();
                        for &i in chunk {
                            a.entry(i).or_default().push(t);
                        }
                        break;
                    }
                    Err(e) => {
                        failures += 1;
                        assert!(failures < 200, "too many failed writes; last: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
        round += 1;
    }
    failures
}

struct Answer {
    points: BTreeMap<usize, Vec<(i64, f64)>>,
    completeness: pb::Completeness,
}

async fn query_all(mixer: &str, from: i64, to: i64) -> Answer {
    let c = Client::connect(&format!("http://{mixer}"), None).await.unwrap();
    let req = pb::QueryRequest {
        query: "fetch Task::/load".into(),
        start_time: from,
        end_time: to,
        step: 0,
        max_series: 0,
        max_points: 0,
        timeout_ms: 20_000,
    };
    let mut stream = c.query().query(req).await.unwrap().into_inner();
    let mut points = BTreeMap::new();
    let mut completeness = None;
    while let Some(m) = stream.message().await.unwrap() {
        match m.item {
            Some(pb::query_response::Item::Batch(b)) => {
                let task_col = b.columns.iter().position(|c| c == "task").unwrap();
                for s in b.series {
                    let Some(pb::field_value::Value::StringValue(task)) = &s.fields[task_col].value else { panic!() };
                    let task: usize = task[1..].parse().unwrap();
                    let pts: Vec<(i64, f64)> = s
                        .points
                        .iter()
                        .map(|p| match p.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(pb::value::Value::DoubleValue(d)) => (p.end_time, *d),
                            other => panic!("unexpected value {other:?}"),
                        })
                        .collect();
                    let prev = points.insert(task, pts);
                    assert!(prev.is_none(), "task {task} came back twice: ranges overlap or a replica answered twice");
                }
            }
            Some(pb::query_response::Item::Completeness(c)) => completeness = Some(c),
            None => {}
        }
    }
    Answer { points, completeness: completeness.unwrap() }
}

/// Every acknowledged point is in the answer with its value; nothing else is.
fn check(what: &str, answer: &Answer, acked: &BTreeMap<usize, Vec<i64>>, written_until: i64) {
    for (task, times) in acked {
        let got = answer.points.get(task).unwrap_or_else(|| panic!("{what}: task {task} is missing entirely"));
        let got_times: std::collections::BTreeSet<i64> = got.iter().map(|p| p.0).collect();
        for (k, t) in times.iter().enumerate() {
            assert!(
                got_times.contains(t),
                "{what}: acknowledged point {k} of {} of task {task} at {t} is missing; got {} points; completeness {:?}",
                times.len(),
                got.len(),
                answer.completeness
            );
        }
        for (t, v) in got {
            assert!(*t <= written_until, "a point from the future");
            assert_eq!(*v, value(*task, *t), "wrong value for task {task} at {t}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_killed_while_writing_loses_no_acked_point_and_queries_stay_complete() {
    let (_dir, mut c) = cluster(3, |_| {}).await;
    apply_schemas(c.router()).await;
    let (stop, acked): (Arc<AtomicBool>, Acked) = (Arc::default(), Arc::default());
    // Rounds are faster than one a second: start far enough back that no
    // point lies in the future.
    let t0 = now_ns() - 3600 * SEC;
    let w = tokio::spawn(writer(c.router().to_owned(), 300, t0, stop.clone(), acked.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.kill("leaf-2").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let failures = w.await.unwrap();
    let acked = acked.lock().clone();
    let rounds = acked.values().map(Vec::len).min().unwrap();
    assert!(rounds >= 3, "the writer made too little progress ({rounds} rounds, {failures} failed writes)");
    let answer = query_all(c.mixer(), t0 - SEC, now_ns()).await;
    assert!(acked.values().all(|v| v.last().is_some_and(|t| *t < now_ns())));
    assert!(answer.completeness.complete, "answer incomplete with one leaf of three down: {:?}", answer.completeness);
    check("with leaf-2 dead", &answer, &acked, now_ns());
    assert_eq!(answer.points.len(), 300);
    // The router demoted the dead replica rather than stop writing.
    let demotions = metric(&c.procs["router"].http, "danaus_router_demotions_total").await.unwrap();
    assert!(demotions >= 1.0, "no demotion recorded");
    let t = c.table().await.unwrap();
    // leaf-2 is no longer read: lagging, or already removed.
    assert!(t.ranges.values().all(|r| r.replica("leaf-2").is_none_or(|x| x.state == ReplicaState::Lagging)), "{t:#?}");
    // The killed leaf comes back, is repaired by a copy, and the data stays whole.
    c.restart("leaf-2").unwrap();
    let t = c.wait_settled(Duration::from_secs(30)).await.unwrap();
    assert!(t.ranges.values().all(|r| r.replica("leaf-2").is_some_and(|x| x.state == ReplicaState::Ready)));
    let again = query_all(c.mixer(), t0 - SEC, now_ns()).await;
    assert!(again.completeness.complete);
    check("after leaf-2 came back", &again, &acked, now_ns());
}

/// Tasks acknowledged in every round so far (a proxy for progress).
fn rounds_acked(acked: &Acked) -> usize {
    acked.lock().values().map(Vec::len).min().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_assigner_leader_does_not_stop_ingestion_and_a_new_leader_takes_over() {
    let (_dir, mut c) = cluster(3, |_| {}).await;
    apply_schemas(c.router()).await;
    let (stop, acked): (Arc<AtomicBool>, Acked) = (Arc::default(), Arc::default());
    let t0 = now_ns() - 3600 * SEC;
    let w = tokio::spawn(writer(c.router().to_owned(), 200, t0, stop.clone(), acked.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (old, before) = c.leader_table().await.unwrap();
    c.kill(&old).unwrap();
    let at_kill = rounds_acked(&acked);
    // Writes go on while the group elects a new leader: routers route by
    // the table they have. (Polled: on two busy cores a round may take a
    // while.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rounds_acked(&acked) <= at_kill + 1 {
        assert!(std::time::Instant::now() < deadline, "ingestion stalled after the assigner leader died");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut new = None;
    for _ in 0..50 {
        if let Ok((l, t)) = c.leader_table().await {
            new = Some((l, t));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (new, table) = new.expect("no new assigner leader");
    assert_ne!(new, old);
    assert!(table.version >= before.version, "the new leader lost table entries");
    assert_eq!(table.ranges, before.ranges, "ranges changed");
    // The new leader accepts changes: a schema applied through the router
    // commits through it.
    let client = Client::connect(&format!("http://{}", c.router()), None).await.unwrap();
    let extra = pb::MetricSchema {
        name: "/extra".into(),
        fields: vec![],
        value_type: Some(pb::ValueType { elements: vec![pb::ScalarType::Int64 as i32], tuple: false }),
        kind: pb::MetricKind::Gauge as i32,
        unit: String::new(),
        description: String::new(),
        collection: None,
    };
    client.schema().apply(pb::ApplySchemasRequest { targets: vec![], metrics: vec![extra] }).await.unwrap();
    let after = c.table().await.unwrap();
    assert!(after.metric_schema("default", "/extra").is_some());
    stop.store(true, Ordering::Relaxed);
    w.await.unwrap();
    let acked = acked.lock().clone();
    let answer = query_all(c.mixer(), t0 - SEC, now_ns()).await;
    assert!(answer.completeness.complete);
    check("after the assigner failover", &answer, &acked, now_ns());
    // The old leader rejoins as a follower and catches up.
    c.restart(&old).unwrap();
    for _ in 0..50 {
        if let Some(p) = c.procs.get(&old) {
            if metric(&p.http, "danaus_zone_table_version").await.unwrap_or(0.0) >= after.version as f64 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the restarted assigner member did not catch up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_split_and_move_to_a_new_leaf_under_writes_without_losing_a_point() {
    let (_dir, mut c) = cluster(1, |cfg| {
        cfg.replication = 1;
        cfg.max_series_per_range = 150;
        cfg.min_move_series = 1;
    })
    .await;
    apply_schemas(c.router()).await;
    let (stop, acked): (Arc<AtomicBool>, Acked) = (Arc::default(), Arc::default());
    let t0 = now_ns() - 3600 * SEC;
    let w = tokio::spawn(writer(c.router().to_owned(), 600, t0, stop.clone(), acked.clone()));
    // The leaf reports 600 series in one range: the assigner splits it.
    let mut split = false;
    for _ in 0..100 {
        if c.table().await.unwrap().ranges.len() >= 3 {
            split = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(split, "the range was not split: {:#?}", c.table().await.unwrap().ranges);
    // A second leaf joins; ranges move to it (dual write, copy, drop).
    let leaf2 = c.add_leaf().unwrap();
    let mut moved = false;
    for _ in 0..150 {
        let t = c.table().await.unwrap();
        let on2 = t.ranges_of(&leaf2).filter(|(_, s)| *s == ReplicaState::Ready).count();
        let dropped = metric(&c.procs["leaf-1"].http, "danaus_leaf_series_dropped_total").await.unwrap_or(0.0);
        if on2 >= 1 && dropped > 0.0 {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t = c.table().await.unwrap();
    assert!(moved, "no range moved to {leaf2} and was dropped from leaf-1: {:#?}", t.ranges);
    // Keep writing a little after the move, then stop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    w.await.unwrap();
    let acked = acked.lock().clone();
    let answer = query_all(c.mixer(), t0 - SEC, now_ns()).await;
    assert!(answer.completeness.complete, "{:?}", answer.completeness);
    assert_eq!(answer.points.len(), 600);
    check("after ranges moved", &answer, &acked, now_ns());
    // Both leaves answered for their own ranges.
    let sources: Vec<&str> = answer.completeness.sources.iter().map(|s| s.source.as_str()).collect();
    assert!(sources.contains(&"leaf-1") && sources.contains(&leaf2.as_str()), "{sources:?}");
}

/// Writes `rounds` points, a second apart from `t0`, to each of 600 tasks
/// placed at location `loc(task)`.
async fn write_rounds(client: &Client, rounds: i64, t0: i64, loc: &dyn Fn(usize) -> String) {
    for round in 0..rounds {
        let batch: Vec<pb::Series> = (0..600)
            .map(|i| {
                let mut s = series(i, &[t0 + round * SEC]);
                s.target_fields.insert("cluster".into(), self::s(&loc(i)));
                s
            })
            .collect();
        let r = client.ingest().write(pb::WriteRequest { series: batch }).await.unwrap().into_inner();
        assert!(r.errors.is_empty());
    }
}

/// Waits until the assigner has split and spread the ranges over every
/// leaf and the table has stayed the same for 3 s; returns the table.
async fn spread_and_settle(c: &DevCluster) -> danaus_assigner::ZoneTable {
    let mut last = (0, std::time::Instant::now());
    loop {
        let t = c.table().await.unwrap();
        let spread = c.leaves().iter().all(|l| t.ranges_of(l).next().is_some());
        let quiet = t.ranges.values().all(|r| r.ready().count() == r.replicas.len());
        if t.version != last.0 {
            last = (t.version, std::time::Instant::now());
        } else if spread && quiet && last.1.elapsed() > Duration::from_secs(3) {
            return t;
        }
        assert!(last.1.elapsed() < Duration::from_secs(60), "the zone did not settle: {:#?}", t.ranges);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_hints_keep_a_selective_query_off_leaves_without_matching_series() {
    let (_dir, c) = cluster(3, |cfg| {
        cfg.replication = 1;
        cfg.max_series_per_range = 250;
        cfg.min_move_series = 1;
    })
    .await;
    apply_schemas(c.router()).await;
    // Six locations of 100 tasks; targets sort by location first.
    let client = Client::connect(&format!("http://{}", c.router()), None).await.unwrap();
    let t0 = now_ns() - 600 * SEC;
    let loc = |task: usize| format!("c{}", task / 100);
    write_rounds(&client, 5, t0, &loc).await;
    let table = spread_and_settle(&c).await;
    // Which leaves hold series of location c0.
    let ts = table.target_schema("default", "Task").unwrap().clone();
    let mut holders = std::collections::BTreeSet::new();
    for i in 0..100 {
        let fields = vec![
            ("cluster".to_owned(), danaus_model::FieldValue::String(loc(i))),
            ("task".to_owned(), danaus_model::FieldValue::String(format!("t{i:05}"))),
        ];
        let target = danaus_model::validate::encoded_target("default", &ts, &fields).unwrap();
        holders.insert(table.range_for(&target).unwrap().ready().next().unwrap().to_owned());
    }
    assert!(holders.len() < 3, "location c0 spread over every leaf; nothing to prune: {:#?}", table.ranges);
    // Hints are pushed within milliseconds; allow a keepalive round.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stages = |c: &DevCluster| {
        let leaves = c.leaves();
        let procs: Vec<(String, String)> = leaves.iter().map(|l| (l.clone(), c.procs[l].http.clone())).collect();
        async move {
            let mut out = BTreeMap::new();
            for (l, http) in procs {
                out.insert(l, metric(&http, "danaus_leaf_stages_total").await.unwrap());
            }
            out
        }
    };
    let before = stages(&c).await;
    let mc = Client::connect(&format!("http://{}", c.mixer()), None).await.unwrap();
    let req = pb::QueryRequest {
        query: "fetch Task::/load | filter cluster == \"c0\"".into(),
        start_time: t0 - SEC,
        end_time: now_ns(),
        step: 0,
        max_series: 0,
        max_points: 0,
        timeout_ms: 10_000,
    };
    let mut stream = mc.query().query(req).await.unwrap().into_inner();
    let (mut series_seen, mut complete) = (0, false);
    while let Some(m) = stream.message().await.unwrap() {
        match m.item {
            Some(pb::query_response::Item::Batch(b)) => series_seen += b.series.len(),
            Some(pb::query_response::Item::Completeness(cm)) => complete = cm.complete,
            None => {}
        }
    }
    assert_eq!(series_seen, 100);
    assert!(complete);
    let after = stages(&c).await;
    for (leaf, n) in &after {
        let asked = n - before[leaf];
        if holders.contains(leaf) {
            assert!(asked >= 1.0, "{leaf} holds c0 series but was not asked");
        } else {
            assert_eq!(asked, 0.0, "{leaf} holds no c0 series but was asked");
        }
    }
    let pruned = metric(&c.procs["mixer"].http, "danaus_mixer_pruned_total").await.unwrap();
    assert!(pruned >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_assigner_down_writes_and_queries_go_on_across_router_and_mixer_restarts_and_say_so() {
    let (_dir, mut c) = cluster(3, |_| {}).await;
    apply_schemas(c.router()).await;
    // Let the router and mixer cache the table that has the schemas.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for a in ["assigner-1", "assigner-2", "assigner-3"] {
        c.kill(a).unwrap();
    }
    // Restarted during the outage, they start from their cached tables.
    for p in ["router", "mixer"] {
        c.stop(p).unwrap();
        c.restart(p).unwrap();
        let addr = c.procs[p].grpc.clone();
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (stop, acked): (Arc<AtomicBool>, Acked) = (Arc::default(), Arc::default());
    let t0 = now_ns() - 3600 * SEC;
    let w = tokio::spawn(writer(c.router().to_owned(), 100, t0, stop.clone(), acked.clone()));
    for _ in 0..100 {
        if rounds_acked(&acked) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    w.await.unwrap();
    let acked = acked.lock().clone();
    assert!(acked.values().map(Vec::len).min().unwrap_or(0) >= 3, "writes did not go on without the assigners");
    let answer = query_all(c.mixer(), t0 - SEC, now_ns()).await;
    check("with every assigner member down", &answer, &acked, now_ns());
    // Every acknowledged point is there; but with no assigner member to
    // confirm the zone table current, the mixer cannot rule out that a
    // replica it read was demoted meanwhile (from its side an outage and a
    // partition look alike), so the answer says it may be partial, and why.
    assert!(!answer.completeness.complete);
    let table = answer.completeness.sources.iter().find(|s| s.source == "zone-table");
    assert!(
        table.is_some_and(|s| !s.answered && s.missing_reason.contains("not confirmed current")),
        "{:?}",
        answer.completeness
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_aggregation_folds_deltas_from_many_ranges_into_one_series_and_counts_late_ones() {
    let (_dir, c) = cluster(3, |cfg| {
        cfg.replication = 1;
        cfg.max_series_per_range = 100;
        cfg.min_move_series = 1;
    })
    .await;
    apply_schemas(c.router()).await;
    let client = Client::connect(&format!("http://{}", c.router()), None).await.unwrap();
    let requests = pb::MetricSchema {
        name: "/requests".into(),
        fields: vec![],
        value_type: Some(pb::ValueType { elements: vec![pb::ScalarType::Int64 as i32], tuple: false }),
        kind: pb::MetricKind::Delta as i32,
        unit: "1".into(),
        description: String::new(),
        collection: Some(pb::CollectionAggregation {
            drop_fields: vec!["task".into()],
            period_ns: SEC,
            admission_window_ns: 3 * SEC,
        }),
    };
    client.schema().apply(pb::ApplySchemasRequest { targets: vec![], metrics: vec![requests] }).await.unwrap();
    // Two locations of 300 tasks, at most 100 series a range: each
    // location's tasks end up in at least three ranges, which three leaves
    // cannot hold all on one leaf once balanced.
    let loc = |task: usize| format!("c{}", task / 300);
    write_rounds(&client, 3, now_ns() - 600 * SEC, &loc).await;
    let table = spread_and_settle(&c).await;
    let ts = table.target_schema("default", "Task").unwrap().clone();
    let holders: std::collections::BTreeSet<String> = (0..300)
        .map(|i| {
            let fields = vec![
                ("cluster".to_owned(), danaus_model::FieldValue::String(loc(i))),
                ("task".to_owned(), danaus_model::FieldValue::String(format!("t{i:05}"))),
            ];
            let target = danaus_model::validate::encoded_target("default", &ts, &fields).unwrap();
            table.range_for(&target).unwrap().ready().next().unwrap().to_owned()
        })
        .collect();
    assert!(holders.len() >= 2, "location c0 sits on one leaf; the test needs it spread: {:#?}", table.ranges);
    // Every task sends one delta into the bucket ending at `end`.
    let end = (now_ns() / SEC + 1) * SEC;
    let delta = |task: usize, end: i64| pb::Series {
        target_schema: "Task".into(),
        target_fields: HashMap::from([("cluster".into(), s(&loc(task))), ("task".into(), s(&format!("t{task:05}")))]),
        metric: "/requests".into(),
        metric_fields: HashMap::new(),
        points: vec![pb::Point {
            start_time: Some(end - SEC),
            end_time: end,
            value: Some(pb::Value { value: Some(pb::value::Value::Int64Value(1 + (task % 7) as i64)) }),
        }],
    };
    let batch: Vec<pb::Series> = (0..600).map(|i| delta(i, end)).collect();
    let r = client.ingest().write(pb::WriteRequest { series: batch.clone() }).await.unwrap().into_inner();
    assert!(r.errors.is_empty(), "{:?}", &r.errors[..r.errors.len().min(3)]);
    // A retried batch is recognised, not counted twice.
    let r = client.ingest().write(pb::WriteRequest { series: batch }).await.unwrap().into_inner();
    assert!(r.errors.is_empty(), "{:?}", &r.errors[..r.errors.len().min(3)]);
    // After the admission window, each location has one output series
    // (task blanked) whose point is the sum of its tasks' deltas.
    tokio::time::sleep(Duration::from_nanos((end + 3 * SEC - now_ns()).max(0) as u64) + Duration::from_secs(1)).await;
    let mc = Client::connect(&format!("http://{}", c.mixer()), None).await.unwrap();
    let req = pb::QueryRequest {
        query: "fetch Task::/requests".into(),
        start_time: end - 10 * SEC,
        end_time: end + SEC,
        step: 0,
        max_series: 0,
        max_points: 0,
        timeout_ms: 10_000,
    };
    let mut stream = mc.query().query(req).await.unwrap().into_inner();
    let mut sums = BTreeMap::new();
    while let Some(m) = stream.message().await.unwrap() {
        if let Some(pb::query_response::Item::Batch(b)) = m.item {
            let col = |n: &str| b.columns.iter().position(|c| c == n).unwrap();
            for s in b.series {
                let field = |i: usize| match &s.fields[i].value {
                    Some(pb::field_value::Value::StringValue(v)) => v.clone(),
                    other => panic!("{other:?}"),
                };
                assert_eq!(field(col("task")), "", "the dropped field is blanked");
                let pts: Vec<(i64, i64)> = s
                    .points
                    .iter()
                    .map(|p| match p.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(pb::value::Value::Int64Value(v)) => (p.end_time, *v),
                        other => panic!("unexpected value {other:?}"),
                    })
                    .collect();
                assert!(sums.insert(field(col("cluster")), pts).is_none(), "one output series per location");
            }
        }
    }
    let want = |tasks: std::ops::Range<usize>| vec![(end, tasks.map(|i| 1 + (i % 7) as i64).sum::<i64>())];
    assert_eq!(sums, BTreeMap::from([("c0".into(), want(0..300)), ("c1".into(), want(300..600))]));
    // A delta for the closed bucket is refused as late and counted.
    let r = client.ingest().write(pb::WriteRequest { series: vec![delta(5, end)] }).await.unwrap().into_inner();
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].code, pb::SeriesErrorCode::OutOfWindow as i32, "{:?}", r.errors[0]);
    assert!(r.errors[0].message.contains("late delta"), "{}", r.errors[0].message);
    let mut late = 0.0;
    for l in c.leaves() {
        late += metric(&c.procs[&l].http, "danaus_leaf_aggregation_late_points_total").await.unwrap();
    }
    assert_eq!(late, 1.0);
}

/// A process that exits while the zone starts fails the start at once,
/// naming it and its error, rather than after the 60 s settle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_exits_during_start_fails_it_at_once_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevClusterConfig::new(common::danaus_bin(), dir.path(), 1);
    cfg.leaf_args = vec!["--no-such-flag".into()];
    let started = std::time::Instant::now();
    let e = DevCluster::start(cfg).await.unwrap_err();
    let exited = e.downcast_ref::<danaus_server::dev_cluster::Exited>().expect("an Exited error");
    assert_eq!(exited.name, "leaf-1", "{e:#}");
    assert!(exited.why.contains("--no-such-flag"), "{e:#}");
    assert!(started.elapsed() < Duration::from_secs(45), "took {:?}", started.elapsed());
}

/// Sends `req` to a router's remote_write endpoint; it must be taken whole.
async fn remote_write(router_http: &str, req: &danaus_prom::prompb::v1::WriteRequest) {
    use prost::Message;
    let body = snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap();
    let router_http = router_http.to_owned();
    let (status, _, text) = tokio::task::spawn_blocking(move || {
        common::http_post(
            &router_http,
            "/api/v1/write",
            &[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "snappy")],
            &body,
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 204, "{text}");
}

/// A zone router takes Prometheus remote_write on its HTTP port, through
/// the same routing as its gRPC writes; the mixer reads it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_router_takes_prometheus_remote_write() {
    use danaus_prom::prompb::v1;
    let (_dir, c) = cluster(1, |_| {}).await;
    let t = (now_ns() / 1_000_000 / 15_000 - 4) * 15_000; // ms, on the 15 s grid
    let req = v1::WriteRequest {
        timeseries: (0..3)
            .map(|i| v1::TimeSeries {
                labels: [("__name__", "node_load1"), ("job", "node"), ("instance", &format!("h{i}:9100"))]
                    .iter()
                    .map(|(n, v)| v1::Label { name: (*n).into(), value: (*v).into() })
                    .collect(),
                samples: vec![
                    v1::Sample { value: i as f64, timestamp: t },
                    v1::Sample { value: i as f64 + 0.5, timestamp: t + 15_000 },
                ],
                histograms: vec![],
            })
            .collect(),
        metadata: vec![],
    };
    remote_write(&c.procs["router"].http, &req).await;
    let mc = Client::connect(&format!("http://{}", c.mixer()), None).await.unwrap();
    let q = pb::QueryRequest {
        query: "fetch prometheus_target::node_load1".into(),
        start_time: (t - 1000) * 1_000_000,
        end_time: (t + 16_000) * 1_000_000,
        step: 0,
        max_series: 0,
        max_points: 0,
        timeout_ms: 10_000,
    };
    let mut stream = mc.query().query(q).await.unwrap().into_inner();
    let mut points = 0;
    let mut series = 0;
    while let Some(m) = stream.message().await.unwrap() {
        if let Some(pb::query_response::Item::Batch(b)) = m.item {
            series += b.series.len();
            points += b.series.iter().map(|s| s.points.len()).sum::<usize>();
        }
    }
    assert_eq!((series, points), (3, 6));
    let stored = metric(&c.procs["router"].http, "danaus_remote_write_samples_total").await.unwrap();
    assert_eq!(stored, 6.0);

    // Label sets that vary: a request bringing a label `node_load1` lacks
    // (on one of its series) and five new names is one table change; the
    // series stored before keep their keys and read the label as "".
    let before = c.table().await.unwrap().version;
    let mut timeseries: Vec<v1::TimeSeries> = (0..5)
        .map(|i| v1::TimeSeries {
            labels: [("__name__", &*format!("new_{i}")), ("job", "node"), ("instance", "h0:9100")]
                .iter()
                .map(|(n, v)| v1::Label { name: (*n).into(), value: (*v).into() })
                .collect(),
            samples: vec![v1::Sample { value: 1.0, timestamp: t }],
            histograms: vec![],
        })
        .collect();
    let labels = |inst: &str, rack: Option<&str>| {
        let mut l = vec![("__name__", "node_load1"), ("instance", inst), ("job", "node")];
        l.extend(rack.map(|r| ("rack", r)));
        l.iter().map(|(n, v)| v1::Label { name: (*n).into(), value: (*v).into() }).collect()
    };
    let at = t + 30_000;
    timeseries.push(v1::TimeSeries {
        labels: labels("h0:9100", None),
        samples: vec![v1::Sample { value: 7.0, timestamp: at }],
        histograms: vec![],
    });
    timeseries.push(v1::TimeSeries {
        labels: labels("h9:9100", Some("r1")),
        samples: vec![v1::Sample { value: 9.0, timestamp: at }],
        histograms: vec![],
    });
    remote_write(&c.procs["router"].http, &v1::WriteRequest { timeseries, metadata: vec![] }).await;
    let table = c.table().await.unwrap();
    assert_eq!(table.version, before + 1, "one request, one table change");
    let load = table.metric_schema("default", "node_load1").unwrap();
    assert!(load.field("rack").is_some_and(|(_, f)| f.added), "{load:?}");
    // PromQL through the mixer: `rack=""` selects the series without it,
    // h0 among them with its points from before and after the change.
    let mixer_http = c.procs["mixer"].http.clone();
    let query = |q: &str| {
        let path = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=15",
            q.replace('{', "%7B").replace('}', "%7D").replace('"', "%22").replace('=', "%3D"),
            t / 1000,
            at / 1000
        );
        let mixer_http = mixer_http.clone();
        async move {
            let (status, body) =
                tokio::task::spawn_blocking(move || common::http_get(&mixer_http, &path)).await.unwrap();
            assert_eq!(status, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let mut out: Vec<(String, usize)> = v["data"]["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let m = s["metric"].as_object().unwrap();
                    assert!(m.get("rack").is_none_or(|r| r != ""), "an empty label is shown: {m:?}");
                    (m["instance"].as_str().unwrap().to_owned(), s["values"].as_array().unwrap().len())
                })
                .collect();
            out.sort();
            out
        }
    };
    let unracked = query("node_load1{rack=\"\"}").await;
    assert_eq!(unracked.len(), 3, "{unracked:?}");
    assert_eq!(unracked[0].0, "h0:9100");
    assert_eq!(query("node_load1{rack=\"r1\"}").await, [("h9:9100".to_owned(), 1)]);
}

/// `/healthz` tells a load balancer whether a role can serve: every role
/// of a running zone can; a mixer that has reached no assigner member and
/// has no cached table cannot, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_whether_each_role_can_serve() {
    let (_dir, c) = cluster(1, |_| {}).await;
    for (name, p) in &c.procs {
        let http = p.http.clone();
        let (status, body) = tokio::task::spawn_blocking(move || common::http_get(&http, "/healthz")).await.unwrap();
        assert_eq!((status, body.as_str()), (200, "ok\n"), "{name}");
    }
    let (grpc, http) = (common::free_port(), common::free_port());
    let _mixer = common::Proc(
        std::process::Command::new(common::danaus_bin())
            .args(["mixer", "--listen", &format!("127.0.0.1:{grpc}"), "--http", &format!("127.0.0.1:{http}")])
            .args(["--assigners", &format!("127.0.0.1:{}", common::free_port()), "--log", "warn"])
            .spawn()
            .unwrap(),
    );
    let addr = format!("127.0.0.1:{http}");
    common::wait_http(&addr, "/metrics");
    let (status, body) = tokio::task::spawn_blocking(move || common::http_get(&addr, "/healthz")).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no zone table yet"), "{body}");
}
