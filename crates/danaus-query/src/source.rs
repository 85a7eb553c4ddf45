//! Where leaf phases read series: the [`SeriesSource`] seam, and its
//! implementation over an in-process [`Leaf`]. The zone's mixer will add
//! one over gRPC to remote leaves.

use std::sync::Arc;

use danaus_leaf::Leaf;
use danaus_model::ReadRequest;
use danaus_model::{FieldValue, MetricSchema, Point, TargetSchema, Value};
use futures::future::BoxFuture;

use crate::align::{align, align_doubles, AlignSpec};
use crate::ctx::ExecCtx;
use crate::error::{Error, Result};
use crate::plan::{FetchPlan, FetchSpec};
use crate::prom::{PromFn, PromWindow, Scratch};
use crate::table::{PhaseOutput, Series, Table};

/// Decides, from its fields, whether a selected series is read.
pub type Keep<'a> = &'a (dyn Fn(&[FieldValue]) -> Result<bool> + Send + Sync);

/// An alignment a source applies to each series as it reads it, so raw
/// points need not be materialised (see [`align_doubles`] and
/// [`PromWindow::eval_columns`]).
#[derive(Debug, Clone, Copy)]
pub enum PreAlign<'a> {
    /// A Danaus aligner.
    Align(&'a AlignSpec),
    /// A PromQL window function.
    Prom(&'a PromWindow),
}

/// Receives batches of series, with the number of raw points read for them.
pub type Sink<'a> = &'a mut (dyn FnMut(Vec<Series>, u64) -> Result<()> + Send);

/// A store of series that leaf phases read.
pub trait SeriesSource: Send + Sync {
    /// The source's name in completeness reports.
    fn name(&self) -> &str;

    /// The schemas of a fetch.
    fn schemas(&self, tenant: &str, target: &str, metric: &str) -> Result<(Arc<TargetSchema>, Arc<MetricSchema>)>;

    /// Reads the series `spec` selects whose fields `keep` accepts, with
    /// their points in `[spec.start, spec.end]`, handing them to `sink` in
    /// batches of about `batch` series. Series arrive grouped by target
    /// and a batch never splits a target. Fields are in `spec.columns`
    /// order. At most `max_series` series may be selected. With `align`,
    /// each series reaches the sink already aligned by it.
    #[allow(clippy::too_many_arguments)]
    fn fetch<'a>(
        &'a self,
        tenant: &'a str,
        spec: &'a FetchSpec,
        keep: Keep<'a>,
        align: Option<PreAlign<'a>>,
        max_series: usize,
        batch: usize,
        sink: Sink<'a>,
    ) -> BoxFuture<'a, Result<()>>;
}

/// Where a zone runs the leaf phase of a fetch: any in-process
/// [`SeriesSource`] (through [`run_leaf_stage`](crate::run_leaf_stage)), or
/// a remote leaf that runs the phase itself and sends back its output.
pub trait LeafPhase: Send + Sync {
    /// The name in completeness reports.
    fn name(&self) -> &str;

    /// The schemas of a fetch.
    fn schemas(&self, tenant: &str, target: &str, metric: &str) -> Result<(Arc<TargetSchema>, Arc<MetricSchema>)>;

    /// Runs `fp`'s leaf stage: finished series go to `emit`, partial
    /// aggregates are returned (one per leaf that ran the stage; a remote
    /// source may spread it over several replicas). Series and points read
    /// count against `ctx`.
    fn run_phase<'a>(
        &'a self,
        fp: &'a FetchPlan,
        ctx: &'a ExecCtx,
        emit: &'a mut (dyn FnMut(Table) -> Result<()> + Send),
    ) -> BoxFuture<'a, Result<Vec<PhaseOutput>>>;
}

impl<T: SeriesSource> LeafPhase for T {
    fn name(&self) -> &str {
        SeriesSource::name(self)
    }

    fn schemas(&self, tenant: &str, target: &str, metric: &str) -> Result<(Arc<TargetSchema>, Arc<MetricSchema>)> {
        SeriesSource::schemas(self, tenant, target, metric)
    }

    fn run_phase<'a>(
        &'a self,
        fp: &'a FetchPlan,
        ctx: &'a ExecCtx,
        emit: &'a mut (dyn FnMut(Table) -> Result<()> + Send),
    ) -> BoxFuture<'a, Result<Vec<PhaseOutput>>> {
        Box::pin(async move { Ok(crate::exec::run_leaf_stage(self, fp, ctx, emit).await?.into_iter().collect()) })
    }
}

/// Target-string ranges `[start, end)` (`end` `None`: no bound).
pub type TargetRanges = Arc<Vec<(Vec<u8>, Option<Vec<u8>>)>>;

/// A [`SeriesSource`] over a leaf in this process.
#[derive(Clone)]
pub struct LeafSource {
    name: String,
    leaf: Leaf,
    ranges: Option<TargetRanges>,
}

impl LeafSource {
    /// Serves `leaf` under `name`.
    pub fn new(name: impl Into<String>, leaf: Leaf) -> Self {
        Self { name: name.into(), leaf, ranges: None }
    }

    /// Reads only series whose target string lies in one of `ranges`: a
    /// replica answers for the ranges the mixer gave it, and no other.
    pub fn with_ranges(mut self, ranges: TargetRanges) -> Self {
        self.ranges = Some(ranges);
        self
    }
}

fn in_ranges(ranges: &[(Vec<u8>, Option<Vec<u8>>)], target: &[u8]) -> bool {
    ranges.iter().any(|(a, b)| target >= a.as_slice() && b.as_deref().is_none_or(|b| target < b))
}

fn leaf_error(source: &str, e: danaus_leaf::Error) -> Error {
    match e {
        danaus_leaf::Error::NotFound(m) => Error::NotFound(m),
        danaus_leaf::Error::InvalidArgument(m) => Error::invalid(m, None),
        danaus_leaf::Error::ResourceExhausted(m) | danaus_leaf::Error::Internal(m) => {
            Error::Source { source_name: source.into(), message: m, unavailable: false }
        }
        danaus_leaf::Error::Unavailable(m) => {
            Error::Source { source_name: source.into(), message: m, unavailable: true }
        }
    }
}

impl SeriesSource for LeafSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn schemas(&self, tenant: &str, target: &str, metric: &str) -> Result<(Arc<TargetSchema>, Arc<MetricSchema>)> {
        let ts = self
            .leaf
            .target_schema(tenant, target)
            .ok_or_else(|| Error::NotFound(format!("unknown target schema {target:?} (tenant {tenant:?})")))?;
        let ms = self
            .leaf
            .metric_schema(tenant, metric)
            .ok_or_else(|| Error::NotFound(format!("unknown metric {metric:?} (tenant {tenant:?})")))?;
        Ok((ts, ms))
    }

    fn fetch<'a>(
        &'a self,
        tenant: &'a str,
        spec: &'a FetchSpec,
        keep: Keep<'a>,
        align_by: Option<PreAlign<'a>>,
        max_series: usize,
        batch: usize,
        sink: Sink<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let req = ReadRequest {
                target_schema: spec.target.clone(),
                metric: spec.metric.clone(),
                matchers: spec.matchers.clone(),
                start: spec.start,
                end: spec.end,
            };
            let over = || Error::Limit {
                name: "max_series",
                what: "series touched",
                limit: max_series as u64,
                hint: "add filters to narrow the query",
            };
            let limit = if self.ranges.is_some() { usize::MAX } else { max_series };
            let mut selected = self.leaf.select_at_most(tenant, &req, limit).map_err(|e| match e {
                danaus_leaf::Error::ResourceExhausted(_) => over(),
                e => leaf_error(&self.name, e),
            })?;
            if let Some(ranges) = &self.ranges {
                selected.retain(|s| in_ranges(ranges, &s.key.target_string().0));
                if selected.len() > max_series {
                    return Err(over());
                }
            }
            let mut out: Vec<Series> = Vec::with_capacity(batch.min(selected.len()));
            let mut raw_points = 0u64;
            let mut last_target: Option<Vec<FieldValue>> = None;
            // Column buffers reused across series.
            let (mut times, mut values) = (Vec::new(), Vec::new());
            let mut scratch = Scratch::default();
            for mut s in selected {
                let s = &mut s;
                // Cut batches only between targets (series come sorted by key).
                if last_target.as_ref() != Some(&s.key.target_fields) {
                    if out.len() >= batch {
                        sink(std::mem::take(&mut out), std::mem::take(&mut raw_points))?;
                    }
                    last_target = Some(s.key.target_fields.clone());
                }
                // The field values are moved out (reads need only the key).
                let (target, metric) = (std::mem::take(&mut s.target_fields), std::mem::take(&mut s.metric_fields));
                let fields: Vec<FieldValue> = target.into_iter().chain(metric).map(|(_, v)| v).collect();
                let s = &*s;
                if !keep(&fields)? {
                    continue;
                }
                let failed = |e| leaf_error(&self.name, e);
                let points = match align_by {
                    Some(PreAlign::Prom(w)) if w.func == PromFn::Exists => {
                        let may = self.leaf.may_have_points(s, spec.start, spec.end).await.map_err(failed)?;
                        let at = w.start.saturating_mul(1_000_000);
                        if may && w.steps() > 0 {
                            vec![Point { start_time: None, end_time: at, value: Value::Double(1.0) }]
                        } else {
                            Vec::new()
                        }
                    }
                    Some(PreAlign::Prom(w)) => {
                        times.clear();
                        values.clear();
                        let leaf = &self.leaf;
                        if !leaf
                            .doubles_without_starts(s, spec.start, spec.end, &mut times, &mut values)
                            .await
                            .map_err(failed)?
                        {
                            // Not a plain double series: its double points.
                            for p in self.leaf.points(s, spec.start, spec.end).await.map_err(failed)? {
                                if let Value::Double(v) = p.value {
                                    times.push(p.end_time);
                                    values.push(v);
                                }
                            }
                        }
                        raw_points += times.len() as u64;
                        w.eval_columns(&times, &values, &mut scratch)
                    }
                    Some(PreAlign::Align(a)) => {
                        times.clear();
                        values.clear();
                        if self.leaf.doubles(s, spec.start, spec.end, &mut times, &mut values).await.map_err(failed)? {
                            raw_points += times.len() as u64;
                            align_doubles(a, spec.kind, &times, &values)
                        } else {
                            let raw = self.leaf.points(s, spec.start, spec.end).await.map_err(failed)?;
                            raw_points += raw.len() as u64;
                            align(a, spec.kind, &raw).map_err(|e| in_series(e, &spec.columns, &fields))?
                        }
                    }
                    None => {
                        let raw = self.leaf.points(s, spec.start, spec.end).await.map_err(failed)?;
                        raw_points += raw.len() as u64;
                        raw
                    }
                };
                out.push(Series { fields, points });
            }
            if !out.is_empty() {
                sink(out, raw_points)?;
            }
            Ok(())
        })
    }
}

/// Names the series in an evaluation error.
pub(crate) fn in_series(e: Error, columns: &[String], fields: &[FieldValue]) -> Error {
    match e {
        Error::Eval(m) => Error::Eval(format!("series {}: {m}", crate::exec::describe(columns, fields))),
        e => e,
    }
}
