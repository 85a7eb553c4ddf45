//! LEB128 varints and zigzag.

use crate::error::{Error, Result};

/// Maps signed to unsigned so small magnitudes stay small.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends an unsigned LEB128 varint.
#[inline]
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a zigzag varint.
#[inline]
pub fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

/// A cursor over bytes for the byte-oriented sections.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    /// A reader at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Reads an unsigned varint.
    pub fn uvarint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = *self.data.get(self.pos).ok_or(Error::Truncated("varint"))?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(Error::Corrupt("varint overflows 64 bits".into()));
            }
            v |= u64::from(b & 0x7F) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Error::Corrupt("varint longer than 10 bytes".into()))
    }

    /// Reads a zigzag varint.
    pub fn ivarint(&mut self) -> Result<i64> {
        self.uvarint().map(unzigzag)
    }

    /// Reads a varint that must fit in `usize` and not exceed `max`.
    pub fn len(&mut self, max: usize, what: &'static str) -> Result<usize> {
        let v = self.uvarint()?;
        if v > max as u64 {
            return Err(Error::Corrupt(format!("{what} {v} exceeds {max}")));
        }
        Ok(v as usize)
    }

    /// Reads `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self.data.get(self.pos..self.pos + n).ok_or(Error::Truncated("bytes"))?;
        self.pos += n;
        Ok(s)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    /// Reads 8 little-endian bytes.
    pub fn u64_le(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads a varint-length-prefixed section.
    pub fn section(&mut self) -> Result<&'a [u8]> {
        let n = self.len(self.remaining(), "section length")?;
        self.bytes(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(vals in prop::collection::vec(any::<i64>(), 0..100)) {
            let mut out = Vec::new();
            for v in &vals { put_ivarint(&mut out, *v); put_uvarint(&mut out, *v as u64); }
            let mut r = ByteReader::new(&out);
            for v in &vals {
                prop_assert_eq!(r.ivarint().unwrap(), *v);
                prop_assert_eq!(r.uvarint().unwrap(), *v as u64);
            }
            prop_assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn zigzag_edges() {
        for v in [0, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert!(ByteReader::new(&[0xFF; 11]).uvarint().is_err());
        assert!(ByteReader::new(&[0x80]).uvarint().is_err());
    }
}
