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
}

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

    /// Decodes the next `n` values into `out`.
    pub fn decode_into(&mut self, n: usize, out: &mut Vec<i64>) -> Result<()> {
        out.reserve(n);
        for _ in 0..n {
            out.push(self.next_value()?);
        }
        Ok(())
    }

    /// Decodes the next `out.len()` values into `out`. Runs of zero
    /// delta-of-deltas (regular timestamps, steady counters: one bit each)
    /// are taken a peeked word at a time.
    pub fn decode_to(&mut self, out: &mut [i64]) -> Result<()> {
        let mut i = 0;
        if !self.started {
            match out.first_mut() {
                Some(first) => *first = self.next_value()?,
                None => return Ok(()),
            }
            i = 1;
        }
        let (mut prev, mut delta) = (self.prev, self.prev_delta);
        while i < out.len() {
            let zeros = (self.r.peek64().leading_zeros() as usize).min(out.len() - i).min(self.r.left());
            if zeros > 0 {
                for slot in &mut out[i..i + zeros] {
                    prev = prev.wrapping_add(delta);
                    *slot = prev;
                }
                // Within the bits left: checked just above.
                self.r.consume(zeros as u32).ok_or(Error::Truncated("integer prefix"))?;
                i += zeros;
                continue;
            }
            delta = delta.wrapping_add(unzigzag(get_code(&mut self.r)?));
            prev = prev.wrapping_add(delta);
            out[i] = prev;
            i += 1;
        }
        self.prev = prev;
        self.prev_delta = delta;
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

    /// `decode_to` in pieces of the given sizes equals `next_value` one
    /// by one, on whole and on truncated data (same values, then the same
    /// error).
    fn batch_equals_single(vals: &[i64], cut: usize, pieces: &[usize]) {
        let mut e = IntEncoder::new();
        for &v in vals {
            e.push(v);
        }
        let mut bytes = Vec::new();
        e.bits().copy_to(&mut bytes);
        bytes.truncate(bytes.len().saturating_sub(cut));
        let mut one = IntDecoder::new(&bytes);
        let singles: Vec<Result<i64>> = (0..vals.len()).map(|_| one.next_value()).collect();
        let mut batch = IntDecoder::new(&bytes);
        let mut done = 0;
        for &p in pieces.iter().cycle().take(vals.len() + 1) {
            let n = p.min(vals.len() - done);
            let mut out = vec![0i64; n];
            match batch.decode_to(&mut out) {
                Ok(()) => {
                    for (k, v) in out.iter().enumerate() {
                        assert_eq!(singles[done + k].as_ref().ok(), Some(v), "value {}", done + k);
                    }
                }
                Err(_) => {
                    assert!(singles[done..done + n].iter().any(|r| r.is_err()), "batch failed where singles did not");
                    return;
                }
            }
            done += n;
            if done == vals.len() {
                break;
            }
        }
        assert!(singles.iter().all(|r| r.is_ok()), "singles failed where the batch did not");
    }

    proptest! {
        #[test]
        fn batches_decode_as_single_values(
            start in any::<i64>(),
            steps in prop::collection::vec(prop_oneof![4 => Just(0i64), 1 => -1000i64..1000, 1 => any::<i64>()], 1..400),
            cut in 0usize..3,
            pieces in prop::collection::vec(1usize..100, 1..5),
        ) {
            let mut v = start;
            let mut d = 15_000i64;
            let vals: Vec<i64> = steps.iter().map(|s| { d = d.wrapping_add(*s); v = v.wrapping_add(d); v }).collect();
            batch_equals_single(&vals, cut, &pieces);
        }

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

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut d = IntDecoder::new(&[1, 2, 3]);
        assert!(d.next_value().is_err());
    }
}
