//! Time columns: delta-of-delta ([`crate::int`]) over times divided by a
//! per-chunk unit `10^k` (k ≤ 9), the largest that divides every time so
//! far. Prometheus-style millisecond times cost their jitter in
//! milliseconds, not nanoseconds. The unit only ever shrinks: when a time
//! is not a multiple of it the column is re-encoded with a smaller one
//! (at most nine times per chunk).
//!
//! Section: `u8 k | delta-of-delta bits`, or for a sealed chunk
//! `u8 0x80 | k` then a [`crate::packed`] sequence.

use crate::error::{Error, Result};
use crate::int::{IntDecoder, IntEncoder};
use crate::mark::Mark;
use crate::packed::{pack_dod, PackedDecoder};

const POW10: [i64; 10] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000];

fn unit_exp(t: i64, max: u8) -> u8 {
    (0..=max).rev().find(|&k| t % POW10[k as usize] == 0).unwrap_or(0)
}

/// Appends times.
#[derive(Debug, Clone, Default)]
pub struct TimeEncoder {
    exp: u8,
    ints: IntEncoder,
    count: u32,
    last: i64,
}

impl TimeEncoder {
    /// Appends one time.
    #[inline]
    pub fn push(&mut self, t: i64) {
        if self.count == 0 {
            self.exp = unit_exp(t, 9);
        } else if t % POW10[self.exp as usize] != 0 {
            self.rescale(unit_exp(t, self.exp));
        }
        self.ints.push(t / POW10[self.exp as usize]);
        self.count += 1;
        self.last = t;
    }

    fn rescale(&mut self, exp: u8) {
        let factor = POW10[(self.exp - exp) as usize];
        let mut ints = IntEncoder::new();
        for v in self.ints.values() {
            ints.push(v * factor);
        }
        self.ints = ints;
        self.exp = exp;
    }

    /// Appends the section in its packed form (for sealed chunks).
    pub fn write_packed(&self, out: &mut Vec<u8>) {
        out.push(0x80 | self.exp);
        pack_dod(out, &self.ints.values());
    }

    /// The last time pushed.
    pub fn last(&self) -> Option<i64> {
        (self.count > 0).then_some(self.last)
    }

    /// Appends the section.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.push(self.exp);
        self.ints.bits().copy_to(out);
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.ints.memory_bytes()
    }

    /// The column's marks ([`crate::mark`]) at indices at most `len`,
    /// newest first, each as the index of the value after it and the time
    /// before it.
    pub fn marks(&self, len: usize) -> impl Iterator<Item = (u32, i64)> + '_ {
        let unit = POW10[self.exp as usize];
        self.ints.marks(len).map(move |m: Mark<_>| (m.index, m.state.0.wrapping_mul(unit)))
    }

    /// A decoder of the times from `index` on, over bits copied into
    /// `out` (which must be empty): from the first time when `index` is 0,
    /// else from the column's mark there; `None` when no mark is held at
    /// `index`.
    pub fn decoder_from<'a>(&self, index: u32, out: &'a mut Vec<u8>) -> Option<TimeDecoder<'a>> {
        let unit = POW10[self.exp as usize];
        if index == 0 {
            self.write_to(out);
            return TimeDecoder::new(out).ok();
        }
        let m = self.ints.mark_at(index)?;
        Some(TimeDecoder { unit, ints: Units::Open(self.ints.resume_from(m, out)) })
    }
}

impl TimeEncoder {
    /// Number of times pushed.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no time was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// An encoder holding only the first `n` times of this one.
    pub fn prefix(&self, n: usize) -> TimeEncoder {
        let mut out = TimeEncoder::default();
        if n == 0 {
            return out;
        }
        let mut bytes = Vec::new();
        self.write_to(&mut bytes);
        if let Ok(mut d) = TimeDecoder::new(&bytes) {
            for _ in 0..n.min(self.count as usize) {
                // Our own bits: decoding cannot fail.
                out.push(d.next_value().unwrap_or(0));
            }
        }
        out
    }
}

/// How many recent times a [`SharedTimes`] remembers for followers.
const RECENT: usize = 64;

/// One time column shared by the open chunks of every series of a target
/// (Monarch's shared timestamp column): series scraped together append the
/// same times, so the first to append a time writes it and the others only
/// count it. A series whose time differs copies the prefix it shares and
/// goes on alone.
#[derive(Debug, Default)]
pub struct SharedTimes {
    enc: TimeEncoder,
    /// The last `RECENT` times, so a follower up to that far behind can
    /// check its time without decoding.
    recent: std::collections::VecDeque<i64>,
}

impl SharedTimes {
    /// Times written so far.
    pub fn len(&self) -> usize {
        self.enc.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.enc.is_empty()
    }

    /// The time at position `i`, if still remembered.
    pub fn recent_at(&self, i: usize) -> Option<i64> {
        let first = self.len() - self.recent.len();
        i.checked_sub(first).and_then(|k| self.recent.get(k).copied())
    }

    /// Appends a time at position `len()`.
    pub fn push(&mut self, t: i64) {
        self.enc.push(t);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(t);
    }

    /// The encoder.
    pub fn encoder(&self) -> &TimeEncoder {
        &self.enc
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.enc.memory_bytes() + self.recent.capacity() * 8
    }
}

#[allow(clippy::large_enum_variant)] // decoders live on the stack for one chunk
#[derive(Debug, Clone)]
enum Units<'a> {
    Open(IntDecoder<'a>),
    Packed(PackedDecoder<'a>),
}

/// Reads [`TimeEncoder`]'s section.
#[derive(Debug, Clone)]
pub struct TimeDecoder<'a> {
    unit: i64,
    ints: Units<'a>,
}

impl<'a> TimeDecoder<'a> {
    /// A decoder over a section.
    pub fn new(data: &'a [u8]) -> Result<Self> {
        let (&mode, rest) = data.split_first().ok_or(Error::Truncated("time unit"))?;
        let exp = mode & 0x7F;
        let unit = *POW10.get(exp as usize).ok_or_else(|| Error::Corrupt(format!("time unit 10^{exp}")))?;
        let ints = if mode & 0x80 != 0 {
            Units::Packed(PackedDecoder::new(rest)?)
        } else {
            Units::Open(IntDecoder::new(rest))
        };
        Ok(Self { unit, ints })
    }

    /// Decodes the next `n` times into `out`.
    pub fn decode_into(&mut self, n: usize, out: &mut Vec<i64>) -> Result<()> {
        let from = out.len();
        out.resize(from + n, 0);
        let r = self.decode_to(&mut out[from..]);
        if r.is_err() {
            out.truncate(from);
        }
        r
    }

    /// Decodes the next `out.len()` times into `out`, scaling while
    /// decoding (one pass over the output).
    pub fn decode_to(&mut self, out: &mut [i64]) -> Result<()> {
        let unit = self.unit;
        let n = out.len();
        let mut slots = out.iter_mut();
        let mut put = |v: i64| {
            if let Some(s) = slots.next() {
                *s = v.wrapping_mul(unit);
            }
        };
        match &mut self.ints {
            Units::Open(d) => {
                for _ in 0..n {
                    put(d.next_value()?);
                }
                Ok(())
            }
            Units::Packed(d) => d.decode_each(n, put),
        }
    }

    /// The next time.
    #[inline]
    pub fn next_value(&mut self) -> Result<i64> {
        let v = match &mut self.ints {
            Units::Open(d) => d.next_value()?,
            Units::Packed(d) => d.next_value()?,
        };
        Ok(v.wrapping_mul(self.unit))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(ts: &[i64]) -> usize {
        let mut e = TimeEncoder::default();
        for &t in ts {
            e.push(t);
        }
        let mut packed = Vec::new();
        e.write_packed(&mut packed);
        let mut d = TimeDecoder::new(&packed).unwrap();
        for &t in ts {
            assert_eq!(d.next_value().unwrap(), t);
        }
        let mut out = Vec::new();
        e.write_to(&mut out);
        let mut d = TimeDecoder::new(&out).unwrap();
        for &t in ts {
            assert_eq!(d.next_value().unwrap(), t);
        }
        out.len()
    }

    proptest! {
        #[test]
        fn any_times_round_trip(ts in prop::collection::vec(prop_oneof![any::<i64>(), (-1000i64..1000).prop_map(|x| x * 1_000_000)], 0..100)) {
            round_trip(&ts);
        }
    }

    #[test]
    fn decoding_from_a_mark_reads_the_rest_across_a_unit_change() {
        let mut ts: Vec<i64> = (0..100).map(|i| 1_700_000_000_000_000_000 + i * 15_000_000_000).collect();
        ts.push(ts[99] + 15_000_000_001);
        let t100 = ts[100];
        ts.extend((1..40).map(|i| t100 + i * 15_000_000_000));
        let mut e = TimeEncoder::default();
        for &t in &ts {
            e.push(t);
        }
        let marks: Vec<_> = e.marks(ts.len()).collect();
        assert_eq!(marks.iter().map(|m| m.0).collect::<Vec<_>>(), [128, 96]);
        for (index, before) in marks {
            assert_eq!(before, ts[index as usize - 1]);
            let mut buf = Vec::new();
            let mut d = e.decoder_from(index, &mut buf).unwrap();
            for &t in &ts[index as usize..] {
                assert_eq!(d.next_value().unwrap(), t);
            }
        }
        assert!(e.marks(100).all(|m| m.0 <= 100));
        assert!(e.decoder_from(64, &mut Vec::new()).is_none(), "only the newest two marks are kept");
        let mut buf = Vec::new();
        let mut d = e.decoder_from(0, &mut buf).unwrap();
        assert_eq!(d.next_value().unwrap(), ts[0]);
    }

    #[test]
    fn millisecond_jitter_is_cheap_and_unit_shrinks() {
        let ms: Vec<i64> =
            (0..240).map(|i| 1_700_000_000_000_000_000 + i * 15_000_000_000 + ((i * 7) % 11 - 5) * 1_000_000).collect();
        let bytes = round_trip(&ms);
        assert!(bytes < 1 + 16 + 240, "{bytes} bytes for 240 ms-jittered times");
        let mut mixed = ms.clone();
        mixed.push(ms[239] + 15_000_000_001);
        mixed.push(ms[239] + 30_000_000_000);
        round_trip(&mixed);
        round_trip(&[i64::MIN, 0, i64::MAX, -5]);
    }
}
