//! Raw reads (`ReadService.Read`) over a zone: each range is read from one
//! ready replica, failing over to another replica when the first cannot
//! answer before it has sent anything.

use std::sync::Arc;

use danaus_node::tenant::tenant;
use danaus_node::zone_leaf::with_tenant;
use danaus_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use crate::remote::Replica;
use crate::zone::{Shared, ZoneMixer};

/// One range to read and who may answer for it, the preferred first.
struct RangeRead {
    range: pb::TargetRange,
    describe: String,
    replicas: Vec<Replica>,
}

impl ZoneMixer {
    /// Streams the series matching `req` from every range of the zone.
    /// Ranges without a ready replica fail the read with `UNAVAILABLE`
    /// (raw reads have no completeness report to list them in), and so
    /// does a zone table that cannot be confirmed current.
    pub fn read(
        &self,
        tenant: &str,
        req: pb::ReadRequest,
    ) -> Result<ReceiverStream<Result<pb::ReadResponse, Status>>, Status> {
        let shared = self.shared().clone();
        let (table, unconfirmed) = shared.plan_table();
        if table.target_schema(tenant, &req.target_schema).is_none() {
            return Err(Status::not_found(format!("unknown target schema {:?}", req.target_schema)));
        }
        if table.metric_schema(tenant, &req.metric).is_none() {
            return Err(Status::not_found(format!("unknown metric {:?}", req.metric)));
        }
        let turn = self.next_turn();
        let mut plan = Vec::new();
        for r in table.ranges.values() {
            let replicas = shared.replicas(&table, r, turn);
            if replicas.is_empty() {
                return Err(Status::unavailable(format!("no ready replica holds {}; retry", r.describe())));
            }
            plan.push(RangeRead {
                range: pb::TargetRange { start: r.start.clone(), end: r.end.clone().unwrap_or_default() },
                describe: r.describe(),
                replicas,
            });
        }
        let (tx, rx) = mpsc::channel(4);
        let tenant = tenant.to_owned();
        let planned = table.version;
        tokio::spawn(async move {
            if let Some(since) = unconfirmed {
                if let Err(e) = shared.confirm_plan(since, planned, None).await {
                    let _ = tx.send(Err(Status::unavailable(format!("{e}; retry")))).await;
                    return;
                }
            }
            for r in plan {
                if let Err(s) = read_range(&shared, &tenant, &req, &r, &tx).await {
                    let _ = tx.send(Err(s)).await;
                    return;
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }

    /// `ReadService` over this mixer.
    pub fn read_service(&self) -> danaus_proto::servers::ReadServer<ZoneRead> {
        pb::read_service_server::ReadServiceServer::new(ZoneRead(self.clone()))
            .max_encoding_message_size(danaus_node::MAX_MESSAGE_BYTES)
    }
}

/// Reads one range, trying its replicas in order until one answers.
async fn read_range(
    shared: &Arc<Shared>,
    tenant: &str,
    req: &pb::ReadRequest,
    r: &RangeRead,
    tx: &mpsc::Sender<Result<pb::ReadResponse, Status>>,
) -> Result<(), Status> {
    let mut last = String::new();
    for replica in &r.replicas {
        let mut client = match shared.client(&replica.addr) {
            Ok(c) => c.max_decoding_message_size(256 << 20),
            Err(e) => {
                last = e;
                continue;
            }
        };
        let mut q = Request::new(pb::LeafReadRequest { read: Some(req.clone()), ranges: vec![r.range.clone()] });
        with_tenant(&mut q, tenant)?;
        let mut stream = match client.read(q).await {
            Ok(s) => s.into_inner(),
            Err(s) if retriable(&s) => {
                shared.suspect(&replica.leaf);
                last = format!("leaf {}: {}", replica.leaf, s.message());
                continue;
            }
            Err(s) => return Err(s),
        };
        let mut sent = false;
        loop {
            match stream.message().await {
                Ok(Some(m)) => {
                    sent = true;
                    if tx.send(Ok(m)).await.is_err() {
                        // The caller went away.
                        return Ok(());
                    }
                }
                Ok(None) => return Ok(()),
                Err(s) if !sent && retriable(&s) => {
                    shared.suspect(&replica.leaf);
                    last = format!("leaf {}: {}", replica.leaf, s.message());
                    break;
                }
                Err(s) => {
                    return Err(Status::new(
                        s.code(),
                        format!("reading {} from leaf {}: {}", r.describe, replica.leaf, s.message()),
                    ))
                }
            }
        }
    }
    Err(Status::unavailable(format!("no replica of {} answered ({last}); retry", r.describe)))
}

fn retriable(s: &Status) -> bool {
    matches!(s.code(), Code::Unavailable | Code::FailedPrecondition | Code::Unknown | Code::Cancelled | Code::Aborted)
}

/// `ReadService` over a [`ZoneMixer`].
#[derive(Clone)]
pub struct ZoneRead(ZoneMixer);

#[tonic::async_trait]
impl pb::read_service_server::ReadService for ZoneRead {
    type ReadStream = ReceiverStream<Result<pb::ReadResponse, Status>>;

    async fn read(&self, req: Request<pb::ReadRequest>) -> Result<Response<Self::ReadStream>, Status> {
        let tenant = tenant(&req)?;
        Ok(Response::new(self.0.read(&tenant, req.into_inner())?))
    }
}
