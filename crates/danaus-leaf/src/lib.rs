//! # danaus-leaf
//!
//! A leaf keeps the series of its target ranges in memory as compressed
//! chunks (`danaus-codec`), makes every acknowledged write durable in a
//! recovery log, and moves data into a long-term store (`danaus-storage`'s
//! `KvStore`: RocksDB in production, memory in simulation).
//!
//! **Write path.** [`Leaf::write`] validates every series and point against
//! its schemas (`danaus_model::validate`); a bad series or point is reported
//! in [`WriteResult::errors`] while the rest of the batch is stored. Under
//! each series' lock a point is checked (out-of-order window, conflicting
//! rewrite) and applied to the series' open chunk; then all accepted points
//! of the batch go into one recovery-log record, and the call returns only
//! after the group commit that contains it has been fsynced. A point that is
//! in memory but whose log write failed is not acknowledged; the client's
//! retry is an idempotent duplicate. A batch's keys are encoded first and
//! its known series looked up together, their cache misses overlapped
//! ([`bytes_map`], which the Prometheus receiver's identities use too).
//!
//! **Collection aggregation.** Series of a delta metric whose schema has
//! `collection` set are folded into output series (dropped fields blanked)
//! per admission period instead of being stored; their deltas are logged,
//! deduplicated per input series and end time, refused when late, saved by
//! checkpoints while their bucket is open, and become one point per bucket
//! when the admission window has passed ([`Leaf::close_buckets`]).
//!
//! **Checkpoints.** Periodically (and at shutdown) the leaf rotates the log,
//! writes every unpersisted chunk (sealed chunks, and snapshots of open ones)
//! plus new series records to the long-term store with one synced batch, then
//! deletes the log segments before the rotation: all they held was applied
//! to memory before it was logged, so it is in the store now. Sealed chunks
//! older than the memory window are dropped from memory; retention deletes
//! expired chunks with range tombstones.
//!
//! **Restart.** Schemas and series come from the store; the log's remaining
//! segments replay into memory (duplicates of checkpointed points are
//! recognised and skipped); a torn tail is truncated and reported.
//!
//! **Memory.** Series of one target are scraped together, so they share
//! time columns: open chunks append to one column per target (a series
//! whose times differ copies what it shared and goes on alone), and sealed
//! chunks keep their time section in an interner.
//!
//! **Reads.** [`Leaf::select`] resolves matchers against the schemas and
//! picks series; [`Leaf::points`] merges memory and stored chunks, keeping
//! one point per timestamp.

mod aggregate;
pub mod bytes_map;
mod error;
mod index;
mod intern;
mod keys;
mod leaf;
mod matcher;
mod options;
mod schemas;
mod series;
mod stats;
mod wal_record;

pub use error::{Error, Result};
pub use leaf::{BucketHold, CheckpointReport, Leaf, LeafConfig, MemoryUsage, OpenDelta, SelectedSeries};
pub use options::{LeafOptions, MAX_CHUNK_SPAN_NS};
pub use stats::LeafStats;
