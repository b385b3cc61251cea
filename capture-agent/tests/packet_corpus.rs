//! Decodes every corpus capture and compares the SIP payloads found with what tshark
//! counted (`analysis_oneline.tsv`).
//!
//! The decoder delivers transport payloads; a payload "is SIP" here when it starts with
//! a SIP start line (`wire::sip::looks_like_sip`). For captures of plain SIP over UDP
//! that is exactly tshark's message count. Where it cannot be, the file is listed in
//! [`DIFFERENT`] with the reason.

mod source_common;

use capture_agent::flow::{Proto, Timestamp};
use capture_agent::packet::{Decoder, DefragStats};
use capture_agent::source::PcapFile;
use source_common::{capture_files, corpus_dir, expectations, NETMON_FILE};

/// SIP-start payloads per transport, and the VLAN ids seen.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    udp: u64,
    tcp: u64,
    sctp: u64,
    vlans: Vec<Option<u16>>,
}

/// Files where our count differs from tshark's `sip=` or the file is not plain SIP over
/// UDP: (file, SIP-start payloads over UDP, TCP, SCTP, why).
const DIFFERENT: &[(&str, u64, u64, u64, &str)] = &[
    // SIP inside HEP: the payloads start with HEP headers; the HEP decoder finds the SIP.
    ("gen/kamailio_siptrace_hepv2.pcap", 0, 0, 0, "HEPv2 over UDP"),
    ("gen/kamailio_siptrace_hepv3.pcap", 0, 0, 0, "HEPv3 over UDP"),
    ("gen/kamailio_siptrace_hepv3_tcp.pcap", 0, 0, 0, "HEPv3 over TCP"),
    ("gen/synthetic/hep3_tcp_stream.pcap", 0, 0, 0, "HEPv3 over TCP"),
    ("gen/synthetic/hep3_udp_variants.pcap", 0, 0, 0, "HEP variants over UDP"),
    ("pcap/hep/hep.pcap", 0, 0, 0, "HEP over UDP"),
    ("gen/topology_lb_b2bua_hep.pcap", 200, 0, 0, "200 plain SIP + 70 HEP mirror copies"),
    // SIP over TCP: per segment, before stream reassembly (the tcp module's job).
    ("gen/sipp_tcp_basic.pcap", 0, 30, 0, "not in the tshark table; 30 segments start SIP"),
    ("gen/synthetic/tcp_multi_sip_out_of_order.pcap", 0, 5, 0, "11 messages packed in 5 segments"),
    ("gen/synthetic/tcp_multi_sip_per_segment.pcap", 0, 5, 0, "11 messages packed in 5 segments"),
    ("pcap/heplify/sip_ipv4_tcp.pcap", 0, 7, 0, "TCP, one message per segment"),
    ("pcap/heplify/sip_ipv4_tcp_fragmented.pcap", 0, 406, 0, "TCP, messages start a segment"),
    ("pcap/heplify/sip_ipv4_tcp_retrans.pcap", 4, 5, 0, "one TCP retransmission, tshark counts 4"),
    ("pcap/pcapplusplus/sip_resp.pcap", 6, 1, 0, "one response over TCP"),
    ("pcap/sngrep/ipip.pcap", 0, 4, 0, "TCP inside IP-in-IP"),
    ("pcap/suricata/sip-body-large__sip-body-large.pcap", 0, 2, 0, "TCP, body continues in later segments"),
    ("pcap/suricata/sip-tcp-method__sip-tcp.pcap", 0, 2, 0, "TCP"),
    ("pcap/suricata/sip-tcp-pattern-matching__sip.pcap", 0, 2, 0, "TCP"),
    // WebSocket frames start with a WS header, not SIP (the tcp module unwraps them).
    ("pcap/heplify/sip_tcp_websocket.pcap", 28, 0, 0, "11 more messages inside WebSocket frames"),
    // Frame 1 holds the first half of an INVITE (DATA flags B), frame 2 the rest (E):
    // delivered once, rebuilt, with the three whole messages.
    ("pcap/heplify/sip_sctp.pcap", 0, 0, 4, "one INVITE fragmented over two SCTP DATA chunks"),
];

fn decode_file(name: &str) -> (Tally, Decoder) {
    let mut file = PcapFile::open(corpus_dir().join(name)).unwrap();
    let mut decoder = Decoder::new();
    let mut t = Tally::default();
    let mut last = Timestamp::default();
    while let Some(p) = file.next_packet().unwrap() {
        last = p.ts;
        decoder.decode(p.ts, p.link_type, p.data, &mut |seg| {
            if !t.vlans.contains(&seg.flow.vlan) {
                t.vlans.push(seg.flow.vlan);
            }
            if wire::sip::looks_like_sip(seg.payload) {
                match seg.flow.proto {
                    Proto::Udp => t.udp += 1,
                    Proto::Tcp => t.tcp += 1,
                    Proto::Sctp => t.sctp += 1,
                }
            }
        });
    }
    decoder.expire_fragments(last);
    (t, decoder)
}

#[test]
fn sip_payloads_match_tshark() {
    let expected = expectations();
    let mut checked = 0;
    for name in capture_files() {
        if name == NETMON_FILE {
            continue;
        }
        let (t, decoder) = decode_file(&name);
        let c = decoder.counters();
        assert_eq!(c.dropped_total(), 0, "{name}: corpus frames are well-formed: {c:?}");
        assert_eq!(c.truncated, 0, "{name}");
        let got = (t.udp, t.tcp, t.sctp);
        if let Some(&(_, udp, tcp, sctp, why)) = DIFFERENT.iter().find(|d| d.0 == name) {
            assert_eq!(got, (udp, tcp, sctp), "{name} ({why})");
        } else {
            let e = &expected[&name];
            assert_eq!(got, (e.sip, 0, 0), "{name}: plain SIP over UDP");
        }
        checked += 1;
    }
    assert_eq!(checked, capture_files().len() - 1);
}

/// Completed datagrams and nothing left over, for every capture with fragments.
#[test]
fn fragmented_captures_reassemble() {
    let cases = [
        ("gen/sipp_large_invite_ipv4_frag.pcap", 3, 18),
        ("gen/sipp_large_invite_ipv4_frag_reversed.pcap", 3, 18),
        ("gen/synthetic/sip_ipv6_udp_frag_inorder.pcap", 1, 1),
        ("gen/synthetic/sip_ipv6_udp_frag_reversed.pcap", 1, 1),
        ("pcap/sngrep/ipv6frag.pcap", 2, 32),
        // Reassembles to a non-SIP datagram: a negative test for the SIP check.
        ("pcap/heplify/ipv6_udp_fragmented.pcap", 1, 0),
    ];
    for (name, completed, sip) in cases {
        let (t, decoder) = decode_file(name);
        let stats = decoder.defrag_stats();
        assert_eq!(stats, DefragStats { completed, ..DefragStats::default() }, "{name}");
        assert_eq!(decoder.fragments_in_flight(), (0, 0), "{name}");
        assert_eq!(t.udp, sip, "{name}");
    }
}

#[test]
fn vlan_ids_are_the_innermost_tag() {
    assert_eq!(decode_file("gen/sipp_basic_vlan100.pcap").0.vlans, vec![Some(100)]);
    // Outer service tag 200, inner customer tag 100.
    assert_eq!(decode_file("gen/synthetic/sip_udp_qinq_vlan200_100.pcap").0.vlans, vec![Some(100)]);
    assert_eq!(decode_file("gen/sipp_basic.pcap").0.vlans, vec![None]);
}

/// ERSPAN and IP-in-IP deliver the inner flow, not the tunnel endpoints.
#[test]
fn tunnels_deliver_inner_flows() {
    for name in ["pcap/heplify/erspan_sip_ipv4_udp.pcapng", "pcap/heplify/ipip0.pcap"] {
        let mut file = PcapFile::open(corpus_dir().join(name)).unwrap();
        let mut decoder = Decoder::new();
        let mut ports = Vec::new();
        while let Some(p) = file.next_packet().unwrap() {
            decoder.decode(p.ts, p.link_type, p.data, &mut |seg| ports.push(seg.flow.dst_port));
        }
        assert!(!ports.is_empty() && ports.iter().all(|&p| p != 0), "{name}");
        assert!(ports.contains(&5060), "{name}: {ports:?}");
    }
}
