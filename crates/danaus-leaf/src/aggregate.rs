//! Open collection-aggregation buckets of a leaf's output series.
//!
//! An admitted delta is remembered by (input series key, end time) until its
//! bucket closes, so a retried delta is recognised as a duplicate (same
//! value) or a conflict (another value) and never counted twice. Buckets of
//! one output series close in end-time order, so "the series' newest stored
//! point is at or after this bucket's end" means "this bucket closed": that
//! is how replay and checkpoints tell open buckets from closed ones.

use std::collections::{BTreeMap, HashMap};

use danaus_model::collection::add_delta;
use danaus_model::{Point, Value};
use parking_lot::Mutex;

/// One open bucket: `(start, end]` of an output series.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    /// Start of the output point's interval.
    pub start: i64,
    /// When the bucket stops admitting deltas.
    pub closes_at: i64,
    /// Sum of the admitted deltas.
    pub sum: Value,
    /// Admitted deltas by (input series key, end time), with start time and
    /// value: what a checkpoint saves and what recognises retries.
    pub inputs: HashMap<(Vec<u8>, i64), (Option<i64>, Value)>,
}

#[derive(Debug, Default)]
struct SeriesBuckets {
    /// End of the newest closed bucket.
    closed_through: Option<i64>,
    open: BTreeMap<i64, Bucket>,
}

/// Why a delta was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its bucket has closed.
    Late(String),
    /// A different delta of the same input series and end time was admitted.
    Conflict(String),
    /// The value cannot be added to the bucket's sum.
    Invalid(String),
}

/// Outcome of admitting a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admitted {
    Added,
    Duplicate,
}

/// A closed bucket, ready to become a point of its output series.
#[derive(Debug)]
pub(crate) struct Closed {
    pub id: u64,
    pub point: Point,
    pub inputs: usize,
}

/// Open buckets of every output series.
#[derive(Debug, Default)]
pub(crate) struct Aggregator {
    series: Mutex<HashMap<u64, SeriesBuckets>>,
}

impl Aggregator {
    /// Admits delta `p` of input series `input_key` into bucket `bucket_end`
    /// of output series `id`. `stored_through` is the newest point the output
    /// series already holds: buckets up to it are closed.
    pub(crate) fn admit(
        &self,
        id: u64,
        stored_through: Option<i64>,
        (bucket_start, bucket_end): (i64, i64),
        closes_at: i64,
        input_key: &[u8],
        p: &Point,
    ) -> Result<Admitted, Refusal> {
        let mut all = self.series.lock();
        let sb = all.entry(id).or_default();
        let closed = sb.closed_through.max(stored_through);
        if closed.is_some_and(|c| bucket_end <= c) {
            return Err(Refusal::Late(format!(
                "late delta: its collection-aggregation bucket ending at {} has closed (if this retries an acknowledged write, it was counted)",
                danaus_model::time::format_time(bucket_end)
            )));
        }
        let b = sb.open.entry(bucket_end).or_insert_with(|| Bucket {
            start: bucket_start,
            closes_at,
            sum: zero_like(&p.value),
            inputs: HashMap::new(),
        });
        let k = (input_key.to_vec(), p.end_time);
        if let Some((start, v)) = b.inputs.get(&k) {
            return if v.same_as(&p.value) && *start == p.start_time {
                Ok(Admitted::Duplicate)
            } else {
                Err(Refusal::Conflict(format!(
                    "a different delta of this series ending at {} was already admitted",
                    danaus_model::time::format_time(p.end_time)
                )))
            };
        }
        let sum = if b.inputs.is_empty() {
            p.value.clone()
        } else {
            add_delta(&b.sum, &p.value).map_err(Refusal::Invalid)?
        };
        b.sum = sum;
        b.inputs.insert(k, (p.start_time, p.value.clone()));
        Ok(Admitted::Added)
    }

    /// Takes the buckets whose admission window has passed at `now`, oldest
    /// first per series; a bucket waits for every older bucket of its series.
    /// Buckets of series for which `hold` is true stay open (their range is
    /// still being copied in: they may lack deltas the copy brings).
    pub(crate) fn take_due(&self, now: i64, hold: impl Fn(u64) -> bool) -> Vec<Closed> {
        let mut out = Vec::new();
        let mut all = self.series.lock();
        for (&id, sb) in all.iter_mut() {
            if sb.open.first_key_value().is_some_and(|(_, b)| b.closes_at <= now) && hold(id) {
                continue;
            }
            while let Some(entry) = sb.open.first_entry() {
                if entry.get().closes_at > now {
                    break;
                }
                let end = *entry.key();
                let b = entry.remove();
                sb.closed_through = Some(end);
                out.push(Closed {
                    id,
                    point: Point { start_time: Some(b.start), end_time: end, value: b.sum },
                    inputs: b.inputs.len(),
                });
            }
        }
        all.retain(|_, sb| !sb.open.is_empty() || sb.closed_through.is_some());
        out
    }

    /// Forgets buckets of output series that hold points through their end
    /// (after replay: those buckets closed before the restart).
    pub(crate) fn prune_closed(&self, stored_through: impl Fn(u64) -> Option<i64>) {
        let mut all = self.series.lock();
        for (&id, sb) in all.iter_mut() {
            if let Some(t) = stored_through(id) {
                sb.open.retain(|&end, _| end > t);
                sb.closed_through = sb.closed_through.max(Some(t));
            }
        }
        all.retain(|_, sb| !sb.open.is_empty());
    }

    /// Forgets the given output series (their range moved away).
    pub(crate) fn remove(&self, ids: &[u64]) {
        let mut all = self.series.lock();
        for id in ids {
            all.remove(id);
        }
    }

    /// Every admitted delta of every open bucket, per output series: what a
    /// checkpoint saves so the log segments holding them can go.
    pub(crate) fn snapshot(&self) -> Vec<(u64, Vec<(i64, Bucket)>)> {
        let all = self.series.lock();
        all.iter()
            .filter(|(_, sb)| !sb.open.is_empty())
            .map(|(&id, sb)| (id, sb.open.iter().map(|(&e, b)| (e, b.clone())).collect()))
            .collect()
    }

    /// The open buckets of the given output series with their deltas: what
    /// a history copy carries besides stored points.
    pub(crate) fn buckets_of(&self, ids: &[u64]) -> Vec<(u64, Vec<(i64, Bucket)>)> {
        let all = self.series.lock();
        ids.iter()
            .filter_map(|id| {
                let sb = all.get(id).filter(|sb| !sb.open.is_empty())?;
                Some((*id, sb.open.iter().map(|(&e, b)| (e, b.clone())).collect()))
            })
            .collect()
    }

    /// Open buckets and the deltas they hold.
    pub(crate) fn open_counts(&self) -> (usize, usize) {
        let all = self.series.lock();
        all.values().flat_map(|sb| sb.open.values()).fold((0, 0), |(b, i), x| (b + 1, i + x.inputs.len()))
    }
}

fn zero_like(v: &Value) -> Value {
    match v {
        Value::Int64(_) => Value::Int64(0),
        Value::Tuple(items) => Value::Tuple(items.iter().map(zero_like).collect()),
        // Only the first delta's value becomes a sum without adding, so this
        // placeholder is never read for other types.
        _ => Value::Double(0.0),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn d(start: i64, end: i64, v: i64) -> Point {
        Point { start_time: Some(start), end_time: end, value: Value::Int64(v) }
    }

    #[test]
    fn sums_dedups_and_closes_in_order() {
        let a = Aggregator::default();
        assert_eq!(a.admit(1, None, (0, 10), 40, b"a", &d(0, 5, 2)).unwrap(), Admitted::Added);
        assert_eq!(a.admit(1, None, (0, 10), 40, b"b", &d(0, 5, 3)).unwrap(), Admitted::Added);
        assert_eq!(a.admit(1, None, (0, 10), 40, b"a", &d(0, 5, 2)).unwrap(), Admitted::Duplicate);
        assert!(matches!(a.admit(1, None, (0, 10), 40, b"a", &d(0, 5, 9)), Err(Refusal::Conflict(_))));
        // A later bucket that would close first waits for the older one.
        a.admit(1, None, (10, 20), 30, b"a", &d(10, 15, 1)).unwrap();
        assert!(a.take_due(35, |_| false).is_empty());
        assert!(a.take_due(40, |_| true).is_empty(), "held buckets stay open");
        let closed = a.take_due(40, |_| false);
        assert_eq!(closed.len(), 2);
        assert_eq!(closed[0].point, d(0, 10, 5));
        assert_eq!(closed[0].inputs, 2);
        assert_eq!(closed[1].point, d(10, 20, 1));
        assert!(matches!(a.admit(1, None, (10, 20), 99, b"c", &d(10, 12, 1)), Err(Refusal::Late(_))));
        // A stored point marks its bucket closed too (after a restart).
        assert!(matches!(a.admit(2, Some(30), (20, 30), 99, b"c", &d(20, 22, 1)), Err(Refusal::Late(_))));
        assert!(matches!(a.admit(2, None, (0, 30), 99, b"c", &d(20, 22, i64::MAX)), Ok(Admitted::Added)));
        assert!(matches!(a.admit(2, None, (0, 30), 99, b"d", &d(20, 22, 1)), Err(Refusal::Invalid(_))));
        a.prune_closed(|id| (id == 2).then_some(30));
        assert_eq!(a.open_counts(), (0, 0));
    }
}
