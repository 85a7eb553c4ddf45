//! What an evaluator reads from, writes to and hands transitions on to:
//! the seams a server, standalone and the simulation fill in.

use std::sync::Arc;

use danaus_promql::Storage;
use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::state::{Notice, StoredPoint};

/// Where rules read: one [`Storage`] per evaluation, so its
/// [`warnings`](Storage::warnings) (sources that did not answer) are that
/// evaluation's.
pub trait Source: Send + Sync + 'static {
    /// A tenant's series.
    fn storage(&self, tenant: &str) -> Box<dyn Storage>;
}

/// Why derived points were not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Nothing is known to be written: try again later.
    Retry(String),
}

/// Where derived points go: the normal write path. A point written twice
/// (same series, time and value) must be taken as a duplicate, not an
/// error.
pub trait Sink: Send + Sync + 'static {
    /// Writes `points` of `tenant`; `Ok(refused)` when they are written
    /// but for `refused` points the write path refused for good (each
    /// logged by the sink, saying why).
    fn write<'a>(&'a self, tenant: &'a str, points: &'a [StoredPoint]) -> BoxFuture<'a, Result<u64, WriteError>>;
}

/// Where alert transitions are handed on, in sequence order, at least
/// once (each carries its idempotency key, [`Notice::key`]).
pub trait Notifier: Send + Sync + 'static {
    /// Hands `notices` on; `Err` when they must be offered again.
    fn deliver<'a>(&'a self, notices: &'a [Notice]) -> BoxFuture<'a, Result<(), String>>;

    /// Offered every `resend_delay` on the leader: every alert firing or
    /// resolved in the last 15 minutes, as it stands (Alertmanager
    /// forgets a firing alert it has not heard of for a while).
    /// Best effort; by default nothing.
    fn resend<'a>(&'a self, _alerts: &'a [Notice]) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// A notifier that keeps what it is handed (tests).
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    notices: Arc<Mutex<Vec<Notice>>>,
    keep: Option<usize>,
}

impl Recorder {
    /// Keeps at most the last `n` notices.
    pub fn bounded(n: usize) -> Self {
        Self { notices: Arc::default(), keep: Some(n) }
    }

    /// What it was handed, in order.
    pub fn notices(&self) -> Vec<Notice> {
        self.notices.lock().clone()
    }
}

impl Notifier for Recorder {
    fn deliver<'a>(&'a self, notices: &'a [Notice]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut n = self.notices.lock();
            n.extend_from_slice(notices);
            if let Some(keep) = self.keep {
                let over = n.len().saturating_sub(keep);
                n.drain(..over);
            }
            Ok(())
        })
    }
}

/// A notifier that logs each transition (standalone's, until a notifier
/// or Alertmanager is configured: the alerts APIs show the alerts either
/// way).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn deliver<'a>(&'a self, notices: &'a [Notice]) -> BoxFuture<'a, Result<(), String>> {
        for n in notices {
            tracing::info!(
                key = %n.key(),
                tenant = %n.tenant,
                group = %n.group,
                alert = %n.rule,
                from = n.from.as_str(),
                to = n.to.as_str(),
                "alert transition"
            );
        }
        Box::pin(async { Ok(()) })
    }
}
