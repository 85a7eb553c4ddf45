//! # danaus-evaluator
//!
//! Standing queries: a Raft group of evaluators (three members in a
//! zone, one in standalone) runs the rule groups of the configuration
//! assigned to it, and loses and repeats nothing across a failover.
//!
//! Data flow, one way: the configuration (a zone's mirror) → the rule
//! groups this evaluator group owns ([`shard_of`] their key) → per group,
//! on the leader only, an evaluation at each time of the group's fixed
//! grid ([`danaus_rules::group::Grid`]) over the [`Source`] seam (a
//! zone's query engine) → the outcome committed to the group's Raft log
//! ([`state::Evaluations`]: the group's state after it, with `ActiveAt`
//! and `KeepFiringSince` of every alert, the derived points, the alert
//! transitions into an outbox) → then the points written through the
//! [`Sink`] seam (the normal write path, where a repeated point is a
//! duplicate) and the outbox handed on through the [`Notifier`] seam, each
//! step committed when done.
//!
//! Invariants: an evaluation commits only on top of the one it follows
//! (a compare-and-set in the state machine), so each grid time is
//! committed once and each transition enters the outbox once; nothing is
//! written or handed on before it is committed; a new leader resumes from
//! the last committed evaluation — it writes that evaluation's points if
//! they may not have been written, then evaluates every grid time that
//! passed (back to `max_catch_up`; older ones are counted as missed), so
//! `for` and `keep_firing_for` timers run on across the failover and
//! derived series get no gap; an evaluation over data with sources that
//! did not answer is retried, then committed as a failure that changes
//! nothing, never acted upon.
//!
//! * [`state`]: the replicated state and its commands.
//! * [`evaluator`]: the loops a member runs.
//! * [`seams`]: where it reads, writes and hands on.
//! * [`status`]: what the rules and alerts APIs show.

pub mod evaluator;
pub mod seams;
pub mod state;
pub mod status;

pub use evaluator::{carry_over, group_key, shard_of, Evaluator, EvaluatorConfig};
pub use seams::{LogNotifier, Notifier, Recorder, Sink, Source, WriteError};
pub use state::{EvalCommand, EvalReply, Evaluation, Evaluations, GroupRecord, Notice, StoredPoint};
pub use status::{GroupStatus, Health, RuleStatus};
