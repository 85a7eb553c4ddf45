//! `promtool test rules`, run unchanged: the same test files, the same
//! evaluation, the same report and exit code.
//!
//! A test file names rule files (relative to itself, globs allowed), an
//! `evaluation_interval` (1m), a `group_eval_order`, and tests. Each test
//! loads its `input_series` (promtool's notation: `1+1x10`, `_`, `stale`)
//! at its `interval`, evaluates every group at 0, 1, 2… evaluation
//! intervals up to the latest `eval_time` asked about — each group with
//! [`crate::group::evaluate`], its output written back before the next
//! group runs, samples loaded only up to the evaluation time as promtool's
//! lazy loader does — and compares the firing alerts at each
//! `alert_rule_test`'s time (the evaluation at or just before it) and each
//! `promql_expr_test`'s instant query at the end. Failures are worded as
//! promtool words them, so both tools' reports can be compared line for
//! line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use danaus_promql::promqltest::{parse_metric, parse_series_line};
use danaus_promql::{Labels, MemStorage, Options};
use serde::Deserialize;

use crate::duration;
use crate::file::{self, RuleGroup, RuleKind};
use crate::group::{self, GroupState};
use crate::template::go_quote;

/// A scalar of any YAML type, as the text Go's decoder gives a string.
#[derive(Debug, Default, Clone)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = yaml_serde::Value::deserialize(d)?;
        match v {
            yaml_serde::Value::String(s) => Ok(Text(s)),
            yaml_serde::Value::Number(n) => Ok(Text(n.to_string())),
            yaml_serde::Value::Bool(b) => Ok(Text(b.to_string())),
            yaml_serde::Value::Null => Ok(Text(String::new())),
            _ => Err(serde::de::Error::custom("expected a scalar")),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<Text>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    interval: Option<Text>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, Text>,
    #[serde(default)]
    external_url: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    #[serde(default)]
    series: Text,
    #[serde(default)]
    values: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    #[serde(default)]
    eval_time: Option<Text>,
    #[serde(default)]
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, Text>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    #[serde(default)]
    expr: String,
    #[serde(default)]
    eval_time: Option<Text>,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: f64,
}

fn dur(t: &Option<Text>) -> Result<i64, String> {
    match t {
        None => Ok(0),
        Some(Text(s)) if s.is_empty() => Ok(0),
        Some(Text(s)) => duration::parse(s),
    }
}

/// Runs test files as `promtool test rules` does: `Unit Testing:  FILE`,
/// then `  SUCCESS` or `  FAILED:` and each failure; 0 when all passed, 1
/// otherwise. The report goes to `out`, failures to `err`, as promtool
/// splits them between stdout and stderr.
pub async fn run(files: &[PathBuf], out: &mut dyn std::io::Write, err: &mut dyn std::io::Write) -> i32 {
    let mut failed = false;
    for f in files {
        let _ = writeln!(out, "Unit Testing:  {}", f.display());
        let _ = out.flush();
        let errs = test_file(f, err).await;
        if errs.is_empty() {
            let _ = writeln!(out, "  SUCCESS");
        } else {
            let _ = writeln!(err, "  FAILED:");
            for e in errs {
                let _ = writeln!(err, "{e}");
                let _ = err.flush();
                let _ = writeln!(out);
            }
            failed = true;
        }
        let _ = writeln!(out);
    }
    i32::from(failed)
}

/// One test file's failures (none when it passed). Warnings (a rule-file
/// pattern matching nothing) go to `warn`.
pub async fn test_file(path: &Path, warn: &mut dyn std::io::Write) -> Vec<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return vec![format!("open {}: {e}", path.display())],
    };
    let tf: TestFile = match yaml_serde::from_str(&text) {
        Ok(t) => t,
        Err(e) => return vec![format!("yaml: unmarshal errors:\n  {e}")],
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rule_files = Vec::new();
    for pattern in &tf.rule_files {
        let full = if Path::new(pattern).is_absolute() { PathBuf::from(pattern) } else { base.join(pattern) };
        let matched = glob(&full);
        if matched.is_empty() {
            let _ = writeln!(warn, "  WARNING: no file match pattern {}", full.display());
        }
        rule_files.extend(matched);
    }
    let eval_interval = match dur(&tf.evaluation_interval) {
        Ok(0) => 60_000,
        Ok(ms) => ms,
        Err(e) => return vec![e],
    };
    let mut order = BTreeMap::new();
    for (i, g) in tf.group_eval_order.iter().enumerate() {
        if order.insert(g.clone(), i).is_some() {
            return vec![format!("group name repeated in evaluation order: {g}")];
        }
    }
    let mut errs = Vec::new();
    for t in &tf.tests {
        errs.extend(run_test(t, eval_interval, &order, &rule_files).await);
    }
    errs
}

/// Files matching `pattern`'s last component (`*`, `?` wildcards), sorted;
/// the path itself when it has no wildcard and exists.
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let name = pattern.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !name.contains(['*', '?']) {
        return if pattern.exists() { vec![pattern.to_path_buf()] } else { Vec::new() };
    }
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| wildcard(&name, &e.file_name().to_string_lossy()))
                .map(|e| dir.join(e.file_name()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn wildcard(p: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (p.chars().collect(), s.chars().collect());
    // dp[j]: p[..i] matches s[..j].
    let mut dp = vec![false; s.len() + 1];
    dp[0] = true;
    for &pc in &p {
        let mut next = vec![false; s.len() + 1];
        if pc == '*' {
            let mut any = false;
            for j in 0..=s.len() {
                any |= dp[j];
                next[j] = any;
            }
        } else {
            for j in 1..=s.len() {
                next[j] = dp[j - 1] && (pc == '?' || pc == s[j - 1]);
            }
        }
        dp = next;
    }
    dp[s.len()]
}

/// Go's `time.Duration` text for ms (`1m0s`, `1h30m0s`, `0s`, `500ms`).
fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let neg = ms < 0;
    let ms = ms.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if ms < 1000 {
        out.push_str(&format!("{ms}ms"));
        return out;
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&s.to_string());
    if frac > 0 {
        out.push_str(format!(".{frac:03}").trim_end_matches('0'));
    }
    out.push('s');
    out
}

/// Go's `labels.Labels.String()`: `{__name__="up", job="a"}`.
fn go_labels(l: &[(String, String)]) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={}", go_quote(v))).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`: `1E+00`, `2.5E-01`.
fn go_float_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let s = format!("{v:E}");
    let (mantissa, exp) = s.split_once('E').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}E{sign}{:02}", exp.abs())
}

/// Prometheus' `indentLines`: every line after the first gets `indent`.
fn indent_lines(s: &str, indent: &str) -> String {
    s.split('\n').collect::<Vec<_>>().join(&format!("\n{indent}"))
}

/// Label pairs sorted by name, empty values kept: an expected label given
/// empty stays in the comparison and the report, as in promtool.
type Pairs = Vec<(String, String)>;

type LabelsAndAnnotations = Vec<(Pairs, Pairs)>;

fn alerts_string(la: &LabelsAndAnnotations) -> String {
    if la.is_empty() {
        return "[]".into();
    }
    let one = |(l, a): &(Pairs, Pairs)| format!("\nLabels:{}\nAnnotations:{}", go_labels(l), go_labels(a));
    let mut s = format!("[\n0:{}", indent_lines(&one(&la[0]), "  "));
    for (i, x) in la.iter().enumerate().skip(1) {
        s.push_str(&format!(",\n{i}:{}", indent_lines(&one(x), "  ")));
    }
    s.push_str("\n]");
    s
}

fn samples_string(ss: &[(Labels, f64)]) -> String {
    if ss.is_empty() {
        return "nil".into();
    }
    ss.iter().map(|(l, v)| format!("{} {}", go_labels(l.pairs()), go_float_e(*v))).collect::<Vec<_>>().join(", ")
}

fn text_map(m: &BTreeMap<String, Text>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

async fn run_test(
    t: &TestGroup,
    eval_interval: i64,
    order: &BTreeMap<String, usize>,
    rule_files: &[PathBuf],
) -> Vec<String> {
    let interval = match dur(&t.interval) {
        Ok(ms) => ms,
        Err(e) => return vec![e],
    };
    // Input series: every value at its step, in load order.
    let mut pending: Vec<(Labels, Vec<(i64, f64)>)> = Vec::new();
    for s in &t.input_series {
        let (labels, values) = match parse_series_line(&format!("{} {}", s.series.0, s.values.0)) {
            Ok(v) => v,
            Err(e) => return vec![e],
        };
        let points = values.iter().enumerate().filter_map(|(i, v)| v.map(|v| (i as i64 * interval, v))).collect();
        pending.push((labels, points));
    }
    // Groups, each with the file it came from; promtool's order: by
    // `group_eval_order`, groups it does not name first (file order).
    let mut groups: Vec<RuleGroup> = Vec::new();
    let mut load_errs = Vec::new();
    for f in rule_files {
        match file::parse_file(f) {
            Ok(g) => groups.extend(g.groups),
            Err(e) => load_errs.extend(e),
        }
    }
    if !load_errs.is_empty() {
        return load_errs;
    }
    groups.sort_by_key(|g| order.get(&g.name).copied().unwrap_or(0));
    let mut states: Vec<GroupState> = vec![GroupState::default(); groups.len()];

    let mut alert_times: Vec<i64> = Vec::new();
    for a in &t.alert_rule_test {
        let at = match dur(&a.eval_time) {
            Ok(v) => v,
            Err(e) => return vec![e],
        };
        if a.alertname.is_empty() {
            let name = t.name.as_ref().map(|n| format!(" (in TestGroup {n})")).unwrap_or_default();
            return vec![format!(
                "an item under alert_rule_test misses required attribute alertname at eval_time {}{name}",
                duration::format(at)
            )];
        }
        alert_times.push(at);
    }
    let mut expr_times = Vec::new();
    for e in &t.promql_expr_test {
        match dur(&e.eval_time) {
            Ok(v) => expr_times.push(v),
            Err(e) => return vec![e],
        }
    }
    let max_t = alert_times.iter().chain(expr_times.iter()).copied().max().unwrap_or(0);
    let mut sorted_times = alert_times.clone();
    sorted_times.sort_unstable();
    sorted_times.dedup();

    let options = Options { max_samples: 10_000, subquery_step_ms: eval_interval, ..Options::default() };
    let external_labels = text_map(&t.external_labels);
    let external_url = t.external_url.clone().unwrap_or_default();
    let mut storage = MemStorage::new();
    let mut errs = Vec::new();
    let mut curr = 0;
    let mut ts = 0i64;
    while ts <= max_t {
        // Samples up to `ts`, as the lazy loader appends them.
        for (labels, points) in pending.iter_mut() {
            let upto = points.partition_point(|p| p.0 <= ts);
            if upto > 0 {
                storage.add(labels.clone(), points.drain(..upto));
            }
        }
        let mut eval_errs = Vec::new();
        for (g, state) in groups.iter().zip(states.iter_mut()) {
            let outcome = {
                let ctx = group::Context {
                    storage: &storage,
                    options,
                    external_labels: external_labels.clone(),
                    external_url: external_url.clone(),
                };
                group::evaluate(g, state, ts, &ctx).await
            };
            for (labels, t, v) in outcome.samples {
                storage.add(labels, [(t, v)]);
            }
            for (i, e) in &outcome.errors {
                eval_errs.push(format!("    rule: {}, time: {}, err: {e}", g.rules[*i].name(), go_duration(ts)));
            }
        }
        let stop = !eval_errs.is_empty();
        errs.extend(eval_errs);
        if stop {
            return errs;
        }
        while curr < sorted_times.len() && ts <= sorted_times[curr] && sorted_times[curr] < ts + eval_interval {
            let at = sorted_times[curr];
            for case in t.alert_rule_test.iter().filter(|a| dur(&a.eval_time).ok() == Some(at)) {
                let mut got: LabelsAndAnnotations = Vec::new();
                for (g, state) in groups.iter().zip(states.iter()) {
                    for (r, rs) in g.rules.iter().zip(state.rules.iter()) {
                        if r.kind != RuleKind::Alert(case.alertname.clone()) {
                            continue;
                        }
                        for a in rs.alerts.values().filter(|a| a.state == crate::alert::State::Firing) {
                            got.push((a.labels.pairs().to_vec(), a.annotations.clone().into_iter().collect()));
                        }
                    }
                }
                let mut exp: LabelsAndAnnotations = case
                    .exp_alerts
                    .iter()
                    .map(|a| {
                        let mut l = text_map(&a.exp_labels);
                        l.insert("alertname".into(), case.alertname.clone());
                        (l.into_iter().collect(), text_map(&a.exp_annotations).into_iter().collect())
                    })
                    .collect();
                got.sort();
                exp.sort();
                if exp != got {
                    let name = t.name.as_ref().map(|n| format!("    name: {n},\n")).unwrap_or_default();
                    errs.push(format!(
                        "{name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                        case.alertname,
                        duration::format(at),
                        indent_lines(&alerts_string(&exp), "            "),
                        indent_lines(&alerts_string(&got), "            ")
                    ));
                }
            }
            curr += 1;
        }
        ts += eval_interval;
    }

    'cases: for (case, at) in t.promql_expr_test.iter().zip(expr_times) {
        let when = duration::format(at);
        let got = match danaus_promql::instant(&storage, &case.expr, at, options).await {
            Ok(danaus_promql::Value::Vector(_, v)) => v.into_iter().map(|s| ((*s.labels).clone(), s.value)).collect(),
            Ok(danaus_promql::Value::Scalar(_, v)) => vec![(Labels::empty(), v)],
            Ok(_) => {
                errs.push(format!(
                    "    expr: {:?}, time: {when}, err: rule result is not a vector or scalar",
                    case.expr
                ));
                continue;
            }
            Err(e) => {
                errs.push(format!("    expr: {:?}, time: {when}, err: {e}", case.expr));
                continue;
            }
        };
        let mut got: Vec<(Labels, f64)> = got;
        let mut exp = Vec::new();
        for s in &case.exp_samples {
            match parse_metric(&s.labels) {
                Ok(l) => exp.push((l, s.value)),
                Err(e) => {
                    errs.push(format!("    expr: {:?}, time: {when}, err: labels {:?}: {e}", case.expr, s.labels));
                    continue 'cases;
                }
            }
        }
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        got.sort_by(|a, b| a.0.cmp(&b.0));
        // Exact, as promtool's `reflect.DeepEqual` (NaN never equals).
        let same = exp.len() == got.len() && exp.iter().zip(&got).all(|(e, g)| e.0 == g.0 && e.1 == g.1);
        if !same {
            errs.push(format!(
                "    expr: {:?}, time: {when},\n        exp: {}\n        got: {}",
                case.expr,
                samples_string(&exp),
                samples_string(&got)
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_texts() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(60_000), "1m0s");
        assert_eq!(go_duration(5_400_000), "1h30m0s");
        assert_eq!(go_duration(1_500), "1.5s");
        assert_eq!(go_duration(250), "250ms");
        assert_eq!(go_float_e(1.0), "1E+00");
        assert_eq!(go_float_e(0.25), "2.5E-01");
        assert_eq!(go_float_e(123.456), "1.23456E+02");
        assert_eq!(go_float_e(1e300), "1E+300");
        assert_eq!(go_float_e(f64::NEG_INFINITY), "-Inf");
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert!(wildcard("*.yml", "rules.yml") && !wildcard("*.yml", "rules.yaml") && wildcard("r?les*", "rules.yml"));
    }
}
