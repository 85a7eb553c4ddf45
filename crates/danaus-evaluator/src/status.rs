//! What the rules and alerts APIs show: each rule group of the
//! configuration joined with its last committed evaluation.

use std::collections::BTreeMap;

use danaus_config::ConfigView;
use danaus_rules::alert::{Alert, State};
use danaus_rules::file::RuleKind;
use danaus_rules::group::GroupState;

use crate::evaluator::{carry_over, Evaluator};
use crate::state::Counters;

/// A rule's health, as Prometheus reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not evaluated yet.
    Unknown,
    /// Its last evaluation succeeded.
    Ok,
    /// Its last evaluation failed.
    Err,
}

impl Health {
    /// Prometheus' word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleStatus {
    /// An alerting rule (else recording).
    pub alerting: bool,
    /// The alert or record name.
    pub name: String,
    /// Its expression.
    pub expr: String,
    /// `for` (ms).
    pub for_ms: i64,
    /// `keep_firing_for` (ms).
    pub keep_firing_for_ms: i64,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations (templates).
    pub annotations: BTreeMap<String, String>,
    /// Its pending and firing alerts.
    pub alerts: Vec<Alert>,
    /// Its health.
    pub health: Health,
    /// Its last error.
    pub last_error: Option<String>,
    /// How long its last evaluation took (µs).
    pub duration_us: u64,
}

impl RuleStatus {
    /// Firing if an alert fires, else pending if one is pending, else
    /// inactive.
    pub fn state(&self) -> State {
        self.alerts.iter().map(|a| a.state).max().unwrap_or(State::Inactive)
    }
}

/// One rule group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStatus {
    /// Its tenant.
    pub tenant: String,
    /// Its name.
    pub name: String,
    /// Its interval (ms).
    pub interval_ms: i64,
    /// Its `limit`.
    pub limit: usize,
    /// Its rules.
    pub rules: Vec<RuleStatus>,
    /// Its last committed evaluation (ms).
    pub last_eval: Option<i64>,
    /// How long that took (µs).
    pub duration_us: u64,
    /// Its counters (committed with its evaluations).
    pub counters: Counters,
    /// Why it is not evaluated, if it is not.
    pub invalid: Option<String>,
}

impl Evaluator {
    /// The rule groups of `view` this evaluator runs (of `tenant`, or of
    /// every tenant), with their last committed evaluation as this
    /// member applied it.
    pub fn status(&self, view: &ConfigView, tenant: Option<&str>) -> Vec<GroupStatus> {
        let records = self.records();
        let invalid = self.invalid();
        let default_interval = i64::try_from(self.config().default_interval.as_millis()).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        for (key, (t, spec)) in self.assigned(view) {
            if tenant.is_some_and(|want| want != t) {
                continue;
            }
            let checked = match spec.check() {
                Ok(g) => g,
                Err(errs) => {
                    out.push(GroupStatus {
                        tenant: t,
                        name: spec.name.clone(),
                        interval_ms: default_interval,
                        limit: spec.limit,
                        rules: Vec::new(),
                        last_eval: None,
                        duration_us: 0,
                        counters: Counters::default(),
                        invalid: Some(invalid.get(&key).cloned().unwrap_or_else(|| errs.join("; "))),
                    });
                    continue;
                }
            };
            let record = records.get(&key);
            let (state, durations) = match record {
                Some(r) if r.spec == spec => (r.state.clone(), r.rule_durations_us.clone()),
                Some(r) => (carry_over(&r.spec, &r.state, &spec), Vec::new()),
                None => (GroupState::default(), Vec::new()),
            };
            let rules = checked
                .rules
                .iter()
                .enumerate()
                .map(|(i, rule)| {
                    let rs = state.rules.get(i);
                    let health = match (record, rs.and_then(|r| r.last_error.as_ref())) {
                        (None, _) => Health::Unknown,
                        (Some(_), Some(_)) => Health::Err,
                        (Some(_), None) => Health::Ok,
                    };
                    RuleStatus {
                        alerting: matches!(rule.kind, RuleKind::Alert(_)),
                        name: rule.name().to_owned(),
                        expr: rule.expr.clone(),
                        for_ms: rule.for_ms,
                        keep_firing_for_ms: rule.keep_firing_for_ms,
                        labels: rule.labels.clone(),
                        annotations: rule.annotations.clone(),
                        alerts: rs
                            .map(|r| r.alerts.values().filter(|a| a.state != State::Inactive).cloned().collect())
                            .unwrap_or_default(),
                        health,
                        last_error: rs.and_then(|r| r.last_error.clone()),
                        duration_us: durations.get(i).copied().unwrap_or(0),
                    }
                })
                .collect();
            out.push(GroupStatus {
                tenant: t,
                name: spec.name.clone(),
                interval_ms: checked.interval_ms.unwrap_or(default_interval),
                limit: spec.limit,
                rules,
                last_eval: record.map(|r| r.at),
                duration_us: record.map_or(0, |r| r.duration_us),
                counters: record.map(|r| r.counters.clone()).unwrap_or_default(),
                invalid: None,
            });
        }
        out
    }
}
