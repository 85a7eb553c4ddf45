//! The series index: by encoded key (sharded), by id, and by
//! (tenant, target schema, metric) for reads.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::series::SeriesState;

pub(crate) type SeriesRef = Arc<Mutex<SeriesState>>;

const SHARDS: usize = 64;

type MetricKey = (String, String, String);

/// One shard: encoded key → series.
type Shard = RwLock<HashMap<Arc<[u8]>, SeriesRef, rustc_hash::FxBuildHasher>>;

#[derive(Default)]
pub(crate) struct Index {
    shards: Vec<Shard>,
    by_id: RwLock<HashMap<u64, SeriesRef>>,
    by_metric: RwLock<HashMap<MetricKey, Vec<SeriesRef>>>,
    hasher: rustc_hash::FxBuildHasher,
}

impl Index {
    pub(crate) fn new() -> Self {
        Self { shards: (0..SHARDS).map(|_| RwLock::new(HashMap::default())).collect(), ..Default::default() }
    }

    fn shard(&self, key: &[u8]) -> &Shard {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<SeriesRef> {
        self.shard(key).read().get(key).cloned()
    }

    pub(crate) fn by_id(&self, id: u64) -> Option<SeriesRef> {
        self.by_id.read().get(&id).cloned()
    }

    /// Returns the series under `key`, creating it with `make` if absent.
    /// The bool says whether it was created.
    pub(crate) fn get_or_insert(&self, key: &[u8], make: impl FnOnce() -> SeriesState) -> (SeriesRef, bool) {
        if let Some(s) = self.get(key) {
            return (s, false);
        }
        let mut shard = self.shard(key).write();
        if let Some(s) = shard.get(key) {
            return (s.clone(), false);
        }
        let state = make();
        let id = state.id;
        // The map shares the series' own copy of its key.
        let shared_key = state.encoded_key.clone();
        debug_assert_eq!(&*shared_key, key, "a series must be indexed under its own key");
        let k = state.key();
        let mkey = (k.tenant, k.target_schema, k.metric);
        let s = Arc::new(Mutex::new(state));
        shard.insert(shared_key, s.clone());
        drop(shard);
        self.by_id.write().insert(id, s.clone());
        self.by_metric.write().entry(mkey).or_default().push(s.clone());
        (s, true)
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
            self.shard(&g.encoded_key).write().remove(&*g.encoded_key);
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
