//! Why a role could not start or serve.

use std::net::SocketAddr;

/// A role failed to start or to serve.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Its address could not be bound.
    #[error("binding {addr}: {message}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
    /// A part of it did not start.
    #[error("{what}: {message}")]
    Start {
        /// What was being started (`opening the leaf`).
        what: String,
        /// Why it failed.
        message: String,
    },
    /// Its gRPC server stopped with an error.
    #[error("serving: {0}")]
    Serve(String),
    /// Its configuration cannot work.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// A part named `what` failed to start with `e`.
    pub fn start(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Error::Start { what: what.into(), message: e.to_string() }
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
