//! Prometheus remote_write into a real `danaus standalone`, read back
//! through the query engine.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{http_get, http_post, series, Server};
use danaus_client::Client;
use danaus_prom::prompb::v1;
use danaus_proto::v1 as pb;
use prost::Message;

/// A multiple of the 15 s step (grids are aligned to the epoch).
const T: i64 = 1_699_999_995_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_lands_and_is_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--location", "us-east1"]);
    let req = v1::WriteRequest {
        timeseries: (0..3)
            .map(|i| {
                let inst = format!("h{i}:9100");
                series(
                    &[("__name__", "node_load1"), ("job", "node"), ("instance", &inst)],
                    &[(T, i as f64), (T + 15_000, i as f64 + 0.5)],
                )
            })
            .collect(),
        metadata: vec![],
    };
    let body = snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap();
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ("x-danaus-tenant", "prom"),
    ];
    let (status, _, text) = http_post(&server.http, "/api/v1/write", &headers, &body);
    assert_eq!(status, 204, "{text}");
    // A bad content type is 415, not a silent drop.
    let (status, _, text) = http_post(
        &server.http,
        "/api/v1/write",
        &[("Content-Type", "text/plain"), ("Content-Encoding", "snappy")],
        &body,
    );
    assert_eq!(status, 415, "{text}");

    let c = Client::connect(&server.grpc, Some("prom")).await.unwrap();
    let q = pb::QueryRequest {
        query: "fetch prometheus_target::node_load1 | filter location == \"us-east1\" | group_by [job], sum".into(),
        start_time: T * 1_000_000,
        end_time: (T + 15_000) * 1_000_000,
        step: 15_000_000_000,
        ..Default::default()
    };
    let mut st = c.query().query(q).await.unwrap().into_inner();
    let mut values = Vec::new();
    while let Some(m) = st.message().await.unwrap() {
        if let Some(pb::query_response::Item::Batch(b)) = m.item {
            for s in b.series {
                for p in s.points {
                    values.push(p.value.unwrap().value.unwrap());
                }
            }
        }
    }
    // Grid points at multiples of 15 s: 0+1+2 and 0.5+1.5+2.5.
    assert_eq!(values, vec![pb::value::Value::DoubleValue(3.0), pb::value::Value::DoubleValue(4.5)]);
    let (_, metrics) = http_get(&server.http, "/metrics");
    assert!(metrics.contains("danaus_remote_write_samples_total 6"), "{metrics}");
    assert!(metrics.contains("danaus_remote_write_failed_requests_total 1"), "{metrics}");
}
