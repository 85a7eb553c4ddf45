//! In-process ingest into a leaf with the recovery log on a real file
//! system (group commit, fsync per batch) and bytes per sample held in
//! memory, on the node_exporter-like data set of `danaus-workload`.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use danaus_leaf::{Leaf, LeafConfig, LeafOptions};
use danaus_model::SeriesWrite;
use danaus_model::{
    FieldDef, FieldType, FieldValue, MetricKind, MetricSchema, Point, ScalarType, TargetSchema, Value, ValueType,
};
use danaus_storage::{FsLogDevice, MemKv, SystemClock};
use danaus_workload::NodeFleet;

/// The allocator the `danaus` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HOSTS: usize = 40;
const SERIES_PER_HOST: usize = 100;
/// Scrape rounds per write batch: each series carries this many points.
const ROUNDS_PER_BATCH: usize = 4;
/// Concurrent writers (each owns a slice of the hosts), like clients of a
/// server: each sends its next batch when the previous one is acknowledged.
const WRITERS: usize = 8;

async fn open(dir: &std::path::Path) -> Leaf {
    let leaf = Leaf::open(LeafConfig {
        kv: Arc::new(MemKv::new()),
        log: Arc::new(FsLogDevice::open(dir).expect("log dir")),
        clock: Arc::new(SystemClock),
        options: LeafOptions {
            checkpoint_interval: Duration::from_secs(3600),
            out_of_order_window: Duration::from_secs(3600 * 24 * 365),
            ..LeafOptions::default()
        },
    })
    .await
    .expect("leaf");
    leaf.apply_target_schema(
        "default",
        TargetSchema {
            name: "prometheus_target".into(),
            fields: vec![
                FieldDef::new("location", FieldType::String),
                FieldDef::new("job", FieldType::String),
                FieldDef::new("instance", FieldType::String),
            ],
            location_field: "location".into(),
        },
    )
    .await
    .expect("target schema");
    let fleet = NodeFleet::new(1, 1, 1, 0);
    let mut names: Vec<String> = fleet.series.iter().map(|s| s.metric.clone()).collect();
    names.extend(NodeFleet::new(2, HOSTS, SERIES_PER_HOST, 0).series.iter().map(|s| s.metric.clone()));
    names.sort();
    names.dedup();
    for n in names {
        leaf.apply_metric_schema(
            "default",
            MetricSchema {
                name: n,
                fields: vec![FieldDef::new("series", FieldType::String)],
                value_type: ValueType::Scalar(ScalarType::Double),
                kind: MetricKind::Gauge,
                unit: String::new(),
                description: String::new(),
                collection: None,
            },
        )
        .await
        .expect("metric schema");
    }
    leaf
}

/// One batch per writer: its hosts' series, `ROUNDS_PER_BATCH` points each.
fn batches(fleet: &mut NodeFleet) -> Vec<Vec<SeriesWrite>> {
    let mut points: Vec<Vec<Point>> = vec![Vec::with_capacity(ROUNDS_PER_BATCH); fleet.series.len()];
    for _ in 0..ROUNDS_PER_BATCH {
        fleet.scrape(|i, t, v| points[i].push(Point::gauge(t, Value::Double(v))));
    }
    let mut out: Vec<Vec<SeriesWrite>> = (0..WRITERS).map(|_| Vec::new()).collect();
    for (spec, pts) in fleet.series.iter().zip(points) {
        out[spec.host % WRITERS].push(SeriesWrite {
            target_schema: "prometheus_target".into(),
            target_fields: Vec::from([
                ("location".into(), FieldValue::String("zone-a".into())),
                ("job".into(), FieldValue::String("node".into())),
                ("instance".into(), FieldValue::String(format!("host-{}:9100", spec.host))),
            ])
            .into(),
            metric: spec.metric.as_str().into(),
            metric_fields: Arc::from([("series".into(), FieldValue::String(spec.label.clone()))]),
            points: pts,
        });
    }
    out
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    // Bytes per sample in memory: three and a half hours of data, so open
    // chunks are half full (as on average they are).
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let leaf = rt.block_on(open(dir.path()));
        let mut fleet = NodeFleet::new(7, HOSTS, SERIES_PER_HOST, 1_700_000_000_000_000_000);
        let rounds = 840 / ROUNDS_PER_BATCH;
        rt.block_on(async {
            for _ in 0..rounds {
                for b in batches(&mut fleet) {
                    let r = leaf.write("default", &b).await.expect("write");
                    assert!(r.errors.is_empty(), "{:?}", r.errors.first());
                }
            }
        });
        let m = leaf.memory_usage();
        eprintln!(
            "leaf memory: {} series, {} points: encoded data {} bytes = {:.3} bytes/sample; all chunk memory {} bytes = {:.3} bytes/sample",
            m.series,
            m.points,
            m.data_bytes,
            m.data_bytes as f64 / m.points as f64,
            m.chunk_bytes,
            m.chunk_bytes as f64 / m.points as f64
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let leaf = rt.block_on(open(dir.path()));
    let mut fleet = NodeFleet::new(9, HOSTS, SERIES_PER_HOST, 1_700_000_000_000_000_000);
    let per_iter = (HOSTS * SERIES_PER_HOST * ROUNDS_PER_BATCH) as u64;
    let mut g = c.benchmark_group("leaf");
    g.throughput(Throughput::Elements(per_iter));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(15));
    g.bench_function("ingest_durable_8_writers", |b| {
        b.iter_custom(|iters| {
            // Each writer gets its own queue of batches; no barrier between rounds.
            let mut queues: Vec<Vec<Vec<SeriesWrite>>> = (0..WRITERS).map(|_| Vec::new()).collect();
            for _ in 0..iters {
                for (w, batch) in batches(&mut fleet).into_iter().enumerate() {
                    queues[w].push(batch);
                }
            }
            let start = Instant::now();
            rt.block_on(async {
                let tasks: Vec<_> = queues
                    .into_iter()
                    .map(|q| {
                        let leaf = leaf.clone();
                        tokio::spawn(async move {
                            for b in q {
                                leaf.write("default", &b).await.expect("write");
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("task");
                }
            });
            start.elapsed()
        })
    });
    g.finish();
    eprintln!(
        "leaf log: {} fsyncs for {} records",
        leaf.log_stats().syncs.load(Ordering::Relaxed),
        leaf.log_stats().records.load(Ordering::Relaxed)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
