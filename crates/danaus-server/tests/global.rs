//! Two zones of real processes with the global layer on loopback
//! (`danaus dev-cluster --zones 2`: three config service members, per
//! zone three assigners, a leaf, a router, a mixer, an index server and a
//! config mirror, and a root mixer). Schemas are applied once and reach
//! both zones through the configuration; a write through either zone's
//! router reaches the zone owning its location; the root mixer answers
//! over both zones; with every config member killed the zones keep
//! ingesting and answering, and roles restarted meanwhile come up from
//! their mirror; with a zone's mixer gone the root's answer is marked
//! partial and names the zone.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use danaus_client::Client;
use danaus_proto::v1 as pb;
use danaus_server::dev_cluster::{DevCluster, DevClusterConfig};

const SEC: i64 = 1_000_000_000;

fn s(v: &str) -> pb::FieldValue {
    pb::FieldValue { value: Some(pb::field_value::Value::StringValue(v.into())) }
}

fn dump_logs(dir: &std::path::Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "log") {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            eprintln!("==== {}\n{}", e.path().display(), tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
    }
}

fn series(loc: &str, task: &str, t: i64) -> pb::Series {
    pb::Series {
        target_schema: "Task".into(),
        target_fields: HashMap::from([("cluster".into(), s(loc)), ("task".into(), s(task))]),
        metric: "/load".into(),
        metric_fields: HashMap::new(),
        points: vec![pb::Point {
            start_time: None,
            end_time: t,
            value: Some(pb::Value { value: Some(pb::value::Value::DoubleValue(1.0)) }),
        }],
    }
}

/// Retries `f` for up to 60 s (a zone's roles catch up with the
/// configuration, a restarted process starts listening).
async fn retry<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn apply_schemas(router: &str) -> Result<(), String> {
    let c = Client::connect(&format!("http://{router}"), None).await.map_err(|e| e.to_string())?;
    let target = pb::TargetSchema {
        name: "Task".into(),
        fields: vec![
            pb::FieldDef { name: "cluster".into(), r#type: pb::FieldType::String as i32, added: false },
            pb::FieldDef { name: "task".into(), r#type: pb::FieldType::String as i32, added: false },
        ],
        location_field: "cluster".into(),
    };
    let metric = pb::MetricSchema {
        name: "/load".into(),
        fields: vec![],
        value_type: Some(pb::ValueType { elements: vec![pb::ScalarType::Double as i32], tuple: false }),
        kind: pb::MetricKind::Gauge as i32,
        unit: String::new(),
        description: String::new(),
        collection: None,
    };
    let req = pb::ApplySchemasRequest { targets: vec![target], metrics: vec![metric] };
    c.schema().apply(req).await.map(|_| ()).map_err(|e| e.to_string())
}

async fn write(router: &str, series: Vec<pb::Series>) -> Result<(), String> {
    let c = Client::connect(&format!("http://{router}"), None).await.map_err(|e| e.to_string())?;
    let r = c.ingest().write(pb::WriteRequest { series }).await.map_err(|e| e.to_string())?.into_inner();
    if r.errors.is_empty() {
        Ok(())
    } else {
        Err(format!("refused: {:?}", r.errors))
    }
}

/// Tasks answered (with their point counts) and the completeness report.
async fn query(addr: &str, q: &str, from: i64, to: i64) -> Result<(BTreeMap<String, usize>, pb::Completeness), String> {
    let c = Client::connect(&format!("http://{addr}"), None).await.map_err(|e| e.to_string())?;
    let req =
        pb::QueryRequest { query: q.into(), start_time: from, end_time: to, timeout_ms: 20_000, ..Default::default() };
    let mut stream = c.query().query(req).await.map_err(|e| e.to_string())?.into_inner();
    let (mut tasks, mut completeness) = (BTreeMap::new(), None);
    while let Some(m) = stream.message().await.map_err(|e| e.to_string())? {
        match m.item {
            Some(pb::query_response::Item::Batch(b)) => {
                let col = b.columns.iter().position(|c| c == "task").unwrap_or(0);
                for s in b.series {
                    let name = match s.fields.get(col).and_then(|f| f.value.as_ref()) {
                        Some(pb::field_value::Value::StringValue(v)) => v.clone(),
                        other => format!("{other:?}"),
                    };
                    *tasks.entry(name).or_default() += s.points.len();
                }
            }
            Some(pb::query_response::Item::Completeness(c)) => completeness = Some(c),
            None => {}
        }
    }
    Ok((tasks, completeness.ok_or("no completeness report")?))
}

fn names(tasks: &BTreeMap<String, usize>) -> Vec<&str> {
    tasks.keys().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_zones_answer_as_one_and_keep_working_without_the_config_service() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevClusterConfig::new(env!("CARGO_BIN_EXE_danaus"), dir.path(), 1);
    cfg.zones = 2;
    let mut c = match DevCluster::start(cfg).await {
        Ok(c) => c,
        Err(e) => {
            dump_logs(dir.path());
            panic!("the dev cluster did not start: {e:#}");
        }
    };
    let (r1, r2) = (c.zone_router(1).to_owned(), c.zone_router(2).to_owned());
    let root = c.root_mixer().unwrap().to_owned();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    let t0 = now / SEC * SEC - 120 * SEC;
    let (from, to) = (t0 - 60 * SEC, t0 + 60 * SEC);
    let all = "fetch Task::/load";

    // Schemas once, through zone 1; writes through zone 1's router for
    // both zones: z2's series travel to z2, once it has the schemas too.
    retry("applying schemas through z1's router", || apply_schemas(&r1)).await;
    retry("writing through z1's router", || write(&r1, vec![series("z1-a", "t1", t0), series("z2-a", "t2", t0)])).await;

    // The root answers over both zones; each zone mixer holds its own.
    let (tasks, comp) = retry("querying the root", || query(&root, all, from, to)).await;
    assert!(comp.complete, "{comp:?}");
    assert_eq!(names(&tasks), ["t1", "t2"]);
    assert!(comp.sources.iter().any(|s| s.zone == "z1") && comp.sources.iter().any(|s| s.zone == "z2"), "{comp:?}");
    let (own, _) = query(c.zone_mixer(2), all, from, to).await.unwrap();
    assert_eq!(names(&own), ["t2"], "z2 stores only the series of its locations");
    let (counts, comp) =
        query(&root, "fetch Task::/load | align mean(1m) | group_by [cluster], count", from, to).await.unwrap();
    assert!(comp.complete, "{comp:?}");
    assert_eq!(counts.len(), 2, "one group per zone's cluster: {counts:?}");

    // Every config member killed: both zones keep ingesting and answering;
    // a mirror and a router restarted meanwhile come up from the mirror.
    for n in ["config-1", "config-2", "config-3"] {
        c.kill(n).unwrap();
    }
    for n in ["z2-mirror", "z2-router"] {
        c.kill(n).unwrap();
        c.restart(n).unwrap();
    }
    let t1 = t0 + 10 * SEC;
    retry("writing through z2's restarted router without the config service", || {
        write(&r2, vec![series("z1-b", "t3", t1), series("z2-b", "t4", t1)])
    })
    .await;
    let (tasks, comp) = query(&root, all, from, to).await.unwrap();
    assert!(comp.complete, "{comp:?}");
    assert_eq!(names(&tasks), ["t1", "t2", "t3", "t4"]);

    // Zone z2's mixer gone: z1's series, marked partial, naming z2.
    c.kill("z2-mixer").unwrap();
    let (tasks, comp) = query(&root, all, from, to).await.unwrap();
    assert_eq!(names(&tasks), ["t1", "t3"]);
    assert!(!comp.complete);
    let missing: Vec<_> = comp.sources.iter().filter(|s| !s.answered).collect();
    assert_eq!(missing.len(), 1, "{comp:?}");
    assert_eq!((missing[0].zone.as_str(), missing[0].source.as_str()), ("z2", "zone-mixer"));
    assert!(missing[0].missing_reason.contains("zone z2's mixer"), "{:?}", missing[0]);
}
