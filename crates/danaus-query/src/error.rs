//! Errors of planning and running a query.

use crate::syntax::ast::Span;
use crate::syntax::ParseError;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong with a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text does not parse.
    #[error("syntax error {0}")]
    Parse(#[from] ParseError),
    /// The query parses but does not make sense against the schemas
    /// (unknown field, wrong type, …). `span` points into the query.
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
        /// Where in the query.
        span: Option<Span>,
        /// The likely fix.
        hint: Option<String>,
    },
    /// A schema the query names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A value could not be computed (overflow, bad cast, …).
    #[error("{0}")]
    Eval(String),
    /// A per-query limit was hit.
    #[error("query stopped: more than {limit} {what} (limit `{name}`); {hint}")]
    Limit {
        /// The limit's name, as configured.
        name: &'static str,
        /// What was counted ("series touched").
        what: &'static str,
        /// The limit.
        limit: u64,
        /// How to stay under it.
        hint: &'static str,
    },
    /// The caller went away or the deadline passed.
    #[error("query cancelled: {0}")]
    Cancelled(String),
    /// A data source failed.
    #[error("source {source_name}: {message}")]
    Source {
        /// Which source.
        source_name: String,
        /// What it said.
        message: String,
        /// Whether the source is unreachable (the query may go on without
        /// it and report it missing) rather than refusing the request.
        unavailable: bool,
    },
}

impl Error {
    /// A semantic error at `span`.
    pub fn invalid(message: impl Into<String>, span: Option<Span>) -> Self {
        Error::Invalid { message: message.into(), span, hint: None }
    }

    /// Adds a hint to an [`Error::Invalid`] (other errors are unchanged).
    pub fn with_hint(self, h: impl Into<String>) -> Self {
        match self {
            Error::Invalid { message, span, .. } => Error::Invalid { message, span, hint: Some(h.into()) },
            e => e,
        }
    }

    /// The error as a user reads it, with a caret under the offending part
    /// of `query` where one is known.
    pub fn render(&self, query: &str) -> String {
        match self {
            Error::Parse(p) => format!("syntax error at {}", p.render(query)),
            Error::Invalid { message, span: Some(span), hint } => {
                crate::syntax::render_at(query, *span, message, hint.as_deref())
            }
            Error::Invalid { message, span: None, hint: Some(h) } => format!("{message}\n  hint: {h}"),
            e => e.to_string(),
        }
    }
}
