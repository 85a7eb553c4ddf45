//! The replicated state of an evaluator group: per rule group, the last
//! committed evaluation (its time, the group's state after it, the derived
//! points not yet confirmed written) and counters; and the outbox of alert
//! transitions not yet handed on.
//!
//! Every command is a compare-and-set on what the leader read, so a
//! command applied twice (a proposal retried after an ambiguous failure,
//! or proposed by a deposed leader) changes nothing the second time: an
//! evaluation commits only on top of the one it followed, which is what
//! makes every transition enter the outbox once.

use std::collections::BTreeMap;

use danaus_promql::Labels;
use danaus_raft::StateMachine;
use danaus_rules::alert::{f64_bits, Alert, State};
use danaus_rules::file::GroupSpec;
use danaus_rules::group::GroupState;
use serde::{Deserialize, Serialize};

/// A derived sample: labels, time (ms), value (stored as its bits, so
/// staleness markers survive JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPoint {
    /// The series.
    pub labels: Labels,
    /// Time, ms since the epoch.
    pub t: i64,
    /// Value.
    #[serde(with = "f64_bits")]
    pub v: f64,
}

/// An alert transition to hand on: what a notifier or Alertmanager needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// Its place in the outbox (given when committed; 0 before).
    pub seq: u64,
    /// The tenant.
    pub tenant: String,
    /// The rule group.
    pub group: String,
    /// The alerting rule's name.
    pub rule: String,
    /// The rule's expression (context for receivers).
    pub expr: String,
    /// The evaluation that made the change (ms).
    pub at: i64,
    /// The group's interval (ms): how long a firing alert stays valid
    /// without news depends on it.
    #[serde(default)]
    pub interval_ms: i64,
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// The alert as the change left it (a pending alert that vanished is
    /// shown as it was last seen, with the state it went to).
    pub alert: Alert,
}

impl Notice {
    /// The idempotency key: one per (tenant, group, alert, evaluation,
    /// new state), the same however often the notice is handed on.
    pub fn key(&self) -> String {
        let mut labels = String::new();
        for (k, v) in self.alert.labels.pairs() {
            labels.push_str(&format!("{k}={v:?},"));
        }
        format!("{}/{}/{{{}}}/{}/{}", self.tenant, self.group, labels.trim_end_matches(','), self.at, self.to.as_str())
    }
}

/// Counters of a rule group, committed with its evaluations (so they
/// survive a failover).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Evaluations committed.
    pub evaluations: u64,
    /// Evaluations with at least one failed rule.
    pub failed: u64,
    /// Grid times skipped: older than the catch-up horizon when the group
    /// got to them.
    pub missed: u64,
    /// Evaluations run after their time had passed by an interval or more
    /// (after a failover, a move or a stall).
    pub caught_up: u64,
    /// Derived points the write path refused for good.
    pub points_refused: u64,
}

/// A rule group's last committed evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Its tenant.
    pub tenant: String,
    /// The group as evaluated.
    pub spec: GroupSpec,
    /// The last committed evaluation time (ms).
    pub at: i64,
    /// The group's state after it.
    pub state: GroupState,
    /// Its derived points, until written.
    pub unwritten: Vec<StoredPoint>,
    /// How long it took (µs).
    pub duration_us: u64,
    /// How long each rule took (µs), in rule order.
    #[serde(default)]
    pub rule_durations_us: Vec<u64>,
    /// When it was committed, by the leader's clock (ms).
    pub committed_at: i64,
    /// Counters.
    pub counters: Counters,
}

/// One evaluation, as the leader proposes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The rule group's key (`tenant/name`).
    pub key: String,
    /// Its tenant.
    pub tenant: String,
    /// The evaluation it follows (`None`: the group's first).
    pub after: Option<i64>,
    /// Its time (ms).
    pub at: i64,
    /// The group as evaluated, when it differs from the committed one.
    pub spec: Option<GroupSpec>,
    /// The group's state after it.
    pub state: GroupState,
    /// Its derived points.
    pub points: Vec<StoredPoint>,
    /// Its alert transitions.
    pub notices: Vec<Notice>,
    /// Grid times skipped before it.
    pub missed: u64,
    /// Whether it ran an interval or more late.
    pub caught_up: bool,
    /// Whether a rule failed.
    pub failed: bool,
    /// How long it took (µs).
    pub duration_us: u64,
    /// How long each rule took (µs), in rule order.
    #[serde(default)]
    pub rule_durations_us: Vec<u64>,
    /// The leader's clock when proposed (ms).
    pub now: i64,
}

/// What an evaluator group's members replicate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluations {
    /// By rule group key.
    pub groups: BTreeMap<String, GroupRecord>,
    /// Transitions not yet handed on, by sequence number.
    pub outbox: BTreeMap<u64, Notice>,
    /// The next sequence number.
    pub next_seq: u64,
    /// Every notice up to and including this one was handed on.
    pub delivered: u64,
}

/// A change to the evaluations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EvalCommand {
    /// An evaluation: applies only on top of the one it follows, and only
    /// once the points of that one are written.
    Commit(Box<Evaluation>),
    /// The points of `key`'s evaluation at `at` are written.
    Written {
        /// The rule group.
        key: String,
        /// The evaluation.
        at: i64,
        /// Points the write path refused for good.
        refused: u64,
    },
    /// Notices up to and including `through` were handed on.
    Delivered {
        /// The last one.
        through: u64,
    },
    /// `key` left the configuration (or this evaluator group): its state
    /// goes, unless an evaluation after `at` was committed meanwhile.
    Forget {
        /// The rule group.
        key: String,
        /// The last evaluation the leader saw.
        at: i64,
    },
}

/// What applying a command answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EvalReply {
    /// Applied.
    Done,
    /// Not applied: the state is not what the command was based on.
    Stale(String),
}

impl StateMachine for Evaluations {
    type Command = EvalCommand;
    type Reply = EvalReply;

    fn apply(&mut self, cmd: EvalCommand) -> EvalReply {
        match cmd {
            EvalCommand::Commit(e) => self.commit(*e),
            EvalCommand::Written { key, at, refused } => match self.groups.get_mut(&key) {
                Some(r) if r.at == at => {
                    if !r.unwritten.is_empty() {
                        r.unwritten.clear();
                        r.counters.points_refused += refused;
                    }
                    EvalReply::Done
                }
                _ => EvalReply::Stale(format!("{key}: no committed evaluation at {at}")),
            },
            EvalCommand::Delivered { through } => {
                self.outbox = self.outbox.split_off(&(through.saturating_add(1)));
                self.delivered = self.delivered.max(through);
                EvalReply::Done
            }
            EvalCommand::Forget { key, at } => match self.groups.get(&key) {
                Some(r) if r.at == at => {
                    self.groups.remove(&key);
                    EvalReply::Done
                }
                Some(r) => EvalReply::Stale(format!("{key}: evaluated at {} since", r.at)),
                None => EvalReply::Done,
            },
        }
    }
}

impl Evaluations {
    fn commit(&mut self, e: Evaluation) -> EvalReply {
        let current = self.groups.get(&e.key);
        let last = current.map(|r| r.at);
        if last != e.after {
            return EvalReply::Stale(format!(
                "{}: the evaluation at {} follows {:?}, but the last committed is {:?}",
                e.key, e.at, e.after, last
            ));
        }
        if current.is_some_and(|r| !r.unwritten.is_empty()) {
            return EvalReply::Stale(format!(
                "{}: the points of the evaluation at {last:?} are not written yet",
                e.key
            ));
        }
        if last.is_some_and(|l| e.at <= l) {
            return EvalReply::Stale(format!("{}: evaluation time {} is not after {last:?}", e.key, e.at));
        }
        let spec = match (e.spec, current) {
            (Some(s), _) => s,
            (None, Some(r)) => r.spec.clone(),
            (None, None) => return EvalReply::Stale(format!("{}: a first evaluation must carry its group", e.key)),
        };
        let mut counters = current.map(|r| r.counters.clone()).unwrap_or_default();
        counters.evaluations += 1;
        counters.failed += u64::from(e.failed);
        counters.missed += e.missed;
        counters.caught_up += u64::from(e.caught_up);
        for mut n in e.notices {
            n.seq = self.next_seq.max(self.delivered) + 1;
            self.next_seq = n.seq;
            self.outbox.insert(n.seq, n);
        }
        self.groups.insert(
            e.key,
            GroupRecord {
                tenant: e.tenant,
                spec,
                at: e.at,
                state: e.state,
                unwritten: e.points,
                duration_us: e.duration_us,
                rule_durations_us: e.rule_durations_us,
                committed_at: e.now,
                counters,
            },
        );
        EvalReply::Done
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec() -> GroupSpec {
        danaus_rules::file::specs("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n").unwrap().remove(0)
    }

    fn alert(n: &str) -> Alert {
        Alert {
            labels: Labels::new(vec![("alertname".into(), n.into())]),
            annotations: BTreeMap::new(),
            state: State::Pending,
            value: f64::NAN,
            active_at: 1,
            fired_at: None,
            resolved_at: None,
            keep_firing_since: None,
        }
    }

    fn eval(after: Option<i64>, at: i64, notices: usize) -> EvalCommand {
        EvalCommand::Commit(Box::new(Evaluation {
            key: "t/g".into(),
            tenant: "t".into(),
            after,
            at,
            spec: after.is_none().then(spec),
            state: GroupState::default(),
            points: vec![StoredPoint {
                labels: Labels::new(vec![("__name__".into(), "x".into())]),
                t: at,
                v: f64::NAN,
            }],
            notices: (0..notices)
                .map(|i| Notice {
                    seq: 0,
                    tenant: "t".into(),
                    group: "g".into(),
                    rule: "A".into(),
                    expr: "up == 0".into(),
                    at,
                    interval_ms: 60_000,
                    from: State::Inactive,
                    to: State::Pending,
                    alert: alert(&format!("A{i}")),
                })
                .collect(),
            missed: 0,
            caught_up: false,
            failed: false,
            duration_us: 5,
            rule_durations_us: vec![5],
            now: at,
        }))
    }

    #[test]
    fn an_evaluation_commits_once_on_top_of_the_one_it_follows() {
        let mut s = Evaluations::default();
        assert_eq!(s.apply(eval(None, 100, 2)), EvalReply::Done);
        // The same proposal again (a retry): refused, nothing enqueued twice.
        assert!(matches!(s.apply(eval(None, 100, 2)), EvalReply::Stale(_)));
        assert_eq!(s.outbox.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        // The next one waits for the points of this one.
        assert!(matches!(s.apply(eval(Some(100), 200, 1)), EvalReply::Stale(m) if m.contains("not written")));
        let written = EvalCommand::Written { key: "t/g".into(), at: 100, refused: 0 };
        assert_eq!(s.apply(written.clone()), EvalReply::Done);
        assert_eq!(s.apply(written), EvalReply::Done);
        assert!(s.groups["t/g"].unwritten.is_empty());
        assert_eq!(s.apply(eval(Some(100), 200, 1)), EvalReply::Done);
        assert_eq!(s.outbox.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(s.groups["t/g"].counters.evaluations, 2);
        // Delivery empties the outbox up to a point; numbering goes on.
        assert_eq!(s.apply(EvalCommand::Delivered { through: 2 }), EvalReply::Done);
        assert_eq!(s.outbox.keys().copied().collect::<Vec<_>>(), vec![3]);
        // NaN survives the JSON a snapshot is.
        let back: Evaluations = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert!(back.groups["t/g"].unwritten[0].v.is_nan());
        assert!(back.outbox[&3].alert.value.is_nan());
        assert_eq!(back.outbox[&3].key(), "t/g/{alertname=\"A0\"}/200/pending");
    }

    #[test]
    fn forgetting_is_refused_when_an_evaluation_came_after() {
        let mut s = Evaluations::default();
        s.apply(eval(None, 100, 0));
        assert!(matches!(s.apply(EvalCommand::Forget { key: "t/g".into(), at: 50 }), EvalReply::Stale(_)));
        assert_eq!(s.apply(EvalCommand::Forget { key: "t/g".into(), at: 100 }), EvalReply::Done);
        assert!(s.groups.is_empty());
    }
}
