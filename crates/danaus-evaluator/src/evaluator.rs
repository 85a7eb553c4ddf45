//! The evaluation loop a member runs: one task per rule group it is
//! assigned, and one handing the outbox on; each acts only while its
//! member leads the group.
//!
//! A group's task repeats one step: read the group's committed record;
//! if its points are not written yet, write them and commit that they
//! are; otherwise, if the next grid time has come, evaluate the group
//! there on top of the committed state and commit the outcome. So the
//! path after a failover is the normal path: a new leader starts from
//! what was committed, writes what may not have been written (a point
//! written twice is a duplicate), and evaluates the grid times that
//! passed meanwhile one after another (back to the catch-up horizon;
//! older ones are counted as missed).
//!
//! An evaluation whose storage reports sources that did not answer is
//! not committed: it is tried again until `incomplete_grace` after its
//! time, and then committed as failed, changing nothing (alerts keep
//! their state, no points are written), so partial data never resolves
//! an alert or records a wrong value.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use danaus_config::object::Object;
use danaus_config::ConfigView;
use danaus_promql::Options;
use danaus_raft::RaftGroup;
use danaus_rules::alert::{Alert, State, RESOLVED_RETENTION_MS};
use danaus_rules::file::{GroupSpec, RuleGroup, RuleSpec};
use danaus_rules::group::{evaluate, Context, Grid, GroupState, Outcome};
use danaus_storage::Clock;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::seams::{Notifier, Sink, Source, WriteError};
use crate::state::{EvalCommand, EvalReply, Evaluation, Evaluations, GroupRecord, Notice, StoredPoint};

/// How an evaluator runs.
#[derive(Debug, Clone)]
pub struct EvaluatorConfig {
    /// A group's interval when it names none (Prometheus' global
    /// `evaluation_interval` default: 1m).
    pub default_interval: Duration,
    /// How far back a leader catches up missed grid times; older ones
    /// are skipped and counted as missed. Keep it inside the leaves'
    /// out-of-order window, or the derived points of a late evaluation
    /// are refused.
    pub max_catch_up: Duration,
    /// How long after its time an evaluation with unanswered sources is
    /// tried again before it is committed as failed.
    pub incomplete_grace: Duration,
    /// `$externalLabels` in templates.
    pub external_labels: BTreeMap<String, String>,
    /// `$externalURL` in templates.
    pub external_url: String,
    /// Query options.
    pub options: Options,
    /// Which share of the rule groups this evaluator group runs: groups
    /// whose key hashes to `shard` modulo `shards`.
    pub shard: u32,
    /// How many evaluator groups share the rule groups.
    pub shards: u32,
    /// How often the leader offers every firing alert (and every alert
    /// resolved in the last 15 minutes) to the notifier again, as
    /// Prometheus' `--rules.alert.resend-delay` (1m).
    pub resend_delay: Duration,
    /// How often a member that does not lead checks again, and the
    /// longest a leader sleeps between checks.
    pub poll: Duration,
}

impl Default for EvaluatorConfig {
    fn default() -> Self {
        Self {
            default_interval: Duration::from_secs(60),
            max_catch_up: Duration::from_secs(9 * 60),
            incomplete_grace: Duration::from_secs(30),
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            options: Options::default(),
            shard: 0,
            shards: 1,
            resend_delay: Duration::from_secs(60),
            poll: Duration::from_millis(500),
        }
    }
}

/// One member's evaluator.
#[derive(Clone)]
pub struct Evaluator {
    inner: Arc<Inner>,
}

struct Inner {
    group: Arc<RaftGroup<Evaluations>>,
    source: Arc<dyn Source>,
    sink: Arc<dyn Sink>,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
    cfg: EvaluatorConfig,
    /// Rule groups of the configuration this evaluator cannot run, why.
    invalid: Mutex<BTreeMap<String, String>>,
    /// The term whose committed state this member has confirmed it reads
    /// (a new leader first waits until it applied everything committed).
    confirmed_term: Mutex<Option<u64>>,
}

/// Most notices handed on at once.
const BATCH: usize = 256;

/// The key of `tenant`'s group `name`.
pub fn group_key(tenant: &str, name: &str) -> String {
    format!("{tenant}/{name}")
}

/// FNV-1a of `key` modulo `shards`: the evaluator group a rule group
/// belongs to (stable across builds and platforms).
pub fn shard_of(key: &str, shards: u32) -> u32 {
    (danaus_rules::group::fnv1a(key) % u64::from(shards.max(1))) as u32
}

/// What a group's task does next.
enum Next {
    /// Another step at once.
    Now,
    /// A step after this long.
    In(Duration),
    /// A step after a pause: something failed.
    Retry(String),
}

impl Evaluator {
    /// An evaluator on `group`'s member.
    pub fn new(
        group: Arc<RaftGroup<Evaluations>>,
        source: Arc<dyn Source>,
        sink: Arc<dyn Sink>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
        cfg: EvaluatorConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                group,
                source,
                sink,
                notifier,
                clock,
                cfg,
                invalid: Mutex::default(),
                confirmed_term: Mutex::default(),
            }),
        }
    }

    /// The member's Raft group.
    pub fn group(&self) -> &Arc<RaftGroup<Evaluations>> {
        &self.inner.group
    }

    /// Its configuration.
    pub fn config(&self) -> &EvaluatorConfig {
        &self.inner.cfg
    }

    /// The rule groups of `view` this evaluator runs: key → (tenant, group).
    pub fn assigned(&self, view: &ConfigView) -> BTreeMap<String, (String, GroupSpec)> {
        let cfg = &self.inner.cfg;
        view.objects
            .iter()
            .filter_map(|(k, o)| match o {
                Object::RuleGroup(g) => Some((group_key(&k.tenant, &g.name), (k.tenant.clone(), g.clone()))),
                _ => None,
            })
            .filter(|(key, _)| shard_of(key, cfg.shards) == cfg.shard)
            .collect()
    }

    /// Rule groups this evaluator was given but cannot run, with why.
    pub fn invalid(&self) -> BTreeMap<String, String> {
        self.inner.invalid.lock().clone()
    }

    /// The committed records, as this member has applied them.
    pub fn records(&self) -> BTreeMap<String, GroupRecord> {
        self.inner.group.read(|s| s.groups.clone())
    }

    /// Runs until dropped: keeps one task per assigned rule group (a
    /// changed group restarts its task, carrying its state over), hands
    /// the outbox on, and forgets the state of groups that left the
    /// configuration.
    pub async fn run(self, mut config: watch::Receiver<Arc<ConfigView>>) {
        let mut tasks = Tasks::default();
        let inner = self.inner.clone();
        tasks.others.push(tokio::spawn(async move { inner.deliver_loop().await }));
        let inner = self.inner.clone();
        tasks.others.push(tokio::spawn(async move { inner.resend_loop().await }));
        loop {
            let view = config.borrow_and_update().clone();
            let want = self.assigned(&view);
            tasks.groups.retain(|key, (spec, handle)| {
                let keep = want.get(key).is_some_and(|(_, s)| s == spec);
                if !keep {
                    handle.abort();
                }
                keep
            });
            for (key, (tenant, spec)) in &want {
                if tasks.groups.contains_key(key) {
                    continue;
                }
                match spec.check() {
                    Ok(rules) => {
                        self.inner.invalid.lock().remove(key);
                        let task = GroupTask::new(key.clone(), tenant.clone(), spec.clone(), rules, &self.inner.cfg);
                        let inner = self.inner.clone();
                        tasks.groups.insert(key.clone(), (spec.clone(), tokio::spawn(inner.group_loop(task))));
                    }
                    Err(errs) => {
                        let why = errs.join("; ");
                        tracing::warn!(group = %key, "rule group not evaluated: {why}");
                        self.inner.invalid.lock().insert(key.clone(), why);
                    }
                }
            }
            self.inner.invalid.lock().retain(|k, _| want.contains_key(k));
            // A zone that has no configuration yet has not lost its rules.
            if view.version > 0 {
                self.inner.forget_unless(&want).await;
            }
            tokio::select! {
                r = config.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            }
        }
    }
}

/// Tasks aborted when the evaluator stops.
#[derive(Default)]
struct Tasks {
    groups: HashMap<String, (GroupSpec, JoinHandle<()>)>,
    others: Vec<JoinHandle<()>>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for (_, (_, h)) in self.groups.drain() {
            h.abort();
        }
        for h in &self.others {
            h.abort();
        }
    }
}

/// One rule group as its task runs it.
struct GroupTask {
    key: String,
    tenant: String,
    spec: GroupSpec,
    rules: RuleGroup,
    grid: Grid,
}

impl GroupTask {
    fn new(key: String, tenant: String, spec: GroupSpec, rules: RuleGroup, cfg: &EvaluatorConfig) -> Self {
        let interval = rules.interval_ms.unwrap_or(ms(cfg.default_interval)).max(1);
        let grid = Grid::new(&key, interval);
        Self { key, tenant, spec, rules, grid }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Inner {
    fn now_ms(&self) -> i64 {
        self.clock.now().div_euclid(1_000_000)
    }

    /// Whether this member leads and reads everything committed before
    /// its term began (checked once per term).
    async fn leads(&self) -> bool {
        if !self.group.is_leader() {
            return false;
        }
        let term = self.group.metrics().current_term;
        if *self.confirmed_term.lock() == Some(term) {
            return true;
        }
        match self.group.read_linearizable(Duration::from_secs(5), |_| ()).await {
            Ok(()) => {
                *self.confirmed_term.lock() = Some(term);
                true
            }
            Err(e) => {
                tracing::debug!("leadership not confirmed: {e}");
                false
            }
        }
    }

    async fn group_loop(self: Arc<Self>, task: GroupTask) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if !self.leads().await {
                tokio::time::sleep(self.cfg.poll).await;
                continue;
            }
            match self.step(&task).await {
                Next::Now => backoff = Duration::from_millis(100),
                Next::In(d) => {
                    backoff = Duration::from_millis(100);
                    tokio::time::sleep(d.min(self.cfg.poll)).await;
                }
                Next::Retry(why) => {
                    tracing::warn!(group = %task.key, "evaluation step failed, retrying in {backoff:?}: {why}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn step(&self, g: &GroupTask) -> Next {
        let rec = self.group.read(|s| s.groups.get(&g.key).cloned());
        if let Some(r) = &rec {
            if !r.unwritten.is_empty() {
                return self.write(&g.key, r).await;
            }
        }
        let now = self.now_ms();
        let interval = g.grid.interval_ms;
        let next = match &rec {
            Some(r) => g.grid.after(r.at),
            None => g.grid.at_or_before(now),
        };
        if next > now {
            return Next::In(Duration::from_millis((next - now) as u64));
        }
        let horizon = now - ms(self.cfg.max_catch_up);
        let (at, missed) = if next < horizon {
            let first = g.grid.after(horizon - 1);
            (first, ((first - next) / interval) as u64)
        } else {
            (next, 0)
        };
        let before = match &rec {
            Some(r) if r.spec == g.spec => r.state.clone(),
            Some(r) => carry_over(&r.spec, &r.state, &g.spec),
            None => GroupState::default(),
        };
        let storage = self.source.storage(&g.tenant);
        let ctx = Context {
            storage: &*storage,
            options: self.cfg.options,
            external_labels: self.cfg.external_labels.clone(),
            external_url: self.cfg.external_url.clone(),
        };
        let started = Instant::now();
        let mut state = before.clone();
        let outcome = evaluate(&g.rules, &mut state, at, &ctx).await;
        let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let missing = storage.warnings();
        let (state, outcome) = if missing.is_empty() {
            (state, outcome)
        } else {
            let why = format!("incomplete data: {}", missing.join("; "));
            if self.now_ms() - at < ms(self.cfg.incomplete_grace) {
                return Next::Retry(why);
            }
            // Given up on: committed as a failure that changes nothing.
            let mut s = before.clone();
            s.rules.resize_with(g.rules.rules.len(), Default::default);
            for r in &mut s.rules {
                r.last_error = Some(why.clone());
            }
            s.last_eval = Some(at);
            let errors = (0..g.rules.rules.len()).map(|i| (i, why.clone())).collect();
            (s, Outcome { errors, ..Outcome::default() })
        };
        for (i, e) in &outcome.errors {
            let name = g.rules.rules.get(*i).map_or("?", |r| r.name());
            tracing::debug!(group = %g.key, rule = name, at, "rule failed: {e}");
        }
        let notices = notices(g, &before, &state, at, &outcome);
        let rule_durations_us = outcome.durations_us;
        let points = outcome.samples.into_iter().map(|(labels, t, v)| StoredPoint { labels, t, v }).collect();
        let e = Evaluation {
            key: g.key.clone(),
            tenant: g.tenant.clone(),
            after: rec.as_ref().map(|r| r.at),
            at,
            spec: rec.as_ref().is_none_or(|r| r.spec != g.spec).then(|| g.spec.clone()),
            state,
            points,
            notices,
            missed,
            caught_up: now - at >= interval,
            failed: !outcome.errors.is_empty(),
            duration_us,
            rule_durations_us,
            now,
        };
        match self.group.propose(&EvalCommand::Commit(Box::new(e))).await {
            Ok(EvalReply::Done) => Next::Now,
            Ok(EvalReply::Stale(m)) => Next::Retry(format!("committed state moved: {m}")),
            Err(e) => Next::Retry(format!("committing the evaluation at {at}: {e}")),
        }
    }

    async fn write(&self, key: &str, r: &GroupRecord) -> Next {
        match self.sink.write(&r.tenant, &r.unwritten).await {
            Ok(refused) => {
                let cmd = EvalCommand::Written { key: key.to_owned(), at: r.at, refused };
                match self.group.propose(&cmd).await {
                    Ok(_) => Next::Now,
                    Err(e) => Next::Retry(format!("committing that the points of {} are written: {e}", r.at)),
                }
            }
            Err(WriteError::Retry(m)) => Next::Retry(format!("writing the derived points of {}: {m}", r.at)),
        }
    }

    /// Hands the outbox on, in order, while this member leads.
    async fn deliver_loop(self: Arc<Self>) {
        let mut changes = self.group.changes();
        let mut backoff = Duration::from_millis(100);
        loop {
            if !self.leads().await {
                tokio::time::sleep(self.cfg.poll).await;
                continue;
            }
            let batch: Vec<Notice> = self.group.read(|s| s.outbox.values().take(BATCH).cloned().collect());
            let Some(through) = batch.last().map(|n| n.seq) else {
                let _ = tokio::time::timeout(self.cfg.poll, changes.changed()).await;
                continue;
            };
            let done = match self.notifier.deliver(&batch).await {
                Ok(()) => self
                    .group
                    .propose(&EvalCommand::Delivered { through })
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("committing the delivery through {through}: {e}")),
                Err(m) => Err(format!("handing {} alert transitions on: {m}", batch.len())),
            };
            match done {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(m) => {
                    tracing::warn!("{m}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Offers the alerts that are firing or resolved recently to the
    /// notifier again every `resend_delay`, while this member leads.
    async fn resend_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.cfg.resend_delay.max(Duration::from_millis(10))).await;
            if !self.leads().await {
                continue;
            }
            let now = self.now_ms();
            let alerts = self.group.read(|s| active_notices(&s.groups, now, ms(self.cfg.default_interval)));
            if !alerts.is_empty() {
                self.notifier.resend(&alerts).await;
            }
        }
    }

    /// Forgets committed groups that are no longer `want`ed (on the
    /// leader; a refusal means an evaluation came in between: next time).
    async fn forget_unless(&self, want: &BTreeMap<String, (String, GroupSpec)>) {
        if !self.leads().await {
            return;
        }
        let gone: Vec<(String, i64)> = self.group.read(|s| {
            s.groups.iter().filter(|(k, _)| !want.contains_key(*k)).map(|(k, r)| (k.clone(), r.at)).collect()
        });
        for (key, at) in gone {
            tracing::info!(group = %key, "rule group left the configuration: forgetting its state");
            if let Err(e) = self.group.propose(&EvalCommand::Forget { key: key.clone(), at }).await {
                tracing::warn!(group = %key, "forgetting: {e}");
            }
        }
    }
}

/// The notices of an evaluation's transitions: each alert as the
/// evaluation left it (or, gone, as it was last seen).
fn notices(g: &GroupTask, before: &GroupState, after: &GroupState, at: i64, outcome: &Outcome) -> Vec<Notice> {
    outcome
        .transitions
        .iter()
        .map(|(i, t)| {
            let rule = &g.rules.rules[*i];
            let find = |s: &GroupState| s.rules.get(*i).and_then(|r| r.alerts.get(&t.labels)).cloned();
            let mut alert = find(after).or_else(|| find(before)).unwrap_or_else(|| Alert {
                labels: t.labels.clone(),
                annotations: BTreeMap::new(),
                state: t.to,
                value: f64::NAN,
                active_at: at,
                fired_at: None,
                resolved_at: None,
                keep_firing_since: None,
            });
            alert.state = t.to;
            if t.to == State::Inactive && alert.resolved_at.is_none() {
                alert.resolved_at = Some(at);
            }
            Notice {
                seq: 0,
                tenant: g.tenant.clone(),
                group: g.rules.name.clone(),
                rule: rule.name().to_owned(),
                expr: rule.expr.clone(),
                at,
                interval_ms: g.grid.interval_ms,
                from: t.from,
                to: t.to,
                alert,
            }
        })
        .collect()
}

/// Every alert of `groups` that fires, or resolved within
/// [`RESOLVED_RETENTION_MS`] of `now` (groups without an interval run
/// every `default_interval_ms`), as a notice of its current state
/// (`from` = `to`, `at` = its group's last evaluation).
fn active_notices(groups: &BTreeMap<String, GroupRecord>, now: i64, default_interval_ms: i64) -> Vec<Notice> {
    let mut out = Vec::new();
    for (key, r) in groups {
        let Ok(rules) = r.spec.check() else { continue };
        let interval_ms = Grid::new(key, rules.interval_ms.unwrap_or(default_interval_ms)).interval_ms;
        for (rule, rs) in rules.rules.iter().zip(&r.state.rules) {
            for a in rs.alerts.values() {
                let keep = match a.state {
                    State::Firing => true,
                    State::Inactive => a.resolved_at.is_some_and(|t| now - t <= RESOLVED_RETENTION_MS),
                    State::Pending => false,
                };
                if keep {
                    out.push(Notice {
                        seq: 0,
                        tenant: r.tenant.clone(),
                        group: rules.name.clone(),
                        rule: rule.name().to_owned(),
                        expr: rule.expr.clone(),
                        at: r.at,
                        interval_ms,
                        from: a.state,
                        to: a.state,
                        alert: a.clone(),
                    });
                }
            }
        }
    }
    out
}

/// A rule's identity across changes of its group, as Prometheus matches
/// rules on reload: kind and name, then labels; same-identity rules pair
/// up in order.
fn identity(r: &RuleSpec) -> (bool, String, Vec<(String, String)>) {
    let (alerting, name) = match (&r.alert, &r.record) {
        (Some(a), _) => (true, a.clone()),
        (None, Some(n)) => (false, n.clone()),
        (None, None) => (false, String::new()),
    };
    (alerting, name, r.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// The state of `new` from the state of `old`: a rule keeps its state
/// (series for staleness, alerts with their `for` timers) when it is
/// still there, wherever it moved; a new rule starts empty.
pub fn carry_over(old: &GroupSpec, state: &GroupState, new: &GroupSpec) -> GroupState {
    let mut by_identity: HashMap<_, VecDeque<usize>> = HashMap::new();
    for (i, r) in old.rules.iter().enumerate() {
        by_identity.entry(identity(r)).or_default().push_back(i);
    }
    let rules = new
        .rules
        .iter()
        .map(|r| {
            by_identity
                .get_mut(&identity(r))
                .and_then(VecDeque::pop_front)
                .and_then(|i| state.rules.get(i).cloned())
                .unwrap_or_default()
        })
        .collect();
    GroupState { rules, last_eval: state.last_eval }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use danaus_rules::group::RuleState;

    #[test]
    fn a_changed_group_keeps_the_state_of_the_rules_it_still_has() {
        let old = danaus_rules::file::specs(
            "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n  - alert: B\n    expr: up == 0\n    for: 5m\n",
        )
        .unwrap()
        .remove(0);
        let new = danaus_rules::file::specs(
            "groups:\n- name: g\n  rules:\n  - alert: C\n    expr: up\n  - alert: B\n    expr: up < 1\n    for: 5m\n  - record: a\n    expr: up * 2\n",
        )
        .unwrap()
        .remove(0);
        let err = |m: &str| RuleState { last_error: Some(m.into()), ..RuleState::default() };
        let state = GroupState { rules: vec![err("a"), err("B")], last_eval: Some(7) };
        let moved = carry_over(&old, &state, &new);
        assert_eq!(moved.rules, vec![RuleState::default(), err("B"), err("a")]);
        assert_eq!(moved.last_eval, Some(7));
    }

    #[test]
    fn groups_spread_over_shards_stably() {
        let n = (0..100).filter(|i| shard_of(&format!("t/g{i}"), 3) == 0).count();
        assert!((20..50).contains(&n), "{n}");
        assert_eq!(shard_of("t/g", 1), 0);
        assert_eq!(shard_of("t/g", 0), 0);
    }
}
