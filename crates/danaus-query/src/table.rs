//! Tables: what flows between operations and phases.

use std::sync::Arc;

use danaus_model::{FieldValue, MetricKind, Point};
use serde::{Deserialize, Serialize};

use crate::aggregate::PartialTable;

/// Field names of a table's series, shared by every series of it.
pub type Columns = Arc<Vec<String>>;

/// One series: field values (in the table's column order) and points in
/// time order, one per timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Field values, one per column.
    pub fields: Vec<FieldValue>,
    /// Points in time order.
    pub points: Vec<Point>,
}

/// A set of series with the same columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Column names.
    pub columns: Columns,
    /// Kind of the values (after alignment: delta for delta/count-like
    /// aligners, gauge otherwise).
    pub kind: MetricKind,
    /// The series.
    pub series: Vec<Series>,
}

impl Table {
    /// An empty table with these columns.
    pub fn empty(columns: Columns, kind: MetricKind) -> Self {
        Self { columns, kind, series: Vec::new() }
    }

    /// Number of points over all series.
    pub fn num_points(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }

    /// Sorts series by their fields (the order results are returned in).
    pub fn sort(&mut self) {
        self.series.sort_by(|a, b| a.fields.cmp(&b.fields));
    }
}

/// What one phase hands to the next: finished series, or partial
/// aggregates that the next phase merges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PhaseOutput {
    /// Finished series.
    Table(Table),
    /// Mergeable partial aggregates of a `group_by`.
    Partial(PartialTable),
}
