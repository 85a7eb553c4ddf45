//! Run-length bools: a varint count of ended runs, then the first value and
//! the length of each run that has ended (prefix-coded, see [`crate::int`]).
//! The last run is implied by the chunk's point count, so a constant series
//! costs one bit per chunk.

use crate::bits::{BitReader, BitWriter};
use crate::error::{Error, Result};
use crate::int::{get_code, put_code};

/// Appends bools.
#[derive(Debug, Clone, Default)]
pub struct BoolEncoder {
    w: BitWriter,
    current: Option<bool>,
    run: u64,
    ended: u64,
}

impl BoolEncoder {
    /// Appends one value.
    #[inline]
    pub fn push(&mut self, v: bool) {
        match self.current {
            None => {
                self.w.write_bit(v);
                self.current = Some(v);
                self.run = 1;
            }
            Some(c) if c == v => self.run += 1,
            Some(_) => {
                put_code(&mut self.w, self.run - 1);
                self.ended += 1;
                self.current = Some(v);
                self.run = 1;
            }
        }
    }

    /// Appends the encoded section.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        crate::varint::put_uvarint(out, self.ended);
        self.w.copy_to(out);
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.w.memory_bytes()
    }
}

/// Reads values written by [`BoolEncoder`].
#[derive(Debug, Clone)]
pub struct BoolDecoder<'a> {
    r: BitReader<'a>,
    current: Option<bool>,
    /// Values left in the current run; `None` for the open-ended last run.
    left: Option<u64>,
    /// Ended runs not yet read.
    runs: u64,
}

impl<'a> BoolDecoder<'a> {
    /// A decoder over `data`.
    pub fn new(data: &'a [u8]) -> Result<Self> {
        let mut br = crate::varint::ByteReader::new(data);
        let runs = br.uvarint()?;
        let rest = &data[data.len() - br.remaining()..];
        Ok(Self { r: BitReader::new(rest), current: None, left: None, runs })
    }

    fn read_run(&mut self) -> Result<Option<u64>> {
        if self.runs == 0 {
            return Ok(None);
        }
        self.runs -= 1;
        Ok(Some(get_code(&mut self.r)? + 1))
    }

    /// The next value.
    #[inline]
    pub fn next_value(&mut self) -> Result<bool> {
        match self.current {
            None => {
                let v = self.r.read_bit().ok_or(Error::Truncated("bool"))?;
                self.current = Some(v);
                self.left = self.read_run()?;
            }
            Some(c) => {
                if self.left == Some(0) {
                    self.current = Some(!c);
                    self.left = self.read_run()?;
                }
            }
        }
        if let Some(l) = self.left.as_mut() {
            *l -= 1;
        }
        self.current.ok_or(Error::Truncated("bool"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(vals in prop::collection::vec(any::<bool>(), 0..300), runs in any::<bool>()) {
            let vals: Vec<bool> = if runs { vals.iter().enumerate().map(|(i, _)| (i / 37) % 2 == 0).collect() } else { vals };
            let mut e = BoolEncoder::default();
            for &v in &vals { e.push(v); }
            let mut bytes = Vec::new();
            e.write_to(&mut bytes);
            let mut d = BoolDecoder::new(&bytes).unwrap();
            for &v in &vals { prop_assert_eq!(d.next_value().unwrap(), v); }
        }
    }
}
