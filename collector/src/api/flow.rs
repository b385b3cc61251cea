//! The call flow (ladder) of a correlated call: every leg's rows in capture order, with
//! copies of one packet seen at several capture points folded into one message with
//! several sightings, and repeats of a packet marked as retransmissions.
//!
//! Two rows are one message when their raw bytes hash the same, the later one was
//! captured within [`SIGHTING_WINDOW_US`] of the first and on another node: the same
//! packet crosses a LAN in well under that, while a SIP retransmission comes at least T1
//! (500 ms) later. The same bytes again on a node that already saw them are a
//! retransmission (or, at the very same microsecond, a duplicate delivery, dropped).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::calls::check_call_id;
use super::{ladder, page, params, ApiError, AppState};
use crate::correlate::hostmap::Naming;
use crate::correlate::legs::{self, Link};
use crate::store::{CallQueries, CallSummary, FlowRow};
use crate::timeutil::format_rfc3339;

pub use crate::correlate::addr;

/// Rows with equal hashes this close in time are sightings of one message.
pub const SIGHTING_WINDOW_US: u64 = 250_000;
/// Most rows a flow reads (a call with more is cut, and says so).
pub const MAX_FLOW_ROWS: u32 = legs::MAX_ROWS;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowParams {
    format: Option<String>,
    legs: Option<String>,
}

/// One capture of a message.
#[derive(Debug, Clone, Serialize)]
pub struct Sighting {
    /// Message row id (for `/api/v1/messages/{id}`).
    pub id: String,
    /// Capture node.
    pub node: String,
    /// Capture time.
    pub time: String,
    /// Microseconds after the message's first sighting.
    pub delay_us: u64,
}

/// One SIP message of the flow.
#[derive(Debug, Clone, Serialize)]
pub struct FlowMessage {
    /// Id of the first sighting.
    pub id: String,
    /// Time of the first sighting.
    pub time: String,
    /// Same, microseconds since the epoch.
    pub time_us: u64,
    /// The leg's Call-ID.
    pub call_id: String,
    /// Index of the leg in [`Flow::legs`].
    pub leg: usize,
    /// `ip:port` (`[v6]:port`).
    pub src: String,
    /// `ip:port`.
    pub dst: String,
    /// Host name of the source (host map, learned, or the address).
    pub src_host: String,
    /// Host name of the destination.
    pub dst_host: String,
    /// `udp`, `tcp`, `sctp` or the protocol number.
    pub transport: String,
    /// Request method (empty for responses).
    pub method: String,
    /// Status (0 for requests).
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// CSeq, e.g. `1 INVITE`.
    pub cseq: String,
    /// What an arrow shows: `INVITE` or `180 Ringing` (prefixed by the leg, `B: INVITE`,
    /// when the call has several legs).
    pub label: String,
    /// The same bytes were sent before (a retransmission).
    pub retransmission: bool,
    /// Every capture point that saw it, earliest first.
    pub sightings: Vec<Sighting>,
    /// Hash of the raw bytes.
    #[serde(skip)]
    pub(crate) hash: u64,
}

/// One leg of the call.
#[derive(Debug, Clone, Serialize)]
pub struct LegView {
    /// Call-ID.
    pub call_id: String,
    /// `A`, `B`, `C`... in the order found (the asked Call-ID is `A`).
    pub tag: String,
    /// Messages of this leg in the flow.
    pub messages: usize,
    /// From user of its first INVITE.
    pub caller: String,
    /// To user of its first INVITE.
    pub callee: String,
}

/// The flow of a call.
#[derive(Debug, Serialize)]
pub struct Flow {
    /// Call-ID asked for.
    pub call_id: String,
    /// Its legs (only itself with `?legs=single`).
    pub legs: Vec<LegView>,
    /// How the legs were linked.
    pub links: Vec<Link>,
    /// Host names in order of first appearance (the ladder's columns).
    pub hosts: Vec<String>,
    /// The addresses behind each host name.
    pub host_addresses: BTreeMap<String, Vec<String>>,
    /// Messages in capture order.
    pub messages: Vec<FlowMessage>,
    /// Rows dropped as duplicate deliveries (same node, time and bytes).
    pub duplicates: usize,
    /// Whether a bound (rows, legs) cut the flow.
    pub truncated: bool,
}

/// `GET /api/v1/calls/{call_id}/flow[?format=json|text|svg][&legs=all|single]`.
pub async fn flow<Q: CallQueries>(
    State(state): State<AppState<Q>>,
    Path(call_id): Path<String>,
    q: Result<Query<FlowParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(q)?;
    let format = p.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "text" | "svg") {
        return Err(ApiError::bad_request(format!("format must be json, text or svg, not `{format}`")));
    }
    let single = single_leg(p.legs.as_deref())?;
    let (_, flow) = load(&state, call_id, single).await?;
    Ok(match format {
        "text" => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], ladder_text(&flow)).into_response(),
        "svg" => svg_response(ladder::svg(&flow)),
        _ => Json(flow).into_response(),
    })
}

/// `legs=all` (default) or `legs=single`.
fn single_leg(v: Option<&str>) -> Result<bool, ApiError> {
    match v {
        None | Some("all") => Ok(false),
        Some("single") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!("legs must be all or single, not `{other}`"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    legs: Option<String>,
}

/// `GET /api/v1/calls/{call_id}/flow.html`: summary, inline SVG ladder and message table.
pub async fn flow_html<Q: CallQueries>(
    State(state): State<AppState<Q>>,
    Path(call_id): Path<String>,
    q: Result<Query<PageParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let single = single_leg(params(q)?.legs.as_deref())?;
    let (summary, flow) = load(&state, call_id, single).await?;
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, page::CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    Ok((headers, page::render(&summary, &flow)).into_response())
}

/// An SVG answer. Opened on its own, it may run no script and load nothing.
fn svg_response(svg: String) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (headers, svg).into_response()
}

/// The call's summary and its (correlated) flow, or 400/404.
async fn load<Q: CallQueries>(
    state: &AppState<Q>,
    call_id: String,
    single: bool,
) -> Result<(CallSummary, Flow), ApiError> {
    check_call_id(&call_id)?;
    let summary = state.queries.call(&call_id).await.map_err(ApiError::internal)?;
    let summary = summary.ok_or_else(|| ApiError::not_found(format!("no call with Call-ID `{call_id}`")))?;
    let span = (summary.first_us, summary.last_us);
    let c = &state.correlation;
    let correlated = if single {
        let rows = state.queries.flow(std::slice::from_ref(&call_id), span, MAX_FLOW_ROWS, false).await;
        let rows = rows.map_err(ApiError::internal)?;
        legs::Correlated {
            truncated: rows.len() >= MAX_FLOW_ROWS as usize,
            legs: vec![call_id.clone()],
            links: Vec::new(),
            rows,
        }
    } else {
        legs::correlate(state.queries.as_ref(), &c.hosts, &c.links, &call_id, span).await.map_err(ApiError::internal)?
    };
    let naming = Naming::learn(&c.hosts, &correlated.rows);
    Ok((summary, build(call_id, correlated, &naming)))
}

/// Folds the rows (in capture order) of a correlated call into messages with sightings.
pub fn build(call_id: String, c: legs::Correlated, naming: &Naming) -> Flow {
    let tags: HashMap<&str, usize> = c.legs.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
    let multi = c.legs.len() > 1;
    let mut messages: Vec<FlowMessage> = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    let mut host_addresses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut sent: HashMap<u64, usize> = HashMap::new();
    let mut duplicates = 0;
    for row in &c.rows {
        let sighting = Sighting {
            id: row.id.to_string(),
            node: row.node_name.clone(),
            time: format_rfc3339(row.time_us),
            delay_us: 0,
        };
        // Sightings are close in time, so only recent messages need checking.
        let same = messages
            .iter_mut()
            .rev()
            .take_while(|m| row.time_us.saturating_sub(m.time_us) <= SIGHTING_WINDOW_US)
            .find(|m| m.hash == row.msg_hash);
        if let Some(m) = same {
            let delay = row.time_us - m.time_us;
            if let Some(s) = m.sightings.iter().find(|s| s.node == row.node_name) {
                if s.delay_us == delay {
                    duplicates += 1;
                    continue;
                }
            } else {
                m.sightings.push(Sighting { delay_us: delay, ..sighting });
                continue;
            }
        }
        let leg = tags.get(row.call_id.as_str()).copied().unwrap_or(0);
        let (src, dst) = (addr(&row.src_ip, row.src_port), addr(&row.dst_ip, row.dst_port));
        let (src_host, dst_host) = (naming.name(&row.src_ip, row.src_port), naming.name(&row.dst_ip, row.dst_port));
        for (h, a) in [(&src_host, &src), (&dst_host, &dst)] {
            if !hosts.contains(h) {
                hosts.push(h.clone());
            }
            let list = host_addresses.entry(h.clone()).or_default();
            if !list.contains(a) {
                list.push(a.clone());
            }
        }
        let retransmission = *sent.entry(row.msg_hash).and_modify(|n| *n += 1).or_insert(0) > 0;
        let label = if multi { format!("{}: {}", leg_tag(leg), label(row)) } else { label(row) };
        messages.push(FlowMessage {
            id: sighting.id.clone(),
            time: sighting.time.clone(),
            time_us: row.time_us,
            call_id: row.call_id.clone(),
            leg,
            transport: transport_name(row.transport),
            label,
            cseq: format!("{} {}", row.cseq_num, row.cseq_method),
            src,
            dst,
            src_host,
            dst_host,
            method: row.method.clone(),
            status: row.status,
            reason: row.reason.clone(),
            retransmission,
            sightings: vec![sighting],
            hash: row.msg_hash,
        });
    }
    let legs = c.legs.iter().enumerate().map(|(i, id)| leg_view(i, id, &c.rows, &messages)).collect();
    Flow { call_id, legs, links: c.links, hosts, host_addresses, messages, duplicates, truncated: c.truncated }
}

/// `A`, `B`, ... `Z`, then `L27`...
fn leg_tag(i: usize) -> String {
    if i < 26 {
        char::from(b'A' + i as u8).to_string()
    } else {
        format!("L{}", i + 1)
    }
}

fn leg_view(i: usize, call_id: &str, rows: &[FlowRow], messages: &[FlowMessage]) -> LegView {
    let invite = rows.iter().find(|r| r.call_id == call_id && r.is_invite());
    LegView {
        call_id: call_id.to_owned(),
        tag: leg_tag(i),
        messages: messages.iter().filter(|m| m.leg == i).count(),
        caller: invite.map(|r| r.from_user.clone()).unwrap_or_default(),
        callee: invite.map(|r| r.to_user.clone()).unwrap_or_default(),
    }
}

fn label(row: &FlowRow) -> String {
    if row.is_request == 1 {
        row.method.clone()
    } else if row.status == 0 {
        "(not SIP)".into()
    } else {
        format!("{} {}", row.status, row.reason).trim_end().to_owned()
    }
}

/// Transport name of an IP protocol number.
pub fn transport_name(proto: u8) -> String {
    match proto {
        17 => "udp".into(),
        6 => "tcp".into(),
        132 => "sctp".into(),
        other => other.to_string(),
    }
}

/// Column width of the text ladder.
const COL: usize = 24;

/// A terminal ladder: one column per address, one arrow per message with its label,
/// the time since the first message, and the nodes that captured it.
pub fn ladder_text(flow: &Flow) -> String {
    let mut out = String::new();
    let start = flow.messages.first().map_or(0, |m| m.time_us);
    let _ = writeln!(out, "Call-ID: {}", flow.call_id);
    if flow.legs.len() > 1 {
        for l in &flow.legs {
            let _ = writeln!(out, "Leg {}:   {}", l.tag, l.call_id);
        }
        for l in &flow.links {
            let _ = writeln!(out, "Link:    {} -> {}: {}", l.a_leg, l.b_leg, l.explanation);
        }
    }
    if let Some(first) = flow.messages.first() {
        let _ = writeln!(out, "Start:   {}", first.time);
    }
    let mut header = " ".repeat(12);
    for h in &flow.hosts {
        let _ = write!(header, "{:<COL$}", truncate(h, COL - 1));
    }
    out.push_str(header.trim_end());
    out.push('\n');
    for m in &flow.messages {
        let from = flow.hosts.iter().position(|h| *h == m.src_host).unwrap_or(0);
        let to = flow.hosts.iter().position(|h| *h == m.dst_host).unwrap_or(0);
        let secs = m.time_us.saturating_sub(start) as f64 / 1e6;
        let mut line = format!("{:>10.3}  ", secs);
        line.push_str(&arrow_row(flow.hosts.len(), from, to, &m.label));
        let nodes: Vec<&str> = m.sightings.iter().map(|s| s.node.as_str()).collect();
        let _ = write!(line, "  [{}]{}", nodes.join(","), if m.retransmission { " retransmission" } else { "" });
        out.push_str(&line);
        out.push('\n');
    }
    if flow.truncated {
        let _ = writeln!(out, "(truncated at {MAX_FLOW_ROWS} rows)");
    }
    out
}

/// One ladder row: lifelines `|` at each column, an arrow from `from` to `to`.
fn arrow_row(columns: usize, from: usize, to: usize, label: &str) -> String {
    let width = columns.saturating_sub(1) * COL + 1;
    let mut cells: Vec<char> = (0..width).map(|i| if i % COL == 0 { '|' } else { ' ' }).collect();
    let (lo, hi) = (from.min(to) * COL, from.max(to) * COL);
    if lo == hi {
        // Sent to itself (loopback or a missing address): mark the lifeline.
        let text: Vec<char> = format!("|<>{label}").chars().collect();
        cells.truncate(lo);
        cells.extend(text);
        return cells.into_iter().collect();
    }
    for c in &mut cells[lo + 1..hi] {
        *c = '-';
    }
    if to > from {
        cells[hi - 1] = '>';
    } else {
        cells[lo + 1] = '<';
    }
    let span = hi - lo - 3;
    let text: Vec<char> = truncate(label, span).chars().collect();
    let at = lo + 2 + (span - text.len()) / 2;
    cells[at..at + text.len()].copy_from_slice(&text);
    cells.into_iter().collect::<String>()
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// [`build`] for one leg, naming from the rows alone (tests of the views).
#[cfg(test)]
pub fn build_single(call_id: &str, rows: Vec<FlowRow>) -> Flow {
    let naming = Naming::learn(&Default::default(), &rows);
    let c = legs::Correlated { legs: vec![call_id.to_owned()], links: Vec::new(), rows, truncated: false };
    build(call_id.to_owned(), c, &naming)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request (status 0) from .1 to .2, or a response back.
    fn row(id: u64, t: u64, node: &str, hash: u64, status: u16) -> FlowRow {
        let (src, dst) = if status == 0 { ("10.0.0.1", "10.0.0.2") } else { ("10.0.0.2", "10.0.0.1") };
        FlowRow {
            id,
            time_us: t,
            node_name: node.into(),
            transport: 17,
            src_ip: src.into(),
            src_port: 5060,
            dst_ip: dst.into(),
            dst_port: 5060,
            is_request: u8::from(status == 0),
            method: if status == 0 { "INVITE".into() } else { String::new() },
            status,
            reason: if status == 200 { "OK".into() } else { String::new() },
            cseq_num: 1,
            cseq_method: "INVITE".into(),
            msg_hash: hash,
            call_id: "c".into(),
            ..FlowRow::default()
        }
    }

    #[test]
    fn folds_sightings_but_not_retransmissions() {
        let rows = vec![
            row(1, 1_000_000, "lb1", 7, 0),
            row(2, 1_000_300, "ast1", 7, 0),
            row(3, 1_500_000, "lb1", 7, 0),
            row(5, 1_500_000, "lb1", 7, 0),
            row(4, 1_600_000, "ast1", 8, 200),
        ];
        let flow = build_single("c", rows);
        assert_eq!(flow.messages.len(), 3);
        assert_eq!(flow.messages[0].sightings.len(), 2);
        assert_eq!(flow.messages[0].sightings[1].delay_us, 300);
        assert!(!flow.messages[0].retransmission);
        assert_eq!(flow.messages[1].sightings.len(), 1, "500 ms later is a retransmission");
        assert!(flow.messages[1].retransmission);
        assert_eq!(flow.duplicates, 1, "the same row delivered twice is dropped");
        assert_eq!(flow.messages[2].label, "200 OK");
        assert_eq!(flow.hosts, vec!["10.0.0.1:5060", "10.0.0.2:5060"], "both nodes see both: no names");
        let text = ladder_text(&flow);
        assert!(text.contains("|--------INVITE-------->|  [lb1,ast1]\n"), "{text}");
        assert!(text.contains("|--------INVITE-------->|  [lb1] retransmission"), "{text}");
        assert!(text.contains("|<-------200 OK---------|  [ast1]"), "{text}");
    }

    #[test]
    fn legs_are_tagged() {
        let mut b = row(9, 1_000_100, "ast1", 9, 0);
        b.call_id = "b".into();
        let rows = vec![row(1, 1_000_000, "lb1", 7, 0), b];
        let c = legs::Correlated { legs: vec!["c".into(), "b".into()], links: Vec::new(), rows, truncated: false };
        let flow = build("c".into(), c, &Naming::default());
        assert_eq!(flow.messages[1].leg, 1);
        assert_eq!(flow.messages[1].label, "B: INVITE");
        assert_eq!((flow.legs[1].tag.as_str(), flow.legs[1].messages), ("B", 1));
    }
}
