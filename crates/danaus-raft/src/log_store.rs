//! The Raft log on the [`KvStore`] seam.
//!
//! Keys in [`Cf::Raft`], prefixed by the group's name and a `0x00`:
//! `v` the vote, `c` the committed log id, `p` the last purged log id,
//! `l` + big-endian index an entry, `s` the latest snapshot. Entries and
//! votes are JSON. Every write that openraft must find after a crash
//! (votes, appends, truncations, purges) is synced before it is reported
//! done.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use danaus_storage::{run_blocking, Cf, KvStore, WriteBatch};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{NodeId, TypeConfig};

type StorageResult<T> = Result<T, StorageError<NodeId>>;

/// The key space of one group in [`Cf::Raft`].
#[derive(Debug, Clone)]
pub(crate) struct GroupKeys {
    prefix: Vec<u8>,
}

impl GroupKeys {
    pub(crate) fn new(group: &str) -> Self {
        let mut prefix = group.as_bytes().to_vec();
        prefix.push(0);
        Self { prefix }
    }

    pub(crate) fn key(&self, tag: u8) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.push(tag);
        k
    }

    fn entry(&self, index: u64) -> Vec<u8> {
        let mut k = self.key(b'l');
        k.extend_from_slice(&index.to_be_bytes());
        k
    }

    /// The first key past every entry.
    fn entries_end(&self) -> Vec<u8> {
        self.key(b'l' + 1)
    }
}

/// Reads a JSON value stored under `key`.
pub(crate) async fn read_json<T: DeserializeOwned + Send + 'static>(
    kv: &Arc<dyn KvStore>,
    key: Vec<u8>,
) -> Result<Option<T>, AnyError> {
    let kv = kv.clone();
    let bytes = run_blocking(move || kv.get(Cf::Raft, &key))
        .await
        .map_err(|e| AnyError::new(&e))?
        .map_err(|e| AnyError::new(&e))?;
    bytes.map(|b| from_stored(&b).map_err(|e| AnyError::new(&e))).transpose()
}

/// Decodes a stored value. Logs written before the groups ran standard
/// Raft (one leader per term) name the leader's node in every log id and
/// vote (`"leader_id":{"term":T,"node_id":N}`); such a value is rewritten
/// to today's form (a log id's leader is its term; a vote's is the term
/// and whom it was cast for) and decoded.
pub(crate) fn from_stored<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    // Today's form never holds a "node_id" key (a command's own JSON is a
    // string inside, where the quotes are escaped), so only old values pay.
    if !bytes.windows(9).any(|w| w == b"\"node_id\"") {
        return serde_json::from_slice(bytes);
    }
    let mut v: serde_json::Value = serde_json::from_slice(bytes)?;
    upgrade_leader_ids(&mut v);
    serde_json::from_value(v)
}

fn upgrade_leader_ids(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let is_vote = m.contains_key("committed");
            if let Some(Value::Object(id)) = m.get_mut("leader_id") {
                if let (Some(term), Some(node)) = (id.get("term").cloned(), id.get("node_id").cloned()) {
                    let upgraded = if is_vote { serde_json::json!({ "term": term, "voted_for": node }) } else { term };
                    m.insert("leader_id".into(), upgraded);
                }
            }
            for x in m.values_mut() {
                upgrade_leader_ids(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(upgrade_leader_ids),
        _ => {}
    }
}

/// Writes `batch` synced.
pub(crate) async fn write_synced(kv: &Arc<dyn KvStore>, batch: WriteBatch) -> Result<(), AnyError> {
    let kv = kv.clone();
    run_blocking(move || kv.write(batch, true)).await.map_err(|e| AnyError::new(&e))?.map_err(|e| AnyError::new(&e))
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, AnyError> {
    serde_json::to_vec(v).map_err(|e| AnyError::new(&e))
}

/// A group's Raft log on a [`KvStore`]. Clones share the store and the
/// cached log state; openraft uses a clone as its log reader.
#[derive(Clone)]
pub struct KvLogStore {
    kv: Arc<dyn KvStore>,
    keys: GroupKeys,
    /// (last purged, last present) log ids, kept in memory: the store has
    /// no reverse scan, so the last entry is found once at open.
    state: Arc<Mutex<Ends>>,
}

/// (last purged, last present) log ids.
type Ends = (Option<LogId<NodeId>>, Option<LogId<NodeId>>);

impl Debug for KvLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvLogStore").field("keys", &self.keys).finish()
    }
}

impl KvLogStore {
    /// Opens the log of `group` in `kv`, finding its last entry.
    pub async fn open(kv: Arc<dyn KvStore>, group: &str) -> Result<Self, crate::Error> {
        let keys = GroupKeys::new(group);
        let purged: Option<LogId<NodeId>> =
            read_json(&kv, keys.key(b'p')).await.map_err(|e| crate::Error::Storage(e.to_string()))?;
        let (kv2, start, end) = (kv.clone(), keys.entry(0), keys.entries_end());
        let last = run_blocking(move || {
            let mut last: Option<Vec<u8>> = None;
            kv2.scan(Cf::Raft, &start, &end, &mut |_, v| {
                last = Some(v.to_vec());
                true
            })
            .map(|()| last)
        })
        .await
        .map_err(|e| crate::Error::Storage(e.to_string()))?
        .map_err(|e| crate::Error::Storage(e.to_string()))?;
        let last = match last {
            Some(bytes) => {
                let e: Entry<TypeConfig> = from_stored(&bytes)
                    .map_err(|e| crate::Error::Storage(format!("group {group:?}: corrupt log entry: {e}")))?;
                Some(e.log_id)
            }
            None => purged,
        };
        Ok(Self { kv, keys, state: Arc::new(Mutex::new((purged, last))) })
    }

    pub(crate) fn kv(&self) -> &Arc<dyn KvStore> {
        &self.kv
    }
}

impl RaftLogReader<TypeConfig> for KvLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) if *i == u64::MAX => self.keys.entries_end(),
            Bound::Included(i) => self.keys.entry(i + 1),
            Bound::Excluded(i) => self.keys.entry(*i),
            Bound::Unbounded => self.keys.entries_end(),
        };
        let (kv, start) = (self.kv.clone(), self.keys.entry(start));
        let read = run_blocking(move || {
            let mut out = Vec::new();
            let mut bad = None;
            kv.scan(Cf::Raft, &start, &end, &mut |_, v| match from_stored::<Entry<TypeConfig>>(v) {
                Ok(e) => {
                    out.push(e);
                    true
                }
                Err(e) => {
                    bad = Some(e);
                    false
                }
            })
            .map(|()| (out, bad))
        })
        .await
        .map_err(|e| StorageIOError::read_logs(&e))?
        .map_err(|e| StorageIOError::read_logs(&e))?;
        match read {
            (_, Some(e)) => Err(StorageIOError::read_logs(&e).into()),
            (entries, None) => Ok(entries),
        }
    }
}

impl RaftLogStorage<TypeConfig> for KvLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let (last_purged_log_id, last_log_id) = *self.state.lock();
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        let mut b = WriteBatch::default();
        b.put(Cf::Raft, self.keys.key(b'v'), to_json(vote).map_err(StorageIOError::write_vote)?);
        write_synced(&self.kv, b).await.map_err(StorageIOError::write_vote)?;
        Ok(())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        Ok(read_json(&self.kv, self.keys.key(b'v')).await.map_err(StorageIOError::read_vote)?)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        let mut b = WriteBatch::default();
        b.put(Cf::Raft, self.keys.key(b'c'), to_json(&committed).map_err(StorageIOError::write)?);
        // Not synced: a lost committed id is recomputed from the leader.
        let kv = self.kv.clone();
        run_blocking(move || kv.write(b, false))
            .await
            .map_err(|e| StorageIOError::write(&e))?
            .map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        let c: Option<Option<LogId<NodeId>>> =
            read_json(&self.kv, self.keys.key(b'c')).await.map_err(StorageIOError::read)?;
        Ok(c.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut b = WriteBatch::default();
        let mut last = None;
        for e in entries {
            b.put(Cf::Raft, self.keys.entry(e.log_id.index), to_json(&e).map_err(StorageIOError::write_logs)?);
            last = Some(e.log_id);
        }
        if b.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        let r = write_synced(&self.kv, b).await;
        match r {
            Ok(()) => {
                if last.is_some() {
                    self.state.lock().1 = last;
                }
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let mut b = WriteBatch::default();
        b.delete_range(Cf::Raft, self.keys.entry(log_id.index), self.keys.entries_end());
        write_synced(&self.kv, b).await.map_err(StorageIOError::write_logs)?;
        // The new last entry is the one before the cut, or the purge point.
        let prev = match log_id.index.checked_sub(1) {
            Some(i) => self.try_get_log_entries(i..=i).await?.pop().map(|e| e.log_id),
            None => None,
        };
        let mut st = self.state.lock();
        st.1 = prev.or(st.0);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let mut b = WriteBatch::default();
        b.put(Cf::Raft, self.keys.key(b'p'), to_json(&log_id).map_err(StorageIOError::write_logs)?);
        b.delete_range(Cf::Raft, self.keys.entry(0), self.keys.entry(log_id.index.saturating_add(1)));
        write_synced(&self.kv, b).await.map_err(StorageIOError::write_logs)?;
        let mut st = self.state.lock();
        st.0 = Some(log_id);
        if st.1.is_none_or(|l| l.index < log_id.index) {
            st.1 = Some(log_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use openraft::{CommittedLeaderId, Vote};

    use super::*;

    /// Logs written before groups ran standard Raft (one leader per term;
    /// openraft's `single-term-leader`) named the leader's node in every
    /// log id and vote. They still decode, keeping terms, indexes and whom
    /// a vote was cast for.
    #[test]
    fn ids_and_votes_stored_with_leader_nodes_still_decode() {
        let id: LogId<NodeId> = from_stored(br#"{"leader_id":{"term":3,"node_id":2},"index":17}"#).unwrap();
        assert_eq!(id, LogId::new(CommittedLeaderId::new(3, 2), 17));
        let vote: Vote<NodeId> = from_stored(br#"{"leader_id":{"term":3,"node_id":2},"committed":true}"#).unwrap();
        assert_eq!(vote, Vote::new_committed(3, 2));
        let entry: Entry<TypeConfig> = from_stored(
            br#"{"log_id":{"leader_id":{"term":1,"node_id":1},"index":4},"payload":{"Normal":"{\"x\":1}"}}"#,
        )
        .unwrap();
        assert_eq!(entry.log_id, LogId::new(CommittedLeaderId::new(1, 1), 4));
        // Today's form is read as it is.
        let now = serde_json::to_vec(&vote).unwrap();
        assert_eq!(from_stored::<Vote<NodeId>>(&now).unwrap(), vote);
        // What is neither form is an error, not a guess.
        assert!(from_stored::<Vote<NodeId>>(br#"{"leader_id":7}"#).is_err());
    }
}
