//! The evaluator: Prometheus 2.42's semantics over data fetched up front.
//!
//! A query runs in three steps. [`needs`] walks the expression and works
//! out, for every selector, the time range any evaluation of it can touch
//! (offsets, `@`, ranges, the lookback window and enclosing subqueries
//! included). Every selector is then fetched once from the [`Storage`].
//! Last, [`Ev::eval`] computes each node over a grid of evaluation times,
//! step by step as Prometheus' `rangeEval` does: an instant vector is a
//! list of samples per step, a scalar a value per step, a range vector
//! the fetched series plus the window each step sees.
//!
//! Semantics kept from Prometheus 2.42 (the version the differential test
//! runs against): an instant selector takes the newest sample in
//! `[t − lookback, t]` unless it is a staleness marker; a range selector
//! takes the samples in `[t − range, t]` (closed on both ends; 3.x opened
//! the left end) and drops staleness markers; a subquery without a step
//! uses the default evaluation interval and aligns its grid to multiples
//! of its step.

mod aggregate;
mod binary;
mod functions;

pub(crate) use aggregate::valid_label_name;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use danaus_query::prom::{PromAggOp, PromAggregate, PromFn, PromWindow};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, AggregateExpr, AtModifier, Call, Expr, LabelModifier, Offset, VectorSelector};

use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::value::{is_stale, Labels, Sample, Series, Value, METRIC_NAME};

/// How queries are evaluated.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How far back an instant selector looks for a sample (ms); 5 min.
    pub lookback_ms: i64,
    /// Step of a subquery that names none (ms): Prometheus' default
    /// evaluation interval, 1 min.
    pub subquery_step_ms: i64,
    /// Most samples a query may hold at once, fetched and computed
    /// together (Prometheus' `--query.max-samples`, 50 million).
    pub max_samples: usize,
    /// Ask storage to compute range functions over selectors (and the
    /// selectors aggregations read) where the data is; on by default.
    /// Off, every selector's raw samples are fetched and evaluated here
    /// (the reference the pushed-down answers are tested against).
    pub push_down: bool,
    /// When evaluation gives up with a `timeout` error. Fetches are
    /// async and a caller's timer stops them; evaluation is computing on
    /// the caller's thread, so it looks at this clock itself (every
    /// node, series and few thousand steps) rather than hold a server
    /// thread past the query's timeout.
    pub deadline: Option<std::time::Instant>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            lookback_ms: 300_000,
            subquery_step_ms: 60_000,
            max_samples: 50_000_000,
            push_down: true,
            deadline: None,
        }
    }
}

/// Evaluation times: `start, start + step, …` up to `end` (ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Grid {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Grid {
    fn len(&self) -> usize {
        if self.end < self.start {
            0
        } else {
            ((self.end - self.start) / self.step.max(1)) as usize + 1
        }
    }

    fn time(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }
}

/// A vector element inside the evaluator: `t` is the sample's own time
/// for a selector's output (what `timestamp()` reports), the step's time
/// after any operation.
#[derive(Debug, Clone)]
pub(crate) struct El {
    pub labels: Arc<Labels>,
    pub v: f64,
    pub t: i64,
}

/// A range vector: series, and the window each step sees.
#[derive(Debug, Clone)]
pub(crate) struct Range {
    pub series: Arc<Vec<Series>>,
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
}

impl Range {
    /// The end of the window evaluated at step time `t`.
    pub fn window_end(&self, t: i64) -> i64 {
        self.at.unwrap_or(t) - self.offset
    }

    /// The samples of series `i` in the window at step time `t` (the
    /// series hold no staleness markers: see [`Range::new`]).
    pub fn window(&self, i: usize, t: i64) -> &[(i64, f64)] {
        let end = self.window_end(t);
        let pts = &self.series[i].points;
        let from = pts.partition_point(|p| p.0 < end - self.range);
        let to = from + pts[from..].partition_point(|p| p.0 <= end);
        &pts[from..to]
    }

    /// A range vector over `series`, whose staleness markers are left out
    /// once here (range windows never see them).
    pub fn new(series: Arc<Vec<Series>>, range: i64, offset: i64, at: Option<i64>) -> Range {
        let series = if series.iter().any(|s| s.points.iter().any(|p| is_stale(p.1))) {
            Arc::new(
                series
                    .iter()
                    .map(|s| Series {
                        labels: s.labels.clone(),
                        points: s.points.iter().filter(|p| !is_stale(p.1)).copied().collect(),
                    })
                    .collect(),
            )
        } else {
            series
        };
        Range { series, range, offset, at }
    }
}

/// What a node evaluates to, over a grid.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    Scalar(Vec<f64>),
    String(String),
    Vector(Vec<Vec<El>>),
    Matrix(Range),
}

/// Runs `text` at `time` (ms).
pub async fn instant(storage: &dyn Storage, text: &str, time: i64, opts: Options) -> Result<Value> {
    let expr = parse(text)?;
    let grid = Grid { start: time, end: time, step: 1 };
    let ev = Ev::load(storage, &expr, grid, opts).await?;
    match ev.eval(&expr, grid)? {
        Out::Scalar(v) => Ok(Value::Scalar(time, v[0])),
        Out::String(s) => Ok(Value::String(time, s)),
        Out::Vector(mut v) => {
            let els = v.pop().unwrap_or_default();
            check_unique(&els)?;
            Ok(Value::Vector(time, els.into_iter().map(|e| Sample { labels: e.labels, value: e.v }).collect()))
        }
        Out::Matrix(r) => {
            let mut out = Vec::new();
            for i in 0..r.series.len() {
                let w = r.window(i, time);
                if !w.is_empty() {
                    out.push(Series { labels: r.series[i].labels.clone(), points: w.to_vec() });
                }
            }
            Ok(Value::Matrix(out))
        }
    }
}

/// Runs `text` at `start, start + step, …, end` (ms); the answer is a
/// matrix.
pub async fn range(storage: &dyn Storage, text: &str, start: i64, end: i64, step: i64, opts: Options) -> Result<Value> {
    if step <= 0 {
        return Err(Error::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if end < start {
        return Err(Error::BadData("end timestamp must not be before start time".into()));
    }
    if (end - start) / step > 11_000 {
        return Err(Error::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                .into(),
        ));
    }
    let expr = parse(text)?;
    match expr.value_type() {
        parser::value::ValueType::Vector | parser::value::ValueType::Scalar => {}
        t => {
            return Err(Error::BadData(format!(
                "invalid expression type \"{t}\" for range query, must be Scalar or instant Vector"
            )))
        }
    }
    let grid = Grid { start, end, step };
    let ev = Ev::load(storage, &expr, grid, opts).await?;
    let out = ev.eval(&expr, grid)?;
    Ok(Value::Matrix(to_matrix(out, grid)?))
}

/// Parses `text` with promql-parser, rejecting what Prometheus 2.42 does
/// not have and accepting what it has that 3.x renamed (`holt_winters`,
/// now `double_exponential_smoothing`).
pub fn parse(text: &str) -> Result<Expr> {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        use parser::value::ValueType as T;
        // Only fails when the name is built in, which it is not in 0.11.
        let _ = parser::register_extra_functions(vec![parser::Function::new(
            "holt_winters",
            vec![T::Matrix, T::Scalar, T::Scalar],
            0,
            T::Vector,
            false,
        )]);
    });
    let expr = parser::parse(text).map_err(Error::BadData)?;
    let mut err = None;
    walk(&expr, &mut |e| {
        if let Expr::VectorSelector(vs) | Expr::MatrixSelector(parser::MatrixSelector { vs, .. }) = e {
            if !vs.matchers.or_matchers.is_empty() {
                err.get_or_insert_with(|| "`or` inside a selector's braces is not PromQL 2.x".to_owned());
            }
        }
    });
    match err {
        Some(e) => Err(Error::BadData(e)),
        None => Ok(expr),
    }
}

/// Calls `f` on every node, parents first.
pub(crate) fn walk<'a>(e: &'a Expr, f: &mut dyn FnMut(&'a Expr)) {
    f(e);
    match e {
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                walk(p, f);
            }
            walk(&a.expr, f);
        }
        Expr::Unary(u) => walk(&u.expr, f),
        Expr::Binary(b) => {
            walk(&b.lhs, f);
            walk(&b.rhs, f);
        }
        Expr::Paren(p) => walk(&p.expr, f),
        Expr::Subquery(s) => walk(&s.expr, f),
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, f)),
        _ => {}
    }
}

/// Every matcher of a selector, its metric name included.
pub fn selector_matchers(vs: &VectorSelector) -> Vec<Matcher> {
    let mut m = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(n) = &vs.name {
        m.push(Matcher::new(MatchOp::Equal, METRIC_NAME, n));
    }
    m.extend(vs.matchers.matchers.iter().cloned());
    m
}

/// The latest (and, negated, earliest) time Danaus can hold, in ms: its
/// points are timed in i64 nanoseconds (about 1678 to 2262). Times of a
/// query are clamped to it: no point lies beyond.
pub const TIME_LIMIT_MS: i64 = i64::MAX / MS;

/// The longest duration (range, offset, step) evaluation takes, in ms:
/// enough to cross every time Danaus can hold. Longer ones are clamped,
/// so that sums of a few times and durations stay far inside i64.
pub const SPAN_LIMIT_MS: i64 = 2 * TIME_LIMIT_MS;

fn span_ms(d: &Duration) -> i64 {
    d.as_millis().min(SPAN_LIMIT_MS as u128) as i64
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => span_ms(d),
        Some(Offset::Neg(d)) => -span_ms(d),
    }
}

pub(crate) fn duration_ms(d: &Duration) -> i64 {
    span_ms(d)
}

fn system_time_ms(t: &SystemTime) -> i64 {
    let ms = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => span_ms(&d),
        Err(e) => -span_ms(&e.duration()),
    };
    ms.clamp(-TIME_LIMIT_MS, TIME_LIMIT_MS)
}

/// What one selector is fetched for.
enum Fetch<'a> {
    /// Its raw samples in `[lo, hi]` (ms).
    Raw(&'a VectorSelector, i64, i64),
    /// A window function's values at every step, computed by storage.
    Pushed(&'a VectorSelector, PromWindow),
    /// An aggregation of a window function's values, folded by storage if
    /// it can; else the window function's values, stored under `inner`
    /// (the key of the call or selector aggregated).
    PushedAggregate { vs: &'a VectorSelector, w: PromWindow, agg: PromAggregate, inner: usize },
}

/// Time ranges and fetched series, by selector (its address in the
/// expression, which outlives the evaluation), and pushed-down window
/// functions' values, by the call (or, for an instant selector an
/// aggregation reads, the selector).
pub(crate) struct Ev {
    data: HashMap<usize, Arc<Vec<Series>>>,
    pushed: HashMap<usize, (Arc<Vec<Series>>, PromWindow)>,
    /// Partial aggregates storage folded, by aggregation.
    folded: HashMap<usize, (Arc<Vec<Series>>, PromWindow)>,
    opts: Options,
    /// The query's own start and end, for `@ start()` and `@ end()`.
    query: Grid,
    /// Work done since the deadline was last looked at.
    work: std::cell::Cell<u32>,
}

/// Units of work (steps, series, nodes) between two looks at the clock.
const WORK_PER_CLOCK_READ: u32 = 4096;

fn key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

fn call_key(c: &Call) -> usize {
    c as *const Call as usize
}

fn aggregate_key(a: &AggregateExpr) -> usize {
    a as *const AggregateExpr as usize
}

/// Nanoseconds in a millisecond.
const MS: i64 = 1_000_000;

/// How a fetch was answered.
enum Got {
    Raw,
    Windows(PromWindow),
    Folded(PromWindow),
}

/// `e` without enclosing parentheses.
fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        e => e,
    }
}

/// The value of a number literal (possibly negated or parenthesised).
fn number(e: &Expr) -> Option<f64> {
    match unparen(e) {
        Expr::NumberLiteral(n) => Some(n.val),
        Expr::Unary(u) => number(&u.expr).map(|v| -v),
        _ => None,
    }
}

/// Series of a window function's values at step times, as an instant
/// vector over `g` (the grid the function was pushed down for).
fn steps_of(series: &[Series], w: &PromWindow, g: Grid, drop_name: bool) -> Result<Vec<Vec<El>>> {
    if (w.start, w.end, w.step) != (g.start, g.end, g.step) {
        return Err(Error::Execution("internal: a pushed-down function was evaluated over another grid".into()));
    }
    let mut out: Vec<Vec<El>> = vec![Vec::new(); g.len()];
    for s in series {
        // Storage may have left the name out already.
        let labels =
            if drop_name && s.labels.name().is_some() { Arc::new(s.labels.without_name()) } else { s.labels.clone() };
        for &(t, v) in &s.points {
            let i = (t - g.start).div_euclid(g.step.max(1));
            if let Some(step) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
                step.push(El { labels: labels.clone(), v, t });
            }
        }
    }
    Ok(out)
}

impl Ev {
    /// Counts `n` units of work; past the deadline, a `timeout` error.
    pub(crate) fn work(&self, n: usize) -> Result<()> {
        let Some(deadline) = self.opts.deadline else { return Ok(()) };
        let done = self.work.get().saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        if done < WORK_PER_CLOCK_READ {
            self.work.set(done);
            return Ok(());
        }
        self.work.set(0);
        if std::time::Instant::now() >= deadline {
            return Err(Error::Timeout("query evaluation".into()));
        }
        Ok(())
    }

    /// Fails when `n` samples are more than the query may hold.
    fn hold(&self, n: usize, what: impl FnOnce() -> String) -> Result<()> {
        if n > self.opts.max_samples {
            return Err(Error::TooLarge(format!(
                "query processing would load too many samples into memory in query execution: {} holds {n} \
                 (the limit is {})",
                what(),
                self.opts.max_samples
            )));
        }
        Ok(())
    }

    /// Every step of a subquery's grid is a slot of its expression's
    /// answer, held whether or not a sample lands in it: a fine step over
    /// a long query would otherwise take memory and time without bound.
    fn hold_steps(&self, sq: &parser::SubqueryExpr, inner: Grid) -> Result<()> {
        self.hold(inner.len(), || format!("subquery {sq} at a {} ms step", inner.step))
    }

    fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        at.as_ref().map(|a| match a {
            AtModifier::Start => self.query.start,
            AtModifier::End => self.query.end,
            AtModifier::At(t) => system_time_ms(t),
        })
    }

    /// Works out each selector's range, fetches them all.
    async fn load(storage: &dyn Storage, expr: &Expr, query: Grid, opts: Options) -> Result<Ev> {
        let mut ev = Ev {
            data: HashMap::default(),
            pushed: HashMap::default(),
            folded: HashMap::default(),
            opts,
            query,
            work: std::cell::Cell::new(0),
        };
        let mut fetches: HashMap<usize, Fetch> = HashMap::default();
        ev.needs(expr, query, &mut fetches)?;
        let fetches = fetches.into_iter().map(|(k, f)| async move {
            let vs = match &f {
                Fetch::Raw(vs, ..) | Fetch::Pushed(vs, _) | Fetch::PushedAggregate { vs, .. } => *vs,
            };
            let matchers = selector_matchers(vs);
            if !matchers.iter().any(|m| !m.is_match("")) {
                return Err(Error::BadData("vector selector must contain at least one non-empty matcher".into()));
            }
            match f {
                Fetch::Raw(_, lo, hi) => storage.select(&matchers, lo, hi).await.map(|s| (k, s, Got::Raw)),
                Fetch::Pushed(_, w) => storage.select_windows(&matchers, &w).await.map(|s| (k, s, Got::Windows(w))),
                Fetch::PushedAggregate { w, agg, inner, .. } => {
                    match storage.select_aggregate(&matchers, &w, &agg).await? {
                        Some(s) => Ok((k, s, Got::Folded(w))),
                        None => storage.select_windows(&matchers, &w).await.map(|s| (inner, s, Got::Windows(w))),
                    }
                }
            }
        });
        let mut total = 0usize;
        for (k, mut series, got) in futures::future::try_join_all(fetches).await? {
            series.retain(|s| !s.points.is_empty());
            total += series.iter().map(|s| s.points.len()).sum::<usize>();
            if total > opts.max_samples {
                return Err(Error::TooLarge(
                    "query processing would load too many samples into memory in query execution".into(),
                ));
            }
            match got {
                Got::Windows(w) => {
                    ev.pushed.insert(k, (Arc::new(series), w));
                }
                Got::Folded(w) => {
                    ev.folded.insert(k, (Arc::new(series), w));
                }
                Got::Raw => {
                    ev.data.insert(k, Arc::new(series));
                }
            }
        }
        Ok(ev)
    }

    /// Records what each selector under `e` needs when `e` is evaluated
    /// over `g`: the time range of its raw samples, or, for a range
    /// function over a selector (and for a selector an aggregation reads
    /// directly), the window function to compute where the data is.
    fn needs<'a>(&self, e: &'a Expr, g: Grid, out: &mut HashMap<usize, Fetch<'a>>) -> Result<()> {
        let mut add = |vs: &'a VectorSelector, back: i64| {
            let off = offset_ms(&vs.offset);
            let (a, b) = match self.at_ms(&vs.at) {
                Some(t) => (t - off, t - off),
                None => (g.start - off, g.end - off),
            };
            if let Fetch::Raw(_, lo, hi) = out.entry(key(vs)).or_insert(Fetch::Raw(vs, i64::MAX, i64::MIN)) {
                *lo = (*lo).min(a - back);
                *hi = (*hi).max(b);
            }
        };
        match e {
            Expr::VectorSelector(vs) => add(vs, self.opts.lookback_ms),
            Expr::MatrixSelector(ms) => add(&ms.vs, duration_ms(&ms.range)),
            Expr::Subquery(sq) => {
                let inner = self.subquery_grid(sq, g.start, g.end);
                // Refused before anything is fetched for it: storage
                // would compute pushed-down windows over this grid too.
                self.hold_steps(sq, inner)?;
                self.needs(&sq.expr, inner, out)?;
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    self.needs(p, g, out)?;
                }
                if let Some(f) = self.foldable(a, g) {
                    out.insert(aggregate_key(a), f);
                    return Ok(());
                }
                match unparen(&a.expr) {
                    // Every aggregation's output is at the step's time, so
                    // the selector's samples are only needed step by step.
                    Expr::VectorSelector(vs) if self.opts.push_down => {
                        out.insert(key(vs), Fetch::Pushed(vs, self.window(PromFn::Lookback, Vec::new(), vs, None, g)));
                    }
                    inner => self.needs(inner, g, out)?,
                }
            }
            Expr::Unary(u) => self.needs(&u.expr, g, out)?,
            Expr::Binary(b) => {
                self.needs(&b.lhs, g, out)?;
                self.needs(&b.rhs, g, out)?;
            }
            Expr::Paren(p) => self.needs(&p.expr, g, out)?,
            Expr::Call(c) => match self.pushable(c, g) {
                Some((vs, w)) => {
                    out.insert(call_key(c), Fetch::Pushed(vs, w));
                }
                None => c.args.args.iter().try_for_each(|a| self.needs(a, g, out))?,
            },
            _ => {}
        }
        Ok(())
    }

    /// A window function over `vs`'s samples at every time of `g`.
    fn window(&self, func: PromFn, params: Vec<f64>, vs: &VectorSelector, range: Option<i64>, g: Grid) -> PromWindow {
        PromWindow {
            func,
            params,
            range: range.unwrap_or(self.opts.lookback_ms),
            offset: offset_ms(&vs.offset),
            at: self.at_ms(&vs.at),
            start: g.start,
            end: g.end,
            step: g.step,
        }
    }

    /// The selector and window function of a range function over a
    /// selector whose other arguments are constants, which storage can
    /// compute where the data is.
    fn pushable<'a>(&self, c: &'a Call, g: Grid) -> Option<(&'a VectorSelector, PromWindow)> {
        if !self.opts.push_down {
            return None;
        }
        let f = PromFn::of_name(c.func.name)?;
        let args: Vec<&Expr> = c.args.args.iter().map(|a| &**a).collect();
        let (range_arg, params) = match f {
            PromFn::QuantileOverTime => (1, vec![number(args.first()?)?]),
            PromFn::PredictLinear => (0, vec![number(args.get(1)?)?]),
            PromFn::HoltWinters => {
                let p = vec![number(args.get(1)?)?, number(args.get(2)?)?];
                // Invalid factors are the evaluator's error to report.
                functions::check_holt_winters(&p[..1], &p[1..]).ok()?;
                (0, p)
            }
            _ => (0, Vec::new()),
        };
        let Expr::MatrixSelector(ms) = args.get(range_arg)? else { return None };
        Some((&ms.vs, self.window(f, params, &ms.vs, Some(duration_ms(&ms.range)), g)))
    }

    /// What storage may fold of aggregation `a` over `g`: `sum`, `min`,
    /// `max`, `count` or `group` of a pushable range function or of a
    /// selector.
    fn foldable<'a>(&self, a: &'a AggregateExpr, g: Grid) -> Option<Fetch<'a>> {
        if !self.opts.push_down || a.param.is_some() {
            return None;
        }
        let op = PromAggOp::of_name(&a.op.to_string())?;
        let (vs, w, inner) = match unparen(&a.expr) {
            Expr::VectorSelector(vs) => (vs, self.window(PromFn::Lookback, Vec::new(), vs, None, g), key(vs)),
            Expr::Call(c) => {
                let (vs, w) = self.pushable(c, g)?;
                (vs, w, call_key(c))
            }
            _ => return None,
        };
        let (by, labels) = match &a.modifier {
            Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
            None => (true, Vec::new()),
        };
        let agg = PromAggregate {
            op,
            by,
            labels,
            start: g.start.saturating_mul(MS),
            step: g.step.max(1).saturating_mul(MS),
            steps: g.len(),
        };
        Some(Fetch::PushedAggregate { vs, w, agg, inner })
    }

    /// The partial aggregates storage folded for aggregation `a`, as an
    /// instant vector over `g`, if it folded them.
    pub(crate) fn folded(&self, a: &AggregateExpr, g: Grid) -> Result<Option<Vec<Vec<El>>>> {
        match self.folded.get(&aggregate_key(a)) {
            Some((series, w)) => Ok(Some(steps_of(series, w, g, false)?)),
            None => Ok(None),
        }
    }

    /// The pushed-down window function of call `c`, as an instant vector
    /// over `g`, if it was pushed down.
    pub(crate) fn pushed_call(&self, c: &Call, g: Grid, f: PromFn) -> Result<Option<Out>> {
        match self.pushed.get(&call_key(c)) {
            Some((series, w)) => Ok(Some(Out::Vector(steps_of(series, w, g, !f.keeps_name())?))),
            None => Ok(None),
        }
    }

    /// The grid a subquery's expression is evaluated on when the subquery
    /// is evaluated at times in `[lo, hi]`.
    fn subquery_grid(&self, sq: &parser::SubqueryExpr, lo: i64, hi: i64) -> Grid {
        let step = sq.step.as_ref().map_or(self.opts.subquery_step_ms, duration_ms).max(1);
        let off = offset_ms(&sq.offset);
        let range = duration_ms(&sq.range);
        let (lo, hi) = match self.at_ms(&sq.at) {
            Some(t) => (t, t),
            None => (lo, hi),
        };
        let from = lo - off - range;
        // The first multiple of the step at or after `from`.
        let mut start = step * from.div_euclid(step);
        if start < from {
            start += step;
        }
        Grid { start, end: hi - off, step }
    }

    /// Evaluates `e` at every time of `g`.
    pub(crate) fn eval(&self, e: &Expr, g: Grid) -> Result<Out> {
        let n = g.len();
        self.work(1)?;
        Ok(match e {
            Expr::NumberLiteral(x) => Out::Scalar(vec![x.val; n]),
            Expr::StringLiteral(s) => Out::String(s.val.clone()),
            Expr::Paren(p) => self.eval(&p.expr, g)?,
            Expr::VectorSelector(vs) => Out::Vector(self.instant_selector(vs, g)?),
            Expr::MatrixSelector(ms) => Out::Matrix(Range::new(
                self.data.get(&key(&ms.vs)).cloned().unwrap_or_default(),
                duration_ms(&ms.range),
                offset_ms(&ms.vs.offset),
                self.at_ms(&ms.vs.at),
            )),
            Expr::Subquery(sq) => Out::Matrix(self.subquery(sq, g)?),
            Expr::Unary(u) => match self.eval(&u.expr, g)? {
                Out::Scalar(v) => Out::Scalar(v.into_iter().map(|x| -x).collect()),
                Out::Vector(steps) => Out::Vector(
                    steps
                        .into_iter()
                        .enumerate()
                        .map(|(i, els)| {
                            els.into_iter()
                                .map(|e| El { labels: Arc::new(e.labels.without_name()), v: -e.v, t: g.time(i) })
                                .collect()
                        })
                        .collect(),
                ),
                _ => return Err(Error::BadData("unary minus applies to scalars and instant vectors".into())),
            },
            Expr::Binary(b) => binary::eval(self, b, g)?,
            Expr::Aggregate(a) => aggregate::eval(self, a, g)?,
            Expr::Call(c) => functions::eval(self, c, g)?,
            Expr::Extension(_) => return Err(Error::BadData("extension expressions are not supported".into())),
        })
    }

    /// An instant selector at every step: the newest sample within the
    /// lookback window, unless it is a staleness marker.
    fn instant_selector(&self, vs: &VectorSelector, g: Grid) -> Result<Vec<Vec<El>>> {
        if let Some((series, w)) = self.pushed.get(&key(vs)) {
            return steps_of(series, w, g, false);
        }
        let series = self.data.get(&key(vs)).cloned().unwrap_or_default();
        let off = offset_ms(&vs.offset);
        let at = self.at_ms(&vs.at);
        let mut out: Vec<Vec<El>> = vec![Vec::new(); g.len()];
        let mut held = 0usize;
        for s in series.iter() {
            self.work(g.len())?;
            // Step times never decrease: the newest sample at or before
            // each is found by moving forward.
            let mut k = 0;
            for (i, step) in out.iter_mut().enumerate() {
                let t = at.unwrap_or(g.time(i)) - off;
                while k < s.points.len() && s.points[k].0 <= t {
                    k += 1;
                }
                if k == 0 {
                    continue;
                }
                let (pt, v) = s.points[k - 1];
                if pt < t - self.opts.lookback_ms || is_stale(v) {
                    continue;
                }
                step.push(El { labels: s.labels.clone(), v, t: pt });
                held += 1;
            }
            self.hold(held, || format!("selector {vs} over {} steps", g.len()))?;
        }
        Ok(out)
    }

    /// A subquery: its expression over its own grid, as series.
    fn subquery(&self, sq: &parser::SubqueryExpr, g: Grid) -> Result<Range> {
        // `needs` refused a grid larger than the query may hold.
        let inner = self.subquery_grid(sq, g.start, g.end);
        let out = self.eval(&sq.expr, inner)?;
        let series = to_matrix(out, inner)?;
        Ok(Range::new(Arc::new(series), duration_ms(&sq.range), offset_ms(&sq.offset), self.at_ms(&sq.at)))
    }

    /// A scalar argument's values per step.
    pub(crate) fn scalar_arg(&self, e: &Expr, g: Grid, what: &str) -> Result<Vec<f64>> {
        match self.eval(e, g)? {
            Out::Scalar(v) => Ok(v),
            _ => Err(Error::BadData(format!("expected a scalar for {what}"))),
        }
    }

    /// A string argument.
    pub(crate) fn string_arg(&self, e: &Expr, what: &str) -> Result<String> {
        match e {
            Expr::StringLiteral(s) => Ok(s.val.clone()),
            Expr::Paren(p) => self.string_arg(&p.expr, what),
            _ => Err(Error::BadData(format!("expected a string literal for {what}"))),
        }
    }

    /// An instant-vector argument, step by step.
    pub(crate) fn vector_arg(&self, e: &Expr, g: Grid, what: &str) -> Result<Vec<Vec<El>>> {
        match self.eval(e, g)? {
            Out::Vector(v) => Ok(v),
            _ => Err(Error::BadData(format!("expected an instant vector for {what}"))),
        }
    }

    /// A range-vector argument.
    pub(crate) fn range_arg(&self, e: &Expr, g: Grid, what: &str) -> Result<Range> {
        match self.eval(e, g)? {
            Out::Matrix(r) => Ok(r),
            _ => Err(Error::BadData(format!("expected a range vector for {what}"))),
        }
    }
}

/// Fails when two samples of one step have the same labels.
pub(crate) fn check_unique(els: &[El]) -> Result<()> {
    if els.len() < 2 {
        return Ok(());
    }
    let mut seen: HashSet<&Labels> = HashSet::with_capacity_and_hasher(els.len(), Default::default());
    for e in els {
        if !seen.insert(&e.labels) {
            return Err(Error::Execution("vector cannot contain metrics with the same labelset".into()));
        }
    }
    Ok(())
}

/// [`check_unique`] at every step. A series' samples share their labels'
/// `Arc` across steps, so label sets are compared once per distinct
/// `Arc`, not once per sample; only when two distinct `Arc`s hold equal
/// labels are the steps checked one by one.
pub(crate) fn check_unique_steps(steps: &[Vec<El>]) -> Result<()> {
    let mut ids: HashMap<usize, usize> = HashMap::default();
    let mut arcs: Vec<&Labels> = Vec::new();
    let mut last: Vec<usize> = Vec::new();
    for (i, els) in steps.iter().enumerate() {
        if els.len() < 2 {
            continue;
        }
        for e in els {
            let id = *ids.entry(Arc::as_ptr(&e.labels) as usize).or_insert_with(|| {
                arcs.push(&e.labels);
                last.push(usize::MAX);
                arcs.len() - 1
            });
            if last[id] == i {
                return Err(Error::Execution("vector cannot contain metrics with the same labelset".into()));
            }
            last[id] = i;
        }
    }
    let mut seen: HashSet<&Labels> = HashSet::with_capacity_and_hasher(arcs.len(), Default::default());
    if arcs.iter().all(|l| seen.insert(l)) {
        return Ok(());
    }
    steps.iter().try_for_each(|els| check_unique(els))
}

/// A node's per-step output as series (a range query's answer).
pub(crate) fn to_matrix(out: Out, g: Grid) -> Result<Vec<Series>> {
    match out {
        Out::Scalar(v) => Ok(vec![Series {
            labels: Arc::new(Labels::empty()),
            points: v.into_iter().enumerate().map(|(i, x)| (g.time(i), x)).collect(),
        }]),
        Out::Vector(steps) => {
            check_unique_steps(&steps)?;
            // By the labels' `Arc` first (one per series, usually), by the
            // labels themselves when an `Arc` is new; `alive` keeps every
            // `Arc` seen so no address is reused while it is a key.
            let mut by_ptr: HashMap<usize, usize> = HashMap::default();
            let mut by_labels: HashMap<Arc<Labels>, usize> = HashMap::default();
            let mut alive: Vec<Arc<Labels>> = Vec::new();
            let mut series: Vec<Series> = Vec::new();
            for (i, els) in steps.into_iter().enumerate() {
                let t = g.time(i);
                for e in els {
                    let ptr = Arc::as_ptr(&e.labels) as usize;
                    let k = match by_ptr.get(&ptr) {
                        Some(&k) => k,
                        None => {
                            let k = *by_labels.entry(e.labels.clone()).or_insert_with(|| {
                                series.push(Series { labels: e.labels.clone(), points: Vec::new() });
                                series.len() - 1
                            });
                            by_ptr.insert(ptr, k);
                            alive.push(e.labels.clone());
                            k
                        }
                    };
                    series[k].points.push((t, e.v));
                }
            }
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
            Ok(series)
        }
        Out::String(_) | Out::Matrix(_) => {
            Err(Error::BadData("only scalars and instant vectors can be evaluated over a range".into()))
        }
    }
}
