//! Property tests: reassembly never panics, and any segmentation, order and duplication
//! of a stream gives back exactly the messages that were sent.

use std::time::Duration;

use capture_agent::flow::{Flow, Proto, Timestamp};
use capture_agent::tcp::{flags, Limits, MessageKind, Reassembler, Segment};
use proptest::prelude::*;

fn flow(n: u8) -> Flow {
    Flow {
        src: [192, 0, 2, n].into(),
        dst: [198, 51, 100, 1].into(),
        src_port: 40000,
        dst_port: 5060,
        proto: Proto::Tcp,
        vlan: None,
    }
}

fn sip(n: usize, body_len: usize, request: bool) -> Vec<u8> {
    let start = if request { "MESSAGE sip:bob@example.com SIP/2.0" } else { "SIP/2.0 200 OK" };
    format!(
        "{start}\r\nCall-ID: c{n}@x\r\nCSeq: {n} MESSAGE\r\nContent-Length: {body_len}\r\n\r\n{}",
        "b".repeat(body_len)
    )
    .into_bytes()
}

fn hep(payload: &[u8]) -> Vec<u8> {
    let mut p = b"HEP3".to_vec();
    p.extend_from_slice(&((12 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0x0f]);
    p.extend_from_slice(&((6 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn ws_masked(payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0x81];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";

#[derive(Debug, Clone, Copy)]
enum Framing {
    Sip,
    Hep,
    WebSocket,
}

/// The byte stream carrying `msgs`, and the kind the messages should come out as.
fn encode(framing: Framing, msgs: &[Vec<u8>], keepalive_after: &[bool]) -> (Vec<u8>, MessageKind) {
    let mut stream = Vec::new();
    let kind = match framing {
        Framing::Sip => MessageKind::Sip,
        Framing::Hep => MessageKind::Hep,
        Framing::WebSocket => MessageKind::WebSocketSip,
    };
    if let Framing::WebSocket = framing {
        stream.extend_from_slice(UPGRADE);
    }
    for (i, m) in msgs.iter().enumerate() {
        match framing {
            Framing::Sip => {
                stream.extend_from_slice(m);
                if keepalive_after[i] {
                    stream.extend_from_slice(b"\r\n\r\n");
                }
            }
            Framing::Hep => stream.extend(hep(m)),
            Framing::WebSocket => stream.extend(ws_masked(m, [i as u8, 0x5a, 0xa5, 0x3c])),
        }
    }
    (stream, kind)
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![Just(Framing::Sip), Just(Framing::Hep), Just(Framing::WebSocket)]
}

/// Messages, where to cut the stream, extra (overlapping) retransmitted ranges, and a
/// delivery order.
#[derive(Debug, Clone)]
struct Scenario {
    framing: Framing,
    msgs: Vec<Vec<u8>>,
    keepalive: Vec<bool>,
    cuts: Vec<usize>,
    dups: Vec<(usize, usize)>,
    isn: u32,
    shuffle_seed: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (framing(), prop::collection::vec((0usize..400, any::<bool>(), any::<bool>()), 1..12)).prop_flat_map(
        |(framing, specs)| {
            let msgs: Vec<Vec<u8>> = specs.iter().enumerate().map(|(n, &(len, req, _))| sip(n, len, req)).collect();
            let keepalive: Vec<bool> = specs.iter().map(|s| s.2).collect();
            let len = encode(framing, &msgs, &keepalive).0.len();
            let cuts = prop::collection::vec(1..len, 0..25);
            let dups = prop::collection::vec((0..len, 1usize..300), 0..8);
            (cuts, dups, any::<u32>(), any::<u64>()).prop_map(move |(cuts, dups, isn, shuffle_seed)| Scenario {
                framing,
                msgs: msgs.clone(),
                keepalive: keepalive.clone(),
                cuts,
                dups,
                isn,
                shuffle_seed,
            })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_cut_order_and_duplication_gives_the_messages_back(sc in scenario()) {
        let Scenario { framing, msgs, keepalive, mut cuts, dups, isn, shuffle_seed } = sc;
        let (stream, kind) = encode(framing, &msgs, &keepalive);
        cuts.push(0);
        cuts.push(stream.len());
        cuts.sort_unstable();
        cuts.dedup();
        let mut segments: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
        segments.extend(dups.iter().map(|&(start, len)| (start, (start + len).min(stream.len()))));
        shuffle(&mut segments, shuffle_seed);

        let f = flow(1);
        let mut tcp = Reassembler::new(Limits::default());
        let mut out = Vec::new();
        let ts = Timestamp::new(1_700_000_000, 0);
        tcp.push(&Segment { ts, flow: f, seq: isn, flags: flags::SYN, payload: b"" }, |_| {});
        for &(start, end) in &segments {
            let seq = isn.wrapping_add(1).wrapping_add(start as u32);
            let seg = Segment { ts, flow: f, seq, flags: flags::ACK, payload: &stream[start..end] };
            tcp.push(&seg, |m| out.push((m.kind, m.bytes.to_vec())));
        }
        tcp.finish(|m| out.push((m.kind, m.bytes.to_vec())));
        // HEP comes out whole (header and chunks); the others as the SIP message itself.
        let expected: Vec<(MessageKind, Vec<u8>)> =
            msgs.iter().map(|m| (kind, if kind == MessageKind::Hep { hep(m) } else { m.clone() })).collect();
        prop_assert_eq!(out, expected);
        let c = tcp.counters();
        prop_assert_eq!((c.junk_bytes, c.gaps_skipped, c.truncated_messages), (0, 0, 0));
    }

    #[test]
    fn arbitrary_segments_never_panic_and_stay_bounded(
        segs in prop::collection::vec((0u8..4, any::<u32>(), 0u32..3000, any::<u8>(), payload(), 0u64..400_000), 0..80)
    ) {
        let limits = Limits {
            max_flows: 3,
            max_flow_bytes: 3000,
            max_total_bytes: 5000,
            max_out_of_order_segments: 4,
            gap_timeout: Duration::from_millis(100),
            idle_timeout: Duration::from_secs(1),
        };
        let mut tcp = Reassembler::new(limits);
        let mut now = 0u64;
        let mut emitted = 0usize;
        for (flow_n, base, offset, flag_bits, payload, dt) in segs {
            now += dt;
            // Half the time near a per-flow base so segments land in and around the stream.
            let seq = if base % 2 == 0 { u32::from(flow_n) * 1_000_000 + offset } else { base };
            let seg = Segment { ts: Timestamp::from_micros(now), flow: flow(flow_n), seq, flags: flag_bits, payload: &payload };
            tcp.push(&seg, |m| emitted += m.bytes.len().min(1));
            prop_assert!(tcp.buffered_bytes() <= 5000);
            prop_assert!(tcp.flow_count() <= 3);
            if dt > 300_000 {
                tcp.expire(Timestamp::from_micros(now), |_| {});
            }
        }
        tcp.finish(|_| {});
        prop_assert_eq!((tcp.flow_count(), tcp.buffered_bytes()), (0, 0));
    }
}

/// Payloads that reach every framer: random bytes, pieces of SIP, HEP and WebSocket.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let sip_stream = [sip(1, 100, true), b"\r\n\r\n".to_vec(), sip(2, 0, false)].concat();
    let hep_stream = [hep(&sip(3, 10, true)), hep(b"x")].concat();
    let ws_stream =
        [UPGRADE.to_vec(), ws_masked(&sip(4, 20, true), [1, 2, 3, 4]), vec![0x89, 0x00, 0x00, 0x7f]].concat();
    let piece = |s: Vec<u8>| {
        let len = s.len();
        (0..len, 0..len).prop_map(move |(a, b)| s[a.min(b)..a.max(b)].to_vec())
    };
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        piece(sip_stream.clone()),
        Just(sip_stream),
        piece(hep_stream),
        piece(ws_stream),
        Just(b"\x16\x03\x01\x00\x05hello".to_vec()),
    ]
}

/// Deterministic Fisher-Yates shuffle from a seed (xorshift), so failures replay.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}
