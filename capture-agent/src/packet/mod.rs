//! Packet decoding from the link layer down to transport payloads.
//!
//! [`Decoder::decode`] takes one captured frame, its link type and its capture time, and
//! calls back with zero or more [`Segment`]s: UDP datagrams, TCP segments (with their
//! sequence number and flags, for the stream reassembler) and SCTP user messages. It is
//! synchronous and reads no clock: the time passed in drives fragment timeouts, so pcap
//! replays are deterministic.
//!
//! Layers, one module each:
//! - `link`: Ethernet with 802.1Q/802.1ad/QinQ tags, PPPoE and MPLS, Linux cooked v1/v2, raw IP,
//!   BSD loopback;
//! - `ip`: IPv4 (options, padding, snap-length truncation) and IPv6 extension headers;
//! - `tunnel`: IP-in-IP, GRE (IP or bridged Ethernet) and ERSPAN I/II/III;
//! - `defrag`: bounded IPv4/IPv6 reassembly (the only place that allocates or hashes);
//! - `transport`: UDP, TCP and SCTP DATA/I-DATA chunks;
//! - `event`: ARP and VRRP, surfaced as [`Event`]s for failover detection.
//!
//! Nothing here panics on any input (a proptest feeds arbitrary bytes to every link
//! type). A frame that yields no segment says why in its [`Outcome`], and every outcome
//! is counted in [`Counters`], by reason. Checksums are not verified: captures taken on
//! the sending host carry offloaded (unfilled) checksums, and dropping those would lose
//! exactly the traffic the agent runs next to.

mod decoder;
mod defrag;
mod event;
mod ip;
mod link;
mod sctp;
mod transport;
mod tunnel;

pub use decoder::Decoder;
pub use defrag::{DefragConfig, DefragStats};
pub use event::{ArpEvent, Event, VrrpEvent};
pub use sctp::SctpStats;

use crate::flow::{Flow, Timestamp};

/// One transport payload found in a frame, borrowed from the frame (or from a
/// reassembled datagram) for the duration of the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Capture time of the frame (for a reassembled datagram: of its last fragment).
    pub ts: Timestamp,
    /// Addresses and ports of the innermost IP/transport headers, innermost VLAN id.
    pub flow: Flow,
    /// The transport payload: UDP data, TCP data (possibly empty), or one SCTP user
    /// message.
    pub payload: &'a [u8],
    /// TCP header fields, for TCP segments only.
    pub tcp: Option<TcpInfo>,
    /// The frame was cut by the snap length (or an IP/UDP length field claims more than
    /// was captured): `payload` is only the part that was captured.
    pub truncated: bool,
}

/// The TCP header fields stream reassembly needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    /// Sequence number of the first payload byte (of the SYN itself, for a SYN).
    pub seq: u32,
    /// Acknowledgment number (meaningful when [`TcpFlags::ACK`] is set).
    pub ack: u32,
    /// Control flags.
    pub flags: TcpFlags,
}

/// TCP control flags, as the low byte of the flags field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from the sender.
    pub const FIN: Self = Self(0x01);
    /// Synchronise sequence numbers.
    pub const SYN: Self = Self(0x02);
    /// Reset the connection.
    pub const RST: Self = Self(0x04);
    /// Push.
    pub const PSH: Self = Self(0x08);
    /// The acknowledgment field is significant.
    pub const ACK: Self = Self(0x10);
    /// The urgent pointer is significant.
    pub const URG: Self = Self(0x20);

    /// True when every flag in `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// What became of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This many segments were passed to the callback (at least one).
    Delivered(u32),
    /// An IP fragment was stored; the datagram is not complete yet.
    FragmentHeld,
    /// An ARP or VRRP packet (no segment).
    Event(Event),
    /// Valid traffic that carries nothing we decode (other protocols).
    Ignored(Ignored),
    /// A malformed or unsupported frame.
    Dropped(DropReason),
}

/// Why a well-formed frame produced no segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ignored {
    /// An ethertype (or loopback address family) other than IPv4, IPv6 or ARP.
    OtherEtherType,
    /// An IP protocol other than UDP, TCP, SCTP, tunnels and VRRP (ICMP, OSPF...).
    OtherIpProto,
    /// IPv6 "no next header", or ESP (encrypted).
    NoPayload,
    /// GRE carrying something other than IP, Ethernet or ERSPAN (or GRE version 1).
    OtherGreProto,
    /// A UDP datagram with no data.
    EmptyUdp,
    /// An SCTP packet without a complete DATA or I-DATA user message (control chunks,
    /// or pieces of a message fragmented across chunks, which we do not reassemble).
    SctpNoData,
}

impl Ignored {
    /// Every variant, in counter order.
    pub const ALL: [Self; 6] = [
        Self::OtherEtherType,
        Self::OtherIpProto,
        Self::NoPayload,
        Self::OtherGreProto,
        Self::EmptyUdp,
        Self::SctpNoData,
    ];

    /// Stable snake_case name, for metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::OtherEtherType => "other_ethertype",
            Self::OtherIpProto => "other_ip_proto",
            Self::NoPayload => "no_payload",
            Self::OtherGreProto => "other_gre_proto",
            Self::EmptyUdp => "empty_udp",
            Self::SctpNoData => "sctp_no_data",
        }
    }
}

/// Why a frame was dropped: the layer that failed and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The capture's link type is not one we decode.
    UnknownLinkType,
    /// Shorter than its link-layer header (Ethernet, cooked, loopback, VLAN tag).
    LinkTruncated,
    /// More VLAN tags, IPv6 extension headers or tunnel levels than we follow.
    TooDeep,
    /// IPv4 header: wrong version, IHL below 5 or beyond the frame, total length below
    /// the header length.
    Ipv4Malformed,
    /// IPv6 fixed header shorter than 40 bytes or wrong version.
    Ipv6Malformed,
    /// An IPv6 extension header runs past the packet.
    Ipv6ExtMalformed,
    /// GRE header truncated, or with the obsolete routing bit set.
    GreMalformed,
    /// ERSPAN header truncated or with an unexpected version.
    ErspanMalformed,
    /// UDP header truncated or length field below 8.
    UdpMalformed,
    /// TCP header truncated or data offset out of range.
    TcpMalformed,
    /// SCTP common header or a chunk header truncated.
    SctpMalformed,
    /// A fragment that cannot be reassembled: cut by the snap length, empty, or nested.
    FragmentMalformed,
    /// A fragment would make the datagram larger than the configured maximum, or not fit
    /// in the total fragment memory budget.
    FragmentTooBig,
    /// Fragments disagree about where the datagram ends, or leave too many holes.
    FragmentConflict,
}

impl DropReason {
    /// Every variant, in counter order.
    pub const ALL: [Self; 14] = [
        Self::UnknownLinkType,
        Self::LinkTruncated,
        Self::TooDeep,
        Self::Ipv4Malformed,
        Self::Ipv6Malformed,
        Self::Ipv6ExtMalformed,
        Self::GreMalformed,
        Self::ErspanMalformed,
        Self::UdpMalformed,
        Self::TcpMalformed,
        Self::SctpMalformed,
        Self::FragmentMalformed,
        Self::FragmentTooBig,
        Self::FragmentConflict,
    ];

    /// Stable snake_case name, for metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::UnknownLinkType => "unknown_link_type",
            Self::LinkTruncated => "link_truncated",
            Self::TooDeep => "too_deep",
            Self::Ipv4Malformed => "ipv4_malformed",
            Self::Ipv6Malformed => "ipv6_malformed",
            Self::Ipv6ExtMalformed => "ipv6_ext_malformed",
            Self::GreMalformed => "gre_malformed",
            Self::ErspanMalformed => "erspan_malformed",
            Self::UdpMalformed => "udp_malformed",
            Self::TcpMalformed => "tcp_malformed",
            Self::SctpMalformed => "sctp_malformed",
            Self::FragmentMalformed => "fragment_malformed",
            Self::FragmentTooBig => "fragment_too_big",
            Self::FragmentConflict => "fragment_conflict",
        }
    }
}

/// Running totals of everything [`Decoder::decode`] saw. Plain integers: the decoder
/// runs on one thread, and the caller exports them as metrics in batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames passed to `decode`.
    pub frames: u64,
    /// UDP segments delivered.
    pub udp: u64,
    /// TCP segments delivered (including empty ones: SYN, FIN, bare ACK).
    pub tcp: u64,
    /// SCTP user messages delivered.
    pub sctp: u64,
    /// Frames cut by the snap length (or with length fields beyond the frame) that were
    /// still decoded, their segments marked `truncated`.
    pub truncated: u64,
    /// IP fragments seen (each also counted as held, reassembled or dropped).
    pub fragments: u64,
    /// Fragments stored while waiting for the rest of their datagram.
    pub fragments_held: u64,
    /// ARP and VRRP events reported.
    pub events: u64,
    ignored: [u64; Ignored::ALL.len()],
    dropped: [u64; DropReason::ALL.len()],
}

impl Counters {
    /// Frames ignored for `reason`.
    pub fn ignored(&self, reason: Ignored) -> u64 {
        self.ignored[reason as usize]
    }

    /// Frames dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize]
    }

    /// Frames dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    fn record(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Delivered(_) => {}
            Outcome::FragmentHeld => self.fragments_held += 1,
            Outcome::Event(_) => self.events += 1,
            Outcome::Ignored(r) => self.ignored[*r as usize] += 1,
            Outcome::Dropped(r) => self.dropped[*r as usize] += 1,
        }
    }
}

/// Reads a big-endian `u16` at `at`. Callers check the length first (it panics otherwise,
/// which the proptest would catch).
#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads a big-endian `u32` at `at`; see [`be16`].
#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_tables_match_discriminants() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        for (i, r) in Ignored::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
