//! Alerts to Alertmanager as Prometheus sends them, so a team keeps its
//! Alertmanager: `POST /api/v2/alerts` to every configured Alertmanager,
//! in batches of at most 64, each alert with its labels (external labels
//! added where the alert has none of that name), annotations, `startsAt`
//! (when it fired), `endsAt` and a `generatorURL`.
//!
//! What is sent, and when: a transition to firing, and from firing to
//! resolved, as the evaluator hands its committed outbox on (pending
//! alerts are not sent, as Prometheus does not send them); and every
//! resend delay, every alert still firing or resolved in the last 15
//! minutes, so an Alertmanager that restarted or missed a batch learns
//! them again. A firing alert's `endsAt` is four resend delays (or
//! evaluation intervals, the longer) after it is sent, so Alertmanager
//! resolves it by itself if the evaluators go silent; a resolved alert's
//! is when it resolved.
//!
//! Unlike Prometheus, which drops a batch an Alertmanager refused, a
//! transition is offered again until at least one Alertmanager took it
//! (Alertmanagers of one cluster share what they receive).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use danaus_evaluator::{Notice, Notifier};
use danaus_model::time::format_rfc3339_nano;
use danaus_rules::alert::State;
use futures::future::BoxFuture;
use serde_json::{json, Value};

/// Alerts in one request, at most (Prometheus' batch size).
const BATCH: usize = 64;

/// Where and how alerts go.
#[derive(Debug, Clone)]
pub struct AlertmanagerConfig {
    /// Base URLs (`http://host:9093`, with a path prefix if it has one).
    pub urls: Vec<String>,
    /// Prometheus' `--rules.alert.resend-delay`.
    pub resend_delay: Duration,
    /// Labels every alert gets unless it has one of that name.
    pub external_labels: BTreeMap<String, String>,
    /// Where `generatorURL` points (Prometheus' `--web.external-url`).
    pub external_url: String,
    /// How long one request may take.
    pub timeout: Duration,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct AlertmanagerStats {
    /// Alerts an Alertmanager accepted.
    pub sent: AtomicU64,
    /// Requests that failed.
    pub errors: AtomicU64,
}

/// The Alertmanagers as a notifier.
pub struct Alertmanagers {
    cfg: AlertmanagerConfig,
    client: reqwest::Client,
    /// Counters.
    pub stats: Arc<AlertmanagerStats>,
}

impl Alertmanagers {
    /// A notifier sending to `cfg.urls`.
    pub fn new(cfg: AlertmanagerConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().timeout(cfg.timeout).build()?;
        Ok(Self { cfg, client, stats: Arc::default() })
    }

    /// The alert Alertmanager receives for `n`, sent at `now` (ms).
    fn alert(&self, n: &Notice, now: i64) -> Value {
        let mut labels: BTreeMap<String, String> = n.alert.labels.pairs().iter().cloned().collect();
        for (k, v) in &self.cfg.external_labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let delta = (self.cfg.resend_delay.as_millis() as i64).max(n.interval_ms);
        let ends = match n.to {
            State::Inactive => n.alert.resolved_at.unwrap_or(n.at),
            _ => n.at.max(now) + 4 * delta,
        };
        let starts = n.alert.fired_at.unwrap_or(n.alert.active_at);
        let time = |ms: i64| format_rfc3339_nano(ms.saturating_mul(1_000_000));
        let expr: String = form_urlencoded::byte_serialize(n.expr.as_bytes()).collect();
        json!({
            "labels": labels,
            "annotations": n.alert.annotations,
            "startsAt": time(starts),
            "endsAt": time(ends),
            "generatorURL": format!("{}/graph?g0.expr={expr}&g0.tab=1", self.cfg.external_url.trim_end_matches('/')),
        })
    }

    /// Sends `alerts` to every Alertmanager: `Ok` if at least one took
    /// them all, else every error.
    async fn send(&self, alerts: &[Value]) -> Result<(), String> {
        if alerts.is_empty() {
            return Ok(());
        }
        let mut errors = Vec::new();
        let mut taken = false;
        for base in &self.cfg.urls {
            let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
            let mut ok = true;
            for batch in alerts.chunks(BATCH) {
                let body = serde_json::to_vec(batch).map_err(|e| e.to_string())?;
                let r = self.client.post(&url).header("content-type", "application/json").body(body).send().await;
                let failed = match r {
                    Ok(r) if r.status().is_success() => None,
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        Some(format!("{url}: {status}: {}", text.trim()))
                    }
                    Err(e) => Some(format!("{url}: {e}")),
                };
                match failed {
                    None => {
                        self.stats.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    }
                    Some(e) => {
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        errors.push(e);
                        ok = false;
                        break;
                    }
                }
            }
            taken |= ok;
        }
        if taken || self.cfg.urls.is_empty() {
            for e in &errors {
                tracing::warn!("an Alertmanager did not take alerts (another did): {e}");
            }
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

fn now_ms() -> i64 {
    danaus_model::time::now_ns().div_euclid(1_000_000)
}

/// What Alertmanager hears of: firing, and resolved after firing.
fn sent(n: &Notice) -> bool {
    n.to == State::Firing || (n.to == State::Inactive && n.from == State::Firing)
}

impl Notifier for Alertmanagers {
    fn deliver<'a>(&'a self, notices: &'a [Notice]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let now = now_ms();
            let alerts: Vec<Value> = notices.iter().filter(|n| sent(n)).map(|n| self.alert(n, now)).collect();
            self.send(&alerts).await
        })
    }

    fn resend<'a>(&'a self, alerts: &'a [Notice]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let now = now_ms();
            let alerts: Vec<Value> = alerts.iter().map(|n| self.alert(n, now)).collect();
            if let Err(e) = self.send(&alerts).await {
                tracing::warn!("re-sending {} alerts: {e}", alerts.len());
            }
        })
    }
}
