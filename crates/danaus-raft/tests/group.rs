//! Raft groups of three members over real gRPC on loopback.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use danaus_raft::{BasicNode, Error, GroupConfig, NodeId, RaftGroup, RaftServer, StateMachine};
use danaus_storage::{KvStore, MemKv};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A register map: the test's replicated state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Registers {
    values: BTreeMap<String, i64>,
    applied: u64,
}

#[derive(Debug, Serialize, Deserialize)]
enum Cmd {
    Add(String, i64),
    Fail,
}

impl StateMachine for Registers {
    type Command = Cmd;
    type Reply = Result<i64, String>;

    fn apply(&mut self, cmd: Cmd) -> Result<i64, String> {
        self.applied += 1;
        match cmd {
            Cmd::Add(k, d) => {
                let v = self.values.entry(k).or_default();
                *v += d;
                Ok(*v)
            }
            Cmd::Fail => Err("refused by the state machine".into()),
        }
    }
}

struct Member {
    id: NodeId,
    addr: String,
    kv: Arc<dyn KvStore>,
    group: Option<RaftGroup<Registers>>,
    stop: Option<oneshot::Sender<()>>,
    listener: Option<std::net::TcpListener>,
}

fn config(id: NodeId) -> GroupConfig {
    let mut c = GroupConfig::new("test", id);
    c.heartbeat = Duration::from_millis(50);
    c.election_timeout = Duration::from_millis(250);
    c.snapshot_every = 20;
    c.propose_timeout = Duration::from_secs(3);
    c
}

impl Member {
    async fn start(&mut self) {
        let server = RaftServer::new();
        let group = RaftGroup::<Registers>::start(config(self.id), self.kv.clone(), &server).await.unwrap();
        let listener = match self.listener.take() {
            Some(l) => TcpListener::from_std(l).unwrap(),
            None => TcpListener::bind(&self.addr).await.unwrap(),
        };
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(server.service())
                .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        self.group = Some(group);
        self.stop = Some(tx);
    }

    async fn kill(&mut self) {
        if let Some(g) = self.group.take() {
            g.shutdown().await;
        }
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        // Let the server release its port.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fn g(&self) -> &RaftGroup<Registers> {
        self.group.as_ref().unwrap()
    }
}

async fn cluster() -> Vec<Member> {
    let mut members = Vec::new();
    for id in 1..=3 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap().to_string();
        members.push(Member { id, addr, kv: Arc::new(MemKv::new()), group: None, stop: None, listener: Some(l) });
    }
    let all: BTreeMap<NodeId, BasicNode> = members.iter().map(|m| (m.id, BasicNode::new(&m.addr))).collect();
    for m in &mut members {
        m.start().await;
    }
    for m in &members {
        m.g().initialize(all.clone()).await.unwrap();
    }
    members[0].g().wait_for_leader(Duration::from_secs(10)).await.unwrap();
    members
}

async fn settle(members: &[Member], expect: &Registers) {
    for _ in 0..200 {
        if members.iter().filter(|m| m.group.is_some()).all(|m| m.g().read(|s| s == expect)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for m in members.iter().filter(|m| m.group.is_some()) {
        assert_eq!(&m.g().read(|s| s.clone()), expect, "member {} diverged", m.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_from_any_member_reach_every_member() {
    let members = cluster().await;
    let mut want = Registers::default();
    for i in 0..30i64 {
        let m = &members[(i % 3) as usize];
        let v = m.g().propose(&Cmd::Add("x".into(), i)).await.unwrap().unwrap();
        *want.values.entry("x".into()).or_default() += i;
        want.applied += 1;
        assert_eq!(v, want.values["x"], "reply of proposal {i}");
    }
    // A refusal travels back to the proposer, and still occupies an entry.
    let r = members[1].g().propose(&Cmd::Fail).await.unwrap();
    assert_eq!(r, Err("refused by the state machine".to_owned()));
    want.applied += 1;
    settle(&members, &want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over_and_a_restarted_member_catches_up() {
    let mut members = cluster().await;
    let mut want = Registers::default();
    for i in 0..25 {
        members[0].g().propose(&Cmd::Add("a".into(), 1)).await.unwrap().unwrap();
        want.applied += 1;
        *want.values.entry("a".into()).or_default() += 1;
        let _ = i;
    }
    let old = members[0].g().leader().unwrap();
    let term = members[0].g().metrics().current_term;
    let idx = members.iter().position(|m| m.id == old).unwrap();
    members[idx].kill().await;

    // The survivors elect a new leader in a later term and keep committing.
    let other = (idx + 1) % 3;
    let mut new_leader = None;
    for _ in 0..200 {
        let l = members[other].g().leader();
        if l.is_some() && l != Some(old) {
            new_leader = l;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let new_leader = new_leader.expect("no new leader after the old one was killed");
    assert_ne!(new_leader, old);
    assert!(members[other].g().metrics().current_term > term);
    for _ in 0..25 {
        members[other].g().propose(&Cmd::Add("b".into(), 2)).await.unwrap().unwrap();
        want.applied += 1;
        *want.values.entry("b".into()).or_default() += 2;
    }
    // The old leader restarts from its store (snapshots were taken every
    // 20 entries, so part of its state comes from a snapshot) and catches up.
    members[idx].start().await;
    settle(&members, &want).await;
    assert!(members[idx].g().metrics().snapshot.is_some(), "a snapshot was expected after 50 entries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_proposals_fail_with_a_clear_error() {
    let mut members = cluster().await;
    members[0].g().propose(&Cmd::Add("a".into(), 1)).await.unwrap().unwrap();
    members[1].kill().await;
    members[2].kill().await;
    let err = tokio::time::timeout(Duration::from_secs(30), async {
        // The propose timeout is 3 s in these tests.
        members[0].g().propose(&Cmd::Add("a".into(), 1)).await
    })
    .await
    .expect("propose must give up by its own timeout");
    match err {
        Err(Error::NoLeader { group, .. }) => assert_eq!(group, "test"),
        other => panic!("expected NoLeader, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linearizable_read_is_served_by_the_leader_only_and_sees_every_committed_entry() {
    let mut members = cluster().await;
    members[2].g().propose(&Cmd::Add("r".into(), 5)).await.unwrap().unwrap();
    let leader = members[0].g().wait_for_leader(Duration::from_secs(10)).await.unwrap();
    let li = members.iter().position(|m| m.id == leader).unwrap();
    // The leader answers with a state that holds the entry just committed.
    let v = members[li].g().read_linearizable(Duration::from_secs(3), |s| s.values.get("r").copied()).await.unwrap();
    assert_eq!(v, Some(5));
    // A follower does not answer: its state may trail the leader.
    let fi = (li + 1) % 3;
    let err = members[fi].g().read_linearizable(Duration::from_secs(3), |s| s.applied).await.unwrap_err();
    assert!(matches!(err, Error::NoLeader { .. }), "{err:?}");
    // A leader cut off from its quorum cannot confirm it still leads.
    for i in [fi, (li + 2) % 3] {
        members[i].kill().await;
    }
    let err = members[li].g().read_linearizable(Duration::from_secs(2), |s| s.applied).await.unwrap_err();
    assert!(matches!(err, Error::NoLeader { .. }), "{err:?}");
}
