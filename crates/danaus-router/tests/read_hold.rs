//! A write to a range whose read set just shrank (a ready replica was
//! demoted or moved away) is acknowledged only once no mixer can still
//! plan a complete answer by the older table, which would read that
//! replica and miss the write.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use danaus_assigner::{LeafEntry, Range, Replica, ReplicaState, TableWatcher, TenantSchemas, ZoneClient, ZoneTable};
use danaus_leaf::{Leaf, LeafConfig, LeafOptions};
use danaus_model::SeriesWrite;
use danaus_model::{
    FieldDef, FieldType, FieldValue, MetricKind, MetricSchema, Point, ScalarType, TargetSchema, Value, ValueType,
};
use danaus_node::zone_leaf::ZoneLeaf;
use danaus_router::{LeafRouter, RouterConfig};
use danaus_storage::{MemKv, MemLogDevice, SystemClock};

fn table(shrunk_at: u64) -> ZoneTable {
    let mut t = ZoneTable { version: 5, replication: 2, next_range_id: 1, ..ZoneTable::default() };
    for l in ["a", "b"] {
        t.leaves.insert(l.into(), LeafEntry { addr: format!("{l}:1"), accepting: true });
    }
    // `b` was demoted at version 4: it is written to best effort, not read.
    let replicas = vec![
        Replica { leaf: "a".into(), state: ReplicaState::Ready },
        Replica { leaf: "b".into(), state: ReplicaState::Lagging },
    ];
    t.ranges.insert(
        Vec::new(),
        Range { id: 1, start: Vec::new(), end: None, replicas, changed_at: 4, read_set_shrunk_at: shrunk_at },
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
    t.schemas.insert("t".into(), s);
    t
}

async fn router(table: ZoneTable, window: Duration) -> Arc<LeafRouter> {
    let watcher = TableWatcher::fixed(table);
    let cfg = RouterConfig { read_confirm_window: window, ..RouterConfig::default() };
    let r = LeafRouter::new(watcher.clone(), Arc::new(ZoneClient::new(Vec::new())), cfg);
    for l in ["a", "b"] {
        let leaf = Leaf::open(LeafConfig {
            kv: Arc::new(MemKv::new()),
            log: Arc::new(MemLogDevice::new()),
            clock: Arc::new(SystemClock),
            options: LeafOptions::default(),
        })
        .await
        .unwrap();
        r.add_local_leaf(format!("{l}:1"), ZoneLeaf::new(l, format!("{l}:1"), leaf, watcher.clone()));
    }
    r
}

fn write(t: i64) -> Vec<SeriesWrite> {
    vec![SeriesWrite {
        target_schema: "T".into(),
        target_fields: Arc::from(vec![("loc".to_owned(), FieldValue::String("x".into()))]),
        metric: "/m".into(),
        metric_fields: Arc::from(Vec::new()),
        points: vec![Point::gauge(t, Value::Double(1.0))],
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_readers_after_a_replica_leaves_the_read_set() {
    let window = Duration::from_millis(700);
    // The window counts from when the router first saw the table.
    let t0 = Instant::now();
    let r = router(table(4), window).await;
    let resp = r.write("t", write(1)).await.unwrap();
    assert!(resp.errors.is_empty(), "{resp:?}");
    assert!(t0.elapsed() >= window, "acknowledged after {:?}, inside the window", t0.elapsed());
    assert_eq!(r.stats.read_holds.load(Ordering::Relaxed), 1);
    // Past the window (counted from when the router first saw the shrink),
    // writes go through unheld.
    r.write("t", write(2)).await.unwrap();
    assert_eq!(r.stats.read_holds.load(Ordering::Relaxed), 1, "held again after the window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_whose_read_set_never_shrank_are_not_held() {
    let r = router(table(0), Duration::from_secs(30)).await;
    let resp = r.write("t", write(1)).await.unwrap();
    assert!(resp.errors.is_empty(), "{resp:?}");
    assert_eq!(r.stats.read_holds.load(Ordering::Relaxed), 0);
}
