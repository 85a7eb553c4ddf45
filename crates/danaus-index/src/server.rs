//! The zone index server: every leaf's fingerprints, in memory.
//!
//! A leaf pushes its whole set when it starts (or when the server asks,
//! having restarted itself), then deltas, and at least every second a
//! keepalive. A leaf is only ever excluded while its set is fresh — pushed
//! within `fresh_for` — so a leaf that stopped pushing (dead, partitioned,
//! or its pusher stuck) is asked rather than pruned.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use danaus_proto::v1 as pb;
use parking_lot::RwLock;
use tonic::{Request, Response, Status};

use crate::hints::Requirement;

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
}

struct LeafSet {
    epoch: u64,
    /// The latest push applied.
    seq: u64,
    fps: HashSet<u64>,
    at: Instant,
}

/// The index server.
#[derive(Clone)]
pub struct IndexServer {
    cfg: IndexConfig,
    leaves: Arc<RwLock<HashMap<String, LeafSet>>>,
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
        Self { cfg, leaves: Arc::default(), stats: Arc::default() }
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
        self.stats.pushes.fetch_add(1, Ordering::Relaxed);
        let mut leaves = self.leaves.write();
        let stale = leaves.get(&p.leaf).is_some_and(|l| l.epoch == p.epoch && p.seq != 0 && p.seq <= l.seq);
        if stale {
            return false;
        }
        if p.full {
            let set = LeafSet { epoch: p.epoch, seq: p.seq, fps: p.added.into_iter().collect(), at: Instant::now() };
            leaves.insert(p.leaf, set);
            return false;
        }
        match leaves.get_mut(&p.leaf) {
            Some(l) if l.epoch == p.epoch => {
                l.fps.extend(p.added);
                for r in &p.removed {
                    l.fps.remove(r);
                }
                l.seq = p.seq;
                l.at = Instant::now();
                false
            }
            _ => true,
        }
    }

    /// How long a push counts.
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
                all.get(*l).is_some_and(|s| now.duration_since(s.at) < self.cfg.fresh_for && !req.satisfied_by(&s.fps))
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
        Ok(Response::new(pb::HintsPushReply { need_full: IndexServer::push(self, p), fresh_for_ms }))
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

    #[test]
    fn stale_unknown_and_restarted_leaves_are_never_excluded() {
        let s = IndexServer::new(IndexConfig { fresh_for: Duration::from_millis(200) });
        let push = |leaf: &str, epoch, full, added: Vec<u64>| {
            s.push(pb::HintsPush { leaf: leaf.into(), epoch, full, added, removed: vec![], seq: 0 })
        };
        assert!(!push("a", 1, true, vec![1, 2]));
        assert!(!push("b", 1, true, vec![3]));
        let need = |fps: Vec<u64>| Requirement { clauses: vec![vec![fps]] };
        let leaves = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert_eq!(s.exclude(&need(vec![1]), &leaves), vec!["b"]);
        // A delta from an unknown epoch asks for a full push.
        assert!(push("b", 2, false, vec![1]));
        assert!(!push("a", 1, false, vec![9]));
        assert_eq!(s.exclude(&need(vec![9]), &leaves), vec!["b"]);
        std::thread::sleep(Duration::from_millis(250));
        assert!(s.exclude(&need(vec![42]), &leaves).is_empty(), "stale sets must not prune");
    }

    #[test]
    fn a_push_delayed_past_a_newer_one_changes_nothing() {
        let s = IndexServer::new(IndexConfig::default());
        let push = |seq, full, added: Vec<u64>| {
            s.push(pb::HintsPush { leaf: "a".into(), epoch: 7, full, added, removed: vec![], seq })
        };
        let need = |fp: u64| Requirement { clauses: vec![vec![vec![fp]]] };
        let a = vec!["a".to_owned()];
        // Push 2 (everything, with series 5) arrives before push 1 (sent
        // earlier, before series 5 existed, and given up on by the leaf).
        assert!(!push(2, true, vec![1, 5]));
        assert!(!push(1, true, vec![1]));
        assert!(s.exclude(&need(5), &a).is_empty(), "the late push replaced the newer set");
        assert!(!push(2, false, vec![6]), "a repeated push is ignored, not refused");
        assert_eq!(s.exclude(&need(6), &a), vec!["a"], "a repeated push is not applied twice");
        assert!(!push(3, false, vec![6]));
        assert!(s.exclude(&need(6), &a).is_empty());
    }
}
