//! One query across zones, on loopback: a config service member, two
//! zones (each a standalone zone joined to it) and a root mixer that finds
//! the zones in the configuration. The root's answer is the two zones'
//! answers merged (aggregates computed from both zones' partials); a
//! location filter asks only the owning zone; with one zone stopped the
//! other's data still arrives, marked incomplete and naming the missing
//! zone.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use danaus_config::{Object, ZoneSpec};
use danaus_mixer::RootConfig;
use danaus_model::{FieldDef, FieldType, MetricKind, MetricSchema, ScalarType, TargetSchema, ValueType};
use danaus_proto::v1 as pb;
use danaus_roles::config_server::{self, ConfigServerSpec};
use danaus_roles::leaf::LeafStores;
use danaus_roles::root_mixer::{self, RootMixerSpec};
use danaus_roles::standalone::{self, Standalone, StandaloneSpec, StandaloneStores};
use danaus_storage::{MemKv, MemLogDevice, MemStateDir, SystemClock};
use tonic::transport::Channel;

const TARGET: &str = "Task";
const METRIC: &str = "/cpu";
const T0: i64 = 1_700_000_000_000_000_000;
const SEC: i64 = 1_000_000_000;

fn free() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

fn s(v: &str) -> pb::FieldValue {
    pb::FieldValue { value: Some(pb::field_value::Value::StringValue(v.into())) }
}

async fn zone(name: &str, config: SocketAddr) -> Standalone {
    let mut spec = StandaloneSpec::new(name, free(), 1, 1);
    spec.config_servers = vec![config.to_string()];
    let leaf = LeafStores {
        kv: Arc::new(MemKv::new()),
        log: Arc::new(MemLogDevice::new()),
        clock: Arc::new(SystemClock),
        state: Arc::new(MemStateDir::new()),
    };
    let stores = StandaloneStores {
        assigner: Arc::new(MemKv::new()),
        clock: Arc::new(SystemClock),
        leaves: vec![leaf],
        state: Arc::new(MemStateDir::new()),
        rules: None,
    };
    standalone::start(spec, stores, None).await.unwrap()
}

/// Applies `objects` to the config service (as `danausctl config apply`).
async fn apply(config: SocketAddr, objects: Vec<Object>) {
    let mut c = pb::config_service_client::ConfigServiceClient::new(channel(config).await);
    let req = pb::ApplyConfigRequest {
        objects_json: serde_json::to_vec(&objects).unwrap(),
        author: "test".into(),
        message: "zones".into(),
        ..Default::default()
    };
    c.apply(req).await.unwrap();
}

/// Writes `hosts` (location `loc`) with values 1, 2, 3 at T0 + 0..3 s,
/// retrying while the zone's table has not synced the schemas yet.
async fn write(front: SocketAddr, loc: &str, hosts: &[&str]) {
    let series = hosts
        .iter()
        .map(|h| pb::Series {
            target_schema: TARGET.into(),
            target_fields: HashMap::from([("loc".into(), s(loc)), ("host".into(), s(h))]),
            metric: METRIC.into(),
            metric_fields: HashMap::new(),
            points: (0..3)
                .map(|k| pb::Point {
                    start_time: None,
                    end_time: T0 + k * SEC,
                    value: Some(pb::Value { value: Some(pb::value::Value::DoubleValue((k + 1) as f64)) }),
                })
                .collect(),
        })
        .collect::<Vec<_>>();
    let mut c = pb::ingest_service_client::IngestServiceClient::new(channel(front).await);
    let waited = tokio::time::Instant::now();
    loop {
        let r = c.write(pb::WriteRequest { series: series.clone() }).await;
        match r {
            Ok(r) if r.get_ref().errors.is_empty() => return,
            other => assert!(waited.elapsed() < Duration::from_secs(30), "writes to {front} refused: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Series (fields joined by `,`, summed values) and the missing sources.
async fn query(root: SocketAddr, q: &str) -> (BTreeMap<String, f64>, Vec<(String, String)>) {
    let mut c = pb::query_service_client::QueryServiceClient::new(channel(root).await);
    let req =
        pb::QueryRequest { query: q.into(), start_time: T0 - 60 * SEC, end_time: T0 + 60 * SEC, ..Default::default() };
    let mut stream = c.query(req).await.unwrap().into_inner();
    let (mut series, mut missing) = (BTreeMap::new(), Vec::new());
    while let Some(m) = stream.message().await.unwrap() {
        match m.item.unwrap() {
            pb::query_response::Item::Batch(b) => {
                for s in b.series {
                    let key = s.fields.iter().map(|f| format!("{:?}", f.value)).collect::<Vec<_>>().join(",");
                    let sum = s
                        .points
                        .iter()
                        .map(|p| match p.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(pb::value::Value::DoubleValue(d)) => *d,
                            Some(pb::value::Value::Int64Value(i)) => *i as f64,
                            v => panic!("unexpected value {v:?}"),
                        })
                        .sum();
                    series.insert(key, sum);
                }
            }
            pb::query_response::Item::Completeness(c) => {
                assert_eq!(c.complete, c.sources.iter().all(|s| s.answered));
                missing = c.sources.into_iter().filter(|s| !s.answered).map(|s| (s.zone, s.missing_reason)).collect();
            }
        }
    }
    (series, missing)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_mixer_merges_the_zones_and_names_a_missing_one() {
    let config_addr = free();
    let spec = ConfigServerSpec {
        id: 1,
        peers: BTreeMap::from([(1, config_addr.to_string())]),
        grpc_addr: config_addr,
        heartbeat: Duration::from_millis(50),
    };
    let (config, _) = config_server::start(spec, Arc::new(MemKv::new()), Arc::new(SystemClock)).await.unwrap();
    let (z1, z2) = (zone("z1", config_addr).await, zone("z2", config_addr).await);
    let fronts = [z1.front.grpc_addr, z2.front.grpc_addr];

    // Schemas and zones, configured once for both.
    let target = TargetSchema {
        name: TARGET.into(),
        fields: vec![FieldDef::new("loc", FieldType::String), FieldDef::new("host", FieldType::String)],
        location_field: "loc".into(),
    };
    let metric = MetricSchema {
        name: METRIC.into(),
        fields: vec![],
        value_type: ValueType::Scalar(ScalarType::Double),
        kind: MetricKind::Gauge,
        unit: String::new(),
        description: String::new(),
        collection: None,
    };
    let schemas = vec![Object::TargetSchema(target), Object::MetricSchema(metric)];
    let zones = ["z1", "z2"].iter().zip(fronts).map(|(name, front)| {
        Object::Zone(ZoneSpec {
            name: name.to_string(),
            locations: vec![format!("{name}-*")],
            routers: vec![front.to_string()],
            mixers: vec![front.to_string()],
            index: vec![],
        })
    });
    apply(config_addr, schemas.into_iter().chain(zones).collect()).await;
    write(fronts[0], "z1-a", &["h1", "h2"]).await;
    write(fronts[1], "z2-a", &["h3"]).await;

    let state = MemStateDir::new();
    let spec = RootMixerSpec {
        grpc_addr: free(),
        config_servers: vec![config_addr.to_string()],
        root: RootConfig { zone_timeout: Duration::from_secs(5), ..RootConfig::default() },
        max_concurrent_queries: 8,
    };
    let (root, parts) = root_mixer::start(spec.clone(), Arc::new(state.clone())).await.unwrap();
    let waited = tokio::time::Instant::now();
    while (root.health)().is_some() {
        assert!(waited.elapsed() < Duration::from_secs(10), "{:?}", (root.health)());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Raw series of both zones; an aggregate merged from both zones' partials.
    let (raw, missing) = query(root.grpc_addr, &format!("fetch {TARGET}::{METRIC}")).await;
    assert!(missing.is_empty(), "{missing:?}");
    assert_eq!(raw.len(), 3, "{raw:?}");
    assert!(raw.values().all(|v| *v == 6.0), "{raw:?}");
    let (total, missing) =
        query(root.grpc_addr, &format!("fetch {TARGET}::{METRIC} | align mean(1m) | group_by [], sum")).await;
    assert!(missing.is_empty(), "{missing:?}");
    assert_eq!(total.values().copied().collect::<Vec<_>>(), vec![6.0], "three hosts of mean 2: {total:?}");
    let (counts, _) =
        query(root.grpc_addr, &format!("fetch {TARGET}::{METRIC} | align mean(1m) | group_by [loc], count")).await;
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![2.0, 1.0], "{counts:?}");

    // A location filter asks the owning zone only.
    let pruned = parts.root.stats().zones_pruned.load(Ordering::Relaxed);
    let (one, missing) = query(root.grpc_addr, &format!("fetch {TARGET}::{METRIC} | filter loc == \"z2-a\"")).await;
    assert!(missing.is_empty(), "{missing:?}");
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(parts.root.stats().zones_pruned.load(Ordering::Relaxed), pruned + 1);

    // Zone z2 stops: z1's series arrive, the answer names z2 as missing.
    z2.shutdown().await.unwrap();
    let (rest, missing) = query(root.grpc_addr, &format!("fetch {TARGET}::{METRIC}")).await;
    assert_eq!(rest.len(), 2, "{rest:?}");
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0].0, "z2");
    assert!(missing[0].1.contains("zone z2's mixer"), "{missing:?}");

    // Restarted without the config service, the root still knows the zones.
    root.shutdown_within(Duration::ZERO).await.unwrap();
    config.shutdown_within(Duration::ZERO).await.unwrap();
    let (root, _) = root_mixer::start(spec, Arc::new(state)).await.unwrap();
    assert!((root.health)().is_none(), "{:?}", (root.health)());
    let (rest, missing) = query(root.grpc_addr, &format!("fetch {TARGET}::{METRIC}")).await;
    assert_eq!((rest.len(), missing.len()), (2, 1), "{rest:?} {missing:?}");
    root.shutdown_within(Duration::ZERO).await.unwrap();
    z1.shutdown().await.unwrap();
}
