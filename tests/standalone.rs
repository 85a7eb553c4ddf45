//! `danaus standalone` as a user meets it: schemas, writes with per-series
//! errors, reads with matchers, `/metrics`, `/healthz`, reflection, and a
//! clean SIGTERM shutdown that leaves nothing to replay.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::HashMap;

use common::{http_get, Server};
use danaus_client::Client;
use danaus_proto::v1 as pb;

fn s(v: &str) -> pb::FieldValue {
    pb::FieldValue { value: Some(pb::field_value::Value::StringValue(v.into())) }
}

fn series(user: &str, value: pb::value::Value) -> pb::Series {
    pb::Series {
        target_schema: "Task".into(),
        target_fields: HashMap::from([("cluster".into(), s("c1")), ("user".into(), s(user))]),
        metric: "/rpc/latency".into(),
        metric_fields: HashMap::new(),
        points: vec![pb::Point { start_time: None, end_time: 1_000, value: Some(pb::Value { value: Some(value) }) }],
    }
}

/// `Task{cluster*, user}` and the gauge `/rpc/latency`.
fn schemas() -> pb::ApplySchemasRequest {
    let target = pb::TargetSchema {
        name: "Task".into(),
        fields: vec![
            pb::FieldDef { name: "cluster".into(), r#type: pb::FieldType::String as i32, added: false },
            pb::FieldDef { name: "user".into(), r#type: pb::FieldType::String as i32, added: false },
        ],
        location_field: "cluster".into(),
    };
    let metric = pb::MetricSchema {
        name: "/rpc/latency".into(),
        fields: vec![],
        value_type: Some(pb::ValueType { elements: vec![pb::ScalarType::Double as i32], tuple: false }),
        kind: pb::MetricKind::Gauge as i32,
        unit: "ms".into(),
        description: String::new(),
        collection: None,
    };
    pb::ApplySchemasRequest { targets: vec![target], metrics: vec![metric] }
}

#[tokio::test]
async fn serves_the_api_metrics_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let c = Client::connect(&server.grpc, Some("team-a")).await.unwrap();
    c.schema().apply(schemas()).await.unwrap();
    // A bad schema is refused with a message naming the problem.
    let bad = pb::TargetSchema { name: "Bad".into(), fields: vec![], location_field: "zone".into() };
    let e = c.schema().apply(pb::ApplySchemasRequest { targets: vec![bad], metrics: vec![] }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("location field \"zone\""), "{}", e.message());

    let r = c
        .ingest()
        .write(pb::WriteRequest {
            series: vec![
                series("alice", pb::value::Value::DoubleValue(1.5)),
                series("bob", pb::value::Value::Int64Value(2)),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted_points, 1);
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].index, 1);
    assert!(r.errors[0].message.contains("expects double, got int64"), "{}", r.errors[0].message);

    let read = |matchers: Vec<pb::Matcher>| {
        let c = c.clone();
        async move {
            let mut st = c
                .read()
                .read(pb::ReadRequest {
                    target_schema: "Task".into(),
                    metric: "/rpc/latency".into(),
                    matchers,
                    start_time: 0,
                    end_time: 10_000,
                })
                .await?
                .into_inner();
            let mut n = Vec::new();
            while let Some(m) = st.message().await? {
                n.extend(m.series);
            }
            Ok::<_, tonic::Status>(n)
        }
    };
    let got = read(vec![pb::Matcher { field: "user".into(), op: pb::MatchOp::Re as i32, value: "al.*".into() }])
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].points[0].end_time, 1_000);
    let e = read(vec![pb::Matcher { field: "user".into(), op: pb::MatchOp::Re as i32, value: "(".into() }])
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // Another tenant sees nothing of team-a's.
    let other = Client::connect(&server.grpc, Some("team-b")).await.unwrap();
    let e = other
        .read()
        .read(pb::ReadRequest {
            target_schema: "Task".into(),
            metric: "/rpc/latency".into(),
            matchers: vec![],
            start_time: 0,
            end_time: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);

    // Generic gRPC tools see every service through reflection.
    {
        use tonic_reflection::pb::v1::{
            server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
            server_reflection_response::MessageResponse, ServerReflectionRequest,
        };
        let channel = tonic::transport::Endpoint::from_shared(server.grpc.clone()).unwrap().connect().await.unwrap();
        let mut rc = ServerReflectionClient::new(channel);
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut resp = rc.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
        let msg = resp.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else { panic!("{msg:?}") };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for svc in ["danaus.v1.SchemaService", "danaus.v1.IngestService", "danaus.v1.ReadService"] {
            assert!(names.iter().any(|n| n == svc), "{svc} missing from {names:?}");
        }
    }

    let (code, body) = http_get(&server.http, "/healthz");
    assert_eq!((code, body.trim()), (200, "ok"));
    let (code, body) = http_get(&server.http, "/metrics");
    assert_eq!(code, 200);
    assert!(body.contains("danaus_leaf_points_accepted_total 1"), "{body}");
    assert!(body.contains("danaus_leaf_points_invalid_total 1"), "{body}");
    // OpenMetrics (counter families are named without `_total`), which
    // an OpenMetrics parser takes whole.
    assert!(body.contains("# TYPE danaus_wal_syncs counter"), "{body}");
    assert!(body.contains("danaus_build_info{version=\""), "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    let parsed = danaus_prom::text::parse(&body, danaus_prom::text::Format::OpenMetrics).unwrap();
    assert!(
        parsed.family_of("danaus_wal_syncs_total").is_some_and(|f| f.r#type == danaus_prom::prompb::COUNTER),
        "a counter family"
    );

    tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    // After a clean shutdown the next start has nothing to replay.
    let server = Server::start(dir.path(), &[]);
    let (_, body) = http_get(&server.http, "/metrics");
    assert!(body.contains("danaus_leaf_replay_records_total 0"), "{body}");
    let c = Client::connect(&server.grpc, Some("team-a")).await.unwrap();
    assert_eq!(read_users(&c).await, vec!["alice"]);
    tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
}

/// Everything `Task::/rpc/latency` holds, by user.
async fn read_users(c: &Client) -> Vec<String> {
    let mut st = c
        .read()
        .read(pb::ReadRequest {
            target_schema: "Task".into(),
            metric: "/rpc/latency".into(),
            matchers: vec![],
            start_time: 0,
            end_time: 10_000,
        })
        .await
        .unwrap()
        .into_inner();
    let mut users = Vec::new();
    while let Some(m) = st.message().await.unwrap() {
        for s in m.series {
            let Some(pb::field_value::Value::StringValue(u)) = s.target_fields["user"].value.clone() else { panic!() };
            users.push(u);
        }
    }
    users.sort();
    users
}

#[tokio::test]
async fn several_leaves_with_replicas_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--leaves", "3", "--replication", "2"];
    let server = Server::start(dir.path(), &args);
    let c = Client::connect(&server.grpc, None).await.unwrap();
    c.schema().apply(schemas()).await.unwrap();
    let batch: Vec<pb::Series> =
        (0..50).map(|i| series(&format!("u{i:02}"), pb::value::Value::DoubleValue(1.0))).collect();
    let r = c.ingest().write(pb::WriteRequest { series: batch }).await.unwrap().into_inner();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let want: Vec<String> = (0..50).map(|i| format!("u{i:02}")).collect();
    // Each series once, though two leaves hold it.
    assert_eq!(read_users(&c).await, want);
    let (_, body) = http_get(&server.http, "/metrics");
    assert!(body.contains("danaus_leaf_points_accepted_total 100"), "two replicas of 50 points: {body}");
    for l in ["leaf-2", "leaf-3"] {
        assert!(dir.path().join(l).join("wal").is_dir(), "{l} has no recovery log directory");
    }
    tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    let server = Server::start(dir.path(), &args);
    let c = Client::connect(&server.grpc, None).await.unwrap();
    assert_eq!(read_users(&c).await, want);
    // A replication the leaves cannot give is refused up front.
    let bad = std::process::Command::new(common::danaus_bin())
        .args(["standalone", "--leaves", "1", "--replication", "2", "--data-dir"])
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--replication 2 needs between 1 and --leaves (1)"));
    tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
}

/// A native metric schema gains fields by `schema apply`: the stored
/// series keep their keys (a write without the field is the same series,
/// and matching the field's zero finds it); removing or retyping a field
/// is refused naming it.
#[tokio::test]
async fn a_native_metric_gains_fields_by_schema_apply() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let c = Client::connect(&server.grpc, None).await.unwrap();
    c.schema().apply(schemas()).await.unwrap();
    let at = |t: i64, mut sr: pb::Series| {
        sr.points[0].end_time = t;
        sr
    };
    let write = |series: Vec<pb::Series>| {
        let c = c.clone();
        async move {
            let r = c.ingest().write(pb::WriteRequest { series }).await.unwrap().into_inner();
            assert!(r.errors.is_empty(), "{:?}", r.errors);
        }
    };
    write(vec![at(1_000, series("alice", pb::value::Value::DoubleValue(1.0)))]).await;

    let mut grown = schemas().metrics.remove(0);
    grown.fields.push(pb::FieldDef { name: "region".into(), r#type: pb::FieldType::String as i32, added: false });
    let r = c.schema().apply(pb::ApplySchemasRequest { targets: vec![], metrics: vec![grown.clone()] }).await.unwrap();
    assert_eq!(r.into_inner().results[0].outcome, pb::ApplyOutcome::Updated as i32);
    let got = c
        .schema()
        .get(pb::GetSchemaRequest { name: Some(pb::get_schema_request::Name::Metric("/rpc/latency".into())) })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::get_schema_response::Schema::Metric(m)) = got.schema else { panic!("{got:?}") };
    assert_eq!(m.fields.len(), 1);
    assert!(m.fields[0].added, "{m:?}");
    // Applying it again changes nothing.
    let r = c.schema().apply(pb::ApplySchemasRequest { targets: vec![], metrics: vec![grown.clone()] }).await.unwrap();
    assert_eq!(r.into_inner().results[0].outcome, pb::ApplyOutcome::Unchanged as i32);

    let mut eu = at(3_000, series("bob", pb::value::Value::DoubleValue(3.0)));
    eu.metric_fields.insert("region".into(), s("eu"));
    let mut empty = at(4_000, series("alice", pb::value::Value::DoubleValue(4.0)));
    empty.metric_fields.insert("region".into(), s(""));
    write(vec![at(2_000, series("alice", pb::value::Value::DoubleValue(2.0))), eu, empty]).await;
    let read = |region: &str| {
        let c = c.clone();
        let region = region.to_owned();
        async move {
            let req = pb::ReadRequest {
                target_schema: "Task".into(),
                metric: "/rpc/latency".into(),
                matchers: vec![pb::Matcher { field: "region".into(), op: pb::MatchOp::Eq as i32, value: region }],
                start_time: 0,
                end_time: 10_000,
            };
            let mut st = c.read().read(req).await.unwrap().into_inner();
            let mut out = Vec::new();
            while let Some(m) = st.message().await.unwrap() {
                for sr in m.series {
                    let Some(pb::field_value::Value::StringValue(u)) = sr.target_fields["user"].value.clone() else {
                        panic!()
                    };
                    out.push((u, sr.points.iter().map(|p| p.end_time).collect::<Vec<_>>()));
                }
            }
            out
        }
    };
    // One series for alice, written before the field, without it and
    // with it empty; bob's has it.
    assert_eq!(read("").await, [("alice".to_owned(), vec![1_000, 2_000, 4_000])]);
    assert_eq!(read("eu").await, [("bob".to_owned(), vec![3_000])]);

    let refused = |m: pb::MetricSchema| {
        let c = c.clone();
        async move { c.schema().apply(pb::ApplySchemasRequest { targets: vec![], metrics: vec![m] }).await.unwrap_err() }
    };
    let mut retyped = grown.clone();
    retyped.fields[0].r#type = pb::FieldType::Int64 as i32;
    let e = refused(retyped).await;
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("field \"region\" is string and cannot become int64"), "{}", e.message());
    let e = refused(schemas().metrics.remove(0)).await;
    assert!(e.message().contains("field \"region\" cannot be removed or renamed"), "{}", e.message());
    tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
}
