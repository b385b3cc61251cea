//! Writes a large, realistic SIP capture for benchmarks: `CALLS` calls of seven UDP
//! messages each (INVITE with SDP, 100, 180, 200 with SDP, ACK, BYE, 200), started every
//! 0.5 ms so thousands are in progress at once, in capture-time order, Ethernet/IPv4/UDP.
//!
//! usage: make_bench_pcap OUT.pcap [CALLS (default 80000)]

use std::fs::File;
use std::io::{BufWriter, Write};

const OFFSETS_US: [u64; 7] = [0, 4_000, 90_000, 2_500_000, 2_510_000, 30_000_000, 30_012_000];

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args.next().expect("usage: make_bench_pcap OUT.pcap [CALLS]");
    let calls: u64 = args.next().map_or(80_000, |c| c.parse().expect("CALLS must be a number"));
    let t0: u64 = 1_767_225_600_000_000; // 2026-01-01 00:00:00 UTC in microseconds
    let mut events: Vec<(u64, u32, u8)> = (0..calls)
        .flat_map(|c| OFFSETS_US.iter().enumerate().map(move |(i, off)| (t0 + c * 500 + off, c as u32, i as u8)))
        .collect();
    events.sort_unstable();

    let mut w = BufWriter::with_capacity(1 << 20, File::create(&out)?);
    // pcap global header: microsecond magic, v2.4, snaplen 65535, Ethernet.
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&[0; 8])?;
    w.write_all(&65535u32.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes())?;
    let mut frame = Vec::with_capacity(2048);
    for (ts, call, msg) in &events {
        frame.clear();
        let (from_uac, sip) = message(*call, *msg);
        ethernet_ipv4_udp(&mut frame, from_uac, *call, &sip);
        w.write_all(&((ts / 1_000_000) as u32).to_le_bytes())?;
        w.write_all(&((ts % 1_000_000) as u32).to_le_bytes())?;
        w.write_all(&(frame.len() as u32).to_le_bytes())?;
        w.write_all(&(frame.len() as u32).to_le_bytes())?;
        w.write_all(&frame)?;
    }
    w.flush()?;
    eprintln!("wrote {} packets ({} calls) to {out}", events.len(), calls);
    Ok(())
}

/// The SIP text of message `msg` of call `call`, and whether the caller side sent it.
fn message(call: u32, msg: u8) -> (bool, Vec<u8>) {
    let caller = format!("+1555{:07}", call % 10_000_000);
    let callee = format!("+1666{:07}", (call * 7) % 10_000_000);
    let cid = format!("{call:08x}-5e1c-4b7a-9f00-bench@192.0.2.10");
    let uac = "192.0.2.10";
    let uas = "198.51.100.20";
    let branch = format!("z9hG4bK{call:x}{msg}");
    let from = format!("\"{caller}\" <sip:{caller}@{uac}>;tag={call:x}a");
    let to_plain = format!("<sip:{callee}@{uas}>");
    let to_tag = format!("{to_plain};tag={call:x}b");
    let sdp = |ip: &str| {
        format!(
            "v=0\r\no=- {call} 1 IN IP4 {ip}\r\ns=call\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
            10_000 + (call % 20_000) * 2
        )
    };
    let req = |method: &str, cseq: u32, to: &str, body: &str| {
        format!(
            "{method} sip:{callee}@{uas}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {uac}:5060;branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:{caller}@{uac}:5060>\r\nUser-Agent: bench-uac/1.0\r\n\
             P-Asserted-Identity: <sip:{caller}@{uac}>\r\n{}Content-Length: {}\r\n\r\n{body}",
            if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" },
            body.len()
        )
    };
    let resp = |code: &str, cseq: &str, to: &str, body: &str| {
        format!(
            "SIP/2.0 {code}\r\nVia: SIP/2.0/UDP {uac}:5060;branch={branch};rport=5060\r\nFrom: {from}\r\n\
             To: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq}\r\nContact: <sip:{callee}@{uas}:5060>\r\n\
             Server: bench-uas/1.0\r\n{}Content-Length: {}\r\n\r\n{body}",
            if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" },
            body.len()
        )
    };
    let text = match msg {
        0 => req("INVITE", 1, &to_plain, &sdp(uac)),
        1 => resp("100 Trying", "1 INVITE", &to_plain, ""),
        2 => resp("180 Ringing", "1 INVITE", &to_tag, ""),
        3 => resp("200 OK", "1 INVITE", &to_tag, &sdp(uas)),
        4 => req("ACK", 1, &to_tag, ""),
        5 => req("BYE", 2, &to_tag, ""),
        _ => resp("200 OK", "2 BYE", &to_tag, ""),
    };
    (matches!(msg, 0 | 4 | 5), text.into_bytes())
}

fn ethernet_ipv4_udp(frame: &mut Vec<u8>, from_uac: bool, call: u32, payload: &[u8]) {
    let (src, dst) =
        if from_uac { ([192, 0, 2, 10], [198, 51, 100, 20]) } else { ([198, 51, 100, 20], [192, 0, 2, 10]) };
    frame.extend_from_slice(&[0, 0, 0x5e, 0, 0x53, if from_uac { 2 } else { 1 }]);
    frame.extend_from_slice(&[0, 0, 0x5e, 0, 0x53, if from_uac { 1 } else { 2 }]);
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&(call as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let sum = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    ip[10..12].copy_from_slice(&(!((sum & 0xffff) + (sum >> 16)) as u16).to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&5060u16.to_be_bytes());
    frame.extend_from_slice(&5060u16.to_be_bytes());
    frame.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]); // UDP checksum optional over IPv4
    frame.extend_from_slice(payload);
}
