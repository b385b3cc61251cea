//! Real captured SIP (PcapPlusPlus test frames) through the scanner.
//!
//! The frames and their provenance are in `tests/pcapplusplus/` (see the README there).

use std::fs;
use std::path::Path;

use wire::sip::{frame, scan, CSeq, Frame, Sdp, StartLine};

/// The UDP or TCP payload of a hex-encoded Ethernet frame (optionally PPPoE or VLAN).
/// Just enough decoding for these fixtures; the agent has the real decoder.
fn sip_payload(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pcapplusplus").join(name);
    let hex = fs::read_to_string(path).expect("fixture");
    let hex = hex.trim();
    let frame: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes([frame[off], frame[off + 1]]);
    off += 2;
    if ethertype == 0x8100 {
        ethertype = u16::from_be_bytes([frame[off + 2], frame[off + 3]]);
        off += 4;
    }
    if ethertype == 0x8864 {
        // PPPoE session header (6 bytes) and PPP protocol 0x0021 (IPv4).
        assert_eq!(&frame[off + 6..off + 8], [0x00, 0x21], "{name}: PPP protocol");
        off += 8;
    } else {
        assert_eq!(ethertype, 0x0800, "{name}: ethertype");
    }
    let l4 = off + usize::from(frame[off] & 0x0f) * 4;
    let header_len = match frame[off + 9] {
        17 => 8,
        6 => usize::from(frame[l4 + 12] >> 4) * 4,
        other => panic!("{name}: IP protocol {other}"),
    };
    frame[l4 + header_len..].to_vec()
}

#[test]
fn every_frame_scans() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pcapplusplus");
    let mut n = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".dat") {
            continue;
        }
        let payload = sip_payload(&name);
        let m = scan(&payload).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(m.call_id.is_some() && m.cseq.is_some() && m.via_branch.is_some(), "{name}: {m:?}");
        assert!(m.from.tag.is_some(), "{name}: From tag");
        n += 1;
    }
    assert_eq!(n, 14);
}

#[test]
fn microsip_invite() {
    let p = sip_payload("sip_non_default_port1.dat");
    assert!(matches!(frame(&p), Ok(Frame::Complete { len, .. }) if len == p.len()));
    let m = scan(&p).unwrap();
    assert_eq!(m.start, StartLine::Request { method: b"INVITE", uri: b"sip:1006@192.168.21.83:52380" });
    assert_eq!((m.ruri_user, m.ruri_domain), (Some(&b"1006"[..]), Some(&b"192.168.21.83"[..])));
    assert_eq!(m.call_id, Some(&b"0c3bab2cebe34ec997a80daa4346b393"[..]));
    assert_eq!(m.cseq, Some(CSeq { seq: 12003, method: b"INVITE" }));
    assert_eq!(m.from.tag, Some(&b"a50bffb5ddd3426e8f848ece7d0d389b"[..]));
    assert_eq!((m.to.user, m.to.tag), (Some(&b"1006"[..]), None));
    assert_eq!(m.via_branch, Some(&b"z9hG4bKPj93aab89581b04b2987b55a532031d712"[..]));
    assert_eq!(m.user_agent, Some(&b"MicroSIP/3.22.3"[..]));
    assert_eq!((m.content_length, m.body.len()), (Some(342), 342));
    // The connection line follows the m= line here: the media-level address is used.
    assert_eq!(m.sdp, Some(Sdp { connection: Some(b"192.168.20.68"), media_port: Some(4004) }));
}

#[test]
fn xlite_ok_and_host_only_uri() {
    let p = sip_payload("sip_resp3.dat");
    let m = scan(&p).unwrap();
    assert_eq!(m.start, StartLine::Response { code: 200, reason: b"Ok" });
    // <sip:200.57.7.195:55061;user=phone>: no user part.
    assert_eq!((m.from.user, m.from.domain), (None, Some(&b"200.57.7.195"[..])));
    assert_eq!((m.to.display, m.to.tag), (Some(&b"francisco@bestel.com"[..]), Some(&b"298852044"[..])));
    assert_eq!(m.user_agent, Some(&b"X-Lite release 1103m"[..]));
    assert_eq!(m.sdp, Some(Sdp { connection: Some(b"200.57.7.204"), media_port: Some(8000) }));
}

#[test]
fn non_sdp_body_and_truncated_frame() {
    let p = sip_payload("sip_not_sdp.dat");
    let m = scan(&p).unwrap();
    assert_eq!(m.content_type, Some(&b"application/pidf+xml"[..]));
    assert_eq!((m.body.len(), m.sdp), (273, None));
    // The capture cut this BYE inside its Content-Length header.
    let p = sip_payload("sip_req4.dat");
    assert_eq!(frame(&p), Ok(Frame::Incomplete { needed: None }));
    let m = scan(&p).unwrap();
    assert_eq!(m.user_agent, Some(&b"FreeSWITCH-mod_sofia/1.6.12-20-b91a0a6~64bit"[..]));
    assert_eq!((m.to.display, m.to.tag), (Some(&b"speex/16000"[..]), Some(&b"1"[..])));
    assert_eq!((m.content_length, m.body), (None, &b""[..]));
}
