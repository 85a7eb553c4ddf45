//! Counters a leaf exports on `/metrics`.

use std::sync::atomic::AtomicU64;

/// Monotonic counters and last-value gauges of a leaf.
#[derive(Debug, Default)]
pub struct LeafStats {
    /// Write requests handled.
    pub write_requests: AtomicU64,
    /// Points accepted (durable).
    pub points_accepted: AtomicU64,
    /// Accepted points that were bit-identical retries of stored ones.
    pub points_duplicate: AtomicU64,
    /// Points refused because they did not fit their schema.
    pub points_invalid: AtomicU64,
    /// Points refused for being older than the out-of-order window.
    pub points_out_of_window: AtomicU64,
    /// Points refused because a different point exists at that time.
    pub points_conflict: AtomicU64,
    /// Deltas folded into collection-aggregation buckets.
    pub points_aggregated: AtomicU64,
    /// Deltas refused because their collection-aggregation bucket had closed.
    pub points_late: AtomicU64,
    /// Collection-aggregation buckets closed into output points.
    pub aggregation_buckets_closed: AtomicU64,
    /// Series created.
    pub series_created: AtomicU64,
    /// Series deleted because their range moved away.
    pub series_dropped: AtomicU64,
    /// Checkpoints completed.
    pub checkpoints: AtomicU64,
    /// Checkpoints that failed.
    pub checkpoint_errors: AtomicU64,
    /// Duration of the last checkpoint.
    pub last_checkpoint_micros: AtomicU64,
    /// Chunks written to the long-term store.
    pub chunks_flushed: AtomicU64,
    /// Chunk bytes written to the long-term store.
    pub bytes_flushed: AtomicU64,
    /// Records replayed at start.
    pub replay_records: AtomicU64,
    /// Torn tails truncated at start (0 or 1).
    pub replay_torn_tails: AtomicU64,
    /// Damaged segments found at start.
    pub replay_corrupt_segments: AtomicU64,
}
