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
