//! # danaus-query
//!
//! The Danaus query language and its engine.
//!
//! **Language** (`syntax`): a pull lexer and a recursive-descent parser
//! turn text such as
//! `fetch ComputeTask::/rpc/server/latency | filter user == "monarch" |
//! align delta(1h) | group_by [cluster], percentile(99)` into an
//! [`syntax::ast::Query`]; errors carry the byte span and a hint, and the
//! printer writes the canonical text back (parse → print → parse is the
//! identity). docs/query-language.md is the user's reference.
//!
//! **Planning** (`plan`): names resolve against the schemas, alignment is
//! made explicit, each aligner's grid and the fetch range are fixed, and
//! every pipeline is split into leaf, zone and root phases. Data flows one
//! way: sources → leaf stage → zone stage → root stage → caller. A phase
//! that cannot see every series of a group hands the next one mergeable
//! partial aggregates (`aggregate`), so the answer does not depend on how
//! series are spread over leaves and zones; a property test checks it
//! against evaluating everything at the root.
//!
//! **Execution** (`exec`, `engine`): leaves are read through the
//! [`SeriesSource`] trait in batches of series that never split a target;
//! per-series work (filter, align, value, time shift) runs batch by batch,
//! so memory follows the batch (or the groups), not the data. Per-query
//! limits on series and points stop a query with an error naming the
//! limit; a [`Cancel`] token and a deadline stop it between batches. Every
//! result carries a [`Completeness`] report naming each source and
//! whether it answered.
//!
//! **Second front end** (`prom`): PromQL (danaus-promql) compiles range
//! functions and foldable aggregations onto the same fetch plans, as leaf
//! operations with Prometheus' semantics ([`TableOp::Prom`],
//! [`TableOp::PromAggregate`]); sources run a leading window function over
//! each series' columns as they read them, like an aligner.

mod aggregate;
mod align;
mod combine;
mod ctx;
mod engine;
mod error;
mod exec;
mod expr;
mod plan;
pub mod prom;
mod source;
pub mod syntax;
mod table;

pub use aggregate::{default_bucketer, GroupSpec, Partial, PartialGroup, PartialTable};
pub use align::{align, align_doubles, AlignSpec};
pub use ctx::{Cancel, Completeness, ExecCtx, QueryLimits, SourceStatus};
pub use engine::{Engine, QueryReport, RunOptions};
pub use error::{Error, Result};
pub use exec::{run_leaf_stage, run_merge_stage, Executor, ZonePhase, ZoneSources, BATCH};
pub use plan::{
    fetch_columns, plan, Catalog, Combine, FetchPlan, FetchSpec, Node, Plan, QueryRange, Stage, TableOp, DEFAULT_STEP,
};
pub use source::{Keep, LeafPhase, LeafSource, PreAlign, SeriesSource, Sink, TargetRanges};
pub use table::{Columns, PhaseOutput, Series, Table};
