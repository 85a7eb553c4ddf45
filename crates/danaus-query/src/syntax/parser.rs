//! Recursive-descent parser. Grammar (docs/query-language.md has it with
//! examples):
//!
//! ```text
//! query    := pipeline EOF
//! pipeline := source ('|' op)*
//! source   := 'fetch' IDENT '::' METRIC | '{' pipeline (';' pipeline)* '}'
//! METRIC   := a path (`/rpc/latency`) or an identifier (`http_requests_total`)
//! op       := 'filter' expr | 'align' IDENT ('(' DURATION ')')? | 'every' DURATION
//!           | 'window' DURATION | 'value' expr
//!           | 'group_by' '[' (field (',' field)*)? ']' (',' IDENT ('(' number ')')?)?
//!           | 'join' | 'outer_join' literal (',' literal)* | 'union'
//!           | ('top' | 'bottom') INT (',' IDENT)? | 'time_shift' DURATION
//! expr     := binary expressions over unary ('!' | '-') and primaries,
//!             precedence || < && < comparisons < + - < * / %
//! primary  := literal | 'val' ('(' INT ')')? | field | IDENT '(' args ')' | '(' expr ')'
//! field    := IDENT | ('target' | 'metric') '.' IDENT
//! ```

use super::ast::*;
use super::lexer::{Lexer, Tok};
use super::{closest, ParseError};

/// Expressions nest at most this deep (a guard against stack overflow).
const MAX_DEPTH: usize = 64;

/// Parses a query.
pub fn parse(src: &str) -> Result<Query, ParseError> {
    let mut p = Parser::new(src)?;
    let pipeline = p.pipeline(0)?;
    if p.tok != Tok::Eof {
        let hint = match &p.tok {
            Tok::Ident(s) if super::ast::OP_KEYWORDS.contains(&s.as_str()) => {
                format!("separate operations with `|`, as in `| {s} …`")
            }
            Tok::Sym(";") | Tok::Sym("}") => "`;` and `}` belong inside `{ … ; … }`".into(),
            _ => "each operation starts with `|`".into(),
        };
        return Err(p.unexpected("`|` or the end of the query").hint(hint));
    }
    Ok(Query { pipeline })
}

struct Parser<'a> {
    lex: Lexer<'a>,
    tok: Tok,
    span: Span,
    prev_end: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Result<Self, ParseError> {
        let mut lex = Lexer::new(src);
        let (tok, span) = lex.next_token()?;
        Ok(Self { lex, tok, span, prev_end: 0 })
    }

    fn bump(&mut self) -> Result<(Tok, Span), ParseError> {
        let (next, span) = self.lex.next_token()?;
        self.prev_end = self.span.end;
        let tok = std::mem::replace(&mut self.tok, next);
        Ok((tok, std::mem::replace(&mut self.span, span)))
    }

    fn unexpected(&self, wanted: &str) -> ParseError {
        ParseError::new(format!("expected {wanted}, found {}", self.tok.describe()), self.span)
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.tok, Tok::Sym(t) if t == s)
    }

    fn eat_sym(&mut self, s: &str) -> Result<bool, ParseError> {
        if self.is_sym(s) {
            self.bump()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn expect_sym(&mut self, s: &str, hint: &str) -> Result<Span, ParseError> {
        if self.is_sym(s) {
            Ok(self.bump()?.1)
        } else {
            Err(self.unexpected(&format!("`{s}`")).hint(hint))
        }
    }

    fn ident(&mut self, what: &str) -> Result<(String, Span), ParseError> {
        match &self.tok {
            Tok::Ident(_) => match self.bump()? {
                (Tok::Ident(s), span) => Ok((s, span)),
                _ => unreachable!("checked above"),
            },
            _ => Err(self.unexpected(what)),
        }
    }

    fn duration(&mut self, after: &str) -> Result<(i64, Span), ParseError> {
        match self.tok {
            Tok::Duration(d) => {
                let span = self.bump()?.1;
                Ok((d, span))
            }
            Tok::Int(n) => Err(self
                .unexpected(&format!("a duration after `{after}`"))
                .hint(format!("add a unit, as in `{n}s` or `{n}m`"))),
            _ => Err(self
                .unexpected(&format!("a duration after `{after}`"))
                .hint("durations look like `30s`, `5m`, `1h30m`")),
        }
    }

    fn pipeline(&mut self, depth: usize) -> Result<Pipeline, ParseError> {
        if depth > MAX_DEPTH {
            return Err(ParseError::new("query nests too deeply", self.span).hint("split it into simpler queries"));
        }
        let source = self.source(depth)?;
        let mut ops = Vec::new();
        while self.eat_sym("|")? {
            ops.push(self.op()?);
        }
        Ok(Pipeline { source, ops })
    }

    fn source(&mut self, depth: usize) -> Result<Source, ParseError> {
        let start = self.span;
        if self.eat_sym("{")? {
            let mut inputs = vec![self.pipeline(depth + 1)?];
            while self.eat_sym(";")? {
                inputs.push(self.pipeline(depth + 1)?);
            }
            let end = self.expect_sym("}", "separate the inputs with `;` and close them with `}`")?;
            return Ok(Source::Tables { inputs, span: start.to(end) });
        }
        match &self.tok {
            Tok::Ident(s) if s == "fetch" => {}
            Tok::Ident(s) => {
                let hint = match closest(s, ["fetch"]) {
                    Some(_) => "did you mean `fetch`?".to_owned(),
                    None => "a query starts with `fetch Target::/metric` or `{ … ; … }`".to_owned(),
                };
                return Err(self.unexpected("`fetch` or `{`").hint(hint));
            }
            _ => {
                return Err(self.unexpected("`fetch` or `{`").hint("a query starts with `fetch Target::/metric`"));
            }
        }
        self.bump()?;
        let (target, _) = self
            .ident("a target schema name after `fetch`")
            .map_err(|e| e.hint("write `fetch Target::/metric/name`"))?;
        if !self.is_sym("::") {
            return Err(self.unexpected("`::` after the target schema").hint("write `fetch Target::/metric/name`"));
        }
        // The lexer reads one token ahead, so it sits right after `::`: the
        // path must follow directly.
        let (path, span) = self.lex.path()?;
        let Tok::Path(metric) = path else { unreachable!("path() returns Path") };
        self.prev_end = span.end;
        let (next, nspan) = self.lex.next_token()?;
        self.tok = next;
        self.span = nspan;
        Ok(Source::Fetch { target, metric, span: start.to(span) })
    }

    fn op(&mut self) -> Result<Op, ParseError> {
        let (name, span) = match &self.tok {
            Tok::Ident(_) => self.ident("an operation")?,
            _ => {
                return Err(self
                    .unexpected("an operation after `|`")
                    .hint(format!("operations are {}", OP_KEYWORDS[..12].join(", "))))
            }
        };
        Ok(match name.as_str() {
            "filter" => Op::Filter(self.expr(0)?),
            "value" => Op::Value(self.expr(0)?),
            "align" => {
                let (a, aspan) = self.ident("an aligner after `align`").map_err(|e| e.hint(aligner_hint()))?;
                let Some(aligner) = Aligner::from_name(&a) else {
                    let mut e = ParseError::new(format!("unknown aligner `{a}`"), aspan);
                    e = match closest(&a, Aligner::ALL.iter().map(|a| a.name())) {
                        Some(c) => e.hint(format!("did you mean `{c}`? {}", aligner_hint())),
                        None => e.hint(aligner_hint()),
                    };
                    return Err(e);
                };
                let mut window = None;
                let mut end = aspan;
                if self.eat_sym("(")? {
                    window = Some(self.duration(a.as_str())?.0);
                    end = self.expect_sym(")", "close the window with `)`")?;
                }
                Op::Align { aligner, window, span: span.to(end) }
            }
            "every" => {
                let (d, e) = self.duration("every")?;
                positive(d, e, "every")?;
                Op::Every(d, span.to(e))
            }
            "window" => {
                let (d, e) = self.duration("window")?;
                positive(d, e, "window")?;
                Op::Window(d, span.to(e))
            }
            "time_shift" => {
                let (d, e) = self.duration("time_shift")?;
                Op::TimeShift(d, span.to(e))
            }
            "group_by" => self.group_by(span)?,
            "join" => Op::Join(span),
            "union" => Op::Union(span),
            "outer_join" => {
                let mut defaults = vec![self.literal("a default value after `outer_join`")?];
                while self.eat_sym(",")? {
                    defaults.push(self.literal("a default value")?);
                }
                Op::OuterJoin(defaults, span.to(Span::new(self.prev_end, self.prev_end)))
            }
            "top" | "bottom" => {
                let k = match self.tok {
                    Tok::Int(k) if k > 0 => {
                        self.bump()?;
                        k as u64
                    }
                    _ => {
                        return Err(self
                            .unexpected(&format!("a positive count after `{name}`"))
                            .hint(format!("as in `{name} 5`")))
                    }
                };
                let mut ranker = None;
                if self.eat_sym(",")? {
                    let (r, rspan) = self.ident("a ranking (mean, max, min, last, sum)")?;
                    ranker = Some(Ranker::ALL.into_iter().find(|x| x.name() == r).ok_or_else(|| {
                        ParseError::new(format!("unknown ranking `{r}`"), rspan)
                            .hint("rank by mean, max, min, last or sum")
                    })?);
                }
                Op::Top { k, bottom: name == "bottom", ranker, span: span.to(Span::new(self.prev_end, self.prev_end)) }
            }
            other => {
                let mut e = ParseError::new(format!("unknown operation `{other}`"), span);
                e = match closest(other, OP_KEYWORDS) {
                    Some(c) => e.hint(format!("did you mean `{c}`?")),
                    None => e.hint(format!("operations are {}", OP_KEYWORDS[..12].join(", "))),
                };
                return Err(e);
            }
        })
    }

    fn group_by(&mut self, start: Span) -> Result<Op, ParseError> {
        self.expect_sym("[", "list the fields to keep, as in `group_by [zone], sum` (`[]` for none)")?;
        let mut fields = Vec::new();
        if !self.is_sym("]") {
            fields.push(self.field()?);
            while self.eat_sym(",")? {
                fields.push(self.field()?);
            }
        }
        let mut end = self.expect_sym("]", "separate fields with `,` and close the list with `]`")?;
        let mut aggregator = None;
        if self.eat_sym(",")? {
            let (a, aspan) = self.ident("an aggregator")?;
            end = aspan;
            aggregator = Some(match a.as_str() {
                "sum" => Aggregator::Sum,
                "mean" => Aggregator::Mean,
                "count" => Aggregator::Count,
                "min" => Aggregator::Min,
                "max" => Aggregator::Max,
                "stddev" => Aggregator::Stddev,
                "distribution" | "aggregate" => Aggregator::Distribution,
                "percentile" => {
                    self.expect_sym("(", "give the percentile, as in `percentile(99)`")?;
                    let p = self.number("a percentile between 0 and 100")?;
                    end = self.expect_sym(")", "close with `)`")?;
                    if !(0.0..=100.0).contains(&p) {
                        return Err(ParseError::new(format!("percentile {p} is outside 0..100"), aspan.to(end))
                            .hint("use a value such as 50, 99 or 99.9"));
                    }
                    Aggregator::Percentile(p)
                }
                other => {
                    let mut e = ParseError::new(format!("unknown aggregator `{other}`"), aspan);
                    e = match closest(other, Aggregator::NAMES) {
                        Some(c) => e.hint(format!("did you mean `{c}`?")),
                        None => e.hint(format!("aggregators are {}", Aggregator::NAMES.join(", "))),
                    };
                    return Err(e);
                }
            });
        }
        Ok(Op::GroupBy { fields, aggregator, span: start.to(end) })
    }

    fn number(&mut self, what: &str) -> Result<f64, ParseError> {
        let v = match self.tok {
            Tok::Int(i) => i as f64,
            Tok::Float(f) => f,
            _ => return Err(self.unexpected(what)),
        };
        self.bump()?;
        Ok(v)
    }

    fn literal(&mut self, what: &str) -> Result<Literal, ParseError> {
        let neg = self.eat_sym("-")?;
        let lit = match &self.tok {
            Tok::Int(i) => Literal::Int(if neg { i.wrapping_neg() } else { *i }),
            Tok::Float(f) => Literal::Float(if neg { -f } else { *f }),
            Tok::Str(s) if !neg => Literal::Str(s.clone()),
            Tok::Ident(s) if !neg && s == "true" => Literal::Bool(true),
            Tok::Ident(s) if !neg && s == "false" => Literal::Bool(false),
            _ => return Err(self.unexpected(what).hint("a literal: a number, a string or true/false")),
        };
        self.bump()?;
        Ok(lit)
    }

    fn field(&mut self) -> Result<FieldRef, ParseError> {
        let (name, span) = self.ident("a field name")?;
        if (name == "target" || name == "metric") && self.is_sym(".") {
            self.bump()?;
            let (inner, ispan) = self.ident("a field name after `.`")?;
            let qualifier = if name == "target" { Qualifier::Target } else { Qualifier::Metric };
            return Ok(FieldRef { qualifier: Some(qualifier), name: inner, span: span.to(ispan) });
        }
        Ok(FieldRef { qualifier: None, name, span })
    }

    fn binop(&self) -> Option<BinOp> {
        let Tok::Sym(s) = self.tok else { return None };
        Some(match s {
            "||" => BinOp::Or,
            "&&" => BinOp::And,
            "==" => BinOp::Eq,
            "!=" => BinOp::Ne,
            "=~" => BinOp::Re,
            "!~" => BinOp::Nre,
            "<" => BinOp::Lt,
            "<=" => BinOp::Le,
            ">" => BinOp::Gt,
            ">=" => BinOp::Ge,
            "+" => BinOp::Add,
            "-" => BinOp::Sub,
            "*" => BinOp::Mul,
            "/" => BinOp::Div,
            "%" => BinOp::Rem,
            _ => return None,
        })
    }

    /// Precedence climbing: parses operators binding tighter than `min`.
    fn expr(&mut self, depth: usize) -> Result<Expr, ParseError> {
        self.expr_bp(0, depth)
    }

    fn expr_bp(&mut self, min: u8, depth: usize) -> Result<Expr, ParseError> {
        if depth > MAX_DEPTH {
            return Err(ParseError::new("expression nests too deeply", self.span).hint("simplify the expression"));
        }
        let mut lhs = self.unary(depth)?;
        while let Some(op) = self.binop() {
            let prec = op.precedence();
            if prec <= min {
                break;
            }
            let op_span = self.bump()?.1;
            let rhs = self.expr_bp(prec, depth + 1)?;
            if op.is_comparison() {
                if let Some(next) = self.binop().filter(|n| n.is_comparison()) {
                    return Err(ParseError::new(
                        format!("comparisons do not chain (`{}` after `{}`)", next.symbol(), op.symbol()),
                        self.span,
                    )
                    .hint("combine comparisons with `&&`, as in `a < b && b < c`"));
                }
            }
            let _ = op_span;
            let span = lhs.span.to(rhs.span);
            lhs = Expr { kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span };
        }
        if let Tok::Ident(w) = &self.tok {
            if w == "and" || w == "or" || w == "not" {
                let sym = match w.as_str() {
                    "and" => "&&",
                    "or" => "||",
                    _ => "!",
                };
                return Err(self.unexpected("an operator").hint(format!("write `{sym}` instead of `{w}`")));
            }
        }
        Ok(lhs)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, ParseError> {
        if depth > MAX_DEPTH {
            return Err(ParseError::new("expression nests too deeply", self.span).hint("simplify the expression"));
        }
        let start = self.span;
        let op = if self.is_sym("!") {
            Some(UnOp::Not)
        } else if self.is_sym("-") {
            Some(UnOp::Neg)
        } else {
            None
        };
        if let Some(op) = op {
            self.bump()?;
            let inner = self.unary(depth + 1)?;
            let span = start.to(inner.span);
            return Ok(Expr { kind: ExprKind::Unary(op, Box::new(inner)), span });
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let start = self.span;
        let kind = match self.tok.clone() {
            Tok::Int(i) => {
                self.bump()?;
                ExprKind::Lit(Literal::Int(i))
            }
            Tok::Float(f) => {
                self.bump()?;
                ExprKind::Lit(Literal::Float(f))
            }
            Tok::Str(s) => {
                self.bump()?;
                ExprKind::Lit(Literal::Str(s))
            }
            Tok::Duration(_) => {
                return Err(self
                    .unexpected("a value")
                    .hint("durations only appear after align, every, window and time_shift"));
            }
            Tok::Sym("(") => {
                self.bump()?;
                let inner = self.expr(depth + 1)?;
                let end = self.expect_sym(")", "close the parenthesis")?;
                return Ok(Expr { kind: inner.kind, span: start.to(end) });
            }
            Tok::Ident(name) => match name.as_str() {
                "true" | "false" => {
                    self.bump()?;
                    ExprKind::Lit(Literal::Bool(name == "true"))
                }
                "val" => {
                    self.bump()?;
                    if self.eat_sym("(")? {
                        let idx = match self.tok {
                            Tok::Int(i) if (0..=u32::MAX as i64).contains(&i) => i as u32,
                            _ => {
                                return Err(self
                                    .unexpected("a tuple index")
                                    .hint("`val(0)` is the first value of a joined table"))
                            }
                        };
                        self.bump()?;
                        let end = self.expect_sym(")", "close with `)`")?;
                        return Ok(Expr { kind: ExprKind::Val(Some(idx)), span: start.to(end) });
                    }
                    ExprKind::Val(None)
                }
                _ => {
                    let f = self.field()?;
                    if f.qualifier.is_none() && self.is_sym("(") {
                        self.bump()?;
                        let mut args = Vec::new();
                        if !self.is_sym(")") {
                            args.push(self.expr(depth + 1)?);
                            while self.eat_sym(",")? {
                                args.push(self.expr(depth + 1)?);
                            }
                        }
                        let end = self.expect_sym(")", "separate arguments with `,` and close with `)`")?;
                        return Ok(Expr { kind: ExprKind::Call(f.name, args), span: start.to(end) });
                    }
                    let span = f.span;
                    return Ok(Expr { kind: ExprKind::Field(f), span });
                }
            },
            _ => return Err(self.unexpected("a value, field or `(`")),
        };
        Ok(Expr { kind, span: start.to(Span::new(self.prev_end, self.prev_end)) })
    }
}

fn positive(d: i64, span: Span, what: &str) -> Result<(), ParseError> {
    if d <= 0 {
        return Err(ParseError::new(format!("`{what}` needs a positive duration"), span).hint("as in `1m`"));
    }
    Ok(())
}

fn aligner_hint() -> String {
    format!("aligners are {}", Aligner::ALL.iter().map(|a| a.name()).collect::<Vec<_>>().join(", "))
}
