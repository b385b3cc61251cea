//! ARP and VRRP, reported as events: they say who owns a virtual IP, which is how a
//! failover shows on the wire (VRRP advertisements from a new master, gratuitous ARP).

use std::net::{IpAddr, Ipv4Addr};

use super::{be16, Ignored, Outcome};

/// A packet that is not a transport payload but matters for failover detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An Ethernet/IPv4 ARP request or reply.
    Arp(ArpEvent),
    /// A VRRP advertisement. Boxed: its address list would make every [`Outcome`] (one
    /// per frame) several times larger, for a packet a router sends about once a second.
    Vrrp(Box<VrrpEvent>),
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpEvent {
    /// The advertising router's address (the IP source).
    pub src: IpAddr,
    /// Where it was sent: 224.0.0.18 / ff02::12, or a unicast peer (keepalived's
    /// `unicast_peer`).
    pub dst: IpAddr,
    /// VRRP version (2 or 3).
    pub version: u8,
    /// Virtual router id.
    pub vrid: u8,
    /// Priority (255: address owner, 0: the master is stepping down).
    pub priority: u8,
    /// Number of virtual addresses the header announces.
    pub addr_count: u8,
    /// The virtual addresses that follow the header (IPv4 or IPv6, as the packet's own
    /// family). Fewer than `addr_count` only when the packet was cut short.
    pub addresses: Vec<IpAddr>,
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

/// Reads a VRRP advertisement sent from `src` to `dst`; other VRRP packet types are
/// ignored.
///
/// v2 (RFC 3768) and v3 (RFC 5798) share the 8-byte header; the virtual addresses follow
/// it, 4 bytes each over IPv4 and 16 over IPv6 (v2 then carries 8 bytes of authentication
/// data, which we skip). A count larger than what was captured is not an error: the
/// addresses that are there are kept, so a snap-length cut still shows who advertised.
pub(super) fn vrrp(b: &[u8], src: IpAddr, dst: IpAddr, vlan: Option<u16>) -> Outcome {
    if b.len() < vrrp::MIN_LEN || b[vrrp::VERSION_TYPE] & 0x0f != vrrp::ADVERTISEMENT {
        return Outcome::Ignored(Ignored::OtherIpProto);
    }
    let addr_count = b[vrrp::COUNT];
    Outcome::Event(Event::Vrrp(Box::new(VrrpEvent {
        src,
        dst,
        version: b[vrrp::VERSION_TYPE] >> 4,
        vrid: b[vrrp::VRID],
        priority: b[vrrp::PRIORITY],
        addr_count,
        addresses: virtual_addresses(&b[vrrp::MIN_LEN..], addr_count, src.is_ipv6()),
        vlan,
    })))
}

/// Up to `count` addresses from the start of `b`, as many as it holds whole.
fn virtual_addresses(b: &[u8], count: u8, ipv6: bool) -> Vec<IpAddr> {
    let width = if ipv6 { 16 } else { 4 };
    b.chunks_exact(width).take(usize::from(count)).filter_map(address).collect()
}

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address.
fn address(bytes: &[u8]) -> Option<IpAddr> {
    match <[u8; 4]>::try_from(bytes) {
        Ok(v4) => Some(IpAddr::from(v4)),
        Err(_) => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gratuitous_arp() {
        let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1, 1, 2, 3, 4, 5, 6, 10, 0, 0, 9];
        p.extend_from_slice(&[0xff; 6]);
        p.extend_from_slice(&[10, 0, 0, 9]);
        let Outcome::Event(Event::Arp(a)) = arp(&p, Some(5)) else { panic!() };
        assert_eq!((a.op, a.sender_mac, a.sender_ip), (1, [1, 2, 3, 4, 5, 6], Ipv4Addr::new(10, 0, 0, 9)));
        assert!(a.is_gratuitous());
        assert_eq!(arp(&p[..27], None), Outcome::Ignored(Ignored::OtherEtherType));
    }

    #[test]
    fn vrrp_advertisement() {
        let src = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let dst = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));
        let p = [0x21, 51, 100, 1, 0, 1, 0, 0, 10, 0, 0, 100];
        let want = VrrpEvent {
            src,
            dst,
            version: 2,
            vrid: 51,
            priority: 100,
            addr_count: 1,
            addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100))],
            vlan: None,
        };
        assert_eq!(vrrp(&p, src, dst, None), Outcome::Event(Event::Vrrp(Box::new(want))));
        assert_eq!(vrrp(&p[..7], src, dst, None), Outcome::Ignored(Ignored::OtherIpProto));
    }

    fn addresses_of(outcome: Outcome) -> Vec<IpAddr> {
        match outcome {
            Outcome::Event(Event::Vrrp(v)) => v.addresses,
            other => panic!("not VRRP: {other:?}"),
        }
    }

    #[test]
    fn vrrp_address_lists() {
        let (src, dst) = (IpAddr::from([10, 77, 0, 12]), IpAddr::from([10, 77, 0, 11]));
        // v2 with two addresses and its 8 bytes of (empty) authentication data.
        let mut v2 = vec![0x21, 51, 150, 2, 0, 1, 0, 0, 10, 77, 0, 100, 10, 77, 0, 101];
        v2.extend_from_slice(&[0; 8]);
        let want = vec![IpAddr::from([10, 77, 0, 100]), IpAddr::from([10, 77, 0, 101])];
        assert_eq!(addresses_of(vrrp(&v2, src, dst, None)), want);
        // v3 over IPv4: same layout, no authentication data.
        let v3 = [0x31, 51, 150, 2, 0, 100, 0, 0, 10, 77, 0, 100, 10, 77, 0, 101];
        assert_eq!(addresses_of(vrrp(&v3, src, dst, None)), want);
        // A count larger than the packet keeps the whole addresses present only.
        assert_eq!(addresses_of(vrrp(&v3[..14], src, dst, None)), want[..1]);
        let mut claims_more = v3;
        claims_more[3] = 255;
        assert_eq!(addresses_of(vrrp(&claims_more, src, dst, None)), want);
        // No address at all (seen in the corpus: a v2 advertisement with count 0).
        assert!(addresses_of(vrrp(&v3[..8], src, dst, None)).is_empty());
        // v3 over IPv6: 16-byte addresses.
        let (src6, dst6): (IpAddr, IpAddr) = ("fe80::1".parse().unwrap(), "ff02::12".parse().unwrap());
        let mut v6 = vec![0x31, 7, 100, 1, 0, 100, 0, 0];
        v6.extend_from_slice(&"2001:db8::100".parse::<std::net::Ipv6Addr>().unwrap().octets());
        assert_eq!(addresses_of(vrrp(&v6, src6, dst6, None)), vec!["2001:db8::100".parse::<IpAddr>().unwrap()]);
    }
}
