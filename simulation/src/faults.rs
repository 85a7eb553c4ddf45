//! Faults on a schedule drawn from the seed.

use std::time::Duration;

use madsim::rand::{thread_rng, Rng};

/// One fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The node's host crashes (unsynced log bytes are lost) and comes back.
    Crash {
        /// How long it stays down.
        down: Duration,
    },
    /// A client host cannot reach the node (both directions).
    Partition {
        /// Which client host (index into the clients).
        client: usize,
        /// For how long.
        heal_after: Duration,
    },
    /// Packets are lost at random.
    Loss {
        /// Probability of losing each packet.
        rate: f64,
        /// For how long.
        heal_after: Duration,
    },
    /// Every packet is delayed by a random latency in the range.
    Delay {
        /// Least delay, ms.
        min_ms: u64,
        /// Most delay, ms.
        max_ms: u64,
        /// For how long.
        heal_after: Duration,
    },
    /// The node stops running (a long GC pause, a stalled VM).
    Pause {
        /// For how long.
        resume_after: Duration,
    },
}

/// A fault at a simulated time.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    /// When (since the start of the workload).
    pub at: Duration,
    /// What.
    pub fault: Fault,
}

impl std::fmt::Display for Scheduled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t={:>7.3}s ", self.at.as_secs_f64())?;
        match &self.fault {
            Fault::Crash { down } => write!(f, "crash the node, restart after {:.3}s", down.as_secs_f64()),
            Fault::Partition { client, heal_after } => {
                write!(f, "partition client {client} from the node for {:.3}s", heal_after.as_secs_f64())
            }
            Fault::Loss { rate, heal_after } => {
                write!(f, "lose {:.0}% of packets for {:.3}s", rate * 100.0, heal_after.as_secs_f64())
            }
            Fault::Delay { min_ms, max_ms, heal_after } => {
                write!(f, "delay packets by {min_ms}-{max_ms} ms for {:.3}s", heal_after.as_secs_f64())
            }
            Fault::Pause { resume_after } => write!(f, "pause the node for {:.3}s", resume_after.as_secs_f64()),
        }
    }
}

fn ms(lo: u64, hi: u64) -> Duration {
    Duration::from_millis(thread_rng().gen_range(lo..hi))
}

/// A schedule for `seconds` of workload with `clients` client hosts: one
/// fault every 2–8 s, each over before the next begins.
pub fn schedule(seconds: u64, clients: usize) -> Vec<Scheduled> {
    let mut out = Vec::new();
    let mut at = ms(1000, 4000);
    let end = Duration::from_secs(seconds);
    while at < end {
        let fault = match thread_rng().gen_range(0..6) {
            0 | 1 => Fault::Crash { down: ms(100, 3000) },
            2 => Fault::Partition { client: thread_rng().gen_range(0..clients), heal_after: ms(500, 4000) },
            3 => Fault::Loss { rate: thread_rng().gen_range(0.05..0.4), heal_after: ms(500, 4000) },
            4 => {
                let min_ms = thread_rng().gen_range(10..500);
                Fault::Delay { min_ms, max_ms: min_ms + thread_rng().gen_range(1..2000), heal_after: ms(500, 4000) }
            }
            _ => Fault::Pause { resume_after: ms(100, 2500) },
        };
        let length = match &fault {
            Fault::Crash { down } => *down,
            Fault::Partition { heal_after, .. } | Fault::Loss { heal_after, .. } | Fault::Delay { heal_after, .. } => {
                *heal_after
            }
            Fault::Pause { resume_after } => *resume_after,
        };
        out.push(Scheduled { at, fault });
        at += length + ms(2000, 8000);
    }
    out
}
