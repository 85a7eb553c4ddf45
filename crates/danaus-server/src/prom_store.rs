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
