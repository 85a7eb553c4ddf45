//! The zone mixer against leaves that are slow, down or cut by the
//! deadline: fake `LeafService`s on loopback answer the leaf phase with a
//! series naming the leaf that answered.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use danaus_assigner::{LeafEntry, Range, Replica, ReplicaState, TableCache, TableWatcher, TenantSchemas, ZoneTable};
use danaus_mixer::{MixerConfig, ZoneMixer};
use danaus_model::{
    FieldDef, FieldType, FieldValue, MetricKind, MetricSchema, Point, ScalarType, TargetSchema, Value, ValueType,
};
use danaus_proto::v1 as pb;
use danaus_query::{FetchPlan, QueryRange, RunOptions, Series, Table};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

#[derive(Clone)]
struct FakeLeaf {
    name: String,
    delay: Duration,
    down: bool,
    asked: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl pb::leaf_service_server::LeafService for FakeLeaf {
    async fn write(&self, _: Request<pb::LeafWriteRequest>) -> Result<Response<pb::WriteResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    type RunStageStream = ReceiverStream<Result<pb::LeafStageReply, Status>>;

    async fn run_stage(&self, req: Request<pb::LeafStageRequest>) -> Result<Response<Self::RunStageStream>, Status> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        if self.down {
            return Err(Status::unavailable("leaf is shutting down"));
        }
        tokio::time::sleep(self.delay).await;
        let fp: FetchPlan = rmp_serde::from_slice(&req.into_inner().plan).unwrap();
        let t = Table {
            columns: fp.fetch.columns.clone(),
            kind: MetricKind::Gauge,
            series: vec![Series {
                fields: vec![FieldValue::String(self.name.clone())],
                points: vec![Point::gauge(1_000_000_000, Value::Double(1.0))],
            }],
        };
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tx.send(Ok(pb::LeafStageReply {
            item: Some(pb::leaf_stage_reply::Item::Table(rmp_serde::to_vec(&t).unwrap())),
        }))
        .await
        .unwrap();
        tx.send(Ok(pb::LeafStageReply {
            item: Some(pb::leaf_stage_reply::Item::Done(pb::StageDone { series_touched: 1, points_touched: 1 })),
        }))
        .await
        .unwrap();
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type ExportStream = ReceiverStream<Result<pb::ExportBatch, Status>>;

    async fn export(&self, _: Request<pb::ExportRequest>) -> Result<Response<Self::ExportStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn copy_range(&self, _: Request<pb::CopyRangeRequest>) -> Result<Response<pb::CopyRangeReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    type ReadStream = ReceiverStream<Result<pb::ReadResponse, Status>>;

    async fn read(&self, _: Request<pb::LeafReadRequest>) -> Result<Response<Self::ReadStream>, Status> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        if self.down {
            return Err(Status::unavailable("leaf is shutting down"));
        }
        let series = pb::Series { target_schema: "T".into(), metric: self.name.clone(), ..pb::Series::default() };
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(Ok(pb::ReadResponse { series: vec![series] })).await.unwrap();
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

async fn serve(leaf: FakeLeaf) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(pb::leaf_service_server::LeafServiceServer::new(leaf))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
            .await
            .unwrap();
    });
    addr
}

/// One range held ready by every leaf given, with its behaviour.
async fn zone(leaves: &[(&str, Duration, bool)]) -> (ZoneMixer, BTreeMap<String, Arc<AtomicU64>>) {
    let (table, asked) = zone_table(leaves).await;
    let cfg = MixerConfig { zone: "z".into(), hedge_after: Duration::from_millis(100), ..MixerConfig::default() };
    (ZoneMixer::new(TableWatcher::fixed(table), cfg), asked)
}

/// The table of [`zone`] (version 1), and how often each leaf was asked.
async fn zone_table(leaves: &[(&str, Duration, bool)]) -> (ZoneTable, BTreeMap<String, Arc<AtomicU64>>) {
    let mut table =
        ZoneTable { version: 1, replication: leaves.len() as u32, next_range_id: 1, ..ZoneTable::default() };
    let mut asked = BTreeMap::new();
    let mut replicas = Vec::new();
    for (name, delay, down) in leaves {
        let counter = Arc::new(AtomicU64::new(0));
        asked.insert((*name).to_owned(), counter.clone());
        let addr = serve(FakeLeaf { name: (*name).into(), delay: *delay, down: *down, asked: counter }).await;
        table.leaves.insert((*name).into(), LeafEntry { addr, accepting: true });
        replicas.push(Replica { leaf: (*name).into(), state: ReplicaState::Ready });
    }
    table.ranges.insert(
        Vec::new(),
        Range { id: 1, start: Vec::new(), end: None, replicas, changed_at: 1, read_set_shrunk_at: 0 },
    );
    let mut s = TenantSchemas::default();
    s.targets.insert(
        "T".into(),
        TargetSchema {
            name: "T".into(),
            fields: vec![FieldDef::new("loc", FieldType::String)],
            location_field: "loc".into(),
        },
    );
    s.metrics.insert(
        "/m".into(),
        MetricSchema {
            name: "/m".into(),
            fields: vec![],
            value_type: ValueType::Scalar(ScalarType::Double),
            kind: MetricKind::Gauge,
            unit: String::new(),
            description: String::new(),
            collection: None,
        },
    );
    table.schemas.insert("default".into(), s);
    (table, asked)
}

const RANGE: QueryRange = QueryRange { start: 0, end: 10_000_000_000, step: 1_000_000_000 };

async fn answer(m: &ZoneMixer, deadline: Option<Duration>) -> (Vec<String>, danaus_query::QueryReport, Duration) {
    let t = Instant::now();
    let opts = RunOptions { deadline: deadline.map(|d| Instant::now() + d), ..RunOptions::default() };
    let (table, report) = m.engine().collect("default", "fetch T::/m", RANGE, opts).await.unwrap();
    let who = table
        .series
        .iter()
        .map(|s| match &s.fields[0] {
            FieldValue::String(n) => n.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    (who, report, t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_replica_is_hedged_and_the_fast_one_answers() {
    let (m, asked) = zone(&[("slow", Duration::from_secs(3), false), ("fast", Duration::ZERO, false)]).await;
    // Two queries: the mixer rotates the first choice, so one of them asks
    // the slow leaf first and must hedge.
    for _ in 0..2 {
        let (who, report, took) = answer(&m, None).await;
        assert_eq!(who, vec!["fast"], "exactly one replica's answer, the fast one's");
        assert!(report.completeness.is_complete());
        assert!(took < Duration::from_secs(2), "the hedge did not win: {took:?}");
    }
    assert!(asked["slow"].load(Ordering::Relaxed) >= 1);
    assert!(m.stats().hedges_won.load(Ordering::Relaxed) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_replica_is_replaced_at_once() {
    let (m, asked) = zone(&[("down", Duration::ZERO, true), ("up", Duration::ZERO, false)]).await;
    for _ in 0..2 {
        let (who, report, took) = answer(&m, None).await;
        assert_eq!(who, vec!["up"]);
        assert!(report.completeness.is_complete(), "{:?}", report.completeness);
        assert!(took < Duration::from_millis(90), "failover waited for the hedge delay: {took:?}");
    }
    assert!(asked["down"].load(Ordering::Relaxed) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_cut_by_the_deadline_are_reported_missing_and_the_query_still_answers() {
    let (m, _) = zone(&[("a", Duration::from_secs(5), false), ("b", Duration::from_secs(5), false)]).await;
    let (who, report, took) = answer(&m, Some(Duration::from_millis(400))).await;
    assert!(who.is_empty());
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(!report.completeness.is_complete());
    let missing: Vec<_> = report.completeness.sources.iter().filter_map(|s| s.missing.as_deref()).collect();
    assert_eq!(missing.len(), 1, "{:?}", report.completeness);
    assert!(missing[0].contains("deadline"), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_reads_fail_over_to_another_replica_and_name_unknown_schemas() {
    let (m, asked) = zone(&[("down", Duration::ZERO, true), ("up", Duration::ZERO, false)]).await;
    let req = pb::ReadRequest { target_schema: "T".into(), metric: "/m".into(), ..pb::ReadRequest::default() };
    for _ in 0..2 {
        let mut st = m.read("default", req.clone()).unwrap();
        let mut who = Vec::new();
        while let Some(r) = tokio_stream::StreamExt::next(&mut st).await {
            who.extend(r.unwrap().series.into_iter().map(|s| s.metric));
        }
        assert_eq!(who, vec!["up"], "one replica answers for the range");
    }
    assert!(asked["down"].load(Ordering::Relaxed) >= 1);
    let e = m.read("default", pb::ReadRequest { metric: "/nope".into(), ..req }).unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.message().contains("/nope"), "{}", e.message());
}

/// An assigner leader that only answers which table version is committed
/// (and whether it answers at all); it streams no tables.
#[derive(Clone)]
struct Leader {
    version: Arc<AtomicU64>,
    up: Arc<std::sync::atomic::AtomicBool>,
}

#[tonic::async_trait]
impl pb::assigner_service_server::AssignerService for Leader {
    type WatchStream = tokio_stream::Empty<Result<pb::ZoneTableUpdate, Status>>;

    async fn watch(&self, _: Request<pb::WatchTableRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unavailable("not in this test"))
    }

    async fn heartbeat(&self, _: Request<pb::LeafHeartbeat>) -> Result<Response<pb::HeartbeatReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn propose(&self, _: Request<pb::ZoneProposal>) -> Result<Response<pb::ZoneProposalReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn latest_version(
        &self,
        _: Request<pb::LatestVersionRequest>,
    ) -> Result<Response<pb::LatestVersionReply>, Status> {
        if !self.up.load(Ordering::Relaxed) {
            return Err(Status::unavailable("no leader"));
        }
        Ok(Response::new(pb::LatestVersionReply { version: self.version.load(Ordering::Relaxed) }))
    }
}

/// A mixer holding a table (from its cache) that a newer version, or an
/// assigner it cannot reach, may have made stale: a replica it reads may
/// since have been demoted and miss acknowledged writes. Its answers are
/// complete only while a recent read of the latest version confirms the
/// table; otherwise the zone table is reported missing, and raw reads
/// fail with UNAVAILABLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_by_a_table_not_confirmed_current_say_they_may_be_partial() {
    let (table, _) = zone_table(&[("a", Duration::ZERO, false)]).await;
    let cache = TableCache::new(Arc::new(danaus_storage::MemStateDir::new()), "zone-table.json");
    cache.save(&table).unwrap();
    let leader = Leader { version: Arc::new(AtomicU64::new(1)), up: Arc::new(true.into()) };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let svc = leader.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(pb::assigner_service_server::AssignerServiceServer::new(svc))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
            .await
            .unwrap();
    });
    let window = Duration::from_millis(400);
    let cfg = MixerConfig { zone: "z".into(), confirm_within: window, ..MixerConfig::default() };
    let m = ZoneMixer::new(TableWatcher::start_cached(vec![addr], Some(cache)), cfg);
    let req = pb::ReadRequest { target_schema: "T".into(), metric: "/m".into(), ..pb::ReadRequest::default() };
    let read = |m: &ZoneMixer| {
        let mut st = m.read("default", req.clone()).unwrap();
        async move {
            let mut out = Vec::new();
            while let Some(r) = tokio_stream::StreamExt::next(&mut st).await {
                out.push(r.map(|r| r.series.len()));
            }
            out
        }
    };

    // Confirmed current (the first query waits for the first confirmation).
    let (who, report, _) = answer(&m, None).await;
    assert_eq!(who, vec!["a"]);
    assert!(report.completeness.is_complete(), "{:?}", report.completeness);
    assert!(read(&m).await.iter().all(|r| r.is_ok()));

    // A newer version exists that this mixer cannot get.
    leader.version.store(2, Ordering::Relaxed);
    tokio::time::sleep(window * 2).await;
    let (who, report, _) = answer(&m, None).await;
    assert_eq!(who, vec!["a"], "the rest of the answer still comes");
    assert!(!report.completeness.is_complete(), "a stale table's answer called complete");
    let missing: Vec<_> = report.completeness.sources.iter().filter_map(|s| s.missing.as_deref()).collect();
    assert!(missing.iter().any(|m| m.contains("zone table")), "{missing:?}");
    let r = read(&m).await;
    let e = r.iter().find_map(|r| r.as_ref().err()).expect("a raw read by a stale table fails");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains("zone table"), "{}", e.message());

    // The assigner is unreachable: the same.
    leader.version.store(1, Ordering::Relaxed);
    leader.up.store(false, Ordering::Relaxed);
    tokio::time::sleep(window * 2).await;
    let (_, report, _) = answer(&m, None).await;
    assert!(!report.completeness.is_complete(), "an unconfirmed table's answer called complete");

    // Back: complete again.
    leader.up.store(true, Ordering::Relaxed);
    let (_, report, _) = answer(&m, None).await;
    assert!(report.completeness.is_complete(), "{:?}", report.completeness);
}
