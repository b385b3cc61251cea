//! Leg linking: which Call-IDs are one call across a B2BUA (Asterisk gives every leg its
//! own Call-ID), and how each link was made.
//!
//! In order of strength: the HEP correlation id chunk naming another Call-ID, an A-leg
//! header (`X-CID` family, configured in the collector) naming it, and for platforms that
//! add neither, a heuristic: the B-leg's INVITE left the host the A-leg's INVITE reached
//! (the legs are adjacent through that host), within a window after it, and the caller
//! and callee digits match on their last N digits. The heuristic also demands that the
//! pairing is mutual (the B-leg is the A-leg's nearest match and the other way round), so
//! two similar calls a few milliseconds apart are not crossed. Every link carries a
//! sentence saying why, and for the heuristic the fields it compared.
//!
//! Everything is read from ClickHouse at query time, so legs stored by different
//! collectors link the same way.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::hostmap::{HostMap, Naming};
use crate::store::{CallQueries, FlowRow, InviteEnd, InviteStart};
use crate::timeutil::format_rfc3339;

/// Linking settings.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Longest time from the A-leg reaching a host to the B-leg leaving it.
    pub window_us: u64,
    /// Trailing digits compared between caller (and callee) numbers.
    pub digits: usize,
    /// Whether the heuristic runs at all.
    pub heuristic: bool,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self { window_us: 2_000_000, digits: 6, heuristic: true }
    }
}

/// Most legs one correlated call gathers.
pub const MAX_LEGS: usize = 16;
/// Most rows read per correlated call.
pub const MAX_ROWS: u32 = 10_000;
/// How far outside the first leg's time span other legs are looked for.
const MARGIN_US: u64 = 60_000_000;

/// How a link was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkMethod {
    /// The B-leg's HEP correlation id is the A-leg's Call-ID.
    HepCorrelationId,
    /// The B-leg carries the A-leg's Call-ID in an A-leg header (X-CID ...).
    Header,
    /// Timing, adjacency and number digits.
    Heuristic,
}

/// How two numbers compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DigitMatch {
    /// A-leg user part.
    pub a: String,
    /// B-leg user part.
    pub b: String,
    /// The trailing digits (or text) found equal; `None`: they differ or could not be compared.
    pub matched: Option<String>,
    /// `match`, `mismatch` or `not_comparable` (fewer than 3 digits, e.g. `anonymous`).
    pub result: &'static str,
}

/// What the heuristic compared for one link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeuristicEvidence {
    /// The host the A-leg reached and the B-leg left.
    pub host: String,
    /// When the A-leg's INVITE reached it.
    pub a_reached: String,
    /// When the B-leg's INVITE left it.
    pub b_left: String,
    /// Milliseconds between the two.
    pub delay_ms: f64,
    /// Callers (From users).
    pub caller: DigitMatch,
    /// Callees (To users).
    pub callee: DigitMatch,
    /// Candidates that matched the numbers within the window.
    pub candidates: usize,
}

/// One link between two legs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    /// The leg that came first (the caller's side).
    pub a_leg: String,
    /// The leg the B2BUA created for it.
    pub b_leg: String,
    /// How the link was made.
    pub method: LinkMethod,
    /// Why, in one sentence.
    pub explanation: String,
    /// The heuristic's comparisons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<HeuristicEvidence>,
}

/// A call with all its legs.
#[derive(Debug, Default)]
pub struct Correlated {
    /// Call-IDs, the one asked for first, then in the order found.
    pub legs: Vec<String>,
    /// How they are linked.
    pub links: Vec<Link>,
    /// Every leg's rows, in capture order.
    pub rows: Vec<FlowRow>,
    /// Whether a bound (legs or rows) cut the result.
    pub truncated: bool,
}

/// Gathers the legs linked to `call_id` (whose rows lie in `span`), transitively.
pub async fn correlate<Q: CallQueries>(
    q: &Q,
    hosts: &HostMap,
    cfg: &LinkConfig,
    call_id: &str,
    span: (u64, u64),
) -> Result<Correlated, String> {
    let range = (span.0.saturating_sub(MARGIN_US), span.1.saturating_add(MARGIN_US));
    let mut out = Correlated { legs: vec![call_id.to_owned()], ..Correlated::default() };
    let mut rows: BTreeMap<String, Vec<FlowRow>> = BTreeMap::new();
    rows.insert(call_id.to_owned(), q.flow(&out.legs, range, MAX_ROWS, false).await?);
    let mut next = 0;
    while next < out.legs.len() {
        if out.legs.len() >= MAX_LEGS {
            out.truncated = true;
            break;
        }
        let leg = out.legs[next].clone();
        next += 1;
        let found = links_of(q, hosts, cfg, &leg, &rows, &out, range).await?;
        let new: Vec<String> = found
            .iter()
            .map(|l| if l.a_leg == leg { l.b_leg.clone() } else { l.a_leg.clone() })
            .filter(|c| !out.legs.contains(c))
            .collect();
        for link in found {
            let known = out.links.iter().any(|l| l.a_leg == link.a_leg && l.b_leg == link.b_leg);
            if !known {
                out.links.push(link);
            }
        }
        for c in new {
            if !out.legs.contains(&c) && out.legs.len() < MAX_LEGS {
                rows.insert(c.clone(), q.flow(std::slice::from_ref(&c), range, MAX_ROWS, false).await?);
                out.legs.push(c);
            }
        }
    }
    let mut all: Vec<FlowRow> = rows.into_values().flatten().collect();
    all.sort_by_key(|r| (r.time_us, r.id));
    out.truncated |= all.len() >= MAX_ROWS as usize;
    all.truncate(MAX_ROWS as usize);
    out.rows = all;
    Ok(out)
}

/// The links of one leg: by header both ways, else by the heuristic.
async fn links_of<Q: CallQueries>(
    q: &Q,
    hosts: &HostMap,
    cfg: &LinkConfig,
    leg: &str,
    rows: &BTreeMap<String, Vec<FlowRow>>,
    known: &Correlated,
    range: (u64, u64),
) -> Result<Vec<Link>, String> {
    let own = rows.get(leg).map(Vec::as_slice).unwrap_or_default();
    let mut links = Vec::new();
    // This leg names its A-leg.
    let mut named: Vec<(String, LinkMethod)> = Vec::new();
    for r in own {
        for (value, method) in [(&r.aleg_id, LinkMethod::Header), (&r.correlation_id, LinkMethod::HepCorrelationId)] {
            if !value.is_empty() && value != leg && !named.iter().any(|(v, _)| v == value) {
                named.push((value.clone(), method));
            }
        }
    }
    for (a_leg, method) in named {
        if known.legs.contains(&a_leg) || !q.flow(std::slice::from_ref(&a_leg), range, 1, false).await?.is_empty() {
            links.push(header_link(a_leg, leg.to_owned(), method));
        }
    }
    // Other legs name this one.
    for r in q.header_refs(leg, range).await? {
        let method = if r.aleg_id == leg { LinkMethod::Header } else { LinkMethod::HepCorrelationId };
        links.push(header_link(leg.to_owned(), r.call_id, method));
    }
    let linked_before = known.links.iter().any(|l| l.a_leg == leg || l.b_leg == leg);
    if links.is_empty() && !linked_before && cfg.heuristic {
        let naming = Naming::learn(hosts, own);
        links.extend(heuristic(q, &naming, cfg, leg, own, &known.legs).await?);
    }
    Ok(links)
}

fn header_link(a_leg: String, b_leg: String, method: LinkMethod) -> Link {
    let explanation = match method {
        LinkMethod::Header => format!("the B-leg carries the A-leg's Call-ID `{a_leg}` in an A-leg id header"),
        _ => format!("the B-leg's HEP correlation id is the A-leg's Call-ID `{a_leg}`"),
    };
    Link { a_leg, b_leg, method, explanation, evidence: None }
}

/// Where a leg's INVITEs enter or leave the platform: hosts it reached but did not leave
/// (a B2BUA or the callee) and hosts it left but never reached (the caller or a B2BUA).
#[derive(Debug, PartialEq)]
struct Edge {
    host: String,
    addrs: Vec<String>,
    time_us: u64,
}

fn edges(naming: &Naming, rows: &[FlowRow], end: InviteEnd) -> Vec<Edge> {
    let invites: Vec<&FlowRow> = rows.iter().filter(|r| r.is_invite()).collect();
    let senders: HashSet<String> = invites.iter().map(|r| naming.name(&r.src_ip, r.src_port)).collect();
    let receivers: HashSet<String> = invites.iter().map(|r| naming.name(&r.dst_ip, r.dst_port)).collect();
    let mut out: Vec<Edge> = Vec::new();
    for r in invites {
        let (ip, port, other) = match end {
            InviteEnd::To => (&r.dst_ip, r.dst_port, &senders),
            InviteEnd::From => (&r.src_ip, r.src_port, &receivers),
        };
        let host = naming.name(ip, port);
        if other.contains(&host) {
            continue;
        }
        match out.iter_mut().find(|e| e.host == host) {
            Some(e) => {
                e.time_us = e.time_us.min(r.time_us);
                for a in naming.addresses_like(ip, port) {
                    if !e.addrs.contains(&a) {
                        e.addrs.push(a);
                    }
                }
            }
            None => out.push(Edge { host, addrs: naming.addresses_like(ip, port), time_us: r.time_us }),
        }
    }
    out
}

/// Heuristic links of `leg`: as an A-leg (B-legs leaving the hosts it reached) and as a
/// B-leg (A-legs reaching the host it left).
async fn heuristic<Q: CallQueries>(
    q: &Q,
    naming: &Naming,
    cfg: &LinkConfig,
    leg: &str,
    rows: &[FlowRow],
    known: &[String],
) -> Result<Vec<Link>, String> {
    let Some(me) = first_invite(rows) else { return Ok(Vec::new()) };
    let mut links = Vec::new();
    for edge in edges(naming, rows, InviteEnd::To) {
        let window = (edge.time_us, edge.time_us + cfg.window_us);
        let found = q.invites(&edge.addrs, InviteEnd::From, window).await?;
        let Some((b, n)) = best(cfg, &me, &found, leg, known, Nearest::Earliest) else { continue };
        let back = q.invites(&edge.addrs, InviteEnd::To, (b.time_us.saturating_sub(cfg.window_us), b.time_us)).await?;
        if best(cfg, b, &back, &b.call_id, &[], Nearest::Latest).is_some_and(|(a, _)| a.call_id == leg) {
            links.push(heuristic_link(cfg, &edge, &me, edge.time_us, b, n));
        }
    }
    for edge in edges(naming, rows, InviteEnd::From) {
        let window = (edge.time_us.saturating_sub(cfg.window_us), edge.time_us);
        let found = q.invites(&edge.addrs, InviteEnd::To, window).await?;
        let Some((a, n)) = best(cfg, &me, &found, leg, known, Nearest::Latest) else { continue };
        let fwd = q.invites(&edge.addrs, InviteEnd::From, (a.time_us, a.time_us + cfg.window_us)).await?;
        if best(cfg, a, &fwd, &a.call_id, &[], Nearest::Earliest).is_some_and(|(b, _)| b.call_id == leg) {
            let b = InviteStart { time_us: edge.time_us, ..me.clone() };
            links.push(heuristic_link(cfg, &edge, a, a.time_us, &b, n));
        }
    }
    Ok(links)
}

/// The leg's own first INVITE, in the shape of a candidate.
fn first_invite(rows: &[FlowRow]) -> Option<InviteStart> {
    let r = rows.iter().find(|r| r.is_invite())?;
    Some(InviteStart {
        call_id: r.call_id.clone(),
        time_us: r.time_us,
        from_user: r.from_user.clone(),
        to_user: r.to_user.clone(),
        src_ip: r.src_ip.clone(),
        dst_ip: r.dst_ip.clone(),
    })
}

#[derive(Debug, Clone, Copy)]
enum Nearest {
    Earliest,
    Latest,
}

/// The candidate whose numbers match `me`'s, nearest in time; and how many matched.
fn best<'a>(
    cfg: &LinkConfig,
    me: &InviteStart,
    found: &'a [InviteStart],
    own: &str,
    skip: &[String],
    nearest: Nearest,
) -> Option<(&'a InviteStart, usize)> {
    let fits: Vec<&InviteStart> =
        found.iter().filter(|c| c.call_id != own && !skip.contains(&c.call_id) && numbers_match(cfg, me, c)).collect();
    let pick = match nearest {
        Nearest::Earliest => fits.iter().min_by_key(|c| c.time_us),
        Nearest::Latest => fits.iter().max_by_key(|c| c.time_us),
    };
    pick.map(|c| (*c, fits.len()))
}

fn numbers_match(cfg: &LinkConfig, a: &InviteStart, b: &InviteStart) -> bool {
    let callee = compare_digits(&a.to_user, &b.to_user, cfg.digits);
    let caller = compare_digits(&a.from_user, &b.from_user, cfg.digits);
    callee.result == "match" && caller.result != "mismatch"
}

fn heuristic_link(
    cfg: &LinkConfig,
    edge: &Edge,
    a: &InviteStart,
    reached_us: u64,
    b: &InviteStart,
    candidates: usize,
) -> Link {
    let evidence = HeuristicEvidence {
        host: edge.host.clone(),
        a_reached: format_rfc3339(reached_us),
        b_left: format_rfc3339(b.time_us),
        delay_ms: b.time_us.saturating_sub(reached_us) as f64 / 1000.0,
        caller: compare_digits(&a.from_user, &b.from_user, cfg.digits),
        callee: compare_digits(&a.to_user, &b.to_user, cfg.digits),
        candidates,
    };
    let explanation = format!(
        "heuristic: the A-leg's INVITE reached {host} and the B-leg's INVITE left {host} {delay:.1} ms later \
         (window {window} ms); callee {callee}, caller {caller}; {candidates} candidate(s) matched, and each leg \
         is the other's nearest match",
        host = evidence.host,
        delay = evidence.delay_ms,
        window = cfg.window_us / 1000,
        callee = describe(&evidence.callee),
        caller = describe(&evidence.caller),
    );
    Link {
        a_leg: a.call_id.clone(),
        b_leg: b.call_id.clone(),
        method: LinkMethod::Heuristic,
        explanation,
        evidence: Some(evidence),
    }
}

fn describe(m: &DigitMatch) -> String {
    match &m.matched {
        Some(d) => format!("`{}`/`{}` match on `{d}`", m.a, m.b),
        None => format!("`{}`/`{}` {}", m.a, m.b, m.result.replace('_', " ")),
    }
}

/// Compares two user parts on their last `n` digits (fewer if either is shorter, at
/// least 3); users with fewer than 3 digits compare as text, and an empty or
/// digit-less one (`anonymous`) is not comparable.
pub fn compare_digits(a: &str, b: &str, n: usize) -> DigitMatch {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let (da, db) = (digits(a), digits(b));
    let (matched, result) = if da.len() >= 3 && db.len() >= 3 {
        let k = n.min(da.len()).min(db.len());
        let (ta, tb) = (&da[da.len() - k..], &db[db.len() - k..]);
        if ta == tb {
            (Some(ta.to_owned()), "match")
        } else {
            (None, "mismatch")
        }
    } else if !a.is_empty() && a.eq_ignore_ascii_case(b) && !da.is_empty() {
        (Some(a.to_owned()), "match")
    } else if da.is_empty() || db.is_empty() {
        (None, "not_comparable")
    } else {
        (None, "mismatch")
    };
    DigitMatch { a: a.to_owned(), b: b.to_owned(), matched, result }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_compare_on_the_tail() {
        assert_eq!(compare_digits("+49301001", "0301001", 6).matched.as_deref(), Some("301001"));
        assert_eq!(compare_digits("+49301001", "0301002", 6).result, "mismatch");
        assert_eq!(compare_digits("1001", "+491001", 6).matched.as_deref(), Some("1001"));
        assert_eq!(compare_digits("anonymous", "+491001", 6).result, "not_comparable");
        assert_eq!(compare_digits("", "", 6).result, "not_comparable");
        assert_eq!(compare_digits("42", "42", 6).result, "match");
        assert_eq!(compare_digits("41", "42", 6).result, "mismatch");
    }

    fn inv(t: u64, call: &str, src: &str, dst: &str) -> FlowRow {
        FlowRow {
            time_us: t,
            call_id: call.into(),
            is_request: 1,
            method: "INVITE".into(),
            src_ip: src.into(),
            dst_ip: dst.into(),
            src_port: 5060,
            dst_port: 5060,
            ..FlowRow::default()
        }
    }

    #[test]
    fn edges_skip_hosts_the_leg_passes_through() {
        // ITSP -> VIP (LB) -> ast1: the LB is passed through, ast1 is where the leg ends.
        let rows = vec![inv(10, "a", "10.0.0.10", "10.0.0.100"), inv(20, "a", "10.0.0.100", "10.0.0.21")];
        let naming = Naming::default();
        let to = edges(&naming, &rows, InviteEnd::To);
        assert_eq!(to, vec![Edge { host: "10.0.0.21:5060".into(), addrs: vec!["10.0.0.21".into()], time_us: 20 }]);
        let from = edges(&naming, &rows, InviteEnd::From);
        assert_eq!(from.len(), 1);
        assert_eq!(from[0].host, "10.0.0.10:5060");
    }

    fn start(call: &str, t: u64, from: &str, to: &str) -> InviteStart {
        InviteStart {
            call_id: call.into(),
            time_us: t,
            from_user: from.into(),
            to_user: to.into(),
            ..Default::default()
        }
    }

    #[test]
    fn best_match_needs_the_numbers_and_takes_the_nearest() {
        let cfg = LinkConfig::default();
        let me = start("a", 0, "+49301001", "03015551");
        let found = [
            start("x", 3_000, "+49301001", "03015552"),
            start("b2", 9_000, "0301001", "+493015551"),
            start("b1", 4_000, "0301001", "03015551"),
        ];
        let (b, n) = best(&cfg, &me, &found, "a", &[], Nearest::Earliest).unwrap();
        assert_eq!((b.call_id.as_str(), n), ("b1", 2));
        assert_eq!(best(&cfg, &me, &found, "a", &["b1".into()], Nearest::Earliest).unwrap().0.call_id, "b2");
        assert_eq!(best(&cfg, &me, &found, "a", &[], Nearest::Latest).unwrap().0.call_id, "b2");
    }
}
