//! Reassembly and framing of synthetic TCP segments through the public API.

use std::time::Duration;

use capture_agent::flow::{Flow, Proto, Timestamp};
use capture_agent::tcp::{flags, Counters, Limits, MessageKind, Reassembler, Segment};

const ACK: u8 = flags::ACK;

fn flow(src_port: u16, dst_port: u16) -> Flow {
    Flow {
        src: [192, 0, 2, 10].into(),
        dst: [198, 51, 100, 20].into(),
        src_port,
        dst_port,
        proto: Proto::Tcp,
        vlan: None,
    }
}

fn reverse(f: Flow) -> Flow {
    Flow { src: f.dst, dst: f.src, src_port: f.dst_port, dst_port: f.src_port, ..f }
}

/// A SIP request with a body of `body_len` bytes; `n` makes it unique.
fn sip(n: usize, body_len: usize) -> Vec<u8> {
    let body = "x".repeat(body_len);
    format!(
        "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.10;branch=z9hG4bK{n}\r\n\
         Call-ID: call-{n}@example.com\r\nCSeq: 1 INVITE\r\nContent-Length: {body_len}\r\n\r\n{body}"
    )
    .into_bytes()
}

fn response(n: usize) -> Vec<u8> {
    format!("SIP/2.0 200 OK\r\nCall-ID: call-{n}@example.com\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
        .into_bytes()
}

fn texts<T: AsRef<[u8]>>(msgs: &[T]) -> Vec<String> {
    msgs.iter().map(|m| String::from_utf8_lossy(m.as_ref()).into_owned()).collect()
}

/// What came out of the reassembler.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Out {
    ts: Timestamp,
    flow: Flow,
    kind: MessageKind,
    bytes: Vec<u8>,
}

struct Harness {
    tcp: Reassembler,
    out: Vec<Out>,
}

impl Harness {
    fn new() -> Self {
        Self::with(Limits::default())
    }

    fn with(limits: Limits) -> Self {
        Self { tcp: Reassembler::new(limits), out: Vec::new() }
    }

    fn seg(&mut self, usec: u64, flow: Flow, seq: u32, flags: u8, payload: &[u8]) {
        let out = &mut self.out;
        let ts = Timestamp::from_micros(usec);
        self.tcp.push(&Segment { ts, flow, seq, flags, payload }, |m| {
            out.push(Out { ts: m.ts, flow: m.flow, kind: m.kind, bytes: m.bytes.to_vec() });
        });
    }

    fn syn(&mut self, flow: Flow, isn: u32) {
        self.seg(0, flow, isn, flags::SYN, b"");
    }

    fn expire(&mut self, usec: u64) {
        let out = &mut self.out;
        self.tcp.expire(Timestamp::from_micros(usec), |m| {
            out.push(Out { ts: m.ts, flow: m.flow, kind: m.kind, bytes: m.bytes.to_vec() });
        });
    }

    fn finish(&mut self) {
        let out = &mut self.out;
        self.tcp.finish(|m| out.push(Out { ts: m.ts, flow: m.flow, kind: m.kind, bytes: m.bytes.to_vec() }));
    }

    /// Messages as (lossy) text: readable assertion failures.
    fn texts(&self) -> Vec<String> {
        texts(&self.out.iter().map(|o| o.bytes.clone()).collect::<Vec<_>>())
    }

    fn counters(&self) -> &Counters {
        self.tcp.counters()
    }
}

#[test]
fn several_messages_in_one_segment() {
    let f = flow(40000, 5060);
    let msgs = [sip(1, 10), response(1), sip(2, 0)];
    let mut h = Harness::new();
    h.syn(f, 1000);
    h.seg(1, f, 1001, ACK, &msgs.concat());
    assert_eq!(h.texts(), texts(&msgs));
    assert!(h.out.iter().all(|o| o.kind == MessageKind::Sip && o.flow == f));
    assert_eq!(h.counters().sip_messages, 3);
    assert_eq!(h.tcp.buffered_bytes(), 0);
}

#[test]
fn in_order_messages_are_borrowed_from_the_segment() {
    let f = flow(40000, 5060);
    let payload = [sip(1, 10), response(1), sip(2, 0)].concat();
    let mut tcp = Reassembler::new(Limits::default());
    let ts = Timestamp::default();
    tcp.push(&Segment { ts, flow: f, seq: 0, flags: flags::SYN, payload: b"" }, |_| {});
    let mut borrowed = Vec::new();
    let range = payload.as_ptr_range();
    tcp.push(&Segment { ts, flow: f, seq: 1, flags: ACK, payload: &payload[..payload.len() - 5] }, |m| {
        borrowed.push(range.contains(&m.bytes.as_ptr()));
    });
    assert_eq!(borrowed, [true, true]);
    assert_eq!(tcp.buffered_bytes(), payload.len() - 5 - sip(1, 10).len() - response(1).len());
}

#[test]
fn message_split_at_every_byte() {
    let f = flow(40000, 5060);
    let msgs = [sip(1, 30), sip(2, 5)];
    let stream = msgs.concat();
    for cut in 1..stream.len() {
        let mut h = Harness::new();
        h.syn(f, 7);
        h.seg(10, f, 8, ACK, &stream[..cut]);
        h.seg(20, f, 8 + cut as u32, ACK, &stream[cut..]);
        assert_eq!(h.texts(), texts(&msgs), "cut at {cut}");
        // Time of the segment holding each message's first byte, but never before (or at)
        // the previous message's time: both in one segment are 1 us apart.
        let second_start = msgs[0].len();
        let expected_ts = if cut > second_start { 11 } else { 20 };
        assert_eq!(h.out[0].ts, Timestamp::from_micros(10), "cut at {cut}");
        assert_eq!(h.out[1].ts, Timestamp::from_micros(expected_ts), "cut at {cut}");
        assert_eq!(h.tcp.buffered_bytes(), 0);
    }
}

#[test]
fn large_message_in_many_segments() {
    let f = flow(40000, 5060);
    let msg = sip(1, 60_000);
    let mut h = Harness::new();
    h.syn(f, 0);
    for (i, chunk) in msg.chunks(1448).enumerate() {
        h.seg(i as u64 + 1, f, 1 + (i * 1448) as u32, ACK, chunk);
    }
    assert_eq!(h.texts(), texts(&[msg]));
    assert_eq!(h.out[0].ts, Timestamp::from_micros(1));
}

#[test]
fn out_of_order_segments_wait_for_the_hole() {
    let f = flow(40000, 5060);
    let msgs = [sip(1, 100), sip(2, 50), response(3)];
    let stream = msgs.concat();
    let (a, b) = (150, 260);
    let mut h = Harness::new();
    h.syn(f, 500);
    h.seg(1, f, 501, ACK, &stream[..a]);
    h.seg(2, f, 501 + b as u32, ACK, &stream[b..]);
    assert!(h.out.is_empty());
    h.seg(3, f, 501 + a as u32, ACK, &stream[a..b]);
    assert_eq!(h.texts(), texts(&msgs));
    assert_eq!(h.counters().out_of_order_segments, 1);
    assert_eq!(h.counters().gaps_skipped, 0);
    assert_eq!(h.tcp.buffered_bytes(), 0);
}

#[test]
fn retransmissions_exact_and_overlapping_are_trimmed() {
    let f = flow(40000, 5060);
    let msgs = [sip(1, 20), sip(2, 20), sip(3, 20)];
    let stream = msgs.concat();
    let mut h = Harness::new();
    h.syn(f, 0);
    h.seg(1, f, 1, ACK, &stream[..100]);
    h.seg(2, f, 1, ACK, &stream[..100]); // exact repeat
    h.seg(3, f, 51, ACK, &stream[50..200]); // overlaps 50 old bytes
    h.seg(4, f, 301, ACK, &stream[300..]); // ahead of a hole
    h.seg(5, f, 301, ACK, &stream[300..]); // repeat of a waiting segment
    h.seg(6, f, 151, ACK, &stream[150..320]); // fills the hole, overlaps both sides
    assert_eq!(h.texts(), texts(&msgs));
    // Trimmed on arrival (3) and when the waiting segment was reached (1).
    assert_eq!(h.counters().retransmissions, 5);
}

#[test]
fn sequence_numbers_wrap_around() {
    let f = flow(40000, 5060);
    let msgs = [sip(1, 40), sip(2, 40)];
    let stream = msgs.concat();
    let isn = u32::MAX - 100;
    let mut h = Harness::new();
    h.syn(f, isn);
    let seq = |off: usize| isn.wrapping_add(1).wrapping_add(off as u32);
    // Out of order across the wrap: the second part first.
    h.seg(1, f, seq(150), ACK, &stream[150..]);
    h.seg(2, f, seq(0), ACK, &stream[..150]);
    assert_eq!(h.texts(), texts(&msgs));
}

#[test]
fn hole_that_never_fills_is_skipped_after_the_timeout() {
    let f = flow(40000, 5060);
    let msgs = [sip(1, 10), sip(2, 10), sip(3, 10)];
    let (l0, l1) = (msgs[0].len(), msgs[1].len());
    let mut h = Harness::new();
    h.syn(f, 0);
    h.seg(1, f, 1, ACK, &msgs[0]);
    // msgs[1] is lost by the capture; msgs[2] waits.
    h.seg(2, f, 1 + (l0 + l1) as u32, ACK, &msgs[2]);
    assert_eq!(h.texts(), texts(&[msgs[0].clone()]));
    h.expire(500_000);
    assert_eq!(h.out.len(), 1);
    h.expire(1_000_002);
    assert_eq!(h.texts(), texts(&[msgs[0].clone(), msgs[2].clone()]));
    assert_eq!(h.counters().gaps_skipped, 1);
}

#[test]
fn hole_inside_a_message_resyncs_on_the_next_start_line() {
    let f = flow(40000, 5060);
    let msgs = [sip(1, 10), sip(2, 300), sip(3, 10)];
    let stream = msgs.concat();
    let limits = Limits { max_out_of_order_segments: 2, ..Limits::default() };
    let mut h = Harness::with(limits);
    h.syn(f, 0);
    let start2 = msgs[0].len();
    let start3 = start2 + msgs[1].len();
    h.seg(1, f, 1, ACK, &stream[..start2 + 40]); // first message, start of the second
                                                 // The middle of the second message is lost; its tail plus the third arrive in pieces.
    let tail = start2 + 200;
    for (i, off) in [tail, tail + 50, tail + 100].into_iter().enumerate() {
        let end = if i == 2 { stream.len() } else { off + 50 };
        h.seg(2 + i as u64, f, 1 + off as u32, ACK, &stream[off..end]);
    }
    assert_eq!(h.texts(), texts(&[msgs[0].clone(), msgs[2].clone()]));
    assert_eq!(h.counters().gaps_skipped, 1);
    assert_eq!(h.counters().truncated_messages, 1);
    assert_eq!(h.counters().junk_bytes, (start3 - tail) as u64);
}

#[test]
fn keepalives_between_messages_are_counted_and_skipped() {
    let f = flow(40000, 5060);
    let (m1, m2) = (sip(1, 0), response(1));
    let mut h = Harness::new();
    h.syn(f, 0);
    let data = [b"\r\n\r\n".as_slice(), &m1, b"\r\n", &m2, b"\r\n\r\n"].concat();
    h.seg(1, f, 1, ACK, &data);
    h.seg(2, f, 1 + data.len() as u32, ACK, b"\r\n");
    assert_eq!(h.texts(), texts(&[m1, m2]));
    assert_eq!(h.counters().keepalives, 4);
    assert_eq!(h.counters().junk_bytes, 0);
}

#[test]
fn junk_between_messages_is_skipped() {
    let f = flow(40000, 5060);
    let (m1, m2) = (sip(1, 0), sip(2, 0));
    let mut h = Harness::new();
    h.syn(f, 0);
    let junk = b"jaK\n\x00\x00garbage\r\n";
    let data = [m1.as_slice(), junk, &m2].concat();
    h.seg(1, f, 1, ACK, &data);
    assert_eq!(h.texts(), texts(&[m1, m2]));
    assert_eq!(h.counters().junk_bytes, junk.len() as u64);
}

#[test]
fn capture_started_mid_message() {
    let f = flow(40000, 5060);
    let (m1, m2) = (sip(1, 30), sip(2, 30));
    let mut h = Harness::new();
    let data = [&m1[70..], m2.as_slice()].concat();
    h.seg(1, f, 123_456, ACK, &data);
    assert_eq!(h.texts(), texts(&[m2]));
    assert_eq!(h.counters().midstream_starts, 1);
    assert_eq!(h.counters().junk_bytes, (m1.len() - 70) as u64);
}

#[test]
fn capture_started_at_a_message_boundary() {
    let f = flow(40000, 5060);
    let m = response(9);
    let mut h = Harness::new();
    h.seg(1, f, 42, ACK, &m[..20]);
    h.seg(2, f, 62, ACK, &m[20..]);
    assert_eq!(h.texts(), texts(&[m]));
    assert_eq!(h.counters().junk_bytes, 0);
}

/// One WebSocket frame.
fn ws_frame(fin: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![u8::from(fin) << 7 | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    if payload.len() < 126 {
        f.push(m | payload.len() as u8);
    } else if payload.len() <= 0xffff {
        f.push(m | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        f.push(m | 127);
        f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    match mask {
        Some(key) => {
            f.extend_from_slice(&key);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: sip.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: sip\r\nSec-WebSocket-Version: 13\r\n\r\n";
const SWITCHING: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: sip\r\n\r\n";

#[test]
fn websocket_masked_client_and_unmasked_server() {
    let c = flow(43380, 8080);
    let s = reverse(c);
    let (req, resp) = (sip(1, 200), response(1));
    let mut h = Harness::new();
    h.syn(c, 0);
    h.syn(s, 0);
    let client = [
        UPGRADE.to_vec(),
        ws_frame(true, 0x9, Some([1, 2, 3, 4]), b"ping"),
        ws_frame(true, 0x1, Some([0x37, 0xfa, 0x21, 0x3d]), &req),
        // A fragmented message: text start, continuation, final continuation.
        ws_frame(false, 0x1, Some([9, 8, 7, 6]), &req[..10]),
        ws_frame(false, 0x0, Some([5, 4, 3, 2]), &req[10..100]),
        ws_frame(true, 0x0, Some([1, 1, 1, 1]), &req[100..]),
    ]
    .concat();
    // Delivered in two segments cut inside a frame.
    h.seg(1, c, 1, ACK, &client[..UPGRADE.len() + 40]);
    h.seg(2, c, 1 + (UPGRADE.len() + 40) as u32, ACK, &client[UPGRADE.len() + 40..]);
    let server =
        [SWITCHING.to_vec(), ws_frame(true, 0x1, None, &resp), ws_frame(true, 0x8, None, b"\x03\xe8")].concat();
    h.seg(3, s, 1, ACK, &server);
    assert_eq!(h.texts(), texts(&[req.clone(), req, resp]));
    assert!(h.out.iter().all(|o| o.kind == MessageKind::WebSocketSip));
    assert_eq!(h.out[1].ts, Timestamp::from_micros(2));
    assert_eq!(h.counters().websocket_messages, 3);
    assert_eq!(h.counters().websocket_control_frames, 2);
    assert_eq!(h.counters().non_sip_streams, 0);
}

#[test]
fn websocket_joined_mid_connection() {
    let c = flow(43380, 8080);
    let s = reverse(c);
    let (req, resp) = (sip(1, 50), response(1));
    let mut h = Harness::new();
    // No SYN, no handshake: the capture starts at a frame boundary.
    let client =
        [ws_frame(true, 0x1, Some([1, 2, 3, 4]), &req), ws_frame(true, 0x1, Some([5, 6, 7, 8]), &req)].concat();
    h.seg(1, c, 777, ACK, &client);
    // Server side starts in the middle of a frame: resync on the next one.
    let server = [ws_frame(true, 0x1, None, &resp), ws_frame(true, 0x1, None, &resp)].concat();
    h.seg(2, s, 999, ACK, &server[30..]);
    assert_eq!(h.texts(), texts(&[req.clone(), req, resp.clone()]));
    assert!(h.out.iter().all(|o| o.kind == MessageKind::WebSocketSip));
    assert_eq!(h.counters().junk_bytes, (resp.len() + 2 - 30) as u64);
}

#[test]
fn websocket_frames_with_16_and_64_bit_lengths() {
    let c = flow(43380, 8080);
    let (mid, big) = (sip(1, 1000), sip(2, 70_000));
    let mut h = Harness::new();
    h.syn(c, 0);
    let data = [
        UPGRADE.to_vec(),
        ws_frame(true, 0x2, Some([1, 2, 3, 4]), &mid),
        ws_frame(true, 0x1, Some([4, 3, 2, 1]), &big),
    ]
    .concat();
    for (i, chunk) in data.chunks(1448).enumerate() {
        h.seg(i as u64, c, 1 + (i * 1448) as u32, ACK, chunk);
    }
    assert_eq!(h.texts(), texts(&[mid, big]));
}

/// A minimal HEPv3 packet: header plus one payload chunk.
fn hep(payload: &[u8]) -> Vec<u8> {
    let total = 6 + 6 + payload.len();
    let mut p = b"HEP3".to_vec();
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0x0f]);
    p.extend_from_slice(&((6 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[test]
fn hep_stream_two_packets_per_segment_and_one_split() {
    let f = flow(43000, 9060);
    let packets = [hep(&sip(1, 5)), hep(&sip(2, 5)), hep(&response(2))];
    let stream = packets.concat();
    let cut = packets[0].len() + packets[1].len() + 40;
    let mut h = Harness::new();
    h.syn(f, 100);
    h.seg(1, f, 101, ACK, &stream[..cut]);
    h.seg(2, f, 101 + cut as u32, ACK, &stream[cut..]);
    assert_eq!(h.texts(), texts(&packets));
    assert!(h.out.iter().all(|o| o.kind == MessageKind::Hep));
    assert_eq!(h.counters().hep_messages, 3);
}

#[test]
fn http_and_tls_on_the_sip_port_are_ignored() {
    let http = flow(40001, 5060);
    let tls = flow(40002, 5061);
    let mut h = Harness::new();
    h.syn(http, 0);
    h.syn(tls, 0);
    h.seg(1, http, 1, ACK, b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n");
    h.seg(2, http, 48, ACK, &sip(1, 0)); // later bytes are not looked at
    h.seg(3, tls, 1, ACK, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    assert!(h.out.is_empty());
    assert_eq!(h.counters().non_sip_streams, 2);
    assert_eq!(h.tcp.buffered_bytes(), 0);
}

#[test]
fn binary_stream_joined_late_is_ignored_after_a_while() {
    let f = flow(40001, 5060);
    let mut h = Harness::new();
    let junk: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 | 0x80).collect();
    for (i, chunk) in junk.chunks(1400).enumerate() {
        h.seg(i as u64, f, (i * 1400) as u32, ACK, chunk);
    }
    assert!(h.out.is_empty());
    assert_eq!(h.counters().non_sip_streams, 1);
    assert!(h.counters().junk_bytes < 100_000);
}

#[test]
fn fin_and_rst_drop_state_and_finish_counts_truncated() {
    let (a, b, c) = (flow(1, 5060), flow(2, 5060), flow(3, 5060));
    let m = sip(1, 10);
    let mut h = Harness::new();
    for f in [a, b, c] {
        h.syn(f, 0);
        h.seg(1, f, 1, ACK, &m[..30]);
    }
    h.seg(2, a, 31, ACK | flags::FIN, &m[30..]);
    h.syn(reverse(b), 0);
    h.seg(2, b, 31, flags::RST, b"");
    assert_eq!(h.texts(), texts(&[m]));
    assert_eq!(h.tcp.flow_count(), 1);
    h.finish();
    assert_eq!(h.tcp.flow_count(), 0);
    assert_eq!(h.counters().truncated_messages, 2);
    assert_eq!(h.tcp.buffered_bytes(), 0);
}

#[test]
fn finish_flushes_what_waits_behind_a_hole() {
    let f = flow(1, 5060);
    let (m1, m2) = (sip(1, 10), sip(2, 10));
    let mut h = Harness::new();
    h.syn(f, 0);
    h.seg(1, f, 1 + m1.len() as u32 + 5, ACK, &m2);
    h.finish();
    assert_eq!(h.texts(), texts(&[m2]));
    assert_eq!(h.counters().gaps_skipped, 1);
}

#[test]
fn table_full_evicts_the_least_recently_active() {
    let limits = Limits { max_flows: 32, ..Limits::default() };
    let mut h = Harness::with(limits);
    for port in 0..40u16 {
        h.seg(u64::from(port), flow(port, 5060), 1, ACK, &sip(0, 0)[..10]);
    }
    assert!(h.tcp.flow_count() <= 32);
    assert_eq!(h.counters().flows_evicted, 8);
    assert_eq!(h.counters().truncated_messages, 8);
    assert_eq!(h.tcp.buffered_bytes(), h.tcp.flow_count() * 10);
}

#[test]
fn oversized_message_is_dropped_and_the_next_one_framed() {
    let limits = Limits { max_flow_bytes: 4096, ..Limits::default() };
    let f = flow(1, 5060);
    let (big, small) = (sip(1, 10_000), sip(2, 10));
    let stream = [big.as_slice(), &small].concat();
    let mut h = Harness::with(limits);
    h.syn(f, 0);
    for (i, chunk) in stream.chunks(1000).enumerate() {
        h.seg(i as u64, f, 1 + (i * 1000) as u32, ACK, chunk);
        assert!(h.tcp.buffered_bytes() <= 4096);
    }
    assert_eq!(h.texts(), texts(&[small]));
    assert_eq!(h.counters().truncated_messages, 1);
    assert_eq!(h.counters().bytes_dropped, big.len() as u64);
}

#[test]
fn total_budget_is_shared_by_all_flows() {
    let limits = Limits { max_total_bytes: 10_000, ..Limits::default() };
    let mut h = Harness::with(limits);
    let m = sip(0, 5000);
    for port in 0..5u16 {
        h.syn(flow(port, 5060), 0);
        h.seg(1, flow(port, 5060), 1, ACK, &m[..3000]);
        assert!(h.tcp.buffered_bytes() <= 10_000);
    }
    assert_eq!(h.tcp.buffered_bytes(), 9000);
    assert_eq!(h.counters().bytes_dropped, 2 * 3000);
}

#[test]
fn too_many_waiting_segments_skip_the_hole() {
    let limits = Limits { max_out_of_order_segments: 4, ..Limits::default() };
    let f = flow(1, 5060);
    let msgs: Vec<Vec<u8>> = (0..8).map(|i| sip(i, 0)).collect();
    let mut h = Harness::with(limits);
    h.syn(f, 0);
    let mut seq = 1 + 50; // the first 50 bytes are lost
    let mut first = true;
    for m in &msgs {
        let data = if first { &m[50..] } else { &m[..] };
        first = false;
        h.seg(1, f, seq, ACK, data);
        seq += data.len() as u32;
    }
    // The first bytes are lost: later segments wait until the queue is full, then the
    // hole is skipped and everything after it is framed.
    assert_eq!(h.texts(), texts(&msgs[1..]));
    assert_eq!(h.counters().gaps_skipped, 1);
    assert_eq!(h.counters().out_of_order_segments, 4);
}

#[test]
fn idle_flows_expire() {
    let limits = Limits { idle_timeout: Duration::from_secs(10), ..Limits::default() };
    let mut h = Harness::with(limits);
    h.seg(0, flow(1, 5060), 1, ACK, b"INVITE sip:x SIP/2.0\r\n");
    h.seg(9_000_000, flow(2, 5060), 1, ACK, b"INVITE sip:x SIP/2.0\r\n");
    h.expire(10_000_000);
    assert_eq!(h.tcp.flow_count(), 1);
    assert_eq!(h.counters().flows_expired, 1);
    assert_eq!(h.counters().truncated_messages, 1);
}

#[test]
fn new_connection_on_the_same_ports_starts_over() {
    let f = flow(1, 5060);
    let (m1, m2) = (sip(1, 10), sip(2, 10));
    let mut h = Harness::new();
    h.syn(f, 0);
    h.seg(1, f, 1, ACK, &m1[..20]);
    h.syn(f, 0); // repeated SYN: ignored
    h.seg(2, f, 21, ACK, &m1[20..]);
    h.seg(3, f, 5_000_000, flags::SYN, b"");
    h.seg(4, f, 5_000_001, ACK, &m2);
    assert_eq!(h.texts(), texts(&[m1, m2]));
}
