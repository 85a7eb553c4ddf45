//! What clients ask of a store, and what it answers: series to write
//! ([`SeriesWrite`]) and the outcome ([`WriteResult`], with a
//! [`SeriesError`] per refused series), raw reads ([`ReadRequest`] with
//! field [`Matcher`]s), and what applying a schema did ([`Applied`]).
//! Leaves, routers, the Prometheus front doors, the query planner and the
//! index server all speak these; they live here, with the data model, so
//! none of them depends on another's internals for its vocabulary.

use std::sync::Arc;

use crate::{FieldValue, Point};

/// Points of one series to write, with its fields by name.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesWrite {
    /// Target schema name.
    pub target_schema: Arc<str>,
    /// Target field values by field name (any order). Shared: the series
    /// of one target (a host's scrape) can hold one copy, and comparing
    /// two of them is then a pointer comparison.
    pub target_fields: Arc<[(String, FieldValue)]>,
    /// Metric name. Names and fields are shared (`Arc`) so a sender's
    /// front door can keep a series' identity between its writes and hand
    /// it out without copying; equal names are then equal pointers.
    pub metric: Arc<str>,
    /// Metric field values by field name (any order).
    pub metric_fields: Arc<[(String, FieldValue)]>,
    /// The points.
    pub points: Vec<Point>,
}

impl SeriesWrite {
    /// Whether `other` names the same target (schema and fields). Series
    /// of a target come together and usually share one copy of its
    /// fields, so this is mostly a pointer comparison.
    pub fn same_target(&self, other: &SeriesWrite) -> bool {
        self.target_schema == other.target_schema && self.target_fields == other.target_fields
    }
}

/// Why (part of) a series was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The series or a point does not fit its schema.
    InvalidArgument,
    /// The target or metric schema does not exist.
    NotFound,
    /// A point is older than the out-of-order window.
    OutOfWindow,
    /// A different point already exists at that time.
    Conflict,
}

/// A series of a write that was refused in whole or in part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesError {
    /// Position of the series in the request.
    pub index: usize,
    /// The series, human-readable.
    pub series: String,
    /// What was wrong (the first problem, and how many points it hit).
    pub message: String,
    /// Positions of the points not stored (all of them for a bad series).
    pub rejected_points: Vec<u32>,
    /// Category.
    pub code: ErrorCode,
}

/// Outcome of a write: everything not listed in `errors` is durable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteResult {
    /// Points stored (including bit-identical retries of stored points).
    pub accepted_points: u64,
    /// Series with refused points.
    pub errors: Vec<SeriesError>,
    /// Positions in the batch of series this write created.
    pub created: Vec<usize>,
}

/// A raw read: one metric of one target schema, filtered by field matchers,
/// over `[start, end]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// Target schema name.
    pub target_schema: String,
    /// Metric name.
    pub metric: String,
    /// Matchers over target and metric fields; all must match.
    pub matchers: Vec<Matcher>,
    /// Inclusive start time.
    pub start: i64,
    /// Inclusive end time.
    pub end: i64,
}

/// Comparison of a matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MatchOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Matches the regular expression (fully anchored).
    Re,
    /// Does not match the regular expression.
    Nre,
}

/// `field op value`. A field name may be qualified as `target.NAME` or
/// `metric.NAME` when both schemas have a field of that name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Matcher {
    /// Field name.
    pub field: String,
    /// Comparison.
    pub op: MatchOp,
    /// Value (parsed by the field's type for `=`/`!=`) or regex.
    pub value: String,
}

/// What applying a schema did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It did not exist and was created.
    Created,
    /// It existed and only its unit or description changed.
    Updated,
    /// It existed exactly as given.
    Unchanged,
}
