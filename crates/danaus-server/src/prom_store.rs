//! Prometheus data into a zone: [`danaus_prom::Store`] over the zone's
//! ingestion router, so remote_write and the scraper write through the same
//! routing, replication and schema table as the gRPC API.

use std::sync::Arc;

use danaus_model::SeriesWrite;
use danaus_model::{MetricSchema, TargetSchema};
use danaus_prom::{Store, StoreError, Stored};
use danaus_router::IngestRouter;
use futures::future::BoxFuture;
use tonic::Code;

/// What a router's answer to a write means to a Prometheus sender: retry
/// later (503, 429) or a server error (500, which senders retry too). A
/// write is never refused as a whole (400, which senders drop): what is
/// wrong with single series comes back per series.
fn store_error(s: tonic::Status) -> StoreError {
    let m = s.message().to_owned();
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Aborted => StoreError::Unavailable(m),
        Code::ResourceExhausted => StoreError::Exhausted(m),
        _ => StoreError::Failed(m),
    }
}

/// What a router's answer to a schema change means: as for a write, except
/// that a schema the zone refuses (invalid, or conflicting with the stored
/// one) is refused for good.
fn schema_error(s: tonic::Status) -> StoreError {
    match s.code() {
        Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists => {
            StoreError::Refused(s.message().to_owned())
        }
        _ => store_error(s),
    }
}

/// The zone's router as a Prometheus store.
pub struct RouterStore(pub Arc<IngestRouter>);

impl Store for RouterStore {
    fn target_schema(&self, tenant: &str, name: &str) -> Option<Arc<TargetSchema>> {
        self.0.table().current().target_schema(tenant, name).cloned().map(Arc::new)
    }

    fn metric_schema(&self, tenant: &str, name: &str) -> Option<Arc<MetricSchema>> {
        self.0.table().current().metric_schema(tenant, name).cloned().map(Arc::new)
    }

    /// One zone table change for them all.
    fn apply_schemas<'a>(
        &'a self,
        tenant: &'a str,
        targets: Vec<TargetSchema>,
        metrics: Vec<MetricSchema>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.0.apply_schemas(tenant, targets, metrics).await.map(|_| ()).map_err(schema_error) })
    }

    fn write<'a>(&'a self, tenant: &'a str, batch: Vec<SeriesWrite>) -> BoxFuture<'a, Result<Stored, StoreError>> {
        Box::pin(async move {
            let r = self.0.write_series(tenant, batch).await.map_err(store_error)?;
            Ok(Stored {
                accepted: r.accepted_points,
                refused: r.errors.into_iter().map(|e| (e.series, e.rejected_points.len(), e.message)).collect(),
            })
        })
    }
}

/// Rules' derived points into the zone, through the remote_write
/// receiver: as a Prometheus sender's samples, schemas registered on first
/// sight, a point written twice taken as a duplicate.
pub struct PromSink(pub Arc<danaus_prom::Receiver>);

impl danaus_evaluator::Sink for PromSink {
    fn write<'a>(
        &'a self,
        tenant: &'a str,
        points: &'a [danaus_evaluator::StoredPoint],
    ) -> BoxFuture<'a, Result<u64, danaus_evaluator::WriteError>> {
        Box::pin(async move {
            let mut by_series: std::collections::BTreeMap<&danaus_promql::Labels, Vec<(i64, f64)>> =
                std::collections::BTreeMap::new();
            for p in points {
                by_series.entry(&p.labels).or_default().push((p.t, p.v));
            }
            let series: Vec<danaus_prom::labels::PromSeries> = by_series
                .into_iter()
                .map(|(labels, mut samples)| {
                    samples.sort_by_key(|s| s.0);
                    danaus_prom::labels::PromSeries {
                        labels: labels.pairs().to_vec(),
                        samples,
                        histograms: 0,
                        metric_type: 0,
                        help: String::new(),
                        unit: String::new(),
                        created_ms: None,
                    }
                })
                .collect();
            match self.0.write_series(tenant, series).await {
                Ok(w) => {
                    let mut refused = 0;
                    for (series, n, why) in &w.refused {
                        tracing::warn!(tenant, series = %series, samples = n, "derived points refused: {why}");
                        refused += *n as u64;
                    }
                    Ok(refused)
                }
                // Overloaded or unavailable: nothing is known written.
                Err(r) if r.status == 429 || r.status >= 500 => {
                    Err(danaus_evaluator::WriteError::Retry(format!("{}: {}", r.status, r.body.trim_end())))
                }
                Err(r) => {
                    tracing::warn!(tenant, points = points.len(), "derived points refused: {}", r.body.trim_end());
                    Ok(points.len() as u64)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write is never refused as a whole (senders drop a 400): only a
    /// schema the zone refuses is.
    #[test]
    fn only_refused_schemas_are_final() {
        for code in [Code::InvalidArgument, Code::NotFound, Code::FailedPrecondition, Code::Internal] {
            assert!(matches!(store_error(tonic::Status::new(code, "x")), StoreError::Failed(_)), "{code:?}");
        }
        assert!(matches!(store_error(tonic::Status::unavailable("x")), StoreError::Unavailable(_)));
        assert!(matches!(store_error(tonic::Status::resource_exhausted("x")), StoreError::Exhausted(_)));
        assert!(matches!(schema_error(tonic::Status::invalid_argument("x")), StoreError::Refused(_)));
        assert!(matches!(schema_error(tonic::Status::failed_precondition("x")), StoreError::Refused(_)));
        assert!(matches!(schema_error(tonic::Status::unavailable("x")), StoreError::Unavailable(_)));
    }
}
