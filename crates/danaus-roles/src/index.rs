//! The index server roles. A zone index server holds the field hints its
//! leaves push and tells the zone mixers which leaves a query can skip;
//! given a root index, it also pushes the zone's union there and claims it
//! complete while it can prove so (`danaus_index::root`). The root index
//! server is the same server keyed by zone: the root mixer asks it which
//! zones a query can skip. Hints live in memory and are pushed again after
//! a restart, so serving is health.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use danaus_assigner::TableWatcher;
use danaus_index::{IndexConfig, IndexServer};
use futures::FutureExt as _;
use tokio::sync::watch;

use crate::metrics::{process_metrics, Text};
use crate::{transport, Health, Metrics, Result, Running};

/// Where a zone index server vouches for its zone.
#[derive(Debug, Clone)]
pub struct RootLinkSpec {
    /// The zone's name, as the configuration's `kind: Zone` object has it.
    pub zone: String,
    /// The root index server (host:port).
    pub root_index: String,
    /// The zone's assigner members (host:port): a claim needs the zone
    /// table confirmed current.
    pub assigners: Vec<String>,
}

/// A zone index server.
#[derive(Debug, Clone)]
pub struct IndexSpec {
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// Tuning.
    pub index: IndexConfig,
    /// The root index to push the zone's hints to, if any.
    pub root: Option<RootLinkSpec>,
}

/// Starts a zone index server.
pub async fn start(spec: IndexSpec) -> Result<(Running, IndexServer)> {
    let index = match &spec.root {
        Some(_) => IndexServer::with_root(spec.index.clone()),
        None => IndexServer::new(spec.index.clone()),
    };
    if let Some(r) = &spec.root {
        let table = TableWatcher::start(r.assigners.clone());
        tokio::spawn(danaus_index::root::run(index.clone(), r.zone.clone(), r.root_index.clone(), table));
    }
    let running = serve(spec.grpc_addr, index.clone(), "zone index server", "danaus_index").await?;
    Ok((running, index))
}

/// A root index server.
#[derive(Debug, Clone)]
pub struct RootIndexSpec {
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
}

/// Starts a root index server: zones' claims count at most
/// [`danaus_index::root::CLAIM_MAX`] after it issued their tokens.
pub async fn start_root(spec: RootIndexSpec) -> Result<(Running, IndexServer)> {
    let index = IndexServer::new(IndexConfig { fresh_for: danaus_index::root::CLAIM_MAX });
    let running = serve(spec.grpc_addr, index.clone(), "root index server", "danaus_root_index").await?;
    Ok((running, index))
}

async fn serve(addr: SocketAddr, index: IndexServer, what: &'static str, prefix: &'static str) -> Result<Running> {
    let started = Instant::now();
    let listener = transport::bind(addr).await?;
    let router = transport::server(transport::DEFAULT_CONCURRENCY).add_service(index.service());
    let i = index.clone();
    let metrics: Metrics = Arc::new(move || {
        let i = i.clone();
        async move {
            let mut t = Text::default();
            process_metrics(&mut t, started);
            let s = &i.stats;
            t.counter(&format!("{prefix}_pushes_total"), "Field-hint pushes received.", &s.pushes);
            t.counter(&format!("{prefix}_questions_total"), "Pruning questions answered.", &s.questions);
            t.counter(&format!("{prefix}_excluded_total"), "Leaves (zones) excluded in answers.", &s.excluded);
            t.metric(&format!("{prefix}_fingerprints"), "gauge", "Fingerprints held.", i.fingerprints());
            if prefix == "danaus_index" {
                t.counter(
                    "danaus_index_root_waits_total",
                    "Leaf pushes held until the root index had their new fingerprints.",
                    &s.root_waits,
                );
                t.counter("danaus_index_root_pushes_total", "Pushes the root index acknowledged.", &s.root_pushes);
                t.counter(
                    "danaus_index_root_claims_total",
                    "Acknowledged pushes that claimed the zone's hints complete.",
                    &s.root_claims,
                );
                t.counter(
                    "danaus_index_root_failures_total",
                    "Pushes to the root index that failed.",
                    &s.root_failures,
                );
            }
            t
        }
        .boxed()
    });
    let health: Health = Arc::new(|| None);
    let (stop, stopping) = watch::channel(false);
    let mut running = Running::new(listener.local_addr(), metrics, health, stop);
    tracing::info!(grpc_addr = %running.grpc_addr, "{what} serving");
    running.server = Some(listener.serve(router, stopping));
    Ok(running)
}
