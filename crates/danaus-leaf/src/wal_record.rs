//! The leaf's recovery-log record: series definitions and points.
//!
//! ```text
//! u8 version (1), then entries until the end:
//!   0x01 series: uvarint id | bytes key | value type | u8 kind
//!   0x02 points: uvarint id | uvarint n | n × point
//!   0x03 delta admitted to a collection-aggregation bucket of output
//!        series id: uvarint id | zigzag bucket start | zigzag bucket end
//!        | zigzag closes at
//!        | bytes input series key | point
//! point: zigzag end time (delta from the previous point in the entry)
//!        | u8 0 or 1 + zigzag (start − end) | value
//! value: 0/1 bool | 2 zigzag int64 | 3 f64 LE | 4 bytes string
//!        | 5 bytes distribution | 6 uvarint n + n values
//! ```
//! A record carries the definition of every series it references whose own
//! definition is not yet known to be durable, so replay never meets an
//! unknown id whatever order group commits complete in.

use danaus_codec::dist::{DistDecoder, DistEncoder};
use danaus_codec::varint::{put_ivarint, put_uvarint, ByteReader};
use danaus_codec::{get_value_type, put_value_type};
use danaus_model::{MetricKind, Point, Value, ValueType};

const VERSION: u8 = 1;
const SERIES: u8 = 1;
const POINTS: u8 = 2;
const AGG_INPUT: u8 = 3;

pub(crate) fn kind_code(k: MetricKind) -> u8 {
    match k {
        MetricKind::Gauge => 0,
        MetricKind::Cumulative => 1,
        MetricKind::Delta => 2,
    }
}

pub(crate) fn kind_from(c: u8) -> Result<MetricKind, String> {
    Ok(match c {
        0 => MetricKind::Gauge,
        1 => MetricKind::Cumulative,
        2 => MetricKind::Delta,
        c => return Err(format!("unknown metric kind code {c}")),
    })
}

/// Builds one record.
pub(crate) struct RecordBuilder {
    buf: Vec<u8>,
    entries: usize,
    prev_time: i64,
}

impl RecordBuilder {
    pub(crate) fn new() -> Self {
        Self::with_capacity(1)
    }

    /// A builder whose buffer takes `bytes` without growing.
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(1));
        buf.push(VERSION);
        Self { buf, entries: 0, prev_time: 0 }
    }

    /// About how many bytes `series` series of `points` scalar points
    /// take: a record grown by doubling copies itself over and over.
    pub(crate) fn estimate(series: usize, points: usize) -> usize {
        1 + series * 8 + points * 18
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub(crate) fn series(&mut self, id: u64, key: &[u8], vt: &ValueType, kind: MetricKind) {
        self.buf.push(SERIES);
        put_uvarint(&mut self.buf, id);
        put_uvarint(&mut self.buf, key.len() as u64);
        self.buf.extend_from_slice(key);
        put_value_type(&mut self.buf, vt);
        self.buf.push(kind_code(kind));
        self.entries += 1;
    }

    pub(crate) fn begin_points(&mut self, id: u64, n: usize) {
        self.buf.push(POINTS);
        put_uvarint(&mut self.buf, id);
        put_uvarint(&mut self.buf, n as u64);
        self.prev_time = 0;
        self.entries += 1;
    }

    pub(crate) fn point(&mut self, p: &Point) {
        put_ivarint(&mut self.buf, p.end_time.wrapping_sub(self.prev_time));
        self.prev_time = p.end_time;
        match p.start_time {
            None => self.buf.push(0),
            Some(s) => {
                self.buf.push(1);
                put_ivarint(&mut self.buf, s.wrapping_sub(p.end_time));
            }
        }
        put_value(&mut self.buf, &p.value);
    }

    /// A delta folded into bucket `bucket_end` of output series `id`.
    pub(crate) fn agg_input(&mut self, id: u64, bucket: (i64, i64), closes_at: i64, input_key: &[u8], p: &Point) {
        self.buf.push(AGG_INPUT);
        put_uvarint(&mut self.buf, id);
        put_ivarint(&mut self.buf, bucket.0);
        put_ivarint(&mut self.buf, bucket.1);
        put_ivarint(&mut self.buf, closes_at);
        put_uvarint(&mut self.buf, input_key.len() as u64);
        self.buf.extend_from_slice(input_key);
        self.prev_time = 0;
        self.point(p);
        self.entries += 1;
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Bool(b) => out.push(u8::from(*b)),
        Value::Int64(i) => {
            out.push(2);
            put_ivarint(out, *i);
        }
        Value::Double(d) => {
            out.push(3);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Value::String(s) => {
            out.push(4);
            put_uvarint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Distribution(d) => {
            out.push(5);
            let mut e = DistEncoder::default();
            e.push(d);
            let mut tmp = Vec::new();
            e.write_to(&mut tmp);
            put_uvarint(out, tmp.len() as u64);
            out.extend_from_slice(&tmp);
        }
        Value::Tuple(items) => {
            out.push(6);
            put_uvarint(out, items.len() as u64);
            for i in items {
                put_value(out, i);
            }
        }
    }
}

fn get_value(r: &mut ByteReader<'_>, depth: u32) -> Result<Value, String> {
    let e = |x: danaus_codec::Error| x.to_string();
    Ok(match r.u8().map_err(e)? {
        0 => Value::Bool(false),
        1 => Value::Bool(true),
        2 => Value::Int64(r.ivarint().map_err(e)?),
        3 => Value::Double(f64::from_bits(r.u64_le().map_err(e)?)),
        4 => {
            let n = r.len(r.remaining(), "string").map_err(e)?;
            let b = r.bytes(n).map_err(e)?;
            Value::String(String::from_utf8(b.to_vec()).map_err(|_| "string value is not UTF-8".to_string())?)
        }
        5 => {
            let sec = r.section().map_err(e)?;
            Value::Distribution(Box::new(DistDecoder::new(sec).next_value().map_err(e)?))
        }
        6 if depth == 0 => {
            let n = r.len(256, "tuple").map_err(e)?;
            Value::Tuple((0..n).map(|_| get_value(r, depth + 1)).collect::<Result<_, _>>()?)
        }
        t => return Err(format!("unknown value tag {t}")),
    })
}

/// One decoded entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry {
    Series { id: u64, key: Vec<u8>, value_type: ValueType, kind: MetricKind },
    Points { id: u64, points: Vec<Point> },
    AggInput { id: u64, bucket: (i64, i64), closes_at: i64, input_key: Vec<u8>, point: Point },
}

fn get_point(r: &mut ByteReader<'_>, prev: i64) -> Result<Point, String> {
    let e = |x: danaus_codec::Error| x.to_string();
    let end_time = prev.wrapping_add(r.ivarint().map_err(e)?);
    let start_time = match r.u8().map_err(e)? {
        0 => None,
        1 => Some(end_time.wrapping_add(r.ivarint().map_err(e)?)),
        f => return Err(format!("bad start flag {f}")),
    };
    Ok(Point { start_time, end_time, value: get_value(r, 0)? })
}

/// Decodes a whole record.
pub(crate) fn decode(buf: &[u8]) -> Result<Vec<Entry>, String> {
    let e = |x: danaus_codec::Error| x.to_string();
    let mut r = ByteReader::new(buf);
    let v = r.u8().map_err(e)?;
    if v != VERSION {
        return Err(format!("unknown record version {v}"));
    }
    let mut out = Vec::new();
    while r.remaining() > 0 {
        match r.u8().map_err(e)? {
            SERIES => {
                let id = r.uvarint().map_err(e)?;
                let n = r.len(r.remaining(), "key").map_err(e)?;
                let key = r.bytes(n).map_err(e)?.to_vec();
                let value_type = get_value_type(&mut r).map_err(e)?;
                let kind = kind_from(r.u8().map_err(e)?)?;
                out.push(Entry::Series { id, key, value_type, kind });
            }
            POINTS => {
                let id = r.uvarint().map_err(e)?;
                let n = r.len(r.remaining(), "point count").map_err(e)?;
                let mut points = Vec::with_capacity(n);
                let mut prev = 0i64;
                for _ in 0..n {
                    let p = get_point(&mut r, prev)?;
                    prev = p.end_time;
                    points.push(p);
                }
                out.push(Entry::Points { id, points });
            }
            AGG_INPUT => {
                let id = r.uvarint().map_err(e)?;
                let bucket_start = r.ivarint().map_err(e)?;
                let bucket_end = r.ivarint().map_err(e)?;
                let closes_at = r.ivarint().map_err(e)?;
                let n = r.len(r.remaining(), "input key").map_err(e)?;
                let input_key = r.bytes(n).map_err(e)?.to_vec();
                let point = get_point(&mut r, 0)?;
                out.push(Entry::AggInput { id, bucket: (bucket_start, bucket_end), closes_at, input_key, point });
            }
            t => return Err(format!("unknown entry type {t}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use danaus_model::{Bucketer, Distribution, ScalarType};

    #[test]
    fn records_round_trip() {
        let pts = vec![
            Point { start_time: Some(5), end_time: 10, value: Value::Double(f64::NAN) },
            Point {
                start_time: None,
                end_time: -3,
                value: Value::Tuple(vec![Value::Bool(true), Value::String("x".into())]),
            },
            Point {
                start_time: None,
                end_time: i64::MAX,
                value: Value::Distribution(Box::new(Distribution::from_values(
                    Bucketer::Explicit { bounds: vec![1.0] },
                    &[0.5, 2.0],
                ))),
            },
            Point { start_time: Some(i64::MIN), end_time: i64::MIN, value: Value::Int64(i64::MIN) },
        ];
        let mut b = RecordBuilder::new();
        b.series(7, b"key", &ValueType::Scalar(ScalarType::Double), MetricKind::Cumulative);
        b.begin_points(7, pts.len());
        for p in &pts {
            b.point(p);
        }
        b.agg_input(7, (10, 20), 50, b"in", &pts[0]);
        let got = decode(&b.finish()).unwrap();
        assert_eq!(got.len(), 3);
        let Entry::AggInput { id: 7, bucket: (10, 20), closes_at: 50, input_key, point } = &got[2] else {
            panic!("{got:?}")
        };
        assert_eq!(input_key, b"in");
        assert!(point.value.same_as(&pts[0].value) && point.start_time == Some(5) && point.end_time == 10);
        let Entry::Points { id, points } = &got[1] else { panic!("{got:?}") };
        assert_eq!(*id, 7);
        for (a, b) in points.iter().zip(&pts) {
            assert!(a.value.same_as(&b.value) && a.end_time == b.end_time && a.start_time == b.start_time);
        }
        assert!(decode(&[9]).is_err());
        assert!(decode(&[1, 2, 200]).is_err());
    }
}
