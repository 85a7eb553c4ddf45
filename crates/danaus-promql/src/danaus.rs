//! PromQL selectors as Danaus fetch plans: the [`Storage`] of a zone.
//!
//! Prometheus series live under one target schema
//! (`prometheus_target{location*, job, instance}`) and one metric schema
//! per metric name whose fields are the other labels (see danaus-prom).
//! A selector becomes one fetch per metric its `__name__` matchers accept:
//! matchers on fields the schemas have go to the leaves' indexes (`=`,
//! `!=`, `=~`, `!~` mean the same there, anchored regexes included); a
//! matcher on a label the metric does not have is decided once for the
//! whole metric (Prometheus reads an absent label as ""). Every series
//! returned is checked against all matchers again, so what reaches the
//! evaluator is exactly what Prometheus would select. The fetches run on
//! `danaus-query`'s engine, every leaf and zone of it consulted: with no
//! operations for raw samples, or with a [`PromWindow`] as the leaf
//! stage's operation when the evaluator pushes a range function down, so
//! each leaf computes it over the columns it reads and sends a value per
//! step instead of every sample.

use std::sync::Arc;

use danaus_model::{FieldType, FieldValue, MetricSchema, ScalarType, TargetSchema, Value as DValue, ValueType};
use danaus_model::{MatchOp as LeafOp, Matcher as LeafMatcher};
use danaus_query::prom::{PromAggregate, PromFn, PromWindow};
use danaus_query::{
    fetch_columns, Engine, FetchPlan, FetchSpec, Node, Plan, QueryRange, RunOptions, Stage, Table, TableOp,
    DEFAULT_STEP,
};
use futures::future::BoxFuture;
use promql_parser::label::{MatchOp, Matcher};

use crate::error::{Error, Result};
use crate::storage::{matches, Storage};
use crate::value::{Labels, Series, METRIC_NAME};

const MS: i64 = 1_000_000;

/// One tenant's Prometheus series in a Danaus zone, for one query.
pub struct DanausStorage {
    engine: Arc<Engine>,
    tenant: String,
    target: Option<Arc<TargetSchema>>,
    metrics: Vec<Arc<MetricSchema>>,
    hidden_location: Option<(String, String)>,
    /// Sources that did not answer a fetch of this query, with why.
    missing: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl DanausStorage {
    /// Series of `tenant` under `target` (the Prometheus target schema;
    /// `None` while the tenant has none: every selection is empty) and any
    /// of `metrics` (the tenant's metric schemas, as the zone knows them
    /// when the query starts), read through `engine`.
    pub fn new(
        engine: Arc<Engine>,
        tenant: &str,
        target: Option<Arc<TargetSchema>>,
        metrics: Vec<Arc<MetricSchema>>,
    ) -> Self {
        Self {
            engine,
            tenant: tenant.to_owned(),
            target,
            metrics,
            hidden_location: None,
            missing: std::sync::Mutex::default(),
        }
    }

    /// Leaves out the label `field` when its value is `value`: the
    /// location a receiver gives series that came without one, which
    /// Prometheus never saw.
    pub fn hide_default(mut self, field: &str, value: &str) -> Self {
        self.hidden_location = Some((field.to_owned(), value.to_owned()));
        self
    }

    /// The metric schemas `matchers` can select: double-valued, with a
    /// name the `__name__` matchers accept.
    fn candidates(&self, matchers: &[Matcher]) -> Vec<Arc<MetricSchema>> {
        self.metrics
            .iter()
            .filter(|m| m.value_type == ValueType::Scalar(ScalarType::Double))
            .filter(|m| matchers.iter().filter(|x| x.name == METRIC_NAME).all(|x| x.is_match(&m.name)))
            .cloned()
            .collect()
    }

    /// The fetch of `metric` for `matchers`, or `None` when a matcher on a
    /// label the metric lacks rules it out; and whether some matcher is
    /// left for after the fetch (the leaves cannot decide it).
    fn spec(&self, metric: &MetricSchema, matchers: &[Matcher], start: i64, end: i64) -> Option<(FetchSpec, bool)> {
        let target = self.target.as_ref()?;
        let columns = fetch_columns(target, metric);
        let mut pushed = Vec::new();
        let mut deferred = false;
        for m in matchers.iter().filter(|m| m.name != METRIC_NAME) {
            let field = target
                .fields
                .iter()
                .map(|f| (f, format!("target.{}", f.name)))
                .chain(metric.fields.iter().map(|f| (f, format!("metric.{}", f.name))))
                .find(|(f, _)| f.name == m.name);
            let Some((def, qualified)) = field else {
                // Absent from every series of this metric: "" decides.
                if !m.is_match("") {
                    return None;
                }
                continue;
            };
            let hidden = self.hidden_location.as_ref().is_some_and(|(f, _)| *f == m.name);
            if def.field_type != FieldType::String || hidden {
                // Checked after the fetch, on the labels PromQL sees.
                deferred = true;
                continue;
            }
            let (op, value) = match &m.op {
                MatchOp::Equal => (LeafOp::Eq, m.value.clone()),
                MatchOp::NotEqual => (LeafOp::Ne, m.value.clone()),
                MatchOp::Re(_) => (LeafOp::Re, m.value.clone()),
                MatchOp::NotRe(_) => (LeafOp::Nre, m.value.clone()),
            };
            pushed.push(LeafMatcher { field: qualified, op, value });
        }
        let spec = FetchSpec {
            target: target.name.clone(),
            metric: metric.name.clone(),
            columns: Arc::new(columns),
            kind: metric.kind,
            matchers: pushed,
            predicate: None,
            start: start.saturating_mul(MS),
            end: end.saturating_mul(MS).saturating_add(MS - 1),
        };
        Some((spec, deferred))
    }
}

/// `t`'s series as PromQL series of `metric` (`hidden`: a field and the
/// value it is left out at); with `matchers`, only
/// those whose labels satisfy every one; with `drop_name`, without the
/// metric name (once matched).
fn to_series(
    hidden: Option<&(String, String)>,
    metric: &str,
    t: Table,
    matchers: Option<&[Matcher]>,
    drop_name: bool,
    out: &mut Vec<Series>,
) {
    for s in t.series {
        let mut pairs = Vec::with_capacity(t.columns.len() + 1);
        pairs.push((METRIC_NAME.to_owned(), metric.to_owned()));
        for (c, v) in t.columns.iter().zip(s.fields) {
            let name = c.strip_prefix("metric.").unwrap_or(c);
            let value = match v {
                FieldValue::String(s) => s,
                other => other.to_string(),
            };
            if hidden.is_some_and(|(f, d)| f == name && *d == value) {
                continue;
            }
            pairs.push((name.to_owned(), value));
        }
        let mut labels = Labels::new(pairs);
        if matchers.is_some_and(|m| !matches(&labels, m)) {
            continue;
        }
        if drop_name {
            labels.set(METRIC_NAME, "");
        }
        let points = s
            .points
            .iter()
            .filter_map(|p| match p.value {
                DValue::Double(v) => Some((p.end_time.div_euclid(MS), v)),
                _ => None,
            })
            .collect();
        out.push(Series { labels: Arc::new(labels), points });
    }
}

/// Join handles aborted when dropped: a query that fails or is cancelled
/// stops its other fetches.
struct AbortOnDrop<T>(Vec<tokio::task::JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

fn query_error(e: danaus_query::Error) -> Error {
    match e {
        danaus_query::Error::Limit { .. } => Error::TooLarge(e.to_string()),
        danaus_query::Error::Cancelled(m) => Error::Timeout(m),
        danaus_query::Error::Source { unavailable: true, .. } => {
            Error::Storage { message: e.to_string(), retryable: true }
        }
        e => Error::Storage { message: e.to_string(), retryable: false },
    }
}

impl DanausStorage {
    /// Every candidate metric's fetch of `[start, end]` (ms) with `ops`
    /// as its leaf stage, run on the engine; the series that satisfy every
    /// matcher (unless `ops` aggregate: then the leaves decided every
    /// matcher, see `select_aggregate`).
    async fn fetch(&self, matchers: &[Matcher], start: i64, end: i64, ops: Vec<TableOp>) -> Result<Vec<Series>> {
        let check = !ops.iter().any(|o| matches!(o, TableOp::PromAggregate(_)));
        // A window function that drops the name: its series go without it
        // (after the matchers, which may name it).
        let drop_name = matches!(ops.as_slice(), [TableOp::Prom(w)] if !w.func.keeps_name());
        // One task per metric: the leaves' phases are CPU work, and tasks
        // spread it over the runtime's worker threads.
        let mut tasks = AbortOnDrop(Vec::new());
        for m in self.candidates(matchers) {
            let Some((spec, _)) = self.spec(&m, matchers, start, end) else { continue };
            let plan = Plan {
                root: Node::Fetch(Box::new(FetchPlan {
                    fetch: spec,
                    leaf: Stage { ops: ops.clone(), ..Stage::default() },
                    zone: Stage::default(),
                    root: Stage::default(),
                })),
                range: QueryRange { start: start.saturating_mul(MS), end: end.saturating_mul(MS), step: DEFAULT_STEP },
            };
            let (engine, tenant, hidden) = (self.engine.clone(), self.tenant.clone(), self.hidden_location.clone());
            let matchers = check.then(|| matchers.to_vec());
            tasks.0.push(tokio::spawn(async move {
                let mut tables = Vec::new();
                let mut sink = |t: Table| -> danaus_query::Result<()> {
                    tables.push(t);
                    Ok(())
                };
                let report =
                    engine.run_plan(&tenant, &plan, RunOptions::default(), &mut sink).await.map_err(query_error)?;
                let mut out = Vec::new();
                for t in tables {
                    to_series(hidden.as_ref(), &m.name, t, matchers.as_deref(), drop_name, &mut out);
                }
                let missing: Vec<String> = report
                    .completeness
                    .sources
                    .into_iter()
                    .filter_map(|s| {
                        s.missing.map(|why| format!("zone {} source {} did not answer: {why}", s.zone, s.source))
                    })
                    .collect();
                Ok::<_, Error>((out, missing))
            }));
        }
        let mut all = Vec::new();
        for task in &mut tasks.0 {
            match task.await {
                Ok(r) => {
                    let (series, missing) = r?;
                    all.extend(series);
                    if !missing.is_empty() {
                        self.missing.lock().unwrap_or_else(|e| e.into_inner()).extend(missing);
                    }
                }
                Err(e) => {
                    return Err(Error::Storage { message: format!("a fetch task failed: {e}"), retryable: false })
                }
            }
        }
        Ok(all)
    }
}

impl Storage for DanausStorage {
    fn select<'a>(&'a self, matchers: &'a [Matcher], start: i64, end: i64) -> BoxFuture<'a, Result<Vec<Series>>> {
        Box::pin(self.fetch(matchers, start, end, Vec::new()))
    }

    /// Sources that did not answer, so far: the answer lacks their series.
    fn warnings(&self) -> Vec<String> {
        self.missing.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    /// The window function runs in each leaf's phase, over the series'
    /// columns as they are read: what comes back is a value per step.
    fn select_windows<'a>(&'a self, matchers: &'a [Matcher], w: &'a PromWindow) -> BoxFuture<'a, Result<Vec<Series>>> {
        let (start, end) = w.sample_range();
        Box::pin(self.fetch(matchers, start, end, vec![TableOp::Prom(w.clone())]))
    }

    /// The aggregation runs in each leaf's phase too, after the window
    /// function: a leaf sends a series per group. Only when the leaves
    /// decide every matcher (the series are not checked again after an
    /// aggregation), and, for a function that drops the metric name over
    /// several metrics, when no two series the windows may read have the
    /// same labels but for the name: that makes Prometheus fail the query,
    /// and the evaluator must see the series to fail it the same way.
    fn select_aggregate<'a>(
        &'a self,
        matchers: &'a [Matcher],
        w: &'a PromWindow,
        agg: &'a PromAggregate,
    ) -> BoxFuture<'a, Result<Option<Vec<Series>>>> {
        Box::pin(async move {
            let (start, end) = w.sample_range();
            let candidates = self.candidates(matchers);
            if candidates.iter().any(|m| self.spec(m, matchers, start, end).is_some_and(|(_, deferred)| deferred)) {
                return Ok(None);
            }
            if candidates.len() > 1 && !w.func.keeps_name() {
                // Listing the series costs what sending one value each
                // does: worth it only over several steps.
                if w.steps() < 2 || self.names_may_collide(matchers, w).await? {
                    return Ok(None);
                }
            }
            let ops = vec![TableOp::Prom(w.clone()), TableOp::PromAggregate(agg.clone())];
            Ok(Some(self.fetch(matchers, start, end, ops).await?))
        })
    }
}

impl DanausStorage {
    /// Whether two series that `w` may read have the same labels but for
    /// the metric name. The leaves list the series from their chunks' time
    /// ranges ([`PromFn::Exists`]), decoding no point; a series whose
    /// chunks span the range without a sample in it counts, so this may
    /// say yes where the windows would not collide (the query is then not
    /// folded, never wrong).
    async fn names_may_collide(&self, matchers: &[Matcher], w: &PromWindow) -> Result<bool> {
        let (start, end) = w.sample_range();
        let exists = PromWindow { func: PromFn::Exists, params: Vec::new(), ..w.clone() };
        let series = self.fetch(matchers, start, end, vec![TableOp::Prom(exists)]).await?;
        let mut seen = std::collections::HashSet::with_capacity(series.len());
        Ok(!series.iter().all(|s| seen.insert(s.labels.without_name())))
    }
}
