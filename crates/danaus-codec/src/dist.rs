//! Distributions, byte-oriented: a flags byte (bit 0: bucketer follows),
//! the bucketer when it changed, bucket counts as zigzag-varint deltas from
//! the previous point's counts, mean and sum of squared deviation as raw
//! doubles, then exemplars. Cumulative distributions change few buckets per
//! point, so most deltas are one zero byte.

use std::collections::BTreeMap;

use danaus_model::{Bucketer, Distribution, Exemplar};

use crate::error::{Error, Result};

const MAX_BUCKETS: usize = 10_002;
use crate::varint::{put_ivarint, put_uvarint, ByteReader};

/// Appends distributions.
#[derive(Debug, Clone, Default)]
pub struct DistEncoder {
    buf: Vec<u8>,
    prev: Option<(Bucketer, Vec<u64>)>,
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_bucketer(out: &mut Vec<u8>, b: &Bucketer) {
    match b {
        Bucketer::Explicit { bounds } => {
            out.push(0);
            put_uvarint(out, bounds.len() as u64);
            for &x in bounds {
                put_f64(out, x);
            }
        }
        Bucketer::Linear { num_finite, width, offset } => {
            out.push(1);
            put_uvarint(out, u64::from(*num_finite));
            put_f64(out, *width);
            put_f64(out, *offset);
        }
        Bucketer::Exponential { num_finite, growth, scale } => {
            out.push(2);
            put_uvarint(out, u64::from(*num_finite));
            put_f64(out, *growth);
            put_f64(out, *scale);
        }
    }
}

fn get_f64(r: &mut ByteReader<'_>) -> Result<f64> {
    r.u64_le().map(f64::from_bits)
}

fn get_bucketer(r: &mut ByteReader<'_>) -> Result<Bucketer> {
    let max = MAX_BUCKETS;
    Ok(match r.u8()? {
        0 => {
            let n = r.len(max, "bucket bounds")?;
            let bounds = (0..n).map(|_| get_f64(r)).collect::<Result<_>>()?;
            Bucketer::Explicit { bounds }
        }
        1 => Bucketer::Linear { num_finite: r.len(max, "buckets")? as u32, width: get_f64(r)?, offset: get_f64(r)? },
        2 => {
            Bucketer::Exponential { num_finite: r.len(max, "buckets")? as u32, growth: get_f64(r)?, scale: get_f64(r)? }
        }
        k => return Err(Error::Corrupt(format!("unknown bucketer kind {k}"))),
    })
}

impl DistEncoder {
    /// Appends one distribution.
    pub fn push(&mut self, d: &Distribution) {
        let out = &mut self.buf;
        let same = matches!(&self.prev, Some((b, c)) if *b == d.bucketer && c.len() == d.bucket_counts.len());
        out.push(u8::from(!same));
        if !same {
            put_bucketer(out, &d.bucketer);
            put_uvarint(out, d.bucket_counts.len() as u64);
        }
        let zeros = vec![0u64; d.bucket_counts.len()];
        let prev_counts = match (&self.prev, same) {
            (Some((_, c)), true) => c.as_slice(),
            _ => zeros.as_slice(),
        };
        for (c, p) in d.bucket_counts.iter().zip(prev_counts) {
            put_ivarint(out, c.wrapping_sub(*p) as i64);
        }
        put_f64(out, d.mean);
        put_f64(out, d.sum_of_squared_deviation);
        put_uvarint(out, d.exemplars.len() as u64);
        for (b, e) in &d.exemplars {
            put_uvarint(out, u64::from(*b));
            put_f64(out, e.value);
            put_ivarint(out, e.time);
            put_bytes(out, &e.trace_id);
            put_bytes(out, &e.span_id);
            put_uvarint(out, e.attachments.len() as u64);
            for (k, v) in &e.attachments {
                put_bytes(out, k.as_bytes());
                put_bytes(out, v.as_bytes());
            }
        }
        self.prev = Some((d.bucketer.clone(), d.bucket_counts.clone()));
    }

    /// Appends the encoded section.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.buf);
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.buf.capacity() + self.prev.as_ref().map_or(0, |(_, c)| c.capacity() * 8 + 64)
    }
}

/// Reads values written by [`DistEncoder`].
#[derive(Debug, Clone)]
pub struct DistDecoder<'a> {
    r: ByteReader<'a>,
    prev: Option<(Bucketer, Vec<u64>)>,
}

fn get_string(r: &mut ByteReader<'_>) -> Result<String> {
    let n = r.len(r.remaining(), "string length")?;
    String::from_utf8(r.bytes(n)?.to_vec()).map_err(|_| Error::Corrupt("attachment is not UTF-8".into()))
}

impl<'a> DistDecoder<'a> {
    /// A decoder over a section.
    pub fn new(data: &'a [u8]) -> Self {
        Self { r: ByteReader::new(data), prev: None }
    }

    /// The next distribution.
    pub fn next_value(&mut self) -> Result<Distribution> {
        let r = &mut self.r;
        let changed = r.u8()? != 0;
        if changed {
            let b = get_bucketer(r)?;
            let n = r.len(MAX_BUCKETS, "bucket count")?;
            self.prev = Some((b, vec![0; n]));
        }
        let (bucketer, prev) =
            self.prev.as_mut().ok_or_else(|| Error::Corrupt("distribution without bucketer".into()))?;
        for c in prev.iter_mut() {
            *c = c.wrapping_add(r.ivarint()? as u64);
        }
        let mean = get_f64(r)?;
        let ssd = get_f64(r)?;
        let ne = r.len(prev.len(), "exemplar count")?;
        let mut exemplars = Vec::with_capacity(ne);
        for _ in 0..ne {
            let b = r.len(u32::MAX as usize, "exemplar bucket")? as u32;
            let value = get_f64(r)?;
            let time = r.ivarint()?;
            let n = r.len(r.remaining(), "trace id")?;
            let trace_id = r.bytes(n)?.to_vec();
            let n = r.len(r.remaining(), "span id")?;
            let span_id = r.bytes(n)?.to_vec();
            let na = r.len(r.remaining(), "attachments")?;
            let mut attachments = BTreeMap::new();
            for _ in 0..na {
                let k = get_string(r)?;
                attachments.insert(k, get_string(r)?);
            }
            exemplars.push((b, Exemplar { value, time, trace_id, span_id, attachments }));
        }
        Ok(Distribution {
            bucketer: bucketer.clone(),
            count: prev.iter().fold(0u64, |a, c| a.wrapping_add(*c)),
            bucket_counts: prev.clone(),
            mean,
            sum_of_squared_deviation: ssd,
            exemplars,
        })
    }
}
