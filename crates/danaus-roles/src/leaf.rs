//! The leaf role: a leaf (`danaus-leaf`) on its long-term store, recovery
//! log device and clock, with its zone face (`danaus-node`'s `ZoneLeaf`:
//! the Leaf gRPC service, the agent that registers it with the assigner
//! and reports load, and the field-hint pushes to the index server).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use danaus_assigner::{TableCache, TableWatcher};
use danaus_leaf::{Leaf, LeafConfig, LeafOptions};
use danaus_node::zone_leaf::{AgentConfig, ZoneLeaf};
use danaus_storage::{Clock, KvStore, LogDevice, SharedStateDir};
use futures::FutureExt as _;
use tokio::sync::watch;

use crate::metrics::{leaf_metrics, process_metrics, Text};
use crate::{table_health, transport, Error, Health, Metrics, Result, Running};

/// A leaf of a zone.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// Its name in the zone.
    pub name: String,
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// Address routers and mixers use (default: the bound one).
    pub advertise: Option<String>,
    /// Assigner members (host:port).
    pub assigners: Vec<String>,
    /// Leaf tuning.
    pub leaf: LeafOptions,
    /// Agent tuning.
    pub agent: AgentConfig,
    /// The zone index server to push field hints to.
    pub index: Option<String>,
}

/// What a leaf is built on.
#[derive(Clone)]
pub struct LeafStores {
    /// Long-term store.
    pub kv: Arc<dyn KvStore>,
    /// Recovery log device.
    pub log: Arc<dyn LogDevice>,
    /// Wall clock.
    pub clock: Arc<dyn Clock>,
    /// Where the last zone table is kept.
    pub state: SharedStateDir,
}

/// What a leaf role is made of, beside what every role has.
pub struct LeafParts {
    /// The leaf.
    pub leaf: Leaf,
    /// Its zone face.
    pub zone_leaf: Arc<ZoneLeaf>,
}

/// Opens the leaf on `stores` and serves it.
pub async fn start(spec: LeafSpec, stores: LeafStores) -> Result<(Running, LeafParts)> {
    let started = Instant::now();
    let leaf =
        Leaf::open(LeafConfig { kv: stores.kv, log: stores.log, clock: stores.clock, options: spec.leaf.clone() })
            .await
            .map_err(|e| Error::start("opening the leaf", e))?;
    let listener = transport::bind(spec.grpc_addr).await?;
    let bound = listener.local_addr();
    let advertise = spec.advertise.clone().unwrap_or_else(|| bound.to_string());
    let table =
        TableWatcher::start_cached(spec.assigners.clone(), Some(TableCache::new(stores.state, "zone-table.json")));
    let (l, t) = (leaf.clone(), table.clone());
    let health: Health = Arc::new(move || l.unhealthy().or_else(|| table_health(&t)));
    let zl = ZoneLeaf::new(spec.name.clone(), advertise, leaf.clone(), table);
    let router = transport::server(transport::DEFAULT_CONCURRENCY).add_service(zl.service());
    let (l, z) = (leaf.clone(), zl.clone());
    let metrics: Metrics = Arc::new(move || {
        let (l, z) = (l.clone(), z.clone());
        async move {
            let mut t = Text::default();
            process_metrics(&mut t, started);
            let disk = l.disk_bytes().await.unwrap_or(0);
            leaf_metrics(&mut t, std::slice::from_ref(&l), disk);
            zone_leaf_metrics(&mut t, &z);
            t
        }
        .boxed()
    });
    let (stop, stopping) = watch::channel(false);
    let mut running = Running::new(bound, metrics, health, stop);
    running.server = Some(listener.serve(router, stopping));
    running.spawn(zl.clone().run_agent(spec.assigners.clone(), spec.agent.clone()));
    if let Some(i) = spec.index.clone() {
        running.spawn(zl.clone().run_hints(i));
    }
    let l = leaf.clone();
    running.on_stop(move || async move { l.shutdown().await.map_err(|e| Error::start("final checkpoint", e)) }.boxed());
    tracing::info!(name = %spec.name, grpc_addr = %bound, "leaf serving");
    Ok((running, LeafParts { leaf, zone_leaf: zl }))
}

/// A leaf's zone-face counters.
pub fn zone_leaf_metrics(t: &mut Text, z: &ZoneLeaf) {
    let s = &z.stats;
    t.counter(
        "danaus_leaf_wrong_replica_total",
        "Series refused as routed by a stale or wrong range map.",
        &s.wrong_replica,
    );
    t.counter("danaus_leaf_stages_total", "Leaf phases run for mixers.", &s.stages);
    t.counter(
        "danaus_leaf_stages_refused_total",
        "Leaf phases refused: a range asked is not held ready.",
        &s.stages_refused,
    );
    t.counter("danaus_leaf_range_copies_total", "Range histories copied in.", &s.copies);
    t.counter("danaus_leaf_exported_series_total", "Series exported to other leaves.", &s.exported_series);
    t.counter("danaus_leaf_range_drops_total", "Ranges dropped after moving away.", &s.drops);
    t.counter(
        "danaus_leaf_hint_push_failures_total",
        "Field-hint pushes to the index server that failed.",
        &s.hint_push_failures,
    );
}
