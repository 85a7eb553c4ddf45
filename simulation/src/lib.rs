//! # danaus-simulation
//!
//! Deterministic simulation tests that run the real Danaus roles, not
//! models of them. Built with `RUSTFLAGS="--cfg madsim"`: tokio and tonic
//! become madsim's simulated runtime and network, so a whole cluster runs
//! in one thread, in simulated time, and the same seed replays exactly.
//!
//! **What runs** ([`cluster`]): N zones, each with its range assigner
//! (a 3-member Raft group), index server, leaves, router and mixer, every
//! role on its own simulated host, started by the same definitions
//! (`danaus-roles`) as `danaus <role>`; for one seed in three the last zone
//! instead runs in one host as `danaus standalone` runs it. A global config
//! group (3 members) serves every zone; each zone's config mirror syncs its
//! schemas into the zone's table, and routers apply schemas through it; a
//! root mixer answers queries over every zone, skipping the zones the root
//! index server shows hold nothing a query asks for (each zone's index
//! server claims its zone there). Only the disks are simulated: an in-memory long-term
//! store and a log device that both lose unsynced writes when their host
//! crashes. Writer hosts write known data through any zone's router and
//! record every acknowledgement; a reader host reads and queries through
//! the owning zone's mixer, or the root mixer.
//!
//! **Faults** come on a schedule drawn from the seed ([`faults`]): crashes
//! and restarts of any host (or two), partitions between hosts and between
//! zones, isolated hosts, packet loss and delay, pauses, clock jumps.
//!
//! **Invariants** ([`model`], [`raft_check`]): every acknowledged point is
//! readable (during the run, for points acknowledged before a read began,
//! and after healing); nothing is read that was never written, or with a
//! wrong value; a query that misses points says it is partial (a root
//! query that misses a zone too); Raft votes
//! never go back, members agree on every applied index, and none loses a
//! committed entry (zones' groups and the config group); no zone's table
//! holds, for longer than 10 s, a configuration version no config member
//! applied (a leader may apply a committed version and die before the
//! others do), and after
//! healing every zone holds the newest committed one with its schemas. A failure prints the seed, the fault schedule and the
//! replay command; each seed runs in a process of its own so that
//! `simulation/run --seed N` replays it exactly.

#[cfg(madsim)]
pub mod cluster;
#[cfg(madsim)]
pub mod faults;
#[cfg(madsim)]
pub mod model;
#[cfg(madsim)]
pub mod raft_check;
#[cfg(madsim)]
pub mod scenario;
#[cfg(madsim)]
pub mod workload;

/// The shape of a simulated cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Zones.
    pub zones: usize,
    /// Leaves per zone.
    pub leaves: usize,
    /// Range assigner (Raft) members per zone.
    pub assigners: usize,
    /// Routers per zone.
    pub routers: usize,
    /// Replicas per range.
    pub replication: u32,
    /// Whether the last zone runs in one process, as `danaus standalone`
    /// does (its leaves called in process by its front door).
    pub standalone: bool,
}

impl Spec {
    /// Whether zone `z` runs in one process.
    pub fn is_standalone(&self, z: usize) -> bool {
        self.standalone && z + 1 == self.zones
    }
}

impl Default for Spec {
    /// Two zones of three assigners, three leaves and two routers,
    /// ranges on two leaves.
    fn default() -> Self {
        Self { zones: 2, leaves: 3, assigners: 3, routers: 2, replication: 2, standalone: false }
    }
}

/// What one simulated run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Hash of every event in order: equal for equal seeds.
    pub trace_hash: u64,
    /// The fault schedule, one line per fault.
    pub schedule: Vec<String>,
    /// Points acknowledged by the node.
    pub acked_points: usize,
    /// Write requests that failed (the client saw an error).
    pub failed_writes: usize,
    /// Reads and queries checked against the model.
    pub checked_reads: usize,
    /// Invariant violations: empty when the run passed.
    pub violations: Vec<String>,
    /// The command that replays this run.
    pub replay: String,
}

impl Outcome {
    /// A report for humans: the seed, what happened, and how to replay.
    pub fn report(&self) -> String {
        let mut s = format!(
            "seed {}: {} points acknowledged, {} writes failed, {} reads checked, trace {:016x}\n",
            self.seed, self.acked_points, self.failed_writes, self.checked_reads, self.trace_hash
        );
        s.push_str("fault schedule:\n");
        for f in &self.schedule {
            s.push_str(&format!("  {f}\n"));
        }
        if self.violations.is_empty() {
            s.push_str("invariants held\n");
        } else {
            for v in &self.violations {
                s.push_str(&format!("VIOLATION: {v}\n"));
            }
            s.push_str(&format!("replay: {}\n", self.replay));
        }
        s
    }
}

/// Settings of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    /// The seed: everything random derives from it.
    pub seed: u64,
    /// Simulated seconds of workload before healing.
    pub seconds: u64,
    /// Writer hosts.
    pub writers: usize,
    /// Whether to inject faults.
    pub faults: bool,
    /// The cluster.
    pub spec: Spec,
    /// Break the product on purpose, to prove the checks catch it: half
    /// way through, every leaf of zone z0 loses its disks (synced data
    /// too) and restarts empty, so acknowledged points are gone.
    pub sabotage: bool,
}

impl SimConfig {
    /// The `simulation/run` command that replays this run.
    pub fn replay_command(&self) -> String {
        let mut c = format!("simulation/run --seed {}", self.seed);
        let d = SimConfig::new(self.seed);
        if self.seconds != d.seconds {
            c.push_str(&format!(" --seconds {}", self.seconds));
        }
        let (s, ds) = (self.spec, d.spec);
        for (flag, v, dv) in [
            ("--zones", s.zones, ds.zones),
            ("--leaves", s.leaves, ds.leaves),
            ("--assigners", s.assigners, ds.assigners),
            ("--routers", s.routers, ds.routers),
            ("--replication", s.replication as usize, ds.replication as usize),
        ] {
            if v != dv {
                c.push_str(&format!(" {flag} {v}"));
            }
        }
        if s.standalone != ds.standalone {
            c.push_str(if s.standalone { " --standalone yes" } else { " --standalone no" });
        }
        if self.sabotage {
            c.push_str(" --sabotage");
        }
        c
    }

    /// The default run for `seed`: 60 simulated seconds, 2 writers,
    /// faults, the default cluster — its last zone in one process for one
    /// seed in three, so sweeps cover `danaus standalone`'s in-process
    /// paths too.
    pub fn new(seed: u64) -> Self {
        let spec = Spec { standalone: seed % 3 == 1, ..Spec::default() };
        Self { seed, seconds: 60, writers: 2, faults: true, spec, sabotage: false }
    }
}

/// Runs one simulation in this process.
///
/// Run one seed per process when the run must replay from its seed alone:
/// a process keeps state between runs that the simulator does not reset
/// (tokio seeds each thread's `select!` RNG from a process-wide counter),
/// so a seed's second run in one process can differ from its first.
/// `simulation/run --seeds A..B` starts a process per seed for that reason.
#[cfg(madsim)]
pub fn run(cfg: SimConfig) -> Outcome {
    let rt = madsim::runtime::Runtime::with_seed_and_config(cfg.seed, madsim::Config::default());
    rt.block_on(scenario::scenario(cfg))
}
