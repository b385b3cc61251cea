//! UDP, TCP and SCTP: ports and payloads.

use super::{be16, be32, DropReason, TcpFlags, TcpInfo};

/// UDP header layout.
mod udp {
    pub(super) const LENGTH: usize = 4;
    pub(super) const LEN: usize = 8;
}

/// TCP header layout.
mod tcp {
    pub(super) const SEQ: usize = 4;
    pub(super) const ACK: usize = 8;
    pub(super) const DATA_OFFSET: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const MIN_LEN: usize = 20;
}

/// SCTP common header and chunk layout.
mod sctp {
    pub(super) const COMMON_LEN: usize = 12;
    pub(super) const CHUNK_FLAGS: usize = 1;
    pub(super) const CHUNK_LENGTH: usize = 2;
    pub(super) const CHUNK_HEADER_LEN: usize = 4;
    pub(super) const DATA: u8 = 0;
    /// RFC 8260 interleaved data.
    pub(super) const I_DATA: u8 = 64;
    /// DATA: chunk header, TSN, stream id, stream sequence, payload protocol id.
    pub(super) const DATA_HEADER_LEN: usize = 16;
    /// I-DATA: chunk header, TSN, stream id, reserved, message id, PPID/FSN.
    pub(super) const I_DATA_HEADER_LEN: usize = 20;
    /// Ending fragment bit.
    pub(super) const END: u8 = 0x01;
    /// Beginning fragment bit.
    pub(super) const BEGIN: u8 = 0x02;
    /// Offset of the TSN in DATA and I-DATA chunks.
    pub(super) const TSN: usize = 4;
}

/// One piece of user data from a DATA or I-DATA chunk: a whole message when both
/// `begin` and `end` are set, else a fragment to reassemble by consecutive TSNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SctpData<'a> {
    pub(super) tsn: u32,
    pub(super) begin: bool,
    pub(super) end: bool,
    pub(super) data: &'a [u8],
}

/// Ports and payload of a transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ports {
    pub(super) src: u16,
    pub(super) dst: u16,
}

fn ports(b: &[u8]) -> Ports {
    Ports { src: be16(b, 0), dst: be16(b, 2) }
}

/// Parses a UDP header. Returns the payload cut to the UDP length (padding removed) and
/// whether the UDP length runs past the captured bytes.
pub(super) fn udp(b: &[u8]) -> Result<(Ports, &[u8], bool), DropReason> {
    if b.len() < udp::LEN {
        return Err(DropReason::UdpMalformed);
    }
    let end = match usize::from(be16(b, udp::LENGTH)) {
        // Jumbograms and UDP segmentation offload leave 0: take what was captured.
        0 => b.len(),
        n if n < udp::LEN => return Err(DropReason::UdpMalformed),
        n => n,
    };
    Ok((ports(b), &b[udp::LEN..end.min(b.len())], end > b.len()))
}

/// Parses a TCP header (options skipped).
pub(super) fn tcp(b: &[u8]) -> Result<(Ports, TcpInfo, &[u8]), DropReason> {
    if b.len() < tcp::MIN_LEN {
        return Err(DropReason::TcpMalformed);
    }
    let header_len = usize::from(b[tcp::DATA_OFFSET] >> 4) * 4;
    if header_len < tcp::MIN_LEN || header_len > b.len() {
        return Err(DropReason::TcpMalformed);
    }
    let info = TcpInfo { seq: be32(b, tcp::SEQ), ack: be32(b, tcp::ACK), flags: TcpFlags(b[tcp::FLAGS]) };
    Ok((ports(b), info, &b[header_len..]))
}

/// Parses an SCTP packet and calls `each` with the ports and the user data of every DATA
/// and I-DATA chunk (whole messages and fragments). Returns how many it found.
pub(super) fn sctp(b: &[u8], mut each: impl FnMut(Ports, SctpData<'_>)) -> Result<usize, DropReason> {
    if b.len() < sctp::COMMON_LEN {
        return Err(DropReason::SctpMalformed);
    }
    let ports = ports(b);
    let mut rest = &b[sctp::COMMON_LEN..];
    let mut found = 0;
    while !rest.is_empty() {
        if rest.len() < sctp::CHUNK_HEADER_LEN {
            return Err(DropReason::SctpMalformed);
        }
        let len = usize::from(be16(rest, sctp::CHUNK_LENGTH));
        // A truncated last chunk is tolerated: the messages before it are good.
        let Some(chunk) = rest.get(..len).filter(|_| len >= sctp::CHUNK_HEADER_LEN) else {
            return if len < sctp::CHUNK_HEADER_LEN { Err(DropReason::SctpMalformed) } else { Ok(found) };
        };
        if let Some(message) = user_message(chunk) {
            each(ports, message);
            found += 1;
        }
        // Chunks are padded to 4 bytes; the padding of the last one may be missing.
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    Ok(found)
}

/// The non-empty user data of a DATA or I-DATA chunk.
fn user_message(chunk: &[u8]) -> Option<SctpData<'_>> {
    let header_len = match chunk[0] {
        sctp::DATA => sctp::DATA_HEADER_LEN,
        sctp::I_DATA => sctp::I_DATA_HEADER_LEN,
        _ => return None,
    };
    let data = chunk.get(header_len..).filter(|data| !data.is_empty())?;
    let flags = chunk[sctp::CHUNK_FLAGS];
    Some(SctpData { tsn: be32(chunk, sctp::TSN), begin: flags & sctp::BEGIN != 0, end: flags & sctp::END != 0, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_lengths() {
        let mut d = vec![0x13, 0xc4, 0x13, 0xc5, 0, 12, 0, 0, b'a', b'b', b'c', b'd', 0, 0];
        assert_eq!(udp(&d), Ok((Ports { src: 5060, dst: 5061 }, &b"abcd"[..], false)));
        assert_eq!(udp(&d[..10]), Ok((Ports { src: 5060, dst: 5061 }, &b"ab"[..], true)));
        d[5] = 0;
        assert_eq!(udp(&d).unwrap().1.len(), 6);
        d[5] = 7;
        assert_eq!(udp(&d), Err(DropReason::UdpMalformed));
        assert_eq!(udp(&d[..7]), Err(DropReason::UdpMalformed));
    }

    #[test]
    fn tcp_header_and_options() {
        let mut s = vec![0, 1, 0, 2, 0, 0, 0, 9, 0, 0, 0, 7, 0x60, 0x18, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1];
        s.extend_from_slice(b"INVITE");
        let (p, info, payload) = tcp(&s).unwrap();
        assert_eq!(p, Ports { src: 1, dst: 2 });
        assert_eq!(info, TcpInfo { seq: 9, ack: 7, flags: TcpFlags(0x18) });
        assert!(info.flags.contains(TcpFlags::PSH) && !info.flags.contains(TcpFlags::SYN));
        assert_eq!(payload, b"INVITE");
        s[12] = 0x40;
        assert_eq!(tcp(&s), Err(DropReason::TcpMalformed));
        s[12] = 0xf0;
        assert_eq!(tcp(&s), Err(DropReason::TcpMalformed));
    }

    fn chunk(kind: u8, flags: u8, data: &[u8]) -> Vec<u8> {
        let header = if kind == 64 { 20 } else { 16 };
        let mut c = vec![kind, flags, 0, 0];
        c.extend_from_slice(&vec![0; header - 4]);
        c.extend_from_slice(data);
        let len = c.len() as u16;
        c[2..4].copy_from_slice(&len.to_be_bytes());
        c.resize(c.len().next_multiple_of(4), 0);
        c
    }

    #[test]
    fn sctp_bundles_and_skips() {
        let mut p = vec![0x13, 0xc4, 0x13, 0xc4, 0, 0, 0, 1, 0, 0, 0, 0];
        p.extend_from_slice(&[3, 0, 0, 8, 0, 0, 0, 0]); // SACK: skipped
        p.extend(chunk(0, 3, b"OPTIONS"));
        p.extend(chunk(0, 2, b"first half")); // fragment: reported as such
        p.extend(chunk(64, 3, b"idata"));
        let mut got = Vec::new();
        let n = sctp(&p, |ports, m| got.push((ports.src, m.begin, m.end, m.data.to_vec()))).unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            got,
            vec![
                (5060, true, true, b"OPTIONS".to_vec()),
                (5060, true, false, b"first half".to_vec()),
                (5060, true, true, b"idata".to_vec())
            ]
        );

        // Cut in the last chunk: earlier messages still count.
        let n = sctp(&p[..p.len() - 4], |_, _| {}).unwrap();
        assert_eq!(n, 2);
        let bad = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        assert_eq!(sctp(&bad, |_, _| {}), Err(DropReason::SctpMalformed));
    }
}
