//! The whole path with real parts: `capture-agent` replays captures to a real
//! `collector`, which stores them in a real ClickHouse; the HTTP API answers.
//!
//! - every corpus capture: the stored SIP messages and Call-IDs equal tshark's counts
//!   (the same reference table the agent's own corpus test uses);
//! - a call reassembled from out-of-order TCP segments comes back in wire order;
//! - the pcap export of a call, replayed by the agent again, yields the same messages;
//! - HEP mirrors on the wire (Kamailio siptrace v2/v3, UDP and TCP, compressed payloads)
//!   are stored as sent, correlation id included;
//! - a VIP failover's gratuitous ARP and VRRP advertisements (payload type 112) are stored
//!   with method GARP / VRRP and never become calls.

use e2e::{agent, corpus, get_json, http, repo, sent_by, sql, wait_for_rows, Collector, Sink};

/// Captures whose counts differ from tshark's, and why: (file, SIP messages, Call-IDs).
const NOT_TSHARK: &[(&str, u64, u64)] = &[
    // Seven HEP packets in one TCP stream; tshark shows one per segment.
    ("gen/synthetic/hep3_tcp_stream.pcap", 7, 1),
    // tshark does not inflate HEP chunk 0x10.
    ("pcap/hep/hep3_compressed.pcap.pcapng", 21, 1),
];

/// Microsoft NetMon, not pcap: nothing to store.
const UNREADABLE: &str = "pcap/sipnab/c07-sip-r2.cap";

struct Reference {
    file: String,
    sip: u64,
    call_ids: u64,
    hep: bool,
}

fn reference() -> Vec<Reference> {
    let tsv = std::fs::read_to_string(corpus().join("analysis_oneline.tsv")).unwrap();
    tsv.lines()
        .filter(|l| !l.starts_with(UNREADABLE))
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let num = |k: &str| cols.iter().find_map(|c| c.strip_prefix(k)).unwrap().parse::<u64>().unwrap();
            let file = cols[0].to_string();
            let (sip, call_ids) = NOT_TSHARK
                .iter()
                .find(|(f, ..)| *f == file)
                .map_or((num("sip="), num("callids=")), |(_, s, c)| (*s, *c));
            // HEP mirrors keep their sender's node id, so they are checked one per database.
            let hep = num("hep=") > 0 || file.contains("kamailio_siptrace");
            Reference { file, sip, call_ids, hep }
        })
        .collect()
}

/// A node name per file, usable as a ClickHouse string literal.
fn node_of(file: &str) -> String {
    file.replace(['/', '.', '-'], "_")
}

fn replay(collector: &Collector, file: &str, node: &str) -> u64 {
    let path = corpus().join(file);
    let out = agent(&["-r", path.to_str().unwrap(), "-hs", &collector.hep, "-nt", "tcp", "--node-name", node]);
    assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    sent_by(&out)
}

fn counts(db: &str, filter: &str) -> (u64, u64) {
    let row = sql(&format!(
        "SELECT count(), uniqExact(call_id) FROM {db}.sip_messages WHERE payload_type = 1 AND call_id != '' {filter}"
    ));
    let mut it = row.split_whitespace().map(|v| v.parse::<u64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[test]
fn every_capture_is_stored_with_the_reference_counts() {
    let refs = reference();
    let mut failures = Vec::new();
    // Plain captures: one database, told apart by the agent's node name.
    let db = "e2e_corpus";
    let collector = Collector::start(db);
    let mut sent = 0;
    for r in refs.iter().filter(|r| !r.hep) {
        sent += replay(&collector, &r.file, &node_of(&r.file));
    }
    assert_eq!(wait_for_rows(db, sent), sent, "every message sent is stored");
    for r in refs.iter().filter(|r| !r.hep) {
        let (sip, call_ids) = counts(db, &format!("AND node_name = '{}'", node_of(&r.file)));
        // Messages without a Call-ID (e.g. junk before a request) are stored but not counted here.
        let want_sip = r.sip - u64::from(r.call_ids == 0 && r.sip > 0);
        if (sip, call_ids) != (want_sip, r.call_ids) {
            failures
                .push(format!("{}: stored {sip} SIP / {call_ids} Call-IDs, want {} / {}", r.file, r.sip, r.call_ids));
        }
    }
    drop(collector);
    // HEP mirrors: a database each.
    for (i, r) in refs.iter().filter(|r| r.hep).enumerate() {
        let db = format!("e2e_hep{i}");
        let collector = Collector::start(&db);
        let sent = replay(&collector, &r.file, "relay");
        wait_for_rows(&db, sent);
        let got = counts(&db, "");
        if got != (r.sip, r.call_ids) {
            failures.push(format!(
                "{}: stored {} SIP / {} Call-IDs, want {} / {}",
                r.file, got.0, got.1, r.sip, r.call_ids
            ));
        }
    }
    assert!(failures.is_empty(), "{} file(s) differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn hep_mirror_keeps_its_metadata() {
    let db = "e2e_mirror";
    let collector = Collector::start(db);
    let sent = replay(&collector, "gen/kamailio_siptrace_hepv3.pcap", "relay");
    assert_eq!(wait_for_rows(db, sent), 70);
    // Kamailio's own capture id and timestamps, not the agent's: relayed as-is.
    let nodes = sql(&format!("SELECT DISTINCT node_id FROM {db}.sip_messages"));
    assert_eq!(nodes.trim(), "2001", "Kamailio's capture id survives the relay");
    let v2 = "e2e_mirror_v2";
    let collector = Collector::start(v2);
    let sent = replay(&collector, "gen/kamailio_siptrace_hepv2.pcap", "relay");
    assert_eq!(wait_for_rows(v2, sent), 21);
    let (min_ts, methods) = {
        let row = sql(&format!("SELECT min(ts), groupUniqArray(method) FROM {v2}.sip_messages FORMAT TSV"));
        let mut it = row.trim().split('\t').map(String::from);
        (it.next().unwrap(), it.next().unwrap())
    };
    assert!(min_ts.starts_with("20"), "v2 timestamps kept: {min_ts}");
    assert!(methods.contains("INVITE") && methods.contains("BYE"), "{methods}");
}

#[test]
fn out_of_order_tcp_call_has_its_flow_in_wire_order_and_exports_as_pcap() {
    let db = "e2e_flow";
    let collector = Collector::start(db);
    let sent = replay(&collector, "gen/synthetic/tcp_multi_sip_out_of_order.pcap", "edge");
    assert_eq!(wait_for_rows(db, sent), 11);
    // The calls summary lists it...
    // A Call-ID lookup needs no time range, though the capture is from 2023.
    let search = "/api/v1/calls?call_id=tcpmulti-1%40192.0.2.10";
    let found = e2e::eventually(|| get_json(&collector.api, search)["calls"].as_array().unwrap().len() == 1);
    assert!(found, "the call summary appears: {}", get_json(&collector.api, search));
    // ...and its flow is in wire order although two client segments were captured
    // swapped: the INVITE's head arrived after the segment holding its tail and the
    // ACK's first bytes. (This synthetic client sends the ACK's head before the server's
    // responses, so on the wire the ACK starts before the 100.) The three responses
    // share one segment and keep their stream order.
    let flow = get_json(&collector.api, "/api/v1/calls/tcpmulti-1%40192.0.2.10/flow");
    let labels: Vec<&str> = flow["messages"].as_array().unwrap().iter().map(|m| m["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["INVITE", "ACK", "100 Trying", "180 Ringing", "200 OK", "BYE", "200 OK"], "{flow}");

    // The pcap export, replayed by the agent, gives the same messages in the same order.
    let (status, pcap) = http("GET", &collector.api, "/api/v1/calls/tcpmulti-1%40192.0.2.10/pcap", b"");
    assert_eq!(status, 200);
    let file = std::env::temp_dir().join(format!("e2e-export-{}.pcap", std::process::id()));
    std::fs::write(&file, &pcap).unwrap();
    let sink = Sink::start();
    let out = agent(&["-r", file.to_str().unwrap(), "-hs", &sink.addr, "-nt", "tcp"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = sink.finish();
    let replayed: Vec<&str> = lines.iter().map(|l| l.split_whitespace().nth(4).unwrap()).collect();
    assert_eq!(replayed, ["INVITE", "ACK", "100", "180", "200", "BYE", "200"], "{lines:?}");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn oversized_invite_is_stored_whole() {
    // 65,793 bytes: over the HEP limit, so the agent sends it compressed.
    let db = "e2e_large";
    let collector = Collector::start(db);
    let sent = replay(&collector, "pcap/suricata/sip-body-large__sip-body-large.pcap", "edge");
    assert_eq!(wait_for_rows(db, sent), 2);
    let len = sql(&format!("SELECT max(length(raw)) FROM {db}.sip_messages WHERE method = 'INVITE'"));
    assert_eq!(len.trim(), "65793");
}

#[test]
fn failover_events_are_stored_apart_from_calls() {
    let db = "e2e_net_events";
    let collector = Collector::start(db);
    let mut sent = 0;
    for (scenario, node) in [("lb-failover", "lb2"), ("lb-failover-vrrp", "lb2_vrrp")] {
        let path = repo().join("pcaps/scenarios").join(scenario).join("lb2.pcap");
        let out = agent(&["-r", path.to_str().unwrap(), "-hs", &collector.hep, "-nt", "tcp", "--node-name", node]);
        assert!(out.status.success(), "{scenario}: {}", String::from_utf8_lossy(&out.stderr));
        sent += sent_by(&out);
    }
    assert_eq!(wait_for_rows(db, sent), sent, "SIP and events stored");
    // The scripted failover's two announcements, as captured on lb2, with their JSON.
    let garps = sql(&format!(
        "SELECT toUInt32(ts), ts_us, src_ip, dst_ip, src_port, dst_port, transport, call_id, raw \
         FROM {db}.sip_messages WHERE payload_type = 112 AND method = 'GARP' AND node_name = 'lb2' ORDER BY ts, ts_us"
    ));
    let json = r#"{"event":"garp","ip":"10.77.0.100","mac":"1e:a7:48:48:c1:dd","op":"request"}"#;
    let want: Vec<String> = ["1795321827\t901276", "1795321828\t901321"]
        .iter()
        .map(|t| format!("{t}\t10.77.0.100\t10.77.0.100\t0\t0\t0\t\t{json}"))
        .collect();
    assert_eq!(garps.lines().collect::<Vec<_>>(), want);
    // keepalived's takeover: 9 advertisements (lb1's, then lb2's) and 10 announcements.
    let kinds = sql(&format!(
        "SELECT method, count(), uniqExact(src_ip), max(call_id) FROM {db}.sip_messages \
         WHERE payload_type = 112 AND node_name = 'lb2_vrrp' GROUP BY method ORDER BY method"
    ));
    assert_eq!(kinds, "GARP\t10\t1\t\nVRRP\t9\t2\t\n");
    // None of them is a call: the summary view takes SIP only, and search finds SIP calls.
    let sip_calls =
        sql(&format!("SELECT uniqExact(call_id) FROM {db}.sip_messages WHERE payload_type = 1 AND call_id != ''"));
    let summaries = || sql(&format!("SELECT uniqExact(call_id), countIf(call_id = '') FROM {db}.sip_calls"));
    let want = format!("{}\t0\n", sip_calls.trim());
    assert!(e2e::eventually(|| summaries() == want), "{} call summaries, want {want}", summaries());
    let found = get_json(&collector.api, "/api/v1/calls?from=1795321000&to=1795340000&limit=1000");
    let calls = found["calls"].as_array().unwrap();
    assert_eq!(calls.len().to_string(), sip_calls.trim(), "{found}");
    assert!(calls.iter().all(|c| !c["call_id"].as_str().unwrap().is_empty()), "{found}");
}
