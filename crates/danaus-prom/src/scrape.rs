//! Scraping Prometheus and OpenMetrics targets (pull).
//!
//! The configuration follows Prometheus' `scrape_configs`: `job_name`,
//! intervals and timeouts, `metrics_path`, `scheme` (http or https, with
//! `tls_config`), `params`, `basic_auth`, `authorization` and
//! `bearer_token` (secrets inline or in files read at each scrape),
//! `honor_labels`, `honor_timestamps`, `static_configs`, `file_sd_configs`,
//! `relabel_configs`, `metric_relabel_configs` (danaus-prom::relabel) and
//! the sample, label and body limits. A key it does not implement is an
//! error naming the key and its line. A manager task keeps one task per
//! target, as relabelling made it; file service discovery re-reads its
//! files when they change. Each job has one HTTP client (reqwest over
//! rustls: connections kept alive between scrapes, gzip). Each scrape asks
//! for OpenMetrics first (`Accept`), parses what the target sends, adds
//! the target's labels (on a clash the target wins unless `honor_labels`,
//! and the scraped label is kept as `exported_<name>`, as Prometheus
//! does), applies metric relabelling and the limits (breaking one fails
//! the scrape), adds `up`, `scrape_duration_seconds`,
//! `scrape_samples_scraped` and `scrape_samples_post_metric_relabeling`,
//! writes a stale marker for every series that disappeared (and for all
//! of them when the scrape fails), and stores everything through the same
//! path as remote_write.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::labels::PromSeries;
use crate::relabel::{compile_all, relabel, LabelSet, RelabelConfig, Rule};
use crate::remote_write::Receiver;
use crate::text::{self, Format, ACCEPT};

/// Prometheus' stale marker.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
/// Largest scrape body accepted.
pub const MAX_BODY: usize = 64 << 20;

/// A group of targets with shared labels (`static_configs` entries and
/// file-SD file contents).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    /// `host:port` of each target.
    pub targets: Vec<String>,
    /// Labels every target of the group gets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// File service discovery.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSd {
    /// Files (JSON or YAML lists of target groups); `*` may stand for
    /// any part of a file name.
    pub files: Vec<String>,
    /// How often to look for changes (default 30s).
    pub refresh_interval: Option<String>,
}

/// `tls_config`: how an https target is verified and whom to present.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificates (PEM) that sign the targets' certificates; without
    /// it, the system's.
    pub ca_file: Option<String>,
    /// Client certificate (PEM), with `key_file`.
    pub cert_file: Option<String>,
    /// Client key (PEM), with `cert_file`.
    pub key_file: Option<String>,
    /// Accept any certificate (tests, labs).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `basic_auth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password, or
    pub password: Option<String>,
    /// a file holding it (read at each scrape).
    pub password_file: Option<String>,
}

/// `authorization`: an `Authorization` header.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// Scheme (default `Bearer`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Credentials, or
    pub credentials: Option<String>,
    /// a file holding them (read at each scrape).
    pub credentials_file: Option<String>,
}

/// One `scrape_configs` entry. A key Prometheus has that Danaus does
/// not implement is an error naming it (and its line), never ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// `http` or `https`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// For https targets.
    pub tls_config: Option<TlsConfig>,
    /// Basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// An `Authorization` header.
    pub authorization: Option<Authorization>,
    /// `Authorization: Bearer …` (Prometheus' older spelling).
    pub bearer_token: Option<String>,
    /// The same, from a file.
    pub bearer_token_file: Option<String>,
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
    /// URL parameters (`__param_<name>` labels before relabelling).
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// Applied to each target's labels before it is scraped.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Applied to each scraped sample's labels before it is stored.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// More samples than this after metric relabelling fails the scrape.
    pub sample_limit: Option<u64>,
    /// A series with more labels than this fails the scrape.
    pub label_limit: Option<u64>,
    /// A label name longer than this fails the scrape.
    pub label_name_length_limit: Option<u64>,
    /// A label value longer than this fails the scrape.
    pub label_value_length_limit: Option<u64>,
    /// A body larger than this (`10MB`, `512KiB`) fails the scrape.
    pub body_size_limit: Option<String>,
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
#[serde(deny_unknown_fields)]
pub struct Global {
    /// Default interval.
    pub scrape_interval: Option<String>,
    /// Default timeout.
    pub scrape_timeout: Option<String>,
}

/// A scrape configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// `relabel_configs`, compiled.
    pub relabel: Vec<Rule>,
    /// `metric_relabel_configs`, compiled.
    pub metric_relabel: Vec<Rule>,
    /// `body_size_limit` in bytes (at most [`MAX_BODY`]).
    pub body_limit: usize,
    /// The job's HTTP client: TLS as configured, connections kept alive
    /// between scrapes, gzip.
    pub client: reqwest::Client,
    /// What goes in each request's `Authorization` header.
    pub auth: Option<Auth>,
}

/// A job's credentials, files resolved against the configuration's
/// directory.
#[derive(Debug, Clone)]
pub enum Auth {
    /// User and password (or its file).
    Basic(String, Secret),
    /// Scheme and credentials (or their file).
    Header(String, Secret),
}

/// A secret given inline or in a file read at each scrape (so a rotated
/// token is picked up without a restart, as in Prometheus).
#[derive(Debug, Clone)]
pub enum Secret {
    /// Inline.
    Inline(String),
    /// In this file.
    File(PathBuf),
}

impl Secret {
    fn of(inline: &Option<String>, file: &Option<String>, base: &Path, what: &str) -> Result<Secret, String> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(format!("{what}: give the secret or its file, not both")),
            (Some(s), None) => Ok(Secret::Inline(s.clone())),
            (None, Some(f)) => Ok(Secret::File(base.join(f))),
            (None, None) => Ok(Secret::Inline(String::new())),
        }
    }

    fn read(&self) -> Result<String, String> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::File(p) => std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .map_err(|e| format!("reading {}: {e}", p.display())),
        }
    }
}

/// A job's credentials, checked: at most one kind.
fn auth(c: &JobConfig, base: &Path) -> Result<Option<Auth>, String> {
    let kinds =
        [c.basic_auth.is_some(), c.authorization.is_some(), c.bearer_token.is_some() || c.bearer_token_file.is_some()];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err("basic_auth, authorization and bearer_token are exclusive: give one".into());
    }
    if let Some(b) = &c.basic_auth {
        return Ok(Some(Auth::Basic(
            b.username.clone(),
            Secret::of(&b.password, &b.password_file, base, "basic_auth")?,
        )));
    }
    if let Some(a) = &c.authorization {
        let kind = a.kind.clone().unwrap_or_else(|| "Bearer".into());
        if kind.eq_ignore_ascii_case("basic") {
            return Err("authorization type Basic: use basic_auth".into());
        }
        return Ok(Some(Auth::Header(kind, Secret::of(&a.credentials, &a.credentials_file, base, "authorization")?)));
    }
    if c.bearer_token.is_some() || c.bearer_token_file.is_some() {
        return Ok(Some(Auth::Header(
            "Bearer".into(),
            Secret::of(&c.bearer_token, &c.bearer_token_file, base, "bearer_token")?,
        )));
    }
    Ok(None)
}

/// A job's HTTP client.
fn client(c: &JobConfig, base: &Path, interval: Duration) -> Result<reqwest::Client, String> {
    let read = |f: &str| {
        let p = base.join(f);
        std::fs::read(&p).map_err(|e| format!("tls_config: reading {}: {e}", p.display()))
    };
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(concat!("danaus/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(interval.saturating_mul(2).max(Duration::from_secs(90)))
        .pool_max_idle_per_host(2);
    if let Some(t) = &c.tls_config {
        if let Some(ca) = &t.ca_file {
            let pem = read(ca)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("tls_config: ca_file {ca:?} holds no PEM certificate: {e}"))?;
            if certs.is_empty() {
                return Err(format!("tls_config: ca_file {ca:?} holds no PEM certificate"));
            }
            b = b.tls_built_in_root_certs(false);
            for cert in certs {
                b = b.add_root_certificate(cert);
            }
        }
        match (&t.cert_file, &t.key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = read(cert)?;
                pem.push(b'\n');
                pem.extend(read(key)?);
                let id = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| format!("tls_config: cert_file {cert:?} with key_file {key:?}: {e}"))?;
                b = b.identity(id);
            }
            (None, None) => {}
            _ => return Err("tls_config: cert_file and key_file go together".into()),
        }
        if t.insecure_skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
    }
    b.build().map_err(|e| format!("building the HTTP client: {}", chain(&e)))
}

/// An error with its causes, which reqwest keeps apart.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
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
            if j.scheme != "http" && j.scheme != "https" {
                return Err(format!("job {:?}: scheme {:?} is neither http nor https", j.job_name, j.scheme));
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
            let job = |e: String| format!("job {:?}: {e}", j.job_name);
            let relabel = compile_all(&j.relabel_configs, "relabel_configs").map_err(job)?;
            let metric_relabel = compile_all(&j.metric_relabel_configs, "metric_relabel_configs").map_err(job)?;
            let body_limit = match &j.body_size_limit {
                None => MAX_BODY,
                Some(b) => parse_bytes(b).map_err(job)?.min(MAX_BODY),
            };
            let auth = auth(&j, &base_dir).map_err(job)?;
            let client = client(&j, &base_dir, interval).map_err(job)?;
            jobs.push(Job { config: j, interval, timeout, refresh, relabel, metric_relabel, body_limit, client, auth });
        }
        Ok(ScrapeConfig { tenant: f.tenant.unwrap_or_else(|| danaus_model::DEFAULT_TENANT.to_owned()), jobs, base_dir })
    }
}

/// A size as Prometheus writes one (`512`, `10KB`, `1MiB`, powers of
/// 1024 either way), in bytes; 0 means no limit.
fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "KiB" => 1 << 10,
        "MB" | "MiB" => 1 << 20,
        "GB" | "GiB" => 1 << 30,
        "TB" | "TiB" => 1 << 40,
        _ => return Err(format!("body_size_limit {s:?} is not a size like 10MB")),
    };
    let n: u64 = n.parse().map_err(|_| format!("body_size_limit {s:?} is not a size like 10MB"))?;
    let bytes = n.checked_mul(mult).ok_or_else(|| format!("body_size_limit {s:?} is too large"))?;
    Ok(if bytes == 0 { usize::MAX } else { usize::try_from(bytes).unwrap_or(usize::MAX) })
}

fn check_target(t: &str) -> Result<(), String> {
    if t.contains("://") || t.contains('/') || !t.contains(':') {
        return Err(format!("target {t:?} must be host:port"));
    }
    Ok(())
}

/// One target to scrape, as relabelling left it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Target {
    job: usize,
    /// `host:port`.
    address: String,
    /// `http` or `https`.
    scheme: String,
    /// Path and query string.
    path: String,
    /// The labels its series get (`job` and `instance` among them).
    labels: BTreeMap<String, String>,
}

/// A target from its group's labels, as Prometheus makes one: the group's
/// labels, `__address__`, and where the group sets none `job`,
/// `__scheme__`, `__metrics_path__`, `__scrape_interval__`,
/// `__scrape_timeout__` and a `__param_<name>` per parameter; then the
/// job's `relabel_configs`; then `instance` from `__address__` if unset,
/// and labels starting with `__` removed. `None` when relabelling dropped
/// it; `Err` when it left no valid address.
fn populate(job: &Job, ji: usize, group: &BTreeMap<String, String>, address: &str) -> Result<Option<Target>, String> {
    let c = &job.config;
    let mut l: LabelSet = group.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.clone(), v.clone())).collect();
    l.insert("__address__".into(), address.to_owned());
    let secs = |d: Duration| {
        let ms = d.as_millis();
        if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    };
    let mut defaults = vec![
        ("job".to_owned(), c.job_name.clone()),
        ("__scheme__".to_owned(), c.scheme.clone()),
        ("__metrics_path__".to_owned(), c.metrics_path.clone()),
        ("__scrape_interval__".to_owned(), secs(job.interval)),
        ("__scrape_timeout__".to_owned(), secs(job.timeout)),
    ];
    for (k, v) in &c.params {
        if let Some(first) = v.first() {
            defaults.push((format!("__param_{k}"), first.clone()));
        }
    }
    for (k, v) in defaults {
        if !l.contains_key(&k) && !v.is_empty() {
            l.insert(k, v);
        }
    }
    let Some(mut l) = relabel(l, &job.relabel) else { return Ok(None) };
    let address = l.get("__address__").cloned().unwrap_or_default();
    check_target(&address).map_err(|e| format!("after relabelling: {e}"))?;
    l.entry("instance".into()).or_insert_with(|| address.clone());
    let scheme = l.get("__scheme__").cloned().unwrap_or_else(|| "http".into());
    if scheme != "http" && scheme != "https" {
        return Err(format!("after relabelling: scheme {scheme:?} is neither http nor https"));
    }
    let mut path = l.get("__metrics_path__").cloned().unwrap_or_else(default_path);
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    // Parameters: every value of those relabelling left alone, the
    // relabelled value of the others.
    let mut query: Vec<(String, String)> = Vec::new();
    for (k, v) in &c.params {
        match l.get(&format!("__param_{k}")) {
            Some(p) if v.first() == Some(p) => query.extend(v.iter().map(|x| (k.clone(), x.clone()))),
            Some(p) => query.push((k.clone(), p.clone())),
            None => {}
        }
    }
    for (k, v) in &l {
        if let Some(name) = k.strip_prefix("__param_") {
            if !c.params.contains_key(name) {
                query.push((name.to_owned(), v.clone()));
            }
        }
    }
    if !query.is_empty() {
        let enc = |s: &str| {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        };
        let q: Vec<String> = query.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
        path.push(if path.contains('?') { '&' } else { '?' });
        path.push_str(&q.join("&"));
    }
    l.retain(|k, _| !k.starts_with("__"));
    Ok(Some(Target { job: ji, address, scheme, path, labels: l }))
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
            let mut groups: Vec<(&TargetGroup, Option<PathBuf>)> =
                j.config.static_configs.iter().map(|g| (g, None)).collect();
            for f in j.config.file_sd_configs.iter().flat_map(|f| &f.files) {
                for (path, _) in sd_files(&cfg.base_dir, f) {
                    groups.extend(sd_groups.get(&path).into_iter().flatten().map(|g| (g, Some(path.clone()))));
                }
            }
            for (g, file) in groups {
                for t in &g.targets {
                    let mut labels = g.labels.clone();
                    if let Some(f) = &file {
                        labels.insert("__meta_filepath".into(), f.display().to_string());
                    }
                    // Keyed by what relabelling made of it: a change in
                    // labels it dropped is no new target.
                    match populate(j, ji, &labels, t) {
                        Ok(Some(target)) => {
                            desired.insert(target);
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(job = %j.config.job_name, target = %t, "dropping a target: {e}"),
                    }
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
    let got = tokio::time::timeout(job.timeout, http_get(job, t)).await;
    let parsed = match got {
        Ok(Ok((200, ct, body))) => text::parse(&body, Format::from_content_type(ct.as_deref())),
        Ok(Ok((status, _, _))) => Err(format!("HTTP status {status}")),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within the {:?} scrape timeout", job.timeout)),
    };
    let tl = &t.labels;
    let mut series = Vec::new();
    let mut current = HashSet::new();
    let scraped = parsed.and_then(|exposition| {
        for s in &exposition.samples {
            let merged = merge_labels(tl, &s.labels, &s.name, job.config.honor_labels);
            let labels = if job.metric_relabel.is_empty() {
                merged
            } else {
                match relabel(merged.into_iter().collect(), &job.metric_relabel) {
                    Some(l) => l.into_iter().collect(),
                    None => continue,
                }
            };
            check_limits(&job.config, &labels, series.len() + 1)?;
            let ts = if job.config.honor_timestamps { s.timestamp_ms.unwrap_or(now_ms) } else { now_ms };
            let fam = exposition.family_of(&s.name);
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
        Ok((exposition.samples.len(), series.len()))
    });
    let scraped = match scraped {
        Ok(counts) => {
            current.extend(series.iter().map(|s| s.labels.clone()));
            Some(counts)
        }
        Err(e) => {
            // A failed scrape stores none of its samples (a limit broken
            // half-way included), as Prometheus does.
            series.clear();
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
    let (exposed, kept) = scraped.unwrap_or((0, 0));
    series.push(synthetic("up", if scraped.is_some() { 1.0 } else { 0.0 }, "1 if the last scrape succeeded."));
    series.push(synthetic("scrape_duration_seconds", started.elapsed().as_secs_f64(), "How long the scrape took."));
    series.push(synthetic("scrape_samples_scraped", exposed as f64, "Samples the target exposed."));
    series.push(synthetic(
        "scrape_samples_post_metric_relabeling",
        kept as f64,
        "Samples left after metric relabelling.",
    ));
    // The synthetic series end with the target too.
    current.extend(series[series.len() - 4..].iter().map(|s| s.labels.clone()));
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

/// Whether a scrape may keep its `count`th sample, with `labels`: the
/// job's limits, as Prometheus checks them (breaking one fails the scrape).
fn check_limits(c: &JobConfig, labels: &[(String, String)], count: usize) -> Result<(), String> {
    let over = |limit: Option<u64>, n: usize| limit.is_some_and(|l| l > 0 && n as u64 > l);
    if over(c.sample_limit, count) {
        return Err(format!("sample_limit exceeded: more than {} samples", c.sample_limit.unwrap_or(0)));
    }
    if over(c.label_limit, labels.len()) {
        return Err(format!("label_limit exceeded: a series has {} labels", labels.len()));
    }
    for (k, v) in labels {
        if over(c.label_name_length_limit, k.len()) {
            return Err(format!("label_name_length_limit exceeded: label name {k:?}"));
        }
        if over(c.label_value_length_limit, v.len()) {
            return Err(format!("label_value_length_limit exceeded: the value of label {k:?}"));
        }
    }
    Ok(())
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

/// GETs a target's metrics with its job's client: status, content type
/// and body (at most the job's body limit).
async fn http_get(job: &Job, t: &Target) -> Result<(u16, Option<String>, String), String> {
    let url = format!("{}://{}{}", t.scheme, t.address, t.path);
    let mut req = job.client.get(&url).header(reqwest::header::ACCEPT, ACCEPT).timeout(job.timeout);
    match &job.auth {
        None => {}
        Some(Auth::Basic(user, password)) => req = req.basic_auth(user, Some(password.read()?)),
        Some(Auth::Header(kind, credentials)) => {
            req = req.header(reqwest::header::AUTHORIZATION, format!("{kind} {}", credentials.read()?));
        }
    }
    let mut resp = req.send().await.map_err(|e| format!("GET {url}: {}", chain(&e)))?;
    let status = resp.status().as_u16();
    let ct = resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("reading {url}: {}", chain(&e)))? {
        if body.len() + chunk.len() > job.body_limit {
            return Err(format!("{url} sent more than the body_size_limit of {} bytes", job.body_limit));
        }
        body.extend_from_slice(&chunk);
    }
    let body = String::from_utf8(body).map_err(|_| format!("{url} sent a body that is not UTF-8"))?;
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
        let t = |labels: &[(&str, &str)]| {
            let g = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            populate(&c.jobs[0], 0, &g, "127.0.0.1:9100").unwrap().unwrap()
        };
        let l = t(&[]).labels;
        assert_eq!(l.get("job").map(String::as_str), Some("node"));
        assert_eq!(l.get("instance").map(String::as_str), Some("127.0.0.1:9100"));
        let l = t(&[("job", "custom"), ("instance", "db-1"), ("__meta_x", "y"), ("env", "prod")]).labels;
        assert_eq!(l.get("job").map(String::as_str), Some("custom"));
        assert_eq!(l.get("instance").map(String::as_str), Some("db-1"));
        assert!(!l.contains_key("__meta_x"));
        assert_eq!(l.get("env").map(String::as_str), Some("prod"));
    }

    /// Relabelling decides a target's address, path, parameters and
    /// labels, or drops it.
    #[test]
    fn targets_are_relabelled_as_prometheus_does() {
        let text = "scrape_configs:\n  - job_name: blackbox\n    metrics_path: /probe\n    params:\n      module: [http_2xx]\n\
                    \x20   static_configs:\n      - targets: ['example.org:80', 'skip.me:80']\n\
                    \x20   relabel_configs:\n\
                    \x20     - source_labels: [__address__]\n        regex: 'skip.*'\n        action: drop\n\
                    \x20     - source_labels: [__address__]\n        target_label: __param_target\n\
                    \x20     - source_labels: [__param_target]\n        target_label: instance\n\
                    \x20     - target_label: __address__\n        replacement: '127.0.0.1:9115'\n\
                    \x20     - source_labels: [__meta_filepath]\n        regex: '.*/(.*)'\n        target_label: file\n";
        let c = ScrapeConfig::parse(text, PathBuf::new()).unwrap();
        let j = &c.jobs[0];
        let t = populate(j, 0, &BTreeMap::new(), "example.org:80").unwrap().unwrap();
        assert_eq!(t.address, "127.0.0.1:9115");
        assert_eq!(t.path, "/probe?module=http_2xx&target=example.org%3A80");
        assert_eq!(t.labels.get("instance").map(String::as_str), Some("example.org:80"));
        assert_eq!(t.labels.keys().collect::<Vec<_>>(), ["instance", "job"]);
        assert!(populate(j, 0, &BTreeMap::new(), "skip.me:80").unwrap().is_none());
        let g = [("__meta_filepath".to_owned(), "/sd/targets.yml".to_owned())].into();
        let t = populate(j, 0, &g, "example.org:80").unwrap().unwrap();
        assert_eq!(t.labels.get("file").map(String::as_str), Some("targets.yml"));
    }

    #[test]
    fn limits_fail_a_scrape() {
        let text = "scrape_configs:\n  - job_name: a\n    sample_limit: 2\n    label_limit: 3\n    \
                    label_name_length_limit: 8\n    label_value_length_limit: 4\n    body_size_limit: 1KB\n";
        let c = ScrapeConfig::parse(text, PathBuf::new()).unwrap();
        let cfg = &c.jobs[0].config;
        assert_eq!(c.jobs[0].body_limit, 1024);
        let l = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        assert!(check_limits(cfg, &l(&[("__name__", "up"), ("job", "a")]), 2).is_ok());
        assert!(check_limits(cfg, &l(&[("job", "a")]), 3).unwrap_err().contains("sample_limit"));
        assert!(check_limits(cfg, &l(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")]), 1)
            .unwrap_err()
            .contains("label_limit"));
        assert!(check_limits(cfg, &l(&[("long_name", "1")]), 1).unwrap_err().contains("label_name_length_limit"));
        assert!(check_limits(cfg, &l(&[("a", "12345")]), 1).unwrap_err().contains("label_value_length_limit"));
        assert_eq!(parse_bytes("0").unwrap(), usize::MAX);
        assert_eq!(parse_bytes("2MiB").unwrap(), 2 << 20);
        assert!(parse_bytes("2 parsecs").is_err());
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
            ("scrape_configs:\n  - job_name: a\n    scheme: ftp\n", "neither http nor https"),
            (
                "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u}\n    bearer_token: t\n",
                "exclusive",
            ),
            ("scrape_configs:\n  - job_name: a\n    tls_config: {ca_file: /nonexistent.pem}\n", "reading /nonexistent.pem"),
            ("scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['http://x:1/m']\n", "host:port"),
            ("scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n", "longer than"),
            ("nonsense: [", "not a scrape configuration"),
            // Keys Danaus does not implement are named, with their line.
            (
                "scrape_configs:\n  - job_name: a\n    kubernetes_sd_configs: []\n",
                "unknown field `kubernetes_sd_configs`",
            ),
            ("scrape_configs:\n  - job_name: a\n    tls_config: {server_name: x}\n", "line 3"),
            ("global:\n  external_labels: {a: b}\nscrape_configs: []\n", "unknown field `external_labels`"),
            (
                "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: hashmod\n        target_label: x\n",
                "relabel_configs rule 1: relabel action hashmod: modulus",
            ),
            ("scrape_configs:\n  - job_name: a\n    body_size_limit: lots\n", "not a size"),
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
