//! Parsers of the Prometheus text exposition format (0.0.4) and
//! OpenMetrics 1.0 text, as scraped from targets.
//!
//! Both give samples (name, labels, value, optional timestamp in ms) and
//! per-family metadata (type, help, unit). Errors name the line and what
//! was expected; a scrape with a parse error stores nothing, as Prometheus
//! does.

use std::collections::HashMap;

/// Which format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The format a response's `Content-Type` names (Prometheus text when
    /// it names none we know, as Prometheus does).
    pub fn from_content_type(ct: Option<&str>) -> Format {
        match ct {
            Some(ct) if ct.trim_start().starts_with("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }
}

/// The `Accept` header scrapes send: OpenMetrics preferred, then the
/// Prometheus text format.
pub const ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels in the order written.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
    /// Milliseconds since the epoch, when the exposition gives one.
    pub timestamp_ms: Option<i64>,
}

/// What a family's `# TYPE`, `# HELP` and `# UNIT` lines said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Family {
    /// The type, as remote_write numbers it (0 unknown, 1 counter, 2 gauge,
    /// 3 histogram, 4 gauge histogram, 5 summary, 6 info, 7 stateset).
    pub r#type: i32,
    /// Help text.
    pub help: String,
    /// Unit (OpenMetrics).
    pub unit: String,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// Samples in order.
    pub samples: Vec<Sample>,
    /// Metadata by family name.
    pub families: HashMap<String, Family>,
}

impl Exposition {
    /// The family a sample belongs to and its metadata: the sample's own
    /// name, or its name without a type's suffix.
    pub fn family_of(&self, name: &str) -> Option<&Family> {
        if let Some(f) = self.families.get(name) {
            return Some(f);
        }
        ["_total", "_created", "_bucket", "_count", "_sum", "_gcount", "_gsum", "_info"]
            .iter()
            .find_map(|s| name.strip_suffix(s).and_then(|base| self.families.get(base)))
    }
}

fn type_code(t: &str) -> Option<i32> {
    Some(match t {
        "counter" => 1,
        "gauge" => 2,
        "histogram" => 3,
        "gaugehistogram" => 4,
        "summary" => 5,
        "info" => 6,
        "stateset" => 7,
        "unknown" | "untyped" => 0,
        _ => return None,
    })
}

/// Parses `body` in `format`.
pub fn parse(body: &str, format: Format) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut saw_eof = false;
    for (n, line) in body.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}", n + 1);
        if saw_eof {
            if line.is_empty() && format == Format::OpenMetrics {
                continue;
            }
            return Err(at("content after # EOF".into()));
        }
        let trimmed = if format == Format::Prometheus { line.trim() } else { line };
        if trimmed.is_empty() {
            if format == Format::OpenMetrics {
                return Err(at("empty lines are not allowed in OpenMetrics".into()));
            }
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            if format == Format::OpenMetrics && comment == " EOF" {
                saw_eof = true;
                continue;
            }
            let mut words = comment.trim_start().splitn(3, [' ', '\t']);
            let kind = words.next().unwrap_or("");
            let (Some(name), rest) = (words.next(), words.next().unwrap_or("")) else { continue };
            match kind {
                "TYPE" => {
                    let t =
                        type_code(rest.trim()).ok_or_else(|| at(format!("unknown metric type {:?}", rest.trim())))?;
                    out.families.entry(name.to_owned()).or_default().r#type = t;
                }
                "HELP" => out.families.entry(name.to_owned()).or_default().help = unescape_help(rest),
                "UNIT" if format == Format::OpenMetrics => {
                    out.families.entry(name.to_owned()).or_default().unit = rest.trim().to_owned()
                }
                _ => {}
            }
            continue;
        }
        out.samples.push(sample(trimmed, format).map_err(at)?);
    }
    if format == Format::OpenMetrics && !saw_eof {
        return Err("OpenMetrics text must end with # EOF".into());
    }
    Ok(out)
}

fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('\\')) => {
                out.push('\\');
                chars.next();
            }
            ('\\', Some('n')) => {
                out.push('\n');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn sample(line: &str, format: Format) -> Result<Sample, String> {
    let name_len = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(line.len());
    if name_len == 0 || !line.starts_with(is_name_start) {
        return Err(format!("expected a metric name at the start of {line:?}"));
    }
    let name = &line[..name_len];
    let mut rest = &line[name_len..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    // OpenMetrics exemplars follow " # ".
    let (main, _exemplar) = match rest.find(" # ") {
        Some(i) if format == Format::OpenMetrics => (&rest[..i], Some(&rest[i + 3..])),
        _ => (rest, None),
    };
    let mut fields = main.split_ascii_whitespace();
    let value_text = fields.next().ok_or_else(|| format!("{name}: missing value"))?;
    let value = parse_float(value_text).ok_or_else(|| format!("{name}: {value_text:?} is not a number"))?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(ts) => Some(match format {
            Format::Prometheus => {
                ts.parse::<i64>().map_err(|_| format!("{name}: timestamp {ts:?} is not milliseconds"))?
            }
            Format::OpenMetrics => {
                let secs = parse_float(ts).ok_or_else(|| format!("{name}: timestamp {ts:?} is not seconds"))?;
                if !secs.is_finite() {
                    return Err(format!("{name}: timestamp {ts:?} is not finite"));
                }
                (secs * 1000.0).round() as i64
            }
        }),
    };
    if let Some(extra) = fields.next() {
        return Err(format!("{name}: unexpected {extra:?} after the timestamp"));
    }
    Ok(Sample { name: name.to_owned(), labels, value, timestamp_ms })
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        s => s.parse().ok(),
    }
}

/// Parses `name="value",…}` and returns what follows the `}`.
fn parse_labels<'a>(mut s: &'a str, out: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let n = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
        if n == 0 || s.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("expected a label name at {:?}", truncate(s)));
        }
        let name = &s[..n];
        s = s[n..].trim_start();
        s = s.strip_prefix('=').ok_or_else(|| format!("expected `=` after label {name}"))?.trim_start();
        s = s.strip_prefix('"').ok_or_else(|| format!("expected a quoted value for label {name}"))?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated value of label {name}")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, c)) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => return Err(format!("unterminated value of label {name}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if out.iter().any(|(k, _)| k == name) {
            return Err(format!("label {name} appears twice"));
        }
        out.push((name.to_owned(), value));
        s = s[end + 1..].trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err(format!("expected `,` or `}}` after label {name}"));
        }
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(20) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text() {
        let body = "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n\
                    # TYPE node_cpu_seconds_total counter\n\
                    node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1234.5\n\
                    node_cpu_seconds_total{cpu=\"0\",mode=\"user\",} 10 1700000000000\n\
                    # a comment\n\
                    \n\
                    node_load1 NaN\n\
                    weird{path=\"a\\\\b\\\"c\\nd\"} +Inf\n";
        let e = parse(body, Format::Prometheus).unwrap();
        assert_eq!(e.samples.len(), 4);
        assert_eq!(e.samples[0].labels, vec![("cpu".into(), "0".into()), ("mode".into(), "idle".into())]);
        assert_eq!(e.samples[1].timestamp_ms, Some(1_700_000_000_000));
        assert!(e.samples[2].value.is_nan());
        assert_eq!(e.samples[3].labels[0].1, "a\\b\"c\nd");
        assert_eq!(e.family_of("node_cpu_seconds_total").unwrap().r#type, 1);
        assert_eq!(e.family_of("node_cpu_seconds_total").unwrap().help, "Seconds the CPUs spent in each mode.");
    }

    #[test]
    fn openmetrics_text() {
        let body = "# TYPE rpc counter\n# UNIT rpc_seconds seconds\n# HELP rpc Calls.\n\
                    rpc_total{code=\"200\"} 17 1700000000.5 # {trace_id=\"abc\"} 0.2 1700000000.1\n\
                    rpc_created{code=\"200\"} 1699999000\n# EOF\n";
        let e = parse(body, Format::OpenMetrics).unwrap();
        assert_eq!(e.samples[0].timestamp_ms, Some(1_700_000_000_500));
        assert_eq!(e.samples[0].value, 17.0);
        assert_eq!(e.family_of("rpc_total").unwrap().r#type, 1);
        assert!(parse("x 1\n", Format::OpenMetrics).unwrap_err().contains("# EOF"));
        assert!(parse("x 1\n# EOF\ny 2\n", Format::OpenMetrics).unwrap_err().contains("after # EOF"));
    }

    #[test]
    fn errors_name_the_line() {
        for (body, want) in [
            ("ok 1\nbad{a=\"1\" 2\n", "line 2"),
            ("x{a=1} 2\n", "quoted value"),
            ("x 1 2 3\n", "unexpected"),
            ("x abc\n", "not a number"),
            ("x{a=\"1\",a=\"2\"} 1\n", "appears twice"),
            ("# TYPE x blob\n", "unknown metric type"),
            ("1x 2\n", "metric name"),
        ] {
            let e = parse(body, Format::Prometheus).unwrap_err();
            assert!(e.contains(want), "{body:?}: {e}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::from_content_type(Some("application/openmetrics-text; version=1.0.0; charset=utf-8")),
            Format::OpenMetrics
        );
        assert_eq!(Format::from_content_type(Some("text/plain; version=0.0.4")), Format::Prometheus);
        assert_eq!(Format::from_content_type(None), Format::Prometheus);
    }
}
