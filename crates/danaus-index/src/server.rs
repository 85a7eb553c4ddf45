//! The zone index server: every leaf's fingerprints, in memory.
//!
//! A leaf pushes its whole set when it starts (or when the server asks,
//! having restarted itself), then deltas, and at least every second a
//! keepalive. A leaf is only ever excluded while its set is fresh, so a
//! leaf that stopped pushing (dead, partitioned, or its pusher stuck) is
//! asked rather than pruned.
//!
//! Freshness is a lease the server grants in its own time: every reply
//! carries a token (this incarnation, the server's monotonic clock now),
//! the leaf's next push carries the latest token it received, and the set
//! that push brings counts until `fresh_for` after the token was issued.
//! The leaf counts its lease from when it *received* the token, which is
//! later, so when the leaf's lease has run out the server's has too —
//! however long a push spent in the network. (Counting from a push's
//! arrival did not have that property: a push sent before a range copy and
//! delayed past the leaf's lease made the server prune the leaf, new series
//! and all, for another `fresh_for`; simulation seeds 19335 and 37677.) A
//! push with no token, or one from another incarnation, is applied but
//! prunes nothing until a push with a token of this incarnation arrives.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use danaus_proto::v1 as pb;
use parking_lot::RwLock;
use tonic::{Request, Response, Status};

use crate::hints::Requirement;
use crate::root::RootLink;

/// How the index server runs.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// A leaf's set counts only this long after its last push.
    pub fresh_for: Duration,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self { fresh_for: Duration::from_secs(3) }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct IndexStats {
    /// Pushes received.
    pub pushes: AtomicU64,
    /// Exclusion questions answered.
    pub questions: AtomicU64,
    /// Leaves excluded in answers.
    pub excluded: AtomicU64,
    /// Leaf pushes held until the root index had their new fingerprints.
    pub root_waits: AtomicU64,
    /// Pushes to the root index that it acknowledged.
    pub root_pushes: AtomicU64,
    /// Of those, pushes that claimed the zone covered (the root index may
    /// prune the zone by them).
    pub root_claims: AtomicU64,
    /// Pushes to the root index that failed.
    pub root_failures: AtomicU64,
}

struct LeafSet {
    epoch: u64,
    /// The latest push applied.
    seq: u64,
    fps: HashSet<u64>,
    /// Until when the set may prune: `fresh_for` after the server issued
    /// the token the latest push carried; `None` without a valid token.
    fresh_until: Option<Instant>,
}

/// The index server.
#[derive(Clone)]
pub struct IndexServer {
    cfg: IndexConfig,
    /// This incarnation, in lease tokens.
    incarnation: u64,
    /// The origin of lease tokens' times.
    started: Instant,
    leaves: Arc<RwLock<HashMap<String, LeafSet>>>,
    /// The zone's claim to the root index, when this server makes one.
    root: Option<Arc<RootLink>>,
    /// Counters.
    pub stats: Arc<IndexStats>,
}

impl std::fmt::Debug for IndexServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexServer").field("leaves", &self.leaves.read().len()).finish()
    }
}

impl IndexServer {
    /// An empty index.
    pub fn new(cfg: IndexConfig) -> Self {
        // Distinct across restarts of one server (and, with overwhelming
        // odds, across servers): tokens of another run are never honoured.
        let incarnation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| (d.as_nanos() as u64).max(1));
        Self { cfg, incarnation, started: Instant::now(), leaves: Arc::default(), root: None, stats: Arc::default() }
    }

    /// An empty zone index that vouches for its zone to a root index
    /// (see [`crate::root`]): pushes bringing fingerprints the root index
    /// lacks are answered once it has them, or once what it holds no
    /// longer counts. Run [`crate::root::run`] to push.
    pub fn with_root(cfg: IndexConfig) -> Self {
        Self { root: Some(Arc::new(RootLink::new())), ..Self::new(cfg) }
    }

    /// This incarnation (changes when the server restarts).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The link to the root index, if this server has one.
    pub(crate) fn root_link(&self) -> Option<&Arc<RootLink>> {
        self.root.as_ref()
    }

    /// How long the held sets cover a zone whose ranges have these read
    /// sets (each range's ready replicas, which all hold everything
    /// acknowledged in it): every range needs a replica whose set is
    /// fresh, and the cover lasts until the first range's last fresh
    /// replica goes stale. `None` if some range has no fresh replica.
    pub fn covers(&self, read_sets: &[Vec<String>]) -> Option<Duration> {
        let now = Instant::now();
        let all = self.leaves.read();
        let mut until: Option<Instant> = None;
        for replicas in read_sets {
            let best =
                replicas.iter().filter_map(|l| all.get(l).and_then(|s| s.fresh_until)).filter(|f| now < *f).max()?;
            until = Some(until.map_or(best, |u| u.min(best)));
        }
        // A zone with no ranges holds nothing: it is covered (by nothing)
        // for as long as anything is.
        Some(until.map_or(self.cfg.fresh_for, |u| u.saturating_duration_since(now)))
    }

    /// A lease token for a reply: this incarnation and the time now.
    pub fn lease(&self) -> pb::HintsLease {
        let issued_ns = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1;
        pb::HintsLease { server: self.incarnation, issued_ns }
    }

    /// When a push carrying `token` stops counting: `None` if the token
    /// is absent, from another incarnation, or not one this server issued.
    /// A push that says its set is valid for less (`valid_ms`, non-zero)
    /// counts that long after the token was issued.
    fn fresh_until(&self, token: Option<&pb::HintsLease>, valid_ms: u64) -> Option<Instant> {
        let t = token.filter(|t| t.server == self.incarnation && t.issued_ns > 0)?;
        let issued = self.started.checked_add(Duration::from_nanos(t.issued_ns - 1))?;
        if issued > Instant::now() {
            return None;
        }
        let fresh = match valid_ms {
            0 => self.cfg.fresh_for,
            ms => self.cfg.fresh_for.min(Duration::from_millis(ms)),
        };
        issued.checked_add(fresh)
    }

    /// The gRPC service.
    pub fn service(&self) -> danaus_proto::servers::IndexServer<Self> {
        pb::index_service_server::IndexServiceServer::new(self.clone()).max_decoding_message_size(256 << 20)
    }

    /// Fingerprints held, over all leaves.
    pub fn fingerprints(&self) -> usize {
        self.leaves.read().values().map(|l| l.fps.len()).sum()
    }

    /// Applies a push; whether the server needs a full one. A push older
    /// than one already applied (same epoch, lower or equal `seq`) changes
    /// nothing: a full push delayed past a newer one would otherwise
    /// replace the set with one that lacks newer series.
    pub fn push(&self, p: pb::HintsPush) -> bool {
        self.apply_push(p).0
    }

    /// Applies a push: whether the server needs a full one, and whether
    /// this one was applied.
    fn apply_push(&self, p: pb::HintsPush) -> (bool, bool) {
        self.stats.pushes.fetch_add(1, Ordering::Relaxed);
        let mut leaves = self.leaves.write();
        let stale = leaves.get(&p.leaf).is_some_and(|l| l.epoch == p.epoch && p.seq != 0 && p.seq <= l.seq);
        if stale {
            return (false, false);
        }
        let fresh_until = self.fresh_until(p.lease.as_ref(), p.valid_ms);
        // The zone's union, kept by reference counts for the root index.
        let mut union = self.root.as_ref().map(|r| r.union.lock());
        if p.full {
            let set = LeafSet { epoch: p.epoch, seq: p.seq, fps: p.added.into_iter().collect(), fresh_until };
            if let Some(u) = union.as_mut() {
                set.fps.iter().for_each(|f| u.add(*f));
            }
            if let Some(old) = leaves.insert(p.leaf, set) {
                if let Some(u) = union.as_mut() {
                    old.fps.iter().for_each(|f| u.remove(*f));
                }
            }
            return (false, true);
        }
        match leaves.get_mut(&p.leaf) {
            Some(l) if l.epoch == p.epoch => {
                for f in p.added {
                    if l.fps.insert(f) {
                        if let Some(u) = union.as_mut() {
                            u.add(f);
                        }
                    }
                }
                for r in &p.removed {
                    if l.fps.remove(r) {
                        if let Some(u) = union.as_mut() {
                            u.remove(*r);
                        }
                    }
                }
                l.seq = p.seq;
                l.fresh_until = fresh_until;
                (false, true)
            }
            _ => (true, false),
        }
    }

    /// How long a push counts after the token it carries was issued.
    pub fn fresh_for(&self) -> Duration {
        self.cfg.fresh_for
    }

    /// The leaves among `leaves` whose fresh fingerprints fail `req`.
    pub fn exclude(&self, req: &Requirement, leaves: &[String]) -> Vec<String> {
        self.stats.questions.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let all = self.leaves.read();
        let out: Vec<String> = leaves
            .iter()
            .filter(|l| {
                all.get(*l).is_some_and(|s| s.fresh_until.is_some_and(|f| now < f) && !req.satisfied_by(&s.fps))
            })
            .cloned()
            .collect();
        self.stats.excluded.fetch_add(out.len() as u64, Ordering::Relaxed);
        out
    }
}

/// A requirement on the wire.
pub fn requirement_to(r: &Requirement) -> Vec<pb::HintClause> {
    r.clauses
        .iter()
        .map(|c| pb::HintClause {
            alternatives: c.iter().map(|a| pb::FingerprintSet { fingerprints: a.clone() }).collect(),
        })
        .collect()
}

/// A requirement from the wire.
pub fn requirement_from(clauses: Vec<pb::HintClause>) -> Requirement {
    Requirement {
        clauses: clauses.into_iter().map(|c| c.alternatives.into_iter().map(|a| a.fingerprints).collect()).collect(),
    }
}

#[tonic::async_trait]
impl pb::index_service_server::IndexService for IndexServer {
    async fn push(&self, req: Request<pb::HintsPush>) -> Result<Response<pb::HintsPushReply>, Status> {
        let p = req.into_inner();
        if p.leaf.is_empty() {
            return Err(Status::invalid_argument("a hints push needs the leaf's name"));
        }
        let fresh_for_ms = u64::try_from(self.cfg.fresh_for.as_millis()).unwrap_or(u64::MAX);
        // Fingerprints the root index may lack: the leaf acknowledges the
        // series they belong to once we answer, so we answer when the
        // root index has them (or its view of this zone no longer counts).
        let lease = Some(self.lease());
        let need_full = match &self.root {
            None => IndexServer::push(self, p),
            Some(root) => {
                let added = p.added.clone();
                let mut need_full = false;
                let (novel, until) = root.apply(&added, || {
                    let (n, applied) = self.apply_push(p);
                    need_full = n;
                    applied
                });
                if !novel.is_empty() {
                    root.wait_for(novel, until, &self.stats).await;
                }
                need_full
            }
        };
        Ok(Response::new(pb::HintsPushReply { need_full, fresh_for_ms, lease }))
    }

    async fn exclude(&self, req: Request<pb::ExcludeRequest>) -> Result<Response<pb::ExcludeReply>, Status> {
        let r = req.into_inner();
        let excluded = IndexServer::exclude(self, &requirement_from(r.clauses), &r.leaves);
        Ok(Response::new(pb::ExcludeReply { excluded }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn push(s: &IndexServer, leaf: &str, epoch: u64, seq: u64, full: bool, added: Vec<u64>) -> bool {
        let lease = Some(s.lease());
        s.push(pb::HintsPush { leaf: leaf.into(), epoch, full, added, removed: vec![], seq, lease, valid_ms: 0 })
    }

    fn need(fps: Vec<u64>) -> Requirement {
        Requirement { clauses: vec![vec![fps]] }
    }

    #[test]
    fn stale_unknown_and_restarted_leaves_are_never_excluded() {
        let s = IndexServer::new(IndexConfig { fresh_for: Duration::from_millis(200) });
        assert!(!push(&s, "a", 1, 0, true, vec![1, 2]));
        assert!(!push(&s, "b", 1, 0, true, vec![3]));
        let leaves = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert_eq!(s.exclude(&need(vec![1]), &leaves), vec!["b"]);
        // A delta from an unknown epoch asks for a full push.
        assert!(push(&s, "b", 2, 0, false, vec![1]));
        assert!(!push(&s, "a", 1, 0, false, vec![9]));
        assert_eq!(s.exclude(&need(vec![9]), &leaves), vec!["b"]);
        std::thread::sleep(Duration::from_millis(250));
        assert!(s.exclude(&need(vec![42]), &leaves).is_empty(), "stale sets must not prune");
    }

    #[test]
    fn the_zone_union_follows_every_leaf_set() {
        let s = IndexServer::with_root(IndexConfig::default());
        let drain = |s: &IndexServer| {
            let (mut a, mut r) = s.root_link().unwrap().union.lock().drain();
            a.sort_unstable();
            r.sort_unstable();
            (a, r)
        };
        push(&s, "a", 1, 1, true, vec![1, 2]);
        push(&s, "b", 1, 1, true, vec![2, 3]);
        assert_eq!(drain(&s), (vec![1, 2, 3], vec![]));
        // `a` restarts holding only 2: 1 leaves the union, 2 stays (b).
        push(&s, "a", 2, 1, true, vec![2]);
        assert_eq!(drain(&s), (vec![], vec![1]));
        let delta = |seq, added: Vec<u64>, removed: Vec<u64>| pb::HintsPush {
            leaf: "b".into(),
            epoch: 1,
            full: false,
            added,
            removed,
            seq,
            lease: Some(s.lease()),
            valid_ms: 0,
        };
        // A fingerprint added twice by one leaf counts once.
        s.push(delta(2, vec![3, 4, 4], vec![2]));
        assert_eq!(drain(&s), (vec![4], vec![]));
        s.push(delta(3, vec![], vec![3, 4]));
        s.push(pb::HintsPush { leaf: "a".into(), epoch: 2, seq: 2, ..delta(0, vec![], vec![2]) });
        assert_eq!(drain(&s), (vec![], vec![2, 3, 4]));
        // Out and back in between two looks: the pusher sees it in.
        s.push(delta(4, vec![7], vec![]));
        s.push(delta(5, vec![], vec![7]));
        s.push(delta(6, vec![7], vec![]));
        assert_eq!(drain(&s), (vec![7], vec![]));
    }

    #[test]
    fn a_push_delayed_past_a_newer_one_changes_nothing() {
        let s = IndexServer::new(IndexConfig::default());
        let a = vec!["a".to_owned()];
        // Push 2 (everything, with series 5) arrives before push 1 (sent
        // earlier, before series 5 existed, and given up on by the leaf).
        assert!(!push(&s, "a", 7, 2, true, vec![1, 5]));
        assert!(!push(&s, "a", 7, 1, true, vec![1]));
        assert!(s.exclude(&need(vec![5]), &a).is_empty(), "the late push replaced the newer set");
        assert!(!push(&s, "a", 7, 2, false, vec![6]), "a repeated push is ignored, not refused");
        assert_eq!(s.exclude(&need(vec![6]), &a), vec!["a"], "a repeated push is not applied twice");
        assert!(!push(&s, "a", 7, 3, false, vec![6]));
        assert!(s.exclude(&need(vec![6]), &a).is_empty());
    }

    /// The race of simulation seeds 19335 and 37677: a leaf's keepalive,
    /// sent with the set it held then, is delayed in the network past the
    /// leaf's lease; the leaf meanwhile gains a series (a range copy) and,
    /// its lease over, acknowledges it. The late push must not make the
    /// server prune the leaf by the old set: its token is too old.
    #[test]
    fn a_late_push_counts_only_from_its_token() {
        let fresh = Duration::from_millis(300);
        let s = IndexServer::new(IndexConfig { fresh_for: fresh });
        let a = vec!["a".to_owned()];
        let token = s.lease();
        // Sent now with the old set; arrives after the token's lease ended.
        std::thread::sleep(fresh + Duration::from_millis(50));
        let late = pb::HintsPush {
            leaf: "a".into(),
            epoch: 1,
            full: true,
            added: vec![1],
            removed: vec![],
            seq: 1,
            lease: Some(token),
            valid_ms: 0,
        };
        assert!(!s.push(late));
        assert!(s.exclude(&need(vec![5]), &a).is_empty(), "a late push made its old set prune");
        // A push with a current token prunes again.
        assert!(!push(&s, "a", 1, 2, false, vec![]));
        assert_eq!(s.exclude(&need(vec![5]), &a), vec!["a"]);
    }

    #[test]
    fn pushes_without_a_token_of_this_server_never_prune() {
        let s = IndexServer::new(IndexConfig::default());
        let a = vec!["a".to_owned()];
        let mut p = pb::HintsPush {
            leaf: "a".into(),
            epoch: 1,
            full: true,
            added: vec![1],
            removed: vec![],
            seq: 1,
            lease: None,
            valid_ms: 0,
        };
        assert!(!s.push(p.clone()));
        assert!(s.exclude(&need(vec![5]), &a).is_empty(), "a first push (no token) pruned");
        p.seq = 2;
        p.lease = Some(pb::HintsLease { server: s.incarnation.wrapping_add(1), ..s.lease() });
        assert!(!s.push(p.clone()));
        assert!(s.exclude(&need(vec![5]), &a).is_empty(), "a token of another incarnation pruned");
        p.seq = 3;
        p.lease = Some(pb::HintsLease { issued_ns: u64::MAX, ..s.lease() });
        assert!(!s.push(p.clone()));
        assert!(s.exclude(&need(vec![5]), &a).is_empty(), "a token from the future pruned");
        p.seq = 4;
        p.lease = Some(s.lease());
        assert!(!s.push(p));
        assert_eq!(s.exclude(&need(vec![5]), &a), vec!["a"]);
    }
}
