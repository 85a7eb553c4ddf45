//! The zone's front door for writes and schemas.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use danaus_assigner::{TableWatcher, ZoneClient, ZoneCommand, ZoneTable};
use danaus_model::SeriesWrite;
use danaus_model::{FieldValue, MetricSchema, TargetSchema};
use danaus_node::grpc::{series_to_wire, series_writes, with_conversion_errors};
use danaus_node::tenant::tenant;
use danaus_node::zone_leaf::with_tenant;
use danaus_proto::channels::Channels;
use danaus_proto::convert;
use danaus_proto::v1 as pb;
use pb::ingest_service_client::IngestServiceClient;
use tonic::{Request, Response, Status};

use crate::leaf_router::LeafRouter;
use crate::zone_map::ZoneMap;

/// `IngestService` and `SchemaService` of a zone.
pub struct IngestRouter {
    leaves: Arc<LeafRouter>,
    zones: ZoneMap,
    zone: Arc<ZoneClient>,
    channels: Channels,
    /// The last time the leader confirmed the table current, and the
    /// version it named.
    confirmed: parking_lot::Mutex<Option<(Instant, u64)>>,
    /// Where schema changes go: the global configuration (then the zone's
    /// mirror syncs them into the table), or, without one, the table.
    config: Option<Arc<dyn danaus_config::service::Writer>>,
}

/// How long a confirmation that the table is current stands for series
/// naming schemas it does not know (bounds the leader reads that writes
/// naming unknown schemas cost to one per this period).
const CONFIRMED_FOR: Duration = Duration::from_secs(1);

impl std::fmt::Debug for IngestRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestRouter").field("zone", &self.zones.local).finish()
    }
}

impl IngestRouter {
    /// The front door of zone `zones.local`, writing through `leaves` and
    /// applying schemas through `zone`.
    pub fn new(leaves: Arc<LeafRouter>, zones: ZoneMap, zone: Arc<ZoneClient>) -> Arc<Self> {
        Self::build(leaves, zones, zone, None)
    }

    /// Like [`new`](Self::new), applying schemas to the global
    /// configuration through `config`: a schema change is answered once
    /// the zone's table holds the configuration version that has it.
    pub fn with_config(
        leaves: Arc<LeafRouter>,
        zones: ZoneMap,
        zone: Arc<ZoneClient>,
        config: Arc<dyn danaus_config::service::Writer>,
    ) -> Arc<Self> {
        Self::build(leaves, zones, zone, Some(config))
    }

    fn build(
        leaves: Arc<LeafRouter>,
        zones: ZoneMap,
        zone: Arc<ZoneClient>,
        config: Option<Arc<dyn danaus_config::service::Writer>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            leaves,
            zones,
            zone,
            channels: Channels::default(),
            confirmed: parking_lot::Mutex::new(None),
            config,
        })
    }

    /// The zone table this router routes by.
    pub fn table(&self) -> &TableWatcher {
        self.leaves.table()
    }

    /// The gRPC services.
    pub fn services(
        self: &Arc<Self>,
    ) -> (danaus_proto::servers::IngestServer<Front>, danaus_proto::servers::SchemaServer<Front>) {
        (
            pb::ingest_service_server::IngestServiceServer::new(Front(self.clone()))
                .max_decoding_message_size(danaus_node::MAX_MESSAGE_BYTES),
            pb::schema_service_server::SchemaServiceServer::new(Front(self.clone())),
        )
    }

    /// The zone owning series `s`, by its location field; `None` for this
    /// zone (also when the location cannot be read: the leaf router then
    /// reports what is wrong with the series).
    fn zone_for(&self, table: &ZoneTable, tenant: &str, s: &SeriesWrite) -> Option<String> {
        let ts = table.target_schema(tenant, &s.target_schema)?;
        let (_, FieldValue::String(loc)) = s.target_fields.iter().find(|(k, _)| *k == ts.location_field)? else {
            return None;
        };
        let z = self.zones.zone_of(loc)?;
        (z.name != self.zones.local).then(|| z.name.clone())
    }

    /// Writes a batch of wire series (`IngestService.Write`): converted,
    /// then [`write_series`](Self::write_series). Series that do not
    /// convert are refused here, by position.
    pub async fn write(self: &Arc<Self>, tenant: &str, series: Vec<pb::Series>) -> Result<pb::WriteResponse, Status> {
        let (batch, positions, errors) = series_writes(series);
        let r = self.write_series(tenant, batch).await?;
        Ok(with_conversion_errors(r, &positions, errors))
    }

    /// Writes a batch: this zone's series through the leaf router, the
    /// others forwarded to their zones' routers. Errors index into
    /// `series`.
    pub async fn write_series(
        self: &Arc<Self>,
        tenant: &str,
        series: Vec<SeriesWrite>,
    ) -> Result<pb::WriteResponse, Status> {
        self.ensure_current(tenant, &series).await?;
        let table = self.table().current();
        // Which zone each series goes to; series of a target come together.
        let mut zones: Vec<Option<String>> = Vec::with_capacity(series.len());
        if self.zones.zones.len() > 1 {
            for (i, s) in series.iter().enumerate() {
                let same = i > 0 && series[i - 1].same_target(s);
                let z = if same { zones[i - 1].clone() } else { self.zone_for(&table, tenant, s) };
                zones.push(z);
            }
        }
        if zones.iter().all(Option::is_none) {
            // All local (always so with one zone): no split, no copies.
            return self.leaves.write(tenant, series).await;
        }
        let mut by_zone: BTreeMap<Option<String>, (Vec<usize>, Vec<SeriesWrite>)> = BTreeMap::new();
        for (i, (s, zone)) in series.into_iter().zip(zones).enumerate() {
            let e = by_zone.entry(zone).or_default();
            e.0.push(i);
            e.1.push(s);
        }
        let mut out = pb::WriteResponse::default();
        for (zone, (positions, batch)) in by_zone {
            let r = match &zone {
                None => self.leaves.write(tenant, batch).await?,
                Some(z) => self.forward(tenant, z, batch.iter().map(series_to_wire).collect()).await?,
            };
            out.accepted_points += r.accepted_points;
            out.errors.extend(r.errors.into_iter().map(|mut e| {
                e.index = positions.get(e.index as usize).copied().unwrap_or(0) as u32;
                e
            }));
        }
        out.errors.sort_by_key(|e| e.index);
        Ok(out)
    }

    /// Makes sure the table this router routes by is current when it does
    /// not know a schema some series names (or holds no table yet). A
    /// router that just started, or follows an assigner member still
    /// replaying its log, holds an old table: judged on it, a series would
    /// go to the wrong zone (its location is read through its target
    /// schema) or be refused for a schema that exists. The leader names the
    /// committed version and the router waits until its table has it.
    async fn ensure_current(&self, tenant: &str, series: &[SeriesWrite]) -> Result<(), Status> {
        let table = self.table().current();
        // A write names few schemas many times: each is looked up once.
        let mut metrics = table.metric_lookup(tenant);
        let mut last_target: Option<&str> = None;
        let unknown = table.version == 0
            || series.iter().any(|s| {
                let target_known =
                    last_target == Some(&*s.target_schema) || table.target_schema(tenant, &s.target_schema).is_some();
                last_target = Some(&s.target_schema);
                !target_known || metrics.get(&s.metric).is_none_or(|m| !declares(m, &s.metric_fields))
            });
        if !unknown {
            return Ok(());
        }
        if let Some((at, v)) = *self.confirmed.lock() {
            if table.version > 0 && table.version >= v && at.elapsed() < CONFIRMED_FOR {
                return Ok(());
            }
        }
        let stale = |m: String| {
            Status::unavailable(format!(
                "this router's zone table (version {}) may be behind and cannot be checked: {m}; retry",
                table.version
            ))
        };
        let version = self.zone.latest_version().await.map_err(|s| stale(s.message().to_owned()))?;
        self.table().wait_for(version, Duration::from_secs(5)).await.map_err(|e| stale(e.to_string()))?;
        *self.confirmed.lock() = Some((Instant::now(), version));
        Ok(())
    }

    async fn forward(&self, tenant: &str, zone: &str, batch: Vec<pb::Series>) -> Result<pb::WriteResponse, Status> {
        let routers = self.zones.zones.iter().find(|z| z.name == zone).map(|z| z.routers.clone()).unwrap_or_default();
        let mut last = format!("zone {zone} has no routers in the zone map");
        for addr in &routers {
            let channel = self
                .channels
                .get(addr)
                .map_err(|e| Status::internal(format!("zone {zone}'s router address {addr:?} in the zone map: {e}")))?;
            let mut client =
                IngestServiceClient::new(channel).max_encoding_message_size(danaus_node::MAX_MESSAGE_BYTES);
            let mut req = Request::new(pb::WriteRequest { series: batch.clone() });
            with_tenant(&mut req, tenant)?;
            req.set_timeout(Duration::from_secs(30));
            match client.write(req).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) if s.code() == tonic::Code::Unavailable || s.code() == tonic::Code::DeadlineExceeded => {
                    last = format!("router {addr} of zone {zone}: {}", s.message());
                }
                Err(s) => return Err(s),
            }
        }
        Err(Status::unavailable(format!("cannot forward to zone {zone}: {last}")))
    }

    /// Proposes a change of the zone table through any assigner member.
    async fn propose(&self, cmd: &ZoneCommand) -> Result<u64, Status> {
        self.zone.propose(cmd).await
    }

    /// Validates and applies schemas: to the global configuration when the
    /// router has one, else to the zone table. On return the table this
    /// router routes by holds them, so a write sent next routes with them.
    pub async fn apply_schemas(
        &self,
        tenant: &str,
        targets: Vec<TargetSchema>,
        metrics: Vec<MetricSchema>,
    ) -> Result<Vec<pb::ApplyResult>, Status> {
        if let Some(config) = &self.config {
            return self.apply_to_config(config.as_ref(), tenant, targets, metrics).await;
        }
        // One table change for the whole request. What it changes is
        // judged on this router's table to report per schema; the assigner
        // judges again on the committed one (a concurrent change may have
        // made some of it unneeded, or impossible).
        let table = self.table().current();
        let (changed_targets, changed_metrics) =
            table.schema_changes(tenant, &targets, &metrics).map_err(Status::invalid_argument)?;
        let outcome = |exists: bool, changed: bool| {
            (match (exists, changed) {
                (_, false) => pb::ApplyOutcome::Unchanged,
                (true, true) => pb::ApplyOutcome::Updated,
                (false, true) => pb::ApplyOutcome::Created,
            }) as i32
        };
        let mut results = Vec::new();
        for t in &targets {
            let changed = changed_targets.iter().any(|c| c.name == t.name);
            let exists = table.target_schema(tenant, &t.name).is_some();
            results.push(pb::ApplyResult { name: t.name.clone(), is_target: true, outcome: outcome(exists, changed) });
        }
        for m in &metrics {
            let changed = changed_metrics.iter().any(|c| c.name == m.name);
            let exists = table.metric_schema(tenant, &m.name).is_some();
            results.push(pb::ApplyResult { name: m.name.clone(), is_target: false, outcome: outcome(exists, changed) });
        }
        let mut version = 0;
        if !changed_targets.is_empty() || !changed_metrics.is_empty() {
            let cmd = ZoneCommand::ApplySchemas { tenant: tenant.to_owned(), targets, metrics };
            version = self.propose(&cmd).await?;
        }
        self.table()
            .wait_for(version, Duration::from_secs(10))
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(results)
    }
}

impl IngestRouter {
    /// Applies schemas to the global configuration, then waits until this
    /// router's table holds the version that has them (the zone's mirror
    /// syncs it in). While the configuration is away the change is refused
    /// with UNAVAILABLE, which senders retry; nothing is written.
    async fn apply_to_config(
        &self,
        config: &dyn danaus_config::service::Writer,
        tenant: &str,
        targets: Vec<TargetSchema>,
        metrics: Vec<MetricSchema>,
    ) -> Result<Vec<pb::ApplyResult>, Status> {
        use danaus_config::{Kind, Object};
        let names: Vec<(String, bool)> = targets
            .iter()
            .map(|t| (t.name.clone(), true))
            .chain(metrics.iter().map(|m| (m.name.clone(), false)))
            .collect();
        let objects: Vec<Object> = targets
            .into_iter()
            .map(Object::TargetSchema)
            .chain(metrics.into_iter().map(Object::MetricSchema))
            .collect();
        let origin = danaus_config::Origin {
            author: format!("danaus router (zone {})", self.zones.local),
            time: 0,
            message: "applied through SchemaService".into(),
        };
        let outcome = config.apply(tenant.to_owned(), objects, origin, None, false).await?;
        let results = names
            .into_iter()
            .map(|(name, is_target)| {
                let kind = if is_target { Kind::TargetSchema } else { Kind::MetricSchema };
                let verb =
                    outcome.changes.iter().find(|(k, _)| k.kind == kind && k.name == name).map(|(_, v)| v.as_str());
                let outcome = match verb {
                    Some("created") => pb::ApplyOutcome::Created,
                    Some(_) => pb::ApplyOutcome::Updated,
                    None => pb::ApplyOutcome::Unchanged,
                };
                pb::ApplyResult { name, is_target, outcome: outcome as i32 }
            })
            .collect();
        let mut tables = self.table().subscribe();
        let synced = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if tables.borrow_and_update().config_version >= outcome.version {
                    return true;
                }
                if tables.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await;
        if synced != Ok(true) {
            return Err(Status::unavailable(format!(
                "the configuration holds these schemas (version {}), but zone {} has not synced it within 10 s: \
                 is the zone's config mirror running? Retry.",
                outcome.version, self.zones.local
            )));
        }
        Ok(results)
    }
}

/// Whether `schema` declares every field a series names: a field it
/// lacks may have been added in a table version this router has not
/// applied yet. Writers usually give every field in declared order (one
/// pass of name comparisons).
fn declares(schema: &MetricSchema, fields: &[(String, FieldValue)]) -> bool {
    (fields.len() == schema.fields.len() && schema.fields.iter().zip(fields).all(|(d, (k, _))| d.name == *k))
        || (fields.len() <= schema.fields.len() && fields.iter().all(|(k, _)| schema.field(k).is_some()))
}

/// The services over an [`IngestRouter`].
#[derive(Clone)]
pub struct Front(Arc<IngestRouter>);

#[tonic::async_trait]
impl pb::ingest_service_server::IngestService for Front {
    async fn write(&self, req: Request<pb::WriteRequest>) -> Result<Response<pb::WriteResponse>, Status> {
        let tenant = tenant(&req)?;
        Ok(Response::new(self.0.write(&tenant, req.into_inner().series).await?))
    }
}

#[tonic::async_trait]
impl pb::schema_service_server::SchemaService for Front {
    async fn apply(&self, req: Request<pb::ApplySchemasRequest>) -> Result<Response<pb::ApplySchemasResponse>, Status> {
        let tenant = tenant(&req)?;
        let req = req.into_inner();
        let bad = |e: convert::ConvertError| Status::invalid_argument(e.0);
        let targets = req.targets.iter().map(convert::target_schema).collect::<Result<Vec<_>, _>>().map_err(bad)?;
        let metrics = req.metrics.iter().map(convert::metric_schema).collect::<Result<Vec<_>, _>>().map_err(bad)?;
        let results = self.0.apply_schemas(&tenant, targets, metrics).await?;
        Ok(Response::new(pb::ApplySchemasResponse { results }))
    }

    async fn get(&self, req: Request<pb::GetSchemaRequest>) -> Result<Response<pb::GetSchemaResponse>, Status> {
        let tenant = tenant(&req)?;
        use pb::get_schema_request::Name;
        use pb::get_schema_response::Schema;
        let table = self.0.table().current();
        let schema = match req.into_inner().name {
            Some(Name::Target(n)) => Schema::Target(convert::target_schema_to(
                table.target_schema(&tenant, &n).ok_or_else(|| Status::not_found(format!("no target schema {n:?}")))?,
            )),
            Some(Name::Metric(n)) => Schema::Metric(convert::metric_schema_to(
                table.metric_schema(&tenant, &n).ok_or_else(|| Status::not_found(format!("no metric schema {n:?}")))?,
            )),
            None => return Err(Status::invalid_argument("name a target or a metric schema")),
        };
        Ok(Response::new(pb::GetSchemaResponse { schema: Some(schema) }))
    }

    async fn list(&self, req: Request<pb::ListSchemasRequest>) -> Result<Response<pb::ListSchemasResponse>, Status> {
        let tenant = tenant(&req)?;
        let table = self.0.table().current();
        let s = table.schemas.get(&tenant);
        Ok(Response::new(pb::ListSchemasResponse {
            targets: s.map(|s| s.targets.values().map(convert::target_schema_to).collect()).unwrap_or_default(),
            metrics: s.map(|s| s.metrics.values().map(convert::metric_schema_to).collect()).unwrap_or_default(),
        }))
    }
}
