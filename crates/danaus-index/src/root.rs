//! A zone's claim to the root index: the root mixer skips a zone whose
//! fingerprints fail a query's requirement, without asking the zone.
//!
//! The root index server is an [`IndexServer`] whose "leaves" are zones.
//! Each zone's index server pushes it the union of its leaves'
//! fingerprints, and — when it can prove that union holds the hints of
//! every series acknowledged in the zone — a *claim*: the push carries a
//! lease token of the root index, so the root index prunes by the set only
//! until a bound after it issued that token (`valid_ms`, at most
//! [`CLAIM_MAX`]). A claim is made only when
//!
//! 1. the zone table was confirmed current by a linearizable read sent
//!    after the token arrived (so, after the root index issued it): every
//!    range's ready replicas then hold everything acknowledged in it, and
//!    keep holding everything acknowledged for [`READ_CONFIRM_WINDOW`]
//!    after any later change that shrinks a read set (routers wait that
//!    long) — hence `CLAIM_MAX` is that window;
//! 2. every range has a ready replica whose set here is fresh, and the
//!    claim lasts no longer than the earliest of those leases: a leaf whose
//!    pushes stop reaching us acknowledges new series only after its own
//!    lease ran out, which is after ours;
//! 3. a leaf push that brings fingerprints the root index may lack is
//!    answered — letting the leaf acknowledge the series it names — only
//!    once the root index acknowledged a push holding them, or once no
//!    claim made without them can count any more: every push computed
//!    after the leaf's was applied holds them, and a claim computed before
//!    took a token we received before, so it ends by `CLAIM_MAX` after the
//!    latest token received then (the root index issued it earlier still).
//!    The union and this check change under one lock. So a series
//!    acknowledged while a claim counts is in the set the claim is about.
//!
//! With the root index unreachable, its claims run out within `CLAIM_MAX`
//! and leaf pushes are then answered at once: the zone never waits for
//! the global layer for longer than that. A restarted zone index assumes a
//! claim of its previous run may count for `CLAIM_MAX` after it starts.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Duration;

use danaus_assigner::{TableWatcher, READ_CONFIRM_WINDOW};
use danaus_proto::v1 as pb;
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tonic::Request;

use crate::server::{IndexServer, IndexStats};

/// The longest a claim counts after the root index issued its token.
pub const CLAIM_MAX: Duration = READ_CONFIRM_WINDOW;

/// How often the zone renews its claim.
pub const CLAIM_EVERY: Duration = Duration::from_millis(500);

/// The union of the leaves' sets, by how many hold each fingerprint, and
/// which fingerprints entered or left it since the pusher last looked.
#[derive(Default)]
pub(crate) struct Union {
    counts: HashMap<u64, u32>,
    changed: HashSet<u64>,
}

impl Union {
    pub(crate) fn add(&mut self, f: u64) {
        let c = self.counts.entry(f).or_insert(0);
        *c += 1;
        if *c == 1 {
            self.changed.insert(f);
        }
    }

    pub(crate) fn remove(&mut self, f: u64) {
        if let std::collections::hash_map::Entry::Occupied(mut e) = self.counts.entry(f) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
                self.changed.insert(f);
            }
        }
    }

    /// Fingerprints that entered and left the union since the last call.
    pub(crate) fn drain(&mut self) -> (Vec<u64>, Vec<u64>) {
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for f in self.changed.drain() {
            if self.counts.contains_key(&f) {
                added.push(f);
            } else {
                removed.push(f);
            }
        }
        (added, removed)
    }
}

/// What a zone index knows of the root index's view of its zone.
pub(crate) struct RootLink {
    /// The zone's union (changed under the leaves' lock, after `has`).
    pub(crate) union: Mutex<Union>,
    /// Fingerprints the root index surely holds for this zone. Changed
    /// together with the leaves' sets (under this lock) so a leaf push
    /// cannot slip between the union the pusher sends and the check.
    has: Mutex<HashSet<u64>>,
    /// Bumped whenever `has` grows.
    acked: watch::Sender<u64>,
    /// Until when the root index may prune this zone by anything sent.
    valid_until: Mutex<Instant>,
    /// Asks the pusher to push now.
    wake: Notify,
}

impl RootLink {
    pub(crate) fn new() -> Self {
        Self {
            union: Mutex::new(Union::default()),
            has: Mutex::new(HashSet::new()),
            acked: watch::Sender::new(0),
            // A claim of this server's previous run may still count.
            valid_until: Mutex::new(Instant::now() + margin(CLAIM_MAX)),
            wake: Notify::new(),
        }
    }

    /// Applies a leaf push through `apply` (which says whether it applied
    /// it) and returns the fingerprints it brought that the root index may
    /// lack, and until when the root index may prune by a set without
    /// them: everything sent from now on holds them.
    pub(crate) fn apply(&self, added: &[u64], apply: impl FnOnce() -> bool) -> (Vec<u64>, Instant) {
        let has = self.has.lock();
        let applied = apply();
        let novel = if applied { added.iter().copied().filter(|f| !has.contains(f)).collect() } else { Vec::new() };
        (novel, *self.valid_until.lock())
    }

    /// Waits until the root index holds `novel`, or `until` (when nothing
    /// it may prune by lacks them any more).
    pub(crate) async fn wait_for(&self, novel: Vec<u64>, until: Instant, stats: &IndexStats) {
        let mut rx = self.acked.subscribe();
        let mut counted = false;
        loop {
            rx.borrow_and_update();
            if novel.iter().all(|f| self.has.lock().contains(f)) || Instant::now() >= until {
                return;
            }
            if !counted {
                stats.root_waits.fetch_add(1, Ordering::Relaxed);
                counted = true;
            }
            self.wake.notify_one();
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }
}

/// A claim, if one can be made now: the newest token that arrived before
/// the latest confirmation of the zone table was sent, and how long the
/// leaves' leases cover every range's read set (at most [`CLAIM_MAX`]).
fn make_claim(
    index: &IndexServer,
    table: &TableWatcher,
    tokens: &VecDeque<(pb::HintsLease, Instant)>,
) -> Option<(pb::HintsLease, u64)> {
    let (confirmed_sent, _) = table.last_confirmed()?;
    let (tok, _) = tokens.iter().rev().find(|(_, got)| *got <= confirmed_sent)?;
    // The watcher holds the confirmed version or a newer one; a ready
    // replica of any version holds everything acknowledged in its range.
    let t = table.current();
    let read_sets: Vec<Vec<String>> = t.ranges.values().map(|r| r.ready().map(str::to_owned).collect()).collect();
    let left = index.covers(&read_sets)?.min(CLAIM_MAX);
    (left >= Duration::from_millis(10)).then_some((*tok, left.as_millis() as u64))
}

/// A bound plus 1 % for clock rates.
fn margin(d: Duration) -> Duration {
    d + d / 100
}

/// Pushes `index`'s union, and claims when it can, to the root index at
/// `root` as zone `zone`, following the zone table through `table`, until
/// the process ends. Does nothing for an index made without
/// [`IndexServer::with_root`].
pub async fn run(index: IndexServer, zone: String, root: String, table: TableWatcher) {
    let Some(link) = index.root_link().cloned() else { return };
    let channel = match danaus_proto::channels::endpoint(&root) {
        Ok(e) => e.connect_lazy(),
        Err(e) => {
            tracing::error!(root_index = %root, "bad root index address: {e}");
            return;
        }
    };
    let mut client = pb::index_service_client::IndexServiceClient::new(channel).max_encoding_message_size(256 << 20);
    table.keep_confirmed(CLAIM_EVERY);
    let epoch = index.incarnation();
    let mut seq = 0u64;
    // Recent tokens and when each arrived, newest last: a claim takes the
    // newest one that arrived before the latest table confirmation was
    // sent (pushes between claims keep bringing newer ones).
    let mut tokens: VecDeque<(pb::HintsLease, Instant)> = VecDeque::new();
    // The latest claim (token and bound): pushes between claims repeat it,
    // so the root index keeps pruning by a set that only grew.
    let mut claim: Option<(pb::HintsLease, u64)> = None;
    // What the root index holds if our latest push was applied, and
    // what left the union since but is not yet removed there.
    let mut pushed: HashSet<u64> = HashSet::new();
    let mut pending_removed: HashSet<u64> = HashSet::new();
    let mut full = true;
    let mut next_claim = Instant::now();
    loop {
        tokio::select! {
            _ = link.wake.notified() => tokio::time::sleep(Duration::from_millis(5)).await,
            _ = tokio::time::sleep_until(next_claim) => {}
        }
        let now = Instant::now();
        let claiming = now >= next_claim;
        let (mut lease, mut valid_ms) = (None, 0);
        if claiming {
            next_claim = now + CLAIM_EVERY;
            claim = make_claim(&index, &table, &tokens);
            if let Some((tok, ms)) = claim {
                (lease, valid_ms) = (Some(tok), ms);
            } else {
                tracing::debug!(zone = %zone, "not claiming: no table confirmation since a token arrived, or a range without a fresh ready replica");
            }
        } else if !full {
            if let Some((tok, ms)) = claim {
                (lease, valid_ms) = (Some(tok), ms);
            }
        }
        // What changed in the union since we last looked: what left it
        // leaves `has` now, under the lock leaf pushes are checked under.
        let (entered, left, everything) = {
            let mut has = link.has.lock();
            let mut u = link.union.lock();
            let (entered, left) = u.drain();
            for f in &left {
                has.remove(f);
            }
            if !full {
                // Back before its removal reached the root index: held there.
                has.extend(entered.iter().copied().filter(|f| pushed.contains(f)));
            }
            let everything: Option<Vec<u64>> = full.then(|| u.counts.keys().copied().collect());
            (entered, left, everything)
        };
        for f in &entered {
            pending_removed.remove(f);
        }
        pending_removed.extend(left.iter().copied().filter(|f| pushed.contains(f)));
        let (added, removed): (Vec<u64>, Vec<u64>) = match everything {
            Some(all) => {
                pending_removed.clear();
                (all, Vec::new())
            }
            // A removal is proven by a claim: between claims only add.
            None if claiming => {
                (entered.into_iter().filter(|f| !pushed.contains(f)).collect(), pending_removed.drain().collect())
            }
            None => (entered.into_iter().filter(|f| !pushed.contains(f)).collect(), Vec::new()),
        };
        if !claiming && !full && added.is_empty() {
            continue;
        }
        seq += 1;
        let mut req = Request::new(pb::HintsPush {
            leaf: zone.clone(),
            epoch,
            full,
            added: added.clone(),
            removed: removed.clone(),
            seq,
            lease,
            valid_ms,
        });
        req.set_timeout(CLAIM_MAX);
        match client.push(req).await {
            Ok(r) => {
                let r = r.into_inner();
                let now = Instant::now();
                index.stats.root_pushes.fetch_add(1, Ordering::Relaxed);
                if lease.is_some() {
                    index.stats.root_claims.fetch_add(1, Ordering::Relaxed);
                }
                let new_server = tokens.back().map(|(t, _)| t.server) != r.lease.as_ref().map(|t| t.server);
                if new_server {
                    tokens.clear();
                }
                if let Some(l) = r.lease {
                    tokens.push_back((l, now));
                }
                // Older than a claim could count: of no use.
                while tokens.front().is_some_and(|(_, got)| now.saturating_duration_since(*got) > CLAIM_MAX) {
                    tokens.pop_front();
                }
                {
                    let mut v = link.valid_until.lock();
                    *v = (*v).max(now + margin(CLAIM_MAX));
                }
                if r.need_full {
                    // The root index holds no set of this run.
                    link.has.lock().clear();
                    pushed.clear();
                    full = true;
                    next_claim = now;
                } else {
                    if full {
                        pushed = added.into_iter().collect();
                        *link.has.lock() = pushed.clone();
                    } else {
                        for f in &removed {
                            pushed.remove(f);
                        }
                        pushed.extend(added.iter().copied());
                        link.has.lock().extend(added);
                    }
                    full = false;
                    link.acked.send_modify(|g| *g += 1);
                    if new_server {
                        // What we sent counts for nothing there without a
                        // token of this server: claim again at once.
                        next_claim = now;
                    }
                }
            }
            Err(s) => {
                index.stats.root_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(root_index = %root, zone = %zone, "root index push: {}", s.message());
                full = true;
                next_claim = next_claim.min(Instant::now() + Duration::from_millis(200));
            }
        }
    }
}
