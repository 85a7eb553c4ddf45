//! Brings a zone's table to the global configuration: the zone's config
//! mirror proposes each committed configuration version's schemas to the
//! zone's Raft group (`ZoneCommand::SyncConfig`), so routers and leaves,
//! which fence writes by the zone table's version, see a schema exactly
//! when the table that names it does; and the zone keeps its schemas,
//! replicated, while the global layer is away.
//!
//! Schemas the table holds but the configuration lacks (registered before
//! the configuration existed, by an earlier Danaus) are first *adopted*:
//! applied to the configuration as they are, so it holds every schema a
//! zone stores series of.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use danaus_assigner::{TableWatcher, TenantSchemas, ZoneClient, ZoneCommand, ZoneTable};
use danaus_config::feed::Feed;
use danaus_config::service::Writer;
use danaus_config::{ConfigView, Object, Origin};
use danaus_storage::Clock;

/// What the configuration holds that the table lacks or holds older, per
/// tenant.
fn to_sync(view: &ConfigView, table: &ZoneTable) -> BTreeMap<String, TenantSchemas> {
    let mut out: BTreeMap<String, TenantSchemas> = BTreeMap::new();
    for (key, object) in &view.objects {
        match object {
            Object::TargetSchema(t) if table.target_schema(&key.tenant, &t.name) != Some(t) => {
                out.entry(key.tenant.clone()).or_default().targets.insert(t.name.clone(), t.clone());
            }
            Object::MetricSchema(m) if table.metric_schema(&key.tenant, &m.name) != Some(m) => {
                out.entry(key.tenant.clone()).or_default().metrics.insert(m.name.clone(), m.clone());
            }
            _ => {}
        }
    }
    out
}

/// What the table holds that the configuration lacks, or holds with fewer
/// fields, per tenant.
fn to_adopt(view: &ConfigView, table: &ZoneTable) -> BTreeMap<String, Vec<Object>> {
    let mut out: BTreeMap<String, Vec<Object>> = BTreeMap::new();
    for (tenant, s) in &table.schemas {
        for t in s.targets.values() {
            if view.target_schema(tenant, &t.name).is_none() {
                out.entry(tenant.clone()).or_default().push(Object::TargetSchema(t.clone()));
            }
        }
        for m in s.metrics.values() {
            if view.metric_schema(tenant, &m.name).is_none_or(|c| c.fields.len() < m.fields.len()) {
                out.entry(tenant.clone()).or_default().push(Object::MetricSchema(m.clone()));
            }
        }
    }
    out
}

/// Keeps zone `zone_name`'s table at `feed`'s version until the task is
/// dropped; adopts what the table holds and the configuration lacks
/// through `writer`.
pub async fn sync_zone(
    zone_name: String,
    feed: Feed,
    table: TableWatcher,
    zone: Arc<ZoneClient>,
    writer: Arc<dyn Writer>,
    clock: Arc<dyn Clock>,
) {
    let mut views = feed.subscribe();
    let mut tables = table.subscribe();
    let mut failing = false;
    loop {
        let (view, t) = (feed.current(), table.current());
        // No table yet (none fetched): nothing to compare with.
        if t.version > 0 {
            let adopt = to_adopt(&view, &t);
            for (tenant, objects) in &adopt {
                let origin = Origin {
                    author: format!("danaus (zone {zone_name})"),
                    time: clock.now(),
                    message: format!(
                        "adopted {} schemas the zone's table held before the configuration did",
                        objects.len()
                    ),
                };
                match writer.apply(tenant.clone(), objects.clone(), origin, None, false).await {
                    Ok(o) => {
                        tracing::info!(zone = %zone_name, tenant = %tenant, version = o.version, "schemas adopted into the configuration")
                    }
                    Err(s) => {
                        failing = true;
                        tracing::warn!(zone = %zone_name, tenant = %tenant, "adopting schemas into the configuration: {}", s.message());
                    }
                }
            }
            if adopt.is_empty() && view.version > t.config_version {
                let cmd = ZoneCommand::SyncConfig { version: view.version, schemas: to_sync(&view, &t) };
                match zone.propose(&cmd).await {
                    Ok(v) => {
                        failing = false;
                        tracing::debug!(zone = %zone_name, config = view.version, table = v, "configuration synced");
                    }
                    Err(s) => {
                        failing = true;
                        tracing::warn!(zone = %zone_name, config = view.version, "syncing the configuration into the zone: {}", s.message());
                    }
                }
            }
        }
        let wait = if failing { Duration::from_millis(500) } else { Duration::from_secs(5) };
        tokio::select! {
            r = views.changed() => if r.is_err() { return },
            r = tables.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
