//! Rules in a real `danaus standalone`: a Prometheus rule file applied to
//! the configuration as it is, evaluated every second over data written
//! by remote_write; the recorded series and `ALERTS` answer PromQL, the
//! alert shows in `/api/v1/alerts` and `/api/v1/rules` as Prometheus
//! shows it, counters in `/metrics`; and across a restart the firing
//! alert keeps the time it became active.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use common::{http_get, remote_write, series, start_alertmanager, Server, WebhookSink};
use danaus_prom::prompb::v1;
use danaus_proto::v1 as pb;
use serde_json::Value;

const RULES: &str = "groups:
- name: api
  interval: 1s
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
  - alert: InstanceDown
    expr: up == 0
    for: 2s
    labels:
      severity: page
    annotations:
      summary: '{{ $labels.instance }} of {{ $labels.job }} is down'
";

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// `up` of two instances at `t`: `a` up, `b` as `b_up` says.
fn write_up_b(server: &Server, t: i64, b_up: bool) {
    let ts = vec![
        series(&[("__name__", "up"), ("job", "api"), ("instance", "a:9100")], &[(t, 1.0)]),
        series(&[("__name__", "up"), ("job", "api"), ("instance", "b:9100")], &[(t, f64::from(u8::from(b_up)))]),
    ];
    let (status, text) = remote_write(&server.http, &v1::WriteRequest { timeseries: ts, metadata: vec![] }, &[]);
    assert_eq!(status, 204, "{text}");
}

/// `up` of two instances, `b` down, at `t`.
fn write_up(server: &Server, t: i64) {
    write_up_b(server, t, false);
}

fn get(server: &Server, path: &str) -> Value {
    let (status, body) = http_get(&server.http, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Writes `up` (`b` down) every 250 ms until `check` holds (at most
/// `within`).
fn until(server: &Server, within: Duration, what: &str, check: impl FnMut() -> bool) {
    until_b(server, false, within, what, check)
}

/// Writes `up` (`b` as `b_up` says) every 250 ms until `check` holds.
fn until_b(server: &Server, b_up: bool, within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        write_up_b(server, now_ms(), b_up);
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{what} did not happen within {within:?}");
}

fn firing(server: &Server) -> Option<Value> {
    let v = get(server, "/api/v1/alerts");
    v["data"]["alerts"].as_array().unwrap().iter().find(|a| a["state"] == "firing").cloned()
}

/// Applies the rule file `text` to `server`'s configuration, as
/// `danausctl config apply` applies a directory holding it.
async fn apply_rules(server: &Server, text: &str) {
    let docs = danaus_config::files::parse(std::path::Path::new("rules.yaml"), text).unwrap();
    let objects: Vec<danaus_config::Object> = docs.into_iter().map(|d| d.object).collect();
    let mut client = pb::config_service_client::ConfigServiceClient::connect(server.grpc.clone()).await.unwrap();
    client
        .apply(pb::ApplyConfigRequest {
            objects_json: serde_json::to_vec(&objects).unwrap(),
            author: "test".into(),
            message: "rules".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_rule_file_records_and_alerts_and_the_alert_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    write_up(&server, now_ms());
    apply_rules(&server, RULES).await;

    until(&server, Duration::from_secs(30), "the alert firing", || firing(&server).is_some());
    let alert = firing(&server).unwrap();
    assert_eq!(alert["labels"]["alertname"], "InstanceDown");
    assert_eq!(alert["labels"]["instance"], "b:9100");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["annotations"]["summary"], "b:9100 of api is down");
    assert_eq!(alert["value"], "0e+00");
    let active_at = alert["activeAt"].as_str().unwrap().to_owned();

    // /api/v1/rules as Prometheus answers it.
    let v = get(&server, "/api/v1/rules");
    let group = &v["data"]["groups"][0];
    assert_eq!(group["name"], "api");
    assert_eq!(group["file"], "default");
    assert_eq!(group["interval"], 1.0);
    let rules = group["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{v}");
    assert_eq!(rules[0]["type"], "recording");
    assert_eq!(rules[0]["name"], "job:up:sum");
    assert_eq!(rules[0]["health"], "ok", "{v}");
    assert_eq!(rules[1]["type"], "alerting");
    assert_eq!(rules[1]["state"], "firing");
    assert_eq!(rules[1]["duration"], 2.0);
    assert_eq!(rules[1]["alerts"][0]["activeAt"], active_at.as_str());
    let v = get(&server, "/api/v1/rules?type=record");
    assert_eq!(v["data"]["groups"][0]["rules"].as_array().unwrap().len(), 1, "{v}");
    let (status, body) = http_get(&server.http, "/api/v1/rules?type=bogus");
    assert_eq!(status, 400, "{body}");

    // The derived series answer PromQL: the recording rule's sum, and
    // ALERTS.
    until(&server, Duration::from_secs(10), "job:up:sum readable", || {
        let v = get(&server, "/api/v1/query?query=job:up:sum");
        v["data"]["result"][0]["value"][1] == "1"
    });
    let v = get(&server, "/api/v1/query?query=ALERTS%7Balertstate%3D%22firing%22%7D");
    assert_eq!(v["data"]["result"][0]["metric"]["alertname"], "InstanceDown", "{v}");

    // Counters on /metrics.
    let (_, metrics) = http_get(&server.http, "/metrics");
    let evaluations = metrics
        .lines()
        .find(|l| l.starts_with("danaus_rule_group_evaluations_total{"))
        .unwrap_or_else(|| panic!("no evaluation counter in {metrics}"));
    assert!(evaluations.contains("rule_group=\"api\""), "{evaluations}");

    // Restarted: the alert is still firing, active since the same time
    // (its state was committed, not kept in memory).
    server.terminate();
    let server = Server::start(dir.path(), &[]);
    until(&server, Duration::from_secs(30), "the alert firing again", || firing(&server).is_some());
    assert_eq!(firing(&server).unwrap()["activeAt"], active_at.as_str());
}

/// The alerts of the webhook bodies Alertmanager posted, as (status,
/// instance, startsAt).
fn hooked(sink: &WebhookSink) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for body in sink.received() {
        for a in body["alerts"].as_array().into_iter().flatten() {
            out.push((
                a["status"].as_str().unwrap_or_default().to_owned(),
                a["labels"]["instance"].as_str().unwrap_or_default().to_owned(),
                a["startsAt"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_pending_and_while_firing_alertmanager_hears_firing_then_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start();
    let (_am, am) = start_alertmanager(&dir.path().join("am"), &sink.addr);
    let url = format!("http://{am}");
    let args = ["--alertmanager-url", url.as_str(), "--rules-resend-delay", "2s"];
    let data = dir.path().join("danaus");
    let server = Server::start(&data, &args);
    write_up(&server, now_ms());
    apply_rules(&server, &RULES.replace("for: 2s", "for: 4s")).await;

    // Pending: nothing reaches Alertmanager. kill -9.
    let pending = || {
        let v = get(&server, "/api/v1/alerts");
        v["data"]["alerts"].as_array().unwrap().iter().find(|a| a["state"] == "pending").cloned()
    };
    until(&server, Duration::from_secs(30), "the alert pending", || pending().is_some());
    let active_at = pending().unwrap()["activeAt"].clone();
    assert!(hooked(&sink).is_empty(), "pending alerts are not sent: {:?}", hooked(&sink));
    server.kill9();

    // Restarted, it fires `for` after the time it became active then,
    // and Alertmanager passes it on.
    let server = Server::start(&data, &args);
    until(&server, Duration::from_secs(30), "the firing alert at the webhook", || {
        hooked(&sink).iter().any(|(s, i, _)| s == "firing" && i == "b:9100")
    });
    let alert = firing(&server).unwrap();
    assert_eq!(alert["activeAt"], active_at, "the pending alert kept its activeAt across kill -9");
    server.kill9();

    // Killed while firing; restarted, `b` comes back: resolved.
    let server = Server::start(&data, &args);
    until_b(&server, true, Duration::from_secs(30), "the resolution at the webhook", || {
        hooked(&sink).iter().any(|(s, i, _)| s == "resolved" && i == "b:9100")
    });
    let seen = hooked(&sink);
    let statuses: Vec<&str> = seen.iter().map(|(s, _, _)| s.as_str()).collect();
    let first_resolved = statuses.iter().position(|s| *s == "resolved").unwrap();
    assert!(statuses[..first_resolved].iter().all(|s| *s == "firing"), "{seen:?}");
    assert!(first_resolved > 0, "{seen:?}");
    let starts: std::collections::BTreeSet<&str> = seen.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(starts.len(), 1, "one alert, one start, whatever the kills: {seen:?}");
}
