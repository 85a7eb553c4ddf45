//! `ZoneStageService`: the zone phase of a root mixer's query, run here
//! over the zone's leaves exactly as a query of this mixer's own would run
//! it (one ready replica per range, hedging, pruning, the table check),
//! and sent back with the zone's completeness report.

use danaus_node::tenant::tenant;
use danaus_node::zone_leaf::stage_status;
use danaus_proto::v1 as pb;
use danaus_query::{Cancel, Completeness, ExecCtx, FetchPlan, QueryLimits, Table, ZonePhase};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::zone::ZoneMixer;

/// `ZoneStageService` over a [`ZoneMixer`].
#[derive(Clone)]
pub struct ZoneStage(pub(crate) ZoneMixer);

impl ZoneMixer {
    /// The service a root mixer asks for this zone's phase.
    pub fn stage_service(&self) -> danaus_proto::servers::ZoneStageServer<ZoneStage> {
        pb::zone_stage_service_server::ZoneStageServiceServer::new(ZoneStage(self.clone()))
            .max_encoding_message_size(danaus_node::MAX_MESSAGE_BYTES)
            .max_decoding_message_size(danaus_node::MAX_MESSAGE_BYTES)
    }

    /// Runs `fp`'s leaf and zone stages for `tenant`: the replies a root
    /// mixer receives, in order (tables, the zone output, then done).
    pub async fn run_zone_stage(
        &self,
        tenant: String,
        req: pb::ZoneStageRequest,
    ) -> Result<Vec<pb::ZoneStageReply>, Status> {
        let fp: FetchPlan = rmp_serde::from_slice(&req.plan)
            .map_err(|e| Status::invalid_argument(format!("undecodable zone plan: {e}")))?;
        let stream = req.stream && fp.streams();
        let defaults = self.limits();
        let limits = QueryLimits {
            max_series: if req.max_series == 0 { defaults.max_series } else { req.max_series },
            max_points: if req.max_points == 0 { defaults.max_points } else { req.max_points },
        };
        let deadline =
            (req.timeout_ms > 0).then(|| std::time::Instant::now() + std::time::Duration::from_millis(req.timeout_ms));
        let ctx = ExecCtx::new(tenant, limits, Cancel::new(), deadline);
        let zone = self.zone_sources();
        let mut completeness = Completeness::default();
        let mut tables: Vec<Table> = Vec::new();
        let mut collect = |t: Table| -> danaus_query::Result<()> {
            tables.push(t);
            Ok(())
        };
        let emit: Option<&mut (dyn FnMut(Table) -> danaus_query::Result<()> + Send)> =
            if stream { Some(&mut collect) } else { None };
        let output = zone.run_zone(&fp, &ctx, &mut completeness, emit).await.map_err(|e| stage_status(&e))?;
        let enc = |e: rmp_serde::encode::Error| Status::internal(format!("encoding a zone phase's output: {e}"));
        let mut out = Vec::with_capacity(tables.len() + 2);
        for t in &tables {
            out.push(pb::ZoneStageReply {
                item: Some(pb::zone_stage_reply::Item::Table(rmp_serde::to_vec(t).map_err(enc)?)),
            });
        }
        if let Some(o) = output {
            out.push(pb::ZoneStageReply {
                item: Some(pb::zone_stage_reply::Item::Output(rmp_serde::to_vec(&o).map_err(enc)?)),
            });
        }
        out.push(pb::ZoneStageReply {
            item: Some(pb::zone_stage_reply::Item::Done(pb::ZoneStageDone {
                series_touched: ctx.series_touched(),
                points_touched: ctx.points_touched(),
                completeness: rmp_serde::to_vec(&completeness).map_err(enc)?,
            })),
        });
        Ok(out)
    }
}

#[tonic::async_trait]
impl pb::zone_stage_service_server::ZoneStageService for ZoneStage {
    type RunZoneStageStream = ReceiverStream<Result<pb::ZoneStageReply, Status>>;

    async fn run_zone_stage(
        &self,
        req: Request<pb::ZoneStageRequest>,
    ) -> Result<Response<Self::RunZoneStageStream>, Status> {
        let tenant = tenant(&req)?;
        let replies = self.0.run_zone_stage(tenant, req.into_inner()).await?;
        let (tx, rx) = mpsc::channel(replies.len().max(1));
        for r in replies {
            // The channel holds them all.
            let _ = tx.try_send(Ok(r));
        }
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
