//! `GET /api/v1/failovers`: detected failover events with their evidence and impact, and
//! the per-call view of the same analysis for the call summary.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{params, ApiError, AppState};
use crate::correlate::failover::{self, Event, EventKind, Impact};
use crate::store::{CallQueries, CallSummary};
use crate::timeutil::{format_rfc3339, parse_time, MICROS};

/// Widest range analysed at once (the analysis aggregates every message in it).
const MAX_RANGE_US: u64 = 24 * 3600 * MICROS;
/// Default range, ending now.
const DEFAULT_RANGE_US: u64 = 3600 * MICROS;
/// How far around a call its summary looks for events.
const CALL_MARGIN_US: u64 = 60 * MICROS;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverParams {
    from: Option<String>,
    to: Option<String>,
}

/// The answer of `GET /api/v1/failovers`.
#[derive(Debug, Serialize)]
pub struct FailoverList {
    from: String,
    to: String,
    events: Vec<Event>,
}

/// `GET /api/v1/failovers?from=&to=`.
pub async fn list<Q: CallQueries>(
    State(state): State<AppState<Q>>,
    q: Result<Query<FailoverParams>, QueryRejection>,
) -> Result<Json<FailoverList>, ApiError> {
    let p = params(q)?;
    let time = |name: &str, v: &Option<String>| -> Result<Option<u64>, ApiError> {
        v.as_deref().map(parse_time).transpose().map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    let to = time("to", &p.to)?.unwrap_or(now);
    let from = time("from", &p.from)?.unwrap_or(to.saturating_sub(DEFAULT_RANGE_US));
    if from > to {
        return Err(ApiError::bad_request("from must not be after to"));
    }
    if to - from > MAX_RANGE_US {
        return Err(ApiError::bad_request("the range may span at most 24 hours"));
    }
    let events = failover::analyze(state.queries.as_ref(), &state.correlation.failover, (from, to))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(FailoverList { from: format_rfc3339(from), to: format_rfc3339(to), events }))
}

/// What the failovers around a call did to it.
#[derive(Debug, Serialize)]
pub struct CallFailover {
    /// Whether an event happened while the call was in progress and touched it.
    pub spanned: bool,
    /// The worst impact (`none` when no event touched it).
    pub impact: String,
    /// The events that touched it, each with what it did.
    pub events: Vec<CallEvent>,
}

/// One event as one call saw it.
#[derive(Debug, Serialize)]
pub struct CallEvent {
    kind: EventKind,
    time: String,
    address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    impact: Impact,
    explanation: String,
}

/// Runs the analysis around one call and keeps what concerns it.
pub async fn of_call<Q: CallQueries>(state: &AppState<Q>, call: &CallSummary) -> Result<CallFailover, ApiError> {
    let range = (call.first_us.saturating_sub(CALL_MARGIN_US), call.last_us.saturating_add(CALL_MARGIN_US));
    let events = failover::analyze(state.queries.as_ref(), &state.correlation.failover, range)
        .await
        .map_err(ApiError::internal)?;
    let mut mine: Vec<CallEvent> = Vec::new();
    for e in events {
        if let Some(c) = e.calls.iter().find(|c| c.call_id == call.call_id) {
            mine.push(CallEvent {
                kind: e.kind,
                time: e.time.clone(),
                address: e.address.clone(),
                from: e.from.clone(),
                to: e.to.clone(),
                impact: c.impact,
                explanation: c.explanation.clone(),
            });
        }
    }
    let worst = mine.iter().map(|e| e.impact).max();
    let impact = match worst {
        Some(i) => serde_json::to_value(i).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        None => "none".to_owned(),
    };
    Ok(CallFailover { spanned: !mine.is_empty(), impact, events: mine })
}
