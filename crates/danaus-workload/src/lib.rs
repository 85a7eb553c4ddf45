//! # danaus-workload
//!
//! Deterministic, realistic metric workloads for benchmarks, load
//! generators and simulation: a fleet of hosts that look like
//! node_exporter scraped every 15 s. Each host is one target; its series
//! share the scrape timestamp (millisecond precision with a few ms of
//! jitter, as Prometheus records them). The series mix follows what one
//! node_exporter host exposes — most series idle or constant, a minority
//! busy — by share of series:
//!
//! | share | behaviour | examples |
//! |---|---|---|
//! | 40 % | constant (half of them 0) | `node_filesystem_size_bytes`, `*_info`, `node_cpu_guest_seconds_total`, idle error counters |
//! | 15 % | counter, rare small increments | `node_network_receive_errs_total`, `node_disk_io_errors_total` |
//! | 10 % | busy integer counter, rate log-uniform 10–10⁶ per scrape, ±20 % | `node_network_receive_bytes_total` |
//! | 15 % | counter in hundredths, rate log-uniform 0.01–15 s per scrape | `node_cpu_seconds_total` |
//! | 12 % | byte gauge in 4 KiB pages, moves at 30 % of scrapes | `node_memory_MemAvailable_bytes` |
//! | 5 % | two-decimal gauge, random walk | `node_load1` |
//! | 3 % | full-precision float gauge, new value each scrape | `node_scrape_collector_duration_seconds` |
//!
//! The same seed always gives the same samples.

/// SplitMix64: tiny, fast, and good enough for synthetic data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The behaviour of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// Never changes.
    Constant,
    /// Counter that rarely increments by a small integer.
    RareCounter,
    /// Counter with a large integer increment every scrape.
    BusyCounter {
        /// Mean increment per scrape.
        rate: f64,
    },
    /// Counter in hundredths (CPU seconds).
    FloatCounter {
        /// Mean increment per scrape.
        rate: f64,
    },
    /// Gauge in whole pages of 4 KiB that moves now and then.
    PageGauge,
    /// Gauge with two decimals doing a random walk.
    DecimalGauge,
    /// A fresh full-precision float every scrape.
    NoisyGauge,
}

/// One series of the workload.
#[derive(Debug, Clone)]
pub struct SeriesSpec {
    /// Host index.
    pub host: usize,
    /// Metric name, Prometheus style.
    pub metric: String,
    /// Distinguishing label value within the host (cpu, device, mode…).
    pub label: String,
    /// Whether the series is a counter (cumulative).
    pub counter: bool,
    /// How it behaves.
    pub shape: Shape,
    value: f64,
}

/// A fleet of node_exporter-like hosts.
#[derive(Debug, Clone)]
pub struct NodeFleet {
    /// Every series, grouped by host.
    pub series: Vec<SeriesSpec>,
    /// Hosts.
    pub hosts: usize,
    /// Scrape interval in ns.
    pub interval_ns: i64,
    /// Time of the next scrape round, ns.
    pub next_time: i64,
    rng: Rng,
}

const CONST_METRICS: &[&str] =
    &["node_filesystem_size_bytes", "node_uname_info", "node_cpu_guest_seconds_total", "node_network_mtu_bytes"];
const RARE_METRICS: &[&str] =
    &["node_network_receive_errs_total", "node_network_transmit_drop_total", "node_disk_io_errors_total"];
const BUSY_METRICS: &[&str] =
    &["node_network_receive_bytes_total", "node_disk_written_bytes_total", "node_network_transmit_packets_total"];
const FLOAT_METRICS: &[&str] = &["node_cpu_seconds_total", "node_disk_io_time_seconds_total"];
const PAGE_METRICS: &[&str] =
    &["node_memory_MemAvailable_bytes", "node_filesystem_avail_bytes", "node_memory_Cached_bytes"];
const DECIMAL_METRICS: &[&str] = &["node_load1", "node_load5", "node_pressure_cpu_waiting_seconds"];
const NOISY_METRICS: &[&str] = &["node_scrape_collector_duration_seconds"];

fn log_uniform(r: &mut Rng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + r.next_f64() * (hi.ln() - lo.ln())).exp()
}

impl NodeFleet {
    /// `hosts` hosts with `series_per_host` series each, first scrape at
    /// `start_ns`, every 15 s.
    pub fn new(seed: u64, hosts: usize, series_per_host: usize, start_ns: i64) -> Self {
        let mut rng = Rng::new(seed);
        let mut series = Vec::with_capacity(hosts * series_per_host);
        for host in 0..hosts {
            for i in 0..series_per_host {
                let pick = rng.below(100);
                let (names, counter, shape, value) = match pick {
                    0..=39 => {
                        let v = if rng.below(2) == 0 { 0.0 } else { rng.below(1 << 40) as f64 };
                        (CONST_METRICS, false, Shape::Constant, v)
                    }
                    40..=54 => (RARE_METRICS, true, Shape::RareCounter, rng.below(50) as f64),
                    55..=64 => {
                        let rate = log_uniform(&mut rng, 10.0, 1e6);
                        (BUSY_METRICS, true, Shape::BusyCounter { rate }, rng.below(1 << 42) as f64)
                    }
                    65..=79 => {
                        let rate = log_uniform(&mut rng, 0.01, 15.0);
                        (FLOAT_METRICS, true, Shape::FloatCounter { rate }, (rng.below(10_000_000) as f64) / 100.0)
                    }
                    80..=91 => (PAGE_METRICS, false, Shape::PageGauge, (rng.below(1 << 22) * 4096) as f64),
                    92..=96 => (DECIMAL_METRICS, false, Shape::DecimalGauge, (rng.below(800) as f64) / 100.0),
                    _ => (NOISY_METRICS, false, Shape::NoisyGauge, rng.next_f64() * 0.05),
                };
                let metric = names[rng.below(names.len() as u64) as usize].to_owned();
                series.push(SeriesSpec { host, metric, label: format!("s{i}"), counter, shape, value });
            }
        }
        Self { series, hosts, interval_ns: 15_000_000_000, next_time: start_ns, rng }
    }

    /// Advances one scrape round; calls `f(series index, time ns, value)`
    /// for every series. Series of one host share the time.
    pub fn scrape(&mut self, mut f: impl FnMut(usize, i64, f64)) {
        let base = self.next_time;
        self.next_time += self.interval_ns;
        let mut host = usize::MAX;
        let mut t = base;
        for (i, s) in self.series.iter_mut().enumerate() {
            if s.host != host {
                host = s.host;
                // Millisecond timestamps with up to ±5 ms of scrape jitter.
                let jitter_ms = self.rng.below(11) as i64 - 5;
                t = (base / 1_000_000 + jitter_ms) * 1_000_000;
            }
            let r = &mut self.rng;
            s.value = match s.shape {
                Shape::Constant => s.value,
                Shape::RareCounter => s.value + if r.below(50) == 0 { (1 + r.below(3)) as f64 } else { 0.0 },
                Shape::BusyCounter { rate } => s.value + (rate * (0.8 + 0.4 * r.next_f64())).round(),
                Shape::FloatCounter { rate } => {
                    ((s.value * 100.0).round() + (rate * 200.0 * r.next_f64()).round()) / 100.0
                }
                Shape::PageGauge => {
                    if r.below(10) < 3 {
                        (s.value + 4096.0 * (r.below(101) as f64 - 50.0)).max(0.0)
                    } else {
                        s.value
                    }
                }
                Shape::DecimalGauge => ((s.value * 100.0).round() + r.below(21) as f64 - 10.0).max(0.0) / 100.0,
                Shape::NoisyGauge => 0.0001 + r.next_f64() * 0.05,
            };
            f(i, t, s.value);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped() {
        let mut a = NodeFleet::new(7, 3, 50, 1_700_000_000_000_000_000);
        let mut b = NodeFleet::new(7, 3, 50, 1_700_000_000_000_000_000);
        let (mut va, mut vb) = (Vec::new(), Vec::new());
        for _ in 0..10 {
            a.scrape(|i, t, v| va.push((i, t, v.to_bits())));
            b.scrape(|i, t, v| vb.push((i, t, v.to_bits())));
        }
        assert_eq!(va, vb);
        assert_eq!(va.len(), 3 * 50 * 10);
        // Counters never decrease; timestamps are whole milliseconds.
        for w in va.windows(150 + 1) {
            let (i, t0, v0) = w[0];
            let (j, t1, v1) = w[150];
            assert_eq!(i, j);
            assert!(t1 > t0 && t0 % 1_000_000 == 0);
            if a.series[i].counter {
                assert!(f64::from_bits(v1) >= f64::from_bits(v0));
            }
        }
    }
}
