//! Failover detection: what changed on the platform, when, on what evidence, and what it
//! did to the calls in progress. Read from ClickHouse per request (aggregates over the
//! asked range), so it sees every collector's data and keeps no state.
//!
//! - **VIP moved**: a VIP is an address that two capture nodes *relay* for (within one
//!   call they saw it send to two or more peers: a proxy forwards one way and answers the
//!   other, while an endpoint, or a node watching one, sees it talk to one peer per call),
//!   or one configured, or one announced by gratuitous ARP / VRRP. Its owner is the
//!   relaying node that sends from it; ownership passing from one node to another is a
//!   move. The time is the announcement (gratuitous ARP, VRRP from a new master) when
//!   the agent captured one between the old owner's last packet and the new owner's
//!   first, else the new owner's first packet.
//! - **Backend down / up**: backends are the addresses a load balancer probes with
//!   OPTIONS (Kamailio dispatcher). Two failed probes in a row (no answer, or 5xx) mark it
//!   down from the first failure or the first earlier request it left unanswered or
//!   rejected since its last answer; the first answered probe after marks it up.
//! - **INVITE re-routed**: one INVITE transaction sent to two backends.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::store::{ActivitySecond, BackendTransaction, CallActivity, CallQueries, NetEventRow};
use crate::timeutil::format_rfc3339;

/// Failover analysis settings.
#[derive(Debug, Clone)]
pub struct FailoverConfig {
    /// Configured VIPs (more are learned).
    pub vips: Vec<String>,
    /// Configured backends (empty: learned from OPTIONS probes).
    pub backends: Vec<String>,
    /// How far before and after an event calls are followed.
    pub impact_window_us: u64,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        Self { vips: Vec::new(), backends: Vec::new(), impact_window_us: 3_600_000_000 }
    }
}

/// A probe without an answer this long before the end of the range is not yet failed.
const ANSWER_GRACE_US: u64 = 2_000_000;
/// Failed probes in a row that mark a backend down.
const FAILED_PROBES: usize = 2;
/// Most impacted calls listed per event.
pub const MAX_EVENT_CALLS: usize = 1000;
/// Most re-routed INVITEs listed.
const MAX_REROUTES: usize = 100;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A VIP changed owner.
    VipMoved,
    /// A backend stopped answering or started rejecting.
    BackendDown,
    /// A backend answers again.
    BackendUp,
    /// An INVITE was sent to a second backend.
    InviteRerouted,
}

/// What an event did to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    /// In progress, and it went on as if nothing happened.
    Unaffected,
    /// Completed with retransmissions across the outage.
    SurvivedViaRetransmission,
    /// Completed through the new VIP owner.
    SurvivedViaOtherLb,
    /// Its INVITE went to another backend.
    Rerouted,
    /// Failed, never answered, or went silent without a BYE.
    Dropped,
}

/// One impacted call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallImpact {
    /// Call-ID (a leg; linked legs are listed on their own).
    pub call_id: String,
    /// What became of it.
    pub impact: Impact,
    /// Why.
    pub explanation: String,
}

/// One detected event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// When (RFC 3339).
    pub time: String,
    /// When, microseconds since the epoch.
    pub time_us: u64,
    /// The VIP or backend address.
    pub address: String,
    /// Old owner node (VIP) or first backend (re-route).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// New owner node (VIP) or second backend (re-route).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `no_answer` or `rejecting` (backend down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<&'static str>,
    /// Last sign of life before the event (old owner's last packet, backend's last answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_alive: Option<String>,
    /// The observations behind it.
    pub evidence: Vec<String>,
    /// Calls in progress that it touched, and what became of them.
    pub calls: Vec<CallImpact>,
    /// Whether `calls` was cut at [`MAX_EVENT_CALLS`].
    pub calls_truncated: bool,
    #[serde(skip)]
    last_alive_us: u64,
    /// End of the outage (backend up again), if seen.
    #[serde(skip)]
    until_us: Option<u64>,
}

impl Event {
    fn new(kind: EventKind, time_us: u64, address: &str) -> Self {
        Self {
            kind,
            time: format_rfc3339(time_us),
            time_us,
            address: address.to_owned(),
            from: None,
            to: None,
            cause: None,
            last_alive: None,
            evidence: Vec::new(),
            calls: Vec::new(),
            calls_truncated: false,
            last_alive_us: time_us,
            until_us: None,
        }
    }

    fn alive_until(mut self, us: u64) -> Self {
        self.last_alive = Some(format_rfc3339(us));
        self.last_alive_us = us;
        self
    }
}

/// The agent's JSON for gratuitous ARP and VRRP (HEP payload type 112).
#[derive(Debug, Deserialize)]
struct NetEvent {
    event: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    src: String,
    #[serde(default)]
    addresses: Vec<String>,
}

/// A parsed network event.
#[derive(Debug, Clone, PartialEq)]
struct Announcement {
    time_us: u64,
    node: String,
    /// `garp` or `vrrp`.
    kind: String,
    /// The address(es) announced.
    addresses: Vec<String>,
    /// VRRP: the advertising router's own address.
    src: String,
}

fn announcements(rows: &[NetEventRow]) -> Vec<Announcement> {
    rows.iter()
        .filter_map(|r| {
            let e: NetEvent = serde_json::from_str(&r.raw).ok()?;
            let addresses = if e.event == "garp" { vec![e.ip] } else { e.addresses };
            Some(Announcement { time_us: r.time_us, node: r.node_name.clone(), kind: e.event, addresses, src: e.src })
        })
        .collect()
}

/// Every event in `range`, in time order, with the calls each one touched.
pub async fn analyze<Q: CallQueries>(q: &Q, cfg: &FailoverConfig, range: (u64, u64)) -> Result<Vec<Event>, String> {
    // With VIPs configured only they are looked at (cheaper); else every address.
    let mut relays: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in q.relays(&cfg.vips, range).await? {
        relays.entry(r.src_ip).or_default().insert(r.node_name);
    }
    let news = announcements(&q.net_events(range).await?);
    let mut vips: BTreeSet<String> = cfg.vips.iter().cloned().collect();
    vips.extend(relays.iter().filter(|(_, nodes)| nodes.len() >= 2).map(|(a, _)| a.clone()));
    vips.extend(news.iter().flat_map(|n| n.addresses.iter()).filter(|a| relays.contains_key(*a)).cloned());

    let mut events = Vec::new();
    for vip in &vips {
        let Some(nodes) = relays.get(vip) else { continue };
        let seconds = q.activity(std::slice::from_ref(vip), range).await?;
        let seconds: Vec<ActivitySecond> = seconds.into_iter().filter(|s| nodes.contains(&s.node_name)).collect();
        for m in ownership_moves(&seconds) {
            events.push(vip_event(vip, &m, &news));
        }
    }
    let backends = backends(q, cfg, range, &relays).await?;
    let probes = q.backend_transactions(&backends, true, range).await?;
    for b in &backends {
        let mine: Vec<&BackendTransaction> = probes.iter().filter(|p| &p.backend == b).collect();
        let mut found = backend_events(b, &mine, range.1);
        for i in 0..found.len() {
            if found[i].kind == EventKind::BackendDown {
                found[i].until_us = found.get(i + 1).map(|up| up.time_us);
                refine_down(q, &mut found[i], b).await?;
            }
        }
        events.extend(found);
    }
    for e in &mut events {
        attach_calls(q, cfg, e, &backends, range).await?;
    }
    events.extend(reroutes(q, &backends, range).await?);
    events.sort_by_key(|e| e.time_us);
    Ok(events)
}

/// One change of VIP owner.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Move {
    from: String,
    to: String,
    last_old_us: u64,
    first_new_us: u64,
}

/// Packets from the old owner this long after the new one started are its last ones in
/// flight, not a sign it is still the owner.
const STRAY_US: u64 = 1_000_000;
/// How long the old owner must stay silent after the new one started for a move.
const CONFIRM_US: u64 = 10_000_000;

/// Owner changes in per-second activity (ordered by time): the owner is the node that
/// sends from the VIP; another node starting to send while the owner falls silent for
/// [`CONFIRM_US`] (strays within [`STRAY_US`] aside) is a move. Both sending on (split
/// brain) is not.
fn ownership_moves(seconds: &[ActivitySecond]) -> Vec<Move> {
    let mut moves = Vec::new();
    let mut owner: Option<(&str, u64)> = None; // node, last send
    for (i, s) in seconds.iter().enumerate() {
        match owner {
            None => owner = Some((&s.node_name, s.last_us)),
            Some((node, last)) if node == s.node_name => owner = Some((node, last.max(s.last_us))),
            Some((node, last)) => {
                let old_goes_on = seconds[i + 1..].iter().any(|o| {
                    o.node_name == node && o.last_us > s.first_us + STRAY_US && o.first_us <= s.first_us + CONFIRM_US
                });
                if old_goes_on {
                    continue;
                }
                moves.push(Move {
                    from: node.to_owned(),
                    to: s.node_name.clone(),
                    last_old_us: last.min(s.first_us),
                    first_new_us: s.first_us,
                });
                owner = Some((&s.node_name, s.last_us));
            }
        }
    }
    moves
}

fn vip_event(vip: &str, m: &Move, news: &[Announcement]) -> Event {
    let said = announcement_of_move(vip, m, news);
    let time_us = said.map_or(m.first_new_us, |n| n.time_us);
    let mut e = Event::new(EventKind::VipMoved, time_us, vip).alive_until(m.last_old_us);
    e.from = Some(m.from.clone());
    e.to = Some(m.to.clone());
    e.evidence.push(format!("{} last sent from {vip} at {}", m.from, format_rfc3339(m.last_old_us)));
    e.evidence.push(format!("{} first sent from {vip} at {}", m.to, format_rfc3339(m.first_new_us)));
    match said {
        Some(n) if n.kind == "garp" => {
            e.evidence.push(format!("gratuitous ARP for {vip} captured by {} at {}", n.node, format_rfc3339(n.time_us)))
        }
        Some(n) => e.evidence.push(format!(
            "VRRP advertisement for {vip} from {} captured by {} at {}",
            n.src,
            n.node,
            format_rfc3339(n.time_us)
        )),
        None => {
            e.evidence.push("no gratuitous ARP or VRRP captured for it: time is the new owner's first packet".into())
        }
    }
    e.evidence.push(format!(
        "no owner sent from {vip} for {:.3} s",
        m.first_new_us.saturating_sub(m.last_old_us) as f64 / 1e6
    ));
    e
}

/// The announcement that made the move: a gratuitous ARP for the VIP, or a VRRP
/// advertisement for it from a router other than the one advertising before (the old
/// master keeps advertising until it dies), between the old owner's last packet and the
/// new owner's first.
fn announcement_of_move<'a>(vip: &str, m: &Move, news: &'a [Announcement]) -> Option<&'a Announcement> {
    let about = |n: &&Announcement| n.addresses.iter().any(|a| a == vip);
    let old_master =
        news.iter().filter(about).rfind(|n| n.kind == "vrrp" && n.time_us <= m.last_old_us).map(|n| &n.src);
    news.iter().filter(about).find(|n| {
        n.time_us > m.last_old_us
            && n.time_us <= m.first_new_us
            && (n.kind == "garp" || old_master.is_none_or(|old| *old != n.src))
    })
}

/// Backends: configured, else the addresses probed with OPTIONS by a load balancer (a
/// node relaying for some address) or, with no load balancer in sight, by anyone.
async fn backends<Q: CallQueries>(
    q: &Q,
    cfg: &FailoverConfig,
    range: (u64, u64),
    relays: &BTreeMap<String, BTreeSet<String>>,
) -> Result<Vec<String>, String> {
    if !cfg.backends.is_empty() {
        return Ok(cfg.backends.clone());
    }
    let lbs: BTreeSet<&String> =
        relays.iter().filter(|(_, n)| n.len() >= 2).flat_map(|(_, nodes)| nodes.iter()).collect();
    let probed = q.probed(range).await?;
    Ok(probed
        .into_iter()
        .filter(|p| lbs.is_empty() || p.nodes.iter().any(|n| lbs.contains(n)))
        .map(|p| p.addr)
        .collect())
}

/// Whether a transaction failed: rejected (5xx/6xx), or unanswered long enough.
fn failed(t: &BackendTransaction, end_us: u64) -> bool {
    t.status >= 500 || (t.status == 0 && t.request_us + ANSWER_GRACE_US < end_us)
}

fn answered(t: &BackendTransaction) -> bool {
    (100..500).contains(&t.status)
}

/// Down/up events of one backend from its probes (in request order).
fn backend_events(backend: &str, probes: &[&BackendTransaction], end_us: u64) -> Vec<Event> {
    let mut events = Vec::new();
    let mut up = true;
    let mut last_answer = None;
    let mut run: Vec<&BackendTransaction> = Vec::new();
    for p in probes {
        if answered(p) {
            if !up {
                let mut e = Event::new(EventKind::BackendUp, p.response_us.max(p.request_us), backend);
                e.evidence.push(format!("probe from {} answered {} again", p.sender, p.status));
                events.push(e);
                up = true;
            }
            run.clear();
            last_answer = Some(p.response_us.max(p.request_us));
        } else if failed(p, end_us) {
            run.push(p);
            if up && run.len() == FAILED_PROBES {
                let first = run[0];
                let mut e = Event::new(EventKind::BackendDown, first.request_us, backend);
                e = e.alive_until(last_answer.unwrap_or(first.request_us));
                e.cause = Some(if run.iter().all(|p| p.status == 0) { "no_answer" } else { "rejecting" });
                for p in &run {
                    e.evidence.push(format!(
                        "probe from {} at {}: {}",
                        p.sender,
                        format_rfc3339(p.request_us),
                        if p.status == 0 { "no answer".to_owned() } else { format!("answered {}", p.status) }
                    ));
                }
                events.push(e);
                up = false;
            }
        }
    }
    events
}

/// Moves a down event back to the first request the backend failed since its last answer.
async fn refine_down<Q: CallQueries>(q: &Q, e: &mut Event, backend: &str) -> Result<(), String> {
    let txs = q.backend_transactions(&[backend.to_owned()], false, (e.last_alive_us, e.time_us)).await?;
    let end = e.time_us + ANSWER_GRACE_US * 2;
    if let Some(t) = txs.iter().find(|t| failed(t, end) && t.request_us < e.time_us) {
        e.evidence.push(format!(
            "{} {} from {} at {}: {}",
            t.method,
            t.call_id,
            t.sender,
            format_rfc3339(t.request_us),
            if t.status == 0 { "no answer".to_owned() } else { format!("answered {}", t.status) }
        ));
        e.time_us = t.request_us;
        e.time = format_rfc3339(t.request_us);
    }
    Ok(())
}

/// Finds the calls an event touched and says what became of each.
async fn attach_calls<Q: CallQueries>(
    q: &Q,
    cfg: &FailoverConfig,
    e: &mut Event,
    backends: &[String],
    range: (u64, u64),
) -> Result<(), String> {
    if e.kind == EventKind::BackendUp {
        return Ok(());
    }
    // A VIP's new owner carries new calls normally: only calls begun by the move count.
    // A backend's outage lasts until it is up again: every call that touched it meanwhile
    // (in progress, or tried on it before the balancer noticed) counts.
    let until = match e.kind {
        EventKind::VipMoved => e.time_us,
        _ => e.until_us.unwrap_or(range.1),
    };
    // In progress: it had messages after the last sign of life, or it was answered and
    // not yet hung up (an established call is silent until its BYE).
    let touch = (e.last_alive_us.saturating_sub(cfg.impact_window_us), until.max(range.1));
    let wide = (touch.0, touch.1.saturating_add(cfg.impact_window_us));
    let calls = q.activity_of_calls(std::slice::from_ref(&e.address), touch, wide).await?;
    let open = |c: &CallActivity| (200..300).contains(&c.invite_status) && c.bye_sent == 0;
    for c in calls.iter().filter(|c| c.first_us <= until && (c.last_us >= e.last_alive_us || open(c))) {
        if e.calls.len() == MAX_EVENT_CALLS {
            e.calls_truncated = true;
            break;
        }
        e.calls.push(classify(e, c, backends));
    }
    Ok(())
}

/// What an event did to one call in progress.
fn classify(e: &Event, c: &CallActivity, backends: &[String]) -> CallImpact {
    let answered = (200..300).contains(&c.invite_status);
    let invited = !c.invite_targets.is_empty();
    let rerouted = c.invite_targets.iter().filter(|t| backends.contains(t)).count() >= 2;
    let (impact, why) = if c.bye_failed == 1 || (c.bye_sent == 1 && c.bye_ok == 0) {
        (Impact::Dropped, "its BYE failed or went unanswered".to_owned())
    } else if invited && c.invite_status >= 300 && !rerouted {
        (Impact::Dropped, format!("its INVITE failed with {}", c.invite_status))
    } else if invited && c.invite_status == 0 {
        (Impact::Dropped, "its INVITE was never answered".to_owned())
    } else if e.kind == EventKind::BackendDown && c.bye_sent == 0 && c.last_us < e.time_us + ANSWER_GRACE_US {
        (Impact::Dropped, "no SIP and no BYE since the backend failed".to_owned())
    } else if rerouted {
        (Impact::Rerouted, format!("its INVITE went to {}", c.invite_targets.join(" and ")))
    } else if let (Some(from), Some(to), EventKind::VipMoved) = (&e.from, &e.to, e.kind) {
        if c.nodes.contains(from) && c.nodes.contains(to) {
            (Impact::SurvivedViaOtherLb, format!("carried by {from} before the move and by {to} after"))
        } else if c.repeats > 0 && answered {
            (Impact::SurvivedViaRetransmission, format!("answered after {} retransmission(s)", c.repeats))
        } else {
            (Impact::Unaffected, "no sign of the move in its messages".to_owned())
        }
    } else {
        (Impact::Unaffected, "completed or went on normally".to_owned())
    };
    CallImpact { call_id: c.call_id.clone(), impact, explanation: why }
}

/// INVITE transactions that went to two backends, one event per call.
async fn reroutes<Q: CallQueries>(q: &Q, backends: &[String], range: (u64, u64)) -> Result<Vec<Event>, String> {
    let calls = q.activity_of_calls(backends, range, range).await?;
    let mut events = Vec::new();
    for c in calls.iter().filter(|c| c.invite_targets.iter().filter(|t| backends.contains(t)).count() >= 2) {
        if events.len() == MAX_REROUTES {
            break;
        }
        let rows = q.flow(std::slice::from_ref(&c.call_id), range, 2_000, false).await?;
        let tries: Vec<_> = rows.iter().filter(|r| r.is_invite() && backends.contains(&r.dst_ip)).collect();
        let Some(first) = tries.first() else { continue };
        let Some(second) = tries.iter().find(|r| r.dst_ip != first.dst_ip) else { continue };
        let mut e = Event::new(EventKind::InviteRerouted, second.time_us, &second.dst_ip);
        e.from = Some(first.dst_ip.clone());
        e.to = Some(second.dst_ip.clone());
        e.evidence.push(format!(
            "INVITE of {} sent to {} at {}, then to {} at {}",
            c.call_id,
            first.dst_ip,
            format_rfc3339(first.time_us),
            second.dst_ip,
            format_rfc3339(second.time_us)
        ));
        let impact = if (200..300).contains(&c.invite_status) { Impact::Rerouted } else { Impact::Dropped };
        e.calls.push(CallImpact {
            call_id: c.call_id.clone(),
            impact,
            explanation: format!("final status {}", c.invite_status),
        });
        events.push(e);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec(node: &str, first: u64, last: u64) -> ActivitySecond {
        ActivitySecond { node_name: node.into(), src_ip: "10.0.0.100".into(), first_us: first, last_us: last, rows: 1 }
    }

    #[test]
    fn owner_change_is_a_move_and_stray_overlap_is_not_two() {
        let s = [
            sec("lb1", 0, 900_000),
            sec("lb1", 1_000_000, 1_200_000),
            sec("lb2", 3_100_000, 3_900_000),
            sec("lb1", 3_150_000, 3_150_000), // a stray last packet
            sec("lb2", 4_000_000, 4_500_000),
        ];
        let m = ownership_moves(&s);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!((m[0].from.as_str(), m[0].to.as_str()), ("lb1", "lb2"));
        assert_eq!((m[0].last_old_us, m[0].first_new_us), (1_200_000, 3_100_000));
        // Two nodes sending from it in turn (split brain) is no move while it lasts.
        let both = [sec("lb1", 0, 0), sec("lb2", 10, 10), sec("lb1", 2_000_000, 2_000_000)];
        let both = [&both[..], &[sec("lb2", 3_000_000, 3_000_000), sec("lb1", 4_500_000, 4_500_000)]].concat();
        assert!(ownership_moves(&both).is_empty());
    }

    #[test]
    fn announcement_sets_the_time() {
        let m = Move { from: "lb1".into(), to: "lb2".into(), last_old_us: 1_000, first_new_us: 2_000_000 };
        let garp = Announcement {
            time_us: 1_500_000,
            node: "lb2".into(),
            kind: "garp".into(),
            addresses: vec!["10.0.0.100".into()],
            src: String::new(),
        };
        assert_eq!(vip_event("10.0.0.100", &m, std::slice::from_ref(&garp)).time_us, 1_500_000);
        assert_eq!(vip_event("10.0.0.100", &m, &[]).time_us, 2_000_000);
        let rows = [NetEventRow {
            time_us: 5,
            node_name: "lb2".into(),
            raw:
                r#"{"event":"vrrp","version":2,"vrid":51,"priority":100,"src":"10.0.0.12","addresses":["10.0.0.100"]}"#
                    .into(),
        }];
        assert_eq!(announcements(&rows)[0].addresses, vec!["10.0.0.100"]);
    }

    fn probe(t: u64, status: u16) -> BackendTransaction {
        BackendTransaction {
            method: "OPTIONS".into(),
            backend: "10.0.0.21".into(),
            sender: "10.0.0.11".into(),
            request_us: t,
            response_us: if status == 0 { 0 } else { t + 500 },
            status,
            ..BackendTransaction::default()
        }
    }

    #[test]
    fn two_failed_probes_mark_down_and_an_answer_marks_up() {
        let p = [probe(0, 200), probe(1_000_000, 0), probe(2_000_000, 200), probe(3_000_000, 0), probe(4_000_000, 0)];
        let p2 = [probe(5_000_000, 503), probe(6_000_000, 200)];
        let all: Vec<&BackendTransaction> = p.iter().chain(p2.iter()).collect();
        let e = backend_events("10.0.0.21", &all, 10_000_000);
        let kinds: Vec<_> = e.iter().map(|e| (e.kind, e.time_us)).collect();
        assert_eq!(kinds, vec![(EventKind::BackendDown, 3_000_000), (EventKind::BackendUp, 6_000_500)]);
        assert_eq!(e[0].cause, Some("no_answer"));
        assert_eq!(e[0].last_alive_us, 2_000_500);
        // Unanswered probes at the very end of the range are not failures yet.
        let tail = [probe(9_000_000, 0), probe(9_500_000, 0)];
        let late: Vec<&BackendTransaction> = p[..1].iter().chain(&tail).collect();
        assert!(backend_events("10.0.0.21", &late, 10_000_000).is_empty());
    }

    fn call(invite_status: u16, bye: (u8, u8, u8), nodes: &[&str], targets: &[&str]) -> CallActivity {
        CallActivity {
            call_id: "c".into(),
            first_us: 0,
            last_us: 10_000_000,
            invite_status,
            bye_sent: bye.0,
            bye_ok: bye.1,
            bye_failed: bye.2,
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            invite_targets: targets.iter().map(|s| s.to_string()).collect(),
            repeats: 0,
        }
    }

    #[test]
    fn impacts() {
        let mut vip = Event::new(EventKind::VipMoved, 5_000_000, "10.0.0.100");
        vip.from = Some("lb1".into());
        vip.to = Some("lb2".into());
        let b = ["10.0.0.21".to_string(), "10.0.0.22".to_string()];
        let i = |c: &CallActivity| classify(&vip, c, &b).impact;
        assert_eq!(i(&call(200, (1, 1, 0), &["itsp", "lb1", "lb2"], &["10.0.0.21"])), Impact::SurvivedViaOtherLb);
        assert_eq!(i(&call(200, (1, 0, 1), &["itsp", "lb1", "lb2"], &["10.0.0.21"])), Impact::Dropped);
        assert_eq!(i(&call(200, (1, 1, 0), &["lb1"], &["10.0.0.21", "10.0.0.22"])), Impact::Rerouted);
        assert_eq!(i(&call(200, (1, 1, 0), &["lb1"], &["10.0.0.21"])), Impact::Unaffected);
        assert_eq!(i(&call(0, (0, 0, 0), &["lb1"], &["10.0.0.21"])), Impact::Dropped);
        let down = Event::new(EventKind::BackendDown, 20_000_000, "10.0.0.21");
        assert_eq!(classify(&down, &call(200, (0, 0, 0), &["ast1"], &["10.0.0.30"]), &b).impact, Impact::Dropped);
    }
}
