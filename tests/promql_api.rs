//! The Prometheus query API of a real `danaus standalone`: data in by
//! remote_write, PromQL out over HTTP, in Prometheus' envelopes.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{http_get, http_post, remote_write, series, Server};
use danaus_prom::prompb::v1;
use serde_json::Value;

/// Samples every 15 s from here.
const T: i64 = 1_699_999_995_000;

fn get(server: &Server, path: &str) -> (u16, Value) {
    let (status, body) = http_get(&server.http, path);
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promql_over_http_answers_like_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    // Two hosts' request counters, 10 per 15 s and 20 per 15 s, and a
    // gauge with a mode label.
    let mut ts = Vec::new();
    for (host, per) in [("a:9100", 10.0), ("b:9100", 20.0)] {
        let samples: Vec<(i64, f64)> = (0..9).map(|i| (T + i * 15_000, per * i as f64)).collect();
        ts.push(series(&[("__name__", "http_requests_total"), ("job", "api"), ("instance", host)], &samples));
        ts.push(series(
            &[("__name__", "cpu"), ("job", "api"), ("instance", host), ("mode", "idle")],
            &[(T, 0.5), (T + 120_000, 0.75)],
        ));
    }
    let (status, text) = remote_write(&server.http, &v1::WriteRequest { timeseries: ts, metadata: vec![] }, &[]);
    assert_eq!(status, 204, "{text}");

    let at = |ms: i64| format!("{}.{:03}", ms / 1000, ms % 1000);
    // rate over 2 minutes at the last sample: 10/15 and 20/15 per second,
    // summed by job.
    let (status, v) = get(
        &server,
        &format!("/api/v1/query?query=sum%20by%20(job)%20(rate(http_requests_total%5B2m%5D))&time={}", at(T + 120_000)),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "vector");
    let r = &v["data"]["result"][0];
    assert_eq!(r["metric"], serde_json::json!({"job": "api"}));
    let value: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
    assert!((value - 2.0).abs() < 1e-9, "{v}");
    // The default location is not a label; the name and the rest are.
    let (_, v) = get(&server, &format!("/api/v1/query?query=cpu&time={}", at(T + 60_000)));
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(
        v["data"]["result"][0]["metric"],
        serde_json::json!({"__name__": "cpu", "instance": "a:9100", "job": "api", "mode": "idle"})
    );

    // A range query: a matrix with one point per step.
    let (status, v) = get(
        &server,
        &format!(
            "/api/v1/query_range?query=cpu%7Binstance%3D%22b%3A9100%22%7D&start={}&end={}&step=60",
            at(T),
            at(T + 120_000)
        ),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");
    let values = &v["data"]["result"][0]["values"];
    assert_eq!(values.as_array().unwrap().len(), 3, "{v}");
    assert_eq!(values[2][1], "0.75");
    assert_eq!(values[0][0].as_f64().unwrap(), T as f64 / 1000.0);

    // POST as a form, as Grafana does.
    let form = format!("query=count(cpu)&time={}", at(T));
    let (status, _, text) = http_post(
        &server.http,
        "/api/v1/query",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "2");

    // Series, label names, label values, metadata.
    let range = format!("start={}&end={}", at(T), at(T + 120_000));
    let (_, v) = get(&server, &format!("/api/v1/series?match%5B%5D=cpu&{range}"));
    assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");
    let (_, v) = get(&server, &format!("/api/v1/labels?{range}"));
    assert_eq!(v["data"], serde_json::json!(["__name__", "instance", "job", "mode"]));
    let (_, v) = get(&server, &format!("/api/v1/label/instance/values?{range}"));
    assert_eq!(v["data"], serde_json::json!(["a:9100", "b:9100"]));
    let (_, v) = get(&server, "/api/v1/label/__name__/values");
    assert_eq!(v["data"], serde_json::json!(["cpu", "http_requests_total"]));
    let (_, v) = get(&server, "/api/v1/metadata?metric=http_requests_total");
    assert_eq!(v["data"]["http_requests_total"][0]["type"], "counter", "{v}");
    let (status, v) = get(&server, "/api/v1/status/buildinfo");
    assert_eq!(status, 200);
    assert!(v["data"]["version"].is_string());
    let (_, v) = get(&server, "/api/v1/query_exemplars?query=cpu&start=0&end=1");
    assert_eq!(v["data"], serde_json::json!([]));

    // Errors: Prometheus' envelope, type and status.
    let (status, v) = get(&server, "/api/v1/query?query=sum(");
    assert_eq!(status, 400);
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "bad_data");
    let (status, v) = get(&server, "/api/v1/query_range?query=cpu&start=10&end=5&step=1");
    assert_eq!((status, v["errorType"].as_str()), (400, Some("bad_data")), "{v}");
    let (status, v) = get(&server, &format!("/api/v1/query?query=cpu%20%2B%20on(job)%20cpu&time={}", at(T)));
    assert_eq!((status, v["errorType"].as_str()), (422, Some("execution")), "{v}");
    // Parameters that once panicked the server: 400 naming the parameter.
    for (path, param) in [
        ("/api/v1/query?query=cpu&time=2024-01-01T00:00:00%2B0%C3%A900", "time"),
        ("/api/v1/query_range?query=cpu&start=0&end=5&step=9999999999999999y", "step"),
        ("/api/v1/query?query=cpu&timeout=99999999999999999999999s", "timeout"),
    ] {
        let (status, v) = get(&server, path);
        assert_eq!((status, v["errorType"].as_str()), (400, Some("bad_data")), "{path}: {v}");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(error.contains(&format!("invalid parameter \"{param}\"")), "{path}: {v}");
    }
}
