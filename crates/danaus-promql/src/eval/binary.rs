//! Binary operators: arithmetic, comparisons (filtering or `bool`), and
//! the set operators, with vector matching (`on`, `ignoring`,
//! `group_left`, `group_right`) as Prometheus 2.42 does it.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::{check_unique, El, Ev, Grid, Out};
use crate::error::{Error, Result};
use crate::value::Labels;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl Op {
    fn from(s: &str) -> Result<Op> {
        Ok(match s {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "^" => Op::Pow,
            "atan2" => Op::Atan2,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            "and" => Op::And,
            "or" => Op::Or,
            "unless" => Op::Unless,
            other => return Err(Error::BadData(format!("unknown binary operator {other:?}"))),
        })
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Lt | Op::Ge | Op::Le)
    }

    fn is_set(self) -> bool {
        matches!(self, Op::And | Op::Or | Op::Unless)
    }

    /// `(value, keep)`: the arithmetic result, or for a comparison the
    /// left value and whether the comparison held.
    fn apply(self, l: f64, r: f64) -> (f64, bool) {
        match self {
            Op::Add => (l + r, true),
            Op::Sub => (l - r, true),
            Op::Mul => (l * r, true),
            Op::Div => (l / r, true),
            Op::Mod => (l % r, true),
            Op::Pow => (l.powf(r), true),
            Op::Atan2 => (l.atan2(r), true),
            Op::Eq => (l, l == r),
            Op::Ne => (l, l != r),
            Op::Gt => (l, l > r),
            Op::Lt => (l, l < r),
            Op::Ge => (l, l >= r),
            Op::Le => (l, l <= r),
            Op::And | Op::Or | Op::Unless => (l, true),
        }
    }
}

/// How two vectors' elements are matched.
struct Matching {
    card: VectorMatchCardinality,
    /// `on(...)` when true, `ignoring(...)` (or nothing) when false.
    on: bool,
    labels: Vec<String>,
    include: Vec<String>,
}

impl Matching {
    fn signature(&self, l: &Labels) -> Labels {
        if self.on {
            l.keep(&self.labels)
        } else {
            l.without(&self.labels, true)
        }
    }
}

pub(super) fn eval(ev: &Ev, b: &BinaryExpr, g: Grid) -> Result<Out> {
    let op = Op::from(&b.op.to_string())?;
    let return_bool = b.return_bool();
    let lhs = ev.eval(&b.lhs, g)?;
    let rhs = ev.eval(&b.rhs, g)?;
    match (lhs, rhs) {
        (Out::Scalar(l), Out::Scalar(r)) => {
            if op.is_comparison() && !return_bool {
                return Err(Error::BadData("comparisons between scalars must use BOOL modifier".into()));
            }
            Ok(Out::Scalar(
                l.into_iter()
                    .zip(r)
                    .map(|(l, r)| {
                        let (v, keep) = op.apply(l, r);
                        if op.is_comparison() {
                            f64::from(u8::from(keep))
                        } else {
                            v
                        }
                    })
                    .collect(),
            ))
        }
        (Out::Vector(v), Out::Scalar(s)) => vector_scalar(op, v, &s, false, return_bool, g),
        (Out::Scalar(s), Out::Vector(v)) => vector_scalar(op, v, &s, true, return_bool, g),
        (Out::Vector(l), Out::Vector(r)) => {
            let (on, labels) = match &b.modifier.as_ref().and_then(|m| m.matching.clone()) {
                Some(LabelModifier::Include(ls)) => (true, ls.labels.clone()),
                Some(LabelModifier::Exclude(ls)) => (false, ls.labels.clone()),
                None => (false, Vec::new()),
            };
            let card = b.modifier.as_ref().map_or(
                if op.is_set() { VectorMatchCardinality::ManyToMany } else { VectorMatchCardinality::OneToOne },
                |m| m.card.clone(),
            );
            let include = card.labels().map(|l| l.labels.clone()).unwrap_or_default();
            let m = Matching { card, on, labels, include };
            let mut out = Vec::with_capacity(l.len());
            for (i, (l, r)) in l.into_iter().zip(r).enumerate() {
                let t = g.time(i);
                let mut els = match op {
                    Op::And => and_unless(l, &r, &m, true),
                    Op::Unless => and_unless(l, &r, &m, false),
                    Op::Or => or(l, r, &m),
                    _ => vector_vector(op, l, r, &m, return_bool, t)?,
                };
                els.iter_mut().for_each(|e| e.t = t);
                out.push(els);
            }
            Ok(Out::Vector(out))
        }
        _ => Err(Error::BadData(format!("operator {} does not apply to these operand types", b.op))),
    }
}

fn vector_scalar(op: Op, v: Vec<Vec<El>>, s: &[f64], swap: bool, return_bool: bool, g: Grid) -> Result<Out> {
    if op.is_set() {
        return Err(Error::BadData(format!("set operator {op:?} not allowed in binary scalar expression")));
    }
    let drop_name = !op.is_comparison() || return_bool;
    let mut out = Vec::with_capacity(v.len());
    for (i, els) in v.into_iter().enumerate() {
        let t = g.time(i);
        let x = s[i];
        let mut step = Vec::with_capacity(els.len());
        for e in els {
            let (l, r) = if swap { (x, e.v) } else { (e.v, x) };
            let (mut value, mut keep) = op.apply(l, r);
            // A comparison keeps the vector's value, whichever side it is on.
            if op.is_comparison() && swap {
                value = e.v;
            }
            if return_bool {
                value = f64::from(u8::from(keep));
                keep = true;
            }
            if keep {
                let labels = if drop_name { Arc::new(e.labels.without_name()) } else { e.labels };
                step.push(El { labels, v: value, t });
            }
        }
        check_unique(&step)?;
        out.push(step);
    }
    Ok(Out::Vector(out))
}

fn vector_vector(op: Op, lhs: Vec<El>, rhs: Vec<El>, m: &Matching, return_bool: bool, t: i64) -> Result<Vec<El>> {
    // The "one" side is indexed by signature; group_right swaps sides.
    let (many, one, swapped) = match m.card {
        VectorMatchCardinality::OneToMany(_) => (rhs, lhs, true),
        _ => (lhs, rhs, false),
    };
    let mut right: HashMap<Labels, El> = HashMap::with_capacity_and_hasher(one.len(), Default::default());
    for e in one {
        let sig = m.signature(&e.labels);
        if right.contains_key(&sig) {
            let side = if swapped { "left" } else { "right" };
            return Err(Error::Execution(format!(
                "found duplicate series for the match group {sig} on the {side} hand-side of the operation: [{}];many-to-many matching not allowed: matching labels must be unique on one side",
                e.labels
            )));
        }
        right.insert(sig, e);
    }
    let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
    let mut matched: HashSet<Labels> = HashSet::default();
    let mut seen_out: HashSet<Labels> = HashSet::default();
    let mut out = Vec::new();
    for e in many {
        let sig = m.signature(&e.labels);
        let Some(r) = right.get(&sig) else { continue };
        if one_to_one && !matched.insert(sig.clone()) {
            return Err(Error::Execution(format!(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right); found for {sig}"
            )));
        }
        let (l, rv) = if swapped { (r.v, e.v) } else { (e.v, r.v) };
        let (mut value, mut keep) = op.apply(l, rv);
        if return_bool {
            value = f64::from(u8::from(keep));
            keep = true;
        }
        if !keep {
            continue;
        }
        let labels = result_labels(&e.labels, &r.labels, op, m, return_bool);
        if !one_to_one && !seen_out.insert(labels.clone()) {
            return Err(Error::Execution(
                "multiple matches for labels: grouping labels must ensure unique matches".into(),
            ));
        }
        out.push(El { labels: Arc::new(labels), v: value, t });
    }
    Ok(out)
}

/// Prometheus' `resultMetric`: the "many" side's labels, without the name
/// for arithmetic (or `bool`), narrowed to the matching labels for
/// one-to-one, plus the `group_x` labels taken from the "one" side.
fn result_labels(many: &Labels, one: &Labels, op: Op, m: &Matching, return_bool: bool) -> Labels {
    let mut l = if !op.is_comparison() || return_bool { many.without_name() } else { many.clone() };
    if matches!(m.card, VectorMatchCardinality::OneToOne) {
        l = if m.on { l.keep(&m.labels) } else { l.without(&m.labels, false) };
    }
    for name in &m.include {
        l.set(name, one.get(name));
    }
    l
}

fn and_unless(lhs: Vec<El>, rhs: &[El], m: &Matching, and: bool) -> Vec<El> {
    let sigs: HashSet<Labels> = rhs.iter().map(|e| m.signature(&e.labels)).collect();
    lhs.into_iter().filter(|e| sigs.contains(&m.signature(&e.labels)) == and).collect()
}

fn or(lhs: Vec<El>, rhs: Vec<El>, m: &Matching) -> Vec<El> {
    let sigs: HashSet<Labels> = lhs.iter().map(|e| m.signature(&e.labels)).collect();
    let mut out = lhs;
    out.extend(rhs.into_iter().filter(|e| !sigs.contains(&m.signature(&e.labels))));
    out
}
