//! Packed integer sequences, for chunks that will not grow any more.
//!
//! An open chunk must encode as it goes, so it uses delta-of-deltas. A
//! sealed chunk knows all its values and picks the smaller of two codings:
//! deltas or delta-of-deltas, both after dividing every delta by their
//! greatest common divisor — memory gauges move in whole 4 KiB pages,
//! counters often in fixed steps; a gauge's random walk is cheaper as
//! deltas, a steady counter as delta-of-deltas.
//!
//! Section: `u8 flags (bit 0: delta-of-delta) | uvarint divisor | first
//! value (64 bits) | one prefix code ([`crate::int`]) per later value`.

use crate::bits::{BitReader, BitWriter};
use crate::error::{Error, Result};
use crate::int::{get_code, put_code};
use crate::varint::{put_uvarint, unzigzag, zigzag, ByteReader};

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn encode(values: &[i64], divisor: i64, dod: bool) -> BitWriter {
    let mut w = BitWriter::new();
    let Some(&first) = values.first() else { return w };
    w.write(first as u64, 64);
    let mut prev_q = 0i64;
    for pair in values.windows(2) {
        let q = pair[1].wrapping_sub(pair[0]) / divisor;
        put_code(&mut w, zigzag(if dod { q.wrapping_sub(prev_q) } else { q }));
        prev_q = q;
    }
    w
}

/// Appends the smallest packed encoding of `values`.
pub fn pack(out: &mut Vec<u8>, values: &[i64]) {
    let g = values.windows(2).fold(0u64, |g, p| gcd(g, p[1].wrapping_sub(p[0]).unsigned_abs()));
    // A divisor must divide every delta as a signed number and fit in i64.
    let divisor = if g == 0 || g > i64::MAX as u64 { 1 } else { g as i64 };
    let delta = encode(values, divisor, false);
    let dod = encode(values, divisor, true);
    let (flags, best) = if dod.bit_len() < delta.bit_len() { (1u8, dod) } else { (0u8, delta) };
    out.push(flags);
    put_uvarint(out, divisor as u64);
    best.copy_to(out);
}

/// Reads a [`pack`]ed section.
#[derive(Debug, Clone)]
pub struct PackedDecoder<'a> {
    r: BitReader<'a>,
    dod: bool,
    divisor: i64,
    started: bool,
    prev: i64,
    prev_q: i64,
}

impl<'a> PackedDecoder<'a> {
    /// A decoder over a section.
    pub fn new(data: &'a [u8]) -> Result<Self> {
        let mut br = ByteReader::new(data);
        let flags = br.u8()?;
        if flags > 1 {
            return Err(Error::Corrupt(format!("unknown packed flags {flags:#x}")));
        }
        let divisor = br.uvarint()?;
        if divisor == 0 || divisor > i64::MAX as u64 {
            return Err(Error::Corrupt(format!("packed divisor {divisor}")));
        }
        let rest = &data[data.len() - br.remaining()..];
        Ok(Self {
            r: BitReader::new(rest),
            dod: flags == 1,
            divisor: divisor as i64,
            started: false,
            prev: 0,
            prev_q: 0,
        })
    }

    /// The next value.
    #[inline]
    pub fn next_value(&mut self) -> Result<i64> {
        if !self.started {
            self.started = true;
            self.prev = self.r.read(64).ok_or(Error::Truncated("first packed integer"))? as i64;
            return Ok(self.prev);
        }
        let c = unzigzag(get_code(&mut self.r)?);
        let q = if self.dod { self.prev_q.wrapping_add(c) } else { c };
        self.prev_q = q;
        self.prev = self.prev.wrapping_add(q.wrapping_mul(self.divisor));
        Ok(self.prev)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(values: &[i64]) -> usize {
        let mut out = Vec::new();
        pack(&mut out, values);
        let mut d = PackedDecoder::new(&out).unwrap();
        for &v in values {
            assert_eq!(d.next_value().unwrap(), v, "{values:?}");
        }
        out.len()
    }

    proptest! {
        #[test]
        fn anything_round_trips(values in prop::collection::vec(prop_oneof![any::<i64>(), -50i64..50, Just(i64::MIN), Just(i64::MAX)], 0..100)) {
            round_trip(&values);
        }

        #[test]
        fn page_steps_round_trip(start in any::<u32>(), steps in prop::collection::vec(-50i64..50, 1..200)) {
            let mut v = i64::from(start) * 4096;
            let values: Vec<i64> = steps.iter().map(|s| { v += s * 4096; v }).collect();
            round_trip(&values);
        }
    }

    #[test]
    fn picks_the_cheaper_coding() {
        // A random walk in pages: deltas divided by 4096 are small.
        let walk: Vec<i64> = (0..240).map(|i| (1 << 30) + ((i * 37) % 11 - 5) * 4096).collect();
        assert!(round_trip(&walk) < 8 + 240, "{}", round_trip(&walk));
        // A steady counter: delta-of-deltas are zero.
        let steady: Vec<i64> = (0..240).map(|i| 1000 + i * 777).collect();
        assert!(round_trip(&steady) < 8 + 2 + 240 / 8 + 4);
        round_trip(&[]);
        round_trip(&[7]);
    }
}
