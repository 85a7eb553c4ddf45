//! Tokens of the query language.
//!
//! The parser pulls tokens one at a time because one token depends on its
//! context: after `::` the lexer reads a metric name (`/rpc/server/latency`),
//! where `/` is part of the name rather than division.

use super::ast::Span;
use super::ParseError;

/// A token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A name or keyword.
    Ident(String),
    /// A metric name after `::`.
    Path(String),
    /// A string literal (unescaped).
    Str(String),
    /// An integer literal.
    Int(i64),
    /// A floating-point literal.
    Float(f64),
    /// A duration literal in nanoseconds (`5m`, `1h30m`, `250ms`).
    Duration(i64),
    /// Punctuation or an operator.
    Sym(&'static str),
    /// End of input.
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Path(s) => format!("metric name `{s}`"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Int(i) => format!("number {i}"),
            Tok::Float(f) => format!("number {f}"),
            Tok::Duration(_) => "a duration".into(),
            Tok::Sym(s) => format!("`{s}`"),
            Tok::Eof => "the end of the query".into(),
        }
    }
}

const SYMBOLS: [&str; 27] = [
    "::", "==", "!=", "=~", "!~", "<=", ">=", "&&", "||", "|", "{", "}", ";", "[", "]", "(", ")", ",", ".", "+", "-",
    "*", "/", "%", "<", ">", "!",
];

/// Duration units, longest first so `ms` wins over `m`.
const UNITS: [(&str, i64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
    ("w", 604_800_000_000_000),
];

/// A pull lexer over the query text.
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// Starts at the beginning of `src`.
    pub fn new(src: &'a str) -> Self {
        Self { src, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn skip_space(&mut self) {
        loop {
            let r = self.rest();
            let trimmed = r.trim_start();
            self.pos += r.len() - trimmed.len();
            if trimmed.starts_with('#') {
                // A comment runs to the end of the line.
                let len = trimmed.find('\n').unwrap_or(trimmed.len());
                self.pos += len;
            } else {
                return;
            }
        }
    }

    /// The next token and its span.
    pub fn next_token(&mut self) -> Result<(Tok, Span), ParseError> {
        self.skip_space();
        let start = self.pos;
        let r = self.rest();
        let Some(c) = r.chars().next() else { return Ok((Tok::Eof, Span::new(start, start))) };
        let tok = if c.is_ascii_alphabetic() || c == '_' {
            let len = r.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(r.len());
            self.pos += len;
            Tok::Ident(r[..len].to_owned())
        } else if c.is_ascii_digit() {
            self.number()?
        } else if c == '"' || c == '\'' {
            self.string(c)?
        } else if let Some(sym) = SYMBOLS.iter().find(|s| r.starts_with(**s)) {
            self.pos += sym.len();
            Tok::Sym(sym)
        } else if c == '=' {
            return Err(ParseError::new("`=` is not an operator", Span::new(start, start + 1))
                .hint("compare with `==`, or match a regular expression with `=~`"));
        } else {
            return Err(ParseError::new(format!("unexpected character {c:?}"), Span::new(start, start + c.len_utf8())));
        };
        Ok((tok, Span::new(start, self.pos)))
    }

    /// Reads a metric name right after `::` (no space allowed before it):
    /// a path (`/rpc/server/latency`) or an identifier as Prometheus names
    /// metrics (`http_requests_total`, `job:errors:rate5m`).
    pub fn path(&mut self) -> Result<(Tok, Span), ParseError> {
        let start = self.pos;
        let r = self.rest();
        let len = if r.starts_with('/') {
            r.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.' | '-'))).unwrap_or(r.len())
        } else if r.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == ':') {
            r.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | ':'))).unwrap_or(r.len())
        } else {
            0
        };
        if len == 0 || r == "/" || (r.starts_with('/') && len == 1) {
            let width = if len > 0 { len } else { r.chars().next().map_or(0, char::len_utf8) };
            return Err(ParseError::new("expected a metric name after `::`", Span::new(start, start + width)).hint(
                "metric names are paths such as `/rpc/server/latency` or names such as `http_requests_total`, \
                 written right after `::`",
            ));
        }
        self.pos += len;
        Ok((Tok::Path(r[..len].to_owned()), Span::new(start, self.pos)))
    }

    fn number(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        let r = self.rest();
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let int_len = digits(r);
        let after = &r[int_len..];
        // A duration: digits followed by a unit, repeated (`1h30m`).
        if unit_at(after).is_some() {
            let mut total: i64 = 0;
            let mut p = 0;
            while p < r.len() && r.as_bytes()[p].is_ascii_digit() {
                let n = digits(&r[p..]);
                let Some((unit, scale)) = unit_at(&r[p + n..]) else {
                    return Err(ParseError::new("a duration part needs a unit", Span::new(start + p, start + p + n))
                        .hint("units are ns, us, ms, s, m, h, d, w, as in `1h30m`"));
                };
                let amount: i64 = r[p..p + n].parse().map_err(|_| too_big(start, start + p + n))?;
                total = amount
                    .checked_mul(scale)
                    .and_then(|v| total.checked_add(v))
                    .ok_or_else(|| too_big(start, start + p + n))?;
                p += n + unit.len();
            }
            if r[p..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ParseError::new("malformed duration", Span::new(start, start + p + 1))
                    .hint("units are ns, us, ms, s, m, h, d, w, as in `1h30m`"));
            }
            self.pos += p;
            return Ok(Tok::Duration(total));
        }
        let mut len = int_len;
        let mut float = false;
        if after.starts_with('.') && after[1..].starts_with(|c: char| c.is_ascii_digit()) {
            float = true;
            len += 1 + digits(&after[1..]);
        }
        let rest = &r[len..];
        if rest.starts_with(['e', 'E']) {
            let sign = usize::from(rest[1..].starts_with(['+', '-']));
            let exp = digits(&rest[1 + sign..]);
            if exp > 0 {
                float = true;
                len += 1 + sign + exp;
            }
        }
        let text = &r[..len];
        self.pos += len;
        if r[len..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ParseError::new(
                format!("unexpected `{}` after number {text}", &r[len..len + 1]),
                Span::new(start, start + len + 1),
            )
            .hint("durations use the units ns, us, ms, s, m, h, d, w"));
        }
        if float {
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Tok::Float(f)),
                Ok(_) => Err(too_big(start, self.pos)),
                Err(_) => Err(ParseError::new("malformed number", Span::new(start, self.pos))),
            }
        } else {
            text.parse().map(Tok::Int).map_err(|_| too_big(start, self.pos))
        }
    }

    fn string(&mut self, quote: char) -> Result<Tok, ParseError> {
        let start = self.pos;
        let mut out = String::new();
        let mut chars = self.rest().char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    self.pos = start + i + 1;
                    return Ok(Tok::Str(out));
                }
                '\\' => {
                    let Some((j, e)) = chars.next() else { break };
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '\\' | '"' | '\'' => out.push(e),
                        'u' => {
                            // \u{HEX}
                            let body = &self.src[start + j + 1..];
                            let close = body.find('}');
                            let ch = match (body.strip_prefix('{'), close) {
                                (Some(_), Some(close)) => {
                                    u32::from_str_radix(&body[1..close], 16).ok().and_then(char::from_u32)
                                }
                                _ => None,
                            };
                            let (Some(ch), Some(close)) = (ch, close) else {
                                return Err(ParseError::new(
                                    "malformed unicode escape",
                                    Span::new(start + j - 1, start + j + 1),
                                )
                                .hint("write it as \\u{1F600}"));
                            };
                            out.push(ch);
                            for _ in 0..close + 1 {
                                chars.next();
                            }
                        }
                        other => {
                            return Err(ParseError::new(
                                format!("unknown escape `\\{other}`"),
                                Span::new(start + j - 1, start + j + other.len_utf8()),
                            )
                            .hint("escapes are \\n \\t \\r \\\\ \\\" \\' and \\u{HEX}"));
                        }
                    }
                }
                c => out.push(c),
            }
        }
        Err(ParseError::new("unterminated string", Span::new(start, self.src.len()))
            .hint(format!("close the string with {quote}")))
    }
}

fn unit_at(s: &str) -> Option<(&'static str, i64)> {
    let (unit, scale) = UNITS.iter().find(|(u, _)| s.starts_with(u))?;
    // `1e6` is a number and `5min` is not a duration: the unit must end there.
    let after = &s[unit.len()..];
    if after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return None;
    }
    Some((unit, *scale))
}

fn too_big(start: usize, end: usize) -> ParseError {
    ParseError::new("number too large", Span::new(start, end)).hint("integers and durations must fit in 64 bits")
}

/// Formats nanoseconds as the shortest duration literal that parses back.
pub fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut left = ns;
    for (unit, scale) in UNITS.iter().rev() {
        // Weeks only when exact, so `10d` does not print as `1w3d`.
        if *unit == "w" && left % scale != 0 {
            continue;
        }
        if left >= *scale {
            out.push_str(&format!("{}{unit}", left / scale));
            left %= scale;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        let mut l = Lexer::new(s);
        let mut out = Vec::new();
        loop {
            let (t, _) = l.next_token().unwrap();
            if t == Tok::Eof {
                return out;
            }
            out.push(t);
        }
    }

    #[test]
    fn numbers_and_durations() {
        assert_eq!(toks("5m"), vec![Tok::Duration(300_000_000_000)]);
        assert_eq!(toks("1h30m"), vec![Tok::Duration(5_400_000_000_000)]);
        assert_eq!(toks("250ms"), vec![Tok::Duration(250_000_000)]);
        assert_eq!(toks("1e6 2.5 7"), vec![Tok::Float(1e6), Tok::Float(2.5), Tok::Int(7)]);
        assert_eq!(toks("1.5e-3"), vec![Tok::Float(1.5e-3)]);
        assert!(Lexer::new("5min").next_token().is_err());
        assert!(Lexer::new("99999999999999999999").next_token().is_err());
        assert!(Lexer::new("9999999999999w").next_token().is_err());
    }

    #[test]
    fn duration_format_round_trips() {
        for ns in [1, 999, 1_000_000, 60_000_000_000, 5_400_000_000_000, 864_000_000_000_000, 604_800_000_000_000] {
            assert_eq!(toks(&format_duration(ns)), vec![Tok::Duration(ns)], "{ns}");
        }
        assert_eq!(format_duration(5_400_000_000_000), "1h30m");
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(toks(r#""a\"b\n" 'c'"#), vec![Tok::Str("a\"b\n".into()), Tok::Str("c".into())]);
        assert_eq!(toks(r#""\u{1F600}x""#), vec![Tok::Str("\u{1F600}x".into())]);
        let e = Lexer::new("\"abc").next_token().unwrap_err();
        assert!(e.message.contains("unterminated"));
    }

    #[test]
    fn metric_names_are_paths_or_identifiers() {
        for name in ["/rpc/server/latency", "http_requests_total", "job:errors:rate5m", "_x"] {
            let mut l = Lexer::new(name);
            assert_eq!(l.path().unwrap().0, Tok::Path(name.into()), "{name}");
        }
        for bad in ["", "/", " /x", "9lives", "-x"] {
            assert!(Lexer::new(bad).path().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn operators_and_comments() {
        assert_eq!(
            toks("a == b # note\n && !c"),
            vec![
                Tok::Ident("a".into()),
                Tok::Sym("=="),
                Tok::Ident("b".into()),
                Tok::Sym("&&"),
                Tok::Sym("!"),
                Tok::Ident("c".into())
            ]
        );
        let e = Lexer::new("a = b").next_token().and_then(|_| Lexer::new("= b").next_token()).unwrap_err();
        assert!(e.hint.unwrap().contains("=="));
    }
}
