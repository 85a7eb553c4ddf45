//! The config mirror role: a zone's copy of the global configuration. It
//! follows the config service (any member), saves every committed version
//! it reaches in the zone's own state directory, and serves ConfigService
//! to the zone's roles from that copy: reads from the copy, so the zone
//! keeps its configuration while the global layer is away (and a mirror
//! restarted meanwhile starts from what it saved), changes forwarded to
//! the config service. Given the zone's assigners, it also brings the
//! zone's table to each configuration version ([`crate::config_sync`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use danaus_config::client::{follow, load_saved, RemoteWriter};
use danaus_config::feed::Feed;
use danaus_config::service::ConfigApi;
use danaus_storage::{Clock, SharedStateDir};
use futures::FutureExt as _;
use tokio::sync::watch;

use crate::metrics::{process_metrics, Text};
use crate::{transport, Health, Metrics, Result, Running};

/// A zone's config mirror.
#[derive(Debug, Clone)]
pub struct ConfigMirrorSpec {
    /// gRPC address to bind.
    pub grpc_addr: SocketAddr,
    /// The config service's members (host:port).
    pub servers: Vec<String>,
    /// The zone's name.
    pub zone: String,
    /// The zone's range assigner members, whose table the mirror brings
    /// to each configuration version (none: the mirror only serves).
    pub assigners: Vec<String>,
}

/// What a mirror is made of, beside what every role has.
pub struct MirrorParts {
    /// Its copy of the configuration.
    pub feed: Feed,
    /// Its ConfigService (standalone joined to a global config service
    /// serves it on its front door).
    pub api: ConfigApi,
}

/// Starts a mirror keeping its copy in `state`.
pub async fn start(
    spec: ConfigMirrorSpec,
    state: SharedStateDir,
    clock: Arc<dyn Clock>,
) -> Result<(Running, MirrorParts)> {
    let started = Instant::now();
    let listener = transport::bind(spec.grpc_addr).await?;
    let saved = load_saved(&state).unwrap_or_default();
    if saved.version > 0 {
        tracing::info!(version = saved.version, "config mirror starting from its saved configuration");
    }
    let feed = Feed::new(saved);
    let writer: Arc<dyn danaus_config::service::Writer> = Arc::new(RemoteWriter::new(spec.servers.clone()));
    let api = ConfigApi::new(feed.clone(), writer.clone(), clock.clone());
    let router = transport::server(transport::DEFAULT_CONCURRENCY).add_service(api.clone().service());
    let f = feed.clone();
    let metrics: Metrics = Arc::new(move || {
        let f = f.clone();
        async move {
            let mut t = Text::default();
            process_metrics(&mut t, started);
            t.metric("danaus_config_version", "gauge", "Configuration version this mirror holds.", f.current().version);
            t
        }
        .boxed()
    });
    let f = feed.clone();
    let health: Health = Arc::new(move || {
        (f.current().version == 0).then(|| {
            "no configuration yet: no config service member has answered and none was saved; check --config-servers"
                .to_owned()
        })
    });
    let (stop, stopping) = watch::channel(false);
    let mut running = Running::new(listener.local_addr(), metrics, health, stop);
    running.server = Some(listener.serve(router, stopping));
    running.spawn(follow(spec.servers.clone(), feed.clone(), Some(state)));
    if !spec.assigners.is_empty() {
        let table = danaus_assigner::TableWatcher::start(spec.assigners.clone());
        let zone = Arc::new(danaus_assigner::ZoneClient::new(spec.assigners.clone()));
        running.spawn(crate::config_sync::sync_zone(spec.zone.clone(), feed.clone(), table, zone, writer, clock));
    }
    tracing::info!(grpc_addr = %running.grpc_addr, "config mirror serving");
    Ok((running, MirrorParts { feed, api }))
}
