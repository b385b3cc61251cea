//! IPv4 and IPv6 headers, down to the transport protocol number and payload.
//!
//! Length fields are checked against each other and against the captured bytes: bytes
//! beyond the IP total length (Ethernet padding) are cut off, and an IP length beyond
//! the captured bytes (snap length) marks the packet `truncated` rather than dropping
//! it, so a cut SIP message is still seen (and counted).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{be16, be32, DropReason, Ignored, Outcome};

/// IPv4 header layout.
mod v4 {
    pub(super) const VERSION_IHL: usize = 0;
    pub(super) const TOTAL_LEN: usize = 2;
    pub(super) const ID: usize = 4;
    pub(super) const FLAGS_FRAG: usize = 6;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const SRC: usize = 12;
    pub(super) const DST: usize = 16;
    pub(super) const MIN_LEN: usize = 20;
    pub(super) const MORE_FRAGMENTS: u16 = 0x2000;
    pub(super) const OFFSET_MASK: u16 = 0x1fff;
}

/// IPv6 fixed header and extension header layout.
mod v6 {
    pub(super) const PAYLOAD_LEN: usize = 4;
    pub(super) const NEXT_HEADER: usize = 6;
    pub(super) const SRC: usize = 8;
    pub(super) const DST: usize = 24;
    pub(super) const LEN: usize = 40;

    pub(super) const FRAG_OFFSET: usize = 2;
    pub(super) const FRAG_ID: usize = 4;
    pub(super) const FRAG_LEN: usize = 8;
    pub(super) const OFFSET_MASK: u16 = 0xfff8;
    pub(super) const MORE_FRAGMENTS: u16 = 0x0001;
}

/// IP protocol / IPv6 next-header numbers.
pub(super) mod proto {
    pub(crate) const HOP_BY_HOP: u8 = 0;
    pub(crate) const IPV4: u8 = 4;
    pub(crate) const TCP: u8 = 6;
    pub(crate) const UDP: u8 = 17;
    pub(crate) const IPV6: u8 = 41;
    pub(crate) const ROUTING: u8 = 43;
    pub(crate) const FRAGMENT: u8 = 44;
    pub(crate) const GRE: u8 = 47;
    pub(crate) const ESP: u8 = 50;
    pub(crate) const AH: u8 = 51;
    pub(crate) const NO_NEXT: u8 = 59;
    pub(crate) const DEST_OPTS: u8 = 60;
    pub(crate) const VRRP: u8 = 112;
    pub(crate) const SCTP: u8 = 132;
    pub(crate) const MOBILITY: u8 = 135;
    pub(crate) const HIP: u8 = 139;
    pub(crate) const SHIM6: u8 = 140;
}

/// More IPv6 extension headers than any real stack sends (a chain bomb otherwise).
const MAX_EXT_HEADERS: usize = 8;

/// A checked IPv4 header and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ipv4<'a> {
    pub(super) src: Ipv4Addr,
    pub(super) dst: Ipv4Addr,
    pub(super) proto: u8,
    pub(super) id: u16,
    /// Fragment offset in bytes.
    pub(super) frag_offset: usize,
    pub(super) more_fragments: bool,
    /// Bytes after the header, up to the total length (or the end of the capture).
    pub(super) payload: &'a [u8],
    /// The total length runs past the captured bytes.
    pub(super) truncated: bool,
}

impl Ipv4<'_> {
    /// True for any piece of a fragmented datagram, first one included.
    pub(super) fn is_fragment(&self) -> bool {
        self.more_fragments || self.frag_offset != 0
    }
}

/// Parses an IPv4 header (options skipped, checksum not verified).
pub(super) fn ipv4(b: &[u8]) -> Result<Ipv4<'_>, DropReason> {
    if b.len() < v4::MIN_LEN || b[v4::VERSION_IHL] >> 4 != 4 {
        return Err(DropReason::Ipv4Malformed);
    }
    let header_len = usize::from(b[v4::VERSION_IHL] & 0x0f) * 4;
    let total = match usize::from(be16(b, v4::TOTAL_LEN)) {
        // Segmentation offload hands the capture one super-packet with length 0.
        0 => b.len(),
        n => n,
    };
    if header_len < v4::MIN_LEN || header_len > b.len() || total < header_len {
        return Err(DropReason::Ipv4Malformed);
    }
    let flags_frag = be16(b, v4::FLAGS_FRAG);
    Ok(Ipv4 {
        src: addr4(b, v4::SRC),
        dst: addr4(b, v4::DST),
        proto: b[v4::PROTOCOL],
        id: be16(b, v4::ID),
        frag_offset: usize::from(flags_frag & v4::OFFSET_MASK) * 8,
        more_fragments: flags_frag & v4::MORE_FRAGMENTS != 0,
        payload: &b[header_len..total.min(b.len())],
        truncated: total > b.len(),
    })
}

fn addr4(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// The IPv6 fragment header of a fragmented packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Frag6 {
    /// Offset of this fragment's data in the fragmentable part, in bytes.
    pub(super) offset: usize,
    pub(super) more: bool,
    pub(super) id: u32,
}

/// A checked IPv6 header, with extension headers walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ipv6<'a> {
    pub(super) src: Ipv6Addr,
    pub(super) dst: Ipv6Addr,
    /// The upper-layer protocol, or for a fragment the next header of its fragment header.
    pub(super) next: u8,
    /// Bytes after the last extension header we walked (for a fragment: its data).
    pub(super) payload: &'a [u8],
    pub(super) truncated: bool,
    pub(super) frag: Option<Frag6>,
}

/// Parses an IPv6 header and its extension headers, stopping at the first upper-layer
/// or unknown header, or at a fragment header.
pub(super) fn ipv6(b: &[u8]) -> Result<Ipv6<'_>, Outcome> {
    if b.len() < v6::LEN || b[0] >> 4 != 6 {
        return Err(Outcome::Dropped(DropReason::Ipv6Malformed));
    }
    let end = match usize::from(be16(b, v6::PAYLOAD_LEN)) {
        // Jumbograms (RFC 2675) and offloaded super-packets: take what was captured.
        0 => b.len(),
        n => v6::LEN + n,
    };
    let (next, payload, frag) = ext_headers(b[v6::NEXT_HEADER], &b[v6::LEN..end.min(b.len())])?;
    Ok(Ipv6 {
        src: addr6(b, v6::SRC),
        dst: addr6(b, v6::DST),
        next,
        payload,
        truncated: end > b.len(),
        frag,
    })
}

fn addr6(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

/// Walks IPv6 extension headers from `next` over `data`. Also used on a reassembled
/// fragmentable part, which may start with more extension headers (destination options).
pub(super) fn ext_headers(
    mut next: u8,
    mut data: &[u8],
) -> Result<(u8, &[u8], Option<Frag6>), Outcome> {
    let malformed = Outcome::Dropped(DropReason::Ipv6ExtMalformed);
    for _ in 0..=MAX_EXT_HEADERS {
        let len = match next {
            proto::HOP_BY_HOP
            | proto::ROUTING
            | proto::DEST_OPTS
            | proto::MOBILITY
            | proto::HIP
            | proto::SHIM6 => data.get(1).map(|&l| (usize::from(l) + 1) * 8),
            proto::AH => data.get(1).map(|&l| (usize::from(l) + 2) * 4),
            proto::FRAGMENT => {
                if data.len() < v6::FRAG_LEN {
                    return Err(malformed);
                }
                let off_flags = be16(data, v6::FRAG_OFFSET);
                let frag = Frag6 {
                    offset: usize::from(off_flags & v6::OFFSET_MASK),
                    more: off_flags & v6::MORE_FRAGMENTS != 0,
                    id: be32(data, v6::FRAG_ID),
                };
                // An "atomic fragment" (offset 0, no more) is a whole packet (RFC 6946).
                if frag.offset != 0 || frag.more {
                    return Ok((data[0], &data[v6::FRAG_LEN..], Some(frag)));
                }
                Some(v6::FRAG_LEN)
            }
            proto::ESP | proto::NO_NEXT => return Err(Outcome::Ignored(Ignored::NoPayload)),
            upper => return Ok((upper, data, None)),
        };
        match len {
            Some(len) if len <= data.len() => {
                next = data[0];
                data = &data[len..];
            }
            _ => return Err(malformed),
        }
    }
    Err(Outcome::Dropped(DropReason::TooDeep))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An IPv4 header (no options) with the given protocol, flags/offset word and payload.
    pub(crate) fn ipv4_packet(proto: u8, flags_frag: u16, id: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p[2..4].copy_from_slice(&(20 + payload.len() as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        p[6..8].copy_from_slice(&flags_frag.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// An IPv6 header (`::1` to `::2`) with the given next header and payload.
    pub(crate) fn ipv6_packet(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
        p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        p.extend_from_slice(&Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 2).octets());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn ipv4_fields_padding_and_truncation() {
        let mut p = ipv4_packet(17, 0x2000 | 3, 77, b"data");
        p.extend_from_slice(&[0; 6]); // Ethernet padding
        let ip = ipv4(&p).unwrap();
        assert_eq!(
            (ip.src, ip.dst, ip.proto, ip.id),
            (
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 2),
                17,
                77
            )
        );
        assert_eq!(
            (ip.frag_offset, ip.more_fragments, ip.payload, ip.truncated),
            (24, true, &b"data"[..], false)
        );
        let cut = ipv4(&p[..22]).unwrap();
        assert_eq!((cut.payload, cut.truncated), (&b"da"[..], true));
    }

    #[test]
    fn ipv4_options_and_bad_lengths() {
        let mut p = ipv4_packet(6, 0, 0, &[1, 1, 1, 1, 9]);
        p[0] = 0x46; // IHL 6: one option word
        assert_eq!(ipv4(&p).unwrap().payload, &[9]);
        p[0] = 0x4f; // IHL 15 > frame
        assert_eq!(ipv4(&p), Err(DropReason::Ipv4Malformed));
        p[0] = 0x44;
        assert_eq!(ipv4(&p), Err(DropReason::Ipv4Malformed));
        p[0] = 0x45;
        p[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(ipv4(&p), Err(DropReason::Ipv4Malformed));
        assert_eq!(ipv4(&p[..19]), Err(DropReason::Ipv4Malformed));
    }

    #[test]
    fn ipv6_extension_chain_and_fragment() {
        // Hop-by-hop (8 bytes) -> destination options (16 bytes) -> fragment -> UDP.
        let mut ext = vec![60, 0, 0, 0, 0, 0, 0, 0];
        ext.extend_from_slice(&[44, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        ext.extend_from_slice(&[17, 0, 0x05, 0x01, 0, 0, 0, 42]);
        ext.extend_from_slice(b"frag");
        let p = ipv6_packet(0, &ext);
        let ip = ipv6(&p).unwrap();
        assert_eq!(ip.next, 17);
        assert_eq!(ip.payload, b"frag");
        assert_eq!(
            ip.frag,
            Some(Frag6 {
                offset: 0x500,
                more: true,
                id: 42
            })
        );

        let atomic = ipv6_packet(44, &[17, 0, 0, 0, 0, 0, 0, 1, b'x']);
        let ip = ipv6(&atomic).unwrap();
        assert_eq!((ip.next, ip.payload, ip.frag), (17, &b"x"[..], None));
    }

    #[test]
    fn ipv6_bad_chains() {
        let p = ipv6_packet(0, &[17, 3, 0, 0]);
        assert_eq!(
            ipv6(&p),
            Err(Outcome::Dropped(DropReason::Ipv6ExtMalformed))
        );
        let p = ipv6_packet(59, &[]);
        assert_eq!(ipv6(&p), Err(Outcome::Ignored(Ignored::NoPayload)));
        let p = ipv6_packet(0, &[0; 8 * 12]);
        assert_eq!(ipv6(&p), Err(Outcome::Dropped(DropReason::TooDeep)));
        assert_eq!(
            ipv6(&p[..39]),
            Err(Outcome::Dropped(DropReason::Ipv6Malformed))
        );
    }
}
