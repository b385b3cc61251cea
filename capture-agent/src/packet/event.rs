//! ARP and VRRP, reported as events: they say who owns a virtual IP, which is how a
//! failover shows on the wire (VRRP advertisements from a new master, gratuitous ARP).

use std::net::{IpAddr, Ipv4Addr};

use super::{be16, Ignored, Outcome};

/// A packet that is not a transport payload but matters for failover detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An Ethernet/IPv4 ARP request or reply.
    Arp(ArpEvent),
    /// A VRRP advertisement.
    Vrrp(VrrpEvent),
}

/// The fields of an ARP packet that say who claims an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpEvent {
    /// 1 request, 2 reply.
    pub op: u16,
    /// Sender hardware address.
    pub sender_mac: [u8; 6],
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
    /// Innermost VLAN id of the frame.
    pub vlan: Option<u16>,
}

impl ArpEvent {
    /// A gratuitous ARP announces the sender's own address (sender IP = target IP): what
    /// keepalived sends when it takes over a virtual IP.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

/// A VRRP (v2 or v3) advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VrrpEvent {
    /// The advertising router's address (the IP source).
    pub src: IpAddr,
    /// VRRP version (2 or 3).
    pub version: u8,
    /// Virtual router id.
    pub vrid: u8,
    /// Priority (255: address owner, 0: the master is stepping down).
    pub priority: u8,
    /// Number of virtual addresses advertised.
    pub addr_count: u8,
    /// Innermost VLAN id of the frame.
    pub vlan: Option<u16>,
}

/// ARP layout for Ethernet hardware and IPv4 protocol addresses.
mod arp {
    pub(super) const HTYPE: usize = 0;
    pub(super) const PTYPE: usize = 2;
    pub(super) const HLEN: usize = 4;
    pub(super) const PLEN: usize = 5;
    pub(super) const OP: usize = 6;
    pub(super) const SHA: usize = 8;
    pub(super) const SPA: usize = 14;
    pub(super) const TPA: usize = 24;
    pub(super) const LEN: usize = 28;
}

/// VRRP layout (same first bytes in v2 and v3).
mod vrrp {
    pub(super) const VERSION_TYPE: usize = 0;
    pub(super) const VRID: usize = 1;
    pub(super) const PRIORITY: usize = 2;
    pub(super) const COUNT: usize = 3;
    pub(super) const MIN_LEN: usize = 8;
    pub(super) const ADVERTISEMENT: u8 = 1;
}

/// Reads an ARP packet; anything but Ethernet/IPv4 ARP is ignored.
pub(super) fn arp(b: &[u8], vlan: Option<u16>) -> Outcome {
    let ethernet_ipv4 = b.len() >= arp::LEN
        && be16(b, arp::HTYPE) == 1
        && be16(b, arp::PTYPE) == 0x0800
        && b[arp::HLEN] == 6
        && b[arp::PLEN] == 4;
    if !ethernet_ipv4 {
        return Outcome::Ignored(Ignored::OtherEtherType);
    }
    let ip = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
    let mut sender_mac = [0; 6];
    sender_mac.copy_from_slice(&b[arp::SHA..arp::SHA + 6]);
    Outcome::Event(Event::Arp(ArpEvent {
        op: be16(b, arp::OP),
        sender_mac,
        sender_ip: ip(arp::SPA),
        target_ip: ip(arp::TPA),
        vlan,
    }))
}

/// Reads a VRRP advertisement; other VRRP packet types are ignored.
pub(super) fn vrrp(b: &[u8], src: IpAddr, vlan: Option<u16>) -> Outcome {
    if b.len() < vrrp::MIN_LEN || b[vrrp::VERSION_TYPE] & 0x0f != vrrp::ADVERTISEMENT {
        return Outcome::Ignored(Ignored::OtherIpProto);
    }
    Outcome::Event(Event::Vrrp(VrrpEvent {
        src,
        version: b[vrrp::VERSION_TYPE] >> 4,
        vrid: b[vrrp::VRID],
        priority: b[vrrp::PRIORITY],
        addr_count: b[vrrp::COUNT],
        vlan,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gratuitous_arp() {
        let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1, 1, 2, 3, 4, 5, 6, 10, 0, 0, 9];
        p.extend_from_slice(&[0xff; 6]);
        p.extend_from_slice(&[10, 0, 0, 9]);
        let Outcome::Event(Event::Arp(a)) = arp(&p, Some(5)) else {
            panic!()
        };
        assert_eq!(
            (a.op, a.sender_mac, a.sender_ip),
            (1, [1, 2, 3, 4, 5, 6], Ipv4Addr::new(10, 0, 0, 9))
        );
        assert!(a.is_gratuitous());
        assert_eq!(
            arp(&p[..27], None),
            Outcome::Ignored(Ignored::OtherEtherType)
        );
    }

    #[test]
    fn vrrp_advertisement() {
        let src = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let p = [0x21, 51, 100, 1, 0, 1, 0, 0, 10, 0, 0, 100];
        let want = VrrpEvent {
            src,
            version: 2,
            vrid: 51,
            priority: 100,
            addr_count: 1,
            vlan: None,
        };
        assert_eq!(vrrp(&p, src, None), Outcome::Event(Event::Vrrp(want)));
        assert_eq!(
            vrrp(&p[..7], src, None),
            Outcome::Ignored(Ignored::OtherIpProto)
        );
    }
}
