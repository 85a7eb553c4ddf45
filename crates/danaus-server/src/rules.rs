//! How rules run and where their alerts go: the settings `danaus
//! standalone` and `danaus evaluator` share.

use std::sync::Arc;

use danaus_evaluator::EvaluatorConfig;

use crate::alertmanager::{AlertmanagerConfig, Alertmanagers};

/// How rules run and where their alerts go.
#[derive(Debug, Clone)]
pub struct RulesConfig {
    /// A group's interval when it names none.
    pub evaluation_interval: std::time::Duration,
    /// Alertmanagers to send alerts to (base URLs); none: transitions
    /// are logged.
    pub alertmanagers: Vec<String>,
    /// How often firing alerts are sent again.
    pub resend_delay: std::time::Duration,
    /// `$externalURL` in templates and alerts' `generatorURL`.
    pub external_url: String,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            evaluation_interval: std::time::Duration::from_secs(60),
            alertmanagers: Vec::new(),
            resend_delay: std::time::Duration::from_secs(60),
            external_url: String::new(),
        }
    }
}

impl RulesConfig {
    /// Where alert transitions go: Alertmanagers when some are
    /// configured; else a log of transitions.
    pub fn notifier(&self) -> anyhow::Result<Arc<dyn danaus_evaluator::Notifier>> {
        let cfg = self;
        if cfg.alertmanagers.is_empty() {
            return Ok(Arc::new(danaus_evaluator::LogNotifier));
        }
        tracing::info!(alertmanagers = ?cfg.alertmanagers, "alerts go to Alertmanager");
        Ok(Arc::new(Alertmanagers::new(AlertmanagerConfig {
            urls: cfg.alertmanagers.clone(),
            resend_delay: cfg.resend_delay,
            external_labels: Default::default(),
            external_url: cfg.external_url.clone(),
            timeout: std::time::Duration::from_secs(10),
        })?))
    }

    /// The evaluator's tuning.
    pub fn evaluator(&self) -> EvaluatorConfig {
        EvaluatorConfig {
            default_interval: self.evaluation_interval,
            resend_delay: self.resend_delay,
            external_url: self.external_url.clone(),
            ..EvaluatorConfig::default()
        }
    }
}
