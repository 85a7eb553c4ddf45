//! The Prometheus HTTP query API on the HTTP port: `/api/v1/query`,
//! `query_range`, `series`, `labels`, `label/<name>/values`, `metadata`,
//! `query_exemplars` and `status/buildinfo`, GET and form POST, over the
//! zone's query engine (`danaus_promql::DanausStorage`). The tenant comes
//! from the `x-danaus-tenant` header, as for remote_write.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use danaus_assigner::TableWatcher;
use danaus_model::{MetricSchema, TargetSchema};
use danaus_node::query::EngineSource;
use danaus_node::tenant::{tenant_name, TENANT_HEADER};
use danaus_prom::TARGET_SCHEMA;
use danaus_promql::api::{self, Params, Reply};
use danaus_promql::{DanausStorage, Error, Options};
use tokio::sync::Semaphore;

/// A tenant's schemas as the PromQL API sees them: the target schema of
/// Prometheus series (if the tenant has one) and every metric schema.
pub type SchemaSource = Arc<dyn Fn(&str) -> (Option<Arc<TargetSchema>>, Vec<Arc<MetricSchema>>) + Send + Sync>;

/// What the query API needs.
#[derive(Clone)]
pub struct PromqlApi {
    /// A query engine (over the zone, or every zone at the root), per query.
    pub engines: EngineSource,
    /// The schemas (the zone table's, or the global configuration's).
    pub schemas: SchemaSource,
    /// The location remote_write and the scraper give series without
    /// one: not shown as a label (`None`: every location is shown).
    pub default_location: Option<String>,
    /// Evaluation options.
    pub options: Options,
    /// Queries running at once, at most; more wait.
    pub running: Arc<Semaphore>,
    /// How long a query may run when it names no `timeout` (Prometheus'
    /// `--query.timeout`, 2 minutes).
    pub timeout: Duration,
}

impl PromqlApi {
    /// The API over a zone's `engines` and the schemas of its `table`,
    /// with Prometheus' defaults.
    pub fn new(engines: EngineSource, table: TableWatcher, default_location: String, max_running: usize) -> Self {
        let schemas: SchemaSource = Arc::new(move |tenant: &str| {
            let table = table.current();
            match table.schemas.get(tenant) {
                Some(s) => (
                    s.targets.get(TARGET_SCHEMA).cloned().map(Arc::new),
                    s.metrics.values().cloned().map(Arc::new).collect(),
                ),
                None => (None, Vec::new()),
            }
        });
        Self::with_schemas(engines, schemas, Some(default_location), max_running)
    }

    /// The API over any `engines` and `schemas`, with Prometheus' defaults.
    pub fn with_schemas(
        engines: EngineSource,
        schemas: SchemaSource,
        default_location: Option<String>,
        max_running: usize,
    ) -> Self {
        Self {
            engines,
            schemas,
            default_location,
            options: Options::default(),
            running: Arc::new(Semaphore::new(max_running.max(1))),
            timeout: Duration::from_secs(120),
        }
    }

    fn storage(&self, tenant: &str) -> DanausStorage {
        let (target, metrics) = (self.schemas)(tenant);
        let storage = DanausStorage::new((self.engines)(), tenant, target, metrics);
        match &self.default_location {
            Some(l) => storage.hide_default("location", l),
            None => storage,
        }
    }
}

/// The routes.
pub fn promql_routes(api: PromqlApi) -> Router {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/query_exemplars", get(exemplars).post(exemplars))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .with_state(api)
}

/// What every handler starts from: tenant and parameters.
struct Call {
    tenant: String,
    params: Params,
}

fn call(headers: &HeaderMap, query: Option<String>, body: &[u8]) -> Result<Call, Reply> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let tenant = tenant_name(h(TENANT_HEADER)).map_err(|e| api::error_reply(&Error::BadData(e.to_string())))?;
    let form = h("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let params = Params::parse(query.unwrap_or_default().as_bytes(), if form { body } else { b"" });
    Ok(Call { tenant, params })
}

fn respond(r: Reply) -> Response {
    (
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        r.body,
    )
        .into_response()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The query's timeout: its `timeout` parameter, at most the server's.
fn timeout_of(api: &PromqlApi, params: &Params) -> Result<std::time::Duration, Reply> {
    match api::timeout(params) {
        Ok(t) => Ok(t.map_or(api.timeout, |t| t.min(api.timeout))),
        Err(e) => Err(api::error_reply(&e)),
    }
}

/// Runs `f` under the concurrency cap and the query's timeout.
async fn limited(api: &PromqlApi, params: &Params, f: impl std::future::Future<Output = Reply>) -> Reply {
    let timeout = match timeout_of(api, params) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let Ok(_permit) = api.running.acquire().await else {
        return api::error_reply(&Error::Storage { message: "the query API is shutting down".into(), retryable: true });
    };
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => r,
        Err(_) => api::error_reply(&Error::Timeout(format!("{timeout:?}"))),
    }
}

/// The endpoints that evaluate or scan.
#[derive(Clone, Copy)]
enum Endpoint {
    Query,
    QueryRange,
    Series,
    Labels,
}

async fn run(api: &PromqlApi, ep: Endpoint, headers: &HeaderMap, q: Option<String>, body: &[u8]) -> Response {
    let c = match call(headers, q, body) {
        Ok(c) => c,
        Err(r) => return respond(r),
    };
    let storage = api.storage(&c.tenant);
    let p = &c.params;
    // Evaluation computes on this thread: it watches the same deadline
    // the timer below enforces on fetches.
    let options = match timeout_of(api, p) {
        Ok(t) => danaus_promql::Options { deadline: Some(std::time::Instant::now() + t), ..api.options },
        Err(r) => return respond(r),
    };
    let answer = async {
        match ep {
            Endpoint::Query => api::query(&storage, p, now_ms(), options).await,
            Endpoint::QueryRange => api::query_range(&storage, p, options).await,
            Endpoint::Series => api::series(&storage, p, now_ms()).await,
            Endpoint::Labels => api::label_names(&storage, p, now_ms()).await,
        }
    };
    respond(limited(api, p, answer).await)
}

async fn query(State(api): State<PromqlApi>, headers: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> Response {
    run(&api, Endpoint::Query, &headers, q, &body).await
}

async fn query_range(State(api): State<PromqlApi>, headers: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> Response {
    run(&api, Endpoint::QueryRange, &headers, q, &body).await
}

async fn series(State(api): State<PromqlApi>, headers: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> Response {
    run(&api, Endpoint::Series, &headers, q, &body).await
}

async fn labels(State(api): State<PromqlApi>, headers: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> Response {
    run(&api, Endpoint::Labels, &headers, q, &body).await
}

async fn label_values(
    State(api): State<PromqlApi>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let c = match call(&headers, q, b"") {
        Ok(c) => c,
        Err(r) => return respond(r),
    };
    if name == danaus_promql::METRIC_NAME && c.params.all("match[]").is_empty() {
        // Metric names come from the schemas, no scan needed.
        let (_, metrics) = (api.schemas)(&c.tenant);
        let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        return respond(Reply {
            status: 200,
            body: serde_json::json!({"status": "success", "data": names}).to_string(),
        });
    }
    let storage = api.storage(&c.tenant);
    respond(limited(&api, &c.params, api::label_values(&storage, &name, &c.params, now_ms())).await)
}

async fn metadata(State(api): State<PromqlApi>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let c = match call(&headers, q, b"") {
        Ok(c) => c,
        Err(r) => return respond(r),
    };
    let (_, metrics) = (api.schemas)(&c.tenant);
    respond(api::metadata(&metrics, &c.params))
}

async fn exemplars(headers: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> Response {
    match call(&headers, q, &body) {
        Ok(c) => respond(api::query_exemplars(&c.params)),
        Err(r) => respond(r),
    }
}

async fn buildinfo() -> Response {
    respond(api::buildinfo(env!("CARGO_PKG_VERSION")))
}
