//! Property: pushing work down to leaves and zones, with partial
//! aggregates merged between phases, gives the same answer as fetching
//! raw series and evaluating everything at the root, however the series
//! are spread over zones and leaves.

#![allow(clippy::unwrap_used)]

mod common;

use common::{spread, DataSet, SEC, T0, TENANT};
use danaus_model::Value;
use danaus_query::{QueryRange, RunOptions, Table};
use proptest::prelude::*;

fn dataset(points: &[(u8, u8, u8, u8, i8)]) -> DataSet {
    let mut text = String::from(
        "target Host zone* host rack:int64\n\
         metric /cpu double gauge core:int64\n\
         metric /bytes int64 cumulative\n",
    );
    // Group points per series: (zone, host, core).
    let mut series: std::collections::BTreeMap<(u8, u8, u8), Vec<(u8, i8)>> = Default::default();
    for &(z, h, c, t, v) in points {
        series.entry((z % 3, h % 6, c % 3)).or_default().push((t % 13, v));
    }
    for ((z, h, c), mut pts) in series {
        pts.sort_by_key(|p| p.0);
        pts.dedup_by_key(|p| p.0);
        let cpu: Vec<String> = pts
            .iter()
            .map(|(t, v)| {
                if *v == i8::MIN {
                    format!("{}s=nan", u32::from(*t) * 10)
                } else {
                    format!("{}s={v}", u32::from(*t) * 10)
                }
            })
            .collect();
        text.push_str(&format!("series Host zone=z{z} host=h{h} rack={} /cpu core={c} : {}\n", h % 2, cpu.join(" ")));
        if c == 0 {
            // A counter per host with resets where the value drops.
            let mut acc = 0i64;
            let bytes: Vec<String> = pts
                .iter()
                .map(|(t, v)| {
                    acc = if *v < -100 { i64::from(v.unsigned_abs()) } else { acc + i64::from(v.unsigned_abs()) };
                    format!("{}s={acc}@-1h", u32::from(*t) * 10)
                })
                .collect();
            text.push_str(&format!("series Host zone=z{z} host=h{h} rack={} /bytes : {}\n", h % 2, bytes.join(" ")));
        }
    }
    DataSet::parse(&text)
}

fn query() -> impl Strategy<Value = String> {
    let fetch = prop_oneof![
        Just("fetch Host::/cpu".to_owned()),
        Just("fetch Host::/cpu | filter zone != \"z1\"".to_owned()),
        Just("fetch Host::/cpu | filter host =~ \"h[0-3]\" && core < 2".to_owned()),
        Just("fetch Host::/bytes".to_owned()),
    ];
    let align = prop_oneof![
        Just(""),
        Just(" | align mean(20s)"),
        Just(" | align max(30s)"),
        Just(" | align next_older(20s)"),
        Just(" | align delta(20s)"),
        Just(" | align rate(30s)"),
        Just(" | align count(20s)"),
        Just(" | align interpolate(20s)"),
    ];
    let keys = prop_oneof![
        Just("[]"),
        Just("[zone]"),
        Just("[host]"),
        Just("[rack]"),
        Just("[zone, host]"),
        Just("[zone, host, rack]"),
        Just("[zone, rack]"),
    ];
    let agg = prop_oneof![
        Just("sum"),
        Just("mean"),
        Just("count"),
        Just("min"),
        Just("max"),
        Just("stddev"),
        Just("percentile(90)"),
        Just("distribution"),
    ];
    let tail = prop_oneof![
        Just(String::new()),
        Just(" | value val * 2".to_owned()),
        Just(" | top 2".to_owned()),
        Just(" | group_by [], max".to_owned()),
        Just(" | filter zone == \"z0\"".to_owned()),
    ];
    (fetch, align, keys, agg, tail).prop_map(|(f, a, k, g, t)| {
        // A filter on `zone` after grouping needs `zone` to survive.
        let t = if t.contains("zone ==") && !k.contains("zone") { String::new() } else { t };
        let t = if t.contains("value") && g == "distribution" { String::new() } else { t };
        format!("{f}{a} | group_by {k}, {g}{t}")
    })
}

fn close(a: &Value, b: &Value) -> bool {
    // Summation order differs between the paths: allow rounding relative
    // to the values' magnitude (a mean that cancels to 0 may come out as
    // 4e-16 on one path).
    let f =
        |x: f64, y: f64| (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => f(*x, *y),
        (Value::Distribution(x), Value::Distribution(y)) => {
            x.bucket_counts == y.bucket_counts
                && x.count == y.count
                && f(x.mean, y.mean)
                && f(x.sum_of_squared_deviation, y.sum_of_squared_deviation)
        }
        (x, y) => x == y,
    }
}

fn same(a: &Table, b: &Table) -> Result<(), String> {
    if a.series.len() != b.series.len() {
        return Err(format!("{} series vs {}", a.series.len(), b.series.len()));
    }
    for (x, y) in a.series.iter().zip(&b.series) {
        if x.fields != y.fields || x.points.len() != y.points.len() {
            return Err(format!(
                "series {:?} ({} points) vs {:?} ({} points)",
                x.fields,
                x.points.len(),
                y.fields,
                y.points.len()
            ));
        }
        for (p, q) in x.points.iter().zip(&y.points) {
            if p.end_time != q.end_time || !close(&p.value, &q.value) {
                return Err(format!("{:?}: {:?} vs {:?}", x.fields, p, q));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn pushdown_equals_root_evaluation(
        points in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<i8>()), 1..120),
        q in query(),
        zones in 1usize..4,
        leaves in 1usize..4,
        seed in any::<u64>(),
    ) {
        let data = dataset(&points);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let engine = spread(&data, zones, leaves, seed).await;
            let range = QueryRange { start: T0, end: T0 + 120 * SEC, step: 10 * SEC };
            let pushed = engine.collect(TENANT, &q, range, RunOptions::default()).await;
            let root = engine.collect(TENANT, &q, range, RunOptions { all_at_root: true, ..RunOptions::default() }).await;
            match (pushed, root) {
                (Ok((a, _)), Ok((b, _))) => {
                    if let Err(e) = same(&a, &b) {
                        return Err(TestCaseError::fail(format!("{q}: {e}")));
                    }
                }
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => return Err(TestCaseError::fail(format!("{q}: {:?} vs {:?}", a.map(|x| x.0), b.map(|x| x.0)))),
            }
            Ok(())
        })?;
    }
}
