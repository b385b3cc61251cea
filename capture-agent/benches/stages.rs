//! Per-stage throughput on one core, each next to a floor measured in the same run:
//! `cargo bench -p capture-agent --bench stages`.
//!
//! - SIP scan of a realistic INVITE vs. a plain memchr pass over the same bytes;
//! - HEPv3 encoding vs. copying the same payload into the batch;
//! - TCP reassembly and framing of an in-order stream vs. the SIP framing alone.

use std::hint::black_box;
use std::time::Instant;

use capture_agent::flow::{Flow, Proto, Timestamp};
use capture_agent::tcp::{flags, Limits, Reassembler, Segment};
use wire::hep::{self, Hep};

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                   m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";

fn invite() -> Vec<u8> {
    format!(
        "INVITE sip:+15550001@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:+15550002@example.com>;tag=1\r\n\
         To: <sip:+15550001@example.com>\r\nCall-ID: abc@192.0.2.1\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:alice@192.0.2.1>\r\nUser-Agent: bench\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
    .into_bytes()
}

/// Runs `f` `n` times and returns millions of calls per second.
fn rate(n: u64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    n as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let msg = invite();
    println!("stage benchmarks, one core, {}-byte INVITE (M/s = million per second)", msg.len());
    let n = 2_000_000;

    let floor = rate(n, || {
        black_box(memchr::memchr_iter(b'\n', black_box(&msg)).count());
    });
    let scan = rate(n, || {
        black_box(wire::sip::scan(black_box(&msg)).ok());
    });
    let cfg = wire::sip::ScanConfig { aleg_headers: vec![] };
    let peek = rate(n, || {
        black_box(wire::sip::peek(black_box(&msg), &cfg).ok());
    });
    println!("  sip scan (all)    {scan:6.2} M msg/s   (floor: memchr line count {floor:6.2} M/s)");
    println!("  sip peek (agent)  {peek:6.2} M msg/s");

    let hep = Hep { payload: std::borrow::Cow::Borrowed(&msg), node_name: Some(b"lb1"), ..Hep::default() };
    let mut out = Vec::with_capacity(1 << 20);
    let copy = rate(n, || {
        if out.len() > 1 << 19 {
            out.clear();
        }
        out.extend_from_slice(black_box(&msg));
    });
    out.clear();
    let encode = rate(n, || {
        if out.len() > 1 << 19 {
            out.clear();
        }
        black_box(hep::encode_v3(black_box(&hep), &mut out).ok());
    });
    println!("  hep encode        {encode:6.2} M msg/s   (floor: copy payload {copy:6.2} M/s)");

    // A long stream cut into MSS-sized segments, on 64 flows: most messages lie inside
    // one segment, some span two.
    let stream = msg.repeat(2000);
    let segments: Vec<&[u8]> = stream.chunks(1448).collect();
    let framing = rate(64, || {
        let mut rest = &stream[..];
        while let Ok(wire::sip::Frame::Complete { len, .. }) = wire::sip::frame(rest) {
            rest = &rest[len..];
        }
    }) * 2000.0;
    let mut tcp = Reassembler::new(Limits::default());
    let mut count = 0u64;
    let start = Instant::now();
    for p in 0..64u16 {
        let flow = Flow {
            src: [192, 0, 2, 1].into(),
            dst: [192, 0, 2, 2].into(),
            src_port: 40000 + p,
            dst_port: 5060,
            proto: Proto::Tcp,
            vlan: None,
        };
        let mut seq = 1u32;
        for (i, payload) in segments.iter().enumerate() {
            let ts = Timestamp::from_micros(i as u64);
            tcp.push(&Segment { ts, flow, seq, flags: flags::ACK, payload }, |_| count += 1);
            seq = seq.wrapping_add(payload.len() as u32);
        }
    }
    let reasm = count as f64 / start.elapsed().as_secs_f64() / 1e6;
    assert_eq!(count, 64 * 2000, "every message framed");
    println!("  tcp reassembly    {reasm:6.2} M msg/s   (floor: framing a contiguous buffer {framing:6.2} M/s)");
}
