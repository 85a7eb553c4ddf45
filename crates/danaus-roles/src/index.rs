//! The zone index server role: field hints pushed by the leaves, asked by
//! the mixers which leaves a query can skip. Hints live in memory and the
//! leaves push them again after a restart, so serving is health.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use danaus_index::{IndexConfig, IndexServer};
use futures::FutureExt as _;
use tokio::sync::watch;

use crate::metrics::{process_metrics, Text};
use crate::{transport, Health, Metrics, Result, Running};

/// A zone index server.
#[derive(Debug, Clone)]
pub struct IndexSpec {
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// Tuning.
    pub index: IndexConfig,
}

/// Starts a zone index server.
pub async fn start(spec: IndexSpec) -> Result<(Running, IndexServer)> {
    let started = Instant::now();
    let listener = transport::bind(spec.grpc_addr).await?;
    let index = IndexServer::new(spec.index.clone());
    let router = transport::server(transport::DEFAULT_CONCURRENCY).add_service(index.service());
    let i = index.clone();
    let metrics: Metrics = Arc::new(move || {
        let i = i.clone();
        async move {
            let mut t = Text::default();
            process_metrics(&mut t, started);
            t.counter("danaus_index_pushes_total", "Field-hint pushes received.", &i.stats.pushes);
            t.counter("danaus_index_questions_total", "Pruning questions answered.", &i.stats.questions);
            t.counter("danaus_index_excluded_total", "Leaves excluded in answers.", &i.stats.excluded);
            t.metric("danaus_index_fingerprints", "gauge", "Fingerprints held, over all leaves.", i.fingerprints());
            t
        }
        .boxed()
    });
    let health: Health = Arc::new(|| None);
    let (stop, stopping) = watch::channel(false);
    let mut running = Running::new(listener.local_addr(), metrics, health, stop);
    tracing::info!(grpc_addr = %running.grpc_addr, "zone index server serving");
    running.server = Some(listener.serve(router, stopping));
    Ok((running, index))
}
