//! Prometheus' rules and alerts API on the HTTP port, over an
//! evaluator's status (`danaus_evaluator::status`): `/api/v1/rules`
//! (with `type`, `rule_name[]`, `rule_group[]` and `file[]`) and
//! `/api/v1/alerts`, as Prometheus 2.42 answers them, so Grafana's
//! alerting views work unchanged. The tenant comes from the
//! `x-danaus-tenant` header; a group's `file` is its tenant (rule groups
//! live in the configuration, not in files).

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use danaus_config::feed::Feed;
use danaus_evaluator::{Evaluator, GroupStatus, RuleStatus};
use danaus_model::time::format_rfc3339_nano;
use danaus_node::tenant::{tenant_name, TENANT_HEADER};
use danaus_promql::api::Params;
use danaus_rules::alert::Alert;
use danaus_rules::template::go_format_float;
use serde_json::{json, Map, Value};

/// What the rules API needs.
#[derive(Clone)]
pub struct RulesApi {
    /// The evaluator whose rules are shown.
    pub evaluator: Evaluator,
    /// The configuration it runs.
    pub config: Feed,
}

/// The routes.
pub fn rules_routes(api: RulesApi) -> Router {
    Router::new().route("/api/v1/rules", get(rules)).route("/api/v1/alerts", get(alerts)).with_state(api)
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn bad_data(msg: String) -> Response {
    reply(StatusCode::BAD_REQUEST, json!({"status": "error", "errorType": "bad_data", "error": msg}))
}

/// The request's tenant, or the error to answer with.
fn tenant(headers: &HeaderMap) -> Result<String, String> {
    let h = headers.get(TENANT_HEADER).and_then(|v| v.to_str().ok());
    tenant_name(h).map_err(|e| e.to_string())
}

/// Go's zero time when never.
fn time(ms: Option<i64>) -> String {
    ms.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), |ms| format_rfc3339_nano(ms.saturating_mul(1_000_000)))
}

fn labels<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<Map<_, _>>())
}

fn alert_json(a: &Alert) -> Value {
    let mut o = json!({
        "labels": labels(a.labels.pairs().iter().map(|(k, v)| (k, v))),
        "annotations": labels(&a.annotations),
        "state": a.state.as_str(),
        "activeAt": time(Some(a.active_at)),
        "value": go_format_float(a.value, b'e', -1),
    });
    if let Some(since) = a.keep_firing_since {
        o["keepFiringSince"] = Value::String(time(Some(since)));
    }
    o
}

fn rule_json(r: &RuleStatus, last_eval: Option<i64>) -> Value {
    let mut o = Map::new();
    if r.alerting {
        o.insert("state".into(), r.state().as_str().into());
    }
    o.insert("name".into(), r.name.clone().into());
    o.insert("query".into(), r.expr.clone().into());
    if r.alerting {
        o.insert("duration".into(), json!(r.for_ms as f64 / 1e3));
        o.insert("keepFiringFor".into(), json!(r.keep_firing_for_ms as f64 / 1e3));
        o.insert("labels".into(), labels(&r.labels));
        o.insert("annotations".into(), labels(&r.annotations));
        o.insert("alerts".into(), Value::Array(r.alerts.iter().map(alert_json).collect()));
    } else if !r.labels.is_empty() {
        o.insert("labels".into(), labels(&r.labels));
    }
    o.insert("health".into(), r.health.as_str().into());
    if let Some(e) = &r.last_error {
        o.insert("lastError".into(), e.clone().into());
    }
    o.insert("evaluationTime".into(), json!(r.duration_us as f64 / 1e6));
    o.insert("lastEvaluation".into(), time(last_eval).into());
    o.insert("type".into(), if r.alerting { "alerting" } else { "recording" }.into());
    Value::Object(o)
}

async fn rules(State(api): State<RulesApi>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let tenant = match tenant(&headers) {
        Ok(t) => t,
        Err(e) => return bad_data(e),
    };
    let params = Params::parse(q.unwrap_or_default().as_bytes(), b"");
    let kind = match params.get("type").map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => None,
        Some("alert") => Some(true),
        Some("record") => Some(false),
        Some(other) => return bad_data(format!("not supported value {other:?}")),
    };
    let names = params.all("rule_name[]");
    let groups = params.all("rule_group[]");
    let files = params.all("file[]");
    let filtering = kind.is_some() || !names.is_empty() || !groups.is_empty() || !files.is_empty();
    let view = api.config.current();
    let mut out = Vec::new();
    for g in api.evaluator.status(&view, Some(&tenant)) {
        if (!groups.is_empty() && !groups.contains(&g.name.as_str()))
            || (!files.is_empty() && !files.contains(&g.tenant.as_str()))
        {
            continue;
        }
        let rules: Vec<Value> = g
            .rules
            .iter()
            .filter(|r| kind.is_none_or(|alerting| r.alerting == alerting))
            .filter(|r| names.is_empty() || names.contains(&r.name.as_str()))
            .map(|r| rule_json(r, g.last_eval))
            .collect();
        if filtering && rules.is_empty() {
            continue;
        }
        out.push(group_json(&g, rules));
    }
    reply(StatusCode::OK, json!({"status": "success", "data": {"groups": out}}))
}

fn group_json(g: &GroupStatus, rules: Vec<Value>) -> Value {
    let mut o = json!({
        "name": g.name,
        "file": g.tenant,
        "rules": rules,
        "interval": g.interval_ms as f64 / 1e3,
        "limit": g.limit,
        "evaluationTime": g.duration_us as f64 / 1e6,
        "lastEvaluation": time(g.last_eval),
    });
    if let Some(why) = &g.invalid {
        o["lastError"] = Value::String(why.clone());
    }
    o
}

async fn alerts(State(api): State<RulesApi>, headers: HeaderMap) -> Response {
    let tenant = match tenant(&headers) {
        Ok(t) => t,
        Err(e) => return bad_data(e),
    };
    let view = api.config.current();
    let alerts: Vec<Value> = api
        .evaluator
        .status(&view, Some(&tenant))
        .iter()
        .flat_map(|g| g.rules.iter())
        .flat_map(|r| r.alerts.iter().map(alert_json))
        .collect();
    reply(StatusCode::OK, json!({"status": "success", "data": {"alerts": alerts}}))
}
