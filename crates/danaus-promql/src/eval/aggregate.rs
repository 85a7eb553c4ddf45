//! Aggregation operators (`sum`, `avg`, …, `topk`, `count_values`) with
//! `by` and `without`, step by step.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use promql_parser::parser::{AggregateExpr, LabelModifier};

use danaus_query::prom::quantile;

use super::functions::nan_last;
use super::{El, Ev, Grid, Out};
use crate::error::{Error, Result};
use crate::value::{format_float, Labels};

/// A group's running state.
struct Group {
    labels: Arc<Labels>,
    value: f64,
    mean: f64,
    count: f64,
    values: Vec<f64>,
    members: Vec<El>,
}

pub(super) fn eval(ev: &Ev, a: &AggregateExpr, g: Grid) -> Result<Out> {
    let mut op = a.op.to_string();
    let steps = match ev.folded(a, g)? {
        // Storage folded the groups partly: fold the partials again
        // (partial counts add up).
        Some(steps) => {
            if op == "count" {
                op = "sum".into();
            }
            steps
        }
        None => ev.vector_arg(&a.expr, g, &op)?,
    };
    let (by, names) = match &a.modifier {
        Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
        Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
        None => (true, Vec::new()),
    };
    let group_key = |l: &Labels| if by { l.keep(&names) } else { l.without(&names, true) };
    // Parameters: a number per step, or the label of count_values.
    let mut numbers: Option<Vec<f64>> = None;
    let mut label: Option<String> = None;
    match (op.as_str(), &a.param) {
        ("topk" | "bottomk" | "quantile", Some(p)) => numbers = Some(ev.scalar_arg(p, g, &op)?),
        ("count_values", Some(p)) => {
            let l = ev.string_arg(p, "count_values")?;
            if !valid_label_name(&l) {
                return Err(Error::BadData(format!("invalid label name {l:?}")));
            }
            label = Some(l);
        }
        ("sum" | "avg" | "count" | "min" | "max" | "stddev" | "stdvar" | "group", _) => {}
        (other, _) => return Err(Error::BadData(format!("aggregation {other} is not supported"))),
    }
    // Group keys, interned: `keys[id]`, and by input series (the same
    // `Arc` comes back at every step; it is kept alive here so its address
    // stays its own), so a series' key is computed once per query, not
    // once per step. count_values' keys depend on the value: per element.
    let mut keys: Vec<Arc<Labels>> = Vec::new();
    let mut key_ids: HashMap<Labels, usize> = HashMap::default();
    let mut by_series: HashMap<usize, (Arc<Labels>, usize)> = HashMap::default();
    let mut intern = |key: Labels, keys: &mut Vec<Arc<Labels>>| -> usize {
        *key_ids.entry(key).or_insert_with_key(|k| {
            keys.push(Arc::new(k.clone()));
            keys.len() - 1
        })
    };
    // The group of each key id in the current step (usize::MAX: none yet).
    let mut slot: Vec<usize> = Vec::new();
    let mut out = Vec::with_capacity(steps.len());
    for (i, els) in steps.into_iter().enumerate() {
        let t = g.time(i);
        let mut groups: Vec<Group> = Vec::new();
        let mut touched: Vec<usize> = Vec::new();
        for e in els {
            let id = match &label {
                Some(l) => {
                    let mut key = group_key(&e.labels);
                    key.set(l, &format_float(e.v));
                    intern(key, &mut keys)
                }
                None => {
                    let ptr = Arc::as_ptr(&e.labels) as usize;
                    match by_series.get(&ptr) {
                        Some(&(_, id)) => id,
                        None => {
                            let id = intern(group_key(&e.labels), &mut keys);
                            by_series.insert(ptr, (e.labels.clone(), id));
                            id
                        }
                    }
                }
            };
            if slot.len() < keys.len() {
                slot.resize(keys.len(), usize::MAX);
            }
            let k = if slot[id] == usize::MAX {
                slot[id] = groups.len();
                touched.push(id);
                groups.push(Group {
                    labels: keys[id].clone(),
                    value: e.v,
                    mean: e.v,
                    count: 0.0,
                    values: Vec::new(),
                    members: Vec::new(),
                });
                groups.len() - 1
            } else {
                slot[id]
            };
            add(&mut groups[k], &op, e);
        }
        for id in touched {
            slot[id] = usize::MAX;
        }
        let mut step = Vec::with_capacity(groups.len());
        for gr in groups {
            match op.as_str() {
                "topk" | "bottomk" => {
                    let k = numbers.as_ref().map_or(0.0, |n| n[i]);
                    // NaN and anything below one select nothing.
                    if k.is_nan() || k < 1.0 {
                        continue;
                    }
                    let k = if k > gr.members.len() as f64 { gr.members.len() } else { k as usize };
                    let mut m = gr.members;
                    let top = op == "topk";
                    keep_best(&mut m, k, top);
                    // NaN sorts after every number either way.
                    m.sort_by(|a, b| nan_last(a.v, b.v, top));
                    step.extend(m.into_iter().take(k).map(|e| El { t, ..e }));
                }
                _ => {
                    let v = match op.as_str() {
                        "sum" | "min" | "max" => gr.value,
                        "avg" => gr.mean,
                        "count" | "count_values" => gr.count,
                        "group" => 1.0,
                        "stdvar" => gr.value / gr.count,
                        "stddev" => (gr.value / gr.count).sqrt(),
                        "quantile" => {
                            let q = numbers.as_ref().map_or(f64::NAN, |n| n[i]);
                            let mut vals = gr.values;
                            quantile(q, &mut vals)
                        }
                        _ => f64::NAN,
                    };
                    step.push(El { labels: gr.labels, v, t });
                }
            }
        }
        out.push(step);
    }
    Ok(Out::Vector(out))
}

fn add(gr: &mut Group, op: &str, e: El) {
    gr.count += 1.0;
    let first = gr.count == 1.0;
    let v = e.v;
    match op {
        "sum" if !first => gr.value += v,
        "min" if !first && (gr.value > v || gr.value.is_nan()) => gr.value = v,
        "max" if !first && (gr.value < v || gr.value.is_nan()) => gr.value = v,
        "avg" if !first => {
            if gr.mean.is_infinite() {
                if v.is_infinite() && (gr.mean > 0.0) == (v > 0.0) {
                    return;
                }
                if !v.is_infinite() && !v.is_nan() {
                    return;
                }
            }
            gr.mean += v / gr.count - gr.mean / gr.count;
        }
        "stddev" | "stdvar" => {
            if first {
                gr.value = 0.0;
                gr.mean = v;
            } else {
                let delta = v - gr.mean;
                gr.mean += delta / gr.count;
                gr.value += delta * (v - gr.mean);
            }
        }
        "quantile" => gr.values.push(v),
        "topk" | "bottomk" => gr.members.push(e),
        _ => {}
    }
}

/// Keeps the `k` elements a stable sort by value (highest first for
/// `top`, NaN last) would put first, in their order: those better than
/// the `k`-th best value, then ties of it in input order. Linear time, so
/// `topk` over many series does not sort them all.
fn keep_best(m: &mut Vec<El>, k: usize, top: bool) {
    if k == 0 || k >= m.len() {
        return;
    }
    let mut vals: Vec<f64> = m.iter().map(|e| e.v).collect();
    let kth = *vals.select_nth_unstable_by(k - 1, |a, b| nan_last(*a, *b, top)).1;
    let better = m.iter().filter(|e| nan_last(e.v, kth, top) == std::cmp::Ordering::Less).count();
    let mut ties = k - better;
    m.retain(|e| match nan_last(e.v, kth, top) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Equal if ties > 0 => {
            ties -= 1;
            true
        }
        _ => false,
    });
}

/// Whether `s` is a valid Prometheus label name.
pub(crate) fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_best_is_a_stable_sort_cut_to_k() {
        // Small value sets (many ties) with NaNs, every k, both directions.
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            seed >> 33
        };
        for _ in 0..300 {
            let n = (next() % 12) as usize;
            let els: Vec<El> = (0..n)
                .map(|i| El {
                    labels: Arc::new(Labels::new(vec![("i".into(), i.to_string())])),
                    v: match next() % 5 {
                        0 => f64::NAN,
                        x => x as f64,
                    },
                    t: 0,
                })
                .collect();
            for top in [true, false] {
                for k in 0..=n + 1 {
                    let mut want = els.clone();
                    want.sort_by(|a, b| nan_last(a.v, b.v, top));
                    want.truncate(k);
                    let mut got = els.clone();
                    keep_best(&mut got, k.min(n), top);
                    got.sort_by(|a, b| nan_last(a.v, b.v, top));
                    got.truncate(k);
                    let ids = |v: &[El]| v.iter().map(|e| e.labels.get("i").to_owned()).collect::<Vec<_>>();
                    assert_eq!(ids(&got), ids(&want), "k {k} top {top}");
                }
            }
        }
    }
}
