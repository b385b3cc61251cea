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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use flate2::{Crc, Decompress, FlushDecompress, Status};

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
    /// 112 (0x70): a network event that tells who owns a virtual IP (gratuitous ARP, VRRP
    /// advertisement) as compact JSON. Not in the HEP registry: this project's own
    /// assignment, from the unassigned range, so a failover is visible in the same store
    /// as the SIP it affects. Other HEP receivers keep it as an unknown type.
    NetEvent,
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
            112 => Self::NetEvent,
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
            PayloadType::NetEvent => 112,
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
    /// Neither `"HEP3"` magic nor a v1/v2 version byte.
    BadMagic,
    /// A length field smaller than its own header, pointing past the packet, or giving
    /// a chunk value the wrong size for its type (a 3-byte port, say).
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
                write!(f, "truncated HEP packet: need {needed} bytes, have {available}")
            }
            Self::BadMagic => f.write_str("not a HEP packet: no HEP3 magic and no v1/v2 version byte"),
            Self::BadLength { offset, value } => {
                write!(f, "bad HEP length field {value} at offset {offset}")
            }
            Self::BadAddress => f.write_str("bad HEP address: unknown family or wrong address size"),
            Self::NoPayload => f.write_str("HEP packet has no payload chunk"),
            Self::BadCompression => f.write_str("HEP compressed payload does not inflate (or is too large)"),
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
        return Err(HepError::BadLength { offset: 4, value: len });
    }
    Ok(Some(len))
}

/// Byte layout of the fixed headers, as named ranges so it can be checked against the
/// spec diagrams at a glance.
mod field {
    use std::ops::Range;

    /// HEPv3: `"HEP3"`.
    pub(super) const MAGIC: Range<usize> = 0..4;
    /// HEPv3: total packet length, big-endian, header included.
    pub(super) const LENGTH: Range<usize> = 4..6;
    /// HEPv3: the first chunk.
    pub(super) const CHUNKS: usize = LENGTH.end;

    /// Chunk header, relative to the chunk start: vendor id.
    pub(super) const CHUNK_VENDOR: Range<usize> = 0..2;
    /// Chunk type.
    pub(super) const CHUNK_TYPE: Range<usize> = 2..4;
    /// Chunk length, header included.
    pub(super) const CHUNK_LEN: Range<usize> = 4..6;
    /// Size of the chunk header.
    pub(super) const CHUNK_HEADER: usize = CHUNK_LEN.end;

    /// HEPv1/v2: version byte.
    pub(super) const V12_VERSION: usize = 0;
    /// HEPv1/v2: header length byte.
    pub(super) const V12_HDR_LEN: usize = 1;
    /// HEPv1/v2: address family (2 or 10).
    pub(super) const V12_FAMILY: usize = 2;
    /// HEPv1/v2: IP protocol.
    pub(super) const V12_PROTO: usize = 3;
    /// HEPv1/v2: source port, big-endian.
    pub(super) const V12_SRC_PORT: Range<usize> = 4..6;
    /// HEPv1/v2: destination port, big-endian.
    pub(super) const V12_DST_PORT: Range<usize> = 6..8;
    /// HEPv1/v2: source then destination address (4 + 4 or 16 + 16 bytes).
    pub(super) const V12_ADDRS: usize = V12_DST_PORT.end;

    /// HEPv2 time header, after the addresses: seconds, little-endian.
    pub(super) const V2_SEC: Range<usize> = 0..4;
    /// Microseconds, little-endian.
    pub(super) const V2_USEC: Range<usize> = 4..8;
    /// Capture id, little-endian u16.
    pub(super) const V2_CAPTURE_ID: Range<usize> = 8..10;
    /// Kamailio's `struct hep_timehdr` (u32, u32, u16) is padded to 12 bytes on the
    /// wire, and the payload starts after the padding.
    pub(super) const V2_TIME_LEN: usize = 12;
}

/// Vendor id of the generic chunks in FACTS.md. Chunks of any other vendor are skipped:
/// their types mean something else.
const GENERIC_VENDOR: u16 = 0;

/// Address family values used by HEP (Linux `AF_INET`, `AF_INET6`).
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Declares [`ChunkType`] and its conversions from one list, so the two directions
/// cannot drift apart.
macro_rules! chunk_types {
    ($($(#[$doc:meta])* $name:ident = $raw:literal,)*) => {
        /// Generic (vendor 0) chunk types. Unknown types are kept as data and skipped.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum ChunkType {
            $($(#[$doc])* $name,)*
            /// Any other type, as received.
            Unknown(u16),
        }

        impl From<u16> for ChunkType {
            fn from(raw: u16) -> Self {
                match raw {
                    $($raw => Self::$name,)*
                    other => Self::Unknown(other),
                }
            }
        }

        impl From<ChunkType> for u16 {
            fn from(t: ChunkType) -> Self {
                match t {
                    $(ChunkType::$name => $raw,)*
                    ChunkType::Unknown(raw) => raw,
                }
            }
        }
    };
}

chunk_types! {
    /// u8: 2 or 10.
    IpFamily = 0x01,
    /// u8.
    IpProto = 0x02,
    /// 4 bytes.
    Ipv4Src = 0x03,
    /// 4 bytes.
    Ipv4Dst = 0x04,
    /// 16 bytes.
    Ipv6Src = 0x05,
    /// 16 bytes.
    Ipv6Dst = 0x06,
    /// u16.
    SrcPort = 0x07,
    /// u16.
    DstPort = 0x08,
    /// u32.
    TsSec = 0x09,
    /// u32.
    TsUsec = 0x0a,
    /// u8.
    PayloadType = 0x0b,
    /// u32.
    CaptureId = 0x0c,
    /// u16.
    KeepAlive = 0x0d,
    /// Bytes.
    AuthKey = 0x0e,
    /// Bytes.
    Payload = 0x0f,
    /// zlib, gzip or raw deflate.
    CompressedPayload = 0x10,
    /// Bytes.
    CorrelationId = 0x11,
    /// u16.
    Vlan = 0x12,
    /// Bytes.
    NodeName = 0x13,
    /// 6 bytes.
    SrcMac = 0x14,
    /// 6 bytes.
    DstMac = 0x15,
    /// u16.
    Ethertype = 0x16,
    /// u8.
    TcpFlags = 0x17,
    /// u8.
    Tos = 0x18,
    /// u16.
    Mos = 0x20,
    /// u16.
    RFactor = 0x21,
    /// u32.
    Jitter = 0x23,
    /// u8.
    TransactionType = 0x24,
    /// Bytes.
    GroupId = 0x29,
}

/// A read position in one packet. Every read checks what is left first, so a length
/// taken from the wire can never slice past the end.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8], pos: usize) -> Self {
        Self { buf, pos }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The next `n` bytes, or `Truncated` with the packet-relative end they need.
    fn take(&mut self, n: usize) -> Result<&'a [u8], HepError> {
        let truncated = HepError::Truncated { needed: self.pos.saturating_add(n), available: self.buf.len() };
        let end = self.pos.checked_add(n).ok_or(truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], HepError> {
        let bytes = self.take(N)?;
        // `take` returned exactly N bytes, so this cannot fail; no unwrap all the same.
        bytes.try_into().map_err(|_| HepError::Truncated { needed: N, available: bytes.len() })
    }

    fn u16_be(&mut self) -> Result<u16, HepError> {
        self.array().map(u16::from_be_bytes)
    }

    fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        rest
    }
}

/// Decodes one HEP packet (any version). `buf` must be exactly one packet (a datagram,
/// or a frame cut by [`frame_len`]); for v3, bytes past the length field are ignored.
///
/// HEPv3: chunks of other vendors and unknown chunk types are skipped; a chunk that
/// appears twice keeps its last value. Chunks that are missing leave the
/// [`Hep::default`] value (unspecified addresses, port 0, payload type SIP), because a
/// sender that omits, say, the addresses still delivers a usable message; only a
/// missing payload is an error. A compressed payload (0x10) is inflated (zlib, then
/// gzip, then raw deflate) up to [`MAX_INFLATED_LEN`] and returned owned, with
/// `compressed` set.
///
/// HEPv1/v2: byte 0 is the version (1 or 2). The header length byte must match the
/// address family: 16 (IPv4) or 40 (IPv6) for v1. For v2, Kamailio writes the same
/// 16/40 (it counts only the v1 part) and puts a 12-byte time header (seconds,
/// microseconds, u16 capture id, 2 padding bytes, all little-endian) after it, so both
/// 16/40 and the full 28/52 are accepted and the payload always starts after the time
/// header. The payload runs to the end of `buf`; v1/v2 carry SIP only. An empty v1/v2
/// payload is [`HepError::NoPayload`]: without a length field it cannot be told from a
/// packet cut after its header.
///
/// # Errors
///
/// A [`HepError`] saying why the bytes are not a usable HEP packet. Never panics.
pub fn decode(buf: &[u8]) -> Result<Hep<'_>, HepError> {
    const MAGIC: &[u8; 4] = b"HEP3";
    match buf.first() {
        None => Err(HepError::Truncated { needed: 1, available: 0 }),
        Some(1 | 2) => decode_v12(buf),
        Some(_) if buf.get(field::MAGIC) == Some(&MAGIC[..]) => decode_v3(buf),
        // A prefix of the magic is a packet cut short, not a foreign protocol.
        Some(_) if MAGIC.starts_with(buf) => Err(HepError::Truncated { needed: field::CHUNKS, available: buf.len() }),
        Some(_) => Err(HepError::BadMagic),
    }
}

fn decode_v3(buf: &[u8]) -> Result<Hep<'_>, HepError> {
    let mut head = Cursor::new(buf, field::LENGTH.start);
    let len = usize::from(head.u16_be()?);
    if len < field::CHUNKS {
        return Err(HepError::BadLength { offset: field::LENGTH.start, value: len });
    }
    let packet = buf.get(..len).ok_or(HepError::Truncated { needed: len, available: buf.len() })?;

    let mut hep = Hep { version: 3, ..Hep::default() };
    let mut payload = None;
    let mut chunks = Cursor::new(packet, field::CHUNKS);
    while !chunks.is_empty() {
        let start = chunks.pos;
        let header: [u8; field::CHUNK_HEADER] = chunks.array()?;
        let be16 = |r: Range<usize>| u16::from_be_bytes([header[r.start], header[r.start + 1]]);
        let vendor = be16(field::CHUNK_VENDOR);
        let ty = be16(field::CHUNK_TYPE);
        let chunk_len = usize::from(be16(field::CHUNK_LEN));
        let bad_len = HepError::BadLength { offset: start.saturating_add(field::CHUNK_LEN.start), value: chunk_len };
        let value_len = chunk_len.checked_sub(field::CHUNK_HEADER).ok_or(bad_len)?;
        let value = chunks.take(value_len).map_err(|_| bad_len)?;
        if vendor == GENERIC_VENDOR {
            apply_chunk(&mut hep, &mut payload, ChunkType::from(ty), value, bad_len)?;
        }
    }
    hep.payload = payload.ok_or(HepError::NoPayload)?;
    Ok(hep)
}

/// Stores one generic chunk's value in `hep`. `bad_len` is the error for a value of the
/// wrong size (it names the chunk's length field).
fn apply_chunk<'a>(
    hep: &mut Hep<'a>,
    payload: &mut Option<Cow<'a, [u8]>>,
    ty: ChunkType,
    value: &'a [u8],
    bad_len: HepError,
) -> Result<(), HepError> {
    // Fixed-size values must have exactly their size: a shorter or longer one means the
    // sender disagrees with us about the chunk, and guessing would store wrong data.
    fn fixed<const N: usize>(value: &[u8], err: HepError) -> Result<[u8; N], HepError> {
        value.try_into().map_err(|_| err)
    }
    let u8_of = |v: &[u8]| fixed::<1>(v, bad_len).map(|[b]| b);
    let u16_of = |v: &[u8]| fixed(v, bad_len).map(u16::from_be_bytes);
    let u32_of = |v: &[u8]| fixed(v, bad_len).map(u32::from_be_bytes);
    let v4 = |v: &[u8]| fixed::<4>(v, HepError::BadAddress).map(|a| IpAddr::V4(Ipv4Addr::from(a)));
    let v6 = |v: &[u8]| fixed::<16>(v, HepError::BadAddress).map(|a| IpAddr::V6(Ipv6Addr::from(a)));

    match ty {
        // The family follows from the address chunks; it is only checked for sanity.
        ChunkType::IpFamily => match u8_of(value)? {
            AF_INET | AF_INET6 => {}
            _ => return Err(HepError::BadAddress),
        },
        ChunkType::IpProto => hep.ip_proto = u8_of(value)?,
        ChunkType::Ipv4Src => hep.src_ip = v4(value)?,
        ChunkType::Ipv4Dst => hep.dst_ip = v4(value)?,
        ChunkType::Ipv6Src => hep.src_ip = v6(value)?,
        ChunkType::Ipv6Dst => hep.dst_ip = v6(value)?,
        ChunkType::SrcPort => hep.src_port = u16_of(value)?,
        ChunkType::DstPort => hep.dst_port = u16_of(value)?,
        ChunkType::TsSec => hep.ts_sec = u32_of(value)?,
        ChunkType::TsUsec => hep.ts_usec = u32_of(value)?,
        ChunkType::PayloadType => hep.payload_type = PayloadType::from(u8_of(value)?),
        ChunkType::CaptureId => hep.capture_id = Some(u32_of(value)?),
        ChunkType::KeepAlive => hep.keep_alive = Some(u16_of(value)?),
        ChunkType::AuthKey => hep.auth_key = Some(value),
        ChunkType::Payload => {
            *payload = Some(Cow::Borrowed(value));
            hep.compressed = false;
        }
        ChunkType::CompressedPayload => {
            *payload = Some(Cow::Owned(inflate(value)?));
            hep.compressed = true;
        }
        ChunkType::CorrelationId => hep.correlation_id = Some(value),
        ChunkType::Vlan => hep.vlan = Some(u16_of(value)?),
        ChunkType::NodeName => hep.node_name = Some(value),
        ChunkType::SrcMac => hep.src_mac = Some(fixed(value, bad_len)?),
        ChunkType::DstMac => hep.dst_mac = Some(fixed(value, bad_len)?),
        ChunkType::Ethertype => hep.ethertype = Some(u16_of(value)?),
        ChunkType::TcpFlags => hep.tcp_flags = Some(u8_of(value)?),
        ChunkType::Tos => hep.tos = Some(u8_of(value)?),
        ChunkType::Mos => hep.mos = Some(u16_of(value)?),
        ChunkType::RFactor => hep.r_factor = Some(u16_of(value)?),
        ChunkType::Jitter => hep.jitter = Some(u32_of(value)?),
        ChunkType::TransactionType => hep.transaction_type = Some(u8_of(value)?),
        ChunkType::GroupId => hep.group_id = Some(value),
        ChunkType::Unknown(_) => {}
    }
    Ok(())
}

fn decode_v12(buf: &[u8]) -> Result<Hep<'_>, HepError> {
    let mut cur = Cursor::new(buf, 0);
    let fixed: [u8; field::V12_SRC_PORT.start] = cur.array()?;
    let version = fixed[field::V12_VERSION];
    let hdr_len = fixed[field::V12_HDR_LEN];
    let family = fixed[field::V12_FAMILY];
    let ip_proto = fixed[field::V12_PROTO];
    let addr_len = match family {
        AF_INET => 2 * 4,
        AF_INET6 => 2 * 16,
        _ => return Err(HepError::BadAddress),
    };
    // Check the header length before reading on, so a wrong one is reported as such
    // even when the packet is also short.
    let base_len = field::V12_ADDRS + addr_len;
    let full_len = if version == 2 { base_len + field::V2_TIME_LEN } else { base_len };
    let hdr_len = usize::from(hdr_len);
    if hdr_len != base_len && hdr_len != full_len {
        return Err(HepError::BadLength { offset: field::V12_HDR_LEN, value: hdr_len });
    }
    debug_assert_eq!(cur.pos, field::V12_SRC_PORT.start);
    let src_port = cur.u16_be()?;
    let dst_port = cur.u16_be()?;
    let (src_ip, dst_ip) = if family == AF_INET {
        let src: [u8; 4] = cur.array()?;
        let dst: [u8; 4] = cur.array()?;
        (IpAddr::from(src), IpAddr::from(dst))
    } else {
        let src: [u8; 16] = cur.array()?;
        let dst: [u8; 16] = cur.array()?;
        (IpAddr::from(src), IpAddr::from(dst))
    };
    let mut hep = Hep { version, ip_proto, src_ip, dst_ip, src_port, dst_port, ..Hep::default() };
    if version == 2 {
        // Kamailio writes the time header in host order, little-endian in practice
        // (checked against its capture: the seconds match the pcap timestamps).
        let time: [u8; field::V2_TIME_LEN] = cur.array()?;
        let le32 = |r: Range<usize>| {
            u32::from_le_bytes([time[r.start], time[r.start + 1], time[r.start + 2], time[r.start + 3]])
        };
        hep.ts_sec = le32(field::V2_SEC);
        hep.ts_usec = le32(field::V2_USEC);
        let id = field::V2_CAPTURE_ID.start;
        hep.capture_id = Some(u32::from(u16::from_le_bytes([time[id], time[id + 1]])));
    }
    let payload = cur.rest();
    if payload.is_empty() {
        return Err(HepError::NoPayload);
    }
    hep.payload = Cow::Borrowed(payload);
    Ok(hep)
}

/// Why one inflate attempt failed: a bomb is final, a format error lets the next
/// format be tried.
enum InflateError {
    Format,
    TooLarge,
}

/// Inflates a 0x10 payload. FACTS.md says zlib/gzip; raw deflate is tried last because
/// some senders strip the zlib wrapper. The output never exceeds [`MAX_INFLATED_LEN`]
/// and its buffer never grows past that plus one byte, whatever the input claims.
fn inflate(data: &[u8]) -> Result<Vec<u8>, HepError> {
    type Attempt = fn(&[u8]) -> Result<Vec<u8>, InflateError>;
    let attempts: [Attempt; 3] = [
        |d| inflate_stream(d, true).map(|(out, _)| out),
        inflate_gzip,
        |d| inflate_stream(d, false).map(|(out, _)| out),
    ];
    for attempt in attempts {
        match attempt(data) {
            Ok(out) => return Ok(out),
            Err(InflateError::TooLarge) => return Err(HepError::BadCompression),
            Err(InflateError::Format) => {}
        }
    }
    Err(HepError::BadCompression)
}

/// Inflates one zlib (`zlib = true`) or raw deflate stream from the start of `input`.
/// Returns the output and how many input bytes the stream used. The stream must end
/// properly: a cut-off stream is a format error, not a short payload.
fn inflate_stream(input: &[u8], zlib: bool) -> Result<(Vec<u8>, usize), InflateError> {
    // Room for the whole output in one step for typical SIP (compression ratio about
    // 3-5), without trusting the input: growth is capped below.
    const FIRST_GUESS_RATIO: usize = 4;
    const MIN_GROW: usize = 4096;
    // One byte over the cap: an output that reaches it is too large, while one that
    // ends exactly at the cap is still accepted.
    const LIMIT: usize = MAX_INFLATED_LEN + 1;

    let mut state = Decompress::new(zlib);
    let mut out = Vec::new();
    loop {
        let used = usize::try_from(state.total_in()).map_err(|_| InflateError::Format)?;
        let rest = input.get(used..).ok_or(InflateError::Format)?;
        if out.len() == out.capacity() {
            let room = LIMIT.saturating_sub(out.len());
            if room == 0 {
                return Err(InflateError::TooLarge);
            }
            let grow = out.len().max(rest.len().saturating_mul(FIRST_GUESS_RATIO)).max(MIN_GROW).min(room);
            out.reserve_exact(grow);
        }
        let before = (state.total_in(), state.total_out());
        // `None`, not `Finish`: with `Finish` the backend expects the whole output to
        // fit in one call and fails the stream otherwise, but we grow in steps.
        match state.decompress_vec(rest, &mut out, FlushDecompress::None) {
            Ok(Status::StreamEnd) => break,
            Ok(Status::Ok | Status::BufError) => {
                // No progress with output room left: the input ran out mid-stream.
                let stuck = before == (state.total_in(), state.total_out());
                if stuck && out.len() < out.capacity() {
                    return Err(InflateError::Format);
                }
            }
            Err(_) => return Err(InflateError::Format),
        }
        if out.len() > MAX_INFLATED_LEN {
            return Err(InflateError::TooLarge);
        }
    }
    if out.len() > MAX_INFLATED_LEN {
        return Err(InflateError::TooLarge);
    }
    let used = usize::try_from(state.total_in()).map_err(|_| InflateError::Format)?;
    Ok((out, used))
}

/// Inflates a gzip member (RFC 1952): skips the header, inflates the raw deflate body
/// and checks the CRC-32 and size trailer. Only the first member is read.
fn inflate_gzip(data: &[u8]) -> Result<Vec<u8>, InflateError> {
    const ID: [u8; 2] = [0x1f, 0x8b];
    const CM_DEFLATE: u8 = 8;
    const FHCRC: u8 = 1 << 1;
    const FEXTRA: u8 = 1 << 2;
    const FNAME: u8 = 1 << 3;
    const FCOMMENT: u8 = 1 << 4;
    /// MTIME (4), XFL (1), OS (1).
    const FIXED_REST: usize = 6;
    const TRAILER: usize = 8;

    let fmt = |_| InflateError::Format;
    let mut cur = Cursor::new(data, 0);
    let [id1, id2, cm, flags] = cur.array::<4>().map_err(fmt)?;
    if [id1, id2] != ID || cm != CM_DEFLATE {
        return Err(InflateError::Format);
    }
    cur.take(FIXED_REST).map_err(fmt)?;
    if flags & FEXTRA != 0 {
        let xlen = u16::from_le_bytes(cur.array().map_err(fmt)?);
        cur.take(usize::from(xlen)).map_err(fmt)?;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            // Zero-terminated string.
            let rest = cur.buf.get(cur.pos..).unwrap_or_default();
            let nul = memchr::memchr(0, rest).ok_or(InflateError::Format)?;
            cur.take(nul + 1).map_err(fmt)?;
        }
    }
    if flags & FHCRC != 0 {
        cur.take(2).map_err(fmt)?;
    }
    let body = cur.rest();
    let (out, used) = inflate_stream(body, false)?;
    let mut trailer = Cursor::new(body, used);
    let crc = u32::from_le_bytes(trailer.array().map_err(fmt)?);
    let size = u32::from_le_bytes(trailer.array().map_err(fmt)?);
    debug_assert_eq!(trailer.pos - used, TRAILER);
    let mut actual = Crc::new();
    actual.update(&out);
    // ISIZE is the length mod 2^32; our output is far below that.
    if actual.sum() != crc || u32::try_from(out.len()).ok() != Some(size) {
        return Err(InflateError::Format);
    }
    Ok(out)
}

/// Calls `f` with every chunk `encode_v3` writes for `hep`, in wire order: ascending
/// chunk type, each optional chunk only when set. That is the order of the HEP spec
/// example, the heplify-server test packet, Kamailio's `siptrace` output and our corpus
/// generator (0x11 and 0x13 after the payload), so all of them re-encode byte for byte.
///
/// Shared by the sizing pass and the writing pass of [`encode_v3`], so the two cannot
/// disagree.
fn for_each_chunk<E>(
    hep: &Hep<'_>,
    payload: Payload<'_>,
    mut f: impl FnMut(ChunkType, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let family = match hep.src_ip {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    };
    f(ChunkType::IpFamily, &[family])?;
    f(ChunkType::IpProto, &[hep.ip_proto])?;
    match hep.src_ip {
        IpAddr::V4(a) => f(ChunkType::Ipv4Src, &a.octets())?,
        IpAddr::V6(a) => f(ChunkType::Ipv6Src, &a.octets())?,
    }
    match hep.dst_ip {
        IpAddr::V4(a) => f(ChunkType::Ipv4Dst, &a.octets())?,
        IpAddr::V6(a) => f(ChunkType::Ipv6Dst, &a.octets())?,
    }
    f(ChunkType::SrcPort, &hep.src_port.to_be_bytes())?;
    f(ChunkType::DstPort, &hep.dst_port.to_be_bytes())?;
    f(ChunkType::TsSec, &hep.ts_sec.to_be_bytes())?;
    f(ChunkType::TsUsec, &hep.ts_usec.to_be_bytes())?;
    f(ChunkType::PayloadType, &[u8::from(hep.payload_type)])?;
    if let Some(v) = hep.capture_id {
        f(ChunkType::CaptureId, &v.to_be_bytes())?;
    }
    if let Some(v) = hep.keep_alive {
        f(ChunkType::KeepAlive, &v.to_be_bytes())?;
    }
    if let Some(v) = hep.auth_key {
        f(ChunkType::AuthKey, v)?;
    }
    match payload {
        Payload::Plain => f(ChunkType::Payload, &hep.payload)?,
        Payload::Deflated(bytes) => f(ChunkType::CompressedPayload, bytes)?,
    }
    if let Some(v) = hep.correlation_id {
        f(ChunkType::CorrelationId, v)?;
    }
    if let Some(v) = hep.vlan {
        f(ChunkType::Vlan, &v.to_be_bytes())?;
    }
    if let Some(v) = hep.node_name {
        f(ChunkType::NodeName, v)?;
    }
    if let Some(v) = hep.src_mac {
        f(ChunkType::SrcMac, &v)?;
    }
    if let Some(v) = hep.dst_mac {
        f(ChunkType::DstMac, &v)?;
    }
    if let Some(v) = hep.ethertype {
        f(ChunkType::Ethertype, &v.to_be_bytes())?;
    }
    if let Some(v) = hep.tcp_flags {
        f(ChunkType::TcpFlags, &[v])?;
    }
    if let Some(v) = hep.tos {
        f(ChunkType::Tos, &[v])?;
    }
    if let Some(v) = hep.mos {
        f(ChunkType::Mos, &v.to_be_bytes())?;
    }
    if let Some(v) = hep.r_factor {
        f(ChunkType::RFactor, &v.to_be_bytes())?;
    }
    if let Some(v) = hep.jitter {
        f(ChunkType::Jitter, &v.to_be_bytes())?;
    }
    if let Some(v) = hep.transaction_type {
        f(ChunkType::TransactionType, &[v])?;
    }
    if let Some(v) = hep.group_id {
        f(ChunkType::GroupId, v)?;
    }
    Ok(())
}

/// Appends `hep` encoded as HEPv3 to `out` and returns the encoded length.
///
/// Nothing is appended on error. Never allocates beyond growing `out`, so an agent can
/// encode thousands of packets into one reused batch buffer.
///
/// Chunks are written in ascending type order, each optional chunk only when it is
/// `Some`; the family chunk (0x01) follows from `src_ip`, and `version` is ignored
/// (this always writes v3). The payload always goes out uncompressed in chunk 0x0f,
/// even when `compressed` is set: `payload` already holds the inflated bytes.
///
/// # Errors
///
/// [`HepError::TooLarge`] when the packet would exceed [`MAX_PACKET_LEN`].
pub fn encode_v3(hep: &Hep<'_>, out: &mut Vec<u8>) -> Result<usize, HepError> {
    // Always plain 0x0f, even when the payload arrived compressed: we hold it inflated,
    // and recompressing would cost CPU on the agent's hot path for little gain.
    encode_with(hep, Payload::Plain, out)
}

/// Like [`encode_v3`], but the payload goes zlib-compressed in chunk 0x10, through
/// `scratch` (reused between calls). For messages too large for a plain HEP packet:
/// a 64 KiB SIP body (large SDP, multipart, presence documents) is mostly text and
/// shrinks several times, so it still reaches the collector whole.
///
/// # Errors
///
/// [`HepError::TooLarge`] when even the compressed packet exceeds [`MAX_PACKET_LEN`].
pub fn encode_v3_compressed(hep: &Hep<'_>, out: &mut Vec<u8>, scratch: &mut Vec<u8>) -> Result<usize, HepError> {
    use std::io::Write;
    scratch.clear();
    let mut z = flate2::write::ZlibEncoder::new(std::mem::take(scratch), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    z.write_all(&hep.payload).expect("write to Vec");
    *scratch = z.finish().expect("write to Vec");
    encode_with(hep, Payload::Deflated(scratch), out)
}

/// Which payload chunk to write.
#[derive(Clone, Copy)]
enum Payload<'a> {
    /// `hep.payload` as is, in chunk 0x0f.
    Plain,
    /// These compressed bytes, in chunk 0x10.
    Deflated(&'a [u8]),
}

fn encode_with(hep: &Hep<'_>, payload: Payload<'_>, out: &mut Vec<u8>) -> Result<usize, HepError> {
    // Size first, so an oversized packet leaves `out` untouched and a fitting one
    // grows it at most once.
    let mut len = field::CHUNKS;
    for_each_chunk(hep, payload, |_, value| {
        len = len.saturating_add(field::CHUNK_HEADER).saturating_add(value.len());
        Ok::<(), HepError>(())
    })?;
    if len > MAX_PACKET_LEN {
        return Err(HepError::TooLarge { len });
    }

    let start = out.len();
    out.reserve(len);
    let written = write_v3(hep, payload, out, start);
    match written {
        Ok(n) => {
            debug_assert_eq!(n, len, "sizing and writing passes disagree");
            Ok(n)
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// The writing pass of [`encode_v3`]: each length field is reserved, the body written,
/// then the length filled in from what was actually written.
fn write_v3(hep: &Hep<'_>, payload: Payload<'_>, out: &mut Vec<u8>, start: usize) -> Result<usize, HepError> {
    out.extend_from_slice(b"HEP3");
    let len_at = out.len();
    out.extend_from_slice(&[0; 2]);
    for_each_chunk(hep, payload, |ty, value| {
        let chunk_start = out.len();
        out.extend_from_slice(&GENERIC_VENDOR.to_be_bytes());
        out.extend_from_slice(&u16::from(ty).to_be_bytes());
        let chunk_len_at = out.len();
        out.extend_from_slice(&[0; 2]);
        out.extend_from_slice(value);
        let chunk_len = out.len() - chunk_start;
        fill_len(out, chunk_len_at, chunk_len)
    })?;
    let len = out.len() - start;
    fill_len(out, len_at, len)?;
    Ok(len)
}

/// Writes `len` as a big-endian u16 into the two bytes reserved at `at`.
fn fill_len(out: &mut [u8], at: usize, len: usize) -> Result<(), HepError> {
    let value = u16::try_from(len).map_err(|_| HepError::TooLarge { len })?;
    let slot = out.get_mut(at..at + 2).ok_or(HepError::TooLarge { len })?;
    slot.copy_from_slice(&value.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod frame_tests {
    use super::*;

    #[test]
    fn oversized_payload_goes_compressed() {
        let body: Vec<u8> = b"a=candidate:1 1 UDP 2130706431 192.0.2.1 5000 typ host\r\n".repeat(2000);
        let hep = Hep { payload: Cow::Borrowed(&body), ..Hep::default() };
        let mut out = Vec::new();
        assert!(matches!(encode_v3(&hep, &mut out), Err(HepError::TooLarge { .. })));
        let mut scratch = Vec::new();
        let n = encode_v3_compressed(&hep, &mut out, &mut scratch).unwrap();
        assert_eq!(n, out.len());
        assert!(n < MAX_PACKET_LEN);
        let back = decode(&out).unwrap();
        assert!(back.compressed);
        assert_eq!(&*back.payload, &body[..]);
    }

    #[test]
    fn frames_a_stream() {
        assert_eq!(frame_len(b""), Ok(None));
        assert_eq!(frame_len(b"HE"), Ok(None));
        assert_eq!(frame_len(b"HEP3\x00"), Ok(None));
        assert_eq!(frame_len(b"HEP3\x00\x71rest"), Ok(Some(0x71)));
        assert_eq!(frame_len(b"HEP3\x00\x02"), Err(HepError::BadLength { offset: 4, value: 2 }));
        assert_eq!(frame_len(b"GET "), Err(HepError::BadMagic));
        assert_eq!(frame_len(b"X"), Err(HepError::BadMagic));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::Ipv6Addr;

    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::{Compression, GzBuilder};
    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;

    // Fixtures: see wire/tests/data/README.md for where each one comes from.
    const SPEC_EXAMPLE: &[u8] = include_bytes!("../tests/data/hep3_spec_example_hep_go.bin");
    const HEPLIFY: &[u8] = include_bytes!("../tests/data/heplify_server_decoder_test_hepPacket.bin");
    const KAMAILIO_V3: &[u8] = include_bytes!("../tests/data/kamailio_siptrace_hep3_udp.bin");
    const KAMAILIO_V2: &[u8] = include_bytes!("../tests/data/kamailio_siptrace_hepv2_invite.bin");
    const SYN_AUTH_KEY: &[u8] = include_bytes!("../tests/data/synthetic_hep3_auth_key.bin");
    const SYN_NODE_NAME: &[u8] = include_bytes!("../tests/data/synthetic_hep3_node_name.bin");
    const SYN_VENDOR: &[u8] = include_bytes!("../tests/data/synthetic_hep3_vendor_chunk.bin");
    const SYN_IPV6_TCP: &[u8] = include_bytes!("../tests/data/synthetic_hep3_ipv6_tcp.bin");
    const SYN_CID: &[u8] = include_bytes!("../tests/data/synthetic_hep3_rtcp_correlation_id.bin");
    const SYN_V2: &[u8] = include_bytes!("../tests/data/synthetic_hepv2.bin");

    /// v3 packets whose chunks are all generic and in our encoding order: they must
    /// re-encode byte for byte.
    const ROUND_TRIP: &[(&str, &[u8])] = &[
        ("spec example", SPEC_EXAMPLE),
        ("heplify", HEPLIFY),
        ("kamailio v3", KAMAILIO_V3),
        ("auth key", SYN_AUTH_KEY),
        ("node name", SYN_NODE_NAME),
        ("ipv6 tcp", SYN_IPV6_TCP),
        ("correlation id", SYN_CID),
    ];

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::from(a)
    }

    /// Builds a HEPv3 packet from (vendor, type, value) chunks, lengths computed.
    fn packet(chunks: &[(u16, u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for &(vendor, ty, value) in chunks {
            body.extend_from_slice(&vendor.to_be_bytes());
            body.extend_from_slice(&ty.to_be_bytes());
            let len = u16::try_from(6 + value.len()).expect("test chunk fits");
            body.extend_from_slice(&len.to_be_bytes());
            body.extend_from_slice(value);
        }
        let mut out = b"HEP3".to_vec();
        let len = u16::try_from(6 + body.len()).expect("test packet fits");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn encode(hep: &Hep<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        let n = encode_v3(hep, &mut out).expect("encodes");
        assert_eq!(n, out.len());
        out
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::best());
        e.write_all(data).expect("in-memory write");
        e.finish().expect("in-memory write")
    }

    #[test]
    fn decodes_spec_example() {
        let h = decode(SPEC_EXAMPLE).expect("decodes");
        assert_eq!(h.version, 3);
        assert_eq!(h.ip_proto, 17);
        assert_eq!(h.src_ip, v4([212, 202, 0, 1]));
        assert_eq!(h.dst_ip, v4([82, 116, 0, 211]));
        assert_eq!((h.src_port, h.dst_port), (12010, 5060));
        assert_eq!((h.ts_sec, h.ts_usec), (1_313_440_459, 120_000));
        assert_eq!(h.payload_type, PayloadType::Sip);
        assert_eq!(h.capture_id, Some(228));
        assert_eq!(h.auth_key, None);
        assert_eq!(&h.payload[..], b"INVITE sip:bob");
        assert!(matches!(h.payload, Cow::Borrowed(_)));
        assert!(!h.compressed);
        let rest = Hep { payload: Cow::Borrowed(&[]), ..h };
        // Everything not in the packet keeps its default.
        assert_eq!(
            rest,
            Hep {
                ip_proto: 17,
                src_ip: v4([212, 202, 0, 1]),
                dst_ip: v4([82, 116, 0, 211]),
                src_port: 12010,
                dst_port: 5060,
                ts_sec: 1_313_440_459,
                ts_usec: 120_000,
                capture_id: Some(228),
                ..Hep::default()
            }
        );
    }

    #[test]
    fn decodes_heplify_packet() {
        let h = decode(HEPLIFY).expect("decodes");
        assert_eq!(h.version, 3);
        assert_eq!(h.ip_proto, 17);
        assert_eq!(h.src_ip, v4([192, 168, 247, 250]));
        assert_eq!(h.dst_ip, v4([192, 168, 245, 250]));
        assert_eq!((h.src_port, h.dst_port), (5060, 5060));
        assert_eq!((h.ts_sec, h.ts_usec), (1_520_606_104, 119_540));
        assert_eq!(h.payload_type, PayloadType::Sip);
        assert_eq!(h.capture_id, Some(0));
        // Present and empty is not the same as absent: it must survive a round trip.
        assert_eq!(h.auth_key, Some(&b""[..]));
        assert_eq!(h.payload.len(), 673);
        assert!(h.payload.starts_with(b"SIP/2.0 200 OK\r\n"));
        assert!(h.payload.ends_with(b"m=audio 0 RTP/AVP 8"));
    }

    #[test]
    fn decodes_synthetic_variants() {
        let h = decode(SYN_AUTH_KEY).expect("auth key");
        assert_eq!(h.auth_key, Some(&b"myHep"[..]));
        assert_eq!(h.capture_id, Some(2001));
        assert_eq!((h.ts_sec, h.ts_usec), (1_700_000_000, 0));
        assert!(h.payload.starts_with(b"INVITE "));

        let h = decode(SYN_NODE_NAME).expect("node name");
        assert_eq!(h.node_name, Some(&b"kamailio-lb-1"[..]));
        assert_eq!(h.ts_usec, 10_000);
        assert!(h.payload.starts_with(b"SIP/2.0 "));

        let h = decode(SYN_IPV6_TCP).expect("ipv6");
        assert_eq!(h.ip_proto, 6);
        assert_eq!(h.src_ip, IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)));
        assert_eq!(h.dst_ip, IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x20)));
        assert_eq!((h.src_port, h.dst_port), (5061, 5060));

        let h = decode(SYN_CID).expect("correlation id");
        assert_eq!(h.payload_type, PayloadType::Rtcp);
        assert_eq!(h.correlation_id, Some(&b"hep-1@192.0.2.10"[..]));
        assert_eq!((h.src_port, h.dst_port), (49171, 40001));
        assert!(h.payload.starts_with(b"{\"sender_information\""));

        let h = decode(KAMAILIO_V3).expect("kamailio v3");
        assert_eq!(h.capture_id, Some(2001));
        assert_eq!(h.src_ip, v4([127, 0, 0, 1]));
    }

    #[test]
    fn vectors_round_trip_byte_for_byte() {
        for &(name, bin) in ROUND_TRIP {
            let h = decode(bin).unwrap_or_else(|e| panic!("{name}: {e}"));
            // Junk before: encode must append, not overwrite or clear.
            let mut out = vec![0xa5; 7];
            let n = encode_v3(&h, &mut out).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(n, bin.len(), "{name}");
            assert_eq!(&out[..7], &[0xa5; 7], "{name}");
            assert_eq!(&out[7..], bin, "{name}");
        }
    }

    #[test]
    fn other_vendor_chunk_is_skipped() {
        let h = decode(SYN_VENDOR).expect("decodes");
        assert_eq!(h.ts_usec, 20_000);
        assert!(h.payload.starts_with(b"SIP/2.0 "));
        // The vendor chunk (last 21 bytes) is all that the re-encoding drops.
        let mut expected = SYN_VENDOR[..SYN_VENDOR.len() - 21].to_vec();
        let len = u16::try_from(expected.len()).expect("fits");
        expected[4..6].copy_from_slice(&len.to_be_bytes());
        assert_eq!(encode(&h), expected);

        // A vendor chunk that reuses a generic type number must not be read as one,
        // and an unknown generic type is skipped too.
        let bin = packet(&[
            (0, 0x0f, b"real"),
            (7, 0x0f, b"vendor payload"),
            (7, 0x03, b"xx"),
            (0, 0x42, b"unknown generic"),
        ]);
        let h = decode(&bin).expect("decodes");
        assert_eq!(&h.payload[..], b"real");
        assert_eq!(h.src_ip, Hep::default().src_ip);
    }

    #[test]
    fn decodes_kamailio_hepv2() {
        let h = decode(KAMAILIO_V2).expect("decodes");
        assert_eq!(h.version, 2);
        assert_eq!(h.ip_proto, 17);
        assert_eq!(h.src_ip, v4([127, 0, 0, 1]));
        assert_eq!(h.dst_ip, v4([127, 0, 0, 2]));
        assert_eq!((h.src_port, h.dst_port), (5060, 5060));
        // Matches the pcap record time of the datagram: 1795311989.097218.
        assert_eq!((h.ts_sec, h.ts_usec), (1_795_311_989, 97_199));
        assert_eq!(h.capture_id, Some(2001));
        assert_eq!(h.payload_type, PayloadType::Sip);
        assert_eq!(h.payload.len(), KAMAILIO_V2.len() - 28);
        assert!(h.payload.starts_with(b"INVITE sip:service@127.0.0.2:506"));

        let h = decode(SYN_V2).expect("decodes");
        assert_eq!(h.version, 2);
        assert_eq!(h.src_ip, v4([192, 0, 2, 10]));
        assert_eq!(h.dst_ip, v4([198, 51, 100, 20]));
        assert_eq!((h.ts_sec, h.ts_usec), (1_700_000_003, 0));
        assert_eq!(h.capture_id, Some(2001));
        assert!(h.payload.starts_with(b"INVITE sip:bob@"));
    }

    #[test]
    fn v2_reencodes_as_v3() {
        let h = decode(KAMAILIO_V2).expect("decodes");
        let bin = encode(&h);
        let back = decode(&bin).expect("decodes");
        assert_eq!(back, Hep { version: 3, ..h });
    }

    #[test]
    fn decodes_v1_and_v2_headers() {
        let mut v1 = vec![1, 16, 2, 17, 0x13, 0xc4, 0x13, 0xc5, 10, 0, 0, 1, 10, 0, 0, 2];
        v1.extend_from_slice(b"OPTIONS sip:x SIP/2.0\r\n\r\n");
        let h = decode(&v1).expect("v1");
        assert_eq!(h.version, 1);
        assert_eq!((h.src_port, h.dst_port), (5060, 5061));
        assert_eq!((h.src_ip, h.dst_ip), (v4([10, 0, 0, 1]), v4([10, 0, 0, 2])));
        assert_eq!(h.capture_id, None);
        assert_eq!((h.ts_sec, h.ts_usec), (0, 0));
        assert_eq!(&h.payload[..], b"OPTIONS sip:x SIP/2.0\r\n\r\n");

        // IPv6, v2 with the full header length (52) rather than Kamailio's 40.
        let mut v2 = vec![2, 52, 10, 6, 0, 1, 0, 2];
        v2.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v2.extend_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
        v2.extend_from_slice(&7u32.to_le_bytes());
        v2.extend_from_slice(&8u32.to_le_bytes());
        v2.extend_from_slice(&9u16.to_le_bytes());
        v2.extend_from_slice(&[0, 0]);
        v2.extend_from_slice(b"x");
        let h = decode(&v2).expect("v2 ipv6");
        assert_eq!(h.ip_proto, 6);
        assert_eq!(h.src_ip, IpAddr::from(Ipv6Addr::LOCALHOST));
        assert_eq!((h.ts_sec, h.ts_usec, h.capture_id), (7, 8, Some(9)));
        assert_eq!(&h.payload[..], b"x");
        v2[1] = 40;
        assert!(decode(&v2).is_ok(), "Kamailio-style header length");

        // The header length must fit the version and family.
        for (version, hl, family) in [(1, 28, 2), (1, 16, 10), (2, 40, 2), (2, 17, 2), (1, 0, 2)] {
            let mut b = v1.clone();
            b[0] = version;
            b[1] = hl;
            b[2] = family;
            assert_eq!(
                decode(&b),
                Err(HepError::BadLength { offset: 1, value: usize::from(hl) }),
                "v{version} hl {hl} family {family}"
            );
        }
        let mut b = v1.clone();
        b[2] = 3;
        assert_eq!(decode(&b), Err(HepError::BadAddress));
        assert_eq!(decode(&v1[..16]), Err(HepError::NoPayload));
        assert_eq!(decode(&KAMAILIO_V2[..28]), Err(HepError::NoPayload));
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        for &(name, bin) in ROUND_TRIP.iter().chain(&[("vendor", SYN_VENDOR)]) {
            for i in 0..bin.len() {
                match decode(&bin[..i]) {
                    Err(HepError::Truncated { needed, available }) => {
                        assert_eq!(available, i, "{name} at {i}");
                        assert!(needed > i, "{name} at {i}");
                    }
                    other => panic!("{name} cut at {i}: {other:?}"),
                }
            }
        }
        // v1/v2 have no length field: a cut in the payload is a shorter payload.
        for bin in [KAMAILIO_V2, SYN_V2] {
            for i in 0..bin.len() {
                let r = decode(&bin[..i]);
                match i {
                    0..=28 => assert!(r.is_err(), "cut at {i}"),
                    _ => assert_eq!(r.map(|h| h.payload.len()), Ok(i - 28), "cut at {i}"),
                }
            }
        }
    }

    #[test]
    fn bytes_after_the_length_are_ignored() {
        let mut bin = SPEC_EXAMPLE.to_vec();
        bin.extend_from_slice(b"HEP3 next frame or junk");
        assert_eq!(decode(&bin), decode(SPEC_EXAMPLE));
    }

    #[test]
    fn rejects_bad_framing() {
        assert_eq!(decode(b""), Err(HepError::Truncated { needed: 1, available: 0 }));
        assert_eq!(decode(b"HE"), Err(HepError::Truncated { needed: 6, available: 2 }));
        assert_eq!(decode(b"GET / HTTP/1.1\r\n"), Err(HepError::BadMagic));
        assert_eq!(decode(b"HEP2\x00\x06"), Err(HepError::BadMagic));
        assert_eq!(decode(b"HEP3\x00\x05"), Err(HepError::BadLength { offset: 4, value: 5 }));
        assert_eq!(decode(&SPEC_EXAMPLE[..40]), Err(HepError::Truncated { needed: 113, available: 40 }));

        // A chunk length below its own header, or past the packet's length field.
        let mut bin = packet(&[(0, 0x0f, b"abc")]);
        bin[11] = 5;
        assert_eq!(decode(&bin), Err(HepError::BadLength { offset: 10, value: 5 }));
        bin[11] = 10;
        assert_eq!(decode(&bin), Err(HepError::BadLength { offset: 10, value: 10 }));
        // Packet length cutting a chunk header in half.
        let mut bin = packet(&[(0, 0x0f, b"abc"), (0, 0x11, b"")]);
        bin[5] -= 3;
        assert_eq!(decode(&bin), Err(HepError::Truncated { needed: 21, available: 18 }));
    }

    #[test]
    fn checks_chunk_value_sizes() {
        let bin = packet(&[(0, 0x07, b"\x13"), (0, 0x0f, b"x")]);
        assert_eq!(decode(&bin), Err(HepError::BadLength { offset: 10, value: 7 }));
        let bin = packet(&[(0, 0x03, b"\x01\x02\x03"), (0, 0x0f, b"x")]);
        assert_eq!(decode(&bin), Err(HepError::BadAddress));
        let bin = packet(&[(0, 0x06, &[0; 4]), (0, 0x0f, b"x")]);
        assert_eq!(decode(&bin), Err(HepError::BadAddress));
        let bin = packet(&[(0, 0x01, b"\x07"), (0, 0x0f, b"x")]);
        assert_eq!(decode(&bin), Err(HepError::BadAddress));
    }

    #[test]
    fn lenient_about_missing_chunks_but_not_the_payload() {
        let bin = packet(&[(0, 0x0f, b"")]);
        let h = decode(&bin).expect("payload only");
        assert_eq!(h.src_ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(h.dst_ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(h.payload.len(), 0);
        assert_eq!(decode(&packet(&[(0, 0x01, b"\x02"), (0, 0x11, b"cid")])), Err(HepError::NoPayload));
        assert_eq!(decode(b"HEP3\x00\x06"), Err(HepError::NoPayload));
    }

    #[test]
    fn inflates_compressed_payloads() {
        let sip = &HEPLIFY[HEPLIFY.len() - 673..];
        assert!(sip.starts_with(b"SIP/2.0 200 OK"));

        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(sip).expect("in-memory write");
        // Optional gzip header fields must be skipped.
        let mut gz_named = GzBuilder::new()
            .filename("sip.txt")
            .comment("test")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), Compression::default());
        gz_named.write_all(sip).expect("in-memory write");
        let mut raw = DeflateEncoder::new(Vec::new(), Compression::default());
        raw.write_all(sip).expect("in-memory write");

        let streams = [
            ("zlib", zlib(sip)),
            ("gzip", gz.finish().expect("in-memory write")),
            ("gzip named", gz_named.finish().expect("in-memory write")),
            ("raw deflate", raw.finish().expect("in-memory write")),
        ];
        for (name, z) in streams {
            let bin = packet(&[(0, 0x01, b"\x02"), (0, 0x10, &z)]);
            let h = decode(&bin).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(h.compressed, "{name}");
            assert!(matches!(h.payload, Cow::Owned(_)), "{name}");
            assert_eq!(&h.payload[..], sip, "{name}");

            // Re-encoded uncompressed, in 0x0f.
            let out = encode(&h);
            let back = decode(&out).expect("re-encoded");
            assert!(!back.compressed);
            assert_eq!(back.payload, h.payload);
            assert!(out.ends_with(sip));
        }
    }

    #[test]
    fn rejects_broken_compressed_payloads() {
        let z = zlib(b"INVITE sip:bob@example.com SIP/2.0\r\n\r\n");
        for bad in [&z[..z.len() - 6], &z[..2], &[][..], b"not compressed at all"] {
            let bin = packet(&[(0, 0x10, bad)]);
            assert_eq!(decode(&bin), Err(HepError::BadCompression), "{bad:?}");
        }
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(b"payload").expect("in-memory write");
        let mut gz = gz.finish().expect("in-memory write");
        let crc_at = gz.len() - 8;
        gz[crc_at] ^= 1;
        assert_eq!(decode(&packet(&[(0, 0x10, &gz)])), Err(HepError::BadCompression));
    }

    #[test]
    fn rejects_decompression_bomb() {
        let bomb = zlib(&vec![0; 10 << 20]);
        assert!(bomb.len() < 65_000, "the bomb fits in one chunk");
        let bin = packet(&[(0, 0x10, &bomb)]);
        assert_eq!(decode(&bin), Err(HepError::BadCompression));
        // Rejected for its size, before trying other formats, and not for its format.
        assert!(matches!(inflate_stream(&bomb, true), Err(InflateError::TooLarge)));

        // The cap is inclusive.
        let at_cap = zlib(&vec![b'a'; MAX_INFLATED_LEN]);
        let bin = packet(&[(0, 0x10, &at_cap)]);
        let h = decode(&bin).expect("exactly at the cap");
        assert_eq!(h.payload.len(), MAX_INFLATED_LEN);
        let over = zlib(&vec![b'a'; MAX_INFLATED_LEN + 1]);
        assert_eq!(decode(&packet(&[(0, 0x10, &over)])), Err(HepError::BadCompression));
    }

    #[test]
    fn too_large_appends_nothing() {
        let empty = encode(&Hep::default()).len();
        let fits = vec![b'x'; MAX_PACKET_LEN - empty];
        let mut hep = Hep { payload: Cow::Borrowed(&fits), ..Hep::default() };
        let mut out = vec![1, 2, 3];
        assert_eq!(encode_v3(&hep, &mut out), Ok(MAX_PACKET_LEN));
        assert_eq!(out.len(), 3 + MAX_PACKET_LEN);
        assert_eq!(decode(&out[3..]).expect("decodes").payload.len(), fits.len());

        hep.node_name = Some(b"n");
        let mut out = vec![1, 2, 3];
        assert_eq!(encode_v3(&hep, &mut out), Err(HepError::TooLarge { len: MAX_PACKET_LEN + 7 }));
        assert_eq!(out, [1, 2, 3]);

        let huge = vec![0; 1 << 20];
        let hep = Hep { payload: Cow::Borrowed(&huge), ..Hep::default() };
        assert!(matches!(encode_v3(&hep, &mut out), Err(HepError::TooLarge { .. })));
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn payload_types_round_trip_every_value() {
        for v in 0..=u8::MAX {
            assert_eq!(u8::from(PayloadType::from(v)), v);
        }
        assert_eq!(PayloadType::from(0x70), PayloadType::NetEvent);
        assert_eq!(PayloadType::from(99), PayloadType::Unknown(99));
    }

    #[test]
    fn every_field_round_trips_in_ascending_chunk_order() {
        let hep = Hep {
            version: 3,
            ip_proto: 132,
            src_ip: IpAddr::from(Ipv6Addr::LOCALHOST),
            dst_ip: v4([192, 0, 2, 1]),
            src_port: 1,
            dst_port: 2,
            ts_sec: 3,
            ts_usec: 4,
            payload_type: PayloadType::Unknown(99),
            capture_id: Some(5),
            keep_alive: Some(6),
            auth_key: Some(b"key"),
            correlation_id: Some(b"cid"),
            vlan: Some(7),
            node_name: Some(b"node"),
            src_mac: Some([1, 2, 3, 4, 5, 6]),
            dst_mac: Some([7, 8, 9, 10, 11, 12]),
            ethertype: Some(0x0800),
            tcp_flags: Some(0x18),
            tos: Some(0xb8),
            mos: Some(420),
            r_factor: Some(93),
            jitter: Some(12),
            transaction_type: Some(1),
            group_id: Some(b"group"),
            payload: Cow::Borrowed(b"payload"),
            compressed: false,
        };
        let bin = encode(&hep);
        assert_eq!(decode(&bin), Ok(hep));

        let mut types = Vec::new();
        let mut at = 6;
        while at < bin.len() {
            assert_eq!(&bin[at..at + 2], &[0, 0], "generic vendor");
            types.push(u16::from_be_bytes([bin[at + 2], bin[at + 3]]));
            at += usize::from(u16::from_be_bytes([bin[at + 4], bin[at + 5]]));
        }
        assert_eq!(
            types,
            [
                0x01, 0x02, 0x05, 0x04, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x11, 0x12, 0x13, 0x14,
                0x15, 0x16, 0x17, 0x18, 0x20, 0x21, 0x23, 0x24, 0x29
            ]
        );
        assert_eq!(bin[12], AF_INET6, "family follows the source address");
    }

    /// A `Hep` with owned bytes, so proptest can generate it.
    #[derive(Debug, Clone)]
    struct OwnedHep {
        ip_proto: u8,
        src_ip: IpAddr,
        dst_ip: IpAddr,
        ports: (u16, u16),
        ts: (u32, u32),
        payload_type: u8,
        capture_id: Option<u32>,
        keep_alive: Option<u16>,
        auth_key: Option<Vec<u8>>,
        correlation_id: Option<Vec<u8>>,
        vlan: Option<u16>,
        node_name: Option<Vec<u8>>,
        macs: (Option<[u8; 6]>, Option<[u8; 6]>),
        ethertype: Option<u16>,
        tcp_flags: Option<u8>,
        tos: Option<u8>,
        mos: Option<u16>,
        r_factor: Option<u16>,
        jitter: Option<u32>,
        transaction_type: Option<u8>,
        group_id: Option<Vec<u8>>,
        payload: Vec<u8>,
    }

    impl OwnedHep {
        fn as_hep(&self) -> Hep<'_> {
            Hep {
                version: 3,
                ip_proto: self.ip_proto,
                src_ip: self.src_ip,
                dst_ip: self.dst_ip,
                src_port: self.ports.0,
                dst_port: self.ports.1,
                ts_sec: self.ts.0,
                ts_usec: self.ts.1,
                payload_type: PayloadType::from(self.payload_type),
                capture_id: self.capture_id,
                keep_alive: self.keep_alive,
                auth_key: self.auth_key.as_deref(),
                correlation_id: self.correlation_id.as_deref(),
                vlan: self.vlan,
                node_name: self.node_name.as_deref(),
                src_mac: self.macs.0,
                dst_mac: self.macs.1,
                ethertype: self.ethertype,
                tcp_flags: self.tcp_flags,
                tos: self.tos,
                mos: self.mos,
                r_factor: self.r_factor,
                jitter: self.jitter,
                transaction_type: self.transaction_type,
                group_id: self.group_id.as_deref(),
                payload: Cow::Borrowed(&self.payload),
                compressed: false,
            }
        }
    }

    fn ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![any::<[u8; 4]>().prop_map(IpAddr::from), any::<[u8; 16]>().prop_map(IpAddr::from),]
    }

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        vec(any::<u8>(), 0..max)
    }

    prop_compose! {
        fn owned_hep()(
            head in (any::<u8>(), ip(), ip(), any::<(u16, u16)>(), any::<(u32, u32)>(), any::<u8>()),
            ids in (
                option::of(any::<u32>()),
                option::of(any::<u16>()),
                option::of(bytes(40)),
                option::of(bytes(40)),
                option::of(any::<u16>()),
                option::of(bytes(40)),
            ),
            l2 in (
                option::of(any::<[u8; 6]>()),
                option::of(any::<[u8; 6]>()),
                option::of(any::<u16>()),
                option::of(any::<u8>()),
                option::of(any::<u8>()),
            ),
            qos in (
                option::of(any::<u16>()),
                option::of(any::<u16>()),
                option::of(any::<u32>()),
                option::of(any::<u8>()),
                option::of(bytes(40)),
            ),
            payload in bytes(600),
        ) -> OwnedHep {
            let (ip_proto, src_ip, dst_ip, ports, ts, payload_type) = head;
            let (capture_id, keep_alive, auth_key, correlation_id, vlan, node_name) = ids;
            let (src_mac, dst_mac, ethertype, tcp_flags, tos) = l2;
            let (mos, r_factor, jitter, transaction_type, group_id) = qos;
            OwnedHep {
                ip_proto, src_ip, dst_ip, ports, ts, payload_type, capture_id, keep_alive,
                auth_key, correlation_id, vlan, node_name, macs: (src_mac, dst_mac), ethertype,
                tcp_flags, tos, mos, r_factor, jitter, transaction_type, group_id, payload,
            }
        }
    }

    /// Size a generic chunk's value must have, for the fixed-size types.
    fn fixed_size(ty: u16) -> Option<usize> {
        match ty {
            0x01 | 0x02 | 0x0b | 0x17 | 0x18 | 0x24 => Some(1),
            0x07 | 0x08 | 0x0d | 0x12 | 0x16 | 0x20 | 0x21 => Some(2),
            0x03 | 0x04 | 0x09 | 0x0a | 0x0c | 0x23 => Some(4),
            0x14 | 0x15 => Some(6),
            0x05 | 0x06 => Some(16),
            _ => None,
        }
    }

    /// A v3 packet of random chunks, mostly generic ones with plausible types and
    /// (usually) well-sized values, so the decoder gets past the framing into every
    /// chunk arm and often all the way to a successful decode.
    fn random_chunks() -> impl Strategy<Value = Vec<u8>> {
        let vendor = prop_oneof![6 => Just(0u16), 1 => any::<u16>()];
        let ty = prop_oneof![6 => 0u16..0x2a, 1 => any::<u16>()];
        let chunk = (vendor, ty, bytes(20), any::<bool>()).prop_map(|(v, t, mut d, sized)| {
            if let (0, true, Some(n)) = (v, sized, fixed_size(t)) {
                d.resize(n, 0);
                if t == 0x01 {
                    d[0] = if d[0] % 2 == 0 { AF_INET } else { AF_INET6 };
                }
            }
            (v, t, d)
        });
        let payload = option::of(bytes(40));
        (vec(chunk, 0..20), payload).prop_map(|(chunks, payload)| {
            let mut chunks: Vec<(u16, u16, &[u8])> = chunks.iter().map(|(v, t, d)| (*v, *t, d.as_slice())).collect();
            if let Some(p) = &payload {
                chunks.push((0, 0x0f, p));
            }
            packet(&chunks)
        })
    }

    /// hickory's fuzz check: whatever decodes must re-encode and decode to the same
    /// value (as v3, uncompressed).
    fn assert_reencodes(h: &Hep<'_>) -> Result<(), TestCaseError> {
        let mut out = Vec::new();
        match encode_v3(h, &mut out) {
            Ok(_) => {
                let back = decode(&out);
                let expected = Hep { version: 3, compressed: false, ..h.clone() };
                prop_assert_eq!(back, Ok(expected));
            }
            // Only an inflated payload can outgrow a packet.
            Err(HepError::TooLarge { .. }) => prop_assert!(h.compressed),
            Err(e) => prop_assert!(false, "encode failed: {e}"),
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bin in bytes(300)) {
            if let Ok(h) = decode(&bin) {
                assert_reencodes(&h)?;
            }
        }

        #[test]
        fn decode_never_panics_on_hep3_framed_bytes(body in bytes(300), exact in any::<bool>(), len in any::<u16>()) {
            let len = if exact { u16::try_from(6 + body.len()).unwrap_or(u16::MAX) } else { len };
            let mut bin = b"HEP3".to_vec();
            bin.extend_from_slice(&len.to_be_bytes());
            bin.extend_from_slice(&body);
            if let Ok(h) = decode(&bin) {
                assert_reencodes(&h)?;
            }
        }

        #[test]
        fn decode_never_panics_on_random_chunks(mut bin in random_chunks(), cut in any::<prop::sample::Index>()) {
            if let Ok(h) = decode(&bin) {
                assert_reencodes(&h)?;
            }
            let at = cut.index(bin.len() + 1);
            bin.truncate(at);
            let _ = decode(&bin);
        }

        #[test]
        fn decode_never_panics_on_v1_v2_headers(version in 1u8..=2, hl in any::<u8>(), family in prop_oneof![Just(2u8), Just(10), any::<u8>()], rest in bytes(100)) {
            let mut bin = vec![version, hl, family];
            bin.extend_from_slice(&rest);
            if let Ok(h) = decode(&bin) {
                assert_reencodes(&h)?;
            }
        }

        #[test]
        fn encode_then_decode_gives_the_same_value(owned in owned_hep()) {
            let hep = owned.as_hep();
            let mut out = vec![0x5a; 3];
            let n = encode_v3(&hep, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(n, out.len() - 3);
            prop_assert_eq!(frame_len(&out[3..]), Ok(Some(n)));
            prop_assert_eq!(decode(&out[3..]), Ok(hep));
        }
    }
}
