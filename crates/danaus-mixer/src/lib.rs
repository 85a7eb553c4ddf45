//! # danaus-mixer
//!
//! The zone mixer (design: Query path). For each query it takes the zone
//! table as it is now, picks one ready replica for every range (spreading
//! ranges over replicas, avoiding leaves that failed recently) and gives
//! the engine one [`RemoteLeaf`] per chosen leaf: the engine runs the zone
//! and root phases here, and each remote leaf runs the leaf phase on its
//! leaf, restricted to the ranges it was given, so every series is read
//! exactly once.
//!
//! A remote leaf that has not answered after `hedge_after` is hedged: its
//! ranges are asked of their other ready replicas too, and the first
//! complete answer wins (the other is dropped, never merged). A leaf that
//! fails is retried on the other replicas at once. Ranges that no replica
//! answers — or that are cut by the query's deadline — make the leaf show
//! as missing in the completeness report, with the reason; the rest of the
//! answer still arrives.
//!
//! The table itself may be stale: a replica it names ready may have been
//! demoted, or moved away, and miss acknowledged writes. An answer is
//! complete only if the table it was planned by was confirmed current by a
//! linearizable read of the latest version sent at most
//! [`MixerConfig::confirm_within`] before the query began (routers hold
//! writes that long after a range's read set shrinks); otherwise the zone
//! table is reported missing, and raw reads fail with UNAVAILABLE.
//!
//! The zone mixer also serves `ZoneStageService` ([`ZoneStage`]): the leaf
//! and zone stages of a plan the root mixer ([`root`]) pushes down, run
//! exactly as for its own queries, answered with the zone's completeness.
//! The root mixer plans by the global configuration (zones, schemas),
//! asks every zone at once and merges their outputs in its root stage;
//! a zone that does not answer is named missing, never silently dropped.

mod read;
mod remote;
pub mod root;
mod stage;
mod zone;

pub use read::ZoneRead;
pub use remote::{RemoteLeaf, Replica};
pub use root::{RootCatalog, RootConfig, RootMixer, RootStats, RootZone};
pub use stage::ZoneStage;
pub use zone::{MixerConfig, MixerStats, ZoneMixer};
