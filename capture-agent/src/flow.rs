//! Types every decode stage shares: capture time and the addresses of a packet.

use std::net::IpAddr;

/// Capture time of a packet, from the capture source (never from a local clock, so
/// replays are deterministic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub sec: u64,
    /// Microseconds within the second (0..1_000_000).
    pub usec: u32,
}

impl Timestamp {
    /// Builds a timestamp, carrying excess microseconds into seconds.
    pub fn new(sec: u64, usec: u32) -> Self {
        Self { sec: sec + u64::from(usec / 1_000_000), usec: usec % 1_000_000 }
    }

    /// Microseconds since the epoch.
    pub fn as_micros(self) -> u64 {
        self.sec * 1_000_000 + u64::from(self.usec)
    }

    /// Inverse of [`Timestamp::as_micros`].
    pub fn from_micros(us: u64) -> Self {
        Self { sec: us / 1_000_000, usec: (us % 1_000_000) as u32 }
    }
}

/// Transport protocol of a flow (IP protocol numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// 17.
    Udp,
    /// 6.
    Tcp,
    /// 132.
    Sctp,
}

impl Proto {
    /// The IP protocol number, as HEP chunk 0x02 carries it.
    pub fn number(self) -> u8 {
        match self {
            Self::Udp => 17,
            Self::Tcp => 6,
            Self::Sctp => 132,
        }
    }
}

/// One direction of a conversation: who sent a payload to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Sender address.
    pub src: IpAddr,
    /// Receiver address.
    pub dst: IpAddr,
    /// Sender port.
    pub src_port: u16,
    /// Receiver port.
    pub dst_port: u16,
    /// Transport protocol.
    pub proto: Proto,
    /// Innermost 802.1Q VLAN id, if the frame was tagged.
    pub vlan: Option<u16>,
}
