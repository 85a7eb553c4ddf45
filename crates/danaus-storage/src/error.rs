//! Storage errors.

/// Result with the storage [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An earlier fsync failed; the log refuses further writes because the
    /// kernel may have dropped dirty pages (see PostgreSQL's "fsyncgate").
    #[error("recovery log is unusable after an earlier write or fsync failure: {0}")]
    Poisoned(String),
    /// The log was shut down.
    #[error("recovery log is closed")]
    Closed,
    /// The long-term store failed.
    #[error("long-term store: {0}")]
    Kv(String),
    /// A record is larger than a segment may hold.
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Record size.
        size: usize,
        /// Limit.
        limit: usize,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}
