//! Scraping Prometheus and OpenMetrics targets (pull).
//!
//! The configuration follows Prometheus' `scrape_configs` (a subset:
//! `job_name`, `scrape_interval`, `scrape_timeout`, `metrics_path`,
//! `scheme: http`, `honor_labels`, `honor_timestamps`, `static_configs`,
//! `file_sd_configs`). A manager task keeps one task per target; file
//! service discovery re-reads its files when they change. Each scrape
//! asks for OpenMetrics first (`Accept`), parses what the target sends,
//! adds the target's labels (`job`, `instance`, static and discovered
//! labels; on a clash the target wins unless `honor_labels`, and the
//! scraped label is kept as `exported_<name>`, as Prometheus does), adds
//! `up`, `scrape_duration_seconds` and `scrape_samples_scraped`, writes a
//! stale marker for every series that disappeared (and for all of them
//! when the scrape fails), and stores everything through the same path as
//! remote_write.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::labels::PromSeries;
use crate::remote_write::Receiver;
use crate::text::{self, Format, ACCEPT};

/// Prometheus' stale marker.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
/// Largest scrape body accepted.
pub const MAX_BODY: usize = 64 << 20;

/// A group of targets with shared labels (`static_configs` entries and
/// file-SD file contents).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TargetGroup {
    /// `host:port` of each target.
    pub targets: Vec<String>,
    /// Labels every target of the group gets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// File service discovery.
#[derive(Debug, Clone, Deserialize)]
pub struct FileSd {
    /// Files (JSON or YAML lists of target groups); `*` may stand for
    /// any part of a file name.
    pub files: Vec<String>,
    /// How often to look for changes (default 30s).
    pub refresh_interval: Option<String>,
}

/// One `scrape_configs` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct JobConfig {
    /// The `job` label.
    pub job_name: String,
    /// Default: the global one, else 1m.
    pub scrape_interval: Option<String>,
    /// Default: the global one, else 10s (at most the interval).
    pub scrape_timeout: Option<String>,
    /// Default `/metrics`.
    #[serde(default = "default_path")]
    pub metrics_path: String,
    /// Only `http`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Scraped labels win over target labels.
    #[serde(default)]
    pub honor_labels: bool,
    /// Use timestamps the target gives (default true).
    #[serde(default = "yes")]
    pub honor_timestamps: bool,
    /// Fixed targets.
    #[serde(default)]
    pub static_configs: Vec<TargetGroup>,
    /// Targets from files.
    #[serde(default)]
    pub file_sd_configs: Vec<FileSd>,
}

fn default_path() -> String {
    "/metrics".into()
}
fn default_scheme() -> String {
    "http".into()
}
fn yes() -> bool {
    true
}

/// Global defaults.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Global {
    /// Default interval.
    pub scrape_interval: Option<String>,
    /// Default timeout.
    pub scrape_timeout: Option<String>,
}

/// A scrape configuration file.
#[derive(Debug, Clone, Deserialize)]
pub struct ScrapeFile {
    /// Defaults.
    #[serde(default)]
    pub global: Global,
    /// Tenant the scraped data belongs to (default: the default tenant).
    pub tenant: Option<String>,
    /// The jobs.
    pub scrape_configs: Vec<JobConfig>,
}

/// A job with its durations resolved.
#[derive(Debug, Clone)]
pub struct Job {
    /// The configuration.
    pub config: JobConfig,
    /// Interval.
    pub interval: Duration,
    /// Timeout.
    pub timeout: Duration,
    /// File-SD refresh interval.
    pub refresh: Duration,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct ScrapeConfig {
    /// Tenant.
    pub tenant: String,
    /// Jobs.
    pub jobs: Vec<Job>,
    /// Directory relative file-SD paths are read from.
    pub base_dir: PathBuf,
}

fn duration(s: &Option<String>, what: &str, job: &str) -> Result<Option<Duration>, String> {
    match s {
        None => Ok(None),
        Some(s) => match danaus_model::time::parse_duration_ns(s.trim()) {
            Some(ns) if ns > 0 => Ok(Some(Duration::from_nanos(ns as u64))),
            _ => Err(format!("job {job:?}: {what} {s:?} is not a positive duration like 15s or 1m")),
        },
    }
}

impl ScrapeConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<ScrapeConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        ScrapeConfig::parse(&text, base).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str, base_dir: PathBuf) -> Result<ScrapeConfig, String> {
        let f: ScrapeFile = yaml_serde::from_str(text).map_err(|e| format!("not a scrape configuration: {e}"))?;
        let g_interval = duration(&f.global.scrape_interval, "global scrape_interval", "global")?;
        let g_timeout = duration(&f.global.scrape_timeout, "global scrape_timeout", "global")?;
        let mut names = HashSet::new();
        let mut jobs = Vec::new();
        for j in f.scrape_configs {
            if j.job_name.is_empty() {
                return Err("a scrape config has an empty job_name".into());
            }
            if !names.insert(j.job_name.clone()) {
                return Err(format!("job_name {:?} appears twice", j.job_name));
            }
            if j.scheme != "http" {
                return Err(format!("job {:?}: scheme {:?} is not supported yet; use http", j.job_name, j.scheme));
            }
            if !j.metrics_path.starts_with('/') {
                return Err(format!("job {:?}: metrics_path {:?} must start with /", j.job_name, j.metrics_path));
            }
            let interval = duration(&j.scrape_interval, "scrape_interval", &j.job_name)?
                .or(g_interval)
                .unwrap_or(Duration::from_secs(60));
            let timeout = duration(&j.scrape_timeout, "scrape_timeout", &j.job_name)?
                .or(g_timeout)
                .unwrap_or(Duration::from_secs(10))
                .min(interval);
            if j.scrape_timeout.is_some()
                && duration(&j.scrape_timeout, "scrape_timeout", &j.job_name)? > Some(interval)
            {
                return Err(format!("job {:?}: scrape_timeout is longer than scrape_interval", j.job_name));
            }
            let refresh = j
                .file_sd_configs
                .iter()
                .filter_map(|f| f.refresh_interval.clone())
                .map(|r| duration(&Some(r), "refresh_interval", &j.job_name))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(Duration::from_secs(30));
            for t in j.static_configs.iter().flat_map(|g| &g.targets) {
                check_target(t).map_err(|e| format!("job {:?}: {e}", j.job_name))?;
            }
            jobs.push(Job { config: j, interval, timeout, refresh });
        }
        Ok(ScrapeConfig { tenant: f.tenant.unwrap_or_else(|| danaus_model::DEFAULT_TENANT.to_owned()), jobs, base_dir })
    }
}

fn check_target(t: &str) -> Result<(), String> {
    if t.contains("://") || t.contains('/') || !t.contains(':') {
        return Err(format!("target {t:?} must be host:port"));
    }
    Ok(())
}

/// One target to scrape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Target {
    job: usize,
    address: String,
    labels: BTreeMap<String, String>,
}

fn matches_glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((pre, post)) => name.len() >= pre.len() + post.len() && name.starts_with(pre) && name.ends_with(post),
    }
}

/// Files a file-SD pattern names, with their modification times.
fn sd_files(base: &Path, pattern: &str) -> Vec<(PathBuf, Option<SystemTime>)> {
    let p = base.join(pattern);
    let (Some(dir), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str())) else { return Vec::new() };
    let mut out = Vec::new();
    if name.contains('*') {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_name().to_str().is_some_and(|n| matches_glob(name, n)) {
                    out.push((e.path(), e.metadata().and_then(|m| m.modified()).ok()));
                }
            }
        }
    } else {
        out.push((p.clone(), std::fs::metadata(&p).and_then(|m| m.modified()).ok()));
    }
    out.sort();
    out
}

fn read_groups(path: &Path) -> Result<Vec<TargetGroup>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let groups: Vec<TargetGroup> = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        yaml_serde::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    };
    for t in groups.iter().flat_map(|g| &g.targets) {
        check_target(t).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(groups)
}

/// Runs the scrapes of a configuration until stopped.
pub struct Scraper {
    stop: watch::Sender<bool>,
    manager: JoinHandle<()>,
}

impl Scraper {
    /// Starts scraping into `receiver`.
    pub fn start(cfg: ScrapeConfig, receiver: Arc<Receiver>) -> Scraper {
        let (stop, stopped) = watch::channel(false);
        let manager = tokio::spawn(manage(Arc::new(cfg), receiver, stopped));
        Scraper { stop, manager }
    }

    /// Stops every scrape and waits for the tasks to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.manager.await;
    }
}

/// What a target's scrape loop is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// Keep scraping.
    Go,
    /// The target left the configuration: mark its series stale and stop.
    Removed,
    /// The scraper stops (shutdown): stop, as Prometheus does, without
    /// marking anything stale.
    Shutdown,
}

async fn manage(cfg: Arc<ScrapeConfig>, receiver: Arc<Receiver>, mut stopped: watch::Receiver<bool>) {
    let mut running: HashMap<Target, (watch::Sender<Run>, JoinHandle<()>)> = HashMap::new();
    // Per discovery file: its modification time and when it was last read.
    let mut seen_files: HashMap<PathBuf, (Option<SystemTime>, Instant)> = HashMap::new();
    let mut sd_groups: HashMap<PathBuf, Vec<TargetGroup>> = HashMap::new();
    let tick = cfg.jobs.iter().map(|j| j.refresh).min().unwrap_or(Duration::from_secs(30)).min(Duration::from_secs(5));
    loop {
        // File SD: re-read files that changed (or appeared, or went away),
        // and every refresh interval in any case: a rewrite within the file
        // system's timestamp granularity leaves the time unchanged.
        let mut current = HashSet::new();
        for j in &cfg.jobs {
            for f in j.config.file_sd_configs.iter().flat_map(|f| &f.files) {
                for (path, mtime) in sd_files(&cfg.base_dir, f) {
                    current.insert(path.clone());
                    let stale =
                        seen_files.get(&path).is_none_or(|(seen, read)| *seen != mtime || read.elapsed() >= j.refresh);
                    if stale {
                        match read_groups(&path) {
                            Ok(g) => {
                                sd_groups.insert(path.clone(), g);
                            }
                            // Keep the last good version, as Prometheus does.
                            Err(e) => tracing::warn!(error = %e, "file service discovery"),
                        }
                        seen_files.insert(path, (mtime, Instant::now()));
                    }
                }
            }
        }
        sd_groups.retain(|p, _| current.contains(p));
        seen_files.retain(|p, _| current.contains(p));

        let mut desired = HashSet::new();
        for (ji, j) in cfg.jobs.iter().enumerate() {
            let mut groups: Vec<&TargetGroup> = j.config.static_configs.iter().collect();
            for f in j.config.file_sd_configs.iter().flat_map(|f| &f.files) {
                for (path, _) in sd_files(&cfg.base_dir, f) {
                    groups.extend(sd_groups.get(&path).into_iter().flatten());
                }
            }
            for g in groups {
                for t in &g.targets {
                    // Keyed by the labels it will carry: a change in
                    // dropped labels (`__meta_*`) is no new target.
                    let labels = g
                        .labels
                        .iter()
                        .filter(|(k, v)| !k.starts_with("__") && !v.is_empty())
                        .map(|(k, v)| (k.clone(), v.clone()));
                    desired.insert(Target { job: ji, address: t.clone(), labels: labels.collect() });
                }
            }
        }
        running.retain(|t, (stop, _)| {
            let keep = desired.contains(t);
            if !keep {
                let _ = stop.send(Run::Removed);
            }
            keep
        });
        for t in desired {
            if let std::collections::hash_map::Entry::Vacant(e) = running.entry(t) {
                let (stop, stopped) = watch::channel(Run::Go);
                let task = tokio::spawn(scrape_loop(cfg.clone(), e.key().clone(), receiver.clone(), stopped));
                e.insert((stop, task));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
    }
    for (_, (stop, task)) in running {
        let _ = stop.send(Run::Shutdown);
        let _ = task.await;
    }
}

/// A target's labels, as Prometheus sets them: its group's labels, with
/// `job` (the job's name) and `instance` (the address) where the group sets
/// none; labels starting with `__` are internal and dropped.
fn target_labels(cfg: &ScrapeConfig, t: &Target) -> BTreeMap<String, String> {
    let mut l = t.labels.clone();
    l.retain(|k, v| !k.starts_with("__") && !v.is_empty());
    l.entry("job".into()).or_insert_with(|| cfg.jobs[t.job].config.job_name.clone());
    l.entry("instance".into()).or_insert_with(|| t.address.clone());
    l
}

async fn scrape_loop(cfg: Arc<ScrapeConfig>, t: Target, receiver: Arc<Receiver>, mut stopped: watch::Receiver<Run>) {
    let job = &cfg.jobs[t.job];
    // Spread targets over the interval, deterministically per target.
    let h = t.address.bytes().fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
    let offset = Duration::from_millis(h % job.interval.as_millis().max(1) as u64);
    tokio::select! {
        _ = tokio::time::sleep(offset) => {}
        _ = stopped.wait_for(|s| *s != Run::Go) => return,
    }
    let mut ticker = tokio::time::interval(job.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: HashSet<Vec<(String, String)>> = HashSet::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.wait_for(|s| *s != Run::Go) => break,
        }
        previous = scrape_once(&cfg, &t, &receiver, previous).await;
    }
    if *stopped.borrow() == Run::Removed && !previous.is_empty() {
        // Prometheus ends a removed target's series, its `up` included,
        // with stale markers, so queries stop showing them at once.
        let now_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let markers: Vec<PromSeries> = previous.into_iter().map(|labels| stale_marker(labels, now_ms)).collect();
        if let Err(reply) = receiver.write_series(&cfg.tenant, markers).await {
            tracing::warn!(target = %t.address, status = reply.status, body = %reply.body.trim(), "storing stale markers for a removed target failed");
        }
    }
}

fn stale_marker(labels: Vec<(String, String)>, now_ms: i64) -> PromSeries {
    PromSeries {
        labels,
        samples: vec![(now_ms, f64::from_bits(STALE_NAN))],
        histograms: 0,
        metric_type: 0,
        help: String::new(),
        unit: String::new(),
        created_ms: None,
    }
}

/// One scrape of `t`: returns the label sets it produced (for staleness).
async fn scrape_once(
    cfg: &ScrapeConfig,
    t: &Target,
    receiver: &Receiver,
    previous: HashSet<Vec<(String, String)>>,
) -> HashSet<Vec<(String, String)>> {
    let job = &cfg.jobs[t.job];
    let now_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let started = Instant::now();
    let got = tokio::time::timeout(job.timeout, http_get(&t.address, &job.config.metrics_path)).await;
    let parsed = match got {
        Ok(Ok((200, ct, body))) => text::parse(&body, Format::from_content_type(ct.as_deref())),
        Ok(Ok((status, _, _))) => Err(format!("HTTP status {status}")),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within the {:?} scrape timeout", job.timeout)),
    };
    let tl = target_labels(cfg, t);
    let mut series = Vec::new();
    let mut current = HashSet::new();
    let scraped = match parsed {
        Ok(exposition) => {
            for s in &exposition.samples {
                let labels = merge_labels(&tl, &s.labels, &s.name, job.config.honor_labels);
                let ts = if job.config.honor_timestamps { s.timestamp_ms.unwrap_or(now_ms) } else { now_ms };
                let fam = exposition.family_of(&s.name);
                current.insert(labels.clone());
                series.push(PromSeries {
                    labels,
                    samples: vec![(ts, s.value)],
                    histograms: 0,
                    metric_type: fam.map_or(0, |f| f.r#type),
                    help: fam.map(|f| f.help.clone()).unwrap_or_default(),
                    unit: fam.map(|f| f.unit.clone()).unwrap_or_default(),
                    created_ms: None,
                });
            }
            Some(exposition.samples.len())
        }
        Err(e) => {
            tracing::debug!(target = %t.address, error = %e, "scrape failed");
            None
        }
    };
    let synthetic = |name: &str, v: f64, help: &str| {
        let mut labels: Vec<(String, String)> = vec![("__name__".into(), name.into())];
        labels.extend(tl.iter().map(|(k, v)| (k.clone(), v.clone())));
        labels.sort();
        PromSeries {
            labels,
            samples: vec![(now_ms, v)],
            histograms: 0,
            metric_type: 2,
            help: help.into(),
            unit: String::new(),
            created_ms: None,
        }
    };
    series.push(synthetic("up", if scraped.is_some() { 1.0 } else { 0.0 }, "1 if the last scrape succeeded."));
    series.push(synthetic("scrape_duration_seconds", started.elapsed().as_secs_f64(), "How long the scrape took."));
    series.push(synthetic("scrape_samples_scraped", scraped.unwrap_or(0) as f64, "Samples the target exposed."));
    // The synthetic series end with the target too.
    current.extend(series[series.len() - 3..].iter().map(|s| s.labels.clone()));
    // Series that were there last time and are not now get a stale marker.
    for gone in previous.difference(&current) {
        series.push(stale_marker(gone.clone(), now_ms));
    }
    match receiver.write_series(&cfg.tenant, series).await {
        Ok(w) if !w.refused.is_empty() => {
            tracing::warn!(target = %t.address, refused = w.refused.len(), first = %w.refused[0].2, "scraped series refused");
        }
        Ok(_) => {}
        Err(reply) => {
            tracing::warn!(target = %t.address, status = reply.status, body = %reply.body.trim(), "storing a scrape failed");
            // Nothing of this scrape was stored, its stale markers
            // included: keep what went before so the next scrape sends them.
            current.extend(previous);
        }
    }
    current
}

/// Target labels plus scraped labels, sorted, with `__name__`. On a clash
/// the target's label wins and the scraped one becomes `exported_<name>`,
/// unless `honor_labels`.
fn merge_labels(
    target: &BTreeMap<String, String>,
    scraped: &[(String, String)],
    name: &str,
    honor: bool,
) -> Vec<(String, String)> {
    let mut out: BTreeMap<String, String> = target.clone();
    for (k, v) in scraped {
        if !out.contains_key(k) || honor {
            out.insert(k.clone(), v.clone());
        } else if !v.is_empty() {
            out.insert(format!("exported_{k}"), v.clone());
        }
    }
    out.insert("__name__".into(), name.to_owned());
    out.retain(|_, v| !v.is_empty());
    out.into_iter().collect()
}

async fn http_get(address: &str, path: &str) -> Result<(u16, Option<String>, String), String> {
    let stream = tokio::net::TcpStream::connect(address).await.map_err(|e| format!("connecting to {address}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {address}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, address)
        .header(hyper::header::ACCEPT, ACCEPT)
        .header(hyper::header::USER_AGENT, concat!("danaus/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("building the request: {e}"))?;
    let resp = sender.send_request(req).await.map_err(|e| format!("GET {address}{path}: {e}"))?;
    let status = resp.status().as_u16();
    let ct = resp.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading {address}{path}: {e}"))?
        .to_bytes();
    let body =
        String::from_utf8(body.to_vec()).map_err(|_| format!("{address}{path} sent a body that is not UTF-8"))?;
    Ok((status, ct, body))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn labels_merge_as_prometheus_does() {
        let target: BTreeMap<String, String> =
            [("job".to_owned(), "node".to_owned()), ("instance".to_owned(), "h:1".to_owned())].into();
        let scraped = vec![("job".to_owned(), "other".to_owned()), ("mode".to_owned(), "idle".to_owned())];
        let l = merge_labels(&target, &scraped, "cpu", false);
        assert!(l.contains(&("job".into(), "node".into())) && l.contains(&("exported_job".into(), "other".into())));
        let l = merge_labels(&target, &scraped, "cpu", true);
        assert!(l.contains(&("job".into(), "other".into())) && !l.iter().any(|(k, _)| k == "exported_job"));
        assert_eq!(l[0], ("__name__".into(), "cpu".into()));
    }

    #[test]
    fn a_groups_job_and_instance_labels_win_and_internal_labels_go() {
        let ok = "scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:9100']\n";
        let c = ScrapeConfig::parse(ok, PathBuf::new()).unwrap();
        let t = |labels: &[(&str, &str)]| Target {
            job: 0,
            address: "127.0.0.1:9100".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let l = target_labels(&c, &t(&[]));
        assert_eq!(l.get("job").map(String::as_str), Some("node"));
        assert_eq!(l.get("instance").map(String::as_str), Some("127.0.0.1:9100"));
        let l = target_labels(&c, &t(&[("job", "custom"), ("instance", "db-1"), ("__meta_x", "y"), ("env", "prod")]));
        assert_eq!(l.get("job").map(String::as_str), Some("custom"));
        assert_eq!(l.get("instance").map(String::as_str), Some("db-1"));
        assert!(!l.contains_key("__meta_x"));
        assert_eq!(l.get("env").map(String::as_str), Some("prod"));
    }

    #[test]
    fn config_errors_are_clear() {
        let base = PathBuf::new();
        let ok = "scrape_configs:\n  - job_name: node\n    scrape_interval: 15s\n    static_configs:\n      - targets: ['127.0.0.1:9100']\n";
        let c = ScrapeConfig::parse(ok, base.clone()).unwrap();
        assert_eq!(c.jobs[0].interval, Duration::from_secs(15));
        assert_eq!(c.jobs[0].timeout, Duration::from_secs(10));
        for (text, want) in [
            ("scrape_configs:\n  - job_name: a\n  - job_name: a\n", "appears twice"),
            ("scrape_configs:\n  - job_name: a\n    scrape_interval: soon\n", "not a positive duration"),
            ("scrape_configs:\n  - job_name: a\n    scheme: https\n", "not supported yet"),
            ("scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['http://x:1/m']\n", "host:port"),
            ("scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n", "longer than"),
            ("nonsense: [", "not a scrape configuration"),
        ] {
            let e = ScrapeConfig::parse(text, base.clone()).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn globs() {
        assert!(matches_glob("*.json", "a.json"));
        assert!(matches_glob("targets-*.yml", "targets-1.yml"));
        assert!(!matches_glob("*.json", "a.yaml"));
    }
}
