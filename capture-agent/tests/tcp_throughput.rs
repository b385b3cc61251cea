//! Rough throughput check of the in-order path (run in release, ignored by default):
//! `cargo test --release -p capture-agent --test tcp_throughput -- --ignored --nocapture`

use std::time::Instant;

use capture_agent::flow::{Flow, Proto, Timestamp};
use capture_agent::tcp::{flags, Limits, Reassembler, Segment};

#[test]
#[ignore = "timing; run in release"]
fn in_order_sip_messages_per_second() {
    let body = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let msg = format!(
        "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
         From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: abc@192.0.2.1\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.1>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // A long stream cut into MSS-sized segments: most messages lie inside one segment,
    // some span two.
    let stream = msg.as_bytes().repeat(2000);
    let segments: Vec<&[u8]> = stream.chunks(1448).collect();
    let flows: Vec<Flow> = (0..64u16)
        .map(|p| Flow {
            src: [192, 0, 2, 1].into(),
            dst: [192, 0, 2, 2].into(),
            src_port: 40000 + p,
            dst_port: 5060,
            proto: Proto::Tcp,
            vlan: None,
        })
        .collect();
    let mut tcp = Reassembler::new(Limits::default());
    let mut count = 0u64;
    let started = Instant::now();
    for &flow in &flows {
        let mut seq = 1u32;
        for (i, payload) in segments.iter().enumerate() {
            let ts = Timestamp::from_micros(i as u64);
            tcp.push(&Segment { ts, flow, seq, flags: flags::ACK, payload }, |_| count += 1);
            seq = seq.wrapping_add(payload.len() as u32);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!((count, tcp.counters().sip_messages), (64 * 2000, 64 * 2000));
    println!("{count} messages in {secs:.3} s: {:.2} M messages/s", count as f64 / secs / 1e6);
}
