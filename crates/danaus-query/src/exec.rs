//! Running a plan: leaf stages over sources, zone and root stages over the
//! outputs of the phase below, combining tables at the root.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use danaus_model::{FieldValue, MetricKind, Point, Value};
use serde::{Deserialize, Serialize};

use crate::aggregate::{group_direct, GroupAcc, GroupSpec};
use crate::align::{align, AlignSpec};
use crate::error::{Error, Result};
use crate::expr::{compile, CExpr, Context, Env};
use crate::plan::{Combine, FetchPlan, Node, Stage, TableOp};
use crate::source::{in_series, SeriesSource};
use crate::syntax::ast::Ranker;
use crate::table::{Columns, PhaseOutput, Series, Table};

/// Per-query limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryLimits {
    /// Series a query may read, over all fetches and sources.
    pub max_series: u64,
    /// Points a query may read.
    pub max_points: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self { max_series: 1_000_000, max_points: 500_000_000 }
    }
}

/// Cancels a running query; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every query holding this token.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The state of one running query: its tenant, limits, counters and
/// cancellation.
#[derive(Debug)]
pub struct ExecCtx {
    /// Tenant whose data is read.
    pub tenant: String,
    /// Limits.
    pub limits: QueryLimits,
    /// Cancellation.
    pub cancel: Cancel,
    /// Give up after this instant.
    pub deadline: Option<Instant>,
    series: AtomicU64,
    points: AtomicU64,
}

impl ExecCtx {
    /// A context for `tenant`.
    pub fn new(tenant: impl Into<String>, limits: QueryLimits, cancel: Cancel, deadline: Option<Instant>) -> Self {
        Self { tenant: tenant.into(), limits, cancel, deadline, series: AtomicU64::new(0), points: AtomicU64::new(0) }
    }

    /// Series read so far.
    pub fn series_touched(&self) -> u64 {
        self.series.load(Ordering::Relaxed)
    }

    /// Points read so far.
    pub fn points_touched(&self) -> u64 {
        self.points.load(Ordering::Relaxed)
    }

    /// Fails when the query was cancelled or ran past its deadline.
    pub fn check(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled("the caller went away".into()));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::Cancelled("the deadline passed".into()));
        }
        Ok(())
    }

    fn touch_series(&self) -> Result<()> {
        let n = self.series.fetch_add(1, Ordering::Relaxed) + 1;
        if n > self.limits.max_series {
            return Err(Error::Limit {
                name: "max_series",
                what: "series touched",
                limit: self.limits.max_series,
                hint: "add filters to narrow it, or raise the limit",
            });
        }
        if n.is_multiple_of(1024) {
            self.check()?;
        }
        Ok(())
    }

    fn touch_points(&self, n: u64) -> Result<()> {
        let total = self.points.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.limits.max_points {
            return Err(Error::Limit {
                name: "max_points",
                what: "points read",
                limit: self.limits.max_points,
                hint: "shorten the time range or add filters",
            });
        }
        self.check()
    }
}

/// A source's part in a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// Zone of the source.
    pub zone: String,
    /// The source.
    pub source: String,
    /// `None` when it answered; why not otherwise.
    pub missing: Option<String>,
}

/// How complete a result is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completeness {
    /// Every source asked, with its outcome.
    pub sources: Vec<SourceStatus>,
}

impl Completeness {
    /// Whether every source answered.
    pub fn is_complete(&self) -> bool {
        self.sources.iter().all(|s| s.missing.is_none())
    }

    fn record(&mut self, zone: &str, source: &str, missing: Option<String>) {
        if let Some(s) = self.sources.iter_mut().find(|s| s.zone == zone && s.source == source) {
            if s.missing.is_none() {
                s.missing = missing;
            }
        } else {
            self.sources.push(SourceStatus { zone: zone.into(), source: source.into(), missing });
        }
    }
}

/// The leaves of one zone.
#[derive(Clone)]
pub struct ZoneSources {
    /// The zone's name.
    pub name: String,
    /// Its leaves.
    pub leaves: Vec<Arc<dyn SeriesSource>>,
}

/// Series per batch handed from sources and to callers.
pub const BATCH: usize = 512;

/// `{name=value, …}` of a series, for messages.
pub(crate) fn describe(columns: &[String], fields: &[FieldValue]) -> String {
    let parts: Vec<String> = columns.iter().zip(fields).map(|(c, v)| format!("{c}={v}")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// A compiled operation.
enum Step {
    Filter(CExpr),
    Align(AlignSpec),
    Value(CExpr),
    Shift(i64),
    GroupBy(GroupSpec),
    Top { k: u64, bottom: bool, ranker: Ranker },
}

/// A stage's operations compiled against its input columns.
struct Runner {
    steps: Vec<Step>,
}

impl Runner {
    fn new(ops: &[TableOp], mut columns: Columns) -> Result<(Runner, Columns)> {
        let mut steps = Vec::with_capacity(ops.len());
        for op in ops {
            steps.push(match op {
                TableOp::Filter(e) => Step::Filter(compile(e, &columns, Context::Filter)?),
                TableOp::Value(e) => Step::Value(compile(e, &columns, Context::Value)?),
                TableOp::Align(a) => Step::Align(a.clone()),
                TableOp::Shift(d) => Step::Shift(*d),
                TableOp::GroupBy(g) => {
                    columns = g.columns.clone();
                    Step::GroupBy(g.clone())
                }
                TableOp::Top { k, bottom, ranker } => Step::Top { k: *k, bottom: *bottom, ranker: *ranker },
            });
        }
        Ok((Runner { steps }, columns))
    }

    fn run(&self, mut t: Table) -> Result<Table> {
        for step in &self.steps {
            t = match step {
                Step::Filter(p) => {
                    let mut kept = Vec::with_capacity(t.series.len());
                    for s in t.series {
                        if p.matches(&s.fields)? {
                            kept.push(s);
                        }
                    }
                    Table { series: kept, ..t }
                }
                Step::Align(spec) => {
                    for s in &mut t.series {
                        s.points = align(spec, t.kind, &s.points).map_err(|e| in_series(e, &t.columns, &s.fields))?;
                    }
                    Table { kind: spec.output_kind(), ..t }
                }
                Step::Value(e) => {
                    for s in &mut t.series {
                        for p in &mut s.points {
                            p.value = e.eval(&Env { fields: &s.fields, val: Some(&p.value) }).map_err(|err| {
                                Error::Eval(format!(
                                    "value of series {} at {}: {err}",
                                    describe(&t.columns, &s.fields),
                                    danaus_model::time::format_time(p.end_time)
                                ))
                            })?;
                        }
                    }
                    Table { kind: MetricKind::Gauge, ..t }
                }
                Step::Shift(d) => {
                    for s in &mut t.series {
                        for p in &mut s.points {
                            p.end_time = p.end_time.saturating_add(*d);
                            p.start_time = p.start_time.map(|x| x.saturating_add(*d));
                        }
                    }
                    t
                }
                Step::GroupBy(g) => group_direct(g, &t)?,
                Step::Top { k, bottom, ranker } => top(t, *k, *bottom, *ranker)?,
            };
        }
        Ok(t)
    }
}

/// Keeps the `k` series ranking highest (or lowest); ties go to the
/// smaller fields, series without numeric values rank last.
fn top(mut t: Table, k: u64, bottom: bool, ranker: Ranker) -> Result<Table> {
    // Field order first, so errors and ties do not depend on where series came from.
    t.sort();
    let mut ranked: Vec<(Option<f64>, Series)> = Vec::with_capacity(t.series.len());
    for s in t.series.drain(..) {
        let mut vals = Vec::with_capacity(s.points.len());
        for p in &s.points {
            match &p.value {
                Value::Int64(i) => vals.push(*i as f64),
                Value::Double(d) if !d.is_nan() => vals.push(*d),
                Value::Double(_) => {}
                v => {
                    return Err(Error::Eval(format!(
                        "`{}` ranks numbers, series {} has {} values",
                        if bottom { "bottom" } else { "top" },
                        describe(&t.columns, &s.fields),
                        v.type_name()
                    )))
                }
            }
        }
        let rank = (!vals.is_empty()).then(|| match ranker {
            Ranker::Mean => vals.iter().sum::<f64>() / vals.len() as f64,
            Ranker::Sum => vals.iter().sum::<f64>(),
            Ranker::Max => vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Ranker::Min => vals.iter().copied().fold(f64::INFINITY, f64::min),
            Ranker::Last => vals[vals.len() - 1],
        });
        ranked.push((rank, s));
    }
    ranked.sort_by(|(ra, sa), (rb, sb)| {
        let by_rank = match (ra, rb) {
            (Some(a), Some(b)) if bottom => a.total_cmp(b),
            (Some(a), Some(b)) => b.total_cmp(a),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_rank.then_with(|| sa.fields.cmp(&sb.fields))
    });
    ranked.truncate(usize::try_from(k).unwrap_or(usize::MAX));
    t.series = ranked.into_iter().map(|(_, s)| s).collect();
    Ok(t)
}

/// Runs the leaf stage of `fp` on one source. Finished series go to
/// `emit` batch by batch; partial aggregates are returned.
pub async fn run_leaf_stage(
    source: &dyn SeriesSource,
    fp: &FetchPlan,
    ctx: &ExecCtx,
    emit: &mut (dyn FnMut(Table) -> Result<()> + Send),
) -> Result<Option<PhaseOutput>> {
    let spec = &fp.fetch;
    let predicate = spec.predicate.as_ref().map(|p| compile(p, &spec.columns, Context::Filter)).transpose()?;
    // A leading alignment runs inside the source, which can align a series
    // straight from its columns.
    let (pre_align, rest) = match fp.leaf.ops.split_first() {
        Some((TableOp::Align(a), rest)) => (Some(a), rest),
        _ => (None, fp.leaf.ops.as_slice()),
    };
    let kind = pre_align.map_or(spec.kind, AlignSpec::output_kind);
    let (runner, _) = Runner::new(rest, spec.columns.clone())?;
    let mut acc: Option<GroupAcc> = None;
    let mut acc_keys: Vec<usize> = Vec::new();
    let keep = |fields: &[FieldValue]| -> Result<bool> {
        if let Some(p) = &predicate {
            if !p.matches(fields)? {
                return Ok(false);
            }
        }
        ctx.touch_series()?;
        Ok(true)
    };
    let max_series = usize::try_from(ctx.limits.max_series).unwrap_or(usize::MAX);
    let mut sink = |batch: Vec<Series>, raw_points: u64| -> Result<()> {
        ctx.touch_points(raw_points)?;
        let t = runner.run(Table { columns: spec.columns.clone(), kind, series: batch })?;
        match &fp.leaf.partial {
            Some(g) => {
                let a = acc.get_or_insert_with(|| {
                    acc_keys = g.keys.clone();
                    GroupAcc::new(g, t.kind)
                });
                for s in &t.series {
                    a.add_series(&acc_keys, s)?;
                }
                Ok(())
            }
            None => emit(t),
        }
    };
    source.fetch(&ctx.tenant, spec, &keep, pre_align, max_series, BATCH, &mut sink).await?;
    Ok(match (&fp.leaf.partial, acc) {
        (Some(_), Some(a)) => Some(PhaseOutput::Partial(a.into_partial())),
        (Some(g), None) => Some(PhaseOutput::Partial(GroupAcc::new(g, kind).into_partial())),
        (None, _) => None,
    })
}

/// Runs a zone or root stage over the outputs of the phase below.
pub fn run_merge_stage(stage: &Stage, inputs: Vec<PhaseOutput>, columns: Columns) -> Result<PhaseOutput> {
    let table = match &stage.merge {
        Some(m) => {
            let mut acc: Option<GroupAcc> = None;
            for input in inputs {
                match input {
                    PhaseOutput::Partial(p) => {
                        let a = acc.get_or_insert_with(|| GroupAcc::for_partials(&p));
                        a.add_partial(p)?;
                    }
                    PhaseOutput::Table(_) => {
                        return Err(Error::Eval("internal: expected partial aggregates from the phase below".into()))
                    }
                }
            }
            let acc = acc.unwrap_or_else(|| GroupAcc::new(&m.spec, MetricKind::Gauge));
            if !m.finish {
                return Ok(PhaseOutput::Partial(acc.into_partial()));
            }
            acc.finish()?
        }
        None => {
            let mut out = Table::empty(columns, MetricKind::Gauge);
            let mut first = true;
            for input in inputs {
                match input {
                    PhaseOutput::Table(t) => {
                        if first {
                            out.kind = t.kind;
                            out.columns = t.columns;
                            first = false;
                        }
                        out.series.extend(t.series);
                    }
                    PhaseOutput::Partial(_) => {
                        return Err(Error::Eval("internal: unexpected partial aggregates".into()));
                    }
                }
            }
            out
        }
    };
    let (runner, _) = Runner::new(&stage.ops, table.columns.clone())?;
    let t = runner.run(table)?;
    Ok(match &stage.partial {
        Some(g) => {
            let mut acc = GroupAcc::new(g, t.kind);
            for s in &t.series {
                acc.add_series(&g.keys, s)?;
            }
            PhaseOutput::Partial(acc.into_partial())
        }
        None => PhaseOutput::Table(t),
    })
}

/// Columns a stage's input has, given the phase below's output columns.
fn stage_input_columns(below: &Stage, below_input: Columns) -> Columns {
    if let Some(p) = &below.partial {
        return p.columns.clone();
    }
    let mut cols = match &below.merge {
        Some(m) => m.spec.columns.clone(),
        None => below_input,
    };
    for op in &below.ops {
        if let TableOp::GroupBy(g) = op {
            cols = g.columns.clone();
        }
    }
    cols
}

/// Runs plans over a set of zones.
pub struct Executor<'a> {
    /// The zones and their leaves.
    pub zones: &'a [ZoneSources],
    /// The query's context.
    pub ctx: &'a ExecCtx,
}

fn is_unavailable(e: &Error) -> bool {
    matches!(e, Error::Source { unavailable: true, .. })
}

impl Executor<'_> {
    /// Runs `node`, returning its table. When `stream` is given and the
    /// node is a fetch whose zone and root phases pass series through,
    /// finished batches go to `stream` as the leaves produce them and the
    /// returned table is empty.
    pub async fn run(
        &self,
        node: &Node,
        completeness: &mut Completeness,
        stream: Option<&mut (dyn FnMut(Table) -> Result<()> + Send)>,
    ) -> Result<Table> {
        match node {
            Node::Fetch(fp) => self.run_fetch(fp, completeness, stream).await,
            Node::Tables { inputs, combine, ops } => {
                let mut tables = Vec::with_capacity(inputs.len());
                for input in inputs {
                    tables.push(Box::pin(self.run(input, completeness, None)).await?);
                }
                let t = match combine {
                    Combine::Union => union(tables),
                    Combine::Join { defaults } => join(tables, defaults.as_deref())?,
                };
                let (runner, _) = Runner::new(ops, t.columns.clone())?;
                let mut t = runner.run(t)?;
                if !ops.iter().any(|o| matches!(o, TableOp::Top { .. })) {
                    t.sort();
                }
                match stream {
                    Some(s) => {
                        emit_batches(t, s)?;
                        Ok(Table::empty(Arc::new(Vec::new()), MetricKind::Gauge))
                    }
                    None => Ok(t),
                }
            }
        }
    }

    async fn run_fetch(
        &self,
        fp: &FetchPlan,
        completeness: &mut Completeness,
        stream: Option<&mut (dyn FnMut(Table) -> Result<()> + Send)>,
    ) -> Result<Table> {
        let streaming = fp.leaf.partial.is_none() && fp.zone.is_identity() && fp.root.is_identity();
        if let (true, Some(out)) = (streaming, stream) {
            for zone in self.zones {
                for leaf in &zone.leaves {
                    match run_leaf_stage(leaf.as_ref(), fp, self.ctx, &mut *out).await {
                        Ok(_) => completeness.record(&zone.name, leaf.name(), None),
                        Err(e) if is_unavailable(&e) => {
                            completeness.record(&zone.name, leaf.name(), Some(e.to_string()))
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            return Ok(Table::empty(Arc::new(Vec::new()), MetricKind::Gauge));
        }
        let zone_cols = stage_input_columns(&fp.leaf, fp.fetch.columns.clone());
        let root_cols = stage_input_columns(&fp.zone, zone_cols.clone());
        let mut zone_outputs = Vec::with_capacity(self.zones.len());
        for zone in self.zones {
            let runs = zone.leaves.iter().map(|leaf| async move {
                let mut tables: Vec<Table> = Vec::new();
                let mut collect = |t: Table| -> Result<()> {
                    tables.push(t);
                    Ok(())
                };
                let r = run_leaf_stage(leaf.as_ref(), fp, self.ctx, &mut collect).await;
                (leaf.name().to_owned(), r.map(|partial| (partial, tables)))
            });
            let results = futures::future::join_all(runs).await;
            let mut leaf_outputs = Vec::new();
            for (name, r) in results {
                match r {
                    Ok((Some(partial), _)) => {
                        completeness.record(&zone.name, &name, None);
                        leaf_outputs.push(partial);
                    }
                    Ok((None, tables)) => {
                        completeness.record(&zone.name, &name, None);
                        leaf_outputs.extend(tables.into_iter().map(PhaseOutput::Table));
                    }
                    Err(e) if is_unavailable(&e) => completeness.record(&zone.name, &name, Some(e.to_string())),
                    Err(e) => return Err(e),
                }
            }
            zone_outputs.push(run_merge_stage(&fp.zone, leaf_outputs, zone_cols.clone())?);
        }
        match run_merge_stage(&fp.root, zone_outputs, root_cols)? {
            PhaseOutput::Table(mut t) => {
                if !fp.root.ops.iter().any(|o| matches!(o, TableOp::Top { .. })) {
                    t.sort();
                }
                Ok(t)
            }
            PhaseOutput::Partial(_) => {
                Err(Error::Eval("internal: the root phase ended with partial aggregates".into()))
            }
        }
    }
}

/// Hands `t` to `out` in batches of [`BATCH`] series.
pub fn emit_batches(mut t: Table, out: &mut (dyn FnMut(Table) -> Result<()> + Send)) -> Result<()> {
    while !t.series.is_empty() {
        let rest = t.series.split_off(t.series.len().min(BATCH));
        let batch = std::mem::replace(&mut t.series, rest);
        out(Table { columns: t.columns.clone(), kind: t.kind, series: batch })?;
    }
    Ok(())
}

/// All series of all tables; series with equal fields merge, the earlier
/// input winning at equal times.
fn union(tables: Vec<Table>) -> Table {
    let mut iter = tables.into_iter();
    let Some(mut out) = iter.next() else { return Table::empty(Arc::new(Vec::new()), MetricKind::Gauge) };
    let mut index: HashMap<Vec<FieldValue>, usize> =
        out.series.iter().enumerate().map(|(i, s)| (s.fields.clone(), i)).collect();
    for t in iter {
        if t.kind != out.kind {
            out.kind = MetricKind::Gauge;
        }
        // Columns may come in another order: map them to the first table's.
        let pos: Vec<usize> = out.columns.iter().map(|c| t.columns.iter().position(|x| x == c).unwrap_or(0)).collect();
        for s in t.series {
            let fields: Vec<FieldValue> = pos.iter().map(|&i| s.fields[i].clone()).collect();
            match index.get(&fields) {
                Some(&i) => {
                    let dst = &mut out.series[i].points;
                    let have: std::collections::HashSet<i64> = dst.iter().map(|p| p.end_time).collect();
                    dst.extend(s.points.into_iter().filter(|p| !have.contains(&p.end_time)));
                    dst.sort_by_key(|p| p.end_time);
                }
                None => {
                    index.insert(fields.clone(), out.series.len());
                    out.series.push(Series { fields, points: s.points });
                }
            }
        }
    }
    out
}

fn tuple_of(v: Value) -> Vec<Value> {
    match v {
        Value::Tuple(items) => items,
        v => vec![v],
    }
}

/// Joins tables on their common fields; values become tuples, one element
/// per input. Inner joins keep times where every input has a point; outer
/// joins fill missing sides (whole series or single times) with defaults.
fn join(tables: Vec<Table>, defaults: Option<&[Value]>) -> Result<Table> {
    let mut iter = tables.into_iter();
    let Some(first) = iter.next() else { return Ok(Table::empty(Arc::new(Vec::new()), MetricKind::Gauge)) };
    let mut width = 1usize;
    let mut acc = Table {
        columns: first.columns,
        kind: MetricKind::Gauge,
        series: first
            .series
            .into_iter()
            .map(|s| Series {
                fields: s.fields,
                points: s
                    .points
                    .into_iter()
                    .map(|p| Point { start_time: None, end_time: p.end_time, value: Value::Tuple(vec![p.value]) })
                    .collect(),
            })
            .collect(),
    };
    for right in iter {
        let common: Vec<(usize, usize)> = acc
            .columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| right.columns.iter().position(|x| x == c).map(|j| (i, j)))
            .collect();
        let extra: Vec<usize> = (0..right.columns.len()).filter(|j| !common.iter().any(|(_, x)| x == j)).collect();
        let mut columns = acc.columns.to_vec();
        columns.extend(extra.iter().map(|&j| right.columns[j].clone()));
        let mut by_key: HashMap<Vec<FieldValue>, Vec<usize>> = HashMap::new();
        for (i, s) in right.series.iter().enumerate() {
            by_key.entry(common.iter().map(|&(_, j)| s.fields[j].clone()).collect()).or_default().push(i);
        }
        let left_default: Option<Vec<Value>> = defaults.map(|d| d[..width].to_vec());
        let right_default: Option<Value> = defaults.map(|d| d[width].clone());
        let mut matched = vec![false; right.series.len()];
        let mut out = Vec::new();
        for l in acc.series {
            let key: Vec<FieldValue> = common.iter().map(|&(i, _)| l.fields[i].clone()).collect();
            let partners = by_key.get(&key).cloned().unwrap_or_default();
            if partners.is_empty() {
                if let Some(rd) = &right_default {
                    let points = l
                        .points
                        .into_iter()
                        .map(|p| {
                            let mut v = tuple_of(p.value);
                            v.push(rd.clone());
                            Point { start_time: None, end_time: p.end_time, value: Value::Tuple(v) }
                        })
                        .collect();
                    out.push(Series { fields: l.fields, points });
                }
                continue;
            }
            for j in partners {
                matched[j] = true;
                let r = &right.series[j];
                let mut fields = l.fields.clone();
                fields.extend(extra.iter().map(|&x| r.fields[x].clone()));
                let points = zip_points(&l.points, &r.points, left_default.as_deref(), right_default.as_ref());
                if !points.is_empty() || defaults.is_some() {
                    out.push(Series { fields, points });
                }
            }
        }
        if let Some(ld) = &left_default {
            for (j, r) in right.series.into_iter().enumerate() {
                if matched[j] {
                    continue;
                }
                // Outer joins have equal columns, so `extra` is empty and
                // the right side's fields, reordered, are the key.
                let mut fields = vec![FieldValue::Bool(false); columns.len()];
                for &(i, jj) in &common {
                    fields[i] = r.fields[jj].clone();
                }
                let points = r
                    .points
                    .into_iter()
                    .map(|p| {
                        let mut v = ld.clone();
                        v.push(p.value);
                        Point { start_time: None, end_time: p.end_time, value: Value::Tuple(v) }
                    })
                    .collect();
                out.push(Series { fields, points });
            }
        }
        acc = Table { columns: Arc::new(columns), kind: MetricKind::Gauge, series: out };
        width += 1;
    }
    Ok(acc)
}

/// Pairs points by time: both present, or with defaults on an outer join.
fn zip_points(l: &[Point], r: &[Point], ld: Option<&[Value]>, rd: Option<&Value>) -> Vec<Point> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < l.len() || j < r.len() {
        let lt = l.get(i).map(|p| p.end_time);
        let rt = r.get(j).map(|p| p.end_time);
        let (t, lv, rv) = match (lt, rt) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
                (a, Some(&l[i - 1].value), Some(&r[j - 1].value))
            }
            (Some(a), Some(b)) if a < b => {
                i += 1;
                (a, Some(&l[i - 1].value), None)
            }
            (Some(a), None) => {
                i += 1;
                (a, Some(&l[i - 1].value), None)
            }
            (_, Some(b)) => {
                j += 1;
                (b, None, Some(&r[j - 1].value))
            }
            (None, None) => break,
        };
        let left: Option<Vec<Value>> = match lv {
            Some(v) => Some(tuple_of(v.clone())),
            None => ld.map(<[Value]>::to_vec),
        };
        let right = rv.cloned().or_else(|| rd.cloned());
        if let (Some(mut left), Some(right)) = (left, right) {
            left.push(right);
            out.push(Point { start_time: None, end_time: t, value: Value::Tuple(left) });
        }
    }
    out
}
