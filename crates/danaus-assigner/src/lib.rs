//! # danaus-assigner
//!
//! The zone table and the range assigner (design: Components, Write path,
//! Replication).
//!
//! * [`table`]: the zone table — ranges of target strings and their
//!   replica leaves, the leaves, the zone's schemas — a deterministic
//!   state machine replicated by the zone's Raft group (`danaus-raft`).
//! * [`plan`]: the assigner's decisions as a pure function of the table,
//!   the leaves' reported load and liveness: place missing replicas,
//!   replace replicas on dead leaves, split big ranges, move ranges off
//!   overloaded leaves.
//! * [`service`]: `AssignerService` (watch the table, leaf heartbeats,
//!   proposals) and the controller that runs on the Raft leader, carrying
//!   out the plan one step at a time. A move is dual write → history copy
//!   → source drop: the destination joins (every write goes to it too),
//!   the leaves of the range learn the new table (so writes routed by the
//!   old one are refused), the history is copied, the destination is
//!   promoted, and only then is the source removed.
//! * [`watch`]: the client side: follows the table from any assigner
//!   member and keeps the last table when all are away, so ingestion and
//!   queries go on during an assigner outage (answers then say the table
//!   could not be confirmed current: [`watch::TableWatcher::confirmed`]).
//!
//! Data flows one way: leaves report load up; the table flows down to
//! routers, leaves and mixers through watches.

pub mod client;
pub mod plan;
pub mod service;
pub mod table;
pub mod watch;

pub use client::ZoneClient;
pub use plan::{LeafLoad, Policy, RangeLoad, Step};
pub use service::{Assigner, AssignerConfig};
pub use table::{
    Fence, LeafEntry, MetricLookup, Range, RangeId, Replica, ReplicaState, TenantSchemas, ZoneCommand, ZoneReply,
    ZoneTable, READ_CONFIRM_WINDOW,
};
pub use watch::{TableCache, TableWatcher, Unconfirmed};
