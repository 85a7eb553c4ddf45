//! One series in memory: an open head chunk, an open out-of-order chunk,
//! and sealed chunks not yet aged out.
//!
//! Invariants: every chunk spans at most `chunk_max_span` (≤
//! [`MAX_CHUNK_SPAN_NS`]); the head only receives points newer than its
//! last one; a point at a time that already holds a point is accepted only
//! with a bit-identical value (an idempotent retry) and is then not stored
//! twice.

use std::sync::Arc;

use danaus_codec::{Chunk, ChunkBuilder};

use crate::intern::ChunkContext;
use danaus_model::{MetricKind, Point, SeriesKey, Value, ValueType};

use crate::options::MAX_CHUNK_SPAN_NS;

/// Limits a series applies when it accepts points.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub ooo_window: i64,
    pub max_points: usize,
    pub max_span: i64,
}

/// A sealed chunk in memory: its bytes with the time section cut out and
/// held (shared with other series) in `times`.
#[derive(Debug)]
pub(crate) struct MemChunk {
    pub seq: u64,
    pub min_time: i64,
    pub max_time: i64,
    pub count: u32,
    body: Vec<u8>,
    split: usize,
    times: Arc<[u8]>,
    /// The open chunk's version when it was sealed.
    pub version: u64,
    /// Whether the long-term store has this chunk under `persisted_key`.
    pub persisted: bool,
    pub persisted_key: Option<Vec<u8>>,
}

/// An open chunk with its identity and persistence state.
#[derive(Debug)]
pub(crate) struct OpenChunk {
    pub seq: u64,
    pub builder: ChunkBuilder,
    /// Bumped on every push; compared with `persisted_version`.
    pub version: u64,
    pub persisted_version: u64,
    /// Key the last persisted snapshot lives under (its min time can move
    /// for the out-of-order chunk).
    pub persisted_key: Option<Vec<u8>>,
}

impl MemChunk {
    /// The chunk, reassembled.
    pub(crate) fn chunk(&self) -> Chunk {
        let mut b = Vec::with_capacity(self.body.len() + self.times.len());
        b.extend_from_slice(&self.body[..self.split]);
        b.extend_from_slice(&self.times);
        b.extend_from_slice(&self.body[self.split..]);
        Chunk::from_bytes(b)
    }

    /// Bytes held, counting a shared time section in equal parts.
    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.body.capacity() + self.data_bytes() - self.body.len()
    }

    /// Encoded bytes, counting a shared time section in equal parts.
    pub(crate) fn data_bytes(&self) -> usize {
        self.body.len() + self.times.len() / Arc::strong_count(&self.times).max(1)
    }
}

impl OpenChunk {
    fn new(seq: u64, builder: ChunkBuilder) -> Self {
        Self { seq, builder, version: 0, persisted_version: 0, persisted_key: None }
    }
}

/// What happened to a point offered to a series.
#[derive(Debug, PartialEq)]
pub(crate) enum Accept {
    /// Stored.
    Stored,
    /// Bit-identical to a point already stored: nothing to do.
    Duplicate,
}

/// A series' in-memory state.
#[derive(Debug)]
pub(crate) struct SeriesState {
    pub id: u64,
    /// The encoded key, shared with the index map (one copy per series).
    /// The decoded key is not kept: it would double a series' bookkeeping
    /// for what reads can decode when they need it ([`SeriesState::key`]).
    pub encoded_key: std::sync::Arc<[u8]>,
    /// Length of the target string, the prefix of `encoded_key`.
    pub target_len: u32,
    pub value_type: ValueType,
    pub kind: MetricKind,
    pub head: Option<OpenChunk>,
    pub ooo: Option<OpenChunk>,
    pub sealed: Vec<MemChunk>,
    /// Newest end time ever accepted (also across restarts, via the store).
    pub max_time: Option<i64>,
    /// The head's last point, for duplicate detection without decoding.
    pub last: Option<(i64, Value, Option<i64>)>,
    /// Whether a durable record (log or store) defines this series.
    pub def_durable: bool,
    /// Whether the series record in the store is older than `max_time`.
    pub record_dirty: bool,
    /// Every point at or after this time is in memory, so reads from here
    /// on need not touch the long-term store. `i64::MIN` for a series whose
    /// points never left memory; after a restart, just past the newest
    /// checkpointed time; raised when chunks are evicted.
    pub complete_from: i64,
}

impl SeriesState {
    /// A series keyed by `encoded_key`, whose decoded form is `key`.
    pub(crate) fn new(id: u64, key: &SeriesKey, encoded_key: Vec<u8>, value_type: ValueType, kind: MetricKind) -> Self {
        let target_len = key.target_string().0.len();
        debug_assert!(encoded_key.starts_with(&key.target_string().0));
        Self::with_target_len(id, target_len, encoded_key, value_type, kind)
    }

    /// A series keyed by `encoded_key`, whose first `target_len` bytes are
    /// its target string.
    pub(crate) fn with_target_len(
        id: u64,
        target_len: usize,
        encoded_key: Vec<u8>,
        value_type: ValueType,
        kind: MetricKind,
    ) -> Self {
        let target_len = target_len as u32;
        let encoded_key: std::sync::Arc<[u8]> = encoded_key.into();
        Self {
            id,
            encoded_key,
            target_len,
            value_type,
            kind,
            head: None,
            ooo: None,
            sealed: Vec::new(),
            max_time: None,
            last: None,
            def_durable: false,
            record_dirty: true,
            complete_from: i64::MIN,
        }
    }

    /// The series' key, decoded. The encoded key was decoded when the
    /// series was created, so this cannot fail short of memory corruption;
    /// if it did, the key is empty but for the error as its metric.
    pub(crate) fn key(&self) -> SeriesKey {
        SeriesKey::decode(&self.encoded_key).unwrap_or_else(|e| SeriesKey {
            tenant: String::new(),
            target_schema: String::new(),
            target_fields: Vec::new(),
            metric: format!("<undecodable series key: {e}>"),
            metric_fields: Vec::new(),
        })
    }

    /// The series' target string (the prefix of its key that decides its
    /// range).
    pub(crate) fn target(&self) -> &[u8] {
        &self.encoded_key[..self.target_len as usize]
    }

    /// Whether a point at `t` may exist only in the long-term store: at or
    /// before the newest time ever accepted and not in memory.
    pub(crate) fn may_be_stored_only(&self, t: i64) -> bool {
        self.max_time.is_some_and(|m| t <= m)
            && self.last.as_ref().is_none_or(|(last, _, _)| *last != t)
            && self.find_in_memory(t).is_none()
    }

    /// Prefetches the memory of the open in-order chunk that the next
    /// [`SeriesState::apply`] reads besides this state.
    pub(crate) fn prefetch_open(&self) {
        if let Some(o) = &self.head {
            o.builder.prefetch();
        }
    }

    /// Checks whether `p` may be accepted without changing anything;
    /// `stored` holds the long-term store's points at the times that
    /// [`SeriesState::may_be_stored_only`] flagged.
    pub(crate) fn check(
        &self,
        p: &Point,
        limits: &Limits,
        stored: &std::collections::HashMap<i64, (Value, Option<i64>)>,
    ) -> Result<Accept, String> {
        if let Some(max) = self.max_time {
            let floor = max.saturating_sub(limits.ooo_window);
            if p.end_time < floor {
                return Err(format!(
                    "point at {} is older than the out-of-order window: the series' newest point is at {max} and points back to {floor} ({}s) are accepted",
                    p.end_time,
                    limits.ooo_window / 1_000_000_000
                ));
            }
        }
        // Newer than anything ever accepted (memory or store): new.
        if self.max_time.is_none_or(|m| p.end_time > m) {
            return Ok(Accept::Stored);
        }
        if let Some((t, v, s)) = &self.last {
            if p.end_time == *t {
                return same_or_conflict(p, v, *s);
            }
        }
        // Out of order: look for an existing point at that time.
        match self.find_in_memory(p.end_time).or_else(|| stored.get(&p.end_time).cloned()) {
            Some((v, s)) => same_or_conflict(p, &v, s),
            None => Ok(Accept::Stored),
        }
    }

    fn find_in_memory(&self, t: i64) -> Option<(Value, Option<i64>)> {
        self.memory_chunks(t, t).iter().find_map(|c| {
            c.iter().ok()?.filter_map(Result::ok).find(|p| p.end_time == t).map(|p| (p.value, p.start_time))
        })
    }

    /// Stores a point that [`SeriesState::check`] accepted (or that replay
    /// found in the log). `next_seq` allocates chunk sequence numbers.
    pub(crate) fn apply(&mut self, p: &Point, limits: &Limits, next_seq: &mut dyn FnMut() -> u64, ctx: &ChunkContext) {
        let in_order = match &self.last {
            Some((t, v, s)) if p.end_time == *t => {
                // Replay of a point already applied, or a retry.
                if same_or_conflict(p, v, *s).is_ok() {
                    return;
                }
                false
            }
            Some((t, _, _)) => p.end_time > *t,
            None => true,
        };
        if !in_order && matches!(self.find_in_memory(p.end_time), Some((v, s)) if same_or_conflict(p, &v, s).is_ok()) {
            return;
        }
        let has_start = self.kind.has_start_time();
        let slot = if in_order { &mut self.head } else { &mut self.ooo };
        let needs_new = match slot {
            None => true,
            Some(o) => {
                let b = &o.builder;
                let lo = b.min_time().map_or(p.end_time, |m| m.min(p.end_time));
                let hi = b.max_time().map_or(p.end_time, |m| m.max(p.end_time));
                b.len() >= limits.max_points || hi.saturating_sub(lo) > limits.max_span.min(MAX_CHUNK_SPAN_NS)
            }
        };
        if needs_new {
            if let Some(old) = slot.take() {
                self.sealed.push(seal(old, ctx));
            }
        }
        if (if in_order { &self.head } else { &self.ooo }).is_none() {
            let vt = self.value_type.clone();
            // In-order chunks share their times with the target's other
            // series; the out-of-order chunk keeps its own.
            let builder = if in_order {
                let col = ctx.open.column(self.target(), p.end_time);
                ChunkBuilder::with_shared_times(vt, has_start, col)
            } else {
                ChunkBuilder::new(vt, has_start)
            };
            let open = OpenChunk::new(next_seq(), builder);
            *(if in_order { &mut self.head } else { &mut self.ooo }) = Some(open);
        }
        let slot = if in_order { &mut self.head } else { &mut self.ooo };
        let Some(open) = slot.as_mut() else { return };
        // Validation already checked the type; a failure here is a bug that
        // must not lose the point silently.
        if let Err(e) = open.builder.push(p) {
            tracing::error!(series = %self.key(), error = %e, "point rejected by the chunk encoder after validation");
            return;
        }
        open.version += 1;
        if in_order {
            match (&mut self.last, &p.value) {
                // The usual case, updated in place: no value cloned or dropped.
                (Some((t, Value::Double(d), s)), Value::Double(v)) => (*t, *d, *s) = (p.end_time, *v, p.start_time),
                _ => self.last = Some((p.end_time, p.value.clone(), p.start_time)),
            }
        }
        if self.max_time.is_none_or(|m| p.end_time > m) {
            self.max_time = Some(p.end_time);
            self.record_dirty = true;
        }
    }

    /// Seals open chunks whose newest point is older than `before` so they
    /// can age out, even if no further point arrives.
    pub(crate) fn seal_idle(&mut self, before: i64, ctx: &ChunkContext) {
        for slot in [&mut self.head, &mut self.ooo] {
            if slot.as_ref().is_some_and(|o| o.builder.max_time().is_some_and(|m| m < before)) {
                if let Some(o) = slot.take() {
                    self.sealed.push(seal(o, ctx));
                }
            }
        }
    }

    /// Drops sealed chunks `doomed` selects, keeping `complete_from` true.
    /// Returns how many were dropped.
    pub(crate) fn evict(&mut self, doomed: impl Fn(&MemChunk) -> bool) -> usize {
        let before = self.sealed.len();
        let mut newest = None;
        self.sealed.retain(|c| {
            let drop = doomed(c);
            if drop {
                newest = newest.max(Some(c.max_time));
            }
            !drop
        });
        if let Some(t) = newest {
            self.complete_from = self.complete_from.max(t.saturating_add(1));
        }
        before - self.sealed.len()
    }

    /// Decoded chunks in memory that overlap `[start, end]`.
    pub(crate) fn memory_chunks(&self, start: i64, end: i64) -> Vec<Chunk> {
        let mut out = self.sealed_chunks(start, end);
        out.extend(self.open_chunks(start, end).map(ChunkBuilder::finish));
        out
    }

    /// The sealed chunks in memory that overlap `[start, end]`, reassembled.
    pub(crate) fn sealed_chunks(&self, start: i64, end: i64) -> Vec<Chunk> {
        self.sealed.iter().filter(|c| c.max_time >= start && c.min_time <= end).map(MemChunk::chunk).collect()
    }

    /// The open chunks (head, then out-of-order) that overlap `[start, end]`.
    pub(crate) fn open_chunks(&self, start: i64, end: i64) -> impl Iterator<Item = &ChunkBuilder> {
        [&self.head, &self.ooo]
            .into_iter()
            .flatten()
            .map(|o| &o.builder)
            .filter(move |b| b.max_time().is_some_and(|m| m >= start) && b.min_time().is_some_and(|m| m <= end))
    }

    /// Whether a chunk in memory may hold points in `[start, end]` (by
    /// the chunks' time ranges; nothing is copied or decoded).
    pub(crate) fn memory_overlaps(&self, start: i64, end: i64) -> bool {
        self.sealed.iter().any(|c| c.count > 0 && c.max_time >= start && c.min_time <= end)
            || self.open_chunks(start, end).next().is_some()
    }

    /// Bytes of compressed data held and points held.
    /// `(bytes held, encoded data bytes, points)` of the chunks in memory.
    pub(crate) fn memory_usage(&self) -> (usize, usize, usize) {
        let (mut bytes, mut data, mut points) = (0, 0, 0);
        for c in &self.sealed {
            bytes += c.memory_bytes();
            data += c.data_bytes();
            points += c.count as usize;
        }
        for o in [&self.head, &self.ooo].into_iter().flatten() {
            bytes += o.builder.memory_bytes();
            data += o.builder.encoded_bytes();
            points += o.builder.len();
        }
        (bytes, data, points)
    }
}

fn seal(o: OpenChunk, ctx: &ChunkContext) -> MemChunk {
    let chunk = o.builder.finish_packed();
    // A snapshot of the open chunk may be stored already, but in the open
    // coding: store the packed chunk under the same key at the next
    // checkpoint.
    let persisted = false;
    let bytes = chunk.as_bytes();
    let (body, split, times) = match chunk.time_section() {
        Ok(r) => {
            let mut body = Vec::with_capacity(bytes.len() - r.len());
            body.extend_from_slice(&bytes[..r.start]);
            body.extend_from_slice(&bytes[r.end..]);
            (body, r.start, ctx.sealed.intern(&bytes[r]))
        }
        // Not expected for a chunk we just built; keep it whole.
        Err(_) => (bytes.to_vec(), bytes.len(), Arc::from(&[][..])),
    };
    MemChunk {
        seq: o.seq,
        min_time: o.builder.min_time().unwrap_or(0),
        max_time: o.builder.max_time().unwrap_or(0),
        count: o.builder.len() as u32,
        body,
        split,
        times,
        version: o.version,
        persisted,
        persisted_key: o.persisted_key,
    }
}

fn same_or_conflict(p: &Point, v: &Value, start: Option<i64>) -> Result<Accept, String> {
    if p.value.same_as(v) && p.start_time == start {
        Ok(Accept::Duplicate)
    } else {
        Err(format!(
            "a different point already exists at {} (value {v}); points are immutable, so a conflicting rewrite is refused",
            p.end_time
        ))
    }
}
