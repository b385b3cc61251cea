//! Packet sources: pcap and pcapng files, read in pure Rust (no libpcap).
//!
//! [`PcapFile`] detects the format from the first four bytes and hands out packets with a
//! lending read ([`PcapFile::next_packet`]): each [`RawPacket`] borrows its bytes from one
//! large reusable buffer, valid until the next call. Memory therefore stays flat (one
//! buffer of [`BUFFER_LEN`] bytes) however big the file, and no packet is copied.
//!
//! Errors are terminal: after `next_packet` returns an error, later calls return
//! `Ok(None)`. A file cut in the middle of a record yields every packet before the cut,
//! then [`SourceError::Truncated`] with the offset of the incomplete record, so the caller
//! can count it and carry on with what it got.

mod buffer;
mod pcap;
mod pcapng;

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::flow::Timestamp;
use buffer::ReadBuf;

/// Size of the read buffer: large reads keep syscalls rare, and it must hold the largest
/// block we parse ([`MAX_BLOCK_LEN`]) with room to spare.
pub const BUFFER_LEN: usize = 2 * 1024 * 1024;

/// Largest captured length of one packet we accept. Real link MTUs (even 64 KiB loopback
/// and TSO/GRO super-frames) stay below it; anything larger is a corrupt length field.
pub const MAX_PACKET_LEN: usize = 256 * 1024;

/// Largest pcapng block we read into memory (packet blocks plus their options, section
/// and interface headers). Blocks we do not parse are skipped whatever their size.
pub const MAX_BLOCK_LEN: usize = 1024 * 1024;

/// Link-layer header type of a capture (tcpdump.org LINKTYPE_* values).
///
/// Values we decode get a variant; the rest are kept as [`LinkType::Unknown`] so the
/// decoder can count them by value. `from(u32)` and `u32::from` round-trip except for
/// the legacy raw-IP codes 12 and 14, which read as [`LinkType::Raw`] (their meaning on
/// the BSDs that wrote them) and write back as 101.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// 0: BSD loopback, 4-byte address family in the writer's byte order.
    Null,
    /// 1: Ethernet II (and 802.3).
    Ethernet,
    /// 101 (also DLT 12 and 14): raw IP, version from the first nibble.
    Raw,
    /// 108: OpenBSD loopback, 4-byte address family in network byte order.
    Loop,
    /// 113: Linux cooked capture v1 (`any` device), 16-byte header.
    LinuxSll,
    /// 228: raw IPv4.
    Ipv4,
    /// 229: raw IPv6.
    Ipv6,
    /// 276: Linux cooked capture v2, 20-byte header.
    LinuxSll2,
    /// Any other value.
    Unknown(u32),
}

impl From<u32> for LinkType {
    fn from(raw: u32) -> Self {
        match raw {
            0 => Self::Null,
            1 => Self::Ethernet,
            12 | 14 | 101 => Self::Raw,
            108 => Self::Loop,
            113 => Self::LinuxSll,
            228 => Self::Ipv4,
            229 => Self::Ipv6,
            276 => Self::LinuxSll2,
            other => Self::Unknown(other),
        }
    }
}

impl From<LinkType> for u32 {
    fn from(link: LinkType) -> Self {
        match link {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll2 => 276,
            LinkType::Unknown(raw) => raw,
        }
    }
}

/// One captured packet, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPacket<'a> {
    /// Capture time, converted to microseconds whatever the file's resolution.
    pub ts: Timestamp,
    /// Link-layer type of the interface the packet was captured on.
    pub link_type: LinkType,
    /// The captured bytes (at most the snap length).
    pub data: &'a [u8],
    /// Length of the packet on the wire; larger than `data.len()` when truncated by the
    /// snap length.
    pub orig_len: u32,
}

/// Why a capture file cannot be read (further).
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceError {
    /// The operating system refused to open or read the file.
    Io(io::Error),
    /// The first bytes are not a pcap or pcapng magic number.
    UnknownFormat {
        /// The first four bytes of the file.
        magic: [u8; 4],
    },
    /// The file ends inside a header or record.
    Truncated {
        /// File offset where the incomplete header or record starts.
        offset: u64,
        /// Bytes that record needs.
        needed: u64,
        /// Bytes the file still had from `offset`.
        available: u64,
    },
    /// A record claims more captured bytes than [`MAX_PACKET_LEN`] (or a block more
    /// than [`MAX_BLOCK_LEN`]): a corrupt length field, not a packet.
    RecordTooLarge {
        /// File offset of the record.
        offset: u64,
        /// The length it claims.
        len: u64,
        /// The cap it exceeds.
        max: u64,
    },
    /// A structure is inconsistent (bad block length, unknown interface, wrong version).
    Malformed {
        /// File offset of the offending header or block.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot read capture file: {e}"),
            Self::UnknownFormat { magic } => {
                let [a, b, c, d] = *magic;
                write!(f, "not a pcap or pcapng file: magic bytes {a:02x} {b:02x} {c:02x} {d:02x}")?;
                if magic == b"GMBU" {
                    // NetMon files are common in SIP archives; saying so saves a search.
                    f.write_str(" (\"GMBU\": Microsoft Network Monitor; convert it with editcap or Wireshark)")?;
                }
                Ok(())
            }
            Self::Truncated { offset, needed, available } => write!(
                f,
                "capture file truncated: record at offset {offset} needs {needed} bytes, only {available} left"
            ),
            Self::RecordTooLarge { offset, len, max } => {
                write!(f, "record at offset {offset} claims {len} bytes (limit {max}): corrupt file")
            }
            Self::Malformed { offset, what } => write!(f, "malformed capture file at offset {offset}: {what}"),
        }
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for SourceError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Where one packet sits in the buffer, as a format reader found it. Returned instead of
/// a slice so the readers need no lifetime juggling across their skip loops.
#[derive(Debug, Clone, Copy)]
struct Record {
    ts: Timestamp,
    link_type: LinkType,
    /// Offset of the packet bytes within `ReadBuf::available()`.
    data_start: usize,
    data_len: usize,
    orig_len: u32,
    /// Bytes the whole record occupies, consumed before the next read.
    record_len: usize,
}

/// The two file formats, each with its own header state.
#[derive(Debug)]
enum Format {
    Pcap(pcap::Header),
    Pcapng(pcapng::Sections),
}

/// A pcap or pcapng capture file, read sequentially. See the module docs for the lending
/// read and the error contract.
///
/// `R` is any byte stream; [`PcapFile::open`] gives a `PcapFile<File>`, and
/// [`PcapFile::from_reader`] wraps anything else (in-memory bytes in tests, stdin).
#[derive(Debug)]
pub struct PcapFile<R = File> {
    buf: ReadBuf<R>,
    format: Format,
    /// Length of the record handed out last: it stays in the buffer until the next call.
    pending: usize,
    size: Option<u64>,
    done: bool,
}

impl PcapFile<File> {
    /// Opens a capture file and reads its header (and, for pcapng, the first section's
    /// header block).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        let file = File::open(path)?;
        let size = file.metadata().ok().map(|m| m.len());
        Self::from_reader(file, size)
    }
}

impl<R: Read> PcapFile<R> {
    /// Reads the header from `reader`. `size` is the total length if known (for
    /// progress reporting only).
    pub fn from_reader(reader: R, size: Option<u64>) -> Result<Self, SourceError> {
        let mut buf = ReadBuf::new(reader, BUFFER_LEN);
        let format = open_format(&mut buf)?;
        Ok(Self {
            buf,
            format,
            pending: 0,
            size,
            done: false,
        })
    }

    /// The next packet, or `Ok(None)` at the end of the file. Skips pcapng blocks that
    /// carry no packet. The packet borrows the reader's buffer until the next call.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, SourceError> {
        if self.done {
            return Ok(None);
        }
        self.buf.consume(std::mem::take(&mut self.pending));
        let found = match &mut self.format {
            Format::Pcap(header) => pcap::next_record(header, &mut self.buf),
            Format::Pcapng(sections) => pcapng::next_record(sections, &mut self.buf),
        };
        let rec = match found {
            Ok(Some(rec)) => rec,
            Ok(None) => {
                self.done = true;
                return Ok(None);
            }
            Err(e) => {
                self.done = true;
                return Err(e);
            }
        };
        self.pending = rec.record_len;
        let data = &self.buf.available()[rec.data_start..rec.data_start + rec.data_len];
        Ok(Some(RawPacket {
            ts: rec.ts,
            link_type: rec.link_type,
            data,
            orig_len: rec.orig_len,
        }))
    }

    /// Bytes of the file consumed so far (up to the end of the last packet returned):
    /// with [`PcapFile::file_size`], a progress measure.
    pub fn bytes_read(&self) -> u64 {
        self.buf.offset() + self.pending as u64
    }

    /// Total file size, when known (files opened with [`PcapFile::open`]).
    pub fn file_size(&self) -> Option<u64> {
        self.size
    }

    /// True for pcapng input, false for classic pcap.
    pub fn is_pcapng(&self) -> bool {
        matches!(self.format, Format::Pcapng(_))
    }
}

/// Reads the magic number and the format's header.
fn open_format<R: Read>(buf: &mut ReadBuf<R>) -> Result<Format, SourceError> {
    if !buf.fill(4)? {
        let available = buf.available().len() as u64;
        return Err(SourceError::Truncated {
            offset: 0,
            needed: 4,
            available,
        });
    }
    let mut magic = [0; 4];
    magic.copy_from_slice(&buf.available()[..4]);
    if let Some(header) = pcap::Header::read(magic, buf)? {
        return Ok(Format::Pcap(header));
    }
    if magic == pcapng::SHB_TYPE_BYTES {
        return Ok(Format::Pcapng(pcapng::Sections::read(buf)?));
    }
    Err(SourceError::UnknownFormat { magic })
}

/// Fills `n` bytes for a record starting at the cursor, or reports a truncated file.
/// `Ok(false)` means the input ended exactly at the record boundary (clean end).
fn fill_record<R: Read>(buf: &mut ReadBuf<R>, n: usize) -> Result<bool, SourceError> {
    if buf.fill(n)? {
        return Ok(true);
    }
    let available = buf.available().len() as u64;
    if available == 0 {
        return Ok(false);
    }
    Err(SourceError::Truncated {
        offset: buf.offset(),
        needed: n as u64,
        available,
    })
}

/// Reads a `u16`/`u32` in the file's byte order. Callers have checked the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: &[u8], at: usize) -> u16 {
        let raw = [b[at], b[at + 1]];
        match self {
            Self::Little => u16::from_le_bytes(raw),
            Self::Big => u16::from_be_bytes(raw),
        }
    }

    fn u32(self, b: &[u8], at: usize) -> u32 {
        let raw = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        match self {
            Self::Little => u32::from_le_bytes(raw),
            Self::Big => u32::from_be_bytes(raw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_type_round_trips() {
        for raw in [0, 1, 101, 108, 113, 228, 229, 276, 147, 65_000] {
            assert_eq!(u32::from(LinkType::from(raw)), raw);
        }
        assert_eq!(LinkType::from(12), LinkType::Raw);
        assert_eq!(LinkType::from(14), LinkType::Raw);
    }

    #[test]
    fn unknown_magic_is_named() {
        let err = PcapFile::from_reader(&b"GMBU\0\x02\x01\0"[..], None).unwrap_err();
        assert!(matches!(err, SourceError::UnknownFormat { magic } if &magic == b"GMBU"));
        let text = err.to_string();
        assert!(
            text.contains("47 4d 42 55") && text.contains("Network Monitor"),
            "{text}"
        );
    }

    #[test]
    fn empty_and_tiny_inputs_are_truncated() {
        for input in [&b""[..], &b"\xd4\xc3"[..]] {
            let err = PcapFile::from_reader(input, None).unwrap_err();
            assert!(
                matches!(err, SourceError::Truncated { offset: 0, .. }),
                "{err}"
            );
        }
    }
}
