//! Three evaluator members over real gRPC on loopback, a clock the test
//! moves, and the leader killed while an alert is pending and again while
//! it fires: the transitions handed on and the derived points written are
//! exactly those of one uninterrupted run, computed alongside by
//! evaluating the group in order over the same data.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use danaus_config::{ConfigView, Kind, Object, ObjectKey};
use danaus_evaluator::{
    Evaluations, Evaluator, EvaluatorConfig, Notice, Recorder, Sink, Source, StoredPoint, WriteError,
};
use danaus_promql::{Labels, MemStorage, Options, Storage};
use danaus_raft::{BasicNode, GroupConfig, NodeId, RaftGroup, RaftServer};
use danaus_rules::alert::State;
use danaus_rules::file::GroupSpec;
use danaus_rules::group::{evaluate, Context, Grid, GroupState};
use danaus_storage::{Clock, KvStore, MemKv};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

const RULES: &str = "groups:
- name: g
  interval: 1m
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
  - alert: Down
    expr: up == 0
    for: 3m
    keep_firing_for: 2m
    labels:
      severity: page
    annotations:
      summary: '{{ $labels.job }} is down ({{ $value }})'
";

const MIN: i64 = 60_000;

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst) * 1_000_000
    }
}

/// The data: `up{job="a"}` every 15 s, 0 in `[g0 + 150 s, g0 + 540 s)`.
fn input(g0: i64) -> MemStorage {
    let mut m = MemStorage::new();
    let labels = Labels::new(vec![("__name__".into(), "up".into()), ("job".into(), "a".into())]);
    let points = (-40..80).map(|i| {
        let t = g0 + i * 15_000;
        (t, if (g0 + 150_000..g0 + 540_000).contains(&t) { 0.0 } else { 1.0 })
    });
    m.add(labels, points);
    m
}

/// Per point written: its value's bits and how often it was written.
type Writes = BTreeMap<(Labels, i64), (u64, usize)>;

/// A live member: its group, its server's stop, its evaluator task.
type Live = (Arc<RaftGroup<Evaluations>>, oneshot::Sender<()>, tokio::task::JoinHandle<()>);

/// Reads and writes one shared memory store; counts every write of a point.
#[derive(Clone, Default)]
struct Store {
    mem: Arc<Mutex<MemStorage>>,
    writes: Arc<Mutex<Writes>>,
}

impl Source for Store {
    fn storage(&self, _tenant: &str) -> Box<dyn Storage> {
        Box::new(self.mem.lock().clone())
    }
}

impl Sink for Store {
    fn write<'a>(&'a self, tenant: &'a str, points: &'a [StoredPoint]) -> BoxFuture<'a, Result<u64, WriteError>> {
        assert_eq!(tenant, "t");
        Box::pin(async move {
            let mut w = self.writes.lock();
            let mut mem = self.mem.lock();
            for p in points {
                let e = w.entry((p.labels.clone(), p.t)).or_insert((p.v.to_bits(), 0));
                assert_eq!(e.0, p.v.to_bits(), "a conflicting rewrite of {:?} at {}", p.labels, p.t);
                e.1 += 1;
                mem.add(p.labels.clone(), [(p.t, p.v)]);
            }
            Ok(0)
        })
    }
}

struct Member {
    id: NodeId,
    addr: String,
    kv: Arc<dyn KvStore>,
    running: Option<Live>,
    listener: Option<std::net::TcpListener>,
}

struct World {
    members: Vec<Member>,
    clock: Arc<TestClock>,
    store: Store,
    recorder: Recorder,
    config: watch::Receiver<Arc<ConfigView>>,
    _config: watch::Sender<Arc<ConfigView>>,
}

impl World {
    async fn start(&mut self, i: usize) {
        let m = &mut self.members[i];
        let mut gc = GroupConfig::new("evaluator", m.id);
        gc.heartbeat = Duration::from_millis(50);
        gc.election_timeout = Duration::from_millis(250);
        gc.snapshot_every = 7;
        gc.propose_timeout = Duration::from_secs(3);
        let server = RaftServer::new();
        let group = Arc::new(RaftGroup::<Evaluations>::start(gc, m.kv.clone(), &server).await.unwrap());
        let listener = match m.listener.take() {
            Some(l) => TcpListener::from_std(l).unwrap(),
            None => TcpListener::bind(&m.addr).await.unwrap(),
        };
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(server.service())
                .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        let cfg = EvaluatorConfig { poll: Duration::from_millis(20), ..EvaluatorConfig::default() };
        let ev = Evaluator::new(
            group.clone(),
            Arc::new(self.store.clone()),
            Arc::new(self.store.clone()),
            Arc::new(self.recorder.clone()),
            self.clock.clone(),
            cfg,
        );
        let task = tokio::spawn(ev.run(self.config.clone()));
        m.running = Some((group, tx, task));
    }

    async fn kill(&mut self, i: usize) {
        if let Some((g, stop, task)) = self.members[i].running.take() {
            task.abort();
            g.shutdown().await;
            let _ = stop.send(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fn leader(&self) -> Option<usize> {
        self.members.iter().position(|m| m.running.as_ref().is_some_and(|(g, _, _)| g.is_leader()))
    }

    /// Waits until some member applied the evaluation at `at` with its
    /// points written and its outbox handed on.
    async fn settle(&self, at: i64) {
        for _ in 0..1000 {
            let done = self.members.iter().filter_map(|m| m.running.as_ref()).any(|(g, _, _)| {
                g.read(|s| {
                    s.groups.get("t/g").is_some_and(|r| r.at == at && r.unwritten.is_empty()) && s.outbox.is_empty()
                })
            });
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen: Vec<_> = self
            .members
            .iter()
            .filter_map(|m| m.running.as_ref())
            .map(|(g, _, _)| g.read(|s| s.groups.get("t/g").map(|r| (r.at, r.unwritten.len(), s.outbox.len()))))
            .collect();
        panic!("the evaluation at {at} did not settle: {seen:?}");
    }

    fn set_clock(&self, t: i64) {
        self.clock.0.store(t, Ordering::SeqCst);
    }
}

fn spec() -> GroupSpec {
    danaus_rules::file::specs(RULES).unwrap().remove(0)
}

fn view() -> ConfigView {
    let mut v = ConfigView { version: 1, ..ConfigView::default() };
    v.objects
        .insert(ObjectKey { tenant: "t".into(), kind: Kind::RuleGroup, name: "g".into() }, Object::RuleGroup(spec()));
    v
}

/// One uninterrupted run: (at, labels, from, to) of every transition, and
/// every point.
async fn reference(g0: i64, last: i64) -> (Vec<(i64, Labels, State, State)>, BTreeSet<(Labels, i64, u64)>) {
    let rules = spec().check().unwrap();
    let mut mem = input(g0);
    let mut state = GroupState::default();
    let (mut transitions, mut points) = (Vec::new(), BTreeSet::new());
    let mut at = g0;
    while at <= last {
        let snapshot = mem.clone();
        let ctx = Context {
            storage: &snapshot,
            options: Options::default(),
            external_labels: BTreeMap::new(),
            external_url: String::new(),
        };
        let out = evaluate(&rules, &mut state, at, &ctx).await;
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        for (_, t) in out.transitions {
            transitions.push((at, t.labels, t.from, t.to));
        }
        for (l, t, v) in out.samples {
            mem.add(l.clone(), [(t, v)]);
            points.insert((l, t, v.to_bits()));
        }
        at += MIN;
    }
    (transitions, points)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_while_pending_and_while_firing_loses_and_repeats_nothing() {
    let grid = Grid::new("t/g", MIN);
    let g0 = grid.at_or_before(1_700_000_000_000);
    let store = Store::default();
    *store.mem.lock() = input(g0);
    let (config_tx, config) = watch::channel(Arc::new(view()));
    let mut members = Vec::new();
    for id in 1..=3 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap().to_string();
        members.push(Member { id, addr, kv: Arc::new(MemKv::new()), running: None, listener: Some(l) });
    }
    let mut w = World {
        members,
        clock: Arc::new(TestClock(AtomicI64::new(g0))),
        store,
        recorder: Recorder::default(),
        config,
        _config: config_tx,
    };
    let all: BTreeMap<NodeId, BasicNode> = w.members.iter().map(|m| (m.id, BasicNode::new(&m.addr))).collect();
    for i in 0..3 {
        w.start(i).await;
    }
    for m in &w.members {
        m.running.as_ref().unwrap().0.initialize(all.clone()).await.unwrap();
    }

    let mut k = 0;
    let mut step_to = |w: &World, to: i64| {
        k = to;
        w.set_clock(g0 + to * MIN);
    };
    for to in 0..=3 {
        step_to(&w, to);
        w.settle(g0 + to * MIN).await;
    }
    // Pending since k = 3: kill the leader, and let three grid times pass
    // before the next one is elected.
    let pending = w.recorder.notices();
    assert_eq!(pending.last().map(|n| n.to), Some(State::Pending), "{pending:?}");
    let first = w.leader().unwrap();
    w.kill(first).await;
    step_to(&w, 6);
    w.settle(g0 + 6 * MIN).await;
    assert_eq!(w.recorder.notices().last().map(|n| n.to), Some(State::Firing), "`for` ran on across the failover");
    w.start(first).await;
    step_to(&w, 7);
    w.settle(g0 + 7 * MIN).await;
    // Firing: kill the leader again; the grid times of keep_firing_for
    // pass meanwhile.
    let second = w.leader().unwrap();
    w.kill(second).await;
    step_to(&w, 10);
    w.settle(g0 + 10 * MIN).await;
    for to in 11..=14 {
        step_to(&w, to);
        w.settle(g0 + to * MIN).await;
    }
    assert_eq!(k, 14);

    let (want_transitions, want_points) = reference(g0, g0 + 14 * MIN).await;
    let notices: Vec<Notice> = w.recorder.notices();
    let seqs: Vec<u64> = notices.iter().map(|n| n.seq).collect();
    assert_eq!(seqs, (1..=notices.len() as u64).collect::<Vec<_>>(), "each notice handed on once, in order");
    let got: Vec<_> = notices.iter().map(|n| (n.at, n.alert.labels.clone(), n.from, n.to)).collect();
    assert_eq!(got, want_transitions);
    assert_eq!(
        want_transitions.iter().map(|t| ((t.0 - g0) / MIN, t.3)).collect::<Vec<_>>(),
        vec![(3, State::Pending), (6, State::Firing), (11, State::Inactive)],
        "the scenario's own check: pending at 3, firing at 6, kept firing until 11"
    );
    let fired = notices.iter().find(|n| n.to == State::Firing).unwrap();
    assert_eq!(fired.alert.active_at, g0 + 3 * MIN);
    assert_eq!(fired.alert.annotations["summary"], "a is down (0)");
    let written: BTreeSet<(Labels, i64, u64)> =
        w.store.writes.lock().iter().map(|((l, t), (v, _))| (l.clone(), *t, *v)).collect();
    assert_eq!(written, want_points, "every derived point of every grid time, and no other");
    let sums: Vec<i64> =
        written.iter().filter(|(l, _, _)| l.get("__name__") == "job:up:sum").map(|(_, t, _)| (t - g0) / MIN).collect();
    assert_eq!(sums, (0..=14).collect::<Vec<_>>(), "the recorded series has no gap");
}
