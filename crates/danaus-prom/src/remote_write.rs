//! The remote_write receiver (1.0 and 2.0).
//!
//! A request is checked (`Content-Encoding: snappy`; a protobuf content
//! type, 415 otherwise), decompressed, decoded, turned into series
//! ([`crate::labels`]) and written to the leaf in one batch. Every series
//! that can be stored is stored; the reply says what was not:
//!
//! * all stored: 204 (1.0) or 200 with the `X-Prometheus-Remote-Write-*-Written`
//!   headers (2.0);
//! * some series invalid: 400 naming them (the sender must not retry;
//!   the valid ones are stored);
//! * the leaf cannot take writes now: 503; over a limit: 429 (the sender
//!   retries, and retries are idempotent).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::labels::{Identities, PromSeries, PromStr, Registry, WriteCache};
use crate::prompb::{v1, v2};
use crate::store::{Store, StoreError};
use crate::v1_decode::RawRequest;
use danaus_model::SeriesWrite;

/// Largest decompressed request accepted.
pub const MAX_DECOMPRESSED: usize = 64 << 20;

/// Bodies at least this large are decoded on the blocking pool.
const OFFLOAD_BYTES: usize = 256 << 10;

/// An HTTP reply, independent of the HTTP framework.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body (a human-readable message on errors).
    pub body: String,
}

impl Reply {
    fn error(status: u16, body: impl Into<String>) -> Self {
        let mut body = body.into();
        body.push('\n');
        Self { status, headers: Vec::new(), body }
    }
}

/// The outcome of storing a set of series.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Samples stored.
    pub samples: usize,
    /// Series refused: (series, samples refused, why).
    pub refused: Vec<(String, usize, String)>,
    /// Series in the request.
    pub series: usize,
    /// Samples in the request.
    pub total: usize,
}

/// A request's series on their way to a write.
struct Pending {
    batch: Vec<SeriesWrite>,
    refused: Vec<(String, usize, String)>,
    cache: WriteCache,
    series: usize,
    total: usize,
    /// Series written from their identity.
    known: u64,
}

impl Pending {
    fn new(series: usize, total: usize) -> Pending {
        Pending {
            batch: Vec::with_capacity(series),
            refused: Vec::new(),
            cache: WriteCache::default(),
            series,
            total,
            known: 0,
        }
    }
}

/// Which message a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

fn version(content_type: Option<&str>) -> Result<Version, Reply> {
    let ct = content_type.unwrap_or("application/x-protobuf");
    let mut parts = ct.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default();
    if !media.eq_ignore_ascii_case("application/x-protobuf") {
        return Err(Reply::error(
            415,
            format!("unsupported Content-Type {ct:?}: remote_write takes application/x-protobuf"),
        ));
    }
    let mut v = Version::V1;
    for p in parts {
        if let Some(proto) = p.strip_prefix("proto=") {
            v = match proto.trim_matches('"') {
                "prometheus.WriteRequest" => Version::V1,
                "io.prometheus.write.v2.Request" => Version::V2,
                other => {
                    return Err(Reply::error(
                        415,
                        format!(
                            "unsupported proto {other:?}: this receiver takes prometheus.WriteRequest (1.0) and io.prometheus.write.v2.Request (2.0)"
                        ),
                    ))
                }
            };
        }
    }
    Ok(v)
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests received.
    pub requests: AtomicU64,
    /// Samples stored.
    pub samples_written: AtomicU64,
    /// Series refused (the sender was told with a 400).
    pub series_refused: AtomicU64,
    /// Requests answered with 4xx (other than per-series refusals) or 5xx.
    pub failed_requests: AtomicU64,
    /// Series written as an earlier request with the same label bytes was
    /// converted (their labels were not read again).
    pub series_known: AtomicU64,
}

/// The reply telling a sender what to do about a store's failure: retry
/// later (503, 429), do not retry (400), or a server error (500, which
/// senders retry as well).
fn reply(e: StoreError) -> Reply {
    match e {
        StoreError::Unavailable(m) => Reply::error(503, format!("{m}; retry")),
        StoreError::Exhausted(m) => Reply::error(429, m),
        StoreError::Refused(m) => Reply::error(400, m),
        StoreError::Failed(m) => Reply::error(500, m),
    }
}

/// Receives remote_write requests into a leaf.
pub struct Receiver {
    leaf: Arc<dyn Store>,
    registry: Registry,
    stats: Stats,
}

impl Receiver {
    /// Writes into `store` (a leaf, or a zone's router); series without a
    /// `location` label get `default_location`.
    pub fn new(store: Arc<dyn Store>, default_location: impl Into<String>) -> Self {
        Self { registry: Registry::new(store.clone(), default_location.into()), leaf: store, stats: Stats::default() }
    }

    /// Keeps at most `limit` series identities, all tenants together
    /// (see [`crate::labels::MAX_IDENTITIES`]).
    pub fn with_identity_limit(mut self, limit: usize) -> Self {
        self.registry = self.registry.with_identity_limit(limit);
        self
    }

    /// The receiver's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Handles one request body.
    pub async fn handle(
        &self,
        tenant: &str,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        body: &[u8],
    ) -> Reply {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        // Large bodies take milliseconds of CPU to decompress and decode:
        // keep that off the async workers.
        let decoded = if body.len() >= OFFLOAD_BYTES {
            let (ct, ce, b) = (content_type.map(str::to_owned), content_encoding.map(str::to_owned), body.to_vec());
            match tokio::task::spawn_blocking(move || Self::decode(ct.as_deref(), ce.as_deref(), &b)).await {
                Ok(r) => r,
                Err(e) => Err(Reply::error(500, format!("decoding the request failed: {e}"))),
            }
        } else {
            // Small bodies: 1.0 series borrow their labels from the body.
            let raw = match Self::decompress(content_type, content_encoding, body) {
                Ok(r) => r,
                Err(reply) => {
                    self.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                    return reply;
                }
            };
            if raw.0 == Version::V1 {
                let written = match crate::v1_decode::decode_v1_raw(&raw.1) {
                    Ok(req) => self.write_v1(tenant, req).await,
                    Err(e) => Err(Reply::error(400, format!("the body is not a prometheus.WriteRequest: {e}"))),
                };
                return self.reply(Version::V1, written);
            }
            Self::parse(raw.0, &raw.1)
        };
        match decoded {
            Ok((v, series)) => {
                let written = self.write_series(tenant, series).await;
                self.reply(v, written)
            }
            Err(reply) => {
                self.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                reply
            }
        }
    }

    /// The request's series, or the reply refusing the request as a whole.
    fn decode(
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        body: &[u8],
    ) -> Result<(Version, Vec<PromSeries>), Reply> {
        let (v, raw) = Self::decompress(content_type, content_encoding, body)?;
        Self::parse(v, &raw)
    }

    /// The request's version and decompressed body, or the reply refusing it.
    fn decompress(
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        body: &[u8],
    ) -> Result<(Version, Vec<u8>), Reply> {
        let v = version(content_type)?;
        match content_encoding.map(str::trim) {
            Some(e) if e.eq_ignore_ascii_case("snappy") => {}
            other => {
                return Err(Reply::error(
                    415,
                    format!("unsupported Content-Encoding {other:?}: remote_write bodies are snappy-compressed"),
                ))
            }
        }
        let raw = match snap::raw::decompress_len(body) {
            Ok(n) if n > MAX_DECOMPRESSED => {
                return Err(Reply::error(
                    400,
                    format!("the body decompresses to {n} bytes, more than the {MAX_DECOMPRESSED}-byte limit"),
                ))
            }
            Ok(_) => match snap::raw::Decoder::new().decompress_vec(body) {
                Ok(raw) => raw,
                Err(e) => return Err(Reply::error(400, format!("the body is not snappy block-compressed: {e}"))),
            },
            Err(e) => return Err(Reply::error(400, format!("the body is not snappy block-compressed: {e}"))),
        };
        Ok((v, raw))
    }

    /// The series of a decompressed body, owning their labels.
    fn parse(v: Version, raw: &[u8]) -> Result<(Version, Vec<PromSeries>), Reply> {
        let series = match v {
            Version::V1 => match <v1::WriteRequest as prost::Message>::decode(raw) {
                Ok(req) => PromSeries::from_v1(req),
                Err(e) => return Err(Reply::error(400, format!("the body is not a prometheus.WriteRequest: {e}"))),
            },
            Version::V2 => match <v2::Request as prost::Message>::decode(raw) {
                Ok(req) => match PromSeries::from_v2(req) {
                    Ok(s) => s,
                    Err(e) => return Err(Reply::error(400, e)),
                },
                Err(e) => {
                    return Err(Reply::error(400, format!("the body is not an io.prometheus.write.v2.Request: {e}")))
                }
            },
        };
        Ok((v, series))
    }

    /// Stores `series` (registering schemas on first sight): what was
    /// written and what was refused, by series. `Err` when the leaf could
    /// not take the batch at all (the reply a sender should get).
    pub async fn write_series<S: PromStr>(&self, tenant: &str, series: Vec<PromSeries<S>>) -> Result<Written, Reply> {
        let mut w = Pending::new(series.len(), series.iter().map(|s| s.samples.len()).sum());
        self.registry.prepare(tenant, &series, &mut w.cache).await.map_err(reply)?;
        for s in series {
            self.add(tenant, &mut w, s, None).await?;
        }
        self.store(tenant, w).await
    }

    /// Stores the series of a 1.0 request (see [`Receiver::write_series`]).
    /// A series whose label bytes an earlier request brought is written
    /// as it was converted then (while its metric's schema is unchanged);
    /// only the others' labels are read and converted.
    async fn write_v1(&self, tenant: &str, mut req: RawRequest<'_>) -> Result<Written, Reply> {
        let ids = self.registry.identities(tenant);
        let mut series = std::mem::take(&mut req.series);
        let mut w = Pending::new(series.len(), series.iter().map(|s| s.samples.len()).sum());
        // Every label is read before anything is registered or written: a
        // malformed one fails the request as a whole. Known series first,
        // all together (see `Identities::get_each`); native histograms are
        // refused on the way that reads labels.
        let keys: Vec<Option<&[u8]>> = series.iter().map(|s| s.label_bytes.filter(|_| s.histograms == 0)).collect();
        // Per series: its write, or its samples back (its metric's schema
        // changed), if its identity is known.
        type Known = Option<Result<SeriesWrite, Vec<(i64, f64)>>>;
        let mut known: Vec<Known> = Vec::new();
        known.resize_with(series.len(), || None);
        ids.get_each(&keys, |i, id| {
            let samples = std::mem::take(&mut series[i].samples);
            known[i] = Some(self.registry.known_write(tenant, id, samples, &mut w.cache));
        });
        let mut read = Vec::with_capacity(series.len());
        for (mut s, known) in series.into_iter().zip(known) {
            let key = s.label_bytes;
            let write = match known {
                Some(Ok(sw)) => Ok(sw),
                // Unknown, or its metric's schema changed since: converted
                // from its labels.
                other => {
                    if let Some(Err(samples)) = other {
                        s.samples = samples;
                    }
                    Err(req
                        .labels(s)
                        .map_err(|e| Reply::error(400, format!("the body is not a prometheus.WriteRequest: {e}")))?)
                }
            };
            read.push((key, write));
        }
        let unknown = read.iter().filter_map(|(_, r)| r.as_ref().err());
        self.registry.prepare(tenant, unknown, &mut w.cache).await.map_err(reply)?;
        for (key, r) in read {
            match r {
                Ok(sw) => {
                    w.known += 1;
                    w.batch.push(sw);
                }
                Err(p) => self.add(tenant, &mut w, p, key.map(|b| (&*ids, b))).await?,
            }
        }
        self.store(tenant, w).await
    }

    /// Converts `s` into `w`'s batch, or refuses it there. A schema that
    /// cannot be registered now fails the whole request before anything is
    /// written: the sender retries it.
    async fn add<S: PromStr>(
        &self,
        tenant: &str,
        w: &mut Pending,
        s: PromSeries<S>,
        key: Option<(&Identities, &[u8])>,
    ) -> Result<(), Reply> {
        match self.registry.series_write(tenant, s, key, &mut w.cache).await.map_err(reply)? {
            Ok(sw) => w.batch.push(sw),
            Err((s, e)) => w.refused.push((s.describe(), s.samples.len(), e)),
        }
        Ok(())
    }

    /// Writes `w`'s batch: what was written and refused.
    async fn store(&self, tenant: &str, w: Pending) -> Result<Written, Reply> {
        let Pending { batch, mut refused, series, total, known, .. } = w;
        let result = self.leaf.write(tenant, batch).await.map_err(reply)?;
        self.stats.series_known.fetch_add(known, Ordering::Relaxed);
        refused.extend(result.refused);
        self.stats.samples_written.fetch_add(result.accepted, Ordering::Relaxed);
        self.stats.series_refused.fetch_add(refused.len() as u64, Ordering::Relaxed);
        Ok(Written { samples: result.accepted as usize, refused, series, total })
    }

    /// The reply to a request of version `v` whose series were written (or
    /// not) as `written` says.
    fn reply(&self, v: Version, written: Result<Written, Reply>) -> Reply {
        let Written { samples: written, refused, series: count, total } = match written {
            Ok(w) => w,
            Err(reply) => {
                self.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                return reply;
            }
        };
        let mut headers = Vec::new();
        if v == Version::V2 {
            headers.push(("X-Prometheus-Remote-Write-Samples-Written", written.to_string()));
            headers.push(("X-Prometheus-Remote-Write-Histograms-Written", "0".to_owned()));
            headers.push(("X-Prometheus-Remote-Write-Exemplars-Written", "0".to_owned()));
        }
        if refused.is_empty() {
            let status = if v == Version::V1 { 204 } else { 200 };
            return Reply { status, headers, body: String::new() };
        }
        let rejected: usize = refused.iter().map(|r| r.1).sum();
        let mut body = format!(
            "{} of {} series refused ({} of {} samples); the rest were stored\n",
            refused.len(),
            count,
            rejected,
            total
        );
        for (s, _, why) in refused.iter().take(10) {
            body.push_str(&format!("{s}: {why}\n"));
        }
        if refused.len() > 10 {
            body.push_str(&format!("… and {} more\n", refused.len() - 10));
        }
        tracing::debug!(refused = refused.len(), "remote_write refused series");
        Reply { status: 400, headers, body }
    }
}
