//! Errors of a Raft group, as its users see them.

/// Result with the Raft [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a group could not do what was asked.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Error {
    /// No leader is known (an election is under way, or a quorum is
    /// unreachable). Retry later.
    #[error("raft group {group:?} has no reachable leader: {reason}")]
    NoLeader {
        /// The group.
        group: String,
        /// What happened.
        reason: String,
    },
    /// The group is not hosted by the node asked.
    #[error("raft group {0:?} is not hosted on this node")]
    UnknownGroup(String),
    /// The command was refused by the state machine or is malformed.
    #[error("{0}")]
    Rejected(String),
    /// The storage under the log or the state machine failed.
    #[error("raft storage: {0}")]
    Storage(String),
    /// Raft itself stopped (a fatal error or shutdown).
    #[error("raft group {group:?} stopped: {reason}")]
    Stopped {
        /// The group.
        group: String,
        /// Why.
        reason: String,
    },
}
