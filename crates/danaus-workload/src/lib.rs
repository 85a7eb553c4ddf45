//! # danaus-workload
//!
//! Deterministic, realistic metric workloads for benchmarks, load
//! generators and simulation: a fleet of hosts that look like
//! node_exporter scraped every 15 s. Each host is one target; its series
//! share the scrape timestamp (millisecond precision with a few ms of
//! jitter, as Prometheus records them). Series mix, by share of series:
//!
//! | share | kind | example |
//! |---|---|---|
//! | 35 % | constant gauge | `node_filesystem_size_bytes`, `*_info` |
//! | 20 % | rarely incrementing counter | `node_network_receive_errs_total` |
//! | 20 % | busy integer counter | `node_network_receive_bytes_total` |
//! | 15 % | float counter, 2 decimals | `node_cpu_seconds_total` |
//! | 10 % | fluctuating gauge | `node_memory_MemAvailable_bytes`, `node_load1` |
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
    /// Gauge wandering around a level, with a given resolution.
    Gauge {
        /// Resolution (1 for bytes, 0.01 for load averages).
        step: f64,
    },
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
    &["node_filesystem_size_bytes", "node_uname_info", "node_memory_MemTotal_bytes", "node_network_mtu_bytes"];
const RARE_METRICS: &[&str] =
    &["node_network_receive_errs_total", "node_network_transmit_drop_total", "node_disk_io_errors_total"];
const BUSY_METRICS: &[&str] =
    &["node_network_receive_bytes_total", "node_disk_written_bytes_total", "node_network_transmit_packets_total"];
const FLOAT_METRICS: &[&str] = &["node_cpu_seconds_total", "node_disk_io_time_seconds_total"];
const GAUGE_METRICS: &[&str] = &["node_memory_MemAvailable_bytes", "node_load1", "node_filesystem_avail_bytes"];

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
                    0..=34 => (CONST_METRICS, false, Shape::Constant, (rng.below(1 << 40) as f64).round()),
                    35..=54 => (RARE_METRICS, true, Shape::RareCounter, rng.below(50) as f64),
                    55..=74 => {
                        let rate = 1_000.0 + rng.next_f64() * 5_000_000.0;
                        (BUSY_METRICS, true, Shape::BusyCounter { rate }, rng.below(1 << 42) as f64)
                    }
                    75..=89 => {
                        let rate = rng.next_f64() * 15.0;
                        (FLOAT_METRICS, true, Shape::FloatCounter { rate }, (rng.below(10_000_000) as f64) / 100.0)
                    }
                    _ => {
                        if rng.below(2) == 0 {
                            (GAUGE_METRICS, false, Shape::Gauge { step: 0.01 }, (rng.below(800) as f64) / 100.0)
                        } else {
                            (GAUGE_METRICS, false, Shape::Gauge { step: 4096.0 }, (rng.below(1 << 20) * 4096) as f64)
                        }
                    }
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
                    ((s.value * 100.0) + (rate * 100.0 * r.next_f64()).round()).round() / 100.0
                }
                Shape::Gauge { step } => {
                    let moved = s.value + step * (r.below(21) as f64 - 10.0);
                    ((moved.max(0.0) / step).round() * step * 100.0).round() / 100.0
                }
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
