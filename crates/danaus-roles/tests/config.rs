//! The config service's roles together on loopback: three members and a
//! zone's mirror. A change applied through the mirror is committed by the
//! group and comes back to the mirror; with every member stopped, the
//! mirror — restarted meanwhile — serves the last version from its state
//! directory and refuses changes with a retryable error.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use danaus_config::{Object, Outcome, ZoneSpec};
use danaus_proto::v1 as pb;
use danaus_roles::config_mirror::{self, ConfigMirrorSpec};
use danaus_roles::config_server::{self, ConfigServerSpec};
use danaus_storage::{MemKv, MemStateDir, SystemClock};

fn free() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

async fn client(addr: SocketAddr) -> pb::config_service_client::ConfigServiceClient<tonic::transport::Channel> {
    pb::config_service_client::ConfigServiceClient::connect(format!("http://{addr}")).await.unwrap()
}

fn zone(locations: &[&str]) -> Vec<u8> {
    let z = Object::Zone(ZoneSpec {
        name: "eu".into(),
        locations: locations.iter().map(|l| l.to_string()).collect(),
        routers: vec!["eu-router:7070".into()],
        mixers: vec![],
        index: vec![],
    });
    serde_json::to_vec(&vec![z]).unwrap()
}

async fn version(addr: SocketAddr) -> u64 {
    client(addr).await.get(pb::GetConfigRequest {}).await.unwrap().into_inner().version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_keeps_serving_its_last_version_without_the_config_service() {
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free()).collect();
    let peers: BTreeMap<u64, String> = addrs.iter().enumerate().map(|(i, a)| (i as u64 + 1, a.to_string())).collect();
    let mut members = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let spec = ConfigServerSpec {
            id: i as u64 + 1,
            peers: peers.clone(),
            grpc_addr: *a,
            heartbeat: Duration::from_millis(50),
        };
        members.push(config_server::start(spec, Arc::new(MemKv::new()), Arc::new(SystemClock)));
    }
    let members: Vec<_> = futures::future::join_all(members).await.into_iter().map(Result::unwrap).collect();
    let servers: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let state = MemStateDir::new();
    let mirror_addr = free();
    let spec =
        ConfigMirrorSpec { grpc_addr: mirror_addr, servers: servers.clone(), zone: "eu".into(), assigners: vec![] };
    let (mirror, _) = config_mirror::start(spec.clone(), Arc::new(state.clone()), Arc::new(SystemClock)).await.unwrap();
    assert!((mirror.health)().is_some(), "a mirror holding no configuration says so");

    // A change sent to the mirror is forwarded, committed, and mirrored.
    let apply = |objects_json: Vec<u8>| pb::ApplyConfigRequest {
        objects_json,
        author: "test".into(),
        message: "eu owns eu-*".into(),
        ..Default::default()
    };
    let reply = client(mirror_addr).await.apply(apply(zone(&["eu-*"]))).await.unwrap().into_inner();
    let outcome: Outcome = serde_json::from_slice(&reply.outcome_json).unwrap();
    assert_eq!((outcome.version, outcome.changed), (1, true));
    let waited = tokio::time::Instant::now();
    while version(mirror_addr).await < 1 {
        assert!(waited.elapsed() < Duration::from_secs(10), "the mirror never received version 1");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!((mirror.health)().is_none());

    // Every member stops; the mirror restarts meanwhile.
    for (m, _) in members {
        m.shutdown_within(Duration::ZERO).await.unwrap();
    }
    mirror.shutdown_within(Duration::ZERO).await.unwrap();
    // The old listener may take a moment to let go of the port.
    let state = Arc::new(state);
    let mut tries = 0;
    let (mirror, _) = loop {
        match config_mirror::start(spec.clone(), state.clone(), Arc::new(SystemClock)).await {
            Ok(m) => break m,
            Err(e) if tries < 50 => {
                tries += 1;
                tracing::debug!("restarting the mirror: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("restarting the mirror: {e}"),
        }
    };
    let got = client(mirror_addr).await.get(pb::GetConfigRequest {}).await.unwrap().into_inner();
    assert_eq!(got.version, 1, "the restarted mirror serves what it saved");
    let objects: Vec<Object> = serde_json::from_slice(&got.objects_json).unwrap();
    assert!(matches!(&objects[..], [Object::Zone(z)] if z.locations == ["eu-*"]), "{objects:?}");
    let refused = client(mirror_addr).await.apply(apply(zone(&["eu-*", "ch"]))).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("config service is unreachable"), "{}", refused.message());
    mirror.shutdown_within(Duration::ZERO).await.unwrap();
}
