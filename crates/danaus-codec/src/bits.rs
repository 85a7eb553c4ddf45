//! MSB-first bit streams.

/// Appends bits, most significant first.
#[derive(Debug, Clone, Default)]
pub struct BitWriter {
    buf: Vec<u8>,
    /// Pending bits in the low `n` bits (`n` < 64), oldest highest. A
    /// `u64`, not a `u128`: open columns hold one writer each, and a
    /// 16-byte-aligned field would pad every encoder that holds one.
    acc: u64,
    n: u32,
}

impl BitWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the low `bits` bits of `v` (`bits` ≤ 64).
    #[inline]
    pub fn write(&mut self, v: u64, bits: u32) {
        debug_assert!(bits <= 64);
        if bits == 0 {
            return;
        }
        let v = if bits == 64 { v } else { v & ((1u64 << bits) - 1) };
        if self.n + bits < 64 {
            self.acc = (self.acc << bits) | v;
            self.n += bits;
            return;
        }
        // A word fills up: its first `64 - n` bits are pending, the rest
        // come from the top of `v`; the low `rest` bits of `v` stay.
        let rest = self.n + bits - 64;
        let word = self.acc.checked_shl(64 - self.n).unwrap_or(0) | (v >> rest);
        if self.buf.len() == self.buf.capacity() {
            // Grow by a little, not by doubling: thousands of open chunks
            // would otherwise carry up to half their size as slack.
            self.buf.reserve_exact(64.max(self.buf.len() / 8));
        }
        self.buf.extend_from_slice(&word.to_be_bytes());
        self.acc = if rest == 0 { 0 } else { v & ((1u64 << rest) - 1) };
        self.n = rest;
    }

    /// Appends one bit.
    #[inline]
    pub fn write_bit(&mut self, bit: bool) {
        self.write(u64::from(bit), 1);
    }

    /// Number of bits written.
    pub fn bit_len(&self) -> usize {
        self.buf.len() * 8 + self.n as usize
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends the bits written so far, padded with zeros to whole bytes.
    pub fn copy_to(&self, out: &mut Vec<u8>) {
        self.copy_from_bit(0, out);
    }

    /// Appends the bits written so far from the byte that holds bit `bit`
    /// on, padded with zeros to whole bytes; returns where bit `bit` is in
    /// what was appended (`bit % 8`). A reader of a column's recent values
    /// copies only those.
    pub fn copy_from_bit(&self, bit: usize, out: &mut Vec<u8>) -> u32 {
        let byte = bit / 8;
        if let Some(whole) = self.buf.get(byte..) {
            out.extend_from_slice(whole);
        }
        let mut skip = byte.saturating_sub(self.buf.len());
        let mut rest = self.n;
        while rest > 0 {
            let take = rest.min(8);
            if skip == 0 {
                out.push(((self.acc >> (rest - take)) as u8) << (8 - take));
            } else {
                skip -= 1;
            }
            rest -= take;
        }
        (bit % 8) as u32
    }

    /// Number of bytes [`BitWriter::copy_to`] appends.
    pub fn byte_len(&self) -> usize {
        self.bit_len().div_ceil(8)
    }
}

/// Reads bits written by [`BitWriter`].
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// A reader at bit `pos` of `data`.
    pub fn at(data: &'a [u8], pos: usize) -> Self {
        Self { data, pos }
    }

    /// The 64 bits starting at the current position (zeros past the end).
    #[inline]
    pub fn peek64(&self) -> u64 {
        let byte = self.pos / 8;
        let off = (self.pos % 8) as u32;
        let (word, next) = match self.data.get(byte..byte + 9) {
            Some(s) => {
                let mut w = [0u8; 8];
                w.copy_from_slice(&s[..8]);
                (u64::from_be_bytes(w), s[8])
            }
            None => {
                let mut w = [0u8; 9];
                if let Some(s) = self.data.get(byte..) {
                    w[..s.len()].copy_from_slice(s);
                }
                let mut head = [0u8; 8];
                head.copy_from_slice(&w[..8]);
                (u64::from_be_bytes(head), w[8])
            }
        };
        if off == 0 {
            word
        } else {
            (word << off) | (u64::from(next) >> (8 - off))
        }
    }

    /// Skips `bits` bits that [`BitReader::peek64`] already returned.
    #[inline]
    pub fn consume(&mut self, bits: u32) -> Option<()> {
        if bits as usize > self.left() {
            return None;
        }
        self.pos += bits as usize;
        Some(())
    }

    /// Bits left.
    #[inline]
    fn left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// Reads `bits` (≤ 64) bits, or `None` past the end.
    #[inline]
    pub fn read(&mut self, bits: u32) -> Option<u64> {
        if bits == 0 {
            return Some(0);
        }
        if bits as usize > self.left() {
            return None;
        }
        let v = self.peek64() >> (64 - bits);
        self.pos += bits as usize;
        Some(v)
    }

    /// Reads one bit.
    #[inline]
    pub fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Some(bit == 1)
    }

    /// Counts leading one bits, up to `max` (≤ 32), consuming them and the
    /// zero that ends them (if fewer than `max`).
    #[inline]
    pub fn read_unary(&mut self, max: u32) -> Option<u32> {
        let left = self.left();
        if left == 0 {
            return None;
        }
        let ones = self.peek64().leading_ones().min(max);
        let used = if ones < max { ones + 1 } else { ones } as usize;
        if used > left {
            return None;
        }
        self.pos += used;
        Some(ones)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(items in prop::collection::vec((any::<u64>(), 0u32..=64), 0..200)) {
            let mut w = BitWriter::new();
            for (v, b) in &items { w.write(*v, *b); }
            let mut bytes = Vec::new();
            w.copy_to(&mut bytes);
            prop_assert_eq!(bytes.len(), w.byte_len());
            let mut r = BitReader::new(&bytes);
            for (v, b) in &items {
                let mask = if *b == 64 { u64::MAX } else { (1u64 << b) - 1 };
                prop_assert_eq!(r.read(*b).unwrap(), v & mask);
            }
        }
    }

    proptest! {
        #[test]
        fn copies_from_a_bit_read_the_same(items in prop::collection::vec((any::<u64>(), 0u32..=64), 1..100), pick in any::<prop::sample::Index>()) {
            let mut w = BitWriter::new();
            let mut starts = Vec::new();
            for (v, b) in &items {
                starts.push(w.bit_len());
                w.write(*v, *b);
            }
            let from = pick.index(items.len());
            let mut tail = vec![0xAB];
            let off = w.copy_from_bit(starts[from], &mut tail);
            let mut r = BitReader::at(&tail[1..], off as usize);
            for (v, b) in &items[from..] {
                let mask = if *b == 64 { u64::MAX } else { (1u64 << b) - 1 };
                prop_assert_eq!(r.read(*b).unwrap(), v & mask);
            }
        }
    }

    #[test]
    fn reading_past_the_end_is_none() {
        let mut r = BitReader::new(&[0xFF]);
        assert_eq!(r.read(4), Some(0xF));
        assert_eq!(r.read(5), None);
        assert_eq!(r.read(4), Some(0xF));
        assert_eq!(r.read_bit(), None);
    }
}
