//! # danaus-prom
//!
//! Prometheus interop: the remote_write receiver
//! ([`remote_write::Receiver`], 1.0 and 2.0) served at `/api/v1/write` by
//! `danaus standalone` and every zone router; the scraper
//! ([`scrape::Scraper`]: Prometheus' `scrape_configs` with relabelling
//! ([`relabel`]), limits, https and authentication); the text and
//! OpenMetrics parsers ([`text`]); and the mapping of label sets onto
//! target and metric schemas ([`labels`]), where a metric gains the labels
//! its series bring as added fields.
//!
//! Data flow: HTTP body → snappy → protobuf (`prompb`), or a scrape →
//! [`text`] → relabelling, either way [`labels::PromSeries`] → the
//! schema changes the request needs, as one [`Store::apply_schemas`] →
//! one write per request through the [`Store`] seam (a zone's router). A
//! 1.0 series whose label bytes an earlier request brought skips the
//! middle: it is written from what those bytes were converted to
//! ([`labels::Identities`]), its labels not read again. The crate knows no
//! HTTP server framework: the server hands it the content type, encoding
//! and body and sends back the [`remote_write::Reply`]; scrapes go out
//! through one reqwest client (rustls) per job.
//!
//! Stale markers (the NaN Prometheus writes when a series disappears) are
//! stored bit for bit, like every double, so the PromQL front end can
//! honour them.

pub mod labels;
pub mod prompb;
pub mod relabel;
pub mod remote_write;
pub mod scrape;
pub mod store;
pub mod text;
pub mod v1_decode;

pub use labels::TARGET_SCHEMA;
pub use remote_write::{Receiver, Reply};
pub use store::{Store, StoreError, Stored};
