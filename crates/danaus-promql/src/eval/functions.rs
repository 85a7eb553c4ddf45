//! PromQL's functions, with Prometheus 2.42's formulas (extrapolated
//! `rate`, Kahan-summed regressions, `histogram_quantile` over classic
//! buckets, …).

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr};
use regex::Regex;

use danaus_query::prom::{for_each_window, window_value, PromFn};

use super::aggregate::valid_label_name;
use super::{check_unique_steps, El, Ev, Grid, Out, Range};
use crate::error::{Error, Result};
use crate::value::{Labels, METRIC_NAME};

pub(super) fn eval(ev: &Ev, c: &Call, g: Grid) -> Result<Out> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|a| &**a).collect();
    let arg = |i: usize| -> Result<&Expr> {
        args.get(i).copied().ok_or_else(|| Error::BadData(format!("missing argument {} of {name}", i + 1)))
    };
    let out = match name {
        "time" => Out::Scalar((0..g.len()).map(|i| g.time(i) as f64 / 1000.0).collect()),
        "pi" => Out::Scalar(vec![std::f64::consts::PI; g.len()]),
        "vector" => {
            let s = ev.scalar_arg(arg(0)?, g, name)?;
            Out::Vector(
                s.into_iter()
                    .enumerate()
                    .map(|(i, v)| vec![El { labels: Arc::new(Labels::empty()), v, t: g.time(i) }])
                    .collect(),
            )
        }
        "scalar" => {
            let v = ev.vector_arg(arg(0)?, g, name)?;
            Out::Scalar(v.into_iter().map(|els| if els.len() == 1 { els[0].v } else { f64::NAN }).collect())
        }
        // The range functions: `PromFn::of_name` is the one list of them.
        _ if PromFn::of_name(name).is_some() => {
            let f =
                PromFn::of_name(name).ok_or_else(|| Error::BadData(format!("function {name}() is not supported")))?;
            if let Some(out) = ev.pushed_call(c, g, f)? {
                out
            } else {
                // Per-step parameters (scalars may vary by step), then the range.
                let (params, range): (Vec<Vec<f64>>, &Expr) = match f {
                    PromFn::QuantileOverTime => (vec![ev.scalar_arg(arg(0)?, g, name)?], arg(1)?),
                    PromFn::PredictLinear => (vec![ev.scalar_arg(arg(1)?, g, name)?], arg(0)?),
                    PromFn::HoltWinters => {
                        let sf = ev.scalar_arg(arg(1)?, g, name)?;
                        let tf = ev.scalar_arg(arg(2)?, g, name)?;
                        check_holt_winters(&sf, &tf)?;
                        (vec![sf, tf], arg(0)?)
                    }
                    _ => (Vec::new(), arg(0)?),
                };
                over_range_at(ev, range, g, name, !f.keeps_name(), |r, i, t, pts| {
                    let p: [f64; 2] = std::array::from_fn(|k| params.get(k).map_or(f64::NAN, |v| v[i]));
                    window_value(f, &p[..params.len()], r.range, r.window_end(t), pts)
                })?
            }
        }
        "absent_over_time" => {
            let r = ev.range_arg(arg(0)?, g, name)?;
            let labels = Arc::new(absent_labels(arg(0)?));
            Out::Vector(
                (0..g.len())
                    .map(|i| {
                        let t = g.time(i);
                        let present = (0..r.series.len()).any(|k| !r.window(k, t).is_empty());
                        if present {
                            Vec::new()
                        } else {
                            vec![El { labels: labels.clone(), v: 1.0, t }]
                        }
                    })
                    .collect(),
            )
        }
        "absent" => {
            let v = ev.vector_arg(arg(0)?, g, name)?;
            let labels = Arc::new(absent_labels(arg(0)?));
            Out::Vector(
                v.into_iter()
                    .enumerate()
                    .map(|(i, els)| {
                        if els.is_empty() {
                            vec![El { labels: labels.clone(), v: 1.0, t: g.time(i) }]
                        } else {
                            Vec::new()
                        }
                    })
                    .collect(),
            )
        }
        "timestamp" => map_vector(ev, arg(0)?, g, name, |e, _| Some(e.t as f64 / 1000.0))?,
        "abs" => simple(ev, arg(0)?, g, name, f64::abs)?,
        "ceil" => simple(ev, arg(0)?, g, name, f64::ceil)?,
        "floor" => simple(ev, arg(0)?, g, name, f64::floor)?,
        "exp" => simple(ev, arg(0)?, g, name, f64::exp)?,
        "ln" => simple(ev, arg(0)?, g, name, f64::ln)?,
        "log2" => simple(ev, arg(0)?, g, name, f64::log2)?,
        "log10" => simple(ev, arg(0)?, g, name, f64::log10)?,
        "sqrt" => simple(ev, arg(0)?, g, name, f64::sqrt)?,
        "sgn" => simple(ev, arg(0)?, g, name, |v| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        })?,
        "acos" => simple(ev, arg(0)?, g, name, f64::acos)?,
        "acosh" => simple(ev, arg(0)?, g, name, f64::acosh)?,
        "asin" => simple(ev, arg(0)?, g, name, f64::asin)?,
        "asinh" => simple(ev, arg(0)?, g, name, f64::asinh)?,
        "atan" => simple(ev, arg(0)?, g, name, f64::atan)?,
        "atanh" => simple(ev, arg(0)?, g, name, f64::atanh)?,
        "cos" => simple(ev, arg(0)?, g, name, f64::cos)?,
        "cosh" => simple(ev, arg(0)?, g, name, f64::cosh)?,
        "sin" => simple(ev, arg(0)?, g, name, f64::sin)?,
        "sinh" => simple(ev, arg(0)?, g, name, f64::sinh)?,
        "tan" => simple(ev, arg(0)?, g, name, f64::tan)?,
        "tanh" => simple(ev, arg(0)?, g, name, f64::tanh)?,
        "deg" => simple(ev, arg(0)?, g, name, f64::to_degrees)?,
        "rad" => simple(ev, arg(0)?, g, name, f64::to_radians)?,
        "round" => {
            let to = match args.get(1) {
                Some(e) => ev.scalar_arg(e, g, name)?,
                None => vec![1.0; g.len()],
            };
            map_vector(ev, arg(0)?, g, name, |e, i| {
                let inv = 1.0 / to[i];
                Some((e.v * inv + 0.5).floor() / inv)
            })?
        }
        "clamp" => {
            let lo = ev.scalar_arg(arg(1)?, g, name)?;
            let hi = ev.scalar_arg(arg(2)?, g, name)?;
            map_vector(ev, arg(0)?, g, name, |e, i| (lo[i] <= hi[i]).then(|| e.v.max(lo[i]).min(hi[i])))?
        }
        "clamp_min" => {
            let lo = ev.scalar_arg(arg(1)?, g, name)?;
            map_vector(ev, arg(0)?, g, name, |e, i| Some(e.v.max(lo[i])))?
        }
        "clamp_max" => {
            let hi = ev.scalar_arg(arg(1)?, g, name)?;
            map_vector(ev, arg(0)?, g, name, |e, i| Some(e.v.min(hi[i])))?
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute" | "month" | "year" => {
            let f = |secs: f64| -> f64 {
                let secs = secs.floor() as i64;
                let (y, m, d) = civil(secs.div_euclid(86_400));
                let sod = secs.rem_euclid(86_400);
                match name {
                    "day_of_month" => d as f64,
                    "day_of_week" => (secs.div_euclid(86_400) + 4).rem_euclid(7) as f64,
                    "day_of_year" => (secs.div_euclid(86_400) - days_from_civil(y, 1, 1) + 1) as f64,
                    "days_in_month" => days_in_month(y, m) as f64,
                    "hour" => (sod / 3600) as f64,
                    "minute" => (sod % 3600 / 60) as f64,
                    "month" => m as f64,
                    _ => y as f64,
                }
            };
            match args.first() {
                Some(e) => map_vector(ev, e, g, name, |e, _| Some(f(e.v)))?,
                None => Out::Vector(
                    (0..g.len())
                        .map(|i| {
                            let t = g.time(i);
                            vec![El { labels: Arc::new(Labels::empty()), v: f(t as f64 / 1000.0), t }]
                        })
                        .collect(),
                ),
            }
        }
        "label_replace" => {
            let dst = ev.string_arg(arg(1)?, "label_replace's destination label")?;
            let repl = ev.string_arg(arg(2)?, "label_replace's replacement")?;
            let src = ev.string_arg(arg(3)?, "label_replace's source label")?;
            let re = ev.string_arg(arg(4)?, "label_replace's regular expression")?;
            let re = Regex::new(&format!("^(?s:{re})$"))
                .map_err(|e| Error::BadData(format!("invalid regular expression in label_replace(): {re}: {e}")))?;
            if !valid_label_name(&dst) {
                return Err(Error::BadData(format!("invalid destination label name in label_replace(): {dst}")));
            }
            relabel(ev, arg(0)?, g, name, |l| {
                let Some(caps) = re.captures(l.get(&src)) else { return l.clone() };
                let mut out = String::new();
                // Rust's `$name`/`${name}` expansion is Go's: the longest run
                // of word characters names the group, `$$` is a dollar.
                caps.expand(&repl, &mut out);
                let mut l = l.clone();
                l.set(&dst, &out);
                l
            })?
        }
        "label_join" => {
            let dst = ev.string_arg(arg(1)?, "label_join's destination label")?;
            let sep = ev.string_arg(arg(2)?, "label_join's separator")?;
            let srcs =
                args[3..].iter().map(|a| ev.string_arg(a, "label_join's source labels")).collect::<Result<Vec<_>>>()?;
            if !valid_label_name(&dst) {
                return Err(Error::BadData(format!("invalid destination label name in label_join(): {dst}")));
            }
            relabel(ev, arg(0)?, g, name, |l| {
                let joined = srcs.iter().map(|s| l.get(s)).collect::<Vec<_>>().join(&sep);
                let mut l = l.clone();
                l.set(&dst, &joined);
                l
            })?
        }
        "sort" | "sort_desc" => {
            let desc = name == "sort_desc";
            let mut v = ev.vector_arg(arg(0)?, g, name)?;
            for els in &mut v {
                // NaN last either way, as Prometheus sorts.
                els.sort_by(|a, b| nan_last(a.v, b.v, desc));
            }
            Out::Vector(v)
        }
        "histogram_quantile" => {
            let q = ev.scalar_arg(arg(0)?, g, name)?;
            let v = ev.vector_arg(arg(1)?, g, name)?;
            let mut out = Vec::with_capacity(v.len());
            for (i, els) in v.into_iter().enumerate() {
                let mut groups: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
                let mut index: HashMap<Labels, usize> = HashMap::default();
                for e in els {
                    let Ok(le) = parse_float(e.labels.get("le")) else { continue };
                    let key = e.labels.without(&["le".to_owned()], true);
                    let k = *index.entry(key.clone()).or_insert_with(|| {
                        groups.push((key, Vec::new()));
                        groups.len() - 1
                    });
                    groups[k].1.push((le, e.v));
                }
                out.push(
                    groups
                        .into_iter()
                        .map(|(l, mut b)| El { labels: Arc::new(l), v: bucket_quantile(q[i], &mut b), t: g.time(i) })
                        .collect(),
                );
            }
            Out::Vector(out)
        }
        other => return Err(Error::BadData(format!("function {other}() is not supported"))),
    };
    if let Out::Vector(steps) = &out {
        check_unique_steps(steps)?;
    }
    Ok(out)
}

/// Fails unless `0 < sf < 1` and `0 < tf < 1` at every step, as
/// `holt_winters` requires.
pub(super) fn check_holt_winters(sf: &[f64], tf: &[f64]) -> Result<()> {
    if let Some(bad) = sf.iter().find(|v| !(**v > 0.0 && **v < 1.0)) {
        return Err(Error::BadData(format!("invalid smoothing factor. Expected: 0 < sf < 1, got: {bad}")));
    }
    if let Some(bad) = tf.iter().find(|v| !(**v > 0.0 && **v < 1.0)) {
        return Err(Error::BadData(format!("invalid trend factor. Expected: 0 < tf < 1, got: {bad}")));
    }
    Ok(())
}

/// `f` over every series' window at every step, with the step's index;
/// `drop_name` drops the metric name from the output (all range
/// functions but last_over_time).
fn over_range_at(
    ev: &Ev,
    e: &Expr,
    g: Grid,
    name: &str,
    drop_name: bool,
    f: impl Fn(&Range, usize, i64, &[(i64, f64)]) -> Option<f64>,
) -> Result<Out> {
    let r = ev.range_arg(e, g, name)?;
    let labels: Vec<Arc<Labels>> =
        r.series.iter().map(|s| if drop_name { Arc::new(s.labels.without_name()) } else { s.labels.clone() }).collect();
    // Series by series, so a series' points stay in cache across steps;
    // windows only move forward as steps do (or stay put under `@`).
    let mut out: Vec<Vec<El>> = vec![Vec::new(); g.len()];
    for (k, l) in labels.iter().enumerate() {
        let mut seen = g.len();
        let ends = (0..g.len()).map(|i| r.window_end(g.time(i)));
        for_each_window(&r.series[k].points, r.range, ends, |i, _, w| {
            seen += w.len();
            let t = g.time(i);
            if let Some(v) = f(&r, i, t, w) {
                out[i].push(El { labels: l.clone(), v, t });
            }
        });
        ev.work(seen)?;
    }
    Ok(Out::Vector(out))
}

/// `f` over each element of an instant vector, dropping the metric name.
fn map_vector(ev: &Ev, e: &Expr, g: Grid, name: &str, f: impl Fn(&El, usize) -> Option<f64>) -> Result<Out> {
    let v = ev.vector_arg(e, g, name)?;
    Ok(Out::Vector(
        v.into_iter()
            .enumerate()
            .map(|(i, els)| {
                let t = g.time(i);
                els.iter()
                    .filter_map(|e| f(e, i).map(|v| El { labels: Arc::new(e.labels.without_name()), v, t }))
                    .collect()
            })
            .collect(),
    ))
}

fn simple(ev: &Ev, e: &Expr, g: Grid, name: &str, f: fn(f64) -> f64) -> Result<Out> {
    map_vector(ev, e, g, name, |e, _| Some(f(e.v)))
}

/// New labels for each element; values and the name kept.
fn relabel(ev: &Ev, e: &Expr, g: Grid, name: &str, f: impl Fn(&Labels) -> Labels) -> Result<Out> {
    let v = ev.vector_arg(e, g, name)?;
    let mut cache: HashMap<Arc<Labels>, Arc<Labels>> = HashMap::default();
    Ok(Out::Vector(
        v.into_iter()
            .enumerate()
            .map(|(i, els)| {
                els.into_iter()
                    .map(|e| {
                        let labels = cache.entry(e.labels.clone()).or_insert_with(|| Arc::new(f(&e.labels))).clone();
                        El { labels, v: e.v, t: g.time(i) }
                    })
                    .collect()
            })
            .collect(),
    ))
}

/// The labels `absent()` gives: the selector's equality matchers, unless
/// a name is matched more than once.
fn absent_labels(e: &Expr) -> Labels {
    let vs = match e {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut empty: Vec<String> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.op == MatchOp::Equal && !pairs.iter().any(|(n, _)| *n == m.name) {
            pairs.push((m.name.clone(), m.value.clone()));
        } else {
            empty.push(m.name.clone());
        }
    }
    pairs.retain(|(n, _)| !empty.contains(n));
    Labels::new(pairs)
}

/// Order of values with NaN after every number, ascending or descending.
pub(crate) fn nan_last(a: f64, b: f64, desc: bool) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ if desc => b.total_cmp(&a),
        _ => a.total_cmp(&b),
    }
}

/// `histogram_quantile` over classic buckets `(le, cumulative count)`.
fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Buckets with the same bound add up.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(le, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += c,
            _ => merged.push((le, c)),
        }
    }
    // Counts must not fall as bounds rise.
    let mut max = f64::NEG_INFINITY;
    for b in &mut merged {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1].partition_point(|x| x.1 < rank);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// A float as Prometheus parses one in a label (`le`): also `+Inf`.
pub(crate) fn parse_float(s: &str) -> std::result::Result<f64, ()> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        _ => s.trim().parse::<f64>().map_err(|_| ()),
    }
}

/// (year, month, day) of the day `days` after 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000i64, -1, 0, 59, 365, 11_016, 19_000, 2_932_896] {
            let (y, m, d) = civil(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_782), (2024, 2, 29));
    }

    #[test]
    fn bucket_quantile_interpolates_within_the_bucket() {
        let mut b = vec![(0.1, 10.0), (0.5, 30.0), (f64::INFINITY, 40.0)];
        // rank 20 lies half way through the (0.1, 0.5] bucket.
        assert!((bucket_quantile(0.5, &mut b) - 0.3).abs() < 1e-12);
        // Past the last finite bound: that bound.
        assert_eq!(bucket_quantile(0.99, &mut b), 0.5);
        let mut no_inf = vec![(0.1, 1.0)];
        assert!(bucket_quantile(0.5, &mut no_inf).is_nan());
    }
}
