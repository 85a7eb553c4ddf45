//! The recovery log: segmented, CRC-checked, group-committed.
//!
//! Record format: `u32 length (LE) | u32 CRC-32 of the payload (LE) |
//! payload`. A committer task owns the open segment. It takes every append
//! waiting in its queue (up to [`LogOptions::max_batch_bytes`]), writes them
//! as one buffer, issues one fsync, and only then answers each caller with
//! its [`Lsn`]. After a failed write or fsync the log is poisoned: dirty
//! pages may have been dropped by the kernel, so nothing later may be
//! acknowledged. New appends always go to a fresh segment after a restart,
//! so a torn tail is never appended to.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::log_device::{LogDevice, SegmentWriter};

/// Tuning of the recovery log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Largest single record.
    pub max_record_bytes: usize,
    /// Most bytes one group commit writes before syncing.
    pub max_batch_bytes: usize,
    /// Appends that may wait for the committer before callers block.
    pub queue_depth: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self { segment_bytes: 64 << 20, max_record_bytes: 96 << 20, max_batch_bytes: 16 << 20, queue_depth: 4096 }
    }
}

/// Position just past a record: the segment and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn {
    /// Segment id.
    pub segment: u64,
    /// Offset just past the record.
    pub offset: u64,
}

/// What replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Segments read.
    pub segments: usize,
    /// Records applied.
    pub records: u64,
    /// Payload bytes applied.
    pub bytes: u64,
    /// Records the apply function refused, with its reasons (first few).
    pub rejected: Vec<String>,
    /// A torn tail cut from the last segment: `(segment, offset, bytes cut)`.
    pub torn_tail: Option<(u64, u64, u64)>,
    /// Damage found before the last segment: `(segment, offset, reason)`.
    pub corrupt: Vec<(u64, u64, String)>,
    /// The id new appends will use.
    pub next_segment: u64,
}

/// Counters of the live log.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Records appended and synced.
    pub records: AtomicU64,
    /// Group commits (= fsyncs).
    pub syncs: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
    /// The open segment's id.
    pub segment: AtomicU64,
    /// Set once a write or fsync failed: the log accepts nothing more.
    pub poisoned: std::sync::atomic::AtomicBool,
}

const HEADER: usize = 8;

fn encode_record(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Parses records from one segment, calling `f` for each good one. Returns
/// the offset of the first bad byte and why, if the segment does not end
/// cleanly.
fn parse_segment(data: &[u8], f: &mut dyn FnMut(&[u8])) -> Option<(u64, String)> {
    let mut off = 0usize;
    while off < data.len() {
        let rest = &data[off..];
        if rest.len() < HEADER {
            return Some((off as u64, format!("{} bytes of a record header", rest.len())));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len == 0 || len > rest.len() - HEADER {
            return Some((off as u64, format!("record length {len} with {} bytes left", rest.len() - HEADER)));
        }
        let payload = &rest[HEADER..HEADER + len];
        if crc32fast::hash(payload) != crc {
            return Some((off as u64, "CRC mismatch".into()));
        }
        f(payload);
        off += HEADER + len;
    }
    None
}

enum Req {
    Append(Vec<u8>, oneshot::Sender<Result<Lsn>>),
    Rotate(oneshot::Sender<Result<u64>>),
}

/// Handle to the recovery log; cheap to clone.
#[derive(Clone)]
pub struct RecoveryLog {
    tx: mpsc::Sender<Req>,
    device: Arc<dyn LogDevice>,
    opts: LogOptions,
    stats: Arc<LogStats>,
}

impl std::fmt::Debug for RecoveryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryLog").field("opts", &self.opts).finish()
    }
}

impl RecoveryLog {
    /// Reads every segment oldest first, calling `apply` for each record.
    /// A torn tail in the last segment is truncated; damage in an earlier
    /// segment ends that segment's replay and is reported. Blocks.
    pub fn replay(
        device: &dyn LogDevice,
        apply: &mut dyn FnMut(&[u8]) -> std::result::Result<(), String>,
    ) -> Result<ReplayReport> {
        let ids = device.list().map_err(|e| Error::io("listing recovery log segments", e))?;
        let mut report = ReplayReport { next_segment: ids.last().map_or(1, |l| l + 1), ..Default::default() };
        for (i, &id) in ids.iter().enumerate() {
            let data = device.read(id).map_err(|e| Error::io(format!("reading recovery log segment {id}"), e))?;
            report.segments += 1;
            let bad = parse_segment(&data, &mut |payload| {
                report.records += 1;
                report.bytes += payload.len() as u64;
                if let Err(e) = apply(payload) {
                    if report.rejected.len() < 16 {
                        report.rejected.push(e);
                    }
                }
            });
            if let Some((off, reason)) = bad {
                if i + 1 == ids.len() {
                    device
                        .truncate(id, off)
                        .map_err(|e| Error::io(format!("truncating torn tail of segment {id}"), e))?;
                    tracing::warn!(segment = id, offset = off, cut = data.len() as u64 - off, %reason, "recovery log: truncated torn tail");
                    report.torn_tail = Some((id, off, data.len() as u64 - off));
                } else {
                    tracing::error!(segment = id, offset = off, %reason, "recovery log: damaged segment; records after this offset are lost");
                    report.corrupt.push((id, off, reason));
                }
            }
        }
        Ok(report)
    }

    /// Opens segment `first_segment` and starts the committer task. Call
    /// after [`RecoveryLog::replay`], with its `next_segment`. Blocks briefly
    /// to create the segment.
    pub fn start(device: Arc<dyn LogDevice>, opts: LogOptions, first_segment: u64) -> Result<RecoveryLog> {
        let writer = device
            .create(first_segment)
            .map_err(|e| Error::io(format!("creating recovery log segment {first_segment}"), e))?;
        let (tx, rx) = mpsc::channel(opts.queue_depth.max(1));
        let stats = Arc::new(LogStats::default());
        stats.segment.store(first_segment, Ordering::Relaxed);
        let committer = Committer {
            device: device.clone(),
            writer: Some(writer),
            segment: first_segment,
            len: 0,
            opts: opts.clone(),
            stats: stats.clone(),
            poisoned: None,
            spare: Default::default(),
        };
        tokio::spawn(committer.run(rx));
        Ok(RecoveryLog { tx, device, opts, stats })
    }

    /// Appends a record; resolves once it is durable.
    pub async fn append(&self, payload: Vec<u8>) -> Result<Lsn> {
        if payload.is_empty() || payload.len() > self.opts.max_record_bytes {
            return Err(Error::TooLarge { size: payload.len(), limit: self.opts.max_record_bytes });
        }
        let (tx, rx) = oneshot::channel();
        self.tx.send(Req::Append(payload, tx)).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Closes the open segment and starts a new one, returning the new id.
    /// Every record acknowledged before this call lives in a lower segment.
    pub async fn rotate(&self) -> Result<u64> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Req::Rotate(tx)).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Deletes every segment with an id below `segment`. Blocks.
    pub fn remove_before(&self, segment: u64) -> Result<usize> {
        let active = self.stats.segment.load(Ordering::Acquire);
        let ids = self.device.list().map_err(|e| Error::io("listing recovery log segments", e))?;
        let mut n = 0;
        for id in ids.into_iter().filter(|&id| id < segment && id < active) {
            self.device.remove(id).map_err(|e| Error::io(format!("removing recovery log segment {id}"), e))?;
            n += 1;
        }
        Ok(n)
    }

    /// Live counters.
    pub fn stats(&self) -> &LogStats {
        &self.stats
    }
}

struct Committer {
    device: Arc<dyn LogDevice>,
    writer: Option<Box<dyn SegmentWriter>>,
    segment: u64,
    len: u64,
    opts: LogOptions,
    stats: Arc<LogStats>,
    poisoned: Option<String>,
    /// The last commit's buffer, kept for the next: a fresh one of
    /// megabytes is fresh pages the kernel zeroes at every commit.
    spare: Arc<parking_lot::Mutex<Vec<u8>>>,
}

/// A commit buffer at most this large is kept for the next commit.
const SPARE_BYTES: usize = 4 << 20;

impl Committer {
    async fn run(mut self, mut rx: mpsc::Receiver<Req>) {
        while let Some(first) = rx.recv().await {
            let mut appends = Vec::new();
            let mut rotations = Vec::new();
            let mut bytes = 0usize;
            let mut next = Some(first);
            while let Some(req) = next.take() {
                match req {
                    Req::Append(p, tx) => {
                        bytes += p.len() + HEADER;
                        appends.push((p, tx));
                    }
                    Req::Rotate(tx) => rotations.push(tx),
                }
                if bytes < self.opts.max_batch_bytes {
                    next = rx.try_recv().ok();
                }
            }
            if !appends.is_empty() {
                self.commit(appends, bytes).await;
            }
            if !rotations.is_empty() || self.len >= self.opts.segment_bytes {
                let r = self.rotate().await;
                for tx in rotations {
                    let _ = tx.send(r.as_ref().map(|&id| id).map_err(|e| Error::Poisoned(e.to_string())));
                }
            }
        }
    }

    async fn commit(&mut self, appends: Vec<(Vec<u8>, oneshot::Sender<Result<Lsn>>)>, bytes: usize) {
        if let Some(p) = &self.poisoned {
            for (_, tx) in appends {
                let _ = tx.send(Err(Error::Poisoned(p.clone())));
            }
            return;
        }
        let mut buf = std::mem::take(&mut *self.spare.lock());
        buf.clear();
        buf.reserve(bytes);
        let mut waiters = Vec::with_capacity(appends.len());
        for (payload, tx) in appends {
            encode_record(&mut buf, &payload);
            waiters.push((Lsn { segment: self.segment, offset: self.len + buf.len() as u64 }, tx));
        }
        let spare = self.spare.clone();
        let result = self
            .with_writer(move |w| {
                let r = w.append(&buf).and_then(|()| w.sync());
                if buf.capacity() <= SPARE_BYTES {
                    *spare.lock() = buf;
                }
                r
            })
            .await;
        match result {
            Ok(()) => {
                self.len += bytes as u64;
                self.stats.records.fetch_add(waiters.len() as u64, Ordering::Relaxed);
                self.stats.syncs.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                for (lsn, tx) in waiters {
                    let _ = tx.send(Ok(lsn));
                }
            }
            Err(e) => {
                let msg = format!("segment {}: {e}", self.segment);
                tracing::error!(error = %msg, "recovery log write failed; refusing further writes");
                self.poisoned = Some(msg.clone());
                self.stats.poisoned.store(true, Ordering::Release);
                for (_, tx) in waiters {
                    let _ = tx.send(Err(Error::Poisoned(msg.clone())));
                }
            }
        }
    }

    async fn with_writer<F>(&mut self, f: F) -> std::io::Result<()>
    where
        F: FnOnce(&mut dyn SegmentWriter) -> std::io::Result<()> + Send + 'static,
    {
        let Some(mut w) = self.writer.take() else {
            return Err(std::io::Error::other("no open segment"));
        };
        if self.device.is_blocking() {
            match crate::run_blocking(move || {
                let r = f(w.as_mut());
                (w, r)
            })
            .await
            {
                Ok((w, r)) => {
                    self.writer = Some(w);
                    r
                }
                Err(e) => Err(e),
            }
        } else {
            let r = f(w.as_mut());
            self.writer = Some(w);
            r
        }
    }

    async fn rotate(&mut self) -> Result<u64> {
        if let Some(p) = &self.poisoned {
            return Err(Error::Poisoned(p.clone()));
        }
        let next = self.segment + 1;
        let device = self.device.clone();
        let created = if device.is_blocking() {
            crate::run_blocking(move || device.create(next)).await.and_then(|r| r)
        } else {
            device.create(next)
        };
        match created {
            Ok(w) => {
                self.writer = Some(w);
                self.segment = next;
                self.len = 0;
                self.stats.segment.store(next, Ordering::Release);
                Ok(next)
            }
            Err(e) => {
                let msg = format!("creating segment {next}: {e}");
                self.poisoned = Some(msg.clone());
                self.stats.poisoned.store(true, Ordering::Release);
                Err(Error::Poisoned(msg))
            }
        }
    }
}

#[cfg(all(test, not(madsim)))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::log_device::MemLogDevice;

    fn replay_all(dev: &dyn LogDevice) -> (Vec<Vec<u8>>, ReplayReport) {
        let mut got = Vec::new();
        let r = RecoveryLog::replay(dev, &mut |p| {
            got.push(p.to_vec());
            Ok(())
        })
        .unwrap();
        (got, r)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_acks_only_synced_records() {
        let dev = MemLogDevice::new();
        let log = RecoveryLog::start(Arc::new(dev.clone()), LogOptions::default(), 1).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move { log.append(i.to_le_bytes().to_vec()).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(log.stats().syncs.load(Ordering::Relaxed) <= 200);
        // Everything acked survives a crash.
        dev.crash();
        let (got, report) = replay_all(&dev);
        assert_eq!(got.len(), 200);
        assert_eq!(report.torn_tail, None);
        let mut vals: Vec<u32> = got.iter().map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        vals.sort_unstable();
        assert_eq!(vals, (0..200).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn torn_tail_is_truncated_and_reported() {
        let dev = MemLogDevice::new();
        let log = RecoveryLog::start(Arc::new(dev.clone()), LogOptions::default(), 1).unwrap();
        log.append(b"one".to_vec()).await.unwrap();
        log.append(b"two".to_vec()).await.unwrap();
        // Simulate a crash mid-write: half a record at the end.
        {
            let mut data = dev.read(1).unwrap();
            let good = data.len() as u64;
            encode_record(&mut data, b"three");
            data.truncate(data.len() - 2);
            dev.remove(1).unwrap();
            let mut w = dev.create(1).unwrap();
            w.append(&data).unwrap();
            w.sync().unwrap();
            let (got, report) = replay_all(&dev);
            assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
            assert_eq!(report.torn_tail, Some((1, good, data.len() as u64 - good)));
            assert_eq!(dev.read(1).unwrap().len() as u64, good);
        }
        // Replaying again finds a clean log.
        let (got, report) = replay_all(&dev);
        assert_eq!(got.len(), 2);
        assert_eq!(report.torn_tail, None);
    }

    #[tokio::test]
    async fn corrupt_middle_segment_is_reported_and_later_segments_replay() {
        let dev = MemLogDevice::new();
        let log = RecoveryLog::start(Arc::new(dev.clone()), LogOptions::default(), 1).unwrap();
        log.append(b"a".to_vec()).await.unwrap();
        log.append(b"b".to_vec()).await.unwrap();
        let next = log.rotate().await.unwrap();
        assert_eq!(next, 2);
        log.append(b"c".to_vec()).await.unwrap();
        let mut data = dev.read(1).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xFF;
        dev.remove(1).unwrap();
        let mut w = dev.create(1).unwrap();
        w.append(&data).unwrap();
        w.sync().unwrap();
        let (got, report) = replay_all(&dev);
        assert_eq!(got, vec![b"a".to_vec(), b"c".to_vec()]);
        assert_eq!(report.corrupt.len(), 1);
        assert_eq!(report.next_segment, 3);
        assert_eq!(log.remove_before(2).unwrap(), 1);
        assert_eq!(dev.list().unwrap(), vec![2]);
    }

    #[tokio::test]
    async fn rejects_empty_and_oversized_records() {
        let dev = MemLogDevice::new();
        let opts = LogOptions { max_record_bytes: 10, ..Default::default() };
        let log = RecoveryLog::start(Arc::new(dev), opts, 1).unwrap();
        assert!(matches!(log.append(vec![]).await, Err(Error::TooLarge { .. })));
        assert!(log.append(vec![0; 11]).await.unwrap_err().to_string().contains("exceeds the limit of 10"));
    }

    /// A file device's log: appends from many tasks, a rotation between
    /// them, and every acknowledged record replays.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_log_commits_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let dev = Arc::new(crate::FsLogDevice::open(dir.path()).unwrap());
        let opts = LogOptions { segment_bytes: 4096, ..Default::default() };
        let log = RecoveryLog::start(dev.clone(), opts, 1).unwrap();
        let mut tasks = Vec::new();
        for i in 0..300u32 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move { log.append(i.to_le_bytes().repeat(16)).await }));
        }
        assert!(log.rotate().await.unwrap() >= 2);
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(log.stats().records.load(Ordering::Relaxed), 300);
        assert!(dev.list().unwrap().len() >= 2, "a rotation starts a segment");
        drop(log);
        let (got, report) = replay_all(&*dev);
        let mut vals: Vec<u32> = got.iter().map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        vals.sort_unstable();
        assert_eq!(vals, (0..300).collect::<Vec<_>>());
        assert_eq!(report.torn_tail, None);
    }

    #[test]
    fn fs_device_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let dev = crate::FsLogDevice::open(dir.path()).unwrap();
        let mut w = dev.create(7).unwrap();
        let mut buf = Vec::new();
        encode_record(&mut buf, b"hello");
        w.append(&buf).unwrap();
        w.sync().unwrap();
        assert_eq!(dev.list().unwrap(), vec![7]);
        let (got, report) = replay_all(&dev);
        assert_eq!(got, vec![b"hello".to_vec()]);
        assert_eq!(report.next_segment, 8);
        dev.remove(7).unwrap();
        assert!(dev.list().unwrap().is_empty());
    }
}
