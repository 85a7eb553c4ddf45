//! Packed integer sequences, for chunks that will not grow any more.
//!
//! An open chunk must encode as it goes, so it uses prefix-coded
//! delta-of-deltas. A sealed chunk knows all its values, so it stores them
//! in blocks of fixed-width bit fields (frame-of-reference packing, as in
//! PFOR): smaller than prefix codes for most data, since no bits go to
//! prefixes, and far faster to decode, since a block unpacks with no
//! branches per value. It also picks the smaller of two codings — deltas
//! or delta-of-deltas — after dividing every delta by their greatest common
//! divisor: memory gauges move in whole 4 KiB pages, counters often in
//! fixed steps; a gauge's random walk is cheaper as deltas, a steady
//! counter as delta-of-deltas.
//!
//! Where most deltas are zero but a few are large (a gauge that moves now
//! and then), the prefix code of [`crate::int`] is smaller than fixed-width
//! blocks; the encoder measures both and keeps prefix codes when they save
//! at least 15 % (blocks decode several times faster).
//!
//! Section: `u8 flags (bit 0: delta-of-delta, bit 1: prefix codes) |
//! uvarint divisor | first value (8 bytes, LE) | codes`, where the codes are
//! either blocks — each the zigzag codes of up to 32 later values as
//! `u8 width | 32 × width bits` (the last block only as many as remain) —
//! or one prefix code per later value.

use crate::bits::{BitReader, BitWriter};
use crate::error::{Error, Result};
use crate::int::{get_code, put_code};
use crate::varint::{put_uvarint, unzigzag, zigzag, ByteReader};

const BLOCK: usize = 32;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The zigzag codes of every value after the first.
fn codes(values: &[i64], divisor: i64, dod: bool) -> Vec<u64> {
    let mut prev_q = 0i64;
    values
        .windows(2)
        .map(|pair| {
            let q = pair[1].wrapping_sub(pair[0]) / divisor;
            let c = zigzag(if dod { q.wrapping_sub(prev_q) } else { q });
            prev_q = q;
            c
        })
        .collect()
}

fn width(block: &[u64]) -> u32 {
    64 - block.iter().fold(0u64, |a, &c| a | c).leading_zeros()
}

/// Encoded size in bits of the codes (block headers included).
fn cost(codes: &[u64]) -> usize {
    codes.chunks(BLOCK).map(|b| 8 + b.len() * width(b) as usize).sum()
}

/// Appends the smallest packed encoding of `values`.
pub fn pack(out: &mut Vec<u8>, values: &[i64]) {
    let g = values.windows(2).fold(0u64, |g, p| gcd(g, p[1].wrapping_sub(p[0]).unsigned_abs()));
    // A divisor must divide every delta as a signed number and fit in i64.
    let divisor = if g == 0 || g > i64::MAX as u64 { 1 } else { g as i64 };
    let delta = codes(values, divisor, false);
    let dod = codes(values, divisor, true);
    let (mut flags, best) = if cost(&dod) < cost(&delta) { (1u8, dod) } else { (0u8, delta) };
    let mut prefixed = BitWriter::new();
    for &c in &best {
        put_code(&mut prefixed, c);
    }
    // Blocks decode several times faster: take prefix codes only when they
    // save at least 15 %.
    let use_prefix = prefixed.bit_len() * 100 < cost(&best) * 85;
    if use_prefix {
        flags |= 2;
    }
    out.push(flags);
    put_uvarint(out, divisor as u64);
    out.extend_from_slice(&values.first().copied().unwrap_or(0).to_le_bytes());
    if use_prefix {
        prefixed.copy_to(out);
        return;
    }
    for block in best.chunks(BLOCK) {
        let w = width(block);
        out.push(w as u8);
        let mut bits = BitWriter::new();
        for &c in block {
            bits.write(c, w);
        }
        bits.copy_to(out);
    }
}

/// Unpacks `out.len()` codes of `w` (1..=56) bits from `src`, which holds
/// at least 8 bytes past the last code.
#[inline]
fn unpack(src: &[u8], w: u32, out: &mut [u64]) {
    let mask = (1u64 << w) - 1;
    for (i, slot) in out.iter_mut().enumerate() {
        let bit = i * w as usize;
        let mut word = [0u8; 8];
        word.copy_from_slice(&src[bit / 8..bit / 8 + 8]);
        *slot = (u64::from_be_bytes(word) >> (64 - w as usize - bit % 8)) & mask;
    }
}

/// Reads a [`pack`]ed section.
#[derive(Debug, Clone)]
pub struct PackedDecoder<'a> {
    data: &'a [u8],
    pos: usize,
    /// Set when the codes are prefix codes rather than blocks.
    prefix: Option<BitReader<'a>>,
    dod: bool,
    divisor: i64,
    started: bool,
    prev: i64,
    prev_q: i64,
    block: Box<[u64; BLOCK]>,
    at: usize,
    len: usize,
}

impl<'a> PackedDecoder<'a> {
    /// A decoder over a section.
    pub fn new(data: &'a [u8]) -> Result<Self> {
        let mut br = ByteReader::new(data);
        let flags = br.u8()?;
        if flags > 3 {
            return Err(Error::Corrupt(format!("unknown packed flags {flags:#x}")));
        }
        let divisor = br.uvarint()?;
        if divisor == 0 || divisor > i64::MAX as u64 {
            return Err(Error::Corrupt(format!("packed divisor {divisor}")));
        }
        let first = br.u64_le()? as i64;
        let pos = data.len() - br.remaining();
        Ok(Self {
            data,
            pos,
            prefix: (flags & 2 != 0).then(|| BitReader::new(&data[pos..])),
            dod: flags & 1 == 1,
            divisor: divisor as i64,
            started: false,
            prev: first,
            prev_q: 0,
            block: Box::new([0; BLOCK]),
            at: 0,
            len: 0,
        })
    }

    /// Unpacks the next block (up to 32 codes; fewer only at the end).
    fn refill(&mut self) -> Result<()> {
        let w = *self.data.get(self.pos).ok_or(Error::Truncated("packed block width"))? as u32;
        if w > 64 {
            return Err(Error::Corrupt(format!("packed block width {w}")));
        }
        let rest = &self.data[self.pos + 1..];
        // The last block may be short: take as many whole codes as there are.
        let n = if w == 0 { BLOCK } else { (rest.len() * 8 / w as usize).min(BLOCK) };
        if n == 0 {
            return Err(Error::Truncated("packed block"));
        }
        let bytes = (n * w as usize).div_ceil(8);
        if w == 0 {
            self.block.fill(0);
        } else if w <= 56 {
            // Word-at-a-time unpacking: no bounds checks or branches per
            // code. Reads run up to 8 bytes past the block, so the last block
            // of a section is unpacked from a zero-padded copy.
            if rest.len() >= bytes + 8 {
                unpack(&rest[..bytes + 8], w, &mut self.block[..n]);
            } else {
                let mut padded = [0u8; BLOCK * 8 + 8];
                padded[..bytes].copy_from_slice(&rest[..bytes]);
                unpack(&padded[..bytes + 8], w, &mut self.block[..n]);
            }
        } else {
            let mut r = BitReader::new(rest);
            for slot in self.block.iter_mut().take(n) {
                *slot = r.read(w).ok_or(Error::Truncated("packed block"))?;
            }
        }
        self.pos += 1 + bytes;
        self.at = 0;
        self.len = n;
        Ok(())
    }

    /// Decodes the next `n` values into `out`: the batch kernel, with the
    /// coding decided once per block instead of once per value.
    pub fn decode_into(&mut self, n: usize, out: &mut Vec<i64>) -> Result<()> {
        let start = out.len();
        out.resize(start + n, 0);
        let mut slots = out[start..].iter_mut();
        let result = self.decode_each(n, |v| {
            if let Some(s) = slots.next() {
                *s = v;
            }
        });
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// Calls `f` with each of the next `n` values.
    #[inline]
    pub fn decode_each(&mut self, mut n: usize, mut f: impl FnMut(i64)) -> Result<()> {
        if n > 0 && !self.started {
            self.started = true;
            f(self.prev);
            n -= 1;
        }
        let (mut prev, mut prev_q, g) = (self.prev, self.prev_q, self.divisor);
        if let Some(r) = self.prefix.as_mut() {
            let dod = self.dod;
            for _ in 0..n {
                let c = unzigzag(get_code(r)?);
                prev_q = if dod { prev_q.wrapping_add(c) } else { c };
                prev = prev.wrapping_add(prev_q.wrapping_mul(g));
                f(prev);
            }
            self.prev = prev;
            self.prev_q = prev_q;
            return Ok(());
        }
        while n > 0 {
            if self.at == self.len {
                self.refill()?;
            }
            let take = (self.len - self.at).min(n);
            let codes = &self.block[self.at..self.at + take];
            // Four loops so the common cases carry no multiply and no branch
            // in the prefix-sum chain.
            match (self.dod, g == 1) {
                (true, true) => {
                    for &c in codes {
                        prev_q = prev_q.wrapping_add(unzigzag(c));
                        prev = prev.wrapping_add(prev_q);
                        f(prev);
                    }
                }
                (true, false) => {
                    for &c in codes {
                        prev_q = prev_q.wrapping_add(unzigzag(c));
                        prev = prev.wrapping_add(prev_q.wrapping_mul(g));
                        f(prev);
                    }
                }
                (false, true) => {
                    for &c in codes {
                        prev_q = unzigzag(c);
                        prev = prev.wrapping_add(prev_q);
                        f(prev);
                    }
                }
                (false, false) => {
                    for &c in codes {
                        prev_q = unzigzag(c);
                        prev = prev.wrapping_add(prev_q.wrapping_mul(g));
                        f(prev);
                    }
                }
            }
            self.at += take;
            n -= take;
        }
        self.prev = prev;
        self.prev_q = prev_q;
        Ok(())
    }

    /// The next value.
    #[inline]
    pub fn next_value(&mut self) -> Result<i64> {
        if !self.started {
            self.started = true;
            return Ok(self.prev);
        }
        let c = if let Some(r) = self.prefix.as_mut() {
            unzigzag(get_code(r)?)
        } else {
            if self.at == self.len {
                self.refill()?;
            }
            self.at += 1;
            unzigzag(self.block[self.at - 1])
        };
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
        // The batch kernel agrees, also when started mid-way.
        let mut d = PackedDecoder::new(&out).unwrap();
        let split = values.len() / 3;
        let mut got: Vec<i64> = (0..split).map(|_| d.next_value().unwrap()).collect();
        d.decode_into(values.len() - split, &mut got).unwrap();
        assert_eq!(got, values);
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
        // One block of 2-bit codes (the first delta-of-delta), then empty blocks.
        assert!(round_trip(&steady) <= 1 + 2 + 8 + 1 + 8 + 7, "{}", round_trip(&steady));
        round_trip(&[]);
        round_trip(&[7]);
    }
}
