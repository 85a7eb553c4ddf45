//! Errors, with the Prometheus HTTP API's error types.

/// What went wrong with a query.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The query text or a parameter is malformed (`bad_data`, HTTP 400).
    #[error("{0}")]
    BadData(String),
    /// The query is well formed but cannot be evaluated on this data
    /// (`execution`, HTTP 422): duplicate series, many-to-many matching.
    #[error("{0}")]
    Execution(String),
    /// A limit on samples or series was hit (`execution`, HTTP 422).
    #[error("{0}")]
    TooLarge(String),
    /// The deadline passed (`timeout`, HTTP 503).
    #[error("query timed out in {0}")]
    Timeout(String),
    /// The store could not answer (`internal`, HTTP 500;
    /// `unavailable` when it may answer later, HTTP 503).
    #[error("{message}")]
    Storage {
        /// What the store said.
        message: String,
        /// Whether retrying later may work.
        retryable: bool,
    },
}

impl Error {
    /// The `errorType` of the HTTP API's error envelope.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::BadData(_) => "bad_data",
            Error::Execution(_) | Error::TooLarge(_) => "execution",
            Error::Timeout(_) => "timeout",
            Error::Storage { retryable: true, .. } => "unavailable",
            Error::Storage { .. } => "internal",
        }
    }

    /// The HTTP status Prometheus answers this error with.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::BadData(_) => 400,
            Error::Execution(_) | Error::TooLarge(_) => 422,
            Error::Timeout(_) | Error::Storage { retryable: true, .. } => 503,
            Error::Storage { .. } => 500,
        }
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
