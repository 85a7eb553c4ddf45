//! # danaus-index
//!
//! Field hints (design: Query path). Leaves fingerprint excerpts of their
//! series' field values ([`hints`]) and push them, as deltas, to the zone
//! index server ([`server`]); for each fetch the mixer turns the filters
//! into a [`hints::Requirement`] and asks which leaves cannot hold a
//! matching series, and leaves those out. No false negatives: a leaf is
//! left out only if its fingerprints are fresh (pushed within the
//! freshness bound) and fail the requirement, which every matching series
//! satisfies.
//!
//! One level up, the same server keyed by zone is the root index: each
//! zone index pushes it its union and, while it can prove that union
//! complete, a claim by which the root mixer skips the zone ([`root`]).

pub mod hints;
pub mod root;
pub mod server;

pub use hints::{metric_fingerprints, requirement, series_fingerprints, target_fingerprints, Requirement};
pub use server::{IndexConfig, IndexServer};
