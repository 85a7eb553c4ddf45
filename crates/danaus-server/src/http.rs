//! The HTTP port: `/metrics` (Prometheus text format 0.0.4), `/healthz`,
//! and Prometheus remote_write at `/api/v1/write` (`danaus-prom`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use danaus_leaf::Leaf;
use danaus_node::tenant::{tenant_name, TENANT_HEADER};
use danaus_node::MAX_MESSAGE_BYTES;
use danaus_prom::Receiver;

use danaus_node::grpc::GrpcStats;
use danaus_node::query::QueryStats;

/// What the HTTP handlers read.
#[derive(Clone)]
pub struct HttpState {
    /// The leaf.
    pub leaf: Leaf,
    /// gRPC counters.
    pub grpc: Arc<GrpcStats>,
    /// Query counters.
    pub query: Arc<QueryStats>,
    /// The remote_write receiver.
    pub remote_write: Arc<Receiver>,
    /// Process start.
    pub started: Instant,
}

/// The router.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/v1/write", post(remote_write))
        .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .with_state(state)
}

/// Prometheus remote_write (1.0 and 2.0); the tenant comes from the
/// `x-danaus-tenant` header as on the gRPC API.
async fn remote_write(State(st): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let tenant = match tenant_name(h(TENANT_HEADER)) {
        Ok(t) => t,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let reply = st.remote_write.handle(&tenant, h("content-type"), h("content-encoding"), &body).await;
    let mut resp =
        (StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), reply.body).into_response();
    for (k, v) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// `200 ok` while the leaf accepts writes; `503` with the reason when it
/// cannot (a failed fsync poisons the recovery log), so load balancers and
/// Kubernetes stop sending it traffic.
async fn healthz(State(st): State<HttpState>) -> impl IntoResponse {
    match st.leaf.unhealthy() {
        None => (StatusCode::OK, "ok\n".to_owned()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {why}\n")),
    }
}

/// A Prometheus text exposition being written.
pub struct Text(pub String);

impl Text {
    /// Writes one sample with its HELP and TYPE lines.
    pub fn metric(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
    /// Writes a counter.
    pub fn counter(&mut self, name: &str, help: &str, v: &AtomicU64) {
        self.metric(name, "counter", help, v.load(Ordering::Relaxed));
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

async fn metrics(State(st): State<HttpState>) -> impl IntoResponse {
    let disk = st.leaf.disk_bytes().await.unwrap_or(0);
    let mut t = Text(String::with_capacity(4096));
    process_metrics(&mut t, st.started);
    leaf_metrics(&mut t, &st.leaf, disk);
    t.counter("danaus_grpc_schema_requests_total", "Schema RPCs.", &st.grpc.schema_requests);
    t.counter("danaus_grpc_write_requests_total", "Write RPCs.", &st.grpc.write_requests);
    t.counter("danaus_grpc_write_failures_total", "Write RPCs that failed as a whole.", &st.grpc.write_failures);
    t.counter("danaus_grpc_read_requests_total", "Read RPCs.", &st.grpc.read_requests);
    t.counter("danaus_grpc_read_series_total", "Series streamed by reads.", &st.grpc.read_series);
    t.counter("danaus_grpc_read_points_total", "Points streamed by reads.", &st.grpc.read_points);
    let rw = st.remote_write.stats();
    t.counter("danaus_remote_write_requests_total", "Prometheus remote_write requests.", &rw.requests);
    t.counter("danaus_remote_write_samples_total", "Samples stored from remote_write.", &rw.samples_written);
    t.counter("danaus_remote_write_series_refused_total", "Series refused (400 to the sender).", &rw.series_refused);
    t.counter("danaus_remote_write_failed_requests_total", "Requests refused as a whole.", &rw.failed_requests);
    t.counter("danaus_query_requests_total", "Queries received.", &st.query.requests);
    t.counter("danaus_query_failures_total", "Queries that ended with an error.", &st.query.failures);
    t.counter(
        "danaus_query_cancelled_total",
        "Queries stopped because the caller went away or the deadline passed.",
        &st.query.cancelled,
    );
    t.counter("danaus_query_refused_total", "Queries refused: too many running.", &st.query.refused);
    t.counter("danaus_query_series_touched_total", "Series read by queries.", &st.query.series_touched);
    t.counter("danaus_query_points_touched_total", "Points read by queries.", &st.query.points_touched);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], t.0)
}

/// Build, uptime and memory of the process.
pub fn process_metrics(t: &mut Text, started: Instant) {
    let _ = writeln!(
        t.0,
        "# HELP danaus_build_info Build information.\n# TYPE danaus_build_info gauge\ndanaus_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    t.metric("danaus_uptime_seconds", "gauge", "Seconds since the process started.", started.elapsed().as_secs_f64());
    t.metric("danaus_process_resident_memory_bytes", "gauge", "Resident set size.", rss_bytes());
}

/// A leaf's counters and gauges.
pub fn leaf_metrics(t: &mut Text, leaf: &Leaf, disk: u64) {
    let leaf_stats = leaf.stats();
    let log = leaf.log_stats();
    let mem = leaf.memory_usage();
    t.counter("danaus_leaf_write_requests_total", "Write batches handled by the leaf.", &leaf_stats.write_requests);
    t.counter("danaus_leaf_points_accepted_total", "Points accepted and durable.", &leaf_stats.points_accepted);
    t.counter(
        "danaus_leaf_points_duplicate_total",
        "Accepted points that repeated a stored point exactly.",
        &leaf_stats.points_duplicate,
    );
    t.counter(
        "danaus_leaf_points_invalid_total",
        "Points refused for not fitting their schema.",
        &leaf_stats.points_invalid,
    );
    t.counter(
        "danaus_leaf_points_out_of_window_total",
        "Points refused as older than the out-of-order window.",
        &leaf_stats.points_out_of_window,
    );
    t.counter(
        "danaus_leaf_points_conflict_total",
        "Points refused because a different point exists at that time.",
        &leaf_stats.points_conflict,
    );
    t.counter(
        "danaus_leaf_aggregation_points_total",
        "Deltas folded into collection-aggregation buckets.",
        &leaf_stats.points_aggregated,
    );
    t.counter(
        "danaus_leaf_aggregation_late_points_total",
        "Deltas refused because their collection-aggregation bucket had closed.",
        &leaf_stats.points_late,
    );
    t.counter(
        "danaus_leaf_aggregation_buckets_closed_total",
        "Collection-aggregation buckets closed into output points.",
        &leaf_stats.aggregation_buckets_closed,
    );
    let (open_buckets, open_deltas) = leaf.open_buckets();
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
    t.counter("danaus_leaf_series_created_total", "Series created.", &leaf_stats.series_created);
    t.counter(
        "danaus_leaf_series_dropped_total",
        "Series deleted because their range moved to other leaves.",
        &leaf_stats.series_dropped,
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
    t.counter("danaus_leaf_checkpoints_total", "Checkpoints completed.", &leaf_stats.checkpoints);
    t.counter("danaus_leaf_checkpoint_errors_total", "Checkpoints that failed.", &leaf_stats.checkpoint_errors);
    t.metric(
        "danaus_leaf_last_checkpoint_seconds",
        "gauge",
        "Duration of the last checkpoint.",
        leaf_stats.last_checkpoint_micros.load(Ordering::Relaxed) as f64 / 1e6,
    );
    t.counter("danaus_leaf_chunks_flushed_total", "Chunks written to the long-term store.", &leaf_stats.chunks_flushed);
    t.counter(
        "danaus_leaf_flushed_bytes_total",
        "Chunk bytes written to the long-term store.",
        &leaf_stats.bytes_flushed,
    );
    t.counter(
        "danaus_leaf_replay_records_total",
        "Recovery-log records replayed at start.",
        &leaf_stats.replay_records,
    );
    t.counter(
        "danaus_leaf_replay_torn_tails_total",
        "Torn log tails truncated at start.",
        &leaf_stats.replay_torn_tails,
    );
    t.counter(
        "danaus_leaf_replay_corrupt_segments_total",
        "Damaged log segments found at start.",
        &leaf_stats.replay_corrupt_segments,
    );
    t.counter("danaus_wal_records_total", "Recovery-log records written and synced.", &log.records);
    t.counter("danaus_wal_syncs_total", "Recovery-log group commits (fsyncs).", &log.syncs);
    t.counter("danaus_wal_bytes_total", "Recovery-log bytes written.", &log.bytes);
}
