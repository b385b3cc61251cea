//! `GET /api/v1/calls/{call_id}/pcap`: the call's messages as a classic pcap file that
//! Wireshark opens. Each stored message is wrapped in synthesized Ethernet, IPv4 or
//! IPv6, and UDP headers (the capture stored the SIP payload, not the frame; TCP-carried
//! messages are written as UDP too, one message per packet, so SIP dissects cleanly).
//! Copies of one packet from several capture points are written once (first sighting)
//! unless `?sightings=all`.

use std::net::IpAddr;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::calls::check_call_id;
use super::flow::{MAX_FLOW_ROWS, SIGHTING_WINDOW_US};
use super::{params, ApiError, AppState};
use crate::store::{CallQueries, FlowRow};

/// pcap link type Ethernet.
const LINKTYPE_ETHERNET: u32 = 1;
/// Largest record we write (IP total length is a u16).
const SNAPLEN: u32 = 65_535;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcapParams {
    sightings: Option<String>,
}

/// The handler.
pub async fn pcap<Q: CallQueries>(
    State(state): State<AppState<Q>>,
    Path(call_id): Path<String>,
    q: Result<Query<PcapParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let all = match params(q)?.sightings.as_deref() {
        None | Some("first") => false,
        Some("all") => true,
        Some(other) => return Err(ApiError::bad_request(format!("sightings must be first or all, not `{other}`"))),
    };
    check_call_id(&call_id)?;
    let summary = state.queries.call(&call_id).await.map_err(ApiError::internal)?;
    let summary = summary.ok_or_else(|| ApiError::not_found(format!("no call with Call-ID `{call_id}`")))?;
    let mut msgs = state
        .queries
        .flow(std::slice::from_ref(&call_id), (summary.first_us, summary.last_us), MAX_FLOW_ROWS, true)
        .await
        .map_err(ApiError::internal)?;
    if !all {
        msgs = first_sightings(msgs);
    }
    let file_name: String = call_id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.tcpdump.pcap".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}.pcap\"")),
        ],
        write_pcap(&msgs),
    )
        .into_response())
}

/// Keeps the first row of each message (same hash within the sighting window).
fn first_sightings(msgs: Vec<FlowRow>) -> Vec<FlowRow> {
    let mut kept: Vec<FlowRow> = Vec::with_capacity(msgs.len());
    for m in msgs {
        let dup = kept
            .iter()
            .rev()
            .take_while(|k| m.time_us.saturating_sub(k.time_us) <= SIGHTING_WINDOW_US)
            .any(|k| k.msg_hash == m.msg_hash);
        if !dup {
            kept.push(m);
        }
    }
    kept
}

/// A pcap file (microsecond timestamps, Ethernet) with one record per message.
pub fn write_pcap(msgs: &[FlowRow]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + msgs.iter().map(|m| m.raw.len() + 80).sum::<usize>());
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]); // thiszone, sigfigs
    out.extend_from_slice(&SNAPLEN.to_le_bytes());
    out.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    for m in msgs {
        let frame = frame(m);
        let secs = (m.time_us / 1_000_000) as u32;
        let usecs = (m.time_us % 1_000_000) as u32;
        for v in [secs, usecs, frame.len() as u32, frame.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&frame);
    }
    out
}

/// Ethernet + IP + UDP + payload. Unparseable or mixed-family addresses fall back to
/// IPv4 0.0.0.0 so every message still appears.
fn frame(m: &FlowRow) -> Vec<u8> {
    let src: IpAddr = m.src_ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let dst: IpAddr = m.dst_ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    // Cut the payload so the IP length fields fit in a u16.
    let payload = &m.raw[..m.raw.len().min(65_535 - 48 - 14)];
    let udp_len = (8 + payload.len()) as u16;
    let mut udp = Vec::with_capacity(usize::from(udp_len));
    udp.extend_from_slice(&m.src_port.to_be_bytes());
    udp.extend_from_slice(&m.dst_port.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut f = Vec::with_capacity(14 + 40 + udp.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // dst MAC (locally administered)
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // src MAC
    match (src, dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&udp_len.to_be_bytes());
            f.extend_from_slice(&[17, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
            // IPv6 requires the UDP checksum.
            let mut pseudo = Vec::with_capacity(40 + udp.len());
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&u32::from(udp_len).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 17]);
            pseudo.extend_from_slice(&udp);
            let sum = match checksum(&pseudo) {
                0 => 0xffff,
                s => s,
            };
            udp[6..8].copy_from_slice(&sum.to_be_bytes());
        }
        _ => {
            let (s, d) = (v4(src), v4(dst));
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64;
            ip[9] = 17;
            ip[12..16].copy_from_slice(&s);
            ip[16..20].copy_from_slice(&d);
            let sum = checksum(&ip);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            f.extend_from_slice(&ip);
        }
    }
    f.extend_from_slice(&udp);
    f
}

fn v4(ip: IpAddr) -> [u8; 4] {
    match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or([0; 4], |a| a.octets()),
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(src: &str, dst: &str, raw: &[u8]) -> FlowRow {
        FlowRow {
            id: 1,
            time_us: 1_763_780_000_000_005,
            node_name: "n".into(),
            transport: 17,
            src_ip: src.into(),
            src_port: 5060,
            dst_ip: dst.into(),
            dst_port: 5080,
            is_request: 1,
            method: "OPTIONS".into(),
            cseq_num: 1,
            cseq_method: "OPTIONS".into(),
            msg_hash: 1,
            call_id: "c".into(),
            raw: raw.to_vec(),
            ..FlowRow::default()
        }
    }

    #[test]
    fn writes_valid_ipv4_and_ipv6_records() {
        let pcap =
            write_pcap(&[msg("10.0.0.1", "10.0.0.2", b"OPTIONS"), msg("2001:db8::1", "2001:db8::2", b"OPTIONS")]);
        assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        let rec1 = &pcap[24..];
        let len1 = u32::from_le_bytes(rec1[8..12].try_into().unwrap()) as usize;
        assert_eq!(len1, 14 + 20 + 8 + 7);
        let ip = &rec1[16 + 14..16 + 34];
        assert_eq!(checksum(ip), 0, "IPv4 header checksum verifies");
        assert_eq!(&ip[12..16], &[10, 0, 0, 1]);
        let rec2 = &rec1[16 + len1..];
        let len2 = u32::from_le_bytes(rec2[8..12].try_into().unwrap()) as usize;
        assert_eq!(len2, 14 + 40 + 8 + 7);
        assert_eq!(&rec2[16 + 12..16 + 14], &[0x86, 0xdd]);
        assert_eq!(&rec2[16 + len2 - 7..16 + len2], b"OPTIONS");
    }
}
