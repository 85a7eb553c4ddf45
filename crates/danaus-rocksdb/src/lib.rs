//! # danaus-rocksdb
//!
//! The long-term store on RocksDB: the only crate in Danaus that links it.
//! [`RocksKv`] implements `danaus_storage::KvStore` with one RocksDB column
//! family per [`Cf`]. Chunks are already compressed by `danaus-codec`, so
//! the chunk family skips block compression on its hot levels and uses zstd
//! only at the bottom; the series and meta families use LZ4.
//!
//! Writes with `sync = true` go through the RocksDB WAL with fsync, so they
//! are durable on return; range deletes use RocksDB's native range
//! tombstones.

use std::path::Path;

use danaus_storage::{Cf, Error, KvStore, Result, WriteBatch, WriteOp};
use rocksdb::{ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options, WriteOptions, DB};

/// RocksDB behind the [`KvStore`] trait.
pub struct RocksKv {
    db: DB,
}

impl std::fmt::Debug for RocksKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksKv").field("path", &self.db.path()).finish()
    }
}

fn kv_err(context: &str, e: rocksdb::Error) -> Error {
    Error::Kv(format!("{context}: {e}"))
}

impl RocksKv {
    /// Opens (creating if needed) a store in `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        let cfs = Cf::ALL.iter().map(|cf| {
            let mut o = Options::default();
            match cf {
                Cf::Chunks => {
                    o.set_compression_type(DBCompressionType::None);
                    o.set_bottommost_compression_type(DBCompressionType::Zstd);
                }
                _ => o.set_compression_type(DBCompressionType::Lz4),
            }
            ColumnFamilyDescriptor::new(cf.name(), o)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)
            .map_err(|e| kv_err(&format!("opening RocksDB at {}", path.display()), e))?;
        Ok(Self { db })
    }

    fn cf(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(cf.name()).ok_or_else(|| Error::Kv(format!("column family {} missing", cf.name())))
    }
}

impl KvStore for RocksKv {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(cf)?, key).map_err(|e| kv_err("get", e))
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut wb = rocksdb::WriteBatch::default();
        for op in &batch.ops {
            match op {
                WriteOp::Put(cf, k, v) => wb.put_cf(self.cf(*cf)?, k, v),
                WriteOp::Delete(cf, k) => wb.delete_cf(self.cf(*cf)?, k),
                WriteOp::DeleteRange(cf, s, e) => wb.delete_range_cf(self.cf(*cf)?, s, e),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(wb, &wo).map_err(|e| kv_err("write", e))
    }

    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let mut ro = rocksdb::ReadOptions::default();
        if !end.is_empty() {
            ro.set_iterate_upper_bound(end.to_vec());
        }
        let iter = self.db.iterator_cf_opt(self.cf(cf)?, ro, IteratorMode::From(start, Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(|e| kv_err("scan", e))?;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn disk_bytes(&self) -> Result<u64> {
        let mut total = 0;
        for cf in Cf::ALL {
            let size = self
                .db
                .property_int_value_cf(self.cf(cf)?, "rocksdb.total-sst-files-size")
                .map_err(|e| kv_err("size", e))?
                .unwrap_or(0);
            total += size;
        }
        Ok(total)
    }

    fn flush(&self) -> Result<()> {
        for cf in Cf::ALL {
            self.db.flush_cf(self.cf(cf)?).map_err(|e| kv_err("flush", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn persists_across_reopen_with_range_deletes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = RocksKv::open(dir.path()).unwrap();
            let mut b = WriteBatch::default();
            for i in 0u8..10 {
                b.put(Cf::Chunks, vec![i], vec![i]);
            }
            b.put(Cf::Meta, b"k".to_vec(), b"v".to_vec());
            kv.write(b, true).unwrap();
            let mut b = WriteBatch::default();
            b.delete_range(Cf::Chunks, vec![3], vec![6]);
            kv.write(b, true).unwrap();
        }
        let kv = RocksKv::open(dir.path()).unwrap();
        let mut keys = Vec::new();
        kv.scan(Cf::Chunks, &[0], &[9], &mut |k, _| {
            keys.push(k[0]);
            true
        })
        .unwrap();
        assert_eq!(keys, vec![0, 1, 2, 6, 7, 8]);
        assert_eq!(kv.get(Cf::Meta, b"k").unwrap(), Some(b"v".to_vec()));
        kv.flush().unwrap();
        assert!(kv.disk_bytes().unwrap() > 0);
    }
}
