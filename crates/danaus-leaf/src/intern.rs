//! Sharing identical time columns between sealed chunks.
//!
//! Series of one target are scraped together, so their chunks carry the
//! same timestamps; when they seal at the same point counts their time
//! sections are byte-identical. The interner hands out one `Arc` per
//! distinct section, so memory holds each once.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Weak};

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
