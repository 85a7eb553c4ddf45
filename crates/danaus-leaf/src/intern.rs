//! Sharing time columns between the series of a target.
//!
//! Series of one target are scraped together, so their chunks carry the
//! same timestamps. Open chunks append to one [`SharedTimes`] column per
//! target ([`OpenTimes`]); when they seal at the same point counts their
//! time sections are byte-identical and [`TimeInterner`] keeps one copy.
//! Either way memory holds a target's times once, not once per series.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Weak};

use danaus_codec::time::SharedTimes;
use parking_lot::Mutex;
use rustc_hash::FxBuildHasher;

/// Interned byte strings, held weakly: a section lives while a chunk uses it.
#[derive(Default)]
pub(crate) struct TimeInterner {
    map: Mutex<Buckets>,
}

type Buckets = HashMap<u64, Vec<Weak<[u8]>>, FxBuildHasher>;

impl TimeInterner {
    /// The shared copy of `bytes`.
    pub(crate) fn intern(&self, bytes: &[u8]) -> Arc<[u8]> {
        let h = FxBuildHasher.hash_one(bytes);
        let mut map = self.map.lock();
        let bucket = map.entry(h).or_default();
        bucket.retain(|w| w.strong_count() > 0);
        for w in bucket.iter() {
            if let Some(a) = w.upgrade() {
                if *a == *bytes {
                    return a;
                }
            }
        }
        let a: Arc<[u8]> = Arc::from(bytes);
        bucket.push(Arc::downgrade(&a));
        a
    }

    /// Forgets sections no chunk uses any more.
    pub(crate) fn sweep(&self) {
        self.map.lock().retain(|_, b| {
            b.retain(|w| w.strong_count() > 0);
            !b.is_empty()
        });
    }
}

/// The open shared time column of each target.
#[derive(Default)]
pub(crate) struct OpenTimes {
    map: Mutex<HashMap<Vec<u8>, SharedColumn, FxBuildHasher>>,
}

type SharedColumn = Arc<std::sync::Mutex<SharedTimes>>;

impl OpenTimes {
    /// The column a new open chunk of target `target` whose first time is
    /// `first` should append to: the target's current one if it is empty or
    /// starts at `first` (its series sealed together), else a fresh one.
    pub(crate) fn column(&self, target: &[u8], first: i64) -> SharedColumn {
        let mut map = self.map.lock();
        if let Some(c) = map.get(target) {
            let g = c.lock().unwrap_or_else(|p| p.into_inner());
            if g.is_empty() || g.recent_at(0) == Some(first) {
                drop(g);
                return c.clone();
            }
        }
        let c = SharedColumn::default();
        map.insert(target.to_vec(), c.clone());
        c
    }

    /// Forgets columns no open chunk uses any more.
    pub(crate) fn sweep(&self) {
        self.map.lock().retain(|_, c| Arc::strong_count(c) > 1);
    }
}

/// What series need to share time columns.
#[derive(Default)]
pub(crate) struct ChunkContext {
    pub(crate) sealed: TimeInterner,
    pub(crate) open: OpenTimes,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn equal_bytes_share_one_allocation() {
        let i = TimeInterner::default();
        let a = i.intern(b"times");
        let b = i.intern(b"times");
        let c = i.intern(b"other");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        drop((a, b));
        i.sweep();
        assert_eq!(i.map.lock().len(), 1);
    }
}
