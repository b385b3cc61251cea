//! pcapng files: a sequence of sections, each a Section Header Block (which fixes the byte
//! order) followed by Interface Description Blocks (link type, timestamp resolution) and
//! packet blocks (Enhanced, Simple, and the obsolete Packet Block). Every other block type
//! (name resolution, statistics, custom, decryption secrets...) is skipped unread.

use std::io::Read;

use super::buffer::ReadBuf;
use super::{fill_record, Endian, LinkType, Record, SourceError, MAX_BLOCK_LEN, MAX_PACKET_LEN};
use crate::flow::Timestamp;

/// The SHB block type 0x0A0D0D0A reads the same in both byte orders.
pub(super) const SHB_TYPE_BYTES: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;

/// Block types we read.
mod block {
    pub(super) const IDB: u32 = 1;
    pub(super) const PB: u32 = 2;
    pub(super) const SPB: u32 = 3;
    pub(super) const EPB: u32 = 6;
}

/// Offsets inside blocks, counted from the block type field.
mod field {
    /// Block type and total length.
    pub(super) const BLOCK_HEADER_LEN: usize = 8;
    /// Block header plus the trailing copy of the total length.
    pub(super) const BLOCK_OVERHEAD: usize = 12;

    pub(super) const SHB_BYTE_ORDER: usize = 8;
    pub(super) const SHB_VERSION_MAJOR: usize = 12;
    pub(super) const SHB_MIN_LEN: usize = 28;

    pub(super) const IDB_LINK_TYPE: usize = 8;
    pub(super) const IDB_OPTIONS: usize = 16;

    /// EPB and the obsolete PB share this layout (PB's interface id is 16 bits).
    pub(super) const PKT_INTERFACE: usize = 8;
    pub(super) const PKT_TS_HIGH: usize = 12;
    pub(super) const PKT_TS_LOW: usize = 16;
    pub(super) const PKT_CAP_LEN: usize = 20;
    pub(super) const PKT_ORIG_LEN: usize = 24;
    pub(super) const PKT_DATA: usize = 28;

    pub(super) const SPB_ORIG_LEN: usize = 8;
    pub(super) const SPB_DATA: usize = 12;
}

/// IDB option codes we use.
mod option {
    pub(super) const END: u16 = 0;
    pub(super) const IF_TSRESOL: u16 = 9;
    pub(super) const IF_TSOFFSET: u16 = 14;
}

/// Timestamp units of an interface: 10^-n or 2^-n seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolution {
    Pow10(u32),
    Pow2(u32),
}

/// What an IDB says about the packets captured on that interface.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: LinkType,
    resolution: Resolution,
    /// `if_tsoffset`: seconds to add to every timestamp.
    offset_sec: i64,
}

/// Reader state: the current section's byte order and interfaces.
#[derive(Debug)]
pub(super) struct Sections {
    endian: Endian,
    interfaces: Vec<Interface>,
    /// Time of the last timestamped packet, given to Simple Packet Blocks (which have
    /// none) so time never jumps back to the epoch mid-capture.
    last_ts: Timestamp,
}

impl Sections {
    /// Reads the first Section Header Block (the caller saw its type bytes).
    pub(super) fn read<R: Read>(buf: &mut ReadBuf<R>) -> Result<Self, SourceError> {
        let mut s = Self {
            endian: Endian::Little,
            interfaces: Vec::new(),
            last_ts: Timestamp::default(),
        };
        s.read_shb(buf)?;
        Ok(s)
    }

    /// Starts a new section: byte order from its SHB; interfaces are per section.
    fn read_shb<R: Read>(&mut self, buf: &mut ReadBuf<R>) -> Result<(), SourceError> {
        let start = buf.offset();
        fill_required(buf, field::SHB_BYTE_ORDER + 4)?;
        let bom = &buf.available()[field::SHB_BYTE_ORDER..field::SHB_BYTE_ORDER + 4];
        self.endian = match u32::from_be_bytes([bom[0], bom[1], bom[2], bom[3]]) {
            BYTE_ORDER_MAGIC => Endian::Big,
            m if m.swap_bytes() == BYTE_ORDER_MAGIC => Endian::Little,
            _ => {
                return Err(SourceError::Malformed {
                    offset: start + 8,
                    what: "pcapng byte-order magic invalid",
                })
            }
        };
        let len = self.block_len(buf, field::SHB_MIN_LEN)?;
        fill_required(buf, len)?;
        if self.endian.u16(buf.available(), field::SHB_VERSION_MAJOR) != 1 {
            return Err(SourceError::Malformed {
                offset: start,
                what: "pcapng major version is not 1",
            });
        }
        self.interfaces.clear();
        buf.consume(len);
        Ok(())
    }

    /// Validates the total length of the block at the cursor (header already buffered).
    fn block_len<R: Read>(&self, buf: &ReadBuf<R>, min: usize) -> Result<usize, SourceError> {
        let len = self.endian.u32(buf.available(), 4) as usize;
        if len < min || len & 3 != 0 {
            return Err(SourceError::Malformed {
                offset: buf.offset(),
                what: "pcapng block length invalid",
            });
        }
        if len > MAX_BLOCK_LEN {
            let (offset, len, max) = (buf.offset(), len as u64, MAX_BLOCK_LEN as u64);
            return Err(SourceError::RecordTooLarge { offset, len, max });
        }
        Ok(len)
    }

    fn read_idb(&mut self, b: &[u8]) {
        let link_type = LinkType::from(u32::from(self.endian.u16(b, field::IDB_LINK_TYPE)));
        let mut iface = Interface {
            link_type,
            resolution: Resolution::Pow10(6),
            offset_sec: 0,
        };
        let mut options = b.get(field::IDB_OPTIONS..b.len() - 4).unwrap_or_default();
        // Options are code, length, value padded to 4 bytes. A malformed list just ends
        // the scan: the defaults are the right guess for a sloppy writer.
        while options.len() >= 4 {
            let code = self.endian.u16(options, 0);
            let len = usize::from(self.endian.u16(options, 2));
            let Some(value) = options.get(4..4 + len) else {
                break;
            };
            match code {
                option::END => break,
                option::IF_TSRESOL if len >= 1 => iface.resolution = resolution(value[0]),
                option::IF_TSOFFSET if len == 8 => {
                    let hi = u64::from(self.endian.u32(value, 0));
                    let lo = u64::from(self.endian.u32(value, 4));
                    let joined = if self.endian == Endian::Big {
                        (hi << 32) | lo
                    } else {
                        (lo << 32) | hi
                    };
                    iface.offset_sec = joined as i64;
                }
                _ => {}
            }
            options = options
                .get(4 + len.next_multiple_of(4)..)
                .unwrap_or_default();
        }
        self.interfaces.push(iface);
    }

    fn interface(&self, id: u32, offset: u64) -> Result<Interface, SourceError> {
        let found = self.interfaces.get(id as usize).copied();
        found.ok_or(SourceError::Malformed {
            offset,
            what: "packet block names an interface no IDB described",
        })
    }

    /// Parses an EPB or PB (`wide_id`: EPB's 32-bit interface id vs PB's 16-bit one).
    fn packet_block(
        &mut self,
        b: &[u8],
        offset: u64,
        wide_id: bool,
    ) -> Result<Record, SourceError> {
        if b.len() < field::PKT_DATA + 4 {
            return Err(SourceError::Malformed {
                offset,
                what: "packet block too short",
            });
        }
        let e = self.endian;
        let id = if wide_id {
            e.u32(b, field::PKT_INTERFACE)
        } else {
            u32::from(e.u16(b, field::PKT_INTERFACE))
        };
        let iface = self.interface(id, offset)?;
        let cap_len = e.u32(b, field::PKT_CAP_LEN) as usize;
        if cap_len > MAX_PACKET_LEN {
            return Err(SourceError::RecordTooLarge {
                offset,
                len: cap_len as u64,
                max: MAX_PACKET_LEN as u64,
            });
        }
        if field::PKT_DATA + cap_len > b.len() - 4 {
            return Err(SourceError::Malformed {
                offset,
                what: "captured length exceeds its block",
            });
        }
        let raw_ts = (u64::from(e.u32(b, field::PKT_TS_HIGH)) << 32)
            | u64::from(e.u32(b, field::PKT_TS_LOW));
        let ts = to_timestamp(raw_ts, iface.resolution, iface.offset_sec);
        self.last_ts = ts;
        Ok(Record {
            ts,
            link_type: iface.link_type,
            data_start: field::PKT_DATA,
            data_len: cap_len,
            orig_len: e.u32(b, field::PKT_ORIG_LEN),
            record_len: b.len(),
        })
    }

    /// Parses an SPB: interface 0, no timestamp, captured length implied by the block.
    fn simple_block(&self, b: &[u8], offset: u64) -> Result<Record, SourceError> {
        let iface = self.interface(0, offset)?;
        let orig_len = self.endian.u32(b, field::SPB_ORIG_LEN);
        let room = b.len() - field::SPB_DATA - 4;
        let data_len = room.min(orig_len as usize);
        Ok(Record {
            ts: self.last_ts,
            link_type: iface.link_type,
            data_start: field::SPB_DATA,
            data_len,
            orig_len,
            record_len: b.len(),
        })
    }
}

/// Locates the next packet, reading section and interface blocks and skipping others.
pub(super) fn next_record<R: Read>(
    s: &mut Sections,
    buf: &mut ReadBuf<R>,
) -> Result<Option<Record>, SourceError> {
    loop {
        if !fill_record(buf, field::BLOCK_HEADER_LEN)? {
            return Ok(None);
        }
        if buf.available()[..4] == SHB_TYPE_BYTES {
            s.read_shb(buf)?;
            continue;
        }
        let offset = buf.offset();
        let kind = s.endian.u32(buf.available(), 0);
        if !matches!(kind, block::IDB | block::PB | block::SPB | block::EPB) {
            skip_block(s, buf)?;
            continue;
        }
        let len = s.block_len(buf, field::BLOCK_OVERHEAD + 4)?;
        fill_record(buf, len)?;
        let b = &buf.available()[..len];
        if s.endian.u32(b, len - 4) as usize != len {
            return Err(SourceError::Malformed {
                offset,
                what: "pcapng block trailer length differs from header",
            });
        }
        match kind {
            block::IDB => {
                s.read_idb(b);
                buf.consume(len);
            }
            block::SPB => return s.simple_block(b, offset).map(Some),
            _ => return s.packet_block(b, offset, kind == block::EPB).map(Some),
        }
    }
}

/// Skips a block we do not read, whatever its size.
fn skip_block<R: Read>(s: &Sections, buf: &mut ReadBuf<R>) -> Result<(), SourceError> {
    let offset = buf.offset();
    let len = u64::from(s.endian.u32(buf.available(), 4));
    if len < field::BLOCK_OVERHEAD as u64 || len & 3 != 0 {
        return Err(SourceError::Malformed {
            offset,
            what: "pcapng block length invalid",
        });
    }
    let skipped = buf.skip(len)?;
    if skipped < len {
        return Err(SourceError::Truncated {
            offset,
            needed: len,
            available: skipped,
        });
    }
    Ok(())
}

/// Like [`fill_record`], but a clean end of input is also a truncation (a block header
/// was already seen).
fn fill_required<R: Read>(buf: &mut ReadBuf<R>, n: usize) -> Result<(), SourceError> {
    if fill_record(buf, n)? {
        Ok(())
    } else {
        Err(SourceError::Truncated {
            offset: buf.offset(),
            needed: n as u64,
            available: 0,
        })
    }
}

/// Decodes `if_tsresol`: the high bit selects a power of two, else a power of ten.
fn resolution(v: u8) -> Resolution {
    if v & 0x80 == 0 {
        Resolution::Pow10(u32::from(v))
    } else {
        Resolution::Pow2(u32::from(v & 0x7f))
    }
}

/// Converts interface time units to a microsecond timestamp.
fn to_timestamp(raw: u64, res: Resolution, offset_sec: i64) -> Timestamp {
    let (sec, usec) = match res {
        // 10^20 overflows u64; such a resolution is nonsense, so treat it as 10^19.
        Resolution::Pow10(n) => {
            let per_sec = 10u64.pow(n.min(19));
            let frac = raw % per_sec;
            let usec = if n >= 6 {
                frac / 10u64.pow(n.min(19) - 6)
            } else {
                frac * 10u64.pow(6 - n)
            };
            (raw / per_sec, usec)
        }
        Resolution::Pow2(n) => {
            let n = n.min(63);
            let frac = u128::from(raw & ((1u64 << n) - 1));
            (raw >> n, ((frac * 1_000_000) >> n) as u64)
        }
    };
    Timestamp::new(sec.saturating_add_signed(offset_sec), usec as u32)
}

#[cfg(test)]
mod tests {
    use super::super::PcapFile;
    use super::*;

    /// Writes pcapng blocks in one byte order.
    struct Writer {
        big: bool,
        out: Vec<u8>,
    }

    impl Writer {
        fn u16(&self, v: u16) -> [u8; 2] {
            if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn u32(&self, v: u32) -> [u8; 4] {
            if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn block(&mut self, kind: u32, body: &[u8]) {
            let len = 12 + body.len().next_multiple_of(4);
            let (k, l) = (self.u32(kind), self.u32(len as u32));
            self.out.extend_from_slice(&k);
            self.out.extend_from_slice(&l);
            self.out.extend_from_slice(body);
            self.out.resize(
                self.out.len() + body.len().next_multiple_of(4) - body.len(),
                0,
            );
            self.out.extend_from_slice(&l);
        }
        fn shb(&mut self) {
            let mut body = self.u32(BYTE_ORDER_MAGIC).to_vec();
            body.extend_from_slice(&self.u16(1));
            body.extend_from_slice(&self.u16(0));
            body.extend_from_slice(&[0xff; 8]);
            self.block(0x0a0d_0d0a, &body);
        }
        fn idb(&mut self, link: u16, tsresol: Option<u8>) {
            let mut body = self.u16(link).to_vec();
            body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            if let Some(r) = tsresol {
                body.extend_from_slice(&self.u16(option::IF_TSRESOL));
                body.extend_from_slice(&self.u16(1));
                body.extend_from_slice(&[r, 0, 0, 0]);
                body.extend_from_slice(&[0; 4]);
            }
            self.block(block::IDB, &body);
        }
        fn epb(&mut self, iface: u32, ts: u64, data: &[u8]) {
            let mut body = self.u32(iface).to_vec();
            body.extend_from_slice(&self.u32((ts >> 32) as u32));
            body.extend_from_slice(&self.u32(ts as u32));
            body.extend_from_slice(&self.u32(data.len() as u32));
            body.extend_from_slice(&self.u32(data.len() as u32));
            body.extend_from_slice(data);
            self.block(block::EPB, &body);
        }
        fn pb(&mut self, iface: u16, ts: u64, data: &[u8]) {
            let mut body = self.u16(iface).to_vec();
            body.extend_from_slice(&self.u16(0));
            body.extend_from_slice(&self.u32((ts >> 32) as u32));
            body.extend_from_slice(&self.u32(ts as u32));
            body.extend_from_slice(&self.u32(data.len() as u32));
            body.extend_from_slice(&self.u32(data.len() as u32));
            body.extend_from_slice(data);
            self.block(block::PB, &body);
        }
        fn spb(&mut self, data: &[u8]) {
            let mut body = self.u32(data.len() as u32).to_vec();
            body.extend_from_slice(data);
            self.block(block::SPB, &body);
        }
    }

    fn read_all(bytes: &[u8]) -> Vec<(Timestamp, LinkType, Vec<u8>)> {
        let mut f = PcapFile::from_reader(bytes, None).unwrap();
        assert!(f.is_pcapng());
        let mut got = Vec::new();
        while let Some(p) = f.next_packet().unwrap() {
            got.push((p.ts, p.link_type, p.data.to_vec()));
        }
        got
    }

    #[test]
    fn sections_interfaces_and_all_packet_blocks() {
        // Two sections in different byte orders, the second restarting interface ids.
        let mut w = Writer {
            big: false,
            out: Vec::new(),
        };
        w.shb();
        w.idb(1, None);
        w.idb(113, Some(9));
        w.block(5, &[1, 2, 3, 4, 5, 6, 7, 8]); // interface statistics: skipped
        w.epb(0, 1_700_000_000_123_456, b"eth");
        w.epb(1, 1_700_000_001_987_654_321, b"sll!!");
        w.spb(b"simple");
        let mut w2 = Writer {
            big: true,
            out: std::mem::take(&mut w.out),
        };
        w2.shb();
        w2.idb(101, Some(0x80 | 10));
        w2.pb(0, (5 << 10) | 512, b"raw");
        let got = read_all(&w2.out);
        assert_eq!(got.len(), 4);
        assert_eq!(
            got[0],
            (
                Timestamp::new(1_700_000_000, 123_456),
                LinkType::Ethernet,
                b"eth".to_vec()
            )
        );
        assert_eq!(
            got[1],
            (
                Timestamp::new(1_700_000_001, 987_654),
                LinkType::LinuxSll,
                b"sll!!".to_vec()
            )
        );
        assert_eq!(
            got[2],
            (
                Timestamp::new(1_700_000_001, 987_654),
                LinkType::Ethernet,
                b"simple".to_vec()
            )
        );
        assert_eq!(
            got[3],
            (Timestamp::new(5, 500_000), LinkType::Raw, b"raw".to_vec())
        );
    }

    #[test]
    fn unknown_interface_and_bad_trailer_are_errors() {
        let mut w = Writer {
            big: false,
            out: Vec::new(),
        };
        w.shb();
        w.epb(0, 0, b"x");
        let mut f = PcapFile::from_reader(&w.out[..], None).unwrap();
        assert!(matches!(
            f.next_packet(),
            Err(SourceError::Malformed { offset: 28, .. })
        ));

        let mut w = Writer {
            big: false,
            out: Vec::new(),
        };
        w.shb();
        w.idb(1, None);
        w.epb(0, 0, b"x");
        let last = w.out.len() - 4;
        w.out[last] ^= 4;
        let mut f = PcapFile::from_reader(&w.out[..], None).unwrap();
        assert!(matches!(
            f.next_packet(),
            Err(SourceError::Malformed { .. })
        ));
    }

    #[test]
    fn huge_skipped_block_is_streamed_past() {
        let mut w = Writer {
            big: false,
            out: Vec::new(),
        };
        w.shb();
        w.idb(1, None);
        w.block(0x0bad, &vec![7; super::super::BUFFER_LEN * 2]);
        w.epb(0, 0, b"after");
        let got = read_all(&w.out);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].2, b"after");
    }

    #[test]
    fn timestamp_resolutions() {
        assert_eq!(
            to_timestamp(1_500, Resolution::Pow10(3), 0),
            Timestamp::new(1, 500_000)
        );
        assert_eq!(
            to_timestamp(7, Resolution::Pow10(0), 10),
            Timestamp::new(17, 0)
        );
        assert!(to_timestamp(u64::MAX, Resolution::Pow10(200), 0).usec < 1_000_000);
        assert_eq!(
            to_timestamp(3 << 20 | 1 << 19, Resolution::Pow2(20), 0),
            Timestamp::new(3, 500_000)
        );
        assert_eq!(
            to_timestamp(5, Resolution::Pow2(127), -100),
            Timestamp::new(0, 0)
        );
    }
}
