//! The one place leaf and conversion errors become gRPC statuses.

use danaus_leaf::Error;
use tonic::Status;

/// Maps a leaf error to a gRPC status with the same message.
pub fn leaf_status(e: Error) -> Status {
    match e {
        Error::InvalidArgument(m) => Status::invalid_argument(m),
        Error::NotFound(m) => Status::not_found(m),
        Error::Unavailable(m) => Status::unavailable(m),
        Error::ResourceExhausted(m) => Status::resource_exhausted(m),
        Error::Internal(m) => Status::internal(m),
    }
}

/// Maps a malformed request to `INVALID_ARGUMENT`.
pub fn convert_status(e: danaus_proto::convert::ConvertError) -> Status {
    Status::invalid_argument(e.0)
}

/// Maps a query error to a gRPC status; syntax and planning errors carry
/// the rendered message with the position and hint.
pub fn query_status(e: &danaus_query::Error, query: &str) -> Status {
    use danaus_query::Error as Q;
    match e {
        Q::Parse(_) | Q::Invalid { .. } | Q::Eval(_) => Status::invalid_argument(e.render(query)),
        Q::NotFound(m) => Status::not_found(m.clone()),
        Q::Limit { .. } => Status::resource_exhausted(e.to_string()),
        Q::Cancelled(m) if m.contains("deadline") => Status::deadline_exceeded(e.to_string()),
        Q::Cancelled(_) => Status::cancelled(e.to_string()),
        Q::Source { unavailable: true, .. } => Status::unavailable(e.to_string()),
        Q::Source { .. } => Status::internal(e.to_string()),
    }
}
