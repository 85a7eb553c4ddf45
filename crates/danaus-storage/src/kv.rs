//! The long-term store seam: an ordered key-value store with column families.

use std::collections::BTreeMap;
use std::ops::Bound;

use parking_lot::RwLock;

use crate::error::Result;

/// Column families of the long-term store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// Schemas and bookkeeping.
    Meta,
    /// Series id → series key, and series key → series id.
    Series,
    /// (series id, chunk start, sequence) → chunk bytes.
    Chunks,
    /// Raft groups' logs, votes and snapshots, by group.
    Raft,
}

impl Cf {
    /// Every column family.
    pub const ALL: [Cf; 4] = [Cf::Meta, Cf::Series, Cf::Chunks, Cf::Raft];

    /// The column family's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Meta => "meta",
            Cf::Series => "series",
            Cf::Chunks => "chunks",
            Cf::Raft => "raft",
        }
    }
}

/// One mutation in a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Set a key.
    Put(Cf, Vec<u8>, Vec<u8>),
    /// Remove a key.
    Delete(Cf, Vec<u8>),
    /// Remove every key in `[start, end)`.
    DeleteRange(Cf, Vec<u8>, Vec<u8>),
}

/// Mutations applied atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The mutations, in order.
    pub ops: Vec<WriteOp>,
}

impl WriteBatch {
    /// Adds a put.
    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Put(cf, key.into(), value.into()));
    }
    /// Adds a delete.
    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Delete(cf, key.into()));
    }
    /// Adds a range delete of `[start, end)`.
    pub fn delete_range(&mut self, cf: Cf, start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::DeleteRange(cf, start.into(), end.into()));
    }
    /// Number of mutations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// An ordered key-value store with column families. Methods block.
pub trait KvStore: Send + Sync + 'static {
    /// Reads one key.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Applies a batch atomically; with `sync` it is durable on return.
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()>;
    /// Calls `f` for each key in `[start, end)` (an empty `end` means no
    /// upper bound) in order until it returns `false`.
    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()>;
    /// Bytes the store occupies on disk (estimate).
    fn disk_bytes(&self) -> Result<u64>;
    /// Makes everything written so far durable (memtables to disk).
    fn flush(&self) -> Result<()>;
}

/// An in-memory [`KvStore`] for tests and simulation. It lives as long as
/// the value (a simulated node keeps it across its own restarts), and it
/// keeps a store's durability contract: a write without `sync` is lost by
/// [`MemKv::crash`] until a synced write or a [`flush`](KvStore::flush)
/// makes it (and everything before it) durable, as RocksDB's unsynced
/// write-ahead log is lost with the machine.
#[derive(Debug, Default)]
pub struct MemKv {
    cfs: RwLock<BTreeMap<Cf, Family>>,
    /// What to put back to undo the writes not yet durable, oldest first.
    undo: parking_lot::Mutex<Vec<Undo>>,
}

/// A key's value before an unsynced write (`None`: it had none).
type Undo = (Cf, Vec<u8>, Option<Vec<u8>>);

type Family = BTreeMap<Vec<u8>, Vec<u8>>;

impl MemKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loses everything, synced or not: the disk was replaced.
    pub fn wipe(&self) {
        self.cfs.write().clear();
        self.undo.lock().clear();
    }

    /// Loses every write not yet durable, as a power loss would.
    pub fn crash(&self) {
        let mut cfs = self.cfs.write();
        let mut undo = self.undo.lock();
        while let Some((cf, k, old)) = undo.pop() {
            let m = cfs.entry(cf).or_default();
            match old {
                Some(v) => m.insert(k, v),
                None => m.remove(&k),
            };
        }
    }
}

impl KvStore for MemKv {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.cfs.read().get(&cf).and_then(|m| m.get(key).cloned()))
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut cfs = self.cfs.write();
        let mut undo = self.undo.lock();
        let mut record = |cf: Cf, k: &[u8], old: Option<Vec<u8>>| {
            if !sync {
                undo.push((cf, k.to_vec(), old));
            }
        };
        for op in batch.ops {
            match op {
                WriteOp::Put(cf, k, v) => {
                    let old = cfs.entry(cf).or_default().insert(k.clone(), v);
                    record(cf, &k, old);
                }
                WriteOp::Delete(cf, k) => {
                    let old = cfs.entry(cf).or_default().remove(&k);
                    record(cf, &k, old);
                }
                WriteOp::DeleteRange(cf, s, e) => {
                    let m = cfs.entry(cf).or_default();
                    let doomed: Vec<Vec<u8>> = m.range(s..e).map(|(k, _)| k.clone()).collect();
                    for k in doomed {
                        let old = m.remove(&k);
                        record(cf, &k, old);
                    }
                }
            }
        }
        if sync {
            // A synced write makes every earlier write durable too.
            undo.clear();
        }
        Ok(())
    }

    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let cfs = self.cfs.read();
        let Some(m) = cfs.get(&cf) else { return Ok(()) };
        let upper = if end.is_empty() { Bound::Unbounded } else { Bound::Excluded(end) };
        for (k, v) in m.range::<[u8], _>((Bound::Included(start), upper)) {
            if !f(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn disk_bytes(&self) -> Result<u64> {
        Ok(self.cfs.read().values().flat_map(|m| m.iter()).map(|(k, v)| (k.len() + v.len()) as u64).sum())
    }

    fn flush(&self) -> Result<()> {
        self.undo.lock().clear();
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mem_kv_scan_and_range_delete() {
        let kv = MemKv::new();
        let mut b = WriteBatch::default();
        for i in 0u8..10 {
            b.put(Cf::Chunks, vec![i], vec![i * 2]);
        }
        kv.write(b, true).unwrap();
        let mut b = WriteBatch::default();
        b.delete_range(Cf::Chunks, vec![2], vec![5]);
        b.delete(Cf::Chunks, vec![7]);
        kv.write(b, true).unwrap();
        let mut seen = Vec::new();
        kv.scan(Cf::Chunks, &[1], &[], &mut |k, _| {
            seen.push(k[0]);
            k[0] < 8
        })
        .unwrap();
        assert_eq!(seen, vec![1, 5, 6, 8]);
        assert_eq!(kv.get(Cf::Chunks, &[9]).unwrap(), Some(vec![18]));
        assert_eq!(kv.get(Cf::Meta, &[9]).unwrap(), None);
    }

    fn put(kv: &MemKv, k: u8, v: u8, sync: bool) {
        let mut b = WriteBatch::default();
        b.put(Cf::Meta, vec![k], vec![v]);
        kv.write(b, sync).unwrap();
    }

    #[test]
    fn mem_kv_crash_loses_only_unsynced_writes() {
        let kv = MemKv::new();
        put(&kv, 1, 10, true);
        put(&kv, 1, 11, false);
        put(&kv, 2, 20, false);
        let mut b = WriteBatch::default();
        b.delete_range(Cf::Meta, vec![0], vec![9]);
        kv.write(b, false).unwrap();
        kv.crash();
        assert_eq!(kv.get(Cf::Meta, &[1]).unwrap(), Some(vec![10]));
        assert_eq!(kv.get(Cf::Meta, &[2]).unwrap(), None);
        // A synced write makes the unsynced writes before it durable.
        put(&kv, 3, 30, false);
        put(&kv, 4, 40, true);
        put(&kv, 5, 50, false);
        kv.crash();
        assert_eq!(kv.get(Cf::Meta, &[3]).unwrap(), Some(vec![30]));
        assert_eq!(kv.get(Cf::Meta, &[4]).unwrap(), Some(vec![40]));
        assert_eq!(kv.get(Cf::Meta, &[5]).unwrap(), None);
        put(&kv, 6, 60, false);
        kv.flush().unwrap();
        kv.crash();
        assert_eq!(kv.get(Cf::Meta, &[6]).unwrap(), Some(vec![60]));
    }
}
