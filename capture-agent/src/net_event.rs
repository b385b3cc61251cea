//! Failover evidence as HEP: gratuitous ARP and VRRP advertisements.
//!
//! A VIP moving between two load balancers shows on the wire before any SIP does: the new
//! master sends gratuitous ARP for the VIP and starts advertising VRRP. The agent sends
//! both to the collector as HEPv3 with payload type 0x70 ([`PayloadType::NetEvent`], this
//! project's own assignment), so the failover lands in the same store, on the same time
//! line and with the same node name as the SIP it affects.
//!
//! # Contract
//!
//! The payload is one compact JSON object, fields in this order, no whitespace:
//!
//! ```text
//! {"event":"garp","ip":"10.77.0.100","mac":"02:00:00:00:00:01","op":"request"}
//! {"event":"vrrp","version":2,"vrid":51,"priority":100,"src":"10.77.0.12","addresses":["10.77.0.100"]}
//! ```
//!
//! - `garp`: an ARP request or reply whose sender IP equals its target IP (an
//!   announcement); `ip` is that address, `mac` the sender hardware address (lower-case
//!   hex), `op` `request` or `reply`. Other ARP is not sent (the decoder counts it).
//! - `vrrp`: a VRRP v2 or v3 advertisement; `src` is the advertising router (IP source),
//!   `addresses` the virtual addresses it carries (possibly none).
//!
//! The HEP envelope has the frame's capture time and the agent's node id, name and auth
//! key, like SIP; ports are 0 and there is no correlation id. Addresses: for `garp`
//! source = destination = the announced IP, IP protocol 0; for `vrrp` the IP source and
//! destination (224.0.0.18, or the unicast peer), IP protocol 112.
//!
//! [`PayloadType::NetEvent`]: wire::hep::PayloadType::NetEvent

use std::fmt::Write;
use std::net::IpAddr;

use crate::packet::{ArpEvent, Event, VrrpEvent};

/// IP protocol number of VRRP, as HEP chunk 0x02 carries it.
const IPPROTO_VRRP: u8 = 112;

/// ARP opcodes (RFC 826).
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

/// The HEP addresses of an event (ports are always 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    /// HEP source address.
    pub src: IpAddr,
    /// HEP destination address.
    pub dst: IpAddr,
    /// HEP IP protocol (chunk 0x02).
    pub ip_proto: u8,
}

/// Writes the JSON payload of `event` into `json` (cleared first) and returns its HEP
/// addresses, or `None` when the event is not one we send (ARP that announces nothing).
pub fn encode(event: &Event, json: &mut String) -> Option<Envelope> {
    json.clear();
    match event {
        Event::Arp(arp) => garp(arp, json),
        Event::Vrrp(vrrp) => advertisement(vrrp, json),
    }
}

fn garp(arp: &ArpEvent, json: &mut String) -> Option<Envelope> {
    let op = match arp.op {
        ARP_REQUEST => "request",
        ARP_REPLY => "reply",
        _ => return None,
    };
    if !arp.is_gratuitous() {
        return None;
    }
    let m = arp.sender_mac;
    write!(
        json,
        r#"{{"event":"garp","ip":"{}","mac":"{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}","op":"{op}"}}"#,
        arp.sender_ip, m[0], m[1], m[2], m[3], m[4], m[5]
    )
    .ok()?;
    let ip = IpAddr::V4(arp.sender_ip);
    Some(Envelope { src: ip, dst: ip, ip_proto: 0 })
}

fn advertisement(v: &VrrpEvent, json: &mut String) -> Option<Envelope> {
    write!(
        json,
        r#"{{"event":"vrrp","version":{},"vrid":{},"priority":{},"src":"{}","addresses":["#,
        v.version, v.vrid, v.priority, v.src
    )
    .ok()?;
    for (i, a) in v.addresses.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        write!(json, r#"{comma}"{a}""#).ok()?;
    }
    json.push_str("]}");
    Some(Envelope { src: v.src, dst: v.dst, ip_proto: IPPROTO_VRRP })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn arp(op: u16, sender: [u8; 4], target: [u8; 4]) -> Event {
        Event::Arp(ArpEvent {
            op,
            sender_mac: [0x02, 0, 0, 0xab, 0xcd, 0x01],
            sender_ip: Ipv4Addr::from(sender),
            target_ip: Ipv4Addr::from(target),
            vlan: None,
        })
    }

    #[test]
    fn gratuitous_arp_json_and_envelope() {
        let mut json = String::new();
        let env = encode(&arp(1, [10, 77, 0, 100], [10, 77, 0, 100]), &mut json).unwrap();
        assert_eq!(json, r#"{"event":"garp","ip":"10.77.0.100","mac":"02:00:00:ab:cd:01","op":"request"}"#);
        let vip = IpAddr::from([10, 77, 0, 100]);
        assert_eq!(env, Envelope { src: vip, dst: vip, ip_proto: 0 });
        encode(&arp(2, [10, 77, 0, 100], [10, 77, 0, 100]), &mut json).unwrap();
        assert_eq!(json, r#"{"event":"garp","ip":"10.77.0.100","mac":"02:00:00:ab:cd:01","op":"reply"}"#);
    }

    #[test]
    fn ordinary_arp_is_not_an_event() {
        let mut json = String::from("stale");
        assert_eq!(encode(&arp(1, [10, 77, 0, 10], [10, 77, 0, 100]), &mut json), None);
        // RARP and other opcodes announce nothing either, even with equal addresses.
        assert_eq!(encode(&arp(3, [10, 77, 0, 100], [10, 77, 0, 100]), &mut json), None);
        assert!(json.is_empty(), "the buffer is cleared");
    }

    fn vrrp(version: u8, addresses: Vec<IpAddr>, dst: [u8; 4]) -> Event {
        Event::Vrrp(Box::new(VrrpEvent {
            src: IpAddr::from([10, 77, 0, 12]),
            dst: IpAddr::from(dst),
            version,
            vrid: 51,
            priority: 100,
            addr_count: addresses.len() as u8,
            addresses,
            vlan: Some(7),
        }))
    }

    #[test]
    fn vrrp_json_and_envelope() {
        let mut json = String::new();
        let env = encode(&vrrp(2, vec![IpAddr::from([10, 77, 0, 100])], [224, 0, 0, 18]), &mut json).unwrap();
        assert_eq!(
            json,
            r#"{"event":"vrrp","version":2,"vrid":51,"priority":100,"src":"10.77.0.12","addresses":["10.77.0.100"]}"#
        );
        assert_eq!(
            env,
            Envelope { src: IpAddr::from([10, 77, 0, 12]), dst: IpAddr::from([224, 0, 0, 18]), ip_proto: 112 }
        );
        let two = vec![IpAddr::from([10, 77, 0, 100]), "2001:db8::1".parse().unwrap()];
        encode(&vrrp(3, two, [10, 77, 0, 11]), &mut json).unwrap();
        assert!(
            json.ends_with(
                r#""version":3,"vrid":51,"priority":100,"src":"10.77.0.12","addresses":["10.77.0.100","2001:db8::1"]}"#
            ),
            "{json}"
        );
        encode(&vrrp(2, Vec::new(), [224, 0, 0, 18]), &mut json).unwrap();
        assert!(json.ends_with(r#""addresses":[]}"#), "{json}");
    }
}
