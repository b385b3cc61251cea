//! The HTTP API (axum). Handlers are thin: validate parameters, call the read-only
//! [`CallQueries`] store, shape JSON, text, SVG or HTML. Every error is JSON `{"error": "..."}`
//! with a 4xx/5xx status.

mod calls;
mod failovers;
mod flow;
mod ladder;
mod page;
mod pcap;

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::config::Correlation;
use crate::metrics::Metrics;
use crate::store::CallQueries;
use crate::timeutil::format_rfc3339;

/// The OpenAPI 3 description of these routes (hand-written: a generator crate would
/// cost more build time than the dozen paths it describes).
pub const OPENAPI: &str = include_str!("openapi.json");

/// What the handlers share.
pub struct AppState<Q> {
    queries: Arc<Q>,
    metrics: Arc<Metrics>,
    correlation: Arc<Correlation>,
}

impl<Q> Clone for AppState<Q> {
    fn clone(&self) -> Self {
        Self { queries: self.queries.clone(), metrics: self.metrics.clone(), correlation: self.correlation.clone() }
    }
}

/// The API routes.
pub fn router<Q: CallQueries>(queries: Arc<Q>, metrics: Arc<Metrics>, correlation: Arc<Correlation>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_text::<Q>))
        .route("/api/v1/calls", get(calls::search::<Q>))
        .route("/api/v1/calls/{call_id}", get(calls::summary::<Q>))
        .route("/api/v1/calls/{call_id}/flow", get(flow::flow::<Q>))
        .route("/api/v1/calls/{call_id}/flow.html", get(flow::flow_html::<Q>))
        .route("/api/v1/calls/{call_id}/pcap", get(pcap::pcap::<Q>))
        .route("/api/v1/messages/{id}", get(message::<Q>))
        .route("/api/v1/failovers", get(failovers::list::<Q>))
        .route("/api/v1/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .with_state(AppState { queries, metrics, correlation })
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    /// 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, message: message.into() }
    }

    /// 500; the cause goes to the log, not to the client.
    pub fn internal(cause: String) -> Self {
        tracing::error!(%cause, "API query failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "storage query failed; see the collector log".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request(r.body_text())
    }
}

/// Parses query parameters into `T`, turning axum's plain-text rejection into JSON.
fn params<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    Ok(q?.0)
}

async fn metrics_text<Q: CallQueries>(State(state): State<AppState<Q>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageParams {
    format: Option<String>,
}

/// `GET /api/v1/messages/{id}`: one stored message; `?format=raw` gives the bytes as captured.
async fn message<Q: CallQueries>(
    State(state): State<AppState<Q>>,
    Path(id): Path<String>,
    q: Result<Query<MessageParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(q)?;
    let id: u64 =
        id.parse().map_err(|_| ApiError::bad_request(format!("message id `{id}` is not an unsigned integer")))?;
    let m = state.queries.message(id).await.map_err(ApiError::internal)?;
    let m = m.ok_or_else(|| ApiError::not_found(format!("no message with id {id}")))?;
    match p.format.as_deref() {
        Some("raw") => Ok(([(header::CONTENT_TYPE, "application/octet-stream")], m.raw).into_response()),
        None | Some("json") => {
            let r = &m;
            Ok(Json(serde_json::json!({
                "id": r.id.to_string(),
                "call_id": r.call_id,
                "time": format_rfc3339(r.time_us),
                "time_us": r.time_us,
                "node": r.node_name,
                "src": flow::addr(&r.src_ip, r.src_port),
                "dst": flow::addr(&r.dst_ip, r.dst_port),
                "transport": flow::transport_name(r.transport),
                "raw": String::from_utf8_lossy(&m.raw),
            }))
            .into_response())
        }
        Some(other) => Err(ApiError::bad_request(format!("format must be json or raw, not `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn openapi_is_json_and_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let src = include_str!("mod.rs");
        for line in src.lines().filter_map(|l| l.trim().strip_prefix(".route(\"")) {
            let path = &line[..line.find('"').unwrap()];
            assert!(doc["paths"].get(path).is_some(), "{path} is not in openapi.json");
        }
    }
}
