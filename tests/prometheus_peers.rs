//! Interop with the real Prometheus ecosystem (Debian's packages, which
//! `scripts/test` installs): Prometheus 2.42 scrapes a real node_exporter
//! and remote-writes to Danaus while Danaus scrapes the same exporter
//! itself. The same series must arrive by both routes, and match what
//! Prometheus' own HTTP API lists.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http_get, wait_http, Proc, Server};
use danaus_client::Client;
use danaus_proto::v1 as pb;

/// Samples as (label set, ms, value bits).
type Samples = BTreeSet<(Vec<(String, String)>, i64, u64)>;

fn need(bin: &str) -> String {
    let path = format!("/usr/bin/{bin}");
    assert!(
        std::path::Path::new(&path).exists(),
        "{bin} is missing: install Debian's prometheus and prometheus-node-exporter (scripts/test does)"
    );
    path
}

/// The series of `metric` in Danaus for one job, each with its label set
/// (without `job` and `location`, sorted, empty values left out).
async fn danaus_read(c: &Client, metric: &str, job: &str) -> Vec<(Vec<(String, String)>, pb::Series)> {
    let req = pb::ReadRequest {
        target_schema: "prometheus_target".into(),
        metric: metric.into(),
        matchers: vec![pb::Matcher { field: "job".into(), op: pb::MatchOp::Eq as i32, value: job.into() }],
        start_time: 0,
        end_time: i64::MAX,
    };
    let mut out = Vec::new();
    let Ok(st) = c.read().read(req).await else { return out };
    let mut st = st.into_inner();
    while let Ok(Some(m)) = st.message().await {
        for s in m.series {
            let mut labels: Vec<(String, String)> = s
                .target_fields
                .iter()
                .chain(&s.metric_fields)
                .filter(|(k, _)| *k != "job" && *k != "location")
                .map(|(k, v)| match &v.value {
                    Some(pb::field_value::Value::StringValue(x)) => (k.clone(), x.clone()),
                    other => (k.clone(), format!("{other:?}")),
                })
                .filter(|(_, v)| !v.is_empty())
                .collect();
            labels.sort();
            out.push((labels, s));
        }
    }
    out
}

/// Label sets of `metric` in Danaus, for one job.
async fn danaus_series(c: &Client, metric: &str, job: &str) -> BTreeSet<Vec<(String, String)>> {
    danaus_read(c, metric, job).await.into_iter().map(|(labels, _)| labels).collect()
}

/// Points (ms, value bits) of `metric` in Danaus for one job, by label set.
async fn danaus_points(c: &Client, metric: &str, job: &str) -> Samples {
    let mut out = BTreeSet::new();
    for (labels, s) in danaus_read(c, metric, job).await {
        for p in &s.points {
            if let Some(pb::value::Value::DoubleValue(d)) = p.value.as_ref().and_then(|v| v.value.as_ref()) {
                out.insert((labels.clone(), p.end_time / 1_000_000, d.to_bits()));
            }
        }
    }
    out
}

/// The raw samples (ms, value bits) Prometheus holds for `metric` of job
/// `node` over the last minute, by label set, older than `settled_ms`.
fn prometheus_points(addr: &str, metric: &str, settled_ms: i64) -> Samples {
    let (status, body) = http_get(addr, &format!("/api/v1/query?query={metric}%7Bjob%3D%22node%22%7D%5B1m%5D"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = BTreeSet::new();
    for s in v["data"]["result"].as_array().unwrap() {
        let labels = prometheus_labels(&s["metric"]);
        for p in s["values"].as_array().unwrap() {
            let ms = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            let value: f64 = p[1].as_str().unwrap().parse().unwrap();
            if ms <= settled_ms {
                out.insert((labels.clone(), ms, value.to_bits()));
            }
        }
    }
    out
}

/// Metric names Prometheus holds for job `node`.
fn prometheus_names(addr: &str) -> Vec<String> {
    let (status, body) = http_get(addr, "/api/v1/label/__name__/values?match%5B%5D=%7Bjob%3D%22node%22%7D");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect()
}

/// Label sets (without `__name__` and `job`) Prometheus lists for `metric`.
fn prometheus_series(addr: &str, metric: &str) -> BTreeSet<Vec<(String, String)>> {
    let (status, body) = http_get(addr, &format!("/api/v1/series?match%5B%5D={metric}"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"].as_array().unwrap().iter().map(prometheus_labels).collect()
}

/// A label set from Prometheus' API, without `__name__` and `job`, sorted.
fn prometheus_labels(labels: &serde_json::Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = labels
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__name__" && *k != "job")
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    out.sort();
    out
}

/// Starts Debian's node_exporter with only `collectors`: the process and
/// its address, once it answers.
fn start_exporter(collectors: &[&str]) -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let p = Proc(
        Command::new(need("prometheus-node-exporter"))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--collector.disable-defaults")
            .args(collectors.iter().map(|c| format!("--collector.{c}")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_http(&addr, "/metrics");
    (p, addr)
}

/// Starts Debian's Prometheus in `dir` with the configuration `config`
/// makes of its own address: the process and that address, once ready.
fn start_prometheus(dir: &std::path::Path, config: impl FnOnce(&str) -> String) -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    std::fs::write(dir.join("prometheus.yml"), config(&addr)).unwrap();
    let p = Proc(
        Command::new(need("prometheus"))
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_http(&addr, "/-/ready");
    (p, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_write_and_danaus_scrape_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (_exporter, exporter) = start_exporter(&["cpu", "loadavg", "meminfo"]);
    std::fs::write(
        dir.path().join("scrape.yml"),
        format!(
            "scrape_configs:\n  - job_name: node-direct\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    \
             static_configs:\n      - targets: ['{exporter}']\n"
        ),
    )
    .unwrap();
    let scrape = dir.path().join("scrape.yml");
    let danaus = Server::start(&dir.path().join("danaus"), &["--scrape-config", scrape.to_str().unwrap()]);
    let (_prom, prom) = start_prometheus(dir.path(), |_| {
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: node\n    \
             static_configs:\n      - targets: ['{exporter}']\nremote_write:\n  - url: http://{}/api/v1/write\n    \
             queue_config:\n      batch_send_deadline: 1s\n      max_samples_per_send: 5000\n",
            danaus.http
        )
    });

    let c = Client::connect(&danaus.grpc, None).await.unwrap();
    // Every metric Prometheus holds for the exporter (dozens: CPU, load,
    // memory, its own scrape series) arrives remote-written with the same
    // label sets; Danaus' own scrape yields the same, except the two series
    // only Prometheus' scraper writes.
    let prometheus_only = ["scrape_series_added", "scrape_samples_post_metric_relabeling"];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut names = Vec::new();
    while names.len() < 20 {
        assert!(Instant::now() < deadline, "Prometheus lists too few metrics: {names:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        names = prometheus_names(&prom);
    }
    assert!(names.iter().any(|n| n == "node_cpu_seconds_total") && names.iter().any(|n| n == "up"), "{names:?}");
    loop {
        let mut pending = Vec::new();
        for m in &names {
            let want = prometheus_series(&prom, m);
            let written = danaus_series(&c, m, "node").await;
            let scraped = if prometheus_only.contains(&m.as_str()) {
                want.clone()
            } else {
                danaus_series(&c, m, "node-direct").await
            };
            if want.is_empty() || want != written || want != scraped {
                pending.push(format!(
                    "{m}: prometheus {} series, remote-written {}, scraped {}",
                    want.len(),
                    written.len(),
                    scraped.len()
                ));
            }
        }
        if pending.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "series did not converge:\n{}", pending.join("\n"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The remote-written samples are Prometheus' own, timestamps and values
    // bit for bit: every sample it held a few seconds ago is in Danaus.
    let deadline = Instant::now() + Duration::from_secs(30);
    for m in ["node_cpu_seconds_total", "node_load1", "node_memory_MemTotal_bytes", "up", "scrape_duration_seconds"] {
        loop {
            let settled =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 - 5_000;
            let want = prometheus_points(&prom, m, settled);
            let got = danaus_points(&c, m, "node").await;
            let missing: Vec<_> = want.difference(&got).take(3).collect();
            if !want.is_empty() && missing.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "{m}: {} of Prometheus' samples missing, e.g. {missing:?}", want.len());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // Nothing Prometheus sent was refused.
    let (_, m) = http_get(&danaus.http, "/metrics");
    assert!(m.contains("danaus_remote_write_series_refused_total 0"), "{m}");
    assert!(m.contains("danaus_remote_write_failed_requests_total 0"), "{m}");
}

/// Percent-encodes a query parameter.
fn enc(q: &str) -> String {
    let mut out = String::new();
    for b in q.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every series (labels, sorted) a PromQL API lists for `match` over the
/// last `window_s` seconds before `at_s`.
fn api_series(addr: &str, matcher: &str, at_s: f64, window_s: f64) -> BTreeSet<Vec<(String, String)>> {
    let path = format!("/api/v1/series?match%5B%5D={}&start={}&end={at_s}", enc(matcher), at_s - window_s);
    let (status, body) = http_get(addr, &path);
    assert_eq!(status, 200, "{addr}{path}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"].as_array().unwrap().iter().map(all_labels).collect()
}

/// A label set from a PromQL API, every label, sorted.
fn all_labels(labels: &serde_json::Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        labels.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
    out.sort();
    out
}

/// An instant query's vector: (labels, value text), sorted.
fn api_instant(addr: &str, query: &str, at_s: f64) -> Vec<(Vec<(String, String)>, String)> {
    let path = format!("/api/v1/query?query={}&time={at_s}", enc(query));
    let (status, body) = http_get(addr, &path);
    assert_eq!(status, 200, "{addr}{path}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out: Vec<_> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (all_labels(&s["metric"]), s["value"][1].as_str().unwrap().to_owned()))
        .collect();
    out.sort();
    out
}

/// A counter of Prometheus' own `/metrics`, summed over its label sets.
fn prometheus_counter(addr: &str, name: &str) -> f64 {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Real fleets' label sets vary: Debian's Prometheus scrapes jobs whose
/// target labels differ (static labels on one job, none on another, a
/// third label on its own job), node_exporter's `node_network_info` has
/// `duplex` for some interfaces only, and `external_labels` are added to
/// everything it remote-writes. Danaus holds every series Prometheus holds,
/// with the same labels (plus the external ones) and values, and
/// Prometheus fails no sample.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varying_label_sets_from_several_jobs_arrive_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (_exporter, exporter) = start_exporter(&["loadavg", "netclass", "netdev", "uname"]);
    let danaus = Server::start(&dir.path().join("danaus"), &[]);
    let (_prom, prom) = start_prometheus(dir.path(), |prom| {
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    cluster: c1\n    \
             replica: r0\n\
             scrape_configs:\n\
             \x20 - job_name: node\n    static_configs:\n      - targets: ['{exporter}']\n        \
             labels: {{env: prod, team: infra}}\n\
             \x20 - job_name: node-plain\n    static_configs:\n      - targets: ['{exporter}']\n\
             \x20 - job_name: prometheus\n    static_configs:\n      - targets: ['{prom}']\n        \
             labels: {{role: self}}\n\
             remote_write:\n  - url: http://{}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n      \
             max_samples_per_send: 2000\n",
            danaus.http
        )
    });

    let external = [("cluster".to_owned(), "c1".to_owned()), ("replica".to_owned(), "r0".to_owned())];
    let with_external = |mut l: Vec<(String, String)>| {
        l.extend(external.iter().cloned());
        l.sort();
        l
    };
    let now_s = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    // Every series of the three jobs, as listed by both APIs over the
    // same window, which ends a few seconds back (the remote-write queue
    // lags its scrapes).
    let deadline = Instant::now() + Duration::from_secs(90);
    let all = "{job=~\"node|node-plain|prometheus\"}";
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let at = now_s() - 5.0;
        let want: BTreeSet<_> = api_series(&prom, all, at, 30.0).into_iter().map(with_external).collect();
        let got = api_series(&danaus.http, all, at, 30.0);
        let jobs: BTreeSet<&str> =
            want.iter().flat_map(|l| l.iter().filter(|(k, _)| k == "job").map(|(_, v)| v.as_str())).collect();
        if jobs.len() == 3 && want.len() > 300 && want.is_subset(&got) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of Prometheus' {} series are not in Danaus, e.g. {:?}",
            want.difference(&got).count(),
            want.len(),
            want.difference(&got).take(3).collect::<Vec<_>>()
        );
    }
    // The label sets that vary arrived as they are: `up` of each job with
    // its own target labels; interfaces with and without `duplex`.
    let at = now_s() - 5.0;
    let up = api_instant(&danaus.http, "up", at);
    let labels: BTreeSet<Vec<&str>> =
        up.iter().map(|(l, _)| l.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()).collect();
    assert!(labels.len() >= 3, "up has one label set per job's target labels: {labels:?}");
    // Instant queries at a settled time give what Prometheus gives.
    for q in [
        "up",
        "count by (job) (up)",
        "scrape_samples_scraped",
        "node_network_info",
        "node_network_info{duplex=\"\"}",
        "count by (job, env) ({__name__=~\"scrape_.*\"})",
        "node_load1{env=\"\"}",
        "prometheus_build_info{role=\"self\"}",
    ] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let want: Vec<_> = api_instant(&prom, q, at)
                .into_iter()
                .map(|(l, v)| (if q.starts_with("count") { l } else { with_external(l) }, v))
                .collect();
            let got = api_instant(&danaus.http, q, at);
            // `count by` drops the external labels on both sides.
            if !want.is_empty() && want == got {
                break;
            }
            assert!(Instant::now() < deadline, "{q}: Prometheus {want:?}\nDanaus {got:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // Prometheus sent samples and failed none.
    assert!(prometheus_counter(&prom, "prometheus_remote_storage_samples_total") > 1000.0);
    assert_eq!(prometheus_counter(&prom, "prometheus_remote_storage_samples_failed_total"), 0.0);
    let (_, m) = http_get(&danaus.http, "/metrics");
    assert!(m.contains("danaus_remote_write_series_refused_total 0"), "{m}");
}

/// The same scrape configuration — relabelling of every action, metric
/// relabelling, limits — run by Debian's Prometheus and by Danaus against
/// the same targets gives the same series, and the same `up`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_relabelling_matches_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let (_exporter, exporter) = start_exporter(&["loadavg", "netclass", "uname"]);
    let port = exporter.rsplit(':').next().unwrap().to_owned();
    // Two addresses of the one exporter; relabelling drops one.
    let jobs = format!(
        r#"scrape_configs:
  - job_name: relabel
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ['127.0.0.1:{port}', 'localhost:{port}']
        labels: {{__meta_zone: Eu-West, team: Infra, copy: infra}}
    relabel_configs:
      - source_labels: [__address__]
        regex: 'localhost:.*'
        action: drop
      - source_labels: [__address__]
        regex: '.*'
        action: keep
      - source_labels: [__address__]
        regex: '([^:]+):(\d+)'
        target_label: host
        replacement: 'h-${{1}}'
      - source_labels: [__address__]
        target_label: shard
        modulus: 8
        action: hashmod
      - regex: '__meta_(.+)'
        action: labelmap
      - source_labels: [zone]
        target_label: zone_lc
        action: lowercase
      - source_labels: [zone]
        target_label: zone_uc
        action: uppercase
      - source_labels: [team]
        target_label: copy
        action: dropequal
      - source_labels: [job]
        target_label: job
        action: keepequal
      - regex: 'copy'
        action: labeldrop
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'node_(load.*|network_info|network_mtu_bytes|uname_info)|up'
        action: keep
      - source_labels: [__name__, device]
        separator: '@'
        regex: 'node_network_mtu_bytes@lo'
        action: drop
      - source_labels: [device]
        regex: '(.*)'
        target_label: nic
        replacement: 'nic-$1'
      - regex: 'device|nodename|release|version|machine|sysname|domainname'
        action: labeldrop
      - regex: '__name__|host|shard|zone.*|team|job|instance|nic|operstate|duplex|address|broadcast|adminstate|ifalias|load.*'
        action: labelkeep
  - job_name: limited
    scrape_interval: 1s
    scrape_timeout: 1s
    sample_limit: 5
    static_configs:
      - targets: ['127.0.0.1:{port}']
"#
    );
    std::fs::write(dir.path().join("scrape.yml"), &jobs).unwrap();
    let scrape = dir.path().join("scrape.yml");
    let danaus = Server::start(&dir.path().join("danaus"), &["--scrape-config", scrape.to_str().unwrap()]);
    let (_prom, prom) = start_prometheus(dir.path(), |_| format!("global:\n  scrape_interval: 1s\n{jobs}"));
    let now_s = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    // Prometheus writes one series Danaus does not (`scrape_series_added`).
    let all = "{job=~\"relabel|limited\",__name__!=\"scrape_series_added\"}";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let at = now_s() - 2.0;
        let want = api_series(&prom, all, at, 3.0);
        let got = api_series(&danaus.http, all, at, 3.0);
        if want.len() > 8 && want == got {
            // Relabelling did what it says: spot checks on the agreed set.
            let up = want.iter().find(|l| {
                l.contains(&("__name__".into(), "up".into())) && l.contains(&("job".into(), "relabel".into()))
            });
            let up = up.expect("the relabelled job's up");
            for (k, v) in [("host", "h-127.0.0.1"), ("zone", "Eu-West"), ("zone_lc", "eu-west"), ("zone_uc", "EU-WEST")]
            {
                assert!(up.contains(&(k.to_owned(), v.to_owned())), "{k}={v} missing from {up:?}");
            }
            assert!(up.iter().any(|(k, _)| k == "shard") && !up.iter().any(|(k, _)| k == "copy"), "{up:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the series differ:\nonly Prometheus: {:?}\nonly Danaus: {:?}",
            want.difference(&got).take(5).collect::<Vec<_>>(),
            got.difference(&want).take(5).collect::<Vec<_>>()
        );
    }
    // The job over its sample_limit: the scrape fails in both, up is 0
    // and no sample of it is kept.
    let at = now_s() - 2.0;
    for q in [
        "up{job=\"limited\"}",
        "count({job=\"limited\",__name__!=\"scrape_series_added\"})",
        "up{job=\"relabel\"}",
        "scrape_samples_post_metric_relabeling{job=\"relabel\"}",
    ] {
        assert_eq!(api_instant(&prom, q, at), api_instant(&danaus.http, q, at), "{q}");
    }
    assert_eq!(api_instant(&danaus.http, "up{job=\"limited\"}", at)[0].1, "0");
}
