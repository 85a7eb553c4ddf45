//! Gorilla XOR compression of doubles (Pelkonen et al., VLDB 2015).
//!
//! Each value is XORed with the previous one. A zero XOR costs one bit; a
//! XOR whose meaningful bits fit in the previous window costs `10` plus
//! those bits; otherwise `11`, six bits of leading zeros, six bits of
//! (length − 1) and the meaningful bits. Bit patterns are kept exactly:
//! NaN payloads, ±Inf and −0.0 round-trip.

use crate::bits::{BitReader, BitWriter};
use crate::error::{Error, Result};
use crate::mark::{Mark, Marks};

/// Appends doubles.
#[derive(Debug, Clone, Default)]
pub struct FloatEncoder {
    w: BitWriter,
    count: u32,
    prev: u64,
    lead: u32,
    trail: u32,
    marks: Marks<FloatState>,
}

/// What a [`FloatDecoder`] carries from one value to the next: the
/// previous value's bits and the meaningful-bits window (leading and
/// trailing zeros).
pub type FloatState = (u64, u8, u8);

impl FloatEncoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one value.
    #[inline]
    pub fn push(&mut self, v: f64) {
        let bits = v.to_bits();
        if self.count == 0 {
            self.w.write(bits, 64);
            self.lead = u32::MAX;
        } else {
            // Before any window the decoder's is (0, 0).
            let state =
                if self.lead == u32::MAX { (self.prev, 0, 0) } else { (self.prev, self.lead as u8, self.trail as u8) };
            self.marks.before_value(self.count, self.w.bit_len(), || state);
            let x = bits ^ self.prev;
            if x == 0 {
                self.w.write(0, 1);
            } else {
                let lead = x.leading_zeros().min(63);
                let trail = x.trailing_zeros();
                if self.lead != u32::MAX && lead >= self.lead && trail >= self.trail {
                    let len = 64 - self.lead - self.trail;
                    self.w.write(0b10, 2);
                    self.w.write(x >> self.trail, len);
                } else {
                    let len = 64 - lead - trail;
                    self.w.write((0b11 << 12) | (u64::from(lead) << 6) | u64::from(len - 1), 14);
                    self.w.write(x >> trail, len);
                    self.lead = lead;
                    self.trail = trail;
                }
            }
        }
        self.prev = bits;
        self.count += 1;
    }

    /// The encoded bits.
    pub fn bits(&self) -> &BitWriter {
        &self.w
    }

    /// The mark before value `index`, if held.
    pub fn mark_at(&self, index: u32) -> Option<Mark<FloatState>> {
        self.marks.at(index, self.count)
    }

    /// Appends the bits from mark `m` on to `out` and returns a decoder of
    /// the values from `m.index` on over them; `out` must be empty.
    pub fn resume_from<'a>(&self, m: Mark<FloatState>, out: &'a mut Vec<u8>) -> FloatDecoder<'a> {
        let off = self.w.copy_from_bit(m.bit as usize, out);
        let (prev, lead, trail) = m.state;
        FloatDecoder {
            r: BitReader::at(out, off as usize),
            started: true,
            prev,
            lead: u32::from(lead),
            trail: u32::from(trail),
        }
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.w.memory_bytes()
    }
}

/// Reads values written by [`FloatEncoder`].
#[derive(Debug, Clone)]
pub struct FloatDecoder<'a> {
    r: BitReader<'a>,
    started: bool,
    prev: u64,
    lead: u32,
    trail: u32,
}

impl<'a> FloatDecoder<'a> {
    /// A decoder over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { r: BitReader::new(data), started: false, prev: 0, lead: 0, trail: 0 }
    }

    /// The next value.
    #[inline]
    pub fn next_value(&mut self) -> Result<f64> {
        if !self.started {
            self.started = true;
            self.prev = self.r.read(64).ok_or(Error::Truncated("first double"))?;
            return Ok(f64::from_bits(self.prev));
        }
        let t = || Error::Truncated("double");
        // One peek covers the control bits, the header and usually the
        // meaningful bits too.
        let word = self.r.peek64();
        if word >> 63 == 0 {
            self.r.consume(1).ok_or_else(t)?;
            return Ok(f64::from_bits(self.prev));
        }
        let used = if (word >> 62) & 1 == 1 {
            let hdr = (word >> 50) & 0xFFF;
            self.lead = (hdr >> 6) as u32;
            let len = (hdr & 0x3F) as u32 + 1;
            if self.lead + len > 64 {
                return Err(Error::Corrupt(format!("double window {} + {len} exceeds 64 bits", self.lead)));
            }
            self.trail = 64 - self.lead - len;
            14
        } else {
            2
        };
        let len = 64 - self.lead - self.trail;
        let x = if used + len <= 64 {
            self.r.consume(used + len).ok_or_else(t)?;
            (word << used) >> (64 - len)
        } else {
            self.r.consume(used).ok_or_else(t)?;
            self.r.read(len).ok_or_else(t)?
        };
        self.prev ^= x << self.trail;
        Ok(f64::from_bits(self.prev))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(vals: &[f64]) -> usize {
        let mut e = FloatEncoder::new();
        for &v in vals {
            e.push(v);
        }
        let mut bytes = Vec::new();
        e.bits().copy_to(&mut bytes);
        let mut d = FloatDecoder::new(&bytes);
        for &v in vals {
            assert_eq!(d.next_value().unwrap().to_bits(), v.to_bits());
        }
        bytes.len()
    }

    proptest! {
        #[test]
        fn arbitrary_bit_patterns_round_trip(vals in prop::collection::vec(any::<u64>().prop_map(f64::from_bits), 0..300)) {
            round_trip(&vals);
        }

        #[test]
        fn special_values_round_trip(vals in prop::collection::vec(prop_oneof![
            Just(f64::NAN), Just(-f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY),
            Just(0.0), Just(-0.0), Just(f64::MIN_POSITIVE), Just(f64::MAX), Just(f64::MIN),
            Just(f64::from_bits(0x7FF0_0000_0000_0001)), any::<f64>(), -1e3f64..1e3,
        ], 0..200)) {
            round_trip(&vals);
        }
    }

    proptest! {
        #[test]
        fn decoding_from_a_mark_reads_the_rest(vals in prop::collection::vec(prop_oneof![any::<u64>().prop_map(f64::from_bits), Just(1.5), -1e3f64..1e3], 33..200)) {
            let mut e = FloatEncoder::new();
            for &v in &vals {
                e.push(v);
            }
            let newest = (vals.len() as u32 - 1) / crate::mark::MARK_EVERY * crate::mark::MARK_EVERY;
            for index in [newest, newest - crate::mark::MARK_EVERY] {
                let Some(m) = e.mark_at(index) else {
                    prop_assert_eq!(index, 0);
                    continue;
                };
                let mut buf = Vec::new();
                let mut d = e.resume_from(m, &mut buf);
                for &v in &vals[index as usize..] {
                    prop_assert_eq!(d.next_value().unwrap().to_bits(), v.to_bits());
                }
            }
        }
    }

    #[test]
    fn constant_series_costs_a_bit_per_value() {
        let bytes = round_trip(&vec![3.25; 1000]);
        assert!(bytes <= 8 + 1000 / 8 + 1, "{bytes}");
        round_trip(&[]);
        round_trip(&[-0.0]);
    }
}
