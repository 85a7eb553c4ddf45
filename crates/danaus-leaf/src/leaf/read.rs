//! The read path: selecting series by matchers and reading their points,
//! as values or as double columns, merged from memory and the long-term
//! store.

use danaus_codec::Chunk;
use danaus_model::{FieldValue, MetricKind, Point, ReadRequest, ScalarType, SeriesKey, Value, ValueType};

use super::Leaf;
use crate::error::{Error, Result};
use crate::index::SeriesRef;
use crate::matcher::compile;

/// A series selected by a read.
#[derive(Debug, Clone)]
pub struct SelectedSeries {
    pub(crate) series: SeriesRef,
    /// Its key.
    pub key: SeriesKey,
    /// Target fields by name, in declaration order.
    pub target_fields: Vec<(String, FieldValue)>,
    /// Metric fields by name, in declaration order.
    pub metric_fields: Vec<(String, FieldValue)>,
    /// Value type.
    pub value_type: ValueType,
    /// Kind.
    pub kind: MetricKind,
}

/// A selected series from its state; `order` is `ts.key_order()`.
fn selected(
    s: &SeriesRef,
    g: &crate::series::SeriesState,
    key: SeriesKey,
    ts: &danaus_model::TargetSchema,
    ms: &danaus_model::MetricSchema,
    order: &[usize],
) -> SelectedSeries {
    // Key order → declaration order: field `i` sits at its position in `order`.
    let target_fields: Vec<(String, FieldValue)> = ts
        .fields
        .iter()
        .enumerate()
        .filter_map(|(i, def)| {
            let pos = order.iter().position(|&o| o == i)?;
            Some((def.name.clone(), key.target_fields.get(pos)?.clone()))
        })
        .collect();
    // A key ends before the added fields it holds zeros for.
    let metric_fields = ms
        .fields
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.clone(), key.metric_fields.get(i).unwrap_or(d.field_type.zero()).clone()))
        .collect();
    SelectedSeries {
        series: s.clone(),
        key,
        target_fields,
        metric_fields,
        value_type: g.value_type.clone(),
        kind: g.kind,
    }
}

impl Leaf {
    /// Selects the series a read covers, up to the per-read series limit.
    pub fn select(&self, tenant: &str, req: &ReadRequest) -> Result<Vec<SelectedSeries>> {
        self.select_at_most(tenant, req, self.inner.opts.max_series_per_read)
    }

    /// Selects the series a read covers; more than `limit` is an error.
    /// Queries pass their own limit, which may exceed a raw read's.
    pub fn select_at_most(&self, tenant: &str, req: &ReadRequest, limit: usize) -> Result<Vec<SelectedSeries>> {
        let inner = &self.inner;
        let ts = inner.schemas.target(tenant, &req.target_schema).ok_or_else(|| {
            Error::NotFound(format!("unknown target schema {:?} (tenant {tenant:?})", req.target_schema))
        })?;
        let ms = inner
            .schemas
            .metric(tenant, &req.metric)
            .ok_or_else(|| Error::NotFound(format!("unknown metric schema {:?} (tenant {tenant:?})", req.metric)))?;
        if req.start > req.end {
            return Err(Error::InvalidArgument(format!("start time {} is after end time {}", req.start, req.end)));
        }
        let matchers = compile(&req.matchers, &ts, &ms)?;
        let order = ts.key_order();
        let mut out = Vec::new();
        for s in inner.index.for_metric(tenant, &req.target_schema, &req.metric) {
            let g = s.lock();
            let key = g.key();
            if !matchers.iter().all(|m| m.matches(&key)) {
                continue;
            }
            if out.len() >= limit {
                return Err(Error::ResourceExhausted(format!(
                    "read matches more than {limit} series (the per-read series limit); add matchers to narrow it"
                )));
            }
            out.push((g.encoded_key.clone(), selected(&s, &g, key, &ts, &ms, &order)));
        }
        // One tenant, schema and metric: the encoded keys (unique, and
        // order-preserving) sort as the keys do, by plain byte comparison.
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, s)| s).collect())
    }

    /// Every series, of any tenant and schema, whose target string lies in
    /// `[start, end)` (`end` `None`: no bound), sorted by key. This is what
    /// a replica of that range holds.
    pub fn select_range(&self, start: &[u8], end: Option<&[u8]>) -> Vec<SelectedSeries> {
        let inner = &self.inner;
        let mut out = Vec::new();
        for s in inner.index.all() {
            let g = s.lock();
            let ts = g.target();
            if ts < start || end.is_some_and(|e| ts >= e) {
                continue;
            }
            let key = g.key();
            let (Some(t), Some(m)) =
                (inner.schemas.target(&key.tenant, &key.target_schema), inner.schemas.metric(&key.tenant, &key.metric))
            else {
                continue;
            };
            out.push(selected(&s, &g, key, &t, &m, &t.key_order()));
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// For each range `[start, end)`, the number of series in it and a
    /// median of their target strings (estimated from a sample).
    pub fn range_stats(&self, ranges: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<(u64, Option<Vec<u8>>)> {
        const SAMPLE: usize = 4096;
        let mut counts = vec![0u64; ranges.len()];
        // Per range: every `stride`-th series is sampled; when the sample
        // fills up, every other one goes and the stride doubles. (The index
        // iterates in hash order, so the sample spreads over the range.)
        let mut samples: Vec<(Vec<Vec<u8>>, u64)> = vec![(Vec::new(), 1); ranges.len()];
        for s in self.inner.index.all() {
            let ts = s.lock().target().to_vec();
            let Some(i) =
                ranges.iter().position(|(a, b)| ts.as_slice() >= a.as_slice() && b.as_ref().is_none_or(|b| ts < *b))
            else {
                continue;
            };
            counts[i] += 1;
            let (sample, stride) = &mut samples[i];
            if counts[i].is_multiple_of(*stride) {
                sample.push(ts);
                if sample.len() >= 2 * SAMPLE {
                    let mut keep = false;
                    sample.retain(|_| {
                        keep = !keep;
                        keep
                    });
                    *stride *= 2;
                }
            }
        }
        let samples = samples.into_iter().map(|(s, _)| s);
        counts
            .into_iter()
            .zip(samples)
            .map(|(c, mut s)| {
                s.sort();
                s.dedup();
                (c, s.get(s.len() / 2).cloned())
            })
            .collect()
    }

    /// The chunks of a selected series that may hold points in
    /// `[start, end]`, memory first, with their headers and the total point
    /// count.
    async fn chunks_in(
        &self,
        series: &SelectedSeries,
        start: i64,
        end: i64,
    ) -> Result<(Vec<(Chunk, danaus_codec::ChunkHeader)>, usize)> {
        let (id, mem, complete_from) = {
            let g = series.series.lock();
            (g.id, g.memory_chunks(start, end), g.complete_from)
        };
        // Memory holds everything from `complete_from` on: skip the store.
        let stored = if start >= complete_from { Vec::new() } else { self.stored_chunks(id, start, end).await? };
        let mut chunks = Vec::with_capacity(mem.len() + stored.len());
        let mut total = 0usize;
        for c in mem.into_iter().chain(stored) {
            let h = c.header().map_err(|e| corrupt(series, e))?;
            if h.count == 0 || h.max_time < start || h.min_time > end {
                continue;
            }
            total += h.count as usize;
            chunks.push((c, h));
        }
        Ok((chunks, total))
    }

    /// Whether a selected series may have points in `[start, end]`: some
    /// chunk's time range overlaps it (decided from chunk headers, no
    /// point decoded; a chunk spanning the range with no point inside it
    /// counts).
    pub async fn may_have_points(&self, series: &SelectedSeries, start: i64, end: i64) -> Result<bool> {
        let (in_memory, complete_from) = {
            let g = series.series.lock();
            (g.memory_overlaps(start, end), g.complete_from)
        };
        if in_memory || start >= complete_from {
            return Ok(in_memory);
        }
        Ok(self.chunks_in(series, start, end).await?.1 > 0)
    }

    fn too_many_points(&self, series: &SelectedSeries) -> Error {
        Error::ResourceExhausted(format!(
            "series {} has more than {} points in the range (the per-read point limit); narrow the time range",
            series.key, self.inner.opts.max_points_per_read
        ))
    }

    /// The points of a selected series in `[start, end]`, merged from memory
    /// and the long-term store, in time order, one per timestamp.
    pub async fn points(&self, series: &SelectedSeries, start: i64, end: i64) -> Result<Vec<Point>> {
        let (chunks, total) = self.chunks_in(series, start, end).await?;
        let mut points = Vec::with_capacity(total.min(self.inner.opts.max_points_per_read + 1));
        let (mut times, mut values) = (Vec::new(), Vec::new());
        for (c, h) in chunks {
            let whole = h.min_time >= start && h.max_time <= end;
            if h.value_type == ValueType::Scalar(ScalarType::Double) && !h.has_start {
                // The batch kernel: one coding decision per column, not per point.
                times.clear();
                values.clear();
                c.iter().and_then(|mut it| it.read_doubles(&mut times, &mut values)).map_err(|e| corrupt(series, e))?;
                for (&t, &v) in times.iter().zip(&values) {
                    if whole || (t >= start && t <= end) {
                        points.push(Point { start_time: None, end_time: t, value: Value::Double(v) });
                    }
                }
            } else {
                for p in c.iter().map_err(|e| corrupt(series, e))? {
                    let p = p.map_err(|e| corrupt(series, e))?;
                    if whole || (p.end_time >= start && p.end_time <= end) {
                        points.push(p);
                    }
                }
            }
            if points.len() > self.inner.opts.max_points_per_read {
                return Err(self.too_many_points(series));
            }
        }
        // Usually one in-order chunk after another: already sorted.
        if !points.is_sorted_by_key(|p| p.end_time) {
            points.sort_by_key(|p| p.end_time);
        }
        points.dedup_by_key(|p| p.end_time);
        Ok(points)
    }

    /// Like [`Leaf::points`] for a double series whose points carry no
    /// start times, as two columns appended to `times` and `values` (which
    /// callers reuse across series): the scan path of numeric queries, with
    /// no per-point `Value`. Returns `false`, appending nothing, when the
    /// series is of another type or has start times; use `points` then.
    pub async fn doubles(
        &self,
        series: &SelectedSeries,
        start: i64,
        end: i64,
        times: &mut Vec<i64>,
        values: &mut Vec<f64>,
    ) -> Result<bool> {
        self.double_columns(series, start, end, times, values, false).await
    }

    /// Like [`Leaf::doubles`] for any double series, start times or not:
    /// the times are the points' end times and start times are dropped
    /// unread (what PromQL, which has none, reads).
    pub async fn doubles_without_starts(
        &self,
        series: &SelectedSeries,
        start: i64,
        end: i64,
        times: &mut Vec<i64>,
        values: &mut Vec<f64>,
    ) -> Result<bool> {
        self.double_columns(series, start, end, times, values, true).await
    }

    async fn double_columns(
        &self,
        series: &SelectedSeries,
        start: i64,
        end: i64,
        times: &mut Vec<i64>,
        values: &mut Vec<f64>,
        skip_starts: bool,
    ) -> Result<bool> {
        if series.value_type != ValueType::Scalar(ScalarType::Double) {
            return Ok(false);
        }
        let (t0, v0) = (times.len(), values.len());
        // An early `Ok(false)` or error leaves nothing partial behind.
        let r = async {
            let limit = self.inner.opts.max_points_per_read;
            // Memory, oldest first: sealed chunks are copied out, open chunks
            // read in place under the series lock (from a mark near `start`,
            // so a read of recent points decodes few others) — into side
            // columns when sealed chunks come before them.
            let mut open_columns = (Vec::new(), Vec::new());
            let (id, sealed, complete_from, mut total) = {
                let g = series.series.lock();
                let mut open_points = 0;
                for b in g.open_chunks(start, end) {
                    if (b.has_start() && !skip_starts) || b.value_type() != &series.value_type {
                        return Ok(false);
                    }
                    open_points += b.len();
                }
                if open_points > limit {
                    return Err(self.too_many_points(series));
                }
                let sealed = g.sealed_chunks(start, end);
                let (ot, ov) = if sealed.is_empty() {
                    (&mut *times, &mut *values)
                } else {
                    (&mut open_columns.0, &mut open_columns.1)
                };
                for b in g.open_chunks(start, end) {
                    b.read_doubles_in(start, end, ot, ov).map_err(|e| corrupt(series, e))?;
                }
                (g.id, sealed, g.complete_from, open_points)
            };
            // Memory holds everything from `complete_from` on: skip the store.
            let stored = if start >= complete_from { Vec::new() } else { self.stored_chunks(id, start, end).await? };
            let mut chunks = Vec::with_capacity(sealed.len() + stored.len());
            let n_sealed = sealed.len();
            for (i, c) in sealed.into_iter().chain(stored).enumerate() {
                let h = c.header().map_err(|e| corrupt(series, e))?;
                if h.count == 0 || h.max_time < start || h.min_time > end {
                    continue;
                }
                if (h.has_start && !skip_starts) || h.value_type != series.value_type {
                    return Ok(false);
                }
                total += h.count as usize;
                chunks.push((i < n_sealed, c, h));
            }
            if total > limit {
                return Err(self.too_many_points(series));
            }
            times.reserve(total);
            values.reserve(total);
            let mut open_columns = Some(open_columns);
            for (in_memory, c, h) in &chunks {
                if !in_memory {
                    // Stored chunks come after memory's open chunks.
                    if let Some((ot, ov)) = open_columns.take() {
                        times.extend(ot);
                        values.extend(ov);
                    }
                }
                let before = times.len();
                c.iter()
                    .and_then(|mut it| {
                        if skip_starts {
                            it.read_doubles_skipping_starts(times, values)
                        } else {
                            it.read_doubles(times, values)
                        }
                    })
                    .map_err(|e| corrupt(series, e))?;
                if h.min_time < start || h.max_time > end {
                    danaus_codec::retain_range(times, values, times.len() - before, start, end);
                }
            }
            if let Some((ot, ov)) = open_columns {
                times.extend(ot);
                values.extend(ov);
            }
            if !times[t0..].is_sorted() || times[t0..].windows(2).any(|w| w[0] == w[1]) {
                // Out-of-order chunks or memory/store overlap: order by time,
                // memory (earlier) first, one point per time.
                let mut pairs: Vec<(i64, f64)> =
                    times[t0..].iter().copied().zip(values[v0..].iter().copied()).collect();
                pairs.sort_by_key(|p| p.0);
                pairs.dedup_by_key(|p| p.0);
                times.truncate(t0);
                values.truncate(v0);
                for (t, v) in pairs {
                    times.push(t);
                    values.push(v);
                }
            }
            Ok(true)
        }
        .await;
        if !matches!(r, Ok(true)) {
            times.truncate(t0);
            values.truncate(v0);
        }
        r
    }

    /// Selects and reads in one call.
    pub async fn read(&self, tenant: &str, req: &ReadRequest) -> Result<Vec<(SelectedSeries, Vec<Point>)>> {
        let mut out = Vec::new();
        let mut total = 0usize;
        for s in self.select(tenant, req)? {
            let pts = self.points(&s, req.start, req.end).await?;
            total += pts.len();
            if total > self.inner.opts.max_points_per_read {
                return Err(Error::ResourceExhausted(format!(
                    "read returns more than {} points (the per-read point limit); narrow the time range or add matchers",
                    self.inner.opts.max_points_per_read
                )));
            }
            out.push((s, pts));
        }
        Ok(out)
    }
}

fn corrupt(series: &SelectedSeries, e: danaus_codec::Error) -> Error {
    Error::Internal(format!("series {}: {e}", series.key))
}
