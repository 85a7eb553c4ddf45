//! Packed integer sequences, for chunks that will not grow any more.
//!
//! An open chunk must encode as it goes, so it uses prefix-coded
//! delta-of-deltas. A sealed chunk knows all its values, so it stores them
//! in blocks of fixed-width bit fields with exceptions (patched
//! frame-of-reference, PFOR): each block of 32 codes picks the width that
//! minimises its size and stores the few codes that do not fit as
//! exceptions (position and full code). No bits go to per-value prefixes,
//! and a block unpacks with no branches per value, so this is both smaller
//! and several times faster to decode than prefix codes — also for sparse
//! columns, like a gauge that moves now and then, where most codes are zero.
//!
//! The encoder also picks the smaller of two codings — deltas or
//! delta-of-deltas — after dividing every delta by their greatest common
//! divisor: memory gauges move in whole 4 KiB pages, counters often in
//! fixed steps; a gauge's random walk is cheaper as deltas, a steady
//! counter as delta-of-deltas.
//!
//! Section: `u8 flags (bit 0: delta-of-delta) | uvarint divisor | uvarint
//! count | first value (8 bytes, LE; absent when count is 0) | blocks`. Each
//! block holds the zigzag codes of the next `min(32, left)` values:
//! `u8 head (width | 0x80 when exceptions follow) | [u8 exceptions | u8
//! exception width] | codes × width bits | exceptions × 5-bit positions |
//! exceptions × exception-width bits`, padded to a byte.

use crate::bits::{BitReader, BitWriter};
use crate::error::{Error, Result};
use crate::varint::{put_uvarint, unzigzag, zigzag, ByteReader};

const BLOCK: usize = 32;
const HAS_EXCEPTIONS: u8 = 0x80;

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

fn bit_width(c: u64) -> u32 {
    64 - c.leading_zeros()
}

/// The cheapest layout of one block: `(bits, width, exceptions)`.
fn plan(block: &[u64]) -> (usize, u32, usize) {
    // How many codes need each bit width; exceptions are the codes wider
    // than the chosen width, and their width is the widest code's.
    let mut hist = [0u8; 65];
    let mut full = 0;
    for &c in block {
        let w = bit_width(c) as usize;
        hist[w] += 1;
        full = full.max(w);
    }
    let mut best = (8 + block.len() * full, full as u32, 0);
    let mut wider = 0;
    for w in (0..full).rev() {
        wider += hist[w + 1] as usize;
        let bits = 8 + block.len() * w + 16 + wider * (5 + full);
        if bits < best.0 {
            best = (bits, w as u32, wider);
        }
    }
    best
}

/// The plan of every block, and their total size in bits.
fn plans(codes: &[u64]) -> (Vec<(usize, u32, usize)>, usize) {
    let p: Vec<_> = codes.chunks(BLOCK).map(plan).collect();
    let total = p.iter().map(|x| x.0).sum();
    (p, total)
}

fn put_block(out: &mut Vec<u8>, block: &[u64], (_, w, k): (usize, u32, usize)) {
    let mut bits = BitWriter::new();
    if k == 0 {
        out.push(w as u8);
        if w > 0 {
            for &c in block {
                bits.write(c, w);
            }
        }
    } else {
        let is_exception = |c: u64| bit_width(c) > w;
        let wx = block.iter().map(|&c| bit_width(c)).max().unwrap_or(0);
        out.push(w as u8 | HAS_EXCEPTIONS);
        out.push(k as u8);
        out.push(wx as u8);
        for &c in block {
            bits.write(if is_exception(c) { 0 } else { c }, w);
        }
        for (i, &c) in block.iter().enumerate() {
            if is_exception(c) {
                bits.write(i as u64, 5);
            }
        }
        for &c in block {
            if is_exception(c) {
                bits.write(c, wx);
            }
        }
    }
    bits.copy_to(out);
}

/// Appends the smallest packed encoding of `values`.
pub fn pack(out: &mut Vec<u8>, values: &[i64]) {
    pack_with(out, values, false)
}

/// Like [`pack`], but always with delta-of-deltas: for time columns, where
/// scrapes are regular and delta-of-deltas always win, sealing skips
/// planning the other coding.
pub fn pack_dod(out: &mut Vec<u8>, values: &[i64]) {
    pack_with(out, values, true)
}

fn pack_with(out: &mut Vec<u8>, values: &[i64], dod_only: bool) {
    let g = values.windows(2).fold(0u64, |g, p| gcd(g, p[1].wrapping_sub(p[0]).unsigned_abs()));
    // A divisor must divide every delta as a signed number and fit in i64.
    let divisor = if g == 0 || g > i64::MAX as u64 { 1 } else { g as i64 };
    let dod = codes(values, divisor, true);
    let (dod_plans, dod_bits) = plans(&dod);
    let (flags, best, best_plans) = if dod_only {
        (1u8, dod, dod_plans)
    } else {
        let delta = codes(values, divisor, false);
        let (delta_plans, delta_bits) = plans(&delta);
        if dod_bits < delta_bits {
            (1u8, dod, dod_plans)
        } else {
            (0u8, delta, delta_plans)
        }
    };
    out.push(flags);
    put_uvarint(out, divisor as u64);
    put_uvarint(out, values.len() as u64);
    let Some(first) = values.first() else { return };
    out.extend_from_slice(&first.to_le_bytes());
    for (block, plan) in best.chunks(BLOCK).zip(best_plans) {
        put_block(out, block, plan);
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
    /// Codes not yet unpacked.
    left: usize,
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
        if flags > 1 {
            return Err(Error::Corrupt(format!("unknown packed flags {flags:#x}")));
        }
        let divisor = br.uvarint()?;
        if divisor == 0 || divisor > i64::MAX as u64 {
            return Err(Error::Corrupt(format!("packed divisor {divisor}")));
        }
        // Every block takes at least one byte for up to 32 codes.
        let count = br.len(data.len().saturating_mul(BLOCK).saturating_add(1), "packed count")?;
        let first = if count > 0 { br.u64_le()? as i64 } else { 0 };
        let pos = data.len() - br.remaining();
        Ok(Self {
            data,
            pos,
            left: count.saturating_sub(1),
            dod: flags == 1,
            divisor: divisor as i64,
            started: false,
            prev: first,
            prev_q: 0,
            block: Box::new([0; BLOCK]),
            at: 0,
            len: 0,
        })
    }

    /// Unpacks the next block.
    fn refill(&mut self) -> Result<()> {
        let n = self.left.min(BLOCK);
        if n == 0 {
            return Err(Error::Truncated("packed codes"));
        }
        let t = || Error::Truncated("packed block");
        let head = *self.data.get(self.pos).ok_or_else(t)?;
        let w = u32::from(head & !HAS_EXCEPTIONS);
        if w > 64 {
            return Err(Error::Corrupt(format!("packed block width {w}")));
        }
        let (k, wx, start) = if head & HAS_EXCEPTIONS != 0 {
            let k = *self.data.get(self.pos + 1).ok_or_else(t)? as usize;
            let wx = u32::from(*self.data.get(self.pos + 2).ok_or_else(t)?);
            if k == 0 || k > n || wx > 64 {
                return Err(Error::Corrupt(format!("packed block with {k} exceptions of width {wx}")));
            }
            (k, wx, self.pos + 3)
        } else {
            (0, 0, self.pos + 1)
        };
        let base_bits = n * w as usize;
        let bytes = (base_bits + k * (5 + wx as usize)).div_ceil(8);
        let rest = self.data.get(start..start + bytes).ok_or_else(t)?;
        if w == 0 {
            self.block[..n].fill(0);
        } else if w <= 56 {
            // Word-at-a-time unpacking: no bounds checks or branches per
            // code. Reads run up to 8 bytes past the block, so a block near
            // the end of the section is unpacked from a zero-padded copy.
            match self.data.get(start..start + bytes + 8) {
                Some(src) => unpack(src, w, &mut self.block[..n]),
                None => {
                    let mut padded = [0u8; BLOCK * 8 + 8 + BLOCK * 9];
                    padded[..bytes].copy_from_slice(rest);
                    unpack(&padded[..bytes + 8], w, &mut self.block[..n]);
                }
            }
        } else {
            let mut r = BitReader::new(rest);
            for slot in self.block.iter_mut().take(n) {
                *slot = r.read(w).ok_or_else(t)?;
            }
        }
        if k > 0 {
            // Skip the base codes, then patch in the exceptions. Read from
            // the whole rest of the section so the reader rarely needs its
            // padded slow path near the end of the slice.
            let mut r = BitReader::new(&self.data[start..]);
            r.consume(base_bits as u32).ok_or_else(t)?;
            let mut positions = [0usize; BLOCK];
            for p in positions.iter_mut().take(k) {
                *p = r.read(5).ok_or_else(t)? as usize;
            }
            for &p in positions.iter().take(k) {
                let v = r.read(wx).ok_or_else(t)?;
                *self
                    .block
                    .get_mut(p)
                    .filter(|_| p < n)
                    .ok_or_else(|| Error::Corrupt(format!("exception at {p} of {n}")))? = v;
            }
        }
        self.pos = start + bytes;
        self.left -= n;
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
        let mut v = 0;
        self.decode_each(1, |x| v = x)?;
        Ok(v)
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
        // One block with one exception (the first delta-of-delta), then empty blocks.
        assert!(round_trip(&steady) <= 1 + 2 + 2 + 8 + 3 + 2 + 7, "{}", round_trip(&steady));
        round_trip(&[]);
        round_trip(&[7]);
    }
}
