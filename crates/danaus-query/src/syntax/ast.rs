//! The syntax tree of a query.
//!
//! Every node keeps the [`Span`] of its source text for error messages.
//! Spans never take part in equality: two trees are the same query wherever
//! their tokens sat, which is what the parse → print → parse round trip
//! checks.

use serde::{Deserialize, Serialize};

/// A byte range of the query text.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`.
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl PartialEq for Span {
    fn eq(&self, _: &Span) -> bool {
        true
    }
}

impl Eq for Span {}

/// A whole query: one pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// The pipeline.
    pub pipeline: Pipeline,
}

/// A source followed by table operations, `source | op | op …`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    /// Where the tables come from.
    pub source: Source,
    /// The operations, in order.
    pub ops: Vec<Op>,
}

/// The start of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Source {
    /// `fetch Target::/metric`.
    Fetch {
        /// Target schema name.
        target: String,
        /// Metric schema name.
        metric: String,
        /// Source text.
        span: Span,
    },
    /// `{ pipeline ; pipeline … }`: several tables, combined by the next
    /// operation (`join`, `outer_join` or `union`).
    Tables {
        /// The inner pipelines.
        inputs: Vec<Pipeline>,
        /// Source text.
        span: Span,
    },
}

/// The aligners of `align`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Aligner {
    /// Change over the window (sum of increases for counters).
    Delta,
    /// Change per second over the window.
    Rate,
    /// Mean of the points in the window.
    Mean,
    /// Smallest point in the window.
    Min,
    /// Largest point in the window.
    Max,
    /// Number of points in the window.
    Count,
    /// The latest point at or before the output time, within the window.
    NextOlder,
    /// Linear interpolation between the points around the output time.
    Interpolate,
}

impl Aligner {
    /// Every aligner, for error hints.
    pub const ALL: [Aligner; 8] = [
        Aligner::Delta,
        Aligner::Rate,
        Aligner::Mean,
        Aligner::Min,
        Aligner::Max,
        Aligner::Count,
        Aligner::NextOlder,
        Aligner::Interpolate,
    ];

    /// The keyword.
    pub fn name(self) -> &'static str {
        match self {
            Aligner::Delta => "delta",
            Aligner::Rate => "rate",
            Aligner::Mean => "mean",
            Aligner::Min => "min",
            Aligner::Max => "max",
            Aligner::Count => "count",
            Aligner::NextOlder => "next_older",
            Aligner::Interpolate => "interpolate",
        }
    }

    /// Parses a keyword.
    pub fn from_name(s: &str) -> Option<Aligner> {
        Aligner::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// The aggregators of `group_by`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Aggregator {
    /// Sum.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Number of values.
    Count,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Population standard deviation.
    Stddev,
    /// The `p`-th percentile (0..=100).
    Percentile(f64),
    /// Merge into one distribution (`aggregate` is an alias).
    Distribution,
}

impl Aggregator {
    /// Names accepted after `group_by [...]`, for hints.
    pub const NAMES: [&'static str; 9] =
        ["sum", "mean", "count", "min", "max", "stddev", "percentile", "distribution", "aggregate"];

    /// The keyword (without argument).
    pub fn name(self) -> &'static str {
        match self {
            Aggregator::Sum => "sum",
            Aggregator::Mean => "mean",
            Aggregator::Count => "count",
            Aggregator::Min => "min",
            Aggregator::Max => "max",
            Aggregator::Stddev => "stddev",
            Aggregator::Percentile(_) => "percentile",
            Aggregator::Distribution => "distribution",
        }
    }
}

/// How `top`/`bottom` rank series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ranker {
    /// Mean of the series' values in the range (the default).
    Mean,
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
    /// Latest value.
    Last,
    /// Sum of the values.
    Sum,
}

impl Ranker {
    /// Every ranker.
    pub const ALL: [Ranker; 5] = [Ranker::Mean, Ranker::Max, Ranker::Min, Ranker::Last, Ranker::Sum];

    /// The keyword.
    pub fn name(self) -> &'static str {
        match self {
            Ranker::Mean => "mean",
            Ranker::Max => "max",
            Ranker::Min => "min",
            Ranker::Last => "last",
            Ranker::Sum => "sum",
        }
    }
}

/// A field reference: `name`, `target.name` or `metric.name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldRef {
    /// `Some("target")` or `Some("metric")` when qualified.
    pub qualifier: Option<Qualifier>,
    /// The field name.
    pub name: String,
    /// Source text.
    pub span: Span,
}

/// Which schema a qualified field name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Qualifier {
    /// `target.NAME`.
    Target,
    /// `metric.NAME`.
    Metric,
}

/// One table operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// `filter EXPR`: keeps the series whose fields satisfy it.
    Filter(Expr),
    /// `align ALIGNER` or `align ALIGNER(WINDOW)`.
    Align {
        /// The aligner.
        aligner: Aligner,
        /// The window, when given.
        window: Option<i64>,
        /// Source text.
        span: Span,
    },
    /// `every PERIOD`: the alignment period of this pipeline.
    Every(i64, Span),
    /// `window DURATION`: the default window of this pipeline's aligners.
    Window(i64, Span),
    /// `value EXPR`: computes a new value for every point.
    Value(Expr),
    /// `group_by [FIELDS], AGGREGATOR`.
    GroupBy {
        /// The fields that stay; the rest are aggregated away.
        fields: Vec<FieldRef>,
        /// The aggregator (`None`: the default for the input).
        aggregator: Option<Aggregator>,
        /// Source text.
        span: Span,
    },
    /// `join`: inner join of the input tables on their common fields.
    Join(Span),
    /// `outer_join DEFAULT[, DEFAULT]`: outer join, missing sides take the
    /// defaults (one per input; one given applies to all).
    OuterJoin(Vec<Literal>, Span),
    /// `union`: all series of all input tables.
    Union(Span),
    /// `top K[, RANKER]` or `bottom K[, RANKER]`.
    Top {
        /// How many series to keep.
        k: u64,
        /// `true` for `bottom`.
        bottom: bool,
        /// The ranking (`None`: mean).
        ranker: Option<Ranker>,
        /// Source text.
        span: Span,
    },
    /// `time_shift DURATION`: moves the data later by the duration.
    TimeShift(i64, Span),
}

impl Op {
    /// The operation's keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Op::Filter(_) => "filter",
            Op::Align { .. } => "align",
            Op::Every(..) => "every",
            Op::Window(..) => "window",
            Op::Value(_) => "value",
            Op::GroupBy { .. } => "group_by",
            Op::Join(_) => "join",
            Op::OuterJoin(..) => "outer_join",
            Op::Union(_) => "union",
            Op::Top { bottom: false, .. } => "top",
            Op::Top { bottom: true, .. } => "bottom",
            Op::TimeShift(..) => "time_shift",
        }
    }
}

/// Every operation keyword, for hints.
pub const OP_KEYWORDS: [&str; 13] = [
    "filter",
    "align",
    "every",
    "window",
    "value",
    "group_by",
    "join",
    "outer_join",
    "union",
    "top",
    "bottom",
    "time_shift",
    "fetch",
];

/// A literal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Literal {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
}

/// An expression with its source text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Source text.
    pub span: Span,
}

/// The kinds of expressions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExprKind {
    /// A literal.
    Lit(Literal),
    /// A field of the series.
    Field(FieldRef),
    /// `val` (the point's value) or `val(I)` (element `I` of a tuple value).
    Val(Option<u32>),
    /// A unary operation.
    Unary(UnOp, Box<Expr>),
    /// A binary operation.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// A function call.
    Call(String, Vec<Expr>),
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnOp {
    /// `!`.
    Not,
    /// `-`.
    Neg,
}

/// Binary operators, loosest first in [`BinOp::precedence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinOp {
    /// `||`.
    Or,
    /// `&&`.
    And,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `=~` (fully anchored regex match).
    Re,
    /// `!~`.
    Nre,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Rem,
}

impl BinOp {
    /// Binding strength: higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Re | BinOp::Nre | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 5,
        }
    }

    /// The operator's text.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Re => "=~",
            BinOp::Nre => "!~",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }

    /// Comparisons do not chain: `a < b < c` is an error.
    pub fn is_comparison(self) -> bool {
        self.precedence() == 3
    }
}
