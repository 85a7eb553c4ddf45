//! Prometheus-semantics windows: PromQL's range functions (`rate`,
//! `*_over_time`, …) and an instant selector's lookback, evaluated over a
//! series' samples at every time of an evaluation grid.
//!
//! This is the PromQL front end's aligner. The planner of the Danaus
//! language never emits it; the PromQL evaluator (danaus-promql) puts a
//! [`PromWindow`] as the first operation of a fetch's leaf stage, so a
//! leaf reads each series' columns and hands on one value per step
//! instead of every raw point, and the evaluator calls the same per-window
//! kernel ([`window_value`]) for what it evaluates itself (subqueries,
//! per-step parameters). One implementation, wherever it runs.
//!
//! Times here are milliseconds, as in PromQL; windows are closed on both
//! ends (`[end − range, end]`, Prometheus 2.x); staleness markers are
//! dropped before a range function sees a window and end an instant
//! selector's lookback.

use std::sync::Arc;

use danaus_model::{FieldValue, MetricKind, Point, Value};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::table::{Columns, Series, Table};

/// The bit pattern Prometheus marks a series stale with (a NaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is a staleness marker (not any NaN: that exact one).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

const NS_PER_MS: i64 = 1_000_000;

/// A PromQL function over a window of samples, or the lookback of an
/// instant selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromFn {
    /// An instant selector: the newest sample in `[end − range, end]`,
    /// unless it is a staleness marker.
    Lookback,
    /// `rate`.
    Rate,
    /// `increase`.
    Increase,
    /// `delta`.
    Delta,
    /// `irate`.
    Irate,
    /// `idelta`.
    Idelta,
    /// `deriv`.
    Deriv,
    /// `predict_linear(…, params[0])`.
    PredictLinear,
    /// `holt_winters(…, params[0], params[1])`.
    HoltWinters,
    /// `avg_over_time`.
    AvgOverTime,
    /// `sum_over_time`.
    SumOverTime,
    /// `count_over_time`.
    CountOverTime,
    /// `min_over_time`.
    MinOverTime,
    /// `max_over_time`.
    MaxOverTime,
    /// `last_over_time`.
    LastOverTime,
    /// `present_over_time`.
    PresentOverTime,
    /// `stddev_over_time`.
    StddevOverTime,
    /// `stdvar_over_time`.
    StdvarOverTime,
    /// `quantile_over_time(params[0], …)`.
    QuantileOverTime,
    /// `changes`.
    Changes,
    /// `resets`.
    Resets,
    /// 1 at the first evaluation time when the series may have samples in
    /// the range any window reads. A leaf answers from its chunks' time
    /// ranges without decoding them (so a chunk that spans the range
    /// without a sample in it still counts): a cheap, conservative list
    /// of the series a query can touch.
    Exists,
}

impl PromFn {
    /// The range function a PromQL name calls, if it is one.
    pub fn of_name(name: &str) -> Option<PromFn> {
        Some(match name {
            "rate" => PromFn::Rate,
            "increase" => PromFn::Increase,
            "delta" => PromFn::Delta,
            "irate" => PromFn::Irate,
            "idelta" => PromFn::Idelta,
            "deriv" => PromFn::Deriv,
            "predict_linear" => PromFn::PredictLinear,
            "holt_winters" => PromFn::HoltWinters,
            "avg_over_time" => PromFn::AvgOverTime,
            "sum_over_time" => PromFn::SumOverTime,
            "count_over_time" => PromFn::CountOverTime,
            "min_over_time" => PromFn::MinOverTime,
            "max_over_time" => PromFn::MaxOverTime,
            "last_over_time" => PromFn::LastOverTime,
            "present_over_time" => PromFn::PresentOverTime,
            "stddev_over_time" => PromFn::StddevOverTime,
            "stdvar_over_time" => PromFn::StdvarOverTime,
            "quantile_over_time" => PromFn::QuantileOverTime,
            "changes" => PromFn::Changes,
            "resets" => PromFn::Resets,
            _ => return None,
        })
    }

    /// Whether the output keeps the metric name (`last_over_time` and the
    /// instant selector do; every other function drops it).
    pub fn keeps_name(self) -> bool {
        matches!(self, PromFn::Lookback | PromFn::LastOverTime | PromFn::Exists)
    }
}

/// One window function over an evaluation grid, fully resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromWindow {
    /// The function.
    pub func: PromFn,
    /// Constant parameters (see [`PromFn`]).
    pub params: Vec<f64>,
    /// Window length (ms): the range, or the lookback delta.
    pub range: i64,
    /// `offset` (ms).
    pub offset: i64,
    /// `@` (ms): every window ends there.
    pub at: Option<i64>,
    /// First evaluation time (ms).
    pub start: i64,
    /// Last evaluation time (ms; `start` and multiples of `step` after it
    /// up to here).
    pub end: i64,
    /// Step between evaluation times (ms, > 0).
    pub step: i64,
}

impl PromWindow {
    /// Number of evaluation times.
    pub fn steps(&self) -> usize {
        if self.end < self.start {
            0
        } else {
            ((self.end - self.start) / self.step.max(1)) as usize + 1
        }
    }

    /// The `i`-th evaluation time.
    pub fn time(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    /// Where the window evaluated at `t` ends.
    pub fn window_end(&self, t: i64) -> i64 {
        self.at.unwrap_or(t) - self.offset
    }

    /// The samples (ms) any window reads: `[first end − range, last end]`.
    pub fn sample_range(&self) -> (i64, i64) {
        let (a, b) = match self.at {
            Some(t) => (t - self.offset, t - self.offset),
            None => (self.start - self.offset, self.end - self.offset),
        };
        (a - self.range, b)
    }

    /// Evaluates over one series' samples (ms, oldest first, staleness
    /// markers included): `out(i, value)` for every step `i` that has a
    /// value. `scratch` is reused across series.
    pub fn eval_series(&self, pts: &[(i64, f64)], scratch: &mut Vec<(i64, f64)>, mut out: impl FnMut(usize, f64)) {
        if self.func == PromFn::Exists {
            let (lo, hi) = self.sample_range();
            if self.steps() > 0 && pts.iter().any(|p| p.0 >= lo && p.0 <= hi) {
                out(0, 1.0);
            }
            return;
        }
        if self.func == PromFn::Lookback {
            let mut k = 0;
            for i in 0..self.steps() {
                let end = self.window_end(self.time(i));
                while k < pts.len() && pts[k].0 <= end {
                    k += 1;
                }
                if k == 0 {
                    continue;
                }
                let (t, v) = pts[k - 1];
                if t >= end - self.range && !is_stale(v) {
                    out(i, v);
                }
            }
            return;
        }
        let pts = if pts.iter().any(|p| is_stale(p.1)) {
            scratch.clear();
            scratch.extend(pts.iter().filter(|p| !is_stale(p.1)));
            &scratch[..]
        } else {
            pts
        };
        // A counter series without resets needs no reset pass per window.
        let counter = matches!(self.func, PromFn::Rate | PromFn::Increase);
        let no_resets = counter && !pts.windows(2).any(|w| w[1].1 < w[0].1);
        let ends = (0..self.steps()).map(|i| self.window_end(self.time(i)));
        for_each_window(pts, self.range, ends, |i, end, w| {
            let v = if no_resets {
                extrapolated(self.range, end, w, Counter::NoResets, self.func == PromFn::Rate)
            } else {
                window_value(self.func, &self.params, self.range, end, w)
            };
            if let Some(v) = v {
                out(i, v);
            }
        });
    }

    /// [`PromWindow::eval_series`] over a series' time (ns) and value
    /// columns, as points at the evaluation times (ns). `scratch` holds
    /// the samples in ms between calls.
    pub fn eval_columns(&self, times: &[i64], values: &[f64], scratch: &mut Scratch) -> Vec<Point> {
        scratch.samples.clear();
        scratch.samples.extend(times.iter().zip(values).map(|(&t, &v)| (t.div_euclid(NS_PER_MS), v)));
        let mut out = Vec::new();
        self.eval_series(&scratch.samples, &mut scratch.kept, |i, v| {
            out.push(Point {
                start_time: None,
                end_time: self.time(i).saturating_mul(NS_PER_MS),
                value: Value::Double(v),
            })
        });
        out
    }
}

/// Calls `f(i, end, window)` for the `i`-th of `ends` (which never
/// decrease, or stay put under `@`) with the samples of `pts` (oldest
/// first) in `[end − range, end]`, when there are any. The window's edges
/// only move forward: one pass over the samples for all windows.
pub fn for_each_window(
    pts: &[(i64, f64)],
    range: i64,
    ends: impl Iterator<Item = i64>,
    mut f: impl FnMut(usize, i64, &[(i64, f64)]),
) {
    let (mut from, mut to) = (0usize, 0usize);
    for (i, end) in ends.enumerate() {
        while from < pts.len() && pts[from].0 < end - range {
            from += 1;
        }
        to = to.max(from);
        while to < pts.len() && pts[to].0 <= end {
            to += 1;
        }
        if from < to {
            f(i, end, &pts[from..to]);
        }
    }
}

/// Buffers [`PromWindow::eval_columns`] reuses across series.
#[derive(Debug, Default)]
pub struct Scratch {
    samples: Vec<(i64, f64)>,
    kept: Vec<(i64, f64)>,
}

/// `f` over the samples of one window ending at `end` (ms, staleness
/// markers removed, not empty), with Prometheus 2.42's formulas; `None`
/// when the window yields no value (e.g. `rate` over one sample).
pub fn window_value(f: PromFn, params: &[f64], range: i64, end: i64, pts: &[(i64, f64)]) -> Option<f64> {
    let param = |i: usize| params.get(i).copied().unwrap_or(f64::NAN);
    match f {
        PromFn::Lookback | PromFn::LastOverTime => pts.last().map(|p| p.1),
        PromFn::Rate => extrapolated(range, end, pts, Counter::Yes, true),
        PromFn::Increase => extrapolated(range, end, pts, Counter::Yes, false),
        PromFn::Delta => extrapolated(range, end, pts, Counter::No, false),
        PromFn::Irate => instant_value(pts, true),
        PromFn::Idelta => instant_value(pts, false),
        PromFn::Deriv => (pts.len() >= 2).then(|| linear_regression(pts, pts[0].0).0),
        PromFn::PredictLinear => (pts.len() >= 2).then(|| {
            let (slope, intercept) = linear_regression(pts, end);
            slope * param(0) + intercept
        }),
        PromFn::HoltWinters => holt_winters(pts, param(0), param(1)),
        PromFn::AvgOverTime => Some(average(pts)),
        PromFn::SumOverTime => Some(kahan(pts.iter().map(|p| p.1))),
        PromFn::CountOverTime => Some(pts.len() as f64),
        PromFn::MinOverTime | PromFn::MaxOverTime => {
            let max = f == PromFn::MaxOverTime;
            let mut it = pts.iter().map(|p| p.1);
            let first = it.next()?;
            Some(it.fold(first, |m, v| if (max && v > m) || (!max && v < m) || m.is_nan() { v } else { m }))
        }
        PromFn::PresentOverTime | PromFn::Exists => Some(1.0),
        PromFn::StddevOverTime | PromFn::StdvarOverTime => {
            let (mut count, mut mean, mut aux) = (0.0f64, 0.0f64, 0.0f64);
            for &(_, v) in pts {
                count += 1.0;
                let delta = v - mean;
                mean += delta / count;
                aux += delta * (v - mean);
            }
            Some(if f == PromFn::StddevOverTime { (aux / count).sqrt() } else { aux / count })
        }
        PromFn::QuantileOverTime => {
            let mut vals: Vec<f64> = pts.iter().map(|p| p.1).collect();
            Some(quantile(param(0), &mut vals))
        }
        PromFn::Changes | PromFn::Resets => {
            let resets = f == PromFn::Resets;
            Some(
                pts.windows(2)
                    .filter(|w| {
                        let (prev, cur) = (w[0].1, w[1].1);
                        if resets {
                            cur < prev
                        } else {
                            cur != prev && !(cur.is_nan() && prev.is_nan())
                        }
                    })
                    .count() as f64,
            )
        }
    }
}

/// The mean of a window: the plain sum over the count while that sum is
/// finite (the same value as 2.42's running mean up to rounding, without a
/// division per sample); 2.42's running mean when the sum overflows or a
/// sample is infinite or NaN, so those cases give exactly its answer.
fn average(pts: &[(i64, f64)]) -> f64 {
    let sum: f64 = pts.iter().map(|p| p.1).sum();
    if sum.is_finite() {
        return sum / pts.len() as f64;
    }
    let (mut mean, mut count) = (0.0f64, 0.0f64);
    for &(_, v) in pts {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        mean += v / count - mean / count;
    }
    mean
}

/// Kahan-compensated sum, as Prometheus' `kahanSum`.
pub fn kahan(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut c) = (0.0f64, 0.0f64);
    for v in values {
        let t = sum + v;
        if t.is_infinite() {
            c = 0.0;
        } else if sum.abs() >= v.abs() {
            c += (sum - t) + v;
        } else {
            c += (v - t) + sum;
        }
        sum = t;
    }
    if sum.is_infinite() {
        sum
    } else {
        sum + c
    }
}

/// Whether `extrapolated` treats the samples as a counter.
#[derive(Clone, Copy, PartialEq)]
enum Counter {
    /// A gauge (`delta`).
    No,
    /// A counter: resets are looked for.
    Yes,
    /// A counter known to have no reset in the window.
    NoResets,
}

/// `rate`, `increase` and `delta`: the change over the window, corrected
/// for counter resets and extrapolated towards the window's edges as
/// Prometheus' `extrapolatedRate`.
fn extrapolated(range: i64, end: i64, pts: &[(i64, f64)], kind: Counter, rate: bool) -> Option<f64> {
    if pts.len() < 2 {
        return None;
    }
    let counter = kind != Counter::No;
    let start = end - range;
    let (first, last) = (pts[0], pts[pts.len() - 1]);
    let mut result = last.1 - first.1;
    if kind == Counter::Yes {
        let mut prev = 0.0;
        for &(_, v) in pts {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut to_start = (first.0 - start) as f64 / 1000.0;
    let to_end = (end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg = sampled / (pts.len() - 1) as f64;
    if counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold { to_start } else { avg / 2.0 };
    interval += if to_end < threshold { to_end } else { avg / 2.0 };
    result *= interval / sampled;
    if rate {
        result /= range as f64 / 1000.0;
    }
    Some(result)
}

/// `irate` and `idelta`: from the last two samples.
fn instant_value(pts: &[(i64, f64)], rate: bool) -> Option<f64> {
    if pts.len() < 2 {
        return None;
    }
    let (prev, last) = (pts[pts.len() - 2], pts[pts.len() - 1]);
    let mut result = if rate && last.1 < prev.1 { last.1 } else { last.1 - prev.1 };
    if rate {
        let interval = last.0 - prev.0;
        if interval == 0 {
            return None;
        }
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares slope (per second) and intercept at `intercept_time`.
fn linear_regression(pts: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let n = pts.len() as f64;
    let init = pts[0].1;
    if pts.iter().all(|p| p.1 == init) {
        return if init.is_infinite() { (f64::NAN, f64::NAN) } else { (0.0, init) };
    }
    let xs = || pts.iter().map(|p| (p.0 - intercept_time) as f64 / 1000.0);
    let sum_x = kahan(xs());
    let sum_y = kahan(pts.iter().map(|p| p.1));
    let sum_xy = kahan(xs().zip(pts.iter()).map(|(x, p)| x * p.1));
    let sum_x2 = kahan(xs().map(|x| x * x));
    let cov = sum_xy - sum_x * sum_y / n;
    let var = sum_x2 - sum_x * sum_x / n;
    let slope = cov / var;
    (slope, sum_y / n - slope * sum_x / n)
}

/// Double exponential smoothing, as 2.42's `holt_winters`.
fn holt_winters(pts: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if pts.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0f64, pts[0].1);
    let mut b = pts[1].1 - pts[0].1;
    for (i, p) in pts.iter().enumerate().skip(1) {
        // The trend from the two previous smoothed values (none yet at
        // the first step: the initial trend).
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let next = sf * p.1 + (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = next;
    }
    Some(s1)
}

/// The φ-quantile of `values` (sorted in place), interpolating between
/// neighbours as Prometheus does.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// A PromQL aggregation a leaf can fold its series into before handing
/// them on: the evaluator aggregates the leaves' groups again with the
/// same operator (`count`'s partial counts with `sum`), which gives the
/// same answer because each of these folds is associative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromAggOp {
    /// `sum`.
    Sum,
    /// `min` (NaN only when every value is NaN).
    Min,
    /// `max` (NaN only when every value is NaN).
    Max,
    /// `count`.
    Count,
    /// `group`.
    Group,
}

impl PromAggOp {
    /// The operator a PromQL aggregation name calls, if a leaf can fold it.
    pub fn of_name(name: &str) -> Option<PromAggOp> {
        Some(match name {
            "sum" => PromAggOp::Sum,
            "min" => PromAggOp::Min,
            "max" => PromAggOp::Max,
            "count" => PromAggOp::Count,
            "group" => PromAggOp::Group,
            _ => return None,
        })
    }
}

/// `op by (labels)` or `op without (labels)` over a table of window
/// function values at evaluation times (the output of a [`PromWindow`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromAggregate {
    /// The fold.
    pub op: PromAggOp,
    /// `by` (keep `labels`) or `without` (keep the others).
    pub by: bool,
    /// Label names.
    pub labels: Vec<String>,
    /// First evaluation time (ns).
    pub start: i64,
    /// Step between evaluation times (ns, > 0).
    pub step: i64,
    /// Number of evaluation times.
    pub steps: usize,
}

impl PromAggregate {
    /// Indexes of the columns that make a group's key: a column's label
    /// name is its name without a leading `metric.`.
    fn keys(&self, columns: &[String]) -> Vec<usize> {
        (0..columns.len())
            .filter(|&i| {
                let label = columns[i].strip_prefix("metric.").unwrap_or(&columns[i]);
                self.labels.iter().any(|l| l == label) == self.by
            })
            .collect()
    }

    /// The columns of the folded table.
    pub fn output_columns(&self, columns: &[String]) -> Vec<String> {
        self.keys(columns).into_iter().map(|i| columns[i].clone()).collect()
    }

    /// Folds `t`'s series into one per group: at every evaluation time
    /// with a value, the fold of the values there.
    pub fn apply(&self, t: Table) -> Table {
        let keys = self.keys(&t.columns);
        let columns: Columns = Arc::new(keys.iter().map(|&i| t.columns[i].clone()).collect());
        let mut index: FxHashMap<Vec<FieldValue>, usize> = FxHashMap::default();
        // Per group: its key, then value and count per step.
        let mut groups: Vec<(Vec<FieldValue>, Vec<f64>, Vec<u32>)> = Vec::new();
        for s in t.series {
            let key: Vec<FieldValue> = keys.iter().map(|&i| s.fields[i].clone()).collect();
            let g = *index.entry(key).or_insert_with_key(|k| {
                groups.push((k.clone(), vec![0.0; self.steps], vec![0; self.steps]));
                groups.len() - 1
            });
            let (_, values, counts) = &mut groups[g];
            for p in &s.points {
                let Value::Double(v) = p.value else { continue };
                let Some(i) = usize::try_from((p.end_time - self.start).div_euclid(self.step.max(1)))
                    .ok()
                    .filter(|&i| i < self.steps)
                else {
                    continue;
                };
                let (acc, n) = (&mut values[i], &mut counts[i]);
                *n += 1;
                if *n == 1 {
                    *acc = v;
                    continue;
                }
                match self.op {
                    PromAggOp::Sum => *acc += v,
                    PromAggOp::Min if *acc > v || acc.is_nan() => *acc = v,
                    PromAggOp::Max if *acc < v || acc.is_nan() => *acc = v,
                    _ => {}
                }
            }
        }
        let series = groups
            .into_iter()
            .map(|(fields, values, counts)| Series {
                fields,
                points: (0..self.steps)
                    .filter(|&i| counts[i] > 0)
                    .map(|i| {
                        let v = match self.op {
                            PromAggOp::Count => f64::from(counts[i]),
                            PromAggOp::Group => 1.0,
                            _ => values[i],
                        };
                        Point { start_time: None, end_time: self.start + i as i64 * self.step, value: Value::Double(v) }
                    })
                    .collect(),
            })
            .collect();
        Table { columns, kind: MetricKind::Gauge, series }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(func: PromFn, range: i64, start: i64, end: i64, step: i64) -> PromWindow {
        PromWindow { func, params: Vec::new(), range, offset: 0, at: None, start, end, step }
    }

    #[test]
    fn lookback_stops_at_stale_markers_and_the_delta() {
        let w = window(PromFn::Lookback, 300_000, 0, 600_000, 60_000);
        let pts = [(0, 1.0), (60_000, 2.0), (120_000, f64::from_bits(STALE_NAN_BITS))];
        let mut got = Vec::new();
        w.eval_series(&pts, &mut Vec::new(), |i, v| got.push((w.time(i), v)));
        // At 120 s the newest sample is the marker: nothing from there on.
        assert_eq!(got, vec![(0, 1.0), (60_000, 2.0)]);
        let pts = [(0, 1.0)];
        let mut got = Vec::new();
        w.eval_series(&pts, &mut Vec::new(), |i, v| got.push((w.time(i), v)));
        // Five minutes of lookback, both ends included.
        assert_eq!(got.len(), 6);
    }

    #[test]
    fn rate_windows_are_closed_and_skip_stale_markers() {
        let w = window(PromFn::Increase, 60_000, 60_000, 60_000, 1);
        let pts = [(0, 0.0), (30_000, f64::from_bits(STALE_NAN_BITS)), (60_000, 10.0)];
        let mut got = Vec::new();
        w.eval_series(&pts, &mut Vec::new(), |_, v| got.push(v));
        // Samples at both ends, marker dropped: 10 over exactly the range.
        assert_eq!(got, vec![10.0]);
    }

    #[test]
    fn columns_in_ns_give_points_at_step_times() {
        let w = window(PromFn::SumOverTime, 20_000, 10_000, 30_000, 10_000);
        let times = [0, 10_000_000_000, 20_000_000_000, 30_000_000_000];
        let values = [1.0, 2.0, 3.0, 4.0];
        let got = w.eval_columns(&times, &values, &mut Scratch::default());
        let sums: Vec<(i64, f64)> =
            got.iter().map(|p| (p.end_time, if let Value::Double(v) = p.value { v } else { 0.0 })).collect();
        assert_eq!(sums, vec![(10_000_000_000, 3.0), (20_000_000_000, 6.0), (30_000_000_000, 9.0)]);
    }

    #[test]
    fn leaves_fold_groups_by_label_names() {
        let columns: Columns = Arc::new(vec!["job".into(), "instance".into(), "metric.le".into()]);
        let s = |job: &str, inst: &str, le: &str, pts: &[(i64, f64)]| Series {
            fields: vec![
                FieldValue::String(job.into()),
                FieldValue::String(inst.into()),
                FieldValue::String(le.into()),
            ],
            points: pts
                .iter()
                .map(|&(t, v)| Point { start_time: None, end_time: t, value: Value::Double(v) })
                .collect(),
        };
        let t = Table {
            columns,
            kind: MetricKind::Gauge,
            series: vec![
                s("a", "1", "0.5", &[(10, 1.0), (20, f64::NAN)]),
                s("a", "2", "0.5", &[(10, 2.0), (20, 5.0)]),
                s("b", "1", "1", &[(20, 7.0)]),
            ],
        };
        let agg = |op, by, labels: &[&str]| PromAggregate {
            op,
            by,
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            start: 10,
            step: 10,
            steps: 2,
        };
        type Groups = Vec<(Vec<FieldValue>, Vec<(i64, f64)>)>;
        let values = |t: &Table| -> Groups {
            t.series
                .iter()
                .map(|s| {
                    let pts = s
                        .points
                        .iter()
                        .map(|p| (p.end_time, if let Value::Double(v) = p.value { v } else { -1.0 }))
                        .collect();
                    (s.fields.clone(), pts)
                })
                .collect()
        };
        let out = agg(PromAggOp::Max, true, &["job"]).apply(t.clone());
        assert_eq!(*out.columns, vec!["job".to_owned()]);
        // NaN gives way to any number.
        assert_eq!(
            values(&out),
            vec![
                (vec![FieldValue::String("a".into())], vec![(10, 2.0), (20, 5.0)]),
                (vec![FieldValue::String("b".into())], vec![(20, 7.0)]),
            ]
        );
        let out = agg(PromAggOp::Count, false, &["instance"]).apply(t.clone());
        assert_eq!(*out.columns, vec!["job".to_owned(), "metric.le".to_owned()]);
        assert_eq!(values(&out)[0].1, vec![(10, 2.0), (20, 2.0)]);
        let out = agg(PromAggOp::Sum, true, &["le"]).apply(t);
        assert_eq!(values(&out)[0].1[0], (10, 3.0));
        assert!(values(&out)[0].1[1].1.is_nan());
    }

    #[test]
    fn average_matches_the_running_mean_and_its_overflow_cases() {
        let pts: Vec<(i64, f64)> = (0..40).map(|i| (i, 1.0 + i as f64 * 0.1)).collect();
        assert!((average(&pts) - 2.95).abs() < 1e-12);
        let big = [(0, f64::MAX), (1, f64::MAX)];
        assert_eq!(average(&big), f64::MAX);
        let inf = [(0, f64::INFINITY), (1, 1.0)];
        assert_eq!(average(&inf), f64::INFINITY);
    }
}
