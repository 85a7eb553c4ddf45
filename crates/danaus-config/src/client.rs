//! Following and changing the configuration from outside the config group:
//! [`follow`] keeps a [`Feed`] at the newest committed version any of the
//! given servers (config service members, or a zone's mirrors) streams,
//! saving every version it reaches in a state directory so a restart
//! begins from the last good one ([`load_saved`]); [`RemoteWriter`]
//! forwards changes to the config service.

use std::time::Duration;

use danaus_proto::channels::Channels;
use danaus_proto::tenant::TENANT_HEADER;
use danaus_proto::v1 as pb;
use danaus_storage::SharedStateDir;
use futures::future::BoxFuture;
use futures::FutureExt as _;
use pb::config_service_client::ConfigServiceClient;
use tonic::{Code, Request, Status};

use crate::feed::{apply_update, Feed};
use crate::object::Object;
use crate::service::Writer;
use crate::state::{Origin, Outcome, Version};
use crate::view::ConfigView;

/// The blob a follower saves its view in.
pub const SAVED_VIEW: &str = "config.json";

/// The view saved in `dir`, if a readable one is there.
pub fn load_saved(dir: &SharedStateDir) -> Option<ConfigView> {
    let bytes = match dir.load(SAVED_VIEW) {
        Ok(b) => b?,
        Err(e) => {
            tracing::warn!("ignoring an unreadable saved configuration: {e}");
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!("ignoring a damaged saved configuration: {e}");
            None
        }
    }
}

/// Keeps `feed` following `servers` (host:port), one at a time, moving on
/// when one goes away; saves each version reached in `save`. Returns when
/// every receiver of the feed is gone.
pub async fn follow(servers: Vec<String>, feed: Feed, save: Option<SharedStateDir>) {
    if let Some(dir) = save {
        let mut rx = feed.subscribe();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let view = rx.borrow_and_update().clone();
                let Ok(bytes) = serde_json::to_vec(&*view) else { continue };
                let d = dir.clone();
                match danaus_storage::run_blocking(move || d.save(SAVED_VIEW, &bytes)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) | Err(e) => tracing::warn!(version = view.version, "saving the configuration: {e}"),
                }
            }
        });
    }
    if servers.is_empty() {
        tracing::error!("no config service addresses: the configuration stays as it is");
        return;
    }
    let mut backoff = Duration::from_millis(50);
    for i in 0usize.. {
        let addr = &servers[i % servers.len()];
        match stream_from(addr, &feed).await {
            Ok(()) => backoff = Duration::from_millis(50),
            Err(e) => {
                tracing::debug!(server = %addr, "following the configuration: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn stream_from(addr: &str, feed: &Feed) -> Result<(), String> {
    let channel = danaus_proto::channels::endpoint(addr)?.connect().await.map_err(|e| format!("connect: {e}"))?;
    let mut client = ConfigServiceClient::new(channel).max_decoding_message_size(danaus_proto::MAX_CONFIG_BYTES);
    let after_version = feed.current().version;
    let mut stream =
        client.watch(pb::WatchConfigRequest { after_version }).await.map_err(|s| s.message().to_owned())?.into_inner();
    while let Some(u) = stream.message().await.map_err(|s| s.message().to_owned())? {
        if u.version <= feed.current().version {
            continue;
        }
        apply_update(feed, &u).map_err(|e| format!("from {addr}: {e}"))?;
        tracing::debug!(server = %addr, version = u.version, "configuration");
    }
    Ok(())
}

/// Forwards changes to the config service's members, trying each.
#[derive(Debug, Default)]
pub struct RemoteWriter {
    servers: Vec<String>,
    channels: Channels,
}

impl RemoteWriter {
    /// A writer to the members at `servers` (host:port).
    pub fn new(servers: Vec<String>) -> Self {
        Self { servers, channels: Channels::default() }
    }

    async fn each<T, F, Fut>(&self, tenant: &str, call: F) -> Result<T, Status>
    where
        F: Fn(
            ConfigServiceClient<tonic::transport::Channel>,
            tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
        ) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let t: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
            tenant.parse().map_err(|_| Status::invalid_argument(format!("bad tenant {tenant:?}")))?;
        let mut last = Status::unavailable("no config service addresses configured");
        for addr in &self.servers {
            let channel = self.channels.get(addr).map_err(Status::invalid_argument)?;
            let client = ConfigServiceClient::new(channel)
                .max_decoding_message_size(danaus_proto::MAX_CONFIG_BYTES)
                .max_encoding_message_size(danaus_proto::MAX_CONFIG_BYTES);
            match call(client, t.clone()).await {
                Ok(v) => return Ok(v),
                Err(s) if matches!(s.code(), Code::InvalidArgument | Code::FailedPrecondition) => return Err(s),
                Err(s) => last = s,
            }
        }
        Err(Status::unavailable(format!(
            "the config service is unreachable ({}); the zone keeps its last configuration, but cannot change it now",
            last.message()
        )))
    }
}

fn request<T>(msg: T, tenant: tonic::metadata::MetadataValue<tonic::metadata::Ascii>) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(TENANT_HEADER, tenant);
    r.set_timeout(Duration::from_secs(20));
    r
}

fn outcome(r: pb::ApplyConfigReply) -> Result<Outcome, Status> {
    serde_json::from_slice(&r.outcome_json).map_err(|e| Status::internal(format!("an undecodable outcome: {e}")))
}

impl Writer for RemoteWriter {
    fn apply(
        &self,
        tenant: String,
        objects: Vec<Object>,
        origin: Origin,
        expect_version: Option<u64>,
        dry_run: bool,
    ) -> BoxFuture<'_, Result<Outcome, Status>> {
        async move {
            let objects_json = serde_json::to_vec(&objects).map_err(|e| Status::internal(e.to_string()))?;
            let msg = pb::ApplyConfigRequest {
                objects_json,
                author: origin.author,
                message: origin.message,
                dry_run,
                expect_version: expect_version.unwrap_or(0),
            };
            self.each(&tenant, |mut c, t| {
                let msg = msg.clone();
                async move { outcome(c.apply(request(msg, t)).await?.into_inner()) }
            })
            .await
        }
        .boxed()
    }

    fn rollback(&self, tenant: String, to: u64, origin: Origin) -> BoxFuture<'_, Result<Outcome, Status>> {
        async move {
            let msg = pb::RollbackConfigRequest { to_version: to, author: origin.author, message: origin.message };
            self.each(&tenant, |mut c, t| {
                let msg = msg.clone();
                async move { outcome(c.rollback(request(msg, t)).await?.into_inner()) }
            })
            .await
        }
        .boxed()
    }

    fn history(&self, tenant: String, limit: usize) -> BoxFuture<'_, Result<Vec<Version>, Status>> {
        async move {
            let limit = u32::try_from(limit).unwrap_or(0);
            self.each(&tenant, |mut c, t| async move {
                let r = c.history(request(pb::ConfigHistoryRequest { limit }, t)).await?.into_inner();
                r.versions_json
                    .iter()
                    .map(|j| {
                        serde_json::from_slice(j).map_err(|e| Status::internal(format!("an undecodable version: {e}")))
                    })
                    .collect()
            })
            .await
        }
        .boxed()
    }
}
