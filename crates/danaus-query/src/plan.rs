//! The planner: syntax tree → resolved operations → phases.
//!
//! Planning runs in three passes over each pipeline:
//! 1. **Forward**: resolve fields against the schemas, compute every
//!    table's columns, insert the implicit alignment that `group_by`,
//!    `join`, `union` and `top` need (gauge → mean, delta and cumulative →
//!    delta), and apply the pipeline's `every` (period) and `window`.
//! 2. **Backward**: from the query's time range walk the operations
//!    backwards to fix each aligner's output grid and the range to fetch
//!    (an aligner needs one window before its first output; `delta`/`rate`
//!    one more for the baseline; `time_shift` moves the range).
//! 3. **Split** into phases. A leaf holds whole targets, a zone whole
//!    locations. Per-series operations run where the data is. A `group_by`
//!    whose keys cover the whole target finishes on the leaf; one whose
//!    keys include the location field finishes in the zone; any other
//!    finishes at the root. Until it finishes, each phase folds its input
//!    into mergeable partial aggregates and the next phase merges them.
//!    `top`/`bottom` and combining several tables run at the root.

use std::sync::Arc;

use danaus_model::{FieldType, MetricKind, MetricSchema, TargetSchema, Value};
use danaus_model::{MatchOp, Matcher};
use serde::{Deserialize, Serialize};

use crate::aggregate::GroupSpec;
use crate::align::{grid, AlignSpec};
use crate::error::{Error, Result};
use crate::expr::{compile, literal_value, resolve_field, Context};
use crate::syntax::ast::*;
use crate::table::Columns;

/// The time range and default step of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRange {
    /// First time (inclusive, ns).
    pub start: i64,
    /// Last time (inclusive, ns).
    pub end: i64,
    /// Default alignment period (ns), used when the query has no `every`.
    pub step: i64,
}

/// The default step: one minute.
pub const DEFAULT_STEP: i64 = 60_000_000_000;

/// The columns of a fetch of `metric` under `target`: target fields in
/// declaration order, then metric fields (`metric.NAME` when the target
/// has `NAME` too).
pub fn fetch_columns(target: &TargetSchema, metric: &MetricSchema) -> Vec<String> {
    let mut columns: Vec<String> = target.fields.iter().map(|f| f.name.clone()).collect();
    for f in &metric.fields {
        let name = if columns.contains(&f.name) { format!("metric.{}", f.name) } else { f.name.clone() };
        columns.push(name);
    }
    columns
}

/// Schemas the planner resolves names against.
pub trait Catalog {
    /// The target and metric schema of a fetch.
    fn schemas(&self, target: &str, metric: &str) -> Result<(Arc<TargetSchema>, Arc<MetricSchema>)>;
}

/// What a leaf fetches: one metric of one target schema, narrowed by
/// matchers (pushed into the leaf's index) and a predicate on fields
/// (evaluated before any point is read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchSpec {
    /// Target schema.
    pub target: String,
    /// Metric.
    pub metric: String,
    /// Columns of the fetched table: target fields in declaration order,
    /// then metric fields (`metric.NAME` when the target has `NAME` too).
    pub columns: Columns,
    /// Kind of the metric.
    pub kind: MetricKind,
    /// Matchers the leaf's index applies (implied by `predicate`).
    pub matchers: Vec<Matcher>,
    /// Every `filter` before the first `group_by`, and-ed.
    pub predicate: Option<Expr>,
    /// First time to read (inclusive).
    pub start: i64,
    /// Last time to read (inclusive).
    pub end: i64,
}

/// A resolved per-table operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TableOp {
    /// Keep series whose fields satisfy the expression.
    Filter(Expr),
    /// Align every series.
    Align(AlignSpec),
    /// A PromQL range function (or instant selector) at every evaluation
    /// time: the PromQL front end's aligner (see [`crate::prom`]).
    Prom(crate::prom::PromWindow),
    /// A PromQL aggregation folded where the series are (see
    /// [`crate::prom::PromAggregate`]).
    PromAggregate(crate::prom::PromAggregate),
    /// Compute a new value per point.
    Value(Expr),
    /// Add the duration to every time.
    Shift(i64),
    /// A `group_by` that finishes in this phase.
    GroupBy(GroupSpec),
    /// `top`/`bottom`.
    Top {
        /// How many.
        k: u64,
        /// Smallest first.
        bottom: bool,
        /// Ranking.
        ranker: Ranker,
    },
}

/// Merge of the previous phase's partial aggregates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeGroup {
    /// The `group_by`.
    pub spec: GroupSpec,
    /// Finish here (this phase sees every series of each group), or pass
    /// the merged partials on.
    pub finish: bool,
}

/// One phase's work on one pipeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Merge partials from the phase below first.
    pub merge: Option<MergeGroup>,
    /// Then run these.
    pub ops: Vec<TableOp>,
    /// Then fold the result into partials of this `group_by`.
    pub partial: Option<GroupSpec>,
}

impl Stage {
    /// Whether the stage passes series through untouched.
    pub fn is_identity(&self) -> bool {
        self.merge.is_none() && self.ops.is_empty() && self.partial.is_none()
    }
}

/// A single-fetch pipeline split into phases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchPlan {
    /// What each leaf reads.
    pub fetch: FetchSpec,
    /// Runs on each leaf over its series.
    pub leaf: Stage,
    /// Runs in each zone over its leaves' outputs.
    pub zone: Stage,
    /// Runs at the root over the zones' outputs.
    pub root: Stage,
}

impl FetchPlan {
    /// Whether finished series pass from the leaves through the zone and
    /// root phases untouched, so they can stream to the caller as they
    /// are read.
    pub fn streams(&self) -> bool {
        self.leaf.partial.is_none() && self.zone.is_identity() && self.root.is_identity()
    }
}

/// How several tables become one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Combine {
    /// Inner join (`defaults == None`) or outer join with one default per
    /// input.
    Join {
        /// Defaults of an outer join.
        defaults: Option<Vec<Value>>,
    },
    /// All series of all inputs.
    Union,
}

/// A plan node: its output is one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Node {
    /// One fetch and its phases.
    Fetch(Box<FetchPlan>),
    /// Several tables combined at the root, then more operations there.
    Tables {
        /// The inputs.
        inputs: Vec<Node>,
        /// How they combine.
        combine: Combine,
        /// Root operations after combining.
        ops: Vec<TableOp>,
    },
}

/// A planned query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The root node.
    pub root: Node,
    /// The range it was planned for.
    pub range: QueryRange,
}

impl Plan {
    /// The same plan with every phase but the root emptied: leaves only
    /// fetch, and all operations run at the root. Evaluating it gives the
    /// reference result that pushed-down plans must equal.
    pub fn all_at_root(&self) -> Plan {
        fn node(n: &Node) -> Node {
            match n {
                Node::Fetch(f) => {
                    let mut ops = Vec::new();
                    if let Some(p) = &f.fetch.predicate {
                        ops.push(TableOp::Filter(p.clone()));
                    }
                    let mut root = Stage::default();
                    for st in [&f.leaf, &f.zone, &f.root] {
                        if let Some(m) = &st.merge {
                            if m.finish {
                                ops.push(TableOp::GroupBy(m.spec.clone()));
                            }
                        }
                        ops.extend(st.ops.iter().cloned());
                    }
                    root.ops = ops;
                    let mut fetch = f.fetch.clone();
                    fetch.matchers.clear();
                    fetch.predicate = None;
                    Node::Fetch(Box::new(FetchPlan { fetch, leaf: Stage::default(), zone: Stage::default(), root }))
                }
                Node::Tables { inputs, combine, ops } => Node::Tables {
                    inputs: inputs.iter().map(node).collect(),
                    combine: combine.clone(),
                    ops: ops.clone(),
                },
            }
        }
        Plan { root: node(&self.root), range: self.range }
    }
}

/// Plans `query` over `range`.
pub fn plan(query: &Query, range: QueryRange, catalog: &dyn Catalog) -> Result<Plan> {
    if range.start > range.end {
        return Err(Error::invalid(
            format!("the start time {} is after the end time {}", range.start, range.end),
            None,
        ));
    }
    if range.step <= 0 {
        return Err(Error::invalid(format!("the step must be positive, got {}", range.step), None));
    }
    let settings = Settings { period: range.step, window: None };
    let draft = forward(&query.pipeline, settings, catalog)?;
    let root = backward(draft, (range.start, range.end));
    Ok(Plan { root, range })
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    period: i64,
    window: Option<i64>,
}

/// What the planner knows about a table between operations.
#[derive(Debug, Clone)]
struct Shape {
    columns: Columns,
    kind: MetricKind,
    aligned: bool,
    /// Target field columns, while every series is still one target.
    target: Option<Vec<String>>,
    /// The location column, while it is still a column.
    location: Option<String>,
    /// Column types, where known.
    types: Vec<Option<FieldType>>,
}

#[derive(Debug)]
enum DraftOp {
    Filter(Expr),
    Align { aligner: Aligner, window: i64, period: i64 },
    Value(Expr),
    Shift(i64),
    GroupBy { spec: GroupSpec, level: u8 },
    Top { k: u64, bottom: bool, ranker: Ranker },
}

#[derive(Debug)]
enum DraftSource {
    Fetch {
        target: String,
        metric: String,
        columns: Columns,
        kind: MetricKind,
        types: Vec<Option<FieldType>>,
        /// Number of target-field columns (they come first).
        n_target: usize,
    },
    Tables {
        inputs: Vec<Draft>,
        combine: Combine,
    },
}

#[derive(Debug)]
struct Draft {
    source: DraftSource,
    ops: Vec<DraftOp>,
    shape: Shape,
}

fn settings_of(p: &Pipeline, inherited: Settings) -> Settings {
    let mut s = inherited;
    for op in &p.ops {
        match op {
            Op::Every(d, _) => s.period = *d,
            Op::Window(d, _) => s.window = Some(*d),
            _ => {}
        }
    }
    s
}

fn default_aligner(kind: MetricKind) -> Aligner {
    match kind {
        MetricKind::Gauge => Aligner::Mean,
        MetricKind::Delta | MetricKind::Cumulative => Aligner::Delta,
    }
}

fn aligned_kind(a: Aligner) -> MetricKind {
    if a == Aligner::Delta {
        MetricKind::Delta
    } else {
        MetricKind::Gauge
    }
}

fn implicit_align(shape: &mut Shape, ops: &mut Vec<DraftOp>, s: Settings) {
    if !shape.aligned {
        let aligner = default_aligner(shape.kind);
        ops.push(DraftOp::Align { aligner, window: s.window.unwrap_or(s.period), period: s.period });
        shape.aligned = true;
        shape.kind = aligned_kind(aligner);
    }
}

fn forward(p: &Pipeline, inherited: Settings, catalog: &dyn Catalog) -> Result<Draft> {
    let s = settings_of(p, inherited);
    let mut ops = Vec::new();
    let mut rest: &[Op] = &p.ops;
    let (source, mut shape) = match &p.source {
        Source::Fetch { target, metric, span } => {
            let (ts, ms) = catalog.schemas(target, metric).map_err(|e| match e {
                Error::NotFound(m) => {
                    Error::invalid(m, Some(*span)).with_hint("list schemas with `danausctl schema list`")
                }
                e => e,
            })?;
            let types: Vec<Option<FieldType>> =
                ts.fields.iter().chain(&ms.fields).map(|f| Some(f.field_type)).collect();
            let columns = Arc::new(fetch_columns(&ts, &ms));
            let shape = Shape {
                columns: columns.clone(),
                kind: ms.kind,
                aligned: false,
                target: Some(ts.fields.iter().map(|f| f.name.clone()).collect()),
                location: ts.fields.get(ts.location_index()).map(|f| f.name.clone()),
                types: types.clone(),
            };
            let source = DraftSource::Fetch {
                target: target.clone(),
                metric: metric.clone(),
                columns,
                kind: ms.kind,
                types,
                n_target: ts.fields.len(),
            };
            (source, shape)
        }
        Source::Tables { inputs, span } => {
            let Some((first, after)) = p.ops.split_first() else {
                return Err(Error::invalid(
                    "several tables need `join`, `outer_join` or `union` to combine them",
                    Some(*span),
                )
                .with_hint("add `| join` after the `}`"));
            };
            rest = after;
            let mut drafts = Vec::new();
            for input in inputs {
                let mut d = forward(input, s, catalog)?;
                implicit_align(&mut d.shape, &mut d.ops, settings_of(input, s));
                drafts.push(d);
            }
            let shapes: Vec<&Shape> = drafts.iter().map(|d| &d.shape).collect();
            let (combine, shape) = combine_shapes(first, &shapes, *span)?;
            (DraftSource::Tables { inputs: drafts, combine }, shape)
        }
    };
    for op in rest {
        match op {
            Op::Every(..) | Op::Window(..) => {}
            Op::Filter(e) => {
                compile(e, &shape.columns, Context::Filter)?;
                check_field_types(e, &shape)?;
                ops.push(DraftOp::Filter(e.clone()));
            }
            Op::Value(e) => {
                compile(e, &shape.columns, Context::Value)?;
                ops.push(DraftOp::Value(e.clone()));
            }
            Op::Align { aligner, window, .. } => {
                let window = window.or(s.window).unwrap_or(s.period);
                ops.push(DraftOp::Align { aligner: *aligner, window, period: s.period });
                shape.aligned = true;
                shape.kind = aligned_kind(*aligner);
            }
            Op::TimeShift(d, _) => ops.push(DraftOp::Shift(*d)),
            Op::GroupBy { fields, aggregator, .. } => {
                implicit_align(&mut shape, &mut ops, s);
                let mut keys = Vec::new();
                for f in fields {
                    let i = resolve_field(&shape.columns, f.qualifier, &f.name).ok_or_else(|| {
                        Error::invalid(format!("unknown field `{f}` in group_by"), Some(f.span))
                            .with_hint(format!("fields here: {}", shape.columns.join(", ")))
                    })?;
                    if keys.contains(&i) {
                        return Err(Error::invalid(format!("field `{f}` is listed twice"), Some(f.span)));
                    }
                    keys.push(i);
                }
                let names: Vec<String> = keys.iter().map(|&i| shape.columns[i].clone()).collect();
                let aggregator = aggregator.unwrap_or(Aggregator::Sum);
                let level = match (&shape.target, &shape.location) {
                    (Some(t), _) if t.iter().all(|c| names.contains(c)) => 0,
                    (_, Some(l)) if names.contains(l) => 1,
                    _ => 2,
                };
                shape.target = shape.target.take().filter(|t| t.iter().all(|c| names.contains(c)));
                shape.location = shape.location.take().filter(|l| names.contains(l));
                shape.types = keys.iter().map(|&i| shape.types[i]).collect();
                let columns = Arc::new(names);
                shape.columns = columns.clone();
                shape.kind = match (aggregator, shape.kind) {
                    (Aggregator::Sum | Aggregator::Distribution, MetricKind::Delta) => MetricKind::Delta,
                    _ => MetricKind::Gauge,
                };
                ops.push(DraftOp::GroupBy { spec: GroupSpec { keys, columns, aggregator }, level });
            }
            Op::Top { k, bottom, ranker, .. } => {
                implicit_align(&mut shape, &mut ops, s);
                ops.push(DraftOp::Top { k: *k, bottom: *bottom, ranker: ranker.unwrap_or(Ranker::Mean) });
            }
            Op::Join(span) | Op::OuterJoin(_, span) | Op::Union(span) => {
                return Err(Error::invalid(format!("`{}` combines several tables", op.keyword()), Some(*span))
                    .with_hint("write the inputs as `{ fetch … ; fetch … } | join`"));
            }
        }
    }
    Ok(Draft { source, ops, shape })
}

/// Comparing a field with a literal of another type never matches; say
/// so at planning time, pointing at the comparison.
fn check_field_types(e: &Expr, shape: &Shape) -> Result<()> {
    match &e.kind {
        ExprKind::Binary(op, l, r) if op.is_comparison() && !matches!(op, BinOp::Re | BinOp::Nre) => {
            let (f, lit) = match (&l.kind, &r.kind) {
                (ExprKind::Field(f), ExprKind::Lit(lit)) | (ExprKind::Lit(lit), ExprKind::Field(f)) => (f, lit),
                _ => return Ok(()),
            };
            let Some(ty) = resolve_field(&shape.columns, f.qualifier, &f.name).and_then(|i| shape.types[i]) else {
                return Ok(());
            };
            let ok = matches!(
                (ty, lit),
                (FieldType::String, Literal::Str(_))
                    | (FieldType::Int64, Literal::Int(_) | Literal::Float(_))
                    | (FieldType::Bool, Literal::Bool(_))
            );
            if !ok {
                let example = match ty {
                    FieldType::String => "a string such as \"x\"",
                    FieldType::Int64 => "a number such as 3",
                    FieldType::Bool => "true or false",
                };
                return Err(Error::invalid(
                    format!("field `{f}` is {}, but is compared with {lit}", ty.name()),
                    Some(e.span),
                )
                .with_hint(format!("compare it with {example}")));
            }
            Ok(())
        }
        ExprKind::Binary(_, l, r) => {
            check_field_types(l, shape)?;
            check_field_types(r, shape)
        }
        ExprKind::Unary(_, inner) => check_field_types(inner, shape),
        _ => Ok(()),
    }
}

fn sorted(cols: &[String]) -> Vec<&String> {
    let mut v: Vec<&String> = cols.iter().collect();
    v.sort();
    v
}

fn combine_shapes(op: &Op, shapes: &[&Shape], span: Span) -> Result<(Combine, Shape)> {
    let same_columns = |what: &str| -> Result<()> {
        for (i, s) in shapes.iter().enumerate().skip(1) {
            let (a, b) = (&shapes[0].columns, &s.columns);
            if sorted(a) != sorted(b) {
                return Err(Error::invalid(
                    format!(
                        "`{what}` needs inputs with the same fields: input 1 has [{}], input {} has [{}]",
                        a.join(", "),
                        i + 1,
                        b.join(", ")
                    ),
                    Some(span),
                )
                .with_hint("make them match with `group_by [...]` in each input"));
            }
        }
        Ok(())
    };
    let first = shapes[0];
    let shape = |columns: Columns, types: Vec<Option<FieldType>>, kind| Shape {
        columns,
        kind,
        aligned: true,
        target: None,
        location: None,
        types,
    };
    Ok(match op {
        Op::Join(_) => {
            let mut cols: Vec<String> = first.columns.to_vec();
            let mut types = first.types.clone();
            for s in &shapes[1..] {
                for (c, t) in s.columns.iter().zip(&s.types) {
                    if !cols.contains(c) {
                        cols.push(c.clone());
                        types.push(*t);
                    }
                }
            }
            (Combine::Join { defaults: None }, shape(Arc::new(cols), types, MetricKind::Gauge))
        }
        Op::OuterJoin(defaults, dspan) => {
            same_columns("outer_join")?;
            let defaults: Vec<Value> = match defaults.len() {
                1 => vec![literal_value(&defaults[0]); shapes.len()],
                n if n == shapes.len() => defaults.iter().map(literal_value).collect(),
                n => {
                    return Err(Error::invalid(
                        format!("`outer_join` got {n} defaults for {} inputs", shapes.len()),
                        Some(*dspan),
                    )
                    .with_hint("give one default for all inputs, or one per input"))
                }
            };
            (
                Combine::Join { defaults: Some(defaults) },
                shape(first.columns.clone(), first.types.clone(), MetricKind::Gauge),
            )
        }
        Op::Union(_) => {
            same_columns("union")?;
            let kind = if shapes.iter().all(|x| x.kind == first.kind) { first.kind } else { MetricKind::Gauge };
            (Combine::Union, shape(first.columns.clone(), first.types.clone(), kind))
        }
        other => {
            return Err(Error::invalid(
                format!("several tables need `join`, `outer_join` or `union` next, not `{}`", other.keyword()),
                Some(span),
            )
            .with_hint("add `| join` right after the `}`"))
        }
    })
}

/// Walks `ops` backwards from the output range, resolving aligner grids;
/// returns the resolved ops and the range their input must cover.
fn resolve_ranges(ops: Vec<DraftOp>, out: (i64, i64)) -> (Vec<TableOpDraft>, (i64, i64)) {
    let (mut s, mut e) = out;
    let mut resolved = Vec::with_capacity(ops.len());
    for op in ops.into_iter().rev() {
        let r = match op {
            DraftOp::Align { aligner, window: w, period } => {
                let (first, last) = grid(s, e, period);
                let (ns, ne) = match aligner {
                    Aligner::Delta | Aligner::Rate => (first.saturating_sub(w.saturating_mul(2)), last),
                    Aligner::Interpolate => (first.saturating_sub(w), last.saturating_add(w)),
                    _ => (first.saturating_sub(w), last),
                };
                s = ns;
                e = ne.max(ns);
                TableOpDraft::Op(TableOp::Align(AlignSpec {
                    aligner,
                    window: w,
                    period,
                    first,
                    last,
                    fetched_from: ns,
                }))
            }
            DraftOp::Shift(d) => {
                s = s.saturating_sub(d);
                e = e.saturating_sub(d);
                TableOpDraft::Op(TableOp::Shift(d))
            }
            DraftOp::Filter(x) => TableOpDraft::Filter(x),
            DraftOp::Value(x) => TableOpDraft::Op(TableOp::Value(x)),
            DraftOp::GroupBy { spec, level } => TableOpDraft::GroupBy(spec, level),
            DraftOp::Top { k, bottom, ranker } => TableOpDraft::Top(TableOp::Top { k, bottom, ranker }),
        };
        resolved.push(r);
    }
    resolved.reverse();
    (resolved, (s, e))
}

/// A resolved op with what the phase split needs to know.
enum TableOpDraft {
    Op(TableOp),
    Filter(Expr),
    GroupBy(GroupSpec, u8),
    Top(TableOp),
}

fn backward(d: Draft, out: (i64, i64)) -> Node {
    let (ops, input) = resolve_ranges(d.ops, out);
    match d.source {
        DraftSource::Tables { inputs, combine } => {
            let inputs = inputs.into_iter().map(|i| backward(i, input)).collect();
            let ops = ops
                .into_iter()
                .map(|o| match o {
                    TableOpDraft::Op(op) | TableOpDraft::Top(op) => op,
                    TableOpDraft::Filter(e) => TableOp::Filter(e),
                    TableOpDraft::GroupBy(spec, _) => TableOp::GroupBy(spec),
                })
                .collect();
            Node::Tables { inputs, combine, ops }
        }
        DraftSource::Fetch { target, metric, columns, kind, types, n_target } => {
            let mut stages = [Stage::default(), Stage::default(), Stage::default()];
            let mut cur = 0usize;
            let mut filters: Vec<Expr> = Vec::new();
            let mut grouped = false;
            for op in ops {
                match op {
                    // Filters see only fields, which nothing before the
                    // first group_by changes: they all run before reading.
                    TableOpDraft::Filter(e) if !grouped => filters.push(e),
                    TableOpDraft::Filter(e) => stages[cur].ops.push(TableOp::Filter(e)),
                    TableOpDraft::GroupBy(spec, level) => {
                        grouped = true;
                        let level = usize::from(level);
                        if level <= cur {
                            stages[cur].ops.push(TableOp::GroupBy(spec));
                        } else {
                            stages[cur].partial = Some(spec.clone());
                            for (st, stage) in stages.iter_mut().enumerate().take(level + 1).skip(cur + 1) {
                                stage.merge = Some(MergeGroup { spec: spec.clone(), finish: st == level });
                            }
                            cur = level;
                        }
                    }
                    TableOpDraft::Top(op) => {
                        cur = 2;
                        stages[2].ops.push(op);
                    }
                    TableOpDraft::Op(op) => stages[cur].ops.push(op),
                }
            }
            let predicate = filters.into_iter().reduce(|a, b| {
                let span = a.span.to(b.span);
                Expr { kind: ExprKind::Binary(BinOp::And, Box::new(a), Box::new(b)), span }
            });
            let matchers = predicate.as_ref().map(|p| pushdown(p, &columns, &types, n_target)).unwrap_or_default();
            let [leaf, zone, root] = stages;
            let fetch = FetchSpec { target, metric, columns, kind, matchers, predicate, start: input.0, end: input.1 };
            Node::Fetch(Box::new(FetchPlan { fetch, leaf, zone, root }))
        }
    }
}

/// The conjuncts of `p` that the leaf's index applies with the same
/// meaning: `field ==/!= literal` of the field's own type, and regexes.
fn pushdown(p: &Expr, columns: &[String], types: &[Option<FieldType>], n_target: usize) -> Vec<Matcher> {
    let mut out = Vec::new();
    let mut stack = vec![p];
    while let Some(e) = stack.pop() {
        let ExprKind::Binary(op, l, r) = &e.kind else { continue };
        if *op == BinOp::And {
            stack.push(r);
            stack.push(l);
            continue;
        }
        let (ExprKind::Field(f), ExprKind::Lit(lit)) = (&l.kind, &r.kind) else { continue };
        let Some(i) = resolve_field(columns, f.qualifier, &f.name) else { continue };
        let Some(ty) = types.get(i).copied().flatten() else { continue };
        let value = match (op, lit, ty) {
            (BinOp::Eq | BinOp::Ne, Literal::Str(s), FieldType::String) => s.clone(),
            (BinOp::Eq | BinOp::Ne, Literal::Int(v), FieldType::Int64) => v.to_string(),
            (BinOp::Eq | BinOp::Ne, Literal::Bool(b), FieldType::Bool) => b.to_string(),
            (BinOp::Re | BinOp::Nre, Literal::Str(s), _) => s.clone(),
            _ => continue,
        };
        let op = match op {
            BinOp::Eq => MatchOp::Eq,
            BinOp::Ne => MatchOp::Ne,
            BinOp::Re => MatchOp::Re,
            _ => MatchOp::Nre,
        };
        // Qualified, so the leaf never finds the name ambiguous.
        let name = &columns[i];
        let field = if i < n_target {
            format!("target.{name}")
        } else {
            format!("metric.{}", name.strip_prefix("metric.").unwrap_or(name))
        };
        out.push(Matcher { field, op, value });
    }
    out
}
