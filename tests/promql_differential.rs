//! Differential test against Prometheus 2.42 (Debian's package): the same
//! remote_write payloads go to Prometheus and to `danaus standalone`, then
//! hundreds of PromQL queries, instant and range, are asked of both HTTP
//! APIs. Answers must agree series for series, value for value (relative
//! error below 1e-6; NaN equals NaN). Deliberate differences are listed in
//! docs/promql-compat.md; none of them is exercised here.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use common::{free_port, http_get, remote_write, wait_http, Proc, Server};
use danaus_prom::prompb::v1;
use serde_json::Value;

const STALE: u64 = 0x7ff0_0000_0000_0002;
const STEP_MS: i64 = 15_000;
const SAMPLES: i64 = 120;

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The data set: counters with resets, gauges, classic histograms, a
/// series that goes stale and one with a gap; samples every 15 s.
fn data(t0: i64) -> Vec<v1::TimeSeries> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut out = Vec::new();
    let mut push = |labels: Vec<(&str, String)>, samples: Vec<(i64, f64)>| {
        out.push(v1::TimeSeries {
            labels: labels.into_iter().map(|(n, v)| v1::Label { name: n.into(), value: v }).collect(),
            samples: samples.into_iter().map(|(timestamp, value)| v1::Sample { value, timestamp }).collect(),
            histograms: vec![],
        });
    };
    for job in ["api", "db"] {
        for inst in 0..3 {
            let instance = format!("host-{inst}:9100");
            for code in ["200", "500"] {
                let mut v = 0.0;
                let samples = (0..SAMPLES)
                    .map(|i| {
                        // A restart now and then: the counter starts over.
                        if rng.below(40) == 0 {
                            v = 0.0;
                        }
                        v += rng.below(if code == "200" { 100 } else { 5 }) as f64;
                        (t0 + i * STEP_MS, v)
                    })
                    .collect();
                push(
                    vec![
                        ("__name__", "http_requests_total".into()),
                        ("job", job.into()),
                        ("instance", instance.clone()),
                        ("code", code.into()),
                    ],
                    samples,
                );
            }
            for mode in ["idle", "user", "system"] {
                let samples = (0..SAMPLES).map(|i| (t0 + i * STEP_MS, rng.below(1000) as f64 / 10.0)).collect();
                push(
                    vec![
                        ("__name__", "node_cpu".into()),
                        ("job", job.into()),
                        ("instance", instance.clone()),
                        ("mode", mode.into()),
                    ],
                    samples,
                );
            }
            let mut counts = [0.0f64; 4];
            let mut per_bucket: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 4];
            for i in 0..SAMPLES {
                let obs = rng.below(20) as f64;
                let split = [0.3, 0.6, 0.9, 1.0];
                for (b, share) in split.iter().enumerate() {
                    counts[b] += (obs * share).floor();
                    per_bucket[b].push((t0 + i * STEP_MS, counts[b]));
                }
            }
            for (b, le) in ["0.1", "0.5", "1", "+Inf"].iter().enumerate() {
                push(
                    vec![
                        ("__name__", "req_duration_seconds_bucket".into()),
                        ("job", job.into()),
                        ("instance", instance.clone()),
                        ("le", (*le).into()),
                    ],
                    per_bucket[b].clone(),
                );
            }
        }
    }
    // Goes stale two thirds of the way through.
    let stale_at = SAMPLES * 2 / 3;
    push(
        vec![("__name__", "temperature".into()), ("job", "env".into()), ("instance", "room-1".into())],
        (0..=stale_at)
            .map(|i| (t0 + i * STEP_MS, if i == stale_at { f64::from_bits(STALE) } else { 20.0 + (i % 7) as f64 }))
            .collect(),
    );
    // A gap of ten minutes (longer than the lookback) in the middle.
    push(
        vec![("__name__", "temperature".into()), ("job", "env".into()), ("instance", "room-2".into())],
        (0..SAMPLES)
            .filter(|i| !(40..80).contains(i))
            .map(|i| (t0 + i * STEP_MS, 15.0 + (i % 5) as f64 / 2.0))
            .collect(),
    );
    out
}

/// Sends `series` in time slices (Prometheus refuses out-of-order samples).
fn write_all(addr: &str, series: &[v1::TimeSeries]) {
    for slice in 0..4 {
        let ts: Vec<v1::TimeSeries> = series
            .iter()
            .map(|s| {
                let n = s.samples.len();
                let (a, b) = (n * slice / 4, n * (slice + 1) / 4);
                v1::TimeSeries { labels: s.labels.clone(), samples: s.samples[a..b].to_vec(), histograms: vec![] }
            })
            .filter(|s| !s.samples.is_empty())
            .collect();
        let (status, text) = remote_write(addr, &v1::WriteRequest { timeseries: ts, metadata: vec![] }, &[]);
        assert!(status == 204 || status == 200, "{addr}: {status} {text}");
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A query answer reduced to what must agree: the result type, and per
/// label set the (time, value) pairs.
type Answer = (String, BTreeMap<String, Vec<(i64, f64)>>);

fn ask(addr: &str, path: &str) -> Result<Answer, String> {
    let (status, body) = http_get(addr, path);
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if status != 200 {
        return Err(format!("{status} {}", v["errorType"].as_str().unwrap_or("?")));
    }
    let kind = v["data"]["resultType"].as_str().unwrap_or("").to_owned();
    let mut out = BTreeMap::new();
    let point = |p: &Value| -> (i64, f64) {
        let t = (p[0].as_f64().unwrap_or(f64::NAN) * 1000.0).round() as i64;
        let x = match p[1].as_str().unwrap_or("NaN") {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            s => s.parse().unwrap_or(f64::NAN),
        };
        (t, x)
    };
    match kind.as_str() {
        "scalar" | "string" => {
            out.insert(String::new(), vec![point(&v["data"]["result"])]);
        }
        _ => {
            for s in v["data"]["result"].as_array().cloned().unwrap_or_default() {
                let labels = s["metric"].to_string();
                let pts = match s.get("values") {
                    Some(vals) => vals.as_array().unwrap().iter().map(point).collect(),
                    None => vec![point(&s["value"])],
                };
                out.insert(labels, pts);
            }
        }
    }
    Ok((kind, out))
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() || a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= 1e-9 || diff / (a.abs() + b.abs()) < 1e-6
}

fn differ(p: &Answer, d: &Answer) -> Option<String> {
    if p.0 != d.0 {
        return Some(format!("result type {} vs {}", p.0, d.0));
    }
    if p.1.keys().ne(d.1.keys()) {
        let only_p: Vec<_> = p.1.keys().filter(|k| !d.1.contains_key(*k)).take(3).collect();
        let only_d: Vec<_> = d.1.keys().filter(|k| !p.1.contains_key(*k)).take(3).collect();
        return Some(format!("series differ: only Prometheus {only_p:?}, only Danaus {only_d:?}"));
    }
    for (k, pv) in &p.1 {
        let dv = &d.1[k];
        if pv.len() != dv.len() || pv.iter().zip(dv).any(|(a, b)| a.0 != b.0 || !close(a.1, b.1)) {
            let first = pv.iter().zip(dv).find(|(a, b)| a.0 != b.0 || !close(a.1, b.1));
            return Some(format!("{k}: {} vs {} points, first difference {first:?}", pv.len(), dv.len()));
        }
    }
    None
}

/// The queries: every function, operator and aggregation the evaluator
/// has, over the data set's shapes.
fn queries(t0: i64) -> Vec<String> {
    let mut q: Vec<String> = Vec::new();
    let counters = ["http_requests_total", "http_requests_total{job=\"api\"}", "http_requests_total{code=~\"5..\"}"];
    for f in ["rate", "irate", "increase", "delta", "idelta", "deriv", "resets", "changes"] {
        for c in counters {
            for w in ["1m", "5m"] {
                q.push(format!("{f}({c}[{w}])"));
            }
        }
    }
    for f in ["avg", "min", "max", "sum", "count", "stddev", "stdvar", "last", "present"] {
        for s in ["node_cpu{mode=\"user\"}", "temperature"] {
            for w in ["2m", "10m"] {
                q.push(format!("{f}_over_time({s}[{w}])"));
            }
        }
    }
    for s in ["node_cpu{mode=\"idle\"}", "temperature"] {
        q.push(format!("quantile_over_time(0.3, {s}[10m])"));
        q.push(format!("predict_linear({s}[10m], 600)"));
        q.push(format!("holt_winters({s}[10m], 0.5, 0.5)"));
        q.push(format!("absent_over_time({s}[1m])"));
        q.push(format!("timestamp({s})"));
    }
    for agg in ["sum", "avg", "min", "max", "count", "stddev", "stdvar", "group"] {
        for m in ["", " by (job)", " without (instance)", " by (code, job)"] {
            q.push(format!("{agg}{m} (rate(http_requests_total[5m]))"));
        }
    }
    for k in ["1", "3"] {
        q.push(format!("topk({k}, node_cpu)"));
        q.push(format!("bottomk by (job) ({k}, node_cpu)"));
    }
    q.push("quantile by (job) (0.9, node_cpu)".into());
    q.push("quantile(0.5, rate(http_requests_total[5m]))".into());
    q.push("count_values(\"value\", round(node_cpu / 10))".into());
    q.push("count_values by (mode) (\"v\", ceil(node_cpu / 25))".into());
    for f in ["abs", "ceil", "floor", "round", "sqrt", "ln", "log2", "log10", "exp", "sgn"] {
        q.push(format!("{f}(node_cpu{{mode=\"system\"}} / 10 - 3)"));
    }
    q.push("round(node_cpu, 5)".into());
    q.push("clamp(node_cpu, 20, 80)".into());
    q.push("clamp_min(node_cpu, 50)".into());
    q.push("clamp_max(node_cpu, 50)".into());
    for phi in ["0.5", "0.9", "0.99"] {
        q.push(format!("histogram_quantile({phi}, rate(req_duration_seconds_bucket[5m]))"));
        q.push(format!("histogram_quantile({phi}, sum by (le, job) (rate(req_duration_seconds_bucket[5m])))"));
    }
    for op in ["+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<="] {
        q.push(format!("node_cpu{{mode=\"user\"}} {op} 50"));
    }
    for op in ["==", "!=", ">", "<"] {
        q.push(format!("node_cpu {op} bool 50"));
        q.push(format!("50 {op} node_cpu{{job=\"db\"}}"));
    }
    q.extend(
        [
            "node_cpu{mode=\"user\"} + ignoring(mode) node_cpu{mode=\"system\"}",
            "node_cpu{mode=\"user\"} / on(job, instance) node_cpu{mode=\"idle\"}",
            "node_cpu > on(job, instance) group_left avg by (job, instance) (node_cpu)",
            "sum by (job, instance) (node_cpu) / on(job) group_left sum by (job) (node_cpu)",
            "avg by (job) (node_cpu) - on(job) group_right node_cpu{mode=\"idle\"}",
            "rate(http_requests_total{code=\"500\"}[5m]) / ignoring(code) rate(http_requests_total{code=\"200\"}[5m])",
            "node_cpu{mode=\"user\"} > bool on(job, instance) node_cpu{mode=\"idle\"}",
            "node_cpu and node_cpu{mode=\"idle\"}",
            "node_cpu and on(instance) node_cpu{instance=\"host-1:9100\", mode=\"idle\"}",
            "node_cpu unless node_cpu{job=\"api\"}",
            "node_cpu{mode=\"user\"} or temperature",
            "node_cpu{job=\"api\"} or on(instance) node_cpu{job=\"db\"}",
            "-node_cpu{mode=\"idle\"}",
            "2 * 3 + 4 ^ 2 % 5",
            "time()",
            "vector(time())",
            "scalar(sum(node_cpu{mode=\"idle\"}))",
            "scalar(node_cpu)",
            "absent(nonexistent{job=\"x\"})",
            "absent(node_cpu)",
            "label_replace(node_cpu{mode=\"idle\"}, \"host\", \"$1\", \"instance\", \"(.*):.*\")",
            "label_join(node_cpu{mode=\"user\"}, \"id\", \"/\", \"job\", \"instance\")",
            "sort_desc(sum by (instance) (node_cpu))",
            "day_of_week()",
            "hour(timestamp(temperature))",
            "minute()",
            "month()",
            "year()",
            "day_of_month()",
            "days_in_month()",
            "max_over_time(rate(http_requests_total{job=\"db\"}[1m])[10m:1m])",
            "avg_over_time(sum by (job) (node_cpu)[5m:30s])",
            "rate(http_requests_total{code=\"200\"}[5m] offset 5m)",
            "node_cpu{mode=\"idle\"} offset 10m",
            "sum(temperature) by (job)",
            "count(temperature)",
            "{__name__=~\"node_cpu|temperature\", job!=\"db\"}",
            "http_requests_total{instance=~\"host-[02].*\", code!=\"500\"}",
        ]
        .map(String::from),
    );
    let at = (t0 + 600_000) / 1000;
    q.push(format!("node_cpu{{mode=\"idle\"}} @ {at}"));
    q.push(format!("rate(http_requests_total{{job=\"api\"}}[5m] @ {at})"));
    q.push(format!("sum(node_cpu @ {at}) by (job)"));
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promql_matches_prometheus_2_42() {
    let prom_bin = "/usr/bin/prometheus";
    assert!(
        std::path::Path::new(prom_bin).exists(),
        "prometheus is missing: install Debian's prometheus (scripts/test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let prom = format!("127.0.0.1:{}", free_port());
    std::fs::write(dir.path().join("prometheus.yml"), "global:\n  scrape_interval: 1m\n").unwrap();
    let _prom = Proc(
        Command::new(prom_bin)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={prom}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let server = Server::start(&dir.path().join("danaus"), &[]);
    wait_http(&prom, "/-/ready");

    // Thirty minutes of data ending a minute ago, on a 15 s grid.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let t0 = (now - 60_000) / 60_000 * 60_000 - SAMPLES * STEP_MS;
    let series = data(t0);
    write_all(&prom, &series);
    write_all(&server.http, &series);

    let end = t0 + SAMPLES * STEP_MS;
    let instants = [t0 + 7 * 60_000 + 30_000, t0 + 20 * 60_000, end + 60_000, end + 6 * 60_000];
    let mut asked = 0;
    let mut answered = 0;
    let mut failures = Vec::new();
    for q in queries(t0) {
        let e = url_encode(&q);
        let mut paths: Vec<String> =
            instants.iter().map(|t| format!("/api/v1/query?query={e}&time={}.{:03}", t / 1000, t % 1000)).collect();
        paths.push(format!("/api/v1/query_range?query={e}&start={}&end={}&step=60", t0 / 1000, (end + 600_000) / 1000));
        paths.push(format!("/api/v1/query_range?query={e}&start={}&end={}&step=17", (t0 + 300_000) / 1000, end / 1000));
        for path in paths {
            asked += 1;
            let p = ask(&prom, &path);
            let d = ask(&server.http, &path);
            let problem = match (&p, &d) {
                (Ok(p), Ok(d)) => {
                    answered += usize::from(p.1.values().any(|pts| !pts.is_empty()));
                    differ(p, d)
                }
                (Err(a), Err(b)) if a.split(' ').next() == b.split(' ').next() => None,
                _ => Some(format!("Prometheus {:?} vs Danaus {:?}", p.as_ref().err(), d.as_ref().err())),
            };
            if let Some(problem) = problem {
                failures.push(format!("{q}\n    {path}\n    {problem}"));
            }
        }
    }
    assert!(queries(t0).len() >= 200, "only {} queries", queries(t0).len());
    eprintln!("{asked} evaluations of {} queries, {answered} with data", queries(t0).len());
    // Most evaluations must have something to compare: agreeing on empty
    // answers proves nothing.
    assert!(answered * 4 >= asked * 3, "only {answered} of {asked} evaluations returned data");
    assert!(
        failures.is_empty(),
        "{} of {asked} evaluations differ from Prometheus:\n{}",
        failures.len(),
        failures.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}
