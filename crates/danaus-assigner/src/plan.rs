//! The range assigner's decisions, as a pure function of the zone table,
//! the load the leaves report and which leaves are alive. The controller
//! ([`crate::service`]) carries out one [`Step`] at a time and asks again,
//! so every decision sees the effect of the last one.
//!
//! Priorities, highest first:
//! 1. finish joins: copy the history of a joining replica (or drop it if
//!    its leaf died); a lagging replica rejoins once its leaf reports the
//!    table in which it was demoted (it is alive again, not merely not yet
//!    declared dead), and is then repaired by a copy like a joining one;
//! 2. replication: a range with fewer than `replication` replicas on live,
//!    accepting leaves gets one on the least-loaded such leaf;
//! 3. trim: a range with more ready replicas than needed loses one: on a
//!    dead leaf first, then on a draining leaf, then on the most loaded;
//! 4. split: a range holding more than `max_series_per_range` series is
//!    cut at the median target its leaves report;
//! 5. balance: when the most loaded leaf holds more than `imbalance` times
//!    the mean series, one of its ranges gets a replica on the least loaded
//!    leaf (step 3 then removes the replica from the loaded leaf).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::table::{RangeId, ReplicaState, ZoneTable};

/// What a leaf reports about itself in its heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeafLoad {
    /// Series held.
    pub series: u64,
    /// Points accepted per second, recently.
    pub samples_per_sec: f64,
    /// Bytes of memory in use.
    pub memory_bytes: u64,
    /// The zone table version the leaf has applied.
    pub table_version: u64,
    /// Per range it holds.
    pub ranges: Vec<RangeLoad>,
}

/// A leaf's view of one of its ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeLoad {
    /// The range.
    pub range: RangeId,
    /// Series of the range on the leaf.
    pub series: u64,
    /// The median target string of those series: where a split would cut
    /// the range in halves.
    pub median_target: Option<Vec<u8>>,
}

/// Tuning of the assigner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Split ranges holding more series than this.
    pub max_series_per_range: u64,
    /// Rebalance when the most loaded leaf holds more than this times the
    /// mean.
    pub imbalance: f64,
    /// Do not bother moving ranges smaller than this.
    pub min_move_series: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self { max_series_per_range: 250_000, imbalance: 1.3, min_move_series: 1_000 }
    }
}

/// One change the assigner wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Place a replica of `range` on `leaf`.
    Add {
        /// The range.
        range: RangeId,
        /// The leaf.
        leaf: String,
    },
    /// Copy the history of `range` into joining `leaf` from `sources`
    /// (ready replicas' leaves), then promote it.
    Copy {
        /// The range.
        range: RangeId,
        /// The joining leaf.
        leaf: String,
        /// Leaves to copy from, in preference order.
        sources: Vec<String>,
    },
    /// Remove the replica of `range` on `leaf`.
    Remove {
        /// The range.
        range: RangeId,
        /// The leaf.
        leaf: String,
    },
    /// Make the lagging replica of `range` on `leaf` join again.
    Rejoin {
        /// The range.
        range: RangeId,
        /// The leaf.
        leaf: String,
    },
    /// Split `range` at `at`.
    Split {
        /// The range.
        range: RangeId,
        /// The first target of the second half.
        at: Vec<u8>,
    },
}

/// Decides the next step, if any.
pub fn next_step(
    table: &ZoneTable,
    loads: &BTreeMap<String, LeafLoad>,
    live: &BTreeSet<String>,
    policy: &Policy,
) -> Option<Step> {
    if table.replication == 0 || table.leaves.is_empty() {
        return None;
    }
    let want = table.replication as usize;
    let usable = |leaf: &str| live.contains(leaf) && table.leaves.get(leaf).is_some_and(|e| e.accepting);
    let leaf_series = leaf_series(table, loads);
    // Load used for placement: reported series, then replica count.
    let replicas_held = |leaf: &str| table.ranges_of(leaf).count() as u64;
    let weight = |leaf: &str| (leaf_series.get(leaf).copied().unwrap_or(0), replicas_held(leaf));

    // 1. Finish joins.
    for r in table.ranges.values() {
        for rep in r.replicas.iter().filter(|x| x.state == ReplicaState::Joining) {
            if !live.contains(&rep.leaf) {
                return Some(Step::Remove { range: r.id, leaf: rep.leaf.clone() });
            }
            let mut sources: Vec<String> = r.ready().filter(|l| live.contains(*l)).map(str::to_owned).collect();
            if !sources.is_empty() {
                sources.sort_by_key(|l| weight(l));
                return Some(Step::Copy { range: r.id, leaf: rep.leaf.clone(), sources });
            }
        }
    }
    for r in table.ranges.values() {
        // A leaf that reports the table in which it was demoted has lived
        // past the demotion: it is back, not merely not yet declared dead.
        let back = |leaf: &str| live.contains(leaf) && loads.get(leaf).is_some_and(|l| l.table_version >= r.changed_at);
        if let Some(rep) = r.replicas.iter().find(|x| x.state == ReplicaState::Lagging && back(&x.leaf)) {
            if r.ready().any(|l| live.contains(l)) {
                return Some(Step::Rejoin { range: r.id, leaf: rep.leaf.clone() });
            }
        }
    }
    // 2. Replication.
    for r in table.ranges.values() {
        let have = r.replicas.iter().filter(|x| x.state != ReplicaState::Lagging && usable(&x.leaf)).count();
        if have < want {
            let target = table
                .leaves
                .keys()
                .filter(|l| usable(l) && r.replica(l).is_none())
                .min_by_key(|l| (weight(l), (*l).clone()));
            if let Some(leaf) = target {
                return Some(Step::Add { range: r.id, leaf: leaf.clone() });
            }
        }
    }
    // 3. Trim.
    for r in table.ranges.values() {
        let ready_usable = r.ready().filter(|l| usable(l)).count();
        let joining = r.replicas.iter().any(|x| x.state == ReplicaState::Joining);
        if joining || ready_usable < want {
            continue;
        }
        let extra = r.replicas.len() > want;
        if !extra {
            continue;
        }
        let victim = r.replicas.iter().max_by_key(|x| {
            let dead = !live.contains(&x.leaf);
            let lagging = x.state == ReplicaState::Lagging;
            let draining = !usable(&x.leaf);
            (dead, lagging, draining, weight(&x.leaf), x.leaf.clone())
        });
        if let Some(v) = victim {
            return Some(Step::Remove { range: r.id, leaf: v.leaf.clone() });
        }
    }
    // 4. Split.
    for r in table.ranges.values() {
        if r.replicas.iter().any(|x| x.state == ReplicaState::Joining) {
            continue;
        }
        let report =
            r.ready().filter_map(|l| loads.get(l)?.ranges.iter().find(|x| x.range == r.id)).max_by_key(|x| x.series);
        if let Some(rl) = report {
            if rl.series > policy.max_series_per_range {
                if let Some(at) = rl.median_target.as_ref().filter(|at| r.contains(at) && **at > r.start) {
                    return Some(Step::Split { range: r.id, at: at.clone() });
                }
            }
        }
    }
    // 5. Balance.
    let candidates: Vec<&String> = table.leaves.keys().filter(|l| usable(l)).collect();
    if candidates.len() >= 2 {
        let total: u64 = candidates.iter().map(|l| leaf_series.get(*l).copied().unwrap_or(0)).sum();
        let mean = total as f64 / candidates.len() as f64;
        let max = candidates.iter().max_by_key(|l| (leaf_series.get(**l).copied().unwrap_or(0), (**l).clone()))?;
        let min = candidates.iter().min_by_key(|l| (leaf_series.get(**l).copied().unwrap_or(0), (**l).clone()))?;
        let (hi, lo) = (leaf_series.get(*max).copied().unwrap_or(0), leaf_series.get(*min).copied().unwrap_or(0));
        if hi as f64 > mean * policy.imbalance && hi > lo {
            // The largest range of the loaded leaf that still leaves it no
            // lighter than the light one after the move.
            let movable = table
                .ranges_of(max)
                .filter(|(r, st)| *st == ReplicaState::Ready && r.replica(min).is_none())
                .filter_map(|(r, _)| Some((r, range_series(loads, max, r.id)?)))
                .filter(|(_, s)| *s >= policy.min_move_series && lo + *s < hi)
                .max_by_key(|(r, s)| (*s, r.id));
            if let Some((r, _)) = movable {
                return Some(Step::Add { range: r.id, leaf: (*min).clone() });
            }
        }
    }
    None
}

fn range_series(loads: &BTreeMap<String, LeafLoad>, leaf: &str, range: RangeId) -> Option<u64> {
    loads.get(leaf)?.ranges.iter().find(|x| x.range == range).map(|x| x.series)
}

/// Series per leaf, from the reports of ranges the table gives it.
fn leaf_series(table: &ZoneTable, loads: &BTreeMap<String, LeafLoad>) -> BTreeMap<String, u64> {
    table
        .leaves
        .keys()
        .map(|l| {
            let s = table.ranges_of(l).filter_map(|(r, _)| range_series(loads, l, r.id)).sum();
            (l.clone(), s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::table::ZoneCommand;
    use danaus_raft::StateMachine;

    fn zone(rf: u32, leaves: &[&str]) -> ZoneTable {
        let mut t = ZoneTable::default();
        t.apply(ZoneCommand::Init { replication: rf }).unwrap();
        for l in leaves {
            t.apply(ZoneCommand::RegisterLeaf { leaf: (*l).into(), addr: format!("{l}:1") }).unwrap();
        }
        t
    }

    fn live(leaves: &[&str]) -> BTreeSet<String> {
        leaves.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Applies steps until the plan is quiet; copies succeed at once.
    fn settle(t: &mut ZoneTable, loads: &BTreeMap<String, LeafLoad>, live: &BTreeSet<String>) -> Vec<Step> {
        let mut steps = Vec::new();
        while let Some(s) = next_step(t, loads, live, &Policy::default()) {
            steps.push(s.clone());
            assert!(steps.len() < 100, "the plan does not converge: {steps:?}");
            let cmd = match s {
                Step::Add { range, leaf } => ZoneCommand::AddReplica { range, leaf },
                Step::Copy { range, leaf, .. } => ZoneCommand::PromoteReplica { range, leaf },
                Step::Remove { range, leaf } => ZoneCommand::RemoveReplica { range, leaf },
                Step::Split { range, at } => ZoneCommand::Split { range, at },
                Step::Rejoin { range, leaf } => ZoneCommand::Rejoin { range, leaf },
            };
            t.apply(cmd).unwrap();
        }
        steps
    }

    #[test]
    fn a_new_zone_gets_its_replicas() {
        let mut t = zone(3, &["a", "b", "c", "d"]);
        settle(&mut t, &BTreeMap::new(), &live(&["a", "b", "c", "d"]));
        let r = t.ranges.values().next().unwrap();
        assert_eq!(r.replicas.len(), 3);
        assert_eq!(r.ready().count(), 3);
    }

    #[test]
    fn a_dead_leaf_is_replaced_only_after_its_replacement_is_ready() {
        let mut t = zone(2, &["a", "b", "c"]);
        settle(&mut t, &BTreeMap::new(), &live(&["a", "b", "c"]));
        let r = t.ranges.values().next().unwrap().clone();
        let dead = r.replicas[0].leaf.clone();
        let alive: Vec<&str> = ["a", "b", "c"].into_iter().filter(|l| *l != dead).collect();
        let steps = settle(&mut t, &BTreeMap::new(), &live(&alive));
        let spare = alive.iter().find(|l| r.replica(l).is_none()).unwrap();
        assert_eq!(steps[0], Step::Add { range: r.id, leaf: (*spare).to_owned() });
        assert!(matches!(&steps[1], Step::Copy { leaf, .. } if leaf == spare));
        assert_eq!(steps[2], Step::Remove { range: r.id, leaf: dead.clone() });
        let r = t.ranges.values().next().unwrap();
        assert!(r.replica(&dead).is_none());
        assert_eq!(r.ready().count(), 2);
    }

    #[test]
    fn with_every_replica_dead_nothing_is_removed() {
        let mut t = zone(1, &["a", "b"]);
        settle(&mut t, &BTreeMap::new(), &live(&["a", "b"]));
        let holder = t.ranges.values().next().unwrap().replicas[0].leaf.clone();
        let other = if holder == "a" { "b" } else { "a" };
        // The other leaf gets a joining replica but no source is alive to
        // copy from, so nothing more happens and the holder stays.
        let steps = settle(&mut t, &BTreeMap::new(), &live(&[other]));
        assert_eq!(steps, vec![Step::Add { range: t.ranges.values().next().unwrap().id, leaf: other.into() }]);
        assert!(t.ranges.values().next().unwrap().replica(&holder).is_some());
    }

    #[test]
    fn a_lagging_replica_on_a_live_leaf_is_repaired_and_on_a_dead_one_replaced() {
        let mut t = zone(2, &["a", "b"]);
        settle(&mut t, &BTreeMap::new(), &live(&["a", "b"]));
        let r = t.ranges.values().next().unwrap().clone();
        let (keep, lag) = (r.replicas[0].leaf.clone(), r.replicas[1].leaf.clone());
        t.apply(ZoneCommand::Demote { range: r.id, leaf: lag.clone() }).unwrap();
        // Until the leaf shows it saw the demotion, nothing happens to it.
        assert_eq!(next_step(&t, &BTreeMap::new(), &live(&["a", "b"]), &Policy::default()), None);
        let seen = LeafLoad { table_version: t.version, ..Default::default() };
        let loads: BTreeMap<String, LeafLoad> = [(lag.clone(), seen)].into_iter().collect();
        let steps = settle(&mut t, &loads, &live(&["a", "b"]));
        assert_eq!(steps[0], Step::Rejoin { range: r.id, leaf: lag.clone() });
        assert!(
            matches!(&steps[1], Step::Copy { leaf, sources, .. } if *leaf == lag && *sources == vec![keep.clone()])
        );
        assert_eq!(t.range(r.id).unwrap().ready().count(), 2);
        // Lagging on a dead leaf, with a spare leaf: a replacement is
        // placed and filled, then the lagging replica goes.
        t.apply(ZoneCommand::RegisterLeaf { leaf: "c".into(), addr: "c:1".into() }).unwrap();
        t.apply(ZoneCommand::Demote { range: r.id, leaf: lag.clone() }).unwrap();
        let steps = settle(&mut t, &BTreeMap::new(), &live(&[keep.as_str(), "c"]));
        assert_eq!(steps[0], Step::Add { range: r.id, leaf: "c".into() });
        assert_eq!(steps.last().unwrap(), &Step::Remove { range: r.id, leaf: lag.clone() });
        let r = t.range(r.id).unwrap();
        assert!(r.replica(&lag).is_none());
        assert_eq!(r.ready().count(), 2);
    }

    #[test]
    fn big_ranges_split_and_loaded_leaves_shed_ranges() {
        let mut t = zone(1, &["a", "b"]);
        settle(&mut t, &BTreeMap::new(), &live(&["a", "b"]));
        let r = t.ranges.values().next().unwrap().clone();
        let holder = r.replicas[0].leaf.clone();
        let report = |ranges: Vec<RangeLoad>| LeafLoad { ranges, ..Default::default() };
        let mut loads = BTreeMap::new();
        loads.insert(
            holder.clone(),
            report(vec![RangeLoad { range: r.id, series: 300_000, median_target: Some(b"m".to_vec()) }]),
        );
        let step = next_step(&t, &loads, &live(&["a", "b"]), &Policy::default()).unwrap();
        assert_eq!(step, Step::Split { range: r.id, at: b"m".to_vec() });
        t.apply(ZoneCommand::Split { range: r.id, at: b"m".to_vec() }).unwrap();
        let ids: Vec<RangeId> = t.ranges.values().map(|r| r.id).collect();
        loads.insert(
            holder.clone(),
            report(vec![
                RangeLoad { range: ids[0], series: 150_000, median_target: None },
                RangeLoad { range: ids[1], series: 150_000, median_target: None },
            ]),
        );
        let other = if holder == "a" { "b" } else { "a" };
        let steps = settle(&mut t, &loads, &live(&["a", "b"]));
        assert!(matches!(&steps[0], Step::Add { leaf, .. } if leaf == other), "{steps:?}");
        assert!(matches!(steps.last().unwrap(), Step::Remove { leaf, .. } if *leaf == holder), "{steps:?}");
        // One range on each leaf.
        assert_eq!(t.ranges_of("a").count(), 1);
        assert_eq!(t.ranges_of("b").count(), 1);
    }
}
