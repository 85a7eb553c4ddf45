//! QueryService on a real `danaus standalone`: results and the
//! completeness report, errors with positions, per-query limits, the
//! server's concurrency limit, deadlines, and cancellation when the caller
//! goes away.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{http_get, Server};
use danaus_client::Client;
use danaus_proto::v1 as pb;

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_699_920_000 * SEC;
const TASKS: usize = 8000;
const POINTS: i64 = 60;

fn s(v: &str) -> pb::FieldValue {
    pb::FieldValue { value: Some(pb::field_value::Value::StringValue(v.into())) }
}

async fn load(c: &Client) {
    c.schema().apply(common::task_load_schemas()).await.unwrap();
    for chunk in 0..TASKS / 500 {
        let series = (chunk * 500..chunk * 500 + 500)
            .map(|i| pb::Series {
                target_schema: "Task".into(),
                target_fields: HashMap::from([
                    ("cluster".into(), s(&format!("c{}", i % 4))),
                    ("task".into(), s(&format!("t{i:05}"))),
                ]),
                metric: "/load".into(),
                metric_fields: HashMap::new(),
                points: (0..POINTS)
                    .map(|k| pb::Point {
                        start_time: None,
                        end_time: T0 + k * 10 * SEC,
                        value: Some(pb::Value { value: Some(pb::value::Value::DoubleValue((i % 10) as f64)) }),
                    })
                    .collect(),
            })
            .collect();
        let r = c.ingest().write(pb::WriteRequest { series }).await.unwrap().into_inner();
        assert!(r.errors.is_empty(), "{:?}", r.errors.first());
    }
}

fn req(query: &str) -> pb::QueryRequest {
    pb::QueryRequest {
        query: query.into(),
        start_time: T0,
        end_time: T0 + (POINTS - 1) * 10 * SEC,
        step: 60 * SEC,
        ..Default::default()
    }
}

fn metric(http: &str, name: &str) -> u64 {
    let (_, body) = http_get(http, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_stream_results_report_completeness_and_stop_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-concurrent-queries", "2"]);
    let c = Client::connect(&server.grpc, Some("q")).await.unwrap();
    load(&c).await;

    // An aggregation: one series per cluster, the last message reports
    // which sources answered.
    let mut st = c
        .query()
        .query(req("fetch Task::/load | align mean(1m) | group_by [cluster], sum"))
        .await
        .unwrap()
        .into_inner();
    let (mut series, mut completeness) = (Vec::new(), None);
    while let Some(m) = st.message().await.unwrap() {
        match m.item.unwrap() {
            pb::query_response::Item::Batch(b) => {
                assert_eq!(b.columns, vec!["cluster"]);
                series.extend(b.series);
            }
            pb::query_response::Item::Completeness(c) => completeness = Some(c),
        }
    }
    assert_eq!(series.len(), 4);
    // Cluster c0 holds tasks 0, 4, 8, …: values (i % 10) → 0,4,8,2,6 repeating.
    let v = series[0].points[1].value.clone().unwrap().value.unwrap();
    assert_eq!(v, pb::value::Value::DoubleValue(20.0 * (TASKS / 4 / 5) as f64));
    let completeness = completeness.expect("a completeness report comes last");
    assert!(completeness.complete);
    assert_eq!(completeness.sources.len(), 1);
    assert!(completeness.sources[0].answered);
    assert_eq!(completeness.series_touched, TASKS as u64);

    // A mistake: INVALID_ARGUMENT with the position and a hint.
    let e = c.query().query(req("fetch Task::/load | group_by [clustr], sum")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().starts_with("1:31: unknown field `clustr` in group_by"), "{}", e.message());
    assert!(e.message().contains("hint: fields here: cluster, task"), "{}", e.message());
    let e = c.query().query(req("fetch Task::/nope")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("unknown metric \"/nope\""), "{}", e.message());

    // A per-query limit names itself.
    let mut small = req("fetch Task::/load");
    small.max_series = 100;
    let mut st = c.query().query(small).await.unwrap().into_inner();
    let e = loop {
        match st.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the series limit was not enforced"),
            Err(e) => break e,
        }
    };
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(e.message().contains("more than 100 series touched (limit `max_series`)"), "{}", e.message());

    // A deadline stops a query: leaves cut by it are named in the
    // completeness report (or, cut later, the query fails with
    // DEADLINE_EXCEEDED); it never comes back complete.
    let mut hurried = req("fetch Task::/load | align rate(1m) | group_by [], sum");
    hurried.timeout_ms = 1;
    match c.query().query(hurried).await {
        Err(e) => assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{}", e.message()),
        Ok(r) => {
            let mut st = r.into_inner();
            let mut report = None;
            loop {
                match st.message().await {
                    Ok(Some(m)) => {
                        if let Some(pb::query_response::Item::Completeness(c)) = m.item {
                            report = Some(c);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{}", e.message());
                        break;
                    }
                }
            }
            if let Some(c) = report {
                assert!(!c.complete, "a 1 ms deadline did not stop a query over {TASKS} series");
                let cut: Vec<_> = c.sources.iter().filter(|s| !s.answered).map(|s| s.missing_reason.clone()).collect();
                assert!(cut.iter().any(|m| m.contains("deadline")), "{cut:?}");
            }
        }
    }

    // Walking away: read one batch of a big raw fetch, then drop the stream.
    let before = metric(&server.http, "danaus_query_cancelled_total");
    let mut st = c.query().query(req("fetch Task::/load")).await.unwrap().into_inner();
    assert!(st.message().await.unwrap().is_some());
    drop(st);
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&server.http, "danaus_query_cancelled_total") == before {
        assert!(Instant::now() < deadline, "the query was not cancelled after the caller left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The server runs at most 2 queries at once and says so.
    let streams: Vec<_> = futures_join(&c).await;
    let refused = streams.iter().filter(|r| matches!(r, Err(e) if e.code() == tonic::Code::ResourceExhausted)).count();
    assert!(refused >= 1, "4 simultaneous queries with a limit of 2: none refused");
    for r in &streams {
        if let Err(e) = r {
            assert!(e.message().contains("2 queries are already running"), "{}", e.message());
        }
    }
    assert!(metric(&server.http, "danaus_query_refused_total") >= 1);
}

/// Starts 4 raw fetches at once and keeps their streams open (unread), so
/// they hold their slots.
async fn futures_join(c: &Client) -> Vec<Result<tonic::Streaming<pb::QueryResponse>, tonic::Status>> {
    let calls = (0..4).map(|_| {
        let c = c.clone();
        async move { c.query().query(req("fetch Task::/load")).await.map(|r| r.into_inner()) }
    });
    let mut out = Vec::new();
    for f in calls.collect::<Vec<_>>() {
        out.push(f.await);
    }
    out
}
