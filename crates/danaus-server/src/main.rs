//! The `danaus` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use danaus_leaf::LeafOptions;
use danaus_server::standalone::{self, StandaloneConfig};
use danaus_server::zone;

/// mimalloc: the write path allocates and frees many small objects per
/// request; glibc's allocator spent a visible share of ingest time trimming
/// and consolidating (see docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Danaus: a zone-local, planet-scale monitoring system.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every role of one zone in this process, on a data directory.
    Standalone(StandaloneArgs),
    /// Run a member of a zone's Raft group and range assigner.
    Assigner(AssignerArgs),
    /// Run a leaf of a zone.
    Leaf(LeafArgs),
    /// Run a zone's ingestion and leaf router (IngestService, SchemaService).
    Router(RouterArgs),
    /// Run a zone mixer (QueryService over the zone's leaves).
    Mixer(MixerArgs),
    /// Run a zone index server (field hints for pruning).
    Index(IndexArgs),
    /// Run a member of the global config service's Raft group.
    ConfigServer(ConfigServerArgs),
    /// Run a zone's config mirror (the zone's copy of the configuration).
    ConfigMirror(ConfigMirrorArgs),
    /// Run a root mixer (QueryService and the PromQL API over every zone).
    RootMixer(RootMixerArgs),
    /// Run a root index server (zones' field hints, to prune the root's fan-out).
    RootIndex(RootIndexArgs),
    /// Run a member of a zone's evaluator group (recording and alerting rules).
    Evaluator(EvaluatorArgs),
    /// Run a whole zone as separate processes on loopback, until Ctrl-C.
    DevCluster(DevClusterArgs),
}

/// What every Raft group member takes.
#[derive(clap::Args)]
struct MemberArgs {
    /// This member's id (one of --peers).
    #[arg(long)]
    id: u64,
    /// Every member: ID=HOST:PORT,... (the same list on every member).
    #[arg(long, value_delimiter = ',', value_parser = parse_peer)]
    peers: Vec<(u64, String)>,
    /// gRPC listen address (RaftService and the role's service).
    #[arg(long)]
    listen: SocketAddr,
    /// HTTP listen address for /metrics and /healthz.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Data directory (Raft log and snapshots).
    #[arg(long)]
    data_dir: PathBuf,
    /// Raft heartbeat (elections after 5 to 10 times this).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    raft_heartbeat: Duration,
}

#[derive(Parser)]
struct ConfigServerArgs {
    #[command(flatten)]
    member: MemberArgs,
    /// Log filter.
    #[arg(long, default_value = "info", env = "DANAUS_LOG")]
    log: String,
}

#[derive(Parser)]
struct EvaluatorArgs {
    #[command(flatten)]
    member: MemberArgs,
    /// The zone's name (derived series without a location get it).
    #[arg(long, default_value = "zone")]
    zone: String,
    /// The zone's range assigner members (HOST:PORT,...).
    #[arg(long, value_delimiter = ',', required = true)]
    assigners: Vec<String>,
    /// The zone's index server (HOST:PORT), for pruning reads.
    #[arg(long)]
    index: Option<String>,
    /// The zone's config mirrors (HOST:PORT,...): where rules come from
    /// and schema changes go.
    #[arg(long, value_delimiter = ',', required = true)]
    config: Vec<String>,
    #[command(flatten)]
    rules: RulesArgs,
    /// Log filter.
    #[arg(long, default_value = "info", env = "DANAUS_LOG")]
    log: String,
}

#[derive(Parser)]
struct ConfigMirrorArgs {
    /// gRPC listen address (ConfigService, for the zone's roles).
    #[arg(long)]
    listen: SocketAddr,
    /// HTTP listen address for /metrics and /healthz.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// The config service's members (HOST:PORT,...).
    #[arg(long, value_delimiter = ',', required = true)]
    config_servers: Vec<String>,
    /// State directory: the last good configuration is kept here.
    #[arg(long)]
    state_dir: PathBuf,
    /// The zone's name.
    #[arg(long, default_value = "zone")]
    zone: String,
    /// The zone's range assigner members (HOST:PORT,...), whose table the
    /// mirror keeps at the configuration's version; none: only serve.
    #[arg(long, value_delimiter = ',')]
    assigners: Vec<String>,
    /// Log filter.
    #[arg(long, default_value = "info", env = "DANAUS_LOG")]
    log: String,
}

#[derive(Parser)]
struct AssignerArgs {
    #[command(flatten)]
    member: MemberArgs,
    /// Replicas per range.
    #[arg(long, default_value_t = 3)]
    replication: u32,
    /// A leaf silent this long is dead; its replicas are replaced.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    dead_after: Duration,
    /// How often the assigner reconsiders the table.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    tick: Duration,
    /// Split ranges holding more series than this.
    #[arg(long, default_value_t = 250_000)]
    max_series_per_range: u64,
    /// Rebalance only ranges holding at least this many series.
    #[arg(long, default_value_t = 1_000)]
    min_move_series: u64,
    /// Log filter.
    #[arg(long, default_value = "info", env = "DANAUS_LOG")]
    log: String,
}

#[derive(Parser)]
struct LeafArgs {
    /// The leaf's name in the zone (stable across restarts).
    #[arg(long)]
    name: String,
    /// gRPC listen address (LeafService).
    #[arg(long)]
    listen: SocketAddr,
    /// Address routers and mixers reach it at (default: --listen).
    #[arg(long)]
    advertise: Option<String>,
    /// HTTP listen address for /metrics and /healthz.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Data directory.
    #[arg(long)]
    data_dir: PathBuf,
    /// Range assigner members (HOST:PORT,...).
    #[arg(long, value_delimiter = ',')]
    assigners: Vec<String>,
    /// Heartbeat period to the assigners.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    heartbeat: Duration,
    /// How often range loads are recomputed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    load_every: Duration,
    /// How long data of a range that moved away is kept.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    drop_grace: Duration,
    /// Zone index server to push field hints to (HOST:PORT).
    #[arg(long)]
    index: Option<String>,
    /// Points this far behind a series' newest point are still accepted.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    out_of_order_window: Duration,
    /// How often memory is checkpointed into the long-term store.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    checkpoint_interval: Duration,
    /// Log filter.
    #[arg(long, default_value = "info", env = "DANAUS_LOG")]
    log: String,
}

#[derive(Parser)]
struct RouterArgs {
    /// gRPC listen address (IngestService, SchemaService).
    #[arg(long)]
    listen: SocketAddr,
    /// HTTP listen address for /metrics and /healthz.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Range assigner members (HOST:PORT,...).
    #[arg(long, value_delimiter = ',')]
    assigners: Vec<String>,
    /// This zone's name.
    #[arg(long, default_value = "zone")]
    zone: String,
    /// Zone map (YAML: local, zones with routers and locations); default:
    /// this zone owns every location.
    #[arg(long)]
    zone_map: Option<PathBuf>,
    /// Location of Prometheus series (remote_write on --http) that carry
    /// no `location` label; default: the local zone's name.
    #[arg(long)]
    location: Option<String>,
    /// Replicas that must store a write before it is acked: majority, all, one.
    #[arg(long, default_value = "majority", value_parser = danaus_router::Quorum::parse)]
    write_quorum: danaus_router::Quorum,
    /// Give up on a write after this long (UNAVAILABLE; retrying is safe).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    write_deadline: Duration,
    /// Keep the last zone table here, to route through an assigner outage
    /// that outlasts a restart.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Where schema changes go: the zone's config mirrors or the config
    /// service's members (HOST:PORT,...); default: the zone table (a zone
    /// without a global configuration).
    #[arg(long, value_delimiter = ',')]
    config: Vec<String>,
    /// Log filter.
    #[arg(long, default_value = "info", env = "DANAUS_LOG")]
    log: String,
}

#[derive(Parser)]
struct MixerArgs {
    /// gRPC listen address (QueryService).
    #[arg(long)]
    listen: SocketAddr,
    /// HTTP listen address for /metrics and /healthz.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Range assigner members (HOST:PORT,...).
    #[arg(long, value_delimiter = ',')]
    assigners: Vec<String>,
    /// This zone's name, in completeness reports.
    #[arg(long, default_value = "zone")]
    zone: String,
    /// Ask other replicas when a leaf has not answered after this long.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    hedge_after: Duration,
    /// Zone index server for field-hints pruning (HOST:PORT).
    #[arg(long)]
    index: Option<String>,
    /// Queries run at once; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 16)]
    max_concurrent_queries: usize,
    /// Keep the last zone table here, to query through an assigner outage
    /// that outlasts a restart.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Log filter.
    #[arg(long, default_value = "info", env = "DANAUS_LOG")]
    log: String,
}

#[derive(Parser)]
struct RootMixerArgs {
    /// gRPC listen address (QueryService).
    #[arg(long)]
    listen: SocketAddr,
    /// HTTP listen address for the PromQL API, /metrics and /healthz.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// The config service's members (HOST:PORT,...): the zones and
    /// schemas come from the configuration.
    #[arg(long, value_delimiter = ',', required = true)]
    config_servers: Vec<String>,
    /// State directory: the last configuration reached is kept here.
    #[arg(long)]
    state_dir: PathBuf,
    /// A zone that has not answered after this long is reported missing.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    zone_timeout: Duration,
    /// The root index server (HOST:PORT), asked which zones a query can
    /// skip; without it every zone is asked.
    #[arg(long)]
    root_index: Option<String>,
    /// Queries run at once; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 16)]
    max_concurrent_queries: usize,
    /// Log filter.
    #[arg(long, default_value = "info", env = "DANAUS_LOG")]
    log: String,
}

#[derive(Parser)]
struct IndexArgs {
    /// gRPC listen address (IndexService).
    #[arg(long)]
    listen: SocketAddr,
    /// HTTP listen address for /metrics and /healthz.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// A leaf's hints count this long after its last push.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    fresh_for: Duration,
    /// A root index server (HOST:PORT) to push this zone's hints to, so
    /// the root mixer can skip the zone (needs --zone and --assigners).
    #[arg(long, requires_all = ["zone", "assigners"])]
    root_index: Option<String>,
    /// This zone's name, as its `kind: Zone` object has it.
    #[arg(long)]
    zone: Option<String>,
    /// The zone's assigner members (HOST:PORT,...): a claim to the root
    /// index needs the zone table confirmed current.
    #[arg(long, value_delimiter = ',')]
    assigners: Vec<String>,
    /// Log filter.
    #[arg(long, default_value = "info", env = "DANAUS_LOG")]
    log: String,
}

#[derive(Parser)]
struct RootIndexArgs {
    /// gRPC listen address (IndexService).
    #[arg(long)]
    listen: SocketAddr,
    /// HTTP listen address for /metrics and /healthz.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Log filter.
    #[arg(long, default_value = "info", env = "DANAUS_LOG")]
    log: String,
}

#[derive(Parser)]
struct DevClusterArgs {
    #[command(subcommand)]
    action: DevClusterAction,
}

#[derive(Subcommand)]
enum DevClusterAction {
    /// Start the zone and keep it running until Ctrl-C.
    Up {
        /// Leaves to start.
        #[arg(long, default_value_t = 3)]
        leaves: usize,
        /// Replicas per range (default: min(3, leaves)).
        #[arg(long)]
        replication: Option<u32>,
        /// Directory for data and logs.
        #[arg(long, default_value = "./danaus-dev-cluster")]
        dir: PathBuf,
        /// Split ranges holding more series than this.
        #[arg(long, default_value_t = 250_000)]
        max_series_per_range: u64,
        /// Rebalance only ranges holding at least this many series.
        #[arg(long, default_value_t = 1_000)]
        min_move_series: u64,
        /// Zones; more than one adds the global layer (three config
        /// service members, a config mirror per zone, a root mixer).
        #[arg(long, default_value_t = 1)]
        zones: usize,
        /// Members of each zone's evaluator group (0: none; adds the
        /// global layer, where rules are configured).
        #[arg(long, default_value_t = 0)]
        evaluators: usize,
    },
}

/// Parses `ID=HOST:PORT`.
fn parse_peer(s: &str) -> Result<(u64, String), String> {
    let (id, addr) = s.split_once('=').ok_or_else(|| format!("{s:?} is not ID=HOST:PORT"))?;
    let id = id.parse().map_err(|_| format!("{id:?} in {s:?} is not a member id"))?;
    Ok((id, addr.to_owned()))
}

fn init_logs(filter: &str) -> anyhow::Result<()> {
    // openraft narrates every vote and election at info; keep that out
    // unless asked for by name.
    let filter = if filter.contains("openraft") { filter.to_owned() } else { format!("{filter},openraft=warn") };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&filter).context("--log")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    Ok(())
}

/// Runs a role until SIGINT/SIGTERM, printing its addresses first.
fn run_role<F>(log: &str, start: impl FnOnce() -> F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<zone::RunningRole>>,
{
    init_logs(log)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let running = start().await?;
        println!(
            "danaus listening grpc={} http={}",
            running.grpc_addr,
            running.http_addr.map_or_else(|| "-".to_owned(), |a| a.to_string())
        );
        let sig = shutdown_signal().await?;
        tracing::info!(signal = sig, "shutting down");
        running.shutdown().await
    })
}

#[derive(Parser)]
struct StandaloneArgs {
    /// Data directory (created if missing).
    #[arg(long, default_value = "./danaus-data", env = "DANAUS_DATA_DIR")]
    data_dir: PathBuf,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7070", env = "DANAUS_GRPC_ADDR")]
    grpc_addr: SocketAddr,
    /// HTTP listen address (/metrics, /healthz).
    #[arg(long, default_value = "127.0.0.1:9090", env = "DANAUS_HTTP_ADDR")]
    http_addr: SocketAddr,
    /// Points this far behind a series' newest point are still accepted.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    out_of_order_window: Duration,
    /// How long sealed chunks stay in memory.
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    memory_window: Duration,
    /// How often memory is checkpointed into the long-term store.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    checkpoint_interval: Duration,
    /// Delete data older than this (e.g. 30d); default keeps everything.
    #[arg(long, value_parser = parse_duration)]
    retention: Option<Duration>,
    /// Concurrent requests per gRPC connection.
    #[arg(long, default_value_t = 256)]
    max_concurrent_requests: usize,
    /// Queries run at once; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 16)]
    max_concurrent_queries: usize,
    /// Location (zone) of Prometheus series without a `location` label.
    #[arg(long, default_value = "local")]
    location: String,
    /// Leaves to run in the process (each with its own recovery log and
    /// long-term store; the first at the top of the data directory).
    #[arg(long, default_value_t = 1)]
    leaves: usize,
    /// Leaves holding each target range.
    #[arg(long, default_value_t = 1)]
    replication: u32,
    /// Scrape Prometheus/OpenMetrics targets as configured in this file
    /// (Prometheus' scrape_configs format; see docs/prometheus.md).
    #[arg(long)]
    scrape_config: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, default_value = "info", env = "DANAUS_LOG")]
    log: String,
    #[command(flatten)]
    rules: RulesArgs,
}

/// How rules run and where their alerts go.
#[derive(clap::Args, Debug, Clone)]
struct RulesArgs {
    /// A rule group's interval when it names none (Prometheus'
    /// `evaluation_interval`).
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    evaluation_interval: Duration,
    /// An Alertmanager to send alerts to (base URL, e.g.
    /// http://alertmanager:9093); repeat for several. None: alert
    /// transitions are logged.
    #[arg(long = "alertmanager-url")]
    alertmanagers: Vec<String>,
    /// How often firing alerts are sent to Alertmanager again.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    rules_resend_delay: Duration,
    /// The URL users reach Danaus at (`$externalURL` in templates, alerts'
    /// generatorURL).
    #[arg(long, default_value = "")]
    external_url: String,
}

impl RulesArgs {
    fn config(self) -> standalone::RulesConfig {
        standalone::RulesConfig {
            evaluation_interval: self.evaluation_interval,
            alertmanagers: self.alertmanagers,
            resend_delay: self.rules_resend_delay,
            external_url: self.external_url,
        }
    }
}

/// Parses `500ms`, `30s`, `10m`, `2h`, `7d` (or plain seconds) through the
/// project's one duration parser.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    match danaus_model::time::parse_duration_ns(s) {
        Some(ns) => Ok(Duration::from_nanos(ns.unsigned_abs())),
        None => Err(format!("{s:?} is not a duration like 500ms, 30s, 10m, 2h or 7d")),
    }
}

async fn shutdown_signal() -> anyhow::Result<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => { r?; Ok("SIGINT") }
        _ = term.recv() => Ok("SIGTERM"),
    }
}

/// Transparent huge pages off for this process (Linux), as mimalloc does
/// with `MIMALLOC_ALLOW_THP=0`: otherwise the allocator's regions are
/// backed by 2 MiB pages that a store of many small series fills sparsely.
/// Peak RSS of the ingest benchmark was ~15 % lower without them, at the
/// same speed (docs/BENCHMARKS.md). `DANAUS_THP=1` keeps them.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("DANAUS_THP").is_none_or(|v| v != "1") {
        // SAFETY: prctl(PR_SET_THP_DISABLE) takes integer arguments only
        // and touches no memory of ours; failure (an old kernel) is
        // harmless and ignored.
        #[allow(unsafe_code)]
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

fn main() -> anyhow::Result<()> {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Standalone(args) => args,
        Command::Assigner(a) => {
            return run_role(&a.log, || {
                zone::start_assigner(zone::AssignerRole {
                    id: a.member.id,
                    peers: a.member.peers.into_iter().collect(),
                    grpc_addr: a.member.listen,
                    http_addr: a.member.http,
                    data_dir: a.member.data_dir,
                    assigner: danaus_assigner::AssignerConfig {
                        replication: a.replication,
                        policy: danaus_assigner::Policy {
                            max_series_per_range: a.max_series_per_range,
                            min_move_series: a.min_move_series,
                            ..danaus_assigner::Policy::default()
                        },
                        dead_after: a.dead_after,
                        tick: a.tick,
                        ..danaus_assigner::AssignerConfig::default()
                    },
                    heartbeat: a.member.raft_heartbeat,
                })
            })
        }
        Command::Leaf(a) => {
            return run_role(&a.log, || {
                zone::start_leaf(zone::LeafRole {
                    name: a.name,
                    grpc_addr: a.listen,
                    advertise: a.advertise,
                    http_addr: a.http,
                    data_dir: a.data_dir,
                    assigners: a.assigners,
                    leaf: LeafOptions {
                        out_of_order_window: a.out_of_order_window,
                        checkpoint_interval: a.checkpoint_interval,
                        ..LeafOptions::default()
                    },
                    agent: danaus_node::zone_leaf::AgentConfig {
                        heartbeat: a.heartbeat,
                        load_every: a.load_every,
                        drop_grace: a.drop_grace,
                    },
                    index: a.index,
                })
            })
        }
        Command::Router(a) => {
            let zones = match &a.zone_map {
                Some(p) => {
                    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                    danaus_router::ZoneMap::from_yaml(&text).map_err(anyhow::Error::msg)?
                }
                None => danaus_router::ZoneMap::single(&a.zone),
            };
            let location = a.location.unwrap_or_else(|| zones.local.clone());
            return run_role(&a.log, || {
                zone::start_router(zone::RouterRole {
                    location,
                    grpc_addr: a.listen,
                    http_addr: a.http,
                    assigners: a.assigners,
                    zones,
                    router: danaus_router::RouterConfig {
                        quorum: a.write_quorum,
                        deadline: a.write_deadline,
                        ..danaus_router::RouterConfig::default()
                    },
                    state_dir: a.state_dir,
                    config: a.config,
                })
            });
        }
        Command::Mixer(a) => {
            return run_role(&a.log, || {
                zone::start_mixer(zone::MixerRole {
                    grpc_addr: a.listen,
                    http_addr: a.http,
                    assigners: a.assigners,
                    mixer: danaus_mixer::MixerConfig {
                        zone: a.zone,
                        hedge_after: a.hedge_after,
                        index: a.index,
                        ..danaus_mixer::MixerConfig::default()
                    },
                    max_concurrent_queries: a.max_concurrent_queries,
                    state_dir: a.state_dir,
                })
            })
        }
        Command::Index(a) => {
            return run_role(&a.log, || {
                zone::start_index(zone::IndexRole {
                    grpc_addr: a.listen,
                    http_addr: a.http,
                    index: danaus_index::IndexConfig { fresh_for: a.fresh_for },
                    root: a.root_index.map(|root_index| danaus_roles::index::RootLinkSpec {
                        zone: a.zone.unwrap_or_default(),
                        root_index,
                        assigners: a.assigners,
                    }),
                })
            })
        }
        Command::RootIndex(a) => {
            return run_role(&a.log, || zone::start_root_index(a.listen, a.http));
        }
        Command::ConfigServer(a) => {
            return run_role(&a.log, || {
                zone::start_config_server(zone::ConfigServerRole {
                    id: a.member.id,
                    peers: a.member.peers.into_iter().collect(),
                    grpc_addr: a.member.listen,
                    http_addr: a.member.http,
                    data_dir: a.member.data_dir,
                    heartbeat: a.member.raft_heartbeat,
                })
            })
        }
        Command::RootMixer(a) => {
            return run_role(&a.log, || {
                zone::start_root_mixer(zone::RootMixerRole {
                    grpc_addr: a.listen,
                    http_addr: a.http,
                    servers: a.config_servers,
                    state_dir: a.state_dir,
                    root: danaus_mixer::RootConfig {
                        zone_timeout: a.zone_timeout,
                        root_index: a.root_index,
                        ..danaus_mixer::RootConfig::default()
                    },
                    max_concurrent_queries: a.max_concurrent_queries,
                })
            })
        }
        Command::Evaluator(a) => {
            return run_role(&a.log, || {
                zone::start_evaluator(zone::EvaluatorRole {
                    id: a.member.id,
                    peers: a.member.peers.into_iter().collect(),
                    grpc_addr: a.member.listen,
                    http_addr: a.member.http,
                    data_dir: a.member.data_dir,
                    heartbeat: a.member.raft_heartbeat,
                    zone: a.zone,
                    assigners: a.assigners,
                    index: a.index,
                    config: a.config,
                    rules: a.rules.config(),
                })
            })
        }
        Command::ConfigMirror(a) => {
            return run_role(&a.log, || {
                zone::start_config_mirror(zone::ConfigMirrorRole {
                    grpc_addr: a.listen,
                    http_addr: a.http,
                    servers: a.config_servers,
                    state_dir: a.state_dir,
                    zone: a.zone,
                    assigners: a.assigners,
                })
            })
        }
        Command::DevCluster(DevClusterArgs {
            action:
                DevClusterAction::Up { leaves, replication, dir, max_series_per_range, min_move_series, zones, evaluators },
        }) => {
            init_logs("info")?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            return rt.block_on(async move {
                let bin = std::env::current_exe().context("finding the danaus binary")?;
                let mut cfg = danaus_server::dev_cluster::DevClusterConfig::new(bin, &dir, leaves);
                if let Some(r) = replication {
                    cfg.replication = r;
                }
                cfg.max_series_per_range = max_series_per_range;
                cfg.min_move_series = min_move_series;
                anyhow::ensure!(zones >= 1, "--zones must be at least 1");
                cfg.zones = zones;
                cfg.evaluators = evaluators;
                eprintln!("starting {zones} zone(s) of {leaves} leaves in {} (logs there) ...", dir.display());
                let cluster = danaus_server::dev_cluster::DevCluster::start(cfg).await?;
                for p in cluster.procs.values() {
                    println!("{:<16} grpc={} http={}", p.name, p.grpc, p.http);
                }
                if let Some(c) = cluster.config_servers().first() {
                    println!("configuration:      danausctl --addr http://{c} config apply -f DIR");
                }
                println!(
                    "schemas and writes: danausctl --addr http://{} schema apply -f ... / write ...{}",
                    cluster.router(),
                    if zones > 1 || evaluators > 0 {
                        "  (any zone's router: series go to the zone owning their location)"
                    } else {
                        ""
                    }
                );
                match cluster.root_mixer() {
                    Some(root) => {
                        println!("queries:            danausctl --addr http://{root} query ...  (every zone)")
                    }
                    None => println!("queries:            danausctl --addr http://{} query ...", cluster.mixer()),
                }
                let sig = shutdown_signal().await?;
                eprintln!("{sig}: stopping the zone");
                drop(cluster);
                Ok(())
            });
        }
    };
    init_logs(&args.log)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let leaf = LeafOptions {
            out_of_order_window: args.out_of_order_window,
            memory_window: args.memory_window,
            checkpoint_interval: args.checkpoint_interval,
            retention: args.retention,
            ..LeafOptions::default()
        };
        let running = standalone::start(StandaloneConfig {
            data_dir: args.data_dir,
            grpc_addr: args.grpc_addr,
            http_addr: args.http_addr,
            leaf,
            leaves: args.leaves,
            replication: args.replication,
            max_concurrent_requests: args.max_concurrent_requests,
            max_concurrent_queries: args.max_concurrent_queries,
            location: args.location,
            scrape_config: args.scrape_config,
            rules: args.rules.config(),
        })
        .await?;
        // One parseable line for scripts and tests (ports may be ephemeral).
        println!("danaus standalone listening grpc={} http={}", running.grpc_addr, running.http_addr);
        let sig = shutdown_signal().await?;
        tracing::info!(signal = sig, "shutting down: flushing to the long-term store");
        running.shutdown().await
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert!(parse_duration("ten").unwrap_err().contains("not a duration"));
        assert_eq!(parse_duration("1y").unwrap(), Duration::from_secs(365 * 86_400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("5q").unwrap_err().contains("not a duration"));
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
