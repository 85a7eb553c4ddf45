//! Behaviour of a leaf over in-memory storage: what users write is what they
//! read, across checkpoints, crashes and restarts.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use danaus_leaf::{Leaf, LeafConfig, LeafOptions};
use danaus_model::{Applied, ErrorCode, MatchOp, Matcher, ReadRequest, SeriesWrite};
use danaus_model::{
    FieldDef, FieldType, FieldValue, MetricKind, MetricSchema, Point, ScalarType, TargetSchema, Value, ValueType,
};
use danaus_storage::{Clock, KvStore, MemKv, MemLogDevice};

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * SEC;

#[derive(Clone)]
struct TestClock(Arc<AtomicI64>);

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Env {
    kv: Arc<MemKv>,
    dev: MemLogDevice,
    clock: TestClock,
    opts: LeafOptions,
}

impl Env {
    fn new(opts: LeafOptions) -> Self {
        Self {
            kv: Arc::new(MemKv::new()),
            dev: MemLogDevice::new(),
            clock: TestClock(Arc::new(AtomicI64::new(T0))),
            opts,
        }
    }

    async fn open(&self) -> Leaf {
        Leaf::open(LeafConfig {
            kv: self.kv.clone() as Arc<dyn KvStore>,
            log: Arc::new(self.dev.clone()),
            clock: Arc::new(self.clock.clone()),
            options: self.opts.clone(),
        })
        .await
        .unwrap()
    }
}

fn opts() -> LeafOptions {
    LeafOptions { checkpoint_interval: Duration::from_secs(3600), chunk_max_points: 16, ..LeafOptions::default() }
}

fn task_schema() -> TargetSchema {
    TargetSchema {
        name: "ComputeTask".into(),
        fields: vec![
            FieldDef::new("user", FieldType::String),
            FieldDef::new("cluster", FieldType::String),
            FieldDef::new("task_num", FieldType::Int64),
        ],
        location_field: "cluster".into(),
    }
}

fn latency_schema() -> MetricSchema {
    MetricSchema {
        name: "/rpc/latency".into(),
        fields: vec![FieldDef::new("method", FieldType::String)],
        value_type: ValueType::Scalar(ScalarType::Double),
        kind: MetricKind::Gauge,
        unit: "ms".into(),
        description: String::new(),
        collection: None,
    }
}

async fn setup(leaf: &Leaf) {
    assert_eq!(leaf.apply_target_schema("default", task_schema()).await.unwrap(), Applied::Created);
    assert_eq!(leaf.apply_metric_schema("default", latency_schema()).await.unwrap(), Applied::Created);
}

fn series(user: &str, task: i64, method: &str, points: Vec<Point>) -> SeriesWrite {
    SeriesWrite {
        target_schema: "ComputeTask".into(),
        target_fields: Vec::from([
            ("user".into(), FieldValue::String(user.into())),
            ("cluster".into(), FieldValue::String("c1".into())),
            ("task_num".into(), FieldValue::Int64(task)),
        ])
        .into(),
        metric: "/rpc/latency".into(),
        metric_fields: Arc::from([("method".into(), FieldValue::String(method.into()))]),
        points,
    }
}

fn gauge(t: i64, v: f64) -> Point {
    Point::gauge(t, Value::Double(v))
}

fn req(matchers: Vec<Matcher>) -> ReadRequest {
    ReadRequest {
        target_schema: "ComputeTask".into(),
        metric: "/rpc/latency".into(),
        matchers,
        start: i64::MIN,
        end: i64::MAX,
    }
}

fn m(field: &str, op: MatchOp, value: &str) -> Matcher {
    Matcher { field: field.into(), op, value: value.into() }
}

/// Everything in the leaf, as (user, task, method) → [(time, value bits)].
async fn dump(leaf: &Leaf) -> BTreeMap<(String, i64, String), Vec<(i64, u64)>> {
    let mut out = BTreeMap::new();
    for (s, pts) in leaf.read("default", &req(vec![])).await.unwrap() {
        let get =
            |n: &str| s.target_fields.iter().chain(&s.metric_fields).find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let (Some(FieldValue::String(u)), Some(FieldValue::Int64(t)), Some(FieldValue::String(me))) =
            (get("user"), get("task_num"), get("method"))
        else {
            panic!("fields missing: {s:?}")
        };
        let pts: Vec<(i64, u64)> = pts
            .iter()
            .map(|p| match p.value {
                Value::Double(d) => (p.end_time, d.to_bits()),
                _ => panic!("not a double"),
            })
            .collect();
        // The column scan agrees with the point read.
        let (mut times, mut values) = (vec![-1], vec![0.0]);
        assert!(leaf.doubles(&s, i64::MIN, i64::MAX, &mut times, &mut values).await.unwrap());
        let cols: Vec<(i64, u64)> = times[1..].iter().zip(&values[1..]).map(|(t, v)| (*t, v.to_bits())).collect();
        assert_eq!(cols, pts, "doubles() and points() differ for {s:?}");
        if !pts.is_empty() {
            out.insert((u, t, me), pts);
        }
    }
    out
}

#[tokio::test]
async fn valid_series_are_stored_while_bad_ones_are_reported() {
    let env = Env::new(opts());
    let leaf = env.open().await;
    setup(&leaf).await;
    let mut bad_field = series("u", 1, "Get", vec![gauge(T0, 1.0)]);
    let mut fields = bad_field.target_fields.to_vec();
    fields.retain(|(k, _)| k != "task_num");
    fields.push(("task_num".into(), FieldValue::String("one".into())));
    bad_field.target_fields = fields.into();
    let mut unknown = series("u", 1, "Get", vec![gauge(T0, 1.0)]);
    unknown.metric = "/nope".into();
    let batch = vec![
        series("alice", 1, "Get", vec![gauge(T0, 1.0), gauge(T0 + SEC, 2.0)]),
        bad_field,
        unknown,
        series("bob", 2, "Put", vec![gauge(T0, f64::NAN), Point::gauge(T0 + SEC, Value::Int64(3))]),
    ];
    let r = leaf.write("default", &batch).await.unwrap();
    assert_eq!(r.accepted_points, 3);
    assert_eq!(r.errors.len(), 3, "{:?}", r.errors);
    assert_eq!((r.errors[0].index, r.errors[0].code), (1, ErrorCode::InvalidArgument));
    assert!(r.errors[0].message.contains("field \"task_num\": expects int64, got string"), "{}", r.errors[0].message);
    assert_eq!((r.errors[1].index, r.errors[1].code), (2, ErrorCode::NotFound));
    assert!(r.errors[1].message.contains("unknown metric schema \"/nope\""));
    assert_eq!((r.errors[2].index, r.errors[2].rejected_points.clone()), (3, vec![1]));
    assert!(
        r.errors[2].message.contains(
            "point 1 of series ComputeTask{\"c1\", \"bob\", 2}::/rpc/latency{\"Put\"}: expects double, got int64"
        ),
        "{}",
        r.errors[2].message
    );

    let got = dump(&leaf).await;
    assert_eq!(got[&("alice".into(), 1, "Get".into())], vec![(T0, 1f64.to_bits()), (T0 + SEC, 2f64.to_bits())]);
    assert_eq!(got[&("bob".into(), 2, "Put".into())], vec![(T0, f64::NAN.to_bits())]);

    // Matchers over target and metric fields.
    let sel =
        leaf.select("default", &req(vec![m("user", MatchOp::Re, "al.*"), m("method", MatchOp::Eq, "Get")])).unwrap();
    assert_eq!(sel.len(), 1);
    assert!(leaf
        .select("default", &req(vec![m("task_num", MatchOp::Ne, "1")]))
        .unwrap()
        .iter()
        .all(|s| s.key.target_fields[2] != FieldValue::Int64(1)));
    let e = leaf.select("default", &req(vec![m("task_num", MatchOp::Eq, "x")])).unwrap_err().to_string();
    assert!(e.contains("field \"task_num\" is int64; \"x\" is not a valid int64"), "{e}");
    // Tenants do not see each other.
    assert!(leaf.select("other", &req(vec![])).is_err());
}

#[tokio::test]
async fn out_of_order_duplicates_and_conflicts() {
    let env = Env::new(LeafOptions { out_of_order_window: Duration::from_secs(60), ..opts() });
    let leaf = env.open().await;
    setup(&leaf).await;
    let w = |pts: Vec<Point>| series("a", 1, "Get", pts);
    let r = leaf.write("default", &[w(vec![gauge(T0 + 100 * SEC, 1.0)])]).await.unwrap();
    assert!(r.errors.is_empty());
    // Within the window, out of order: stored.
    let r = leaf.write("default", &[w(vec![gauge(T0 + 50 * SEC, 0.5)])]).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    // Older than the window: refused with a clear error.
    let r = leaf.write("default", &[w(vec![gauge(T0 + 10 * SEC, 9.0)])]).await.unwrap();
    assert_eq!(r.errors[0].code, ErrorCode::OutOfWindow);
    assert!(r.errors[0].message.contains("older than the out-of-order window"), "{}", r.errors[0].message);
    // A retry of a stored point is accepted; a different value at that time is refused.
    let r = leaf.write("default", &[w(vec![gauge(T0 + 100 * SEC, 1.0), gauge(T0 + 50 * SEC, 0.5)])]).await.unwrap();
    assert!(r.errors.is_empty());
    assert_eq!(r.accepted_points, 2);
    let r = leaf.write("default", &[w(vec![gauge(T0 + 50 * SEC, 7.0)])]).await.unwrap();
    assert_eq!(r.errors[0].code, ErrorCode::Conflict);
    let got = dump(&leaf).await;
    assert_eq!(
        got[&("a".into(), 1, "Get".into())],
        vec![(T0 + 50 * SEC, 0.5f64.to_bits()), (T0 + 100 * SEC, 1f64.to_bits())]
    );
    assert_eq!(leaf.stats().points_out_of_window.load(Ordering::Relaxed), 1);
    assert_eq!(leaf.stats().points_conflict.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn acked_points_survive_a_crash_and_a_checkpointed_restart() {
    let env = Env::new(opts());
    let leaf = env.open().await;
    setup(&leaf).await;
    for i in 0..40 {
        let b: Vec<_> = (0..5).map(|s| series("u", s, "Get", vec![gauge(T0 + i * 10 * SEC, (i * s) as f64)])).collect();
        assert!(leaf.write("default", &b).await.unwrap().errors.is_empty());
    }
    let before = dump(&leaf).await;
    assert_eq!(before.values().map(Vec::len).sum::<usize>(), 200);
    // Crash: no shutdown, unsynced bytes lost.
    drop(leaf);
    env.dev.crash();
    let leaf = env.open().await;
    assert!(leaf.replay_report().records >= 40);
    assert_eq!(dump(&leaf).await, before);
    // Checkpoint: the log is emptied, data comes back from the store.
    let report = leaf.checkpoint().await.unwrap();
    assert!(report.chunks_written > 0 && report.segments_removed >= 1, "{report:?}");
    leaf.shutdown().await.unwrap();
    drop(leaf);
    let leaf = env.open().await;
    assert_eq!(leaf.replay_report().records, 0);
    assert_eq!(dump(&leaf).await, before);
    // And writing continues where it left off.
    let r = leaf.write("default", &[series("u", 0, "Get", vec![gauge(T0 + 400 * SEC, 1.0)])]).await.unwrap();
    assert!(r.errors.is_empty());
    let r = leaf.write("default", &[series("u", 0, "Get", vec![gauge(T0, 5.0)])]).await.unwrap();
    assert_eq!(r.errors[0].code, ErrorCode::Conflict, "a restarted leaf still knows stored points");
}

#[tokio::test]
async fn old_chunks_leave_memory_and_are_read_from_the_store_and_retention_deletes() {
    let env = Env::new(LeafOptions {
        memory_window: Duration::from_secs(60),
        retention: Some(Duration::from_secs(30 * 86_400)),
        chunk_max_span: Duration::from_secs(600),
        ..opts()
    });
    let leaf = env.open().await;
    setup(&leaf).await;
    let day = 86_400 * SEC;
    // 40 days of hourly points, written in order.
    for i in 0..(40 * 24) {
        let r =
            leaf.write("default", &[series("u", 1, "Get", vec![gauge(T0 + i * 3600 * SEC, i as f64)])]).await.unwrap();
        assert!(r.errors.is_empty());
    }
    env.clock.0.store(T0 + 40 * day, Ordering::Relaxed);
    let before = leaf.memory_usage();
    let r = leaf.checkpoint().await.unwrap();
    assert!(r.chunks_evicted > 0, "{r:?}");
    assert!(leaf.memory_usage().points < before.points);
    let got = &dump(&leaf).await[&("u".into(), 1, "Get".into())];
    // Retention keeps the last 30 days (plus at most one chunk span).
    let floor = T0 + 10 * day;
    assert!(got.iter().all(|(t, _)| *t >= floor - 4 * 3600 * SEC), "oldest {}", (got[0].0 - T0) / SEC);
    assert!(got.iter().any(|(t, _)| *t < floor + 3600 * SEC));
    assert_eq!(got.last().unwrap().0, T0 + (40 * 24 - 1) * 3600 * SEC);
    let recent = got.iter().filter(|(t, _)| *t >= floor).count() as i64;
    assert_eq!(recent, 30 * 24);
}

/// Reads of recent points start at a mark inside the open chunk: every
/// range over sealed chunks, a 200-point open chunk and an out-of-order
/// chunk sees exactly what the point read sees.
#[tokio::test]
async fn double_columns_of_long_open_chunks_match_points_for_every_range() {
    let env = Env::new(LeafOptions { chunk_max_points: 200, ..opts() });
    let leaf = env.open().await;
    setup(&leaf).await;
    // 300 points (a sealed chunk of 200, 100 open), then 30 more one at a
    // time, then late points filling gaps left at odd seconds.
    let at = |i: i64| T0 + 2 * i * SEC;
    let points: Vec<Point> = (0..300).map(|i| gauge(at(i), (i * 7 % 50) as f64 / 4.0)).collect();
    leaf.write("default", &[series("u", 1, "Get", points)]).await.unwrap();
    for i in 300..330 {
        leaf.write("default", &[series("u", 1, "Get", vec![gauge(at(i), i as f64)])]).await.unwrap();
    }
    let late: Vec<Point> = (320..325).map(|i| gauge(at(i) + SEC, -1.0)).collect();
    leaf.write("default", &[series("u", 1, "Get", late)]).await.unwrap();
    let s = &leaf.select("default", &req(vec![])).unwrap()[0];
    for from in [0, 150, 199, 200, 201, 230, 263, 288, 296, 310, 319, 321, 329, 331] {
        for to in [from + 1, from + 40, 400] {
            let (start, end) = (at(from) - 1, at(to));
            let want: Vec<(i64, u64)> = leaf
                .points(s, start, end)
                .await
                .unwrap()
                .iter()
                .map(|p| (p.end_time, if let Value::Double(v) = p.value { v.to_bits() } else { 0 }))
                .collect();
            let (mut times, mut values) = (Vec::new(), Vec::new());
            assert!(leaf.doubles(s, start, end, &mut times, &mut values).await.unwrap());
            let got: Vec<(i64, u64)> = times.iter().zip(&values).map(|(t, v)| (*t, v.to_bits())).collect();
            assert_eq!(got, want, "[{from}, {to}]");
            let in_order = (to.min(329) - from + 1).max(0);
            let late = (320..325).filter(|i| *i >= from && *i < to).count() as i64;
            assert_eq!(got.len() as i64, in_order + late, "[{from}, {to}]");
        }
    }
}

#[tokio::test]
async fn double_columns_of_a_counter_with_start_times_skip_the_starts() {
    let env = Env::new(opts());
    let leaf = env.open().await;
    setup(&leaf).await;
    let mut ms = latency_schema();
    ms.name = "/rpc/count".into();
    ms.kind = MetricKind::Cumulative;
    leaf.apply_metric_schema("default", ms).await.unwrap();
    // 40 points: two sealed chunks of 16 and an open one; a reset at 25.
    let points: Vec<Point> = (0..40)
        .map(|i| {
            let start = if i < 25 { T0 } else { T0 + 25 * SEC };
            Point { start_time: Some(start), end_time: T0 + i * SEC, value: Value::Double((i % 25) as f64) }
        })
        .collect();
    let mut w = series("u", 1, "Get", points);
    w.metric = "/rpc/count".into();
    leaf.write("default", &[w]).await.unwrap();
    let mut r = req(vec![]);
    r.metric = "/rpc/count".into();
    let selected = leaf.select("default", &r).unwrap();
    let s = &selected[0];
    let (from, to) = (T0 + 3 * SEC, T0 + 35 * SEC);
    let pts = leaf.points(s, from, to).await.unwrap();
    let (mut times, mut values) = (Vec::new(), Vec::new());
    assert!(!leaf.doubles(s, from, to, &mut times, &mut values).await.unwrap(), "doubles() keeps start times");
    assert!(times.is_empty());
    assert!(leaf.doubles_without_starts(s, from, to, &mut times, &mut values).await.unwrap());
    let want: Vec<(i64, f64)> =
        pts.iter().map(|p| (p.end_time, if let Value::Double(v) = p.value { v } else { f64::NAN })).collect();
    let got: Vec<(i64, f64)> = times.into_iter().zip(values).collect();
    assert_eq!(got.len(), 33);
    assert_eq!(got, want);
    // Time ranges alone tell which ranges may hold points.
    assert!(leaf.may_have_points(s, T0 + 20 * SEC, T0 + 20 * SEC).await.unwrap());
    assert!(leaf.may_have_points(s, T0 - 10 * SEC, T0).await.unwrap());
    assert!(!leaf.may_have_points(s, T0 + 40 * SEC, T0 + 400 * SEC).await.unwrap());
    assert!(!leaf.may_have_points(s, T0 - 10 * SEC, T0 - SEC).await.unwrap());
}

#[tokio::test]
async fn schema_changes_that_would_rekey_data_are_refused() {
    let env = Env::new(opts());
    let leaf = env.open().await;
    setup(&leaf).await;
    let mut t = task_schema();
    t.fields.pop();
    let e = leaf.apply_target_schema("default", t).await.unwrap_err().to_string();
    assert!(e.contains("already exists with different fields"), "{e}");
    let mut ms = latency_schema();
    ms.description = "new words".into();
    assert_eq!(leaf.apply_metric_schema("default", ms.clone()).await.unwrap(), Applied::Updated);
    ms.kind = MetricKind::Cumulative;
    assert!(leaf.apply_metric_schema("default", ms).await.unwrap_err().to_string().contains("and stays so"));
    // Schemas persist.
    drop(leaf);
    let leaf = env.open().await;
    assert_eq!(leaf.metric_schema("default", "/rpc/latency").unwrap().description, "new words");
}

mod model_check {
    //! Random workloads with checkpoints, crashes and restarts against a
    //! reference model of what was acknowledged.

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Write { series: i64, dt: i64, value: i32 },
        Checkpoint,
        Crash,
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0i64..4, -30i64..60, any::<i32>()).prop_map(|(series, dt, value)| Op::Write { series, dt, value }),
            1 => Just(Op::Checkpoint),
            1 => Just(Op::Crash),
            1 => Just(Op::Restart),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn reads_equal_the_model(ops in prop::collection::vec(op(), 1..80)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let env = Env::new(LeafOptions { out_of_order_window: Duration::from_secs(20), chunk_max_points: 5, memory_window: Duration::from_secs(0), ..opts() });
                let mut leaf = env.open().await;
                setup(&leaf).await;
                let mut model: BTreeMap<(String, i64, String), BTreeMap<i64, u64>> = BTreeMap::new();
                let mut clock: HashMap<i64, i64> = HashMap::new();
                for op in ops {
                    match op {
                        Op::Write { series: s, dt, value } => {
                            let t = clock.get(&s).copied().unwrap_or(T0) + dt * SEC;
                            let v = f64::from(value);
                            let r = leaf.write("default", &[series("m", s, "Get", vec![gauge(t, v)])]).await.unwrap();
                            let entry = model.entry(("m".into(), s, "Get".into())).or_default();
                            if r.errors.is_empty() {
                                let prev = entry.insert(t, v.to_bits());
                                assert!(prev.is_none() || prev == Some(v.to_bits()));
                                let c = clock.entry(s).or_insert(T0);
                                *c = (*c).max(t);
                            } else {
                                let code = r.errors[0].code;
                                assert!(code == ErrorCode::OutOfWindow || code == ErrorCode::Conflict, "{:?}", r.errors);
                                if code == ErrorCode::Conflict {
                                    assert!(entry.get(&t).is_some_and(|old| *old != v.to_bits()));
                                }
                            }
                        }
                        Op::Checkpoint => { leaf.checkpoint().await.unwrap(); }
                        Op::Crash => { drop(leaf); env.dev.crash(); leaf = env.open().await; }
                        Op::Restart => { leaf.shutdown().await.unwrap(); drop(leaf); leaf = env.open().await; }
                    }
                }
                let want: BTreeMap<_, Vec<(i64, u64)>> = model.into_iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k, v.into_iter().collect())).collect();
                assert_eq!(dump(&leaf).await, want);
                // A read of a recent range, which memory alone may serve.
                let from = T0 + 30 * SEC;
                let mut recent = req(vec![]);
                recent.start = from;
                let mut got: BTreeMap<(String, i64, String), Vec<(i64, u64)>> = BTreeMap::new();
                for (s, pts) in leaf.read("default", &recent).await.unwrap() {
                    let task = s.target_fields.iter().find(|(k, _)| k == "task_num").map(|(_, v)| v.clone());
                    let Some(FieldValue::Int64(t)) = task else { panic!("{s:?}") };
                    let pts: Vec<(i64, u64)> = pts.iter().map(|p| match p.value { Value::Double(d) => (p.end_time, d.to_bits()), _ => panic!() }).collect();
                    let (mut times, mut values) = (Vec::new(), Vec::new());
                    assert!(leaf.doubles(&s, from, i64::MAX, &mut times, &mut values).await.unwrap());
                    let cols: Vec<(i64, u64)> = times.iter().zip(&values).map(|(t, v)| (*t, v.to_bits())).collect();
                    assert_eq!(cols, pts);
                    if !pts.is_empty() { got.insert(("m".into(), t, "Get".into()), pts); }
                }
                let want_recent: BTreeMap<_, Vec<(i64, u64)>> = want
                    .iter()
                    .map(|(k, v)| (k.clone(), v.iter().copied().filter(|(t, _)| *t >= from).collect::<Vec<_>>()))
                    .filter(|(_, v)| !v.is_empty())
                    .collect();
                assert_eq!(got, want_recent);
            });
        }
    }
}

mod disk_failure {
    //! A failed fsync must never be acknowledged, and the leaf must say it
    //! is unhealthy rather than limp on (PostgreSQL's "fsyncgate").

    use super::*;
    use danaus_leaf::Error;
    use danaus_storage::{LogDevice, SegmentWriter};
    use std::sync::atomic::AtomicBool;

    #[derive(Clone)]
    struct FlakyDisk {
        inner: MemLogDevice,
        fail: Arc<AtomicBool>,
    }

    struct FlakySegment {
        inner: Box<dyn SegmentWriter>,
        fail: Arc<AtomicBool>,
    }

    impl SegmentWriter for FlakySegment {
        fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
            self.inner.append(data)
        }
        fn sync(&mut self) -> std::io::Result<()> {
            if self.fail.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("EIO (injected)"));
            }
            self.inner.sync()
        }
    }

    impl LogDevice for FlakyDisk {
        fn list(&self) -> std::io::Result<Vec<u64>> {
            self.inner.list()
        }
        fn create(&self, id: u64) -> std::io::Result<Box<dyn SegmentWriter>> {
            Ok(Box::new(FlakySegment { inner: self.inner.create(id)?, fail: self.fail.clone() }))
        }
        fn read(&self, id: u64) -> std::io::Result<Vec<u8>> {
            self.inner.read(id)
        }
        fn truncate(&self, id: u64, len: u64) -> std::io::Result<()> {
            self.inner.truncate(id, len)
        }
        fn remove(&self, id: u64) -> std::io::Result<()> {
            self.inner.remove(id)
        }
        fn is_blocking(&self) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn a_failed_fsync_is_not_acknowledged_and_marks_the_leaf_unhealthy() {
        let disk = FlakyDisk { inner: MemLogDevice::new(), fail: Arc::new(AtomicBool::new(false)) };
        let kv = Arc::new(MemKv::new());
        let open = |disk: FlakyDisk| {
            let kv = kv.clone();
            async move {
                Leaf::open(LeafConfig {
                    kv,
                    log: Arc::new(disk),
                    clock: Arc::new(TestClock(Arc::new(AtomicI64::new(T0)))),
                    options: opts(),
                })
                .await
                .unwrap()
            }
        };
        let leaf = open(disk.clone()).await;
        setup(&leaf).await;
        let w = |t: i64| vec![series("u", 1, "Get", vec![gauge(t, 1.0)])];
        assert!(leaf.write("default", &w(T0)).await.unwrap().errors.is_empty());
        assert_eq!(leaf.unhealthy(), None);
        disk.fail.store(true, Ordering::Relaxed);
        let e = leaf.write("default", &w(T0 + SEC)).await.unwrap_err();
        assert!(matches!(e, Error::Unavailable(_)), "{e}");
        assert!(e.to_string().contains("EIO (injected)"), "{e}");
        // Even once the disk recovers, the log stays refused.
        disk.fail.store(false, Ordering::Relaxed);
        assert!(matches!(leaf.write("default", &w(T0 + 2 * SEC)).await, Err(Error::Unavailable(_))));
        assert!(leaf.unhealthy().unwrap().contains("recovery log failed"));
        // After a restart the acknowledged point is there.
        drop(leaf);
        disk.inner.crash();
        let leaf = open(disk).await;
        assert_eq!(leaf.unhealthy(), None);
        let got = dump(&leaf).await;
        assert!(got[&("u".into(), 1, "Get".into())].contains(&(T0, 1f64.to_bits())));
    }
}

/// The target string of `series(user, task, ..)` in tenant "default".
fn target_of(user: &str, task: i64) -> Vec<u8> {
    let s = series(user, task, "Get", vec![]);
    danaus_model::validate::encoded_target("default", &task_schema(), &s.target_fields).unwrap()
}

#[tokio::test]
async fn ranges_are_imported_selected_counted_and_dropped() {
    let env = Env::new(LeafOptions { out_of_order_window: Duration::from_secs(60), ..opts() });
    let leaf = env.open().await;
    setup(&leaf).await;
    for task in 0..6 {
        let pts = (0..10).map(|i| gauge(T0 + i * SEC, (task * 100 + i) as f64)).collect();
        assert!(leaf.write("default", &[series("u", task, "Get", pts)]).await.unwrap().errors.is_empty());
    }
    // History older than the out-of-order window is refused by a write but
    // taken by an import (a range's history copy); duplicates stay silent.
    let old = vec![gauge(T0 - 3600 * SEC, 1.5), gauge(T0, 0.0)];
    let r = leaf.write("default", &[series("u", 0, "Get", old.clone())]).await.unwrap();
    assert_eq!(r.errors[0].code, ErrorCode::OutOfWindow);
    let r = leaf.import("default", &[series("u", 0, "Get", old)]).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.accepted_points, 2);
    let r = leaf.import("default", &[series("u", 0, "Get", vec![gauge(T0, 9.0)])]).await.unwrap();
    assert_eq!(r.errors[0].code, ErrorCode::Conflict, "an import does not overwrite");

    // Cut the targets at task 3: [.., t3) and [t3, ..).
    let cut = target_of("u", 3);
    let low = leaf.select_range(b"", Some(&cut));
    let high = leaf.select_range(&cut, None);
    assert_eq!(low.len(), 3);
    assert_eq!(high.len(), 3);
    assert!(low.iter().all(|s| s.key.target_string().0 < cut));
    let stats = leaf.range_stats(&[(Vec::new(), Some(cut.clone())), (cut.clone(), None)]);
    assert_eq!(stats.iter().map(|s| s.0).collect::<Vec<_>>(), vec![3, 3]);
    let median = stats[1].1.clone().unwrap();
    assert!(median >= cut, "a median lies inside its range");

    // Dropping the high range deletes it from memory and the store, and
    // it stays deleted across a checkpointed restart.
    leaf.checkpoint().await.unwrap();
    assert_eq!(leaf.drop_range(&cut, None).await.unwrap(), 3);
    assert_eq!(leaf.drop_range(&cut, None).await.unwrap(), 0, "dropping is idempotent");
    let left = dump(&leaf).await;
    assert_eq!(left.keys().map(|k| k.1).collect::<Vec<_>>(), vec![0, 1, 2]);
    leaf.shutdown().await.unwrap();
    drop(leaf);
    let leaf = env.open().await;
    assert_eq!(dump(&leaf).await, left);
    assert!(leaf.select_range(&cut, None).is_empty());
    // The range can be written again (a range that comes back).
    let r = leaf.write("default", &[series("u", 4, "Get", vec![gauge(T0 + 20 * SEC, 4.0)])]).await.unwrap();
    assert!(r.errors.is_empty());
    assert_eq!(leaf.select_range(&cut, None).len(), 1);
}

fn count_schema() -> MetricSchema {
    MetricSchema {
        name: "/rpc/count".into(),
        fields: vec![FieldDef::new("method", FieldType::String)],
        value_type: ValueType::Scalar(ScalarType::Int64),
        kind: MetricKind::Delta,
        unit: "1".into(),
        description: String::new(),
        collection: Some(danaus_model::CollectionAggregation {
            drop_fields: vec!["task_num".into()],
            period: 10 * SEC,
            admission_window: 30 * SEC,
        }),
    }
}

fn count(task: i64, points: Vec<Point>) -> SeriesWrite {
    SeriesWrite { metric: "/rpc/count".into(), ..series("u", task, "Get", points) }
}

fn delta(end: i64, v: i64) -> Point {
    Point { start_time: Some(end - SEC), end_time: end, value: Value::Int64(v) }
}

/// The aggregated output: (task_num, method) → [(start, end, value)].
async fn counts(leaf: &Leaf) -> BTreeMap<(i64, String), Vec<(Option<i64>, i64, i64)>> {
    let r = ReadRequest { metric: "/rpc/count".into(), ..req(vec![]) };
    let mut out = BTreeMap::new();
    for (s, pts) in leaf.read("default", &r).await.unwrap() {
        let task = s.target_fields.iter().find(|(k, _)| k == "task_num").map(|(_, v)| v.clone());
        let method = s.metric_fields.iter().find(|(k, _)| k == "method").map(|(_, v)| v.clone());
        let (Some(FieldValue::Int64(t)), Some(FieldValue::String(m))) = (task, method) else { panic!("{s:?}") };
        let pts = pts
            .iter()
            .map(|p| match p.value {
                Value::Int64(v) => (p.start_time, p.end_time, v),
                _ => panic!("not an int"),
            })
            .collect::<Vec<_>>();
        if !pts.is_empty() {
            out.insert((t, m), pts);
        }
    }
    out
}

#[tokio::test]
async fn collection_aggregation_sums_deltas_per_bucket_and_refuses_late_ones() {
    let env = Env::new(opts());
    let leaf = env.open().await;
    setup(&leaf).await;
    leaf.apply_metric_schema("default", count_schema()).await.unwrap();
    // Three tasks, two buckets: (T0-10s, T0] and (T0, T0+10s].
    for task in 0..3 {
        let w = [count(task, vec![delta(T0 - 5 * SEC, 1), delta(T0 + 5 * SEC, 10 + task)])];
        assert!(leaf.write("default", &w).await.unwrap().errors.is_empty());
    }
    // A retry is recognised; a different value for the same delta is not.
    let r = leaf.write("default", &[count(1, vec![delta(T0 + 5 * SEC, 11)])]).await.unwrap();
    assert!(r.errors.is_empty() && r.accepted_points == 1);
    let r = leaf.write("default", &[count(1, vec![delta(T0 + 5 * SEC, 99)])]).await.unwrap();
    assert_eq!(r.errors[0].code, ErrorCode::Conflict, "{r:?}");
    assert_eq!(leaf.open_buckets(), (2, 6));
    // Nothing is visible before the admission window has passed.
    leaf.close_buckets().await.unwrap();
    assert!(counts(&leaf).await.is_empty());
    env.clock.0.store(T0 + 30 * SEC, Ordering::Relaxed);
    leaf.close_buckets().await.unwrap();
    let want_first = vec![(Some(T0 - 10 * SEC), T0, 3)];
    assert_eq!(counts(&leaf).await, BTreeMap::from([((0, "Get".to_string()), want_first.clone())]));
    // The first bucket has closed: a delta for it is late, refused and
    // counted; the second still admits.
    let r = leaf.write("default", &[count(7, vec![delta(T0 - 2 * SEC, 5), delta(T0 + 2 * SEC, 100)])]).await.unwrap();
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].code, ErrorCode::OutOfWindow);
    assert_eq!(r.errors[0].rejected_points, vec![0]);
    assert!(r.errors[0].message.contains("late delta"), "{}", r.errors[0].message);
    assert_eq!(leaf.stats().points_late.load(Ordering::Relaxed), 1);
    env.clock.0.store(T0 + 40 * SEC, Ordering::Relaxed);
    leaf.close_buckets().await.unwrap();
    let want = vec![want_first[0], (Some(T0), T0 + 10 * SEC, 10 + 11 + 12 + 100)];
    assert_eq!(counts(&leaf).await, BTreeMap::from([((0, "Get".to_string()), want)]));
    assert_eq!(leaf.stats().aggregation_buckets_closed.load(Ordering::Relaxed), 2);
    assert_eq!(leaf.open_buckets(), (0, 0));
    // Dropping the location field is refused with a clear error.
    let mut bad = count_schema();
    bad.name = "/rpc/bad".into();
    bad.collection.as_mut().unwrap().drop_fields = vec!["cluster".into()];
    leaf.apply_metric_schema("default", bad).await.unwrap();
    let w = SeriesWrite { metric: "/rpc/bad".into(), ..count(1, vec![delta(T0 + 45 * SEC, 1)]) };
    let r = leaf.write("default", &[w]).await.unwrap();
    assert!(r.errors[0].message.contains("cannot drop \"cluster\""), "{:?}", r.errors);
}

#[tokio::test]
async fn open_buckets_survive_checkpoints_and_crashes_without_double_counting() {
    let env = Env::new(opts());
    let leaf = env.open().await;
    setup(&leaf).await;
    leaf.apply_metric_schema("default", count_schema()).await.unwrap();
    for task in 0..4 {
        assert!(leaf.write("default", &[count(task, vec![delta(T0 + SEC, 1)])]).await.unwrap().errors.is_empty());
    }
    // The checkpoint saves the open bucket and removes the log holding it.
    let report = leaf.checkpoint().await.unwrap();
    assert!(report.segments_removed >= 1, "{report:?}");
    for task in 4..6 {
        assert!(leaf.write("default", &[count(task, vec![delta(T0 + 2 * SEC, 10)])]).await.unwrap().errors.is_empty());
    }
    // Crash, then retry an acknowledged delta: it is a duplicate.
    drop(leaf);
    env.dev.crash();
    let leaf = env.open().await;
    assert_eq!(leaf.open_buckets(), (1, 6));
    let r = leaf.write("default", &[count(0, vec![delta(T0 + SEC, 1)])]).await.unwrap();
    assert!(r.errors.is_empty());
    assert_eq!(leaf.stats().points_duplicate.load(Ordering::Relaxed), 1);
    env.clock.0.store(T0 + 40 * SEC, Ordering::Relaxed);
    leaf.close_buckets().await.unwrap();
    let want = BTreeMap::from([((0, "Get".to_string()), vec![(Some(T0), T0 + 10 * SEC, 24)])]);
    assert_eq!(counts(&leaf).await, want);
    // After a crash the closed bucket does not come back as open, so it is
    // neither stored twice nor reopened for late deltas.
    drop(leaf);
    env.dev.crash();
    let leaf = env.open().await;
    assert_eq!(leaf.open_buckets(), (0, 0));
    assert_eq!(counts(&leaf).await, want);
    let r = leaf.write("default", &[count(9, vec![delta(T0 + 3 * SEC, 1)])]).await.unwrap();
    assert_eq!(r.errors[0].code, ErrorCode::OutOfWindow);
    // And after a checkpointed restart too.
    leaf.checkpoint().await.unwrap();
    leaf.shutdown().await.unwrap();
    drop(leaf);
    let leaf = env.open().await;
    assert_eq!(leaf.open_buckets(), (0, 0));
    assert_eq!(counts(&leaf).await, want);
}

#[tokio::test]
async fn a_range_copy_carries_open_buckets_and_held_buckets_wait_for_it() {
    // `old` held the range; `new` joins: it gets the writes from now on
    // and the history by copy.
    let (old_env, new_env) = (Env::new(opts()), Env::new(opts()));
    let (old, new) = (old_env.open().await, new_env.open().await);
    for l in [&old, &new] {
        setup(l).await;
        l.apply_metric_schema("default", count_schema()).await.unwrap();
    }
    new.set_bucket_hold(Arc::new(|_| true));
    // Before the join: only `old` sees tasks 0 and 1 (bucket ending T0+10s)
    // and task 2's delta of the bucket ending T0 (which `old` will close
    // before the copy).
    for (task, end, v) in [(0, T0 + SEC, 1), (1, T0 + 2 * SEC, 2), (2, T0 - SEC, 7)] {
        assert!(old.write("default", &[count(task, vec![delta(end, v)])]).await.unwrap().errors.is_empty());
    }
    // After it: both see tasks 3 and 4 (dual writes).
    for l in [&old, &new] {
        for task in 3..5 {
            assert!(l.write("default", &[count(task, vec![delta(T0 + 3 * SEC, 10)])]).await.unwrap().errors.is_empty());
        }
    }
    // Bucket T0 is due on both clocks: `old` stores it; `new` holds its
    // (empty) view of the later bucket even once that is due.
    old_env.clock.0.store(T0 + 30 * SEC, Ordering::Relaxed);
    old.close_buckets().await.unwrap();
    new_env.clock.0.store(T0 + 45 * SEC, Ordering::Relaxed);
    new.close_buckets().await.unwrap();
    assert!(counts(&new).await.is_empty(), "a held bucket closed");
    assert_eq!(new.open_buckets(), (1, 2));
    // The copy: stored points first, then the open buckets' deltas.
    let selected = old.select_range(b"", None);
    let mut batch = Vec::new();
    for s in &selected {
        let points = old.points(s, i64::MIN, i64::MAX).await.unwrap();
        if !points.is_empty() {
            batch.push(SeriesWrite {
                target_schema: s.key.target_schema.as_str().into(),
                target_fields: s.target_fields.clone().into(),
                metric: s.key.metric.as_str().into(),
                metric_fields: s.metric_fields.clone().into(),
                points,
            });
        }
    }
    assert!(new.import("default", &batch).await.unwrap().errors.is_empty());
    for (i, deltas) in old.open_deltas(&selected) {
        let s = &selected[i];
        let output = SeriesWrite {
            target_schema: s.key.target_schema.as_str().into(),
            target_fields: s.target_fields.clone().into(),
            metric: s.key.metric.as_str().into(),
            metric_fields: s.metric_fields.clone().into(),
            points: vec![],
        };
        assert_eq!(deltas.len(), 4, "tasks 0, 1, 3 and 4");
        // Tasks 3 and 4 are already here: only 0 and 1 are new.
        assert_eq!(new.import_open("default", &output, &deltas).await.unwrap(), 2);
    }
    // Promoted: the hold lifts, the bucket closes with every delta in it,
    // the same on both replicas.
    new.set_bucket_hold(Arc::new(|_| false));
    new.close_buckets().await.unwrap();
    old_env.clock.0.store(T0 + 45 * SEC, Ordering::Relaxed);
    old.close_buckets().await.unwrap();
    let want = BTreeMap::from([(
        (0, "Get".to_string()),
        vec![(Some(T0 - 10 * SEC), T0, 7), (Some(T0), T0 + 10 * SEC, 1 + 2 + 10 + 10)],
    )]);
    assert_eq!(counts(&old).await, want);
    assert_eq!(counts(&new).await, want);
    // The copied deltas are durable on the new replica.
    drop(new);
    new_env.dev.crash();
    let new = new_env.open().await;
    assert_eq!(counts(&new).await, want);
}
