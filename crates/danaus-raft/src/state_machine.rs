//! The replicated state machine: the [`StateMachine`] trait a group's user
//! implements, and its adapter to openraft ([`SmStore`]).
//!
//! The state lives in memory, shared with the [`RaftGroup`](crate::RaftGroup)
//! handle for reads. Snapshots are the whole state as JSON with the log id
//! and membership they cover; the latest is kept in the store (`s` key) so
//! a restart restores it and replays only the entries after it.

use std::fmt::Debug;
use std::io::Cursor;
use std::sync::Arc;

use danaus_storage::{Cf, WriteBatch};
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, StorageError, StorageIOError,
    StoredMembership,
};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::log_store::{read_json, to_json, write_synced, GroupKeys, KvLogStore};
use crate::{NodeId, Reply, TypeConfig};

type StorageResult<T> = Result<T, StorageError<NodeId>>;

/// A deterministic state machine replicated by a [`RaftGroup`](crate::RaftGroup).
///
/// `apply` must be a pure function of the state and the command (no clock,
/// no randomness, no I/O): every member applies the same commands in the
/// same order and must reach the same state. Commands that cannot apply
/// return their refusal in the reply; they still occupy a log entry.
pub trait StateMachine: Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static {
    /// What callers propose.
    type Command: Serialize + DeserializeOwned + Debug + Send + Sync + 'static;
    /// What applying a command answers.
    type Reply: Serialize + DeserializeOwned + Debug + Send + Sync + 'static;

    /// Applies one command.
    fn apply(&mut self, cmd: Self::Command) -> Self::Reply;
}

/// The applied state and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "S: StateMachine")]
pub(crate) struct Applied<S> {
    pub(crate) last_applied: Option<LogId<NodeId>>,
    pub(crate) membership: StoredMembership<NodeId, BasicNode>,
    pub(crate) state: S,
}

impl<S: StateMachine> Default for Applied<S> {
    fn default() -> Self {
        Self { last_applied: None, membership: StoredMembership::default(), state: S::default() }
    }
}

/// A stored snapshot.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

/// openraft's view of a [`StateMachine`].
pub(crate) struct SmStore<S: StateMachine> {
    pub(crate) applied: Arc<RwLock<Applied<S>>>,
    changes: watch::Sender<u64>,
    log: KvLogStore,
    keys: GroupKeys,
    snapshots_built: u64,
}

impl<S: StateMachine> SmStore<S> {
    /// Opens the state machine of a group, restoring its latest snapshot.
    pub(crate) async fn open(log: KvLogStore, group: &str) -> Result<(Self, watch::Receiver<u64>), crate::Error> {
        let keys = GroupKeys::new(group);
        let stored: Option<StoredSnapshot> =
            read_json(log.kv(), keys.key(b's')).await.map_err(|e| crate::Error::Storage(e.to_string()))?;
        let applied = match stored {
            Some(s) => {
                let state: S = serde_json::from_slice(&s.data)
                    .map_err(|e| crate::Error::Storage(format!("group {group:?}: corrupt snapshot: {e}")))?;
                Applied { last_applied: s.meta.last_log_id, membership: s.meta.last_membership, state }
            }
            None => Applied::default(),
        };
        let (tx, rx) = watch::channel(applied.last_applied.map_or(0, |l| l.index));
        Ok((Self { applied: Arc::new(RwLock::new(applied)), changes: tx, log, keys, snapshots_built: 0 }, rx))
    }

    fn snapshot_of(&self, applied: &Applied<S>) -> Result<StoredSnapshot, AnyError> {
        let id = format!(
            "{}-{}",
            applied.last_applied.map_or_else(|| "none".to_owned(), |l| format!("{}-{}", l.leader_id, l.index)),
            self.snapshots_built
        );
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
            snapshot_id: id,
        };
        Ok(StoredSnapshot { meta, data: to_json(&applied.state)? })
    }

    async fn store(&self, s: &StoredSnapshot) -> Result<(), AnyError> {
        let mut b = WriteBatch::default();
        b.put(Cf::Raft, self.keys.key(b's'), to_json(s)?);
        write_synced(self.log.kv(), b).await
    }
}

/// Builds snapshots from a copy of the state taken when asked.
pub(crate) struct SnapshotBuilder<S: StateMachine> {
    snapshot: Result<StoredSnapshot, AnyError>,
    store: SmStoreRef<S>,
}

/// What a snapshot builder needs of the store.
struct SmStoreRef<S: StateMachine> {
    log: KvLogStore,
    keys: GroupKeys,
    _s: std::marker::PhantomData<S>,
}

impl<S: StateMachine> RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder<S> {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let s = std::mem::replace(&mut self.snapshot, Err(AnyError::error("snapshot already built")))
            .map_err(StorageIOError::read_state_machine)?;
        let mut b = WriteBatch::default();
        b.put(Cf::Raft, self.store.keys.key(b's'), to_json(&s).map_err(StorageIOError::write_state_machine)?);
        write_synced(self.store.log.kv(), b).await.map_err(|e| StorageIOError::write_snapshot(None, e))?;
        Ok(Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) })
    }
}

impl<S: StateMachine> RaftStateMachine<TypeConfig> for SmStore<S> {
    type SnapshotBuilder = SnapshotBuilder<S>;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>)> {
        let a = self.applied.read();
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Reply>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        let last = {
            let mut a = self.applied.write();
            for e in entries {
                a.last_applied = Some(e.log_id);
                let reply = match e.payload {
                    EntryPayload::Blank => Ok(None),
                    EntryPayload::Normal(cmd) => match serde_json::from_str::<S::Command>(&cmd.0) {
                        Ok(c) => Ok(Some(a.state.apply(c))),
                        Err(err) => Err(format!("command does not decode: {err}")),
                    },
                    EntryPayload::Membership(m) => {
                        a.membership = StoredMembership::new(Some(e.log_id), m);
                        Ok(None)
                    }
                };
                let reply: Result<Option<S::Reply>, String> = reply;
                replies
                    .push(Reply(serde_json::to_string(&reply).map_err(|err| StorageIOError::apply(e.log_id, &err))?));
            }
            a.last_applied
        };
        self.changes.send_replace(last.map_or(0, |l| l.index));
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshots_built += 1;
        let snapshot = {
            let a = self.applied.read();
            self.snapshot_of(&a)
        };
        SnapshotBuilder {
            snapshot,
            store: SmStoreRef { log: self.log.clone(), keys: self.keys.clone(), _s: std::marker::PhantomData },
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let data = snapshot.into_inner();
        let state: S =
            serde_json::from_slice(&data).map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let stored = StoredSnapshot { meta: meta.clone(), data };
        self.store(&stored).await.map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), e))?;
        {
            let mut a = self.applied.write();
            *a = Applied { last_applied: meta.last_log_id, membership: meta.last_membership.clone(), state };
        }
        self.changes.send_replace(meta.last_log_id.map_or(0, |l| l.index));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let s: Option<StoredSnapshot> =
            read_json(self.log.kv(), self.keys.key(b's')).await.map_err(|e| StorageIOError::read_snapshot(None, e))?;
        Ok(s.map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
