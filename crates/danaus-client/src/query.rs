//! Running a query over QueryService and printing its result as a table,
//! JSON lines or CSV.

use std::io::Write;

use anyhow::anyhow;
use danaus_model as m;
use danaus_proto::convert;
use danaus_proto::v1 as pb;

use crate::time::format_time;
use crate::Client;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Series headers and indented `time value` lines.
    Table,
    /// One JSON object per series, then `{"completeness": …}`.
    Json,
    /// `time,<fields…>,value` rows with a header.
    Csv,
}

/// A value as JSON: NaN and infinities as the strings Prometheus uses.
pub fn json_of_value(v: &m::Value) -> serde_json::Value {
    match v {
        m::Value::Double(d) if !d.is_finite() => serde_json::Value::String(if d.is_nan() {
            "NaN".into()
        } else if *d > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }),
        m::Value::Double(d) => serde_json::json!(d),
        m::Value::Int64(i) => serde_json::json!(i),
        m::Value::Bool(b) => serde_json::json!(b),
        m::Value::String(s) => serde_json::json!(s),
        m::Value::Distribution(d) => serde_json::to_value(d).unwrap_or(serde_json::Value::Null),
        m::Value::Tuple(items) => serde_json::Value::Array(items.iter().map(json_of_value).collect()),
    }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn plain(v: &m::Value) -> String {
    match v {
        m::Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// What a query run printed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Printed {
    /// Series printed.
    pub series: usize,
    /// Points printed.
    pub points: usize,
    /// The completeness report, when the server sent one.
    pub completeness: Option<pb::Completeness>,
}

/// Runs `req` and prints the result to `out` in `format`.
pub async fn run(
    client: &Client,
    req: pb::QueryRequest,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<Printed> {
    let query = req.query.clone();
    let fail = |s: tonic::Status| anyhow!("query failed ({:?}):\n{}", s.code(), s.message());
    let mut stream = client.query().query(req).await.map_err(fail)?.into_inner();
    let mut printed = Printed::default();
    let mut csv_header = false;
    while let Some(msg) = stream.message().await.map_err(fail)? {
        match msg.item {
            Some(pb::query_response::Item::Batch(b)) => {
                if format == Format::Csv && !csv_header {
                    let mut h = vec!["time".to_owned()];
                    h.extend(b.columns.iter().map(|c| csv_cell(c)));
                    h.push("value".into());
                    writeln!(out, "{}", h.join(","))?;
                    csv_header = true;
                }
                for s in &b.series {
                    printed.series += 1;
                    printed.points += s.points.len();
                    let fields: Vec<m::FieldValue> = s
                        .fields
                        .iter()
                        .zip(&b.columns)
                        .map(|(f, c)| convert::field_value(f, c))
                        .collect::<Result<_, _>>()
                        .map_err(|e| anyhow!("malformed result: {}", e.0))?;
                    let values: Vec<(i64, m::Value)> = s
                        .points
                        .iter()
                        .map(|p| Ok((p.end_time, convert::value(p.value.as_ref())?)))
                        .collect::<Result<_, convert::ConvertError>>()
                        .map_err(|e| anyhow!("malformed result: {}", e.0))?;
                    match format {
                        Format::Table => {
                            let head: Vec<String> =
                                b.columns.iter().zip(&fields).map(|(c, v)| format!("{c}={v}")).collect();
                            writeln!(out, "{{{}}}", head.join(", "))?;
                            for (t, v) in &values {
                                writeln!(out, "  {}  {v}", format_time(*t))?;
                            }
                        }
                        Format::Json => {
                            let f: serde_json::Map<String, serde_json::Value> = b
                                .columns
                                .iter()
                                .zip(&fields)
                                .map(|(c, v)| (c.clone(), serde_json::to_value(v).unwrap_or_default()))
                                .collect();
                            let points: Vec<serde_json::Value> = values
                                .iter()
                                .map(|(t, v)| serde_json::json!({"time": t, "value": json_of_value(v)}))
                                .collect();
                            writeln!(out, "{}", serde_json::json!({"fields": f, "points": points}))?;
                        }
                        Format::Csv => {
                            for (t, v) in &values {
                                let mut row = vec![format_time(*t)];
                                row.extend(fields.iter().map(|f| csv_cell(&f.to_text())));
                                row.push(csv_cell(&plain(v)));
                                writeln!(out, "{}", row.join(","))?;
                            }
                        }
                    }
                }
            }
            Some(pb::query_response::Item::Completeness(c)) => {
                if format == Format::Json {
                    let sources: Vec<serde_json::Value> = c
                        .sources
                        .iter()
                        .map(|s| serde_json::json!({"zone": s.zone, "source": s.source, "answered": s.answered, "missing_reason": s.missing_reason}))
                        .collect();
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({"completeness": {"complete": c.complete, "sources": sources,
                            "series_touched": c.series_touched, "points_touched": c.points_touched}})
                    )?;
                }
                printed.completeness = Some(c);
            }
            None => {}
        }
    }
    if printed.completeness.is_none() {
        return Err(anyhow!("the server ended the query {query:?} without a completeness report"));
    }
    Ok(printed)
}

/// One line for humans about how complete a result is.
pub fn describe_completeness(c: &pb::Completeness) -> String {
    let answered = c.sources.iter().filter(|s| s.answered).count();
    let mut line = format!(
        "{} of {} sources answered; read {} series, {} points",
        answered,
        c.sources.len(),
        c.series_touched,
        c.points_touched
    );
    if !c.complete {
        let missing: Vec<String> = c
            .sources
            .iter()
            .filter(|s| !s.answered)
            .map(|s| format!("{}/{} ({})", s.zone, s.source, s.missing_reason))
            .collect();
        line = format!("INCOMPLETE: missing {}; {line}", missing.join(", "));
    }
    line
}
