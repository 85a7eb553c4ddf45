//! The Prometheus HTTP query API, without an HTTP framework: parameters
//! in (query string and form body, already split into pairs), status and
//! JSON body out, in the envelopes of Prometheus' `docs/querying/api.md`.
//! The server maps routes onto these functions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use danaus_model::{MetricKind, MetricSchema};
use promql_parser::label::Matcher;
use promql_parser::parser::Expr;
use serde_json::{json, Value as Json};

use crate::error::{Error, Result};
use crate::eval::{self, selector_matchers, Options};
use crate::storage::Storage;
use crate::value::{format_float, Labels, Value};

/// Request parameters, in order, repeated names kept (`match[]`).
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// Query string and form body pairs together.
    pub fn parse(query: &[u8], form: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(query)
                .chain(form_urlencoded::parse(form))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// An answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON.
    pub body: String,
}

fn success(data: Json) -> Reply {
    Reply { status: 200, body: json!({"status": "success", "data": data}).to_string() }
}

/// The error envelope for `e`.
pub fn error_reply(e: &Error) -> Reply {
    Reply {
        status: e.http_status(),
        body: json!({"status": "error", "errorType": e.error_type(), "error": e.to_string()}).to_string(),
    }
}

fn reply(r: Result<Json>) -> Reply {
    match r {
        Ok(d) => success(d),
        Err(e) => error_reply(&e),
    }
}

fn value_reply(r: Result<Value>, warnings: Vec<String>) -> Reply {
    match r {
        Ok(v) => Reply { status: 200, body: value_body(&v, &warnings) },
        Err(e) => error_reply(&e),
    }
}

/// `/api/v1/query`: `query`, `time` (default: now), `timeout`.
pub async fn query(storage: &dyn Storage, p: &Params, now_ms: i64, opts: Options) -> Reply {
    let r = async {
        let q = p.get("query").ok_or_else(|| Error::BadData("invalid parameter \"query\": missing".into()))?;
        let t = match p.get("time") {
            Some(t) => parse_time(t).map_err(|e| Error::BadData(format!("invalid parameter \"time\": {e}")))?,
            None => now_ms,
        };
        timeout(p)?;
        eval::instant(storage, q, t, opts).await
    }
    .await;
    value_reply(r, storage.warnings())
}

/// `/api/v1/query_range`: `query`, `start`, `end`, `step`, `timeout`.
pub async fn query_range(storage: &dyn Storage, p: &Params, opts: Options) -> Reply {
    let r = async {
        let q = p.get("query").ok_or_else(|| Error::BadData("invalid parameter \"query\": missing".into()))?;
        let start = required_time(p, "start")?;
        let end = required_time(p, "end")?;
        let step = p
            .get("step")
            .ok_or_else(|| Error::BadData("invalid parameter \"step\": missing".into()))
            .and_then(|s| parse_duration(s).map_err(|e| Error::BadData(format!("invalid parameter \"step\": {e}"))))?;
        timeout(p)?;
        eval::range(storage, q, start, end, step, opts).await
    }
    .await;
    value_reply(r, storage.warnings())
}

/// `/api/v1/series`: the label sets of series matching any `match[]` in
/// `[start, end]`.
pub async fn series(storage: &dyn Storage, p: &Params, now_ms: i64) -> Reply {
    reply(
        async {
            let matches = p.all("match[]");
            if matches.is_empty() {
                return Err(Error::BadData("no match[] parameter provided".into()));
            }
            let sets = matched_series(storage, &matches, p, now_ms).await?;
            Ok(Json::Array(sets.iter().map(labels_json).collect()))
        }
        .await,
    )
}

/// `/api/v1/labels`: label names of the series matching `match[]` (every
/// series when there is none) in `[start, end]`.
pub async fn label_names(storage: &dyn Storage, p: &Params, now_ms: i64) -> Reply {
    reply(
        async {
            let sets = series_for_labels(storage, p, now_ms).await?;
            let names: BTreeSet<&str> = sets.iter().flat_map(|l| l.pairs().iter().map(|(k, _)| k.as_str())).collect();
            Ok(json!(names))
        }
        .await,
    )
}

/// `/api/v1/label/<name>/values`.
pub async fn label_values(storage: &dyn Storage, name: &str, p: &Params, now_ms: i64) -> Reply {
    reply(
        async {
            if !crate::eval::valid_label_name(name) {
                return Err(Error::BadData(format!("invalid label name: {name:?}")));
            }
            let sets = series_for_labels(storage, p, now_ms).await?;
            let values: BTreeSet<&str> = sets.iter().map(|l| l.get(name)).filter(|v| !v.is_empty()).collect();
            Ok(json!(values))
        }
        .await,
    )
}

/// `/api/v1/metadata`: type, help and unit per metric (`metric`, `limit`).
pub fn metadata(metrics: &[std::sync::Arc<MetricSchema>], p: &Params) -> Reply {
    let limit = p.get("limit").and_then(|l| l.parse::<i64>().ok()).filter(|l| *l >= 0);
    let mut out = serde_json::Map::new();
    for m in metrics {
        if p.get("metric").is_some_and(|n| n != m.name) {
            continue;
        }
        if limit.is_some_and(|l| out.len() as i64 >= l) {
            break;
        }
        let kind = match m.kind {
            MetricKind::Cumulative => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Delta => "unknown",
        };
        out.insert(m.name.clone(), json!([{"type": kind, "help": m.description, "unit": m.unit}]));
    }
    success(Json::Object(out))
}

/// `/api/v1/query_exemplars`: the query is checked; Danaus stores no
/// exemplars yet, so the answer is empty.
pub fn query_exemplars(p: &Params) -> Reply {
    reply(
        p.get("query")
            .ok_or_else(|| Error::BadData("invalid parameter \"query\": missing".into()))
            .and_then(eval::parse)
            .map(|_| json!([])),
    )
}

/// `/api/v1/status/buildinfo`.
pub fn buildinfo(version: &str) -> Reply {
    success(json!({
        "version": version,
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

/// The `timeout` parameter, if any: the server stops the query after it
/// and answers with a `timeout` error.
pub fn timeout(p: &Params) -> Result<Option<std::time::Duration>> {
    match p.get("timeout") {
        Some(t) => parse_duration(t)
            .map(|ms| Some(std::time::Duration::from_millis(ms as u64)))
            .map_err(|e| Error::BadData(format!("invalid parameter \"timeout\": {e}"))),
        None => Ok(None),
    }
}

fn required_time(p: &Params, name: &str) -> Result<i64> {
    let v = p.get(name).ok_or_else(|| Error::BadData(format!("invalid parameter \"{name}\": missing")))?;
    parse_time(v).map_err(|e| Error::BadData(format!("invalid parameter \"{name}\": {e}")))
}

fn optional_time(p: &Params, name: &str, default: i64) -> Result<i64> {
    match p.get(name) {
        Some(v) => parse_time(v).map_err(|e| Error::BadData(format!("invalid parameter \"{name}\": {e}"))),
        None => Ok(default),
    }
}

async fn series_for_labels(storage: &dyn Storage, p: &Params, now_ms: i64) -> Result<Vec<Labels>> {
    let matches = p.all("match[]");
    if matches.is_empty() {
        matched_series(storage, &["{__name__=~\".+\"}"], p, now_ms).await
    } else {
        matched_series(storage, &matches, p, now_ms).await
    }
}

/// Label sets of the series any of `selectors` matches in the request's
/// `[start, end]` (default: the last 24 hours to now; Prometheus' default
/// is all time, which a long-term store makes too costly).
async fn matched_series(storage: &dyn Storage, selectors: &[&str], p: &Params, now_ms: i64) -> Result<Vec<Labels>> {
    let end = optional_time(p, "end", now_ms)?;
    let start = optional_time(p, "start", end - 86_400_000)?;
    let mut out: BTreeSet<Labels> = BTreeSet::new();
    for s in selectors {
        let matchers = selector_of(s)?;
        for series in storage.select(&matchers, start, end).await? {
            out.insert((*series.labels).clone());
        }
    }
    Ok(out.into_iter().collect())
}

/// The matchers of a `match[]` selector.
fn selector_of(text: &str) -> Result<Vec<Matcher>> {
    match eval::parse(text)? {
        Expr::VectorSelector(vs) => {
            let m = selector_matchers(&vs);
            if !m.iter().any(|m| !m.is_match("")) {
                return Err(Error::BadData("match[] must contain at least one non-empty matcher".into()));
            }
            Ok(m)
        }
        _ => Err(Error::BadData(format!("invalid parameter \"match[]\": {text:?} is not a series selector"))),
    }
}

/// Writes Prometheus' timestamp text: seconds with up to three decimals
/// (a JSON number).
fn write_timestamp(out: &mut String, ms: i64) {
    if ms < 0 {
        out.push('-');
    }
    let t = ms.unsigned_abs();
    out.push_str(itoa::Buffer::new().format(t / 1000));
    let frac = t % 1000;
    if frac != 0 {
        let digits = [b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8];
        let keep = if frac.is_multiple_of(100) {
            1
        } else if frac.is_multiple_of(10) {
            2
        } else {
            3
        };
        out.push('.');
        out.extend(digits[..keep].iter().map(|&d| char::from(d)));
    }
}

/// Writes `s` as a JSON string.
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes a sample value as Prometheus does: a string.
fn write_float(out: &mut String, v: f64) {
    out.push('"');
    if v.is_finite() {
        crate::value::push_plain_float(out, v);
    } else {
        out.push_str(&format_float(v));
    }
    out.push('"');
}

fn write_labels(out: &mut String, l: &Labels) {
    out.push('{');
    // Labels are sorted by name already, as Prometheus writes them.
    for (i, (k, v)) in l.pairs().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_str(out, v);
    }
    out.push('}');
}

fn write_pair(out: &mut String, t: i64, v: f64) {
    out.push('[');
    write_timestamp(out, t);
    out.push(',');
    write_float(out, v);
    out.push(']');
}

/// Writes `[a,b,…]`, each item by `f`.
fn write_list<T>(out: &mut String, items: impl IntoIterator<Item = T>, mut f: impl FnMut(&mut String, T)) {
    out.push('[');
    for (i, x) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        f(out, x);
    }
    out.push(']');
}

/// The whole success envelope of a query answer, written straight into
/// one buffer (answers run to megabytes; no JSON tree is built), with
/// `warnings` when there are any (a partial answer says so).
pub fn value_body(v: &Value, warnings: &[String]) -> String {
    let mut out = String::with_capacity(match v {
        Value::Matrix(series) => 64 + series.iter().map(|s| 64 + 32 * s.points.len()).sum::<usize>(),
        Value::Vector(_, samples) => 64 + 96 * samples.len(),
        _ => 128,
    });
    out.push_str(r#"{"status":"success","data":{"resultType":"#);
    match v {
        Value::Scalar(t, x) => {
            out.push_str(r#""scalar","result":"#);
            write_pair(&mut out, *t, *x);
        }
        Value::String(t, s) => {
            out.push_str(r#""string","result":["#);
            write_timestamp(&mut out, *t);
            out.push(',');
            write_str(&mut out, s);
            out.push(']');
        }
        Value::Vector(t, samples) => {
            out.push_str(r#""vector","result":"#);
            write_list(&mut out, samples, |out, s| {
                out.push_str(r#"{"metric":"#);
                write_labels(out, &s.labels);
                out.push_str(r#","value":"#);
                write_pair(out, *t, s.value);
                out.push('}');
            });
        }
        Value::Matrix(series) => {
            out.push_str(r#""matrix","result":"#);
            write_list(&mut out, series, |out, s| {
                out.push_str(r#"{"metric":"#);
                write_labels(out, &s.labels);
                out.push_str(r#","values":"#);
                write_list(out, &s.points, |out, &(t, v)| write_pair(out, t, v));
                out.push('}');
            });
        }
    }
    out.push('}');
    if !warnings.is_empty() {
        out.push_str(r#","warnings":"#);
        write_list(&mut out, warnings, |out, w| write_str(out, w));
    }
    out.push('}');
    out
}

fn labels_json(l: &Labels) -> Json {
    let m: BTreeMap<&str, &str> = l.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    json!(m)
}

/// A time parameter: Unix seconds (fractions allowed) or RFC 3339, as ms.
/// Any input gives a value or an error naming it, never a panic (a
/// proptest feeds it arbitrary text).
pub fn parse_time(s: &str) -> std::result::Result<i64, String> {
    if let Ok(secs) = s.parse::<f64>() {
        // Prometheus' own bounds: beyond them a time is refused, not clamped.
        if !secs.is_finite() || secs.abs() > MAX_TIME_SECS {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        // Danaus holds nothing beyond its own bounds: clamped to them.
        let limit = crate::eval::TIME_LIMIT_MS;
        return Ok(((secs * 1000.0).round() as i64).clamp(-limit, limit));
    }
    danaus_model::time::parse_rfc3339(s)
        .map(|ns| ns.div_euclid(1_000_000))
        .ok_or_else(|| format!("cannot parse {s:?} to a valid timestamp"))
}

/// The largest time in seconds either way that a time parameter takes
/// (about ±292 million years: what fits in i64 milliseconds).
const MAX_TIME_SECS: f64 = 9.2e15;

/// A duration parameter: seconds (fractions allowed) or a Prometheus
/// duration (`5m`, `1h30m`), as ms; must be positive.
pub fn parse_duration(s: &str) -> std::result::Result<i64, String> {
    let ms = match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs.abs() <= MAX_TIME_SECS => (secs * 1000.0).round() as i64,
        Ok(_) => return Err(format!("cannot parse {s:?} to a valid duration")),
        Err(_) => danaus_model::time::parse_duration_ns(s)
            .map(|ns| ns / 1_000_000)
            .ok_or_else(|| format!("cannot parse {s:?} to a valid duration"))?,
    };
    if ms <= 0 {
        return Err("zero or negative query resolution step widths are not accepted. Try a positive integer".into());
    }
    Ok(ms.min(crate::eval::SPAN_LIMIT_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_prometheus_does() {
        assert_eq!(parse_time("1435781451.781").expect("valid"), 1_435_781_451_781);
        assert_eq!(parse_time("2015-07-01T20:10:51.781Z").expect("valid"), 1_435_781_451_781);
        assert_eq!(parse_time("2015-07-01T22:10:51+02:00").expect("valid"), 1_435_781_451_000);
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_duration("15").expect("valid"), 15_000);
        assert_eq!(parse_duration("1m30s").expect("valid"), 90_000);
        assert!(parse_duration("0").is_err());
        let ts = |ms| {
            let mut s = String::new();
            write_timestamp(&mut s, ms);
            s
        };
        assert_eq!(ts(1_435_781_451_781), "1435781451.781");
        assert_eq!(ts(1_500), "1.5");
        assert_eq!(ts(60_000), "60");
        assert_eq!(ts(-1_500), "-1.5");
        assert_eq!(ts(1_010), "1.01");
        assert_eq!(ts(1_001), "1.001");
        assert_eq!(ts(-500), "-0.5");
        assert_eq!(ts(i64::MIN), "-9223372036854775.808");
    }

    #[test]
    fn bad_times_and_durations_are_errors_not_panics() {
        // Inputs that once panicked the server.
        assert!(parse_time("2024-01-01T00:00:00+0\u{e9}00").is_err());
        assert!(parse_duration("9999999999999999y").is_err());
        assert!(parse_duration("99999999999999999999999s").is_err());
        assert!(parse_time("1e300").is_err());
        assert!(parse_time("2015-07-01t20:10:51.781z").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_is_refused(s in "\\PC{0,40}") {
            let _ = parse_time(&s);
            let _ = parse_duration(&s);
        }

        #[test]
        fn any_text_of_time_and_duration_characters_parses_or_is_refused(
            s in "[0-9+\\-:.TZtzé eE]{0,32}",
            d in "[0-9smhdwyé.eE+\\-]{0,24}",
        ) {
            let _ = parse_time(&s);
            let _ = parse_duration(&d);
        }
    }

    #[test]
    fn answers_are_the_json_prometheus_writes() {
        use std::sync::Arc;
        let l = Labels::new(vec![
            ("__name__".into(), "up".into()),
            ("path".into(), "a\"b\\c\n\u{1}é".into()),
            ("job".into(), "x".into()),
        ]);
        let m = Value::Matrix(vec![crate::value::Series {
            labels: Arc::new(l.clone()),
            points: vec![(1_000, 1.5), (2_500, f64::NAN), (3_000, f64::NEG_INFINITY), (4_000, 1e21)],
        }]);
        let body = value_body(&m, &[]);
        // The same document as a JSON tree gives (key order aside).
        let parsed: Json = serde_json::from_str(&body).expect("valid JSON");
        assert_eq!(
            parsed,
            json!({"status": "success", "data": {"resultType": "matrix", "result": [{
                "metric": {"__name__": "up", "job": "x", "path": "a\"b\\c\n\u{1}é"},
                "values": [[1, "1.5"], [2.5, "NaN"], [3, "-Inf"], [4, "1000000000000000000000"]],
            }]}})
        );
        let v = Value::Vector(7_000, vec![crate::value::Sample { labels: Arc::new(l), value: -0.25 }]);
        let parsed: Json =
            serde_json::from_str(&value_body(&v, &["leaf x did not answer".to_owned()])).expect("valid JSON");
        assert_eq!(parsed["data"]["result"][0]["value"], json!([7, "-0.25"]));
        assert_eq!(parsed["warnings"], json!(["leaf x did not answer"]));
        let parsed: Json = serde_json::from_str(&value_body(&Value::Scalar(0, 2.0), &[])).expect("valid JSON");
        assert_eq!(parsed["data"], json!({"resultType": "scalar", "result": [0, "2"]}));
        let parsed: Json = serde_json::from_str(&value_body(&Value::String(0, "s\"".into()), &[])).expect("valid JSON");
        assert_eq!(parsed["data"], json!({"resultType": "string", "result": [0, "s\""]}));
    }
}
