//! HEP (Homer Encapsulation Protocol): decode v1, v2 and v3; encode v3.
//!
//! HEPv3 is `"HEP3"`, a big-endian u16 total length (which also frames a TCP stream),
//! then chunks of `u16 vendor, u16 type, u16 length (header included), payload`.
//! Unknown chunks and other vendors' chunks are skipped. HEPv1/v2 have no magic: byte 0
//! is the version, byte 1 the header length; v2 adds a timestamp and a capture id that
//! Kamailio writes little-endian. See `FACTS.md` for the chunk table.
//!
//! Every length on the wire is untrusted (the collector decodes what anyone sends), so
//! the decoder checks each one against what is left before it slices.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Largest HEP packet: the v3 length field is a u16.
pub const MAX_PACKET_LEN: usize = u16::MAX as usize;

/// Largest payload a compressed chunk (0x10) may inflate to. Bounds memory per packet
/// against decompression bombs; a SIP message is far smaller.
pub const MAX_INFLATED_LEN: usize = 1 << 20;

/// HEP payload type (chunk 0x0b). Unknown values are kept, not rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadType {
    /// 1: SIP.
    Sip,
    /// 5: RTCP report (JSON).
    Rtcp,
    /// 32: RTP.
    Rtp,
    /// 34: RTP/QoS report.
    QosReport,
    /// 35: QoS report (JSON).
    QosJson,
    /// 53: DNS.
    Dns,
    /// 54: ISUP.
    Isup,
    /// 100: log line.
    Log,
    /// Any other value, kept as received.
    Unknown(u8),
}

impl From<u8> for PayloadType {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::Sip,
            5 => Self::Rtcp,
            32 => Self::Rtp,
            34 => Self::QosReport,
            35 => Self::QosJson,
            53 => Self::Dns,
            54 => Self::Isup,
            100 => Self::Log,
            other => Self::Unknown(other),
        }
    }
}

impl From<PayloadType> for u8 {
    fn from(v: PayloadType) -> Self {
        match v {
            PayloadType::Sip => 1,
            PayloadType::Rtcp => 5,
            PayloadType::Rtp => 32,
            PayloadType::QosReport => 34,
            PayloadType::QosJson => 35,
            PayloadType::Dns => 53,
            PayloadType::Isup => 54,
            PayloadType::Log => 100,
            PayloadType::Unknown(raw) => raw,
        }
    }
}

/// One decoded HEP packet. Byte fields borrow from the input; the payload is borrowed
/// unless it arrived compressed (chunk 0x10) and had to be inflated.
///
/// Encoding with [`encode_v3`] emits the chunks in a fixed order (the order heplify and
/// the HEP spec example use), each optional chunk only when it is `Some`, so decoding a
/// packet in that order and encoding it again gives the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hep<'a> {
    /// 1, 2 or 3.
    pub version: u8,
    /// IP protocol of the captured packet (chunk 0x02): 17 UDP, 6 TCP, 132 SCTP.
    pub ip_proto: u8,
    /// Source address (chunk 0x03 or 0x05). The family chunk (0x01) follows from it.
    pub src_ip: IpAddr,
    /// Destination address (chunk 0x04 or 0x06).
    pub dst_ip: IpAddr,
    /// Source port (chunk 0x07).
    pub src_port: u16,
    /// Destination port (chunk 0x08).
    pub dst_port: u16,
    /// Capture time, seconds since the epoch (chunk 0x09).
    pub ts_sec: u32,
    /// Capture time, microseconds part (chunk 0x0a).
    pub ts_usec: u32,
    /// What the payload is (chunk 0x0b).
    pub payload_type: PayloadType,
    /// Capture agent id (chunk 0x0c). HEPv1 has none.
    pub capture_id: Option<u32>,
    /// Keep-alive timer (chunk 0x0d).
    pub keep_alive: Option<u16>,
    /// Authentication key / password (chunk 0x0e). May be present and empty.
    pub auth_key: Option<&'a [u8]>,
    /// Correlation id (chunk 0x11), e.g. the Call-ID or an A-leg id.
    pub correlation_id: Option<&'a [u8]>,
    /// VLAN id (chunk 0x12).
    pub vlan: Option<u16>,
    /// Capture node name (chunk 0x13).
    pub node_name: Option<&'a [u8]>,
    /// Source MAC (chunk 0x14).
    pub src_mac: Option<[u8; 6]>,
    /// Destination MAC (chunk 0x15).
    pub dst_mac: Option<[u8; 6]>,
    /// Ethertype (chunk 0x16).
    pub ethertype: Option<u16>,
    /// TCP flags (chunk 0x17).
    pub tcp_flags: Option<u8>,
    /// IP TOS (chunk 0x18).
    pub tos: Option<u8>,
    /// MOS value (chunk 0x20).
    pub mos: Option<u16>,
    /// R-factor (chunk 0x21).
    pub r_factor: Option<u16>,
    /// Jitter (chunk 0x23).
    pub jitter: Option<u32>,
    /// Transaction type (chunk 0x24).
    pub transaction_type: Option<u8>,
    /// Group id (chunk 0x29).
    pub group_id: Option<&'a [u8]>,
    /// The captured message (chunk 0x0f, or 0x10 inflated).
    pub payload: Cow<'a, [u8]>,
    /// True when the payload arrived in a compressed chunk (0x10).
    pub compressed: bool,
}

impl Default for Hep<'_> {
    fn default() -> Self {
        Self {
            version: 3,
            ip_proto: 17,
            src_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            src_port: 0,
            dst_port: 0,
            ts_sec: 0,
            ts_usec: 0,
            payload_type: PayloadType::Sip,
            capture_id: None,
            keep_alive: None,
            auth_key: None,
            correlation_id: None,
            vlan: None,
            node_name: None,
            src_mac: None,
            dst_mac: None,
            ethertype: None,
            tcp_flags: None,
            tos: None,
            mos: None,
            r_factor: None,
            jitter: None,
            transaction_type: None,
            group_id: None,
            payload: Cow::Borrowed(&[]),
            compressed: false,
        }
    }
}

/// Why bytes were rejected. Small and `Copy`: callers count these by kind at line rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HepError {
    /// Fewer bytes than a header or a length field requires.
    Truncated {
        /// Bytes the length field (or fixed header) requires.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// Neither `"HEP3"`/`"HEP2"` magic nor a v1/v2 version byte.
    BadMagic,
    /// A length field smaller than its own header, or pointing past the packet.
    BadLength {
        /// Offset of the field in the packet.
        offset: usize,
        /// The value found.
        value: usize,
    },
    /// Address family other than 2 (IPv4) or 10 (IPv6), or an address chunk of the wrong size.
    BadAddress,
    /// No payload chunk (0x0f or 0x10).
    NoPayload,
    /// A compressed payload that does not inflate, or inflates past [`MAX_INFLATED_LEN`].
    BadCompression,
    /// The packet to encode would exceed [`MAX_PACKET_LEN`].
    TooLarge {
        /// Size the packet would have had.
        len: usize,
    },
}

impl fmt::Display for HepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { needed, available } => {
                write!(
                    f,
                    "truncated HEP packet: need {needed} bytes, have {available}"
                )
            }
            Self::BadMagic => {
                f.write_str("not a HEP packet: no HEP3 magic and no v1/v2 version byte")
            }
            Self::BadLength { offset, value } => {
                write!(f, "bad HEP length field {value} at offset {offset}")
            }
            Self::BadAddress => {
                f.write_str("bad HEP address: unknown family or wrong address size")
            }
            Self::NoPayload => f.write_str("HEP packet has no payload chunk"),
            Self::BadCompression => {
                f.write_str("HEP compressed payload does not inflate (or is too large)")
            }
            Self::TooLarge { len } => {
                write!(f, "HEP packet of {len} bytes exceeds the 65535-byte limit")
            }
        }
    }
}

impl std::error::Error for HepError {}

/// Length of the HEP packet at the start of `buf`, for framing a stream (TCP).
///
/// `Ok(None)`: not enough bytes yet to know. `Ok(Some(n))`: the packet is `n` bytes long
/// (it may not all be buffered yet: compare with `buf.len()`). `Err`: the stream does not
/// start with a HEP packet (resynchronise or close).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, HepError> {
    const HEADER: usize = 6;
    let magic_len = buf.len().min(4);
    if buf[..magic_len] != b"HEP3"[..magic_len] {
        return Err(HepError::BadMagic);
    }
    if buf.len() < HEADER {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
    if len < HEADER {
        return Err(HepError::BadLength {
            offset: 4,
            value: len,
        });
    }
    Ok(Some(len))
}

/// Decodes one HEP packet (any version). `buf` must be exactly one packet (a datagram,
/// or a frame cut by [`frame_len`]); for v3, bytes past the length field are ignored.
pub fn decode(buf: &[u8]) -> Result<Hep<'_>, HepError> {
    let _ = buf;
    unimplemented!("hep::decode")
}

/// Appends `hep` encoded as HEPv3 to `out` and returns the encoded length.
///
/// Nothing is appended on error. Never allocates beyond growing `out`, so an agent can
/// encode thousands of packets into one reused batch buffer.
pub fn encode_v3(hep: &Hep<'_>, out: &mut Vec<u8>) -> Result<usize, HepError> {
    let _ = (hep, out);
    unimplemented!("hep::encode_v3")
}

#[cfg(test)]
mod frame_tests {
    use super::*;

    #[test]
    fn frames_a_stream() {
        assert_eq!(frame_len(b""), Ok(None));
        assert_eq!(frame_len(b"HE"), Ok(None));
        assert_eq!(frame_len(b"HEP3\x00"), Ok(None));
        assert_eq!(frame_len(b"HEP3\x00\x71rest"), Ok(Some(0x71)));
        assert_eq!(
            frame_len(b"HEP3\x00\x02"),
            Err(HepError::BadLength {
                offset: 4,
                value: 2
            })
        );
        assert_eq!(frame_len(b"GET "), Err(HepError::BadMagic));
        assert_eq!(frame_len(b"X"), Err(HepError::BadMagic));
    }
}
