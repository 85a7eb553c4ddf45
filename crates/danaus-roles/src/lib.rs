//! # danaus-roles
//!
//! Every Danaus role, defined once. A role's definition is its wiring: which
//! components it builds from which seams, which gRPC services it serves,
//! what it reports on `/metrics` and `/healthz`, which background tasks it
//! runs and how it stops. Three places start roles, all through here:
//!
//! * `danaus <role>` and `danaus standalone` (`danaus-server`), which open
//!   RocksDB, the file-system log device and state directory, and add the
//!   HTTP port (remote_write, the PromQL API, `/metrics`, `/healthz`) on top;
//! * the simulation (`simulation/`), which hands the same definitions
//!   in-memory devices that lose unsynced writes on a crash, a skewed clock,
//!   and madsim's network.
//!
//! So this crate holds no RocksDB and no HTTP: stores come in as
//! [`KvStore`](danaus_storage::KvStore), [`LogDevice`](danaus_storage::LogDevice)
//! and [`StateDir`](danaus_storage::StateDir), time as a
//! [`Clock`](danaus_storage::Clock), and the network is tonic, which madsim
//! replaces under `--cfg madsim` ([`transport`]).
//!
//! Roles: [`config_server`] (a member of the global config service's Raft
//! group), [`config_mirror`] (a zone's copy of the configuration),
//! [`assigner`] (a member of the zone's Raft group and the range
//! assigner), [`leaf`], [`router`] (ingestion and leaf router), [`mixer`]
//! (zone mixer), [`index`] (zone index server), [`root_mixer`] (queries
//! over every zone, by the zones the configuration names), and [`standalone`], a whole
//! zone in one process — with its config service, one member — whose front
//! door calls its leaves in process.
//! Each `start` binds, serves and returns a [`Running`] (what every role
//! has: address, metrics, health, stop) with the role's own parts beside it.
//!
//! Stopping is ordered: the gRPC server stops taking requests and lets
//! in-flight ones end (within a grace period: a table watch from a process
//! that stays up never ends by itself), background tasks are aborted, then
//! the role's own finish runs (a leaf checkpoints, a Raft member stops).

pub mod assigner;
pub mod config_mirror;
pub mod config_server;
pub mod config_sync;
mod error;
pub mod evaluator;
pub mod index;
pub mod leaf;
pub mod metrics;
pub mod mixer;
mod raft_member;
pub mod root_mixer;
pub mod router;
pub mod standalone;
pub mod transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::{Error, Result};
pub use metrics::Text;

/// Gathers a role's `/metrics` (unfinished, so a caller may add its own
/// before [`Text::finish`]).
pub type Metrics = Arc<dyn Fn() -> BoxFuture<'static, Text> + Send + Sync>;

/// Why a role cannot serve now, for `/healthz` (`None`: it can).
pub type Health = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// What a role does last when it stops.
type Finish = Box<dyn FnOnce() -> BoxFuture<'static, Result<()>> + Send>;

/// How long a stopping server waits for open streams before it drops them.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// A role that is serving.
pub struct Running {
    /// Its bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// Its metrics.
    pub metrics: Metrics,
    /// Its health.
    pub health: Health,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<Result<()>>>,
    background: Vec<JoinHandle<()>>,
    finish: Vec<Finish>,
}

impl Running {
    fn new(grpc_addr: SocketAddr, metrics: Metrics, health: Health, stop: watch::Sender<bool>) -> Self {
        Self { grpc_addr, metrics, health, stop, server: None, background: Vec::new(), finish: Vec::new() }
    }

    /// Follows the role's stop: becomes `true` when it stops (the HTTP
    /// port beside it stops with it).
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Runs `task` until the role stops.
    pub fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.background.push(tokio::spawn(task));
    }

    /// Runs `f` last when the role stops.
    pub fn on_stop(&mut self, f: impl FnOnce() -> BoxFuture<'static, Result<()>> + Send + 'static) {
        self.finish.push(Box::new(f));
    }

    /// Waits until the gRPC server ends: never while the role serves, an
    /// error if the server failed.
    pub async fn wait(&mut self) -> Result<()> {
        match self.server.as_mut() {
            Some(s) => {
                let r = s.await.map_err(|e| Error::Serve(format!("the gRPC server task failed: {e}")));
                self.server = None;
                r?
            }
            None => Ok(()),
        }
    }

    /// Stops the role (see the crate's documentation for the order).
    pub async fn shutdown(self) -> Result<()> {
        self.shutdown_within(STOP_GRACE).await
    }

    /// Like [`shutdown`](Self::shutdown), dropping requests and streams
    /// still open after `grace` (zero: at once, for a role whose only
    /// clients are in the same process and already stopped).
    pub async fn shutdown_within(mut self, grace: Duration) -> Result<()> {
        let _ = self.stop.send(true);
        let mut result = Ok(());
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            match tokio::time::timeout(grace, server).await {
                Ok(Ok(r)) => result = r,
                Ok(Err(e)) => result = Err(Error::Serve(format!("the gRPC server task failed: {e}"))),
                Err(_) => {
                    tracing::debug!("a server still had open streams at shutdown; closing them");
                    abort.abort();
                }
            }
        }
        for t in self.background.drain(..) {
            t.abort();
        }
        for f in self.finish.drain(..) {
            f().await?;
        }
        result
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Dropped without a shutdown (a simulated host killed): its tasks
        // go with it.
        for t in &self.background {
            t.abort();
        }
    }
}

/// A role that routes or judges by the zone table cannot serve without
/// one: it never reached an assigner member and had none cached. (An old
/// table is fine: zones keep working while the assigners are away.)
fn table_health(table: &danaus_assigner::TableWatcher) -> Option<String> {
    (table.current().version == 0).then(|| {
        "no zone table yet: no range assigner member has answered and none was cached; check --assigners".to_owned()
    })
}
