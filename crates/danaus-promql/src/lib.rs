//! # danaus-promql
//!
//! PromQL for Danaus, so Grafana and every PromQL tool work unchanged.
//!
//! **Data flow.** Text is parsed by the `promql-parser` crate
//! ([`eval::parse`], which also refuses 3.x-only syntax). The evaluator then
//! walks the expression once to learn, for every selector, the time range
//! any step of the query can read through it (offsets, `@`, range windows,
//! the 5-minute lookback and enclosing subqueries included) and fetches each
//! selector once through the [`Storage`] seam; the Danaus implementation of
//! that seam turns a selector into fetch plans of `danaus-query`, so the
//! matchers and the time range are applied at the leaves by the same engine
//! that runs Danaus' own language. A range function over a selector (and
//! `sum`/`min`/`max`/`count`/`group` of one, or of a selector) is asked of
//! storage as a window function, optionally folded by group
//! ([`Storage::select_windows`], [`Storage::select_aggregate`]): Danaus
//! compiles it onto the leaf stage of the fetch plans
//! (`danaus_query::prom`), so leaves send a value per step, or per group
//! and step, instead of every sample. Evaluation is then pure: every node
//! is computed over a grid of step times, an instant vector being a list of
//! samples per step, as Prometheus' `rangeEval` does. Nothing calls back
//! into storage during evaluation.
//!
//! **Semantics** are Prometheus 2.42's (the differential test's peer): an
//! instant selector takes the newest sample in `[t − 5m, t]` unless it is a
//! staleness marker (the NaN with bits `0x7ff0000000000002`, stored bit for
//! bit); range windows are closed on both ends; `rate`/`increase`/`delta`
//! extrapolate as `extrapolatedRate` does; aggregations, vector matching and
//! the metric-name rules follow 2.42's engine. Deliberate differences are
//! listed in `docs/promql-compat.md`.
//!
//! **Tests.** [`promqltest`] runs Prometheus' test-script format (`load`,
//! `clear`, `eval instant`, `eval range`, `expect …`) against any
//! [`promqltest::Backend`]; `tests/cases/*.test` are this crate's own
//! scripts, run in memory, and the same scripts can run against a Danaus
//! server.

pub mod api;
mod danaus;
mod error;
pub mod eval;
pub mod promqltest;
mod storage;
mod value;

pub use danaus::DanausStorage;
pub use error::{Error, Result};
pub use eval::{instant, parse, range, selector_matchers, Options};
pub use storage::{matches, windows_by_select, MemStorage, Storage};
pub use value::{format_float, is_stale, stale_nan, Labels, Sample, Series, Value, METRIC_NAME, STALE_NAN_BITS};
