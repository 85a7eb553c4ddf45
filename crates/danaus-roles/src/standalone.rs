//! A whole zone in one process: the roles of a distributed zone — a range
//! assigner (a one-member Raft group), the config service (another
//! one-member group) and the zone's config mirror (which syncs its schemas
//! into the zone table), leaves, the zone index server — each
//! on its own internal gRPC address, and one front door (the ingestion and
//! leaf routers and the zone mixer) serving SchemaService, IngestService,
//! QueryService, ReadService and ConfigService on the public address. The front door
//! calls the process' leaves in process (no plan, table or batch crosses a
//! loopback socket); everything else talks gRPC as it would across hosts.
//!
//! `danaus standalone` starts it on RocksDB and the file system, the
//! simulation on its simulated devices, through [`start`].

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use danaus_assigner::{AssignerConfig, TableCache, TableWatcher, ZoneTable};
use danaus_leaf::{Leaf, LeafOptions};
use danaus_mixer::{MixerConfig, ZoneMixer};
use danaus_node::query::QueryStats;
use danaus_node::zone_leaf::AgentConfig;
use danaus_router::{RouterConfig, ZoneMap};
use danaus_storage::{Clock, KvStore, SharedStateDir};
use futures::FutureExt as _;
use tokio::sync::watch;

use crate::assigner::{AssignerParts, AssignerSpec};
use crate::config_mirror::ConfigMirrorSpec;
use crate::config_server::{ConfigServerParts, ConfigServerSpec};
use crate::evaluator::{EvaluatorParts, EvaluatorSeams, EvaluatorSpec, ZoneSource};
use crate::index::IndexSpec;
use crate::leaf::{LeafParts, LeafSpec, LeafStores};
use crate::metrics::{leaf_metrics, process_metrics, query_metrics, router_metrics, Text};
use crate::router::RouterParts;
use crate::{
    assigner, config_mirror, config_server, evaluator, index, leaf, mixer, router, table_health, transport, Error,
    Health, Metrics, Result, Running,
};
use danaus_config::client::RemoteWriter;
use danaus_config::service::{GroupWriter, Writer};

/// A zone in one process.
#[derive(Debug, Clone)]
pub struct StandaloneSpec {
    /// The zone's name (completeness reports, the zone map).
    pub zone: String,
    /// Every zone and where it takes writes (default: this one alone), so
    /// the front door forwards series other zones own.
    pub zones: ZoneMap,
    /// A global config service to join (its members, host:port); none:
    /// run a one-member config service in process.
    pub config_servers: Vec<String>,
    /// The public gRPC address (port 0 picks one).
    pub grpc_addr: SocketAddr,
    /// Where the internal roles listen.
    pub internal_ip: IpAddr,
    /// Their first port, the others following it (0: any free ports).
    pub internal_port: u16,
    /// Leaves run in the process (their stores come in [`StandaloneStores`]).
    pub leaves: usize,
    /// Replicas of each target range (at most `leaves`).
    pub replication: u32,
    /// Leaf tuning.
    pub leaf: LeafOptions,
    /// Leaf agent tuning.
    pub agent: AgentConfig,
    /// How soon the assigner calls a silent leaf dead, and its tick.
    pub assigner: AssignerConfig,
    /// Raft heartbeat of the assigner's group.
    pub heartbeat: Duration,
    /// Mixer tuning (its zone name is `zone`).
    pub mixer: MixerConfig,
    /// Concurrent requests served per connection on the public address.
    pub max_concurrent_requests: usize,
    /// Queries run at once; more are refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_queries: usize,
    /// How long to wait for every range to have its replicas ready.
    pub ready_within: Duration,
}

impl StandaloneSpec {
    /// One zone named `zone` with `leaves` leaves and `replication` replicas
    /// per range, with the tuning `danaus standalone` uses.
    pub fn new(zone: impl Into<String>, grpc_addr: SocketAddr, leaves: usize, replication: u32) -> Self {
        let zone = zone.into();
        Self {
            zones: ZoneMap::single(&zone),
            config_servers: Vec::new(),
            zone,
            grpc_addr,
            internal_ip: IpAddr::from([127, 0, 0, 1]),
            internal_port: 0,
            leaves,
            replication,
            leaf: LeafOptions::default(),
            agent: AgentConfig { heartbeat: Duration::from_millis(500), ..AgentConfig::default() },
            assigner: AssignerConfig {
                replication,
                dead_after: Duration::from_secs(10),
                tick: Duration::from_millis(200),
                ..AssignerConfig::default()
            },
            heartbeat: Duration::from_millis(100),
            mixer: MixerConfig::default(),
            max_concurrent_requests: transport::DEFAULT_CONCURRENCY,
            max_concurrent_queries: 64,
            ready_within: Duration::from_secs(60),
        }
    }

    fn internal(&self, n: u16) -> SocketAddr {
        let port = if self.internal_port == 0 { 0 } else { self.internal_port + n };
        SocketAddr::new(self.internal_ip, port)
    }
}

/// What a zone in one process is built on.
pub struct StandaloneStores {
    /// The assigner's and the config service's Raft logs (the first leaf's
    /// store may hold them too: groups prefix their keys).
    pub assigner: Arc<dyn KvStore>,
    /// The clock configuration versions are timed by.
    pub clock: Arc<dyn Clock>,
    /// One per leaf.
    pub leaves: Vec<LeafStores>,
    /// Where the front door keeps its last zone table.
    pub state: SharedStateDir,
    /// Rules: none, or an evaluator (a one-member group on `assigner`'s
    /// store).
    pub rules: Option<StandaloneRules>,
}

/// What standalone's evaluator writes through and hands alerts to.
pub struct StandaloneRules {
    /// The sink derived points go to, given the zone's front door for
    /// writes (the server wraps it in its Prometheus write path).
    pub sink: Box<dyn FnOnce(Arc<danaus_router::IngestRouter>) -> Arc<dyn danaus_evaluator::Sink> + Send>,
    /// Where alert transitions go.
    pub notifier: Arc<dyn danaus_evaluator::Notifier>,
    /// Evaluation tuning.
    pub evaluator: danaus_evaluator::EvaluatorConfig,
    /// The location series without one were given (hidden from rules'
    /// queries, as from the PromQL API).
    pub location: String,
}

/// A zone serving in one process.
pub struct Standalone {
    /// The public address's role: the front door.
    pub front: Running,
    /// The routers behind it.
    pub routers: RouterParts,
    /// The mixer behind it.
    pub mixer: ZoneMixer,
    /// The zone table the front door follows.
    pub table: TableWatcher,
    /// Query counters.
    pub queries: Arc<QueryStats>,
    /// The leaves, in order.
    pub leaves: Vec<(Running, LeafParts)>,
    /// The config service (one member) behind it, unless it joined a
    /// global one.
    pub config: Option<ConfigServerParts>,
    /// The zone's copy of the configuration (its mirror's).
    pub config_feed: danaus_config::feed::Feed,
    /// The evaluator (one member), if rules run.
    pub evaluator: Option<(Running, EvaluatorParts)>,
    config_role: Option<Running>,
    mirror: Running,
    index: Running,
    assigner: (Running, AssignerParts),
}

/// The public front door's gRPC server, before it serves: a caller may add
/// services (gRPC reflection) with `extra`.
pub type Extra = Box<dyn FnOnce(tonic::transport::server::Router) -> tonic::transport::server::Router + Send>;

/// Starts every role, waits until every range has `replication` ready
/// replicas, then serves the front door.
pub async fn start(spec: StandaloneSpec, stores: StandaloneStores, extra: Option<Extra>) -> Result<Standalone> {
    let started = Instant::now();
    if spec.leaves == 0 || stores.leaves.len() != spec.leaves {
        return Err(Error::Config(format!(
            "a zone needs at least one leaf, each with its stores (--leaves {}, stores for {})",
            spec.leaves,
            stores.leaves.len()
        )));
    }
    if spec.replication == 0 || spec.replication as usize > spec.leaves {
        return Err(Error::Config(format!(
            "--replication {} needs between 1 and --leaves ({}) leaves",
            spec.replication, spec.leaves
        )));
    }
    let assigner_addr = spec.internal(0);
    let assigner = assigner::start(
        AssignerSpec {
            id: 1,
            peers: BTreeMap::from([(1, assigner_addr.to_string())]),
            grpc_addr: assigner_addr,
            assigner: AssignerConfig { replication: spec.replication, ..spec.assigner.clone() },
            heartbeat: spec.heartbeat,
        },
        stores.assigner.clone(),
    )
    .await?;
    let assigners = vec![assigner.0.grpc_addr.to_string()];
    // The config service: in process (one member), or a global one.
    let (config_role, config, servers) = if spec.config_servers.is_empty() {
        let config_addr = spec.internal(2);
        let (role, parts) = config_server::start(
            ConfigServerSpec {
                id: 1,
                peers: BTreeMap::from([(1, config_addr.to_string())]),
                grpc_addr: config_addr,
                heartbeat: spec.heartbeat,
            },
            stores.assigner.clone(),
            stores.clock.clone(),
        )
        .await?;
        let servers = vec![role.grpc_addr.to_string()];
        (Some(role), Some(parts), servers)
    } else {
        (None, None, spec.config_servers.clone())
    };
    // The zone's mirror: a copy of the configuration in the data directory,
    // synced into the zone table.
    let (mirror, mirror_parts) = config_mirror::start(
        ConfigMirrorSpec {
            grpc_addr: spec.internal(3),
            servers: servers.clone(),
            zone: spec.zone.clone(),
            assigners: assigners.clone(),
        },
        stores.state.clone(),
        stores.clock.clone(),
    )
    .await?;
    let (index, _) =
        index::start(IndexSpec { grpc_addr: spec.internal(1), index: Default::default(), root: None }).await?;
    let index_addr = index.grpc_addr.to_string();
    let mut leaves = Vec::with_capacity(spec.leaves);
    for (i, st) in stores.leaves.into_iter().enumerate() {
        let l = leaf::start(
            LeafSpec {
                name: format!("leaf-{}", i + 1),
                grpc_addr: spec.internal(4 + i as u16),
                advertise: None,
                assigners: assigners.clone(),
                leaf: spec.leaf.clone(),
                agent: spec.agent.clone(),
                index: Some(index_addr.clone()),
            },
            st,
        )
        .await
        .map_err(|e| Error::start(format!("starting leaf-{}", i + 1), e))?;
        leaves.push(l);
    }
    let (table, routers) = router::build(
        assigners,
        Some(TableCache::new(stores.state, "router-table.json")),
        spec.zones.clone(),
        RouterConfig::default(),
        Some(match &config {
            Some(c) => Arc::new(GroupWriter(c.group.clone())) as Arc<dyn Writer>,
            None => Arc::new(RemoteWriter::new(servers)),
        }),
    );
    let mixer = ZoneMixer::new(
        table.clone(),
        MixerConfig { zone: spec.zone.clone(), index: Some(index_addr), ..spec.mixer.clone() },
    );
    // Writes and leaf phases reach this process' leaves by a call.
    for (r, p) in &leaves {
        routers.leaves.add_local_leaf(r.grpc_addr.to_string(), p.zone_leaf.clone());
        mixer.add_local_leaf(r.grpc_addr.to_string(), p.zone_leaf.clone());
    }
    // Serve once every range has all its replicas ready (a table cached
    // from the last run names the leaves' old addresses).
    let addrs: Vec<(String, String)> =
        leaves.iter().enumerate().map(|(i, (r, _))| (format!("leaf-{}", i + 1), r.grpc_addr.to_string())).collect();
    let ready = |t: &ZoneTable| {
        addrs.iter().all(|(n, a)| t.leaves.get(n).is_some_and(|e| e.addr == *a))
            && !t.ranges.is_empty()
            && t.ranges.values().all(|r| r.ready().count() >= spec.replication as usize)
    };
    let deadline = tokio::time::Instant::now() + spec.ready_within;
    while !ready(&table.current()) {
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Start {
                what: "waiting for the zone".into(),
                message: format!(
                    "not every range had {} ready replicas within {:?}: {:?}",
                    spec.replication,
                    spec.ready_within,
                    table.current().ranges
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Rules: a one-member evaluator group reading through the mixer and
    // writing through the front door.
    let evaluator = match stores.rules {
        Some(r) => {
            let m = mixer.clone();
            let seams = EvaluatorSeams {
                source: Arc::new(ZoneSource {
                    engines: Arc::new(move || m.engine()),
                    table: table.clone(),
                    default_location: Some(r.location.clone()),
                }),
                sink: (r.sink)(routers.front.clone()),
                notifier: r.notifier,
                config: mirror_parts.feed.subscribe(),
            };
            let addr = spec.internal(4 + spec.leaves as u16);
            let ev_spec = EvaluatorSpec {
                group: "evaluator".into(),
                id: 1,
                peers: BTreeMap::from([(1, addr.to_string())]),
                grpc_addr: addr,
                heartbeat: spec.heartbeat,
                evaluator: r.evaluator,
            };
            Some(evaluator::start(ev_spec, stores.assigner.clone(), stores.clock.clone(), seams).await?)
        }
        None => None,
    };

    let listener = transport::bind(spec.grpc_addr).await?;
    let queries = Arc::new(QueryStats::default());
    let (ingest, schema) = routers.front.services();
    let mut grpc = transport::server(spec.max_concurrent_requests)
        .add_service(ingest)
        .add_service(schema)
        .add_service(mixer::query_service(&mixer, spec.max_concurrent_queries, queries.clone()))
        .add_service(mixer.read_service())
        .add_service(mixer.stage_service())
        .add_service(config.as_ref().map_or_else(|| mirror_parts.api.clone(), |c| c.api.clone()).service());
    if let Some((_, ev)) = &evaluator {
        grpc = grpc.add_service(ev.rules.clone().service());
    }
    if let Some(extra) = extra {
        grpc = extra(grpc);
    }
    let leaf_handles: Vec<Leaf> = leaves.iter().map(|(_, p)| p.leaf.clone()).collect();
    let (ls, t) = (leaf_handles.clone(), table.clone());
    let health: Health = Arc::new(move || ls.iter().find_map(Leaf::unhealthy).or_else(|| table_health(&t)));
    let (ls, rs, q, ms) = (leaf_handles, routers.leaves.stats.clone(), queries.clone(), mixer.stats().clone());
    let metrics: Metrics = Arc::new(move || {
        let (ls, rs, q, ms) = (ls.clone(), rs.clone(), q.clone(), ms.clone());
        async move {
            let mut disk = 0;
            for l in &ls {
                disk += l.disk_bytes().await.unwrap_or(0);
            }
            let mut t = Text::default();
            process_metrics(&mut t, started);
            leaf_metrics(&mut t, &ls, disk);
            router_metrics(&mut t, &rs);
            query_metrics(&mut t, &q, &ms);
            t
        }
        .boxed()
    });
    let (stop, stopping) = watch::channel(false);
    let mut front = Running::new(listener.local_addr(), metrics, health, stop);
    front.server = Some(listener.serve(grpc, stopping));
    tracing::info!(
        grpc_addr = %front.grpc_addr,
        zone = %spec.zone,
        leaves = spec.leaves,
        replication = spec.replication,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "zone serving in one process"
    );
    let config_feed = mirror_parts.feed.clone();
    Ok(Standalone {
        front,
        routers,
        mixer,
        table,
        queries,
        leaves,
        config,
        config_feed,
        evaluator,
        config_role,
        mirror,
        index,
        assigner,
    })
}

impl Standalone {
    /// The first leaf.
    pub fn leaf(&self) -> Option<&Leaf> {
        self.leaves.first().map(|(_, p)| &p.leaf)
    }

    /// The in-process config service's member, if the zone runs one.
    pub fn config_group(&self) -> Option<Arc<danaus_raft::RaftGroup<danaus_config::ConfigState>>> {
        self.config.as_ref().map(|c| c.group.clone())
    }

    /// The zone's Raft group member (one member: the assigner's table).
    pub fn group(&self) -> Arc<danaus_raft::RaftGroup<ZoneTable>> {
        self.assigner.1.group.clone()
    }

    /// Waits until the front door's server ends (an error if it failed).
    pub async fn wait(&mut self) -> Result<()> {
        self.front.wait().await
    }

    /// Stops the evaluator, the front door (in-flight requests end), then
    /// the leaves (each checkpoints), the index server and the assigner.
    pub async fn shutdown(self) -> Result<()> {
        // Rules stop first: they read and write through the zone.
        if let Some((e, _)) = self.evaluator {
            e.shutdown_within(Duration::ZERO).await?;
        }
        self.front.shutdown().await?;
        for (l, _) in self.leaves {
            l.shutdown().await?;
        }
        // Their only clients (this process' watchers and leaves) are done:
        // what is left open are table watches that never end by themselves.
        self.index.shutdown_within(Duration::ZERO).await?;
        self.mirror.shutdown_within(Duration::ZERO).await?;
        if let Some(c) = self.config_role {
            c.shutdown_within(Duration::ZERO).await?;
        }
        self.assigner.0.shutdown_within(Duration::ZERO).await?;
        Ok(())
    }
}
