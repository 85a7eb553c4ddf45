//! One alerting rule's alerts and how an evaluation moves them, exactly
//! as Prometheus' `AlertingRule.Eval` does (2.42, with `keep_firing_for`).
//!
//! An evaluation takes the rule's query result at `ts` and the alerts
//! before it, and leaves the alerts after it plus the `ALERTS` and
//! `ALERTS_FOR_STATE` samples and the transitions it made:
//!
//! * an element not yet active becomes pending (`active_at = ts`), and
//!   fires once `ts − active_at ≥ for` (at once with `for: 0`);
//! * an active element keeps its `active_at`; its value and annotations
//!   follow the latest evaluation;
//! * a pending alert whose element is gone is deleted; a firing one is
//!   resolved (`resolved_at = ts`) unless `keep_firing_for` holds it
//!   (counted from the first evaluation that missed it), and a resolved
//!   one is kept 15 minutes so receivers hear that it ended;
//! * more than `limit` pending and firing alerts clears the rule's alerts
//!   and fails the evaluation.
//!
//! The alerts are plain data ([`Alerts`]), so the evaluator can commit
//! them and a new leader resume from them: nothing here lives only in
//! memory.

use std::collections::BTreeMap;

use danaus_promql::{Labels, Sample};

use crate::file::Rule;

/// How long a resolved alert is kept (and re-sent as resolved).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60_000;

/// An alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Resolved: its condition ended (kept a while to say so).
    Inactive,
    /// Its condition holds, for less than the rule's `for`.
    Pending,
    /// Its condition has held for `for`, or it is kept by `keep_firing_for`.
    Firing,
}

impl State {
    /// Prometheus' name (`alertstate` label, APIs).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Pending => "pending",
            State::Firing => "firing",
        }
    }
}

/// One alert of a rule: one element of its query result.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    /// The element's labels without the metric name, with the rule's
    /// (expanded) labels and `alertname`: the alert's identity.
    pub labels: Labels,
    /// Expanded annotations, as of the latest evaluation that saw it (an
    /// empty one is kept, as Prometheus keeps it).
    pub annotations: BTreeMap<String, String>,
    /// Where it stands.
    pub state: State,
    /// The element's value at the latest evaluation that saw it (stored
    /// as its bits: NaN and infinities survive JSON).
    #[serde(with = "f64_bits")]
    pub value: f64,
    /// When it became pending (ms).
    pub active_at: i64,
    /// When it fired (ms), if it did.
    pub fired_at: Option<i64>,
    /// When it resolved (ms), if it did.
    pub resolved_at: Option<i64>,
    /// The first evaluation that missed it while `keep_firing_for` held it.
    pub keep_firing_since: Option<i64>,
}

/// A rule's alerts, by label set.
pub type Alerts = BTreeMap<Labels, Alert>;

/// A float as its bits, for serde formats without NaN (JSON).
pub mod f64_bits {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `v`'s bits.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }

    /// Reads bits back.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(f64::from_bits(u64::deserialize(d)?))
    }
}

/// [`Alerts`] as the list of its alerts (each holds its labels; JSON map
/// keys must be strings).
pub mod alerts_as_list {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{Alert, Alerts};

    /// Writes the alerts in label order.
    pub fn serialize<S: Serializer>(m: &Alerts, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.values())
    }

    /// Reads them back, keyed by their labels.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Alerts, D::Error> {
        Ok(Vec::<Alert>::deserialize(d)?.into_iter().map(|a| (a.labels.clone(), a)).collect())
    }
}

/// A change an evaluation made to one alert.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Transition {
    /// The alert's labels.
    pub labels: Labels,
    /// Before (`Inactive` for a new alert).
    pub from: State,
    /// After.
    pub to: State,
}

/// What one evaluation of an alerting rule produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluated {
    /// `ALERTS` and `ALERTS_FOR_STATE` samples at the evaluation time.
    pub samples: Vec<(Labels, f64)>,
    /// Alerts that changed state, in label order.
    pub transitions: Vec<Transition>,
}

/// Expands an alert label or annotation template for one element:
/// `(text, element labels, element value) → text`.
pub type Expand<'a> = dyn Fn(&str, &Labels, f64) -> String + 'a;

/// One evaluation of `rule` at `ts` (ms) over its query result `result`,
/// moving `alerts`. `group_labels` are the group's labels (the rule's own
/// win). Errors are Prometheus' texts; on error `alerts` is as Prometheus
/// leaves it (unchanged, or cleared when `limit` was exceeded).
pub fn evaluate(
    rule: &Rule,
    group_labels: &BTreeMap<String, String>,
    alerts: &mut Alerts,
    ts: i64,
    result: &[Sample],
    limit: usize,
    expand: &Expand<'_>,
) -> Result<Evaluated, String> {
    let name = rule.name();
    let mut seen: BTreeMap<Labels, Alert> = BTreeMap::new();
    for s in result {
        let mut labels = s.labels.without_name();
        for (k, v) in group_labels.iter().chain(rule.labels.iter()) {
            labels.set(k, &expand(v, &s.labels, s.value));
        }
        labels.set("alertname", name);
        let annotations: BTreeMap<String, String> =
            rule.annotations.iter().map(|(k, v)| (k.clone(), expand(v, &s.labels, s.value))).collect();
        if seen.contains_key(&labels) {
            return Err("vector contains metrics with the same labelset after applying alert labels".into());
        }
        let alert = Alert {
            labels: labels.clone(),
            annotations,
            state: State::Pending,
            value: s.value,
            active_at: ts,
            fired_at: None,
            resolved_at: None,
            keep_firing_since: None,
        };
        seen.insert(labels, alert);
    }

    let before: BTreeMap<Labels, State> = alerts.iter().map(|(k, a)| (k.clone(), a.state)).collect();
    for (k, a) in seen.iter() {
        match alerts.get_mut(k) {
            Some(old) if old.state != State::Inactive => {
                old.value = a.value;
                old.annotations = a.annotations.clone();
            }
            _ => {
                alerts.insert(k.clone(), a.clone());
            }
        }
    }

    let mut out = Evaluated::default();
    let mut active = 0usize;
    let mut gone = Vec::new();
    for (k, a) in alerts.iter_mut() {
        if !seen.contains_key(k) {
            let mut keep_firing = false;
            if a.state == State::Firing && rule.keep_firing_for_ms > 0 {
                let since = *a.keep_firing_since.get_or_insert(ts);
                keep_firing = ts - since < rule.keep_firing_for_ms;
            }
            if a.state == State::Pending || a.resolved_at.is_some_and(|r| ts - r > RESOLVED_RETENTION_MS) {
                gone.push(k.clone());
            }
            if a.state != State::Inactive && !keep_firing {
                a.state = State::Inactive;
                a.resolved_at = Some(ts);
            }
            if !keep_firing {
                continue;
            }
        } else {
            a.keep_firing_since = None;
        }
        active += 1;
        if a.state == State::Pending && ts - a.active_at >= rule.for_ms {
            a.state = State::Firing;
            a.fired_at = Some(ts);
        }
        out.samples.push((alerts_series(rule, group_labels, a, "ALERTS", Some(a.state)), 1.0));
        out.samples.push((alerts_series(rule, group_labels, a, "ALERTS_FOR_STATE", None), (a.active_at / 1000) as f64));
    }
    // Transitions, before `gone` deletes pending alerts that ended.
    for (k, a) in alerts.iter() {
        let from = before.get(k).copied().unwrap_or(State::Inactive);
        let new = !before.contains_key(k);
        if from != a.state || (new && a.state != State::Inactive) {
            out.transitions.push(Transition { labels: k.clone(), from, to: a.state });
        }
    }
    for k in gone {
        alerts.remove(&k);
    }
    if limit > 0 && active > limit {
        alerts.clear();
        return Err(format!("exceeded limit of {limit} with {active} alerts"));
    }
    Ok(out)
}

/// `ALERTS{…, alertstate}` or `ALERTS_FOR_STATE{…}`: the rule's labels,
/// then the alert's, then the name (`alertname` last, as Prometheus).
fn alerts_series(
    rule: &Rule,
    group_labels: &BTreeMap<String, String>,
    a: &Alert,
    metric: &str,
    state: Option<State>,
) -> Labels {
    let mut l =
        Labels::new(group_labels.iter().chain(rule.labels.iter()).map(|(k, v)| (k.clone(), v.clone())).collect());
    for (k, v) in a.labels.pairs() {
        l.set(k, v);
    }
    l.set("__name__", metric);
    l.set("alertname", rule.name());
    if let Some(s) = state {
        l.set("alertstate", s.as_str());
    }
    l
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::file::RuleKind;
    use std::sync::Arc;

    fn rule(for_ms: i64, keep_ms: i64) -> Rule {
        Rule {
            kind: RuleKind::Alert("A".into()),
            expr: "x > 0".into(),
            for_ms,
            keep_firing_for_ms: keep_ms,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    fn el() -> Sample {
        Sample {
            labels: Arc::new(Labels::new(vec![("__name__".into(), "x".into()), ("i".into(), "1".into())])),
            value: 1.0,
        }
    }

    fn states(e: &Evaluated) -> Vec<(State, State)> {
        e.transitions.iter().map(|t| (t.from, t.to)).collect()
    }

    /// Each evaluation reports exactly the changes it made: what the
    /// notifier hands on once per transition.
    #[test]
    fn transitions_are_reported_once_each() {
        let r = rule(120_000, 0);
        let no_labels = BTreeMap::new();
        let expand = |t: &str, _: &Labels, _: f64| t.to_owned();
        let mut alerts = Alerts::new();
        let at = |ts: i64, present: bool, alerts: &mut Alerts| {
            let result = if present { vec![el()] } else { Vec::new() };
            evaluate(&r, &no_labels, alerts, ts, &result, 0, &expand).unwrap()
        };
        assert_eq!(states(&at(0, true, &mut alerts)), [(State::Inactive, State::Pending)]);
        assert_eq!(states(&at(60_000, true, &mut alerts)), []);
        assert_eq!(states(&at(120_000, true, &mut alerts)), [(State::Pending, State::Firing)]);
        let fired = at(180_000, true, &mut alerts);
        assert_eq!(states(&fired), []);
        assert_eq!(fired.samples.len(), 2, "ALERTS and ALERTS_FOR_STATE");
        assert_eq!(fired.samples[1].1, 0.0, "ALERTS_FOR_STATE is active_at in seconds");
        assert_eq!(states(&at(240_000, false, &mut alerts)), [(State::Firing, State::Inactive)]);
        // Kept 15 minutes as resolved, then dropped without a transition.
        assert_eq!(alerts.len(), 1);
        assert_eq!(states(&at(240_000 + RESOLVED_RETENTION_MS + 60_000, false, &mut alerts)), []);
        assert!(alerts.is_empty());
        // A pending alert that goes away is cancelled.
        at(2_000_000, true, &mut alerts);
        assert_eq!(states(&at(2_060_000, false, &mut alerts)), [(State::Pending, State::Inactive)]);
        assert!(alerts.is_empty());
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert_and_limit_clears_all() {
        let r = rule(0, 120_000);
        let no_labels = BTreeMap::new();
        let expand = |t: &str, _: &Labels, _: f64| t.to_owned();
        let mut alerts = Alerts::new();
        let e = evaluate(&r, &no_labels, &mut alerts, 0, &[el()], 0, &expand).unwrap();
        assert_eq!(states(&e), [(State::Inactive, State::Firing)]);
        for ts in [60_000, 120_000] {
            let e = evaluate(&r, &no_labels, &mut alerts, ts, &[], 0, &expand).unwrap();
            assert_eq!(states(&e), [], "held at {ts}");
            assert_eq!(alerts.values().next().unwrap().keep_firing_since, Some(60_000));
        }
        let e = evaluate(&r, &no_labels, &mut alerts, 180_000, &[], 0, &expand).unwrap();
        assert_eq!(states(&e), [(State::Firing, State::Inactive)]);

        let two = [el(), Sample { labels: Arc::new(Labels::new(vec![("i".into(), "2".into())])), value: 1.0 }];
        let err = evaluate(&r, &no_labels, &mut alerts, 240_000, &two, 1, &expand).unwrap_err();
        assert_eq!(err, "exceeded limit of 1 with 2 alerts");
        assert!(alerts.is_empty());
    }
}
