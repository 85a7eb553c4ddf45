//! The root mixer: one query over every zone. Its engine holds one
//! [`RemoteZone`] per zone the configuration names; each runs the fetch's
//! leaf and zone stages on one of that zone's mixers
//! (`ZoneStageService`), so only zone outputs — finished series or
//! partial aggregates — cross zones, and the root stage merges them here.
//!
//! A zone whose mixers all fail, or that does not answer within the zone
//! timeout, is named missing in the completeness report (source
//! `zone-mixer`) beside the sources each answering zone reported; the
//! rest of the answer still arrives. A fetch whose filter pins the target's
//! location field to one value asks only the zone owning that location;
//! with a root index server, a zone whose claimed field hints fail the
//! fetch's filters is not asked either (`danaus_index::root`: a claim
//! covers every series acknowledged while it counts, so the answer stays
//! complete).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use danaus_model::{MatchOp, MetricSchema, TargetSchema};
use danaus_node::zone_leaf::with_tenant;
use danaus_proto::channels::Channels;
use danaus_proto::v1 as pb;
use danaus_query::{
    Completeness, Engine, Error, ExecCtx, FetchPlan, PhaseOutput, QueryLimits, Result, Table, ZonePhase,
};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tonic::Request;

use crate::remote::{failed_from, Failed};

/// The source name of a zone that did not answer, in completeness reports.
pub const ZONE_SOURCE: &str = "zone-mixer";

/// A zone as the root mixer knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootZone {
    /// The zone's name.
    pub name: String,
    /// Its zone mixers (host:port), tried in turn.
    pub mixers: Vec<String>,
    /// Locations it owns (see [`danaus_model::location`]).
    pub locations: Vec<String>,
}

/// What the root mixer plans by: the zones and the schemas, as the global
/// configuration has them now.
pub trait RootCatalog: Send + Sync {
    /// Every zone.
    fn zones(&self) -> Vec<RootZone>;

    /// A fetch's schemas, or `None` when either is unknown.
    fn schemas(&self, tenant: &str, target: &str, metric: &str) -> Option<(Arc<TargetSchema>, Arc<MetricSchema>)>;
}

/// How the root mixer runs.
#[derive(Debug, Clone)]
pub struct RootConfig {
    /// Default per-query limits.
    pub limits: QueryLimits,
    /// A zone that has not answered after this long is reported missing
    /// (the query's own deadline, when sooner, wins).
    pub zone_timeout: Duration,
    /// The root index server (host:port) to ask which zones a fetch can
    /// skip; without one (or while it does not answer) every zone is asked.
    pub root_index: Option<String>,
}

impl Default for RootConfig {
    fn default() -> Self {
        Self { limits: QueryLimits::default(), zone_timeout: Duration::from_secs(30), root_index: None }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RootStats {
    /// Queries planned.
    pub queries: AtomicU64,
    /// Zone phases asked of zone mixers.
    pub zone_phases: AtomicU64,
    /// Zone phases skipped because the query's location filter rules the
    /// zone out.
    pub zones_pruned: AtomicU64,
    /// Zone phases no mixer of the zone answered.
    pub zones_missing: AtomicU64,
    /// Zone phases skipped because the root index showed the zone holds
    /// no series the fetch's filters accept.
    pub zones_skipped_by_hints: AtomicU64,
    /// Questions to the root index that failed (every zone was asked).
    pub root_index_failures: AtomicU64,
}

struct Shared {
    catalog: Arc<dyn RootCatalog>,
    cfg: RootConfig,
    channels: Channels,
    stats: Arc<RootStats>,
    turn: AtomicU64,
}

/// The root mixer.
#[derive(Clone)]
pub struct RootMixer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RootMixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootMixer").finish_non_exhaustive()
    }
}

impl RootMixer {
    /// A root mixer over the zones and schemas `catalog` gives.
    pub fn new(catalog: Arc<dyn RootCatalog>, cfg: RootConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                catalog,
                cfg,
                channels: Channels::default(),
                stats: Arc::default(),
                turn: AtomicU64::new(0),
            }),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &Arc<RootStats> {
        &self.shared.stats
    }

    /// An engine over every zone the catalog names now.
    pub fn engine(&self) -> Arc<Engine> {
        self.shared.stats.queries.fetch_add(1, Ordering::Relaxed);
        let zones = Arc::new(self.shared.catalog.zones());
        let turn = self.shared.turn.fetch_add(1, Ordering::Relaxed) as usize;
        let pruner =
            Arc::new(ZonePruner { shared: self.shared.clone(), zones: zones.clone(), answers: Mutex::default() });
        let phases: Vec<Arc<dyn ZonePhase>> = if zones.is_empty() {
            vec![Arc::new(NoZones)]
        } else {
            (0..zones.len())
                .map(|i| {
                    Arc::new(RemoteZone {
                        index: i,
                        zones: zones.clone(),
                        shared: self.shared.clone(),
                        turn,
                        pruner: pruner.clone(),
                    }) as Arc<dyn ZonePhase>
                })
                .collect()
        };
        Arc::new(Engine::over(phases, self.shared.cfg.limits))
    }
}

/// A zone's phase, asked of one of its mixers.
struct RemoteZone {
    index: usize,
    /// Every zone (to tell which owns a location).
    zones: Arc<Vec<RootZone>>,
    shared: Arc<Shared>,
    turn: usize,
    pruner: Arc<ZonePruner>,
}

/// Field-hints pruning of zones for one query: asks the root index once
/// per fetch which zones cannot hold a matching series.
struct ZonePruner {
    shared: Arc<Shared>,
    zones: Arc<Vec<RootZone>>,
    answers: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Vec<String>>>>>,
}

impl ZonePruner {
    /// Whether `zone` can be skipped for `fp`.
    async fn skip(&self, tenant: &str, fp: &FetchPlan, zone: &str) -> bool {
        let Some(addr) = &self.shared.cfg.root_index else { return false };
        let spec = &fp.fetch;
        let key = format!("{tenant}\0{}\0{}\0{:?}", spec.target, spec.metric, spec.matchers);
        let cell = self.answers.lock().entry(key).or_default().clone();
        let excluded = cell.get_or_init(|| self.ask(addr, tenant, fp)).await;
        excluded.iter().any(|z| z == zone)
    }

    async fn ask(&self, addr: &str, tenant: &str, fp: &FetchPlan) -> Vec<String> {
        let spec = &fp.fetch;
        let Some((t, m)) = self.shared.catalog.schemas(tenant, &spec.target, &spec.metric) else { return Vec::new() };
        let req = danaus_index::requirement(tenant, &t, &m, &spec.matchers);
        let asked = async {
            let channel = self.shared.channels.get(addr).map_err(|e| e.to_string())?;
            let mut client = pb::index_service_client::IndexServiceClient::new(channel);
            let mut r = Request::new(pb::ExcludeRequest {
                clauses: danaus_index::server::requirement_to(&req),
                leaves: self.zones.iter().map(|z| z.name.clone()).collect(),
            });
            r.set_timeout(Duration::from_secs(1));
            client.exclude(r).await.map(|r| r.into_inner().excluded).map_err(|s| s.message().to_owned())
        };
        match asked.await {
            Ok(ex) => ex,
            Err(e) => {
                self.shared.stats.root_index_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(root_index = %addr, "root index: {e}");
                Vec::new()
            }
        }
    }
}

/// What a zone mixer answered.
#[derive(Default)]
struct ZoneAnswer {
    tables: Vec<Table>,
    output: Option<PhaseOutput>,
    completeness: Completeness,
    series: u64,
    points: u64,
}

impl RemoteZone {
    fn zone(&self) -> &RootZone {
        &self.zones[self.index]
    }

    /// Whether the fetch's location filter rules this zone out.
    fn ruled_out(&self, tenant: &str, fp: &FetchPlan) -> bool {
        let Some((target, _)) = self.shared.catalog.schemas(tenant, &fp.fetch.target, &fp.fetch.metric) else {
            return false;
        };
        // The planner qualifies the fields it pushes down (`target.NAME`).
        let is_location = |f: &str| f.strip_prefix("target.").unwrap_or(f) == target.location_field;
        let pinned = fp.fetch.matchers.iter().find(|m| is_location(&m.field) && m.op == MatchOp::Eq);
        match pinned {
            Some(m) => danaus_model::location::owner(&self.zones, |z| &z.locations, &m.value)
                .is_some_and(|owner| owner.name != self.zone().name),
            None => false,
        }
    }

    async fn ask(
        &self,
        addr: &str,
        plan: &[u8],
        stream: bool,
        ctx: &ExecCtx,
    ) -> std::result::Result<ZoneAnswer, Failed> {
        let zone = &self.zone().name;
        let who = format!("zone {zone}'s mixer at {addr}");
        let unavailable = |m: String| Failed {
            retry: true,
            error: Error::Source { source_name: ZONE_SOURCE.into(), message: m, unavailable: true },
        };
        let own = Instant::now() + self.shared.cfg.zone_timeout;
        let deadline = ctx.deadline.map_or(own, |d| d.min(own));
        let timeout = deadline.saturating_duration_since(Instant::now());
        if timeout.is_zero() {
            return Err(unavailable(format!("{who}: cut by the query's deadline")));
        }
        let channel = self.shared.channels.get(addr).map_err(|e| unavailable(format!("{who}: {e}")))?;
        let mut client = pb::zone_stage_service_client::ZoneStageServiceClient::new(channel)
            .max_decoding_message_size(danaus_node::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(danaus_node::MAX_MESSAGE_BYTES);
        let mut req = Request::new(pb::ZoneStageRequest {
            plan: plan.to_vec(),
            max_series: ctx.limits.max_series.saturating_sub(ctx.series_touched()),
            max_points: ctx.limits.max_points.saturating_sub(ctx.points_touched()),
            timeout_ms: timeout.as_millis().max(1) as u64,
            stream,
        });
        with_tenant(&mut req, &ctx.tenant).map_err(|s| unavailable(s.message().to_owned()))?;
        req.set_timeout(timeout);
        let status = |s: tonic::Status| {
            if Instant::now() >= own && ctx.deadline.is_none_or(|d| d > own) {
                return unavailable(format!("{who}: no answer within {:?}", self.shared.cfg.zone_timeout));
            }
            failed_from(&s, ZONE_SOURCE, &who, ctx)
        };
        let decode = |e: rmp_serde::decode::Error| Failed {
            retry: true,
            error: Error::Source {
                source_name: ZONE_SOURCE.into(),
                message: format!("{who}: undecodable zone phase output: {e}"),
                unavailable: false,
            },
        };
        let mut stream = client.run_zone_stage(req).await.map_err(status)?.into_inner();
        let mut answer = ZoneAnswer::default();
        let mut done = false;
        while let Some(msg) = stream.message().await.map_err(status)? {
            match msg.item {
                Some(pb::zone_stage_reply::Item::Table(b)) => {
                    answer.tables.push(rmp_serde::from_slice(&b).map_err(decode)?)
                }
                Some(pb::zone_stage_reply::Item::Output(b)) => {
                    answer.output = Some(rmp_serde::from_slice(&b).map_err(decode)?)
                }
                Some(pb::zone_stage_reply::Item::Done(d)) => {
                    answer.series = d.series_touched;
                    answer.points = d.points_touched;
                    answer.completeness = rmp_serde::from_slice(&d.completeness).map_err(decode)?;
                    done = true;
                }
                None => {}
            }
        }
        if !done {
            return Err(unavailable(format!("{who}: the answer ended early")));
        }
        Ok(answer)
    }
}

impl ZonePhase for RemoteZone {
    fn name(&self) -> &str {
        &self.zone().name
    }

    fn schemas(&self, tenant: &str, target: &str, metric: &str) -> Result<(Arc<TargetSchema>, Arc<MetricSchema>)> {
        self.shared.catalog.schemas(tenant, target, metric).ok_or_else(|| {
            Error::NotFound(format!(
                "unknown target schema {target:?} or metric {metric:?} (tenant {tenant:?}) in the global configuration"
            ))
        })
    }

    fn run_zone<'a>(
        &'a self,
        fp: &'a FetchPlan,
        ctx: &'a ExecCtx,
        completeness: &'a mut Completeness,
        emit: Option<&'a mut (dyn FnMut(Table) -> Result<()> + Send)>,
    ) -> BoxFuture<'a, Result<Option<PhaseOutput>>> {
        Box::pin(async move {
            let stats = &self.shared.stats;
            if self.ruled_out(&ctx.tenant, fp) {
                stats.zones_pruned.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            let zone = self.zone();
            if self.pruner.skip(&ctx.tenant, fp, &zone.name).await {
                stats.zones_skipped_by_hints.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(zone = %zone.name, "zone skipped by its field hints");
                return Ok(None);
            }
            if zone.mixers.is_empty() {
                stats.zones_missing.fetch_add(1, Ordering::Relaxed);
                return Err(Error::Source {
                    source_name: ZONE_SOURCE.into(),
                    message: format!("zone {} lists no mixers in the configuration", zone.name),
                    unavailable: true,
                });
            }
            let plan =
                rmp_serde::to_vec(fp).map_err(|e| Error::Eval(format!("internal: encoding the zone plan: {e}")))?;
            stats.zone_phases.fetch_add(1, Ordering::Relaxed);
            let n = zone.mixers.len();
            let mut last = None;
            for k in 0..n {
                let addr = &zone.mixers[(self.turn + k) % n];
                match self.ask(addr, &plan, emit.is_some(), ctx).await {
                    Ok(a) => {
                        ctx.add_touched(a.series, a.points)?;
                        for s in a.completeness.sources {
                            completeness.record(&s.zone, &s.source, s.missing);
                        }
                        if let Some(out) = emit {
                            for t in a.tables {
                                out(t)?;
                            }
                        }
                        return Ok(a.output);
                    }
                    Err(f) if f.retry => {
                        tracing::debug!(zone = %zone.name, %addr, "zone phase failed: {}", f.error);
                        last = Some(f.error);
                    }
                    Err(f) => return Err(f.error),
                }
            }
            stats.zones_missing.fetch_add(1, Ordering::Relaxed);
            Err(last.unwrap_or_else(|| Error::Eval("internal: no zone mixer asked".into())))
        })
    }
}

/// The engine's only zone while the configuration names none: every
/// query fails saying so.
struct NoZones;

impl ZonePhase for NoZones {
    fn name(&self) -> &str {
        "(none)"
    }

    fn schemas(&self, _: &str, _: &str, _: &str) -> Result<(Arc<TargetSchema>, Arc<MetricSchema>)> {
        Err(Error::NotFound(
            "the root mixer knows no zones: the global configuration has no `kind: Zone` objects (see \
             docs/configuration.md)"
                .into(),
        ))
    }

    fn run_zone<'a>(
        &'a self,
        _: &'a FetchPlan,
        _: &'a ExecCtx,
        _: &'a mut Completeness,
        _: Option<&'a mut (dyn FnMut(Table) -> Result<()> + Send)>,
    ) -> BoxFuture<'a, Result<Option<PhaseOutput>>> {
        Box::pin(async { Ok(None) })
    }
}
