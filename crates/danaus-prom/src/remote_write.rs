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

use crate::labels::{PromSeries, PromStr, Registry};
use crate::prompb::{v1, v2};
use crate::store::{Store, StoreError};

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
                return match crate::v1_decode::decode_v1(&raw.1) {
                    Ok(series) => self.ingest(tenant, Version::V1, series).await,
                    Err(e) => {
                        self.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                        Reply::error(400, format!("the body is not a prometheus.WriteRequest: {e}"))
                    }
                };
            }
            Self::parse(raw.0, &raw.1)
        };
        match decoded {
            Ok((v, series)) => self.ingest(tenant, v, series).await,
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
        let mut refused: Vec<(String, usize, String)> = Vec::new();
        self.registry.ensure_target(tenant).await.map_err(reply)?;
        let mut batch = Vec::with_capacity(series.len());
        let mut cache = crate::labels::WriteCache::default();
        for s in series {
            // A schema that cannot be registered now fails the whole
            // request before anything is written: the sender retries it.
            match self.registry.series_write(tenant, s, &mut cache).await.map_err(reply)? {
                Ok(w) => batch.push(w),
                Err((s, e)) => refused.push((s.describe(), s.samples.len(), e)),
            }
        }
        let result = self.leaf.write(tenant, batch).await.map_err(reply)?;
        refused.extend(result.refused);
        self.stats.samples_written.fetch_add(result.accepted, Ordering::Relaxed);
        self.stats.series_refused.fetch_add(refused.len() as u64, Ordering::Relaxed);
        Ok(Written { samples: result.accepted as usize, refused })
    }

    async fn ingest<S: PromStr>(&self, tenant: &str, v: Version, series: Vec<PromSeries<S>>) -> Reply {
        let total: usize = series.iter().map(|s| s.samples.len()).sum();
        let count = series.len();
        let Written { samples: written, refused } = match self.write_series(tenant, series).await {
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
