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
use danaus_server::dev_cluster::{DevCluster, DevClusterConfig};
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

/// `up` of two instances at `t`: `a` up, `b` as `b_up` says, written
/// to the remote_write receiver at `http`.
fn write_up_b(http: &str, t: i64, b_up: bool) {
    let ts = vec![
        series(&[("__name__", "up"), ("job", "api"), ("instance", "a:9100")], &[(t, 1.0)]),
        series(&[("__name__", "up"), ("job", "api"), ("instance", "b:9100")], &[(t, f64::from(u8::from(b_up)))]),
    ];
    let (status, text) = remote_write(http, &v1::WriteRequest { timeseries: ts, metadata: vec![] }, &[]);
    assert_eq!(status, 204, "{text}");
}

/// `up` of two instances, `b` down, at `t`.
fn write_up(server: &Server, t: i64) {
    write_up_b(&server.http, t, false);
}

fn get(server: &Server, path: &str) -> Value {
    get_at(&server.http, path)
}

fn get_at(http: &str, path: &str) -> Value {
    let (status, body) = http_get(http, path);
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
        write_up_b(&server.http, now_ms(), b_up);
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

    // RuleService, and danausctl rules list over it.
    let mut rules_client = pb::rule_service_client::RuleServiceClient::connect(server.grpc.clone()).await.unwrap();
    let listed = rules_client.list_rules(pb::ListRulesRequest::default()).await.unwrap().into_inner();
    let g = &listed.groups[0];
    assert_eq!((g.name.as_str(), g.evaluator.as_str(), g.interval_ms), ("api", "evaluator", 1000), "{g:?}");
    assert!(g.evaluations > 0 && g.last_evaluation_ms > 0, "{g:?}");
    assert_eq!(g.rules[1].state, "firing");
    assert_eq!(g.rules[1].alerts[0].labels["instance"], "b:9100");
    let alerts = rules_client.list_alerts(pb::ListAlertsRequest {}).await.unwrap().into_inner().alerts;
    assert!(alerts.iter().any(|a| a.state == "firing" && a.rule == "InstanceDown"), "{alerts:?}");
    let out = std::process::Command::new(common::danaus_bin().with_file_name("danausctl"))
        .args(["--addr", &server.grpc, "rules", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("api  every 1s  on evaluator  last "), "{text}");
    assert!(text.contains("alerting  InstanceDown") && text.contains("ok firing (1 alerts)"), "{text}");

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

/// Writes `up` to `router` every 250 ms until `check` holds (at most
/// `within`).
async fn until_at(router: &str, b_up: bool, within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        write_up_b(router, now_ms(), b_up);
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{what} did not happen within {within:?}");
}

/// The evaluator members that lead their group now (by their /metrics).
async fn evaluator_leaders(c: &DevCluster) -> Vec<String> {
    let mut out = Vec::new();
    for p in c.procs.values().filter(|p| p.name.contains("evaluator-")) {
        if danaus_server::dev_cluster::metric(&p.http, "danaus_evaluator_is_leader").await.unwrap_or(0.0) == 1.0 {
            out.push(p.name.clone());
        }
    }
    out
}

/// The one leader, once there is one (and only one).
async fn evaluator_leader(c: &DevCluster) -> String {
    for _ in 0..200 {
        let l = evaluator_leaders(c).await;
        if l.len() == 1 {
            return l[0].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no single evaluator leader");
}

/// An alert of `state` as the evaluator at `http` shows it.
fn alert_at(http: &str, state: &str) -> Option<Value> {
    let (status, body) = http_get(http, "/api/v1/alerts");
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v["data"]["alerts"].as_array()?.iter().find(|a| a["state"] == state).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evaluator_leader_killed_while_pending_and_while_firing_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start();
    let (_am, am) = start_alertmanager(&dir.path().join("am"), &sink.addr);
    let mut cfg = DevClusterConfig::new(common::danaus_bin(), dir.path().join("cluster"), 1);
    cfg.evaluators = 3;
    cfg.evaluator_args =
        vec!["--alertmanager-url".into(), format!("http://{am}"), "--rules-resend-delay".into(), "2s".into()];
    let mut c = match DevCluster::start(cfg).await {
        Ok(c) => c,
        Err(e) => {
            common::dump_logs(&dir.path().join("cluster"));
            panic!("the dev cluster did not start: {e:#}");
        }
    };
    let router = c.procs["z1-router"].http.clone();
    let mixer = c.procs["z1-mixer"].http.clone();
    write_up_b(&router, now_ms(), false);
    let docs =
        danaus_config::files::parse(std::path::Path::new("rules.yaml"), &RULES.replace("for: 2s", "for: 5s")).unwrap();
    let objects: Vec<danaus_config::Object> = docs.into_iter().map(|d| d.object).collect();
    let req = pb::ApplyConfigRequest {
        objects_json: serde_json::to_vec(&objects).unwrap(),
        author: "test".into(),
        message: "rules".into(),
        ..Default::default()
    };
    let mut applied = false;
    for _ in 0..50 {
        for a in c.config_servers() {
            if let Ok(mut client) = pb::config_service_client::ConfigServiceClient::connect(format!("http://{a}")).await
            {
                if client.apply(req.clone()).await.is_ok() {
                    applied = true;
                    break;
                }
            }
        }
        if applied {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(applied, "no config member took the rules");

    // Pending on the leader: kill -9 it.
    let leader = evaluator_leader(&c).await;
    let http = c.procs[&leader].http.clone();
    until_at(&router, false, Duration::from_secs(60), "the alert pending", || alert_at(&http, "pending").is_some())
        .await;
    let active_at = alert_at(&http, "pending").unwrap()["activeAt"].clone();
    c.kill(&leader).unwrap();

    // A new leader fires it `for` after the same activeAt; Alertmanager
    // passes it on.
    until_at(&router, false, Duration::from_secs(60), "the firing alert at the webhook", || {
        hooked(&sink).iter().any(|(s, i, _)| s == "firing" && i == "b:9100")
    })
    .await;
    let second = evaluator_leader(&c).await;
    let http = c.procs[&second].http.clone();
    assert_eq!(alert_at(&http, "firing").unwrap()["activeAt"], active_at, "`for` ran on across the failover");
    c.restart(&leader).unwrap();

    // Firing: kill -9 the leader again, and let `b` come back.
    c.kill(&second).unwrap();
    until_at(&router, true, Duration::from_secs(60), "the resolution at the webhook", || {
        hooked(&sink).iter().any(|(s, i, _)| s == "resolved" && i == "b:9100")
    })
    .await;
    let seen = hooked(&sink);
    let statuses: Vec<&str> = seen.iter().map(|(s, _, _)| s.as_str()).collect();
    let first_resolved = statuses.iter().position(|s| *s == "resolved").unwrap();
    assert!(first_resolved > 0 && statuses[..first_resolved].iter().all(|s| *s == "firing"), "{seen:?}");
    let starts: std::collections::BTreeSet<&str> = seen.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(starts.len(), 1, "one alert, fired once, whatever the kills: {seen:?}");

    // The recording rule's series: a point at every grid time (1 s
    // apart) from its first to its last, none missing across two
    // failovers, none off the grid.
    let v = get_at(&mixer, "/api/v1/query?query=job:up:sum%5B10m%5D");
    let values = v["data"]["result"][0]["values"].as_array().unwrap_or_else(|| panic!("{v}")).clone();
    let times: Vec<i64> = values.iter().map(|p| (p[0].as_f64().unwrap() * 1000.0).round() as i64).collect();
    assert!(times.len() > 10, "{v}");
    let gaps: Vec<(i64, i64)> = times.windows(2).filter(|w| w[1] - w[0] != 1000).map(|w| (w[0], w[1])).collect();
    assert!(gaps.is_empty(), "the recorded series skips or strays from its grid: {gaps:?}");
}
