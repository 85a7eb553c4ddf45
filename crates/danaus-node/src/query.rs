//! gRPC QueryService: runs queries on the engine (`danaus-query`) and
//! streams their batches, then the completeness report.
//!
//! A query runs on a blocking-pool thread: it is CPU work, and its result
//! sink can then wait for the client (backpressure through a bounded
//! channel) without holding an async worker. A watcher cancels the query
//! as soon as the client goes away; the engine checks between batches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use danaus_proto::convert;
use danaus_proto::v1 as pb;
use danaus_query::{Engine, QueryLimits, QueryRange, QueryReport, RunOptions, Table, DEFAULT_STEP};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::status::query_status;
use crate::tenant::tenant;

/// Query counters for `/metrics`.
#[derive(Debug, Default)]
pub struct QueryStats {
    /// Queries received.
    pub requests: AtomicU64,
    /// Queries that ended with an error (cancellations excluded).
    pub failures: AtomicU64,
    /// Queries stopped because the caller went away or the deadline passed.
    pub cancelled: AtomicU64,
    /// Queries refused because too many were running.
    pub refused: AtomicU64,
    /// Series read by queries.
    pub series_touched: AtomicU64,
    /// Points read by queries.
    pub points_touched: AtomicU64,
}

/// Gives the engine a query runs on: one fixed engine, or one built per
/// query (a zone mixer's, over the replicas the zone table names now).
pub type EngineSource = Arc<dyn Fn() -> Arc<Engine> + Send + Sync>;

/// The QueryService.
#[derive(Clone)]
pub struct QueryApi {
    engines: EngineSource,
    running: Arc<Semaphore>,
    max_running: usize,
    stats: Arc<QueryStats>,
}

impl QueryApi {
    /// Serves `engine`, running at most `max_running` queries at once.
    pub fn new(engine: Arc<Engine>, max_running: usize, stats: Arc<QueryStats>) -> Self {
        Self::with_engines(Arc::new(move || engine.clone()), max_running, stats)
    }

    /// Serves queries on the engine `engines` gives for each.
    pub fn with_engines(engines: EngineSource, max_running: usize, stats: Arc<QueryStats>) -> Self {
        Self { engines, running: Arc::new(Semaphore::new(max_running)), max_running, stats }
    }
}

fn batch_to(t: &Table) -> pb::QueryResponse {
    let series = t
        .series
        .iter()
        .map(|s| pb::ResultSeries {
            fields: s.fields.iter().map(convert::field_value_to).collect(),
            points: s.points.iter().map(convert::point_to).collect(),
        })
        .collect();
    pb::QueryResponse {
        item: Some(pb::query_response::Item::Batch(pb::ResultBatch { columns: t.columns.to_vec(), series })),
    }
}

fn completeness_to(r: &QueryReport) -> pb::QueryResponse {
    let sources = r
        .completeness
        .sources
        .iter()
        .map(|s| pb::SourceStatus {
            zone: s.zone.clone(),
            source: s.source.clone(),
            answered: s.missing.is_none(),
            missing_reason: s.missing.clone().unwrap_or_default(),
        })
        .collect();
    pb::QueryResponse {
        item: Some(pb::query_response::Item::Completeness(pb::Completeness {
            complete: r.completeness.is_complete(),
            sources,
            series_touched: r.series_touched,
            points_touched: r.points_touched,
        })),
    }
}

static QUERY_ID: AtomicU64 = AtomicU64::new(1);

#[tonic::async_trait]
impl pb::query_service_server::QueryService for QueryApi {
    type QueryStream = ReceiverStream<Result<pb::QueryResponse, Status>>;

    async fn query(&self, req: Request<pb::QueryRequest>) -> Result<Response<Self::QueryStream>, Status> {
        let tenant = tenant(&req)?;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let permit = self.running.clone().try_acquire_owned().map_err(|_| {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            Status::resource_exhausted(format!(
                "{} queries are already running (the server's limit); retry shortly",
                self.max_running
            ))
        })?;
        let r = req.into_inner();
        let range =
            QueryRange { start: r.start_time, end: r.end_time, step: if r.step == 0 { DEFAULT_STEP } else { r.step } };
        let defaults = QueryLimits::default();
        let limits = QueryLimits {
            max_series: if r.max_series == 0 { defaults.max_series } else { r.max_series },
            max_points: if r.max_points == 0 { defaults.max_points } else { r.max_points },
        };
        let span = tracing::info_span!(
            "rpc",
            method = "QueryService/Query",
            tenant = %tenant,
            query_id = QUERY_ID.fetch_add(1, Ordering::Relaxed)
        );
        let engine = (self.engines)();
        // Plan before streaming, so a bad query fails the call itself.
        {
            let _e = span.enter();
            engine.plan(&tenant, &r.query, range).map_err(|e| query_status(&e, &r.query))?;
        }
        let opts = RunOptions {
            deadline: (r.timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(r.timeout_ms)),
            limits: Some(limits),
            ..RunOptions::default()
        };
        let (tx, rx) = mpsc::channel(4);
        // Cancel the query as soon as the client goes away.
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let watcher_tx = tx.clone();
        let cancel = opts.cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = watcher_tx.closed() => cancel.cancel(),
                _ = done_rx => {}
            }
        });
        let job = Job { engine, stats: self.stats.clone(), tenant, text: r.query, range, opts };
        job.spawn(tx, done_tx, permit, span);
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// One query to run and where its results go.
struct Job {
    engine: Arc<Engine>,
    stats: Arc<QueryStats>,
    tenant: String,
    text: String,
    range: QueryRange,
    opts: RunOptions,
}

type Tx = mpsc::Sender<Result<pb::QueryResponse, Status>>;

impl Job {
    /// Counts the outcome and turns it into the stream's last message.
    fn finish(&self, result: danaus_query::Result<QueryReport>) -> Result<pb::QueryResponse, Status> {
        match result {
            Ok(report) => {
                self.stats.series_touched.fetch_add(report.series_touched, Ordering::Relaxed);
                self.stats.points_touched.fetch_add(report.points_touched, Ordering::Relaxed);
                Ok(completeness_to(&report))
            }
            Err(e) => {
                if matches!(e, danaus_query::Error::Cancelled(_)) {
                    self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!(error = %e, "query failed");
                Err(query_status(&e, &self.text))
            }
        }
    }

    /// Runs on a blocking-pool thread: a query is CPU work, and its sink
    /// may then wait for the client (backpressure through the bounded
    /// channel) without holding an async worker.
    #[cfg(not(madsim))]
    fn spawn(self, tx: Tx, done: oneshot::Sender<()>, permit: OwnedSemaphorePermit, span: tracing::Span) {
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _e = span.enter();
            // This thread only drives this query, so waiting here for
            // channel capacity is the backpressure we want. (`blocking_send`
            // refuses to run inside `block_on`.)
            let mut sink = |t: Table| -> danaus_query::Result<()> {
                futures::executor::block_on(tx.send(Ok(batch_to(&t))))
                    .map_err(|_| danaus_query::Error::Cancelled("the caller went away".into()))
            };
            let result = handle.block_on(
                self.engine.run(&self.tenant, &self.text, self.range, self.opts.clone(), &mut sink).in_current_span(),
            );
            let _ = done.send(());
            let last = self.finish(result);
            let _ = futures::executor::block_on(tx.send(last));
        });
    }

    /// Under the simulator there are no blocking threads: the query runs as
    /// a task and its batches are sent when it ends (same messages, no
    /// streaming backpressure).
    #[cfg(madsim)]
    fn spawn(self, tx: Tx, done: oneshot::Sender<()>, permit: OwnedSemaphorePermit, span: tracing::Span) {
        tokio::spawn(
            async move {
                let _permit = permit;
                let mut batches = Vec::new();
                let mut sink = |t: Table| -> danaus_query::Result<()> {
                    batches.push(batch_to(&t));
                    Ok(())
                };
                let result = self.engine.run(&self.tenant, &self.text, self.range, self.opts.clone(), &mut sink).await;
                let _ = done.send(());
                for b in batches {
                    if tx.send(Ok(b)).await.is_err() {
                        return;
                    }
                }
                let _ = tx.send(self.finish(result)).await;
            }
            .instrument(span),
        );
    }
}
