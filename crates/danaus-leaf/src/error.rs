//! Leaf errors.

/// Result with the leaf's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A leaf operation failed as a whole. Problems with individual series of a
/// write are not errors: they come back in [`crate::WriteResult::errors`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed (bad schema, bad matcher, …).
    #[error("{0}")]
    InvalidArgument(String),
    /// A named schema does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The leaf cannot accept writes right now (log failure, shutting
    /// down); the caller should retry elsewhere or later.
    #[error("{0}")]
    Unavailable(String),
    /// A limit was hit.
    #[error("{0}")]
    ResourceExhausted(String),
    /// Stored data could not be read back.
    #[error("{0}")]
    Internal(String),
}

impl From<danaus_storage::Error> for Error {
    fn from(e: danaus_storage::Error) -> Self {
        match e {
            danaus_storage::Error::Poisoned(_) | danaus_storage::Error::Closed => Error::Unavailable(e.to_string()),
            danaus_storage::Error::TooLarge { .. } => Error::ResourceExhausted(e.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<danaus_model::Error> for Error {
    fn from(e: danaus_model::Error) -> Self {
        Error::InvalidArgument(e.to_string())
    }
}
