//! Query kernels end to end over a real leaf (memory store): fetch, align
//! and group_by over 10k and 100k series holding 1 h of data at 10 s
//! (360 points each), the shape of a dashboard panel over a fleet.
//!
//! `cargo bench -p danaus-query --bench query`

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use danaus_leaf::{Leaf, LeafConfig, LeafOptions};
use danaus_model::SeriesWrite;
use danaus_model::{
    FieldDef, FieldType, FieldValue, MetricKind, MetricSchema, Point, ScalarType, TargetSchema, Value, ValueType,
};
use danaus_query::{Engine, LeafSource, QueryLimits, QueryRange, RunOptions, ZoneSources};
use danaus_storage::{Clock, MemKv, MemLogDevice};

/// The allocator the `danaus` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_699_920_000 * SEC;
const POINTS: i64 = 360;
const CORES: usize = 10;
const TENANT: &str = "bench";

struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        T0 + 2 * 3600 * SEC
    }
}

/// A leaf with `series` series of `/cpu` (gauge, double) and as many of
/// `/bytes` (cumulative, int64): hosts of `CORES` cores in 10 zones.
async fn leaf(series: usize) -> Leaf {
    let leaf = Leaf::open(LeafConfig {
        kv: Arc::new(MemKv::new()),
        log: Arc::new(MemLogDevice::new()),
        clock: Arc::new(FixedClock),
        options: LeafOptions {
            checkpoint_interval: Duration::from_secs(3600 * 24),
            out_of_order_window: Duration::from_secs(3600 * 24),
            max_series_per_read: 1_000_000,
            ..LeafOptions::default()
        },
    })
    .await
    .expect("leaf");
    leaf.apply_target_schema(
        TENANT,
        TargetSchema {
            name: "Host".into(),
            fields: vec![FieldDef::new("zone", FieldType::String), FieldDef::new("host", FieldType::String)],
            location_field: "zone".into(),
        },
    )
    .await
    .expect("target");
    for (name, vt, kind) in
        [("/cpu", ScalarType::Double, MetricKind::Gauge), ("/bytes", ScalarType::Int64, MetricKind::Cumulative)]
    {
        leaf.apply_metric_schema(
            TENANT,
            MetricSchema {
                name: name.into(),
                fields: vec![FieldDef::new("core", FieldType::Int64)],
                value_type: ValueType::Scalar(vt),
                kind,
                unit: String::new(),
                description: String::new(),
                collection: None,
            },
        )
        .await
        .expect("metric");
    }
    let hosts = series / CORES;
    // Write 30 points per request per series, host by host.
    for chunk in 0..POINTS / 30 {
        let mut batch = Vec::new();
        for h in 0..hosts {
            for c in 0..CORES {
                for metric in ["/cpu", "/bytes"] {
                    let points = (chunk * 30..chunk * 30 + 30)
                        .map(|i| {
                            let t = T0 + i * 10 * SEC;
                            let x = (h * 7 + c * 3) as i64 + i;
                            if metric == "/cpu" {
                                Point { start_time: None, end_time: t, value: Value::Double((x % 100) as f64 / 4.0) }
                            } else {
                                Point { start_time: Some(T0 - 3600 * SEC), end_time: t, value: Value::Int64(x * 1000) }
                            }
                        })
                        .collect();
                    batch.push(SeriesWrite {
                        target_schema: "Host".into(),
                        target_fields: vec![
                            ("zone".into(), FieldValue::String(format!("zone-{}", h % 10))),
                            ("host".into(), FieldValue::String(format!("host-{h:06}"))),
                        ]
                        .into(),
                        metric: metric.into(),
                        metric_fields: vec![("core".into(), FieldValue::Int64(c as i64))].into(),
                        points,
                    });
                }
                if batch.len() >= 4000 {
                    let r = leaf.write(TENANT, &std::mem::take(&mut batch)).await.expect("write");
                    assert!(r.errors.is_empty(), "{:?}", r.errors.first());
                }
            }
        }
        if !batch.is_empty() {
            let r = leaf.write(TENANT, &batch).await.expect("write");
            assert!(r.errors.is_empty(), "{:?}", r.errors.first());
        }
    }
    leaf
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let range = QueryRange { start: T0 + 60 * SEC, end: T0 + (POINTS - 1) * 10 * SEC, step: 60 * SEC };
    let queries = [
        ("mean_by_zone", "fetch Host::/cpu | align mean(1m) | group_by [zone], mean"),
        ("rate_sum_by_zone", "fetch Host::/bytes | align rate(1m) | group_by [zone], sum"),
        ("p99_by_core", "fetch Host::/cpu | align max(1m) | group_by [core], percentile(99)"),
    ];
    let mut g = c.benchmark_group("query");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(8));
    for series in [10_000usize, 100_000] {
        let leaf = rt.block_on(leaf(series));
        let engine = Engine::new(
            vec![ZoneSources { name: "z".into(), leaves: vec![Arc::new(LeafSource::new("leaf", leaf))] }],
            QueryLimits::default(),
        );
        g.throughput(Throughput::Elements(series as u64 * POINTS as u64));
        for (name, q) in queries {
            // Check the answer once: 10 zones (or 10 cores), every minute.
            let (t, report) = rt.block_on(engine.collect(TENANT, q, range, RunOptions::default())).expect("query runs");
            assert_eq!(t.series.len(), 10, "{q}");
            assert_eq!(report.series_touched, series as u64);
            g.bench_with_input(BenchmarkId::new(name, series), &q, |b, q| {
                b.iter(|| rt.block_on(engine.collect(TENANT, q, range, RunOptions::default())).expect("query"))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
