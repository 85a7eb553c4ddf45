//! A remote-write 1.0 decoder that borrows labels from the request.
//!
//! prost decodes every label name and value into a `String` of its own,
//! which was half of the receiver's decoding time; here they are `&str`
//! slices of the decompressed body (checked to be UTF-8), and only what a
//! write keeps is copied later. The result equals
//! `PromSeries::from_v1(prost decode)` field for field (a test compares
//! them); fields Danaus does not read are skipped as protobuf skips them.

use std::collections::HashMap;

use crate::labels::PromSeries;

struct Reader<'a> {
    buf: &'a [u8],
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

impl<'a> Reader<'a> {
    #[inline]
    fn varint(&mut self) -> Result<u64, String> {
        // Keys, lengths and small numbers take one byte.
        if let Some((&b, rest)) = self.buf.split_first() {
            if b < 0x80 {
                self.buf = rest;
                return Ok(u64::from(b));
            }
        }
        self.varint_long()
    }

    fn varint_long(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some((&b, rest)) = self.buf.split_first() else { return Err("a varint runs past the end".into()) };
            self.buf = rest;
            if i == 9 && b > 1 {
                return Err("a varint overflows 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("a varint is longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.buf.len() {
            return Err(format!("a field of {n} bytes runs past the end"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next field's number and wire type; `None` at the end.
    fn key(&mut self) -> Result<Option<(u64, u8)>, String> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        if k >> 3 == 0 || k > u64::from(u32::MAX) {
            return Err(format!("a field key {k} is out of range"));
        }
        Ok(Some((k >> 3, (k & 7) as u8)))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()?;
        self.take(usize::try_from(n).map_err(|_| "a length does not fit in memory".to_owned())?)
    }

    /// A string field of `wire` type (checked to be length-delimited).
    fn string_field(&mut self, wire: u8, what: &str) -> Result<&'a str, String> {
        Self::expect(wire, LEN, what)?;
        self.str()
    }

    fn str(&mut self) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes()?).map_err(|e| format!("a string is not UTF-8: {e}"))
    }

    /// Skips field `field` of `wire` type, as protobuf skips fields it
    /// does not know (groups included, nested at most 100 deep).
    fn skip(&mut self, field: u64, wire: u8) -> Result<(), String> {
        self.skip_at(field, wire, 0)
    }

    fn skip_at(&mut self, field: u64, wire: u8, depth: usize) -> Result<(), String> {
        match wire {
            VARINT => self.varint().map(|_| ()),
            FIXED64 => self.take(8).map(|_| ()),
            LEN => self.bytes().map(|_| ()),
            FIXED32 => self.take(4).map(|_| ()),
            START_GROUP if depth < 100 => loop {
                match self.key()? {
                    None => return Err("a group runs past the end".into()),
                    Some((f, END_GROUP)) if f == field => return Ok(()),
                    Some((_, END_GROUP)) => return Err("a group ends with another field number".into()),
                    Some((f, w)) => self.skip_at(f, w, depth + 1)?,
                }
            },
            w => Err(format!("unsupported wire type {w} (field {field})")),
        }
    }

    fn expect(wire: u8, want: u8, what: &str) -> Result<(), String> {
        if wire == want {
            Ok(())
        } else {
            Err(format!("{what} has wire type {wire}, not {want}"))
        }
    }
}

/// A `prometheus.WriteRequest` read as far as a receiver always needs:
/// samples, and where each series' labels are. Labels are read (and
/// checked) only when asked for: a receiver that has seen a series' label
/// bytes before knows what they say.
#[derive(Debug)]
pub struct RawRequest<'a> {
    /// The series, in request order.
    pub series: Vec<RawSeries<'a>>,
    /// (type, help, unit) by family name.
    meta: HashMap<&'a str, (i32, &'a str, &'a str)>,
}

/// One `TimeSeries`, its labels not read yet.
#[derive(Debug)]
pub struct RawSeries<'a> {
    /// The message, labels and all.
    body: &'a [u8],
    /// Its label fields, keys included, when they come one after another
    /// (as every sender writes them): equal bytes are equal label lists,
    /// so a receiver can key what it knows about a series by them.
    pub label_bytes: Option<&'a [u8]>,
    /// `(ms since the epoch, value)`.
    pub samples: Vec<(i64, f64)>,
    /// Native histogram samples (not supported).
    pub histograms: usize,
}

/// The series of a `prometheus.WriteRequest`, labels borrowed from `body`,
/// with metadata joined by family name as [`PromSeries::from_v1`] does.
pub fn decode_v1(body: &[u8]) -> Result<Vec<PromSeries<&str>>, String> {
    let mut raw = decode_v1_raw(body)?;
    let series = std::mem::take(&mut raw.series);
    series.into_iter().map(|s| raw.labels(s)).collect()
}

/// Reads a `prometheus.WriteRequest` but for its labels (see
/// [`RawRequest`]); everything else is checked as [`decode_v1`] checks it.
pub fn decode_v1_raw(body: &[u8]) -> Result<RawRequest<'_>, String> {
    let mut r = Reader { buf: body };
    let mut series = Vec::new();
    let mut meta: HashMap<&str, (i32, &str, &str)> = HashMap::new();
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                Reader::expect(wire, LEN, "WriteRequest.timeseries")?;
                let b = r.bytes()?;
                if series.is_empty() {
                    // Sized once, by the first series, for as many more as
                    // the rest could hold if they were alike.
                    series.reserve(1 + r.buf.len() / (b.len() + 2).max(32));
                }
                series.push(time_series(b)?);
            }
            3 => {
                Reader::expect(wire, LEN, "WriteRequest.metadata")?;
                let (name, m) = metadata(r.bytes()?)?;
                // prost keeps the last of repeated metadata for a family.
                meta.insert(name, m);
            }
            _ => r.skip(field, wire)?,
        }
    }
    Ok(RawRequest { series, meta })
}

impl<'a> RawRequest<'a> {
    /// Series `s` of this request with its labels read (an error for
    /// labels that are not UTF-8 or not `Label` messages) and its
    /// metadata joined.
    pub fn labels(&self, s: RawSeries<'a>) -> Result<PromSeries<&'a str>, String> {
        let mut p = PromSeries {
            labels: Vec::new(),
            samples: s.samples,
            histograms: s.histograms,
            metric_type: 0,
            help: "",
            unit: "",
            created_ms: None,
        };
        let mut r = Reader { buf: s.body };
        while let Some((field, wire)) = r.key()? {
            match (field, wire) {
                (1, LEN) => p.labels.push(label(r.bytes()?)?),
                _ => r.skip(field, wire)?, // checked by `time_series`
            }
        }
        if !self.meta.is_empty() {
            let name = p.labels.iter().find(|(k, _)| *k == "__name__").map_or("", |(_, v)| *v);
            if let Some(&(t, help, unit)) = crate::labels::family(name).iter().find_map(|f| self.meta.get(f)) {
                (p.metric_type, p.help, p.unit) = (t, help, unit);
            }
        }
        Ok(p)
    }
}

fn label(body: &[u8]) -> Result<(&str, &str), String> {
    let mut l = Reader { buf: body };
    let (mut name, mut value) = ("", "");
    while let Some((f, w)) = l.key()? {
        match f {
            1 => {
                name = l.string_field(w, "Label.name")?;
            }
            2 => {
                value = l.string_field(w, "Label.value")?;
            }
            _ => l.skip(f, w)?,
        }
    }
    Ok((name, value))
}

fn time_series(body: &[u8]) -> Result<RawSeries<'_>, String> {
    let mut r = Reader { buf: body };
    let mut s = RawSeries { body, label_bytes: None, samples: Vec::new(), histograms: 0 };
    // Where the label fields start and end, and whether another field
    // came between two of them.
    let (mut first, mut end, mut split) = (None, 0, false);
    loop {
        let at = body.len() - r.buf.len();
        let Some((field, wire)) = r.key()? else { break };
        match field {
            1 => {
                Reader::expect(wire, LEN, "TimeSeries.labels")?;
                r.bytes()?;
                split |= first.is_some() && end != at;
                first.get_or_insert(at);
                end = body.len() - r.buf.len();
            }
            2 => {
                Reader::expect(wire, LEN, "TimeSeries.samples")?;
                let mut p = Reader { buf: r.bytes()? };
                let (mut value, mut timestamp) = (0.0, 0i64);
                while let Some((f, w)) = p.key()? {
                    match f {
                        1 => {
                            Reader::expect(w, FIXED64, "Sample.value")?;
                            let b = p.take(8)?;
                            value = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                        }
                        2 => {
                            Reader::expect(w, VARINT, "Sample.timestamp")?;
                            timestamp = p.varint()? as i64;
                        }
                        _ => p.skip(f, w)?,
                    }
                }
                if s.samples.capacity() == 0 {
                    // Sized once for the samples that can follow (each takes
                    // at least 13 bytes with a millisecond timestamp), not
                    // grown one doubling at a time.
                    s.samples.reserve(1 + r.buf.len() / 13);
                }
                s.samples.push((timestamp, value));
            }
            4 => {
                Reader::expect(wire, LEN, "TimeSeries.histograms")?;
                r.bytes()?;
                s.histograms += 1;
            }
            _ => r.skip(field, wire)?,
        }
    }
    s.label_bytes = match first {
        Some(first) if !split => Some(&body[first..end]),
        Some(_) => None,
        None => Some(&[]),
    };
    Ok(s)
}

fn metadata(body: &[u8]) -> Result<(&str, (i32, &str, &str)), String> {
    let mut r = Reader { buf: body };
    let (mut name, mut t, mut help, mut unit) = ("", 0i32, "", "");
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                Reader::expect(wire, VARINT, "MetricMetadata.type")?;
                t = r.varint()? as i32;
            }
            2 => {
                name = r.string_field(wire, "MetricMetadata.metric_family_name")?;
            }
            4 => {
                help = r.string_field(wire, "MetricMetadata.help")?;
            }
            5 => {
                unit = r.string_field(wire, "MetricMetadata.unit")?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Ok((name, (t, help, unit)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::prompb::v1;
    use prost::Message;

    fn owned(s: &PromSeries<&str>) -> PromSeries {
        PromSeries {
            labels: s.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            samples: s.samples.clone(),
            histograms: s.histograms,
            metric_type: s.metric_type,
            help: s.help.into(),
            unit: s.unit.into(),
            created_ms: s.created_ms,
        }
    }

    #[test]
    fn overflowing_varints_and_field_keys_are_errors() {
        // A key whose varint has a 10th byte above 1.
        let overflow = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(decode_v1(&overflow).unwrap_err().contains("overflows"));
        assert!(v1::WriteRequest::decode(&overflow[..]).is_err());
        // A field number above 2^29 - 1.
        let big = [0x80, 0x80, 0x80, 0x80, 0x20, 0x00];
        assert!(decode_v1(&big).unwrap_err().contains("out of range"));
        assert!(v1::WriteRequest::decode(&big[..]).is_err());
    }

    /// The same series as prost's decoding, on requests of every shape the
    /// receiver meets, and errors (never panics) on their truncations.
    #[test]
    fn equals_prosts_decoding() {
        let mut reqs = Vec::new();
        for n in 0..40u64 {
            let ts = (0..n % 7)
                .map(|i| v1::TimeSeries {
                    labels: (0..(n + i) % 5)
                        .map(|j| v1::Label {
                            name: if j == 0 { "__name__".into() } else { format!("l{j}") },
                            value: format!("v{}-{}é", n * i, j),
                        })
                        .collect(),
                    samples: (0..(n * i) % 4)
                        .map(|k| v1::Sample { value: (k as f64) * -1.5e-3, timestamp: (n * 1000 + k) as i64 - 500 })
                        .collect(),
                    histograms: if n % 11 == 3 { vec![vec![1, 2, 3]] } else { vec![] },
                })
                .collect();
            let metadata = if n % 3 == 0 {
                vec![v1::MetricMetadata {
                    r#type: 1 + (n % 5) as i32,
                    metric_family_name: format!("v{n}"),
                    help: "h".into(),
                    unit: "s".into(),
                }]
            } else {
                vec![]
            };
            reqs.push(v1::WriteRequest { timeseries: ts, metadata });
        }
        for req in reqs {
            let body = req.encode_to_vec();
            let want = PromSeries::from_v1(v1::WriteRequest::decode(body.as_slice()).unwrap());
            let got: Vec<PromSeries> = decode_v1(&body).unwrap().iter().map(owned).collect();
            assert_eq!(got, want);
            // Unknown fields, a group among them, are skipped as prost
            // skips them.
            let mut extra = body.clone();
            extra.extend_from_slice(&[0x7b, 0x08, 0x01, 0x7c, 0x50, 0x05]); // group 15 {varint}, field 10 = 5
            let want = PromSeries::from_v1(v1::WriteRequest::decode(extra.as_slice()).unwrap());
            let got: Vec<PromSeries> = decode_v1(&extra).unwrap().iter().map(owned).collect();
            assert_eq!(got, want);
            for cut in 0..body.len() {
                let prost_ok = v1::WriteRequest::decode(&body[..cut]).is_ok();
                assert_eq!(decode_v1(&body[..cut]).is_ok(), prost_ok, "cut at {cut} of {}", body.len());
            }
        }
    }
}
