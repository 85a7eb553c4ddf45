//! The PromQL HTTP API fed arbitrary requests: any form body or query
//! string, and queries generated from most of PromQL's grammar (most
//! valid, some with a piece cut or pasted in), so the evaluator meets odd
//! ranges, steps, offsets, subqueries and nesting.
//! No request panics; what is wrong with one is a 4xx naming it, never a
//! 5xx.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use danaus_promql::api::{query, query_range, series, Params};
use danaus_promql::{Labels, MemStorage, Options};
use proptest::prelude::*;

const T: i64 = 1_700_000_000_000;

fn storage() -> MemStorage {
    let mut s = MemStorage::new();
    for (name, job, k) in [("up", "a", 1.0), ("up", "b", 0.0), ("http_requests_total", "a", 7.0)] {
        let labels = Labels::new(vec![
            ("__name__".to_owned(), name.to_owned()),
            ("job".to_owned(), job.to_owned()),
            ("le".to_owned(), "0.5".to_owned()),
        ]);
        s.add(labels, (0..40).map(|i| (T + i * 15_000, k * i as f64)));
    }
    s
}

/// Selectors, with odd but valid modifiers.
fn selector() -> impl Strategy<Value = String> {
    let name = prop::sample::select(&["up", "http_requests_total", "nothing_here", "{job=~\"a|b\"}"][..]);
    let matchers = prop::sample::select(&["", "{job=\"a\"}", "{le!=\"\"}", "{job=~\".*\",le=~\"0\\\\.5\"}"][..]);
    let modifier =
        prop::sample::select(&["", " offset 5m", " offset -1h", " @ 1700000000", " @ start()", " @ end()"][..]);
    (name, matchers, modifier).prop_map(|(n, m, o)| {
        let m = if n.starts_with('{') { "" } else { m };
        format!("{n}{m}{o}")
    })
}

/// A range: a window, or a subquery of any expression.
fn range_of(inner: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    let window = prop::sample::select(&["[5m]", "[1s]", "[15s]", "[1h]", "[100y]"][..]);
    let sub = prop::sample::select(&["[1m:15s]", "[10m:]", "[5m:1ms]", "[1h:7m]"][..]);
    prop_oneof![
        (selector(), window).prop_map(|(s, w)| format!("{s}{w}")),
        (inner, sub).prop_map(|(e, w)| format!("({e}){w}")),
    ]
}

/// Valid PromQL, most of the language: what the evaluator must survive.
fn valid_promql() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => selector(),
        1 => prop::sample::select(&["1", "-0.5", "1e308", "NaN", "Inf", "0x1f", "time()", "vector(2)", "pi()"][..])
            .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        let range_fn = prop::sample::select(
            &[
                "rate",
                "irate",
                "increase",
                "delta",
                "deriv",
                "avg_over_time",
                "max_over_time",
                "count_over_time",
                "quantile_over_time(0.5, ",
                "predict_linear",
                "resets",
                "changes",
                "absent_over_time",
                "last_over_time",
            ][..],
        );
        let agg = prop::sample::select(
            &[
                "sum",
                "avg",
                "min",
                "max",
                "count",
                "stddev",
                "group",
                "topk(2, ",
                "bottomk(1, ",
                "quantile(0.9, ",
                "count_values(\"v\", ",
            ][..],
        );
        let grouping = prop::sample::select(&["", " by (job)", " without (le)", " by ()"][..]);
        let func = prop::sample::select(
            &[
                "abs",
                "ceil",
                "floor",
                "exp",
                "ln",
                "sqrt",
                "sgn",
                "absent",
                "sort_desc",
                "timestamp",
                "scalar",
                "histogram_quantile(0.9, ",
                "clamp_min(",
                "round(",
                "label_replace(",
                "label_join(",
            ][..],
        );
        let op = prop::sample::select(
            &[
                " + ",
                " - ",
                " * ",
                " / ",
                " % ",
                " ^ ",
                " == ",
                " != bool ",
                " > ",
                " <= bool ",
                " and ",
                " or ",
                " unless ",
                " / on (job) ",
                " * ignoring (le) group_left ",
                " atan2 ",
            ][..],
        );
        prop_oneof![
            (range_fn, range_of(inner.clone().boxed())).prop_map(|(f, r)| match f {
                "predict_linear" => format!("predict_linear({r}, 60)"),
                f if f.ends_with(' ') => format!("{f}{r})"),
                f => format!("{f}({r})"),
            }),
            (agg, grouping, inner.clone()).prop_map(|(a, g, e)| if a.ends_with(' ') {
                format!("{}{e}){g}", a)
            } else {
                format!("{a}{g} ({e})")
            }),
            (func, inner.clone()).prop_map(|(f, e)| match f {
                "clamp_min(" => format!("clamp_min({e}, 0)"),
                "round(" => format!("round({e}, 0.1)"),
                "label_replace(" => format!("label_replace({e}, \"dst\", \"$1\", \"job\", \"(.*)\")"),
                "label_join(" => format!("label_join({e}, \"dst\", \"-\", \"job\", \"le\")"),
                f if f.ends_with(' ') => format!("{f}{e})"),
                f => format!("{f}({e})"),
            }),
            (inner.clone(), op, inner.clone()).prop_map(|(a, o, b)| format!("({a}){o}({b})")),
            inner.prop_map(|e| format!("-({e})")),
        ]
    })
}

/// PromQL, valid or broken: a valid query with a piece cut out or pasted
/// in now and then.
fn promql() -> impl Strategy<Value = String> {
    let junk = prop::sample::select(&["", ")", "(", "[5m]", "{", "by (", ",", " offset ", "@", "\"", "1 +"][..]);
    (valid_promql(), any::<prop::sample::Index>(), junk, prop::bool::weighted(0.2)).prop_map(|(q, at, j, broken)| {
        if !broken {
            return q;
        }
        let mut i = at.index(q.len() + 1);
        while !q.is_char_boundary(i) {
            i -= 1;
        }
        format!("{}{j}{}", &q[..i], &q[i..])
    })
}

fn form(pairs: &[(&str, String)]) -> Vec<u8> {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out.into_bytes()
}

/// Any request is answered, none with a server error; and enough of the
/// generated queries are valid that the evaluator is what is exercised.
#[test]
fn any_request_is_answered_without_a_server_error() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let s = storage();
    let answered = std::cell::Cell::new(0usize);
    proptest!(ProptestConfig { cases: 400, ..ProptestConfig::default() }, |(
        q in promql(),
        start in prop_oneof![Just("1700000000".to_owned()), "-?[0-9]{1,12}(\\.[0-9]{1,3})?", "\\PC{0,8}"],
        span in prop_oneof![Just(600i64), 0i64..100_000, Just(-5)],
        step in prop_oneof![Just("15".to_owned()), "[0-9]{1,6}(ms|s|m|h|d|y)?", "-[0-9]{1,3}", "\\PC{0,6}"],
        junk_query in prop::collection::vec(any::<u8>(), 0..64),
        junk_form in prop::collection::vec(any::<u8>(), 0..64),
    )| {
        let end = start.parse::<f64>().map(|v| (v + span as f64).to_string()).unwrap_or_else(|_| start.clone());
        let opts = Options { max_samples: 200_000, ..Options::default() };
        let instant = Params::parse(&form(&[("query", q.clone()), ("time", end.clone())]), b"");
        let ranged = Params::parse(
            b"",
            &form(&[("query", q.clone()), ("start", start), ("end", end), ("step", step)]),
        );
        let junk = Params::parse(&junk_query, &junk_form);
        for (what, r) in [
            ("instant", rt.block_on(query(&s, &instant, T + 600_000, opts))),
            ("range", rt.block_on(query_range(&s, &ranged, opts))),
            ("junk instant", rt.block_on(query(&s, &junk, T, opts))),
            ("junk range", rt.block_on(query_range(&s, &junk, opts))),
            ("junk series", rt.block_on(series(&s, &junk, T))),
        ] {
            prop_assert!(r.status < 500, "{what} {q:?}: {} {}", r.status, r.body);
            if what == "instant" && r.status == 200 {
                answered.set(answered.get() + 1);
            }
        }
    });
    assert!(answered.get() >= 100, "only {} of 400 generated queries were answered", answered.get());
}

/// A subquery's step over a query's whole range is memory and time: a
/// 1 ms step over a day-long range query is 86 million steps. It is
/// refused as too large at once (this one hung the test above for
/// minutes before it was), within the query's sample limit.
#[test]
fn a_fine_subquery_over_a_long_range_is_refused_at_once() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let s = storage();
    let q = "(delta(({job=~\"a|b\"} @ 1700000000)[5m:1ms])) atan2 (count_over_time((up{job=\"a\"} offset 5m)[1h:7m]))";
    let p = Params::parse(
        b"",
        &form(&[
            ("query", q.to_owned()),
            ("start", "28852286.6".to_owned()),
            ("end", (28852286.6f64 + 63924.0).to_string()),
            ("step", "15".to_owned()),
        ]),
    );
    let r = rt.block_on(query_range(&s, &p, Options { max_samples: 200_000, ..Options::default() }));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("subquery") && r.body.contains("the limit is 200000"), "{}", r.body);
    // Refused before anything is fetched: storage would otherwise compute
    // the pushed-down aggregation at each of the 300,001 steps first.
    let q = "max_over_time((count_values(\"v\", group without (le) ({job=~\"a|b\"} @ 1700000000)) by (job))[5m:1ms])";
    let p = Params::parse(&form(&[("query", q.to_owned()), ("time", "1700000300".to_owned())]), b"");
    let r = rt.block_on(query(&s, &p, T, Options { max_samples: 200_000, ..Options::default() }));
    assert_eq!(r.status, 422, "{}", r.body);
    // Within the limit, the same subquery is answered.
    let p = Params::parse(
        &form(&[("query", "max_over_time(up[5m:1s])".to_owned()), ("time", "1700000300".to_owned())]),
        b"",
    );
    let r = rt.block_on(query(&s, &p, T, Options { max_samples: 200_000, ..Options::default() }));
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Evaluation computes on the caller's thread, where no timer can stop
/// it: it watches its deadline itself and gives up with `timeout`.
#[test]
fn evaluation_gives_up_at_its_deadline() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let s = storage();
    let range = |deadline| {
        let p = Params::parse(
            b"",
            &form(&[
                ("query", "sum(rate(up[5m:1s]))".to_owned()),
                ("start", "1700000000".to_owned()),
                ("end", "1700000600".to_owned()),
                ("step", "1".to_owned()),
            ]),
        );
        rt.block_on(query_range(&s, &p, Options { deadline, ..Options::default() }))
    };
    let r = range(Some(std::time::Instant::now()));
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("\"errorType\":\"timeout\""), "{}", r.body);
    let r = range(Some(std::time::Instant::now() + std::time::Duration::from_secs(600)));
    assert_eq!(r.status, 200, "{}", r.body);
}
