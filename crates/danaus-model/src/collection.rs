//! Collection aggregation: what a metric schema says about folding incoming
//! deltas into fewer stored series.
//!
//! A delta metric may name fields to drop. Every incoming series then
//! contributes to one *output series*: the same key with the dropped fields
//! blanked (empty string, 0, false). Each point goes to the *bucket* of the
//! admission period that contains its end time, `(end - period, end]` rounded
//! to multiples of `period`; the leaf sums a bucket's deltas and stores one
//! point per bucket once the bucket's admission window has passed. Deltas for
//! a bucket whose window has passed are late: they are refused, never merged
//! into a later bucket.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::{MetricSchema, TargetSchema};
use crate::value::{FieldValue, Value};

/// Field values by name.
pub type Fields = Vec<(String, FieldValue)>;

/// Per-metric collection aggregation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionAggregation {
    /// Fields (target or metric) whose values are blanked in the output
    /// series. The location field cannot be dropped.
    #[serde(default)]
    pub drop_fields: Vec<String>,
    /// Width of an output bucket, in ns (YAML: a duration such as `10s`).
    #[serde(with = "duration_text")]
    pub period: i64,
    /// How long after a bucket ends deltas for it are still admitted, in ns
    /// (YAML: a duration such as `30s`).
    #[serde(with = "duration_text")]
    pub admission_window: i64,
}

/// Longest admission window accepted: a day. Open buckets live in memory.
pub const MAX_ADMISSION_WINDOW_NS: i64 = 86_400 * 1_000_000_000;

impl CollectionAggregation {
    /// Checks the durations; `schema` names the metric in errors.
    pub fn validate(&self, schema: &str) -> Result<()> {
        let bad = |reason: String| Error::InvalidSchema { schema: schema.into(), reason };
        if self.period <= 0 {
            return Err(bad("collection aggregation needs a positive period (e.g. 10s)".into()));
        }
        if self.admission_window <= 0 || self.admission_window > MAX_ADMISSION_WINDOW_NS {
            return Err(bad("collection aggregation needs an admission window between 1ns and 1d (e.g. 30s)".into()));
        }
        for (i, f) in self.drop_fields.iter().enumerate() {
            if self.drop_fields[..i].contains(f) {
                return Err(bad(format!("collection aggregation drops field {f:?} twice")));
            }
        }
        Ok(())
    }

    /// End of the bucket holding a point that ends at `end_time`: the
    /// smallest multiple of `period` that is not before it.
    pub fn bucket_end(&self, end_time: i64) -> i64 {
        let r = end_time.rem_euclid(self.period);
        if r == 0 {
            end_time
        } else {
            end_time.saturating_add(self.period - r)
        }
    }

    /// When a bucket ending at `bucket_end` stops admitting deltas.
    pub fn closes_at(&self, bucket_end: i64) -> i64 {
        bucket_end.saturating_add(self.admission_window)
    }

    /// The output series' field values: `target` and `metric` with every
    /// dropped field blanked. Errors when a dropped field is the location
    /// field or belongs to neither schema.
    pub fn output_fields(
        &self,
        ts: &TargetSchema,
        ms: &MetricSchema,
        target: &[(String, FieldValue)],
        metric: &[(String, FieldValue)],
    ) -> Result<(Fields, Fields)> {
        for f in &self.drop_fields {
            if *f == ts.location_field {
                return Err(Error::InvalidSchema {
                    schema: ms.name.clone(),
                    reason: format!(
                        "collection aggregation cannot drop {f:?}: it is the location field of target schema {}",
                        ts.name
                    ),
                });
            }
            if ts.field(f).is_none() && ms.field(f).is_none() {
                return Err(Error::InvalidSchema {
                    schema: ms.name.clone(),
                    reason: format!(
                        "collection aggregation drops field {f:?}, which neither target schema {} nor metric {} has",
                        ts.name, ms.name
                    ),
                });
            }
        }
        Ok((self.blank(target), self.blank(metric)))
    }

    /// Only the target part of [`output_fields`](Self::output_fields): what a
    /// router needs to find the output series' range.
    pub fn output_target(&self, target: &[(String, FieldValue)]) -> Vec<(String, FieldValue)> {
        self.blank(target)
    }

    fn blank(&self, values: &[(String, FieldValue)]) -> Vec<(String, FieldValue)> {
        values
            .iter()
            .map(|(k, v)| {
                if self.drop_fields.iter().any(|d| d == k) {
                    (k.clone(), blank_value(v))
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect()
    }
}

fn blank_value(v: &FieldValue) -> FieldValue {
    match v {
        FieldValue::String(_) => FieldValue::String(String::new()),
        FieldValue::Int64(_) => FieldValue::Int64(0),
        FieldValue::Bool(_) => FieldValue::Bool(false),
    }
}

/// Adds delta value `b` to `a`: int64 wraps never (checked), doubles add,
/// distributions merge, tuples add element-wise.
pub fn add_delta(a: &Value, b: &Value) -> std::result::Result<Value, String> {
    Ok(match (a, b) {
        (Value::Int64(x), Value::Int64(y)) => {
            Value::Int64(x.checked_add(*y).ok_or_else(|| format!("int64 sum overflows ({x} + {y})"))?)
        }
        (Value::Double(x), Value::Double(y)) => Value::Double(x + y),
        (Value::Distribution(x), Value::Distribution(y)) => {
            Value::Distribution(Box::new(x.merge(y).map_err(|e| e.to_string())?))
        }
        (Value::Tuple(x), Value::Tuple(y)) if x.len() == y.len() => {
            Value::Tuple(x.iter().zip(y).map(|(p, q)| add_delta(p, q)).collect::<std::result::Result<_, _>>()?)
        }
        (x, y) => return Err(format!("cannot add {} to {}", y.type_name(), x.type_name())),
    })
}

mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ns: &i64, s: S) -> Result<S::Ok, S::Error> {
        if *ns > 0 {
            s.serialize_str(&crate::time::format_duration_ns(*ns))
        } else {
            s.serialize_i64(*ns)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            Str(String),
            Ns(i64),
        }
        match Text::deserialize(d)? {
            Text::Ns(n) => Ok(n),
            Text::Str(s) => crate::time::parse_duration_ns(&s).ok_or_else(|| {
                serde::de::Error::custom(format!("{s:?} is not a duration (use e.g. 250ms, 10s, 5m, 1h)"))
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::schema::{FieldDef, FieldType, MetricKind, ScalarType, ValueType};

    const S: i64 = 1_000_000_000;

    fn agg(drop: &[&str]) -> CollectionAggregation {
        CollectionAggregation {
            drop_fields: drop.iter().map(|s| s.to_string()).collect(),
            period: 10 * S,
            admission_window: 30 * S,
        }
    }

    #[test]
    fn buckets_are_right_closed() {
        let a = agg(&[]);
        assert_eq!(a.bucket_end(10 * S), 10 * S);
        assert_eq!(a.bucket_end(10 * S + 1), 20 * S);
        assert_eq!(a.bucket_end(-1), 0);
        assert_eq!(a.closes_at(20 * S), 50 * S);
    }

    #[test]
    fn blanks_dropped_fields_and_names_bad_ones() {
        let ts = TargetSchema {
            name: "Task".into(),
            fields: vec![FieldDef::new("cluster", FieldType::String), FieldDef::new("task", FieldType::Int64)],
            location_field: "cluster".into(),
        };
        let ms = MetricSchema {
            name: "/rpc/count".into(),
            fields: vec![FieldDef::new("method", FieldType::String)],
            value_type: ValueType::Scalar(ScalarType::Int64),
            kind: MetricKind::Delta,
            unit: String::new(),
            description: String::new(),
            collection: None,
        };
        let t = vec![("cluster".to_string(), FieldValue::String("c".into())), ("task".into(), FieldValue::Int64(7))];
        let m = vec![("method".to_string(), FieldValue::String("Get".into()))];
        let (ot, om) = agg(&["task"]).output_fields(&ts, &ms, &t, &m).unwrap();
        assert_eq!(ot[1].1, FieldValue::Int64(0));
        assert_eq!(ot[0].1, FieldValue::String("c".into()));
        assert_eq!(om, m);
        let e = agg(&["cluster"]).output_fields(&ts, &ms, &t, &m).unwrap_err().to_string();
        assert!(e.contains("location field"), "{e}");
        let e = agg(&["nope"]).output_fields(&ts, &ms, &t, &m).unwrap_err().to_string();
        assert!(e.contains("neither target schema Task nor metric /rpc/count"), "{e}");
    }

    #[test]
    fn durations_read_as_text_or_ns() {
        let a: CollectionAggregation =
            serde_json::from_str(r#"{"drop_fields":["task"],"period":"10s","admission_window":30000000000}"#).unwrap();
        assert_eq!(a, agg(&["task"]));
        let back: CollectionAggregation = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        let e = serde_json::from_str::<CollectionAggregation>(r#"{"period":"ten","admission_window":"1s"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a duration"), "{e}");
        assert!(CollectionAggregation { period: 0, ..agg(&[]) }.validate("m").is_err());
        assert!(agg(&["a", "a"]).validate("m").is_err());
    }

    #[test]
    fn adds_deltas() {
        assert_eq!(add_delta(&Value::Int64(2), &Value::Int64(3)).unwrap(), Value::Int64(5));
        assert!(add_delta(&Value::Int64(i64::MAX), &Value::Int64(1)).is_err());
        assert_eq!(
            add_delta(
                &Value::Tuple(vec![Value::Double(1.5), Value::Int64(1)]),
                &Value::Tuple(vec![Value::Double(1.0), Value::Int64(2)])
            )
            .unwrap(),
            Value::Tuple(vec![Value::Double(2.5), Value::Int64(3)])
        );
        assert!(add_delta(&Value::Int64(1), &Value::Double(1.0)).is_err());
    }
}
