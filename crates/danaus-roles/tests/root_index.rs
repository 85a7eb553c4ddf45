//! The root index: a zone index server that can prove its hints complete
//! claims its zone at the root index, which then tells the root mixer to
//! skip the zone for fetches its hints rule out — and a series the zone
//! acknowledges afterwards is never skipped: the leaf's push that brings
//! its hints is answered only once the root index holds them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use danaus_assigner::{LeafEntry, Range, Replica, ReplicaState, TableWatcher, ZoneTable};
use danaus_index::{IndexConfig, IndexServer, Requirement};
use danaus_proto::v1 as pb;
use danaus_roles::index::{start_root, RootIndexSpec};
use pb::index_service_server::IndexService;

/// A zone table of one range, read from `ready` (and written to `lagging`).
fn table(ready: &str, lagging: &str) -> ZoneTable {
    let mut t = ZoneTable { version: 3, replication: 2, next_range_id: 2, ..ZoneTable::default() };
    for l in [ready, lagging] {
        t.leaves.insert(l.into(), LeafEntry { addr: format!("{l}:1"), accepting: true });
    }
    let replicas = vec![
        Replica { leaf: ready.into(), state: ReplicaState::Ready },
        Replica { leaf: lagging.into(), state: ReplicaState::Lagging },
    ];
    t.ranges.insert(
        Vec::new(),
        Range { id: 1, start: Vec::new(), end: None, replicas, changed_at: 2, read_set_shrunk_at: 0 },
    );
    t
}

fn need(fp: u64) -> Requirement {
    Requirement { clauses: vec![vec![vec![fp]]] }
}

/// A leaf's push through the zone index server's gRPC handler (which holds
/// the answer while the root index lacks new fingerprints).
async fn leaf_push(zone: &IndexServer, leaf: &str, seq: u64, added: Vec<u64>) {
    let p = pb::HintsPush {
        leaf: leaf.into(),
        epoch: 1,
        full: seq == 1,
        added,
        removed: vec![],
        seq,
        lease: Some(zone.lease()),
        valid_ms: 0,
    };
    let r = tokio::time::timeout(Duration::from_secs(20), IndexService::push(zone, tonic::Request::new(p)))
        .await
        .expect("a leaf push was held for longer than any claim counts");
    assert!(!r.unwrap().into_inner().need_full);
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 10 s: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_zone_is_skipped_and_never_once_it_holds_a_matching_series() {
    let (running, root) = start_root(RootIndexSpec { grpc_addr: "127.0.0.1:0".parse().unwrap() }).await.unwrap();
    let addr = running.grpc_addr.to_string();
    let z = |n: &str| vec![n.to_owned()];

    // z1: its only range is read from leaf `a`, which pushes {1, 2}.
    let z1 = IndexServer::with_root(IndexConfig::default());
    tokio::spawn(danaus_index::root::run(z1.clone(), "z1".into(), addr.clone(), TableWatcher::fixed(table("a", "b"))));
    leaf_push(&z1, "a", 1, vec![1, 2]).await;
    eventually("z1 claimed and skipped for a fingerprint it lacks", || root.exclude(&need(5), &z("z1")) == z("z1"))
        .await;
    assert!(root.exclude(&need(1), &z("z1")).is_empty(), "z1 was skipped for a fingerprint it holds");

    // A series with fingerprint 5 arrives: the push bringing it is
    // answered (and the series acknowledged) only once the root index has
    // it, so a query right after must ask z1.
    leaf_push(&z1, "a", 2, vec![5]).await;
    assert!(root.exclude(&need(5), &z("z1")).is_empty(), "z1 skipped for a series it acknowledged");
    assert!(z1.stats.root_waits.load(Ordering::Relaxed) >= 1, "the push was not held for the root index");

    // z2's range is read from `c`, which never pushes (only the lagging
    // replica `d` does): z2 cannot prove its hints complete and is never
    // skipped, though the root index holds its union.
    let z2 = IndexServer::with_root(IndexConfig::default());
    tokio::spawn(danaus_index::root::run(z2.clone(), "z2".into(), addr.clone(), TableWatcher::fixed(table("c", "d"))));
    leaf_push(&z2, "d", 1, vec![1]).await;
    eventually("z2's union pushed", || z2.stats.root_pushes.load(Ordering::Relaxed) >= 3).await;
    assert!(root.exclude(&need(5), &z("z2")).is_empty(), "z2 was skipped without a proof");
    assert_eq!(z2.stats.root_claims.load(Ordering::Relaxed), 0);

    // With the root index unreachable, a zone waits for it no longer than
    // a claim could count: pushes are answered.
    let z3 = IndexServer::with_root(IndexConfig::default());
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    tokio::spawn(danaus_index::root::run(z3.clone(), "z3".into(), dead, TableWatcher::fixed(table("a", "b"))));
    leaf_push(&z3, "a", 1, vec![1, 2, 3]).await;
    leaf_push(&z3, "a", 2, vec![4]).await;
    drop(running);
}
