//! Aligners: turn a series' raw points into one point per output time `t`
//! of a regular grid, computed over the window `(t - window, t]`.
//!
//! Counters (cumulative kind) are turned into increases first: between two
//! consecutive points the increase is the difference, unless the counter
//! was reset (its start time changed or its value went down), in which case
//! the increase is the new value (counted from the new start). The first
//! point counts in full only when its start time lies inside the fetched
//! range, i.e. the counter began there. `delta` sums the increases whose
//! later point falls in the window, so with `window == period` the deltas
//! of consecutive windows add up to the total increase: nothing is counted
//! twice or lost at window edges. Gauges are treated the same way without
//! resets; delta-kind points are increases already.

use danaus_model::{Distribution, MetricKind, Point, Value};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::syntax::ast::Aligner;

/// One alignment, fully resolved by the planner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignSpec {
    /// The aligner.
    pub aligner: Aligner,
    /// Window length (ns, > 0).
    pub window: i64,
    /// Grid step (ns, > 0).
    pub period: i64,
    /// First output time (a multiple of `period`).
    pub first: i64,
    /// Last output time (`first + k * period`), or `first - period` for an
    /// empty grid.
    pub last: i64,
    /// Start of the data fetched for this alignment: a counter whose start
    /// time is at or after it began inside the fetched range.
    pub fetched_from: i64,
}

impl AlignSpec {
    /// The output times.
    pub fn times(&self) -> impl Iterator<Item = i64> + '_ {
        let n = if self.last < self.first { 0 } else { (self.last - self.first) / self.period + 1 };
        (0..n).map(move |k| self.first + k * self.period)
    }

    /// The kind of the aligned values.
    pub fn output_kind(&self) -> MetricKind {
        match self.aligner {
            Aligner::Delta => MetricKind::Delta,
            _ => MetricKind::Gauge,
        }
    }
}

/// The grid of multiples of `period` inside `[start, end]`: `(first, last)`.
pub fn grid(start: i64, end: i64, period: i64) -> (i64, i64) {
    let first = start.div_euclid(period) * period + if start.rem_euclid(period) == 0 { 0 } else { period };
    let last = if end < first { first - period } else { first + (end - first) / period * period };
    (first, last)
}

fn unsupported(a: Aligner, v: &Value) -> Error {
    Error::Eval(format!(
        "aligner `{}` does not apply to {} values{}",
        a.name(),
        v.type_name(),
        match a {
            Aligner::Delta | Aligner::Rate | Aligner::Mean | Aligner::Interpolate => {
                "; use next_older or count, or convert with `value`"
            }
            _ => "",
        }
    ))
}

/// A numeric or distribution increase.
#[derive(Debug, Clone)]
enum Inc {
    I(i64),
    F(f64),
    D(Box<Distribution>),
}

impl Inc {
    fn add(self, other: &Inc) -> Result<Inc> {
        Ok(match (self, other) {
            (Inc::I(a), Inc::I(b)) => match a.checked_add(*b) {
                Some(v) => Inc::I(v),
                None => Inc::F(a as f64 + *b as f64),
            },
            (Inc::D(a), Inc::D(b)) => Inc::D(Box::new(a.merge(b).map_err(|e| Error::Eval(e.to_string()))?)),
            (a, b) => Inc::F(a.f64() + b.f64()),
        })
    }

    fn f64(&self) -> f64 {
        match self {
            Inc::I(i) => *i as f64,
            Inc::F(f) => *f,
            Inc::D(d) => d.count as f64,
        }
    }

    fn value(self) -> Value {
        match self {
            Inc::I(i) => Value::Int64(i),
            Inc::F(f) => Value::Double(f),
            Inc::D(d) => Value::Distribution(d),
        }
    }
}

/// `b - a` for distributions of one counter: `None` when a bucket went
/// down (a reset).
fn dist_sub(b: &Distribution, a: &Distribution) -> Option<Distribution> {
    if a.bucketer != b.bucketer || a.bucket_counts.len() != b.bucket_counts.len() {
        return None;
    }
    let mut counts = Vec::with_capacity(b.bucket_counts.len());
    for (x, y) in a.bucket_counts.iter().zip(&b.bucket_counts) {
        counts.push(y.checked_sub(*x)?);
    }
    let n = b.count.checked_sub(a.count)?;
    let (mean, ssd) = if n == 0 {
        (0.0, 0.0)
    } else {
        let mean = (b.sum() - a.sum()) / n as f64;
        // Chan's merge run backwards: ssd_b = ssd_a + ssd + d² · n_a·n / n_b.
        let d = mean - a.mean;
        let ssd = b.sum_of_squared_deviation
            - a.sum_of_squared_deviation
            - d * d * (a.count as f64 * n as f64 / b.count as f64);
        (mean, ssd.max(0.0))
    };
    Some(Distribution {
        bucketer: b.bucketer.clone(),
        bucket_counts: counts,
        count: n,
        mean,
        sum_of_squared_deviation: ssd,
        exemplars: b.exemplars.clone(),
    })
}

/// Increases between consecutive points (see the module documentation).
fn increases(kind: MetricKind, points: &[Point], fetched_from: i64, a: Aligner) -> Result<Vec<Option<Inc>>> {
    let mut out = Vec::with_capacity(points.len());
    for (i, p) in points.iter().enumerate() {
        let inc = match (kind, &p.value) {
            (_, Value::Bool(_) | Value::String(_) | Value::Tuple(_)) => return Err(unsupported(a, &p.value)),
            (MetricKind::Delta, Value::Int64(v)) => Some(Inc::I(*v)),
            (MetricKind::Delta, Value::Double(v)) => Some(Inc::F(*v)),
            (MetricKind::Delta, Value::Distribution(d)) => Some(Inc::D(d.clone())),
            (MetricKind::Gauge, Value::Distribution(_)) => return Err(unsupported(a, &p.value)),
            (kind, v) => {
                let prev = i.checked_sub(1).map(|j| &points[j]);
                let began_here = p.start_time.is_some_and(|s| s >= fetched_from);
                match prev {
                    None if kind == MetricKind::Cumulative && began_here => Some(counter_value(v)),
                    None => None,
                    Some(q) => {
                        let restarted = kind == MetricKind::Cumulative
                            && matches!((q.start_time, p.start_time), (Some(a), Some(b)) if b != a);
                        match (&q.value, v) {
                            (Value::Int64(x), Value::Int64(y)) => {
                                Some(if restarted || (kind == MetricKind::Cumulative && y < x) {
                                    Inc::I(*y)
                                } else {
                                    match y.checked_sub(*x) {
                                        Some(d) => Inc::I(d),
                                        None => Inc::F(*y as f64 - *x as f64),
                                    }
                                })
                            }
                            (Value::Distribution(x), Value::Distribution(y)) => {
                                Some(Inc::D(Box::new(match (restarted, dist_sub(y, x)) {
                                    (false, Some(d)) => d,
                                    _ => (**y).clone(),
                                })))
                            }
                            (x, y) => {
                                let (x, y) = (num(x, a)?, num(y, a)?);
                                Some(Inc::F(if restarted || (kind == MetricKind::Cumulative && y < x) {
                                    y
                                } else {
                                    y - x
                                }))
                            }
                        }
                    }
                }
            }
        };
        out.push(inc);
    }
    Ok(out)
}

fn counter_value(v: &Value) -> Inc {
    match v {
        Value::Int64(i) => Inc::I(*i),
        Value::Distribution(d) => Inc::D(d.clone()),
        Value::Double(d) => Inc::F(*d),
        _ => Inc::F(f64::NAN),
    }
}

fn num(v: &Value, a: Aligner) -> Result<f64> {
    match v {
        Value::Int64(i) => Ok(*i as f64),
        Value::Double(d) => Ok(*d),
        v => Err(unsupported(a, v)),
    }
}

/// Aligns one series' points.
pub fn align(spec: &AlignSpec, kind: MetricKind, points: &[Point]) -> Result<Vec<Point>> {
    let mut out = Vec::new();
    if points.is_empty() {
        return Ok(out);
    }
    let w = spec.window;
    let incs = match spec.aligner {
        Aligner::Delta | Aligner::Rate => Some(increases(kind, points, spec.fetched_from, spec.aligner)?),
        _ => None,
    };
    // Points with end time in (t - w, t] are points[lo..hi].
    let (mut lo, mut hi) = (0usize, 0usize);
    for t in spec.times() {
        while hi < points.len() && points[hi].end_time <= t {
            hi += 1;
        }
        while lo < hi && points[lo].end_time <= t.saturating_sub(w) {
            lo += 1;
        }
        let window = &points[lo..hi];
        let value = match spec.aligner {
            Aligner::Delta | Aligner::Rate => {
                let mut sum: Option<Inc> = None;
                for inc in incs.as_deref().unwrap_or_default()[lo..hi].iter().flatten() {
                    sum = Some(match sum {
                        None => inc.clone(),
                        Some(s) => s.add(inc)?,
                    });
                }
                match (sum, spec.aligner) {
                    (None, _) => None,
                    (Some(s), Aligner::Rate) => match s {
                        Inc::D(_) => {
                            return Err(Error::Eval("aligner `rate` does not apply to distributions; use delta".into()))
                        }
                        s => Some(Value::Double(s.f64() / (w as f64 / 1e9))),
                    },
                    (Some(s), _) => Some(s.value()),
                }
            }
            Aligner::Count => (!window.is_empty()).then_some(Value::Int64(window.len() as i64)),
            Aligner::Mean => {
                if window.is_empty() {
                    None
                } else {
                    let mut sum = 0.0;
                    for p in window {
                        sum += num(&p.value, Aligner::Mean)?;
                    }
                    Some(Value::Double(sum / window.len() as f64))
                }
            }
            Aligner::Min | Aligner::Max => extreme(window, spec.aligner == Aligner::Max)?,
            Aligner::NextOlder => window.last().map(|p| p.value.clone()),
            Aligner::Interpolate => interpolate(points, hi, t, w)?,
        };
        if let Some(value) = value {
            out.push(Point { start_time: None, end_time: t, value });
        }
    }
    Ok(out)
}

/// [`align`] for a double series without start times, given as columns:
/// the same results, without a `Value` per raw point. `times` is sorted
/// with one point per time.
pub fn align_doubles(spec: &AlignSpec, kind: MetricKind, times: &[i64], values: &[f64]) -> Vec<Point> {
    let mut out = Vec::with_capacity(spec.times().size_hint().0.min(times.len()));
    if times.is_empty() {
        return out;
    }
    let w = spec.window;
    // Increase ending at point i (see `increases`; no start times here, so
    // a counter's first point is only a baseline).
    let inc = |i: usize| -> Option<f64> {
        match kind {
            MetricKind::Delta => Some(values[i]),
            _ if i == 0 => None,
            MetricKind::Cumulative if values[i] < values[i - 1] => Some(values[i]),
            _ => Some(values[i] - values[i - 1]),
        }
    };
    let (mut lo, mut hi) = (0usize, 0usize);
    for t in spec.times() {
        while hi < times.len() && times[hi] <= t {
            hi += 1;
        }
        while lo < hi && times[lo] <= t.saturating_sub(w) {
            lo += 1;
        }
        let n = hi - lo;
        let value = match spec.aligner {
            Aligner::Delta | Aligner::Rate => {
                let mut sum: Option<f64> = None;
                for i in lo..hi {
                    if let Some(x) = inc(i) {
                        sum = Some(sum.map_or(x, |s| s + x));
                    }
                }
                match (sum, spec.aligner) {
                    (Some(s), Aligner::Rate) => Some(Value::Double(s / (w as f64 / 1e9))),
                    (s, _) => s.map(Value::Double),
                }
            }
            Aligner::Count => (n > 0).then_some(Value::Int64(n as i64)),
            Aligner::Mean => (n > 0).then(|| Value::Double(values[lo..hi].iter().sum::<f64>() / n as f64)),
            Aligner::Min | Aligner::Max => (n > 0).then(|| {
                let max = spec.aligner == Aligner::Max;
                let mut best = values[lo];
                for &v in &values[lo + 1..hi] {
                    if best.is_nan() && !v.is_nan() || (!v.is_nan() && if max { v > best } else { v < best }) {
                        best = v;
                    }
                }
                Value::Double(best)
            }),
            Aligner::NextOlder => (n > 0).then(|| Value::Double(values[hi - 1])),
            Aligner::Interpolate => {
                let prev = hi.checked_sub(1).filter(|&i| times[i] > t.saturating_sub(w));
                let next = (hi < times.len() && times[hi] < t.saturating_add(w)).then_some(hi);
                match (prev, next) {
                    (Some(p), _) if times[p] == t => Some(values[p]),
                    (Some(p), Some(q)) => {
                        let f = (t - times[p]) as f64 / (times[q] - times[p]) as f64;
                        Some(values[p] + (values[q] - values[p]) * f)
                    }
                    (Some(p), None) => Some(values[p]),
                    (None, _) => None,
                }
                .map(Value::Double)
            }
        };
        if let Some(value) = value {
            out.push(Point { start_time: None, end_time: t, value });
        }
    }
    out
}

/// Min or max of a window; NaN only when every value is NaN.
fn extreme(window: &[Point], max: bool) -> Result<Option<Value>> {
    let a = if max { Aligner::Max } else { Aligner::Min };
    let mut best: Option<&Value> = None;
    for p in window {
        let better = match (best, &p.value) {
            (None, _) => true,
            (Some(Value::Int64(b)), Value::Int64(v)) => (v > b) == max && v != b,
            (Some(Value::Double(b)), Value::Double(v)) => {
                b.is_nan() && !v.is_nan() || (!v.is_nan() && if max { v > b } else { v < b })
            }
            (Some(b), v) => {
                let (b, v) = (num(b, a)?, num(v, a)?);
                b.is_nan() && !v.is_nan() || if max { v > b } else { v < b }
            }
        };
        if matches!(p.value, Value::Bool(_) | Value::String(_) | Value::Distribution(_) | Value::Tuple(_)) {
            return Err(unsupported(a, &p.value));
        }
        if better {
            best = Some(&p.value);
        }
    }
    Ok(best.cloned())
}

/// Linear interpolation at `t` between the last point at or before it and
/// the first after it, each within the window; the older point alone when
/// nothing newer is in reach. `hi` indexes the first point after `t`.
fn interpolate(points: &[Point], hi: usize, t: i64, w: i64) -> Result<Option<Value>> {
    let prev = hi.checked_sub(1).map(|i| &points[i]).filter(|p| p.end_time > t.saturating_sub(w));
    let next = points.get(hi).filter(|p| p.end_time < t.saturating_add(w));
    Ok(match (prev, next) {
        (Some(p), _) if p.end_time == t => Some(Value::Double(num(&p.value, Aligner::Interpolate)?)),
        (Some(p), Some(n)) => {
            let (a, b) = (num(&p.value, Aligner::Interpolate)?, num(&n.value, Aligner::Interpolate)?);
            let f = (t - p.end_time) as f64 / (n.end_time - p.end_time) as f64;
            Some(Value::Double(a + (b - a) * f))
        }
        (Some(p), None) => Some(Value::Double(num(&p.value, Aligner::Interpolate)?)),
        (None, _) => None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn pts(v: &[(i64, f64)]) -> Vec<Point> {
        v.iter().map(|&(t, x)| Point { start_time: Some(0), end_time: t * S, value: Value::Double(x) }).collect()
    }

    fn spec(a: Aligner, window: i64, first: i64, last: i64) -> AlignSpec {
        AlignSpec { aligner: a, window: window * S, period: 10 * S, first: first * S, last: last * S, fetched_from: -1 }
    }

    fn vals(p: &[Point]) -> Vec<(i64, f64)> {
        p.iter()
            .map(|p| {
                (
                    p.end_time / S,
                    match p.value {
                        Value::Double(d) => d,
                        Value::Int64(i) => i as f64,
                        _ => f64::NAN,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn grid_is_multiples_of_period() {
        assert_eq!(grid(5, 35, 10), (10, 30));
        assert_eq!(grid(10, 30, 10), (10, 30));
        assert_eq!(grid(-15, 5, 10), (-10, 0));
        let (f, l) = grid(11, 19, 10);
        assert!(l < f);
    }

    #[test]
    fn counter_delta_handles_resets_and_adds_up() {
        let p = pts(&[(1, 10.0), (9, 20.0), (15, 25.0), (21, 3.0), (29, 8.0)]);
        // The counter started (start time 0) before the fetched range:
        // its first value is only a baseline.
        let mut s = spec(Aligner::Delta, 10, 10, 30);
        s.fetched_from = 1;
        let out = align(&s, MetricKind::Cumulative, &p).unwrap();
        // (0,10]: 10→20 is +10. (10,20]: +5. (20,30]: reset → +3, then +5.
        assert_eq!(vals(&out), vec![(10, 10.0), (20, 5.0), (30, 8.0)]);
        let total: f64 = vals(&out).iter().map(|x| x.1).sum();
        assert_eq!(total, 10.0 + 5.0 + 3.0 + 5.0);
        // Started inside the fetched range: the first value counts too.
        let out = align(&spec(Aligner::Delta, 10, 10, 30), MetricKind::Cumulative, &p).unwrap();
        assert_eq!(vals(&out)[0], (10, 20.0));
    }

    #[test]
    fn counter_with_new_start_time_is_a_reset_even_when_it_grew() {
        let mut p = pts(&[(5, 10.0), (15, 30.0)]);
        p[1].start_time = Some(12 * S);
        let out = align(&spec(Aligner::Delta, 10, 20, 20), MetricKind::Cumulative, &p).unwrap();
        assert_eq!(vals(&out), vec![(20, 30.0)]);
    }

    #[test]
    fn interpolate_and_next_older() {
        let p = pts(&[(5, 0.0), (15, 10.0)]);
        let out = align(&spec(Aligner::Interpolate, 20, 10, 20), MetricKind::Gauge, &p).unwrap();
        assert_eq!(vals(&out), vec![(10, 5.0), (20, 10.0)]);
        let out = align(&spec(Aligner::NextOlder, 10, 10, 30), MetricKind::Gauge, &p).unwrap();
        assert_eq!(vals(&out), vec![(10, 0.0), (20, 10.0)]);
    }

    #[test]
    fn min_max_skip_nan() {
        let p = pts(&[(1, f64::NAN), (2, 3.0), (3, 1.0)]);
        let out = align(&spec(Aligner::Min, 10, 10, 10), MetricKind::Gauge, &p).unwrap();
        assert_eq!(vals(&out), vec![(10, 1.0)]);
        let out = align(&spec(Aligner::Max, 10, 10, 10), MetricKind::Gauge, &p).unwrap();
        assert_eq!(vals(&out), vec![(10, 3.0)]);
    }

    proptest::proptest! {
        /// The column kernel gives exactly what the general aligner gives.
        #[test]
        fn align_doubles_equals_align(
            raw in proptest::collection::vec((0i64..400, proptest::prop_oneof![-50.0f64..50.0, proptest::strategy::Just(f64::NAN)]), 0..60),
            aligner in proptest::sample::select(Aligner::ALL.to_vec()),
            kind in proptest::sample::select(vec![MetricKind::Gauge, MetricKind::Delta, MetricKind::Cumulative]),
            window in 1i64..120,
            period in 1i64..60,
            first in -50i64..300,
        ) {
            let mut raw = raw;
            raw.sort_by_key(|p| p.0);
            raw.dedup_by_key(|p| p.0);
            let times: Vec<i64> = raw.iter().map(|p| p.0 * S).collect();
            let values: Vec<f64> = raw.iter().map(|p| p.1).collect();
            let points: Vec<Point> = raw.iter().map(|&(t, v)| Point { start_time: None, end_time: t * S, value: Value::Double(v) }).collect();
            let first = first * S / (period * S) * (period * S);
            let spec = AlignSpec { aligner, window: window * S, period: period * S, first, last: first + 20 * period * S, fetched_from: 0 };
            let a = align(&spec, kind, &points).unwrap();
            let b = align_doubles(&spec, kind, &times, &values);
            proptest::prop_assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                proptest::prop_assert!(x.end_time == y.end_time && x.value.same_as(&y.value), "{:?} vs {:?}", x, y);
            }
        }
    }

    #[test]
    fn distribution_counter_delta_subtracts_buckets() {
        use danaus_model::Bucketer;
        let b = Bucketer::Explicit { bounds: vec![1.0, 10.0] };
        let d1 = Distribution::from_values(b.clone(), &[0.5, 5.0]);
        let d2 = Distribution::from_values(b, &[0.5, 5.0, 50.0, 60.0]);
        let p = vec![
            Point { start_time: Some(0), end_time: 5 * S, value: Value::Distribution(Box::new(d1)) },
            Point { start_time: Some(0), end_time: 15 * S, value: Value::Distribution(Box::new(d2)) },
        ];
        let out = align(&spec(Aligner::Delta, 10, 20, 20), MetricKind::Cumulative, &p).unwrap();
        let Value::Distribution(d) = &out[0].value else { panic!("{out:?}") };
        assert_eq!(d.bucket_counts, vec![0, 0, 2]);
        assert!((d.mean - 55.0).abs() < 1e-9);
        assert!((d.sum_of_squared_deviation - 50.0).abs() < 1e-6);
    }
}
