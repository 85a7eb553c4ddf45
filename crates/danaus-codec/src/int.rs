//! Delta-of-delta integers (timestamps and int64 values).
//!
//! The first value is stored raw; after it, each value's delta-of-delta is
//! zigzag-mapped and written with a prefix code: `0` for zero, then `10`,
//! `110`, `1110`, `11110`, `111110` with 5, 10, 16, 24 or 32 payload bits,
//! and `111111` with 64. The classes fit what leaves see: scrape jitter in
//! milliseconds (5 bits), small counter increments (10), busy counters (16
//! and 24). Arithmetic wraps, so every i64 sequence round-trips, including
//! jumps across the whole range.

use crate::bits::{BitReader, BitWriter};
use crate::error::{Error, Result};
use crate::mark::{Mark, Marks};
use crate::varint::{unzigzag, zigzag};

const WIDTHS: [u32; 6] = [5, 10, 16, 24, 32, 64];
const CLASSES: u32 = WIDTHS.len() as u32;

/// Writes an unsigned value with the prefix code described above.
#[inline]
pub(crate) fn put_code(w: &mut BitWriter, z: u64) {
    if z == 0 {
        w.write(0, 1);
        return;
    }
    for (i, &bits) in WIDTHS.iter().enumerate() {
        if bits == 64 || z < (1u64 << bits) {
            let ones = i as u32 + 1;
            // Prefix: `ones` one-bits then a zero, except the last class.
            let (prefix, plen) =
                if bits == 64 { ((1u64 << CLASSES) - 1, CLASSES) } else { (((1u64 << ones) - 1) << 1, ones + 1) };
            if plen + bits <= 64 {
                w.write((prefix << bits) | z, plen + bits);
            } else {
                w.write(prefix, plen);
                w.write(z, bits);
            }
            return;
        }
    }
}

/// Reads a value written by [`put_code`].
#[inline(always)]
pub(crate) fn get_code(r: &mut BitReader<'_>) -> Result<u64> {
    let word = r.peek64();
    let ones = word.leading_ones().min(CLASSES);
    if ones == 0 {
        r.consume(1).ok_or(Error::Truncated("integer prefix"))?;
        return Ok(0);
    }
    let bits = WIDTHS[ones as usize - 1];
    let plen = if ones == CLASSES { CLASSES } else { ones + 1 };
    if plen + bits <= 64 {
        // Prefix and payload in one peeked word.
        r.consume(plen + bits).ok_or(Error::Truncated("integer payload"))?;
        Ok((word << plen) >> (64 - bits))
    } else {
        r.consume(plen).ok_or(Error::Truncated("integer prefix"))?;
        r.read(bits).ok_or(Error::Truncated("integer payload"))
    }
}

/// Appends i64 values as delta-of-deltas.
#[derive(Debug, Clone, Default)]
pub struct IntEncoder {
    w: BitWriter,
    count: u32,
    prev: i64,
    prev_delta: i64,
    marks: Marks<IntState>,
}

/// What an [`IntDecoder`] carries from one value to the next: the previous
/// value and delta.
pub type IntState = (i64, i64);

impl IntEncoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one value.
    #[inline]
    pub fn push(&mut self, v: i64) {
        if self.count == 0 {
            self.w.write(v as u64, 64);
        } else {
            let (prev, prev_delta) = (self.prev, self.prev_delta);
            self.marks.before_value(self.count, self.w.bit_len(), || (prev, prev_delta));
            let delta = v.wrapping_sub(self.prev);
            put_code(&mut self.w, zigzag(delta.wrapping_sub(self.prev_delta)));
            self.prev_delta = delta;
        }
        self.prev = v;
        self.count += 1;
    }

    /// Number of values pushed.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no value was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The last value pushed.
    pub fn last(&self) -> Option<i64> {
        (self.count > 0).then_some(self.prev)
    }

    /// Every value pushed, decoded again (for re-encoding, e.g. sealing).
    pub fn values(&self) -> Vec<i64> {
        let mut bytes = Vec::new();
        self.w.copy_to(&mut bytes);
        let mut d = IntDecoder::new(&bytes);
        // Our own bits: decoding cannot fail.
        (0..self.count).map(|_| d.next_value().unwrap_or(0)).collect()
    }

    /// The encoded bits.
    pub fn bits(&self) -> &BitWriter {
        &self.w
    }

    /// The newest marks (see [`crate::mark`]) at indices at most `len`,
    /// newest first.
    pub fn marks(&self, len: usize) -> impl Iterator<Item = Mark<IntState>> + '_ {
        self.marks.up_to(len, self.count)
    }

    /// The mark before value `index`, if held.
    pub fn mark_at(&self, index: u32) -> Option<Mark<IntState>> {
        self.marks.at(index, self.count)
    }

    /// Appends the bits from mark `m` on to `out` and returns a decoder of
    /// the values from `m.index` on over them; `out` must be empty.
    pub fn resume_from<'a>(&self, m: Mark<IntState>, out: &'a mut Vec<u8>) -> IntDecoder<'a> {
        let off = self.w.copy_from_bit(m.bit as usize, out);
        IntDecoder::resume(out, off, m.state)
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.w.memory_bytes()
    }
}

/// Reads values written by [`IntEncoder`].
#[derive(Debug, Clone)]
pub struct IntDecoder<'a> {
    r: BitReader<'a>,
    started: bool,
    prev: i64,
    prev_delta: i64,
}

impl<'a> IntDecoder<'a> {
    /// A decoder over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { r: BitReader::new(data), started: false, prev: 0, prev_delta: 0 }
    }

    /// A decoder at bit `bit` of `data`, between two values, with the
    /// state a decoder had there (from a [`Mark`]).
    pub fn resume(data: &'a [u8], bit: u32, (prev, prev_delta): IntState) -> Self {
        Self { r: BitReader::at(data, bit as usize), started: true, prev, prev_delta }
    }

    /// Decodes the next `n` values into `out`.
    pub fn decode_into(&mut self, n: usize, out: &mut Vec<i64>) -> Result<()> {
        out.reserve(n);
        for _ in 0..n {
            out.push(self.next_value()?);
        }
        Ok(())
    }

    /// The next value; the caller knows how many there are.
    #[inline]
    pub fn next_value(&mut self) -> Result<i64> {
        if !self.started {
            self.started = true;
            self.prev = self.r.read(64).ok_or(Error::Truncated("first integer"))? as i64;
            return Ok(self.prev);
        }
        let dod = unzigzag(get_code(&mut self.r)?);
        self.prev_delta = self.prev_delta.wrapping_add(dod);
        self.prev = self.prev.wrapping_add(self.prev_delta);
        Ok(self.prev)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(vals: &[i64]) -> usize {
        let mut e = IntEncoder::new();
        for &v in vals {
            e.push(v);
        }
        let mut bytes = Vec::new();
        e.bits().copy_to(&mut bytes);
        let mut d = IntDecoder::new(&bytes);
        for &v in vals {
            assert_eq!(d.next_value().unwrap(), v);
        }
        bytes.len()
    }

    proptest! {
        #[test]
        fn arbitrary_sequences_round_trip(vals in prop::collection::vec(any::<i64>(), 0..300)) {
            round_trip(&vals);
        }

        #[test]
        fn jittered_timestamps_round_trip(start in any::<i64>(), jitter in prop::collection::vec(-5_000_000i64..5_000_000, 1..300)) {
            let vals: Vec<i64> = jitter.iter().enumerate().map(|(i, j)| start.wrapping_add(i as i64 * 15_000_000_000).wrapping_add(*j)).collect();
            round_trip(&vals);
        }
    }

    #[test]
    fn edges_and_sizes() {
        round_trip(&[]);
        round_trip(&[42]);
        round_trip(&[i64::MIN, i64::MAX, i64::MIN, 0, -1, i64::MAX]);
        // A perfectly regular series costs one bit per value after the second.
        let regular: Vec<i64> = (0..1000).map(|i| 1_700_000_000_000_000_000 + i * 10_000_000_000).collect();
        let bytes = round_trip(&regular);
        assert!(bytes < 8 + 8 + 1000 / 8 + 4, "{bytes}");
    }

    proptest! {
        #[test]
        fn decoding_from_a_mark_reads_the_rest(vals in prop::collection::vec(prop_oneof![any::<i64>(), -1000i64..1000], 33..200)) {
            let mut e = IntEncoder::new();
            for &v in &vals {
                e.push(v);
            }
            let marks: Vec<_> = e.marks(vals.len()).collect();
            let newest = (vals.len() as u32 - 1) / crate::mark::MARK_EVERY * crate::mark::MARK_EVERY;
            prop_assert_eq!(marks[0].index, newest);
            prop_assert_eq!(marks.len(), if newest > crate::mark::MARK_EVERY { 2 } else { 1 });
            for m in marks {
                prop_assert_eq!(e.mark_at(m.index), Some(m));
                let mut buf = Vec::new();
                let mut d = e.resume_from(m, &mut buf);
                for &v in &vals[m.index as usize..] {
                    prop_assert_eq!(d.next_value().unwrap(), v);
                }
            }
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut d = IntDecoder::new(&[1, 2, 3]);
        assert!(d.next_value().is_err());
    }
}
