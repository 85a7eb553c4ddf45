//! The zone mixer role: QueryService (both query languages' plans, the
//! leaf phase run on the replicas the mixer picks) and ReadService, over
//! the zone table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use danaus_assigner::{TableCache, TableWatcher};
use danaus_mixer::{MixerConfig, ZoneMixer};
use danaus_node::query::{QueryApi, QueryStats};
use danaus_proto::v1 as pb;
use danaus_storage::SharedStateDir;
use futures::FutureExt as _;
use tokio::sync::watch;

use crate::metrics::{process_metrics, query_metrics, Text};
use crate::{table_health, transport, Health, Metrics, Result, Running};

/// A zone mixer.
#[derive(Debug, Clone)]
pub struct MixerSpec {
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// Assigner members.
    pub assigners: Vec<String>,
    /// Mixer tuning.
    pub mixer: MixerConfig,
    /// Queries run at once; more are refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_queries: usize,
}

/// What a mixer role is made of, beside what every role has.
pub struct MixerParts {
    /// The mixer.
    pub mixer: ZoneMixer,
    /// The zone table it plans by.
    pub table: TableWatcher,
    /// Query counters.
    pub queries: Arc<QueryStats>,
}

/// The QueryService over `mixer`, counting into `stats`.
pub(crate) fn query_service(
    mixer: &ZoneMixer,
    max_concurrent_queries: usize,
    stats: Arc<QueryStats>,
) -> danaus_proto::servers::QueryServer<QueryApi> {
    let m = mixer.clone();
    let api = QueryApi::with_engines(Arc::new(move || m.engine()), max_concurrent_queries, stats);
    pb::query_service_server::QueryServiceServer::new(api).max_encoding_message_size(danaus_node::MAX_MESSAGE_BYTES)
}

/// Starts a zone mixer; `state` keeps its last zone table across restarts.
pub async fn start(spec: MixerSpec, state: Option<SharedStateDir>) -> Result<(Running, MixerParts)> {
    let started = Instant::now();
    let listener = transport::bind(spec.grpc_addr).await?;
    let table =
        TableWatcher::start_cached(spec.assigners.clone(), state.map(|s| TableCache::new(s, "zone-table.json")));
    let mixer = ZoneMixer::new(table.clone(), spec.mixer.clone());
    let t = table.clone();
    let health: Health = Arc::new(move || table_health(&t));
    let queries = Arc::new(QueryStats::default());
    let router = transport::server(transport::DEFAULT_CONCURRENCY)
        .add_service(query_service(&mixer, spec.max_concurrent_queries, queries.clone()))
        .add_service(mixer.read_service())
        .add_service(mixer.stage_service());
    let (q, ms) = (queries.clone(), mixer.stats().clone());
    let metrics: Metrics = Arc::new(move || {
        let (q, ms) = (q.clone(), ms.clone());
        async move {
            let mut t = Text::default();
            process_metrics(&mut t, started);
            query_metrics(&mut t, &q, &ms);
            t
        }
        .boxed()
    });
    let (stop, stopping) = watch::channel(false);
    let mut running = Running::new(listener.local_addr(), metrics, health, stop);
    tracing::info!(grpc_addr = %running.grpc_addr, "zone mixer serving");
    running.server = Some(listener.serve(router, stopping));
    Ok((running, MixerParts { mixer, table, queries }))
}
