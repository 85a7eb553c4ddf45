//! The roles of a distributed zone, each a subcommand of `danaus`:
//! `assigner` (a member of the zone's Raft group and the range assigner),
//! `leaf`, `router` (ingestion and leaf router) and `mixer` (zone mixer).
//! Each serves gRPC on its own address and, if asked, `/metrics` and
//! `/healthz` over HTTP. `danaus dev-cluster` (`dev_cluster`) starts a
//! whole zone of them on loopback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use danaus_assigner::{Assigner, AssignerConfig, TableWatcher, ZoneTable};
use danaus_leaf::{Leaf, LeafConfig, LeafOptions};
use danaus_mixer::{MixerConfig, ZoneMixer};
use danaus_node::query::{QueryApi, QueryStats};
use danaus_node::zone_leaf::{AgentConfig, ZoneLeaf};
use danaus_proto::v1 as pb;
use danaus_raft::{BasicNode, GroupConfig, NodeId, RaftGroup, RaftServer};
use danaus_rocksdb::RocksKv;
use danaus_router::{IngestRouter, LeafRouter, RouterConfig, ZoneMap};
use danaus_storage::{FsLogDevice, KvStore, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http::{
    leaf_metrics, process_metrics, query_metrics, remote_write_metrics, remote_write_routes, router_metrics, Text,
    OPENMETRICS,
};
use crate::prom_store::RouterStore;
use danaus_prom::Receiver;

/// Renders a role's `/metrics`.
type Render = Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>> + Send + Sync>;

/// Why a role cannot serve now, for `/healthz` (`None`: it can).
type Health = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// A role that routes or judges by the zone table cannot serve without
/// one: it never reached an assigner member and had none cached. (An old
/// table is fine: zones keep working while the assigners are away.)
fn table_health(table: &TableWatcher) -> Option<String> {
    (table.current().version == 0).then(|| {
        "no zone table yet: no range assigner member has answered and none was cached; check --assigners".to_owned()
    })
}

/// A running role.
pub struct RunningRole {
    /// Bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound HTTP address, if any.
    pub http_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    leaf: Option<Leaf>,
    zone_leaf: Option<Arc<ZoneLeaf>>,
    raft: Option<Arc<RaftGroup<ZoneTable>>>,
}

impl RunningRole {
    /// The role's leaf, if it is a leaf.
    pub fn leaf(&self) -> Option<&Leaf> {
        self.leaf.as_ref()
    }

    /// The leaf's zone face, if it is a leaf.
    pub fn zone_leaf(&self) -> Option<&Arc<ZoneLeaf>> {
        self.zone_leaf.as_ref()
    }

    /// Stops serving; a leaf checkpoints, a Raft member stops.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown_within(STOP_GRACE).await
    }

    /// Like [`shutdown`](Self::shutdown), but drops requests and streams
    /// still open after `grace` (zero: at once — for a role whose only
    /// clients are in the same process and already stopped).
    pub async fn shutdown_within(self, grace: Duration) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        stop_tasks(self.tasks, grace).await?;
        if let Some(l) = self.leaf {
            l.shutdown().await.context("final checkpoint")?;
        }
        if let Some(r) = self.raft {
            r.shutdown().await;
        }
        Ok(())
    }
}

/// How long a stopping server waits for open streams (a table watch from
/// a process that stays up never ends) before it drops them.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Waits for stopping servers, aborting those still busy after `grace`.
pub(crate) async fn stop_tasks(tasks: Vec<JoinHandle<anyhow::Result<()>>>, grace: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + grace;
    for t in tasks {
        let abort = t.abort_handle();
        match tokio::time::timeout_at(deadline, t).await {
            Ok(r) => r??,
            Err(_) => {
                tracing::debug!("a server still had open streams at shutdown; closing them");
                abort.abort();
            }
        }
    }
    Ok(())
}

async fn serve(
    grpc: tonic::transport::server::Router,
    grpc_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    render: Render,
    health: Health,
    extra_http: Option<axum::Router>,
) -> anyhow::Result<(SocketAddr, Option<SocketAddr>, watch::Sender<bool>, Vec<JoinHandle<anyhow::Result<()>>>)> {
    let listener = TcpListener::bind(grpc_addr).await.with_context(|| format!("binding gRPC to {grpc_addr}"))?;
    let bound = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let mut s1 = stopped.clone();
    let mut tasks = vec![tokio::spawn(async move {
        grpc.serve_with_incoming_shutdown(crate::nodelay(listener), async move {
            let _ = s1.wait_for(|s| *s).await;
        })
        .await
        .context("gRPC server")
    })];
    let mut http_bound = None;
    if let Some(addr) = http_addr {
        let l = TcpListener::bind(addr).await.with_context(|| format!("binding HTTP to {addr}"))?;
        http_bound = Some(l.local_addr()?);
        let app = axum::Router::new()
            .route(
                "/metrics",
                get(move || {
                    let render = render.clone();
                    async move { ([(header::CONTENT_TYPE, OPENMETRICS)], render().await) }
                }),
            )
            .route(
                "/healthz",
                get(move || {
                    let why = health();
                    async move {
                        match why {
                            None => (StatusCode::OK, "ok\n".to_owned()).into_response(),
                            Some(why) => {
                                (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {why}\n")).into_response()
                            }
                        }
                    }
                }),
            )
            .merge(extra_http.unwrap_or_default());
        let mut s2 = stopped;
        tasks.push(tokio::spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = s2.wait_for(|s| *s).await;
                })
                .await
                .context("HTTP server")
        }));
    }
    Ok((bound, http_bound, stop, tasks))
}

/// The zone table cache in a state directory (created if missing).
fn table_cache(state_dir: Option<&std::path::Path>) -> anyhow::Result<Option<PathBuf>> {
    let Some(d) = state_dir else { return Ok(None) };
    std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    Ok(Some(d.join("zone-table.json")))
}

fn grpc_builder() -> tonic::transport::Server {
    tonic::transport::Server::builder().concurrency_limit_per_connection(256)
}

/// Opens (creating) the RocksDB long-term store under `dir/rocksdb`.
pub async fn open_kv(dir: &std::path::Path) -> anyhow::Result<Arc<dyn KvStore>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("rocksdb");
    let kv = tokio::task::spawn_blocking(move || RocksKv::open(&path))
        .await?
        .context("opening the long-term store (is another danaus using this data directory?)")?;
    Ok(Arc::new(kv))
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
    let started = Instant::now();
    let raft = RaftServer::new();
    let mut gc = GroupConfig::new("zone", cfg.id);
    gc.heartbeat = cfg.heartbeat;
    gc.election_timeout = cfg.heartbeat * 5;
    let group = Arc::new(RaftGroup::<ZoneTable>::start(gc, kv, &raft).await.context("starting the zone's Raft group")?);
    let assigner = Assigner::new(group.clone(), cfg.assigner.clone());
    let grpc = grpc_builder().add_service(raft.service()).add_service(assigner.service());
    let a = assigner.clone();
    let render: Render = Arc::new(move || {
        let a = a.clone();
        Box::pin(async move {
            let mut t = Text::default();
            process_metrics(&mut t, started);
            let m = a.group().metrics();
            t.metric("danaus_raft_term", "gauge", "Current Raft term of the zone group.", m.current_term);
            t.metric("danaus_raft_is_leader", "gauge", "1 on the group's leader.", u8::from(a.group().is_leader()));
            t.metric(
                "danaus_raft_last_applied",
                "gauge",
                "Last applied log index.",
                m.last_applied.map_or(0, |l| l.index),
            );
            let v = a.group().read(|t| (t.version, t.ranges.len(), t.leaves.len()));
            t.metric("danaus_zone_table_version", "gauge", "Zone table version applied here.", v.0);
            t.metric("danaus_zone_ranges", "gauge", "Ranges in the zone table.", v.1);
            t.metric("danaus_zone_leaves", "gauge", "Leaves in the zone table.", v.2);
            let s = &a.stats;
            t.counter("danaus_assigner_replicas_added_total", "Replicas placed.", &s.adds);
            t.counter("danaus_assigner_copies_total", "Range history copies finished.", &s.copies);
            t.counter("danaus_assigner_replicas_removed_total", "Replicas removed.", &s.removes);
            t.counter("danaus_assigner_splits_total", "Ranges split.", &s.splits);
            t.counter("danaus_assigner_step_failures_total", "Assigner steps that failed.", &s.failures);
            t.finish()
        })
    });
    let g = group.clone();
    let health: Health = Arc::new(move || {
        let m = g.metrics();
        m.current_leader.is_none().then(|| {
            format!("this member knows no Raft leader (term {}): the zone table cannot change", m.current_term)
        })
    });
    let (grpc_addr, http_addr, stop, mut tasks) =
        serve(grpc, cfg.grpc_addr, cfg.http_addr, render, health, None).await?;
    let members: BTreeMap<NodeId, BasicNode> = cfg.peers.iter().map(|(id, a)| (*id, BasicNode::new(a))).collect();
    group.initialize(members).await.context("initialising the zone's Raft group")?;
    let controller = tokio::spawn(assigner.clone().run_controller());
    let mut s = stop.subscribe();
    tasks.push(tokio::spawn(async move {
        let _ = s.wait_for(|v| *v).await;
        controller.abort();
        Ok(())
    }));
    tracing::info!(id = cfg.id, %grpc_addr, "range assigner member serving");
    Ok(RunningRole { grpc_addr, http_addr, stop, tasks, leaf: None, zone_leaf: None, raft: Some(group) })
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
    let started = Instant::now();
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let log = FsLogDevice::open(cfg.data_dir.join("wal")).context("opening the recovery log directory")?;
    let leaf =
        Leaf::open(LeafConfig { kv, log: Arc::new(log), clock: Arc::new(SystemClock), options: cfg.leaf.clone() })
            .await
            .context("opening the leaf")?;
    let listener = std::net::TcpListener::bind(cfg.grpc_addr).with_context(|| format!("binding {}", cfg.grpc_addr))?;
    let bound = listener.local_addr()?;
    drop(listener);
    let advertise = cfg.advertise.clone().unwrap_or_else(|| bound.to_string());
    let table = TableWatcher::start_cached(cfg.assigners.clone(), Some(cfg.data_dir.join("zone-table.json")));
    let (l, t) = (leaf.clone(), table.clone());
    let health: Health = Arc::new(move || l.unhealthy().or_else(|| table_health(&t)));
    let zl = ZoneLeaf::new(cfg.name.clone(), advertise, leaf.clone(), table);
    let grpc = grpc_builder().add_service(zl.service());
    let (l, z) = (leaf.clone(), zl.clone());
    let render: Render = Arc::new(move || {
        let (l, z) = (l.clone(), z.clone());
        Box::pin(async move {
            let mut t = Text::default();
            process_metrics(&mut t, started);
            let disk = l.disk_bytes().await.unwrap_or(0);
            leaf_metrics(&mut t, std::slice::from_ref(&l), disk);
            let s = &z.stats;
            t.counter(
                "danaus_leaf_wrong_replica_total",
                "Series refused as routed by a stale or wrong range map.",
                &s.wrong_replica,
            );
            t.counter("danaus_leaf_stages_total", "Leaf phases run for mixers.", &s.stages);
            t.counter(
                "danaus_leaf_stages_refused_total",
                "Leaf phases refused: a range asked is not held ready.",
                &s.stages_refused,
            );
            t.counter("danaus_leaf_range_copies_total", "Range histories copied in.", &s.copies);
            t.counter("danaus_leaf_exported_series_total", "Series exported to other leaves.", &s.exported_series);
            t.counter("danaus_leaf_range_drops_total", "Ranges dropped after moving away.", &s.drops);
            t.counter(
                "danaus_leaf_hint_push_failures_total",
                "Field-hint pushes to the index server that failed.",
                &s.hint_push_failures,
            );
            t.finish()
        })
    });
    let (grpc_addr, http_addr, stop, mut tasks) = serve(grpc, bound, cfg.http_addr, render, health, None).await?;
    let agent = tokio::spawn(zl.clone().run_agent(cfg.assigners.clone(), cfg.agent.clone()));
    let hints = cfg.index.clone().map(|i| tokio::spawn(zl.clone().run_hints(i)));
    let mut s = stop.subscribe();
    tasks.push(tokio::spawn(async move {
        let _ = s.wait_for(|v| *v).await;
        agent.abort();
        if let Some(h) = hints {
            h.abort();
        }
        Ok(())
    }));
    tracing::info!(name = %cfg.name, %grpc_addr, "leaf serving");
    Ok(RunningRole { grpc_addr, http_addr, stop, tasks, leaf: Some(leaf), zone_leaf: Some(zl), raft: None })
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
}

/// Starts a router.
pub async fn start_router(cfg: RouterRole) -> anyhow::Result<RunningRole> {
    let started = Instant::now();
    let table = TableWatcher::start_cached(cfg.assigners.clone(), table_cache(cfg.state_dir.as_deref())?);
    let zone = Arc::new(danaus_assigner::ZoneClient::new(cfg.assigners.clone()));
    let t = table.clone();
    let health: Health = Arc::new(move || table_health(&t));
    let leaves = LeafRouter::new(table, zone.clone(), cfg.router.clone());
    let front = IngestRouter::new(leaves.clone(), cfg.zones.clone(), zone);
    let (ingest, schema) = front.services();
    let grpc = grpc_builder().add_service(ingest).add_service(schema);
    // Prometheus remote_write on the HTTP port, through this router.
    let rx = Arc::new(Receiver::new(Arc::new(RouterStore(front.clone())), cfg.location.clone()));
    let stats = leaves.stats.clone();
    let rx_stats = rx.clone();
    let render: Render = Arc::new(move || {
        let (s, rx) = (stats.clone(), rx_stats.clone());
        Box::pin(async move {
            let mut t = Text::default();
            process_metrics(&mut t, started);
            router_metrics(&mut t, &s);
            remote_write_metrics(&mut t, &rx);
            t.finish()
        })
    });
    let (grpc_addr, http_addr, stop, tasks) =
        serve(grpc, cfg.grpc_addr, cfg.http_addr, render, health, Some(remote_write_routes(rx))).await?;
    tracing::info!(%grpc_addr, "router serving");
    Ok(RunningRole { grpc_addr, http_addr, stop, tasks, leaf: None, zone_leaf: None, raft: None })
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
    let started = Instant::now();
    let table = TableWatcher::start_cached(cfg.assigners.clone(), table_cache(cfg.state_dir.as_deref())?);
    let mixer = ZoneMixer::new(table.clone(), cfg.mixer.clone());
    let t = table.clone();
    let health: Health = Arc::new(move || table_health(&t));
    let qstats = Arc::new(QueryStats::default());
    let m = mixer.clone();
    let api = QueryApi::with_engines(Arc::new(move || m.engine()), cfg.max_concurrent_queries, qstats.clone());
    let grpc = grpc_builder()
        .add_service(
            pb::query_service_server::QueryServiceServer::new(api)
                .max_encoding_message_size(danaus_node::MAX_MESSAGE_BYTES),
        )
        .add_service(mixer.read_service());
    let ms = mixer.stats().clone();
    let render: Render = Arc::new(move || {
        let (q, ms) = (qstats.clone(), ms.clone());
        Box::pin(async move {
            let mut t = Text::default();
            process_metrics(&mut t, started);
            query_metrics(&mut t, &q, &ms);
            t.finish()
        })
    });
    // PromQL on the mixer's HTTP port; series without a location label
    // were given the zone's name by its routers.
    let m2 = mixer.clone();
    let promql = crate::promql_http::promql_routes(crate::promql_http::PromqlApi::new(
        Arc::new(move || m2.engine()),
        table,
        cfg.mixer.zone.clone(),
        cfg.max_concurrent_queries,
    ));
    let (grpc_addr, http_addr, stop, tasks) =
        serve(grpc, cfg.grpc_addr, cfg.http_addr, render, health, Some(promql)).await?;
    tracing::info!(%grpc_addr, "zone mixer serving");
    Ok(RunningRole { grpc_addr, http_addr, stop, tasks, leaf: None, zone_leaf: None, raft: None })
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
}

/// Starts a zone index server.
pub async fn start_index(cfg: IndexRole) -> anyhow::Result<RunningRole> {
    let started = Instant::now();
    let index = danaus_index::IndexServer::new(cfg.index.clone());
    let grpc = grpc_builder().add_service(index.service());
    let i = index.clone();
    let render: Render = Arc::new(move || {
        let i = i.clone();
        Box::pin(async move {
            let mut t = Text::default();
            process_metrics(&mut t, started);
            t.counter("danaus_index_pushes_total", "Field-hint pushes received.", &i.stats.pushes);
            t.counter("danaus_index_questions_total", "Pruning questions answered.", &i.stats.questions);
            t.counter("danaus_index_excluded_total", "Leaves excluded in answers.", &i.stats.excluded);
            t.metric("danaus_index_fingerprints", "gauge", "Fingerprints held, over all leaves.", i.fingerprints());
            t.finish()
        })
    });
    // Hints live in memory and leaves push them again: serving is health.
    let health: Health = Arc::new(|| None);
    let (grpc_addr, http_addr, stop, tasks) = serve(grpc, cfg.grpc_addr, cfg.http_addr, render, health, None).await?;
    tracing::info!(%grpc_addr, "zone index server serving");
    Ok(RunningRole { grpc_addr, http_addr, stop, tasks, leaf: None, zone_leaf: None, raft: None })
}
