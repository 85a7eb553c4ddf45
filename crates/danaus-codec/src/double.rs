//! Adaptive double columns. Most monitoring values are decimals with few
//! digits: counters of bytes, CPU seconds in hundredths, load averages.
//! While every value of a chunk equals `m / 10^e` exactly (as the decoder
//! computes it, bit for bit) for one `e ≤ 6` and `|m| ≤ 2^53`, the column
//! stores the integers `m` as delta-of-deltas ([`crate::int`]); a value
//! that needs more decimals raises `e` (re-encoding the column). Anything
//! else — NaN, ±Inf, −0.0, long fractions — switches the chunk to Gorilla
//! XOR ([`crate::float`]) for good.
//!
//! Section: `u8 mode` (0 = XOR, 1 + e = decimal) then the column's bits;
//! sealed chunks write decimal columns as `0x40 + e` and a
//! [`crate::packed`] sequence of mantissas.

use crate::error::{Error, Result};
use crate::float::{FloatDecoder, FloatEncoder};
use crate::int::{IntDecoder, IntEncoder};
use crate::packed::{pack, PackedDecoder};

const MAX_EXP: u8 = 6;
const POW10: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];
const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0; // 2^53

#[inline]
fn decode_decimal(m: i64, e: u8) -> f64 {
    if e == 0 {
        m as f64
    } else {
        m as f64 / POW10[e as usize]
    }
}

#[inline]
fn mantissa(v: f64, e: u8) -> Option<i64> {
    // The nearest integer, without a call to libm's `round` (baseline
    // x86-64 has no rounding instruction): the conversion truncates. The
    // last check decides exactness whatever the rounding of ties.
    let x = v * POW10[e as usize];
    if x.is_nan() || x.abs() > MAX_MANTISSA {
        return None;
    }
    let m = (x + 0.5f64.copysign(x)) as i64;
    (decode_decimal(m, e).to_bits() == v.to_bits()).then_some(m)
}

fn exponent(v: f64, from: u8) -> Option<u8> {
    (from..=MAX_EXP).find(|&e| mantissa(v, e).is_some())
}

#[derive(Debug, Clone)]
enum Mode {
    Decimal { exp: u8, ints: IntEncoder },
    Xor(FloatEncoder),
}

/// Appends doubles, choosing the representation as it goes.
#[derive(Debug, Clone)]
pub struct DoubleEncoder {
    mode: Mode,
}

impl Default for DoubleEncoder {
    fn default() -> Self {
        Self { mode: Mode::Decimal { exp: 0, ints: IntEncoder::new() } }
    }
}

impl DoubleEncoder {
    /// Appends one value.
    #[inline]
    pub fn push(&mut self, v: f64) {
        if let Mode::Decimal { exp, ints } = &mut self.mode {
            let first = ints.is_empty();
            if first {
                if let Some(e) = exponent(v, 0) {
                    *exp = e;
                }
            }
            if let Some(m) = mantissa(v, *exp) {
                ints.push(m);
                return;
            }
            match exponent(v, *exp + 1) {
                Some(e) if !first => self.rescale(e),
                _ => self.switch_to_xor(),
            }
            if let Mode::Decimal { exp, ints } = &mut self.mode {
                if let Some(m) = mantissa(v, *exp) {
                    ints.push(m);
                    return;
                }
                self.switch_to_xor();
            }
        }
        if let Mode::Xor(f) = &mut self.mode {
            f.push(v);
        }
    }

    fn mantissas(&self) -> Vec<i64> {
        let Mode::Decimal { ints, .. } = &self.mode else { return Vec::new() };
        ints.values()
    }

    fn decoded(&self) -> Vec<f64> {
        let Mode::Decimal { exp, .. } = &self.mode else { return Vec::new() };
        self.mantissas().into_iter().map(|m| decode_decimal(m, *exp)).collect()
    }

    /// Appends the section in its packed form (for sealed chunks).
    pub fn write_packed(&self, out: &mut Vec<u8>) {
        match &self.mode {
            Mode::Decimal { exp, .. } => {
                out.push(0x40 + exp);
                pack(out, &self.mantissas());
            }
            Mode::Xor(_) => self.write_to(out),
        }
    }

    /// Re-encodes with more decimals, or as XOR if a value no longer fits.
    fn rescale(&mut self, e: u8) {
        let values = self.decoded();
        let mut ints = IntEncoder::new();
        for v in &values {
            match mantissa(*v, e) {
                Some(m) => ints.push(m),
                None => return self.switch_to_xor(),
            }
        }
        self.mode = Mode::Decimal { exp: e, ints };
    }

    fn switch_to_xor(&mut self) {
        let mut f = FloatEncoder::new();
        for v in self.decoded() {
            f.push(v);
        }
        self.mode = Mode::Xor(f);
    }

    /// Appends the section.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match &self.mode {
            Mode::Decimal { exp, ints } => {
                out.push(1 + exp);
                ints.bits().copy_to(out);
            }
            Mode::Xor(f) => {
                out.push(0);
                f.bits().copy_to(out);
            }
        }
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        match &self.mode {
            Mode::Decimal { ints, .. } => ints.memory_bytes(),
            Mode::Xor(f) => f.memory_bytes(),
        }
    }

    /// Whether the column holds a mark before value `index`.
    pub fn holds_mark(&self, index: u32) -> bool {
        match &self.mode {
            Mode::Decimal { ints, .. } => ints.mark_at(index).is_some(),
            Mode::Xor(f) => f.mark_at(index).is_some(),
        }
    }

    /// A decoder of the values from `index` on, over bits copied into
    /// `out` (which must be empty): from the first value when `index` is
    /// 0, else from the column's mark there ([`crate::mark`]); `None`
    /// when no mark is held at `index`.
    pub fn decoder_from<'a>(&self, index: u32, out: &'a mut Vec<u8>) -> Option<DoubleDecoder<'a>> {
        if index == 0 {
            self.write_to(out);
            return DoubleDecoder::new(out).ok();
        }
        match &self.mode {
            Mode::Decimal { exp, ints } => {
                let m = ints.mark_at(index)?;
                Some(DoubleDecoder::Decimal(*exp, ints.resume_from(m, out)))
            }
            Mode::Xor(f) => {
                let m = f.mark_at(index)?;
                Some(DoubleDecoder::Xor(f.resume_from(m, out)))
            }
        }
    }
}

/// Reads [`DoubleEncoder`]'s section.
#[allow(clippy::large_enum_variant)] // decoders live on the stack for one chunk
#[derive(Debug, Clone)]
pub enum DoubleDecoder<'a> {
    /// Decimal mantissas.
    Decimal(u8, IntDecoder<'a>),
    /// Gorilla XOR.
    Xor(FloatDecoder<'a>),
    /// Packed decimal mantissas.
    Packed(u8, PackedDecoder<'a>),
}

impl<'a> DoubleDecoder<'a> {
    /// A decoder over a section.
    pub fn new(data: &'a [u8]) -> Result<Self> {
        let (&mode, rest) = data.split_first().ok_or(Error::Truncated("double mode"))?;
        match mode {
            0 => Ok(DoubleDecoder::Xor(FloatDecoder::new(rest))),
            m if m <= MAX_EXP + 1 => Ok(DoubleDecoder::Decimal(m - 1, IntDecoder::new(rest))),
            m if (0x40..=0x40 + MAX_EXP).contains(&m) => Ok(DoubleDecoder::Packed(m - 0x40, PackedDecoder::new(rest)?)),
            m => Err(Error::Corrupt(format!("unknown double mode {m}"))),
        }
    }

    /// Decodes the next `n` values into `out`.
    pub fn decode_into(&mut self, n: usize, out: &mut Vec<f64>) -> Result<()> {
        let from = out.len();
        out.resize(from + n, 0.0);
        let r = self.decode_to(&mut out[from..]);
        if r.is_err() {
            out.truncate(from);
        }
        r
    }

    /// Decodes the next `out.len()` values into `out`.
    pub fn decode_to(&mut self, out: &mut [f64]) -> Result<()> {
        let n = out.len();
        let mut slots = out.iter_mut();
        match self {
            DoubleDecoder::Xor(d) => {
                for s in slots {
                    *s = d.next_value()?;
                }
                Ok(())
            }
            DoubleDecoder::Decimal(e, d) => {
                for s in slots {
                    *s = decode_decimal(d.next_value()?, *e);
                }
                Ok(())
            }
            DoubleDecoder::Packed(0, d) => d.decode_each(n, |m| {
                if let Some(s) = slots.next() {
                    *s = m as f64;
                }
            }),
            DoubleDecoder::Packed(e, d) => {
                let p = POW10[*e as usize];
                d.decode_each(n, |m| {
                    if let Some(s) = slots.next() {
                        *s = m as f64 / p;
                    }
                })
            }
        }
    }

    /// The next value.
    #[inline]
    pub fn next_value(&mut self) -> Result<f64> {
        match self {
            DoubleDecoder::Decimal(e, d) => Ok(decode_decimal(d.next_value()?, *e)),
            DoubleDecoder::Xor(d) => d.next_value(),
            DoubleDecoder::Packed(e, d) => Ok(decode_decimal(d.next_value()?, *e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(vals: &[f64]) -> (usize, u8) {
        let mut e = DoubleEncoder::default();
        for &v in vals {
            e.push(v);
        }
        let mut packed = Vec::new();
        e.write_packed(&mut packed);
        let mut d = DoubleDecoder::new(&packed).unwrap();
        for &v in vals {
            assert_eq!(d.next_value().unwrap().to_bits(), v.to_bits(), "{vals:?}");
        }
        let mut batch = Vec::new();
        DoubleDecoder::new(&packed).unwrap().decode_into(vals.len(), &mut batch).unwrap();
        assert_eq!(
            batch.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            vals.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let mut out = Vec::new();
        e.write_to(&mut out);
        let mut d = DoubleDecoder::new(&out).unwrap();
        for &v in vals {
            assert_eq!(d.next_value().unwrap().to_bits(), v.to_bits(), "{vals:?}");
        }
        (out.len(), out[0])
    }

    proptest! {
        #[test]
        fn anything_round_trips(vals in prop::collection::vec(prop_oneof![
            any::<f64>(), Just(f64::NAN), Just(-0.0), Just(f64::INFINITY),
            (-100_000i64..100_000).prop_map(|m| m as f64 / 100.0),
            (0i64..1 << 40).prop_map(|m| m as f64),
            (-9i64..9).prop_map(|m| m as f64 / 1e6),
        ], 0..120)) {
            round_trip(&vals);
        }
    }

    proptest! {
        #[test]
        fn decoding_from_a_mark_reads_the_rest(vals in prop::collection::vec(prop_oneof![
            any::<f64>(), (-100_000i64..100_000).prop_map(|m| m as f64 / 100.0), (0i64..1000).prop_map(|m| m as f64),
        ], 1..200)) {
            let mut e = DoubleEncoder::default();
            for &v in &vals {
                e.push(v);
            }
            for index in (0..vals.len() as u32).step_by(crate::mark::MARK_EVERY as usize) {
                let mut buf = Vec::new();
                let newest = (vals.len() as u32 - 1) / crate::mark::MARK_EVERY * crate::mark::MARK_EVERY;
                let Some(mut d) = e.decoder_from(index, &mut buf) else {
                    prop_assert!(index + crate::mark::MARK_EVERY < newest, "mark {index} of {newest} missing");
                    continue;
                };
                for &v in &vals[index as usize..] {
                    prop_assert_eq!(d.next_value().unwrap().to_bits(), v.to_bits());
                }
            }
        }
    }

    #[test]
    fn modes() {
        assert_eq!(round_trip(&[1.0, 2.0, 3.0]).1, 1);
        assert_eq!(round_trip(&[1.5, 2.25, 3.125]).1, 4);
        assert_eq!(round_trip(&[1.0, 2.5, 3.25]).1, 3, "exponent rises");
        assert_eq!(round_trip(&[1.0, f64::NAN]).1, 0, "NaN switches to XOR");
        assert_eq!(round_trip(&[0.1, 1.0 / 3.0]).1, 0);
        assert_eq!(round_trip(&[-0.0, 1.0]).1, 0, "-0.0 is kept bit-exact");
        // A counter of hundredths is far smaller than under XOR.
        let cpu: Vec<f64> = (0..240).map(|i| (123_456 + i * 731) as f64 / 100.0).collect();
        let (bytes, mode) = round_trip(&cpu);
        assert_eq!(mode, 3);
        assert!(bytes < 60, "{bytes}");
    }
}
