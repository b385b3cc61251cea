//! Link layers: from a captured frame to an ethertype and its payload.
//!
//! Every link type is reduced to (ethertype, bytes), so the network layer has one entry
//! point. Raw-IP and loopback captures carry no ethertype; one is inferred from the IP
//! version nibble or the address family.

use super::{be16, DropReason};
use crate::source::LinkType;

/// Ethertypes the decoder acts on.
pub(super) mod ethertype {
    pub(crate) const IPV4: u16 = 0x0800;
    pub(crate) const ARP: u16 = 0x0806;
    pub(crate) const IPV6: u16 = 0x86dd;
    /// 802.1Q customer tag.
    pub(crate) const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ outer tag).
    pub(crate) const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tags still emitted by some switches.
    pub(crate) const QINQ_OLD: u16 = 0x9100;
    pub(crate) const QINQ_OLD2: u16 = 0x9200;
    /// PPPoE session stage (DSL access networks), carrying PPP.
    pub(crate) const PPPOE_SESSION: u16 = 0x8864;
    /// MPLS unicast and multicast label stacks.
    pub(crate) const MPLS: u16 = 0x8847;
    pub(crate) const MPLS_MULTICAST: u16 = 0x8848;
    /// Transparent Ethernet bridging (GRE carrying Ethernet frames).
    pub(crate) const TEB: u16 = 0x6558;
    /// ERSPAN type I/II (GRE protocol).
    pub(crate) const ERSPAN_2: u16 = 0x88be;
    /// ERSPAN type III (GRE protocol).
    pub(crate) const ERSPAN_3: u16 = 0x22eb;
    /// Not an ethertype: what we report for frames with no usable one (unknown
    /// address family, bad IP version nibble).
    pub(crate) const NONE: u16 = 0;
}

/// Header layouts.
mod field {
    pub(super) const ETH_TYPE: usize = 12;
    pub(super) const ETH_LEN: usize = 14;
    pub(super) const VLAN_TCI: usize = 0;
    pub(super) const VLAN_TYPE: usize = 2;
    pub(super) const VLAN_LEN: usize = 4;
    pub(super) const SLL_PROTOCOL: usize = 14;
    pub(super) const SLL_LEN: usize = 16;
    pub(super) const SLL2_PROTOCOL: usize = 0;
    pub(super) const SLL2_LEN: usize = 20;
    pub(super) const LOOP_LEN: usize = 4;
    /// PPPoE header (version/type, code, session, length) plus the PPP protocol.
    pub(super) const PPPOE_PPP_PROTO: usize = 6;
    pub(super) const PPPOE_LEN: usize = 8;
    pub(super) const MPLS_LABEL_LEN: usize = 4;
}

/// PPP protocol numbers for IP.
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// Deepest MPLS label stack we pop.
const MAX_MPLS_LABELS: usize = 8;

/// Deepest VLAN stack we unwrap (QinQ is 2; more is either exotic or hostile).
const MAX_VLAN_TAGS: usize = 4;

/// Splits a frame into its ethertype and payload, unwrapping VLAN tags; `vlan` is set to
/// the innermost tag's id when there is one.
pub(super) fn split<'a>(
    link: LinkType,
    frame: &'a [u8],
    vlan: &mut Option<u16>,
) -> Result<(u16, &'a [u8]), DropReason> {
    match link {
        LinkType::Ethernet => ethernet(frame, vlan),
        LinkType::LinuxSll => cooked(frame, field::SLL_PROTOCOL, field::SLL_LEN, vlan),
        LinkType::LinuxSll2 => cooked(frame, field::SLL2_PROTOCOL, field::SLL2_LEN, vlan),
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => Ok((ip_version(frame), frame)),
        LinkType::Null | LinkType::Loop => loopback(frame),
        LinkType::Unknown(_) => Err(DropReason::UnknownLinkType),
    }
}

/// Ethernet II header plus any VLAN tags.
pub(super) fn ethernet<'a>(
    frame: &'a [u8],
    vlan: &mut Option<u16>,
) -> Result<(u16, &'a [u8]), DropReason> {
    if frame.len() < field::ETH_LEN {
        return Err(DropReason::LinkTruncated);
    }
    strip_vlans(be16(frame, field::ETH_TYPE), &frame[field::ETH_LEN..], vlan)
}

/// Linux cooked capture: a fixed header with the protocol (an ethertype for IP) at
/// `proto_at`. The kernel usually strips VLAN tags into metadata, but not always.
fn cooked<'a>(
    frame: &'a [u8],
    proto_at: usize,
    header_len: usize,
    vlan: &mut Option<u16>,
) -> Result<(u16, &'a [u8]), DropReason> {
    if frame.len() < header_len {
        return Err(DropReason::LinkTruncated);
    }
    strip_vlans(be16(frame, proto_at), &frame[header_len..], vlan)
}

/// Unwraps 802.1Q / 802.1ad tags (the innermost id wins), then a PPPoE session header
/// or an MPLS label stack if one follows.
fn strip_vlans<'a>(
    mut ty: u16,
    mut rest: &'a [u8],
    vlan: &mut Option<u16>,
) -> Result<(u16, &'a [u8]), DropReason> {
    for _ in 0..=MAX_VLAN_TAGS {
        match ty {
            ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD | ethertype::QINQ_OLD2 => {}
            ethertype::PPPOE_SESSION => return pppoe(rest),
            ethertype::MPLS | ethertype::MPLS_MULTICAST => return mpls(rest),
            _ => return Ok((ty, rest)),
        }
        if rest.len() < field::VLAN_LEN {
            return Err(DropReason::LinkTruncated);
        }
        *vlan = Some(be16(rest, field::VLAN_TCI) & 0x0fff);
        ty = be16(rest, field::VLAN_TYPE);
        rest = &rest[field::VLAN_LEN..];
    }
    Err(DropReason::TooDeep)
}

/// PPPoE session: IP inside PPP; other PPP protocols (LCP, IPCP...) have no ethertype.
fn pppoe(b: &[u8]) -> Result<(u16, &[u8]), DropReason> {
    let Some(payload) = b.get(field::PPPOE_LEN..) else {
        return Err(DropReason::LinkTruncated);
    };
    let ty = match be16(b, field::PPPOE_PPP_PROTO) {
        PPP_IPV4 => ethertype::IPV4,
        PPP_IPV6 => ethertype::IPV6,
        _ => ethertype::NONE,
    };
    Ok((ty, payload))
}

/// MPLS: pops labels up to the bottom of the stack; the payload type is not encoded, so
/// it is guessed from the IP version nibble (pseudowires carrying Ethernet read as NONE).
fn mpls(mut b: &[u8]) -> Result<(u16, &[u8]), DropReason> {
    for _ in 0..MAX_MPLS_LABELS {
        if b.len() < field::MPLS_LABEL_LEN {
            return Err(DropReason::LinkTruncated);
        }
        let bottom = b[2] & 0x01 != 0;
        b = &b[field::MPLS_LABEL_LEN..];
        if bottom {
            return Ok((ip_version(b), b));
        }
    }
    Err(DropReason::TooDeep)
}

/// The ethertype a raw IP packet would have, from its version nibble.
pub(super) fn ip_version(packet: &[u8]) -> u16 {
    match packet.first().map(|b| b >> 4) {
        Some(4) => ethertype::IPV4,
        Some(6) => ethertype::IPV6,
        _ => ethertype::NONE,
    }
}

/// BSD loopback: a 4-byte address family. DLT_NULL writes it in the capturing host's
/// byte order, which the file does not record; families are small, so whichever reading
/// is below 256 is the right one (this also covers DLT_LOOP's network order).
fn loopback(frame: &[u8]) -> Result<(u16, &[u8]), DropReason> {
    let Some(af) = frame.get(..field::LOOP_LEN) else {
        return Err(DropReason::LinkTruncated);
    };
    let af = [af[0], af[1], af[2], af[3]];
    let le = u32::from_le_bytes(af);
    let family = if le < 256 { le } else { u32::from_be_bytes(af) };
    let ty = match family {
        2 => ethertype::IPV4,
        // AF_INET6 differs by BSD: NetBSD/OpenBSD 24, FreeBSD 28, macOS 30.
        24 | 28 | 30 => ethertype::IPV6,
        _ => ethertype::NONE,
    };
    Ok((ty, &frame[field::LOOP_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(tags: &[(u16, u16)], ty: u16) -> Vec<u8> {
        let mut f = vec![0xaa; 12];
        for &(tpid, tci) in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&ty.to_be_bytes());
        f.extend_from_slice(b"payload");
        f
    }

    #[test]
    fn ethernet_vlan_and_qinq_keep_innermost_id() {
        let mut vlan = None;
        let f = eth(&[], 0x0800);
        assert_eq!(
            split(LinkType::Ethernet, &f, &mut vlan),
            Ok((0x0800, &b"payload"[..]))
        );
        assert_eq!(vlan, None);

        let f = eth(&[(0x88a8, 200), (0x8100, 0x2000 | 100)], 0x86dd);
        assert_eq!(
            split(LinkType::Ethernet, &f, &mut vlan),
            Ok((0x86dd, &b"payload"[..]))
        );
        assert_eq!(vlan, Some(100), "priority bits masked, inner tag wins");

        let f = eth(&[(0x9100, 7); 5], 0x0800);
        assert_eq!(
            split(LinkType::Ethernet, &f, &mut vlan),
            Err(DropReason::TooDeep)
        );
        assert_eq!(
            split(LinkType::Ethernet, &f[..13], &mut vlan),
            Err(DropReason::LinkTruncated)
        );
        assert_eq!(
            split(LinkType::Ethernet, &f[..16], &mut vlan),
            Err(DropReason::LinkTruncated)
        );
    }

    #[test]
    fn pppoe_and_mpls() {
        let mut vlan = None;
        let mut f = eth(&[], 0x8864);
        f.truncate(14);
        f.extend_from_slice(&[0x11, 0, 0x18, 0xe5, 0x04, 0x31, 0x00, 0x21, 0x45]);
        assert_eq!(
            split(LinkType::Ethernet, &f, &mut vlan),
            Ok((0x0800, &[0x45][..]))
        );
        f[21] = 0xc0; // LCP
        assert_eq!(split(LinkType::Ethernet, &f, &mut vlan).unwrap().0, 0);
        assert_eq!(
            split(LinkType::Ethernet, &f[..21], &mut vlan),
            Err(DropReason::LinkTruncated)
        );

        let mut f = eth(&[(0x8100, 5)], 0x8847);
        f.truncate(18);
        f.extend_from_slice(&[0, 1, 0, 64, 0, 2, 1, 64, 0x60]);
        assert_eq!(
            split(LinkType::Ethernet, &f, &mut vlan),
            Ok((0x86dd, &[0x60][..]))
        );
        assert_eq!(vlan, Some(5));
        assert_eq!(
            split(LinkType::Ethernet, &f[..24], &mut vlan),
            Err(DropReason::LinkTruncated)
        );
    }

    #[test]
    fn cooked_headers() {
        let mut vlan = None;
        let mut sll = vec![0; 16];
        sll[14..16].copy_from_slice(&0x0800u16.to_be_bytes());
        sll.push(0x45);
        assert_eq!(
            split(LinkType::LinuxSll, &sll, &mut vlan),
            Ok((0x0800, &[0x45][..]))
        );
        let mut sll2 = vec![0; 20];
        sll2[0..2].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert_eq!(
            split(LinkType::LinuxSll2, &sll2, &mut vlan),
            Ok((0x86dd, &[][..]))
        );
        assert_eq!(
            split(LinkType::LinuxSll2, &sll2[..19], &mut vlan),
            Err(DropReason::LinkTruncated)
        );
    }

    #[test]
    fn raw_and_loopback() {
        let mut vlan = None;
        assert_eq!(
            split(LinkType::Raw, &[0x60], &mut vlan),
            Ok((0x86dd, &[0x60][..]))
        );
        assert_eq!(split(LinkType::Raw, &[], &mut vlan), Ok((0, &[][..])));
        assert_eq!(
            split(LinkType::Null, &[2, 0, 0, 0, 0x45], &mut vlan),
            Ok((0x0800, &[0x45][..]))
        );
        assert_eq!(
            split(LinkType::Loop, &[0, 0, 0, 24], &mut vlan),
            Ok((0x86dd, &[][..]))
        );
        assert_eq!(
            split(LinkType::Null, &[30, 0, 0, 0], &mut vlan),
            Ok((0x86dd, &[][..]))
        );
        assert_eq!(
            split(LinkType::Null, &[7, 0, 0, 0], &mut vlan),
            Ok((0, &[][..]))
        );
        assert_eq!(
            split(LinkType::Null, &[2, 0], &mut vlan),
            Err(DropReason::LinkTruncated)
        );
        assert_eq!(
            split(LinkType::Unknown(147), &[], &mut vlan),
            Err(DropReason::UnknownLinkType)
        );
    }
}
