//! The schema registry of a leaf: target and metric schemas per tenant,
//! persisted (synchronously) in the long-term store's meta family before an
//! apply is acknowledged.

use std::collections::BTreeMap;
use std::sync::Arc;

use danaus_model::{Applied, MetricSchema, TargetSchema};
use danaus_storage::{Cf, KvStore, WriteBatch};
use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::keys::{prefix_end, schema_key, schema_prefix};

#[derive(Default)]
struct Tenant {
    targets: BTreeMap<String, Arc<TargetSchema>>,
    metrics: BTreeMap<String, Arc<MetricSchema>>,
}

/// Schemas by tenant.
#[derive(Default)]
pub(crate) struct Schemas {
    tenants: RwLock<rustc_hash::FxHashMap<String, Tenant>>,
    /// Serialises applies so check-then-store is atomic.
    apply: parking_lot::Mutex<()>,
}

impl Schemas {
    /// Loads every schema from the store. Blocks.
    pub(crate) fn load(kv: &dyn KvStore) -> Result<Self> {
        let s = Schemas::default();
        for kind in ["target", "metric"] {
            let prefix = schema_prefix(kind);
            let mut bad = None;
            kv.scan(Cf::Meta, &prefix, &prefix_end(&prefix), &mut |k, v| {
                let rest = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                let tenant = rest.split('\0').next().unwrap_or_default().to_owned();
                let parsed = if kind == "target" {
                    serde_json::from_slice::<TargetSchema>(v).map(|t| s.insert_target(&tenant, t))
                } else {
                    serde_json::from_slice::<MetricSchema>(v).map(|m| s.insert_metric(&tenant, m))
                };
                if let Err(e) = parsed {
                    bad = Some(format!("stored {kind} schema {rest:?} is unreadable: {e}"));
                    return false;
                }
                true
            })?;
            if let Some(b) = bad {
                return Err(Error::Internal(b));
            }
        }
        Ok(s)
    }

    fn insert_target(&self, tenant: &str, t: TargetSchema) {
        self.tenants.write().entry(tenant.to_owned()).or_default().targets.insert(t.name.clone(), Arc::new(t));
    }

    fn insert_metric(&self, tenant: &str, m: MetricSchema) {
        self.tenants.write().entry(tenant.to_owned()).or_default().metrics.insert(m.name.clone(), Arc::new(m));
    }

    pub(crate) fn target(&self, tenant: &str, name: &str) -> Option<Arc<TargetSchema>> {
        self.tenants.read().get(tenant)?.targets.get(name).cloned()
    }

    pub(crate) fn metric(&self, tenant: &str, name: &str) -> Option<Arc<MetricSchema>> {
        self.tenants.read().get(tenant)?.metrics.get(name).cloned()
    }

    pub(crate) fn targets(&self, tenant: &str) -> Vec<Arc<TargetSchema>> {
        self.tenants.read().get(tenant).map(|t| t.targets.values().cloned().collect()).unwrap_or_default()
    }

    pub(crate) fn metrics(&self, tenant: &str) -> Vec<Arc<MetricSchema>> {
        self.tenants.read().get(tenant).map(|t| t.metrics.values().cloned().collect()).unwrap_or_default()
    }

    /// Validates and stores a target schema. Changing the fields of an
    /// existing one is refused: stored series are keyed by them.
    pub(crate) fn apply_target(&self, kv: &dyn KvStore, tenant: &str, t: TargetSchema) -> Result<Applied> {
        t.validate()?;
        let _guard = self.apply.lock();
        if let Some(cur) = self.target(tenant, &t.name) {
            if *cur == t {
                return Ok(Applied::Unchanged);
            }
            return Err(Error::InvalidArgument(format!(
                "target schema {:?} already exists with different fields or location; changing the key of existing series is not supported (create a schema with a new name)",
                t.name
            )));
        }
        let json = serde_json::to_vec(&t).map_err(|e| Error::Internal(e.to_string()))?;
        let mut b = WriteBatch::default();
        b.put(Cf::Meta, schema_key("target", tenant, &t.name), json);
        kv.write(b, true)?;
        self.insert_target(tenant, t);
        Ok(Applied::Created)
    }

    /// Validates and stores a metric schema: a new one as given, over an
    /// existing one what [`MetricSchema::evolve`] makes of it (fields
    /// added, unit, description and collection aggregation changed).
    pub(crate) fn apply_metric(&self, kv: &dyn KvStore, tenant: &str, m: MetricSchema) -> Result<Applied> {
        let _guard = self.apply.lock();
        let (m, outcome) = match self.metric(tenant, &m.name) {
            // `evolve` validates what it makes (the added marks given are
            // its to set).
            Some(cur) => match cur.evolve(&m)? {
                None => return Ok(Applied::Unchanged),
                Some(evolved) => (evolved, Applied::Updated),
            },
            None => {
                m.validate()?;
                (m, Applied::Created)
            }
        };
        let json = serde_json::to_vec(&m).map_err(|e| Error::Internal(e.to_string()))?;
        let mut b = WriteBatch::default();
        b.put(Cf::Meta, schema_key("metric", tenant, &m.name), json);
        kv.write(b, true)?;
        self.insert_metric(tenant, m);
        Ok(outcome)
    }
}
