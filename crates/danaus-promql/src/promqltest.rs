//! Prometheus' PromQL test-script format, run against any [`Backend`].
//!
//! ```text
//! load 1m
//!     http_requests{job="api"} 0+10x10 _ stale
//!
//! eval instant at 5m rate(http_requests[5m])
//!     {job="api"} 0.16666666666666666
//!
//! eval range from 0 to 4m step 2m sum(http_requests)
//!     {} 0 20 40
//!
//! eval instant at 1m foo + on(bar) baz
//!     expect fail msg: some message
//! ```
//!
//! Commands are separated by blank lines; `#` starts a comment line.
//! Values expand as in `promtool`: `a+bxn` is `a, a+b, …, a+n·b`, `a-bxn`
//! counts down, `axn` repeats, `_` is a missing sample (`_xn`: n of them),
//! `stale` a staleness marker. Expected values compare with a relative
//! tolerance of 1e-6 (NaN equals NaN); series compare unordered unless
//! `expect ordered` (or `eval_ordered`) says otherwise. `eval_fail` and
//! `expect fail [msg: …|regex: …]` expect an error. `expect warn` and
//! `expect info` are refused (the evaluator emits no annotations);
//! `no_warn` and `no_info` hold trivially.

use futures::future::BoxFuture;
use regex::Regex;

use crate::error::Result;
use crate::eval::{self, Options};
use crate::storage::MemStorage;
use crate::value::{stale_nan, Labels, Value};

/// What scripts run against: a store to load and a PromQL engine.
pub trait Backend: Send {
    /// Adds samples (`(ms, value)`) to a series.
    fn load(&mut self, series: Vec<(Labels, Vec<(i64, f64)>)>) -> BoxFuture<'_, std::result::Result<(), String>>;
    /// Removes everything loaded.
    fn clear(&mut self) -> BoxFuture<'_, std::result::Result<(), String>>;
    /// An instant query at `time` (ms).
    fn instant<'a>(&'a mut self, query: &'a str, time: i64) -> BoxFuture<'a, Result<Value>>;
    /// A range query (ms).
    fn range<'a>(&'a mut self, query: &'a str, start: i64, end: i64, step: i64) -> BoxFuture<'a, Result<Value>>;
}

/// The evaluator over [`MemStorage`].
#[derive(Default)]
pub struct MemBackend {
    /// The data.
    pub storage: MemStorage,
    /// Evaluation options.
    pub options: Options,
}

impl Backend for MemBackend {
    fn load(&mut self, series: Vec<(Labels, Vec<(i64, f64)>)>) -> BoxFuture<'_, std::result::Result<(), String>> {
        for (l, pts) in series {
            self.storage.add(l, pts);
        }
        Box::pin(async { Ok(()) })
    }

    fn clear(&mut self) -> BoxFuture<'_, std::result::Result<(), String>> {
        self.storage.clear();
        Box::pin(async { Ok(()) })
    }

    fn instant<'a>(&'a mut self, query: &'a str, time: i64) -> BoxFuture<'a, Result<Value>> {
        Box::pin(eval::instant(&self.storage, query, time, self.options))
    }

    fn range<'a>(&'a mut self, query: &'a str, start: i64, end: i64, step: i64) -> BoxFuture<'a, Result<Value>> {
        Box::pin(eval::range(&self.storage, query, start, end, step, self.options))
    }
}

/// One expected series: labels and a value per step (`None`: no sample).
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    labels: Labels,
    values: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Fail {
    Any,
    Msg(String),
    Regex(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Cmd {
    Load(Vec<(Labels, Vec<(i64, f64)>)>),
    Clear,
    Eval {
        line: usize,
        query: String,
        /// `(start, end, step)`; an instant query has `start == end` and
        /// step 0.
        at: (i64, i64, i64),
        fail: Option<Fail>,
        ordered: bool,
        scalar: Option<f64>,
        series: Vec<Expected>,
    },
}

/// Runs a script; the error names every failed line and what differed.
pub async fn run(script: &str, backend: &mut dyn Backend) -> std::result::Result<(), String> {
    let mut failures = Vec::new();
    for cmd in parse_script(script)? {
        if let Err(e) = run_one(cmd, backend).await {
            failures.push(e);
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

async fn run_one(cmd: Cmd, backend: &mut dyn Backend) -> std::result::Result<(), String> {
    {
        match cmd {
            Cmd::Load(s) => backend.load(s).await?,
            Cmd::Clear => backend.clear().await?,
            Cmd::Eval { line, query, at, fail, ordered, scalar, series } => {
                let result = if at.2 == 0 {
                    backend.instant(&query, at.0).await
                } else {
                    backend.range(&query, at.0, at.1, at.2).await
                };
                let ctx = |m: String| format!("line {line}: {query}: {m}");
                match (result, fail) {
                    (Err(e), Some(f)) => {
                        let msg = e.to_string();
                        let ok = match &f {
                            Fail::Any => true,
                            Fail::Msg(m) => msg == *m,
                            Fail::Regex(r) => Regex::new(r).map_err(|e| ctx(e.to_string()))?.is_match(&msg),
                        };
                        if !ok {
                            return Err(ctx(format!("failed with {msg:?}, expected {f:?}")));
                        }
                    }
                    (Err(e), None) => return Err(ctx(format!("unexpected error: {e}"))),
                    (Ok(v), Some(_)) => return Err(ctx(format!("expected an error, got {v:?}"))),
                    (Ok(v), None) => check(&v, at, ordered, scalar, &series).map_err(ctx)?,
                }
            }
        }
    }
    Ok(())
}

fn check(
    v: &Value,
    at: (i64, i64, i64),
    ordered: bool,
    scalar: Option<f64>,
    expected: &[Expected],
) -> std::result::Result<(), String> {
    match v {
        Value::Scalar(_, x) => match scalar {
            Some(e) if almost_equal(*x, e) => Ok(()),
            _ => Err(format!("got scalar {x}, expected {scalar:?} / {expected:?}")),
        },
        Value::String(_, s) => Err(format!("got string {s:?}")),
        Value::Vector(_, samples) => {
            if let Some(e) = scalar {
                return Err(format!("expected scalar {e}, got vector {samples:?}"));
            }
            if samples.len() != expected.len() {
                return Err(format!("got {} samples, expected {}: {samples:?}", samples.len(), expected.len()));
            }
            for (i, s) in samples.iter().enumerate() {
                let e = if ordered {
                    &expected[i]
                } else {
                    expected
                        .iter()
                        .find(|e| e.labels == *s.labels)
                        .ok_or_else(|| format!("unexpected series {}", s.labels))?
                };
                if e.labels != *s.labels {
                    return Err(format!("sample {i} is {}, expected {}", s.labels, e.labels));
                }
                match e.values.as_slice() {
                    [Some(x)] if almost_equal(s.value, *x) => {}
                    _ => return Err(format!("{}: got {}, expected {:?}", s.labels, s.value, e.values)),
                }
            }
            Ok(())
        }
        Value::Matrix(series) => {
            let steps = if at.2 == 0 { 1 } else { ((at.1 - at.0) / at.2 + 1) as usize };
            let want: Vec<&Expected> = expected.iter().filter(|e| e.values.iter().any(Option::is_some)).collect();
            if series.len() != want.len() {
                return Err(format!(
                    "got {} series, expected {}: {}",
                    series.len(),
                    want.len(),
                    series.iter().map(|s| s.labels.to_string()).collect::<Vec<_>>().join(", ")
                ));
            }
            for s in series {
                let e = want
                    .iter()
                    .find(|e| e.labels == *s.labels)
                    .ok_or_else(|| format!("unexpected series {}", s.labels))?;
                let got: Vec<Option<f64>> = if at.2 == 0 {
                    // A range vector at an instant: its samples in order.
                    s.points.iter().map(|p| Some(p.1)).collect()
                } else {
                    let mut got = vec![None; steps.max(e.values.len())];
                    for &(t, v) in &s.points {
                        let i = ((t - at.0) / at.2) as usize;
                        if let Some(slot) = got.get_mut(i) {
                            *slot = Some(v);
                        }
                    }
                    got
                };
                let same = got.len() == e.values.len()
                    && got.iter().zip(&e.values).all(|(g, w)| match (g, w) {
                        (None, None) => true,
                        (Some(a), Some(b)) => almost_equal(*a, *b),
                        _ => false,
                    });
                if !same {
                    return Err(format!("{}: got {got:?}, expected {:?}", s.labels, e.values));
                }
            }
            Ok(())
        }
    }
}

/// Prometheus' test comparison: relative error below 1e-6; NaN equals NaN.
pub fn almost_equal(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 1e-6;
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || sum < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / sum.min(f64::MAX) < EPSILON
}

fn parse_script(script: &str) -> std::result::Result<Vec<Cmd>, String> {
    let lines: Vec<&str> = script
        .lines()
        .map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                ""
            } else {
                l
            }
        })
        .collect();
    let range_re = Regex::new(r"^range\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)\s+(.+)$")
        .map_err(|e| format!("internal: {e}"))?;
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let n = i + 1;
        i += 1;
        if line.is_empty() {
            continue;
        }
        // The block: following lines up to a blank one.
        let start = i;
        while i < lines.len() && !lines[i].is_empty() {
            i += 1;
        }
        let block = &lines[start..i];
        let err = |m: String| format!("line {n}: {m}");
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match word {
            "clear" => cmds.push(Cmd::Clear),
            "load" => {
                let step = parse_duration(rest.trim()).map_err(err)?;
                let mut series = Vec::new();
                for l in block {
                    let (labels, values) = parse_series_line(l).map_err(err)?;
                    let pts =
                        values.into_iter().enumerate().filter_map(|(k, v)| v.map(|v| (k as i64 * step, v))).collect();
                    series.push((labels, pts));
                }
                cmds.push(Cmd::Load(series));
            }
            "eval" | "eval_fail" | "eval_ordered" => {
                let mut fail = (word == "eval_fail").then_some(Fail::Any);
                let mut ordered = word == "eval_ordered";
                let (at, query) = if let Some(r) = rest.trim().strip_prefix("instant") {
                    let r = r.trim().strip_prefix("at").ok_or_else(|| err("expected `instant at <time>`".into()))?;
                    let (t, q) = r.trim().split_once(char::is_whitespace).ok_or_else(|| err("missing query".into()))?;
                    let t = parse_duration(t).map_err(err)?;
                    ((t, t, 0), q.trim().to_owned())
                } else if rest.trim().starts_with("range") {
                    let c = range_re
                        .captures(rest.trim())
                        .ok_or_else(|| err("expected `range from <t> to <t> step <d> <query>`".into()))?;
                    let step = parse_duration(&c[3]).map_err(err)?;
                    if step <= 0 {
                        return Err(err("step must be positive".into()));
                    }
                    let (a, b) = (parse_duration(&c[1]).map_err(err)?, parse_duration(&c[2]).map_err(err)?);
                    ((a, b, step), c[4].trim().to_owned())
                } else {
                    return Err(err(format!("unknown eval form {rest:?}")));
                };
                let mut scalar = None;
                let mut series = Vec::new();
                for l in block {
                    if let Some(e) = l.strip_prefix("expect") {
                        let e = e.trim();
                        let (kind, arg) = e.split_once(char::is_whitespace).unwrap_or((e, ""));
                        match kind {
                            "fail" => {
                                let arg = arg.trim();
                                fail = Some(if let Some(m) = arg.strip_prefix("msg:") {
                                    Fail::Msg(unquote(m.trim()))
                                } else if let Some(r) = arg.strip_prefix("regex:") {
                                    Fail::Regex(unquote(r.trim()))
                                } else {
                                    Fail::Any
                                });
                            }
                            "ordered" => ordered = true,
                            "no_warn" | "no_info" => {}
                            other => return Err(err(format!("`expect {other}` is not supported (no annotations)"))),
                        }
                    } else if let Some(v) = parse_number(l) {
                        scalar = Some(v);
                    } else {
                        let (labels, values) = parse_series_line(l).map_err(err)?;
                        series.push(Expected { labels, values });
                    }
                }
                cmds.push(Cmd::Eval { line: n, query, at, fail, ordered, scalar, series });
            }
            other => return Err(err(format!("unknown command {other:?}"))),
        }
    }
    Ok(cmds)
}

fn unquote(s: &str) -> String {
    let t = s.trim();
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        t[1..t.len() - 1].replace("\\\"", "\"")
    } else {
        t.to_owned()
    }
}

/// A Prometheus duration (`1h30m`, `90s`, `500ms`) or plain seconds, as ms.
pub fn parse_duration(s: &str) -> std::result::Result<i64, String> {
    if let Ok(secs) = s.parse::<i64>() {
        return secs.checked_mul(1000).ok_or_else(|| format!("duration {s:?} is too long"));
    }
    danaus_model::time::parse_duration_ns(s).map(|ns| ns / 1_000_000).ok_or_else(|| format!("bad duration {s:?}"))
}

fn parse_number(s: &str) -> Option<f64> {
    match s {
        "Inf" | "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse::<f64>().ok().filter(|_| !s.contains(['x', '_'])),
    }
}

/// `metric{a="b"} values…` into labels and expanded values.
/// A `load` line: a series in metric notation and its values in
/// promtool's expanding notation (`1+2x3`, `_`, `_x2`, `stale`): a value
/// per step, `None` where there is none.
pub fn parse_series_line(line: &str) -> std::result::Result<(Labels, Vec<Option<f64>>), String> {
    let (labels, rest) = parse_labels(line)?;
    let mut values = Vec::new();
    for tok in rest.split_whitespace() {
        expand(tok, &mut values)?;
    }
    Ok((labels, values))
}

/// A series in metric notation (`name{a="b"}`, `{a="b"}`), all of it.
pub fn parse_metric(s: &str) -> std::result::Result<Labels, String> {
    let (labels, rest) = parse_labels(s.trim())?;
    if !rest.trim().is_empty() {
        return Err(format!("unexpected {:?} after the series in {s:?}", rest.trim()));
    }
    Ok(labels)
}

fn parse_labels(s: &str) -> std::result::Result<(Labels, &str), String> {
    let name_end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(s.len());
    let mut pairs = Vec::new();
    if name_end > 0 {
        pairs.push((crate::value::METRIC_NAME.to_owned(), s[..name_end].to_owned()));
    }
    let mut rest = &s[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find('=').ok_or_else(|| format!("bad labels in {s:?}"))?;
            let name = rest[..eq].trim().to_owned();
            rest = rest[eq + 1..].trim_start();
            let quote = rest
                .chars()
                .next()
                .filter(|c| *c == '"' || *c == '\'')
                .ok_or_else(|| format!("bad labels in {s:?}"))?;
            let mut value = String::new();
            let mut chars = rest[1..].char_indices();
            let mut end = None;
            while let Some((k, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, 't')) => value.push('\t'),
                        Some((_, c)) => value.push(c),
                        None => break,
                    },
                    c if c == quote => {
                        end = Some(k + 2);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.ok_or_else(|| format!("unterminated label value in {s:?}"))?;
            rest = &rest[end..];
            pairs.push((name, value));
        }
    } else if name_end == 0 {
        return Err(format!("expected a series in {s:?}"));
    }
    Ok((Labels::new(pairs), rest))
}

fn expand(tok: &str, out: &mut Vec<Option<f64>>) -> std::result::Result<(), String> {
    let bad = || format!("bad value {tok:?}");
    if tok == "_" {
        out.push(None);
        return Ok(());
    }
    if tok == "stale" {
        out.push(Some(stale_nan()));
        return Ok(());
    }
    if let Some(n) = tok.strip_prefix("_x") {
        let n: usize = n.parse().map_err(|_| bad())?;
        out.extend(std::iter::repeat_n(None, n));
        return Ok(());
    }
    if let Some((head, times)) = tok.rsplit_once('x') {
        let n: i64 = times.parse().map_err(|_| bad())?;
        // `a+b`, `a-b` or `a`; the sign of `a` itself is not a separator.
        let split =
            head.char_indices().skip(1).find(|&(k, c)| (c == '+' || c == '-') && !head[..k].ends_with(['e', 'E']));
        let (a, b) = match split {
            Some((k, c)) => {
                let b: f64 = head[k + 1..].parse().map_err(|_| bad())?;
                (&head[..k], if c == '-' { -b } else { b })
            }
            None => (head, 0.0),
        };
        let a = parse_number(a).ok_or_else(bad)?;
        for k in 0..=n {
            out.push(Some(a + b * k as f64));
        }
        return Ok(());
    }
    out.push(Some(parse_number(tok).ok_or_else(bad)?));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expand_as_promtool_does() {
        let mut v = Vec::new();
        for t in ["1", "2+3x2", "_", "10-1x1", "_x2", "4x1", "-1+1x1"] {
            expand(t, &mut v).expect("valid");
        }
        assert_eq!(
            v,
            vec![
                Some(1.0),
                Some(2.0),
                Some(5.0),
                Some(8.0),
                None,
                Some(10.0),
                Some(9.0),
                None,
                None,
                Some(4.0),
                Some(4.0),
                Some(-1.0),
                Some(0.0)
            ]
        );
        assert!(expand("1+x", &mut v).is_err());
    }

    #[test]
    fn series_lines_and_durations_parse() {
        let (l, v) = parse_series_line(r#"foo{a="x \"y\"", b='z'} 1 2"#).expect("valid");
        assert_eq!(l.to_string(), r#"foo{a="x \"y\"", b="z"}"#);
        assert_eq!(v, vec![Some(1.0), Some(2.0)]);
        assert_eq!(parse_duration("1h30m").expect("valid"), 5_400_000);
        assert_eq!(parse_duration("90").expect("valid"), 90_000);
        assert!(parse_duration("5q").is_err());
    }

    #[tokio::test]
    async fn a_wrong_expectation_fails_the_script() {
        let script = "load 1m\n  up{job=\"a\"} 1 2 3\n\neval instant at 2m up\n  up{job=\"a\"} 4\n";
        let err = run(script, &mut MemBackend::default()).await.expect_err("4 is not 3");
        assert!(err.contains("line 4"), "{err}");
        let ok = "load 1m\n  up{job=\"a\"} 1 2 3\n\neval instant at 2m up\n  up{job=\"a\"} 3\n";
        run(ok, &mut MemBackend::default()).await.expect("3 is 3");
    }
}
