//! The router role: the zone's ingestion router (it forwards series whose
//! location another zone owns to that zone's routers) over the leaf router
//! (series → range → replica leaves, acknowledged at the write quorum),
//! serving IngestService and SchemaService.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use danaus_assigner::{TableCache, TableWatcher, ZoneClient};
use danaus_router::{IngestRouter, LeafRouter, RouterConfig, ZoneMap};
use danaus_storage::SharedStateDir;
use futures::FutureExt as _;
use tokio::sync::watch;

use crate::metrics::{process_metrics, router_metrics, Text};
use crate::{table_health, transport, Health, Metrics, Result, Running};

/// A router.
#[derive(Debug, Clone)]
pub struct RouterSpec {
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// Assigner members.
    pub assigners: Vec<String>,
    /// Zones and their locations.
    pub zones: ZoneMap,
    /// Write quorum, deadlines.
    pub router: RouterConfig,
    /// Where schema changes go: the zone's config mirrors or the config
    /// service's members (host:port). None: the zone table (a zone
    /// without a global configuration).
    pub config: Vec<String>,
}

/// What a router role is made of, beside what every role has.
pub struct RouterParts {
    /// The zone's front door for writes and schemas.
    pub front: Arc<IngestRouter>,
    /// The leaf router behind it.
    pub leaves: Arc<LeafRouter>,
}

/// The routers of a zone (standalone's too): table, leaf router, front.
pub(crate) fn build(
    assigners: Vec<String>,
    cache: Option<TableCache>,
    zones: ZoneMap,
    cfg: RouterConfig,
    config: Option<Arc<dyn danaus_config::service::Writer>>,
) -> (TableWatcher, RouterParts) {
    let table = TableWatcher::start_cached(assigners.clone(), cache);
    let zone = Arc::new(ZoneClient::new(assigners));
    let leaves = LeafRouter::new(table.clone(), zone.clone(), cfg);
    let front = match config {
        Some(c) => IngestRouter::with_config(leaves.clone(), zones, zone, c),
        None => IngestRouter::new(leaves.clone(), zones, zone),
    };
    (table, RouterParts { front, leaves })
}

/// Starts a router; `state` keeps its last zone table across restarts.
pub async fn start(spec: RouterSpec, state: Option<SharedStateDir>) -> Result<(Running, RouterParts)> {
    let started = Instant::now();
    let listener = transport::bind(spec.grpc_addr).await?;
    let (table, parts) = build(
        spec.assigners.clone(),
        state.map(|s| TableCache::new(s, "zone-table.json")),
        spec.zones.clone(),
        spec.router.clone(),
        (!spec.config.is_empty()).then(|| {
            Arc::new(danaus_config::client::RemoteWriter::new(spec.config.clone()))
                as Arc<dyn danaus_config::service::Writer>
        }),
    );
    let health: Health = Arc::new(move || table_health(&table));
    let (ingest, schema) = parts.front.services();
    let router = transport::server(transport::DEFAULT_CONCURRENCY).add_service(ingest).add_service(schema);
    let stats = parts.leaves.stats.clone();
    let metrics: Metrics = Arc::new(move || {
        let s = stats.clone();
        async move {
            let mut t = Text::default();
            process_metrics(&mut t, started);
            router_metrics(&mut t, &s);
            t
        }
        .boxed()
    });
    let (stop, stopping) = watch::channel(false);
    let mut running = Running::new(listener.local_addr(), metrics, health, stop);
    tracing::info!(grpc_addr = %running.grpc_addr, "router serving");
    running.server = Some(listener.serve(router, stopping));
    Ok((running, parts))
}
