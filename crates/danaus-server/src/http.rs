//! The HTTP port's Prometheus remote_write at `/api/v1/write`
//! (`danaus-prom`), served by `danaus standalone` and every zone router,
//! and its counters. (`/metrics` and `/healthz` beside it: `zone`.)

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use danaus_node::tenant::{tenant_name, TENANT_HEADER};
use danaus_node::MAX_MESSAGE_BYTES;
use danaus_prom::Receiver;
pub use danaus_roles::metrics::{Text, OPENMETRICS};

/// `/api/v1/write` over `rx`: standalone's HTTP port and a zone router's.
pub fn remote_write_routes(rx: Arc<Receiver>) -> Router {
    Router::new()
        .route("/api/v1/write", post(remote_write))
        .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .with_state(rx)
}

/// Prometheus remote_write (1.0 and 2.0); the tenant comes from the
/// `x-danaus-tenant` header as on the gRPC API.
async fn remote_write(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let tenant = match tenant_name(h(TENANT_HEADER)) {
        Ok(t) => t,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let reply = rx.handle(&tenant, h("content-type"), h("content-encoding"), &body).await;
    let mut resp =
        (StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), reply.body).into_response();
    for (k, v) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// A remote_write receiver's counters.
pub fn remote_write_metrics(t: &mut Text, rx: &Receiver) {
    let rw = rx.stats();
    t.counter("danaus_remote_write_requests_total", "Prometheus remote_write requests.", &rw.requests);
    t.counter("danaus_remote_write_samples_total", "Samples stored from remote_write.", &rw.samples_written);
    t.counter("danaus_remote_write_series_refused_total", "Series refused (400 to the sender).", &rw.series_refused);
    t.counter("danaus_remote_write_failed_requests_total", "Requests refused as a whole.", &rw.failed_requests);
    t.counter(
        "danaus_remote_write_series_known_total",
        "Series written as an earlier request with the same label bytes was converted (labels not read again).",
        &rw.series_known,
    );
}
