//! `group_by` aggregation with mergeable partial aggregates.
//!
//! A phase that cannot see every series of a group (a leaf, when the group
//! keys do not cover the whole target) folds its series into [`Partial`]s
//! per group and output time; the next phase merges partials from all of
//! its inputs and, once it sees everything, finalizes them. Every partial
//! is a commutative monoid: sum and count add, mean is (sum, count),
//! stddev is (count, mean, M2) combined with Chan's formula, min/max keep
//! the extreme, percentile keeps the values (exact) or merges
//! distributions, and `distribution` merges bucket counts.

use danaus_model::{Bucketer, Distribution, FieldValue, MetricKind, Point, Value};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::syntax::ast::Aggregator;
use crate::table::{Columns, Series, Table};

/// The bucketer `distribution` uses for scalar inputs: 80 exponential
/// buckets from 0.001 with growth 1.4 (to about 5·10⁸).
pub fn default_bucketer() -> Bucketer {
    Bucketer::Exponential { num_finite: 80, growth: 1.4, scale: 0.001 }
}

/// A resolved `group_by`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSpec {
    /// Indexes of the kept columns in the input.
    pub keys: Vec<usize>,
    /// Names of the output columns.
    pub columns: Columns,
    /// The aggregator.
    pub aggregator: Aggregator,
}

/// A partial aggregate of one group at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Partial {
    /// Sum of int64 values (wide, checked at the end).
    SumI(i128),
    /// Sum of doubles.
    SumF(f64),
    /// Number of values.
    Count(u64),
    /// Sum and count for a mean.
    Mean {
        /// Sum.
        sum: f64,
        /// Count.
        n: u64,
    },
    /// Smallest value so far.
    Min(Value),
    /// Largest value so far.
    Max(Value),
    /// Count, mean and sum of squared deviations.
    Stddev {
        /// Count.
        n: u64,
        /// Mean.
        mean: f64,
        /// Sum of squared deviations.
        m2: f64,
    },
    /// Every value (exact percentiles).
    Values(Vec<f64>),
    /// A merged distribution.
    Dist(Box<Distribution>),
}

fn refuse(a: Aggregator, v: &Value) -> Error {
    Error::Eval(format!(
        "aggregator `{}` does not apply to {} values{}",
        a.name(),
        v.type_name(),
        if matches!(v, Value::Distribution(_)) {
            "; distributions take sum, mean, count, stddev, percentile or distribution"
        } else {
            "; count applies to every type, or convert with `value`"
        }
    ))
}

fn float(v: &Value, a: Aggregator) -> Result<f64> {
    match v {
        Value::Int64(i) => Ok(*i as f64),
        Value::Double(d) => Ok(*d),
        v => Err(refuse(a, v)),
    }
}

impl Partial {
    /// The partial of one value.
    pub fn of(a: Aggregator, v: &Value) -> Result<Partial> {
        if let (
            Value::Distribution(d),
            Aggregator::Sum
            | Aggregator::Mean
            | Aggregator::Stddev
            | Aggregator::Percentile(_)
            | Aggregator::Distribution,
        ) = (v, a)
        {
            return Ok(Partial::Dist(d.clone()));
        }
        Ok(match a {
            Aggregator::Count => Partial::Count(1),
            Aggregator::Sum => match v {
                Value::Int64(i) => Partial::SumI(i128::from(*i)),
                v => Partial::SumF(float(v, a)?),
            },
            Aggregator::Mean => Partial::Mean { sum: float(v, a)?, n: 1 },
            Aggregator::Min => {
                float(v, a)?;
                Partial::Min(v.clone())
            }
            Aggregator::Max => {
                float(v, a)?;
                Partial::Max(v.clone())
            }
            Aggregator::Stddev => {
                // NaN in, NaN out: m2 carries it even for a single value.
                let x = float(v, a)?;
                Partial::Stddev { n: 1, mean: x, m2: if x.is_nan() { f64::NAN } else { 0.0 } }
            }
            Aggregator::Percentile(_) => Partial::Values(vec![float(v, a)?]),
            Aggregator::Distribution => {
                Partial::Dist(Box::new(Distribution::from_values(default_bucketer(), &[float(v, a)?])))
            }
        })
    }

    /// Folds `other` into `self`.
    pub fn merge(&mut self, other: Partial) -> Result<()> {
        let merged = match (std::mem::replace(self, Partial::Count(0)), other) {
            (Partial::SumI(a), Partial::SumI(b)) => Partial::SumI(a + b),
            (Partial::SumI(a), Partial::SumF(b)) | (Partial::SumF(b), Partial::SumI(a)) => Partial::SumF(a as f64 + b),
            (Partial::SumF(a), Partial::SumF(b)) => Partial::SumF(a + b),
            (Partial::Count(a), Partial::Count(b)) => Partial::Count(a + b),
            (Partial::Mean { sum: s1, n: n1 }, Partial::Mean { sum: s2, n: n2 }) => {
                Partial::Mean { sum: s1 + s2, n: n1 + n2 }
            }
            (Partial::Min(a), Partial::Min(b)) => Partial::Min(pick(a, b, false)),
            (Partial::Max(a), Partial::Max(b)) => Partial::Max(pick(a, b, true)),
            (Partial::Stddev { n: na, mean: ma, m2: m2a }, Partial::Stddev { n: nb, mean: mb, m2: m2b }) => {
                let n = na + nb;
                let (fa, fb, fnn) = (na as f64, nb as f64, n as f64);
                let d = mb - ma;
                Partial::Stddev { n, mean: ma + d * fb / fnn, m2: m2a + m2b + d * d * fa * fb / fnn }
            }
            (Partial::Values(mut a), Partial::Values(b)) => {
                a.extend(b);
                Partial::Values(a)
            }
            (Partial::Dist(a), Partial::Dist(b)) => Partial::Dist(Box::new(
                a.merge(&b).map_err(|e| Error::Eval(format!("aggregating distributions: {e}")))?,
            )),
            (a, b) => {
                return Err(Error::Eval(format!(
                    "cannot aggregate a mix of value types in one group ({} and {})",
                    partial_name(&a),
                    partial_name(&b)
                )))
            }
        };
        *self = merged;
        Ok(())
    }

    /// The aggregated value (`None`: nothing to report).
    pub fn finish(self, a: Aggregator) -> Result<Value> {
        Ok(match self {
            Partial::SumI(s) => Value::Int64(
                i64::try_from(s)
                    .map_err(|_| Error::Eval(format!("sum {s} overflows int64; aggregate double(val) instead")))?,
            ),
            Partial::SumF(s) => Value::Double(s),
            Partial::Count(n) => Value::Int64(n as i64),
            Partial::Mean { sum, n } => Value::Double(sum / n as f64),
            Partial::Min(v) | Partial::Max(v) => v,
            Partial::Stddev { n, m2, .. } => Value::Double((m2 / n as f64).sqrt()),
            Partial::Values(mut v) => {
                let p = match a {
                    Aggregator::Percentile(p) => p,
                    _ => 50.0,
                };
                v.retain(|x| !x.is_nan());
                v.sort_by(f64::total_cmp);
                Value::Double(exact_percentile(&v, p))
            }
            Partial::Dist(d) => match a {
                Aggregator::Percentile(p) => Value::Double(d.percentile(p)),
                Aggregator::Mean => Value::Double(if d.count == 0 { f64::NAN } else { d.mean }),
                Aggregator::Stddev => Value::Double(d.variance().sqrt()),
                _ => Value::Distribution(d),
            },
        })
    }
}

fn partial_name(p: &Partial) -> &'static str {
    match p {
        Partial::SumI(_) => "int64",
        Partial::SumF(_) | Partial::Mean { .. } | Partial::Stddev { .. } | Partial::Values(_) => "number",
        Partial::Count(_) => "count",
        Partial::Min(_) | Partial::Max(_) => "number",
        Partial::Dist(_) => "distribution",
    }
}

/// Keeps the extreme of two numbers; NaN loses unless both are NaN.
fn pick(a: Value, b: Value, max: bool) -> Value {
    let f = |v: &Value| match v {
        Value::Int64(i) => *i as f64,
        Value::Double(d) => *d,
        _ => f64::NAN,
    };
    let (x, y) = (f(&a), f(&b));
    if x.is_nan() {
        return b;
    }
    if y.is_nan() {
        return a;
    }
    if let (Value::Int64(i), Value::Int64(j)) = (&a, &b) {
        return if (j > i) == max && j != i { b } else { a };
    }
    if (y > x) == max && y != x {
        b
    } else {
        a
    }
}

/// The `p`-th percentile of sorted values, interpolating between closest
/// ranks (NaN when empty).
pub fn exact_percentile(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let rank = p / 100.0 * (n - 1) as f64;
            let lo = rank.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
        }
    }
}

/// Aggregates a whole group's values at one time directly, without
/// partials: the path a phase takes when it sees every series of a group.
/// It shares no arithmetic with [`Partial::merge`], so comparing the two
/// (the pushdown property test) checks the partials.
pub fn aggregate_direct(a: Aggregator, vals: &[&Value]) -> Result<Value> {
    if a == Aggregator::Count {
        return Ok(Value::Int64(vals.len() as i64));
    }
    if vals.iter().any(|v| matches!(v, Value::Distribution(_))) {
        let mut merged: Option<Distribution> = None;
        for v in vals {
            let Value::Distribution(d) = v else {
                return Err(Error::Eval(
                    "cannot aggregate a mix of value types in one group (distribution and number)".into(),
                ));
            };
            if matches!(a, Aggregator::Min | Aggregator::Max) {
                return Err(refuse(a, v));
            }
            merged = Some(match merged {
                None => (**d).clone(),
                Some(m) => m.merge(d).map_err(|e| Error::Eval(format!("aggregating distributions: {e}")))?,
            });
        }
        let Some(d) = merged else { return Err(Error::Eval("empty group".into())) };
        return Partial::Dist(Box::new(d)).finish(a);
    }
    let mut nums = Vec::with_capacity(vals.len());
    for v in vals {
        nums.push(float(v, a)?);
    }
    let n = nums.len() as f64;
    Ok(match a {
        Aggregator::Sum => {
            if vals.iter().all(|v| matches!(v, Value::Int64(_))) {
                let s: i128 = vals.iter().map(|v| if let Value::Int64(i) = v { i128::from(*i) } else { 0 }).sum();
                return Partial::SumI(s).finish(a);
            }
            Value::Double(nums.iter().sum())
        }
        Aggregator::Mean => Value::Double(nums.iter().sum::<f64>() / n),
        Aggregator::Min | Aggregator::Max => {
            let max = a == Aggregator::Max;
            let best =
                vals.iter().zip(&nums).filter(|(_, x)| !x.is_nan()).fold(None::<(&Value, f64)>, |best, (v, x)| {
                    match best {
                        Some((_, b)) if (max && b >= *x) || (!max && b <= *x) => best,
                        _ => Some((v, *x)),
                    }
                });
            match best {
                Some((v, _)) => v.clone(),
                None => vals[0].clone(),
            }
        }
        Aggregator::Stddev => {
            let mean = nums.iter().sum::<f64>() / n;
            Value::Double((nums.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt())
        }
        Aggregator::Percentile(p) => {
            nums.retain(|x| !x.is_nan());
            nums.sort_by(f64::total_cmp);
            Value::Double(exact_percentile(&nums, p))
        }
        Aggregator::Distribution => Value::Distribution(Box::new(Distribution::from_values(default_bucketer(), &nums))),
        Aggregator::Count => Value::Int64(vals.len() as i64),
    })
}

/// Runs a `group_by` over a complete table: every series of each group is
/// here, so groups aggregate directly.
pub fn group_direct(spec: &GroupSpec, t: &Table) -> Result<Table> {
    let kind = match (spec.aggregator, t.kind) {
        (Aggregator::Sum | Aggregator::Distribution, MetricKind::Delta) => MetricKind::Delta,
        _ => MetricKind::Gauge,
    };
    let mut groups: FxHashMap<Vec<FieldValue>, std::collections::BTreeMap<i64, Vec<&Value>>> = FxHashMap::default();
    for s in &t.series {
        let key: Vec<FieldValue> = spec.keys.iter().map(|&k| s.fields[k].clone()).collect();
        let g = groups.entry(key).or_default();
        for p in &s.points {
            g.entry(p.end_time).or_default().push(&p.value);
        }
    }
    let mut series = Vec::with_capacity(groups.len());
    for (fields, times) in groups {
        let points = times
            .into_iter()
            .map(|(t, vals)| {
                Ok(Point { start_time: None, end_time: t, value: aggregate_direct(spec.aggregator, &vals)? })
            })
            .collect::<Result<Vec<_>>>()?;
        series.push(Series { fields, points });
    }
    let mut out = Table { columns: spec.columns.clone(), kind, series };
    out.sort();
    Ok(out)
}

/// One group's partials, by output time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialGroup {
    /// The group's key values (output columns).
    pub fields: Vec<FieldValue>,
    /// Partials in time order.
    pub points: Vec<(i64, Partial)>,
}

/// Partial aggregates of a `group_by`, as handed from phase to phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialTable {
    /// Output columns.
    pub columns: Columns,
    /// Kind of the aggregated values.
    pub kind: MetricKind,
    /// The aggregator.
    pub aggregator: Aggregator,
    /// The groups.
    pub groups: Vec<PartialGroup>,
}

/// Folds series and partial tables into groups.
#[derive(Debug)]
pub struct GroupAcc {
    columns: Columns,
    aggregator: Aggregator,
    kind: MetricKind,
    index: FxHashMap<Vec<FieldValue>, usize>,
    groups: Vec<PartialGroup>,
}

impl GroupAcc {
    /// An empty accumulator for `spec` over input of `kind`.
    pub fn new(spec: &GroupSpec, kind: MetricKind) -> Self {
        let kind = match (spec.aggregator, kind) {
            (Aggregator::Sum | Aggregator::Distribution, MetricKind::Delta) => MetricKind::Delta,
            _ => MetricKind::Gauge,
        };
        Self::with(spec.columns.clone(), spec.aggregator, kind)
    }

    fn with(columns: Columns, aggregator: Aggregator, kind: MetricKind) -> Self {
        Self { columns, aggregator, kind, index: FxHashMap::default(), groups: Vec::new() }
    }

    /// An accumulator that merges partial tables of this shape.
    pub fn for_partials(p: &PartialTable) -> Self {
        Self::with(p.columns.clone(), p.aggregator, p.kind)
    }

    fn group(&mut self, fields: Vec<FieldValue>) -> &mut Vec<(i64, Partial)> {
        let i = match self.index.get(&fields) {
            Some(&i) => i,
            None => {
                self.index.insert(fields.clone(), self.groups.len());
                self.groups.push(PartialGroup { fields, points: Vec::new() });
                self.groups.len() - 1
            }
        };
        &mut self.groups[i].points
    }

    /// Adds one series of the input (`keys` pick its group's fields).
    pub fn add_series(&mut self, keys: &[usize], series: &Series) -> Result<()> {
        let fields = keys.iter().map(|&k| series.fields[k].clone()).collect();
        let a = self.aggregator;
        let partials = series.points.iter().map(|p| Ok((p.end_time, Partial::of(a, &p.value)?)));
        let dst = self.group(fields);
        merge_sorted(dst, partials)
    }

    /// Merges a partial table of the same shape.
    pub fn add_partial(&mut self, p: PartialTable) -> Result<()> {
        for g in p.groups {
            let dst = self.group(g.fields);
            merge_sorted(dst, g.points.into_iter().map(Ok))?;
        }
        Ok(())
    }

    /// The merged partials.
    pub fn into_partial(self) -> PartialTable {
        PartialTable { columns: self.columns, kind: self.kind, aggregator: self.aggregator, groups: self.groups }
    }

    /// Finishes every group into a series.
    pub fn finish(self) -> Result<Table> {
        let a = self.aggregator;
        let mut series = Vec::with_capacity(self.groups.len());
        for g in self.groups {
            let points = g
                .points
                .into_iter()
                .map(|(t, p)| Ok(Point { start_time: None, end_time: t, value: p.finish(a)? }))
                .collect::<Result<Vec<_>>>()?;
            series.push(Series { fields: g.fields, points });
        }
        let mut t = Table { columns: self.columns, kind: self.kind, series };
        t.sort();
        Ok(t)
    }
}

/// Merges time-ordered partials into `dst` (time-ordered), combining equal
/// times. Aligned inputs mostly share their times, so the common case is
/// one pass without allocation.
fn merge_sorted(dst: &mut Vec<(i64, Partial)>, src: impl Iterator<Item = Result<(i64, Partial)>>) -> Result<()> {
    if dst.is_empty() {
        for item in src {
            dst.push(item?);
        }
        return Ok(());
    }
    let mut extra = Vec::new();
    let mut i = 0;
    for item in src {
        let (t, p) = item?;
        while i < dst.len() && dst[i].0 < t {
            i += 1;
        }
        match dst.get_mut(i) {
            Some((dt, dp)) if *dt == t => dp.merge(p)?,
            _ => extra.push((t, p)),
        }
    }
    if !extra.is_empty() {
        dst.extend(extra);
        dst.sort_by_key(|(t, _)| *t);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_between_ranks() {
        assert_eq!(exact_percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.5);
        assert_eq!(exact_percentile(&[1.0, 2.0, 3.0, 4.0], 100.0), 4.0);
        assert_eq!(exact_percentile(&[7.0], 10.0), 7.0);
        assert!(exact_percentile(&[], 10.0).is_nan());
    }

    #[test]
    fn stddev_merge_matches_direct() {
        let vals = [1.0, 4.0, 9.0, 16.0, 25.0];
        let mut a = Partial::of(Aggregator::Stddev, &Value::Double(vals[0])).unwrap();
        for v in &vals[1..] {
            a.merge(Partial::of(Aggregator::Stddev, &Value::Double(*v)).unwrap()).unwrap();
        }
        let Value::Double(s) = a.finish(Aggregator::Stddev).unwrap() else { panic!() };
        let mean = vals.iter().sum::<f64>() / 5.0;
        let direct = (vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 5.0).sqrt();
        assert!((s - direct).abs() < 1e-12);
    }

    #[test]
    fn int_sum_overflow_is_an_error_not_a_wrap() {
        let mut a = Partial::of(Aggregator::Sum, &Value::Int64(i64::MAX)).unwrap();
        a.merge(Partial::of(Aggregator::Sum, &Value::Int64(1)).unwrap()).unwrap();
        assert!(a.finish(Aggregator::Sum).is_err());
    }

    #[test]
    fn min_ignores_nan_unless_all_nan() {
        let mut a = Partial::of(Aggregator::Min, &Value::Double(f64::NAN)).unwrap();
        a.merge(Partial::of(Aggregator::Min, &Value::Double(2.0)).unwrap()).unwrap();
        assert_eq!(a.finish(Aggregator::Min).unwrap(), Value::Double(2.0));
    }
}
