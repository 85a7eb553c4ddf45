//! Validation of incoming series and points against their schemas.
//!
//! This is the one place that decides whether data may be stored; the leaf
//! calls it before anything reaches the recovery log.

use crate::error::{Error, Result};
use crate::key::SeriesKey;
use crate::schema::{FieldDef, MetricKind, MetricSchema, ScalarType, TargetSchema, ValueType};
use crate::value::{FieldValue, Point, Value};

/// Builds a series key from named field values, checking that every field of
/// both schemas is present with the right type and that nothing else is.
pub fn series_key(
    tenant: &str,
    target: &TargetSchema,
    target_values: &[(String, FieldValue)],
    metric: &MetricSchema,
    metric_values: &[(String, FieldValue)],
) -> Result<SeriesKey> {
    let target_in_decl = ordered(&target.name, &target.fields, target_values)?;
    let target_fields = target.key_order().into_iter().map(|i| target_in_decl[i].clone()).collect();
    let metric_in_decl = ordered(&metric.name, &metric.fields, metric_values)?;
    let n = metric.key_len(&metric_in_decl);
    let metric_fields = metric_in_decl[..n].iter().map(|v| (*v).clone()).collect();
    Ok(SeriesKey {
        tenant: tenant.to_owned(),
        target_schema: target.name.clone(),
        target_fields,
        metric: metric.name.clone(),
        metric_fields,
    })
}

/// Like [`series_key`], but returns the key's encoding
/// ([`SeriesKey::encode`]) directly, without building the key: the write
/// path's hot loop only needs the bytes to find an existing series.
pub fn encoded_series_key(
    tenant: &str,
    target: &TargetSchema,
    target_values: &[(String, FieldValue)],
    metric: &MetricSchema,
    metric_values: &[(String, FieldValue)],
) -> Result<Vec<u8>> {
    let target_in_decl = ordered(&target.name, &target.fields, target_values)?;
    let metric_fields = ordered(&metric.name, &metric.fields, metric_values)?;
    let n = metric.key_len(&metric_fields);
    // Target-string order without building `key_order()`: the location
    // field first, then the others in declaration order.
    let loc = target.location_index();
    let order = std::iter::once(loc).chain((0..target.fields.len()).filter(move |&i| i != loc));
    let mut out = Vec::with_capacity(96);
    crate::key::encode_parts(
        &mut out,
        tenant,
        &target.name,
        order.map(|i| target_in_decl[i]),
        &metric.name,
        metric_fields[..n].iter().copied(),
    );
    Ok(out)
}

/// Appends the metric part of a series key to `target`, the encoded target
/// of [`encoded_target`]: the same bytes as [`encoded_series_key`], for
/// writers that encode a target once for its many series.
pub fn append_metric_key(
    target: &mut Vec<u8>,
    metric: &MetricSchema,
    metric_values: &[(String, FieldValue)],
) -> Result<()> {
    // Writers usually give fields in declared order: then they are checked
    // and encoded where they are, with nothing collected.
    let in_order = metric_values.len() == metric.fields.len()
        && metric.fields.iter().zip(metric_values).all(|(d, (k, _))| d.name == *k);
    if in_order {
        for (def, (_, v)) in metric.fields.iter().zip(metric_values) {
            check_field(&metric.name, def, v)?;
        }
        // Trailing added fields at their zero are left out of the key.
        let mut n = metric_values.len();
        while n > 0 && metric.fields[n - 1].added && metric_values[n - 1].1 == *metric.fields[n - 1].field_type.zero() {
            n -= 1;
        }
        crate::key::encode_metric_parts(target, &metric.name, metric_values[..n].iter().map(|(_, v)| v));
    } else {
        let metric_fields = ordered(&metric.name, &metric.fields, metric_values)?;
        let n = metric.key_len(&metric_fields);
        crate::key::encode_metric_parts(target, &metric.name, metric_fields[..n].iter().copied());
    }
    Ok(())
}

/// The target string of a series given its target fields by name: the
/// prefix of [`encoded_series_key`]'s output that decides its range.
pub fn encoded_target(tenant: &str, target: &TargetSchema, target_values: &[(String, FieldValue)]) -> Result<Vec<u8>> {
    let target_in_decl = ordered(&target.name, &target.fields, target_values)?;
    let loc = target.location_index();
    let order = std::iter::once(loc).chain((0..target.fields.len()).filter(move |&i| i != loc));
    let mut out = Vec::with_capacity(64);
    crate::key::encode_target_parts(&mut out, tenant, &target.name, order.map(|i| target_in_decl[i]));
    Ok(out)
}

/// The target string that decides where a series is stored: its own, or
/// for a collection-aggregated metric its output series' (dropped target
/// fields blanked), so every input of one output series reaches the same
/// leaves.
pub fn routing_target(
    tenant: &str,
    target: &TargetSchema,
    metric: Option<&MetricSchema>,
    target_values: &[(String, FieldValue)],
) -> Result<Vec<u8>> {
    match metric.and_then(|m| m.collection.as_ref()).filter(|c| !c.drop_fields.is_empty()) {
        Some(c) => encoded_target(tenant, target, &c.output_target(target_values)),
        None => encoded_target(tenant, target, target_values),
    }
}

/// Whether `v` may be the value of the field `def` of `schema`.
fn check_field(schema: &str, def: &FieldDef, v: &FieldValue) -> Result<()> {
    if v.field_type() != def.field_type {
        return Err(Error::InvalidField {
            schema: schema.into(),
            field: def.name.clone(),
            reason: format!("expects {}, got {} ({v})", def.field_type.name(), v.field_type().name()),
        });
    }
    if let FieldValue::String(s) = v {
        if s.len() > MAX_FIELD_BYTES {
            return Err(Error::InvalidField {
                schema: schema.into(),
                field: def.name.clone(),
                reason: format!("value is {} bytes, over the limit of {MAX_FIELD_BYTES}", s.len()),
            });
        }
    }
    Ok(())
}

fn ordered<'a>(schema: &str, defs: &[FieldDef], values: &'a [(String, FieldValue)]) -> Result<Vec<&'a FieldValue>> {
    let mut out = Vec::with_capacity(defs.len());
    let mut given = 0;
    for def in defs {
        // Schemas have a handful of fields: a scan beats hashing.
        let v = match values.iter().find(|(k, _)| *k == def.name) {
            Some((_, v)) => {
                given += 1;
                v
            }
            // A series may leave out a field added after its schema was
            // created: it has that field's zero, as the series stored
            // before the field existed do.
            None if def.added => def.field_type.zero(),
            None => {
                return Err(Error::InvalidField {
                    schema: schema.into(),
                    field: def.name.clone(),
                    reason: "missing: every key field must have a value".into(),
                })
            }
        };
        check_field(schema, def, v)?;
        out.push(v);
    }
    if values.len() != given {
        let mut extra: Vec<&str> =
            values.iter().map(|(k, _)| k.as_str()).filter(|k| !defs.iter().any(|d| d.name == *k)).collect();
        extra.sort_unstable();
        if extra.is_empty() {
            let twice = values.iter().find(|(k, _)| values.iter().filter(|(j, _)| j == k).count() > 1);
            return Err(Error::InvalidField {
                schema: schema.into(),
                field: twice.map(|(k, _)| k.clone()).unwrap_or_default(),
                reason: "given more than once".into(),
            });
        }
        return Err(Error::InvalidField {
            schema: schema.into(),
            field: extra.join(", "),
            reason: format!(
                "not declared by the schema (its fields are: {})",
                defs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    Ok(out)
}

/// Longest string field value accepted, in bytes.
pub const MAX_FIELD_BYTES: usize = 4096;
/// Longest string point value accepted, in bytes.
pub const MAX_STRING_VALUE_BYTES: usize = 64 * 1024;

/// Checks one point against its metric schema. `series` and `index` only
/// feed the error message.
#[inline]
pub fn point(metric: &MetricSchema, series: &dyn std::fmt::Display, index: usize, p: &Point) -> Result<()> {
    let bad =
        |reason: String| Error::InvalidPoint { metric: metric.name.clone(), series: series.to_string(), index, reason };
    match (metric.kind, p.start_time) {
        (MetricKind::Gauge, Some(_)) => return Err(bad("gauge points have no start time; leave it unset".into())),
        (MetricKind::Delta, None) => {
            return Err(bad("delta points need a start time (the beginning of their interval)".into()))
        }
        (MetricKind::Delta, Some(s)) if s >= p.end_time => {
            return Err(bad(format!("delta interval is empty: start time {s} is not before end time {}", p.end_time)))
        }
        (MetricKind::Cumulative, Some(s)) if s > p.end_time => {
            return Err(bad(format!("start time {s} is after end time {}", p.end_time)))
        }
        _ => {}
    }
    check_value(&metric.value_type, &p.value).map_err(bad)
}

#[inline]
fn check_value(expected: &ValueType, v: &Value) -> std::result::Result<(), String> {
    match (expected, v) {
        (ValueType::Scalar(s), v) => check_scalar(*s, v),
        (ValueType::Tuple(types), Value::Tuple(items)) => {
            if types.len() != items.len() {
                return Err(format!("expects a tuple of {} elements, got {}", types.len(), items.len()));
            }
            for (i, (t, item)) in types.iter().zip(items).enumerate() {
                check_scalar(*t, item).map_err(|e| format!("tuple element {i}: {e}"))?;
            }
            Ok(())
        }
        (t, v) => Err(format!("expects {t}, got {}", v.value_type())),
    }
}

#[inline]
fn check_scalar(expected: ScalarType, v: &Value) -> std::result::Result<(), String> {
    if v.scalar_type() != Some(expected) {
        return Err(format!("expects {}, got {}", expected.name(), v.value_type()));
    }
    match v {
        Value::Distribution(d) => d.validate().map_err(|e| e.to_string()),
        Value::String(s) if s.len() > MAX_STRING_VALUE_BYTES => {
            Err(format!("string value is {} bytes, over the limit of {MAX_STRING_VALUE_BYTES}", s.len()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::schema::FieldType;
    use crate::{Bucketer, Distribution};

    fn schemas() -> (TargetSchema, MetricSchema) {
        (
            TargetSchema {
                name: "ComputeTask".into(),
                fields: vec![FieldDef::new("user", FieldType::String), FieldDef::new("cluster", FieldType::String)],
                location_field: "cluster".into(),
            },
            MetricSchema {
                name: "/rpc/latency".into(),
                fields: vec![FieldDef::new("code", FieldType::Int64)],
                value_type: ValueType::Scalar(ScalarType::Double),
                kind: MetricKind::Cumulative,
                unit: "ms".into(),
                description: String::new(),
                collection: None,
            },
        )
    }

    fn map(kv: &[(&str, FieldValue)]) -> Vec<(String, FieldValue)> {
        kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn key_puts_location_first_and_checks_fields() {
        let (t, m) = schemas();
        let tv = map(&[("user", FieldValue::String("u".into())), ("cluster", FieldValue::String("c".into()))]);
        let mv = map(&[("code", FieldValue::Int64(200))]);
        let k = series_key("default", &t, &tv, &m, &mv).unwrap();
        assert_eq!(k.target_fields, vec![FieldValue::String("c".into()), FieldValue::String("u".into())]);
        assert_eq!(encoded_series_key("default", &t, &tv, &m, &mv).unwrap(), k.encode());
        assert_eq!(encoded_target("default", &t, &tv).unwrap(), k.target_string().0);
        let mut joined = encoded_target("default", &t, &tv).unwrap();
        append_metric_key(&mut joined, &m, &mv).unwrap();
        assert_eq!(joined, k.encode());
        // Fields in declared order are checked where they are, as those out
        // of order are.
        let mut m2 = m.clone();
        m2.fields.push(FieldDef::new("method", FieldType::String));
        let declared = map(&[("code", FieldValue::Int64(200)), ("method", FieldValue::String("get".into()))]);
        let reversed: Vec<_> = declared.iter().rev().cloned().collect();
        let key_of = |mv: &[(String, FieldValue)]| {
            let mut k = encoded_target("default", &t, &tv).unwrap();
            append_metric_key(&mut k, &m2, mv).map(|()| k)
        };
        assert_eq!(key_of(&declared).unwrap(), encoded_series_key("default", &t, &tv, &m2, &reversed).unwrap());
        assert_eq!(key_of(&declared).unwrap(), key_of(&reversed).unwrap());
        for mv in [
            map(&[("code", FieldValue::String("200".into())), ("method", FieldValue::String("get".into()))]),
            map(&[("method", FieldValue::String("get".into())), ("code", FieldValue::String("200".into()))]),
        ] {
            let e = key_of(&mv).unwrap_err().to_string();
            assert!(e.contains("\"/rpc/latency\" field \"code\": expects int64, got string"), "{e}");
        }
        let long =
            map(&[("code", FieldValue::Int64(1)), ("method", FieldValue::String("x".repeat(MAX_FIELD_BYTES + 1)))]);
        assert!(key_of(&long).unwrap_err().to_string().contains("over the limit"));

        let wrong = map(&[("code", FieldValue::String("200".into()))]);
        let e = series_key("default", &t, &tv, &m, &wrong).unwrap_err().to_string();
        assert!(e.contains("\"/rpc/latency\" field \"code\": expects int64, got string"), "{e}");

        let extra = map(&[("code", FieldValue::Int64(1)), ("zz", FieldValue::Bool(true))]);
        let e = series_key("default", &t, &tv, &m, &extra).unwrap_err().to_string();
        assert!(e.contains("\"zz\": not declared by the schema (its fields are: code)"), "{e}");

        let twice = map(&[("code", FieldValue::Int64(1)), ("code", FieldValue::Int64(2))]);
        assert!(series_key("default", &t, &tv, &m, &twice)
            .unwrap_err()
            .to_string()
            .contains("\"code\": given more than once"));

        let missing = map(&[("user", FieldValue::String("u".into()))]);
        assert!(series_key("default", &t, &missing, &m, &mv).unwrap_err().to_string().contains("\"cluster\": missing"));
    }

    /// A metric schema gains fields without rewriting anything: a series
    /// written before keeps its key, and one written after without the
    /// new field (or with its zero) has that same key.
    #[test]
    fn added_fields_leave_old_keys_as_they_were() {
        let (t, m) = schemas();
        let tv = map(&[("user", FieldValue::String("u".into())), ("cluster", FieldValue::String("c".into()))]);
        let code = map(&[("code", FieldValue::Int64(200))]);
        let before = encoded_series_key("default", &t, &tv, &m, &code).unwrap();

        let mut given = m.clone();
        given.fields.insert(0, FieldDef::new("duplex", FieldType::String));
        given.fields.push(FieldDef::new("retries", FieldType::Int64));
        let grown = m.evolve(&given).unwrap().unwrap();
        // Stored fields keep their place; new ones follow, marked added.
        let names: Vec<_> = grown.fields.iter().map(|f| (f.name.as_str(), f.added)).collect();
        assert_eq!(names, [("code", false), ("duplex", true), ("retries", true)]);
        assert_eq!(grown.evolve(&given).unwrap(), None, "applying the same schema again changes nothing");
        assert_eq!(grown.evolve(&grown).unwrap(), None);

        let with = |extra: &[(&str, FieldValue)]| {
            let mut v = code.clone();
            v.extend(map(extra));
            v
        };
        let key = |v: &[(String, FieldValue)]| {
            let a = encoded_series_key("default", &t, &tv, &grown, v).unwrap();
            assert_eq!(a, series_key("default", &t, &tv, &grown, v).unwrap().encode());
            let mut b = encoded_target("default", &t, &tv).unwrap();
            append_metric_key(&mut b, &grown, v).unwrap();
            assert_eq!(a, b);
            let mut rev = v.to_vec();
            rev.reverse();
            assert_eq!(a, encoded_series_key("default", &t, &tv, &grown, &rev).unwrap());
            a
        };
        assert_eq!(key(&code), before);
        assert_eq!(key(&with(&[("duplex", FieldValue::String(String::new()))])), before);
        assert_eq!(
            key(&with(&[("duplex", FieldValue::String(String::new())), ("retries", FieldValue::Int64(0))])),
            before
        );
        let full = key(&with(&[("duplex", FieldValue::String("full".into()))]));
        assert_ne!(full, before);
        assert_eq!(SeriesKey::decode(&full).unwrap().metric_fields.len(), 2);
        // A zero between set fields stays in the key: positions decide.
        let late = key(&with(&[("retries", FieldValue::Int64(3))]));
        assert_eq!(SeriesKey::decode(&late).unwrap().metric_fields.len(), 3);
        // Fields that were there from the start are still required.
        let e = series_key("default", &t, &tv, &grown, &map(&[])).unwrap_err().to_string();
        assert!(e.contains("\"code\": missing"), "{e}");
    }

    #[test]
    fn schemas_gain_fields_and_nothing_else() {
        let (_, m) = schemas();
        let err = |given: MetricSchema| m.evolve(&given).unwrap_err().to_string();
        let mut renamed = m.clone();
        renamed.fields[0].name = "status".into();
        assert!(err(renamed).contains("field \"code\" cannot be removed or renamed"));
        let mut retyped = m.clone();
        retyped.fields[0].field_type = FieldType::String;
        assert!(err(retyped).contains("field \"code\" is int64 and cannot become string"));
        let mut gauge = m.clone();
        gauge.kind = MetricKind::Gauge;
        assert!(err(gauge).contains("exists as cumulative double, and stays so"));
        let mut described = m.clone();
        described.description = "latency".into();
        assert_eq!(m.evolve(&described).unwrap(), Some(described));
        // There is a limit.
        let mut wide = m.clone();
        wide.fields.extend((0..crate::schema::MAX_FIELDS).map(|i| FieldDef::new(format!("f{i}"), FieldType::String)));
        assert!(m.evolve(&wide).unwrap_err().to_string().contains("over the limit of 1024"));
        // Added fields come last; target schemas have none.
        let mut bad = m.clone();
        bad.fields.insert(0, FieldDef::added("x", FieldType::String));
        assert!(bad.validate().unwrap_err().to_string().contains("added fields come last"));
        let (mut t, _) = schemas();
        t.fields.push(FieldDef::added("x", FieldType::String));
        assert!(t.validate().unwrap_err().to_string().contains("target schemas have no added fields"));
    }

    #[test]
    fn points_are_checked_against_kind_and_type() {
        let (_, m) = schemas();
        let ok = Point { start_time: Some(0), end_time: 10, value: Value::Double(1.0) };
        point(&m, &"s", 0, &ok).unwrap();
        let e = point(&m, &"s", 3, &Point { value: Value::Int64(1), ..ok.clone() }).unwrap_err().to_string();
        assert_eq!(e, "metric \"/rpc/latency\" point 3 of series s: expects double, got int64");
        let e = point(&m, &"s", 0, &Point { start_time: Some(11), ..ok.clone() }).unwrap_err().to_string();
        assert!(e.contains("start time 11 is after end time 10"));
        let mut g = m.clone();
        g.kind = MetricKind::Gauge;
        assert!(point(&g, &"s", 0, &ok).unwrap_err().to_string().contains("gauge points have no start time"));
        let mut d = m.clone();
        d.value_type = ValueType::Scalar(ScalarType::Distribution);
        let mut dist = Distribution::from_values(Bucketer::Explicit { bounds: vec![1.0] }, &[0.5]);
        dist.count = 7;
        let e =
            point(&d, &"s", 0, &Point { value: Value::Distribution(Box::new(dist)), ..ok }).unwrap_err().to_string();
        assert!(e.contains("count 7 does not equal the sum of bucket counts"), "{e}");
    }
}
