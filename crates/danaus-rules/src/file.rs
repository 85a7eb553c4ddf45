//! The rule-file format, read and checked as Prometheus does.
//!
//! A file holds `groups`; a group `name`, `interval`, `limit`, and the
//! later additions `query_offset` and `labels`; a rule either `record` or
//! `alert`, with `expr`, `for`, `keep_firing_for`, `labels` and
//! `annotations`. Unknown fields are refused, as Prometheus' strict
//! decoding does. [`parse`] returns every problem at once, each worded as
//! `promtool check rules` words it (`group "g", rule 2, "HighLatency":
//! could not parse expression: …`), so a file that fails there fails here
//! with the same reasons.

use std::collections::BTreeMap;

use yaml_serde::Value;

use crate::duration;
use crate::template;

/// A rule file's groups, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleGroups {
    /// The groups.
    pub groups: Vec<RuleGroup>,
}

/// A group: rules evaluated in order at one time, every `interval`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    /// Unique within its file.
    pub name: String,
    /// How often the group runs (ms); the evaluator's default when unset.
    pub interval_ms: Option<i64>,
    /// How far behind the evaluation time the queries look (ms).
    pub query_offset_ms: Option<i64>,
    /// Most series a recording rule, or alerts an alerting rule, may
    /// produce; 0 is no limit.
    pub limit: usize,
    /// Labels added to every rule's output (a rule's own labels win).
    pub labels: BTreeMap<String, String>,
    /// The rules, in evaluation order.
    pub rules: Vec<Rule>,
}

/// What a rule produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// A recording rule writing series of this metric name.
    Record(String),
    /// An alerting rule of this alert name.
    Alert(String),
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Recording or alerting, and its name.
    pub kind: RuleKind,
    /// The PromQL expression.
    pub expr: String,
    /// How long an alert stays pending before it fires (ms).
    pub for_ms: i64,
    /// How long a firing alert keeps firing once its condition is gone (ms).
    pub keep_firing_for_ms: i64,
    /// Labels set on the output (templates, for alerting rules).
    pub labels: BTreeMap<String, String>,
    /// Alert annotations (templates).
    pub annotations: BTreeMap<String, String>,
}

impl Rule {
    /// The record or alert name.
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Record(n) | RuleKind::Alert(n) => n,
        }
    }
}

/// Parses and checks a rule file's text; every problem, worded as
/// Prometheus words it, on failure.
pub fn parse(text: &str) -> Result<RuleGroups, Vec<String>> {
    let doc: Value = match yaml_serde::from_str(text) {
        Ok(v) => v,
        Err(e) => return Err(vec![format!("yaml: {e}")]),
    };
    let mut errs = Vec::new();
    let mut out = RuleGroups::default();
    let top = match &doc {
        Value::Null => return Ok(out),
        Value::Mapping(m) => m,
        _ => return Err(vec!["yaml: unmarshal errors:\n  the file must be a mapping with `groups`".to_owned()]),
    };
    unknown_fields(text, top, &["groups"], "rulefmt.RuleGroups", &mut errs);
    let groups = match top.get("groups") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Sequence(s)) => s.as_slice(),
        Some(_) => return Err(vec!["yaml: unmarshal errors:\n  `groups` must be a list".to_owned()]),
    };
    // Per group, per rule: whether it set both `record` and `alert`.
    let mut both = Vec::new();
    for g in groups {
        if let Some((g, b)) = group(text, g, &mut errs) {
            out.groups.push(g);
            both.push(b);
        }
    }
    if !errs.is_empty() {
        // Decoding errors come alone: Prometheus stops before validating.
        return Err(errs);
    }
    validate(&out, &both, &mut errs);
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// Reads and checks a rule file; errors carry the file name first.
pub fn parse_file(path: &std::path::Path) -> Result<RuleGroups, Vec<String>> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{shown}: {e}")])?;
    parse(&text).map_err(|errs| errs.into_iter().map(|e| format!("{shown}: {e}")).collect())
}

fn unknown_fields(text: &str, m: &yaml_serde::Mapping, known: &[&str], ty: &str, errs: &mut Vec<String>) {
    for k in m.keys() {
        let name = scalar(k).unwrap_or_default();
        if !known.contains(&name.as_str()) {
            let line = line_of_key(text, &name).map(|l| format!("line {l}: ")).unwrap_or_default();
            errs.push(format!("yaml: unmarshal errors:\n  {line}field {name} not found in type {ty}"));
        }
    }
}

/// The first line (1-based) where `key:` starts a mapping entry: where an
/// unknown field most likely is.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            t.strip_prefix(key).is_some_and(|r| r.starts_with(':'))
        })
        .map(|i| i + 1)
}

/// A scalar as the text Go's YAML decoder gives a string field.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn string_field(m: &yaml_serde::Mapping, key: &str, ty: &str, errs: &mut Vec<String>) -> String {
    match m.get(key) {
        None => String::new(),
        Some(v) => scalar(v).unwrap_or_else(|| {
            errs.push(format!("yaml: unmarshal errors:\n  cannot unmarshal a non-scalar into `{key}` of {ty}"));
            String::new()
        }),
    }
}

fn duration_field(m: &yaml_serde::Mapping, key: &str, ty: &str, errs: &mut Vec<String>) -> Option<i64> {
    let s = m.get(key)?;
    let text = scalar(s).unwrap_or_default();
    if text.is_empty() {
        return None;
    }
    match duration::parse(&text) {
        Ok(ms) => Some(ms),
        Err(e) => {
            errs.push(format!("{e} (`{key}` of {ty})"));
            None
        }
    }
}

fn string_map(m: &yaml_serde::Mapping, key: &str, ty: &str, errs: &mut Vec<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match m.get(key) {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(kv)) => {
            for (k, v) in kv {
                match (scalar(k), scalar(v)) {
                    (Some(k), Some(v)) => {
                        out.insert(k, v);
                    }
                    _ => errs.push(format!("yaml: unmarshal errors:\n  `{key}` of {ty} must map names to strings")),
                }
            }
        }
        Some(_) => errs.push(format!("yaml: unmarshal errors:\n  `{key}` of {ty} must be a mapping")),
    }
    out
}

fn group(text: &str, g: &Value, errs: &mut Vec<String>) -> Option<(RuleGroup, Vec<bool>)> {
    const TY: &str = "rulefmt.RuleGroup";
    let Value::Mapping(m) = g else {
        errs.push("yaml: unmarshal errors:\n  a group must be a mapping".to_owned());
        return None;
    };
    unknown_fields(text, m, &["name", "interval", "query_offset", "limit", "labels", "rules"], TY, errs);
    let limit = match m.get("limit") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) => n,
            None => {
                errs.push(format!("yaml: unmarshal errors:\n  cannot unmarshal {v:?} into `limit` of {TY}"));
                0
            }
        },
    };
    let (rules, both) = match m.get("rules") {
        None | Some(Value::Null) => (Vec::new(), Vec::new()),
        Some(Value::Sequence(s)) => s.iter().filter_map(|r| rule(text, r, errs)).unzip(),
        Some(_) => {
            errs.push(format!("yaml: unmarshal errors:\n  `rules` of {TY} must be a list"));
            (Vec::new(), Vec::new())
        }
    };
    let group = RuleGroup {
        name: string_field(m, "name", TY, errs),
        interval_ms: duration_field(m, "interval", TY, errs),
        query_offset_ms: duration_field(m, "query_offset", TY, errs),
        limit,
        labels: string_map(m, "labels", TY, errs),
        rules,
    };
    Some((group, both))
}

/// A rule, and whether it set both `record` and `alert` (reported by
/// [`validate`], which words it as Prometheus does).
fn rule(text: &str, r: &Value, errs: &mut Vec<String>) -> Option<(Rule, bool)> {
    const TY: &str = "rulefmt.RuleNode";
    let Value::Mapping(m) = r else {
        errs.push("yaml: unmarshal errors:\n  a rule must be a mapping".to_owned());
        return None;
    };
    unknown_fields(text, m, &["record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"], TY, errs);
    let record = string_field(m, "record", TY, errs);
    let alert = string_field(m, "alert", TY, errs);
    // With both set, the alert name carries the rule to `validate`.
    let both = !record.is_empty() && !alert.is_empty();
    let kind = if alert.is_empty() { RuleKind::Record(record) } else { RuleKind::Alert(alert) };
    let rule = Rule {
        kind,
        expr: string_field(m, "expr", TY, errs),
        for_ms: duration_field(m, "for", TY, errs).unwrap_or(0),
        keep_firing_for_ms: duration_field(m, "keep_firing_for", TY, errs).unwrap_or(0),
        labels: string_map(m, "labels", TY, errs),
        annotations: string_map(m, "annotations", TY, errs),
    };
    Some((rule, both))
}

/// Prometheus' `RuleGroups.Validate`, worded the same.
fn validate(groups: &RuleGroups, both: &[Vec<bool>], errs: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    for (gi, g) in groups.groups.iter().enumerate() {
        if g.name.is_empty() {
            errs.push("Groupname must not be empty".to_owned());
        }
        if !seen.insert(g.name.as_str()) {
            errs.push(format!("groupname: \"{}\" is repeated in the same file", g.name));
        }
        for (k, v) in &g.labels {
            if !valid_label_name(k) || k == "__name__" {
                errs.push(format!("group {:?}: invalid label name: {k}", g.name));
            }
            if v.is_empty() {
                errs.push(format!("group {:?}: invalid label value for {k}: empty", g.name));
            }
        }
        for (i, r) in g.rules.iter().enumerate() {
            let at = |msg: String| format!("group {:?}, rule {}, {:?}: {msg}", g.name, i + 1, r.name());
            if both.get(gi).and_then(|b| b.get(i)).copied().unwrap_or(false) {
                errs.push(at("only one of 'record' and 'alert' must be set".to_owned()));
            }
            if r.name().is_empty() {
                errs.push(at("one of 'record' or 'alert' must be set".to_owned()));
            }
            if r.expr.is_empty() {
                errs.push(at("field 'expr' must be set in rule".to_owned()));
            } else if let Err(e) = danaus_promql::parse(&r.expr) {
                errs.push(at(format!("could not parse expression: {e}")));
            }
            if let RuleKind::Record(name) = &r.kind {
                if !name.is_empty() {
                    if !r.annotations.is_empty() {
                        errs.push(at("invalid field 'annotations' in recording rule".to_owned()));
                    }
                    if r.for_ms != 0 {
                        errs.push(at("invalid field 'for' in recording rule".to_owned()));
                    }
                    if r.keep_firing_for_ms != 0 {
                        errs.push(at("invalid field 'keep_firing_for' in recording rule".to_owned()));
                    }
                    if !valid_metric_name(name) {
                        errs.push(at(format!("invalid recording rule name: {name}")));
                    }
                }
            }
            for k in r.labels.keys() {
                if !valid_label_name(k) || k == "__name__" {
                    errs.push(at(format!("invalid label name: {k}")));
                }
            }
            for k in r.annotations.keys() {
                if !valid_label_name(k) {
                    errs.push(at(format!("invalid annotation name: {k}")));
                }
            }
            if let RuleKind::Alert(name) = &r.kind {
                for (k, v) in &r.labels {
                    if let Err(e) = template::check_alert_text(name, v) {
                        errs.push(at(format!("label {k:?}: {e}")));
                    }
                }
                for (k, v) in &r.annotations {
                    if let Err(e) = template::check_alert_text(name, v) {
                        errs.push(at(format!("annotation {k:?}: {e}")));
                    }
                }
            }
        }
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_metric_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Rules recording the same metric with the same labels (or alerts of
/// the same name and labels) across `groups`: `promtool check rules`'
/// duplicate-rules lint.
pub fn duplicates(groups: &RuleGroups) -> Vec<(String, BTreeMap<String, String>)> {
    let mut all: Vec<(String, &BTreeMap<String, String>)> =
        groups.groups.iter().flat_map(|g| g.rules.iter().map(|r| (r.name().to_owned(), &r.labels))).collect();
    all.sort();
    let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for w in all.windows(2) {
        if w[0] == w[1] && out.last().is_none_or(|(n, l)| (n, l) != (&w[1].0, w[1].1)) {
            out.push((w[1].0.clone(), w[1].1.clone()));
        }
    }
    out
}

/// A rule group as the configuration holds it: Prometheus' own fields and
/// spelling, so a group reads, prints and diffs as in a rule file. Check
/// it with [`GroupSpec::check`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// The group's name.
    pub name: String,
    /// `interval`, in Prometheus' duration notation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// `query_offset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_offset: Option<String>,
    /// `limit` (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: usize,
    /// Labels on every rule's output.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A rule as a rule file writes it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// A recording rule's metric name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// An alerting rule's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The PromQL expression.
    pub expr: String,
    /// `for`.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// `keep_firing_for`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl GroupSpec {
    /// The group checked as `promtool check rules` checks a file holding
    /// only it; every problem on failure.
    pub fn check(&self) -> Result<RuleGroup, Vec<String>> {
        #[derive(serde::Serialize)]
        struct File<'a> {
            groups: [&'a GroupSpec; 1],
        }
        let text = yaml_serde::to_string(&File { groups: [self] }).map_err(|e| vec![e.to_string()])?;
        let mut parsed = parse(&text)?;
        parsed.groups.pop().ok_or_else(|| vec![format!("group {:?} did not survive its own check", self.name)])
    }
}

/// A parsed file's groups as configuration specs (for importing a rule
/// file into the configuration unchanged).
pub fn specs(text: &str) -> Result<Vec<GroupSpec>, Vec<String>> {
    parse(text)?;
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        groups: Vec<GroupSpec>,
    }
    let f: File = yaml_serde::from_str(text).map_err(|e| vec![e.to_string()])?;
    Ok(f.groups)
}
