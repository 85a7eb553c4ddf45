//! A zone leaf judging a write by a table older than the router's.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use danaus_assigner::{TableWatcher, ZoneTable};
use danaus_leaf::{Leaf, LeafConfig, LeafOptions};
use danaus_node::zone_leaf::ZoneLeaf;
use danaus_proto::v1 as pb;
use danaus_storage::{MemKv, MemLogDevice, SystemClock};

#[tokio::test]
async fn a_leaf_behind_the_routers_table_asks_for_a_retry_instead_of_refusing() {
    let leaf = Leaf::open(LeafConfig {
        kv: Arc::new(MemKv::new()),
        log: Arc::new(MemLogDevice::new()),
        clock: Arc::new(SystemClock),
        options: LeafOptions::default(),
    })
    .await
    .unwrap();
    // The leaf's table never gets past version 0 (its assigners are away);
    // the router routed by version 3, where the schemas exist.
    let zl = ZoneLeaf::new("leaf-1", "127.0.0.1:1", leaf, TableWatcher::fixed(ZoneTable::default()));
    let series = pb::Series { target_schema: "Host".into(), metric: "/m".into(), ..Default::default() };
    let err = zl.write("t", pb::LeafWriteRequest { table_version: 3, series: vec![series] }).await.unwrap_err();
    // Not a per-series "unknown schema" refusal the client would take as
    // final: the router retries, or another replica takes the write.
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("leaf-1 cannot judge this write yet"), "{}", err.message());
}
