//! `loadgen`: sends the same remote_write 1.0 payloads to any receiver
//! (Danaus, Prometheus, VictoriaMetrics) and reports how fast they were
//! accepted.
//!
//! The data is `danaus-workload`'s node_exporter-like fleet: `--hosts`
//! hosts of `--series-per-host` series, `--rounds` scrapes 15 s apart
//! ending now. Every request body is encoded and compressed before the
//! clock starts, so the generator measures the receiver, not itself.
//! `--concurrency` senders each own a slice of the hosts and send its
//! requests in time order, each after the previous one was answered, as
//! Prometheus' shards do. Progress goes to stderr once a second; the
//! result is one JSON object on stdout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::Parser;
use danaus_prom::prompb::v1;
use danaus_workload::NodeFleet;
use http_body_util::{BodyExt, Full};
use prost::Message;

#[derive(Parser)]
#[command(about = "remote_write load generator")]
struct Args {
    /// Receiver URL, e.g. http://127.0.0.1:9090/api/v1/write.
    #[arg(long)]
    url: String,
    /// Hosts (targets).
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    /// Series per host.
    #[arg(long, default_value_t = 100)]
    series_per_host: usize,
    /// Scrape rounds (samples per series), 15 s apart.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Rounds per request.
    #[arg(long, default_value_t = 5)]
    rounds_per_request: usize,
    /// Hosts per request.
    #[arg(long, default_value_t = 10)]
    hosts_per_request: usize,
    /// Concurrent senders.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Workload seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also a classic histogram per host with this many finite buckets
    /// (`http_request_duration_seconds_bucket{le=…}`, cumulative), for
    /// query benchmarks; 0: none.
    #[arg(long, default_value_t = 0)]
    histogram_buckets: usize,
    /// The data ends this many seconds after now (rule benchmarks keep
    /// their windows full while they run).
    #[arg(long, default_value_t = 0)]
    end_offset_secs: i64,
}

/// One request: its compressed body and how many samples it carries.
struct Request {
    body: Bytes,
    samples: u64,
}

/// Appends the samples of each host's histogram buckets (after the
/// fleet's series): per round a few observations, spread over buckets
/// with a deterministic generator, counted cumulatively.
fn add_histograms(args: &Args, samples: &mut Vec<Vec<v1::Sample>>) {
    if args.histogram_buckets == 0 {
        return;
    }
    let n = args.histogram_buckets.min(64) + 1;
    let mut state: u64 = args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for host in 0..args.hosts {
        let mut counts = vec![0.0f64; n];
        let mut series: Vec<Vec<v1::Sample>> = vec![Vec::with_capacity(args.rounds); n];
        // The host's scrape times, as its other series have them.
        let times: Vec<i64> = samples[host * args.series_per_host].iter().map(|s| s.timestamp).collect();
        for t in times {
            let observations = next() % 50;
            for _ in 0..observations {
                let bucket = (next() % n as u64) as usize;
                for c in &mut counts[bucket..] {
                    *c += 1.0;
                }
            }
            for (b, s) in series.iter_mut().enumerate() {
                s.push(v1::Sample { value: counts[b], timestamp: t });
            }
        }
        samples.extend(series);
    }
}

/// Bodies per sender, in the order it sends them.
fn build(args: &Args) -> Vec<Vec<Request>> {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
        + args.end_offset_secs * 1000;
    let start_ns = (now_ms - args.rounds as i64 * 15_000) * 1_000_000;
    let mut fleet = NodeFleet::new(args.seed, args.hosts, args.series_per_host, start_ns);
    // samples[series] = [(ms, value)] per round.
    let mut samples: Vec<Vec<v1::Sample>> = vec![Vec::with_capacity(args.rounds); fleet.series.len()];
    for _ in 0..args.rounds {
        fleet.scrape(|i, t, v| samples[i].push(v1::Sample { value: v, timestamp: t / 1_000_000 }));
    }
    let labels: Vec<Vec<v1::Label>> = fleet
        .series
        .iter()
        .map(|s| {
            let l = |n: &str, v: String| v1::Label { name: n.into(), value: v };
            vec![
                l("__name__", s.metric.clone()),
                l("id", s.label.clone()),
                l("instance", format!("host-{:05}:9100", s.host)),
                l("job", "node".into()),
            ]
        })
        .collect();
    add_histograms(args, &mut samples);
    let mut labels = labels;
    for host in 0..args.hosts {
        for b in 0..=args.histogram_buckets.min(64) {
            if args.histogram_buckets == 0 {
                break;
            }
            let le = if b == args.histogram_buckets {
                "+Inf".to_owned()
            } else {
                format!("{}", 0.005 * f64::from(1u32 << b))
            };
            let l = |n: &str, v: String| v1::Label { name: n.into(), value: v };
            labels.push(vec![
                l("__name__", "http_request_duration_seconds_bucket".into()),
                l("instance", format!("host-{host:05}:9100")),
                l("job", "node".into()),
                l("le", le),
            ]);
        }
    }
    let per_host = args.series_per_host;
    let mut senders: Vec<Vec<Request>> = (0..args.concurrency).map(|_| Vec::new()).collect();
    let host_groups: Vec<std::ops::Range<usize>> = (0..args.hosts)
        .step_by(args.hosts_per_request.max(1))
        .map(|h| h..(h + args.hosts_per_request.max(1)).min(args.hosts))
        .collect();
    for (gi, hosts) in host_groups.iter().enumerate() {
        let sender = &mut senders[gi % args.concurrency];
        for r0 in (0..args.rounds).step_by(args.rounds_per_request.max(1)) {
            let r1 = (r0 + args.rounds_per_request.max(1)).min(args.rounds);
            let mut req = v1::WriteRequest::default();
            let mut n = 0;
            let buckets = if args.histogram_buckets == 0 { 0 } else { args.histogram_buckets.min(64) + 1 };
            let hist = fleet.series.len() + hosts.start * buckets..fleet.series.len() + hosts.end * buckets;
            for s in (hosts.start * per_host..hosts.end * per_host).chain(hist) {
                let chunk = samples[s][r0..r1].to_vec();
                n += chunk.len() as u64;
                req.timeseries.push(v1::TimeSeries { labels: labels[s].clone(), samples: chunk, histograms: vec![] });
            }
            let raw = req.encode_to_vec();
            let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap_or_default();
            sender.push(Request { body: Bytes::from(body), samples: n });
        }
    }
    senders
}

async fn send_all(
    url: hyper::Uri,
    requests: Vec<Request>,
    done: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let authority = url.authority().context("the URL needs host:port")?.to_string();
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let stream =
        tokio::net::TcpStream::connect(&authority).await.with_context(|| format!("connecting to {authority}"))?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    for r in requests {
        let mut attempt = 0;
        loop {
            let req = hyper::Request::post(path.as_str())
                .header(hyper::header::HOST, authority.as_str())
                .header(hyper::header::CONTENT_TYPE, "application/x-protobuf")
                .header(hyper::header::CONTENT_ENCODING, "snappy")
                .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                .body(Full::new(r.body.clone()))?;
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            if status.is_success() {
                done.fetch_add(r.samples, Ordering::Relaxed);
                break;
            }
            attempt += 1;
            // Retry what the protocol says to retry; give up after a few.
            if (status.is_server_error() || status.as_u16() == 429) && attempt < 5 {
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                continue;
            }
            errors.fetch_add(1, Ordering::Relaxed);
            if errors.load(Ordering::Relaxed) <= 3 {
                eprintln!("loadgen: {status}: {}", String::from_utf8_lossy(&body).lines().next().unwrap_or(""));
            }
            break;
        }
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.concurrency == 0 || args.rounds == 0 || args.hosts == 0 {
        bail!("--concurrency, --rounds and --hosts must be positive");
    }
    let url: hyper::Uri = args.url.parse().with_context(|| format!("bad --url {}", args.url))?;
    let t = Instant::now();
    let senders = build(&args);
    let total: u64 = senders.iter().flatten().map(|r| r.samples).sum();
    let bytes: usize = senders.iter().flatten().map(|r| r.body.len()).sum();
    eprintln!(
        "loadgen: {} series × {} rounds = {total} samples in {} requests ({:.1} MB compressed), built in {:.1}s",
        args.hosts * args.series_per_host,
        args.rounds,
        senders.iter().map(Vec::len).sum::<usize>(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|reqs| tokio::spawn(send_all(url.clone(), reqs, done.clone(), errors.clone())))
        .collect();
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let d = done.load(Ordering::Relaxed);
                eprintln!(
                    "loadgen: {d}/{total} samples ({:.0}%), {:.0} samples/s",
                    100.0 * d as f64 / total as f64,
                    d as f64 / start.elapsed().as_secs_f64()
                );
            }
        })
    };
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    progress.abort();
    let accepted = done.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "samples": accepted,
            "series": args.hosts * args.series_per_host,
            "seconds": secs,
            "samples_per_sec": accepted as f64 / secs,
            "failed_requests": errors.load(Ordering::Relaxed),
        })
    );
    if accepted < total {
        bail!("{} of {total} samples were not accepted", total - accepted);
    }
    Ok(())
}
