//! Where Prometheus data goes: the seam between the receivers (remote_write,
//! the scraper) and storage. A [`Leaf`] is one store (embedded use and
//! tests); a zone's router is another (`danaus standalone` and zones).

use std::sync::Arc;

use danaus_leaf::Leaf;
use danaus_model::SeriesWrite;
use danaus_model::{MetricSchema, TargetSchema};
use futures::future::BoxFuture;

/// Why a store could not take a batch at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Retry later (shutting down, no quorum, leaf unhealthy).
    Unavailable(String),
    /// Over a limit.
    Exhausted(String),
    /// The request cannot succeed as sent (a schema that conflicts with
    /// one stored, an invalid name): retrying it is pointless.
    Refused(String),
    /// Anything else.
    Failed(String),
}

impl From<danaus_leaf::Error> for StoreError {
    fn from(e: danaus_leaf::Error) -> Self {
        use danaus_leaf::Error as E;
        match e {
            E::Unavailable(m) => StoreError::Unavailable(format!("the leaf cannot take writes now ({m})")),
            E::ResourceExhausted(m) => StoreError::Exhausted(m),
            E::InvalidArgument(m) | E::NotFound(m) => StoreError::Refused(m),
            E::Internal(m) => StoreError::Failed(format!("write failed: {m}")),
        }
    }
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
    /// Creates schemas, or adds fields to stored metric schemas (see
    /// [`MetricSchema::evolve`]), as one change where the store can;
    /// visible to `target_schema` and `metric_schema` on return.
    fn apply_schemas<'a>(
        &'a self,
        tenant: &'a str,
        targets: Vec<TargetSchema>,
        metrics: Vec<MetricSchema>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
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

    /// One schema at a time: a leaf keeps its own registry, no table.
    fn apply_schemas<'a>(
        &'a self,
        tenant: &'a str,
        targets: Vec<TargetSchema>,
        metrics: Vec<MetricSchema>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            for t in targets {
                Leaf::apply_target_schema(self, tenant, t).await?;
            }
            for m in metrics {
                Leaf::apply_metric_schema(self, tenant, m).await?;
            }
            Ok(())
        })
    }

    fn write<'a>(&'a self, tenant: &'a str, batch: Vec<SeriesWrite>) -> BoxFuture<'a, Result<Stored, StoreError>> {
        Box::pin(async move {
            let r = Leaf::write(self, tenant, &batch).await?;
            Ok(Stored {
                accepted: r.accepted_points,
                refused: r.errors.into_iter().map(|e| (e.series, e.rejected_points.len(), e.message)).collect(),
            })
        })
    }
}
