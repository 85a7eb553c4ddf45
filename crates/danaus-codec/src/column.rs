//! Value columns: one encoder per scalar, a tuple as one column per element,
//! and the start-time column of cumulative and delta points.

use danaus_model::{ScalarType, Value, ValueType};

use crate::bits::{BitReader, BitWriter};
use crate::boolean::{BoolDecoder, BoolEncoder};
use crate::dist::{DistDecoder, DistEncoder};
use crate::double::{DoubleDecoder, DoubleEncoder};
use crate::error::{Error, Result};
use crate::int::{IntDecoder, IntEncoder};
use crate::string::{StringDecoder, StringEncoder};
use crate::varint::put_uvarint;

/// Encoder for one scalar column.
#[derive(Debug, Clone)]
pub enum ScalarEncoder {
    /// Bools.
    Bool(BoolEncoder),
    /// Int64s.
    Int(IntEncoder),
    /// Doubles.
    Double(DoubleEncoder),
    /// Strings (boxed: rare, and large).
    Str(Box<StringEncoder>),
    /// Distributions (boxed: rare, and large).
    Dist(Box<DistEncoder>),
}

impl ScalarEncoder {
    /// An empty encoder for `t`.
    pub fn new(t: ScalarType) -> Self {
        match t {
            ScalarType::Bool => ScalarEncoder::Bool(BoolEncoder::default()),
            ScalarType::Int64 => ScalarEncoder::Int(IntEncoder::new()),
            ScalarType::Double => ScalarEncoder::Double(DoubleEncoder::default()),
            ScalarType::String => ScalarEncoder::Str(Box::default()),
            ScalarType::Distribution => ScalarEncoder::Dist(Box::default()),
        }
    }

    /// Appends a value of the column's type.
    #[inline]
    pub fn push(&mut self, v: &Value) -> Result<()> {
        match (self, v) {
            (ScalarEncoder::Bool(e), Value::Bool(b)) => e.push(*b),
            (ScalarEncoder::Int(e), Value::Int64(i)) => e.push(*i),
            (ScalarEncoder::Double(e), Value::Double(d)) => e.push(*d),
            (ScalarEncoder::Str(e), Value::String(s)) => e.push(s),
            (ScalarEncoder::Dist(e), Value::Distribution(d)) => e.push(d),
            (me, v) => {
                return Err(Error::TypeMismatch { expected: me.scalar_type().name().into(), value: v.to_string() })
            }
        }
        Ok(())
    }

    fn scalar_type(&self) -> ScalarType {
        match self {
            ScalarEncoder::Bool(_) => ScalarType::Bool,
            ScalarEncoder::Int(_) => ScalarType::Int64,
            ScalarEncoder::Double(_) => ScalarType::Double,
            ScalarEncoder::Str(_) => ScalarType::String,
            ScalarEncoder::Dist(_) => ScalarType::Distribution,
        }
    }

    /// Appends the column's section (without a length prefix).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            ScalarEncoder::Bool(e) => e.write_to(out),
            ScalarEncoder::Int(e) => {
                out.push(0);
                e.bits().copy_to(out);
            }
            ScalarEncoder::Double(e) => e.write_to(out),
            ScalarEncoder::Str(e) => e.write_to(out),
            ScalarEncoder::Dist(e) => e.write_to(out),
        }
    }

    /// Appends the column's section in its packed form (sealed chunks):
    /// integer columns and decimal doubles get [`crate::packed`] coding.
    pub fn write_packed(&self, out: &mut Vec<u8>) {
        match self {
            ScalarEncoder::Int(e) => {
                out.push(1);
                crate::packed::pack(out, &e.values());
            }
            ScalarEncoder::Double(e) => e.write_packed(out),
            other => other.write_to(out),
        }
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        match self {
            ScalarEncoder::Bool(e) => e.memory_bytes(),
            ScalarEncoder::Int(e) => e.memory_bytes(),
            ScalarEncoder::Double(e) => e.memory_bytes(),
            ScalarEncoder::Str(e) => std::mem::size_of::<StringEncoder>() + e.memory_bytes(),
            ScalarEncoder::Dist(e) => std::mem::size_of::<DistEncoder>() + e.memory_bytes(),
        }
    }
}

/// Decoder for one scalar column.
#[derive(Debug, Clone)]
pub enum ScalarDecoder<'a> {
    /// Bools.
    Bool(BoolDecoder<'a>),
    /// Int64s.
    Int(IntDecoder<'a>),
    /// Packed int64s.
    PackedInt(crate::packed::PackedDecoder<'a>),
    /// Doubles.
    Double(DoubleDecoder<'a>),
    /// Strings.
    Str(StringDecoder<'a>),
    /// Distributions.
    Dist(DistDecoder<'a>),
}

impl<'a> ScalarDecoder<'a> {
    /// A decoder for a section of type `t`.
    pub fn new(t: ScalarType, data: &'a [u8]) -> Result<Self> {
        Ok(match t {
            ScalarType::Bool => ScalarDecoder::Bool(BoolDecoder::new(data)?),
            ScalarType::Int64 => match data.split_first() {
                Some((0, rest)) => ScalarDecoder::Int(IntDecoder::new(rest)),
                Some((1, rest)) => ScalarDecoder::PackedInt(crate::packed::PackedDecoder::new(rest)?),
                Some((m, _)) => return Err(Error::Corrupt(format!("unknown int column mode {m}"))),
                None => return Err(Error::Truncated("int column mode")),
            },
            ScalarType::Double => ScalarDecoder::Double(DoubleDecoder::new(data)?),
            ScalarType::String => ScalarDecoder::Str(StringDecoder::new(data)?),
            ScalarType::Distribution => ScalarDecoder::Dist(DistDecoder::new(data)),
        })
    }

    /// The next value.
    #[inline]
    pub fn next_value(&mut self) -> Result<Value> {
        Ok(match self {
            ScalarDecoder::Bool(d) => Value::Bool(d.next_value()?),
            ScalarDecoder::Int(d) => Value::Int64(d.next_value()?),
            ScalarDecoder::PackedInt(d) => Value::Int64(d.next_value()?),
            ScalarDecoder::Double(d) => Value::Double(d.next_value()?),
            ScalarDecoder::Str(d) => Value::String(d.next_value()?.to_owned()),
            ScalarDecoder::Dist(d) => Value::Distribution(Box::new(d.next_value()?)),
        })
    }
}

/// The scalars a value type is stored as, one column each.
pub fn scalars(t: &ValueType) -> &[ScalarType] {
    match t {
        ValueType::Scalar(s) => std::slice::from_ref(s),
        ValueType::Tuple(items) => items,
    }
}

/// Start times: `0` same as the previous start (or none before the first
/// point), `10` the previous point's end time, `110` no start time, `111`
/// then 64 raw bits.
#[derive(Debug, Clone, Default)]
pub struct StartEncoder {
    w: BitWriter,
    prev_start: Option<i64>,
    prev_end: Option<i64>,
}

impl StartEncoder {
    /// Appends a point's start time.
    #[inline]
    pub fn push(&mut self, start: Option<i64>, end: i64) {
        if start == self.prev_start {
            self.w.write(0, 1);
        } else if start.is_some() && start == self.prev_end {
            self.w.write(0b10, 2);
        } else if let Some(s) = start {
            self.w.write(0b111, 3);
            self.w.write(s as u64, 64);
        } else {
            self.w.write(0b110, 3);
        }
        self.prev_start = start;
        self.prev_end = Some(end);
    }

    /// Appends the section.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        self.w.copy_to(out);
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.w.memory_bytes()
    }
}

/// Reads [`StartEncoder`]'s section.
#[derive(Debug, Clone)]
pub struct StartDecoder<'a> {
    r: BitReader<'a>,
    prev_start: Option<i64>,
    prev_end: Option<i64>,
}

impl<'a> StartDecoder<'a> {
    /// A decoder over a section.
    pub fn new(data: &'a [u8]) -> Self {
        Self { r: BitReader::new(data), prev_start: None, prev_end: None }
    }

    /// The start time of the point ending at `end`.
    #[inline]
    pub fn next_value(&mut self, end: i64) -> Result<Option<i64>> {
        let t = || Error::Truncated("start time");
        let start = match self.r.read_unary(3).ok_or_else(t)? {
            0 => self.prev_start,
            1 => self.prev_end,
            2 => None,
            _ => Some(self.r.read(64).ok_or_else(t)? as i64),
        };
        self.prev_start = start;
        self.prev_end = Some(end);
        Ok(start)
    }
}

/// Writes a varint length then the bytes `f` appends.
pub fn put_section(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let mut tmp = Vec::new();
    f(&mut tmp);
    put_uvarint(out, tmp.len() as u64);
    out.extend_from_slice(&tmp);
}
