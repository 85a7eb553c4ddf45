//! `danausctl`: the command line of Danaus.
//!
//! ```text
//! danausctl schema apply -f schemas.yaml
//! danausctl schema list
//! danausctl config validate|diff|apply -f config/   # configuration as code
//! danausctl config export -o config/ ; danausctl config history
//! danausctl rules check rules.yml ; danausctl rules test tests.yml
//! danausctl write -f points.jsonl          # or from stdin
//! danausctl read --target ComputeTask --metric /rpc/server/latency \
//!     --match 'user=monarch' --from now-1h [--output table|json]
//! ```

mod config;
mod rules;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read as _};

use anyhow::{anyhow, bail, Context as _};
use clap::{Parser, Subcommand, ValueEnum};
use danaus_client::query as qry;
use danaus_client::query::json_of_value;
use danaus_client::time::{format_time, now_ns, parse_duration_ns, parse_time};
use danaus_client::Client;
use danaus_model as m;
use danaus_proto::convert;
use danaus_proto::v1 as pb;
use serde::Deserialize;

/// Command line of Danaus.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Server gRPC address.
    #[arg(long, global = true, default_value = "http://127.0.0.1:7070", env = "DANAUS_ADDR")]
    addr: String,
    /// Tenant (default: the server's default tenant).
    #[arg(long, global = true, env = "DANAUS_TENANT")]
    tenant: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The zone table (ranges, replicas, leaves); --addr names a range
    /// assigner member.
    Zone {
        /// Print the table as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Target and metric schemas.
    #[command(subcommand)]
    Schema(SchemaCmd),
    /// The global configuration as code: validate, diff, apply, export,
    /// history, rollback (docs/configuration.md).
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Rules: check rule files and run their tests as promtool does
    /// (without a server); list what a server runs.
    #[command(subcommand)]
    Rules(rules::RulesCmd),
    /// Write points from JSON lines (a file or stdin).
    Write {
        /// JSON-lines file; `-` or absent reads stdin.
        #[arg(short = 'f', long)]
        file: Option<String>,
        /// Series per request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
    /// Read raw points.
    Read {
        /// Target schema.
        #[arg(long)]
        target: String,
        /// Metric name.
        #[arg(long)]
        metric: String,
        /// Matchers: `field=value`, `field!=value`, `field=~regex`, `field!~regex`.
        #[arg(long = "match", short = 'm')]
        matchers: Vec<String>,
        /// Start: now, now-1h, RFC 3339 or ns.
        #[arg(long, default_value = "now-1h")]
        from: String,
        /// End: now, now-1h, RFC 3339 or ns.
        #[arg(long, default_value = "now")]
        to: String,
        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Run a query (docs/query-language.md), e.g.
    /// `danausctl query 'fetch ComputeTask::/rpc/server/latency | align mean(1m)'`.
    Query {
        /// The query text.
        query: String,
        /// Start: now, now-1h, RFC 3339 or ns.
        #[arg(long, default_value = "now-1h")]
        from: String,
        /// End: now, now-1h, RFC 3339 or ns.
        #[arg(long, default_value = "now")]
        to: String,
        /// Default alignment period (e.g. 1m) for queries without `every`.
        #[arg(long, default_value = "1m")]
        step: String,
        /// Stop after this long (e.g. 30s); default: no limit.
        #[arg(long)]
        timeout: Option<String>,
        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = QueryOutput::Table)]
        output: QueryOutput,
    },
}

#[derive(Subcommand)]
enum SchemaCmd {
    /// Create or update schemas from a YAML file.
    Apply {
        /// YAML with `targets:` and `metrics:` lists.
        #[arg(short = 'f', long)]
        file: String,
    },
    /// List every schema.
    List,
    /// Show one schema as YAML.
    Get {
        /// Target schema name.
        #[arg(long, conflicts_with = "metric")]
        target: Option<String>,
        /// Metric schema name.
        #[arg(long)]
        metric: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum QueryOutput {
    Table,
    Json,
    Csv,
}

#[derive(Deserialize, serde::Serialize, Default)]
struct SchemaFile {
    #[serde(default)]
    targets: Vec<m::TargetSchema>,
    #[serde(default)]
    metrics: Vec<m::MetricSchema>,
}

#[derive(Deserialize)]
struct JsonSeries {
    target: String,
    #[serde(default)]
    target_fields: HashMap<String, serde_json::Value>,
    metric: String,
    #[serde(default)]
    metric_fields: HashMap<String, serde_json::Value>,
    points: Vec<JsonPoint>,
}

#[derive(Deserialize)]
struct JsonPoint {
    time: serde_json::Value,
    #[serde(default)]
    start_time: Option<serde_json::Value>,
    value: serde_json::Value,
}

fn json_time(v: &serde_json::Value, now: i64) -> Result<i64, String> {
    match v {
        serde_json::Value::Number(n) => n.as_i64().ok_or_else(|| format!("time {n} is not an integer of nanoseconds")),
        serde_json::Value::String(s) => parse_time(s, now),
        other => Err(format!("time {other} must be a string or an integer")),
    }
}

fn json_field(def: Option<&m::FieldDef>, name: &str, v: &serde_json::Value) -> Result<m::FieldValue, String> {
    use serde_json::Value as J;
    let want = def.map(|d| d.field_type);
    match (want, v) {
        (Some(m::FieldType::Int64), J::String(s)) => {
            s.parse().map(m::FieldValue::Int64).map_err(|_| format!("field {name:?} expects int64, got {s:?}"))
        }
        (Some(m::FieldType::String), J::Number(n)) => Ok(m::FieldValue::String(n.to_string())),
        (Some(m::FieldType::String), J::Bool(b)) => Ok(m::FieldValue::String(b.to_string())),
        (_, J::String(s)) => Ok(m::FieldValue::String(s.clone())),
        (_, J::Bool(b)) => Ok(m::FieldValue::Bool(*b)),
        (_, J::Number(n)) => {
            n.as_i64().map(m::FieldValue::Int64).ok_or_else(|| format!("field {name:?}: {n} is not an int64"))
        }
        (_, other) => Err(format!("field {name:?}: {other} is not a string, integer or bool")),
    }
}

fn json_scalar(t: m::ScalarType, v: &serde_json::Value) -> Result<m::Value, String> {
    use serde_json::Value as J;
    Ok(match (t, v) {
        (m::ScalarType::Double, J::Number(n)) => m::Value::Double(n.as_f64().ok_or("not a double")?),
        (m::ScalarType::Double, J::String(s)) => m::Value::Double(match s.as_str() {
            "NaN" => f64::NAN,
            "+Inf" | "Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            s => s.parse().map_err(|_| format!("{s:?} is not a double"))?,
        }),
        (m::ScalarType::Int64, J::Number(n)) => {
            m::Value::Int64(n.as_i64().ok_or_else(|| format!("{n} is not an int64"))?)
        }
        (m::ScalarType::Bool, J::Bool(b)) => m::Value::Bool(*b),
        (m::ScalarType::String, J::String(s)) => m::Value::String(s.clone()),
        (m::ScalarType::Distribution, v @ J::Object(_)) => m::Value::Distribution(Box::new(
            serde_json::from_value(v.clone()).map_err(|e| format!("bad distribution: {e}"))?,
        )),
        (t, v) => return Err(format!("expected {} value, got {v}", t.name())),
    })
}

fn json_value(t: &m::ValueType, v: &serde_json::Value) -> Result<m::Value, String> {
    match (t, v) {
        (m::ValueType::Scalar(s), v) => json_scalar(*s, v),
        (m::ValueType::Tuple(types), serde_json::Value::Array(items)) if items.len() == types.len() => {
            Ok(m::Value::Tuple(types.iter().zip(items).map(|(t, v)| json_scalar(*t, v)).collect::<Result<_, _>>()?))
        }
        (t, v) => Err(format!("expected a {t} value, got {v}")),
    }
}

struct SchemaCache {
    client: Client,
    targets: HashMap<String, Option<m::TargetSchema>>,
    metrics: HashMap<String, Option<m::MetricSchema>>,
}

/// Fetches one schema; `None` when the server has no such schema.
async fn get_schema(
    client: &Client,
    name: pb::get_schema_request::Name,
) -> anyhow::Result<Option<pb::get_schema_response::Schema>> {
    let what = format!("{name:?}");
    match client.schema().get(pb::GetSchemaRequest { name: Some(name) }).await {
        Ok(r) => Ok(r.into_inner().schema),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => bail!("fetching schema {what}: {}", s.message()),
    }
}

impl SchemaCache {
    async fn target(&mut self, name: &str) -> anyhow::Result<Option<m::TargetSchema>> {
        if !self.targets.contains_key(name) {
            let t = match get_schema(&self.client, pb::get_schema_request::Name::Target(name.into())).await? {
                Some(pb::get_schema_response::Schema::Target(t)) => Some(convert::target_schema(&t)?),
                _ => None,
            };
            self.targets.insert(name.into(), t);
        }
        Ok(self.targets[name].clone())
    }

    async fn metric(&mut self, name: &str) -> anyhow::Result<Option<m::MetricSchema>> {
        if !self.metrics.contains_key(name) {
            let t = match get_schema(&self.client, pb::get_schema_request::Name::Metric(name.into())).await? {
                Some(pb::get_schema_response::Schema::Metric(t)) => Some(convert::metric_schema(&t)?),
                _ => None,
            };
            self.metrics.insert(name.into(), t);
        }
        Ok(self.metrics[name].clone())
    }

    /// Turns one JSON line into a wire series, using the schemas to type it.
    async fn series(&mut self, line_no: usize, js: JsonSeries, now: i64) -> anyhow::Result<pb::Series> {
        let ctx = |e: String| anyhow!("line {line_no}: {e}");
        let target =
            self.target(&js.target).await?.ok_or_else(|| ctx(format!("unknown target schema {:?}", js.target)))?;
        let metric =
            self.metric(&js.metric).await?.ok_or_else(|| ctx(format!("unknown metric schema {:?}", js.metric)))?;
        let mut target_fields = HashMap::new();
        for (k, v) in &js.target_fields {
            let f = json_field(target.field(k).map(|(_, d)| d), k, v).map_err(ctx)?;
            target_fields.insert(k.clone(), convert::field_value_to(&f));
        }
        let mut metric_fields = HashMap::new();
        for (k, v) in &js.metric_fields {
            let f = json_field(metric.field(k).map(|(_, d)| d), k, v).map_err(ctx)?;
            metric_fields.insert(k.clone(), convert::field_value_to(&f));
        }
        let mut points = Vec::with_capacity(js.points.len());
        for (i, p) in js.points.iter().enumerate() {
            let pctx = |e: String| anyhow!("line {line_no}, point {i}: {e}");
            let end_time = json_time(&p.time, now).map_err(pctx)?;
            let start_time = p.start_time.as_ref().map(|s| json_time(s, now)).transpose().map_err(pctx)?;
            let value = json_value(&metric.value_type, &p.value).map_err(pctx)?;
            points.push(convert::point_to(&m::Point { start_time, end_time, value }));
        }
        Ok(pb::Series { target_schema: js.target, target_fields, metric: js.metric, metric_fields, points })
    }
}

fn parse_matcher(s: &str) -> anyhow::Result<pb::Matcher> {
    // The earliest operator wins; at one position the two-character ones.
    let ops = [("!~", pb::MatchOp::Nre), ("=~", pb::MatchOp::Re), ("!=", pb::MatchOp::Ne), ("=", pb::MatchOp::Eq)];
    let best = ops
        .iter()
        .filter_map(|(tok, op)| s.find(tok).map(|i| (i, tok.len(), *op)))
        .min_by_key(|(i, len, _)| (*i, std::cmp::Reverse(*len)))
        .ok_or_else(|| {
            anyhow!("matcher {s:?} has no operator; use field=value, field!=value, field=~regex or field!~regex")
        })?;
    let (i, len, op) = best;
    let field = s[..i].trim();
    let mut value = s[i + len..].trim();
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        value = &value[1..value.len() - 1];
    }
    if field.is_empty() {
        bail!("matcher {s:?} has no field name");
    }
    Ok(pb::Matcher { field: field.into(), op: op as i32, value: value.into() })
}

fn show_fields(fields: &HashMap<String, pb::FieldValue>) -> String {
    let mut v: Vec<String> = fields
        .iter()
        .map(|(k, f)| format!("{k}={}", convert::field_value(f, k).map(|x| x.to_string()).unwrap_or_default()))
        .collect();
    v.sort();
    v.join(", ")
}

async fn write(client: Client, file: Option<String>, batch: usize) -> anyhow::Result<bool> {
    let reader: Box<dyn BufRead> = match file.as_deref() {
        None | Some("-") => Box::new(BufReader::new(std::io::stdin())),
        Some(f) => Box::new(BufReader::new(std::fs::File::open(f).with_context(|| format!("opening {f}"))?)),
    };
    let mut cache = SchemaCache { client: client.clone(), targets: HashMap::new(), metrics: HashMap::new() };
    let now = now_ns();
    let mut pending = Vec::new();
    let (mut points, mut series, mut failed) = (0u64, 0usize, 0usize);
    let mut lines = reader.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let line = line.context("reading input")?;
        if !line.trim().is_empty() {
            let js: JsonSeries =
                serde_json::from_str(&line).with_context(|| format!("line {}: not a series object", i + 1))?;
            pending.push(cache.series(i + 1, js, now).await?);
        }
        if pending.len() >= batch.max(1) || (lines.peek().is_none() && !pending.is_empty()) {
            let n = pending.len();
            let resp = client
                .ingest()
                .write(pb::WriteRequest { series: std::mem::take(&mut pending) })
                .await
                .map_err(|s| anyhow!("write failed ({:?}): {}", s.code(), s.message()))?
                .into_inner();
            points += resp.accepted_points;
            series += n - resp.errors.len();
            for e in &resp.errors {
                failed += 1;
                eprintln!("refused: {} ({} points): {}", e.series, e.rejected_points.len(), e.message);
            }
        }
    }
    println!("wrote {points} points to {series} series; {failed} series refused");
    Ok(failed == 0)
}

#[allow(clippy::too_many_arguments)]
async fn read(
    client: Client,
    target: String,
    metric: String,
    matchers: Vec<String>,
    from: String,
    to: String,
    output: Output,
) -> anyhow::Result<()> {
    let now = now_ns();
    let start_time = parse_time(&from, now).map_err(|e| anyhow!("--from: {e}"))?;
    let end_time = parse_time(&to, now).map_err(|e| anyhow!("--to: {e}"))?;
    let matchers = matchers.iter().map(|s| parse_matcher(s)).collect::<anyhow::Result<Vec<_>>>()?;
    let mut stream = client
        .read()
        .read(pb::ReadRequest { target_schema: target, metric, matchers, start_time, end_time })
        .await
        .map_err(|s| anyhow!("read failed ({:?}): {}", s.code(), s.message()))?
        .into_inner();
    let mut n = 0usize;
    while let Some(msg) =
        stream.message().await.map_err(|s| anyhow!("read failed ({:?}): {}", s.code(), s.message()))?
    {
        for s in msg.series {
            n += 1;
            match output {
                Output::Table => {
                    println!(
                        "{}{{{}}} {}{{{}}}",
                        s.target_schema,
                        show_fields(&s.target_fields),
                        s.metric,
                        show_fields(&s.metric_fields)
                    );
                    for p in &s.points {
                        let v = convert::value(p.value.as_ref()).map(|v| v.to_string()).unwrap_or_else(|e| e.0);
                        match p.start_time {
                            Some(st) => println!("  {}  {v}  (since {})", format_time(p.end_time), format_time(st)),
                            None => println!("  {}  {v}", format_time(p.end_time)),
                        }
                    }
                }
                Output::Json => {
                    let fields = |f: &HashMap<String, pb::FieldValue>| -> serde_json::Map<String, serde_json::Value> {
                        f.iter()
                            .filter_map(|(k, v)| {
                                convert::field_value(v, k)
                                    .ok()
                                    .map(|x| (k.clone(), serde_json::to_value(x).unwrap_or_default()))
                            })
                            .collect()
                    };
                    let points: Vec<serde_json::Value> = s
                        .points
                        .iter()
                        .map(|p| {
                            let v = convert::value(p.value.as_ref()).map(|v| json_of_value(&v)).unwrap_or_default();
                            let mut o = serde_json::json!({"time": p.end_time, "value": v});
                            if let Some(st) = p.start_time {
                                o["start_time"] = serde_json::json!(st);
                            }
                            o
                        })
                        .collect();
                    let line = serde_json::json!({
                        "target": s.target_schema, "target_fields": fields(&s.target_fields),
                        "metric": s.metric, "metric_fields": fields(&s.metric_fields), "points": points,
                    });
                    println!("{line}");
                }
            }
        }
    }
    if n == 0 && matches!(output, Output::Table) {
        eprintln!("no series matched");
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    if let Command::Config(config::ConfigCmd::Validate { dir, offline: true }) = &cli.command {
        config::validate_offline(dir, cli.tenant.as_deref())?;
        return Ok(true);
    }
    // Rule files need no server.
    let command = match cli.command {
        Command::Rules(cmd) if !rules::needs_server(&cmd) => return Ok(rules::run(cmd).await),
        c => c,
    };
    let client = Client::connect(&cli.addr, cli.tenant.as_deref()).await?;
    match command {
        Command::Rules(rules::RulesCmd::List { groups, json }) => rules::list(&client, groups, json).await?,
        Command::Rules(_) => {} // answered above
        Command::Config(cmd) => config::run(&client, cli.tenant.as_deref(), cmd).await?,
        Command::Zone { json } => {
            let mut stream = client
                .assigner()
                .watch(pb::WatchTableRequest { min_version: 0 })
                .await
                .map_err(|s| anyhow::anyhow!("{} (is --addr a range assigner member?)", s.message()))?
                .into_inner();
            let update = stream.message().await?.ok_or_else(|| anyhow::anyhow!("the assigner sent no table"))?;
            let table: serde_json::Value = serde_json::from_slice(&update.table_json)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&table)?);
            } else {
                print!("{}", danaus_client::zone::render(&table));
            }
        }
        Command::Schema(SchemaCmd::Apply { file }) => {
            let mut text = String::new();
            if file == "-" {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
            }
            let parsed: SchemaFile =
                yaml_serde::from_str(&text).with_context(|| format!("{file} is not a schema file"))?;
            let req = pb::ApplySchemasRequest {
                targets: parsed.targets.iter().map(convert::target_schema_to).collect(),
                metrics: parsed.metrics.iter().map(convert::metric_schema_to).collect(),
            };
            let resp = client.schema().apply(req).await.map_err(|s| anyhow!("{}", s.message()))?.into_inner();
            for r in resp.results {
                let what = if r.is_target { "target" } else { "metric" };
                let outcome = match pb::ApplyOutcome::try_from(r.outcome) {
                    Ok(pb::ApplyOutcome::Created) => "created",
                    Ok(pb::ApplyOutcome::Updated) => "updated",
                    _ => "unchanged",
                };
                println!("{what} {}: {outcome}", r.name);
            }
        }
        Command::Schema(SchemaCmd::List) => {
            let resp = client
                .schema()
                .list(pb::ListSchemasRequest {})
                .await
                .map_err(|s| anyhow!("{}", s.message()))?
                .into_inner();
            for t in resp.targets {
                let t = convert::target_schema(&t)?;
                let fields: Vec<String> = t
                    .fields
                    .iter()
                    .map(|f| {
                        format!(
                            "{}{}: {}",
                            f.name,
                            if f.name == t.location_field { "*" } else { "" },
                            f.field_type.name()
                        )
                    })
                    .collect();
                println!("target {}{{{}}}", t.name, fields.join(", "));
            }
            for ms in resp.metrics {
                let ms = convert::metric_schema(&ms)?;
                let fields: Vec<String> =
                    ms.fields.iter().map(|f| format!("{}: {}", f.name, f.field_type.name())).collect();
                let collection = ms
                    .collection
                    .as_ref()
                    .map(|c| {
                        format!(
                            " (collection aggregation: drop [{}] every {}, admitted for {})",
                            c.drop_fields.join(", "),
                            m::time::format_duration_ns(c.period),
                            m::time::format_duration_ns(c.admission_window)
                        )
                    })
                    .unwrap_or_default();
                println!(
                    "metric {}{{{}}} {} {} {}{collection}",
                    ms.name,
                    fields.join(", "),
                    ms.kind.name(),
                    ms.value_type,
                    ms.unit
                );
            }
        }
        Command::Schema(SchemaCmd::Get { target, metric }) => {
            use pb::get_schema_request::Name;
            let name = match (target, metric) {
                (Some(t), _) => Name::Target(t),
                (None, Some(m)) => Name::Metric(m),
                (None, None) => bail!("name one with --target or --metric"),
            };
            let resp = client
                .schema()
                .get(pb::GetSchemaRequest { name: Some(name) })
                .await
                .map_err(|s| anyhow!("{}", s.message()))?;
            let mut file = SchemaFile::default();
            match resp.into_inner().schema {
                Some(pb::get_schema_response::Schema::Target(t)) => file.targets.push(convert::target_schema(&t)?),
                Some(pb::get_schema_response::Schema::Metric(ms)) => file.metrics.push(convert::metric_schema(&ms)?),
                None => bail!("server returned no schema"),
            }
            print!("{}", yaml_serde::to_string(&file)?);
        }
        Command::Write { file, batch } => return write(client, file, batch).await,
        Command::Read { target, metric, matchers, from, to, output } => {
            read(client, target, metric, matchers, from, to, output).await?
        }
        Command::Query { query, from, to, step, timeout, output } => {
            let now = now_ns();
            let start_time = parse_time(&from, now).map_err(|e| anyhow!("--from: {e}"))?;
            let end_time = parse_time(&to, now).map_err(|e| anyhow!("--to: {e}"))?;
            let step = parse_duration_ns(&step).ok_or_else(|| anyhow!("--step: {step:?} is not a duration like 1m"))?;
            let timeout_ms = match timeout {
                Some(t) => {
                    (parse_duration_ns(&t).ok_or_else(|| anyhow!("--timeout: {t:?} is not a duration"))? / 1_000_000)
                        as u64
                }
                None => 0,
            };
            let format = match output {
                QueryOutput::Table => qry::Format::Table,
                QueryOutput::Json => qry::Format::Json,
                QueryOutput::Csv => qry::Format::Csv,
            };
            let req = pb::QueryRequest { query, start_time, end_time, step, timeout_ms, ..Default::default() };
            let mut stdout = std::io::stdout().lock();
            let printed = qry::run(&client, req, format, &mut stdout).await?;
            if let Some(c) = &printed.completeness {
                if printed.series == 0 && matches!(format, qry::Format::Table) {
                    eprintln!("no series");
                }
                if format != qry::Format::Json {
                    eprintln!("{}", qry::describe_completeness(c));
                }
            }
        }
    }
    Ok(true)
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("danausctl: {e}");
            std::process::exit(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("danausctl: {e:#}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn matchers_parse() {
        let m = parse_matcher("job=~mixer.*").unwrap();
        assert_eq!((m.field.as_str(), m.op, m.value.as_str()), ("job", pb::MatchOp::Re as i32, "mixer.*"));
        let m = parse_matcher("user!=\"a=b\"").unwrap();
        assert_eq!((m.field.as_str(), m.op, m.value.as_str()), ("user", pb::MatchOp::Ne as i32, "a=b"));
        let m = parse_matcher("x!~y").unwrap();
        assert_eq!(m.op, pb::MatchOp::Nre as i32);
        assert!(parse_matcher("nothing").is_err());
        assert!(parse_matcher("=v").is_err());
    }

    #[test]
    fn json_values_follow_the_schema() {
        let d = m::ValueType::Scalar(m::ScalarType::Double);
        assert!(matches!(json_value(&d, &serde_json::json!(3)).unwrap(), m::Value::Double(v) if v == 3.0));
        assert!(matches!(json_value(&d, &serde_json::json!("NaN")).unwrap(), m::Value::Double(v) if v.is_nan()));
        let i = m::ValueType::Scalar(m::ScalarType::Int64);
        assert!(json_value(&i, &serde_json::json!(1.5)).unwrap_err().contains("not an int64"));
        let f = json_field(Some(&m::FieldDef::new("n", m::FieldType::Int64)), "n", &serde_json::json!("7")).unwrap();
        assert_eq!(f, m::FieldValue::Int64(7));
    }
}
