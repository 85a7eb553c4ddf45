//! Errors of the data model. Every message names what was wrong and where.

/// Result with the model's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A schema, key or point that does not satisfy the data model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A schema definition is malformed.
    #[error("schema {schema:?}: {reason}")]
    InvalidSchema {
        /// The schema's name.
        schema: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A field value does not fit its schema.
    #[error("{schema:?} field {field:?}: {reason}")]
    InvalidField {
        /// Schema the field belongs to.
        schema: String,
        /// The field's name.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A point does not fit its metric schema.
    #[error("metric {metric:?} point {index} of series {series}: {reason}")]
    InvalidPoint {
        /// Metric name.
        metric: String,
        /// Human-readable series identity.
        series: String,
        /// Position of the point in the request.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A distribution is internally inconsistent or two cannot be merged.
    #[error("distribution: {0}")]
    InvalidDistribution(String),
    /// An encoded key could not be decoded.
    #[error("malformed key: {0}")]
    MalformedKey(String),
}
