//! The range assigner role: a member of the zone's Raft group (its log and
//! snapshots on the `KvStore` seam) serving the Raft and assigner services,
//! with the assigner's controller running on whichever member leads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use danaus_assigner::{Assigner, AssignerConfig, ZoneTable};
use danaus_raft::{NodeId, RaftGroup, RaftServer};
use danaus_storage::KvStore;
use futures::FutureExt as _;
use tokio::sync::watch;

use crate::metrics::{process_metrics, Text};
use crate::{raft_member, transport, Health, Metrics, Result, Running};

/// A range assigner member.
#[derive(Debug, Clone)]
pub struct AssignerSpec {
    /// Member id in the zone's Raft group.
    pub id: NodeId,
    /// Every member (this one included): id → host:port. This member's
    /// own entry may end in `:0`: it is then the address bound.
    pub peers: BTreeMap<NodeId, String>,
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// Assigner tuning.
    pub assigner: AssignerConfig,
    /// Raft heartbeat; elections after 5× this.
    pub heartbeat: Duration,
}

/// What an assigner member is made of, beside what every role has.
pub struct AssignerParts {
    /// Its Raft group member.
    pub group: Arc<RaftGroup<ZoneTable>>,
    /// The assigner.
    pub assigner: Arc<Assigner>,
}

/// Starts a member on `kv` (its Raft log goes to the `raft` column family).
/// A member listed in `peers` under its own id with port 0 is given the
/// address it bound.
pub async fn start(spec: AssignerSpec, kv: Arc<dyn KvStore>) -> Result<(Running, AssignerParts)> {
    let started = Instant::now();
    let listener = transport::bind(spec.grpc_addr).await?;
    let me = listener.local_addr();
    let raft = RaftServer::new();
    let group = raft_member::start::<ZoneTable>("zone", spec.id, spec.heartbeat, kv, &raft).await?;
    let assigner = Assigner::new(group.clone(), spec.assigner.clone());
    let router =
        transport::server(transport::DEFAULT_CONCURRENCY).add_service(raft.service()).add_service(assigner.service());
    let a = assigner.clone();
    let metrics: Metrics = Arc::new(move || {
        let a = a.clone();
        async move {
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
            t
        }
        .boxed()
    });
    let g = group.clone();
    let health: Health = Arc::new(move || {
        let m = g.metrics();
        m.current_leader.is_none().then(|| {
            format!("this member knows no Raft leader (term {}): the zone table cannot change", m.current_term)
        })
    });
    let (stop, stopping) = watch::channel(false);
    let mut running = Running::new(me, metrics, health, stop);
    running.server = Some(listener.serve(router, stopping));
    raft_member::join(&mut running, &group, spec.id, &spec.peers, me).await?;
    running.spawn(assigner.clone().run_controller());
    tracing::info!(id = spec.id, grpc_addr = %me, "range assigner member serving");
    Ok((running, AssignerParts { group, assigner }))
}
