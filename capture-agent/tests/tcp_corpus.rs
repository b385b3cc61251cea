//! Reassembly of real and generated captures, read by a minimal test-only pcap reader
//! (classic pcap, Ethernet, optional 802.1Q, IPv4, TCP). The agent's own pcap source
//! lives elsewhere; this reader only has to handle these few files.

use std::net::Ipv4Addr;

use capture_agent::flow::{Flow, Proto, Timestamp};
use capture_agent::tcp::{Counters, Limits, MessageKind, Reassembler, Segment};

fn corpus(path: &str) -> Vec<u8> {
    let full = format!("{}/../../shared/corpus/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Calls `f` with every IPv4 TCP segment of a little-endian microsecond pcap file.
fn for_each_segment(file: &[u8], mut f: impl FnMut(Segment<'_>)) {
    assert_eq!(le32(file, 0), 0xa1b2_c3d4, "only little-endian microsecond pcap");
    assert_eq!(le32(file, 20), 1, "only Ethernet");
    let mut at = 24;
    while at + 16 <= file.len() {
        let ts = Timestamp::new(u64::from(le32(file, at)), le32(file, at + 4));
        let len = le32(file, at + 8) as usize;
        let frame = &file[at + 16..at + 16 + len];
        at += 16 + len;
        if let Some(seg) = tcp_segment(ts, frame) {
            f(seg);
        }
    }
}

fn tcp_segment(ts: Timestamp, frame: &[u8]) -> Option<Segment<'_>> {
    let (mut ethertype, mut ip) = (be16(frame, 12), 14);
    if ethertype == 0x8100 {
        (ethertype, ip) = (be16(frame, 16), 18);
    }
    let ipv4 = &frame[ip..];
    if ethertype != 0x0800 || ipv4[9] != 6 {
        return None;
    }
    // The IP total length, not the frame length: Ethernet pads short frames.
    let ipv4 = &ipv4[..usize::from(be16(ipv4, 2))];
    let tcp = &ipv4[usize::from(ipv4[0] & 0x0f) * 4..];
    let addr = |at: usize| Ipv4Addr::new(ipv4[at], ipv4[at + 1], ipv4[at + 2], ipv4[at + 3]).into();
    let flow = Flow {
        src: addr(12),
        dst: addr(16),
        src_port: be16(tcp, 0),
        dst_port: be16(tcp, 2),
        proto: Proto::Tcp,
        vlan: None,
    };
    let payload = &tcp[usize::from(tcp[12] >> 4) * 4..];
    Some(Segment { ts, flow, seq: be32(tcp, 4), flags: tcp[13], payload })
}

/// Messages (kind, first line) and counters from one capture.
fn reassemble(path: &str) -> (Vec<(MessageKind, String)>, Counters) {
    let file = corpus(path);
    let mut tcp = Reassembler::new(Limits::default());
    let mut out = Vec::new();
    let mut keep = |kind: MessageKind, bytes: &[u8]| {
        let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        out.push((kind, String::from_utf8_lossy(line).trim_end().to_owned()));
    };
    for_each_segment(&file, |seg| tcp.push(&seg, |m| keep(m.kind, m.bytes)));
    tcp.finish(|m| keep(m.kind, m.bytes));
    let counters = tcp.counters().clone();
    (out, counters)
}

fn assert_multi_sip(path: &str) {
    let (msgs, c) = reassemble(path);
    let lines: Vec<&str> = msgs.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(msgs.len(), 11, "{lines:#?}");
    assert!(msgs.iter().all(|(k, _)| *k == MessageKind::Sip));
    for expected in ["REGISTER", "OPTIONS", "INVITE", "ACK", "BYE", "SIP/2.0 100", "SIP/2.0 180"] {
        assert!(lines.iter().any(|l| l.starts_with(expected)), "{expected} missing from {lines:#?}");
    }
    assert_eq!(lines.iter().filter(|l| l.starts_with("SIP/2.0 200")).count(), 4);
    assert_eq!(c.keepalives, 2);
    assert_eq!((c.junk_bytes, c.truncated_messages, c.gaps_skipped), (0, 0, 0));
}

#[test]
fn several_sip_messages_per_segment() {
    assert_multi_sip("gen/synthetic/tcp_multi_sip_per_segment.pcap");
}

#[test]
fn sip_segments_out_of_order() {
    assert_multi_sip("gen/synthetic/tcp_multi_sip_out_of_order.pcap");
    let (_, c) = reassemble("gen/synthetic/tcp_multi_sip_out_of_order.pcap");
    assert_eq!(c.out_of_order_segments, 1);
}

#[test]
fn sip_over_websocket() {
    let (msgs, c) = reassemble("pcap/heplify/sip_tcp_websocket.pcap");
    let lines: Vec<&str> = msgs.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(msgs.len(), 11, "{lines:#?}");
    assert!(msgs.iter().all(|(k, _)| *k == MessageKind::WebSocketSip));
    assert!(lines[0].starts_with("INVITE sip:"), "{lines:#?}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("INVITE")).count(), 2);
    assert_eq!((c.junk_bytes, c.truncated_messages, c.non_sip_streams), (0, 0, 0));
}

#[test]
fn hep_over_tcp() {
    let (msgs, c) = reassemble("gen/synthetic/hep3_tcp_stream.pcap");
    assert_eq!(msgs.len(), 7);
    assert!(msgs.iter().all(|(k, l)| *k == MessageKind::Hep && l.starts_with("HEP3")));
    assert_eq!(c.junk_bytes, 0);
}

#[test]
fn sipp_calls_over_tcp() {
    let (msgs, c) = reassemble("gen/sipp_tcp_basic.pcap");
    assert_eq!(msgs.len(), 30);
    assert!(msgs.iter().all(|(k, _)| *k == MessageKind::Sip));
    assert_eq!((c.junk_bytes, c.truncated_messages), (0, 0));
}

#[test]
fn kamailio_mirroring_hep_over_tcp() {
    let (msgs, c) = reassemble("gen/kamailio_siptrace_hepv3_tcp.pcap");
    assert_eq!(msgs.len(), 21);
    assert!(msgs.iter().all(|(k, _)| *k == MessageKind::Hep));
    assert_eq!((c.junk_bytes, c.truncated_messages), (0, 0));
}
