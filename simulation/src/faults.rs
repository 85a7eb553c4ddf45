//! Faults on a schedule drawn from the seed.

use std::time::Duration;

use madsim::rand::{seq::SliceRandom, thread_rng, Rng};

/// A host the schedule can name: a cluster member or a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Its name, for the printed schedule.
    pub name: String,
    /// Its zone, if it is a cluster member.
    pub zone: Option<usize>,
    /// Whether it is a leaf (its clock can be skewed).
    pub leaf: bool,
}

/// One fault. Hosts are indexes into the schedule's host list.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Hosts crash (their disks lose unsynced writes) and come back.
    Crash {
        /// Which.
        hosts: Vec<usize>,
        /// How long they stay down.
        down: Duration,
    },
    /// Two hosts cannot reach each other.
    Partition {
        /// One side.
        a: usize,
        /// The other.
        b: usize,
        /// For how long.
        heal_after: Duration,
    },
    /// A host can reach no one.
    Isolate {
        /// Which.
        host: usize,
        /// For how long.
        heal_after: Duration,
    },
    /// No host of one zone can reach any host of the other.
    ZonePartition {
        /// One zone.
        a: usize,
        /// The other.
        b: usize,
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
    /// A host stops running (a long GC pause, a stalled VM).
    Pause {
        /// Which.
        host: usize,
        /// For how long.
        resume_after: Duration,
    },
    /// A leaf's clock jumps to this offset from true time.
    Skew {
        /// Which.
        host: usize,
        /// The new offset, ms.
        offset_ms: i64,
    },
}

impl Fault {
    /// How long the fault lasts.
    pub fn length(&self) -> Duration {
        match self {
            Fault::Crash { down, .. } => *down,
            Fault::Partition { heal_after, .. }
            | Fault::Isolate { heal_after, .. }
            | Fault::ZonePartition { heal_after, .. }
            | Fault::Loss { heal_after, .. }
            | Fault::Delay { heal_after, .. } => *heal_after,
            Fault::Pause { resume_after, .. } => *resume_after,
            Fault::Skew { .. } => Duration::ZERO,
        }
    }
}

/// A fault at a simulated time.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    /// When (since the start of the workload).
    pub at: Duration,
    /// What.
    pub fault: Fault,
}

impl Scheduled {
    /// The fault in words, naming hosts from `hosts`.
    pub fn describe(&self, hosts: &[Host]) -> String {
        let n = |i: &usize| hosts.get(*i).map_or("?", |h| h.name.as_str()).to_owned();
        let s = |d: &Duration| format!("{:.3}s", d.as_secs_f64());
        let what = match &self.fault {
            Fault::Crash { hosts, down } => {
                format!("crash {}, restart after {}", hosts.iter().map(n).collect::<Vec<_>>().join(" and "), s(down))
            }
            Fault::Partition { a, b, heal_after } => format!("partition {} from {} for {}", n(a), n(b), s(heal_after)),
            Fault::Isolate { host, heal_after } => format!("isolate {} for {}", n(host), s(heal_after)),
            Fault::ZonePartition { a, b, heal_after } => format!("partition zone z{a} from z{b} for {}", s(heal_after)),
            Fault::Loss { rate, heal_after } => format!("lose {:.0}% of packets for {}", rate * 100.0, s(heal_after)),
            Fault::Delay { min_ms, max_ms, heal_after } => {
                format!("delay packets by {min_ms}-{max_ms} ms for {}", s(heal_after))
            }
            Fault::Pause { host, resume_after } => format!("pause {} for {}", n(host), s(resume_after)),
            Fault::Skew { host, offset_ms } => format!("set {}'s clock off by {offset_ms} ms", n(host)),
        };
        format!("t={:>7.3}s {what}", self.at.as_secs_f64())
    }
}

fn ms(lo: u64, hi: u64) -> Duration {
    Duration::from_millis(thread_rng().gen_range(lo..hi))
}

/// A schedule for `seconds` of workload over `hosts`: a fault every
/// 1–5 s after the previous one is over.
pub fn schedule(seconds: u64, hosts: &[Host]) -> Vec<Scheduled> {
    let members: Vec<usize> = (0..hosts.len()).filter(|&i| hosts[i].zone.is_some()).collect();
    let leaves: Vec<usize> = (0..hosts.len()).filter(|&i| hosts[i].leaf).collect();
    let zones = hosts.iter().filter_map(|h| h.zone).max().map_or(0, |z| z + 1);
    let mut out = Vec::new();
    let mut at = ms(1000, 4000);
    let end = Duration::from_secs(seconds);
    let pick = |v: &[usize]| *v.choose(&mut thread_rng()).unwrap_or(&0);
    while at < end && !members.is_empty() {
        let fault = match thread_rng().gen_range(0..12) {
            0..=2 => Fault::Crash { hosts: vec![pick(&members)], down: ms(100, 3000) },
            3 => {
                let mut two: Vec<usize> = members.choose_multiple(&mut thread_rng(), 2).copied().collect();
                two.sort_unstable();
                Fault::Crash { hosts: two, down: ms(100, 3000) }
            }
            4 => {
                let a = thread_rng().gen_range(0..hosts.len());
                let b = pick(&members);
                if a == b {
                    continue;
                }
                Fault::Partition { a, b, heal_after: ms(500, 4000) }
            }
            5 => Fault::Isolate { host: pick(&members), heal_after: ms(500, 4000) },
            6 if zones > 1 => {
                let a = thread_rng().gen_range(0..zones);
                let b = (a + thread_rng().gen_range(1..zones)) % zones;
                Fault::ZonePartition { a: a.min(b), b: a.max(b), heal_after: ms(500, 5000) }
            }
            7 => Fault::Loss { rate: thread_rng().gen_range(0.05..0.4), heal_after: ms(500, 4000) },
            8 => {
                let min_ms = thread_rng().gen_range(10..500);
                Fault::Delay { min_ms, max_ms: min_ms + thread_rng().gen_range(1..2000), heal_after: ms(500, 4000) }
            }
            9 => Fault::Pause { host: pick(&members), resume_after: ms(100, 2500) },
            10 if !leaves.is_empty() => {
                Fault::Skew { host: pick(&leaves), offset_ms: thread_rng().gen_range(-30_000..30_000) }
            }
            _ => continue,
        };
        let length = fault.length();
        out.push(Scheduled { at, fault });
        at += length + ms(1000, 5000);
    }
    out
}
