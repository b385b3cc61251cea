//! Call search and call summary.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{params, ApiError, AppState};
use crate::store::{CallFilter, CallQueries, CallSummary};
use crate::timeutil::{format_rfc3339, parse_time, MICROS};

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page size.
pub const MAX_LIMIT: u32 = 1000;
/// Largest offset: deep paging over a merge is expensive; narrow the time range instead.
pub const MAX_OFFSET: u32 = 100_000;
/// Default search window, ending now.
const DEFAULT_WINDOW_US: u64 = 24 * 3600 * MICROS;
/// Widest search window.
const MAX_WINDOW_US: u64 = 93 * 24 * 3600 * MICROS;

/// Query parameters of `GET /api/v1/calls`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    from: Option<String>,
    to: Option<String>,
    number: Option<String>,
    call_id: Option<String>,
    node: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// A call summary as the API shows it.
#[derive(Debug, Serialize)]
pub struct CallView {
    call_id: String,
    start: String,
    end: String,
    start_us: u64,
    end_us: u64,
    duration_ms: u64,
    messages: u64,
    caller: String,
    callee: String,
    final_status: u16,
    state: &'static str,
    nodes: Vec<String>,
    methods: Vec<String>,
    aleg_id: String,
    /// What failovers did to it (single-call lookups only: it costs an analysis).
    #[serde(skip_serializing_if = "Option::is_none")]
    failover: Option<super::failovers::CallFailover>,
}

impl From<CallSummary> for CallView {
    fn from(mut c: CallSummary) -> Self {
        c.nodes.sort();
        c.methods.sort();
        let state = call_state(c.final_status, &c.methods);
        Self {
            start: format_rfc3339(c.first_us),
            end: format_rfc3339(c.last_us),
            start_us: c.first_us,
            end_us: c.last_us,
            duration_ms: c.last_us.saturating_sub(c.first_us) / 1000,
            messages: c.messages,
            call_id: c.call_id,
            caller: c.caller,
            callee: c.callee,
            final_status: c.final_status,
            state,
            nodes: c.nodes,
            methods: c.methods,
            aleg_id: c.aleg_id,
            failover: None,
        }
    }
}

/// A one-word outcome, from the final status and the methods seen.
pub(super) fn call_state(status: u16, methods: &[String]) -> &'static str {
    let has = |m: &str| methods.iter().any(|x| x == m);
    match status {
        200..=299 if has("BYE") => "completed",
        200..=299 => "answered",
        300..=399 => "redirected",
        487 => "cancelled",
        400..=699 => "failed",
        _ if has("CANCEL") => "cancelled",
        _ if has("INVITE") => "in_progress",
        _ => "other",
    }
}

/// The answer to a search.
#[derive(Debug, Serialize)]
pub struct SearchResult {
    calls: Vec<CallView>,
    from: String,
    to: String,
    limit: u32,
    offset: u32,
    /// Offset of the next page, when this page was full.
    next_offset: Option<u32>,
}

/// `GET /api/v1/calls`.
pub async fn search<Q: CallQueries>(
    State(state): State<AppState<Q>>,
    q: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<SearchResult>, ApiError> {
    let filter = validate(params(q)?, now_us())?;
    let calls = state.queries.search(&filter).await.map_err(ApiError::internal)?;
    let full = calls.len() as u32 == filter.limit;
    Ok(Json(SearchResult {
        calls: calls.into_iter().map(CallView::from).collect(),
        from: format_rfc3339(filter.from_us),
        to: format_rfc3339(filter.to_us),
        limit: filter.limit,
        offset: filter.offset,
        next_offset: full.then_some(filter.offset + filter.limit),
    }))
}

/// `GET /api/v1/calls/{call_id}`.
pub async fn summary<Q: CallQueries>(
    State(state): State<AppState<Q>>,
    Path(call_id): Path<String>,
) -> Result<Json<CallView>, ApiError> {
    check_call_id(&call_id)?;
    let call = state.queries.call(&call_id).await.map_err(ApiError::internal)?;
    let call = call.ok_or_else(|| ApiError::not_found(format!("no call with Call-ID `{call_id}`")))?;
    let failover = super::failovers::of_call(&state, &call).await?;
    let mut view = CallView::from(call);
    view.failover = Some(failover);
    Ok(Json(view))
}

/// Call-IDs are free text in SIP; bound the length only (values are bound, not spliced).
pub fn check_call_id(call_id: &str) -> Result<(), ApiError> {
    if call_id.is_empty() || call_id.len() > 512 {
        return Err(ApiError::bad_request("call_id must be 1 to 512 bytes"));
    }
    Ok(())
}

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Turns the raw parameters into a bounded filter, or says which one is wrong.
pub fn validate(p: SearchParams, now_us: u64) -> Result<CallFilter, ApiError> {
    let time = |name: &str, v: &Option<String>| -> Result<Option<u64>, ApiError> {
        v.as_deref().map(parse_time).transpose().map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
    };
    // Looking a Call-ID up needs no time range: the summary is keyed by date and Call-ID,
    // so every retained day costs one index probe. Any other search is bounded in time.
    let by_call_id_only = p.call_id.is_some() && p.from.is_none() && p.to.is_none();
    let to_us = time("to", &p.to)?.unwrap_or(now_us + if by_call_id_only { DEFAULT_WINDOW_US } else { 0 });
    let from_us =
        time("from", &p.from)?.unwrap_or(if by_call_id_only { 0 } else { to_us.saturating_sub(DEFAULT_WINDOW_US) });
    if from_us > to_us {
        return Err(ApiError::bad_request("from must not be after to"));
    }
    if !by_call_id_only && to_us - from_us > MAX_WINDOW_US {
        return Err(ApiError::bad_request("the time range may span at most 93 days"));
    }
    if let Some(n) = &p.number {
        let ok = (1..=64).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"+*#._-".contains(&b));
        if !ok {
            return Err(ApiError::bad_request("number must be 1 to 64 characters of 0-9 A-Z a-z + * # . _ -"));
        }
    }
    if let Some(id) = &p.call_id {
        check_call_id(id)?;
    }
    if p.node.as_ref().is_some_and(|n| n.is_empty() || n.len() > 128) {
        return Err(ApiError::bad_request("node must be 1 to 128 bytes"));
    }
    let int = |name: &str, v: &Option<String>, range: std::ops::RangeInclusive<u32>| -> Result<Option<u32>, ApiError> {
        let Some(s) = v else { return Ok(None) };
        match s.parse::<u32>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::bad_request(format!(
                "{name} must be an integer in {}..={}, got `{s}`",
                range.start(),
                range.end()
            ))),
        }
    };
    Ok(CallFilter {
        from_us,
        to_us,
        number: p.number,
        call_id: p.call_id,
        node: p.node,
        status: int("status", &p.status, 100..=699)?.map(|s| s as u16),
        limit: int("limit", &p.limit, 1..=MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT),
        offset: int("offset", &p.offset, 0..=MAX_OFFSET)?.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> SearchParams {
        let q: String = pairs.iter().map(|(k, v)| format!("{k}={v}&")).collect();
        serde_urlencoded_like(&q)
    }

    // axum's Query uses serde_urlencoded; building the struct by hand keeps this test
    // free of that crate.
    fn serde_urlencoded_like(q: &str) -> SearchParams {
        let mut s = SearchParams::default();
        for kv in q.split('&').filter(|x| !x.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap();
            let v = Some(v.to_owned());
            match k {
                "from" => s.from = v,
                "to" => s.to = v,
                "number" => s.number = v,
                "call_id" => s.call_id = v,
                "status" => s.status = v,
                "limit" => s.limit = v,
                "offset" => s.offset = v,
                _ => unreachable!(),
            }
        }
        s
    }

    #[test]
    fn defaults_and_bounds() {
        let f = validate(p(&[]), 100 * 24 * 3600 * MICROS).unwrap();
        assert_eq!(f.to_us - f.from_us, DEFAULT_WINDOW_US);
        let by_id = validate(p(&[("call_id", "abc@host")]), 100 * 24 * 3600 * MICROS).unwrap();
        assert_eq!(by_id.from_us, 0, "a Call-ID lookup covers every retained day");
        assert_eq!(f.limit, DEFAULT_LIMIT);
        for bad in [
            &[("limit", "0")][..],
            &[("limit", "5000")],
            &[("status", "abc")],
            &[("from", "yesterday")],
            &[("number", "12' OR 1=1")],
            &[("from", "2025-11-22T00:00:00Z"), ("to", "2025-11-21T00:00:00Z")],
        ] {
            assert!(validate(p(bad), 1).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn states() {
        let m = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(call_state(200, &m(&["INVITE", "ACK", "BYE"])), "completed");
        assert_eq!(call_state(486, &m(&["INVITE"])), "failed");
        assert_eq!(call_state(0, &m(&["INVITE"])), "in_progress");
        assert_eq!(call_state(200, &m(&["OPTIONS"])), "answered");
    }
}
