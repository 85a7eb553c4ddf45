//! # danaus-raft
//!
//! Raft groups for Danaus: [openraft](https://docs.rs/openraft) with a log
//! on the [`KvStore`](danaus_storage::KvStore) seam (RocksDB in a server,
//! `MemKv` in tests and simulation), a transport over gRPC, and a generic
//! replicated [`StateMachine`]. The range assigner's table is the first
//! user; the config server and evaluators follow.
//!
//! Data flow: a caller [`proposes`](RaftGroup::propose) a command on any
//! member; a follower forwards it to the leader over `RaftService.Propose`;
//! the leader appends it to its log (one synced write per batch), replicates
//! it to a quorum and applies it to the state machine on every member, which
//! returns the reply. Reads go to the local state machine
//! ([`RaftGroup::read`]); [`RaftGroup::changes`] wakes watchers whenever an
//! entry is applied.
//!
//! Invariants: an entry is acknowledged to the proposer only after a quorum
//! holds it durably (the log store syncs before it reports an append
//! flushed); the state machine is a pure function of the applied entries, so
//! every member reaches the same state; a snapshot is stored with the log
//! id it covers before the log below it is purged, so a restart restores the
//! snapshot and replays only what follows it.
//!
//! One node may host several groups: they share the node's `RaftService`
//! (messages name their group) and its `KvStore` (keys are prefixed by the
//! group's name).

mod error;
mod group;
mod log_store;
mod network;
mod runtime;
mod state_machine;

use std::io::Cursor;

pub use error::{Error, Result};
pub use group::{GroupConfig, RaftGroup};
pub use log_store::KvLogStore;
pub use network::{GrpcNetwork, RaftServer};
pub use openraft::{BasicNode, LogId, ServerState, Vote};
pub use runtime::Runtime;
pub use state_machine::StateMachine;

/// A member's id within its group.
pub type NodeId = u64;

/// A command for the state machine, serialized (JSON) by [`RaftGroup`], so
/// one openraft type configuration serves every state machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Command(pub String);

/// The state machine's reply to a [`Command`], serialized (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reply(pub String);

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

openraft::declare_raft_types!(
    /// openraft's type configuration, shared by every Danaus group.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = NodeId,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = Runtime,
);

/// A Raft handle of a Danaus group.
pub type Raft = openraft::Raft<TypeConfig>;

fn danaus_proto_request(group: &str, cmd: &Command) -> std::result::Result<danaus_proto::v1::RaftRequest, String> {
    let payload = serde_json::to_vec(cmd).map_err(|e| format!("encoding a proposal: {e}"))?;
    Ok(danaus_proto::v1::RaftRequest { group: group.to_owned(), payload })
}
