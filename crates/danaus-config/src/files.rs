//! Configuration as code: a directory of YAML files, each holding one or
//! more documents (separated by `---`), one object per document:
//!
//! ```yaml
//! kind: MetricSchema        # what the document is (see `Kind`)
//! tenant: acme              # optional: the tenant given on the command line
//! name: /rpc/server/latency # the rest is the object itself
//! fields: [{name: method, type: string}]
//! value_type: double
//! metric_kind: gauge        # the metric's own kind (`kind` is taken)
//! ```
//!
//! (A metric schema's own `kind` — gauge, cumulative, delta — is written
//! `metric_kind` in its document, since `kind` names the document's kind;
//! in a `Schemas` list it stays `kind`.)
//! A document of `kind: Schemas` holds `targets:` and `metrics:` lists, the
//! form `danausctl schema apply` reads, so existing schema files move over
//! as they are (a document with only those two keys needs no `kind`).
//!
//! Every error names the file, line and column and says what to do:
//! syntax and type errors where the parser stopped, an object the stored
//! configuration refuses at the line of its `name`. `kind` and `tenant`
//! are read from the document's top-level block; the rest is read by the
//! object's own type, from the same text, so positions stay exact.
//! [`export`] writes a configuration back as such a directory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use danaus_model::{MetricSchema, TargetSchema};
use danaus_rules::file::GroupSpec;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::object::{Kind, Object, ObjectKey, ZoneSpec};
use crate::state::ConfigState;

/// Where in a file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The file.
    pub file: PathBuf,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A problem with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// Where.
    pub at: Position,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// One object read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Where its name is written (or its document starts).
    pub at: Position,
    /// Its tenant, if the document names one.
    pub tenant: Option<String>,
    /// The object.
    pub object: Object,
}

/// Reads every `*.yaml` and `*.yml` file under `dir` (recursively, in
/// path order). Returns the objects, or every error found.
pub fn read_dir(dir: &Path) -> Result<Vec<Document>, Vec<FileError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    collect(dir, &mut files, &mut errors);
    if files.is_empty() && errors.is_empty() {
        errors.push(FileError {
            at: Position { file: dir.to_owned(), line: 1, column: 1 },
            message: "holds no .yaml or .yml files".into(),
        });
    }
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => match parse(&f, &text) {
                Ok(d) => docs.extend(d),
                Err(e) => errors.extend(e),
            },
            Err(e) => errors.push(FileError {
                at: Position { file: f.clone(), line: 1, column: 1 },
                message: format!("cannot be read: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(docs)
    } else {
        Err(errors)
    }
}

fn collect(path: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<FileError>) {
    let at = || Position { file: path.to_owned(), line: 1, column: 1 };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => match std::fs::read_dir(path) {
            Ok(entries) => {
                for e in entries.flatten() {
                    let p = e.path();
                    let hidden = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
                    if !hidden {
                        collect(&p, files, errors);
                    }
                }
            }
            Err(e) => errors.push(FileError { at: at(), message: format!("cannot be listed: {e}") }),
        },
        Ok(_) => {
            if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                files.push(path.to_owned());
            }
        }
        Err(e) => errors.push(FileError { at: at(), message: format!("cannot be read: {e}") }),
    }
}

/// The documents of one file's text: (first line, text).
fn documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = vec![(1usize, String::new())];
    for (i, line) in text.lines().enumerate() {
        let marker = line.strip_prefix("---").is_some_and(|r| r.trim().is_empty() || r.trim_start().starts_with('#'));
        if marker {
            docs.push((i + 2, String::new()));
            continue;
        }
        if let Some((_, d)) = docs.last_mut() {
            d.push_str(line);
            d.push('\n');
        }
    }
    docs.retain(|(_, d)| d.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')));
    docs
}

/// Parses one file's text.
pub fn parse(file: &Path, text: &str) -> Result<Vec<Document>, Vec<FileError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (first, doc) in documents(text) {
        match parse_document(file, first, &doc) {
            Ok(d) => out.extend(d),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The message of a parser error without its position, and the position.
fn located(file: &Path, first: usize, e: &yaml_serde::Error) -> FileError {
    let (line, column) = e.location().map_or((0, 1), |l| (l.line().saturating_sub(1), l.column()));
    let mut message = e.to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    FileError { at: Position { file: file.to_owned(), line: first + line, column }, message }
}

/// The top-level `key: value` of a document (block style), if written.
fn top_level<'a>(doc: &'a str, key: &str) -> Option<(usize, &'a str)> {
    doc.lines().enumerate().find_map(|(i, l)| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let value = rest.split(" #").next().unwrap_or("").trim().trim_matches(|c| c == '"' || c == '\'');
        Some((i, value))
    })
}

/// The document with its top-level `kind` and `tenant` lines made
/// comments (lines keep their numbers, so positions stay exact), and a
/// metric schema's `metric_kind` its `kind`.
fn without_meta(doc: &str) -> String {
    doc.lines()
        .map(|l| {
            if l.starts_with("kind:") || l.starts_with("tenant:") {
                format!("#{l}\n")
            } else if let Some(rest) = l.strip_prefix("metric_kind:") {
                format!("kind:{rest}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

/// A document that is a list of schemas.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Schemas {
    #[serde(default)]
    targets: Vec<TargetSchema>,
    #[serde(default)]
    metrics: Vec<MetricSchema>,
}

fn parse_document(file: &Path, first: usize, doc: &str) -> Result<Vec<Document>, FileError> {
    let at = |line: usize, column: usize| Position { file: file.to_owned(), line: first + line, column };
    // Syntax first, so a broken document is reported where it breaks.
    let value: yaml_serde::Value = yaml_serde::from_str(doc).map_err(|e| located(file, first, &e))?;
    let Some(map) = value.as_mapping() else {
        return Err(FileError {
            at: at(0, 1),
            message: "a document must be a mapping that starts with `kind: KIND`".into(),
        });
    };
    let flow = !doc.lines().any(|l| l.starts_with("kind:")) && map.contains_key("kind");
    if flow {
        return Err(FileError {
            at: at(0, 1),
            message: "write `kind:` as a top-level line of the document (block style)".into(),
        });
    }
    let tenant = match top_level(doc, "tenant") {
        Some((_, "")) | None => None,
        Some((_, t)) => Some(t.to_owned()),
    };
    let kind = match top_level(doc, "kind") {
        Some((_, k)) => k.to_owned(),
        None if map.keys().all(|k| k.as_str().is_some_and(|k| k == "targets" || k == "metrics")) => {
            "Schemas".to_owned()
        }
        // A Prometheus rule file, as it is.
        None if map.keys().all(|k| k.as_str() == Some("groups")) => "Rules".to_owned(),
        None => {
            let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            return Err(FileError {
                at: at(0, 1),
                message: format!(
                    "the document names no kind: start it with `kind: K` ({}), or write schemas (`targets:`, \
                     `metrics:`) or a Prometheus rule file (`groups:`)",
                    kinds.join(", ")
                ),
            });
        }
    };
    let body = without_meta(doc);
    fn read<T: DeserializeOwned>(file: &Path, first: usize, body: &str) -> Result<T, FileError> {
        yaml_serde::from_str(body).map_err(|e| located(file, first, &e))
    }
    let name_at = |name: &str| -> Position {
        let found = doc.lines().enumerate().find_map(|(i, l)| {
            let col = l.find("name:")?;
            let v = l[col + 5..].split(" #").next()?.trim().trim_matches(|c| c == '"' || c == '\'');
            (v == name).then_some((i, col + 1))
        });
        found.map_or_else(|| at(0, 1), |(i, c)| at(i, c))
    };
    let one = |object: Object| vec![Document { at: name_at(object.name()), tenant: tenant.clone(), object }];
    Ok(match kind.as_str() {
        "TargetSchema" => one(Object::TargetSchema(read(file, first, &body)?)),
        "MetricSchema" => one(Object::MetricSchema(read(file, first, &body).map_err(|mut e| {
            e.message = e.message.replace("`kind`", "`metric_kind`");
            e
        })?)),
        "Zone" => one(Object::Zone(read::<ZoneSpec>(file, first, &body)?)),
        "RuleGroup" => one(Object::RuleGroup(read::<GroupSpec>(file, first, &body)?)),
        "Rules" => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Rules {
                #[serde(default)]
                groups: Vec<GroupSpec>,
            }
            let r: Rules = read(file, first, &body)?;
            r.groups
                .into_iter()
                .map(Object::RuleGroup)
                .map(|object| Document { at: name_at(object.name()), tenant: tenant.clone(), object })
                .collect()
        }
        "Schemas" => {
            let s: Schemas = read(file, first, &body)?;
            s.targets
                .into_iter()
                .map(Object::TargetSchema)
                .chain(s.metrics.into_iter().map(Object::MetricSchema))
                .map(|object| Document { at: name_at(object.name()), tenant: tenant.clone(), object })
                .collect()
        }
        other => {
            let (line, _) = top_level(doc, "kind").unwrap_or((0, ""));
            let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            return Err(FileError {
                at: at(line, 7),
                message: format!(
                    "unknown kind {other:?}; kinds are {}, and documents of schemas or rule groups without a kind",
                    kinds.join(", ")
                ),
            });
        }
    })
}

/// The documents grouped by tenant (`default_tenant` where a document names
/// none), each group in file order.
pub fn by_tenant<'a>(docs: &'a [Document], default_tenant: &str) -> BTreeMap<String, Vec<&'a Document>> {
    let mut out: BTreeMap<String, Vec<&Document>> = BTreeMap::new();
    for d in docs {
        let t = d.tenant.clone().unwrap_or_else(|| default_tenant.to_owned());
        out.entry(t).or_default().push(d);
    }
    out
}

/// Checks documents against `state` as an apply would (every tenant's
/// objects, each tenant's as one request): every error, each at its
/// document. Also refuses one object written in two places.
pub fn validate(docs: &[Document], default_tenant: &str, state: &ConfigState) -> Vec<FileError> {
    let mut errors = Vec::new();
    let mut seen: BTreeMap<ObjectKey, &Position> = BTreeMap::new();
    for (tenant, group) in by_tenant(docs, default_tenant) {
        for d in &group {
            let key = d.object.key(&tenant);
            if let Some(first) = seen.get(&key) {
                errors.push(FileError {
                    at: d.at.clone(),
                    message: format!("{key} is also written at {first}; keep one"),
                });
            } else {
                seen.insert(key, &d.at);
            }
        }
        // Each object on its own first, so every bad one is reported…
        let mut bad = false;
        for d in &group {
            if let Err(r) = state.plan(&tenant, std::slice::from_ref(&d.object)) {
                errors.push(FileError { at: d.at.clone(), message: r.to_string() });
                bad = true;
            }
        }
        // …then together (zones claiming one location, …).
        if !bad {
            let objects: Vec<Object> = group.iter().map(|d| d.object.clone()).collect();
            if let Err(r) = state.plan(&tenant, &objects) {
                let at = r
                    .object
                    .as_ref()
                    .and_then(|k| group.iter().find(|d| d.object.key(&tenant) == *k))
                    .map_or_else(|| group[0].at.clone(), |d| d.at.clone());
                errors.push(FileError { at, message: r.to_string() });
            }
        }
    }
    errors
}

/// The object as a document's YAML (`kind` first; `tenant` if given).
pub fn render(object: &Object, tenant: Option<&str>) -> Result<String, String> {
    let body = match object {
        Object::TargetSchema(s) => yaml_serde::to_value(s),
        Object::MetricSchema(s) => yaml_serde::to_value(s),
        Object::Zone(z) => yaml_serde::to_value(z),
        Object::RuleGroup(g) => yaml_serde::to_value(g),
    }
    .map_err(|e| format!("{}: {e}", object.name()))?;
    let mut map = yaml_serde::Mapping::new();
    map.insert("kind".into(), object.kind().name().into());
    if let Some(t) = tenant {
        map.insert("tenant".into(), t.into());
    }
    if let yaml_serde::Value::Mapping(m) = body {
        for (k, v) in m {
            let k = if k.as_str() == Some("kind") { "metric_kind".into() } else { k };
            map.insert(k, v);
        }
    }
    yaml_serde::to_string(&map).map_err(|e| format!("{}: {e}", object.name()))
}

/// The configuration of `tenant` (and the installation's objects) as a
/// directory: relative path → text. `zones.yaml`, `schemas/targets.yaml`,
/// `schemas/metrics.yaml`, `rules.yaml`; documents name no tenant (apply with
/// `--tenant`).
pub fn export(view: &crate::view::ConfigView, tenant: &str) -> Result<BTreeMap<PathBuf, String>, String> {
    let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (key, object) in view.objects.iter().filter(|(k, _)| k.tenant.is_empty() || k.tenant == tenant) {
        let path = match key.kind {
            Kind::Zone => PathBuf::from("zones.yaml"),
            Kind::TargetSchema => PathBuf::from("schemas/targets.yaml"),
            Kind::MetricSchema => PathBuf::from("schemas/metrics.yaml"),
            Kind::RuleGroup => PathBuf::from("rules.yaml"),
        };
        let text = files.entry(path).or_default();
        if !text.is_empty() {
            text.push_str("---\n");
        }
        text.push_str(&render(object, None)?);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::state::{ConfigCommand, Origin};
    use danaus_raft::StateMachine as _;

    const SCHEMAS: &str = "\
# a comment before the first document
kind: TargetSchema
name: Host
location: zone
fields:
  - {name: zone, type: string}
  - {name: host, type: string}
---
kind: MetricSchema
name: /cpu
fields: [{name: mode, type: string}]
value_type: double
kind_of_metric_is_wrong: gauge
metric_kind: gauge
";

    fn p() -> PathBuf {
        PathBuf::from("cfg/schemas.yaml")
    }

    #[test]
    fn a_type_error_names_file_line_and_column() {
        let e = parse(&p(), SCHEMAS).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].at.line, e[0].at.column), (13, 1), "{}", e[0]);
        assert!(e[0].message.contains("`metric_kind`"), "a metric document's own kind is metric_kind: {}", e[0]);
        assert!(e[0].message.contains("kind_of_metric_is_wrong"), "{}", e[0]);
        assert!(e[0].to_string().starts_with("cfg/schemas.yaml:13:1: "), "{}", e[0]);
    }

    #[test]
    fn a_syntax_error_is_reported_where_it_is() {
        let e = parse(&p(), "kind: Zone\nname: eu\nlocations: [eu\n").unwrap_err();
        assert_eq!(e[0].at.line, 4, "{}", e[0]);
        let e = parse(&p(), "kind: Zones\nname: eu\n").unwrap_err();
        assert_eq!((e[0].at.line, e[0].at.column), (1, 7));
        assert!(e[0].message.contains("kinds are"), "{}", e[0]);
    }

    #[test]
    fn documents_are_objects_with_their_positions() {
        let text = "kind: Zone\nname: eu\nlocations: [eu]\nrouters: ['eu-router:7070']\n---\n\
                    kind: Zone\ntenant: ignored-for-zones\nname: us\n";
        let docs = parse(&p(), text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[1].at.line, docs[1].at.column), (8, 1));
        assert_eq!(docs[1].object.key("acme").tenant, "", "zones belong to the installation");
    }

    #[test]
    fn an_existing_schema_file_reads_as_it_is() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tour/schemas.yaml")).unwrap();
        let docs = parse(&p(), &text).unwrap();
        assert_eq!(docs.len(), 4);
        assert!(docs[1].at.line > 9, "{:?}", docs[1].at);
    }

    #[test]
    fn validation_reports_the_object_the_configuration_refuses_at_its_name() {
        let text = "kind: Zone\nname: eu\nlocations: [eu]\n---\nkind: Zone\nname: eu2\nlocations: [eu]\n";
        let docs = parse(&p(), text).unwrap();
        let errors = validate(&docs, "acme", &ConfigState::default());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].at.line, 6, "{}", errors[0]);
        assert!(errors[0].message.contains("claims location \"eu\""), "{}", errors[0]);
    }

    #[test]
    fn export_then_apply_changes_nothing() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tour/schemas.yaml")).unwrap();
        let mut docs = parse(&p(), &text).unwrap();
        docs.extend(parse(&p(), "kind: Zone\nname: eu\nrouters: ['r:1']\n").unwrap());
        let mut state = ConfigState::default();
        let origin = Origin { author: "t".into(), time: 0, message: String::new() };
        let objects: Vec<Object> = docs.into_iter().map(|d| d.object).collect();
        let cmd = ConfigCommand::Apply { tenant: "acme".into(), objects, expect_version: None, origin: origin.clone() };
        assert!(state.apply(cmd).unwrap().changed);
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in export(&state.view(), "acme").unwrap() {
            let f = dir.path().join(path);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
        }
        let again = read_dir(dir.path()).unwrap();
        assert_eq!(again.len(), 5);
        assert!(validate(&again, "acme", &state).is_empty());
        let objects: Vec<Object> = again.into_iter().map(|d| d.object).collect();
        let out =
            state.apply(ConfigCommand::Apply { tenant: "acme".into(), objects, expect_version: None, origin }).unwrap();
        assert!(!out.changed, "export → apply made a version: {:?}", out.changes);
    }

    #[test]
    fn an_object_written_twice_is_refused_at_the_second() {
        let text = "kind: Zone\nname: eu\n---\nkind: Zone\nname: eu\n";
        let docs = parse(&p(), text).unwrap();
        let errors = validate(&docs, "acme", &ConfigState::default());
        assert!(errors.iter().any(|e| e.at.line == 5 && e.message.contains("also written at")), "{errors:?}");
    }
}

#[cfg(test)]
mod schema_file {
    #![allow(clippy::unwrap_used)]
    //! `docs/config.schema.json` (what editors validate against) says
    //! what the reader reads: every key a rendered document has is a
    //! property of its kind, and every required property is there.
    use super::*;
    use danaus_model::{CollectionAggregation, FieldDef, FieldType, MetricKind, ScalarType, ValueType};

    fn schema() -> serde_json::Value {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.schema.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// A Prometheus rule file dropped into a configuration directory is
    /// read as it is: one RuleGroup object per group, checked as promtool
    /// checks it, with the problem at the group's line.
    #[test]
    fn a_prometheus_rule_file_is_a_document_of_rule_groups() {
        let text = "groups:\n  - name: a\n    rules:\n      - record: x:sum\n        expr: sum(x)\n  - name: b\n    \
                    rules:\n      - alert: Bad\n        expr: rate(x[5m]\n";
        let docs = parse(Path::new("rules.yml"), text).unwrap();
        assert_eq!(docs.iter().map(|d| d.object.name()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(docs.iter().all(|d| d.object.kind() == Kind::RuleGroup));
        assert_eq!(docs[1].at.line, 6);
        assert!(docs[0].object.validate().is_ok());
        let err = docs[1].object.validate().unwrap_err();
        assert!(err.starts_with("group \"b\", rule 1, \"Bad\": could not parse expression"), "{err}");
    }

    #[test]
    fn every_kind_and_every_key_the_reader_takes_is_in_the_json_schema() {
        let s = schema();
        let mut kinds: Vec<String> = s["properties"]["kind"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        kinds.sort();
        let mut ours: Vec<String> =
            Kind::ALL.iter().map(|k| k.name().to_owned()).chain(["Schemas".to_owned()]).collect();
        ours.sort();
        assert_eq!(kinds, ours);
        let objects = [
            Object::Zone(ZoneSpec {
                name: "eu".into(),
                locations: vec!["eu-*".into()],
                routers: vec!["r:1".into()],
                mixers: vec!["m:1".into()],
                index: vec!["i:1".into()],
            }),
            Object::TargetSchema(TargetSchema {
                name: "Host".into(),
                fields: vec![FieldDef::new("zone", FieldType::String)],
                location_field: "zone".into(),
            }),
            Object::MetricSchema(MetricSchema {
                name: "/req".into(),
                fields: vec![FieldDef::new("code", FieldType::Int64)],
                value_type: ValueType::Scalar(ScalarType::Int64),
                kind: MetricKind::Delta,
                unit: "1".into(),
                description: "requests".into(),
                collection: Some(CollectionAggregation {
                    drop_fields: vec!["code".into()],
                    period: 5_000_000_000,
                    admission_window: 5_000_000_000,
                }),
            }),
            Object::RuleGroup(
                danaus_rules::file::specs(
                    "groups:\n- name: api\n  interval: 30s\n  limit: 10\n  labels: {team: a}\n  rules:\n  - record: \
                     job:up:sum\n    expr: sum by (job) (up)\n  - alert: Down\n    expr: up == 0\n    for: 5m\n    \
                     keep_firing_for: 1m\n    labels: {severity: page}\n    annotations: {summary: '{{ $labels.job }}'}\n",
                )
                .unwrap()
                .remove(0),
            ),
        ];
        for o in objects {
            let text = render(&o, Some("acme")).unwrap();
            let doc: serde_json::Value = yaml_serde::from_str(&text).unwrap();
            let def = &s["$defs"][o.kind().name()];
            let props = def["properties"].as_object().unwrap();
            for k in doc.as_object().unwrap().keys() {
                assert!(props.contains_key(k), "{}: key {k:?} is not in the JSON schema", o.kind());
            }
            for r in def["required"].as_array().unwrap() {
                assert!(doc.get(r.as_str().unwrap()).is_some(), "{}: required {r} is not rendered", o.kind());
            }
            assert_eq!(def["additionalProperties"], serde_json::Value::Bool(false));
            // And what was rendered reads back as the same object.
            let back = parse(Path::new("x.yaml"), &text).unwrap();
            assert_eq!(back[0].object, o);
        }
    }
}
