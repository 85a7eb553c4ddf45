//! The `danaus` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use danaus_leaf::LeafOptions;
use danaus_server::standalone::{self, StandaloneConfig};

/// mimalloc: the write path allocates and frees many small objects per
/// request; glibc's allocator spent a visible share of ingest time trimming
/// and consolidating (see docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Danaus: a zone-local, planet-scale monitoring system.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every role of one zone in this process, on a data directory.
    Standalone(StandaloneArgs),
}

#[derive(Parser)]
struct StandaloneArgs {
    /// Data directory (created if missing).
    #[arg(long, default_value = "./danaus-data", env = "DANAUS_DATA_DIR")]
    data_dir: PathBuf,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7070", env = "DANAUS_GRPC_ADDR")]
    grpc_addr: SocketAddr,
    /// HTTP listen address (/metrics, /healthz).
    #[arg(long, default_value = "127.0.0.1:9090", env = "DANAUS_HTTP_ADDR")]
    http_addr: SocketAddr,
    /// Points this far behind a series' newest point are still accepted.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    out_of_order_window: Duration,
    /// How long sealed chunks stay in memory.
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    memory_window: Duration,
    /// How often memory is checkpointed into the long-term store.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    checkpoint_interval: Duration,
    /// Delete data older than this (e.g. 30d); default keeps everything.
    #[arg(long, value_parser = parse_duration)]
    retention: Option<Duration>,
    /// Concurrent requests per gRPC connection.
    #[arg(long, default_value_t = 256)]
    max_concurrent_requests: usize,
    /// Queries run at once; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 16)]
    max_concurrent_queries: usize,
    /// Location (zone) of Prometheus series without a `location` label.
    #[arg(long, default_value = "local")]
    location: String,
    /// Scrape Prometheus/OpenMetrics targets as configured in this file
    /// (Prometheus' scrape_configs format; see docs/prometheus.md).
    #[arg(long)]
    scrape_config: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, default_value = "info", env = "DANAUS_LOG")]
    log: String,
}

/// Parses `500ms`, `30s`, `10m`, `2h`, `7d`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 30s, 10m, 2h or 7d"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}; use ms, s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

async fn shutdown_signal() -> anyhow::Result<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => { r?; Ok("SIGINT") }
        _ = term.recv() => Ok("SIGTERM"),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Command::Standalone(args) = cli.command;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let leaf = LeafOptions {
            out_of_order_window: args.out_of_order_window,
            memory_window: args.memory_window,
            checkpoint_interval: args.checkpoint_interval,
            retention: args.retention,
            ..LeafOptions::default()
        };
        let running = standalone::start(StandaloneConfig {
            data_dir: args.data_dir,
            grpc_addr: args.grpc_addr,
            http_addr: args.http_addr,
            leaf,
            max_concurrent_requests: args.max_concurrent_requests,
            max_concurrent_queries: args.max_concurrent_queries,
            location: args.location,
            scrape_config: args.scrape_config,
        })
        .await?;
        // One parseable line for scripts and tests (ports may be ephemeral).
        println!("danaus standalone listening grpc={} http={}", running.grpc_addr, running.http_addr);
        let sig = shutdown_signal().await?;
        tracing::info!(signal = sig, "shutting down: flushing to the long-term store");
        running.shutdown().await
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert!(parse_duration("ten").unwrap_err().contains("not a duration"));
        assert!(parse_duration("5y").unwrap_err().contains("unknown unit"));
    }
}
