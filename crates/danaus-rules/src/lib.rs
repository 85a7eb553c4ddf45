//! # danaus-rules
//!
//! Recording and alerting rules with Prometheus' semantics (2.42 and
//! later), so a rule file and its `promtool test rules` files move over
//! unchanged.
//!
//! Data flows one way: rule files → [`file::RuleGroups`] (parsed and
//! checked as `promtool check rules` does) → [`group::Group`]s, each
//! evaluated at a time `ts` against the PromQL [`danaus_promql::Storage`]
//! seam. An evaluation is a pure function of the group's state before it
//! and of what storage answers: it returns the derived samples (recording
//! rules, `ALERTS`, `ALERTS_FOR_STATE`, staleness markers for series a rule
//! no longer returns) and the alert state after it, which the caller
//! writes and commits. Nothing here writes anywhere or keeps time; the
//! evaluator role decides when a group runs and what is durable, and the
//! [`promtool`] runner drives the same code over memory for rule tests.
//!
//! * [`file`]: the rule-file format, `promtool check rules`' checks and
//!   messages.
//! * [`template`]: Go's `text/template` language with Prometheus' template
//!   functions, for alert labels and annotations.
//! * [`alert`]: one alerting rule's state machine (inactive → pending →
//!   firing → resolved, `for`, `keep_firing_for`, `limit`).
//! * [`group`]: a group's evaluation: rules in order at one time, later
//!   rules seeing earlier ones' output.
//! * [`promtool`]: `promtool test rules` files run unchanged.

pub mod alert;
mod duration;
pub mod file;
pub mod group;
pub mod promtool;
pub mod template;
