//! Field matchers of a raw read: `=`, `!=`, `=~`, `!~`.

use danaus_model::{FieldType, FieldValue, MatchOp, Matcher, MetricSchema, SeriesKey, TargetSchema};
use regex::Regex;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy)]
enum Pos {
    /// Index into `SeriesKey::target_fields` (key order).
    Target(usize),
    Metric(usize),
}

/// A matcher resolved against the schemas.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pos: Pos,
    /// What a key without the field holds: its type's zero (a metric field
    /// added after the series was written).
    zero: &'static FieldValue,
    negate: bool,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    Eq(FieldValue),
    Re(Regex),
}

fn resolve(field: &str, target: &TargetSchema, metric: &MetricSchema) -> Result<(Pos, FieldType)> {
    let in_target = |name: &str| {
        let order = target.key_order();
        target.field(name).map(|(i, f)| (Pos::Target(order.iter().position(|&o| o == i).unwrap_or(0)), f.field_type))
    };
    let in_metric = |name: &str| metric.field(name).map(|(i, f)| (Pos::Metric(i), f.field_type));
    let found = if let Some(n) = field.strip_prefix("target.") {
        in_target(n)
    } else if let Some(n) = field.strip_prefix("metric.") {
        in_metric(n)
    } else {
        match (in_target(field), in_metric(field)) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidArgument(format!(
                    "field {field:?} exists in both {} and {}; write target.{field} or metric.{field}",
                    target.name, metric.name
                )))
            }
            (a, b) => a.or(b),
        }
    };
    found.ok_or_else(|| {
        let names: Vec<String> =
            target.fields.iter().map(|f| f.name.clone()).chain(metric.fields.iter().map(|f| f.name.clone())).collect();
        Error::InvalidArgument(format!(
            "unknown field {field:?} for {}::{} (fields: {})",
            target.name,
            metric.name,
            names.join(", ")
        ))
    })
}

/// Resolves and compiles matchers.
pub(crate) fn compile(matchers: &[Matcher], target: &TargetSchema, metric: &MetricSchema) -> Result<Vec<Compiled>> {
    matchers
        .iter()
        .map(|m| {
            let (pos, ty) = resolve(&m.field, target, metric)?;
            let test = match m.op {
                MatchOp::Eq | MatchOp::Ne => Test::Eq(FieldValue::parse(ty, &m.value).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "field {:?} is {}; {:?} is not a valid {}",
                        m.field,
                        ty.name(),
                        m.value,
                        ty.name()
                    ))
                })?),
                MatchOp::Re | MatchOp::Nre => Test::Re(
                    regex::RegexBuilder::new(&format!("^(?:{})$", m.value))
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| Error::InvalidArgument(format!("bad regex for field {:?}: {e}", m.field)))?,
                ),
            };
            Ok(Compiled { pos, zero: ty.zero(), negate: matches!(m.op, MatchOp::Ne | MatchOp::Nre), test })
        })
        .collect()
}

impl Compiled {
    pub(crate) fn matches(&self, key: &SeriesKey) -> bool {
        let v = match self.pos {
            Pos::Target(i) => key.target_fields.get(i),
            Pos::Metric(i) => key.metric_fields.get(i),
        };
        let v = v.unwrap_or(self.zero);
        let hit = match &self.test {
            Test::Eq(want) => v == want,
            Test::Re(re) => match v {
                FieldValue::String(s) => re.is_match(s),
                other => re.is_match(&other.to_text()),
            },
        };
        hit != self.negate
    }
}
