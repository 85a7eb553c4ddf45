//! # danaus-router
//!
//! The write path of a zone (design: Write path and durability).
//!
//! * [`leaf_router::LeafRouter`] maps each series to its range by target
//!   string (the zone table, followed through a `TableWatcher`, so it keeps
//!   routing through an assigner outage), writes it to every replica of
//!   the range, and acknowledges once every ready and every joining
//!   replica stored it (a range being moved must not miss a write, and
//!   reads go to any one ready replica). A ready replica that keeps failing
//!   after a majority stored the write is demoted to lagging in the zone
//!   table first (not read until the assigner repairs it), so one dead
//!   leaf does not stop writes ([`Quorum`]). After a range's read set
//!   shrinks (a demotion, the end of a move) its writes are acknowledged
//!   only once no mixer can still call an answer planned by the older
//!   table complete (`danaus_assigner::READ_CONFIRM_WINDOW`). Replicas that refuse a
//!   series because the router's map is stale make it wait for a newer
//!   table and retry; unreachable replicas are retried with backoff until
//!   the deadline. Errors are reported per series.
//! * [`ingest::IngestRouter`] is the zone's front door (`IngestService`,
//!   `SchemaService`): it sends each series to the zone that owns its
//!   location (the zone map), its own zone's through the leaf router, and
//!   applies schemas through the zone's Raft group.
//!
//! Data flows one way: client → ingestion router → (other zone's router |
//! leaf router) → leaves.

pub mod ingest;
mod lanes;
pub mod leaf_router;
pub mod zone_map;

pub use ingest::IngestRouter;
pub use leaf_router::{LeafRouter, Quorum, RouterConfig, RouterStats};
pub use zone_map::ZoneMap;
