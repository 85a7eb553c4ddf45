//! Codec errors.

/// Result with the codec's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a chunk could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The chunk ends before the data it announces.
    #[error("chunk truncated while reading {0}")]
    Truncated(&'static str),
    /// The bytes are not a valid chunk.
    #[error("corrupt chunk: {0}")]
    Corrupt(String),
    /// A value of the wrong type was pushed into a column.
    #[error("value {value} does not match the chunk's value type {expected}")]
    TypeMismatch {
        /// The chunk's value type.
        expected: String,
        /// The offending value.
        value: String,
    },
}
