//! One simulated run: build the cluster, wait for it to settle, run the
//! workload under the fault schedule, heal, check.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::time::{sleep, sleep_until, Instant};
use parking_lot::Mutex;

use crate::cluster::Cluster;
use crate::faults::{self, Fault, Host};
use crate::model::State;
use crate::workload::{self, Ctx};
use crate::{Outcome, SimConfig};

/// madsim's default packet latency, restored after a delay fault.
fn normal_latency() -> std::ops::Range<Duration> {
    Duration::from_millis(1)..Duration::from_millis(10)
}

/// Longest a fresh cluster may take to settle.
const SETTLE: Duration = Duration::from_secs(60);
/// Longest the cluster may take to recover after healing.
const RECOVER: Duration = Duration::from_secs(120);

/// Runs the workload under the fault schedule, heals, checks.
pub async fn scenario(cfg: SimConfig) -> Outcome {
    let handle = Handle::current();
    let net = NetSim::current();
    let state = Arc::new(Mutex::new(State::default()));
    let cluster = Cluster::build(&handle, cfg.spec, state.clone());
    let client_names: Vec<String> =
        (0..=cfg.writers).map(|i| if i < cfg.writers { format!("writer-{i}") } else { "reader".to_owned() }).collect();
    let clients: Vec<_> = client_names
        .iter()
        .enumerate()
        .map(|(i, name)| handle.create_node().name(name).ip(std::net::IpAddr::from([10, 0, 1, i as u8 + 1])).build())
        .collect();
    let mut hosts: Vec<Host> = cluster
        .members
        .iter()
        .map(|m| Host { name: m.name.clone(), zone: Some(m.zone), leaf: m.has_leaves() })
        .collect();
    hosts.extend(client_names.iter().map(|n| Host { name: n.clone(), zone: None, leaf: false }));
    let ids: Vec<_> = cluster.members.iter().map(|m| m.node.id()).chain(clients.iter().map(|c| c.id())).collect();
    let schedule = if cfg.faults { faults::schedule(cfg.seconds, &hosts) } else { Vec::new() };

    // The checker looks at the Raft groups every 50 ms from here on.
    let checking = Arc::new(AtomicBool::new(true));
    let checker = {
        let (raft, config_raft, checking) = (cluster.raft.clone(), cluster.config_raft.clone(), checking.clone());
        let (zones, state) = (cfg.spec.zones, state.clone());
        madsim::task::spawn(async move {
            // The newest configuration version any config member applied
            // (so committed) so far. A zone may hold a newer one for a
            // while: a leader that applied a committed version and died
            // before the checker looked leaves it in the others' logs,
            // applied once a new leader commits (seed 208). A version no
            // member applies within CONFIG_GRACE was never committed (its
            // number may come back with other content, which the final
            // check's schema comparison catches).
            const CONFIG_GRACE: Duration = Duration::from_secs(10);
            let mut committed = 0;
            let mut ahead: Vec<Option<(u64, Instant)>> = vec![None; zones];
            while checking.load(Ordering::Relaxed) {
                raft.check();
                config_raft.check();
                committed = committed.max(config_raft.any_state(0).map_or(0, |c| c.version));
                for (z, ahead) in ahead.iter_mut().enumerate() {
                    let synced = raft.any_table(z).map_or(0, |t| t.config_version);
                    if synced <= committed {
                        *ahead = None;
                        continue;
                    }
                    let (v, since) = *ahead.get_or_insert((synced, Instant::now()));
                    if since.elapsed() > CONFIG_GRACE {
                        state.lock().violation(format!(
                            "z{z}'s table has held configuration version {v} for {:?}, and no config member \
                             has applied it (the newest applied is {committed})",
                            since.elapsed()
                        ));
                        *ahead = Some((synced, Instant::now()));
                    }
                }
                sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let settle_by = Instant::now() + SETTLE;
    while !cluster.settled() {
        if Instant::now() > settle_by {
            let now = cluster.raft.describe();
            state.lock().violation(format!("the cluster did not settle within {SETTLE:?}:\n{now}"));
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    let start = Instant::now();
    let ctx = Ctx {
        state: state.clone(),
        routers: cluster.routers(),
        mixers: (0..cfg.spec.zones).map(|z| cluster.mixer(z)).collect(),
        root: cluster.root(),
        config: cluster.config(),
        stop: Arc::new(AtomicBool::new(false)),
        start,
        grown: Arc::new((0..cfg.spec.zones).map(|_| AtomicBool::new(false)).collect()),
    };
    ctx.event("settled");
    let reader_host = &clients[cfg.writers];
    let _ = reader_host.spawn(workload::apply_schemas(ctx.clone())).await;
    let _ = reader_host.spawn(workload::apply_zones(ctx.clone(), cluster.zone_objects())).await;

    let mut tasks = Vec::new();
    for (i, h) in clients.iter().enumerate().take(cfg.writers) {
        tasks.push(h.spawn(workload::writer(ctx.clone(), i)));
    }
    tasks.push(reader_host.spawn(workload::reader(ctx.clone())));
    tasks.push(reader_host.spawn(workload::grow_schema(ctx.clone())));

    let crash = |i: usize| {
        if let Some(m) = cluster.members.get(i) {
            if let Some(id) = m.raft_id() {
                cluster.raft.unregister(m.zone, id);
            }
            if let Some(id) = m.config_id() {
                cluster.config_raft.unregister(0, id);
            }
            handle.kill(m.node.id());
            m.lose_unsynced();
        }
    };
    let zone_links = |a: usize, b: usize| {
        let side = |z: usize| cluster.zone(z).map(|m| m.node.id()).collect::<Vec<_>>();
        let (a, b) = (side(a), side(b));
        a.iter().flat_map(|x| b.iter().flat_map(move |y| [(*x, *y), (*y, *x)])).collect::<Vec<_>>()
    };
    for f in &schedule {
        sleep_until(start + f.at).await;
        ctx.event(&f.describe(&hosts));
        match &f.fault {
            Fault::Crash { hosts, down } => {
                for &h in hosts {
                    crash(h);
                }
                sleep(*down).await;
                for &h in hosts {
                    handle.restart(ids[h]);
                }
            }
            Fault::Partition { a, b, heal_after } => {
                net.clog_link(ids[*a], ids[*b]);
                net.clog_link(ids[*b], ids[*a]);
                sleep(*heal_after).await;
                net.unclog_link(ids[*a], ids[*b]);
                net.unclog_link(ids[*b], ids[*a]);
            }
            Fault::Isolate { host, heal_after } => {
                net.clog_node(ids[*host]);
                sleep(*heal_after).await;
                net.unclog_node(ids[*host]);
            }
            Fault::ZonePartition { a, b, heal_after } => {
                let links = zone_links(*a, *b);
                for (x, y) in &links {
                    net.clog_link(*x, *y);
                }
                sleep(*heal_after).await;
                for (x, y) in &links {
                    net.unclog_link(*x, *y);
                }
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
            Fault::Pause { host, resume_after } => {
                handle.pause(ids[*host]);
                sleep(*resume_after).await;
                handle.resume(ids[*host]);
            }
            Fault::Skew { host, offset_ms } => {
                if let Some(m) = cluster.members.get(*host) {
                    m.skew.store(offset_ms.saturating_mul(1_000_000), Ordering::Relaxed);
                }
            }
        }
    }
    if cfg.sabotage {
        sleep_until(start + Duration::from_secs(cfg.seconds / 2)).await;
        ctx.event("sabotage: every leaf of z0 loses its disks");
        let leaves: Vec<_> = cluster.zone(0).filter(|m| m.has_leaves()).collect();
        for m in &leaves {
            handle.kill(m.node.id());
            m.wipe();
        }
        for m in &leaves {
            handle.restart(m.node.id());
        }
    }
    sleep_until(start + Duration::from_secs(cfg.seconds)).await;
    ctx.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    ctx.event("healed; final check");
    let _ = reader_host.spawn(workload::final_check(ctx.clone())).await;

    // Every Raft member catches up with the highest entry any applied.
    let recover_by = Instant::now() + RECOVER;
    loop {
        cluster.raft.check();
        cluster.config_raft.check();
        let mut behind = cluster.raft.behind();
        behind.extend(cluster.config_raft.behind());
        if behind.is_empty() {
            break;
        }
        if Instant::now() > recover_by {
            state.lock().violation(format!("Raft members lost committed entries or never caught up: {behind:?}"));
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    // Every zone converges to the newest committed configuration: its
    // table holds that version, with exactly its schemas.
    let converge_by = Instant::now() + RECOVER;
    loop {
        let lagging = config_lag(&cluster);
        if lagging.is_empty() {
            break;
        }
        if Instant::now() > converge_by {
            state.lock().violation(format!("zones did not converge to the configuration: {}", lagging.join("; ")));
            break;
        }
        sleep(Duration::from_millis(200)).await;
    }
    checking.store(false, Ordering::Relaxed);
    let _ = checker.await;

    let st = state.lock();
    Outcome {
        seed: cfg.seed,
        trace_hash: st.trace_hash(),
        schedule: schedule.iter().map(|f| f.describe(&hosts)).collect(),
        acked_points: st.acked.iter().map(|a| a.len()).sum(),
        failed_writes: st.failed_writes,
        checked_reads: st.checked_reads,
        violations: st.violations.clone(),
        replay: cfg.replay_command(),
    }
}

/// Zones whose table does not hold the newest committed configuration's
/// version and schemas, each with what it holds.
fn config_lag(cluster: &Cluster) -> Vec<String> {
    let Some(config) = cluster.config_raft.any_state(0) else {
        return vec!["no config member runs".into()];
    };
    let view = config.view();
    let mut want: std::collections::BTreeMap<String, danaus_assigner::TenantSchemas> = Default::default();
    for (key, o) in &view.objects {
        match o {
            danaus_config::Object::TargetSchema(t) => {
                want.entry(key.tenant.clone()).or_default().targets.insert(t.name.clone(), t.clone());
            }
            danaus_config::Object::MetricSchema(m) => {
                want.entry(key.tenant.clone()).or_default().metrics.insert(m.name.clone(), m.clone());
            }
            danaus_config::Object::Zone(_) | danaus_config::Object::RuleGroup(_) => {}
        }
    }
    (0..cluster.spec.zones)
        .filter_map(|z| {
            let t = cluster.raft.any_table(z)?;
            (t.config_version != view.version || t.schemas != want).then(|| {
                format!(
                    "z{z} holds configuration v{} (newest v{}){}",
                    t.config_version,
                    view.version,
                    if t.schemas == want { "" } else { " with other schemas" }
                )
            })
        })
        .collect()
}
