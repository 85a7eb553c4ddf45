//! Maps from byte strings to values, made to be probed a batch at a time:
//! the leaf's series under their target ([`crate::index`]) and the
//! Prometheus receiver's series identities.
//!
//! A write brings about a thousand series, each looked up by its bytes in
//! a map too big for the cache: a few misses per series (slot, entry, key,
//! value), each waited for in turn. [`get_each`] walks a batch as a
//! pipeline instead: while it compares one key it has already asked the
//! memory for the entries and slots of the keys after it, so the misses of
//! several series overlap.
//!
//! A [`BytesTable`] is an open-addressing table with linear probing, kept
//! at most half full. A slot holds the high half of its key's hash and the
//! index of its entry, so a probe touches an entry only when the hashes
//! agree; entries sit in one vector. Removal shifts later slots back (no
//! tombstones). [`BytesMap`] shards tables behind read-write locks.

use std::borrow::Borrow;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{RwLock, RwLockReadGuard};
use rustc_hash::FxBuildHasher;

const SHARD_BITS: u32 = 4;
const SHARDS: usize = 1 << SHARD_BITS;
const TAG: u64 = 0xFFFF_FFFF_0000_0000;
/// How many keys ahead each stage of [`get_each`] runs.
const AHEAD: usize = 4;

/// The hash tables here use for `key`.
pub fn hash(key: &[u8]) -> u64 {
    FxBuildHasher.hash_one(key)
}

pub use danaus_codec::prefetch;

/// Byte-string keys (`K` borrows as the bytes) to values.
pub struct BytesTable<K, V> {
    /// 0 is empty; otherwise `hash & TAG | (entry index + 1)`.
    slots: Vec<u64>,
    entries: Vec<(K, V)>,
}

impl<K, V> Default for BytesTable<K, V> {
    fn default() -> Self {
        BytesTable { slots: Vec::new(), entries: Vec::new() }
    }
}

impl<K: Borrow<[u8]>, V> BytesTable<K, V> {
    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &(K, V)> {
        self.entries.iter()
    }

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

    /// The entry of `key` (hash `h`), from the candidate `from` on.
    fn find(&self, h: u64, key: &[u8], mut from: Option<(usize, usize)>) -> Option<usize> {
        while let Some((e, next)) = from {
            if self.entries[e].0.borrow() == key {
                return Some(e);
            }
            from = self.next_candidate(h, next);
        }
        None
    }

    fn first_candidate(&self, h: u64) -> Option<(usize, usize)> {
        if self.slots.is_empty() {
            return None;
        }
        self.next_candidate(h, self.start(h))
    }

    fn lookup(&self, h: u64, key: &[u8]) -> Option<usize> {
        self.find(h, key, self.first_candidate(h))
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.lookup(hash(key), key).map(|e| &self.entries[e].1)
    }

    fn place(&mut self, h: u64, entry: usize) {
        let mask = self.slots.len() - 1;
        let mut i = self.start(h);
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = (h & TAG) | (entry as u64 + 1);
    }

    /// Inserts `key`, or replaces its value (keeping its key); the value
    /// it had.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let h = hash(key.borrow());
        if let Some(e) = self.lookup(h, key.borrow()) {
            return Some(std::mem::replace(&mut self.entries[e].1, value));
        }
        // At most half full, so probes stay short.
        if (self.entries.len() + 1) * 2 > self.slots.len() {
            self.slots = vec![0; (self.slots.len() * 2).max(16)];
            for e in 0..self.entries.len() {
                self.place(hash(self.entries[e].0.borrow()), e);
            }
        }
        self.entries.push((key, value));
        self.place(h, self.entries.len() - 1);
        None
    }

    /// The slot that points at entry `e` (whose key hashes to `h`).
    fn slot_of(&self, h: u64, e: usize) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = self.start(h);
        while self.slots[i] & !TAG != e as u64 + 1 {
            i = (i + 1) & mask;
        }
        i
    }

    /// Removes `key`; its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<(K, V)> {
        let h = hash(key);
        let e = self.lookup(h, key)?;
        // Empty its slot, then shift back every later slot of the run that
        // may sit there: one whose home is not between the hole and it.
        let mask = self.slots.len() - 1;
        let mut hole = self.slot_of(h, e);
        let mut j = (hole + 1) & mask;
        while self.slots[j] != 0 {
            let s = self.slots[j];
            let home = self.start(hash(self.entries[(s as u32 - 1) as usize].0.borrow()));
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.slots[hole] = s;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = 0;
        // The last entry moves into the freed place.
        let last = self.entries.len() - 1;
        if e != last {
            let i = self.slot_of(hash(self.entries[last].0.borrow()), last);
            self.slots[i] = (self.slots[i] & TAG) | (e as u64 + 1);
        }
        Some(self.entries.swap_remove(e))
    }
}

/// One lookup of a batch: the table, the key and its [`hash`].
pub type Probe<'t, 'k, K, V> = Option<(&'t BytesTable<K, V>, &'k [u8], u64)>;

/// Looks up a batch of keys, each in its own table: `items[i]` is the
/// table, the key and its [`hash`] (or `None`: nothing to look up). Calls
/// `found(i, value)` for each key present, in order of `i`. `touch` names
/// memory a found value will be read at, fetched ahead with its entry.
pub fn get_each<'t, K: Borrow<[u8]> + 't, V: 't>(
    items: &[Probe<'t, '_, K, V>],
    touch: impl Fn(&V) -> *const u8,
    mut found: impl FnMut(usize, &'t V),
) {
    // Three stages run ahead of the comparison at `i`: the first slot of
    // key i + 3·AHEAD is fetched; key i + 2·AHEAD's slots are read and its
    // candidate entry fetched; key i + AHEAD's entry is read and its key
    // bytes and value's memory fetched.
    let n = items.len();
    let mut candidates: Vec<Option<(usize, usize)>> = vec![None; n];
    let live = |i: usize| items.get(i).copied().flatten().filter(|(t, _, _)| !t.slots.is_empty());
    for i in 0..n + 3 * AHEAD {
        if let Some((t, _, h)) = live(i) {
            prefetch(&t.slots[t.start(h)]);
        }
        if let Some(j) = i.checked_sub(AHEAD) {
            if let Some((t, _, h)) = live(j) {
                candidates[j] = t.first_candidate(h);
                if let Some((e, _)) = candidates[j] {
                    prefetch(&t.entries[e]);
                }
            }
        }
        if let Some(j) = i.checked_sub(2 * AHEAD) {
            if let (Some((t, _, _)), Some((e, _))) = (live(j), candidates.get(j).copied().flatten()) {
                let (key, value) = &t.entries[e];
                let key: &[u8] = key.borrow();
                prefetch(key.as_ptr());
                prefetch(key.as_ptr().wrapping_add(64));
                prefetch(touch(value));
            }
        }
        if let Some(j) = i.checked_sub(3 * AHEAD) {
            if let Some((t, key, h)) = live(j) {
                if let Some(e) = t.find(h, key, candidates[j]) {
                    found(j, &t.entries[e].1);
                }
            }
        }
    }
}

type Shard<V> = RwLock<BytesTable<Box<[u8]>, V>>;

/// Byte strings to values, in shards that readers share.
pub struct BytesMap<V> {
    shards: Box<[Shard<V>]>,
}

impl<V> Default for BytesMap<V> {
    fn default() -> Self {
        BytesMap { shards: (0..SHARDS).map(|_| RwLock::new(BytesTable::default())).collect() }
    }
}

impl<V> BytesMap<V> {
    fn shard(&self, h: u64) -> &Shard<V> {
        &self.shards[h as usize & (SHARDS - 1)]
    }

    /// Inserts `key`, or replaces its value, under a bound that maps share:
    /// `total` counts the entries of all of them, and may reach `limit`.
    /// A new key past the bound first empties its shard (whose keys are
    /// then looked up in vain until inserted again); if that frees nothing,
    /// the key is not kept. Whether it is in the map now.
    pub fn insert_bounded(&self, key: &[u8], value: V, total: &AtomicUsize, limit: usize) -> bool {
        let h = hash(key);
        let mut t = self.shard(h).write();
        if t.lookup(h, key).is_none() && total.load(Ordering::Relaxed) >= limit {
            let freed = std::mem::take(&mut *t).entries.len();
            total.fetch_sub(freed, Ordering::Relaxed);
            if total.load(Ordering::Relaxed) >= limit {
                return false;
            }
        }
        if t.insert(key.into(), value).is_none() {
            total.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// Calls `found(i, value)` for each `keys[i]` in the map, in order of
    /// `i`, with every shard read-locked (see [`get_each`]).
    pub fn get_each(&self, keys: &[Option<&[u8]>], touch: impl Fn(&V) -> *const u8, found: impl FnMut(usize, &V)) {
        let tables: Vec<RwLockReadGuard<'_, BytesTable<Box<[u8]>, V>>> = self.shards.iter().map(|s| s.read()).collect();
        let items: Vec<_> = keys
            .iter()
            .map(|k| {
                k.map(|k| {
                    let h = hash(k);
                    (&*tables[h as usize & (SHARDS - 1)], k, h)
                })
            })
            .collect();
        get_each(&items, touch, found);
    }

    /// Whether `key` is in the map.
    #[cfg(test)]
    fn contains(&self, key: &[u8]) -> bool {
        let h = hash(key);
        self.shard(h).read().lookup(h, key).is_some()
    }

    /// Entries in the map.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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

    /// Inserts and removals in a pseudo-random order agree with a
    /// `HashMap` throughout, through growth and the backward shifts of
    /// removal; small tables make long probe runs.
    #[test]
    fn tables_agree_with_a_hash_map_through_removals() {
        let mut table: BytesTable<Vec<u8>, u64> = BytesTable::default();
        let mut model = std::collections::HashMap::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = key(x % 300);
            if x.is_multiple_of(3) {
                assert_eq!(table.remove(&k).map(|(_, v)| v), model.remove(&k), "step {step}");
            } else {
                assert_eq!(table.insert(k.clone(), step), model.insert(k, step), "step {step}");
            }
            assert_eq!(table.len(), model.len());
            if step.is_multiple_of(97) {
                for i in 0..300 {
                    assert_eq!(table.get(&key(i)), model.get(&key(i)), "step {step} key {i}");
                }
                let keys: Vec<Vec<u8>> = (0..300).map(key).collect();
                let items: Vec<_> = keys.iter().map(|k| Some((&table, k.as_slice(), hash(k)))).collect();
                let mut got = Vec::new();
                get_each(&items, |v| v as *const u64 as *const u8, |i, v| got.push((i, *v)));
                let want: Vec<(usize, u64)> =
                    keys.iter().enumerate().filter_map(|(i, k)| model.get(k).map(|v| (i, *v))).collect();
                assert_eq!(got, want, "step {step}");
            }
        }
        while let Some(k) = model.keys().next().cloned() {
            assert_eq!(table.remove(&k).map(|(_, v)| v), model.remove(&k));
        }
        assert!(table.is_empty() && table.slots.iter().all(|&s| s == 0));
    }
}
