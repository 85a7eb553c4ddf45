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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use danaus_assigner::{AssignerConfig, TableWatcher, ZoneClient};
use danaus_leaf::{Leaf, LeafOptions};
use danaus_mixer::{MixerConfig, ZoneMixer};
use danaus_node::query::{QueryApi, QueryStats};
use danaus_node::zone_leaf::AgentConfig;
use danaus_prom::scrape::{ScrapeConfig, Scraper};
use danaus_prom::Receiver;
use danaus_proto::v1 as pb;
use danaus_router::{IngestRouter, LeafRouter, RouterConfig, ZoneMap};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http::{router, HttpState};
use crate::prom_store::RouterStore;
use crate::promql_http::{promql_routes, PromqlApi};
use crate::zone::{self, AssignerRole, IndexRole, LeafRole, RunningRole};

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
}

/// A running standalone server.
pub struct Running {
    /// Bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound HTTP address.
    pub http_addr: SocketAddr,
    leaves: Vec<RunningRole>,
    assigner: RunningRole,
    index: RunningRole,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    scraper: Option<Scraper>,
}

pub use danaus_node::MAX_MESSAGE_BYTES;

/// A loopback address free right now, for a role that must know its own
/// address before it binds (the Raft member).
fn free_loopback() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr()?)
}

fn loopback_any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Opens the data directory, starts every role and waits until the zone
/// is whole (every range has `replication` ready replicas).
pub async fn start(cfg: StandaloneConfig) -> anyhow::Result<Running> {
    let started = Instant::now();
    anyhow::ensure!(cfg.leaves >= 1, "a zone needs at least one leaf (--leaves)");
    anyhow::ensure!(
        cfg.replication >= 1 && cfg.replication as usize <= cfg.leaves,
        "--replication {} needs between 1 and --leaves ({}) leaves",
        cfg.replication,
        cfg.leaves
    );
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    // The first leaf's store also holds the assigner's Raft log.
    let kv = zone::open_kv(&cfg.data_dir).await?;
    let assigner_addr = free_loopback()?;
    let assigner = zone::start_assigner_on(
        AssignerRole {
            id: 1,
            peers: BTreeMap::from([(1, assigner_addr.to_string())]),
            grpc_addr: assigner_addr,
            http_addr: None,
            data_dir: cfg.data_dir.clone(),
            assigner: AssignerConfig {
                replication: cfg.replication,
                dead_after: Duration::from_secs(10),
                tick: Duration::from_millis(200),
                ..AssignerConfig::default()
            },
            heartbeat: Duration::from_millis(100),
        },
        kv.clone(),
    )
    .await
    .context("starting the range assigner")?;
    let assigners = vec![assigner.grpc_addr.to_string()];
    let index = zone::start_index(IndexRole {
        grpc_addr: loopback_any(),
        http_addr: None,
        index: danaus_index::IndexConfig::default(),
    })
    .await
    .context("starting the index server")?;
    let index_addr = index.grpc_addr.to_string();
    let mut leaves = Vec::with_capacity(cfg.leaves);
    for i in 1..=cfg.leaves {
        let role = LeafRole {
            name: format!("leaf-{i}"),
            grpc_addr: loopback_any(),
            advertise: None,
            http_addr: None,
            data_dir: if i == 1 { cfg.data_dir.clone() } else { cfg.data_dir.join(format!("leaf-{i}")) },
            assigners: assigners.clone(),
            leaf: cfg.leaf.clone(),
            agent: AgentConfig { heartbeat: Duration::from_millis(500), ..AgentConfig::default() },
            index: Some(index_addr.clone()),
        };
        let running = if i == 1 { zone::start_leaf_on(role, kv.clone()).await } else { zone::start_leaf(role).await }
            .with_context(|| format!("starting leaf-{i}"))?;
        leaves.push(running);
    }
    let table = TableWatcher::start_cached(assigners.clone(), Some(cfg.data_dir.join("router-table.json")));
    let zone_client = Arc::new(ZoneClient::new(assigners.clone()));
    let leaf_router = LeafRouter::new(table.clone(), zone_client.clone(), RouterConfig::default());
    for l in &leaves {
        if let Some(zl) = l.zone_leaf() {
            leaf_router.add_local_leaf(l.grpc_addr.to_string(), zl.clone());
        }
    }
    let front = IngestRouter::new(leaf_router.clone(), ZoneMap::single(ZONE), zone_client);
    let mixer = ZoneMixer::new(
        table.clone(),
        MixerConfig { zone: ZONE.into(), index: Some(index_addr), ..MixerConfig::default() },
    );
    // Leaf phases of queries run by a call too, as writes do: no plan or
    // table crosses a loopback socket in one process.
    for l in &leaves {
        if let Some(zl) = l.zone_leaf() {
            mixer.add_local_leaf(l.grpc_addr.to_string(), zl.clone());
        }
    }
    // Serve once every range has all its replicas ready.
    // (A table cached from the last run names the leaves' old addresses.)
    let addrs: Vec<(String, String)> =
        leaves.iter().enumerate().map(|(i, l)| (format!("leaf-{}", i + 1), l.grpc_addr.to_string())).collect();
    let ready = |t: &danaus_assigner::ZoneTable| {
        addrs.iter().all(|(n, a)| t.leaves.get(n).is_some_and(|e| e.addr == *a))
            && !t.ranges.is_empty()
            && t.ranges.values().all(|r| r.ready().count() >= cfg.replication as usize)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(&table.current()) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the zone did not become ready within 60 s: {:#?}",
            table.current().ranges
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let grpc_listener =
        TcpListener::bind(cfg.grpc_addr).await.with_context(|| format!("binding gRPC to {}", cfg.grpc_addr))?;
    let http_listener =
        TcpListener::bind(cfg.http_addr).await.with_context(|| format!("binding HTTP to {}", cfg.http_addr))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);

    let query_stats = Arc::new(QueryStats::default());
    let m = mixer.clone();
    let query = QueryApi::with_engines(Arc::new(move || m.engine()), cfg.max_concurrent_queries, query_stats.clone());
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(danaus_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building gRPC reflection")?;
    let (ingest, schema) = front.services();
    let grpc = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(cfg.max_concurrent_requests)
        .add_service(ingest)
        .add_service(schema)
        .add_service(
            pb::query_service_server::QueryServiceServer::new(query).max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(mixer.read_service())
        .add_service(reflection);
    let mut s1 = stopped.clone();
    let grpc_task = tokio::spawn(async move {
        grpc.serve_with_incoming_shutdown(crate::nodelay(grpc_listener), async move {
            let _ = s1.wait_for(|s| *s).await;
        })
        .await
        .context("gRPC server")
    });
    let remote_write = Arc::new(Receiver::new(Arc::new(RouterStore(front.clone())), cfg.location.clone()));
    let scraper = match &cfg.scrape_config {
        Some(path) => {
            let sc =
                ScrapeConfig::load(path).map_err(anyhow::Error::msg).context("loading the scrape configuration")?;
            tracing::info!(jobs = sc.jobs.len(), path = %path.display(), "scraping");
            Some(Scraper::start(sc, remote_write.clone()))
        }
        None => None,
    };
    let m2 = mixer.clone();
    let promql =
        PromqlApi::new(Arc::new(move || m2.engine()), table.clone(), cfg.location.clone(), cfg.max_concurrent_queries);
    let app = router(HttpState {
        leaves: leaves.iter().filter_map(|l| l.leaf().cloned()).collect(),
        router: leaf_router.stats.clone(),
        mixer: mixer.stats().clone(),
        query: query_stats,
        remote_write,
        started,
    })
    .merge(promql_routes(promql));
    let mut s2 = stopped;
    let http_task = tokio::spawn(async move {
        axum::serve(http_listener, app)
            .with_graceful_shutdown(async move {
                let _ = s2.wait_for(|s| *s).await;
            })
            .await
            .context("HTTP server")
    });
    tracing::info!(
        %grpc_addr,
        %http_addr,
        leaves = cfg.leaves,
        replication = cfg.replication,
        data_dir = %cfg.data_dir.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "danaus standalone is serving"
    );
    Ok(Running { grpc_addr, http_addr, leaves, assigner, index, stop, tasks: vec![grpc_task, http_task], scraper })
}

impl Running {
    /// The first leaf.
    pub fn leaf(&self) -> Option<&Leaf> {
        self.leaves.first().and_then(RunningRole::leaf)
    }

    /// Stops accepting requests and lets in-flight ones finish, then stops
    /// the leaves (each checkpoints and flushes its long-term store), the
    /// index server and the assigner.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        if let Some(s) = self.scraper {
            s.stop().await;
        }
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.await??;
        }
        for l in self.leaves {
            l.shutdown().await.context("final checkpoint")?;
        }
        // Their only clients (this process' watchers and leaves) are done:
        // what is left open are table watches that never end by themselves.
        self.index.shutdown_within(Duration::ZERO).await?;
        self.assigner.shutdown_within(Duration::ZERO).await?;
        tracing::info!("danaus standalone stopped cleanly");
        Ok(())
    }
}
