//! Series keys and their order-preserving byte encoding.
//!
//! Each component is a type tag followed by its payload:
//! strings (`0x02`) with `0x00` escaped as `0x00 0xFF` and a `0x00`
//! terminator; int64 (`0x03`) as 8 big-endian bytes with the sign bit
//! flipped; bool (`0x04`) as one byte. A `0x01` byte closes the target part
//! of a series key. Byte order therefore equals component order, and a
//! shorter key sorts before every key it is a prefix of.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::value::FieldValue;

const TAG_END_TARGET: u8 = 0x01;
const TAG_STRING: u8 = 0x02;
const TAG_INT64: u8 = 0x03;
const TAG_BOOL: u8 = 0x04;

fn encode_str(out: &mut Vec<u8>, s: &str) {
    out.push(TAG_STRING);
    let bytes = s.as_bytes();
    if !bytes.contains(&0) {
        // The usual case: nothing to escape.
        out.extend_from_slice(bytes);
    } else {
        for &b in bytes {
            out.push(b);
            if b == 0 {
                out.push(0xFF);
            }
        }
    }
    out.push(0);
}

/// Appends one field value's order-preserving encoding to `out`.
pub fn encode_field(out: &mut Vec<u8>, v: &FieldValue) {
    match v {
        FieldValue::String(s) => encode_str(out, s),
        FieldValue::Int64(i) => {
            out.push(TAG_INT64);
            out.extend_from_slice(&((*i as u64) ^ (1 << 63)).to_be_bytes());
        }
        FieldValue::Bool(b) => {
            out.push(TAG_BOOL);
            out.push(u8::from(*b));
        }
    }
}

/// Reads components back from an encoded key.
pub struct KeyDecoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> KeyDecoder<'a> {
    /// A decoder at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Consumes the end-of-target marker if it is next.
    pub fn end_of_target(&mut self) -> bool {
        if self.peek() == Some(TAG_END_TARGET) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Decodes the next field value.
    pub fn field(&mut self) -> Result<FieldValue> {
        let err = |m: &str, pos: usize| Error::MalformedKey(format!("{m} at byte {pos}"));
        let tag = self.peek().ok_or_else(|| err("unexpected end", self.pos))?;
        self.pos += 1;
        match tag {
            TAG_STRING => {
                let rest = self.buf.get(self.pos..).unwrap_or_default();
                let end =
                    rest.iter().position(|&b| b == 0).ok_or_else(|| err("unterminated string", self.buf.len()))?;
                if rest.get(end + 1) != Some(&0xFF) {
                    // The usual case: nothing escaped, one copy.
                    let s =
                        std::str::from_utf8(&rest[..end]).map_err(|_| err("string is not UTF-8", self.pos + end))?;
                    self.pos += end + 1;
                    return Ok(FieldValue::String(s.to_owned()));
                }
                let mut bytes = Vec::new();
                loop {
                    let b = *self.buf.get(self.pos).ok_or_else(|| err("unterminated string", self.pos))?;
                    self.pos += 1;
                    if b != 0 {
                        bytes.push(b);
                        continue;
                    }
                    if self.buf.get(self.pos) == Some(&0xFF) {
                        self.pos += 1;
                        bytes.push(0);
                    } else {
                        break;
                    }
                }
                String::from_utf8(bytes).map(FieldValue::String).map_err(|_| err("string is not UTF-8", self.pos))
            }
            TAG_INT64 => {
                let raw: [u8; 8] = self
                    .buf
                    .get(self.pos..self.pos + 8)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| err("truncated int64", self.pos))?;
                self.pos += 8;
                Ok(FieldValue::Int64((u64::from_be_bytes(raw) ^ (1 << 63)) as i64))
            }
            TAG_BOOL => {
                let b = *self.buf.get(self.pos).ok_or_else(|| err("truncated bool", self.pos))?;
                self.pos += 1;
                match b {
                    0 => Ok(FieldValue::Bool(false)),
                    1 => Ok(FieldValue::Bool(true)),
                    _ => Err(err("bad bool byte", self.pos - 1)),
                }
            }
            _ => Err(err(&format!("unknown tag {tag:#04x}"), self.pos - 1)),
        }
    }

    /// Decodes the next component as a string.
    pub fn string(&mut self) -> Result<String> {
        match self.field()? {
            FieldValue::String(s) => Ok(s),
            other => Err(Error::MalformedKey(format!("expected a string, found {other}"))),
        }
    }
}

/// Encodes a series key from its parts (target fields in target-string
/// order), exactly as [`SeriesKey::encode`] does.
pub fn encode_parts<'a>(
    out: &mut Vec<u8>,
    tenant: &str,
    target_schema: &str,
    target_fields: impl Iterator<Item = &'a FieldValue>,
    metric: &str,
    metric_fields: impl Iterator<Item = &'a FieldValue>,
) {
    encode_target_parts(out, tenant, target_schema, target_fields);
    encode_metric_parts(out, metric, metric_fields);
}

/// Appends the metric part of a key (what follows the target string):
/// with [`encode_target_parts`] before it, the same bytes as
/// [`encode_parts`].
pub fn encode_metric_parts<'a>(out: &mut Vec<u8>, metric: &str, metric_fields: impl Iterator<Item = &'a FieldValue>) {
    out.push(TAG_END_TARGET);
    encode_str(out, metric);
    for f in metric_fields {
        encode_field(out, f);
    }
}

/// Encodes a target string from its parts (fields in target-string order),
/// exactly as [`SeriesKey::target_string`] does: the prefix of every key of
/// the target's series.
pub fn encode_target_parts<'a>(
    out: &mut Vec<u8>,
    tenant: &str,
    target_schema: &str,
    target_fields: impl Iterator<Item = &'a FieldValue>,
) {
    encode_str(out, tenant);
    encode_str(out, target_schema);
    for f in target_fields {
        encode_field(out, f);
    }
}

/// Decodes a sequence of field values until the end of `buf`.
pub fn decode_fields(buf: &[u8]) -> Result<Vec<FieldValue>> {
    let mut d = KeyDecoder::new(buf);
    let mut out = Vec::new();
    while !d.is_empty() {
        out.push(d.field()?);
    }
    Ok(out)
}

/// The target part of a series key, encoded: tenant, target schema name, then
/// the target's field values with the location field first. Leaves are
/// sharded by lexicographic ranges of these bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetString(pub Vec<u8>);

/// The identity of one time series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    /// Tenant that owns the series.
    pub tenant: String,
    /// Target schema name.
    pub target_schema: String,
    /// Target field values in target-string order: the location field first,
    /// then the other fields in declaration order
    /// (see [`crate::TargetSchema::key_order`]).
    pub target_fields: Vec<FieldValue>,
    /// Metric name.
    pub metric: String,
    /// Metric field values in declaration order.
    pub metric_fields: Vec<FieldValue>,
}

impl SeriesKey {
    /// The encoded target string.
    pub fn target_string(&self) -> TargetString {
        let mut out = Vec::with_capacity(64);
        self.encode_target(&mut out);
        TargetString(out)
    }

    fn encode_target(&self, out: &mut Vec<u8>) {
        encode_str(out, &self.tenant);
        encode_str(out, &self.target_schema);
        for f in &self.target_fields {
            encode_field(out, f);
        }
    }

    /// The full order-preserving encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        encode_parts(
            &mut out,
            &self.tenant,
            &self.target_schema,
            self.target_fields.iter(),
            &self.metric,
            self.metric_fields.iter(),
        );
        out
    }

    /// Decodes [`SeriesKey::encode`]'s output.
    pub fn decode(buf: &[u8]) -> Result<SeriesKey> {
        let mut d = KeyDecoder::new(buf);
        let tenant = d.string()?;
        let target_schema = d.string()?;
        let mut target_fields = Vec::new();
        while !d.end_of_target() {
            if d.is_empty() {
                return Err(Error::MalformedKey("missing end-of-target marker".into()));
            }
            target_fields.push(d.field()?);
        }
        let metric = d.string()?;
        let mut metric_fields = Vec::new();
        while !d.is_empty() {
            metric_fields.push(d.field()?);
        }
        Ok(SeriesKey { tenant, target_schema, target_fields, metric, metric_fields })
    }
}

impl std::fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let join = |v: &[FieldValue]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        write!(
            f,
            "{}{{{}}}::{}{{{}}}",
            self.target_schema,
            join(&self.target_fields),
            self.metric,
            join(&self.metric_fields)
        )?;
        if self.tenant != crate::DEFAULT_TENANT {
            write!(f, " (tenant {:?})", self.tenant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_field() -> impl Strategy<Value = FieldValue> {
        prop_oneof![
            any::<String>().prop_map(FieldValue::String),
            "[a\\x00\\xff]{0,6}".prop_map(FieldValue::String),
            any::<i64>().prop_map(FieldValue::Int64),
            any::<bool>().prop_map(FieldValue::Bool),
        ]
    }

    fn arb_key() -> impl Strategy<Value = SeriesKey> {
        (
            "[a-c]{0,3}",
            "[A-C]{1,3}",
            prop::collection::vec(arb_field(), 0..4),
            "/[a-c]{1,3}",
            prop::collection::vec(arb_field(), 0..3),
        )
            .prop_map(|(tenant, target_schema, target_fields, metric, metric_fields)| SeriesKey {
                tenant,
                target_schema,
                target_fields,
                metric,
                metric_fields,
            })
    }

    proptest! {
        #[test]
        fn series_key_round_trips(k in arb_key()) {
            prop_assert_eq!(SeriesKey::decode(&k.encode()).unwrap(), k);
        }

        #[test]
        fn field_encoding_preserves_order(a in prop::collection::vec(arb_field(), 0..4), b in prop::collection::vec(arb_field(), 0..4)) {
            // Same-typed positions compare like the values; the tag orders mixed types.
            let enc = |v: &[FieldValue]| { let mut o = Vec::new(); for f in v { encode_field(&mut o, f); } o };
            let same_types = a.iter().zip(&b).all(|(x, y)| x.field_type() == y.field_type());
            if same_types {
                prop_assert_eq!(enc(&a).cmp(&enc(&b)), a.cmp(&b));
            }
            prop_assert_eq!(decode_fields(&enc(&a)).unwrap(), a);
        }

        #[test]
        fn target_strings_order_like_targets(a in arb_key(), b in arb_key()) {
            let ta = (a.tenant.clone(), a.target_schema.clone(), a.target_fields.clone());
            let tb = (b.tenant.clone(), b.target_schema.clone(), b.target_fields.clone());
            let same_types = a.target_fields.iter().zip(&b.target_fields).all(|(x, y)| x.field_type() == y.field_type());
            if same_types {
                prop_assert_eq!(a.target_string().cmp(&b.target_string()), ta.cmp(&tb));
            }
            // A series key starts with its target string.
            prop_assert!(a.encode().starts_with(&a.target_string().0));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = SeriesKey::decode(&bytes);
            let _ = decode_fields(&bytes);
        }
    }

    #[test]
    fn edge_values_order() {
        let enc = |v: FieldValue| {
            let mut o = Vec::new();
            encode_field(&mut o, &v);
            o
        };
        assert!(enc(FieldValue::Int64(i64::MIN)) < enc(FieldValue::Int64(-1)));
        assert!(enc(FieldValue::Int64(-1)) < enc(FieldValue::Int64(0)));
        assert!(enc(FieldValue::Int64(0)) < enc(FieldValue::Int64(i64::MAX)));
        assert!(enc(FieldValue::String("a".into())) < enc(FieldValue::String("a\0".into())));
        assert!(enc(FieldValue::String("a\0".into())) < enc(FieldValue::String("a\u{1}".into())));
        assert!(enc(FieldValue::String("".into())) < enc(FieldValue::String("\0".into())));
    }
}
