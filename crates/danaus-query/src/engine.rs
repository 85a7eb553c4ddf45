//! The query engine's front door: text in, batches of series and a
//! completeness report out.

use std::sync::Arc;
use std::time::Instant;

use danaus_model::{MetricKind, MetricSchema, TargetSchema};

use crate::ctx::{Cancel, Completeness, ExecCtx, QueryLimits};
use crate::error::{Error, Result};
use crate::exec::{Executor, ZonePhase, ZoneSources};
use crate::plan::{plan, Catalog, Plan, QueryRange};
use crate::syntax::{ast::Query, parse};
use crate::table::Table;

/// How one query runs.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Cancels the query when triggered.
    pub cancel: Cancel,
    /// Stop with an error after this instant.
    pub deadline: Option<Instant>,
    /// Limits (the engine's when `None`).
    pub limits: Option<QueryLimits>,
    /// Evaluate every operation at the root instead of pushing work down
    /// (the reference the pushed-down plan must match).
    pub all_at_root: bool,
}

/// What a finished query reports beside its series.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryReport {
    /// Which sources answered.
    pub completeness: Completeness,
    /// Series read.
    pub series_touched: u64,
    /// Points read.
    pub points_touched: u64,
}

/// Plans and runs queries over a set of zones.
pub struct Engine {
    zones: Vec<Arc<dyn ZonePhase>>,
    limits: QueryLimits,
}

/// Schemas from the first zone that knows them.
struct ZonesCatalog<'a> {
    zones: &'a [Arc<dyn ZonePhase>],
    tenant: &'a str,
}

impl Catalog for ZonesCatalog<'_> {
    fn schemas(&self, target: &str, metric: &str) -> Result<(Arc<TargetSchema>, Arc<MetricSchema>)> {
        let mut last = Error::NotFound("no leaves to query".into());
        for z in self.zones {
            match z.schemas(self.tenant, target, metric) {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

impl Engine {
    /// An engine over zones whose leaves run here, with default `limits`
    /// per query.
    pub fn new(zones: Vec<ZoneSources>, limits: QueryLimits) -> Self {
        Self::over(zones.into_iter().map(|z| Arc::new(z) as Arc<dyn ZonePhase>).collect(), limits)
    }

    /// An engine over any zones (the root mixer's run elsewhere).
    pub fn over(zones: Vec<Arc<dyn ZonePhase>>, limits: QueryLimits) -> Self {
        Self { zones, limits }
    }

    /// The zones queried.
    pub fn zones(&self) -> &[Arc<dyn ZonePhase>] {
        &self.zones
    }

    /// Parses and plans `text`.
    pub fn plan(&self, tenant: &str, text: &str, range: QueryRange) -> Result<(Query, Plan)> {
        let query = parse(text)?;
        let p = plan(&query, range, &ZonesCatalog { zones: &self.zones, tenant })?;
        Ok((query, p))
    }

    /// Runs `text` over `range`, handing result batches to `sink`.
    pub async fn run(
        &self,
        tenant: &str,
        text: &str,
        range: QueryRange,
        opts: RunOptions,
        sink: &mut (dyn FnMut(Table) -> Result<()> + Send),
    ) -> Result<QueryReport> {
        let (_, mut p) = self.plan(tenant, text, range)?;
        if opts.all_at_root {
            p = p.all_at_root();
        }
        self.run_plan(tenant, &p, opts, sink).await
    }

    /// Runs a planned query.
    pub async fn run_plan(
        &self,
        tenant: &str,
        p: &Plan,
        opts: RunOptions,
        sink: &mut (dyn FnMut(Table) -> Result<()> + Send),
    ) -> Result<QueryReport> {
        let ctx = ExecCtx::new(tenant, opts.limits.unwrap_or(self.limits), opts.cancel, opts.deadline);
        let mut completeness = Completeness::default();
        let exec = Executor { zones: &self.zones, ctx: &ctx };
        // Series without points in the range are not part of the answer.
        let mut emitted = false;
        let mut out = |mut t: Table| -> Result<()> {
            t.series.retain(|s| !s.points.is_empty());
            if t.series.is_empty() {
                return Ok(());
            }
            emitted = true;
            sink(t)
        };
        let t = exec.run(&p.root, &mut completeness, Some(&mut out)).await?;
        if !t.series.is_empty() {
            crate::exec::emit_batches(t, &mut out)?;
        }
        // An empty answer still says what its columns are.
        if !emitted {
            sink(Table::empty(crate::exec::output_columns(&p.root), MetricKind::Gauge))?;
        }
        Ok(QueryReport { completeness, series_touched: ctx.series_touched(), points_touched: ctx.points_touched() })
    }

    /// Runs `text` and collects the result into one table, sorted by fields.
    pub async fn collect(
        &self,
        tenant: &str,
        text: &str,
        range: QueryRange,
        opts: RunOptions,
    ) -> Result<(Table, QueryReport)> {
        let mut out: Option<Table> = None;
        let mut sink = |t: Table| -> Result<()> {
            match &mut out {
                Some(o) => o.series.extend(t.series),
                None => out = Some(t),
            }
            Ok(())
        };
        // (An empty answer arrives as one empty table with its columns.)
        let report = self.run(tenant, text, range, opts, &mut sink).await?;
        let mut t = out.unwrap_or_else(|| Table::empty(Arc::new(Vec::new()), MetricKind::Gauge));
        t.sort();
        Ok((t, report))
    }
}
