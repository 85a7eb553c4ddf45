//! The roles of a distributed installation, each a subcommand of `danaus`:
//! `config-server` (a member of the global config service's Raft group),
//! and per zone `config-mirror`, `assigner` (a member of the zone's Raft
//! group and the range assigner), `leaf`, `router` (ingestion and leaf
//! router), `mixer` (zone mixer) and `index`.
//! Each role is defined in `danaus-roles`; this module opens its stores
//! (RocksDB, the recovery log and state on the file system) and adds the
//! HTTP port if asked: `/metrics`, `/healthz`, and remote_write on a router
//! or the PromQL API on a mixer. `danaus dev-cluster` (`dev_cluster`)
//! starts a whole zone of them on loopback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use danaus_assigner::AssignerConfig;
use danaus_leaf::{Leaf, LeafOptions};
use danaus_mixer::MixerConfig;
use danaus_node::zone_leaf::{AgentConfig, ZoneLeaf};
use danaus_prom::Receiver;
use danaus_raft::NodeId;
use danaus_rocksdb::RocksKv;
use danaus_roles::{Health, Metrics, Running};
use danaus_router::{RouterConfig, ZoneMap};
use danaus_storage::{FsLogDevice, FsStateDir, KvStore, SharedStateDir, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http::{remote_write_metrics, remote_write_routes, OPENMETRICS};
use crate::prom_store::RouterStore;

/// A running role: its definition (`danaus-roles`) serving gRPC, and the
/// HTTP port this binary adds beside it.
pub struct RunningRole {
    /// Bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound HTTP address, if any.
    pub http_addr: Option<SocketAddr>,
    role: Running,
    http: Option<JoinHandle<anyhow::Result<()>>>,
    leaf: Option<danaus_roles::leaf::LeafParts>,
}

impl RunningRole {
    /// The role's leaf, if it is a leaf.
    pub fn leaf(&self) -> Option<&Leaf> {
        self.leaf.as_ref().map(|p| &p.leaf)
    }

    /// The leaf's zone face, if it is a leaf.
    pub fn zone_leaf(&self) -> Option<&Arc<ZoneLeaf>> {
        self.leaf.as_ref().map(|p| &p.zone_leaf)
    }

    /// Stops serving; a leaf checkpoints, a Raft member stops.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown_within(danaus_roles::STOP_GRACE).await
    }

    /// Like [`shutdown`](Self::shutdown), but drops requests and streams
    /// still open after `grace` (zero: at once — for a role whose only
    /// clients are in the same process and already stopped).
    pub async fn shutdown_within(self, grace: Duration) -> anyhow::Result<()> {
        self.role.shutdown_within(grace).await?;
        if let Some(h) = self.http {
            h.await??;
        }
        Ok(())
    }
}

/// Serves `/metrics`, `/healthz` and `extra` on `addr` until `stop`.
pub(crate) async fn serve_http(
    addr: SocketAddr,
    metrics: Metrics,
    health: Health,
    extra: Option<axum::Router>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<anyhow::Result<()>>)> {
    let l = TcpListener::bind(addr).await.with_context(|| format!("binding HTTP to {addr}"))?;
    let bound = l.local_addr()?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { ([(header::CONTENT_TYPE, OPENMETRICS)], metrics().await.finish()) }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let why = health();
                async move {
                    match why {
                        None => (StatusCode::OK, "ok\n".to_owned()).into_response(),
                        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {why}\n")).into_response(),
                    }
                }
            }),
        )
        .merge(extra.unwrap_or_default());
    let task = tokio::spawn(async move {
        axum::serve(l, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
            .context("HTTP server")
    });
    Ok((bound, task))
}

/// Adds the HTTP port (if asked for) beside a started role.
async fn with_http(
    role: Running,
    http_addr: Option<SocketAddr>,
    metrics: Metrics,
    extra: Option<axum::Router>,
    leaf: Option<danaus_roles::leaf::LeafParts>,
) -> anyhow::Result<RunningRole> {
    let (http_addr, http) = match http_addr {
        Some(a) => {
            let (bound, task) = serve_http(a, metrics, role.health.clone(), extra, role.stopping()).await?;
            (Some(bound), Some(task))
        }
        None => (None, None),
    };
    Ok(RunningRole { grpc_addr: role.grpc_addr, http_addr, role, http, leaf })
}

/// The state directory `dir` (created if missing).
pub fn state_dir(dir: &Path) -> anyhow::Result<SharedStateDir> {
    Ok(Arc::new(FsStateDir::open(dir).with_context(|| format!("creating {}", dir.display()))?))
}

/// Opens (creating) the RocksDB long-term store under `dir/rocksdb`.
pub async fn open_kv(dir: &Path) -> anyhow::Result<Arc<dyn KvStore>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("rocksdb");
    let kv = tokio::task::spawn_blocking(move || RocksKv::open(&path))
        .await?
        .context("opening the long-term store (is another danaus using this data directory?)")?;
    Ok(Arc::new(kv))
}

/// A leaf's stores in `dir`: the recovery log in `wal/`, the zone table
/// cache beside it, and `kv`.
pub fn leaf_stores(dir: &Path, kv: Arc<dyn KvStore>) -> anyhow::Result<danaus_roles::leaf::LeafStores> {
    let state = state_dir(dir)?;
    let log = FsLogDevice::open(dir.join("wal")).context("opening the recovery log directory")?;
    Ok(danaus_roles::leaf::LeafStores { kv, log: Arc::new(log), clock: Arc::new(SystemClock), state })
}

/// A range assigner member.
#[derive(Debug, Clone)]
pub struct AssignerRole {
    /// Member id in the zone's Raft group.
    pub id: NodeId,
    /// Every member (this one included): id → host:port.
    pub peers: BTreeMap<NodeId, String>,
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// HTTP address for /metrics.
    pub http_addr: Option<SocketAddr>,
    /// Data directory (the Raft log and snapshots).
    pub data_dir: PathBuf,
    /// Assigner tuning.
    pub assigner: AssignerConfig,
    /// Raft heartbeat; elections after 5× this.
    pub heartbeat: Duration,
}

/// Starts a range assigner member.
pub async fn start_assigner(cfg: AssignerRole) -> anyhow::Result<RunningRole> {
    let kv = open_kv(&cfg.data_dir).await?;
    start_assigner_on(cfg, kv).await
}

/// Starts a range assigner member on an open long-term store (its Raft log
/// goes to the `raft` column family; `cfg.data_dir` is not used).
pub async fn start_assigner_on(cfg: AssignerRole, kv: Arc<dyn KvStore>) -> anyhow::Result<RunningRole> {
    let spec = danaus_roles::assigner::AssignerSpec {
        id: cfg.id,
        peers: cfg.peers.clone(),
        grpc_addr: cfg.grpc_addr,
        assigner: cfg.assigner.clone(),
        heartbeat: cfg.heartbeat,
    };
    let (role, _) = danaus_roles::assigner::start(spec, kv).await?;
    let metrics = role.metrics.clone();
    with_http(role, cfg.http_addr, metrics, None, None).await
}

/// A leaf of a zone.
#[derive(Debug, Clone)]
pub struct LeafRole {
    /// Its name in the zone.
    pub name: String,
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// Address routers and mixers use (default: the bound one).
    pub advertise: Option<String>,
    /// HTTP address for /metrics.
    pub http_addr: Option<SocketAddr>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Assigner members (host:port).
    pub assigners: Vec<String>,
    /// Leaf tuning.
    pub leaf: LeafOptions,
    /// Agent tuning.
    pub agent: AgentConfig,
    /// The zone index server to push field hints to.
    pub index: Option<String>,
}

/// Starts a leaf.
pub async fn start_leaf(cfg: LeafRole) -> anyhow::Result<RunningRole> {
    let kv = open_kv(&cfg.data_dir).await?;
    start_leaf_on(cfg, kv).await
}

/// Starts a leaf on an open long-term store; its recovery log and table
/// cache go under `cfg.data_dir`.
pub async fn start_leaf_on(cfg: LeafRole, kv: Arc<dyn KvStore>) -> anyhow::Result<RunningRole> {
    let stores = leaf_stores(&cfg.data_dir, kv)?;
    let spec = danaus_roles::leaf::LeafSpec {
        name: cfg.name.clone(),
        grpc_addr: cfg.grpc_addr,
        advertise: cfg.advertise.clone(),
        assigners: cfg.assigners.clone(),
        leaf: cfg.leaf.clone(),
        agent: cfg.agent.clone(),
        index: cfg.index.clone(),
    };
    let (role, parts) = danaus_roles::leaf::start(spec, stores).await?;
    let metrics = role.metrics.clone();
    with_http(role, cfg.http_addr, metrics, None, Some(parts)).await
}

/// A router (the zone's ingestion front door).
#[derive(Debug, Clone)]
pub struct RouterRole {
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// HTTP address for /metrics.
    pub http_addr: Option<SocketAddr>,
    /// Assigner members.
    pub assigners: Vec<String>,
    /// Zones and their locations.
    pub zones: ZoneMap,
    /// Write quorum, deadlines.
    pub router: RouterConfig,
    /// Where the last zone table is kept across restarts.
    pub state_dir: Option<PathBuf>,
    /// Location of Prometheus series (remote_write on the HTTP port) that
    /// carry no `location` label.
    pub location: String,
    /// Where schema changes go (config mirrors or members); empty: the
    /// zone table.
    pub config: Vec<String>,
}

/// Starts a router.
pub async fn start_router(cfg: RouterRole) -> anyhow::Result<RunningRole> {
    let state = cfg.state_dir.as_deref().map(state_dir).transpose()?;
    let spec = danaus_roles::router::RouterSpec {
        grpc_addr: cfg.grpc_addr,
        assigners: cfg.assigners.clone(),
        zones: cfg.zones.clone(),
        router: cfg.router.clone(),
        config: cfg.config.clone(),
    };
    let (role, parts) = danaus_roles::router::start(spec, state).await?;
    // Prometheus remote_write on the HTTP port, through this router.
    let rx = Arc::new(Receiver::new(Arc::new(RouterStore(parts.front.clone())), cfg.location.clone()));
    let (inner, rx2) = (role.metrics.clone(), rx.clone());
    let metrics: Metrics = Arc::new(move || {
        let (inner, rx) = (inner.clone(), rx2.clone());
        Box::pin(async move {
            let mut t = inner().await;
            remote_write_metrics(&mut t, &rx);
            t
        })
    });
    with_http(role, cfg.http_addr, metrics, Some(remote_write_routes(rx)), None).await
}

/// A zone mixer.
#[derive(Debug, Clone)]
pub struct MixerRole {
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// HTTP address for /metrics.
    pub http_addr: Option<SocketAddr>,
    /// Assigner members.
    pub assigners: Vec<String>,
    /// Mixer tuning.
    pub mixer: MixerConfig,
    /// Queries run at once.
    pub max_concurrent_queries: usize,
    /// Where the last zone table is kept across restarts.
    pub state_dir: Option<PathBuf>,
}

/// Starts a zone mixer.
pub async fn start_mixer(cfg: MixerRole) -> anyhow::Result<RunningRole> {
    let state = cfg.state_dir.as_deref().map(state_dir).transpose()?;
    let spec = danaus_roles::mixer::MixerSpec {
        grpc_addr: cfg.grpc_addr,
        assigners: cfg.assigners.clone(),
        mixer: cfg.mixer.clone(),
        max_concurrent_queries: cfg.max_concurrent_queries,
    };
    let (role, parts) = danaus_roles::mixer::start(spec, state).await?;
    // PromQL on the mixer's HTTP port; series without a location label
    // were given the zone's name by its routers.
    let m = parts.mixer.clone();
    let promql = crate::promql_http::promql_routes(crate::promql_http::PromqlApi::new(
        Arc::new(move || m.engine()),
        parts.table.clone(),
        cfg.mixer.zone.clone(),
        cfg.max_concurrent_queries,
    ));
    let metrics = role.metrics.clone();
    with_http(role, cfg.http_addr, metrics, Some(promql), None).await
}

/// A zone index server.
#[derive(Debug, Clone)]
pub struct IndexRole {
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// HTTP address for /metrics.
    pub http_addr: Option<SocketAddr>,
    /// Tuning.
    pub index: danaus_index::IndexConfig,
    /// The root index to vouch for the zone to, if any.
    pub root: Option<danaus_roles::index::RootLinkSpec>,
}

/// Starts a zone index server.
pub async fn start_index(cfg: IndexRole) -> anyhow::Result<RunningRole> {
    let (role, _) = danaus_roles::index::start(danaus_roles::index::IndexSpec {
        grpc_addr: cfg.grpc_addr,
        index: cfg.index.clone(),
        root: cfg.root.clone(),
    })
    .await?;
    let metrics = role.metrics.clone();
    with_http(role, cfg.http_addr, metrics, None, None).await
}

/// Starts a root index server.
pub async fn start_root_index(grpc_addr: SocketAddr, http_addr: Option<SocketAddr>) -> anyhow::Result<RunningRole> {
    let (role, _) = danaus_roles::index::start_root(danaus_roles::index::RootIndexSpec { grpc_addr }).await?;
    let metrics = role.metrics.clone();
    with_http(role, http_addr, metrics, None, None).await
}

/// A member of the config service's Raft group.
#[derive(Debug, Clone)]
pub struct ConfigServerRole {
    /// Member id.
    pub id: NodeId,
    /// Every member (this one included): id → host:port.
    pub peers: BTreeMap<NodeId, String>,
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// HTTP address for /metrics.
    pub http_addr: Option<SocketAddr>,
    /// Data directory (the Raft log and snapshots).
    pub data_dir: PathBuf,
    /// Raft heartbeat; elections after 5× this.
    pub heartbeat: Duration,
}

/// Starts a config service member.
pub async fn start_config_server(cfg: ConfigServerRole) -> anyhow::Result<RunningRole> {
    let kv = open_kv(&cfg.data_dir).await?;
    let spec = danaus_roles::config_server::ConfigServerSpec {
        id: cfg.id,
        peers: cfg.peers.clone(),
        grpc_addr: cfg.grpc_addr,
        heartbeat: cfg.heartbeat,
    };
    let (role, _) = danaus_roles::config_server::start(spec, kv, Arc::new(SystemClock)).await?;
    let metrics = role.metrics.clone();
    with_http(role, cfg.http_addr, metrics, None, None).await
}

/// A zone's config mirror.
#[derive(Debug, Clone)]
pub struct ConfigMirrorRole {
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// HTTP address for /metrics.
    pub http_addr: Option<SocketAddr>,
    /// The config service's members.
    pub servers: Vec<String>,
    /// Where the last good configuration is kept.
    pub state_dir: PathBuf,
    /// The zone's name.
    pub zone: String,
    /// The zone's assigner members, whose table the mirror syncs.
    pub assigners: Vec<String>,
}

/// Starts a config mirror.
pub async fn start_config_mirror(cfg: ConfigMirrorRole) -> anyhow::Result<RunningRole> {
    let spec = danaus_roles::config_mirror::ConfigMirrorSpec {
        grpc_addr: cfg.grpc_addr,
        servers: cfg.servers.clone(),
        zone: cfg.zone.clone(),
        assigners: cfg.assigners.clone(),
    };
    let (role, _) = danaus_roles::config_mirror::start(spec, state_dir(&cfg.state_dir)?, Arc::new(SystemClock)).await?;
    let metrics = role.metrics.clone();
    with_http(role, cfg.http_addr, metrics, None, None).await
}

/// A root mixer.
#[derive(Debug, Clone)]
pub struct RootMixerRole {
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// HTTP address for /metrics and the PromQL API.
    pub http_addr: Option<SocketAddr>,
    /// The config service's members.
    pub servers: Vec<String>,
    /// Where the last configuration it reached is kept.
    pub state_dir: PathBuf,
    /// Tuning.
    pub root: danaus_mixer::RootConfig,
    /// Queries run at once.
    pub max_concurrent_queries: usize,
}

/// Starts a root mixer, with the PromQL API over every zone on its HTTP
/// port (zones that do not answer become the answer's `warnings`).
pub async fn start_root_mixer(cfg: RootMixerRole) -> anyhow::Result<RunningRole> {
    let spec = danaus_roles::root_mixer::RootMixerSpec {
        grpc_addr: cfg.grpc_addr,
        config_servers: cfg.servers.clone(),
        root: cfg.root.clone(),
        max_concurrent_queries: cfg.max_concurrent_queries,
    };
    let (role, parts) = danaus_roles::root_mixer::start(spec, state_dir(&cfg.state_dir)?).await?;
    let root = parts.root.clone();
    let catalog = danaus_roles::root_mixer::FeedCatalog(parts.feed.clone());
    let promql = crate::promql_http::promql_routes(crate::promql_http::PromqlApi::with_schemas(
        Arc::new(move || root.engine()),
        Arc::new(move |tenant: &str| catalog.tenant_schemas(tenant, danaus_prom::TARGET_SCHEMA)),
        None,
        cfg.max_concurrent_queries,
    ));
    let metrics = role.metrics.clone();
    with_http(role, cfg.http_addr, metrics, Some(promql), None).await
}

/// A member of a zone's evaluator group.
#[derive(Debug, Clone)]
pub struct EvaluatorRole {
    /// Member id.
    pub id: NodeId,
    /// Every member (this one included): id → host:port.
    pub peers: BTreeMap<NodeId, String>,
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// HTTP address for /metrics and the rules API.
    pub http_addr: Option<SocketAddr>,
    /// Data directory (the Raft log and snapshots, the last configuration
    /// and zone tables).
    pub data_dir: PathBuf,
    /// Raft heartbeat; elections after 5× this.
    pub heartbeat: Duration,
    /// The zone's name (and the location of derived series).
    pub zone: String,
    /// The zone's assigner members.
    pub assigners: Vec<String>,
    /// The zone's index server.
    pub index: Option<String>,
    /// The zone's config mirrors (or the config service's members).
    pub config: Vec<String>,
    /// How rules run and where alerts go.
    pub rules: crate::rules::RulesConfig,
}

/// Starts an evaluator member: it follows the configuration through
/// `config`, reads the zone through a mixer and writes derived points
/// through routers of its own, and serves the rules API on its HTTP port.
pub async fn start_evaluator(cfg: EvaluatorRole) -> anyhow::Result<RunningRole> {
    let kv = open_kv(&cfg.data_dir).await?;
    let state = state_dir(&cfg.data_dir.join("state"))?;
    let access = danaus_roles::evaluator::zone_access(
        &cfg.zone,
        cfg.assigners.clone(),
        cfg.index.clone(),
        cfg.config.clone(),
        Some(state.clone()),
    );
    let feed = danaus_config::feed::Feed::new(danaus_config::client::load_saved(&state).unwrap_or_default());
    let receiver = Arc::new(Receiver::new(Arc::new(RouterStore(access.front.clone())), cfg.zone.clone()));
    let spec = danaus_roles::evaluator::EvaluatorSpec {
        group: format!("evaluator-{}", cfg.zone),
        id: cfg.id,
        peers: cfg.peers.clone(),
        grpc_addr: cfg.grpc_addr,
        heartbeat: cfg.heartbeat,
        evaluator: cfg.rules.evaluator(),
    };
    let seams = danaus_roles::evaluator::EvaluatorSeams {
        source: Arc::new(access.source),
        sink: Arc::new(crate::prom_store::PromSink(receiver)),
        notifier: cfg.rules.notifier()?,
        config: feed.subscribe(),
    };
    let (mut role, parts) = danaus_roles::evaluator::start(spec, kv, Arc::new(SystemClock), seams).await?;
    role.spawn(danaus_config::client::follow(cfg.config.clone(), feed.clone(), Some(state)));
    let rules =
        crate::rules_http::rules_routes(crate::rules_http::RulesApi { evaluator: parts.evaluator, config: feed });
    let metrics = role.metrics.clone();
    with_http(role, cfg.http_addr, metrics, Some(rules), None).await
}
