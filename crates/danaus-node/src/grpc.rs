//! gRPC services over one leaf: SchemaService, IngestService, ReadService.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use danaus_leaf::Leaf;
use danaus_model::{Applied, ErrorCode, MatchOp, Matcher, ReadRequest, SeriesWrite};
use danaus_proto::convert;
use danaus_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::status::{convert_status, leaf_status};
use crate::tenant::tenant;

/// Request counters for `/metrics`.
#[derive(Debug, Default)]
pub struct GrpcStats {
    /// Schema RPCs.
    pub schema_requests: AtomicU64,
    /// Write RPCs.
    pub write_requests: AtomicU64,
    /// Write RPCs that failed as a whole.
    pub write_failures: AtomicU64,
    /// Read RPCs.
    pub read_requests: AtomicU64,
    /// Series streamed by reads.
    pub read_series: AtomicU64,
    /// Points streamed by reads.
    pub read_points: AtomicU64,
}

static REQUEST_ID: AtomicU64 = AtomicU64::new(1);

fn span(method: &'static str, tenant: &str) -> tracing::Span {
    tracing::info_span!("rpc", method, tenant, request_id = REQUEST_ID.fetch_add(1, Ordering::Relaxed))
}

/// The Danaus API over one leaf.
#[derive(Clone)]
pub struct Api {
    leaf: Leaf,
    stats: Arc<GrpcStats>,
}

impl Api {
    /// Serves `leaf`, counting into `stats`.
    pub fn new(leaf: Leaf, stats: Arc<GrpcStats>) -> Self {
        Self { leaf, stats }
    }
}

fn outcome(a: Applied) -> i32 {
    (match a {
        Applied::Created => pb::ApplyOutcome::Created,
        Applied::Updated => pb::ApplyOutcome::Updated,
        Applied::Unchanged => pb::ApplyOutcome::Unchanged,
    }) as i32
}

#[tonic::async_trait]
impl pb::schema_service_server::SchemaService for Api {
    async fn apply(&self, req: Request<pb::ApplySchemasRequest>) -> Result<Response<pb::ApplySchemasResponse>, Status> {
        let tenant = tenant(&req)?;
        self.stats.schema_requests.fetch_add(1, Ordering::Relaxed);
        let req = req.into_inner();
        async {
            // Convert and validate everything before storing anything.
            let targets = req
                .targets
                .iter()
                .map(convert::target_schema)
                .collect::<Result<Vec<_>, _>>()
                .map_err(convert_status)?;
            let metrics = req
                .metrics
                .iter()
                .map(convert::metric_schema)
                .collect::<Result<Vec<_>, _>>()
                .map_err(convert_status)?;
            for t in &targets {
                t.validate().map_err(|e| Status::invalid_argument(e.to_string()))?;
            }
            for m in &metrics {
                m.validate().map_err(|e| Status::invalid_argument(e.to_string()))?;
            }
            let mut results = Vec::new();
            for t in targets {
                let name = t.name.clone();
                let a = self.leaf.apply_target_schema(&tenant, t).await.map_err(leaf_status)?;
                results.push(pb::ApplyResult { name, is_target: true, outcome: outcome(a) });
            }
            for m in metrics {
                let name = m.name.clone();
                let a = self.leaf.apply_metric_schema(&tenant, m).await.map_err(leaf_status)?;
                results.push(pb::ApplyResult { name, is_target: false, outcome: outcome(a) });
            }
            Ok(Response::new(pb::ApplySchemasResponse { results }))
        }
        .instrument(span("SchemaService/Apply", &tenant))
        .await
    }

    async fn get(&self, req: Request<pb::GetSchemaRequest>) -> Result<Response<pb::GetSchemaResponse>, Status> {
        let tenant = tenant(&req)?;
        self.stats.schema_requests.fetch_add(1, Ordering::Relaxed);
        use pb::get_schema_request::Name;
        use pb::get_schema_response::Schema;
        let schema = match req.into_inner().name {
            Some(Name::Target(n)) => Schema::Target(convert::target_schema_to(
                &*self
                    .leaf
                    .target_schema(&tenant, &n)
                    .ok_or_else(|| Status::not_found(format!("no target schema {n:?}")))?,
            )),
            Some(Name::Metric(n)) => Schema::Metric(convert::metric_schema_to(
                &*self
                    .leaf
                    .metric_schema(&tenant, &n)
                    .ok_or_else(|| Status::not_found(format!("no metric schema {n:?}")))?,
            )),
            None => return Err(Status::invalid_argument("name a target or a metric schema")),
        };
        Ok(Response::new(pb::GetSchemaResponse { schema: Some(schema) }))
    }

    async fn list(&self, req: Request<pb::ListSchemasRequest>) -> Result<Response<pb::ListSchemasResponse>, Status> {
        let tenant = tenant(&req)?;
        self.stats.schema_requests.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(pb::ListSchemasResponse {
            targets: self.leaf.target_schemas(&tenant).iter().map(|t| convert::target_schema_to(t)).collect(),
            metrics: self.leaf.metric_schemas(&tenant).iter().map(|m| convert::metric_schema_to(m)).collect(),
        }))
    }
}

/// A wire series as a leaf write.
pub(crate) fn series_write(s: &pb::Series) -> Result<SeriesWrite, convert::ConvertError> {
    Ok(SeriesWrite {
        target_schema: s.target_schema.as_str().into(),
        target_fields: convert::field_list(&s.target_fields)?.into(),
        metric: s.metric.as_str().into(),
        metric_fields: convert::field_list(&s.metric_fields)?.into(),
        points: s.points.iter().enumerate().map(|(j, p)| convert::point(p, j)).collect::<Result<_, _>>()?,
    })
}

/// A leaf write as a wire series (for a write sent on to another process).
pub fn series_to_wire(w: &SeriesWrite) -> pb::Series {
    pb::Series {
        target_schema: w.target_schema.to_string(),
        target_fields: convert::field_map_to(w.target_fields.iter()),
        metric: w.metric.to_string(),
        metric_fields: convert::field_map_to(w.metric_fields.iter()),
        points: w.points.iter().map(convert::point_to).collect(),
    }
}

/// Wire series as leaf writes: the writes, each one's position in
/// `series`, and per-series errors (by position) for those that do not
/// convert.
pub fn series_writes(series: Vec<pb::Series>) -> (Vec<SeriesWrite>, Vec<usize>, Vec<pb::SeriesError>) {
    let mut batch = Vec::with_capacity(series.len());
    let mut positions = Vec::with_capacity(series.len());
    let mut errors = Vec::new();
    // One copy of each metric name per request.
    let mut metrics: HashSet<Arc<str>> = HashSet::new();
    for (i, s) in series.into_iter().enumerate() {
        let points = s.points.len() as u32;
        match series_write_owned(s) {
            Ok(mut w) => {
                // Series of a target come together: they share one copy
                // of its fields and names, which later layers compare by
                // pointer.
                if let Some(prev) = batch.last() {
                    let prev: &SeriesWrite = prev;
                    if prev.target_fields == w.target_fields {
                        w.target_fields = prev.target_fields.clone();
                    }
                    if prev.target_schema == w.target_schema {
                        w.target_schema = prev.target_schema.clone();
                    }
                }
                match metrics.get(&*w.metric) {
                    Some(m) => w.metric = m.clone(),
                    None => {
                        metrics.insert(w.metric.clone());
                    }
                }
                batch.push(w);
                positions.push(i);
            }
            Err((e, name)) => errors.push(pb::SeriesError {
                index: i as u32,
                series: name,
                message: e.0,
                rejected_points: (0..points).collect(),
                code: pb::SeriesErrorCode::InvalidArgument as i32,
            }),
        }
    }
    (batch, positions, errors)
}

/// The answer to a request whose convertible series (at `positions`) were
/// written with answer `r`: its errors moved to request positions, merged
/// with the conversion's `errors`, sorted by position.
pub fn with_conversion_errors(
    mut r: pb::WriteResponse,
    positions: &[usize],
    errors: Vec<pb::SeriesError>,
) -> pb::WriteResponse {
    for e in &mut r.errors {
        e.index = positions[e.index as usize] as u32;
    }
    r.errors.extend(errors);
    r.errors.sort_by_key(|e| e.index);
    r
}

/// A wire series as a leaf write, moving its strings; the error names the
/// series (`schema::metric`).
pub fn series_write_owned(s: pb::Series) -> Result<SeriesWrite, (convert::ConvertError, String)> {
    let name = |s: &pb::Series| format!("{}::{}", s.target_schema, s.metric);
    let points = match s.points.iter().enumerate().map(|(j, p)| convert::point(p, j)).collect::<Result<_, _>>() {
        Ok(p) => p,
        Err(e) => return Err((e, name(&s))),
    };
    let (target_schema, metric) = (s.target_schema, s.metric);
    let fields =
        convert::field_list_owned(s.target_fields).and_then(|t| Ok((t, convert::field_list_owned(s.metric_fields)?)));
    match fields {
        Ok((mut target_fields, metric_fields)) => {
            // Wire fields are a map (any order): sorted, equal targets
            // are equal lists, and the series of a target share one.
            target_fields.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            Ok(SeriesWrite {
                target_schema: target_schema.into(),
                target_fields: target_fields.into(),
                metric: metric.into(),
                metric_fields: metric_fields.into(),
                points,
            })
        }
        Err(e) => Err((e, format!("{target_schema}::{metric}"))),
    }
}

/// Adds a leaf's per-series errors, whose indexes are into the batch the
/// leaf saw, with their positions in the request; sorts by position.
pub(crate) fn add_series_errors(
    out: &mut Vec<pb::SeriesError>,
    errors: Vec<danaus_model::SeriesError>,
    positions: &[usize],
) {
    out.extend(errors.into_iter().map(|e| pb::SeriesError {
        index: positions[e.index] as u32,
        series: e.series,
        message: e.message,
        rejected_points: e.rejected_points,
        code: error_code(e.code),
    }));
    out.sort_by_key(|e| e.index);
}

pub(crate) fn error_code(c: ErrorCode) -> i32 {
    (match c {
        ErrorCode::InvalidArgument => pb::SeriesErrorCode::InvalidArgument,
        ErrorCode::NotFound => pb::SeriesErrorCode::NotFound,
        ErrorCode::OutOfWindow => pb::SeriesErrorCode::OutOfWindow,
        ErrorCode::Conflict => pb::SeriesErrorCode::Conflict,
    }) as i32
}

#[tonic::async_trait]
impl pb::ingest_service_server::IngestService for Api {
    async fn write(&self, req: Request<pb::WriteRequest>) -> Result<Response<pb::WriteResponse>, Status> {
        let tenant = tenant(&req)?;
        self.stats.write_requests.fetch_add(1, Ordering::Relaxed);
        let req = req.into_inner();
        async {
            // A series whose wire form is malformed is reported like any
            // other bad series; the rest of the batch still goes in.
            let mut batch = Vec::with_capacity(req.series.len());
            let mut positions = Vec::with_capacity(req.series.len());
            let mut errors = Vec::new();
            for (i, s) in req.series.iter().enumerate() {
                let converted = series_write(s);
                match converted {
                    Ok(w) => {
                        batch.push(w);
                        positions.push(i);
                    }
                    Err(e) => errors.push(pb::SeriesError {
                        index: i as u32,
                        series: format!("{}::{}", s.target_schema, s.metric),
                        message: e.0,
                        rejected_points: (0..s.points.len() as u32).collect(),
                        code: pb::SeriesErrorCode::InvalidArgument as i32,
                    }),
                }
            }
            let result = match self.leaf.write(&tenant, &batch).await {
                Ok(r) => r,
                Err(e) => {
                    self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(leaf_status(e));
                }
            };
            add_series_errors(&mut errors, result.errors, &positions);
            if !errors.is_empty() {
                tracing::debug!(errors = errors.len(), first = %errors[0].message, "write refused some series");
            }
            Ok(Response::new(pb::WriteResponse { accepted_points: result.accepted_points, errors }))
        }
        .instrument(span("IngestService/Write", &tenant))
        .await
    }
}

/// Series per streamed message, and points per message (soft).
const BATCH_SERIES: usize = 256;
const BATCH_POINTS: usize = 16_384;

fn match_op(op: i32, field: &str) -> Result<MatchOp, Status> {
    match pb::MatchOp::try_from(op) {
        Ok(pb::MatchOp::Eq) => Ok(MatchOp::Eq),
        Ok(pb::MatchOp::Ne) => Ok(MatchOp::Ne),
        Ok(pb::MatchOp::Re) => Ok(MatchOp::Re),
        Ok(pb::MatchOp::Nre) => Ok(MatchOp::Nre),
        _ => Err(Status::invalid_argument(format!("matcher on {field:?} has no operator (=, !=, =~, !~)"))),
    }
}

#[tonic::async_trait]
impl pb::read_service_server::ReadService for Api {
    type ReadStream = ReceiverStream<Result<pb::ReadResponse, Status>>;

    async fn read(&self, req: Request<pb::ReadRequest>) -> Result<Response<Self::ReadStream>, Status> {
        let tenant = tenant(&req)?;
        self.stats.read_requests.fetch_add(1, Ordering::Relaxed);
        let rr = read_request(req.into_inner())?;
        let span = span("ReadService/Read", &tenant);
        let selected = {
            let _e = span.enter();
            self.leaf.select(&tenant, &rr).map_err(leaf_status)?
        };
        Ok(Response::new(stream_read(self.leaf.clone(), selected, &rr, Some(self.stats.clone()), span)))
    }
}

/// A read request from the wire.
pub(crate) fn read_request(r: pb::ReadRequest) -> Result<ReadRequest, Status> {
    let matchers = r
        .matchers
        .iter()
        .map(|m| Ok(Matcher { field: m.field.clone(), op: match_op(m.op, &m.field)?, value: m.value.clone() }))
        .collect::<Result<Vec<_>, Status>>()?;
    Ok(ReadRequest { target_schema: r.target_schema, metric: r.metric, matchers, start: r.start_time, end: r.end_time })
}

/// Streams the points of `selected` within the request's time range, in
/// batches; stops when the caller goes away.
pub(crate) fn stream_read(
    leaf: Leaf,
    selected: Vec<danaus_leaf::SelectedSeries>,
    rr: &ReadRequest,
    stats: Option<Arc<GrpcStats>>,
    span: tracing::Span,
) -> ReceiverStream<Result<pb::ReadResponse, Status>> {
    let (tx, rx) = mpsc::channel(4);
    let (start, end) = (rr.start, rr.end);
    tokio::spawn(
        async move {
            let mut batch = Vec::new();
            let mut points_in_batch = 0;
            for s in selected {
                let pts = match leaf.points(&s, start, end).await {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(leaf_status(e))).await;
                        return;
                    }
                };
                if pts.is_empty() {
                    continue;
                }
                if let Some(stats) = &stats {
                    stats.read_series.fetch_add(1, Ordering::Relaxed);
                    stats.read_points.fetch_add(pts.len() as u64, Ordering::Relaxed);
                }
                points_in_batch += pts.len();
                batch.push(pb::Series {
                    target_schema: s.key.target_schema.clone(),
                    target_fields: convert::field_map_to(&s.target_fields),
                    metric: s.key.metric.clone(),
                    metric_fields: convert::field_map_to(&s.metric_fields),
                    points: pts.iter().map(convert::point_to).collect(),
                });
                if batch.len() >= BATCH_SERIES || points_in_batch >= BATCH_POINTS {
                    points_in_batch = 0;
                    // The caller went away: stop reading.
                    if tx.send(Ok(pb::ReadResponse { series: std::mem::take(&mut batch) })).await.is_err() {
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(Ok(pb::ReadResponse { series: batch })).await;
            }
        }
        .instrument(span),
    );
    ReceiverStream::new(rx)
}
