//! `danaus dev-cluster`: a whole zone as separate processes on loopback —
//! three range assigner members, N leaves, a router, a mixer and an index
//! server — for
//! development and for the end-to-end tests, which kill and restart its
//! processes.

use std::collections::BTreeMap;
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

fn free_port() -> anyhow::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}

impl DevCluster {
    /// Starts every process and waits until each range has its replicas.
    ///
    /// Ports are picked free and handed to the processes, so another
    /// program may take one in between; a process that exits while the
    /// zone starts fails the start with its error. When the data directory
    /// was empty (a fresh cluster), the start is then tried again on new
    /// ports, up to three times, from an empty directory.
    pub async fn start(cfg: DevClusterConfig) -> anyhow::Result<Self> {
        let fresh = match std::fs::read_dir(&cfg.dir) {
            Ok(mut d) => d.next().is_none(),
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        };
        let mut attempt = 1;
        loop {
            match Self::start_once(cfg.clone()).await {
                Err(e) if fresh && attempt < 3 && e.downcast_ref::<Exited>().is_some() => {
                    eprintln!("dev cluster: {e:#}; starting again on new ports");
                    for entry in std::fs::read_dir(&cfg.dir)?.flatten() {
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
        let assigners: Vec<(usize, String, String)> =
            (1..=cfg.assigners).map(|i| Ok((i, free_port()?, free_port()?))).collect::<anyhow::Result<_>>()?;
        let assigner_list = assigners.iter().map(|(_, g, _)| g.clone()).collect::<Vec<_>>().join(",");
        let peers = assigners.iter().map(|(i, g, _)| format!("{i}={g}")).collect::<Vec<_>>().join(",");
        let dir = |n: &str| cfg.dir.join(n).display().to_string();
        for (i, grpc, http) in &assigners {
            let name = format!("assigner-{i}");
            let args = vec![
                "assigner".into(),
                "--id".into(),
                i.to_string(),
                "--peers".into(),
                peers.clone(),
                "--listen".into(),
                grpc.clone(),
                "--http".into(),
                http.clone(),
                "--data-dir".into(),
                dir(&name),
                "--replication".into(),
                cfg.replication.to_string(),
                "--dead-after".into(),
                "3s".into(),
                "--tick".into(),
                "200ms".into(),
                "--max-series-per-range".into(),
                cfg.max_series_per_range.to_string(),
                "--min-move-series".into(),
                cfg.min_move_series.to_string(),
            ];
            procs.insert(
                name.clone(),
                Proc {
                    name: name.clone(),
                    grpc: grpc.clone(),
                    http: http.clone(),
                    args,
                    log: cfg.dir.join(format!("{name}.log")),
                    child: None,
                },
            );
        }
        let (index_grpc, index_http) = (free_port()?, free_port()?);
        for i in 1..=cfg.leaves {
            let p = leaf_proc(&cfg, i, &assigner_list, &index_grpc)?;
            procs.insert(p.name.clone(), p);
        }
        let args = vec!["index".into(), "--listen".into(), index_grpc.clone(), "--http".into(), index_http.clone()];
        procs.insert(
            "index".into(),
            Proc {
                name: "index".into(),
                grpc: index_grpc.clone(),
                http: index_http,
                args,
                log: cfg.dir.join("index.log"),
                child: None,
            },
        );
        for role in ["router", "mixer"] {
            let (grpc, http) = (free_port()?, free_port()?);
            let mut args = vec![
                role.into(),
                "--listen".into(),
                grpc.clone(),
                "--http".into(),
                http.clone(),
                "--assigners".into(),
                assigner_list.clone(),
                "--state-dir".into(),
                dir(role),
            ];
            if role == "mixer" {
                args.extend(["--hedge-after".into(), "300ms".into(), "--index".into(), index_grpc.clone()]);
            }
            procs.insert(
                role.into(),
                Proc { name: role.into(), grpc, http, args, log: cfg.dir.join(format!("{role}.log")), child: None },
            );
        }
        let mut c = Self { cfg, procs };
        let names: Vec<String> = c.procs.keys().cloned().collect();
        for n in &names {
            c.spawn(n)?;
        }
        c.wait_settled(Duration::from_secs(180)).await?;
        Ok(c)
    }

    /// Starts one more leaf; returns its name.
    pub fn add_leaf(&mut self) -> anyhow::Result<String> {
        let n = self.leaves().len() + 1;
        let list = self.assigners().join(",");
        let index = self.procs["index"].grpc.clone();
        let p = leaf_proc(&self.cfg, n, &list, &index)?;
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

    /// The router's gRPC address.
    pub fn router(&self) -> &str {
        &self.procs["router"].grpc
    }

    /// The mixer's gRPC address.
    pub fn mixer(&self) -> &str {
        &self.procs["mixer"].grpc
    }

    /// Names of the leaves.
    pub fn leaves(&self) -> Vec<String> {
        self.procs.keys().filter(|n| n.starts_with("leaf-")).cloned().collect()
    }

    /// Assigner member addresses.
    pub fn assigners(&self) -> Vec<String> {
        self.procs.values().filter(|p| p.name.starts_with("assigner-")).map(|p| p.grpc.clone()).collect()
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

    /// The zone table as the first assigner member that answers has it.
    pub async fn table(&self) -> anyhow::Result<ZoneTable> {
        let mut last = anyhow::anyhow!("no assigner members");
        for a in self.assigners() {
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
            if let Ok(t) = self.table().await {
                let leaves_ok = self.leaves().iter().all(|l| t.leaves.contains_key(l));
                let ranges_ok = !t.ranges.is_empty()
                    && t.ranges.values().all(|r| {
                        r.ready().count() == self.cfg.replication as usize
                            && r.replicas.len() == self.cfg.replication as usize
                    });
                if leaves_ok && ranges_ok {
                    return Ok(t);
                }
                if tokio::time::Instant::now() > deadline {
                    anyhow::bail!("the zone did not settle within {timeout:?}; table: {t:#?}");
                }
            } else if tokio::time::Instant::now() > deadline {
                anyhow::bail!("no assigner answered within {timeout:?}");
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

fn leaf_proc(cfg: &DevClusterConfig, i: usize, assigners: &str, index: &str) -> anyhow::Result<Proc> {
    let name = format!("leaf-{i}");
    let (grpc, http) = (free_port()?, free_port()?);
    let mut args = vec![
        "leaf".into(),
        "--name".into(),
        name.clone(),
        "--listen".into(),
        grpc.clone(),
        "--http".into(),
        http.clone(),
        "--data-dir".into(),
        cfg.dir.join(&name).display().to_string(),
        "--assigners".into(),
        assigners.to_owned(),
        "--heartbeat".into(),
        "300ms".into(),
        "--load-every".into(),
        "1s".into(),
        "--drop-grace".into(),
        "2s".into(),
        "--index".into(),
        index.to_owned(),
    ];
    args.extend(cfg.leaf_args.iter().cloned());
    Ok(Proc { name: name.clone(), grpc, http, args, log: cfg.dir.join(format!("{name}.log")), child: None })
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
