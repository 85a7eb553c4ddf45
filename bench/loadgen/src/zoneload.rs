//! `zoneload`: ingest throughput and query latency of a Danaus zone
//! (`danaus dev-cluster`), over gRPC: writes go to the router, queries to
//! the mixer.
//!
//! It applies a schema, writes one warm-up round (creating every series),
//! waits until the range assigner has spread and settled the ranges (the
//! table stops changing for `--settle`), then sends `--rounds` timed rounds
//! from `--concurrency` senders, each owning a slice of the targets and
//! sending its batches in order. Then it runs each query `--query-runs`
//! times and reports the median latency. Progress goes to stderr; the
//! result is one JSON object on stdout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use danaus_proto::v1 as pb;
use tonic::transport::{Channel, Endpoint};

#[derive(Parser)]
#[command(about = "zone load generator")]
struct Args {
    /// Router address (host:port).
    #[arg(long)]
    router: String,
    /// Mixer address (host:port).
    #[arg(long)]
    mixer: String,
    /// Assigner members (host:port,...), to wait for the ranges to settle.
    #[arg(long, value_delimiter = ',')]
    assigners: Vec<String>,
    /// Targets (tasks).
    #[arg(long, default_value_t = 2000)]
    targets: usize,
    /// Series per target.
    #[arg(long, default_value_t = 10)]
    series_per_target: usize,
    /// Timed rounds (one point per series each), 10 s apart.
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// Targets per request.
    #[arg(long, default_value_t = 100)]
    targets_per_request: usize,
    /// Concurrent senders.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// How long the zone table must stay unchanged before timing starts.
    #[arg(long, default_value_t = 3)]
    settle: u64,
    /// Runs of each query.
    #[arg(long, default_value_t = 5)]
    query_runs: usize,
    /// Offered load in points per second over all senders (0: as fast as
    /// the zone takes them). Below saturation, CPU per point measures the
    /// work, not the contention for the cores.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Location prefixes, spread over the tasks (`z1-,z2-`: half the
    /// clusters are `z1-cN`, half `z2-cN`, so two zones owning `z1-*` and
    /// `z2-*` split the data); the filtered query picks the first's `c3`.
    #[arg(long, value_delimiter = ',', default_value = "")]
    cluster_prefixes: Vec<String>,
}

impl Args {
    /// The location of task `task`.
    fn cluster(&self, task: usize) -> String {
        let n = self.cluster_prefixes.len().max(1);
        let prefix = self.cluster_prefixes.get((task / 8) % n).map_or("", String::as_str);
        format!("{prefix}c{}", task % 8)
    }
}

fn s(v: String) -> pb::FieldValue {
    pb::FieldValue { value: Some(pb::field_value::Value::StringValue(v)) }
}

fn i(v: i64) -> pb::FieldValue {
    pb::FieldValue { value: Some(pb::field_value::Value::Int64Value(v)) }
}

async fn channel(addr: &str) -> anyhow::Result<Channel> {
    Endpoint::from_shared(format!("http://{addr}"))?.connect().await.with_context(|| format!("connecting to {addr}"))
}

fn batch(args: &Args, targets: std::ops::Range<usize>, t: i64) -> pb::WriteRequest {
    let mut series = Vec::with_capacity(targets.len() * args.series_per_target);
    for task in targets {
        for cpu in 0..args.series_per_target {
            series.push(pb::Series {
                target_schema: "Task".into(),
                target_fields: HashMap::from([
                    ("cluster".into(), s(args.cluster(task))),
                    ("task".into(), s(format!("t{task:06}"))),
                ]),
                metric: "/cpu".into(),
                metric_fields: HashMap::from([("cpu".into(), i(cpu as i64))]),
                points: vec![pb::Point {
                    start_time: None,
                    end_time: t,
                    value: Some(pb::Value {
                        value: Some(pb::value::Value::DoubleValue(
                            ((task * 7 + cpu) % 100) as f64 + (t / 1_000_000_000 % 60) as f64,
                        )),
                    }),
                }],
            });
        }
    }
    pb::WriteRequest { series }
}

async fn apply_schema(router: Channel) -> anyhow::Result<()> {
    let mut c = pb::schema_service_client::SchemaServiceClient::new(router);
    let f = |n: &str, t: pb::FieldType| pb::FieldDef { name: n.into(), r#type: t as i32, added: false };
    c.apply(pb::ApplySchemasRequest {
        targets: vec![pb::TargetSchema {
            name: "Task".into(),
            fields: vec![f("cluster", pb::FieldType::String), f("task", pb::FieldType::String)],
            location_field: "cluster".into(),
        }],
        metrics: vec![pb::MetricSchema {
            name: "/cpu".into(),
            fields: vec![f("cpu", pb::FieldType::Int64)],
            value_type: Some(pb::ValueType { elements: vec![pb::ScalarType::Double as i32], tuple: false }),
            kind: pb::MetricKind::Gauge as i32,
            unit: String::new(),
            description: String::new(),
            collection: None,
        }],
    })
    .await?;
    Ok(())
}

/// Waits until the zone table stays the same for `settle` seconds with no
/// replica joining; returns the number of ranges.
async fn wait_settled(assigners: &[String], settle: u64) -> anyhow::Result<usize> {
    let mut last = (u64::MAX, Instant::now());
    let started = Instant::now();
    loop {
        for a in assigners {
            let Ok(ch) = channel(a).await else { continue };
            let mut c =
                pb::assigner_service_client::AssignerServiceClient::new(ch).max_decoding_message_size(256 << 20);
            let Ok(r) = c.watch(pb::WatchTableRequest { min_version: 0 }).await else { continue };
            let Ok(Some(u)) = r.into_inner().message().await else { continue };
            let table: danaus_assigner::ZoneTable = serde_json::from_slice(&u.table_json)?;
            let quiet = table.ranges.values().all(|r| r.ready().count() == r.replicas.len());
            if u.version != last.0 || !quiet {
                last = (u.version, Instant::now());
            } else if last.1.elapsed() >= Duration::from_secs(settle) {
                return Ok(table.ranges.len());
            }
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the zone did not settle within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn query_latency(mixer: Channel, q: &str, start: i64, end: i64, runs: usize) -> anyhow::Result<(f64, usize)> {
    let mut c = pb::query_service_client::QueryServiceClient::new(mixer).max_decoding_message_size(256 << 20);
    let mut times = Vec::new();
    let mut series = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let req = pb::QueryRequest {
            query: q.into(),
            start_time: start,
            end_time: end,
            step: 60_000_000_000,
            max_series: 0,
            max_points: 0,
            timeout_ms: 60_000,
        };
        let mut stream = c.query(req).await?.into_inner();
        series = 0;
        while let Some(m) = stream.message().await? {
            match m.item {
                Some(pb::query_response::Item::Batch(b)) => series += b.series.len(),
                Some(pb::query_response::Item::Completeness(cm)) if !cm.complete => {
                    bail!("incomplete answer to {q}: {:?}", cm.sources)
                }
                _ => {}
            }
        }
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], series))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    if args.concurrency == 0 || args.targets == 0 || args.rounds == 0 {
        bail!("--concurrency, --targets and --rounds must be positive");
    }
    let router = channel(&args.router).await?;
    apply_schema(router.clone()).await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as i64;
    let t0 = now - (args.rounds as i64 + 2) * 10_000_000_000;
    // Warm-up: every series once, then let the assigner spread the ranges.
    let mut ingest =
        pb::ingest_service_client::IngestServiceClient::new(router.clone()).max_encoding_message_size(256 << 20);
    for start in (0..args.targets).step_by(args.targets_per_request) {
        ingest.write(batch(&args, start..(start + args.targets_per_request).min(args.targets), t0)).await?;
    }
    let ranges = wait_settled(&args.assigners, args.settle).await?;
    // An idle window, so the harness can measure the zone's background CPU.
    eprintln!("zoneload: idle window starts");
    tokio::time::sleep(Duration::from_secs(3)).await;
    eprintln!(
        "zoneload: {} series in {ranges} ranges; timing {} rounds",
        args.targets * args.series_per_target,
        args.rounds
    );
    let done = Arc::new(AtomicU64::new(0));
    let total = (args.targets * args.series_per_target * args.rounds) as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..args.concurrency {
        let (args, done, router) = (args.clone(), done.clone(), router.clone());
        tasks.push(tokio::spawn(async move {
            let mut ingest =
                pb::ingest_service_client::IngestServiceClient::new(router).max_encoding_message_size(256 << 20);
            let groups: Vec<usize> = (0..args.targets)
                .step_by(args.targets_per_request)
                .enumerate()
                .filter(|(g, _)| g % args.concurrency == k)
                .map(|(_, s)| s)
                .collect();
            let per_sender = args.rate as f64 / args.concurrency as f64;
            let mut sent = 0u64;
            for round in 1..=args.rounds {
                let t = t0 + round as i64 * 10_000_000_000;
                for &g in &groups {
                    if per_sender > 0.0 {
                        let due = start + Duration::from_secs_f64(sent as f64 / per_sender);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let req = batch(&args, g..(g + args.targets_per_request).min(args.targets), t);
                    let n = req.series.len() as u64;
                    sent += n;
                    let r = ingest.write(req).await?.into_inner();
                    if !r.errors.is_empty() {
                        bail!("refused series: {:?}", r.errors[0]);
                    }
                    done.fetch_add(n, Ordering::Relaxed);
                }
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let d = done.load(Ordering::Relaxed);
                eprintln!("zoneload: {d}/{total} points, {:.0}/s", d as f64 / start.elapsed().as_secs_f64());
            }
        })
    };
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    progress.abort();
    eprintln!("zoneload: writes done: {:.0} points/s", total as f64 / secs);
    let end = t0 + (args.rounds as i64 + 1) * 10_000_000_000;
    let mixer = channel(&args.mixer).await?;
    let mut queries = serde_json::Map::new();
    // Cluster `c3` with the first prefix (the tasks `task % 8 == 3` of it).
    let one_cluster = format!(
        "fetch Task::/cpu | filter cluster == \"{}c3\" | align max(1m) | group_by [task], max",
        args.cluster_prefixes.first().map_or("", String::as_str)
    );
    for (name, q) in [
        ("mean_by_cluster", "fetch Task::/cpu | align mean(1m) | group_by [cluster], mean"),
        ("one_cluster_max", one_cluster.as_str()),
        ("one_task_raw", "fetch Task::/cpu | filter task == \"t000042\""),
    ] {
        // A minute either side, so the range holds a point of the 1-minute
        // output grid wherever the wall clock falls.
        let minute = 60_000_000_000;
        let (median, series) = query_latency(mixer.clone(), q, t0 - minute, end + minute, args.query_runs).await?;
        eprintln!("zoneload: {name}: median {:.1} ms, {series} series", median * 1e3);
        queries.insert(name.into(), serde_json::json!({ "query": q, "median_seconds": median, "series": series }));
    }
    println!(
        "{}",
        serde_json::json!({
            "points": total,
            "series": args.targets * args.series_per_target,
            "ranges": ranges,
            "seconds": secs,
            "points_per_sec": total as f64 / secs,
            "queries": queries,
        })
    );
    Ok(())
}
