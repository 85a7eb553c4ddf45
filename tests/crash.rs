//! Crash safety of a real `danaus standalone`: writers hammer it while it is
//! killed with SIGKILL, 20 times; after each restart every acknowledged point
//! is read back with its value, and nothing appears that was never written.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Server;
use danaus_client::Client;
use danaus_proto::v1 as pb;

const WRITERS: i64 = 4;
const SERIES: i64 = 8;
const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_800_000_000 * SEC;

fn value_of(writer: i64, series: i64, t: i64) -> f64 {
    // Deterministic, distinct per point, exactly representable.
    ((writer * 7_919 + series * 104_729 + t / SEC) % (1 << 40)) as f64
}

fn fv_s(s: &str) -> pb::FieldValue {
    pb::FieldValue { value: Some(pb::field_value::Value::StringValue(s.into())) }
}
fn fv_i(i: i64) -> pb::FieldValue {
    pb::FieldValue { value: Some(pb::field_value::Value::Int64Value(i)) }
}
fn int_of(f: &pb::FieldValue) -> i64 {
    match f.value {
        Some(pb::field_value::Value::Int64Value(i)) => i,
        _ => panic!("not an int field: {f:?}"),
    }
}

async fn apply_schemas(c: &Client) {
    let target = pb::TargetSchema {
        name: "CrashTarget".into(),
        fields: vec![
            pb::FieldDef { name: "zone".into(), r#type: pb::FieldType::String as i32, added: false },
            pb::FieldDef { name: "writer".into(), r#type: pb::FieldType::Int64 as i32, added: false },
        ],
        location_field: "zone".into(),
    };
    let metric = pb::MetricSchema {
        name: "/crash/value".into(),
        fields: vec![pb::FieldDef { name: "series".into(), r#type: pb::FieldType::Int64 as i32, added: false }],
        value_type: Some(pb::ValueType { elements: vec![pb::ScalarType::Double as i32], tuple: false }),
        kind: pb::MetricKind::Gauge as i32,
        unit: String::new(),
        description: String::new(),
        collection: None,
    };
    c.schema().apply(pb::ApplySchemasRequest { targets: vec![target], metrics: vec![metric] }).await.unwrap();
}

type Key = (i64, i64);

#[derive(Default)]
struct Ledger {
    acked: HashMap<Key, Vec<i64>>,
    attempted: HashSet<(i64, i64, i64)>,
}

/// Writes batches until the server dies; records what was attempted and
/// what was acknowledged.
async fn writer(c: Client, w: i64, mut t: i64, ledger: Arc<Mutex<Ledger>>) -> i64 {
    loop {
        let times: Vec<i64> = (0..5).map(|k| t + k * SEC).collect();
        let series: Vec<pb::Series> = (0..SERIES)
            .map(|s| pb::Series {
                target_schema: "CrashTarget".into(),
                target_fields: HashMap::from([("zone".into(), fv_s("z1")), ("writer".into(), fv_i(w))]),
                metric: "/crash/value".into(),
                metric_fields: HashMap::from([("series".into(), fv_i(s))]),
                points: times
                    .iter()
                    .map(|&tt| pb::Point {
                        start_time: None,
                        end_time: tt,
                        value: Some(pb::Value { value: Some(pb::value::Value::DoubleValue(value_of(w, s, tt))) }),
                    })
                    .collect(),
            })
            .collect();
        {
            let mut l = ledger.lock().unwrap();
            for s in 0..SERIES {
                for &tt in &times {
                    l.attempted.insert((w, s, tt));
                }
            }
        }
        match c.ingest().write(pb::WriteRequest { series }).await {
            Ok(r) => {
                let r = r.into_inner();
                assert!(r.errors.is_empty(), "writer {w}: {:?}", r.errors);
                let mut l = ledger.lock().unwrap();
                for s in 0..SERIES {
                    l.acked.entry((w, s)).or_default().extend(&times);
                }
            }
            Err(_) => return t,
        }
        t += 5 * SEC;
    }
}

async fn read_all(c: &Client) -> HashMap<Key, Vec<(i64, f64)>> {
    let mut stream = c
        .read()
        .read(pb::ReadRequest {
            target_schema: "CrashTarget".into(),
            metric: "/crash/value".into(),
            matchers: vec![],
            start_time: i64::MIN,
            end_time: i64::MAX,
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = HashMap::new();
    while let Some(msg) = stream.message().await.unwrap() {
        for s in msg.series {
            let key = (int_of(&s.target_fields["writer"]), int_of(&s.metric_fields["series"]));
            let pts = s
                .points
                .iter()
                .map(|p| match p.value.as_ref().and_then(|v| v.value.clone()) {
                    Some(pb::value::Value::DoubleValue(d)) => (p.end_time, d),
                    other => panic!("unexpected value {other:?}"),
                })
                .collect();
            assert!(out.insert(key, pts).is_none(), "series {key:?} returned twice");
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_points_survive_kill_9_during_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut next_t: Vec<i64> = (0..WRITERS).map(|w| T0 + w * 1_000_000 * SEC).collect();
    let mut rng_state = 0x5eed_u64;
    for cycle in 0..20 {
        // Checkpoint every second so kills also land mid-checkpoint.
        let server = Server::start(dir.path(), &["--checkpoint-interval", "1s"]);
        let client = Client::connect(&server.grpc, None).await.unwrap();
        if cycle == 0 {
            apply_schemas(&client).await;
        }
        // Everything acknowledged so far is readable, with its value, and
        // nothing that was never written appears.
        let got = read_all(&client).await;
        {
            let l = ledger.lock().unwrap();
            for (key, times) in &l.acked {
                let pts: HashMap<i64, f64> = got.get(key).map(|v| v.iter().copied().collect()).unwrap_or_default();
                for t in times {
                    let v = pts.get(t).unwrap_or_else(|| panic!("cycle {cycle}: acked point {key:?}@{t} is missing"));
                    assert_eq!(*v, value_of(key.0, key.1, *t), "cycle {cycle}: wrong value for {key:?}@{t}");
                }
            }
            for ((w, s), pts) in &got {
                for (t, v) in pts {
                    assert!(l.attempted.contains(&(*w, *s, *t)), "cycle {cycle}: point {w}/{s}@{t} was never written");
                    assert_eq!(*v, value_of(*w, *s, *t));
                }
            }
        }
        let tasks: Vec<_> =
            (0..WRITERS).map(|w| tokio::spawn(writer(client.clone(), w, next_t[w as usize], ledger.clone()))).collect();
        rng_state = rng_state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let ms = 300 + (rng_state >> 33) % 900;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        tokio::task::spawn_blocking(move || server.kill9()).await.unwrap();
        for (w, t) in tasks.into_iter().enumerate() {
            // Later batches start after anything this writer ever attempted.
            next_t[w] = t.await.unwrap() + 5 * SEC;
        }
    }
    let acked: usize = ledger.lock().unwrap().acked.values().map(Vec::len).sum();
    assert!(acked > 1000, "only {acked} points were acknowledged: the test did not exercise much");
    // Final check after a clean restart.
    let server = Server::start(dir.path(), &[]);
    let client = Client::connect(&server.grpc, None).await.unwrap();
    let got = read_all(&client).await;
    let found: usize = {
        let l = ledger.lock().unwrap();
        l.acked.iter().map(|(k, ts)| ts.iter().filter(|t| got[k].iter().any(|(gt, _)| gt == *t)).count()).sum()
    };
    assert_eq!(found, acked);
    tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
}
