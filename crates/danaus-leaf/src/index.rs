//! The series index: by encoded key, by id, and by
//! (tenant, target schema, metric) for reads.
//!
//! Keys are indexed in two levels: a target's series (its key prefix, see
//! [`SeriesState::target`]) hang together under their target, keyed by
//! the rest of their key. A write brings a target's series together (a
//! host's scrape), so it finds the target once and each series in a small
//! map its neighbours have just brought into the cache, instead of one
//! probe of a map of every series (a cache miss or two) per series.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use rustc_hash::FxHashMap;

use crate::bytes_map::BytesTable;
use crate::series::SeriesState;

pub(crate) type SeriesRef = Arc<Mutex<SeriesState>>;

const SHARDS: usize = 64;

/// (tenant, target schema, metric).
pub(crate) type MetricKey = (String, String, String);

/// A series' key, looked up by what follows its target.
pub(crate) struct Suffix {
    key: Arc<[u8]>,
    target_len: usize,
}

impl Borrow<[u8]> for Suffix {
    fn borrow(&self) -> &[u8] {
        &self.key[self.target_len..]
    }
}

/// The series of one target, by the rest of their keys.
#[derive(Default)]
pub(crate) struct TargetSeries {
    series: RwLock<BytesTable<Suffix, SeriesRef>>,
}

impl TargetSeries {
    /// The series whose key is this target's followed by `suffix`.
    pub(crate) fn get(&self, suffix: &[u8]) -> Option<SeriesRef> {
        self.series.read().get(suffix).cloned()
    }

    /// The table of series, read-locked; a batch's lookups hold several
    /// at once, so a waiting writer does not block taking one again.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, BytesTable<Suffix, SeriesRef>> {
        self.series.read_recursive()
    }
}

/// One shard: encoded target → its series.
type Shard = RwLock<FxHashMap<Arc<[u8]>, Arc<TargetSeries>>>;

#[derive(Default)]
pub(crate) struct Index {
    shards: Vec<Shard>,
    by_id: RwLock<HashMap<u64, SeriesRef>>,
    by_metric: RwLock<HashMap<MetricKey, Vec<SeriesRef>>>,
    hasher: rustc_hash::FxBuildHasher,
}

impl Index {
    pub(crate) fn new() -> Self {
        Self { shards: (0..SHARDS).map(|_| RwLock::new(FxHashMap::default())).collect(), ..Default::default() }
    }

    fn shard(&self, target: &[u8]) -> &Shard {
        &self.shards[(self.hasher.hash_one(target) as usize) % SHARDS]
    }

    /// The series of the target with encoded target string `target`.
    pub(crate) fn target(&self, target: &[u8]) -> Option<Arc<TargetSeries>> {
        self.shard(target).read().get(target).cloned()
    }

    /// The series with key `key`, whose first `target_len` bytes are its
    /// target string.
    pub(crate) fn get(&self, key: &[u8], target_len: usize) -> Option<SeriesRef> {
        let (target, rest) = key.split_at(target_len);
        self.shard(target).read().get(target)?.get(rest)
    }

    /// Returns the series under `key` (whose first `target_len` bytes are
    /// its target string), creating it with `make` if absent: the series
    /// and its (tenant, target schema, metric). The bool says whether it
    /// was created.
    pub(crate) fn get_or_insert(
        &self,
        key: &[u8],
        target_len: usize,
        make: impl FnOnce() -> (SeriesState, MetricKey),
    ) -> (SeriesRef, bool) {
        if let Some(s) = self.get(key, target_len) {
            return (s, false);
        }
        let (target, rest) = key.split_at(target_len);
        let shard = self.shard(target);
        let mut targets = shard.upgradable_read();
        let t = match targets.get(target) {
            Some(t) => t.clone(),
            None => {
                let t = Arc::new(TargetSeries::default());
                targets.with_upgraded(|m| m.insert(target.into(), t.clone()));
                t
            }
        };
        // The shard stays read-locked while the series goes in: `remove`
        // takes it for writing before it drops an emptied target.
        let mut series = t.series.write();
        if let Some(s) = series.get(rest) {
            return (s.clone(), false);
        }
        let (state, mkey) = make();
        let id = state.id;
        debug_assert_eq!(&*state.encoded_key, key, "a series must be indexed under its own key");
        debug_assert_eq!(state.target_len as usize, target_len, "a series' target is its key's prefix");
        // The map shares the series' own copy of its key.
        let shared_key = state.encoded_key.clone();
        debug_assert_eq!(
            {
                let k = state.key();
                (k.tenant, k.target_schema, k.metric)
            },
            mkey,
            "a series is listed under its own metric"
        );
        let s = Arc::new(Mutex::new(state));
        series.insert(Suffix { key: shared_key, target_len }, s.clone());
        drop(series);
        drop(targets);
        self.by_id.write().insert(id, s.clone());
        self.by_metric.write().entry(mkey).or_default().push(s.clone());
        (s, true)
    }

    pub(crate) fn by_id(&self, id: u64) -> Option<SeriesRef> {
        self.by_id.read().get(&id).cloned()
    }

    pub(crate) fn for_metric(&self, tenant: &str, target: &str, metric: &str) -> Vec<SeriesRef> {
        self.by_metric
            .read()
            .get(&(tenant.to_owned(), target.to_owned(), metric.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Removes `doomed` from every map.
    pub(crate) fn remove(&self, doomed: &[SeriesRef]) {
        let mut ids = std::collections::HashSet::new();
        let mut metrics = std::collections::HashSet::new();
        for s in doomed {
            let g = s.lock();
            let (target, rest) = g.encoded_key.split_at(g.target_len as usize);
            let mut targets = self.shard(target).write();
            if let Some(t) = targets.get(target) {
                let mut series = t.series.write();
                series.remove(rest);
                if series.is_empty() {
                    drop(series);
                    targets.remove(target);
                }
            }
            drop(targets);
            ids.insert(g.id);
            let k = g.key();
            metrics.insert((k.tenant, k.target_schema, k.metric));
        }
        self.by_id.write().retain(|id, _| !ids.contains(id));
        let mut by_metric = self.by_metric.write();
        for m in metrics {
            if let Some(v) = by_metric.get_mut(&m) {
                v.retain(|s| !ids.contains(&s.lock().id));
                if v.is_empty() {
                    by_metric.remove(&m);
                }
            }
        }
    }

    pub(crate) fn all(&self) -> Vec<SeriesRef> {
        self.by_id.read().values().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.read().len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use danaus_model::{FieldValue, MetricKind, ScalarType, SeriesKey, ValueType};

    fn key(host: &str, metric: &str, cpu: i64) -> SeriesKey {
        SeriesKey {
            tenant: "t".into(),
            target_schema: "Host".into(),
            target_fields: vec![FieldValue::String("zone-a".into()), FieldValue::String(host.into())],
            metric: metric.into(),
            metric_fields: vec![FieldValue::Int64(cpu)],
        }
    }

    fn insert(index: &Index, id: u64, k: &SeriesKey) -> (SeriesRef, bool) {
        let encoded = k.encode();
        let target_len = k.target_string().0.len();
        index.get_or_insert(&encoded, target_len, || {
            let s = SeriesState::new(id, k, encoded.clone(), ValueType::Scalar(ScalarType::Double), MetricKind::Gauge);
            (s, (k.tenant.clone(), k.target_schema.clone(), k.metric.clone()))
        })
    }

    /// Series hang under their target by the rest of their key; a target
    /// emptied by removals leaves the index, and comes back with a new
    /// series.
    #[test]
    fn series_are_found_under_their_target_and_emptied_targets_leave() {
        let index = Index::new();
        let keys = [key("h1", "/cpu", 0), key("h1", "/cpu", 1), key("h1", "/mem", 0), key("h2", "/cpu", 0)];
        let refs: Vec<SeriesRef> = keys.iter().enumerate().map(|(i, k)| insert(&index, i as u64, k).0).collect();
        assert!(!insert(&index, 99, &keys[1]).1, "an existing key is not created again");
        for (k, r) in keys.iter().zip(&refs) {
            let (encoded, n) = (k.encode(), k.target_string().0.len());
            assert!(Arc::ptr_eq(&index.get(&encoded, n).unwrap(), r));
            let t = index.target(&encoded[..n]).unwrap();
            assert!(Arc::ptr_eq(&t.get(&encoded[n..]).unwrap(), r));
        }
        let h1 = keys[0].encode()[..keys[0].target_string().0.len()].to_vec();
        assert_eq!(index.target(&h1).unwrap().series.read().len(), 3);
        // Another target's suffix is not this target's series.
        let (other, n) = (key("h1", "/disk", 0).encode(), keys[0].target_string().0.len());
        assert!(index.target(&h1).unwrap().get(&other[n..]).is_none());

        index.remove(&refs[..3]);
        assert!(index.target(&h1).is_none(), "h1 has no series left");
        assert!(index.get(&keys[3].encode(), keys[3].target_string().0.len()).is_some());
        assert_eq!(index.len(), 1);
        let (again, created) = insert(&index, 7, &keys[0]);
        assert!(created);
        assert!(Arc::ptr_eq(&index.get(&keys[0].encode(), h1.len()).unwrap(), &again));
    }
}
