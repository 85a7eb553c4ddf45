//! The seam between the evaluator and where series live.
//!
//! The evaluator asks a [`Storage`] once per selector for the series
//! matching its matchers over the time range the whole query needs from
//! it, then evaluates without going back: data flows one way. Danaus' store
//! implements it with fetch plans run by the query engine (matchers and
//! time range pushed to the leaves); [`MemStorage`] holds series in memory
//! for the promqltest runner and unit tests.

use std::sync::Arc;

use danaus_query::prom::{PromAggregate, PromWindow};
use futures::future::BoxFuture;
use promql_parser::label::Matcher;

use crate::error::Result;
use crate::value::{Labels, Series};

/// Where series come from.
pub trait Storage: Send + Sync {
    /// Series matching every matcher, with their samples whose times are
    /// in `[start, end]` (ms, inclusive), staleness markers included,
    /// oldest first. Series without samples in the range may be left out.
    fn select<'a>(&'a self, matchers: &'a [Matcher], start: i64, end: i64) -> BoxFuture<'a, Result<Vec<Series>>>;

    /// Series matching every matcher, each with the values of `w` at the
    /// evaluation times that have one (`(time, value)`, time order), the
    /// metric name kept in the labels — or left out when `w`'s function
    /// drops it ([`danaus_query::prom::PromFn::keeps_name`]). Storage that can compute `w` where
    /// the data is overrides this; the default reads the raw samples with
    /// [`Storage::select`] and computes it here.
    fn select_windows<'a>(&'a self, matchers: &'a [Matcher], w: &'a PromWindow) -> BoxFuture<'a, Result<Vec<Series>>> {
        Box::pin(windows_by_select(self, matchers, w))
    }

    /// `agg` over the values of `w` for the series matching every matcher,
    /// folded where the data is: each series returned is one group's
    /// partial aggregate (labelled with the group's labels and the metric
    /// name; the evaluator folds the partials again), or `None` when this
    /// storage does not fold (the evaluator then asks
    /// [`Storage::select_windows`] and aggregates itself). The default
    /// does not fold.
    fn select_aggregate<'a>(
        &'a self,
        _matchers: &'a [Matcher],
        _w: &'a PromWindow,
        _agg: &'a PromAggregate,
    ) -> BoxFuture<'a, Result<Option<Vec<Series>>>> {
        Box::pin(async { Ok(None) })
    }

    /// Why the answers so far may be incomplete (a part of the store that
    /// did not answer), for the API's `warnings`; none by default.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// [`Storage::select_windows`] computed here from [`Storage::select`]'s
/// raw samples: the default, for storage that cannot compute windows
/// where the data is (or, for a wrapper, cannot for some selectors).
pub async fn windows_by_select<S: Storage + ?Sized>(
    storage: &S,
    matchers: &[Matcher],
    w: &PromWindow,
) -> Result<Vec<Series>> {
    let (lo, hi) = w.sample_range();
    let raw = storage.select(matchers, lo, hi).await?;
    let mut scratch = Vec::new();
    Ok(raw
        .into_iter()
        .map(|s| {
            let mut points = Vec::new();
            w.eval_series(&s.points, &mut scratch, |i, v| points.push((w.time(i), v)));
            Series { labels: s.labels, points }
        })
        .collect())
}

/// Series in memory.
#[derive(Debug, Default, Clone)]
pub struct MemStorage {
    series: Vec<Series>,
}

impl MemStorage {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds samples to the series with `labels` (created when new); the
    /// series stays sorted by time, a later sample at the same time wins.
    pub fn add(&mut self, labels: Labels, points: impl IntoIterator<Item = (i64, f64)>) {
        let i = match self.series.iter().position(|s| *s.labels == labels) {
            Some(i) => i,
            None => {
                self.series.push(Series { labels: Arc::new(labels), points: Vec::new() });
                self.series.len() - 1
            }
        };
        let s = &mut self.series[i];
        s.points.extend(points);
        // Stable: of equal times, the later stays last; keep that one.
        s.points.sort_by_key(|p| p.0);
        let mut out: Vec<(i64, f64)> = Vec::with_capacity(s.points.len());
        for p in s.points.drain(..) {
            match out.last_mut() {
                Some(last) if last.0 == p.0 => *last = p,
                _ => out.push(p),
            }
        }
        s.points = out;
    }

    /// Removes every series.
    pub fn clear(&mut self) {
        self.series.clear();
    }

    /// Every series.
    pub fn series(&self) -> &[Series] {
        &self.series
    }
}

/// Whether `labels` satisfy every matcher (an absent label is "").
pub fn matches(labels: &Labels, matchers: &[Matcher]) -> bool {
    matchers.iter().all(|m| m.is_match(labels.get(&m.name)))
}

impl Storage for MemStorage {
    fn select<'a>(&'a self, matchers: &'a [Matcher], start: i64, end: i64) -> BoxFuture<'a, Result<Vec<Series>>> {
        let out = self
            .series
            .iter()
            .filter(|s| matches(&s.labels, matchers))
            .filter_map(|s| {
                let from = s.points.partition_point(|p| p.0 < start);
                let to = s.points.partition_point(|p| p.0 <= end);
                (from < to).then(|| Series { labels: s.labels.clone(), points: s.points[from..to].to_vec() })
            })
            .collect();
        Box::pin(async move { Ok(out) })
    }
}
