//! The simulated cluster: a `danaus` node on its own host, client hosts,
//! and the scenario that runs the workload under the fault schedule.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use danaus_leaf::{Leaf, LeafConfig, LeafOptions};
use danaus_node::Services;
use danaus_storage::{Clock, KvStore, MemKv, MemLogDevice, SystemClock};
use madsim::net::NetSim;
use madsim::rand::{thread_rng, Rng};
use madsim::runtime::Handle;
use madsim::time::{sleep, sleep_until, Instant};
use parking_lot::Mutex;

use crate::faults::{self, Fault};
use crate::model::State;
use crate::workload::{self, Ctx};
use crate::{Outcome, SimConfig};

const NODE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const PORT: u16 = 7070;

/// What a node keeps across crashes: its long-term store and its log
/// device (which forgets unsynced bytes on [`MemLogDevice::crash`]).
#[derive(Clone, Default)]
struct Disk {
    kv: Arc<MemKv>,
    log: MemLogDevice,
}

/// The node's clock, off by a fixed skew.
struct SkewedClock(i64);

impl Clock for SkewedClock {
    fn now(&self) -> i64 {
        SystemClock.now().saturating_add(self.0)
    }
}

/// Opens the leaf on `disk` and serves the node's gRPC services until the
/// host is killed. A leaf that cannot open is a violation.
async fn serve(disk: Disk, skew_ns: i64, state: Arc<Mutex<State>>) {
    let opened = Leaf::open(LeafConfig {
        kv: disk.kv.clone() as Arc<dyn KvStore>,
        log: Arc::new(disk.log.clone()),
        clock: Arc::new(SkewedClock(skew_ns)),
        options: LeafOptions {
            checkpoint_interval: Duration::from_secs(3),
            chunk_max_points: 16,
            ..LeafOptions::default()
        },
    })
    .await;
    let leaf = match opened {
        Ok(l) => l,
        Err(e) => {
            state.lock().violation(format!("the leaf failed to open after a restart: {e}"));
            return;
        }
    };
    let services = Services::new(leaf, 16);
    if let Err(e) = services.server(256).serve(SocketAddr::new(NODE_IP, PORT)).await {
        state.lock().violation(format!("the gRPC server stopped: {e}"));
    }
}

/// madsim's default packet latency, restored after a delay fault.
fn normal_latency() -> std::ops::Range<Duration> {
    Duration::from_millis(1)..Duration::from_millis(10)
}

/// Runs the workload under the fault schedule, heals, checks.
pub async fn scenario(cfg: SimConfig) -> Outcome {
    let handle = Handle::current();
    let net = NetSim::current();
    let state = Arc::new(Mutex::new(State::default()));
    let clients = cfg.writers + 1;
    let schedule = if cfg.faults { faults::schedule(cfg.seconds, clients) } else { Vec::new() };
    let skew_ns: i64 = if cfg.faults { thread_rng().gen_range(-30_000i64..30_000) * 1_000_000 } else { 0 };

    let disk = Disk::default();
    let node = {
        let (disk, state) = (disk.clone(), state.clone());
        handle
            .create_node()
            .name("danaus")
            .ip(NODE_IP)
            .init(move || serve(disk.clone(), skew_ns, state.clone()))
            .build()
    };
    let hosts: Vec<_> = (0..clients)
        .map(|i| {
            let name = if i < cfg.writers { format!("writer-{i}") } else { "reader".to_owned() };
            handle.create_node().name(name).ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, i as u8 + 1))).build()
        })
        .collect();
    let start = Instant::now();
    let ctx = Ctx {
        state: state.clone(),
        addr: format!("http://{NODE_IP}:{PORT}"),
        stop: Arc::new(AtomicBool::new(false)),
        start,
    };
    ctx.event(&format!("node clock skew {skew_ns} ns"));
    let reader_host = &hosts[cfg.writers];
    let _ = reader_host.spawn(workload::apply_schemas(ctx.clone())).await;

    let mut tasks = Vec::new();
    for (i, h) in hosts.iter().enumerate().take(cfg.writers) {
        tasks.push(h.spawn(workload::writer(ctx.clone(), i)));
    }
    tasks.push(reader_host.spawn(workload::reader(ctx.clone())));

    for f in &schedule {
        sleep_until(start + f.at).await;
        ctx.event(&f.to_string());
        match &f.fault {
            Fault::Crash { down } => {
                handle.kill(node.id());
                disk.log.crash();
                sleep(*down).await;
                handle.restart(node.id());
            }
            Fault::Partition { client, heal_after } => {
                let c = hosts[*client].id();
                net.clog_link(c, node.id());
                net.clog_link(node.id(), c);
                sleep(*heal_after).await;
                net.unclog_link(c, node.id());
                net.unclog_link(node.id(), c);
            }
            Fault::Loss { rate, heal_after } => {
                net.update_config(|c| c.packet_loss_rate = *rate);
                sleep(*heal_after).await;
                net.update_config(|c| c.packet_loss_rate = 0.0);
            }
            Fault::Delay { min_ms, max_ms, heal_after } => {
                net.update_config(|c| c.send_latency = Duration::from_millis(*min_ms)..Duration::from_millis(*max_ms));
                sleep(*heal_after).await;
                net.update_config(|c| c.send_latency = normal_latency());
            }
            Fault::Pause { resume_after } => {
                handle.pause(node.id());
                sleep(*resume_after).await;
                handle.resume(node.id());
            }
        }
    }
    sleep_until(start + Duration::from_secs(cfg.seconds)).await;
    ctx.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    ctx.event("healed; final check");
    let _ = reader_host.spawn(workload::final_check(ctx.clone())).await;

    let st = state.lock();
    Outcome {
        seed: cfg.seed,
        trace_hash: st.trace_hash(),
        schedule: schedule.iter().map(ToString::to_string).collect(),
        acked_points: st.acked.iter().map(|a| a.len()).sum(),
        failed_writes: st.failed_writes,
        checked_reads: st.checked_reads,
        violations: st.violations.clone(),
    }
}
