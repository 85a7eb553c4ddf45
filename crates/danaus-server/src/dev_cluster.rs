//! `danaus dev-cluster`: a whole zone as separate processes on loopback —
//! three range assigner members, N leaves, a router, a mixer and an index
//! server — for development and for the end-to-end tests, which kill and
//! restart its processes.
//!
//! With more than one zone it adds the global layer: three config service
//! members, a config mirror per zone (its router applies schemas through
//! it), a root index server (each zone's index server vouches for its
//! zone there) and a root mixer; zone `zN`'s processes are named `zN-router`,
//! `zN-leaf-1`, … and it owns the locations `zN` and `zN-*`. Once every
//! zone has settled, the zones are written into the configuration as
//! `kind: Zone` objects (routers, mixers, locations), which the root mixer
//! queries by. With `evaluators`, each zone also runs an evaluator group
//! (`zN-evaluator-1`, …) following its config mirror.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use danaus_assigner::ZoneTable;
use danaus_proto::v1 as pb;

/// What to start.
#[derive(Debug, Clone)]
pub struct DevClusterConfig {
    /// The `danaus` binary.
    pub bin: PathBuf,
    /// Directory for data and logs (one subdirectory per process).
    pub dir: PathBuf,
    /// Leaves to start.
    pub leaves: usize,
    /// Range assigner members.
    pub assigners: usize,
    /// Replicas per range.
    pub replication: u32,
    /// Split ranges holding more series than this.
    pub max_series_per_range: u64,
    /// Rebalance only ranges holding at least this many series.
    pub min_move_series: u64,
    /// Extra arguments for every leaf.
    pub leaf_args: Vec<String>,
    /// Zones (each with `leaves` leaves); more than one adds the global
    /// layer.
    pub zones: usize,
    /// Members of each zone's evaluator group (0: none); evaluators take
    /// their rules from the configuration, so they add the global layer.
    pub evaluators: usize,
    /// Extra arguments for every evaluator (`--alertmanager-url`, …).
    pub evaluator_args: Vec<String>,
}

impl DevClusterConfig {
    /// Defaults: 3 assigners, replication min(3, leaves).
    pub fn new(bin: impl Into<PathBuf>, dir: impl Into<PathBuf>, leaves: usize) -> Self {
        Self {
            bin: bin.into(),
            dir: dir.into(),
            leaves,
            assigners: 3,
            replication: leaves.clamp(1, 3) as u32,
            max_series_per_range: 250_000,
            min_move_series: 1_000,
            leaf_args: Vec::new(),
            zones: 1,
            evaluators: 0,
            evaluator_args: Vec::new(),
        }
    }

    fn global(&self) -> bool {
        self.zones > 1 || self.evaluators > 0
    }

    /// The name of zone `z` (from 1): `zone` alone, `zN` among several.
    pub fn zone_name(&self, z: usize) -> String {
        if self.global() {
            format!("z{z}")
        } else {
            "zone".into()
        }
    }

    /// The name of zone `z`'s process `role` (`router`, `leaf-2`, …).
    pub fn proc_name(&self, z: usize, role: &str) -> String {
        if self.global() {
            format!("z{z}-{role}")
        } else {
            role.to_owned()
        }
    }
}

/// One process of the cluster.
#[derive(Debug)]
pub struct Proc {
    /// Its name (`assigner-1`, `leaf-2`, `router`, `mixer`).
    pub name: String,
    /// Its gRPC address.
    pub grpc: String,
    /// Its HTTP address (/metrics).
    pub http: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

/// A running development zone.
#[derive(Debug)]
pub struct DevCluster {
    cfg: DevClusterConfig,
    /// Its processes by name.
    pub procs: BTreeMap<String, Proc>,
}

/// A process of the cluster exited while it was expected to run.
#[derive(Debug)]
pub struct Exited {
    /// The process.
    pub name: String,
    /// How it exited.
    pub status: String,
    /// The first line of its log that starts with `Error` or `error`.
    pub why: String,
}

impl std::fmt::Display for Exited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} exited ({}): {}", self.name, self.status, self.why)
    }
}

impl std::error::Error for Exited {}

/// A free loopback port, never one this process handed out before: the
/// kernel may give a just-released port again, and two processes of one
/// cluster told the same port make one of them fail to start.
fn free_port() -> anyhow::Result<String> {
    static GIVEN: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());
    for _ in 0..100 {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = l.local_addr()?;
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.insert(addr.port()) {
            return Ok(addr.to_string());
        }
    }
    anyhow::bail!("no loopback port this process has not handed out already")
}

impl DevCluster {
    /// Starts every process and waits until each range has its replicas.
    ///
    /// Ports are picked free and handed to the processes, so another
    /// program may take one in between; a process that exits while the
    /// zone starts fails the start with its error. When the directory held
    /// no cluster yet (no subdirectory: its processes' state lives in
    /// theirs; a caller's own files may be there), the start is then tried
    /// again on new ports, up to three times, after removing what the
    /// failed attempt created.
    pub async fn start(cfg: DevClusterConfig) -> anyhow::Result<Self> {
        let before: BTreeSet<std::ffi::OsString> = match std::fs::read_dir(&cfg.dir) {
            Ok(d) => d.flatten().map(|e| e.file_name()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", cfg.dir.display())),
        };
        let fresh = before.iter().all(|n| !cfg.dir.join(n).is_dir());
        let mut attempt = 1;
        loop {
            match Self::start_once(cfg.clone()).await {
                Err(e) if fresh && attempt < 3 && e.downcast_ref::<Exited>().is_some() => {
                    eprintln!("dev cluster: {e:#}; starting again on new ports");
                    for entry in std::fs::read_dir(&cfg.dir)?.flatten() {
                        if before.contains(&entry.file_name()) {
                            continue;
                        }
                        let p = entry.path();
                        let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                    }
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    async fn start_once(cfg: DevClusterConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&cfg.dir).with_context(|| format!("creating {}", cfg.dir.display()))?;
        let mut procs = BTreeMap::new();
        let dir = |n: &str| cfg.dir.join(n).display().to_string();
        let mut add = |name: String, grpc: String, http: String, args: Vec<String>| {
            let log = cfg.dir.join(format!("{name}.log"));
            procs.insert(name.clone(), Proc { name, grpc, http, args, log, child: None });
        };
        // The global layer: three config service members and a root mixer.
        let mut config_list = String::new();
        let mut root_index = String::new();
        if cfg.global() {
            let (members, list, peers) = raft_group(3)?;
            config_list = list;
            for (i, grpc, http) in members {
                let name = format!("config-{i}");
                let args = strings(&[
                    "config-server",
                    "--id",
                    &i.to_string(),
                    "--peers",
                    &peers,
                    "--listen",
                    &grpc,
                    "--http",
                    &http,
                    "--data-dir",
                    &dir(&name),
                ]);
                add(name, grpc, http, args);
            }
            let (grpc, http) = (free_port()?, free_port()?);
            root_index = grpc.clone();
            add(
                "root-index".into(),
                grpc.clone(),
                http.clone(),
                strings(&["root-index", "--listen", &grpc, "--http", &http]),
            );
            let (grpc, http) = (free_port()?, free_port()?);
            let args = strings(&[
                "root-mixer",
                "--listen",
                &grpc,
                "--http",
                &http,
                "--config-servers",
                &config_list,
                "--state-dir",
                &dir("root-mixer"),
                "--zone-timeout",
                "10s",
                "--root-index",
                &root_index,
            ]);
            add("root-mixer".into(), grpc, http, args);
        }
        // Routers first: every zone's map names every zone's router.
        let routers: Vec<(String, String)> =
            (1..=cfg.zones).map(|_| Ok((free_port()?, free_port()?))).collect::<anyhow::Result<_>>()?;
        for z in 1..=cfg.zones {
            let name = |role: &str| cfg.proc_name(z, role);
            let zone = cfg.zone_name(z);
            let (assigners, assigner_list, peers) = raft_group(cfg.assigners)?;
            for (i, grpc, http) in assigners {
                let n = name(&format!("assigner-{i}"));
                let args = strings(&[
                    "assigner",
                    "--id",
                    &i.to_string(),
                    "--peers",
                    &peers,
                    "--listen",
                    &grpc,
                    "--http",
                    &http,
                    "--data-dir",
                    &dir(&n),
                    "--replication",
                    &cfg.replication.to_string(),
                    "--dead-after",
                    "3s",
                    "--tick",
                    "200ms",
                    "--max-series-per-range",
                    &cfg.max_series_per_range.to_string(),
                    "--min-move-series",
                    &cfg.min_move_series.to_string(),
                ]);
                add(n, grpc, http, args);
            }
            let (index_grpc, index_http) = (free_port()?, free_port()?);
            for i in 1..=cfg.leaves {
                let p = leaf_proc(&cfg, &name(&format!("leaf-{i}")), &assigner_list, &index_grpc)?;
                add(p.name, p.grpc, p.http, p.args);
            }
            let mut args = strings(&["index", "--listen", &index_grpc, "--http", &index_http]);
            if cfg.global() {
                args.extend(strings(&["--root-index", &root_index, "--zone", &zone, "--assigners", &assigner_list]));
            }
            add(name("index"), index_grpc.clone(), index_http.clone(), args);
            let (grpc, http) = routers[z - 1].clone();
            let mut args = strings(&[
                "router",
                "--listen",
                &grpc,
                "--http",
                &http,
                "--assigners",
                &assigner_list,
                "--state-dir",
                &dir(&name("router")),
                "--zone",
                &zone,
            ]);
            let mut mirror = String::new();
            if cfg.global() {
                let (mirror_grpc, mirror_http) = (free_port()?, free_port()?);
                mirror = mirror_grpc.clone();
                let map = cfg.dir.join(format!("{}.yaml", name("zone-map")));
                std::fs::write(&map, zone_map(&cfg, z, &routers))
                    .with_context(|| format!("writing {}", map.display()))?;
                args.extend(strings(&["--config", &mirror_grpc, "--zone-map", &map.display().to_string()]));
                let margs = strings(&[
                    "config-mirror",
                    "--listen",
                    &mirror_grpc,
                    "--http",
                    &mirror_http,
                    "--config-servers",
                    &config_list,
                    "--state-dir",
                    &dir(&name("mirror")),
                    "--zone",
                    &zone,
                    "--assigners",
                    &assigner_list,
                ]);
                add(name("mirror"), mirror_grpc, mirror_http, margs);
            }
            add(name("router"), grpc, http, args);
            let (grpc, http) = (free_port()?, free_port()?);
            let args = strings(&[
                "mixer",
                "--listen",
                &grpc,
                "--http",
                &http,
                "--assigners",
                &assigner_list,
                "--state-dir",
                &dir(&name("mixer")),
                "--hedge-after",
                "300ms",
                "--index",
                &index_grpc,
                "--zone",
                &zone,
            ]);
            add(name("mixer"), grpc, http, args);
            if cfg.evaluators > 0 {
                let (members, _, peers) = raft_group(cfg.evaluators)?;
                for (i, grpc, http) in members {
                    let n = name(&format!("evaluator-{i}"));
                    let mut args = strings(&[
                        "evaluator",
                        "--id",
                        &i.to_string(),
                        "--peers",
                        &peers,
                        "--listen",
                        &grpc,
                        "--http",
                        &http,
                        "--data-dir",
                        &dir(&n),
                        "--zone",
                        &zone,
                        "--assigners",
                        &assigner_list,
                        "--index",
                        &index_grpc,
                        "--config",
                        &mirror,
                    ]);
                    args.extend(cfg.evaluator_args.iter().cloned());
                    add(n, grpc, http, args);
                }
            }
        }
        let mut c = Self { cfg, procs };
        let names: Vec<String> = c.procs.keys().cloned().collect();
        for n in &names {
            c.spawn(n)?;
        }
        c.wait_settled(Duration::from_secs(180)).await?;
        if c.cfg.global() {
            c.configure_zones(Duration::from_secs(60)).await?;
        }
        Ok(c)
    }

    /// Writes every zone into the configuration and waits until the root
    /// mixer knows them all.
    async fn configure_zones(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let zones: Vec<danaus_config::Object> = (1..=self.cfg.zones)
            .map(|z| {
                let zone = self.cfg.zone_name(z);
                danaus_config::Object::Zone(danaus_config::ZoneSpec {
                    locations: vec![zone.clone(), format!("{zone}-*")],
                    routers: vec![self.procs[&self.cfg.proc_name(z, "router")].grpc.clone()],
                    mixers: vec![self.procs[&self.cfg.proc_name(z, "mixer")].grpc.clone()],
                    index: vec![self.procs[&self.cfg.proc_name(z, "index")].grpc.clone()],
                    name: zone,
                })
            })
            .collect();
        let req = pb::ApplyConfigRequest {
            objects_json: serde_json::to_vec(&zones)?,
            author: "danaus dev-cluster".into(),
            message: "the dev cluster's zones".into(),
            ..Default::default()
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = anyhow::anyhow!("no config member answered");
        'apply: loop {
            for a in self.config_servers() {
                let mut r = tonic::Request::new(req.clone());
                r.set_timeout(Duration::from_secs(5));
                match pb::config_service_client::ConfigServiceClient::connect(format!("http://{a}")).await {
                    Ok(mut c) => match c.apply(r).await {
                        Ok(_) => break 'apply,
                        Err(s) => last = anyhow::anyhow!("config member {a}: {}", s.message()),
                    },
                    Err(e) => last = anyhow::anyhow!("config member {a}: {e}"),
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(last.context("writing the zones into the configuration"));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let root = self.procs["root-mixer"].http.clone();
        while metric(&root, "danaus_root_zones").await.unwrap_or(0.0) < self.cfg.zones as f64 {
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("the root mixer did not learn the zones within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// Starts one more leaf; returns its name.
    pub fn add_leaf(&mut self) -> anyhow::Result<String> {
        let n = self.leaves().len() + 1;
        let list = self.assigners().join(",");
        let index = self.procs[&self.cfg.proc_name(1, "index")].grpc.clone();
        let p = leaf_proc(&self.cfg, &self.cfg.proc_name(1, &format!("leaf-{n}")), &list, &index)?;
        let name = p.name.clone();
        self.procs.insert(name.clone(), p);
        self.spawn(&name)?;
        Ok(name)
    }

    fn spawn(&mut self, name: &str) -> anyhow::Result<()> {
        let bin = self.cfg.bin.clone();
        let p = self.procs.get_mut(name).with_context(|| format!("no process {name}"))?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&p.log)?;
        let child = Command::new(&bin)
            .args(&p.args)
            .env("DANAUS_LOG", std::env::var("DANAUS_DEV_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {} ({})", p.name, bin.display()))?;
        p.child = Some(child);
        Ok(())
    }

    /// The router's gRPC address (zone 1's).
    pub fn router(&self) -> &str {
        self.zone_router(1)
    }

    /// The mixer's gRPC address (zone 1's).
    pub fn mixer(&self) -> &str {
        self.zone_mixer(1)
    }

    /// Zone `z`'s router's gRPC address.
    pub fn zone_router(&self, z: usize) -> &str {
        &self.procs[&self.cfg.proc_name(z, "router")].grpc
    }

    /// Zone `z`'s mixer's gRPC address.
    pub fn zone_mixer(&self, z: usize) -> &str {
        &self.procs[&self.cfg.proc_name(z, "mixer")].grpc
    }

    /// The root mixer's gRPC address (with more than one zone).
    pub fn root_mixer(&self) -> Option<&str> {
        self.procs.get("root-mixer").map(|p| p.grpc.as_str())
    }

    /// The root index server's gRPC address (several zones only).
    pub fn root_index(&self) -> Option<&str> {
        self.procs.get("root-index").map(|p| p.grpc.as_str())
    }

    /// The config service's member addresses (with more than one zone).
    pub fn config_servers(&self) -> Vec<String> {
        self.procs.values().filter(|p| p.name.starts_with("config-")).map(|p| p.grpc.clone()).collect()
    }

    /// Names of the leaves (zone 1's).
    pub fn leaves(&self) -> Vec<String> {
        self.zone_leaves(1)
    }

    /// Names of zone `z`'s leaves.
    pub fn zone_leaves(&self, z: usize) -> Vec<String> {
        let prefix = self.cfg.proc_name(z, "leaf-");
        self.procs.keys().filter(|n| n.starts_with(&prefix)).cloned().collect()
    }

    /// Assigner member addresses (zone 1's).
    pub fn assigners(&self) -> Vec<String> {
        self.zone_assigners(1)
    }

    /// Zone `z`'s assigner member addresses.
    pub fn zone_assigners(&self, z: usize) -> Vec<String> {
        let prefix = self.cfg.proc_name(z, "assigner-");
        self.procs.values().filter(|p| p.name.starts_with(&prefix)).map(|p| p.grpc.clone()).collect()
    }

    /// Kills a process with SIGKILL (no shutdown, nothing flushed).
    pub fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let p = self.procs.get_mut(name).with_context(|| format!("no process {name}"))?;
        if let Some(mut c) = p.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// Stops a process with SIGTERM and waits for it.
    pub fn stop(&mut self, name: &str) -> anyhow::Result<()> {
        let p = self.procs.get_mut(name).with_context(|| format!("no process {name}"))?;
        if let Some(mut c) = p.child.take() {
            let pid = c.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            c.wait()?;
        }
        Ok(())
    }

    /// Starts a stopped or killed process again, on the same addresses
    /// and data directory.
    pub fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        self.spawn(name)
    }

    /// The zone table as the first assigner member that answers has it
    /// (zone 1's).
    pub async fn table(&self) -> anyhow::Result<ZoneTable> {
        self.zone_table(1).await
    }

    /// Zone `z`'s table as the first assigner member that answers has it.
    pub async fn zone_table(&self, z: usize) -> anyhow::Result<ZoneTable> {
        let mut last = anyhow::anyhow!("no assigner members");
        for a in self.zone_assigners(z) {
            match fetch_table(&a).await {
                Ok(t) => return Ok(t),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The zone table from the assigner leader's view.
    pub async fn leader_table(&self) -> anyhow::Result<(String, ZoneTable)> {
        for p in self.procs.values().filter(|p| p.name.starts_with("assigner-") && p.child.is_some()) {
            if metric(&p.http, "danaus_raft_is_leader").await.unwrap_or(0.0) == 1.0 {
                return Ok((p.name.clone(), fetch_table(&p.grpc).await?));
            }
        }
        anyhow::bail!("no assigner member leads")
    }

    /// Waits until every leaf is registered and every range has
    /// `replication` ready replicas and no joining one; fails at once
    /// ([`Exited`]) if a process has exited.
    pub async fn wait_settled(&mut self, timeout: Duration) -> anyhow::Result<ZoneTable> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            for p in self.procs.values_mut() {
                if let Some(status) = p.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                    let why = log
                        .lines()
                        .find(|l| l.starts_with("Error") || l.starts_with("error"))
                        .unwrap_or("see its log")
                        .to_owned();
                    p.child = None;
                    return Err(Exited { name: p.name.clone(), status: status.to_string(), why }.into());
                }
            }
            let mut settled = None;
            for z in 1..=self.cfg.zones {
                match self.zone_table(z).await {
                    Ok(t) => {
                        let leaves_ok = self.zone_leaves(z).iter().all(|l| t.leaves.contains_key(l));
                        let ranges_ok = !t.ranges.is_empty()
                            && t.ranges.values().all(|r| {
                                r.ready().count() == self.cfg.replication as usize
                                    && r.replicas.len() == self.cfg.replication as usize
                            });
                        if !(leaves_ok && ranges_ok) {
                            if tokio::time::Instant::now() > deadline {
                                anyhow::bail!("zone {z} did not settle within {timeout:?}; table: {t:#?}");
                            }
                            settled = None;
                            break;
                        }
                        if z == 1 {
                            settled = Some(t);
                        }
                    }
                    Err(_) => {
                        if tokio::time::Instant::now() > deadline {
                            anyhow::bail!("no assigner of zone {z} answered within {timeout:?}");
                        }
                        settled = None;
                        break;
                    }
                }
            }
            if let Some(t) = settled {
                return Ok(t);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The data and log directory.
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        for p in self.procs.values_mut() {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn leaf_proc(cfg: &DevClusterConfig, name: &str, assigners: &str, index: &str) -> anyhow::Result<Proc> {
    let (grpc, http) = (free_port()?, free_port()?);
    let mut args = strings(&[
        "leaf",
        "--name",
        name,
        "--listen",
        &grpc,
        "--http",
        &http,
        "--data-dir",
        &cfg.dir.join(name).display().to_string(),
        "--assigners",
        assigners,
        "--heartbeat",
        "300ms",
        "--load-every",
        "1s",
        "--drop-grace",
        "2s",
        "--index",
        index,
    ]);
    args.extend(cfg.leaf_args.iter().cloned());
    Ok(Proc { name: name.to_owned(), grpc, http, args, log: cfg.dir.join(format!("{name}.log")), child: None })
}

/// Ports for a Raft group of `n` members: (id, gRPC, HTTP) each, the
/// gRPC list (`A,B,…`) and the peers flag (`1=A,2=B,…`).
type Members = Vec<(usize, String, String)>;

fn raft_group(n: usize) -> anyhow::Result<(Members, String, String)> {
    let members: Members = (1..=n).map(|i| Ok((i, free_port()?, free_port()?))).collect::<anyhow::Result<_>>()?;
    let list = members.iter().map(|(_, g, _)| g.clone()).collect::<Vec<_>>().join(",");
    let peers = members.iter().map(|(i, g, _)| format!("{i}={g}")).collect::<Vec<_>>().join(",");
    Ok((members, list, peers))
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| (*x).to_owned()).collect()
}

/// Zone `z`'s zone map: every zone, with its router and locations.
fn zone_map(cfg: &DevClusterConfig, z: usize, routers: &[(String, String)]) -> String {
    let mut out = format!("local: {}\nzones:\n", cfg.zone_name(z));
    for (i, (grpc, _)) in routers.iter().enumerate() {
        let name = cfg.zone_name(i + 1);
        out.push_str(&format!("- name: {name}\n  routers: ['{grpc}']\n  locations: ['{name}', '{name}-*']\n"));
    }
    out
}

async fn fetch_table(addr: &str) -> anyhow::Result<ZoneTable> {
    let mut client = pb::assigner_service_client::AssignerServiceClient::connect(format!("http://{addr}")).await?;
    let mut req = tonic::Request::new(pb::WatchTableRequest { min_version: 0 });
    req.set_timeout(Duration::from_secs(2));
    let mut stream = client.watch(req).await?.into_inner();
    let u = stream.message().await?.context("the watch ended without a table")?;
    Ok(serde_json::from_slice(&u.table_json)?)
}

/// Reads one unlabelled sample from a process' /metrics.
pub async fn metric(http: &str, name: &str) -> anyhow::Result<f64> {
    let text = http_get(http, "/metrics").await?;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
        .with_context(|| format!("no sample {name} at {http}"))
}

/// GETs a path over plain HTTP/1.1 (tests and the dev cluster only).
pub async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await??;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok(body)
}
