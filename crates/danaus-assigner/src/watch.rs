//! Following the zone table from the assigner's members.
//!
//! A [`TableWatcher`] streams the table from one member at a time
//! (`AssignerService.Watch`), moves on to the next when that member goes
//! away, and never goes back to an older version. While every member is
//! unreachable it keeps the last table it had, so routers keep routing
//! and mixers keep querying through an assigner outage. With a cache
//! ([`TableWatcher::start_cached`], a blob in the role's
//! [`StateDir`](danaus_storage::StateDir)) the last table also survives a
//! restart of the process during the outage: it is saved (atomically) on
//! every new version and read at start.
//!
//! A table that was current once may not be now. A reader that must know
//! (a mixer calling an answer complete, see [`crate::READ_CONFIRM_WINDOW`])
//! asks the watcher to keep confirming it ([`TableWatcher::keep_confirmed`]):
//! a linearizable read of the latest version from the group's leader,
//! recorded with the time the read was *sent* (the leader answered later,
//! so every version committed before that time is in the answer), once the
//! watched table has reached that version.

use danaus_storage::SharedStateDir;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use danaus_proto::v1 as pb;
use pb::assigner_service_client::AssignerServiceClient;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::ZoneClient;
use crate::table::ZoneTable;

/// The latest zone table known here.
#[derive(Clone)]
pub struct TableWatcher {
    rx: watch::Receiver<Arc<ZoneTable>>,
    // Keeps a fixed watcher's channel open.
    _tx: Option<Arc<watch::Sender<Arc<ZoneTable>>>>,
    confirm: Arc<Confirm>,
}

/// A linearizable read that found `version` the latest, sent at `sent_at`.
#[derive(Debug, Clone, Copy)]
struct Confirmed {
    sent_at: Instant,
    version: u64,
}

/// How a watcher's table is confirmed current.
enum Confirm {
    /// It is the truth itself (a fixed table; an in-process channel).
    Always,
    /// By reads of the latest version from the assigner members.
    Remote { zone: ZoneClient, latest: watch::Sender<Option<Confirmed>>, running: AtomicBool },
}

/// Why a table could not be confirmed current.
#[derive(Debug, thiserror::Error)]
pub enum Unconfirmed {
    /// No confirmation was sent recently enough.
    #[error(
        "the zone table (version {have}) was not confirmed current within {within:?} (last confirmed: {last}); \
         is the range assigner reachable?"
    )]
    Stale {
        /// The version held.
        have: u64,
        /// The window asked for.
        within: Duration,
        /// When the last confirmation was sent, for the message.
        last: String,
    },
    /// A newer version took a replica out of a range's read set.
    #[error(
        "the zone table changed (version {latest} is current and took a replica out of a range's read set; \
         this answer was planned at version {have})"
    )]
    Changed {
        /// The version planned by.
        have: u64,
        /// The version confirmed current.
        latest: u64,
    },
}

impl std::fmt::Debug for TableWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWatcher").field("version", &self.rx.borrow().version).finish()
    }
}

/// Why a table version did not arrive.
#[derive(Debug, thiserror::Error)]
#[error("zone table version {wanted} not seen within {waited:?} (have {have}); is the range assigner reachable?")]
pub struct NotYet {
    /// The version waited for.
    pub wanted: u64,
    /// The version held.
    pub have: u64,
    /// How long it waited.
    pub waited: Duration,
}

impl TableWatcher {
    /// Follows the table from the assigner members at `addrs` (host:port).
    pub fn start(addrs: Vec<String>) -> Self {
        Self::start_cached(addrs, None)
    }

    /// Like [`start`](Self::start), starting from the table kept in `cache`
    /// (if it holds one) and keeping every newer version there.
    pub fn start_cached(addrs: Vec<String>, cache: Option<TableCache>) -> Self {
        let initial = cache.as_ref().and_then(TableCache::load).unwrap_or_default();
        if initial.version > 0 {
            tracing::info!(version = initial.version, "starting from the cached zone table");
        }
        let (tx, rx) = watch::channel(Arc::new(initial));
        let confirm = Arc::new(Confirm::Remote {
            zone: ZoneClient::new(addrs.clone()),
            latest: watch::Sender::new(None),
            running: AtomicBool::new(false),
        });
        tokio::spawn(follow(addrs, tx, cache));
        Self { rx, _tx: None, confirm }
    }

    /// A watcher fed by `tx` (in-process assigners and tests): what `tx`
    /// sends is the truth, always current.
    pub fn from_channel(rx: watch::Receiver<Arc<ZoneTable>>) -> Self {
        Self { rx, _tx: None, confirm: Arc::new(Confirm::Always) }
    }

    /// A watcher that always sees `table` (always current).
    pub fn fixed(table: ZoneTable) -> Self {
        let (tx, rx) = watch::channel(Arc::new(table));
        Self { rx, _tx: Some(Arc::new(tx)), confirm: Arc::new(Confirm::Always) }
    }

    /// Confirms the table current every `every` from now on, in the
    /// background (the first call starts it; later calls do nothing).
    pub fn keep_confirmed(&self, every: Duration) {
        let Confirm::Remote { running, .. } = &*self.confirm else { return };
        if running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (confirm, watcher) = (self.confirm.clone(), self.clone());
        tokio::spawn(async move {
            let Confirm::Remote { zone, latest, .. } = &*confirm else { return };
            loop {
                let sent_at = Instant::now();
                match zone.latest_version_within(every.max(Duration::from_millis(100))).await {
                    Ok(version) => match watcher.wait_for(version, every * 4).await {
                        Ok(_) => latest.send_modify(|c| {
                            if c.is_none_or(|c| c.sent_at < sent_at) {
                                *c = Some(Confirmed { sent_at, version });
                            }
                        }),
                        Err(e) => tracing::debug!("confirming the zone table: {e}"),
                    },
                    Err(s) => tracing::debug!("confirming the zone table: {}", s.message()),
                }
                tokio::time::sleep_until(sent_at + every).await;
            }
        });
    }

    /// The current table, if a read sent within `within` confirmed it
    /// current (a fixed or in-process table always is).
    pub fn confirmed(&self, within: Duration) -> Result<Arc<ZoneTable>, Unconfirmed> {
        let table = self.current();
        let Confirm::Remote { latest, .. } = &*self.confirm else { return Ok(table) };
        let c = *latest.borrow();
        match c {
            Some(c) if c.sent_at.elapsed() < within && table.version >= c.version => Ok(table),
            _ => Err(Unconfirmed::Stale {
                have: table.version,
                within,
                last: c.map_or_else(|| "never".to_owned(), |c| format!("{:?} ago", c.sent_at.elapsed())),
            }),
        }
    }

    /// The latest confirmation: when the read that found the table current
    /// was sent, and the version it found (the watcher holds that version
    /// or a newer one). A fixed or in-process table is confirmed now.
    pub fn last_confirmed(&self) -> Option<(Instant, u64)> {
        match &*self.confirm {
            Confirm::Always => Some((Instant::now(), self.current().version)),
            Confirm::Remote { latest, .. } => latest.borrow().map(|c| (c.sent_at, c.version)),
        }
    }

    /// Waits at most `timeout` for a confirmation sent at or after `since`
    /// (starting the background confirmation if nothing started it), and
    /// checks that a table of version `planned` was current then.
    pub async fn confirm_since(&self, since: Instant, planned: u64, timeout: Duration) -> Result<(), Unconfirmed> {
        let Confirm::Remote { latest, .. } = &*self.confirm else { return Ok(()) };
        self.keep_confirmed(crate::READ_CONFIRM_WINDOW / 4);
        let mut rx = latest.subscribe();
        let wait = async {
            loop {
                if let Some(c) = *rx.borrow_and_update() {
                    if c.sent_at >= since {
                        return Some(c);
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Some(c)) if c.version <= planned => Ok(()),
            // Newer versions that shrank no range's read set (schemas,
            // joins, promotions, splits) leave a plan's replicas holding
            // everything acknowledged: it still counts.
            Ok(Some(_)) if !self.current().ranges.values().any(|r| r.read_set_shrunk_at > planned) => Ok(()),
            Ok(Some(c)) => Err(Unconfirmed::Changed { have: planned, latest: c.version }),
            _ => {
                let c = *latest.borrow();
                Err(Unconfirmed::Stale {
                    have: planned,
                    within: timeout,
                    last: c.map_or_else(|| "never".to_owned(), |c| format!("{:?} ago", c.sent_at.elapsed())),
                })
            }
        }
    }

    /// The latest table.
    pub fn current(&self) -> Arc<ZoneTable> {
        self.rx.borrow().clone()
    }

    /// Changes as they arrive.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ZoneTable>> {
        self.rx.clone()
    }

    /// Waits until the table reaches `version`.
    pub async fn wait_for(&self, version: u64, timeout: Duration) -> Result<Arc<ZoneTable>, NotYet> {
        let mut rx = self.rx.clone();
        let wait = async {
            loop {
                let t = rx.borrow_and_update().clone();
                if t.version >= version {
                    return Some(t);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Some(t)) => Ok(t),
            _ => Err(NotYet { wanted: version, have: self.rx.borrow().version, waited: timeout }),
        }
    }
}

/// Where a watcher keeps the last table it saw: blob `name` of a state
/// directory.
#[derive(Clone)]
pub struct TableCache {
    /// The role's state directory.
    pub dir: SharedStateDir,
    /// The blob's name (`zone-table.json`).
    pub name: String,
}

impl TableCache {
    /// The cache `name` in `dir`.
    pub fn new(dir: SharedStateDir, name: impl Into<String>) -> Self {
        Self { dir, name: name.into() }
    }

    /// The table it holds, if it holds a readable one.
    pub fn load(&self) -> Option<ZoneTable> {
        let bytes = match self.dir.load(&self.name) {
            Ok(b) => b?,
            Err(e) => {
                tracing::warn!(name = %self.name, "ignoring an unreadable zone table cache: {e}");
                return None;
            }
        };
        match serde_json::from_slice(&bytes) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(name = %self.name, "ignoring a damaged zone table cache: {e}");
                None
            }
        }
    }

    /// Replaces what it holds with `table`, atomically.
    pub fn save(&self, table: &ZoneTable) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(table).map_err(std::io::Error::other)?;
        self.dir.save(&self.name, &bytes)
    }
}

async fn follow(addrs: Vec<String>, tx: watch::Sender<Arc<ZoneTable>>, cache: Option<TableCache>) {
    if let Some(cache) = cache {
        // Keep every new version in the cache, off the async workers.
        let mut rx = tx.subscribe();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let t = rx.borrow_and_update().clone();
                let c = cache.clone();
                match danaus_storage::run_blocking(move || c.save(&t)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) | Err(e) => tracing::warn!(name = %cache.name, "saving the zone table cache: {e}"),
                }
            }
        });
    }
    if addrs.is_empty() {
        tracing::error!("no range assigner addresses: the zone table stays empty");
        return;
    }
    let mut backoff = Duration::from_millis(50);
    let mut i = 0usize;
    loop {
        if tx.is_closed() {
            return;
        }
        let addr = &addrs[i % addrs.len()];
        i += 1;
        match stream_from(addr, &tx).await {
            Ok(()) => backoff = Duration::from_millis(50),
            Err(e) => {
                tracing::debug!(assigner = %addr, "zone table watch: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn stream_from(addr: &str, tx: &watch::Sender<Arc<ZoneTable>>) -> Result<(), String> {
    let channel = danaus_proto::channels::endpoint(addr)?.connect().await.map_err(|e| format!("connect: {e}"))?;
    let mut client = AssignerServiceClient::new(channel).max_decoding_message_size(256 << 20);
    let min_version = tx.borrow().version;
    let mut stream =
        client.watch(pb::WatchTableRequest { min_version }).await.map_err(|s| s.message().to_owned())?.into_inner();
    while let Some(update) = stream.message().await.map_err(|s| s.message().to_owned())? {
        if update.version <= tx.borrow().version {
            continue;
        }
        let table: ZoneTable =
            serde_json::from_slice(&update.table_json).map_err(|e| format!("undecodable zone table: {e}"))?;
        tracing::debug!(assigner = %addr, version = table.version, "zone table");
        tx.send_replace(Arc::new(table));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::table::ZoneCommand;
    use danaus_raft::StateMachine;

    #[tokio::test]
    async fn a_cached_table_is_there_at_start_with_no_assigner_reachable() {
        let dir = danaus_storage::MemStateDir::new();
        let cache = TableCache::new(Arc::new(dir.clone()), "zone-table.json");
        let mut t = ZoneTable::default();
        t.apply(ZoneCommand::Init { replication: 2 }).unwrap();
        t.apply(ZoneCommand::RegisterLeaf { leaf: "a".into(), addr: "a:1".into() }).unwrap();
        cache.save(&t).unwrap();
        // Nothing listens there: only the cache can provide the table.
        let w = TableWatcher::start_cached(vec!["127.0.0.1:9".into()], Some(cache.clone()));
        assert_eq!(*w.current(), t);
        danaus_storage::StateDir::save(&dir, "zone-table.json", b"{ not json").unwrap();
        assert!(cache.load().is_none(), "a damaged cache is ignored, not trusted");
    }
}
