//! PromQL's values: label sets, series, and the four result types.

use std::fmt;
use std::sync::Arc;

/// The label holding a series' metric name.
pub const METRIC_NAME: &str = "__name__";
pub use danaus_query::prom::{is_stale, STALE_NAN_BITS};

/// The staleness marker as a value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// A label set, sorted by name, names unique, no empty values (an empty
/// value is the same as an absent label).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Labels(Vec<(String, String)>);

/// Serialized as its pairs; read back through [`Labels::new`], so a
/// stored label set keeps the invariants (sorted, unique, no empty value).
impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&self.0, s)
    }
}

impl<'de> serde::Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Labels::new(<Vec<(String, String)>>::deserialize(d)?))
    }
}

impl Labels {
    /// A label set from pairs in any order; empty values are dropped and a
    /// later duplicate name wins.
    pub fn new(mut pairs: Vec<(String, String)>) -> Self {
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                std::mem::swap(later, earlier);
                true
            } else {
                false
            }
        });
        Self(pairs)
    }

    /// The empty label set.
    pub fn empty() -> Self {
        Self(Vec::new())
    }

    /// The pairs, sorted by name.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The value of `name` ("" when absent, as in Prometheus).
    pub fn get(&self, name: &str) -> &str {
        self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)).map_or("", |i| self.0[i].1.as_str())
    }

    /// Whether the set has no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The metric name, if any.
    pub fn name(&self) -> Option<&str> {
        Some(self.get(METRIC_NAME)).filter(|n| !n.is_empty())
    }

    /// The same set without the metric name.
    pub fn without_name(&self) -> Labels {
        Labels(self.0.iter().filter(|(n, _)| n != METRIC_NAME).cloned().collect())
    }

    /// Sets `name` to `value`, removing it when `value` is empty.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = value.to_owned(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (name.to_owned(), value.to_owned())),
        }
    }

    /// Only the labels named in `names`.
    pub fn keep(&self, names: &[String]) -> Labels {
        Labels(self.0.iter().filter(|(n, _)| names.iter().any(|k| k == n)).cloned().collect())
    }

    /// All labels but those named in `names` (and, when `drop_name`, the
    /// metric name).
    pub fn without(&self, names: &[String], drop_name: bool) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(n, _)| !(names.iter().any(|k| k == n) || (drop_name && n == METRIC_NAME)))
                .cloned()
                .collect(),
        )
    }
}

impl fmt::Display for Labels {
    /// `name{a="b", c="d"}`, as Prometheus prints series.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.name() {
            f.write_str(n)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for (k, v) in self.0.iter().filter(|(k, _)| k != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// A series and its samples (`(ms, value)`, oldest first).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels.
    pub labels: Arc<Labels>,
    /// Its samples.
    pub points: Vec<(i64, f64)>,
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its labels.
    pub labels: Arc<Labels>,
    /// Its value.
    pub value: f64,
}

/// What a query evaluates to.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number at a time (ms).
    Scalar(i64, f64),
    /// A string at a time (ms).
    String(i64, String),
    /// An instant vector at a time (ms).
    Vector(i64, Vec<Sample>),
    /// Series of samples: a range query's answer, or a range vector.
    Matrix(Vec<Series>),
}

impl Value {
    /// Prometheus' name of the type (`resultType` in the HTTP API).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(..) => "scalar",
            Value::String(..) => "string",
            Value::Vector(..) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// Prometheus' text for a float (`strconv.FormatFloat(v, 'f', -1, 64)`
/// with `+Inf`, `-Inf` and `NaN`): what the HTTP API and `count_values`
/// write.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        let mut s = String::new();
        push_plain_float(&mut s, v);
        s
    }
}

/// Appends finite `v` in its shortest round-trip form without an exponent:
/// what Rust's `{}` writes and Prometheus' `FormatFloat(v, 'f', -1, 64)`,
/// from `ryu`'s shortest digits (several times faster than `{}`; answers
/// hold millions of values). Integers below 10^15 take `itoa`.
pub fn push_plain_float(out: &mut String, v: f64) {
    if v == v.trunc() && v.abs() < 1e15 {
        if v == 0.0 && v.is_sign_negative() {
            out.push_str("-0");
        } else {
            out.push_str(itoa::Buffer::new().format(v as i64));
        }
        return;
    }
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(v);
    let Some((mantissa, exp)) = s.split_once('e') else {
        out.push_str(s.strip_suffix(".0").unwrap_or(s));
        return;
    };
    // `[-]d[.ddd]e[-]x`: move the point `x` places.
    let Ok(exp) = exp.parse::<i64>() else {
        out.push_str(s);
        return;
    };
    let mantissa = match mantissa.strip_prefix('-') {
        Some(m) => {
            out.push('-');
            m
        }
        None => mantissa,
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = int.len() + frac.len();
    let point = int.len() as i64 + exp;
    let digit_at = |i: usize| if i < int.len() { &int[i..=i] } else { &frac[i - int.len()..=i - int.len()] };
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
        (0..digits).for_each(|i| out.push_str(digit_at(i)));
    } else if point as usize >= digits {
        (0..digits).for_each(|i| out.push_str(digit_at(i)));
        out.extend(std::iter::repeat_n('0', point as usize - digits));
    } else {
        for i in 0..digits {
            if i == point as usize {
                out.push('.');
            }
            out.push_str(digit_at(i));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn plain_floats_are_what_display_writes(v in prop_oneof![
            any::<f64>(), -1e20f64..1e20, -1.0f64..1.0, (-1_000_000i64..1_000_000).prop_map(|m| m as f64 / 1000.0),
            (-30i32..30).prop_map(|e| 10f64.powi(e)), (0u32..64).prop_map(|e| 2f64.powi(e as i32) - 1.0),
        ]) {
            prop_assume!(v.is_finite());
            let mut s = String::new();
            push_plain_float(&mut s, v);
            prop_assert_eq!(s, format!("{v}"));
        }
    }

    #[test]
    fn plain_float_edges() {
        for v in [
            0.0,
            -0.0,
            1e15,
            1e16,
            1e21,
            1.5e300,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            1e-7,
            0.1,
            100.0,
            -123.456,
        ] {
            let mut s = String::new();
            push_plain_float(&mut s, v);
            assert_eq!(s, format!("{v}"));
        }
    }

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect())
    }

    #[test]
    fn labels_sort_drop_empty_values_and_print_like_prometheus() {
        let x = l(&[("job", "a"), ("__name__", "up"), ("env", ""), ("instance", "h:1")]);
        assert_eq!(x.get("env"), "");
        assert_eq!(x.name(), Some("up"));
        assert_eq!(x.to_string(), r#"up{instance="h:1", job="a"}"#);
        let mut y = x.without_name();
        y.set("job", "");
        y.set("zone", "z");
        assert_eq!(y.to_string(), r#"{instance="h:1", zone="z"}"#);
    }

    #[test]
    fn stale_markers_are_told_apart_from_other_nans() {
        assert!(is_stale(stale_nan()));
        assert!(!is_stale(f64::NAN));
        assert_eq!(format_float(1.5), "1.5");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(1e21), "1000000000000000000000");
    }
}
