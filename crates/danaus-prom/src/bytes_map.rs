//! A concurrent map from byte strings to values, made to be probed a
//! request at a time.
//!
//! A remote_write request brings about a thousand series, each looked up
//! by its label bytes in a map of every series the sender has: a few
//! cache misses per series (slot, entry, key), each waited for in turn.
//! [`BytesMap::get_each`] walks a batch as a pipeline instead: while it
//! compares one key it has already asked the memory for the entries and
//! slots of the keys after it, so the misses of several series overlap.
//!
//! Each shard is an open-addressing table with linear probing. A slot
//! holds the high half of its key's hash and the index of its entry, so
//! a probe touches an entry only when the hashes agree. Entries are never
//! removed one by one: a shard is emptied as a whole when the map is full
//! ([`BytesMap::insert_bounded`]).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{RwLock, RwLockReadGuard};
use rustc_hash::FxBuildHasher;

const SHARD_BITS: u32 = 4;
const SHARDS: usize = 1 << SHARD_BITS;
const TAG: u64 = 0xFFFF_FFFF_0000_0000;
/// How many keys ahead each stage of [`BytesMap::get_each`] runs.
const AHEAD: usize = 4;

fn hash(key: &[u8]) -> u64 {
    FxBuildHasher.hash_one(key)
}

/// Asks for the cache line at `p`; a hint with no effect on what the
/// program computes.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and cannot fault,
    // whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

struct Table<V> {
    /// 0 is empty; otherwise `hash & TAG | (entry index + 1)`.
    slots: Vec<u64>,
    entries: Vec<(Box<[u8]>, V)>,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table { slots: Vec::new(), entries: Vec::new() }
    }
}

impl<V> Table<V> {
    fn start(&self, h: u64) -> usize {
        ((h >> SHARD_BITS) as usize) & (self.slots.len() - 1)
    }

    /// The entry of the first slot from `i` on whose tag is `h`'s, and the
    /// slot after it; `None` at an empty slot.
    fn next_candidate(&self, h: u64, mut i: usize) -> Option<(usize, usize)> {
        let mask = self.slots.len() - 1;
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            i = (i + 1) & mask;
            if s & TAG == h & TAG {
                return Some(((s as u32 - 1) as usize, i));
            }
        }
    }

    fn find(&self, h: u64, key: &[u8], mut from: Option<(usize, usize)>) -> Option<usize> {
        while let Some((e, next)) = from {
            if *self.entries[e].0 == *key {
                return Some(e);
            }
            from = self.next_candidate(h, next);
        }
        None
    }

    fn lookup(&self, h: u64, key: &[u8]) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        self.find(h, key, self.next_candidate(h, self.start(h)))
    }

    fn place(&mut self, h: u64, entry: usize) {
        let mask = self.slots.len() - 1;
        let mut i = self.start(h);
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = (h & TAG) | (entry as u64 + 1);
    }

    /// Inserts or replaces; whether the key is new.
    fn insert(&mut self, h: u64, key: &[u8], value: V) -> bool {
        if let Some(e) = self.lookup(h, key) {
            self.entries[e].1 = value;
            return false;
        }
        // At most half full, so probes stay short.
        if (self.entries.len() + 1) * 2 > self.slots.len() {
            self.slots = vec![0; (self.slots.len() * 2).max(16)];
            for e in 0..self.entries.len() {
                self.place(hash(&self.entries[e].0), e);
            }
        }
        self.entries.push((key.into(), value));
        self.place(h, self.entries.len() - 1);
        true
    }
}

/// Byte strings to values, in shards that readers share.
pub(crate) struct BytesMap<V> {
    shards: Box<[RwLock<Table<V>>]>,
}

impl<V> Default for BytesMap<V> {
    fn default() -> Self {
        BytesMap { shards: (0..SHARDS).map(|_| RwLock::new(Table::default())).collect() }
    }
}

impl<V> BytesMap<V> {
    fn shard(&self, h: u64) -> &RwLock<Table<V>> {
        &self.shards[h as usize & (SHARDS - 1)]
    }

    /// Inserts `key`, or replaces its value, under a bound that maps share:
    /// `total` counts the entries of all of them, and may reach `limit`.
    /// A new key past the bound first empties its shard (whose keys are
    /// then looked up in vain until inserted again); if that frees nothing,
    /// the key is not kept. Whether it is in the map now.
    pub(crate) fn insert_bounded(&self, key: &[u8], value: V, total: &AtomicUsize, limit: usize) -> bool {
        let h = hash(key);
        let mut t = self.shard(h).write();
        if t.lookup(h, key).is_none() && total.load(Ordering::Relaxed) >= limit {
            let freed = std::mem::take(&mut *t).entries.len();
            total.fetch_sub(freed, Ordering::Relaxed);
            if total.load(Ordering::Relaxed) >= limit {
                return false;
            }
        }
        if t.insert(h, key, value) {
            total.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// Whether `key` is in the map.
    #[cfg(test)]
    fn contains(&self, key: &[u8]) -> bool {
        let h = hash(key);
        self.shard(h).read().lookup(h, key).is_some()
    }

    /// Calls `found(i, value)` for each `keys[i]` in the map, in order of
    /// `i`, with every shard read-locked. `touch` names memory a found value
    /// will be read at, to be fetched ahead with the entry's.
    pub(crate) fn get_each(
        &self,
        keys: &[Option<&[u8]>],
        touch: impl Fn(&V) -> *const u8,
        mut found: impl FnMut(usize, &V),
    ) {
        let tables: Vec<RwLockReadGuard<'_, Table<V>>> = self.shards.iter().map(|s| s.read()).collect();
        let hashes: Vec<u64> = keys.iter().map(|k| k.map_or(0, hash)).collect();
        let table = |i: usize| -> Option<&Table<V>> {
            let t = &*tables[hashes[i] as usize & (SHARDS - 1)];
            (keys[i].is_some() && !t.slots.is_empty()).then_some(t)
        };
        // Three stages run ahead of the comparison at `i`: the first slot
        // of key i + 3·AHEAD is fetched; key i + 2·AHEAD's slots are read
        // and its candidate entry fetched; key i + AHEAD's entry is read
        // and its key bytes and value's memory fetched.
        let mut candidates: Vec<Option<(usize, usize)>> = vec![None; keys.len()];
        let n = keys.len();
        for i in 0..n + 3 * AHEAD {
            if let Some(t) = (i < n).then(|| table(i)).flatten() {
                prefetch(&t.slots[t.start(hashes[i])]);
            }
            if let Some(j) = i.checked_sub(AHEAD).filter(|&j| j < n) {
                if let Some(t) = table(j) {
                    candidates[j] = t.next_candidate(hashes[j], t.start(hashes[j]));
                    if let Some((e, _)) = candidates[j] {
                        prefetch(&t.entries[e]);
                    }
                }
            }
            if let Some(j) = i.checked_sub(2 * AHEAD).filter(|&j| j < n) {
                if let (Some(t), Some((e, _))) = (table(j), candidates[j]) {
                    let (key, value) = &t.entries[e];
                    prefetch(key.as_ptr());
                    prefetch(key.as_ptr().wrapping_add(64));
                    prefetch(touch(value));
                }
            }
            if let Some(j) = i.checked_sub(3 * AHEAD).filter(|&j| j < n) {
                if let (Some(t), Some(key)) = (table(j), keys[j]) {
                    if let Some(e) = t.find(hashes[j], key, candidates[j]) {
                        found(j, &t.entries[e].1);
                    }
                }
            }
        }
    }

    /// Entries in the map.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().entries.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> Vec<u8> {
        // Keys of varied lengths, some sharing long prefixes.
        let mut k = format!("__name__\u{0}metric_{}\u{0}instance\u{0}host-{i:05}:9100", i % 7).into_bytes();
        k.extend(std::iter::repeat_n(b'x', (i % 90) as usize));
        k
    }

    #[test]
    fn batches_find_exactly_what_was_inserted() {
        let map = BytesMap::default();
        let total = AtomicUsize::new(0);
        for i in 0..5_000u64 {
            assert!(map.insert_bounded(&key(i), i, &total, usize::MAX));
        }
        assert!(map.insert_bounded(&key(17), 1_017, &total, usize::MAX), "a second insert replaces");
        assert_eq!((map.len(), total.load(Ordering::Relaxed)), (5_000, 5_000));
        // Present and absent keys interleaved, with gaps, in one batch.
        let ks: Vec<Vec<u8>> = (0..12_000u64).map(|i| key(i * 7 % 13_000)).collect();
        let mut batch: Vec<Option<&[u8]>> = ks.iter().map(|k| Some(k.as_slice())).collect();
        batch[3] = None;
        let mut got = Vec::new();
        map.get_each(&batch, |v| v as *const u64 as *const u8, |i, v| got.push((i, *v)));
        let want: Vec<(usize, u64)> = (0..12_000usize)
            .filter(|&i| i != 3)
            .filter_map(|i| {
                let k = i as u64 * 7 % 13_000;
                (k < 5_000).then_some((i, if k == 17 { 1_017 } else { k }))
            })
            .collect();
        assert_eq!(got, want);
        assert!(map.contains(&key(4_999)) && !map.contains(&key(5_000)));
        // Short batches (shorter than the pipeline) too.
        for len in 0..5 {
            let mut got = Vec::new();
            map.get_each(&batch[..len], |v| v as *const u64 as *const u8, |i, v| got.push((i, *v)));
            assert_eq!(got, want.iter().copied().filter(|(i, _)| *i < len).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_full_map_empties_the_shard_a_new_key_goes_to() {
        let map = BytesMap::default();
        let total = AtomicUsize::new(0);
        for i in 0..1_000u64 {
            assert!(map.insert_bounded(&key(i), i, &total, 1_000));
        }
        // Present keys are replaced without counting.
        assert!(map.insert_bounded(&key(5), 5, &total, 1_000));
        assert_eq!(total.load(Ordering::Relaxed), 1_000);
        // A new one empties its shard, then goes in.
        assert!(map.insert_bounded(&key(1_000), 1_000, &total, 1_000));
        let kept = (0..=1_000u64).filter(|&i| map.contains(&key(i))).count();
        assert!(kept > 800 && kept < 1_000, "one shard of 16 emptied: {kept} kept");
        assert_eq!((map.len(), total.load(Ordering::Relaxed)), (kept, kept));
        assert!(map.contains(&key(1_000)));
        // With nothing to free, a new key is not kept.
        let other = BytesMap::default();
        assert!(!other.insert_bounded(&key(1), 1, &total, 0));
        assert!(!other.contains(&key(1)));
    }
}
