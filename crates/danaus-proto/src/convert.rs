//! Conversions between `danaus.v1` wire types and `danaus-model`.

use std::collections::{BTreeMap, HashMap};

use danaus_model as m;

use crate::v1 as pb;

/// A wire message that does not describe a valid model value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConvertError(pub String);

type Result<T> = std::result::Result<T, ConvertError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(ConvertError(msg.into()))
}

/// Field type from the wire.
pub fn field_type(t: i32, field: &str) -> Result<m::FieldType> {
    match pb::FieldType::try_from(t) {
        Ok(pb::FieldType::String) => Ok(m::FieldType::String),
        Ok(pb::FieldType::Int64) => Ok(m::FieldType::Int64),
        Ok(pb::FieldType::Bool) => Ok(m::FieldType::Bool),
        _ => err(format!("field {field:?} has no type (string, int64 or bool)")),
    }
}

/// Field type to the wire.
pub fn field_type_to(t: m::FieldType) -> pb::FieldType {
    match t {
        m::FieldType::String => pb::FieldType::String,
        m::FieldType::Int64 => pb::FieldType::Int64,
        m::FieldType::Bool => pb::FieldType::Bool,
    }
}

fn fields(defs: &[pb::FieldDef]) -> Result<Vec<m::FieldDef>> {
    defs.iter()
        .map(|d| {
            let mut f = m::FieldDef::new(d.name.clone(), field_type(d.r#type, &d.name)?);
            f.added = d.added;
            Ok(f)
        })
        .collect()
}

fn fields_to(defs: &[m::FieldDef]) -> Vec<pb::FieldDef> {
    defs.iter()
        .map(|d| pb::FieldDef { name: d.name.clone(), r#type: field_type_to(d.field_type) as i32, added: d.added })
        .collect()
}

/// Target schema from the wire.
pub fn target_schema(t: &pb::TargetSchema) -> Result<m::TargetSchema> {
    Ok(m::TargetSchema { name: t.name.clone(), fields: fields(&t.fields)?, location_field: t.location_field.clone() })
}

/// Target schema to the wire.
pub fn target_schema_to(t: &m::TargetSchema) -> pb::TargetSchema {
    pb::TargetSchema { name: t.name.clone(), fields: fields_to(&t.fields), location_field: t.location_field.clone() }
}

fn scalar(s: i32, schema: &str) -> Result<m::ScalarType> {
    Ok(match pb::ScalarType::try_from(s) {
        Ok(pb::ScalarType::Bool) => m::ScalarType::Bool,
        Ok(pb::ScalarType::Int64) => m::ScalarType::Int64,
        Ok(pb::ScalarType::Double) => m::ScalarType::Double,
        Ok(pb::ScalarType::String) => m::ScalarType::String,
        Ok(pb::ScalarType::Distribution) => m::ScalarType::Distribution,
        _ => return err(format!("metric {schema:?}: unknown value type {s}")),
    })
}

fn scalar_to(s: m::ScalarType) -> i32 {
    (match s {
        m::ScalarType::Bool => pb::ScalarType::Bool,
        m::ScalarType::Int64 => pb::ScalarType::Int64,
        m::ScalarType::Double => pb::ScalarType::Double,
        m::ScalarType::String => pb::ScalarType::String,
        m::ScalarType::Distribution => pb::ScalarType::Distribution,
    }) as i32
}

/// Metric kind from the wire.
pub fn kind(k: i32, schema: &str) -> Result<m::MetricKind> {
    match pb::MetricKind::try_from(k) {
        Ok(pb::MetricKind::Gauge) => Ok(m::MetricKind::Gauge),
        Ok(pb::MetricKind::Cumulative) => Ok(m::MetricKind::Cumulative),
        Ok(pb::MetricKind::Delta) => Ok(m::MetricKind::Delta),
        _ => err(format!("metric {schema:?} has no kind (gauge, cumulative or delta)")),
    }
}

fn kind_to(k: m::MetricKind) -> i32 {
    (match k {
        m::MetricKind::Gauge => pb::MetricKind::Gauge,
        m::MetricKind::Cumulative => pb::MetricKind::Cumulative,
        m::MetricKind::Delta => pb::MetricKind::Delta,
    }) as i32
}

/// Value type from the wire.
pub fn value_type(v: Option<&pb::ValueType>, schema: &str) -> Result<m::ValueType> {
    let Some(v) = v else { return err(format!("metric {schema:?} has no value type")) };
    let elems = v.elements.iter().map(|s| scalar(*s, schema)).collect::<Result<Vec<_>>>()?;
    match (elems.as_slice(), v.tuple) {
        ([], _) => err(format!("metric {schema:?} has an empty value type")),
        ([one], false) => Ok(m::ValueType::Scalar(*one)),
        _ => Ok(m::ValueType::Tuple(elems)),
    }
}

/// Value type to the wire.
pub fn value_type_to(v: &m::ValueType) -> pb::ValueType {
    match v {
        m::ValueType::Scalar(s) => pb::ValueType { elements: vec![scalar_to(*s)], tuple: false },
        m::ValueType::Tuple(items) => {
            pb::ValueType { elements: items.iter().map(|s| scalar_to(*s)).collect(), tuple: true }
        }
    }
}

/// Metric schema from the wire.
pub fn metric_schema(s: &pb::MetricSchema) -> Result<m::MetricSchema> {
    Ok(m::MetricSchema {
        name: s.name.clone(),
        fields: fields(&s.fields)?,
        value_type: value_type(s.value_type.as_ref(), &s.name)?,
        kind: kind(s.kind, &s.name)?,
        unit: s.unit.clone(),
        description: s.description.clone(),
        collection: s.collection.as_ref().map(|c| m::CollectionAggregation {
            drop_fields: c.drop_fields.clone(),
            period: c.period_ns,
            admission_window: c.admission_window_ns,
        }),
    })
}

/// Metric schema to the wire.
pub fn metric_schema_to(s: &m::MetricSchema) -> pb::MetricSchema {
    pb::MetricSchema {
        name: s.name.clone(),
        fields: fields_to(&s.fields),
        value_type: Some(value_type_to(&s.value_type)),
        kind: kind_to(s.kind),
        unit: s.unit.clone(),
        description: s.description.clone(),
        collection: s.collection.as_ref().map(|c| pb::CollectionAggregation {
            drop_fields: c.drop_fields.clone(),
            period_ns: c.period,
            admission_window_ns: c.admission_window,
        }),
    }
}

/// Field value from the wire.
pub fn field_value(v: &pb::FieldValue, field: &str) -> Result<m::FieldValue> {
    use pb::field_value::Value as V;
    match &v.value {
        Some(V::StringValue(s)) => Ok(m::FieldValue::String(s.clone())),
        Some(V::Int64Value(i)) => Ok(m::FieldValue::Int64(*i)),
        Some(V::BoolValue(b)) => Ok(m::FieldValue::Bool(*b)),
        None => err(format!("field {field:?} has no value")),
    }
}

/// Field value to the wire.
pub fn field_value_to(v: &m::FieldValue) -> pb::FieldValue {
    use pb::field_value::Value as V;
    pb::FieldValue {
        value: Some(match v {
            m::FieldValue::String(s) => V::StringValue(s.clone()),
            m::FieldValue::Int64(i) => V::Int64Value(*i),
            m::FieldValue::Bool(b) => V::BoolValue(*b),
        }),
    }
}

/// Named field values from the wire, as a list.
pub fn field_list(map: &HashMap<String, pb::FieldValue>) -> Result<Vec<(String, m::FieldValue)>> {
    map.iter().map(|(k, v)| Ok((k.clone(), field_value(v, k)?))).collect()
}

/// Like [`field_list`], moving the names and strings.
pub fn field_list_owned(map: HashMap<String, pb::FieldValue>) -> Result<Vec<(String, m::FieldValue)>> {
    use pb::field_value::Value as V;
    map.into_iter()
        .map(|(k, v)| {
            let v = match v.value {
                Some(V::StringValue(s)) => m::FieldValue::String(s),
                Some(V::Int64Value(i)) => m::FieldValue::Int64(i),
                Some(V::BoolValue(b)) => m::FieldValue::Bool(b),
                None => return err(format!("field {k:?} has no value")),
            };
            Ok((k, v))
        })
        .collect()
}

/// Named field values to the wire.
pub fn field_map_to<'a>(
    fields: impl IntoIterator<Item = &'a (String, m::FieldValue)>,
) -> HashMap<String, pb::FieldValue> {
    fields.into_iter().map(|(k, v)| (k.clone(), field_value_to(v))).collect()
}

fn bucketer(b: Option<&pb::Bucketer>) -> Result<m::Bucketer> {
    use pb::bucketer::Kind;
    match b.and_then(|b| b.kind.as_ref()) {
        Some(Kind::Explicit(e)) => Ok(m::Bucketer::Explicit { bounds: e.bounds.clone() }),
        Some(Kind::Linear(l)) => {
            Ok(m::Bucketer::Linear { num_finite: l.num_finite_buckets, width: l.width, offset: l.offset })
        }
        Some(Kind::Exponential(x)) => {
            Ok(m::Bucketer::Exponential { num_finite: x.num_finite_buckets, growth: x.growth_factor, scale: x.scale })
        }
        None => err("distribution has no bucketer"),
    }
}

fn bucketer_to(b: &m::Bucketer) -> pb::Bucketer {
    use pb::bucketer::Kind;
    pb::Bucketer {
        kind: Some(match b {
            m::Bucketer::Explicit { bounds } => Kind::Explicit(pb::ExplicitBuckets { bounds: bounds.clone() }),
            m::Bucketer::Linear { num_finite, width, offset } => {
                Kind::Linear(pb::LinearBuckets { num_finite_buckets: *num_finite, width: *width, offset: *offset })
            }
            m::Bucketer::Exponential { num_finite, growth, scale } => Kind::Exponential(pb::ExponentialBuckets {
                num_finite_buckets: *num_finite,
                growth_factor: *growth,
                scale: *scale,
            }),
        }),
    }
}

/// Distribution from the wire.
pub fn distribution(d: &pb::Distribution) -> Result<m::Distribution> {
    let mut exemplars = Vec::with_capacity(d.exemplars.len());
    for e in &d.exemplars {
        let x =
            e.exemplar.as_ref().ok_or_else(|| ConvertError(format!("exemplar for bucket {} is empty", e.bucket)))?;
        exemplars.push((
            e.bucket,
            m::Exemplar {
                value: x.value,
                time: x.time,
                trace_id: x.trace_id.clone(),
                span_id: x.span_id.clone(),
                attachments: x.attachments.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<BTreeMap<_, _>>(),
            },
        ));
    }
    exemplars.sort_by_key(|(b, _)| *b);
    Ok(m::Distribution {
        bucketer: bucketer(d.bucketer.as_ref())?,
        bucket_counts: d.bucket_counts.clone(),
        count: d.count,
        mean: d.mean,
        sum_of_squared_deviation: d.sum_of_squared_deviation,
        exemplars,
    })
}

/// Distribution to the wire.
pub fn distribution_to(d: &m::Distribution) -> pb::Distribution {
    pb::Distribution {
        bucketer: Some(bucketer_to(&d.bucketer)),
        bucket_counts: d.bucket_counts.clone(),
        count: d.count,
        mean: d.mean,
        sum_of_squared_deviation: d.sum_of_squared_deviation,
        exemplars: d
            .exemplars
            .iter()
            .map(|(b, e)| pb::BucketExemplar {
                bucket: *b,
                exemplar: Some(pb::Exemplar {
                    value: e.value,
                    time: e.time,
                    trace_id: e.trace_id.clone(),
                    span_id: e.span_id.clone(),
                    attachments: e.attachments.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                }),
            })
            .collect(),
    }
}

/// Point value from the wire.
pub fn value(v: Option<&pb::Value>) -> Result<m::Value> {
    value_at(v, 0)
}

fn value_at(v: Option<&pb::Value>, depth: u32) -> Result<m::Value> {
    use pb::value::Value as V;
    Ok(match v.and_then(|v| v.value.as_ref()) {
        Some(V::BoolValue(b)) => m::Value::Bool(*b),
        Some(V::Int64Value(i)) => m::Value::Int64(*i),
        Some(V::DoubleValue(d)) => m::Value::Double(*d),
        Some(V::StringValue(s)) => m::Value::String(s.clone()),
        Some(V::DistributionValue(d)) => m::Value::Distribution(Box::new(distribution(d)?)),
        Some(V::TupleValue(t)) if depth == 0 => {
            m::Value::Tuple(t.elements.iter().map(|e| value_at(Some(e), 1)).collect::<Result<_>>()?)
        }
        Some(V::TupleValue(_)) => return err("tuples cannot be nested"),
        None => return err("point has no value"),
    })
}

/// Point value to the wire.
pub fn value_to(v: &m::Value) -> pb::Value {
    use pb::value::Value as V;
    pb::Value {
        value: Some(match v {
            m::Value::Bool(b) => V::BoolValue(*b),
            m::Value::Int64(i) => V::Int64Value(*i),
            m::Value::Double(d) => V::DoubleValue(*d),
            m::Value::String(s) => V::StringValue(s.clone()),
            m::Value::Distribution(d) => V::DistributionValue(distribution_to(d)),
            m::Value::Tuple(items) => V::TupleValue(pb::Tuple { elements: items.iter().map(value_to).collect() }),
        }),
    }
}

/// Point from the wire; `index` names it in errors.
pub fn point(p: &pb::Point, index: usize) -> Result<m::Point> {
    Ok(m::Point {
        start_time: p.start_time,
        end_time: p.end_time,
        value: value(p.value.as_ref()).map_err(|e| ConvertError(format!("point {index}: {e}")))?,
    })
}

/// Point to the wire.
pub fn point_to(p: &m::Point) -> pb::Point {
    pb::Point { start_time: p.start_time, end_time: p.end_time, value: Some(value_to(&p.value)) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn schemas_round_trip() {
        let t = m::TargetSchema {
            name: "T".into(),
            fields: vec![m::FieldDef::new("c", m::FieldType::String), m::FieldDef::new("n", m::FieldType::Int64)],
            location_field: "c".into(),
        };
        assert_eq!(target_schema(&target_schema_to(&t)).unwrap(), t);
        for vt in [
            m::ValueType::Scalar(m::ScalarType::Distribution),
            m::ValueType::Tuple(vec![m::ScalarType::Bool]),
            m::ValueType::Tuple(vec![m::ScalarType::Int64, m::ScalarType::String]),
        ] {
            let s = m::MetricSchema {
                name: "/m".into(),
                fields: vec![],
                value_type: vt,
                kind: m::MetricKind::Delta,
                unit: "s".into(),
                description: "d".into(),
                collection: Some(m::CollectionAggregation {
                    drop_fields: vec!["task".into()],
                    period: 10,
                    admission_window: 20,
                }),
            };
            assert_eq!(metric_schema(&metric_schema_to(&s)).unwrap(), s);
        }
    }

    #[test]
    fn values_round_trip_and_bad_input_is_an_error() {
        let d =
            m::Distribution::from_values(m::Bucketer::Linear { num_finite: 3, width: 1.0, offset: 0.0 }, &[0.5, 2.5]);
        let v = m::Value::Tuple(vec![m::Value::Distribution(Box::new(d)), m::Value::Double(-0.0)]);
        assert!(value(Some(&value_to(&v))).unwrap().same_as(&v));
        assert_eq!(
            point(&pb::Point { start_time: None, end_time: 1, value: None }, 4).unwrap_err().0,
            "point 4: point has no value"
        );
        assert!(field_type(0, "x").unwrap_err().0.contains("field \"x\" has no type"));
        let nested =
            pb::Value { value: Some(pb::value::Value::TupleValue(pb::Tuple { elements: vec![value_to(&v)] })) };
        assert!(value(Some(&nested)).is_err());
    }
}
