//! Leaf tuning.

use std::time::Duration;

use danaus_storage::LogOptions;

/// Hard upper bound on the time span of one chunk; reads seek this far back
/// before a query's start so they never miss a chunk that overlaps it.
pub const MAX_CHUNK_SPAN_NS: i64 = 4 * 3600 * 1_000_000_000;

/// How a leaf keeps and ages data.
#[derive(Debug, Clone)]
pub struct LeafOptions {
    /// Points up to this far behind a series' newest point are accepted out
    /// of order; older ones are rejected with an error.
    pub out_of_order_window: Duration,
    /// A chunk is sealed after this many points.
    pub chunk_max_points: usize,
    /// A chunk is sealed when it would span more than this (≤ 4h).
    pub chunk_max_span: Duration,
    /// Sealed chunks stay in memory this long after their last point, then
    /// are served from the long-term store only.
    pub memory_window: Duration,
    /// How often the leaf checkpoints memory into the long-term store and
    /// deletes the recovery-log segments that covers.
    pub checkpoint_interval: Duration,
    /// A checkpoint also starts when the log has grown this much since the
    /// last one.
    pub checkpoint_log_bytes: u64,
    /// Data older than this is deleted; `None` keeps everything.
    pub retention: Option<Duration>,
    /// Recovery-log tuning.
    pub log: LogOptions,
    /// Most series one read may return.
    pub max_series_per_read: usize,
    /// Most points one read may return.
    pub max_points_per_read: usize,
}

impl Default for LeafOptions {
    fn default() -> Self {
        Self {
            out_of_order_window: Duration::from_secs(600),
            chunk_max_points: 480,
            chunk_max_span: Duration::from_secs(2 * 3600),
            memory_window: Duration::from_secs(2 * 3600),
            checkpoint_interval: Duration::from_secs(60),
            checkpoint_log_bytes: 256 << 20,
            retention: None,
            log: LogOptions::default(),
            max_series_per_read: 100_000,
            max_points_per_read: 50_000_000,
        }
    }
}

pub(crate) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}
