//! The config server role: a member of the config service's Raft group
//! (`danaus-config`'s `ConfigState`, its log and snapshots on the
//! `KvStore` seam) serving ConfigService and the Raft service. Reads are
//! served from the member's applied state; changes are proposed to the
//! group (a follower forwards them to the leader).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use danaus_config::feed::Feed;
use danaus_config::service::{feed_from_group, ConfigApi, GroupWriter};
use danaus_config::{ConfigState, ConfigView};
use danaus_raft::{NodeId, RaftGroup, RaftServer};
use danaus_storage::{Clock, KvStore};
use futures::FutureExt as _;
use tokio::sync::watch;

use crate::metrics::{process_metrics, Text};
use crate::{raft_member, transport, Health, Metrics, Result, Running};

/// A member of the config group.
#[derive(Debug, Clone)]
pub struct ConfigServerSpec {
    /// Member id.
    pub id: NodeId,
    /// Every member (this one included): id → host:port; this member's
    /// own entry may end in `:0` (then it is the address bound).
    pub peers: BTreeMap<NodeId, String>,
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// Raft heartbeat; elections after 5× this.
    pub heartbeat: Duration,
}

/// What a config server is made of, beside what every role has.
pub struct ConfigServerParts {
    /// Its Raft group member.
    pub group: Arc<RaftGroup<ConfigState>>,
    /// The configuration it serves, as applied here.
    pub feed: Feed,
    /// Its ConfigService (standalone serves it on the front door too).
    pub api: ConfigApi,
}

/// Starts a member on `kv`; `clock` times the versions it proposes.
pub async fn start(
    spec: ConfigServerSpec,
    kv: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
) -> Result<(Running, ConfigServerParts)> {
    let started = Instant::now();
    let listener = transport::bind(spec.grpc_addr).await?;
    let me = listener.local_addr();
    let raft = RaftServer::new();
    let group = raft_member::start::<ConfigState>("config", spec.id, spec.heartbeat, kv, &raft).await?;
    let feed = Feed::new(ConfigView::default());
    let api = ConfigApi::new(feed.clone(), Arc::new(GroupWriter(group.clone())), clock);
    let router = transport::server(transport::DEFAULT_CONCURRENCY)
        .add_service(raft.service())
        .add_service(api.clone().service());
    let (g, f) = (group.clone(), feed.clone());
    let metrics: Metrics = Arc::new(move || {
        let (g, f) = (g.clone(), f.clone());
        async move {
            let mut t = Text::default();
            process_metrics(&mut t, started);
            let m = g.metrics();
            t.metric("danaus_raft_term", "gauge", "Current Raft term of the config group.", m.current_term);
            t.metric("danaus_raft_is_leader", "gauge", "1 on the group's leader.", u8::from(g.is_leader()));
            t.metric("danaus_config_version", "gauge", "Configuration version applied here.", f.current().version);
            t
        }
        .boxed()
    });
    let g = group.clone();
    let health: Health = Arc::new(move || {
        let m = g.metrics();
        m.current_leader.is_none().then(|| {
            format!(
                "this member knows no config group leader (term {}): the configuration cannot change",
                m.current_term
            )
        })
    });
    let (stop, stopping) = watch::channel(false);
    let mut running = Running::new(me, metrics, health, stop);
    running.server = Some(listener.serve(router, stopping));
    raft_member::join(&mut running, &group, spec.id, &spec.peers, me).await?;
    running.spawn(feed_from_group(group.clone(), feed.clone()));
    tracing::info!(id = spec.id, grpc_addr = %me, "config server member serving");
    Ok((running, ConfigServerParts { group, feed, api }))
}
