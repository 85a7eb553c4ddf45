//! Field values, point values and points.

use serde::{Deserialize, Serialize};

use crate::distribution::Distribution;
use crate::schema::{FieldType, ScalarType, ValueType};
use crate::Timestamp;

/// The value of a key field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// A boolean field.
    Bool(bool),
    /// An int64 field.
    Int64(i64),
    /// A string field.
    String(String),
}

impl FieldValue {
    /// The type of this value.
    pub fn field_type(&self) -> FieldType {
        match self {
            FieldValue::String(_) => FieldType::String,
            FieldValue::Int64(_) => FieldType::Int64,
            FieldValue::Bool(_) => FieldType::Bool,
        }
    }

    /// Parses `text` as a value of `ty` (used for matchers and CLI input).
    pub fn parse(ty: FieldType, text: &str) -> Option<FieldValue> {
        match ty {
            FieldType::String => Some(FieldValue::String(text.to_owned())),
            FieldType::Int64 => text.trim().parse().ok().map(FieldValue::Int64),
            FieldType::Bool => match text.trim() {
                "true" => Some(FieldValue::Bool(true)),
                "false" => Some(FieldValue::Bool(false)),
                _ => None,
            },
        }
    }

    /// The value as text, without quotes (what regex matchers see).
    pub fn to_text(&self) -> String {
        match self {
            FieldValue::String(s) => s.clone(),
            FieldValue::Int64(i) => i.to_string(),
            FieldValue::Bool(b) => b.to_string(),
        }
    }
}

impl std::fmt::Display for FieldValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldValue::String(s) => write!(f, "{s:?}"),
            FieldValue::Int64(i) => write!(f, "{i}"),
            FieldValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// The value of one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// Boolean.
    Bool(bool),
    /// Signed 64-bit integer.
    Int64(i64),
    /// Double.
    Double(f64),
    /// String.
    String(String),
    /// Distribution.
    Distribution(Box<Distribution>),
    /// Tuple of scalars.
    Tuple(Vec<Value>),
}

impl Value {
    /// The scalar type, or `None` for a tuple.
    pub fn scalar_type(&self) -> Option<ScalarType> {
        Some(match self {
            Value::Bool(_) => ScalarType::Bool,
            Value::Int64(_) => ScalarType::Int64,
            Value::Double(_) => ScalarType::Double,
            Value::String(_) => ScalarType::String,
            Value::Distribution(_) => ScalarType::Distribution,
            Value::Tuple(_) => return None,
        })
    }

    /// The type's name as users write it: `int64`, `distribution`, `tuple`, …
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Bool(_) => "bool",
            Value::Int64(_) => "int64",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::Distribution(_) => "distribution",
            Value::Tuple(_) => "tuple",
        }
    }

    /// The full value type of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Tuple(items) => {
                ValueType::Tuple(items.iter().map(|v| v.scalar_type().unwrap_or(ScalarType::String)).collect())
            }
            v => ValueType::Scalar(v.scalar_type().unwrap_or(ScalarType::String)),
        }
    }

    /// Bit-exact equality: NaN equals NaN with the same payload and -0.0 is
    /// not 0.0. This is what "the same point written twice" means.
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Double(a), Value::Double(b)) => a.to_bits() == b.to_bits(),
            (Value::Tuple(a), Value::Tuple(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y)),
            (Value::Distribution(a), Value::Distribution(b)) => a.same_as(b),
            (a, b) => a == b,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int64(i) => write!(f, "{i}"),
            Value::Double(d) => write!(f, "{d}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Distribution(d) => {
                write!(f, "distribution(count={}, mean={}, buckets={:?})", d.count, d.mean, d.bucket_counts)
            }
            Value::Tuple(items) => {
                f.write_str("(")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// One point of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Start of the accumulation interval (cumulative and delta kinds).
    pub start_time: Option<Timestamp>,
    /// The point's time.
    pub end_time: Timestamp,
    /// The value.
    pub value: Value,
}

impl Point {
    /// A gauge point.
    pub fn gauge(end_time: Timestamp, value: Value) -> Self {
        Self { start_time: None, end_time, value }
    }
}
