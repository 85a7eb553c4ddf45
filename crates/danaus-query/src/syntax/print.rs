//! Canonical printing: `parse(q.to_string()) == q` for every parsed query.

use std::fmt::{self, Display, Formatter, Write};

use super::ast::*;
use super::lexer::format_duration;

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.pipeline.fmt(f)
    }
}

impl Display for Pipeline {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Fetch { target, metric, .. } => write!(f, "fetch {target}::{metric}")?,
            Source::Tables { inputs, .. } => {
                f.write_str("{ ")?;
                for (i, p) in inputs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ; ")?;
                    }
                    p.fmt(f)?;
                }
                f.write_str(" }")?;
            }
        }
        for op in &self.ops {
            write!(f, " | {op}")?;
        }
        Ok(())
    }
}

impl Display for Op {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Op::Filter(e) => write!(f, "filter {e}"),
            Op::Value(e) => write!(f, "value {e}"),
            Op::Align { aligner, window: None, .. } => write!(f, "align {}", aligner.name()),
            Op::Align { aligner, window: Some(w), .. } => {
                write!(f, "align {}({})", aligner.name(), format_duration(*w))
            }
            Op::Every(d, _) => write!(f, "every {}", format_duration(*d)),
            Op::Window(d, _) => write!(f, "window {}", format_duration(*d)),
            Op::TimeShift(d, _) => write!(f, "time_shift {}", format_duration(*d)),
            Op::GroupBy { fields, aggregator, .. } => {
                f.write_str("group_by [")?;
                for (i, fr) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    fr.fmt(f)?;
                }
                f.write_char(']')?;
                match aggregator {
                    None => Ok(()),
                    Some(Aggregator::Percentile(p)) => write!(f, ", percentile({})", Literal::Float(*p)),
                    Some(a) => write!(f, ", {}", a.name()),
                }
            }
            Op::Join(_) => f.write_str("join"),
            Op::Union(_) => f.write_str("union"),
            Op::OuterJoin(defaults, _) => {
                f.write_str("outer_join ")?;
                for (i, d) in defaults.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    d.fmt(f)?;
                }
                Ok(())
            }
            Op::Top { k, bottom, ranker, .. } => {
                write!(f, "{} {k}", if *bottom { "bottom" } else { "top" })?;
                if let Some(r) = ranker {
                    write!(f, ", {}", r.name())?;
                }
                Ok(())
            }
        }
    }
}

impl Display for FieldRef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.qualifier {
            Some(Qualifier::Target) => write!(f, "target.{}", self.name),
            Some(Qualifier::Metric) => write!(f, "metric.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Int(i) => write!(f, "{i}"),
            // `{:?}` prints the shortest text that parses back to the same
            // bits, and always with a `.` or exponent, so it stays a float.
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::Str(s) => write_string(f, s),
        }
    }
}

/// Writes `s` as a double-quoted string literal.
pub fn write_string(f: &mut impl Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Lit(l) => l.fmt(f),
            ExprKind::Field(fr) => fr.fmt(f),
            ExprKind::Val(None) => f.write_str("val"),
            ExprKind::Val(Some(i)) => write!(f, "val({i})"),
            ExprKind::Unary(op, inner) => {
                f.write_str(match op {
                    UnOp::Not => "!",
                    UnOp::Neg => "-",
                })?;
                if matches!(inner.kind, ExprKind::Binary(..)) {
                    write!(f, "({inner})")
                } else {
                    inner.fmt(f)
                }
            }
            ExprKind::Binary(op, l, r) => {
                let p = op.precedence();
                // Left-associative: the left child needs parentheses only
                // when looser; the right one also when equally tight.
                let paren = |e: &Expr, strict: bool| match &e.kind {
                    ExprKind::Binary(o, ..) => o.precedence() < p || (strict && o.precedence() == p),
                    _ => false,
                };
                // Comparisons do not chain, so equal tightness needs
                // parentheses on both sides.
                if paren(l, op.is_comparison()) {
                    write!(f, "({l})")?;
                } else {
                    l.fmt(f)?;
                }
                write!(f, " {} ", op.symbol())?;
                if paren(r, true) {
                    write!(f, "({r})")
                } else {
                    r.fmt(f)
                }
            }
            ExprKind::Call(name, args) => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    a.fmt(f)?;
                }
                f.write_char(')')
            }
        }
    }
}
