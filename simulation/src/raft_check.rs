//! The Raft checker: watches the members of every zone's assigner group,
//! and of the global config group, while the faults run and after healing.
//!
//! * **Election safety**: no two members lead in one term (the groups run
//!   standard Raft, openraft's `single-term-leader`), and a member's vote,
//!   persisted before it is cast, never goes back, across restarts too.
//! * **State machine safety**: members that applied the same log index
//!   applied the same entry (same log id) and hold the same zone table —
//!   a committed entry is never replaced by another.
//! * **No committed entry lost**: after healing every member reaches the
//!   highest index any member ever applied.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use danaus_assigner::ZoneTable;
use danaus_raft::{LogId, NodeId, RaftGroup, ServerState, StateMachine, Vote};
use parking_lot::Mutex;

use crate::model::State;

type Group<S> = Arc<RaftGroup<S>>;

struct Zone<S: StateMachine> {
    /// Running members (a killed one is removed until it restarts).
    members: BTreeMap<NodeId, Group<S>>,
    /// Each member's latest vote, kept across its restarts.
    votes: BTreeMap<NodeId, Vote<NodeId>>,
    /// Who led each term.
    leaders: BTreeMap<u64, NodeId>,
    /// What was applied at each index seen: (log id, table digest, who).
    applied: BTreeMap<u64, (LogId<NodeId>, u64, NodeId)>,
    /// The highest applied log id seen.
    highest: Option<LogId<NodeId>>,
}

impl<S: StateMachine> Default for Zone<S> {
    fn default() -> Self {
        Self {
            members: BTreeMap::new(),
            votes: BTreeMap::new(),
            leaders: BTreeMap::new(),
            applied: BTreeMap::new(),
            highest: None,
        }
    }
}

/// What the checker knows of every group of one kind (one per zone, or
/// the one config group).
pub struct RaftWatch<S: StateMachine = ZoneTable> {
    zones: Mutex<Vec<Zone<S>>>,
    state: Arc<Mutex<State>>,
    /// `z` for zones' groups (`z0`, `z1`), `config` for the config group.
    label: &'static str,
    summary: fn(&S) -> String,
}

fn digest<S: StateMachine>(t: &S) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_vec(t).unwrap_or_default().hash(&mut h);
    h.finish()
}

impl RaftWatch<ZoneTable> {
    /// A checker for `zones` zones' assigner groups, reporting into `state`.
    pub fn new(zones: usize, state: Arc<Mutex<State>>) -> Self {
        Self::with(zones, state, "z", |t| {
            format!(
                "table v{} with {} leaves, {} ranges, replication {}, config v{}",
                t.version,
                t.leaves.len(),
                t.ranges.len(),
                t.replication,
                t.config_version
            )
        })
    }

    /// The table of zone `z`'s member that applied the most, if any runs.
    pub fn any_table(&self, z: usize) -> Option<ZoneTable> {
        self.any_state(z)
    }
}

impl<S: StateMachine> RaftWatch<S> {
    /// A checker for `groups` groups, named `LABEL<n>` in reports.
    pub fn with(groups: usize, state: Arc<Mutex<State>>, label: &'static str, summary: fn(&S) -> String) -> Self {
        Self { zones: Mutex::new((0..groups).map(|_| Zone::default()).collect()), state, label, summary }
    }

    fn name(&self, z: usize) -> String {
        if self.label == "z" {
            format!("z{z}")
        } else {
            self.label.to_owned()
        }
    }

    /// Member `id` of zone `z`'s group runs (again).
    pub fn register(&self, z: usize, id: NodeId, group: Group<S>) {
        self.zones.lock()[z].members.insert(id, group);
    }

    /// Member `id` of zone `z` is being killed.
    pub fn unregister(&self, z: usize, id: NodeId) {
        self.zones.lock()[z].members.remove(&id);
    }

    /// Looks at every running member once.
    pub fn check(&self) {
        let mut zones = self.zones.lock();
        let mut violations = Vec::new();
        for (z, zone) in zones.iter_mut().enumerate() {
            let z = self.name(z);
            let Zone { members, votes, leaders, applied, highest } = zone;
            for (&id, g) in members.iter() {
                let m = g.metrics();
                if let Some(prev) = votes.get(&id) {
                    if !matches!(
                        m.vote.partial_cmp(prev),
                        Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
                    ) {
                        violations.push(format!("raft {z}: member {id}'s vote went back from {prev} to {}", m.vote));
                    }
                }
                votes.insert(id, m.vote);
                if m.state == ServerState::Leader {
                    let leader = *leaders.entry(m.current_term).or_insert(id);
                    if leader != id {
                        violations
                            .push(format!("raft {z}: members {leader} and {id} both led term {}", m.current_term));
                    }
                }
                let (log_id, d) = g.read_applied(|l, t| (l, digest(t)));
                let Some(log_id) = log_id else { continue };
                match applied.get(&log_id.index) {
                    Some((seen, seen_d, who)) if *seen != log_id || *seen_d != d => violations.push(format!(
                        "raft {z}: at index {} member {who} applied {seen} (table {seen_d:016x}) but member {id} \
                         applied {log_id} (table {d:016x})",
                        log_id.index
                    )),
                    Some(_) => {}
                    None => {
                        applied.insert(log_id.index, (log_id, d, id));
                    }
                }
                if highest.is_none_or(|h| h.index < log_id.index) {
                    *highest = Some(log_id);
                }
            }
        }
        drop(zones);
        let mut st = self.state.lock();
        for v in violations {
            st.violation(v);
        }
    }

    /// The state of group `z`'s member that applied the most, if any runs.
    pub fn any_state(&self, z: usize) -> Option<S> {
        let zones = self.zones.lock();
        zones[z]
            .members
            .values()
            .map(|g| g.read_applied(|l, t| (l.map_or(0, |l| l.index), t.clone())))
            .max_by_key(|(i, _)| *i)
            .map(|(_, t)| t)
    }

    /// Every running member's state, for a report.
    pub fn describe(&self) -> String {
        let zones = self.zones.lock();
        let mut out = String::new();
        for (z, zone) in zones.iter().enumerate() {
            for (id, g) in &zone.members {
                let m = g.metrics();
                let t = g.read(|t| (self.summary)(t));
                out.push_str(&format!(
                    "{}/{id}: {:?} term {} leader {:?} applied {:?}; {t}\n",
                    self.name(z),
                    m.state,
                    m.current_term,
                    m.current_leader,
                    m.last_applied.map(|l| l.index)
                ));
            }
        }
        out
    }

    /// Members that have not applied up to the highest index seen, as
    /// "z0/3 at 17 of 20"; empty once every zone has caught up.
    pub fn behind(&self) -> Vec<String> {
        let zones = self.zones.lock();
        let mut out = Vec::new();
        for (z, zone) in zones.iter().enumerate() {
            let Some(high) = zone.highest else { continue };
            for (id, g) in &zone.members {
                let at = g.read_applied(|l, _| l.map_or(0, |l| l.index));
                if at < high.index {
                    out.push(format!("{}/{id} at {at} of {}", self.name(z), high.index));
                }
            }
        }
        out
    }
}
