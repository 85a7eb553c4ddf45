//! The query language's text form: [`parse`] builds an [`ast::Query`],
//! [`ast::Query`]'s `Display` prints it back in canonical form.

pub mod ast;
mod lexer;
mod parser;
mod print;

pub use lexer::format_duration;
pub use parser::parse;

use ast::Span;

/// A syntax error: what is wrong, where, and the likely fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What is wrong.
    pub message: String,
    /// Where (byte offsets into the query).
    pub span: Span,
    /// The likely fix.
    pub hint: Option<String>,
}

impl ParseError {
    /// An error at `span`.
    pub fn new(message: impl Into<String>, span: Span) -> Self {
        Self { message: message.into(), span, hint: None }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Renders the error against its query: line and column, the line with
    /// a caret under the span, and the hint.
    pub fn render(&self, query: &str) -> String {
        render_at(query, self.span, &self.message, self.hint.as_deref())
    }
}

/// Renders `message` at `span` of `query` (shared with planning errors).
pub fn render_at(query: &str, span: Span, message: &str, hint: Option<&str>) -> String {
    // Spans are byte offsets; never cut a character in two.
    let boundary = |mut i: usize| {
        i = i.min(query.len());
        while !query.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let start = boundary(span.start);
    let span = Span::new(start, boundary(span.end.max(start)));
    let line_start = query[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = query[start..].find('\n').map_or(query.len(), |i| start + i);
    let line_no = query[..start].matches('\n').count() + 1;
    let col = query[line_start..start].chars().count() + 1;
    let width = query[start..span.end.clamp(start, line_end)].chars().count().max(1);
    let mut out = format!(
        "{line_no}:{col}: {message}\n  {}\n  {}{}",
        &query[line_start..line_end],
        " ".repeat(col - 1),
        "^".repeat(width)
    );
    if let Some(h) = hint {
        out.push_str(&format!("\n  hint: {h}"));
    }
    out
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.span.start, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// The closest of `options` to `word` by edit distance, when close enough
/// to be a likely typo.
pub(crate) fn closest<'a>(word: &str, options: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let best = options.into_iter().map(|o| (edit_distance(word, o), o)).min_by_key(|(d, _)| *d)?;
    (best.0 <= 2.max(word.len() / 3) && best.0 < word.len()).then_some(best.1)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
