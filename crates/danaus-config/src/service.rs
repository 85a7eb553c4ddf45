//! `ConfigService` over gRPC. Reads (`Get`, `Watch`) come from a [`Feed`];
//! changes (`Apply`, `Rollback`) and `History` go to a [`Writer`]: the
//! config group itself on its members ([`GroupWriter`]), the config
//! service on a zone's mirror ([`crate::client::RemoteWriter`]).

use std::sync::Arc;

use danaus_proto::tenant::tenant;
use danaus_proto::v1 as pb;
use danaus_raft::RaftGroup;
use danaus_storage::Clock;
use futures::future::BoxFuture;
use futures::FutureExt as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::feed::Feed;
use crate::object::Object;
use crate::state::{ConfigCommand, ConfigState, Origin, Outcome, Version};

/// Where changes go.
pub trait Writer: Send + Sync + 'static {
    /// Applies (or with `dry_run` plans) `objects` for `tenant`.
    fn apply(
        &self,
        tenant: String,
        objects: Vec<Object>,
        origin: Origin,
        expect_version: Option<u64>,
        dry_run: bool,
    ) -> BoxFuture<'_, Result<Outcome, Status>>;
    /// Rolls `tenant` back to version `to`.
    fn rollback(&self, tenant: String, to: u64, origin: Origin) -> BoxFuture<'_, Result<Outcome, Status>>;
    /// The versions that changed `tenant`'s objects, newest first.
    fn history(&self, tenant: String, limit: usize) -> BoxFuture<'_, Result<Vec<Version>, Status>>;
}

/// Changes proposed to the config group from one of its members.
pub struct GroupWriter(pub Arc<RaftGroup<ConfigState>>);

fn raft_status(e: danaus_raft::Error) -> Status {
    match e {
        danaus_raft::Error::Rejected(m) => Status::invalid_argument(m),
        e => Status::unavailable(format!("the config service cannot commit now: {e}")),
    }
}

fn plan_outcome(state: &ConfigState, tenant: &str, objects: &[Object]) -> Result<Outcome, Status> {
    let changes = state.plan(tenant, objects).map_err(|r| Status::invalid_argument(r.to_string()))?;
    Ok(Outcome {
        version: state.version,
        changed: !changes.is_empty(),
        changes: changes.iter().map(|c| (c.key.clone(), c.verb().to_owned())).collect(),
        kept: Vec::new(),
    })
}

/// Whether a version touched `tenant`'s objects (or only the
/// installation's, which every tenant sees).
fn concerns(v: &Version, tenant: &str) -> bool {
    v.changes.iter().all(|c| c.key.tenant.is_empty() || c.key.tenant == tenant)
        && v.changes.iter().any(|c| c.key.tenant.is_empty() || c.key.tenant == tenant)
}

impl Writer for GroupWriter {
    fn apply(
        &self,
        tenant: String,
        objects: Vec<Object>,
        origin: Origin,
        expect_version: Option<u64>,
        dry_run: bool,
    ) -> BoxFuture<'_, Result<Outcome, Status>> {
        async move {
            if dry_run {
                return self.0.read(|s| plan_outcome(s, &tenant, &objects));
            }
            let cmd = ConfigCommand::Apply { tenant, objects, expect_version, origin };
            self.0.propose(&cmd).await.map_err(raft_status)?.map_err(|r| Status::invalid_argument(r.to_string()))
        }
        .boxed()
    }

    fn rollback(&self, tenant: String, to: u64, origin: Origin) -> BoxFuture<'_, Result<Outcome, Status>> {
        async move {
            let cmd = ConfigCommand::Rollback { tenant, to, origin };
            self.0.propose(&cmd).await.map_err(raft_status)?.map_err(|r| Status::invalid_argument(r.to_string()))
        }
        .boxed()
    }

    fn history(&self, tenant: String, limit: usize) -> BoxFuture<'_, Result<Vec<Version>, Status>> {
        async move {
            Ok(self
                .0
                .read(|s| s.history().iter().rev().filter(|v| concerns(v, &tenant)).take(limit).cloned().collect()))
        }
        .boxed()
    }
}

/// Keeps `feed` at the group's applied state, until the group stops.
pub async fn feed_from_group(group: Arc<RaftGroup<ConfigState>>, feed: Feed) {
    let mut changes = group.changes();
    loop {
        let held = feed.current().version;
        let update = group.read(|s| {
            if s.version <= held {
                return None;
            }
            let after = s.versions_after(held);
            // The history holds every version, so it always covers `held`.
            if after.first().is_some_and(|v| v.number == held + 1) {
                Some(Ok(after.to_vec()))
            } else {
                Some(Err(s.view()))
            }
        });
        match update {
            Some(Ok(versions)) => {
                if let Err(e) = feed.push(&versions) {
                    tracing::error!("the config feed refused the group's versions: {e}");
                }
            }
            Some(Err(view)) => feed.replace(view),
            None => {}
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// The gRPC service.
#[derive(Clone)]
pub struct ConfigApi {
    feed: Feed,
    writer: Arc<dyn Writer>,
    clock: Arc<dyn Clock>,
}

impl ConfigApi {
    /// Serves reads from `feed` and changes through `writer`; versions are
    /// timed by `clock`.
    pub fn new(feed: Feed, writer: Arc<dyn Writer>, clock: Arc<dyn Clock>) -> Self {
        Self { feed, writer, clock }
    }

    /// The tonic service.
    pub fn service(self) -> danaus_proto::servers::ConfigServer<Self> {
        pb::config_service_server::ConfigServiceServer::new(self)
            .max_decoding_message_size(danaus_proto::MAX_CONFIG_BYTES)
            .max_encoding_message_size(danaus_proto::MAX_CONFIG_BYTES)
    }

    fn origin(&self, author: String, message: String) -> Origin {
        let author = if author.is_empty() { "unknown".to_owned() } else { author };
        Origin { author, time: self.clock.now(), message }
    }
}

fn outcome_reply(o: &Outcome) -> Result<Response<pb::ApplyConfigReply>, Status> {
    let outcome_json = serde_json::to_vec(o).map_err(|e| Status::internal(format!("encoding the outcome: {e}")))?;
    Ok(Response::new(pb::ApplyConfigReply { outcome_json }))
}

#[tonic::async_trait]
impl pb::config_service_server::ConfigService for ConfigApi {
    async fn apply(&self, req: Request<pb::ApplyConfigRequest>) -> Result<Response<pb::ApplyConfigReply>, Status> {
        let tenant = tenant(&req)?;
        let r = req.into_inner();
        let objects: Vec<Object> = serde_json::from_slice(&r.objects_json)
            .map_err(|e| Status::invalid_argument(format!("objects_json is not a list of objects: {e}")))?;
        let origin = self.origin(r.author, r.message);
        let expect = (r.expect_version > 0).then_some(r.expect_version);
        let o = self.writer.apply(tenant, objects, origin, expect, r.dry_run).await?;
        outcome_reply(&o)
    }

    async fn rollback(
        &self,
        req: Request<pb::RollbackConfigRequest>,
    ) -> Result<Response<pb::ApplyConfigReply>, Status> {
        let tenant = tenant(&req)?;
        let r = req.into_inner();
        let origin = self.origin(r.author, r.message);
        let o = self.writer.rollback(tenant, r.to_version, origin).await?;
        outcome_reply(&o)
    }

    async fn get(&self, req: Request<pb::GetConfigRequest>) -> Result<Response<pb::GetConfigReply>, Status> {
        let tenant = tenant(&req)?;
        let view = self.feed.current();
        let objects: Vec<&Object> = view.objects_of(&tenant).collect();
        let objects_json =
            serde_json::to_vec(&objects).map_err(|e| Status::internal(format!("encoding the objects: {e}")))?;
        Ok(Response::new(pb::GetConfigReply { version: view.version, objects_json }))
    }

    async fn history(
        &self,
        req: Request<pb::ConfigHistoryRequest>,
    ) -> Result<Response<pb::ConfigHistoryReply>, Status> {
        let tenant = tenant(&req)?;
        let limit = match req.into_inner().limit {
            0 => usize::MAX,
            n => n as usize,
        };
        let versions = self.writer.history(tenant, limit).await?;
        let versions_json = versions
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<_, _>>()
            .map_err(|e| Status::internal(format!("encoding the history: {e}")))?;
        Ok(Response::new(pb::ConfigHistoryReply { versions_json }))
    }

    type WatchStream = ReceiverStream<Result<pb::ConfigUpdate, Status>>;

    async fn watch(&self, req: Request<pb::WatchConfigRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let mut held = req.into_inner().after_version;
        let feed = self.feed.clone();
        let mut changes = feed.subscribe();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                if let Some(u) = feed.update_for(held) {
                    held = u.version;
                    if tx.send(Ok(u)).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
