//! The reference model: which points were written, which were
//! acknowledged, their values, and the run's trace.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

/// Series written by the workload.
pub const SERIES: usize = 12;
/// Time of a series' first point (ns): 2023-11-14T22:13:20Z.
pub const T_BASE: i64 = 1_700_000_000_000_000_000;
/// Spacing of a series' points.
pub const STEP: i64 = 1_000_000_000;

/// The host field of series `i`.
pub fn host(i: usize) -> String {
    format!("h{i:02}")
}

/// The value every point of series `i` at time `t` has: a pure function,
/// so a read can check any point it gets.
pub fn value_of(i: usize, t: i64) -> f64 {
    let n = (t - T_BASE) / STEP;
    ((i as i64 * 7919 + n * 31) % 1000) as f64 / 4.0
}

/// What the run knows, shared by the harness's tasks.
#[derive(Debug)]
pub struct State {
    /// Per series: times of points sent in some write (stored or not).
    pub attempted: Vec<BTreeSet<i64>>,
    /// Per series: times of points the node acknowledged.
    pub acked: Vec<BTreeSet<i64>>,
    /// Per series: the next time to write.
    pub next: Vec<i64>,
    /// Per series: times skipped so far, to be written later out of order.
    pub holes: Vec<Vec<i64>>,
    /// Write requests that failed.
    pub failed_writes: usize,
    /// Reads checked.
    pub checked_reads: usize,
    /// Invariant violations.
    pub violations: Vec<String>,
    hasher: DefaultHasher,
    events: u64,
    /// Print every event as it happens (`DANAUS_SIM_TRACE=1`).
    print: bool,
}

impl Default for State {
    fn default() -> Self {
        Self {
            attempted: vec![BTreeSet::new(); SERIES],
            acked: vec![BTreeSet::new(); SERIES],
            next: vec![T_BASE; SERIES],
            holes: vec![Vec::new(); SERIES],
            failed_writes: 0,
            checked_reads: 0,
            violations: Vec::new(),
            hasher: DefaultHasher::new(),
            events: 0,
            print: std::env::var_os("DANAUS_SIM_TRACE").is_some_and(|v| v == "1"),
        }
    }
}

impl State {
    /// Adds an event to the trace (with the simulated time it happened).
    pub fn event(&mut self, at: std::time::Duration, what: &str) {
        if self.print {
            // With the simulated wall clock, to match the roles' logs.
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| (d.as_millis() % 86_400_000) as f64 / 1000.0);
            println!("{:>9.3}s [wall {wall:.3}] {what}", at.as_secs_f64());
        }
        at.as_nanos().hash(&mut self.hasher);
        what.hash(&mut self.hasher);
        self.events += 1;
    }

    /// The trace's hash so far.
    pub fn trace_hash(&self) -> u64 {
        let mut h = self.hasher.clone();
        self.events.hash(&mut h);
        h.finish()
    }

    /// Records a violation.
    pub fn violation(&mut self, what: String) {
        if self.print {
            println!("VIOLATION: {what}");
        }
        self.violations.push(what);
    }

    /// Checks a read of series `i` against the model. `acked_before` are
    /// the series' acknowledged times when the read was sent: all of them
    /// must be there; anything there must have been written, with its value.
    pub fn check_read(&mut self, via: &str, i: usize, acked_before: &BTreeSet<i64>, got: &[(i64, f64)]) {
        self.check_range(via, i, acked_before, (i64::MIN, i64::MAX), got)
    }

    /// [`State::check_read`] for a read of the times in `range` only.
    pub fn check_range(
        &mut self,
        via: &str,
        i: usize,
        acked_before: &BTreeSet<i64>,
        range: (i64, i64),
        got: &[(i64, f64)],
    ) {
        self.checked_reads += 1;
        let mut seen = BTreeSet::new();
        for &(t, v) in got {
            if t < range.0 || t > range.1 {
                self.violation(format!("{via}: series {} returned {t}, outside the range {range:?}", host(i)));
            } else if !self.attempted[i].contains(&t) {
                self.violation(format!("{via}: series {} returned a point at {t} that was never written", host(i)));
            } else if v.to_bits() != value_of(i, t).to_bits() {
                self.violation(format!(
                    "{via}: series {} at {t} returned {v}, but {} was written",
                    host(i),
                    value_of(i, t)
                ));
            }
            if !seen.insert(t) {
                self.violation(format!("{via}: series {} returned time {t} twice", host(i)));
            }
        }
        let missing: Vec<i64> = acked_before.range(range.0..=range.1).filter(|t| !seen.contains(t)).copied().collect();
        if !missing.is_empty() {
            self.violation(format!(
                "{via}: series {} lost {} acknowledged points (first at {})",
                host(i),
                missing.len(),
                missing[0]
            ));
        }
    }
}
