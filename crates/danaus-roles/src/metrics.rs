//! A role's `/metrics`: the OpenMetrics text a role's samples make
//! ([`Text`], written by the `prometheus-client` crate), and the samples
//! of the components roles share (process, leaves, router, queries).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use danaus_leaf::Leaf;
use danaus_mixer::MixerStats;
use danaus_node::query::QueryStats;
use danaus_router::RouterStats;

/// A sample's value as the exposition takes it.
pub trait SampleValue {
    /// The value, integral where it is (a count prints as `3`, not `3.0`).
    fn sample(self) -> Sample;
}

/// An integral or floating sample.
#[derive(Debug, Clone, Copy)]
pub enum Sample {
    /// A count or size.
    Int(i64),
    /// Anything else.
    Float(f64),
}

macro_rules! int_sample {
    ($($t:ty),*) => {$(
        impl SampleValue for $t {
            fn sample(self) -> Sample {
                Sample::Int(i64::try_from(self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_sample!(u8, u32, u64, usize, i64);

impl SampleValue for f64 {
    fn sample(self) -> Sample {
        Sample::Float(self)
    }
}

/// Labels of one sample.
pub type LabelPairs = Vec<(String, String)>;

/// One metric family: one sample without labels, or samples with.
#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    counter: bool,
    samples: Vec<(LabelPairs, Sample)>,
}

/// The metrics of one scrape, gathered, then written in the OpenMetrics
/// text format by the `prometheus-client` crate (escaping, counter
/// suffixes and the `# EOF` trailer are its business).
#[derive(Debug, Default)]
pub struct Text {
    families: Vec<Family>,
}

/// `Content-Type` of [`Text::finish`]'s output.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl prometheus_client::collector::Collector for Text {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::info::Info;
        use prometheus_client::metrics::MetricType;
        let info = Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
        info.encode(encoder.encode_descriptor("danaus_build", "Build information.", None, info.metric_type())?)?;
        for f in &self.families {
            // The encoder adds a counter's `_total`.
            let name = if f.counter { f.name.strip_suffix("_total").unwrap_or(&f.name) } else { &f.name };
            let kind = if f.counter { MetricType::Counter } else { MetricType::Gauge };
            let mut family = encoder.encode_descriptor(name, &f.help, None, kind)?;
            for (labels, value) in &f.samples {
                if labels.is_empty() {
                    encode_sample(f.counter, *value, family)?;
                    break;
                }
                encode_sample(f.counter, *value, family.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}

/// Writes one sample of a counter or gauge.
fn encode_sample(counter: bool, value: Sample, e: prometheus_client::encoding::MetricEncoder<'_>) -> std::fmt::Result {
    use prometheus_client::encoding::EncodeMetric;
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;
    match (counter, value) {
        (true, Sample::Int(v)) => ConstCounter::new(v.max(0) as u64).encode(e),
        (true, Sample::Float(v)) => ConstCounter::new(v).encode(e),
        (false, Sample::Int(v)) => ConstGauge::new(v).encode(e),
        (false, Sample::Float(v)) => ConstGauge::new(v).encode(e),
    }
}

impl Text {
    /// Adds one sample of a metric of `kind` (`counter` or `gauge`).
    pub fn metric(&mut self, name: &str, kind: &str, help: &str, value: impl SampleValue) {
        self.labelled(name, kind, help, Vec::new(), value);
    }

    /// Adds a sample with `labels` of a metric of `kind`: samples of one
    /// name added one after another make one family.
    pub fn labelled(&mut self, name: &str, kind: &str, help: &str, labels: LabelPairs, value: impl SampleValue) {
        let value = value.sample();
        match self.families.last_mut() {
            Some(f) if f.name == name && !labels.is_empty() && f.samples.iter().all(|(l, _)| !l.is_empty()) => {
                f.samples.push((labels, value));
            }
            _ => self.families.push(Family {
                name: name.to_owned(),
                help: help.to_owned(),
                counter: kind == "counter",
                samples: vec![(labels, value)],
            }),
        }
    }

    /// Adds a counter.
    pub fn counter(&mut self, name: &str, help: &str, v: &AtomicU64) {
        self.metric(name, "counter", help, v.load(Ordering::Relaxed));
    }

    /// The exposition ([`OPENMETRICS`]), with `danaus_build_info` first.
    pub fn finish(self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::with_capacity(8192);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!("writing /metrics: {e}");
        }
        out
    }
}

/// The process' resident set size.
pub fn rss_bytes() -> u64 {
    // Resident pages are the second field of /proc/self/statm.
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

/// A router's counters.
pub fn router_metrics(t: &mut Text, s: &RouterStats) {
    t.counter("danaus_router_writes_total", "Write requests routed.", &s.writes);
    t.counter("danaus_router_series_total", "Series routed.", &s.series);
    t.counter("danaus_router_replica_failures_total", "Sends to a replica that failed.", &s.replica_failures);
    t.counter("danaus_router_stale_map_total", "Series refused by a replica as routed by a stale map.", &s.stale_map);
    t.counter(
        "danaus_router_quorum_failures_total",
        "Writes that missed the quorum by the deadline.",
        &s.quorum_failures,
    );
    t.counter(
        "danaus_router_demotions_total",
        "Replicas demoted to lagging after missing acknowledged writes.",
        &s.demotions,
    );
    t.counter(
        "danaus_router_read_holds_total",
        "Write rounds held back after a range's read set shrank, until no mixer could plan by the older table.",
        &s.read_holds,
    );
}

/// A mixer's query counters.
pub fn query_metrics(t: &mut Text, q: &QueryStats, ms: &MixerStats) {
    query_counters(t, q);
    t.counter("danaus_mixer_hedges_total", "Leaf phases hedged on other replicas.", &ms.hedges);
    t.counter("danaus_mixer_hedges_won_total", "Hedges that answered first.", &ms.hedges_won);
    t.counter("danaus_mixer_pruned_total", "Leaf phases skipped by field hints.", &ms.pruned);
    t.counter("danaus_mixer_index_failures_total", "Index server questions that failed.", &ms.index_failures);
}

/// The counters of a QueryService.
pub fn query_counters(t: &mut Text, q: &QueryStats) {
    t.counter("danaus_query_requests_total", "Queries received.", &q.requests);
    t.counter("danaus_query_failures_total", "Queries that ended with an error.", &q.failures);
    t.counter(
        "danaus_query_cancelled_total",
        "Queries stopped because the caller went away or the deadline passed.",
        &q.cancelled,
    );
    t.counter("danaus_query_refused_total", "Queries refused: too many running.", &q.refused);
    t.counter("danaus_query_series_touched_total", "Series read by queries.", &q.series_touched);
    t.counter("danaus_query_points_touched_total", "Points read by queries.", &q.points_touched);
}

/// Build, uptime and memory of the process.
pub fn process_metrics(t: &mut Text, started: Instant) {
    t.metric("danaus_uptime_seconds", "gauge", "Seconds since the process started.", started.elapsed().as_secs_f64());
    t.metric("danaus_process_resident_memory_bytes", "gauge", "Resident set size.", rss_bytes());
}

/// The counters and gauges of a process' leaves, summed (the last
/// checkpoint's duration: the longest).
pub fn leaf_metrics(t: &mut Text, leaves: &[Leaf], disk: u64) {
    let sum = |f: &dyn Fn(&Leaf) -> u64| leaves.iter().map(f).sum::<u64>();
    let mut mem = danaus_leaf::MemoryUsage::default();
    for l in leaves {
        let m = l.memory_usage();
        mem.series += m.series;
        mem.points += m.points;
        mem.chunk_bytes += m.chunk_bytes;
        mem.data_bytes += m.data_bytes;
    }
    t.metric(
        "danaus_leaf_write_requests_total",
        "counter",
        "Write batches handled by the leaf.",
        sum(&|l| l.stats().write_requests.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_leaf_points_accepted_total",
        "counter",
        "Points accepted and durable.",
        sum(&|l| l.stats().points_accepted.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_leaf_points_duplicate_total",
        "counter",
        "Accepted points that repeated a stored point exactly.",
        sum(&|l| l.stats().points_duplicate.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_leaf_points_invalid_total",
        "counter",
        "Points refused for not fitting their schema.",
        sum(&|l| l.stats().points_invalid.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_leaf_points_out_of_window_total",
        "counter",
        "Points refused as older than the out-of-order window.",
        sum(&|l| l.stats().points_out_of_window.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_leaf_points_conflict_total",
        "counter",
        "Points refused because a different point exists at that time.",
        sum(&|l| l.stats().points_conflict.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_leaf_aggregation_points_total",
        "counter",
        "Deltas folded into collection-aggregation buckets.",
        sum(&|l| l.stats().points_aggregated.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_leaf_aggregation_late_points_total",
        "counter",
        "Deltas refused because their collection-aggregation bucket had closed.",
        sum(&|l| l.stats().points_late.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_leaf_aggregation_buckets_closed_total",
        "counter",
        "Collection-aggregation buckets closed into output points.",
        sum(&|l| l.stats().aggregation_buckets_closed.load(Ordering::Relaxed)),
    );
    let (open_buckets, open_deltas) = leaves.iter().map(Leaf::open_buckets).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    t.metric(
        "danaus_leaf_aggregation_open_buckets",
        "gauge",
        "Collection-aggregation buckets still admitting deltas.",
        open_buckets,
    );
    t.metric(
        "danaus_leaf_aggregation_open_deltas",
        "gauge",
        "Deltas held by open collection-aggregation buckets.",
        open_deltas,
    );
    t.metric(
        "danaus_leaf_series_created_total",
        "counter",
        "Series created.",
        sum(&|l| l.stats().series_created.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_leaf_series_dropped_total",
        "counter",
        "Series deleted because their range moved to other leaves.",
        sum(&|l| l.stats().series_dropped.load(Ordering::Relaxed)),
    );
    t.metric("danaus_leaf_series", "gauge", "Series in the leaf's index.", mem.series);
    t.metric("danaus_leaf_memory_points", "gauge", "Points held in memory chunks.", mem.points);
    t.metric(
        "danaus_leaf_memory_chunk_bytes",
        "gauge",
        "Bytes held by memory chunks, encoder state included.",
        mem.chunk_bytes,
    );
    t.metric("danaus_leaf_memory_data_bytes", "gauge", "Bytes of encoded chunk data in memory.", mem.data_bytes);
    t.metric("danaus_leaf_disk_bytes", "gauge", "Bytes of the long-term store on disk.", disk);
    t.metric(
        "danaus_leaf_checkpoints_total",
        "counter",
        "Checkpoints completed.",
        sum(&|l| l.stats().checkpoints.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_leaf_checkpoint_errors_total",
        "counter",
        "Checkpoints that failed.",
        sum(&|l| l.stats().checkpoint_errors.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_leaf_last_checkpoint_seconds",
        "gauge",
        "Duration of the last checkpoint.",
        leaves.iter().map(|l| l.stats().last_checkpoint_micros.load(Ordering::Relaxed)).max().unwrap_or(0) as f64 / 1e6,
    );
    t.metric(
        "danaus_leaf_chunks_flushed_total",
        "counter",
        "Chunks written to the long-term store.",
        sum(&|l| l.stats().chunks_flushed.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_leaf_flushed_bytes_total",
        "counter",
        "Chunk bytes written to the long-term store.",
        sum(&|l| l.stats().bytes_flushed.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_leaf_replay_records_total",
        "counter",
        "Recovery-log records replayed at start.",
        sum(&|l| l.stats().replay_records.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_leaf_replay_torn_tails_total",
        "counter",
        "Torn log tails truncated at start.",
        sum(&|l| l.stats().replay_torn_tails.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_leaf_replay_corrupt_segments_total",
        "counter",
        "Damaged log segments found at start.",
        sum(&|l| l.stats().replay_corrupt_segments.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_wal_records_total",
        "counter",
        "Recovery-log records written and synced.",
        sum(&|l| l.log_stats().records.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_wal_syncs_total",
        "counter",
        "Recovery-log group commits (fsyncs).",
        sum(&|l| l.log_stats().syncs.load(Ordering::Relaxed)),
    );
    t.metric(
        "danaus_wal_bytes_total",
        "counter",
        "Recovery-log bytes written.",
        sum(&|l| l.log_stats().bytes.load(Ordering::Relaxed)),
    );
}
