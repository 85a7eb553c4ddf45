//! `danaus standalone`: a whole zone in one process, on one data directory.
//!
//! The process runs the same roles as a distributed zone — a range
//! assigner (a one-member Raft group), `--leaves` leaves (default 1), the
//! zone index server, the ingestion and leaf routers and the zone mixer —
//! talking gRPC to each other on loopback ports. The public gRPC port
//! serves the zone's front door: SchemaService and IngestService from the
//! router, QueryService and ReadService from the mixer, plus reflection;
//! the HTTP port serves `/metrics` (the leaves summed, router, queries),
//! `/healthz` and Prometheus remote_write (through the router).
//!
//! Layout of the data directory: the first leaf's long-term store
//! (`rocksdb/`, which also holds the assigner's Raft log in its `raft`
//! column family) and recovery log (`wal/`) at the top, so a directory
//! written by an older single-leaf standalone opens as the first leaf;
//! further leaves in `leaf-N/`; zone-table caches beside them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use danaus_leaf::{Leaf, LeafOptions};
use danaus_prom::scrape::{ScrapeConfig, Scraper};
use danaus_prom::Receiver;
use danaus_roles::standalone::{Standalone, StandaloneRules, StandaloneSpec, StandaloneStores};
use danaus_roles::Metrics;

use crate::http::{remote_write_metrics, remote_write_routes};
use crate::prom_store::{PromSink, RouterStore};
use crate::promql_http::{promql_routes, PromqlApi};
pub use crate::rules::RulesConfig;
use crate::rules_http::{rules_routes, RulesApi};
use crate::zone;

/// The zone's name in completeness reports and the zone map.
pub const ZONE: &str = "local";

/// Configuration of a standalone server.
#[derive(Debug, Clone)]
pub struct StandaloneConfig {
    /// Data directory (`wal/` and `rocksdb/` below it).
    pub data_dir: PathBuf,
    /// gRPC listen address (port 0 picks one).
    pub grpc_addr: SocketAddr,
    /// HTTP listen address (port 0 picks one).
    pub http_addr: SocketAddr,
    /// Leaf tuning.
    pub leaf: LeafOptions,
    /// Leaves run in the process.
    pub leaves: usize,
    /// Replicas of each target range (at most `leaves`).
    pub replication: u32,
    /// Concurrent requests served per gRPC connection.
    pub max_concurrent_requests: usize,
    /// Queries run at once; more are refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_queries: usize,
    /// Location of Prometheus series that carry no `location` label.
    pub location: String,
    /// Prometheus-style scrape configuration to run, if any.
    pub scrape_config: Option<PathBuf>,
    /// How rules run and where their alerts go.
    pub rules: RulesConfig,
}

/// A running standalone server.
pub struct Running {
    /// Bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound HTTP address.
    pub http_addr: SocketAddr,
    zone: Standalone,
    scraper: Option<Scraper>,
}

pub use danaus_node::MAX_MESSAGE_BYTES;

/// Opens the data directory, starts every role and waits until the zone
/// is whole (every range has `replication` ready replicas).
pub async fn start(cfg: StandaloneConfig) -> anyhow::Result<Running> {
    anyhow::ensure!(cfg.leaves >= 1, "a zone needs at least one leaf (--leaves)");
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    // The first leaf's store also holds the assigner's Raft log.
    let first = zone::open_kv(&cfg.data_dir).await?;
    let mut leaves = vec![zone::leaf_stores(&cfg.data_dir, first.clone())?];
    for i in 2..=cfg.leaves {
        let dir = cfg.data_dir.join(format!("leaf-{i}"));
        let kv = zone::open_kv(&dir).await.with_context(|| format!("opening leaf-{i}"))?;
        leaves.push(zone::leaf_stores(&dir, kv)?);
    }
    let location = cfg.location.clone();
    let stores = StandaloneStores {
        assigner: first,
        clock: Arc::new(danaus_storage::SystemClock),
        leaves,
        state: zone::state_dir(&cfg.data_dir)?,
        rules: Some(StandaloneRules {
            sink: Box::new(move |front| {
                Arc::new(PromSink(Arc::new(Receiver::new(Arc::new(RouterStore(front)), location))))
            }),
            notifier: cfg.rules.notifier()?,
            evaluator: cfg.rules.evaluator(),
            location: cfg.location.clone(),
        }),
    };
    let mut spec = StandaloneSpec::new(ZONE, cfg.grpc_addr, cfg.leaves, cfg.replication);
    spec.leaf = cfg.leaf.clone();
    spec.max_concurrent_requests = cfg.max_concurrent_requests;
    spec.max_concurrent_queries = cfg.max_concurrent_queries;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(danaus_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building gRPC reflection")?;
    let mut zone = danaus_roles::standalone::start(spec, stores, Some(Box::new(move |r| r.add_service(reflection))))
        .await
        .context("starting the zone")?;

    let remote_write = Arc::new(Receiver::new(Arc::new(RouterStore(zone.routers.front.clone())), cfg.location.clone()));
    let scraper = match &cfg.scrape_config {
        Some(path) => {
            let sc =
                ScrapeConfig::load(path).map_err(anyhow::Error::msg).context("loading the scrape configuration")?;
            tracing::info!(jobs = sc.jobs.len(), path = %path.display(), "scraping");
            Some(Scraper::start(sc, remote_write.clone()))
        }
        None => None,
    };
    let m = zone.mixer.clone();
    let promql = PromqlApi::new(
        Arc::new(move || m.engine()),
        zone.table.clone(),
        cfg.location.clone(),
        cfg.max_concurrent_queries,
    );
    let evaluator =
        zone.evaluator.as_ref().map(|(_, p)| p.evaluator.clone()).context("standalone runs an evaluator")?;
    let (inner, rx, ev) = (zone.front.metrics.clone(), remote_write.clone(), evaluator.clone());
    let metrics: Metrics = Arc::new(move || {
        let (inner, rx, ev) = (inner.clone(), rx.clone(), ev.clone());
        Box::pin(async move {
            let mut t = inner().await;
            remote_write_metrics(&mut t, &rx);
            danaus_roles::evaluator::evaluator_metrics(&mut t, &ev);
            t
        })
    });
    let rules = RulesApi { evaluator, config: zone.config_feed.clone() };
    let extra = remote_write_routes(remote_write).merge(promql_routes(promql)).merge(rules_routes(rules));
    let (http_addr, http) =
        zone::serve_http(cfg.http_addr, metrics, zone.front.health.clone(), Some(extra), zone.front.stopping()).await?;
    // The HTTP port drains with the public gRPC port, before the leaves stop.
    zone.front.on_stop(move || {
        Box::pin(async move {
            match http.await {
                Ok(r) => r.map_err(|e| danaus_roles::Error::Serve(format!("{e:#}"))),
                Err(e) => Err(danaus_roles::Error::Serve(format!("the HTTP server task failed: {e}"))),
            }
        })
    });
    let grpc_addr = zone.front.grpc_addr;
    tracing::info!(
        %grpc_addr,
        %http_addr,
        leaves = cfg.leaves,
        replication = cfg.replication,
        data_dir = %cfg.data_dir.display(),
        "danaus standalone is serving"
    );
    Ok(Running { grpc_addr, http_addr, zone, scraper })
}

impl Running {
    /// The first leaf.
    pub fn leaf(&self) -> Option<&Leaf> {
        self.zone.leaf()
    }

    /// Stops accepting requests and lets in-flight ones finish, then stops
    /// the leaves (each checkpoints and flushes its long-term store), the
    /// index server and the assigner.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        if let Some(s) = self.scraper {
            s.stop().await;
        }
        self.zone.shutdown().await?;
        tracing::info!("danaus standalone stopped cleanly");
        Ok(())
    }
}
