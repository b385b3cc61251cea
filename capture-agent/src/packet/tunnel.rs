//! GRE and ERSPAN: what a tunnel carries. (IP-in-IP needs no parsing of its own: the
//! protocol number says an IP header follows.)

use super::link::ethertype;
use super::{be16, DropReason, Ignored, Outcome};

/// GRE header layout (RFC 2784 / 2890).
mod gre {
    pub(super) const FLAGS: usize = 0;
    pub(super) const PROTOCOL: usize = 2;
    pub(super) const BASE_LEN: usize = 4;
    pub(super) const CHECKSUM: u16 = 0x8000;
    pub(super) const ROUTING: u16 = 0x4000;
    pub(super) const KEY: u16 = 0x2000;
    pub(super) const SEQUENCE: u16 = 0x1000;
    pub(super) const VERSION: u16 = 0x0007;
}

/// ERSPAN header lengths and versions.
mod erspan {
    pub(super) const TYPE2_LEN: usize = 8;
    pub(super) const TYPE2_VERSION: u8 = 1;
    pub(super) const TYPE3_LEN: usize = 12;
    pub(super) const TYPE3_VERSION: u8 = 2;
    /// Byte holding the O bit: an 8-byte platform-specific subheader follows.
    pub(super) const TYPE3_FLAGS: usize = 11;
    pub(super) const TYPE3_OPTIONAL: u8 = 0x01;
    pub(super) const TYPE3_SUBHEADER_LEN: usize = 8;
}

/// What a GRE packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Inner<'a> {
    /// An IP packet, with the ethertype saying which version.
    Ip(u16, &'a [u8]),
    /// A whole Ethernet frame (bridged, or mirrored by ERSPAN).
    Ethernet(&'a [u8]),
}

/// Parses a GRE header and, for ERSPAN, the ERSPAN header after it.
pub(super) fn gre(b: &[u8]) -> Result<Inner<'_>, Outcome> {
    if b.len() < gre::BASE_LEN {
        return Err(Outcome::Dropped(DropReason::GreMalformed));
    }
    let flags = be16(b, gre::FLAGS);
    if flags & gre::VERSION != 0 {
        // Version 1 is PPTP's enhanced GRE, carrying PPP.
        return Err(Outcome::Ignored(Ignored::OtherGreProto));
    }
    if flags & gre::ROUTING != 0 {
        return Err(Outcome::Dropped(DropReason::GreMalformed));
    }
    let optional = [gre::CHECKSUM, gre::KEY, gre::SEQUENCE]
        .iter()
        .filter(|&&bit| flags & bit != 0)
        .count();
    let Some(payload) = b.get(gre::BASE_LEN + 4 * optional..) else {
        return Err(Outcome::Dropped(DropReason::GreMalformed));
    };
    match be16(b, gre::PROTOCOL) {
        ty @ (ethertype::IPV4 | ethertype::IPV6) => Ok(Inner::Ip(ty, payload)),
        ethertype::TEB => Ok(Inner::Ethernet(payload)),
        // Type I has no ERSPAN header and no GRE sequence number; type II has both.
        ethertype::ERSPAN_2 if flags & gre::SEQUENCE == 0 => Ok(Inner::Ethernet(payload)),
        ethertype::ERSPAN_2 => erspan2(payload),
        ethertype::ERSPAN_3 => erspan3(payload),
        _ => Err(Outcome::Ignored(Ignored::OtherGreProto)),
    }
}

fn erspan2(b: &[u8]) -> Result<Inner<'_>, Outcome> {
    match b.get(erspan::TYPE2_LEN..) {
        Some(frame) if b[0] >> 4 == erspan::TYPE2_VERSION => Ok(Inner::Ethernet(frame)),
        _ => Err(Outcome::Dropped(DropReason::ErspanMalformed)),
    }
}

fn erspan3(b: &[u8]) -> Result<Inner<'_>, Outcome> {
    if b.len() < erspan::TYPE3_LEN || b[0] >> 4 != erspan::TYPE3_VERSION {
        return Err(Outcome::Dropped(DropReason::ErspanMalformed));
    }
    let mut len = erspan::TYPE3_LEN;
    if b[erspan::TYPE3_FLAGS] & erspan::TYPE3_OPTIONAL != 0 {
        len += erspan::TYPE3_SUBHEADER_LEN;
    }
    b.get(len..)
        .map(Inner::Ethernet)
        .ok_or(Outcome::Dropped(DropReason::ErspanMalformed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gre_optional_fields_and_protocols() {
        assert_eq!(
            gre(&[0, 0, 0x08, 0x00, 0x45]),
            Ok(Inner::Ip(0x0800, &[0x45][..]))
        );
        // Checksum + key present: 8 more bytes.
        let mut p = vec![0xa0, 0, 0x65, 0x58];
        p.extend_from_slice(&[0; 8]);
        p.push(0xee);
        assert_eq!(gre(&p), Ok(Inner::Ethernet(&[0xee][..])));
        assert_eq!(
            gre(&p[..8]),
            Err(Outcome::Dropped(DropReason::GreMalformed))
        );
        assert_eq!(
            gre(&[0, 1, 0x88, 0x0b]),
            Err(Outcome::Ignored(Ignored::OtherGreProto))
        );
        assert_eq!(
            gre(&[0x40, 0, 0x08, 0x00]),
            Err(Outcome::Dropped(DropReason::GreMalformed))
        );
        assert_eq!(
            gre(&[0, 0, 0x12, 0x34]),
            Err(Outcome::Ignored(Ignored::OtherGreProto))
        );
    }

    #[test]
    fn erspan_types() {
        // Type I: no sequence bit, frame right after GRE.
        assert_eq!(
            gre(&[0, 0, 0x88, 0xbe, 0xee]),
            Ok(Inner::Ethernet(&[0xee][..]))
        );
        // Type II: sequence number, then an 8-byte header with version 1.
        let mut p = vec![
            0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0x64, 0, 1, 0, 0, 0, 0, 0xee,
        ];
        assert_eq!(gre(&p), Ok(Inner::Ethernet(&[0xee][..])));
        p[8] = 0x20;
        assert_eq!(gre(&p), Err(Outcome::Dropped(DropReason::ErspanMalformed)));
        // Type III with the optional subheader.
        let mut p = vec![
            0x10, 0, 0x22, 0xeb, 0, 0, 0, 1, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        ];
        p.extend_from_slice(&[0; 8]);
        p.push(0xee);
        assert_eq!(gre(&p), Ok(Inner::Ethernet(&[0xee][..])));
        assert_eq!(
            gre(&p[..20]),
            Err(Outcome::Dropped(DropReason::ErspanMalformed))
        );
    }
}
