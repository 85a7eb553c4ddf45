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

use danaus_assigner::AssignerConfig;
use danaus_config::ConfigState;
use danaus_index::IndexConfig;
use danaus_leaf::LeafOptions;
use danaus_mixer::MixerConfig;
use danaus_node::zone_leaf::AgentConfig;
use danaus_raft::NodeId;
use danaus_roles::leaf::LeafStores;
use danaus_roles::Running;
use danaus_router::zone_map::ZoneRoute;
use danaus_router::{RouterConfig, ZoneMap};
use danaus_storage::{Clock, KvStore, MemKv, MemLogDevice, MemStateDir, SharedStateDir, SystemClock};
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
    /// The whole zone in one process, as `danaus standalone` runs it: its
    /// front door serves the router's and the mixer's services.
    Standalone,
    /// The zone's config mirror (syncs the configuration into its table).
    Mirror,
    /// Member `n` of the global config service's Raft group (in the
    /// pseudo-zone after the last zone: "global").
    Config(NodeId),
    /// The root mixer (in the "global" pseudo-zone): queries over every
    /// zone, by the zones the configuration names.
    Root,
    /// The root index server (in the "global" pseudo-zone): every zone's
    /// index server vouches for its zone there, and the root mixer skips
    /// zones by it.
    RootIndex,
}

/// Members of the global config group.
pub const CONFIG_MEMBERS: NodeId = 3;

/// The name of zone `z`; it is also the location its series carry.
pub fn zone_name(z: usize) -> String {
    format!("z{z}")
}

/// The addresses of the global config group's members (zone `global` is
/// numbered `spec.zones`).
pub fn config_addrs(spec: Spec) -> Vec<SocketAddr> {
    (1..=CONFIG_MEMBERS).map(|id| addr(spec.zones, Role::Config(id))).collect()
}

/// The address of `role` in zone `z`: 10.(z+1).0.n, port [`PORT`].
pub fn addr(z: usize, role: Role) -> SocketAddr {
    let n = match role {
        Role::Assigner(id) => id as u8,
        Role::Index => 20,
        Role::Leaf(i) => 100 + i as u8,
        Role::Router(i) => 50 + i as u8,
        Role::Mixer => 60,
        Role::Standalone => 70,
        Role::Mirror => 30,
        Role::Config(id) => id as u8,
        Role::Root => 40,
        Role::RootIndex => 41,
    };
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, z as u8 + 1, 0, n)), PORT)
}

/// The disks of a leaf: its long-term store and recovery log device.
#[derive(Clone)]
pub struct LeafDisks {
    /// The long-term store.
    pub kv: Arc<MemKv>,
    /// The recovery log.
    pub log: MemLogDevice,
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
    /// Its Raft log store (an assigner; a standalone host's is its first
    /// leaf's store), kept across restarts.
    pub kv: Option<Arc<MemKv>>,
    /// Its leaves' disks (one for a leaf, `leaves` for a standalone host).
    pub leaves: Vec<LeafDisks>,
    /// Its state directory (the last zone table it saw).
    pub state: MemStateDir,
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
        for d in &self.leaves {
            d.kv.wipe();
            d.log.wipe();
        }
        self.state.wipe();
    }

    /// The host crashed: its disks lose what they had not synced.
    pub fn lose_unsynced(&self) {
        if let Some(kv) = &self.kv {
            kv.crash();
        }
        for d in &self.leaves {
            d.kv.crash();
            d.log.crash();
        }
    }

    /// Whether it runs leaves (whose clocks can be skewed).
    pub fn has_leaves(&self) -> bool {
        !self.leaves.is_empty()
    }

    /// The id of its member of the zone's Raft group, if it has one.
    pub fn raft_id(&self) -> Option<NodeId> {
        match self.role {
            Role::Assigner(id) => Some(id),
            Role::Standalone => Some(1),
            _ => None,
        }
    }

    /// The id of its member of the config group, if it is one.
    pub fn config_id(&self) -> Option<NodeId> {
        match self.role {
            Role::Config(id) => Some(id),
            _ => None,
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
    /// What it sees of the config group's members.
    pub config_raft: Arc<RaftWatch<ConfigState>>,
}

impl Cluster {
    /// Creates every host and starts its role.
    pub fn build(handle: &Handle, spec: Spec, state: Arc<Mutex<State>>) -> Self {
        let raft = Arc::new(RaftWatch::new(spec.zones, state.clone()));
        let config_raft = Arc::new(RaftWatch::with(1, state.clone(), "config", |c: &ConfigState| {
            format!("configuration v{}", c.version)
        }));
        let mut members = Vec::new();
        for z in 0..=spec.zones {
            for role in zone_roles(spec, z) {
                let leaf_disks = match role {
                    Role::Leaf(_) => 1,
                    Role::Standalone => spec.leaves,
                    _ => 0,
                };
                let leaves: Vec<LeafDisks> = (0..leaf_disks)
                    .map(|_| LeafDisks { kv: Arc::new(MemKv::new()), log: MemLogDevice::new() })
                    .collect();
                let kv = match role {
                    Role::Assigner(_) | Role::Config(_) => Some(Arc::new(MemKv::new())),
                    Role::Standalone => leaves.first().map(|d| d.kv.clone()),
                    _ => None,
                };
                let disk = MemStateDir::new();
                let skew = Arc::new(AtomicI64::new(0));
                let ctx = RoleCtx {
                    spec,
                    zone: z,
                    role,
                    kv: kv.clone(),
                    leaves: leaves.clone(),
                    disk: disk.clone(),
                    skew: skew.clone(),
                    raft: raft.clone(),
                    config_raft: config_raft.clone(),
                    state: state.clone(),
                };
                let name = format!("{}/{}", host_zone(spec, z), role_name(role));
                let node = handle
                    .create_node()
                    .name(name.clone())
                    .ip(addr(z, role).ip())
                    .init(move || run_role(ctx.clone()))
                    .build();
                members.push(Member { zone: z, role, name, node, kv, leaves, state: disk, skew });
            }
        }
        Self { spec, members, raft, config_raft }
    }

    /// The members of zone `z`.
    pub fn zone(&self, z: usize) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(move |m| m.zone == z)
    }

    /// The router addresses of every zone (`http://…`), by zone.
    pub fn routers(&self) -> Vec<Vec<String>> {
        (0..self.spec.zones)
            .map(|z| router_addrs(self.spec, z).into_iter().map(|a| format!("http://{a}")).collect())
            .collect()
    }

    /// The mixer address of zone `z` (`http://…`).
    pub fn mixer(&self, z: usize) -> String {
        format!("http://{}", mixer_addr(self.spec, z))
    }

    /// The root mixer's address (`http://…`).
    pub fn root(&self) -> String {
        format!("http://{}", addr(self.spec.zones, Role::Root))
    }

    /// The config members' addresses (`http://…`).
    pub fn config(&self) -> Vec<String> {
        config_addrs(self.spec).iter().map(|a| format!("http://{a}")).collect()
    }

    /// Every zone as a `kind: Zone` object of the configuration: its
    /// location, routers and mixer (what the root mixer queries by).
    pub fn zone_objects(&self) -> Vec<danaus_config::Object> {
        (0..self.spec.zones)
            .map(|z| {
                danaus_config::Object::Zone(danaus_config::ZoneSpec {
                    name: zone_name(z),
                    locations: vec![zone_name(z)],
                    routers: router_addrs(self.spec, z).iter().map(ToString::to_string).collect(),
                    mixers: vec![mixer_addr(self.spec, z).to_string()],
                    index: Vec::new(),
                })
            })
            .collect()
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
        Role::Standalone => "standalone".into(),
        Role::Mirror => "mirror".into(),
        Role::Config(id) => format!("config-{id}"),
        Role::Root => "root-mixer".into(),
        Role::RootIndex => "root-index".into(),
    }
}

/// A host's zone as its name shows it: `z0`, …, or `global`.
fn host_zone(spec: Spec, z: usize) -> String {
    if z == spec.zones {
        "global".into()
    } else {
        zone_name(z)
    }
}

/// The hosts of zone `z`.
fn zone_roles(spec: Spec, z: usize) -> Vec<Role> {
    if z == spec.zones {
        return (1..=CONFIG_MEMBERS).map(Role::Config).chain([Role::Root, Role::RootIndex]).collect();
    }
    if spec.is_standalone(z) {
        return vec![Role::Standalone];
    }
    let mut roles: Vec<Role> = (1..=spec.assigners as NodeId).map(Role::Assigner).collect();
    roles.push(Role::Mirror);
    roles.push(Role::Index);
    roles.extend((1..=spec.leaves).map(Role::Leaf));
    roles.extend((1..=spec.routers).map(Role::Router));
    roles.push(Role::Mixer);
    roles
}

/// Where zone `z` takes writes.
fn router_addrs(spec: Spec, z: usize) -> Vec<SocketAddr> {
    if spec.is_standalone(z) {
        vec![addr(z, Role::Standalone)]
    } else {
        (1..=spec.routers).map(|r| addr(z, Role::Router(r))).collect()
    }
}

/// Where zone `z` answers queries.
fn mixer_addr(spec: Spec, z: usize) -> SocketAddr {
    addr(z, if spec.is_standalone(z) { Role::Standalone } else { Role::Mixer })
}

/// Every zone, where it takes writes and the location its series carry.
fn zone_map(spec: Spec, local: usize) -> ZoneMap {
    ZoneMap {
        local: zone_name(local),
        zones: (0..spec.zones)
            .map(|z| ZoneRoute {
                name: zone_name(z),
                routers: router_addrs(spec, z).iter().map(ToString::to_string).collect(),
                locations: vec![zone_name(z)],
            })
            .collect(),
    }
}

/// What a host's init needs.
#[derive(Clone)]
struct RoleCtx {
    spec: Spec,
    zone: usize,
    role: Role,
    kv: Option<Arc<MemKv>>,
    leaves: Vec<LeafDisks>,
    disk: MemStateDir,
    skew: Arc<AtomicI64>,
    raft: Arc<RaftWatch>,
    config_raft: Arc<RaftWatch<ConfigState>>,
    state: Arc<Mutex<State>>,
}

impl RoleCtx {
    fn assigners(&self) -> Vec<String> {
        (1..=self.spec.assigners as NodeId).map(|id| addr(self.zone, Role::Assigner(id)).to_string()).collect()
    }

    fn violation(&self, what: String) {
        self.state.lock().violation(format!("{}/{}: {what}", host_zone(self.spec, self.zone), role_name(self.role)));
    }

    /// Where schema changes go: the zone's mirror, else any config member.
    fn config_writers(&self) -> Vec<String> {
        std::iter::once(addr(self.zone, Role::Mirror)).chain(config_addrs(self.spec)).map(|a| a.to_string()).collect()
    }

    fn state_dir(&self) -> SharedStateDir {
        Arc::new(self.disk.clone())
    }

    fn leaf_stores(&self, d: &LeafDisks) -> LeafStores {
        LeafStores {
            kv: d.kv.clone() as Arc<dyn KvStore>,
            log: Arc::new(d.log.clone()),
            clock: Arc::new(SkewedClock(self.skew.clone())),
            state: self.state_dir(),
        }
    }
}

/// A leaf's clock: the simulated wall clock, off by the host's skew.
struct SkewedClock(Arc<AtomicI64>);

impl Clock for SkewedClock {
    fn now(&self) -> i64 {
        SystemClock.now().saturating_add(self.0.load(Ordering::Relaxed))
    }
}

/// Leaves flush often and keep short chunks, so checkpoints, flushed reads
/// and the log's truncation all happen within a run.
fn leaf_options() -> LeafOptions {
    LeafOptions { checkpoint_interval: Duration::from_secs(3), chunk_max_points: 16, ..LeafOptions::default() }
}

fn agent() -> AgentConfig {
    AgentConfig {
        heartbeat: Duration::from_millis(500),
        load_every: Duration::from_secs(5),
        drop_grace: Duration::from_secs(20),
    }
}

fn assigner_config(spec: Spec) -> AssignerConfig {
    AssignerConfig {
        replication: spec.replication,
        dead_after: Duration::from_secs(3),
        tick: Duration::from_millis(200),
        ..AssignerConfig::default()
    }
}

fn mixer_config(z: usize, index: SocketAddr) -> MixerConfig {
    MixerConfig {
        zone: zone_name(z),
        hedge_after: Duration::from_millis(300),
        index: Some(index.to_string()),
        ..MixerConfig::default()
    }
}

/// Runs the host's role, as `danaus <role>` starts it (`danaus-roles`), until
/// the host is killed. A role that cannot start, or whose server stops, is
/// a violation: nothing in the faults the simulation injects excuses it.
async fn run_role(ctx: RoleCtx) {
    let me = addr(ctx.zone, ctx.role);
    let started: danaus_roles::Result<Running> = match ctx.role {
        Role::Assigner(id) => {
            let Some(kv) = ctx.kv.clone() else { return };
            let spec = danaus_roles::assigner::AssignerSpec {
                id,
                peers: (1..=ctx.spec.assigners as NodeId)
                    .map(|m| (m, addr(ctx.zone, Role::Assigner(m)).to_string()))
                    .collect::<BTreeMap<_, _>>(),
                grpc_addr: me,
                assigner: assigner_config(ctx.spec),
                heartbeat: Duration::from_millis(100),
            };
            danaus_roles::assigner::start(spec, kv).await.map(|(r, p)| {
                ctx.raft.register(ctx.zone, id, p.group);
                r
            })
        }
        Role::Leaf(_) => {
            let Some(d) = ctx.leaves.first() else { return };
            let spec = danaus_roles::leaf::LeafSpec {
                name: role_name(ctx.role),
                grpc_addr: me,
                advertise: None,
                assigners: ctx.assigners(),
                leaf: leaf_options(),
                agent: agent(),
                index: Some(addr(ctx.zone, Role::Index).to_string()),
            };
            danaus_roles::leaf::start(spec, ctx.leaf_stores(d)).await.map(|(r, _)| r)
        }
        Role::Index => {
            let root = danaus_roles::index::RootLinkSpec {
                zone: zone_name(ctx.zone),
                root_index: addr(ctx.spec.zones, Role::RootIndex).to_string(),
                assigners: ctx.assigners(),
            };
            let spec =
                danaus_roles::index::IndexSpec { grpc_addr: me, index: IndexConfig::default(), root: Some(root) };
            danaus_roles::index::start(spec).await.map(|(r, _)| r)
        }
        Role::Router(_) => {
            let spec = danaus_roles::router::RouterSpec {
                grpc_addr: me,
                assigners: ctx.assigners(),
                zones: zone_map(ctx.spec, ctx.zone),
                router: RouterConfig::default(),
                config: ctx.config_writers(),
            };
            danaus_roles::router::start(spec, Some(ctx.state_dir())).await.map(|(r, _)| r)
        }
        Role::Mixer => {
            let spec = danaus_roles::mixer::MixerSpec {
                grpc_addr: me,
                assigners: ctx.assigners(),
                mixer: mixer_config(ctx.zone, addr(ctx.zone, Role::Index)),
                max_concurrent_queries: 16,
            };
            danaus_roles::mixer::start(spec, Some(ctx.state_dir())).await.map(|(r, _)| r)
        }
        Role::Standalone => return run_standalone(ctx, me).await,
        Role::Mirror => {
            let spec = danaus_roles::config_mirror::ConfigMirrorSpec {
                grpc_addr: me,
                servers: config_addrs(ctx.spec).iter().map(ToString::to_string).collect(),
                zone: zone_name(ctx.zone),
                assigners: ctx.assigners(),
            };
            danaus_roles::config_mirror::start(spec, ctx.state_dir(), Arc::new(SystemClock)).await.map(|(r, _)| r)
        }
        Role::Root => {
            let spec = danaus_roles::root_mixer::RootMixerSpec {
                grpc_addr: me,
                config_servers: config_addrs(ctx.spec).iter().map(ToString::to_string).collect(),
                root: danaus_mixer::RootConfig {
                    zone_timeout: Duration::from_secs(2),
                    root_index: Some(addr(ctx.spec.zones, Role::RootIndex).to_string()),
                    ..Default::default()
                },
                max_concurrent_queries: 16,
            };
            danaus_roles::root_mixer::start(spec, ctx.state_dir()).await.map(|(r, _)| r)
        }
        Role::RootIndex => {
            danaus_roles::index::start_root(danaus_roles::index::RootIndexSpec { grpc_addr: me }).await.map(|(r, _)| r)
        }
        Role::Config(id) => {
            let Some(kv) = ctx.kv.clone() else { return };
            let spec = danaus_roles::config_server::ConfigServerSpec {
                id,
                peers: (1..=CONFIG_MEMBERS).map(|m| (m, addr(ctx.zone, Role::Config(m)).to_string())).collect(),
                grpc_addr: me,
                heartbeat: Duration::from_millis(100),
            };
            danaus_roles::config_server::start(spec, kv, Arc::new(SystemClock)).await.map(|(r, p)| {
                ctx.config_raft.register(0, id, p.group);
                r
            })
        }
    };
    match started {
        Ok(mut running) => {
            if let Err(e) = running.wait().await {
                ctx.violation(format!("the gRPC server stopped: {e}"));
            }
        }
        Err(e) => ctx.violation(format!("the role failed to start: {e}")),
    }
}

/// A standalone host: the zone's roles in one process, internal ones on
/// ports after [`PORT`], the front door on [`PORT`].
async fn run_standalone(ctx: RoleCtx, me: SocketAddr) {
    use danaus_roles::standalone::{StandaloneSpec, StandaloneStores};
    let Some(kv) = ctx.kv.clone() else { return };
    let mut spec = StandaloneSpec::new(zone_name(ctx.zone), me, ctx.spec.leaves, ctx.spec.replication);
    spec.internal_ip = me.ip();
    spec.internal_port = PORT + 1;
    spec.leaf = leaf_options();
    spec.agent = agent();
    spec.assigner = assigner_config(ctx.spec);
    spec.mixer = mixer_config(ctx.zone, me);
    spec.max_concurrent_queries = 16;
    spec.zones = zone_map(ctx.spec, ctx.zone);
    spec.config_servers = config_addrs(ctx.spec).iter().map(ToString::to_string).collect();
    let stores = StandaloneStores {
        assigner: kv as Arc<dyn KvStore>,
        clock: Arc::new(SystemClock),
        leaves: ctx.leaves.iter().map(|d| ctx.leaf_stores(d)).collect(),
        state: ctx.state_dir(),
        // The simulation's evaluators are a later step (docs/ARCHITECTURE.md).
        rules: None,
    };
    let (raft, zone) = (ctx.raft.clone(), ctx.zone);
    match danaus_roles::standalone::start(spec, stores, None).await {
        Ok(mut s) => {
            raft.register(zone, 1, s.group());
            if let Err(e) = s.wait().await {
                ctx.violation(format!("the gRPC server stopped: {e}"));
            }
        }
        Err(e) => ctx.violation(format!("the zone failed to start: {e}")),
    }
}
