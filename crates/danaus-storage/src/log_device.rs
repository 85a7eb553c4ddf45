//! The log-device seam: numbered, append-only segments.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

/// An open segment being appended to.
pub trait SegmentWriter: Send {
    /// Appends bytes (not yet durable).
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable.
    fn sync(&mut self) -> io::Result<()>;
}

/// Where recovery-log segments live. Methods block.
pub trait LogDevice: Send + Sync + 'static {
    /// Ids of the existing segments, ascending.
    fn list(&self) -> io::Result<Vec<u64>>;
    /// Creates segment `id` (which must not exist), durably.
    fn create(&self, id: u64) -> io::Result<Box<dyn SegmentWriter>>;
    /// Reads a whole segment.
    fn read(&self, id: u64) -> io::Result<Vec<u8>>;
    /// Cuts segment `id` to `len` bytes, durably.
    fn truncate(&self, id: u64, len: u64) -> io::Result<()>;
    /// Deletes segment `id`.
    fn remove(&self, id: u64) -> io::Result<()>;
    /// Whether calls may block on a disk (then async callers use
    /// `spawn_blocking`).
    fn is_blocking(&self) -> bool {
        true
    }
}

/// Segments as files `<id as 16 hex digits>.wal` in one directory.
#[cfg(not(madsim))]
#[derive(Debug, Clone)]
pub struct FsLogDevice {
    dir: std::path::PathBuf,
}

#[cfg(not(madsim))]
mod fs_impl {
    use std::fs::{self, File, OpenOptions};
    use std::io::{self, Write};
    use std::path::{Path, PathBuf};

    use super::{FsLogDevice, SegmentWriter};

    impl FsLogDevice {
        /// Uses (and creates) `dir`.
        pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
            let dir = dir.into();
            fs::create_dir_all(&dir)?;
            Ok(Self { dir })
        }

        fn path(&self, id: u64) -> PathBuf {
            self.dir.join(format!("{id:016x}.wal"))
        }

        fn sync_dir(&self) -> io::Result<()> {
            File::open(&self.dir)?.sync_all()
        }
    }

    struct FileSegment(File);

    impl SegmentWriter for FileSegment {
        fn append(&mut self, data: &[u8]) -> io::Result<()> {
            self.0.write_all(data)
        }
        fn sync(&mut self) -> io::Result<()> {
            self.0.sync_data()
        }
    }

    fn parse_name(p: &Path) -> Option<u64> {
        let name = p.file_name()?.to_str()?;
        let hex = name.strip_suffix(".wal")?;
        (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok()).flatten()
    }

    impl super::LogDevice for FsLogDevice {
        fn list(&self) -> io::Result<Vec<u64>> {
            let mut ids = Vec::new();
            for entry in fs::read_dir(&self.dir)? {
                if let Some(id) = parse_name(&entry?.path()) {
                    ids.push(id);
                }
            }
            ids.sort_unstable();
            Ok(ids)
        }

        fn create(&self, id: u64) -> io::Result<Box<dyn SegmentWriter>> {
            let f = OpenOptions::new().append(true).create_new(true).open(self.path(id))?;
            f.sync_all()?;
            self.sync_dir()?;
            Ok(Box::new(FileSegment(f)))
        }

        fn read(&self, id: u64) -> io::Result<Vec<u8>> {
            fs::read(self.path(id))
        }

        fn truncate(&self, id: u64, len: u64) -> io::Result<()> {
            let f = OpenOptions::new().write(true).open(self.path(id))?;
            f.set_len(len)?;
            f.sync_all()
        }

        fn remove(&self, id: u64) -> io::Result<()> {
            match fs::remove_file(self.path(id)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => self.sync_dir(),
            }
        }
    }
}

#[derive(Debug, Default)]
struct MemFile {
    data: Vec<u8>,
    synced: usize,
}

/// Segments in memory. [`MemLogDevice::crash`] drops every byte that was
/// not synced, as a power loss would.
#[derive(Debug, Clone, Default)]
pub struct MemLogDevice {
    files: Arc<Mutex<BTreeMap<u64, MemFile>>>,
}

impl MemLogDevice {
    /// An empty device.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loses unsynced data in every segment.
    pub fn crash(&self) {
        for f in self.files.lock().values_mut() {
            f.data.truncate(f.synced);
        }
    }

    /// Loses every segment, synced or not: the disk was replaced.
    pub fn wipe(&self) {
        self.files.lock().clear();
    }

    /// Total bytes held.
    pub fn bytes(&self) -> usize {
        self.files.lock().values().map(|f| f.data.len()).sum()
    }
}

struct MemSegment {
    id: u64,
    files: Arc<Mutex<BTreeMap<u64, MemFile>>>,
}

impl SegmentWriter for MemSegment {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut files = self.files.lock();
        let f = files.get_mut(&self.id).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "segment removed"))?;
        f.data.extend_from_slice(data);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        let mut files = self.files.lock();
        let f = files.get_mut(&self.id).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "segment removed"))?;
        f.synced = f.data.len();
        Ok(())
    }
}

impl LogDevice for MemLogDevice {
    fn list(&self) -> io::Result<Vec<u64>> {
        Ok(self.files.lock().keys().copied().collect())
    }
    fn create(&self, id: u64) -> io::Result<Box<dyn SegmentWriter>> {
        let mut files = self.files.lock();
        if files.contains_key(&id) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("segment {id} exists")));
        }
        files.insert(id, MemFile::default());
        Ok(Box::new(MemSegment { id, files: self.files.clone() }))
    }
    fn read(&self, id: u64) -> io::Result<Vec<u8>> {
        self.files
            .lock()
            .get(&id)
            .map(|f| f.data.clone())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("segment {id}")))
    }
    fn truncate(&self, id: u64, len: u64) -> io::Result<()> {
        if let Some(f) = self.files.lock().get_mut(&id) {
            f.data.truncate(len as usize);
            f.synced = f.synced.min(f.data.len());
        }
        Ok(())
    }
    fn remove(&self, id: u64) -> io::Result<()> {
        self.files.lock().remove(&id);
        Ok(())
    }
    fn is_blocking(&self) -> bool {
        false
    }
}
