//! The root mixer role: QueryService over every zone. It follows the
//! global config service (any member) for the zones — each `kind: Zone`
//! object names its mixers and locations — and the schemas it plans by,
//! and keeps the last version it reached in its state directory, so a
//! root mixer restarted while the config service is away still knows the
//! zones. Each query asks every zone's mixer for the zone phase at once
//! ([`danaus_mixer::root`]) and merges their outputs; zones that do not
//! answer are named in the completeness report.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use danaus_config::client::{follow, load_saved};
use danaus_config::feed::Feed;
use danaus_config::object::Object;
use danaus_mixer::{RootCatalog, RootConfig, RootMixer, RootZone};
use danaus_model::{MetricSchema, TargetSchema};
use danaus_node::query::{QueryApi, QueryStats};
use danaus_proto::v1 as pb;
use danaus_storage::SharedStateDir;
use futures::FutureExt as _;
use tokio::sync::watch;

use crate::metrics::{process_metrics, query_counters, Text};
use crate::{transport, Health, Metrics, Result, Running};

/// A root mixer.
#[derive(Debug, Clone)]
pub struct RootMixerSpec {
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// The config service's members (host:port).
    pub config_servers: Vec<String>,
    /// Tuning.
    pub root: RootConfig,
    /// Queries run at once; more are refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_queries: usize,
}

/// What a root mixer is made of, beside what every role has.
pub struct RootMixerParts {
    /// The mixer.
    pub root: RootMixer,
    /// Its copy of the configuration.
    pub feed: Feed,
    /// Query counters.
    pub queries: Arc<QueryStats>,
}

/// The zones and schemas of the configuration a feed holds now.
pub struct FeedCatalog(pub Feed);

impl RootCatalog for FeedCatalog {
    fn zones(&self) -> Vec<RootZone> {
        self.0
            .current()
            .zones()
            .map(|z| RootZone { name: z.name.clone(), mixers: z.mixers.clone(), locations: z.locations.clone() })
            .collect()
    }

    fn schemas(&self, tenant: &str, target: &str, metric: &str) -> Option<(Arc<TargetSchema>, Arc<MetricSchema>)> {
        let view = self.0.current();
        Some((
            Arc::new(view.target_schema(tenant, target)?.clone()),
            Arc::new(view.metric_schema(tenant, metric)?.clone()),
        ))
    }
}

impl FeedCatalog {
    /// `tenant`'s target schema `target` and all its metric schemas (the
    /// PromQL API's view).
    pub fn tenant_schemas(&self, tenant: &str, target: &str) -> (Option<Arc<TargetSchema>>, Vec<Arc<MetricSchema>>) {
        let view = self.0.current();
        let metrics = view
            .objects_of(tenant)
            .filter_map(|o| match o {
                Object::MetricSchema(m) => Some(Arc::new(m.clone())),
                _ => None,
            })
            .collect();
        (view.target_schema(tenant, target).cloned().map(Arc::new), metrics)
    }
}

/// Starts a root mixer keeping its copy of the configuration in `state`.
pub async fn start(spec: RootMixerSpec, state: SharedStateDir) -> Result<(Running, RootMixerParts)> {
    let started = Instant::now();
    let listener = transport::bind(spec.grpc_addr).await?;
    let saved = load_saved(&state).unwrap_or_default();
    if saved.version > 0 {
        tracing::info!(version = saved.version, "root mixer starting from its saved configuration");
    }
    let feed = Feed::new(saved);
    let root = RootMixer::new(Arc::new(FeedCatalog(feed.clone())), spec.root.clone());
    let queries = Arc::new(QueryStats::default());
    let r = root.clone();
    let api = QueryApi::with_engines(Arc::new(move || r.engine()), spec.max_concurrent_queries, queries.clone());
    let router = transport::server(transport::DEFAULT_CONCURRENCY).add_service(
        pb::query_service_server::QueryServiceServer::new(api)
            .max_encoding_message_size(danaus_node::MAX_MESSAGE_BYTES),
    );
    let (q, rs, f) = (queries.clone(), root.stats().clone(), feed.clone());
    let metrics: Metrics = Arc::new(move || {
        let (q, rs, f) = (q.clone(), rs.clone(), f.clone());
        async move {
            let mut t = Text::default();
            process_metrics(&mut t, started);
            query_counters(&mut t, &q);
            t.counter("danaus_root_zone_phases_total", "Zone phases asked of zone mixers.", &rs.zone_phases);
            t.counter(
                "danaus_root_zones_pruned_total",
                "Zone phases skipped: the query's location filter rules the zone out.",
                &rs.zones_pruned,
            );
            t.counter(
                "danaus_root_zones_missing_total",
                "Zone phases no mixer of the zone answered.",
                &rs.zones_missing,
            );
            t.counter(
                "danaus_root_zones_skipped_by_hints_total",
                "Zone phases skipped: the root index showed the zone holds no matching series.",
                &rs.zones_skipped_by_hints,
            );
            t.counter(
                "danaus_root_index_failures_total",
                "Questions to the root index that failed (every zone was asked).",
                &rs.root_index_failures,
            );
            let view = f.current();
            t.metric("danaus_config_version", "gauge", "Configuration version this root mixer holds.", view.version);
            t.metric("danaus_root_zones", "gauge", "Zones the configuration names.", view.zones().count() as u64);
            t
        }
        .boxed()
    });
    let f = feed.clone();
    let health: Health = Arc::new(move || {
        let view = f.current();
        if view.version == 0 {
            Some("no configuration yet: no config service member has answered and none was saved; check --config-servers".into())
        } else if view.zones().next().is_none() {
            Some("the configuration names no zones: apply `kind: Zone` objects (docs/configuration.md)".into())
        } else {
            None
        }
    });
    let (stop, stopping) = watch::channel(false);
    let mut running = Running::new(listener.local_addr(), metrics, health, stop);
    running.server = Some(listener.serve(router, stopping));
    running.spawn(follow(spec.config_servers.clone(), feed.clone(), Some(state)));
    tracing::info!(grpc_addr = %running.grpc_addr, "root mixer serving");
    Ok((running, RootMixerParts { root, feed, queries }))
}
