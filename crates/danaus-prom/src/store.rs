//! Where Prometheus data goes: the seam between the receivers (remote_write,
//! the scraper) and storage. A [`Leaf`] is one store (embedded use and
//! tests); a zone's router is another (`danaus standalone` and zones).

use std::sync::Arc;

use danaus_leaf::{Leaf, SeriesWrite};
use danaus_model::{MetricSchema, TargetSchema};
use futures::future::BoxFuture;

/// Why a store could not take a batch at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Retry later (shutting down, no quorum, leaf unhealthy).
    Unavailable(String),
    /// Over a limit.
    Exhausted(String),
    /// Anything else.
    Failed(String),
}

/// What a store did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Points stored.
    pub accepted: u64,
    /// Refused series: (series, points refused, why).
    pub refused: Vec<(String, usize, String)>,
}

/// Storage as the Prometheus receivers see it.
pub trait Store: Send + Sync + 'static {
    /// A target schema by name.
    fn target_schema(&self, tenant: &str, name: &str) -> Option<Arc<TargetSchema>>;
    /// A metric schema by name.
    fn metric_schema(&self, tenant: &str, name: &str) -> Option<Arc<MetricSchema>>;
    /// Creates a target schema; visible to `target_schema` on return.
    fn apply_target_schema<'a>(&'a self, tenant: &'a str, s: TargetSchema) -> BoxFuture<'a, Result<(), String>>;
    /// Creates a metric schema; visible to `metric_schema` on return.
    fn apply_metric_schema<'a>(&'a self, tenant: &'a str, s: MetricSchema) -> BoxFuture<'a, Result<(), String>>;
    /// Writes a batch: everything not refused is durable on `Ok`.
    fn write<'a>(&'a self, tenant: &'a str, batch: Vec<SeriesWrite>) -> BoxFuture<'a, Result<Stored, StoreError>>;
}

impl Store for Leaf {
    fn target_schema(&self, tenant: &str, name: &str) -> Option<Arc<TargetSchema>> {
        Leaf::target_schema(self, tenant, name)
    }

    fn metric_schema(&self, tenant: &str, name: &str) -> Option<Arc<MetricSchema>> {
        Leaf::metric_schema(self, tenant, name)
    }

    fn apply_target_schema<'a>(&'a self, tenant: &'a str, s: TargetSchema) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { Leaf::apply_target_schema(self, tenant, s).await.map(|_| ()).map_err(|e| e.to_string()) })
    }

    fn apply_metric_schema<'a>(&'a self, tenant: &'a str, s: MetricSchema) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { Leaf::apply_metric_schema(self, tenant, s).await.map(|_| ()).map_err(|e| e.to_string()) })
    }

    fn write<'a>(&'a self, tenant: &'a str, batch: Vec<SeriesWrite>) -> BoxFuture<'a, Result<Stored, StoreError>> {
        Box::pin(async move {
            let r = match Leaf::write(self, tenant, &batch).await {
                Ok(r) => r,
                Err(danaus_leaf::Error::Unavailable(m)) => {
                    return Err(StoreError::Unavailable(format!("the leaf cannot take writes now ({m})")))
                }
                Err(danaus_leaf::Error::ResourceExhausted(m)) => return Err(StoreError::Exhausted(m)),
                Err(e) => return Err(StoreError::Failed(format!("write failed: {e}"))),
            };
            Ok(Stored {
                accepted: r.accepted_points,
                refused: r.errors.into_iter().map(|e| (e.series, e.rejected_points.len(), e.message)).collect(),
            })
        })
    }
}
