//! Go's `text/template` language with Prometheus' template functions, as
//! Prometheus 2.42 (built with Go 1.19) expands alert labels and
//! annotations.
//!
//! A template is lexed and parsed into a tree exactly as Go's
//! `text/template/parse` does (same tokens, same trim-marker rules, same
//! error texts and line numbers), then walked against a [`Value`] the way
//! `text/template`'s executor walks a Go value through reflection. Go's
//! static types matter to the output (an `int` literal never equals a
//! `float64`, a missing `map[string]string` key is `""` but a missing
//! `map[string]interface {}` key is `<no value>`), so [`Value`] carries one
//! variant per Go type a Prometheus template can meet, and every function
//! declares its Go signature so arguments are checked and converted as
//! Go's `evalArg`/`validateType` do. Printing follows Go's `fmt` package
//! (`%v` of a `float64` is `strconv.FormatFloat(v, 'g', -1, 64)`, maps print
//! `map[k:v]` sorted by key, `printf` verbs, flags and `%!d(string=x)`
//! complaints).
//!
//! Execution errors carry Go's location and context:
//! `template: NAME:LINE:COL: executing "NAME" at <NODE>: MESSAGE`, where the
//! node is the one Go's executor last visited, so the column and the
//! `<...>` part match what Prometheus prints.
//!
//! Known differences from Go (none reachable from ordinary alert templates):
//! complex-number constants are rejected at parse time; Go pointers compare
//! by identity while [`Value::Sample`] and [`Value::Time`] compare by
//! content in `eq`; printed pointers (`{{ query "x" }}`) show made-up
//! addresses; regular expressions are rewritten from RE2's syntax into
//! Rust's `regex` (same matches; the rarer syntax errors may be worded
//! differently from RE2's); `strings.Title`, `ToUpper` and `ToLower` use Rust's Unicode
//! tables, taking Go's single-rune mappings where they differ; parentheses
//! and `if`/`range`/`with` nest at most 100 deep and `{{template}}` calls
//! recurse at most 150 deep (Go: 10000, unlimited, 100000), so a template
//! cannot overflow the evaluator's stack.

use std::collections::BTreeMap;

/// A value a template sees or computes, one variant per Go type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Go's untyped `nil`: a missing value. An action prints it as
    /// `<no value>`, `fmt` as `<nil>`.
    Nil,
    /// A Go `bool`.
    Bool(bool),
    /// A Go `int`.
    Int(i64),
    /// A Go `float64`.
    Float(f64),
    /// A Go `string`.
    Str(String),
    /// An `html/template.HTML` (what `safeHtml` returns): a string that Go
    /// does not accept where a `string` is expected.
    Html(String),
    /// A `map[string]interface {}` (what `args` returns); a missing key
    /// reads as [`Value::Nil`].
    Map(BTreeMap<String, Value>),
    /// A `map[string]string` (label sets); a missing key reads as `""`.
    StrMap(BTreeMap<String, String>),
    /// A `[]interface {}`.
    List(Vec<Value>),
    /// A `template.queryResult`: what `query` returns.
    Vector(Vec<Sample>),
    /// A `*template.sample`: one element of a query result.
    Sample(Sample),
    /// A `*time.Time` in UTC (what `toTime` returns), in Unix milliseconds.
    Time(i64),
    /// An anonymous Go struct with these exported fields, in declaration
    /// order (the alert template data is one).
    Record(Vec<(String, Value)>),
}

/// One element of a `query` result, as templates see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels, including `__name__`.
    pub labels: BTreeMap<String, String>,
    /// The sample value.
    pub value: f64,
}

/// What a template needs from its evaluator besides its data.
pub trait Env {
    /// Runs an instant PromQL query at the expansion's time (the `query`
    /// function); `Err(message)` on failure.
    fn query(&self, q: &str) -> Result<Vec<Sample>, String>;
    /// The external URL (`externalURL`, `pathPrefix`).
    fn external_url(&self) -> &str;
}

/// A parsed template: the main tree and every `define`d or `block` tree.
#[derive(Debug)]
pub struct Template {
    name: String,
    text: String,
    trees: BTreeMap<String, Vec<ast::Node>>,
}

impl Template {
    /// Parses `text`; `name` is the template name used in error messages
    /// (Prometheus uses `"__alert_" + alert name`). The error is Go's parse
    /// error text, e.g. `template: NAME:1: function "foo" not defined`.
    pub fn parse(name: &str, text: &str) -> Result<Template, String> {
        let trees = parse::parse(name, text)?;
        Ok(Template { name: name.to_string(), text: text.to_string(), trees })
    }

    /// Executes with `data` as dot (and `$`). The error is Go's execution
    /// error text, e.g. `template: NAME:1:3: executing "NAME" at <.Foo>: ...`.
    pub fn execute(&self, data: &Value, env: &dyn Env) -> Result<String, String> {
        exec::execute(self, data, env)
    }
}

/// The definitions Prometheus' alerting rule prepends to every label and
/// annotation template.
const ALERT_DEFS: &str =
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// The data an alert template runs against: Prometheus'
/// `template.AlertTemplateData`, an anonymous struct.
fn alert_data(
    labels: &BTreeMap<String, String>,
    external_labels: &BTreeMap<String, String>,
    external_url: &str,
    value: f64,
) -> Value {
    Value::Record(vec![
        ("Labels".to_string(), Value::StrMap(labels.clone())),
        ("ExternalLabels".to_string(), Value::StrMap(external_labels.clone())),
        ("ExternalURL".to_string(), Value::Str(external_url.to_string())),
        ("Value".to_string(), Value::Float(value)),
    ])
}

/// Expands an alert label or annotation as Prometheus' alerting rule does:
/// prepends the definitions
/// `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}`
/// and runs the template named `__alert_NAME` against the alert's data
/// (`.Labels`, `.ExternalLabels`, `.ExternalURL`, `.Value`). On error it
/// returns what Prometheus puts instead:
/// `<error expanding template: error parsing template __alert_NAME: ...>` or
/// `<error expanding template: error executing template __alert_NAME: ...>`.
pub fn expand_alert_text(
    alert_name: &str,
    text: &str,
    labels: &BTreeMap<String, String>,
    external_labels: &BTreeMap<String, String>,
    external_url: &str,
    value: f64,
    env: &dyn Env,
) -> String {
    let name = format!("__alert_{alert_name}");
    let full = format!("{ALERT_DEFS}{text}");
    let tmpl = match Template::parse(&name, &full) {
        Ok(t) => t,
        Err(e) => return format!("<error expanding template: error parsing template {name}: {e}>"),
    };
    let data = alert_data(labels, external_labels, external_url, value);
    match tmpl.execute(&data, env) {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: error executing template {name}: {e}>"),
    }
}

/// Checks that `text` parses, as `promtool check rules` does for alert
/// labels and annotations (with the same prepended definitions); the error
/// is the parse error as Go prints it, e.g.
/// `template: __alert_NAME:1: function "foo" not defined`.
pub fn check_alert_text(alert_name: &str, text: &str) -> Result<(), String> {
    let name = format!("__alert_{alert_name}");
    Template::parse(&name, &format!("{ALERT_DEFS}{text}")).map(|_| ())
}

impl Value {
    /// The Go type name, as `%T` and reflection errors print it.
    fn type_name(&self) -> String {
        match self {
            Value::Nil => "<nil>".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float(_) => "float64".into(),
            Value::Str(_) => "string".into(),
            Value::Html(_) => "template.HTML".into(),
            Value::Map(_) => "map[string]interface {}".into(),
            Value::StrMap(_) => "map[string]string".into(),
            Value::List(_) => "[]interface {}".into(),
            Value::Vector(_) => "template.queryResult".into(),
            Value::Sample(_) => "*template.sample".into(),
            Value::Time(_) => "*time.Time".into(),
            Value::Record(fields) => {
                if fields.is_empty() {
                    return "struct {}".into();
                }
                let parts: Vec<String> = fields.iter().map(|(n, v)| format!("{n} {}", v.type_name())).collect();
                format!("struct {{ {} }}", parts.join("; "))
            }
        }
    }

    /// Go's template truth: not the zero value of its type.
    fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) | Value::Html(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::StrMap(m) => !m.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Vector(v) => !v.is_empty(),
            Value::Sample(_) | Value::Time(_) | Value::Record(_) => true,
        }
    }

    /// The `reflect.Kind` class Go's comparison functions use.
    fn basic_kind(&self) -> Kind {
        match self {
            Value::Bool(_) => Kind::Bool,
            Value::Int(_) => Kind::Int,
            Value::Float(_) => Kind::Float,
            Value::Str(_) | Value::Html(_) => Kind::Str,
            _ => Kind::Invalid,
        }
    }

    /// The `reflect.Kind` of the value, for `eq` on non-basic types.
    fn reflect_kind(&self) -> &'static str {
        match self {
            Value::Nil => "invalid",
            Value::Map(_) | Value::StrMap(_) => "map",
            Value::List(_) | Value::Vector(_) => "slice",
            Value::Sample(_) | Value::Time(_) => "ptr",
            Value::Record(_) => "struct",
            _ => "basic",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    Str,
}

/// Go's `text/template/parse` lexer: the same tokens at the same byte
/// positions, trim markers and error texts (Go 1.19).
mod lex {
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub(super) enum T {
        Error,
        Bool,
        Char,
        CharConstant,
        Complex,
        Assign,
        Declare,
        Eof,
        Field,
        Identifier,
        LeftDelim,
        LeftParen,
        Number,
        Pipe,
        RawString,
        RightDelim,
        RightParen,
        Space,
        Str,
        Text,
        Variable,
        // Keywords.
        Block,
        Break,
        Continue,
        Dot,
        Define,
        Else,
        End,
        If,
        Nil,
        Range,
        Template,
        With,
    }

    impl T {
        fn is_keyword(self) -> bool {
            matches!(
                self,
                T::Block
                    | T::Break
                    | T::Continue
                    | T::Dot
                    | T::Define
                    | T::Else
                    | T::End
                    | T::If
                    | T::Nil
                    | T::Range
                    | T::Template
                    | T::With
            )
        }
    }

    #[derive(Clone, Debug)]
    pub(super) struct Item {
        pub typ: T,
        pub pos: usize,
        pub val: String,
        pub line: usize,
    }

    impl std::fmt::Display for Item {
        /// Go's `item.String`, used in "unexpected X in Y" messages.
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self.typ {
                T::Eof => f.write_str("EOF"),
                T::Error => f.write_str(&self.val),
                t if t.is_keyword() => write!(f, "<{}>", self.val),
                _ if self.val.len() > 10 => {
                    let short: String = self.val.chars().take(10).collect();
                    write!(f, "{}...", super::gofmt::quote(&short))
                }
                _ => f.write_str(&super::gofmt::quote(&self.val)),
            }
        }
    }

    fn keyword(word: &str) -> Option<T> {
        Some(match word {
            "." => T::Dot,
            "block" => T::Block,
            "break" => T::Break,
            "continue" => T::Continue,
            "define" => T::Define,
            "else" => T::Else,
            "end" => T::End,
            "if" => T::If,
            "range" => T::Range,
            "nil" => T::Nil,
            "template" => T::Template,
            "with" => T::With,
            _ => return None,
        })
    }

    #[derive(Clone, Copy)]
    enum State {
        Text,
        LeftDelim,
        Comment,
        RightDelim,
        InsideAction,
        Space,
        Identifier,
        Field,
        Variable,
        Char,
        Number,
        Quote,
        RawQuote,
        Stop,
    }

    const LEFT: &str = "{{";
    const RIGHT: &str = "}}";

    fn is_space(c: char) -> bool {
        matches!(c, ' ' | '\t' | '\r' | '\n')
    }

    pub(super) fn is_alphanumeric(c: char) -> bool {
        c == '_' || c.is_alphabetic() || c.is_numeric()
    }

    fn has_left_trim_marker(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
    }

    fn has_right_trim_marker(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
    }

    struct Lexer<'a> {
        input: &'a str,
        pos: usize,
        start: usize,
        width: usize,
        paren_depth: i64,
        items: Vec<Item>,
        newlines: Vec<usize>,
    }

    /// Lexes `input` into tokens, ending with `Eof` or an `Error` token.
    pub(super) fn lex(input: &str) -> Vec<Item> {
        let mut l = Lexer {
            input,
            pos: 0,
            start: 0,
            width: 0,
            paren_depth: 0,
            items: Vec::new(),
            newlines: input.match_indices('\n').map(|(i, _)| i).collect(),
        };
        let mut state = State::Text;
        loop {
            state = match state {
                State::Text => l.lex_text(),
                State::LeftDelim => l.lex_left_delim(),
                State::Comment => l.lex_comment(),
                State::RightDelim => l.lex_right_delim(),
                State::InsideAction => l.lex_inside_action(),
                State::Space => l.lex_space(),
                State::Identifier => l.lex_identifier(),
                State::Field => l.lex_field_or_variable(T::Field),
                State::Variable => l.lex_variable(),
                State::Char => l.lex_char(),
                State::Number => l.lex_number(),
                State::Quote => l.lex_quote(),
                State::RawQuote => l.lex_raw_quote(),
                State::Stop => break,
            };
        }
        l.items
    }

    impl Lexer<'_> {
        fn line_of(&self, pos: usize) -> usize {
            1 + self.newlines.partition_point(|&n| n < pos)
        }

        fn rest(&self) -> &str {
            &self.input[self.pos..]
        }

        fn next(&mut self) -> Option<char> {
            match self.rest().chars().next() {
                Some(c) => {
                    self.width = c.len_utf8();
                    self.pos += self.width;
                    Some(c)
                }
                None => {
                    self.width = 0;
                    None
                }
            }
        }

        fn peek(&self) -> Option<char> {
            self.rest().chars().next()
        }

        fn backup(&mut self) {
            self.pos -= self.width;
        }

        fn emit(&mut self, typ: T) {
            self.items.push(Item {
                typ,
                pos: self.start,
                val: self.input[self.start..self.pos].to_string(),
                line: self.line_of(self.start),
            });
            self.start = self.pos;
        }

        fn ignore(&mut self) {
            self.start = self.pos;
        }

        fn errorf(&mut self, msg: String) -> State {
            self.items.push(Item { typ: T::Error, pos: self.start, val: msg, line: self.line_of(self.start) });
            State::Stop
        }

        fn accept(&mut self, valid: &str) -> bool {
            match self.next() {
                Some(c) if valid.contains(c) => true,
                _ => {
                    self.backup();
                    false
                }
            }
        }

        fn accept_run(&mut self, valid: &str) {
            while matches!(self.next(), Some(c) if valid.contains(c)) {}
            self.backup();
        }

        /// Whether the lexer is at a right delimiter, and whether it has a
        /// trim marker.
        fn at_right_delim(&self) -> (bool, bool) {
            let rest = self.rest();
            if has_right_trim_marker(rest) && rest[2..].starts_with(RIGHT) {
                return (true, true);
            }
            (rest.starts_with(RIGHT), false)
        }

        fn at_terminator(&self) -> bool {
            match self.peek() {
                None => true,
                Some(c) => is_space(c) || matches!(c, '.' | ',' | '|' | ':' | ')' | '(' | '}'),
            }
        }

        fn lex_text(&mut self) -> State {
            self.width = 0;
            if let Some(x) = self.rest().find(LEFT) {
                self.pos += x;
                let mut trim = 0;
                if has_left_trim_marker(&self.input[self.pos + LEFT.len()..]) {
                    let text = &self.input[self.start..self.pos];
                    trim = text.len() - text.trim_end_matches(is_space).len();
                }
                self.pos -= trim;
                if self.pos > self.start {
                    self.emit(T::Text);
                }
                self.pos += trim;
                self.ignore();
                return State::LeftDelim;
            }
            self.pos = self.input.len();
            if self.pos > self.start {
                self.emit(T::Text);
            }
            self.emit(T::Eof);
            State::Stop
        }

        fn lex_left_delim(&mut self) -> State {
            self.pos += LEFT.len();
            let trim = has_left_trim_marker(self.rest());
            let after = if trim { 2 } else { 0 };
            if self.input[self.pos + after..].starts_with("/*") {
                self.pos += after;
                self.ignore();
                return State::Comment;
            }
            self.emit(T::LeftDelim);
            self.pos += after;
            self.ignore();
            self.paren_depth = 0;
            State::InsideAction
        }

        fn lex_comment(&mut self) -> State {
            self.pos += 2;
            let Some(x) = self.rest().find("*/") else {
                return self.errorf("unclosed comment".into());
            };
            self.pos += x + 2;
            let (delim, trim) = self.at_right_delim();
            if !delim {
                return self.errorf("comment ends before closing delimiter".into());
            }
            if trim {
                self.pos += 2;
            }
            self.pos += RIGHT.len();
            if trim {
                let rest = self.rest();
                self.pos += rest.len() - rest.trim_start_matches(is_space).len();
            }
            self.ignore();
            State::Text
        }

        fn lex_right_delim(&mut self) -> State {
            let trim = has_right_trim_marker(self.rest());
            if trim {
                self.pos += 2;
                self.ignore();
            }
            self.pos += RIGHT.len();
            self.emit(T::RightDelim);
            if trim {
                let rest = self.rest();
                self.pos += rest.len() - rest.trim_start_matches(is_space).len();
                self.ignore();
            }
            State::Text
        }

        fn lex_inside_action(&mut self) -> State {
            let (delim, _) = self.at_right_delim();
            if delim {
                if self.paren_depth == 0 {
                    return State::RightDelim;
                }
                return self.errorf("unclosed left paren".into());
            }
            let Some(r) = self.next() else {
                return self.errorf("unclosed action".into());
            };
            match r {
                c if is_space(c) => {
                    self.backup();
                    return State::Space;
                }
                '=' => self.emit(T::Assign),
                ':' => {
                    if self.next() != Some('=') {
                        return self.errorf("expected :=".into());
                    }
                    self.emit(T::Declare);
                }
                '|' => self.emit(T::Pipe),
                '"' => return State::Quote,
                '`' => return State::RawQuote,
                '$' => return State::Variable,
                '\'' => return State::Char,
                // `.` then a non-digit starts a field; otherwise (even at
                // EOF) it starts a number, as in Go.
                '.' if self.input.as_bytes().get(self.pos).is_some_and(|b| !b.is_ascii_digit()) => {
                    return State::Field;
                }
                '.' | '+' | '-' | '0'..='9' => {
                    self.backup();
                    return State::Number;
                }
                c if is_alphanumeric(c) => {
                    self.backup();
                    return State::Identifier;
                }
                '(' => {
                    self.emit(T::LeftParen);
                    self.paren_depth += 1;
                }
                ')' => {
                    self.emit(T::RightParen);
                    self.paren_depth -= 1;
                    if self.paren_depth < 0 {
                        return self.errorf(format!("unexpected right paren {}", super::gofmt::sharp_u(r)));
                    }
                }
                c if c.is_ascii() && !c.is_ascii_control() => self.emit(T::Char),
                c => return self.errorf(format!("unrecognized character in action: {}", super::gofmt::sharp_u(c))),
            }
            State::InsideAction
        }

        fn lex_space(&mut self) -> State {
            let mut num_spaces = 0;
            while matches!(self.peek(), Some(c) if is_space(c)) {
                self.next();
                num_spaces += 1;
            }
            // A trim-marked right delimiter starts with a space.
            let before = &self.input[self.pos - 1..];
            if has_right_trim_marker(before) && before[2..].starts_with(RIGHT) {
                self.backup();
                if num_spaces == 1 {
                    return State::RightDelim;
                }
            }
            self.emit(T::Space);
            State::InsideAction
        }

        fn lex_identifier(&mut self) -> State {
            loop {
                match self.next() {
                    Some(c) if is_alphanumeric(c) => {}
                    r => {
                        self.backup();
                        if !self.at_terminator() {
                            return self.bad_character(r);
                        }
                        let word = &self.input[self.start..self.pos];
                        let typ = match keyword(word) {
                            Some(k) => k,
                            None if word.starts_with('.') => T::Field,
                            None if word == "true" || word == "false" => T::Bool,
                            None => T::Identifier,
                        };
                        self.emit(typ);
                        return State::InsideAction;
                    }
                }
            }
        }

        fn bad_character(&mut self, r: Option<char>) -> State {
            // Go reports the rune after the word; at EOF that is -1.
            let shown = match r {
                Some(c) => super::gofmt::sharp_u(c),
                None => "U+FFFFFFFFFFFFFFFF".to_string(),
            };
            self.errorf(format!("bad character {shown}"))
        }

        fn lex_variable(&mut self) -> State {
            if self.at_terminator() {
                self.emit(T::Variable);
                return State::InsideAction;
            }
            self.lex_field_or_variable(T::Variable)
        }

        fn lex_field_or_variable(&mut self, typ: T) -> State {
            if self.at_terminator() {
                self.emit(if typ == T::Variable { T::Variable } else { T::Dot });
                return State::InsideAction;
            }
            let r = loop {
                match self.next() {
                    Some(c) if is_alphanumeric(c) => {}
                    r => {
                        self.backup();
                        break r;
                    }
                }
            };
            if !self.at_terminator() {
                return self.bad_character(r);
            }
            self.emit(typ);
            State::InsideAction
        }

        fn lex_char(&mut self) -> State {
            loop {
                match self.next() {
                    Some('\\') => match self.next() {
                        Some(c) if c != '\n' => {}
                        _ => return self.errorf("unterminated character constant".into()),
                    },
                    None | Some('\n') => return self.errorf("unterminated character constant".into()),
                    Some('\'') => break,
                    Some(_) => {}
                }
            }
            self.emit(T::CharConstant);
            State::InsideAction
        }

        fn lex_number(&mut self) -> State {
            if !self.scan_number() {
                let text = self.input[self.start..self.pos].to_string();
                return self.errorf(format!("bad number syntax: {}", super::gofmt::quote(&text)));
            }
            if matches!(self.peek(), Some('+' | '-')) {
                if !self.scan_number() || !self.input[..self.pos].ends_with('i') {
                    let text = self.input[self.start..self.pos].to_string();
                    return self.errorf(format!("bad number syntax: {}", super::gofmt::quote(&text)));
                }
                self.emit(T::Complex);
            } else {
                self.emit(T::Number);
            }
            State::InsideAction
        }

        fn scan_number(&mut self) -> bool {
            self.accept("+-");
            let mut digits = "0123456789_";
            if self.accept("0") {
                if self.accept("xX") {
                    digits = "0123456789abcdefABCDEF_";
                } else if self.accept("oO") {
                    digits = "01234567_";
                } else if self.accept("bB") {
                    digits = "01_";
                }
            }
            self.accept_run(digits);
            if self.accept(".") {
                self.accept_run(digits);
            }
            if digits.len() == 11 && self.accept("eE") {
                self.accept("+-");
                self.accept_run("0123456789_");
            }
            if digits.len() == 23 && self.accept("pP") {
                self.accept("+-");
                self.accept_run("0123456789_");
            }
            self.accept("i");
            if matches!(self.peek(), Some(c) if is_alphanumeric(c)) {
                self.next();
                return false;
            }
            true
        }

        fn lex_quote(&mut self) -> State {
            loop {
                match self.next() {
                    Some('\\') => match self.next() {
                        Some(c) if c != '\n' => {}
                        _ => return self.errorf("unterminated quoted string".into()),
                    },
                    None | Some('\n') => return self.errorf("unterminated quoted string".into()),
                    Some('"') => break,
                    Some(_) => {}
                }
            }
            self.emit(T::Str);
            State::InsideAction
        }

        fn lex_raw_quote(&mut self) -> State {
            loop {
                match self.next() {
                    None => return self.errorf("unterminated raw quoted string".into()),
                    Some('`') => break,
                    Some(_) => {}
                }
            }
            self.emit(T::RawString);
            State::InsideAction
        }
    }
}

/// The parse tree, shaped like Go's `text/template/parse` nodes: each node
/// keeps the byte position Go reports in errors and prints as Go's
/// `Node.String` does.
mod ast {
    use std::fmt;

    #[derive(Debug)]
    pub(super) enum Node {
        Text(String),
        Action { pos: usize, pipe: Pipe },
        If(Branch),
        Range(Branch),
        With(Branch),
        Template { pos: usize, name: String, pipe: Option<Pipe> },
        Break,
        Continue,
    }

    #[derive(Debug)]
    pub(super) struct Branch {
        pub pipe: Pipe,
        pub list: Vec<Node>,
        pub else_list: Option<Vec<Node>>,
    }

    #[derive(Debug)]
    pub(super) struct Pipe {
        pub pos: usize,
        pub is_assign: bool,
        pub decl: Vec<String>,
        pub cmds: Vec<Command>,
    }

    #[derive(Debug)]
    pub(super) struct Command {
        pub pos: usize,
        pub args: Vec<Arg>,
    }

    #[derive(Debug)]
    pub(super) struct Number {
        pub text: String,
        pub is_int: bool,
        pub is_uint: bool,
        pub is_float: bool,
        pub int: i64,
        pub float: f64,
    }

    #[derive(Debug)]
    pub(super) enum Arg {
        Field {
            pos: usize,
            idents: Vec<String>,
        },
        /// `idents[0]` is the variable (`$x`), the rest are fields.
        Variable {
            pos: usize,
            idents: Vec<String>,
        },
        Chain {
            pos: usize,
            node: Box<Arg>,
            fields: Vec<String>,
        },
        Identifier {
            pos: usize,
            name: String,
        },
        Dot {
            pos: usize,
        },
        Nil {
            pos: usize,
        },
        Bool {
            pos: usize,
            value: bool,
        },
        Number {
            pos: usize,
            num: Number,
        },
        Str {
            pos: usize,
            quoted: String,
            text: String,
        },
        Pipe(Box<Pipe>),
    }

    impl Arg {
        pub fn pos(&self) -> usize {
            match self {
                Arg::Field { pos, .. }
                | Arg::Variable { pos, .. }
                | Arg::Chain { pos, .. }
                | Arg::Identifier { pos, .. }
                | Arg::Dot { pos }
                | Arg::Nil { pos }
                | Arg::Bool { pos, .. }
                | Arg::Number { pos, .. }
                | Arg::Str { pos, .. } => *pos,
                Arg::Pipe(p) => p.pos,
            }
        }
    }

    impl fmt::Display for Pipe {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if !self.decl.is_empty() {
                f.write_str(&self.decl.join(", "))?;
                f.write_str(" := ")?;
            }
            for (i, c) in self.cmds.iter().enumerate() {
                if i > 0 {
                    f.write_str(" | ")?;
                }
                write!(f, "{c}")?;
            }
            Ok(())
        }
    }

    impl fmt::Display for Command {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for (i, a) in self.args.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                match a {
                    Arg::Pipe(p) => write!(f, "({p})")?,
                    a => write!(f, "{a}")?,
                }
            }
            Ok(())
        }
    }

    impl fmt::Display for Arg {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Arg::Field { idents, .. } => {
                    for id in idents {
                        write!(f, ".{id}")?;
                    }
                    Ok(())
                }
                Arg::Variable { idents, .. } => f.write_str(&idents.join(".")),
                Arg::Chain { node, fields, .. } => {
                    match node.as_ref() {
                        Arg::Pipe(p) => write!(f, "({p})")?,
                        n => write!(f, "{n}")?,
                    }
                    for field in fields {
                        write!(f, ".{field}")?;
                    }
                    Ok(())
                }
                Arg::Identifier { name, .. } => f.write_str(name),
                Arg::Dot { .. } => f.write_str("."),
                Arg::Nil { .. } => f.write_str("nil"),
                Arg::Bool { value, .. } => write!(f, "{value}"),
                Arg::Number { num, .. } => f.write_str(&num.text),
                Arg::Str { quoted, .. } => f.write_str(quoted),
                Arg::Pipe(p) => write!(f, "{p}"),
            }
        }
    }

    /// Go's `TemplateNode.String`.
    pub(super) fn template_string(name: &str, pipe: Option<&Pipe>) -> String {
        match pipe {
            Some(p) => format!("{{{{template {} {p}}}}}", super::gofmt::quote(name)),
            None => format!("{{{{template {}}}}}", super::gofmt::quote(name)),
        }
    }
}

/// Go's `text/template/parse` parser (Go 1.19), over the lexer's tokens.
mod parse {
    use super::ast::{Arg, Branch, Command, Node, Number, Pipe};
    use super::lex::{lex, Item, T};
    use std::collections::BTreeMap;

    /// Deepest nesting of parenthesized pipelines and `if`/`range`/`with`
    /// together. Go allows 10000 parentheses and any number of control
    /// structures; this recursive parser and executor keep to what fits a
    /// 2 MiB thread stack, far beyond what a real template nests.
    const MAX_NESTING: usize = 100;

    /// What `textOrAction` returns: a node, or an `{{end}}`/`{{else}}` that
    /// closes the enclosing list.
    enum Parsed {
        Node(Node),
        End,
        Else,
    }

    impl Parsed {
        fn describe(&self) -> &'static str {
            match self {
                Parsed::End => "{{end}}",
                Parsed::Else => "{{else}}",
                Parsed::Node(_) => "node",
            }
        }
    }

    struct Parser<'a> {
        name: &'a str,
        items: Vec<Item>,
        idx: usize,
        /// One past the furthest token read: Go's `token[0]`, whose line
        /// errors report.
        hi: usize,
        vars: Vec<String>,
        action_line: usize,
        range_depth: usize,
        /// Current nesting of parentheses and control structures.
        nesting: usize,
        trees: BTreeMap<String, Vec<Node>>,
    }

    pub(super) fn parse(name: &str, text: &str) -> Result<BTreeMap<String, Vec<Node>>, String> {
        let mut p = Parser {
            name,
            items: lex(text),
            idx: 0,
            hi: 0,
            vars: vec!["$".to_string()],
            action_line: 0,
            range_depth: 0,
            nesting: 0,
            trees: BTreeMap::new(),
        };
        let root = p.parse_root()?;
        p.add(name.to_string(), root)?;
        Ok(p.trees)
    }

    type R<T> = Result<T, String>;

    fn is_empty_tree(nodes: &[Node]) -> bool {
        nodes.iter().all(|n| match n {
            Node::Text(t) => t.trim_matches(|c: char| c.is_whitespace()).is_empty(),
            _ => false,
        })
    }

    impl Parser<'_> {
        fn fetch(&mut self, i: usize) -> Item {
            let item = match self.items.get(i).or_else(|| self.items.last()) {
                Some(item) => item.clone(),
                None => Item { typ: T::Eof, pos: 0, val: String::new(), line: 1 },
            };
            self.hi = self.hi.max(i + 1);
            item
        }

        fn next(&mut self) -> Item {
            let item = self.fetch(self.idx);
            self.idx += 1;
            item
        }

        fn backup(&mut self) {
            self.idx -= 1;
        }

        fn peek(&mut self) -> Item {
            self.fetch(self.idx)
        }

        fn next_non_space(&mut self) -> Item {
            loop {
                let t = self.next();
                if t.typ != T::Space {
                    return t;
                }
            }
        }

        fn peek_non_space(&mut self) -> Item {
            let t = self.next_non_space();
            self.backup();
            t
        }

        fn errorf(&self, msg: impl std::fmt::Display) -> String {
            let line = self.items.get(self.hi.saturating_sub(1)).map_or(1, |item| item.line);
            format!("template: {}:{}: {}", self.name, line, msg)
        }

        fn unexpected(&self, token: &Item, context: &str) -> String {
            if token.typ == T::Error {
                let mut extra = String::new();
                if self.action_line != 0 && self.action_line != token.line {
                    extra = format!(" in action started at {}:{}", self.name, self.action_line);
                    if token.val.ends_with(" action") {
                        extra = extra[" in action".len()..].to_string();
                    }
                }
                return self.errorf(format!("{token}{extra}"));
            }
            self.errorf(format!("unexpected {token} in {context}"))
        }

        fn expect(&mut self, typ: T, context: &str) -> R<Item> {
            let token = self.next_non_space();
            if token.typ != typ {
                return Err(self.unexpected(&token, context));
            }
            Ok(token)
        }

        fn add(&mut self, name: String, root: Vec<Node>) -> R<()> {
            match self.trees.get(&name) {
                Some(existing) if !is_empty_tree(existing) => {
                    if !is_empty_tree(&root) {
                        return Err(self.errorf(format!(
                            "template: multiple definition of template {}",
                            super::gofmt::quote(&name)
                        )));
                    }
                }
                _ => {
                    self.trees.insert(name, root);
                }
            }
            Ok(())
        }

        fn parse_root(&mut self) -> R<Vec<Node>> {
            let mut root = Vec::new();
            while self.peek().typ != T::Eof {
                if self.peek().typ == T::LeftDelim {
                    let delim_idx = self.idx;
                    self.next();
                    if self.next_non_space().typ == T::Define {
                        self.parse_definition()?;
                        continue;
                    }
                    self.idx = delim_idx;
                }
                match self.text_or_action()? {
                    Parsed::Node(n) => root.push(n),
                    other => return Err(self.errorf(format!("unexpected {}", other.describe()))),
                }
            }
            Ok(root)
        }

        /// Parses `{{define "name"}} ... {{end}}` (the `define` keyword is
        /// past) with a fresh variable scope, as Go parses it as a new tree.
        fn parse_definition(&mut self) -> R<()> {
            const CONTEXT: &str = "define clause";
            let token = self.next_non_space();
            if token.typ != T::Str && token.typ != T::RawString {
                return Err(self.unexpected(&token, CONTEXT));
            }
            let name = unquote(&token.val).ok_or_else(|| self.errorf("invalid syntax"))?;
            self.expect(T::RightDelim, CONTEXT)?;
            let saved = self.fresh_scope();
            let result = self.item_list();
            self.restore_scope(saved);
            let (list, end) = result?;
            if !matches!(end, Parsed::End) {
                return Err(self.errorf(format!("unexpected {} in {CONTEXT}", end.describe())));
            }
            self.add(name, list)
        }

        fn fresh_scope(&mut self) -> (Vec<String>, usize, usize) {
            let vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
            let saved = (vars, self.range_depth, self.action_line);
            self.range_depth = 0;
            self.action_line = 0;
            saved
        }

        fn restore_scope(&mut self, saved: (Vec<String>, usize, usize)) {
            self.vars = saved.0;
            self.range_depth = saved.1;
            self.action_line = saved.2;
        }

        fn item_list(&mut self) -> R<(Vec<Node>, Parsed)> {
            let mut list = Vec::new();
            while self.peek_non_space().typ != T::Eof {
                match self.text_or_action()? {
                    Parsed::Node(n) => list.push(n),
                    end => return Ok((list, end)),
                }
            }
            Err(self.errorf("unexpected EOF"))
        }

        fn text_or_action(&mut self) -> R<Parsed> {
            let token = self.next_non_space();
            match token.typ {
                T::Text => Ok(Parsed::Node(Node::Text(token.val))),
                T::LeftDelim => {
                    self.action_line = token.line;
                    let r = self.action();
                    self.action_line = 0;
                    r
                }
                _ => Err(self.unexpected(&token, "input")),
            }
        }

        fn action(&mut self) -> R<Parsed> {
            let token = self.next_non_space();
            match token.typ {
                T::Block => return self.block_control().map(Parsed::Node),
                T::Break => return self.break_control(true).map(Parsed::Node),
                T::Continue => return self.break_control(false).map(Parsed::Node),
                T::Else => return self.else_control(),
                T::End => {
                    self.expect(T::RightDelim, "end")?;
                    return Ok(Parsed::End);
                }
                T::If => return self.control("if").map(|b| Parsed::Node(Node::If(b))),
                T::Range => return self.control("range").map(|b| Parsed::Node(Node::Range(b))),
                T::Template => return self.template_control().map(Parsed::Node),
                T::With => return self.control("with").map(|b| Parsed::Node(Node::With(b))),
                _ => {}
            }
            self.backup();
            let pos = self.peek().pos;
            let pipe = self.pipeline("command", T::RightDelim)?;
            Ok(Parsed::Node(Node::Action { pos, pipe }))
        }

        fn break_control(&mut self, is_break: bool) -> R<Node> {
            let word = if is_break { "{{break}}" } else { "{{continue}}" };
            let token = self.next_non_space();
            if token.typ != T::RightDelim {
                return Err(self.unexpected(&token, word));
            }
            if self.range_depth == 0 {
                return Err(self.errorf(format!("{word} outside {{{{range}}}}")));
            }
            Ok(if is_break { Node::Break } else { Node::Continue })
        }

        fn else_control(&mut self) -> R<Parsed> {
            if self.peek_non_space().typ == T::If {
                return Ok(Parsed::Else);
            }
            self.expect(T::RightDelim, "else")?;
            Ok(Parsed::Else)
        }

        fn control(&mut self, context: &str) -> R<Branch> {
            if self.nesting >= MAX_NESTING {
                return Err(self.errorf(format!("{{{{{context}}}}} nested more than {MAX_NESTING} deep")));
            }
            self.nesting += 1;
            let saved = self.vars.len();
            let r = self.control_inner(context);
            self.vars.truncate(saved);
            self.nesting -= 1;
            r
        }

        fn control_inner(&mut self, context: &str) -> R<Branch> {
            let pipe = self.pipeline(context, T::RightDelim)?;
            if context == "range" {
                self.range_depth += 1;
            }
            let r = self.item_list();
            if context == "range" {
                self.range_depth -= 1;
            }
            let (list, next) = r?;
            let mut else_list = None;
            if let Parsed::Else = next {
                // Go 1.19 reads `{{else if ...}}` as `{{else}}{{if ...}}...{{end}}`
                // for `if` only.
                if context == "if" && self.peek().typ == T::If {
                    self.next();
                    let inner = self.control("if")?;
                    else_list = Some(vec![Node::If(inner)]);
                } else {
                    let (l, next) = self.item_list()?;
                    if !matches!(next, Parsed::End) {
                        return Err(self.errorf(format!("expected end; found {}", next.describe())));
                    }
                    else_list = Some(l);
                }
            }
            Ok(Branch { pipe, list, else_list })
        }

        fn template_name(&mut self, token: &Item, context: &str) -> R<String> {
            match token.typ {
                T::Str | T::RawString => unquote(&token.val).ok_or_else(|| self.errorf("invalid syntax")),
                _ => Err(self.unexpected(token, context)),
            }
        }

        fn block_control(&mut self) -> R<Node> {
            if self.nesting >= MAX_NESTING {
                return Err(self.errorf(format!("{{{{block}}}} nested more than {MAX_NESTING} deep")));
            }
            self.nesting += 1;
            let r = self.block_control_inner();
            self.nesting -= 1;
            r
        }

        fn block_control_inner(&mut self) -> R<Node> {
            const CONTEXT: &str = "block clause";
            let token = self.next_non_space();
            let name = self.template_name(&token, CONTEXT)?;
            let pipe = self.pipeline(CONTEXT, T::RightDelim)?;
            let saved = self.fresh_scope();
            let result = self.item_list();
            self.restore_scope(saved);
            let (list, end) = result?;
            if !matches!(end, Parsed::End) {
                return Err(self.errorf(format!("unexpected {} in {CONTEXT}", end.describe())));
            }
            self.add(name.clone(), list)?;
            Ok(Node::Template { pos: token.pos, name, pipe: Some(pipe) })
        }

        fn template_control(&mut self) -> R<Node> {
            const CONTEXT: &str = "template clause";
            let token = self.next_non_space();
            let name = self.template_name(&token, CONTEXT)?;
            let mut pipe = None;
            if self.next_non_space().typ != T::RightDelim {
                self.backup();
                pipe = Some(self.pipeline(CONTEXT, T::RightDelim)?);
            }
            Ok(Node::Template { pos: token.pos, name, pipe })
        }

        fn pipeline(&mut self, context: &str, end: T) -> R<Pipe> {
            let pos = self.peek_non_space().pos;
            let mut pipe = Pipe { pos, is_assign: false, decl: Vec::new(), cmds: Vec::new() };
            // Declarations or assignments.
            loop {
                let v = self.peek_non_space();
                if v.typ != T::Variable {
                    break;
                }
                let v_idx = self.idx;
                self.next_non_space();
                let next = self.peek_non_space();
                if next.typ == T::Assign || next.typ == T::Declare {
                    pipe.is_assign = next.typ == T::Assign;
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                } else if next.typ == T::Char && next.val == "," {
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().typ {
                            T::Variable | T::RightDelim | T::RightParen => continue,
                            _ => return Err(self.errorf("range can only initialize variables")),
                        }
                    }
                    return Err(self.errorf(format!("too many declarations in {context}")));
                } else {
                    // `$x` starts a command: push it back.
                    self.idx = v_idx;
                }
                break;
            }
            loop {
                let token = self.next_non_space();
                if token.typ == end {
                    self.check_pipeline(&pipe, context)?;
                    return Ok(pipe);
                }
                match token.typ {
                    T::Bool
                    | T::CharConstant
                    | T::Complex
                    | T::Dot
                    | T::Field
                    | T::Identifier
                    | T::Number
                    | T::Nil
                    | T::RawString
                    | T::Str
                    | T::Variable
                    | T::LeftParen => {
                        self.backup();
                        let cmd = self.command()?;
                        pipe.cmds.push(cmd);
                    }
                    _ => return Err(self.unexpected(&token, context)),
                }
            }
        }

        fn check_pipeline(&self, pipe: &Pipe, context: &str) -> R<()> {
            if pipe.cmds.is_empty() {
                return Err(self.errorf(format!("missing value for {context}")));
            }
            for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
                if matches!(
                    c.args.first(),
                    Some(Arg::Bool { .. } | Arg::Dot { .. } | Arg::Nil { .. } | Arg::Number { .. } | Arg::Str { .. })
                ) {
                    return Err(self.errorf(format!("non executable command in pipeline stage {}", i + 1)));
                }
            }
            Ok(())
        }

        fn command(&mut self) -> R<Command> {
            let pos = self.peek_non_space().pos;
            let mut cmd = Command { pos, args: Vec::new() };
            loop {
                self.peek_non_space();
                if let Some(operand) = self.operand()? {
                    cmd.args.push(operand);
                }
                let token = self.next();
                match token.typ {
                    T::Space => continue,
                    T::RightDelim | T::RightParen => self.backup(),
                    T::Pipe => {}
                    _ => return Err(self.unexpected(&token, "operand")),
                }
                break;
            }
            if cmd.args.is_empty() {
                return Err(self.errorf("empty command"));
            }
            Ok(cmd)
        }

        fn operand(&mut self) -> R<Option<Arg>> {
            let Some(node) = self.term()? else {
                return Ok(None);
            };
            if self.peek().typ != T::Field {
                return Ok(Some(node));
            }
            let pos = self.peek().pos;
            let mut fields = Vec::new();
            while self.peek().typ == T::Field {
                let f = self.next();
                fields.push(f.val[1..].to_string());
            }
            Ok(Some(match node {
                Arg::Field { mut idents, .. } => {
                    idents.extend(fields);
                    Arg::Field { pos, idents }
                }
                Arg::Variable { mut idents, .. } => {
                    idents.extend(fields);
                    Arg::Variable { pos, idents }
                }
                Arg::Bool { .. } | Arg::Str { .. } | Arg::Number { .. } | Arg::Nil { .. } | Arg::Dot { .. } => {
                    return Err(
                        self.errorf(format!("unexpected . after term {}", super::gofmt::quote(&node.to_string())))
                    );
                }
                node => Arg::Chain { pos, node: Box::new(node), fields },
            }))
        }

        fn term(&mut self) -> R<Option<Arg>> {
            let token = self.next_non_space();
            let pos = token.pos;
            Ok(Some(match token.typ {
                T::Identifier => {
                    if !super::funcs::exists(&token.val) {
                        return Err(self.errorf(format!("function {} not defined", super::gofmt::quote(&token.val))));
                    }
                    Arg::Identifier { pos, name: token.val }
                }
                T::Dot => Arg::Dot { pos },
                T::Nil => Arg::Nil { pos },
                T::Variable => {
                    if !self.vars.contains(&token.val) {
                        return Err(self.errorf(format!("undefined variable {}", super::gofmt::quote(&token.val))));
                    }
                    Arg::Variable { pos, idents: vec![token.val] }
                }
                T::Field => Arg::Field { pos, idents: token.val[1..].split('.').map(str::to_string).collect() },
                T::Bool => Arg::Bool { pos, value: token.val == "true" },
                T::CharConstant | T::Complex | T::Number => {
                    let num = new_number(&token.val, token.typ).map_err(|e| self.errorf(e))?;
                    Arg::Number { pos, num }
                }
                T::LeftParen => {
                    if self.nesting >= MAX_NESTING {
                        return Err(self.errorf("max expression depth exceeded"));
                    }
                    self.nesting += 1;
                    let r = self.pipeline("parenthesized pipeline", T::RightParen);
                    self.nesting -= 1;
                    Arg::Pipe(Box::new(r?))
                }
                T::Str | T::RawString => {
                    let text = unquote(&token.val).ok_or_else(|| self.errorf("invalid syntax"))?;
                    Arg::Str { pos, quoted: token.val, text }
                }
                _ => {
                    self.backup();
                    return Ok(None);
                }
            }))
        }
    }

    /// Go's `strconv.Unquote` for a double-quoted or raw string token.
    pub(super) fn unquote(s: &str) -> Option<String> {
        if let Some(raw) = s.strip_prefix('`') {
            let body = raw.strip_suffix('`')?;
            return Some(body.replace('\r', ""));
        }
        let body = s.strip_prefix('"')?.strip_suffix('"')?;
        let mut out = String::new();
        let mut rest = body;
        while !rest.is_empty() {
            if rest.starts_with('"') || rest.starts_with('\n') {
                return None;
            }
            let (c, tail) = unquote_char(rest, b'"')?;
            match c {
                CharOrByte::Char(c) => out.push(c),
                // Raw bytes from \x or octal escapes; a Rust string cannot
                // hold invalid UTF-8, so bytes >= 0x80 become U+FFFD.
                CharOrByte::Byte(b) if b < 0x80 => out.push(b as char),
                CharOrByte::Byte(_) => out.push('\u{FFFD}'),
            }
            rest = tail;
        }
        Some(out)
    }

    enum CharOrByte {
        Char(char),
        Byte(u8),
    }

    /// Go's `strconv.UnquoteChar`: the first character of `s`, escapes
    /// decoded, and the rest.
    fn unquote_char(s: &str, quote: u8) -> Option<(CharOrByte, &str)> {
        let mut chars = s.chars();
        let c = chars.next()?;
        if c == quote as char && (quote == b'\'' || quote == b'"') {
            return None;
        }
        if c != '\\' {
            return Some((CharOrByte::Char(c), chars.as_str()));
        }
        let rest = chars.as_str();
        let e = rest.chars().next()?;
        let after = &rest[e.len_utf8()..];
        let simple = |c: char| Some((CharOrByte::Char(c), after));
        match e {
            'a' => simple('\x07'),
            'b' => simple('\x08'),
            'f' => simple('\x0c'),
            'n' => simple('\n'),
            'r' => simple('\r'),
            't' => simple('\t'),
            'v' => simple('\x0b'),
            '\\' => simple('\\'),
            '\'' | '"' => {
                if e as u32 != quote as u32 {
                    return None;
                }
                simple(e)
            }
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex = after.get(..n)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                let v = u32::from_str_radix(hex, 16).ok()?;
                let tail = &after[n..];
                if e == 'x' {
                    return Some((CharOrByte::Byte(v as u8), tail));
                }
                Some((CharOrByte::Char(char::from_u32(v)?), tail))
            }
            '0'..='7' => {
                let oct = rest.get(..3)?;
                if !oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    return None;
                }
                let v = u32::from_str_radix(oct, 8).ok()?;
                if v > 255 {
                    return None;
                }
                Some((CharOrByte::Byte(v as u8), &rest[3..]))
            }
            _ => None,
        }
    }

    /// Go's `parse.newNumber`.
    fn new_number(text: &str, typ: T) -> Result<Number, String> {
        let mut n =
            Number { text: text.to_string(), is_int: false, is_uint: false, is_float: false, int: 0, float: 0.0 };
        if typ == T::CharConstant {
            let body = &text[1..];
            let (c, tail) = unquote_char(body, b'\'').ok_or("invalid syntax")?;
            if tail != "'" {
                return Err(format!("malformed character constant: {text}"));
            }
            let v = match c {
                CharOrByte::Char(c) => c as i64,
                CharOrByte::Byte(b) => b as i64,
            };
            n.is_int = true;
            n.is_uint = true;
            n.is_float = true;
            n.int = v;
            n.float = v as f64;
            return Ok(n);
        }
        if typ == T::Complex || text.ends_with('i') {
            return Err(format!("complex constants are not supported: {text}"));
        }
        let u = super::strconv::parse_uint(text);
        if let Some(i) = super::strconv::parse_int(text) {
            n.is_int = true;
            n.int = i;
            if i == 0 {
                n.is_uint = true;
            }
        }
        if u.is_some() {
            n.is_uint = true;
        }
        if n.is_int {
            n.is_float = true;
            n.float = n.int as f64;
        } else if let Some(u) = u {
            n.is_float = true;
            n.float = u as f64;
        } else if let Ok(f) = super::strconv::parse_float(text) {
            if !text.contains(['.', 'e', 'E', 'p', 'P']) {
                return Err(format!("integer overflow: {}", super::gofmt::quote(text)));
            }
            n.is_float = true;
            n.float = f;
            if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
                n.is_int = true;
                n.int = f as i64;
            }
            if f.fract() == 0.0 && (0.0..1.844_674_407_370_955_2e19).contains(&f) {
                n.is_uint = true;
            }
        }
        if !n.is_int && !n.is_uint && !n.is_float {
            return Err(format!("illegal number syntax: {}", super::gofmt::quote(text)));
        }
        Ok(n)
    }
}

/// Go's `strconv` number parsing, with its syntax (base prefixes,
/// underscores, hexadecimal floats, `Inf`/`NaN`) and range errors.
mod strconv {
    /// Why `parse_float` failed, as Go's `strconv.NumError` says it.
    pub(super) enum FloatErr {
        Syntax,
        Range,
    }

    /// Go's `underscoreOK`: underscores only between digits or after a
    /// base prefix.
    fn underscore_ok(s: &str) -> bool {
        let b = s.as_bytes();
        let mut saw = b'^';
        let mut i = 0;
        let b = match b.first() {
            Some(b'+' | b'-') => &b[1..],
            _ => b,
        };
        let mut hex = false;
        if b.len() >= 2 && b[0] == b'0' && matches!(b[1] | 0x20, b'b' | b'o' | b'x') {
            i = 2;
            saw = b'0';
            hex = b[1] | 0x20 == b'x';
        }
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_digit() || hex && c.is_ascii_hexdigit() {
                saw = b'0';
            } else if c == b'_' {
                if saw != b'0' {
                    return false;
                }
                saw = b'_';
            } else {
                if saw == b'_' {
                    return false;
                }
                saw = b'!';
            }
            i += 1;
        }
        saw != b'_'
    }

    /// Go's `strconv.ParseUint(s, 0, 64)`.
    pub(super) fn parse_uint(s0: &str) -> Option<u64> {
        if s0.is_empty() {
            return None;
        }
        let lower = s0.to_ascii_lowercase();
        let (base, digits): (u64, &str) = if lower.len() >= 3 && lower.starts_with("0b") {
            (2, &s0[2..])
        } else if lower.len() >= 3 && lower.starts_with("0o") {
            (8, &s0[2..])
        } else if lower.len() >= 3 && lower.starts_with("0x") {
            (16, &s0[2..])
        } else if lower.starts_with('0') {
            (8, &s0[1..])
        } else {
            (10, s0)
        };
        let mut n: u64 = 0;
        let mut underscores = false;
        for c in digits.chars() {
            if c == '_' {
                underscores = true;
                continue;
            }
            let d = c.to_digit(16)? as u64;
            if d >= base {
                return None;
            }
            n = n.checked_mul(base)?.checked_add(d)?;
        }
        if underscores && !underscore_ok(s0) {
            return None;
        }
        Some(n)
    }

    /// Go's `strconv.ParseInt(s, 0, 64)`.
    pub(super) fn parse_int(s: &str) -> Option<i64> {
        let (neg, rest) = match s.as_bytes().first() {
            Some(b'+') => (false, &s[1..]),
            Some(b'-') => (true, &s[1..]),
            _ => (false, s),
        };
        if !underscore_ok(s) && s.contains('_') {
            return None;
        }
        let un = parse_uint(rest)?;
        if neg {
            if un > 1 << 63 {
                return None;
            }
            Some((un as i64).wrapping_neg())
        } else {
            i64::try_from(un).ok()
        }
    }

    /// Go's `strconv.ParseFloat(s, 64)`.
    pub(super) fn parse_float(s: &str) -> Result<f64, FloatErr> {
        if let Some(v) = special(s) {
            return Ok(v);
        }
        if s.contains('_') && !underscore_ok(s) {
            return Err(FloatErr::Syntax);
        }
        let clean: String = s.chars().filter(|&c| c != '_').collect();
        let (neg, body) = match clean.as_bytes().first() {
            Some(b'+') => (false, &clean[1..]),
            Some(b'-') => (true, &clean[1..]),
            _ => (false, &clean[..]),
        };
        let v = if body.len() > 2 && body.as_bytes()[..2].eq_ignore_ascii_case(b"0x") {
            parse_hex_float(&body[2..])?
        } else {
            if !valid_decimal(body) {
                return Err(FloatErr::Syntax);
            }
            body.parse::<f64>().map_err(|_| FloatErr::Syntax)?
        };
        if v.is_infinite() {
            return Err(FloatErr::Range);
        }
        Ok(if neg { -v } else { v })
    }

    /// `Inf`, `Infinity` (optionally signed) and `NaN`, any case.
    fn special(s: &str) -> Option<f64> {
        let (sign, body) = match s.as_bytes().first() {
            Some(b'+') => (1.0, &s[1..]),
            Some(b'-') => (-1.0, &s[1..]),
            _ => {
                if s.eq_ignore_ascii_case("nan") {
                    return Some(f64::NAN);
                }
                (1.0, s)
            }
        };
        if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("infinity") {
            return Some(sign * f64::INFINITY);
        }
        None
    }

    fn valid_decimal(s: &str) -> bool {
        let b = s.as_bytes();
        let mut i = 0;
        let mut digits = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
                digits += 1;
            }
        }
        if digits == 0 {
            return false;
        }
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            i += 1;
            if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                i += 1;
            }
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return false;
            }
        }
        i == b.len()
    }

    /// The part of a hexadecimal float after `0x`: mantissa, then a
    /// mandatory binary exponent.
    fn parse_hex_float(s: &str) -> Result<f64, FloatErr> {
        let lower = s.to_ascii_lowercase();
        let (mant, exp) = lower.split_once('p').ok_or(FloatErr::Syntax)?;
        let (int_part, frac_part) = mant.split_once('.').unwrap_or((mant, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(FloatErr::Syntax);
        }
        let mut v = 0.0f64;
        for c in int_part.chars().chain(frac_part.chars()) {
            v = v * 16.0 + c.to_digit(16).ok_or(FloatErr::Syntax)? as f64;
        }
        let exp_digits = exp.trim_start_matches(['+', '-']);
        if exp_digits.is_empty() || !exp_digits.bytes().all(|b| b.is_ascii_digit()) || exp.len() - exp_digits.len() > 1
        {
            return Err(FloatErr::Syntax);
        }
        let e: i32 = exp.parse().unwrap_or(if exp.starts_with('-') { -100_000 } else { 100_000 });
        let shift = e.saturating_sub(4 * frac_part.len() as i32);
        Ok(v * 2f64.powi(shift))
    }
}

/// Go's `strconv.FormatFloat(x, fmt, prec, 64)` (Prometheus' APIs print
/// alert values with `'e', -1`).
pub use gofmt::format_float as go_format_float;
/// Go's `fmt` and `strconv` formatting of template values: `%v` and the
/// `printf` verbs, flags, widths and precisions, and Go's complaints for
/// mismatched verbs and arguments.
/// Go's `strconv.Quote`, for the promtool runner's reports too.
pub(crate) use gofmt::quote as go_quote;

mod gofmt {
    use super::{Sample, Value};

    /// Whether Go's `strconv.IsPrint` holds (approximated with Rust's
    /// Unicode tables: no control, format, separator other than ASCII
    /// space, private-use or unassigned characters).
    pub(super) fn is_print(c: char) -> bool {
        if c == ' ' {
            return true;
        }
        if c.is_control() || c.is_whitespace() {
            return false;
        }
        let u = c as u32;
        !matches!(u,
            0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
            | 0x202A..=0x202E | 0x2060..=0x206F | 0xD800..=0xF8FF | 0xFEFF | 0xFFF9..=0xFFFB
            | 0xF0000..=0x10FFFF | 0xE0000..=0xE007F)
    }

    fn quote_with(s: &str, ascii_only: bool, quote: char) -> String {
        let mut out = String::with_capacity(s.len() + 2);
        out.push(quote);
        for c in s.chars() {
            if c == quote || c == '\\' {
                out.push('\\');
                out.push(c);
                continue;
            }
            if if ascii_only { c.is_ascii() && is_print(c) } else { is_print(c) } {
                out.push(c);
                continue;
            }
            match c {
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x0b' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
                c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push_str(&format!("\\U{:08x}", c as u32)),
            }
        }
        out.push(quote);
        out
    }

    /// Go's `strconv.Quote`.
    pub(crate) fn quote(s: &str) -> String {
        quote_with(s, false, '"')
    }

    /// Go's `strconv.CanBackquote`.
    pub(super) fn can_backquote(s: &str) -> bool {
        s.chars().all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !(c < ' ' || c == '\x7f')))
    }

    /// Go's `%#U`: `U+0041 'A'`.
    pub(super) fn sharp_u(c: char) -> String {
        if is_print(c) {
            format!("U+{:04X} '{c}'", c as u32)
        } else {
            format!("U+{:04X}", c as u32)
        }
    }

    // ---- strconv.FormatFloat ----

    /// The decimal digits of a non-negative finite float (without trailing
    /// zeros) and the decimal point position, like Go's `decimalSlice`.
    struct Digits {
        d: Vec<u8>,
        dp: i32,
    }

    /// Splits Rust's `{:e}` output (`1.2345e-7`) into digits and point.
    fn digits_from_exp(s: &str) -> Digits {
        let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
        while d.last() == Some(&b'0') {
            d.pop();
        }
        if d.is_empty() {
            return Digits { d, dp: 0 };
        }
        Digits { d, dp: exp + 1 }
    }

    fn shortest_digits(a: f64) -> Digits {
        if a == 0.0 {
            return Digits { d: Vec::new(), dp: 0 };
        }
        digits_from_exp(&format!("{a:e}"))
    }

    /// `a` correctly rounded (ties to even) to `n` significant digits.
    fn rounded_digits(a: f64, n: usize) -> Digits {
        if a == 0.0 {
            return Digits { d: Vec::new(), dp: 0 };
        }
        digits_from_exp(&format!("{:.*e}", n.saturating_sub(1), a))
    }

    /// `a` correctly rounded to `prec` digits after the point.
    fn fixed_digits(a: f64, prec: usize) -> Digits {
        let s = format!("{a:.prec$}");
        let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
        let mut all: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
        let mut dp = int.len() as i32;
        while all.first() == Some(&b'0') {
            all.remove(0);
            dp -= 1;
        }
        while all.last() == Some(&b'0') {
            all.pop();
        }
        if all.is_empty() {
            dp = 0;
        }
        Digits { d: all, dp }
    }

    fn fmt_e(out: &mut String, d: &Digits, prec: i32, fmt: u8) {
        out.push(d.d.first().map_or('0', |&c| c as char));
        if prec > 0 {
            out.push('.');
            let nd = d.d.len() as i32;
            let m = nd.min(prec + 1);
            let mut i = 1;
            if i < m {
                for &c in &d.d[1..m as usize] {
                    out.push(c as char);
                }
                i = m;
            }
            while i <= prec {
                out.push('0');
                i += 1;
            }
        }
        out.push(fmt as char);
        let mut exp = if d.d.is_empty() { 0 } else { d.dp - 1 };
        if exp < 0 {
            out.push('-');
            exp = -exp;
        } else {
            out.push('+');
        }
        if exp < 10 {
            out.push('0');
        }
        out.push_str(&exp.to_string());
    }

    fn fmt_f(out: &mut String, d: &Digits, prec: i32) {
        let nd = d.d.len() as i32;
        if d.dp > 0 {
            let m = nd.min(d.dp);
            for &c in &d.d[..m as usize] {
                out.push(c as char);
            }
            for _ in m..d.dp {
                out.push('0');
            }
        } else {
            out.push('0');
        }
        if prec > 0 {
            out.push('.');
            for i in 1..=prec {
                let j = d.dp + i - 1;
                out.push(if 0 <= j && j < nd { d.d[j as usize] as char } else { '0' });
            }
        }
    }

    /// Go's `%b` of a float: `4503599627370496p-51`.
    fn fmt_b(out: &mut String, x: f64) {
        let bits = x.to_bits();
        let mut exp = ((bits >> 52) & 0x7ff) as i64;
        let mut mant = bits & ((1 << 52) - 1);
        if exp == 0 {
            exp += 1;
        } else {
            mant |= 1 << 52;
        }
        exp -= 1023 + 52;
        out.push_str(&mant.to_string());
        out.push('p');
        if exp >= 0 {
            out.push('+');
        }
        out.push_str(&exp.to_string());
    }

    /// Go's `%x`/`%X` of a float: `0x1.cp+01`.
    fn fmt_x(out: &mut String, x: f64, prec: i32, upper: bool) {
        let bits = x.to_bits();
        let mut exp = ((bits >> 52) & 0x7ff) as i64;
        let mut mant = bits & ((1 << 52) - 1);
        if exp == 0 {
            exp += 1;
        } else {
            mant |= 1 << 52;
        }
        exp -= 1023;
        if mant == 0 {
            exp = 0;
        }
        mant <<= 60 - 52;
        while mant != 0 && mant & (1 << 60) == 0 {
            mant <<= 1;
            exp -= 1;
        }
        if (0..15).contains(&prec) {
            let shift = (prec * 4) as u32;
            let extra = (mant << shift) & ((1 << 60) - 1);
            mant >>= 60 - shift;
            if extra | (mant & 1) > 1 << 59 {
                mant += 1;
            }
            mant <<= 60 - shift;
            if mant & (1 << 61) != 0 {
                mant >>= 1;
                exp += 1;
            }
        }
        let hex: &[u8; 16] = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
        out.push('0');
        out.push(if upper { 'X' } else { 'x' });
        out.push(if (mant >> 60) & 1 == 1 { '1' } else { '0' });
        mant <<= 4;
        if prec < 0 && mant != 0 {
            out.push('.');
            while mant != 0 {
                out.push(hex[((mant >> 60) & 15) as usize] as char);
                mant <<= 4;
            }
        } else if prec > 0 {
            out.push('.');
            for _ in 0..prec {
                out.push(hex[((mant >> 60) & 15) as usize] as char);
                mant <<= 4;
            }
        }
        out.push(if upper { 'P' } else { 'p' });
        if exp < 0 {
            out.push('-');
            exp = -exp;
        } else {
            out.push('+');
        }
        if exp < 10 {
            out.push('0');
        }
        out.push_str(&exp.to_string());
    }

    /// Go's `strconv.FormatFloat(x, fmt, prec, 64)`; `prec < 0` is the
    /// shortest representation that reads back exactly.
    pub fn format_float(x: f64, fmt: u8, prec: i32) -> String {
        if x.is_nan() {
            return "NaN".into();
        }
        if x.is_infinite() {
            return if x > 0.0 { "+Inf".into() } else { "-Inf".into() };
        }
        let mut out = String::new();
        if x.is_sign_negative() {
            out.push('-');
        }
        let a = x.abs();
        match fmt {
            b'b' => {
                fmt_b(&mut out, a);
                return out;
            }
            b'x' | b'X' => {
                fmt_x(&mut out, a, prec, fmt == b'X');
                return out;
            }
            _ => {}
        }
        let shortest = prec < 0;
        let mut prec = prec;
        let digs = if shortest {
            let d = shortest_digits(a);
            let nd = d.d.len() as i32;
            prec = match fmt {
                b'e' | b'E' => (nd - 1).max(0),
                b'f' => (nd - d.dp).max(0),
                _ => nd,
            };
            d
        } else {
            match fmt {
                b'e' | b'E' => rounded_digits(a, prec as usize + 1),
                b'f' => fixed_digits(a, prec as usize),
                _ => {
                    if prec == 0 {
                        prec = 1;
                    }
                    rounded_digits(a, prec as usize)
                }
            }
        };
        match fmt {
            b'e' | b'E' => fmt_e(&mut out, &digs, prec, fmt),
            b'f' => fmt_f(&mut out, &digs, prec),
            _ => {
                let nd = digs.d.len() as i32;
                let mut eprec = prec;
                if eprec > nd && nd >= digs.dp {
                    eprec = nd;
                }
                if shortest {
                    eprec = 6;
                }
                let exp = digs.dp - 1;
                if exp < -4 || exp >= eprec {
                    if prec > nd {
                        prec = nd;
                    }
                    fmt_e(&mut out, &digs, prec - 1, fmt + b'e' - b'g');
                } else {
                    if prec > digs.dp {
                        prec = nd;
                    }
                    fmt_f(&mut out, &digs, (prec - digs.dp).max(0));
                }
            }
        }
        out
    }

    // ---- fmt ----

    #[derive(Clone, Copy, Default)]
    pub(super) struct Flags {
        plus: bool,
        minus: bool,
        sharp: bool,
        space: bool,
        zero: bool,
        plus_v: bool,
        sharp_v: bool,
        wid: Option<usize>,
        prec: Option<usize>,
    }

    /// Go's `fmt.pp`: formats values into `buf` under the current flags.
    #[derive(Default)]
    struct Printer {
        buf: String,
        f: Flags,
        /// The Go type an integer being printed has, where it is not `int`.
        int_type: Option<&'static str>,
    }

    /// Go's `fmt.Sprint`: operands separated by a space when neither is a
    /// string.
    pub(super) fn sprint(args: &[Value]) -> String {
        let mut p = Printer::default();
        let mut prev_string = false;
        for (i, a) in args.iter().enumerate() {
            let is_string = matches!(a, Value::Str(_) | Value::Html(_));
            if i > 0 && !is_string && !prev_string {
                p.buf.push(' ');
            }
            p.print_value(a, 'v', 0);
            prev_string = is_string;
        }
        p.buf
    }

    /// Go's `fmt.Sprintln`.
    pub(super) fn sprintln(args: &[Value]) -> String {
        let mut p = Printer::default();
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                p.buf.push(' ');
            }
            p.print_value(a, 'v', 0);
        }
        p.buf.push('\n');
        p.buf
    }

    /// Go's `fmt.Sprintf("%s", v)`, for error messages.
    pub(super) fn sprint_verb(v: &Value, verb: char) -> String {
        let mut p = Printer::default();
        p.print_value(v, verb, 0);
        p.buf
    }

    /// What an action such as `{{ .x }}` prints: pointers are followed
    /// and a missing value is `<no value>` (Go's `printableValue`).
    pub(super) fn print_action(v: &Value) -> String {
        let mut p = Printer::default();
        match v {
            Value::Nil => return "<no value>".into(),
            Value::Sample(s) => p.print_sample_struct(s, 'v', 0),
            v => p.print_value(v, 'v', 0),
        }
        p.buf
    }

    /// Go's `evalArgs` for `html`, `js` and `urlquery`: a lone string as
    /// is, otherwise `fmt.Sprint` of the printable values.
    pub(super) fn eval_args(args: &[Value]) -> String {
        if let [Value::Str(s)] = args {
            return s.clone();
        }
        let printable: Vec<Value> = args
            .iter()
            .map(|a| match a {
                Value::Nil | Value::Sample(_) => Value::Str(print_action(a)),
                a => a.clone(),
            })
            .collect();
        // A dereferenced sample is a struct, not a string, for spacing.
        let mut p = Printer::default();
        let mut prev_string = false;
        for (i, (orig, a)) in args.iter().zip(&printable).enumerate() {
            let is_string = matches!(orig, Value::Str(_) | Value::Html(_) | Value::Nil);
            if i > 0 && !is_string && !prev_string {
                p.buf.push(' ');
            }
            match a {
                Value::Str(s) => p.buf.push_str(s),
                a => p.print_value(a, 'v', 0),
            }
            prev_string = is_string;
        }
        p.buf
    }

    fn too_large(n: usize) -> bool {
        n > 1_000_000
    }

    /// Go's `parsenum`: a decimal number in `s[start..end]`.
    fn parse_num(s: &[u8], start: usize, end: usize) -> (usize, bool, usize) {
        let mut num = 0usize;
        let mut is_num = false;
        let mut i = start;
        while i < end && s[i].is_ascii_digit() {
            if too_large(num) {
                return (0, false, end);
            }
            num = num * 10 + (s[i] - b'0') as usize;
            is_num = true;
            i += 1;
        }
        (num, is_num, i)
    }

    /// Go's `fmt.Sprintf`.
    pub(super) fn sprintf(format: &str, args: &[Value]) -> String {
        let mut p = Printer::default();
        let fb = format.as_bytes();
        let end = fb.len();
        let mut arg_num = 0usize;
        let mut reordered = false;
        let mut i = 0usize;
        'format: while i < end {
            let mut good_arg_num = true;
            let last = i;
            while i < end && fb[i] != b'%' {
                i += 1;
            }
            if i > last {
                p.buf.push_str(&format[last..i]);
            }
            if i >= end {
                break;
            }
            i += 1;
            p.f = Flags::default();
            while i < end {
                let c = fb[i];
                match c {
                    b'#' => p.f.sharp = true,
                    b'0' => p.f.zero = !p.f.minus,
                    b'+' => p.f.plus = true,
                    b'-' => {
                        p.f.minus = true;
                        p.f.zero = false;
                    }
                    b' ' => p.f.space = true,
                    _ => {
                        if c.is_ascii_lowercase() && arg_num < args.len() {
                            if c == b'v' {
                                p.f.sharp_v = p.f.sharp;
                                p.f.sharp = false;
                                p.f.plus_v = p.f.plus;
                                p.f.plus = false;
                            }
                            p.print_value(&args[arg_num], c as char, 0);
                            arg_num += 1;
                            i += 1;
                            continue 'format;
                        }
                        break;
                    }
                }
                i += 1;
            }
            // Argument index, width, precision.
            let mut after_index;
            (arg_num, i, after_index) = arg_number(&mut reordered, &mut good_arg_num, arg_num, fb, i, args.len());
            if i < end && fb[i] == b'*' {
                i += 1;
                let (n, ok, next) = int_from_arg(args, arg_num);
                arg_num = next;
                if !ok {
                    p.buf.push_str("%!(BADWIDTH)");
                    p.f.wid = None;
                } else if n < 0 {
                    p.f.wid = Some(n.unsigned_abs() as usize);
                    p.f.minus = true;
                    p.f.zero = false;
                } else {
                    p.f.wid = Some(n as usize);
                }
                after_index = false;
            } else {
                let (n, ok, next) = parse_num(fb, i, end);
                i = next;
                p.f.wid = ok.then_some(n);
                if after_index && ok {
                    good_arg_num = false;
                }
            }
            if i + 1 < end && fb[i] == b'.' {
                i += 1;
                if after_index {
                    good_arg_num = false;
                }
                (arg_num, i, after_index) = arg_number(&mut reordered, &mut good_arg_num, arg_num, fb, i, args.len());
                if i < end && fb[i] == b'*' {
                    i += 1;
                    let (n, ok, next) = int_from_arg(args, arg_num);
                    arg_num = next;
                    if n < 0 || !ok {
                        p.f.prec = None;
                        p.buf.push_str("%!(BADPREC)");
                    } else {
                        p.f.prec = Some(n as usize);
                    }
                    after_index = false;
                } else {
                    let (n, ok, next) = parse_num(fb, i, end);
                    i = next;
                    p.f.prec = Some(if ok { n } else { 0 });
                }
            }
            if !after_index {
                (arg_num, i, _) = arg_number(&mut reordered, &mut good_arg_num, arg_num, fb, i, args.len());
            }
            if i >= end {
                p.buf.push_str("%!(NOVERB)");
                break;
            }
            let verb = format[i..].chars().next().unwrap_or('%');
            i += verb.len_utf8();
            match verb {
                '%' => p.buf.push('%'),
                _ if !good_arg_num => {
                    p.buf.push_str("%!");
                    p.buf.push(verb);
                    p.buf.push_str("(BADINDEX)");
                }
                _ if arg_num >= args.len() => {
                    p.buf.push_str("%!");
                    p.buf.push(verb);
                    p.buf.push_str("(MISSING)");
                }
                _ => {
                    if verb == 'v' {
                        p.f.sharp_v = p.f.sharp;
                        p.f.sharp = false;
                        p.f.plus_v = p.f.plus;
                        p.f.plus = false;
                    }
                    p.print_value(&args[arg_num], verb, 0);
                    arg_num += 1;
                }
            }
        }
        if !reordered && arg_num < args.len() {
            p.f = Flags::default();
            p.buf.push_str("%!(EXTRA ");
            for (k, a) in args[arg_num..].iter().enumerate() {
                if k > 0 {
                    p.buf.push_str(", ");
                }
                if let Value::Nil = a {
                    p.buf.push_str("<nil>");
                } else {
                    p.buf.push_str(&a.type_name());
                    p.buf.push('=');
                    p.print_value(a, 'v', 0);
                }
            }
            p.buf.push(')');
        }
        p.buf
    }

    /// Go's `argNumber`: an explicit `[n]` argument index.
    fn arg_number(
        reordered: &mut bool,
        good: &mut bool,
        arg_num: usize,
        f: &[u8],
        i: usize,
        num_args: usize,
    ) -> (usize, usize, bool) {
        if f.len() <= i || f[i] != b'[' {
            return (arg_num, i, false);
        }
        *reordered = true;
        let s = &f[i..];
        let (index, wid, ok) = 'parse: {
            if s.len() < 3 {
                break 'parse (0, 1, false);
            }
            for j in 1..s.len() {
                if s[j] == b']' {
                    let (n, ok, newi) = parse_num(s, 1, j);
                    if !ok || newi != j {
                        break 'parse (0, j + 1, false);
                    }
                    break 'parse (n as i64 - 1, j + 1, true);
                }
            }
            (0, 1, false)
        };
        if ok && 0 <= index && (index as usize) < num_args {
            return (index as usize, i + wid, true);
        }
        *good = false;
        (arg_num, i + wid, ok)
    }

    fn int_from_arg(args: &[Value], arg_num: usize) -> (i64, bool, usize) {
        match args.get(arg_num) {
            Some(Value::Int(n)) if n.unsigned_abs() <= 1_000_000 => (*n, true, arg_num + 1),
            Some(_) => (0, false, arg_num + 1),
            None => (0, false, arg_num),
        }
    }

    impl Printer {
        fn write_padding(&mut self, n: usize) {
            let c = if self.f.zero { '0' } else { ' ' };
            for _ in 0..n {
                self.buf.push(c);
            }
        }

        /// Go's `fmt.pad`: width counted in runes.
        fn pad(&mut self, s: &str) {
            let Some(wid) = self.f.wid else {
                self.buf.push_str(s);
                return;
            };
            let n = wid.saturating_sub(s.chars().count());
            if self.f.minus {
                self.buf.push_str(s);
                self.write_padding(n);
            } else {
                self.write_padding(n);
                self.buf.push_str(s);
            }
        }

        fn truncate<'s>(&self, s: &'s str) -> &'s str {
            match self.f.prec {
                Some(p) => match s.char_indices().nth(p) {
                    Some((i, _)) => &s[..i],
                    None => s,
                },
                None => s,
            }
        }

        fn bad_verb(&mut self, v: &Value, verb: char) {
            self.buf.push_str("%!");
            self.buf.push(verb);
            self.buf.push('(');
            match v {
                Value::Nil => self.buf.push_str("<nil>"),
                v => {
                    match (v, self.int_type) {
                        (Value::Int(_), Some(t)) => self.buf.push_str(t),
                        _ => self.buf.push_str(&v.type_name()),
                    }
                    self.buf.push('=');
                    self.print_value(v, 'v', 0);
                }
            }
            self.buf.push(')');
        }

        /// Go's `printArg`/`printValue` for one operand.
        fn print_value(&mut self, v: &Value, verb: char, depth: usize) {
            if let Value::Nil = v {
                if depth > 0 {
                    self.buf.push_str(if self.f.sharp_v { "interface {}(nil)" } else { "<nil>" });
                } else if verb == 'T' || verb == 'v' {
                    self.pad("<nil>");
                } else {
                    self.bad_verb(v, verb);
                }
                return;
            }
            if depth == 0 && verb == 'T' {
                let t = v.type_name();
                let t = self.truncate(&t).to_string();
                self.pad(&t);
                return;
            }
            match v {
                Value::Nil => {}
                Value::Bool(b) => match verb {
                    't' | 'v' => self.pad(if *b { "true" } else { "false" }),
                    _ => self.bad_verb(v, verb),
                },
                Value::Int(i) => self.fmt_integer(*i, verb, v),
                Value::Float(x) => self.fmt_float_verb(*x, verb, v),
                Value::Str(s) | Value::Html(s) => self.fmt_string(s, verb, v),
                Value::Time(ms) => match verb {
                    'v' | 's' | 'x' | 'X' | 'q' => self.fmt_string(&super::funcs::time_string(*ms), verb, v),
                    _ => {
                        // The struct behind the pointer: wall clock (uint64),
                        // seconds since year 1 (int64), location (nil *Location).
                        let (secs, nanos) = (ms.div_euclid(1000), ms.rem_euclid(1000) * 1_000_000);
                        self.buf.push_str("&{");
                        self.int_type = Some("uint64");
                        self.fmt_integer(nanos, verb, &Value::Int(nanos));
                        self.buf.push(' ');
                        let ext = secs + 62_135_596_800;
                        self.int_type = Some("int64");
                        self.fmt_integer(ext, verb, &Value::Int(ext));
                        self.int_type = None;
                        self.buf.push(' ');
                        match verb {
                            'p' => self.pad("0x0"),
                            'b' | 'o' | 'd' => self.fmt_integer(0, verb, &Value::Int(0)),
                            _ => {
                                self.buf.push_str("%!");
                                self.buf.push(verb);
                                self.buf.push_str("(*time.Location=");
                                self.pad("<nil>");
                                self.buf.push(')');
                            }
                        }
                        self.buf.push('}');
                    }
                },
                Value::Sample(s) => {
                    if depth == 0 {
                        self.buf.push('&');
                        self.print_sample_struct(s, verb, depth + 1);
                    } else {
                        self.fmt_pointer(v, verb, 0);
                    }
                }
                Value::Record(fields) => {
                    if self.f.sharp_v {
                        self.buf.push_str(&v.type_name());
                    }
                    self.buf.push('{');
                    for (i, (name, fv)) in fields.iter().enumerate() {
                        if i > 0 {
                            self.buf.push_str(if self.f.sharp_v { ", " } else { " " });
                        }
                        if self.f.plus_v || self.f.sharp_v {
                            self.buf.push_str(name);
                            self.buf.push(':');
                        }
                        self.print_value(fv, verb, depth + 1);
                    }
                    self.buf.push('}');
                }
                Value::StrMap(m) => {
                    let entries: Vec<(&String, Value)> = m.iter().map(|(k, v)| (k, Value::Str(v.clone()))).collect();
                    self.print_map(v, &entries, verb, depth);
                }
                Value::Map(m) => {
                    let entries: Vec<(&String, Value)> = m.iter().map(|(k, v)| (k, v.clone())).collect();
                    self.print_map(v, &entries, verb, depth);
                }
                Value::List(items) => {
                    if self.f.sharp_v {
                        self.buf.push_str("[]interface {}{");
                    } else {
                        self.buf.push('[');
                    }
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            self.buf.push_str(if self.f.sharp_v { ", " } else { " " });
                        }
                        self.print_value(item, verb, depth + 1);
                    }
                    self.buf.push(if self.f.sharp_v { '}' } else { ']' });
                }
                Value::Vector(samples) => {
                    if self.f.sharp_v {
                        self.buf.push_str("template.queryResult{");
                    } else {
                        self.buf.push('[');
                    }
                    for (i, s) in samples.iter().enumerate() {
                        if i > 0 {
                            self.buf.push_str(if self.f.sharp_v { ", " } else { " " });
                        }
                        self.fmt_pointer(&Value::Sample(s.clone()), verb, i);
                    }
                    self.buf.push(if self.f.sharp_v { '}' } else { ']' });
                }
            }
        }

        fn print_sample_struct(&mut self, s: &Sample, verb: char, depth: usize) {
            if self.f.sharp_v {
                self.buf.push_str("template.sample");
            }
            self.buf.push('{');
            if self.f.plus_v || self.f.sharp_v {
                self.buf.push_str("Labels:");
            }
            self.print_value(&Value::StrMap(s.labels.clone()), verb, depth + 1);
            self.buf.push_str(if self.f.sharp_v { ", " } else { " " });
            if self.f.plus_v || self.f.sharp_v {
                self.buf.push_str("Value:");
            }
            self.print_value(&Value::Float(s.value), verb, depth + 1);
            self.buf.push('}');
        }

        /// A pointer inside a container prints as its address; Go's
        /// addresses are not reproducible, these are made up.
        fn fmt_pointer(&mut self, v: &Value, verb: char, index: usize) {
            let addr = 0x00c0_0001_0000_u64 + 16 * index as u64;
            match verb {
                'v' | 'p' => {
                    if self.f.sharp_v {
                        self.buf.push_str(&format!("(*template.sample)(0x{addr:x})"));
                    } else {
                        self.pad(&format!("0x{addr:x}"));
                    }
                }
                'b' | 'o' | 'd' | 'x' | 'X' => self.fmt_integer(addr as i64, verb, v),
                _ => self.bad_verb(v, verb),
            }
        }

        fn print_map(&mut self, v: &Value, entries: &[(&String, Value)], verb: char, depth: usize) {
            if self.f.sharp_v {
                self.buf.push_str(&v.type_name());
                self.buf.push('{');
            } else {
                self.buf.push_str("map[");
            }
            for (i, (k, val)) in entries.iter().enumerate() {
                if i > 0 {
                    self.buf.push_str(if self.f.sharp_v { ", " } else { " " });
                }
                self.print_value(&Value::Str((*k).clone()), verb, depth + 1);
                self.buf.push(':');
                self.print_value(val, verb, depth + 1);
            }
            self.buf.push(if self.f.sharp_v { '}' } else { ']' });
        }

        fn fmt_string(&mut self, s: &str, verb: char, v: &Value) {
            match verb {
                'v' if self.f.sharp_v => self.fmt_q(s),
                'v' | 's' => {
                    let t = self.truncate(s).to_string();
                    self.pad(&t);
                }
                'x' => self.fmt_sx(s, false),
                'X' => self.fmt_sx(s, true),
                'q' => self.fmt_q(s),
                _ => self.bad_verb(v, verb),
            }
        }

        fn fmt_q(&mut self, s: &str) {
            let s = self.truncate(s).to_string();
            if self.f.sharp && can_backquote(&s) {
                self.pad(&format!("`{s}`"));
            } else if self.f.plus {
                self.pad(&quote_with(&s, true, '"'));
            } else {
                self.pad(&quote(&s));
            }
        }

        fn fmt_sx(&mut self, s: &str, upper: bool) {
            let digits: &[u8; 16] = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
            let x = if upper { 'X' } else { 'x' };
            let b = s.as_bytes();
            let mut length = b.len();
            if let Some(p) = self.f.prec {
                length = length.min(p);
            }
            let mut width = 2 * length;
            if width > 0 {
                if self.f.space {
                    if self.f.sharp {
                        width *= 2;
                    }
                    width += length - 1;
                } else if self.f.sharp {
                    width += 2;
                }
            } else {
                if let Some(w) = self.f.wid {
                    self.write_padding(w);
                }
                return;
            }
            let wid = self.f.wid.unwrap_or(0);
            if wid > width && !self.f.minus {
                self.write_padding(wid - width);
            }
            if self.f.sharp {
                self.buf.push('0');
                self.buf.push(x);
            }
            for (i, &c) in b[..length].iter().enumerate() {
                if self.f.space && i > 0 {
                    self.buf.push(' ');
                    if self.f.sharp {
                        self.buf.push('0');
                        self.buf.push(x);
                    }
                }
                self.buf.push(digits[(c >> 4) as usize] as char);
                self.buf.push(digits[(c & 15) as usize] as char);
            }
            if wid > width && self.f.minus {
                self.write_padding(wid - width);
            }
        }

        fn fmt_integer(&mut self, i: i64, verb: char, v: &Value) {
            let (base, upper) = match verb {
                'v' | 'd' => (10, false),
                'b' => (2, false),
                'o' | 'O' => (8, false),
                'x' => (16, false),
                'X' => (16, true),
                'c' => {
                    let c = u32::try_from(i).ok().and_then(char::from_u32).unwrap_or('\u{FFFD}');
                    self.pad(&c.to_string());
                    return;
                }
                'q' => {
                    let c = u32::try_from(i).ok().and_then(char::from_u32).unwrap_or('\u{FFFD}');
                    // Go's fmtQc ignores `#`: runes are never backquoted.
                    let q = quote_with(&c.to_string(), self.f.plus, '\'');
                    self.pad(&q);
                    return;
                }
                'U' => {
                    let u = i as u64;
                    let width = self.f.prec.map_or(4, |p| p.max(4));
                    let mut s = format!("U+{u:0width$X}");
                    if self.f.sharp {
                        if let Some(c) = u32::try_from(u).ok().and_then(char::from_u32).filter(|&c| is_print(c)) {
                            s.push_str(&format!(" '{c}'"));
                        }
                    }
                    let saved = self.f.zero;
                    self.f.zero = false;
                    self.pad(&s);
                    self.f.zero = saved;
                    return;
                }
                _ => {
                    self.bad_verb(v, verb);
                    return;
                }
            };
            let negative = i < 0;
            let mut u = i.unsigned_abs();
            let mut prec = 0usize;
            if let Some(p) = self.f.prec {
                prec = p;
                if p == 0 && u == 0 {
                    let saved = self.f.zero;
                    self.f.zero = false;
                    let w = self.f.wid.unwrap_or(0);
                    self.write_padding(w);
                    self.f.zero = saved;
                    return;
                }
            } else if self.f.zero && self.f.wid.is_some() {
                prec = self.f.wid.unwrap_or(0);
                if negative || self.f.plus || self.f.space {
                    prec = prec.saturating_sub(1);
                }
            }
            let digits: &[u8] = if upper { b"0123456789ABCDEFX" } else { b"0123456789abcdefx" };
            let mut rev: Vec<u8> = Vec::new();
            loop {
                rev.push(digits[(u % base) as usize]);
                u /= base;
                if u == 0 {
                    break;
                }
            }
            while rev.len() < prec {
                rev.push(b'0');
            }
            if self.f.sharp {
                match base {
                    2 => rev.extend_from_slice(b"b0"),
                    8 if rev.last() != Some(&b'0') => rev.push(b'0'),
                    16 => {
                        rev.push(digits[16]);
                        rev.push(b'0');
                    }
                    _ => {}
                }
            }
            if verb == 'O' {
                rev.extend_from_slice(b"o0");
            }
            if negative {
                rev.push(b'-');
            } else if self.f.plus {
                rev.push(b'+');
            } else if self.f.space {
                rev.push(b' ');
            }
            rev.reverse();
            let s = String::from_utf8_lossy(&rev).into_owned();
            let saved = self.f.zero;
            self.f.zero = false;
            self.pad(&s);
            self.f.zero = saved;
        }

        fn fmt_float_verb(&mut self, x: f64, verb: char, v: &Value) {
            match verb {
                'v' => self.fmt_float(x, b'g', -1),
                'b' | 'g' | 'G' | 'x' | 'X' => self.fmt_float(x, verb as u8, -1),
                'f' | 'e' | 'E' => self.fmt_float(x, verb as u8, 6),
                'F' => self.fmt_float(x, b'f', 6),
                _ => self.bad_verb(v, verb),
            }
        }

        /// Go's `fmt.fmtFloat`: sign, padding and the `#` flag around
        /// `strconv.FormatFloat`.
        fn fmt_float(&mut self, x: f64, verb: u8, prec: i32) {
            let prec = self.f.prec.map_or(prec, |p| p as i32);
            let mut num = format_float(x, verb, prec);
            if !(num.starts_with('-') || num.starts_with('+')) {
                num.insert(0, '+');
            }
            if self.f.space && num.starts_with('+') && !self.f.plus {
                num.replace_range(0..1, " ");
            }
            if num[1..].starts_with('I') || num[1..].starts_with('N') {
                let saved = self.f.zero;
                self.f.zero = false;
                if num[1..].starts_with('N') && !self.f.space && !self.f.plus {
                    num.remove(0);
                }
                self.pad(&num);
                self.f.zero = saved;
                return;
            }
            if self.f.sharp && verb != b'b' {
                num = sharp_float(&num, verb, prec);
            }
            if self.f.plus || !num.starts_with('+') {
                if let Some(w) = self.f.wid {
                    if self.f.zero && w > num.len() {
                        self.buf.push_str(&num[..1]);
                        self.write_padding(w - num.len());
                        self.buf.push_str(&num[1..]);
                        return;
                    }
                }
                self.pad(&num);
                return;
            }
            self.pad(&num[1..]);
        }
    }

    /// The `#` flag on floats: always a decimal point, and for `%g` the
    /// trailing zeros up to the precision.
    fn sharp_float(num: &str, verb: u8, prec: i32) -> String {
        let mut digits: i32 = match verb {
            b'v' | b'g' | b'G' | b'x' => {
                if prec == -1 {
                    6
                } else {
                    prec
                }
            }
            _ => 0,
        };
        let mut body = num.as_bytes().to_vec();
        let mut tail = Vec::new();
        let mut has_point = false;
        let mut saw_nonzero = false;
        let mut i = 1;
        while i < body.len() {
            match body[i] {
                b'.' => has_point = true,
                b'p' | b'P' => {
                    tail = body.split_off(i);
                    break;
                }
                b'e' | b'E' if verb != b'x' && verb != b'X' => {
                    tail = body.split_off(i);
                    break;
                }
                c => {
                    if c != b'0' {
                        saw_nonzero = true;
                    }
                    if saw_nonzero {
                        digits -= 1;
                    }
                }
            }
            i += 1;
        }
        if !has_point {
            if body.len() == 2 && body[1] == b'0' {
                digits -= 1;
            }
            body.push(b'.');
        }
        while digits > 0 {
            body.push(b'0');
            digits -= 1;
        }
        body.extend_from_slice(&tail);
        String::from_utf8_lossy(&body).into_owned()
    }
}

/// Go's builtin template functions and Prometheus' template functions,
/// with their Go signatures.
mod funcs {
    use super::gofmt::{self, quote};
    use super::strconv::{parse_float, FloatErr};
    use super::{Env, Sample, Value};

    /// A parameter's Go type, for argument checking and conversion.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) enum Ty {
        /// `interface {}`.
        Any,
        /// `reflect.Value` (the builtins' parameters).
        Rv,
        Str,
        SamplePtr,
        QueryResult,
    }

    impl Ty {
        pub fn name(self) -> &'static str {
            match self {
                Ty::Any => "interface {}",
                Ty::Rv => "reflect.Value",
                Ty::Str => "string",
                Ty::SamplePtr => "*template.sample",
                Ty::QueryResult => "template.queryResult",
            }
        }

        pub fn can_be_nil(self) -> bool {
            !matches!(self, Ty::Str)
        }

        /// The zero value of the type, which a `nil` becomes.
        pub fn zero(self) -> Value {
            match self {
                Ty::QueryResult => Value::Vector(Vec::new()),
                Ty::Str => Value::Str(String::new()),
                _ => Value::Nil,
            }
        }

        pub fn accepts(self, v: &Value) -> bool {
            match self {
                Ty::Any | Ty::Rv => true,
                Ty::Str => matches!(v, Value::Str(_)),
                Ty::SamplePtr => matches!(v, Value::Sample(_)),
                Ty::QueryResult => matches!(v, Value::Vector(_)),
            }
        }
    }

    /// A function or method: its fixed parameters, then an optional
    /// variadic one.
    pub(super) struct Sig {
        pub fixed: &'static [Ty],
        pub variadic: Option<Ty>,
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub(super) enum F {
        And,
        Or,
        Not,
        Len,
        Index,
        Slice,
        Print,
        Printf,
        Println,
        Eq,
        Ne,
        Lt,
        Le,
        Gt,
        Ge,
        Html,
        Js,
        UrlQuery,
        Call,
        Query,
        First,
        Label,
        SampleValue,
        StrValue,
        Args,
        ReReplaceAll,
        SafeHtml,
        Match,
        Title,
        ToUpper,
        ToLower,
        GraphLink,
        TableLink,
        SortByLabel,
        StripPort,
        StripDomain,
        Humanize,
        Humanize1024,
        HumanizeDuration,
        HumanizePercentage,
        HumanizeTimestamp,
        ToTime,
        PathPrefix,
        ExternalUrl,
        ParseDuration,
        // Methods of *time.Time.
        TimeUnix,
        TimeUnixMilli,
        TimeUnixMicro,
        TimeUnixNano,
        TimeYear,
        TimeMonth,
        TimeDay,
        TimeHour,
        TimeMinute,
        TimeSecond,
        TimeNanosecond,
        TimeYearDay,
        TimeWeekday,
        TimeString,
        TimeUtc,
        TimeFormat,
        TimeIsZero,
    }

    const FUNCS: &[(&str, F)] = &[
        ("and", F::And),
        ("or", F::Or),
        ("not", F::Not),
        ("len", F::Len),
        ("index", F::Index),
        ("slice", F::Slice),
        ("print", F::Print),
        ("printf", F::Printf),
        ("println", F::Println),
        ("eq", F::Eq),
        ("ne", F::Ne),
        ("lt", F::Lt),
        ("le", F::Le),
        ("gt", F::Gt),
        ("ge", F::Ge),
        ("html", F::Html),
        ("js", F::Js),
        ("urlquery", F::UrlQuery),
        ("call", F::Call),
        ("query", F::Query),
        ("first", F::First),
        ("label", F::Label),
        ("value", F::SampleValue),
        ("strvalue", F::StrValue),
        ("args", F::Args),
        ("reReplaceAll", F::ReReplaceAll),
        ("safeHtml", F::SafeHtml),
        ("match", F::Match),
        ("title", F::Title),
        ("toUpper", F::ToUpper),
        ("toLower", F::ToLower),
        ("graphLink", F::GraphLink),
        ("tableLink", F::TableLink),
        ("sortByLabel", F::SortByLabel),
        ("stripPort", F::StripPort),
        ("stripDomain", F::StripDomain),
        ("humanize", F::Humanize),
        ("humanize1024", F::Humanize1024),
        ("humanizeDuration", F::HumanizeDuration),
        ("humanizePercentage", F::HumanizePercentage),
        ("humanizeTimestamp", F::HumanizeTimestamp),
        ("toTime", F::ToTime),
        ("pathPrefix", F::PathPrefix),
        ("externalURL", F::ExternalUrl),
        ("parseDuration", F::ParseDuration),
    ];

    const TIME_METHODS: &[(&str, F)] = &[
        ("Unix", F::TimeUnix),
        ("UnixMilli", F::TimeUnixMilli),
        ("UnixMicro", F::TimeUnixMicro),
        ("UnixNano", F::TimeUnixNano),
        ("Year", F::TimeYear),
        ("Month", F::TimeMonth),
        ("Day", F::TimeDay),
        ("Hour", F::TimeHour),
        ("Minute", F::TimeMinute),
        ("Second", F::TimeSecond),
        ("Nanosecond", F::TimeNanosecond),
        ("YearDay", F::TimeYearDay),
        ("Weekday", F::TimeWeekday),
        ("String", F::TimeString),
        ("UTC", F::TimeUtc),
        ("Format", F::TimeFormat),
        ("IsZero", F::TimeIsZero),
    ];

    pub(super) fn lookup(name: &str) -> Option<F> {
        FUNCS.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
    }

    pub(super) fn exists(name: &str) -> bool {
        lookup(name).is_some()
    }

    pub(super) fn time_method(name: &str) -> Option<F> {
        TIME_METHODS.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
    }

    pub(super) fn sig(f: F) -> Sig {
        use Ty::*;
        let (fixed, variadic): (&'static [Ty], Option<Ty>) = match f {
            F::And | F::Or | F::Index | F::Slice | F::Eq | F::Call => (&[Rv], Some(Rv)),
            F::Not | F::Len => (&[Rv], None),
            F::Ne | F::Lt | F::Le | F::Gt | F::Ge => (&[Rv, Rv], None),
            F::Print | F::Println | F::Html | F::Js | F::UrlQuery | F::Args => (&[], Some(Any)),
            F::Printf => (&[Str], Some(Any)),
            F::Query
            | F::SafeHtml
            | F::Title
            | F::ToUpper
            | F::ToLower
            | F::GraphLink
            | F::TableLink
            | F::StripPort
            | F::StripDomain
            | F::ParseDuration
            | F::TimeFormat => (&[Str], None),
            F::First => (&[QueryResult], None),
            F::Label => (&[Str, SamplePtr], None),
            F::SampleValue | F::StrValue => (&[SamplePtr], None),
            F::ReReplaceAll => (&[Str, Str, Str], None),
            F::Match => (&[Str, Str], None),
            F::SortByLabel => (&[Str, QueryResult], None),
            F::Humanize
            | F::Humanize1024
            | F::HumanizeDuration
            | F::HumanizePercentage
            | F::HumanizeTimestamp
            | F::ToTime => (&[Any], None),
            F::PathPrefix
            | F::ExternalUrl
            | F::TimeUnix
            | F::TimeUnixMilli
            | F::TimeUnixMicro
            | F::TimeUnixNano
            | F::TimeYear
            | F::TimeMonth
            | F::TimeDay
            | F::TimeHour
            | F::TimeMinute
            | F::TimeSecond
            | F::TimeNanosecond
            | F::TimeYearDay
            | F::TimeWeekday
            | F::TimeString
            | F::TimeUtc
            | F::TimeIsZero => (&[], None),
        };
        Sig { fixed, variadic }
    }

    const NIL_DEREF: &str = "runtime error: invalid memory address or nil pointer dereference";

    fn str_arg(v: Option<&Value>) -> &str {
        match v {
            Some(Value::Str(s)) => s,
            _ => "",
        }
    }

    fn sample_arg(v: Option<&Value>) -> Result<&Sample, String> {
        match v {
            Some(Value::Sample(s)) => Ok(s),
            _ => Err(NIL_DEREF.into()),
        }
    }

    /// Calls `f` with arguments already checked against its signature;
    /// `recv` is the receiver of a `*time.Time` method (Unix ms).
    pub(super) fn call(f: F, args: &[Value], recv: i64, env: &dyn Env) -> Result<Value, String> {
        let a0 = args.first();
        let a1 = args.get(1);
        Ok(match f {
            F::And | F::Or => Value::Nil, // Evaluated lazily by the executor.
            F::Not => Value::Bool(!a0.is_some_and(Value::truth)),
            F::Len => Value::Int(length(a0.unwrap_or(&Value::Nil))?),
            F::Index => index(a0.unwrap_or(&Value::Nil), &args[1.min(args.len())..])?,
            F::Slice => slice(a0.unwrap_or(&Value::Nil), &args[1.min(args.len())..])?,
            F::Print => Value::Str(gofmt::sprint(args)),
            F::Println => Value::Str(gofmt::sprintln(args)),
            F::Printf => Value::Str(gofmt::sprintf(str_arg(a0), &args[1.min(args.len())..])),
            F::Eq => Value::Bool(eq(a0.unwrap_or(&Value::Nil), &args[1.min(args.len())..])?),
            F::Ne => Value::Bool(!eq(a0.unwrap_or(&Value::Nil), &args[1.min(args.len())..])?),
            F::Lt => Value::Bool(lt(a0.unwrap_or(&Value::Nil), a1.unwrap_or(&Value::Nil))?),
            F::Le => Value::Bool(le(a0.unwrap_or(&Value::Nil), a1.unwrap_or(&Value::Nil))?),
            F::Gt => Value::Bool(!le(a0.unwrap_or(&Value::Nil), a1.unwrap_or(&Value::Nil))?),
            F::Ge => Value::Bool(!lt(a0.unwrap_or(&Value::Nil), a1.unwrap_or(&Value::Nil))?),
            F::Html => Value::Str(html_escape(&gofmt::eval_args(args))),
            F::Js => Value::Str(js_escape(&gofmt::eval_args(args))),
            F::UrlQuery => Value::Str(query_escape(&gofmt::eval_args(args))),
            F::Call => match a0 {
                None | Some(Value::Nil) => return Err("call of nil".into()),
                Some(v) => return Err(format!("non-function of type {}", v.type_name())),
            },
            F::Query => Value::Vector(env.query(str_arg(a0))?),
            F::First => match a0 {
                Some(Value::Vector(v)) if !v.is_empty() => Value::Sample(v[0].clone()),
                _ => return Err("first() called on vector with no elements".into()),
            },
            F::Label => {
                let s = sample_arg(a1)?;
                Value::Str(s.labels.get(str_arg(a0)).cloned().unwrap_or_default())
            }
            F::SampleValue => Value::Float(sample_arg(a0)?.value),
            F::StrValue => Value::Str(sample_arg(a0)?.labels.get("__value__").cloned().unwrap_or_default()),
            F::Args => Value::Map(args.iter().enumerate().map(|(i, a)| (format!("arg{i}"), a.clone())).collect()),
            F::ReReplaceAll => {
                let pattern = str_arg(a0);
                let re = compile(pattern).map_err(|e| {
                    let shown = if gofmt::can_backquote(pattern) { format!("`{pattern}`") } else { quote(pattern) };
                    format!("regexp: Compile({shown}): {e}")
                })?;
                Value::Str(replace_all(&re, str_arg(args.get(2)), str_arg(a1)))
            }
            F::SafeHtml => Value::Html(str_arg(a0).to_string()),
            F::Match => Value::Bool(compile(str_arg(a0))?.is_match(str_arg(a1))),
            F::Title => Value::Str(title(str_arg(a0))),
            F::ToUpper => Value::Str(str_arg(a0).chars().map(to_upper).collect()),
            F::ToLower => Value::Str(str_arg(a0).chars().map(to_lower).collect()),
            F::GraphLink => Value::Str(format!("/graph?g0.expr={}&g0.tab=0", query_escape(str_arg(a0)))),
            F::TableLink => Value::Str(format!("/graph?g0.expr={}&g0.tab=1", query_escape(str_arg(a0)))),
            F::SortByLabel => {
                let label = str_arg(a0);
                let mut v = match a1 {
                    Some(Value::Vector(v)) => v.clone(),
                    _ => Vec::new(),
                };
                v.sort_by(|x, y| {
                    let a = x.labels.get(label).map_or("", String::as_str);
                    let b = y.labels.get(label).map_or("", String::as_str);
                    a.cmp(b)
                });
                Value::Vector(v)
            }
            F::StripPort => {
                let hp = str_arg(a0);
                Value::Str(match split_host_port(hp) {
                    Some((host, _)) => host.to_string(),
                    None => hp.to_string(),
                })
            }
            F::StripDomain => Value::Str(strip_domain(str_arg(a0))),
            F::Humanize => Value::Str(humanize(to_float(a0)?)),
            F::Humanize1024 => Value::Str(humanize1024(to_float(a0)?)),
            F::HumanizeDuration => Value::Str(humanize_duration(to_float(a0)?)),
            F::HumanizePercentage => Value::Str(gofmt::sprintf("%.4g%%", &[Value::Float(to_float(a0)? * 100.0)])),
            F::HumanizeTimestamp => {
                let v = to_float(a0)?;
                match float_to_time(v)? {
                    None => Value::Str(g4(v)),
                    Some(ms) => Value::Str(time_string(ms)),
                }
            }
            F::ToTime => match float_to_time(to_float(a0)?)? {
                None => return Err("value is NaN or Inf".into()),
                Some(ms) => Value::Time(ms),
            },
            F::PathPrefix => Value::Str(url_path(env.external_url())),
            F::ExternalUrl => Value::Str(env.external_url().to_string()),
            F::ParseDuration => Value::Float(parse_duration(str_arg(a0))?),
            F::TimeUnix => Value::Int(recv.div_euclid(1000)),
            F::TimeUnixMilli => Value::Int(recv),
            F::TimeUnixMicro => Value::Int(recv.saturating_mul(1000)),
            F::TimeUnixNano => Value::Int(recv.saturating_mul(1_000_000)),
            F::TimeYear => Value::Int(Civil::new(recv).year),
            F::TimeMonth => Value::Str(MONTHS[Civil::new(recv).month as usize - 1].to_string()),
            F::TimeDay => Value::Int(Civil::new(recv).day),
            F::TimeHour => Value::Int(Civil::new(recv).hour),
            F::TimeMinute => Value::Int(Civil::new(recv).minute),
            F::TimeSecond => Value::Int(Civil::new(recv).second),
            F::TimeNanosecond => Value::Int(Civil::new(recv).nanos),
            F::TimeYearDay => Value::Int(Civil::new(recv).yday),
            F::TimeWeekday => Value::Str(DAYS[Civil::new(recv).weekday as usize].to_string()),
            F::TimeString => Value::Str(time_string(recv)),
            F::TimeUtc => Value::Time(recv),
            F::TimeFormat => Value::Str(time_format(recv, str_arg(a0))),
            F::TimeIsZero => Value::Bool(recv == -62_135_596_800_000),
        })
    }

    // ---- Builtins ----

    fn length(v: &Value) -> Result<i64, String> {
        Ok(match v {
            Value::Nil => return Err("reflect: call of reflect.Value.Type on zero Value".into()),
            Value::Str(s) | Value::Html(s) => s.len() as i64,
            Value::Map(m) => m.len() as i64,
            Value::StrMap(m) => m.len() as i64,
            Value::List(l) => l.len() as i64,
            Value::Vector(v) => v.len() as i64,
            v => return Err(format!("len of type {}", indirect_type(v))),
        })
    }

    /// The type behind a pointer, as Go's `indirect` reports it.
    fn indirect_type(v: &Value) -> String {
        match v {
            Value::Sample(_) => "template.sample".into(),
            Value::Time(_) => "time.Time".into(),
            v => v.type_name(),
        }
    }

    fn index_arg(index: &Value, cap: usize) -> Result<usize, String> {
        match index {
            Value::Int(x) => {
                if *x < 0 || *x as u64 > cap as u64 {
                    return Err(format!("index out of range: {x}"));
                }
                Ok(*x as usize)
            }
            Value::Nil => Err("cannot index slice/array with nil".into()),
            v => Err(format!("cannot index slice/array with type {}", v.type_name())),
        }
    }

    fn map_key(index: &Value) -> Result<&str, String> {
        match index {
            Value::Str(s) => Ok(s),
            Value::Nil => Err("value is nil; should be of type string".into()),
            v => Err(format!("value has type {}; should be string", v.type_name())),
        }
    }

    fn index(item: &Value, indexes: &[Value]) -> Result<Value, String> {
        if let Value::Nil = item {
            return Err("index of untyped nil".into());
        }
        let mut item = item.clone();
        for index in indexes {
            item = match &item {
                Value::Str(s) | Value::Html(s) => {
                    let x = index_arg(index, s.len())?;
                    match s.as_bytes().get(x) {
                        Some(b) => Value::Int(*b as i64),
                        None => return Err(format!("index out of range: {x}")),
                    }
                }
                Value::List(l) => {
                    let x = index_arg(index, l.len())?;
                    match l.get(x) {
                        Some(v) => v.clone(),
                        None => return Err(format!("index out of range: {x}")),
                    }
                }
                Value::Vector(v) => {
                    let x = index_arg(index, v.len())?;
                    match v.get(x) {
                        Some(s) => Value::Sample(s.clone()),
                        None => return Err(format!("index out of range: {x}")),
                    }
                }
                Value::StrMap(m) => Value::Str(m.get(map_key(index)?).cloned().unwrap_or_default()),
                Value::Map(m) => m.get(map_key(index)?).cloned().unwrap_or(Value::Nil),
                Value::Nil => return Err("index of untyped nil".into()),
                v => return Err(format!("can't index item of type {}", indirect_type(v))),
            };
        }
        Ok(item)
    }

    fn slice(item: &Value, indexes: &[Value]) -> Result<Value, String> {
        if let Value::Nil = item {
            return Err("slice of untyped nil".into());
        }
        if indexes.len() > 3 {
            return Err(format!("too many slice indexes: {}", indexes.len()));
        }
        let len = match item {
            Value::Str(s) | Value::Html(s) => {
                if indexes.len() == 3 {
                    return Err("cannot 3-index slice a string".into());
                }
                s.len()
            }
            Value::List(l) => l.len(),
            Value::Vector(v) => v.len(),
            v => return Err(format!("can't slice item of type {}", v.type_name())),
        };
        let mut idx = [0, len, 0];
        for (i, index) in indexes.iter().enumerate() {
            idx[i] = index_arg(index, len)?;
        }
        if idx[0] > idx[1] {
            return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
        }
        if indexes.len() == 3 && idx[1] > idx[2] {
            return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
        }
        let (a, b) = (idx[0], idx[1]);
        Ok(match item {
            Value::Str(s) => Value::Str(String::from_utf8_lossy(&s.as_bytes()[a..b]).into_owned()),
            Value::Html(s) => Value::Html(String::from_utf8_lossy(&s.as_bytes()[a..b]).into_owned()),
            Value::List(l) => Value::List(l[a..b].to_vec()),
            Value::Vector(v) => Value::Vector(v[a..b].to_vec()),
            _ => Value::Nil,
        })
    }

    fn is_comparable(v: &Value) -> bool {
        match v {
            Value::Map(_) | Value::StrMap(_) | Value::List(_) | Value::Vector(_) => false,
            Value::Record(fields) => fields.iter().all(|(_, f)| is_comparable(f)),
            _ => true,
        }
    }

    /// Go 1.19's `eq`: `a == b || a == c || ...`.
    fn eq(a1: &Value, rest: &[Value]) -> Result<bool, String> {
        if rest.is_empty() {
            return Err("missing argument for comparison".into());
        }
        let k1 = a1.basic_kind();
        for a in rest {
            let k2 = a.basic_kind();
            let truth = if k1 != k2 {
                if !matches!(a1, Value::Nil) && !matches!(a, Value::Nil) {
                    return Err("incompatible types for comparison".into());
                }
                false
            } else {
                match (a1, a) {
                    (Value::Bool(x), Value::Bool(y)) => x == y,
                    (Value::Int(x), Value::Int(y)) => x == y,
                    (Value::Float(x), Value::Float(y)) => x == y,
                    (Value::Str(x) | Value::Html(x), Value::Str(y) | Value::Html(y)) => x == y,
                    _ => {
                        let (r1, r2) = (a1.reflect_kind(), a.reflect_kind());
                        if r1 != r2 && r1 != "invalid" && r2 != "invalid" {
                            return Err(format!(
                                "non-comparable types {}: {}, {}: {}",
                                gofmt::sprint_verb(a1, 's'),
                                a1.type_name(),
                                a.type_name(),
                                gofmt::sprint_verb(a, 'v')
                            ));
                        }
                        let (n1, n2) = (matches!(a1, Value::Nil), matches!(a, Value::Nil));
                        if n1 || n2 {
                            n1 == n2
                        } else {
                            if !is_comparable(a) {
                                return Err(format!(
                                    "non-comparable type {}: {}",
                                    gofmt::sprint_verb(a, 's'),
                                    a.type_name()
                                ));
                            }
                            a1 == a
                        }
                    }
                }
            };
            if truth {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn lt(a: &Value, b: &Value) -> Result<bool, String> {
        let (k1, k2) = (a.basic_kind(), b.basic_kind());
        if k1 == super::Kind::Invalid || k2 == super::Kind::Invalid {
            return Err("invalid type for comparison".into());
        }
        if k1 != k2 {
            return Err("incompatible types for comparison".into());
        }
        Ok(match (a, b) {
            (Value::Int(x), Value::Int(y)) => x < y,
            (Value::Float(x), Value::Float(y)) => x < y,
            (Value::Str(x) | Value::Html(x), Value::Str(y) | Value::Html(y)) => x < y,
            _ => return Err("invalid type for comparison".into()),
        })
    }

    fn le(a: &Value, b: &Value) -> Result<bool, String> {
        if lt(a, b)? {
            return Ok(true);
        }
        eq(a, std::slice::from_ref(b))
    }

    fn html_escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '"' => out.push_str("&#34;"),
                '\'' => out.push_str("&#39;"),
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '\0' => out.push('\u{FFFD}'),
                c => out.push(c),
            }
        }
        out
    }

    fn js_escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("\\'"),
                '"' => out.push_str("\\\""),
                '<' => out.push_str("\\u003C"),
                '>' => out.push_str("\\u003E"),
                '&' => out.push_str("\\u0026"),
                '=' => out.push_str("\\u003D"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u00{:02X}", c as u32)),
                c if c.is_ascii() || gofmt::is_print(c) => out.push(c),
                c => out.push_str(&format!("\\u{:04X}", c as u32)),
            }
        }
        out
    }

    /// Go's `url.QueryEscape`.
    pub(super) fn query_escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
                b' ' => out.push('+'),
                b => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }

    // ---- Prometheus' functions ----

    /// Prometheus' `convertToFloat`.
    fn to_float(v: Option<&Value>) -> Result<f64, String> {
        match v {
            Some(Value::Float(f)) => Ok(*f),
            Some(Value::Int(i)) => Ok(*i as f64),
            Some(Value::Str(s)) => parse_float(s).map_err(|e| {
                let why = match e {
                    FloatErr::Syntax => "invalid syntax",
                    FloatErr::Range => "value out of range",
                };
                format!("strconv.ParseFloat: parsing {}: {why}", quote(s))
            }),
            Some(v) => Err(format!("can't convert {} to float", v.type_name())),
            None => Err("can't convert <nil> to float".into()),
        }
    }

    fn g4(v: f64) -> String {
        gofmt::sprintf("%.4g", &[Value::Float(v)])
    }

    fn humanize(v: f64) -> String {
        if v == 0.0 || !v.is_finite() {
            return g4(v);
        }
        let mut v = v;
        let mut prefix = "";
        if v.abs() >= 1.0 {
            for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
                if v.abs() < 1000.0 {
                    break;
                }
                prefix = p;
                v /= 1000.0;
            }
        } else {
            for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
                if v.abs() >= 1.0 {
                    break;
                }
                prefix = p;
                v *= 1000.0;
            }
        }
        format!("{}{prefix}", g4(v))
    }

    fn humanize1024(v: f64) -> String {
        if v.abs() <= 1.0 || !v.is_finite() {
            return g4(v);
        }
        let mut v = v;
        let mut prefix = "";
        for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
            if v.abs() < 1024.0 {
                break;
            }
            prefix = p;
            v /= 1024.0;
        }
        format!("{}{prefix}", g4(v))
    }

    fn humanize_duration(v: f64) -> String {
        if !v.is_finite() {
            return g4(v);
        }
        if v == 0.0 {
            return format!("{}s", g4(v));
        }
        if v.abs() >= 1.0 {
            let (sign, v) = if v < 0.0 { ("-", -v) } else { ("", v) };
            let duration = go_f64_to_i64(v);
            let seconds = duration % 60;
            let minutes = (duration / 60) % 60;
            let hours = (duration / 60 / 60) % 24;
            let days = duration / 60 / 60 / 24;
            if days != 0 {
                return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
            }
            if hours != 0 {
                return format!("{sign}{hours}h {minutes}m {seconds}s");
            }
            if minutes != 0 {
                return format!("{sign}{minutes}m {seconds}s");
            }
            return format!("{sign}{}s", g4(v));
        }
        let mut v = v;
        let mut prefix = "";
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
        format!("{}{prefix}s", g4(v))
    }

    /// Go's `int64(f)` on amd64: truncation, and `math.MinInt64` for
    /// anything out of range (or NaN), where Rust would saturate.
    fn go_f64_to_i64(f: f64) -> i64 {
        // 2^63: the first float past i64::MAX; -2^63 is i64::MIN itself.
        const TWO_63: f64 = 9_223_372_036_854_775_808.0;
        if f.is_nan() || !(-TWO_63..TWO_63).contains(&f) {
            return i64::MIN;
        }
        f as i64
    }

    /// Prometheus' `floatToTime`: seconds to Unix milliseconds (through
    /// nanoseconds, truncating, as `model.TimeFromUnixNano` does); `None`
    /// for NaN and infinities.
    fn float_to_time(v: f64) -> Result<Option<i64>, String> {
        if !v.is_finite() {
            return Ok(None);
        }
        let ts = v * 1e9;
        if ts > i64::MAX as f64 || ts < i64::MIN as f64 {
            return Err(format!(
                "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
                gofmt::sprint(&[Value::Float(v)])
            ));
        }
        Ok(Some(go_f64_to_i64(ts) / 1_000_000))
    }

    /// Prometheus' `model.ParseDuration` (common 0.39), in seconds.
    fn parse_duration(s: &str) -> Result<f64, String> {
        match s {
            "0" => return Ok(0.0),
            "" => return Err("empty duration string".into()),
            _ => {}
        }
        const UNITS: [(&str, i128); 7] = [
            ("y", 1000 * 60 * 60 * 24 * 365),
            ("w", 1000 * 60 * 60 * 24 * 7),
            ("d", 1000 * 60 * 60 * 24),
            ("h", 1000 * 60 * 60),
            ("m", 1000 * 60),
            ("s", 1000),
            ("ms", 1),
        ];
        let invalid = || format!("not a valid duration string: {}", quote(s));
        // `^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$`: each unit
        // at most once, in this order.
        let mut parts: Vec<(i128, &str)> = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(invalid());
            }
            let unit_len = rest[digits..].bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[digits..digits + unit_len];
            let n: i128 = rest[..digits].parse().unwrap_or(i128::MAX);
            parts.push((n, unit));
            rest = &rest[digits + unit_len..];
        }
        let mut next_unit = 0;
        let mut ms: i128 = 0;
        let mut overflow = false;
        for (n, unit) in parts {
            let Some(pos) = UNITS[next_unit..].iter().position(|(u, _)| *u == unit) else {
                return Err(invalid());
            };
            let mult = UNITS[next_unit + pos].1;
            next_unit += pos + 1;
            if n > i64::MAX as i128 / mult / 1_000_000 {
                overflow = true;
            }
            ms = ms.saturating_add(n.saturating_mul(mult));
        }
        let ns = ms.saturating_mul(1_000_000);
        if overflow || ns > i64::MAX as i128 {
            return Err("duration out of range".into());
        }
        Ok(ns as f64 / 1e9)
    }

    /// The path of a URL (`url.URL.Path`), percent-decoded.
    fn url_path(u: &str) -> String {
        let mut rest = u;
        if let Some(i) = rest.find(':') {
            let scheme = &rest[..i];
            if !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            {
                rest = &rest[i + 1..];
            }
        }
        rest = rest.split(['?', '#']).next().unwrap_or("");
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('/').map_or("", |i| &after[i..]);
        }
        let bytes = rest.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit()
            {
                if let Ok(b) = u8::from_str_radix(&rest[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Go's `net.SplitHostPort`; `None` where Go returns an error.
    fn split_host_port(hp: &str) -> Option<(&str, &str)> {
        let i = hp.rfind(':')?;
        let (host, j, k);
        if hp.starts_with('[') {
            let end = hp.find(']')?;
            if end + 1 != i {
                return None;
            }
            host = &hp[1..end];
            j = 1;
            k = end + 1;
        } else {
            host = &hp[..i];
            if host.contains(':') {
                return None;
            }
            j = 0;
            k = 0;
        }
        if hp[j..].contains('[') || hp[k..].contains(']') {
            return None;
        }
        Some((host, &hp[i + 1..]))
    }

    fn strip_domain(hp: &str) -> String {
        let (host, port) = split_host_port(hp).unwrap_or((hp, ""));
        if host.parse::<std::net::IpAddr>().is_ok() {
            return hp.to_string();
        }
        let host = host.split('.').next().unwrap_or("");
        if port.is_empty() {
            return host.to_string();
        }
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }

    /// Go's `unicode.ToUpper`: single-rune mappings only.
    fn to_upper(c: char) -> char {
        let mut up = c.to_uppercase();
        match (up.next(), up.next()) {
            (Some(u), None) => u,
            _ => c,
        }
    }

    /// Go's `unicode.ToLower`: single-rune mappings only.
    fn to_lower(c: char) -> char {
        if c == '\u{130}' {
            return 'i';
        }
        let mut low = c.to_lowercase();
        match (low.next(), low.next()) {
            (Some(l), None) => l,
            _ => c,
        }
    }

    /// Go's `unicode.ToTitle`.
    fn to_title(c: char) -> char {
        match c as u32 {
            0x1C4..=0x1C6 => '\u{1C5}',
            0x1C7..=0x1C9 => '\u{1C8}',
            0x1CA..=0x1CC => '\u{1CB}',
            0x1F1..=0x1F3 => '\u{1F2}',
            _ => to_upper(c),
        }
    }

    /// Go's `strings.Title`: the first letter of each word in title case,
    /// words separated by anything but letters, digits and `_`.
    fn title(s: &str) -> String {
        let is_separator = |r: char| {
            if r.is_ascii() {
                return !(r.is_ascii_alphanumeric() || r == '_');
            }
            if r.is_alphabetic() || r.is_numeric() {
                return false;
            }
            r.is_whitespace()
        };
        let mut prev = ' ';
        s.chars()
            .map(|r| {
                let out = if is_separator(prev) { to_title(r) } else { r };
                prev = r;
                out
            })
            .collect()
    }

    // ---- Regular expressions ----

    /// Compiles a pattern, with Go's `regexp` error text on failure.
    fn compile(pattern: &str) -> Result<regex::Regex, String> {
        let rust = translate_regex(pattern)?;
        regex::Regex::new(&rust).map_err(|e| go_regex_error(pattern, &e.to_string()))
    }

    /// Rewrites an RE2 (Go `regexp`) pattern into Rust `regex` syntax with
    /// the same meaning, or fails with Go's error where RE2 rejects what
    /// Rust would accept: unknown escapes (`\u00e9`, `\1`), `(?<name>`,
    /// repeat counts over 1000, nested repetition (`a**`). `\d`, `\s`,
    /// `\w` become their ASCII classes, `\Q...\E` and octal escapes are
    /// spelled out, and `{` that starts no repeat count is a literal.
    fn translate_regex(pattern: &str) -> Result<String, String> {
        let err = |code: &str, arg: &str| Err(format!("error parsing regexp: {code}: `{arg}`"));
        let chars: Vec<char> = pattern.chars().collect();
        let mut out = String::with_capacity(pattern.len() + 8);
        let mut i = 0;
        let mut in_class = false;
        // Where the previous repetition operator started, if the last item
        // was one.
        let mut last_repeat: Option<usize> = None;
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' {
                let Some(&e) = chars.get(i + 1) else {
                    return err("trailing backslash at end of expression", "");
                };
                last_repeat = None;
                match e {
                    '0'..='7' => {
                        if e != '0' && !matches!(chars.get(i + 2), Some('0'..='7')) {
                            return err("invalid escape sequence", &format!("\\{e}"));
                        }
                        let mut v = 0u32;
                        let mut j = i + 1;
                        while j < chars.len() && j < i + 4 && ('0'..='7').contains(&chars[j]) {
                            v = v * 8 + (chars[j] as u32 - '0' as u32);
                            j += 1;
                        }
                        out.push_str(&format!("\\x{{{v:x}}}"));
                        i = j;
                        continue;
                    }
                    'Q' if !in_class => {
                        let rest: String = chars[i + 2..].iter().collect();
                        let (lit, after) = match rest.find("\\E") {
                            Some(k) => (&rest[..k], rest[k..].chars().count() - 2),
                            None => (&rest[..], 0),
                        };
                        out.push_str(&regex::escape(lit));
                        i = chars.len() - after;
                        continue;
                    }
                    'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                        let set = match e.to_ascii_lowercase() {
                            'd' => "0-9",
                            's' => "\\t\\n\\f\\r ",
                            _ => "0-9A-Za-z_",
                        };
                        let neg = if e.is_ascii_uppercase() { "^" } else { "" };
                        if in_class && neg.is_empty() {
                            out.push_str(set);
                        } else {
                            out.push_str(&format!("[{neg}{set}]"));
                        }
                    }
                    'x' | 'a' | 'f' | 't' | 'n' | 'r' | 'v' | 'p' | 'P' => {
                        out.push('\\');
                        out.push(e);
                    }
                    'b' | 'B' | 'A' | 'z' if !in_class => {
                        out.push('\\');
                        out.push(e);
                    }
                    e if e.is_ascii() && !e.is_ascii_alphanumeric() => out.push_str(&regex::escape(&e.to_string())),
                    e => return err("invalid escape sequence", &format!("\\{e}")),
                }
                i += 2;
                continue;
            }
            if in_class {
                match c {
                    ']' => in_class = false,
                    '[' if chars.get(i + 1) != Some(&':') => {
                        out.push_str("\\[");
                        i += 1;
                        continue;
                    }
                    '&' | '~' => {
                        out.push('\\');
                    }
                    '-' if chars.get(i + 1) == Some(&'-') => {
                        out.push('\\');
                    }
                    _ => {}
                }
                if c == '[' {
                    // A `[:name:]` class: copy through its `:]`.
                    let rest: String = chars[i..].iter().collect();
                    if let Some(k) = rest.find(":]") {
                        out.push_str(&rest[..k + 2]);
                        i += rest[..k + 2].chars().count();
                        continue;
                    }
                }
                out.push(c);
                i += 1;
                continue;
            }
            match c {
                '[' => {
                    in_class = true;
                    out.push('[');
                    i += 1;
                    if chars.get(i) == Some(&'^') {
                        out.push('^');
                        i += 1;
                    }
                    // A `]` first in a class is a literal.
                    if chars.get(i) == Some(&']') {
                        out.push_str("\\]");
                        i += 1;
                    }
                    last_repeat = None;
                    continue;
                }
                '(' if chars.get(i + 1) == Some(&'?') => {
                    // Named group or flags: `(?P<name>`, `(?flags)`, `(?flags:`.
                    if chars.get(i + 2) == Some(&'P') && chars.get(i + 3) == Some(&'<') {
                        out.push_str("(?P<");
                        i += 4;
                        last_repeat = None;
                        continue;
                    }
                    let mut j = i + 2;
                    loop {
                        match chars.get(j) {
                            Some('i' | 'm' | 's' | 'U' | '-') => j += 1,
                            Some(':' | ')') => break,
                            _ => {
                                let end = (j + 1).min(chars.len());
                                let arg: String = chars[i..end].iter().collect();
                                return err("invalid or unsupported Perl syntax", &arg);
                            }
                        }
                    }
                    let group: String = chars[i..=j].iter().collect();
                    out.push_str(&group);
                    i = j + 1;
                    last_repeat = None;
                    continue;
                }
                '*' | '+' | '?' => {
                    if let Some(start) = last_repeat {
                        let arg: String = chars[start..=i].iter().collect();
                        return err("invalid nested repetition operator", &arg);
                    }
                    last_repeat = Some(i);
                    out.push(c);
                    i += 1;
                    if chars.get(i) == Some(&'?') {
                        out.push('?');
                        i += 1;
                    }
                    continue;
                }
                '{' => {
                    // `{n}`, `{n,}` or `{n,m}`; anything else is a literal `{`.
                    let rest: String = chars[i..].iter().collect();
                    let Some(close) = rest.find('}') else {
                        out.push_str("\\{");
                        i += 1;
                        last_repeat = None;
                        continue;
                    };
                    let body = &rest[1..close];
                    let (min, max) = match body.split_once(',') {
                        Some((a, b)) => (a, Some(b)),
                        None => (body, None),
                    };
                    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                    if !digits(min) || max.is_some_and(|m| !m.is_empty() && !digits(m)) {
                        out.push_str("\\{");
                        i += 1;
                        last_repeat = None;
                        continue;
                    }
                    let text = &rest[..=close];
                    if let Some(start) = last_repeat {
                        let arg: String = chars[start..i].iter().collect::<String>() + text;
                        return err("invalid nested repetition operator", &arg);
                    }
                    let n: u64 = min.parse().unwrap_or(u64::MAX);
                    let m: Option<u64> = max.filter(|m| !m.is_empty()).map(|m| m.parse().unwrap_or(u64::MAX));
                    if n > 1000 || m.is_some_and(|m| m > 1000 || m < n) {
                        return err("invalid repeat count", text);
                    }
                    out.push_str(text);
                    last_repeat = Some(i);
                    i += text.chars().count();
                    if chars.get(i) == Some(&'?') {
                        out.push('?');
                        i += 1;
                    }
                    continue;
                }
                _ => last_repeat = None,
            }
            out.push(c);
            i += 1;
        }
        Ok(out)
    }

    /// Rewrites the `regex` crate's error as Go's `regexp/syntax` would
    /// word it: `error parsing regexp: missing closing ): `(``.
    fn go_regex_error(pattern: &str, rust: &str) -> String {
        let lines: Vec<&str> = rust.lines().collect();
        let kind = lines.iter().rev().find_map(|l| l.trim().strip_prefix("error: ")).unwrap_or("invalid syntax");
        // The caret line under the pattern marks the offending span.
        let span = lines.iter().position(|l| l.trim_start().starts_with('^')).and_then(|i| {
            let caret = lines[i];
            let start = caret.find('^')?.checked_sub(4)?;
            let len = caret.matches('^').count();
            let chars: Vec<char> = pattern.chars().collect();
            if start + len > chars.len() {
                return None;
            }
            Some(chars[start..start + len].iter().collect::<String>())
        });
        let span_or = |whole: bool| if whole { pattern.to_string() } else { span.clone().unwrap_or_default() };
        let (code, arg) = match kind {
            "unclosed group" => ("missing closing )", span_or(true)),
            "unopened group" => ("unexpected )", span_or(true)),
            "unclosed character class" => (
                "missing closing ]",
                pattern.find('[').map_or_else(|| pattern.to_string(), |i| pattern[i..].to_string()),
            ),
            "repetition operator missing expression" => ("missing argument to repetition operator", span_or(false)),
            "unrecognized escape sequence" => ("invalid escape sequence", span_or(false)),
            "invalid character class range, the start must be <= the end" => {
                ("invalid character class range", span_or(false))
            }
            "incomplete escape sequence, reached end of pattern prematurely" => {
                ("trailing backslash at end of expression", String::new())
            }
            "invalid repetition count range, the start must be <= the end" => ("invalid repeat count", span_or(false)),
            other => (other, span_or(false)),
        };
        format!("error parsing regexp: {code}: `{arg}`")
    }

    /// Go's `Regexp.ReplaceAllString`: `$1`, `${1}`, `$name`, `${name}`
    /// (the longest run of letters, digits and `_` names the group, so
    /// `$1x` is the group named `1x`), `$$` for `$`.
    fn replace_all(re: &regex::Regex, src: &str, template: &str) -> String {
        let mut out = String::new();
        let mut last_end = 0;
        let mut search = 0;
        let names: Vec<Option<&str>> = re.capture_names().collect();
        while search <= src.len() {
            let Some(caps) = re.captures_at(src, search) else {
                break;
            };
            let Some(m) = caps.get(0) else {
                break;
            };
            out.push_str(&src[last_end..m.start()]);
            if m.end() > last_end || m.start() == 0 {
                expand(&mut out, template, &caps, &names);
            }
            last_end = m.end();
            let width = src[search..].chars().next().map_or(0, char::len_utf8);
            if search + width > m.end() {
                search += width;
            } else if search + 1 > m.end() {
                search += 1;
            } else {
                search = m.end();
            }
        }
        out.push_str(&src[last_end..]);
        out
    }

    fn expand(out: &mut String, template: &str, caps: &regex::Captures<'_>, names: &[Option<&str>]) {
        let mut t = template;
        while let Some(i) = t.find('$') {
            out.push_str(&t[..i]);
            t = &t[i + 1..];
            if let Some(rest) = t.strip_prefix('$') {
                out.push('$');
                t = rest;
                continue;
            }
            let Some((name, rest)) = extract(t) else {
                out.push('$');
                continue;
            };
            t = rest;
            let num = if !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_digit())
                && !(name.len() > 1 && name.starts_with('0'))
            {
                name.parse::<usize>().ok().filter(|&n| n < 100_000_000)
            } else {
                None
            };
            let group = match num {
                Some(n) => caps.get(n),
                None => names.iter().position(|n| *n == Some(name)).and_then(|i| caps.get(i)),
            };
            if let Some(g) = group {
                out.push_str(g.as_str());
            }
        }
        out.push_str(t);
    }

    /// Go's `extract`: a group name after `$`, braced or not.
    fn extract(s: &str) -> Option<(&str, &str)> {
        let (brace, body) = match s.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, s),
        };
        let len: usize =
            body.chars().take_while(|&c| c == '_' || c.is_alphabetic() || c.is_numeric()).map(char::len_utf8).sum();
        if len == 0 {
            return None;
        }
        let name = &body[..len];
        let mut rest = &body[len..];
        if brace {
            rest = rest.strip_prefix('}')?;
        }
        Some((name, rest))
    }

    // ---- Time ----

    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

    /// A UTC civil time from Unix milliseconds.
    struct Civil {
        year: i64,
        month: i64,
        day: i64,
        hour: i64,
        minute: i64,
        second: i64,
        nanos: i64,
        weekday: i64,
        yday: i64,
    }

    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    impl Civil {
        fn new(ms: i64) -> Civil {
            let secs = ms.div_euclid(1000);
            let nanos = ms.rem_euclid(1000) * 1_000_000;
            let days = secs.div_euclid(86_400);
            let sod = secs.rem_euclid(86_400);
            let z = days + 719_468;
            let era = z.div_euclid(146_097);
            let doe = z - era * 146_097;
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let day = doy - (153 * mp + 2) / 5 + 1;
            let month = if mp < 10 { mp + 3 } else { mp - 9 };
            let year = yoe + era * 400 + i64::from(month <= 2);
            Civil {
                year,
                month,
                day,
                hour: sod / 3600,
                minute: sod / 60 % 60,
                second: sod % 60,
                nanos,
                weekday: (days + 4).rem_euclid(7),
                yday: days - days_from_civil(year, 1, 1) + 1,
            }
        }
    }

    fn year4(y: i64) -> String {
        if y < 0 {
            format!("-{:04}", -y)
        } else {
            format!("{y:04}")
        }
    }

    /// Go's `time.Time.String` in UTC: `2009-11-10 23:00:00.5 +0000 UTC`.
    pub(super) fn time_string(ms: i64) -> String {
        let c = Civil::new(ms);
        let mut s =
            format!("{}-{:02}-{:02} {:02}:{:02}:{:02}", year4(c.year), c.month, c.day, c.hour, c.minute, c.second);
        if c.nanos != 0 {
            let frac = format!("{:09}", c.nanos);
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        s.push_str(" +0000 UTC");
        s
    }

    /// Go's `time.Time.Format` for a UTC time.
    fn time_format(ms: i64, layout: &str) -> String {
        let c = Civil::new(ms);
        let mut out = String::new();
        let b = layout.as_bytes();
        let mut i = 0;
        let mut lit_start = 0;
        while i < b.len() {
            let rest = &layout[i..];
            let starts_lower = |s: &str| s.as_bytes().first().is_some_and(u8::is_ascii_lowercase);
            let hour12 = if c.hour % 12 == 0 { 12 } else { c.hour % 12 };
            let (text, len): (String, usize) = match b[i] {
                b'J' if rest.starts_with("January") => (MONTHS[c.month as usize - 1].into(), 7),
                b'J' if rest.starts_with("Jan") && !starts_lower(&rest[3..]) => {
                    (MONTHS[c.month as usize - 1][..3].into(), 3)
                }
                b'M' if rest.starts_with("Monday") => (DAYS[c.weekday as usize].into(), 6),
                b'M' if rest.starts_with("Mon") && !starts_lower(&rest[3..]) => {
                    (DAYS[c.weekday as usize][..3].into(), 3)
                }
                b'M' if rest.starts_with("MST") => ("UTC".into(), 3),
                b'0' if matches!(b.get(i + 1), Some(b'1'..=b'6')) => (
                    match b[i + 1] {
                        b'1' => format!("{:02}", c.month),
                        b'2' => format!("{:02}", c.day),
                        b'3' => format!("{hour12:02}"),
                        b'4' => format!("{:02}", c.minute),
                        b'5' => format!("{:02}", c.second),
                        _ => format!("{:02}", c.year.rem_euclid(100)),
                    },
                    2,
                ),
                b'1' if rest.starts_with("15") => (format!("{:02}", c.hour), 2),
                b'1' => (c.month.to_string(), 1),
                b'2' if rest.starts_with("2006") => (year4(c.year), 4),
                b'2' => (c.day.to_string(), 1),
                b'_' if rest.starts_with("_2006") => ("_".to_string() + &year4(c.year), 5),
                b'_' if rest.starts_with("_2") => (format!("{:>2}", c.day), 2),
                b'3' => (hour12.to_string(), 1),
                b'4' => (c.minute.to_string(), 1),
                b'5' => (c.second.to_string(), 1),
                b'P' if rest.starts_with("PM") => ((if c.hour >= 12 { "PM" } else { "AM" }).into(), 2),
                b'p' if rest.starts_with("pm") => ((if c.hour >= 12 { "pm" } else { "am" }).into(), 2),
                b'-' if rest.starts_with("-070000") => ("+000000".into(), 7),
                b'-' if rest.starts_with("-07:00:00") => ("+00:00:00".into(), 9),
                b'-' if rest.starts_with("-0700") => ("+0000".into(), 5),
                b'-' if rest.starts_with("-07:00") => ("+00:00".into(), 6),
                b'-' if rest.starts_with("-07") => ("+00".into(), 3),
                b'Z' if rest.starts_with("Z070000") => ("Z".into(), 7),
                b'Z' if rest.starts_with("Z07:00:00") => ("Z".into(), 9),
                b'Z' if rest.starts_with("Z0700") => ("Z".into(), 5),
                b'Z' if rest.starts_with("Z07:00") => ("Z".into(), 6),
                b'Z' if rest.starts_with("Z07") => ("Z".into(), 3),
                b'.' | b',' if matches!(b.get(i + 1), Some(b'0' | b'9')) => {
                    let ch = b[i + 1];
                    let mut j = i + 1;
                    while j < b.len() && b[j] == ch {
                        j += 1;
                    }
                    if b.get(j).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                        continue;
                    }
                    let n = j - (i + 1);
                    let digits = format!("{:09}", c.nanos);
                    let digits = &digits[..n.min(9)];
                    let text = if ch == b'0' {
                        format!("{}{digits}", b[i] as char)
                    } else {
                        let t = digits.trim_end_matches('0');
                        if t.is_empty() {
                            String::new()
                        } else {
                            format!("{}{t}", b[i] as char)
                        }
                    };
                    (text, j - i)
                }
                _ => {
                    i += layout[i..].chars().next().map_or(1, char::len_utf8);
                    continue;
                }
            };
            out.push_str(&layout[lit_start..i]);
            out.push_str(&text);
            i += len;
            lit_start = i;
        }
        out.push_str(&layout[lit_start..]);
        out
    }
}

/// Go's `text/template` executor: walks the tree, evaluates pipelines and
/// calls functions with Go's argument rules, and reports errors at the
/// node Go's executor was last at.
mod exec {
    use super::ast::{self, Arg, Branch, Command, Node, Pipe};
    use super::funcs::{self, Ty, F};
    use super::gofmt::{self, quote};
    use super::{Env, Template, Value};

    /// How deep execution may recurse: `{{template}}` calls, control
    /// structures and parenthesized pipelines together. Go allows 100000
    /// template calls; this recursive executor stops far earlier, with
    /// Go's message, so a runaway recursion cannot exhaust a 2 MiB thread
    /// stack. (The parser keeps one template's own nesting below this.)
    const MAX_EXEC_DEPTH: usize = 150;

    enum Stop {
        Err(String),
        Break,
        Continue,
    }

    type R<T> = Result<T, Stop>;

    /// The node execution is at, for error locations (Go's `state.node`).
    #[derive(Clone, Copy)]
    enum At<'a> {
        Nothing,
        Action(usize, &'a Pipe),
        Template(usize, &'a str, Option<&'a Pipe>),
        Pipe(&'a Pipe),
        Cmd(&'a Command),
        Arg(&'a Arg),
    }

    struct State<'a> {
        tmpl: &'a Template,
        name: &'a str,
        vars: Vec<(&'a str, Value)>,
        node: At<'a>,
        env: &'a dyn Env,
        depth: usize,
        out: String,
    }

    pub(super) fn execute(t: &Template, data: &Value, env: &dyn Env) -> Result<String, String> {
        let mut s = State {
            tmpl: t,
            name: &t.name,
            vars: vec![("$", data.clone())],
            node: At::Nothing,
            env,
            depth: 0,
            out: String::new(),
        };
        let Some(root) = t.trees.get(&t.name) else {
            return Err(format!("template: {}: {} is an incomplete or empty template", t.name, quote(&t.name)));
        };
        match s.walk(data, root) {
            Ok(()) => Ok(s.out),
            Err(Stop::Err(e)) => Err(e),
            Err(Stop::Break | Stop::Continue) => Ok(s.out),
        }
    }

    /// Go's `ErrorContext` location: 1-based line, 0-based byte column.
    fn line_col(text: &str, pos: usize) -> (usize, usize) {
        let before = &text[..pos.min(text.len())];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(i) => pos - (i + 1),
            None => pos,
        };
        (line, col)
    }

    impl<'a> State<'a> {
        fn errorf(&self, msg: impl std::fmt::Display) -> Stop {
            let (pos, context) = match self.node {
                At::Nothing => return Stop::Err(format!("template: {}: {msg}", self.name)),
                At::Action(pos, pipe) => (pos, format!("{{{{{pipe}}}}}")),
                At::Template(pos, name, pipe) => (pos, ast::template_string(name, pipe)),
                At::Pipe(p) => (p.pos, p.to_string()),
                At::Cmd(c) => (c.pos, c.to_string()),
                At::Arg(a) => (a.pos(), a.to_string()),
            };
            let (line, col) = line_col(&self.tmpl.text, pos);
            Stop::Err(format!(
                "template: {}:{line}:{col}: executing {} at <{context}>: {msg}",
                self.tmpl.name,
                quote(self.name)
            ))
        }

        fn walk(&mut self, dot: &Value, nodes: &'a [Node]) -> R<()> {
            for node in nodes {
                self.walk_node(dot, node)?;
            }
            Ok(())
        }

        fn walk_node(&mut self, dot: &Value, node: &'a Node) -> R<()> {
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action { pos, pipe } => {
                    self.node = At::Action(*pos, pipe);
                    let v = self.eval_pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.node = At::Action(*pos, pipe);
                        self.out.push_str(&gofmt::print_action(&v));
                    }
                }
                Node::If(b) => self.walk_if_with(false, dot, b)?,
                Node::With(b) => self.walk_if_with(true, dot, b)?,
                Node::Range(b) => {
                    self.enter()?;
                    let mark = self.vars.len();
                    let r = self.walk_range(dot, b);
                    self.vars.truncate(mark);
                    self.depth -= 1;
                    match r {
                        Err(Stop::Break) => {}
                        r => r?,
                    }
                }
                Node::Template { pos, name, pipe } => self.walk_template(dot, *pos, name, pipe.as_ref())?,
                Node::Break => return Err(Stop::Break),
                Node::Continue => return Err(Stop::Continue),
            }
            Ok(())
        }

        /// Enters one level of recursion, refusing past `MAX_EXEC_DEPTH`.
        fn enter(&mut self) -> R<()> {
            if self.depth >= MAX_EXEC_DEPTH {
                return Err(self.errorf("exceeded maximum template depth (100000)"));
            }
            self.depth += 1;
            Ok(())
        }

        fn walk_if_with(&mut self, is_with: bool, dot: &Value, b: &'a Branch) -> R<()> {
            self.enter()?;
            let mark = self.vars.len();
            let r = self.walk_if_with_inner(is_with, dot, b);
            self.vars.truncate(mark);
            self.depth -= 1;
            r
        }

        fn walk_if_with_inner(&mut self, is_with: bool, dot: &Value, b: &'a Branch) -> R<()> {
            let val = self.eval_pipeline(dot, &b.pipe)?;
            if val.truth() {
                if is_with {
                    self.walk(&val, &b.list)
                } else {
                    self.walk(dot, &b.list)
                }
            } else if let Some(e) = &b.else_list {
                self.walk(dot, e)
            } else {
                Ok(())
            }
        }

        fn walk_range(&mut self, dot: &Value, b: &'a Branch) -> R<()> {
            let val = self.eval_pipeline(dot, &b.pipe)?;
            let items: Vec<(Value, Value)> = match &val {
                Value::List(l) => l.iter().enumerate().map(|(i, v)| (Value::Int(i as i64), v.clone())).collect(),
                Value::Vector(v) => {
                    v.iter().enumerate().map(|(i, s)| (Value::Int(i as i64), Value::Sample(s.clone()))).collect()
                }
                Value::Map(m) => m.iter().map(|(k, v)| (Value::Str(k.clone()), v.clone())).collect(),
                Value::StrMap(m) => m.iter().map(|(k, v)| (Value::Str(k.clone()), Value::Str(v.clone()))).collect(),
                Value::Nil => Vec::new(),
                v => return Err(self.errorf(format!("range can't iterate over {}", gofmt::print_action(v)))),
            };
            if items.is_empty() {
                if let Some(e) = &b.else_list {
                    return self.walk(dot, e);
                }
                return Ok(());
            }
            let mark = self.vars.len();
            for (index, elem) in items {
                let n = self.vars.len();
                if !b.pipe.decl.is_empty() && n >= 1 {
                    self.vars[n - 1].1 = elem.clone();
                }
                if b.pipe.decl.len() > 1 && n >= 2 {
                    self.vars[n - 2].1 = index;
                }
                let r = self.walk(&elem, &b.list);
                self.vars.truncate(mark);
                match r {
                    Ok(()) | Err(Stop::Continue) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }

        fn walk_template(&mut self, dot: &Value, pos: usize, name: &'a str, pipe: Option<&'a Pipe>) -> R<()> {
            self.node = At::Template(pos, name, pipe);
            let Some(tree) = self.tmpl.trees.get(name) else {
                return Err(self.errorf(format!("template {} not defined", quote(name))));
            };
            self.enter()?;
            self.depth -= 1;
            let new_dot = match pipe {
                Some(p) => self.eval_pipeline(dot, p)?,
                None => Value::Nil,
            };
            let saved_vars = std::mem::replace(&mut self.vars, vec![("$", new_dot.clone())]);
            let saved_name = std::mem::replace(&mut self.name, name);
            self.depth += 1;
            let r = self.walk(&new_dot, tree);
            self.depth -= 1;
            self.name = saved_name;
            self.vars = saved_vars;
            r
        }

        fn eval_pipeline(&mut self, dot: &Value, pipe: &'a Pipe) -> R<Value> {
            self.enter()?;
            let r = self.eval_pipeline_inner(dot, pipe);
            self.depth -= 1;
            r
        }

        fn eval_pipeline_inner(&mut self, dot: &Value, pipe: &'a Pipe) -> R<Value> {
            self.node = At::Pipe(pipe);
            let mut value: Option<Value> = None;
            for cmd in &pipe.cmds {
                value = Some(self.eval_command(dot, cmd, value)?);
            }
            let value = value.unwrap_or(Value::Nil);
            for var in &pipe.decl {
                if pipe.is_assign {
                    self.set_var(var, value.clone())?;
                } else {
                    self.vars.push((var.as_str(), value.clone()));
                }
            }
            Ok(value)
        }

        fn set_var(&mut self, name: &str, value: Value) -> R<()> {
            match self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
                Some(slot) => {
                    slot.1 = value;
                    Ok(())
                }
                None => Err(self.errorf(format!("undefined variable: {name}"))),
            }
        }

        fn var_value(&self, name: &str) -> R<Value> {
            match self.vars.iter().rev().find(|(n, _)| *n == name) {
                Some((_, v)) => Ok(v.clone()),
                None => Err(self.errorf(format!("undefined variable: {name}"))),
            }
        }

        fn not_a_function(&self, args: Option<&'a [Arg]>, final_: &Option<Value>) -> R<()> {
            let args = args.unwrap_or(&[]);
            if args.len() > 1 || final_.is_some() {
                if let Some(first) = args.first() {
                    return Err(self.errorf(format!("can't give argument to non-function {first}")));
                }
            }
            Ok(())
        }

        fn eval_command(&mut self, dot: &Value, cmd: &'a Command, final_: Option<Value>) -> R<Value> {
            let Some(first) = cmd.args.first() else {
                return Err(self.errorf("empty command"));
            };
            match first {
                Arg::Field { .. } => return self.eval_field_node(dot, first, Some(&cmd.args), final_),
                Arg::Chain { .. } => return self.eval_chain_node(dot, first, Some(&cmd.args), final_),
                Arg::Identifier { name, .. } => {
                    return self.eval_function(dot, first, name, At::Cmd(cmd), Some(&cmd.args), final_)
                }
                Arg::Pipe(p) => {
                    self.not_a_function(Some(&cmd.args), &final_)?;
                    return self.eval_pipeline(dot, p);
                }
                Arg::Variable { .. } => return self.eval_variable_node(dot, first, Some(&cmd.args), final_),
                _ => {}
            }
            self.node = At::Arg(first);
            self.not_a_function(Some(&cmd.args), &final_)?;
            match first {
                Arg::Bool { value, .. } => Ok(Value::Bool(*value)),
                Arg::Dot { .. } => Ok(dot.clone()),
                Arg::Nil { .. } => Err(self.errorf("nil is not a command")),
                Arg::Number { .. } => self.ideal_constant(first),
                Arg::Str { text, .. } => Ok(Value::Str(text.clone())),
                _ => Err(self.errorf(format!("can't evaluate command {}", quote(&first.to_string())))),
            }
        }

        fn ideal_constant(&mut self, n: &'a Arg) -> R<Value> {
            self.node = At::Arg(n);
            let Arg::Number { num, .. } = n else {
                return Ok(Value::Nil);
            };
            let t = &num.text;
            let hex_int =
                t.len() > 2 && t.starts_with('0') && t[1..].starts_with(['x', 'X']) && !t.contains(['p', 'P']);
            if num.is_float && !hex_int && !t.starts_with('\'') && t.contains(['.', 'e', 'E', 'p', 'P']) {
                return Ok(Value::Float(num.float));
            }
            if num.is_int {
                return Ok(Value::Int(num.int));
            }
            if num.is_uint {
                return Err(self.errorf(format!("{t} overflows int")));
            }
            Ok(Value::Nil)
        }

        fn eval_field_node(
            &mut self,
            dot: &Value,
            field: &'a Arg,
            args: Option<&'a [Arg]>,
            final_: Option<Value>,
        ) -> R<Value> {
            self.node = At::Arg(field);
            let Arg::Field { idents, .. } = field else {
                return Ok(Value::Nil);
            };
            self.eval_field_chain(dot, dot.clone(), field, idents, args, final_)
        }

        fn eval_chain_node(
            &mut self,
            dot: &Value,
            chain: &'a Arg,
            args: Option<&'a [Arg]>,
            final_: Option<Value>,
        ) -> R<Value> {
            self.node = At::Arg(chain);
            let Arg::Chain { node, fields, .. } = chain else {
                return Ok(Value::Nil);
            };
            if fields.is_empty() {
                return Err(self.errorf("internal error: no fields in evalChainNode"));
            }
            if let Arg::Nil { .. } = node.as_ref() {
                return Err(self.errorf(format!("indirection through explicit nil in {chain}")));
            }
            let pipe = self.eval_arg(dot, None, node)?;
            self.eval_field_chain(dot, pipe, chain, fields, args, final_)
        }

        fn eval_variable_node(
            &mut self,
            dot: &Value,
            var: &'a Arg,
            args: Option<&'a [Arg]>,
            final_: Option<Value>,
        ) -> R<Value> {
            self.node = At::Arg(var);
            let Arg::Variable { idents, .. } = var else {
                return Ok(Value::Nil);
            };
            let value = self.var_value(&idents[0])?;
            if idents.len() == 1 {
                self.not_a_function(args, &final_)?;
                return Ok(value);
            }
            self.eval_field_chain(dot, value, var, &idents[1..], args, final_)
        }

        fn eval_field_chain(
            &mut self,
            dot: &Value,
            receiver: Value,
            node: &'a Arg,
            idents: &'a [String],
            args: Option<&'a [Arg]>,
            final_: Option<Value>,
        ) -> R<Value> {
            let Some((last, init)) = idents.split_last() else {
                return Ok(receiver);
            };
            let mut recv = receiver;
            let mut nil_iface = false;
            for id in init {
                (recv, nil_iface) = self.eval_field(dot, id, node, None, None, recv, nil_iface)?;
            }
            Ok(self.eval_field(dot, last, node, args, final_, recv, nil_iface)?.0)
        }

        /// One `.Name` step: a method, struct field or map key. The bool
        /// says the result is a nil `interface {}` from a map, which Go
        /// refuses to step into.
        #[allow(clippy::too_many_arguments)]
        fn eval_field(
            &mut self,
            dot: &Value,
            name: &str,
            node: &'a Arg,
            args: Option<&'a [Arg]>,
            final_: Option<Value>,
            recv: Value,
            nil_iface: bool,
        ) -> R<(Value, bool)> {
            if let Value::Nil = recv {
                if nil_iface {
                    return Err(self.errorf(format!("nil pointer evaluating interface {{}}.{name}")));
                }
                return Ok((Value::Nil, false));
            }
            if let Value::Time(ms) = recv {
                if let Some(m) = funcs::time_method(name) {
                    let v = self.eval_call(dot, m, ms, At::Arg(node), name, args, final_)?;
                    return Ok((v, false));
                }
            }
            let has_args = args.map_or(0, <[Arg]>::len) > 1 || final_.is_some();
            let field = match &recv {
                Value::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()),
                Value::Sample(s) => match name {
                    "Labels" => Some(Value::StrMap(s.labels.clone())),
                    "Value" => Some(Value::Float(s.value)),
                    _ => None,
                },
                Value::StrMap(m) => {
                    if has_args {
                        return Err(self.errorf(format!("{name} is not a method but has arguments")));
                    }
                    return Ok((Value::Str(m.get(name).cloned().unwrap_or_default()), false));
                }
                Value::Map(m) => {
                    if has_args {
                        return Err(self.errorf(format!("{name} is not a method but has arguments")));
                    }
                    return Ok(match m.get(name) {
                        None | Some(Value::Nil) => (Value::Nil, true),
                        Some(v) => (v.clone(), false),
                    });
                }
                _ => None,
            };
            if let Some(v) = field {
                if has_args {
                    return Err(self.errorf(format!("{name} has arguments but cannot be invoked as function")));
                }
                return Ok((v, false));
            }
            Err(self.errorf(format!("can't evaluate field {name} in type {}", recv.type_name())))
        }

        fn eval_function(
            &mut self,
            dot: &Value,
            ident: &'a Arg,
            name: &'a str,
            call_at: At<'a>,
            args: Option<&'a [Arg]>,
            final_: Option<Value>,
        ) -> R<Value> {
            self.node = At::Arg(ident);
            let Some(f) = funcs::lookup(name) else {
                return Err(self.errorf(format!("{} is not a defined function", quote(name))));
            };
            self.eval_call(dot, f, 0, call_at, name, args, final_)
        }

        /// Go's `evalCall`: checks the argument count, evaluates and
        /// converts the arguments, calls. `args[0]` is the function itself.
        #[allow(clippy::too_many_arguments)]
        fn eval_call(
            &mut self,
            dot: &Value,
            f: F,
            recv: i64,
            call_at: At<'a>,
            name: &str,
            args: Option<&'a [Arg]>,
            final_: Option<Value>,
        ) -> R<Value> {
            let args: &'a [Arg] = match args {
                Some(a) if !a.is_empty() => &a[1..],
                _ => &[],
            };
            let sig = funcs::sig(f);
            let num_in = args.len() + usize::from(final_.is_some());
            let num_fixed;
            if sig.variadic.is_some() {
                num_fixed = sig.fixed.len();
                if num_in < num_fixed {
                    return Err(self.errorf(format!(
                        "wrong number of args for {name}: want at least {} got {}",
                        sig.fixed.len(),
                        args.len()
                    )));
                }
            } else {
                num_fixed = args.len();
                if num_in != sig.fixed.len() {
                    return Err(
                        self.errorf(format!("wrong number of args for {name}: want {} got {num_in}", sig.fixed.len()))
                    );
                }
            }
            if f == F::And || f == F::Or {
                // Short-circuit: the first argument that decides.
                let mut v = Value::Nil;
                for a in args {
                    v = self.eval_arg(dot, Some(Ty::Rv), a)?;
                    if v.truth() == (f == F::Or) {
                        return Ok(v);
                    }
                }
                if let Some(fv) = final_ {
                    v = fv;
                }
                return Ok(v);
            }
            let mut argv = Vec::with_capacity(num_in);
            let mut i = 0;
            while i < num_fixed && i < args.len() {
                let t = sig.fixed.get(i).copied().unwrap_or(Ty::Any);
                argv.push(self.eval_arg(dot, Some(t), &args[i])?);
                i += 1;
            }
            if let Some(vt) = sig.variadic {
                while i < args.len() {
                    argv.push(self.eval_arg(dot, Some(vt), &args[i])?);
                    i += 1;
                }
            }
            if let Some(fv) = final_ {
                let t = match sig.variadic {
                    Some(vt) if num_in > num_fixed => vt,
                    Some(_) => sig.fixed.get(num_in - 1).copied().unwrap_or(Ty::Any),
                    None => sig.fixed.last().copied().unwrap_or(Ty::Any),
                };
                argv.push(self.validate_type(fv, Some(t))?);
            }
            match funcs::call(f, &argv, recv, self.env) {
                Ok(v) => Ok(v),
                Err(e) => {
                    self.node = call_at;
                    Err(self.errorf(format!("error calling {name}: {e}")))
                }
            }
        }

        fn validate_type(&self, value: Value, typ: Option<Ty>) -> R<Value> {
            if let Value::Nil = value {
                return match typ {
                    None => Ok(Value::Nil),
                    Some(t) if t.can_be_nil() => Ok(t.zero()),
                    Some(t) => Err(self.errorf(format!("invalid value; expected {}", t.name()))),
                };
            }
            match typ {
                Some(t) if !t.accepts(&value) => {
                    Err(self.errorf(format!("wrong type for value; expected {}; got {}", t.name(), value.type_name())))
                }
                _ => Ok(value),
            }
        }

        fn eval_arg(&mut self, dot: &Value, typ: Option<Ty>, n: &'a Arg) -> R<Value> {
            self.node = At::Arg(n);
            let v = match n {
                Arg::Dot { .. } => dot.clone(),
                Arg::Nil { .. } => {
                    return match typ {
                        Some(t) if t.can_be_nil() => Ok(t.zero()),
                        Some(t) => Err(self.errorf(format!("cannot assign nil to {}", t.name()))),
                        None => Ok(Value::Nil),
                    }
                }
                Arg::Field { .. } => self.eval_field_node(dot, n, Some(std::slice::from_ref(n)), None)?,
                Arg::Variable { .. } => self.eval_variable_node(dot, n, None, None)?,
                Arg::Pipe(p) => self.eval_pipeline(dot, p)?,
                Arg::Identifier { name, .. } => self.eval_function(dot, n, name, At::Arg(n), None, None)?,
                Arg::Chain { .. } => self.eval_chain_node(dot, n, None, None)?,
                Arg::Bool { value, .. } => {
                    return match typ {
                        None | Some(Ty::Any | Ty::Rv) => Ok(Value::Bool(*value)),
                        Some(Ty::Str) => Err(self.errorf(format!("expected string; found {n}"))),
                        Some(t) => Err(self.errorf(format!("can't handle {n} for arg of type {}", t.name()))),
                    }
                }
                Arg::Number { .. } => {
                    return match typ {
                        None | Some(Ty::Any | Ty::Rv) => self.ideal_constant(n),
                        Some(Ty::Str) => Err(self.errorf(format!("expected string; found {n}"))),
                        Some(t) => Err(self.errorf(format!("can't handle {n} for arg of type {}", t.name()))),
                    }
                }
                Arg::Str { text, .. } => {
                    return match typ {
                        None | Some(Ty::Any | Ty::Rv | Ty::Str) => Ok(Value::Str(text.clone())),
                        Some(t) => Err(self.errorf(format!("can't handle {n} for arg of type {}", t.name()))),
                    }
                }
            };
            self.validate_type(v, typ)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The data of the promtool runs: series `up{job="j",instance="i:9090"} 1.5`
    /// and `m{a,b}` with values 1, 3, 2.
    struct TestEnv;

    fn sample(labels: &[(&str, &str)], value: f64) -> Sample {
        Sample { labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), value }
    }

    impl Env for TestEnv {
        fn query(&self, q: &str) -> Result<Vec<Sample>, String> {
            match q {
                "m" => Ok(vec![
                    sample(&[("__name__", "m"), ("a", "y"), ("b", "1")], 1.0),
                    sample(&[("__name__", "m"), ("a", "x"), ("b", "2")], 3.0),
                    sample(&[("__name__", "m"), ("a", "z"), ("b", "0")], 2.0),
                ]),
                "up{" => Err("1:4: parse error: unexpected end of input inside braces".into()),
                _ => Ok(Vec::new()),
            }
        }

        fn external_url(&self) -> &str {
            "http://prom.example:9090/prefix/"
        }
    }

    fn expand(text: &str) -> String {
        let labels: BTreeMap<String, String> = [("__name__", "up"), ("instance", "i:9090"), ("job", "j")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        expand_alert_text("A", text, &labels, &BTreeMap::new(), "", 1.5, &TestEnv)
    }

    /// Every case was run through `promtool test rules` / `promtool check
    /// rules` 2.42 (Go 1.19.8); the expected text is what promtool printed
    /// for the annotation.
    #[test]
    fn outputs_match_promtool() {
        let mut bad = Vec::new();
        for (tpl, want) in PROMTOOL_CASES {
            let got = expand(tpl);
            if got != *want {
                bad.push(format!("template: {tpl:?}\n  want: {want:?}\n  got:  {got:?}"));
            }
        }
        assert!(bad.is_empty(), "{} mismatches:\n{}", bad.len(), bad.join("\n"));
    }

    #[test]
    fn check_reports_go_parse_errors() {
        assert_eq!(check_alert_text("HighLoad", "{{ $value | humanize }} on {{ $labels.instance }}"), Ok(()));
        // Checked against promtool 2.42 (`promtool check rules`).
        assert_eq!(
            check_alert_text("A", "{{ foo }}"),
            Err(r#"template: __alert_A:1: function "foo" not defined"#.to_string())
        );
        assert_eq!(
            check_alert_text("A", "{{ $x }}"),
            Err(r#"template: __alert_A:1: undefined variable "$x""#.to_string())
        );
        assert_eq!(check_alert_text("A", "{{ if 1 }}"), Err("template: __alert_A:1: unexpected EOF".to_string()));
        assert_eq!(
            check_alert_text("A", "{{ 1\n \"abc }}"),
            Err("template: __alert_A:2: unterminated quoted string in action started at __alert_A:1".to_string())
        );
    }

    #[test]
    fn templates_run_against_any_data() {
        let data = Value::Map(BTreeMap::from([
            ("n".to_string(), Value::Int(3)),
            ("xs".to_string(), Value::List(vec![Value::Str("a".into()), Value::Float(0.5), Value::Nil])),
        ]));
        let t = Template::parse("t", "{{ .n }} {{ range $i, $x := .xs }}[{{ $i }}:{{ $x }}]{{ end }} {{ .missing }}")
            .unwrap();
        assert_eq!(t.execute(&data, &TestEnv).unwrap(), "3 [0:a][1:0.5][2:<no value>] <no value>");
        let t = Template::parse("t", "{{ .n.x }}").unwrap();
        assert_eq!(
            t.execute(&data, &TestEnv).unwrap_err(),
            "template: t:1:5: executing \"t\" at <.n.x>: can't evaluate field x in type int"
        );
    }

    #[test]
    fn external_url_functions_use_the_env() {
        // promtool runs rule tests without an external URL (these functions
        // then fail there), so these follow Go's url.URL by reading.
        assert_eq!(expand("{{ externalURL }}|{{ pathPrefix }}"), "http://prom.example:9090/prefix/|/prefix/");
    }

    #[test]
    fn query_errors_and_results_reach_the_template() {
        assert_eq!(
            expand(r#"{{ range query "m" | sortByLabel "a" }}{{ .Labels.a }}={{ .Value }} {{ end }}"#),
            "x=3 y=1 z=2 "
        );
        assert_eq!(
            expand(r#"{{ query "up{" }}"#),
            "<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing \
             \"__alert_A\" at <query \"up{\">: error calling query: 1:4: parse error: unexpected end of input inside \
             braces>"
        );
    }

    #[test]
    fn runaway_recursion_and_nesting_fail_cleanly() {
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
        assert_eq!(
            check_alert_text("A", &deep),
            Err("template: __alert_A:1: max expression depth exceeded".to_string())
        );
        let parens = format!("{{{{ {}1{} }}}}", "(".repeat(99), ")".repeat(99));
        assert_eq!(expand(&parens), "1");
        let nested = format!("{}x{}", "{{ with 1 }}".repeat(99), "{{ end }}".repeat(99));
        assert_eq!(expand(&nested), "x");
        let too_deep = format!("{}x{}", "{{ if 1 }}".repeat(5000), "{{ end }}".repeat(5000));
        assert_eq!(
            check_alert_text("A", &too_deep),
            Err("template: __alert_A:1: {{if}} nested more than 100 deep".to_string())
        );
        // Recursion through {{template}}, each level as deep as a template
        // may nest, stops with Go's message instead of overflowing.
        let recursive = format!(
            r#"{{{{ define "t" }}}}{}{{{{ template "t" . }}}}{}{{{{ end }}}}{{{{ template "t" . }}}}"#,
            "{{ if 1 }}".repeat(99),
            "{{ end }}".repeat(99)
        );
        assert!(expand(&recursive).ends_with("exceeded maximum template depth (100000)>"));
    }

    // Checked against promtool 2.42: each (template, expansion) pair below.
    const PROMTOOL_CASES: &[(&str, &str)] = &[
        (r##"{{ $value }}"##, r##"1.5"##),
        (
            r##"{{ 1e6 }} {{ 123456.0 }} {{ 1.5e-7 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1e21 }} {{ 1e20 }} {{ 100000000.0 }}"##,
            r##"1e+06 123456 1.5e-07 0.0001 1e-05 1e+21 1e+20 1e+08"##,
        ),
        (
            r##"{{ printf "%.4g" 0.00012 }} {{ printf "%.4g" 123456.0 }} {{ printf "%.1f %.0f %.0f %.0f" 0.25 0.5 1.5 2.5 }}"##,
            r##"0.00012 1.235e+05 0.2 0 2 2"##,
        ),
        (
            r##"{{ .Labels }} {{ $labels.job }}|{{ $labels.nope }}|{{ . }}"##,
            r##"map[__name__:up instance:i:9090 job:j] j||{map[__name__:up instance:i:9090 job:j] map[]  1.5}"##,
        ),
        (
            r##"{{ .Foo }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <.Foo>: can't evaluate field Foo in type struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }>"##,
        ),
        (
            r##"{{ $x=1 }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: bad character U+003D '='>"##,
        ),
        (r##"{{ $x := 1 }}{{ $x = 2 }}{{ $x }}"##, r##"2"##),
        (
            r##"{{ printf "%05s|%-5s|%5.1s|%q|%x|%X|%d|%s" "ab" "cd" "xyz" "a\nb" "hi" "hi" 42 42 }}"##,
            r##"000ab|cd   |    x|"a\nb"|6869|6869|42|%!s(int=42)"##,
        ),
        (r##"{{ printf "%d %s" }}"##, r##"%!d(MISSING) %!s(MISSING)"##),
        (r##"{{ printf "%d" 1 2 "x" }}"##, r##"1%!(EXTRA int=2, string=x)"##),
        (
            r##"{{ printf "%5d|%-5d|%05d|%+d|% d|%x|%#x|%o|%#o|%b|%c|%U|%#U|%q" 42 42 -42 42 42 255 255 8 8 5 65 65 65 65 }}"##,
            r##"   42|42   |-0042|+42| 42|ff|0xff|10|010|101|A|U+0041|U+0041 'A'|'A'"##,
        ),
        (
            r##"{{ printf "%e|%E|%.2e|%g|%G|%8.3f|%-8.3f|%08.3f|%+.1f|%v" 1234.5678 1234.5678 1234.5678 1234.5678 1e-7 3.14159 3.14159 -3.14159 2.0 1e100 }}"##,
            r##"1.234568e+03|1.234568E+03|1.23e+03|1234.5678|1E-07|   3.142|3.142   |-003.142|+2.0|1e+100"##,
        ),
        (
            r##"{{ js "<a href='x'>&=\"\\" }}|{{ html "<a href='x'>&\"" }}|{{ urlquery "a b&c=d/é~" }}"##,
            r##"\u003Ca href\u003D\'x\'\u003E\u0026\u003D\"\\|&lt;a href=&#39;x&#39;&gt;&amp;&#34;|a+b%26c%3Dd%2F%C3%A9~"##,
        ),
        (
            r##"{{ print 1 2 "a" 3 "b" "c" 4.5 nil true }}|{{ println 1 "a" }}|"##,
            r##"1 2a3bc4.5 <nil> true|1 a
|"##,
        ),
        (
            r##"{{ printf "%v %s %d" $labels $labels $labels }}"##,
            r##"map[__name__:up instance:i:9090 job:j] map[__name__:up instance:i:9090 job:j] map[%!d(string=__name__):%!d(string=up) %!d(string=instance):%!d(string=i:9090) %!d(string=job):%!d(string=j)]"##,
        ),
        (
            r##"{{ eq $value 1 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <eq $value 1>: error calling eq: incompatible types for comparison>"##,
        ),
        (
            r##"{{ gt $value 1.0 }}|{{ lt 1 2 }}|{{ le 2 2 }}|{{ ge "a" "b" }}|{{ ne 1 2 }}|{{ eq 1 2 3 1 }}|{{ eq "a" "b" }}"##,
            r##"true|true|true|false|true|true|false"##,
        ),
        (
            r##"{{ lt nil 1 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <lt nil 1>: error calling lt: invalid type for comparison>"##,
        ),
        (
            r##"{{ eq $labels "x" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <eq $labels "x">: error calling eq: incompatible types for comparison>"##,
        ),
        (
            r##"{{ eq .Nope "x" }}|{{ eq nil nil }}|{{ eq (index $labels "zz") "" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:118: executing "__alert_A" at <.Nope>: can't evaluate field Nope in type struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }>"##,
        ),
        (
            r##"{{ len nil }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <len nil>: error calling len: reflect: call of reflect.Value.Type on zero Value>"##,
        ),
        (
            r##"{{ len 5 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <len 5>: error calling len: len of type int>"##,
        ),
        (r##"{{ len "héllo" }} {{ len $labels }} {{ len (query "m") }} {{ len (args 1 2) }}"##, r##"6 3 3 2"##),
        (
            r##"{{ index $labels 1 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <index $labels 1>: error calling index: value has type int; should be string>"##,
        ),
        (
            r##"{{ index $labels "job" }}|{{ index "abc" 1 }}|{{ slice "abcdef" 1 3 }}|{{ slice "abcdef" 2 }}|{{ index (query "m") 0 }}"##,
            r##"j|98|bc|cdef|{map[__name__:m a:y b:1] 1}"##,
        ),
        (
            r##"{{ index (args 1 2) 5 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <index (args 1 2) 5>: error calling index: value has type int; should be string>"##,
        ),
        (
            r##"{{ index (query "m") 5 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <index (query "m") 5>: error calling index: index out of range: 5>"##,
        ),
        (
            r##"{{ humanize }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <humanize>: wrong number of args for humanize: want 1 got 0>"##,
        ),
        (
            r##"{{ humanize 1 2 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <humanize>: wrong number of args for humanize: want 1 got 2>"##,
        ),
        (
            r##"{{ printf }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <printf>: wrong number of args for printf: want at least 1 got 0>"##,
        ),
        (
            r##"{{ and }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <and>: wrong number of args for and: want at least 1 got 0>"##,
        ),
        (
            r##"{{ ne 1 2 3 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <ne>: wrong number of args for ne: want 2 got 3>"##,
        ),
        (
            r##"{{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 "" }} {{ or 0 "x" 1 }} {{ not 0 }} {{ not "a" }} {{ 1 | and 2 }} {{ 0 | or 0 }}"##,
            r##"0 2  x true false 1 0"##,
        ),
        (
            r##"{{ label "x" nil }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <label "x" nil>: error calling label: runtime error: invalid memory address or nil pointer dereference>"##,
        ),
        (r##"{{ with query "m" }}{{ range . }}{{ .Labels.a }}={{ .Value }} {{ end }}{{ end }}"##, r##"y=1 x=3 z=2 "##),
        (
            r##"{{ range query "m" | sortByLabel "a" }}{{ .Labels.a }}{{ end }}|{{ range sortByLabel "b" (query "m") }}{{ label "b" . }}{{ value . }}{{ strvalue . }}{{ end }}"##,
            r##"xyz|021123"##,
        ),
        (r##"{{ first (query "m") }}"##, r##"{map[__name__:m a:y b:1] 1}"##),
        (
            r##"{{ query "nonexistent" | first }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:137: executing "__alert_A" at <first>: error calling first: first() called on vector with no elements>"##,
        ),
        (r##"{{ print (first (query "m")) }}"##, r##"&{map[__name__:m a:y b:1] 1}"##),
        (
            r##"{{ query "up{" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <query "up{">: error calling query: 1:4: parse error: unexpected end of input inside braces>"##,
        ),
        (
            r##"{{ humanize 0 }} {{ humanize 1 }} {{ humanize 999 }} {{ humanize 1000 }} {{ humanize 1234567 }} {{ humanize 0.001 }} {{ humanize 0.000012 }} {{ humanize -1234 }} {{ humanize "NaN" }} {{ humanize "+Inf" }} {{ humanize 1e30 }} {{ humanize "-inf" }} {{ humanize 1e-30 }}"##,
            r##"0 1 999 1k 1.235M 1m 12u -1.234k NaN +Inf 1e+06Y -Inf 1e-06y"##,
        ),
        (
            r##"{{ humanize1024 1024 }} {{ humanize1024 1500 }} {{ humanize1024 1 }} {{ humanize1024 0.5 }} {{ humanize1024 1048576 }} {{ humanize1024 -2048 }} {{ humanize1024 1e30 }}"##,
            r##"1ki 1.465ki 1 0.5 1Mi -2ki 8.272e+05Yi"##,
        ),
        (
            r##"{{ humanizeDuration 0 }}|{{ humanizeDuration 0.5 }}|{{ humanizeDuration 1 }}|{{ humanizeDuration 59.5 }}|{{ humanizeDuration 60 }}|{{ humanizeDuration 3661 }}|{{ humanizeDuration 90000 }}|{{ humanizeDuration -3661 }}|{{ humanizeDuration 1e-7 }}|{{ humanizeDuration "NaN" }}|{{ humanizeDuration -0.25 }}|{{ humanizeDuration 1.23456 }}"##,
            r##"0s|500ms|1s|59.5s|1m 0s|1h 1m 1s|1d 1h 0m 0s|-1h 1m 1s|100ns|NaN|-250ms|1.235s"##,
        ),
        (
            r##"{{ humanizePercentage 0.1234 }} {{ humanizePercentage 1 }} {{ humanizePercentage 0 }} {{ humanizePercentage "x" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:201: executing "__alert_A" at <humanizePercentage "x">: error calling humanizePercentage: strconv.ParseFloat: parsing "x": invalid syntax>"##,
        ),
        (
            r##"{{ humanizeTimestamp 0 }}|{{ humanizeTimestamp 1.5 }}|{{ humanizeTimestamp 1257894000.123 }}|{{ humanizeTimestamp -1.5 }}|{{ humanizeTimestamp "NaN" }}|{{ humanizeTimestamp 1.0005 }}|{{ humanizeTimestamp 1.12 }}"##,
            r##"1970-01-01 00:00:00 +0000 UTC|1970-01-01 00:00:01.5 +0000 UTC|2009-11-10 23:00:00.122 +0000 UTC|1969-12-31 23:59:58.5 +0000 UTC|NaN|1970-01-01 00:00:01 +0000 UTC|1970-01-01 00:00:01.12 +0000 UTC"##,
        ),
        (
            r##"{{ humanizeTimestamp 1e20 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <humanizeTimestamp 1e20>: error calling humanizeTimestamp: 1e+20 cannot be represented as a nanoseconds timestamp since it overflows int64>"##,
        ),
        (r##"{{ toTime 1.5 }}|{{ toTime 0 }}"##, r##"1970-01-01 00:00:01.5 +0000 UTC|1970-01-01 00:00:00 +0000 UTC"##),
        (
            r##"{{ title "hello world-foo_bar baz.qux 3rd élan" }}|{{ toUpper "abcß" }}|{{ toLower "ABC" }}"##,
            r##"Hello World-Foo_bar Baz.Qux 3rd Élan|ABCß|abc"##,
        ),
        (r##"{{ match "^a" "abc" }} {{ match "b$" "abc" }}"##, r##"true false"##),
        (
            r##"{{ match "(" "x" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <match "(" "x">: error calling match: error parsing regexp: missing closing ): `(`>"##,
        ),
        (
            r##"{{ reReplaceAll "(a)(b)" "$2$1x${1}x$1x" "abab" }}|{{ reReplaceAll "a*" "X" "baaac" }}|{{ reReplaceAll "(?P<n>a)" "[$n]$$" "ba" }}|{{ reReplaceAll "x*" "-" "abc" }}|{{ reReplaceAll "(a)" "$01$10" "a" }}"##,
            r##"baxbax|XbXcX|b[a]$|-a-b-c-|"##,
        ),
        (
            r##"{{ reReplaceAll "(" "x" "y" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <reReplaceAll "(" "x" "y">: error calling reReplaceAll: regexp: Compile(`(`): error parsing regexp: missing closing ): `(`>"##,
        ),
        (
            r##"{{ graphLink "up > 0" }}|{{ tableLink "sum(rate(x[5m]))" }}"##,
            r##"/graph?g0.expr=up+%3E+0&g0.tab=0|/graph?g0.expr=sum%28rate%28x%5B5m%5D%29%29&g0.tab=1"##,
        ),
        (
            r##"{{ stripPort "host:9090" }} {{ stripPort "[::1]:80" }} {{ stripPort "host" }} {{ stripPort "a:b:c" }} {{ stripDomain "foo.bar.com:9090" }} {{ stripDomain "1.2.3.4:80" }} {{ stripDomain "foo.bar" }} {{ stripDomain "[::1]:80" }} {{ stripDomain "[fe80::1]" }}"##,
            r##"host ::1 host a:b:c foo:9090 1.2.3.4:80 foo [::1]:80 [fe80::1]"##,
        ),
        (
            r##"{{ parseDuration "1h30m" }} {{ parseDuration "1d" }} {{ parseDuration "100ms" }} {{ parseDuration "0" }} {{ parseDuration "1y" }} {{ parseDuration "1w2d" }}"##,
            r##"5400 86400 0.1 0 3.1536e+07 777600"##,
        ),
        (
            r##"{{ parseDuration "x" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <parseDuration "x">: error calling parseDuration: not a valid duration string: "x">"##,
        ),
        (
            r##"{{ args 1 "a" }}|{{ (args 1 "a").arg1 }}|{{ (args 1).nope }}|{{ printf "%v" (args 1 nil) }}"##,
            r##"map[arg0:1 arg1:a]|a|<no value>|map[arg0:1 arg1:<nil>]"##,
        ),
        (
            r##"{{ (args 1).nope.x }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:121: executing "__alert_A" at <1>: nil pointer evaluating interface {}.x>"##,
        ),
        (r##"{{ safeHtml "<b>" }}|{{ printf "%T" (safeHtml "x") }}"##, r##"<b>|template.HTML"##),
        (
            r##"{{ safeHtml "x" | toUpper }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:130: executing "__alert_A" at <toUpper>: wrong type for value; expected string; got template.HTML>"##,
        ),
        (
            r##"{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}|{{ range $labels }}{{ . }},{{ end }}|{{ range $x := (args) }}x{{ else }}empty{{ end }}"##,
            r##"__name__=up;instance=i:9090;job=j;|up,i:9090,j,|empty"##,
        ),
        (
            r##"{{ if eq 1 2 }}a{{ else if eq 2 2 }}b{{ else }}c{{ end }}|{{ with $labels.job }}[{{ . }}]{{ end }}|{{ with $labels.nope }}x{{ else }}none{{ end }}"##,
            r##"b|[j]|none"##,
        ),
        (
            r##"{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: undefined variable "$y">"##,
        ),
        (r##"{{ $v := 1 }}{{ if true }}{{ $v = 2 }}{{ $w := 3 }}{{ end }}{{ $v }}"##, r##"2"##),
        (
            r##"a  {{- 1 -}}  b {{- /* c */ -}} c {{ 2 -}}
 d"##,
            r##"a1bc 2d"##,
        ),
        (r##"{{ range $i, $e := query "m" }}{{ $i }}:{{ $e.Value }} {{ end }}"##, r##"0:1 1:3 2:2 "##),
        (r##"{{ define "x" }}X{{ . }}{{ end }}{{ template "x" 5 }}|{{ block "b" 3 }}B{{ . }}{{ end }}"##, r##"X5|B3"##),
        (
            r##"{{ template "nope" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:124: executing "__alert_A" at <{{template "nope"}}>: template "nope" not defined>"##,
        ),
        (
            r##"{{ range $i, $e := (args 1 2 3 4) }}{{ if eq $i "arg1" }}{{ continue }}{{ end }}{{ if eq $i "arg3" }}{{ break }}{{ end }}{{ $e }}{{ end }}"##,
            r##"13"##,
        ),
        (
            r##"{{ 'a' }} {{ 0x1F }} {{ 1_000 }} {{ 0o17 }} {{ 017 }} {{ "\u00e9\x41\t|" }} {{ `raw\n` }} {{ -5 }} {{ +5 }} {{ .5 }} {{ 1. }} {{ 0x1p4 }} {{ 1e3 }}"##,
            r##"97 31 1000 15 15 éA	| raw\n -5 5 0.5 1 16 1000"##,
        ),
        (
            r##"{{ printf "%T %T %T %T %T %T %T %T %T %T" 1 1.5 "s" $labels nil (query "m") (first (query "m")) (toTime 1) (args) . }}"##,
            r##"int float64 string map[string]string <nil> template.queryResult *template.sample *time.Time map[string]interface {} struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }"##,
        ),
        (
            r##"{{ (toTime 1.5).Unix }}|{{ (toTime 1.5).Format "2006-01-02T15:04:05.000Z07:00 Mon Jan _2 3PM -0700 MST" }}|{{ (toTime 1.5).Year }}|{{ (toTime 1.5).Month }}"##,
            r##"1|1970-01-01T00:00:01.500Z Thu Jan  1 12AM +0000 UTC|1970|January"##,
        ),
        (
            r##"{{ .Labels.job.x }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:122: executing "__alert_A" at <.Labels.job.x>: can't evaluate field x in type string>"##,
        ),
        (
            r##"{{ $value.x }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:121: executing "__alert_A" at <$value.x>: can't evaluate field x in type float64>"##,
        ),
        (
            r##"{{ nil }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <nil>: nil is not a command>"##,
        ),
        (r##"{{ 1 | printf "%d" }}|{{ "x" | printf "%s-%s" "y" }}"##, r##"1|y-x"##),
        (
            r##"{{ "x" | 1 }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: non executable command in pipeline stage 2>"##,
        ),
        (
            r##"{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected {{end}}>"##,
        ),
        (
            r##"{{ else }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected {{else}}>"##,
        ),
        (
            r##"{{ if 1 }}{{ else }}{{ else }}{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: expected end; found {{else}}>"##,
        ),
        (
            r##"{{ range $a, $b, $c := . }}{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: too many declarations in range>"##,
        ),
        (
            r##"{{ "abc }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unterminated quoted string>"##,
        ),
        (
            r##"{{ ( }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unclosed left paren>"##,
        ),
        (
            r##"{{ ) }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected ")" in command>"##,
        ),
        (
            r##"{{/* x }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unclosed comment>"##,
        ),
        (
            r##"{{/* x */ }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: comment ends before closing delimiter>"##,
        ),
        (
            r##"{{ .a.1 }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected ".1" in operand>"##,
        ),
        (
            r##"{{ 1.a }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: bad number syntax: "1.a">"##,
        ),
        (
            r##"{{ 'ab' }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: malformed character constant: 'ab'>"##,
        ),
        (
            r##"{{ 99999999999999999999 }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: integer overflow: "99999999999999999999">"##,
        ),
        (
            r##"{{ "\q" }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: invalid syntax>"##,
        ),
        (r##"{{ $x := 1 | }}"##, r##""##),
        (
            r##"{{ | }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected "|" in command>"##,
        ),
        (
            r##"{{ template x }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected "x" in template clause>"##,
        ),
        (
            r##"{{ define "a" }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected EOF>"##,
        ),
        (
            r##"{{ break }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: {{break}} outside {{range}}>"##,
        ),
        (
            r##"{{ with $x := 1 }}{{ end }}{{ $x }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: undefined variable "$x">"##,
        ),
        (
            r##"{{ @ }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected "@" in command>"##,
        ),
        (
            r##"{{ }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: missing value for command>"##,
        ),
        (r##"{{ .Labels | len | printf "%d" | len }}"##, r##"1"##),
        (
            r##"{{ printf "%s" }"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected "}" in operand>"##,
        ),
        (
            r##"{{ "a" "b" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <"a">: can't give argument to non-function "a">"##,
        ),
        (
            r##"{{ $labels "b" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <$labels>: can't give argument to non-function $labels>"##,
        ),
        (
            r##"{{ .Labels "b" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <.Labels>: Labels has arguments but cannot be invoked as function>"##,
        ),
        (
            r##"{{ (1).x }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:116: executing "__alert_A" at <1>: can't evaluate field x in type int>"##,
        ),
        (
            r##"{{ printf "%d" 1.5 }}|{{ printf "%s" nil }}|{{ printf "%v" nil }}|{{ printf "%5.2f%%" 99.5 }}|{{ printf "%t" true }}|{{ printf "%6.2v" 3.14159 }}|{{ printf "%x" 3.5 }}|{{ printf "%.3s" "abcdef" }}|{{ printf "%-8q|" "a" }}|{{ printf "%08.3e" 1234.5 }}|{{ printf "%+v" . }}"##,
            r##"%!d(float64=1.5)|%!s(<nil>)|<nil>|99.50%|true|   3.1|0x1.cp+01|abc|"a"     ||1.234e+03|{Labels:map[__name__:up instance:i:9090 job:j] ExternalLabels:map[] ExternalURL: Value:1.5}"##,
        ),
        (
            r##"{{ printf "%*d|%-*d|%.*f" 5 1 4 2 2 3.14159 }}|{{ printf "%[2]d %[1]d" 1 2 }}|{{ printf "%!" }}|{{ printf "%" }}|{{ printf "%z" 1 }}"##,
            r##"    1|2   |3.14|2 1|%!!(MISSING)|%!(NOVERB)|%!z(int=1)"##,
        ),
        (
            r##"{{ if 1 }}
{{ foo }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:2: function "foo" not defined>"##,
        ),
        (
            r##"{{ 
 foo 
 }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:2: function "foo" not defined>"##,
        ),
        (
            r##"a
{{ 1 }}
{{ humanize "x" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:3:3: executing "__alert_A" at <humanize "x">: error calling humanize: strconv.ParseFloat: parsing "x": invalid syntax>"##,
        ),
        (
            r##"a
{{ if 1 }}
b{{ $labels.x.y }}
{{ end }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:3:11: executing "__alert_A" at <$labels.x.y>: can't evaluate field y in type string>"##,
        ),
        (
            r##"{{ if 1
 }}x{{ end }}
{{ "abc
" }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:3: unterminated quoted string>"##,
        ),
        (
            r##"{{ humanize "1_000" }}|{{ humanize "0x1p4" }}|{{ humanize ".5" }}|{{ humanize "5." }}|{{ humanize "Infinity" }}|{{ humanize "-nan" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:227: executing "__alert_A" at <humanize "-nan">: error calling humanize: strconv.ParseFloat: parsing "-nan": invalid syntax>"##,
        ),
        (
            r##"{{ humanize "1e400" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <humanize "1e400">: error calling humanize: strconv.ParseFloat: parsing "1e400": value out of range>"##,
        ),
        (
            r##"{{ humanize " 1" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <humanize " 1">: error calling humanize: strconv.ParseFloat: parsing " 1": invalid syntax>"##,
        ),
        (
            r##"{{ stripDomain "01.2.3.4:80" }}|{{ stripDomain "::ffff:1.2.3.4" }}|{{ stripPort "[::1]" }}|{{ stripPort ":80" }}|{{ stripDomain ":80" }}|{{ stripDomain "a.b:" }}"##,
            r##"01:80|::ffff:1.2.3.4|[::1]||:80|a"##,
        ),
        (
            r##"{{ len (first (query "m")) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <len (first (query "m"))>: error calling len: len of type template.sample>"##,
        ),
        (
            r##"{{ index $labels }}|{{ slice (query "m") 1 | len }}|{{ $.Labels.job }}|{{ .Labels.job | printf "%q" }}"##,
            r##"map[__name__:up instance:i:9090 job:j]|2|j|"j""##,
        ),
        (
            r##"{{ range 5 }}{{ end }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:121: executing "__alert_A" at <5>: range can't iterate over 5>"##,
        ),
        (
            r##"{{ range "abc" }}{{ end }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:121: executing "__alert_A" at <"abc">: range can't iterate over abc>"##,
        ),
        (
            r##"{{ range first (query "m") }}{{ end }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:134: executing "__alert_A" at <"m">: range can't iterate over {map[__name__:m a:y b:1] 1}>"##,
        ),
        (r##"{{ $x := 0 }}{{ range $x = (args 7 8) }}{{ $x }}{{ end }}|{{ $x }}"##, r##"78|8"##),
        (
            r##"{{ with $x := 5 }}{{ $x }}{{ end }}|{{ $ }}"##,
            r##"5|{map[__name__:up instance:i:9090 job:j] map[]  1.5}"##,
        ),
        (
            r##"{{ humanize true }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <humanize true>: error calling humanize: can't convert bool to float>"##,
        ),
        (
            r##"{{ humanize (args) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <humanize (args)>: error calling humanize: can't convert map[string]interface {} to float>"##,
        ),
        (
            r##"{{ humanize nil }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <humanize nil>: error calling humanize: can't convert <nil> to float>"##,
        ),
        (
            r##"{{ toTime "x" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <toTime "x">: error calling toTime: strconv.ParseFloat: parsing "x": invalid syntax>"##,
        ),
        (
            r##"{{ call 1 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <call 1>: error calling call: non-function of type int>"##,
        ),
        (
            r##"{{ call nil }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <call nil>: error calling call: call of nil>"##,
        ),
        (
            r##"{{ index nil 1 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <index nil 1>: error calling index: index of untyped nil>"##,
        ),
        (
            r##"{{ index 5 1 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <index 5 1>: error calling index: can't index item of type int>"##,
        ),
        (
            r##"{{ slice "abc" 2 1 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <slice "abc" 2 1>: error calling slice: invalid slice index: 2 > 1>"##,
        ),
        (
            r##"{{ slice "abc" 1 2 3 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <slice "abc" 1 2 3>: error calling slice: cannot 3-index slice a string>"##,
        ),
        (
            r##"{{ slice (args) 1 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <slice (args) 1>: error calling slice: can't slice item of type map[string]interface {}>"##,
        ),
        (r##"{{ printf "%d" (toTime 1) }}"##, r##"&{0 62135596801 0}"##),
        (
            r##"{{ html nil }}|{{ js 1 2 }}|{{ urlquery (first (query "m")) }}|{{ html "a" 1 }}|{{ print nil 1 }}|{{ html (first (query "m")) }}"##,
            r##"&lt;no value&gt;|1 2|%7Bmap%5B__name__%3Am+a%3Ay+b%3A1%5D+1%7D|a1|<nil> 1|{map[__name__:m a:y b:1] 1}"##,
        ),
        (
            r##"{{ 1 | not }}|{{ .Value | printf "%.2f" }}|{{ $labels.instance | reReplaceAll "(.*):.*" "$1" }}|{{ "x" | printf "%s %s" }}"##,
            r##"false|1.50|i|x %!s(MISSING)"##,
        ),
        (
            r##"{{ not }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <not>: wrong number of args for not: want 1 got 0>"##,
        ),
        (
            r##"{{ (toTime 1).Foo }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:123: executing "__alert_A" at <1>: can't evaluate field Foo in type *time.Time>"##,
        ),
        (
            r##"{{ (toTime 1).Unix 1 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:123: executing "__alert_A" at <1>: wrong number of args for Unix: want 0 got 1>"##,
        ),
        (r##"{{ define "x" }}{{ $ }}{{ . }}{{ end }}{{ template "x" 3 }}"##, r##"33"##),
        (
            r##"{{ define "__alert_A" }}x{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: template: multiple definition of template "__alert_A">"##,
        ),
        (
            r##"{{ define "a" }}1{{ end }}{{ define "a" }}2{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: template: multiple definition of template "a">"##,
        ),
        (r##"{{ define "a" }}1{{ end }}{{ define "a" }} {{ end }}{{ template "a" }}"##, r##"1"##),
        (
            r##"{{ if 1 }}{{ else if }}{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: missing value for if>"##,
        ),
        (
            r##"{{ if 1 }}{{ else with 2 }}{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected <with> in else>"##,
        ),
        (
            r##"{{ range $labels }}{{ else if 1 }}x{{ end }}|{{ with 0 }}{{ else if 2 }}y{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected <if> in input>"##,
        ),
        (r##"{{ $x := 1 }}{{ $x := 2 }}{{ $x }}"##, r##"2"##),
        (
            r##"{{ $x, $y := 1 }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: too many declarations in command>"##,
        ),
        (
            r##"{{ range $x, 1 }}{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: range can only initialize variables>"##,
        ),
        (
            r##"{{ if 1 }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected EOF>"##,
        ),
        (
            r##"{{ define 1 }}{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected "1" in define clause>"##,
        ),
        (
            r##"{{ template "x" 1 2 }}{{ define "x" }}{{ end }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:128: executing "__alert_A" at <1>: can't give argument to non-function 1>"##,
        ),
        (r##"{{ 1 }}}}|{{-1}}|{{ 1 -}}  |{{- /* c */}}  |  {{/* c */ -}}  x"##, r##"1}}|-1|1|  |  x"##),
        (
            r##"{{ .Labels.job.}}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected <.> in operand>"##,
        ),
        (
            r##"{{ $.x }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:116: executing "__alert_A" at <$.x>: can't evaluate field x in type struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }>"##,
        ),
        (r##"{{ "a" | printf "%s" | len | humanize }}"##, r##"1"##),
        (
            r##"{{ printf "%.3v|%10.4v|%-10v|%+.2e|% .3f|%+v|%v" 3.14159 1234.5678 "ab" 12345.678 2.5 -1.0 -0.0 }}"##,
            r##"3.14|      1235|ab        |+1.23e+04| 2.500|-1|-0"##,
        ),
        (
            r##"{{ printf "%5t|%-6v|%3c|%-4q|%x|% x|%#x|%X" true false 65 66 "héllo" "ab" "ab" -255 }}"##,
            r##" true|false |  A|'B' |68c3a96c6c6f|61 62|0x6162|-FF"##,
        ),
        (
            r##"{{ printf "%6.2f|%-8.2e|%g|%g|%g|%.0f|%.0e|%G" 1e9 0.000123 1e-5 123456789.0 0.1 1e21 5e10 1e-10 }}"##,
            r##"1000000000.00|1.23e-04|1e-05|1.23456789e+08|0.1|1000000000000000000000|5e+10|1E-10"##,
        ),
        (
            r##"{{ printf "%v %v %v" 1e6 1e-5 123456.7 }}|{{ 100000.0 }}|{{ 999999.9 }}|{{ 0.000012345 }}|{{ 3.0 }}|{{ -2.5e-9 }}"##,
            r##"1e+06 1e-05 123456.7|100000|999999.9|1.2345e-05|3|-2.5e-09"##,
        ),
        (
            r##"{{ printf "%d|%5d|%.3d|%+.3d|%08.3d|%x|%-05d|" -7 -7 7 7 7 -7 7 }}"##,
            r##"-7|   -7|007|+007|     007|-7|7    |"##,
        ),
        (
            r##"{{ printf "%s" (args 1 "x") }}|{{ printf "%d" (args 1 "x") }}|{{ printf "%v" . }}|{{ printf "%s" . }}"##,
            r##"map[arg0:%!s(int=1) arg1:x]|map[%!d(string=arg0):1 %!d(string=arg1):%!d(string=x)]|{map[__name__:up instance:i:9090 job:j] map[]  1.5}|{map[__name__:up instance:i:9090 job:j] map[]  %!s(float64=1.5)}"##,
        ),
        (
            r##"{{ printf "%q" "a\"b\\c\u00a0\u200b\x01\U0001F600é" }}|{{ printf "%+q" "é" }}|{{ printf "%#q" "ab" }}|{{ printf "%#q" "a`b" }}"##,
            r##""a\"b\\c\u00a0\u200b\x01😀é"|"\u00e9"|`ab`|"a`b""##,
        ),
        (r##"{{ printf "%.2s|%.0s|%5.1q" "héllo" "x" "abc" }}"##, r##"hé||  "a""##),
        (r##"{{ printf "%c|%q|%U" -1 10 128512 }}"##, r##"�|'\n'|U+1F600"##),
        (
            r##"{{ len (toTime 1) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <len (toTime 1)>: error calling len: len of type time.Time>"##,
        ),
        (
            r##"{{ index (toTime 1) 1 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <index (toTime 1) 1>: error calling index: can't index item of type time.Time>"##,
        ),
        (
            r##"{{ lt true false }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <lt true false>: error calling lt: invalid type for comparison>"##,
        ),
        (
            r##"{{ eq (args) (args) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <eq (args) (args)>: error calling eq: non-comparable type map[]: map[string]interface {}>"##,
        ),
        (
            r##"{{ eq (query "m") 1 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <eq (query "m") 1>: error calling eq: incompatible types for comparison>"##,
        ),
        (
            r##"{{ eq 1 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <eq 1>: error calling eq: missing argument for comparison>"##,
        ),
        (r##"{{ and 0 (humanize "x") }}|{{ or 1 (humanize "x") }}"##, r##"0|1"##),
        (
            r##"{{ and 1 (humanize "x") }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:122: executing "__alert_A" at <humanize "x">: error calling humanize: strconv.ParseFloat: parsing "x": invalid syntax>"##,
        ),
        (r##"{{ 1 | eq 1 }}|{{ 2 | eq 1 }}|{{ "a" | index (args "a") }}"##, r##"true|false|<no value>"##),
        (r##"{{ title "ǆemal ﬁx" }}|{{ toUpper "ǆ ﬁ ŉ" }}|{{ toLower "İ Σ" }}"##, r##"ǅemal ﬁx|Ǆ ﬁ ŉ|i σ"##),
        (
            r##"{{ 1
 ( }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:2: unclosed left paren in action started at __alert_A:1>"##,
        ),
        (
            r##"{{
"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:2: unclosed action started at __alert_A:1>"##,
        ),
        (
            r##"{{ 1
 "abc }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:2: unterminated quoted string in action started at __alert_A:1>"##,
        ),
        (
            r##"{{ `abc
"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unterminated raw quoted string>"##,
        ),
        (
            r##"{{ if 1 }}
{{ 1 | }} {{ end }}
{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:3: unexpected {{end}}>"##,
        ),
        (
            r##"x
{{ define "a" }}
{{ .Foo }}{{ end }}{{ template "a" . }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:3:3: executing "a" at <.Foo>: can't evaluate field Foo in type struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }>"##,
        ),
        (
            r##"{{ if 1 }}
{{ 2 }}{{ end }}"##,
            r##"
2"##,
        ),
        (r##"{{ humanize "1_000" }}"##, r##"1k"##),
        (
            r##"{{ humanize "0x1p4" }}|{{ humanize ".5" }}|{{ humanize "5." }}|{{ humanize "Infinity" }}|{{ humanize "+inf" }}|{{ humanize "1E3" }}|{{ humanize "0x10" }}|{{ humanize "1e-400" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:247: executing "__alert_A" at <humanize "0x10">: error calling humanize: strconv.ParseFloat: parsing "0x10": invalid syntax>"##,
        ),
        (
            r##"{{ humanize "-nan" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <humanize "-nan">: error calling humanize: strconv.ParseFloat: parsing "-nan": invalid syntax>"##,
        ),
        (
            r##"{{ humanize "nan" }}|{{ humanize "-NaN" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:136: executing "__alert_A" at <humanize "-NaN">: error calling humanize: strconv.ParseFloat: parsing "-NaN": invalid syntax>"##,
        ),
        (
            r##"{{ humanize "1e" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <humanize "1e">: error calling humanize: strconv.ParseFloat: parsing "1e": invalid syntax>"##,
        ),
        (
            r##"{{ eq nil nil }}|{{ eq nil 1 }}|{{ eq (first (query "m")) nil }}|{{ eq (args) nil }}|{{ eq $labels nil }}"##,
            r##"true|false|false|false|false"##,
        ),
        (
            r##"{{ eq (query "m") (args) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <eq (query "m") (args)>: error calling eq: non-comparable types [%!s(*template.sample=&{map[__name__:m a:y b:1] 1}) %!s(*template.sample=&{map[__name__:m a:x b:2] 3}) %!s(*template.sample=&{map[__name__:m a:z b:0] 2})]: template.queryResult, map[string]interface {}: map[]>"##,
        ),
        (
            r##"{{ eq (args 1) (args 2) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <eq (args 1) (args 2)>: error calling eq: non-comparable type map[arg0:%!s(int=2)]: map[string]interface {}>"##,
        ),
        (
            r##"{{ printf "%x|%X|%b|%#v|%#v|%#v|%#v|%#v" 3.5 -0.1 2.0 1.0 "a" $labels 1e21 1e20 }}"##,
            r##"0x1.cp+01|-0X1.999999999999AP-04|4503599627370496p-51|1|"a"|map[string]string{"__name__":"up", "instance":"i:9090", "job":"j"}|1e+21|1e+20"##,
        ),
        (
            r##"{{ printf "%d|%x" (toTime 1.5) (toTime 1.5) }}"##,
            r##"&{500000000 62135596801 0}|313937302d30312d30312030303a30303a30312e35202b3030303020555443"##,
        ),
        (
            r##"{{ printf "%08.3f|%-08.3f|%+08.3f|% 08.3f|%08v|%08s|%-08d" 3.14159 3.14159 3.14159 3.14159 3.5 "ab" 5 }}"##,
            r##"0003.142|3.142   |+003.142| 003.142|000003.5|000000ab|5       "##,
        ),
        (
            r##"{{ printf "%6.1f|%06.1f|%6.1e|%.3g|%.3g|%.10g|%.3g" -0.05 -0.05 123456.0 0.0001234 1e-5 1.0 100.0 }}"##,
            r##"  -0.1|-000.1|1.2e+05|0.000123|1e-05|1|100"##,
        ),
        (
            r##"{{ printf "%f|%f|%e|%g|%06f|%+f|%8.2f" (humanize "+Inf" | len) 1.0 0.0 0.0 -1.5 1.5 -0.001 }}"##,
            r##"%!f(int=4)|1.000000|0.000000e+00|0|-1.500000|+1.500000|   -0.00"##,
        ),
        (
            r##"{{ printf "%f %v %e %g %5.1f|%-6v|%06v" ("+Inf" | parseDuration) 1 1 1 1 1 1 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:162: executing "__alert_A" at <parseDuration>: error calling parseDuration: not a valid duration string: "+Inf">"##,
        ),
        (
            r##"{{ reReplaceAll "\\u00e9" "${host}" "baaac" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <reReplaceAll "\\u00e9" "${host}" "baaac">: error calling reReplaceAll: regexp: Compile(`\u00e9`): error parsing regexp: invalid escape sequence: `\u`>"##,
        ),
        (
            r##"{{ reReplaceAll ")" "x" "x]a" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <reReplaceAll ")" "x" "x]a">: error calling reReplaceAll: regexp: Compile(`)`): error parsing regexp: unexpected ): `)`>"##,
        ),
        (
            r##"{{ match "\\u00e9" "foo bar" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <match "\\u00e9" "foo bar">: error calling match: error parsing regexp: invalid escape sequence: `\u`>"##,
        ),
        (
            r##"{{ reReplaceAll "\\1" "${1" "host:9090" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <reReplaceAll "\\1" "${1" "host:9090">: error calling reReplaceAll: regexp: Compile(`\1`): error parsing regexp: invalid escape sequence: `\1`>"##,
        ),
        (
            r##"{{ match "(" "aaa" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <match "(" "aaa">: error calling match: error parsing regexp: missing closing ): `(`>"##,
        ),
        (
            r##"{{ match "a**" "a.b" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <match "a**" "a.b">: error calling match: error parsing regexp: invalid nested repetition operator: `**`>"##,
        ),
        (
            r##"{{ reReplaceAll "\\C" "${host}" "" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <reReplaceAll "\\C" "${host}" "">: error calling reReplaceAll: regexp: Compile(`\C`): error parsing regexp: invalid escape sequence: `\C`>"##,
        ),
        (
            r##"{{ match "[z-a]" "host:9090" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <match "[z-a]" "host:9090">: error calling match: error parsing regexp: invalid character class range: `z-a`>"##,
        ),
        (
            r##"{{ match "a{1001}" "a.b" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <match "a{1001}" "a.b">: error calling match: error parsing regexp: invalid repeat count: `{1001}`>"##,
        ),
        (
            r##"{{ match "a{1001}" "baaac" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <match "a{1001}" "baaac">: error calling match: error parsing regexp: invalid repeat count: `{1001}`>"##,
        ),
        (
            r##"{{ reReplaceAll "(?<n>a)" "$1" "" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <reReplaceAll "(?<n>a)" "$1" "">: error calling reReplaceAll: regexp: Compile(`(?<n>a)`): error parsing regexp: invalid or unsupported Perl syntax: `(?<`>"##,
        ),
        (
            r##"{{ reReplaceAll "\\u00e9" "${host}" "a.b" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <reReplaceAll "\\u00e9" "${host}" "a.b">: error calling reReplaceAll: regexp: Compile(`\u00e9`): error parsing regexp: invalid escape sequence: `\u`>"##,
        ),
        (
            r##"{{ match "(?<n>a)" "host:9090" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <match "(?<n>a)" "host:9090">: error calling match: error parsing regexp: invalid or unsupported Perl syntax: `(?<`>"##,
        ),
        (
            r##"{{ match "[z-a]" "\u00e9\u00e9" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <match "[z-a]" "\u00e9\u00e9">: error calling match: error parsing regexp: invalid character class range: `z-a`>"##,
        ),
        (
            r##"{{ reReplaceAll "\\q" "$-" "abab" }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <reReplaceAll "\\q" "$-" "abab">: error calling reReplaceAll: regexp: Compile(`\q`): error parsing regexp: invalid escape sequence: `\q`>"##,
        ),
        (r##"{{ reReplaceAll "(?i)AB" "$host" "abab" }}"##, r##""##),
        (r##"{{ match "^x" "x]a" }}"##, r##"true"##),
        (r##"{{ reReplaceAll "a|b|" "$1" "\u00e9\u00e9" }}"##, r##"éé"##),
        (r##"{{ reReplaceAll "[a-c]+" "[$0]" "baaac" }}"##, r##"[baaac]"##),
        (r##"{{ reReplaceAll "\\w+\\s" "x" "x]a" }}"##, r##"x]a"##),
        (r##"{{ reReplaceAll "x$" "$2$1" "foo bar" }}"##, r##"foo bar"##),
        (r##"{{ reReplaceAll "\\\\" "$1x" "aaa" }}"##, r##"aaa"##),
        (r##"{{ reReplaceAll "[^]a]" "$" "\u00e9\u00e9" }}"##, r##"$$"##),
        (r##"{{ match "(?P<host>[^:]+):(?P<port>\\d+)" "abab" }}"##, r##"false"##),
        (r##"{{ match "a|b|" "" }}"##, r##"true"##),
        (r##"{{ match "a{2}" "" }}"##, r##"false"##),
        (r##"{{ match "[]a]" "" }}"##, r##"false"##),
        (r##"{{ match "(?:ab)+" "abab" }}"##, r##"true"##),
        (r##"{{ reReplaceAll "a{2}" "$1" "aaa" }}"##, r##"a"##),
        (r##"{{ match "[a-c]+" "x]a" }}"##, r##"true"##),
        (
            r##"{{ else  {{- $ 1.a }}x"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected "{" in else>"##,
        ),
        (
            r##"{{ define "d"  with  end */ ' }}x"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected <with> in define clause>"##,
        ),
        (
            r##"{{ {{ . block "b" 1  /* }}{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected "{" in command>"##,
        ),
        (
            r##"{{ $x }}{{ else }}y{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: undefined variable "$x">"##,
        ),
        (
            r##"{{ "\x41" }}{{ else }}y{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected {{else}}>"##,
        ),
        (
            r##"{{ $y }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: undefined variable "$y">"##,
        ),
        (
            r##".Labels}}break0x -}}end"\x41"break{{"s""##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unclosed action>"##,
        ),
        (
            r##"{{ "\x41" "\x41" }}{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected {{end}}>"##,
        ),
        (
            r##"{{ "\x41" }}{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected {{end}}>"##,
        ),
        (
            r##"{{  |  humanize print }}x"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected "|" in command>"##,
        ),
        (
            r##"{{ end */ 1 | template "d"  }}x"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected "*" in end>"##,
        ),
        (
            r##"{{ -}} }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: missing value for command>"##,
        ),
        (
            r##"{{ if  "s" end end 1 }}{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected <end> in operand>"##,
        ),
        (
            r##"{{ continue "s" }}{{ else }}y{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected "\"s\"" in {{continue}}>"##,
        ),
        (
            r##"{{   end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected {{end}}>"##,
        ),
        (
            r##"{{ ' "s" }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unterminated character constant>"##,
        ),
        (
            r##"{{ "s" . .Labels.job {{- break }}{{ end }}"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected "{" in operand>"##,
        ),
        (
            r##" | {{-block "b" 1 humanize(`:=nil.1"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: bad number syntax: "-b">"##,
        ),
        (
            r##"{{ $ nil humanize .Labels.job "\x41" }}x"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:115: executing "__alert_A" at <$>: can't give argument to non-function $>"##,
        ),
        (
            r##"{{else not)"##,
            r##"<error expanding template: error parsing template __alert_A: template: __alert_A:1: unexpected "not" in else>"##,
        ),
        (r##"and 1printf "%d"end"##, r##"and 1printf "%d"end"##),
        (r##"len$x$ynilblock "b" 1 `"##, r##"len$x$ynilblock "b" 1 `"##),
        (r##"'indexprint'c'*/.Labels'"##, r##"'indexprint'c'*/.Labels'"##),
        (r##"*/*/nilwith "##, r##"*/*/nilwith "##),
        (r##".a*/"##, r##".a*/"##),
        (r##"($x`humanize"##, r##"($x`humanize"##),
        (r##"/*'define "d" ...|1.5true"##, r##"/*'define "d" ...|1.5true"##),
        (r##"' = index`"##, r##"' = index`"##),
        (
            r##"$labels$yhumanize
notend)"##,
            r##"$labels$yhumanize
notend)"##,
        ),
        (r##"{{ .Labels.job }}x"##, r##"jx"##),
        (r##"1.5.1.-}}"s" := printf "%d"'`r` -}}"##, r##"1.5.1.-}}"s" := printf "%d"'`r` -}}"##),
        (r##"'$x"##, r##"'$x"##),
        (r##"`("s"nilprint`"##, r##"`("s"nilprint`"##),
        (
            r##"|$i, $e := end"\q"1.5printf "%d"$x := 1$x := 1}}"##,
            r##"|$i, $e := end"\q"1.5printf "%d"$x := 1$x := 1}}"##,
        ),
        (r##"block "b" 1 $ytrue.Labels.jobhumanize"##, r##"block "b" 1 $ytrue.Labels.jobhumanize"##),
        (r##"{{ 'c' }}"##, r##"99"##),
        (r##"$x`1e"##, r##"$x`1e"##),
        (r##"or||printf "%d"|"##, r##"or||printf "%d"|"##),
        (r##"}}orblock "b" 1 )/*"##, r##"}}orblock "b" 1 )/*"##),
        (r##".block "b" 1 }}.a"##, r##".block "b" 1 }}.a"##),
        (
            r##"{{ (safeHtml 123.456e3) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:125: executing "__alert_A" at <123.456e3>: expected string; found 123.456e3>"##,
        ),
        (
            r##"{{ (lt true "host.example.com:9090") }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:116: executing "__alert_A" at <lt true "host.example.com:9090">: error calling lt: incompatible types for comparison>"##,
        ),
        (
            r##"{{ range 'é' }}[{{ . }}]{{ else }}E{{ end }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:121: executing "__alert_A" at <'é'>: range can't iterate over 233>"##,
        ),
        (
            r##"{{ (title -42) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:122: executing "__alert_A" at <-42>: expected string; found -42>"##,
        ),
        (
            r##"{{ (le (printf "%+08.4q %12#v" (printf "%+8.10g % .2% %.4+v" 1.5 "-1e3" "line\nnext") (index .ExternalURL "NaN")) (printf "%+0*.0#v %-012.10v" )) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:199: executing "__alert_A" at <index .ExternalURL "NaN">: error calling index: cannot index slice/array with type string>"##,
        ),
        (
            r##"{{ (js (ne (printf "% .4f" ) 1.7976931348623157e308)) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:120: executing "__alert_A" at <ne (printf "% .4f") 1.7976931348623157e308>: error calling ne: incompatible types for comparison>"##,
        ),
        (
            r##"{{ range (lt 0.5 (or (len 1000000) 9223372036854775807)) }}[{{ $ | len }}]{{ else }}E{{ end }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:134: executing "__alert_A" at <len 1000000>: error calling len: len of type int>"##,
        ),
        (
            r##"{{ (humanizeDuration $) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:116: executing "__alert_A" at <humanizeDuration $>: error calling humanizeDuration: can't convert struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 } to float>"##,
        ),
        (
            r##"{{ (lt 1.5 (toTime 1.5)) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:116: executing "__alert_A" at <lt 1.5 (toTime 1.5)>: error calling lt: invalid type for comparison>"##,
        ),
        (
            r##"{{ (index 0.5 (html (title 0.5))) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:139: executing "__alert_A" at <0.5>: expected string; found 0.5>"##,
        ),
        (
            r##"{{ if 017 }}[{{ $ | len }}]{{ else }}E{{ end }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:132: executing "__alert_A" at <len>: error calling len: len of type struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }>"##,
        ),
        (
            r##"{{ (or (match "1.5" .Value) 12345.6789) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:132: executing "__alert_A" at <.Value>: wrong type for value; expected string; got float64>"##,
        ),
        (
            r##"{{ (title (safeHtml 255)) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:132: executing "__alert_A" at <255>: expected string; found 255>"##,
        ),
        (
            r##"{{ (ne (or $externalLabels (printf "%#3.2F %12X %0.0c" "[::1]:80" 1e100)) 1e100) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:116: executing "__alert_A" at <ne (or $externalLabels (printf "%#3.2F %12X %0.0c" "[::1]:80" 1e100)) 1e100>: error calling ne: incompatible types for comparison>"##,
        ),
        (
            r##"{{ (slice $labels (lt (not -42) (printf "%+3.*v %#8y" .))) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:131: executing "__alert_A" at <lt (not -42) (printf "%+3.*v %#8y" .)>: error calling lt: incompatible types for comparison>"##,
        ),
        (
            r##"{{ range -9223372036854775808 }}[{{ . }}]{{ else }}E{{ end }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:121: executing "__alert_A" at <-9223372036854775808>: range can't iterate over -9223372036854775808>"##,
        ),
        (
            r##"{{ (stripDomain 5e-324) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:128: executing "__alert_A" at <5e-324>: expected string; found 5e-324>"##,
        ),
        (
            r##"{{ with (println (toTime 1.5)) }}[{{ $ | len }}]{{ else }}E{{ end }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:153: executing "__alert_A" at <len>: error calling len: len of type struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }>"##,
        ),
        (
            r##"{{ (ne (printf "%+.*f" 0 (ne "NaN" -2.5)) (label (humanizeTimestamp 1) (graphLink "ÀÉÎ ǆ"))) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:138: executing "__alert_A" at <ne "NaN" -2.5>: error calling ne: incompatible types for comparison>"##,
        ),
        (
            r##"{{ (printf "%-0.*o %-03b" "<b>\"x\"</b>" (le 1.5 (js 3.14159)) 5e-324) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:154: executing "__alert_A" at <le 1.5 (js 3.14159)>: error calling le: incompatible types for comparison>"##,
        ),
        (
            r##"{{ (graphLink 42) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:126: executing "__alert_A" at <42>: expected string; found 42>"##,
        ),
        (
            r##"{{ (gt 100.0 (println 1.5)) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:116: executing "__alert_A" at <gt 100.0 (println 1.5)>: error calling gt: incompatible types for comparison>"##,
        ),
        (
            r##"{{ (slice (printf "%+012.2v %#8.2e %-12.0T" (printf "%+3.*x %+12T" "tab\there") true) (safeHtml "<i>")) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:116: executing "__alert_A" at <slice (printf "%+012.2v %#8.2e %-12.0T" (printf "%+3.*x %+12T" "tab\there") true) (safeHtml "<i>")>: error calling slice: cannot index slice/array with type template.HTML>"##,
        ),
        (
            r##"{{ with (printf "% .4y %+03% %3.2F" (printf "%-03.0d % .10d %.10e" ) (js (first 0)) (title (printf "%#12.10y" 1e6 1))) }}[{{ $ | len }}]{{ else }}E{{ end }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:192: executing "__alert_A" at <0>: can't handle 0 for arg of type template.queryResult>"##,
        ),
        (
            r##"{{ (printf "%+.2x %+.4%" (printf "%-0F %#8.*t" "1.5" (title 1e21))) }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:172: executing "__alert_A" at <1e21>: expected string; found 1e21>"##,
        ),
        (r##"{{ printf "% 8.10e"  }}"##, r##"%!e(MISSING)"##),
        (
            r##"{{ printf "% 12.0F" -0.0 '\n' $value $ }}"##,
            r##"          -0%!(EXTRA int=10, float64=1.5, struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }={map[__name__:up instance:i:9090 job:j] map[]  1.5})"##,
        ),
        (r##"template1"##, r##"template1"##),
        (r##"@' ' (}} . range"##, r##"@' ' (}} . range"##),
        (r##"{{ -1 }}"##, r##"-1"##),
        (
            r##"{{ printf "%#X|%#.2%|%+0.10g|%0.2T" 1.7976931348623157e308 }}"##,
            r##"0X1.FFFFFFFFFFFFFP+1023|%|%!g(MISSING)|%!T(MISSING)"##,
        ),
        (
            r##"{{ printf "%+3.10G|%0.0c|%+3.4X" .Labels.instance 1.5 "[::1]:80" }}"##,
            r##"%!G(string=i:9090)|%!c(float64=2)|5B3A3A31"##,
        ),
        (r##"{{ $labels.job }}"##, r##"j"##),
        (r##"{{ $labels.job }}"##, r##"j"##),
        (r##"{{ 1e20 }}"##, r##"1e+20"##),
        (r##"{{ humanizePercentage 2.675 }}"##, r##"267.5%"##),
        (r##"{{ printf "%+0*o" "" 1000000 }}"##, r##"%!(BADWIDTH)+3641100"##),
        (r##"{{ $ }}"##, r##"{map[__name__:up instance:i:9090 job:j] map[]  1.5}"##),
        (
            r##"{{ printf "%#T" $externalLabels 1 017 1e6 }}"##,
            r##"map[string]string%!(EXTRA int=1, int=15, float64=1e+06)"##,
        ),
        (
            r##"{{ printf "%#8.10f|%.0c" 1e6 5e-324 -9223372036854775808 "host.example.com:9090" }}"##,
            r##"1000000.0000000000|%!c(float64=5e-324)%!(EXTRA int=-9223372036854775808, string=host.example.com:9090)"##,
        ),
        (r##"{{ (printf "%#.10o %#*F" ) }}"##, r##"%!o(MISSING) %!(BADWIDTH)%!F(MISSING)"##),
        (r##"{{ printf "%03.10E|% 3.10o" 7.0 }}"##, r##"7.0000000000E+00|%!o(MISSING)"##),
        (r##"{{ printf "%-0*.*q|%#.10#v" false 5e-324 }}"##, r##"%!(BADWIDTH)%!(BADPREC)%!q(MISSING)|%!#(MISSING)v"##),
        (r##"{{ humanize 1e6 }}"##, r##"1M"##),
        (
            r##"{{ printf "%+03.2F" "\u00a0" .Value true "1.5" }}"##,
            r##"%!F(string=00 )%!(EXTRA float64=1.5, bool=true, string=1.5)"##,
        ),
        (
            r##"{{ printf "%+08.2y|%+0.*G|%+012.0+v" (args 1 "a") }}"##,
            r##"map[%!y(string=000000ar):%!y(int=     +01) %!y(string=000000ar):%!y(string=0000000a)]|%!(BADPREC)%!G(MISSING)|%!+(MISSING)v"##,
        ),
        (
            r##"{{ printf "% 3.4G|% 12x|%8.4+v|% *.10g" 1e6 $labels.nope }}"##,
            r##" 1E+06|            |%!+(MISSING)v|%!(BADWIDTH)%!g(MISSING)"##,
        ),
        (r##"withblock"##, r##"withblock"##),
        (r##"{{ printf "%.0q|%.10T" 1 }}"##, r##"'\x01'|%!T(MISSING)"##),
        (r##"{{ (ne 1e6 .Value) }}"##, r##"true"##),
        (
            r##"{{ humanizeTimestamp 951782400 }}|{{ humanizeTimestamp -2208988800 }}|{{ humanizeTimestamp 4102444800.999 }}|{{ humanizeTimestamp 253402300799 }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:224: executing "__alert_A" at <humanizeTimestamp 253402300799>: error calling humanizeTimestamp: 2.53402300799e+11 cannot be represented as a nanoseconds timestamp since it overflows int64>"##,
        ),
        (
            r##"{{ (toTime 951782400).Format "Monday Jan _2 2006 03:04:05.000 pm -07:00 Z07:00 .999 ,000" }}|{{ (toTime 951782400).YearDay }}|{{ (toTime 951782400).Weekday }}|{{ (toTime 1.25).UnixMilli }}"##,
            r##"Tuesday Feb 29 2000 12:00:00.000 am +00:00 Z  ,000|60|Tuesday|1250"##,
        ),
        (r##"{{ $x := 1 }}{{ range $i, $v := (args "a" "b") }}{{ $x = $i }}{{ $v }}{{ end }}{{ $x }}"##, r##"abarg1"##),
        (
            r##"{{ range $i, $v := $labels }}{{ if eq $i "job" }}{{ break }}{{ end }}{{ $i }};{{ end }}"##,
            r##"__name__;instance;"##,
        ),
        (
            r##"{{- /* comment */ -}}
  {{ $value | humanize }}  
{{- " x " -}}
"##,
            r##"1.5 x "##,
        ),
        (
            r##"line1
line2 {{ .Labels.job }}
{{ if .Value }}
  {{ .Missing }}
{{ end }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:4:5: executing "__alert_A" at <.Missing>: can't evaluate field Missing in type struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }>"##,
        ),
        (
            r##"{{ with $x := $labels.job }}{{ $x }}{{ . }}{{ end }}{{ with $labels.nope }}{{ else }}no{{ end }}"##,
            r##"jjno"##,
        ),
        (
            r##"{{ template "t" }}{{ define "t" }}{{ template "t" }}{{ end }}"##,
            r##"<error expanding template: error executing template __alert_A: template: __alert_A:1:158: executing "t" at <{{template "t"}}>: exceeded maximum template depth (100000)>"##,
        ),
        (
            r##"{{ len (printf "%v" (args 1 2 3 4 5 6 7 8 9 10 11)) }} {{ args 1 2 3 4 5 6 7 8 9 10 11 }}"##,
            r##"84 map[arg0:1 arg1:2 arg10:11 arg2:3 arg3:4 arg4:5 arg5:6 arg6:7 arg7:8 arg8:9 arg9:10]"##,
        ),
        (
            r##"{{ humanizeTimestamp 951782400 }}|{{ humanizeTimestamp -2208988800 }}|{{ humanizeTimestamp 4102444800.999 }}|{{ humanizeTimestamp 9223372036 }}|{{ humanizeTimestamp -9223372036.5 }}"##,
            r##"2000-02-29 00:00:00 +0000 UTC|1900-01-01 00:00:00 +0000 UTC|2100-01-01 00:00:00.999 +0000 UTC|2262-04-11 23:47:16 +0000 UTC|1677-09-21 00:12:43.501 +0000 UTC"##,
        ),
    ];
}
