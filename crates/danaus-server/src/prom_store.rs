//! Prometheus data into a zone: [`danaus_prom::Store`] over the zone's
//! ingestion router, so remote_write and the scraper write through the same
//! routing, replication and schema table as the gRPC API.

use std::sync::Arc;

use danaus_leaf::SeriesWrite;
use danaus_model::{MetricSchema, TargetSchema};
use danaus_prom::{Store, StoreError, Stored};
use danaus_router::IngestRouter;
use futures::future::BoxFuture;
use tonic::Code;

/// What a router's status means to a Prometheus sender: retry (503, 429),
/// give up (400), or a server error.
fn store_error(s: tonic::Status) -> StoreError {
    let m = s.message().to_owned();
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Aborted => StoreError::Unavailable(m),
        Code::ResourceExhausted => StoreError::Exhausted(m),
        Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists | Code::NotFound | Code::OutOfRange => {
            StoreError::Refused(m)
        }
        _ => StoreError::Failed(m),
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

    fn apply_target_schema<'a>(&'a self, tenant: &'a str, s: TargetSchema) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(
            async move { self.0.apply_schemas(tenant, vec![s], Vec::new()).await.map(|_| ()).map_err(store_error) },
        )
    }

    fn apply_metric_schema<'a>(&'a self, tenant: &'a str, s: MetricSchema) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(
            async move { self.0.apply_schemas(tenant, Vec::new(), vec![s]).await.map(|_| ()).map_err(store_error) },
        )
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
