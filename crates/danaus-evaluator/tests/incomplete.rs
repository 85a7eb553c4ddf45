//! Partial data is never acted upon: while the storage reports a source
//! that did not answer, an evaluation is tried again; once its grace has
//! passed it is committed as a failure that changes nothing (the firing
//! alert stays firing, no point is written, nothing is handed on); with
//! every source back, the next evaluation acts.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use danaus_config::{ConfigView, Kind, Object, ObjectKey};
use danaus_evaluator::{Evaluations, Evaluator, EvaluatorConfig, Recorder, Sink, Source, StoredPoint, WriteError};
use danaus_promql::{Labels, MemStorage, Series, Storage};
use danaus_raft::{BasicNode, GroupConfig, RaftGroup, RaftServer};
use danaus_rules::alert::State;
use danaus_rules::group::Grid;
use danaus_storage::{Clock, MemKv};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use promql_parser::label::Matcher;
use tokio::sync::watch;

const MIN: i64 = 60_000;

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst) * 1_000_000
    }
}

/// Memory that may report a leaf not answering.
struct Partial {
    mem: MemStorage,
    missing: bool,
}

impl Storage for Partial {
    fn select<'a>(
        &'a self,
        matchers: &'a [Matcher],
        start: i64,
        end: i64,
    ) -> BoxFuture<'a, danaus_promql::Result<Vec<Series>>> {
        self.mem.select(matchers, start, end)
    }

    fn warnings(&self) -> Vec<String> {
        if self.missing {
            vec!["zone z1 source leaf-2 did not answer: unavailable".into()]
        } else {
            Vec::new()
        }
    }
}

#[derive(Clone, Default)]
struct World {
    mem: Arc<Mutex<MemStorage>>,
    missing: Arc<AtomicBool>,
    written: Arc<Mutex<Vec<StoredPoint>>>,
}

impl Source for World {
    fn storage(&self, _tenant: &str) -> Box<dyn Storage> {
        Box::new(Partial { mem: self.mem.lock().clone(), missing: self.missing.load(Ordering::SeqCst) })
    }
}

impl Sink for World {
    fn write<'a>(&'a self, _tenant: &'a str, points: &'a [StoredPoint]) -> BoxFuture<'a, Result<u64, WriteError>> {
        self.written.lock().extend_from_slice(points);
        Box::pin(async { Ok(0) })
    }
}

fn up(t: i64, v: f64) -> (Labels, [(i64, f64); 1]) {
    (Labels::new(vec![("__name__".into(), "up".into()), ("job".into(), "a".into())]), [(t, v)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evaluation_over_partial_data_waits_then_fails_without_acting() {
    let rules = "groups:\n- name: g\n  interval: 1m\n  rules:\n  - alert: Down\n    expr: up == 0\n";
    let spec = danaus_rules::file::specs(rules).unwrap().remove(0);
    let mut view = ConfigView { version: 1, ..ConfigView::default() };
    view.objects
        .insert(ObjectKey { tenant: "t".into(), kind: Kind::RuleGroup, name: "g".into() }, Object::RuleGroup(spec));
    let (_tx, config) = watch::channel(Arc::new(view));

    let grid = Grid::new("t/g", MIN);
    let g0 = grid.at_or_before(1_700_000_000_000);
    let world = World::default();
    {
        let mut m = world.mem.lock();
        for i in -4..=0 {
            let (l, p) = up(g0 + i * 15_000, 0.0);
            m.add(l, p);
        }
    }
    let clock = Arc::new(TestClock(AtomicI64::new(g0)));
    let mut gc = GroupConfig::new("evaluator", 1);
    gc.heartbeat = Duration::from_millis(50);
    gc.election_timeout = Duration::from_millis(250);
    let group =
        Arc::new(RaftGroup::<Evaluations>::start(gc, Arc::new(MemKv::new()), &RaftServer::new()).await.unwrap());
    group.initialize(BTreeMap::from([(1, BasicNode::new("127.0.0.1:1"))])).await.unwrap();
    let recorder = Recorder::default();
    let cfg = EvaluatorConfig {
        poll: Duration::from_millis(20),
        incomplete_grace: Duration::from_secs(20),
        ..EvaluatorConfig::default()
    };
    let ev = Evaluator::new(
        group.clone(),
        Arc::new(world.clone()),
        Arc::new(world.clone()),
        Arc::new(recorder.clone()),
        clock.clone(),
        cfg,
    );
    let task = tokio::spawn(ev.run(config));
    let committed = || group.read(|s| s.groups.get("t/g").map(|r| (r.at, r.counters.failed, r.unwritten.len())));
    let wait = |at: i64| {
        let committed = &committed;
        async move {
            for _ in 0..500 {
                if committed().is_some_and(|(a, _, unwritten)| a == at && unwritten == 0) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("no evaluation at {at} committed: {:?}", committed());
        }
    };
    wait(g0).await;
    for _ in 0..100 {
        if !recorder.notices().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(recorder.notices().iter().map(|n| n.to).collect::<Vec<_>>(), vec![State::Firing]);

    // `up` is back — but one source does not answer.
    {
        let mut m = world.mem.lock();
        for i in 1..=8 {
            let (l, p) = up(g0 + i * 15_000, 1.0);
            m.add(l, p);
        }
    }
    world.missing.store(true, Ordering::SeqCst);
    let written_before = world.written.lock().len();
    clock.0.store(g0 + MIN, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(committed().map(|c| c.0), Some(g0), "within its grace, a partial evaluation is not committed");

    // Past its grace: committed as a failure that changes nothing.
    clock.0.store(g0 + MIN + 21_000, Ordering::SeqCst);
    wait(g0 + MIN).await;
    assert_eq!(committed().map(|c| c.1), Some(1), "counted as failed");
    let alerts = group.read(|s| s.groups["t/g"].state.rules[0].alerts.values().map(|a| a.state).collect::<Vec<_>>());
    assert_eq!(alerts, vec![State::Firing], "the alert was not resolved on partial data");
    assert_eq!(world.written.lock().len(), written_before, "nothing written for the failed evaluation");
    let err = group.read(|s| s.groups["t/g"].state.rules[0].last_error.clone()).unwrap();
    assert!(err.contains("incomplete data") && err.contains("leaf-2"), "{err}");

    // Every source back: the next evaluation resolves it.
    world.missing.store(false, Ordering::SeqCst);
    clock.0.store(g0 + 2 * MIN, Ordering::SeqCst);
    wait(g0 + 2 * MIN).await;
    for _ in 0..100 {
        if recorder.notices().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let to: Vec<State> = recorder.notices().iter().map(|n| n.to).collect();
    assert_eq!(to, vec![State::Firing, State::Inactive]);
    task.abort();
    group.shutdown().await;
}
