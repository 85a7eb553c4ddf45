//! `danaus standalone`: every role of one zone in one process, on a data
//! directory. Today that is one leaf (RocksDB long-term store, recovery log
//! on the file system) behind the gRPC API and the HTTP port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use danaus_leaf::{Leaf, LeafConfig, LeafOptions};
use danaus_rocksdb::RocksKv;
use danaus_storage::{FsLogDevice, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http::{router, HttpState};
use danaus_node::Services;
use danaus_prom::scrape::{ScrapeConfig, Scraper};
use danaus_prom::Receiver;

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
    leaf: Leaf,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    scraper: Option<Scraper>,
}

pub use danaus_node::MAX_MESSAGE_BYTES;

/// Opens the data directory, replays the log and starts serving.
pub async fn start(cfg: StandaloneConfig) -> anyhow::Result<Running> {
    let started = Instant::now();
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    let rocks_dir = cfg.data_dir.join("rocksdb");
    let kv = tokio::task::spawn_blocking(move || RocksKv::open(&rocks_dir))
        .await?
        .context("opening the long-term store (is another danaus using this data directory?)")?;
    let log = FsLogDevice::open(cfg.data_dir.join("wal")).context("opening the recovery log directory")?;
    let leaf = Leaf::open(LeafConfig {
        kv: Arc::new(kv),
        log: Arc::new(log),
        clock: Arc::new(SystemClock),
        options: cfg.leaf.clone(),
    })
    .await
    .context("opening the leaf")?;

    let grpc_listener =
        TcpListener::bind(cfg.grpc_addr).await.with_context(|| format!("binding gRPC to {}", cfg.grpc_addr))?;
    let http_listener =
        TcpListener::bind(cfg.http_addr).await.with_context(|| format!("binding HTTP to {}", cfg.http_addr))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);

    let services = Services::new(leaf.clone(), cfg.max_concurrent_queries);
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(danaus_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building gRPC reflection")?;
    let grpc = services.server(cfg.max_concurrent_requests).add_service(reflection);
    let mut s1 = stopped.clone();
    let grpc_task = tokio::spawn(async move {
        grpc.serve_with_incoming_shutdown(crate::nodelay(grpc_listener), async move {
            let _ = s1.wait_for(|s| *s).await;
        })
        .await
        .context("gRPC server")
    });
    let remote_write = Arc::new(Receiver::new(leaf.clone(), cfg.location.clone()));
    let scraper = match &cfg.scrape_config {
        Some(path) => {
            let sc =
                ScrapeConfig::load(path).map_err(anyhow::Error::msg).context("loading the scrape configuration")?;
            tracing::info!(jobs = sc.jobs.len(), path = %path.display(), "scraping");
            Some(Scraper::start(sc, remote_write.clone()))
        }
        None => None,
    };
    let app = router(HttpState {
        leaf: leaf.clone(),
        grpc: services.stats,
        query: services.query_stats,
        remote_write,
        started,
    });
    let mut s2 = stopped;
    let http_task = tokio::spawn(async move {
        axum::serve(http_listener, app)
            .with_graceful_shutdown(async move {
                let _ = s2.wait_for(|s| *s).await;
            })
            .await
            .context("HTTP server")
    });
    tracing::info!(%grpc_addr, %http_addr, data_dir = %cfg.data_dir.display(), elapsed_ms = started.elapsed().as_millis() as u64, "danaus standalone is serving");
    Ok(Running { grpc_addr, http_addr, leaf, stop, tasks: vec![grpc_task, http_task], scraper })
}

impl Running {
    /// The leaf behind the API.
    pub fn leaf(&self) -> &Leaf {
        &self.leaf
    }

    /// Stops accepting requests, lets in-flight ones finish, then
    /// checkpoints the leaf and flushes the long-term store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        if let Some(s) = self.scraper {
            s.stop().await;
        }
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.await??;
        }
        self.leaf.shutdown().await.context("final checkpoint")?;
        tracing::info!("danaus standalone stopped cleanly");
        Ok(())
    }
}
