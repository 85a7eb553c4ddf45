//! Dictionary strings: each value is a prefix code of `0` (same as the
//! previous value) or `index + 1` into a per-chunk dictionary; a code one past
//! the dictionary's end adds the next dictionary entry.

use std::collections::HashMap;

use crate::bits::{BitReader, BitWriter};
use crate::error::{Error, Result};
use crate::int::{get_code, put_code};
use crate::varint::{put_uvarint, ByteReader};

/// Appends strings.
#[derive(Debug, Clone, Default)]
pub struct StringEncoder {
    w: BitWriter,
    dict: Vec<String>,
    index: HashMap<String, u32>,
    prev: Option<u32>,
}

impl StringEncoder {
    /// Appends one value.
    pub fn push(&mut self, v: &str) {
        let idx = match self.index.get(v) {
            Some(&i) => i,
            None => {
                let i = self.dict.len() as u32;
                self.dict.push(v.to_owned());
                self.index.insert(v.to_owned(), i);
                i
            }
        };
        if self.prev == Some(idx) {
            put_code(&mut self.w, 0);
        } else {
            put_code(&mut self.w, u64::from(idx) + 1);
        }
        self.prev = Some(idx);
    }

    /// Appends the encoded section: dictionary, then codes.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        put_uvarint(out, self.dict.len() as u64);
        for s in &self.dict {
            put_uvarint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        self.w.copy_to(out);
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.w.memory_bytes() + self.dict.iter().map(|s| 2 * s.capacity() + 64).sum::<usize>()
    }
}

/// Reads values written by [`StringEncoder`].
#[derive(Debug, Clone)]
pub struct StringDecoder<'a> {
    r: BitReader<'a>,
    dict: Vec<&'a str>,
    prev: Option<usize>,
}

impl<'a> StringDecoder<'a> {
    /// A decoder over a section.
    pub fn new(data: &'a [u8]) -> Result<Self> {
        let mut br = ByteReader::new(data);
        let n = br.len(data.len(), "dictionary size")?;
        let mut dict = Vec::with_capacity(n);
        for _ in 0..n {
            let len = br.len(br.remaining(), "string length")?;
            let s = std::str::from_utf8(br.bytes(len)?).map_err(|_| Error::Corrupt("string is not UTF-8".into()))?;
            dict.push(s);
        }
        let rest = &data[data.len() - br.remaining()..];
        Ok(Self { r: BitReader::new(rest), dict, prev: None })
    }

    /// The next value.
    pub fn next_value(&mut self) -> Result<&'a str> {
        let code = get_code(&mut self.r)?;
        let idx = if code == 0 {
            self.prev.ok_or_else(|| Error::Corrupt("first string refers to a previous one".into()))?
        } else {
            (code - 1) as usize
        };
        let s = self.dict.get(idx).ok_or_else(|| Error::Corrupt(format!("string index {idx} out of range")))?;
        self.prev = Some(idx);
        Ok(s)
    }
}
