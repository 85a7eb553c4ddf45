//! The leaf: write path, read path, checkpoints and retention.

use rustc_hash::FxHashMap;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use danaus_codec::varint::{put_ivarint, put_uvarint, ByteReader};
use danaus_codec::{get_value_type, put_value_type, Chunk};
use danaus_model::{
    validate, Applied, CollectionAggregation, ErrorCode, MetricSchema, Point, SeriesError, SeriesKey, SeriesWrite,
    TargetSchema, WriteResult,
};
use danaus_storage::{Cf, Clock, KvStore, LogDevice, RecoveryLog, ReplayReport, WriteBatch};

use crate::aggregate::{Admitted, Aggregator, Refusal};
use crate::bytes_map;
use crate::error::{Error, Result};
use crate::index::{Index, SeriesRef, TargetSeries};
use crate::intern::ChunkContext;
use crate::keys;
use crate::options::{nanos, LeafOptions, MAX_CHUNK_SPAN_NS};
use crate::schemas::Schemas;
use crate::series::{Accept, Limits, SeriesState};
use crate::stats::LeafStats;
use crate::wal_record::{self, Entry, RecordBuilder};

mod read;

pub use read::SelectedSeries;

/// What a leaf is built from: its storage seams and options.
pub struct LeafConfig {
    /// Long-term store.
    pub kv: Arc<dyn KvStore>,
    /// Where the recovery log lives.
    pub log: Arc<dyn LogDevice>,
    /// Wall clock.
    pub clock: Arc<dyn Clock>,
    /// Tuning.
    pub options: LeafOptions,
}

/// The schemas a batch names, each looked up once. A batch shares a few
/// copies of each name, so a name is found by its address (one multiply
/// to hash) before its text: the batch is borrowed throughout, so no
/// address is reused while it is a key.
struct BatchSchemas<'b, T> {
    by_address: FxHashMap<usize, Option<Arc<T>>>,
    by_name: FxHashMap<&'b str, Option<Arc<T>>>,
}

impl<T> Default for BatchSchemas<'_, T> {
    fn default() -> Self {
        BatchSchemas { by_address: FxHashMap::default(), by_name: FxHashMap::default() }
    }
}

impl<'b, T> BatchSchemas<'b, T> {
    /// The schema `name` was found to be by [`BatchSchemas::get`].
    fn peek(&self, name: &Arc<str>) -> Option<&Arc<T>> {
        self.by_address.get(&(Arc::as_ptr(name).cast::<u8>() as usize))?.as_ref()
    }

    fn get(&mut self, name: &'b Arc<str>, lookup: impl FnOnce(&str) -> Option<Arc<T>>) -> &Option<Arc<T>> {
        let BatchSchemas { by_address, by_name } = self;
        by_address
            .entry(Arc::as_ptr(name).cast::<u8>() as usize)
            .or_insert_with(|| by_name.entry(name).or_insert_with(|| lookup(name)).clone())
    }
}

/// What a write's first pass made of a series.
enum Prepared {
    /// Its key is `keys[start..end]`; the first `target_len` bytes are
    /// the target string of run `run`.
    Key { start: usize, end: usize, target_len: usize, run: usize },
    /// Refused as a whole.
    Refused(SeriesError),
    /// Deltas of a collection-aggregated metric.
    Deltas,
}

/// What a checkpoint did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Chunks written to the long-term store.
    pub chunks_written: u64,
    /// Bytes of chunk data written.
    pub bytes_written: u64,
    /// Chunks dropped from memory after aging out.
    pub chunks_evicted: u64,
    /// Recovery-log segments deleted.
    pub segments_removed: usize,
}

/// Memory held by the leaf's series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Series in the index.
    pub series: usize,
    /// Points held in memory chunks.
    pub points: usize,
    /// Bytes held by chunks, open and sealed: encoded data plus the open
    /// chunks' encoder state and buffer slack (the series index excluded).
    pub chunk_bytes: usize,
    /// Encoded chunk data alone (shared time columns counted once).
    pub data_bytes: usize,
}

/// A delta admitted to an open collection-aggregation bucket, as a history
/// copy carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenDelta {
    /// The bucket: `(start, end]`.
    pub bucket: (i64, i64),
    /// When the bucket stops admitting deltas.
    pub closes_at: i64,
    /// The input series' encoded key.
    pub input_key: Vec<u8>,
    /// The delta.
    pub point: Point,
}

/// Words a series' error for all its refused points (of `total`);
/// returns how many were refused.
fn summarize(e: &mut SeriesError, total: usize) -> usize {
    let n = e.rejected_points.len();
    if n > 1 {
        e.message = format!("{n} of {total} points refused; first: {}", e.message);
    }
    n
}

/// Displays an encoded series key, decoding it only when printed.
struct LazyKey<'a>(&'a [u8]);

impl std::fmt::Display for LazyKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match SeriesKey::decode(self.0) {
            Ok(k) => k.fmt(f),
            Err(e) => write!(f, "<undecodable series key: {e}>"),
        }
    }
}

pub(crate) struct Inner {
    opts: LeafOptions,
    limits: Limits,
    kv: Arc<dyn KvStore>,
    log: RecoveryLog,
    clock: Arc<dyn Clock>,
    schemas: Schemas,
    index: Index,
    next_series_id: AtomicU64,
    next_chunk_seq: AtomicU64,
    closed: AtomicBool,
    checkpoint_lock: tokio::sync::Mutex<()>,
    log_bytes_at_checkpoint: AtomicU64,
    /// Clock time retention last ran (`i64::MIN`: never).
    last_retention: std::sync::atomic::AtomicI64,
    stats: LeafStats,
    replay: ReplayReport,
    chunks: Arc<ChunkContext>,
    /// Open collection-aggregation buckets.
    agg: Aggregator,
    /// Whether the buckets of output series with this target string must
    /// stay open for now.
    hold: parking_lot::RwLock<Option<BucketHold>>,
}

/// Decides, by target string, whether buckets must stay open past their
/// admission window (see [`Leaf::set_bucket_hold`]).
pub type BucketHold = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// A leaf store; cheap to clone.
#[derive(Clone)]
pub struct Leaf {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf").field("series", &self.inner.index.len()).finish()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    danaus_storage::run_blocking(f).await.map_err(|e| Error::Internal(e.to_string()))
}

fn series_record(s: &SeriesState) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.encoded_key.len() + 16);
    put_uvarint(&mut v, s.encoded_key.len() as u64);
    v.extend_from_slice(&s.encoded_key);
    put_value_type(&mut v, &s.value_type);
    v.push(wal_record::kind_code(s.kind));
    put_ivarint(&mut v, s.max_time.unwrap_or(i64::MIN));
    v
}

fn parse_series_record(id: u64, v: &[u8]) -> std::result::Result<SeriesState, String> {
    let e = |x: danaus_codec::Error| format!("series {id}: {x}");
    let mut r = ByteReader::new(v);
    let n = r.len(r.remaining(), "key").map_err(e)?;
    let key_bytes = r.bytes(n).map_err(e)?.to_vec();
    let key = SeriesKey::decode(&key_bytes).map_err(|x| format!("series {id}: {x}"))?;
    let vt = get_value_type(&mut r).map_err(e)?;
    let kind = wal_record::kind_from(r.u8().map_err(e)?)?;
    let max = r.ivarint().map_err(e)?;
    let mut s = SeriesState::new(id, &key, key_bytes, vt, kind);
    s.max_time = (max != i64::MIN).then_some(max);
    s.def_durable = true;
    s.record_dirty = false;
    // Checkpointed points are in the store, not in memory; newer ones come
    // back from the log.
    s.complete_from = if max == i64::MIN { i64::MIN } else { max.saturating_add(1) };
    Ok(s)
}

impl Leaf {
    /// Opens a leaf: loads schemas and series from the long-term store,
    /// replays the recovery log, then starts the log and the background
    /// checkpoint task.
    pub async fn open(config: LeafConfig) -> Result<Leaf> {
        let LeafConfig { kv, log: device, clock, options } = config;
        let started = Instant::now();
        let kv2 = kv.clone();
        let dev2 = device.clone();
        let limits = Limits {
            ooo_window: nanos(options.out_of_order_window),
            max_points: options.chunk_max_points.max(1),
            max_span: nanos(options.chunk_max_span).min(MAX_CHUNK_SPAN_NS),
        };
        // Loading and replay block on disk: keep them off the async workers.
        let chunks = Arc::new(ChunkContext::default());
        let replay_chunks = chunks.clone();
        let (schemas, index, next_series, next_seq, replay, agg) = blocking(move || -> Result<_> {
            let ctx = replay_chunks;
            let schemas = Schemas::load(kv2.as_ref())?;
            let index = Index::new();
            let mut max_id = 0u64;
            let mut bad = None;
            kv2.scan(Cf::Series, &[], &[], &mut |k, v| {
                let Some(id) = keys::u64_value(k) else { return true };
                match parse_series_record(id, v) {
                    Ok(s) => {
                        max_id = max_id.max(id);
                        let (key, target_len) = (s.encoded_key.clone(), s.target_len as usize);
                        index.get_or_insert(&key[..], target_len, || {
                            let k = s.key();
                            (s, (k.tenant, k.target_schema, k.metric))
                        });
                        true
                    }
                    Err(e) => {
                        bad = Some(e);
                        false
                    }
                }
            })?;
            if let Some(b) = bad {
                return Err(Error::Internal(format!("long-term store has an unreadable series record: {b}")));
            }
            let read_u64 =
                |k: &[u8]| -> Result<u64> { Ok(kv2.get(Cf::Meta, k)?.and_then(|v| keys::u64_value(&v)).unwrap_or(0)) };
            let mut next_series = read_u64(keys::NEXT_SERIES_ID)?.max(max_id + 1);
            let mut next_seq = read_u64(keys::NEXT_CHUNK_SEQ)?.max(1);
            let replay_limits = Limits { ooo_window: i64::MAX, ..limits };
            // Deltas of open aggregation buckets saved by the last
            // checkpoint, then those the log still holds (the overlap is
            // recognised as duplicates).
            let agg = Aggregator::default();
            let mut saved = Vec::new();
            kv2.scan(Cf::Meta, keys::AGG_OPEN_PREFIX, &keys::prefix_end(keys::AGG_OPEN_PREFIX), &mut |_, v| {
                saved.push(v.to_vec());
                true
            })?;
            for v in saved {
                let entries = wal_record::decode(&v).map_err(|e| {
                    Error::Internal(format!("long-term store has an unreadable aggregation bucket: {e}"))
                })?;
                for entry in entries {
                    if let Entry::AggInput { id, bucket, closes_at, input_key, point } = entry {
                        let _ = agg.admit(id, None, bucket, closes_at, &input_key, &point);
                    }
                }
            }
            let report = RecoveryLog::replay(dev2.as_ref(), &mut |payload| {
                for entry in wal_record::decode(payload)? {
                    match entry {
                        Entry::Series { id, key, value_type, kind } => {
                            let decoded = SeriesKey::decode(&key).map_err(|e| e.to_string())?;
                            next_series = next_series.max(id + 1);
                            index.get_or_insert(&key, decoded.target_string().0.len(), || {
                                let mut s = SeriesState::new(id, &decoded, key.clone(), value_type, kind);
                                s.def_durable = true;
                                (s, (decoded.tenant, decoded.target_schema, decoded.metric))
                            });
                        }
                        Entry::AggInput { id, bucket, closes_at, input_key, point } => {
                            if index.by_id(id).is_none() {
                                return Err(format!("aggregated delta for unknown series {id}"));
                            }
                            let _ = agg.admit(id, None, bucket, closes_at, &input_key, &point);
                        }
                        Entry::Points { id, points } => {
                            let s = index.by_id(id).ok_or_else(|| format!("points for unknown series {id}"))?;
                            let mut s = s.lock();
                            for p in &points {
                                s.apply(
                                    p,
                                    &replay_limits,
                                    &mut || {
                                        next_seq += 1;
                                        next_seq - 1
                                    },
                                    &ctx,
                                );
                            }
                        }
                    }
                }
                Ok(())
            })?;
            // Buckets whose output point is stored closed before the restart.
            agg.prune_closed(|id| index.by_id(id).and_then(|s| s.lock().max_time));
            Ok((schemas, index, next_series, next_seq, report, agg))
        })
        .await??;
        let log = RecoveryLog::start(device, options.log.clone(), replay.next_segment)?;
        let stats = LeafStats::default();
        stats.replay_records.store(replay.records, Ordering::Relaxed);
        stats.replay_torn_tails.store(u64::from(replay.torn_tail.is_some()), Ordering::Relaxed);
        stats.replay_corrupt_segments.store(replay.corrupt.len() as u64, Ordering::Relaxed);
        if !replay.rejected.is_empty() {
            tracing::error!(rejected = ?replay.rejected, "recovery log records could not be applied");
        }
        tracing::info!(
            series = index.len(),
            records = replay.records,
            segments = replay.segments,
            torn_tail = ?replay.torn_tail,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "leaf opened"
        );
        let inner = Arc::new(Inner {
            limits,
            kv,
            log,
            clock,
            schemas,
            index,
            next_series_id: AtomicU64::new(next_series),
            next_chunk_seq: AtomicU64::new(next_seq),
            closed: AtomicBool::new(false),
            checkpoint_lock: tokio::sync::Mutex::new(()),
            log_bytes_at_checkpoint: AtomicU64::new(0),
            last_retention: std::sync::atomic::AtomicI64::new(i64::MIN),
            stats,
            replay,
            opts: options,
            chunks,
            agg,
            hold: parking_lot::RwLock::default(),
        });
        let leaf = Leaf { inner };
        tokio::spawn(background(Arc::downgrade(&leaf.inner)));
        Ok(leaf)
    }

    /// What replay found when the leaf opened.
    pub fn replay_report(&self) -> &ReplayReport {
        &self.inner.replay
    }

    /// Counters for `/metrics`.
    pub fn stats(&self) -> &LeafStats {
        &self.inner.stats
    }

    /// Why the leaf cannot accept writes, if it cannot.
    pub fn unhealthy(&self) -> Option<String> {
        if self.inner.log.stats().poisoned.load(Ordering::Acquire) {
            Some("the recovery log failed a write or fsync; writes are refused until restart".into())
        } else if self.inner.closed.load(Ordering::Acquire) {
            Some("shutting down".into())
        } else {
            None
        }
    }

    /// Recovery-log counters.
    pub fn log_stats(&self) -> &danaus_storage::LogStats {
        self.inner.log.stats()
    }

    /// The options the leaf runs with.
    pub fn options(&self) -> &LeafOptions {
        &self.inner.opts
    }

    /// Creates or updates a target schema (durable on return).
    pub async fn apply_target_schema(&self, tenant: &str, schema: TargetSchema) -> Result<Applied> {
        let inner = self.inner.clone();
        let tenant = tenant.to_owned();
        blocking(move || inner.schemas.apply_target(inner.kv.as_ref(), &tenant, schema)).await?
    }

    /// Creates or updates a metric schema (durable on return).
    pub async fn apply_metric_schema(&self, tenant: &str, schema: MetricSchema) -> Result<Applied> {
        let inner = self.inner.clone();
        let tenant = tenant.to_owned();
        blocking(move || inner.schemas.apply_metric(inner.kv.as_ref(), &tenant, schema)).await?
    }

    /// A target schema by name.
    pub fn target_schema(&self, tenant: &str, name: &str) -> Option<Arc<TargetSchema>> {
        self.inner.schemas.target(tenant, name)
    }

    /// A metric schema by name.
    pub fn metric_schema(&self, tenant: &str, name: &str) -> Option<Arc<MetricSchema>> {
        self.inner.schemas.metric(tenant, name)
    }

    /// Every target schema of a tenant, by name.
    pub fn target_schemas(&self, tenant: &str) -> Vec<Arc<TargetSchema>> {
        self.inner.schemas.targets(tenant)
    }

    /// Every metric schema of a tenant, by name.
    pub fn metric_schemas(&self, tenant: &str) -> Vec<Arc<MetricSchema>> {
        self.inner.schemas.metrics(tenant)
    }

    /// Writes a batch. Valid series are stored even when others in the same
    /// batch are refused; the result lists what was refused and why. On
    /// `Ok`, every accepted point is durable in the recovery log.
    ///
    /// The series may be owned or borrowed (`&[SeriesWrite]` or
    /// `&[&SeriesWrite]`): a router hands over series it still holds for
    /// retries without copying them.
    pub async fn write<S: Borrow<SeriesWrite> + Sync>(&self, tenant: &str, batch: &[S]) -> Result<WriteResult> {
        let limits = self.inner.limits;
        self.write_with(tenant, batch, limits, true).await
    }

    /// Writes history copied from another replica of a range: like
    /// [`write`](Self::write), but points older than the out-of-order
    /// window are accepted too (duplicates are still recognised, and a
    /// different value at an existing time is still a conflict). Points of
    /// collection-aggregated metrics are stored as given: they are another
    /// replica's output points, not deltas to fold.
    pub async fn import(&self, tenant: &str, batch: &[SeriesWrite]) -> Result<WriteResult> {
        let limits = Limits { ooo_window: i64::MAX, ..self.inner.limits };
        self.write_with(tenant, batch, limits, false).await
    }

    async fn write_with<S: Borrow<SeriesWrite> + Sync>(
        &self,
        tenant: &str,
        batch: &[S],
        limits: Limits,
        aggregate: bool,
    ) -> Result<WriteResult> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Unavailable("leaf is shutting down; retry on another replica or after restart".into()));
        }
        let mut result = WriteResult::default();
        let points: usize = batch.iter().map(|s| s.borrow().points.len()).sum();
        let mut rec = RecordBuilder::with_capacity(RecordBuilder::estimate(batch.len(), points));
        let mut defined: Vec<SeriesRef> = Vec::new();
        let mut accepted = Vec::new();
        let mut stored = Vec::new();
        // Batches repeat a few schemas many times: look each up once.
        let mut targets = BatchSchemas::default();
        let mut metrics = BatchSchemas::default();
        // First every series' key, encoded into one buffer, then the
        // series already in the index, looked up together (their cache
        // misses overlap), then the points, series by series.
        let mut keys: Vec<u8> = Vec::with_capacity(batch.len() * 64);
        let mut prepared: Vec<Prepared> = Vec::with_capacity(batch.len());
        // Runs of a target's series (a host's scrape): its encoded target
        // string and its series in the index, if it had any. Its part of
        // the key is encoded once for all of them.
        let mut runs: Vec<(Vec<u8>, Option<Arc<TargetSeries>>)> = Vec::new();
        let mut last_run: Option<(&SeriesWrite, usize)> = None;
        for (i, sw) in batch.iter().enumerate() {
            let sw: &SeriesWrite = sw.borrow();
            let refused = |message: String, code: ErrorCode| {
                Prepared::Refused(SeriesError {
                    index: i,
                    series: format!("{}::{}", sw.target_schema, sw.metric),
                    message,
                    rejected_points: (0..sw.points.len() as u32).collect(),
                    code,
                })
            };
            // Borrowed, not cloned: two writes on two cores would otherwise
            // count references on the same schema for every series.
            let schemas = (
                targets.get(&sw.target_schema, |n| inner.schemas.target(tenant, n)),
                metrics.get(&sw.metric, |n| inner.schemas.metric(tenant, n)),
            );
            let (Some(ts), Some(ms)) = schemas else {
                let what = if schemas.0.is_none() {
                    format!("target schema {:?}", sw.target_schema)
                } else {
                    format!("metric schema {:?}", sw.metric)
                };
                let message = format!("unknown {what}; apply it first (danausctl schema apply)");
                prepared.push(refused(message, ErrorCode::NotFound));
                continue;
            };
            if ms.collection.is_some() && aggregate {
                prepared.push(Prepared::Deltas);
                continue;
            }
            let run = match last_run {
                Some((first, run)) if first.same_target(sw) => run,
                _ => match validate::encoded_target(tenant, ts, &sw.target_fields) {
                    Ok(t) => {
                        let series = inner.index.target(&t);
                        runs.push((t, series));
                        last_run = Some((sw, runs.len() - 1));
                        runs.len() - 1
                    }
                    Err(e) => {
                        prepared.push(refused(e.to_string(), ErrorCode::InvalidArgument));
                        continue;
                    }
                },
            };
            let start = keys.len();
            keys.extend_from_slice(&runs[run].0);
            match validate::append_metric_key(&mut keys, ms, &sw.metric_fields) {
                Ok(()) => prepared.push(Prepared::Key { start, end: keys.len(), target_len: runs[run].0.len(), run }),
                Err(e) => {
                    keys.truncate(start);
                    prepared.push(refused(e.to_string(), ErrorCode::InvalidArgument));
                }
            }
        }
        let mut found: Vec<Option<SeriesRef>> = vec![None; batch.len()];
        {
            let tables: Vec<_> = runs.iter().map(|(_, t)| t.as_ref().map(|t| t.read())).collect();
            let items: Vec<_> = prepared
                .iter()
                .map(|p| match *p {
                    Prepared::Key { start, end, target_len, run } => tables[run].as_deref().map(|t| {
                        let suffix = &keys[start + target_len..end];
                        (t, suffix, bytes_map::hash(suffix))
                    }),
                    _ => None,
                })
                .collect();
            bytes_map::get_each(&items, |s| Arc::as_ptr(s).cast(), |i, s| found[i] = Some(s.clone()));
        }
        for ((i, sw), prepared) in batch.iter().enumerate().zip(prepared) {
            // What the series a few ahead will need is fetched while this
            // one is written: their points (from a sender's memory), their
            // states, then (under a brief lock) their open chunks' encoders.
            if let Some(ahead) = batch.get(i + 4) {
                bytes_map::prefetch(ahead.borrow().points.as_ptr());
            }
            if let Some(Some(s)) = found.get(i + 8) {
                let state = Arc::as_ptr(s).cast::<u8>();
                for line in (0..std::mem::size_of::<parking_lot::Mutex<SeriesState>>()).step_by(64) {
                    bytes_map::prefetch(state.wrapping_add(line));
                }
            }
            if let Some(Some(s)) = found.get(i + 3) {
                s.lock().prefetch_open();
            }
            let sw: &SeriesWrite = sw.borrow();
            let (start, end, target_len) = match prepared {
                Prepared::Key { start, end, target_len, .. } => (start, end, target_len),
                Prepared::Refused(e) => {
                    result.errors.push(e);
                    continue;
                }
                Prepared::Deltas => {
                    let (Some(ts), Some(ms)) = (targets.peek(&sw.target_schema), metrics.peek(&sw.metric)) else {
                        return Err(Error::Internal("a batch's schema was found, then not".into()));
                    };
                    let Some(c) = ms.collection.as_ref() else {
                        return Err(Error::Internal("an aggregated metric lost its aggregation".into()));
                    };
                    self.admit_deltas(tenant, i, sw, (ts, ms, c), &mut result, &mut rec, &mut defined)?;
                    continue;
                }
            };
            let Some(ms) = metrics.peek(&sw.metric) else {
                return Err(Error::Internal("a batch's metric schema was found, then not".into()));
            };
            let encoded = &keys[start..end];
            // The key is only decoded for messages, on the error path.
            let key = LazyKey(encoded);
            let mut err: Option<SeriesError> = None;
            let mut reject = |j: usize, msg: String, code: ErrorCode| {
                let e = err.get_or_insert_with(|| SeriesError {
                    index: i,
                    series: key.to_string(),
                    message: msg,
                    rejected_points: Vec::new(),
                    code,
                });
                e.rejected_points.push(j as u32);
            };
            accepted.clear();
            for (j, p) in sw.points.iter().enumerate() {
                match validate::point(ms, &key, j, p) {
                    Ok(()) => accepted.push(j),
                    Err(e) => reject(j, e.to_string(), ErrorCode::InvalidArgument),
                }
            }
            if !accepted.is_empty() {
                let series = match found[i].take() {
                    Some(s) => s,
                    None => self.series_for(encoded, Some(target_len), ms, i, &mut result)?,
                };
                // Checks and applies the accepted points under the series'
                // lock, and adds the stored ones to the log record.
                let mut apply_locked = |s: &mut SeriesState,
                                        in_store: &HashMap<i64, (danaus_model::Value, Option<i64>)>,
                                        accepted: &mut Vec<usize>| {
                    if s.value_type != ms.value_type || s.kind != ms.kind {
                        // Cannot happen while schema updates keep type and kind.
                        for &j in accepted.iter() {
                            reject(
                                j,
                                "series was created with another value type or kind".into(),
                                ErrorCode::InvalidArgument,
                            );
                        }
                        accepted.clear();
                    }
                    stored.clear();
                    for &j in accepted.iter() {
                        let p = &sw.points[j];
                        match s.check(p, &limits, in_store) {
                            Ok(Accept::Stored) => {
                                s.apply(
                                    p,
                                    &limits,
                                    &mut || inner.next_chunk_seq.fetch_add(1, Ordering::Relaxed),
                                    &inner.chunks,
                                );
                                stored.push(j);
                            }
                            Ok(Accept::Duplicate) => {
                                inner.stats.points_duplicate.fetch_add(1, Ordering::Relaxed);
                                stored.push(j);
                            }
                            Err(msg) => {
                                let code = if msg.contains("out-of-order window") {
                                    ErrorCode::OutOfWindow
                                } else {
                                    ErrorCode::Conflict
                                };
                                reject(j, format!("point {j}: {msg}"), code);
                            }
                        }
                    }
                    if !stored.is_empty() {
                        if !s.def_durable {
                            rec.series(s.id, &s.encoded_key, &s.value_type, s.kind);
                            defined.push(series.clone());
                        }
                        rec.begin_points(s.id, stored.len());
                        for &j in &stored {
                            rec.point(&sw.points[j]);
                        }
                        result.accepted_points += stored.len() as u64;
                    }
                };
                // Points the series may hold only in the long-term store (older
                // than memory, e.g. after a restart) are checked there, so a
                // conflicting rewrite is refused there too. The common case
                // needs no lookup and takes the series' lock once.
                let (id, lookups) = {
                    let mut s = series.lock();
                    let lookups: Vec<i64> =
                        accepted.iter().map(|&j| sw.points[j].end_time).filter(|&t| s.may_be_stored_only(t)).collect();
                    if lookups.is_empty() {
                        apply_locked(&mut s, &HashMap::new(), &mut accepted);
                    }
                    (s.id, lookups)
                };
                if !lookups.is_empty() {
                    let in_store = self.stored_points_at(id, &lookups).await?;
                    apply_locked(&mut series.lock(), &in_store, &mut accepted);
                }
            }
            if let Some(mut e) = err {
                let n = summarize(&mut e, sw.points.len());
                match e.code {
                    ErrorCode::OutOfWindow => &inner.stats.points_out_of_window,
                    ErrorCode::Conflict => &inner.stats.points_conflict,
                    _ => &inner.stats.points_invalid,
                }
                .fetch_add(n as u64, Ordering::Relaxed);
                result.errors.push(e);
            }
        }
        for e in &result.errors {
            if e.code == ErrorCode::NotFound {
                inner.stats.points_invalid.fetch_add(e.rejected_points.len() as u64, Ordering::Relaxed);
            }
        }
        if !rec.is_empty() {
            inner.log.append(rec.finish()).await?;
            for s in defined {
                s.lock().def_durable = true;
            }
        }
        inner.stats.points_accepted.fetch_add(result.accepted_points, Ordering::Relaxed);
        inner.stats.write_requests.fetch_add(1, Ordering::Relaxed);
        Ok(result)
    }

    /// The series with key `encoded` (whose first `target_len` bytes are
    /// its target string, when known), created (and counted in `result`)
    /// if new; `i` is its position in the batch. A write calls it for the
    /// series its batch lookup did not find: new ones, or one written twice
    /// in the batch.
    fn series_for(
        &self,
        encoded: &[u8],
        target_len: Option<usize>,
        ms: &MetricSchema,
        i: usize,
        result: &mut WriteResult,
    ) -> Result<SeriesRef> {
        let inner = &self.inner;
        // The key was just encoded from valid fields; decoding it gives the
        // names the index lists the series under.
        let decoded = SeriesKey::decode(encoded).map_err(|e| Error::Internal(e.to_string()))?;
        let target_len = target_len.unwrap_or_else(|| decoded.target_string().0.len());
        debug_assert_eq!(target_len, decoded.target_string().0.len(), "a key's target is its prefix");
        let (series, created) = inner.index.get_or_insert(encoded, target_len, || {
            let id = inner.next_series_id.fetch_add(1, Ordering::Relaxed);
            let s = SeriesState::with_target_len(id, target_len, encoded.to_vec(), ms.value_type.clone(), ms.kind);
            (s, (decoded.tenant, decoded.target_schema, decoded.metric))
        });
        if created {
            inner.stats.series_created.fetch_add(1, Ordering::Relaxed);
            result.created.push(i);
        }
        Ok(series)
    }

    /// Folds the deltas of series `sw` (position `i`) of a collection-
    /// aggregated metric into its output series' open buckets, adding them
    /// to the log record; refusals go into `result`.
    #[allow(clippy::too_many_arguments)]
    fn admit_deltas(
        &self,
        tenant: &str,
        i: usize,
        sw: &SeriesWrite,
        (ts, ms, c): (&TargetSchema, &MetricSchema, &CollectionAggregation),
        result: &mut WriteResult,
        rec: &mut RecordBuilder,
        defined: &mut Vec<SeriesRef>,
    ) -> Result<()> {
        let inner = &self.inner;
        let keys =
            validate::encoded_series_key(tenant, ts, &sw.target_fields, ms, &sw.metric_fields).and_then(|input| {
                let (t, m) = c.output_fields(ts, ms, &sw.target_fields, &sw.metric_fields)?;
                Ok((input, validate::encoded_series_key(tenant, ts, &t, ms, &m)?))
            });
        let (input, output) = match keys {
            Ok(k) => k,
            Err(e) => {
                inner.stats.points_invalid.fetch_add(sw.points.len() as u64, Ordering::Relaxed);
                result.errors.push(SeriesError {
                    index: i,
                    series: format!("{}::{}", sw.target_schema, sw.metric),
                    message: e.to_string(),
                    rejected_points: (0..sw.points.len() as u32).collect(),
                    code: ErrorCode::InvalidArgument,
                });
                return Ok(());
            }
        };
        let key = LazyKey(&input);
        let mut err: Option<SeriesError> = None;
        let mut reject = |j: usize, msg: String, code: ErrorCode| {
            match code {
                ErrorCode::OutOfWindow => &inner.stats.points_late,
                ErrorCode::Conflict => &inner.stats.points_conflict,
                _ => &inner.stats.points_invalid,
            }
            .fetch_add(1, Ordering::Relaxed);
            err.get_or_insert_with(|| SeriesError {
                index: i,
                series: key.to_string(),
                message: msg,
                rejected_points: Vec::new(),
                code,
            })
            .rejected_points
            .push(j as u32);
        };
        let mut valid = Vec::with_capacity(sw.points.len());
        for (j, p) in sw.points.iter().enumerate() {
            match validate::point(ms, &key, j, p) {
                Ok(()) => valid.push(j),
                Err(e) => reject(j, e.to_string(), ErrorCode::InvalidArgument),
            }
        }
        if !valid.is_empty() {
            let series = self.series_for(&output, None, ms, i, result)?;
            let (id, stored_through, needs_def, fits) = {
                let s = series.lock();
                (s.id, s.max_time, !s.def_durable, s.value_type == ms.value_type && s.kind == ms.kind)
            };
            let now = inner.clock.now();
            let mut admitted = 0u64;
            for &j in &valid {
                let p = &sw.points[j];
                if !fits {
                    reject(
                        j,
                        "output series was created with another value type or kind".into(),
                        ErrorCode::InvalidArgument,
                    );
                    continue;
                }
                let end = c.bucket_end(p.end_time);
                let bucket = (end.saturating_sub(c.period), end);
                let closes_at = c.closes_at(end);
                if closes_at <= now {
                    reject(
                        j,
                        format!(
                            "point {j}: late delta: its collection-aggregation bucket ending at {} stopped admitting at {} (admission window {})",
                            danaus_model::time::format_time(end),
                            danaus_model::time::format_time(closes_at),
                            danaus_model::time::format_duration_ns(c.admission_window),
                        ),
                        ErrorCode::OutOfWindow,
                    );
                    continue;
                }
                match inner.agg.admit(id, stored_through, bucket, closes_at, &input, p) {
                    Ok(a) => {
                        if a == Admitted::Duplicate {
                            inner.stats.points_duplicate.fetch_add(1, Ordering::Relaxed);
                        } else {
                            inner.stats.points_aggregated.fetch_add(1, Ordering::Relaxed);
                        }
                        if admitted == 0 && needs_def {
                            rec.series(id, &output, &ms.value_type, ms.kind);
                            defined.push(series.clone());
                        }
                        rec.agg_input(id, bucket, closes_at, &input, p);
                        admitted += 1;
                    }
                    Err(Refusal::Late(m)) => reject(j, format!("point {j}: {m}"), ErrorCode::OutOfWindow),
                    Err(Refusal::Conflict(m)) => reject(j, format!("point {j}: {m}"), ErrorCode::Conflict),
                    Err(Refusal::Invalid(m)) => reject(j, format!("point {j}: {m}"), ErrorCode::InvalidArgument),
                }
            }
            result.accepted_points += admitted;
        }
        if let Some(mut e) = err {
            summarize(&mut e, sw.points.len());
            result.errors.push(e);
        }
        Ok(())
    }

    /// Closes the collection-aggregation buckets whose admission window has
    /// passed: each becomes one point of its output series, durable on
    /// return. Runs on its own every half second; returns how many closed.
    pub async fn close_buckets(&self) -> Result<usize> {
        close_buckets(&self.inner).await
    }

    /// Open collection-aggregation buckets, and the deltas they hold.
    pub fn open_buckets(&self) -> (usize, usize) {
        self.inner.agg.open_counts()
    }

    /// Keeps the buckets of output series whose target string `hold`
    /// accepts open past their admission window (asked each time buckets
    /// are due): a replica still copying a range in may lack deltas the
    /// copy brings, and must not store a partial sum.
    pub fn set_bucket_hold(&self, hold: BucketHold) {
        *self.inner.hold.write() = Some(hold);
    }

    /// The deltas of the open buckets of `selected` (output series of
    /// collection-aggregated metrics), by position in `selected`: what a
    /// history copy carries besides the stored points.
    pub fn open_deltas(&self, selected: &[SelectedSeries]) -> Vec<(usize, Vec<OpenDelta>)> {
        let ids: Vec<u64> = selected.iter().map(|s| s.series.lock().id).collect();
        let by_id: HashMap<u64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        self.inner
            .agg
            .buckets_of(&ids)
            .into_iter()
            .filter_map(|(id, buckets)| {
                let deltas = buckets
                    .into_iter()
                    .flat_map(|(end, b)| {
                        b.inputs.into_iter().map(move |((input_key, end_time), (start_time, value))| OpenDelta {
                            bucket: (b.start, end),
                            closes_at: b.closes_at,
                            input_key,
                            point: Point { start_time, end_time, value },
                        })
                    })
                    .collect();
                Some((*by_id.get(&id)?, deltas))
            })
            .collect()
    }

    /// Admits deltas another replica held open for output series `output`
    /// (its fields; its points are ignored): the open half of a history
    /// copy. Deltas already here are duplicates; deltas of buckets this
    /// replica has stored are dropped (the stored point came from the
    /// copy). Durable on return; returns how many were new.
    pub async fn import_open(&self, tenant: &str, output: &SeriesWrite, deltas: &[OpenDelta]) -> Result<u64> {
        let inner = &self.inner;
        let (Some(ts), Some(ms)) =
            (inner.schemas.target(tenant, &output.target_schema), inner.schemas.metric(tenant, &output.metric))
        else {
            return Err(Error::NotFound(format!(
                "open buckets of {}::{} arrived before their schemas",
                output.target_schema, output.metric
            )));
        };
        let key = validate::encoded_series_key(tenant, &ts, &output.target_fields, &ms, &output.metric_fields)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let mut result = WriteResult::default();
        let series = self.series_for(&key, None, &ms, 0, &mut result)?;
        let (id, stored_through, needs_def) = {
            let s = series.lock();
            (s.id, s.max_time, !s.def_durable)
        };
        let mut rec = RecordBuilder::new();
        let mut added = 0;
        for d in deltas {
            if let Ok(Admitted::Added) =
                inner.agg.admit(id, stored_through, d.bucket, d.closes_at, &d.input_key, &d.point)
            {
                if added == 0 && needs_def {
                    rec.series(id, &key, &ms.value_type, ms.kind);
                }
                rec.agg_input(id, d.bucket, d.closes_at, &d.input_key, &d.point);
                added += 1;
            }
        }
        if !rec.is_empty() {
            inner.log.append(rec.finish()).await?;
            if needs_def {
                series.lock().def_durable = true;
            }
        }
        Ok(added)
    }

    /// Chunks of series `id` in the long-term store that may hold points in
    /// `[start, end]`.
    pub(crate) async fn stored_chunks(&self, id: u64, start: i64, end: i64) -> Result<Vec<Chunk>> {
        let kv = self.inner.kv.clone();
        let raw: Vec<Vec<u8>> = blocking(move || -> Result<Vec<Vec<u8>>> {
            let from = keys::chunk_key(id, start.saturating_sub(MAX_CHUNK_SPAN_NS), 0);
            let to = keys::chunk_key(id, end, u64::MAX);
            let mut out = Vec::new();
            kv.scan(Cf::Chunks, &from, &to, &mut |_, v| {
                out.push(v.to_vec());
                true
            })?;
            Ok(out)
        })
        .await??;
        Ok(raw.into_iter().map(Chunk::from_bytes).collect())
    }

    /// Stored points of series `id` at exactly the given times.
    async fn stored_points_at(
        &self,
        id: u64,
        times: &[i64],
    ) -> Result<HashMap<i64, (danaus_model::Value, Option<i64>)>> {
        let (Some(&lo), Some(&hi)) = (times.iter().min(), times.iter().max()) else { return Ok(HashMap::new()) };
        let want: std::collections::HashSet<i64> = times.iter().copied().collect();
        let mut out = HashMap::new();
        for c in self.stored_chunks(id, lo, hi).await? {
            let h = c.header().map_err(|e| Error::Internal(format!("series {id}: {e}")))?;
            if h.max_time < lo || h.min_time > hi {
                continue;
            }
            for p in c.iter().map_err(|e| Error::Internal(format!("series {id}: {e}")))? {
                let p = p.map_err(|e| Error::Internal(format!("series {id}: {e}")))?;
                if want.contains(&p.end_time) {
                    out.entry(p.end_time).or_insert((p.value, p.start_time));
                }
            }
        }
        Ok(out)
    }

    /// Memory held by series data.
    pub fn memory_usage(&self) -> MemoryUsage {
        let mut m = MemoryUsage::default();
        for s in self.inner.index.all() {
            let (b, d, p) = s.lock().memory_usage();
            m.series += 1;
            m.chunk_bytes += b;
            m.data_bytes += d;
            m.points += p;
        }
        m
    }

    /// Bytes the long-term store occupies.
    pub async fn disk_bytes(&self) -> Result<u64> {
        let kv = self.inner.kv.clone();
        Ok(blocking(move || kv.disk_bytes()).await??)
    }

    /// Deletes every series whose target string lies in `[start, end)`
    /// (`end` `None`: no bound) from memory and the long-term store: what a
    /// leaf does with a range it no longer holds. Returns how many series
    /// went. Runs between checkpoints, so no checkpoint writes a dropped
    /// series back. Points of dropped series still in the recovery log
    /// come back on a restart until a checkpoint covers them; the caller
    /// drops again then (dropping is idempotent).
    pub async fn drop_range(&self, start: &[u8], end: Option<&[u8]>) -> Result<u64> {
        let inner = &self.inner;
        let _guard = inner.checkpoint_lock.lock().await;
        let doomed: Vec<SeriesRef> = inner
            .index
            .all()
            .into_iter()
            .filter(|s| {
                let ts = s.lock().target().to_vec();
                ts.as_slice() >= start && end.is_none_or(|e| ts.as_slice() < e)
            })
            .collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        inner.index.remove(&doomed);
        inner.agg.remove(&doomed.iter().map(|s| s.lock().id).collect::<Vec<_>>());
        let mut b = WriteBatch::default();
        for s in &doomed {
            let id = s.lock().id;
            b.delete(Cf::Series, keys::series_key(id).to_vec());
            b.delete_range(
                Cf::Chunks,
                keys::chunk_key(id, i64::MIN, 0),
                keys::chunk_key(id.saturating_add(1), i64::MIN, 0),
            );
        }
        let kv = inner.kv.clone();
        blocking(move || kv.write(b, true)).await??;
        let n = doomed.len() as u64;
        inner.stats.series_dropped.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }

    /// Writes memory into the long-term store and deletes the recovery-log
    /// segments it covers; ages chunks out of memory; applies retention.
    pub async fn checkpoint(&self) -> Result<CheckpointReport> {
        checkpoint(&self.inner).await
    }

    /// Stops accepting writes, checkpoints everything and flushes the
    /// long-term store. After this, the log holds nothing that is not in
    /// the store.
    pub async fn shutdown(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::Release);
        checkpoint(&self.inner).await?;
        let kv = self.inner.kv.clone();
        blocking(move || kv.flush()).await??;
        Ok(())
    }
}

/// How often retention runs, at most.
const RETENTION_EVERY_NS: i64 = 600 * 1_000_000_000;

struct Mark {
    series: SeriesRef,
    chunks: Vec<(u64, u64, Vec<u8>)>,
    record_max: Option<Option<i64>>,
}

async fn checkpoint(inner: &Arc<Inner>) -> Result<CheckpointReport> {
    let _guard = inner.checkpoint_lock.lock().await;
    let started = Instant::now();
    let log_bytes = inner.log.stats().bytes.load(Ordering::Relaxed);
    let new_segment = inner.log.rotate().await?;
    let now = inner.clock.now();
    let mut report = CheckpointReport::default();
    let mut batches = vec![WriteBatch::default()];
    let mut batch_bytes = 0usize;
    let mut marks = Vec::new();
    for series in inner.index.all() {
        let mut s = series.lock();
        s.seal_idle(now.saturating_sub(inner.limits.max_span), &inner.chunks);
        let mut mark = Mark { series: series.clone(), chunks: Vec::new(), record_max: None };
        let b = batches.last_mut().expect("one batch");
        if s.record_dirty {
            b.put(Cf::Series, keys::series_key(s.id).to_vec(), series_record(&s));
            mark.record_max = Some(s.max_time);
        }
        let id = s.id;
        let mut put = |b: &mut WriteBatch, min: i64, seq: u64, version: u64, old: &Option<Vec<u8>>, bytes: Vec<u8>| {
            let key = keys::chunk_key(id, min, seq);
            if let Some(old) = old.as_ref().filter(|o| **o != key) {
                b.delete(Cf::Chunks, old.clone());
            }
            report.chunks_written += 1;
            report.bytes_written += bytes.len() as u64;
            batch_bytes += bytes.len() + 32;
            b.put(Cf::Chunks, key.clone(), bytes);
            mark.chunks.push((seq, version, key));
        };
        for c in s.sealed.iter().filter(|c| !c.persisted) {
            put(b, c.min_time, c.seq, c.version, &c.persisted_key, c.chunk().into_bytes());
        }
        for o in [&s.head, &s.ooo].into_iter().flatten() {
            if o.version != o.persisted_version {
                if let Some(min) = o.builder.min_time() {
                    put(b, min, o.seq, o.version, &o.persisted_key, o.builder.finish().into_bytes());
                }
            }
        }
        drop(s);
        if !mark.chunks.is_empty() || mark.record_max.is_some() {
            marks.push(mark);
        }
        if batch_bytes > 8 << 20 {
            batches.push(WriteBatch::default());
            batch_bytes = 0;
        }
    }
    if let Some(b) = batches.last_mut() {
        // Open aggregation buckets replace the previous checkpoint's: their
        // deltas may be in the log segments this checkpoint removes.
        b.delete_range(Cf::Meta, keys::AGG_OPEN_PREFIX.to_vec(), keys::prefix_end(keys::AGG_OPEN_PREFIX));
        for (id, buckets) in inner.agg.snapshot() {
            let mut rec = RecordBuilder::new();
            for (end, bucket) in buckets {
                for ((input, end_time), (start_time, value)) in bucket.inputs {
                    let p = Point { start_time, end_time, value };
                    rec.agg_input(id, (bucket.start, end), bucket.closes_at, &input, &p);
                }
            }
            b.put(Cf::Meta, keys::agg_open_key(id), rec.finish());
        }
        b.put(
            Cf::Meta,
            keys::NEXT_SERIES_ID.to_vec(),
            inner.next_series_id.load(Ordering::Relaxed).to_be_bytes().to_vec(),
        );
        b.put(
            Cf::Meta,
            keys::NEXT_CHUNK_SEQ.to_vec(),
            inner.next_chunk_seq.load(Ordering::Relaxed).to_be_bytes().to_vec(),
        );
    }
    let kv = inner.kv.clone();
    let written = blocking(move || -> Result<()> {
        let n = batches.len();
        for (i, b) in batches.into_iter().enumerate() {
            // The last synced write makes every earlier one durable too.
            kv.write(b, i + 1 == n)?;
        }
        Ok(())
    })
    .await
    .and_then(|r| r);
    if let Err(e) = written {
        inner.stats.checkpoint_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, "checkpoint failed; the recovery log is kept");
        return Err(e);
    }
    let memory_floor = now.saturating_sub(nanos(inner.opts.memory_window));
    // Range tombstones are cheap but not free: apply retention at most every
    // ten minutes of wall time, not at every checkpoint.
    let last = inner.last_retention.load(Ordering::Relaxed);
    let retention_due = last == i64::MIN || now.saturating_sub(last) >= RETENTION_EVERY_NS;
    let retention_floor = inner.opts.retention.filter(|_| retention_due).map(|r| now.saturating_sub(nanos(r)));
    if retention_floor.is_some() {
        inner.last_retention.store(now, Ordering::Relaxed);
    }
    let mut expired = WriteBatch::default();
    for m in marks {
        let mut guard = m.series.lock();
        let s = &mut *guard;
        s.def_durable = true;
        if let Some(max) = m.record_max {
            if s.max_time == max {
                s.record_dirty = false;
            }
        }
        for (seq, version, key) in m.chunks {
            if let Some(c) = s.sealed.iter_mut().find(|c| c.seq == seq) {
                c.persisted_key = Some(key);
                c.persisted = c.version == version;
            } else if let Some(o) = [s.head.as_mut(), s.ooo.as_mut()].into_iter().flatten().find(|o| o.seq == seq) {
                o.persisted_key = Some(key);
                o.persisted_version = version;
            }
        }
    }
    for series in inner.index.all() {
        let mut s = series.lock();
        report.chunks_evicted += s.evict(|c| c.persisted && c.max_time < memory_floor) as u64;
        if let Some(floor) = retention_floor {
            s.evict(|c| c.max_time < floor);
            // Chunks span at most MAX_CHUNK_SPAN_NS, so every chunk that
            // starts this early has ended before the floor.
            let upto = floor.saturating_sub(MAX_CHUNK_SPAN_NS);
            expired.delete_range(Cf::Chunks, keys::chunk_key(s.id, i64::MIN, 0), keys::chunk_key(s.id, upto, 0));
        }
    }
    if !expired.is_empty() {
        let kv = inner.kv.clone();
        blocking(move || kv.write(expired, false)).await??;
    }
    inner.chunks.sealed.sweep();
    inner.chunks.open.sweep();
    let log = inner.log.clone();
    report.segments_removed = blocking(move || log.remove_before(new_segment)).await??;
    inner.log_bytes_at_checkpoint.store(log_bytes, Ordering::Relaxed);
    inner.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
    inner.stats.chunks_flushed.fetch_add(report.chunks_written, Ordering::Relaxed);
    inner.stats.bytes_flushed.fetch_add(report.bytes_written, Ordering::Relaxed);
    inner.stats.last_checkpoint_micros.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    tracing::debug!(?report, elapsed_ms = started.elapsed().as_millis() as u64, "checkpoint");
    Ok(report)
}

async fn close_buckets(inner: &Arc<Inner>) -> Result<usize> {
    // Under the checkpoint lock: a taken bucket is in neither the saved
    // buckets nor the stored chunks until its point is applied.
    let _guard = inner.checkpoint_lock.lock().await;
    let held = inner.hold.read().clone();
    let hold = |id: u64| held.as_ref().is_some_and(|f| inner.index.by_id(id).is_some_and(|s| f(s.lock().target())));
    let due = inner.agg.take_due(inner.clock.now(), hold);
    if due.is_empty() {
        return Ok(0);
    }
    let unlimited = Limits { ooo_window: i64::MAX, ..inner.limits };
    let mut rec = RecordBuilder::new();
    let mut defined = Vec::new();
    let mut closed = 0;
    for c in &due {
        // Gone: its range moved away.
        let Some(series) = inner.index.by_id(c.id) else { continue };
        let mut s = series.lock();
        match s.check(&c.point, &unlimited, &HashMap::new()) {
            Ok(Accept::Stored) => s.apply(
                &c.point,
                &unlimited,
                &mut || inner.next_chunk_seq.fetch_add(1, Ordering::Relaxed),
                &inner.chunks,
            ),
            Ok(Accept::Duplicate) => {}
            Err(msg) => {
                // Only a history copy stores points of an output series
                // besides its buckets: the copied point is the complete one.
                tracing::debug!(series = %LazyKey(&s.encoded_key), inputs = c.inputs, "aggregation bucket superseded by copied history: {msg}");
                continue;
            }
        }
        if !s.def_durable {
            rec.series(s.id, &s.encoded_key, &s.value_type, s.kind);
            defined.push(series.clone());
        }
        rec.begin_points(s.id, 1);
        rec.point(&c.point);
        closed += 1;
    }
    if !rec.is_empty() {
        inner.log.append(rec.finish()).await?;
        for s in defined {
            s.lock().def_durable = true;
        }
    }
    inner.stats.aggregation_buckets_closed.fetch_add(closed as u64, Ordering::Relaxed);
    Ok(closed)
}

/// Checkpoints on a timer, or early when the log has grown enough. Ends
/// when the leaf is dropped or closed.
async fn background(inner: std::sync::Weak<Inner>) {
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = close_buckets(&inner).await {
            tracing::warn!(error = %e, "closing aggregation buckets failed; will retry");
        }
        let grown = inner.log.stats().bytes.load(Ordering::Relaxed)
            - inner
                .log_bytes_at_checkpoint
                .load(Ordering::Relaxed)
                .min(inner.log.stats().bytes.load(Ordering::Relaxed));
        if last.elapsed() >= inner.opts.checkpoint_interval || grown >= inner.opts.checkpoint_log_bytes {
            last = Instant::now();
            if let Err(e) = checkpoint(&inner).await {
                tracing::warn!(error = %e, "background checkpoint failed; will retry");
            }
        }
    }
}
