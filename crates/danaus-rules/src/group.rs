//! A group's evaluation: its rules in order at one time, later rules
//! seeing earlier ones' output, as Prometheus' `Group.Eval` does.
//!
//! [`evaluate`] is a function of the group, its [`GroupState`] before the
//! evaluation, the time and what storage answers. It writes nothing: the
//! samples each rule produces go to an in-memory overlay that later rules
//! of the same evaluation read through, and come back in the [`Outcome`]
//! with the alert transitions, for the caller to make durable and then
//! write. Replaying an evaluation at the same time over the same data
//! therefore produces the same samples and transitions, which is what lets
//! an evaluator commit an outcome before acting on it.
//!
//! Staleness as Prometheus: a series a rule returned at its previous
//! evaluation and not at this one gets a staleness marker; a failed rule
//! keeps its previous series (no markers).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use danaus_promql::{stale_nan, Labels, MemStorage, Options, Sample, Series, Storage, Value};
use danaus_query::prom::{PromAggregate, PromWindow};
use futures::future::BoxFuture;
use promql_parser::label::Matcher;

use crate::alert::{self, Alerts, Transition};
use crate::file::{RuleGroup, RuleKind};
use crate::template;

/// What rules need besides their group: where to read, how to query,
/// and what templates see.
pub struct Context<'a> {
    /// Where series are read.
    pub storage: &'a dyn Storage,
    /// Query options (lookback, subquery step, sample limit).
    pub options: Options,
    /// `$externalLabels` in templates.
    pub external_labels: BTreeMap<String, String>,
    /// `$externalURL` in templates.
    pub external_url: String,
}

/// A rule's state between evaluations: plain data, so an evaluator can
/// commit it (serde) and a new leader resume from it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuleState {
    /// The series it returned at its last successful evaluation.
    #[serde(default)]
    pub series: BTreeSet<Labels>,
    /// Its alerts (alerting rules).
    #[serde(default, with = "crate::alert::alerts_as_list")]
    pub alerts: Alerts,
    /// The error of its last evaluation, if it failed.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// A group's state between evaluations: one [`RuleState`] per rule.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupState {
    /// By rule, in the group's order.
    pub rules: Vec<RuleState>,
    /// The time of the last evaluation (ms).
    pub last_eval: Option<i64>,
}

/// A sample to write: labels, time (ms), value.
pub type Point = (Labels, i64, f64);

/// What one evaluation produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Derived samples: recording rules' output, `ALERTS`,
    /// `ALERTS_FOR_STATE`, staleness markers; in rule order.
    pub samples: Vec<Point>,
    /// Alert state changes, with the index of their rule.
    pub transitions: Vec<(usize, Transition)>,
    /// Rules that failed, with Prometheus' error text.
    pub errors: Vec<(usize, String)>,
    /// How long each rule took (µs), in rule order: not part of what an
    /// evaluation computes (a replay takes its own time).
    pub durations_us: Vec<u64>,
}

/// Evaluates `group` at `ts` (ms), moving `state`.
pub async fn evaluate(group: &RuleGroup, state: &mut GroupState, ts: i64, ctx: &Context<'_>) -> Outcome {
    state.rules.resize_with(group.rules.len(), RuleState::default);
    let q = ts - group.query_offset_ms.unwrap_or(0);
    let mut overlay = Overlay { base: ctx.storage, extra: MemStorage::new() };
    let mut out = Outcome::default();
    let mut mark = std::time::Instant::now();
    let mut took = |out: &mut Outcome| {
        out.durations_us.push(u64::try_from(mark.elapsed().as_micros()).unwrap_or(u64::MAX));
        mark = std::time::Instant::now();
    };
    for (i, rule) in group.rules.iter().enumerate() {
        if i > 0 {
            took(&mut out);
        }
        let rs = &mut state.rules[i];
        let result = match query(&overlay, &rule.expr, q, ctx.options).await {
            Ok(r) => r,
            Err(e) => {
                rs.last_error = Some(e.clone());
                out.errors.push((i, e));
                continue;
            }
        };
        let produced = match &rule.kind {
            RuleKind::Record(name) => record(name, &group.labels, &rule.labels, result, group.limit),
            RuleKind::Alert(name) => {
                let texts = expansions(name, rule, &group.labels, &result, &overlay, q, ctx).await;
                let expand = |text: &str, labels: &Labels, value: f64| {
                    texts.get(&(text.to_owned(), labels.clone(), value.to_bits())).cloned().unwrap_or_default()
                };
                alert::evaluate(rule, &group.labels, &mut rs.alerts, ts, &result, group.limit, &expand).map(|e| {
                    out.transitions.extend(e.transitions.into_iter().map(|t| (i, t)));
                    e.samples
                })
            }
        };
        let produced = match produced {
            Ok(p) => p,
            Err(e) => {
                rs.last_error = Some(e.clone());
                out.errors.push((i, e));
                continue;
            }
        };
        rs.last_error = None;
        let returned: BTreeSet<Labels> = produced.iter().map(|(l, _)| l.clone()).collect();
        let mut written: Vec<Point> = produced.into_iter().map(|(l, v)| (l, q, v)).collect();
        for gone in rs.series.difference(&returned) {
            written.push((gone.clone(), q, stale_nan()));
        }
        rs.series = returned;
        for (l, t, v) in &written {
            overlay.extra.add(l.clone(), [(*t, *v)]);
        }
        out.samples.extend(written);
    }
    if !group.rules.is_empty() {
        took(&mut out);
    }
    state.last_eval = Some(ts);
    out
}

/// A rule's query as Prometheus' `EngineQueryFunc` runs it: an instant
/// query whose scalar answer is one sample without labels.
async fn query(storage: &dyn Storage, expr: &str, at: i64, options: Options) -> Result<Vec<Sample>, String> {
    match danaus_promql::instant(storage, expr, at, options).await {
        Ok(Value::Vector(_, v)) => Ok(v),
        Ok(Value::Scalar(_, v)) => Ok(vec![Sample { labels: Arc::new(Labels::empty()), value: v }]),
        Ok(_) => Err("rule result is not a vector or scalar".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A recording rule's output: each element named `name`, with the
/// group's then the rule's labels set over its own.
fn record(
    name: &str,
    group_labels: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    result: Vec<Sample>,
    limit: usize,
) -> Result<Vec<(Labels, f64)>, String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(result.len());
    for s in result {
        let mut l = (*s.labels).clone();
        l.set("__name__", name);
        for (k, v) in group_labels.iter().chain(labels.iter()) {
            l.set(k, v);
        }
        if !seen.insert(l.clone()) {
            return Err("vector contains metrics with the same labelset after applying rule labels".into());
        }
        out.push((l, s.value));
    }
    if limit > 0 && out.len() > limit {
        return Err(format!("exceeded limit of {limit} with {} series", out.len()));
    }
    Ok(out)
}

/// Expansions of an alerting rule's labels and annotations for every
/// element of its result, keyed by (text, element labels, value bits).
///
/// Templates may call `query`, which must reach storage asynchronously;
/// template execution is synchronous. So a template runs against the
/// answers known so far, the queries it asked for that were not known
/// are run, and it runs again, until it asks for nothing new (a query
/// built from another query's answer takes one more round; rounds are
/// capped, after which a missing answer is an error in the text).
async fn expansions(
    alert_name: &str,
    rule: &crate::file::Rule,
    group_labels: &BTreeMap<String, String>,
    result: &[Sample],
    storage: &dyn Storage,
    at: i64,
    ctx: &Context<'_>,
) -> HashMap<(String, Labels, u64), String> {
    let texts: Vec<&String> =
        group_labels.values().chain(rule.labels.values()).chain(rule.annotations.values()).collect();
    let mut answers: HashMap<String, Result<Vec<template::Sample>, String>> = HashMap::new();
    let mut out = HashMap::new();
    for round in 0..=ROUNDS {
        let env = QueryEnv {
            answers: &answers,
            asked: std::cell::RefCell::new(BTreeSet::new()),
            url: &ctx.external_url,
            last: round == ROUNDS,
        };
        out.clear();
        for s in result {
            let labels: BTreeMap<String, String> = s.labels.pairs().iter().cloned().collect();
            for text in &texts {
                let key = ((*text).clone(), (*s.labels).clone(), s.value.to_bits());
                if out.contains_key(&key) {
                    continue;
                }
                let v = template::expand_alert_text(
                    alert_name,
                    text,
                    &labels,
                    &ctx.external_labels,
                    &ctx.external_url,
                    s.value,
                    &env,
                );
                out.insert(key, v);
            }
        }
        let asked = env.asked.into_inner();
        if asked.is_empty() {
            break;
        }
        for q in asked {
            let r = query(storage, &q, at, ctx.options).await.map(|v| {
                v.into_iter()
                    .map(|s| template::Sample { labels: s.labels.pairs().iter().cloned().collect(), value: s.value })
                    .collect()
            });
            answers.insert(q, r);
        }
    }
    out
}

/// Rounds of template `query` calls answered: how deep a query may be
/// built from another's answer.
const ROUNDS: usize = 4;

/// Template `query` answers known so far; records the ones not known.
struct QueryEnv<'a> {
    answers: &'a HashMap<String, Result<Vec<template::Sample>, String>>,
    asked: std::cell::RefCell<BTreeSet<String>>,
    url: &'a str,
    /// The last round: an unknown query is an error, not a question.
    last: bool,
}

impl template::Env for QueryEnv<'_> {
    fn query(&self, q: &str) -> Result<Vec<template::Sample>, String> {
        match self.answers.get(q) {
            Some(r) => r.clone(),
            None => {
                if !self.last {
                    self.asked.borrow_mut().insert(q.to_owned());
                }
                Err(format!("query {q:?} was not answered: templates may nest queries {ROUNDS} deep"))
            }
        }
    }

    fn external_url(&self) -> &str {
        self.url
    }
}

/// Storage as the base holds it, plus the samples this evaluation wrote
/// so far (the overlay's win at equal times).
struct Overlay<'a> {
    base: &'a dyn Storage,
    extra: MemStorage,
}

impl Overlay<'_> {
    fn touches(&self, matchers: &[Matcher]) -> bool {
        self.extra.series().iter().any(|s| danaus_promql::matches(&s.labels, matchers))
    }

    /// The metric names of this evaluation's output that `matchers` select.
    fn touched_names(&self, matchers: &[Matcher]) -> BTreeSet<String> {
        self.extra
            .series()
            .iter()
            .filter(|s| danaus_promql::matches(&s.labels, matchers))
            .map(|s| s.labels.get(danaus_promql::METRIC_NAME).to_owned())
            .collect()
    }

    /// `w` over the series `matchers` select, the series of metrics this
    /// evaluation wrote computed here over storage's samples and the
    /// overlay's, every other series left to storage (which may compute
    /// `w` where the data is): a selector that also matches an earlier
    /// rule's output (`{job="node"}` after a rule recording a series
    /// with `job="node"`) keeps its pushdown for everything else.
    async fn split_windows(
        &self,
        matchers: &[Matcher],
        w: &PromWindow,
        names: BTreeSet<String>,
    ) -> danaus_promql::Result<Vec<Series>> {
        use promql_parser::label::MatchOp;
        let mut rest = matchers.to_vec();
        rest.extend(names.iter().map(|n| Matcher::new(MatchOp::NotEqual, danaus_promql::METRIC_NAME, n)));
        let mut out = self.base.select_windows(&rest, w).await?;
        for n in &names {
            let mut mine = matchers.to_vec();
            mine.push(Matcher::new(MatchOp::Equal, danaus_promql::METRIC_NAME, n));
            out.extend(danaus_promql::windows_by_select(self, &mine, w).await?);
        }
        Ok(out)
    }
}

impl Storage for Overlay<'_> {
    fn select<'a>(
        &'a self,
        matchers: &'a [Matcher],
        start: i64,
        end: i64,
    ) -> BoxFuture<'a, danaus_promql::Result<Vec<Series>>> {
        Box::pin(async move {
            let mut base = self.base.select(matchers, start, end).await?;
            if !self.touches(matchers) {
                return Ok(base);
            }
            let extra = self.extra.select(matchers, start, end).await?;
            for e in extra {
                match base.iter_mut().find(|b| b.labels == e.labels) {
                    Some(b) => {
                        let mut merged = MemStorage::new();
                        merged.add((*b.labels).clone(), b.points.iter().copied().chain(e.points.iter().copied()));
                        b.points = merged.series().first().map(|s| s.points.clone()).unwrap_or_default();
                    }
                    None => base.push(e),
                }
            }
            Ok(base)
        })
    }

    fn select_windows<'a>(
        &'a self,
        matchers: &'a [Matcher],
        w: &'a PromWindow,
    ) -> BoxFuture<'a, danaus_promql::Result<Vec<Series>>> {
        let names = self.touched_names(matchers);
        if names.is_empty() {
            return self.base.select_windows(matchers, w);
        }
        Box::pin(self.split_windows(matchers, w, names))
    }

    fn select_aggregate<'a>(
        &'a self,
        matchers: &'a [Matcher],
        w: &'a PromWindow,
        agg: &'a PromAggregate,
    ) -> BoxFuture<'a, danaus_promql::Result<Option<Vec<Series>>>> {
        if self.touches(matchers) {
            return Box::pin(async { Ok(None) });
        }
        self.base.select_aggregate(matchers, w, agg)
    }

    fn warnings(&self) -> Vec<String> {
        self.base.warnings()
    }
}

/// FNV-1a of `key`: a hash stable across builds and platforms (unlike
/// std's), for what every replica must compute alike (grid offsets,
/// which evaluator group runs a rule group).
pub fn fnv1a(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A group's evaluation grid: times `k · interval + offset`, the offset
/// drawn from the group's key (tenant, file or config name, group name)
/// so groups spread over the interval, and fixed, so every replica and
/// every replay computes the same times (Prometheus slots evaluations the
/// same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Between evaluations (ms), positive.
    pub interval_ms: i64,
    /// In `[0, interval)`.
    pub offset_ms: i64,
}

impl Grid {
    /// The grid of the group keyed `key`.
    pub fn new(key: &str, interval_ms: i64) -> Grid {
        let interval_ms = interval_ms.max(1);
        Grid { interval_ms, offset_ms: (fnv1a(key) % interval_ms as u64) as i64 }
    }

    /// The latest grid time at or before `t` (ms).
    pub fn at_or_before(&self, t: i64) -> i64 {
        (t - self.offset_ms).div_euclid(self.interval_ms) * self.interval_ms + self.offset_ms
    }

    /// The first grid time after `t` (ms).
    pub fn after(&self, t: i64) -> i64 {
        self.at_or_before(t) + self.interval_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_is_fixed_per_group_and_spread_across_groups() {
        let g = Grid::new("tenant/rules.yml/api", 60_000);
        assert_eq!(g, Grid::new("tenant/rules.yml/api", 60_000));
        assert!((0..60_000).contains(&g.offset_ms));
        for t in [0, 1, 59_999, 60_000, 1_700_000_000_123, -5] {
            let at = g.at_or_before(t);
            assert!(at <= t && t - at < 60_000, "{t}");
            assert_eq!((at - g.offset_ms).rem_euclid(60_000), 0);
            assert_eq!(g.after(t), at + 60_000);
        }
        let offsets: std::collections::BTreeSet<i64> =
            (0..50).map(|i| Grid::new(&format!("group-{i}"), 60_000).offset_ms).collect();
        assert!(offsets.len() > 45, "offsets should spread: {offsets:?}");
    }
}
