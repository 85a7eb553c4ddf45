//! # danaus-model
//!
//! The data model every other Danaus crate speaks, with no I/O in it.
//!
//! * A **target schema** ([`TargetSchema`]) names the entity that emits data
//!   and its ordered key fields; exactly one of them is the *location* field,
//!   which decides the zone. A **metric schema** ([`MetricSchema`]) names a
//!   metric path (`/rpc/server/latency`), its own key fields, a value type, a
//!   kind (gauge, cumulative, delta), unit and description.
//! * A **series key** ([`SeriesKey`]) is tenant + target schema + target field
//!   values + metric name + metric field values. Its target part encodes to
//!   the **target string** ([`TargetString`]): an order-preserving byte
//!   encoding with the location field first, so leaves can shard by
//!   lexicographic ranges and keep one target's series together. The whole
//!   key encodes the same way, tenant first, so every stored key is namespaced
//!   by tenant and byte order equals field order.
//! * A **point** ([`Point`]) is an end time, an optional start time (for
//!   cumulative and delta kinds) and a [`Value`]. Times are i64 nanoseconds
//!   since the Unix epoch everywhere.
//! * A **distribution** ([`Distribution`]) is a bucketer plus bucket counts,
//!   count, mean and sum of squared deviation, with optional exemplars per
//!   bucket. Merging is exact for counts and numerically stable (Chan et al.)
//!   for the moments, so partial aggregates can be combined in any order.
//! * **Requests** ([`request`](SeriesWrite)): what every store and front door
//!   is asked and answers — series to write and the write's outcome, raw
//!   reads with field matchers, what a schema apply did.
//!
//! Invariants: schema validation ([`TargetSchema::validate`],
//! [`MetricSchema::validate`]) and point validation ([`validate`]) are the
//! single source of truth for what may be stored; every error names the
//! schema, field, series and point at fault.

pub mod collection;
mod distribution;
mod error;
mod key;
pub mod location;
mod request;
mod schema;
pub mod time;
pub mod validate;
mod value;

pub use collection::CollectionAggregation;
pub use distribution::{Bucketer, Distribution, Exemplar};
pub use error::{Error, Result};
pub use key::{decode_fields, encode_field, encode_parts, KeyDecoder, SeriesKey, TargetString};
pub use request::{Applied, ErrorCode, MatchOp, Matcher, ReadRequest, SeriesError, SeriesWrite, WriteResult};
pub use schema::{FieldDef, FieldType, MetricKind, MetricSchema, ScalarType, TargetSchema, ValueType};
pub use value::{FieldValue, Point, Value};

/// Nanoseconds since the Unix epoch.
pub type Timestamp = i64;

/// The tenant every request belongs to when none is named (standalone).
pub const DEFAULT_TENANT: &str = "default";

/// The target schema every Prometheus series belongs to
/// (`prometheus_target{location, job, instance}`).
pub const PROM_TARGET_SCHEMA: &str = "prometheus_target";
