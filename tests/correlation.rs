//! Correlation and failover visibility against ground truth: each scenario of
//! `pcaps/scenarios/` (generated in network namespaces with real Kamailio load balancers,
//! the project's B2BUA and sipp; see scenarios/README.md) is replayed by one agent per
//! host (node name = host) into one collector, and the API must reproduce `truth.json`:
//!
//! - leg links: every A-leg's flow links exactly its B-legs (precision and recall), by
//!   header where the B2BUA adds X-CID and by the explained heuristic where it does not;
//! - failover events: the VIP move and the backend crash/drain found within a second of
//!   the scripted time, with the calls in progress as impacted calls;
//! - per call: the summary's failover impact matches the ground truth.

use std::collections::BTreeSet;

use e2e::{agent, eventually, get_json, repo, sent_by, sql, wait_for_rows, Collector};
use serde_json::Value;

const HOSTS: [&str; 6] = ["itsp", "lb1", "lb2", "ast1", "ast2", "phones"];

/// A scenario replayed into its own database.
struct Replayed {
    truth: Value,
    collector: Collector,
}

fn replay(scenario: &str) -> Replayed {
    let db = format!("e2e_corr_{}", scenario.replace('-', "_"));
    let collector = Collector::start(&db);
    let truth = replay_into(scenario, &db, &[&collector]);
    Replayed { truth, collector }
}

/// Replays each host's capture of `scenario`, host `i` to collector `i % n`, and waits
/// until `db` holds everything; returns the ground truth.
fn replay_into(scenario: &str, db: &str, collectors: &[&Collector]) -> Value {
    let dir = repo().join("pcaps/scenarios").join(scenario);
    let truth: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap()).unwrap();
    let mut sent = 0;
    for (i, host) in HOSTS.iter().enumerate() {
        let pcap = dir.join(format!("{host}.pcap"));
        let hep = &collectors[i % collectors.len()].hep;
        let out = agent(&["-r", pcap.to_str().unwrap(), "-hs", hep, "-nt", "tcp", "--node-name", host]);
        assert!(out.status.success(), "{scenario}/{host}: {}", String::from_utf8_lossy(&out.stderr));
        sent += sent_by(&out);
    }
    assert!(wait_for_rows(db, sent) >= sent, "{scenario}: not every message stored");
    // The call summaries (a materialized view) can trail the rows by a moment.
    let calls = |table: &str| sql(&format!("SELECT uniqExact(call_id) FROM {db}.{table} WHERE call_id != ''"));
    assert!(eventually(|| calls("sip_calls") == calls("sip_messages")), "{scenario}: call summaries missing");
    truth
}

fn calls(truth: &Value) -> &Vec<Value> {
    truth["calls"].as_array().unwrap()
}

fn b_legs(call: &Value) -> BTreeSet<String> {
    call["b_legs"].as_array().unwrap().iter().map(|b| b["b_call_id"].as_str().unwrap().to_owned()).collect()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Checks every A-leg's links against the truth and returns the methods used.
fn check_links(r: &Replayed, scenario: &str) -> BTreeSet<String> {
    let (mut predicted, mut correct, mut expected) = (0usize, 0usize, 0usize);
    let mut methods = BTreeSet::new();
    for call in calls(&r.truth) {
        let a = call["a_call_id"].as_str().unwrap();
        let flow = get_json(&r.collector.api, &format!("/api/v1/calls/{}/flow", encode(a)));
        let want = b_legs(call);
        expected += want.len();
        for link in flow["links"].as_array().unwrap() {
            predicted += 1;
            let (la, lb) = (link["a_leg"].as_str().unwrap(), link["b_leg"].as_str().unwrap());
            if la == a && want.contains(lb) {
                correct += 1;
            } else {
                eprintln!("{scenario}: wrong link {la} -> {lb}: {}", link["explanation"]);
            }
            methods.insert(link["method"].as_str().unwrap().to_owned());
            assert!(!link["explanation"].as_str().unwrap().is_empty());
        }
        // The ladder carries every leg, tagged.
        let legs: BTreeSet<&str> =
            flow["messages"].as_array().unwrap().iter().map(|m| m["call_id"].as_str().unwrap()).collect();
        for b in &want {
            assert!(legs.contains(b.as_str()), "{scenario}: {a}'s flow lacks messages of B-leg {b}");
        }
        let single = get_json(&r.collector.api, &format!("/api/v1/calls/{}/flow?legs=single", encode(a)));
        assert!(single["messages"].as_array().unwrap().iter().all(|m| m["call_id"] == a));
    }
    let precision = correct as f64 / predicted.max(1) as f64;
    let recall = correct as f64 / expected.max(1) as f64;
    eprintln!("{scenario}: leg links precision {precision:.3} recall {recall:.3} ({correct}/{predicted}/{expected})");
    assert_eq!((precision, recall), (1.0, 1.0), "{scenario}: leg links");
    methods
}

fn failovers(r: &Replayed) -> Vec<Value> {
    let from = r.truth["t_start"].as_f64().unwrap() as u64 - 10;
    let to = r.truth["t_end"].as_f64().unwrap() as u64 + 60;
    let v = get_json(&r.collector.api, &format!("/api/v1/failovers?from={from}&to={to}"));
    v["events"].as_array().unwrap().clone()
}

/// The one event of `kind` for `address`, checked against the truth's time.
fn the_event<'a>(events: &'a [Value], kind: &str, address: &str, truth_t: f64) -> &'a Value {
    let found: Vec<&Value> = events.iter().filter(|e| e["kind"] == kind && e["address"] == address).collect();
    assert_eq!(found.len(), 1, "one {kind} for {address} expected: {events:#?}");
    let e = found[0];
    let t = e["time_us"].as_u64().unwrap() as f64 / 1e6;
    eprintln!("{kind} {address}: detected {t:.3}, truth {truth_t:.3}, off by {:.3} s", t - truth_t);
    assert!((t - truth_t).abs() <= 1.0, "{kind} off by more than a second: {e:#}");
    e
}

/// Impacted calls of an event versus the truth: the calls in progress at the break, and
/// those the break changed (started during a VIP outage, re-routed off or dropped by the
/// backend); for a backend, their B-legs on it too.
fn check_impacted(r: &Replayed, e: &Value, backend: Option<&str>) {
    let in_progress: BTreeSet<&str> =
        r.truth["events"][0]["calls_in_progress"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    let (mut want_a, mut want_b) = (BTreeSet::new(), BTreeSet::new());
    for c in calls(&r.truth) {
        let a = c["a_call_id"].as_str().unwrap();
        let on_backend = backend.is_none_or(|b| c["backends_tried"].as_array().unwrap().iter().any(|x| x == b));
        let changed = matches!(c["impact"].as_str().unwrap(), "rerouted" | "dropped" | "survived_via_other_lb");
        if on_backend && (in_progress.contains(a) || changed) {
            want_a.insert(a.to_owned());
            for leg in c["b_legs"].as_array().unwrap() {
                if backend.is_some_and(|b| leg["backend"] == b) {
                    want_b.insert(leg["b_call_id"].as_str().unwrap().to_owned());
                }
            }
        }
    }
    let got: BTreeSet<String> =
        e["calls"].as_array().unwrap().iter().map(|c| c["call_id"].as_str().unwrap().to_owned()).collect();
    let (got_a, got_b): (BTreeSet<String>, BTreeSet<String>) = got.into_iter().partition(|c| c.starts_with("itsp-"));
    assert_eq!(got_a, want_a, "impacted A-legs");
    assert_eq!(got_b, want_b, "impacted B-legs");
}

/// Each call summary's failover impact against the truth's (`none` and `unaffected`
/// both mean the call went on normally).
fn check_call_impacts(r: &Replayed) {
    for c in calls(&r.truth) {
        let a = c["a_call_id"].as_str().unwrap();
        let summary = get_json(&r.collector.api, &format!("/api/v1/calls/{}", encode(a)));
        let got = summary["failover"]["impact"].as_str().unwrap().to_owned();
        let want = c["impact"].as_str().unwrap();
        let normal = |s: &str| matches!(s, "none" | "unaffected");
        assert!(got == want || (normal(&got) && normal(want)), "{a}: impact {got}, truth {want}: {summary:#}");
    }
}

#[test]
fn plain_calls_link_by_header_and_nothing_fails_over() {
    let r = replay("plain");
    assert_eq!(check_links(&r, "plain"), BTreeSet::from(["header".to_owned()]));
    let events = failovers(&r);
    assert!(events.iter().all(|e| e["kind"] != "vip_moved" && e["kind"] != "backend_down"), "{events:#?}");
    check_call_impacts(&r);
}

#[test]
fn calls_without_xcid_link_by_explained_heuristic() {
    let r = replay("plain-noxcid");
    assert_eq!(check_links(&r, "plain-noxcid"), BTreeSet::from(["heuristic".to_owned()]));
    let a = calls(&r.truth)[0]["a_call_id"].as_str().unwrap();
    let flow = get_json(&r.collector.api, &format!("/api/v1/calls/{}/flow", encode(a)));
    let ev = &flow["links"][0]["evidence"];
    assert_eq!(ev["callee"]["result"], "match", "{ev:#}");
    assert!(ev["delay_ms"].as_f64().unwrap() < 100.0, "{ev:#}");
    assert_eq!(ev["candidates"], 1, "{ev:#}");
}

#[test]
fn lb_failover_is_found_with_its_calls() {
    let r = replay("lb-failover");
    check_links(&r, "lb-failover");
    let events = failovers(&r);
    let truth = &r.truth["events"][0];
    let e = the_event(&events, "vip_moved", r.truth["vip"].as_str().unwrap(), truth["t"].as_f64().unwrap());
    assert_eq!((e["from"].as_str(), e["to"].as_str()), (Some("lb1"), Some("lb2")));
    check_impacted(&r, e, None);
    check_call_impacts(&r);
}

/// The same failover with keepalived (VRRP) moving the VIP: found by the new master's
/// announcement.
#[test]
fn keepalived_failover_is_found_by_its_announcement() {
    let r = replay("lb-failover-vrrp");
    check_links(&r, "lb-failover-vrrp");
    let events = failovers(&r);
    let truth = &r.truth["events"][0];
    let e = the_event(&events, "vip_moved", r.truth["vip"].as_str().unwrap(), truth["t"].as_f64().unwrap());
    assert_eq!((e["from"].as_str(), e["to"].as_str()), (Some("lb1"), Some("lb2")));
    let said = e["evidence"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("VRRP advertisement"));
    assert!(said, "{e:#}");
    check_impacted(&r, e, None);
    check_call_impacts(&r);
}

#[test]
fn backend_crash_is_found_with_its_calls() {
    let r = replay("backend-crash");
    check_links(&r, "backend-crash");
    let events = failovers(&r);
    let truth = &r.truth["events"][0];
    let addr = r.truth["hosts"]["ast1"].as_str().unwrap();
    let e = the_event(&events, "backend_down", addr, truth["t"].as_f64().unwrap());
    assert_eq!(e["cause"], "no_answer");
    check_impacted(&r, e, Some("ast1"));
    check_call_impacts(&r);
}

/// The hosts' agents send to two collectors sharing one database: every call's messages
/// are split between them, and either collector's API correlates them the same.
#[test]
fn correlation_holds_across_collectors() {
    let db = "e2e_corr_two_collectors";
    let first = Collector::start(db);
    let second = Collector::join(db, &[]);
    let truth = replay_into("lb-failover", db, &[&first, &second]);
    for collector in [first, second] {
        let r = Replayed { truth: truth.clone(), collector };
        check_links(&r, "lb-failover (two collectors)");
        let events = failovers(&r);
        let e = the_event(&events, "vip_moved", "10.77.0.100", truth["events"][0]["t"].as_f64().unwrap());
        check_impacted(&r, e, None);
        check_call_impacts(&r);
    }
}

#[test]
fn backend_drain_is_found_with_its_calls() {
    let r = replay("backend-drain");
    check_links(&r, "backend-drain");
    let events = failovers(&r);
    let truth = &r.truth["events"][0];
    let addr = r.truth["hosts"]["ast1"].as_str().unwrap();
    let e = the_event(&events, "backend_down", addr, truth["t"].as_f64().unwrap());
    assert_eq!(e["cause"], "rejecting");
    check_impacted(&r, e, Some("ast1"));
    check_call_impacts(&r);
}
