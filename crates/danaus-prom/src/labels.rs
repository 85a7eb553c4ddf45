//! Prometheus label sets onto the Danaus data model.
//!
//! Every series belongs to the target schema
//! `prometheus_target{location*, job, instance}`: `location` comes from a
//! `location` label or the receiver's default, `job` and `instance` from
//! their labels. The metric schema is named by `__name__`; its fields are
//! the series' other labels, sorted, registered the first time the metric
//! is seen, with double values and a kind from the metadata (counters, and
//! histogram and summary `_bucket`/`_count`/`_sum` series, are cumulative;
//! without metadata, names ending in `_total` are).
//!
//! A later series may leave labels out (Prometheus treats an absent label
//! as the empty string, and so does Danaus) but may not bring labels the
//! metric was registered without: it is refused with a message naming
//! them. Nothing is renamed or dropped silently.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use danaus_leaf::bytes_map::BytesMap;
use danaus_model::SeriesWrite;

use crate::store::{Store, StoreError};
use danaus_model::{
    FieldDef, FieldType, FieldValue, MetricKind, MetricSchema, Point, ScalarType, TargetSchema, Value, ValueType,
};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;

use crate::prompb::{v1, v2, COUNTER};

/// The target schema every Prometheus series belongs to.
pub const TARGET_SCHEMA: &str = danaus_model::PROM_TARGET_SCHEMA;

const HISTOGRAM: i32 = 3;
const SUMMARY: i32 = 5;

/// A label string: owned, or borrowed from a request body
/// ([`crate::v1_decode`]); a write copies only what it keeps.
pub trait PromStr: AsRef<str> + Into<String> + Clone + std::fmt::Debug + Send + Sync {}

impl<T: AsRef<str> + Into<String> + Clone + std::fmt::Debug + Send + Sync> PromStr for T {}

/// One series as received, either version.
#[derive(Debug, Clone, PartialEq)]
pub struct PromSeries<S = String> {
    /// Labels, `__name__` among them.
    pub labels: Vec<(S, S)>,
    /// `(ms since the epoch, value)`, oldest first.
    pub samples: Vec<(i64, f64)>,
    /// Native histogram samples (not supported yet).
    pub histograms: usize,
    /// Metric type from metadata (0: unknown).
    pub metric_type: i32,
    /// Help text from metadata.
    pub help: S,
    /// Unit from metadata.
    pub unit: S,
    /// When a counter started, ms (2.0's created timestamp).
    pub created_ms: Option<i64>,
}

impl PromSeries {
    /// The series of a 1.0 request, with metadata joined by family name.
    pub fn from_v1(req: v1::WriteRequest) -> Vec<PromSeries> {
        let v1::WriteRequest { timeseries, metadata } = req;
        let meta: HashMap<&str, &v1::MetricMetadata> =
            metadata.iter().map(|m| (m.metric_family_name.as_str(), m)).collect();
        timeseries
            .into_iter()
            .map(|ts| {
                let labels: Vec<(String, String)> = ts.labels.into_iter().map(|l| (l.name, l.value)).collect();
                let name = labels.iter().find(|(k, _)| k == "__name__").map(|(_, v)| v.as_str()).unwrap_or("");
                let m = family(name).iter().find_map(|f| meta.get(f));
                PromSeries {
                    samples: ts.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
                    histograms: ts.histograms.len(),
                    metric_type: m.map_or(0, |m| m.r#type),
                    help: m.map(|m| m.help.clone()).unwrap_or_default(),
                    unit: m.map(|m| m.unit.clone()).unwrap_or_default(),
                    created_ms: None,
                    labels,
                }
            })
            .collect()
    }

    /// The series of a 2.0 request, with symbols resolved. A reference out
    /// of range makes the whole request malformed.
    pub fn from_v2(req: v2::Request) -> Result<Vec<PromSeries>, String> {
        let sym = |i: u32| -> Result<String, String> {
            req.symbols.get(i as usize).cloned().ok_or_else(|| {
                format!("symbol reference {i} is out of range: the request has {} symbols", req.symbols.len())
            })
        };
        let mut out = Vec::with_capacity(req.timeseries.len());
        for (n, ts) in req.timeseries.iter().enumerate() {
            if ts.labels_refs.len() % 2 != 0 {
                return Err(format!("series {n} has an odd number of label references"));
            }
            let labels =
                ts.labels_refs.chunks(2).map(|p| Ok((sym(p[0])?, sym(p[1])?))).collect::<Result<Vec<_>, String>>()?;
            let meta = ts.metadata.clone().unwrap_or_default();
            out.push(PromSeries {
                labels,
                samples: ts.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
                histograms: ts.histograms.len(),
                metric_type: meta.r#type,
                help: sym(meta.help_ref)?,
                unit: sym(meta.unit_ref)?,
                created_ms: (ts.created_timestamp != 0).then_some(ts.created_timestamp),
            });
        }
        Ok(out)
    }
}

impl<S: PromStr> PromSeries<S> {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k.as_ref() == name).map(|(_, v)| v.as_ref())
    }

    /// The labels of the series that are neither its name, nor a target
    /// label, nor a field of `schema`.
    fn labels_missing_from(&self, schema: &MetricSchema) -> Vec<&str> {
        self.labels
            .iter()
            .map(|(k, _)| k.as_ref())
            .filter(|k| *k != "__name__" && !TARGET_LABELS.contains(k) && schema.field(k).is_none())
            .collect()
    }

    /// `name{label="value", …}` for messages.
    pub fn describe(&self) -> String {
        let name = self.label("__name__").unwrap_or("");
        let rest: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| k.as_ref() != "__name__")
            .map(|(k, v)| format!("{}={:?}", k.as_ref(), v.as_ref()))
            .collect();
        format!("{name}{{{}}}", rest.join(", "))
    }
}

/// The family a series name may belong to, most specific first: metadata
/// is keyed by family (`http_request_duration_seconds`), series carry
/// suffixed names (`…_bucket`).
pub(crate) fn family(name: &str) -> Vec<&str> {
    let mut out = vec![name];
    for suffix in ["_bucket", "_count", "_sum", "_total", "_created"] {
        if let Some(base) = name.strip_suffix(suffix) {
            out.push(base);
        }
    }
    out
}

/// The kind of a metric from its type in metadata, else from its name:
/// remote-write 1.0 senders (Prometheus 2.x) send metadata in requests of
/// their own, so a metric's first samples usually arrive without it. Then
/// `_total` is a counter and `_bucket` with an `le` label a histogram's
/// cumulative bucket.
fn kind_for(name: &str, metric_type: i32, has_le: bool) -> MetricKind {
    // OpenMetrics `_created` series (a counter family's) hold the time the
    // counter started, which is no count.
    if name.ends_with("_created") {
        return MetricKind::Gauge;
    }
    let cumulative = match metric_type {
        COUNTER => true,
        HISTOGRAM => ["_bucket", "_count", "_sum"].iter().any(|s| name.ends_with(s)),
        SUMMARY => ["_count", "_sum"].iter().any(|s| name.ends_with(s)),
        0 => name.ends_with("_total") || (has_le && name.ends_with("_bucket")),
        _ => false,
    };
    if cumulative {
        MetricKind::Cumulative
    } else {
        MetricKind::Gauge
    }
}

const TARGET_LABELS: [&str; 3] = ["location", "job", "instance"];

/// A metric schema as a registry hands it out: one `Arc` per schema
/// version, so what was converted with it can tell by pointer whether the
/// schema has changed since; and one copy of its name for every write.
#[derive(Debug, Clone)]
struct Known {
    schema: Arc<MetricSchema>,
    name: Arc<str>,
}

/// What a series' label bytes said when a request last brought them: the
/// parts of its write that every later request with the same bytes
/// shares, and the metric schema version (and name) they were converted
/// with.
#[derive(Debug, Clone)]
pub struct Identity {
    metric: Known,
    target_fields: Arc<[(String, FieldValue)]>,
    metric_fields: Arc<[(String, FieldValue)]>,
}

/// How many series identities a registry keeps, all tenants together.
/// Past it, the shard an insert goes to is emptied (its series are
/// converted from their labels again); if that frees nothing, the series
/// is not kept.
pub const MAX_IDENTITIES: usize = 1 << 21;

/// A tenant's series identities by label bytes (see
/// [`crate::v1_decode::RawSeries::label_bytes`]). The bytes are the key,
/// compared in full: a hit is a series whose labels are exactly those of
/// one converted before.
pub struct Identities {
    map: BytesMap<Identity>,
    /// Identities kept by the registry, all tenants together, and how
    /// many it may keep.
    total: Arc<AtomicUsize>,
    limit: usize,
}

impl Identities {
    fn new(total: Arc<AtomicUsize>, limit: usize) -> Self {
        Identities { map: BytesMap::default(), total, limit }
    }

    /// Calls `f(i, identity)` for each series whose label bytes `keys[i]`
    /// are known, in order of `i`, under read locks that inserts wait for
    /// (nothing is cloned that `f` does not clone). A request's series are
    /// looked up together so that their cache misses overlap.
    pub fn get_each(&self, keys: &[Option<&[u8]>], f: impl FnMut(usize, &Identity)) {
        self.map.get_each(keys, |id| Arc::as_ptr(&id.metric_fields).cast(), f)
    }

    fn insert(&self, key: &[u8], id: Identity) {
        self.map.insert_bounded(key, id, &self.total, self.limit);
    }
}

/// What one request's series share while they are turned into writes.
///
/// Writes from known series take their schema and metric names from this
/// request's own copies. Shared names would have every series of every
/// request count references on the same few cache lines, and two
/// requests on two cores would trade those lines back and forth.
#[derive(Default)]
pub struct WriteCache {
    /// Metric schemas looked up.
    metrics: FxHashMap<String, Known>,
    /// The previous series' target fields (series of a target come together).
    last_target: Option<Arc<[(String, FieldValue)]>>,
    /// Schema versions [`Registry::known_write`] found current, by
    /// address (the `Arc` kept so that the address stays theirs), each
    /// with this request's copy of its metric's name.
    current: FxHashMap<usize, (Arc<MetricSchema>, Arc<str>)>,
    /// This request's copy of the target schema's name.
    target_schema: Option<Arc<str>>,
    /// Why the store refused a schema change [`Registry::prepare`] asked
    /// for, by metric name.
    refused: FxHashMap<String, String>,
}

/// Registers schemas on first sight and turns series into leaf writes.
pub struct Registry {
    leaf: Arc<dyn Store>,
    default_location: String,
    targets_ready: Mutex<std::collections::HashSet<String>>,
    target_schema: Arc<str>,
    /// The current version of each metric schema handed out, by
    /// (tenant, name).
    known: Mutex<FxHashMap<(String, String), Known>>,
    /// Series identities by tenant.
    identities: Mutex<FxHashMap<String, Arc<Identities>>>,
    /// How many identities all tenants hold, and may.
    identities_total: Arc<AtomicUsize>,
    identity_limit: usize,
}

impl Registry {
    /// A registry writing schemas into `leaf`.
    pub fn new(leaf: Arc<dyn Store>, default_location: String) -> Self {
        Self {
            leaf,
            default_location,
            targets_ready: Mutex::new(Default::default()),
            target_schema: TARGET_SCHEMA.into(),
            known: Mutex::new(FxHashMap::default()),
            identities: Mutex::new(FxHashMap::default()),
            identities_total: Arc::new(AtomicUsize::new(0)),
            identity_limit: MAX_IDENTITIES,
        }
    }

    /// Keeps at most `limit` series identities (default
    /// [`MAX_IDENTITIES`]; 0 keeps none: every series' labels are read).
    pub fn with_identity_limit(mut self, limit: usize) -> Self {
        self.identity_limit = limit;
        self
    }

    /// The series identities kept for `tenant`.
    pub fn identities(&self, tenant: &str) -> Arc<Identities> {
        let mut ids = self.identities.lock();
        match ids.get(tenant) {
            Some(i) => i.clone(),
            None => ids
                .entry(tenant.to_owned())
                .or_insert_with(|| Arc::new(Identities::new(self.identities_total.clone(), self.identity_limit)))
                .clone(),
        }
    }

    /// The store's metric schema `name`, as the `Arc` handed out before
    /// while it has not changed.
    fn current(&self, tenant: &str, name: &str) -> Option<Known> {
        let schema = self.leaf.metric_schema(tenant, name)?;
        let mut known = self.known.lock();
        let key = (tenant.to_owned(), name.to_owned());
        match known.get(&key) {
            Some(k) if Arc::ptr_eq(&k.schema, &schema) || *k.schema == *schema => Some(k.clone()),
            _ => {
                let k = Known { name: name.into(), schema };
                known.insert(key, k.clone());
                Some(k)
            }
        }
    }

    /// The write of a series known by its label bytes, with `samples`;
    /// its samples back when its metric's schema changed since it was
    /// converted (the series must be converted from its labels again).
    pub fn known_write(
        &self,
        tenant: &str,
        id: &Identity,
        samples: Vec<(i64, f64)>,
        cache: &mut WriteCache,
    ) -> Result<SeriesWrite, Vec<(i64, f64)>> {
        let Known { schema, name } = &id.metric;
        let address = Arc::as_ptr(schema) as usize;
        let name = match cache.current.get(&address) {
            Some((_, local)) => local.clone(),
            None => {
                let current = match cache.metrics.get(&**name) {
                    Some(k) => Arc::ptr_eq(&k.schema, schema),
                    None => self.current(tenant, name).is_some_and(|k| {
                        let current = Arc::ptr_eq(&k.schema, schema);
                        cache.metrics.insert(name.to_string(), k);
                        current
                    }),
                };
                if !current {
                    return Err(samples);
                }
                let local: Arc<str> = Arc::from(&**name);
                cache.current.insert(address, (schema.clone(), local.clone()));
                local
            }
        };
        let points = points(schema, None, samples);
        let target_schema = cache.target_schema.get_or_insert_with(|| Arc::from(&*self.target_schema)).clone();
        Ok(SeriesWrite {
            target_schema,
            target_fields: id.target_fields.clone(),
            metric: name,
            metric_fields: id.metric_fields.clone(),
            points,
        })
    }

    /// Registers what `series` need before they are converted, as one
    /// change of the store (one table version in a zone): the target
    /// schema on a tenant's first request, a schema for each new metric
    /// name (its fields every label its series in `series` bring), and as
    /// added fields the labels a known metric's series bring that it
    /// lacks (an interface with a `duplex` label where others have none,
    /// a target group with an extra static label). A change the store
    /// refuses as a whole is tried again a schema at a time, so a bad one
    /// refuses only its own series (see [`Registry::series_write`]).
    /// `Err`: the store cannot take a change now, or refuses the target
    /// schema; nothing of the request should be taken.
    pub async fn prepare<'s, S: PromStr + 's>(
        &self,
        tenant: &str,
        series: impl IntoIterator<Item = &'s PromSeries<S>>,
        cache: &mut WriteCache,
    ) -> Result<(), StoreError> {
        let target = self.target_change(tenant)?;
        // Per metric name: its current schema, the labels its series bring
        // and its first series (whose metadata a new schema takes).
        type Wanted<'a, S> = (Option<Known>, Vec<&'a str>, &'a PromSeries<S>);
        let mut wanted: std::collections::BTreeMap<&str, Wanted<'_, S>> = Default::default();
        for s in series {
            let Some(name) = s.label("__name__").filter(|n| !n.is_empty() && s.histograms == 0) else { continue };
            let entry = match wanted.get_mut(name) {
                Some(e) => e,
                None => {
                    let known = match cache.metrics.get(name) {
                        Some(k) => Some(k.clone()),
                        None => self.current(tenant, name),
                    };
                    wanted.entry(name).or_insert((known, Vec::new(), s))
                }
            };
            for (k, _) in &s.labels {
                let k = k.as_ref();
                if k != "__name__" && !TARGET_LABELS.contains(&k) && !entry.1.contains(&k) {
                    entry.1.push(k);
                }
            }
        }
        let mut metrics = Vec::new();
        for (name, (known, mut labels, first)) in wanted {
            labels.sort_unstable();
            match known {
                None => metrics.push(MetricSchema {
                    name: name.to_owned(),
                    fields: labels.iter().map(|f| FieldDef::new(*f, FieldType::String)).collect(),
                    value_type: ValueType::Scalar(ScalarType::Double),
                    kind: kind_for(name, first.metric_type, labels.contains(&"le")),
                    unit: first.unit.as_ref().to_owned(),
                    description: first.help.as_ref().to_owned(),
                    collection: None,
                }),
                Some(k) => {
                    let m = &*k.schema;
                    let missing: Vec<&&str> = labels.iter().filter(|l| m.field(l).is_none()).collect();
                    // Only Prometheus-shaped metrics grow; convert refuses
                    // the series of others with why.
                    if !missing.is_empty() && m.value_type == ValueType::Scalar(ScalarType::Double) {
                        let mut grown = m.clone();
                        grown.fields.extend(missing.iter().map(|l| FieldDef::new(**l, FieldType::String)));
                        metrics.push(grown);
                    }
                }
            }
        }
        if target.is_none() && metrics.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = metrics.iter().map(|m| m.name.clone()).collect();
        match self.leaf.apply_schemas(tenant, target.iter().cloned().collect(), metrics.clone()).await {
            Ok(()) => {}
            Err(StoreError::Refused(_)) if target.is_some() || metrics.len() > 1 => {
                // One of them is refused: each on its own finds which.
                if let Some(t) = target {
                    self.leaf.apply_schemas(tenant, vec![t], Vec::new()).await?;
                }
                for m in metrics {
                    let name = m.name.clone();
                    match self.leaf.apply_schemas(tenant, Vec::new(), vec![m]).await {
                        Ok(()) => {}
                        Err(StoreError::Refused(e)) => {
                            cache.refused.insert(name, e);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(StoreError::Refused(e)) => {
                cache.refused.insert(names[0].clone(), e);
            }
            Err(e) => return Err(e),
        }
        self.targets_ready.lock().insert(tenant.to_owned());
        for n in names {
            cache.metrics.remove(&n);
        }
        Ok(())
    }

    /// `prometheus_target` when `tenant` still needs it created. A stored
    /// schema of that name with other fields is [`StoreError::Refused`].
    fn target_change(&self, tenant: &str) -> Result<Option<TargetSchema>, StoreError> {
        if self.targets_ready.lock().contains(tenant) {
            return Ok(None);
        }
        let schema = TargetSchema {
            name: TARGET_SCHEMA.into(),
            fields: TARGET_LABELS.iter().map(|n| FieldDef::new(*n, FieldType::String)).collect(),
            location_field: "location".into(),
        };
        match self.leaf.target_schema(tenant, TARGET_SCHEMA) {
            Some(existing) if *existing == schema => {
                self.targets_ready.lock().insert(tenant.to_owned());
                Ok(None)
            }
            Some(existing) => Err(StoreError::Refused(format!(
                "target schema {TARGET_SCHEMA} exists with fields other than location, job, instance ({:?}); \
                 Prometheus data needs it as documented",
                existing.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>()
            ))),
            None => Ok(Some(schema)),
        }
    }

    /// Creates `prometheus_target` for `tenant` if needed (what
    /// [`Registry::prepare`] does for a request's series).
    pub async fn ensure_target(&self, tenant: &str) -> Result<(), StoreError> {
        if let Some(t) = self.target_change(tenant)? {
            self.leaf.apply_schemas(tenant, vec![t], Vec::new()).await?;
            self.targets_ready.lock().insert(tenant.to_owned());
        }
        Ok(())
    }

    async fn metric<S: PromStr>(&self, tenant: &str, s: &PromSeries<S>, name: &str) -> Result<Known, StoreError> {
        if let Some(m) = self.current(tenant, name) {
            return Ok(m);
        }
        let mut fields: Vec<&str> = s
            .labels
            .iter()
            .map(|(k, _)| k.as_ref())
            .filter(|k| *k != "__name__" && !TARGET_LABELS.contains(k))
            .collect();
        fields.sort_unstable();
        let schema = MetricSchema {
            name: name.to_owned(),
            fields: fields.iter().map(|f| FieldDef::new(*f, FieldType::String)).collect(),
            value_type: ValueType::Scalar(ScalarType::Double),
            kind: kind_for(name, s.metric_type, s.label("le").is_some()),
            unit: s.unit.as_ref().to_owned(),
            description: s.help.as_ref().to_owned(),
            collection: None,
        };
        schema.validate().map_err(|e| StoreError::Refused(e.to_string()))?;
        // A concurrent request may have registered it first, perhaps with
        // other labels: then the stored schema decides.
        if let Err(e) = self.leaf.apply_schemas(tenant, Vec::new(), vec![schema]).await {
            return self.current(tenant, name).ok_or(e);
        }
        self.current(tenant, name)
            .ok_or_else(|| StoreError::Unavailable(format!("metric {name} is not visible yet after registration")))
    }

    /// The leaf write for a series (moving its labels and samples),
    /// registering its metric schema if needed; `cache` keeps what one
    /// request has looked up and its last target's fields, which the
    /// series of one target share. Call [`Registry::prepare`] (or
    /// [`Registry::ensure_target`]) first.
    /// `Ok(Err)` gives the series back with why it can never be stored;
    /// `Err` is a failure to register its schema that a retry may not meet
    /// (no quorum, a timeout): nothing of the request should be taken.
    /// With `key` (the series' label bytes), its identity is kept in
    /// `ids`, for [`Registry::known_write`] to use with later requests.
    pub async fn series_write<S: PromStr>(
        &self,
        tenant: &str,
        s: PromSeries<S>,
        key: Option<(&Identities, &[u8])>,
        cache: &mut WriteCache,
    ) -> Result<Result<SeriesWrite, (PromSeries<S>, String)>, StoreError> {
        Ok(match self.metric_for(tenant, &s, cache).await? {
            Ok(known) => {
                let refused = cache.refused.get(&known.schema.name).map(String::as_str);
                let w = self.convert(s, &known, refused, &mut cache.last_target);
                if let (Ok(w), Some((ids, key))) = (&w, key) {
                    let id = Identity {
                        metric: known,
                        target_fields: w.target_fields.clone(),
                        metric_fields: w.metric_fields.clone(),
                    };
                    ids.insert(key, id);
                }
                w
            }
            Err(e) => Err((s, e)),
        })
    }

    /// The metric schema a series is written with, or why it cannot be.
    async fn metric_for<S: PromStr>(
        &self,
        tenant: &str,
        s: &PromSeries<S>,
        cache: &mut WriteCache,
    ) -> Result<Result<Known, String>, StoreError> {
        if s.histograms > 0 {
            return Ok(Err("native histograms are not supported yet; send classic histograms".into()));
        }
        let Some(name) = s.label("__name__").filter(|n| !n.is_empty()) else {
            return Ok(Err("the series has no __name__ label".into()));
        };
        let known = match cache.metrics.get(name) {
            Some(m) => m.clone(),
            None => {
                if let Some(e) = cache.refused.get(name) {
                    if self.current(tenant, name).is_none() {
                        return Ok(Err(e.clone()));
                    }
                }
                match self.metric(tenant, s, name).await {
                    Ok(m) => {
                        cache.metrics.insert(name.to_owned(), m.clone());
                        m
                    }
                    Err(StoreError::Refused(e)) => return Ok(Err(e)),
                    Err(e) => return Err(e),
                }
            }
        };
        // Labels the schema lacks (a request not prepared, or a change
        // that raced this one's) are added now, unless the store refused
        // them: then `convert` says why.
        let schema = &*known.schema;
        let missing = s.labels_missing_from(schema);
        if missing.is_empty()
            || cache.refused.contains_key(name)
            || schema.value_type != ValueType::Scalar(ScalarType::Double)
        {
            return Ok(Ok(known));
        }
        let mut grown = schema.clone();
        grown.fields.extend(missing.iter().map(|l| FieldDef::new(*l, FieldType::String)));
        match self.leaf.apply_schemas(tenant, Vec::new(), vec![grown]).await {
            Ok(()) => {}
            Err(StoreError::Refused(e)) => {
                cache.refused.insert(name.to_owned(), e);
                return Ok(Ok(known));
            }
            Err(e) => return Err(e),
        }
        let k = self
            .current(tenant, name)
            .ok_or_else(|| StoreError::Unavailable(format!("metric {name} is not visible after its change; retry")))?;
        cache.metrics.insert(name.to_owned(), k.clone());
        Ok(Ok(k))
    }

    /// The leaf write for a series whose metric schema is `schema`.
    #[allow(clippy::result_large_err)] // the series goes back to be reported
    fn convert<S: PromStr>(
        &self,
        s: PromSeries<S>,
        known: &Known,
        growth_refused: Option<&str>,
        last_target: &mut Option<Arc<[(String, FieldValue)]>>,
    ) -> Result<SeriesWrite, (PromSeries<S>, String)> {
        let schema = &*known.schema;
        let name = &schema.name;
        if schema.value_type != ValueType::Scalar(ScalarType::Double) {
            let e = format!("metric {name} exists with {} values; Prometheus samples are doubles", schema.value_type);
            return Err((s, e));
        }
        // Senders sort labels by name, so one pass usually proves there are
        // no duplicates; otherwise every pair is compared.
        let labels = &s.labels;
        if !labels.windows(2).all(|w| w[0].0.as_ref() < w[1].0.as_ref()) {
            if let Some((k, _)) = labels.iter().enumerate().find_map(|(i, (k, _))| {
                labels[..i].iter().any(|(k2, _)| k2.as_ref() == k.as_ref()).then_some((k.as_ref(), i))
            }) {
                let e = format!("the series has the label {k:?} more than once");
                return Err((s, e));
            }
        }
        let extra = s.labels_missing_from(schema);
        if !extra.is_empty() {
            let e = format!(
                "metric {name} has the labels [{}]; this series also has [{}], which could not be added to it ({})",
                schema.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
                extra.join(", "),
                growth_refused.unwrap_or("its schema did not gain them")
            );
            return Err((s, e));
        }
        let PromSeries { labels, samples, created_ms, .. } = s;
        // The target first, from borrowed labels: the series of a target
        // share the previous series' copy, so most copy nothing.
        let (mut location, mut job, mut instance) = (None, "", "");
        for (k, v) in &labels {
            match k.as_ref() {
                "location" => location = Some(v.as_ref()).filter(|l| !l.is_empty()),
                "job" => job = v.as_ref(),
                "instance" => instance = v.as_ref(),
                _ => {}
            }
        }
        let location = location.unwrap_or(&self.default_location);
        let same = last_target.as_ref().is_some_and(|t| {
            matches!(&t[..], [(_, FieldValue::String(l)), (_, FieldValue::String(j)), (_, FieldValue::String(i))]
                if l == location && j == job && i == instance)
        });
        let target_fields = match last_target {
            Some(t) if same => t.clone(),
            _ => {
                let t: Arc<[(String, FieldValue)]> = Arc::from(vec![
                    ("location".to_owned(), FieldValue::String(location.to_owned())),
                    ("job".to_owned(), FieldValue::String(job.to_owned())),
                    ("instance".to_owned(), FieldValue::String(instance.to_owned())),
                ]);
                *last_target = Some(t.clone());
                t
            }
        };
        // Then the metric fields, moving owned values.
        let mut values: Vec<Option<String>> = vec![None; schema.fields.len()];
        for (k, v) in labels {
            if let Some((i, _)) = schema.field(k.as_ref()) {
                values[i] = Some(v.into());
            }
        }
        let metric_fields = schema
            .fields
            .iter()
            .zip(values)
            .map(|(f, v)| (f.name.clone(), FieldValue::String(v.unwrap_or_default())))
            .collect();
        Ok(SeriesWrite {
            target_schema: self.target_schema.clone(),
            target_fields,
            metric: known.name.clone(),
            metric_fields,
            points: points(schema, created_ms, samples),
        })
    }
}

/// The points of samples of a series of metric `schema` (a cumulative one
/// starts at `created_ms` when known).
fn points(schema: &MetricSchema, created_ms: Option<i64>, samples: Vec<(i64, f64)>) -> Vec<Point> {
    let start = match schema.kind {
        MetricKind::Cumulative => created_ms.map(|ms| ms.saturating_mul(1_000_000)),
        _ => None,
    };
    samples
        .into_iter()
        .map(|(ms, v)| Point {
            start_time: start.filter(|st| *st <= ms.saturating_mul(1_000_000)),
            end_time: ms.saturating_mul(1_000_000),
            value: Value::Double(v),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_metadata_then_names() {
        assert_eq!(kind_for("http_requests_total", 0, false), MetricKind::Cumulative);
        assert_eq!(kind_for("node_load1", 0, false), MetricKind::Gauge);
        assert_eq!(kind_for("requests", COUNTER, false), MetricKind::Cumulative);
        assert_eq!(kind_for("latency_bucket", HISTOGRAM, true), MetricKind::Cumulative);
        assert_eq!(kind_for("latency", SUMMARY, false), MetricKind::Gauge);
        assert_eq!(kind_for("latency_sum", SUMMARY, false), MetricKind::Cumulative);
        // Without metadata (remote-write 1.0 sends it apart from samples).
        assert_eq!(kind_for("latency_bucket", 0, true), MetricKind::Cumulative);
        assert_eq!(kind_for("queue_bucket", 0, false), MetricKind::Gauge);
        assert_eq!(kind_for("requests_created", COUNTER, false), MetricKind::Gauge);
        assert_eq!(family("latency_bucket"), vec!["latency_bucket", "latency"]);
    }

    /// The series of one target hold one copy of its fields, so every layer
    /// after the receiver compares them by pointer.
    #[tokio::test]
    async fn series_of_a_target_share_its_fields() {
        #![allow(clippy::unwrap_used)]
        use danaus_storage::{MemKv, MemLogDevice, SystemClock};
        let leaf = danaus_leaf::Leaf::open(danaus_leaf::LeafConfig {
            kv: Arc::new(MemKv::new()),
            log: Arc::new(MemLogDevice::new()),
            clock: Arc::new(SystemClock),
            options: danaus_leaf::LeafOptions::default(),
        })
        .await
        .unwrap();
        let registry = Registry::new(Arc::new(leaf), "z".into());
        registry.ensure_target("t").await.unwrap();
        let series = |name: &str, instance: &str| PromSeries {
            labels: vec![
                ("__name__".into(), name.into()),
                ("instance".into(), instance.into()),
                ("job".into(), "node".into()),
            ],
            samples: vec![(1_000, 1.0)],
            histograms: 0,
            metric_type: 0,
            help: String::new(),
            unit: String::new(),
            created_ms: None,
        };
        let mut cache = WriteCache::default();
        let mut writes = Vec::new();
        for s in [series("a", "h1"), series("b", "h1"), series("a", "h2")] {
            writes.push(registry.series_write("t", s, None, &mut cache).await.unwrap().unwrap());
        }
        assert!(Arc::ptr_eq(&writes[0].target_fields, &writes[1].target_fields));
        assert!(!Arc::ptr_eq(&writes[1].target_fields, &writes[2].target_fields));
        assert_eq!(writes[2].target_fields[2], ("instance".into(), FieldValue::String("h2".into())));
        assert_eq!(writes[0].target_fields[0], ("location".into(), FieldValue::String("z".into())));
    }
}
