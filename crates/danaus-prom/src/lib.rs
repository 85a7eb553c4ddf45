//! # danaus-prom
//!
//! Prometheus interop. Today: the remote_write receiver
//! ([`remote_write::Receiver`], 1.0 and 2.0) that `danaus standalone`
//! serves at `/api/v1/write` on its HTTP port, and the mapping of label
//! sets onto target and metric schemas ([`labels`]).
//!
//! Data flow: HTTP body → snappy → protobuf (`prompb`) → [`labels::PromSeries`]
//! → schema registration on first sight → one leaf write per request. A
//! 1.0 series whose label bytes an earlier request brought skips the middle:
//! it is written from what those bytes were converted to
//! ([`labels::Identities`]), its labels not read again. The
//! crate knows no HTTP framework: the server hands it the content type,
//! encoding and body and sends back the [`remote_write::Reply`].
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
