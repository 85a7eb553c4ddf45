//! The cluster builder: N zones, each with its range assigner group, leaves,
//! index server, router and mixer, every role on its own simulated host.
//!
//! A host's init function starts its role the way `danaus <role>` does
//! (the same library calls as `danaus-server`'s `zone.rs`), on the storage
//! seams' simulated devices: an in-memory long-term store and a log device
//! that both lose what was not synced when the host crashes. A restart
//! runs init again on the same disks.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use danaus_assigner::{Assigner, AssignerConfig, TableWatcher, ZoneClient, ZoneTable};
use danaus_index::{IndexConfig, IndexServer};
use danaus_leaf::{Leaf, LeafConfig, LeafOptions};
use danaus_mixer::{MixerConfig, ZoneMixer};
use danaus_node::query::{QueryApi, QueryStats};
use danaus_node::zone_leaf::{AgentConfig, ZoneLeaf};
use danaus_proto::v1 as pb;
use danaus_raft::{BasicNode, GroupConfig, NodeId, RaftGroup, RaftServer};
use danaus_router::zone_map::ZoneRoute;
use danaus_router::{IngestRouter, LeafRouter, RouterConfig, ZoneMap};
use danaus_storage::{Clock, KvStore, MemKv, MemLogDevice, SystemClock};
use madsim::runtime::{Handle, NodeHandle};
use parking_lot::Mutex;

use crate::model::State;
use crate::raft_check::RaftWatch;
use crate::Spec;

/// Every role serves gRPC on this port of its host.
pub const PORT: u16 = 7000;

/// What a host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A member of the zone's Raft group, with the range assigner.
    Assigner(NodeId),
    /// Leaf number `n` (from 1).
    Leaf(usize),
    /// The zone index server (field hints).
    Index,
    /// Ingestion and leaf router number `n` (from 1).
    Router(usize),
    /// The zone mixer.
    Mixer,
}

/// The name of zone `z`; it is also the location its series carry.
pub fn zone_name(z: usize) -> String {
    format!("z{z}")
}

/// The address of `role` in zone `z`: 10.(z+1).0.n, port [`PORT`].
pub fn addr(z: usize, role: Role) -> SocketAddr {
    let n = match role {
        Role::Assigner(id) => id as u8,
        Role::Index => 20,
        Role::Leaf(i) => 100 + i as u8,
        Role::Router(i) => 50 + i as u8,
        Role::Mixer => 60,
    };
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, z as u8 + 1, 0, n)), PORT)
}

/// A host of the cluster.
pub struct Member {
    /// Its zone.
    pub zone: usize,
    /// Its role.
    pub role: Role,
    /// Its name (`z0/leaf-2`).
    pub name: String,
    /// The simulated host.
    pub node: NodeHandle,
    /// Its long-term store, kept across restarts (assigners and leaves).
    pub kv: Option<Arc<MemKv>>,
    /// Its recovery log device (leaves).
    pub log: Option<MemLogDevice>,
    /// How far its clock is off, ns (leaves read time through it).
    pub skew: Arc<AtomicI64>,
}

impl Member {
    /// Its gRPC address.
    pub fn addr(&self) -> SocketAddr {
        addr(self.zone, self.role)
    }

    /// The host's disks were replaced: everything on them is gone.
    pub fn wipe(&self) {
        if let Some(kv) = &self.kv {
            kv.wipe();
        }
        if let Some(log) = &self.log {
            log.wipe();
        }
    }

    /// The host crashed: its disks lose what they had not synced.
    pub fn lose_unsynced(&self) {
        if let Some(kv) = &self.kv {
            kv.crash();
        }
        if let Some(log) = &self.log {
            log.crash();
        }
    }
}

/// A built cluster.
pub struct Cluster {
    /// Its shape.
    pub spec: Spec,
    /// Every host.
    pub members: Vec<Member>,
    /// What the Raft checker sees of every assigner.
    pub raft: Arc<RaftWatch>,
}

impl Cluster {
    /// Creates every host and starts its role.
    pub fn build(handle: &Handle, spec: Spec, state: Arc<Mutex<State>>) -> Self {
        let raft = Arc::new(RaftWatch::new(spec.zones, state.clone()));
        let mut members = Vec::new();
        for z in 0..spec.zones {
            let mut roles: Vec<Role> = (1..=spec.assigners as NodeId).map(Role::Assigner).collect();
            roles.push(Role::Index);
            roles.extend((1..=spec.leaves).map(Role::Leaf));
            roles.extend((1..=spec.routers).map(Role::Router));
            roles.push(Role::Mixer);
            for role in roles {
                let durable = matches!(role, Role::Assigner(_) | Role::Leaf(_));
                let kv = durable.then(|| Arc::new(MemKv::new()));
                let log = matches!(role, Role::Leaf(_)).then(MemLogDevice::new);
                let skew = Arc::new(AtomicI64::new(0));
                let ctx = RoleCtx {
                    spec,
                    zone: z,
                    role,
                    kv: kv.clone(),
                    log: log.clone(),
                    skew: skew.clone(),
                    raft: raft.clone(),
                    state: state.clone(),
                };
                let name = format!("{}/{}", zone_name(z), role_name(role));
                let node = handle
                    .create_node()
                    .name(name.clone())
                    .ip(addr(z, role).ip())
                    .init(move || run_role(ctx.clone()))
                    .build();
                members.push(Member { zone: z, role, name, node, kv, log, skew });
            }
        }
        Self { spec, members, raft }
    }

    /// The members of zone `z`.
    pub fn zone(&self, z: usize) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(move |m| m.zone == z)
    }

    /// The router addresses of every zone (`http://…`), by zone.
    pub fn routers(&self) -> Vec<Vec<String>> {
        (0..self.spec.zones)
            .map(|z| (1..=self.spec.routers).map(|r| format!("http://{}", addr(z, Role::Router(r)))).collect())
            .collect()
    }

    /// The mixer address of zone `z` (`http://…`).
    pub fn mixer(&self, z: usize) -> String {
        format!("http://{}", addr(z, Role::Mixer))
    }

    /// Whether every zone is whole: every leaf registered and every range
    /// with `replication` ready replicas, in the table a member applied.
    pub fn settled(&self) -> bool {
        (0..self.spec.zones).all(|z| {
            self.raft.any_table(z).is_some_and(|t| {
                t.leaves.len() >= self.spec.leaves
                    && !t.ranges.is_empty()
                    && t.ranges.values().all(|r| r.ready().count() >= self.spec.replication as usize)
            })
        })
    }
}

fn role_name(role: Role) -> String {
    match role {
        Role::Assigner(id) => format!("assigner-{id}"),
        Role::Leaf(i) => format!("leaf-{i}"),
        Role::Index => "index".into(),
        Role::Router(i) => format!("router-{i}"),
        Role::Mixer => "mixer".into(),
    }
}

/// What a host's init needs.
#[derive(Clone)]
struct RoleCtx {
    spec: Spec,
    zone: usize,
    role: Role,
    kv: Option<Arc<MemKv>>,
    log: Option<MemLogDevice>,
    skew: Arc<AtomicI64>,
    raft: Arc<RaftWatch>,
    state: Arc<Mutex<State>>,
}

impl RoleCtx {
    fn assigners(&self) -> Vec<String> {
        (1..=self.spec.assigners as NodeId).map(|id| addr(self.zone, Role::Assigner(id)).to_string()).collect()
    }

    fn violation(&self, what: String) {
        self.state.lock().violation(format!("{}/{}: {what}", zone_name(self.zone), role_name(self.role)));
    }
}

/// A leaf's clock: the simulated wall clock, off by the host's skew.
struct SkewedClock(Arc<AtomicI64>);

impl Clock for SkewedClock {
    fn now(&self) -> i64 {
        SystemClock.now().saturating_add(self.0.load(Ordering::Relaxed))
    }
}

fn grpc() -> tonic::transport::Server {
    tonic::transport::Server::builder()
}

/// Runs the host's role until the host is killed. A role that cannot
/// start, or whose server stops, is a violation: nothing in the faults
/// the simulation injects excuses it.
async fn run_role(ctx: RoleCtx) {
    let me = addr(ctx.zone, ctx.role);
    let served = match ctx.role {
        Role::Assigner(id) => return run_assigner(ctx, id).await,
        Role::Leaf(i) => return run_leaf(ctx, i).await,
        Role::Index => {
            let index = IndexServer::new(IndexConfig::default());
            grpc().add_service(index.service()).serve(me).await
        }
        Role::Router(_) => {
            let assigners = ctx.assigners();
            let table = TableWatcher::start(assigners.clone());
            let zone = Arc::new(ZoneClient::new(assigners));
            let leaves = LeafRouter::new(table, zone.clone(), RouterConfig::default());
            let zones = ZoneMap {
                local: zone_name(ctx.zone),
                zones: (0..ctx.spec.zones)
                    .map(|z| ZoneRoute {
                        name: zone_name(z),
                        routers: (1..=ctx.spec.routers).map(|r| addr(z, Role::Router(r)).to_string()).collect(),
                        locations: vec![zone_name(z)],
                    })
                    .collect(),
            };
            let (ingest, schema) = IngestRouter::new(leaves, zones, zone).services();
            grpc().add_service(ingest).add_service(schema).serve(me).await
        }
        Role::Mixer => {
            let table = TableWatcher::start(ctx.assigners());
            let mixer = ZoneMixer::new(
                table,
                MixerConfig {
                    zone: zone_name(ctx.zone),
                    hedge_after: Duration::from_millis(300),
                    index: Some(addr(ctx.zone, Role::Index).to_string()),
                    ..MixerConfig::default()
                },
            );
            let m = mixer.clone();
            let api = QueryApi::with_engines(Arc::new(move || m.engine()), 16, Arc::new(QueryStats::default()));
            grpc()
                .add_service(pb::query_service_server::QueryServiceServer::new(api))
                .add_service(mixer.read_service())
                .serve(me)
                .await
        }
    };
    if let Err(e) = served {
        ctx.violation(format!("the gRPC server stopped: {e}"));
    }
}

async fn run_assigner(ctx: RoleCtx, id: NodeId) {
    let Some(kv) = ctx.kv.clone() else { return };
    let server = RaftServer::new();
    let group = match RaftGroup::<ZoneTable>::start(GroupConfig::new("zone", id), kv as Arc<dyn KvStore>, &server).await
    {
        Ok(g) => Arc::new(g),
        Err(e) => return ctx.violation(format!("the Raft member failed to start: {e}")),
    };
    let assigner = Assigner::new(
        group.clone(),
        AssignerConfig {
            replication: ctx.spec.replication,
            dead_after: Duration::from_secs(3),
            tick: Duration::from_millis(200),
            ..AssignerConfig::default()
        },
    );
    let serving = tokio::spawn(
        grpc().add_service(server.service()).add_service(assigner.service()).serve(addr(ctx.zone, Role::Assigner(id))),
    );
    let members: BTreeMap<NodeId, BasicNode> = (1..=ctx.spec.assigners as NodeId)
        .map(|m| (m, BasicNode::new(addr(ctx.zone, Role::Assigner(m)).to_string())))
        .collect();
    if let Err(e) = group.initialize(members).await {
        return ctx.violation(format!("initialising the Raft group failed: {e}"));
    }
    ctx.raft.register(ctx.zone, id, group);
    tokio::spawn(assigner.run_controller());
    match serving.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => ctx.violation(format!("the gRPC server stopped: {e}")),
        Err(e) => ctx.violation(format!("the gRPC server task failed: {e}")),
    }
}

async fn run_leaf(ctx: RoleCtx, i: usize) {
    let (Some(kv), Some(log)) = (ctx.kv.clone(), ctx.log.clone()) else { return };
    let opened = Leaf::open(LeafConfig {
        kv: kv as Arc<dyn KvStore>,
        log: Arc::new(log),
        clock: Arc::new(SkewedClock(ctx.skew.clone())),
        options: LeafOptions {
            checkpoint_interval: Duration::from_secs(3),
            chunk_max_points: 16,
            ..LeafOptions::default()
        },
    })
    .await;
    let leaf = match opened {
        Ok(l) => l,
        Err(e) => return ctx.violation(format!("the leaf failed to open: {e}")),
    };
    let me = addr(ctx.zone, Role::Leaf(i));
    let assigners = ctx.assigners();
    let zl = ZoneLeaf::new(role_name(ctx.role), me.to_string(), leaf, TableWatcher::start(assigners.clone()));
    let agent = AgentConfig {
        heartbeat: Duration::from_millis(500),
        load_every: Duration::from_secs(5),
        drop_grace: Duration::from_secs(20),
    };
    tokio::spawn(zl.clone().run_agent(assigners, agent));
    tokio::spawn(zl.clone().run_hints(addr(ctx.zone, Role::Index).to_string()));
    if let Err(e) = grpc().add_service(zl.service()).serve(me).await {
        ctx.violation(format!("the gRPC server stopped: {e}"));
    }
}
