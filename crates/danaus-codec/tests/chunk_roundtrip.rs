//! Property tests: every value type round-trips through a chunk bit-exactly,
//! and corrupt chunks give errors, never panics.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use danaus_codec::{Chunk, ChunkBuilder};
use danaus_model::{Bucketer, Distribution, Exemplar, Point, ScalarType, Value, ValueType};
use proptest::prelude::*;

fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        any::<f64>(),
        (-1000i32..1000).prop_map(|i| f64::from(i) / 4.0),
    ]
}

fn arb_dist() -> impl Strategy<Value = Distribution> {
    (prop::collection::vec(-100f64..100.0, 0..20), any::<bool>(), prop::option::of(any::<i64>())).prop_map(
        |(vals, explicit, ex)| {
            let b = if explicit {
                Bucketer::Explicit { bounds: vec![-10.0, 0.0, 10.0] }
            } else {
                Bucketer::Linear { num_finite: 8, width: 25.0, offset: -100.0 }
            };
            let mut d = Distribution::from_values(b, &vals);
            if let Some(t) = ex {
                let mut attachments = std::collections::BTreeMap::new();
                attachments.insert("pod".to_string(), "a".to_string());
                d.exemplars.push((
                    1,
                    Exemplar { value: 1.5, time: t, trace_id: vec![1; 16], span_id: vec![2; 8], attachments },
                ));
            }
            d
        },
    )
}

fn arb_scalar(t: ScalarType) -> BoxedStrategy<Value> {
    match t {
        ScalarType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        ScalarType::Int64 => {
            prop_oneof![any::<i64>(), -5i64..5, Just(i64::MIN), Just(i64::MAX)].prop_map(Value::Int64).boxed()
        }
        ScalarType::Double => arb_f64().prop_map(Value::Double).boxed(),
        ScalarType::String => prop_oneof!["[a-c]{0,3}", any::<String>()].prop_map(Value::String).boxed(),
        ScalarType::Distribution => arb_dist().prop_map(|d| Value::Distribution(Box::new(d))).boxed(),
    }
}

fn arb_type() -> impl Strategy<Value = ValueType> {
    let s = prop_oneof![
        Just(ScalarType::Bool),
        Just(ScalarType::Int64),
        Just(ScalarType::Double),
        Just(ScalarType::String),
        Just(ScalarType::Distribution)
    ];
    prop_oneof![s.clone().prop_map(ValueType::Scalar), prop::collection::vec(s, 1..4).prop_map(ValueType::Tuple)]
}

fn arb_series() -> impl Strategy<Value = (ValueType, bool, Vec<Point>)> {
    (arb_type(), any::<bool>()).prop_flat_map(|(t, has_start)| {
        let value: BoxedStrategy<Value> = match &t {
            ValueType::Scalar(s) => arb_scalar(*s),
            ValueType::Tuple(items) => {
                items.iter().map(|s| arb_scalar(*s)).collect::<Vec<_>>().prop_map(Value::Tuple).boxed()
            }
        };
        let times = prop_oneof![
            // jittered regular scrapes, huge and negative deltas
            prop::collection::vec(-3_000_000i64..3_000_000, 0..150).prop_map(|j| j
                .iter()
                .enumerate()
                .map(|(i, j)| 1_700_000_000_000_000_000 + i as i64 * 15_000_000_000 + j)
                .collect::<Vec<_>>()),
            prop::collection::vec(any::<i64>(), 0..50),
        ];
        let starts = prop::collection::vec(prop_oneof![Just(None), Just(Some(0i64)), any::<i64>().prop_map(Some)], 150);
        (Just(t), Just(has_start), times, prop::collection::vec(value, 150), starts).prop_map(
            |(t, has_start, times, values, starts)| {
                let pts = times
                    .into_iter()
                    .zip(values)
                    .zip(starts)
                    .map(|((end_time, value), s)| Point {
                        start_time: if has_start { s } else { None },
                        end_time,
                        value,
                    })
                    .collect();
                (t, has_start, pts)
            },
        )
    })
}

fn same(a: &Point, b: &Point) -> bool {
    a.start_time == b.start_time && a.end_time == b.end_time && a.value.same_as(&b.value)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn chunks_round_trip((t, has_start, points) in arb_series()) {
        let mut b = ChunkBuilder::new(t, has_start);
        for p in &points { b.push(p).unwrap(); }
        let chunk = b.finish();
        let h = chunk.header().unwrap();
        prop_assert_eq!(h.count as usize, points.len());
        if let (Some(min), Some(max)) = (points.iter().map(|p| p.end_time).min(), points.iter().map(|p| p.end_time).max()) {
            prop_assert_eq!((h.min_time, h.max_time), (min, max));
        }
        let back = Chunk::from_bytes(chunk.as_bytes().to_vec()).points().unwrap();
        prop_assert_eq!(back.len(), points.len());
        for (a, b) in back.iter().zip(&points) { prop_assert!(same(a, b), "{a:?} != {b:?}"); }
        // The builder keeps going after a finish.
        let mid = b.finish();
        prop_assert_eq!(mid, chunk);
        // The packed form of a sealed chunk holds the same points.
        let packed = b.finish_packed().points().unwrap();
        prop_assert_eq!(packed.len(), points.len());
        for (a, b) in packed.iter().zip(&points) { prop_assert!(same(a, b), "{a:?} != {b:?}"); }
    }

    #[test]
    fn corrupt_chunks_never_panic((t, has_start, points) in arb_series(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4), cut in any::<prop::sample::Index>()) {
        let mut b = ChunkBuilder::new(t, has_start);
        for p in &points { b.push(p).unwrap(); }
        let mut bytes = if flips.len() % 2 == 0 { b.finish().into_bytes() } else { b.finish_packed().into_bytes() };
        for (i, x) in flips { let i = i.index(bytes.len()); bytes[i] ^= x; }
        let _ = Chunk::from_bytes(bytes.clone()).points();
        bytes.truncate(cut.index(bytes.len() + 1));
        let _ = Chunk::from_bytes(bytes).points();
    }
}

#[test]
fn empty_and_single_point_chunks() {
    let b = ChunkBuilder::new(ValueType::Scalar(ScalarType::Double), false);
    assert!(b.finish().points().unwrap().is_empty());
    let mut b = ChunkBuilder::new(ValueType::Scalar(ScalarType::Double), false);
    b.push_double(-5, -0.0).unwrap();
    let p = b.finish().points().unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].end_time, -5);
    assert!(matches!(p[0].value, Value::Double(v) if v.to_bits() == (-0.0f64).to_bits()));
}

#[test]
fn wrong_type_is_refused_and_nothing_appended() {
    let mut b = ChunkBuilder::new(ValueType::Scalar(ScalarType::Int64), false);
    let err = b.push(&Point::gauge(1, Value::Double(1.0))).unwrap_err();
    assert!(err.to_string().contains("does not match the chunk's value type int64"), "{err}");
    assert_eq!(b.len(), 0);
}

#[test]
fn time_section_is_the_time_column() {
    let mut b = ChunkBuilder::new(ValueType::Scalar(ScalarType::Double), false);
    let mut t = danaus_codec::time::TimeEncoder::default();
    for i in 0..100i64 {
        b.push_double(1_000_000 * (15_000 * i + i % 3), i as f64).unwrap();
        t.push(1_000_000 * (15_000 * i + i % 3));
    }
    let chunk = b.finish();
    let mut want = Vec::new();
    t.write_to(&mut want);
    assert_eq!(&chunk.as_bytes()[chunk.time_section().unwrap()], &want[..]);
}

mod shared_times {
    use std::sync::{Arc, Mutex};

    use danaus_codec::time::SharedTimes;
    use danaus_codec::ChunkBuilder;
    use danaus_model::{Point, ScalarType, Value, ValueType};
    use proptest::prelude::*;

    fn vt() -> ValueType {
        ValueType::Scalar(ScalarType::Double)
    }

    proptest! {
        /// Builders sharing a time column produce exactly the bytes of
        /// builders with their own, however their times interleave and
        /// diverge and whenever they are finished.
        #[test]
        fn sharing_is_invisible(
            base in prop::collection::vec(0i64..5, 1..150),
            diverge in prop::collection::vec(prop::option::of((0usize..150, 1i64..1000)), 1..6),
            batch in 1usize..8,
            finish_at in 0usize..150,
        ) {
            let times: Vec<i64> = base.iter().scan(1_000_000_000i64, |t, d| { *t += 15_000_000_000 + d * 1_000_000; Some(*t) }).collect();
            let series: Vec<Vec<i64>> = diverge.iter().map(|d| {
                let mut ts = times.clone();
                if let Some((at, shift)) = d {
                    for t in ts.iter_mut().skip(*at) { *t += shift; }
                }
                ts
            }).collect();
            let col = Arc::new(Mutex::new(SharedTimes::default()));
            let mut shared: Vec<ChunkBuilder> = series.iter().map(|_| ChunkBuilder::with_shared_times(vt(), false, col.clone())).collect();
            let mut own: Vec<ChunkBuilder> = series.iter().map(|_| ChunkBuilder::new(vt(), false)).collect();
            // Writes arrive per series in batches of `batch` points, series after series.
            let mut pos = 0;
            while pos < times.len() {
                let end = (pos + batch).min(times.len());
                for (k, ts) in series.iter().enumerate() {
                    for (j, t) in ts.iter().enumerate().take(end).skip(pos) {
                        shared[k].push_double(*t, j as f64).unwrap();
                        own[k].push_double(*t, j as f64).unwrap();
                    }
                    if pos <= finish_at && finish_at < end {
                        prop_assert_eq!(shared[k].finish(), own[k].finish());
                    }
                }
                pos = end;
            }
            for (s, o) in shared.iter().zip(&own) {
                prop_assert_eq!(s.finish(), o.finish());
                prop_assert_eq!(s.finish_packed(), o.finish_packed());
                prop_assert_eq!(s.last_time(), o.last_time());
            }
            // Identical series keep sharing.
            if diverge.iter().filter(|d| d.is_none()).count() >= 2 {
                prop_assert!(series.iter().zip(&shared).any(|(_, b)| b.shares_times()));
            }
        }

        /// A range read of an open chunk (which may start at a mark) sees
        /// exactly the points of the serialised chunk in that range:
        /// shared or own times, builders behind their shared column, values
        /// whose coding changes midway, start times present, points out of
        /// order.
        #[test]
        fn range_reads_see_what_the_chunk_holds(
            steps in prop::collection::vec(1i64..5, 1..300),
            lengths in prop::collection::vec(1usize..300, 1..4),
            values in prop::collection::vec(prop_oneof![4 => (0i64..1000).prop_map(|m| m as f64 / 10.0), 1 => any::<f64>()], 300),
            with_starts in any::<bool>(),
            swap in prop::option::of(0usize..300),
            range in (0usize..300, 0usize..300),
        ) {
            let times: Vec<i64> = steps.iter().scan(0i64, |t, d| { *t += d * 15_000_000_000; Some(*t) }).collect();
            let col = Arc::new(Mutex::new(SharedTimes::default()));
            let mut builders = Vec::new();
            for (k, &len) in lengths.iter().enumerate() {
                let mut ts: Vec<i64> = times.iter().copied().take(len).collect();
                let mut b = if k == 0 { ChunkBuilder::new(vt(), with_starts) } else { ChunkBuilder::with_shared_times(vt(), with_starts, col.clone()) };
                if k == 0 {
                    if let Some(i) = swap.filter(|&i| i + 1 < ts.len()) {
                        ts.swap(i, i + 1);
                    }
                }
                for (j, t) in ts.iter().enumerate() {
                    let v = Value::Double(values[j]);
                    let p = if with_starts { Point { start_time: Some(0), end_time: *t, value: v } } else { Point::gauge(*t, v) };
                    b.push(&p).unwrap();
                }
                builders.push(b);
            }
            let (lo, hi) = (range.0.min(range.1), range.0.max(range.1));
            let at = |i: usize| times.get(i).copied().unwrap_or(i64::MAX) - 1;
            let (start, end) = (at(lo), at(hi));
            for b in &builders {
                let mut want = (Vec::new(), Vec::new());
                for p in b.finish().points().unwrap() {
                    if p.end_time >= start && p.end_time <= end {
                        let Value::Double(v) = p.value else { unreachable!() };
                        want.0.push(p.end_time);
                        want.1.push(v.to_bits());
                    }
                }
                let (mut t, mut v) = (vec![7], vec![7.0]);
                b.read_doubles_in(start, end, &mut t, &mut v).unwrap();
                prop_assert_eq!((t[0], v[0]), (7, 7.0), "appends");
                prop_assert_eq!(&t[1..], &want.0[..]);
                prop_assert_eq!(v[1..].iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.1);
            }
        }
    }
}

proptest! {
    #[test]
    fn batch_read_equals_point_read(vals in prop::collection::vec((0i64..1000, arb_f64()), 0..300), packed in any::<bool>()) {
        let mut b = ChunkBuilder::new(ValueType::Scalar(ScalarType::Double), false);
        let mut t = 1_700_000_000_000_000_000i64;
        for (dt, v) in &vals { t += dt * 1_000_000; b.push_double(t, *v).unwrap(); }
        let chunk = if packed { b.finish_packed() } else { b.finish() };
        let points = chunk.points().unwrap();
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        chunk.iter().unwrap().read_doubles(&mut ts, &mut vs).unwrap();
        prop_assert_eq!(ts, points.iter().map(|p| p.end_time).collect::<Vec<_>>());
        let bits: Vec<u64> = vs.iter().map(|v| v.to_bits()).collect();
        let want: Vec<u64> = points.iter().map(|p| match p.value { Value::Double(d) => d.to_bits(), _ => 0 }).collect();
        prop_assert_eq!(bits, want);
    }
}

/// Found by the `chunk_decode` fuzz target: a corrupt point count made the
/// batch decoder allocate gigabytes before noticing the data was short.
#[test]
fn implausible_point_count_is_corrupt() {
    let mut b = ChunkBuilder::new(ValueType::Scalar(ScalarType::Double), false);
    b.push(&Point { start_time: None, end_time: 10, value: Value::Double(1.0) }).unwrap();
    let good = b.finish().into_bytes();
    // Rewrite the count varint (after version, value type, flags) to 2^28.
    let mut bad = good[..3].to_vec();
    bad.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x01]);
    bad.extend_from_slice(&good[4..]);
    let chunk = Chunk::from_bytes(bad);
    let e = chunk.header().unwrap_err();
    assert!(e.to_string().contains("claims 268435456 points"), "{e}");
    assert!(chunk.iter().is_err());
}
