//! Expressions of `filter` (over fields) and `value` (over the point's
//! value), compiled against a table's columns and evaluated per series or
//! per point.

use danaus_model::{FieldValue, Value};
use regex::Regex;

use crate::error::{Error, Result};
use crate::syntax::ast::{BinOp, Expr, ExprKind, Literal, Qualifier, UnOp};

/// A compiled expression.
#[derive(Debug, Clone)]
pub enum CExpr {
    /// A constant.
    Const(Value),
    /// Column `i` of the series.
    Field(usize),
    /// The point's value, or element `i` of a tuple value.
    Val(Option<u32>),
    /// Unary operator.
    Unary(UnOp, Box<CExpr>),
    /// Binary operator (not regex).
    Binary(BinOp, Box<CExpr>, Box<CExpr>),
    /// Fully anchored regex match; `negate` for `!~`.
    Regex {
        /// The text matched.
        input: Box<CExpr>,
        /// The compiled regex.
        re: Regex,
        /// `!~`.
        negate: bool,
    },
    /// A function.
    Call(Func, Vec<CExpr>),
}

/// Functions of value expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `double(x)`.
    Double,
    /// `int(x)`: truncates toward zero.
    Int,
    /// `bool(x)`: non-zero is true.
    Bool,
    /// `string(x)`.
    String,
    /// `percentile(dist, p)`.
    Percentile,
    /// `count(dist)`: number of values in a distribution.
    Count,
    /// `mean(dist)`.
    Mean,
    /// `stddev(dist)`.
    Stddev,
    /// `abs(x)`.
    Abs,
    /// `sqrt(x)`.
    Sqrt,
    /// `log(x)`: natural logarithm.
    Log,
    /// `exp(x)`.
    Exp,
    /// `round(x)`.
    Round,
    /// `floor(x)`.
    Floor,
    /// `ceil(x)`.
    Ceil,
    /// `min(a, b)`.
    Min,
    /// `max(a, b)`.
    Max,
}

const FUNCS: [(&str, Func, usize); 17] = [
    ("double", Func::Double, 1),
    ("int", Func::Int, 1),
    ("bool", Func::Bool, 1),
    ("string", Func::String, 1),
    ("percentile", Func::Percentile, 2),
    ("count", Func::Count, 1),
    ("mean", Func::Mean, 1),
    ("stddev", Func::Stddev, 1),
    ("abs", Func::Abs, 1),
    ("sqrt", Func::Sqrt, 1),
    ("log", Func::Log, 1),
    ("exp", Func::Exp, 1),
    ("round", Func::Round, 1),
    ("floor", Func::Floor, 1),
    ("ceil", Func::Ceil, 1),
    ("min", Func::Min, 2),
    ("max", Func::Max, 2),
];

/// Where an expression is used: decides what it may refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// `filter`: fields, no `val`.
    Filter,
    /// `value`: `val`, no fields.
    Value,
}

/// Resolves a field name against the columns. Unqualified names match a
/// column of that name; `metric.x` also matches the column `metric.x`
/// that a metric field gets when the target has a field of the same name.
pub fn resolve_field(columns: &[String], qualifier: Option<Qualifier>, name: &str) -> Option<usize> {
    match qualifier {
        Some(Qualifier::Metric) => {
            let q = format!("metric.{name}");
            columns.iter().position(|c| *c == q).or_else(|| columns.iter().position(|c| c == name))
        }
        _ => columns.iter().position(|c| c == name),
    }
}

/// Compiles `e` for `ctx` against `columns`.
pub fn compile(e: &Expr, columns: &[String], ctx: Context) -> Result<CExpr> {
    Ok(match &e.kind {
        ExprKind::Lit(l) => CExpr::Const(literal_value(l)),
        ExprKind::Field(f) => {
            if ctx == Context::Value {
                return Err(Error::invalid(
                    format!("`value` expressions see the point's value, not fields (found field `{f}`)"),
                    Some(e.span),
                )
                .with_hint("use `val`; to keep series by field, add `| filter …` before"));
            }
            let i = resolve_field(columns, f.qualifier, &f.name).ok_or_else(|| {
                let hint = match crate::syntax::closest(&f.name, columns.iter().map(String::as_str)) {
                    Some(c) => format!("did you mean `{c}`? fields here: {}", columns.join(", ")),
                    None => format!("fields here: {}", columns.join(", ")),
                };
                Error::invalid(format!("unknown field `{f}`"), Some(f.span)).with_hint(hint)
            })?;
            CExpr::Field(i)
        }
        ExprKind::Val(i) => {
            if ctx == Context::Filter {
                return Err(Error::invalid(
                    "`filter` keeps series by their fields; `val` is not available",
                    Some(e.span),
                )
                .with_hint("filter on fields such as `zone == \"us-east1\"`"));
            }
            CExpr::Val(*i)
        }
        ExprKind::Unary(op, inner) => CExpr::Unary(*op, Box::new(compile(inner, columns, ctx)?)),
        ExprKind::Binary(op @ (BinOp::Re | BinOp::Nre), l, r) => {
            let ExprKind::Lit(Literal::Str(pattern)) = &r.kind else {
                return Err(Error::invalid(
                    format!("the right side of `{}` must be a string literal", op.symbol()),
                    Some(r.span),
                )
                .with_hint("write the regular expression as a string, as in `job =~ \"mixer.*\"`"));
            };
            let re =
                regex::RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(1 << 20).build().map_err(|err| {
                    Error::invalid(format!("invalid regular expression {pattern:?}: {err}"), Some(r.span))
                })?;
            CExpr::Regex { input: Box::new(compile(l, columns, ctx)?), re, negate: *op == BinOp::Nre }
        }
        ExprKind::Binary(op, l, r) => {
            CExpr::Binary(*op, Box::new(compile(l, columns, ctx)?), Box::new(compile(r, columns, ctx)?))
        }
        ExprKind::Call(name, args) => {
            let Some(&(_, f, arity)) = FUNCS.iter().find(|(n, _, _)| n == name) else {
                let hint = match crate::syntax::closest(name, FUNCS.iter().map(|(n, _, _)| *n)) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => {
                        format!("functions are {}", FUNCS.iter().map(|(n, _, _)| *n).collect::<Vec<_>>().join(", "))
                    }
                };
                return Err(Error::invalid(format!("unknown function `{name}`"), Some(e.span)).with_hint(hint));
            };
            if args.len() != arity {
                return Err(Error::invalid(
                    format!("`{name}` takes {arity} argument{}, got {}", if arity == 1 { "" } else { "s" }, args.len()),
                    Some(e.span),
                ));
            }
            CExpr::Call(f, args.iter().map(|a| compile(a, columns, ctx)).collect::<Result<_>>()?)
        }
    })
}

/// The value of a literal.
pub fn literal_value(l: &Literal) -> Value {
    match l {
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(i) => Value::Int64(*i),
        Literal::Float(f) => Value::Double(*f),
        Literal::Str(s) => Value::String(s.clone()),
    }
}

fn field_value(v: &FieldValue) -> Value {
    match v {
        FieldValue::Bool(b) => Value::Bool(*b),
        FieldValue::Int64(i) => Value::Int64(*i),
        FieldValue::String(s) => Value::String(s.clone()),
    }
}

/// What an expression can see.
pub struct Env<'a> {
    /// The series' fields.
    pub fields: &'a [FieldValue],
    /// The point's value.
    pub val: Option<&'a Value>,
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int64(i) => Some(*i as f64),
        Value::Double(d) => Some(*d),
        _ => None,
    }
}

impl CExpr {
    /// Evaluates a filter predicate on a series' fields.
    pub fn matches(&self, fields: &[FieldValue]) -> Result<bool> {
        match self.eval(&Env { fields, val: None })? {
            Value::Bool(b) => Ok(b),
            v => Err(Error::Eval(format!("a filter must be true or false, this one gives {}", v.type_name()))),
        }
    }

    /// Evaluates in `env`.
    pub fn eval(&self, env: &Env<'_>) -> Result<Value> {
        Ok(match self {
            CExpr::Const(v) => v.clone(),
            CExpr::Field(i) => {
                env.fields.get(*i).map(field_value).ok_or_else(|| Error::Eval(format!("no column {i}")))?
            }
            CExpr::Val(None) => env.val.cloned().ok_or_else(|| Error::Eval("`val` is not available here".into()))?,
            CExpr::Val(Some(i)) => match env.val {
                Some(Value::Tuple(items)) => items.get(*i as usize).cloned().ok_or_else(|| {
                    Error::Eval(format!("`val({i})` is out of range: the value has {} elements", items.len()))
                })?,
                Some(v) if *i == 0 => v.clone(),
                Some(v) => {
                    return Err(Error::Eval(format!(
                        "`val({i})` on a {} value; only joined tables have several",
                        v.type_name()
                    )))
                }
                None => return Err(Error::Eval("`val` is not available here".into())),
            },
            CExpr::Unary(UnOp::Not, e) => match e.eval(env)? {
                Value::Bool(b) => Value::Bool(!b),
                v => return Err(Error::Eval(format!("`!` needs a bool, got {}", v.type_name()))),
            },
            CExpr::Unary(UnOp::Neg, e) => match e.eval(env)? {
                Value::Int64(i) => {
                    Value::Int64(i.checked_neg().ok_or_else(|| Error::Eval(format!("-({i}) overflows int64")))?)
                }
                Value::Double(d) => Value::Double(-d),
                v => return Err(Error::Eval(format!("`-` needs a number, got {}", v.type_name()))),
            },
            CExpr::Regex { input, re, negate } => {
                let text = match input.eval(env)? {
                    Value::String(s) => s,
                    Value::Int64(i) => i.to_string(),
                    Value::Bool(b) => b.to_string(),
                    v => return Err(Error::Eval(format!("`=~` needs a string, got {}", v.type_name()))),
                };
                Value::Bool(re.is_match(&text) != *negate)
            }
            CExpr::Binary(BinOp::And, l, r) => {
                Value::Bool(bool_of(l.eval(env)?, "&&")? && bool_of(r.eval(env)?, "&&")?)
            }
            CExpr::Binary(BinOp::Or, l, r) => Value::Bool(bool_of(l.eval(env)?, "||")? || bool_of(r.eval(env)?, "||")?),
            CExpr::Binary(op, l, r) => binary(*op, l.eval(env)?, r.eval(env)?)?,
            CExpr::Call(f, args) => {
                let vals = args.iter().map(|a| a.eval(env)).collect::<Result<Vec<_>>>()?;
                call(*f, vals)?
            }
        })
    }
}

fn bool_of(v: Value, op: &str) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(b),
        v => Err(Error::Eval(format!("`{op}` needs bools, got {}", v.type_name()))),
    }
}

fn binary(op: BinOp, l: Value, r: Value) -> Result<Value> {
    use std::cmp::Ordering;
    if op.is_comparison() {
        let ord = match (&l, &r) {
            (Value::Int64(a), Value::Int64(b)) => Some(a.cmp(b)),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            _ => match (as_f64(&l), as_f64(&r)) {
                (Some(a), Some(b)) => a.partial_cmp(&b),
                _ => {
                    return Err(Error::Eval(format!(
                        "cannot compare {} with {} using `{}`",
                        l.type_name(),
                        r.type_name(),
                        op.symbol()
                    )))
                }
            },
        };
        // NaN compares false with everything, and unequal.
        return Ok(Value::Bool(match (op, ord) {
            (BinOp::Ne, None) => true,
            (_, None) => false,
            (BinOp::Eq, Some(o)) => o == Ordering::Equal,
            (BinOp::Ne, Some(o)) => o != Ordering::Equal,
            (BinOp::Lt, Some(o)) => o == Ordering::Less,
            (BinOp::Le, Some(o)) => o != Ordering::Greater,
            (BinOp::Gt, Some(o)) => o == Ordering::Greater,
            (BinOp::Ge, Some(o)) => o != Ordering::Less,
            _ => unreachable!("comparison operators only"),
        }));
    }
    let overflow = |a: &dyn std::fmt::Display, b: &dyn std::fmt::Display| {
        Error::Eval(format!("{a} {} {b} overflows int64; convert with double(val) first", op.symbol()))
    };
    match (&l, &r) {
        (Value::Int64(a), Value::Int64(b)) if op != BinOp::Div => {
            let (a, b) = (*a, *b);
            let v = match op {
                BinOp::Add => a.checked_add(b),
                BinOp::Sub => a.checked_sub(b),
                BinOp::Mul => a.checked_mul(b),
                BinOp::Rem if b == 0 => return Err(Error::Eval(format!("{a} % 0: remainder by zero"))),
                BinOp::Rem => a.checked_rem(b),
                _ => unreachable!("arithmetic operators only"),
            };
            v.map(Value::Int64).ok_or_else(|| overflow(&a, &b))
        }
        (Value::String(a), Value::String(b)) if op == BinOp::Add => Ok(Value::String(format!("{a}{b}"))),
        _ => match (as_f64(&l), as_f64(&r)) {
            (Some(a), Some(b)) => Ok(Value::Double(match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => a / b,
                BinOp::Rem => a % b,
                _ => unreachable!("arithmetic operators only"),
            })),
            _ => Err(Error::Eval(format!(
                "`{}` needs numbers, got {} and {}",
                op.symbol(),
                l.type_name(),
                r.type_name()
            ))),
        },
    }
}

fn num(v: &Value, f: &str) -> Result<f64> {
    match v {
        Value::Bool(b) => Ok(f64::from(u8::from(*b))),
        v => as_f64(v).ok_or_else(|| Error::Eval(format!("`{f}` needs a number, got {}", v.type_name()))),
    }
}

fn dist<'a>(v: &'a Value, f: &str) -> Result<&'a danaus_model::Distribution> {
    match v {
        Value::Distribution(d) => Ok(d),
        v => Err(Error::Eval(format!("`{f}` needs a distribution, got {}", v.type_name()))),
    }
}

fn call(f: Func, mut args: Vec<Value>) -> Result<Value> {
    let a = args.swap_remove(0);
    Ok(match f {
        Func::Double => Value::Double(num(&a, "double")?),
        Func::Int => match a {
            Value::Int64(i) => Value::Int64(i),
            Value::Bool(b) => Value::Int64(i64::from(b)),
            Value::Double(d) if d.is_finite() && d.abs() < 9.2e18 => Value::Int64(d.trunc() as i64),
            Value::Double(d) => return Err(Error::Eval(format!("int({d}): not representable as int64"))),
            Value::String(s) => {
                Value::Int64(s.trim().parse().map_err(|_| Error::Eval(format!("int({s:?}): not an integer")))?)
            }
            v => return Err(Error::Eval(format!("`int` needs a number, got {}", v.type_name()))),
        },
        Func::Bool => match a {
            Value::Bool(b) => Value::Bool(b),
            v => Value::Bool(num(&v, "bool")? != 0.0),
        },
        Func::String => Value::String(match a {
            Value::String(s) => s,
            Value::Int64(i) => i.to_string(),
            Value::Double(d) => d.to_string(),
            Value::Bool(b) => b.to_string(),
            v => return Err(Error::Eval(format!("`string` needs a scalar, got {}", v.type_name()))),
        }),
        Func::Percentile => {
            let p = num(&args[0], "percentile")?;
            if !(0.0..=100.0).contains(&p) {
                return Err(Error::Eval(format!("percentile {p} is outside 0..100")));
            }
            Value::Double(dist(&a, "percentile")?.percentile(p))
        }
        Func::Count => Value::Int64(dist(&a, "count")?.count as i64),
        Func::Mean => Value::Double(dist(&a, "mean")?.mean),
        Func::Stddev => Value::Double(dist(&a, "stddev")?.variance().sqrt()),
        Func::Abs => match a {
            Value::Int64(i) => {
                Value::Int64(i.checked_abs().ok_or_else(|| Error::Eval(format!("abs({i}) overflows int64")))?)
            }
            v => Value::Double(num(&v, "abs")?.abs()),
        },
        Func::Sqrt => Value::Double(num(&a, "sqrt")?.sqrt()),
        Func::Log => Value::Double(num(&a, "log")?.ln()),
        Func::Exp => Value::Double(num(&a, "exp")?.exp()),
        Func::Round => Value::Double(num(&a, "round")?.round()),
        Func::Floor => Value::Double(num(&a, "floor")?.floor()),
        Func::Ceil => Value::Double(num(&a, "ceil")?.ceil()),
        Func::Min | Func::Max => {
            let b = &args[0];
            match (&a, b) {
                (Value::Int64(x), Value::Int64(y)) => Value::Int64(if f == Func::Min { *x.min(y) } else { *x.max(y) }),
                _ => {
                    let (x, y) = (num(&a, "min/max")?, num(b, "min/max")?);
                    Value::Double(if f == Func::Min { x.min(y) } else { x.max(y) })
                }
            }
        }
    })
}
