//! # danaus-storage
//!
//! The storage seams of a leaf, and everything that sits directly on them.
//!
//! * [`LogDevice`] — where the recovery log's segments live: the file
//!   system ([`FsLogDevice`]) or memory ([`MemLogDevice`], which simulation
//!   uses and which loses unsynced bytes on [`MemLogDevice::crash`]).
//! * [`RecoveryLog`] — a segmented, CRC-checked write-ahead log with group
//!   commit: one task drains every pending append, writes them as one batch
//!   and issues one fsync; each caller is answered only after that fsync.
//!   Replay reads segments oldest first; a torn tail (a crash mid-write) is
//!   truncated and reported, never a failed start.
//! * [`KvStore`] — the long-term store: ordered keys in a few column
//!   families ([`Cf`]). RocksDB implements it in `danaus-rocksdb` (the only
//!   crate that links RocksDB); [`MemKv`] implements it for tests and
//!   simulation.
//! * [`StateDir`] — a few small named blobs a role keeps across restarts
//!   (the last zone table it saw): files ([`FsStateDir`], replaced
//!   atomically and durably) or memory ([`MemStateDir`]).
//! * [`Clock`] — wall time, so simulation can control it.
//!
//! All trait methods are blocking; async callers run them on
//! `spawn_blocking`, so no fsync ever stalls an async worker thread.

mod blocking;
mod clock;
mod error;
mod kv;
mod log_device;
mod state_dir;
mod wal;

pub use blocking::run_blocking;
pub use clock::{Clock, SystemClock};
pub use error::{Error, Result};
pub use kv::{Cf, KvStore, MemKv, WriteBatch, WriteOp};
#[cfg(not(madsim))]
pub use log_device::FsLogDevice;
pub use log_device::{LogDevice, MemLogDevice, SegmentWriter};
#[cfg(not(madsim))]
pub use state_dir::FsStateDir;
pub use state_dir::{MemStateDir, SharedStateDir, StateDir};
pub use wal::{LogOptions, LogStats, Lsn, RecoveryLog, ReplayReport};
