//! Chunks: the unit a leaf keeps in memory and flushes to long-term storage.
//!
//! A [`ChunkBuilder`] appends points of one series into per-column encoders;
//! [`ChunkBuilder::finish`] serialises them into an immutable [`Chunk`]:
//!
//! ```text
//! u8 version (1) | value type | u8 flags (bit 0: start column)
//! uvarint count | zigzag min time | zigzag max time
//! section times | [section starts] | one section per scalar column
//! ```
//! where a section is a uvarint length and its bytes. Points keep the order
//! they were pushed in; callers push in time order.

use danaus_model::{Point, ScalarType, Value, ValueType};

use crate::column::{put_section, scalars, ScalarDecoder, ScalarEncoder, StartDecoder, StartEncoder};
use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};

use crate::time::{SharedTimes, TimeDecoder, TimeEncoder};
use crate::varint::{put_ivarint, put_uvarint, ByteReader};

const VERSION: u8 = 2;

fn scalar_code(s: ScalarType) -> u8 {
    match s {
        ScalarType::Bool => 1,
        ScalarType::Int64 => 2,
        ScalarType::Double => 3,
        ScalarType::String => 4,
        ScalarType::Distribution => 5,
    }
}

fn scalar_from(code: u8) -> Result<ScalarType> {
    Ok(match code {
        1 => ScalarType::Bool,
        2 => ScalarType::Int64,
        3 => ScalarType::Double,
        4 => ScalarType::String,
        5 => ScalarType::Distribution,
        c => return Err(Error::Corrupt(format!("unknown scalar type code {c}"))),
    })
}

/// Appends the value-type descriptor.
pub fn put_value_type(out: &mut Vec<u8>, t: &ValueType) {
    match t {
        ValueType::Scalar(s) => out.push(scalar_code(*s)),
        ValueType::Tuple(items) => {
            out.push(0x10);
            put_uvarint(out, items.len() as u64);
            out.extend(items.iter().map(|s| scalar_code(*s)));
        }
    }
}

/// Reads a value-type descriptor.
pub fn get_value_type(r: &mut ByteReader<'_>) -> Result<ValueType> {
    match r.u8()? {
        0x10 => {
            let n = r.len(256, "tuple size")?;
            Ok(ValueType::Tuple((0..n).map(|_| r.u8().and_then(scalar_from)).collect::<Result<_>>()?))
        }
        c => scalar_from(c).map(ValueType::Scalar),
    }
}

/// The time column of a [`ChunkBuilder`]: its own, or a prefix of a column
/// shared with the other series of its target.
#[derive(Debug, Clone)]
enum Times {
    Own(Box<TimeEncoder>),
    Shared { col: Arc<Mutex<SharedTimes>>, len: usize, last: i64 },
}

impl Times {
    fn push(&mut self, t: i64) {
        let Times::Shared { col, len, last } = self else {
            if let Times::Own(e) = self {
                e.push(t);
            }
            return;
        };
        let mut c = col.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() == *len {
            // First of the target's series to get this time: write it.
            c.push(t);
        } else if c.recent_at(*len) != Some(t) {
            // Diverged: copy the shared prefix and go on alone.
            let mut own = c.encoder().prefix(*len);
            drop(c);
            own.push(t);
            *self = Times::Own(Box::new(own));
            return;
        }
        *len += 1;
        *last = t;
    }

    fn last(&self) -> Option<i64> {
        match self {
            Times::Own(e) => e.last(),
            Times::Shared { len, last, .. } => (*len > 0).then_some(*last),
        }
    }

    fn write_packed(&self, out: &mut Vec<u8>) {
        match self {
            Times::Own(e) => e.write_packed(out),
            Times::Shared { col, len, .. } => {
                let c = col.lock().unwrap_or_else(|p| p.into_inner());
                c.encoder().prefix(*len).write_packed(out);
            }
        }
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Times::Own(e) => e.write_to(out),
            Times::Shared { col, len, .. } => {
                let c = col.lock().unwrap_or_else(|p| p.into_inner());
                if c.len() == *len {
                    c.encoder().write_to(out);
                } else {
                    c.encoder().prefix(*len).write_to(out);
                }
            }
        }
    }

    /// Calls `f` with the time encoder and how many of its times are this
    /// column's.
    fn with_encoder<R>(&self, f: impl FnOnce(&TimeEncoder, usize) -> R) -> R {
        match self {
            Times::Own(e) => f(e, e.len()),
            Times::Shared { col, len, .. } => f(col.lock().unwrap_or_else(|p| p.into_inner()).encoder(), *len),
        }
    }

    fn memory_bytes(&self) -> usize {
        match self {
            Times::Own(e) => std::mem::size_of::<TimeEncoder>() + e.memory_bytes(),
            Times::Shared { col, .. } => {
                let c = col.lock().unwrap_or_else(|p| p.into_inner());
                (c.memory_bytes() + std::mem::size_of::<SharedTimes>()) / Arc::strong_count(col).max(1)
            }
        }
    }
}

/// Builds one chunk point by point.
#[derive(Debug, Clone)]
pub struct ChunkBuilder {
    value_type: ValueType,
    count: u32,
    min_time: i64,
    max_time: i64,
    times: Times,
    starts: Option<Box<StartEncoder>>,
    columns: Vec<ScalarEncoder>,
    /// Whether every point was newer than the one before (reads may then
    /// start at a mark).
    ordered: bool,
}

impl ChunkBuilder {
    /// An empty chunk for values of `value_type`; `has_start` adds the
    /// start-time column (cumulative and delta kinds).
    pub fn new(value_type: ValueType, has_start: bool) -> Self {
        let columns = scalars(&value_type).iter().map(|s| ScalarEncoder::new(*s)).collect();
        Self {
            value_type,
            count: 0,
            min_time: i64::MAX,
            max_time: i64::MIN,
            times: Times::Own(Box::default()),
            starts: has_start.then(Box::default),
            columns,
            ordered: true,
        }
    }

    /// Like [`ChunkBuilder::new`], but appending its times to `col`, a
    /// column shared with other builders. Pass a column that is empty or
    /// whose first time is this chunk's first time; a builder whose times
    /// differ from the column's quietly switches to a column of its own.
    pub fn with_shared_times(value_type: ValueType, has_start: bool, col: Arc<Mutex<SharedTimes>>) -> Self {
        let mut b = Self::new(value_type, has_start);
        b.times = Times::Shared { col, len: 0, last: 0 };
        b
    }

    /// Whether the builder still shares its time column.
    pub fn shares_times(&self) -> bool {
        matches!(self.times, Times::Shared { .. })
    }

    /// Appends a point. On error nothing was appended.
    pub fn push(&mut self, p: &Point) -> Result<()> {
        self.check(&p.value)?;
        self.push_unchecked(p);
        Ok(())
    }

    fn check(&self, v: &Value) -> Result<()> {
        let ok = match (v, &self.value_type) {
            (Value::Tuple(items), ValueType::Tuple(types)) => {
                items.len() == types.len() && items.iter().zip(types).all(|(v, t)| v.scalar_type() == Some(*t))
            }
            (v, ValueType::Scalar(t)) => v.scalar_type() == Some(*t),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::TypeMismatch { expected: self.value_type.to_string(), value: v.to_string() })
        }
    }

    fn push_unchecked(&mut self, p: &Point) {
        self.ordered &= self.count == 0 || p.end_time > self.max_time;
        self.times.push(p.end_time);
        if let Some(s) = self.starts.as_mut() {
            s.push(p.start_time, p.end_time);
        }
        match &p.value {
            Value::Tuple(items) => {
                for (c, v) in self.columns.iter_mut().zip(items) {
                    let _ = c.push(v);
                }
            }
            v => {
                if let Some(c) = self.columns.first_mut() {
                    let _ = c.push(v);
                }
            }
        }
        self.count += 1;
        self.min_time = self.min_time.min(p.end_time);
        self.max_time = self.max_time.max(p.end_time);
    }

    /// Appends a double point with no start time (the hot path of
    /// Prometheus-style data): no `Value` is built.
    #[inline]
    pub fn push_double(&mut self, t: i64, v: f64) -> Result<()> {
        match (self.columns.as_mut_slice(), &self.starts) {
            ([ScalarEncoder::Double(e)], None) => {
                self.ordered &= self.count == 0 || t > self.max_time;
                self.times.push(t);
                e.push(v);
                self.count += 1;
                self.min_time = self.min_time.min(t);
                self.max_time = self.max_time.max(t);
                Ok(())
            }
            _ => self.push(&Point::gauge(t, Value::Double(v))),
        }
    }

    /// Prefetches what the next push reads besides the builder itself:
    /// its columns' encoders and the start-time encoder, each in memory of
    /// its own.
    pub fn prefetch(&self) {
        let columns = self.columns.as_ptr_range();
        let mut p = columns.start.cast::<u8>();
        while p < columns.end.cast::<u8>() {
            crate::prefetch(p);
            p = p.wrapping_add(64);
        }
        if let Some(s) = &self.starts {
            crate::prefetch(&**s);
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no point was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Smallest end time, if any point was pushed.
    pub fn min_time(&self) -> Option<i64> {
        (self.count > 0).then_some(self.min_time)
    }

    /// Largest end time, if any point was pushed.
    pub fn max_time(&self) -> Option<i64> {
        (self.count > 0).then_some(self.max_time)
    }

    /// End time of the last point pushed.
    pub fn last_time(&self) -> Option<i64> {
        self.times.last()
    }

    /// Whether points carry start times.
    pub fn has_start(&self) -> bool {
        self.starts.is_some()
    }

    /// The value type.
    pub fn value_type(&self) -> &ValueType {
        &self.value_type
    }

    /// Bytes held: the builder itself and its encoders' heap.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.times.memory_bytes()
            + self.starts.as_ref().map_or(0, |s| std::mem::size_of::<StartEncoder>() + s.memory_bytes())
            + self.columns.capacity() * std::mem::size_of::<ScalarEncoder>()
            + self.columns.iter().map(ScalarEncoder::memory_bytes).sum::<usize>()
    }

    /// Bytes of encoded data the points take (what [`ChunkBuilder::finish`]
    /// would produce), counting a shared time column in equal parts per
    /// sharer: the compression, without the encoders' own overhead.
    pub fn encoded_bytes(&self) -> usize {
        let full = self.finish().as_bytes().len();
        match &self.times {
            Times::Own(_) => full,
            Times::Shared { col, .. } => {
                let mut t = Vec::new();
                self.times.write_to(&mut t);
                full - t.len() + t.len() / Arc::strong_count(col).max(1)
            }
        }
    }

    /// Appends the end times and values of the points in `[start, end]`
    /// of a double chunk (start times, if any, are not read), in the order
    /// they were pushed, without serialising the chunk. When the points
    /// came in time order, decoding starts at the newest mark of both
    /// columns before `start` ([`crate::mark`]), so a read of the last few
    /// points decodes few more; else at the first point.
    pub fn read_doubles_in(&self, start: i64, end: i64, times: &mut Vec<i64>, values: &mut Vec<f64>) -> Result<()> {
        let [ScalarEncoder::Double(col)] = self.columns.as_slice() else {
            return Err(Error::TypeMismatch { expected: "double".into(), value: self.value_type.to_string() });
        };
        if self.count == 0 || self.max_time < start || self.min_time > end {
            return Ok(());
        }
        let t0 = times.len();
        // Times first (under the shared column's lock, if shared): the
        // newest mark both columns hold whose preceding time is before
        // `start` — every point from `start` on follows it.
        let index = self.times.with_encoder(|enc, len| {
            let index = if self.ordered && self.min_time < start {
                enc.marks(len).find(|&(i, before)| before < start && col.holds_mark(i)).map_or(0, |(i, _)| i)
            } else {
                0
            };
            let mut buf = Vec::new();
            let mut d =
                enc.decoder_from(index, &mut buf).ok_or_else(|| Error::Corrupt("a time column lost a mark".into()))?;
            d.decode_into((self.count - index) as usize, times).map(|_| index)
        })?;
        let mut buf = Vec::new();
        let mut vd =
            col.decoder_from(index, &mut buf).ok_or_else(|| Error::Corrupt("a double column lost a mark".into()))?;
        if let Err(e) = vd.decode_into((self.count - index) as usize, values) {
            times.truncate(t0);
            return Err(e);
        }
        if self.min_time < start || self.max_time > end {
            retain_range(times, values, times.len() - t0, start, end);
        }
        Ok(())
    }

    /// Serialises the points pushed so far; the builder can keep going.
    pub fn finish(&self) -> Chunk {
        self.serialise(false)
    }

    /// Serialises the points for a chunk that is done growing: integer
    /// and decimal columns take their smallest packed coding
    /// ([`crate::packed`]). Slower than [`ChunkBuilder::finish`]; meant for
    /// sealing.
    pub fn finish_packed(&self) -> Chunk {
        self.serialise(true)
    }

    fn serialise(&self, packed: bool) -> Chunk {
        let mut out = Vec::with_capacity(64 + self.memory_bytes() / 2);
        out.push(VERSION);
        put_value_type(&mut out, &self.value_type);
        out.push(u8::from(self.starts.is_some()));
        put_uvarint(&mut out, u64::from(self.count));
        put_ivarint(&mut out, if self.count == 0 { 0 } else { self.min_time });
        put_ivarint(&mut out, if self.count == 0 { 0 } else { self.max_time });
        put_section(&mut out, |o| if packed { self.times.write_packed(o) } else { self.times.write_to(o) });
        if let Some(s) = &self.starts {
            put_section(&mut out, |o| s.write_to(o));
        }
        for c in &self.columns {
            put_section(&mut out, |o| if packed { c.write_packed(o) } else { c.write_to(o) });
        }
        out.shrink_to_fit();
        Chunk { bytes: out }
    }
}

/// Of the last `new` points of the columns `times` and `values`, keeps
/// those whose times are in `[start, end]`, in order (compacting in place);
/// earlier points are left alone.
pub fn retain_range(times: &mut Vec<i64>, values: &mut Vec<f64>, new: usize, start: i64, end: i64) {
    let (tf, vf) = (times.len() - new.min(times.len()), values.len() - new.min(values.len()));
    let mut kept = 0;
    for k in 0..new.min(times.len() - tf).min(values.len() - vf) {
        let t = times[tf + k];
        if t >= start && t <= end {
            times[tf + kept] = t;
            values[vf + kept] = values[vf + k];
            kept += 1;
        }
    }
    times.truncate(tf + kept);
    values.truncate(vf + kept);
}

/// Upper bound on points per byte of chunk data, for plausibility checks.
const MAX_POINTS_PER_BYTE: usize = 256;

/// An immutable, serialised chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    bytes: Vec<u8>,
}

/// The fixed header of a chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkHeader {
    /// Value type of every point.
    pub value_type: ValueType,
    /// Whether points carry start times.
    pub has_start: bool,
    /// Number of points.
    pub count: u32,
    /// Smallest end time.
    pub min_time: i64,
    /// Largest end time.
    pub max_time: i64,
}

impl Chunk {
    /// Wraps bytes read back from storage; [`Chunk::header`] and
    /// [`Chunk::iter`] validate them.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    /// The serialised bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Consumes the chunk, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.bytes.capacity() + std::mem::size_of::<Self>()
    }

    fn parse(&self) -> Result<(ChunkHeader, ByteReader<'_>)> {
        let mut r = ByteReader::new(&self.bytes);
        let v = r.u8()?;
        if v != VERSION {
            return Err(Error::Corrupt(format!("unknown chunk version {v}")));
        }
        let value_type = get_value_type(&mut r)?;
        let has_start = match r.u8()? {
            0 => false,
            1 => true,
            f => return Err(Error::Corrupt(format!("unknown chunk flags {f:#x}"))),
        };
        let count = r.len(u32::MAX as usize, "point count")? as u32;
        let min_time = r.ivarint()?;
        let max_time = r.ivarint()?;
        // Decoders size their output by the count: a corrupt count must not
        // make them allocate more than the bytes could possibly hold. The
        // densest coding (packed blocks of 32 equal deltas) still spends a
        // byte per block and column, so 256 points per byte is generous.
        if count as usize > MAX_POINTS_PER_BYTE * r.remaining() + 256 {
            return Err(Error::Corrupt(format!("chunk claims {count} points in {} bytes of data", r.remaining())));
        }
        Ok((ChunkHeader { value_type, has_start, count, min_time, max_time }, r))
    }

    /// Reads the header.
    pub fn header(&self) -> Result<ChunkHeader> {
        self.parse().map(|(h, _)| h)
    }

    /// Iterates over the points.
    pub fn iter(&self) -> Result<ChunkIter<'_>> {
        let (header, mut r) = self.parse()?;
        let times = TimeDecoder::new(r.section()?)?;
        let starts = if header.has_start { Some(StartDecoder::new(r.section()?)) } else { None };
        let mut columns = Vec::new();
        for s in scalars(&header.value_type) {
            columns.push(ScalarDecoder::new(*s, r.section()?)?);
        }
        let tuple = matches!(header.value_type, ValueType::Tuple(_));
        Ok(ChunkIter { left: header.count, times, starts, columns, tuple })
    }

    /// Byte range of the time column's section payload. Series of one
    /// target scraped together have identical time sections, so a leaf can
    /// store that range once for all of them.
    pub fn time_section(&self) -> Result<std::ops::Range<usize>> {
        let (_, mut r) = self.parse()?;
        let before = r.remaining();
        let sec = r.section()?;
        let start = self.bytes.len() - before + (before - r.remaining() - sec.len());
        Ok(start..start + sec.len())
    }

    /// Decodes every point.
    pub fn points(&self) -> Result<Vec<Point>> {
        self.iter()?.collect()
    }
}

/// Iterator over a chunk's points; yields an error once on corrupt data.
#[derive(Debug, Clone)]
pub struct ChunkIter<'a> {
    left: u32,
    times: TimeDecoder<'a>,
    starts: Option<StartDecoder<'a>>,
    columns: Vec<ScalarDecoder<'a>>,
    tuple: bool,
}

impl ChunkIter<'_> {
    fn next_point(&mut self) -> Result<Point> {
        let end_time = self.times.next_value()?;
        let start_time = match self.starts.as_mut() {
            Some(s) => s.next_value(end_time)?,
            None => None,
        };
        let value = if self.tuple {
            Value::Tuple(self.columns.iter_mut().map(|c| c.next_value()).collect::<Result<_>>()?)
        } else {
            self.columns.first_mut().ok_or_else(|| Error::Corrupt("no value column".into()))?.next_value()?
        };
        Ok(Point { start_time, end_time, value })
    }

    /// Decodes every remaining point of a double chunk without start times
    /// into `times` and `values`: the batch kernel for numeric scans, which
    /// decides each column's coding once, not once per point.
    pub fn read_doubles(&mut self, times: &mut Vec<i64>, values: &mut Vec<f64>) -> Result<()> {
        self.read_doubles_vec(times, values, false)
    }

    /// Like [`ChunkIter::read_doubles`], for a double chunk with or
    /// without start times: the start times are skipped, not decoded (for
    /// readers that only need when each point was and its value).
    pub fn read_doubles_skipping_starts(&mut self, times: &mut Vec<i64>, values: &mut Vec<f64>) -> Result<()> {
        self.read_doubles_vec(times, values, true)
    }

    fn read_doubles_vec(&mut self, times: &mut Vec<i64>, values: &mut Vec<f64>, skip_starts: bool) -> Result<()> {
        let n = self.left as usize;
        let (t0, v0) = (times.len(), values.len());
        times.resize(t0 + n, 0);
        values.resize(v0 + n, 0.0);
        let r = self.read_doubles_into(&mut times[t0..], &mut values[v0..], skip_starts);
        if r.is_err() {
            times.truncate(t0);
            values.truncate(v0);
        }
        r.map(|_| ())
    }

    /// Like [`ChunkIter::read_doubles`], into slices the caller reuses:
    /// decodes the remaining points into the front of `times` and `values`
    /// (each must hold at least that many) and returns how many.
    pub fn read_doubles_to(&mut self, times: &mut [i64], values: &mut [f64]) -> Result<usize> {
        self.read_doubles_into(times, values, false)
    }

    fn read_doubles_into(&mut self, times: &mut [i64], values: &mut [f64], skip_starts: bool) -> Result<usize> {
        let n = self.left as usize;
        let [ScalarDecoder::Double(d)] = self.columns.as_mut_slice() else {
            return Err(Error::TypeMismatch { expected: "double".into(), value: "another type".into() });
        };
        if self.starts.is_some() && !skip_starts {
            return Err(Error::TypeMismatch {
                expected: "double without start times".into(),
                value: "a cumulative or delta chunk".into(),
            });
        }
        let (Some(ts), Some(vs)) = (times.get_mut(..n), values.get_mut(..n)) else {
            return Err(Error::Corrupt(format!("output holds fewer than the chunk's {n} points")));
        };
        self.left = 0;
        self.times.decode_to(ts)?;
        d.decode_to(vs)?;
        Ok(n)
    }

    /// The next `(time, double)` pair of a double gauge chunk without
    /// building a `Value`: the scan kernel for numeric queries.
    #[inline]
    pub fn next_double(&mut self) -> Option<Result<(i64, f64)>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let t = match self.times.next_value() {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        match self.columns.as_mut_slice() {
            [ScalarDecoder::Double(d)] if self.starts.is_none() => Some(d.next_value().map(|v| (t, v))),
            _ => Some(Err(Error::TypeMismatch { expected: "double".into(), value: "another type".into() })),
        }
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = Result<Point>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let r = self.next_point();
        // After an error nothing further is trustworthy.
        self.left = if r.is_err() { 0 } else { self.left - 1 };
        Some(r)
    }
}
