//! The state of a running query: limits, counters, cancellation and the
//! completeness report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Per-query limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryLimits {
    /// Series a query may read, over all fetches and sources.
    pub max_series: u64,
    /// Points a query may read.
    pub max_points: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self { max_series: 1_000_000, max_points: 500_000_000 }
    }
}

/// Cancels a running query; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every query holding this token.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The state of one running query: its tenant, limits, counters and
/// cancellation.
#[derive(Debug)]
pub struct ExecCtx {
    /// Tenant whose data is read.
    pub tenant: String,
    /// Limits.
    pub limits: QueryLimits,
    /// Cancellation.
    pub cancel: Cancel,
    /// Give up after this instant.
    pub deadline: Option<Instant>,
    series: AtomicU64,
    points: AtomicU64,
}

impl ExecCtx {
    /// A context for `tenant`.
    pub fn new(tenant: impl Into<String>, limits: QueryLimits, cancel: Cancel, deadline: Option<Instant>) -> Self {
        Self { tenant: tenant.into(), limits, cancel, deadline, series: AtomicU64::new(0), points: AtomicU64::new(0) }
    }

    /// Series read so far.
    pub fn series_touched(&self) -> u64 {
        self.series.load(Ordering::Relaxed)
    }

    /// Points read so far.
    pub fn points_touched(&self) -> u64 {
        self.points.load(Ordering::Relaxed)
    }

    /// Fails when the query was cancelled or ran past its deadline.
    pub fn check(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled("the caller went away".into()));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::Cancelled("the deadline passed".into()));
        }
        Ok(())
    }

    /// Counts `series` series and `points` points read elsewhere (by a
    /// remote leaf) against the limits.
    pub fn add_touched(&self, series: u64, points: u64) -> Result<()> {
        self.count_series(series)?;
        self.touch_points(points)
    }

    /// Adds `k` series; the new total, or the limit's error.
    fn count_series(&self, k: u64) -> Result<u64> {
        let n = self.series.fetch_add(k, Ordering::Relaxed) + k;
        if n > self.limits.max_series {
            return Err(Error::Limit {
                name: "max_series",
                what: "series touched",
                limit: self.limits.max_series,
                hint: "add filters to narrow it, or raise the limit",
            });
        }
        Ok(n)
    }

    pub(crate) fn touch_series(&self) -> Result<()> {
        let n = self.count_series(1)?;
        if n.is_multiple_of(1024) {
            self.check()?;
        }
        Ok(())
    }

    pub(crate) fn touch_points(&self, n: u64) -> Result<()> {
        let total = self.points.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.limits.max_points {
            return Err(Error::Limit {
                name: "max_points",
                what: "points read",
                limit: self.limits.max_points,
                hint: "shorten the time range or add filters",
            });
        }
        self.check()
    }
}

/// A source's part in a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// Zone of the source.
    pub zone: String,
    /// The source.
    pub source: String,
    /// `None` when it answered; why not otherwise.
    pub missing: Option<String>,
}

/// How complete a result is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completeness {
    /// Every source asked, with its outcome.
    pub sources: Vec<SourceStatus>,
}

impl Completeness {
    /// Whether every source answered.
    pub fn is_complete(&self) -> bool {
        self.sources.iter().all(|s| s.missing.is_none())
    }

    /// Records `source` of `zone` as answered (`missing == None`) or not;
    /// a source recorded twice is missing if either time was.
    pub fn record(&mut self, zone: &str, source: &str, missing: Option<String>) {
        if let Some(s) = self.sources.iter_mut().find(|s| s.zone == zone && s.source == source) {
            if s.missing.is_none() {
                s.missing = missing;
            }
        } else {
            self.sources.push(SourceStatus { zone: zone.into(), source: source.into(), missing });
        }
    }
}
