//! The ingestion router sends series of other zones' locations to those
//! zones' routers and maps their answers back to the caller's positions.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;

use danaus_assigner::{TableWatcher, TenantSchemas, ZoneClient, ZoneTable};
use danaus_model::{FieldDef, FieldType, TargetSchema};
use danaus_proto::v1 as pb;
use danaus_router::{IngestRouter, LeafRouter, RouterConfig, ZoneMap};
use parking_lot::Mutex;
use tonic::{Request, Response, Status};

#[derive(Clone, Default)]
struct OtherZone {
    got: Arc<Mutex<Vec<(String, String)>>>,
}

#[tonic::async_trait]
impl pb::ingest_service_server::IngestService for OtherZone {
    async fn write(&self, req: Request<pb::WriteRequest>) -> Result<Response<pb::WriteResponse>, Status> {
        let tenant = req.metadata().get("x-danaus-tenant").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let series = req.into_inner().series;
        for s in &series {
            let Some(pb::field_value::Value::StringValue(loc)) = &s.target_fields["loc"].value else { panic!() };
            self.got.lock().push((tenant.clone(), loc.clone()));
        }
        // The second series it gets is refused.
        Ok(Response::new(pb::WriteResponse {
            accepted_points: 1,
            errors: vec![pb::SeriesError {
                index: 1,
                series: "T::/m".into(),
                message: "refused over there".into(),
                rejected_points: vec![0],
                code: pb::SeriesErrorCode::Conflict as i32,
            }],
        }))
    }
}

/// An assigner leader that only answers which table version is committed.
struct Leader(u64);

#[tonic::async_trait]
impl pb::assigner_service_server::AssignerService for Leader {
    type WatchStream = tokio_stream::Empty<Result<pb::ZoneTableUpdate, Status>>;

    async fn watch(&self, _: Request<pb::WatchTableRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn heartbeat(&self, _: Request<pb::LeafHeartbeat>) -> Result<Response<pb::HeartbeatReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn propose(&self, _: Request<pb::ZoneProposal>) -> Result<Response<pb::ZoneProposalReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn latest_version(
        &self,
        _: Request<pb::LatestVersionRequest>,
    ) -> Result<Response<pb::LatestVersionReply>, Status> {
        Ok(Response::new(pb::LatestVersionReply { version: self.0 }))
    }
}

fn series(loc: &str, schema: &str) -> pb::Series {
    pb::Series {
        target_schema: schema.into(),
        target_fields: HashMap::from([(
            "loc".into(),
            pb::FieldValue { value: Some(pb::field_value::Value::StringValue(loc.into())) },
        )]),
        metric: "/m".into(),
        metric_fields: HashMap::new(),
        points: vec![pb::Point {
            start_time: None,
            end_time: 1,
            value: Some(pb::Value { value: Some(pb::value::Value::DoubleValue(1.0)) }),
        }],
    }
}

#[tokio::test]
async fn other_zones_series_are_forwarded_and_errors_keep_their_positions() {
    let other = OtherZone::default();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let svc = other.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(pb::ingest_service_server::IngestServiceServer::new(svc))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
            .await
            .unwrap();
    });
    let mut schemas = TenantSchemas::default();
    schemas.targets.insert(
        "T".into(),
        TargetSchema {
            name: "T".into(),
            fields: vec![FieldDef::new("loc", FieldType::String)],
            location_field: "loc".into(),
        },
    );
    let mut table = ZoneTable { version: 1, ..ZoneTable::default() };
    table.schemas.insert("acme".into(), schemas);
    let zones = ZoneMap::from_yaml(&format!(
        "local: a\nzones:\n- name: a\n  locations: ['a-*']\n- name: b\n  routers: ['{addr}']\n  locations: ['b-*']\n"
    ))
    .unwrap();
    let batch = vec![series("b-1", "T"), series("a-1", "Nope"), series("b-2", "T")];
    // A series names a schema the router's table lacks: the table may be
    // behind. With no leader to confirm it is not, nothing is written (a
    // location read through a stale table would send series to the wrong
    // zone) and the caller is told to retry.
    let nobody = Arc::new(ZoneClient::new(vec![]));
    let leaves = LeafRouter::new(TableWatcher::fixed(table.clone()), nobody.clone(), RouterConfig::default());
    let err = IngestRouter::new(leaves, zones.clone(), nobody).write("acme", batch.clone()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("may be behind"), "{}", err.message());
    assert!(other.got.lock().is_empty());

    // The leader confirms version 1 is current: the unknown schema is
    // refused for good, the rest is forwarded.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let leader = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(pb::assigner_service_server::AssignerServiceServer::new(Leader(1)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
            .await
            .unwrap();
    });
    let zone = Arc::new(ZoneClient::new(vec![leader]));
    let leaves = LeafRouter::new(TableWatcher::fixed(table), zone.clone(), RouterConfig::default());
    let router = IngestRouter::new(leaves, zones, zone);
    // Positions: 0 → zone b; 1 → unknown schema, answered here; 2 → zone b.
    let r = router.write("acme", batch).await.unwrap();
    assert_eq!(*other.got.lock(), vec![("acme".into(), "b-1".into()), ("acme".into(), "b-2".into())]);
    assert_eq!(r.accepted_points, 1);
    let errs: Vec<(u32, i32)> = r.errors.iter().map(|e| (e.index, e.code)).collect();
    assert_eq!(errs, vec![(1, pb::SeriesErrorCode::NotFound as i32), (2, pb::SeriesErrorCode::Conflict as i32)]);
}
