//! Classic pcap files: a 24-byte file header, then records of a 16-byte header plus the
//! captured bytes. Both byte orders, microsecond and nanosecond magics, and the rare
//! "modified" (Kuznetzov) variant with 24-byte record headers.

use std::io::Read;

use super::buffer::ReadBuf;
use super::{fill_record, Endian, LinkType, Record, SourceError, MAX_PACKET_LEN};
use crate::flow::Timestamp;

/// File header layout (offsets in bytes).
mod field {
    pub(super) const VERSION_MAJOR: usize = 4;
    pub(super) const LINK_TYPE: usize = 20;
    pub(super) const FILE_HEADER_LEN: usize = 24;

    pub(super) const TS_SEC: usize = 0;
    pub(super) const TS_FRAC: usize = 4;
    pub(super) const CAP_LEN: usize = 8;
    pub(super) const ORIG_LEN: usize = 12;
    pub(super) const RECORD_HEADER_LEN: usize = 16;
    /// The modified format appends ifindex, protocol and packet type to each record header.
    pub(super) const MODIFIED_RECORD_HEADER_LEN: usize = 24;
}

/// Magic numbers as read in the writer's byte order.
const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const MAGIC_MODIFIED: u32 = 0xa1b2_cd34;

/// What the file header says about every record.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    endian: Endian,
    /// Fractions of a second are nanoseconds rather than microseconds.
    nanos: bool,
    link_type: LinkType,
    record_header_len: usize,
}

impl Header {
    /// Parses the file header if `magic` is a pcap magic (`Ok(None)` otherwise) and
    /// consumes it.
    pub(super) fn read<R: Read>(
        magic: [u8; 4],
        buf: &mut ReadBuf<R>,
    ) -> Result<Option<Self>, SourceError> {
        let Some((endian, nanos, record_header_len)) = classify(magic) else {
            return Ok(None);
        };
        if !buf.fill(field::FILE_HEADER_LEN)? {
            let available = buf.available().len() as u64;
            return Err(SourceError::Truncated {
                offset: 0,
                needed: field::FILE_HEADER_LEN as u64,
                available,
            });
        }
        let b = buf.available();
        if endian.u16(b, field::VERSION_MAJOR) != 2 {
            return Err(SourceError::Malformed {
                offset: 4,
                what: "pcap major version is not 2",
            });
        }
        // The upper 16 bits carry FCS-length flags (pcap spec), not the link type.
        let link_type = LinkType::from(endian.u32(b, field::LINK_TYPE) & 0xffff);
        buf.consume(field::FILE_HEADER_LEN);
        Ok(Some(Self {
            endian,
            nanos,
            link_type,
            record_header_len,
        }))
    }
}

/// Byte order, nanosecond flag and record header length for a pcap magic.
fn classify(magic: [u8; 4]) -> Option<(Endian, bool, usize)> {
    let (value, endian) = match u32::from_be_bytes(magic) {
        v @ (MAGIC_MICROS | MAGIC_NANOS | MAGIC_MODIFIED) => (v, Endian::Big),
        _ => (u32::from_le_bytes(magic), Endian::Little),
    };
    match value {
        MAGIC_MICROS => Some((endian, false, field::RECORD_HEADER_LEN)),
        MAGIC_NANOS => Some((endian, true, field::RECORD_HEADER_LEN)),
        MAGIC_MODIFIED => Some((endian, false, field::MODIFIED_RECORD_HEADER_LEN)),
        _ => None,
    }
}

/// Locates the next record in the buffer without consuming it.
pub(super) fn next_record<R: Read>(
    h: &Header,
    buf: &mut ReadBuf<R>,
) -> Result<Option<Record>, SourceError> {
    let hlen = h.record_header_len;
    if !fill_record(buf, hlen)? {
        return Ok(None);
    }
    let b = buf.available();
    let cap_len = h.endian.u32(b, field::CAP_LEN) as usize;
    if cap_len > MAX_PACKET_LEN {
        let (offset, len, max) = (buf.offset(), cap_len as u64, MAX_PACKET_LEN as u64);
        return Err(SourceError::RecordTooLarge { offset, len, max });
    }
    let sec = h.endian.u32(b, field::TS_SEC);
    let frac = h.endian.u32(b, field::TS_FRAC);
    let orig_len = h.endian.u32(b, field::ORIG_LEN);
    fill_record(buf, hlen + cap_len)?;
    let usec = if h.nanos { frac / 1000 } else { frac };
    Ok(Some(Record {
        ts: Timestamp::new(u64::from(sec), usec),
        link_type: h.link_type,
        data_start: hlen,
        data_len: cap_len,
        orig_len,
        record_len: hlen + cap_len,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::PcapFile;
    use super::*;

    /// Builds a pcap file in the given byte order with the given magic and records.
    fn build(big: bool, magic: u32, link: u32, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let w32 = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = Vec::new();
        out.extend_from_slice(&w32(magic));
        out.extend_from_slice(&w16(2));
        out.extend_from_slice(&w16(4));
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&w32(65535));
        out.extend_from_slice(&w32(link));
        for &(sec, frac, data) in records {
            out.extend_from_slice(&w32(sec));
            out.extend_from_slice(&w32(frac));
            out.extend_from_slice(&w32(data.len() as u32));
            out.extend_from_slice(&w32(data.len() as u32 + 10));
            out.extend_from_slice(data);
        }
        out
    }

    fn read_all(bytes: &[u8]) -> Vec<(Timestamp, LinkType, Vec<u8>, u32)> {
        let mut f = PcapFile::from_reader(bytes, None).unwrap();
        let mut got = Vec::new();
        while let Some(p) = f.next_packet().unwrap() {
            got.push((p.ts, p.link_type, p.data.to_vec(), p.orig_len));
        }
        got
    }

    #[test]
    fn both_byte_orders_and_resolutions() {
        for big in [false, true] {
            let us = build(big, MAGIC_MICROS, 1, &[(10, 999_999, b"abc"), (11, 5, b"")]);
            let got = read_all(&us);
            assert_eq!(got.len(), 2);
            assert_eq!(
                got[0],
                (
                    Timestamp::new(10, 999_999),
                    LinkType::Ethernet,
                    b"abc".to_vec(),
                    13
                )
            );
            assert_eq!(got[1].0, Timestamp::new(11, 5));

            let ns = build(big, MAGIC_NANOS, 113, &[(10, 123_456_789, b"x")]);
            let got = read_all(&ns);
            assert_eq!(got[0].0, Timestamp::new(10, 123_456));
            assert_eq!(got[0].1, LinkType::LinuxSll);
        }
    }

    #[test]
    fn oversized_record_is_an_error() {
        let mut bytes = build(false, MAGIC_MICROS, 1, &[(1, 0, b"ok")]);
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&(MAX_PACKET_LEN as u32 + 1).to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        let mut f = PcapFile::from_reader(&bytes[..], None).unwrap();
        assert!(f.next_packet().unwrap().is_some());
        let err = f.next_packet().unwrap_err();
        assert!(
            matches!(err, SourceError::RecordTooLarge { offset: 42, .. }),
            "{err}"
        );
        assert!(f.next_packet().unwrap().is_none(), "errors are terminal");
    }

    #[test]
    fn truncated_record_reports_its_offset() {
        let bytes = build(
            false,
            MAGIC_MICROS,
            1,
            &[(1, 0, b"first"), (2, 0, b"second")],
        );
        let cut = &bytes[..bytes.len() - 3];
        let mut f = PcapFile::from_reader(cut, None).unwrap();
        assert_eq!(f.next_packet().unwrap().unwrap().data, b"first");
        assert_eq!(f.bytes_read(), 24 + 16 + 5);
        let err = f.next_packet().unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::Truncated {
                    offset: 45,
                    needed: 22,
                    available: 19
                }
            ),
            "{err}"
        );
    }
}
