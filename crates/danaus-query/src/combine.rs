//! Combining several tables at the root: `union` and `join`.

use std::collections::HashMap;
use std::sync::Arc;

use danaus_model::{FieldValue, MetricKind, Point, Value};

use crate::error::Result;
use crate::table::{Series, Table};

/// All series of all tables; series with equal fields merge, the earlier
/// input winning at equal times.
pub(crate) fn union(tables: Vec<Table>) -> Table {
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
pub(crate) fn join(tables: Vec<Table>, defaults: Option<&[Value]>) -> Result<Table> {
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
