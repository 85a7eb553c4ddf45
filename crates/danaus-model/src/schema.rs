//! Target and metric schemas and their validation.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::value::FieldValue;

/// The type of a key field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// UTF-8 string.
    String,
    /// Signed 64-bit integer.
    Int64,
    /// Boolean.
    Bool,
}

impl FieldType {
    /// The value a series reads for a field it was written without (a
    /// field added to its metric schema after it): `""`, `0` or `false`,
    /// as Prometheus reads an absent label as `""`.
    pub fn zero(self) -> &'static FieldValue {
        static STRING: FieldValue = FieldValue::String(String::new());
        static INT64: FieldValue = FieldValue::Int64(0);
        static BOOL: FieldValue = FieldValue::Bool(false);
        match self {
            FieldType::String => &STRING,
            FieldType::Int64 => &INT64,
            FieldType::Bool => &BOOL,
        }
    }

    /// Lower-case name as used in schema files and error messages.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int64 => "int64",
            FieldType::Bool => "bool",
        }
    }
}

/// A named, typed key field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// Field name: `[A-Za-z_][A-Za-z0-9_]*`.
    pub name: String,
    /// Field type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Added to its metric schema after the schema was created (see
    /// [`MetricSchema::evolve`]): a series may be written without it and
    /// then reads its type's [zero](FieldType::zero); the key of such a
    /// series ends before it, so series stored before the field was added
    /// keep their keys. Set by the registry, never by users.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub added: bool,
}

impl FieldDef {
    /// A field definition.
    pub fn new(name: impl Into<String>, field_type: FieldType) -> Self {
        Self { name: name.into(), field_type, added: false }
    }

    /// A field added to an existing metric schema.
    pub fn added(name: impl Into<String>, field_type: FieldType) -> Self {
        Self { name: name.into(), field_type, added: true }
    }
}

/// A scalar value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScalarType {
    /// Boolean.
    Bool,
    /// Signed 64-bit integer.
    Int64,
    /// IEEE-754 double.
    Double,
    /// UTF-8 string.
    String,
    /// Bucketed distribution.
    Distribution,
}

impl ScalarType {
    /// Lower-case name as used in schema files and error messages.
    pub fn name(self) -> &'static str {
        match self {
            ScalarType::Bool => "bool",
            ScalarType::Int64 => "int64",
            ScalarType::Double => "double",
            ScalarType::String => "string",
            ScalarType::Distribution => "distribution",
        }
    }

    fn is_accumulable(self) -> bool {
        matches!(self, ScalarType::Int64 | ScalarType::Double | ScalarType::Distribution)
    }
}

/// The value type of a metric: a scalar or a tuple of scalars.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ValueType {
    /// One scalar per point.
    Scalar(ScalarType),
    /// A fixed tuple of scalars per point.
    Tuple(Vec<ScalarType>),
}

impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueType::Scalar(s) => f.write_str(s.name()),
            ValueType::Tuple(items) => {
                f.write_str("tuple(")?;
                for (i, s) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(s.name())?;
                }
                f.write_str(")")
            }
        }
    }
}

/// How successive points of a metric relate to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// A measurement at an instant; no start time.
    Gauge,
    /// Accumulated since a start time that stays fixed until a reset.
    Cumulative,
    /// Accumulated over `[start, end)`; successive intervals do not overlap.
    Delta,
}

impl MetricKind {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Cumulative => "cumulative",
            MetricKind::Delta => "delta",
        }
    }
    /// Whether points of this kind carry a start time.
    pub fn has_start_time(self) -> bool {
        !matches!(self, MetricKind::Gauge)
    }
}

/// The schema of a monitored entity: `ComputeTask{cluster*, user, job, task_num}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSchema {
    /// Schema name, e.g. `ComputeTask`.
    pub name: String,
    /// Ordered key fields.
    pub fields: Vec<FieldDef>,
    /// Name of the field that decides the zone; must be one of `fields`.
    #[serde(rename = "location")]
    pub location_field: String,
}

impl TargetSchema {
    /// Checks names, types and the location field.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Error::InvalidSchema { schema: self.name.clone(), reason };
        if !is_identifier(&self.name, true) {
            return Err(bad("target schema names must match [A-Za-z_][A-Za-z0-9_.]* (e.g. ComputeTask)".into()));
        }
        validate_fields(&self.name, &self.fields)?;
        if let Some(f) = self.fields.iter().find(|f| f.added) {
            return Err(bad(format!("field {:?}: target schemas have no added fields; their keys are fixed", f.name)));
        }
        match self.field(&self.location_field) {
            None => Err(bad(format!(
                "location field {:?} is not one of its fields ({})",
                self.location_field,
                field_names(&self.fields)
            ))),
            Some((_, f)) if f.field_type != FieldType::String => Err(bad(format!(
                "location field {:?} must be a string, not {}",
                self.location_field,
                f.field_type.name()
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Looks a field up by name.
    pub fn field(&self, name: &str) -> Option<(usize, &FieldDef)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }

    /// Index of the location field in `fields`.
    pub fn location_index(&self) -> usize {
        self.field(&self.location_field).map(|(i, _)| i).unwrap_or(0)
    }

    /// Field indices in target-string order: the location field first, then
    /// the others in declaration order.
    pub fn key_order(&self) -> Vec<usize> {
        let loc = self.location_index();
        std::iter::once(loc).chain((0..self.fields.len()).filter(|&i| i != loc)).collect()
    }
}

/// The schema of a metric: `/rpc/server/latency{method}` → distribution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSchema {
    /// Metric name: a path such as `/rpc/server/latency`, or a Prometheus-style
    /// identifier such as `http_requests_total`.
    pub name: String,
    /// Ordered key fields of the metric.
    #[serde(default)]
    pub fields: Vec<FieldDef>,
    /// Type of each point's value.
    pub value_type: ValueType,
    /// Gauge, cumulative or delta.
    pub kind: MetricKind,
    /// Unit, e.g. `s`, `By`, `1`.
    #[serde(default)]
    pub unit: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Collection aggregation: leaves fold incoming deltas across dropped
    /// fields into one output series per admission period. Delta metrics
    /// only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<crate::collection::CollectionAggregation>,
}

impl MetricSchema {
    /// Checks the name, fields, value type and kind.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Error::InvalidSchema { schema: self.name.clone(), reason };
        if !is_metric_name(&self.name) {
            return Err(bad("metric names must be a path like /rpc/server/latency (segments of [A-Za-z0-9_.-]) or an identifier like http_requests_total".into()));
        }
        validate_fields(&self.name, &self.fields)?;
        if let Some(w) = self.fields.windows(2).find(|w| w[0].added && !w[1].added) {
            return Err(bad(format!(
                "field {:?} comes after the added field {:?}: added fields come last",
                w[1].name, w[0].name
            )));
        }
        let scalars: &[ScalarType] = match &self.value_type {
            ValueType::Scalar(s) => std::slice::from_ref(s),
            ValueType::Tuple(items) if items.is_empty() => {
                return Err(bad("a tuple value type needs at least one element".into()))
            }
            ValueType::Tuple(items) => items,
        };
        if self.kind != MetricKind::Gauge {
            if let Some(s) = scalars.iter().find(|s| !s.is_accumulable()) {
                return Err(bad(format!(
                    "{} metrics must have int64, double or distribution values, not {}",
                    self.kind.name(),
                    s.name()
                )));
            }
        }
        if let Some(c) = &self.collection {
            if self.kind != MetricKind::Delta {
                return Err(bad(format!(
                    "collection aggregation sums deltas; a {} metric cannot have it",
                    self.kind.name()
                )));
            }
            c.validate(&self.name)?;
        }
        Ok(())
    }

    /// Looks a field up by name.
    pub fn field(&self, name: &str) -> Option<(usize, &FieldDef)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }

    /// The schema stored after applying `new` over this one, or `None`
    /// when nothing changes. Unit, description and the collection
    /// aggregation are taken from `new` (a new aggregation applies to
    /// buckets opened after it). Fields `new` adds are appended, marked
    /// [added](FieldDef::added), in `new`'s order; the fields stored keep
    /// their order, wherever `new` lists them. Removing, renaming or
    /// retyping a field, or changing the kind or value type, is refused:
    /// stored series are keyed by their fields and hold points of their
    /// type, and nothing is rewritten.
    pub fn evolve(&self, new: &MetricSchema) -> Result<Option<MetricSchema>> {
        let bad = |reason: String| Error::InvalidSchema { schema: self.name.clone(), reason };
        if self.name != new.name {
            return Err(bad(format!("cannot be replaced by schema {:?}", new.name)));
        }
        if self.kind != new.kind || self.value_type != new.value_type {
            return Err(bad(format!(
                "exists as {} {}, and stays so (its series hold such points); given {} {}",
                self.kind.name(),
                self.value_type,
                new.kind.name(),
                new.value_type
            )));
        }
        for f in &self.fields {
            match new.field(&f.name) {
                None => {
                    return Err(bad(format!(
                        "field {:?} cannot be removed or renamed: stored series are keyed by it (fields: {})",
                        f.name,
                        field_names(&self.fields)
                    )))
                }
                Some((_, g)) if g.field_type != f.field_type => {
                    return Err(bad(format!(
                        "field {:?} is {} and cannot become {}: stored series are keyed by it",
                        f.name,
                        f.field_type.name(),
                        g.field_type.name()
                    )))
                }
                Some(_) => {}
            }
        }
        let mut fields = self.fields.clone();
        fields.extend(
            new.fields.iter().filter(|g| self.field(&g.name).is_none()).map(|g| FieldDef::added(&g.name, g.field_type)),
        );
        let evolved = MetricSchema {
            name: self.name.clone(),
            fields,
            value_type: self.value_type.clone(),
            kind: self.kind,
            unit: new.unit.clone(),
            description: new.description.clone(),
            collection: new.collection.clone(),
        };
        evolved.validate()?;
        Ok((evolved != *self).then_some(evolved))
    }

    /// How many of `values` (a series' metric field values in declaration
    /// order) its key holds: all but the trailing [added](FieldDef::added)
    /// fields at their zero, so a series written before a field was added
    /// and one written after without it have the same key.
    pub fn key_len(&self, values: &[&FieldValue]) -> usize {
        let mut n = values.len().min(self.fields.len());
        while n > 0 && self.fields[n - 1].added && values[n - 1] == self.fields[n - 1].field_type.zero() {
            n -= 1;
        }
        n
    }
}

fn field_names(fields: &[FieldDef]) -> String {
    fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Most key fields a schema may have. A metric gains a field for every
/// label name its series bring, so a sender inventing label names would
/// otherwise grow it (and every table change) without end.
pub const MAX_FIELDS: usize = 1024;

fn validate_fields(schema: &str, fields: &[FieldDef]) -> Result<()> {
    if fields.len() > MAX_FIELDS {
        return Err(Error::InvalidSchema {
            schema: schema.into(),
            reason: format!(
                "{} fields, over the limit of {MAX_FIELDS}: are label names being made of values?",
                fields.len()
            ),
        });
    }
    for (i, f) in fields.iter().enumerate() {
        if !is_identifier(&f.name, false) {
            return Err(Error::InvalidField {
                schema: schema.into(),
                field: f.name.clone(),
                reason: "field names must match [A-Za-z_][A-Za-z0-9_]*".into(),
            });
        }
        if fields[..i].iter().any(|g| g.name == f.name) {
            return Err(Error::InvalidField {
                schema: schema.into(),
                field: f.name.clone(),
                reason: "declared more than once".into(),
            });
        }
    }
    Ok(())
}

fn is_identifier(s: &str, allow_dot: bool) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (allow_dot && c == '.'))
        && s.len() <= 256
}

fn is_metric_name(s: &str) -> bool {
    if s.len() > 1024 {
        return false;
    }
    if let Some(path) = s.strip_prefix('/') {
        !path.is_empty()
            && path.split('/').all(|seg| {
                !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            })
    } else {
        let mut chars = s.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn task() -> TargetSchema {
        TargetSchema {
            name: "ComputeTask".into(),
            fields: vec![
                FieldDef::new("user", FieldType::String),
                FieldDef::new("cluster", FieldType::String),
                FieldDef::new("task_num", FieldType::Int64),
            ],
            location_field: "cluster".into(),
        }
    }

    #[test]
    fn location_field_goes_first_in_key_order() {
        assert_eq!(task().key_order(), vec![1, 0, 2]);
        task().validate().unwrap();
    }

    #[test]
    fn rejects_missing_or_non_string_location() {
        let mut t = task();
        t.location_field = "zone".into();
        let err = t.validate().unwrap_err().to_string();
        assert!(err.contains("\"zone\" is not one of its fields (user, cluster, task_num)"), "{err}");
        t.location_field = "task_num".into();
        assert!(t.validate().unwrap_err().to_string().contains("must be a string"));
    }

    #[test]
    fn rejects_duplicate_fields_and_bad_names() {
        let mut t = task();
        t.fields.push(FieldDef::new("user", FieldType::Bool));
        assert!(t.validate().unwrap_err().to_string().contains("declared more than once"));
        let mut t = task();
        t.name = "9lives".into();
        assert!(t.validate().is_err());
    }

    #[test]
    fn metric_names_and_kinds() {
        let mut m = MetricSchema {
            name: "/rpc/server/latency".into(),
            fields: vec![],
            value_type: ValueType::Scalar(ScalarType::String),
            kind: MetricKind::Cumulative,
            unit: String::new(),
            description: String::new(),
            collection: None,
        };
        assert!(m.validate().unwrap_err().to_string().contains("cumulative metrics must have"));
        m.kind = MetricKind::Gauge;
        m.validate().unwrap();
        m.collection = Some(crate::CollectionAggregation {
            drop_fields: vec![],
            period: 1_000_000_000,
            admission_window: 1_000_000_000,
        });
        assert!(m.validate().unwrap_err().to_string().contains("a gauge metric cannot have it"));
        m.collection = None;
        for bad in ["/", "/a//b", "rpc latency", "/a b"] {
            m.name = bad.into();
            assert!(m.validate().is_err(), "{bad}");
        }
        m.name = "http_requests_total".into();
        m.validate().unwrap();
    }

    #[test]
    fn yaml_like_serde_shape() {
        let m: MetricSchema =
            serde_json::from_str(r#"{"name":"/x","value_type":["int64","double"],"kind":"delta"}"#).unwrap();
        assert_eq!(m.value_type, ValueType::Tuple(vec![ScalarType::Int64, ScalarType::Double]));
        let t: TargetSchema =
            serde_json::from_str(r#"{"name":"T","location":"c","fields":[{"name":"c","type":"string"}]}"#).unwrap();
        t.validate().unwrap();
    }
}
