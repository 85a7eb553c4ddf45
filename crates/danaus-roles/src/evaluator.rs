//! The evaluator role: a member of an evaluator Raft group
//! (`danaus-evaluator`, its log and snapshots on the `KvStore` seam)
//! running the rule groups of the configuration assigned to it, serving
//! the Raft service and RuleService. It reads
//! through a [`Source`] (a zone's query engine: [`ZoneSource`]), writes
//! derived points through a [`Sink`] (the zone's write path) and hands
//! alert transitions to a [`Notifier`]; the configuration comes from a
//! feed (the zone's mirror), so rules keep running while the global
//! layer is away.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use danaus_assigner::TableWatcher;
use danaus_config::ConfigView;
use danaus_evaluator::{Evaluations, Evaluator, EvaluatorConfig, Notifier, Sink, Source};
use danaus_node::query::EngineSource;
use danaus_promql::{DanausStorage, Storage};
use danaus_proto::v1 as pb;
use danaus_raft::{NodeId, RaftGroup, RaftServer};
use danaus_storage::{Clock, KvStore};
use futures::FutureExt as _;
use tokio::sync::watch;

use crate::metrics::{process_metrics, Text};
use crate::{raft_member, transport, Health, Metrics, Result, Running};

/// A member of an evaluator group.
#[derive(Debug, Clone)]
pub struct EvaluatorSpec {
    /// The group's name (one per zone, and one at the root).
    pub group: String,
    /// Member id.
    pub id: NodeId,
    /// Every member (this one included): id → host:port; this member's
    /// own entry may end in `:0` (then it is the address bound).
    pub peers: BTreeMap<NodeId, String>,
    /// gRPC address to bind (the Raft service).
    pub grpc_addr: SocketAddr,
    /// Raft heartbeat; elections after 5× this.
    pub heartbeat: Duration,
    /// Evaluation tuning.
    pub evaluator: EvaluatorConfig,
}

/// Where an evaluator reads, writes, hands on, and finds its rules.
pub struct EvaluatorSeams {
    /// Where rules read.
    pub source: Arc<dyn Source>,
    /// Where derived points go.
    pub sink: Arc<dyn Sink>,
    /// Where alert transitions go.
    pub notifier: Arc<dyn Notifier>,
    /// The configuration, as the zone holds it.
    pub config: watch::Receiver<Arc<ConfigView>>,
}

/// What an evaluator is made of, beside what every role has.
pub struct EvaluatorParts {
    /// The evaluator (its records and configuration, for the APIs).
    pub evaluator: Evaluator,
    /// Its RuleService (standalone serves it on the front door too).
    pub rules: RuleApi,
}

/// A zone's series as rules read them: the PromQL storage over the zone's
/// query engine and the schemas of its table, the location given to
/// series that came without one hidden as the PromQL API hides it.
pub struct ZoneSource {
    /// The engine a query runs on.
    pub engines: EngineSource,
    /// The zone table (schemas).
    pub table: TableWatcher,
    /// The location remote_write and the scraper give series without one.
    pub default_location: Option<String>,
}

impl Source for ZoneSource {
    fn storage(&self, tenant: &str) -> Box<dyn Storage> {
        let table = self.table.current();
        let (target, metrics) = match table.schemas.get(tenant) {
            Some(s) => (
                s.targets.get(danaus_model::PROM_TARGET_SCHEMA).cloned().map(Arc::new),
                s.metrics.values().cloned().map(Arc::new).collect(),
            ),
            None => (None, Vec::new()),
        };
        let storage = DanausStorage::new((self.engines)(), tenant, target, metrics);
        Box::new(match &self.default_location {
            Some(l) => storage.hide_default("location", l),
            None => storage,
        })
    }
}

/// How an evaluator of a distributed zone reaches the zone, built in
/// its process: a zone mixer to read through and the zone's routers to
/// write through, both over the zone table.
pub struct ZoneAccess {
    /// Reads.
    pub source: ZoneSource,
    /// The ingestion router derived points go through (a caller wraps it
    /// in the Prometheus write path).
    pub front: Arc<danaus_router::IngestRouter>,
}

/// The zone `zone` as an evaluator reaches it: its assigners (zone
/// table), index server (pruning), and where schema changes go (config
/// mirrors or members; none: the zone table); `state` keeps the last
/// zone table. Series without a location are the zone's own.
pub fn zone_access(
    zone: &str,
    assigners: Vec<String>,
    index: Option<String>,
    config: Vec<String>,
    state: Option<danaus_storage::SharedStateDir>,
) -> ZoneAccess {
    let cache = |name: &str| state.clone().map(|s| danaus_assigner::TableCache::new(s, name));
    let writer = (!config.is_empty())
        .then(|| Arc::new(danaus_config::client::RemoteWriter::new(config)) as Arc<dyn danaus_config::service::Writer>);
    let (_, routers) = crate::router::build(
        assigners.clone(),
        cache("router-table.json"),
        danaus_router::ZoneMap::single(zone),
        danaus_router::RouterConfig::default(),
        writer,
    );
    let table = TableWatcher::start_cached(assigners, cache("mixer-table.json"));
    let mixer = danaus_mixer::ZoneMixer::new(
        table.clone(),
        danaus_mixer::MixerConfig { zone: zone.to_owned(), index, ..danaus_mixer::MixerConfig::default() },
    );
    ZoneAccess {
        source: ZoneSource {
            engines: Arc::new(move || mixer.engine()),
            table,
            default_location: Some(zone.to_owned()),
        },
        front: routers.front,
    }
}

/// Starts a member on `kv`; `clock` gives the evaluation times.
pub async fn start(
    spec: EvaluatorSpec,
    kv: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
    seams: EvaluatorSeams,
) -> Result<(Running, EvaluatorParts)> {
    let started = Instant::now();
    let listener = transport::bind(spec.grpc_addr).await?;
    let me = listener.local_addr();
    let raft = RaftServer::new();
    let group: Arc<RaftGroup<Evaluations>> =
        raft_member::start(&spec.group, spec.id, spec.heartbeat, kv, &raft).await?;
    let evaluator = Evaluator::new(group.clone(), seams.source, seams.sink, seams.notifier, clock, spec.evaluator);
    let rules = RuleApi { evaluator: evaluator.clone(), config: seams.config.clone(), group: spec.group.clone() };
    let router = transport::server(transport::DEFAULT_CONCURRENCY)
        .add_service(raft.service())
        .add_service(rules.clone().service());
    let ev = evaluator.clone();
    let metrics: Metrics = Arc::new(move || {
        let ev = ev.clone();
        async move {
            let mut t = Text::default();
            process_metrics(&mut t, started);
            evaluator_metrics(&mut t, &ev);
            t
        }
        .boxed()
    });
    let g = group.clone();
    let health: Health = Arc::new(move || {
        let m = g.metrics();
        m.current_leader.is_none().then(|| {
            format!("this member knows no evaluator group leader (term {}): no rule is evaluated", m.current_term)
        })
    });
    let (stop, stopping) = watch::channel(false);
    let mut running = Running::new(me, metrics, health, stop);
    running.server = Some(listener.serve(router, stopping));
    raft_member::join(&mut running, &group, spec.id, &spec.peers, me).await?;
    running.spawn(evaluator.clone().run(seams.config));
    tracing::info!(id = spec.id, group = %spec.group, grpc_addr = %me, "evaluator member serving");
    Ok((running, EvaluatorParts { evaluator, rules }))
}

/// An evaluator's samples: its Raft group, and per rule group (from the
/// committed counters, so they carry on across a failover) evaluations,
/// failures, missed and caught-up grid times, the last duration and time.
pub fn evaluator_metrics(t: &mut Text, ev: &Evaluator) {
    let g = ev.group();
    t.metric(
        "danaus_evaluator_raft_term",
        "gauge",
        "Current Raft term of the evaluator group.",
        g.metrics().current_term,
    );
    t.metric("danaus_evaluator_is_leader", "gauge", "1 on the evaluator group's leader.", u8::from(g.is_leader()));
    let (records, outbox) = g.read(|s| (s.groups.clone(), s.outbox.len()));
    t.metric("danaus_evaluator_outbox", "gauge", "Alert transitions committed and not yet handed on.", outbox);
    t.metric(
        "danaus_evaluator_invalid_groups",
        "gauge",
        "Rule groups of the configuration this evaluator cannot run (see its log).",
        ev.invalid().len(),
    );
    let labels = |key: &str, r: &danaus_evaluator::GroupRecord| {
        let name = key.strip_prefix(&format!("{}/", r.tenant)).unwrap_or(key);
        vec![("tenant".to_owned(), r.tenant.clone()), ("rule_group".to_owned(), name.to_owned())]
    };
    type Field = fn(&danaus_evaluator::GroupRecord) -> f64;
    let families: [(&str, &str, &str, Field); 7] = [
        ("danaus_rule_group_evaluations_total", "counter", "Evaluations committed.", |r| r.counters.evaluations as f64),
        ("danaus_rule_group_evaluation_failures_total", "counter", "Evaluations in which a rule failed.", |r| {
            r.counters.failed as f64
        }),
        (
            "danaus_rule_group_missed_evaluations_total",
            "counter",
            "Grid times skipped: older than the catch-up horizon when reached.",
            |r| r.counters.missed as f64,
        ),
        (
            "danaus_rule_group_caught_up_evaluations_total",
            "counter",
            "Evaluations run an interval or more after their time (failover, move, stall).",
            |r| r.counters.caught_up as f64,
        ),
        ("danaus_rule_group_points_refused_total", "counter", "Derived points the write path refused for good.", |r| {
            r.counters.points_refused as f64
        }),
        ("danaus_rule_group_last_duration_seconds", "gauge", "How long the last committed evaluation took.", |r| {
            r.duration_us as f64 / 1e6
        }),
        (
            "danaus_rule_group_last_evaluation_timestamp_seconds",
            "gauge",
            "The time of the last committed evaluation.",
            |r| r.at as f64 / 1e3,
        ),
    ];
    for (name, kind, help, f) in families {
        for (key, r) in &records {
            t.labelled(name, kind, help, labels(key, r), f(r));
        }
    }
}

/// RuleService over an evaluator and the configuration it runs.
#[derive(Clone)]
pub struct RuleApi {
    /// The evaluator.
    pub evaluator: Evaluator,
    /// Its configuration.
    pub config: watch::Receiver<Arc<ConfigView>>,
    /// Its group's name (where the rules run).
    pub group: String,
}

impl RuleApi {
    /// The gRPC service.
    pub fn service(self) -> danaus_proto::servers::RuleServer<Self> {
        pb::rule_service_server::RuleServiceServer::new(self).max_encoding_message_size(danaus_node::MAX_MESSAGE_BYTES)
    }

    fn status(&self, tenant: &str) -> Vec<danaus_evaluator::GroupStatus> {
        let view = self.config.borrow().clone();
        self.evaluator.status(&view, Some(tenant))
    }
}

fn alert_pb(a: &danaus_rules::alert::Alert, group: &str, rule: &str) -> pb::AlertStatus {
    pb::AlertStatus {
        labels: a.labels.pairs().iter().cloned().collect(),
        annotations: a.annotations.clone().into_iter().collect(),
        state: a.state.as_str().to_owned(),
        value: a.value,
        active_at_ms: a.active_at,
        fired_at_ms: a.fired_at.unwrap_or(0),
        keep_firing_since_ms: a.keep_firing_since.unwrap_or(0),
        group: group.to_owned(),
        rule: rule.to_owned(),
    }
}

#[tonic::async_trait]
impl pb::rule_service_server::RuleService for RuleApi {
    async fn list_rules(
        &self,
        req: tonic::Request<pb::ListRulesRequest>,
    ) -> std::result::Result<tonic::Response<pb::ListRulesReply>, tonic::Status> {
        let tenant = danaus_proto::tenant::tenant(&req)?;
        let want = req.into_inner().groups;
        let groups = self
            .status(&tenant)
            .into_iter()
            .filter(|g| want.is_empty() || want.contains(&g.name))
            .map(|g| pb::RuleGroupStatus {
                rules: g
                    .rules
                    .iter()
                    .map(|r| pb::RuleStatus {
                        kind: if r.alerting { "alerting" } else { "recording" }.to_owned(),
                        name: r.name.clone(),
                        expr: r.expr.clone(),
                        for_ms: r.for_ms,
                        keep_firing_for_ms: r.keep_firing_for_ms,
                        labels: r.labels.clone().into_iter().collect(),
                        annotations: r.annotations.clone().into_iter().collect(),
                        health: r.health.as_str().to_owned(),
                        last_error: r.last_error.clone().unwrap_or_default(),
                        duration_us: r.duration_us as i64,
                        state: if r.alerting { r.state().as_str().to_owned() } else { String::new() },
                        alerts: r.alerts.iter().map(|a| alert_pb(a, &g.name, &r.name)).collect(),
                    })
                    .collect(),
                tenant: g.tenant,
                name: g.name,
                interval_ms: g.interval_ms,
                limit: g.limit as u64,
                evaluator: self.group.clone(),
                last_evaluation_ms: g.last_eval.unwrap_or(0),
                evaluation_duration_us: g.duration_us as i64,
                evaluations: g.counters.evaluations,
                failures: g.counters.failed,
                missed: g.counters.missed,
                caught_up: g.counters.caught_up,
                error: g.invalid.unwrap_or_default(),
            })
            .collect();
        Ok(tonic::Response::new(pb::ListRulesReply { groups }))
    }

    async fn list_alerts(
        &self,
        req: tonic::Request<pb::ListAlertsRequest>,
    ) -> std::result::Result<tonic::Response<pb::ListAlertsReply>, tonic::Status> {
        let tenant = danaus_proto::tenant::tenant(&req)?;
        let alerts = self
            .status(&tenant)
            .iter()
            .flat_map(|g| g.rules.iter().flat_map(move |r| r.alerts.iter().map(move |a| alert_pb(a, &g.name, &r.name))))
            .collect();
        Ok(tonic::Response::new(pb::ListAlertsReply { alerts }))
    }
}
