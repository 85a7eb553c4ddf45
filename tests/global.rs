//! Two zones of real processes with the global layer on loopback
//! (`danaus dev-cluster --zones 2`: three config service members, per
//! zone three assigners, a leaf, a router, a mixer, an index server and a
//! config mirror, a root index server and a root mixer). Schemas are applied once and reach
//! both zones through the configuration; a write through either zone's
//! router reaches the zone owning its location; the root mixer answers
//! over both zones, skipping those the root index shows hold nothing it
//! asks for, and never one holding a series it acknowledged; with every config member killed the zones keep
//! ingesting and answering, and roles restarted meanwhile come up from
//! their mirror; with a zone's mixer gone the root's answer is marked
//! partial and names the zone.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use danaus_client::Client;
use danaus_proto::v1 as pb;
use danaus_server::dev_cluster::{DevCluster, DevClusterConfig};

mod common;

const SEC: i64 = 1_000_000_000;

fn s(v: &str) -> pb::FieldValue {
    pb::FieldValue { value: Some(pb::field_value::Value::StringValue(v.into())) }
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
    c.schema().apply(common::task_load_schemas()).await.map(|_| ()).map_err(|e| e.to_string())
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
    let mut cfg = DevClusterConfig::new(common::danaus_bin(), dir.path(), 1);
    cfg.zones = 2;
    let mut c = match DevCluster::start(cfg).await {
        Ok(c) => c,
        Err(e) => {
            common::dump_logs(dir.path());
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

    // The root index: once the zones have claimed their hints there, a
    // query for a task no zone holds skips both (and is complete)...
    let root_http = c.procs["root-mixer"].http.clone();
    let skipped = || async {
        danaus_server::dev_cluster::metric(&root_http, "danaus_root_zones_skipped_by_hints_total").await.unwrap_or(0.0)
    };
    let t9 = r#"fetch Task::/load | filter task == "t9""#;
    retry("the root skipping zones by their hints", || async {
        let before = skipped().await;
        let (tasks, comp) = query(&root, t9, from, to).await?;
        assert!(comp.complete && tasks.is_empty(), "{tasks:?} {comp:?}");
        let after = skipped().await;
        if after >= before + 2.0 {
            Ok(())
        } else {
            Err(format!("{after} zones skipped, {before} before"))
        }
    })
    .await;
    // ...and a series acknowledged right after is in the next answer: the
    // leaf's hints push that names it is answered (and the write
    // acknowledged) only once the root index holds its fingerprints.
    write(&r1, vec![series("z2-a", "t9", t0)]).await.unwrap();
    let (tasks, comp) = query(&root, t9, from, to).await.unwrap();
    assert!(comp.complete, "{comp:?}");
    assert_eq!(names(&tasks), ["t9"], "a zone was skipped for a series it had acknowledged");

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
    assert_eq!(names(&tasks), ["t1", "t2", "t3", "t4", "t9"]);

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

/// A config service client of `addr`.
async fn config_client(
    addr: &str,
) -> Result<pb::config_service_client::ConfigServiceClient<tonic::transport::Channel>, String> {
    pb::config_service_client::ConfigServiceClient::connect(format!("http://{addr}")).await.map_err(|e| e.to_string())
}

/// Applies `objects` through the config member at `addr`, as `danausctl
/// config apply` does.
async fn apply(addr: &str, objects: &[danaus_config::Object], message: &str) -> Result<u64, String> {
    let req = pb::ApplyConfigRequest {
        objects_json: serde_json::to_vec(objects).unwrap(),
        author: "test".into(),
        message: message.into(),
        ..Default::default()
    };
    let mut r = tonic::Request::new(req);
    r.set_timeout(Duration::from_secs(5));
    let reply = config_client(addr).await?.apply(r).await.map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    let outcome: serde_json::Value = serde_json::from_slice(&reply.into_inner().outcome_json).unwrap();
    Ok(outcome["version"].as_u64().unwrap())
}

/// The configuration a member holds: its version and metric names.
async fn metrics_at(addr: &str) -> Result<(u64, Vec<String>), String> {
    let got = config_client(addr).await?.get(pb::GetConfigRequest {}).await.map_err(|s| s.message().to_owned())?;
    let got = got.into_inner();
    let objects: Vec<danaus_config::Object> = serde_json::from_slice(&got.objects_json).unwrap();
    let names = objects
        .into_iter()
        .filter_map(|o| match o {
            danaus_config::Object::MetricSchema(m) => Some(m.name),
            _ => None,
        })
        .collect();
    Ok((got.version, names))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_directory_is_applied_whole_across_a_leader_kill_and_both_zones_serve_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DevClusterConfig::new(common::danaus_bin(), dir.path().join("cluster"), 1);
    cfg.zones = 2;
    let mut c = match DevCluster::start(cfg).await {
        Ok(c) => c,
        Err(e) => {
            common::dump_logs(&dir.path().join("cluster"));
            panic!("the dev cluster did not start: {e:#}");
        }
    };
    let members = c.config_servers();

    // (a) A directory of YAML, read as `danausctl config apply -f DIR`
    // reads it, applied once: both zones take and answer its series.
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(conf.join("schemas")).unwrap();
    std::fs::write(
        conf.join("schemas/task.yaml"),
        "kind: TargetSchema\nname: Task\nfields: [{name: cluster, type: string}, {name: task, type: string}]\n\
         location: cluster\n---\nkind: MetricSchema\nname: /load\nvalue_type: double\nmetric_kind: gauge\n",
    )
    .unwrap();
    let docs = danaus_config::files::read_dir(&conf).unwrap();
    let objects: Vec<danaus_config::Object> = docs.into_iter().map(|d| d.object).collect();
    let first = retry("applying the directory", || apply(&members[0], &objects, "schemas")).await;
    assert_eq!(retry("applying it again", || apply(&members[1], &objects, "again")).await, first, "idempotent");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    let t0 = now / SEC * SEC - 60 * SEC;
    for z in 1..=2 {
        let router = c.zone_router(z).to_owned();
        let loc = format!("z{z}-a");
        retry("writing in each zone", || write(&router, vec![series(&loc, &format!("own{z}"), t0)])).await;
        let (tasks, comp) = query(c.zone_mixer(z), "fetch Task::/load", t0 - SEC, t0 + SEC).await.unwrap();
        assert!(comp.complete, "{comp:?}");
        assert_eq!(names(&tasks), [format!("own{z}")]);
    }

    // (b) The leader SIGKILLed while a change of 40 metrics is in flight:
    // the change is applied whole or not at all, and a new leader serves.
    let mut leader = None;
    for _ in 0..100 {
        for i in 1..=3 {
            let http = c.procs[&format!("config-{i}")].http.clone();
            if danaus_server::dev_cluster::metric(&http, "danaus_raft_is_leader").await.unwrap_or(0.0) == 1.0 {
                leader = Some(i);
            }
        }
        if leader.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leader = leader.expect("a config leader");
    let (before, _) = metrics_at(&members[leader - 1]).await.unwrap();
    let batch: Vec<danaus_config::Object> = (0..40)
        .map(|k| {
            let text = format!("kind: MetricSchema\nname: /batch/m{k}\nvalue_type: double\nmetric_kind: gauge\n");
            danaus_config::files::parse(std::path::Path::new("batch.yaml"), &text).unwrap().remove(0).object
        })
        .collect();
    let in_flight = {
        let (addr, batch) = (members[leader - 1].clone(), batch.clone());
        tokio::spawn(async move { apply(&addr, &batch, "a batch").await })
    };
    tokio::time::sleep(Duration::from_millis(2)).await;
    c.kill(&format!("config-{leader}")).unwrap();
    let _ = in_flight.await.unwrap();
    let survivors: Vec<String> = (1..=3).filter(|&i| i != leader).map(|i| members[i - 1].clone()).collect::<Vec<_>>();
    // A new leader commits: a no-op apply (the first directory again)
    // goes through, after which every survivor holds all or none.
    let after = retry("a new leader serving", || apply(&survivors[0], &objects, "noop")).await;
    assert!(after == before || after == before + 1, "before {before}, after {after}");
    for s in &survivors {
        let (v, names) = retry("reading a survivor", || async {
            let (v, n) = metrics_at(s).await?;
            if v < after {
                return Err(format!("{s} at version {v}, not yet {after}"));
            }
            Ok((v, n))
        })
        .await;
        let batch_names = names.iter().filter(|n| n.starts_with("/batch/")).count();
        assert!(batch_names == 0 || batch_names == 40, "{s} at v{v} holds {batch_names} of the 40 metrics");
        assert_eq!(batch_names == 40, after == before + 1, "the version says whether the batch committed");
    }
    // Applying the batch again completes it exactly once.
    let done = retry("applying the batch again", || apply(&survivors[1], &batch, "the batch again")).await;
    assert_eq!(done, before + 1, "the batch is one version, made once");
    // The killed member comes back and catches up.
    c.restart(&format!("config-{leader}")).unwrap();
    let (v, names) = retry("the restarted member catching up", || async {
        let (v, n) = metrics_at(&members[leader - 1]).await?;
        if v < done {
            return Err(format!("at {v}, not yet {done}"));
        }
        Ok((v, n))
    })
    .await;
    assert_eq!(v, done);
    assert_eq!(names.iter().filter(|n| n.starts_with("/batch/")).count(), 40);
}
