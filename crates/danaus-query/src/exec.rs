//! Running a plan: leaf stages over sources, zone and root stages over the
//! outputs of the phase below, combining tables at the root.

use std::sync::Arc;

use danaus_model::{FieldValue, MetricKind, MetricSchema, TargetSchema, Value};
use futures::future::BoxFuture;

use crate::aggregate::{group_direct, GroupAcc, GroupSpec};
use crate::align::{align, AlignSpec};
use crate::combine::{join, union};
use crate::ctx::{Completeness, ExecCtx};
use crate::error::{Error, Result};
use crate::expr::{compile, CExpr, Context, Env};
use crate::plan::{Combine, FetchPlan, Node, Stage, TableOp};
use crate::prom::{PromAggregate, PromWindow, Scratch};
use crate::source::{in_series, LeafPhase, PreAlign, SeriesSource};
use crate::syntax::ast::Ranker;
use crate::table::{Columns, PhaseOutput, Series, Table};

/// The leaves of one zone, run in this process (a zone mixer's, or every
/// zone's in tests and `danaus standalone`).
#[derive(Clone)]
pub struct ZoneSources {
    /// The zone's name.
    pub name: String,
    /// Its leaves (in-process sources or remote leaves).
    pub leaves: Vec<Arc<dyn LeafPhase>>,
}

/// A zone as the root phase sees it: something that runs a fetch's leaf
/// and zone stages over the zone's leaves and hands back the zone stage's
/// output. [`ZoneSources`] runs them here; the root mixer's remote zones
/// ask a zone mixer, which runs them there (the zone phase pushed down).
pub trait ZonePhase: Send + Sync {
    /// The zone's name in completeness reports.
    fn name(&self) -> &str;

    /// The schemas of a fetch.
    fn schemas(&self, tenant: &str, target: &str, metric: &str) -> Result<(Arc<TargetSchema>, Arc<MetricSchema>)>;

    /// Runs `fp`'s leaf and zone stages. With `emit` (given only when the
    /// plan [streams](FetchPlan::streams)), finished series go to it and
    /// `None` is returned; otherwise the zone stage's output is. Every
    /// source the zone asked is recorded in `completeness`. An
    /// unavailable [`Error::Source`] means the zone itself did not answer:
    /// the caller records that source missing.
    fn run_zone<'a>(
        &'a self,
        fp: &'a FetchPlan,
        ctx: &'a ExecCtx,
        completeness: &'a mut Completeness,
        emit: Option<&'a mut (dyn FnMut(Table) -> Result<()> + Send)>,
    ) -> BoxFuture<'a, Result<Option<PhaseOutput>>>;
}

impl ZonePhase for ZoneSources {
    fn name(&self) -> &str {
        &self.name
    }

    fn schemas(&self, tenant: &str, target: &str, metric: &str) -> Result<(Arc<TargetSchema>, Arc<MetricSchema>)> {
        self.leaves.first().ok_or_else(|| Error::NotFound("no leaves to query".into()))?.schemas(tenant, target, metric)
    }

    fn run_zone<'a>(
        &'a self,
        fp: &'a FetchPlan,
        ctx: &'a ExecCtx,
        completeness: &'a mut Completeness,
        emit: Option<&'a mut (dyn FnMut(Table) -> Result<()> + Send)>,
    ) -> BoxFuture<'a, Result<Option<PhaseOutput>>> {
        Box::pin(async move {
            if let Some(out) = emit {
                // One leaf after the other, each streaming into `out`.
                for leaf in &self.leaves {
                    match leaf.run_phase(fp, ctx, &mut *out).await {
                        Ok(_) => completeness.record(&self.name, leaf.name(), None),
                        Err(e) if is_unavailable(&e) => {
                            completeness.record(&self.name, leaf.name(), Some(e.to_string()))
                        }
                        Err(e) => return Err(e),
                    }
                }
                return Ok(None);
            }
            let runs = self.leaves.iter().map(|leaf| async move {
                let mut tables: Vec<Table> = Vec::new();
                let mut collect = |t: Table| -> Result<()> {
                    tables.push(t);
                    Ok(())
                };
                let r = leaf.run_phase(fp, ctx, &mut collect).await;
                (leaf.name().to_owned(), r.map(|partial| (partial, tables)))
            });
            let results = futures::future::join_all(runs).await;
            let mut leaf_outputs = Vec::new();
            for (name, r) in results {
                match r {
                    Ok((partials, tables)) => {
                        completeness.record(&self.name, &name, None);
                        leaf_outputs.extend(partials);
                        leaf_outputs.extend(tables.into_iter().map(PhaseOutput::Table));
                    }
                    Err(e) if is_unavailable(&e) => completeness.record(&self.name, &name, Some(e.to_string())),
                    Err(e) => return Err(e),
                }
            }
            let zone_cols = stage_input_columns(&fp.leaf, fp.fetch.columns.clone());
            Ok(Some(run_merge_stage(&fp.zone, leaf_outputs, zone_cols)?))
        })
    }
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
    Prom(PromWindow),
    PromAggregate(PromAggregate),
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
                TableOp::Prom(w) => Step::Prom(w.clone()),
                TableOp::PromAggregate(a) => {
                    columns = Arc::new(a.output_columns(&columns));
                    Step::PromAggregate(a.clone())
                }
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
                Step::Prom(w) => {
                    let mut scratch = Scratch::default();
                    let (mut times, mut values) = (Vec::new(), Vec::new());
                    for s in &mut t.series {
                        times.clear();
                        values.clear();
                        for p in &s.points {
                            if let Value::Double(v) = p.value {
                                times.push(p.end_time);
                                values.push(v);
                            }
                        }
                        s.points = w.eval_columns(&times, &values, &mut scratch);
                    }
                    Table { kind: MetricKind::Gauge, ..t }
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
                Step::PromAggregate(a) => a.apply(t),
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
        Some((TableOp::Align(a), rest)) => (Some(PreAlign::Align(a)), rest),
        Some((TableOp::Prom(w), rest)) => (Some(PreAlign::Prom(w)), rest),
        _ => (None, fp.leaf.ops.as_slice()),
    };
    let kind = match pre_align {
        Some(PreAlign::Align(a)) => a.output_kind(),
        Some(PreAlign::Prom(_)) => MetricKind::Gauge,
        None => spec.kind,
    };
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

/// The columns a node's result has.
pub fn output_columns(node: &Node) -> Columns {
    match node {
        Node::Fetch(fp) => {
            let zone = stage_input_columns(&fp.leaf, fp.fetch.columns.clone());
            let root = stage_input_columns(&fp.zone, zone);
            stage_input_columns(&fp.root, root)
        }
        Node::Tables { inputs, combine, ops } => {
            let mut cols: Vec<String> = Vec::new();
            for (i, input) in inputs.iter().enumerate() {
                for c in output_columns(input).iter() {
                    let join = matches!(combine, Combine::Join { .. });
                    if (i == 0 || join) && !cols.contains(c) {
                        cols.push(c.clone());
                    }
                }
            }
            let stage = Stage { merge: None, ops: ops.clone(), partial: None };
            stage_input_columns(&stage, Arc::new(cols))
        }
    }
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
        match op {
            TableOp::GroupBy(g) => cols = g.columns.clone(),
            TableOp::PromAggregate(a) => cols = Arc::new(a.output_columns(&cols)),
            _ => {}
        }
    }
    cols
}

/// Runs plans over a set of zones.
pub struct Executor<'a> {
    /// The zones.
    pub zones: &'a [Arc<dyn ZonePhase>],
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

    /// Runs the zones' phases at once (each zone's sources reported in
    /// zone order), then the root stage over their outputs.
    async fn run_fetch(
        &self,
        fp: &FetchPlan,
        completeness: &mut Completeness,
        stream: Option<&mut (dyn FnMut(Table) -> Result<()> + Send)>,
    ) -> Result<Table> {
        let streaming = fp.streams() && stream.is_some();
        // Zones stream concurrently: one at a time into the caller's sink.
        let sink = std::sync::Mutex::new(stream.filter(|_| streaming));
        let runs = self.zones.iter().map(|zone| {
            let sink = &sink;
            async move {
                let mut own = Completeness::default();
                let mut forward = |t: Table| -> Result<()> {
                    match sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_mut() {
                        Some(out) => out(t),
                        None => Ok(()),
                    }
                };
                let emit: Option<&mut (dyn FnMut(Table) -> Result<()> + Send)> =
                    if streaming { Some(&mut forward) } else { None };
                let r = zone.run_zone(fp, self.ctx, &mut own, emit).await;
                (own, r)
            }
        });
        let results = futures::future::join_all(runs).await;
        let mut zone_outputs = Vec::with_capacity(self.zones.len());
        for (zone, (own, r)) in self.zones.iter().zip(results) {
            for s in own.sources {
                completeness.record(&s.zone, &s.source, s.missing);
            }
            match r {
                Ok(out) => zone_outputs.extend(out),
                Err(Error::Source { source_name, message, unavailable: true }) => {
                    completeness.record(zone.name(), &source_name, Some(message))
                }
                Err(e) => return Err(e),
            }
        }
        if streaming {
            return Ok(Table::empty(Arc::new(Vec::new()), MetricKind::Gauge));
        }
        let zone_cols = stage_input_columns(&fp.leaf, fp.fetch.columns.clone());
        let root_cols = stage_input_columns(&fp.zone, zone_cols);
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
