//! What every Raft-group role does the same way: start its member on the
//! `KvStore` seam with the role's heartbeat, stop it last, and join the
//! group once the role serves (a member's own `host:0` entry in its peers
//! is the address it bound).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use danaus_raft::{BasicNode, GroupConfig, NodeId, RaftGroup, RaftServer, StateMachine};
use danaus_storage::KvStore;
use futures::FutureExt as _;

use crate::{Error, Result, Running};

/// Starts member `id` of group `name` on `kv`, served by `raft`; elections
/// after 5× `heartbeat`.
pub(crate) async fn start<S: StateMachine>(
    name: &str,
    id: NodeId,
    heartbeat: Duration,
    kv: Arc<dyn KvStore>,
    raft: &RaftServer,
) -> Result<Arc<RaftGroup<S>>> {
    let mut gc = GroupConfig::new(name, id);
    gc.heartbeat = heartbeat;
    gc.election_timeout = heartbeat * 5;
    let group = RaftGroup::<S>::start(gc, kv, raft)
        .await
        .map_err(|e| Error::start(format!("starting the {name} group's Raft member"), e))?;
    Ok(Arc::new(group))
}

/// Stops `group` when `running` stops, then joins it to `peers` (this
/// member, `id`, serving at `me`).
pub(crate) async fn join<S: StateMachine>(
    running: &mut Running,
    group: &Arc<RaftGroup<S>>,
    id: NodeId,
    peers: &BTreeMap<NodeId, String>,
    me: SocketAddr,
) -> Result<()> {
    let g = group.clone();
    running.on_stop(move || {
        async move {
            g.shutdown().await;
            Ok(())
        }
        .boxed()
    });
    let members: BTreeMap<NodeId, BasicNode> = peers
        .iter()
        .map(|(m, a)| {
            let addr = if *m == id && a.ends_with(":0") { me.to_string() } else { a.clone() };
            (*m, BasicNode::new(addr))
        })
        .collect();
    group.initialize(members).await.map_err(|e| Error::start("initialising the Raft group", e))
}
