//! The state-directory seam: a few small named blobs a role keeps across
//! its restarts — the last zone table a router, mixer or leaf saw, the
//! last configuration version a zone's mirror holds — so it can start and
//! serve while the services that own them are away.
//!
//! A save replaces the whole blob atomically and durably: after a crash a
//! reader finds the old blob or the new one, never a mix or nothing.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

/// Small named blobs that survive restarts. Methods block.
pub trait StateDir: Send + Sync + 'static {
    /// The blob saved as `name`, if any.
    fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Replaces the blob `name` atomically and durably.
    fn save(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
}

/// A shared state directory.
pub type SharedStateDir = Arc<dyn StateDir>;

/// Blobs as files in one directory: a save writes `NAME.tmp`, syncs it,
/// renames it over `NAME` and syncs the directory.
#[cfg(not(madsim))]
#[derive(Debug, Clone)]
pub struct FsStateDir {
    dir: std::path::PathBuf,
}

#[cfg(not(madsim))]
impl FsStateDir {
    /// Uses (and creates) `dir`.
    pub fn open(dir: impl Into<std::path::PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.dir
    }

    fn file(&self, name: &str) -> io::Result<std::path::PathBuf> {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad state blob name {name:?}")));
        }
        Ok(self.dir.join(name))
    }
}

#[cfg(not(madsim))]
impl StateDir for FsStateDir {
    fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.file(name)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn save(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write as _;
        let path = self.file(name)?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

/// Blobs in memory, for tests and simulation. Cloning shares them, so a
/// simulated host keeps them across its own restarts; saves are durable at
/// once (as [`FsStateDir`]'s are), so a crash loses nothing and
/// [`MemStateDir::wipe`] models a replaced disk.
#[derive(Debug, Clone, Default)]
pub struct MemStateDir {
    blobs: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl MemStateDir {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loses everything: the disk was replaced.
    pub fn wipe(&self) {
        self.blobs.lock().clear();
    }
}

impl StateDir for MemStateDir {
    fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.blobs.lock().get(name).cloned())
    }

    fn save(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.blobs.lock().insert(name.to_owned(), bytes.to_vec());
        Ok(())
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    #[test]
    fn a_saved_blob_replaces_the_old_one_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStateDir::open(dir.path().join("state")).unwrap();
        assert_eq!(s.load("zone-table.json").unwrap(), None);
        s.save("zone-table.json", b"one").unwrap();
        s.save("zone-table.json", b"two").unwrap();
        let again = FsStateDir::open(dir.path().join("state")).unwrap();
        assert_eq!(again.load("zone-table.json").unwrap().as_deref(), Some(&b"two"[..]));
        assert!(!dir.path().join("state/zone-table.tmp").exists(), "no temporary file is left behind");
    }

    #[test]
    fn a_name_that_would_leave_the_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStateDir::open(dir.path()).unwrap();
        for bad in ["../x", "a/b", "", ".hidden"] {
            assert_eq!(s.save(bad, b"x").unwrap_err().kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }
}
