//! Test support: a small text format for data sets, leaves loaded with
//! them, and a stable text form of query results.
//!
//! Data set format (`tests/data/*.data`), one statement per line, `#`
//! comments:
//!
//! ```text
//! target Host zone* host rack:int64          # `*` marks the location field
//! metric /cpu/usage double gauge core:int64  # value type, kind, fields
//! series Host zone=us host=a rack=1 /cpu/usage core=0 : 0s=1.5 10s=2 20s=nan
//! ```
//!
//! Point times are offsets from [`T0`]; a cumulative point may give its
//! start as `10s=5@0s`. Distributions are written `D[1,10](0.5,5,50)`:
//! explicit bounds, then the recorded values.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use danaus_leaf::{Leaf, LeafConfig, LeafOptions};
use danaus_model::SeriesWrite;
use danaus_model::{
    Bucketer, Distribution, FieldDef, FieldType, FieldValue, MetricKind, MetricSchema, Point, ScalarType, TargetSchema,
    Value, ValueType,
};
use danaus_query::{Engine, LeafPhase, LeafSource, QueryLimits, Table, ZoneSources};
use danaus_storage::{Clock, KvStore, MemKv, MemLogDevice};

pub const SEC: i64 = 1_000_000_000;
/// Time zero of data sets: 2023-11-14T00:00:00Z, a multiple of every
/// period the cases use (grids are aligned to the epoch).
pub const T0: i64 = 1_699_920_000 * SEC;
pub const TENANT: &str = "golden";

struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        T0 + 30 * 86_400 * SEC
    }
}

/// Parses `5s`, `1m30s`, `-2m`, `0s` into nanoseconds.
pub fn duration(s: &str) -> i64 {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let mut total = 0i64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next().unwrap());
        }
        let scale = match unit.as_str() {
            "ms" => 1_000_000,
            "s" => SEC,
            "m" => 60 * SEC,
            "h" => 3600 * SEC,
            "d" => 86_400 * SEC,
            u => panic!("bad duration unit {u:?} in {s:?}"),
        };
        total += num.parse::<i64>().unwrap() * scale;
        num.clear();
    }
    assert!(num.is_empty(), "duration {s:?} lacks a unit");
    if neg {
        -total
    } else {
        total
    }
}

/// A parsed data set.
#[derive(Debug, Default, Clone)]
pub struct DataSet {
    pub targets: Vec<TargetSchema>,
    pub metrics: Vec<MetricSchema>,
    pub series: Vec<SeriesWrite>,
}

fn field_type(t: &str) -> FieldType {
    match t {
        "string" => FieldType::String,
        "int64" => FieldType::Int64,
        "bool" => FieldType::Bool,
        t => panic!("bad field type {t}"),
    }
}

fn value(ty: ScalarType, s: &str) -> Value {
    match ty {
        ScalarType::Bool => Value::Bool(s.parse().unwrap()),
        ScalarType::Int64 => Value::Int64(s.parse().unwrap()),
        ScalarType::Double => Value::Double(match s {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            s => s.parse().unwrap(),
        }),
        ScalarType::String => Value::String(s.to_owned()),
        ScalarType::Distribution => {
            let body = s.strip_prefix("D[").unwrap();
            let (bounds, rest) = body.split_once("](").unwrap();
            let vals = rest.strip_suffix(')').unwrap();
            let bounds: Vec<f64> = bounds.split(',').map(|b| b.parse().unwrap()).collect();
            let vals: Vec<f64> = vals.split(',').filter(|v| !v.is_empty()).map(|v| v.parse().unwrap()).collect();
            Value::Distribution(Box::new(Distribution::from_values(Bucketer::Explicit { bounds }, &vals)))
        }
    }
}

impl DataSet {
    pub fn parse(text: &str) -> DataSet {
        let mut d = DataSet::default();
        for (no, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap().trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[0] {
                "target" => {
                    let mut fields = Vec::new();
                    let mut location = None;
                    for w in &words[2..] {
                        let (w, loc) = match w.strip_suffix('*') {
                            Some(x) => (x, true),
                            None => (*w, false),
                        };
                        let (name, ty) = w.split_once(':').unwrap_or((w, "string"));
                        if loc {
                            location = Some(name.to_owned());
                        }
                        fields.push(FieldDef::new(name, field_type(ty)));
                    }
                    d.targets.push(TargetSchema {
                        name: words[1].into(),
                        location_field: location.unwrap_or_else(|| fields[0].name.clone()),
                        fields,
                    });
                }
                "metric" => {
                    let vt = match words[2] {
                        "bool" => ScalarType::Bool,
                        "int64" => ScalarType::Int64,
                        "double" => ScalarType::Double,
                        "string" => ScalarType::String,
                        "distribution" => ScalarType::Distribution,
                        t => panic!("bad value type {t}"),
                    };
                    let kind = match words[3] {
                        "gauge" => MetricKind::Gauge,
                        "delta" => MetricKind::Delta,
                        "cumulative" => MetricKind::Cumulative,
                        k => panic!("bad kind {k}"),
                    };
                    let fields = words[4..]
                        .iter()
                        .map(|w| {
                            let (name, ty) = w.split_once(':').unwrap_or((w, "string"));
                            FieldDef::new(name, field_type(ty))
                        })
                        .collect();
                    d.metrics.push(MetricSchema {
                        name: words[1].into(),
                        fields,
                        value_type: ValueType::Scalar(vt),
                        kind,
                        unit: String::new(),
                        description: String::new(),
                        collection: None,
                    });
                }
                "series" => {
                    let (head, points) = line.split_once(" : ").unwrap_or((line, ""));
                    let words: Vec<&str> = head.split_whitespace().collect();
                    let ts = d.targets.iter().find(|t| t.name == words[1]).unwrap().clone();
                    let mi = words.iter().position(|w| w.starts_with('/')).unwrap();
                    let ms = d.metrics.iter().find(|m| m.name == words[mi]).unwrap().clone();
                    let kv = |w: &&str, defs: &[FieldDef]| {
                        let (k, v) = w.split_once('=').unwrap();
                        let def = defs.iter().find(|f| f.name == k).unwrap_or_else(|| panic!("line {no}: field {k}"));
                        (k.to_owned(), FieldValue::parse(def.field_type, v).unwrap())
                    };
                    let target_fields = words[2..mi].iter().map(|w| kv(w, &ts.fields)).collect();
                    let metric_fields = words[mi + 1..].iter().map(|w| kv(w, &ms.fields)).collect();
                    let ValueType::Scalar(vt) = ms.value_type else { panic!("tuples unsupported") };
                    let points = points
                        .split_whitespace()
                        .map(|p| {
                            let (t, v) = p.split_once('=').unwrap();
                            let (v, start) = match v.rsplit_once('@') {
                                Some((v, s)) => (v, Some(T0 + duration(s))),
                                None => (v, None),
                            };
                            let start = match (ms.kind, start) {
                                (MetricKind::Cumulative, None) => Some(T0 - 3600 * SEC),
                                (MetricKind::Delta, None) => Some(T0 + duration(t) - 1),
                                (_, s) => s,
                            };
                            Point { start_time: start, end_time: T0 + duration(t), value: value(vt, v) }
                        })
                        .collect();
                    d.series.push(SeriesWrite {
                        target_schema: ts.name.as_str().into(),
                        target_fields,
                        metric: ms.name.as_str().into(),
                        metric_fields,
                        points,
                    });
                }
                w => panic!("line {}: unknown statement {w}", no + 1),
            }
        }
        d
    }

    /// The location value of a series.
    fn location(&self, s: &SeriesWrite) -> FieldValue {
        let ts = self.targets.iter().find(|t| *t.name == *s.target_schema).unwrap();
        s.target_fields.iter().find(|(k, _)| *k == ts.location_field).unwrap().1.clone()
    }
}

pub async fn leaf_with(data: &DataSet, series: &[&SeriesWrite]) -> Leaf {
    let opts =
        LeafOptions { out_of_order_window: std::time::Duration::from_secs(365 * 86_400), ..LeafOptions::default() };
    let leaf = Leaf::open(LeafConfig {
        kv: Arc::new(MemKv::new()) as Arc<dyn KvStore>,
        log: Arc::new(MemLogDevice::new()),
        clock: Arc::new(FixedClock),
        options: opts,
    })
    .await
    .unwrap();
    for t in &data.targets {
        leaf.apply_target_schema(TENANT, t.clone()).await.unwrap();
    }
    for m in &data.metrics {
        leaf.apply_metric_schema(TENANT, m.clone()).await.unwrap();
    }
    let writes: Vec<SeriesWrite> = series.iter().map(|s| (*s).clone()).collect();
    let r = leaf.write(TENANT, &writes).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    leaf
}

/// One zone with one leaf holding everything.
pub async fn single(data: &DataSet) -> Engine {
    let leaf = leaf_with(data, &data.series.iter().collect::<Vec<_>>()).await;
    let src: Arc<dyn LeafPhase> = Arc::new(LeafSource::new("leaf-0", leaf));
    Engine::new(vec![ZoneSources { name: "zone-0".into(), leaves: vec![src] }], QueryLimits::default())
}

/// `zones` zones of `leaves` leaves: a location lives in one zone, a
/// target on one leaf; `seed` varies the placement.
pub async fn spread(data: &DataSet, zones: usize, leaves: usize, seed: u64) -> Engine {
    let mut placement: BTreeMap<(usize, usize), Vec<&SeriesWrite>> = BTreeMap::new();
    let h = |s: &str| {
        s.bytes()
            .fold(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)))
    };
    for s in &data.series {
        let zone = (h(&format!("{}", data.location(s))) % zones as u64) as usize;
        let target = format!("{}{:?}", s.target_schema, s.target_fields);
        let leaf = (h(&target) % leaves as u64) as usize;
        placement.entry((zone, leaf)).or_default().push(s);
    }
    let mut out = Vec::new();
    for z in 0..zones {
        let mut srcs: Vec<Arc<dyn LeafPhase>> = Vec::new();
        for l in 0..leaves {
            let series = placement.get(&(z, l)).cloned().unwrap_or_default();
            srcs.push(Arc::new(LeafSource::new(format!("leaf-{z}-{l}"), leaf_with(data, &series).await)));
        }
        out.push(ZoneSources { name: format!("zone-{z}"), leaves: srcs });
    }
    Engine::new(out, QueryLimits::default())
}

fn offset(t: i64) -> String {
    let d = t - T0;
    let sign = if d < 0 { "-" } else { "+" };
    let d = d.abs();
    if d % SEC == 0 {
        format!("{sign}{}s", d / SEC)
    } else {
        format!("{sign}{}ns", d)
    }
}

/// Doubles rounded to 9 significant digits: results that differ only in
/// summation order print the same.
pub fn double(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x:?}");
    }
    let r: f64 = format!("{x:.8e}").parse().unwrap();
    format!("{r:?}")
}

pub fn value_text(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::Int64(i) => i.to_string(),
        Value::Double(d) => double(*d),
        Value::String(s) => format!("{s:?}"),
        Value::Distribution(d) => format!(
            "dist(count={} mean={} ssd={} buckets={:?})",
            d.count,
            double(d.mean),
            double(d.sum_of_squared_deviation),
            d.bucket_counts
        ),
        Value::Tuple(items) => format!("({})", items.iter().map(value_text).collect::<Vec<_>>().join(", ")),
    }
}

/// The stable text of a result.
pub fn table_text(t: &Table) -> String {
    let mut out = format!("columns: {}\n", t.columns.join(", "));
    if t.series.is_empty() {
        out.push_str("(no series)\n");
    }
    for s in &t.series {
        let fields: Vec<String> = t.columns.iter().zip(&s.fields).map(|(c, v)| format!("{c}={v}")).collect();
        out.push_str(&format!("{{{}}}\n", fields.join(", ")));
        for p in &s.points {
            out.push_str(&format!("  {} {}\n", offset(p.end_time), value_text(&p.value)));
        }
    }
    out
}
